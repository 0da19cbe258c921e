//! The commands: thin wrappers over the library, arguments in camelCase from JavaScript
//! (Tauri's convention), results and errors as the library serialises them.

use cloudops_storage_service::{
    Conversation, ConversationPage, ConversationStatus, Health, HistoryRange, Message, NewMessage,
};
use tauri::State;

use crate::error::Result;
use crate::state::Storage;

/// Largest page `list_conversations` returns.
const MAX_PAGE: usize = 500;

/// Create a conversation; returns it.
#[tauri::command]
pub(crate) async fn create_conversation(
    storage: State<'_, Storage>,
    user_id: String,
    title: String,
    metadata: Option<serde_json::Value>,
) -> Result<Conversation> {
    let service = storage.service().await?;
    let id = service
        .chat
        .create_conversation(&user_id, &title, metadata.unwrap_or_else(|| serde_json::json!({})))
        .await?;
    Ok(service.chat.get_conversation(&id).await?)
}

/// Append a message; returns it with its index and time.
#[tauri::command]
pub(crate) async fn append(storage: State<'_, Storage>, context_id: String, message: NewMessage) -> Result<Message> {
    Ok(storage.service().await?.chat.append(&context_id, message).await?)
}

/// Messages of a conversation in order (`"all"`, `{"last": 5}`, `{"before": {...}}`, ...).
#[tauri::command]
pub(crate) async fn get_history(
    storage: State<'_, Storage>,
    context_id: String,
    range: Option<HistoryRange>,
) -> Result<Vec<Message>> {
    let range = range.unwrap_or(HistoryRange::All);
    Ok(storage.service().await?.chat.get_history(&context_id, range).await?)
}

/// A user's conversations, newest activity first, one page at a time.
#[tauri::command]
pub(crate) async fn list_conversations(
    storage: State<'_, Storage>,
    user_id: String,
    status: Option<ConversationStatus>,
    limit: Option<usize>,
    cursor: Option<String>,
) -> Result<ConversationPage> {
    let limit = limit.unwrap_or(50).clamp(1, MAX_PAGE);
    Ok(storage
        .service()
        .await?
        .chat
        .list_conversations(&user_id, status, limit, cursor.as_deref())
        .await?)
}

/// The store's health (what `status` prints).
#[tauri::command]
pub(crate) async fn health(storage: State<'_, Storage>) -> Result<Health> {
    Ok(storage.service().await?.health().await?)
}
