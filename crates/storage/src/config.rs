//! Service configuration: defaults < TOML file < `CLOUDOPS_*` environment < explicit settings.
//!
//! Every source goes through the same [`ConfigKey`] parser, so a key has one name and one
//! validation whether it comes from `config.toml`, the environment or a CLI flag.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::backup::BackupConfig;
pub use crate::chat::{ChatConfig, DEFAULT_MAX_MESSAGE_BYTES};
pub use crate::crypto::{
    default_key_file, KeyConfig, KeySourceKind, Passphrase, DEFAULT_KEY_ENV_VAR, DEFAULT_PASSPHRASE_ENV_VAR,
};
pub use crate::embed::{default_model_dir, EmbeddingConfig, EmbeddingProvider};
pub use crate::store::StoreConfig;

/// Name of the config file looked up inside the data dir.
pub const CONFIG_FILE_NAME: &str = "config.toml";

/// Errors from loading or validating configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A key has a value that cannot be used.
    #[error("config `{key}` = {value:?}: {reason} ({fix})")]
    Invalid {
        /// The config key, e.g. `keys.source`.
        key: String,
        /// The rejected value.
        value: String,
        /// Why it is rejected.
        reason: String,
        /// How to fix it.
        fix: String,
    },
    /// A key that does not exist.
    #[error("unknown config key `{key}` (known keys: {known})")]
    UnknownKey {
        /// The unknown key.
        key: String,
        /// Comma-separated list of valid keys.
        known: String,
    },
    /// The config file could not be read.
    #[error("cannot read config file {path}")]
    Unreadable {
        /// Path of the file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML for this schema.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// Path of the file.
        path: String,
        /// The parser's message (names the offending key and line).
        message: String,
    },
}

/// The complete service configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directory holding the store. Default: [`default_data_dir`].
    pub data_dir: PathBuf,
    /// Key management.
    pub keys: KeyConfig,
    /// Chat settings.
    pub chat: ChatConfig,
    /// Store settings.
    pub store: StoreConfig,
    /// Embedder selection.
    pub embedding: EmbeddingConfig,
    /// Backup retention.
    pub backup: BackupConfig,
    /// Create the store when the data dir holds none. Default: true (the app's behaviour);
    /// the CLI turns it off for every command but `init` and `demo`.
    #[serde(skip)]
    pub create_if_missing: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: default_data_dir(),
            keys: KeyConfig::default(),
            chat: ChatConfig::default(),
            store: StoreConfig::default(),
            embedding: EmbeddingConfig::default(),
            backup: BackupConfig::default(),
            create_if_missing: true,
        }
    }
}

