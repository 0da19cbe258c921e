//! The rest of the plugin's contract on the mock runtime: the commands not covered in
//! `ipc.rs`, progress on the page's channels, background events, settings from
//! `tauri.conf.json`, and shutdown when the app exits.

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tauri::{Listener as _, Manager as _};

use support::{app, app_logging_channels, config_in, plugin_acl, CHANNEL, CHANNEL_ID};

/// A `chat-data/contexts` folder of the old Node.js module: two conversations of alice.
fn node_chat_data(dir: &Path) -> PathBuf {
    let contexts = dir.join("chat-data/contexts");
    std::fs::create_dir_all(&contexts).unwrap();
    for (id, title, pairs, t) in [
        (
            "ctx_1700000000_a1",
            "EC2 costs",
            [
                ("Why is EC2 expensive?", "Idle m5 instances."),
                ("Stop them", "Stopped i-0abc123."),
            ],
            1_700_000_000,
        ),
        (
            "ctx_1700000500_b2",
            "RDS failover",
            [
                ("Fail over pg-main", "Done."),
                ("Is the replica healthy?", "Replica lag is 0 s."),
            ],
            1_700_000_500,
        ),
    ] {
        let m: Vec<Value> = pairs
            .iter()
            .flat_map(|(u, a)| [json!({"r": 0, "c": u}), json!({"r": 1, "c": a})])
            .collect();
        let body = json!({
            "agent_type": "cloudops", "chat_title": title, "context_id": id,
            "final_conversation_context": {"i": id, "m": m, "t": t, "l": t + 600},
        });
        std::fs::write(contexts.join(format!("alice-{id}.json")), body.to_string()).unwrap();
    }
    dir.join("chat-data")
}

fn estate_fixture(name: &str) -> String {
    support::aws_fixtures().join(name).display().to_string()
}

/// Checks a channel's progress reports: each within bounds, and the last of `phase` complete.
fn assert_progress_completes(messages: &[Value], phase: &str) {
    assert!(!messages.is_empty(), "no progress reached the page");
    for m in messages {
        assert!(m["done"].as_u64().unwrap() <= m["total"].as_u64().unwrap(), "{m}");
    }
    let last = messages
        .iter()
        .rev()
        .find(|m| m["phase"] == phase)
        .unwrap_or_else(|| panic!("no {phase} report in {messages:?}"));
    assert_eq!(last["done"], last["total"], "{last}");
}

