//! The rate limit filter in a real Envoy with two workers, on both runtimes
//! (ratelimit.wasm and the dynamic module) and in both modes: local
//! (counters in shared data, or process memory in the dynamic module) and global (`ShouldRateLimit` to `tollgate
//! ratelimit-server` and a real Redis). Each scenario runs in both: Envoy
//! Gateway's rate limit guide, one budget across workers under concurrent
//! load, the response headers, shadow mode, the per-route envelope, gRPC
//! answers. Then what is one mode's own: bad configs, bounded memory for
//! distinct values and no way past a limit by flooding or by crafting colliding
//! values (local), the failure mode, timeouts and two Envoys sharing a budget
//! (global).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e::echo::Echo;
use e2e::envoy::Envoy;
use e2e::envoy_config::{
    cluster, dynamic_module_per_route, grpc_cluster, prefix_route, Listener, Runtime, LISTENER,
};
use e2e::on_both_runtimes;
use e2e::paths;
use e2e::process::free_port;
use e2e::ratelimit_server::RatelimitServer;
use e2e::redis::Redis;
use e2e::roundtrip::{client, concurrent_statuses, send, Req};
use e2e::stage::{refused_config_log, Stage};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Local,
    Global,
}

/// The Envoy cluster of the rate limit service in global mode.
const SERVICE_CLUSTER: &str = "ratelimit";

/// A stage, and in global mode the service and Redis it counts in.
struct Rig {
    stage: Stage,
    _service: Option<(RatelimitServer, Redis)>,
}

impl std::ops::Deref for Rig {
    type Target = Stage;
    fn deref(&self) -> &Stage {
        &self.stage
    }
}

/// Starts the filter with `config`, written in local form (`{"local": …}`, or
/// a per-route envelope of such); in global mode its rules become `global`
/// rules of a service on [`SERVICE_CLUSTER`].
async fn start(mode: Mode, runtime: Runtime, config: Value) -> Rig {
    match mode {
        Mode::Local => Rig {
            stage: Stage::start_on(runtime, "ratelimit", &config, Vec::new()).await,
            _service: None,
        },
        Mode::Global => {
            let redis = Redis::start().await.expect("redis");
            let server = RatelimitServer::start(&paths::tollgate_bin(), &redis.url(), None)
                .await
                .expect("ratelimit-server");
            let stage = Stage::start_on(
                runtime,
                "ratelimit",
                &globalize(config, &service("2s", "allow")),
                vec![grpc_cluster(SERVICE_CLUSTER, server.grpc)],
            )
            .await;
            Rig {
                stage,
                _service: Some((server, redis)),
            }
        }
    }
}

/// `service` of a global config. The test timeouts are generous so that a busy
/// machine does not turn into the failure mode.
fn service(timeout: &str, failure_mode: &str) -> Value {
    json!({"cluster": SERVICE_CLUSTER, "timeout": timeout, "failureMode": failure_mode})
}

/// A local-form config (or per-route envelope of them) as global rules.
fn globalize(config: Value, service: &Value) -> Value {
    match config {
        Value::Object(mut map) => {
            if let Some(routes) = map.get_mut("routes").and_then(Value::as_object_mut) {
                for policy in routes.values_mut() {
                    *policy = globalize(policy.take(), service);
                }
            }
            if let Some(local) = map.remove("local") {
                map.insert("global".into(), local);
                map.insert("service".into(), service.clone());
            }
            Value::Object(map)
        }
        other => other,
    }
}

fn rule(selectors: Value, requests: u64, unit: &str) -> Value {
    json!({"local": {"rules": [
        {"clientSelectors": selectors, "limit": {"requests": requests, "unit": unit}}
    ]}})
}

/// The scenarios that hold in both modes, on both runtimes, as
/// `local::wasm::…`, `global::dynamic_module::…` and so on.
macro_rules! in_both_modes {
    ($($scenario:ident),* $(,)?) => {
        in_both_modes!(@mode local, Local, $($scenario),*);
        in_both_modes!(@mode global, Global, $($scenario),*);
    };
    (@mode $module:ident, $mode:ident, $($scenario:ident),*) => {
        mod $module {
            mod wasm {
                $(#[tokio::test]
                async fn $scenario() {
                    super::super::$scenario(super::super::Mode::$mode, e2e::envoy_config::Runtime::Wasm).await
                })*
            }
            mod dynamic_module {
                $(#[tokio::test]
                async fn $scenario() {
                    super::super::$scenario(super::super::Mode::$mode, e2e::envoy_config::Runtime::DynamicModule).await
                })*
            }
        }
    };
}

