//! The attribute and class words of a free-text estate query ("production database", "public
//! buckets", "queues in Oregon", "untagged resources"), read with a small vocabulary.
//!
//! Neither ranker reads them well on its own: BM25 gives "production" almost no weight (most
//! resources carry it), and a sentence embedding of "production database" lands as close to a
//! staging database as to a production one. So the hybrid search turns each word it knows into
//! a [`Constraint`], ranks resources that satisfy more constraints first, and puts a resource
//! that contradicts one (a staging twin for "production", another region for "in Oregon")
//! below every resource that does not. Words the vocabulary does not know stay free text only.

use serde_json::Value;

use super::regions;
use super::schema::field;
use crate::store::{Condition, FieldValue, Payload};

/// Environments and the tag values that name them (compared lowercase).
const ENVIRONMENTS: &[(&str, &[&str])] = &[
    ("production", &["production", "prod", "prd"]),
    ("staging", &["staging", "stage", "stg"]),
    ("development", &["development", "dev"]),
    ("test", &["test", "testing", "qa"]),
    ("sandbox", &["sandbox", "sbx"]),
];

/// Database resource types (engines people call "a database").
const DATABASES: &[&str] = &[
    "rds:db",
    "rds:cluster",
    "dynamodb:table",
    "redshift:cluster",
    "docdb:cluster",
    "neptune:cluster",
];
const RELATIONAL: &[&str] = &["rds:db", "rds:cluster"];
const INSTANCES: &[&str] = &["ec2:instance"];

/// Class words (singular; a plural `s` is dropped before lookup) and phrases → resource types.
const CLASSES: &[(&str, &[&str])] = &[
    ("relational database", RELATIONAL),
    ("sql server", RELATIONAL),
    ("database", DATABASES),
    ("db", DATABASES),
    ("datastore", DATABASES),
    ("sql", RELATIONAL),
    ("rds", RELATIONAL),
    ("postgres", RELATIONAL),
    ("postgresql", RELATIONAL),
    ("mysql", RELATIONAL),
    ("mariadb", RELATIONAL),
    ("aurora", &["rds:cluster"]),
    ("oracle", RELATIONAL),
    ("nosql", &["dynamodb:table"]),
    ("dynamodb", &["dynamodb:table"]),
    ("route table", &["ec2:route-table"]),
    ("table", &["dynamodb:table"]),
    ("data warehouse", &["redshift:cluster"]),
    ("warehouse", &["redshift:cluster"]),
    ("redshift", &["redshift:cluster"]),
    ("queue", &["sqs:queue"]),
    ("sqs", &["sqs:queue"]),
    ("topic", &["sns:topic"]),
    ("sns", &["sns:topic"]),
    ("bucket", &["s3:bucket"]),
    ("s3", &["s3:bucket"]),
    ("function", &["lambda:function"]),
    ("lambda", &["lambda:function"]),
    ("serverless", &["lambda:function"]),
    ("virtual machine", INSTANCES),
    ("instance", INSTANCES),
    ("server", INSTANCES),
    ("vm", INSTANCES),
    ("ec2", INSTANCES),
    ("host", INSTANCES),
    ("cache", &["elasticache:cluster"]),
    ("redis", &["elasticache:cluster"]),
    ("memcached", &["elasticache:cluster"]),
    ("elasticache", &["elasticache:cluster"]),
    ("kubernetes", &["eks:cluster"]),
    ("k8s", &["eks:cluster"]),
    ("eks", &["eks:cluster"]),
    ("container", &["ecs:cluster", "eks:cluster"]),
    ("ecs", &["ecs:cluster"]),
    ("load balancer", &["elasticloadbalancing:loadbalancer"]),
    ("alb", &["elasticloadbalancing:loadbalancer"]),
    ("elb", &["elasticloadbalancing:loadbalancer"]),
    ("nlb", &["elasticloadbalancing:loadbalancer"]),
    ("role", &["iam:role"]),
    ("security group", &["ec2:security-group"]),
    ("firewall", &["ec2:security-group"]),
    ("volume", &["ec2:volume"]),
    ("disk", &["ec2:volume"]),
    ("ebs", &["ec2:volume"]),
    ("vpc", &["ec2:vpc"]),
    ("opensearch", &["es:domain"]),
    ("elasticsearch", &["es:domain"]),
];

/// Lifecycle states (as the importers store them, lowercase).
const STATES: &[(&str, &[&str])] = &[
    ("running", &["running"]),
    ("stopped", &["stopped"]),
    ("stopping", &["stopping"]),
    ("terminated", &["terminated"]),
    ("pending", &["pending"]),
    ("available", &["available"]),
    ("active", &["active"]),
];

