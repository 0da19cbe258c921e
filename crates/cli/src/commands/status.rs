//! `init` and `status`.

use cloudops_storage_service::{Health, StorageConfig, StorageService};

use crate::output::{self, Output};

pub(crate) async fn init(config: StorageConfig, out: Output) -> anyhow::Result<()> {
    let service = StorageService::open(config).await?;
    let health = service.health().await?;
    service.shutdown().await?;
    out.emit(&health, |h| {
        println!("Store ready in {}", h.data_dir.display());
        println!("  store id    {}", h.store_id);
        println!("  key source  {} ({})", h.key_source, h.key_location);
    })
}

pub(crate) async fn status(config: StorageConfig, out: Output) -> anyhow::Result<()> {
    let service = StorageService::open(config).await?;
    let health = service.health().await?;
    service.shutdown().await?;
    out.emit(&health, print_health)
}

pub(crate) fn print_health(h: &Health) {
    println!("data dir     {}", h.data_dir.display());
    println!(
        "store        {} ({})",
        h.backend,
        if h.store_reachable {
            "reachable"
        } else {
            "NOT reachable"
        }
    );
    println!("store id     {}", h.store_id);
    println!("key source   {} ({})", h.key_source, h.key_location);
    println!("size on disk {}", output::bytes(h.data_dir_bytes));
    if let Some(free) = h.disk_free_bytes {
        println!("disk free    {}", output::bytes(free));
    }
    match (&h.embedding_model, &h.stored_embedding) {
        (Some(model), _) => println!(
            "embedding    {model} ({} message(s) waiting for a vector)",
            h.pending_embeddings
        ),
        (None, Some(stored)) => println!(
            "embedding    off in this process (store indexed with {}): keyword search only",
            stored.model_id
        ),
        (None, None) => println!(
            "embedding    off: keyword search only (run scripts/fetch-test-model.sh to enable semantic search)"
        ),
    }
    let rows = h
        .collections
        .iter()
        .map(|c| vec![c.name.clone(), c.points.to_string(), c.segments.to_string()]);
    println!("{}", output::table(&["COLLECTION", "POINTS", "SEGMENTS"], rows));
}