/// A settable configuration key: one name per setting for files, env and flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigKey {
    /// `data_dir` / `CLOUDOPS_DATA_DIR`
    DataDir,
    /// `keys.source` / `CLOUDOPS_KEY_SOURCE`
    KeySource,
    /// `keys.file` / `CLOUDOPS_KEY_FILE`
    KeyFile,
    /// `keys.env_var` / `CLOUDOPS_KEY_ENV_VAR`
    KeyEnvVar,
    /// `keys.passphrase_env_var` / `CLOUDOPS_PASSPHRASE_ENV_VAR`
    PassphraseEnvVar,
    /// `chat.max_message_bytes` / `CLOUDOPS_MAX_MESSAGE_BYTES`
    MaxMessageBytes,
    /// `store.min_free_bytes` / `CLOUDOPS_MIN_FREE_BYTES`
    MinFreeBytes,
    /// `store.mode` / `CLOUDOPS_STORE_MODE`
    StoreMode,
    /// `store.url` / `CLOUDOPS_STORE_URL`
    StoreUrl,
    /// `store.api_key_env` / `CLOUDOPS_STORE_API_KEY_ENV`
    StoreApiKeyEnv,
    /// `store.tls` / `CLOUDOPS_STORE_TLS`
    StoreTls,
    /// `store.timeout_seconds` / `CLOUDOPS_STORE_TIMEOUT_SECONDS`
    StoreTimeoutSeconds,
    /// `store.collection_prefix` / `CLOUDOPS_STORE_COLLECTION_PREFIX`
    StoreCollectionPrefix,
    /// `store.replication_factor` / `CLOUDOPS_STORE_REPLICATION_FACTOR`
    StoreReplicationFactor,
    /// `store.sync` / `CLOUDOPS_STORE_SYNC`
    StoreSync,
    /// `backup.local_keep_days` / `CLOUDOPS_BACKUP_LOCAL_KEEP_DAYS`
    BackupLocalKeepDays,
    /// `backup.keep_last` / `CLOUDOPS_BACKUP_KEEP_LAST`
    BackupKeepLast,
    /// `backup.interval_minutes` / `CLOUDOPS_BACKUP_INTERVAL_MINUTES`
    BackupIntervalMinutes,
    /// `backup.s3.bucket` / `CLOUDOPS_BACKUP_S3_BUCKET`
    S3Bucket,
    /// `backup.s3.endpoint` / `CLOUDOPS_BACKUP_S3_ENDPOINT`
    S3Endpoint,
    /// `backup.s3.region` / `CLOUDOPS_BACKUP_S3_REGION`
    S3Region,
    /// `backup.s3.prefix` / `CLOUDOPS_BACKUP_S3_PREFIX`
    S3Prefix,
    /// `backup.s3.allow_insecure_http` / `CLOUDOPS_BACKUP_S3_ALLOW_INSECURE_HTTP`
    S3AllowInsecureHttp,
    /// `embedding.provider` / `CLOUDOPS_EMBEDDING_PROVIDER`
    EmbeddingProvider,
    /// `embedding.model_dir` / `CLOUDOPS_EMBEDDING_MODEL_DIR`
    EmbeddingModelDir,
    /// `embedding.url` / `CLOUDOPS_EMBEDDING_URL`
    EmbeddingUrl,
    /// `embedding.model` / `CLOUDOPS_EMBEDDING_MODEL`
    EmbeddingModel,
    /// `embedding.allow_insecure_http` / `CLOUDOPS_EMBEDDING_ALLOW_INSECURE_HTTP`
    EmbeddingAllowInsecureHttp,
}

impl ConfigKey {
    /// Every key.
    pub const ALL: [ConfigKey; 28] = [
        ConfigKey::DataDir,
        ConfigKey::KeySource,
        ConfigKey::KeyFile,
        ConfigKey::KeyEnvVar,
        ConfigKey::PassphraseEnvVar,
        ConfigKey::MaxMessageBytes,
        ConfigKey::MinFreeBytes,
        ConfigKey::StoreMode,
        ConfigKey::StoreUrl,
        ConfigKey::StoreApiKeyEnv,
        ConfigKey::StoreTls,
        ConfigKey::StoreTimeoutSeconds,
        ConfigKey::StoreCollectionPrefix,
        ConfigKey::StoreReplicationFactor,
        ConfigKey::StoreSync,
        ConfigKey::BackupLocalKeepDays,
        ConfigKey::BackupKeepLast,
        ConfigKey::BackupIntervalMinutes,
        ConfigKey::S3Bucket,
        ConfigKey::S3Endpoint,
        ConfigKey::S3Region,
        ConfigKey::S3Prefix,
        ConfigKey::S3AllowInsecureHttp,
        ConfigKey::EmbeddingProvider,
        ConfigKey::EmbeddingModelDir,
        ConfigKey::EmbeddingUrl,
        ConfigKey::EmbeddingModel,
        ConfigKey::EmbeddingAllowInsecureHttp,
    ];

