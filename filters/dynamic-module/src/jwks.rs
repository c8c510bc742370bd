//! Remote JWKS in the dynamic module: one cache per filter config in process
//! memory, so every worker uses the same parsed keys and each key set is
//! fetched once for the whole Envoy (the wasm build parses a copy per worker).
//! The schedule (first fetch, refresh after `cacheDuration`, backoff, the
//! unknown-`kid` refetch) is `tollgate_core::jwt::jwks_cache`'s.
//!
//! Fetches are config-level HTTP callouts, which run on the main thread: a
//! worker that finds a fetch due (or a token with an unknown `kid`) marks it
//! wanted and commits the config's scheduler; the main thread starts it. A
//! ticker thread commits the same event every [`TICK`], so refreshes and
//! retries happen without traffic too (Envoy gives modules no timer). A
//! request that must wait for keys registers its stream's scheduler with each
//! key set it waits for; when a fetch ends, well or badly, the main thread
//! commits every waiter's scheduler under the set's lock, and the waiter
//! decides again on its own worker. A stream leaves the lists (under the same
//! locks) before its scheduler is deleted, so no commit reaches a deleted one.

#![allow(unsafe_code)] // config-level callouts through the declarations in `abi`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tollgate_core::jwt::authn::Keys;
use tollgate_core::jwt::flow::RemoteKeys;
use tollgate_core::jwt::jwks::Jwks;
use tollgate_core::jwt::jwks_cache::{accept_response, Availability, FetchState, Trigger};
use tollgate_core::jwt::policy::{JwtPolicy, KeySource, RemoteJwks};
use tollgate_core::route_policy::RoutePolicies;

use crate::abi::{self, FilterConfigEnvoyPtr, ModuleBuffer, ModuleHeader};
use crate::scheduler::{ConfigScheduler, StreamScheduler};

/// The one event the config scheduler carries: start the wanted and due fetches.
const START_FETCHES: u64 = 1;

/// How often the ticker looks for due fetches.
const TICK: Duration = Duration::from_millis(250);

/// The ticker thread's stop signal.
#[derive(Default)]
struct Ticker {
    stopped: Mutex<bool>,
    wake: Condvar,
}

/// Every remote key set a filter config names, deduplicated.
pub struct KeyCache {
    sources: Vec<Source>,
    /// Bumped whenever some set's keys change, so verified-token caches filled
    /// before are dropped (no cached token outlives the key it was verified with).
    generation: AtomicU64,
    /// Shared with the ticker thread; taken (and so deleted) at stop.
    scheduler: Arc<Mutex<Option<ConfigScheduler>>>,
    ticker: Mutex<Option<(Arc<Ticker>, JoinHandle<()>)>>,
}

struct Source {
    remote: RemoteJwks,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    fetch: FetchState,
    jwks: Option<Arc<Jwks>>,
    /// The body the keys came from, to tell a key change from a refresh.
    body: Vec<u8>,
    /// The main thread's fetch in flight.
    call: Option<u64>,
    /// Asked of the main thread, not started yet.
    wanted: Option<Trigger>,
    /// Streams waiting for this set, by waiter id.
    waiters: Vec<(u64, Arc<StreamScheduler>)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(u64::MAX, |d| {
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
        })
}

fn same_source(a: &RemoteJwks, b: &RemoteJwks) -> bool {
    a.cluster == b.cluster && a.uri == b.uri
}

