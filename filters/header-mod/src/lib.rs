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
use tollgate_host::{config, metrics, request};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| Box::new(Root::default()));
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

#[derive(Default)]
struct Root {
    policies: Option<Arc<RoutePolicies<HeaderPolicy>>>,
    metrics: Option<Metrics>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(policies) = config::load("header_mod", HeaderPolicy::compile) else {
            return false;
        };
        self.policies = Some(policies);
        if self.metrics.is_none() {
            self.metrics = Some(Metrics {
                requests_modified: Counter::define("tollgate_header_mod_requests_modified"),
                responses_modified: Counter::define("tollgate_header_mod_responses_modified"),
            });
            metrics::start_flushing();
        }
        true
    }

    fn on_tick(&mut self) {
        if let Some(metrics) = &self.metrics {
            metrics.flush();
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // on_configure succeeded before Envoy creates any stream, so both are set.
        let (policies, metrics) = (self.policies.clone()?, self.metrics.clone()?);
        Some(Box::new(Stream {
            policies,
            metrics,
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
    policies: Arc<RoutePolicies<HeaderPolicy>>,
    metrics: Metrics,
    response: Option<(Arc<HeaderPolicy>, Rendered)>,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let route = if self.policies.needs_route_name() {
            request::route_name()
        } else {
            None
        };
        let Some(policy) = self.policies.for_route(route.as_deref()) else {
            return Action::Continue;
        };
        if let Some(mods) = &policy.request {
            let rendered = if mods.is_dynamic() {
                mods.render(&mut HostRequest)
            } else {
                Rendered::default()
            };
            mods.apply(&rendered, &mut HostHeaders::request());
            self.metrics.requests_modified.inc();
        }
        if let Some(mods) = &policy.response {
            let rendered = if mods.is_dynamic() {
                mods.render(&mut HostRequest)
            } else {
                Rendered::default()
            };
            self.response = Some((Arc::clone(policy), rendered));
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
