//! Prometheus metrics and the `--metrics-listen` HTTP endpoint (`/metrics`,
//! `/healthz`, `/readyz`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// The overall answer of one `ShouldRateLimit` call.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: &'static str,
}

/// Counters shared by the gRPC service and the Redis batch task; clones share values.
#[derive(Clone)]
pub struct Metrics {
    /// `ShouldRateLimit` calls by answer: `ok`, `over_limit`, `error` (a gRPC error status).
    pub requests: Family<CodeLabel, Counter>,
    /// Descriptors counted against a limit, and those over it (shadow mode included).
    pub descriptors_counted: Counter,
    pub descriptors_over_limit: Counter,
    /// Over the limit but let through because the config entry is in shadow mode.
    pub descriptors_shadow_over_limit: Counter,
    /// Pipelines sent to Redis (one round trip each) and the commands in them.
    pub redis_pipelines: Counter,
    pub redis_commands: Counter,
    /// Pipelines that failed (Redis down, timeout); their calls answered UNAVAILABLE.
    pub redis_errors: Counter,
    /// Descriptors answered OVER_LIMIT from the over-limit cache, without Redis.
    pub over_limit_cache_hits: Counter,
    registry: Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("tollgate_ratelimit");
        let requests = Family::<CodeLabel, Counter>::default();
        registry.register(
            "requests",
            "ShouldRateLimit calls by overall answer (ok, over_limit, error)",
            requests.clone(),
        );
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let descriptors_counted = counter(
            &mut registry,
            "descriptors_counted",
            "Descriptors counted against a limit",
        );
        let descriptors_over_limit = counter(
            &mut registry,
            "descriptors_over_limit",
            "Descriptors over their limit (answered OVER_LIMIT)",
        );
        let descriptors_shadow_over_limit = counter(
            &mut registry,
            "descriptors_shadow_over_limit",
            "Descriptors over a shadow-mode limit (answered OK)",
        );
        let redis_pipelines = counter(
            &mut registry,
            "redis_pipelines",
            "Pipelines sent to Redis, one round trip each",
        );
        let redis_commands = counter(
            &mut registry,
            "redis_commands",
            "Commands sent to Redis (INCRBY and EXPIRE)",
        );
        let redis_errors = counter(
            &mut registry,
            "redis_errors",
            "Redis pipelines that failed; their calls were answered UNAVAILABLE",
        );
        let over_limit_cache_hits = counter(
            &mut registry,
            "over_limit_cache_hits",
            "Descriptors answered OVER_LIMIT from the over-limit cache, without Redis",
        );
        Metrics {
            requests,
            descriptors_counted,
            descriptors_over_limit,
            descriptors_shadow_over_limit,
            redis_pipelines,
            redis_commands,
            redis_errors,
            over_limit_cache_hits,
            registry: Arc::new(registry),
        }
    }

    pub fn request(&self, code: &'static str) {
        self.requests.get_or_create(&CodeLabel { code }).inc();
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Serves `/metrics`, `/healthz` (alive) and `/readyz` (Redis answers) on
/// `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    redis_up: Arc<AtomicBool>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    match metrics.render() {
                        Ok(text) => (
                            [(
                                CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            text,
                        )
                            .into_response(),
                        Err(e) => (
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                            format!("encoding metrics: {e}"),
                        )
                            .into_response(),
                    }
                }
            }),
        )
        // Alive: the process answers (a Redis outage is no reason to restart it).
        .route("/healthz", get(|| async { "ok\n" }))
        // Ready: Redis answers, so calls can be counted.
        .route(
            "/readyz",
            get(move || {
                let up = redis_up.load(Ordering::Relaxed);
                async move {
                    if up {
                        (StatusCode::OK, "ok\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "redis does not answer\n")
                    }
                }
            }),
        );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds the metrics listener; a clear error names the address.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding --metrics-listen {addr}: {e}"))
}
