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
