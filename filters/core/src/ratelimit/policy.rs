//! The compiled rate limit policy: rules validated once at configure time, and
//! which rules (and which bucket of each) a request falls under.
//!
//! Matching follows Envoy Gateway: every selector of a rule must match, and
//! every condition of a selector; a rule without selectors applies to every
//! request. `Distinct` conditions put each distinct value (header, query
//! parameter, client address) in its own bucket. `invert` negates an `Exact` or
//! `RegularExpression` condition, and an inverted condition on an absent header
//! matches (as Envoy's header matcher does).

use std::time::Duration;

use regex_lite::Regex;

use super::cidr::Cidr;
pub use super::config::Unit;
use super::config::{
    CidrMatchType, FailureModeConfig, HeaderMatchConfig, ModeConfig, PathMatchType,
    RateLimitConfig, RuleConfig, SelectorConfig, ServiceConfig, ValueMatchType,
};
use crate::regex::{self, Case};
use crate::request_parts::query_values;
pub use crate::request_parts::RequestAttrs;
use crate::{duration, http_field, ConfigError};

/// Default answer deadline of the global rate limit service.
pub const DEFAULT_SERVICE_TIMEOUT: Duration = Duration::from_millis(100);
/// Domain sent to the service unless configured.
pub const DEFAULT_DOMAIN: &str = "tollgate";

#[derive(Debug)]
pub struct RateLimitPolicy {
    pub local: Vec<Rule>,
    pub global: Vec<Rule>,
    pub service: Option<Service>,
}

#[derive(Debug)]
pub struct Rule {
    /// Unique within the policy; names the counter (and the descriptor).
    pub name: String,
    selectors: Vec<Selector>,
    pub limit: Limit,
    pub shadow: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub requests: u64,
    pub unit: Unit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub cluster: String,
    pub domain: String,
    pub timeout: Duration,
    /// Let requests through when the service cannot answer.
    pub fail_open: bool,
}

#[derive(Debug, Default)]
struct Selector {
    headers: Vec<ValueMatch>,
    source: Option<SourceMatch>,
    /// Any of these (an inverted one: any method but it).
    methods: Vec<(String, bool)>,
    path: Option<PathMatch>,
    query: Vec<ValueMatch>,
}

#[derive(Debug)]
struct ValueMatch {
    name: String,
    kind: ValueKind,
    invert: bool,
}

#[derive(Debug)]
enum ValueKind {
    Exact(String),
    Regex(Regex),
    Distinct,
}

#[derive(Debug)]
struct SourceMatch {
    cidr: Cidr,
    distinct: bool,
}

#[derive(Debug)]
struct PathMatch {
    kind: PathKind,
    invert: bool,
}

#[derive(Debug)]
enum PathKind {
    Exact(String),
    Prefix(String),
    Regex(Regex),
}

impl RateLimitPolicy {
    pub fn compile(config: RateLimitConfig) -> Result<Self, ConfigError> {
        let (local, global) = match config.kind {
            None => (config.local, config.global),
            Some(ModeConfig::Local) => {
                if config.local.is_none() {
                    return Err(ConfigError::new(
                        "local",
                        "`type: Local` needs `local.rules`",
                    ));
                }
                (config.local, None)
            }
            Some(ModeConfig::Global) => {
                if config.global.is_none() {
                    return Err(ConfigError::new(
                        "global",
                        "`type: Global` needs `global.rules`",
                    ));
                }
                (None, config.global)
            }
        };
        let local = compile_rules("local", local.map(|r| r.rules).unwrap_or_default())?;
        let global = compile_rules("global", global.map(|r| r.rules).unwrap_or_default())?;
        if local.is_empty() && global.is_empty() {
            return Err(ConfigError::new(
                "local",
                "no rules: give `local.rules` and/or `global.rules`",
            ));
        }
        let service = config
            .service
            .map(|s| compile_service(s).map_err(|e| e.within("service")))
            .transpose()?;
        if !global.is_empty() && service.is_none() {
            return Err(ConfigError::new(
                "service",
                "global rules need `service.cluster` (the rate limit service's Envoy cluster)",
            ));
        }
        let duplicate = local.iter().chain(&global).enumerate().find_map(|(i, r)| {
            local
                .iter()
                .chain(&global)
                .skip(i + 1)
                .find(|o| o.name == r.name)
        });
        if let Some(rule) = duplicate {
            return Err(ConfigError::new(
                "rules",
                format!("two rules are named `{}`; names must be unique", rule.name),
            ));
        }
        Ok(RateLimitPolicy {
            local,
            global,
            service,
        })
    }
}

