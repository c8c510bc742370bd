//! The canary filter, on both runtimes (canary.wasm and libtollgate.so), in a
//! real Envoy (two workers) in front of echo backends named by
//! pod, routed by the selection header both ways users do it: a
//! `cluster_header` route, and routes matching the header. Weighted splits,
//! the seed scenario (`env: canary`), stickiness by header and by a cookie the
//! filter sets, cookies in a second `Cookie` header, a client-sent selection
//! header, per-route policies, metrics and bad configs.

use std::collections::{HashMap, HashSet};

use e2e::echo::Echo;
use e2e::envoy::Envoy;
use e2e::envoy_config::{cluster, Listener, Runtime, LISTENER};
use e2e::on_both_runtimes;
use e2e::roundtrip::{client, send, Exchange, Req};
use e2e::split::{assert_share, share, weights};
use e2e::stage::refused_config_log;
use serde_json::{json, Value};

const HEADER: &str = "x-tollgate-backend";
const PODS: [&str; 3] = ["stable", "canary", "dark"];

/// How the selection header picks the upstream.
#[derive(Clone, Copy)]
enum Routing {
    /// One route per path (`foo` on /foo, `bar` on /) with `cluster_header`.
    ClusterHeader,
    /// One route per backend matching the header's value, and a fallback to `stable`.
    HeaderMatch,
}

struct Canary {
    envoy: Envoy,
    base: String,
    http: reqwest::Client,
    _backends: Vec<Echo>,
}

impl Canary {
    async fn start(runtime: Runtime, config: &Value, routing: Routing) -> Canary {
        let mut backends = Vec::new();
        let mut clusters = Vec::new();
        for pod in PODS {
            let echo = Echo::start(pod).await.expect("echo");
            clusters.push(cluster(pod, echo.addr()));
            backends.push(echo);
        }
        let routes = match routing {
            Routing::ClusterHeader => vec![
                json!({"name": "foo", "match": {"prefix": "/foo"}, "route": {"cluster_header": HEADER}}),
                json!({"name": "bar", "match": {"prefix": "/"}, "route": {"cluster_header": HEADER}}),
            ],
            Routing::HeaderMatch => PODS
                .iter()
                .map(|pod| json!({
                    "name": format!("to-{pod}"),
                    "match": {"prefix": "/", "headers": [{"name": HEADER, "string_match": {"exact": pod}}]},
                    "route": {"cluster": pod}
                }))
                .chain([json!({"name": "fallback", "match": {"prefix": "/"}, "route": {"cluster": "stable"}})])
                .collect(),
        };
        let listener = Listener {
            http_filters: vec![runtime.filter("canary", config)],
            routes,
            clusters,
            ..Listener::default()
        };
        let envoy = Envoy::start(&listener.bootstrap()).await;
        let base = envoy.listener_url(LISTENER).await;
        Canary {
            envoy,
            base,
            http: client(),
            _backends: backends,
        }
    }

    async fn send(&self, req: &Req) -> Exchange {
        send(&self.http, &self.base, req).await.expect("send")
    }

    /// The pod that answered; panics on anything but an echo reply.
    async fn pod(&self, req: &Req) -> String {
        let ex = self.send(req).await;
        assert_eq!(ex.status, 200, "{}", ex.body);
        ex.echo.expect("echo reply").pod
    }

    /// Requests per pod over `n` requests.
    async fn split(&self, req: &Req, n: usize) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for _ in 0..n {
            *counts.entry(self.pod(req).await).or_default() += 1;
        }
        counts
    }
}

async fn weights_1_to_2_and_95_to_5_hold_over_600_requests_and_weight_0_gets_nothing(
    runtime: Runtime,
) {
    for routing in [Routing::ClusterHeader, Routing::HeaderMatch] {
        let c = Canary::start(
            runtime,
            &weights(&[("stable", 1), ("canary", 2), ("dark", 0)]),
            routing,
        )
        .await;
        let counts = c.split(&Req::get("/"), 600).await;
        assert_share(&counts, "stable", 100.0 / 3.0);
        assert_share(&counts, "canary", 200.0 / 3.0);
        assert_eq!(counts.get("dark"), None, "{counts:?}");
    }
    let c = Canary::start(
        runtime,
        &weights(&[("stable", 95), ("canary", 5)]),
        Routing::ClusterHeader,
    )
    .await;
    let counts = c.split(&Req::get("/"), 600).await;
    assert_share(&counts, "canary", 5.0);
    assert_share(&counts, "stable", 95.0);
}

