//! `tollgate ratelimit-server` as a process, against a real `redis-server`,
//! called with tonic's client: limits from descriptor overrides and from the
//! YAML file, Redis going away and coming back, health, shutdown, and the Redis
//! round trips per call under concurrent load.

// Test helpers outside #[test] functions fail the test on a broken setup.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod rls;

use std::time::Duration;

use e2e::ratelimit_server::RatelimitServer;
use e2e::redis::Redis;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::UInt64Value;
use rls::{bin, descriptor, readyz, request, wait_for_health, HOUR};
use tonic::transport::Channel;

struct Setup {
    server: RatelimitServer,
    redis: Redis,
    client: RateLimitServiceClient<Channel>,
}

async fn start(config: Option<&str>) -> Setup {
    let redis = Redis::start().await.unwrap();
    let server = RatelimitServer::start(bin(), &redis.url(), config)
        .await
        .unwrap();
    let client = RateLimitServiceClient::connect(server.grpc_url())
        .await
        .unwrap();
    Setup {
        server,
        redis,
        client,
    }
}

impl Setup {
    async fn call(&self, req: RateLimitRequest) -> Result<RateLimitResponse, tonic::Status> {
        let mut client = self.client.clone();
        client.should_rate_limit(req).await.map(|r| r.into_inner())
    }

    async fn codes(&self, req: &RateLimitRequest, n: usize) -> Vec<Code> {
        rls::codes(&self.client, req, n).await
    }
}

fn user(id: &str) -> RateLimitRequest {
    request("edge", vec![descriptor(&[("user", id)], Some((3, HOUR)))])
}

#[tokio::test]
async fn limit_override_counts_per_descriptor_value() {
    let s = start(None).await;
    use Code::{Ok as Allowed, OverLimit};
    assert_eq!(
        s.codes(&user("alice"), 4).await,
        [Allowed, Allowed, Allowed, OverLimit]
    );
    assert_eq!(
        s.codes(&user("bob"), 3).await,
        [Allowed; 3],
        "bob counts apart"
    );
    let over = s.call(user("alice")).await.unwrap();
    let status = &over.statuses[0];
    assert_eq!(status.code, OverLimit as i32);
    assert_eq!(status.limit_remaining, 0);
    let limit = status.current_limit.clone().unwrap();
    assert_eq!((limit.requests_per_unit, limit.unit), (3, HOUR));
    let reset = status.duration_until_reset.unwrap().seconds;
    assert!((1..=3600).contains(&reset), "{reset}");

    // The counter is envoyproxy/ratelimit's key with the hour's start.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let key = format!("edge_user_alice_{}", now - now % 3600);
    let count = s.redis.command(&format!("GET {key}")).await.unwrap();
    // The 5th call was answered from the over-limit cache, not counted.
    assert!(count == "4" || now % 3600 < 5, "{key} = {count}");
    assert_eq!(
        s.server
            .metric("tollgate_ratelimit_requests_total{code=\"over_limit\"}")
            .await
            .unwrap(),
        2
    );

    // Descriptors with neither an override nor a config entry are not limited.
    let unlimited = request("edge", vec![descriptor(&[("user", "carol")], None)]);
    let codes = s.codes(&unlimited, 5).await;
    assert_eq!(codes, [Allowed; 5]);
    // One over-limit descriptor makes the whole call OVER_LIMIT.
    let mixed = request(
        "edge",
        vec![
            descriptor(&[("user", "dave")], Some((3, HOUR))),
            descriptor(&[("user", "alice")], Some((3, HOUR))),
        ],
    );
    let r = s.call(mixed).await.unwrap();
    assert_eq!(r.overall_code, OverLimit as i32);
    assert_eq!(r.statuses[0].code, Allowed as i32);
    assert_eq!(r.statuses[1].code, OverLimit as i32);
}

