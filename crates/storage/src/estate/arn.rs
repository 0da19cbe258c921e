//! Amazon Resource Names: parsing, and the Resource-Explorer-style type and identifier they
//! imply. `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`, where RESOURCE is `id`, `type/id`
//! or `type:id`; global services leave REGION (IAM, CloudFront, Route 53) or REGION and
//! ACCOUNT (S3 buckets) empty.

use serde::Serialize;

/// Partitions this parser accepts.
pub(crate) const PARTITIONS: [&str; 5] = ["aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b"];

/// A parsed ARN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Arn {
    /// `aws`, `aws-cn`, `aws-us-gov`, ...
    pub partition: String,
    /// Service namespace (`ec2`, `s3`, `iam`, ...).
    pub service: String,
    /// Region, or `None` for global resources.
    pub region: Option<String>,
    /// Account id, or `None` (S3 buckets).
    pub account_id: Option<String>,
    /// Resource type in Resource Explorer form (`ec2:instance`, `rds:db`, `s3:bucket`).
    pub resource_type: String,
    /// The resource's own id (`i-0abc…`, the bucket name, the role name).
    pub identifier: String,
}

/// Why a string is not an ARN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{arn}` is not an ARN: {reason}")]
pub(crate) struct ArnError {
    /// The input (ARNs are identifiers, not secrets, but callers keep them out of logs).
    pub arn: String,
    /// What is wrong.
    pub reason: &'static str,
}

impl Arn {
    /// Parse `text`.
    ///
    /// # Errors
    /// [`ArnError`] naming what is missing or malformed.
    pub(crate) fn parse(text: &str) -> Result<Self, ArnError> {
        let fail = |reason| ArnError {
            arn: text.to_string(),
            reason,
        };
        let mut parts = text.splitn(6, ':');
        if parts.next() != Some("arn") {
            return Err(fail("it does not start with `arn:`"));
        }
        let partition = parts.next().ok_or_else(|| fail("no partition"))?;
        if !PARTITIONS.contains(&partition) {
            return Err(fail("unknown partition (aws, aws-cn, aws-us-gov, aws-iso, aws-iso-b)"));
        }
        let service = parts
            .next()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| fail("no service"))?;
        let region = parts.next().ok_or_else(|| fail("no region field"))?;
        let account = parts.next().ok_or_else(|| fail("no account field"))?;
        let resource = parts
            .next()
            .filter(|r| !r.is_empty())
            .ok_or_else(|| fail("no resource"))?;
        let twelve_digits = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
        // Empty for S3 buckets; `aws` owns AWS-managed resources (managed policies).
        if !(account.is_empty() || twelve_digits || account == "aws") {
            return Err(fail("the account is not 12 digits"));
        }
        let (resource_type, identifier) = split_resource(service, resource);
        Ok(Arn {
            partition: partition.to_string(),
            service: service.to_string(),
            region: (!region.is_empty()).then(|| region.to_string()),
            account_id: (!account.is_empty()).then(|| account.to_string()),
            resource_type,
            identifier,
        })
    }

    /// The ARN of resource `kind`/`id` in `service` (inverse of [`Arn::parse`] for the forms the
    /// importers build), e.g. an EC2 instance: `arn:aws:ec2:us-east-1:123456789012:instance/i-0abc`.
    pub(crate) fn build(partition: &str, service: &str, region: &str, account: &str, resource: &str) -> String {
        format!("arn:{partition}:{service}:{region}:{account}:{resource}")
    }

    /// The partition of `region` (`cn-*` → aws-cn, `us-gov-*` → aws-us-gov, else aws).
    pub(crate) fn partition_of_region(region: &str) -> &'static str {
        if region.starts_with("cn-") {
            "aws-cn"
        } else if region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        }
    }
}

