//! `header_mod.wasm`: request and response header modification with Gateway API
//! semantics. All decisions are in `tollgate_core::headers`; this crate only
//! connects them to proxy-wasm callbacks.

use std::sync::Arc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use tollgate_core::headers::{HeaderPolicy, Rendered};
use tollgate_core::route_policy::RoutePolicies;
use tollgate_host::headers::{HostHeaders, HostRequest};
use tollgate_host::metrics::Counter;
use tollgate_host::{config, request};

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
        if !config::reload(&mut self.policies, "header_mod", HeaderPolicy::compile) {
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
            response: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Per-request state: the policy chosen at request time (the route is known then)
/// and the response values rendered from the request as it arrived.
struct Stream {
    policies: Option<Arc<RoutePolicies<HeaderPolicy>>>,
    metrics: Metrics,
    response: Option<(Arc<HeaderPolicy>, Rendered)>,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let Some(policy) = request::policy(&self.policies) else {
            return Action::Continue;
        };
        if let Some(mods) = &policy.request {
            mods.apply(&mods.render(&mut HostRequest), &mut HostHeaders::request());
            self.metrics.requests_modified.inc();
        }
        if let Some(mods) = &policy.response {
            // Rendered now: response templates read the request as it arrived.
            self.response = Some((Arc::clone(policy), mods.render(&mut HostRequest)));
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        if let Some((policy, rendered)) = self.response.take() {
            if let Some(mods) = &policy.response {
                mods.apply(&rendered, &mut HostHeaders::response());
                self.metrics.responses_modified.inc();
            }
        }
        Action::Continue
    }
}
