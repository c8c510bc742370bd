//! ratelimit.wasm in local mode, in a real Envoy with two workers: Envoy
//! Gateway's rate limit guide scenarios, one budget across workers under
//! concurrent load, the response headers, shadow mode, the per-route envelope,
//! gRPC answers and bad configs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use e2e::envoy::{Envoy, Options};
use e2e::envoy_config::{wasm_filter, Listener};
use e2e::paths;
use e2e::roundtrip::{client, send, Req};
use e2e::stage::Stage;
use serde_json::{json, Value};

async fn start(config: Value) -> Stage {
    Stage::start("ratelimit", &config).await
}

fn rule(selectors: Value, requests: u64, unit: &str) -> Value {
    json!({"local": {"rules": [
        {"clientSelectors": selectors, "limit": {"requests": requests, "unit": unit}}
    ]}})
}

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
#[tokio::test]
async fn guide_exact_header() {
    let s = start(rule(
        json!([{"headers": [{"name": "x-user-id", "value": "one"}]}]),
        3,
        "Hour",
    ))
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

#[tokio::test]
async fn guide_distinct_header() {
    let s = start(rule(
        json!([{"headers": [{"name": "x-user-id", "type": "Distinct"}]}]),
        3,
        "Hour",
    ))
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

#[tokio::test]
async fn guide_no_selectors_share_one_budget() {
    let s = start(rule(json!([]), 3, "Hour")).await;
    let mut got = Vec::new();
    for id in ["a", "b", "c", "d", "e"] {
        got.push(s.send(&user(id)).await.status);
    }
    assert_eq!(got, [200, 200, 200, 429, 429]);
}

/// Two workers, 50 concurrent clients, 20 per minute: exactly 20 pass.
#[tokio::test]
async fn one_budget_across_workers_under_concurrency() {
    // Stay clear of a minute boundary, which would open a second window.
    let second = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() % 60)
        .unwrap_or(0);
    if second > 50 {
        tokio::time::sleep(Duration::from_secs(61 - second)).await;
    }
    let s = start(rule(json!([]), 20, "Minute")).await;
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

#[tokio::test]
async fn shadow_mode_counts_but_never_refuses() {
    let s = start(json!({"local": {"rules": [
        {"limit": {"requests": 2, "unit": "Hour"}, "shadowMode": true}
    ]}}))
    .await;
    assert_eq!(statuses(&s, &Req::get("/foo"), 5).await, [200; 5]);
    let mut shadow = 0;
    for _ in 0..30 {
        shadow = s
            .envoy
            .prometheus_counter("tollgate_ratelimit_shadow_limited")
            .await
            .expect("stats");
        if shadow >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(shadow, 3);
}

#[tokio::test]
async fn per_route_policies_count_apart() {
    let limit = |n| json!({"local": {"rules": [{"limit": {"requests": n, "unit": "Hour"}}]}});
    let s = start(json!({"routes": {"foo": limit(1), "bar": limit(1)}})).await;
    assert_eq!(statuses(&s, &Req::get("/foo"), 2).await, [200, 429]);
    assert_eq!(
        statuses(&s, &Req::get("/bar"), 2).await,
        [200, 429],
        "own budget"
    );
}

#[tokio::test]
async fn methods_paths_regex_and_source_address() {
    let s = start(json!({"local": {"rules": [
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

#[tokio::test]
async fn grpc_requests_get_resource_exhausted() {
    let s = start(rule(json!([]), 1, "Hour")).await;
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

#[tokio::test]
async fn bad_configs_are_rejected_naming_the_field() {
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
            json!({"global": {"rules": [{"limit": {"requests": 3, "unit": "Hour"}}]}, "service": {"cluster": "rls"}}),
            "`global`: global rules are not supported by this build yet",
        ),
    ];
    for (config, expected) in cases {
        let listener = Listener {
            http_filters: vec![wasm_filter("ratelimit", &paths::wasm("ratelimit"), &config)],
            routes: vec![e2e::envoy_config::direct_route("any", "/", "ok")],
            ..Listener::default()
        };
        let failure = match Envoy::try_start(&listener.bootstrap(), &Options::default()).await {
            Ok(_) => panic!("Envoy accepted {config}"),
            Err(f) => f,
        };
        assert!(
            failure.log.contains(expected),
            "{expected}\n{}",
            failure.log
        );
    }
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

/// 100,000 distinct `x-user-id` values in one window: the counters live in a
/// fixed table created at configure time, so Envoy's memory does not follow
/// the number of distinct values; once the table is full for the window, the
/// overflow is let through and counted.
#[tokio::test]
async fn distinct_values_cannot_grow_memory() {
    const USERS: usize = 100_000;
    const CLIENTS: usize = 50;
    let s = start(rule(
        json!([{"headers": [{"name": "x-user-id", "type": "Distinct"}]}]),
        3,
        "Hour",
    ))
    .await;
    assert_eq!(s.send(&user("warm-up")).await.status, 200);
    let before = rss_kib(s.envoy.pid());
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (http, base) = (client(), s.base.clone());
            tokio::spawn(async move {
                let mut failures = 0;
                for i in (c..USERS).step_by(CLIENTS) {
                    let req = Req::get("/foo").header("x-user-id", &format!("user-{i}"));
                    match send(&http, &base, &req).await {
                        Ok(ex) if ex.status == 200 => {}
                        _ => failures += 1,
                    }
                }
                failures
            })
        })
        .collect();
    let mut failures = 0;
    for t in tasks {
        failures += t.await.expect("client task");
    }
    assert_eq!(failures, 0, "every first request of a user passes");
    let after = rss_kib(s.envoy.pid());
    let grown = after.saturating_sub(before);
    eprintln!("Envoy RSS {before} KiB -> {after} KiB (+{grown} KiB) after {USERS} distinct users");
    assert!(grown < 16 * 1024, "RSS grew {grown} KiB");
    let mut full = 0;
    for _ in 0..30 {
        full = s
            .envoy
            .prometheus_counter("tollgate_ratelimit_bucket_table_full")
            .await
            .expect("stats");
        if full > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(full > 0, "the table filled up and said so");
}
