//! The two chat collections, declared once: their clear and sealed fields, indexes and
//! vectors, and the only code that turns chat types into points and back.
//!
//! Clear fields are a deliberate, documented leak that drives filters and ordering (ids,
//! times, counts, role, status). Titles, message text and metadata are sealed with
//! AAD = collection ‖ point id ‖ field ‖ the clear fields that scope the record ‖ what ties
//! the record's sealed fields to one write (a conversation's random seal set, rewritten with
//! its title and metadata together; whether a message has metadata), so they never reach the
//! engine in clear, and an older title put back or a message's metadata removed fails.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::model::{Conversation, ConversationStatus, Message, Role};
use crate::crypto::{SealContext, Sealer};
use crate::error::{Result, StorageError};
use crate::store::{
    CollectionSpec, Condition, DenseSpec, FieldValue, IndexKind, Payload, Point, Record, SparseSpec, VectorData,
};

pub(crate) use crate::names::{CONVERSATIONS, KEYWORDS_VECTOR, MESSAGES};

/// Fields of [`CONVERSATIONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConversationField {
    /// Owner (tenant key, clear).
    UserId,
    /// Conversation id (clear).
    ContextId,
    /// Creation time, unix ms (clear).
    CreatedAt,
    /// Last activity, unix ms (clear, ordered).
    UpdatedAt,
    /// Message count (clear).
    MessageCount,
    /// active | archived (clear).
    Status,
    /// Title (sealed).
    Title,
    /// Metadata JSON (sealed).
    Metadata,
    /// Random id of the write that sealed title and metadata (clear; bound into both).
    SealSet,
}

impl ConversationField {
    /// Payload key.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            ConversationField::UserId => "user_id",
            ConversationField::ContextId => "context_id",
            ConversationField::CreatedAt => "created_at",
            ConversationField::UpdatedAt => "updated_at",
            ConversationField::MessageCount => "message_count",
            ConversationField::Status => "status",
            ConversationField::Title => "title",
            ConversationField::Metadata => "metadata",
            ConversationField::SealSet => "seal_set",
        }
    }
}

/// Fields of [`MESSAGES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MessageField {
    /// Owner (tenant key, clear).
    UserId,
    /// Conversation id (clear).
    ContextId,
    /// Position in the conversation (clear, ordered).
    MessageIndex,
    /// user | assistant | system (clear).
    Role,
    /// Creation time, unix ms (clear).
    CreatedAt,
    /// Text (sealed).
    Content,
    /// Metadata JSON (sealed).
    Metadata,
}

impl MessageField {
    /// Payload key.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            MessageField::UserId => "user_id",
            MessageField::ContextId => "context_id",
            MessageField::MessageIndex => "message_index",
            MessageField::Role => "role",
            MessageField::CreatedAt => "created_at",
            MessageField::Content => "content",
            MessageField::Metadata => "metadata",
        }
    }
}

/// `field == value` on a conversation field.
pub(crate) fn conv_eq(field: ConversationField, value: impl Into<FieldValue>) -> Condition {
    Condition::Eq(field.as_str().to_string(), value.into())
}

/// `field == value` on a message field.
pub(crate) fn msg_eq(field: MessageField, value: impl Into<FieldValue>) -> Condition {
    Condition::Eq(field.as_str().to_string(), value.into())
}

/// The conversations collection: indexes on every filtered or ordered field.
pub(crate) fn conversations_spec() -> CollectionSpec {
    use ConversationField as F;
    CollectionSpec {
        name: CONVERSATIONS.to_string(),
        dense: Vec::new(),
        sparse: vec![SparseSpec {
            name: KEYWORDS_VECTOR.to_string(),
            idf: true,
        }],
        indexes: vec![
            (F::UserId.as_str().into(), IndexKind::Tenant),
            (F::ContextId.as_str().into(), IndexKind::Keyword),
            (F::Status.as_str().into(), IndexKind::Keyword),
            (F::UpdatedAt.as_str().into(), IndexKind::Integer),
            (F::CreatedAt.as_str().into(), IndexKind::Integer),
        ],
    }
}

