//! "Relevant pairs from my earlier conversations": user→assistant pairs from a user's other
//! conversations, ranked by relevance to the next prompt with a 7-day recency decay, for the
//! prompt of the next model call. Falls back to the most recent pairs when nothing relates.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use super::schema::{self, msg_eq, MessageField as MF, CONVERSATIONS, MESSAGES};
use super::search::SearchOptions;
use super::{check_id, ChatStorage, Message, Role};
use crate::clock::now_ms;
use crate::error::Result;
use crate::search_mode::SearchMode;
use crate::store::{Condition, Direction, FieldValue, Filter, OrderBy, Range, ScrollRequest, VectorSelection};

/// Recency decay: weight = exp(-age / 7 days).
const DECAY_MS: f64 = 7.0 * 24.0 * 3600.0 * 1000.0;
/// Below this cosine a semantic-only match is unrelated (all-MiniLM-L6-v2 scale).
const MIN_SIMILARITY: f32 = 0.35;
/// Candidates examined.
const DEPTH: usize = 60;
/// Longest message text put into the context, in characters.
const MAX_MESSAGE_CHARS: usize = 1200;

/// Options of [`ChatStorage::context_for_prompt`]. From JSON, omitted fields take their
/// defaults; unknown fields are an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(default, deny_unknown_fields)]
pub struct ContextOptions {
    /// Most pairs. Default: 5 (as the Node.js module).
    pub max_pairs: usize,
    /// Most tokens of the rendered pairs (estimated at 4 characters a token). Default: 1500.
    pub token_budget: usize,
}

impl Default for ContextOptions {
    fn default() -> Self {
        ContextOptions {
            max_pairs: 5,
            token_budget: 1500,
        }
    }
}

/// One user→assistant exchange from an earlier conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct ContextPair {
    /// Conversation it came from.
    pub context_id: String,
    /// That conversation's title.
    pub title: String,
    /// The user's message id.
    pub user_message_id: uuid::Uuid,
    /// The assistant's message id.
    pub assistant_message_id: uuid::Uuid,
    /// Index of the user's message (the assistant's is the next).
    pub message_index: u64,
    /// The user's text.
    pub user: String,
    /// The assistant's text.
    pub assistant: String,
    /// When the assistant answered, unix ms.
    pub created_at: i64,
    /// Relevance to the prompt in [0, 1] (0 for fallback pairs).
    pub relevance: f32,
    /// Relevance × recency decay (recency alone for fallback pairs).
    pub score: f32,
}

/// The pairs chosen for a prompt.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct PromptContext {
    /// Pairs, best first.
    pub pairs: Vec<ContextPair>,
    /// True when nothing was relevant and these are simply the most recent pairs.
    pub fallback: bool,
    /// Estimated tokens of [`PromptContext::render`].
    pub estimated_tokens: usize,
}

impl PromptContext {
    /// The prompt block, or an empty string when there are no pairs.
    pub fn render(&self) -> String {
        if self.pairs.is_empty() {
            return String::new();
        }
        let mut out = String::from("Context from previous conversations:\n");
        for (i, p) in self.pairs.iter().enumerate() {
            let title = if p.title.is_empty() { "untitled" } else { &p.title };
            out.push_str(&format!(
                "\n[{}] \"{}\" ({})\nUser: {}\nAssistant: {}\n",
                i + 1,
                title,
                crate::clock::format_utc(p.created_at).get(..10).unwrap_or_default(),
                p.user.trim(),
                p.assistant.trim()
            ));
        }
        out
    }
}

fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4)
}

fn clip(text: &str) -> String {
    if text.chars().count() <= MAX_MESSAGE_CHARS {
        return text.to_string();
    }
    let mut out: String = text.chars().take(MAX_MESSAGE_CHARS).collect();
    out.push('…');
    out
}

