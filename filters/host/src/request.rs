//! Per-request facts read from the host: the route name and the attributes templates use.

use proxy_wasm::hostcalls;

/// Envoy's `xds.route_name` for the current request, if the request matched a named route.
pub fn route_name() -> Option<String> {
    property_string(&["xds", "route_name"]).filter(|name| !name.is_empty())
}

/// A string-valued Envoy attribute; None when absent or when the host refuses.
pub fn property_string(path: &[&str]) -> Option<String> {
    match hostcalls::get_property(path.to_vec()) {
        Ok(Some(bytes)) => String::from_utf8(bytes).ok(),
        Ok(None) => None,
        Err(status) => {
            log::debug!("tollgate: get_property({path:?}) failed: {status:?}");
            None
        }
    }
}
