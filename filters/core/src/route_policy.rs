//! The per-route envelope every filter config may use.
//!
//! Envoy's wasm filter has no per-route config, so one filter instance carries the
//! policies of every route of a listener: `{"routes": {"<route name>": P}, "default": P}`.
//! A bare policy object means "this policy for every request". The filter looks up
//! the `xds.route_name` property per request, and only when the envelope form is
//! used (the lookup is a host call).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::error::from_value;
use crate::ConfigError;

/// Compiled policies by route name. `Arc` so a compiled policy can be held by a
/// request's context without copying it.
#[derive(Debug)]
pub struct RoutePolicies<P> {
    routes: HashMap<String, Arc<P>>,
    default: Option<Arc<P>>,
}

impl<P> RoutePolicies<P> {
    /// Parses a config document (either form) and compiles each policy with `compile`.
    /// `R` is the policy's raw serde shape; errors name the field under its route.
    pub fn parse<R, F>(doc: Value, compile: F) -> Result<Self, ConfigError>
    where
        R: serde::de::DeserializeOwned,
        F: Fn(R) -> Result<P, ConfigError>,
    {
        let compile_one = |value: Value, at: &str| {
            from_value::<R>(value)
                .and_then(&compile)
                .map(Arc::new)
                .map_err(|e| e.within(at))
        };
        let Value::Object(mut map) = doc else {
            return Err(ConfigError::new("", "expected a JSON object"));
        };
        if !map.contains_key("routes") && !map.contains_key("default") {
            let policy = compile_one(Value::Object(map), "")?;
            return Ok(RoutePolicies {
                routes: HashMap::new(),
                default: Some(policy),
            });
        }
        if let Some(other) = map.keys().find(|k| *k != "routes" && *k != "default") {
            return Err(ConfigError::new(
                other.as_str(),
                "unknown field next to `routes`/`default`; a per-route config holds only those two",
            ));
        }
        let mut routes = HashMap::new();
        match map.remove("routes") {
            None | Some(Value::Null) => {}
            Some(Value::Object(by_name)) => {
                for (name, value) in by_name {
                    let policy = compile_one(value, &format!("routes.{name}"))?;
                    routes.insert(name, policy);
                }
            }
            Some(_) => {
                return Err(ConfigError::new(
                    "routes",
                    "expected an object mapping route names to policies",
                ))
            }
        }
        let default = match map.remove("default") {
            None | Some(Value::Null) => None,
            Some(value) => Some(compile_one(value, "default")?),
        };
        Ok(RoutePolicies { routes, default })
    }

    /// True when policies differ by route, so the filter must ask the host for the
    /// route name; false for a single policy, saving that host call per request.
    pub fn needs_route_name(&self) -> bool {
        !self.routes.is_empty()
    }

    /// The policy for the current request; `route_name` (a host call) is only asked
    /// when policies differ by route.
    pub fn select(&self, route_name: impl FnOnce() -> Option<String>) -> Option<&Arc<P>> {
        let route = if self.needs_route_name() {
            route_name()
        } else {
            None
        };
        self.for_route(route.as_deref())
    }

    /// Like [`select`](Self::select), also naming the policy's scope: the route name
    /// when a route's own policy applies, "" for the default. Filters that keep
    /// state shared across workers (counters) key it by scope, so two routes with
    /// equal policies still count apart.
    pub fn select_scoped(
        &self,
        route_name: impl FnOnce() -> Option<String>,
    ) -> Option<(&str, &Arc<P>)> {
        if self.needs_route_name() {
            if let Some((name, policy)) = route_name().and_then(|r| self.routes.get_key_value(&r)) {
                return Some((name.as_str(), policy));
            }
        }
        self.default.as_ref().map(|p| ("", p))
    }

    /// Every policy with its scope (see [`select_scoped`](Self::select_scoped)).
    pub fn all_scoped(&self) -> impl Iterator<Item = (&str, &Arc<P>)> {
        self.routes
            .iter()
            .map(|(name, p)| (name.as_str(), p))
            .chain(self.default.iter().map(|p| ("", p)))
    }