#[tokio::test]
async fn yaml_config_limits_descriptors_without_override() {
    let yaml = "
domain: edge
descriptors:
  - key: user
    rate_limit: {unit: hour, requests_per_unit: 2}
  - key: user
    value: admin
    rate_limit: {unlimited: true}
  - key: tenant
    descriptors:
      - key: path
        value: /login
        rate_limit: {unit: minute, requests_per_unit: 1, name: login}
";
    let s = start(Some(yaml)).await;
    use Code::{Ok as Allowed, OverLimit};
    let alice = request("edge", vec![descriptor(&[("user", "alice")], None)]);
    assert_eq!(s.codes(&alice, 3).await, [Allowed, Allowed, OverLimit]);
    let admin = request("edge", vec![descriptor(&[("user", "admin")], None)]);
    assert_eq!(s.codes(&admin, 4).await, [Allowed; 4]);
    let login = request(
        "edge",
        vec![descriptor(&[("tenant", "t1"), ("path", "/login")], None)],
    );
    assert_eq!(s.codes(&login, 2).await, [Allowed, OverLimit]);
    let r = s.call(login).await.unwrap();
    assert_eq!(r.statuses[0].current_limit.clone().unwrap().name, "login");
    // Another domain does not match the file.
    let other = request("other", vec![descriptor(&[("user", "alice")], None)]);
    assert_eq!(s.codes(&other, 3).await, [Allowed; 3]);
    // An override still wins over the file.
    let overridden = request(
        "edge",
        vec![descriptor(&[("user", "admin")], Some((1, HOUR)))],
    );
    assert_eq!(s.codes(&overridden, 2).await, [Allowed, OverLimit]);
}