/// Envoy Gateway's header-routing scenario: `env: canary` → the canary;
/// everything else → stable, whatever the client claims in the selection header.
async fn seed_scenario_env_canary_and_a_client_sent_selection_is_ignored(runtime: Runtime) {
    let config = json!({
        "backends": [{"name": "stable"}, {"name": "canary", "weight": 0}],
        "rules": [{"match": {"headers": [{"name": "env", "value": "canary"}]}, "backend": "canary"}]
    });
    for routing in [Routing::ClusterHeader, Routing::HeaderMatch] {
        let c = Canary::start(runtime, &config, routing).await;
        assert_eq!(
            c.pod(&Req::get("/").header("env", "canary")).await,
            "canary"
        );
        assert_eq!(c.pod(&Req::get("/").header("env", "prod")).await, "stable");
        for _ in 0..20 {
            let forged = Req::get("/").header(HEADER, "canary");
            let ex = c.send(&forged).await;
            let echo = ex.echo.expect("echo reply");
            assert_eq!(echo.pod, "stable", "a client cannot pick the canary");
            assert_eq!(
                echo.header(HEADER).as_deref(),
                Some("stable"),
                "overwritten, not added"
            );
            let dark = c.pod(&Req::get("/").header(HEADER, "dark")).await;
            assert_eq!(dark, "stable");
        }
    }
}

/// 200 users × 5 requests: every user always lands on one backend, and the
/// users split by weight within 7 points.
async fn sticky_by_header_keeps_each_user_on_one_backend(runtime: Runtime) {
    let config = json!({
        "backends": [{"name": "stable", "weight": 1}, {"name": "canary", "weight": 2}],
        "sticky": {"header": "x-user-id"}
    });
    let c = Canary::start(runtime, &config, Routing::ClusterHeader).await;
    let mut users_on = HashMap::<String, usize>::new();
    for u in 0..200 {
        let req = Req::get("/").header("x-user-id", &format!("user-{u}"));
        let pods: HashSet<String> = {
            let mut seen = HashSet::new();
            for _ in 0..5 {
                seen.insert(c.pod(&req).await);
            }
            seen
        };
        assert_eq!(pods.len(), 1, "user-{u} saw {pods:?}");
        *users_on
            .entry(pods.into_iter().next().unwrap())
            .or_default() += 1;
    }
    assert!(
        (share(&users_on, "canary") - 200.0 / 3.0).abs() <= 7.0,
        "{users_on:?}"
    );
}

/// `setCookie`: a first visit gets a cookie holding a new sticky key; with it,
/// every later request lands where the first did.
async fn set_cookie_makes_a_browser_stick(runtime: Runtime) {
    let config = json!({
        "backends": [{"name": "stable"}, {"name": "canary"}],
        "sticky": {"cookie": "tollgate-canary", "setCookie": {"maxAge": 3600}}
    });
    let c = Canary::start(runtime, &config, Routing::ClusterHeader).await;
    for _ in 0..10 {
        let first = c.send(&Req::get("/")).await;
        let cookie = first
            .header("set-cookie")
            .expect("set-cookie on the first response");
        assert!(cookie.starts_with("tollgate-canary="), "{cookie}");
        assert!(
            cookie.contains("Max-Age=3600") && cookie.contains("HttpOnly"),
            "{cookie}"
        );
        let pair = cookie.split(';').next().unwrap().to_string();
        let pod = first.echo.expect("echo reply").pod;
        for _ in 0..5 {
            let again = c.send(&Req::get("/").header("cookie", &pair)).await;
            assert_eq!(
                again.header("set-cookie"),
                None,
                "the key is kept, not renewed"
            );
            assert_eq!(again.echo.expect("echo reply").pod, pod);
        }
    }
}