in_both_modes!(
    guide_exact_header,
    guide_distinct_header,
    guide_no_selectors_share_one_budget,
    one_budget_across_workers_under_concurrency,
    shadow_mode_counts_but_never_refuses,
    per_route_policies_count_apart,
    methods_paths_regex_and_source_address,
    grpc_requests_get_resource_exhausted,
);

/// Statuses of `n` requests in a row.
async fn statuses(s: &Stage, req: &Req, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(s.send(req).await.status);
    }
    out
}

fn user(id: &str) -> Req {
    Req::get("/foo").header("x-user-id", id)
}

/// Envoy Gateway's guide: `x-user-id: one` gets 3 per hour; others are not limited.
async fn guide_exact_header(mode: Mode, runtime: Runtime) {
    let s = start(
        mode,
        runtime,
        rule(
            json!([{"headers": [{"name": "x-user-id", "value": "one"}]}]),
            3,
            "Hour",
        ),
    )
    .await;
    assert_eq!(statuses(&s, &user("one"), 4).await, [200, 200, 200, 429]);
    assert_eq!(statuses(&s, &user("two"), 5).await, [200; 5]);
    let limited = s.send(&user("one")).await;
    assert_eq!(limited.status, 429);
    assert_eq!(
        limited.header("x-ratelimit-limit").as_deref(),
        Some("3, 3;w=3600")
    );
    assert_eq!(
        limited.header("x-ratelimit-remaining").as_deref(),
        Some("0")
    );
    let reset: u64 = limited
        .header("x-ratelimit-reset")
        .and_then(|r| r.parse().ok())
        .expect("reset");
    assert!((1..=3600).contains(&reset), "reset {reset}");
    assert!(limited.echo.is_none(), "the backend never saw it");
}

async fn guide_distinct_header(mode: Mode, runtime: Runtime) {
    let s = start(
        mode,
        runtime,
        rule(
            json!([{"headers": [{"name": "x-user-id", "type": "Distinct"}]}]),
            3,
            "Hour",
        ),
    )
    .await;
    for id in ["one", "two", "three"] {
        assert_eq!(
            statuses(&s, &user(id), 4).await,
            [200, 200, 200, 429],
            "{id}"
        );
    }
    let first = s.send(&user("four")).await;
    assert_eq!(first.header("x-ratelimit-remaining").as_deref(), Some("2"));
    assert_eq!(
        first.header("x-ratelimit-limit").as_deref(),
        Some("3, 3;w=3600")
    );
    // No header: the rule does not apply.
    assert_eq!(statuses(&s, &Req::get("/foo"), 5).await, [200; 5]);
}

async fn guide_no_selectors_share_one_budget(mode: Mode, runtime: Runtime) {
    let s = start(mode, runtime, rule(json!([]), 3, "Hour")).await;
    let mut got = Vec::new();
    for id in ["a", "b", "c", "d", "e"] {
        got.push(s.send(&user(id)).await.status);
    }
    assert_eq!(got, [200, 200, 200, 429, 429]);
}

/// Two workers, 50 concurrent clients, 20 per minute: exactly 20 pass.
async fn one_budget_across_workers_under_concurrency(mode: Mode, runtime: Runtime) {
    // Stay clear of a minute boundary, which would open a second window.
    let second = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() % 60)
        .unwrap_or(0);
    if second > 50 {
        tokio::time::sleep(Duration::from_secs(61 - second)).await;
    }
    let s = start(mode, runtime, rule(json!([]), 20, "Minute")).await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (http, base) = (client(), s.base.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..2 {
                    let ex = send(&http, &base, &Req::get("/foo")).await.expect("send");
                    statuses.push(ex.status);
                }
                statuses
            })
        })
        .collect();
    let mut passed = 0;
    let mut limited = 0;
    for t in tasks {
        for status in t.await.expect("client task") {
            match status {
                200 => passed += 1,
                429 => limited += 1,
                other => panic!("unexpected status {other}"),
            }
        }
    }
    assert_eq!((passed, limited), (20, 80));
}

