//! Clusters that speak HTTP/2 (h2c) to their endpoints: gRPC needs it, and a
//! Service port's `appProtocol` can ask for it. Envoy's way is the cluster's
//! `typed_extension_protocol_options` with explicit HTTP/2, as Envoy Gateway
//! configures gRPC backends.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::Http2ProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    http_protocol_options::{
        explicit_http_config::ProtocolConfig, ExplicitHttpConfig, UpstreamProtocolOptions,
    },
    HttpProtocolOptions,
};
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};

use crate::resources::ServicePort;

/// The extension name Envoy looks the options up by.
pub const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// `appProtocol` values that mean HTTP/2 without TLS: Kubernetes' standard
/// `kubernetes.io/h2c` (what Gateway API names for h2c backends) and `grpc`.
pub fn app_protocol(port: &ServicePort) -> bool {
    matches!(
        port.app_protocol.as_deref(),
        Some("kubernetes.io/h2c" | "grpc")
    )
}

pub fn enable(cluster: &mut Cluster) {
    let options = HttpProtocolOptions {
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(
                    Http2ProtocolOptions::default(),
                )),
            },
        )),
        ..HttpProtocolOptions::default()
    };
    cluster.typed_extension_protocol_options.insert(
        HTTP_PROTOCOL_OPTIONS.to_owned(),
        Any {
            type_url: HttpProtocolOptions::type_url(),
            value: options.encode_to_vec(),
        },
    );
}
