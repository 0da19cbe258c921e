//! The plugin through Tauri's real IPC path on the mock runtime (no display): JSON arguments
//! as the page sends them, results and `{kind, message}` errors as the page receives them, and
//! the permission check of the capability system.

mod support;

use serde_json::json;

use support::{app, app_with, config_in, invoke, TestApp, CHANNEL};

#[test]
fn chat_commands_round_trip_through_ipc() {
    let t = app(&["cloudops-storage:default"]);
    let conversation = t
        .invoke("create_conversation", json!({"userId": "alice", "title": "EC2 costs"}))
        .unwrap();
    let ctx = conversation["context_id"].as_str().unwrap().to_string();
    assert_eq!(conversation["title"], "EC2 costs");
    for (role, content) in [
        ("user", "Why did my bill go up?"),
        ("assistant", "NAT gateway traffic."),
    ] {
        let m = t
            .invoke(
                "append",
                json!({"contextId": ctx, "message": {"role": role, "content": content}}),
            )
            .unwrap();
        assert_eq!(m["content"], content);
    }
    let last = t
        .invoke("get_history", json!({"contextId": ctx, "range": {"last": 1}}))
        .unwrap();
    assert_eq!(last.as_array().unwrap().len(), 1);
    assert_eq!(last[0]["message_index"], 1);
    let all = t.invoke("get_history", json!({"contextId": ctx})).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2);
    let page = t.invoke("list_conversations", json!({"userId": "alice"})).unwrap();
    assert_eq!(page["conversations"][0]["message_count"], 2);
    let health = t.invoke("health", json!({})).unwrap();
    assert_eq!(health["store_reachable"], true);
    drop(t.app);
}

#[test]
fn errors_reach_the_page_as_kind_and_message() {
    let t = app(&["cloudops-storage:default"]);
    let missing = t
        .invoke(
            "append",
            json!({"contextId": "no-such-conversation", "message": {"role": "user", "content": "x"}}),
        )
        .unwrap_err();
    assert_eq!(missing["kind"], "not_found", "{missing}");
    assert!(
        missing["message"].as_str().unwrap().contains("no-such-conversation"),
        "{missing}"
    );
    let invalid = t
        .invoke("create_conversation", json!({"userId": "", "title": "t"}))
        .unwrap_err();
    assert_eq!(invalid["kind"], "invalid_input", "{invalid}");
    // A malformed argument is refused by Tauri's deserialisation before the command runs.
    let malformed = t
        .invoke(
            "append",
            json!({"contextId": "x", "message": {"role": "wizard", "content": "x"}}),
        )
        .unwrap_err();
    assert!(
        malformed.to_string().contains("role") || malformed.to_string().contains("wizard"),
        "{malformed}"
    );
}

#[test]
fn a_command_without_its_permission_is_refused() {
    let t = app(&["cloudops-storage:allow-health"]);
    assert!(t.invoke("health", json!({})).is_ok());
    let refused = t
        .invoke("create_conversation", json!({"userId": "alice", "title": "t"}))
        .unwrap_err();
    assert!(refused.to_string().contains("not allowed"), "{refused}");
}

#[test]
fn a_second_instance_on_the_same_store_gets_a_clear_locked_error_not_a_crash() {
    let first = app(&["cloudops-storage:default"]);
    let (_second_app, second) = app_with(config_in(first.dir.path()), &["cloudops-storage:default"]);
    let err = invoke(&second, "health", json!({})).unwrap_err();
    assert_eq!(err["kind"], "locked", "{err}");
    assert!(err["message"].as_str().unwrap().contains("in use"), "{err}");
    // The first instance is unaffected.
    assert!(first.invoke("health", json!({})).is_ok());
    drop(first.app);
}

