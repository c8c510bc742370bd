//! `jwt_auth.wasm`: JWT authentication with Envoy Gateway's `SecurityPolicy.jwt`
//! semantics. Decisions are `tollgate_core::jwt`; this crate reads the request,
//! applies the decision, answers refusals, and keeps remote key sets fresh.
//!
//! The request path (the decision and what it does to the request) is
//! `tollgate_core::jwt::flow`, shared with the dynamic module. Modules as
//! Envoy's jwt_authn splits them: `root` (configuration and the fetch
//! schedule), `keys` (the remote JWKS cache shared by workers) and `stream`
//! (one request, and waiting for keys).

mod keys;
mod root;
mod stream;

use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|context_id| Box::new(root::Root::new(context_id)));
}}
