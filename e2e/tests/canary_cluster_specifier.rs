//! Canary selection as a cluster specifier (`libtollgate.so`, `specifier_name:
//! canary`) in a real Envoy (two workers) in front of echo backends named by
//! pod: the route's cluster is picked while Envoy resolves the route, so no
//! header is written. Weights, rules (header, query, a cookie in a second
//! `Cookie` header), stickiness by an existing cookie, what happens when
//! nothing applies, the counters, and configs it cannot honour refused naming
//! the field. Every cluster specifier callback `abi.rs` declares runs here.

use std::collections::{HashMap, HashSet};

use e2e::echo::Echo;
use e2e::envoy::Envoy;
use e2e::envoy_config::{cluster, dynamic_module_cluster_specifier, Listener, LISTENER};
use e2e::roundtrip::{client, send, Exchange, Req};
use e2e::split::{assert_share, share, weights};
use e2e::stage::refused_log;
use serde_json::{json, Value};

const PODS: [&str; 3] = ["stable", "canary", "dark"];
/// The canary filter's header: the cluster specifier never writes it.
const HEADER: &str = "x-tollgate-backend";
/// Prometheus names of the counters (the canary filter's names).
const SELECTED: &str = "envoy_dynamicmodulescustom_tollgate_canary_selected";
const UNSELECTED: &str = "envoy_dynamicmodulescustom_tollgate_canary_unselected";

struct Specifier {
    envoy: Envoy,
    base: String,
    http: reqwest::Client,
    backends: Vec<Echo>,
}

/// The one route: `/` with the specifier; a missing cluster answers 404 so
/// that "no decision" is told apart from a backend failing.
fn listener(config: &Value, clusters: Vec<Value>) -> Listener {
    let mut action = dynamic_module_cluster_specifier("canary", config);
    action["cluster_not_found_response_code"] = json!("NOT_FOUND");
    Listener {
        routes: vec![json!({"name": "split", "match": {"prefix": "/"}, "route": action})],
        clusters,
        ..Listener::default()
    }
}

impl Specifier {
    async fn start(config: &Value) -> Specifier {
        let mut backends = Vec::new();
        let mut clusters = Vec::new();
        for pod in PODS {
            let echo = Echo::start(pod).await.expect("echo");
            clusters.push(cluster(pod, echo.addr()));
            backends.push(echo);
        }
        let envoy = Envoy::start(&listener(config, clusters).bootstrap()).await;
        let base = envoy.listener_url(LISTENER).await;
        Specifier {
            envoy,
            base,
            http: client(),
            backends,
        }
    }

    async fn send(&self, req: &Req) -> Exchange {
        send(&self.http, &self.base, req).await.expect("send")
    }

    /// The pod that answered; panics on anything but an echo reply, or if
    /// the request reached it carrying the filter's selection header.
    async fn pod(&self, req: &Req) -> String {
        let ex = self.send(req).await;
        assert_eq!(ex.status, 200, "{}", ex.body);
        let echo = ex.echo.expect("echo reply");
        assert_eq!(echo.header(HEADER), None, "no header is written");
        echo.pod
    }

    async fn split(&self, req: &Req, n: usize) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for _ in 0..n {
            *counts.entry(self.pod(req).await).or_default() += 1;
        }
        counts
    }

    async fn counter(&self, metric: &str, at_least: u64) -> u64 {
        self.envoy
            .counter_reaching(metric, at_least, std::time::Duration::from_secs(3))
            .await
    }
}

#[tokio::test]
async fn weights_0_and_1_always_pick_one_backend_and_1_to_2_holds_over_600_requests() {
    let one = Specifier::start(&weights(&[("stable", 0), ("canary", 1), ("dark", 0)])).await;
    let counts = one.split(&Req::get("/"), 50).await;
    assert_eq!(counts, HashMap::from([("canary".to_string(), 50)]));
    assert_eq!(
        one.counter(&format!("{SELECTED}{{backend=\"canary\"}}"), 50)
            .await,
        50
    );

    let split = Specifier::start(&weights(&[("stable", 1), ("canary", 2), ("dark", 0)])).await;
    let counts = split.split(&Req::get("/"), 600).await;
    assert_share(&counts, "stable", 100.0 / 3.0);
    assert_share(&counts, "canary", 200.0 / 3.0);
    assert_eq!(counts.get("dark"), None, "{counts:?}");
    let stable = counts.get("stable").copied().unwrap_or(0) as u64;
    assert_eq!(
        split
            .counter(&format!("{SELECTED}{{backend=\"stable\"}}"), stable)
            .await,
        stable
    );
}

/// Rules pick weight-0 backends; the cookie rule's cookie is in the second of
/// two `Cookie` headers (HTTP/1), so every value of a header is read. A
/// client-sent `x-tollgate-backend` means nothing to the specifier: it routes
/// nowhere and is passed on as sent.
#[tokio::test]
async fn rules_on_a_header_a_query_and_a_second_cookie_header_pick_their_backend() {
    let s = Specifier::start(&json!({
        "backends": [{"name": "stable"}, {"name": "canary", "weight": 0}, {"name": "dark", "weight": 0}],
        "rules": [
            {"match": {"headers": [{"name": "env", "value": "canary"}]}, "backend": "canary"},
            {"match": {"queryParams": [{"name": "v", "type": "RegularExpression", "value": "2|3"}]}, "backend": "dark"},
            {"match": {"cookies": [{"name": "beta", "value": "yes"}]}, "backend": "canary"}
        ]
    }))
    .await;
    for _ in 0..10 {
        assert_eq!(
            s.pod(&Req::get("/").header("env", "canary")).await,
            "canary"
        );
        assert_eq!(s.pod(&Req::get("/").header("env", "prod")).await, "stable");
        assert_eq!(s.pod(&Req::get("/x?a=1&v=3")).await, "dark");
        assert_eq!(s.pod(&Req::get("/x?v=4")).await, "stable");
        let cookies = Req::get("/")
            .header("cookie", "theme=dark; lang=en")
            .header("cookie", "beta=yes");
        assert_eq!(s.pod(&cookies).await, "canary");
    }
    let forged = s.send(&Req::get("/").header(HEADER, "dark")).await;
    let echo = forged.echo.expect("echo reply");
    assert_eq!(echo.pod, "stable", "the header routes nowhere");
    assert_eq!(
        echo.header(HEADER).as_deref(),
        Some("dark"),
        "passed on as sent"
    );
}

