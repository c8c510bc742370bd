//! Pure checks of what came back against a case, with upstream's rules
//! (conformance/utils/http `CompareRoundTrip`): on a 200 the echo reply must
//! name the expected backend and namespace, and the backend must have seen the
//! request's path and method unless the case says otherwise; on a 3xx the
//! `Location` must match `redirect`. Each check returns every difference at
//! once, as one readable message.

use std::collections::BTreeMap;

use reqwest::Url;

use super::cases::{Case, Distribution, Request};
use super::placeholders::Backend;
use crate::echo::EchoReply;
use crate::roundtrip::{Exchange, Req};

/// Names the echo backend asks for response headers by (see [`crate::echo`]).
const ECHO_SET_HEADER: &str = "X-Echo-Set-Header";

/// The Envoy port Tollgate serves a Gateway listener port on by default
/// (`tollgate serve`/`translate` without `--no-port-remap`): ports below 1024
/// move to port + 10000 so Envoy needs no privileges.
pub fn envoy_port(listener_port: u16) -> u16 {
    if listener_port < 1024 {
        listener_port + 10000
    } else {
        listener_port
    }
}

/// The request to send for `request` (headers in name order, then the echo
/// backend's response-header instruction).
pub fn to_req(request: &Request) -> Req {
    let mut req = Req {
        method: Some(request.method.clone()),
        path: request.path.clone(),
        host: request.host.clone(),
        headers: request
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
    };
    if !request.backend_sets_response_headers.is_empty() {
        let pairs: Vec<String> = request
            .backend_sets_response_headers
            .iter()
            .map(|(name, value)| format!("{name}:{value}"))
            .collect();
        req.headers
            .push((ECHO_SET_HEADER.to_owned(), pairs.join(",")));
    }
    req
}

/// Upstream's generated test case name, unless the case names itself.
pub fn case_name(index: usize, case: &Case) -> String {
    if let Some(name) = &case.name {
        return name.clone();
    }
    let request = &case.request;
    let with_headers = if request.headers.is_empty() {
        ""
    } else {
        " with headers"
    };
    let target = format!(
        "{index} {} request to '{}{}'{with_headers}",
        request.method,
        request.host.as_deref().unwrap_or(""),
        request.path
    );
    match &case.expect.backend {
        Some(backend) => format!("{target} should go to {backend}"),
        None => format!("{target} should receive a {}", expected_status(case)),
    }
}

fn expected_status(case: &Case) -> u16 {
    case.expect.status.unwrap_or(200)
}

/// Every way `ex` differs from `case`; `Ok` when it matches.
pub fn check_case(case: &Case, ex: &Exchange) -> Result<(), String> {
    let mut diffs = Vec::new();
    let expect = &case.expect;
    let status = expected_status(case);
    if ex.status != status {
        diffs.push(format!("status: expected {status}, got {}", ex.status));
    }
    if let Some(response) = &expect.response {
        for (name, want) in &response.headers {
            match ex.header(name) {
                Some(got) if got == *want => {}
                got => diffs.push(format!(
                    "response header {name}: expected {want:?}, got {got:?}"
                )),
            }
        }
        for name in &response.absent_headers {
            if let Some(got) = ex.header(name) {
                diffs.push(format!(
                    "response header {name}: expected absent, got {got:?}"
                ));
            }
        }
    }
    if ex.status == 200 && status == 200 {
        match &ex.echo {
            Some(echo) => check_echo(case, echo, &mut diffs),
            None => diffs.push(format!(
                "expected an echo backend's reply, got the body {:?}",
                ex.body
            )),
        }
    }
    if (300..400).contains(&ex.status) {
        check_redirect(case, ex, &mut diffs);
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("\n"))
    }
}

