//! Test helpers: a store in a temp dir with a key file beside (not inside) the data dir.

use std::path::{Path, PathBuf};

use cloudops_storage_service::{ConfigKey, StorageConfig, StorageService};

pub(crate) struct TestStore {
    pub(crate) dir: tempfile::TempDir,
}

impl TestStore {
    pub(crate) fn new() -> Self {
        TestStore {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub(crate) fn key_file(&self) -> PathBuf {
        self.dir.path().join("keys/master.key")
    }

    /// A file-key config with keyword search only (tests that need the model ask for it).
    pub(crate) fn config(&self) -> StorageConfig {
        StorageConfig::builder()
            .with_data_dir(self.data_dir())
            .with_config(ConfigKey::KeySource, "file")
            .with_config(ConfigKey::KeyFile, self.key_file().display().to_string())
            .with_config(ConfigKey::EmbeddingProvider, "none")
            .build()
            .expect("valid config")
    }

    pub(crate) async fn open(&self) -> StorageService {
        StorageService::open(self.config()).await.expect("open store")
    }
}

/// Every regular file under `dir`, recursively.
pub(crate) fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
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

/// Files under `dir` whose bytes contain `needle`.
pub(crate) fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    all_files(dir)
        .into_iter()
        .filter(|p| std::fs::read(p).unwrap().windows(needle.len()).any(|w| w == needle))
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
