//! A conformance suite every [`VectorStore`] backend must pass.
//!
//! Each function takes a store and a fresh collection name and checks one part of the
//! contract; [`run_all`] runs them in turn. Backends call it from their own tests.

use std::collections::BTreeMap;

use serde_json::json;

use super::{
    CollectionSpec, Condition, DenseSpec, Direction, FieldValue, Filter, IndexKind, OrderBy, Point, QueryRequest,
    Range, ScrollRequest, SparseSpec, VectorData, VectorSelection, VectorStore,
};

fn spec(name: &str) -> CollectionSpec {
    CollectionSpec {
        name: name.to_string(),
        dense: vec![DenseSpec {
            name: "dense".into(),
            dim: 4,
            graph: false,
        }],
        sparse: vec![SparseSpec {
            name: "kw".into(),
            idf: true,
        }],
        indexes: vec![
            ("user".into(), IndexKind::Tenant),
            ("n".into(), IndexKind::Integer),
            ("tag".into(), IndexKind::Keyword),
        ],
    }
}

fn point(i: u64, user: &str, with_vectors: bool) -> Point {
    let mut vectors = BTreeMap::new();
    if with_vectors {
        let x = i as f32;
        vectors.insert("dense".into(), VectorData::Dense(vec![1.0, x, 0.5, -x]));
        vectors.insert(
            "kw".into(),
            VectorData::Sparse {
                indices: vec![1, (i % 7) as u32 + 2],
                values: vec![1.0, 0.5],
            },
        );
    }
    let mut payload = super::Payload::new();
    payload.insert("user".into(), json!(user));
    payload.insert("n".into(), json!(i));
    payload.insert("tag".into(), json!(if i.is_multiple_of(2) { "even" } else { "odd" }));
    Point {
        id: uuid::Uuid::from_u128(u128::from(i) + 1),
        vectors,
        payload,
    }
}

/// Ensuring twice is harmless; upserted points come back by id, in the order asked.
pub async fn upsert_retrieve_roundtrip(store: &dyn VectorStore, name: &str) {
    store.ensure_collection(&spec(name)).await.unwrap();
    store.ensure_collection(&spec(name)).await.unwrap();
    store
        .upsert(name, vec![point(1, "a", true), point(2, "a", false)])
        .await
        .unwrap();
    let ids = vec![
        uuid::Uuid::from_u128(3),
        uuid::Uuid::from_u128(2),
        uuid::Uuid::from_u128(99),
    ];
    let got = store.retrieve(name, ids, VectorSelection::All).await.unwrap();
    assert_eq!(got.len(), 2, "missing ids are skipped");
    assert_eq!(got[0].payload["n"], json!(2));
    assert_eq!(got[1].payload["n"], json!(1));
    assert!(got[1].vectors.contains_key("dense") && got[0].vectors.is_empty());
    assert!(got[1].vectors.contains_key("kw"));

    // A selection reads just the slots named; `None` reads the payload alone.
    let one = vec![uuid::Uuid::from_u128(2)];
    let only_kw = store
        .retrieve(name, one.clone(), VectorSelection::Only(vec!["kw".into()]))
        .await
        .unwrap();
    assert_eq!(only_kw[0].vectors.keys().collect::<Vec<_>>(), ["kw"]);
    assert_eq!(only_kw[0].vectors["kw"], got[1].vectors["kw"]);
    assert_eq!(
        only_kw[0].payload["n"],
        json!(1),
        "the payload comes with any selection"
    );
    let bare = store.retrieve(name, one, VectorSelection::None).await.unwrap();
    assert!(bare[0].vectors.is_empty() && bare[0].payload["n"] == json!(1));
}

