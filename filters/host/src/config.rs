//! Reading and compiling a filter's plugin configuration in `on_configure`.

use std::sync::Arc;

use proxy_wasm::hostcalls;
use tollgate_core::error::parse_json;
use tollgate_core::route_policy::RoutePolicies;
use tollgate_core::ConfigError;

/// Reads the plugin configuration and compiles it into per-route policies.
/// On failure logs one line naming the filter and the field, and returns None;
/// the caller returns `false` from `on_configure` so Envoy rejects the config
/// (and, on a reload, keeps serving the last good one).
fn load<R, P, F>(filter: &str, compile: F) -> Option<Arc<RoutePolicies<P>>>
where
    R: serde::de::DeserializeOwned,
    F: Fn(R) -> Result<P, ConfigError>,
{
    let result = read_plugin_configuration()
        .and_then(|bytes| parse_json(&bytes))
        .and_then(|doc| RoutePolicies::parse(doc, compile));
    match result {
        Ok(policies) => Some(Arc::new(policies)),
        Err(e) => {
            log::error!("tollgate {filter}: rejected configuration: {e}");
            None
        }
    }
}

/// `on_configure` for every filter: loads and compiles the configuration into
/// `slot` (keeping the old one on failure, so the last good config keeps serving
/// within a VM), and starts the metric flush tick on the first success.
pub fn reload<R, P, F>(slot: &mut Option<Arc<RoutePolicies<P>>>, filter: &str, compile: F) -> bool
where
    R: serde::de::DeserializeOwned,
    F: Fn(R) -> Result<P, ConfigError>,
{
    let Some(policies) = load(filter, compile) else {
        return false;
    };
    if slot.replace(policies).is_none() {
        crate::metrics::start_flushing();
    }
    true
}

fn read_plugin_configuration() -> Result<Vec<u8>, ConfigError> {
    match hostcalls::get_buffer(
        proxy_wasm::types::BufferType::PluginConfiguration,
        0,
        usize::MAX,
    ) {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(ConfigError::new(
            "",
            "no plugin configuration was given; expected a JSON object",
        )),
        Err(status) => Err(ConfigError::new(
            "",
            format!("the host did not return the plugin configuration ({status:?})"),
        )),
    }
}