/// Resource type (`service:kind`) and identifier from the resource part of an ARN.
fn split_resource(service: &str, resource: &str) -> (String, String) {
    // Services whose resource part is the bare id.
    let bare = match service {
        "s3" if !resource.contains('/') => Some("bucket"),
        "sns" => Some("topic"),
        "sqs" => Some("queue"),
        _ => None,
    };
    if let Some(kind) = bare {
        return (format!("{service}:{kind}"), resource.to_string());
    }
    if service == "s3" {
        return (format!("{service}:object"), resource.to_string());
    }
    let slash = resource.find('/');
    let colon = resource.find(':');
    let cut = match (slash, colon) {
        (Some(s), Some(c)) => Some(s.min(c)),
        (s, c) => s.or(c),
    };
    match cut {
        Some(i) => {
            let kind = &resource[..i];
            let rest = &resource[i + 1..];
            let id = match service {
                // IAM paths: role/path/to/name → name.
                "iam" => rest.rsplit('/').next().unwrap_or(rest),
                // Lambda qualifiers: function:name:alias → name.
                "lambda" => rest.split(':').next().unwrap_or(rest),
                _ => rest,
            };
            (format!("{service}:{kind}"), id.to_string())
        }
        None => (format!("{service}:{resource}"), resource.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Arn {
        Arn::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn regional_global_and_partitioned_arns() {
        let a = parse("arn:aws:ec2:us-east-1:123456789012:instance/i-0abc123");
        assert_eq!(
            (
                a.service.as_str(),
                a.region.as_deref(),
                a.account_id.as_deref(),
                a.resource_type.as_str(),
                a.identifier.as_str()
            ),
            (
                "ec2",
                Some("us-east-1"),
                Some("123456789012"),
                "ec2:instance",
                "i-0abc123"
            )
        );
        let b = parse("arn:aws:s3:::my-bucket");
        assert_eq!(
            (b.region, b.account_id, b.resource_type.as_str(), b.identifier.as_str()),
            (None, None, "s3:bucket", "my-bucket")
        );
        let r = parse("arn:aws:iam::123456789012:role/service-role/ops-admin");
        assert_eq!(
            (r.region, r.resource_type.as_str(), r.identifier.as_str()),
            (None, "iam:role", "ops-admin")
        );
        let d = parse("arn:aws-cn:rds:cn-north-1:123456789012:db:pg-main");
        assert_eq!(
            (d.partition.as_str(), d.resource_type.as_str(), d.identifier.as_str()),
            ("aws-cn", "rds:db", "pg-main")
        );
        let g = parse("arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:ingest:live");
        assert_eq!(
            (g.resource_type.as_str(), g.identifier.as_str()),
            ("lambda:function", "ingest")
        );
        assert_eq!(
            parse("arn:aws:sns:eu-west-1:123456789012:alerts").resource_type,
            "sns:topic"
        );
        assert_eq!(
            parse("arn:aws:dynamodb:eu-west-1:123456789012:table/orders").identifier,
            "orders"
        );
        assert_eq!(
            parse("arn:aws:iam::aws:policy/ReadOnlyAccess").account_id.as_deref(),
            Some("aws")
        );
        assert_eq!(
            parse("arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188")
                .resource_type,
            "elasticloadbalancing:loadbalancer"
        );
    }

    #[test]
    fn malformed_arns_say_why() {
        for (bad, why) in [
            ("i-0abc123", "arn:"),
            ("arn:aws", "service"),
            ("arn:azure:ec2:us-east-1:123456789012:instance/i-1", "partition"),
            ("arn:aws:ec2:us-east-1:12345:instance/i-1", "12 digits"),
            ("arn:aws:ec2:us-east-1:123456789012:", "resource"),
        ] {
            let err = Arn::parse(bad).unwrap_err();
            assert!(err.to_string().contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn built_arns_parse_back() {
        let arn = Arn::build(
            Arn::partition_of_region("us-gov-east-1"),
            "ec2",
            "us-gov-east-1",
            "123456789012",
            "instance/i-9",
        );
        assert_eq!(arn, "arn:aws-us-gov:ec2:us-gov-east-1:123456789012:instance/i-9");
        assert_eq!(parse(&arn).identifier, "i-9");
    }
}