#[tokio::test]
async fn redis_down_is_unavailable_and_counting_resumes_when_it_is_back() {
    let mut s = start(None).await;
    use Code::{Ok as Allowed, OverLimit};
    assert_eq!(s.codes(&user("alice"), 1).await, [Allowed]);

    s.redis.kill();
    let error = s.call(user("alice")).await.unwrap_err();
    assert_eq!(error.code(), tonic::Code::Unavailable, "{error:?}");
    assert!(error.message().contains("redis"), "{error:?}");
    assert!(
        s.server
            .metric("tollgate_ratelimit_redis_errors_total")
            .await
            .unwrap()
            >= 1
    );

    // Same port, empty (no persistence): the service reconnects by itself.
    s.redis.restart().await.unwrap();
    let mut recovered = false;
    for _ in 0..100 {
        if s.call(user("zed")).await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(recovered, "no answer within 5 s of Redis coming back");
    assert_eq!(
        s.codes(&user("alice"), 4).await,
        [Allowed, Allowed, Allowed, OverLimit],
        "alice's count started over in the new Redis"
    );
}

#[tokio::test]
async fn starts_while_redis_is_down_and_serves_once_it_is_up() {
    let mut redis = Redis::start().await.unwrap();
    redis.kill();
    let server = RatelimitServer::start(bin(), &redis.url(), None)
        .await
        .unwrap();
    let mut client = RateLimitServiceClient::connect(server.grpc_url())
        .await
        .unwrap();
    let error = client.should_rate_limit(user("a")).await.unwrap_err();
    assert_eq!(error.code(), tonic::Code::Unavailable, "{error:?}");
    redis.restart().await.unwrap();
    let mut answered = None;
    for _ in 0..100 {
        if let Ok(r) = client.should_rate_limit(user("a")).await {
            answered = Some(r.into_inner());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answered.map(|r| r.overall_code), Some(Code::Ok as i32));
}

#[tokio::test]
async fn bad_requests_are_invalid_argument() {
    let s = start(None).await;
    let empty = s.call(request("edge", vec![])).await.unwrap_err();
    assert_eq!(empty.code(), tonic::Code::InvalidArgument);
    let no_domain = s.call(request("", vec![descriptor(&[("k", "v")], None)]));
    assert_eq!(
        no_domain.await.unwrap_err().code(),
        tonic::Code::InvalidArgument
    );
    let bad_unit = request("edge", vec![descriptor(&[("k", "v")], Some((1, 42)))]);
    let e = s.call(bad_unit).await.unwrap_err();
    assert!(e.message().contains("descriptors[0].limit.unit"), "{e:?}");
}

#[tokio::test]
async fn health_is_serving_and_sigterm_stops_cleanly() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let mut s = start(None).await;
    let channel = Channel::from_shared(s.server.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for service in ["", "envoy.service.ratelimit.v3.RateLimitService"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "{service:?}");
    }
    let metrics = s.server.metrics_text().await.unwrap();
    assert!(
        metrics.contains("tollgate_ratelimit_redis_pipelines_total"),
        "{metrics}"
    );
    let status = s.server.terminate().await.unwrap();
    assert!(status.success(), "{status}");
    let log = s.server.log();
    assert!(
        log.contains("SIGTERM received") && log.contains("stopped"),
        "{log}"
    );
    drop(s.client);
}

/// Many concurrent calls share Redis round trips: the batch task sends one
/// pipeline for all calls waiting, so pipelines < calls. Answers are exact
/// (every call under the limit is one INCRBY), only the sharing varies with timing.
#[tokio::test]
async fn concurrent_calls_share_redis_round_trips() {
    const CLIENTS: usize = 32;
    const CALLS_PER_CLIENT: usize = 50;
    let s = start(None).await;
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let mut client = s.client.clone();
        tasks.push(tokio::spawn(async move {
            let mut over = 0;
            for _ in 0..CALLS_PER_CLIENT {
                let req = request(
                    "edge",
                    vec![
                        descriptor(&[("client", &c.to_string())], Some((1000, HOUR))),
                        descriptor(&[("all", "x")], Some((1000, HOUR))),
                    ],
                );
                let r =
                    tokio::time::timeout(Duration::from_secs(10), client.should_rate_limit(req))
                        .await
                        .expect("call timed out")
                        .unwrap()
                        .into_inner();
                if r.overall_code == Code::OverLimit as i32 {
                    over += 1;
                }
            }
            over
        }));
    }
    let mut over = 0;
    for t in tasks {
        over += t.await.unwrap();
    }
    let calls = (CLIENTS * CALLS_PER_CLIENT) as u64;
    // 1600 calls on "all" with a limit of 1000: exactly 600 refused.
    assert_eq!(over, calls - 1000);
    let pipelines = s
        .server
        .metric("tollgate_ratelimit_redis_pipelines_total")
        .await
        .unwrap();
    let incrby = s.redis.command_calls("incrby").await.unwrap();
    // One INCRBY per descriptor, except calls on "all" once it is known to be
    // over its limit (answered from the over-limit cache).
    assert!(
        (calls + 1001..=2 * calls).contains(&incrby),
        "{incrby} INCRBY for {calls} calls"
    );
    eprintln!(
        "{calls} calls ({CLIENTS} concurrent clients, 2 descriptors each): {pipelines} Redis pipelines, {:.3} round trips per call",
        pipelines as f64 / calls as f64
    );
    assert!(pipelines < calls, "{pipelines} pipelines for {calls} calls");
}

/// The keys `user(id)` counts on in this hour and the next (so a test that
/// straddles the hour still finds its key).
fn user_keys(id: &str) -> [String; 2] {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let hour = now - now % 3600;
    [hour, hour + 3600].map(|start| format!("edge_user_{id}_{start}"))
}