/// Nouns after a class word that keep it the head of the phrase ("kubernetes cluster").
const GENERIC_HEADS: &[&str] = &["cluster", "resource", "service", "thing", "stuff", "one", "domain"];

/// Words that end a noun phrase ("queue for orders", "databases in Virginia").
const STOP_WORDS: &[&str] = &[
    "in", "for", "of", "with", "on", "at", "that", "which", "from", "to", "by", "and", "or", "the", "a", "an", "we",
    "do", "does", "is", "are", "have", "has", "where", "without", "named", "called",
];

/// One attribute or class the query names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Constraint {
    /// The resource type is one of these ("database", "queue"); a resource of another type
    /// does not satisfy it but does not contradict it either.
    Class(Vec<&'static str>),
    /// Tagged with a value of this environment ("production" matches `env=prod`); a
    /// resource whose same tag key holds another value contradicts it.
    Environment(&'static str),
    /// In this region ("in Oregon", "us-west-2"); another region contradicts it, `global`
    /// does not.
    Region(String),
    /// In one of these lifecycle states; another state contradicts it.
    State(Vec<&'static str>),
    /// No tags at all; a tagged resource contradicts it.
    Untagged,
    /// Reachable from the internet, by what the importers recorded (`publicly_accessible`,
    /// a public IP, an internet-facing scheme, public bucket access); a recorded private
    /// setting contradicts it.
    Public,
}

/// How a resource stands towards a constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Satisfies,
    Neutral,
    Contradicts,
}

/// A constraint resolved against the store: what a stored point must hold to satisfy it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Check {
    /// A clear field holds one of `values`; with `exclusive`, another value (other than
    /// `global`) contradicts.
    Field {
        field: &'static str,
        values: Vec<String>,
        exclusive: bool,
    },
    /// Keyed tag tokens: any of `satisfy` satisfies, any of `contradict` contradicts.
    Tags {
        satisfy: Vec<String>,
        contradict: Vec<String>,
    },
    /// No tag keys.
    Untagged,
    /// Public by the sealed metadata ([`public_verdict`]); no store condition.
    Public,
}

impl Check {
    /// The store condition of points that satisfy it (`None`: only checkable unsealed).
    pub(crate) fn condition(&self) -> Option<Condition> {
        match self {
            Check::Field { field, values, .. } => Some(Condition::Any(
                (*field).to_string(),
                values.iter().cloned().map(FieldValue::from).collect(),
            )),
            Check::Tags { satisfy, .. } => Some(Condition::Any(
                field::TAG_TOKENS.to_string(),
                satisfy.iter().cloned().map(FieldValue::from).collect(),
            )),
            Check::Untagged => Some(Condition::IsEmpty(field::TAG_KEYS.to_string())),
            Check::Public => None,
        }
    }

    /// How a stored point's clear payload stands towards it ([`Check::Public`] is decided
    /// by the caller from the unsealed metadata; here it is neutral).
    pub(crate) fn verdict(&self, payload: &Payload) -> Verdict {
        let strings = |key: &str| -> Vec<&str> {
            match payload.get(key) {
                Some(Value::String(s)) => vec![s.as_str()],
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            }
        };
        match self {
            Check::Field {
                field,
                values,
                exclusive,
            } => {
                let held = strings(field);
                if held.iter().any(|h| values.iter().any(|v| v == h)) {
                    Verdict::Satisfies
                } else if *exclusive && held.iter().any(|h| *h != super::model::GLOBAL_REGION) {
                    Verdict::Contradicts
                } else {
                    Verdict::Neutral
                }
            }
            Check::Tags { satisfy, contradict } => {
                let held = strings(field::TAG_TOKENS);
                if held.iter().any(|h| satisfy.iter().any(|s| s == h)) {
                    Verdict::Satisfies
                } else if held.iter().any(|h| contradict.iter().any(|c| c == h)) {
                    Verdict::Contradicts
                } else {
                    Verdict::Neutral
                }
            }
            Check::Untagged => {
                if strings(field::TAG_KEYS).is_empty() {
                    Verdict::Satisfies
                } else {
                    Verdict::Contradicts
                }
            }
            Check::Public => Verdict::Neutral,
        }
    }
}

/// The environment group a tag value belongs to, if any.
pub(crate) fn environment_of_value(value: &str) -> Option<&'static str> {
    let v = value.to_ascii_lowercase();
    ENVIRONMENTS
        .iter()
        .find(|(_, names)| names.contains(&v.as_str()))
        .map(|(env, _)| *env)
}