/// `describe` gives back the spec the collection was ensured with (slots and index kinds).
pub async fn describe_returns_the_spec(store: &dyn VectorStore, name: &str) {
    let mut wanted = spec(name);
    store.ensure_collection(&wanted).await.unwrap();
    let mut got = store.describe(name).await.unwrap();
    wanted.indexes.sort_by(|a, b| a.0.cmp(&b.0));
    got.indexes.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, wanted);
    // A slot added later (another embedding model) is described too, with its vector index.
    wanted.dense.push(DenseSpec {
        name: "other".into(),
        dim: 3,
        graph: true,
    });
    store.ensure_collection(&wanted).await.unwrap();
    let got = store.describe(name).await.unwrap();
    assert_eq!(got.dense, wanted.dense);
    // An existing slot asked for a vector index gets one; so does a slot created with one.
    wanted.dense[0].graph = true;
    store.ensure_collection(&wanted).await.unwrap();
    assert_eq!(store.describe(name).await.unwrap().dense, wanted.dense);
    let created = CollectionSpec {
        name: format!("{name}_graph"),
        ..wanted.clone()
    };
    store.ensure_collection(&created).await.unwrap();
    assert_eq!(store.describe(&created.name).await.unwrap().dense, wanted.dense);
    assert!(matches!(
        store.describe(&format!("{name}_missing")).await,
        Err(crate::store::StoreError::NoSuchCollection(_))
    ));
}

/// Upserting the same id replaces the point; set_payload merges keys.
pub async fn upsert_overwrites_and_set_payload_merges(store: &dyn VectorStore, name: &str) {
    store.ensure_collection(&spec(name)).await.unwrap();
    store.upsert(name, vec![point(1, "a", false)]).await.unwrap();
    let mut p = point(1, "a", false);
    p.payload.insert("n".into(), json!(100));
    store.upsert(name, vec![p]).await.unwrap();
    assert_eq!(store.count(name, None).await.unwrap(), 1);
    let mut extra = super::Payload::new();
    extra.insert("tag".into(), json!("changed"));
    store
        .set_payload(name, vec![uuid::Uuid::from_u128(2)], extra)
        .await
        .unwrap();
    let got = store
        .retrieve(name, vec![uuid::Uuid::from_u128(2)], VectorSelection::None)
        .await
        .unwrap();
    assert_eq!(got[0].payload["n"], json!(100));
    assert_eq!(got[0].payload["tag"], json!("changed"));
}

/// `insert_if_absent` writes only a new id; of many racing callers for one id exactly one
/// wins. `set_payload_by_filter` changes only the points the filter matches (compare-and-set).
pub async fn insert_if_absent_and_conditional_set(store: &dyn VectorStore, name: &str) {
    store.ensure_collection(&spec(name)).await.unwrap();
    assert!(store.insert_if_absent(name, point(1, "a", true)).await.unwrap());
    let mut other = point(1, "b", false);
    other.payload.insert("n".into(), json!(999));
    assert!(!store.insert_if_absent(name, other).await.unwrap());
    let kept = store
        .retrieve(name, vec![uuid::Uuid::from_u128(2)], VectorSelection::All)
        .await
        .unwrap();
    assert_eq!(kept[0].payload["user"], json!("a"), "the first insert is kept");
    assert!(kept[0].vectors.contains_key("dense"));
    // Racing inserts of one id, each with its own payload: one winner.
    let wins = futures_join_all((0..8).map(|i| {
        let mut p = point(50, "race", false);
        p.payload.insert("writer".into(), json!(i));
        store.insert_if_absent(name, p)
    }))
    .await;
    assert_eq!(wins.into_iter().filter(|w| *w.as_ref().unwrap()).count(), 1);
    // Compare-and-set: only where n is still below 5.
    store
        .upsert(name, (10..13).map(|i| point(i, "a", false)).collect())
        .await
        .unwrap();
    let mut set = super::Payload::new();
    set.insert("tag".into(), json!("cas"));
    store
        .set_payload_by_filter(
            name,
            Filter::must(Condition::HasId(vec![
                uuid::Uuid::from_u128(12),
                uuid::Uuid::from_u128(2),
            ]))
            .and(Condition::Range(
                "n".into(),
                Range {
                    lt: Some(5.0),
                    ..Range::default()
                },
            )),
            set,
        )
        .await
        .unwrap();
    let got = store
        .retrieve(
            name,
            vec![uuid::Uuid::from_u128(2), uuid::Uuid::from_u128(12)],
            VectorSelection::None,
        )
        .await
        .unwrap();
    assert_eq!(got[0].payload["tag"], json!("cas"), "n = 1 < 5: set");
    assert_eq!(got[1].payload["tag"], json!("odd"), "n = 11: untouched");
}