async fn shadow_mode_counts_but_never_refuses(mode: Mode, runtime: Runtime) {
    let s = start(
        mode,
        runtime,
        json!({"local": {"rules": [
            {"limit": {"requests": 2, "unit": "Hour"}, "shadowMode": true}
        ]}}),
    )
    .await;
    assert_eq!(statuses(&s, &Req::get("/foo"), 5).await, [200; 5]);
    let shadow = s
        .envoy
        .counter_reaching(
            &runtime.metric("tollgate_ratelimit_shadow_limited"),
            3,
            FLUSH_WAIT,
        )
        .await;
    assert_eq!(shadow, 3);
}

async fn per_route_policies_count_apart(mode: Mode, runtime: Runtime) {
    let limit = |n| json!({"local": {"rules": [{"limit": {"requests": n, "unit": "Hour"}}]}});
    let s = start(
        mode,
        runtime,
        json!({"routes": {"foo": limit(1), "bar": limit(1)}}),
    )
    .await;
    assert_eq!(statuses(&s, &Req::get("/foo"), 2).await, [200, 429]);
    assert_eq!(
        statuses(&s, &Req::get("/bar"), 2).await,
        [200, 429],
        "own budget"
    );
}

async fn methods_paths_regex_and_source_address(mode: Mode, runtime: Runtime) {
    let s = start(mode, runtime, json!({"local": {"rules": [
        {"name": "posts", "clientSelectors": [{"methods": [{"value": "POST"}], "path": {"value": "/foo"}}],
         "limit": {"requests": 1, "unit": "Hour"}},
        {"name": "bots", "clientSelectors": [{"headers": [{"name": "user-agent", "type": "RegularExpression", "value": "bot-.*"}]}],
         "limit": {"requests": 1, "unit": "Hour"}},
        {"name": "not-admin", "clientSelectors": [{"headers": [{"name": "x-role", "value": "admin", "invert": true}],
         "sourceCIDR": {"type": "Distinct", "value": "127.0.0.0/8"}}],
         "limit": {"requests": 3, "unit": "Hour"}}
    ]}}))
    .await;
    let admin = |r: Req| r.header("x-role", "admin");
    let post = admin(Req::get("/foo").method("POST"));
    assert_eq!(statuses(&s, &post, 2).await, [200, 429]);
    assert_eq!(
        statuses(&s, &admin(Req::get("/foo")), 3).await,
        [200; 3],
        "GET is not limited"
    );
    let bot = admin(Req::get("/bar").header("user-agent", "bot-7"));
    assert_eq!(statuses(&s, &bot, 2).await, [200, 429]);
    // Non-admins from 127.0.0.0/8 share 3 per client address.
    assert_eq!(
        statuses(&s, &Req::get("/bar"), 4).await,
        [200, 200, 200, 429]
    );
}

async fn grpc_requests_get_resource_exhausted(mode: Mode, runtime: Runtime) {
    let s = start(mode, runtime, rule(json!([]), 1, "Hour")).await;
    let grpc = Req::get("/foo")
        .method("POST")
        .header("content-type", "application/grpc");
    assert_eq!(s.send(&grpc.clone()).await.status, 200);
    let limited = s.send(&grpc).await;
    assert_eq!(
        limited.status, 200,
        "gRPC errors travel in trailers-only responses"
    );
    assert_eq!(limited.header("grpc-status").as_deref(), Some("8"));
}

async fn bad_configs_are_rejected_naming_the_field(runtime: Runtime) {
    let cases = [
        (
            json!({"local": {"rules": [{"limit": {"requests": 3, "unit": "Fortnight"}}]}}),
            "`local.rules[0].limit.unit`",
        ),
        (
            json!({"local": {"rules": [{"clientSelectors": [{"headers": [{"name": "x", "type": "RegularExpression", "value": "("}]}],
                "limit": {"requests": 3, "unit": "Hour"}}]}}),
            "`local.rules[0].clientSelectors[0].headers[0].value`",
        ),
        (
            // Accepted before: 556 ms per request on a 5 KB header value.
            json!({"local": {"rules": [{"clientSelectors": [{"path": {"type": "RegularExpression", "value": ".*a.{20000}"}}],
                "limit": {"requests": 3, "unit": "Hour"}}]}}),
            "`local.rules[0].clientSelectors[0].path.value`: `.*a.{20000}` is too large",
        ),
        (
            json!({"global": {"rules": [{"limit": {"requests": 3, "unit": "Hour"}}]}}),
            "`service`: global rules need `service.cluster`",
        ),
        (
            json!({"global": {"rules": [{"limit": {"requests": 3, "unit": "Hour"}}]},
                   "service": {"cluster": "rls", "timeout": "0s"}}),
            "`service.timeout`",
        ),
        (
            json!({"global": {"rules": [{"limit": {"requests": 3, "unit": "Hour"}}]},
                   "service": {"cluster": "rls", "failureMode": "maybe"}}),
            "`service.failureMode`",
        ),
    ];
    for (config, expected) in cases {
        let log = refused_config_log(runtime, "ratelimit", &config).await;
        assert!(
            log.contains(expected),
            "{config}: expected {expected:?} in\n{log}"
        );
    }
}

