//! Test helpers: a store in a temp dir with a key file beside (not inside) the data dir.

use std::path::{Path, PathBuf};

use cloudops_storage_service::{ConfigKey, StorageConfig, StorageService};

pub(crate) struct TestStore {
    pub(crate) dir: tempfile::TempDir,
    /// This store's collection prefix on the test server (remote backend only).
    prefix: String,
}

/// The backend the integration tests run on: `CLOUDOPS_TEST_BACKEND=remote` runs the same tests
/// against the Qdrant server at `CLOUDOPS_TEST_QDRANT_URL` (scripts/test.sh does both).
pub(crate) fn remote_backend() -> Option<String> {
    if std::env::var("CLOUDOPS_TEST_BACKEND").as_deref() != Ok("remote") {
        return None;
    }
    let url = std::env::var("CLOUDOPS_TEST_QDRANT_URL")
        .or_else(|_| std::env::var("QDRANT_URL"))
        .expect("CLOUDOPS_TEST_BACKEND=remote needs CLOUDOPS_TEST_QDRANT_URL (scripts/test.sh starts a server)");
    Some(url)
}

/// Points the backend adds of its own: on a server, the record of which store (key envelope)
/// its collections belong to.
pub(crate) fn store_record_points() -> u64 {
    u64::from(remote_backend().is_some())
}

impl TestStore {
    pub(crate) fn new() -> Self {
        TestStore {
            dir: tempfile::tempdir().expect("temp dir"),
            prefix: format!("it{}_", uuid::Uuid::new_v4().simple()),
        }
    }

    /// The builder of [`TestStore::config`], to add settings before building.
    pub(crate) fn builder(&self) -> cloudops_storage_service::StorageConfigBuilder {
        let mut builder = StorageConfig::builder()
            .with_data_dir(self.data_dir())
            .with_config(ConfigKey::KeySource, "file")
            .with_config(ConfigKey::KeyFile, self.key_file().display().to_string())
            .with_config(ConfigKey::EmbeddingProvider, "none");
        if let Some(url) = remote_backend() {
            builder = builder
                .with_config(ConfigKey::StoreMode, "remote")
                .with_config(ConfigKey::StoreUrl, url)
                .with_config(ConfigKey::StoreCollectionPrefix, self.prefix.clone());
        }
        builder
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub(crate) fn key_file(&self) -> PathBuf {
        self.dir.path().join("keys/master.key")
    }

    /// A file-key config with keyword search only (tests that need the model ask for it).
    pub(crate) fn config(&self) -> StorageConfig {
        self.builder().build().expect("valid config")
    }

    /// The raw engine under this test's store (closed service): the embedded store in the data
    /// dir, or this test's collections on the server.
    #[cfg_attr(not(feature = "bert"), allow(dead_code))]
    pub(crate) async fn raw_store(&self) -> Box<dyn cloudops_storage_service::store::VectorStore> {
        #[cfg(feature = "remote")]
        if let Some(url) = remote_backend() {
            let mut options = cloudops_storage_service::store::remote::RemoteOptions::new(&url);
            options.collection_prefix = self.prefix.clone();
            return Box::new(
                cloudops_storage_service::store::remote::RemoteStore::connect(options)
                    .await
                    .expect("connect to the test server"),
            );
        }
        Box::new(cloudops_storage_service::store::EmbeddedStore::open(&self.data_dir()).expect("open the store"))
    }

    pub(crate) async fn open(&self) -> StorageService {
        StorageService::open(self.config()).await.expect("open store")
    }
}

/// On the remote backend, the test's collections are dropped from the server when it ends: a
/// server keeps every collection's segments memory-mapped, and a test run makes hundreds.
impl Drop for TestStore {
    fn drop(&mut self) {
        #[cfg(feature = "remote")]
        if let Some(url) = remote_backend() {
            use cloudops_storage_service::store::remote::{RemoteOptions, RemoteStore};
            use cloudops_storage_service::store::VectorStore;
            let prefix = self.prefix.clone();
            // Its own thread and runtime: a test's runtime may be the one dropping us.
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                runtime.block_on(async {
                    let mut options = RemoteOptions::new(&url);
                    options.collection_prefix = prefix;
                    let store = RemoteStore::connect(options).await?;
                    for collection in store.stats().await? {
                        store.drop_collection(&collection.name).await?;
                    }
                    store.close().await?;
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
                })
            })
            .join();
            match dropped {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("note: {} left on the test server: {e}", self.prefix),
                Err(_) => eprintln!("note: {} left on the test server (cleanup panicked)", self.prefix),
            }
        }
    }
}

/// Where this test's store keeps bytes: the data dir, and on the remote backend also this
/// test's collection folders in the test server's storage (`CLOUDOPS_TEST_QDRANT_STORAGE`), so
/// no-plaintext checks scan what the server wrote.
///
/// `None` (the check is skipped, with a note) on a server whose files are not reachable
/// (`QDRANT_URL` of your own); under `CI=true` that fails.
pub(crate) fn stored_bytes_dirs(t: &TestStore) -> Option<Vec<PathBuf>> {
    let mut dirs = vec![t.data_dir()];
    if remote_backend().is_some() {
        let Ok(storage) = std::env::var("CLOUDOPS_TEST_QDRANT_STORAGE") else {
            assert!(
                std::env::var("CI").is_err(),
                "CI=true: the no-plaintext checks need the test server's files (CLOUDOPS_TEST_QDRANT_STORAGE, set by scripts/qdrant-server.sh)"
            );
            eprintln!("SKIPPED: the server's files are not reachable here (CLOUDOPS_TEST_QDRANT_STORAGE)");
            return None;
        };
        let collections = PathBuf::from(storage).join("collections");
        let ours: Vec<PathBuf> = std::fs::read_dir(&collections)
            .expect("the test server's collections folder")
            .map(|e| e.expect("entry").path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&t.prefix))
            })
            .collect();
        assert!(
            !ours.is_empty(),
            "no collection of this test under {}",
            collections.display()
        );
        dirs.extend(ours);
    }
    Some(dirs)
}