    /// The dotted name used in TOML.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigKey::DataDir => "data_dir",
            ConfigKey::KeySource => "keys.source",
            ConfigKey::KeyFile => "keys.file",
            ConfigKey::KeyEnvVar => "keys.env_var",
            ConfigKey::PassphraseEnvVar => "keys.passphrase_env_var",
            ConfigKey::MaxMessageBytes => "chat.max_message_bytes",
            ConfigKey::MinFreeBytes => "store.min_free_bytes",
            ConfigKey::StoreMode => "store.mode",
            ConfigKey::StoreUrl => "store.url",
            ConfigKey::StoreApiKeyEnv => "store.api_key_env",
            ConfigKey::StoreTls => "store.tls",
            ConfigKey::StoreTimeoutSeconds => "store.timeout_seconds",
            ConfigKey::StoreCollectionPrefix => "store.collection_prefix",
            ConfigKey::StoreReplicationFactor => "store.replication_factor",
            ConfigKey::StoreSync => "store.sync",
            ConfigKey::BackupLocalKeepDays => "backup.local_keep_days",
            ConfigKey::BackupKeepLast => "backup.keep_last",
            ConfigKey::BackupIntervalMinutes => "backup.interval_minutes",
            ConfigKey::S3Bucket => "backup.s3.bucket",
            ConfigKey::S3Endpoint => "backup.s3.endpoint",
            ConfigKey::S3Region => "backup.s3.region",
            ConfigKey::S3Prefix => "backup.s3.prefix",
            ConfigKey::S3AllowInsecureHttp => "backup.s3.allow_insecure_http",
            ConfigKey::EmbeddingProvider => "embedding.provider",
            ConfigKey::EmbeddingModelDir => "embedding.model_dir",
            ConfigKey::EmbeddingUrl => "embedding.url",
            ConfigKey::EmbeddingModel => "embedding.model",
            ConfigKey::EmbeddingAllowInsecureHttp => "embedding.allow_insecure_http",
        }
    }

    /// The environment variable that overrides this key.
    pub fn env_var(self) -> &'static str {
        match self {
            ConfigKey::DataDir => "CLOUDOPS_DATA_DIR",
            ConfigKey::KeySource => "CLOUDOPS_KEY_SOURCE",
            ConfigKey::KeyFile => "CLOUDOPS_KEY_FILE",
            ConfigKey::KeyEnvVar => "CLOUDOPS_KEY_ENV_VAR",
            ConfigKey::PassphraseEnvVar => "CLOUDOPS_PASSPHRASE_ENV_VAR",
            ConfigKey::MaxMessageBytes => "CLOUDOPS_MAX_MESSAGE_BYTES",
            ConfigKey::MinFreeBytes => "CLOUDOPS_MIN_FREE_BYTES",
            ConfigKey::StoreMode => "CLOUDOPS_STORE_MODE",
            ConfigKey::StoreUrl => "CLOUDOPS_STORE_URL",
            ConfigKey::StoreApiKeyEnv => "CLOUDOPS_STORE_API_KEY_ENV",
            ConfigKey::StoreTls => "CLOUDOPS_STORE_TLS",
            ConfigKey::StoreTimeoutSeconds => "CLOUDOPS_STORE_TIMEOUT_SECONDS",
            ConfigKey::StoreCollectionPrefix => "CLOUDOPS_STORE_COLLECTION_PREFIX",
            ConfigKey::StoreReplicationFactor => "CLOUDOPS_STORE_REPLICATION_FACTOR",
            ConfigKey::StoreSync => "CLOUDOPS_STORE_SYNC",
            ConfigKey::BackupLocalKeepDays => "CLOUDOPS_BACKUP_LOCAL_KEEP_DAYS",
            ConfigKey::BackupKeepLast => "CLOUDOPS_BACKUP_KEEP_LAST",
            ConfigKey::BackupIntervalMinutes => "CLOUDOPS_BACKUP_INTERVAL_MINUTES",
            ConfigKey::S3Bucket => "CLOUDOPS_BACKUP_S3_BUCKET",
            ConfigKey::S3Endpoint => "CLOUDOPS_BACKUP_S3_ENDPOINT",
            ConfigKey::S3Region => "CLOUDOPS_BACKUP_S3_REGION",
            ConfigKey::S3Prefix => "CLOUDOPS_BACKUP_S3_PREFIX",
            ConfigKey::S3AllowInsecureHttp => "CLOUDOPS_BACKUP_S3_ALLOW_INSECURE_HTTP",
            ConfigKey::EmbeddingProvider => "CLOUDOPS_EMBEDDING_PROVIDER",
            ConfigKey::EmbeddingModelDir => "CLOUDOPS_EMBEDDING_MODEL_DIR",
            ConfigKey::EmbeddingUrl => "CLOUDOPS_EMBEDDING_URL",
            ConfigKey::EmbeddingModel => "CLOUDOPS_EMBEDDING_MODEL",
            ConfigKey::EmbeddingAllowInsecureHttp => "CLOUDOPS_EMBEDDING_ALLOW_INSECURE_HTTP",
        }
    }
}

impl FromStr for ConfigKey {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ConfigKey::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ConfigError::UnknownKey {
                key: s.to_string(),
                known: ConfigKey::ALL.map(ConfigKey::as_str).join(", "),
            })
    }
}

