//! The `--admin` HTTP endpoint: `/healthz` (the process answers), `/readyz`
//! (200 once a first good configuration is served, 503 before),
//! `/metrics` (Prometheus), `/status` (YAML: every object's status and the
//! load errors) and `/config_dump` (the Envoy resources served to nodes that
//! get every Gateway, as JSON, secrets redacted). Its connections are
//! bounded ([`super::bounded_listener`]).

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::bounded_listener::BoundedListener;
use super::metrics::Metrics;
use super::Current;
use crate::translate::render;

#[derive(Clone)]
struct Admin {
    current: watch::Receiver<std::sync::Arc<Current>>,
    metrics: Metrics,
}

pub async fn serve(
    listener: TcpListener,
    current: watch::Receiver<std::sync::Arc<Current>>,
    metrics: Metrics,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/status", get(status))
        .route("/config_dump", get(config_dump))
        .with_state(Admin { current, metrics });
    axum::serve(BoundedListener::new(listener), app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn readyz(State(admin): State<Admin>) -> Response {
    match &admin.current.borrow().snapshot {
        Some(snapshot) => format!("ready: serving {}\n", snapshot.version()).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no good configuration loaded yet (see /status)\n",
        )
            .into_response(),
    }
}

async fn metrics_text(State(admin): State<Admin>) -> Response {
    match admin.metrics.render() {
        Ok(text) => (
            [(
                CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => internal(format!("encoding metrics: {e}")),
    }
}

async fn status(State(admin): State<Admin>) -> Response {
    let current = admin.current.borrow().clone();
    match current.status_yaml() {
        Ok(text) => ([(CONTENT_TYPE, "application/yaml")], text).into_response(),
        Err(e) => internal(format!("{e:#}")),
    }
}

async fn config_dump(State(admin): State<Admin>) -> Response {
    let current = admin.current.borrow().clone();
    let Some(snapshot) = &current.snapshot else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no good configuration loaded yet (see /status)\n",
        )
            .into_response();
    };
    let translation = match snapshot.decode() {
        Ok(translation) => translation,
        Err(e) => return internal(format!("decoding the snapshot: {e}")),
    };
    // Listeners' TLS private keys never leave through the admin endpoint.
    let mut dump = match render::document(&translation, render::Part::All, render::Secrets::Redact)
    {
        Ok(dump) => dump,
        Err(e) => return internal(e.to_string()),
    };
    if let Some(map) = dump.as_object_mut() {
        map.remove("status");
        map.insert("version".to_owned(), snapshot.version().into());
    }
    match serde_json::to_string_pretty(&dump) {
        Ok(text) => ([(CONTENT_TYPE, "application/json")], text + "\n").into_response(),
        Err(e) => internal(e.to_string()),
    }
}

fn internal(message: String) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, message + "\n").into_response()
}