/// Every regular file under `dir`, recursively. `dir` must exist; folders below it that a
/// running server removes while it is walked (a Qdrant server's segments are replaced as it
/// optimises) are skipped.
pub(crate) fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && d != dir => continue,
            Err(e) => panic!("cannot list {}: {e}", d.display()),
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// Files under `dir` whose bytes contain `needle` (a file removed between the walk and the
/// read — a server optimising its segments — holds nothing any more and is skipped).
pub(crate) fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    all_files(dir)
        .into_iter()
        .filter(|p| match std::fs::read(p) {
            Ok(bytes) => bytes.windows(needle.len()).any(|w| w == needle),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => panic!("cannot read {}: {e}", p.display()),
        })
        .collect()
}

/// Number of regular files under `dir` (to prove a scan looked at something).
pub(crate) fn file_count(dir: &Path) -> usize {
    all_files(dir).len()
}

/// The real test model (all-MiniLM-L6-v2) fetched by scripts/fetch-test-model.sh.
///
/// Missing model: the test is skipped with a note, except under `CI=true`, where it fails.
pub(crate) fn test_model_dir() -> Option<PathBuf> {
    if cfg!(not(feature = "bert")) {
        eprintln!("SKIPPED: built without the `bert` feature (no local model)");
        return None;
    }
    let dir = std::env::var_os("CLOUDOPS_TEST_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(cloudops_storage_service::default_model_dir);
    if dir.join("model.safetensors").is_file() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "test model missing in {} under CI=true: run scripts/fetch-test-model.sh",
            dir.display()
        );
    }
    eprintln!(
        "SKIPPED: no test model in {} (run scripts/fetch-test-model.sh)",
        dir.display()
    );
    None
}

impl TestStore {
    /// A config using the real test model for embeddings.
    pub(crate) fn config_with_model(&self, model_dir: &Path) -> StorageConfig {
        let mut config = self.config();
        config.embedding.provider = cloudops_storage_service::EmbeddingProvider::Bert;
        config.embedding.model_dir = Some(model_dir.to_path_buf());
        config
    }
}

/// Now, in unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since.as_millis()).expect("ms fit in i64")
}

/// A random base64 KEK for the env key source.
#[cfg_attr(not(feature = "s3"), allow(dead_code))]
pub(crate) fn random_env_key() -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// The records of `collection` as the raw engine holds them (the service must be closed).
pub(crate) async fn raw_records(t: &TestStore, collection: &str) -> Vec<cloudops_storage_service::store::Record> {
    use cloudops_storage_service::store::{EmbeddedStore, ScrollRequest, VectorStore};
    let store = EmbeddedStore::open(&t.data_dir()).unwrap();
    let page = store
        .scroll(
            collection,
            ScrollRequest {
                limit: 100,
                ..ScrollRequest::default()
            },
        )
        .await
        .unwrap();
    store.close().await.unwrap();
    page.records
}

/// Open the raw engine (the service must be closed) and let `edit` change the payload of
/// every record of `collection` (it returns whether it changed the record).
pub(crate) async fn rewrite_records(
    t: &TestStore,
    collection: &str,
    mut edit: impl FnMut(&mut serde_json::Map<String, serde_json::Value>) -> bool,
) {
    use cloudops_storage_service::store::{EmbeddedStore, Point, VectorStore};
    let mut changed = Vec::new();
    for mut record in raw_records(t, collection).await {
        if edit(&mut record.payload) {
            changed.push(Point {
                id: record.id,
                vectors: Default::default(),
                payload: record.payload,
            });
        }
    }
    assert!(!changed.is_empty(), "nothing was edited in {collection}");
    let store = EmbeddedStore::open(&t.data_dir()).unwrap();
    store.upsert(collection, changed).await.unwrap();
    store.flush().await.unwrap();
    store.close().await.unwrap();
}

/// Open `t`'s store through a `FaultyStore` (faults to inject, or a hostile server to play);
/// returns the service and the wrapper.
pub(crate) async fn open_faulty(
    t: &TestStore,
) -> (
    StorageService,
    std::sync::Arc<cloudops_storage_service::store::faulty::FaultyStore>,
) {
    use cloudops_storage_service::store::faulty::FaultyStore;
    use cloudops_storage_service::store::VectorStore;
    use std::sync::Arc;
    let slot: Arc<std::sync::Mutex<Option<Arc<FaultyStore>>>> = Arc::default();
    let keep = slot.clone();
    let s = StorageService::open_with_store_wrapper(t.config(), move |inner| {
        let faulty = FaultyStore::new(inner);
        *keep.lock().unwrap() = Some(faulty.clone());
        faulty as Arc<dyn VectorStore>
    })
    .await
    .unwrap();
    let faulty = slot.lock().unwrap().take().unwrap();
    (s, faulty)
}
