//! The order of Envoy routes in a virtual host. Envoy takes the first route
//! that matches, so the list must be sorted by Gateway API's precedence:
//! exact path > longest prefix > method > most headers > most query params >
//! oldest route > route `namespace/name` > rule and match position.
//!
//! RegularExpression paths are "implementation-specific" in the spec; like
//! Envoy Gateway they go after Exact and before PathPrefix, longest first, so a
//! catch-all prefix `/` never shadows a regex.

use std::cmp::Reverse;

use crate::resources::{HttpRouteMatch, PathMatchType};

/// What precedence compares for one match; `Ord` is "comes first in Envoy".
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Precedence<'a> {
    path_kind: Reverse<u8>,
    path_len: Reverse<usize>,
    has_method: Reverse<bool>,
    headers: Reverse<usize>,
    query_params: Reverse<usize>,
    /// `creationTimestamp` when the route has one (routes without sort after
    /// those with), then load order: file mode's "oldest".
    age: (bool, Option<&'a str>, usize),
    route: (&'a str, &'a str),
    position: (usize, usize),
}

/// Where the match sits: its route's identity and age, rule and match index.
pub struct MatchOrigin<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub creation_timestamp: Option<&'a str>,
    pub load_order: usize,
    pub rule: usize,
    pub index: usize,
}

impl<'a> Precedence<'a> {
    pub fn of(m: &HttpRouteMatch, origin: &MatchOrigin<'a>) -> Self {
        let (kind, len) = match &m.path {
            None => (1, 0), // the default PathPrefix `/`
            Some(p) => match p.kind {
                PathMatchType::Exact => (3, p.value.len()),
                PathMatchType::RegularExpression => (2, p.value.len()),
                // `/v1/` and `/v1` are the same match (see `matches::path_prefix`),
                // so they rank the same and age decides.
                PathMatchType::PathPrefix => (1, p.value.trim_end_matches('/').len()),
            },
        };
        Self {
            path_kind: Reverse(kind),
            path_len: Reverse(len),
            has_method: Reverse(m.method.is_some()),
            headers: Reverse(m.headers.len()),
            query_params: Reverse(m.query_params.len()),
            age: (
                origin.creation_timestamp.is_none(),
                origin.creation_timestamp,
                origin.load_order,
            ),
            route: (origin.namespace, origin.name),
            position: (origin.rule, origin.index),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::gateway_api::{PathMatch, ValueMatch, ValueMatchType};

    fn path(kind: PathMatchType, value: &str) -> HttpRouteMatch {
        HttpRouteMatch {
            path: Some(PathMatch {
                kind,
                value: value.to_owned(),
            }),
            ..HttpRouteMatch::default()
        }
    }

    fn origin(name: &'static str, ts: Option<&'static str>, order: usize) -> MatchOrigin<'static> {
        MatchOrigin {
            namespace: "default",
            name,
            creation_timestamp: ts,
            load_order: order,
            rule: 0,
            index: 0,
        }
    }

    #[test]
    fn exact_then_regex_then_longest_prefix() {
        let o = origin("r", None, 0);
        let mut v = [
            Precedence::of(&path(PathMatchType::PathPrefix, "/"), &o),
            Precedence::of(&path(PathMatchType::PathPrefix, "/foo/bar"), &o),
            Precedence::of(&path(PathMatchType::RegularExpression, "/.*"), &o),
            Precedence::of(&path(PathMatchType::Exact, "/foo"), &o),
            Precedence::of(&path(PathMatchType::PathPrefix, "/foo"), &o),
        ];
        let expected = [
            v[3].clone(),
            v[2].clone(),
            v[1].clone(),
            v[4].clone(),
            v[0].clone(),
        ];
        v.sort();
        assert_eq!(v, expected);
    }

    #[test]
    fn a_trailing_slash_does_not_lengthen_a_prefix() {
        let mut v = [
            Precedence::of(
                &path(PathMatchType::PathPrefix, "/v1/"),
                &origin("young", None, 1),
            ),
            Precedence::of(
                &path(PathMatchType::PathPrefix, "/v1"),
                &origin("old", None, 0),
            ),
        ];
        let expected = [v[1].clone(), v[0].clone()];
        v.sort();
        assert_eq!(v, expected);
    }

    #[test]
    fn method_then_headers_then_query_params() {
        let o = origin("r", None, 0);
        let header = ValueMatch {
            kind: ValueMatchType::Exact,
            name: "h".to_owned(),
            value: "v".to_owned(),
        };
        let plain = path(PathMatchType::PathPrefix, "/");
        let method = HttpRouteMatch {
            method: Some("GET".to_owned()),
            ..plain.clone()
        };
        let two_headers = HttpRouteMatch {
            headers: vec![header.clone(), header.clone()],
            ..plain.clone()
        };
        let one_header_one_query = HttpRouteMatch {
            headers: vec![header.clone()],
            query_params: vec![header],
            ..plain.clone()
        };
        let mut v = [
            Precedence::of(&plain, &o),
            Precedence::of(&one_header_one_query, &o),
            Precedence::of(&two_headers, &o),
            Precedence::of(&method, &o),
        ];
        let expected = [v[3].clone(), v[2].clone(), v[1].clone(), v[0].clone()];
        v.sort();
        assert_eq!(v, expected);
    }

    #[test]
    fn oldest_then_name_breaks_ties() {
        let m = path(PathMatchType::PathPrefix, "/");
        let mut v = [
            Precedence::of(&m, &origin("a", None, 0)),
            Precedence::of(&m, &origin("c", Some("2024-01-02T00:00:00Z"), 5)),
            Precedence::of(&m, &origin("b", Some("2024-01-01T00:00:00Z"), 9)),
            Precedence::of(&m, &origin("a", None, 1)),
        ];
        let expected = [v[2].clone(), v[1].clone(), v[0].clone(), v[3].clone()];
        v.sort();
        assert_eq!(v, expected);
    }
}
