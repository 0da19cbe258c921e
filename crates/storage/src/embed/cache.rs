//! A small least-recently-used cache of query embeddings (in memory only, never on disk).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Cached vectors by query, and queries from least to most recently used.
#[derive(Debug, Default)]
struct Entries {
    vectors: HashMap<String, Vec<f32>>,
    order: VecDeque<String>,
}

/// Caches the dense vectors of recent queries: a repeated or refined search skips the model.
#[derive(Debug)]
pub(crate) struct QueryCache {
    capacity: usize,
    inner: Mutex<Entries>,
}

impl QueryCache {
    /// A cache of at most `capacity` queries.
    pub(crate) fn new(capacity: usize) -> Self {
        QueryCache {
            capacity: capacity.max(1),
            inner: Mutex::new(Entries::default()),
        }
    }

    /// The cached vector of `query`.
    pub(crate) fn get(&self, query: &str) -> Option<Vec<f32>> {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Entries { vectors: map, order } = &mut *guard;
        let hit = map.get(query).cloned()?;
        if let Some(pos) = order.iter().position(|q| q == query) {
            order.remove(pos);
        }
        order.push_back(query.to_string());
        Some(hit)
    }

    /// Remember `vector` for `query`, evicting the least recently used entry when full.
    pub(crate) fn put(&self, query: &str, vector: Vec<f32>) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Entries { vectors: map, order } = &mut *guard;
        if map.insert(query.to_string(), vector).is_none() {
            order.push_back(query.to_string());
            while order.len() > self.capacity {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used() {
        let c = QueryCache::new(2);
        c.put("a", vec![1.0]);
        c.put("b", vec![2.0]);
        assert_eq!(c.get("a"), Some(vec![1.0]));
        c.put("c", vec![3.0]);
        assert_eq!(c.get("b"), None);
        assert_eq!(c.get("a"), Some(vec![1.0]));
        assert_eq!(c.get("c"), Some(vec![3.0]));
    }
}
