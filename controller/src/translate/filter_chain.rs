//! Tollgate's filters in a listener's HTTP filter chain, and each route's
//! policy of them.
//!
//! Each listener gets one instance of each filter its routes need; a route
//! without a policy passes the filter untouched. The table is filled in one
//! place, `policy_filters::Catalog::apply`, with the policy that wins for each
//! route and filter (a rule's own [`RulePolicies`] or a Tollgate policy, by
//! the precedence of `policy_attachment`); the chain is assembled per
//! listener from the entries of the routes it serves, and the routes get
//! their policies, in the form the [`FilterRuntime`] takes, and the action
//! their policies decide ([`RouteVerdict`]).
//!
//! A policy is the filter's own config type from `tollgate-core`, serialised
//! once, and checked on insert with the compiler the filter runs in
//! `on_configure`, so the translator never emits a config the filter refuses.
//!
//! Envoy's own CORS filter (an HTTPRoute `CORS` filter, see `cors`) is kept
//! the same way, per route, and goes first in the chain.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::Route;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;
use serde::Serialize;
use serde_json::Value;
use tollgate_core::canary::config::CanaryConfig;
use tollgate_core::catalogue::FilterKind;
use tollgate_core::headers::HeaderModConfig;
use tollgate_core::jwt::config::JwtConfig;
use tollgate_core::ratelimit::config::RateLimitConfig;
use tollgate_core::ConfigError;

use super::cors;
use super::filter_runtime::FilterRuntime;

/// A filter config type the controller emits, and the filter it configures
/// (its name, chain position and checker are in the catalogue).
pub trait FilterPolicy: Serialize {
    const KIND: FilterKind;
}

impl FilterPolicy for JwtConfig {
    const KIND: FilterKind = FilterKind::Jwt;
}

impl FilterPolicy for RateLimitConfig {
    const KIND: FilterKind = FilterKind::RateLimit;
}

impl FilterPolicy for HeaderModConfig {
    const KIND: FilterKind = FilterKind::Headers;
}

impl FilterPolicy for CanaryConfig {
    const KIND: FilterKind = FilterKind::Canary;
}

/// `policy` serialised, once the filter's own compiler accepts it.
pub fn checked<P: FilterPolicy>(policy: &P) -> Result<Value, ConfigError> {
    let value = serde_json::to_value(policy)
        .map_err(|e| ConfigError::new("", format!("serialising the policy: {e}")))?;
    P::KIND.check(value.clone())?;
    Ok(value)
}

/// The policies an HTTPRoute or GRPCRoute rule itself gives its routes,
/// checked once per rule and shared by its routes: its header modifiers (a
/// rule filter), the split of its weighted backendRefs (the canary filter's
/// default, which any CanaryPolicy replaces), its CORS filter.
#[derive(Debug, Clone, Default)]
pub struct RulePolicies {
    pub headers: Option<Arc<Value>>,
    pub canary: Option<Arc<Value>>,
    pub cors: Option<Arc<CorsPolicy>>,
}

/// What a route's policies decide about its action, beyond the rule's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteVerdict {
    /// A CanaryPolicy splits it: forward by the header the canary filter
    /// writes, even where the rule alone has one backend.
    ForwardByCanaryHeader,
    /// The policy that applies to it is invalid: answer 500 rather than
    /// serve without it (a policy never fails open).
    InternalServerError,
}

/// The one table of every route's filter policies, per filter kind, keyed
/// by [`FilterKind`] so iteration is chain order (not `tollgate_core`'s
/// `RoutePolicies`, the envelope a filter parses). A policy object applied to
/// many routes is shared by them, not copied per route.
#[derive(Debug, Default)]
pub struct PolicyTable {
    by_filter: BTreeMap<FilterKind, BTreeMap<String, Arc<Value>>>,
    /// Envoy's CORS filter's policy of each route that has one.
    cors: BTreeMap<String, Arc<CorsPolicy>>,
    verdicts: BTreeMap<String, RouteVerdict>,
}

