//! HTTPRoute's `CORS` filter → Envoy's own CORS filter
//! (`envoy.filters.http.cors`, first in the chain of a listener that serves
//! such a route, so a preflight is answered before JWT authentication asks it
//! for a token) with the rule's policy as the route's `typed_per_filter_config`.
//!
//! The CRD's checks are made here, as in file mode nothing else makes them:
//! an origin is `*` or `http(s)://host[:port]` with at most a leading `*.`
//! label, a method is one of RFC 9110's or `*`, a header is an HTTP token,
//! `*` stands alone, at most 64 entries (9 methods), `maxAge` at least 1.
//!
//! How the spec's choices map (docs/controller.md, "CORS"):
//! - origins: exact matches; `*` and `*.` hosts become an anchored RE2 regex
//!   (`*` greedy to the left, across dots, as the spec says); Envoy answers a
//!   matching request with its own `Origin` in `Access-Control-Allow-Origin`,
//!   which the spec allows for `*` too, and must do with credentials;
//! - `allowMethods: [*]` with `allowCredentials: true` may not be answered
//!   with `*`: the nine methods are listed instead; `allowHeaders: [*]` or
//!   `exposeHeaders: [*]` with credentials would need the request's headers
//!   echoed, which Envoy's filter does not do: that rule is refused
//!   (`UnsupportedValue`) rather than answered against the spec;
//! - a preflight from an origin not allowed is answered 200 without CORS
//!   headers (Envoy's `forward_not_matching_preflights: false`), the first
//!   behaviour the spec allows, and never reaches the backend;
//! - `maxAge` defaults to 5 seconds.

use envoy_types::pb::envoy::extensions::filters::http::cors::v3::{Cors, CorsPolicy};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpFilter,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    string_matcher::MatchPattern, RegexMatcher, StringMatcher,
};
use envoy_types::pb::google::protobuf::{Any, BoolValue};

use super::envoy::any;
use super::invalid_rules::RuleError;
use super::matches::{is_header_name, METHODS};
use crate::resources::http_filters::CorsFilter;

/// The filter's name in the chain and in `typed_per_filter_config`.
pub const FILTER: &str = "envoy.filters.http.cors";

/// The filter in a listener's chain; its policies are per route.
pub fn http_filter() -> HttpFilter {
    HttpFilter {
        name: FILTER.to_owned(),
        config_type: Some(http_filter::ConfigType::TypedConfig(any(&Cors::default()))),
        ..HttpFilter::default()
    }
}

/// A rule's per-route entry.
pub fn per_route(policy: &CorsPolicy) -> Any {
    any(policy)
}

