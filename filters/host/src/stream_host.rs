//! The core's [`Host`] over proxy-wasm: what a flow asks of the stream, as
//! host calls on the current context. A refused call is logged and the
//! request goes on, as the flows expect.

use proxy_wasm::types::MapType;
use tollgate_core::host::{Attribute, Direction, Host};

use crate::abi::{self, HostError};
use crate::request;

/// The current stream (proxy-wasm calls act on the context being called back).
#[derive(Debug, Default)]
pub struct WasmHost;

fn map(dir: Direction) -> MapType {
    match dir {
        Direction::Request => MapType::HttpRequestHeaders,
        Direction::Response => MapType::HttpResponseHeaders,
    }
}

fn report(op: &str, name: &str, result: Result<(), HostError>) {
    if let Err(e) = result {
        log::warn!("tollgate: {op} of header {name} refused by the host: {e:?}");
    }
}

impl Host for WasmHost {
    fn headers(&mut self, dir: Direction) -> Vec<(String, String)> {
        abi::get_headers(map(dir)).unwrap_or_else(|e| {
            log::warn!("tollgate: reading headers failed: {e:?}");
            Vec::new()
        })
    }

    fn header_values(&mut self, dir: Direction, name: &str) -> Vec<String> {
        self.headers(dir)
            .into_iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v)
            .collect()
    }

    fn set_header(&mut self, dir: Direction, name: &str, value: &str) {
        report("set", name, abi::replace_header(map(dir), name, value));
    }

    fn add_header(&mut self, dir: Direction, name: &str, value: &str) {
        report("add", name, abi::add_header(map(dir), name, value));
    }

    fn remove_header(&mut self, dir: Direction, name: &str) {
        report("remove", name, abi::remove_header(map(dir), name));
    }

    fn attribute(&mut self, attribute: Attribute) -> Option<String> {
        let path: &[&str] = match attribute {
            Attribute::RouteName => &["xds", "route_name"],
            Attribute::SourceAddress => &["source", "address"],
            Attribute::RequestId => &["request", "id"],
        };
        request::property_string(path)
    }

    fn clear_route_cache(&mut self) {
        request::clear_route_cache();
    }
}
