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
//! - [`provider`]: where the objects come from (the directory, or a
//!   Kubernetes API server: [`kubernetes`]) and where their status goes (the
//!   status file).
//! - [`views`]: which Gateways a node is served.
//! - [`watcher`]: debounced directory changes.
//! - [`admin`]: `/healthz`, `/readyz`, `/metrics`, `/status`, `/config_dump`;
//!   [`bounded_listener`]: its connections, bounded.
//! - [`metrics`]: what `/metrics` shows.
//! - [`xds_tls`]: mutual TLS on the ADS server.
//! - [`leader`]: which replica writes status to the API server (a Lease);
//!   [`status_writer`] writes it, [`kube_status`] says what; the leader also
//!   runs one Envoy per Gateway ([`provision`]), reaching xDS with the
//!   certificates of [`xds_secrets`].

mod admin;
mod bounded_listener;
mod kube_status;
pub mod kubernetes;
pub mod leader;
mod metrics;
pub mod provider;
pub mod provision;
mod replica_acceptance;
pub mod status_writer;
pub mod views;
mod watcher;
mod xds_secrets;
pub mod xds_tls;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;

use crate::translate::{self, status::Status};
use crate::xds::{AdsServer, Snapshot};
use metrics::Metrics;
use provider::{Directory, Provider, StatusFile, StatusSink};
use views::GatewayViews;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the objects come from: `file` (`--config-dir`) or `kubernetes` (the API server of
    /// `--kubeconfig`, else `KUBECONFIG`, `~/.kube/config` or the pod's service account).
    #[arg(long, value_enum, default_value = "file")]
    provider: ProviderKind,
    /// Directory of Gateway API YAML (`*.yaml`, `*.yml`, recursive, multi-document), watched for changes.
    #[arg(long, value_name = "DIR", required_if_eq("provider", "file"))]
    config_dir: Option<PathBuf>,
    /// The kubeconfig of `--provider kubernetes`.
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// The controller's own namespace (`--provider kubernetes`): where its leader Lease is.
    #[arg(
        long,
        env = "POD_NAMESPACE",
        default_value = "tollgate-system",
        value_name = "NAMESPACE"
    )]
    namespace: String,
    /// Seconds a leader may go without renewing its Lease before another replica takes over
    /// (`--provider kubernetes`; it renews every seventh of this).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..=3600), value_name = "SECONDS")]
    lease_duration: u64,
    /// Who runs the Envoys of `--provider kubernetes`: `kubernetes` (a Deployment and a LoadBalancer
    /// Service per Gateway, in --namespace) or `none` (yours, from `tollgate bootstrap --gateway`).
    #[arg(long, value_enum, default_value = "kubernetes")]
    provision: Provision,
    /// The Envoy image of provisioned Gateways: the Envoy the dynamic module is built and tested for.
    #[arg(long, default_value = provision::DEFAULT_ENVOY_IMAGE, value_name = "IMAGE")]
    envoy_image: String,
    /// The Tollgate image, whose filters a provisioned Envoy's init container copies.
    #[arg(long, env = "TOLLGATE_IMAGE", default_value = provision::DEFAULT_TOLLGATE_IMAGE, value_name = "IMAGE")]
    tollgate_image: String,
    /// The controller's Service, through which provisioned Envoys reach xDS (`NAME.NAMESPACE.svc`).
    #[arg(long, default_value = "tollgate", value_name = "NAME")]
    xds_service: String,
    /// Mutual TLS on xDS with a CA and certificates the controller makes (once) into the Secrets
    /// tollgate-xds-server and tollgate-xds-client of --namespace; provisioned Envoys mount the
    /// second (`--provider kubernetes`; instead of the --xds-tls-* files).
    #[arg(long)]
    xds_tls_secrets: bool,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ProviderKind {
    File,
    Kubernetes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Provision {
    Kubernetes,
    None,
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
    /// (`Resources::problems`).
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
    let mut xds_tls = args.xds_tls.load()?;
    if args.xds_tls_secrets && (xds_tls.is_some() || args.provider != ProviderKind::Kubernetes) {
        anyhow::bail!(
            "--xds-tls-secrets is for --provider kubernetes, without the --xds-tls-* files"
        );
    }
    if xds_tls.is_some()
        && args.provider == ProviderKind::Kubernetes
        && args.provision == Provision::Kubernetes
    {
        anyhow::bail!(
            "--provision kubernetes gives its Envoys the certificates of --xds-tls-secrets, not the \
             --xds-tls-* files: use --xds-tls-secrets, or --provision none and your own Envoys"
        );
    }
    let mut sinks: Vec<Box<dyn StatusSink + Send>> = Vec::new();
    if let Some(dir) = &args.status_dir {
        sinks.push(Box::new(StatusFile::create_in(dir)?));
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
    let mut provider = match (args.provider, &args.config_dir) {
        (ProviderKind::File, Some(dir)) => Source::Directory(Directory::start(dir)?),
        (ProviderKind::File, None) => anyhow::bail!("--provider file needs --config-dir"),
        (ProviderKind::Kubernetes, _) => {
            Source::Kubernetes(kubernetes::Kubernetes::start(args.kubeconfig.as_deref()).await?)
        }
    };
    let metrics = Metrics::new();
    let views = Arc::new(GatewayViews::new(options.clone()));
    let (stop_tx, stop_rx) = watch::channel(false);
    // On Kubernetes, the leader writes status back.
    let mut background = Vec::new();
    if let Source::Kubernetes(cluster) = &provider {
        let objects = cluster.objects();
        if args.xds_tls_secrets {
            xds_tls = Some(
                xds_secrets::server_config(objects.client(), &args.namespace, &args.xds_service)
                    .await?,
            );
        }
        let provisioner = (args.provision == Provision::Kubernetes).then(|| {
            provision::Provisioner::new(provision::Settings {
                namespace: args.namespace.clone(),
                xds_service: args.xds_service.clone(),
                xds_port: args.xds_listen.port(),
                envoy_image: args.envoy_image.clone(),
                tollgate_image: args.tollgate_image.clone(),
                xds_tls: args.xds_tls_secrets,
                options: options.clone(),
            })
        });
        let lease = lease_settings(&args.namespace, args.lease_duration);
        let replicas = replica_acceptance::ReplicaAcceptance::new(
            objects.client(),
            &args.namespace,
            &lease.identity,
        );
        let (leading, election) = leader::spawn(objects.client(), lease, stop_rx.clone());
        let (sink, writer) = status_writer::spawn(
            objects,
            views.clone(),
            provisioner,
            Some(replicas),
            leading,
            metrics.clone(),
            stop_rx.clone(),
        );
        sinks.push(Box::new(sink));
        background.extend([writer, election]);
    }
    let (current_tx, current_rx) = watch::channel(Arc::new(Current::default()));
    let mut reloader = Reloader {
        sinks,
        options,
        views: views.clone(),
        metrics: metrics.clone(),
        current: current_tx,
    };
    let mut retry = next_retry(reloader.reload(&mut provider), None);

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
    tracing::info!(addr = %local_addr(&xds_listener), from = %provider.describe(), transport, "ADS server listening");
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
        tokio::select! {
            () = provider.changed() => retry = next_retry(reloader.reload(&mut provider), None),
            () = after(retry) => retry = next_retry(reloader.reload(&mut provider), retry),
            () = &mut signal => break,
        }
    }
    let _ = stop_tx.send(true);
    // The leader releases its Lease, so another replica takes over at once.
    for task in background {
        task.await
            .context("status writer or leader election task")?;
    }
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

/// The leader Lease `tollgate-controller` in `namespace`, held by this
/// process (`POD_NAME`, else the host name, and the process id), with
/// client-go's proportions: renewed every seventh of its duration and given
/// up after two thirds of it without a renewal.
fn lease_settings(namespace: &str, seconds: u64) -> leader::LeaseSettings {
    let host = std::env::var("POD_NAME")
        .or_else(|_| {
            std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|_| "tollgate".to_owned());
    let duration = Duration::from_secs(seconds);
    leader::LeaseSettings {
        namespace: namespace.to_owned(),
        name: leader::LEASE_NAME.to_owned(),
        identity: format!("{host}_{}", std::process::id()),
        duration,
        retry: duration / 7,
        renew_deadline: duration * 2 / 3,
    }
}

/// Resolves `delay` from now; never when there is none.
async fn after(delay: Option<Duration>) {
    match delay {
        Some(delay) => tokio::time::sleep(delay).await,
        None => std::future::pending().await,
    }
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

/// The provider `serve` was started with (`--provider`).
pub enum Source {
    Directory(Directory),
    Kubernetes(kubernetes::Kubernetes),
}

impl Provider for Source {
    fn describe(&self) -> String {
        match self {
            Source::Directory(p) => p.describe(),
            Source::Kubernetes(p) => p.describe(),
        }
    }

    fn changed(&mut self) -> impl Future<Output = ()> + Send {
        let changed: Pin<Box<dyn Future<Output = ()> + Send + '_>> = match self {
            Source::Directory(p) => Box::pin(p.changed()),
            Source::Kubernetes(p) => Box::pin(p.changed()),
        };
        changed
    }

    fn load(&mut self) -> Result<crate::resources::Resources, crate::resources::loader::LoadError> {
        match self {
            Source::Directory(p) => p.load(),
            Source::Kubernetes(p) => p.load(),
        }
    }
}

/// Loads from a provider, translates, and publishes to Envoy (the views),
/// the admin endpoint and the status sinks.
struct Reloader {
    sinks: Vec<Box<dyn StatusSink + Send>>,
    options: translate::Options,
    views: Arc<GatewayViews>,
    metrics: Metrics,
    current: watch::Sender<Arc<Current>>,
}

impl Reloader {
    /// Loads, translates and publishes; whether the load failed on
    /// something that may pass by itself.
    fn reload(&mut self, provider: &mut impl Provider) -> bool {
        let started = Instant::now();
        let loaded = provider.load();
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
                    provider.describe()
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
                let load_errors: Vec<String> = resources.problems().map(str::to_owned).collect();
                if !load_errors.is_empty() {
                    tracing::warn!(
                        problems = load_errors.len(),
                        "documents not loaded as written (a file's last good version serves in its place; else the object is refused, with a status condition, or left out); everything else is served:\n{}",
                        load_errors.join("\n")
                    );
                }
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
        for sink in &mut self.sinks {
            sink.publish(&current);
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

fn local_addr(listener: &TcpListener) -> String {
    listener
        .local_addr()
        .map_or_else(|e| format!("<unknown: {e}>"), |a| a.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::loader::{load_str, LoadError};
    use crate::resources::Resources;
    use std::sync::Mutex;

    /// A provider of objects held in memory, as a Kubernetes provider's
    /// informer caches will be: each load returns the next of `loads`.
    struct InMemory {
        loads: Vec<Result<Resources, LoadError>>,
    }

    impl Provider for InMemory {
        fn describe(&self) -> String {
            "memory".to_owned()
        }

        async fn changed(&mut self) {}

        fn load(&mut self) -> Result<Resources, LoadError> {
            self.loads.remove(0)
        }
    }

    /// What a sink was given once: the load errors, and how many routes had a status.
    type Publication = (Vec<String>, usize);

    /// A sink that keeps what it was given.
    #[derive(Clone, Default)]
    struct Recorded(Arc<Mutex<Vec<Publication>>>);

    impl StatusSink for Recorded {
        fn publish(&mut self, current: &Current) {
            let routes = current.status.as_ref().map_or(0, |s| s.http_routes.len());
            let mut seen = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            seen.push((current.load_errors.clone(), routes));
        }
    }

    const OBJECTS: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: tollgate}\nspec: {controllerName: tollgate.dev/gateway-controller}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: eg}\nspec:\n  gatewayClassName: tollgate\n  listeners:\n  - {name: http, port: 80, protocol: HTTP}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{name: eg}]\n  rules:\n  - backendRefs: [{name: s, port: 80}]\n";

    #[test]
    fn any_provider_feeds_the_translator_the_views_and_the_status_sinks() {
        let mut objects = Resources::default();
        load_str("mem.yaml", OBJECTS, &mut objects).unwrap();
        let failed = LoadError {
            problems: vec!["mem: gone away".to_owned()],
            transient: true,
        };
        let mut provider = InMemory {
            loads: vec![Ok(objects), Err(failed)],
        };
        let options = translate::Options {
            listener_address: crate::translator_args::DEFAULT_LISTENER_ADDRESS,
            port_remap: true,
            port_map: Default::default(),
            filter_runtime: translate::FilterRuntime::DynamicModule,
            ratelimit_service: None,
        };
        let recorded = Recorded::default();
        let (current, served) = watch::channel(Arc::new(Current::default()));
        let views = Arc::new(GatewayViews::new(options.clone()));
        let mut reloader = Reloader {
            sinks: vec![Box::new(recorded.clone())],
            options,
            views: views.clone(),
            metrics: Metrics::new(),
            current,
        };
        assert!(!reloader.reload(&mut provider), "a good load");
        let version = served
            .borrow()
            .snapshot
            .as_ref()
            .map(|s| s.version().to_owned());
        assert!(version.is_some());
        // A failed load keeps the last good configuration, and says why.
        assert!(reloader.reload(&mut provider), "a transient failure");
        let now = served
            .borrow()
            .snapshot
            .as_ref()
            .map(|s| s.version().to_owned());
        assert_eq!(now, version);
        let seen = recorded.0.lock().unwrap().clone();
        assert_eq!(
            seen,
            [(Vec::new(), 1), (vec!["mem: gone away".to_owned()], 1)]
        );
    }
}
