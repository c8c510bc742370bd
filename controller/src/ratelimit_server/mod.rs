//! `tollgate ratelimit-server`: the global rate limit service.
//!
//! Envoy's standard `envoy.service.ratelimit.v3.RateLimitService` over gRPC,
//! counting in Redis so that every Envoy replica pointed at it shares one budget.
//! Tollgate's wasm filter sends each descriptor's limit with it; Envoy's native
//! `envoy.filters.http.ratelimit` filter can use it too, with limits from an
//! envoyproxy/ratelimit-style `--config` file.
//!
//! - [`service`]: the gRPC method: descriptors → counters → answer.
//! - [`redis_store`]: the counters, and why one pipeline serves many calls;
//!   [`redis_connection`]: one Redis or a Redis Cluster, plain or TLS.
//! - [`over_limit_cache`]: keys over their limit, answered without Redis.
//! - [`config_file`]: one YAML limits file and its matching ([`wildcard`]: values with `*`);
//!   [`config_set`]: every `--config` file and directory, by domain, reloaded on change.
//! - [`metrics`]: Prometheus counters and the `/metrics`, `/healthz`, `/readyz` endpoint.

pub mod config_file;
pub mod config_set;
pub mod metrics;
pub mod over_limit_cache;
pub mod redis_connection;
pub mod redis_store;
pub mod service;
pub mod wildcard;
pub mod yaml_lines;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context as _, Result};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

use config_set::ConfigSet;
use metrics::Metrics;
use over_limit_cache::OverLimitCache;
use redis_connection::RedisArgs;
use redis_store::RedisStore;
use service::RateLimiter;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    redis: RedisArgs,
    /// Address of the gRPC server (RateLimitService and grpc.health.v1.Health).
    #[arg(long, default_value = "127.0.0.1:8081", value_name = "ADDR")]
    listen: SocketAddr,
    /// Address of the HTTP endpoint serving `/metrics` (Prometheus) and `/healthz`; off when absent.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// envoyproxy/ratelimit-style YAML limits for descriptors that carry no `limit` override:
    /// a file, or a directory of `*.yaml` files (one domain each); repeatable. Reloaded on change.
    #[arg(long, value_name = "FILE|DIR")]
    config: Vec<PathBuf>,
    /// Keys remembered as over their limit until their window ends, answered without
    /// Redis; 0 turns the cache off.
    #[arg(long, default_value_t = 100_000, value_name = "KEYS")]
    over_limit_cache: usize,
}

/// Runs until SIGTERM or SIGINT, then stops accepting calls, finishes the ones
/// in flight (their Redis pipeline included) and returns.
pub async fn run(args: Args) -> Result<()> {
    let configs = if args.config.is_empty() {
        None
    } else {
        let set = ConfigSet::load(&args.config)?;
        tracing::info!(paths = ?args.config, domains = ?set.domains(), "loaded rate limit config");
        Some(Arc::new(RwLock::new(Arc::new(set))))
    };
    let metrics = Metrics::new();
    let (store, batches) = RedisStore::start(&args.redis, metrics.clone())?;

    let grpc_listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding --listen {}", args.listen))?;
    let metrics_listener = match args.metrics_listen {
        Some(addr) => Some(metrics::bind(addr).await?),
        None => None,
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            // An error means the sender is gone, which also means stop.
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    tokio::spawn(async move {
        crate::shutdown::wait_for_signal().await;
        let _ = stop_tx.send(true);
    });

    let redis_up = Arc::new(AtomicBool::new(false));
    let metrics_task = match metrics_listener {
        Some(listener) => {
            tracing::info!(addr = %local_addr(&listener), "serving /metrics, /healthz and /readyz");
            Some(tokio::spawn(metrics::serve(
                listener,
                metrics.clone(),
                redis_up.clone(),
                stopped(),
            )))
        }
        None => None,
    };

    let (health, health_service) = tonic_health::server::health_reporter();
    let mut redis_health = RedisHealth {
        store: store.clone(),
        health: health.clone(),
        redis_up: redis_up.clone(),
        last: None,
    };
    // Known before the first call is served (a PING is bounded by its timeout).
    redis_health.check().await;
    let redis_watch = tokio::spawn(redis_health.watch(stopped()));
    let reloads = configs
        .clone()
        .map(|c| tokio::spawn(config_set::watch(args.config.clone(), c, stopped())));
    let over_limit = OverLimitCache::new(args.over_limit_cache);
    let limiter = RateLimiter::new(configs, store, over_limit, metrics);
    tracing::info!(addr = %local_addr(&grpc_listener), redis = %args.redis.redacted(), redis_type = ?args.redis.redis_type, "rate limit service listening");
    let grpc_stopped = stopped();
    let health_on_stop = health.clone();
    // Answers are small HTTP/2 frames: with Nagle on, one written while the
    // previous is unacknowledged waits for the client's delayed ACK (a p99 of
    // 42 ms at 16 concurrent calls).
    let incoming = TcpIncoming::from(grpc_listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(RateLimitServiceServer::new(limiter))
        .serve_with_incoming_shutdown(incoming, async move {
            grpc_stopped.await;
            tracing::info!("shutting down: draining calls in flight");
            health_on_stop
                .set_not_serving::<RateLimitServiceServer<RateLimiter>>()
                .await;
        })
        .await
        .context("gRPC server")?;
    redis_watch.abort();
    if let Some(reloads) = reloads {
        reloads.abort();
    }
    // The server dropped the service and with it the last store handle: the
    // batch task answers what is queued and ends.
    batches.await.context("redis batch task")?;
    if let Some(task) = metrics_task {
        task.await
            .context("metrics endpoint")?
            .context("metrics endpoint")?;
    }
    tracing::info!("stopped");
    Ok(())
}

/// How often the service checks that Redis answers.
const HEALTH_INTERVAL: Duration = Duration::from_secs(1);

/// Keeps the gRPC health status (the overall "" and the rate limit service)
/// and `/readyz` in step with Redis: SERVING only while Redis answers on the
/// service's own connection, so a wrong password or a Redis that is away
/// shows in the health checks Envoy and Kubernetes make, not only in failed
/// calls. Logs each change once.
struct RedisHealth {
    store: RedisStore,
    health: tonic_health::server::HealthReporter,
    redis_up: Arc<AtomicBool>,
    last: Option<bool>,
}

impl RedisHealth {
    /// Pings Redis once and publishes the result if it changed.
    async fn check(&mut self) {
        let answer = self.store.ping().await;
        let up = answer.is_ok();
        if self.last == Some(up) {
            return;
        }
        match &answer {
            Ok(()) => tracing::info!("redis answers: serving"),
            Err(e) => tracing::warn!(error = %e, "redis does not answer: not serving"),
        }
        let status = if up {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        let service = <RateLimitServiceServer<RateLimiter> as tonic::server::NamedService>::NAME;
        self.health.set_service_status("", status).await;
        self.health.set_service_status(service, status).await;
        self.redis_up.store(up, Ordering::Relaxed);
        self.last = Some(up);
    }

    /// Checks every [`HEALTH_INTERVAL`] until the service stops.
    async fn watch(mut self, stopped: impl std::future::Future<Output = ()>) {
        let watch = async {
            loop {
                tokio::time::sleep(HEALTH_INTERVAL).await;
                self.check().await;
            }
        };
        tokio::select! {
            () = watch => {}
            () = stopped => {}
        }
    }
}

fn local_addr(listener: &TcpListener) -> String {
    listener
        .local_addr()
        .map_or_else(|e| format!("<unknown: {e}>"), |a| a.to_string())
}
