//! `demo`: the main job end to end, on a store in a temporary folder.
//!
//! Creates an encrypted store, records two users' CloudOps conversations, pages through
//! history, renames and archives, restarts the service to show persistence, backs up,
//! searches by keyword and by meaning, picks context pairs for a new prompt, imports a small
//! AWS estate and searches it by meaning and by filters, deletes a
//! conversation and restores it, scans the data dir for a plaintext marker, and erases one
//! user with a receipt.

use std::time::Instant;

use cloudops_storage_service::RestoreOptions;
use cloudops_storage_service::{ConfigKey, StorageConfig, StorageService};
use cloudops_storage_service::{
    ContextOptions, ConversationStatus, ConversationUpdate, HistoryRange, NewMessage, Role, SearchMode, SearchOptions,
};
use serde_json::json;

use crate::output::{self, Output};

const MARKER: &str = "db-prod-7f3a9c-secret-marker";

const DIALOGUE: &[(Role, &str)] = &[
    (Role::User, "Why did our EC2 bill jump 40% last week?"),
    (
        Role::Assistant,
        "Three m5.4xlarge instances in us-east-1 were launched by an autoscaling group and never scaled in.",
    ),
    (Role::User, "Which autoscaling group?"),
    (
        Role::Assistant,
        "asg-web-prod; its scale-in policy was disabled on Monday.",
    ),
    (Role::User, "Re-enable it and cap it at 6 instances."),
    (
        Role::Assistant,
        "Done: scale-in enabled, max size 6. Expected saving is about $1,900 a month.",
    ),
];

