//! End-to-end tests of the real `cloudops-storage` binary in a temp dir: exit codes, stderr
//! and JSON shape. Each run gets a clean environment (no CLOUDOPS_* from the caller, HOME in
//! the temp dir) so nothing touches the developer's own store or keychain.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

struct Env {
    dir: tempfile::TempDir,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    fn failed(self) -> Self {
        assert_ne!(
            self.code, 0,
            "expected failure\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

impl Env {
    fn new() -> Self {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cloudops-storage"));
        for (key, _) in std::env::vars() {
            if key.starts_with("CLOUDOPS_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("XDG_DATA_HOME", self.dir.path().join("share"))
            .env("CLOUDOPS_DATA_DIR", self.data_dir())
            .env("CLOUDOPS_KEY_SOURCE", "file")
            .env("CLOUDOPS_KEY_FILE", self.dir.path().join("keys/master.key"))
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Run {
        let out = self.command().args(args).output().unwrap();
        to_run(out)
    }

    fn run_with(&self, args: &[&str], f: impl FnOnce(&mut Command)) -> Run {
        let mut cmd = self.command();
        f(&mut cmd);
        to_run(cmd.args(args).output().unwrap())
    }

    fn run_stdin(&self, args: &[&str], input: &[u8]) -> Run {
        self.run_stdin_with(args, input, |_| {})
    }

    fn run_stdin_with(&self, args: &[&str], input: &[u8], f: impl FnOnce(&mut Command)) -> Run {
        use std::io::Write as _;
        let mut cmd = self.command();
        f(&mut cmd);
        let mut child = cmd
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        to_run(child.wait_with_output().unwrap())
    }
}

fn to_run(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn new_conversation(env: &Env, user: &str) -> String {
    env.run(&["--json", "chat", "new", "--user", user, "--title", "Costs"])
        .ok()
        .json()["context_id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn history_len(env: &Env, ctx: &str) -> usize {
    env.run(&["--json", "chat", "history", ctx])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn chat_workflow_end_to_end() {
    let env = Env::new();
    let init = env.run(&["--json", "init"]).ok().json();
    assert_eq!(init["key_source"], "file");
    let ctx = new_conversation(&env, "alice");
    let added = env
        .run(&["--json", "chat", "add", &ctx, "--role", "user", "Why is EC2 expensive?"])
        .ok()
        .json();
    assert_eq!(added["message_index"], 0);
    assert_eq!(added["content"], "Why is EC2 expensive?");
    env.run_stdin(
        &["chat", "add", &ctx, "--role", "assistant", "--stdin"],
        b"Three idle m5 instances.\n",
    )
    .ok();
    env.run(&[
        "chat",
        "add",
        &ctx,
        "--role",
        "user",
        "--metadata",
        r#"{"source":"test"}"#,
        "Stop them",
    ])
    .ok();
    let history = env.run(&["--json", "chat", "history", &ctx]).ok().json();
    let history = history.as_array().unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[1]["role"], "assistant");
    assert_eq!(history[1]["content"], "Three idle m5 instances.\n");
    assert_eq!(history[2]["metadata"]["source"], "test");
    let last = env.run(&["--json", "chat", "history", &ctx, "--last", "1"]).ok().json();
    assert_eq!(last[0]["message_index"], 2);
    let before = env
        .run(&["--json", "chat", "history", &ctx, "--before", "2", "--limit", "1"])
        .ok()
        .json();
    assert_eq!(before[0]["message_index"], 1);
    let human = env.run(&["chat", "history", &ctx]).ok();
    assert!(human.stdout.contains("Why is EC2 expensive?"));

    env.run(&["chat", "rename", &ctx, "EC2 cost spike"]).ok();
    let list = env.run(&["--json", "chat", "list", "--user", "alice"]).ok().json();
    assert_eq!(list["conversations"][0]["title"], "EC2 cost spike");
    assert_eq!(list["conversations"][0]["message_count"], 3);
    env.run(&["chat", "archive", &ctx]).ok();
    assert_eq!(
        env.run(&["--json", "chat", "list", "--user", "alice"]).ok().json()["conversations"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        env.run(&["--json", "chat", "list", "--user", "alice", "--archived"])
            .ok()
            .json()["conversations"][0]["status"],
        "archived"
    );

    let status = env.run(&["--json", "status"]).ok().json();
    assert_eq!(status["store_reachable"], true);
    let messages = status["collections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "chat_messages")
        .unwrap()["points"]
        .clone();
    assert_eq!(messages, 3);

    let receipt = env.run(&["--json", "chat", "delete", &ctx]).ok().json();
    assert_eq!(receipt["messages"], 3);
    let other = new_conversation(&env, "bob");
    env.run(&["chat", "add", &other, "--role", "user", "hi"]).ok();
    let receipt = env.run(&["--json", "chat", "erase-user", "bob"]).ok().json();
    assert_eq!(
        (receipt["conversations"].as_u64(), receipt["messages"].as_u64()),
        (Some(1), Some(1))
    );
}

#[test]
fn bad_input_fails_cleanly_and_changes_nothing() {
    let env = Env::new();
    env.run(&["init"]).ok();
    let ctx = new_conversation(&env, "alice");
    env.run(&["chat", "add", &ctx, "--role", "user", "keep me"]).ok();

    let unknown = env
        .run(&[
            "chat",
            "add",
            "00000000-0000-4000-8000-000000000000",
            "--role",
            "user",
            "x",
        ])
        .failed();
    assert!(
        unknown
            .stderr
            .contains("conversation 00000000-0000-4000-8000-000000000000 not found"),
        "{}",
        unknown.stderr
    );
    let json_err = env
        .run(&["--json", "chat", "history", "00000000-0000-4000-8000-000000000000"])
        .failed();
    let err: Value = serde_json::from_str(json_err.stderr.trim()).unwrap();
    assert_eq!(err["error"]["kind"], "not_found");

    let oversized = env
        .run_stdin_with(
            &["chat", "add", &ctx, "--role", "user", "--stdin"],
            &[b'x'; 2048],
            |c| {
                c.env("CLOUDOPS_MAX_MESSAGE_BYTES", "1024");
            },
        )
        .failed();
    assert!(oversized.stderr.contains("limit is 1024"), "{}", oversized.stderr);

    let bad_role = env.run(&["chat", "add", &ctx, "--role", "robot", "x"]);
    assert_eq!(bad_role.code, 2, "clap usage errors exit 2: {}", bad_role.stderr);
    let bad_flag = env.run(&["chat", "history", &ctx, "--last", "many"]);
    assert_eq!(bad_flag.code, 2);
    let bad_meta = env
        .run(&["chat", "add", &ctx, "--role", "user", "--metadata", "{nope", "x"])
        .failed();
    assert!(bad_meta.stderr.contains("--metadata is not valid JSON"));

    let missing_config = env.run(&["--config", "/nonexistent/cloudops.toml", "status"]).failed();
    assert!(
        missing_config
            .stderr
            .contains("cannot read config file /nonexistent/cloudops.toml"),
        "{}",
        missing_config.stderr
    );
    let config = env.dir.path().join("bad.toml");
    std::fs::write(&config, "[chat]\nmax_message_bytes = \"lots\"\n").unwrap();
    let bad_config = env.run(&["--config", config.to_str().unwrap(), "status"]).failed();
    assert!(bad_config.stderr.contains("max_message_bytes"), "{}", bad_config.stderr);
    let bad_env = env.run_with(&["status"], |c| {
        c.env("CLOUDOPS_KEY_SOURCE", "vault");
    });
    let bad_env = bad_env.failed();
    assert!(bad_env.stderr.contains("CLOUDOPS_KEY_SOURCE"), "{}", bad_env.stderr);

    // The one good message is all there is.
    assert_eq!(history_len(&env, &ctx), 1);
}

#[test]
fn uninitialized_store_is_not_created_by_reads() {
    let env = Env::new();
    let run = env.run(&["chat", "list", "--user", "alice"]).failed();
    assert!(run.stderr.contains("cloudops-storage init"), "{}", run.stderr);
    assert!(!env.data_dir().exists());
}

#[test]
fn second_process_gets_a_clear_lock_error() {
    let env = Env::new();
    env.run(&["init"]).ok();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let config = cloudops_storage_service::StorageConfig::builder()
        .with_data_dir(env.data_dir())
        .with_config(cloudops_storage_service::ConfigKey::KeySource, "file")
        .with_config(
            cloudops_storage_service::ConfigKey::KeyFile,
            env.dir.path().join("keys/master.key").display().to_string(),
        )
        .build()
        .unwrap();
    let service = runtime
        .block_on(cloudops_storage_service::StorageService::open(config))
        .unwrap();
    let run = env.run(&["--json", "status"]).failed();
    let err: Value = serde_json::from_str(run.stderr.trim()).unwrap();
    assert_eq!(err["error"]["kind"], "locked");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains(&format!("PID {}", std::process::id())));
    // The first owner is unaffected.
    runtime
        .block_on(service.chat.create_conversation("u", "t", serde_json::json!({})))
        .unwrap();
    runtime.block_on(service.shutdown()).unwrap();
    env.run(&["status"]).ok();
}

#[test]
fn unavailable_keychain_fails_with_alternatives() {
    let env = Env::new();
    let run = env.run_with(&["--json", "init", "--key-source", "keychain"], |c| {
        c.env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    });
    let run = run.failed();
    let err: Value = serde_json::from_str(run.stderr.trim()).unwrap();
    assert_eq!(err["error"]["kind"], "key_source_unavailable", "{}", run.stderr);
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("--key-source file") && message.contains("--key-source env"),
        "{message}"
    );
    assert!(!Path::new(&env.data_dir()).join("keys.json").exists());
}

#[test]
fn keys_status_and_rotate() {
    let env = Env::new();
    env.run(&["init"]).ok();
    let ctx = new_conversation(&env, "alice");
    env.run(&["chat", "add", &ctx, "--role", "user", "survives rotation"])
        .ok();
    let status = env.run(&["--json", "keys", "status"]).ok().json();
    assert_eq!(status["active_key_id"], 1);
    assert!(status["kek_rotated_at_ms"].is_null());
    let key_before = std::fs::read(env.dir.path().join("keys/master.key")).unwrap();
    let rotated = env.run(&["--json", "keys", "rotate"]).ok().json();
    assert!(rotated["kek_rotated_at_ms"].is_i64());
    assert_ne!(
        std::fs::read(env.dir.path().join("keys/master.key")).unwrap(),
        key_before
    );
    assert_eq!(history_len(&env, &ctx), 1);
    let human = env.run(&["keys", "status"]).ok();
    assert!(human.stdout.contains("KEK rotated") && !human.stdout.contains("never"));
}

#[test]
fn log_lines_to_a_pipe_carry_no_colour_and_a_warning_is_said_once() {
    let env = Env::new();
    let inside = env.data_dir().join("master.key");
    let with_key_inside = |c: &mut Command| {
        c.env("CLOUDOPS_KEY_FILE", &inside);
    };
    env.run_with(&["init"], with_key_inside).ok();
    let run = env.run_with(&["status"], with_key_inside).ok();
    let warning = "key file is inside the data dir";
    assert_eq!(run.stderr.matches(warning).count(), 1, "{}", run.stderr);
    assert!(
        !run.stderr.contains('\u{1b}'),
        "ANSI codes in piped stderr: {:?}",
        run.stderr
    );
}

#[test]
fn keys_rekey_after_a_new_epoch_reseals_old_records_and_then_nothing() {
    let env = Env::new();
    env.run(&["init"]).ok();
    let ctx = new_conversation(&env, "alice");
    env.run(&["chat", "add", &ctx, "--role", "user", "written in epoch 1"])
        .ok();
    let rotated = env.run(&["--json", "keys", "rotate", "--new-epoch"]).ok().json();
    assert_eq!(rotated["active_key_id"], 2);
    let report = env.run(&["--json", "keys", "rekey"]).ok().json();
    assert_eq!(report["active_key_id"], 2);
    assert_eq!(report["messages"]["resealed"], 1);
    assert_eq!(report["conversations"]["resealed"], 1);
    let human = env.run(&["keys", "rekey"]).ok();
    assert!(
        human.stdout.contains("0 of 1 message(s), 0 of 1 conversation(s)"),
        "{}",
        human.stdout
    );
    assert_eq!(history_len(&env, &ctx), 1);
}

#[test]
fn demo_runs_and_reports_no_plaintext() {
    let env = Env::new();
    let run = env.run(&["demo"]).ok();
    assert!(
        run.stdout.contains("not found (sealed with AES-256-GCM)"),
        "{}",
        run.stdout
    );
    // No model in this HOME: the demo says how to enable semantic search.
    assert!(run.stdout.contains("scripts/fetch-test-model.sh"), "{}", run.stdout);
    let json = env.run(&["--json", "demo"]).ok().json();
    assert_eq!(json["plaintext_found_on_disk"], false);
    assert_eq!(json["messages_in_first_conversation"], 6);
    assert_eq!(json["search"]["semantic"], Value::Null);
    assert_eq!(json["estate"]["filtered"][0], "ec2:instance web-1");
}

#[test]
fn demo_with_the_model_finds_a_paraphrase_keyword_search_misses() {
    let Some(model) = test_model_dir() else { return };
    let env = Env::new();
    let json = env
        .run_with(&["--json", "demo"], |cmd| {
            cmd.env("CLOUDOPS_MODEL_CACHE", model.parent().unwrap());
        })
        .ok()
        .json();
    assert_eq!(json["search"]["keyword"].as_array().unwrap().len(), 0);
    assert_eq!(json["search"]["semantic"][0], "\"EC2 cost spike\"");
    assert_eq!(json["search"]["hybrid_identifier"][0], "\"EC2 cost spike\"");
    assert_eq!(json["estate"]["semantic"][0], "rds:db orders-pg");
}

/// The `keychain` source against a real Secret Service (gnome-keyring in a private D-Bus
/// session, started by scripts/test.sh). Outside CI it skips with a reason when none runs;
/// under CI=true a missing keychain is a failure.
#[test]
fn keychain_source_with_a_real_secret_service() {
    if std::env::var("CLOUDOPS_TEST_KEYCHAIN").as_deref() != Ok("1") {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true but no Secret Service was started: run the suite through scripts/test.sh"
        );
        eprintln!("SKIPPED keychain_source_with_a_real_secret_service: no Secret Service (run scripts/test.sh)");
        return;
    }
    let env = Env::new();
    let keychain = |args: &[&str]| {
        let mut all = vec!["--key-source", "keychain"];
        all.extend_from_slice(args);
        env.run(&all)
    };
    let init = keychain(&["--json", "init"]).ok().json();
    let store_id = init["store_id"].as_str().unwrap().to_string();
    assert_eq!(init["key_source"], "keychain");
    // The KEK really is in the OS keychain, under the store's id.
    let lookup = Command::new("secret-tool")
        .args(["lookup", "service", "cloudops-storage", "username", &store_id])
        .output()
        .unwrap();
    let lookup_target = Command::new("secret-tool")
        .args(["search", "--all", "service", "cloudops-storage"])
        .output()
        .unwrap();
    assert!(
        lookup.status.success() || String::from_utf8_lossy(&lookup_target.stdout).contains(&store_id),
        "no keychain entry for {store_id}: {}",
        String::from_utf8_lossy(&lookup_target.stderr)
    );
    let ctx = keychain(&["--json", "chat", "new", "--user", "alice"]).ok().json()["context_id"]
        .as_str()
        .unwrap()
        .to_string();
    keychain(&["chat", "add", &ctx, "--role", "user", "kept in the keychain"]).ok();
    keychain(&["keys", "rotate"]).ok();
    let history = keychain(&["--json", "chat", "history", &ctx]).ok().json();
    assert_eq!(history[0]["content"], "kept in the keychain");
    // Without its keychain entry the store cannot be opened, and says why.
    let cleared = Command::new("secret-tool")
        .args(["clear", "service", "cloudops-storage", "username", &store_id])
        .status()
        .unwrap();
    assert!(cleared.success());
    let _ = Command::new("secret-tool")
        .args(["clear", "service", "cloudops-storage", "target", "default"])
        .status();
    let err = keychain(&["--json", "status"]).failed();
    let err: Value = serde_json::from_str(err.stderr.trim()).unwrap();
    assert_eq!(err["error"]["kind"], "key_source_unavailable", "{err}");
}

/// Unmounts the test file system even when an assertion fails.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A full disk: on a small tmpfs nearly filled by another file, appends are refused with a
/// clear `disk_full` error (never a SIGBUS from the engine's memory maps), and once space is
/// freed every acknowledged message is there. Needs root to mount; skips with a reason if
/// the mount is refused.
#[test]
fn full_disk_is_a_clear_error_and_loses_nothing() {
    let env = Env::new();
    let mnt = env.dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=200m", "tmpfs"])
        .arg(&mnt)
        .stderr(Stdio::null())
        .status();
    if !mounted.map(|s| s.success()).unwrap_or(false) {
        eprintln!("SKIPPED full_disk_is_a_clear_error_and_loses_nothing: cannot mount a tmpfs here (needs root)");
        return;
    }
    let _mount = Mount(mnt.clone());
    let data = mnt.join("data");
    let on_tmpfs = |args: &[&str], input: Option<&[u8]>| {
        let mut all = vec!["--data-dir", data.to_str().unwrap()];
        all.extend_from_slice(args);
        // The default 64 MiB reserve: loading a shard alone writes up to ~16 MiB here.
        match input {
            Some(bytes) => env.run_stdin(&all, bytes),
            None => env.run(&all),
        }
    };
    on_tmpfs(&["init"], None).ok();
    let ctx = on_tmpfs(&["--json", "chat", "new", "--user", "u"], None).ok().json()["context_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Fill the file system, then free 100 MiB: room for the reserve, a shard load and some appends.
    let filler = mnt.join("filler");
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 1 << 20];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
    let len = std::fs::metadata(&filler).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap()
        .set_len(len - 100 * (1 << 20))
        .unwrap();

    let message = vec![b'x'; 64 * 1024];
    let mut acknowledged = 0;
    let mut refusal = None;
    for _ in 0..200 {
        let run = on_tmpfs(
            &["--json", "chat", "add", &ctx, "--role", "user", "--stdin"],
            Some(&message),
        );
        assert!(
            run.code == 0 || run.code == 1,
            "killed by a signal (exit {}): {}",
            run.code,
            run.stderr
        );
        if run.code == 0 {
            acknowledged += 1;
        } else {
            refusal = Some(run.stderr);
            break;
        }
    }
    let refusal = refusal.expect("the disk never filled up");
    let err: Value = serde_json::from_str(refusal.trim()).unwrap();
    assert_eq!(err["error"]["kind"], "disk_full", "{refusal}");
    assert!(err["error"]["message"].as_str().unwrap().contains("free some space"));
    assert!(acknowledged > 0, "some appends fit before the reserve was reached");

    std::fs::remove_file(&filler).unwrap();
    let history = on_tmpfs(&["--json", "chat", "history", &ctx], None).ok().json();
    assert_eq!(history.as_array().unwrap().len(), acknowledged);
    on_tmpfs(&["chat", "add", &ctx, "--role", "user", "space again"], None).ok();
}

/// The real test model (see scripts/fetch-test-model.sh); missing fails under CI=true.
fn test_model_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("CLOUDOPS_TEST_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(cloudops_storage_service::default_model_dir);
    if dir.join("model.safetensors").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "test model missing in {} under CI=true: run scripts/fetch-test-model.sh",
        dir.display()
    );
    eprintln!("SKIPPED: no test model in {}", dir.display());
    None
}

#[test]
fn one_shot_add_then_semantic_search_and_context_in_the_next_process() {
    let Some(model) = test_model_dir() else { return };
    let env = Env::new();
    let with_model = |cmd: &mut Command| {
        cmd.env("CLOUDOPS_EMBEDDING_PROVIDER", "bert")
            .env("CLOUDOPS_EMBEDDING_MODEL_DIR", &model);
    };
    env.run_with(&["init"], with_model).ok();
    let ctx = env
        .run_with(
            &["--json", "chat", "new", "--user", "alice", "--title", "Bill"],
            with_model,
        )
        .ok()
        .json()["context_id"]
        .as_str()
        .unwrap()
        .to_string();
    for (role, text) in [
        ("user", "Why did our EC2 bill jump 40% last week?"),
        ("assistant", "Three idle m5.4xlarge instances were never scaled in."),
    ] {
        env.run_with(&["chat", "add", &ctx, "--role", role, text], with_model)
            .ok();
    }
    // Each `chat add` was its own process: its shutdown embedded the message.
    let found = env
        .run_with(
            &[
                "--json",
                "chat",
                "search",
                "--user",
                "alice",
                "--mode",
                "semantic",
                "virtual machines costing more money",
            ],
            with_model,
        )
        .ok()
        .json();
    assert_eq!(found["mode"], "semantic");
    assert_eq!(found["conversations"][0]["context_id"], ctx.as_str());
    let keyword = env
        .run_with(
            &[
                "--json",
                "chat",
                "search",
                "--user",
                "alice",
                "--mode",
                "keyword",
                "virtual machines costing more money",
            ],
            with_model,
        )
        .ok()
        .json();
    assert_eq!(
        keyword["conversations"].as_array().unwrap().len(),
        0,
        "no shared keyword"
    );
    let human = env
        .run_with(&["chat", "search", "--user", "alice", "m5.4xlarge"], with_model)
        .ok();
    assert!(
        human.stdout.contains("hybrid search: 1 conversation"),
        "{}",
        human.stdout
    );

    let current = new_conversation(&env, "alice");
    let context = env
        .run_with(
            &[
                "--json",
                "chat",
                "context",
                "--user",
                "alice",
                "--current",
                &current,
                "our compute spend went up again",
            ],
            with_model,
        )
        .ok()
        .json();
    assert_eq!(context["context"]["pairs"][0]["context_id"], ctx.as_str());
    assert!(context["rendered"]
        .as_str()
        .unwrap()
        .starts_with("Context from previous conversations:"));

    // The model is recorded: a store opened without one still answers keyword searches, and
    // `status` shows the recorded model.
    let status = env.run(&["--json", "status"]).ok().json();
    assert!(status["stored_embedding"]["model_id"]
        .as_str()
        .unwrap()
        .starts_with("bert/384d@"));
    assert_eq!(status["pending_embeddings"], 0);
    let reindex = env.run_with(&["--json", "reindex"], with_model).ok().json();
    assert_eq!(reindex["embedded"], 0, "nothing to re-embed with the same model");
}

#[test]
fn search_and_reindex_without_a_model_explain_how_to_enable_it() {
    let env = Env::new();
    env.run(&["init"]).ok();
    let ctx = new_conversation(&env, "bob");
    env.run(&["chat", "add", &ctx, "--role", "user", "restart pg-instance-main1"])
        .ok();
    let r = env
        .run(&["--json", "chat", "search", "--user", "bob", "pg-instance-main1"])
        .ok()
        .json();
    assert_eq!(r["mode"], "keyword");
    assert_eq!(r["conversations"][0]["context_id"], ctx.as_str());
    let err = env
        .run(&["--json", "chat", "search", "--user", "bob", "--mode", "semantic", "x"])
        .failed();
    assert!(
        err.stderr.contains("invalid_input") && err.stderr.contains("fetch-test-model"),
        "{}",
        err.stderr
    );
    let err = env.run(&["reindex"]).failed();
    assert!(err.stderr.contains("reindex needs an embedder"), "{}", err.stderr);
    let err = env
        .run(&["chat", "search", "--user", "bob", "--mode", "fuzzy", "x"])
        .failed();
    assert_eq!(err.code, 2, "clap rejects an unknown mode");
}

#[test]
fn migrate_node_reports_files_and_is_idempotent() {
    let env = Env::new();
    env.run(&["init"]).ok();
    let contexts = env.dir.path().join("chat-data/contexts");
    std::fs::create_dir_all(&contexts).unwrap();
    std::fs::write(
        contexts.join("alice-ctx_1.json"),
        r#"{"agent_type":"aws","chat_title":"S3","context_id":"ctx_1","final_conversation_context":{"i":"ctx_1","m":[{"r":0,"c":"list buckets"},{"r":1,"c":"3 buckets"}],"t":1700000000,"l":1700000060},"processing_results":{"clean_response":"3 buckets","clean_response_length":9}}"#,
    )
    .unwrap();
    std::fs::write(contexts.join("alice-bad.json"), "{ nope").unwrap();
    let src = env.dir.path().join("chat-data");
    let first = env
        .run(&["--json", "migrate", "node", src.to_str().unwrap()])
        .ok()
        .json();
    assert_eq!(first["imported"], 1);
    assert_eq!(first["messages"], 2);
    assert_eq!(first["ignored"], 0);
    assert_eq!(first["pending"], 0, "no model: nothing waits for a vector");
    assert_eq!(
        first["failed"][0]["path"].as_str().unwrap(),
        contexts.join("alice-bad.json").to_str().unwrap()
    );
    assert!(first["failed"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("not valid JSON"));
    let second = env.run(&["migrate", "node", src.to_str().unwrap()]).ok();
    assert!(
        second.stdout.contains("imported 0 conversation(s)") && second.stdout.contains("skipped 1"),
        "{}",
        second.stdout
    );
    assert_eq!(history_len(&env, "ctx_1"), 2);
    let err = env.run(&["migrate", "node", "/nonexistent/chat-data"]).failed();
    assert!(err.stderr.contains("is not a folder"), "{}", err.stderr);
}

#[test]
fn estate_import_search_get_stats_and_sync_refusals() {
    let env = Env::new();
    env.run(&["init"]).ok();
    let fixtures = format!("{}/../storage/tests/fixtures/aws", env!("CARGO_MANIFEST_DIR"));
    let f = |name: &str| format!("{fixtures}/{name}");
    let imported = env
        .run(&[
            "--json",
            "estate",
            "import",
            &f("ec2-describe-instances.json"),
            // The tag listing says orders-pg has no tags; rds, read after it, says it has two.
            &f("tagging-get-resources.json"),
            &f("rds-describe-db-instances.json"),
            "--account-id",
            "123456789012",
        ])
        .ok()
        .json();
    let files = imported["files"].as_array().unwrap();
    assert_eq!(files[0]["added"], 2);
    assert_eq!(files[0]["issues"][0]["path"], "$.Reservations[0].Instances[2]");
    assert_eq!(files[1]["format"], "tagging-get-resources");

    // Tag listings cannot drive a sync; a good complete listing can.
    let refused = env
        .run(&[
            "estate",
            "import",
            "--sync",
            &f("tagging-get-resources.json"),
            "--account-id",
            "123456789012",
        ])
        .failed();
    assert!(refused.stdout.contains("complete listing"), "{}", refused.stdout);
    let unknown_dir = env.dir.path().join("unknown.json");
    std::fs::write(&unknown_dir, r#"{"Stacks": []}"#).unwrap();
    let bad = env.run(&["estate", "import", unknown_dir.to_str().unwrap()]).failed();
    assert!(bad.stdout.contains("unknown format"), "{}", bad.stdout);

    let hits = env
        .run(&["--json", "estate", "search", "tag:env=production region:us-east-1"])
        .ok()
        .json();
    let ids: Vec<&str> = hits
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["resource"]["identifier"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"i-0abc1234567890def") && ids.contains(&"orders-pg"),
        "{ids:?}"
    );
    let db = env
        .run(&[
            "--json",
            "estate",
            "get",
            "arn:aws:rds:us-east-1:123456789012:db:orders-pg",
        ])
        .ok()
        .json();
    assert_eq!(db["constraints"]["can_delete"], false);
    let human = env
        .run(&["estate", "get", "123456789012/us-east-1/rds:db/orders-pg"])
        .ok();
    assert!(human.stdout.contains("iam        (unknown)"), "{}", human.stdout);
    let stats = env.run(&["--json", "estate", "stats", "--by", "tag:env"]).ok().json();
    assert_eq!(stats["by"]["tag:env"][0][0], "production");
    let err = env.run(&["--json", "estate", "search", "colour:red"]).failed();
    assert!(
        err.stderr.contains("invalid_input") && err.stderr.contains("colour:"),
        "{}",
        err.stderr
    );
    let err = env.run(&["estate", "get", "arn:aws:s3:::nope"]).failed();
    assert!(err.stderr.contains("not found"), "{}", err.stderr);
    let keyword = env
        .run(&["--json", "estate", "search", "--mode", "keyword", "orders-pg"])
        .ok()
        .json();
    assert_eq!(keyword[0]["resource"]["identifier"], "orders-pg");
    let err = env
        .run(&["estate", "search", "--mode", "semantic", "database"])
        .failed();
    assert!(err.stderr.contains("fetch-test-model"), "{}", err.stderr);
}

/// describe-instances output holding `instances` (id, state) in us-east-1, with a next-page
/// token when `more` is set.
fn ec2_page(instances: &[(&str, &str)], more: bool) -> String {
    let instances: Vec<Value> = instances
        .iter()
        .map(|(id, state)| {
            serde_json::json!({
                "InstanceId": id,
                "Placement": {"AvailabilityZone": "us-east-1a"},
                "State": {"Name": state},
                "Tags": [{"Key": "env", "Value": "production"}]
            })
        })
        .collect();
    let mut page = serde_json::json!({
        "Reservations": [{"OwnerId": "123456789012", "Instances": instances}]
    });
    if more {
        page["NextToken"] = "eyJ0b2tlbiI6IDJ9".into();
    }
    page.to_string()
}

#[test]
fn estate_sync_takes_every_page_tombstones_the_missing_and_shows_them_on_request() {
    let env = Env::new();
    env.run(&["init"]).ok();
    let file = |name: &str, text: String| {
        let path = env.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let first = file("page1.json", ec2_page(&[("i-0aaa", "running")], true));
    let last = file("page2.json", ec2_page(&[("i-0bbb", "stopped")], false));

    // One page alone would tombstone what the other pages hold: refused.
    let refused = env.run(&["estate", "import", "--sync", &first]).failed();
    assert!(refused.stdout.contains("next-page token"), "{}", refused.stdout);
    assert!(refused.stdout.contains("CHANGED NOTHING"), "{}", refused.stdout);

    let synced = env
        .run(&["--json", "estate", "import", "--sync", &first, &last])
        .ok()
        .json();
    assert_eq!(synced["syncs"].as_array().unwrap().len(), 1, "{synced}");
    assert_eq!(synced["syncs"][0]["added"], 2);
    assert_eq!(synced["syncs"][0]["tombstoned"], 0);
    assert_eq!(synced["syncs"][0]["scope"]["regions"][0], "us-east-1");

    // A file with a bad record stops the whole --sync: nothing is tombstoned.
    let broken = file(
        "broken.json",
        r#"{"Reservations": [{"OwnerId": "123456789012", "Instances": [{"State": {"Name": "running"}}]}]}"#.into(),
    );
    let only_b = file("only-b.json", ec2_page(&[("i-0bbb", "stopped")], false));
    let stopped = env.run(&["estate", "import", "--sync", &only_b, &broken]).failed();
    assert!(stopped.stdout.contains("bad record"), "{}", stopped.stdout);
    let live = |env: &Env, extra: &[&str]| -> Vec<(String, String)> {
        let mut args = vec!["--json", "estate", "search", "resourcetype:ec2:instance"];
        args.extend_from_slice(extra);
        let hits = env.run(&args).ok().json();
        let mut out: Vec<(String, String)> = hits
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["resource"]["identifier"].as_str().unwrap().to_string(),
                    h["resource"]["state"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        out.sort();
        out
    };
    assert_eq!(live(&env, &[]).len(), 2, "the failed --sync changed something");

    // The next complete listing lacks i-0aaa: tombstoned, hidden unless asked for.
    let synced = env.run(&["--json", "estate", "import", "--sync", &only_b]).ok().json();
    assert_eq!(synced["syncs"][0]["tombstoned"], 1);
    assert_eq!(synced["syncs"][0]["unchanged"], 1);
    assert_eq!(live(&env, &[]), vec![("i-0bbb".to_string(), "stopped".to_string())]);
    assert_eq!(
        live(&env, &["--include-deleted"]),
        vec![
            ("i-0aaa".to_string(), "deleted".to_string()),
            ("i-0bbb".to_string(), "stopped".to_string())
        ]
    );
    let human = env.run(&["estate", "import", "--sync", &only_b]).ok();
    assert!(
        human.stdout.contains("sync of ec2:instance in 123456789012 / us-east-1 (1 file(s)): 0 added, 0 updated, 1 unchanged, 0 tombstoned"),
        "{}",
        human.stdout
    );
}

/// S3 settings of the test's Garage bucket (scripts/test.sh) under a prefix of this test's
/// own, or `None` (skip) outside CI when no S3 server runs.
fn s3_settings(label: &str) -> Option<Vec<(&'static str, String)>> {
    match (
        std::env::var("CLOUDOPS_TEST_S3_ENDPOINT"),
        std::env::var("CLOUDOPS_TEST_S3_BUCKET"),
    ) {
        (Ok(endpoint), Ok(bucket)) => {
            let unique = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            Some(vec![
                ("CLOUDOPS_BACKUP_S3_BUCKET", bucket),
                ("CLOUDOPS_BACKUP_S3_ENDPOINT", endpoint),
                ("CLOUDOPS_BACKUP_S3_REGION", "garage".into()),
                (
                    "CLOUDOPS_BACKUP_S3_PREFIX",
                    format!("cli-{label}-{}-{unique}", std::process::id()),
                ),
            ])
        }
        _ => {
            assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "CI=true but no S3 server");
            eprintln!("SKIPPED: no S3 server (run scripts/test.sh, which starts Garage)");
            None
        }
    }
}

#[test]
fn init_hands_out_a_recovery_kit_that_restores_the_store_on_a_new_machine() {
    let Some(s3) = s3_settings("dr") else { return };
    let with_s3 = |c: &mut Command| {
        for (k, v) in &s3 {
            c.env(k, v);
        }
    };
    let old = Env::new();
    let init = old.run(&["--json", "init"]).ok().json();
    let init_key = init["recovery_kit"]["recovery_key"].as_str().unwrap().to_string();
    assert_eq!(init_key.len(), 65, "{init_key}");
    let again = old.run(&["init"]).ok();
    assert!(again.stdout.contains("recovery    issued"), "{}", again.stdout);
    assert!(!again.stdout.contains(&init_key), "a kit is shown once");

    // A new kit into a file: 0600, never over an existing file; the init kit stops working.
    let kit_file = old.dir.path().join("recovery-kit.txt");
    let kit_arg = kit_file.display().to_string();
    old.run(&["keys", "recovery-kit", "--out", &kit_arg]).ok();
    if let Some(mode) = cloudops_storage_service::platform::file_mode(&std::fs::metadata(&kit_file).unwrap()) {
        assert_eq!(mode & 0o777, 0o600);
    }
    let kit_text = std::fs::read_to_string(&kit_file).unwrap();
    assert!(kit_text.contains("recovery key") && !kit_text.contains(&init_key));
    let refused = old.run(&["keys", "recovery-kit", "--out", &kit_arg]).failed();
    assert!(refused.stderr.contains("exists"), "{}", refused.stderr);
    assert_eq!(
        std::fs::read_to_string(&kit_file).unwrap(),
        kit_text,
        "kit file replaced"
    );
    let status = old.run(&["status"]).ok();
    assert!(status.stdout.contains("recovery kit issued"), "{}", status.stdout);

    let ctx = new_conversation(&old, "alice");
    old.run(&["chat", "add", &ctx, "--role", "user", "remember the NAT gateway"])
        .ok();
    let backup = old
        .run_with(&["--json", "backup", "now", "--upload"], with_s3)
        .ok()
        .json();
    let name = backup["name"].as_str().unwrap().to_string();
    let sent = &backup["upload"];
    assert!(sent["chunks"].as_u64().unwrap() > 0, "{backup}");
    assert_eq!(
        sent["new_chunks"], sent["chunks"],
        "a first upload sends every chunk: {backup}"
    );
    let verified = old
        .run_with(&["--json", "backup", "verify", "--remote"], with_s3)
        .ok()
        .json();
    assert_eq!(verified["name"], name.as_str(), "{verified}");
    // A write after the backup is shipped when its command closes the store.
    old.run_with(
        &["chat", "add", &ctx, "--role", "assistant", "it doubled in March"],
        with_s3,
    )
    .ok();
    let health = old.run_with(&["--json", "status"], with_s3).ok().json();
    assert_eq!(health["backup"]["journal_shipping"], true, "{health}");
    assert!(health["backup"]["journal_shipped_at_ms"].is_i64(), "{health}");
    let shipped = old.run_with(&["--json", "backup", "ship"], with_s3).ok().json();
    assert!(shipped["generation"].is_string(), "{shipped}");
    std::fs::remove_dir_all(old.data_dir()).unwrap();
    std::fs::remove_file(old.dir.path().join("keys/master.key")).unwrap();

    // The new machine: no store, no key; the bucket lists without one.
    let new = Env::new();
    let listed = new
        .run_with(&["--json", "backup", "list", "--remote"], with_s3)
        .ok()
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    // The replaced (init) kit, typed on stdin: a clear error, nothing written.
    let wrong = new
        .run_stdin_with(
            &["--json", "backup", "restore", "--from-s3", "--recovery-key", "-"],
            init_key.as_bytes(),
            with_s3,
        )
        .failed();
    assert!(wrong.stderr.contains("wrong_key"), "{}", wrong.stderr);
    assert!(!new.data_dir().exists(), "a refused restore wrote the data dir");
    let swap = if &init_key[10..11] == "X" { "Y" } else { "X" };
    let typo = format!("{}{swap}{}", &init_key[..10], &init_key[11..]);
    let mistyped = new
        .run_stdin_with(
            &["backup", "restore", "--from-s3", "--recovery-key", "-"],
            typo.as_bytes(),
            with_s3,
        )
        .failed();
    assert!(
        mistyped.stderr.contains("not a valid recovery key"),
        "{}",
        mistyped.stderr
    );

    let restored = new
        .run_with(
            &[
                "--json",
                "backup",
                "restore",
                "--from-s3",
                "--recovery-key-file",
                &kit_arg,
            ],
            with_s3,
        )
        .ok()
        .json();
    assert_eq!(restored["keys"]["key_source"], "file", "{restored}");
    assert!(restored["journal"]["records"].as_u64().unwrap() >= 1, "{restored}");
    assert!(new.dir.path().join("keys/master.key").exists());
    assert_eq!(
        history_len(&new, &ctx),
        2,
        "the backup's message and the one shipped after it"
    );
    let status = new.run(&["status"]).ok();
    assert!(status.stdout.contains("recovery kit issued"), "{}", status.stdout);
}

#[test]
fn a_passphrase_read_from_stdin_opens_the_store_and_a_wrong_one_does_not() {
    let env = Env::new();
    let passphrase = |c: &mut Command| {
        c.env("CLOUDOPS_KEY_SOURCE", "passphrase");
    };
    let init = env
        .run_stdin_with(
            &["--json", "--passphrase-fd", "0", "init"],
            b"correct horse battery staple\n",
            passphrase,
        )
        .ok()
        .json();
    assert_eq!(init["key_source"], "passphrase");
    env.run_stdin_with(
        &["--passphrase-fd", "0", "status"],
        b"correct horse battery staple\n",
        passphrase,
    )
    .ok();
    let wrong = env
        .run_stdin_with(
            &["--json", "--passphrase-fd", "0", "status"],
            b"wrong horse battery staple\n",
            passphrase,
        )
        .failed();
    assert!(wrong.stderr.contains("wrong_key"), "{}", wrong.stderr);
    let missing = env.run_with(&["status"], passphrase).failed();
    assert!(missing.stderr.contains("CLOUDOPS_PASSPHRASE"), "{}", missing.stderr);
}
