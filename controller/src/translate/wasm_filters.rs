//! Tollgate's wasm filters in a listener's HTTP filter chain.
//!
//! Envoy's wasm filter has no per-route config, so each listener gets one
//! instance of each filter its routes need, configured with the per-route
//! envelope `{"routes": {"<Envoy route name>": <policy>}}` (docs/design.md); a
//! route without an entry passes the filter untouched. Whatever asks for a
//! filter (an HTTPRoute filter, a weighted rule, later a Tollgate policy) only
//! adds `route name → policy` entries with [`RoutePolicies::insert`]; the
//! chain is assembled per listener from the entries of the routes it serves.
//!
//! A policy is the filter's own config type from `tollgate-core`, serialised
//! once, and checked on insert with the compiler the filter runs in
//! `on_configure`, so the translator never emits a config the filter refuses.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{
    async_data_source, data_source, AsyncDataSource, DataSource,
};
use envoy_types::pb::envoy::extensions::filters::http::wasm::v3::Wasm;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpFilter,
};
use envoy_types::pb::envoy::extensions::wasm::v3::{
    plugin_config, FailurePolicy, PluginConfig, VmConfig,
};
use envoy_types::pb::google::protobuf::StringValue;
use serde::Serialize;
use serde_json::Value;
use tollgate_core::canary::config::CanaryConfig;
use tollgate_core::canary::policy::CanaryPolicy;
use tollgate_core::headers::{HeaderModConfig, HeaderPolicy};
use tollgate_core::jwt::config::JwtConfig;
use tollgate_core::jwt::policy::JwtPolicy;
use tollgate_core::ratelimit::config::RateLimitConfig;
use tollgate_core::ratelimit::policy::RateLimitPolicy;
use tollgate_core::route_policy;
use tollgate_core::ConfigError;

use super::envoy::any;

/// A filter config type the controller emits.
pub trait FilterPolicy: Serialize {
    /// The filter's place in the chain: JWT (0) → rate limit (1) → header
    /// modification (2) → canary (3) → router (docs/design.md).
    const ORDER: u8;
    /// The module: `<wasm dir>/<MODULE>.wasm`, also the plugin name, root and VM id.
    const MODULE: &'static str;
    /// Compiles a serialised policy exactly as the filter does at `on_configure`.
    fn check(policy: Value) -> Result<(), ConfigError>;
}

impl FilterPolicy for JwtConfig {
    const ORDER: u8 = 0;
    const MODULE: &'static str = "jwt_auth";
    fn check(policy: Value) -> Result<(), ConfigError> {
        route_policy::RoutePolicies::parse(policy, JwtPolicy::compile).map(drop)
    }
}

impl FilterPolicy for RateLimitConfig {
    const ORDER: u8 = 1;
    const MODULE: &'static str = "ratelimit";
    fn check(policy: Value) -> Result<(), ConfigError> {
        route_policy::RoutePolicies::parse(policy, RateLimitPolicy::compile).map(drop)
    }
}

impl FilterPolicy for HeaderModConfig {
    const ORDER: u8 = 2;
    const MODULE: &'static str = "header_mod";
    fn check(policy: Value) -> Result<(), ConfigError> {
        route_policy::RoutePolicies::parse(policy, HeaderPolicy::compile).map(drop)
    }
}

impl FilterPolicy for CanaryConfig {
    const ORDER: u8 = 3;
    const MODULE: &'static str = "canary";
    fn check(policy: Value) -> Result<(), ConfigError> {
        route_policy::RoutePolicies::parse(policy, CanaryPolicy::compile).map(drop)
    }
}

/// `policy` serialised, once the filter's own compiler accepts it.
pub fn checked<P: FilterPolicy>(policy: &P) -> Result<Value, ConfigError> {
    let value = serde_json::to_value(policy)
        .map_err(|e| ConfigError::new("", format!("serialising the policy: {e}")))?;
    P::check(value.clone())?;
    Ok(value)
}

/// Per-route policies of every filter kind, keyed by `(order, module)` so
/// iteration is chain order. A policy object applied to many routes is shared
/// by them, not copied per route.
#[derive(Debug, Default)]
pub struct RoutePolicies {
    by_filter: BTreeMap<(u8, &'static str), BTreeMap<String, Arc<Value>>>,
}

/// The filter's configuration: the per-route envelope, serialised from
/// borrowed entries.
#[derive(Serialize)]
struct Envelope<'a> {
    routes: BTreeMap<&'a str, &'a Value>,
}

impl RoutePolicies {
    /// Gives `route` the policy `policy` in filter `P`, after checking that
    /// the filter accepts it; the error names the field within the policy.
    pub fn insert<P: FilterPolicy>(&mut self, route: &str, policy: &P) -> Result<(), ConfigError> {
        let value = Arc::new(checked(policy)?);
        self.insert_checked::<P>(route, &value);
        Ok(())
    }

    /// Gives `route` a policy of filter `P` already serialised and checked
    /// (a policy object applied to many routes is checked once).
    pub fn insert_checked<P: FilterPolicy>(&mut self, route: &str, checked: &Arc<Value>) {
        self.by_filter
            .entry((P::ORDER, P::MODULE))
            .or_default()
            .insert(route.to_owned(), Arc::clone(checked));
    }

