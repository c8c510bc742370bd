//! Incremental (delta) ADS: per resource type, what the client subscribed to
//! and which version of each resource it has; a response carries only the
//! resources whose version differs and the names of those that are gone.
//! Pure bookkeeping, like [`super::sotw`].
//!
//! A NACKed response's resources stay recorded as sent, so they are not sent
//! again until they change; the client keeps its previous ones meanwhile.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};
use prost::{Message as _, Name};

use super::acknowledgement::Acknowledgement;
use super::metrics::Metrics;
use super::snapshot::{push_order, short_type, wildcard_by_default, Snapshot};

#[derive(Default)]
struct Watch {
    wildcard: bool,
    /// Names subscribed explicitly (besides the wildcard, if any).
    names: BTreeSet<String>,
    /// The version of each resource the client has (or was last sent).
    known: BTreeMap<String, String>,
    /// Explicitly subscribed names already reported as not existing.
    absent: BTreeSet<String>,
    /// Nonce and system version of the last response, to name a NACKed version.
    last: Option<(String, String)>,
}

impl Watch {
    fn wants(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }
}

pub struct Stream {
    node: String,
    metrics: Metrics,
    watches: HashMap<String, Watch>,
    nonces: u64,
    acknowledgement: Acknowledgement,
}

impl Stream {
    pub fn new(node: String, metrics: Metrics) -> Stream {
        Stream {
            node,
            metrics,
            watches: HashMap::new(),
            nonces: 0,
            acknowledgement: Acknowledgement::default(),
        }
    }

    /// The snapshot version the client has accepted all of, if it has
    /// (`snapshot`: the one being served).
    pub fn acknowledged(&self, snapshot: &Snapshot) -> Option<&str> {
        self.acknowledgement.acknowledged(snapshot)
    }

    pub fn on_request(
        &mut self,
        request: DeltaDiscoveryRequest,
        snapshot: Option<&Snapshot>,
    ) -> Vec<DeltaDiscoveryResponse> {
        let type_url = request.type_url;
        let first = !self.watches.contains_key(&type_url);
        let watch = self.watches.entry(type_url.clone()).or_default();
        if first {
            watch.wildcard =
                request.resource_names_subscribe.is_empty() && wildcard_by_default(&type_url);
            watch.known = request.initial_resource_versions.into_iter().collect();
        }
        if !request.response_nonce.is_empty() {
            self.acknowledgement.answered(
                &type_url,
                &request.response_nonce,
                request.error_detail.is_none(),
            );
            match &request.error_detail {
                Some(error) => {
                    self.metrics.nack(&type_url);
                    let rejected = match &watch.last {
                        Some((nonce, version)) if *nonce == request.response_nonce => {
                            version.as_str()
                        }
                        _ => "(an earlier response)",
                    };
                    tracing::warn!(
                        node = ?self.node,
                        r#type = short_type(&type_url),
                        rejected_version = %rejected,
                        error = ?error.message,
                        "Envoy rejected the configuration (NACK, delta); it keeps its previous resources"
                    );
                }
                None => self.metrics.ack(&type_url),
            }
        }
        for name in request.resource_names_subscribe {
            if name == "*" {
                watch.wildcard = true;
                continue;
            }
            // The protocol asks for every subscribed resource to be sent even
            // if the client seems to have it (it may have dropped it), except
            // those it declared in initial_resource_versions.
            if !first {
                watch.known.remove(&name);
            }
            watch.absent.remove(&name);
            watch.names.insert(name);
        }
        for name in request.resource_names_unsubscribe {
            if name == "*" {
                watch.wildcard = false;
                continue;
            }
            watch.names.remove(&name);
            watch.absent.remove(&name);
            if !watch.wants(&name) {
                watch.known.remove(&name);
            }
        }
        match snapshot {
            Some(snapshot) => {
                self.acknowledgement.serving_first(snapshot.version());
                self.diff(&type_url, snapshot, first, true)
                    .into_iter()
                    .collect()
            }
            None => Vec::new(),
        }
    }

    /// What to send when the served snapshot changes, in make-before-break order.
    pub fn on_snapshot(&mut self, snapshot: &Snapshot) -> Vec<DeltaDiscoveryResponse> {
        self.acknowledgement.serving(snapshot.version());
        let mut types: Vec<String> = push_order().into();
        let mut others: Vec<String> = self
            .watches
            .keys()
            .filter(|t| !types.contains(t))
            .cloned()
            .collect();
        others.sort();
        types.extend(others);
        // Clusters that go away go last, after the listeners and routes that
        // used them (make-before-break).
        let cds = Cluster::type_url();
        let mut out: Vec<DeltaDiscoveryResponse> = types
            .iter()
            .filter_map(|t| self.diff(t, snapshot, false, *t != cds))
            .collect();
        out.extend(self.diff(&cds, snapshot, false, true));
        out
    }

    /// The changes of one type the client has not been sent, removals only
    /// if `removals`; a response even when there are none if `always` (the
    /// first request of a type must be answered, or Envoy waits out its
    /// initial fetch timeout).
    fn diff(
        &mut self,
        type_url: &str,
        snapshot: &Snapshot,
        always: bool,
        removals: bool,
    ) -> Option<DeltaDiscoveryResponse> {
        let watch = self.watches.get_mut(type_url)?;
        let current = snapshot.resources(type_url);
        let mut resources = Vec::new();
        for (name, entry) in &current.entries {
            if watch.wants(name) && watch.known.get(name) != Some(&entry.version) {
                watch.known.insert(name.clone(), entry.version.clone());
                resources.push(Resource {
                    name: name.clone(),
                    version: entry.version.clone(),
                    resource: Some(entry.resource.clone()),
                    ..Resource::default()
                });
            }
        }
        let mut removed: Vec<String> = Vec::new();
        if removals {
            removed = watch
                .known
                .keys()
                .filter(|name| !current.entries.contains_key(*name))
                .cloned()
                .collect();
            for name in &removed {
                watch.known.remove(name);
                if watch.names.contains(name) {
                    watch.absent.insert(name.clone());
                }
            }
            for name in &watch.names {
                if !current.entries.contains_key(name) && watch.absent.insert(name.clone()) {
                    removed.push(name.clone());
                }
            }
        }
        // A name reported absent that exists again is sent like any other.
        watch
            .absent
            .retain(|name| !current.entries.contains_key(name));
        if resources.is_empty() && removed.is_empty() && !always {
            return None;
        }
        self.nonces += 1;
        let nonce = self.nonces.to_string();
        watch.last = Some((nonce.clone(), snapshot.version().to_owned()));
        self.acknowledgement.sent(type_url, &nonce);
        let response = DeltaDiscoveryResponse {
            system_version_info: snapshot.version().to_owned(),
            resources,
            type_url: type_url.to_owned(),
            removed_resources: removed,
            nonce,
            ..DeltaDiscoveryResponse::default()
        };
        self.metrics.response(type_url, response.encoded_len());
        Some(response)
    }
}
