//! The `--config` file: envoyproxy/ratelimit's YAML format, so a config written
//! for that service (and Envoy's native `envoy.filters.http.ratelimit` filter
//! pointed at it) works here unchanged.
//!
//! ```yaml
//! domain: edge
//! descriptors:
//!   - key: user                 # any value of `user` ...
//!     rate_limit: {unit: hour, requests_per_unit: 3}
//!   - key: user
//!     value: admin              # ... except `admin` (value-specific entries win)
//!     rate_limit: {unlimited: true}
//!   - key: remote_address
//!     descriptors:              # nested: descriptor (remote_address, path)
//!       - key: path
//!         rate_limit: {unit: second, requests_per_unit: 10}
//!         shadow_mode: true     # counted, reported, never refused
//! ```
//!
//! Matching is envoyproxy/ratelimit's: a request descriptor's entries walk the
//! tree one level each, `key`+`value` first, then the key-only entry; the limit
//! is the one on the node the *last* entry lands on. A value with `*` is a
//! pattern ([`super::wildcard`]), tried after the exact values and before the
//! key-only entry; each value it matches counts apart. Anything else (an entry
//! that matches nothing, a node without `rate_limit`) means "not limited".
//! Unknown fields are errors, as everywhere in Tollgate, so a typo never turns a
//! limit off silently. `detailed_metric` and `value_to_metric` only shape that
//! service's own stats and are accepted with a log line; `replaces` names the
//! limits a limit drops when both apply to one call (applied in `service`).

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use tollgate_core::ratelimit::config::Unit;

use super::wildcard::Wildcard;
use super::yaml_lines::Lines;

/// A limit as the API reports it back (`current_limit`): from a descriptor's
/// override or from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub requests_per_unit: u32,
    pub unit: Unit,
    /// `rate_limit.name` from the file; empty for overrides.
    pub name: String,
    /// `rate_limit.replaces`: the names of the limits this one drops when
    /// both apply to one call (envoyproxy/ratelimit README, example 7).
    pub replaces: Vec<String>,
}

/// What the file says about one request descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule<'a> {
    Limited {
        limit: &'a Limit,
        shadow_mode: bool,
    },
    /// `rate_limit: {unlimited: true}`: matched, never counted.
    Unlimited,
}

/// A loaded, validated config file.
#[derive(Debug, Default)]
pub struct ConfigFile {
    domain: String,
    root: Level,
}

#[derive(Debug, Default)]
struct Level {
    /// By key: the value-specific nodes and the key-only node.
    keys: HashMap<String, KeyNodes>,
}

#[derive(Debug, Default)]
struct KeyNodes {
    by_value: HashMap<String, Node>,
    /// Values with `*`, in file order; tried after the exact values and
    /// before the key-only node.
    wildcards: Vec<(String, Wildcard, Node)>,
    any_value: Option<Node>,
}

#[derive(Debug, Default)]
struct Node {
    rule: Option<NodeRule>,
    children: Level,
}

#[derive(Debug)]
enum NodeRule {
    Limited { limit: Limit, shadow_mode: bool },
    Unlimited,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("reading {path}: {error}")]
    Read { path: String, error: std::io::Error },
    /// Syntax or shape; the YAML parser's message names the field path, line and column.
    #[error("{path}: invalid rate limit config: {message}")]
    Parse { path: String, message: String },
    /// Found after parsing; `line` is where the node `at` (or its nearest
    /// existing parent) is.
    #[error("{path}:{line}: invalid rate limit config at `{at}`: {message}")]
    Invalid {
        path: String,
        line: usize,
        at: String,
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileYaml {
    domain: String,
    #[serde(default)]
    descriptors: Vec<DescriptorYaml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DescriptorYaml {
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    rate_limit: Option<RateLimitYaml>,
    #[serde(default)]
    shadow_mode: bool,
    #[serde(default)]
    descriptors: Vec<DescriptorYaml>,
    /// envoyproxy/ratelimit's per-descriptor stats switches. They shape only
    /// that service's metrics, which have no counterpart here (ours are not per
    /// descriptor): accepted, and a log line says they change nothing.
    #[serde(default)]
    detailed_metric: bool,
    #[serde(default)]
    value_to_metric: bool,
    /// envoyproxy/ratelimit's descriptor metadata, returned with its answers:
    /// accepted with a log line, since it changes no limit.
    #[serde(default)]
    metadata: Option<serde_yaml_ng::Value>,
    /// envoyproxy/ratelimit's switches that change what is counted or
    /// refused: read only so that setting one is refused as "not supported"
    /// (naming the field) rather than as an unknown field, or ignored.
    #[serde(default)]
    share_threshold: bool,
    #[serde(default)]
    quota_mode: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitYaml {
    #[serde(default, deserialize_with = "unit_name")]
    unit: Option<Unit>,
    #[serde(default)]
    requests_per_unit: Option<u32>,
    #[serde(default)]
    unlimited: bool,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    replaces: Vec<ReplacesYaml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplacesYaml {
    name: String,
}

/// envoyproxy/ratelimit reads units case-insensitively (`second`, `HOUR`, …).
fn unit_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Unit>, D::Error> {
    let name = String::deserialize(d)?;
    parse_unit(&name).map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "unknown unit `{name}`, expected one of second, minute, hour, day, week, month, year"
        ))
    })
}

