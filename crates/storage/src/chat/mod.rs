//! Chat storage: conversations and their ordered messages, sealed at rest.
//!
//! Message indexes are assigned under a per-conversation async mutex, so concurrent appends
//! to one conversation get 0, 1, 2, … with no gap or duplicate. After a restart the next index
//! is recovered from the messages themselves (the highest stored index + 1), which stays right
//! even if a crash landed between storing a message and bumping the conversation's count.

mod config;
mod context;
mod import;
mod indexer;
mod model;
mod reseal;
pub(crate) mod schema;
mod search;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

pub use config::{ChatConfig, DEFAULT_MAX_MESSAGE_BYTES};
pub use context::{ContextOptions, ContextPair, PromptContext};
pub use import::{ImportOutcome, ImportedConversation};
use indexer::{DenseIndexer, IndexingPause};
pub use model::{
    Conversation, ConversationPage, ConversationStatus, ConversationUpdate, DeleteReceipt, HistoryRange, Message,
    NewMessage, Role,
};
use schema::{conv_eq, msg_eq, ConversationField as CF, MessageField as MF, CONVERSATIONS, MESSAGES};
pub use search::{ArchivedFilter, ConversationHit, MessageHit, SearchOptions, SearchResults};

use crate::clock::now_ms;
use crate::crypto::Sealer;
use crate::embed::{DenseSpace, KeywordEncoder};
use crate::error::{Result, StorageError};
use crate::store::{Condition, Direction, Filter, OrderBy, ScrollRequest, VectorSelection, VectorStore};

/// Largest page the store is asked for at once.
const PAGE: usize = 1000;
/// Longest accepted user id, title or context id, in bytes.
const MAX_ID_BYTES: usize = 256;
const MAX_TITLE_BYTES: usize = 4096;

/// In-memory state of a conversation that has been written to in this process.
#[derive(Debug)]
struct ConversationState {
    user_id: String,
    next_index: u64,
    deleted: bool,
}

type StateSlot = Arc<tokio::sync::Mutex<Option<ConversationState>>>;

/// Conversations and messages of every user.
#[derive(Clone)]
pub struct ChatStorage {
    store: Arc<dyn VectorStore>,
    sealer: Arc<Sealer>,
    keywords: Arc<KeywordEncoder>,
    dense: Option<Arc<DenseSpace>>,
    indexer: Option<Arc<DenseIndexer>>,
    max_message_bytes: usize,
    states: Arc<Mutex<HashMap<String, StateSlot>>>,
}

impl std::fmt::Debug for ChatStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStorage")
            .field("store", &self.store.to_string())
            .finish_non_exhaustive()
    }
}

pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> StorageError {
    StorageError::InvalidInput {
        field,
        reason: reason.into(),
    }
}

