//! `jwt_auth.wasm`: JWT authentication with Envoy Gateway's `SecurityPolicy.jwt`
//! semantics. Decisions are `tollgate_core::jwt`; this crate reads the request,
//! applies the decision, answers refusals, and keeps remote key sets fresh.
//!
//! Modules as Envoy's jwt_authn splits them: `root` (configuration and the
//! fetch schedule), `keys` (the remote JWKS cache shared by workers), `stream`
//! (one request's decision) and `request`, `metrics`.

mod keys;
mod metrics;
mod request;
mod root;
mod stream;

use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|context_id| Box::new(root::Root::new(context_id)));
}}
