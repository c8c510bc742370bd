//! Rate limiting: Envoy Gateway's `BackendTrafficPolicy.rateLimit`, host-independent.
//!
//! `config` (the public JSON shape), `policy` (compiled rules and which bucket
//! of which rule a request falls under), `cidr` (source ranges), `window`
//! (fixed windows and the `x-ratelimit-*` response headers) and `counter` (local
//! counters in a bounded shared-data table).

pub mod cidr;
pub mod config;
pub mod counter;
pub mod policy;
pub mod window;