pub(crate) async fn run(out: Output) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let data_dir = tmp.path().join("data");
    // The key file lives beside, not inside, the data dir: a copy of the data never carries its key.
    let key_file = tmp.path().join("keys").join("master.key");
    let config = StorageConfig::builder()
        .with_data_dir(&data_dir)
        .with_config(ConfigKey::KeySource, "file")
        .with_config(ConfigKey::KeyFile, key_file.display().to_string())
        .build()?;
    let say = |line: String| {
        if !out.json {
            println!("{line}");
        }
    };
    say(format!("== cloudops-storage demo (store in {})", data_dir.display()));

    let service = StorageService::open(config.clone()).await?;
    let keys = service.key_status();
    say(format!(
        "1. created an encrypted store {} (key: {})",
        keys.store_id, keys.key_location
    ));

    let chat = &service.chat;
    let costs = chat
        .create_conversation("alice", "EC2 cost spike", json!({"agent_type": "cost"}))
        .await?;
    let mut append_ms = Vec::new();
    for (role, text) in DIALOGUE {
        let t = Instant::now();
        chat.append(&costs, NewMessage::new(*role, *text)).await?;
        append_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let rds = chat.create_conversation("alice", "RDS failover", json!({})).await?;
    chat.append(
        &rds,
        NewMessage::new(Role::User, format!("Fail over {MARKER} to the standby")),
    )
    .await?;
    chat.append(
        &rds,
        NewMessage::new(
            Role::Assistant,
            "Failover started; the standby in us-east-1b is promoting.",
        ),
    )
    .await?;
    let bob = chat.create_conversation("bob", "Lambda timeouts", json!({})).await?;
    chat.append(&bob, NewMessage::new(Role::User, "Why does ingest-fn time out at 3 s?"))
        .await?;
    let mean = append_ms.iter().sum::<f64>() / append_ms.len() as f64;
    say(format!(
        "2. stored 3 conversations (alice: 2, bob: 1) and 9 messages; mean append {mean:.3} ms"
    ));

    let search = search_step(&service, &say).await?;
    let estate = estate_step(&service, tmp.path(), &say).await?;

    let last = chat.get_history(&costs, HistoryRange::Last(2)).await?;
    say("3. last 2 messages of \"EC2 cost spike\":".into());
    for m in &last {
        say(format!(
            "     #{} {:<9} {}",
            m.message_index,
            m.role.as_str(),
            m.content
        ));
    }
    let older = chat
        .get_history(&costs, HistoryRange::Before { index: 2, limit: 2 })
        .await?;
    say(format!(
        "   page before #2: {}",
        older
            .iter()
            .map(|m| format!("#{}", m.message_index))
            .collect::<Vec<_>>()
            .join(", ")
    ));

    chat.update_conversation(
        &rds,
        ConversationUpdate {
            title: Some("RDS failover drill".into()),
            ..Default::default()
        },
    )
    .await?;
    chat.update_conversation(
        &rds,
        ConversationUpdate {
            status: Some(ConversationStatus::Archived),
            ..Default::default()
        },
    )
    .await?;
    let active = chat
        .list_conversations("alice", Some(ConversationStatus::Active), 10, None)
        .await?;
    say(format!(
        "4. renamed and archived \"RDS failover drill\"; alice's active list: {}",
        active
            .conversations
            .iter()
            .map(|c| format!("{:?} ({} msgs)", c.title, c.message_count))
            .collect::<Vec<_>>()
            .join(", ")
    ));

    service.shutdown().await?;
    let t = Instant::now();
    let service = StorageService::open(config.clone()).await?;
    let reopen_ms = t.elapsed().as_secs_f64() * 1e3;
    let all = service.chat.all_conversations("alice").await?;
    let history = service.chat.get_history(&costs, HistoryRange::All).await?;
    say(format!(
        "5. restarted the service in {reopen_ms:.1} ms: alice still has {} conversations; \"EC2 cost spike\" has {} messages in order",
        all.len(),
        history.len()
    ));

    let backup = service.backup.create_snapshot().await?;
    say(format!(
        "6. backed up {} points into an encrypted archive of {} (writers paused {:.0} ms): {}",
        backup.points(),
        output::bytes(backup.archive_bytes),
        backup.writer_pause_ms,
        backup.name
    ));
    service.chat.delete_conversation(&costs).await?;
    let gone = service.chat.get_conversation(&costs).await.is_err();
    service.shutdown().await?;
    let restored = StorageService::restore_backup(
        &config,
        &RestoreOptions::default(),
        &cloudops_storage_service::no_progress,
    )
    .await?;
    let service = StorageService::open(config.clone()).await?;
    let back = service.chat.get_history(&costs, HistoryRange::All).await?;
    say(format!(
        "7. deleted \"EC2 cost spike\" (gone: {gone}), restored {} in {:.0} ms: it is back with {} messages",
        restored.backup.name,
        restored.elapsed_ms,
        back.len()
    ));
    anyhow::ensure!(
        back.len() == history.len(),
        "restore did not bring the conversation back"
    );

    service.flush().await?;
    let found = scan_for(&data_dir, MARKER.as_bytes())?;
    say(format!(
        "8. scanned every byte under the data dir (store and backups) for {MARKER:?}: {}",
        if found.is_empty() {
            "not found (sealed with AES-256-GCM)".to_string()
        } else {
            format!("FOUND in {found:?}")
        }
    ));
    anyhow::ensure!(found.is_empty(), "plaintext marker found on disk: {found:?}");

    let receipt = service.chat.erase_user("bob").await?;
    say(format!(
        "9. erased bob: {} conversation(s), {} message(s) deleted",
        receipt.conversations, receipt.messages
    ));
    let health = service.health().await?;
    say("10. health:".into());
    if !out.json {
        crate::commands::status::print_health(&health);
    }
    service.shutdown().await?;
    out.emit(
        &json!({
            "store_id": keys.store_id,
            "conversations_alice": all.len(),
            "messages_in_first_conversation": history.len(),
            "mean_append_ms": mean,
            "reopen_ms": reopen_ms,
            "plaintext_found_on_disk": !found.is_empty(),
            "backup": backup,
            "restored_messages": back.len(),
            "erase_receipt": receipt,
            "search": search,
            "estate": estate,
            "health": health,
        }),
        |_| {
            println!(
                "== demo finished; the temporary store is removed on exit ({})",
                output::bytes(health.data_dir_bytes)
            )
        },
    )
}