impl StorageConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> StorageConfigBuilder {
        StorageConfigBuilder::default()
    }

    /// Set one key from its textual value, validating it.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key, the value and the fix.
    pub fn set(&mut self, key: ConfigKey, value: &str) -> Result<(), ConfigError> {
        let invalid = |reason: &str, fix: &str| ConfigError::Invalid {
            key: key.as_str().to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
            fix: fix.to_string(),
        };
        match key {
            ConfigKey::DataDir => {
                if value.trim().is_empty() {
                    return Err(invalid("is empty", "give a directory path"));
                }
                self.data_dir = PathBuf::from(value);
            }
            ConfigKey::KeySource => {
                self.keys.source = value.parse().map_err(|e: String| invalid("unknown key source", &e))?;
            }
            ConfigKey::KeyFile => self.keys.file = Some(PathBuf::from(value)),
            ConfigKey::KeyEnvVar => self.keys.env_var = value.to_string(),
            ConfigKey::PassphraseEnvVar => self.keys.passphrase_env_var = value.to_string(),
            ConfigKey::MaxMessageBytes => {
                self.chat.max_message_bytes = value
                    .parse()
                    .map_err(|_| invalid("not a whole number", "give a size in bytes, e.g. 1048576"))?;
            }
            ConfigKey::MinFreeBytes => {
                self.store.min_free_bytes = value
                    .parse()
                    .map_err(|_| invalid("not a whole number", "give a size in bytes, e.g. 67108864"))?;
            }
            ConfigKey::StoreMode => {
                self.store.mode = value.parse().map_err(|e: String| invalid("unknown store mode", &e))?;
            }
            ConfigKey::StoreUrl => {
                if value.trim().is_empty() {
                    return Err(invalid(
                        "is empty",
                        "give the server's gRPC URL, e.g. http://127.0.0.1:6334",
                    ));
                }
                self.store.url = Some(value.to_string());
            }
            ConfigKey::StoreApiKeyEnv => {
                if value.trim().is_empty() {
                    return Err(invalid(
                        "is empty",
                        "give the name of an environment variable, e.g. QDRANT_API_KEY",
                    ));
                }
                self.store.api_key_env = value.to_string();
            }
            ConfigKey::StoreTls => {
                self.store.tls = Some(
                    value
                        .parse()
                        .map_err(|_| invalid("not true or false", "give true or false"))?,
                );
            }
            ConfigKey::StoreTimeoutSeconds => {
                let seconds: u64 = value
                    .parse()
                    .map_err(|_| invalid("not a whole number of seconds", "give e.g. 30"))?;
                if seconds == 0 {
                    return Err(invalid("must be at least 1", "give e.g. 30"));
                }
                self.store.timeout_seconds = seconds;
            }
            ConfigKey::StoreCollectionPrefix => {
                if !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                    return Err(invalid(
                        "may only hold letters, digits, `_` and `-`",
                        "give e.g. team_ops_",
                    ));
                }
                self.store.collection_prefix = value.to_string();
            }
            ConfigKey::StoreReplicationFactor => {
                let n: u32 = value
                    .parse()
                    .map_err(|_| invalid("not a whole number", "give e.g. 2 on a 3-node cluster"))?;
                if n == 0 {
                    return Err(invalid("must be at least 1", "give e.g. 2 on a 3-node cluster"));
                }
                self.store.replication_factor = n;
            }
            ConfigKey::StoreSync => {
                self.store.sync = value.parse().map_err(|e: String| invalid("unknown sync setting", &e))?;
            }
            ConfigKey::BackupLocalKeepDays => {
                self.backup.local_keep_days = value
                    .parse()
                    .map_err(|_| invalid("not a whole number of days", "give e.g. 7"))?;
            }
            ConfigKey::BackupKeepLast => {
                self.backup.keep_last = value
                    .parse()
                    .map_err(|_| invalid("not a whole number", "give e.g. 1 (the newest backup is always kept)"))?;
            }
            ConfigKey::BackupIntervalMinutes => {
                let minutes: u32 = value
                    .parse()
                    .map_err(|_| invalid("not a whole number of minutes", "give e.g. 60"))?;
                if minutes == 0 {
                    return Err(invalid("must be at least 1", "give e.g. 60"));
                }
                self.backup.interval_minutes = Some(minutes);
            }
            ConfigKey::S3Bucket => self.s3_mut(value).bucket = value.to_string(),
            ConfigKey::S3Endpoint => self.s3_mut(value).endpoint = Some(value.to_string()),
            ConfigKey::S3Region => self.s3_mut(value).region = Some(value.to_string()),
            ConfigKey::S3Prefix => self.s3_mut(value).prefix = value.to_string(),
            ConfigKey::S3AllowInsecureHttp => {
                self.s3_mut(value).allow_insecure_http = value
                    .parse()
                    .map_err(|_| invalid("not true or false", "give true or false"))?;
            }
            ConfigKey::EmbeddingProvider => {
                self.embedding.provider = value.parse().map_err(|e: String| invalid("unknown provider", &e))?;
            }
            ConfigKey::EmbeddingModelDir => self.embedding.model_dir = Some(PathBuf::from(value)),
            ConfigKey::EmbeddingUrl => self.embedding.url = value.to_string(),
            ConfigKey::EmbeddingModel => self.embedding.model = value.to_string(),
            ConfigKey::EmbeddingAllowInsecureHttp => {
                self.embedding.allow_insecure_http = value
                    .parse()
                    .map_err(|_| invalid("not true or false", "give true or false"))?;
            }
        }
        Ok(())
    }

    fn s3_mut(&mut self, _value: &str) -> &mut crate::backup::S3Config {
        self.backup
            .s3
            .get_or_insert_with(|| crate::backup::S3Config::new(String::new()))
    }

    /// Check the whole configuration once, before anything is opened.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_for(BuiltIn::THIS_BUILD)
    }

    /// [`StorageConfig::validate`] against the optional parts `built` says a build has: a
    /// setting that needs a part the build lacks is refused here, naming its cargo feature.
    fn validate_for(&self, built: BuiltIn) -> Result<(), ConfigError> {
        let invalid = |key: ConfigKey, value: String, reason: &str, fix: &str| ConfigError::Invalid {
            key: key.as_str().to_string(),
            value,
            reason: reason.to_string(),
            fix: fix.to_string(),
        };
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid(
                ConfigKey::DataDir,
                String::new(),
                "is empty",
                "give a directory path",
            ));
        }
        if self.chat.max_message_bytes == 0 || self.chat.max_message_bytes > 64 * 1024 * 1024 {
            return Err(invalid(
                ConfigKey::MaxMessageBytes,
                self.chat.max_message_bytes.to_string(),
                "must be between 1 byte and 64 MiB",
                "use the default 1048576 or another value in range",
            ));
        }
        for (key, var) in [
            (ConfigKey::KeyEnvVar, &self.keys.env_var),
            (ConfigKey::PassphraseEnvVar, &self.keys.passphrase_env_var),
        ] {
            if var.is_empty() || var.contains('=') || var.contains('\0') {
                return Err(invalid(
                    key,
                    var.clone(),
                    "is not a valid environment variable name",
                    "use a name like CLOUDOPS_KEY",
                ));
            }
        }
        if self.store.mode == crate::store::StoreMode::Remote {
            if self.store.url.as_deref().is_none_or(|u| u.trim().is_empty()) {
                return Err(invalid(
                    ConfigKey::StoreUrl,
                    String::new(),
                    "is missing while store.mode is remote",
                    "set store.url (CLOUDOPS_STORE_URL) to the server's gRPC URL, e.g. http://127.0.0.1:6334",
                ));
            }
            if !built.remote {
                return Err(invalid(
                    ConfigKey::StoreMode,
                    "remote".into(),
                    "this build has no remote store (the `remote` cargo feature is off)",
                    "use store.mode = \"embedded\", or build with the default features",
                ));
            }
        }
        if let Some(s3) = &self.backup.s3 {
            if s3.bucket.trim().is_empty() {
                return Err(invalid(
                    ConfigKey::S3Bucket,
                    String::new(),
                    "is missing while other backup.s3 settings are given",
                    "set backup.s3.bucket (CLOUDOPS_BACKUP_S3_BUCKET)",
                ));
            }
            if let Some(endpoint) = s3.endpoint.as_deref() {
                if !s3.allow_insecure_http && crate::embed::sends_clear_text_off_this_machine(endpoint) {
                    return Err(invalid(
                        ConfigKey::S3Endpoint,
                        endpoint.to_string(),
                        "plain http to another machine lets anyone on the path see and drop backup traffic",
                        "use https, a loopback address, or set backup.s3.allow_insecure_http = true",
                    ));
                }
            }
            if !built.s3 {
                return Err(invalid(
                    ConfigKey::S3Bucket,
                    s3.bucket.clone(),
                    "this build has no S3 support (the `s3` cargo feature is off)",
                    "remove [backup.s3], or build with the default features",
                ));
            }
        }
        if self.embedding.provider == EmbeddingProvider::OpenAi
            && !self.embedding.allow_insecure_http
            && crate::embed::sends_clear_text_off_this_machine(&self.embedding.url)
        {
            return Err(invalid(
                ConfigKey::EmbeddingUrl,
                self.embedding.url.clone(),
                "plain http to another machine would send message text in clear",
                "use https, a loopback address, or set embedding.allow_insecure_http = true",
            ));
        }
        let missing = match self.embedding.provider {
            EmbeddingProvider::Bert if !built.bert => Some("bert"),
            EmbeddingProvider::OpenAi if !built.http => Some("http"),
            _ => None,
        };
        if let Some(feature) = missing {
            return Err(invalid(
                ConfigKey::EmbeddingProvider,
                format!("{:?}", self.embedding.provider).to_lowercase(),
                &format!("this build has no support for it (the `{feature}` cargo feature is off)"),
                "use provider = \"none\" or \"auto\", or build with the default features",
            ));
        }
        Ok(())
    }

    /// Warn (once, when the store opens; validation runs more than once) about settings that
    /// are valid but unwise: a key file inside the data dir.
    pub(crate) fn warn_if_unwise(&self) {
        if self.keys.source == KeySourceKind::File {
            let file = self.keys.key_file();
            if let (Ok(f), Ok(d)) = (absolute(&file), absolute(&self.data_dir)) {
                if f.starts_with(&d) {
                    tracing::warn!(key_file = %file.display(), "key file is inside the data dir: a copy of the data dir carries its key");
                }
            }
        }
    }
}

