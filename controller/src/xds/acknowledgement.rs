//! Whether a stream's client has accepted the configuration it is served:
//! every response it was sent answered, none of the last answers a NACK.
//! `tollgate serve` on Kubernetes sets a Gateway `Programmed` only once an
//! Envoy of that Gateway has accepted it (see `serve::views`), so this is
//! kept per stream by both protocols, from the nonces they already track.

use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Default)]
pub struct Acknowledgement {
    /// The version of the snapshot the stream's responses were last made from.
    served: Option<String>,
    /// Per type, the nonce of a response not answered yet.
    awaiting: HashMap<String, String>,
    /// Types whose last answered response was rejected.
    rejected: BTreeSet<String>,
}

impl Acknowledgement {
    /// The stream's responses now come from snapshot `version`.
    pub fn serving(&mut self, version: &str) {
        if self.served.as_deref() != Some(version) {
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
        } else {
            self.rejected.insert(type_url.to_owned());
        }
    }

    /// The snapshot version the client has accepted all of, if it has.
    pub fn acknowledged(&self) -> Option<&str> {
        if self.awaiting.is_empty() && self.rejected.is_empty() {
            self.served.as_deref()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_acknowledged_once_every_response_made_from_it_is_accepted() {
        let mut ack = Acknowledgement::default();
        assert_eq!(ack.acknowledged(), None, "nothing served yet");
        ack.serving("v1");
        ack.sent("lds", "1");
        ack.sent("cds", "2");
        ack.answered("lds", "1", true);
        assert_eq!(ack.acknowledged(), None, "clusters not answered");
        ack.answered("cds", "2", true);
        assert_eq!(ack.acknowledged(), Some("v1"));
    }

    #[test]
    fn a_rejected_type_holds_the_acknowledgement_back_until_a_later_response_is_accepted() {
        let mut ack = Acknowledgement::default();
        ack.serving("v1");
        ack.sent("lds", "1");
        ack.answered("lds", "1", false);
        assert_eq!(ack.acknowledged(), None);
        ack.serving("v2");
        ack.sent("lds", "2");
        ack.answered("lds", "1", true); // stale: an answer to the first response
        assert_eq!(ack.acknowledged(), None);
        ack.answered("lds", "2", true);
        assert_eq!(ack.acknowledged(), Some("v2"));
    }
}
