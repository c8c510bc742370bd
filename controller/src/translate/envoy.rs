//! The Envoy messages the translator emits besides clusters: one listener per
//! port with an HTTP connection manager fetching its routes over ADS, and the
//! actions of a route.

use envoy_types::pb::envoy::config::core::v3::{
    address, config_source::ConfigSourceSpecifier, socket_address::PortSpecifier, Address,
    AggregatedConfigSource, ApiVersion, ConfigSource, SocketAddress,
};
use envoy_types::pb::envoy::config::listener::v3::{filter, Filter, FilterChain, Listener};
use envoy_types::pb::envoy::config::route::v3::{
    route::Action, route_action::ClusterNotFoundResponseCode, route_action::ClusterSpecifier,
    weighted_cluster::ClusterWeight, DirectResponseAction, RouteAction, WeightedCluster,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{RouteSpecifier, StripPortMode},
    http_filter, HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::google::protobuf::{Any, UInt32Value};
use prost::Name;

/// Listener, its HCM stats prefix and its route configuration share one name.
pub fn listener_name(port: u32) -> String {
    format!("http-{port}")
}

pub fn http_listener(port: u32) -> Listener {
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
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".to_owned(),
            config_type: Some(http_filter::ConfigType::TypedConfig(
                any(&Router::default()),
            )),
            ..HttpFilter::default()
        }],
        // Gateway API hostnames carry no port, while clients send
        // `Host: example.com:10080` to a remapped port.
        strip_port_mode: Some(StripPortMode::StripAnyHostPort(true)),
        ..HttpConnectionManager::default()
    };
    Listener {
        name: name.clone(),
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: "0.0.0.0".to_owned(),
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

fn any<M: prost::Message + Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

/// One share of a rule's traffic: a cluster, or a backendRef that did not
/// resolve (its share answers 500).
pub enum Share {
    Cluster(String),
    Invalid(String),
}

/// The action for a rule's weighted shares. A lone valid cluster is a plain
/// `cluster`; nothing to send to is a 500. A mix of valid and invalid shares
/// sends the invalid ones to a cluster name that is never defined, with
/// `cluster_not_found_response_code: INTERNAL_SERVER_ERROR`, so exactly that
/// share of requests gets the 500 the spec asks for.
pub fn rule_action(shares: &[(Share, u32)]) -> Action {
    let live: Vec<&(Share, u32)> = shares.iter().filter(|(_, w)| *w > 0).collect();
    match live.as_slice() {
        [] | [(Share::Invalid(_), _)] => Action::DirectResponse(DirectResponseAction {
            status: 500,
            ..DirectResponseAction::default()
        }),
        [(Share::Cluster(name), _)] => Action::Route(RouteAction {
            cluster_specifier: Some(ClusterSpecifier::Cluster(name.clone())),
            ..RouteAction::default()
        }),
        many => {
            let clusters = many
                .iter()
                .map(|(share, weight)| ClusterWeight {
                    name: match share {
                        Share::Cluster(name) | Share::Invalid(name) => name.clone(),
                    },
                    weight: Some(UInt32Value { value: *weight }),
                    ..ClusterWeight::default()
                })
                .collect();
            let any_invalid = many.iter().any(|(s, _)| matches!(s, Share::Invalid(_)));
            Action::Route(RouteAction {
                cluster_specifier: Some(ClusterSpecifier::WeightedClusters(WeightedCluster {
                    clusters,
                    ..WeightedCluster::default()
                })),
                cluster_not_found_response_code: if any_invalid {
                    ClusterNotFoundResponseCode::InternalServerError as i32
                } else {
                    ClusterNotFoundResponseCode::ServiceUnavailable as i32
                },
                ..RouteAction::default()
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_500(action: &Action) -> bool {
        matches!(action, Action::DirectResponse(d) if d.status == 500)
    }

    #[test]
    fn nothing_to_send_to_is_a_500() {
        assert!(is_500(&rule_action(&[])));
        assert!(is_500(&rule_action(&[(Share::Cluster("a".into()), 0)])));
        assert!(is_500(&rule_action(&[(Share::Invalid("x".into()), 3)])));
    }

    #[test]
    fn a_lone_live_cluster_is_a_plain_cluster() {
        let action = rule_action(&[
            (Share::Cluster("a".into()), 1),
            (Share::Invalid("x".into()), 0),
        ]);
        let Action::Route(route) = action else {
            panic!("not a route: {action:?}");
        };
        assert_eq!(
            route.cluster_specifier,
            Some(ClusterSpecifier::Cluster("a".into()))
        );
    }

    #[test]
    fn an_invalid_share_among_live_ones_answers_500_for_its_share() {
        let action = rule_action(&[
            (Share::Cluster("a".into()), 1),
            (Share::Invalid("x".into()), 1),
        ]);
        let Action::Route(route) = action else {
            panic!("not a route: {action:?}");
        };
        assert_eq!(
            route.cluster_not_found_response_code,
            ClusterNotFoundResponseCode::InternalServerError as i32
        );
        let Some(ClusterSpecifier::WeightedClusters(w)) = route.cluster_specifier else {
            panic!("not weighted");
        };
        let names: Vec<_> = w.clusters.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, vec!["a", "x"]);
    }
}
