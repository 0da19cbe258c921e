//! Remote-store tests that need more than the shared test list: several processes writing
//! to one server. They run against `CLOUDOPS_TEST_QDRANT_URL` (scripts/test.sh starts a server)
//! and skip outside CI without one.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cloudops_storage_service::{ConfigKey, HistoryRange, NewMessage, Role, StorageConfig, StorageService};
use serde_json::json;

/// The test server, or `None` (skip, with a note) outside CI.
fn server_url() -> Option<String> {
    let url = std::env::var("CLOUDOPS_TEST_QDRANT_URL")
        .or_else(|_| std::env::var("QDRANT_URL"))
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        assert!(
            std::env::var("CI").is_err(),
            "CI=true but no Qdrant server: run the tests through scripts/test.sh (it starts one)"
        );
        eprintln!("SKIPPED: no Qdrant server (set QDRANT_URL, or run scripts/test.sh)");
    }
    url
}

/// An app instance: its own data dir (keys copied from the first one), one shared key file,
/// the same server and collection prefix.
fn instance_config(data_dir: &Path, key_file: &Path, url: &str, prefix: &str) -> StorageConfig {
    StorageConfig::builder()
        .with_data_dir(data_dir)
        .with_config(ConfigKey::KeySource, "file")
        .with_config(ConfigKey::KeyFile, key_file.display().to_string())
        .with_config(ConfigKey::EmbeddingProvider, "none")
        .with_config(ConfigKey::StoreMode, "remote")
        .with_config(ConfigKey::StoreUrl, url)
        .with_config(ConfigKey::StoreCollectionPrefix, prefix)
        .build()
        .expect("valid config")
}

/// A second app instance joins the store: a data dir holding a copy of the first one's keys.
fn join(first: &Path, second: &Path) {
    std::fs::create_dir_all(second).unwrap();
    for entry in std::fs::read_dir(first).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("keys"))
        {
            std::fs::copy(&path, second.join(path.file_name().unwrap())).unwrap();
        }
    }
}

const CHILD_VAR: &str = "CLOUDOPS_REMOTE_CHILD";
const TASKS: usize = 8;
const PER_TASK: usize = 25;

/// The `|`-separated spec a parent test passed to its child process.
fn child_spec() -> Vec<String> {
    let spec = std::env::var(CHILD_VAR).expect("spawned by a multi-process test");
    spec.split('|').map(str::to_string).collect()
}

/// Child side of the two-process test: 8 tasks append to one conversation, printing each
/// acknowledged index. Runs only when spawned by the test below.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of two_processes_appending_to_one_conversation_keep_indexes_gapless_and_unique"]
async fn appender_child() {
    let parts = child_spec();
    let [data_dir, key_file, url, prefix, ctx, name] = &parts[..] else {
        panic!("bad child spec {parts:?}")
    };
    let config = instance_config(Path::new(data_dir), Path::new(key_file), url, prefix);
    let s = std::sync::Arc::new(StorageService::open(config).await.unwrap());
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let (s, ctx, name) = (s.clone(), ctx.to_string(), name.to_string());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..PER_TASK {
                let content = format!("{name}-{task}-{i}");
                let m = s.chat.append(&ctx, NewMessage::new(Role::User, content)).await.unwrap();
                acked.push(format!("ACK {} {}", m.message_index, m.content));
            }
            acked
        }));
    }
    for task in tasks {
        for line in task.await.unwrap() {
            println!("{line}");
        }
    }
    s.shutdown().await.unwrap();
}

