//! `libtollgate.so`: the Tollgate filters as one Envoy dynamic module, native
//! code calling Envoy directly (no VM, no per-call crossing cost). Envoy loads
//! it as `envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter`
//! with `dynamic_module_config: {name: tollgate}` (found through
//! `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`), `filter_name` one of the filters in
//! [`tollgate_core::catalogue::FilterKind`], and `filter_config` a `StringValue` holding the same JSON
//! the `.wasm` filter takes. It also holds canary selection as a cluster
//! specifier (`specifier_name: canary`, [`cluster_specifier`]), which names
//! the cluster while Envoy resolves the route.
//!
//! Every decision is the core's (`tollgate_core::*::flow`, shared with the
//! wasm build); this crate maps Envoy's hooks onto it: [`abi`] declares the
//! callbacks, [`host`] is the core's `Host` over them, [`filter`] dispatches by
//! filter, [`metrics`] and [`log`] reach Envoy's stats and log.
//!
//! A panic must never unwind into Envoy (it would take the whole process down,
//! where a wasm panic kills one VM): every exported hook runs its body under
//! `catch_unwind` (the module is built with `panic = "unwind"`), logs the
//! panic, and fails closed: a request whose filter panicked goes no further.

#![allow(unsafe_code)] // the exported hooks are the foreign function interface

mod abi;
mod cluster_specifier;
mod counters;
mod filter;
mod host;
mod jwks;
mod jwt;
mod log;
mod metrics;
mod scheduler;

use std::cell::{RefCell, RefMut};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use abi::{EnvoyBuffer, EnvoyHeader, FilterConfigEnvoyPtr, FilterEnvoyPtr, ModulePtr};
use filter::{CalloutPart, FilterConfig, RoutePolicy, Stream};
use host::StreamHost;
use tollgate_core::catalogue::FilterKind as Kind;

/// A stream: its filter's config (shared with the other streams) and state.
///
/// Envoy may call a hook while another hook of the same filter runs: a local
/// reply sent from a request hook runs the response hooks at once. So hooks
/// share the filter and borrow its state for their run; a hook that finds the
/// state borrowed is that nested call, and has nothing to do (the reply is
/// the filter's own).
struct Filter {
    config: Arc<FilterConfig>,
    stream: RefCell<Stream>,
}

impl Filter {
    fn state(&self) -> Option<RefMut<'_, Stream>> {
        self.stream.try_borrow_mut().ok()
    }
}

impl Drop for Filter {
    /// A stream that ends while waiting (client gone) leaves the waiting
    /// lists before its scheduler is deleted.
    fn drop(&mut self) {
        self.stream.get_mut().leave(&self.config);
    }
}

/// A route's own policy, and the filter it is for.
struct PerRoute {
    kind: Kind,
    policy: RoutePolicy,
}

/// Runs `body`; a panic is logged and turned into `fallback`.
fn guard<T>(hook: &str, fallback: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            log::error(&format!("tollgate: panic in {hook}: {what}"));
            fallback
        }
    }
}

/// # Safety
/// `buffer` must be what Envoy passed to the running hook.
unsafe fn text(buffer: EnvoyBuffer) -> String {
    // SAFETY: per the caller.
    unsafe { buffer.to_string_lossy() }
}

