//! The core's [`Host`] over proxy-wasm: what a flow asks of the stream, as
//! host calls on the current context. A refused call is logged and the
//! request goes on, as the flows expect.

use proxy_wasm::hostcalls;
use proxy_wasm::types::MapType;
use tollgate_core::host::{Attribute, Direction, GrpcCall, Host, Metric, Reply};

use crate::abi::{self, HostError};
use crate::metrics::Metrics;
use crate::request;

/// The current stream (proxy-wasm calls act on the context being called back),
/// with the filter's counters when its flow counts any.
#[derive(Debug, Default)]
pub struct WasmHost<'m> {
    metrics: Option<&'m Metrics>,
}

impl<'m> WasmHost<'m> {
    pub fn counting(metrics: &'m Metrics) -> Self {
        WasmHost {
            metrics: Some(metrics),
        }
    }
}

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

impl Host for WasmHost<'_> {
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

    fn send_response(&mut self, reply: &Reply) {
        if let Err(e) =
            abi::send_local_response(reply.status, reply.headers, reply.body, reply.grpc_status)
        {
            log::warn!("tollgate: sending a {} reply failed: {e:?}", reply.status);
        }
    }

    fn continue_request(&mut self) {
        if let Err(e) = abi::continue_request() {
            log::debug!("tollgate: resuming the request failed: {e:?}");
        }
    }

    fn grpc_call(&mut self, call: &GrpcCall) -> Result<u64, String> {
        hostcalls::dispatch_grpc_call(
            call.cluster,
            call.service,
            call.method,
            Vec::new(),
            Some(call.message),
            call.timeout,
        )
        .map(u64::from)
        .map_err(|status| format!("{status:?}"))
    }

    fn now_seconds(&mut self) -> Option<u64> {
        abi::now_seconds().ok()
    }

    fn count(&mut self, metric: Metric) {
        if let Some(m) = self.metrics {
            m.count(metric);
        }
    }
}
