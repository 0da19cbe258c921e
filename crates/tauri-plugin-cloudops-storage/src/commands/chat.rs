//! Conversations and messages.

use cloudops_storage_service::{
    ContextOptions, Conversation, ConversationPage, ConversationStatus, ConversationUpdate, DeleteReceipt,
    HistoryRange, Message, NewMessage, NodeImportReport, Progress, PromptContext, SearchOptions, SearchResults,
};
use tauri::ipc::Channel;
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

/// Messages of a conversation in order (`"all"` by default, `{"last": 5}`, `{"before": {...}}`).
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

/// Change a conversation's title.
#[tauri::command]
pub(crate) async fn rename(storage: State<'_, Storage>, context_id: String, title: String) -> Result<Conversation> {
    let update = ConversationUpdate {
        title: Some(title),
        ..ConversationUpdate::default()
    };
    update_conversation(&storage, &context_id, update).await
}

/// Archive a conversation (or bring it back with `archived: false`).
#[tauri::command]
pub(crate) async fn archive(
    storage: State<'_, Storage>,
    context_id: String,
    archived: Option<bool>,
) -> Result<Conversation> {
    let status = if archived.unwrap_or(true) {
        ConversationStatus::Archived
    } else {
        ConversationStatus::Active
    };
    let update = ConversationUpdate {
        status: Some(status),
        ..ConversationUpdate::default()
    };
    update_conversation(&storage, &context_id, update).await
}

async fn update_conversation(storage: &Storage, context_id: &str, update: ConversationUpdate) -> Result<Conversation> {
    Ok(storage
        .service()
        .await?
        .chat
        .update_conversation(context_id, update)
        .await?)
}

/// Delete a conversation and its messages.
#[tauri::command]
pub(crate) async fn delete_conversation(storage: State<'_, Storage>, context_id: String) -> Result<DeleteReceipt> {
    Ok(storage.service().await?.chat.delete_conversation(&context_id).await?)
}

/// Delete everything of a user (a separate permission: `allow-erase-user`).
#[tauri::command]
pub(crate) async fn erase_user(storage: State<'_, Storage>, user_id: String) -> Result<DeleteReceipt> {
    Ok(storage.service().await?.chat.erase_user(&user_id).await?)
}

/// A user's conversations matching `query`, best first, with matching messages.
#[tauri::command]
pub(crate) async fn search_conversations(
    storage: State<'_, Storage>,
    user_id: String,
    query: String,
    options: Option<SearchOptions>,
) -> Result<SearchResults> {
    let options = options.unwrap_or_default();
    Ok(storage
        .service()
        .await?
        .chat
        .search_conversations(&user_id, &query, &options)
        .await?)
}

/// Relevant user→assistant pairs from the user's other conversations, for the next prompt.
#[tauri::command]
pub(crate) async fn context_for_prompt(
    storage: State<'_, Storage>,
    user_id: String,
    current_context_id: String,
    prompt: String,
    options: Option<ContextOptions>,
) -> Result<PromptContext> {
    let options = options.unwrap_or_default();
    Ok(storage
        .service()
        .await?
        .chat
        .context_for_prompt(&user_id, &current_context_id, &prompt, options)
        .await?)
}

/// Import the old Node.js module's `chat-data/contexts/*.json` files (a folder under the
/// app's import roots).
#[tauri::command]
pub(crate) async fn import_node(
    storage: State<'_, Storage>,
    scope: State<'_, crate::scope::ImportScope>,
    chat_data_dir: std::path::PathBuf,
    user: Option<String>,
    on_progress: Channel<Progress>,
) -> Result<NodeImportReport> {
    let chat_data_dir = scope.check(&chat_data_dir, crate::scope::Expect::Folder)?;
    let progress = super::forward(&on_progress);
    Ok(storage
        .service()
        .await?
        .chat
        .import_node_dir(&chat_data_dir, user.as_deref(), &progress)
        .await?)
}
