//! The core's [`Host`] over Envoy's dynamic module callbacks, for the stream
//! whose hook is running. Everything Envoy hands back is copied out before the
//! hook returns (its buffers live only that long). A refused call is logged
//! and the request goes on, as the flows expect.

#![allow(unsafe_code)] // calls into Envoy through the declarations in `abi`

use std::time::{SystemTime, UNIX_EPOCH};

use tollgate_core::grpc;
use tollgate_core::host::{Attribute, Direction, GrpcCall, Host, Metric, Reply};

use crate::abi::{self, EnvoyBuffer, EnvoyHeader, FilterEnvoyPtr, ModuleBuffer, ModuleHeader};
use crate::log;
use crate::metrics::Counter;

/// One stream, valid while the hook that made it runs, with the counters of
/// its filter's flow.
pub struct StreamHost<'m> {
    filter: FilterEnvoyPtr,
    metrics: &'m [(Metric, Counter)],
}

impl<'m> StreamHost<'m> {
    /// # Safety
    /// `filter` must be the `filter_envoy_ptr` Envoy passed to the running hook.
    pub unsafe fn new(filter: FilterEnvoyPtr, metrics: &'m [(Metric, Counter)]) -> Self {
        StreamHost { filter, metrics }
    }

    pub fn filter(&self) -> FilterEnvoyPtr {
        self.filter
    }

    /// Adds one to `counter` from this stream; `label` for a labelled counter.
    pub fn increment(&self, counter: &Counter, label: Option<&str>) {
        counter.increment_with(label, |id, values, count, amount| {
            // SAFETY: a live filter pointer (`StreamHost::new`); the label
            // values outlive the call.
            unsafe {
                abi::envoy_dynamic_module_callback_http_filter_increment_counter(
                    self.filter,
                    id,
                    values,
                    count,
                    amount,
                )
            }
        });
    }

    /// The index of the worker running this stream.
    pub fn worker_index(&self) -> u32 {
        // SAFETY: a live filter pointer during its hook.
        unsafe { abi::envoy_dynamic_module_callback_http_filter_get_worker_index(self.filter) }
    }

    fn report(&self, op: &str, name: &str, done: bool) {
        if !done {
            log::warn(&format!("{op} of header {name} refused by Envoy"));
        }
    }
}

fn header_type(dir: Direction) -> u32 {
    match dir {
        Direction::Request => abi::REQUEST_HEADER,
        Direction::Response => abi::RESPONSE_HEADER,
    }
}

