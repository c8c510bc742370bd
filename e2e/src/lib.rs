//! End-to-end test harness for the Tollgate filters.
//!
//! - [`envoy`] starts a real Envoy with a generated config on free loopback
//!   ports and stops it when dropped, printing its log if the test failed.
//! - [`envoy_config`] builds those configs, for either build of our filters
//!   ([`envoy_config::Runtime`]; [`on_both_runtimes`] runs a scenario on both).
//! - [`gateway`] is the controller live: `tollgate serve` on a temp config directory
//!   and an Envoy bootstrapped to it, for tests that change YAML and watch Envoy follow.
//! - [`echo`] is a backend following the Gateway API conformance echo contract.
//! - [`bench`] measures Envoy CPU per request with wrk, side by side with native filters.
//! - [`controller_bench`] generates N HTTPRoutes (with policies on a share of them) and
//!   measures processes, for the controller's scale benchmark.
//! - [`bench_verify`] measures one JWT signature verification per algorithm inside
//!   Envoy's V8 and natively.
//! - [`jwt_mint`] signs test JWTs with real keys of every supported algorithm.
//! - [`jwks_server`] is an identity provider's JWKS endpoint that counts fetches.
//! - [`stage`] is the common test stage: Envoy with one filter before one echo backend.
//! - [`redis`] is a real `redis-server` on a free loopback port that a test can kill and restart
//!   (optionally with TLS); [`redis_cluster`] joins several into a real Redis Cluster.
//! - [`ratelimit_server`] runs `tollgate ratelimit-server` against it.
//! - [`kube_apiserver`] is a real Kubernetes API server (built from Debian's sources by
//!   `scripts/kube-apiserver.sh`) with etcd and the Gateway API CRDs, for the Kubernetes provider;
//!   [`kube_stand_in`] stands in for core/v1, apps/v1 and authorization in front of it,
//!   and [`kubelet`] for kubelet, cluster DNS and the load balancer of provisioned Envoys.
//! - [`pki`] makes test certificates (CAs, server and client) for mutual TLS on xDS and Redis.
//! - [`process`] keeps every process a test starts from outliving it.
//! - [`conformance`] holds the Gateway API conformance tests as data
//!   (`e2e/tests/conformance/`): loading, backend placeholders and the checks.
//! - [`roundtrip`] sends a request and compares what the backend saw and what the
//!   client got with an expectation, conformance style.

pub mod bench;
pub mod bench_verify;
pub mod conformance;
pub mod controller_bench;
pub mod echo;
pub mod envoy;
pub mod envoy_config;
pub mod gateway;
pub mod jwks_server;
pub mod jwt_mint;
pub mod kube_apiserver;
pub mod kube_stand_in;
pub mod kubelet;
pub mod paths;
pub mod pki;
pub mod process;
pub mod ratelimit_server;
pub mod redis;
pub mod redis_cluster;
pub mod roundtrip;
pub mod split;
pub mod stage;

/// Runs each scenario `async fn name(runtime: Runtime)` as two tests,
/// `wasm::name` and `dynamic_module::name`: one suite for both builds of the
/// filters, so they cannot drift apart.
#[macro_export]
macro_rules! on_both_runtimes {
    ($($name:ident),+ $(,)?) => {
        mod wasm {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::envoy_config::Runtime::Wasm).await
                }
            )+
        }
        mod dynamic_module {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::envoy_config::Runtime::DynamicModule).await
                }
            )+
        }
    };
}