/// The dynamic module's per-route configs (`DynamicModuleFilterPerRoute`):
/// each route's own policy counts under the route's name, so two routes with
/// the same policy count apart, and the virtual host's policy applies to the
/// routes with none of their own; the listener's config (no limit) elsewhere.
#[tokio::test]
async fn dynamic_module_per_route_policies_count_apart_and_the_most_specific_applies() {
    let limit = |n: u64| {
        json!({"tollgate.ratelimit": dynamic_module_per_route(
            "ratelimit",
            &json!({"local": {"rules": [{"limit": {"requests": n, "unit": "Hour"}}]}})
        )})
    };
    let backend = Echo::start("backend").await.expect("echo backend");
    let mut routes = vec![
        prefix_route("a", "/a", "backend"),
        prefix_route("b", "/b", "backend"),
        prefix_route("rest", "/", "backend"),
    ];
    routes[0]["typed_per_filter_config"] = limit(1);
    routes[1]["typed_per_filter_config"] = limit(1);
    let listener = Listener {
        http_filters: vec![Runtime::DynamicModule.filter("ratelimit", &json!({"routes": {}}))],
        routes,
        clusters: vec![cluster("backend", backend.addr())],
        host_per_filter_config: Some(limit(2)),
        ..Listener::default()
    };
    let envoy = Envoy::start(&listener.bootstrap()).await;
    let base = envoy.listener_url(LISTENER).await;
    let http = client();
    let statuses = |path: &'static str, n: usize| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let mut out = Vec::new();
            for _ in 0..n {
                out.push(
                    send(&http, &base, &Req::get(path))
                        .await
                        .expect("send")
                        .status,
                );
            }
            out
        }
    };
    assert_eq!(statuses("/a", 2).await, [200, 429]);
    assert_eq!(statuses("/b", 2).await, [200, 429], "its own budget");
    assert_eq!(
        statuses("/rest", 3).await,
        [200, 200, 429],
        "the virtual host's"
    );
}

/// Envoy's resident memory in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .expect("VmRSS")
}

/// Slots in a local rule's counter table (`tollgate_core::ratelimit::counter::SLOTS`).
const SLOTS: usize = 16_384;

/// Waits past the end of the day (UTC) when it is less than `margin` away, so
/// that a test's requests fall in one window of a daily limit.
async fn clear_of_the_day_boundary(margin: Duration) {
    const DAY: u64 = 86_400;
    let into_day = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() % DAY)
        .unwrap_or(0);
    if into_day + margin.as_secs() >= DAY {
        tokio::time::sleep(Duration::from_secs(DAY + 1 - into_day)).await;
    }
}

