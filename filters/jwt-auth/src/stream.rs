//! One request: the decision, and what it does to the request.
//!
//! The decision runs in the request's own callback, or — for a request that had
//! to wait for keys — from the root context with the request as the effective
//! context; the host calls here act on whichever context is effective.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use tollgate_core::jwt::cache::VerifiedCache;
use tollgate_core::jwt::flow::{self, Outcome};
use tollgate_core::jwt::policy::JwtPolicy;
use tollgate_core::route_policy::RoutePolicies;
use tollgate_host::metrics::Metrics;
use tollgate_host::stream_host::WasmHost;
use tollgate_host::{abi, request};

use crate::keys::KeyRing;

/// State one worker's root context shares with its requests (one VM is one
/// thread; nothing here is held across a host call that could re-enter).
pub struct Shared {
    pub ring: RefCell<KeyRing>,
    /// Verified-token caches, one per compiled policy (keyed by its address,
    /// stable while the configuration lives). Cleared when any key set changes,
    /// so no cached token outlives the key it was verified with.
    pub caches: RefCell<HashMap<usize, VerifiedCache>>,
    pub waiters: RefCell<Vec<Waiter>>,
    pub metrics: Metrics,
}

impl Shared {
    /// Drops every cached verification (keys changed).
    pub fn forget_verified(&self) {
        if let Ok(mut caches) = self.caches.try_borrow_mut() {
            caches.clear();
        }
    }
}

/// A request paused until its provider's keys arrive.
pub struct Waiter {
    pub context_id: u32,
    pub policy: Arc<JwtPolicy>,
    /// Milliseconds since the epoch after which the request stops waiting.
    pub deadline: u64,
    pub hold: Rc<Cell<Hold>>,
}

/// Whether a request's later callbacks (body, trailers) must stay stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    Free,
    /// Waiting for keys: the body must not slip past an undecided request.
    Waiting,
    /// Answered locally.
    Answered,
}

/// Decides for the effective context's request and acts on the decision
/// (`tollgate_core::jwt::flow`).
pub fn decide(policy: &Arc<JwtPolicy>, shared: &Shared, now_ms: u64, give_up: bool) -> Outcome {
    let mut host = WasmHost::counting(&shared.metrics);
    let (Ok(ring), Ok(mut caches)) = (shared.ring.try_borrow(), shared.caches.try_borrow_mut())
    else {
        // Only reachable by re-entrance, which the host does not do here;
        // refuse rather than guess.
        log::warn!("tollgate jwt_auth: key state busy; refusing the request");
        return flow::refuse_without_keys(&mut host);
    };
    let cache = caches.entry(Arc::as_ptr(policy) as usize).or_default();
    flow::decide(policy, &*ring, cache, now_ms, give_up, &mut host)
}

/// The time decisions use; without a clock, fail closed (every token with an
/// `exp` counts as expired, and waits end at once).
pub fn now_millis() -> u64 {
    abi::now_millis().unwrap_or_else(|e| {
        log::warn!("tollgate jwt_auth: reading the clock failed: {e:?}");
        u64::MAX
    })
}

pub struct Stream {
    pub context_id: u32,
    pub policies: Option<Arc<RoutePolicies<JwtPolicy>>>,
    pub shared: Rc<Shared>,
    pub hold: Rc<Cell<Hold>>,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let Some(policy) = request::policy(&self.policies) else {
            return Action::Continue;
        };
        let now = now_millis();
        match decide(policy, &self.shared, now, false) {
            Outcome::Continue => Action::Continue,
            Outcome::Answered => {
                self.hold.set(Hold::Answered);
                Action::Pause
            }
            Outcome::Wait => {
                self.hold.set(Hold::Waiting);
                let wait = flow::max_wait_ms(policy);
                let Ok(mut waiters) = self.shared.waiters.try_borrow_mut() else {
                    return match decide(policy, &self.shared, now, true) {
                        Outcome::Continue => Action::Continue,
                        _ => Action::Pause,
                    };
                };
                waiters.push(Waiter {
                    context_id: self.context_id,
                    policy: Arc::clone(policy),
                    deadline: now.saturating_add(wait),
                    hold: Rc::clone(&self.hold),
                });
                Action::Pause
            }
        }
    }

    fn on_http_request_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        // Continuing a body while the headers wait would let the request through.
        match self.hold.get() {
            Hold::Free => Action::Continue,
            Hold::Waiting | Hold::Answered => Action::Pause,
        }
    }

    fn on_http_request_trailers(&mut self, _trailers: usize) -> Action {
        self.on_http_request_body(0, true)
    }
}

impl Drop for Stream {
    /// A request that ends while waiting (client gone) leaves the queue.
    fn drop(&mut self) {
        if self.hold.get() == Hold::Waiting {
            if let Ok(mut waiters) = self.shared.waiters.try_borrow_mut() {
                waiters.retain(|w| w.context_id != self.context_id);
            }
        }
    }
}