impl Host for StreamHost<'_> {
    fn headers(&mut self, dir: Direction) -> Vec<(String, String)> {
        let kind = header_type(dir);
        // SAFETY: a live filter pointer during its hook.
        let size =
            unsafe { abi::envoy_dynamic_module_callback_http_get_headers_size(self.filter, kind) };
        let empty = EnvoyHeader {
            key_ptr: std::ptr::null(),
            key_length: 0,
            value_ptr: std::ptr::null(),
            value_length: 0,
        };
        let mut headers = vec![empty; size];
        // SAFETY: the array holds exactly the `size` entries Envoy reported.
        let read = unsafe {
            abi::envoy_dynamic_module_callback_http_get_headers(
                self.filter,
                kind,
                headers.as_mut_ptr(),
            )
        };
        if !read {
            return Vec::new();
        }
        headers
            .into_iter()
            .map(|h| {
                let key = EnvoyBuffer {
                    ptr: h.key_ptr,
                    length: h.key_length,
                };
                let value = EnvoyBuffer {
                    ptr: h.value_ptr,
                    length: h.value_length,
                };
                // SAFETY: Envoy's views, valid until this hook returns; copied now.
                unsafe { (key.to_string_lossy(), value.to_string_lossy()) }
            })
            .collect()
    }

    fn header_values(&mut self, dir: Direction, name: &str) -> Vec<String> {
        let kind = header_type(dir);
        let key = ModuleBuffer::of(name.as_bytes());
        let mut values = Vec::new();
        let mut count = 0usize;
        let mut index = 0usize;
        loop {
            let mut value = EnvoyBuffer::EMPTY;
            // SAFETY: a live filter pointer; the out-pointers are to locals.
            let found = unsafe {
                abi::envoy_dynamic_module_callback_http_get_header(
                    self.filter,
                    kind,
                    key,
                    &mut value,
                    index,
                    &mut count,
                )
            };
            if !found || value.ptr.is_null() {
                break;
            }
            // SAFETY: Envoy's view, copied now.
            values.push(unsafe { value.to_string_lossy() });
            index += 1;
            if index >= count {
                break;
            }
        }
        values
    }

    fn set_header(&mut self, dir: Direction, name: &str, value: &str) {
        // SAFETY: a live filter pointer; our buffers outlive the call.
        let done = unsafe {
            abi::envoy_dynamic_module_callback_http_set_header(
                self.filter,
                header_type(dir),
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::of(value.as_bytes()),
            )
        };
        self.report("set", name, done);
    }

    fn add_header(&mut self, dir: Direction, name: &str, value: &str) {
        // SAFETY: as above.
        let done = unsafe {
            abi::envoy_dynamic_module_callback_http_add_header(
                self.filter,
                header_type(dir),
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::of(value.as_bytes()),
            )
        };
        self.report("add", name, done);
    }

    fn remove_header(&mut self, dir: Direction, name: &str) {
        // SAFETY: as above; a null value removes the header.
        let done = unsafe {
            abi::envoy_dynamic_module_callback_http_set_header(
                self.filter,
                header_type(dir),
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::NULL,
            )
        };
        self.report("remove", name, done);
    }

    fn attribute(&mut self, attribute: Attribute) -> Option<String> {
        let id = match attribute {
            Attribute::RouteName => abi::ATTRIBUTE_XDS_ROUTE_NAME,
            Attribute::SourceAddress => abi::ATTRIBUTE_SOURCE_ADDRESS,
            Attribute::RequestId => abi::ATTRIBUTE_REQUEST_ID,
        };
        let mut value = EnvoyBuffer::EMPTY;
        // SAFETY: a live filter pointer; the out-pointer is to a local.
        let found = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_get_attribute_string(
                self.filter,
                id,
                &mut value,
            )
        };
        // SAFETY: Envoy's view, copied now.
        found.then(|| unsafe { value.to_string_lossy() })
    }

    fn clear_route_cache(&mut self) {
        // SAFETY: a live filter pointer.
        unsafe { abi::envoy_dynamic_module_callback_http_clear_route_cache(self.filter) }
    }

    /// Envoy's `send_response` has no gRPC status (it answers a gRPC client
    /// `grpc-status: 0`), so a gRPC request gets its trailers-only answer
    /// built here: HTTP 200, the gRPC status and the body as `grpc-message`.
    fn send_response(&mut self, reply: &Reply) {
        let grpc_client = tollgate_core::host::request_header(self, "content-type")
            .is_some_and(|t| t.starts_with("application/grpc"));
        if grpc_client {
            let status = reply.grpc_status.to_string();
            let mut pairs = vec![
                (":status", "200"),
                ("content-type", "application/grpc"),
                ("grpc-status", status.as_str()),
                ("grpc-message", reply.body),
            ];
            pairs.extend(reply.headers.iter().filter(|(k, _)| *k != "content-type"));
            let mut headers = ModuleHeader::all(&pairs);
            // SAFETY: a live filter pointer; the headers point into `pairs`,
            // alive during the call.
            unsafe {
                abi::envoy_dynamic_module_callback_http_send_response_headers(
                    self.filter,
                    headers.as_mut_ptr(),
                    headers.len(),
                    true,
                )
            }
            return;
        }
        let mut headers = ModuleHeader::all(reply.headers);
        // SAFETY: as above; body and details are read during the call.
        unsafe {
            abi::envoy_dynamic_module_callback_http_send_response(
                self.filter,
                reply.status,
                headers.as_mut_ptr(),
                headers.len(),
                ModuleBuffer::of(reply.body.as_bytes()),
                ModuleBuffer::of(b"tollgate"),
            )
        }
    }

    fn continue_request(&mut self) {
        // SAFETY: a live filter pointer.
        unsafe { abi::envoy_dynamic_module_callback_http_filter_continue_decoding(self.filter) }
    }

    /// gRPC framed over a streaming HTTP callout (the ABI has no gRPC call);
    /// the answer arrives in the `http_stream_*` hooks under the returned id.
    fn grpc_call(&mut self, call: &GrpcCall) -> Result<u64, String> {
        let path = format!("/{}/{}", call.service, call.method);
        let owned = grpc::request_headers(&path, call.cluster, call.timeout);
        let pairs: Vec<(&str, &str)> = owned
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut headers = ModuleHeader::all(&pairs);
        let body = grpc::frame(call.message);
        let timeout = u64::try_from(call.timeout.as_millis()).unwrap_or(u64::MAX);
        let mut id = 0u64;
        // SAFETY: a live filter pointer; everything passed outlives the call
        // (Envoy copies the headers and body).
        let result = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_start_http_stream(
                self.filter,
                &mut id,
                ModuleBuffer::of(call.cluster.as_bytes()),
                headers.as_mut_ptr(),
                headers.len(),
                ModuleBuffer::of(&body),
                true,
                timeout.max(1),
            )
        };
        match result {
            abi::CALLOUT_SUCCESS => Ok(id),
            abi::CALLOUT_CLUSTER_NOT_FOUND => Err("no such cluster".into()),
            other => Err(format!("Envoy refused the callout (result {other})")),
        }
    }

    fn now_seconds(&mut self) -> Option<u64> {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs())
    }

    fn count(&mut self, metric: Metric) {
        if let Some((_, counter)) = self.metrics.iter().find(|(m, _)| *m == metric) {
            self.increment(counter, None);
        }
    }
}