/// 20,000 distinct `x-user-id` values in one window (more than the table's
/// 16,384 slots): the counters live in a
/// fixed table of slots (each created on first use), so Envoy's memory does not
/// follow the number of distinct values. Once a value finds no slot it is
/// counted in the rule's overflow bucket (with the rule's limit), never let
/// through uncounted: a user who comes after the flood, and one who came
/// before it, each pass at most the limit.
async fn local_a_flood_of_distinct_values_grows_no_memory_and_lets_no_user_past_the_limit(
    runtime: Runtime,
) {
    const USERS: usize = 20_000;
    const CLIENTS: usize = 50;
    const LIMIT: usize = 3;
    // The flood takes about 8 s on an idle machine, a minute or two on a busy one.
    clear_of_the_day_boundary(Duration::from_secs(240)).await;
    let s = Stage::start_on(
        runtime,
        "ratelimit",
        &rule(
            json!([{"headers": [{"name": "x-user-id", "type": "Distinct"}]}]),
            LIMIT as u64,
            "Day",
        ),
        Vec::new(),
    )
    .await;
    assert_eq!(s.send(&user("early")).await.status, 200);
    let before = rss_kib(s.envoy.pid());
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (http, base) = (client(), s.base.clone());
            tokio::spawn(async move {
                let (mut admitted, mut limited, mut other) = (0, 0, 0);
                for i in (c..USERS).step_by(CLIENTS) {
                    let req = Req::get("/foo").header("x-user-id", &format!("user-{i}"));
                    match send(&http, &base, &req).await.map(|ex| ex.status) {
                        Ok(200) => admitted += 1,
                        Ok(429) => limited += 1,
                        _ => other += 1,
                    }
                }
                (admitted, limited, other)
            })
        })
        .collect();
    let (mut admitted, mut limited, mut other) = (0, 0, 0);
    for t in tasks {
        let (a, l, o) = t.await.expect("client task");
        (admitted, limited, other) = (admitted + a, limited + l, other + o);
    }
    let after = rss_kib(s.envoy.pid());
    let grown = after.saturating_sub(before);
    eprintln!(
        "Envoy RSS {before} KiB -> {after} KiB (+{grown} KiB) after {USERS} distinct users; \
         {admitted} admitted, {limited} limited"
    );
    assert_eq!(other, 0, "every answer is 200 or 429");
    assert!(grown < 16 * 1024, "RSS grew {grown} KiB");
    // One request each: a value passes only in its own slot or within the
    // overflow bucket's limit.
    assert!(
        admitted <= SLOTS + LIMIT,
        "{admitted} of {USERS} distinct values admitted"
    );
    let full = s
        .envoy
        .counter_reaching(
            &runtime.metric("tollgate_ratelimit_bucket_table_full"),
            1,
            FLUSH_WAIT,
        )
        .await;
    assert!(full > 0, "the table filled up and said so");
    let late = statuses(&s, &user("late"), 2 * LIMIT).await;
    assert!(
        late.iter().filter(|s| **s == 200).count() <= LIMIT,
        "a user after the flood: {late:?}"
    );
    let early = statuses(&s, &user("early"), 2 * LIMIT).await;
    assert_eq!(
        early.iter().filter(|s| **s == 200).count(),
        LIMIT - 1,
        "a user before the flood keeps its slot and its count: {early:?}"
    );
}

/// FNV-1a, the public hash the bucket table used before the keyed one: what an
/// attacker could compute offline.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Issue 16, item 3: eight `x-user-id` values whose FNV-1a slots were the
/// victim's eight took them all, and the victim's requests then went uncounted
/// (30 of 30 passed a limit of 5). With a keyed hash such values land anywhere.
async fn local_values_crafted_to_collide_with_a_victim_cannot_lift_its_limit(runtime: Runtime) {
    let slot = |id: &str| (fnv1a(format!("h:x-user-id={id}").as_bytes()) % SLOTS as u64) as usize;
    let victim_start = slot("victim");
    let mut attackers: Vec<Option<String>> = vec![None; 8];
    for i in 0.. {
        let id = format!("attacker-{i}");
        let offset = (slot(&id) + SLOTS - victim_start) % SLOTS;
        if offset < 8 && attackers[offset].is_none() {
            attackers[offset] = Some(id);
            if attackers.iter().all(Option::is_some) {
                break;
            }
        }
    }
    clear_of_the_day_boundary(Duration::from_secs(120)).await;
    let s = Stage::start_on(
        runtime,
        "ratelimit",
        &rule(
            json!([{"headers": [{"name": "x-user-id", "type": "Distinct"}]}]),
            5,
            "Day",
        ),
        Vec::new(),
    )
    .await;
    // In probing order, so each takes the victim's next slot under FNV-1a.
    for id in attackers.iter().flatten() {
        assert_eq!(s.send(&user(id)).await.status, 200, "{id}");
    }
    let victim = statuses(&s, &user("victim"), 30).await;
    let admitted = victim.iter().filter(|s| **s == 200).count();
    assert_eq!(admitted, 5, "{victim:?}");
}

