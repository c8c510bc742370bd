//! The Envoy messages the translator emits besides clusters and routes: one
//! listener per port with an HTTP connection manager fetching its routes over
//! ADS.

use std::net::IpAddr;

use envoy_types::pb::envoy::config::core::v3::{
    address, config_source::ConfigSourceSpecifier, socket_address::PortSpecifier, Address,
    AggregatedConfigSource, ApiVersion, ConfigSource, SocketAddress,
};
use envoy_types::pb::envoy::config::listener::v3::{filter, Filter, FilterChain, Listener};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{RouteSpecifier, StripPortMode},
    http_filter, HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::google::protobuf::Any;
use prost::Name;

/// Listener, its HCM stats prefix and its route configuration share one name.
pub fn listener_name(port: u32) -> String {
    format!("http-{port}")
}

/// `filters` (Tollgate's, see `filter_chain`) run before the router.
pub fn http_listener(address: IpAddr, port: u32, filters: Vec<HttpFilter>) -> Listener {
    let name = listener_name(port);
    let hcm = HttpConnectionManager {
        stat_prefix: name.clone(),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ConfigSource {
                resource_api_version: ApiVersion::V3 as i32,
                config_source_specifier: Some(ConfigSourceSpecifier::Ads(
                    AggregatedConfigSource {},
                )),
                ..ConfigSource::default()
            }),
            route_config_name: name.clone(),
        })),
        http_filters: filters
            .into_iter()
            .chain([HttpFilter {
                name: "envoy.filters.http.router".to_owned(),
                config_type: Some(http_filter::ConfigType::TypedConfig(
                    any(&Router::default()),
                )),
                ..HttpFilter::default()
            }])
            .collect(),
        // Gateway API hostnames carry no port, while clients send
        // `Host: example.com:10080` to a remapped port.
        strip_port_mode: Some(StripPortMode::StripAnyHostPort(true)),
        ..HttpConnectionManager::default()
    };
    Listener {
        name: name.clone(),
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: address.to_string(),
                port_specifier: Some(PortSpecifier::PortValue(port)),
                ..SocketAddress::default()
            })),
        }),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".to_owned(),
                config_type: Some(filter::ConfigType::TypedConfig(any(&hcm))),
            }],
            ..FilterChain::default()
        }],
        ..Listener::default()
    }
}

pub fn any<M: prost::Message + Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}