/// # Safety
/// `buffer` must be what Envoy passed to the running hook.
unsafe fn bytes(buffer: EnvoyBuffer) -> Vec<u8> {
    if buffer.ptr.is_null() {
        return Vec::new();
    }
    // SAFETY: per the caller.
    unsafe { std::slice::from_raw_parts(buffer.ptr, buffer.length) }.to_vec()
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const u8 {
    guard("program_init", std::ptr::null(), || {
        log::install();
        abi::ABI_VERSION.as_ptr()
    })
}

/// # Safety
/// Called by Envoy on the main thread with live buffers.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    config_envoy: FilterConfigEnvoyPtr,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> ModulePtr {
    guard("config_new", std::ptr::null(), || {
        // SAFETY: Envoy's buffers, valid during this hook.
        let (name, config) = unsafe { (text(name), bytes(config)) };
        let Some(kind) = Kind::from_module(&name) else {
            log::error(&format!(
                "tollgate: rejected configuration: filter_name `{name}` is not a Tollgate filter; expected one of {}",
                Kind::modules()
            ));
            return std::ptr::null();
        };
        // SAFETY: the config pointer of this hook.
        let mut definer = unsafe { metrics::Definer::new(config_envoy) };
        match FilterConfig::new(kind, &config, &mut definer) {
            Ok(config) => {
                if let FilterConfig::JwtAuth(jwt) = &config {
                    // SAFETY: the config pointer of this hook.
                    unsafe { jwt.keys.start(config_envoy) };
                }
                Arc::into_raw(Arc::new(config)).cast()
            }
            Err(e) => {
                log::error(&format!(
                    "tollgate {}: rejected configuration: {e}",
                    kind.module()
                ));
                std::ptr::null()
            }
        }
    })
}

/// # Safety
/// `config` must come from `on_http_filter_config_new`.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: ModulePtr) {
    guard("config_destroy", (), || {
        // SAFETY: made by Arc::into_raw in config_new; released once.
        let config = unsafe { Arc::from_raw(config.cast::<FilterConfig>()) };
        if let FilterConfig::JwtAuth(jwt) = &*config {
            jwt.keys.stop();
        }
    })
}

/// # Safety
/// Called by Envoy on the main thread with live buffers.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> ModulePtr {
    guard("per_route_config_new", std::ptr::null(), || {
        // SAFETY: Envoy's buffers, valid during this hook.
        let (name, config) = unsafe { (text(name), bytes(config)) };
        let Some(kind) = Kind::from_module(&name) else {
            log::error(&format!(
                "tollgate: rejected per-route configuration: filter_name `{name}` is not a Tollgate filter; expected one of {}",
                Kind::modules()
            ));
            return std::ptr::null();
        };
        match RoutePolicy::new(kind, &config) {
            Ok(policy) => Box::into_raw(Box::new(PerRoute { kind, policy }))
                .cast_const()
                .cast(),
            Err(e) => {
                log::error(&format!(
                    "tollgate {}: rejected per-route configuration: {e}",
                    kind.module()
                ));
                std::ptr::null()
            }
        }
    })
}

/// # Safety
/// `config` must come from `on_http_filter_per_route_config_new`.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_destroy(
    config: ModulePtr,
) {
    guard("per_route_config_destroy", (), || {
        // SAFETY: made by Box::into_raw in per_route_config_new; released once.
        drop(unsafe { Box::from_raw(config.cast::<PerRoute>().cast_mut()) });
    })
}

/// # Safety
/// `config` must come from `on_http_filter_config_new` and still be alive.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: ModulePtr,
    _filter_envoy: FilterEnvoyPtr,
) -> ModulePtr {
    guard("filter_new", std::ptr::null(), || {
        let config = config.cast::<FilterConfig>();
        // SAFETY: a live Arc made by config_new: one more owner for this stream.
        let config = unsafe {
            Arc::increment_strong_count(config);
            Arc::from_raw(config)
        };
        let stream = RefCell::new(Stream::new(config.kind()));
        Box::into_raw(Box::new(Filter { config, stream }))
            .cast_const()
            .cast()
    })
}

/// # Safety
/// `filter` must come from `on_http_filter_new` and not be destroyed.
unsafe fn filter_of<'a>(filter: ModulePtr) -> &'a Filter {
    // SAFETY: per the caller; shared, as hooks of one filter may nest.
    unsafe { &*filter.cast::<Filter>() }
}