/// The optional parts of the library a build has (its cargo features), which some settings need.
#[derive(Debug, Clone, Copy)]
struct BuiltIn {
    remote: bool,
    s3: bool,
    bert: bool,
    http: bool,
}

impl BuiltIn {
    /// What this build was compiled with.
    const THIS_BUILD: Self = Self {
        remote: cfg!(feature = "remote"),
        s3: cfg!(feature = "s3"),
        bert: cfg!(feature = "bert"),
        http: cfg!(feature = "http"),
    };
}

/// Builds a [`StorageConfig`] from defaults, a TOML file, the environment and explicit settings.
#[derive(Debug, Default)]
pub struct StorageConfigBuilder {
    base: Option<StorageConfig>,
    file: Option<PathBuf>,
    use_env: bool,
    settings: Vec<(ConfigKey, String)>,
    create_if_missing: Option<bool>,
}

impl StorageConfigBuilder {
    /// Read this TOML file (it must exist). Without it, `<data_dir>/config.toml` is read when present.
    pub fn with_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// Start from this configuration (for example an app's own settings) instead of a file;
    /// the environment and explicit settings still apply over it.
    pub fn with_base(mut self, config: StorageConfig) -> Self {
        self.base = Some(config);
        self
    }

    /// Apply `CLOUDOPS_*` environment variables over the file. Off by default.
    pub fn with_env(mut self) -> Self {
        self.use_env = true;
        self
    }

