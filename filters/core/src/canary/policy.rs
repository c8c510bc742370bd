//! The compiled canary policy and the selection: rules first (first match
//! wins), then the sticky key, then a weighted pick.

use regex_lite::Regex;

use super::config::{
    BackendConfig, CanaryConfig, MatchConfig, MatchType, RuleConfig, StickyConfig, ValueMatchConfig,
};
use super::spread::{self, KeyGen, Spread};
use crate::regex::{self, Case};
use crate::request_parts::{query_values, request_cookie_values, RequestAttrs};
use crate::{http_field, ConfigError};

/// The request header the selection is written to unless configured.
pub const DEFAULT_HEADER: &str = "x-tollgate-backend";
/// Gateway API's largest `backendRef.weight`.
const MAX_WEIGHT: i64 = 1_000_000;

#[derive(Debug)]
pub struct CanaryPolicy {
    /// Lower-case; always overwritten, so a client cannot choose.
    pub header: String,
    names: Vec<String>,
    weights: Vec<u32>,
    name_hashes: Vec<u64>,
    rules: Vec<Rule>,
    sticky: Option<Sticky>,
}

#[derive(Debug)]
struct Rule {
    conditions: Vec<Condition>,
    backend: usize,
}

#[derive(Debug)]
struct Condition {
    part: Part,
    name: String,
    value: ValueMatch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Header,
    Query,
    Cookie,
}

#[derive(Debug)]
enum ValueMatch {
    Exact(String),
    Regex(Regex),
}

#[derive(Debug)]
struct Sticky {
    source: Option<KeySource>,
    set_cookie: Option<SetCookie>,
}

#[derive(Debug)]
enum KeySource {
    Header(String),
    Cookie(String),
}

#[derive(Debug)]
struct SetCookie {
    name: String,
    max_age: Option<u64>,
}

/// Why a backend was chosen (for metrics and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Rule,
    Sticky,
    Weight,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Index into [`CanaryPolicy::backend_names`].
    pub backend: usize,
    pub reason: Reason,
    /// A `set-cookie` value for the response: the request had no sticky key and
    /// got a new one.
    pub set_cookie: Option<String>,
}

/// A VM's own randomness: the weighted-pick sequence and the key generator,
/// both seeded randomly once.
#[derive(Debug, Clone, Copy)]
pub struct Draws {
    pub spread: Spread,
    pub keys: KeyGen,
}

impl Draws {
    pub fn new(seed: u64) -> Self {
        Draws {
            spread: Spread::new(seed),
            keys: KeyGen::new(seed.rotate_left(32) ^ 0x5851_f42d_4c95_7f2d),
        }
    }
}

