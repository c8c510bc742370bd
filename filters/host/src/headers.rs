//! The core's header traits over the host's header maps.

use proxy_wasm::hostcalls;
use proxy_wasm::types::MapType;
use tollgate_core::headers::{HeaderEditor, RequestSource};

use crate::request::property_string;

/// One of the two header maps a filter edits.
#[derive(Debug, Clone, Copy)]
pub struct HostHeaders(pub MapType);

impl HostHeaders {
    pub fn request() -> Self {
        HostHeaders(MapType::HttpRequestHeaders)
    }

    pub fn response() -> Self {
        HostHeaders(MapType::HttpResponseHeaders)
    }

    pub fn get(self, name: &str) -> Option<String> {
        match hostcalls::get_map_value(self.0, name) {
            Ok(value) => value,
            Err(status) => {
                log::debug!("tollgate: reading header {name} failed: {status:?}");
                None
            }
        }
    }

    fn report(self, op: &str, name: &str, result: Result<(), proxy_wasm::types::Status>) {
        if let Err(status) = result {
            log::warn!("tollgate: {op} of header {name} refused by the host: {status:?}");
        }
    }
}

impl HeaderEditor for HostHeaders {
    fn names(&mut self) -> Vec<String> {
        match hostcalls::get_map(self.0) {
            Ok(pairs) => pairs.into_iter().map(|(name, _)| name).collect(),
            Err(status) => {
                log::warn!("tollgate: listing headers failed: {status:?}");
                Vec::new()
            }
        }
    }

    fn remove(&mut self, name: &str) {
        self.report("remove", name, hostcalls::remove_map_value(self.0, name));
    }

    fn set(&mut self, name: &str, value: &str) {
        self.report(
            "set",
            name,
            hostcalls::set_map_value(self.0, name, Some(value)),
        );
    }

    fn add(&mut self, name: &str, value: &str) {
        self.report("add", name, hostcalls::add_map_value(self.0, name, value));
    }
}

/// Template values from the current request.
#[derive(Debug, Default)]
pub struct HostRequest;

impl RequestSource for HostRequest {
    fn header(&mut self, name: &str) -> Option<String> {
        HostHeaders::request().get(name)
    }

    fn source_address(&mut self) -> Option<String> {
        property_string(&["source", "address"])
    }

    fn request_id(&mut self) -> Option<String> {
        property_string(&["request", "id"])
    }
}