    /// Every compiled policy (routes' and the default), for set-up that spans them.
    pub fn all(&self) -> impl Iterator<Item = &Arc<P>> {
        self.routes.values().chain(self.default.iter())
    }

    /// The policy for a stream: a route's own policy, where the runtime has
    /// per-route config (the dynamic module's `DynamicModuleFilterPerRoute`),
    /// wins over the filter's, whose envelope may pick by route name.
    pub fn for_stream<'a>(
        own: Option<&'a Arc<P>>,
        filter: Option<&'a RoutePolicies<P>>,
        host: &mut dyn crate::host::Host,
    ) -> Option<&'a Arc<P>> {
        own.or_else(|| filter?.select(|| crate::host::route_name(host)))
    }

    /// The policy for a request on `route` (None when Envoy knows no route name).
    pub fn for_route(&self, route: Option<&str>) -> Option<&Arc<P>> {
        route
            .and_then(|r| self.routes.get(r))
            .or(self.default.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Raw {
        n: u32,
    }

    fn compile(r: Raw) -> Result<u32, ConfigError> {
        if r.n == 0 {
            Err(ConfigError::new("n", "must be positive"))
        } else {
            Ok(r.n)
        }
    }

    #[test]
    fn bare_policy_applies_everywhere_without_a_route_lookup() {
        let p = RoutePolicies::parse(json!({"n": 1}), compile).unwrap();
        assert!(!p.needs_route_name());
        assert_eq!(**p.for_route(None).unwrap(), 1);
        assert_eq!(**p.for_route(Some("any")).unwrap(), 1);
    }

    #[test]
    fn envelope_picks_the_route_then_default() {
        let p = RoutePolicies::parse(
            json!({"routes": {"a": {"n": 1}, "b": {"n": 2}}, "default": {"n": 9}}),
            compile,
        )
        .unwrap();
        assert!(p.needs_route_name());
        assert_eq!(**p.for_route(Some("a")).unwrap(), 1);
        assert_eq!(**p.for_route(Some("b")).unwrap(), 2);
        assert_eq!(**p.for_route(Some("c")).unwrap(), 9);
        assert_eq!(**p.for_route(None).unwrap(), 9);
    }

    #[test]
    fn select_asks_for_the_route_name_only_when_needed() {
        let single = RoutePolicies::parse(json!({"n": 1}), compile).unwrap();
        assert_eq!(
            **single
                .select(|| panic!("no lookup for a single policy"))
                .unwrap(),
            1
        );
        let envelope = RoutePolicies::parse(json!({"routes": {"a": {"n": 2}}}), compile).unwrap();
        assert_eq!(**envelope.select(|| Some("a".into())).unwrap(), 2);
        assert!(envelope.select(|| None).is_none());
    }

    #[test]
    fn envelope_without_default_passes_other_routes() {
        let p = RoutePolicies::parse(json!({"routes": {"a": {"n": 1}}}), compile).unwrap();
        assert!(p.for_route(Some("b")).is_none());
    }

    #[test]
    fn errors_name_the_route() {
        let e = RoutePolicies::parse(json!({"routes": {"a": {"n": 0}}}), compile).unwrap_err();
        assert_eq!(e.field, "routes.a.n");
        let e = RoutePolicies::parse(json!({"routes": {"a": {"x": 1}}}), compile).unwrap_err();
        assert_eq!(e.field, "routes.a.x");
        assert!(e.message.contains("unknown field `x`"), "{e}");
        let e = RoutePolicies::parse(json!({"default": {"n": 0}}), compile).unwrap_err();
        assert_eq!(e.field, "default.n");
        let e = RoutePolicies::parse(json!({"routes": {}, "extra": 1}), compile).unwrap_err();
        assert_eq!(e.field, "extra");
        let e = RoutePolicies::parse(json!({"routes": []}), compile).unwrap_err();
        assert_eq!(e.field, "routes");
        let e = RoutePolicies::parse(json!([1]), compile).unwrap_err();
        assert!(e.message.contains("object"));
    }
}