/// A unit by its API name, in any case.
pub fn parse_unit(name: &str) -> Option<Unit> {
    Some(match name.to_ascii_lowercase().as_str() {
        "second" => Unit::Second,
        "minute" => Unit::Minute,
        "hour" => Unit::Hour,
        "day" => Unit::Day,
        "week" => Unit::Week,
        "month" => Unit::Month,
        "year" => Unit::Year,
        _ => return None,
    })
}

impl ConfigFile {
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigFileError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigFileError::Read {
            path: path.display().to_string(),
            error,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates `text`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<ConfigFile, ConfigFileError> {
        let parsed = serde_yaml_ng::from_str::<FileYaml>(text);
        let lines = Lines::of(text);
        let yaml = parsed.map_err(|e| {
            let message = match &lines.duplicate_key {
                // serde_yaml_ng places it at the start of its mapping.
                Some((at, line)) if e.to_string().contains("duplicate") => {
                    format!("`{at}` is written twice; the second time at line {line}")
                }
                _ => e.to_string(),
            };
            ConfigFileError::Parse {
                path: origin.to_string(),
                message,
            }
        })?;
        let invalid = |at: String, message: String| ConfigFileError::Invalid {
            path: origin.to_string(),
            line: lines.line(&at).unwrap_or(1),
            at,
            message,
        };
        if yaml.domain.is_empty() {
            return Err(invalid("domain".into(), "must not be empty".into()));
        }
        let root = compile_level(yaml.descriptors, "descriptors", &invalid)?;
        Ok(ConfigFile {
            domain: yaml.domain,
            root,
        })
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The rule for a request descriptor of `domain` with these `(key, value)`
    /// entries; `None` when the file does not limit it.
    pub fn lookup<'a, 'e>(
        &'a self,
        domain: &str,
        entries: impl IntoIterator<Item = (&'e str, &'e str)>,
    ) -> Option<Rule<'a>> {
        if domain != self.domain {
            return None;
        }
        let mut level = &self.root;
        let mut node = None;
        for (key, value) in entries {
            let nodes = level.keys.get(key)?;
            let next = nodes
                .by_value
                .get(value)
                .or_else(|| {
                    let mut hits = nodes.wildcards.iter().filter(|(_, w, _)| w.matches(value));
                    hits.next().map(|(_, _, node)| node)
                })
                .or(nodes.any_value.as_ref())?;
            level = &next.children;
            node = Some(next);
        }
        match node?.rule.as_ref()? {
            NodeRule::Limited { limit, shadow_mode } => Some(Rule::Limited {
                limit,
                shadow_mode: *shadow_mode,
            }),
            NodeRule::Unlimited => Some(Rule::Unlimited),
        }
    }
}

fn compile_level(
    descriptors: Vec<DescriptorYaml>,
    at: &str,
    invalid: &impl Fn(String, String) -> ConfigFileError,
) -> Result<Level, ConfigFileError> {
    let mut level = Level::default();
    for (i, d) in descriptors.into_iter().enumerate() {
        let here = format!("{at}[{i}]");
        if d.key.is_empty() {
            return Err(invalid(format!("{here}.key"), "must not be empty".into()));
        }
        for (set, field, what) in [
            (
                d.share_threshold,
                "share_threshold",
                "one counter shared by every value a wildcard matches",
            ),
            (d.quota_mode, "quota_mode", "quota mode"),
        ] {
            if set {
                return Err(invalid(
                    format!("{here}.{field}"),
                    format!("not supported ({what}, an envoyproxy/ratelimit feature Tollgate does not implement)"),
                ));
            }
        }
        if d.metadata.is_some() {
            tracing::info!(at = %here, "metadata is envoyproxy/ratelimit's response metadata; accepted, not returned here");
        }
        if d.detailed_metric || d.value_to_metric {
            tracing::info!(
                at = %here,
                "detailed_metric and value_to_metric shape envoyproxy/ratelimit's own stats; accepted, they change nothing here"
            );
        }
        let rule = match d.rate_limit {
            None => None,
            Some(r) => Some(compile_rule(
                r,
                d.shadow_mode,
                &format!("{here}.rate_limit"),
                invalid,
            )?),
        };
        let node = Node {
            rule,
            children: compile_level(d.descriptors, &format!("{here}.descriptors"), invalid)?,
        };
        let nodes = level.keys.entry(d.key.clone()).or_default();
        let duplicate = match d.value {
            Some(value) => match Wildcard::parse(&value) {
                Some(pattern) => {
                    let seen = nodes.wildcards.iter().any(|(v, _, _)| *v == value);
                    nodes.wildcards.push((value, pattern, node));
                    seen
                }
                None => nodes.by_value.insert(value, node).is_some(),
            },
            None => nodes.any_value.replace(node).is_some(),
        };
        if duplicate {
            return Err(invalid(
                here,
                format!(
                    "a second entry for key `{}` with the same value; each key/value pair may appear once per level",
                    d.key
                ),
            ));
        }
    }
    Ok(level)
}

fn compile_rule(
    r: RateLimitYaml,
    shadow_mode: bool,
    at: &str,
    invalid: &impl Fn(String, String) -> ConfigFileError,
) -> Result<NodeRule, ConfigFileError> {
    if let Some(i) = r.replaces.iter().position(|x| x.name.is_empty()) {
        return Err(invalid(
            format!("{at}.replaces[{i}].name"),
            "must not be empty".into(),
        ));
    }
    if r.unlimited {
        if r.unit.is_some() || r.requests_per_unit.is_some() {
            return Err(invalid(
                at.to_string(),
                "`unlimited: true` takes no `unit` or `requests_per_unit`".into(),
            ));
        }
        return Ok(NodeRule::Unlimited);
    }
    let unit = r.unit.ok_or_else(|| {
        invalid(
            format!("{at}.unit"),
            "missing (second, minute, hour, day, week, month or year)".into(),
        )
    })?;
    let requests_per_unit = r.requests_per_unit.ok_or_else(|| {
        invalid(
            format!("{at}.requests_per_unit"),
            "missing (or set `unlimited: true`)".into(),
        )
    })?;
    Ok(NodeRule::Limited {
        limit: Limit {
            requests_per_unit,
            unit,
            name: r.name.unwrap_or_default(),
            replaces: r.replaces.into_iter().map(|x| x.name).collect(),
        },
        shadow_mode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "
domain: edge
descriptors:
  - key: user
    rate_limit: {unit: hour, requests_per_unit: 3}
  - key: user
    value: admin
    rate_limit: {unlimited: true}
  - key: user
    value: vip
    rate_limit: {unit: MINUTE, requests_per_unit: 100, name: vip}
  - key: remote_address
    descriptors:
      - key: path
        value: /login
        rate_limit: {unit: second, requests_per_unit: 1}
        shadow_mode: true
      - key: path
        rate_limit: {unit: Day, requests_per_unit: 1000}
  - key: tenant
";

    fn good() -> ConfigFile {
        ConfigFile::parse(GOOD, "test.yaml").unwrap()
    }

    fn limited(rule: Option<Rule<'_>>) -> (u32, Unit, bool) {
        match rule {
            Some(Rule::Limited { limit, shadow_mode }) => {
                (limit.requests_per_unit, limit.unit, shadow_mode)
            }
            other => panic!("expected a limit, got {other:?}"),
        }
    }

    #[test]
    fn key_only_entries_match_any_value() {
        let c = good();
        assert_eq!(c.domain(), "edge");
        assert_eq!(
            limited(c.lookup("edge", [("user", "alice")])),
            (3, Unit::Hour, false)
        );
    }

    #[test]
    fn value_specific_entries_win_over_key_only_ones() {
        let c = good();
        assert_eq!(c.lookup("edge", [("user", "admin")]), Some(Rule::Unlimited));
        let vip = c.lookup("edge", [("user", "vip")]);
        assert_eq!(limited(vip), (100, Unit::Minute, false));
        match vip {
            Some(Rule::Limited { limit, .. }) => assert_eq!(limit.name, "vip"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nested_descriptors_take_the_limit_of_the_last_entry() {
        let c = good();
        let login = [("remote_address", "10.0.0.1"), ("path", "/login")];
        assert_eq!(limited(c.lookup("edge", login)), (1, Unit::Second, true));
        let other = [("remote_address", "10.0.0.1"), ("path", "/x")];
        assert_eq!(limited(c.lookup("edge", other)), (1000, Unit::Day, false));
        // The parent node has no limit of its own.
        assert_eq!(c.lookup("edge", [("remote_address", "10.0.0.1")]), None);
    }

    #[test]
    fn unmatched_descriptors_are_not_limited() {
        let c = good();
        assert_eq!(c.lookup("edge", [("nobody", "x")]), None);
        assert_eq!(c.lookup("edge", [("tenant", "x")]), None, "no rate_limit");
        assert_eq!(c.lookup("edge", [("user", "alice"), ("extra", "y")]), None);
        assert_eq!(c.lookup("other-domain", [("user", "alice")]), None);
        assert_eq!(c.lookup("edge", []), None);
    }

    fn error(text: &str) -> String {
        ConfigFile::parse(text, "bad.yaml").unwrap_err().to_string()
    }

    #[test]
    fn semantic_errors_and_a_key_written_twice_name_their_line() {
        let e = error("domain: d\ndescriptors:\n  - key: user\n    rate_limit: {unit: hour, requests_per_unit: 3}\n  - key: user\n    rate_limit: {unit: hour, requests_per_unit: 4}\n");
        assert!(
            e.starts_with("bad.yaml:5: invalid rate limit config at `descriptors[1]`"),
            "{e}"
        );
        let e = error("domain: d\ndescriptors:\n  - key: k\n    rate_limit:\n      unit: hour\n");
        assert!(
            e.starts_with("bad.yaml:4:") && e.contains("requests_per_unit"),
            "{e}"
        );
        let e = error("domain: d\ndescriptors:\n  - key: user\n    key: other\n");
        assert!(
            e.contains("`descriptors[0].key` is written twice; the second time at line 4"),
            "{e}"
        );
    }

    #[test]
    fn bad_unit_names_the_field_and_line() {
        let e = error("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: fortnight, requests_per_unit: 1}\n");
        assert!(e.contains("descriptors[0].rate_limit: unknown unit"), "{e}");
        assert!(e.contains("unknown unit `fortnight`"), "{e}");
        assert!(e.contains("line 4"), "{e}");
    }

    #[test]
    fn unknown_fields_are_errors() {
        let e = error("domain: d\ndescriptors:\n  - key: k\n    rate_limt: {unit: second, requests_per_unit: 1}\n");
        assert!(e.contains("unknown field `rate_limt`"), "{e}");
        assert!(e.contains("descriptors[0]"), "{e}");
    }

    #[test]
    fn missing_fields_are_named() {
        let e = error("descriptors: []\n");
        assert!(e.contains("missing field `domain`"), "{e}");
        let e = error("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: second}\n");
        assert!(
            e.contains("`descriptors[0].rate_limit.requests_per_unit`: missing"),
            "{e}"
        );
        let e =
            error("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {requests_per_unit: 5}\n");
        assert!(
            e.contains("`descriptors[0].rate_limit.unit`: missing"),
            "{e}"
        );
        let e = error("domain: ''\n");
        assert!(e.contains("`domain`: must not be empty"), "{e}");
    }

    #[test]
    fn duplicates_and_contradictions_are_errors() {
        let e = error("domain: d\ndescriptors:\n  - key: a\n    descriptors:\n      - {key: b, value: x}\n      - {key: b, value: x}\n");
        assert!(e.contains("`descriptors[0].descriptors[1]`"), "{e}");
        assert!(e.contains("second entry for key `b`"), "{e}");
        let e = error("domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unlimited: true, unit: second}\n");
        assert!(e.contains("`unlimited: true` takes no"), "{e}");
        let e = error(
            "domain: d\ndescriptors:\n  - {key: k, value: 'ab*'}\n  - {key: k, value: 'ab*'}\n",
        );
        assert!(e.contains("second entry for key `k`"), "{e}");
        let e = error("domain: d\ndescriptors:\n  - key: ''\n");
        assert!(e.contains("`descriptors[0].key`: must not be empty"), "{e}");
    }

    /// envoyproxy/ratelimit's README, "Example 8" style wildcards: a trailing
    /// `foo*`, and `*` in the middle (`bar*b`, `foo*bar*baz`); exact values win,
    /// then patterns in file order, then the key-only entry.
    #[test]
    fn wildcard_values_match_anywhere_after_exact_values_and_before_key_only() {
        let c = ConfigFile::parse(
            "domain: d\ndescriptors:\n  - key: user\n    value: foo*\n    rate_limit: {unit: minute, requests_per_unit: 1, name: prefix}\n  - key: user\n    value: bar*b\n    rate_limit: {unit: minute, requests_per_unit: 2, name: middle}\n  - key: user\n    value: foo*bar*baz\n    rate_limit: {unit: minute, requests_per_unit: 3, name: two-stars}\n  - key: user\n    value: foo-exact\n    rate_limit: {unit: minute, requests_per_unit: 4, name: exact}\n  - key: user\n    rate_limit: {unit: minute, requests_per_unit: 5, name: any}\n",
            "t.yaml",
        )
        .unwrap();
        let name = |v: &str| match c.lookup("d", [("user", v)]) {
            Some(Rule::Limited { limit, .. }) => limit.name.clone(),
            other => format!("{other:?}"),
        };
        assert_eq!(name("foo"), "prefix");
        assert_eq!(name("foo-anything"), "prefix");
        assert_eq!(
            name("fooXbarYbaz"),
            "prefix",
            "the first pattern in file order wins"
        );
        assert_eq!(name("bar-x-b"), "middle");
        assert_eq!(name("barb"), "middle");
        assert_eq!(
            name("foo-exact"),
            "exact",
            "an exact value wins over patterns"
        );
        assert_eq!(
            name("bar-x"),
            "any",
            "no pattern matches: the key-only entry"
        );
    }

    #[test]
    fn metric_switches_are_accepted_and_an_unnamed_replaces_is_an_error() {
        let c = ConfigFile::parse(
            "domain: d\ndescriptors:\n  - key: k\n    detailed_metric: true\n    value_to_metric: true\n    rate_limit: {unit: second, requests_per_unit: 1}\n",
            "t.yaml",
        );
        assert!(c.is_ok(), "{:?}", c.err());
        let e = error("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: second, requests_per_unit: 1, replaces: [{name: ''}]}\n");
        assert!(
            e.contains("`descriptors[0].rate_limit.replaces[0].name`: must not be empty"),
            "{e}"
        );
    }

    /// Issue 18, item 7: the reference's fields that would change counting
    /// are refused as "not supported", naming the field and its line; its
    /// response metadata is accepted.
    #[test]
    fn the_references_unsupported_switches_say_not_supported_and_metadata_is_accepted() {
        for field in ["share_threshold", "quota_mode"] {
            let e = error(&format!(
                "domain: d\ndescriptors:\n  - key: k\n    value: a*\n    {field}: true\n    rate_limit: {{unit: second, requests_per_unit: 1}}\n"
            ));
            assert!(e.contains(&format!("descriptors[0].{field}")), "{e}");
            assert!(e.contains("not supported"), "{e}");
            assert!(!e.contains("unknown field"), "{e}");
            assert!(e.starts_with("bad.yaml:5:"), "the field's own line: {e}");
        }
        let c = ConfigFile::parse(
            "domain: d\ndescriptors:\n  - key: k\n    share_threshold: false\n    metadata: {team: a}\n    rate_limit: {unit: second, requests_per_unit: 1}\n",
            "t.yaml",
        );
        assert!(c.is_ok(), "{:?}", c.err());
    }

    #[test]
    fn negative_or_huge_requests_are_syntax_errors() {
        let e = error("domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: second, requests_per_unit: -1}\n");
        assert!(
            e.contains("descriptors[0].rate_limit.requests_per_unit"),
            "{e}"
        );
    }

    #[test]
    fn not_yaml_is_an_error_with_a_position() {
        let e = error("domain: [unclosed\n");
        assert!(e.contains("bad.yaml"), "{e}");
        assert!(e.contains("line"), "{e}");
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let e = ConfigFile::load(Path::new("/nonexistent/limits.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("reading /nonexistent/limits.yaml"), "{e}");
    }
}