fn decay(created_at: i64, now: i64) -> f32 {
    let age = (now - created_at).max(0) as f64;
    (-age / DECAY_MS).exp() as f32
}

/// Where a relevant pair starts, how relevant it is, and its rank before its time is read.
struct Start {
    /// (conversation, index of the user's message).
    place: (String, u64),
    /// Relevance in [0, 1].
    relevance: f32,
    /// Relevance × recency of the matching message.
    rank: f32,
}

/// The pairs for the prompt: best score first (newer first on equal scores: decays of times a
/// few ms apart are equal in f32), at most `max_pairs`, skipping any that would overrun the
/// token budget; and the estimated tokens of the rendered block.
fn select(mut pairs: Vec<ContextPair>, options: ContextOptions) -> (Vec<ContextPair>, usize) {
    pairs.sort_by(|a, b| b.score.total_cmp(&a.score).then(b.created_at.cmp(&a.created_at)));
    let mut chosen = Vec::new();
    let mut tokens = estimate_tokens("Context from previous conversations:\n");
    for p in pairs {
        if chosen.len() == options.max_pairs {
            break;
        }
        let cost = estimate_tokens(&p.user) + estimate_tokens(&p.assistant) + estimate_tokens(&p.title) + 12;
        if tokens + cost > options.token_budget {
            continue;
        }
        tokens += cost;
        chosen.push(p);
    }
    (chosen, tokens)
}

impl ChatStorage {
    /// Up to `max_pairs` user→assistant pairs from the user's other conversations for `prompt`.
    ///
    /// # Errors
    /// Invalid ids; store, crypto and embedding errors.
    pub async fn context_for_prompt(
        &self,
        user_id: &str,
        current_context_id: &str,
        prompt: &str,
        options: ContextOptions,
    ) -> Result<PromptContext> {
        check_id("user_id", user_id)?;
        check_id("context_id", current_context_id)?;
        let now = now_ms();
        let starts = if prompt.trim().is_empty() {
            Vec::new()
        } else {
            self.relevant_starts(user_id, current_context_id, prompt, now).await?
        };
        // Pairs are read a window at a time, best first, until the budget's choice is full:
        // reading all 60 candidates' pairs cost more than the search that found them.
        let mut pairs = Vec::new();
        let mut chosen = (Vec::new(), 0);
        for window in starts.chunks(options.max_pairs.max(1) * 2) {
            let places: Vec<(String, u64)> = window.iter().map(|s| s.place.clone()).collect();
            for mut pair in self.pairs_at(&places).await? {
                pair.relevance = window
                    .iter()
                    .find(|s| s.place.0 == pair.context_id && s.place.1 == pair.message_index)
                    .map_or(0.0, |s| s.relevance);
                pair.score = pair.relevance * decay(pair.created_at, now);
                pairs.push(pair);
            }
            chosen = select(pairs.clone(), options);
            if chosen.0.len() == options.max_pairs {
                break;
            }
        }
        let fallback = pairs.is_empty();
        if fallback {
            chosen = select(
                self.recent_pairs(user_id, current_context_id, options.max_pairs, now)
                    .await?,
                options,
            );
        }
        let (pairs, estimated_tokens) = chosen;
        Ok(PromptContext {
            pairs,
            fallback,
            estimated_tokens,
        })
    }

