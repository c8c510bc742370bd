//! `tollgate bootstrap`: the Envoy bootstrap that points an Envoy at
//! `tollgate serve`. Everything else (listeners, routes, clusters, and
//! Tollgate's filters) comes over ADS. The filters' code is not in the
//! bootstrap: the dynamic module is found by Envoy through
//! `ENVOY_DYNAMIC_MODULES_SEARCH_PATH` (an environment variable of the Envoy
//! process, which `bootstrap` says, since no config can set it), the wasm
//! filters by the absolute path `serve --wasm-dir` puts in the listeners.
//!
//! Printed as JSON: it is also valid YAML, and unlike YAML it reads the same
//! to Envoy's YAML 1.1 loader as to anything else.
//!
//! With `--xds-tls-ca`, `--xds-tls-cert` and `--xds-tls-key` the `tollgate-xds`
//! cluster speaks mutual TLS, the client side of `tollgate serve --xds-tls-*`
//! ([`xds_transport_socket`]): the files are referenced by absolute path,
//! read by Envoy, never copied into the bootstrap.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::{json, Value};

use crate::serve::views::{parse_gateway, GATEWAY_METADATA_KEY};
use crate::serve::xds_tls::all_or_none;
use crate::translate::filter_runtime::DYNAMIC_MODULE;
use crate::translate::RuntimeKind;

/// The static cluster holding the ADS server.
const XDS_CLUSTER: &str = "tollgate-xds";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The ADS server (`tollgate serve --xds-listen`), `HOST:PORT`; a name is resolved by DNS.
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) xds_address: String,
    /// This Envoy's node id (in logs on both sides).
    #[arg(long, value_name = "ID")]
    pub(crate) node_id: String,
    /// Serve only this Gateway, `NAMESPACE/NAME` (by default: every Gateway of the Tollgate class).
    #[arg(long, value_name = "NS/NAME")]
    pub(crate) gateway: Option<String>,
    /// Envoy's own admin endpoint. It is privileged (it shows every filter's configuration,
    /// secrets included, and can change Envoy's state): keep it on loopback.
    #[arg(long, default_value = "127.0.0.1:9901", value_name = "ADDR")]
    pub(crate) admin_address: SocketAddr,
    /// This Envoy's node cluster (its service name in Envoy's stats and logs).
    #[arg(long, default_value = "tollgate", value_name = "NAME")]
    pub(crate) cluster: String,
    /// Which ADS variant Envoy speaks: state of the world, or incremental.
    #[arg(long, value_enum, default_value_t = Protocol::Sotw)]
    pub(crate) xds_protocol: Protocol,
    /// CA certificate (PEM file) that signed `tollgate serve --xds-tls-cert`. With --xds-tls-cert and
    /// --xds-tls-key (all three or none), Envoy reaches xDS over mutual TLS. Envoy reads the files.
    #[arg(long, value_name = "FILE")]
    pub(crate) xds_tls_ca: Option<PathBuf>,
    /// Envoy's client certificate chain (PEM file), signed by a CA of `tollgate serve --xds-tls-client-ca`.
    #[arg(long, value_name = "FILE")]
    pub(crate) xds_tls_cert: Option<PathBuf>,
    /// Private key (PEM file) of --xds-tls-cert; the bootstrap holds its path, never the key.
    #[arg(long, value_name = "FILE")]
    pub(crate) xds_tls_key: Option<PathBuf>,
    /// The name the server certificate must carry as a DNS or IP subject alternative name (a DNS name
    /// is also sent as SNI) [default: the host of --xds-address]. Only with the other --xds-tls-* flags.
    #[arg(long, value_name = "NAME")]
    pub(crate) xds_tls_server_name: Option<String>,
    /// The filter runtime `tollgate serve` was given; with `dynamic-module` (the default) this
    /// prints, on stderr, the `ENVOY_DYNAMIC_MODULES_SEARCH_PATH` Envoy needs.
    #[arg(long, value_enum, default_value_t = RuntimeKind::DynamicModule)]
    pub(crate) filter_runtime: RuntimeKind,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Protocol {
    Sotw,
    Delta,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    if !args.admin_address.ip().is_loopback() {
        tracing::warn!(
            "--admin-address {}: Envoy's admin interface shows every filter's configuration, secrets \
             included, and can change Envoy's state; anyone who reaches it owns this Envoy. Keep it on \
             127.0.0.1",
            args.admin_address
        );
    }
    for (flag, file) in [
        ("--xds-tls-ca", &args.xds_tls_ca),
        ("--xds-tls-cert", &args.xds_tls_cert),
        ("--xds-tls-key", &args.xds_tls_key),
    ] {
        if let Some(file) = file.as_ref().filter(|f| !f.exists()) {
            tracing::warn!(
                "{flag} {}: no such file here; Envoy must find it at that path",
                file.display()
            );
        }
    }
    let text = serde_json::to_string_pretty(&bootstrap(args)?).context("writing JSON")?;
    println!("{text}");
    if args.filter_runtime == RuntimeKind::DynamicModule {
        tracing::info!(
            "start Envoy with ENVOY_DYNAMIC_MODULES_SEARCH_PATH={}: the filters are the dynamic module `{}` \
             (lib{}.so), built for Envoy 1.40 and loadable by 1.41",
            module_dir().display(),
            DYNAMIC_MODULE,
            DYNAMIC_MODULE
        );
    }
    Ok(())
}

