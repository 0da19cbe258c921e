//! How a search matches (keyword, semantic or hybrid), shared by chat and estate search.

use serde::{Deserialize, Serialize};

use crate::error::{Result, StorageError};

/// How to match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Keyed BM25 over message words and identifiers.
    Keyword,
    /// Nearest neighbours of the query's embedding.
    Semantic,
    /// Both, fused by reciprocal rank (falls back to keyword without an embedder).
    #[default]
    Hybrid,
}

impl std::str::FromStr for SearchMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "keyword" => Ok(SearchMode::Keyword),
            "semantic" => Ok(SearchMode::Semantic),
            "hybrid" => Ok(SearchMode::Hybrid),
            _ => Err(format!("unknown search mode `{s}`: use keyword, semantic or hybrid")),
        }
    }
}

/// The mode a search runs in: hybrid falls back to keyword without an embedding model,
/// semantic is refused without one. Chat and estate search share it.
///
/// # Errors
/// [`crate::StorageError::InvalidInput`] for semantic search without a model.
pub(crate) fn effective_mode(mode: SearchMode, semantic_enabled: bool) -> Result<SearchMode> {
    match (mode, semantic_enabled) {
        (SearchMode::Semantic, false) => Err(StorageError::InvalidInput {
            field: "mode",
            reason:
                "semantic search needs an embedding model: run scripts/fetch-test-model.sh, or set [embedding] provider"
                    .into(),
        }),
        (SearchMode::Hybrid, false) => Ok(SearchMode::Keyword),
        (m, _) => Ok(m),
    }
}
