//! Per-request facts read from the host: the route name and the attributes templates use.

use crate::abi;

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
