//! `init` and `status`.

use cloudops_storage_service::{Health, RecoveryKit, StorageConfig, StorageService};

use crate::output::{self, Output};

/// What `init` reports: the store's health and, when it had none, its new recovery kit.
#[derive(serde::Serialize)]
struct Initialized {
    #[serde(flatten)]
    health: Health,
    /// Issued by this `init` (shown once); `None` when the store already had one.
    recovery_kit: Option<RecoveryKit>,
}

pub(crate) async fn init(config: StorageConfig, out: Output) -> anyhow::Result<()> {
    let service = StorageService::open(config).await?;
    let kit = match service.key_status().recovery_kit_created_at_ms {
        None => service.issue_recovery_kit().await.map(Some),
        Some(_) => Ok(None),
    };
    let health = service.health().await;
    service.shutdown().await?;
    let report = Initialized {
        health: health?,
        recovery_kit: kit?,
    };
    out.emit(&report, |r| {
        let h = &r.health;
        println!("Store ready in {}", h.data_dir.display());
        println!("  store id    {}", h.store_id);
        println!("  key source  {} ({})", h.key_source, h.key_location);
        match &r.recovery_kit {
            Some(kit) => {
                println!();
                println!("{}", kit.document());
                println!("This recovery kit is shown once and not stored anywhere: save it now.");
            }
            None => println!(
                "  recovery    {}",
                super::keys::recovery_line(h.recovery_kit_created_at_ms)
            ),
        }
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
    println!(
        "recovery kit {}",
        super::keys::recovery_line(h.recovery_kit_created_at_ms)
    );
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
    if h.backup.journal_shipping {
        let shipped = h.backup.journal_shipped_at_ms.map_or("never".to_string(), output::time);
        match h.backup.journal_unshipped_since_ms {
            None => println!("journal      every write shipped to the bucket (last shipment {shipped})"),
            Some(since) => println!(
                "journal      writes since {} not shipped yet (last shipment {shipped})",
                output::time(since)
            ),
        }
        if let Some(error) = &h.backup.journal_error {
            println!("             last shipment failed: {error}");
        }
    }
    let rows = h
        .collections
        .iter()
        .map(|c| vec![c.name.clone(), c.points.to_string(), c.segments.to_string()]);
    println!("{}", output::table(&["COLLECTION", "POINTS", "SEGMENTS"], rows));
}
