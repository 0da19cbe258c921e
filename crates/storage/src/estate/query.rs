//! The `estate search` query language: Resource Explorer's filter syntax plus ours.
//!
//! ```text
//! production database region:us-east-1,us-west-2 -state:stopped tag:env=prod* resourcetype:rds:db
//! ```
//!
//! - `region:`, `service:`, `resourcetype:`, `account:`, `state:` filters; `tag:KEY=VALUE`,
//!   `tag:KEY` (key present), `tag:none` (no tags);
//! - `a,b` is OR within one filter, a leading `-` negates it, a trailing `*` matches a prefix;
//! - `"quoted phrases"` and every other word are free text for hybrid search; an ARN is free
//!   text too.
//!
//! Parsing only checks syntax; [`crate::estate`] turns the clauses into store filters.

use serde::Serialize;

/// A filterable field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Field {
    /// `region:`
    Region,
    /// `service:`
    Service,
    /// `resourcetype:`
    ResourceType,
    /// `account:`
    Account,
    /// `state:`
    State,
}

impl Field {
    fn from_prefix(prefix: &str) -> Option<Self> {
        match prefix {
            "region" => Some(Field::Region),
            "service" => Some(Field::Service),
            "resourcetype" => Some(Field::ResourceType),
            "account" => Some(Field::Account),
            "state" => Some(Field::State),
            _ => None,
        }
    }
}

/// One value of a filter: exact, or a prefix (`us-*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Pattern {
    /// Equal to.
    Exact(String),
    /// Starts with.
    Prefix(String),
}

impl Pattern {
    fn parse(text: &str) -> Self {
        match text.strip_suffix('*') {
            Some(prefix) => Pattern::Prefix(prefix.to_string()),
            None => Pattern::Exact(text.to_string()),
        }
    }
}

/// One alternative of a `tag:` filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum TagPattern {
    /// `tag:KEY=VALUE` (VALUE may be a prefix).
    KeyValue(String, Pattern),
    /// `tag:KEY`: the key is present.
    Key(String),
    /// `tag:none`: no tags at all.
    None,
}

/// What a clause tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Test {
    /// A field equals (or starts with) one of the patterns.
    Field(Field, Vec<Pattern>),
    /// One of the tag patterns holds.
    Tag(Vec<TagPattern>),
}

/// One filter of the query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Clause {
    /// Written with a leading `-`.
    pub negated: bool,
    /// The test.
    pub test: Test,
}

/// A parsed query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct EstateQuery {
    /// Filters, all of which must hold.
    pub clauses: Vec<Clause>,
    /// Free text (words and phrases, in order) for hybrid search; empty for filter-only.
    pub text: String,
}

/// A malformed query, pointing at the bad token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad query at character {position} (`{token}`): {reason}")]
pub(crate) struct QueryError {
    /// Character offset of the token in the query.
    pub position: usize,
    /// The token.
    pub token: String,
    /// What is wrong, and the fix.
    pub reason: String,
}

impl EstateQuery {
    /// Parse `query`.
    ///
    /// # Errors
    /// [`QueryError`] for an unknown filter, an empty value, an unclosed quote or a bad tag test.
    pub(crate) fn parse(query: &str) -> Result<Self, QueryError> {
        let mut out = EstateQuery::default();
        let mut words: Vec<String> = Vec::new();
        for (position, token, quoted) in tokens(query)? {
            if quoted {
                words.push(token);
                continue;
            }
            let err = |reason: String| QueryError {
                position,
                token: token.clone(),
                reason,
            };
            let (negated, body) = match token.strip_prefix('-') {
                Some(rest) if rest.contains(':') => (true, rest),
                _ => (false, token.as_str()),
            };
            let Some((prefix, value)) = body.split_once(':') else {
                words.push(token.clone());
                continue;
            };
            if prefix == "arn" {
                words.push(token.clone());
                continue;
            }
            let prefix = prefix.to_ascii_lowercase();
            if value.is_empty() {
                return Err(err(format!(
                    "`{prefix}:` needs a value, e.g. `{prefix}:{}`",
                    example(&prefix)
                )));
            }
            let alternatives: Vec<&str> = value.split(',').collect();
            if alternatives.iter().any(|a| a.is_empty() || *a == "*") {
                return Err(err(
                    "an empty alternative (write `a,b`, no empty or bare `*` values)".into()
                ));
            }
            let test = if prefix == "tag" {
                Test::Tag(
                    alternatives
                        .iter()
                        .map(|a| tag_pattern(a))
                        .collect::<Result<_, _>>()
                        .map_err(err)?,
                )
            } else if let Some(field) = Field::from_prefix(&prefix) {
                Test::Field(field, alternatives.iter().map(|a| Pattern::parse(a)).collect())
            } else {
                return Err(err(format!(
                    "unknown filter `{prefix}:` (filters: region, service, resourcetype, account, state, tag; quote free text that contains `:`)"
                )));
            };
            out.clauses.push(Clause { negated, test });
        }
        out.text = words.join(" ");
        Ok(out)
    }
}

fn example(prefix: &str) -> &'static str {
    match prefix {
        "region" => "us-east-1",
        "service" => "rds",
        "resourcetype" => "rds:db",
        "account" => "123456789012",
        "state" => "running",
        "tag" => "env=prod",
        _ => "value",
    }
}