/// Run futures concurrently on the current task (no extra dependency).
async fn futures_join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let futures: Vec<_> = futures.map(Box::pin).collect();
    let mut results = Vec::with_capacity(futures.len());
    let mut pending: Vec<_> = futures.into_iter().map(Some).collect();
    let mut outputs: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all_done = true;
        for (slot, out) in pending.iter_mut().zip(outputs.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *out = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all_done = false,
                }
            }
        }
        if all_done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    results.extend(outputs.into_iter().flatten());
    results
}

/// Delete by ids and by filter remove exactly what they name.
pub async fn delete_by_ids_and_filter(store: &dyn VectorStore, name: &str) {
    store.ensure_collection(&spec(name)).await.unwrap();
    store
        .upsert(name, (0..10).map(|i| point(i, "a", false)).collect())
        .await
        .unwrap();
    store
        .delete(name, vec![uuid::Uuid::from_u128(1), uuid::Uuid::from_u128(500)])
        .await
        .unwrap();
    assert_eq!(store.count(name, None).await.unwrap(), 9);
    store
        .delete_by_filter(name, Filter::must(Condition::Eq("tag".into(), "odd".into())))
        .await
        .unwrap();
    assert_eq!(store.count(name, None).await.unwrap(), 4);
}

/// Scroll honours filters, ranges, order_by with start_from, and id paging.
pub async fn scroll_filter_order_by_pages(store: &dyn VectorStore, name: &str) {
    store.ensure_collection(&spec(name)).await.unwrap();
    let mut points: Vec<_> = (0..30).map(|i| point(i, "a", false)).collect();
    points.extend((30..40).map(|i| point(i, "b", false)));
    store.upsert(name, points).await.unwrap();
    let req = |dir, start| ScrollRequest {
        filter: Some(Filter::must(Condition::Eq("user".into(), "a".into()))),
        order_by: Some(OrderBy {
            field: "n".into(),
            direction: dir,
            start_from: start,
        }),
        limit: 5,
        ..ScrollRequest::default()
    };
    let last = store.scroll(name, req(Direction::Desc, None)).await.unwrap();
    let ns: Vec<_> = last.records.iter().map(|r| r.payload["n"].as_u64().unwrap()).collect();
    assert_eq!(ns, vec![29, 28, 27, 26, 25]);
    let from = store.scroll(name, req(Direction::Asc, Some(10.0))).await.unwrap();
    let ns: Vec<_> = from.records.iter().map(|r| r.payload["n"].as_u64().unwrap()).collect();
    assert_eq!(ns, vec![10, 11, 12, 13, 14]);
    let ranged = Filter::must(Condition::Range(
        "n".into(),
        Range {
            gte: Some(35.0),
            ..Range::default()
        },
    ));
    assert_eq!(store.count(name, Some(ranged)).await.unwrap(), 5);
    let mut seen = 0;
    let mut offset = None;
    loop {
        let page = store
            .scroll(
                name,
                ScrollRequest {
                    limit: 7,
                    offset,
                    ..ScrollRequest::default()
                },
            )
            .await
            .unwrap();
        seen += page.records.len();
        match page.next_offset {
            Some(o) => offset = Some(o),
            None => break,
        }
    }
    assert_eq!(seen, 40);
}

/// Sparse and dense queries honour the filter (tenant scoping).
pub async fn queries_honour_filter(store: &dyn VectorStore, name: &str) {
    store.ensure_collection(&spec(name)).await.unwrap();
    let mut points: Vec<_> = (0..10).map(|i| point(i, "a", true)).collect();
    points.extend((10..20).map(|i| point(i, "b", true)));
    store.upsert(name, points).await.unwrap();
    let only_b = Filter::must(Condition::Eq("user".into(), "b".into()));
    for (using, vector) in [
        (
            "kw",
            VectorData::Sparse {
                indices: vec![1],
                values: vec![1.0],
            },
        ),
        ("dense", VectorData::Dense(vec![1.0, 1.0, 0.5, -1.0])),
    ] {
        let hits = store
            .query(
                name,
                QueryRequest {
                    using: using.into(),
                    vector,
                    filter: Some(only_b.clone()),
                    limit: 50,
                    with_payload: true,
                    exact: false,
                },
            )
            .await
            .unwrap();
        assert_eq!(hits.len(), 10, "{using}");
        assert!(hits.iter().all(|h| h.payload["user"] == json!("b")), "{using}");
        assert!(
            hits.windows(2).all(|w| w[0].score >= w[1].score),
            "{using}: sorted by score"
        );
    }
}

