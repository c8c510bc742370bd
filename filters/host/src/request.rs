//! Per-request facts read from the host: the route name and the attributes templates use.

use std::sync::Arc;

use tollgate_core::route_policy::RoutePolicies;

use crate::abi;

/// The policy for the current request, when the filter is configured and has one
/// for its route (the route name is only asked when policies differ by route).
pub fn policy<P>(policies: &Option<Arc<RoutePolicies<P>>>) -> Option<&Arc<P>> {
    policies.as_ref()?.select(route_name)
}

/// Envoy's `xds.route_name` for the current request, if the request matched a named route.
pub fn route_name() -> Option<String> {
    property_string(&["xds", "route_name"]).filter(|name| !name.is_empty())
}

/// A string-valued Envoy attribute (decoded lossily); None when absent or refused.
pub fn property_string(path: &[&str]) -> Option<String> {
    match abi::get_property(path) {
        Ok(bytes) => bytes.map(|b| String::from_utf8_lossy(&b).into_owned()),
        Err(e) => {
            log::debug!("tollgate: get_property({path:?}) failed: {e:?}");
            None
        }
    }
}

/// Makes Envoy re-select the route after this filter's header edits. Called where
/// re-routing is the point (JWT `recomputeRoute`, canary), so it stays correct on
/// an Envoy that no longer clears the route cache by itself. Envoy before 1.33 has
/// no such function (NotFound) and clears on every edit anyway.
pub fn clear_route_cache() {
    const NOT_FOUND: u32 = 1;
    match abi::call_foreign_function("clear_route_cache") {
        Ok(()) | Err(abi::HostError(NOT_FOUND)) => {}
        Err(e) => log::warn!("tollgate: clear_route_cache failed: {e:?}"),
    }
}
