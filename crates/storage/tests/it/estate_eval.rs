//! Estate search quality on our own evaluation set (tests/fixtures/estate_eval.json, made by
//! scripts/make-estate-eval.py): a realistic estate of a few hundred resources with staging
//! and development twins, and queries that name attributes and classes, names, or paraphrase.
//! Recall@5 and MRR per mode with the real all-MiniLM-L6-v2; hybrid must be at least as good
//! as the better single mode, and never rank a twin that contradicts the query's environment
//! above one that satisfies it.

use std::collections::{HashMap, HashSet};

use cloudops_storage_service::SearchMode;
use cloudops_storage_service::StorageService;
use cloudops_storage_service::{AWSResource, ResourceFilter};
use serde_json::Value;

use crate::common::{test_model_dir, TestStore};

#[derive(Debug, Default, Clone, Copy)]
struct Score {
    recall_at_5: f64,
    reciprocal_ranks: f64,
    queries: usize,
}

impl Score {
    /// `ranks` of the relevant resources found (1-based), `relevant` how many there are.
    fn add(&mut self, ranks: &[usize], relevant: usize) {
        self.queries += 1;
        let in_top5 = ranks.iter().filter(|r| **r <= 5).count();
        self.recall_at_5 += in_top5 as f64 / relevant.min(5) as f64;
        if let Some(first) = ranks.iter().min() {
            self.reciprocal_ranks += 1.0 / *first as f64;
        }
    }
    fn recall_at_5(&self) -> f64 {
        self.recall_at_5 / self.queries.max(1) as f64
    }
    fn mrr(&self) -> f64 {
        self.reciprocal_ranks / self.queries.max(1) as f64
    }
}

const ENVIRONMENTS: [&str; 3] = ["production", "staging", "development"];

