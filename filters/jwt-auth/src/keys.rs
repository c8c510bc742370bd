//! Remote JWKS: this worker's view of each key set, kept in step with the other
//! workers through proxy-wasm shared data.
//!
//! Per source (cluster + URI) two shared-data entries exist: `…|state`, the
//! [`FetchState`] every worker reads and compare-and-swaps, and `…|body`, the last
//! good JWKS document. The worker that wins the swap fetches (from its root
//! context, so the response comes back to a context that outlives any request);
//! the others notice the new version on their next tick and parse the body
//! themselves (parsed keys cannot cross VMs). The schedule itself is
//! `tollgate_core::jwt::jwks_cache`.

use std::cell::Cell;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MapType;
use tollgate_core::jwt::authn::Keys;
use tollgate_core::jwt::jwks::Jwks;
use tollgate_core::jwt::jwks_cache::{accept_response, Availability, FetchState, Trigger};
use tollgate_core::jwt::policy::{JwtPolicy, KeySource, RemoteJwks};
use tollgate_core::route_policy::RoutePolicies;
use tollgate_host::abi::{self, CAS_MISMATCH};

use tollgate_core::host::Metric;
use tollgate_core::jwt::flow::RemoteKeys;
use tollgate_host::metrics::Metrics;

/// Attempts at a compare-and-swap before giving up until the next tick.
const CAS_ATTEMPTS: usize = 4;

struct Source {
    remote: RemoteJwks,
    state_key: String,
    body_key: String,
    /// The shared state as this worker last read or wrote it.
    state: FetchState,
    /// Keys parsed from the body of `version`.
    jwks: Option<Rc<Jwks>>,
    version: u64,
    /// The body the keys came from, to tell a real key change from a refresh.
    body: Vec<u8>,
    /// A request met an unknown `kid`; the next tick tries a rotation fetch.
    refetch_wanted: Cell<bool>,
    /// This worker's fetch in flight.
    call: Option<u32>,
}

/// Every remote key set the configuration names, deduplicated.
#[derive(Default)]
pub struct KeyRing {
    sources: Vec<Source>,
}

/// What a fetch response did.
pub enum Fetched {
    /// Not one of ours.
    Unknown,
    /// New keys (true when they differ from the previous ones).
    Keys(bool),
    Failed,
}

