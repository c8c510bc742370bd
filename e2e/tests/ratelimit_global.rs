//! `tollgate ratelimit-server` (dist/tollgate) behind Envoy's NATIVE
//! `envoy.filters.http.ratelimit` filter, with limits from an
//! envoyproxy/ratelimit-style YAML file and a real Redis: the 4th request of a
//! 3/hour user is refused; two Envoys share one budget; Redis down → the
//! filter's failure mode; Redis back → counting resumes, nothing restarted.

use std::time::Duration;

use e2e::echo::Echo;
use e2e::envoy::Envoy;
use e2e::envoy_config::{
    cluster, grpc_cluster, header_ratelimited_route, native_ratelimit_filter, Listener, LISTENER,
};
use e2e::paths;
use e2e::ratelimit_server::RatelimitServer;
use e2e::redis::Redis;
use e2e::roundtrip::{client, concurrent_statuses, send, Req};

const LIMITS: &str = "
domain: edge
descriptors:
  - key: user
    rate_limit: {unit: hour, requests_per_unit: 3}
  - key: team
    rate_limit: {unit: hour, requests_per_unit: 10}
";

struct Proxy {
    envoy: Envoy,
    base: String,
}

/// An Envoy whose only route sends `x-user-id` as descriptor `user` and
/// `x-team` as `team` to the rate limit service.
async fn envoy(backend: &Echo, service: &RatelimitServer, failure_mode_deny: bool) -> Proxy {
    let mut route = header_ratelimited_route("all", "/", "backend", "x-user-id", "user");
    route["route"]["rate_limits"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"actions": [{"request_headers": {"header_name": "x-team", "descriptor_key": "team"}}]}));
    let listener = Listener {
        http_filters: vec![native_ratelimit_filter(
            "edge",
            "ratelimit",
            failure_mode_deny,
        )],
        routes: vec![route],
        clusters: vec![
            cluster("backend", backend.addr()),
            grpc_cluster("ratelimit", service.grpc),
        ],
        ..Listener::default()
    };
    let envoy = Envoy::start(&listener.bootstrap()).await;
    let base = envoy.listener_url(LISTENER).await;
    Proxy { envoy, base }
}

impl Proxy {
    async fn status(&self, req: &Req) -> u16 {
        send(&client(), &self.base, req).await.unwrap().status
    }

    async fn statuses(&self, req: &Req, n: usize) -> Vec<u16> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(self.status(req).await);
        }
        out
    }
}

fn user(id: &str) -> Req {
    Req::get("/").header("x-user-id", id)
}

#[tokio::test]
async fn fourth_request_of_a_3_per_hour_user_is_refused() {
    let redis = Redis::start().await.unwrap();
    let service = RatelimitServer::start(&paths::tollgate_bin(), &redis.url(), Some(LIMITS))
        .await
        .unwrap();
    let backend = Echo::start("backend").await.unwrap();
    let proxy = envoy(&backend, &service, false).await;
    assert_eq!(
        proxy.statuses(&user("alice"), 4).await,
        [200, 200, 200, 429]
    );
    assert_eq!(proxy.statuses(&user("bob"), 3).await, [200; 3]);
    let refused = send(&client(), &proxy.base, &user("alice")).await.unwrap();
    assert_eq!(refused.status, 429);
    assert_eq!(
        refused.header("x-ratelimit-limit").as_deref(),
        Some("3, 3;w=3600")
    );
    assert_eq!(
        refused.header("x-ratelimit-remaining").as_deref(),
        Some("0")
    );
    // No header, no descriptor: not limited.
    assert_eq!(proxy.statuses(&Req::get("/"), 5).await, [200; 5]);
    assert_eq!(
        proxy
            .envoy
            .prometheus_counter("envoy_cluster_ratelimit_over_limit")
            .await
            .unwrap(),
        2
    );
}

#[tokio::test]
async fn two_envoys_share_one_budget() {
    const REQUESTS_PER_ENVOY: usize = 15;
    let redis = Redis::start().await.unwrap();
    let service = RatelimitServer::start(&paths::tollgate_bin(), &redis.url(), Some(LIMITS))
        .await
        .unwrap();
    let backend = Echo::start("backend").await.unwrap();
    let a = envoy(&backend, &service, false).await;
    let b = envoy(&backend, &service, false).await;
    let team = Req::get("/").header("x-team", "blue");
    let (sa, sb) = tokio::join!(
        concurrent_statuses(&a.base, &team, REQUESTS_PER_ENVOY, 5),
        concurrent_statuses(&b.base, &team, REQUESTS_PER_ENVOY, 5)
    );
    let admitted = sa.iter().chain(&sb).filter(|s| **s == 200).count();
    let refused = sa.iter().chain(&sb).filter(|s| **s == 429).count();
    assert_eq!(
        (admitted, refused),
        (10, 20),
        "envoy a: {sa:?}, envoy b: {sb:?}"
    );
}

#[tokio::test]
async fn redis_down_applies_the_failure_mode_and_counting_resumes_when_it_is_back() {
    let mut redis = Redis::start().await.unwrap();
    let service = RatelimitServer::start(&paths::tollgate_bin(), &redis.url(), Some(LIMITS))
        .await
        .unwrap();
    let backend = Echo::start("backend").await.unwrap();
    let allow = envoy(&backend, &service, false).await;
    let deny = envoy(&backend, &service, true).await;
    assert_eq!(allow.statuses(&user("carol"), 1).await, [200]);

    redis.kill();
    assert_eq!(
        allow.statuses(&user("carol"), 5).await,
        [200; 5],
        "failure_mode_deny: false lets requests through"
    );
    assert_eq!(
        deny.statuses(&user("carol"), 2).await,
        [500; 2],
        "failure_mode_deny: true refuses them"
    );
    assert!(
        service
            .metric("tollgate_ratelimit_redis_errors_total")
            .await
            .unwrap()
            >= 7
    );

    redis.restart().await.unwrap();
    let mut recovered = false;
    for _ in 0..100 {
        if deny.status(&user("probe")).await == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(recovered, "Envoy still refused 5 s after Redis came back");
    // The new Redis is empty: carol's hour starts over.
    assert_eq!(deny.statuses(&user("carol"), 4).await, [200, 200, 200, 429]);
    assert_eq!(allow.statuses(&user("carol"), 1).await, [429]);
}
