//! Host-independent core of the Tollgate filters.
//!
//! Everything a filter decides lives here, behind small traits the proxy-wasm glue
//! implements, so the logic is unit-tested natively and the glue crates stay thin
//! (the layout Kuadrant's wasm-shim uses). Configs are parsed and compiled once, at
//! configure time, into immutable structures; per-request work only reads them.

pub mod canary;
pub mod catalogue;
pub mod duration;
pub mod error;
pub mod grpc;
pub mod headers;
pub mod host;
pub mod http_field;
pub mod jwt;
pub mod ratelimit;
pub mod regex;
pub mod request_parts;
pub mod route_policy;

pub use error::ConfigError;