/// Child side of the two-process sync test: 8 tasks each sync one region of the account
/// (20 resources, each with its own `owner` tag value, so every sync grows the shared tag
/// dictionary).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of two_processes_syncing_at_once_lose_no_resource_and_no_tag"]
async fn syncer_child() {
    let parts = child_spec();
    let [data_dir, key_file, url, prefix, _, name] = &parts[..] else {
        panic!("bad child spec {parts:?}")
    };
    let config = instance_config(Path::new(data_dir), Path::new(key_file), url, prefix);
    let s = std::sync::Arc::new(StorageService::open(config).await.unwrap());
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let (s, name) = (s.clone(), name.to_string());
        tasks.push(tokio::spawn(async move {
            let region = format!("{name}-region-{task}");
            let resources = (0..SYNCED)
                .map(|i| cloudops_storage_service::AWSResource {
                    resource_type: "ec2:instance".into(),
                    identifier: format!("i-{name}-{task}-{i}"),
                    account_id: "111122223333".into(),
                    region: region.clone(),
                    service: "ec2".into(),
                    tags: Some([("owner".to_string(), format!("{name}-{task}-{i}"))].into()),
                    ..Default::default()
                })
                .collect();
            let scope = cloudops_storage_service::SyncScope {
                account_id: "111122223333".into(),
                regions: Some(vec![region]),
                resource_types: None,
            };
            s.estate.sync(&scope, resources).await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    println!("SYNCED {name}");
    s.shutdown().await.unwrap();
}

const SYNCED: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_syncing_at_once_lose_no_resource_and_no_tag() {
    let Some(url) = server_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("sync{}_", uuid::Uuid::new_v4().simple());
    let key_file = dir.path().join("keys/master.key");
    let data: Vec<PathBuf> = ["a", "b"].iter().map(|n| dir.path().join(n)).collect();
    let first = instance_config(&data[0], &key_file, &url, &prefix);
    StorageService::open(first.clone())
        .await
        .unwrap()
        .shutdown()
        .await
        .unwrap();
    join(&data[0], &data[1]);
    let children: Vec<_> = data
        .iter()
        .zip(["a", "b"])
        .map(|(d, name)| {
            spawn_child(
                "remote::syncer_child",
                &format!("{}|{}|{url}|{prefix}|-|{name}", d.display(), key_file.display()),
            )
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "a syncing process failed");
        assert!(String::from_utf8_lossy(&out.stdout).contains("SYNCED"));
    }
    let s = StorageService::open(first).await.unwrap();
    let all = cloudops_storage_service::ResourceFilter::default();
    assert_eq!(s.estate.count(&all).await.unwrap(), (2 * TASKS * SYNCED) as u64);
    // Every writer's tags reached the shared dictionary (a lost update would drop some).
    let owners = s
        .estate
        .stats(&cloudops_storage_service::StatsBy::Tag("owner".into()), &all)
        .await
        .unwrap();
    assert_eq!(owners.len(), 2 * TASKS * SYNCED, "tag values lost");
    assert!(owners.iter().all(|(_, n)| *n == 1));
    s.shutdown().await.unwrap();
}

fn spawn_appender(spec: &str) -> std::process::Child {
    spawn_child("remote::appender_child", spec)
}

fn spawn_child(test: &str, spec: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_appending_to_one_conversation_keep_indexes_gapless_and_unique() {
    let Some(url) = server_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("two{}_", uuid::Uuid::new_v4().simple());
    let key_file = dir.path().join("keys/master.key");
    let data: Vec<PathBuf> = ["a", "b"].iter().map(|n| dir.path().join(n)).collect();
    let first = instance_config(&data[0], &key_file, &url, &prefix);
    let ctx = {
        let s = StorageService::open(first.clone()).await.unwrap();
        let ctx = s.chat.create_conversation("u", "shared", json!({})).await.unwrap();
        s.chat
            .append(&ctx, NewMessage::new(Role::User, "before"))
            .await
            .unwrap();
        s.shutdown().await.unwrap();
        ctx
    };
    join(&data[0], &data[1]);
    let children: Vec<_> = data
        .iter()
        .zip(["a", "b"])
        .map(|(d, name)| {
            spawn_appender(&format!(
                "{}|{}|{url}|{prefix}|{ctx}|{name}",
                d.display(),
                key_file.display()
            ))
        })
        .collect();
    let mut acked: Vec<(u64, String)> = Vec::new();
    for mut child in children {
        let stdout = child.stdout.take().unwrap();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            // The harness's "test ... " may precede the first line on the same line.
            if let Some(rest) = line.find("ACK ").map(|at| &line[at + 4..]) {
                let (index, content) = rest.split_once(' ').unwrap();
                acked.push((index.parse().unwrap(), content.to_string()));
            }
        }
        assert!(child.wait().unwrap().success(), "an appender process failed");
    }
    assert_eq!(acked.len(), 2 * TASKS * PER_TASK);
    let mut indexes: Vec<u64> = acked.iter().map(|(i, _)| *i).collect();
    indexes.sort_unstable();
    indexes.dedup();
    if indexes.len() != acked.len() {
        let mut sorted = acked.clone();
        sorted.sort();
        let twice: Vec<_> = sorted.windows(2).filter(|w| w[0].0 == w[1].0).collect();
        panic!("an index was given twice: {twice:?}");
    }
    assert_eq!(
        indexes,
        (1..=acked.len() as u64).collect::<Vec<_>>(),
        "indexes have a gap"
    );

    // Read back through the first instance: every acknowledged message at its index.
    let s = StorageService::open(first).await.unwrap();
    let history = s.chat.get_history(&ctx, HistoryRange::All).await.unwrap();
    assert_eq!(history.len(), acked.len() + 1);
    for (index, content) in &acked {
        let m = &history[*index as usize];
        assert_eq!((&m.message_index, &m.content), (index, content));
    }
    let conversation = s.chat.get_conversation(&ctx).await.unwrap();
    assert_eq!(
        conversation.message_count,
        history.len() as u64,
        "the count is not lowered by a late writer"
    );
    // The two processes' messages interleave: they raced for indexes.
    let owners: Vec<bool> = history[1..].iter().map(|m| m.content.starts_with("a-")).collect();
    let switches = owners.windows(2).filter(|w| w[0] != w[1]).count();
    eprintln!("writer switches along the history: {switches}");
    assert!(switches >= 2, "the processes did not overlap ({switches} switches)");
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_stores_keys_cannot_open_the_servers_collections() {
    let Some(url) = server_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("own{}_", uuid::Uuid::new_v4().simple());
    let first = instance_config(&dir.path().join("a"), &dir.path().join("a.key"), &url, &prefix);
    let s = StorageService::open(first.clone()).await.unwrap();
    let ctx = s.chat.create_conversation("u", "mine", json!({})).await.unwrap();
    s.shutdown().await.unwrap();
    // A data dir without keys on the same prefix: no new keys over the server's data.
    let fresh = instance_config(&dir.path().join("b"), &dir.path().join("b.key"), &url, &prefix);
    let err = StorageService::open(fresh).await.unwrap_err().to_string();
    assert!(err.contains("refusing to create new keys"), "{err}");
    assert!(!dir.path().join("b/keys.json").exists());
    // Another store's keys (made on another prefix) on this prefix: wrong key, nothing written.
    let other_prefix = format!("{prefix}other_");
    let other = instance_config(&dir.path().join("c"), &dir.path().join("c.key"), &url, &other_prefix);
    StorageService::open(other.clone())
        .await
        .unwrap()
        .shutdown()
        .await
        .unwrap();
    let mut stranger = other;
    stranger.store.collection_prefix = prefix.clone();
    let err = StorageService::open(stranger).await.unwrap_err();
    let text = err.to_string();
    assert_eq!(err.kind(), cloudops_storage_service::ErrorKind::WrongKey, "{text}");
    assert!(text.contains("belong to store"), "{text}");
    let s = StorageService::open(first).await.unwrap();
    assert_eq!(s.chat.get_conversation(&ctx).await.unwrap().title, "mine");
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_a_clear_error_naming_the_url() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let config = instance_config(
        &dir.path().join("d"),
        &dir.path().join("k.key"),
        &format!("http://127.0.0.1:{port}"),
        "x_",
    );
    let err = StorageService::open(config).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("Qdrant server"),
        "{err}"
    );
}

/// The 3-node test cluster (scripts/test.sh starts it): gRPC URLs of nodes 1-3 and its folder.
fn cluster() -> Option<(Vec<String>, PathBuf)> {
    let urls = std::env::var("CLOUDOPS_TEST_QDRANT_CLUSTER_URLS").ok();
    let dir = std::env::var("CLOUDOPS_TEST_QDRANT_CLUSTER_DIR").ok();
    match (urls, dir) {
        (Some(urls), Some(dir)) => Some((urls.split(',').map(str::to_string).collect(), PathBuf::from(dir))),
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "CI=true but no Qdrant cluster: run the tests through scripts/test.sh (it starts one)"
            );
            eprintln!("SKIPPED: no 3-node Qdrant cluster (scripts/test.sh starts one)");
            None
        }
    }
}

fn cluster_node(action: &str, dir: &Path, node: u32) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/qdrant-server.sh");
    let status = Command::new("bash")
        .arg(script)
        .args([action, &dir.display().to_string(), &node.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "qdrant-server.sh {action} {node} failed");
}

/// Replication factor 2 on 3 nodes: a writer keeps appending while node 3 is killed with
/// SIGKILL and restarted; reads through node 1 keep working while it is down; afterwards every
/// acknowledged message is there, at its index, with no gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_keeps_every_acknowledged_message_through_a_node_kill() {
    let Some((urls, cluster_dir)) = cluster() else { return };
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("cl{}_", uuid::Uuid::new_v4().simple());
    let mut config = instance_config(&dir.path().join("d"), &dir.path().join("k.key"), &urls[0], &prefix);
    config.store.replication_factor = 2;
    let s = std::sync::Arc::new(StorageService::open(config.clone()).await.unwrap());
    let ctx = s.chat.create_conversation("u", "cluster", json!({})).await.unwrap();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (s, ctx, stop) = (s.clone(), ctx.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut acked, mut failed) = (Vec::new(), 0u32);
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let content = format!("cluster message {i}");
                match s.chat.append(&ctx, NewMessage::new(Role::User, content.clone())).await {
                    Ok(m) => acked.push((m.message_index, content)),
                    Err(e) => {
                        failed += 1;
                        eprintln!("append failed while a node is down (not acknowledged): {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
                i += 1;
            }
            (acked, failed)
        })
    };
    let wait_for = |n: usize| {
        let s = s.clone();
        let ctx = ctx.clone();
        async move {
            for _ in 0..600 {
                if s.chat
                    .get_conversation(&ctx)
                    .await
                    .is_ok_and(|c| c.message_count as usize >= n)
                {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!("the writer did not reach {n} messages");
        }
    };
    wait_for(50).await;
    cluster_node("kill", &cluster_dir, 3);
    // Reads through node 1 while node 3 is down.
    let mut reads = 0;
    for _ in 0..20 {
        let history = s
            .chat
            .get_history(&ctx, HistoryRange::Last(5))
            .await
            .expect("a read while a node is down");
        assert!(!history.is_empty());
        reads += 1;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let during = s.chat.get_conversation(&ctx).await.unwrap().message_count;
    wait_for(during as usize + 50).await;
    cluster_node("restart", &cluster_dir, 3);
    let after = s.chat.get_conversation(&ctx).await.unwrap().message_count;
    wait_for(after as usize + 50).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (acked, failed) = writer.await.unwrap();
    eprintln!(
        "acknowledged {} appends, {failed} refused while node 3 was down, {reads} reads during",
        acked.len()
    );

    // Every acknowledged message, read through another node.
    let mut through_node2 = config.clone();
    through_node2.data_dir = dir.path().join("d2");
    join(&config.data_dir, &through_node2.data_dir);
    through_node2.store.url = Some(urls[1].clone());
    let s2 = StorageService::open(through_node2).await.unwrap();
    let history = s2.chat.get_history(&ctx, HistoryRange::All).await.unwrap();
    assert!(
        history.iter().enumerate().all(|(i, m)| m.message_index == i as u64),
        "a gap"
    );
    for (index, content) in &acked {
        assert_eq!(
            &history[*index as usize].content, content,
            "acknowledged message {index}"
        );
    }
    s2.shutdown().await.unwrap();
    s.shutdown().await.unwrap();
}

/// Child side of the migration test: migrates the store of the spec's data dir to the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of a_store_moves_to_the_server_and_back_resuming_after_a_kill"]
async fn migrator_child() {
    let parts = child_spec();
    let [data_dir, key_file, url, prefix, config_file, _] = &parts[..] else {
        panic!("bad child spec {parts:?}")
    };
    let embedded = embedded_config(Path::new(data_dir), Path::new(key_file));
    let to = instance_config(Path::new(data_dir), Path::new(key_file), url, prefix).store;
    StorageService::migrate_store(
        &embedded,
        to,
        Path::new(config_file),
        &cloudops_storage_service::no_progress,
    )
    .await
    .unwrap();
}

fn embedded_config(data_dir: &Path, key_file: &Path) -> StorageConfig {
    StorageConfig::builder()
        .with_data_dir(data_dir)
        .with_config(ConfigKey::KeySource, "file")
        .with_config(ConfigKey::KeyFile, key_file.display().to_string())
        .with_config(ConfigKey::EmbeddingProvider, "none")
        .with_config(ConfigKey::StoreMode, "embedded")
        .build()
        .expect("valid config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_moves_to_the_server_and_back_resuming_after_a_kill() {
    let Some(url) = server_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (data, key_file) = (dir.path().join("data"), dir.path().join("k.key"));
    let config_file = dir.path().join("config.toml");
    std::fs::write(&config_file, "[chat]\nmax_message_bytes = 65536\n").unwrap();
    let prefix = format!("mig{}_", uuid::Uuid::new_v4().simple());
    let embedded = embedded_config(&data, &key_file);
    // A store worth several pages: 3 conversations of 1,000 messages.
    let ctxs = {
        let s = StorageService::open(embedded.clone()).await.unwrap();
        let mut ctxs = Vec::new();
        for c in 0..3 {
            let ctx = uuid::Uuid::new_v4().to_string();
            let import = cloudops_storage_service::ImportedConversation {
                conversation: cloudops_storage_service::Conversation {
                    context_id: ctx.clone(),
                    user_id: "u".into(),
                    title: format!("conv {c}"),
                    metadata: json!({ "c": c }),
                    created_at: 1_700_000_000_000,
                    updated_at: 1_700_000_000_000,
                    message_count: 0,
                    status: cloudops_storage_service::ConversationStatus::Active,
                },
                messages: (0..1000)
                    .map(|i| (Role::User, format!("message {c}/{i}"), 1_700_000_000_000 + i, None))
                    .collect(),
            };
            s.chat.import_conversation(import).await.unwrap();
            ctxs.push(ctx);
        }
        s.shutdown().await.unwrap();
        ctxs
    };
    let history = |s: std::sync::Arc<StorageService>, ctxs: Vec<String>| async move {
        let mut all = Vec::new();
        for ctx in &ctxs {
            all.push(s.chat.get_history(ctx, HistoryRange::All).await.unwrap());
        }
        s.shutdown().await.unwrap();
        all
    };
    let before = history(
        std::sync::Arc::new(StorageService::open(embedded.clone()).await.unwrap()),
        ctxs.clone(),
    )
    .await;

    // Kill a first migration once it has written part of the points.
    let checkpoint = data.join("migrate-store.json");
    let mut child = spawn_child(
        "remote::migrator_child",
        &format!(
            "{}|{}|{url}|{prefix}|{}|-",
            data.display(),
            key_file.display(),
            config_file.display()
        ),
    );
    let mut killed_mid_way = false;
    for _ in 0..2000 {
        if std::fs::read_to_string(&checkpoint).is_ok_and(|c| c.contains("chat_messages")) {
            child.kill().unwrap();
            killed_mid_way = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.wait().unwrap();
    assert!(killed_mid_way, "the migration ended before it could be interrupted");

    // Run again: it resumes, verifies and switches the config file.
    let to = instance_config(&data, &key_file, &url, &prefix).store;
    let report = StorageService::migrate_store(
        &embedded,
        to.clone(),
        &config_file,
        &cloudops_storage_service::no_progress,
    )
    .await
    .unwrap();
    assert!(report.resumed);
    assert!(
        report.copied < report.collections.iter().map(|c| c.points).sum::<u64>(),
        "{report:?}"
    );
    assert_eq!(report.sampled, 50);
    assert!(!checkpoint.exists());
    let written: toml::Table = toml::from_str(&std::fs::read_to_string(&config_file).unwrap()).unwrap();
    assert_eq!(written["store"]["mode"].as_str(), Some("remote"));
    assert_eq!(written["store"]["url"].as_str(), Some(url.as_str()));
    assert_eq!(
        written["chat"]["max_message_bytes"].as_integer(),
        Some(65536),
        "other settings kept"
    );
    let mut remote = embedded.clone();
    remote.store = to;
    let after = history(
        std::sync::Arc::new(StorageService::open(remote.clone()).await.unwrap()),
        ctxs.clone(),
    )
    .await;
    assert_eq!(after, before);

    // And back: the old embedded collections are moved away first, as the refusal says.
    let refused = StorageService::migrate_store(
        &remote,
        embedded.store.clone(),
        &config_file,
        &cloudops_storage_service::no_progress,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(refused.contains("already holds collections"), "{refused}");
    std::fs::rename(data.join("qdrant"), dir.path().join("old-qdrant")).unwrap();
    let report = StorageService::migrate_store(
        &remote,
        embedded.store.clone(),
        &config_file,
        &cloudops_storage_service::no_progress,
    )
    .await
    .unwrap();
    assert!(!report.resumed);
    let back = history(std::sync::Arc::new(StorageService::open(embedded).await.unwrap()), ctxs).await;
    assert_eq!(back, before);
}
