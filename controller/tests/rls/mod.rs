//! What the rate limit service's tests share: a client's requests and the
//! service's health, as Envoy and Kubernetes see them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a broken setup should stop the test loudly

use std::path::Path;
use std::time::Duration;

use e2e::ratelimit_server::RatelimitServer;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{
    Entry, RateLimitOverride,
};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use tonic::transport::Channel;

/// `RateLimitUnit::Hour`.
pub const HOUR: i32 = 3;

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tollgate"))
}

pub fn descriptor(entries: &[(&str, &str)], limit: Option<(u32, i32)>) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: entries
            .iter()
            .map(|(k, v)| Entry {
                key: k.to_string(),
                value: v.to_string(),
            })
            .collect(),
        limit: limit.map(|(requests_per_unit, unit)| RateLimitOverride {
            requests_per_unit,
            unit,
        }),
        ..RateLimitDescriptor::default()
    }
}

pub fn request(domain: &str, descriptors: Vec<RateLimitDescriptor>) -> RateLimitRequest {
    RateLimitRequest {
        domain: domain.into(),
        descriptors,
        hits_addend: 0,
    }
}

/// The overall codes of `n` calls of `req`, one after another.
pub async fn codes(
    client: &RateLimitServiceClient<Channel>,
    req: &RateLimitRequest,
    n: usize,
) -> Vec<Code> {
    let mut client = client.clone();
    let mut out = Vec::new();
    for _ in 0..n {
        let r = client.should_rate_limit(req.clone()).await.unwrap();
        out.push(Code::try_from(r.into_inner().overall_code).unwrap());
    }
    out
}

/// The gRPC health status of the overall server ("") and of the rate limit service.
pub async fn health_statuses(server: &RatelimitServer) -> Vec<i32> {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let channel = Channel::from_shared(server.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let mut out = Vec::new();
    for service in ["", "envoy.service.ratelimit.v3.RateLimitService"] {
        let request = HealthCheckRequest {
            service: service.into(),
        };
        out.push(health.check(request).await.unwrap().into_inner().status);
    }
    out
}

/// `/readyz`'s HTTP status.
pub async fn readyz(server: &RatelimitServer) -> u16 {
    reqwest::get(format!("http://{}/readyz", server.metrics))
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits (bounded) until the gRPC health status is `want` for both names.
pub async fn wait_for_health(server: &RatelimitServer, want: i32) -> Vec<i32> {
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen = health_statuses(server).await;
        if seen.iter().all(|s| *s == want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen
}

/// The service is NOT_SERVING in gRPC health and 503 at `/readyz` (waiting,
/// bounded, for its first Redis check), and a counted call is UNAVAILABLE.
pub async fn not_ready_and_unavailable(server: &RatelimitServer) {
    use tonic_health::pb::health_check_response::ServingStatus;
    let not_serving = ServingStatus::NotServing as i32;
    assert_eq!(wait_for_health(server, not_serving).await, [not_serving; 2]);
    assert_eq!(readyz(server).await, 503);
    let mut client = RateLimitServiceClient::connect(server.grpc_url())
        .await
        .unwrap();
    let call = request("edge", vec![descriptor(&[("user", "a")], Some((3, HOUR)))]);
    let error = client.should_rate_limit(call).await.unwrap_err();
    assert_eq!(error.code(), tonic::Code::Unavailable, "{error:?}");
}