/// The constraints `text` names, each once, in the order found.
pub(crate) fn interpret(text: &str) -> Vec<Constraint> {
    let words: Vec<String> = text
        .to_lowercase()
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '?' | '!' | '(' | ')' | '"' | '\'' | ';' | ':'))
        .map(|w| w.trim_matches('.').to_string())
        .filter(|w| !w.is_empty())
        .collect();
    let mut out: Vec<Constraint> = Vec::new();
    let mut push = |c: Constraint| {
        if !out.contains(&c) {
            out.push(c);
        }
    };
    let mut i = 0;
    while i < words.len() {
        let one = singular(&words[i]);
        let two = words.get(i + 1).map(|next| format!("{} {}", words[i], singular(next)));
        if let Some(types) = two.as_deref().and_then(|p| lookup(CLASSES, p)) {
            push(Constraint::Class(types.to_vec()));
            i += 2;
            continue;
        }
        if let Some(code) = two.as_deref().and_then(regions::code_of) {
            push(Constraint::Region(code.to_string()));
            i += 2;
            continue;
        }
        if matches!(two.as_deref(), Some("without tag" | "no tag")) {
            push(Constraint::Untagged);
            i += 2;
            continue;
        }
        let word = words[i].as_str();
        if let Some(env) = environment_of_value(word) {
            push(Constraint::Environment(env));
        } else if let Some(types) = lookup(CLASSES, word).or_else(|| lookup(CLASSES, &one)) {
            // "database backups": the class word only modifies the noun after it.
            if !modifies_next(&words, i) {
                push(Constraint::Class(types.to_vec()));
            }
        } else if let Some(code) = regions::code_of(word) {
            push(Constraint::Region(code.to_string()));
        } else if is_region_code(word) {
            push(Constraint::Region(word.to_string()));
        } else if let Some(states) = lookup(STATES, word) {
            push(Constraint::State(states.to_vec()));
        } else if word == "untagged" {
            push(Constraint::Untagged);
        } else if matches!(word, "public" | "publicly" | "internet-facing" | "exposed") {
            push(Constraint::Public);
        }
        i += 1;
    }
    out
}

/// Whether the word at `i` is followed by a noun it describes: a word outside the
/// vocabulary that is neither a stop word nor a generic head ("backups" in "database
/// backups", but not "cluster" in "kubernetes cluster" or "in" in "queues in Oregon").
fn modifies_next(words: &[String], i: usize) -> bool {
    let Some(next) = words.get(i + 1) else {
        return false;
    };
    let next_one = singular(next);
    let known = |w: &str| {
        environment_of_value(w).is_some()
            || lookup(CLASSES, w).is_some()
            || regions::code_of(w).is_some()
            || lookup(STATES, w).is_some()
            || is_region_code(w)
            || matches!(w, "untagged" | "public" | "publicly")
    };
    !(STOP_WORDS.contains(&next.as_str())
        || GENERIC_HEADS.contains(&next_one.as_str())
        || known(next)
        || known(&next_one))
}