/// The messages collection: indexes on every filtered or ordered field, the keyword vector and,
/// with an embedder, its dense vector slot.
pub(crate) fn messages_spec(dense: Option<DenseSpec>) -> CollectionSpec {
    use MessageField as F;
    CollectionSpec {
        name: MESSAGES.to_string(),
        dense: dense.into_iter().collect(),
        sparse: vec![SparseSpec {
            name: KEYWORDS_VECTOR.to_string(),
            idf: true,
        }],
        indexes: vec![
            (F::UserId.as_str().into(), IndexKind::Tenant),
            (F::ContextId.as_str().into(), IndexKind::Keyword),
            (F::MessageIndex.as_str().into(), IndexKind::Integer),
            (F::Role.as_str().into(), IndexKind::Keyword),
            (F::CreatedAt.as_str().into(), IndexKind::Integer),
        ],
    }
}

/// The point id of a conversation: its context id when that is a UUID, else a name-based UUID.
pub(crate) fn conversation_point_id(context_id: &str) -> uuid::Uuid {
    uuid::Uuid::parse_str(context_id).unwrap_or_else(|_| uuid::Uuid::new_v5(&CONTEXT_NAMESPACE, context_id.as_bytes()))
}

/// Namespace of message point ids (the value the Node.js import used first, kept so imported
/// and appended messages share one id scheme).
const MESSAGE_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6d73_675f_696d_706f_7274_5f76_315f_6964);

/// Point id of message `index` of a conversation. Deterministic, so writers racing for one
/// index (two processes on one server) collide on one id and exactly one insert wins.
pub(crate) fn message_point_id(context_id: &str, index: u64) -> uuid::Uuid {
    uuid::Uuid::new_v5(&MESSAGE_NAMESPACE, format!("{context_id}/{index}").as_bytes())
}

const CONTEXT_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6c6f_7564_6f70_735f_6368_6174_5f63_7478);

fn ctx<'a>(
    collection: &'static str,
    point_id: uuid::Uuid,
    field: &'static str,
    bound: &'a [(&'a str, &'a str)],
    write: &'a [(&'a str, &'a str)],
) -> SealContext<'a> {
    SealContext {
        collection,
        point_id,
        field,
        bound,
        write,
    }
}

/// Whether a message has sealed metadata, bound into its sealed fields (so removing the
/// metadata makes the content fail instead of reading back as "no metadata").
fn message_write(has_metadata: bool) -> [(&'static str, &'static str); 1] {
    [(
        MessageField::Metadata.as_str(),
        if has_metadata { "sealed" } else { "none" },
    )]
}

/// The clear fields a conversation's sealed fields are bound to (who owns it).
fn conversation_bound<'a>(user_id: &'a str, context_id: &'a str) -> [(&'static str, &'a str); 2] {
    [
        (ConversationField::UserId.as_str(), user_id),
        (ConversationField::ContextId.as_str(), context_id),
    ]
}

/// The clear fields a message's sealed fields are bound to: whose it is, where it sits and
/// who said it (so an edit cannot move it to another user or turn it into a system prompt).
fn message_bound<'a>(
    user_id: &'a str,
    context_id: &'a str,
    role: &'a str,
    index: &'a str,
) -> [(&'static str, &'a str); 4] {
    [
        (MessageField::UserId.as_str(), user_id),
        (MessageField::ContextId.as_str(), context_id),
        (MessageField::Role.as_str(), role),
        (MessageField::MessageIndex.as_str(), index),
    ]
}

