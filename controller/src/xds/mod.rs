//! The ADS server (`envoy.service.discovery.v3.AggregatedDiscoveryService`),
//! state-of-the-world and incremental, serving versioned snapshots of Envoy
//! resources.
//!
//! - [`snapshot`]: one set of resources, encoded once, content-versioned.
//! - [`sotw`] and [`delta`]: each protocol's per-stream bookkeeping (what the
//!   client subscribed to, what it was sent, ACK and NACK), free of I/O.
//! - [`server`]: the tonic service; one task per stream.
//! - [`metrics`]: streams, responses, ACKs and NACKs.
//! - [`acknowledgement`]: whether a stream's client accepted what it is served.
//!
//! Which snapshots a stream gets is up to a [`Views`]: `tollgate serve` gives
//! a node either every Gateway or only the one its bootstrap names.

pub mod acknowledgement;
pub mod delta;
pub mod metrics;
pub mod server;
pub mod snapshot;
pub mod sotw;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use tokio::sync::watch;

pub use metrics::Metrics;
pub use server::AdsServer;
pub use snapshot::Snapshot;

/// The snapshots a node is served: `None` until the first good one (its
/// streams wait), then each new one as it is published.
pub trait Views: Send + Sync + 'static {
    fn subscribe(&self, node: &Node) -> watch::Receiver<Option<Arc<Snapshot>>>;
    /// A stream of `node` has accepted all of snapshot `version` (every
    /// response answered, no NACK outstanding).
    fn acknowledged(&self, node: &Node, version: &str);
}