fn tag_pattern(text: &str) -> Result<TagPattern, String> {
    if text == "none" {
        return Ok(TagPattern::None);
    }
    match text.split_once('=') {
        Some(("", _)) => Err("`tag:=VALUE` has no key (write `tag:KEY=VALUE`)".into()),
        Some((_, "")) => Err("`tag:KEY=` has no value (write `tag:KEY` to test the key alone)".into()),
        Some((key, value)) => Ok(TagPattern::KeyValue(key.to_string(), Pattern::parse(value))),
        None if text.ends_with('*') => {
            Err("a tag key cannot be a prefix (prefixes work on values: `tag:KEY=VAL*`)".into())
        }
        None => Ok(TagPattern::Key(text.to_string())),
    }
}

/// Whitespace-separated tokens with their character offsets; `"…"` is one quoted token
/// (a quote may also start mid-token: `tag:Name="web server"`).
fn tokens(query: &str) -> Result<Vec<(usize, String, bool)>, QueryError> {
    let mut out = Vec::new();
    let chars: Vec<char> = query.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let mut token = String::new();
        // A token that starts with a quote is free text; `key:"a b"` stays a filter.
        let quoted = chars[i] == '"';
        while i < chars.len() && !chars[i].is_whitespace() {
            if chars[i] == '"' {
                let open = i;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    token.push(chars[i]);
                    i += 1;
                }
                if i == chars.len() {
                    return Err(QueryError {
                        position: open,
                        token: chars[open..].iter().collect(),
                        reason: "unclosed quote".into(),
                    });
                }
                i += 1; // closing quote
                continue;
            }
            token.push(chars[i]);
            i += 1;
        }
        if !token.is_empty() {
            out.push((start, token, quoted));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> EstateQuery {
        EstateQuery::parse(q).unwrap_or_else(|e| panic!("{e}"))
    }

    fn field(negated: bool, field: Field, values: &[Pattern]) -> Clause {
        Clause {
            negated,
            test: Test::Field(field, values.to_vec()),
        }
    }

    fn exact(v: &str) -> Pattern {
        Pattern::Exact(v.into())
    }

    #[test]
    fn every_filter_form() {
        let q = parse(
            "production database region:us-west-2 service:rds resourcetype:rds:db account:123456789012 state:running",
        );
        assert_eq!(q.text, "production database");
        assert_eq!(
            q.clauses,
            vec![
                field(false, Field::Region, &[exact("us-west-2")]),
                field(false, Field::Service, &[exact("rds")]),
                field(false, Field::ResourceType, &[exact("rds:db")]),
                field(false, Field::Account, &[exact("123456789012")]),
                field(false, Field::State, &[exact("running")]),
            ]
        );
        let q = parse("-region:us-east-1,eu-west-1 region:us-* tag:env=prod tag:owner tag:none -tag:env=dev*");
        assert_eq!(q.text, "");
        assert_eq!(
            q.clauses[0],
            field(true, Field::Region, &[exact("us-east-1"), exact("eu-west-1")])
        );
        assert_eq!(
            q.clauses[1],
            field(false, Field::Region, &[Pattern::Prefix("us-".into())])
        );
        assert_eq!(
            q.clauses[2].test,
            Test::Tag(vec![TagPattern::KeyValue("env".into(), exact("prod"))])
        );
        assert_eq!(q.clauses[3].test, Test::Tag(vec![TagPattern::Key("owner".into())]));
        assert_eq!(q.clauses[4].test, Test::Tag(vec![TagPattern::None]));
        assert!(q.clauses[5].negated);
        assert_eq!(
            q.clauses[5].test,
            Test::Tag(vec![TagPattern::KeyValue("env".into(), Pattern::Prefix("dev".into()))])
        );
    }

    #[test]
    fn phrases_arns_and_dashes_are_free_text() {
        let q = parse(r#""web server" arn:aws:s3:::logs pg-instance-main1 -old tag:Name="web server""#);
        assert_eq!(q.text, "web server arn:aws:s3:::logs pg-instance-main1 -old");
        assert_eq!(
            q.clauses,
            vec![Clause {
                negated: false,
                test: Test::Tag(vec![TagPattern::KeyValue("Name".into(), exact("web server"))]),
            }]
        );
    }

    #[test]
    fn errors_point_at_the_bad_token() {
        for (query, position, token, why) in [
            ("db region:", 3, "region:", "needs a value"),
            ("colour:red", 0, "colour:red", "unknown filter `colour:`"),
            ("x tag:=prod", 2, "tag:=prod", "no key"),
            ("tag:env=", 0, "tag:env=", "no value"),
            ("region:us-east-1,", 0, "region:us-east-1,", "empty alternative"),
            ("tag:en*", 0, "tag:en*", "cannot be a prefix"),
            ("a \"unclosed", 2, "\"unclosed", "unclosed quote"),
        ] {
            let err = EstateQuery::parse(query).unwrap_err();
            assert_eq!((err.position, err.token.as_str()), (position, token), "{query}: {err}");
            assert!(err.reason.contains(why), "{query}: {err}");
        }
    }
}