    /// The places (conversation, user message index) of pairs relevant to `prompt`, best
    /// first by relevance × the recency of the message that matched (a pair's own time, its
    /// answer's, differs from it by the answer's latency: about 1e-4 of the decay per minute).
    async fn relevant_starts(&self, user_id: &str, current: &str, prompt: &str, now: i64) -> Result<Vec<Start>> {
        let options = SearchOptions {
            exclude_context: Some(current.to_string()),
            ..SearchOptions::default()
        };
        let Some(filter) = self.search_filter(user_id, &options).await? else {
            return Ok(Vec::new());
        };
        let (mode, mut candidates) = self.candidates(prompt, SearchMode::Hybrid, &filter, DEPTH).await?;
        candidates.retain(|c| c.keyword_rank.is_some() || c.similarity.is_some_and(|s| s >= MIN_SIMILARITY));
        self.load_payloads(&mut candidates, &filter).await?;
        // Relevance in [0, 1]: keyword matches by rank, semantic ones by cosine.
        let mut best: HashMap<(String, u64), Start> = HashMap::new();
        for c in &candidates {
            let keyword = c.keyword_rank.map(|r| 1.0 / (1.0 + r as f32 * 0.1));
            let semantic = c.similarity.filter(|s| *s >= MIN_SIMILARITY);
            let relevance = match (keyword, semantic) {
                (None, None) => continue,
                (k, s) => k.unwrap_or(0.0).max(s.unwrap_or(0.0)),
            };
            let ctx = c.payload.get(MF::ContextId.as_str()).and_then(Value::as_str);
            let index = c.payload.get(MF::MessageIndex.as_str()).and_then(Value::as_u64);
            let role = c.payload.get(MF::Role.as_str()).and_then(Value::as_str);
            let created_at = c
                .payload
                .get(MF::CreatedAt.as_str())
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let (Some(ctx), Some(index), Some(role)) = (ctx, index, role) else {
                continue;
            };
            let user_index = match role {
                "assistant" => match index.checked_sub(1) {
                    Some(i) => i,
                    None => continue,
                },
                _ => index,
            };
            let place = (ctx.to_string(), user_index);
            let start = best.entry(place.clone()).or_insert(Start {
                place,
                relevance: 0.0,
                rank: 0.0,
            });
            start.relevance = start.relevance.max(relevance);
            start.rank = start.rank.max(relevance * decay(created_at, now));
        }
        tracing::debug!(
            ?mode,
            candidates = candidates.len(),
            pairs = best.len(),
            "prompt context candidates"
        );
        let mut starts: Vec<Start> = best.into_values().collect();
        starts.sort_by(|a, b| b.rank.total_cmp(&a.rank).then_with(|| a.place.cmp(&b.place)));
        Ok(starts)
    }

    async fn recent_pairs(&self, user_id: &str, current: &str, max_pairs: usize, now: i64) -> Result<Vec<ContextPair>> {
        let page = self
            .store
            .scroll(
                MESSAGES,
                ScrollRequest {
                    filter: Some(
                        Filter::must(msg_eq(MF::UserId, user_id))
                            .and(msg_eq(MF::Role, Role::Assistant.as_str()))
                            .and_not(msg_eq(MF::ContextId, current)),
                    ),
                    order_by: Some(OrderBy {
                        field: MF::CreatedAt.as_str().into(),
                        direction: Direction::Desc,
                        start_from: None,
                    }),
                    limit: max_pairs * 3,
                    ..ScrollRequest::default()
                },
            )
            .await?;
        let mut starts = Vec::new();
        for r in &page.records {
            let ctx = r.payload.get(MF::ContextId.as_str()).and_then(Value::as_str);
            let index = r.payload.get(MF::MessageIndex.as_str()).and_then(Value::as_u64);
            if let (Some(ctx), Some(Some(user_index))) = (ctx, index.map(|i| i.checked_sub(1))) {
                starts.push((ctx.to_string(), user_index));
            }
        }
        let mut pairs = self.pairs_at(&starts).await?;
        for pair in &mut pairs {
            pair.score = decay(pair.created_at, now);
        }
        Ok(pairs)
    }

