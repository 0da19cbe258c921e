//! Command-line definition. Parsing only records what was typed; `main` turns it into a
//! validated `StorageConfig` once, before any work starts.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Encrypted local storage for the CloudOps assistant: chat history on embedded Qdrant.
#[derive(Debug, Parser)]
#[command(name = "cloudops-storage", version, about)]
pub(crate) struct Cli {
    /// Data directory (env: CLOUDOPS_DATA_DIR; default: ~/.local/share/cloudops-storage).
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Config file (default: <data-dir>/config.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Where the key-encryption key comes from (env: CLOUDOPS_KEY_SOURCE; default: keychain).
    #[arg(long, global = true, value_name = "SRC", value_parser = ["keychain", "passphrase", "file", "env"])]
    pub(crate) key_source: Option<String>,
    /// Key file for `--key-source file` (env: CLOUDOPS_KEY_FILE).
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) key_file: Option<PathBuf>,
    /// Where the collections live: `embedded` (in this process, the default) or `remote` (a
    /// Qdrant server or cluster; env: CLOUDOPS_STORE_MODE).
    #[arg(long = "store", global = true, value_name = "MODE", value_parser = ["embedded", "remote"])]
    pub(crate) store_mode: Option<String>,
    /// gRPC URL of the Qdrant server for `--store remote`, e.g. http://127.0.0.1:6334 (env:
    /// CLOUDOPS_STORE_URL; the API key comes from $CLOUDOPS_STORE_API_KEY or the keychain).
    #[arg(long = "store-url", visible_alias = "url", global = true, value_name = "URL")]
    pub(crate) store_url: Option<String>,
    /// `--key-source passphrase`: read the passphrase from this file descriptor (0: stdin)
    /// instead of $CLOUDOPS_PASSPHRASE, e.g. `--passphrase-fd 3 3<secret.txt`.
    #[arg(long, global = true, value_name = "FD")]
    pub(crate) passphrase_fd: Option<u32>,
    /// Print stable JSON on stdout instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create the store and its keys in the data dir.
    Init,
    /// Show store health: collections, key source, disk.
    Status,
    /// Run the main job end to end on a store in a temporary folder.
    Demo,
    /// Measure append and read latency on a fresh store.
    Bench(BenchArgs),
    /// Conversations and messages.
    #[command(subcommand)]
    Chat(ChatCommand),
    /// Key management.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Encrypted backups: create, list, verify, restore, prune.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// The AWS estate: import AWS CLI output, search, inspect, count.
    #[command(subcommand)]
    Estate(EstateCommand),
    /// Import chats from earlier storage formats.
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// Re-embed every message with the configured embedding model (after a model change).
    Reindex,
}

