//! The `aws_estate` collection: clear, keyed and sealed fields (DESIGN.md §3), and the only
//! code that turns resources into points and back.
//!
//! Clear: `resource_type`, `service`, `account_id`, `account_name`, `region`, `state`,
//! `tag_keys`, `last_synced`, `deleted_at` (absent while live) and its indexed twin `live`,
//! `sources`. Keyed (HMAC with
//! the keyword subkey, equality only): `key_tokens` (the ARN and the path key), `tag_tokens`
//! (one per `key=value`), `fingerprint` (of the sealed content, to skip unchanged resources).
//! Sealed: `identifier`, `arn`, `name`, `tags`, `iam`, `constraints`, `metadata`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::model::AWSResource;
use crate::crypto::{SealContext, Sealer};
use crate::embed::KeywordEncoder;
use crate::error::{Result, StorageError};
use crate::names::KEYWORDS_VECTOR;
use crate::store::{CollectionSpec, DenseSpec, IndexKind, Payload, Point, Record, SparseSpec, VectorData};

pub(crate) use crate::names::ESTATE;

/// Clear and keyed payload keys.
pub(crate) mod field {
    pub(crate) const RESOURCE_TYPE: &str = "resource_type";
    pub(crate) const SERVICE: &str = "service";
    pub(crate) const ACCOUNT_ID: &str = "account_id";
    pub(crate) const ACCOUNT_NAME: &str = "account_name";
    pub(crate) const REGION: &str = "region";
    pub(crate) const STATE: &str = "state";
    pub(crate) const TAG_KEYS: &str = "tag_keys";
    pub(crate) const LAST_SYNCED: &str = "last_synced";
    pub(crate) const DELETED_AT: &str = "deleted_at";
    /// `true` while the resource exists (`deleted_at` absent): an indexed flag, so the live
    /// filter every query carries is an index lookup, not a scan for missing values.
    pub(crate) const LIVE: &str = "live";
    pub(crate) const SOURCES: &str = "sources";
    pub(crate) const KEY_TOKENS: &str = "key_tokens";
    pub(crate) const TAG_TOKENS: &str = "tag_tokens";
    pub(crate) const FINGERPRINT: &str = "fingerprint";
}

/// The collection: indexes on every filtered or faceted field. Each index costs a full pass
/// over the stored payloads at every compaction (qdrant rebuilds field indexes one field at
/// a time), so fields that are only read (`last_synced`, `deleted_at`) have none.
pub(crate) fn estate_spec(dense: Option<DenseSpec>) -> CollectionSpec {
    use field::*;
    CollectionSpec {
        name: ESTATE.to_string(),
        // Semantic search ranks every resource (not one user's few), so the slot is indexed.
        dense: dense.into_iter().map(|d| DenseSpec { graph: true, ..d }).collect(),
        sparse: vec![SparseSpec {
            name: KEYWORDS_VECTOR.to_string(),
            idf: true,
        }],
        indexes: vec![
            (ACCOUNT_ID.into(), IndexKind::Keyword),
            (RESOURCE_TYPE.into(), IndexKind::Keyword),
            (SERVICE.into(), IndexKind::Keyword),
            (REGION.into(), IndexKind::Keyword),
            (STATE.into(), IndexKind::Keyword),
            (TAG_KEYS.into(), IndexKind::Keyword),
            (KEY_TOKENS.into(), IndexKind::Keyword),
            (TAG_TOKENS.into(), IndexKind::Keyword),
            (LIVE.into(), IndexKind::Bool),
        ],
    }
}

/// Keyed tokens and ids of resources.
pub(crate) struct Keys<'a> {
    pub(crate) encoder: &'a KeywordEncoder,
}

impl Keys<'_> {
    fn hex(&self, label: &str, value: &str, bytes: usize) -> String {
        self.encoder
            .digest(label, value.as_bytes())
            .iter()
            .take(bytes)
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Point id of a resource key (keyed, so ids reveal nothing).
    pub(crate) fn point_id(&self, key: &str) -> uuid::Uuid {
        let d = self.encoder.digest("estate-point", key.as_bytes());
        let mut b = [0u8; 16];
        b.copy_from_slice(&d[..16]);
        uuid::Builder::from_random_bytes(b).into_uuid()
    }

    /// Lookup token of a resource key or ARN.
    pub(crate) fn key_token(&self, key: &str) -> String {
        self.hex("estate-key", key, 16)
    }

    /// Token of one `key=value` tag.
    pub(crate) fn tag_token(&self, key: &str, value: &str) -> String {
        self.hex("estate-tag", &format!("{key}\u{0}{value}"), 16)
    }

    /// Keyed fingerprint of the sealed content (equal content, equal fingerprint).
    pub(crate) fn fingerprint(&self, content: &str) -> String {
        self.hex("estate-fingerprint", content, 16)
    }
}