/// Issue 18, item 8: a `hits_addend` beyond a uint32 is refused for what it
/// is, and one caller's key that Redis cannot increment (not a number) fails
/// only that caller's call, while 400 other calls batched with it answer.
#[tokio::test]
async fn one_callers_bad_counter_or_huge_hits_addend_disturbs_no_other_call() {
    let s = start(None).await;
    let mut huge = user("greedy");
    huge.descriptors[0].hits_addend = Some(UInt64Value { value: u64::MAX });
    let refused = s.call(huge).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().contains("descriptors[0].hits_addend"),
        "{}",
        refused.message()
    );
    for key in user_keys("broken") {
        s.redis
            .command(&format!("SET {key} not-a-number"))
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for c in 0..400 {
        let mut client = s.client.clone();
        tasks.push(tokio::spawn(async move {
            let id = if c % 4 == 0 {
                "broken".to_string()
            } else {
                format!("u{c}")
            };
            let r = client.should_rate_limit(user(&id)).await;
            (
                id,
                r.map(|r| r.into_inner().overall_code).map_err(|e| e.code()),
            )
        }));
    }
    for t in tasks {
        match t.await.unwrap() {
            (id, r) if id == "broken" => assert_eq!(r, Err(tonic::Code::Unavailable)),
            (id, r) => assert_eq!(r, Ok(Code::Ok as i32), "{id}"),
        }
    }
}

/// Issue 18, item 8: a counter at Redis's ceiling stays over the limit (it
/// saturates) instead of failing every later call on its key.
#[tokio::test]
async fn a_counter_at_the_top_answers_over_limit_not_unavailable() {
    let s = start(None).await;
    for key in user_keys("top") {
        s.redis
            .command(&format!("SET {key} {}", i64::MAX - 1))
            .await
            .unwrap();
    }
    let mut push = user("top");
    push.descriptors[0].hits_addend = Some(UInt64Value { value: 5 });
    for _ in 0..3 {
        let r = s.call(push.clone()).await.unwrap();
        assert_eq!(r.overall_code, Code::OverLimit as i32);
        assert_eq!(r.statuses[0].limit_remaining, 0);
    }
}

/// Issue 18, item 11: a wrong Redis password is NOT_SERVING in the gRPC
/// health check and 503 at `/readyz` (while `/healthz`, liveness, stays ok),
/// never SERVING; and the password appears in no log line.
#[tokio::test]
async fn health_follows_whether_redis_answers_and_a_wrong_password_is_not_serving() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let redis = Redis::start().await.unwrap();
    redis
        .command("CONFIG SET requirepass right-secret")
        .await
        .unwrap();
    let url = format!("redis://:wrong-secret@127.0.0.1:{}", redis.port());
    let server = RatelimitServer::start(bin(), &url, None).await.unwrap();
    rls::not_ready_and_unavailable(&server).await;
    let log = server.log();
    assert!(log.contains("redis does not answer"), "{log}");
    assert!(
        !log.contains("wrong-secret"),
        "the password was logged: {log}"
    );
    drop(server);

    // The right password: serving, and ready.
    let url = format!("redis://:right-secret@127.0.0.1:{}", redis.port());
    let server = RatelimitServer::start(bin(), &url, None).await.unwrap();
    let serving = ServingStatus::Serving as i32;
    assert_eq!(wait_for_health(&server, serving).await, [serving; 2]);
    assert_eq!(readyz(&server).await, 200);
    assert!(!server.log().contains("right-secret"));
}

/// Issue 18, item 9: a call over the bounds (here 1,000 descriptors, and one
/// 50 KB value) is INVALID_ARGUMENT and costs Redis nothing.
#[tokio::test]
async fn a_call_over_the_bounds_is_refused_before_redis() {
    let s = start(None).await;
    let many = request(
        "edge",
        (0..1000)
            .map(|i| descriptor(&[("user", &format!("u{i}"))], Some((3, HOUR))))
            .collect(),
    );
    let e = s.call(many).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().contains("descriptors: 1000 is more than"),
        "{e:?}"
    );
    let big = "v".repeat(50_000);
    let e = s.call(user(&big)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("descriptors[0].entries[0]"), "{e:?}");
    assert_eq!(s.redis.command_calls("incrby").await.unwrap(), 0);
    // An ordinary call still counts.
    assert_eq!(s.codes(&user("a"), 1).await, [Code::Ok]);
}

