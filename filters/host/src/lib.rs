//! proxy-wasm glue shared by every Tollgate filter.
//!
//! Each host call here maps its error instead of unwrapping it: a panic in a
//! wasm filter kills the VM and every later request on that worker fails.

pub mod config;
pub mod headers;
pub mod metrics;
pub mod request;
