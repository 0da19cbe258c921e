//! Property tests of every parser of outside input: arbitrary input gives a value or an
//! error, never a panic. The estate query language, ARNs, the AWS CLI formats, Node.js chat
//! files, backup manifests, the key envelope and recovery keys (journal records: in
//! `store/embedded/journal.rs`).

use proptest::prelude::*;
use serde_json::Value;

/// Field names the parsers look for, so generated JSON reaches their deeper paths.
const KNOWN_KEYS: &[&str] = &[
    "Reservations",
    "Instances",
    "InstanceId",
    "InstanceType",
    "State",
    "Name",
    "Tags",
    "Key",
    "Value",
    "Placement",
    "AvailabilityZone",
    "ResourceTagMappingList",
    "ResourceARN",
    "DBInstances",
    "DBInstanceIdentifier",
    "DBInstanceArn",
    "DBInstanceStatus",
    "Buckets",
    "CreationDate",
    "Owner",
    "Functions",
    "FunctionName",
    "FunctionArn",
    "Runtime",
    "Resources",
    "Arn",
    "Region",
    "ResourceType",
    "Service",
    "OwningAccountId",
    "Properties",
    "LastReportedAt",
    "NextToken",
    "resource_type",
    "identifier",
    "account_id",
    "region",
    "service",
    "tags",
    "context_id",
    "chat_title",
    "agent_type",
    "final_conversation_context",
    "processing_results",
    "clean_response",
    "m",
    "r",
    "c",
    "t",
    "l",
    "i",
    "messages",
    "role",
    "content",
    "timestamp",
    "title",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(KNOWN_KEYS).prop_map(str::to_string),
        1 => "[a-zA-Z_]{1,10}",
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,24}",
        "arn:aws:[a-z0-9:/*-]{0,40}",
        "[a-z0-9-]{1,16}",
        Just("i-0123456789abcdef0".to_string()),
        Just("2024-01-02T03:04:05.000Z".to_string()),
        Just("running".to_string()),
    ]
}

/// Arbitrary JSON, biased towards the shapes the parsers read.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 96, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((key(), inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// Arbitrary JSON text, or arbitrary text.
fn document() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => json().prop_map(|v| v.to_string()),
        1 => ".{0,200}",
        1 => json().prop_map(|v| {
            // Truncated JSON: a torn file.
            let s = v.to_string();
            let cut = s.len() / 2;
            s.char_indices().map(|(i, _)| i).find(|i| *i >= cut).map_or(s.clone(), |i| s[..i].to_string())
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn estate_queries_parse_or_fail_cleanly(query in prop_oneof![
        ".{0,80}",
        "(region|service|resourcetype|account|state|tag|-tag|-region):[a-zA-Z0-9=,*\"-]{0,12}( [a-z\"]{0,8}){0,4}",
    ]) {
        let _ = crate::estate::query::EstateQuery::parse(&query);
    }

    #[test]
    fn arns_parse_or_fail_cleanly(arn in prop_oneof![
        ".{0,80}",
        "arn:[a-z-]{0,10}:[a-z0-9-]{0,12}:[a-z0-9-]{0,14}:[0-9]{0,12}:[a-zA-Z0-9:/._*-]{0,40}",
    ]) {
        let _ = crate::estate::arn::Arn::parse(&arn);
    }

    #[test]
    fn aws_cli_files_parse_or_fail_cleanly(doc in document()) {
        let _ = crate::estate::import::parse(&doc, &crate::estate::import::ImportOptions::default());
        // And as JSON Lines: one value a line.
        let lines = format!("{doc}\n{doc}\n");
        let _ = crate::estate::import::parse(&lines, &crate::estate::import::ImportOptions::default());
    }

    #[test]
    fn node_chat_files_parse_or_fail_cleanly(doc in document(), user in proptest::option::of("[a-z]{0,6}")) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let path = dir.path().join("ctx_1.json");
        std::fs::write(&path, doc).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let _ = crate::migrate::node::parse_file(&path, user.as_deref());
    }

    #[test]
    fn manifests_parse_check_and_authenticate_or_fail_cleanly(doc in document(), stem in ".{0,30}") {
        if let Ok(m) = serde_json::from_str::<crate::backup::Manifest>(&doc) {
            let _ = m.check(&stem, &uuid::Uuid::nil());
            let key = crate::crypto::test_backup_keys();
            let _ = m.authenticate(&key);
        }
    }

    #[test]
    fn key_envelopes_open_or_fail_cleanly(doc in document()) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        std::fs::write(dir.path().join("keys.json"), doc).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let config = crate::crypto::KeyConfig {
            source: crate::crypto::KeySourceKind::Env,
            env_var: "CLOUDOPS_TEST_PROPS_UNSET_KEY".into(),
            ..Default::default()
        };
        let _ = crate::crypto::open_keys(dir.path(), &config);
        let _ = crate::crypto::wrapped_keys(dir.path());
    }

    #[test]
    fn recovery_keys_parse_or_fail_cleanly(text in prop_oneof![".{0,80}", "[0-9A-Za-z -]{50,80}"]) {
        let _ = crate::crypto::RecoveryKey::parse(&text);
    }
}

/// Well-formed envelopes with arbitrary wrapped keys and KDF parameters: the unwrap fails
/// cleanly (and a KDF asking for absurd work is refused before doing it).
#[test]
fn envelopes_with_forged_wraps_fail_cleanly() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    });
    let wraps = (
        ".{0,70}",
        "[0-9a-f]{0,16}",
        // Below, at and above the accepted memory costs (never a huge accepted one: that
        // would really allocate it).
        prop_oneof![0u32..8192, Just(8192u32), 4_194_305u32..=u32::MAX],
        0u32..8,
        0u32..4,
        proptest::bool::ANY,
    );
    runner
        .run(&wraps, |(wrapped, kek_id, m_cost, t_cost, p_cost, passphrase)| {
            let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let source = if passphrase { "passphrase" } else { "env" };
            let envelope = serde_json::json!({
                "format": 1,
                "store_id": uuid::Uuid::nil(),
                "created_at_ms": 0,
                "active_key_id": 1,
                "kek_rotated_at_ms": null,
                "wraps": [{
                    "key_source": source,
                    "kek_id": kek_id,
                    "kdf": {"algorithm": "argon2id", "salt": "AAAAAAAAAAAAAAAAAAAAAA==", "m_cost_kib": m_cost, "t_cost": t_cost, "p_cost": p_cost},
                    "deks": [{"key_id": 1, "wrapped": wrapped}],
                }],
            });
            std::fs::write(dir.path().join("keys.json"), envelope.to_string())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut config = crate::crypto::KeyConfig {
                source: if passphrase {
                    crate::crypto::KeySourceKind::Passphrase
                } else {
                    crate::crypto::KeySourceKind::Env
                },
                env_var: "CLOUDOPS_TEST_PROPS_UNSET_KEY".into(),
                ..Default::default()
            };
            config.passphrase = Some(crate::crypto::Passphrase::new("a long enough passphrase"));
            prop_assert!(crate::crypto::open_keys(dir.path(), &config).is_err());
            Ok(())
        })
        .map_err(|e| e.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
}