impl KeyCache {
    pub fn new(policies: &RoutePolicies<JwtPolicy>) -> KeyCache {
        let mut sources: Vec<Source> = Vec::new();
        let remotes = policies
            .all()
            .flat_map(|p| &p.providers)
            .filter_map(|p| match &p.keys {
                KeySource::Remote(r) => Some(r),
                KeySource::Local(_) => None,
            });
        for remote in remotes {
            if !sources.iter().any(|s| same_source(&s.remote, remote)) {
                sources.push(Source {
                    remote: remote.clone(),
                    state: Mutex::default(),
                });
            }
        }
        KeyCache {
            sources,
            generation: AtomicU64::new(0),
            scheduler: Arc::default(),
            ticker: Mutex::new(None),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Gives the cache its config's scheduler and asks for the first fetches
    /// (they start once Envoy runs the main thread's event loop).
    ///
    /// # Safety
    /// `config` must be the `filter_config_envoy_ptr` of the config being made.
    pub unsafe fn start(&self, config: FilterConfigEnvoyPtr) {
        if self.is_empty() {
            return;
        }
        // SAFETY: per the caller.
        let Some(scheduler) = (unsafe { ConfigScheduler::new(config) }) else {
            log::warn!(
                "tollgate jwt_auth: no scheduler from Envoy; remote keys will not be fetched"
            );
            return;
        };
        for source in &self.sources {
            lock(&source.state).wanted = Some(Trigger::Scheduled);
        }
        scheduler.commit(START_FETCHES);
        *lock(&self.scheduler) = Some(scheduler);
        let ticker = Arc::new(Ticker::default());
        let (shared, stop) = (Arc::clone(&self.scheduler), Arc::clone(&ticker));
        let spawned = std::thread::Builder::new()
            .name("tollgate-jwks".into())
            .spawn(move || tick(&shared, &stop));
        match spawned {
            Ok(handle) => *lock(&self.ticker) = Some((ticker, handle)),
            Err(e) => log::warn!(
                "tollgate jwt_auth: no ticker thread ({e}); keys refresh only when requests come"
            ),
        }
    }

    /// The keys as one decision sees them now; a refresh that is due is asked
    /// for on the way.
    pub fn now(&self, now: u64) -> KeysNow<'_> {
        let mut ask = false;
        let sets = self
            .sources
            .iter()
            .map(|source| {
                let mut state = lock(&source.state);
                let due = state.fetch.next_fetch <= now && !state.fetch.fetching(now);
                if due && state.wanted.is_none() {
                    state.wanted = Some(Trigger::Scheduled);
                    ask = true;
                }
                Set {
                    jwks: state.jwks.clone(),
                    availability: state.fetch.availability(),
                    kid_refetch: state.fetch.kid_refetch_possible(now),
                }
            })
            .collect();
        if ask {
            self.ask_main_thread();
        }
        KeysNow { cache: self, sets }
    }

    fn index(&self, remote: &RemoteJwks) -> Option<usize> {
        self.sources
            .iter()
            .position(|s| same_source(&s.remote, remote))
    }

    fn ask_main_thread(&self) {
        if let Some(scheduler) = lock(&self.scheduler).as_ref() {
            scheduler.commit(START_FETCHES);
        }
    }

    /// A token named an unknown `kid` of set `i`: ask for a rotation fetch.
    fn want_refetch(&self, i: usize) {
        let Some(source) = self.sources.get(i) else {
            return;
        };
        let ask = {
            let mut state = lock(&source.state);
            let ask = state.wanted.is_none();
            state.wanted.get_or_insert(Trigger::UnknownKid);
            ask
        };
        if ask {
            self.ask_main_thread();
        }
    }

    /// Registers waiter `id` (its stream's scheduler) with every remote set
    /// `policy` uses whose keys are not ready.
    pub fn wait(&self, policy: &JwtPolicy, id: u64, scheduler: &Arc<StreamScheduler>) {
        for provider in &policy.providers {
            let KeySource::Remote(remote) = &provider.keys else {
                continue;
            };
            if let Some(source) = self.index(remote).and_then(|i| self.sources.get(i)) {
                let mut state = lock(&source.state);
                if !state.waiters.iter().any(|(w, _)| *w == id) {
                    state.waiters.push((id, Arc::clone(scheduler)));
                }
            }
        }
    }

    /// Removes waiter `id` everywhere (its stream decided, or is gone).
    pub fn leave(&self, id: u64) {
        for source in &self.sources {
            lock(&source.state).waiters.retain(|(w, _)| *w != id);
        }
    }

    /// Main thread: starts every wanted fetch that is due; how many failed to start.
    ///
    /// # Safety
    /// `config` must be the live config's `filter_config_envoy_ptr`, on the main thread.
    pub unsafe fn start_fetches(&self, config: FilterConfigEnvoyPtr) -> usize {
        let now = now_ms();
        let mut failed = 0;
        for source in &self.sources {
            let timeout = source.remote.timeout;
            let claimed = {
                let mut state = lock(&source.state);
                let due = state.fetch.next_fetch <= now && !state.fetch.fetching(now);
                let Some(trigger) = state.wanted.take().or(due.then_some(Trigger::Scheduled))
                else {
                    continue;
                };
                match state.fetch.claim(now, trigger, timeout) {
                    Some(next) => {
                        state.fetch = next;
                        true
                    }
                    None => false,
                }
            };
            if !claimed {
                continue;
            }
            // SAFETY: per the caller; not under the set's lock.
            match unsafe { send(config, &source.remote, timeout) } {
                Ok(id) => lock(&source.state).call = Some(id),
                Err(why) => {
                    log::warn!(
                        "tollgate jwt_auth: fetching {} from cluster {} failed to start ({why}; is the cluster defined?)",
                        source.remote.uri,
                        source.remote.cluster
                    );
                    let mut state = lock(&source.state);
                    state.fetch = state.fetch.failed(now_ms());
                    wake(&mut state);
                    failed += 1;
                }
            }
        }
        failed
    }

    /// Main thread: the answer to fetch `id`: its status, or None without a
    /// response, and body. True when it was one of ours and it succeeded.
    pub fn fetched(&self, id: u64, status: Option<&str>, body: &[u8]) -> Option<bool> {
        let source = self
            .sources
            .iter()
            .find(|s| lock(&s.state).call == Some(id))?;
        let now = now_ms();
        let mut state = lock(&source.state);
        state.call = None;
        let ok = match accept_response(status, body.len(), || Some(body.to_vec())) {
            Ok((jwks, skipped)) => {
                for why in skipped {
                    log::warn!(
                        "tollgate jwt_auth: {}: skipped key {why}",
                        source.remote.uri
                    );
                }
                state.fetch = state.fetch.succeeded(now, source.remote.cache_duration);
                if state.body != body {
                    state.body = body.to_vec();
                    state.jwks = Some(Arc::new(jwks));
                    self.generation.fetch_add(1, Ordering::AcqRel);
                }
                true
            }
            Err(why) => {
                log::warn!(
                    "tollgate jwt_auth: fetching {} failed: {why}; keeping the last good keys",
                    source.remote.uri
                );
                state.fetch = state.fetch.failed(now);
                false
            }
        };
        wake(&mut state);
        Some(ok)
    }

    /// Stops the ticker and drops the config's scheduler (config destroy,
    /// main thread).
    pub fn stop(&self) {
        lock(&self.scheduler).take();
        if let Some((ticker, handle)) = lock(&self.ticker).take() {
            *lock(&ticker.stopped) = true;
            ticker.wake.notify_all();
            if handle.join().is_err() {
                log::warn!("tollgate jwt_auth: the JWKS ticker thread panicked");
            }
        }
    }
}

/// The ticker thread: asks the main thread to look for due fetches every
/// [`TICK`] until stopped.
fn tick(scheduler: &Mutex<Option<ConfigScheduler>>, ticker: &Ticker) {
    let mut stopped = lock(&ticker.stopped);
    while !*stopped {
        stopped = match ticker.wake.wait_timeout(stopped, TICK) {
            Ok((guard, _)) => guard,
            Err(poisoned) => poisoned.into_inner().0,
        };
        if !*stopped {
            if let Some(s) = lock(scheduler).as_ref() {
                s.commit(START_FETCHES);
            }
        }
    }
}

/// Wakes every stream waiting for a set, under its lock.
fn wake(state: &mut State) {
    for (id, scheduler) in state.waiters.drain(..) {
        scheduler.commit(id);
    }
}

/// Starts one fetch of `remote`: the callout's id.
///
/// # Safety
/// `config` must be the live config's pointer, on the main thread.
unsafe fn send(
    config: FilterConfigEnvoyPtr,
    remote: &RemoteJwks,
    timeout: Duration,
) -> Result<u64, String> {
    let pairs = [
        (":method", "GET"),
        (":path", remote.path.as_str()),
        (":authority", remote.authority.as_str()),
        ("host", remote.authority.as_str()),
        ("accept", "application/json"),
    ];
    let mut headers = ModuleHeader::all(&pairs);
    let mut id = 0u64;
    // SAFETY: per the caller; the headers point into `pairs`, alive during the call.
    let result = unsafe {
        abi::envoy_dynamic_module_callback_http_filter_config_http_callout(
            config,
            &mut id,
            ModuleBuffer::of(remote.cluster.as_bytes()),
            headers.as_mut_ptr(),
            headers.len(),
            ModuleBuffer::of(b""),
            u64::try_from(timeout.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
        )
    };
    match result {
        abi::CALLOUT_SUCCESS => Ok(id),
        abi::CALLOUT_CLUSTER_NOT_FOUND => Err("no such cluster".into()),
        other => Err(format!("Envoy refused the callout (result {other})")),
    }
}

/// One set as a decision saw it.
struct Set {
    jwks: Option<Arc<Jwks>>,
    availability: Availability,
    kid_refetch: bool,
}

/// The remote keys for one decision.
pub struct KeysNow<'a> {
    cache: &'a KeyCache,
    sets: Vec<Set>,
}

impl RemoteKeys for KeysNow<'_> {
    fn keys(&self, remote: &RemoteJwks) -> Keys<'_> {
        let Some(set) = self.cache.index(remote).and_then(|i| self.sets.get(i)) else {
            return Keys::Unavailable;
        };
        match (&set.jwks, set.availability) {
            (Some(jwks), _) => Keys::Ready(jwks),
            (None, Availability::Unavailable) => Keys::Unavailable,
            (None, _) => Keys::Pending,
        }
    }

    fn refetch(&self, remote: &RemoteJwks, _now_ms: u64) -> bool {
        let Some(i) = self.cache.index(remote) else {
            return false;
        };
        let possible = self.sets.get(i).is_some_and(|s| s.kid_refetch);
        if possible {
            self.cache.want_refetch(i);
        }
        possible
    }
}
