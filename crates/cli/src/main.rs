//! `cloudops-storage`: the command-line driver of the storage library.
//!
//! Glue only: parse arguments, build one validated config, call one library method, print
//! the result. Errors are printed once here, with a non-zero exit code.

mod args;
mod bench;
mod commands;
mod output;

use std::process::ExitCode;

use clap::Parser as _;
use cloudops_storage_service::{ConfigKey, StorageConfig, StorageError};

use crate::args::{Cli, Command};
use crate::output::Output;

fn main() -> ExitCode {
    // Before any thread starts: half the resident memory of a long write load (see
    // `bound_malloc_arenas`); MALLOC_ARENA_MAX in the environment still decides.
    cloudops_storage_service::bound_malloc_arenas(cloudops_storage_service::DEFAULT_MALLOC_ARENAS);
    // SAFETY: no other thread exists yet (the runtime and the logger start below). Keeps
    // CLOUDOPS_KEY / CLOUDOPS_PASSPHRASE out of the environment any child would inherit.
    unsafe { cloudops_storage_service::take_key_secrets_from_env(&[]) };
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CLOUDOPS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,qdrant_edge=error")),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal, and never under NO_COLOR (https://no-color.org).
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .init();
    let out = Output { json: cli.json };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return report(&anyhow::Error::new(e).context("cannot start the async runtime"), out),
    };
    match runtime.block_on(run(cli, out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e, out),
    }
}

async fn run(cli: Cli, out: Output) -> anyhow::Result<()> {
    match &cli.command {
        Command::Init => commands::status::init(config(&cli, true)?, out).await,
        Command::Status => commands::status::status(config(&cli, false)?, out).await,
        Command::Demo => commands::demo::run(out).await,
        Command::Bench(args) => commands::bench::run(args, config(&cli, true)?, out).await,
        Command::Chat(cmd) => commands::chat::run(cmd, config(&cli, false)?, out).await,
        Command::Keys(cmd) => commands::keys::run(cmd, config(&cli, false)?, out).await,
        Command::Backup(cmd) => commands::backup::run(cmd, config(&cli, false)?, out).await,
        Command::Estate(cmd) => commands::estate::run(cmd, config(&cli, false)?, out).await,
        Command::Migrate(cmd) => commands::migrate::run(cmd, config(&cli, false)?, cli.config.as_deref(), out).await,
        Command::Reindex => commands::migrate::reindex(config(&cli, false)?, out).await,
    }
}

/// Defaults < config file < `CLOUDOPS_*` environment < flags, validated once.
fn config(cli: &Cli, create_if_missing: bool) -> anyhow::Result<StorageConfig> {
    let mut builder = StorageConfig::builder()
        .with_env()
        .with_create_if_missing(create_if_missing);
    if let Some(file) = &cli.config {
        builder = builder.with_file(file);
    }
    if let Some(dir) = &cli.data_dir {
        builder = builder.with_data_dir(dir);
    }
    if let Some(source) = &cli.key_source {
        builder = builder.with_config(ConfigKey::KeySource, source);
    }
    if let Some(file) = &cli.key_file {
        builder = builder.with_config(ConfigKey::KeyFile, file.display().to_string());
    }
    if let Some(mode) = &cli.store_mode {
        builder = builder.with_config(ConfigKey::StoreMode, mode);
    }
    if let Some(url) = &cli.store_url {
        builder = builder.with_config(ConfigKey::StoreUrl, url);
    }
    let mut config = builder.build()?;
    if let Some(fd) = cli.passphrase_fd {
        config.keys.passphrase = Some(read_passphrase_fd(fd)?);
    }
    Ok(config)
}

/// The passphrase from file descriptor `fd` (the first line; at most 64 KiB read).
fn read_passphrase_fd(fd: u32) -> anyhow::Result<cloudops_storage_service::Passphrase> {
    use std::io::Read as _;
    let path = format!("/dev/fd/{fd}");
    let mut text = String::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(64 * 1024).read_to_string(&mut text))
        .map_err(|e| anyhow::anyhow!("--passphrase-fd {fd}: cannot read the passphrase: {e}"))?;
    // Moved, not copied: the library wipes it when dropped.
    Ok(cloudops_storage_service::Passphrase::new(text))
}

fn report(err: &anyhow::Error, out: Output) -> ExitCode {
    let kind = err
        .chain()
        .find_map(|e| e.downcast_ref::<StorageError>())
        .map(|e| e.kind().as_str())
        .or_else(|| {
            err.chain()
                .find_map(|e| e.downcast_ref::<cloudops_storage_service::ConfigError>())
                .map(|_| "config")
        })
        .unwrap_or("error");
    if out.json {
        // A library error with no context added prints as the library serialises it.
        let body = match err.downcast_ref::<StorageError>() {
            Some(e) => serde_json::json!({ "error": e }),
            None => serde_json::json!({ "error": { "kind": kind, "message": format!("{err:#}") } }),
        };
        eprintln!("{body}");
    } else {
        eprintln!("cloudops-storage: {err:#}");
    }
    ExitCode::FAILURE
}
