//! Rate limiting: Envoy Gateway's `BackendTrafficPolicy.rateLimit`, host-independent.
//!
//! `config` (the public JSON shape), `policy` (compiled rules and which bucket
//! of which rule a request falls under), `cidr` (source ranges), `window`
//! (fixed windows and the `x-ratelimit-*` response headers), the local
//! counters in a bounded shared-data table (`counter`: a slot's value and keys;
//! `slot_hash`: which slots a bucket may use; `table`: counting a request, with
//! the overflow bucket; `shared`: the shared data they live in), `service_call`
//! (the global rate limit service's request and answer) and `verdict` (a
//! request's standing against every rule that applied).

pub mod cidr;
pub mod config;
pub mod counter;
pub mod flow;
pub mod policy;
pub mod service_call;
pub mod shared;
pub mod slot_hash;
pub mod table;
pub mod verdict;
pub mod window;
