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

/// Envoy's log as the `log` crate's logger, for the core's lines (the flows
/// log through `log::warn!` in both runtimes). Levels are filtered by Envoy.
struct EnvoyLog;

static LOGGER: EnvoyLog = EnvoyLog;

impl ::log::Log for EnvoyLog {
    fn enabled(&self, _: &::log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &::log::Record) {
        let level = match record.level() {
            ::log::Level::Error => abi::LOG_ERROR,
            ::log::Level::Warn => abi::LOG_WARN,
            ::log::Level::Info => abi::LOG_INFO,
            ::log::Level::Debug => abi::LOG_DEBUG,
            ::log::Level::Trace => abi::LOG_TRACE,
        };
        let message = record.args().to_string();
        let file = record.file().unwrap_or("tollgate");
        // SAFETY: the buffers are read during the call only.
        unsafe {
            abi::envoy_dynamic_module_callback_log_v2(
                level,
                ModuleBuffer::of(message.as_bytes()),
                ModuleBuffer::of(file.as_bytes()),
                record.line().unwrap_or(0),
            )
        }
    }

    fn flush(&self) {}
}

/// Makes Envoy's log the `log` crate's logger (once per process).
pub fn install() {
    if ::log::set_logger(&LOGGER).is_ok() {
        ::log::set_max_level(::log::LevelFilter::Debug);
    }
}
