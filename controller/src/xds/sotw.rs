//! State-of-the-world ADS: per resource type, what the client subscribed to
//! and which version and nonce it was last sent. Pure bookkeeping; the
//! server feeds it requests and snapshots and sends what it returns.
//!
//! A request carrying the nonce of the last response is the client's answer
//! to it: an ACK, or a NACK when `error_detail` is set. A NACKed version is
//! not sent again (the client would only reject it again); the next snapshot
//! that changes the type is. A request with an older nonce is stale (a later
//! response crossed it) and ignored, as the protocol asks.
//!
//! Each stream keeps a copy of what it last sent of each type (to hold on to
//! dropped clusters, see [`Stream::on_snapshot`]): one configuration's worth
//! of memory per connected Envoy.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;
use prost::{Message as _, Name};

use super::acknowledgement::Acknowledgement;
use super::metrics::Metrics;
use super::snapshot::{push_order, short_type, wildcard_by_default, Snapshot};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Names {
    Wildcard,
    Only(BTreeSet<String>),
}

impl Names {
    fn of(type_url: &str, names: &[String]) -> Names {
        if names.iter().any(|n| n == "*") || (names.is_empty() && wildcard_by_default(type_url)) {
            Names::Wildcard
        } else {
            Names::Only(names.iter().cloned().collect())
        }
    }

    fn wants(&self, name: &str) -> bool {
        match self {
            Names::Wildcard => true,
            Names::Only(names) => names.contains(name),
        }
    }
}

struct Watch {
    names: Names,
    /// Version and nonce of the last response of this type.
    sent: Option<(String, String)>,
    /// What that response held, by name.
    sent_resources: BTreeMap<String, Any>,
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

    /// What to send for `request`, given the snapshot being served (none
    /// before the first good one: the client waits).
    pub fn on_request(
        &mut self,
        request: DiscoveryRequest,
        snapshot: Option<&Snapshot>,
    ) -> Vec<DiscoveryResponse> {
        let type_url = request.type_url;
        let names = Names::of(&type_url, &request.resource_names);
        let respond = match self.watches.get_mut(&type_url) {
            None => {
                self.watches.insert(
                    type_url.clone(),
                    Watch {
                        names,
                        sent: None,
                        sent_resources: BTreeMap::new(),
                    },
                );
                true
            }
            Some(watch) => {
                if !request.response_nonce.is_empty() {
                    let Some((version, nonce)) = &watch.sent else {
                        return Vec::new(); // a nonce we never sent on this stream
                    };
                    if *nonce != request.response_nonce {
                        tracing::debug!(node = ?self.node, r#type = short_type(&type_url), nonce = ?request.response_nonce, "stale request ignored");
                        return Vec::new();
                    }
                    self.acknowledgement
                        .answered(&type_url, nonce, request.error_detail.is_none());
                    match &request.error_detail {
                        Some(error) => {
                            self.metrics.nack(&type_url);
                            tracing::warn!(
                                node = ?self.node,
                                r#type = short_type(&type_url),
                                rejected_version = %version,
                                kept_version = ?request.version_info,
                                error = ?error.message,
                                "Envoy rejected the configuration (NACK); it keeps its previous one"
                            );
                        }
                        None => self.metrics.ack(&type_url),
                    }
                }
                // A changed subscription (a new listener naming its route
                // configuration) is answered even when nothing changed.
                let changed = watch.names != names;
                watch.names = names;
                changed || request.response_nonce.is_empty()
            }
        };
        match snapshot {
            Some(snapshot) if respond => {
                self.acknowledgement.serving_first(snapshot.version());
                self.respond(&type_url, snapshot).into_iter().collect()
            }
            _ => Vec::new(),
        }
    }

    /// What to send when the served snapshot changes: every watched type whose
    /// version differs from the one last sent, in make-before-break order.
    /// Clusters the snapshot drops stay until the listeners and routes that
    /// used them are replaced: first the new clusters plus the dropped ones,
    /// last the new clusters alone.
    pub fn on_snapshot(&mut self, snapshot: &Snapshot) -> Vec<DiscoveryResponse> {
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
        types.retain(|t| {
            self.watches.get(t).is_some_and(|w| {
                w.sent.as_ref().map(|(v, _)| v.as_str())
                    != Some(snapshot.resources(t).version.as_str())
            })
        });
        let cds = Cluster::type_url();
        let current = snapshot.resources(&cds);
        let dropped: BTreeMap<String, Any> = match self.watches.get(&cds) {
            Some(watch) if types.contains(&cds) => watch
                .sent_resources
                .iter()
                .filter(|(name, _)| !current.entries.contains_key(*name))
                .map(|(name, any)| (name.clone(), any.clone()))
                .collect(),
            _ => BTreeMap::new(),
        };
        let mut out = Vec::new();
        for type_url in &types {
            if *type_url == cds && !dropped.is_empty() {
                let mut kept = entries(snapshot, type_url);
                kept.extend(dropped.clone());
                let version = format!("{}+dropping", current.version);
                out.extend(self.respond_with(type_url, version, kept));
            } else {
                out.extend(self.respond(type_url, snapshot));
            }
        }
        if !dropped.is_empty() {
            out.extend(self.respond(&cds, snapshot));
        }
        out
    }

    fn respond(&mut self, type_url: &str, snapshot: &Snapshot) -> Option<DiscoveryResponse> {
        let version = snapshot.resources(type_url).version.clone();
        self.respond_with(type_url, version, entries(snapshot, type_url))
    }

    /// Sends what the client subscribed to of `resources`, as `version`.
    fn respond_with(
        &mut self,
        type_url: &str,
        version: String,
        resources: BTreeMap<String, Any>,
    ) -> Option<DiscoveryResponse> {
        let watch = self.watches.get_mut(type_url)?;
        self.nonces += 1;
        let nonce = self.nonces.to_string();
        watch.sent = Some((version.clone(), nonce.clone()));
        self.acknowledgement.sent(type_url, &nonce);
        watch.sent_resources = resources
            .into_iter()
            .filter(|(name, _)| watch.names.wants(name))
            .collect();
        let response = DiscoveryResponse {
            version_info: version,
            resources: watch.sent_resources.values().cloned().collect(),
            type_url: type_url.to_owned(),
            nonce,
            ..DiscoveryResponse::default()
        };
        self.metrics.response(type_url, response.encoded_len());
        Some(response)
    }
}

/// The resources of one type in `snapshot`, by name.
fn entries(snapshot: &Snapshot, type_url: &str) -> BTreeMap<String, Any> {
    snapshot
        .resources(type_url)
        .entries
        .iter()
        .map(|(name, e)| (name.clone(), e.resource.clone()))
        .collect()
}