/// Issue 18, item 13: once a key is over its limit in this window, further
/// calls on it are answered OVER_LIMIT from memory, without a Redis command;
/// other keys still count in Redis.
#[tokio::test]
async fn a_key_over_its_limit_is_answered_without_redis_until_its_window_ends() {
    let s = start(None).await;
    let codes = s.codes(&user("hot"), 4).await;
    assert_eq!(
        codes,
        [Code::Ok, Code::Ok, Code::Ok, Code::OverLimit],
        "3 per hour"
    );
    assert_eq!(s.redis.command_calls("incrby").await.unwrap(), 4);
    assert_eq!(s.codes(&user("hot"), 10).await, [Code::OverLimit; 10]);
    assert_eq!(
        s.redis.command_calls("incrby").await.unwrap(),
        4,
        "no Redis command for a key known to be over"
    );
    let hits = s
        .server
        .metric("tollgate_ratelimit_over_limit_cache_hits_total")
        .await
        .unwrap();
    assert_eq!(hits, 10);
    assert_eq!(s.codes(&user("cold"), 1).await, [Code::Ok]);
    assert_eq!(s.redis.command_calls("incrby").await.unwrap(), 5);
}

/// Issue 18, item 1: a wildcard value (`foo*`, and `*` in the middle) limits
/// every value it matches, one counter per matched value.
#[tokio::test]
async fn a_wildcard_value_limits_each_matching_value_apart() {
    let s = start(Some(
        "domain: edge\ndescriptors:\n  - key: user\n    value: foo*\n    rate_limit: {unit: hour, requests_per_unit: 1}\n  - key: user\n    value: bar*b\n    rate_limit: {unit: hour, requests_per_unit: 1}\n",
    ))
    .await;
    let call = |id: &str| request("edge", vec![descriptor(&[("user", id)], None)]);
    use Code::{Ok as Allowed, OverLimit};
    assert_eq!(s.codes(&call("foo1"), 2).await, [Allowed, OverLimit]);
    assert_eq!(
        s.codes(&call("foo2"), 2).await,
        [Allowed, OverLimit],
        "its own counter"
    );
    assert_eq!(s.codes(&call("bar-x-b"), 2).await, [Allowed, OverLimit]);
    assert_eq!(
        s.codes(&call("bar-x"), 3).await,
        [Allowed; 3],
        "matches no pattern"
    );
}

/// Issue 18, item 4: an edited config file is served without a restart, and
/// one that stops parsing leaves the last good limits serving, logged with
/// its file and line.
#[tokio::test]
async fn an_edited_config_is_reloaded_and_a_broken_one_keeps_the_last_good() {
    let limits = |n: u32| {
        format!("domain: edge\ndescriptors:\n  - key: user\n    rate_limit: {{unit: hour, requests_per_unit: {n}}}\n")
    };
    let s = start(Some(&limits(1))).await;
    let call = request("edge", vec![descriptor(&[("user", "a")], None)]);
    use Code::{Ok as Allowed, OverLimit};
    assert_eq!(s.codes(&call, 2).await, [Allowed, OverLimit]);
    std::fs::write(s.server.config_file(), limits(100)).unwrap();
    let mut reloaded = false;
    // Bounded: the service polls every 2 s.
    for i in 0..100 {
        let id = format!("fresh-{i}");
        let other = request("edge", vec![descriptor(&[("user", &id)], None)]);
        if s.codes(&other, 2).await == [Allowed, Allowed] {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        reloaded,
        "the new limit never applied; log:\n{}",
        s.server.log()
    );
    std::fs::write(
        s.server.config_file(),
        "domain: edge\ndescriptors:\n  - key: user\n    rate_limit: {unit: fortnight}\n",
    )
    .unwrap();
    for _ in 0..100 {
        if s.server.log().contains("not reloaded") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = s.server.log();
    assert!(
        log.contains("not reloaded") && log.contains("limits.yaml") && log.contains("line 4"),
        "{log}"
    );
    let third = request("edge", vec![descriptor(&[("user", "third")], None)]);
    assert_eq!(
        s.codes(&third, 3).await,
        [Allowed; 3],
        "the last good limit (100) serves"
    );
}