/// A conversation as a point.
///
/// # Errors
/// Sealing errors.
pub(crate) fn conversation_to_point(c: &Conversation, sealer: &Sealer) -> Result<Point> {
    use ConversationField as F;
    let id = conversation_point_id(&c.context_id);
    let mut payload = Payload::new();
    payload.insert(F::UserId.as_str().into(), json!(c.user_id));
    payload.insert(F::ContextId.as_str().into(), json!(c.context_id));
    payload.insert(F::CreatedAt.as_str().into(), json!(c.created_at));
    payload.insert(F::UpdatedAt.as_str().into(), json!(c.updated_at));
    payload.insert(F::MessageCount.as_str().into(), json!(c.message_count));
    payload.insert(F::Status.as_str().into(), json!(c.status.as_str()));
    payload.extend(seal_conversation_fields(
        &c.context_id,
        &c.user_id,
        &c.title,
        &c.metadata,
        sealer,
    )?);
    Ok(Point {
        id,
        vectors: BTreeMap::new(),
        payload,
    })
}

/// A conversation's title and metadata sealed as one write (a new seal set bound into both),
/// for a new conversation or an update of either: the payload fields to set.
///
/// # Errors
/// Sealing errors.
pub(crate) fn seal_conversation_fields(
    context_id: &str,
    user_id: &str,
    title: &str,
    metadata: &Value,
    sealer: &Sealer,
) -> Result<Payload> {
    use ConversationField as F;
    let id = conversation_point_id(context_id);
    let bound = conversation_bound(user_id, context_id);
    let seal_set = format!("{:016x}", rand::random::<u64>());
    let write = [(F::SealSet.as_str(), seal_set.as_str())];
    let meta = serde_json::to_string(metadata).unwrap_or_else(|_| "null".into());
    let mut payload = Payload::new();
    payload.insert(
        F::Title.as_str().into(),
        json!(sealer.seal_str(ctx(CONVERSATIONS, id, F::Title.as_str(), &bound, &write), title)?),
    );
    payload.insert(
        F::Metadata.as_str().into(),
        json!(sealer.seal_str(ctx(CONVERSATIONS, id, F::Metadata.as_str(), &bound, &write), &meta)?),
    );
    payload.insert(F::SealSet.as_str().into(), json!(seal_set));
    Ok(payload)
}

/// A conversation read back.
///
/// # Errors
/// [`StorageError::CorruptRecord`] for a missing or mistyped field; crypto errors for sealed ones.
pub(crate) fn conversation_from_record(r: &Record, sealer: &Sealer) -> Result<Conversation> {
    use ConversationField as F;
    let p = Fields::new(CONVERSATIONS, r);
    let (user_id, context_id) = (p.str(F::UserId.as_str())?, p.str(F::ContextId.as_str())?);
    let bound = conversation_bound(user_id, context_id);
    // Missing only on conversations written before seal sets (their fields are version 2,
    // which binds no write).
    let seal_set = r
        .payload
        .get(F::SealSet.as_str())
        .and_then(Value::as_str)
        .unwrap_or_default();
    let write = [(F::SealSet.as_str(), seal_set)];
    let title = sealer.open_str(
        ctx(CONVERSATIONS, r.id, F::Title.as_str(), &bound, &write),
        p.str(F::Title.as_str())?,
    )?;
    let meta = sealer.open_str(
        ctx(CONVERSATIONS, r.id, F::Metadata.as_str(), &bound, &write),
        p.str(F::Metadata.as_str())?,
    )?;
    Ok(Conversation {
        context_id: context_id.to_string(),
        user_id: user_id.to_string(),
        title,
        metadata: serde_json::from_str(&meta).map_err(|e| p.corrupt(format!("metadata is not JSON: {e}")))?,
        created_at: p.i64(F::CreatedAt.as_str())?,
        updated_at: p.i64(F::UpdatedAt.as_str())?,
        message_count: p.u64(F::MessageCount.as_str())?,
        status: p
            .str(F::Status.as_str())?
            .parse::<ConversationStatus>()
            .map_err(|e| p.corrupt(e))?,
    })
}

