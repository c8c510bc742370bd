//! Builders for the Envoy configs tests run: one HTTP listener, a route table,
//! a chain of HTTP filters and static clusters. Output is JSON, which Envoy reads
//! as readily as YAML.

use std::net::SocketAddr;
use std::path::Path;

use serde_json::{json, Value};

/// Name of the single listener [`bootstrap`] creates.
pub const LISTENER: &str = "http";

/// One HTTP listener's worth of config: the downstream filter chain, the router's
/// upstream filter chain, routes and the clusters they use.
#[derive(Debug, Clone, Default)]
pub struct Listener {
    /// `http_filters` before the router (where users put filters).
    pub http_filters: Vec<Value>,
    /// The router's `upstream_http_filters` (run after the route is chosen, per upstream attempt).
    pub upstream_filters: Vec<Value>,
    pub routes: Vec<Value>,
    pub clusters: Vec<Value>,
    /// The virtual host's `typed_per_filter_config` (filter name → config), if any.
    pub host_per_filter_config: Option<Value>,
}

impl Listener {
    /// A bootstrap with the admin API and this listener, all on port 0 of 127.0.0.1.
    pub fn bootstrap(&self) -> Value {
        let mut filters = self.http_filters.clone();
        filters.push(router(&self.upstream_filters));
        let mut host = json!({"name": "all", "domains": ["*"], "routes": self.routes});
        if let Some(per_filter) = &self.host_per_filter_config {
            host["typed_per_filter_config"] = per_filter.clone();
        }
        json!({
            "admin": {"address": socket(0)},
            "static_resources": {
                "listeners": [{
                    "name": LISTENER,
                    "address": socket(0),
                    "filter_chains": [{"filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                            "stat_prefix": "ingress",
                            "route_config": {
                                "name": "local",
                                "virtual_hosts": [host]
                            },
                            "http_filters": filters
                        }
                    }]}]
                }],
                "clusters": self.clusters
            }
        })
    }
}

fn socket(port: u16) -> Value {
    json!({"socket_address": {"address": "127.0.0.1", "port_value": port}})
}

/// The router; a non-empty `upstream` chain is closed with the required upstream codec.
pub fn router(upstream: &[Value]) -> Value {
    let mut typed_config =
        json!({"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"});
    if !upstream.is_empty() {
        let mut chain = upstream.to_vec();
        chain.push(json!({
            "name": "envoy.filters.http.upstream_codec",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec"}
        }));
        typed_config["upstream_http_filters"] = Value::Array(chain);
    }
    json!({"name": "envoy.filters.http.router", "typed_config": typed_config})
}

/// One of our wasm filters with its JSON configuration. `FAIL_RELOAD` makes
/// Envoy reload a crashed VM instead of failing every later request.
pub fn wasm_filter(name: &str, wasm: &Path, config: &Value) -> Value {
    json!({
        "name": format!("tollgate.{name}"),
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": name,
                "root_id": name,
                "failure_policy": "FAIL_RELOAD",
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": config_string(config)
                },
                "vm_config": {
                    "vm_id": name,
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": wasm.display().to_string()}}
                }
            }
        }
    })
}

/// Which build of a Tollgate filter Envoy runs: the proxy-wasm module
/// (`dist/<filter>.wasm`) or the dynamic module (`dist/libtollgate.so`). The
/// filter suites run every scenario on both ([`crate::on_both_runtimes`]).
/// The default is the controller's (`tollgate serve --filter-runtime`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Runtime {
    Wasm,
    #[default]
    DynamicModule,
}

impl Runtime {
    /// The `http_filters` entry for Tollgate filter `name` with `config`.
    pub fn filter(self, name: &str, config: &Value) -> Value {
        match self {
            Runtime::Wasm => wasm_filter(name, &crate::paths::wasm(name), config),
            Runtime::DynamicModule => dynamic_module_filter(name, config),
        }
    }

    /// The Prometheus name of one of our counters (`tollgate_…`) in this
    /// runtime: Envoy exports wasm counters under their own name and a dynamic
    /// module's under `envoy_dynamicmodulescustom_`.
    pub fn metric(self, name: &str) -> String {
        match self {
            Runtime::Wasm => name.to_owned(),
            Runtime::DynamicModule => format!("envoy_dynamicmodulescustom_{name}"),
        }
    }

    /// What Envoy logs when it will not start because the filter refused its
    /// configuration (after the filter's own line naming the field).
    pub fn refusal(self) -> &'static str {
        match self {
            Runtime::Wasm => "Unable to create Wasm",
            Runtime::DynamicModule => "Failed to initialize dynamic module",
        }
    }
}