/// An exact query (every admitted point scored) and an ordinary one agree where no index
/// changes the answer, and both honour the filter. (Recall of a built graph is measured by
/// `bench --resources N --dense`, at sizes where the engine uses one.)
pub async fn exact_queries_agree(store: &dyn VectorStore, name: &str) {
    let mut spec = spec(name);
    spec.dense[0].graph = true;
    store.ensure_collection(&spec).await.unwrap();
    let points: Vec<Point> = (0..40)
        .map(|i| point(i, if i % 2 == 0 { "a" } else { "b" }, true))
        .collect();
    store.upsert(name, points).await.unwrap();
    let ask = |exact: bool| QueryRequest {
        using: "dense".into(),
        vector: VectorData::Dense(vec![1.0, 3.0, 0.5, -3.0]),
        filter: Some(Filter::must(Condition::Eq("user".into(), "a".into()))),
        limit: 5,
        with_payload: true,
        exact,
    };
    let exact = store.query(name, ask(true)).await.unwrap();
    let indexed = store.query(name, ask(false)).await.unwrap();
    assert_eq!(exact.len(), 5);
    let ids = |hits: &[crate::store::Hit]| hits.iter().map(|h| h.id).collect::<Vec<_>>();
    assert_eq!(ids(&exact), ids(&indexed));
    assert!(
        exact.iter().all(|h| h.payload["user"] == json!("a")),
        "the filter holds"
    );
}

/// Count and facet are exact.
pub async fn count_and_facet(store: &dyn VectorStore, name: &str) {
    store.ensure_collection(&spec(name)).await.unwrap();
    store
        .upsert(name, (0..25).map(|i| point(i, "a", false)).collect())
        .await
        .unwrap();
    let facets = store.facet(name, "tag", None, 10).await.unwrap();
    assert_eq!(
        facets,
        vec![
            (FieldValue::Str("even".into()), 13),
            (FieldValue::Str("odd".into()), 12)
        ]
    );
    let odd = Filter::must(Condition::Eq("tag".into(), "odd".into()));
    assert_eq!(store.count(name, Some(odd)).await.unwrap(), 12);
}

/// After `close`, every call is refused with [`StoreError::Closed`] (nothing panics) and a
/// second `close` is `Ok`. Closes the store: run it last.
pub async fn closed_store_refuses_every_call(store: &dyn VectorStore, name: &str) {
    use crate::store::StoreError;
    store.ensure_collection(&spec(name)).await.unwrap();
    store.upsert(name, vec![point(1, "a", true)]).await.unwrap();
    store.close().await.unwrap();
    let closed = |r: Result<(), StoreError>| assert!(matches!(r, Err(StoreError::Closed)), "{r:?}");
    closed(store.upsert(name, vec![point(2, "b", true)]).await);
    closed(store.ensure_collection(&spec(name)).await);
    closed(
        store
            .retrieve(name, vec![uuid::Uuid::from_u128(2)], VectorSelection::None)
            .await
            .map(|_| ()),
    );
    closed(store.count(name, None).await.map(|_| ()));
    closed(store.scroll(name, ScrollRequest::default()).await.map(|_| ()));
    closed(store.stats().await.map(|_| ()));
    closed(store.flush().await);
    store.close().await.unwrap();
}

/// Run every check, each on its own collection, then the close check (which closes the store).
pub async fn run_all(store: &dyn VectorStore, prefix: &str) {
    upsert_retrieve_roundtrip(store, &format!("{prefix}_roundtrip")).await;
    describe_returns_the_spec(store, &format!("{prefix}_describe")).await;
    upsert_overwrites_and_set_payload_merges(store, &format!("{prefix}_overwrite")).await;
    insert_if_absent_and_conditional_set(store, &format!("{prefix}_insert")).await;
    delete_by_ids_and_filter(store, &format!("{prefix}_delete")).await;
    scroll_filter_order_by_pages(store, &format!("{prefix}_scroll")).await;
    queries_honour_filter(store, &format!("{prefix}_query")).await;
    exact_queries_agree(store, &format!("{prefix}_exact")).await;
    count_and_facet(store, &format!("{prefix}_facet")).await;
    closed_store_refuses_every_call(store, &format!("{prefix}_closed")).await;
}