    /// The messages at each start and the one after it. A message's point id derives from
    /// its conversation and index, so they are read by id, with no filter for the engine to
    /// check point by point (that check was most of a filtered scroll's cost). Places whose
    /// message is not under its derived id (written before ids were derived) are read by a
    /// filtered scroll.
    async fn messages_at(&self, starts: &[(String, u64)]) -> Result<HashMap<(String, u64), Message>> {
        let mut ids: Vec<uuid::Uuid> = starts
            .iter()
            .flat_map(|(c, i)| [schema::message_point_id(c, *i), schema::message_point_id(c, i + 1)])
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let mut messages: HashMap<(String, u64), Message> = HashMap::with_capacity(ids.len());
        for record in &self.store.retrieve(MESSAGES, ids, VectorSelection::None).await? {
            let message = schema::message_from_record(record, &self.sealer)?;
            messages.insert((message.context_id.clone(), message.message_index), message);
        }
        // A message written after its predecessor got a derived id has one too, so only a
        // start missing its own message can be under old ids.
        let older: Vec<&(String, u64)> = starts.iter().filter(|s| !messages.contains_key(*s)).collect();
        if older.is_empty() {
            return Ok(messages);
        }
        let mut conversation_ids: Vec<&str> = older.iter().map(|(c, _)| c.as_str()).collect();
        conversation_ids.sort_unstable();
        conversation_ids.dedup();
        // The `must` lets the engine start from these conversations' messages (keyword index)
        // instead of testing every point of the collection against the `should` clauses.
        let mut filter = Filter::must(Condition::Any(
            MF::ContextId.as_str().into(),
            conversation_ids.iter().map(|c| FieldValue::from(*c)).collect(),
        ));
        for (context_id, user_index) in &older {
            filter.should.push(Condition::Filter(Box::new(
                Filter::must(msg_eq(MF::ContextId, context_id.as_str())).and(Condition::Range(
                    MF::MessageIndex.as_str().into(),
                    Range {
                        gte: Some(*user_index as f64),
                        lte: Some(*user_index as f64 + 1.0),
                        ..Range::default()
                    },
                )),
            )));
        }
        let page = self
            .store
            .scroll(
                MESSAGES,
                ScrollRequest {
                    filter: Some(filter),
                    limit: older.len() * 2,
                    ..ScrollRequest::default()
                },
            )
            .await?;
        for record in &page.records {
            let message = schema::message_from_record(record, &self.sealer)?;
            messages.insert((message.context_id.clone(), message.message_index), message);
        }
        Ok(messages)
    }

