//! The Envoy protos the translator emits, as the JSON/YAML Envoy's docs use
//! (snake_case proto field names, defaults omitted, `Any` with `@type`).
//!
//! envoy-types ships neither serde/pbjson impls nor a file descriptor set, so
//! neither `pbjson` nor `prost-reflect` can print its messages without us
//! compiling Envoy's .proto files ourselves (protoc plus the vendored API
//! tree). Instead this module renders, from the protos themselves, exactly
//! the fields `translate` sets; a oneof variant or `Any` type it does not know
//! is an error, never silently left out, so the rendering cannot hide what
//! Envoy would get.
//!
//! Secrets are redacted unless asked for ([`Secrets::Reveal`]): a listener's
//! private key, and the secret members of a JWT filter's inline JWKS (an
//! HMAC key mints tokens; see [`super::redact`]). The rendering is for
//! reading and diffing, and a secret has no place in a review, a terminal
//! scrollback or the admin endpoint.
//!
//! The YAML is YAML 1.2 (serde_yaml_ng): a plain `yes` or `on` is a string
//! there but a boolean to Envoy's YAML 1.1 loader, so a file meant for Envoy
//! itself should be the JSON form (`-o json`). The xDS server will send the
//! protos, not this text.

use envoy_types::pb::envoy::config::cluster::v3::{
    cluster::{ClusterDiscoveryType, DiscoveryType},
    Cluster,
};
use envoy_types::pb::envoy::config::core::v3::{
    address, async_data_source, config_source::ConfigSourceSpecifier, data_source,
    socket_address::PortSpecifier, transport_socket, Address, ConfigSource, DataSource,
    Http2ProtocolOptions, RuntimeFractionalPercent, TransportSocket,
};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::listener::v3::{filter, listener_filter, Listener};
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier,
    query_parameter_matcher::QueryParameterMatchSpecifier,
    redirect_action::{PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier},
    route::Action,
    route_action::{ClusterNotFoundResponseCode, ClusterSpecifier, HostRewriteSpecifier},
    route_match::PathSpecifier,
    RedirectAction, Route, RouteAction, RouteConfiguration,
};
use envoy_types::pb::envoy::extensions::dynamic_modules::v3::DynamicModuleConfig;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::{Cors, CorsPolicy};
use envoy_types::pb::envoy::extensions::filters::http::dynamic_modules::v3::{
    DynamicModuleFilter, DynamicModuleFilterPerRoute,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::http::wasm::v3::Wasm;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{RouteSpecifier, StripPortMode},
    http_filter, HttpConnectionManager,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    common_tls_context::ValidationContextType, DownstreamTlsContext, UpstreamTlsContext,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    http_protocol_options::{
        explicit_http_config::ProtocolConfig, ExplicitHttpConfig, UpstreamProtocolOptions,
    },
    HttpProtocolOptions,
};
use envoy_types::pb::envoy::extensions::wasm::v3::{plugin_config, FailurePolicy};
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher::MatchPattern, StringMatcher};
use envoy_types::pb::envoy::r#type::v3::fractional_percent::DenominatorType;
use envoy_types::pb::google::protobuf::{Any, Duration, StringValue};
use prost::{Message, Name};

use super::redact::REDACTED;
use serde_json::{json, Map, Value};

#[derive(Debug, thiserror::Error)]
#[error("rendering {what}: not produced by the translator, so not renderable")]
pub struct RenderError {
    what: String,
}

type Result<T> = std::result::Result<T, RenderError>;

/// `{"name": name, key: value}`, moving `value` in (`json!` would copy it).
fn named(name: &str, key: &str, value: Value) -> Value {
    Value::Object(Map::from_iter([
        ("name".to_owned(), Value::from(name)),
        (key.to_owned(), value),
    ]))
}

fn unknown<T>(what: impl Into<String>) -> Result<T> {
    Err(RenderError { what: what.into() })
}

/// Whether secrets (private keys, JWKS key material) are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    Redact,
    Reveal,
}

