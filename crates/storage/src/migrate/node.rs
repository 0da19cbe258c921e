//! Import of the Node.js module's `chat-data/contexts/{userId}-{contextId}.json` files.
//!
//! Each file is one conversation: `chat_title`, `context_id`, `final_conversation_context`
//! `{ i, m: [{ r: 0 | 1, c }], t, l }` (times in unix seconds) and other fields (a top-level
//! `timestamp` in milliseconds among them), which are kept as the conversation's metadata. A
//! file is parsed and checked completely before anything is written, and a conversation is
//! written messages first and its record last, so nothing is ever half-imported; a second run
//! finds the conversations present and adds nothing.
//!
//! Two file layouts name the user (see [`owner_of`]): the old module's own, where `context_id`
//! is the user-extended id `{userId}-{i}` and the file stem equals it, and a bare `context_id`
//! with the stem `{userId}-{context_id}`. Context ids may themselves contain dashes
//! (`1795532942000-k3f9x2m8q1z7a`). The old module's streaming files (`raw/`,
//! `*-raw.json`) hold no conversation and are ignored.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::chat::{ChatStorage, Conversation, ConversationStatus, ImportOutcome, ImportedConversation, Role};
use crate::error::{Result, StorageError};
use crate::progress::{report, Phase, ProgressFn};

/// Largest file read, in bytes.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// One file that could not be imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct FailedFile {
    /// The file.
    pub path: PathBuf,
    /// Why it was skipped.
    pub reason: String,
}

/// What a migration did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct NodeImportReport {
    /// Files imported as new conversations.
    pub imported: u64,
    /// Files whose conversation was already present (an earlier run).
    pub skipped: u64,
    /// Files that could not be read or parsed.
    pub failed: Vec<FailedFile>,
    /// The old module's streaming files (`*-raw.json`), which hold no conversation, and links
    /// (never followed out of the folder): not read.
    pub ignored: u64,
    /// Messages written.
    pub messages: u64,
}

impl ChatStorage {
    /// Import the old Node.js module's chats: every `contexts/*.json` under `chat_data_dir`
    /// (or `chat_data_dir` itself when it is the `contexts` folder). `user` overrides the user
    /// id taken from file names. Progress: [`Phase::ImportFiles`]. Imported messages are
    /// found by keyword search at once and embedded in the background afterwards.
    ///
    /// # Errors
    /// [`StorageError::InvalidInput`] when `chat_data_dir` is not a folder;
    /// [`StorageError::Io`] when it cannot be listed; store errors abort the run (files done
    /// so far stay imported, the rest are imported by the next run).
    #[doc(alias = "import_node")]
    pub async fn import_node_dir(
        &self,
        chat_data_dir: &Path,
        user: Option<&str>,
        progress: ProgressFn<'_>,
    ) -> Result<NodeImportReport> {
        import_dir(self, chat_data_dir, user, progress).await
    }
}

async fn import_dir(
    chat: &ChatStorage,
    chat_data_dir: &Path,
    user: Option<&str>,
    progress: ProgressFn<'_>,
) -> Result<NodeImportReport> {
    if !chat_data_dir.is_dir() {
        return Err(StorageError::InvalidInput {
            field: "chat_data_dir",
            reason: format!(
                "{} is not a folder (give the Node.js module's chat-data folder)",
                chat_data_dir.display()
            ),
        });
    }
    let progress = |done: u64, total: u64| report(progress, Phase::ImportFiles, done, total);
    let contexts = if chat_data_dir.join("contexts").is_dir() {
        chat_data_dir.join("contexts")
    } else {
        chat_data_dir.to_path_buf()
    };
    // The model embeds the imported messages afterwards, not while they are written.
    let _pause = chat.pause_indexing();
    let mut report = NodeImportReport::default();
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(&contexts).map_err(|e| StorageError::io("listing", &contexts, e))? {
        let entry = entry.map_err(|e| StorageError::io("listing", &contexts, e))?;
        let (path, kind) = (entry.path(), entry.file_type());
        // A link is not followed (it could lead out of the folder the caller allowed).
        if kind.as_ref().is_ok_and(std::fs::FileType::is_symlink) {
            report.ignored += 1;
            continue;
        }
        // Folders (the old `raw/` among them) and other files are not conversations.
        if !kind.is_ok_and(|k| k.is_file()) || path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        if is_raw_stream(&path) {
            report.ignored += 1;
            continue;
        }
        files.push(path);
    }
    files.sort();
    let total = files.len() as u64;
    progress(0, total);
    for (done, path) in files.iter().enumerate() {
        match parse_file(path, user) {
            Ok(conversation) => match chat.import_conversation(conversation).await {
                Ok(ImportOutcome::Imported(n)) => {
                    report.imported += 1;
                    report.messages += n;
                }
                Ok(ImportOutcome::AlreadyPresent) => report.skipped += 1,
                Err(StorageError::InvalidInput { field, reason }) => report.failed.push(FailedFile {
                    path: path.clone(),
                    reason: format!("{field} {reason}"),
                }),
                Err(e) => return Err(e),
            },
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "file skipped");
                report.failed.push(FailedFile {
                    path: path.clone(),
                    reason,
                });
            }
        }
        progress(done as u64 + 1, total);
    }
    Ok(report)
}