#[test]
fn remaining_chat_commands_answer_through_ipc_with_progress_on_the_import_channel() {
    let t = app(&[
        "cloudops-storage:default",
        "cloudops-storage:allow-import-node",
        "cloudops-storage:allow-erase-user",
    ]);
    let chat_data = node_chat_data(t.dir.path());
    let report = t
        .invoke("import_node", json!({"chatDataDir": chat_data, "onProgress": CHANNEL}))
        .unwrap();
    assert_eq!(report["imported"], 2, "{report}");
    assert_eq!(report["messages"], 8, "{report}");
    let progress = t.take_channel(CHANNEL_ID);
    assert_progress_completes(&progress, "import_files");
    assert_eq!(progress.last().unwrap()["total"], 2, "two files: {progress:?}");

    let page = t.invoke("list_conversations", json!({"userId": "alice"})).unwrap();
    let conversations = page["conversations"].as_array().unwrap();
    assert_eq!(conversations.len(), 2);
    let ec2 = conversations.iter().find(|c| c["title"] == "EC2 costs").unwrap()["context_id"].clone();
    let rds = conversations.iter().find(|c| c["title"] == "RDS failover").unwrap()["context_id"].clone();

    let renamed = t
        .invoke("rename", json!({"contextId": ec2, "title": "EC2 bill"}))
        .unwrap();
    assert_eq!(renamed["title"], "EC2 bill");
    let archived = t.invoke("archive", json!({"contextId": rds})).unwrap();
    assert_eq!(archived["status"], "archived");

    let found = t
        .invoke("search_conversations", json!({"userId": "alice", "query": "replica"}))
        .unwrap();
    assert_eq!(found["conversations"][0]["context_id"], rds, "{found}");
    assert!(
        found["conversations"][0]["messages"][0]["snippet"]
            .as_str()
            .unwrap()
            .contains("eplica"),
        "{found}"
    );
    let hidden = t
        .invoke(
            "search_conversations",
            json!({"userId": "alice", "query": "replica", "options": {"archived": "exclude"}}),
        )
        .unwrap();
    assert_eq!(hidden["conversations"], json!([]), "{hidden}");
    let bad = t
        .invoke(
            "search_conversations",
            json!({"userId": "alice", "query": "x", "options": {"colour": 1}}),
        )
        .unwrap_err();
    // Arguments of the wrong shape are refused by Tauri before the command runs, as a string
    // naming the field (the TypeScript types keep a page from sending them).
    assert!(bad.as_str().unwrap().contains("unknown field `colour`"), "{bad}");

    let unarchived = t
        .invoke("archive", json!({"contextId": rds, "archived": false}))
        .unwrap();
    assert_eq!(unarchived["status"], "active");
    let context = t
        .invoke(
            "context_for_prompt",
            json!({"userId": "alice", "currentContextId": ec2, "prompt": "is the replica healthy", "options": {"max_pairs": 1}}),
        )
        .unwrap();
    let pairs = context["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 1, "{context}");
    assert_eq!(
        pairs[0]["context_id"], rds,
        "pairs come from other conversations: {context}"
    );
    assert_eq!(pairs[0]["assistant"], "Replica lag is 0 s.");

    let deleted = t.invoke("delete_conversation", json!({"contextId": rds})).unwrap();
    assert_eq!(deleted["messages"], 4, "{deleted}");
    let gone = t.invoke("get_history", json!({"contextId": rds})).unwrap_err();
    assert_eq!(gone["kind"], "not_found", "{gone}");
    let erased = t.invoke("erase_user", json!({"userId": "alice"})).unwrap();
    assert_eq!(erased["conversations"], 1, "{erased}");
    let empty = t.invoke("list_conversations", json!({"userId": "alice"})).unwrap();
    assert_eq!(empty["conversations"], json!([]));
}

#[test]
fn estate_import_and_backups_report_progress_and_announce_results_as_events() {
    let t = app(&[
        "cloudops-storage:default",
        "cloudops-storage:estate-write",
        "cloudops-storage:backup",
    ]);
    let events: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = events.clone();
    t.app.listen_any(tauri_plugin_cloudops_storage::EVENT, move |e| {
        seen.lock().unwrap().push(serde_json::from_str(e.payload()).unwrap());
    });

    let report = t
        .invoke(
            "import_files",
            json!({
                "paths": [estate_fixture("ec2-describe-instances.json"), estate_fixture("rds-describe-db-instances.json")],
                "options": {"account_id": "123456789012", "region": "us-east-1"},
                "onProgress": CHANNEL,
            }),
        )
        .unwrap();
    let files = report["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{report}");
    let resources: u64 = files.iter().map(|f| f["resources"].as_u64().unwrap()).sum();
    assert!(resources >= 2, "{report}");
    assert_progress_completes(&t.take_channel(CHANNEL_ID), "import_resources");
    let hits = t
        .invoke("search", json!({"query": "resourcetype:rds*", "limit": 50}))
        .unwrap();
    assert!(
        !hits.as_array().unwrap().is_empty(),
        "imported RDS instances are searchable: {hits}"
    );

    let backup = t.invoke("backup_now", json!({"onProgress": CHANNEL})).unwrap();
    let progress = t.take_channel(CHANNEL_ID);
    // One count of steps across the phases: snapshot, archive, then (no upload) done.
    let phases: Vec<&str> = progress.iter().map(|m| m["phase"].as_str().unwrap()).collect();
    assert_eq!(phases.first(), Some(&"backup_snapshot"), "{progress:?}");
    assert!(phases.contains(&"backup_archive"), "{progress:?}");
    assert_progress_completes(&progress, "backup_upload");
    let verified = t.invoke("verify_backup", json!({"name": backup["name"]})).unwrap();
    assert_eq!(verified["name"], backup["name"]);
    assert!(verified["verified_at_ms"].is_number(), "{verified}");
    let status = t.invoke("backup_status", json!({})).unwrap();
    assert_eq!(status["scheduled"], false, "no interval configured: {status}");

    // Uploading without an S3 target fails, and says so to the page and as an event.
    let failed = t
        .invoke("backup_now", json!({"upload": true, "onProgress": CHANNEL}))
        .unwrap_err();
    assert!(
        failed["message"].as_str().unwrap().to_lowercase().contains("s3"),
        "{failed}"
    );

    let events = events.lock().unwrap().clone();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["type"], "backup_finished");
    assert_eq!(events[0]["name"], backup["name"]);
    assert_eq!(events[1]["type"], "backup_failed");
    assert!(!events[1]["error"].as_str().unwrap().is_empty(), "{events:?}");
}