fn compile_rules(mode: &str, rules: Vec<RuleConfig>) -> Result<Vec<Rule>, ConfigError> {
    rules
        .into_iter()
        .enumerate()
        .map(|(i, r)| compile_rule(mode, i, r).map_err(|e| e.within(&format!("{mode}.rules[{i}]"))))
        .collect()
}

fn compile_rule(mode: &str, index: usize, rule: RuleConfig) -> Result<Rule, ConfigError> {
    let name = match rule.name {
        Some(n) if n.is_empty() || !n.chars().all(|c| c.is_ascii_graphic()) => {
            return Err(ConfigError::new(
                "name",
                "must be non-empty printable ASCII without spaces",
            ))
        }
        Some(n) => n,
        None => format!("{mode}-{index}"),
    };
    if rule.limit.requests == 0 {
        return Err(ConfigError::new(
            "limit.requests",
            "must be at least 1 (to refuse every request, use a route without a backend)",
        ));
    }
    if mode == "global" && u32::try_from(rule.limit.requests).is_err() {
        return Err(ConfigError::new(
            "limit.requests",
            "at most 4294967295 in global rules (the rate limit API's requests_per_unit is 32-bit)",
        ));
    }
    let selectors = rule
        .client_selectors
        .into_iter()
        .enumerate()
        .map(|(i, s)| compile_selector(s).map_err(|e| e.within(&format!("clientSelectors[{i}]"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Rule {
        name,
        selectors,
        limit: Limit {
            requests: rule.limit.requests,
            unit: rule.limit.unit,
        },
        shadow: rule.shadow_mode,
    })
}

fn compile_selector(s: SelectorConfig) -> Result<Selector, ConfigError> {
    let headers = s
        .headers
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            let field = format!("headers[{i}]");
            let name = http_field::header_name(&format!("{field}.name"), &h.name)?;
            compile_value(h, name).map_err(|e| e.within(&field))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let query = s
        .query_params
        .into_iter()
        .enumerate()
        .map(|(i, q)| {
            let field = format!("queryParams[{i}]");
            if q.name.is_empty() {
                return Err(ConfigError::new(format!("{field}.name"), "is empty"));
            }
            let name = q.name.clone();
            compile_value(q, name).map_err(|e| e.within(&field))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let source = s
        .source_cidr
        .map(|c| {
            Ok(SourceMatch {
                cidr: Cidr::parse(&c.value)
                    .map_err(|why| ConfigError::new("sourceCIDR.value", why))?,
                distinct: c.kind == Some(CidrMatchType::Distinct),
            })
        })
        .transpose()?;
    let methods = s
        .methods
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let valid = !m.value.is_empty() && m.value.chars().all(|c| c.is_ascii_uppercase());
            if valid {
                Ok((m.value, m.invert))
            } else {
                Err(ConfigError::new(
                    format!("methods[{i}].value"),
                    format!("`{}` is not an HTTP method like GET", m.value),
                ))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let path = s
        .path
        .map(|p| {
            let kind = match p.kind.unwrap_or(PathMatchType::PathPrefix) {
                PathMatchType::Exact => PathKind::Exact(p.value),
                PathMatchType::PathPrefix => PathKind::Prefix(p.value),
                PathMatchType::RegularExpression => PathKind::Regex(
                    regex::whole(&p.value, Case::Sensitive)
                        .map_err(|why| ConfigError::new("path.value", why))?,
                ),
            };
            Ok::<_, ConfigError>(PathMatch {
                kind,
                invert: p.invert,
            })
        })
        .transpose()?;
    Ok(Selector {
        headers,
        source,
        methods,
        path,
        query,
    })
}

fn compile_value(m: HeaderMatchConfig, name: String) -> Result<ValueMatch, ConfigError> {
    let kind = match (m.kind.unwrap_or(ValueMatchType::Exact), m.value) {
        (ValueMatchType::Distinct, Some(_)) => {
            return Err(ConfigError::new("value", "`Distinct` takes no value"))
        }
        (ValueMatchType::Distinct, None) if m.invert => {
            return Err(ConfigError::new("invert", "`Distinct` cannot be inverted"))
        }
        (ValueMatchType::Distinct, None) => ValueKind::Distinct,
        (_, None) => {
            return Err(ConfigError::new(
                "value",
                "is required for Exact and RegularExpression",
            ))
        }
        (ValueMatchType::Exact, Some(v)) => ValueKind::Exact(v),
        (ValueMatchType::RegularExpression, Some(v)) => ValueKind::Regex(
            regex::whole(&v, Case::Sensitive).map_err(|why| ConfigError::new("value", why))?,
        ),
    };
    Ok(ValueMatch {
        name,
        kind,
        invert: m.invert,
    })
}

fn compile_service(s: ServiceConfig) -> Result<Service, ConfigError> {
    if s.cluster.is_empty() {
        return Err(ConfigError::new("cluster", "is empty"));
    }
    let timeout = duration::timeout("timeout", s.timeout.as_deref(), DEFAULT_SERVICE_TIMEOUT)?;
    Ok(Service {
        cluster: s.cluster,
        domain: s.domain.unwrap_or_else(|| DEFAULT_DOMAIN.to_string()),
        timeout,
        fail_open: s.failure_mode != Some(FailureModeConfig::Deny),
    })
}

impl Rule {
    /// The bucket of this rule the request counts against, or None when the rule
    /// does not apply. The bucket is the `Distinct` values, `name=value` joined
    /// by `&` in selector order (empty for a rule without `Distinct`).
    pub fn bucket(&self, req: &dyn RequestAttrs) -> Option<String> {
        let mut bucket = Vec::new();
        for selector in &self.selectors {
            selector.matches(req, &mut bucket)?;
        }
        Some(bucket.join("&"))
    }
}

impl Selector {
    /// Some(()) when every condition holds; pushes `Distinct` values to `bucket`.
    fn matches(&self, req: &dyn RequestAttrs, bucket: &mut Vec<String>) -> Option<()> {
        for h in &self.headers {
            h.check(req.header(&h.name), "h", bucket)?;
        }
        let path = req.path().split('?').next().unwrap_or_default();
        for param in &self.query {
            let value = query_values(req.path(), &param.name).into_iter().next();
            param.check(value.as_deref(), "q", bucket)?;
        }
        if !self.methods.is_empty() {
            let method = req.method();
            let any = self
                .methods
                .iter()
                .any(|(m, invert)| (m == method) != *invert);
            any.then_some(())?;
        }
        if let Some(p) = &self.path {
            let hit = match &p.kind {
                PathKind::Exact(v) => path == v,
                PathKind::Prefix(v) => path_prefix(path, v),
                PathKind::Regex(r) => r.is_match(path),
            };
            (hit != p.invert).then_some(())?;
        }
        if let Some(s) = &self.source {
            let ip = req.source_ip().filter(|ip| s.cidr.contains(*ip))?;
            if s.distinct {
                bucket.push(format!("ip={ip}"));
            }
        }
        Some(())
    }
}

impl ValueMatch {
    fn check(&self, value: Option<&str>, tag: &str, bucket: &mut Vec<String>) -> Option<()> {
        let hit = match (&self.kind, value) {
            (ValueKind::Distinct, Some(v)) => {
                bucket.push(format!("{tag}:{}={v}", self.name));
                return Some(());
            }
            (ValueKind::Distinct, None) => return None,
            (_, None) => false,
            (ValueKind::Exact(want), Some(v)) => v == want,
            (ValueKind::Regex(r), Some(v)) => r.is_match(v),
        };
        (hit != self.invert).then_some(())
    }
}

/// Gateway API `PathPrefix`: whole segments only (`/foo` matches `/foo/bar`, not `/foobar`).
fn path_prefix(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || prefix.is_empty(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::from_value;
    use serde_json::{json, Value};
    use std::net::IpAddr;

    fn compile(v: Value) -> Result<RateLimitPolicy, ConfigError> {
        RateLimitPolicy::compile(from_value(v)?)
    }

    struct Req {
        headers: Vec<(&'static str, &'static str)>,
        method: &'static str,
        path: &'static str,
        ip: Option<IpAddr>,
    }

    impl Default for Req {
        fn default() -> Self {
            Req {
                headers: vec![],
                method: "GET",
                path: "/",
                ip: "10.0.0.1".parse().ok(),
            }
        }
    }

    impl RequestAttrs for Req {
        fn header_values(&self, name: &str) -> Vec<&str> {
            self.headers
                .iter()
                .filter(|(k, _)| *k == name)
                .map(|(_, v)| *v)
                .collect()
        }
        fn method(&self) -> &str {
            self.method
        }
        fn path(&self) -> &str {
            self.path
        }
        fn source_ip(&self) -> Option<IpAddr> {
            self.ip
        }
    }

    fn user(v: &'static str) -> Req {
        Req {
            headers: vec![("x-user-id", v)],
            ..Req::default()
        }
    }

    fn one_rule(selectors: Value) -> Rule {
        let mut p = compile(json!({"local": {"rules": [
            {"clientSelectors": selectors, "limit": {"requests": 3, "unit": "Hour"}}
        ]}}))
        .unwrap();
        p.local.remove(0)
    }

    #[test]
    fn envoy_gateway_guide_scenarios() {
        let exact = one_rule(json!([{"headers": [{"name": "x-user-id", "value": "one"}]}]));
        assert_eq!(exact.bucket(&user("one")), Some(String::new()));
        assert_eq!(exact.bucket(&user("two")), None);
        assert_eq!(exact.bucket(&Req::default()), None);
        let distinct = one_rule(json!([{"headers": [{"name": "x-user-id", "type": "Distinct"}]}]));
        assert_eq!(
            distinct.bucket(&user("one")).as_deref(),
            Some("h:x-user-id=one")
        );
        assert_eq!(
            distinct.bucket(&user("two")).as_deref(),
            Some("h:x-user-id=two")
        );
        assert_eq!(distinct.bucket(&Req::default()), None);
        let all = one_rule(json!([]));
        assert_eq!(all.bucket(&Req::default()), Some(String::new()));
        assert_eq!(all.limit.unit.seconds(), 3600);
        assert_eq!(all.name, "local-0");
    }

    #[test]
    fn regex_invert_methods_path_query_and_source() {
        let regex = one_rule(
            json!([{"headers": [{"name": "x-user-id", "type": "RegularExpression", "value": "o.e"}]}]),
        );
        assert!(regex.bucket(&user("one")).is_some());
        assert!(regex.bucket(&user("ones")).is_none(), "whole value");
        let invert = one_rule(
            json!([{"headers": [{"name": "x-user-id", "value": "admin", "invert": true}]}]),
        );
        assert!(invert.bucket(&user("one")).is_some());
        assert!(invert.bucket(&user("admin")).is_none());
        assert!(
            invert.bucket(&Req::default()).is_some(),
            "absent header, inverted: matches"
        );
        let methods = one_rule(json!([{"methods": [{"value": "POST"}, {"value": "PUT"}]}]));
        assert!(methods
            .bucket(&Req {
                method: "PUT",
                ..Req::default()
            })
            .is_some());
        assert!(methods.bucket(&Req::default()).is_none());
        let path = one_rule(json!([{"path": {"type": "PathPrefix", "value": "/api"}}]));
        assert!(path
            .bucket(&Req {
                path: "/api/x?y=1",
                ..Req::default()
            })
            .is_some());
        assert!(path
            .bucket(&Req {
                path: "/apix",
                ..Req::default()
            })
            .is_none());
        let query = one_rule(json!([{"queryParams": [{"name": "key", "type": "Distinct"}]}]));
        assert_eq!(
            query
                .bucket(&Req {
                    path: "/s?a=1&key=k1",
                    ..Req::default()
                })
                .as_deref(),
            Some("q:key=k1")
        );
        assert!(query
            .bucket(&Req {
                path: "/s?a=1",
                ..Req::default()
            })
            .is_none());
        let cidr = one_rule(json!([{"sourceCIDR": {"type": "Distinct", "value": "10.0.0.0/8"}}]));
        assert_eq!(cidr.bucket(&Req::default()).as_deref(), Some("ip=10.0.0.1"));
        let outside = Req {
            ip: "192.168.1.1".parse().ok(),
            ..Req::default()
        };
        assert!(cidr.bucket(&outside).is_none());
        assert!(cidr
            .bucket(&Req {
                ip: None,
                ..Req::default()
            })
            .is_none());
    }

    #[test]
    fn selectors_and_conditions_are_anded() {
        let rule = one_rule(json!([
            {"headers": [{"name": "x-user-id", "type": "Distinct"}], "methods": [{"value": "GET"}]},
            {"path": {"type": "Exact", "value": "/login"}}
        ]));
        let login = Req {
            headers: vec![("x-user-id", "u")],
            path: "/login",
            ..Req::default()
        };
        assert_eq!(rule.bucket(&login).as_deref(), Some("h:x-user-id=u"));
        assert!(rule
            .bucket(&Req {
                method: "POST",
                ..login
            })
            .is_none());
        assert!(rule.bucket(&user("u")).is_none(), "path selector fails");
    }

    #[test]
    fn both_config_forms_and_the_service() {
        let old = compile(json!({"type": "Global", "global": {"rules": [
            {"limit": {"requests": 10, "unit": "Minute"}, "shadowMode": true}
        ]}, "service": {"cluster": "rls", "failureMode": "deny", "timeout": "50ms"}}))
        .unwrap();
        assert!(old.local.is_empty());
        assert!(old.global[0].shadow);
        let s = old.service.unwrap();
        assert_eq!(
            (s.cluster.as_str(), s.domain.as_str()),
            ("rls", DEFAULT_DOMAIN)
        );
        assert_eq!(s.timeout, Duration::from_millis(50));
        assert!(!s.fail_open);
        let both = compile(json!({
            "local": {"rules": [{"name": "burst", "limit": {"requests": 100, "unit": "Second"}}]},
            "global": {"rules": [{"limit": {"requests": 1000, "unit": "Day"}}]},
            "service": {"cluster": "rls"}
        }))
        .unwrap();
        assert_eq!(both.local[0].name, "burst");
        assert_eq!(both.global[0].name, "global-0");
        assert!(
            both.service.unwrap().fail_open,
            "failureMode defaults to allow"
        );
    }

    #[test]
    fn costly_regexes_are_refused_naming_the_field() {
        let limit = json!({"requests": 5, "unit": "Minute"});
        // `.*a.{20000}` took 556 ms per request on a 5 KB header value.
        let costly = ".*a.{20000}";
        let cases = [
            (
                json!([{"headers": [{"name": "x-user-id", "type": "RegularExpression", "value": costly}]}]),
                "local.rules[0].clientSelectors[0].headers[0].value",
            ),
            (
                json!([{"queryParams": [{"name": "k", "type": "RegularExpression", "value": costly}]}]),
                "local.rules[0].clientSelectors[0].queryParams[0].value",
            ),
            (
                json!([{"path": {"type": "RegularExpression", "value": costly}}]),
                "local.rules[0].clientSelectors[0].path.value",
            ),
        ];
        for (selectors, field) in cases {
            let e = compile(
                json!({"local": {"rules": [{"clientSelectors": selectors, "limit": limit}]}}),
            )
            .unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.message.contains("is too large"), "{e}");
        }
        let ordinary = json!([{"path": {"type": "RegularExpression", "value": "/api/v[0-9]+/users/[^/]+"},
                               "headers": [{"name": "authorization", "type": "RegularExpression", "value": "(?i)bearer [a-z0-9._-]+"}]}]);
        assert!(compile(
            json!({"local": {"rules": [{"clientSelectors": ordinary, "limit": limit}]}})
        )
        .is_ok());
    }

    #[test]
    fn bad_configs_name_the_field() {
        let limit = json!({"requests": 3, "unit": "Hour"});
        let cases = [
            (json!({}), "local"),
            (json!({"type": "Local", "global": {"rules": []}}), "local"),
            (json!({"global": {"rules": [{"limit": limit}]}}), "service"),
            (
                json!({"global": {"rules": [{"limit": {"requests": 5_000_000_000u64, "unit": "Hour"}}]},
                       "service": {"cluster": "rls"}}),
                "global.rules[0].limit.requests",
            ),
            (
                json!({"local": {"rules": [{"limit": {"requests": 0, "unit": "Hour"}}]}}),
                "local.rules[0].limit.requests",
            ),
            (
                json!({"local": {"rules": [{"limit": {"requests": 1, "unit": "Fortnight"}}]}}),
                "local.rules[0].limit.unit",
            ),
            (
                json!({"local": {"rules": [{"limit": {"requests": -1, "unit": "Hour"}}]}}),
                "local.rules[0].limit.requests",
            ),
            (
                json!({"local": {"rules": [{"clientSelectors": [{"headers": [{"name": "x", "type": "RegularExpression", "value": "("}]}], "limit": limit}]}}),
                "local.rules[0].clientSelectors[0].headers[0].value",
            ),
            (
                json!({"local": {"rules": [{"clientSelectors": [{"headers": [{"name": "x y", "value": "1"}]}], "limit": limit}]}}),
                "local.rules[0].clientSelectors[0].headers[0].name",
            ),
            (
                json!({"local": {"rules": [{"clientSelectors": [{"headers": [{"name": "x", "type": "Distinct", "value": "1"}]}], "limit": limit}]}}),
                "local.rules[0].clientSelectors[0].headers[0].value",
            ),
            (
                json!({"local": {"rules": [{"clientSelectors": [{"headers": [{"name": "x"}]}], "limit": limit}]}}),
                "local.rules[0].clientSelectors[0].headers[0].value",
            ),
            (
                json!({"local": {"rules": [{"clientSelectors": [{"sourceCIDR": {"value": "10.0.0.0/40"}}], "limit": limit}]}}),
                "local.rules[0].clientSelectors[0].sourceCIDR.value",
            ),
            (
                json!({"local": {"rules": [{"clientSelectors": [{"methods": [{"value": "get"}]}], "limit": limit}]}}),
                "local.rules[0].clientSelectors[0].methods[0].value",
            ),
            (
                json!({"local": {"rules": [{"name": "a", "limit": limit}, {"name": "a", "limit": limit}]}}),
                "rules",
            ),
            (
                json!({"local": {"rules": [{"limit": limit}]}, "service": {"cluster": "r", "failureMode": "maybe"}}),
                "service.failureMode",
            ),
            (
                json!({"local": {"rules": [{"limit": limit, "selectors": []}]}}),
                "local.rules[0].selectors",
            ),
        ];
        for (config, field) in cases {
            let err = compile(config.clone())
                .err()
                .unwrap_or_else(|| panic!("accepted {config}"));
            assert_eq!(err.field, field, "{config}: {err}");
        }
    }
}