/// Parse and check one file completely; the error says what is wrong with it.
pub(crate) fn parse_file(path: &Path, user: Option<&str>) -> std::result::Result<ImportedConversation, String> {
    let bytes = crate::input_file::read_bounded(path, MAX_FILE_BYTES)?;
    let meta = std::fs::metadata(path).map_err(|e| format!("unreadable: {e}"))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(mut root) = value else {
        return Err("the top level is not a JSON object".into());
    };
    let context = match root.remove("final_conversation_context") {
        Some(Value::Object(c)) => c,
        Some(_) => return Err("`final_conversation_context` is not an object".into()),
        None => return Err("`final_conversation_context` is missing".into()),
    };
    let id_text = |v: Option<&Value>, name: &str| -> std::result::Result<Option<String>, String> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(format!("`{name}` is not a non-empty string")),
        }
    };
    let bare = id_text(context.get("i"), "final_conversation_context.i")?;
    let context_id = match id_text(root.get("context_id"), "context_id")? {
        Some(id) => id,
        None => bare
            .clone()
            .ok_or("no `context_id` (or `final_conversation_context.i`)")?,
    };
    let user_id = match user {
        Some(u) => u.to_string(),
        None => {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            owner_of(&stem, &context_id, bare.as_deref())?
        }
    };
    let title = match root.remove("chat_title") {
        Some(Value::String(t)) => t,
        None | Some(Value::Null) => String::new(),
        Some(_) => return Err("`chat_title` is not a string".into()),
    };
    let seconds = |key: &str| -> std::result::Result<Option<i64>, String> {
        match context.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| Some((s * 1000.0) as i64))
                .ok_or_else(|| format!("`final_conversation_context.{key}` is not a unix time in seconds")),
        }
    };
    let file_time = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64);
    // `timestamp` (the old `storeContext`'s save time) is in milliseconds, unlike `t`/`l`:
    // it only stands in for them when both are missing, and stays in the metadata as is.
    let saved_at = match root.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .filter(|ms| *ms >= 0)
                .ok_or("`timestamp` is not a unix time in milliseconds")?,
        ),
    };
    let started = seconds("t")?.or(saved_at).unwrap_or(file_time);
    let last = seconds("l")?.unwrap_or(started).max(started);
    let raw_messages = match context.get("m") {
        Some(Value::Array(m)) => m.clone(),
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err("`final_conversation_context.m` is not an array".into()),
    };
    let n = raw_messages.len();
    let mut messages = Vec::with_capacity(n);
    for (i, m) in raw_messages.into_iter().enumerate() {
        let Value::Object(mut m) = m else {
            return Err(format!("`final_conversation_context.m[{i}]` is not an object"));
        };
        let role = match m.remove("r").and_then(|r| r.as_i64()) {
            Some(0) => Role::User,
            Some(1) => Role::Assistant,
            _ => {
                return Err(format!(
                    "`final_conversation_context.m[{i}].r` is not 0 (user) or 1 (assistant)"
                ))
            }
        };
        let content = match m.remove("c") {
            Some(Value::String(c)) => c,
            _ => return Err(format!("`final_conversation_context.m[{i}].c` is not a string")),
        };
        // Messages carry no times: spread them evenly between the first and last activity.
        let at = if n > 1 {
            started + (last - started) * i as i64 / (n as i64 - 1)
        } else {
            last
        };
        let extra = (!m.is_empty()).then(|| Value::Object(m));
        messages.push((role, content, at, extra));
    }
    let mut metadata = Map::new();
    metadata.insert("source".into(), json!("nodejs-chat-data"));
    metadata.insert(
        "file".into(),
        json!(path.file_name().map(|f| f.to_string_lossy().into_owned())),
    );
    root.remove("context_id");
    for (k, v) in root {
        metadata.insert(k, v);
    }
    Ok(ImportedConversation {
        conversation: Conversation {
            context_id,
            user_id,
            title,
            metadata: Value::Object(metadata),
            created_at: started,
            updated_at: last,
            message_count: n as u64,
            status: ConversationStatus::Active,
        },
        messages,
    })
}