fn check_echo(case: &Case, echo: &EchoReply, diffs: &mut Vec<String>) {
    let expect = &case.expect;
    if let Some(backend) = expect.backend.as_ref().filter(|b| **b != echo.pod) {
        diffs.push(format!("backend: expected {backend}, got {}", echo.pod));
    }
    if let Some(namespace) = expect.namespace.as_ref().filter(|n| **n != echo.namespace) {
        diffs.push(format!(
            "backend namespace: expected {namespace}, got {}",
            echo.namespace
        ));
    }
    let seen = expect.request.clone().unwrap_or_default();
    let path = seen.path.as_deref().unwrap_or(&case.request.path);
    if echo.path != path {
        diffs.push(format!(
            "backend saw path {:?}, expected {path:?}",
            echo.path
        ));
    }
    let method = seen.method.as_deref().unwrap_or(&case.request.method);
    if echo.method != method {
        diffs.push(format!(
            "backend saw method {}, expected {method}",
            echo.method
        ));
    }
    if let Some(host) = seen.host.as_ref().filter(|h| **h != echo.host) {
        diffs.push(format!(
            "backend saw host {:?}, expected {host:?}",
            echo.host
        ));
    }
    for (name, want) in &seen.headers {
        match echo.header(name) {
            Some(got) if got == *want => {}
            got => diffs.push(format!(
                "backend saw header {name}: {got:?}, expected {want:?}"
            )),
        }
    }
    for name in &seen.absent_headers {
        if let Some(got) = echo.header(name) {
            diffs.push(format!(
                "backend saw header {name}: {got:?}, expected it absent"
            ));
        }
    }
}

fn check_redirect(case: &Case, ex: &Exchange, diffs: &mut Vec<String>) {
    let Some(redirect) = &case.expect.redirect else {
        return;
    };
    let Some(location) = ex.header("location") else {
        diffs.push(format!("{} without a Location header", ex.status));
        return;
    };
    let url = match Url::parse(&location) {
        Ok(url) => url,
        Err(e) => {
            diffs.push(format!("Location {location:?} is not an absolute URL: {e}"));
            return;
        }
    };
    let request_path = case
        .request
        .path
        .split_once('?')
        .map_or(case.request.path.as_str(), |(path, _)| path);
    let want_scheme = redirect
        .scheme
        .as_deref()
        .unwrap_or(case.request.scheme.as_str());
    if url.scheme() != want_scheme {
        diffs.push(format!(
            "redirect scheme: expected {want_scheme}, got {} (Location {location:?})",
            url.scheme()
        ));
    }
    let got_host = url.host_str().unwrap_or("");
    if let Some(host) = redirect.host.as_ref().filter(|h| **h != got_host) {
        diffs.push(format!(
            "redirect host: expected {host}, got {got_host} (Location {location:?})"
        ));
    }
    let got_port = url.port().map(|p| p.to_string()).unwrap_or_default();
    if let Some(port) = redirect.port.as_ref().filter(|p| **p != got_port) {
        diffs.push(format!(
            "redirect port: expected {port:?}, got {got_port:?} (Location {location:?})"
        ));
    }
    let want_path = redirect.path.as_deref().unwrap_or(request_path);
    if url.path() != want_path {
        diffs.push(format!(
            "redirect path: expected {want_path}, got {} (Location {location:?})",
            url.path()
        ));
    }
}

/// Checks `case.expect.mirroredTo`: each mirror backend must have seen a
/// request with the case's path. `seen` is what the mirror backends recorded.
pub fn check_mirrored(case: &Case, seen: &[EchoReply]) -> Result<(), String> {
    let mut diffs = Vec::new();
    for target in &case.expect.mirrored_to {
        let backend = Backend::parse(target)?;
        let hit = seen.iter().any(|reply| {
            reply.namespace == backend.namespace
                && reply.pod == backend.name
                && reply.path == case.request.path
        });
        if !hit {
            diffs.push(format!(
                "mirror {backend} did not receive {}; mirrors saw {:?}",
                case.request.path,
                seen.iter()
                    .map(|r| format!("{}/{} {}", r.namespace, r.pod, r.path))
                    .collect::<Vec<_>>()
            ));
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("\n"))
    }
}

