//! Log lines into Envoy's own log (its `dynamic_modules` logger), prefixed
//! like the wasm filters' (`tollgate <filter>: …`) so one grep finds both.

#![allow(unsafe_code)] // one call into Envoy

use crate::abi::{self, ModuleBuffer};

/// Logs `message` with the caller's file and line, as Envoy's own lines carry theirs.
#[track_caller]
fn write(level: u32, message: &str) {
    let at = std::panic::Location::caller();
    // SAFETY: both buffers are read during the call only.
    unsafe {
        abi::envoy_dynamic_module_callback_log_v2(
            level,
            ModuleBuffer::of(message.as_bytes()),
            ModuleBuffer::of(at.file().as_bytes()),
            at.line(),
        )
    }
}

#[track_caller]
pub fn debug(message: &str) {
    write(abi::LOG_DEBUG, message);
}

#[track_caller]
pub fn warn(message: &str) {
    write(abi::LOG_WARN, message);
}

#[track_caller]
pub fn error(message: &str) {
    write(abi::LOG_ERROR, message);
}