    /// The pairs starting at these (conversation, user message index) places, where the
    /// message there is the user's and the next one the assistant's (others are skipped), in
    /// no particular order. Two store calls whatever their number (one per pair made
    /// `context_for_prompt` take 8 ms at 60 candidates): the messages by point id, the
    /// titles by point id.
    async fn pairs_at(&self, starts: &[(String, u64)]) -> Result<Vec<ContextPair>> {
        if starts.is_empty() {
            return Ok(Vec::new());
        }
        let mut conversation_ids: Vec<&str> = starts.iter().map(|(c, _)| c.as_str()).collect();
        conversation_ids.sort_unstable();
        conversation_ids.dedup();
        let messages = self.messages_at(starts).await?;
        let titles: HashMap<String, String> = self
            .store
            .retrieve(
                CONVERSATIONS,
                conversation_ids
                    .iter()
                    .map(|c| schema::conversation_point_id(c))
                    .collect(),
                VectorSelection::None,
            )
            .await?
            .iter()
            .map(|r| schema::conversation_from_record(r, &self.sealer).map(|c| (c.context_id, c.title)))
            .collect::<Result<_>>()?;
        let mut pairs = Vec::with_capacity(starts.len());
        for (context_id, user_index) in starts {
            let user = messages.get(&(context_id.clone(), *user_index));
            let assistant = messages.get(&(context_id.clone(), user_index + 1));
            let (Some(user), Some(assistant)) = (user, assistant) else {
                continue;
            };
            if user.role != Role::User || assistant.role != Role::Assistant {
                continue;
            }
            pairs.push(ContextPair {
                context_id: context_id.clone(),
                title: titles.get(context_id).cloned().unwrap_or_default(),
                user_message_id: user.id,
                assistant_message_id: assistant.id,
                message_index: user.message_index,
                user: clip(&user.content),
                assistant: clip(&assistant.content),
                created_at: assistant.created_at,
                relevance: 0.0,
                score: 0.0,
            });
        }
        Ok(pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::NewMessage;
    use crate::StorageService;

    /// Messages of a store from before message ids were derived (random ids) are still found:
    /// by the filtered scroll, for the places missing under their derived ids.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pairs_are_found_in_stores_from_before_derived_message_ids() {
        let dir = tempfile::tempdir().unwrap();
        let s = StorageService::open(crate::config::keyword_only_test_config(dir.path()))
            .await
            .unwrap();
        let chat = &s.chat;
        let old = chat
            .create_conversation("alice", "Old failover", serde_json::json!({}))
            .await
            .unwrap();
        let current = chat
            .create_conversation("alice", "Now", serde_json::json!({}))
            .await
            .unwrap();
        for (role, text) in [
            (Role::User, "Fail over the production Postgres database"),
            (Role::Assistant, "Failover started; the standby is being promoted."),
        ] {
            chat.append(&old, NewMessage::new(role, text)).await.unwrap();
        }
        // Rewrite both messages as an older version stored them: under random ids.
        let derived: Vec<uuid::Uuid> = (0..2).map(|i| schema::message_point_id(&old, i)).collect();
        let records = chat
            .store
            .retrieve(MESSAGES, derived.clone(), VectorSelection::None)
            .await
            .unwrap();
        assert_eq!(records.len(), 2);
        let mut moved = Vec::new();
        for record in &records {
            let message = Message {
                id: uuid::Uuid::new_v4(),
                ..schema::message_from_record(record, &chat.sealer).unwrap()
            };
            let keywords = chat.keywords.document(&message.content);
            moved.push(message.id);
            let point = schema::message_to_point(&message, keywords, &chat.sealer).unwrap();
            chat.store.upsert(MESSAGES, vec![point]).await.unwrap();
        }
        chat.store.delete(MESSAGES, derived).await.unwrap();

        let ctx = chat
            .context_for_prompt("alice", &current, "postgres failover", ContextOptions::default())
            .await
            .unwrap();
        assert!(!ctx.fallback);
        assert_eq!(ctx.pairs.len(), 1, "{:?}", ctx.pairs);
        assert_eq!(ctx.pairs[0].context_id, old);
        assert!(moved.contains(&ctx.pairs[0].user_message_id));
        assert!(ctx.pairs[0].assistant.starts_with("Failover started"));
        s.shutdown().await.unwrap();
    }

    #[test]
    fn decay_halves_in_about_five_days_and_never_grows() {
        let now = 100 * 86_400_000;
        assert!((decay(now, now) - 1.0).abs() < 1e-6);
        let week = decay(now - 7 * 86_400_000, now);
        assert!((week - (-1.0f32).exp()).abs() < 1e-4);
        assert_eq!(decay(now + 1000, now), 1.0, "future timestamps count as now");
    }

    #[test]
    fn render_lists_pairs_in_order() {
        let pair = |t: &str| ContextPair {
            context_id: "c".into(),
            title: t.into(),
            user_message_id: uuid::Uuid::nil(),
            assistant_message_id: uuid::Uuid::nil(),
            message_index: 0,
            user: "q".into(),
            assistant: "a".into(),
            created_at: 0,
            relevance: 1.0,
            score: 1.0,
        };
        let ctx = PromptContext {
            pairs: vec![pair("first"), pair("second")],
            fallback: false,
            estimated_tokens: 0,
        };
        let text = ctx.render();
        assert!(text.starts_with("Context from previous conversations:"));
        assert!(text.find("[1] \"first\"").unwrap() < text.find("[2] \"second\"").unwrap());
        assert!(text.contains("User: q\nAssistant: a"));
    }
}