#[derive(Debug, Subcommand)]
pub(crate) enum EstateCommand {
    /// Import AWS CLI JSON output (format auto-detected): get-resources, resource-explorer-2
    /// search/list-resources, ec2 describe-instances, rds describe-db-instances, s3api
    /// list-buckets, lambda list-functions, or AWSResource JSON / JSON Lines.
    Import {
        /// Files to import.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Account of resources whose output names none (s3api list-buckets).
        #[arg(long)]
        account_id: Option<String>,
        /// Account name to record.
        #[arg(long)]
        account_name: Option<String>,
        /// Region the listing covers (regional commands print none for buckets; --sync scope).
        #[arg(long)]
        region: Option<String>,
        /// Treat each file as the complete listing of its scope: resources missing from it are
        /// tombstoned. Only for describe-*/list-* output; a file with errors changes nothing.
        #[arg(long)]
        sync: bool,
    },
    /// Search: free text (hybrid) plus filters like region:us-east-1 service:rds
    /// resourcetype:rds:db account:ID state:running tag:env=prod tag:env tag:none, `-` to
    /// negate, a,b for OR, a trailing * for a prefix.
    Search {
        /// The query.
        query: String,
        /// keyword, semantic or hybrid (default; keyword when no model is configured). Hybrid
        /// also reads attribute and class words: "production database", "public buckets",
        /// "queues in Oregon", "untagged resources", "stopped instances".
        #[arg(long, default_value = "hybrid", value_parser = ["keyword", "semantic", "hybrid"])]
        mode: String,
        /// Most results.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Include tombstoned (deleted) resources.
        #[arg(long)]
        include_deleted: bool,
    },
    /// One resource by ARN or account/region/type/identifier, with IAM permissions and constraints.
    Get {
        /// ARN or resource key.
        key_or_arn: String,
    },
    /// Exact counts by service, type, region, account and state (or --by one of them, or tag:KEY).
    Stats {
        /// service, type, region, account, state or tag:KEY.
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum MigrateCommand {
    /// Move the store's collections to a Qdrant server (`--to remote --to-url URL`) or back
    /// into this data dir (`--to embedded`), as stored (nothing is decrypted). Resumable: run
    /// it again after an interruption. Verifies counts and a sample of messages, then sets
    /// `[store]` in the config file (--config, else <data-dir>/config.toml).
    Store {
        /// Where to: embedded or remote.
        #[arg(long, value_parser = ["embedded", "remote"])]
        to: String,
        /// gRPC URL of the target server (for --to remote).
        #[arg(long, value_name = "URL")]
        to_url: Option<String>,
        /// Collection prefix on the target server (default: store.collection_prefix).
        #[arg(long, value_name = "PREFIX")]
        to_prefix: Option<String>,
        /// Copies per shard on the target cluster (default: store.replication_factor).
        #[arg(long, value_name = "N")]
        to_replication_factor: Option<u32>,
    },
    /// Import the Node.js module's chat-data folder (contexts/{userId}-{contextId}.json).
    Node {
        /// The chat-data folder (or its contexts/ folder).
        chat_data_dir: PathBuf,
        /// Owner of every imported conversation (default: taken from each file name).
        #[arg(long)]
        user: Option<String>,
        /// Wait until every imported message has its dense vector, with a progress bar
        /// (default: return at once; the messages are embedded in the background by the next
        /// process that opens the store with a model, and keyword search finds them already).
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum BackupCommand {
    /// Take a backup now (consistent snapshot, zstd, AES-256-GCM).
    Now {
        /// Also upload it to the configured S3 target.
        #[arg(long)]
        upload: bool,
    },
    /// List backups (local, or with --remote those in S3; --remote also works on a machine
    /// with no store yet, listing every store's backups in the bucket).
    List {
        /// List the S3 target's backups.
        #[arg(long)]
        remote: bool,
        /// With --remote and no local store: only this store's backups.
        #[arg(long, value_name = "UUID", requires = "remote")]
        store_id: Option<String>,
    },
    /// Prove a backup restorable without touching live data (default: the newest).
    Verify {
        /// Backup name (default: the newest).
        name: Option<String>,
        /// Verify a backup in the S3 target: fetch and authenticate every chunk, unpack aside,
        /// compare counts.
        #[arg(long)]
        remote: bool,
    },
    /// Replace the live data with a backup (the store must not be open elsewhere).
    Restore {
        /// The newest backup (default).
        #[arg(long, conflicts_with_all = ["at", "name"])]
        latest: bool,
        /// The store as it was at this time (RFC 3339 UTC like 2026-11-26T08:00:00Z, or unix
        /// milliseconds): the newest backup taken at or before it, then the journal shipped
        /// after that backup replayed up to it.
        #[arg(long, conflicts_with = "name")]
        at: Option<String>,
        /// A backup by name.
        #[arg(long)]
        name: Option<String>,
        /// Download it from the configured S3 target.
        #[arg(long)]
        from_s3: bool,
        /// Disaster recovery into an empty data dir: the recovery kit file (or a file holding
        /// just the recovery key). The keys are then wrapped under this machine's --key-source.
        #[arg(long, value_name = "FILE", conflicts_with = "recovery_key", requires = "from_s3")]
        recovery_key_file: Option<PathBuf>,
        /// `-`: read the recovery key from stdin (never pass the key itself as an argument).
        #[arg(long, value_name = "-", value_parser = ["-"], requires = "from_s3")]
        recovery_key: Option<String>,
        /// The store to restore when the bucket holds several (see `backup list --remote`).
        #[arg(long, value_name = "UUID")]
        store_id: Option<String>,
        /// Restore the backup alone, without replaying the journal shipped after it.
        #[arg(long)]
        no_journal: bool,
        /// Restore what the bucket holds even where it falls short of its authenticated head
        /// (newest backup or last shipments missing, a record missing in the middle, the head
        /// deleted or altered); each shortfall is printed. Without it, any of these fails.
        #[arg(long)]
        accept_gap: bool,
    },
    /// Ship the writes made since the last shipment to the S3 target now (the schedule does
    /// it every `ship_interval_seconds`, and every process when it closes the store).
    Ship,
    /// Delete backups past retention, locally and in S3 (never the newest).
    Prune {
        /// Only show what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run scheduled backups in the foreground until Ctrl-C (for a sidecar or service manager).
    Daemon,
}

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Messages to append.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) messages: usize,
    /// Messages per conversation.
    #[arg(long, default_value_t = 20)]
    pub(crate) per_conversation: usize,
    /// With --search: messages of each user (default 1,000; the 1M targets use 10,000).
    #[arg(long, default_value_t = 1_000, requires = "search")]
    pub(crate) per_user: usize,
    /// Timed samples of each read.
    #[arg(long, default_value_t = 2_000)]
    pub(crate) samples: usize,
    /// Keep the filled store and print where it is (default: removed).
    #[arg(long)]
    pub(crate) keep: bool,
    /// Chat workload: simulate this many daily backups (1% more messages each day, every
    /// backup kept) uploaded incrementally into a folder bucket, and report its size against
    /// as many full archives.
    #[arg(long, value_name = "N", default_value_t = 0, conflicts_with_all = ["search", "import", "resources"])]
    pub(crate) daily_backups: usize,
    /// Run the search workload instead: embedding speed, keyword/semantic/hybrid latency.
    #[arg(long, conflicts_with = "resources")]
    pub(crate) search: bool,
    /// Run the import workload instead: a Node.js chat-data folder of --messages messages
    /// (--per-conversation per file) imported by `migrate node`; speed and peak RSS of the
    /// import and of the background embedding after it (with the model unless --no-model).
    #[arg(long, conflicts_with_all = ["resources", "search"])]
    pub(crate) import: bool,
    /// With --import: open the store without an embedding model.
    #[arg(long, requires = "import")]
    pub(crate) no_model: bool,
    /// With --import and a model: seconds of background embedding measured after the import.
    #[arg(long, default_value_t = 60, requires = "import")]
    pub(crate) embed_seconds: u64,
    /// Run the estate workload with this many resources instead (ingest, filtered search,
    /// count, facets; with the model, embedding ingest and semantic search over 10,000).
    #[arg(long, value_name = "N")]
    pub(crate) resources: Option<usize>,
    /// With --resources: the estate's semantic search at N resources instead, with vectors of
    /// this shape (stand-ins: `low-rank`, the default, or `uniform`; or `model`, the real
    /// model, slow): ingest with vectors, the vector index built by compaction, search
    /// latency, recall@10 against an exact scan.
    #[arg(long, value_name = "SHAPE", num_args = 0..=1, default_missing_value = "low-rank", requires = "resources")]
    pub(crate) dense: Option<crate::bench::estate_dense::DenseShape>,
    /// With --resources (keyword only): after the reads, sync the same resources this many
    /// more times, every one changed each time, and report throughput and disk use after each.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        requires = "resources",
        conflicts_with = "dense"
    )]
    pub(crate) resyncs: usize,
    /// Run the durability workload instead: --messages appends under `[store] sync =
    /// "checkpoint"` and `"always"`, each with one writer and with eight (embedded store).
    #[arg(long, conflicts_with_all = ["resources", "search", "import"])]
    pub(crate) sync: bool,
    /// Model folder for --search and --resources (default: [embedding] model_dir, i.e. the fetched test model).
    #[arg(long, value_name = "DIR")]
    pub(crate) model_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ChatCommand {
    /// Create a conversation; prints its context id.
    New {
        /// Owner.
        #[arg(long)]
        user: String,
        /// Title.
        #[arg(long, default_value = "New conversation")]
        title: String,
    },
    /// Append a message.
    Add {
        /// Conversation.
        context_id: String,
        /// user, assistant or system.
        #[arg(long, value_parser = ["user", "assistant", "system"])]
        role: String,
        /// Message text (or use --stdin).
        #[arg(required_unless_present = "stdin", conflicts_with = "stdin")]
        text: Option<String>,
        /// Read the message text from standard input.
        #[arg(long)]
        stdin: bool,
        /// Metadata as a JSON object.
        #[arg(long, value_name = "JSON")]
        metadata: Option<String>,
    },
    /// Show messages in chronological order.
    History {
        /// Conversation.
        context_id: String,
        /// Only the last N messages.
        #[arg(long, conflicts_with_all = ["before", "after"])]
        last: Option<usize>,
        /// Messages before this index (older page).
        #[arg(long, conflicts_with = "after")]
        before: Option<u64>,
        /// Messages after this index (newer page).
        #[arg(long)]
        after: Option<u64>,
        /// Page size for --before/--after.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// List a user's conversations, newest activity first.
    List {
        /// Owner.
        #[arg(long)]
        user: String,
        /// Show archived conversations instead of active ones.
        #[arg(long, conflicts_with = "all")]
        archived: bool,
        /// Show active and archived conversations.
        #[arg(long)]
        all: bool,
        /// Page size.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Continue from a previous page's cursor.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Change a conversation's title.
    Rename {
        /// Conversation.
        context_id: String,
        /// New title.
        title: String,
    },
    /// Archive (or with --undo, reactivate) a conversation.
    Archive {
        /// Conversation.
        context_id: String,
        /// Make it active again.
        #[arg(long)]
        undo: bool,
    },
    /// Hard-delete a conversation and its messages.
    Delete {
        /// Conversation.
        context_id: String,
    },
    /// Hard-delete everything a user owns; prints a receipt.
    EraseUser {
        /// The user.
        user: String,
    },
    /// Search a user's conversations (keyword, semantic or hybrid).
    Search {
        /// Owner whose conversations are searched.
        #[arg(long)]
        user: String,
        /// What to look for.
        query: String,
        /// keyword, semantic or hybrid (default; keyword when no model is configured).
        #[arg(long, default_value = "hybrid", value_parser = ["keyword", "semantic", "hybrid"])]
        mode: String,
        /// Most conversations shown.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Only messages of this role (repeatable).
        #[arg(long, value_parser = ["user", "assistant", "system"])]
        role: Vec<String>,
        /// Only messages at or after this time (RFC 3339 UTC or unix ms).
        #[arg(long)]
        since: Option<String>,
        /// Only messages before this time (RFC 3339 UTC or unix ms).
        #[arg(long)]
        until: Option<String>,
        /// include (default), exclude or only archived conversations.
        #[arg(long, default_value = "include", value_parser = ["include", "exclude", "only"])]
        archived: String,
    },
    /// Pairs from a user's other conversations relevant to a prompt, as the model would get them.
    Context {
        /// Owner.
        #[arg(long)]
        user: String,
        /// The conversation being answered (left out).
        #[arg(long)]
        current: String,
        /// The prompt.
        prompt: String,
        /// Most pairs.
        #[arg(long, default_value_t = 5)]
        max_pairs: usize,
        /// Most tokens of context (estimated at 4 characters a token).
        #[arg(long, default_value_t = 1500)]
        token_budget: usize,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Show the key source and key ids (never the keys).
    Status,
    /// Re-wrap the data key with a new key-encryption key (data stays readable).
    ///
    /// file and keychain sources get a fresh random key; env and passphrase sources read the
    /// new secret from `<VAR>_NEW` (e.g. CLOUDOPS_KEY_NEW) when rotating in place.
    Rotate {
        /// Move the key to another source.
        #[arg(long, value_parser = ["keychain", "passphrase", "file", "env"])]
        to: Option<String>,
        /// Key file of the target source (with --to file).
        #[arg(long, value_name = "PATH")]
        to_key_file: Option<PathBuf>,
        /// The current key may have leaked: also start a new data key, so the old key opens
        /// nothing written from now on (not even with a copy of every backup). The next
        /// backup then uploads everything again. Older data stays readable.
        #[arg(long)]
        new_epoch: bool,
    },
    /// Seal every record written in an older format or under an older data key again under
    /// the active key (after `rotate --new-epoch` or a new recovery kit: the old key then
    /// opens nothing in the store). Resumable; the store stays usable meanwhile.
    Rekey,
    /// Issue a new recovery kit: the key that restores this store's backups on a new machine.
    /// A new data key starts with it: the previous kit opens nothing written from now on;
    /// earlier backups keep opening with the kit that was current when they were taken.
    RecoveryKit {
        /// Write the kit to this new file (mode 0600; an existing file is never replaced)
        /// instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}