#[test]
fn estate_backup_and_key_commands_answer_through_ipc() {
    let t = app(&[
        "cloudops-storage:default",
        "cloudops-storage:estate-write",
        "cloudops-storage:backup",
        "cloudops-storage:allow-restore-backup",
    ]);
    let resource = |id: &str, name: &str| {
        json!({
            "resource_type": "rds:db", "identifier": id, "account_id": "123456789012",
            "region": "eu-west-1", "service": "rds", "name": name,
            "tags": {"env": "production"},
        })
    };
    let upserted = t
        .invoke(
            "upsert_resources",
            json!({"resources": [resource("orders", "orders database"), resource("logs", "log archive")]}),
        )
        .unwrap();
    assert_eq!(upserted["added"], 2, "{upserted}");
    let hits = t.invoke("search", json!({"query": "orders", "limit": 5})).unwrap();
    assert_eq!(hits[0]["resource"]["identifier"], "orders", "{hits}");
    let stats = t.invoke("stats", json!({"by": "region"})).unwrap();
    assert_eq!(stats, json!([["eu-west-1", 2]]));
    let bad = t.invoke("stats", json!({"by": "colour"})).unwrap_err();
    assert_eq!(bad["kind"], "invalid_input", "{bad}");
    let got = t
        .invoke("get", json!({"keyOrArn": "123456789012/eu-west-1/rds:db/orders"}))
        .unwrap();
    assert_eq!(got["name"], "orders database");
    let missing = t
        .invoke("get", json!({"keyOrArn": "123456789012/eu-west-1/rds:db/none"}))
        .unwrap_err();
    assert_eq!(missing["kind"], "not_found", "{missing}");
    let synced = t
        .invoke(
            "sync",
            json!({
                "scope": {"account_id": "123456789012"},
                "resources": [resource("orders", "orders database")],
                "onProgress": CHANNEL,
            }),
        )
        .unwrap();
    assert_eq!(synced["tombstoned"], 1, "{synced}");

    // Backups: take one, list it, restore it while the page keeps writing.
    let ctx = t
        .invoke("create_conversation", json!({"userId": "alice", "title": "t"}))
        .unwrap()["context_id"]
        .as_str()
        .unwrap()
        .to_string();
    t.invoke(
        "append",
        json!({"contextId": ctx, "message": {"role": "user", "content": "before"}}),
    )
    .unwrap();
    let backup = t.invoke("backup_now", json!({"onProgress": CHANNEL})).unwrap();
    let listed = t.invoke("list_backups", json!({})).unwrap();
    assert_eq!(listed[0]["name"], backup["name"]);
    // The page never sees a key envelope (wrapped keys, salts, fingerprints).
    let verified = t.invoke("verify_backup", json!({})).unwrap();
    for manifest in [&backup, &listed[0], &verified] {
        assert!(manifest["keys"].is_null(), "{manifest}");
        assert!(!manifest.to_string().contains("wrapped"), "{manifest}");
    }
    t.invoke(
        "append",
        json!({"contextId": ctx, "message": {"role": "user", "content": "after"}}),
    )
    .unwrap();
    let writer = {
        let window = t.window.clone();
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            (0..5)
                .map(|_| {
                    invoke(&window, "get_history", json!({"contextId": ctx, "range": {"last": 10}}))
                        .map(|h| h.as_array().map_or(0, Vec::len))
                })
                .collect::<Vec<_>>()
        })
    };
    let restored = t
        .invoke(
            "restore_backup",
            json!({"options": {"target": {"named": backup["name"]}}, "onProgress": CHANNEL}),
        )
        .unwrap();
    assert_eq!(restored["backup"]["name"], backup["name"]);
    for read in writer.join().unwrap() {
        let n = read.expect("a command during the restore waits and answers");
        assert!(n == 1 || n == 2, "{n} messages");
    }
    let history = t.invoke("get_history", json!({"contextId": ctx})).unwrap();
    assert_eq!(
        history.as_array().unwrap().len(),
        1,
        "the restore brought back the backed-up state"
    );
    let status = t.invoke("key_status", json!({})).unwrap();
    assert_eq!(status["key_source"], "file");
    // Key rotation was not granted to this window.
    let refused = t.invoke("rotate_key", json!({})).unwrap_err();
    assert!(refused.to_string().contains("not allowed"), "{refused}");
}

/// Shut the plugin's store down (what `RunEvent::Exit` does) and drop the app.
fn close(app: tauri::App<tauri::test::MockRuntime>) {
    use tauri::Manager as _;
    tauri::async_runtime::block_on(app.state::<tauri_plugin_cloudops_storage::Storage>().shutdown());
}

/// The file called `name` under `dir`, at any depth.
fn find_file(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    std::fs::read_dir(dir).ok()?.flatten().find_map(|entry| {
        let path = entry.path();
        if path.is_dir() {
            find_file(&path, name)
        } else {
            (path.file_name()? == name).then_some(path)
        }
    })
}

