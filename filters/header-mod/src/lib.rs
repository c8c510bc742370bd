//! `header_mod.wasm`: request and response header modification with Gateway API
//! semantics. The stream is `tollgate_core::headers::flow`, shared with the
//! dynamic module; this crate only connects it to proxy-wasm callbacks.

use std::sync::Arc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use tollgate_core::catalogue::FilterKind;
use tollgate_core::headers::{flow, HeaderPolicy};
use tollgate_core::route_policy::RoutePolicies;
use tollgate_host::config;
use tollgate_host::metrics::Counter;
use tollgate_host::stream_host::WasmHost;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| Box::new(Root::new()));
}}

#[derive(Clone)]
struct Metrics {
    requests_modified: Counter,
    responses_modified: Counter,
}

impl Metrics {
    fn flush(&self) {
        self.requests_modified.flush();
        self.responses_modified.flush();
    }
}

struct Root {
    /// None until a configuration has been accepted.
    policies: Option<Arc<RoutePolicies<HeaderPolicy>>>,
    metrics: Metrics,
}

impl Root {
    fn new() -> Self {
        Root {
            policies: None,
            metrics: Metrics {
                requests_modified: Counter::define("tollgate_header_mod_requests_modified"),
                responses_modified: Counter::define("tollgate_header_mod_responses_modified"),
            },
        }
    }
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        if !config::reload(
            &mut self.policies,
            FilterKind::Headers.module(),
            HeaderPolicy::compile,
        ) {
            return false;
        }
        true
    }

    fn on_tick(&mut self) {
        self.metrics.flush();
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Never None: the SDK panics (killing the VM) when a root context refuses a
        // stream. Envoy configures before it creates streams, so `policies` is set in
        // practice; without it the stream passes untouched.
        Some(Box::new(Stream {
            policies: self.policies.clone(),
            metrics: self.metrics.clone(),
            flow: flow::Stream::default(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Per-request state: the flow's, and what it needs from the filter.
struct Stream {
    policies: Option<Arc<RoutePolicies<HeaderPolicy>>>,
    metrics: Metrics,
    flow: flow::Stream,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let host = &mut WasmHost::default();
        let policy = RoutePolicies::for_stream(None, self.policies.as_deref(), host);
        if self.flow.on_request_headers(policy, host) {
            self.metrics.requests_modified.inc();
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        if self.flow.on_response_headers(&mut WasmHost::default()) {
            self.metrics.responses_modified.inc();
        }
        Action::Continue
    }
}