/// A message as a point, with its keyword vector.
///
/// # Errors
/// Sealing errors.
pub(crate) fn message_to_point(m: &Message, keywords: VectorData, sealer: &Sealer) -> Result<Point> {
    use MessageField as F;
    let mut payload = Payload::new();
    payload.insert(F::UserId.as_str().into(), json!(m.user_id));
    payload.insert(F::ContextId.as_str().into(), json!(m.context_id));
    payload.insert(F::MessageIndex.as_str().into(), json!(m.message_index));
    payload.insert(F::Role.as_str().into(), json!(m.role.as_str()));
    payload.insert(F::CreatedAt.as_str().into(), json!(m.created_at));
    payload.extend(message_sealed_fields(m, sealer)?);
    Ok(Point {
        id: m.id,
        vectors: BTreeMap::from([(KEYWORDS_VECTOR.to_string(), keywords)]),
        payload,
    })
}

/// A message's sealed fields (content, and metadata when it has some) as payload fields.
///
/// # Errors
/// Sealing errors.
pub(crate) fn message_sealed_fields(m: &Message, sealer: &Sealer) -> Result<Payload> {
    use MessageField as F;
    let index = m.message_index.to_string();
    let bound = message_bound(&m.user_id, &m.context_id, m.role.as_str(), &index);
    let write = message_write(m.metadata.is_some());
    let mut payload = Payload::new();
    payload.insert(
        F::Content.as_str().into(),
        json!(sealer.seal_str(ctx(MESSAGES, m.id, F::Content.as_str(), &bound, &write), &m.content)?),
    );
    if let Some(meta) = &m.metadata {
        let text = serde_json::to_string(meta).unwrap_or_else(|_| "null".into());
        payload.insert(
            F::Metadata.as_str().into(),
            json!(sealer.seal_str(ctx(MESSAGES, m.id, F::Metadata.as_str(), &bound, &write), &text)?),
        );
    }
    Ok(payload)
}

/// A message read back.
///
/// # Errors
/// [`StorageError::CorruptRecord`] for a missing or mistyped field; crypto errors for sealed ones.
pub(crate) fn message_from_record(r: &Record, sealer: &Sealer) -> Result<Message> {
    use MessageField as F;
    let p = Fields::new(MESSAGES, r);
    let (user_id, context_id) = (p.str(F::UserId.as_str())?, p.str(F::ContextId.as_str())?);
    let (role, message_index) = (p.str(F::Role.as_str())?, p.u64(F::MessageIndex.as_str())?);
    let index = message_index.to_string();
    let bound = message_bound(user_id, context_id, role, &index);
    let sealed_metadata = r.payload.get(F::Metadata.as_str());
    let write = message_write(sealed_metadata.is_some());
    let content = sealer.open_str(
        ctx(MESSAGES, r.id, F::Content.as_str(), &bound, &write),
        p.str(F::Content.as_str())?,
    )?;
    let metadata = match sealed_metadata {
        Some(Value::String(sealed)) => {
            let text = sealer.open_str(ctx(MESSAGES, r.id, F::Metadata.as_str(), &bound, &write), sealed)?;
            Some(serde_json::from_str(&text).map_err(|e| p.corrupt(format!("metadata is not JSON: {e}")))?)
        }
        Some(_) => return Err(p.corrupt("metadata is not a sealed value")),
        None => None,
    };
    Ok(Message {
        id: r.id,
        context_id: context_id.to_string(),
        user_id: user_id.to_string(),
        message_index,
        role: role.parse::<Role>().map_err(|e| p.corrupt(e))?,
        content,
        metadata,
        created_at: p.i64(F::CreatedAt.as_str())?,
    })
}

/// Typed access to one record's payload, with errors naming the record.
struct Fields<'a> {
    collection: &'static str,
    record: &'a Record,
}

impl<'a> Fields<'a> {
    fn new(collection: &'static str, record: &'a Record) -> Self {
        Fields { collection, record }
    }

    fn corrupt(&self, reason: impl Into<String>) -> StorageError {
        StorageError::CorruptRecord {
            collection: self.collection,
            id: self.record.id.to_string(),
            reason: reason.into(),
        }
    }

