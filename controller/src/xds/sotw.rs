//! State-of-the-world ADS: per resource type, what the client subscribed to
//! and which version and nonce it was last sent. Pure bookkeeping; the
//! server feeds it requests and snapshots and sends what it returns.
//!
//! A request carrying the nonce of the last response is the client's answer
//! to it: an ACK, or a NACK when `error_detail` is set. A NACKed version is
//! not sent again (the client would only reject it again); the next snapshot
//! that changes the type is. A request with an older nonce is stale (a later
//! response crossed it) and ignored, as the protocol asks.

use std::collections::BTreeSet;
use std::collections::HashMap;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

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
}

pub struct Stream {
    node: String,
    metrics: Metrics,
    watches: HashMap<String, Watch>,
    nonces: u64,
}

impl Stream {
    pub fn new(node: String, metrics: Metrics) -> Stream {
        Stream {
            node,
            metrics,
            watches: HashMap::new(),
            nonces: 0,
        }
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
                self.watches
                    .insert(type_url.clone(), Watch { names, sent: None });
                true
            }
            Some(watch) => {
                if !request.response_nonce.is_empty() {
                    let Some((version, nonce)) = &watch.sent else {
                        return Vec::new(); // a nonce we never sent on this stream
                    };
                    if *nonce != request.response_nonce {
                        tracing::debug!(node = %self.node, r#type = short_type(&type_url), nonce = %request.response_nonce, "stale request ignored");
                        return Vec::new();
                    }
                    match &request.error_detail {
                        Some(error) => {
                            self.metrics.nack(&type_url);
                            tracing::warn!(
                                node = %self.node,
                                r#type = short_type(&type_url),
                                rejected_version = %version,
                                kept_version = %request.version_info,
                                error = %error.message,
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
            Some(snapshot) if respond => self.respond(&type_url, snapshot).into_iter().collect(),
            _ => Vec::new(),
        }
    }

    /// What to send when the served snapshot changes: every watched type whose
    /// version differs from the one last sent, in make-before-break order.
    pub fn on_snapshot(&mut self, snapshot: &Snapshot) -> Vec<DiscoveryResponse> {
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
        types
            .iter()
            .filter_map(|t| self.respond(t, snapshot))
            .collect()
    }

    fn respond(&mut self, type_url: &str, snapshot: &Snapshot) -> Option<DiscoveryResponse> {
        let watch = self.watches.get_mut(type_url)?;
        let resources = snapshot.resources(type_url);
        self.nonces += 1;
        let nonce = self.nonces.to_string();
        watch.sent = Some((resources.version.clone(), nonce.clone()));
        self.metrics.response(type_url);
        Some(DiscoveryResponse {
            version_info: resources.version.clone(),
            resources: resources
                .entries
                .iter()
                .filter(|(name, _)| watch.names.wants(name))
                .map(|(_, e)| e.resource.clone())
                .collect(),
            type_url: type_url.to_owned(),
            nonce,
            ..DiscoveryResponse::default()
        })
    }
}