/// Keyword vs semantic search for a paraphrase, and prompt context for a new conversation.
async fn search_step(service: &StorageService, say: &impl Fn(String)) -> anyhow::Result<serde_json::Value> {
    let chat = &service.chat;
    let query = "why is our cloud spending going up";
    let keyword = chat
        .search_conversations(
            "alice",
            query,
            &SearchOptions {
                mode: SearchMode::Keyword,
                ..SearchOptions::default()
            },
        )
        .await?;
    let titles = |r: &cloudops_storage_service::SearchResults| {
        r.conversations
            .iter()
            .map(|c| format!("{:?}", c.title))
            .collect::<Vec<_>>()
    };
    say(format!("2b. search {query:?}:"));
    say(format!("     keyword  -> {:?}", titles(&keyword)));
    let Some(model) = chat.embedding_model() else {
        say("     semantic -> off: no embedding model. Run scripts/fetch-test-model.sh (or set [embedding] provider) to enable semantic search".into());
        return Ok(serde_json::json!({ "query": query, "keyword": titles(&keyword), "semantic": null }));
    };
    let t = Instant::now();
    chat.wait_for_index().await?;
    let index_ms = t.elapsed().as_secs_f64() * 1e3;
    let semantic = chat
        .search_conversations(
            "alice",
            query,
            &SearchOptions {
                mode: SearchMode::Semantic,
                limit: 1,
                ..SearchOptions::default()
            },
        )
        .await?;
    let best = semantic
        .conversations
        .first()
        .and_then(|c| c.messages.first().map(|m| (c, m)));
    say(format!(
        "     semantic -> {:?} (model {model}; background embedding caught up in {index_ms:.0} ms)",
        titles(&semantic)
    ));
    if let Some((_, m)) = best {
        say(format!(
            "                 best match: {:?} (cosine {:.2})",
            m.snippet,
            m.similarity.unwrap_or(0.0)
        ));
    }
    let hybrid = chat
        .search_conversations("alice", "asg-web-prod scale-in", &SearchOptions::default())
        .await?;
    say(format!(
        "     hybrid \"asg-web-prod scale-in\" -> {:?}",
        titles(&hybrid)
    ));
    let fresh = chat
        .create_conversation("alice", "New question", serde_json::json!({}))
        .await?;
    let prompt = "Our autoscaling costs are creeping up again";
    let context = chat
        .context_for_prompt("alice", &fresh, prompt, ContextOptions::default())
        .await?;
    say(format!(
        "2c. context for a new prompt {prompt:?}: {} pair(s); the prompt block starts:",
        context.pairs.len()
    ));
    for line in context.render().lines().take(5) {
        say(format!("     | {line}"));
    }
    Ok(serde_json::json!({
        "query": query,
        "keyword": titles(&keyword),
        "semantic": titles(&semantic),
        "hybrid_identifier": titles(&hybrid),
        "context_pairs": context.pairs.len(),
    }))
}