/// The environment a query names, if any.
fn environment_of(query: &str) -> Option<&'static str> {
    let words: Vec<&str> = query.split_whitespace().collect();
    ENVIRONMENTS
        .into_iter()
        .find(|e| words.iter().any(|w| *w == *e || (*e == "development" && *w == "dev")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn estate_hybrid_search_is_at_least_as_good_as_the_better_single_mode() {
    let Some(model) = test_model_dir() else { return };
    let set: Value = serde_json::from_str(include_str!("../fixtures/estate_eval.json")).unwrap();
    let resources: Vec<AWSResource> = serde_json::from_value(set["resources"].clone()).unwrap();
    let env_of: HashMap<String, Option<String>> = resources
        .iter()
        .map(|r| {
            let env = r.tags.as_ref().and_then(|t| t.get("env").cloned());
            (r.key(), env)
        })
        .collect();
    let t = TestStore::new();
    let s = StorageService::open(t.config_with_model(&model)).await.unwrap();
    let total = resources.len();
    let report = s.estate.bulk_upsert(resources).await.unwrap();
    assert_eq!(report.added as usize, total);

    let modes = [SearchMode::Keyword, SearchMode::Semantic, SearchMode::Hybrid];
    let mut scores: HashMap<(SearchMode, String), Score> = HashMap::new();
    let mut contradictions: Vec<String> = Vec::new();
    let queries = set["queries"].as_array().unwrap();
    for q in queries {
        let query = q["query"].as_str().unwrap();
        let kind = q["kind"].as_str().unwrap().to_string();
        let relevant: HashSet<&str> = q["relevant"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for mode in modes {
            let hits = s
                .estate
                .search_in_mode(query, &ResourceFilter::default(), 20, mode)
                .await
                .unwrap();
            let keys: Vec<String> = hits.iter().map(|h| h.resource.key()).collect();
            let ranks: Vec<usize> = keys
                .iter()
                .enumerate()
                .filter(|(_, k)| relevant.contains(k.as_str()))
                .map(|(i, _)| i + 1)
                .collect();
            if std::env::var("EVAL_DEBUG").is_ok() {
                let top: Vec<String> = hits
                    .iter()
                    .take(5)
                    .map(|h| {
                        let mark = if relevant.contains(h.resource.key().as_str()) {
                            "+"
                        } else {
                            "-"
                        };
                        format!("{mark}{}", h.resource.name.clone().unwrap_or_default())
                    })
                    .collect();
                eprintln!("{mode:?}\t{kind}\t{ranks:?}\t{query}\t{top:?}");
            }
            // A resource of another environment must never rank above a relevant one of
            // the environment the query asks for.
            if mode == SearchMode::Hybrid {
                if let Some(env) = environment_of(query) {
                    let last = ranks
                        .iter()
                        .copied()
                        .filter(|r| env_of[&keys[r - 1]].as_deref() == Some(env))
                        .max();
                    for (i, k) in keys.iter().enumerate().take(last.unwrap_or(0)) {
                        if env_of[k].as_deref().is_some_and(|e| e != env) {
                            contradictions.push(format!("{query}: {k} ({:?}) at rank {}", env_of[k], i + 1));
                        }
                    }
                }
            }
            for bucket in [kind.clone(), "all".to_string()] {
                scores.entry((mode, bucket)).or_default().add(&ranks, relevant.len());
            }
        }
    }
    eprintln!("| mode | recall@5 | MRR | attribute+class R@5 | class R@5 | name R@5 | paraphrase R@5 |");
    eprintln!("|---|---|---|---|---|---|---|");
    for mode in modes {
        let get = |b: &str| scores.get(&(mode, b.to_string())).copied().unwrap_or_default();
        eprintln!(
            "| {mode:?} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            get("all").recall_at_5(),
            get("all").mrr(),
            get("attribute").recall_at_5(),
            get("class").recall_at_5(),
            get("name").recall_at_5(),
            get("paraphrase").recall_at_5()
        );
    }
    let get = |m| scores[&(m, "all".to_string())];
    let (kw, sem, hy) = (
        get(SearchMode::Keyword),
        get(SearchMode::Semantic),
        get(SearchMode::Hybrid),
    );
    assert!(queries.len() >= 30);
    assert_eq!(hy.queries, queries.len());
    assert!(
        hy.recall_at_5() >= kw.recall_at_5().max(sem.recall_at_5()),
        "hybrid recall@5 {:.3} is worse than keyword {:.3} or semantic {:.3}",
        hy.recall_at_5(),
        kw.recall_at_5(),
        sem.recall_at_5()
    );
    assert!(
        hy.mrr() >= kw.mrr().max(sem.mrr()),
        "hybrid MRR {:.3} is worse than keyword {:.3} or semantic {:.3}",
        hy.mrr(),
        kw.mrr(),
        sem.mrr()
    );
    assert!(
        contradictions.is_empty(),
        "resources of another environment above the asked one: {contradictions:#?}"
    );
    s.shutdown().await.unwrap();
}

/// The estate a new user tried (25 resources from the six AWS CLI formats, with staging and
/// development twins): "production database" must put every production database first and
/// no database of another environment above any production resource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_users_estate_ranks_production_databases_first() {
    use cloudops_storage_service::ImportOptions;
    use std::path::PathBuf;
    let Some(model) = test_model_dir() else { return };
    let t = TestStore::new();
    let s = StorageService::open(t.config_with_model(&model)).await.unwrap();
    let options = ImportOptions {
        account_id: Some("123456789012".into()),
        account_name: Some("acme".into()),
        region: None,
        sync: false,
    };
    let files = [
        "rds-describe-db-instances.json",
        "tagging-get-resources.json",
        "ec2-describe-instances.json",
        "s3api-list-buckets.json",
        "lambda-list-functions.json",
        "resource-explorer-search.json",
    ]
    .map(|file| {
        PathBuf::from(format!(
            "{}/tests/fixtures/aws/new-user/{file}",
            env!("CARGO_MANIFEST_DIR")
        ))
    });
    let report = s
        .estate
        .import_files(&files, &options, &cloudops_storage_service::no_progress)
        .await
        .unwrap();
    assert_eq!(report.failed(), 0, "{report:?}");
    assert!(report.files.iter().all(|f| f.issues.is_empty()), "{report:?}");
    assert_eq!(s.estate.count(&ResourceFilter::default()).await.unwrap(), 25);

    let hits = s
        .estate
        .search("production database", &ResourceFilter::default(), 10)
        .await
        .unwrap();
    let names: Vec<String> = hits
        .iter()
        .map(|h| {
            let env = h
                .resource
                .tags
                .as_ref()
                .and_then(|t| t.get("env").cloned())
                .unwrap_or_default();
            format!(
                "{} ({env})",
                h.resource.name.clone().unwrap_or(h.resource.identifier.clone())
            )
        })
        .collect();
    let top4: HashSet<&str> = hits.iter().take(4).map(|h| h.resource.identifier.as_str()).collect();
    assert_eq!(
        top4,
        ["orders-pg", "payments-aurora-1", "sessions", "carts"]
            .into_iter()
            .collect(),
        "{names:#?}"
    );
    let last_production = hits
        .iter()
        .rposition(|h| h.resource.tags.as_ref().and_then(|t| t.get("env")).map(String::as_str) == Some("production"))
        .unwrap();
    for h in &hits[..last_production] {
        let env = h.resource.tags.as_ref().and_then(|t| t.get("env")).map(String::as_str);
        assert!(
            env.is_none() || env == Some("production"),
            "another environment above a production resource: {names:#?}"
        );
    }
    // "staging postgres": the staging PostgreSQL instance first, never a production twin.
    let hits = s
        .estate
        .search("staging postgres", &ResourceFilter::default(), 3)
        .await
        .unwrap();
    assert_eq!(hits[0].resource.identifier, "orders-pg-staging");
    s.shutdown().await.unwrap();
}