/// Over HTTP/1 a client may send several `Cookie` headers (Envoy joins them only
/// for HTTP/2 and 3). A rule's cookie and the sticky cookie are found in the
/// second one as in the first.
async fn cookies_in_a_second_cookie_header_over_http1_are_seen(runtime: Runtime) {
    let two_cookie_headers = |wanted: &str| {
        Req::get("/")
            .header("cookie", "theme=dark; lang=en")
            .header("cookie", wanted)
    };
    let rule = Canary::start(
        runtime,
        &json!({
            "backends": [{"name": "stable"}, {"name": "canary", "weight": 0}],
            "rules": [{"match": {"cookies": [{"name": "beta", "value": "yes"}]}, "backend": "canary"}]
        }),
        Routing::ClusterHeader,
    )
    .await;
    let ex = rule.send(&two_cookie_headers("beta=yes")).await;
    let echo = ex.echo.expect("echo reply");
    assert_eq!(
        echo.headers.get("cookie").map(Vec::len),
        Some(2),
        "two Cookie lines reached the backend: {:?}",
        echo.headers
    );
    assert_eq!(echo.pod, "canary", "the rule saw beta=yes");

    let sticky = Canary::start(
        runtime,
        &json!({
            "backends": [{"name": "stable"}, {"name": "canary"}],
            "sticky": {"cookie": "tollgate-canary", "setCookie": {}}
        }),
        Routing::ClusterHeader,
    )
    .await;
    for _ in 0..5 {
        let first = sticky.send(&Req::get("/")).await;
        let cookie = first.header("set-cookie").expect("set-cookie");
        let pair = cookie.split(';').next().unwrap_or_default().to_string();
        let pod = first.echo.expect("echo reply").pod;
        for _ in 0..3 {
            let again = sticky.send(&two_cookie_headers(&pair)).await;
            assert_eq!(
                again.header("set-cookie"),
                None,
                "the key in the second header was found"
            );
            assert_eq!(again.echo.expect("echo reply").pod, pod);
        }
    }
}

/// The Prometheus sample counting selections of `backend`: a counter per
/// backend in wasm, a `backend` label in the dynamic module.
fn selected(runtime: Runtime, backend: &str) -> String {
    match runtime {
        Runtime::Wasm => format!("tollgate_canary_selected_{backend}"),
        Runtime::DynamicModule => format!(
            "{}{{backend=\"{backend}\"}}",
            runtime.metric("tollgate_canary_selected")
        ),
    }
}

async fn per_route_policies_and_selection_metrics(runtime: Runtime) {
    let config = json!({"routes": {
        "foo": {"backends": [{"name": "canary"}]},
        "bar": {"backends": [{"name": "stable"}]}
    }});
    let c = Canary::start(runtime, &config, Routing::ClusterHeader).await;
    for _ in 0..7 {
        assert_eq!(c.pod(&Req::get("/foo")).await, "canary");
    }
    for _ in 0..4 {
        assert_eq!(c.pod(&Req::get("/other")).await, "stable");
    }
    let wait = std::time::Duration::from_secs(3);
    let got = (
        c.envoy
            .counter_reaching(&selected(runtime, "canary"), 7, wait)
            .await,
        c.envoy
            .counter_reaching(&selected(runtime, "stable"), 4, wait)
            .await,
    );
    assert_eq!(got, (7, 4));
}

async fn bad_configs_are_rejected_naming_the_field(runtime: Runtime) {
    let two = json!([{"name": "stable"}, {"name": "canary"}]);
    let cases = [
        (
            json!({"backends": []}),
            "`backends`: needs at least one backend",
        ),
        (
            json!({"backends": [{"name": "stable", "weight": -1}]}),
            "`backends[0].weight`: -1 is negative",
        ),
        (
            json!({"backends": [{"name": "stable", "weight": 0}]}),
            "`backends`: every weight is 0",
        ),
        (
            json!({"backends": [{"name": "stable"}, {"name": "stable"}]}),
            "`backends[1].name`",
        ),
        (
            json!({"backends": two, "rules": [{"match": {"headers": [{"name": "env", "type": "RegularExpression", "value": "(("}]}, "backend": "canary"}]}),
            "`rules[0].match.headers[0].value`",
        ),
        (
            json!({"backends": two, "rules": [{"match": {"cookies": [{"name": "beta", "type": "RegularExpression", "value": ".*a.{20000}"}]}, "backend": "canary"}]}),
            "`rules[0].match.cookies[0].value`: `.*a.{20000}` is too large",
        ),
    ];
    for (config, expected) in cases {
        let log = refused_config_log(runtime, "canary", &config).await;
        assert!(
            log.contains(expected),
            "{config}: expected {expected:?} in\n{log}"
        );
    }
}

on_both_runtimes!(
    weights_1_to_2_and_95_to_5_hold_over_600_requests_and_weight_0_gets_nothing,
    seed_scenario_env_canary_and_a_client_sent_selection_is_ignored,
    sticky_by_header_keeps_each_user_on_one_backend,
    set_cookie_makes_a_browser_stick,
    cookies_in_a_second_cookie_header_over_http1_are_seen,
    per_route_policies_and_selection_metrics,
    bad_configs_are_rejected_naming_the_field,
);
