//! Rate limiting: Envoy Gateway's `BackendTrafficPolicy.rateLimit`, host-independent.
//!
//! `config` (the public JSON shape), `policy` (compiled rules and which bucket
//! of which rule a request falls under), `cidr` (source ranges) and `window`
//! (fixed windows and the `x-ratelimit-*` response headers).

pub mod cidr;
pub mod config;
pub mod policy;
pub mod window;