    /// Apply one explicit setting (highest precedence).
    pub fn with_config(mut self, key: ConfigKey, value: impl Into<String>) -> Self {
        self.settings.push((key, value.into()));
        self
    }

    /// Set the data dir (highest precedence).
    pub fn with_data_dir(self, dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref().display().to_string();
        self.with_config(ConfigKey::DataDir, dir)
    }

    /// Whether opening creates a missing store. Default: true.
    pub fn with_create_if_missing(mut self, create: bool) -> Self {
        self.create_if_missing = Some(create);
        self
    }

    /// Resolve and validate.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file or key at fault.
    pub fn build(self) -> Result<StorageConfig, ConfigError> {
        let env = |key: ConfigKey| {
            if self.use_env {
                std::env::var(key.env_var()).ok().filter(|v| !v.is_empty())
            } else {
                None
            }
        };
        let explicit = |key: ConfigKey| {
            self.settings
                .iter()
                .rev()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.clone())
        };
        // The data dir decides where the implicit config file lives, so resolve it first.
        let early_dir = explicit(ConfigKey::DataDir).or_else(|| env(ConfigKey::DataDir));
        let mut config = match (&self.base, &self.file) {
            (Some(base), _) => base.clone(),
            (None, Some(path)) => read_file(path)?,
            (None, None) => {
                let dir = early_dir.clone().map(PathBuf::from).unwrap_or_else(default_data_dir);
                let implicit = dir.join(CONFIG_FILE_NAME);
                if implicit.exists() {
                    read_file(&implicit)?
                } else {
                    StorageConfig::default()
                }
            }
        };
        for key in ConfigKey::ALL {
            if let Some(value) = env(key) {
                config.set(key, &value).map_err(|e| with_origin(e, key.env_var()))?;
            }
        }
        for (key, value) in &self.settings {
            config.set(*key, value)?;
        }
        config.create_if_missing = self.create_if_missing.unwrap_or(true);
        config.validate()?;
        Ok(config)
    }
}