pub(crate) fn check_id(field: &'static str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(invalid(field, "is empty"));
    }
    if value.len() > MAX_ID_BYTES {
        return Err(invalid(field, format!("is longer than {MAX_ID_BYTES} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "contains control characters"));
    }
    Ok(())
}

pub(crate) fn check_title(title: &str) -> Result<()> {
    if title.len() > MAX_TITLE_BYTES {
        return Err(invalid("title", format!("is longer than {MAX_TITLE_BYTES} bytes")));
    }
    Ok(())
}

impl ChatStorage {
    /// Open the chat collections. With a dense space, its vector slot is added and the
    /// background indexer starts (unless `start_indexer` is false, as for `reindex`).
    pub(crate) async fn open(
        store: Arc<dyn VectorStore>,
        sealer: Arc<Sealer>,
        keywords: Arc<KeywordEncoder>,
        dense: Option<Arc<DenseSpace>>,
        max_message_bytes: usize,
        start_indexer: bool,
    ) -> Result<Self> {
        store.ensure_collection(&schema::conversations_spec()).await?;
        store
            .ensure_collection(&schema::messages_spec(dense.as_ref().map(|d| d.spec())))
            .await?;
        let indexer = dense.as_ref().map(|space| {
            Arc::new(DenseIndexer::new(
                store.clone(),
                sealer.clone(),
                space.clone(),
                start_indexer,
            ))
        });
        Ok(ChatStorage {
            store,
            sealer,
            keywords,
            dense,
            indexer,
            max_message_bytes,
            states: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// True when an embedder is configured (semantic and hybrid search work).
    pub fn semantic_enabled(&self) -> bool {
        self.dense.is_some()
    }

    /// The embedding model in use, if any.
    pub fn embedding_model(&self) -> Option<&str> {
        self.dense.as_ref().map(|d| d.model_id())
    }

    /// Wait until every message stored so far has its dense vector (no-op without an embedder).
    ///
    /// # Errors
    /// [`StorageError::Embedding`] when the embedder fails (the worker keeps retrying).
    pub async fn wait_for_index(&self) -> Result<()> {
        match &self.indexer {
            Some(indexer) => indexer.wait().await,
            None => Ok(()),
        }
    }

    /// Messages still waiting for a dense vector (0 without an embedder).
    ///
    /// # Errors
    /// Store errors.
    pub async fn pending_embeddings(&self) -> Result<u64> {
        match &self.indexer {
            Some(indexer) => indexer.pending(None).await,
            None => Ok(0),
        }
    }

    /// Messages of `user_id` still waiting for a dense vector: what semantic search cannot
    /// find yet. Free (no store call) while the background indexer is idle.
    ///
    /// # Errors
    /// Store errors.
    pub(crate) async fn pending_embeddings_of(&self, user_id: &str) -> Result<u64> {
        match &self.indexer {
            Some(indexer) if !indexer.idle() => {
                indexer
                    .pending(Some(Filter::default().and(msg_eq(MF::UserId, user_id))))
                    .await
            }
            _ => Ok(0),
        }
    }

    /// Hold the background indexer while a bulk import writes (it embeds the import's
    /// messages afterwards, see [`ChatStorage::import_conversation`]).
    pub(crate) fn pause_indexing(&self) -> Option<IndexingPause> {
        self.indexer.as_ref().map(|i| i.pause())
    }

    /// Embed every pending message now, reporting `(done, total)`; used by `reindex`.
    ///
    /// # Errors
    /// Store, crypto and embedding errors.
    pub async fn embed_pending(&self, progress: crate::progress::ProgressFn<'_>) -> Result<u64> {
        match &self.indexer {
            Some(indexer) => indexer.catch_up(progress).await,
            None => Ok(0),
        }
    }

    /// Drain the background indexer and stop it.
    pub(crate) async fn shutdown(&self) {
        if let Some(indexer) = &self.indexer {
            indexer.shutdown().await;
        }
    }

    fn queue_for_embedding(&self, ids: impl IntoIterator<Item = uuid::Uuid>) {
        if let Some(indexer) = &self.indexer {
            indexer.enqueue(ids);
        }
    }

    /// Have the background indexer look for messages without a vector (after a bulk write).
    fn rescan_for_embedding(&self) {
        if let Some(indexer) = &self.indexer {
            indexer.rescan();
        }
    }

    fn slot(&self, context_id: &str) -> StateSlot {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        states.entry(context_id.to_string()).or_default().clone()
    }

    /// Create a conversation and return its context id (a new UUID).
    ///
    /// # Errors
    /// [`StorageError::InvalidInput`] for an empty or oversized user id or title; store errors.
    pub async fn create_conversation(&self, user_id: &str, title: &str, metadata: Value) -> Result<String> {
        check_id("user_id", user_id)?;
        check_title(title)?;
        let now = now_ms();
        let conversation = Conversation {
            context_id: uuid::Uuid::new_v4().to_string(),
            user_id: user_id.to_string(),
            title: title.to_string(),
            metadata,
            created_at: now,
            updated_at: now,
            message_count: 0,
            status: ConversationStatus::Active,
        };
        self.put_conversation(&conversation).await?;
        Ok(conversation.context_id)
    }

    /// Store a whole conversation record (used by create and by importers).
    pub(crate) async fn put_conversation(&self, conversation: &Conversation) -> Result<()> {
        let point = schema::conversation_to_point(conversation, &self.sealer)?;
        self.store.upsert(CONVERSATIONS, vec![point]).await?;
        Ok(())
    }

    /// One conversation.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] for an unknown id; crypto errors if its sealed fields fail.
    pub async fn get_conversation(&self, context_id: &str) -> Result<Conversation> {
        check_id("context_id", context_id)?;
        let id = schema::conversation_point_id(context_id);
        let records = self
            .store
            .retrieve(CONVERSATIONS, vec![id], VectorSelection::None)
            .await?;
        let record = records.first().ok_or_else(|| StorageError::NotFound {
            what: "conversation",
            id: context_id.to_string(),
        })?;
        schema::conversation_from_record(record, &self.sealer)
    }

    /// A user's conversations, newest activity first, `limit` per page.
    ///
    /// `status = None` lists both active and archived ones. Pass the returned cursor to continue.
    ///
    /// # Errors
    /// [`StorageError::InvalidInput`] for a malformed cursor; store and crypto errors.
    pub async fn list_conversations(
        &self,
        user_id: &str,
        status: Option<ConversationStatus>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<ConversationPage> {
        check_id("user_id", user_id)?;
        let limit = limit.clamp(1, PAGE);
        let mut filter = Filter::must(conv_eq(CF::UserId, user_id));
        if let Some(status) = status {
            filter = filter.and(conv_eq(CF::Status, status.as_str()));
        }
        let mut start_from = None;
        if let Some(cursor) = cursor {
            let (ts, seen) = parse_cursor(cursor)?;
            start_from = Some(ts as f64);
            if !seen.is_empty() {
                filter = filter.and_not(Condition::HasId(seen));
            }
        }
        let page = self
            .store
            .scroll(
                CONVERSATIONS,
                ScrollRequest {
                    filter: Some(filter),
                    order_by: Some(OrderBy {
                        field: CF::UpdatedAt.as_str().into(),
                        direction: Direction::Desc,
                        start_from,
                    }),
                    limit: limit + 1,
                    ..ScrollRequest::default()
                },
            )
            .await?;
        let more = page.records.len() > limit;
        let conversations = page
            .records
            .iter()
            .take(limit)
            .map(|r| schema::conversation_from_record(r, &self.sealer))
            .collect::<Result<Vec<_>>>()?;
        let next_cursor = if more {
            conversations.last().map(|last| make_cursor(last, &conversations))
        } else {
            None
        };
        Ok(ConversationPage {
            conversations,
            next_cursor,
        })
    }

    /// Every conversation of a user (active and archived), newest activity first.
    ///
    /// # Errors
    /// Store and crypto errors.
    #[doc(alias = "get_all_contexts")]
    pub async fn all_conversations(&self, user_id: &str) -> Result<Vec<Conversation>> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.list_conversations(user_id, None, PAGE, cursor.as_deref()).await?;
            all.extend(page.conversations);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(all),
            }
        }
    }

    /// Change a conversation's title, metadata or status.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] for an unknown id; [`StorageError::InvalidInput`] for a bad title.
    #[doc(alias = "update_context")]
    pub async fn update_conversation(&self, context_id: &str, update: ConversationUpdate) -> Result<Conversation> {
        let slot = self.slot(context_id);
        let guard = slot.lock().await;
        if guard.as_ref().is_some_and(|s| s.deleted) {
            return Err(not_found(context_id));
        }
        let mut conversation = self.get_conversation(context_id).await?;
        let mut payload = crate::store::Payload::new();
        if update.title.is_some() || update.metadata.is_some() {
            // Title and metadata are sealed as one write (bound to one seal set), so an older
            // value of either cannot be put back alone.
            if let Some(title) = update.title {
                check_title(&title)?;
                conversation.title = title;
            }
            if let Some(metadata) = update.metadata {
                conversation.metadata = metadata;
            }
            payload.extend(schema::seal_conversation_fields(
                context_id,
                &conversation.user_id,
                &conversation.title,
                &conversation.metadata,
                &self.sealer,
            )?);
        }
        if let Some(status) = update.status {
            payload.insert(CF::Status.as_str().into(), json!(status.as_str()));
            conversation.status = status;
        }
        if !payload.is_empty() {
            let now = now_ms();
            payload.insert(CF::UpdatedAt.as_str().into(), json!(now));
            conversation.updated_at = now;
            let id = schema::conversation_point_id(context_id);
            self.store.set_payload(CONVERSATIONS, vec![id], payload).await?;
        }
        Ok(conversation)
    }

    /// Append a message; returns it with its `message_index` and `created_at`.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] for an unknown conversation; [`StorageError::InvalidInput`]
    /// for content over the size limit; store errors (nothing is half-written: the message is
    /// one point, and the conversation's count is recovered from the messages on restart).
    pub async fn append(&self, context_id: &str, message: NewMessage) -> Result<Message> {
        check_id("context_id", context_id)?;
        if message.content.len() > self.max_message_bytes {
            return Err(invalid(
                "content",
                format!(
                    "is {} bytes; the limit is {} (chat.max_message_bytes)",
                    message.content.len(),
                    self.max_message_bytes
                ),
            ));
        }
        let slot = self.slot(context_id);
        let mut guard = slot.lock().await;
        if guard.is_none() {
            *guard = Some(self.load_state(context_id).await?);
        }
        let Some(state) = guard.as_mut() else {
            return Err(not_found(context_id));
        };
        if state.deleted {
            return Err(not_found(context_id));
        }
        let created_at = now_ms();
        let keywords = self.keywords.document(&message.content);
        // Claim the next index: its point id is derived from it, and only one writer (of any
        // process sharing the store) can insert a given id. A loser moves past every index
        // already taken and tries again.
        let stored = loop {
            let candidate = Message {
                id: schema::message_point_id(context_id, state.next_index),
                context_id: context_id.to_string(),
                user_id: state.user_id.clone(),
                message_index: state.next_index,
                role: message.role,
                content: message.content.clone(),
                metadata: message.metadata.clone(),
                created_at,
            };
            let point = schema::message_to_point(&candidate, keywords.clone(), &self.sealer)?;
            if self.store.insert_if_absent(MESSAGES, point).await? {
                break candidate;
            }
            let taken = self.last_index(context_id).await?.map_or(0, |i| i + 1);
            tracing::debug!(
                context_id,
                index = state.next_index,
                next = taken,
                "index taken by another writer"
            );
            state.next_index = taken.max(state.next_index + 1);
        };
        state.next_index += 1;
        self.queue_for_embedding([stored.id]);
        // The message is stored and journaled: it is acknowledged even if the conversation's
        // summary cannot be updated now; the next `load_state` repairs count and time from
        // the messages themselves.
        if let Err(e) = self
            .advance_conversation(context_id, state.next_index, stored.created_at)
            .await
        {
            tracing::warn!(context_id, error = %e, "message stored; conversation summary left for repair");
        }
        Ok(stored)
    }

    /// Index of the conversation's last stored message.
    async fn last_index(&self, context_id: &str) -> Result<Option<u64>> {
        let last = self
            .store
            .scroll(MESSAGES, in_index_order(context_id, Direction::Desc, None, 1))
            .await?;
        Ok(last
            .records
            .first()
            .and_then(|r| r.payload.get(MF::MessageIndex.as_str()))
            .and_then(Value::as_u64))
    }

    /// Raise the conversation's count and time after an append; a writer that already raised
    /// them further (another process) is not undone: compare-and-set on the count.
    async fn advance_conversation(&self, context_id: &str, message_count: u64, updated_at: i64) -> Result<()> {
        let mut payload = crate::store::Payload::new();
        payload.insert(CF::UpdatedAt.as_str().into(), json!(updated_at));
        payload.insert(CF::MessageCount.as_str().into(), json!(message_count));
        let behind =
            Filter::must(Condition::HasId(vec![schema::conversation_point_id(context_id)])).and(Condition::Range(
                CF::MessageCount.as_str().into(),
                crate::store::Range {
                    lt: Some(message_count as f64),
                    ..crate::store::Range::default()
                },
            ));
        self.store.set_payload_by_filter(CONVERSATIONS, behind, payload).await?;
        Ok(())
    }

    async fn touch_conversation(&self, context_id: &str, message_count: u64, updated_at: i64) -> Result<()> {
        let mut payload = crate::store::Payload::new();
        payload.insert(CF::UpdatedAt.as_str().into(), json!(updated_at));
        payload.insert(CF::MessageCount.as_str().into(), json!(message_count));
        self.store
            .set_payload(CONVERSATIONS, vec![schema::conversation_point_id(context_id)], payload)
            .await?;
        Ok(())
    }

    async fn load_state(&self, context_id: &str) -> Result<ConversationState> {
        let conversation = self.get_conversation(context_id).await?;
        let last = self
            .store
            .scroll(MESSAGES, in_index_order(context_id, Direction::Desc, None, 1))
            .await?;
        let field = |key: MF| last.records.first().and_then(|r| r.payload.get(key.as_str()));
        let next_index = field(MF::MessageIndex).and_then(Value::as_u64).map_or(0, |i| i + 1);
        let last_at = field(MF::CreatedAt)
            .and_then(Value::as_i64)
            .unwrap_or(conversation.updated_at);
        if next_index != conversation.message_count || last_at > conversation.updated_at {
            tracing::warn!(
                context_id,
                stored = conversation.message_count,
                recovered = next_index,
                "conversation summary repaired from its messages"
            );
            self.touch_conversation(context_id, next_index, last_at.max(conversation.updated_at))
                .await?;
        }
        Ok(ConversationState {
            user_id: conversation.user_id,
            next_index,
            deleted: false,
        })
    }

    /// Messages of a conversation in chronological order.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] for an unknown conversation; store and crypto errors.
    pub async fn get_history(&self, context_id: &str, range: HistoryRange) -> Result<Vec<Message>> {
        check_id("context_id", context_id)?;
        let (direction, start_from, limit) = match range {
            HistoryRange::All => return self.full_history(context_id).await,
            HistoryRange::Last(n) => (Direction::Desc, None, n),
            // `start_from` is inclusive: the page before index i starts at i - 1.
            HistoryRange::Before { index, limit } => match index.checked_sub(1) {
                Some(start) => (Direction::Desc, Some(start), limit),
                None => (Direction::Desc, None, 0),
            },
            HistoryRange::After { index, limit } => (Direction::Asc, Some(index.saturating_add(1)), limit),
        };
        if limit == 0 {
            self.ensure_exists(context_id).await?;
            return Ok(Vec::new());
        }
        let request = in_index_order(context_id, direction, start_from, limit.min(PAGE * 10));
        let page = self.store.scroll(MESSAGES, request).await?;
        if page.records.is_empty() {
            self.ensure_exists(context_id).await?;
        }
        let mut messages = page
            .records
            .iter()
            .map(|r| schema::message_from_record(r, &self.sealer))
            .collect::<Result<Vec<_>>>()?;
        if direction == Direction::Desc {
            messages.reverse();
        }
        Ok(messages)
    }

    async fn full_history(&self, context_id: &str) -> Result<Vec<Message>> {
        let mut all = Vec::new();
        let mut next = 0;
        loop {
            let page = self
                .store
                .scroll(MESSAGES, in_index_order(context_id, Direction::Asc, Some(next), PAGE))
                .await?;
            let full = page.records.len() == PAGE;
            for r in &page.records {
                let m = schema::message_from_record(r, &self.sealer)?;
                next = m.message_index + 1;
                all.push(m);
            }
            if !full {
                break;
            }
        }
        if all.is_empty() {
            self.ensure_exists(context_id).await?;
        }
        Ok(all)
    }

    async fn ensure_exists(&self, context_id: &str) -> Result<()> {
        self.get_conversation(context_id).await.map(|_| ())
    }

    /// Hard-delete a conversation and all its messages.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] when neither the conversation nor any of its messages exist.
    #[doc(alias = "delete")]
    pub async fn delete_conversation(&self, context_id: &str) -> Result<DeleteReceipt> {
        check_id("context_id", context_id)?;
        let slot = self.slot(context_id);
        let mut guard = slot.lock().await;
        let messages_filter = Filter::must(msg_eq(MF::ContextId, context_id));
        let messages = self.store.count(MESSAGES, Some(messages_filter.clone())).await?;
        let conversation = match self.get_conversation(context_id).await {
            Ok(c) => Some(c),
            Err(StorageError::NotFound { .. }) if messages > 0 => None,
            Err(e) => return Err(e),
        };
        // Messages first: a crash in between leaves a conversation whose count is repaired on
        // the next append, never messages that no conversation points to.
        self.store.delete_by_filter(MESSAGES, messages_filter).await?;
        self.store
            .delete(CONVERSATIONS, vec![schema::conversation_point_id(context_id)])
            .await?;
        let user_id = conversation.map(|c| c.user_id).unwrap_or_default();
        *guard = Some(ConversationState {
            user_id: user_id.clone(),
            next_index: 0,
            deleted: true,
        });
        Ok(DeleteReceipt {
            user_id,
            conversations: 1,
            messages,
            deleted_at: now_ms(),
        })
    }

    /// Hard-delete everything a user owns; returns what was removed.
    ///
    /// # Errors
    /// Store errors.
    pub async fn erase_user(&self, user_id: &str) -> Result<DeleteReceipt> {
        check_id("user_id", user_id)?;
        let contexts: Vec<String> = self
            .all_conversations(user_id)
            .await?
            .into_iter()
            .map(|c| c.context_id)
            .collect();
        let slots: Vec<StateSlot> = contexts.iter().map(|c| self.slot(c)).collect();
        let mut guards = Vec::with_capacity(slots.len());
        for slot in &slots {
            guards.push(slot.lock().await);
        }
        let conv_filter = Filter::must(conv_eq(CF::UserId, user_id));
        let msg_filter = Filter::must(msg_eq(MF::UserId, user_id));
        let conversations = self.store.count(CONVERSATIONS, Some(conv_filter.clone())).await?;
        let messages = self.store.count(MESSAGES, Some(msg_filter.clone())).await?;
        self.store.delete_by_filter(MESSAGES, msg_filter).await?;
        self.store.delete_by_filter(CONVERSATIONS, conv_filter).await?;
        for guard in &mut guards {
            **guard = Some(ConversationState {
                user_id: user_id.to_string(),
                next_index: 0,
                deleted: true,
            });
        }
        tracing::info!(conversations, messages, "user erased");
        Ok(DeleteReceipt {
            user_id: user_id.to_string(),
            conversations,
            messages,
            deleted_at: now_ms(),
        })
    }
}

/// A scroll over one conversation's messages in index order, from `start_from` (inclusive).
fn in_index_order(context_id: &str, direction: Direction, start_from: Option<u64>, limit: usize) -> ScrollRequest {
    ScrollRequest {
        filter: Some(Filter::must(msg_eq(MF::ContextId, context_id))),
        order_by: Some(OrderBy {
            field: MF::MessageIndex.as_str().into(),
            direction,
            start_from: start_from.map(|i| i as f64),
        }),
        limit,
        ..ScrollRequest::default()
    }
}

fn not_found(context_id: &str) -> StorageError {
    StorageError::NotFound {
        what: "conversation",
        id: context_id.to_string(),
    }
}

/// Cursor = `<updated_at>:<point ids already returned at that timestamp>`.
fn make_cursor(last: &Conversation, page: &[Conversation]) -> String {
    let seen: Vec<String> = page
        .iter()
        .filter(|c| c.updated_at == last.updated_at)
        .map(|c| schema::conversation_point_id(&c.context_id).simple().to_string())
        .collect();
    format!("{}:{}", last.updated_at, seen.join(","))
}

fn parse_cursor(cursor: &str) -> Result<(i64, Vec<uuid::Uuid>)> {
    let bad = || invalid("cursor", "is not a cursor returned by list_conversations");
    let (ts, ids) = cursor.split_once(':').ok_or_else(bad)?;
    let ts: i64 = ts.parse().map_err(|_| bad())?;
    let ids = ids
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| uuid::Uuid::parse_str(s).map_err(|_| bad()))
        .collect::<Result<Vec<_>>>()?;
    Ok((ts, ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_rejects_garbage() {
        let id = uuid::Uuid::new_v4();
        let (ts, ids) = parse_cursor(&format!("42:{}", id.simple())).unwrap();
        assert_eq!((ts, ids), (42, vec![id]));
        assert!(parse_cursor("nope").is_err());
        assert!(parse_cursor("x:").is_err());
    }
}
