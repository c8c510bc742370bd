//! The Envoy side of HTTPS listeners: one Envoy listener per port, one filter
//! chain per Gateway listener hostname, matched on SNI (`server_names`; a
//! listener without hostname gets the chain without a match, Envoy's
//! fallback), each terminating TLS with its certificates inline. Every chain
//! runs the same HTTP connection manager as a plain HTTP listener on that
//! port would, routing from the port's one route configuration, as Envoy
//! Gateway does: TLS picks the certificate, the Host header picks the
//! virtual host.

use std::net::IpAddr;

use envoy_types::pb::envoy::config::core::v3::{
    data_source::Specifier, transport_socket, DataSource, TransportSocket,
};
use envoy_types::pb::envoy::config::listener::v3::{
    listener_filter, FilterChain, FilterChainMatch, Listener, ListenerFilter,
};
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CommonTlsContext, DownstreamTlsContext, TlsCertificate,
};
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};

use super::certificates::Certificate;
use super::envoy;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;

pub const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";
pub const TLS_TRANSPORT_SOCKET: &str = "envoy.transport_sockets.tls";

/// One Gateway listener served on an HTTPS port.
pub struct Chain {
    /// `namespace/gateway/listener`, the filter chain's name.
    pub name: String,
    pub hostname: Option<String>,
    pub certificates: Vec<Certificate>,
}

/// The HTTPS listener for `port`; `chains` must not be empty.
pub fn https_listener(
    address: IpAddr,
    port: u32,
    filters: Vec<HttpFilter>,
    chains: &[Chain],
) -> Listener {
    let mut listener = envoy::http_listener(address, port, filters);
    let plain = listener.filter_chains.pop().unwrap_or_default();
    listener.filter_chains = chains
        .iter()
        .map(|chain| FilterChain {
            name: chain.name.clone(),
            filter_chain_match: chain.hostname.as_ref().map(|h| FilterChainMatch {
                server_names: vec![h.clone()],
                ..FilterChainMatch::default()
            }),
            transport_socket: Some(TransportSocket {
                name: TLS_TRANSPORT_SOCKET.to_owned(),
                config_type: Some(transport_socket::ConfigType::TypedConfig(any(
                    &downstream_tls_context(&chain.certificates),
                ))),
            }),
            ..plain.clone()
        })
        .collect();
    listener.listener_filters = vec![ListenerFilter {
        name: TLS_INSPECTOR.to_owned(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(any(
            &TlsInspector::default(),
        ))),
        ..ListenerFilter::default()
    }];
    listener
}

/// ALPN offers HTTP/2 first: gRPC clients need it, and browsers prefer it.
fn downstream_tls_context(certificates: &[Certificate]) -> DownstreamTlsContext {
    let inline = |text: &str| {
        Some(DataSource {
            specifier: Some(Specifier::InlineString(text.to_owned())),
            ..DataSource::default()
        })
    };
    DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificates: certificates
                .iter()
                .map(|c| TlsCertificate {
                    certificate_chain: inline(&c.chain),
                    private_key: inline(&c.key),
                    ..TlsCertificate::default()
                })
                .collect(),
            alpn_protocols: vec!["h2".to_owned(), "http/1.1".to_owned()],
            ..CommonTlsContext::default()
        }),
        ..DownstreamTlsContext::default()
    }
}

fn any<M: Message + Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}
