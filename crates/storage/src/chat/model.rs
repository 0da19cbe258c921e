//! The chat domain types: conversations, messages and the requests that shape them.

use serde::{Deserialize, Serialize};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The human.
    User,
    /// The assistant.
    Assistant,
    /// A system prompt or note.
    System,
}

impl Role {
    /// Stored and printed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::System => "system",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(Role::User),
            "assistant" => Ok(Role::Assistant),
            "system" => Ok(Role::System),
            other => Err(format!("unknown role `{other}` (expected user, assistant or system)")),
        }
    }
}

/// Whether a conversation is in the main list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum ConversationStatus {
    /// Shown in the main list.
    #[default]
    Active,
    /// Hidden from the main list, still searchable.
    Archived,
}

impl ConversationStatus {
    /// Stored and printed name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationStatus::Active => "active",
            ConversationStatus::Archived => "archived",
        }
    }
}

impl std::str::FromStr for ConversationStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(ConversationStatus::Active),
            "archived" => Ok(ConversationStatus::Archived),
            other => Err(format!("unknown status `{other}` (expected active or archived)")),
        }
    }
}

/// A persisted chat session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct Conversation {
    /// Id of the conversation (a UUID for new ones).
    pub context_id: String,
    /// Owner.
    pub user_id: String,
    /// Title (sealed at rest).
    pub title: String,
    /// Free-form metadata (sealed at rest).
    pub metadata: serde_json::Value,
    /// Creation time, unix ms.
    pub created_at: i64,
    /// Last activity, unix ms.
    pub updated_at: i64,
    /// Number of messages.
    pub message_count: u64,
    /// Active or archived.
    pub status: ConversationStatus,
}

/// A message to append.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct NewMessage {
    /// Author role.
    pub role: Role,
    /// Text (sealed at rest).
    pub content: String,
    /// Optional metadata (sealed at rest).
    #[serde(default)]
    #[cfg_attr(feature = "typescript", ts(optional))]
    pub metadata: Option<serde_json::Value>,
}

impl NewMessage {
    /// A message without metadata.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        NewMessage {
            role,
            content: content.into(),
            metadata: None,
        }
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct Message {
    /// Point id.
    pub id: uuid::Uuid,
    /// Conversation.
    pub context_id: String,
    /// Owner.
    pub user_id: String,
    /// Position in the conversation: 0, 1, 2, … with no gap.
    pub message_index: u64,
    /// Author role.
    pub role: Role,
    /// Text.
    pub content: String,
    /// Metadata, if any.
    pub metadata: Option<serde_json::Value>,
    /// Creation time, unix ms.
    pub created_at: i64,
}

/// Which part of a conversation's history to read. Results are always chronological.
///
/// JSON: `"all"`, `{"last": 5}`, `{"before": {"index": 40, "limit": 20}}`,
/// `{"after": {"index": 40, "limit": 20}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum HistoryRange {
    /// Every message.
    All,
    /// The last `n` messages.
    Last(usize),
    /// Up to `limit` messages with an index below `index` (older page).
    Before {
        /// Exclusive upper bound.
        index: u64,
        /// Page size.
        limit: usize,
    },
    /// Up to `limit` messages with an index above `index` (newer page).
    After {
        /// Exclusive lower bound.
        index: u64,
        /// Page size.
        limit: usize,
    },
}

/// Changes to a conversation; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ConversationUpdate {
    /// New title.
    pub title: Option<String>,
    /// New metadata (replaces the old).
    pub metadata: Option<serde_json::Value>,
    /// New status.
    pub status: Option<ConversationStatus>,
}

/// One page of a user's conversations, newest activity first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct ConversationPage {
    /// The conversations.
    pub conversations: Vec<Conversation>,
    /// Pass to the next call to continue; `None` at the end.
    pub next_cursor: Option<String>,
}

/// What a hard delete removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct DeleteReceipt {
    /// The user whose data was deleted.
    pub user_id: String,
    /// Conversations removed.
    pub conversations: u64,
    /// Messages removed.
    pub messages: u64,
    /// When, unix ms.
    pub deleted_at: i64,
}
