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
use tollgate_core::headers::HeaderEditor;
use tollgate_core::jwt::authn::{authenticate, Allowed, Decision, Denial, KeyStore, Keys};
use tollgate_core::jwt::cache::VerifiedCache;
use tollgate_core::jwt::extract::{self, TokenSource};
use tollgate_core::jwt::policy::{JwtPolicy, KeySource};
use tollgate_core::route_policy::RoutePolicies;
use tollgate_host::headers::HostHeaders;
use tollgate_host::{abi, request};

use crate::keys::KeyRing;
use crate::metrics::Metrics;
use crate::request::RequestHeaders;

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

/// What became of the request.
pub enum Verdict {
    Continue,
    Answered,
    Wait,
}

/// Keys as one decision sees them; `give_up` (the wait is over) turns keys
/// still being fetched into unavailable ones.
struct View<'a> {
    policy: &'a JwtPolicy,
    ring: &'a KeyRing,
    now_ms: u64,
    give_up: bool,
}

impl KeyStore for View<'_> {
    fn keys(&self, provider: usize) -> Keys<'_> {
        match self.policy.providers.get(provider).map(|p| &p.keys) {
            Some(KeySource::Local(jwks)) => Keys::Ready(jwks),
            Some(KeySource::Remote(remote)) => match self.ring.keys(remote) {
                Keys::Pending if self.give_up => Keys::Unavailable,
                keys => keys,
            },
            None => Keys::Unavailable,
        }
    }

    fn refetch(&self, provider: usize) -> bool {
        match self.policy.providers.get(provider).map(|p| &p.keys) {
            Some(KeySource::Remote(remote)) if !self.give_up => {
                self.ring.refetch(remote, self.now_ms)
            }
            _ => false,
        }
    }
}

/// Decides for the effective context's request and acts on the decision.
pub fn decide(policy: &Arc<JwtPolicy>, shared: &Shared, now_ms: u64, give_up: bool) -> Verdict {
    let mut req = RequestHeaders::fetch();
    let decision = {
        let (Ok(ring), Ok(mut caches)) = (shared.ring.try_borrow(), shared.caches.try_borrow_mut())
        else {
            // Only reachable by re-entrance, which the host does not do here;
            // refuse rather than guess.
            log::warn!("tollgate jwt_auth: key state busy; refusing the request");
            return deny(&req, &Denial::KeysUnavailable, &shared.metrics);
        };
        let view = View {
            policy,
            ring: &ring,
            now_ms,
            give_up,
        };
        let cache = caches.entry(Arc::as_ptr(policy) as usize).or_default();
        authenticate(policy, &mut req, &view, cache, now_ms / 1000)
    };
    match decision {
        Decision::Allow(allowed) => {
            remove_claim_headers(policy, &req, &allowed.claim_headers);
            apply(&allowed, &mut req);
            shared.metrics.allowed.inc();
            Verdict::Continue
        }
        Decision::PassWithoutToken | Decision::PassFailOpen => {
            remove_claim_headers(policy, &req, &[]);
            shared.metrics.passed.inc();
            Verdict::Continue
        }
        Decision::Wait => Verdict::Wait,
        Decision::Deny(denial) => deny(&req, &denial, &shared.metrics),
    }
}

fn deny(req: &RequestHeaders, denial: &Denial, metrics: &Metrics) -> Verdict {
    metrics.denied(denial);
    let challenge = denial.challenge(&req.url());
    let headers = [
        ("www-authenticate", challenge.as_str()),
        ("content-type", "text/plain"),
    ];
    if let Err(e) = abi::send_local_response(
        denial.http_status(),
        &headers,
        &denial.message(),
        denial.grpc_status(),
    ) {
        log::warn!(
            "tollgate jwt_auth: sending the {} response failed: {e:?}",
            denial.http_status()
        );
    }
    Verdict::Answered
}

/// Client-sent headers named like claim headers are dropped whatever the outcome:
/// only this filter may set them (no spoofing of e.g. `x-user-id` for the rate limiter).
/// Only names the request carries and that are not about to be `set` (which replaces
/// every value) cost a host call: each request-header edit is a host call and a
/// route-cache clear.
fn remove_claim_headers(policy: &JwtPolicy, req: &RequestHeaders, setting: &[(String, String)]) {
    let mut headers = HostHeaders::request();
    for rule in policy.providers.iter().flat_map(|p| &p.claim_to_headers) {
        let sent = req.first(&rule.header).is_some();
        if sent && !setting.iter().any(|(name, _)| *name == rule.header) {
            headers.remove(&rule.header);
        }
    }
}

/// Sets the claim headers, removes the token unless forwarded, and re-selects the
/// route when the provider asks for it.
fn apply(allowed: &Allowed, req: &mut RequestHeaders) {
    let mut headers = HostHeaders::request();
    for (name, value) in &allowed.claim_headers {
        headers.set(name, value);
    }
    match &allowed.strip {
        None => {}
        Some(TokenSource::Header { name, .. }) => headers.remove(name),
        Some(TokenSource::Param(name)) => {
            if let Some(path) = req.first(":path") {
                headers.set(":path", &extract::strip_param(path, name));
            }
        }
        Some(TokenSource::Cookie(name)) => {
            use tollgate_core::jwt::extract::TokenCarrier as _;
            let cookies = req.header_values("cookie").join("; ");
            match extract::strip_cookie(&cookies, name) {
                Some(rest) => headers.set("cookie", &rest),
                None => headers.remove("cookie"),
            }
        }
    }
    if allowed.recompute_route {
        request::clear_route_cache();
    }
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
            Verdict::Continue => Action::Continue,
            Verdict::Answered => {
                self.hold.set(Hold::Answered);
                Action::Pause
            }
            Verdict::Wait => {
                self.hold.set(Hold::Waiting);
                let wait = max_wait(policy);
                let Ok(mut waiters) = self.shared.waiters.try_borrow_mut() else {
                    return match decide(policy, &self.shared, now, true) {
                        Verdict::Continue => Action::Continue,
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

/// How long a request of `policy` may wait for keys: its longest fetch timeout.
fn max_wait(policy: &JwtPolicy) -> u64 {
    policy
        .providers
        .iter()
        .filter_map(|p| match &p.keys {
            KeySource::Remote(r) => u64::try_from(r.timeout.as_millis()).ok(),
            KeySource::Local(_) => None,
        })
        .max()
        .unwrap_or(0)
}