/// Where `libtollgate.so` is: next to this binary (`make build` puts both in
/// `dist/`), else `dist/`; absolute when it can be made so.
fn module_dir() -> PathBuf {
    let dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .filter(|dir| dir.join(format!("lib{DYNAMIC_MODULE}.so")).is_file())
        .unwrap_or_else(|| PathBuf::from("dist"));
    std::path::absolute(&dir).unwrap_or(dir)
}

/// The bootstrap `args` describe (also what a provisioned Envoy gets, see
/// `serve::provision`).
pub(crate) fn bootstrap(args: &Args) -> anyhow::Result<Value> {
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
    let mut xds_cluster = json!({
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
    });
    if let Some(socket) = xds_tls(args, host)? {
        xds_cluster["transport_socket"] = socket;
    }
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
        "static_resources": {"clusters": [xds_cluster]},
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

/// The `tollgate-xds` cluster's transport socket for mutual TLS, `None`
/// without the `--xds-tls-*` flags (plain gRPC).
fn xds_tls(args: &Args, xds_host: &str) -> anyhow::Result<Option<Value>> {
    let files = all_or_none(
        "mutual TLS on xDS",
        [
            ("--xds-tls-ca", args.xds_tls_ca.as_deref()),
            ("--xds-tls-cert", args.xds_tls_cert.as_deref()),
            ("--xds-tls-key", args.xds_tls_key.as_deref()),
        ],
    )?;
    let Some([ca, cert, key]) = files else {
        if args.xds_tls_server_name.is_some() {
            anyhow::bail!(
                "--xds-tls-server-name given without --xds-tls-ca, --xds-tls-cert, --xds-tls-key: \
                 the server's name is checked only over mutual TLS"
            );
        }
        return Ok(None);
    };
    let server = match &args.xds_tls_server_name {
        Some(name) => ServerName::parse(name).with_context(|| {
            format!("--xds-tls-server-name {name:?}: not a DNS name or IP address")
        })?,
        None => ServerName::parse(xds_host).with_context(|| {
            format!(
                "--xds-address host {xds_host:?} is not a name a certificate can carry: \
                 give --xds-tls-server-name"
            )
        })?,
    };
    Ok(Some(xds_transport_socket(
        &envoy_path("--xds-tls-ca", ca)?,
        &envoy_path("--xds-tls-cert", cert)?,
        &envoy_path("--xds-tls-key", key)?,
        &server,
    )))
}

/// What the server's certificate must be issued to.
#[derive(Debug, PartialEq, Eq)]
enum ServerName {
    Dns(String),
    Ip(IpAddr),
}

impl ServerName {
    fn parse(name: &str) -> Option<ServerName> {
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Some(ServerName::Ip(ip));
        }
        let label_ok = |l: &str| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        (name.len() <= 253 && name.split('.').all(label_ok))
            .then(|| ServerName::Dns(name.to_ascii_lowercase()))
    }
}

/// A file Envoy reads, as an absolute path (Envoy resolves a relative one
/// from its own working directory). It need not exist here: the bootstrap may
/// be written for another machine or a volume mounted later.
fn envoy_path(flag: &str, path: &Path) -> anyhow::Result<String> {
    let absolute = std::path::absolute(path)
        .with_context(|| format!("{flag} {}: making it absolute", path.display()))?;
    absolute
        .to_str()
        .map(str::to_owned)
        .with_context(|| format!("{flag} {}: not UTF-8", path.display()))
}

/// Envoy's side of `tollgate serve --xds-tls-*`: present the client
/// certificate, trust only `ca` for the server's, and require the server's
/// certificate to name `server`. TLS 1.3, which both ends speak: Envoy's
/// upstream default would stop at 1.2.
fn xds_transport_socket(ca: &str, cert: &str, key: &str, server: &ServerName) -> Value {
    let (san_type, name) = match server {
        ServerName::Dns(name) => ("DNS", name.clone()),
        ServerName::Ip(ip) => ("IP_ADDRESS", ip.to_string()),
    };
    let mut context = json!({
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": {
            "tls_params": {
                "tls_minimum_protocol_version": "TLSv1_3",
                "tls_maximum_protocol_version": "TLSv1_3",
            },
            "alpn_protocols": ["h2"],
            "tls_certificates": [{
                "certificate_chain": {"filename": cert},
                "private_key": {"filename": key},
            }],
            "validation_context": {
                "trusted_ca": {"filename": ca},
                "match_typed_subject_alt_names": [{"san_type": san_type, "matcher": {"exact": name}}],
            },
        },
    });
    // SNI carries a host name only, never an address (RFC 6066).
    if let ServerName::Dns(name) = server {
        context["sni"] = json!(name);
    }
    json!({"name": "envoy.transport_sockets.tls", "typed_config": context})
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

    #[test]
    fn a_server_name_is_a_dns_name_or_an_ip_address() {
        assert_eq!(
            ServerName::parse("Tollgate.tollgate-system.svc."),
            Some(ServerName::Dns("tollgate.tollgate-system.svc".into()))
        );
        assert_eq!(
            ServerName::parse("::1"),
            Some(ServerName::Ip("::1".parse().unwrap()))
        );
        assert_eq!(
            ServerName::parse("127.0.0.1"),
            Some(ServerName::Ip("127.0.0.1".parse().unwrap()))
        );
        for bad in [
            "",
            "a..b",
            "-a.b",
            "a b",
            "a_b.svc",
            "host:1",
            &"a".repeat(64),
        ] {
            assert_eq!(ServerName::parse(bad), None, "{bad:?}");
        }
    }
}