/// Whether `path` is one of the old module's streaming files (`{userId}-{contextId}-raw.json`).
fn is_raw_stream(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|f| f.to_string_lossy().ends_with("-raw.json"))
}

/// The user a file belongs to, from its stem, its `context_id` and its bare id `i`.
///
/// - User-extended layout (the old module's own): the stem equals `context_id`, which is
///   `{userId}-{i}`; the user is `context_id` without `-{i}`.
/// - Bare layout: the stem is `{userId}-{context_id}`. When `context_id` is itself
///   user-extended (it ends with `-{i}`), the user it names must be the same.
///
/// Anything else (a renamed file, readings that disagree) is an error that says why and
/// suggests `--user`.
pub(crate) fn owner_of(stem: &str, context_id: &str, bare: Option<&str>) -> std::result::Result<String, String> {
    let from_context = bare
        .filter(|i| *i != context_id)
        .and_then(|i| context_id.strip_suffix(i))
        .and_then(|s| s.strip_suffix('-'))
        .filter(|u| !u.is_empty());
    if stem == context_id {
        return from_context.map(String::from).ok_or_else(|| match bare {
            Some(i) if i != context_id => format!(
                "the file name equals its context_id `{context_id}`, which does not end with `-{i}` \
                 (final_conversation_context.i), so the user is unknown (pass --user)"
            ),
            _ => format!(
                "the file name equals its context_id `{context_id}` and no separate \
                 final_conversation_context.i says where the user id ends (pass --user)"
            ),
        });
    }
    let from_name = stem
        .strip_suffix(context_id)
        .and_then(|s| s.strip_suffix('-'))
        .filter(|u| !u.is_empty());
    match (from_name, from_context) {
        (Some(name), Some(context)) if name != context => Err(format!(
            "the file name says user `{name}` but context_id `{context_id}` says `{context}` (pass --user)"
        )),
        (Some(name), _) => Ok(name.to_string()),
        (None, _) => Err(format!(
            "the file name is neither the context_id (`{context_id}.json`) nor \
             `{{userId}}-{context_id}.json`, so the user is unknown (pass --user)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn a_reference_file_parses_with_times_roles_and_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "user-42-ctx_abc.json",
            r#"{"agent_type":"aws","chat_title":"EC2 costs","context_id":"ctx_abc",
               "final_conversation_context":{"i":"ctx_abc","m":[{"r":0,"c":"why?"},{"r":1,"c":"because"},{"r":0,"c":"ok"}],"t":1700000000,"l":1700000100},
               "processing_results":{"clean_response":"because","clean_response_length":7}}"#,
        );
        let c = parse_file(&p, None).unwrap();
        assert_eq!(c.conversation.user_id, "user-42");
        assert_eq!(c.conversation.context_id, "ctx_abc");
        assert_eq!(c.conversation.title, "EC2 costs");
        assert_eq!(c.conversation.created_at, 1_700_000_000_000);
        assert_eq!(c.conversation.updated_at, 1_700_000_100_000);
        assert_eq!(c.conversation.metadata["agent_type"], "aws");
        assert_eq!(
            c.conversation.metadata["processing_results"]["clean_response_length"],
            7
        );
        let roles: Vec<Role> = c.messages.iter().map(|m| m.0).collect();
        assert_eq!(roles, vec![Role::User, Role::Assistant, Role::User]);
        assert_eq!(c.messages[1].2, 1_700_000_050_000);
        assert_eq!(c.messages[2].2, 1_700_000_100_000);
    }

    #[test]
    fn bad_files_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("u-a.json", "{not json", "not valid JSON"),
            ("u-b.json", "[1]", "not a JSON object"),
            (
                "u-c.json",
                r#"{"context_id":"c"}"#,
                "final_conversation_context` is missing",
            ),
            (
                "u-d.json",
                r#"{"context_id":"d","final_conversation_context":{"m":[{"r":7,"c":"x"}]}}"#,
                "m[0].r",
            ),
            (
                "u-e.json",
                r#"{"context_id":"e","final_conversation_context":{"m":[{"r":0}]}}"#,
                "m[0].c",
            ),
            (
                "nouser.json",
                r#"{"context_id":"f","final_conversation_context":{"m":[]}}"#,
                "--user",
            ),
        ];
        for (name, body, expected) in cases {
            let p = write(dir.path(), name, body);
            let err = parse_file(&p, None).unwrap_err();
            assert!(err.contains(expected), "{name}: {err}");
        }
        let p = dir.path().join("nouser.json");
        assert_eq!(parse_file(&p, Some("bob")).unwrap().conversation.user_id, "bob");
    }

    #[test]
    fn both_layouts_name_the_user_and_disagreements_are_explained() {
        let dashed = "1795532942000-k3f9x2m8q1z7a";
        // The old module's own: stem = context_id = "{user}-{i}".
        let extended = format!("user-42-{dashed}");
        assert_eq!(owner_of(&extended, &extended, Some(dashed)).unwrap(), "user-42");
        // Bare context_id, stem "{user}-{context_id}".
        assert_eq!(owner_of(&extended, dashed, Some(dashed)).unwrap(), "user-42");
        assert_eq!(owner_of(&extended, dashed, None).unwrap(), "user-42");
        // A user-extended context_id under a "{user}-" stem agrees.
        assert_eq!(
            owner_of(&format!("user-42-{extended}"), &extended, Some(dashed)).unwrap(),
            "user-42"
        );

        let cases = [
            // The two readings disagree.
            (
                format!("alice-bob-{dashed}"),
                format!("bob-{dashed}"),
                Some(dashed),
                "says user `alice`",
            ),
            // Stem = context_id, but it does not end with -{i}.
            (
                format!("alice-{dashed}"),
                format!("alice-{dashed}"),
                Some("other"),
                "does not end with `-other`",
            ),
            // Stem = context_id and nothing says where the user ends.
            (dashed.to_string(), dashed.to_string(), Some(dashed), "no separate"),
            // A renamed file.
            (
                "renamed".to_string(),
                format!("alice-{dashed}"),
                Some(dashed),
                "neither the context_id",
            ),
        ];
        for (stem, context_id, bare, expected) in cases {
            let err = owner_of(&stem, &context_id, bare).unwrap_err();
            assert!(err.contains(expected), "{stem}: {err}");
            assert!(err.contains("--user"), "{stem}: {err}");
        }
    }

    #[test]
    fn a_millisecond_timestamp_is_metadata_and_only_a_fallback_for_times() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "u-1795532942000-k3f9x2m8q1z7a.json",
            r#"{"context_id":"u-1795532942000-k3f9x2m8q1z7a","timestamp":1795532999123,
               "final_conversation_context":{"i":"1795532942000-k3f9x2m8q1z7a","m":[{"r":0,"c":"hi"}],"t":1795532942,"l":1795532990}}"#,
        );
        let c = parse_file(&p, None).unwrap();
        assert_eq!(c.conversation.user_id, "u");
        assert_eq!(c.conversation.context_id, "u-1795532942000-k3f9x2m8q1z7a");
        assert_eq!(c.conversation.created_at, 1_795_532_942_000, "t is seconds");
        assert_eq!(c.conversation.updated_at, 1_795_532_990_000, "l is seconds");
        assert_eq!(c.conversation.metadata["timestamp"], 1_795_532_999_123_i64);

        // Without t/l, the millisecond timestamp stands in (as milliseconds).
        let p = write(
            dir.path(),
            "v-ctx.json",
            r#"{"context_id":"ctx","timestamp":1795532999123,"final_conversation_context":{"m":[]}}"#,
        );
        let c = parse_file(&p, None).unwrap();
        assert_eq!(c.conversation.created_at, 1_795_532_999_123);
        assert_eq!(c.conversation.updated_at, 1_795_532_999_123);

        let p = write(
            dir.path(),
            "v-bad.json",
            r#"{"context_id":"bad","timestamp":"yesterday","final_conversation_context":{"m":[]}}"#,
        );
        assert!(parse_file(&p, None).unwrap_err().contains("`timestamp`"));
    }
}
