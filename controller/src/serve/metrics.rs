//! `tollgate serve`'s Prometheus metrics: reloads, the snapshot being served,
//! how long loading and translating took, the xDS server's own, and on
//! Kubernetes whether this replica leads and its status writes.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::xds::{self, snapshot::short_type, Snapshot};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabel {
    kind: String,
    result: &'static str,
}

/// Clones share values.
#[derive(Clone)]
pub struct Metrics {
    pub xds: xds::Metrics,
    translations: Family<ResultLabel, Counter>,
    snapshot: Family<VersionLabel, Gauge>,
    load_seconds: Gauge<f64, AtomicU64>,
    translate_seconds: Gauge<f64, AtomicU64>,
    resources: Family<TypeLabel, Gauge>,
    load_errors: Gauge,
    status_writes: Family<WriteLabel, Counter>,
    provisioning: Family<WriteLabel, Counter>,
    leader: Gauge,
    registry: Arc<Registry>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let xds = xds::Metrics::default();
        let translations = Family::<ResultLabel, Counter>::default();
        let snapshot = Family::<VersionLabel, Gauge>::default();
        let load_seconds = Gauge::<f64, AtomicU64>::default();
        let translate_seconds = Gauge::<f64, AtomicU64>::default();
        let resources = Family::<TypeLabel, Gauge>::default();
        let load_errors = Gauge::default();
        let status_writes = Family::<WriteLabel, Counter>::default();
        let provisioning = Family::<WriteLabel, Counter>::default();
        let leader = Gauge::default();
        let mut registry = Registry::with_prefix("tollgate");
        xds.register(&mut registry);
        registry.register(
            "translations",
            "Reloads of the config directory by result: ok (translated and published), load_error (the last good configuration kept serving)",
            translations.clone(),
        );
        registry.register(
            "snapshot",
            "The configuration version served to nodes that get every Gateway (value 1)",
            snapshot.clone(),
        );
        registry.register(
            "last_load_seconds",
            "Time the last reload took to read and parse the config directory",
            load_seconds.clone(),
        );
        registry.register(
            "last_translate_seconds",
            "Time the last successful reload took to translate",
            translate_seconds.clone(),
        );
        registry.register(
            "resources",
            "Envoy resources in the served snapshot, by type",
            resources.clone(),
        );
        registry.register(
            "load_errors",
            "Problems found by the last reload (0 when the directory loaded cleanly)",
            load_errors.clone(),
        );
        registry.register(
            "status_writes",
            "Status writes to the Kubernetes API server by kind and result: ok, conflict (409: read again and merged), error",
            status_writes.clone(),
        );
        registry.register(
            "provisioned",
            "Writes of provisioned Envoy objects (Deployment, Service, ServiceAccount, ConfigMap) by kind and result: applied, deleted, error",
            provisioning.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease and writes status (Kubernetes provider)",
            leader.clone(),
        );
        Metrics {
            xds,
            translations,
            snapshot,
            load_seconds,
            translate_seconds,
            resources,
            load_errors,
            status_writes,
            provisioning,
            leader,
            registry: Arc::new(registry),
        }
    }

    pub fn load_failed(&self, problems: usize, load: Duration) {
        self.translations
            .get_or_create(&ResultLabel {
                result: "load_error",
            })
            .inc();
        self.load_seconds.set(load.as_secs_f64());
        self.load_errors
            .set(i64::try_from(problems).unwrap_or(i64::MAX));
    }

    /// Problems of the documents a served load did not load as written
    /// (after `translated`).
    pub fn load_problems(&self, problems: usize) {
        self.load_errors
            .set(i64::try_from(problems).unwrap_or(i64::MAX));
    }

    pub fn translated(&self, snapshot: &Snapshot, load: Duration, translate: Duration) {
        self.translations
            .get_or_create(&ResultLabel { result: "ok" })
            .inc();
        self.load_seconds.set(load.as_secs_f64());
        self.translate_seconds.set(translate.as_secs_f64());
        self.load_errors.set(0);
        self.snapshot.clear();
        self.snapshot
            .get_or_create(&VersionLabel {
                version: snapshot.version().to_owned(),
            })
            .set(1);
        self.resources.clear();
        for (type_url, count) in snapshot.counts() {
            self.resources
                .get_or_create(&TypeLabel {
                    r#type: short_type(type_url).to_owned(),
                })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    pub fn status_write(&self, kind: &str, result: &'static str) {
        self.status_writes
            .get_or_create(&WriteLabel {
                kind: kind.to_owned(),
                result,
            })
            .inc();
    }

    pub fn provisioned(&self, kind: &str, result: &'static str) {
        self.provisioning
            .get_or_create(&WriteLabel {
                kind: kind.to_owned(),
                result,
            })
            .inc();
    }

    pub fn leading(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
