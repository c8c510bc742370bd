//! Whether a stream's client has accepted the configuration it is served:
//! every response it was sent answered, none of the last answers a NACK, and
//! each of clusters, listeners and route configurations the snapshot holds
//! accepted at least once (Envoy asks for listeners only once its clusters
//! are warm, so an ACK of the clusters alone says nothing of the listeners).
//! `tollgate serve` on Kubernetes sets a Gateway `Programmed` only once an
//! Envoy of that Gateway has accepted it (see `serve::views`), so this is
//! kept per stream by both protocols, from the nonces they already track.

use std::collections::{BTreeSet, HashMap};

use super::snapshot::{push_order, Snapshot};

#[derive(Debug, Default)]
pub struct Acknowledgement {
    /// The version of the snapshot the stream's responses were last made from.
    served: Option<String>,
    /// Per type, the nonce of a response not answered yet.
    awaiting: HashMap<String, String>,
    /// Types whose last answered response was rejected.
    rejected: BTreeSet<String>,
    /// Types a response of which was accepted.
    accepted: BTreeSet<String>,
}

impl Acknowledgement {
    /// The stream's responses now come from snapshot `version` (every type
    /// it watches was brought up to it).
    pub fn serving(&mut self, version: &str) {
        if self.served.as_deref() != Some(version) {
            self.served = Some(version.to_owned());
        }
    }

    /// The stream answers its first request from snapshot `version`; a later
    /// request answered from a newer snapshot does not make the stream serve
    /// it (only the push of every type does: [`Acknowledgement::serving`]).
    pub fn serving_first(&mut self, version: &str) {
        if self.served.is_none() {
            self.served = Some(version.to_owned());
        }
    }

    /// A response of `type_url` went out with `nonce`.
    pub fn sent(&mut self, type_url: &str, nonce: &str) {
        self.awaiting.insert(type_url.to_owned(), nonce.to_owned());
    }

    /// The client answered the response `nonce` of `type_url`; an answer to
    /// an earlier response (a later one crossed it) changes nothing.
    pub fn answered(&mut self, type_url: &str, nonce: &str, accepted: bool) {
        if self.awaiting.get(type_url).map(String::as_str) != Some(nonce) {
            return;
        }
        self.awaiting.remove(type_url);
        if accepted {
            self.rejected.remove(type_url);
            self.accepted.insert(type_url.to_owned());
        } else {
            self.rejected.insert(type_url.to_owned());
        }
    }

    /// The snapshot version the client has accepted all of, if it has;
    /// `snapshot` (the one being served) says which types it must have
    /// accepted.
    pub fn acknowledged(&self, snapshot: &Snapshot) -> Option<&str> {
        let all_types = push_order().into_iter().all(|type_url| {
            snapshot.resources(&type_url).entries.is_empty() || self.accepted.contains(&type_url)
        });
        (all_types && self.awaiting.is_empty() && self.rejected.is_empty())
            .then_some(self.served.as_deref())
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::Translation;
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::listener::v3::Listener;
    use prost::Name as _;

    /// A snapshot with one cluster and one listener.
    fn snapshot() -> Snapshot {
        let translation = Translation {
            listeners: vec![Listener {
                name: "l".into(),
                ..Listener::default()
            }],
            clusters: vec![Cluster {
                name: "c".into(),
                ..Cluster::default()
            }],
            ..Translation::default()
        };
        Snapshot::from_translation(&translation)
    }

    #[test]
    fn a_version_is_acknowledged_once_its_clusters_and_listeners_are_accepted() {
        let snapshot = snapshot();
        let (cds, lds) = (Cluster::type_url(), Listener::type_url());
        let mut ack = Acknowledgement::default();
        assert_eq!(ack.acknowledged(&snapshot), None, "nothing served yet");
        ack.serving_first("v1");
        ack.sent(&cds, "1");
        ack.answered(&cds, "1", true);
        assert_eq!(
            ack.acknowledged(&snapshot),
            None,
            "Envoy asks for listeners once its clusters are warm: not yet"
        );
        ack.sent(&lds, "2");
        assert_eq!(ack.acknowledged(&snapshot), None, "listeners not answered");
        ack.answered(&lds, "2", true);
        assert_eq!(ack.acknowledged(&snapshot), Some("v1"));
    }

    #[test]
    fn a_rejected_type_holds_the_acknowledgement_back_until_a_later_response_is_accepted() {
        let snapshot = snapshot();
        let (cds, lds) = (Cluster::type_url(), Listener::type_url());
        let mut ack = Acknowledgement::default();
        ack.serving_first("v1");
        ack.sent(&cds, "1");
        ack.answered(&cds, "1", true);
        ack.sent(&lds, "2");
        ack.answered(&lds, "2", false);
        assert_eq!(ack.acknowledged(&snapshot), None);
        ack.serving("v2");
        ack.sent(&lds, "3");
        ack.answered(&lds, "2", true); // stale: an answer to an earlier response
        assert_eq!(ack.acknowledged(&snapshot), None);
        ack.answered(&lds, "3", true);
        assert_eq!(ack.acknowledged(&snapshot), Some("v2"));
    }

    #[test]
    fn a_request_answered_from_a_newer_snapshot_does_not_serve_it() {
        let mut ack = Acknowledgement::default();
        ack.serving_first("v1");
        ack.serving_first("v2");
        assert_eq!(
            ack.served.as_deref(),
            Some("v1"),
            "until every type is pushed"
        );
    }
}
