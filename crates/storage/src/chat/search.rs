//! Chat search: keyword (keyed BM25), semantic (dense) and hybrid (reciprocal-rank fusion),
//! always scoped to one user, with role, time and archive filters, grouped by conversation.

use crate::search_mode::{effective_mode, SearchMode};
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::schema::{
    self, conv_eq, msg_eq, ConversationField as CF, MessageField as MF, CONVERSATIONS, KEYWORDS_VECTOR, MESSAGES,
};
use super::{check_id, invalid, ChatStorage, ConversationStatus, Role};
use crate::error::Result;
use crate::fusion;
use crate::store::verify::check_admitted;
use crate::store::{
    Condition, FieldValue, Filter, Hit, PointId, QueryRequest, Range, ScrollRequest, VectorData, VectorSelection,
};

/// Keyword hits holding less than this share of the query's tokens do not count in hybrid fusion.
const MIN_COVERAGE: f32 = 0.5;
/// Keyword hits whose coverage is computed for hybrid fusion (deeper ones count only through
/// the semantic ranking).
const COVERAGE_DEPTH: usize = 20;
/// Characters of a snippet.
const SNIPPET_CHARS: usize = 160;
/// Matching messages shown per conversation.
const MESSAGES_PER_CONVERSATION: usize = 3;
/// Most archived conversations considered by an archive filter.
const MAX_ARCHIVED: usize = 10_000;

/// Which conversations to search by status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum ArchivedFilter {
    /// Active and archived (default).
    #[default]
    Include,
    /// Active only.
    Exclude,
    /// Archived only.
    Only,
}

/// Options of [`ChatStorage::search_conversations`]. From JSON, every field may be omitted
/// (its default applies); unknown fields are an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(default, deny_unknown_fields)]
pub struct SearchOptions {
    /// Matching mode. Default: hybrid.
    pub mode: SearchMode,
    /// Only messages with these roles (empty = all).
    pub roles: Vec<Role>,
    /// Only messages created at or after this time (unix ms).
    pub since: Option<i64>,
    /// Only messages created before this time (unix ms).
    pub until: Option<i64>,
    /// Archived conversations.
    pub archived: ArchivedFilter,
    /// Most conversations returned. Default: 10.
    pub limit: usize,
    /// Leave this conversation out (the one being answered).
    pub exclude_context: Option<String>,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            mode: SearchMode::Hybrid,
            roles: Vec::new(),
            since: None,
            until: None,
            archived: ArchivedFilter::Include,
            limit: 10,
            exclude_context: None,
        }
    }
}

/// A matching message.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct MessageHit {
    /// Message id.
    pub message_id: uuid::Uuid,
    /// Position in its conversation.
    pub message_index: u64,
    /// Role.
    pub role: Role,
    /// Creation time, unix ms.
    pub created_at: i64,
    /// Score in the mode used (BM25, cosine, or fused reciprocal rank).
    pub score: f32,
    /// Cosine similarity to the query, when the semantic side found it.
    pub similarity: Option<f32>,
    /// A short excerpt around the first matching word.
    pub snippet: String,
}

/// A conversation with its matching messages, best first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct ConversationHit {
    /// Conversation id.
    pub context_id: String,
    /// Title.
    pub title: String,
    /// Status.
    pub status: ConversationStatus,
    /// Last activity, unix ms.
    pub updated_at: i64,
    /// Score of the best matching message.
    pub score: f32,
    /// Matching messages, best first (at most three).
    pub messages: Vec<MessageHit>,
}

/// What a search found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct SearchResults {
    /// The mode actually used (hybrid becomes keyword without an embedder).
    pub mode: SearchMode,
    /// Conversations, best first.
    pub conversations: Vec<ConversationHit>,
    /// The user's messages still waiting for a dense vector (after an import, say): semantic
    /// and hybrid results cover the others, keyword search covers all. 0 in keyword mode.
    pub pending_embeddings: u64,
}