/// How long a test waits for a filter counter to reach Envoy (flushed once a second).
const FLUSH_WAIT: Duration = Duration::from_secs(3);

/// Local rules are counted first; a request they refuse never reaches the
/// service, so it does not spend the global budget. The request body waits
/// with the request while the service decides.
async fn global_local_and_global_rules_together(runtime: Runtime) {
    let redis = Redis::start().await.expect("redis");
    let server = RatelimitServer::start(&paths::tollgate_bin(), &redis.url(), None)
        .await
        .expect("ratelimit-server");
    let config = json!({
        "local": {"rules": [{"name": "local", "limit": {"requests": 5, "unit": "Hour"}}]},
        "global": {"rules": [{"name": "global", "limit": {"requests": 2, "unit": "Hour"}}]},
        "service": service("2s", "allow"),
    });
    let s = Stage::start_on(
        runtime,
        "ratelimit",
        &config,
        vec![grpc_cluster(SERVICE_CLUSTER, server.grpc)],
    )
    .await;
    let post = client()
        .post(format!("{}/foo", s.base))
        .body(vec![b'x'; 64 * 1024])
        .send()
        .await
        .expect("POST");
    assert_eq!(post.status(), 200, "the held body went on after the answer");
    assert_eq!(
        post.headers()
            .get("x-ratelimit-limit")
            .and_then(|v| v.to_str().ok()),
        Some("2, 5;w=3600, 2;w=3600"),
        "the closest quota first, every policy listed"
    );
    assert_eq!(
        statuses(&s, &Req::get("/foo"), 5).await,
        [200, 429, 429, 429, 429]
    );
    let calls = server
        .metric("tollgate_ratelimit_requests_total{code=\"ok\"}")
        .await
        .unwrap()
        + server
            .metric("tollgate_ratelimit_requests_total{code=\"over_limit\"}")
            .await
            .unwrap();
    assert_eq!(calls, 5, "the 6th request was refused locally");
}

/// Redis down: the service answers errors and each Envoy applies its
/// `failureMode`; Redis back: counting resumes, nothing restarted.
async fn global_failure_mode_when_redis_is_down_and_counting_resumes(runtime: Runtime) {
    let mut redis = Redis::start().await.expect("redis");
    let server = RatelimitServer::start(&paths::tollgate_bin(), &redis.url(), None)
        .await
        .expect("ratelimit-server");
    let config = |failure_mode| {
        globalize(
            rule(
                json!([{"headers": [{"name": "x-user-id", "type": "Distinct"}]}]),
                3,
                "Hour",
            ),
            &service("2s", failure_mode),
        )
    };
    let rls = || vec![grpc_cluster(SERVICE_CLUSTER, server.grpc)];
    let allow = Stage::start_on(runtime, "ratelimit", &config("allow"), rls()).await;
    let deny = Stage::start_on(runtime, "ratelimit", &config("deny"), rls()).await;
    let carol = Req::get("/foo").header("x-user-id", "carol");
    assert_eq!(statuses(&allow, &carol, 1).await, [200]);

    redis.kill();
    assert_eq!(statuses(&allow, &carol, 5).await, [200; 5], "allow");
    let refused = deny.send(&carol).await;
    assert_eq!(refused.status, 500, "deny");
    assert!(refused.echo.is_none());
    assert!(
        allow
            .envoy
            .counter_reaching(
                &runtime.metric("tollgate_ratelimit_service_failures"),
                5,
                FLUSH_WAIT
            )
            .await
            >= 5
    );

    redis.restart().await.expect("redis back");
    let mut recovered = false;
    for _ in 0..100 {
        if deny
            .send(&Req::get("/foo").header("x-user-id", "probe"))
            .await
            .status
            == 200
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(recovered, "still refused 5 s after Redis came back");
    // The new Redis is empty: carol's hour starts over, one budget for both Envoys.
    assert_eq!(statuses(&deny, &carol, 3).await, [200; 3]);
    assert_eq!(statuses(&allow, &carol, 1).await, [429]);
}

/// A service that never answers, one that refuses connections, and a cluster
/// Envoy does not have: each request waits at most `timeout`, then
/// `failureMode` decides (`/foo` allows, `/bar` denies), and the filter keeps
/// working afterwards.
async fn global_failure_mode_when_the_service_cannot_answer(runtime: Runtime) {
    // Accepts connections and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            connections.push(socket);
        }
    });
    let closed = std::net::SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let cases = [
        ("silent", Some(silent_addr)),
        ("refusing", Some(closed)),
        ("missing", None),
    ];
    for (case, addr) in cases {
        let policy = |failure_mode| {
            globalize(
                rule(json!([]), 100, "Hour"),
                &service("300ms", failure_mode),
            )
        };
        let config = json!({"routes": {"foo": policy("allow"), "bar": policy("deny")}});
        let clusters = addr
            .map(|a| vec![grpc_cluster(SERVICE_CLUSTER, a)])
            .unwrap_or_default();
        let s = Stage::start_on(runtime, "ratelimit", &config, clusters).await;
        for round in 0..3 {
            let started = Instant::now();
            assert_eq!(s.send(&Req::get("/foo")).await.status, 200, "{case} allow");
            assert_eq!(s.send(&Req::get("/bar")).await.status, 500, "{case} deny");
            // A hang bound, not a speed check: 2 × 300 ms timeouts, with room
            // for a busy machine.
            let waited = started.elapsed();
            assert!(
                waited < Duration::from_secs(5),
                "{case} round {round}: {waited:?}"
            );
        }
        assert!(
            s.envoy
                .counter_reaching(
                    &runtime.metric("tollgate_ratelimit_service_failures"),
                    6,
                    FLUSH_WAIT
                )
                .await
                >= 6,
            "{case}"
        );
    }
    held.abort();
}

