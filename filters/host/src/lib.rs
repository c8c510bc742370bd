//! proxy-wasm glue shared by every Tollgate filter.
//!
//! Each host call here maps its error instead of unwrapping it: a panic in a
//! wasm filter kills the VM and every later request on that worker fails. The
//! request-path host calls go through [`abi`], not the SDK's wrappers, which panic.

pub mod abi;
pub mod config;
pub mod metrics;
pub mod request;
pub mod stream_host;
