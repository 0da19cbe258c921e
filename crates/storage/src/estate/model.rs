//! The AWS resource model (DESIGN.md §3), as importers produce it and callers read it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who is looking at the estate, with what session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(default)]
pub struct UserContext {
    /// IAM user name.
    pub username: Option<String>,
    /// Role assumed for the session.
    pub role_arn: Option<String>,
    /// Session expiry (RFC 3339 as printed by the AWS CLI).
    pub session_expires: Option<String>,
}

/// What the current principal may do to a resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(default)]
pub struct IAMPermissions {
    /// Allowed actions (`ec2:StopInstances`, ...).
    pub allowed_actions: Vec<String>,
    /// Explicitly denied actions.
    pub denied_actions: Vec<String>,
    /// The principal and session these were evaluated for.
    pub user_context: UserContext,
}

/// Operational constraints of a resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(default)]
pub struct ResourceConstraints {
    /// It can be stopped.
    pub can_stop: Option<bool>,
    /// It can be started.
    pub can_start: Option<bool>,
    /// It can be deleted (no termination protection, ...).
    pub can_delete: Option<bool>,
    /// Other resources depend on it.
    pub has_dependencies: Option<bool>,
    /// Anything else (`{"deletion_protection": true}`, ...).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// One resource of the estate. Optional fields are `None` when the source did not say:
/// merging never lets a missing field clear what another source set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(default)]
pub struct AWSResource {
    /// Resource Explorer style type: `ec2:instance`, `rds:db`, `s3:bucket`, `lambda:function`.
    pub resource_type: String,
    /// The resource's id within its type (`i-0abc…`, bucket or function name).
    pub identifier: String,
    /// 12-digit account id.
    pub account_id: String,
    /// Human account name.
    pub account_name: Option<String>,
    /// Region, or `global`.
    pub region: String,
    /// Service namespace (`ec2`, `rds`, `s3`, ...).
    pub service: String,
    /// ARN, when known.
    pub arn: Option<String>,
    /// Display name (the `Name` tag, the function name, ...).
    pub name: Option<String>,
    /// Lifecycle state (`running`, `available`, `deleted` for tombstones).
    pub state: Option<String>,
    /// Tags; `None` when the source does not list tags.
    pub tags: Option<BTreeMap<String, String>>,
    /// Permissions of the current principal.
    pub iam: Option<IAMPermissions>,
    /// Operational constraints.
    pub constraints: Option<ResourceConstraints>,
    /// Anything else the source printed (instance type, engine, runtime, ...).
    pub metadata: Option<Value>,
    /// When a sync or import last saw it (unix ms).
    pub last_synced: Option<i64>,
    /// When a sync found it gone (unix ms); `None` while it exists.
    pub deleted_at: Option<i64>,
    /// Importers that have seen it (`ec2:describe-instances`, `tagging:get-resources`, ...).
    pub sources: Vec<String>,
}

/// The region value of global resources.
pub const GLOBAL_REGION: &str = "global";

impl AWSResource {
    /// The resource key: the ARN when known, else `account/region/type/identifier`.
    pub fn key(&self) -> String {
        match &self.arn {
            Some(arn) if !arn.is_empty() => arn.clone(),
            _ => format!(
                "{}/{}/{}/{}",
                self.account_id, self.region, self.resource_type, self.identifier
            ),
        }
    }

    /// Merge `newer` into `self`: fields `newer` sets overwrite, fields it lacks keep their
    /// value; sources are united; a resource seen again is no longer a tombstone.
    pub fn merge(&mut self, newer: AWSResource) {
        fn take<T>(slot: &mut Option<T>, value: Option<T>) {
            if value.is_some() {
                *slot = value;
            }
        }
        fn take_str(slot: &mut String, value: String) {
            if !value.is_empty() {
                *slot = value;
            }
        }
        take_str(&mut self.resource_type, newer.resource_type);
        take_str(&mut self.identifier, newer.identifier);
        take_str(&mut self.account_id, newer.account_id);
        take_str(&mut self.region, newer.region);
        take_str(&mut self.service, newer.service);
        take(&mut self.account_name, newer.account_name);
        take(&mut self.arn, newer.arn);
        take(&mut self.name, newer.name);
        take(&mut self.state, newer.state);
        take(&mut self.tags, newer.tags);
        take(&mut self.iam, newer.iam);
        take(&mut self.constraints, newer.constraints);
        self.metadata = match (self.metadata.take(), newer.metadata) {
            (Some(Value::Object(mut old)), Some(Value::Object(new))) => {
                old.extend(new);
                Some(Value::Object(old))
            }
            (old, new) => new.or(old),
        };
        take(&mut self.last_synced, newer.last_synced);
        self.deleted_at = newer.deleted_at;
        for s in newer.sources {
            if !self.sources.contains(&s) {
                self.sources.push(s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket() -> AWSResource {
        AWSResource {
            resource_type: "s3:bucket".into(),
            identifier: "logs".into(),
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
            service: "s3".into(),
            arn: Some("arn:aws:s3:::logs".into()),
            ..AWSResource::default()
        }
    }

    #[test]
    fn key_is_the_arn_or_the_path() {
        assert_eq!(bucket().key(), "arn:aws:s3:::logs");
        let mut b = bucket();
        b.arn = None;
        assert_eq!(b.key(), "123456789012/us-east-1/s3:bucket/logs");
    }

    #[test]
    fn a_source_without_a_field_never_clears_it() {
        let mut from_tags = bucket();
        from_tags.tags = Some([("env".to_string(), "prod".to_string())].into());
        from_tags.sources = vec!["tagging:get-resources".into()];
        let mut from_list = bucket();
        from_list.state = Some("available".into());
        from_list.metadata = Some(serde_json::json!({"creation_date": "2024-01-01"}));
        from_list.sources = vec!["s3api:list-buckets".into()];
        from_tags.merge(from_list);
        assert_eq!(
            from_tags.tags.as_ref().unwrap()["env"],
            "prod",
            "bucket listing has no tags"
        );
        assert_eq!(from_tags.state.as_deref(), Some("available"));
        assert_eq!(from_tags.sources, vec!["tagging:get-resources", "s3api:list-buckets"]);
        let mut emptied = bucket();
        emptied.tags = Some(BTreeMap::new());
        from_tags.merge(emptied);
        assert!(
            from_tags.tags.unwrap().is_empty(),
            "an explicit empty tag set does clear"
        );
    }

    #[test]
    fn json_round_trip_with_iam_and_constraints() {
        let mut r = bucket();
        r.iam = Some(IAMPermissions {
            allowed_actions: vec!["s3:GetObject".into()],
            denied_actions: vec!["s3:DeleteBucket".into()],
            user_context: UserContext {
                username: Some("ops".into()),
                role_arn: None,
                session_expires: Some("2026-11-26T10:00:00Z".into()),
            },
        });
        r.constraints = Some(ResourceConstraints {
            can_delete: Some(false),
            extra: [("versioning".to_string(), serde_json::json!(true))].into(),
            ..ResourceConstraints::default()
        });
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<AWSResource>(&text).unwrap(), r);
    }
}