impl CanaryPolicy {
    pub fn compile(config: CanaryConfig) -> Result<Self, ConfigError> {
        let header =
            http_field::header_name("header", config.header.as_deref().unwrap_or(DEFAULT_HEADER))?;
        if config.backends.is_empty() {
            return Err(ConfigError::new("backends", "needs at least one backend"));
        }
        let mut names = Vec::new();
        let mut weights = Vec::new();
        for (i, b) in config.backends.into_iter().enumerate() {
            let (name, weight) =
                compile_backend(b).map_err(|e| e.within(&format!("backends[{i}]")))?;
            if names.contains(&name) {
                return Err(ConfigError::new(
                    format!("backends[{i}].name"),
                    format!("`{name}` is named twice; backend names must be unique"),
                ));
            }
            names.push(name);
            weights.push(weight);
        }
        let rules = config
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| compile_rule(r, &names).map_err(|e| e.within(&format!("rules[{i}]"))))
            .collect::<Result<Vec<_>, _>>()?;
        if weights.iter().all(|w| *w == 0) && rules.is_empty() {
            return Err(ConfigError::new(
                "backends",
                "every weight is 0 and there are no rules: no request could be sent anywhere",
            ));
        }
        let sticky = config
            .sticky
            .map(|s| compile_sticky(s).map_err(|e| e.within("sticky")))
            .transpose()?;
        Ok(CanaryPolicy {
            header,
            name_hashes: names.iter().map(|n| spread::hash(n)).collect(),
            names,
            weights,
            rules,
            sticky,
        })
    }

    /// [`CanaryPolicy::compile`] for a selector that sees the request headers
    /// only and writes nothing (Envoy's cluster specifier, which names the
    /// cluster while the route is resolved): a policy asking for more is
    /// refused naming the field. `header` would never be written, and a new
    /// sticky key (`sticky.setCookie`) needs the response for its
    /// `Set-Cookie`; an existing sticky header or cookie is read as usual.
    pub fn compile_request_only(config: CanaryConfig) -> Result<Self, ConfigError> {
        if config.header.is_some() {
            return Err(ConfigError::new(
                "header",
                "is not used here: the cluster specifier picks the cluster itself and writes no header; remove it",
            ));
        }
        if config
            .sticky
            .as_ref()
            .is_some_and(|s| s.set_cookie.is_some())
        {
            return Err(ConfigError::new(
                "sticky.setCookie",
                "needs the response (Set-Cookie), which the cluster specifier never sees; use the canary filter, or a sticky `header`/`cookie` the client already sends",
            ));
        }
        Self::compile(config)
    }

    pub fn backend_names(&self) -> &[String] {
        &self.names
    }

    /// The backend for `req`; None when nothing applies (every weight is 0 and
    /// no rule matched): the request then goes on without the header.
    pub fn select(&self, req: &dyn RequestAttrs, draws: &mut Draws) -> Option<Selection> {
        if let Some(rule) = self.rules.iter().find(|r| r.matches(req)) {
            return Some(Selection {
                backend: rule.backend,
                reason: Reason::Rule,
                set_cookie: None,
            });
        }
        if let Some(sticky) = &self.sticky {
            if let Some(key) = sticky.key(req) {
                let backend = spread::rendezvous(&key, &self.weights, &self.name_hashes)?;
                return Some(Selection {
                    backend,
                    reason: Reason::Sticky,
                    set_cookie: None,
                });
            }
            if let Some(set) = &sticky.set_cookie {
                let key = draws.keys.next_key();
                let backend = spread::rendezvous(&key, &self.weights, &self.name_hashes)?;
                return Some(Selection {
                    backend,
                    reason: Reason::Weight,
                    set_cookie: Some(set.header_value(&key)),
                });
            }
        }
        let backend = spread::weighted_index(&self.weights, draws.spread.next_position())?;
        Some(Selection {
            backend,
            reason: Reason::Weight,
            set_cookie: None,
        })
    }
}

fn compile_backend(b: BackendConfig) -> Result<(String, u32), ConfigError> {
    if b.name.is_empty() {
        return Err(ConfigError::new("name", "is empty"));
    }
    // The name travels as a header value and names an Envoy cluster or route match.
    if let Some(bad) = b.name.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(ConfigError::new(
            "name",
            format!(
                "`{}` contains {bad:?}; use visible ASCII without spaces",
                b.name.escape_debug()
            ),
        ));
    }
    let weight = match b.weight.unwrap_or(1) {
        w if w < 0 => {
            return Err(ConfigError::new(
                "weight",
                format!("{w} is negative; weights are 0 or more"),
            ))
        }
        w if w > MAX_WEIGHT => {
            return Err(ConfigError::new(
                "weight",
                format!("{w} is above the maximum {MAX_WEIGHT}"),
            ))
        }
        // In range 0..=1_000_000.
        w => u32::try_from(w).unwrap_or(0),
    };
    Ok((b.name, weight))
}

fn compile_rule(r: RuleConfig, names: &[String]) -> Result<Rule, ConfigError> {
    let backend = names.iter().position(|n| *n == r.backend).ok_or_else(|| {
        ConfigError::new(
            "backend",
            format!(
                "no backend is named `{}` (backends: {})",
                r.backend,
                names.join(", ")
            ),
        )
    })?;
    let MatchConfig {
        headers,
        query_params,
        cookies,
    } = r.matches;
    let mut conditions = Vec::new();
    for (part, list, field) in [
        (Part::Header, headers, "match.headers"),
        (Part::Query, query_params, "match.queryParams"),
        (Part::Cookie, cookies, "match.cookies"),
    ] {
        for (i, m) in list.into_iter().enumerate() {
            let at = format!("{field}[{i}]");
            conditions.push(compile_condition(part, m).map_err(|e| e.within(&at))?);
        }
    }
    Ok(Rule {
        conditions,
        backend,
    })
}

