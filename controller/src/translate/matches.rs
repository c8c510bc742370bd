//! One HTTPRoute match → one Envoy `RouteMatch`.

use envoy_types::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, query_parameter_matcher::QueryParameterMatchSpecifier,
    route_match::PathSpecifier, HeaderMatcher, QueryParameterMatcher, RouteMatch,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    string_matcher::MatchPattern, RegexMatcher, StringMatcher,
};

use crate::resources::{HttpRouteMatch, PathMatchType, ValueMatch, ValueMatchType};

pub fn route_match(m: &HttpRouteMatch) -> RouteMatch {
    let path = match &m.path {
        None => path_prefix("/"),
        Some(p) => match p.kind {
            PathMatchType::Exact => PathSpecifier::Path(p.value.clone()),
            PathMatchType::PathPrefix => path_prefix(&p.value),
            PathMatchType::RegularExpression => PathSpecifier::SafeRegex(regex(&p.value)),
        },
    };
    let mut headers: Vec<HeaderMatcher> = first_per_name(&m.headers, true)
        .into_iter()
        .map(|h| HeaderMatcher {
            name: h.name.to_ascii_lowercase(),
            header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(string_match(h))),
            ..HeaderMatcher::default()
        })
        .collect();
    if let Some(method) = &m.method {
        headers.push(HeaderMatcher {
            name: ":method".to_owned(),
            header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(StringMatcher {
                match_pattern: Some(MatchPattern::Exact(method.clone())),
                ..StringMatcher::default()
            })),
            ..HeaderMatcher::default()
        });
    }
    let query_parameters = first_per_name(&m.query_params, false)
        .into_iter()
        .map(|q| QueryParameterMatcher {
            name: q.name.clone(),
            query_parameter_match_specifier: Some(QueryParameterMatchSpecifier::StringMatch(
                string_match(q),
            )),
        })
        .collect();
    RouteMatch {
        path_specifier: Some(path),
        headers,
        query_parameters,
        ..RouteMatch::default()
    }
}

/// The methods a match may name (the CRD's enum).
pub const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// Checks what the CRD checks of a match (an Exact or PathPrefix path's
/// CEL rules, header and query parameter names, the method) and its regular
/// expressions, so a bad one costs its route (its parent's status says why)
/// instead of Envoy refusing the listener's whole route configuration or a
/// route that can never match. Envoy's RE2 and Rust's `regex` share their
/// syntax and both refuse look-around and backreferences; the error names the
/// field under the match, e.g. `path.value: …`. What RE2 alone refuses (more
/// than 1,000 repetitions, a program over Envoy's size limit) still reaches
/// Envoy, whose NACK keeps the previous configuration serving.
pub fn check(m: &HttpRouteMatch) -> Result<(), String> {
    if let Some(p) = &m.path {
        if p.kind == PathMatchType::RegularExpression {
            check_regex(&p.value).map_err(|e| format!("path.value: {e}"))?;
        } else {
            check_path(&p.value).map_err(|e| format!("path.value: {:?} {e}", p.value))?;
        }
    }
    if let Some(method) = &m.method {
        if !METHODS.contains(&method.as_str()) {
            return Err(format!(
                "method: {method:?} is not one of {}",
                METHODS.join(", ")
            ));
        }
    }
    for (field, values) in [("headers", &m.headers), ("queryParams", &m.query_params)] {
        for (i, v) in values.iter().enumerate() {
            if !is_header_name(&v.name) {
                return Err(format!(
                    "{field}[{i}].name: {:?} is not an HTTP token (1 to 256 of A-Z a-z 0-9 !#$%&'*+-.^_`|~)",
                    v.name
                ));
            }
            if v.kind == ValueMatchType::RegularExpression {
                check_regex(&v.value).map_err(|e| format!("{field}[{i}].value: {e}"))?;
            }
        }
    }
    Ok(())
}

