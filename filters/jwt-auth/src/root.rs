//! The worker's root context: configuration, the JWKS fetch schedule, and the
//! requests waiting for keys.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;
use tollgate_core::catalogue::FilterKind;
use tollgate_core::jwt::config::JwtConfig;
use tollgate_core::jwt::policy::JwtPolicy;
use tollgate_core::route_policy::RoutePolicies;
use tollgate_core::ConfigError;
use tollgate_host::{abi, config};

use crate::keys::{Fetched, KeyRing};
use tollgate_core::host::Metric;
use tollgate_core::jwt::flow::Outcome;
use tollgate_host::metrics::Metrics;

use crate::stream::{decide, now_millis, Hold, Shared, Stream};

/// Tick period while remote key sets are configured: how soon a worker sees keys
/// another worker fetched, starts a due fetch, and times out a waiting request.
const KEYS_TICK_MILLIS: u32 = 100;

pub struct Root {
    context_id: u32,
    policies: Option<Arc<RoutePolicies<JwtPolicy>>>,
    shared: Rc<Shared>,
}

impl Root {
    pub fn new(context_id: u32) -> Self {
        Root {
            context_id,
            policies: None,
            shared: Rc::new(Shared {
                ring: RefCell::new(KeyRing::default()),
                caches: RefCell::default(),
                waiters: RefCell::default(),
                metrics: Metrics::define(&Metric::JWT),
            }),
        }
    }

    /// Drops cached verifications when keys changed, then starts due fetches.
    fn refresh_keys(&self, now: u64) {
        let Ok(mut ring) = self.shared.ring.try_borrow_mut() else {
            return;
        };
        if ring.sync() {
            self.shared.forget_verified();
        }
        ring.start_fetches(now, &self.shared.metrics);
    }

    /// Decides again for every waiting request: keys may have arrived, or its wait
    /// may be over. Each is made the effective context in turn.
    fn wake_waiters(&self, now: u64) {
        let Ok(mut queue) = self.shared.waiters.try_borrow_mut() else {
            return;
        };
        let waiting = std::mem::take(&mut *queue);
        drop(queue);
        if waiting.is_empty() {
            return;
        }
        let mut still = Vec::new();
        for waiter in waiting {
            if abi::set_effective_context(waiter.context_id).is_err() {
                continue; // the request is gone
            }
            match decide(&waiter.policy, &self.shared, now, now >= waiter.deadline) {
                Outcome::Wait => still.push(waiter),
                Outcome::Answered => waiter.hold.set(Hold::Answered),
                Outcome::Continue => {
                    waiter.hold.set(Hold::Free);
                    if let Err(e) = abi::continue_request() {
                        log::warn!("tollgate jwt_auth: resuming a request failed: {e:?}");
                    }
                }
            }
        }
        if let Err(e) = abi::set_effective_context(self.context_id) {
            log::warn!("tollgate jwt_auth: returning to the root context failed: {e:?}");
        }
        match self.shared.waiters.try_borrow_mut() {
            Ok(mut queue) => queue.extend(still),
            // Unreachable without re-entrance; the requests then wait for the
            // host's own stream timeout rather than being let through.
            Err(_) => log::warn!(
                "tollgate jwt_auth: lost track of {} waiting requests",
                still.len()
            ),
        }
    }
}

/// Compiles a policy and logs the keys of inline sets that were skipped.
fn compile(config: JwtConfig) -> Result<JwtPolicy, ConfigError> {
    let policy = JwtPolicy::compile(config)?;
    for warning in &policy.warnings {
        log::warn!("tollgate jwt_auth: {warning}");
    }
    Ok(policy)
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let now = now_millis();
        let fetched = match self.shared.ring.try_borrow_mut() {
            Ok(mut ring) => ring.on_response(token, body_size, now, &self.shared.metrics),
            Err(_) => return,
        };
        match fetched {
            Fetched::Unknown => {}
            Fetched::Keys(changed) => {
                if changed {
                    self.shared.forget_verified();
                }
                self.wake_waiters(now);
            }
            Fetched::Failed => self.wake_waiters(now),
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        if !config::reload(&mut self.policies, FilterKind::Jwt.module(), compile) {
            return false;
        }
        let Some(policies) = &self.policies else {
            return false;
        };
        let ring = KeyRing::new(policies);
        let remote = !ring.is_empty();
        ring.create_shared_state();
        match self.shared.ring.try_borrow_mut() {
            Ok(mut slot) => *slot = ring,
            Err(_) => return false,
        }
        self.shared.forget_verified();
        if remote {
            if let Err(e) = abi::set_tick_period_millis(KEYS_TICK_MILLIS) {
                log::warn!("tollgate jwt_auth: set_tick_period failed ({e:?}); remote keys will not refresh");
            }
            // Keys other workers (or an earlier configuration) fetched are used at
            // once; fetching waits for the first tick: Envoy may configure a
            // throwaway copy of the plugin first, and its fetch would be lost.
            if let Ok(mut ring) = self.shared.ring.try_borrow_mut() {
                ring.sync();
            }
        }
        true
    }

    fn on_tick(&mut self) {
        self.shared.metrics.flush();
        let now = now_millis();
        if self.shared.ring.try_borrow().is_ok_and(|r| !r.is_empty()) {
            self.refresh_keys(now);
        }
        self.wake_waiters(now);
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Never None: the SDK panics (killing the VM) when a root context refuses a stream.
        Some(Box::new(Stream {
            context_id,
            policies: self.policies.clone(),
            shared: Rc::clone(&self.shared),
            hold: Rc::new(Cell::new(Hold::Free)),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
