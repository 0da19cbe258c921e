//! What a resource says in words: the text embedded for semantic search and the text indexed
//! for keyword search. Neither is stored (both are built from the sealed fields when a
//! resource is written).
//!
//! The embedded text reads like a sentence, most telling words first: the environment in
//! plain words ("production", also for `env=prd`), what the resource is ("PostgreSQL
//! relational database", "NoSQL key-value database table"), its name, state and region
//! ("Oregon"), its tags and the metadata a person would search by (a description, an engine, a
//! runtime). Timestamps, endpoints, ids and addresses are left out: they only blur the vector.

use serde_json::Value;

use super::intent::environment_of_value;
use super::model::AWSResource;
use super::regions;

/// Longest metadata string used.
const MAX_VALUE_CHARS: usize = 200;

/// Text embedded for semantic search.
pub(crate) fn dense_text(r: &AWSResource) -> String {
    let mut head: Vec<String> = Vec::new();
    head.extend(environment(r).map(String::from));
    head.push(family(r));
    head.extend(r.name.clone().or_else(|| Some(r.identifier.clone())));
    let mut text = head.join(" ");
    if let Some(state) = &r.state {
        text.push_str(&format!(", {state}"));
    }
    if let Some(name) = regions::display_name(&r.region) {
        text.push_str(&format!(", in {name} ({})", r.region));
    }
    text.push('.');
    if let Some(tags) = r.tags.as_ref().filter(|t| !t.is_empty()) {
        let tags: Vec<String> = tags.iter().map(|(k, v)| format!("{k} {v}")).collect();
        text.push_str(&format!(" Tags: {}.", tags.join(", ")));
    } else if r.tags.is_some() {
        text.push_str(" Untagged.");
    }
    let details = metadata_words(r.metadata.as_ref());
    if !details.is_empty() {
        text.push_str(&format!(" {}.", details.join(", ")));
    }
    text
}

/// Text indexed for keyword search: the type, family, identifier, name, state, region name,
/// tag values (not keys: a key such as `env` sits on most resources, so its IDF is near zero
/// while every insert walks its long posting list; `tag:env` filters keys exactly) and the
/// same metadata words.
pub(crate) fn keyword_text(r: &AWSResource) -> String {
    let mut parts = vec![
        r.resource_type.replace(':', " "),
        r.service.clone(),
        r.identifier.clone(),
        family(r),
    ];
    parts.extend(environment(r).map(String::from));
    parts.extend(r.name.clone());
    parts.extend(r.state.clone());
    parts.extend(regions::display_name(&r.region).map(String::from));
    if let Some(tags) = &r.tags {
        parts.extend(tags.values().cloned());
    }
    parts.extend(metadata_words(r.metadata.as_ref()));
    parts.join(" ")
}

/// The environment a resource's tags name, in plain words.
fn environment(r: &AWSResource) -> Option<&'static str> {
    r.tags.as_ref()?.values().find_map(|v| environment_of_value(v))
}

/// What the resource is, in the words people search with.
fn family(r: &AWSResource) -> String {
    let meta = |key: &str| {
        r.metadata
            .as_ref()
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
    };
    let engine = meta("engine").map(|e| engine_name(&e));
    match r.resource_type.as_str() {
        "rds:db" => format!(
            "{} relational database (RDS DB instance)",
            engine.unwrap_or_else(|| "SQL".into())
        ),
        "rds:cluster" => format!(
            "{} relational database cluster",
            engine.unwrap_or_else(|| "Aurora".into())
        ),
        "dynamodb:table" => "DynamoDB NoSQL key-value database table".into(),
        "redshift:cluster" => "Redshift data warehouse cluster for analytics".into(),
        "docdb:cluster" => "DocumentDB document database cluster".into(),
        "neptune:cluster" => "Neptune graph database cluster".into(),
        "elasticache:cluster" => format!(
            "ElastiCache {} in-memory cache cluster",
            engine.unwrap_or_else(|| "Redis".into())
        ),
        "ec2:instance" => "EC2 virtual machine server instance".into(),
        "ec2:volume" => "EBS disk volume".into(),
        "ec2:vpc" => "VPC virtual private network".into(),
        "ec2:security-group" => "security group firewall rules".into(),
        "s3:bucket" => "S3 object storage bucket".into(),
        "lambda:function" => match meta("runtime") {
            Some(runtime) => format!("Lambda serverless function ({runtime})"),
            None => "Lambda serverless function".into(),
        },
        "sqs:queue" if r.identifier.ends_with("dlq") || r.identifier.contains("dead-letter") => {
            "SQS dead-letter message queue".into()
        }
        "sqs:queue" => "SQS message queue".into(),
        "sns:topic" => "SNS notification topic".into(),
        "ecs:cluster" => "ECS container cluster".into(),
        "eks:cluster" => "EKS Kubernetes container cluster".into(),
        "elasticloadbalancing:loadbalancer" => "Elastic load balancer".into(),
        "iam:role" => "IAM role, a permissions identity".into(),
        "iam:user" => "IAM user identity".into(),
        "es:domain" => "OpenSearch search engine domain".into(),
        other => other.replace([':', '-'], " "),
    }
}

