//! `chat new|add|history|list|search|context|rename|archive|delete|erase-user`.

use std::io::Read as _;

use anyhow::Context as _;
use cloudops_storage_service::{
    ArchivedFilter, ContextOptions, ConversationStatus, ConversationUpdate, HistoryRange, Message, NewMessage, Role,
    SearchOptions, SearchResults,
};
use cloudops_storage_service::{StorageConfig, StorageService};
use serde_json::json;

use crate::args::ChatCommand;
use crate::output::{self, Output};

pub(crate) async fn run(cmd: &ChatCommand, config: StorageConfig, out: Output) -> anyhow::Result<()> {
    // Read and validate local input before the store is touched.
    let stdin_text = match cmd {
        ChatCommand::Add { stdin: true, .. } => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the message from stdin")?;
            Some(text)
        }
        _ => None,
    };
    let metadata = match cmd {
        ChatCommand::Add { metadata: Some(m), .. } => {
            let value: serde_json::Value = serde_json::from_str(m).context("--metadata is not valid JSON")?;
            anyhow::ensure!(value.is_object(), "--metadata must be a JSON object");
            Some(value)
        }
        _ => None,
    };
    let service = StorageService::open(config).await?;
    let result = execute(cmd, &service, stdin_text, metadata, out).await;
    service.shutdown().await?;
    result
}

async fn execute(
    cmd: &ChatCommand,
    service: &StorageService,
    stdin_text: Option<String>,
    metadata: Option<serde_json::Value>,
    out: Output,
) -> anyhow::Result<()> {
    let chat = &service.chat;
    match cmd {
        ChatCommand::New { user, title } => {
            let context_id = chat.create_conversation(user, title, json!({})).await?;
            out.emit(
                &json!({ "context_id": context_id, "user_id": user, "title": title }),
                |_| println!("{context_id}"),
            )
        }
        ChatCommand::Add {
            context_id, role, text, ..
        } => {
            let role: Role = role.parse().map_err(anyhow::Error::msg)?;
            let content = stdin_text.or_else(|| text.clone()).unwrap_or_default();
            let message = chat
                .append(
                    context_id,
                    NewMessage {
                        role,
                        content,
                        metadata,
                    },
                )
                .await?;
            out.emit(&message, |m| {
                println!("appended message {} ({}) to {}", m.message_index, m.role, m.context_id)
            })
        }
        ChatCommand::History {
            context_id,
            last,
            before,
            after,
            limit,
        } => {
            let range = match (last, before, after) {
                (Some(n), _, _) => HistoryRange::Last(*n),
                (_, Some(index), _) => HistoryRange::Before {
                    index: *index,
                    limit: *limit,
                },
                (_, _, Some(index)) => HistoryRange::After {
                    index: *index,
                    limit: *limit,
                },
                _ => HistoryRange::All,
            };
            let messages = chat.get_history(context_id, range).await?;
            out.emit(&messages, |ms| print_messages(ms))
        }
        ChatCommand::List {
            user,
            archived,
            all,
            limit,
            cursor,
        } => {
            let status = match (archived, all) {
                (_, true) => None,
                (true, _) => Some(ConversationStatus::Archived),
                _ => Some(ConversationStatus::Active),
            };
            let page = chat.list_conversations(user, status, *limit, cursor.as_deref()).await?;
            out.emit(&page, |p| {
                let rows = p.conversations.iter().map(|c| {
                    vec![
                        c.context_id.clone(),
                        output::time(c.updated_at),
                        c.message_count.to_string(),
                        c.status.as_str().to_string(),
                        output::snippet(&c.title, 60),
                    ]
                });
                println!(
                    "{}",
                    output::table(&["CONTEXT ID", "LAST ACTIVITY", "MSGS", "STATUS", "TITLE"], rows)
                );
                if let Some(next) = &p.next_cursor {
                    println!("more: --cursor {next}");
                }
            })
        }
        ChatCommand::Rename { context_id, title } => {
            let update = ConversationUpdate {
                title: Some(title.clone()),
                ..ConversationUpdate::default()
            };
            let c = chat.update_conversation(context_id, update).await?;
            out.emit(&c, |c| println!("renamed {} to {:?}", c.context_id, c.title))
        }
        ChatCommand::Archive { context_id, undo } => {
            let status = if *undo {
                ConversationStatus::Active
            } else {
                ConversationStatus::Archived
            };
            let update = ConversationUpdate {
                status: Some(status),
                ..ConversationUpdate::default()
            };
            let c = chat.update_conversation(context_id, update).await?;
            out.emit(&c, |c| println!("{} is now {}", c.context_id, c.status.as_str()))
        }
        ChatCommand::Delete { context_id } => {
            let receipt = chat.delete_conversation(context_id).await?;
            out.emit(&receipt, |r| {
                println!("deleted conversation {context_id} and {} messages", r.messages)
            })
        }
        ChatCommand::Search {
            user,
            query,
            mode,
            limit,
            role,
            since,
            until,
            archived,
        } => {
            let options = SearchOptions {
                mode: mode.parse().map_err(anyhow::Error::msg)?,
                roles: role
                    .iter()
                    .map(|r| r.parse::<Role>().map_err(anyhow::Error::msg))
                    .collect::<anyhow::Result<_>>()?,
                since: since.as_deref().map(parse_time).transpose().context("--since")?,
                until: until.as_deref().map(parse_time).transpose().context("--until")?,
                archived: match archived.as_str() {
                    "exclude" => ArchivedFilter::Exclude,
                    "only" => ArchivedFilter::Only,
                    _ => ArchivedFilter::Include,
                },
                limit: *limit,
                exclude_context: None,
            };
            let results = chat.search_conversations(user, query, &options).await?;
            out.emit(&results, print_search)
        }
        ChatCommand::Context {
            user,
            current,
            prompt,
            max_pairs,
            token_budget,
        } => {
            let context = chat
                .context_for_prompt(
                    user,
                    current,
                    prompt,
                    ContextOptions {
                        max_pairs: *max_pairs,
                        token_budget: *token_budget,
                    },
                )
                .await?;
            let rendered = context.render();
            out.emit(&json!({ "context": context, "rendered": rendered }), |_| {
                if rendered.is_empty() {
                    println!("(no earlier conversations)");
                } else {
                    if context.fallback {
                        println!("(nothing relevant found: the most recent pairs)");
                    }
                    print!("{rendered}");
                }
            })
        }
        ChatCommand::EraseUser { user } => {
            let receipt = chat.erase_user(user).await?;
            out.emit(&receipt, |r| {
                println!(
                    "erased user {}: {} conversations, {} messages at {}",
                    r.user_id,
                    r.conversations,
                    r.messages,
                    output::time(r.deleted_at)
                )
            })
        }
    }
}