/// An HTTP token (RFC 9110) of at most 256 characters: the CRD's
/// HTTPHeaderName (also a query parameter name), which has no room for `:`
/// pseudo-headers or spaces.
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The CRD's CEL rules on an Exact or PathPrefix value: starts with `/`, at
/// most 1024 characters of RFC 3986 path characters or `%XX`, and no `//`,
/// `/./`, `/../`, `%2f`, `%2F`, nor a trailing `/.` or `/..`.
fn check_path(value: &str) -> Result<(), String> {
    if !value.starts_with('/') {
        return Err("must be an absolute path (start with /)".to_owned());
    }
    if value.len() > 1024 {
        return Err("is longer than 1024 characters".to_owned());
    }
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).unwrap_or_default();
            if hex.len() != 2 || !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err("has a % not followed by two hex digits".to_owned());
            }
            i += 3;
            continue;
        }
        if !(b.is_ascii_alphanumeric() || b"-/._~!$&'()*+,;=:@".contains(&b)) {
            return Err(format!(
                "has {:?}, which a path match may not (no `?`, `#` or spaces)",
                char::from(b)
            ));
        }
        i += 1;
    }
    for bad in ["//", "/./", "/../", "%2f", "%2F"] {
        if value.contains(bad) {
            return Err(format!("must not contain {bad:?}"));
        }
    }
    if value.ends_with("/.") || value.ends_with("/..") {
        return Err("must not end with /. or /..".to_owned());
    }
    Ok(())
}

/// Whether RE2 (Envoy's engine) would accept `value`, as far as Rust's
/// regex syntax (a close sibling) tells.
pub fn check_regex(value: &str) -> Result<(), String> {
    match regex_syntax::Parser::new().parse(value) {
        Ok(_) => Ok(()),
        Err(regex_syntax::Error::Parse(e)) => Err(format!(
            "{:?} is not a valid regular expression: {}",
            value,
            e.kind()
        )),
        Err(regex_syntax::Error::Translate(e)) => Err(format!(
            "{:?} is not a valid regular expression: {}",
            value,
            e.kind()
        )),
        Err(e) => Err(format!("{value:?} is not a valid regular expression: {e}")),
    }
}

/// Segment-aware PathPrefix: `/foo` (or `/foo/`) matches `/foo` and
/// `/foo/bar`, not `/foobar`, which is exactly Envoy's `path_separated_prefix`.
/// That field refuses `/` and a trailing slash, so `/` stays a plain prefix
/// and a trailing slash is dropped (the spec ignores it too).
pub fn path_prefix(value: &str) -> PathSpecifier {
    let trimmed = value.trim_end_matches('/');
    if trimmed.is_empty() {
        PathSpecifier::Prefix("/".to_owned())
    } else {
        PathSpecifier::PathSeparatedPrefix(trimmed.to_owned())
    }
}

/// The spec: with several matches on one name only the first counts. Header
/// names compare case-insensitively, query parameter names exactly.
fn first_per_name(matches: &[ValueMatch], ignore_case: bool) -> Vec<&ValueMatch> {
    let mut seen: Vec<&ValueMatch> = Vec::new();
    for m in matches {
        let dup = seen.iter().any(|s| {
            if ignore_case {
                s.name.eq_ignore_ascii_case(&m.name)
            } else {
                s.name == m.name
            }
        });
        if !dup {
            seen.push(m);
        }
    }
    seen
}

fn string_match(m: &ValueMatch) -> StringMatcher {
    let pattern = match m.kind {
        ValueMatchType::Exact => MatchPattern::Exact(m.value.clone()),
        ValueMatchType::RegularExpression => MatchPattern::SafeRegex(regex(&m.value)),
    };
    StringMatcher {
        match_pattern: Some(pattern),
        ..StringMatcher::default()
    }
}

