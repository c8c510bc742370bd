//! What the ADS server counts: connected streams, the responses sent and
//! their encoded size, and each client's ACKs and NACKs by resource type. Registered into the caller's registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::snapshot::short_type;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByType {
    r#type: String,
}

/// Clones share values.
#[derive(Clone, Default)]
pub struct Metrics {
    streams: Gauge,
    responses: Family<ByType, Counter>,
    bytes_sent: Family<ByType, Counter>,
    acks: Family<ByType, Counter>,
    nacks: Family<ByType, Counter>,
}

impl Metrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "xds_streams",
            "ADS streams open now (SotW and Delta)",
            self.streams.clone(),
        );
        registry.register(
            "xds_responses",
            "xDS responses sent, by resource type",
            self.responses.clone(),
        );
        registry.register(
            "xds_bytes_sent",
            "Bytes of xDS responses sent (each DiscoveryResponse or DeltaDiscoveryResponse as protobuf, before gRPC framing), by resource type",
            self.bytes_sent.clone(),
        );
        registry.register(
            "xds_acks",
            "xDS responses a client accepted, by resource type",
            self.acks.clone(),
        );
        registry.register(
            "xds_nacks",
            "xDS responses a client rejected (error_detail set), by resource type",
            self.nacks.clone(),
        );
    }

    /// Counts the stream as open until the guard is dropped.
    pub fn stream_opened(&self) -> StreamGuard {
        self.streams.inc();
        StreamGuard(self.streams.clone())
    }

    /// One response of `bytes` (its protobuf encoding) sent.
    pub fn response(&self, type_url: &str, bytes: usize) {
        let label = label(type_url);
        self.responses.get_or_create(&label).inc();
        self.bytes_sent
            .get_or_create(&label)
            .inc_by(u64::try_from(bytes).unwrap_or(u64::MAX));
    }

    pub fn ack(&self, type_url: &str) {
        self.acks.get_or_create(&label(type_url)).inc();
    }

    pub fn nack(&self, type_url: &str) {
        self.nacks.get_or_create(&label(type_url)).inc();
    }
}

fn label(type_url: &str) -> ByType {
    ByType {
        r#type: short_type(type_url).to_owned(),
    }
}

pub struct StreamGuard(Gauge);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
