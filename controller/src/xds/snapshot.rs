//! One consistent set of Envoy resources, encoded once and shared by every
//! stream that serves it.
//!
//! Versions are derived from content: a resource's version is a hash of its
//! encoding, a type's version a hash of its resources' names and versions, the
//! snapshot's a hash of its types'. So an edit that translates to the same
//! Envoy resources yields the same version, and nothing is pushed; and a
//! controller restart serving the same configuration hands Envoy the versions
//! it already has. prost encodes a message deterministically as long as it
//! holds no map fields; the translator sets none.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::google::protobuf::Any;
use prost::{DecodeError, Message, Name};
use sha2::{Digest, Sha256};

use crate::translate::{status::Status, Translation};

/// The type URLs the translator produces, in the order a change is pushed:
/// clusters before the listeners that use them, route configurations after
/// the listeners that name them (make-before-break, as Envoy's xDS protocol
/// document recommends for ADS).
pub fn push_order() -> [String; 3] {
    [
        Cluster::type_url(),
        Listener::type_url(),
        RouteConfiguration::type_url(),
    ]
}

/// LDS and CDS treat an empty subscription as "everything" (wildcard); other
/// types as "nothing".
pub fn wildcard_by_default(type_url: &str) -> bool {
    type_url == Listener::type_url() || type_url == Cluster::type_url()
}

/// `Listener` for `type.googleapis.com/envoy.config.listener.v3.Listener`: a
/// short label for logs and metrics.
pub fn short_type(type_url: &str) -> &str {
    type_url.rsplit('.').next().unwrap_or(type_url)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub version: String,
    pub resource: Any,
}

/// The resources of one type, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TypeResources {
    pub version: String,
    pub entries: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    version: String,
    types: BTreeMap<String, TypeResources>,
    /// What a type the snapshot holds nothing of answers.
    empty: TypeResources,
}

impl Snapshot {
    /// A snapshot of `resources`: `(name, resource)` per type URL.
    pub fn new(resources: impl IntoIterator<Item = (String, Any)>) -> Snapshot {
        let mut types: BTreeMap<String, TypeResources> = BTreeMap::new();
        for (name, resource) in resources {
            let entry = Entry {
                version: hash([resource.type_url.as_bytes(), &resource.value]),
                resource,
            };
            types
                .entry(entry.resource.type_url.clone())
                .or_default()
                .entries
                .insert(name, entry);
        }
        for resources in types.values_mut() {
            resources.version = hash(
                resources
                    .entries
                    .iter()
                    .flat_map(|(name, e)| [name.as_bytes(), e.version.as_bytes()]),
            );
        }
        let version = hash(
            types
                .iter()
                .flat_map(|(url, t)| [url.as_bytes(), t.version.as_bytes()]),
        );
        let empty = TypeResources {
            version: hash(std::iter::empty::<&[u8]>()),
            entries: BTreeMap::new(),
        };
        Snapshot {
            version,
            types,
            empty,
        }
    }

    /// The Envoy resources of a translation (its status stays behind).
    pub fn from_translation(t: &Translation) -> Snapshot {
        let listeners = t.listeners.iter().map(|l| (l.name.clone(), any(l)));
        let routes = t
            .route_configurations
            .iter()
            .map(|r| (r.name.clone(), any(r)));
        let clusters = t.clusters.iter().map(|c| (c.name.clone(), any(c)));
        Snapshot::new(listeners.chain(routes).chain(clusters))
    }

    /// The Envoy resources back as a translation (in name order, status
    /// empty): `/config_dump` decodes them when asked, so a serving
    /// controller keeps each resource once, encoded, rather than also as a
    /// message.
    pub fn decode(&self) -> Result<Translation, DecodeError> {
        fn all<M: Message + Name + Default>(snapshot: &Snapshot) -> Result<Vec<M>, DecodeError> {
            let entries = snapshot.resources(&M::type_url()).entries.values();
            entries
                .map(|e| M::decode(e.resource.value.as_slice()))
                .collect()
        }
        Ok(Translation {
            listeners: all(self)?,
            route_configurations: all(self)?,
            clusters: all(self)?,
            status: Status::default(),
        })
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// The resources of `type_url`; a type the snapshot holds none of is
    /// empty, with the version of an empty set.
    pub fn resources(&self, type_url: &str) -> &TypeResources {
        self.types.get(type_url).unwrap_or(&self.empty)
    }

    /// Resource counts by type URL.
    pub fn counts(&self) -> impl Iterator<Item = (&str, usize)> {
        self.types
            .iter()
            .map(|(url, t)| (url.as_str(), t.entries.len()))
    }
}

fn any<M: Message + Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

/// The first 16 hex digits of SHA-256 over the parts, each length-prefixed so
/// that `("ab", "c")` and `("a", "bc")` differ.
fn hash<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(name: &str, connect_ms: u32) -> (String, Any) {
        let c = Cluster {
            name: name.to_owned(),
            per_connection_buffer_limit_bytes: Some(
                envoy_types::pb::google::protobuf::UInt32Value { value: connect_ms },
            ),
            ..Cluster::default()
        };
        (name.to_owned(), any(&c))
    }

    #[test]
    fn versions_follow_content_only() {
        let a = Snapshot::new([cluster("a", 1), cluster("b", 1)]);
        let same = Snapshot::new([cluster("b", 1), cluster("a", 1)]);
        assert_eq!(a.version(), same.version());
        let changed = Snapshot::new([cluster("a", 1), cluster("b", 2)]);
        assert_ne!(a.version(), changed.version());
        let (ra, rc) = (
            a.resources(&Cluster::type_url()),
            changed.resources(&Cluster::type_url()),
        );
        assert_eq!(ra.entries["a"].version, rc.entries["a"].version);
        assert_ne!(ra.entries["b"].version, rc.entries["b"].version);
        assert_ne!(ra.version, rc.version);
        // A type the snapshot does not hold has the same version everywhere.
        assert_eq!(
            a.resources(&Listener::type_url()).version,
            changed.resources(&Listener::type_url()).version
        );
    }

    #[test]
    fn decoding_gives_back_the_translation_in_name_order() {
        let cluster = |name: &str| Cluster {
            name: name.to_owned(),
            ..Cluster::default()
        };
        let translation = Translation {
            listeners: vec![Listener {
                name: "http-80".to_owned(),
                ..Listener::default()
            }],
            route_configurations: vec![RouteConfiguration {
                name: "http-80".to_owned(),
                ..RouteConfiguration::default()
            }],
            clusters: vec![cluster("b"), cluster("a")],
            status: Status::default(),
        };
        let decoded = Snapshot::from_translation(&translation).decode().unwrap();
        assert_eq!(decoded.listeners, translation.listeners);
        assert_eq!(
            decoded.route_configurations,
            translation.route_configurations
        );
        assert_eq!(decoded.clusters, vec![cluster("a"), cluster("b")]);
    }

    #[test]
    fn short_type_names_the_message() {
        assert_eq!(short_type(&Listener::type_url()), "Listener");
        assert_eq!(
            short_type(&RouteConfiguration::type_url()),
            "RouteConfiguration"
        );
    }
}