/// The policy for filter `f` (at `at`, e.g. `filters[2].cors`), once the
/// CRD's checks pass.
pub fn policy(f: &CorsFilter, at: &str) -> Result<CorsPolicy, RuleError> {
    let bad = |field: &str, why: String| RuleError::unsupported(format!("{at}.{field}: {why}"));
    list("allowOrigins", &f.allow_origins, 64).map_err(|e| bad("allowOrigins", e))?;
    list("allowMethods", &f.allow_methods, 9).map_err(|e| bad("allowMethods", e))?;
    list("allowHeaders", &f.allow_headers, 64).map_err(|e| bad("allowHeaders", e))?;
    list("exposeHeaders", &f.expose_headers, 64).map_err(|e| bad("exposeHeaders", e))?;
    let mut origins = Vec::with_capacity(f.allow_origins.len());
    for (i, origin) in f.allow_origins.iter().enumerate() {
        match origin_matcher(origin) {
            Some(m) => origins.push(m),
            None => {
                return Err(bad(
                    &format!("allowOrigins[{i}]"),
                    format!(
                    "{origin:?} is not `*` or http(s)://host[:port] (a `*.` first label at most)"
                ),
                ))
            }
        }
    }
    for (i, m) in f.allow_methods.iter().enumerate() {
        if m != "*" && !METHODS.contains(&m.as_str()) {
            return Err(bad(
                &format!("allowMethods[{i}]"),
                format!("{m:?} is not one of {} or *", METHODS.join(", ")),
            ));
        }
    }
    for (field, headers) in [
        ("allowHeaders", &f.allow_headers),
        ("exposeHeaders", &f.expose_headers),
    ] {
        for (i, h) in headers.iter().enumerate() {
            if !is_header_name(h) {
                return Err(bad(
                    &format!("{field}[{i}]"),
                    format!("{h:?} is not an HTTP header name"),
                ));
            }
        }
    }
    let max_age = f.max_age.unwrap_or(5);
    if max_age < 1 || max_age > i64::from(i32::MAX) {
        return Err(bad(
            "maxAge",
            format!("{max_age} is not between 1 and 2147483647"),
        ));
    }
    let credentials = f.allow_credentials.unwrap_or(false);
    for (field, headers) in [
        ("allowHeaders", &f.allow_headers),
        ("exposeHeaders", &f.expose_headers),
    ] {
        if credentials && headers.iter().any(|h| h == "*") {
            return Err(bad(
                field,
                "`*` with allowCredentials is not supported: Envoy would answer `*`, which the spec forbids with credentials; list the headers".to_owned(),
            ));
        }
    }
    let methods = if credentials && f.allow_methods.iter().any(|m| m == "*") {
        METHODS.join(", ")
    } else {
        f.allow_methods.join(", ")
    };
    Ok(CorsPolicy {
        allow_origin_string_match: origins,
        allow_methods: methods,
        allow_headers: f.allow_headers.join(", "),
        expose_headers: f.expose_headers.join(", "),
        max_age: max_age.to_string(),
        allow_credentials: credentials.then_some(BoolValue { value: true }),
        forward_not_matching_preflights: Some(BoolValue { value: false }),
        ..CorsPolicy::default()
    })
}

/// At most `max` entries, no duplicate, and `*` only alone.
fn list(field: &str, values: &[String], max: usize) -> Result<(), String> {
    if values.len() > max {
        return Err(format!("{} entries, more than {max}", values.len()));
    }
    if values.len() > 1 && values.iter().any(|v| v == "*") {
        return Err(format!("{field} cannot contain '*' alongside other values"));
    }
    if let Some(d) = values
        .iter()
        .enumerate()
        .find(|(i, v)| values[..*i].contains(v))
    {
        return Err(format!("{:?} is listed twice", d.1));
    }
    Ok(())
}

/// `*`, or `http(s)://[*.]label(.label)*[:port]` as the CRD's pattern reads.
fn origin_matcher(origin: &str) -> Option<StringMatcher> {
    let pattern = |p| {
        Some(StringMatcher {
            match_pattern: Some(p),
            ..StringMatcher::default()
        })
    };
    if origin == "*" {
        return pattern(MatchPattern::SafeRegex(regex(".*")));
    }
    if origin.len() > 253 {
        return None;
    }
    let (scheme, rest) = origin.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    let (wildcard, name) = match host.strip_prefix('*') {
        Some("") => (true, ""),
        Some(name) => (true, name.strip_prefix('.')?),
        None => (false, host),
    };
    let label_ok =
        |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    // `*` alone as the host, or labels after `*.` or in a plain host.
    let host_ok = (wildcard && name.is_empty()) || name.split('.').all(label_ok);
    if !host_ok {
        return None;
    }
    if !wildcard {
        return pattern(MatchPattern::Exact(origin.to_owned()));
    }
    // `*` takes any number of labels to its left, dots included; the rest
    // is literal (a port in the origin is matched as written).
    let literal = origin.replacen('*', "\u{0}", 1);
    let escaped = regex_syntax::escape(&literal).replace('\u{0}', ".*");
    pattern(MatchPattern::SafeRegex(regex(&escaped)))
}

