//! Bulk import of whole conversations (used by the Node.js migration), idempotent.
//!
//! Message point ids derive from the conversation id and position, and the conversation
//! record is written last: a crash mid-import leaves no conversation, so the next run imports
//! it again and overwrites the same message points; once the conversation exists, the import
//! is skipped.
//!
//! An import never waits on the embedding model: messages are written with their keyword
//! vectors only, and the background indexer is asked to find them by their missing dense
//! vector afterwards (a scan, so a queue of every imported id is never held in memory).

use serde_json::Value;

use super::schema::{self, MESSAGES};
use super::{check_id, check_title, ChatStorage, Conversation, Message, Role};
use crate::error::{Result, StorageError};

/// Messages written per store call.
const WRITE_BATCH: usize = 256;

/// A conversation to import with its messages in order.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedConversation {
    /// The conversation (its `message_count` is set from `messages`).
    pub conversation: Conversation,
    /// `(role, content, created_at, metadata)` in order.
    pub messages: Vec<(Role, String, i64, Option<Value>)>,
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportOutcome {
    /// Written, with this many messages.
    Imported(u64),
    /// The conversation already exists (an earlier import): nothing written.
    AlreadyPresent,
}

impl ChatStorage {
    /// Import a whole conversation unless it already exists.
    ///
    /// # Errors
    /// [`StorageError::InvalidInput`] for bad ids, an oversized message or a conversation id
    /// owned by another user; store errors (the conversation is then absent, so a retry
    /// imports it again).
    pub async fn import_conversation(&self, import: ImportedConversation) -> Result<ImportOutcome> {
        let mut conversation = import.conversation;
        check_id("user_id", &conversation.user_id)?;
        check_id("context_id", &conversation.context_id)?;
        check_title(&conversation.title)?;
        if let Some((i, _)) = import
            .messages
            .iter()
            .enumerate()
            .find(|(_, m)| m.1.len() > self.max_message_bytes)
        {
            return Err(super::invalid(
                "content",
                format!(
                    "message {i} is over chat.max_message_bytes ({})",
                    self.max_message_bytes
                ),
            ));
        }
        let slot = self.slot(&conversation.context_id);
        let mut guard = slot.lock().await;
        match self.get_conversation(&conversation.context_id).await {
            Ok(existing) if existing.user_id == conversation.user_id => return Ok(ImportOutcome::AlreadyPresent),
            Ok(_) => {
                return Err(super::invalid(
                    "context_id",
                    format!("{} already belongs to another user", conversation.context_id),
                ))
            }
            Err(StorageError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let count = import.messages.len() as u64;
        let mut points = Vec::with_capacity(import.messages.len().min(WRITE_BATCH));
        for (index, (role, content, created_at, metadata)) in import.messages.into_iter().enumerate() {
            let message = Message {
                id: schema::message_point_id(&conversation.context_id, index as u64),
                context_id: conversation.context_id.clone(),
                user_id: conversation.user_id.clone(),
                message_index: index as u64,
                role,
                content,
                metadata,
                created_at,
            };
            let keywords = self.keywords.document(&message.content);
            points.push(schema::message_to_point(&message, keywords, &self.sealer)?);
            if points.len() == WRITE_BATCH {
                self.store.upsert(MESSAGES, std::mem::take(&mut points)).await?;
            }
        }
        self.store.upsert(MESSAGES, points).await?;
        conversation.message_count = count;
        self.put_conversation(&conversation).await?;
        // Appends in this process reload the next index from the imported messages.
        *guard = None;
        drop(guard);
        self.rescan_for_embedding();
        Ok(ImportOutcome::Imported(count))
    }
}
