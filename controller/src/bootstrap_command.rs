//! `tollgate bootstrap`: the Envoy bootstrap that points an Envoy at
//! `tollgate serve`. Everything else (listeners, routes, clusters, and the
//! wasm filters, which listeners reference by absolute path) comes over ADS.
//!
//! Printed as JSON: it is also valid YAML, and unlike YAML it reads the same
//! to Envoy's YAML 1.1 loader as to anything else.

use std::net::{IpAddr, SocketAddr};

use anyhow::Context as _;
use serde_json::{json, Value};

use crate::serve::views::{parse_gateway, GATEWAY_METADATA_KEY};

/// The static cluster holding the ADS server.
const XDS_CLUSTER: &str = "tollgate-xds";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The ADS server (`tollgate serve --xds-listen`), `HOST:PORT`; a name is resolved by DNS.
    #[arg(long, value_name = "HOST:PORT")]
    xds_address: String,
    /// This Envoy's node id (in logs on both sides).
    #[arg(long, value_name = "ID")]
    node_id: String,
    /// Serve only this Gateway, `NAMESPACE/NAME` (by default: every Gateway of the Tollgate class).
    #[arg(long, value_name = "NS/NAME")]
    gateway: Option<String>,
    /// Envoy's own admin endpoint.
    #[arg(long, default_value = "127.0.0.1:9901", value_name = "ADDR")]
    admin_address: SocketAddr,
    /// This Envoy's node cluster (its service name in Envoy's stats and logs).
    #[arg(long, default_value = "tollgate", value_name = "NAME")]
    cluster: String,
    /// Which ADS variant Envoy speaks: state of the world, or incremental.
    #[arg(long, value_enum, default_value_t = Protocol::Sotw)]
    xds_protocol: Protocol,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Protocol {
    Sotw,
    Delta,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(&bootstrap(args)?).context("writing JSON")?;
    println!("{text}");
    Ok(())
}

fn bootstrap(args: &Args) -> anyhow::Result<Value> {
    let (host, port) = split_host_port(&args.xds_address)?;
    let mut node = json!({"id": args.node_id, "cluster": args.cluster});
    if let Some(gateway) = &args.gateway {
        if parse_gateway(gateway).is_none() {
            anyhow::bail!("--gateway {gateway:?}: expected NAMESPACE/NAME");
        }
        node["metadata"] = json!({ GATEWAY_METADATA_KEY: gateway });
    }
    // A literal address needs no resolver; a name is re-resolved as DNS changes.
    let discovery = if host.parse::<IpAddr>().is_ok() {
        "STATIC"
    } else {
        "STRICT_DNS"
    };
    let ads = json!({"ads": {}, "resource_api_version": "V3"});
    Ok(json!({
        "node": node,
        "admin": {"address": socket_address(&args.admin_address.ip().to_string(), args.admin_address.port())},
        "dynamic_resources": {
            "ads_config": {
                "api_type": match args.xds_protocol {
                    Protocol::Sotw => "GRPC",
                    Protocol::Delta => "DELTA_GRPC",
                },
                "transport_api_version": "V3",
                "set_node_on_first_message_only": true,
                "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}],
            },
            "lds_config": ads,
            "cds_config": ads,
        },
        "static_resources": {
            "clusters": [{
                "name": XDS_CLUSTER,
                "type": discovery,
                "connect_timeout": "1s",
                "load_assignment": {
                    "cluster_name": XDS_CLUSTER,
                    "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket_address(host, port)}}]}],
                },
                // gRPC needs HTTP/2 to the server.
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": {"http2_protocol_options": {}},
                    }
                },
            }],
        },
        // Without a limit Envoy accepts connections until it runs out of file
        // descriptors (and warns at startup that no limit is set).
        "overload_manager": {
            "resource_monitors": [{
                "name": "envoy.resource_monitors.global_downstream_max_connections",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
                    "max_active_downstream_connections": 50000,
                },
            }],
        },
    }))
}

fn socket_address(host: &str, port: u16) -> Value {
    json!({"socket_address": {"address": host, "port_value": port}})
}

/// `host:port` or `[v6]:port`.
fn split_host_port(address: &str) -> anyhow::Result<(&str, u16)> {
    let bad = || format!("--xds-address {address:?}: expected HOST:PORT");
    let (host, port) = address.rsplit_once(':').with_context(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = port.parse().ok().with_context(bad)?;
    if host.is_empty() {
        anyhow::bail!(bad());
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port() {
        assert_eq!(
            split_host_port("127.0.0.1:18000").unwrap(),
            ("127.0.0.1", 18000)
        );
        assert_eq!(split_host_port("[::1]:18000").unwrap(), ("::1", 18000));
        assert_eq!(
            split_host_port("tollgate.ns.svc:18000").unwrap(),
            ("tollgate.ns.svc", 18000)
        );
        for bad in ["127.0.0.1", ":18000", "host:port", "host:99999"] {
            let err = split_host_port(bad).unwrap_err().to_string();
            assert!(err.contains("--xds-address"), "{bad}: {err}");
        }
    }
}