/// A client that gives up while its request waits for the service: when the
/// service's answer (here, the timeout) comes for a stream that is gone,
/// nothing breaks, and later requests are decided as usual.
async fn global_a_client_leaving_while_its_request_waits_breaks_nothing(runtime: Runtime) {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            connections.push(socket);
        }
    });
    let config = globalize(rule(json!([]), 100, "Hour"), &service("1s", "deny"));
    let s = Stage::start_on(
        runtime,
        "ratelimit",
        &config,
        vec![grpc_cluster(SERVICE_CLUSTER, silent_addr)],
    )
    .await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    for _ in 0..5 {
        let gone = impatient.get(format!("{}/foo", s.base)).send().await;
        assert!(gone.is_err(), "the client gave up first");
    }
    // Past the service timeout of the abandoned requests.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        statuses(&s, &Req::get("/foo"), 3).await,
        [500; 3],
        "deny, as before"
    );
    assert!(
        s.envoy
            .counter_reaching(
                &runtime.metric("tollgate_ratelimit_service_failures"),
                3,
                FLUSH_WAIT
            )
            .await
            >= 3
    );
    held.abort();
}

/// Two Envoys against one service and one Redis: limit 10 → exactly 10 admitted.
async fn global_two_envoys_share_one_budget(runtime: Runtime) {
    let redis = Redis::start().await.expect("redis");
    let server = RatelimitServer::start(&paths::tollgate_bin(), &redis.url(), None)
        .await
        .expect("ratelimit-server");
    let config = globalize(rule(json!([]), 10, "Hour"), &service("2s", "allow"));
    let rls = || vec![grpc_cluster(SERVICE_CLUSTER, server.grpc)];
    let a = Stage::start_on(runtime, "ratelimit", &config, rls()).await;
    let b = Stage::start_on(runtime, "ratelimit", &config, rls()).await;
    let req = Req::get("/foo");
    let (sa, sb) = tokio::join!(
        concurrent_statuses(&a.base, &req, 15, 5),
        concurrent_statuses(&b.base, &req, 15, 5)
    );
    let admitted = sa.iter().chain(&sb).filter(|s| **s == 200).count();
    let refused = sa.iter().chain(&sb).filter(|s| **s == 429).count();
    assert_eq!((admitted, refused), (10, 20), "a: {sa:?}, b: {sb:?}");
}

on_both_runtimes!(
    bad_configs_are_rejected_naming_the_field,
    local_a_flood_of_distinct_values_grows_no_memory_and_lets_no_user_past_the_limit,
    local_values_crafted_to_collide_with_a_victim_cannot_lift_its_limit,
    global_local_and_global_rules_together,
    global_failure_mode_when_redis_is_down_and_counting_resumes,
    global_failure_mode_when_the_service_cannot_answer,
    global_a_client_leaving_while_its_request_waits_breaks_nothing,
    global_two_envoys_share_one_budget,
);
