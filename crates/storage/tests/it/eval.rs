//! Retrieval quality on our own evaluation set (tests/fixtures/retrieval_eval.json): recall@5
//! and MRR for keyword, semantic and hybrid search with the real all-MiniLM-L6-v2.

use std::collections::HashMap;

use cloudops_storage_service::StorageService;
use cloudops_storage_service::{NewMessage, Role, SearchMode, SearchOptions};
use serde_json::Value;

use crate::common::{test_model_dir, TestStore};

#[derive(Debug, Default, Clone, Copy)]
struct Score {
    hits_at_5: usize,
    reciprocal_ranks: f64,
    queries: usize,
}

impl Score {
    fn add(&mut self, rank: Option<usize>) {
        self.queries += 1;
        if let Some(r) = rank {
            if r <= 5 {
                self.hits_at_5 += 1;
            }
            self.reciprocal_ranks += 1.0 / r as f64;
        }
    }
    fn recall_at_5(&self) -> f64 {
        self.hits_at_5 as f64 / self.queries.max(1) as f64
    }
    fn mrr(&self) -> f64 {
        self.reciprocal_ranks / self.queries.max(1) as f64
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_is_at_least_as_good_as_the_better_single_mode() {
    let Some(model) = test_model_dir() else { return };
    let set: Value = serde_json::from_str(include_str!("../fixtures/retrieval_eval.json")).unwrap();
    let t = TestStore::new();
    let s = StorageService::open(t.config_with_model(&model)).await.unwrap();
    let mut by_key = HashMap::new();
    for c in set["conversations"].as_array().unwrap() {
        let ctx = s
            .chat
            .create_conversation("eval", c["title"].as_str().unwrap(), serde_json::json!({}))
            .await
            .unwrap();
        for (i, m) in c["messages"].as_array().unwrap().iter().enumerate() {
            let role = if i % 2 == 0 { Role::User } else { Role::Assistant };
            s.chat
                .append(&ctx, NewMessage::new(role, m.as_str().unwrap()))
                .await
                .unwrap();
        }
        by_key.insert(c["key"].as_str().unwrap().to_string(), ctx);
    }
    s.chat.wait_for_index().await.unwrap();

    let modes = [SearchMode::Keyword, SearchMode::Semantic, SearchMode::Hybrid];
    let mut scores: HashMap<(SearchMode, &str), Score> = HashMap::new();
    let mut sharing = Vec::new();
    for q in set["queries"].as_array().unwrap() {
        let query = q["query"].as_str().unwrap();
        let kind = q["kind"].as_str().unwrap();
        let relevant = &by_key[q["relevant"].as_str().unwrap()];
        for mode in modes {
            let options = SearchOptions {
                mode,
                limit: 10,
                ..SearchOptions::default()
            };
            let r = s.chat.search_conversations("eval", query, &options).await.unwrap();
            let rank = r
                .conversations
                .iter()
                .position(|c| &c.context_id == relevant)
                .map(|p| p + 1);
            if std::env::var("EVAL_DEBUG").is_ok() {
                eprintln!("{mode:?}\t{kind}\t{rank:?}\t{query}");
            }
            if mode == SearchMode::Keyword && kind == "paraphrase" && rank.is_some() {
                sharing.push(query);
            }
            for bucket in [kind, "all"] {
                scores.entry((mode, bucket)).or_default().add(rank);
            }
        }
    }
    assert!(
        sharing.is_empty(),
        "paraphrases sharing a keyword with their conversation: {sharing:?}"
    );
    eprintln!("| mode | recall@5 (all) | MRR (all) | recall@5 keyword queries | recall@5 paraphrases |");
    eprintln!("|---|---|---|---|---|");
    for mode in modes {
        let all = scores[&(mode, "all")];
        eprintln!(
            "| {mode:?} | {:.3} | {:.3} | {:.3} | {:.3} |",
            all.recall_at_5(),
            all.mrr(),
            scores[&(mode, "keyword")].recall_at_5(),
            scores[&(mode, "paraphrase")].recall_at_5()
        );
    }
    let get = |m| scores[&(m, "all")];
    let (kw, sem, hy) = (
        get(SearchMode::Keyword),
        get(SearchMode::Semantic),
        get(SearchMode::Hybrid),
    );
    assert_eq!(hy.queries, 42);
    assert!(
        hy.recall_at_5() >= kw.recall_at_5().max(sem.recall_at_5()),
        "hybrid recall@5 is worse"
    );
    assert!(hy.mrr() >= kw.mrr().max(sem.mrr()), "hybrid MRR is worse");
    s.shutdown().await.unwrap();
}
