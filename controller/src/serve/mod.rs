//! `tollgate serve`: the live controller in file mode. Loads a directory of
//! Gateway API YAML, translates it, serves the result over ADS, and does it
//! again whenever the directory changes.
//!
//! A directory that does not load (broken YAML, an unknown field) is reported
//! with every problem (log, `/status`, the status file) and changes nothing
//! Envoy sees: the last good configuration keeps serving. A reload that
//! translates to the same Envoy resources pushes nothing (versions follow
//! content, see [`crate::xds::snapshot`]).
//!
//! - [`views`]: which Gateways a node is served.
//! - [`watcher`]: debounced directory changes.
//! - [`admin`]: `/healthz`, `/readyz`, `/metrics`, `/status`, `/config_dump`;
//!   [`bounded_listener`]: its connections, bounded.
//! - [`metrics`]: what `/metrics` shows.
//! - [`xds_tls`]: mutual TLS on the ADS server.

mod admin;
mod bounded_listener;
mod metrics;
pub mod views;
mod watcher;
pub mod xds_tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;

use crate::resources;
use crate::translate::{self, status::Status};
use crate::xds::{AdsServer, Snapshot};
use metrics::Metrics;
use views::GatewayViews;
use watcher::DirWatcher;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory of Gateway API YAML (`*.yaml`, `*.yml`, recursive, multi-document), watched for changes.
    #[arg(long, value_name = "DIR")]
    config_dir: PathBuf,
    /// Address of the ADS gRPC server Envoy connects to (`tollgate bootstrap --xds-address`).
    /// Plain gRPC unless the --xds-tls-* flags are given (a warning when it is not loopback).
    #[arg(long, default_value = "127.0.0.1:18000", value_name = "ADDR")]
    xds_listen: SocketAddr,
    #[command(flatten)]
    xds_tls: xds_tls::XdsTlsArgs,
    /// Directory to write `status.yaml` to (every object's status and the load errors), rewritten on each change.
    #[arg(long, value_name = "DIR")]
    status_dir: Option<PathBuf>,
    /// Address of the admin HTTP endpoint (`/healthz`, `/readyz`, `/metrics`, `/status`, `/config_dump`); off when absent.
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
    #[command(flatten)]
    translator: crate::translator_args::TranslatorArgs,
}

/// What the controller serves now, for the admin endpoint and the status file.
#[derive(Default)]
pub struct Current {
    /// The snapshot nodes that get every Gateway are served; `None` until the
    /// first good load.
    snapshot: Option<Arc<Snapshot>>,
    /// Every object's status in it (the snapshot holds the Envoy resources).
    status: Option<Arc<Status>>,
    /// Every problem of the last load, `path:line:column: message`: of a
    /// load that failed (the last good configuration serves), or of the
    /// documents a load that served did not load as written
    /// (`Resources::load_errors`).
    load_errors: Vec<String>,
    /// Documents the last good load skipped (kinds Tollgate does not read).
    skipped: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusDocument<'a> {
    /// The version Envoy is being served; with load errors, the last good one.
    serving_version: Option<&'a str>,
    load_errors: &'a [String],
    skipped: &'a [String],
    #[serde(flatten)]
    status: Option<&'a Status>,
}

impl Current {
    fn status_yaml(&self) -> Result<String> {
        let document = StatusDocument {
            serving_version: self.snapshot.as_deref().map(Snapshot::version),
            load_errors: &self.load_errors,
            skipped: &self.skipped,
            status: self.status.as_deref(),
        };
        serde_yaml_ng::to_string(&document).context("writing status YAML")
    }
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(args: Args) -> Result<()> {
    let options = args.translator.options()?;
    if !args.config_dir.is_dir() {
        anyhow::bail!(
            "--config-dir {}: not a directory",
            args.config_dir.display()
        );
    }
    let xds_tls = args.xds_tls.load()?;
    if let Some(dir) = &args.status_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating --status-dir {}", dir.display()))?;
    }
    let xds_listener = TcpListener::bind(args.xds_listen)
        .await
        .with_context(|| format!("binding --xds-listen {}", args.xds_listen))?;
    let admin_listener = match args.admin {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding --admin {addr}"))?,
        ),
        None => None,
    };
    // Watching starts before the first load, so no change is missed between them.
    let mut watcher = DirWatcher::start(&args.config_dir)?;
    let metrics = Metrics::new();
    let views = Arc::new(GatewayViews::new(options.clone()));
    let (current_tx, current_rx) = watch::channel(Arc::new(Current::default()));
    let mut reloader = Reloader {
        dir: args.config_dir.clone(),
        cache: resources::DirCache::default(),
        status_file: args.status_dir.map(|d| d.join("status.yaml")),
        written_status: None,
        options,
        views: views.clone(),
        metrics: metrics.clone(),
        current: current_tx,
    };
    let mut retry = next_retry(reloader.reload(), None);

    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_streams = stop_rx.clone();
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let admin_task = admin_listener.map(|listener| {
        tracing::info!(addr = %local_addr(&listener), "serving /healthz /readyz /metrics /status /config_dump");
        tokio::spawn(admin::serve(
            listener,
            current_rx.clone(),
            metrics.clone(),
            stopped(),
        ))
    });
    let transport = if xds_tls.is_some() {
        "mutual TLS"
    } else {
        "plain gRPC"
    };
    tracing::info!(addr = %local_addr(&xds_listener), dir = %args.config_dir.display(), transport, "ADS server listening");
    if xds_tls.is_none() {
        if let Some(warning) = xds_tls::plain_warning(args.xds_listen) {
            tracing::warn!("{warning}");
        }
    }
    let mut grpc = tonic::transport::Server::builder();
    if let Some(tls) = xds_tls {
        grpc = grpc
            .tls_config(tls)
            .context("setting up mutual TLS on xDS")?;
    }
    let ads = AdsServer::new(views, metrics.xds.clone(), stop_streams);
    // Nagle off, as on every gRPC server of ours (see ratelimit_server::run).
    let incoming = TcpIncoming::from(xds_listener).with_nodelay(Some(true));
    let grpc = tokio::spawn(
        grpc.add_service(AggregatedDiscoveryServiceServer::new(ads))
            .serve_with_incoming_shutdown(incoming, stopped()),
    );

    let signal = crate::shutdown::wait_for_signal();
    tokio::pin!(signal);
    loop {
        let retry_due = async {
            match retry {
                Some(after) => tokio::time::sleep(after).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = watcher.changed() => retry = next_retry(reloader.reload(), None),
            () = retry_due => retry = next_retry(reloader.reload(), retry),
            () = &mut signal => break,
        }
    }
    let _ = stop_tx.send(true);
    grpc.await
        .context("ADS server task")?
        .context("ADS server")?;
    if let Some(task) = admin_task {
        task.await
            .context("admin endpoint task")?
            .context("admin endpoint")?;
    }
    tracing::info!("stopped");
    Ok(())
}