    /// Whether `route` already has a policy in filter `P`.
    pub fn has<P: FilterPolicy>(&self, route: &str) -> bool {
        self.by_filter
            .get(&(P::ORDER, P::MODULE))
            .is_some_and(|policies| policies.contains_key(route))
    }

    /// The Tollgate filters a listener serving `routes` needs, in chain order
    /// (the router goes after them).
    pub fn http_filters(&self, routes: &HashSet<&str>, wasm_dir: &Path) -> Vec<HttpFilter> {
        self.by_filter
            .iter()
            .filter_map(|((_, module), policies)| {
                let routes: BTreeMap<&str, &Value> = policies
                    .iter()
                    .filter(|(route, _)| routes.contains(route.as_str()))
                    .map(|(route, policy)| (route.as_str(), policy.as_ref()))
                    .collect();
                (!routes.is_empty()).then(|| {
                    // String keys and JSON values: serialising cannot fail.
                    let config = serde_json::to_string(&Envelope { routes }).unwrap_or_default();
                    wasm_filter(module, wasm_dir, config)
                })
            })
            .collect()
    }
}

/// The filter as docs/filters/README.md and envoy-configs/ ship it: V8, the module from
/// `wasm_dir`, and `FAIL_RELOAD` so a crashed VM is reloaded instead of every
/// later request failing.
fn wasm_filter(module: &str, wasm_dir: &Path, config: String) -> HttpFilter {
    let wasm = Wasm {
        config: Some(PluginConfig {
            name: module.to_owned(),
            root_id: module.to_owned(),
            configuration: Some(any(&StringValue { value: config })),
            failure_policy: FailurePolicy::FailReload as i32,
            vm: Some(plugin_config::Vm::VmConfig(VmConfig {
                vm_id: module.to_owned(),
                runtime: "envoy.wasm.runtime.v8".to_owned(),
                code: Some(AsyncDataSource {
                    specifier: Some(async_data_source::Specifier::Local(DataSource {
                        specifier: Some(data_source::Specifier::Filename(
                            wasm_dir
                                .join(format!("{module}.wasm"))
                                .display()
                                .to_string(),
                        )),
                        ..DataSource::default()
                    })),
                }),
                ..VmConfig::default()
            })),
            ..PluginConfig::default()
        }),
    };
    HttpFilter {
        name: format!("tollgate.{module}"),
        config_type: Some(http_filter::ConfigType::TypedConfig(any(&wasm))),
        ..HttpFilter::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use serde_json::json;
    use tollgate_core::headers::config::{HeaderValueConfig, ModsConfig};

    fn header_policy(name: &str) -> HeaderModConfig {
        HeaderModConfig {
            request: Some(ModsConfig {
                set: vec![HeaderValueConfig {
                    name: name.to_owned(),
                    value: "v".to_owned(),
                }],
                ..ModsConfig::default()
            }),
            response: None,
        }
    }

    fn canary_policy() -> CanaryConfig {
        serde_json::from_value(json!({"backends": [{"name": "a"}, {"name": "b"}]})).unwrap()
    }

    fn configuration(filter: &HttpFilter) -> Value {
        let Some(http_filter::ConfigType::TypedConfig(any)) = &filter.config_type else {
            panic!("no typed config");
        };
        let wasm = Wasm::decode(any.value.as_slice()).unwrap();
        let config = wasm.config.unwrap();
        assert_eq!(config.failure_policy, FailurePolicy::FailReload as i32);
        let value = StringValue::decode(config.configuration.unwrap().value.as_slice()).unwrap();
        serde_json::from_str(&value.value).unwrap()
    }

    #[test]
    fn a_policy_the_filter_refuses_is_not_inserted() {
        let mut policies = RoutePolicies::default();
        let e = policies
            .insert("r", &header_policy("bad name"))
            .unwrap_err();
        assert_eq!(e.field, "request.set[0].name");
        assert!(policies
            .http_filters(&HashSet::from(["r"]), Path::new("/d"))
            .is_empty());
    }

    #[test]
    fn filters_come_in_chain_order_with_only_the_listeners_routes() {
        let mut policies = RoutePolicies::default();
        policies.insert("a", &canary_policy()).unwrap();
        policies.insert("a", &header_policy("x")).unwrap();
        policies.insert("b", &header_policy("y")).unwrap();
        let filters = policies.http_filters(&HashSet::from(["a", "c"]), Path::new("/d"));
        let names: Vec<_> = filters.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["tollgate.header_mod", "tollgate.canary"]);
        let headers = configuration(&filters[0]);
        assert_eq!(
            headers,
            json!({"routes": {"a": {"request": {"set": [{"name": "x", "value": "v"}]}}}})
        );
        // The envelope is what the filter itself accepts.
        route_policy::RoutePolicies::parse(headers, HeaderPolicy::compile).unwrap();
        route_policy::RoutePolicies::parse(configuration(&filters[1]), CanaryPolicy::compile)
            .unwrap();
        assert!(policies
            .http_filters(&HashSet::from(["c"]), Path::new("/d"))
            .is_empty());
    }
}