/// The route's own policy for this filter, if the route has one.
///
/// # Safety
/// `filter_envoy` must be the running hook's.
unsafe fn own_policy<'a>(filter_envoy: FilterEnvoyPtr, kind: Kind) -> Option<&'a RoutePolicy> {
    // SAFETY: a live filter pointer; the result is a PerRoute we made (Envoy
    // returns the per-route config of this filter's name), alive while the
    // route configuration is.
    let ptr =
        unsafe { abi::envoy_dynamic_module_callback_get_most_specific_route_config(filter_envoy) };
    if ptr.is_null() {
        return None;
    }
    // SAFETY: as above.
    let per_route = unsafe { &*ptr.cast::<PerRoute>() };
    (per_route.kind == kind).then_some(&per_route.policy)
}

/// # Safety
/// Called by Envoy on the stream's worker.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    filter_envoy: FilterEnvoyPtr,
    filter: ModulePtr,
    _end_of_stream: bool,
) -> u32 {
    guard("request_headers", abi::STOP_ITERATION, || {
        // SAFETY: Envoy's pointer for this hook.
        let filter = unsafe { filter_of(filter) };
        let Some(mut stream) = filter.state() else {
            return abi::CONTINUE;
        };
        // SAFETY: as above.
        let mut host = unsafe { StreamHost::new(filter_envoy, filter.config.flow_metrics()) };
        // SAFETY: as above.
        let own = unsafe { own_policy(filter_envoy, filter.config.kind()) };
        if stream.on_request_headers(&filter.config, own, &mut host) {
            abi::CONTINUE
        } else {
            abi::STOP_ITERATION
        }
    })
}

/// # Safety
/// Called by Envoy on the stream's worker.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    filter_envoy: FilterEnvoyPtr,
    filter: ModulePtr,
    _end_of_stream: bool,
) -> u32 {
    guard("response_headers", abi::CONTINUE, || {
        // SAFETY: Envoy's pointer for this hook.
        let filter = unsafe { filter_of(filter) };
        if let Some(mut stream) = filter.state() {
            // SAFETY: as above.
            let mut host = unsafe { StreamHost::new(filter_envoy, filter.config.flow_metrics()) };
            stream.on_response_headers(&filter.config, &mut host);
        }
        abi::CONTINUE
    })
}

/// # Safety
/// Called by Envoy once per filter, after its last hook.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_destroy(filter: ModulePtr) {
    guard("filter_destroy", (), || {
        // SAFETY: made by Box::into_raw in filter_new; released once.
        drop(unsafe { Box::from_raw(filter.cast::<Filter>().cast_mut()) });
    })
}

/// Whether the request's body and trailers must wait (going on would send
/// the request upstream before the rate limit service decided).
///
/// # Safety
/// `filter` must come from `on_http_filter_new` and not be destroyed.
unsafe fn holds_request(filter: ModulePtr) -> bool {
    // SAFETY: per the caller.
    let filter = unsafe { filter_of(filter) };
    filter.state().is_some_and(|s| s.holds_request())
}

/// # Safety
/// Called by Envoy on the stream's worker.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    _filter_envoy: FilterEnvoyPtr,
    filter: ModulePtr,
    _end_of_stream: bool,
) -> u32 {
    guard("request_body", abi::STOP_ITERATION_AND_BUFFER, || {
        // SAFETY: Envoy's pointer for this hook.
        if unsafe { holds_request(filter) } {
            abi::STOP_ITERATION_AND_BUFFER
        } else {
            abi::CONTINUE
        }
    })
}

/// # Safety
/// Called by Envoy on the stream's worker.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    _filter_envoy: FilterEnvoyPtr,
    filter: ModulePtr,
) -> u32 {
    guard("request_trailers", abi::STOP_ITERATION, || {
        // SAFETY: Envoy's pointer for this hook.
        if unsafe { holds_request(filter) } {
            abi::STOP_ITERATION
        } else {
            abi::CONTINUE
        }
    })
}