fn regex(value: &str) -> RegexMatcher {
    RegexMatcher {
        regex: value.to_owned(),
        ..RegexMatcher::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regex_re2_refuses_is_caught_with_its_field() {
        let m: HttpRouteMatch = serde_yaml_ng::from_str(
            "path: {type: RegularExpression, value: \"/(?=x)\"}\nheaders: [{type: RegularExpression, name: a, value: \"(a)\\\\1\"}]",
        )
        .unwrap();
        let e = check(&m).unwrap_err();
        assert!(
            e.starts_with("path.value: \"/(?=x)\" is not a valid regular expression: look-around"),
            "{e}"
        );
        let mut m = m;
        m.path = None;
        let e = check(&m).unwrap_err();
        assert!(e.starts_with("headers[0].value: "), "{e}");
        let fine: HttpRouteMatch = serde_yaml_ng::from_str(
            "path: {type: RegularExpression, value: \"/v[0-9]+/.*\"}\nqueryParams: [{type: RegularExpression, name: q, value: \"^(a|b)$\"}]",
        )
        .unwrap();
        assert_eq!(check(&fine), Ok(()));
    }

    #[test]
    fn what_the_crd_refuses_in_a_match_names_its_field() {
        let problem = |yaml: &str| {
            let m: HttpRouteMatch = serde_yaml_ng::from_str(yaml).unwrap();
            check(&m).unwrap_err()
        };
        assert!(problem("path: {value: foo}")
            .starts_with("path.value: \"foo\" must be an absolute path"));
        assert!(problem("path: {type: Exact, value: /a?b}").contains("'?'"));
        assert!(problem("path: {value: '/a#b'}").contains("'#'"));
        assert!(problem("path: {value: /a//b}").contains("\"//\""));
        assert!(problem("path: {value: /a/../b}").contains("/../"));
        assert!(problem("path: {value: /a%2Fb}").contains("%2F"));
        assert!(problem("path: {value: /a/..}").contains("must not end"));
        assert!(problem("path: {value: /a%zz}").contains("two hex digits"));
        assert!(problem("method: get").starts_with("method: \"get\" is not one of GET"));
        assert!(problem("headers: [{name: '', value: a}]").starts_with("headers[0].name"));
        assert!(problem("headers: [{name: ':path', value: /}]").starts_with("headers[0].name"));
        assert!(
            problem("queryParams: [{name: 'a b', value: c}]").starts_with("queryParams[0].name")
        );
        for good in [
            "path: {value: /}",
            "path: {type: Exact, value: \"/a/b.c/~d/%41:@$&'()*+,;=-_\"}",
            "method: PATCH\nheaders: [{name: X-Env, value: canary}]\nqueryParams: [{name: q, value: ''}]",
        ] {
            let m: HttpRouteMatch = serde_yaml_ng::from_str(good).unwrap();
            assert_eq!(check(&m), Ok(()), "{good}");
        }
    }

    #[test]
    fn prefix_is_segment_aware_and_ignores_a_trailing_slash() {
        assert_eq!(path_prefix("/"), PathSpecifier::Prefix("/".to_owned()));
        assert_eq!(
            path_prefix("/foo"),
            PathSpecifier::PathSeparatedPrefix("/foo".to_owned())
        );
        assert_eq!(
            path_prefix("/foo/"),
            PathSpecifier::PathSeparatedPrefix("/foo".to_owned())
        );
    }

    #[test]
    fn only_the_first_match_per_header_name_counts() {
        let m = |name: &str, value: &str| ValueMatch {
            kind: ValueMatchType::Exact,
            name: name.to_owned(),
            value: value.to_owned(),
        };
        let route = route_match(&HttpRouteMatch {
            headers: vec![m("Env", "canary"), m("env", "stable"), m("x", "1")],
            method: Some("POST".to_owned()),
            ..HttpRouteMatch::default()
        });
        let names: Vec<_> = route.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, vec!["env", "x", ":method"]);
    }
}