pub fn listener(l: &Listener, secrets: Secrets) -> Result<Value> {
    let chains = l
        .filter_chains
        .iter()
        .map(|chain| {
            let filters = chain
                .filters
                .iter()
                .map(|f| match &f.config_type {
                    Some(filter::ConfigType::TypedConfig(any)) => {
                        Ok(named(&f.name, "typed_config", typed(any, secrets)?))
                    }
                    _ => unknown(format!("filter {} config", f.name)),
                })
                .collect::<Result<Vec<_>>>()?;
            let mut out = json!({});
            out["filters"] = Value::Array(filters);
            if !chain.name.is_empty() {
                out["name"] = json!(chain.name);
            }
            if let Some(m) = &chain.filter_chain_match {
                out["filter_chain_match"] = json!({"server_names": m.server_names});
            }
            if let Some(socket) = &chain.transport_socket {
                out["transport_socket"] = transport_socket(socket, secrets)?;
            }
            Ok(out)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut out = json!({"name": l.name});
    out["address"] = address(l.address.as_ref())?;
    out["filter_chains"] = Value::Array(chains);
    if !l.listener_filters.is_empty() {
        let filters = l
            .listener_filters
            .iter()
            .map(|f| match &f.config_type {
                Some(listener_filter::ConfigType::TypedConfig(any))
                    if any.type_url == TlsInspector::type_url() && any.value.is_empty() =>
                {
                    Ok(json!({"name": f.name, "typed_config": {"@type": any.type_url}}))
                }
                _ => unknown(format!("listener filter {}", f.name)),
            })
            .collect::<Result<Vec<_>>>()?;
        out["listener_filters"] = Value::Array(filters);
    }
    Ok(out)
}

fn transport_socket(socket: &TransportSocket, secrets: Secrets) -> Result<Value> {
    let Some(transport_socket::ConfigType::TypedConfig(any)) = &socket.config_type else {
        return unknown(format!("transport socket {} config", socket.name));
    };
    if any.type_url != DownstreamTlsContext::type_url() {
        return unknown(any.type_url.clone());
    }
    let context = decode::<DownstreamTlsContext>(any)?;
    let Some(common) = &context.common_tls_context else {
        return unknown("downstream TLS context without common_tls_context");
    };
    let certificates = common
        .tls_certificates
        .iter()
        .map(|c| {
            let key = match (secrets, inline_string(c.private_key.as_ref())?) {
                (Secrets::Reveal, key) => key,
                (Secrets::Redact, _) => REDACTED.to_owned(),
            };
            Ok(json!({
                "certificate_chain": {"inline_string": inline_string(c.certificate_chain.as_ref())?},
                "private_key": {"inline_string": key},
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(json!({
        "name": socket.name,
        "typed_config": {
            "@type": any.type_url,
            "common_tls_context": {
                "tls_certificates": certificates,
                "alpn_protocols": common.alpn_protocols,
            },
        },
    }))
}

/// Upstream TLS as `service_clusters` sets it: SNI and a CA file.
fn upstream_tls(socket: &TransportSocket) -> Result<Value> {
    let Some(transport_socket::ConfigType::TypedConfig(any)) = &socket.config_type else {
        return unknown(format!("transport socket {} config", socket.name));
    };
    if any.type_url != UpstreamTlsContext::type_url() {
        return unknown(any.type_url.clone());
    }
    let context = decode::<UpstreamTlsContext>(any)?;
    let ca = match context
        .common_tls_context
        .as_ref()
        .and_then(|c| c.validation_context_type.as_ref())
    {
        Some(ValidationContextType::ValidationContext(v)) => {
            match v.trusted_ca.as_ref().and_then(|ca| ca.specifier.as_ref()) {
                Some(data_source::Specifier::Filename(f)) => f.clone(),
                _ => return unknown("upstream TLS trusted_ca"),
            }
        }
        _ => return unknown("upstream TLS validation context"),
    };
    Ok(json!({
        "name": socket.name,
        "typed_config": {
            "@type": any.type_url,
            "sni": context.sni,
            "common_tls_context": {"validation_context": {"trusted_ca": {"filename": ca}}},
        },
    }))
}

fn inline_string(source: Option<&DataSource>) -> Result<String> {
    match source.and_then(|s| s.specifier.as_ref()) {
        Some(data_source::Specifier::InlineString(text)) => Ok(text.clone()),
        _ => unknown("data source"),
    }
}

fn decode<M: Message + Name + Default>(any: &Any) -> Result<M> {
    M::decode(any.value.as_slice()).map_err(|e| RenderError {
        what: format!("{}: {e}", any.type_url),
    })
}

fn typed(any: &Any, secrets: Secrets) -> Result<Value> {
    if any.type_url == HttpConnectionManager::type_url() {
        return http_connection_manager(&decode(any)?, secrets);
    }
    let empty = [Router::type_url(), Cors::type_url()];
    if empty.contains(&any.type_url) && any.value.is_empty() {
        return Ok(json!({"@type": any.type_url}));
    }
    if any.type_url == Wasm::type_url() {
        return wasm(&decode(any)?, secrets);
    }
    if any.type_url == DynamicModuleFilter::type_url() {
        let f: DynamicModuleFilter = decode(any)?;
        return dynamic_module(
            any,
            f.dynamic_module_config.as_ref(),
            &f.filter_name,
            f.filter_config.as_ref(),
            secrets,
        );
    }
    unknown(any.type_url.clone())
}

/// A `DynamicModuleFilter` or `DynamicModuleFilterPerRoute` (the same fields).
fn dynamic_module(
    any: &Any,
    module: Option<&DynamicModuleConfig>,
    filter_name: &str,
    config: Option<&Any>,
    secrets: Secrets,
) -> Result<Value> {
    let Some(module) = module else {
        return unknown(format!(
            "dynamic module filter {filter_name} without module"
        ));
    };
    let configuration = filter_json(config, secrets, filter_name)?;
    Ok(json!({
        "@type": any.type_url,
        "dynamic_module_config": {"name": module.name},
        "filter_name": filter_name,
        "filter_config": configuration,
    }))
}

/// A filter's JSON configuration (a `StringValue`), redacted unless asked.
fn filter_json(config: Option<&Any>, secrets: Secrets, filter: &str) -> Result<Value> {
    match config {
        Some(any) if any.type_url == StringValue::type_url() => {
            let value = decode::<StringValue>(any)?.value;
            let value = match secrets {
                Secrets::Reveal => value,
                Secrets::Redact => super::redact::filter_config(&value),
            };
            Ok(json!({"@type": any.type_url, "value": value}))
        }
        _ => unknown(format!("filter {filter} configuration")),
    }
}

fn wasm(w: &Wasm, secrets: Secrets) -> Result<Value> {
    let Some(config) = &w.config else {
        return unknown("wasm filter without config");
    };
    let Some(plugin_config::Vm::VmConfig(vm)) = &config.vm else {
        return unknown(format!("wasm plugin {} vm", config.name));
    };
    let Some(async_data_source::Specifier::Local(local)) =
        vm.code.as_ref().and_then(|c| c.specifier.as_ref())
    else {
        return unknown(format!("wasm plugin {} code", config.name));
    };
    let Some(data_source::Specifier::Filename(filename)) = &local.specifier else {
        return unknown(format!("wasm plugin {} code source", config.name));
    };
    let configuration = filter_json(config.configuration.as_ref(), secrets, &config.name)?;
    let Ok(failure_policy @ FailurePolicy::FailReload) =
        FailurePolicy::try_from(config.failure_policy)
    else {
        return unknown(format!("wasm plugin {} failure_policy", config.name));
    };
    Ok(json!({
        "@type": Wasm::type_url(),
        "config": {
            "name": config.name,
            "root_id": config.root_id,
            "failure_policy": failure_policy.as_str_name(),
            "vm_config": {
                "vm_id": vm.vm_id,
                "runtime": vm.runtime,
                "code": {"local": {"filename": filename}},
            },
            "configuration": configuration,
        }
    }))
}

fn http_connection_manager(hcm: &HttpConnectionManager, secrets: Secrets) -> Result<Value> {
    let Some(RouteSpecifier::Rds(rds)) = &hcm.route_specifier else {
        return unknown("http_connection_manager route_specifier");
    };
    let filters = hcm
        .http_filters
        .iter()
        .map(|f| match &f.config_type {
            Some(http_filter::ConfigType::TypedConfig(any)) => {
                Ok(named(&f.name, "typed_config", typed(any, secrets)?))
            }
            _ => unknown(format!("http filter {} config", f.name)),
        })
        .collect::<Result<Vec<_>>>()?;
    let mut out = json!({
        "@type": HttpConnectionManager::type_url(),
        "stat_prefix": hcm.stat_prefix,
        "rds": {
            "config_source": config_source(rds.config_source.as_ref())?,
            "route_config_name": rds.route_config_name,
        },
    });
    out["http_filters"] = Value::Array(filters);
    match hcm.strip_port_mode {
        Some(StripPortMode::StripAnyHostPort(strip)) => out["strip_any_host_port"] = json!(strip),
        None => {}
    }
    Ok(out)
}

fn config_source(source: Option<&ConfigSource>) -> Result<Value> {
    match source.and_then(|s| s.config_source_specifier.as_ref()) {
        Some(ConfigSourceSpecifier::Ads(_)) => Ok(json!({"ads": {}, "resource_api_version": "V3"})),
        _ => unknown("config_source"),
    }
}

fn address(a: Option<&Address>) -> Result<Value> {
    match a.and_then(|a| a.address.as_ref()) {
        Some(address::Address::SocketAddress(s)) => match s.port_specifier {
            Some(PortSpecifier::PortValue(port)) => Ok(json!({
                "socket_address": {"address": s.address, "port_value": port}
            })),
            _ => unknown("socket_address port"),
        },
        _ => unknown("address"),
    }
}

pub fn route_configuration(rc: &RouteConfiguration, secrets: Secrets) -> Result<Value> {
    let vhosts = rc
        .virtual_hosts
        .iter()
        .map(|vh| {
            let routes = vh
                .routes
                .iter()
                .map(|r| route(r, secrets))
                .collect::<Result<Vec<_>>>()?;
            let mut host = json!({"name": vh.name, "domains": vh.domains});
            host["routes"] = Value::Array(routes);
            Ok(host)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut out = json!({"name": rc.name});
    out["virtual_hosts"] = Value::Array(vhosts);
    if let Some(validate) = &rc.validate_clusters {
        out["validate_clusters"] = json!(validate.value);
    }
    Ok(out)
}

fn route(r: &Route, secrets: Secrets) -> Result<Value> {
    let mut m = Map::new();
    let Some(rm) = &r.r#match else {
        return unknown(format!("route {} without match", r.name));
    };
    let (key, value) = match &rm.path_specifier {
        Some(PathSpecifier::Prefix(p)) => ("prefix", json!(p)),
        Some(PathSpecifier::Path(p)) => ("path", json!(p)),
        Some(PathSpecifier::PathSeparatedPrefix(p)) => ("path_separated_prefix", json!(p)),
        Some(PathSpecifier::SafeRegex(re)) => ("safe_regex", json!({"regex": re.regex})),
        _ => return unknown(format!("route {} path", r.name)),
    };
    m.insert(key.to_owned(), value);
    if !rm.headers.is_empty() {
        let headers = rm
            .headers
            .iter()
            .map(|h| match &h.header_match_specifier {
                Some(HeaderMatchSpecifier::StringMatch(s)) => {
                    Ok(named(&h.name, "string_match", string_match(s)?))
                }
                _ => unknown(format!("header match {}", h.name)),
            })
            .collect::<Result<Vec<_>>>()?;
        m.insert("headers".to_owned(), Value::Array(headers));
    }
    if !rm.query_parameters.is_empty() {
        let params = rm
            .query_parameters
            .iter()
            .map(|q| match &q.query_parameter_match_specifier {
                Some(QueryParameterMatchSpecifier::StringMatch(s)) => {
                    Ok(named(&q.name, "string_match", string_match(s)?))
                }
                _ => unknown(format!("query parameter match {}", q.name)),
            })
            .collect::<Result<Vec<_>>>()?;
        m.insert("query_parameters".to_owned(), Value::Array(params));
    }
    let mut out = named(&r.name, "match", Value::Object(m));
    match &r.action {
        Some(Action::DirectResponse(d)) => out["direct_response"] = json!({"status": d.status}),
        Some(Action::Route(ra)) => out["route"] = route_action(&r.name, ra)?,
        Some(Action::Redirect(ra)) => out["redirect"] = redirect_action(&r.name, ra)?,
        _ => return unknown(format!("route {} action", r.name)),
    }
    if !r.typed_per_filter_config.is_empty() {
        let mut per_filter = Map::new();
        for (filter, any) in &r.typed_per_filter_config {
            if any.type_url == CorsPolicy::type_url() {
                per_filter.insert(filter.clone(), cors_policy(&r.name, any)?);
                continue;
            }
            if any.type_url != DynamicModuleFilterPerRoute::type_url() {
                return unknown(format!(
                    "route {} per-filter config {}",
                    r.name, any.type_url
                ));
            }
            let f: DynamicModuleFilterPerRoute = decode(any)?;
            let config = dynamic_module(
                any,
                f.dynamic_module_config.as_ref(),
                &f.filter_name,
                f.filter_config.as_ref(),
                secrets,
            )?;
            per_filter.insert(filter.clone(), config);
        }
        out["typed_per_filter_config"] = Value::Object(per_filter);
    }
    Ok(out)
}

/// Envoy's CORS filter's per-route policy (`translate::cors`).
fn cors_policy(route: &str, any: &Any) -> Result<Value> {
    let p: CorsPolicy = decode(any)?;
    if p.filter_enabled.is_some()
        || p.shadow_enabled.is_some()
        || p.allow_private_network_access.is_some()
    {
        return unknown(format!("route {route} CORS policy"));
    }
    let mut out = json!({"@type": any.type_url});
    let origins = p
        .allow_origin_string_match
        .iter()
        .map(string_match)
        .collect::<Result<Vec<_>>>()?;
    if !origins.is_empty() {
        out["allow_origin_string_match"] = origins.into();
    }
    for (field, value) in [
        ("allow_methods", &p.allow_methods),
        ("allow_headers", &p.allow_headers),
        ("expose_headers", &p.expose_headers),
        ("max_age", &p.max_age),
    ] {
        if !value.is_empty() {
            out[field] = value.as_str().into();
        }
    }
    for (field, value) in [
        ("allow_credentials", p.allow_credentials),
        (
            "forward_not_matching_preflights",
            p.forward_not_matching_preflights,
        ),
    ] {
        if let Some(b) = value {
            out[field] = b.value.into();
        }
    }
    Ok(out)
}

fn route_action(name: &str, ra: &RouteAction) -> Result<Value> {
    let mut action = match &ra.cluster_specifier {
        Some(ClusterSpecifier::Cluster(c)) => json!({"cluster": c}),
        Some(ClusterSpecifier::ClusterHeader(h)) => json!({"cluster_header": h}),
        _ => return unknown(format!("route {name} cluster")),
    };
    if ra.cluster_not_found_response_code == ClusterNotFoundResponseCode::InternalServerError as i32
    {
        action["cluster_not_found_response_code"] = json!("INTERNAL_SERVER_ERROR");
    }
    if !ra.prefix_rewrite.is_empty() {
        action["prefix_rewrite"] = json!(ra.prefix_rewrite);
    }
    if let Some(re) = &ra.regex_rewrite {
        action["regex_rewrite"] = regex_rewrite(re)?;
    }
    match &ra.host_rewrite_specifier {
        None => {}
        Some(HostRewriteSpecifier::HostRewriteLiteral(h)) => {
            action["host_rewrite_literal"] = json!(h);
        }
        Some(_) => return unknown(format!("route {name} host rewrite")),
    }
    if let Some(timeout) = &ra.timeout {
        action["timeout"] = json!(duration(timeout));
    }
    if let Some(retry) = &ra.retry_policy {
        let Some(per_try) = &retry.per_try_timeout else {
            return unknown(format!("route {name} retry policy"));
        };
        action["retry_policy"] = json!({"per_try_timeout": duration(per_try)});
    }
    if !ra.request_mirror_policies.is_empty() {
        let mirrors = ra
            .request_mirror_policies
            .iter()
            .map(|m| {
                let mut mirror = json!({"cluster": m.cluster});
                if let Some(fraction) = &m.runtime_fraction {
                    mirror["runtime_fraction"] = runtime_fraction(name, fraction)?;
                }
                Ok(mirror)
            })
            .collect::<Result<Vec<_>>>()?;
        action["request_mirror_policies"] = Value::Array(mirrors);
    }
    Ok(action)
}

fn redirect_action(name: &str, ra: &RedirectAction) -> Result<Value> {
    let mut action = Map::new();
    match &ra.scheme_rewrite_specifier {
        None => {}
        Some(SchemeRewriteSpecifier::SchemeRedirect(s)) => {
            action.insert("scheme_redirect".to_owned(), json!(s));
        }
        Some(_) => return unknown(format!("route {name} redirect scheme")),
    }
    if !ra.host_redirect.is_empty() {
        action.insert("host_redirect".to_owned(), json!(ra.host_redirect));
    }
    if ra.port_redirect != 0 {
        action.insert("port_redirect".to_owned(), json!(ra.port_redirect));
    }
    match &ra.path_rewrite_specifier {
        None => {}
        Some(PathRewriteSpecifier::PathRedirect(p)) => {
            action.insert("path_redirect".to_owned(), json!(p));
        }
        Some(PathRewriteSpecifier::PrefixRewrite(p)) => {
            action.insert("prefix_rewrite".to_owned(), json!(p));
        }
        Some(PathRewriteSpecifier::RegexRewrite(re)) => {
            action.insert("regex_rewrite".to_owned(), regex_rewrite(re)?);
        }
        Some(PathRewriteSpecifier::PathRewrite(_)) => {
            return unknown(format!("route {name} redirect path_rewrite"));
        }
    }
    let Ok(code) = RedirectResponseCode::try_from(ra.response_code) else {
        return unknown(format!("route {name} redirect response code"));
    };
    action.insert("response_code".to_owned(), json!(code.as_str_name()));
    Ok(Value::Object(action))
}

fn regex_rewrite(re: &RegexMatchAndSubstitute) -> Result<Value> {
    let Some(pattern) = &re.pattern else {
        return unknown("regex_rewrite without pattern");
    };
    Ok(json!({"pattern": {"regex": pattern.regex}, "substitution": re.substitution}))
}

fn runtime_fraction(name: &str, f: &RuntimeFractionalPercent) -> Result<Value> {
    let Some(value) = &f.default_value else {
        return unknown(format!("route {name} mirror fraction"));
    };
    let Ok(denominator) = DenominatorType::try_from(value.denominator) else {
        return unknown(format!("route {name} mirror fraction denominator"));
    };
    Ok(json!({"default_value": {
        "numerator": value.numerator,
        "denominator": denominator.as_str_name(),
    }}))
}

/// Protobuf's JSON form of a duration: seconds, with milliseconds when any.
fn duration(d: &Duration) -> String {
    let millis = d.nanos / 1_000_000;
    if millis == 0 {
        format!("{}s", d.seconds)
    } else {
        format!("{}.{millis:03}s", d.seconds)
    }
}

fn string_match(s: &StringMatcher) -> Result<Value> {
    match &s.match_pattern {
        Some(MatchPattern::Exact(v)) => Ok(json!({"exact": v})),
        Some(MatchPattern::SafeRegex(re)) => Ok(json!({"safe_regex": {"regex": re.regex}})),
        _ => unknown("string match"),
    }
}

pub fn cluster(c: &Cluster) -> Result<Value> {
    let kind = match c.cluster_discovery_type {
        Some(ClusterDiscoveryType::Type(t)) if t == DiscoveryType::Static as i32 => "STATIC",
        Some(ClusterDiscoveryType::Type(t)) if t == DiscoveryType::StrictDns as i32 => "STRICT_DNS",
        _ => return unknown(format!("cluster {} type", c.name)),
    };
    let Some(la) = &c.load_assignment else {
        return unknown(format!("cluster {} without load_assignment", c.name));
    };
    let localities = la
        .endpoints
        .iter()
        .map(|locality| {
            let endpoints = locality
                .lb_endpoints
                .iter()
                .map(|e| match &e.host_identifier {
                    Some(HostIdentifier::Endpoint(ep)) => {
                        let mut endpoint = json!({"endpoint": {}});
                        endpoint["endpoint"]["address"] = address(ep.address.as_ref())?;
                        Ok(endpoint)
                    }
                    _ => unknown(format!("cluster {} endpoint", c.name)),
                })
                .collect::<Result<Vec<_>>>()?;
            let mut locality = json!({});
            locality["lb_endpoints"] = Value::Array(endpoints);
            Ok(locality)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut out = json!({
        "name": c.name,
        "type": kind,
        "load_assignment": {"cluster_name": la.cluster_name},
    });
    out["load_assignment"]["endpoints"] = Value::Array(localities);
    if let Some(socket) = &c.transport_socket {
        out["transport_socket"] = upstream_tls(socket)?;
    }
    if !c.typed_extension_protocol_options.is_empty() {
        let options = c
            .typed_extension_protocol_options
            .iter()
            .map(|(name, any)| Ok((name.clone(), protocol_options(any)?)))
            .collect::<Result<Map<_, _>>>()?;
        out["typed_extension_protocol_options"] = Value::Object(options);
    }
    Ok(out)
}

/// Upstream HTTP protocol options: only the explicit HTTP/2 the translator sets.
fn protocol_options(any: &Any) -> Result<Value> {
    if any.type_url != HttpProtocolOptions::type_url() {
        return unknown(any.type_url.clone());
    }
    let options = decode::<HttpProtocolOptions>(any)?;
    match options.upstream_protocol_options {
        Some(UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig {
            protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(h2)),
        })) if h2 == Http2ProtocolOptions::default() => Ok(json!({
            "@type": any.type_url,
            "explicit_http_config": {"http2_protocol_options": {}},
        })),
        _ => unknown("upstream HTTP protocol options"),
    }
}

/// Which part of a translation to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    All,
    Listener,
    Route,
    Cluster,
    Status,
}

/// One document holding the requested part(s): `listeners`, `routes`,
/// `clusters`, `status`.
pub fn document(t: &super::Translation, part: Part, secrets: Secrets) -> Result<Value> {
    let mut out = Map::new();
    if matches!(part, Part::All | Part::Listener) {
        let v = t
            .listeners
            .iter()
            .map(|l| listener(l, secrets))
            .collect::<Result<Vec<_>>>()?;
        out.insert("listeners".to_owned(), Value::Array(v));
    }
    if matches!(part, Part::All | Part::Route) {
        let v = t
            .route_configurations
            .iter()
            .map(|rc| route_configuration(rc, secrets))
            .collect::<Result<Vec<_>>>()?;
        out.insert("routes".to_owned(), Value::Array(v));
    }
    if matches!(part, Part::All | Part::Cluster) {
        let v = t.clusters.iter().map(cluster).collect::<Result<Vec<_>>>()?;
        out.insert("clusters".to_owned(), Value::Array(v));
    }
    if matches!(part, Part::All | Part::Status) {
        let v = serde_json::to_value(&t.status).map_err(|e| RenderError {
            what: format!("status: {e}"),
        })?;
        out.insert("status".to_owned(), v);
    }
    Ok(Value::Object(out))
}