fn regex(re: &str) -> RegexMatcher {
    RegexMatcher {
        regex: re.to_owned(),
        ..RegexMatcher::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(yaml: &str) -> CorsFilter {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn origin(m: &StringMatcher) -> (&str, &str) {
        match m.match_pattern.as_ref().unwrap() {
            MatchPattern::Exact(v) => ("exact", v),
            MatchPattern::SafeRegex(r) => ("regex", &r.regex),
            _ => panic!("unexpected matcher"),
        }
    }

    #[test]
    fn origins_are_exact_or_anchored_wildcards() {
        let p = policy(
            &cors(
                "allowOrigins: [https://www.example.com, 'https://*.example.com:8443', 'http://*']",
            ),
            "filters[0].cors",
        )
        .unwrap();
        let got: Vec<_> = p.allow_origin_string_match.iter().map(origin).collect();
        assert_eq!(
            got,
            [
                ("exact", "https://www.example.com"),
                ("regex", r"https://.*\.example\.com:8443"),
                ("regex", "http://.*"),
            ]
        );
        let any = policy(&cors("allowOrigins: ['*']"), "c").unwrap();
        assert_eq!(origin(&any.allow_origin_string_match[0]), ("regex", ".*"));
        assert_eq!(any.max_age, "5");
        assert_eq!(any.allow_credentials, None);
    }

    #[test]
    fn a_star_with_credentials_lists_every_method_instead() {
        let p = policy(
            &cors("allowOrigins: ['*']\nallowCredentials: true\nallowMethods: ['*']\nallowHeaders: [x-a, X-B]\nexposeHeaders: [x-c]\nmaxAge: 60"),
            "c",
        )
        .unwrap();
        assert_eq!(p.allow_methods, METHODS.join(", "));
        assert_eq!(p.allow_headers, "x-a, X-B");
        assert_eq!(p.expose_headers, "x-c");
        assert_eq!(p.max_age, "60");
        assert_eq!(p.allow_credentials, Some(BoolValue { value: true }));
        let without = policy(&cors("allowMethods: ['*']"), "c").unwrap();
        assert_eq!(without.allow_methods, "*");
    }

    #[test]
    fn what_the_crd_refuses_names_its_field() {
        let problem = |yaml: &str| policy(&cors(yaml), "filters[0].cors").unwrap_err().message;
        assert!(
            problem("allowOrigins: [example.com]").starts_with("filters[0].cors.allowOrigins[0]: ")
        );
        assert!(problem("allowOrigins: ['ftp://example.com']").contains("allowOrigins[0]"));
        assert!(problem("allowOrigins: ['https://a.*.example.com']").contains("allowOrigins[0]"));
        assert!(problem("allowOrigins: ['https://example.com:']").contains("allowOrigins[0]"));
        assert!(problem("allowOrigins: ['*', 'https://a.com']").contains("alongside"));
        assert!(problem("allowMethods: [FETCH]").starts_with("filters[0].cors.allowMethods[0]"));
        assert!(problem("allowMethods: [GET, GET]").contains("twice"));
        assert!(problem("allowHeaders: ['x a']").starts_with("filters[0].cors.allowHeaders[0]"));
        assert!(problem("exposeHeaders: [':path']").starts_with("filters[0].cors.exposeHeaders[0]"));
        assert!(problem("maxAge: 0").starts_with("filters[0].cors.maxAge"));
        assert!(problem("allowCredentials: true\nallowHeaders: ['*']")
            .starts_with("filters[0].cors.allowHeaders: `*` with allowCredentials"));
        assert!(problem("allowCredentials: true\nexposeHeaders: ['*']")
            .starts_with("filters[0].cors.exposeHeaders"));
        assert!(policy(&cors("allowHeaders: ['*']\nexposeHeaders: ['*']"), "c").is_ok());
        let many: Vec<String> = (0..65).map(|i| format!("x-{i}")).collect();
        assert!(problem(&format!("allowHeaders: [{}]", many.join(", "))).contains("more than 64"));
    }
}