#[test]
fn each_failure_kind_reaches_the_page_with_its_kind() {
    let t = app(&["cloudops-storage:default", "cloudops-storage:backup"]);
    // backup: uploading with no S3 target.
    let no_target = t
        .invoke("backup_now", json!({"upload": true, "onProgress": CHANNEL}))
        .unwrap_err();
    assert_eq!(no_target["kind"], "backup", "{no_target}");
    assert!(
        no_target["message"].as_str().unwrap().contains("no S3 target"),
        "{no_target}"
    );
    // corrupt_backup: one flipped byte in the archive.
    let backup = t.invoke("backup_now", json!({"onProgress": CHANNEL})).unwrap();
    let name = backup["name"].as_str().unwrap();
    let archive = find_file(t.dir.path(), &format!("{name}.cosb")).expect("the archive");
    let mut bytes = std::fs::read(&archive).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&archive, bytes).unwrap();
    let corrupt = t.invoke("verify_backup", json!({"name": name})).unwrap_err();
    assert_eq!(corrupt["kind"], "corrupt_backup", "{corrupt}");
    let TestApp { dir, app: first, .. } = t;
    close(first);

    // wrong_key: the key file of another store.
    let other = tempfile::tempdir().unwrap();
    close(app_with(config_in(other.path()), &[]).0);
    std::fs::copy(other.path().join("master.key"), dir.path().join("master.key")).unwrap();
    let (reopened, window) = app_with(config_in(dir.path()), &["cloudops-storage:default"]);
    let wrong = invoke(&window, "health", json!({})).unwrap_err();
    assert_eq!(wrong["kind"], "wrong_key", "{wrong}");
    close(reopened);

    // key_source_unavailable: no key file at all.
    std::fs::remove_file(dir.path().join("master.key")).unwrap();
    let (reopened, window) = app_with(config_in(dir.path()), &["cloudops-storage:default"]);
    let unavailable = invoke(&window, "list_conversations", json!({"userId": "alice"})).unwrap_err();
    assert_eq!(unavailable["kind"], "key_source_unavailable", "{unavailable}");
    assert!(
        unavailable["message"].as_str().unwrap().contains("master.key"),
        "the message names the file: {unavailable}"
    );
    drop(reopened);
}

/// Issue 31: the page picks neither the key target nor a file outside the app's import
/// roots; errors about a refused file echo nothing of its content.
#[test]
fn the_page_picks_no_key_target_and_imports_only_inside_the_app_scope() {
    let t = app(&[
        "cloudops-storage:default",
        "cloudops-storage:allow-rotate-key",
        "cloudops-storage:allow-import-files",
        "cloudops-storage:allow-import-node",
    ]);
    let before = t.invoke("key_status", json!({})).unwrap();
    // What a page could once send: its own target (a variable it controls). Ignored.
    let rotated = t
        .invoke(
            "rotate_key",
            json!({"to": {"source": "passphrase", "passphrase_env_var": "HOME"}}),
        )
        .unwrap();
    assert_eq!(rotated["key_source"], before["key_source"], "{rotated}");
    assert_eq!(rotated["key_location"], before["key_location"], "{rotated}");
    assert_eq!(rotated["active_key_id"], before["active_key_id"]);
    let epoch = t.invoke("rotate_key", json!({"newEpoch": true})).unwrap();
    assert_eq!(
        epoch["active_key_id"].as_u64().unwrap(),
        before["active_key_id"].as_u64().unwrap() + 1,
        "{epoch}"
    );

    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("credentials.json");
    std::fs::write(&secret, r#"{"aws_secret_access_key": "hunter2-marker"}"#).unwrap();
    for path in [
        secret.display().to_string(),
        format!("{}/../{}", t.dir.path().display(), "nonexistent.json"),
        "/dev/zero".to_string(),
        t.dir.path().display().to_string(),
    ] {
        let err = t
            .invoke("import_files", json!({"paths": [path], "onProgress": CHANNEL}))
            .unwrap_err();
        assert_eq!(err["kind"], "invalid_input", "{path}: {err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
    let err = t
        .invoke(
            "import_node",
            json!({"chatDataDir": outside.path(), "onProgress": CHANNEL}),
        )
        .unwrap_err();
    assert!(err["message"].as_str().unwrap().contains("outside"), "{err}");
}