/// A small estate from AWS CLI output: a semantic search and a filtered one.
async fn estate_step(
    service: &StorageService,
    files_dir: &std::path::Path,
    say: &impl Fn(String),
) -> anyhow::Result<serde_json::Value> {
    use cloudops_storage_service::{no_progress, ImportOptions, ResourceFilter};
    let options = ImportOptions {
        account_id: Some("123456789012".into()),
        account_name: Some("acme-prod".into()),
        ..ImportOptions::default()
    };
    let mut files = Vec::new();
    for (name, text) in [
        ("ec2-describe-instances.json", DEMO_EC2),
        ("rds-describe-db-instances.json", DEMO_RDS),
        ("tagging-get-resources.json", DEMO_TAGS),
    ] {
        let path = files_dir.join(name);
        std::fs::write(&path, text)?;
        files.push(path);
    }
    let report = service.estate.import_files(&files, &options, &no_progress).await?;
    anyhow::ensure!(report.failed() == 0, "demo AWS CLI files did not import: {report:?}");
    let imported: usize = report.files.iter().map(|f| f.resources).sum();
    let total = service.estate.count(&ResourceFilter::default()).await?;
    say(format!(
        "2d. imported {imported} records of AWS CLI output (describe-instances, describe-db-instances, get-resources) as {total} resources"
    ));
    let names = |hits: &[cloudops_storage_service::ResourceHit]| {
        hits.iter()
            .map(|h| {
                format!(
                    "{} {}",
                    h.resource.resource_type,
                    h.resource.name.as_deref().unwrap_or(&h.resource.identifier)
                )
            })
            .collect::<Vec<_>>()
    };
    let semantic = service
        .estate
        .search("production database", &ResourceFilter::default(), 1)
        .await?;
    say(format!("     \"production database\" -> {:?}", names(&semantic)));
    let filtered = service
        .estate
        .search(
            "region:us-east-1 state:running tag:env=production",
            &ResourceFilter::default(),
            10,
        )
        .await?;
    say(format!(
        "     \"region:us-east-1 state:running tag:env=production\" -> {:?}",
        names(&filtered)
    ));
    Ok(serde_json::json!({
        "resources": total,
        "semantic": names(&semantic),
        "filtered": names(&filtered),
    }))
}

const DEMO_EC2: &str = r#"{"Reservations": [{"OwnerId": "123456789012", "Instances": [
  {"InstanceId": "i-0a1b2c3d4e5f60718", "InstanceType": "m5.large", "Placement": {"AvailabilityZone": "us-east-1a"},
   "State": {"Name": "running"}, "LaunchTime": "2024-05-02T09:15:31+00:00",
   "Tags": [{"Key": "Name", "Value": "web-1"}, {"Key": "env", "Value": "production"}]},
  {"InstanceId": "i-0f9e8d7c6b5a40312", "InstanceType": "t3.small", "Placement": {"AvailabilityZone": "us-east-1b"},
   "State": {"Name": "stopped"}, "Tags": [{"Key": "Name", "Value": "batch-old"}, {"Key": "env", "Value": "staging"}]}]}]}"#;

const DEMO_RDS: &str = r#"{"DBInstances": [
  {"DBInstanceIdentifier": "orders-pg", "DBInstanceArn": "arn:aws:rds:us-east-1:123456789012:db:orders-pg",
   "Engine": "postgres", "DBInstanceClass": "db.r6g.large", "DBInstanceStatus": "available", "DeletionProtection": true,
   "TagList": [{"Key": "env", "Value": "production"}]},
  {"DBInstanceIdentifier": "reports-mysql", "DBInstanceArn": "arn:aws:rds:eu-west-1:123456789012:db:reports-mysql",
   "Engine": "mysql", "DBInstanceClass": "db.t3.medium", "DBInstanceStatus": "available",
   "TagList": [{"Key": "env", "Value": "staging"}]}]}"#;

const DEMO_TAGS: &str = r#"{"ResourceTagMappingList": [
  {"ResourceARN": "arn:aws:s3:::acme-web-assets", "Tags": [{"Key": "env", "Value": "production"}]},
  {"ResourceARN": "arn:aws:ec2:us-east-1:123456789012:instance/i-0a1b2c3d4e5f60718",
   "Tags": [{"Key": "Name", "Value": "web-1"}, {"Key": "env", "Value": "production"}, {"Key": "owner", "Value": "web-team"}]}]}"#;

/// Files under `dir` whose bytes contain `needle`.
fn scan_for(dir: &std::path::Path, needle: &[u8]) -> anyhow::Result<Vec<String>> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)?.windows(needle.len()).any(|w| w == needle) {
                hits.push(path.display().to_string());
            }
        }
    }
    Ok(hits)
}