/// One of our filters from the dynamic module, `dist/libtollgate.so` (Envoy
/// finds it through `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`, which
/// [`crate::envoy::Envoy`] sets to `dist/`).
pub fn dynamic_module_filter(name: &str, config: &Value) -> Value {
    crate::paths::dynamic_module();
    json!({
        "name": format!("tollgate.{name}"),
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
            "dynamic_module_config": {"name": "tollgate"},
            "filter_name": name,
            "filter_config": {
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": config_string(config)
            }
        }
    })
}

/// A route's own policy for the dynamic module's filter `name`, for the
/// route's (or virtual host's) `typed_per_filter_config` under the filter's
/// name `tollgate.<name>`.
pub fn dynamic_module_per_route(name: &str, policy: &Value) -> Value {
    json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilterPerRoute",
        "dynamic_module_config": {"name": "tollgate"},
        "filter_name": name,
        "filter_config": {
            "@type": "type.googleapis.com/google.protobuf.StringValue",
            "value": config_string(policy)
        }
    })
}

/// A route action (`"route": …`) whose cluster the dynamic module's cluster
/// specifier `name` picks while Envoy resolves the route
/// (`DynamicModuleClusterSpecifier` inline on the route), configured with
/// `config` (a JSON value, or a string passed verbatim).
pub fn dynamic_module_cluster_specifier(name: &str, config: &Value) -> Value {
    crate::paths::dynamic_module();
    json!({"inline_cluster_specifier_plugin": {"extension": {
        "name": format!("tollgate.{name}"),
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.router.cluster_specifiers.dynamic_modules.v3.DynamicModuleClusterSpecifier",
            "dynamic_module_config": {"name": "tollgate"},
            "specifier_name": name,
            "specifier_config": {
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": config_string(config)
            }
        }
    }}})
}

/// A config given as a JSON value is serialised; a string is passed verbatim
/// (so tests can hand Envoy malformed JSON).
fn config_string(config: &Value) -> String {
    match config {
        Value::String(raw) => raw.clone(),
        other => other.to_string(),
    }
}

/// A static cluster with one endpoint.
pub fn cluster(name: &str, addr: SocketAddr) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                "address": addr.ip().to_string(), "port_value": addr.port()
            }}}}]}]
        }
    })
}

/// A named route on a path prefix to a cluster.
pub fn prefix_route(name: &str, prefix: &str, cluster: &str) -> Value {
    json!({"name": name, "match": {"prefix": prefix}, "route": {"cluster": cluster}})
}

/// A named route answering directly (no upstream), with `body`.
pub fn direct_route(name: &str, prefix: &str, body: &str) -> Value {
    json!({
        "name": name,
        "match": {"prefix": prefix},
        "direct_response": {"status": 200, "body": {"inline_string": body}}
    })
}

/// A static cluster with one endpoint speaking HTTP/2 (gRPC services).
pub fn grpc_cluster(name: &str, addr: SocketAddr) -> Value {
    let mut c = cluster(name, addr);
    c["typed_extension_protocol_options"] = json!({
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}}
        }
    });
    c
}

/// Envoy's native global rate limit filter (`envoy.filters.http.ratelimit`)
/// calling the RateLimitService on `cluster`, with draft-03 response headers.
/// `failure_mode_deny`: refuse requests (500) when the service answers an
/// error, instead of letting them through. The timeout is generous (Envoy's
/// default is 20 ms) so a busy test machine does not turn into the failure mode.
pub fn native_ratelimit_filter(domain: &str, cluster: &str, failure_mode_deny: bool) -> Value {
    json!({
        "name": "envoy.filters.http.ratelimit",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit",
            "domain": domain,
            "failure_mode_deny": failure_mode_deny,
            "timeout": "2s",
            "enable_x_ratelimit_headers": "DRAFT_VERSION_03",
            "rate_limit_service": {
                "grpc_service": {"envoy_grpc": {"cluster_name": cluster}},
                "transport_api_version": "V3"
            }
        }
    })
}

/// A route on a path prefix to a cluster whose requests carry one rate limit
/// descriptor: request header `header` as descriptor key `key` (no descriptor,
/// so no limit, when the header is absent).
pub fn header_ratelimited_route(
    name: &str,
    prefix: &str,
    cluster: &str,
    header: &str,
    key: &str,
) -> Value {
    json!({
        "name": name,
        "match": {"prefix": prefix},
        "route": {
            "cluster": cluster,
            "rate_limits": [{"actions": [{"request_headers": {"header_name": header, "descriptor_key": key}}]}]
        }
    })
}