/// Hands one part of a callout's answer to the filter's stream.
///
/// # Safety
/// Envoy's pointers for the running `http_stream_*` hook.
unsafe fn callout(filter_envoy: FilterEnvoyPtr, filter: ModulePtr, id: u64, part: CalloutPart) {
    // SAFETY: per the caller.
    let filter = unsafe { filter_of(filter) };
    let Some(mut stream) = filter.state() else {
        return;
    };
    // SAFETY: per the caller.
    let mut host = unsafe { StreamHost::new(filter_envoy, filter.config.flow_metrics()) };
    stream.on_callout(id, part, &mut host);
}

/// # Safety
/// `headers` must point to `size` headers valid for the running hook.
unsafe fn header_pairs(headers: *const EnvoyHeader, size: usize) -> Vec<(String, String)> {
    if headers.is_null() {
        return Vec::new();
    }
    // SAFETY: per the caller.
    let headers = unsafe { std::slice::from_raw_parts(headers, size) };
    headers
        .iter()
        .map(|h| {
            let key = EnvoyBuffer {
                ptr: h.key_ptr,
                length: h.key_length,
            };
            let value = EnvoyBuffer {
                ptr: h.value_ptr,
                length: h.value_length,
            };
            // SAFETY: Envoy's views, valid during the hook; copied now.
            unsafe { (text(key), text(value)) }
        })
        .collect()
}

/// # Safety
/// Called by Envoy on the stream's worker with live buffers.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    filter_envoy: FilterEnvoyPtr,
    filter: ModulePtr,
    stream_id: u64,
    headers: *const EnvoyHeader,
    headers_size: usize,
    _end_stream: bool,
) {
    guard("http_stream_headers", (), || {
        // SAFETY: Envoy's pointers for this hook.
        unsafe {
            let pairs = header_pairs(headers, headers_size);
            callout(filter_envoy, filter, stream_id, CalloutPart::Headers(pairs));
        }
    })
}

/// # Safety
/// Called by Envoy on the stream's worker with live buffers.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    filter_envoy: FilterEnvoyPtr,
    filter: ModulePtr,
    stream_id: u64,
    data: *const EnvoyBuffer,
    data_count: usize,
    _end_stream: bool,
) {
    guard("http_stream_data", (), || {
        let chunks = if data.is_null() {
            &[][..]
        } else {
            // SAFETY: Envoy's array of `data_count` buffers for this hook.
            unsafe { std::slice::from_raw_parts(data, data_count) }
        };
        // SAFETY: Envoy's buffers, copied now.
        let bytes: Vec<u8> = chunks.iter().flat_map(|c| unsafe { bytes(*c) }).collect();
        // SAFETY: Envoy's pointers for this hook.
        unsafe { callout(filter_envoy, filter, stream_id, CalloutPart::Data(bytes)) };
    })
}

/// # Safety
/// Called by Envoy on the stream's worker with live buffers.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    filter_envoy: FilterEnvoyPtr,
    filter: ModulePtr,
    stream_id: u64,
    trailers: *const EnvoyHeader,
    trailers_size: usize,
) {
    guard("http_stream_trailers", (), || {
        // SAFETY: Envoy's pointers for this hook.
        unsafe {
            let pairs = header_pairs(trailers, trailers_size);
            callout(filter_envoy, filter, stream_id, CalloutPart::Headers(pairs));
        }
    })
}

/// # Safety
/// Called by Envoy on the stream's worker.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    filter_envoy: FilterEnvoyPtr,
    filter: ModulePtr,
    stream_id: u64,
) {
    guard("http_stream_complete", (), || {
        // SAFETY: Envoy's pointers for this hook.
        unsafe { callout(filter_envoy, filter, stream_id, CalloutPart::Complete) };
    })
}

/// # Safety
/// Called by Envoy on the stream's worker.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    filter_envoy: FilterEnvoyPtr,
    filter: ModulePtr,
    stream_id: u64,
    reason: u32,
) {
    guard("http_stream_reset", (), || {
        // SAFETY: Envoy's pointers for this hook.
        unsafe { callout(filter_envoy, filter, stream_id, CalloutPart::Reset(reason)) };
    })
}