/// Checks how many of `distribution.requests` answers each backend (pod) gave.
pub fn check_distribution(
    distribution: &Distribution,
    counts: &BTreeMap<String, u32>,
) -> Result<(), String> {
    let mut diffs = Vec::new();
    let total: u32 = counts.values().sum();
    if total != distribution.requests {
        diffs.push(format!(
            "{total} answers counted, {} requests expected",
            distribution.requests
        ));
    }
    for (pod, count) in counts {
        if !distribution.shares.contains_key(pod) {
            diffs.push(format!(
                "{pod} answered {count} requests but is not an expected backend"
            ));
        }
    }
    for (backend, want) in &distribution.shares {
        let got_count = counts.get(backend).copied().unwrap_or(0);
        let got = f64::from(got_count) / f64::from(distribution.requests.max(1));
        if *want > 0.0 && got_count == 0 {
            diffs.push(format!("{backend} received no traffic, expected {want}"));
        } else if (got - want).abs() > distribution.tolerance {
            diffs.push(format!(
                "{backend} got {got:.3} of the traffic, expected {want} ± {}",
                distribution.tolerance
            ));
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

    fn case(yaml: &str) -> Case {
        serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("{e}"))
    }

    fn echo(pod: &str, namespace: &str, path: &str, headers: &[(&str, &str)]) -> EchoReply {
        let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in headers {
            seen.entry(name.to_string())
                .or_default()
                .push(value.to_string());
        }
        EchoReply {
            path: path.into(),
            host: "example.com".into(),
            method: "GET".into(),
            proto: "HTTP/1.1".into(),
            headers: seen,
            namespace: namespace.into(),
            pod: pod.into(),
        }
    }

    fn exchange(status: u16, headers: &[(&str, &str)], echo: Option<EchoReply>) -> Exchange {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        let body = echo
            .as_ref()
            .map(|e| serde_json::to_string(e).expect("json"))
            .unwrap_or_else(|| "local reply".into());
        Exchange {
            status,
            headers: map,
            body,
            echo,
        }
    }

    #[test]
    fn a_matching_echo_reply_passes_with_upstream_defaults() {
        let case = case(
            "request: {path: '/?animal=whale', headers: {Version: one}}\nexpect: {backend: infra-backend-v1, namespace: infra}",
        );
        let reply = echo("infra-backend-v1", "infra", "/?animal=whale", &[]);
        assert_eq!(check_case(&case, &exchange(200, &[], Some(reply))), Ok(()));
        assert_eq!(
            case_name(3, &case),
            "3 GET request to '/?animal=whale' with headers should go to infra-backend-v1"
        );
    }

    #[test]
    fn every_difference_is_reported() {
        let case = case(concat!(
            "request: {path: /set}\n",
            "expect:\n",
            "  backend: infra-backend-v1\n",
            "  namespace: infra\n",
            "  request: {headers: {X-Header-Set: set-overwrites-values}, absentHeaders: [X-Header-Remove]}\n",
            "  response: {headers: {X-Out: a}, absentHeaders: [X-Gone]}\n",
        ));
        let reply = echo(
            "infra-backend-v2",
            "other",
            "/rewritten",
            &[("x-header-set", "old"), ("x-header-remove", "still")],
        );
        let err = check_case(
            &case,
            &exchange(200, &[("x-out", "b"), ("x-gone", "here")], Some(reply)),
        );
        assert_eq!(
            err,
            Err([
                "response header X-Out: expected \"a\", got Some(\"b\")",
                "response header X-Gone: expected absent, got \"here\"",
                "backend: expected infra-backend-v1, got infra-backend-v2",
                "backend namespace: expected infra, got other",
                "backend saw path \"/rewritten\", expected \"/set\"",
                "backend saw header X-Header-Set: Some(\"old\"), expected \"set-overwrites-values\"",
                "backend saw header X-Header-Remove: \"still\", expected it absent",
            ]
            .join("\n"))
        );
    }

    #[test]
    fn repeated_headers_compare_joined_with_commas() {
        let case = case(
            "request: {path: /add}\nexpect: {request: {headers: {X-Header-Add: 'some-other-value,add-appends-values'}}}",
        );
        let reply = echo(
            "infra-backend-v1",
            "infra",
            "/add",
            &[
                ("x-header-add", "some-other-value"),
                ("x-header-add", "add-appends-values"),
            ],
        );
        assert_eq!(check_case(&case, &exchange(200, &[], Some(reply))), Ok(()));
    }

    #[test]
    fn a_status_other_than_200_skips_the_backend_checks() {
        let case = case("request: {path: /}\nexpect: {status: 500, backend: web-backend}");
        assert_eq!(check_case(&case, &exchange(500, &[], None)), Ok(()));
        assert_eq!(
            check_case(&case, &exchange(404, &[], None)),
            Err("status: expected 500, got 404".into())
        );
    }

    #[test]
    fn a_200_that_is_not_an_echo_reply_fails() {
        let case = case("request: {path: /}");
        assert_eq!(
            check_case(&case, &exchange(200, &[], None)),
            Err("expected an echo backend's reply, got the body \"local reply\"".into())
        );
    }

    #[test]
    fn redirects_compare_the_location_with_defaults() {
        let case = case(
            "request: {path: /original-prefix/lemon}\nexpect: {status: 302, redirect: {host: example.org, port: '8083', path: /replacement-prefix/lemon}}",
        );
        let good = exchange(
            302,
            &[(
                "location",
                "http://example.org:8083/replacement-prefix/lemon",
            )],
            None,
        );
        assert_eq!(check_case(&case, &good), Ok(()));
        let bad = exchange(302, &[("location", "https://example.com/other")], None);
        assert_eq!(
            check_case(&case, &bad),
            Err([
                "redirect scheme: expected http, got https (Location \"https://example.com/other\")",
                "redirect host: expected example.org, got example.com (Location \"https://example.com/other\")",
                "redirect port: expected \"8083\", got \"\" (Location \"https://example.com/other\")",
                "redirect path: expected /replacement-prefix/lemon, got /other (Location \"https://example.com/other\")",
            ]
            .join("\n"))
        );
        let default_path = case_with_redirect_path_default();
        let kept = exchange(
            301,
            &[("location", "http://example.org/host-and-status")],
            None,
        );
        assert_eq!(check_case(&default_path, &kept), Ok(()));
        assert_eq!(
            check_case(&default_path, &exchange(301, &[], None)),
            Err("301 without a Location header".into())
        );
    }

    fn case_with_redirect_path_default() -> Case {
        case("request: {path: '/host-and-status?x=1'}\nexpect: {status: 301, redirect: {host: example.org}}")
    }

    #[test]
    fn backend_set_response_headers_become_the_echo_instruction() {
        let case = case(
            "request: {path: /set, method: POST, host: a.example, headers: {A: '1'}, backendSetsResponseHeaders: {X-B: '2', X-A: '1'}}",
        );
        let req = to_req(&case.request);
        assert_eq!(req.method.as_deref(), Some("POST"));
        assert_eq!(req.host.as_deref(), Some("a.example"));
        assert_eq!(
            req.headers,
            [
                ("A".to_owned(), "1".to_owned()),
                ("X-Echo-Set-Header".to_owned(), "X-A:1,X-B:2".to_owned())
            ]
        );
    }

    #[test]
    fn listener_ports_below_1024_move_up_by_10000() {
        assert_eq!(
            (envoy_port(80), envoy_port(443), envoy_port(8080)),
            (10080, 10443, 8080)
        );
    }

    #[test]
    fn mirrors_must_have_seen_the_path() {
        let case = case("request: {path: /mirror}\nexpect: {mirroredTo: [infra/infra-backend-v2]}");
        let seen = [echo("infra-backend-v2", "infra", "/mirror", &[])];
        assert_eq!(check_mirrored(&case, &seen), Ok(()));
        let elsewhere = [echo("infra-backend-v2", "infra", "/other", &[])];
        assert_eq!(
            check_mirrored(&case, &elsewhere),
            Err("mirror infra/infra-backend-v2 did not receive /mirror; mirrors saw [\"infra/infra-backend-v2 /other\"]".into())
        );
    }

    fn distribution() -> Distribution {
        serde_yaml_ng::from_str(
            "request: {path: /}\nrequests: 500\nshares: {v1: 0.7, v2: 0.3, v3: 0.0}\ntolerance: 0.05",
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_distribution_within_tolerance_passes() {
        let counts = BTreeMap::from([("v1".to_owned(), 340), ("v2".to_owned(), 160)]);
        assert_eq!(check_distribution(&distribution(), &counts), Ok(()));
    }

    #[test]
    fn a_skewed_distribution_names_each_backend() {
        let counts = BTreeMap::from([
            ("v1".to_owned(), 480),
            ("v3".to_owned(), 10),
            ("stray".to_owned(), 10),
        ]);
        assert_eq!(
            check_distribution(&distribution(), &counts),
            Err([
                "stray answered 10 requests but is not an expected backend",
                "v1 got 0.960 of the traffic, expected 0.7 ± 0.05",
                "v2 received no traffic, expected 0.3",
            ]
            .join("\n"))
        );
    }
}