/// 200 users × 4 requests, the key in a cookie the client already has (in a
/// second `Cookie` header): each user stays on one backend, users split 1:2.
#[tokio::test]
async fn a_sticky_cookie_keeps_each_user_on_one_backend() {
    let s = Specifier::start(&json!({
        "backends": [{"name": "stable", "weight": 1}, {"name": "canary", "weight": 2}],
        "sticky": {"cookie": "tollgate-key"}
    }))
    .await;
    let mut users_on = HashMap::<String, usize>::new();
    for u in 0..200 {
        let req = Req::get("/")
            .header("cookie", "theme=dark")
            .header("cookie", &format!("tollgate-key=user-{u}"));
        let mut seen = HashSet::new();
        for _ in 0..4 {
            seen.insert(s.pod(&req).await);
        }
        assert_eq!(seen.len(), 1, "user-{u} saw {seen:?}");
        for pod in seen {
            *users_on.entry(pod).or_default() += 1;
        }
    }
    assert!(
        (share(&users_on, "canary") - 200.0 / 3.0).abs() <= 7.0,
        "{users_on:?}"
    );
}

/// Every weight 0 and no rule matched: the specifier makes no decision. A
/// route with a cluster specifier has no cluster of its own, so Envoy answers
/// with the route's `cluster_not_found_response_code` (404 here, 503 by
/// default) and no backend sees the request; the specifier counts it. A
/// backend with no cluster of its name is answered the same way.
#[tokio::test]
async fn when_nothing_applies_there_is_no_decision_and_it_is_counted() {
    let s = Specifier::start(&json!({
        "backends": [{"name": "stable", "weight": 0}, {"name": "canary", "weight": 0}, {"name": "ghost", "weight": 0}],
        "rules": [
            {"match": {"headers": [{"name": "env", "value": "canary"}]}, "backend": "canary"},
            {"match": {"headers": [{"name": "env", "value": "ghost"}]}, "backend": "ghost"}
        ]
    }))
    .await;
    let ghost = s.send(&Req::get("/").header("env", "ghost")).await;
    assert_eq!(ghost.status, 404, "no cluster `ghost`: {}", ghost.body);
    for _ in 0..3 {
        let ex = s.send(&Req::get("/")).await;
        assert_eq!(ex.status, 404, "{}", ex.body);
        assert!(ex.echo.is_none());
    }
    assert_eq!(
        s.pod(&Req::get("/").header("env", "canary")).await,
        "canary"
    );
    assert!(
        s.backends.iter().map(|b| b.received().len()).sum::<usize>() == 1,
        "only the rule's request reached a backend"
    );
    assert_eq!(s.counter(UNSELECTED, 3).await, 3);
    assert_eq!(
        s.counter(&format!("{SELECTED}{{backend=\"canary\"}}"), 1)
            .await,
        1
    );
}

/// Envoy refuses to start; the module's line names the field.
async fn refused(specifier_name: &str, config: &Value) -> String {
    let mut action = dynamic_module_cluster_specifier("canary", config);
    action["inline_cluster_specifier_plugin"]["extension"]["typed_config"]["specifier_name"] =
        json!(specifier_name);
    let listener = Listener {
        routes: vec![json!({"name": "split", "match": {"prefix": "/"}, "route": action})],
        clusters: vec![cluster("stable", "127.0.0.1:9".parse().expect("addr"))],
        ..Listener::default()
    };
    let said = "Failed to initialize dynamic module cluster specifier config";
    refused_log(&listener.bootstrap(), said).await
}

#[tokio::test]
async fn configs_it_cannot_honour_are_refused_naming_the_field() {
    let two = json!([{"name": "stable"}, {"name": "canary"}]);
    let said = "tollgate canary cluster specifier: rejected configuration: invalid config at";
    let cases = [
        (
            json!({"backends": two, "sticky": {"cookie": "k", "setCookie": {"maxAge": 60}}}),
            "`sticky.setCookie`: needs the response",
        ),
        (
            json!({"backends": two, "header": "x-tollgate-backend"}),
            "`header`: is not used here",
        ),
        (
            json!({"backends": []}),
            "`backends`: needs at least one backend",
        ),
        (
            json!({"backends": two, "rules": [{"match": {}, "backend": "nope"}]}),
            "`rules[0].backend`: no backend is named `nope`",
        ),
        (
            json!({"routes": {"a": {"backends": two}}}),
            "`routes`: a cluster specifier sits on its route",
        ),
    ];
    for (config, expected) in cases {
        let log = refused("canary", &config).await;
        let want = format!("{said} {expected}");
        assert!(log.contains(&want), "{config}: expected {want:?} in\n{log}");
    }
    let log = refused("weights", &json!({"backends": two})).await;
    assert!(
        log.contains("`specifier_name` `weights` is not a Tollgate cluster specifier"),
        "{log}"
    );
}