fn compile_condition(part: Part, m: ValueMatchConfig) -> Result<Condition, ConfigError> {
    let name = match part {
        Part::Header => http_field::header_name("name", &m.name)?,
        Part::Cookie => http_field::cookie_name("name", &m.name)?,
        Part::Query if m.name.is_empty() => return Err(ConfigError::new("name", "is empty")),
        Part::Query => m.name,
    };
    let value = match m.kind.unwrap_or(MatchType::Exact) {
        MatchType::Exact => ValueMatch::Exact(m.value),
        MatchType::RegularExpression => ValueMatch::Regex(
            regex::whole(&m.value, Case::Sensitive)
                .map_err(|why| ConfigError::new("value", why))?,
        ),
    };
    Ok(Condition { part, name, value })
}

fn compile_sticky(s: StickyConfig) -> Result<Sticky, ConfigError> {
    let source = match (s.header, s.cookie) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new("", "give `header` or `cookie`, not both"))
        }
        (Some(h), None) => Some(KeySource::Header(http_field::header_name("header", &h)?)),
        (None, Some(c)) => Some(KeySource::Cookie(http_field::cookie_name("cookie", &c)?)),
        (None, None) => None,
    };
    let set_cookie = s
        .set_cookie
        .map(|c| {
            let name = match (c.name, &source) {
                (Some(n), _) => http_field::cookie_name("setCookie.name", &n)?,
                (None, Some(KeySource::Cookie(n))) => n.clone(),
                (None, _) => {
                    return Err(ConfigError::new(
                        "setCookie.name",
                        "is required unless the sticky key is a cookie",
                    ))
                }
            };
            Ok(SetCookie {
                name,
                max_age: c.max_age,
            })
        })
        .transpose()?;
    if source.is_none() && set_cookie.is_none() {
        return Err(ConfigError::new(
            "",
            "needs `header` or `cookie` (where the sticky key is), or `setCookie`",
        ));
    }
    Ok(Sticky { source, set_cookie })
}

impl Rule {
    fn matches(&self, req: &dyn RequestAttrs) -> bool {
        self.conditions.iter().all(|c| c.holds(req))
    }
}

impl Condition {
    fn holds(&self, req: &dyn RequestAttrs) -> bool {
        let value = match self.part {
            Part::Header => req.header(&self.name).map(str::to_string),
            Part::Query => query_values(req.path(), &self.name).into_iter().next(),
            Part::Cookie => cookie(req, &self.name),
        };
        match (&self.value, value) {
            (_, None) => false,
            (ValueMatch::Exact(want), Some(v)) => *want == v,
            (ValueMatch::Regex(r), Some(v)) => r.is_match(&v),
        }
    }
}

/// The first value of cookie `name`, from whichever `cookie` header has it.
fn cookie(req: &dyn RequestAttrs, name: &str) -> Option<String> {
    request_cookie_values(req.header_values("cookie"), name)
        .into_iter()
        .next()
}

impl Sticky {
    /// The request's sticky key: from the configured header or cookie, else
    /// from the cookie `setCookie` gave it earlier. Empty values are no key.
    fn key(&self, req: &dyn RequestAttrs) -> Option<String> {
        let from_source = match &self.source {
            Some(KeySource::Header(h)) => req.header(h).map(str::to_string),
            Some(KeySource::Cookie(c)) => cookie(req, c),
            None => None,
        };
        from_source
            .or_else(|| self.set_cookie.as_ref().and_then(|s| cookie(req, &s.name)))
            .filter(|k| !k.is_empty())
    }
}