fn with_origin(err: ConfigError, origin: &str) -> ConfigError {
    match err {
        ConfigError::Invalid {
            key,
            value,
            reason,
            fix,
        } => ConfigError::Invalid {
            key: format!("{key} (from {origin})"),
            value,
            reason,
            fix,
        },
        other => other,
    }
}

fn read_file(path: &Path) -> Result<StorageConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Unreadable {
        path: path.display().to_string(),
        source,
    })?;
    let mut config: StorageConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.display().to_string(),
        message: e.to_string().trim().to_string(),
    })?;
    config.create_if_missing = true;
    Ok(config)
}

fn absolute(path: &Path) -> std::io::Result<PathBuf> {
    std::path::absolute(path)
}

/// `cloudops-storage` in the platform's data folder: `$XDG_DATA_HOME` or `~/.local/share` on
/// Linux, `~/Library/Application Support` on macOS, `%LOCALAPPDATA%` on Windows.
pub fn default_data_dir() -> PathBuf {
    crate::platform::data_home().join("cloudops-storage")
}

/// A store in `dir/data` keyed by the file `dir/k.key`, keyword search only: what unit tests
/// that need a whole service open.
#[cfg(test)]
pub(crate) fn keyword_only_test_config(dir: &Path) -> StorageConfig {
    StorageConfig::builder()
        .with_data_dir(dir.join("data"))
        .with_config(ConfigKey::KeySource, "file")
        .with_config(ConfigKey::KeyFile, dir.join("k.key").display().to_string())
        .with_config(ConfigKey::EmbeddingProvider, "none")
        .build()
        .expect("a valid test configuration")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A build without any optional part refuses each setting that needs one, naming the
    /// cargo feature, and takes the same configuration without those settings. (The same
    /// checks run in a real `--no-default-features` build: tests/it/api.rs.)
    #[test]
    fn settings_that_need_a_part_the_build_lacks_are_refused_naming_its_feature() {
        let keyword_only = BuiltIn {
            remote: false,
            s3: false,
            bert: false,
            http: false,
        };
        let base = || {
            StorageConfig::builder()
                .with_data_dir("/tmp/cloudops-config-test")
                .with_config(ConfigKey::EmbeddingProvider, "none")
        };
        let cases = [
            (
                base()
                    .with_config(ConfigKey::StoreMode, "remote")
                    .with_config(ConfigKey::StoreUrl, "http://127.0.0.1:6334"),
                "store.mode",
                "`remote`",
            ),
            (
                base().with_config(ConfigKey::S3Bucket, "backups"),
                "backup.s3.bucket",
                "`s3`",
            ),
            (
                base().with_config(ConfigKey::EmbeddingProvider, "bert"),
                "embedding.provider",
                "`bert`",
            ),
            (
                base()
                    .with_config(ConfigKey::EmbeddingProvider, "openai")
                    .with_config(ConfigKey::EmbeddingUrl, "http://127.0.0.1:11434/v1"),
                "embedding.provider",
                "`http`",
            ),
        ];
        for (builder, key, feature) in cases {
            let config = builder.build().unwrap();
            let err = config.validate_for(keyword_only).unwrap_err();
            let ConfigError::Invalid { key: named, reason, .. } = &err else {
                panic!("{err}")
            };
            assert_eq!(named, key, "{err}");
            assert!(reason.contains(feature), "{err}");
            let everything = BuiltIn {
                remote: true,
                s3: true,
                bert: true,
                http: true,
            };
            config.validate_for(everything).unwrap();
        }
        base().build().unwrap().validate_for(keyword_only).unwrap();
    }

    #[cfg(feature = "http")]
    #[test]
    fn plain_http_to_another_machine_needs_permission() {
        let build = |url: &str, allow: &str| {
            StorageConfig::builder()
                .with_data_dir("/tmp/cloudops-config-test")
                .with_config(ConfigKey::EmbeddingProvider, "openai")
                .with_config(ConfigKey::EmbeddingUrl, url)
                .with_config(ConfigKey::EmbeddingAllowInsecureHttp, allow)
                .build()
                .and_then(|c| c.validate())
        };
        let err = build("http://10.0.0.5:11434/v1", "false").unwrap_err();
        assert!(err.to_string().contains("allow_insecure_http"), "{err}");
        assert!(build("http://10.0.0.5:11434/v1", "true").is_ok());
        assert!(build("http://127.0.0.1:11434/v1", "false").is_ok());
        assert!(build("https://embeddings.example.com/v1", "false").is_ok());
        assert!(build("http://10.0.0.5/v1", "yes").is_err(), "not a boolean");
    }

    #[test]
    fn plain_http_s3_to_another_machine_needs_permission() {
        let build = |url: &str, allow: &str| {
            StorageConfig::builder()
                .with_data_dir("/tmp/cloudops-config-test")
                .with_config(ConfigKey::EmbeddingProvider, "none")
                .with_config(ConfigKey::S3Bucket, "backups")
                .with_config(ConfigKey::S3Endpoint, url)
                .with_config(ConfigKey::S3AllowInsecureHttp, allow)
                .build()
                .and_then(|c| {
                    c.validate_for(BuiltIn {
                        s3: true,
                        ..BuiltIn::THIS_BUILD
                    })
                })
        };
        for remote in [
            "http://10.0.0.5:3900",
            "HTTP://minio.example.com",
            " http://s3.lan:9000/",
        ] {
            let err = build(remote, "false").unwrap_err();
            assert!(
                err.to_string().contains("backup.s3.allow_insecure_http"),
                "{remote}: {err}"
            );
        }
        assert!(build("http://10.0.0.5:3900", "true").is_ok());
        assert!(build("http://127.0.0.1:3900", "false").is_ok());
        assert!(build("http://[::1]:3900", "false").is_ok());
        assert!(build("https://s3.example.com", "false").is_ok());
    }

    #[test]
    fn file_then_settings_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[keys]\nsource = \"file\"\n[chat]\nmax_message_bytes = 10\n").unwrap();
        let config = StorageConfig::builder()
            .with_file(&file)
            .with_config(ConfigKey::MaxMessageBytes, "20")
            .build()
            .unwrap();
        assert_eq!(config.keys.source, KeySourceKind::File);
        assert_eq!(config.chat.max_message_bytes, 20);
    }

    #[test]
    fn unknown_file_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[keys]\nsorce = \"file\"\n").unwrap();
        let err = StorageConfig::builder().with_file(&file).build().unwrap_err();
        assert!(err.to_string().contains("sorce"), "{err}");
    }

    #[test]
    fn bad_values_name_key_and_fix() {
        let err = StorageConfig::builder()
            .with_config(ConfigKey::KeySource, "vault")
            .build()
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("keys.source") && text.contains("keychain, passphrase, file, env"),
            "{text}"
        );
        let err = StorageConfig::builder()
            .with_config(ConfigKey::MaxMessageBytes, "0")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("chat.max_message_bytes"));
        assert!("nope".parse::<ConfigKey>().is_err());
        let err = StorageConfig::builder()
            .with_config(ConfigKey::StoreSync, "sometimes")
            .build()
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("store.sync") && text.contains("checkpoint or always"),
            "{text}"
        );
        let config = StorageConfig::builder()
            .with_config(ConfigKey::StoreSync, "always")
            .build()
            .unwrap();
        assert_eq!(config.store.sync, crate::store::StoreSync::Always);
    }

    #[test]
    fn missing_explicit_file_is_unreadable() {
        let err = StorageConfig::builder()
            .with_file("/nonexistent/x.toml")
            .build()
            .unwrap_err();
        assert!(matches!(err, ConfigError::Unreadable { .. }));
    }
}
