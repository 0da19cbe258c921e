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
use crate::store::{Condition, Direction, FieldValue, Filter, OrderBy, Range, ScrollRequest};

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
        let mut pairs = if prompt.trim().is_empty() {
            Vec::new()
        } else {
            self.relevant_pairs(user_id, current_context_id, prompt, now).await?
        };
        let fallback = pairs.is_empty();
        if fallback {
            pairs = self
                .recent_pairs(user_id, current_context_id, options.max_pairs, now)
                .await?;
        }
        // Newer first on equal scores (decays of times a few ms apart are equal in f32).
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
        Ok(PromptContext {
            pairs: chosen,
            fallback,
            estimated_tokens: tokens,
        })
    }

    async fn relevant_pairs(&self, user_id: &str, current: &str, prompt: &str, now: i64) -> Result<Vec<ContextPair>> {
        let options = SearchOptions {
            exclude_context: Some(current.to_string()),
            ..SearchOptions::default()
        };
        let Some(filter) = self.search_filter(user_id, &options).await? else {
            return Ok(Vec::new());
        };
        let (mode, mut candidates) = self.candidates(prompt, SearchMode::Hybrid, filter, DEPTH).await?;
        candidates.retain(|c| c.keyword_rank.is_some() || c.similarity.is_some_and(|s| s >= MIN_SIMILARITY));
        self.load_payloads(&mut candidates).await?;
        // Relevance in [0, 1]: keyword matches by rank, semantic ones by cosine.
        let mut best: HashMap<(String, u64), f32> = HashMap::new();
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
            let slot = best.entry((ctx.to_string(), user_index)).or_insert(0.0);
            *slot = slot.max(relevance);
        }
        tracing::debug!(
            ?mode,
            candidates = candidates.len(),
            pairs = best.len(),
            "prompt context candidates"
        );
        let starts: Vec<(String, u64)> = best.keys().cloned().collect();
        let mut pairs = self.pairs_at(&starts).await?;
        for pair in &mut pairs {
            let relevance = best
                .get(&(pair.context_id.clone(), pair.message_index))
                .copied()
                .unwrap_or(0.0);
            pair.relevance = relevance;
            pair.score = relevance * decay(pair.created_at, now);
        }
        Ok(pairs)
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

    /// The pairs starting at these (conversation, user message index) places, where the
    /// message there is the user's and the next one the assistant's (others are skipped), in
    /// no particular order. Two store calls whatever their number: one scroll for every
    /// message, one retrieve for every title (one call per pair made `context_for_prompt` take
    /// 8 ms at 60 candidates).
    async fn pairs_at(&self, starts: &[(String, u64)]) -> Result<Vec<ContextPair>> {
        if starts.is_empty() {
            return Ok(Vec::new());
        }
        let mut conversation_ids: Vec<&str> = starts.iter().map(|(c, _)| c.as_str()).collect();
        conversation_ids.sort_unstable();
        conversation_ids.dedup();
        // The `must` lets the engine start from these conversations' messages (keyword index)
        // instead of testing every point of the collection against the `should` clauses.
        let mut filter = Filter::must(Condition::Any(
            MF::ContextId.as_str().into(),
            conversation_ids.iter().map(|c| FieldValue::from(*c)).collect(),
        ));
        for (context_id, user_index) in starts {
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
                    limit: starts.len() * 2,
                    ..ScrollRequest::default()
                },
            )
            .await?;
        let mut messages: HashMap<(String, u64), Message> = HashMap::with_capacity(page.records.len());
        for record in &page.records {
            let message = schema::message_from_record(record, &self.sealer)?;
            messages.insert((message.context_id.clone(), message.message_index), message);
        }
        let titles: HashMap<String, String> = self
            .store
            .retrieve(
                CONVERSATIONS,
                conversation_ids
                    .iter()
                    .map(|c| schema::conversation_point_id(c))
                    .collect(),
                false,
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