impl SetCookie {
    fn header_value(&self, key: &str) -> String {
        let mut v = format!("{}={key}; Path=/; HttpOnly; SameSite=Lax", self.name);
        if let Some(age) = self.max_age {
            v.push_str(&format!("; Max-Age={age}"));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::from_value;
    use serde_json::{json, Value};
    use std::net::IpAddr;

    fn compile(v: Value) -> Result<CanaryPolicy, ConfigError> {
        from_value::<CanaryConfig>(v).and_then(CanaryPolicy::compile)
    }

    #[derive(Default)]
    struct Req {
        headers: Vec<(&'static str, String)>,
        path: String,
    }

    impl Req {
        fn header(mut self, name: &'static str, value: &str) -> Self {
            self.headers.push((name, value.to_string()));
            self
        }
    }

    impl RequestAttrs for Req {
        fn header_values(&self, name: &str) -> Vec<&str> {
            self.headers
                .iter()
                .filter(|(k, _)| *k == name)
                .map(|(_, v)| v.as_str())
                .collect()
        }
        fn method(&self) -> &str {
            "GET"
        }
        fn path(&self) -> &str {
            if self.path.is_empty() {
                "/"
            } else {
                &self.path
            }
        }
        fn source_ip(&self) -> Option<IpAddr> {
            None
        }
    }

    fn picked(p: &CanaryPolicy, req: &Req, draws: &mut Draws) -> Option<(String, Reason)> {
        p.select(req, draws)
            .map(|s| (p.backend_names()[s.backend].clone(), s.reason))
    }

    #[test]
    fn the_seed_scenario_env_canary_goes_to_canary_everything_else_to_stable() {
        let p = compile(json!({
            "backends": [{"name": "bar-svc"}, {"name": "bar-canary-svc", "weight": 0}],
            "rules": [{"match": {"headers": [{"name": "env", "value": "canary"}]}, "backend": "bar-canary-svc"}]
        }))
        .unwrap();
        assert_eq!(p.header, DEFAULT_HEADER);
        let mut d = Draws::new(7);
        let canary = Req::default().header("env", "canary");
        assert_eq!(
            picked(&p, &canary, &mut d),
            Some(("bar-canary-svc".into(), Reason::Rule))
        );
        for _ in 0..50 {
            let got = picked(&p, &Req::default().header("env", "prod"), &mut d);
            assert_eq!(got, Some(("bar-svc".into(), Reason::Weight)));
        }
    }

    #[test]
    fn rules_match_headers_regex_query_and_cookies_first_match_wins() {
        let p = compile(json!({
            "backends": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
            "rules": [
                {"match": {"headers": [{"name": "X-Tier", "type": "RegularExpression", "value": "gold|plat"}],
                           "queryParams": [{"name": "beta", "value": "1"}]}, "backend": "b"},
                {"match": {"cookies": [{"name": "Canary", "value": "always"}]}, "backend": "c"},
                {"match": {"headers": [{"name": "x-tier", "value": "gold"}]}, "backend": "a"}
            ]
        }))
        .unwrap();
        let mut d = Draws::new(1);
        let both = Req {
            path: "/x?beta=1".into(),
            ..Req::default()
        }
        .header("x-tier", "gold");
        assert_eq!(picked(&p, &both, &mut d).unwrap().0, "b");
        let gold = Req::default().header("x-tier", "gold");
        assert_eq!(
            picked(&p, &gold, &mut d).unwrap(),
            ("a".into(), Reason::Rule),
            "not the whole first match"
        );
        let goldish = Req {
            path: "/?beta=1".into(),
            ..Req::default()
        }
        .header("x-tier", "golden");
        assert_ne!(
            picked(&p, &goldish, &mut d).unwrap().1,
            Reason::Rule,
            "regex matches the whole value"
        );
        let cookie = Req::default().header("cookie", "a=1; Canary=always");
        assert_eq!(picked(&p, &cookie, &mut d).unwrap().0, "c");
        let lower = Req::default().header("cookie", "canary=always");
        assert_ne!(
            picked(&p, &lower, &mut d).unwrap().1,
            Reason::Rule,
            "cookie names are case-sensitive"
        );
    }

    #[test]
    fn sticky_keys_always_get_the_same_backend_and_split_by_weight() {
        let p = compile(json!({
            "backends": [{"name": "v1", "weight": 1}, {"name": "v2", "weight": 2}],
            "sticky": {"header": "x-user-id"}
        }))
        .unwrap();
        let mut d = Draws::new(3);
        let mut on_v2 = 0;
        for u in 0..200 {
            let req = Req::default().header("x-user-id", &format!("user-{u}"));
            let first = picked(&p, &req, &mut d).unwrap();
            assert_eq!(first.1, Reason::Sticky);
            for _ in 0..4 {
                assert_eq!(picked(&p, &req, &mut d).unwrap(), first);
            }
            on_v2 += usize::from(first.0 == "v2");
        }
        // The e2e test's 200 users: within its ±7 points of 2/3.
        let share = on_v2 as f64 / 2.0;
        assert!((share - 66.7).abs() < 7.0, "{share}%");
        // No key: weighted pick.
        assert_eq!(
            picked(&p, &Req::default(), &mut d).unwrap().1,
            Reason::Weight
        );
    }

    #[test]
    fn set_cookie_gives_keyless_requests_a_key_that_sticks() {
        let p = compile(json!({
            "backends": [{"name": "v1"}, {"name": "v2"}],
            "sticky": {"cookie": "tg", "setCookie": {"maxAge": 3600}}
        }))
        .unwrap();
        let mut d = Draws::new(9);
        let first = p.select(&Req::default(), &mut d).unwrap();
        let set = first.set_cookie.clone().unwrap();
        assert!(set.starts_with("tg="), "{set}");
        assert!(
            set.ends_with("; Path=/; HttpOnly; SameSite=Lax; Max-Age=3600"),
            "{set}"
        );
        let key = set["tg=".len()..].split(';').next().unwrap().to_string();
        let back = Req::default().header("cookie", &format!("other=1; tg={key}"));
        for _ in 0..10 {
            let again = p.select(&back, &mut d).unwrap();
            assert_eq!(again.backend, first.backend);
            assert_eq!(again.set_cookie, None);
        }
    }

    #[test]
    fn cookie_rules_and_sticky_cookies_see_every_cookie_header() {
        // HTTP/1 clients may send several Cookie headers; the wanted cookie is
        // in the second one here.
        let two_headers = |wanted: &str| {
            Req::default()
                .header("cookie", "theme=dark; lang=en")
                .header("cookie", wanted)
        };
        let rule = compile(json!({
            "backends": [{"name": "stable"}, {"name": "canary", "weight": 0}],
            "rules": [{"match": {"cookies": [{"name": "beta", "value": "yes"}]}, "backend": "canary"}]
        }))
        .unwrap();
        let mut d = Draws::new(5);
        assert_eq!(
            picked(&rule, &two_headers("beta=yes"), &mut d),
            Some(("canary".into(), Reason::Rule))
        );
        let sticky = compile(json!({
            "backends": [{"name": "v1"}, {"name": "v2"}],
            "sticky": {"cookie": "tg", "setCookie": {}}
        }))
        .unwrap();
        let first = sticky.select(&two_headers("tg=key-1"), &mut d).unwrap();
        assert_eq!(first.reason, Reason::Sticky, "the key was found");
        assert_eq!(first.set_cookie, None, "so no new one is handed out");
        let alone = sticky
            .select(&Req::default().header("cookie", "tg=key-1"), &mut d)
            .unwrap();
        assert_eq!(alone.backend, first.backend, "same key, same backend");
    }

    #[test]
    fn weight_zero_gets_nothing_and_the_weights_hold() {
        let p = compile(json!({"backends": [{"name": "a", "weight": 95}, {"name": "b", "weight": 5}, {"name": "z", "weight": 0}]}))
            .unwrap();
        let mut d = Draws::new(11);
        let mut counts = [0usize; 3];
        for _ in 0..600 {
            counts[p.select(&Req::default(), &mut d).unwrap().backend] += 1;
        }
        assert_eq!(counts[2], 0);
        assert!((counts[1] as i64 - 30).abs() <= 3, "{counts:?}");
    }

    #[test]
    fn all_zero_with_rules_selects_nothing_outside_the_rules() {
        let p = compile(json!({
            "backends": [{"name": "a", "weight": 0}],
            "rules": [{"match": {"headers": [{"name": "x", "value": "1"}]}, "backend": "a"}],
            "sticky": {"header": "x-user-id"}
        }))
        .unwrap();
        let mut d = Draws::new(0);
        assert!(p.select(&Req::default(), &mut d).is_none());
        assert!(p
            .select(&Req::default().header("x-user-id", "u"), &mut d)
            .is_none());
        assert!(p.select(&Req::default().header("x", "1"), &mut d).is_some());
    }

    #[test]
    fn costly_regexes_are_refused_naming_the_field() {
        let costly = json!({"name": "x", "type": "RegularExpression", "value": ".*a.{20000}"});
        for part in ["headers", "queryParams", "cookies"] {
            let e = compile(json!({"backends": [{"name": "a"}],
                                   "rules": [{"match": {part: [costly]}, "backend": "a"}]}))
            .unwrap_err();
            assert_eq!(e.field, format!("rules[0].match.{part}[0].value"), "{e}");
            assert!(e.message.contains("is too large"), "{e}");
        }
    }

    #[test]
    fn request_only_refuses_what_needs_a_response_or_a_header_naming_the_field() {
        let only =
            |v: Value| from_value::<CanaryConfig>(v).and_then(CanaryPolicy::compile_request_only);
        let two = json!([{"name": "a"}, {"name": "b"}]);
        let e =
            only(json!({"backends": two, "sticky": {"cookie": "k", "setCookie": {}}})).unwrap_err();
        assert_eq!(e.field, "sticky.setCookie", "{e}");
        let e = only(json!({"backends": two, "header": "x-b"})).unwrap_err();
        assert_eq!(e.field, "header", "{e}");
        let e = only(json!({"backends": []})).unwrap_err();
        assert_eq!(e.field, "backends", "the usual checks still run: {e}");
        let p = only(json!({
            "backends": two,
            "rules": [{"match": {"headers": [{"name": "env", "value": "b"}]}, "backend": "b"}],
            "sticky": {"cookie": "k"}
        }))
        .unwrap();
        let mut d = Draws::new(2);
        let sticky = Req::default().header("cookie", "k=user-1");
        let first = p.select(&sticky, &mut d).unwrap();
        assert_eq!((first.reason, first.set_cookie), (Reason::Sticky, None));
        assert_eq!(
            picked(&p, &Req::default().header("env", "b"), &mut d),
            Some(("b".into(), Reason::Rule))
        );
    }

    #[test]
    fn bad_configs_name_the_field() {
        let two = json!([{"name": "a"}, {"name": "b"}]);
        let cases = [
            (json!({"backends": []}), "backends"),
            (
                json!({"backends": [{"name": "a", "weight": -1}]}),
                "backends[0].weight",
            ),
            (
                json!({"backends": [{"name": "a", "weight": 2_000_000}]}),
                "backends[0].weight",
            ),
            (
                json!({"backends": [{"name": "a", "weight": 0}, {"name": "b", "weight": 0}]}),
                "backends",
            ),
            (
                json!({"backends": [{"name": "a"}, {"name": "a"}]}),
                "backends[1].name",
            ),
            (json!({"backends": [{"name": "a b"}]}), "backends[0].name"),
            (json!({"backends": [{"name": ""}]}), "backends[0].name"),
            (json!({"backends": two, "header": "x y"}), "header"),
            (json!({"backends": two, "header": ":path"}), "header"),
            (
                json!({"backends": two, "rules": [{"match": {"headers": [{"name": "x", "type": "RegularExpression", "value": "("}]}, "backend": "a"}]}),
                "rules[0].match.headers[0].value",
            ),
            (
                json!({"backends": two, "rules": [{"match": {}, "backend": "c"}]}),
                "rules[0].backend",
            ),
            (
                json!({"backends": two, "rules": [{"match": {"cookies": [{"name": "a;b", "value": "1"}]}, "backend": "a"}]}),
                "rules[0].match.cookies[0].name",
            ),
            (
                json!({"backends": two, "rules": [{"match": {"headers": [{"name": "x", "type": "Prefix", "value": "1"}]}, "backend": "a"}]}),
                "rules[0].match.headers[0].type",
            ),
            (
                json!({"backends": two, "sticky": {"header": "a", "cookie": "b"}}),
                "sticky",
            ),
            (json!({"backends": two, "sticky": {}}), "sticky"),
            (
                json!({"backends": two, "sticky": {"header": "x-user", "setCookie": {}}}),
                "sticky.setCookie.name",
            ),
            (json!({"backends": two, "weights": 1}), "weights"),
        ];
        for (config, field) in cases {
            let e = compile(config.clone()).expect_err(&config.to_string());
            assert_eq!(e.field, field, "{config}: {e}");
        }
        let e = compile(json!({"backends": [{"name": "a", "weight": -3}]})).unwrap_err();
        assert!(e.message.contains("negative"), "{e}");
    }
}