/// A message candidate from one or both rankers.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub(crate) id: PointId,
    pub(crate) score: f32,
    pub(crate) similarity: Option<f32>,
    pub(crate) keyword_rank: Option<usize>,
    pub(crate) payload: crate::store::Payload,
}

impl ChatStorage {
    /// Search a user's messages; results are grouped by conversation.
    ///
    /// # Errors
    /// [`crate::StorageError::InvalidInput`] for an empty query, or semantic mode without an
    /// embedder; store, crypto and embedding errors.
    pub async fn search_conversations(
        &self,
        user_id: &str,
        query: &str,
        options: &SearchOptions,
    ) -> Result<SearchResults> {
        check_id("user_id", user_id)?;
        if query.trim().is_empty() {
            return Err(invalid("query", "is empty"));
        }
        let limit = options.limit.clamp(1, 100);
        let Some(filter) = self.search_filter(user_id, options).await? else {
            return Ok(SearchResults {
                mode: self.effective_mode(options.mode)?,
                conversations: Vec::new(),
                pending_embeddings: 0,
            });
        };
        // Enough hits to fill `limit` conversations in the common case; fusion looks deeper.
        let depth = match options.mode {
            SearchMode::Hybrid => (limit * 5).clamp(30, 500),
            _ => (limit * 3).clamp(20, 300),
        };
        let (mode, candidates) = self.candidates(query, options.mode, &filter, depth).await?;
        let conversations = self.group(query, candidates, limit, &filter).await?;
        let pending_embeddings = match mode {
            SearchMode::Keyword => 0,
            SearchMode::Semantic | SearchMode::Hybrid => self.pending_embeddings_of(user_id).await?,
        };
        Ok(SearchResults {
            mode,
            conversations,
            pending_embeddings,
        })
    }

    pub(crate) fn effective_mode(&self, mode: SearchMode) -> Result<SearchMode> {
        effective_mode(mode, self.dense.is_some())
    }

    /// The user scope plus the options' filters; `None` when nothing can match.
    pub(crate) async fn search_filter(&self, user_id: &str, options: &SearchOptions) -> Result<Option<Filter>> {
        let mut filter = Filter::must(msg_eq(MF::UserId, user_id));
        if !options.roles.is_empty() {
            filter = filter.and(Condition::Any(
                MF::Role.as_str().into(),
                options.roles.iter().map(|r| FieldValue::from(r.as_str())).collect(),
            ));
        }
        if options.since.is_some() || options.until.is_some() {
            filter = filter.and(Condition::Range(
                MF::CreatedAt.as_str().into(),
                Range {
                    gte: options.since.map(|t| t as f64),
                    lt: options.until.map(|t| t as f64),
                    ..Range::default()
                },
            ));
        }
        if let Some(ctx) = &options.exclude_context {
            filter = filter.and_not(msg_eq(MF::ContextId, ctx.as_str()));
        }
        if options.archived != ArchivedFilter::Include {
            let archived = self.archived_contexts(user_id).await?;
            let any = Condition::Any(
                MF::ContextId.as_str().into(),
                archived.into_iter().map(FieldValue::from).collect(),
            );
            match options.archived {
                ArchivedFilter::Only if matches!(&any, Condition::Any(_, v) if v.is_empty()) => return Ok(None),
                ArchivedFilter::Only => filter = filter.and(any),
                _ if matches!(&any, Condition::Any(_, v) if v.is_empty()) => {}
                _ => filter = filter.and_not(any),
            }
        }
        Ok(Some(filter))
    }