/// `aurora-postgresql` → `Aurora PostgreSQL`, `sqlserver-se` → `SQL Server`.
fn engine_name(engine: &str) -> String {
    let base = [
        ("aurora-postgresql", "Aurora PostgreSQL"),
        ("aurora-mysql", "Aurora MySQL"),
        ("aurora", "Aurora MySQL"),
        ("postgres", "PostgreSQL"),
        ("mysql", "MySQL"),
        ("mariadb", "MariaDB"),
        ("oracle", "Oracle"),
        ("sqlserver", "SQL Server"),
        ("redis", "Redis"),
        ("valkey", "Valkey"),
        ("memcached", "Memcached"),
    ];
    base.iter()
        .find(|(prefix, _)| engine.starts_with(prefix))
        .map_or_else(|| engine.to_string(), |(_, name)| (*name).to_string())
}

/// Metadata a person would search by: short strings that are not times, endpoints, ids or
/// addresses, and true flags in words (`publicly_accessible` → "publicly accessible").
fn metadata_words(metadata: Option<&Value>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(Value::Object(m)) = metadata {
        for (key, value) in m {
            match value {
                Value::String(s) if is_telling(key, s) => out.push(s.clone()),
                Value::Bool(true) => out.push(key.replace('_', " ")),
                Value::Array(items) => out.extend(
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .filter(|s| is_telling(key, s))
                        .map(String::from),
                ),
                _ => {}
            }
        }
    }
    out
}

fn is_telling(key: &str, value: &str) -> bool {
    let looks_like_time =
        value.len() >= 10 && value.as_bytes()[..4].iter().all(u8::is_ascii_digit) && value.as_bytes()[4] == b'-';
    let looks_like_id = value.split_once('-').is_some_and(|(prefix, rest)| {
        prefix.len() <= 4 && rest.len() >= 8 && rest.chars().all(|c| c.is_ascii_hexdigit())
    });
    let looks_like_address = (value.split('.').count() == 4 && value.split('.').all(|p| p.parse::<u8>().is_ok()))
        || (value.contains("::") && value.chars().all(|c| c.is_ascii_hexdigit() || c == ':'));
    !value.is_empty()
        && value.chars().count() <= MAX_VALUE_CHARS
        && !key.ends_with("_ms")
        && !looks_like_time
        && !looks_like_id
        && !looks_like_address
        && !value.contains("amazonaws.com")
        && !value.starts_with("arn:")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn db() -> AWSResource {
        AWSResource {
            resource_type: "rds:db".into(),
            identifier: "orders-main".into(),
            account_id: "111111111111".into(),
            region: "us-west-2".into(),
            service: "rds".into(),
            name: Some("orders-main".into()),
            state: Some("available".into()),
            tags: Some([("env".to_string(), "prd".to_string())].into_iter().collect()),
            metadata: Some(json!({
                "engine": "postgres",
                "engine_version": "15.4",
                "publicly_accessible": true,
                "multi_az": false,
                "endpoint": "orders-main.abc.us-west-2.rds.amazonaws.com",
                "created": "2024-03-01T10:00:00Z",
                "created_ms": 1709287200000_i64,
                "vpc_id": "vpc-0a1b2c3d4e",
                "private_ip_address": "10.0.1.5"
            })),
            ..AWSResource::default()
        }
    }

    #[test]
    fn the_dense_text_reads_like_a_description() {
        let text = dense_text(&db());
        assert!(
            text.starts_with(
                "production PostgreSQL relational database (RDS DB instance) orders-main, available, in Oregon (us-west-2)."
            ),
            "{text}"
        );
        assert!(text.contains("Tags: env prd."), "{text}");
        assert!(text.contains("publicly accessible"), "{text}");
        assert!(!text.contains("multi az"), "false flags say nothing: {text}");
        for noise in ["amazonaws", "2024-03-01", "vpc-0a1b2c3d4e", "10.0.1.5", "1709287200000"] {
            assert!(!text.contains(noise), "{noise} in {text}");
        }
    }

    #[test]
    fn the_keyword_text_has_words_of_every_kind_but_tag_keys() {
        let text = keyword_text(&db());
        for word in [
            "orders-main",
            "PostgreSQL",
            "production",
            "prd",
            "Oregon",
            "available",
            "15.4",
        ] {
            assert!(text.contains(word), "{word} missing from {text}");
        }
        assert!(!text.split_whitespace().any(|w| w == "env"), "{text}");
        let untagged = AWSResource {
            tags: Some(Default::default()),
            ..db()
        };
        assert!(dense_text(&untagged).contains("Untagged."));
    }
}