fn lookup<T: Copy>(table: &[(&str, T)], key: &str) -> Option<T> {
    table.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// `queues` → `queue`, `databases` → `database`, `boxes` stays (not in the vocabulary).
fn singular(word: &str) -> String {
    match word.strip_suffix('s') {
        Some(stem) if stem.len() >= 2 && !word.ends_with("ss") => stem.to_string(),
        _ => word.to_string(),
    }
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`.
fn is_region_code(word: &str) -> bool {
    let parts: Vec<&str> = word.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].chars().all(|c| c.is_ascii_lowercase())
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
}

/// Whether recorded metadata says a resource is public (`Satisfies`) or private
/// (`Contradicts`), or says nothing (`Neutral`).
pub(crate) fn public_verdict(metadata: Option<&Value>) -> Verdict {
    let Some(Value::Object(m)) = metadata else {
        return Verdict::Neutral;
    };
    let flag = |k: &str| m.get(k).and_then(Value::as_bool);
    let public = flag("publicly_accessible") == Some(true)
        || flag("policy_public") == Some(true)
        || flag("block_public_access") == Some(false)
        || m.get("public_ip_address")
            .and_then(Value::as_str)
            .is_some_and(|ip| !ip.is_empty())
        || m.get("scheme").and_then(Value::as_str) == Some("internet-facing");
    let private = flag("publicly_accessible") == Some(false)
        || flag("block_public_access") == Some(true)
        || m.get("scheme").and_then(Value::as_str) == Some("internal");
    if public {
        Verdict::Satisfies
    } else if private {
        Verdict::Contradicts
    } else {
        Verdict::Neutral
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_and_class_words_become_constraints() {
        assert_eq!(
            interpret("production database"),
            vec![
                Constraint::Environment("production"),
                Constraint::Class(DATABASES.to_vec())
            ]
        );
        assert_eq!(
            interpret("Staging relational databases"),
            vec![
                Constraint::Environment("staging"),
                Constraint::Class(RELATIONAL.to_vec())
            ]
        );
        assert_eq!(
            interpret("queues in Oregon"),
            vec![
                Constraint::Class(vec!["sqs:queue"]),
                Constraint::Region("us-west-2".into())
            ]
        );
        assert_eq!(
            interpret("stopped instances in us-east-1"),
            vec![
                Constraint::State(vec!["stopped"]),
                Constraint::Class(INSTANCES.to_vec()),
                Constraint::Region("us-east-1".into())
            ]
        );
        assert_eq!(
            interpret("untagged buckets"),
            vec![Constraint::Untagged, Constraint::Class(vec!["s3:bucket"])]
        );
        assert_eq!(
            interpret("public load balancers"),
            vec![
                Constraint::Public,
                Constraint::Class(vec!["elasticloadbalancing:loadbalancer"])
            ]
        );
        assert_eq!(interpret("resources without tags"), vec![Constraint::Untagged]);
        // Repeats count once; unknown words are free text only.
        assert_eq!(
            interpret("prod production thumbnails"),
            vec![Constraint::Environment("production")]
        );
        assert!(interpret("image resizing").is_empty());
        // A class word that describes the noun after it is not the class asked for.
        assert!(interpret("database backups archive").is_empty());
        assert_eq!(
            interpret("kubernetes cluster"),
            vec![Constraint::Class(vec!["eks:cluster"])]
        );
        assert_eq!(
            interpret("dead letter queue for orders"),
            vec![Constraint::Class(vec!["sqs:queue"])]
        );
        assert!(interpret("access logs").is_empty(), "`access` is not a plural");
    }

    #[test]
    fn region_codes_are_recognised_and_other_dashed_words_are_not() {
        assert!(is_region_code("us-gov-west-1"));
        assert!(is_region_code("eu-central-2"));
        assert!(!is_region_code("i-0abc123"));
        assert!(!is_region_code("pg-instance-main1"));
    }

    #[test]
    fn checks_read_clear_fields_and_keyed_tag_tokens() {
        use serde_json::json;
        let payload = |v: Value| -> Payload { v.as_object().unwrap().clone() };
        let region = Check::Field {
            field: field::REGION,
            values: vec!["us-west-2".into()],
            exclusive: true,
        };
        assert_eq!(
            region.verdict(&payload(json!({"region": "us-west-2"}))),
            Verdict::Satisfies
        );
        assert_eq!(
            region.verdict(&payload(json!({"region": "us-east-1"}))),
            Verdict::Contradicts
        );
        assert_eq!(region.verdict(&payload(json!({"region": "global"}))), Verdict::Neutral);
        let class = Check::Field {
            field: field::RESOURCE_TYPE,
            values: vec!["rds:db".into()],
            exclusive: false,
        };
        assert_eq!(
            class.verdict(&payload(json!({"resource_type": "sqs:queue"}))),
            Verdict::Neutral
        );
        let env = Check::Tags {
            satisfy: vec!["p".into()],
            contradict: vec!["s".into()],
        };
        assert_eq!(
            env.verdict(&payload(json!({"tag_tokens": ["x", "p"]}))),
            Verdict::Satisfies
        );
        assert_eq!(
            env.verdict(&payload(json!({"tag_tokens": ["s"]}))),
            Verdict::Contradicts
        );
        assert_eq!(env.verdict(&payload(json!({"tag_tokens": []}))), Verdict::Neutral);
        assert_eq!(
            Check::Untagged.verdict(&payload(json!({"tag_keys": []}))),
            Verdict::Satisfies
        );
        assert_eq!(
            Check::Untagged.verdict(&payload(json!({"tag_keys": ["env"]}))),
            Verdict::Contradicts
        );
        assert!(Check::Public.condition().is_none());
        assert!(env.condition().is_some());
    }

    #[test]
    fn recorded_metadata_says_public_or_private() {
        use serde_json::json;
        let v = |m: Value| public_verdict(Some(&m));
        assert_eq!(v(json!({"publicly_accessible": true})), Verdict::Satisfies);
        assert_eq!(v(json!({"public_ip_address": "54.1.2.3"})), Verdict::Satisfies);
        assert_eq!(v(json!({"scheme": "internet-facing"})), Verdict::Satisfies);
        assert_eq!(v(json!({"block_public_access": false})), Verdict::Satisfies);
        assert_eq!(v(json!({"publicly_accessible": false})), Verdict::Contradicts);
        assert_eq!(v(json!({"scheme": "internal"})), Verdict::Contradicts);
        assert_eq!(v(json!({"engine": "postgres"})), Verdict::Neutral);
        assert_eq!(public_verdict(None), Verdict::Neutral);
    }
}
