//! Tollgate's filters, named once: each one's name in both runtimes, its
//! place in the chain, whether the dynamic module takes its policies per
//! route, and the checker that compiles a policy exactly as the filter does.
//! The dynamic module dispatches on it, and the controller orders chains,
//! attaches policies and checks what it emits with it; a new filter starts
//! here.

use serde_json::Value;

use crate::canary::policy::CanaryPolicy;
use crate::headers::HeaderPolicy;
use crate::jwt::policy::JwtPolicy;
use crate::ratelimit::policy::RateLimitPolicy;
use crate::route_policy::RoutePolicies;
use crate::ConfigError;

/// One of Tollgate's filters, declared in chain order (`Ord` is the order):
/// JWT → rate limit → header modification → canary → router (docs/design.md
/// "The chain order").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FilterKind {
    Jwt,
    RateLimit,
    Headers,
    Canary,
}

impl FilterKind {
    /// Every filter, in chain order.
    pub const ALL: [FilterKind; 4] = [
        FilterKind::Jwt,
        FilterKind::RateLimit,
        FilterKind::Headers,
        FilterKind::Canary,
    ];

    /// The filter's name in both runtimes: the dynamic module's
    /// `filter_name`; `<wasm dir>/<name>.wasm`, also the wasm plugin name,
    /// root and VM id.
    pub fn module(self) -> &'static str {
        match self {
            FilterKind::Jwt => "jwt_auth",
            FilterKind::RateLimit => "ratelimit",
            FilterKind::Headers => "header_mod",
            FilterKind::Canary => "canary",
        }
    }

    /// The filter named `name` (a `filter_name`).
    pub fn from_module(name: &str) -> Option<FilterKind> {
        Self::ALL.into_iter().find(|k| k.module() == name)
    }

    /// Every filter's name, for the refusal of any other.
    pub fn modules() -> String {
        Self::ALL.map(FilterKind::module).join(", ")
    }

    /// Whether the dynamic module takes this filter's policies per route
    /// (`DynamicModuleFilterPerRoute`). The JWT filter's do not: the module
    /// fetches remote key sets from the filter's own config (once per set, on
    /// the main thread), and a per-route policy gets keys only for sets that
    /// config names; so its policies stay in the chain's envelope, as for wasm.
    pub fn per_route(self) -> bool {
        self != FilterKind::Jwt
    }

    /// Compiles a serialised policy, or a per-route envelope of them, exactly
    /// as the filter does when it is configured.
    pub fn check(self, policy: Value) -> Result<(), ConfigError> {
        match self {
            FilterKind::Jwt => RoutePolicies::parse(policy, JwtPolicy::compile).map(drop),
            FilterKind::RateLimit => {
                RoutePolicies::parse(policy, RateLimitPolicy::compile).map(drop)
            }
            FilterKind::Headers => RoutePolicies::parse(policy, HeaderPolicy::compile).map(drop),
            FilterKind::Canary => RoutePolicies::parse(policy, CanaryPolicy::compile).map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_round_trip_and_the_chain_order_is_the_declaration_order() {
        for kind in FilterKind::ALL {
            assert_eq!(FilterKind::from_module(kind.module()), Some(kind));
        }
        assert_eq!(FilterKind::from_module("router"), None);
        let mut sorted = FilterKind::ALL;
        sorted.sort();
        assert_eq!(sorted, FilterKind::ALL);
        assert_eq!(
            FilterKind::modules(),
            "jwt_auth, ratelimit, header_mod, canary"
        );
    }

    #[test]
    fn each_checker_is_its_filters_compiler() {
        let headers = json!({"request": {"set": [{"name": "x", "value": "y"}]}});
        assert!(FilterKind::Headers.check(headers.clone()).is_ok());
        let e = FilterKind::Canary.check(headers).unwrap_err();
        assert!(!e.message.is_empty());
        let bad =
            json!({"routes": {"r": {"request": {"set": [{"name": "bad name", "value": "y"}]}}}});
        assert!(FilterKind::Headers.check(bad).is_err());
    }
}
