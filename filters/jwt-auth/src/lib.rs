//! `jwt_auth.wasm`: JWT authentication with Envoy Gateway's `SecurityPolicy.jwt`
//! semantics. Decisions are `tollgate_core::jwt`; this crate reads the request,
//! applies the decision and answers refusals.
//!
//! This build verifies against inline JWKS (`localJWKS`); a config with
//! `remoteJWKS` is refused at configure time until the JWKS fetcher lands.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType};
use tollgate_core::headers::HeaderEditor;
use tollgate_core::jwt::authn::{authenticate, Allowed, Decision, Denial, KeyStore, Keys};
use tollgate_core::jwt::cache::VerifiedCache;
use tollgate_core::jwt::config::JwtConfig;
use tollgate_core::jwt::extract::{self, TokenCarrier, TokenSource};
use tollgate_core::jwt::policy::{JwtPolicy, KeySource};
use tollgate_core::route_policy::RoutePolicies;
use tollgate_core::ConfigError;
use tollgate_host::headers::HostHeaders;
use tollgate_host::metrics::Counter;
use tollgate_host::{abi, config, request};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| Box::new(Root::new()));
}}

const DENIALS: [&str; 7] = [
    "missing",
    "malformed",
    "bad_signature",
    "expired",
    "bad_issuer",
    "bad_audience",
    "keys_unavailable",
];

#[derive(Clone)]
struct Metrics {
    allowed: Counter,
    /// Requests let through without a valid token (`optional`, `failOpen`).
    passed: Counter,
    /// One per entry of [`DENIALS`].
    denied: Vec<Counter>,
}

impl Metrics {
    fn new() -> Self {
        Metrics {
            allowed: Counter::define("tollgate_jwt_auth_allowed"),
            passed: Counter::define("tollgate_jwt_auth_passed_without_token"),
            denied: DENIALS
                .iter()
                .map(|r| Counter::define(&format!("tollgate_jwt_auth_denied_{r}")))
                .collect(),
        }
    }

    fn denied(&self, denial: &Denial) {
        if let Some(i) = DENIALS.iter().position(|r| *r == denial.reason()) {
            if let Some(c) = self.denied.get(i) {
                c.inc();
            }
        }
    }

    fn flush(&self) {
        self.allowed.flush();
        self.passed.flush();
        self.denied.iter().for_each(Counter::flush);
    }
}

/// Verified-token caches of this worker's VM, one per compiled policy (keyed by its
/// address, which is stable while the configuration lives; a new configuration
/// starts with no caches, so no token outlives the keys it was verified with).
type Caches = Rc<RefCell<HashMap<usize, VerifiedCache>>>;

struct Root {
    policies: Option<Arc<RoutePolicies<JwtPolicy>>>,
    metrics: Metrics,
    caches: Caches,
}

impl Root {
    fn new() -> Self {
        Root {
            policies: None,
            metrics: Metrics::new(),
            caches: Caches::default(),
        }
    }
}

/// Compiles a policy and logs what was skipped; refuses `remoteJWKS` for now.
fn compile(config: JwtConfig) -> Result<JwtPolicy, ConfigError> {
    let policy = JwtPolicy::compile(config)?;
    if let Some(i) = policy
        .providers
        .iter()
        .position(|p| matches!(p.keys, KeySource::Remote(_)))
    {
        return Err(ConfigError::new(
            format!("providers[{i}].remoteJWKS"),
            "remoteJWKS is not supported by this build yet; give the keys inline with localJWKS",
        ));
    }
    for warning in &policy.warnings {
        log::warn!("tollgate jwt_auth: {warning}");
    }
    Ok(policy)
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        if !config::reload(&mut self.policies, "jwt_auth", compile) {
            return false;
        }
        self.caches.borrow_mut().clear();
        true
    }

    fn on_tick(&mut self) {
        self.metrics.flush();
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Never None: the SDK panics (killing the VM) when a root context refuses a stream.
        Some(Box::new(Stream {
            policies: self.policies.clone(),
            metrics: self.metrics.clone(),
            caches: Rc::clone(&self.caches),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream {
    policies: Option<Arc<RoutePolicies<JwtPolicy>>>,
    metrics: Metrics,
    caches: Caches,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let Some(policy) = self
            .policies
            .as_ref()
            .and_then(|p| p.select(request::route_name))
        else {
            return Action::Continue;
        };
        let mut req = RequestHeaders::fetch();
        // Fail closed: without a clock every token with an `exp` counts as expired.
        let now = abi::now_seconds().unwrap_or_else(|e| {
            log::warn!("tollgate jwt_auth: reading the clock failed: {e:?}");
            u64::MAX
        });
        let decision = {
            // The VM is single-threaded and nothing below re-enters; a busy borrow
            // would only cost the cache, never the request.
            let mut spare = VerifiedCache::with_capacity(1);
            let mut caches = self.caches.try_borrow_mut();
            let cache = match caches.as_mut() {
                Ok(map) => map.entry(Arc::as_ptr(policy) as usize).or_default(),
                Err(_) => &mut spare,
            };
            authenticate(policy, &mut req, &InlineKeys(policy), cache, now)
        };
        match decision {
            Decision::Allow(allowed) => {
                remove_claim_headers(policy, &req, &allowed.claim_headers);
                apply(&allowed, &mut req);
                self.metrics.allowed.inc();
                Action::Continue
            }
            Decision::PassWithoutToken | Decision::PassFailOpen => {
                remove_claim_headers(policy, &req, &[]);
                self.metrics.passed.inc();
                Action::Continue
            }
            // Inline keys are always ready; a remote provider is refused at configure time.
            Decision::Wait => self.deny(&req, &Denial::KeysUnavailable),
            Decision::Deny(denial) => self.deny(&req, &denial),
        }
    }
}

impl Stream {
    fn deny(&self, req: &RequestHeaders, denial: &Denial) -> Action {
        self.metrics.denied(denial);
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
        Action::Pause
    }
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
            if let Some(path) = req.path() {
                headers.set(":path", &extract::strip_param(&path, name));
            }
        }
        Some(TokenSource::Cookie(name)) => {
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

/// Keys for each provider: inline sets only (see the crate docs).
struct InlineKeys<'a>(&'a JwtPolicy);

impl KeyStore for InlineKeys<'_> {
    fn keys(&self, provider: usize) -> Keys<'_> {
        match self.0.providers.get(provider).map(|p| &p.keys) {
            Some(KeySource::Local(jwks)) => Keys::Ready(jwks),
            _ => Keys::Unavailable,
        }
    }
}

/// The request headers, read once (one host call) for every source lookup.
struct RequestHeaders(Vec<(String, String)>);

impl RequestHeaders {
    fn fetch() -> Self {
        RequestHeaders(
            abi::get_headers(MapType::HttpRequestHeaders).unwrap_or_else(|e| {
                log::warn!("tollgate jwt_auth: reading request headers failed: {e:?}");
                Vec::new()
            }),
        )
    }

    fn first(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The request URL without its query, for the `WWW-Authenticate` realm.
    fn url(&self) -> String {
        let scheme = self.first(":scheme").unwrap_or("http");
        let authority = self.first(":authority").unwrap_or_default();
        let path = self.first(":path").unwrap_or("/");
        let path = path.split(['?', '#']).next().unwrap_or("/");
        format!("{scheme}://{authority}{path}")
    }
}

impl TokenCarrier for RequestHeaders {
    fn header_values(&mut self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn path(&mut self) -> Option<String> {
        self.first(":path").map(str::to_string)
    }
}