impl PolicyTable {
    /// Gives `route` the policy `policy` in filter `P`, after checking that
    /// the filter accepts it; the error names the field within the policy.
    pub fn insert<P: FilterPolicy>(&mut self, route: &str, policy: &P) -> Result<(), ConfigError> {
        let value = Arc::new(checked(policy)?);
        self.insert_checked::<P>(route, &value);
        Ok(())
    }

    /// Decides `route`'s action (an invalid policy's 500 is not undone by a
    /// canary split decided later).
    pub fn decide(&mut self, route: &str, verdict: RouteVerdict) {
        let held = self
            .verdicts
            .entry(route.to_owned())
            .or_insert(verdict.clone());
        if verdict == RouteVerdict::InternalServerError {
            *held = verdict;
        }
    }

    /// Gives `route` a policy of filter `P` already serialised and checked
    /// (a policy object applied to many routes is checked once).
    pub fn insert_checked<P: FilterPolicy>(&mut self, route: &str, checked: &Arc<Value>) {
        self.by_filter
            .entry(P::KIND)
            .or_default()
            .insert(route.to_owned(), Arc::clone(checked));
    }

    /// Gives `route` a policy of Envoy's CORS filter (one rule's policy is
    /// shared by its routes).
    pub fn insert_cors(&mut self, route: &str, policy: &Arc<CorsPolicy>) {
        self.cors.insert(route.to_owned(), Arc::clone(policy));
    }

    /// The filters a listener serving `routes` needs, in chain order (the
    /// router goes after them): Envoy's CORS filter, then Tollgate's.
    pub fn http_filters(&self, routes: &HashSet<&str>, runtime: &FilterRuntime) -> Vec<HttpFilter> {
        let cors = self
            .cors
            .keys()
            .any(|r| routes.contains(r.as_str()))
            .then(cors::http_filter);
        let tollgate = self.by_filter.iter().filter_map(|(kind, policies)| {
            let routes: BTreeMap<&str, &Value> = policies
                .iter()
                .filter(|(route, _)| routes.contains(route.as_str()))
                .map(|(route, policy)| (route.as_str(), policy.as_ref()))
                .collect();
            (!routes.is_empty())
                .then(|| runtime.http_filter(kind.module(), routes, kind.per_route()))
        });
        cors.into_iter().chain(tollgate).collect()
    }

    /// What `route`'s policies decided about its action.
    pub fn verdict(&self, route: &str) -> Option<&RouteVerdict> {
        self.verdicts.get(route)
    }