/// # Safety
/// Called by Envoy on the stream's worker.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    filter_envoy: FilterEnvoyPtr,
    filter: ModulePtr,
    event_id: u64,
) {
    guard("http_filter_scheduled", (), || {
        // SAFETY: Envoy's pointer for this hook.
        let filter = unsafe { filter_of(filter) };
        let Some(mut stream) = filter.state() else {
            return;
        };
        // SAFETY: as above.
        let mut host = unsafe { StreamHost::new(filter_envoy, filter.config.flow_metrics()) };
        stream.on_scheduled(&filter.config, event_id, &mut host);
    })
}

/// # Safety
/// `config` must come from `on_http_filter_config_new`; main thread.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    config_envoy: FilterConfigEnvoyPtr,
    config: ModulePtr,
    _event_id: u64,
) {
    guard("http_filter_config_scheduled", (), || {
        // SAFETY: our live config (Envoy keeps it until config_destroy).
        let config = unsafe { &*config.cast::<FilterConfig>() };
        if let FilterConfig::JwtAuth(jwt) = config {
            // SAFETY: the live config's pointer, on the main thread.
            let failed = unsafe { jwt.keys.start_fetches(config_envoy) };
            for _ in 0..failed {
                // SAFETY: as above.
                unsafe { jwt.count_fetch(config_envoy, false) };
            }
        }
    })
}

/// # Safety
/// `config` must come from `on_http_filter_config_new`; main thread, with
/// buffers valid during the hook.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    config_envoy: FilterConfigEnvoyPtr,
    config: ModulePtr,
    callout_id: u64,
    _result: u32,
    headers: *const EnvoyHeader,
    headers_size: usize,
    body_chunks: *const EnvoyBuffer,
    body_chunks_size: usize,
) {
    guard("http_filter_config_http_callout_done", (), || {
        // SAFETY: our live config.
        let config = unsafe { &*config.cast::<FilterConfig>() };
        let FilterConfig::JwtAuth(jwt) = config else {
            return;
        };
        // SAFETY: Envoy's arrays for this hook (NULL when there is no response).
        let (headers, body) = unsafe {
            let headers = header_pairs(headers, headers_size);
            let chunks = if body_chunks.is_null() {
                &[][..]
            } else {
                std::slice::from_raw_parts(body_chunks, body_chunks_size)
            };
            let body: Vec<u8> = chunks.iter().flat_map(|c| bytes(*c)).collect();
            (headers, body)
        };
        let status = headers
            .iter()
            .find(|(k, _)| k == ":status")
            .map(|(_, v)| v.as_str());
        if let Some(ok) = jwt.keys.fetched(callout_id, status, &body) {
            // SAFETY: the live config's pointer, on the main thread.
            unsafe { jwt.count_fetch(config_envoy, ok) };
        }
    })
}

// The hooks Envoy requires of every module that these filters do not use.

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _filter_envoy: FilterEnvoyPtr,
    _filter: ModulePtr,
    _end_of_stream: bool,
) -> u32 {
    abi::CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _filter_envoy: FilterEnvoyPtr,
    _filter: ModulePtr,
) -> u32 {
    abi::CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    _filter_envoy: FilterEnvoyPtr,
    _filter: ModulePtr,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _filter_envoy: FilterEnvoyPtr,
    _filter: ModulePtr,
    _callout_id: u64,
    _result: u32,
    _headers: *const abi::EnvoyHeader,
    _headers_size: usize,
    _body_chunks: *const EnvoyBuffer,
    _body_chunks_size: usize,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _filter_envoy: FilterEnvoyPtr,
    _filter: ModulePtr,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _filter_envoy: FilterEnvoyPtr,
    _filter: ModulePtr,
) {
}
