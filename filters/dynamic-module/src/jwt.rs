//! The JWT filter in the dynamic module: the core's flow
//! (`tollgate_core::jwt::flow`) over the process-wide key cache ([`KeyCache`]),
//! with verified-token caches per worker (a cache is touched on every request
//! with a token; one per worker keeps workers from waiting for each other),
//! and the wait for keys through the stream's scheduler.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tollgate_core::host::{Host, Metric};
use tollgate_core::jwt::cache::VerifiedCache;
use tollgate_core::jwt::flow::{self, Outcome};
use tollgate_core::jwt::policy::JwtPolicy;
use tollgate_core::route_policy::RoutePolicies;
use tollgate_core::ConfigError;

use crate::abi::FilterConfigEnvoyPtr;
use crate::host::StreamHost;
use crate::jwks::KeyCache;
use crate::metrics::{Counter, Definer};
use crate::scheduler::StreamScheduler;

/// Slots of per-worker verified-token caches (a worker beyond them shares
/// one, behind its lock).
const WORKER_SLOTS: usize = 64;

/// Numbers waiting streams (the scheduler event that wakes one).
static WAITERS: AtomicU64 = AtomicU64::new(1);

/// One worker's verified tokens, per policy, filled under one key generation.
#[derive(Default)]
struct WorkerCaches {
    generation: u64,
    by_policy: HashMap<usize, VerifiedCache>,
}

/// A `jwt_auth` filter config.
pub struct JwtFilter {
    pub policies: RoutePolicies<JwtPolicy>,
    pub keys: KeyCache,
    verified: Vec<Mutex<WorkerCaches>>,
    pub metrics: Vec<(Metric, Counter)>,
}

/// Compiles a policy and logs the keys of inline sets that were skipped.
pub fn compile(config: tollgate_core::jwt::config::JwtConfig) -> Result<JwtPolicy, ConfigError> {
    let policy = JwtPolicy::compile(config)?;
    for warning in &policy.warnings {
        log::warn!("tollgate jwt_auth: {warning}");
    }
    Ok(policy)
}

impl JwtFilter {
    pub fn new(policies: RoutePolicies<JwtPolicy>, metrics: &mut Definer) -> JwtFilter {
        JwtFilter {
            keys: KeyCache::new(&policies),
            policies,
            verified: (0..WORKER_SLOTS).map(|_| Mutex::default()).collect(),
            metrics: Metric::JWT
                .iter()
                .map(|&m| (m, metrics.counter(m.name(), None)))
                .collect(),
        }
    }

    /// Counts a JWKS fetch's outcome (main thread).
    ///
    /// # Safety
    /// `config` must be this config's live `filter_config_envoy_ptr`.
    pub unsafe fn count_fetch(&self, config: FilterConfigEnvoyPtr, ok: bool) {
        let metric = if ok {
            Metric::JwksFetchSuccess
        } else {
            Metric::JwksFetchFailure
        };
        if let Some((_, counter)) = self.metrics.iter().find(|(m, _)| *m == metric) {
            // SAFETY: per the caller.
            unsafe { counter.increment_from_config(config) };
        }
    }

    /// Decides for the stream's request under `policy`.
    fn decide(&self, policy: &Arc<JwtPolicy>, give_up: bool, host: &mut StreamHost) -> Outcome {
        let now = now_ms();
        let keys = self.keys.now(now);
        let slot = host.worker_index() as usize % WORKER_SLOTS;
        let Some(caches) = self.verified.get(slot) else {
            return flow::refuse_without_keys(host);
        };
        let mut caches = caches.lock().unwrap_or_else(PoisonError::into_inner);
        let generation = self.keys.generation();
        if caches.generation != generation {
            caches.by_policy.clear();
            caches.generation = generation;
        }
        let cache = caches
            .by_policy
            .entry(Arc::as_ptr(policy) as usize)
            .or_default();
        flow::decide(policy, &keys, cache, now, give_up, host)
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(u64::MAX, |d| {
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
        })
}

/// A request waiting for keys.
struct Waiting {
    id: u64,
    policy: Arc<JwtPolicy>,
    /// Milliseconds since the epoch after which it stops waiting.
    deadline: u64,
    /// Kept here too, so the last owner (and the delete) is this stream.
    _scheduler: Arc<StreamScheduler>,
}

/// One stream of the filter.
#[derive(Default)]
pub struct JwtStream {
    waiting: Option<Waiting>,
}

impl JwtStream {
    /// Whether the request goes on now.
    pub fn on_request_headers(
        &mut self,
        filter: &JwtFilter,
        policy: &Arc<JwtPolicy>,
        host: &mut StreamHost,
    ) -> bool {
        match filter.decide(policy, false, host) {
            Outcome::Continue => true,
            Outcome::Answered => false,
            Outcome::Wait => self.wait(filter, policy, host),
        }
    }

    /// Registers the wait, then decides once more: keys that arrived between
    /// the decision and the registration would wake nobody.
    fn wait(&mut self, filter: &JwtFilter, policy: &Arc<JwtPolicy>, host: &mut StreamHost) -> bool {
        // SAFETY: the running hook's filter pointer.
        let Some(scheduler) = (unsafe { StreamScheduler::new(host.filter()) }) else {
            log::warn!("tollgate jwt_auth: no scheduler from Envoy; deciding without waiting");
            return filter.decide(policy, true, host) == Outcome::Continue;
        };
        let scheduler = Arc::new(scheduler);
        let id = WAITERS.fetch_add(1, Ordering::Relaxed);
        filter.keys.wait(policy, id, &scheduler);
        self.waiting = Some(Waiting {
            id,
            policy: Arc::clone(policy),
            deadline: now_ms().saturating_add(flow::max_wait_ms(policy)),
            _scheduler: scheduler,
        });
        self.decide_again(filter, host)
    }

    /// Woken (keys arrived, or a fetch failed): decides again, resuming the
    /// request when it may go on.
    pub fn on_scheduled(&mut self, filter: &JwtFilter, event: u64, host: &mut StreamHost) {
        if self.waiting.as_ref().is_some_and(|w| w.id == event) && self.decide_again(filter, host) {
            host.continue_request();
        }
    }

    /// Decides for a waiting request; whether it goes on. Still waiting: it
    /// stays registered (once more, since a wake-up empties the lists).
    fn decide_again(&mut self, filter: &JwtFilter, host: &mut StreamHost) -> bool {
        let Some(w) = &self.waiting else {
            return false;
        };
        let give_up = now_ms() >= w.deadline;
        match filter.decide(&w.policy, give_up, host) {
            Outcome::Wait => {
                filter.keys.wait(&w.policy, w.id, &w._scheduler);
                false
            }
            outcome => {
                self.leave(filter);
                outcome == Outcome::Continue
            }
        }
    }

    pub fn holds_request(&self) -> bool {
        self.waiting.is_some()
    }

    /// Leaves the key cache's waiting lists (before the scheduler goes).
    pub fn leave(&mut self, filter: &JwtFilter) {
        if let Some(w) = self.waiting.take() {
            filter.keys.leave(w.id);
        }
    }
}