#[test]
fn settings_come_from_the_plugin_section_of_tauri_conf_json() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("from-conf");
    let conf = json!({
        "data_dir": data_dir,
        "keys": {"source": "file", "file": dir.path().join("conf.key")},
        "embedding": {"provider": "none"},
        "backup": {"keep_last": 3},
    });
    let app = app_from_conf(conf).expect("the app starts with the plugin's settings");
    let window = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .unwrap();
    let health = support::invoke(&window, "health", json!({})).unwrap();
    assert_eq!(Path::new(health["data_dir"].as_str().unwrap()), data_dir);
    assert_eq!(health["key_source"], "file");
    assert!(dir.path().join("conf.key").exists());
    drop(app);

    let error = app_from_conf(json!({"data_dir": data_dir, "colour": "blue"})).unwrap_err();
    assert!(
        error.contains("cloudops-storage") && error.contains("colour"),
        "{error}"
    );
}

fn app_from_conf(conf: Value) -> Result<tauri::App<tauri::test::MockRuntime>, String> {
    let mut context = tauri::test::mock_context(tauri::test::noop_assets());
    context.config_mut().plugins.0.insert("cloudops-storage".into(), conf);
    *context.runtime_authority_mut() =
        tauri::ipc::RuntimeAuthority::new(plugin_acl(), tauri_utils::acl::resolved::Resolved::default());
    let app = tauri::test::mock_builder()
        .plugin(tauri_plugin_cloudops_storage::init())
        .build(context)
        .map_err(|e| e.to_string())?;
    let capability = json!({"identifier": "test", "windows": ["main"], "permissions": ["cloudops-storage:default"]});
    app.add_capability(capability.to_string()).unwrap();
    Ok(app)
}

#[test]
fn the_store_is_shut_down_on_exit_and_a_message_appended_just_before_is_there_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path());
    let plugin = tauri_plugin_cloudops_storage::Builder::new()
        .config(config.clone())
        .event_interval(Duration::from_millis(50));
    let (app, window, _) = app_logging_channels(plugin, &["cloudops-storage:default"]);
    let ctx = support::invoke(
        &window,
        "create_conversation",
        json!({"userId": "alice", "title": "exit"}),
    )
    .unwrap()["context_id"]
        .clone();
    support::invoke(
        &window,
        "append",
        json!({"contextId": ctx, "message": {"role": "user", "content": "the last words before exit"}}),
    )
    .unwrap();

    // Run the event loop; closing the last window ends it with RunEvent::Exit. A handle kept
    // past the loop keeps the plugin's state (and the service) alive, so what follows shows
    // the plugin's shutdown, not a drop.
    let handle = app.handle().clone();
    let exited = Arc::new(Mutex::new(false));
    let saw_exit = exited.clone();
    let closing = window.clone();
    let code = app.run_return(move |_, event| match event {
        tauri::RunEvent::Ready => closing.destroy().unwrap(),
        tauri::RunEvent::Exit => *saw_exit.lock().unwrap() = true,
        _ => {}
    });
    assert_eq!(code, 0);
    assert!(*exited.lock().unwrap(), "the loop ended with RunEvent::Exit");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let storage = handle.state::<tauri_plugin_cloudops_storage::Storage>();
    let after_exit = runtime.block_on(async {
        let service = storage.service().await.unwrap();
        service
            .chat
            .get_history(ctx.as_str().unwrap(), cloudops_storage_service::HistoryRange::All)
            .await
    });
    assert_eq!(
        after_exit.unwrap_err().kind(),
        cloudops_storage_service::ErrorKind::ShutDown,
        "the plugin shut the service down on exit"
    );

    // It released the store: it opens again in this process while the old service still exists.
    let history = runtime.block_on(async {
        let service = cloudops_storage_service::StorageService::open(config).await.unwrap();
        let history = service
            .chat
            .get_history(ctx.as_str().unwrap(), cloudops_storage_service::HistoryRange::All)
            .await
            .unwrap();
        service.shutdown().await.unwrap();
        history
    });
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].content, "the last words before exit");
}