    /// Gives `route` its policies as `typed_per_filter_config`, where the
    /// runtime has per-route config (none for a route that answers 500).
    pub fn configure_route(&self, route: &mut Route, runtime: &FilterRuntime) {
        if self.verdicts.get(&route.name) == Some(&RouteVerdict::InternalServerError) {
            return;
        }
        if let Some(policy) = self.cors.get(&route.name) {
            route
                .typed_per_filter_config
                .insert(cors::FILTER.to_owned(), cors::per_route(policy));
        }
        for (kind, policies) in self.by_filter.iter().filter(|(k, _)| k.per_route()) {
            let per_route = policies
                .get(&route.name)
                .and_then(|policy| runtime.per_route(kind.module(), policy));
            if let Some((filter, config)) = per_route {
                route.typed_per_filter_config.insert(filter, config);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::extensions::filters::http::dynamic_modules::v3::{
        DynamicModuleFilter, DynamicModuleFilterPerRoute,
    };
    use envoy_types::pb::envoy::extensions::filters::http::wasm::v3::Wasm;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter;
    use envoy_types::pb::envoy::extensions::wasm::v3::FailurePolicy;
    use envoy_types::pb::google::protobuf::{Any, StringValue};
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

    fn wasm() -> FilterRuntime {
        FilterRuntime::Wasm { dir: "/d".into() }
    }

    fn json_of(config: Option<Any>) -> Value {
        let value = StringValue::decode(config.unwrap().value.as_slice()).unwrap();
        serde_json::from_str(&value.value).unwrap()
    }

    fn typed(filter: &HttpFilter) -> &Any {
        let Some(http_filter::ConfigType::TypedConfig(any)) = &filter.config_type else {
            panic!("no typed config");
        };
        any
    }

    fn wasm_configuration(filter: &HttpFilter) -> Value {
        let wasm = Wasm::decode(typed(filter).value.as_slice()).unwrap();
        let config = wasm.config.unwrap();
        assert_eq!(config.failure_policy, FailurePolicy::FailReload as i32);
        json_of(config.configuration)
    }

    #[test]
    fn a_policy_the_filter_refuses_is_not_inserted() {
        let mut policies = PolicyTable::default();
        let e = policies
            .insert("r", &header_policy("bad name"))
            .unwrap_err();
        assert_eq!(e.field, "request.set[0].name");
        for runtime in [wasm(), FilterRuntime::DynamicModule] {
            assert!(policies
                .http_filters(&HashSet::from(["r"]), &runtime)
                .is_empty());
        }
    }

    #[test]
    fn wasm_filters_come_in_chain_order_with_only_the_listeners_routes() {
        let mut policies = PolicyTable::default();
        policies.insert("a", &canary_policy()).unwrap();
        policies.insert("a", &header_policy("x")).unwrap();
        policies.insert("b", &header_policy("y")).unwrap();
        let filters = policies.http_filters(&HashSet::from(["a", "c"]), &wasm());
        let names: Vec<_> = filters.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["tollgate.header_mod", "tollgate.canary"]);
        let headers = wasm_configuration(&filters[0]);
        assert_eq!(
            headers,
            json!({"routes": {"a": {"request": {"set": [{"name": "x", "value": "v"}]}}}})
        );
        // The envelope is what the filter itself accepts.
        FilterKind::Headers.check(headers).unwrap();
        FilterKind::Canary
            .check(wasm_configuration(&filters[1]))
            .unwrap();
        assert!(policies
            .http_filters(&HashSet::from(["c"]), &wasm())
            .is_empty());
        // The wasm filter has no per-route config.
        let mut route = Route {
            name: "a".into(),
            ..Route::default()
        };
        policies.configure_route(&mut route, &wasm());
        assert!(route.typed_per_filter_config.is_empty());
    }

    #[test]
    fn the_dynamic_module_gets_its_policies_per_route_and_an_empty_envelope_in_the_chain() {
        let mut policies = PolicyTable::default();
        policies.insert("a", &canary_policy()).unwrap();
        policies.insert("a", &header_policy("x")).unwrap();
        policies.insert("b", &header_policy("y")).unwrap();
        let module = FilterRuntime::DynamicModule;
        let filters = policies.http_filters(&HashSet::from(["a", "c"]), &module);
        let names: Vec<_> = filters.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["tollgate.header_mod", "tollgate.canary"]);
        for (filter, name) in filters.iter().zip(["header_mod", "canary"]) {
            let config = DynamicModuleFilter::decode(typed(filter).value.as_slice()).unwrap();
            assert_eq!(config.filter_name, name);
            assert_eq!(config.dynamic_module_config.unwrap().name, "tollgate");
            assert_eq!(json_of(config.filter_config), json!({"routes": {}}));
        }

        let mut routes = ["a", "b", "c"].map(|name| Route {
            name: name.into(),
            ..Route::default()
        });
        for route in &mut routes {
            policies.configure_route(route, &module);
        }
        let per_route = |route: &Route, filter: &str| {
            let any = route.typed_per_filter_config.get(filter)?;
            let config = DynamicModuleFilterPerRoute::decode(any.value.as_slice()).unwrap();
            Some((config.filter_name, json_of(config.filter_config)))
        };
        let (name, policy) = per_route(&routes[0], "tollgate.header_mod").unwrap();
        assert_eq!(name, "header_mod");
        assert_eq!(
            policy,
            json!({"request": {"set": [{"name": "x", "value": "v"}]}})
        );
        // One policy, as the module's per-route config takes it.
        FilterKind::Headers.check(policy).unwrap();
        assert!(per_route(&routes[0], "tollgate.canary").is_some());
        assert_eq!(routes[1].typed_per_filter_config.len(), 1);
        assert!(routes[2].typed_per_filter_config.is_empty());
    }
}