/// A load that failed on something passing (out of file descriptors, say)
/// is tried again without waiting for a change: after 1 s, then twice as
/// long each time, at most 30 s apart.
fn next_retry(transient_failure: bool, previous: Option<Duration>) -> Option<Duration> {
    const FIRST: Duration = Duration::from_secs(1);
    const LONGEST: Duration = Duration::from_secs(30);
    let after = previous.map_or(FIRST, |d| (d * 2).min(LONGEST));
    if transient_failure {
        tracing::info!("retrying the load in {after:?}");
    }
    transient_failure.then_some(after)
}

struct Reloader {
    dir: PathBuf,
    cache: resources::DirCache,
    status_file: Option<PathBuf>,
    written_status: Option<String>,
    options: translate::Options,
    views: Arc<GatewayViews>,
    metrics: Metrics,
    current: watch::Sender<Arc<Current>>,
}

impl Reloader {
    /// Loads, translates and publishes; whether the load failed on
    /// something that may pass by itself.
    fn reload(&mut self) -> bool {
        let started = Instant::now();
        let loaded = self.cache.load(&self.dir);
        let load_time = started.elapsed();
        let previous = self.current.borrow().clone();
        let mut publish = None;
        let transient = loaded.as_ref().is_err_and(|e| e.transient);
        let current = match loaded {
            Err(e) => {
                self.metrics.load_failed(e.problems.len(), load_time);
                tracing::warn!(
                    problems = e.problems.len(),
                    "{} has errors; the last good configuration keeps serving:\n{e}",
                    self.dir.display()
                );
                Current {
                    snapshot: previous.snapshot.clone(),
                    status: previous.status.clone(),
                    load_errors: e.problems,
                    skipped: previous.skipped.clone(),
                }
            }
            Ok(resources) => {
                for warning in &resources.warnings {
                    tracing::warn!("{warning}");
                }
                if !resources.load_errors.is_empty() {
                    tracing::warn!(
                        problems = resources.load_errors.len(),
                        "documents not loaded as written (a file's last good version serves in its place; else the object is refused, with a status condition, or left out); everything else is served:\n{}",
                        resources.load_errors.join("\n")
                    );
                }
                let load_errors = resources.load_errors.clone();
                let skipped = resources.warnings.clone();
                let translating = Instant::now();
                let translation = translate::translate(&resources, &self.options);
                let translate_time = translating.elapsed();
                let snapshot = Arc::new(Snapshot::from_translation(&translation));
                let changed =
                    previous.snapshot.as_ref().map(|s| s.version()) != Some(snapshot.version());
                self.metrics
                    .translated(&snapshot, load_time, translate_time);
                self.metrics.load_problems(load_errors.len());
                log_publish(&snapshot, changed, translate_time);
                publish = Some((resources, snapshot.clone()));
                Current {
                    snapshot: Some(snapshot),
                    status: Some(Arc::new(translation.status)),
                    load_errors,
                    skipped,
                }
            }
        };
        if let Some(path) = &self.status_file {
            match current.status_yaml() {
                Ok(text) if self.written_status.as_deref() != Some(text.as_str()) => {
                    match write_atomically(path, &text) {
                        Ok(()) => self.written_status = Some(text),
                        Err(e) => tracing::warn!(path = %path.display(), "writing status: {e:#}"),
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("{e:#}"),
            }
        }
        // Status and admin first: once Envoy has a configuration, they show it.
        self.current.send_replace(Arc::new(current));
        if let Some((resources, snapshot)) = publish {
            self.views.publish(resources, snapshot);
        }
        transient
    }
}

fn log_publish(snapshot: &Snapshot, changed: bool, translate_time: Duration) {
    if !changed {
        tracing::info!(
            version = snapshot.version(),
            "reloaded; the Envoy resources did not change, nothing pushed"
        );
        return;
    }
    let counts: Vec<String> = snapshot
        .counts()
        .map(|(url, n)| format!("{}={n}", crate::xds::snapshot::short_type(url)))
        .collect();
    tracing::info!(
        version = snapshot.version(),
        resources = %counts.join(" "),
        translate_us = translate_time.as_micros(),
        "serving a new configuration"
    );
}

/// Readers of the status file see the old or the new text, never half of one.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

fn local_addr(listener: &TcpListener) -> String {
    listener
        .local_addr()
        .map_or_else(|e| format!("<unknown: {e}>"), |a| a.to_string())
}