    async fn archived_contexts(&self, user_id: &str) -> Result<Vec<String>> {
        let page = self
            .store
            .scroll(
                CONVERSATIONS,
                ScrollRequest {
                    filter: Some(
                        Filter::must(conv_eq(CF::UserId, user_id))
                            .and(conv_eq(CF::Status, ConversationStatus::Archived.as_str())),
                    ),
                    limit: MAX_ARCHIVED,
                    ..ScrollRequest::default()
                },
            )
            .await?;
        Ok(page
            .records
            .iter()
            .filter_map(|r| {
                r.payload
                    .get(CF::ContextId.as_str())
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .collect())
    }

    /// Ranked message candidates for `query` under `filter`, at most `depth` from each ranker.
    pub(crate) async fn candidates(
        &self,
        query: &str,
        mode: SearchMode,
        filter: &Filter,
        depth: usize,
    ) -> Result<(SearchMode, Vec<Candidate>)> {
        let mode = self.effective_mode(mode)?;
        let keyword = if matches!(mode, SearchMode::Keyword | SearchMode::Hybrid) {
            self.keyword_hits(query, filter.clone(), depth).await?
        } else {
            Vec::new()
        };
        let semantic = match (&self.dense, mode) {
            (Some(space), SearchMode::Semantic | SearchMode::Hybrid) => {
                let vector = space.query(query).await?;
                self.store
                    .query(
                        MESSAGES,
                        QueryRequest {
                            using: space.slot().to_string(),
                            vector: VectorData::Dense(vector),
                            filter: Some(filter.clone()),
                            limit: depth,
                            with_payload: false,
                            exact: false,
                        },
                    )
                    .await?
            }
            _ => Vec::new(),
        };
        let candidates = match mode {
            SearchMode::Keyword => ranked(keyword, |h, rank| Candidate {
                id: h.id,
                score: h.score,
                similarity: None,
                keyword_rank: Some(rank),
                payload: h.payload,
            }),
            SearchMode::Semantic => ranked(semantic, |h, _| Candidate {
                id: h.id,
                score: h.score,
                similarity: Some(h.score),
                keyword_rank: None,
                payload: h.payload,
            }),
            SearchMode::Hybrid => {
                let mut keyword = keyword;
                let weights = self.keyword_coverage(query, &mut keyword, filter).await?;
                fuse(keyword, &weights, semantic)
            }
        };
        Ok((mode, candidates))
    }

    /// The fusion weight of each keyword hit from the share of the query's keyword tokens its
    /// message contains: 0 below [`MIN_COVERAGE`], else the share squared. A paraphrase
    /// matches unrelated messages on one incidental word; without this, RRF's reward for
    /// appearing in both lists lets such noise outvote the semantic ranking. A message holding
    /// most of the query's words (or its identifier) keeps its weight.
    ///
    /// A message's tokens are its stored keyword vector (the keyed tokens its text encoded
    /// to when written), so nothing is unsealed or encoded again; the payloads read on the way
    /// are kept in the hits, so [`Self::load_payloads`] does not read them again.
    async fn keyword_coverage(&self, query: &str, hits: &mut [Hit], filter: &Filter) -> Result<Vec<f32>> {
        let mut weights = vec![0.0; hits.len()];
        let VectorData::Sparse { indices: wanted, .. } = self.keywords.query(query) else {
            return Ok(weights);
        };
        if wanted.is_empty() {
            return Ok(weights);
        }
        let top: Vec<PointId> = hits.iter().take(COVERAGE_DEPTH).map(|h| h.id).collect();
        let mut records: HashMap<PointId, crate::store::Record> = self
            .store
            .retrieve(MESSAGES, top, VectorSelection::Only(vec![KEYWORDS_VECTOR.to_owned()]))
            .await?
            .into_iter()
            .map(|r| (r.id, r))
            .collect();
        for (weight, hit) in weights.iter_mut().zip(hits.iter_mut()) {
            let Some(record) = records.remove(&hit.id) else {
                continue;
            };
            check_admitted(MESSAGES, filter, record.id, &record.payload)?;
            // A keyword hit has a keyword vector: the query matched it.
            let shared = match record.vectors.get(KEYWORDS_VECTOR) {
                Some(VectorData::Sparse { indices: have, .. }) => wanted.iter().filter(|i| have.contains(i)).count(),
                _ => 0,
            };
            let coverage = shared as f32 / wanted.len() as f32;
            if coverage >= MIN_COVERAGE {
                *weight = coverage * coverage;
            }
            hit.payload = record.payload;
        }
        Ok(weights)
    }

    /// Fill in the payloads of candidates that have none (queries return ids and scores only;
    /// payloads are read from disk for just the candidates used).
    /// Each payload read is checked against `filter`, the filter of the query that found the
    /// candidates (which returned ids only).
    pub(crate) async fn load_payloads(&self, candidates: &mut [Candidate], filter: &Filter) -> Result<()> {
        let missing: Vec<PointId> = candidates
            .iter()
            .filter(|c| c.payload.is_empty())
            .map(|c| c.id)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut payloads: HashMap<PointId, crate::store::Payload> = self
            .store
            .retrieve(MESSAGES, missing, VectorSelection::None)
            .await?
            .into_iter()
            .map(|r| (r.id, r.payload))
            .collect();
        for c in candidates.iter_mut().filter(|c| c.payload.is_empty()) {
            if let Some(p) = payloads.remove(&c.id) {
                check_admitted(MESSAGES, filter, c.id, &p)?;
                c.payload = p;
            }
        }
        Ok(())
    }

    async fn keyword_hits(&self, query: &str, filter: Filter, depth: usize) -> Result<Vec<Hit>> {
        let vector = self.keywords.query(query);
        if matches!(&vector, VectorData::Sparse { indices, .. } if indices.is_empty()) {
            return Ok(Vec::new());
        }
        Ok(self
            .store
            .query(
                MESSAGES,
                QueryRequest {
                    using: KEYWORDS_VECTOR.to_string(),
                    vector,
                    filter: Some(filter),
                    limit: depth,
                    with_payload: false,
                    exact: false,
                },
            )
            .await?)
    }

    async fn group(
        &self,
        query: &str,
        mut candidates: Vec<Candidate>,
        limit: usize,
        filter: &Filter,
    ) -> Result<Vec<ConversationHit>> {
        let mut order: Vec<String> = Vec::new();
        let mut groups: HashMap<String, Vec<Candidate>> = HashMap::new();
        // Read payloads a chunk at a time, best first, until `limit` conversations are found.
        let chunk = limit * MESSAGES_PER_CONVERSATION;
        let mut start = 0;
        while start < candidates.len() && order.len() < limit {
            let end = (start + chunk).min(candidates.len());
            self.load_payloads(&mut candidates[start..end], filter).await?;
            for c in &candidates[start..end] {
                let ctx = c_context(c);
                if ctx.is_empty() {
                    continue; // deleted since the query
                }
                match groups.get_mut(&ctx) {
                    Some(group) if group.len() < MESSAGES_PER_CONVERSATION => group.push(c.clone()),
                    Some(_) => {}
                    None if order.len() < limit => {
                        order.push(ctx.clone());
                        groups.insert(ctx, vec![c.clone()]);
                    }
                    None => {}
                }
            }
            start = end;
        }
        let ids: Vec<PointId> = order.iter().map(|c| schema::conversation_point_id(c)).collect();
        let conversations: HashMap<String, super::Conversation> = self
            .store
            .retrieve(CONVERSATIONS, ids, VectorSelection::None)
            .await?
            .iter()
            .map(|r| schema::conversation_from_record(r, &self.sealer).map(|c| (c.context_id.clone(), c)))
            .collect::<Result<_>>()?;
        let mut out = Vec::with_capacity(order.len());
        for ctx in order {
            let Some(conversation) = conversations.get(&ctx) else {
                continue; // deleted between the search and now
            };
            let mut messages = Vec::new();
            for c in groups.remove(&ctx).unwrap_or_default() {
                let record = crate::store::Record {
                    id: c.id,
                    payload: c.payload,
                    vectors: Default::default(),
                };
                let m = schema::message_from_record(&record, &self.sealer)?;
                messages.push(MessageHit {
                    message_id: m.id,
                    message_index: m.message_index,
                    role: m.role,
                    created_at: m.created_at,
                    score: c.score,
                    similarity: c.similarity,
                    snippet: snippet(&m.content, query),
                });
            }
            out.push(ConversationHit {
                context_id: ctx,
                title: conversation.title.clone(),
                status: conversation.status,
                updated_at: conversation.updated_at,
                score: messages.first().map_or(0.0, |m| m.score),
                messages,
            });
        }
        Ok(out)
    }
}

fn c_context(c: &Candidate) -> String {
    c.payload
        .get(MF::ContextId.as_str())
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn ranked(hits: Vec<Hit>, make: impl Fn(Hit, usize) -> Candidate) -> Vec<Candidate> {
    hits.into_iter().enumerate().map(|(rank, h)| make(h, rank)).collect()
}

/// Reciprocal-rank fusion of the keyword and semantic rankings, each keyword hit's share
/// weighted by `keyword_weights` (same order).
fn fuse(keyword: Vec<Hit>, keyword_weights: &[f32], semantic: Vec<Hit>) -> Vec<Candidate> {
    let mut by_id: HashMap<PointId, Candidate> = HashMap::new();
    for (rank, h) in keyword.into_iter().enumerate() {
        let weight = keyword_weights.get(rank).copied().unwrap_or(1.0);
        by_id.insert(
            h.id,
            Candidate {
                id: h.id,
                score: fusion::share(rank, weight),
                similarity: None,
                keyword_rank: Some(rank),
                payload: h.payload,
            },
        );
    }
    for (rank, h) in semantic.into_iter().enumerate() {
        let rrf = fusion::share(rank, 1.0);
        by_id
            .entry(h.id)
            .and_modify(|c| {
                c.score += rrf;
                c.similarity = Some(h.score);
            })
            .or_insert(Candidate {
                id: h.id,
                score: rrf,
                similarity: Some(h.score),
                keyword_rank: None,
                payload: h.payload,
            });
    }
    let mut fused: Vec<Candidate> = by_id.into_values().collect();
    fused.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
    fused
}

/// About [`SNIPPET_CHARS`] characters around the first query word found in `text`.
pub(crate) fn snippet(text: &str, query: &str) -> String {
    let lower = text.to_lowercase();
    let start_byte = query
        .split(|c: char| !c.is_alphanumeric() && c != '-' && c != '_')
        .filter(|w| w.chars().count() >= 3)
        .filter_map(|w| lower.find(&w.to_lowercase()))
        .min()
        .filter(|&b| lower.len() == text.len() && text.is_char_boundary(b))
        .unwrap_or(0);
    let chars: Vec<char> = text.chars().collect();
    let start_char = text[..start_byte].chars().count();
    let from = start_char.saturating_sub(SNIPPET_CHARS / 4);
    let to = (from + SNIPPET_CHARS).min(chars.len());
    let mut out: String = chars[from..to]
        .iter()
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if from > 0 {
        out.insert(0, '…');
    }
    if to < chars.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippet_centres_on_the_first_match() {
        let text = format!(
            "{} the RDS instance pg-main1 failed over {}",
            "x ".repeat(200),
            "y ".repeat(200)
        );
        let s = snippet(&text, "failover pg-main1");
        assert!(s.contains("pg-main1"), "{s}");
        assert!(s.starts_with('…') && s.ends_with('…'));
        assert_eq!(snippet("short text", "nothing"), "short text");
    }

    #[test]
    fn fusion_rewards_agreement() {
        let hit = |n: u128| Hit {
            id: uuid::Uuid::from_u128(n),
            score: 1.0,
            payload: Default::default(),
        };
        let fused = fuse(vec![hit(1), hit(2), hit(3)], &[1.0; 3], vec![hit(3), hit(4)]);
        assert_eq!(fused[0].id, uuid::Uuid::from_u128(3), "found by both rankers wins");
        assert_eq!(fused.len(), 4);
        // A keyword hit gated out for low coverage does not outvote the semantic top.
        let fused = fuse(vec![hit(5)], &[0.0], vec![hit(4), hit(5)]);
        assert_eq!(fused[0].id, uuid::Uuid::from_u128(4));
        let fused = fuse(vec![hit(5)], &[1.0], vec![hit(4), hit(5)]);
        assert_eq!(
            fused[0].id,
            uuid::Uuid::from_u128(5),
            "a full-coverage keyword hit does"
        );
    }
}