    fn str(&self, key: &str) -> Result<&'a str> {
        self.record
            .payload
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| self.corrupt(format!("field `{key}` is missing or not a string")))
    }

    fn i64(&self, key: &str) -> Result<i64> {
        self.record
            .payload
            .get(key)
            .and_then(Value::as_i64)
            .ok_or_else(|| self.corrupt(format!("field `{key}` is missing or not an integer")))
    }

    fn u64(&self, key: &str) -> Result<u64> {
        self.record
            .payload
            .get(key)
            .and_then(Value::as_u64)
            .ok_or_else(|| self.corrupt(format!("field `{key}` is missing or not a count")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::test_sealer;

    fn no_keywords() -> VectorData {
        VectorData::Sparse {
            indices: vec![],
            values: vec![],
        }
    }

    #[test]
    fn every_filtered_field_has_an_index() {
        let conv = conversations_spec();
        for f in [
            ConversationField::UserId,
            ConversationField::Status,
            ConversationField::UpdatedAt,
            ConversationField::ContextId,
        ] {
            assert!(conv.indexes.iter().any(|(k, _)| k == f.as_str()), "{}", f.as_str());
        }
        let msgs = messages_spec(None);
        for f in [
            MessageField::UserId,
            MessageField::ContextId,
            MessageField::MessageIndex,
            MessageField::Role,
            MessageField::CreatedAt,
        ] {
            assert!(msgs.indexes.iter().any(|(k, _)| k == f.as_str()), "{}", f.as_str());
        }
        for f in [MessageField::Content, MessageField::Metadata] {
            assert!(
                !msgs.indexes.iter().any(|(k, _)| k == f.as_str()),
                "sealed field indexed"
            );
        }
    }

    #[test]
    fn no_sealed_value_appears_in_the_payload_and_round_trip_holds() {
        let sealer = test_sealer();
        let m = Message {
            id: uuid::Uuid::new_v4(),
            context_id: "c1".into(),
            user_id: "u1".into(),
            message_index: 3,
            role: Role::Assistant,
            content: "SECRET-MARKER text".into(),
            metadata: Some(json!({"k": "META-MARKER"})),
            created_at: 5,
        };
        let point = message_to_point(&m, no_keywords(), &sealer).unwrap();
        let text = serde_json::to_string(&point.payload).unwrap();
        assert!(!text.contains("SECRET-MARKER") && !text.contains("META-MARKER"));
        let record = Record {
            id: point.id,
            payload: point.payload,
            vectors: BTreeMap::new(),
        };
        assert_eq!(message_from_record(&record, &sealer).unwrap(), m);

        let c = Conversation {
            context_id: uuid::Uuid::new_v4().to_string(),
            user_id: "u1".into(),
            title: "TITLE-MARKER".into(),
            metadata: json!({"x": 1}),
            created_at: 1,
            updated_at: 2,
            message_count: 0,
            status: ConversationStatus::Archived,
        };
        let point = conversation_to_point(&c, &sealer).unwrap();
        assert!(!serde_json::to_string(&point.payload).unwrap().contains("TITLE-MARKER"));
        let record = Record {
            id: point.id,
            payload: point.payload,
            vectors: BTreeMap::new(),
        };
        assert_eq!(conversation_from_record(&record, &sealer).unwrap(), c);
    }

    #[test]
    fn a_content_copied_to_another_message_fails() {
        let sealer = test_sealer();
        let mk = |content: &str| Message {
            id: uuid::Uuid::new_v4(),
            context_id: "c".into(),
            user_id: "u".into(),
            message_index: 0,
            role: Role::User,
            content: content.into(),
            metadata: None,
            created_at: 0,
        };
        let a = message_to_point(&mk("a"), no_keywords(), &sealer).unwrap();
        let mut b = message_to_point(&mk("b"), no_keywords(), &sealer).unwrap();
        b.payload.insert("content".into(), a.payload["content"].clone());
        let record = Record {
            id: b.id,
            payload: b.payload,
            vectors: BTreeMap::new(),
        };
        let err = message_from_record(&record, &sealer).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Tampered);
    }
}
