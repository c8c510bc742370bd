//! `canary.wasm`: picks a backend per request (rules, then a sticky key, then
//! weight; `tollgate_core::canary`), writes it to the selection header over
//! whatever the client sent, and makes Envoy route by it (`cluster_header`, or
//! routes matching the header). Envoy 1.40 re-selects the route after any wasm
//! request-header edit anyway; the filter also clears the route cache
//! explicitly, as the JWT filter's `recomputeRoute` does, so that it keeps
//! working on an Envoy that stops doing that.

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use tollgate_core::canary::flow::{self, Chosen};
use tollgate_core::canary::policy::{CanaryPolicy, Draws};
use tollgate_core::catalogue::FilterKind;
use tollgate_core::route_policy::RoutePolicies;
use tollgate_host::metrics::Counter;
use tollgate_host::stream_host::WasmHost;
use tollgate_host::{abi, config};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| Box::new(Root::new()));
}}

/// Selections per backend name (across every route's policy), and requests
/// no backend could take.
struct Metrics {
    selected: HashMap<String, Counter>,
    unselected: Counter,
}

impl Metrics {
    fn define(policies: &RoutePolicies<CanaryPolicy>) -> Self {
        let mut selected = HashMap::new();
        for (_, policy) in policies.all_scoped() {
            for name in policy.backend_names() {
                selected.entry(name.clone()).or_insert_with(|| {
                    Counter::define(&format!("tollgate_canary_selected_{name}"))
                });
            }
        }
        Metrics {
            selected,
            unselected: Counter::define("tollgate_canary_unselected"),
        }
    }

    fn flush(&self) {
        self.selected.values().for_each(Counter::flush);
        self.unselected.flush();
    }
}

struct Root {
    policies: Option<Arc<RoutePolicies<CanaryPolicy>>>,
    metrics: Option<Rc<Metrics>>,
    /// This VM's draws, shared by its streams (one VM is one thread).
    draws: Rc<Cell<Draws>>,
}

impl Root {
    fn new() -> Self {
        Root {
            policies: None,
            metrics: None,
            draws: Rc::new(Cell::new(Draws::new(random_seed()))),
        }
    }
}

/// A seed from WASI `random_get`, which Envoy provides (std's `RandomState`
/// would panic, killing the VM, if it failed). Should it fail, the clock: the
/// draws stay spread by weight, only less unpredictable.
fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    match abi::random_bytes(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(e) => {
            log::warn!("tollgate canary: random_get failed ({e:?}); seeding from the clock");
            abi::now_millis().unwrap_or_default()
        }
    }
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        if !config::reload(
            &mut self.policies,
            FilterKind::Canary.module(),
            CanaryPolicy::compile,
        ) {
            return false;
        }
        if let Some(old) = &self.metrics {
            old.flush();
        }
        self.metrics = self
            .policies
            .as_deref()
            .map(|p| Rc::new(Metrics::define(p)));
        true
    }

    fn on_tick(&mut self) {
        if let Some(m) = &self.metrics {
            m.flush();
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Never None: the SDK panics (killing the VM) when a root context refuses a stream.
        Some(Box::new(Stream {
            policies: self.policies.clone(),
            metrics: self.metrics.clone(),
            draws: Rc::clone(&self.draws),
            flow: flow::Stream::default(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream {
    policies: Option<Arc<RoutePolicies<CanaryPolicy>>>,
    metrics: Option<Rc<Metrics>>,
    draws: Rc<Cell<Draws>>,
    flow: flow::Stream,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let host = &mut WasmHost::default();
        let Some(policy) = RoutePolicies::for_stream(None, self.policies.as_deref(), host) else {
            return Action::Continue;
        };
        let mut draws = self.draws.get();
        let chosen = self.flow.on_request_headers(Some(policy), &mut draws, host);
        self.draws.set(draws);
        if let Some(m) = &self.metrics {
            match chosen {
                Some(Chosen::Backend(i)) => {
                    let name = &policy.backend_names()[i];
                    m.selected.get(name).inspect(|c| c.inc());
                }
                Some(Chosen::Nothing) => m.unselected.inc(),
                None => {}
            }
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        self.flow.on_response_headers(&mut WasmHost::default());
        Action::Continue
    }
}