fn print_messages(messages: &[Message]) {
    if messages.is_empty() {
        println!("(no messages)");
    }
    for m in messages {
        println!(
            "#{:<4} {}  {:<9} {}",
            m.message_index,
            output::time(m.created_at),
            m.role.as_str(),
            m.content
        );
    }
}

fn parse_time(text: &str) -> anyhow::Result<i64> {
    output::parse_time(text)
        .ok_or_else(|| anyhow::anyhow!("`{text}` is neither RFC 3339 UTC (2026-11-26T08:00:00Z) nor unix milliseconds"))
}

fn print_search(results: &SearchResults) {
    if results.pending_embeddings > 0 {
        eprintln!(
            "note: {} of this user's messages are still waiting for semantic indexing (embedded in the \
             background); {} search covers the rest, keyword search covers all",
            results.pending_embeddings,
            mode_name(results)
        );
    }
    if results.conversations.is_empty() {
        println!("no matches ({} search)", mode_name(results));
        return;
    }
    println!(
        "{} search: {} conversation(s)",
        mode_name(results),
        results.conversations.len()
    );
    for c in &results.conversations {
        println!(
            "\n{:.4}  {}  {}  ({})",
            c.score,
            c.context_id,
            if c.title.is_empty() { "untitled" } else { &c.title },
            output::time(c.updated_at)
        );
        for m in &c.messages {
            println!(
                "    #{:<4} {:<9} {:.4}  {}",
                m.message_index, m.role, m.score, m.snippet
            );
        }
    }
}

fn mode_name(results: &SearchResults) -> &'static str {
    match results.mode {
        cloudops_storage_service::SearchMode::Keyword => "keyword",
        cloudops_storage_service::SearchMode::Semantic => "semantic",
        cloudops_storage_service::SearchMode::Hybrid => "hybrid",
    }
}