impl KeyRing {
    pub fn new(policies: &RoutePolicies<JwtPolicy>) -> KeyRing {
        let mut sources: Vec<Source> = Vec::new();
        let remotes = policies
            .all()
            .flat_map(|p| &p.providers)
            .filter_map(|p| match &p.keys {
                KeySource::Remote(r) => Some(r),
                KeySource::Local(_) => None,
            });
        for remote in remotes {
            if sources.iter().any(|s| same_source(&s.remote, remote)) {
                continue;
            }
            let id = format!("tollgate.jwt_auth.jwks|{}|{}", remote.cluster, remote.uri);
            sources.push(Source {
                remote: remote.clone(),
                state_key: format!("{id}|state"),
                body_key: format!("{id}|body"),
                state: FetchState::default(),
                jwks: None,
                version: 0,
                body: Vec::new(),
                refetch_wanted: Cell::new(false),
                call: None,
            });
        }
        KeyRing { sources }
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    fn source(&self, remote: &RemoteJwks) -> Option<&Source> {
        self.sources.iter().find(|s| same_source(&s.remote, remote))
    }

    /// Creates the shared state of sources that have none. Envoy configures the
    /// main thread's plugin before posting to the workers, so this runs alone
    /// there, and the workers' compare-and-swaps then all race on an existing
    /// entry (a write to a missing entry cannot be compared-and-swapped).
    pub fn create_shared_state(&self) {
        for source in &self.sources {
            if let Ok((None, _)) = abi::get_shared_data(&source.state_key) {
                if let Err(e) =
                    abi::set_shared_data(&source.state_key, &FetchState::default().encode(), 0)
                {
                    log::warn!("tollgate jwt_auth: creating shared JWKS state failed: {e:?}");
                }
            }
        }
    }

    /// Reads every source's shared state and re-parses bodies of new versions.
    /// Returns true when some key set changed its content.
    pub fn sync(&mut self) -> bool {
        let mut changed = false;
        for source in &mut self.sources {
            let Ok((bytes, _)) = abi::get_shared_data(&source.state_key) else {
                continue;
            };
            source.state = FetchState::decode(bytes.as_deref());
            if source.state.version == source.version {
                continue;
            }
            match abi::get_shared_data(&source.body_key) {
                Ok((Some(body), _)) => changed |= source.adopt(body, source.state.version),
                Ok((None, _)) => {}
                Err(e) => log::warn!("tollgate jwt_auth: reading shared JWKS failed: {e:?}"),
            }
        }
        changed
    }

    /// Starts the fetches that are due and that this worker wins.
    pub fn start_fetches(&mut self, now: u64, metrics: &Metrics) {
        for source in &mut self.sources {
            if source.call.is_some() {
                continue;
            }
            let trigger = if source.refetch_wanted.replace(false) {
                Trigger::UnknownKid
            } else {
                Trigger::Scheduled
            };
            let timeout = source.remote.timeout;
            let claimed = source.update_state(|s| s.claim(now, trigger, timeout));
            if !claimed {
                continue;
            }
            let headers = [
                (":method", "GET"),
                (":path", source.remote.path.as_str()),
                (":authority", source.remote.authority.as_str()),
                ("accept", "application/json"),
            ];
            // The SDK's call (not ours in `abi`): it records which context a
            // response belongs to. Its only panic is on a status the ABI does
            // not define.
            match hostcalls::dispatch_http_call(
                &source.remote.cluster,
                headers.to_vec(),
                None,
                vec![],
                timeout,
            ) {
                Ok(token) => source.call = Some(token),
                Err(status) => {
                    log::warn!(
                        "tollgate jwt_auth: fetching {} from cluster {} failed to start ({status:?}; is the cluster defined?)",
                        source.remote.uri,
                        source.remote.cluster
                    );
                    metrics.count(Metric::JwksFetchFailure);
                    source.update_state(|s| Some(s.failed(now)));
                }
            }
        }
    }

    /// Handles the response to one of this worker's fetches.
    pub fn on_response(
        &mut self,
        token: u32,
        body_size: usize,
        now: u64,
        metrics: &Metrics,
    ) -> Fetched {
        let Some(source) = self.sources.iter_mut().find(|s| s.call == Some(token)) else {
            return Fetched::Unknown;
        };
        source.call = None;
        let status = abi::get_header(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten();
        let mut body = None;
        let checked = accept_response(status.as_deref(), body_size, || {
            body = abi::http_call_response_body(body_size).ok().flatten();
            body.clone()
        });
        match (checked, body) {
            (Ok((_, skipped)), Some(body)) => {
                for why in skipped {
                    log::warn!(
                        "tollgate jwt_auth: {}: skipped key {why}",
                        source.remote.uri
                    );
                }
                if let Err(e) = abi::set_shared_data(&source.body_key, &body, 0) {
                    log::warn!("tollgate jwt_auth: storing the JWKS failed: {e:?}");
                }
                let cache_duration = source.remote.cache_duration;
                source.update_state(|s| Some(s.succeeded(now, cache_duration)));
                metrics.count(Metric::JwksFetchSuccess);
                let version = source.state.version;
                Fetched::Keys(source.adopt(body, version))
            }
            (result, _) => {
                let why = result.err().unwrap_or_else(|| "empty body".into());
                log::warn!(
                    "tollgate jwt_auth: fetching {} failed: {why}; keeping the last good keys",
                    source.remote.uri
                );
                metrics.count(Metric::JwksFetchFailure);
                source.update_state(|s| Some(s.failed(now)));
                Fetched::Failed
            }
        }
    }
}

impl Source {
    /// Applies `change` to the shared state with compare-and-swap; keeps what it
    /// read or wrote in `self.state`. True when the change was written.
    fn update_state(&mut self, change: impl Fn(&FetchState) -> Option<FetchState>) -> bool {
        for _ in 0..CAS_ATTEMPTS {
            let Ok((bytes, cas)) = abi::get_shared_data(&self.state_key) else {
                return false;
            };
            self.state = FetchState::decode(bytes.as_deref());
            let Some(next) = change(&self.state) else {
                return false;
            };
            match abi::set_shared_data(&self.state_key, &next.encode(), cas) {
                Ok(()) => {
                    self.state = next;
                    return true;
                }
                Err(CAS_MISMATCH) => continue,
                Err(e) => {
                    log::warn!("tollgate jwt_auth: writing shared JWKS state failed: {e:?}");
                    return false;
                }
            }
        }
        false
    }

    /// Parses `body` as the keys of `version`; true when the key set differs
    /// from the one it replaces (cached verifications must then be dropped).
    fn adopt(&mut self, body: Vec<u8>, version: u64) -> bool {
        self.version = version;
        if body == self.body && self.jwks.is_some() {
            return false;
        }
        let parsed = std::str::from_utf8(&body)
            .map_err(|_| "not UTF-8".to_string())
            .and_then(tollgate_core::jwt::jwks::parse);
        match parsed {
            Ok((jwks, _)) => {
                self.jwks = Some(Rc::new(jwks));
                self.body = body;
                true
            }
            Err(why) => {
                log::warn!(
                    "tollgate jwt_auth: shared JWKS for {} is unusable: {why}",
                    self.remote.uri
                );
                false
            }
        }
    }
}

impl RemoteKeys for KeyRing {
    /// The keys a request can use now.
    fn keys(&self, remote: &RemoteJwks) -> Keys<'_> {
        let Some(source) = self.source(remote) else {
            return Keys::Unavailable;
        };
        match (&source.jwks, source.state.availability()) {
            (Some(jwks), _) => Keys::Ready(jwks),
            (None, Availability::Unavailable) => Keys::Unavailable,
            // Pending, or fetched by another worker and not parsed here yet.
            (None, _) => Keys::Pending,
        }
    }

    /// A request met an unknown `kid`: true when newer keys may come (a fetch is
    /// under way, or one may start), in which case the next tick starts it.
    fn refetch(&self, remote: &RemoteJwks, now: u64) -> bool {
        let Some(source) = self.source(remote) else {
            return false;
        };
        let possible = source.state.kid_refetch_possible(now);
        if possible {
            source.refetch_wanted.set(true);
        }
        possible
    }
}

fn same_source(a: &RemoteJwks, b: &RemoteJwks) -> bool {
    a.cluster == b.cluster && a.uri == b.uri
}
