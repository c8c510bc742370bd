//! The core's header traits over the host's header maps.

use proxy_wasm::types::MapType;
use tollgate_core::headers::HeaderEditor;

use crate::abi::{self, HostError};

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
        abi::get_header(self.0, name).unwrap_or_else(|e| {
            log::debug!("tollgate: reading header {name} failed: {e:?}");
            None
        })
    }

    fn report(self, op: &str, name: &str, result: Result<(), HostError>) {
        if let Err(e) = result {
            log::warn!("tollgate: {op} of header {name} refused by the host: {e:?}");
        }
    }
}

impl HeaderEditor for HostHeaders {
    fn names(&mut self) -> Vec<String> {
        match abi::get_headers(self.0) {
            Ok(pairs) => pairs.into_iter().map(|(name, _)| name).collect(),
            Err(e) => {
                log::warn!("tollgate: listing headers failed: {e:?}");
                Vec::new()
            }
        }
    }

    fn remove(&mut self, name: &str) {
        self.report("remove", name, abi::remove_header(self.0, name));
    }

    fn set(&mut self, name: &str, value: &str) {
        self.report("set", name, abi::replace_header(self.0, name, value));
    }

    fn add(&mut self, name: &str, value: &str) {
        self.report("add", name, abi::add_header(self.0, name, value));
    }
}
