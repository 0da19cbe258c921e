//! Keyed keyword vectors: BM25 term weights over qdrant's tokenizer pipeline (lowercase,
//! English stopwords, Snowball stemming), with every sparse index replaced by a keyed hash so
//! the store never holds a token, or even a public hash of one.
//!
//! Whole identifiers (`pg-instance-main1`, `i-0abc123`, `arn:aws:…`) are added as tokens of
//! their own next to their word pieces, so an exact identifier outranks documents that merely
//! share its parts.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};
use sha2::Sha256;

use crate::store::VectorData;

/// BM25 saturation for identifier tokens equals the word tokens' (k1 = 1.2): one occurrence.
const IDENTIFIER_WEIGHT: f32 = 1.0;
/// Identifiers longer than this are not useful search keys.
const MAX_IDENTIFIER_LEN: usize = 128;

/// Encodes documents and queries into keyed sparse vectors.
pub(crate) struct KeywordEncoder {
    bm25: EdgeBm25,
    key: Hmac<Sha256>,
}

impl std::fmt::Debug for KeywordEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeywordEncoder").finish_non_exhaustive()
    }
}

impl KeywordEncoder {
    /// An encoder keyed with the keyword-index subkey.
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        // The default config is valid (k=1.2, b=0.75, avg_len=256, English): it cannot fail.
        let bm25 = match EdgeBm25::new(EdgeBm25Config::default()) {
            Ok(b) => b,
            Err(e) => unreachable!("default BM25 config rejected: {e}"),
        };
        let key = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
            Ok(k) => k,
            Err(_) => unreachable!("HMAC accepts any key length"),
        };
        KeywordEncoder { bm25, key }
    }

    /// The sparse vector stored with a document (BM25 term-frequency weights).
    pub(crate) fn document(&self, text: &str) -> VectorData {
        let words = self.bm25.embed_document(text);
        self.keyed(words.indices.into_iter().zip(words.values), text)
    }

    /// The sparse vector of a query (unit weights; the store applies IDF).
    pub(crate) fn query(&self, text: &str) -> VectorData {
        let words = self.bm25.embed_query(text);
        self.keyed(words.indices.into_iter().map(|i| (i, 1.0)), text)
    }

    fn keyed(&self, words: impl Iterator<Item = (u32, f32)>, text: &str) -> VectorData {
        let mut merged: BTreeMap<u32, f32> = BTreeMap::new();
        for (public_id, weight) in words {
            *merged.entry(self.hash(b'w', &public_id.to_le_bytes())).or_insert(0.0) += weight;
        }
        for ident in identifiers(text) {
            let slot = merged.entry(self.hash(b'i', ident.as_bytes())).or_insert(0.0);
            *slot = slot.max(IDENTIFIER_WEIGHT);
        }
        let (indices, values) = merged.into_iter().unzip();
        VectorData::Sparse { indices, values }
    }

    /// HMAC-SHA256(key, label ‖ 0 ‖ value): keyed equality tokens and point ids (the same
    /// keyword subkey, a different domain than the sparse indices).
    pub(crate) fn digest(&self, label: &str, value: &[u8]) -> [u8; 32] {
        let mut mac = self.key.clone();
        mac.update(label.as_bytes());
        mac.update(&[0]);
        mac.update(value);
        mac.finalize().into_bytes().into()
    }

    /// HMAC-SHA256(key, domain ‖ bytes), first four bytes.
    fn hash(&self, domain: u8, bytes: &[u8]) -> u32 {
        let mut mac = self.key.clone();
        mac.update(&[domain]);
        mac.update(bytes);
        let out = mac.finalize().into_bytes();
        u32::from_le_bytes([out[0], out[1], out[2], out[3]])
    }
}

/// Whitespace-separated chunks that look like identifiers: they join word pieces with
/// `-`, `_`, `.`, `/` or `:`, or mix letters and digits. Lowercased, outer punctuation trimmed.
fn identifiers(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split_whitespace().filter_map(|chunk| {
        let trimmed = chunk.trim_matches(|c: char| !c.is_alphanumeric());
        if trimmed.len() < 3 || trimmed.len() > MAX_IDENTIFIER_LEN {
            return None;
        }
        let joined = trimmed.contains(['-', '_', '.', '/', ':']);
        let has_digit = trimmed.chars().any(|c| c.is_ascii_digit());
        let has_alpha = trimmed.chars().any(char::is_alphabetic);
        (has_alpha && (joined || has_digit)).then(|| trimmed.to_lowercase())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indices(v: &VectorData) -> Vec<u32> {
        match v {
            VectorData::Sparse { indices, .. } => indices.clone(),
            VectorData::Dense(_) => panic!("dense"),
        }
    }

    #[test]
    fn identifiers_are_whole_tokens() {
        let ids: Vec<String> =
            identifiers("Restart pg-instance-main1, then i-0abc123. (See arn:aws:s3:::b.) ok 42").collect();
        assert_eq!(ids, vec!["pg-instance-main1", "i-0abc123", "arn:aws:s3:::b"]);
    }

    #[test]
    fn the_same_words_share_indices_only_under_the_same_key() {
        let a = KeywordEncoder::new(&[1; 32]);
        let b = KeywordEncoder::new(&[2; 32]);
        let doc = a.document("Database connections are failing");
        let query = a.query("failing database");
        let shared = indices(&query).iter().filter(|i| indices(&doc).contains(i)).count();
        assert_eq!(shared, 2, "stemmed words match between document and query");
        let other = b.query("failing database");
        assert!(indices(&other).iter().all(|i| !indices(&doc).contains(i)));
    }

    #[test]
    fn indices_are_not_the_public_bm25_hashes() {
        let enc = KeywordEncoder::new(&[3; 32]);
        let public = EdgeBm25::new(EdgeBm25Config::default())
            .unwrap()
            .embed_query("database");
        assert!(indices(&enc.query("database"))
            .iter()
            .all(|i| !public.indices.contains(i)));
    }

    #[test]
    fn stopword_only_query_is_empty() {
        let enc = KeywordEncoder::new(&[4; 32]);
        assert!(indices(&enc.query("the of and")).is_empty());
        assert!(!indices(&enc.query("i-0abc123")).is_empty());
    }
}