/// The point id of a resource.
pub(crate) fn point_id(keys: &Keys<'_>, r: &AWSResource) -> uuid::Uuid {
    keys.point_id(&r.key())
}

/// The path key (`account/region/type/identifier`), which also finds resources with an ARN.
pub(crate) fn path_key(r: &AWSResource) -> String {
    format!("{}/{}/{}/{}", r.account_id, r.region, r.resource_type, r.identifier)
}

/// The names of a resource's sealed fields.
pub(crate) const SEALED_FIELDS: &[&str] = &["identifier", "arn", "name", "tags", "iam", "constraints", "metadata"];

/// The sealed content of a resource as one canonical JSON string per field (in
/// [`SEALED_FIELDS`] order).
fn sealed_values(r: &AWSResource) -> [(&'static str, String); 7] {
    [
        ("identifier", r.identifier.clone()),
        ("arn", json_text(&r.arn)),
        ("name", json_text(&r.name)),
        ("tags", json_text(&r.tags)),
        ("iam", json_text(&r.iam)),
        ("constraints", json_text(&r.constraints)),
        ("metadata", json_text(&r.metadata)),
    ]
}

/// JSON text of a model field (these types always serialize; `null` is the unreachable fallback).
fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// Text embedded for semantic search (see [`super::text`]).
pub(crate) fn search_text(r: &AWSResource) -> String {
    super::text::dense_text(r)
}

/// A resource as a point (vectors added by the caller).
///
/// # Errors
/// Sealing errors.
pub(crate) fn resource_to_point(r: &AWSResource, keys: &Keys<'_>, sealer: &Sealer) -> Result<Point> {
    use field::*;
    let id = point_id(keys, r);
    let mut payload = Payload::new();
    payload.insert(RESOURCE_TYPE.into(), json!(r.resource_type));
    payload.insert(SERVICE.into(), json!(r.service));
    payload.insert(ACCOUNT_ID.into(), json!(r.account_id));
    if let Some(name) = &r.account_name {
        payload.insert(ACCOUNT_NAME.into(), json!(name));
    }
    payload.insert(REGION.into(), json!(r.region));
    if let Some(state) = &r.state {
        payload.insert(STATE.into(), json!(state));
    }
    let tags = r.tags.clone().unwrap_or_default();
    payload.insert(TAG_KEYS.into(), json!(tags.keys().collect::<Vec<_>>()));
    payload.insert(
        TAG_TOKENS.into(),
        json!(tags.iter().map(|(k, v)| keys.tag_token(k, v)).collect::<Vec<_>>()),
    );
    let mut key_tokens = vec![keys.key_token(&r.key()), keys.key_token(&path_key(r))];
    key_tokens.dedup();
    payload.insert(KEY_TOKENS.into(), json!(key_tokens));
    if let Some(t) = r.last_synced {
        payload.insert(LAST_SYNCED.into(), json!(t));
    }
    if let Some(t) = r.deleted_at {
        payload.insert(DELETED_AT.into(), json!(t));
    }
    payload.insert(LIVE.into(), json!(r.deleted_at.is_none()));
    payload.insert(SOURCES.into(), json!(r.sources));
    let sealed = sealed_values(r);
    let fingerprint = keys.fingerprint(&canonical_text(&sealed));
    let bound = [
        (ACCOUNT_ID, r.account_id.as_str()),
        (REGION, r.region.as_str()),
        (RESOURCE_TYPE, r.resource_type.as_str()),
    ];
    // The fingerprint (of all seven fields) ties them to this write: an older `tags` or
    // `iam` put back alone fails.
    let write = [(FINGERPRINT, fingerprint.as_str())];
    for (name, text) in &sealed {
        let ctx = SealContext {
            collection: ESTATE,
            point_id: id,
            field: name,
            bound: &bound,
            write: &write,
        };
        payload.insert((*name).into(), json!(sealer.seal_str(ctx, text)?));
    }
    payload.insert(FINGERPRINT.into(), json!(fingerprint));
    Ok(Point {
        id,
        vectors: BTreeMap::new(),
        payload,
    })
}

/// The keyed fingerprint a resource would be stored with.
pub(crate) fn fingerprint_of(r: &AWSResource, keys: &Keys<'_>) -> String {
    keys.fingerprint(&canonical_text(&sealed_values(r)))
}

/// The sealed fields' texts, each followed by NUL: what the fingerprint is taken of.
fn canonical_text(sealed: &[(&'static str, String)]) -> String {
    let mut canonical = String::new();
    for (_, text) in sealed {
        canonical.push_str(text);
        canonical.push('\u{0}');
    }
    canonical
}

fn corrupt(rec: &Record, reason: String) -> StorageError {
    StorageError::CorruptRecord {
        collection: ESTATE,
        id: rec.id.to_string(),
        reason,
    }
}

/// One sealed field of a stored resource, opened.
fn open_field(rec: &Record, sealer: &Sealer, name: &str) -> Result<String> {
    let sealed = rec
        .payload
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| corrupt(rec, format!("sealed field `{name}` is missing")))?;
    // The clear fields that scope a resource are bound to its sealed fields: editing one
    // through the engine makes every sealed field fail authentication.
    let clear = |key: &str| rec.payload.get(key).and_then(Value::as_str).unwrap_or_default();
    let bound = [
        (field::ACCOUNT_ID, clear(field::ACCOUNT_ID)),
        (field::REGION, clear(field::REGION)),
        (field::RESOURCE_TYPE, clear(field::RESOURCE_TYPE)),
    ];
    let write = [(field::FINGERPRINT, clear(field::FINGERPRINT))];
    Ok(sealer.open_str(
        SealContext {
            collection: ESTATE,
            point_id: rec.id,
            field: name,
            bound: &bound,
            write: &write,
        },
        sealed,
    )?)
}

/// Only the metadata of a stored resource (one field opened instead of seven).
///
/// # Errors
/// As [`resource_from_record`].
pub(crate) fn metadata_of(rec: &Record, sealer: &Sealer) -> Result<Option<Value>> {
    serde_json::from_str(&open_field(rec, sealer, "metadata")?).map_err(|e| corrupt(rec, format!("`metadata`: {e}")))
}

/// A resource read back.
///
/// # Errors
/// [`StorageError::CorruptRecord`] for a missing or mistyped field; crypto errors.
pub(crate) fn resource_from_record(rec: &Record, sealer: &Sealer) -> Result<AWSResource> {
    use field::*;
    let corrupt = |reason: String| corrupt(rec, reason);
    let p = &rec.payload;
    let s = |k: &str| p.get(k).and_then(Value::as_str).map(String::from);
    let open = |name: &str| open_field(rec, sealer, name);
    fn decode<T: serde::de::DeserializeOwned>(text: &str) -> std::result::Result<T, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }
    let sealed_json = |name: &str| -> Result<String> { open(name) };
    Ok(AWSResource {
        resource_type: s(RESOURCE_TYPE).unwrap_or_default(),
        identifier: open("identifier")?,
        account_id: s(ACCOUNT_ID).unwrap_or_default(),
        account_name: s(ACCOUNT_NAME),
        region: s(REGION).unwrap_or_default(),
        service: s(SERVICE).unwrap_or_default(),
        arn: decode(&sealed_json("arn")?).map_err(|e| corrupt(format!("`arn`: {e}")))?,
        name: decode(&sealed_json("name")?).map_err(|e| corrupt(format!("`name`: {e}")))?,
        state: s(STATE),
        tags: decode(&sealed_json("tags")?).map_err(|e| corrupt(format!("`tags`: {e}")))?,
        iam: decode(&sealed_json("iam")?).map_err(|e| corrupt(format!("`iam`: {e}")))?,
        constraints: decode(&sealed_json("constraints")?).map_err(|e| corrupt(format!("`constraints`: {e}")))?,
        metadata: decode(&sealed_json("metadata")?).map_err(|e| corrupt(format!("`metadata`: {e}")))?,
        last_synced: p.get(LAST_SYNCED).and_then(Value::as_i64),
        deleted_at: p.get(DELETED_AT).and_then(Value::as_i64),
        sources: p
            .get(SOURCES)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
            .unwrap_or_default(),
    })
}

/// The sparse keyword vector of a resource.
pub(crate) fn keyword_vector(r: &AWSResource, encoder: &KeywordEncoder) -> VectorData {
    encoder.document(&super::text::keyword_text(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sealed_field_list_names_every_sealed_value() {
        let names: Vec<&str> = sealed_values(&AWSResource::default()).iter().map(|(n, _)| *n).collect();
        assert_eq!(names, SEALED_FIELDS);
    }
}
