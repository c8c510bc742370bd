//! The JWT filter's request path, for every runtime: read the request once,
//! decide ([`authenticate`]), and act on the decision through the [`Host`]:
//! claim headers set (and client-sent ones of those names removed whatever the
//! outcome, so nobody can spoof e.g. `x-user-id` for the rate limiter), the
//! token stripped unless forwarded, the route re-selected only when the
//! provider asks (`recomputeRoute`), and a refusal answered with its status,
//! `WWW-Authenticate` challenge and gRPC status.
//!
//! Where keys come from is the runtime's: local sets are in the policy, remote
//! ones behind [`RemoteKeys`] (proxy-wasm shared data per worker; process
//! memory in the dynamic module). A request whose keys are still being fetched
//! waits ([`Outcome::Wait`]); the runtime wakes it and decides again, with
//! `give_up` once its wait is over.

use super::authn::{authenticate, Allowed, Decision, Denial, KeyStore, Keys};
use super::cache::VerifiedCache;
use super::extract::{self, TokenCarrier, TokenSource};
use super::policy::{JwtPolicy, KeySource, RemoteJwks};
use crate::host::{Direction, Host, Metric, Reply};

/// A runtime's remote key sets.
pub trait RemoteKeys {
    /// The keys a request can use now.
    fn keys(&self, remote: &RemoteJwks) -> Keys<'_>;
    /// A token named an unknown `kid`: true when newer keys may come (a fetch
    /// is under way or may start, which this asks for).
    fn refetch(&self, remote: &RemoteJwks, now_ms: u64) -> bool;
}

/// Keys as one decision sees them; `give_up` (the wait is over) turns keys
/// still being fetched into unavailable ones.
struct View<'a> {
    policy: &'a JwtPolicy,
    remote: &'a dyn RemoteKeys,
    now_ms: u64,
    give_up: bool,
}

impl KeyStore for View<'_> {
    fn keys(&self, provider: usize) -> Keys<'_> {
        match self.policy.providers.get(provider).map(|p| &p.keys) {
            Some(KeySource::Local(jwks)) => Keys::Ready(jwks),
            Some(KeySource::Remote(remote)) => match self.remote.keys(remote) {
                Keys::Pending if self.give_up => Keys::Unavailable,
                keys => keys,
            },
            None => Keys::Unavailable,
        }
    }

    fn refetch(&self, provider: usize) -> bool {
        match self.policy.providers.get(provider).map(|p| &p.keys) {
            Some(KeySource::Remote(remote)) if !self.give_up => {
                self.remote.refetch(remote, self.now_ms)
            }
            _ => false,
        }
    }
}

/// What became of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Continue,
    /// Refused with a local reply.
    Answered,
    /// Keys are being fetched: hold the request (and its body) and decide again.
    Wait,
}

/// The request's headers, read with one host call.
struct Snapshot(Vec<(String, String)>);

impl Snapshot {
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

impl TokenCarrier for Snapshot {
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

/// Decides for the request under `policy` and acts on the decision.
/// `cache` holds this policy's verified tokens (the runtime clears it when
/// keys change); `give_up` ends a wait for keys.
pub fn decide(
    policy: &JwtPolicy,
    remote: &dyn RemoteKeys,
    cache: &mut VerifiedCache,
    now_ms: u64,
    give_up: bool,
    host: &mut dyn Host,
) -> Outcome {
    let mut req = Snapshot(host.headers(Direction::Request));
    let view = View {
        policy,
        remote,
        now_ms,
        give_up,
    };
    match authenticate(policy, &mut req, &view, cache, now_ms / 1000) {
        Decision::Allow(allowed) => {
            let removed = remove_claim_headers(policy, &req, &allowed.claim_headers, host);
            apply(&allowed, &req, host);
            if removed && !allowed.recompute_route {
                host.clear_route_cache();
            }
            host.count(Metric::JwtAllowed);
            Outcome::Continue
        }
        Decision::PassWithoutToken | Decision::PassFailOpen => {
            if remove_claim_headers(policy, &req, &[], host) {
                host.clear_route_cache();
            }
            host.count(Metric::JwtPassedWithoutToken);
            Outcome::Continue
        }
        Decision::Wait => Outcome::Wait,
        Decision::Deny(denial) => deny(&req, &denial, host),
    }
}

/// Refuses the request: keys could not be had for it (used by a runtime that
/// cannot reach its key state).
pub fn refuse_without_keys(host: &mut dyn Host) -> Outcome {
    let req = Snapshot(host.headers(Direction::Request));
    deny(&req, &Denial::KeysUnavailable, host)
}

fn deny(req: &Snapshot, denial: &Denial, host: &mut dyn Host) -> Outcome {
    host.count(denied_metric(denial));
    let challenge = denial.challenge(&req.url());
    host.send_response(&Reply {
        status: denial.http_status(),
        headers: &[
            ("www-authenticate", challenge.as_str()),
            ("content-type", "text/plain"),
        ],
        body: &denial.message(),
        grpc_status: denial.grpc_status(),
    });
    Outcome::Answered
}

/// The counter of one kind of refusal.
fn denied_metric(denial: &Denial) -> Metric {
    match denial {
        Denial::Missing => Metric::JwtDeniedMissing,
        Denial::Malformed(_) => Metric::JwtDeniedMalformed,
        Denial::BadSignature | Denial::UnknownKey => Metric::JwtDeniedBadSignature,
        Denial::Expired | Denial::NotYetValid => Metric::JwtDeniedExpired,
        Denial::BadIssuer => Metric::JwtDeniedBadIssuer,
        Denial::BadAudience => Metric::JwtDeniedBadAudience,
        Denial::KeysUnavailable => Metric::JwtDeniedKeysUnavailable,
    }
}

/// Drops client-sent headers named like claim headers; whether any was sent.
/// Only names the request carries and that are not about to be `set` (which
/// replaces every value) cost a host call (in wasm each request-header edit is
/// a host call and a route re-match). A route may have been chosen by such a
/// header, so the caller has the route chosen again when one was sent: the
/// only time this filter moves a request without `recomputeRoute`, and only
/// for a request that tried to spoof a claim.
fn remove_claim_headers(
    policy: &JwtPolicy,
    req: &Snapshot,
    setting: &[(String, String)],
    host: &mut dyn Host,
) -> bool {
    let mut spoofed = false;
    for rule in policy.providers.iter().flat_map(|p| &p.claim_to_headers) {
        if req.first(&rule.header).is_none() {
            continue;
        }
        spoofed = true;
        if !setting.iter().any(|(name, _)| *name == rule.header) {
            host.remove_header(Direction::Request, &rule.header);
        }
    }
    spoofed
}

/// Sets the claim headers, removes the token unless forwarded, and re-selects
/// the route when the provider asks for it.
fn apply(allowed: &Allowed, req: &Snapshot, host: &mut dyn Host) {
    for (name, value) in &allowed.claim_headers {
        host.set_header(Direction::Request, name, value);
    }
    match &allowed.strip {
        None => {}
        Some(TokenSource::Header { name, .. }) => host.remove_header(Direction::Request, name),
        Some(TokenSource::Param(name)) => {
            if let Some(path) = req.first(":path") {
                host.set_header(
                    Direction::Request,
                    ":path",
                    &extract::strip_param(path, name),
                );
            }
        }
        Some(TokenSource::Cookie(name)) => {
            let cookies: Vec<&str> = req
                .0
                .iter()
                .filter(|(k, _)| k == "cookie")
                .map(|(_, v)| v.as_str())
                .collect();
            match extract::strip_cookie(&cookies.join("; "), name) {
                Some(rest) => host.set_header(Direction::Request, "cookie", &rest),
                None => host.remove_header(Direction::Request, "cookie"),
            }
        }
    }
    if allowed.recompute_route {
        host.clear_route_cache();
    }
}

/// How long a request of `policy` may wait for keys: its longest fetch timeout
/// in milliseconds (0 when every key set is local).
pub fn max_wait_ms(policy: &JwtPolicy) -> u64 {
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

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use hmac::{Hmac, KeyInit, Mac};
    use serde_json::{json, Value};

    use super::*;
    use crate::error::from_value;
    use crate::host::fake::FakeHost;

    const NOW_MS: u64 = 1_800_000_000_000;
    const SECRET: &[u8] = b"flow-test-secret-flow-test-secret!!";

    fn b64(b: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(b)
    }

    fn token(claims: Value) -> String {
        let input = format!(
            "{}.{}",
            b64(br#"{"alg":"HS256"}"#),
            b64(claims.to_string().as_bytes())
        );
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(SECRET).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", b64(&mac.finalize().into_bytes()))
    }

    fn policy(provider: Value) -> JwtPolicy {
        let mut p = json!({"name": "p", "issuer": "iss",
            "localJWKS": {"inline": json!({"keys": [{"kty": "oct", "k": b64(SECRET)}]}).to_string()}});
        if let (Value::Object(p), Value::Object(extra)) = (&mut p, provider) {
            p.extend(extra);
        }
        JwtPolicy::compile(from_value(json!({"providers": [p]})).unwrap()).unwrap()
    }

    fn remote_policy() -> JwtPolicy {
        JwtPolicy::compile(
            from_value(json!({"providers": [{"name": "r", "issuer": "iss",
                "remoteJWKS": {"uri": "https://idp/jwks", "cluster": "idp", "timeout": "3s"}}]}))
            .unwrap(),
        )
        .unwrap()
    }

    /// No remote key sets; records refetch requests.
    struct NoRemote(Cell<usize>);

    impl RemoteKeys for NoRemote {
        fn keys(&self, _: &RemoteJwks) -> Keys<'_> {
            Keys::Pending
        }
        fn refetch(&self, _: &RemoteJwks, _: u64) -> bool {
            self.0.set(self.0.get() + 1);
            true
        }
    }

    fn run(policy: &JwtPolicy, host: &mut FakeHost, give_up: bool) -> Outcome {
        let mut cache = VerifiedCache::with_capacity(8);
        decide(
            policy,
            &NoRemote(Cell::new(0)),
            &mut cache,
            NOW_MS,
            give_up,
            host,
        )
    }

    fn bearer(t: &str) -> String {
        format!("Bearer {t}")
    }

    #[test]
    fn a_valid_token_sets_claim_headers_strips_the_token_and_keeps_the_route() {
        let p = policy(json!({"claimToHeaders": [{"header": "x-user", "claim": "sub"}]}));
        let t = token(json!({"iss": "iss", "sub": "alice"}));
        let mut host = FakeHost::request(&[
            (":path", "/"),
            ("authorization", &bearer(&t)),
            ("x-user", "mallory"),
        ]);
        assert_eq!(run(&p, &mut host, false), Outcome::Continue);
        assert_eq!(host.get(Direction::Request, "x-user"), ["alice"]);
        assert!(host.get(Direction::Request, "authorization").is_empty());
        assert_eq!(
            host.route_cache_cleared, 1,
            "a spoofed claim header may have chosen the route"
        );
        assert_eq!(host.counted, [Metric::JwtAllowed]);

        let mut honest = FakeHost::request(&[(":path", "/"), ("authorization", &bearer(&t))]);
        assert_eq!(run(&p, &mut honest, false), Outcome::Continue);
        assert_eq!(honest.route_cache_cleared, 0, "the route stays");
    }

    #[test]
    fn recompute_route_clears_the_route_cache_and_forward_keeps_the_token() {
        let p = policy(json!({"recomputeRoute": true, "forward": true}));
        let t = token(json!({"iss": "iss"}));
        let mut host = FakeHost::request(&[(":path", "/"), ("authorization", &bearer(&t))]);
        assert_eq!(run(&p, &mut host, false), Outcome::Continue);
        assert_eq!(host.route_cache_cleared, 1);
        assert_eq!(host.get(Direction::Request, "authorization").len(), 1);
    }

    #[test]
    fn tokens_in_a_query_parameter_or_a_cookie_are_stripped_from_there() {
        let p = policy(json!({"extractFrom": {"params": ["t"]}}));
        let t = token(json!({"iss": "iss"}));
        let path = format!("/a?x=1&t={t}");
        let mut host = FakeHost::request(&[(":path", path.as_str())]);
        assert_eq!(run(&p, &mut host, false), Outcome::Continue);
        assert_eq!(host.get(Direction::Request, ":path"), ["/a?x=1"]);

        let p = policy(json!({"extractFrom": {"cookies": ["jwt"]}}));
        let cookie = format!("a=1; jwt={t}");
        let mut host = FakeHost::request(&[(":path", "/"), ("cookie", cookie.as_str())]);
        assert_eq!(run(&p, &mut host, false), Outcome::Continue);
        assert_eq!(host.get(Direction::Request, "cookie"), ["a=1"]);
    }

    #[test]
    fn a_missing_token_is_answered_401_with_a_challenge_naming_the_url() {
        let p = policy(json!({"claimToHeaders": [{"header": "x-user", "claim": "sub"}]}));
        let mut host = FakeHost::request(&[
            (":scheme", "https"),
            (":authority", "api.example"),
            (":path", "/orders?id=1"),
            ("content-type", "application/grpc"),
        ]);
        assert_eq!(run(&p, &mut host, false), Outcome::Answered);
        let reply = &host.replies[0];
        assert_eq!((reply.status, reply.grpc_status), (401, 16));
        assert!(reply.headers.contains(&(
            "www-authenticate".into(),
            "Bearer realm=\"https://api.example/orders\"".into()
        )));
        assert_eq!(host.counted, [Metric::JwtDeniedMissing]);
    }

    #[test]
    fn a_bad_signature_and_an_expired_token_count_as_such() {
        let p = policy(json!({}));
        let mut forged = token(json!({"iss": "iss"}));
        forged.push('A');
        let expired = token(json!({"iss": "iss", "exp": 1}));
        for (t, metric) in [
            (forged, Metric::JwtDeniedBadSignature),
            (expired, Metric::JwtDeniedExpired),
        ] {
            let mut host = FakeHost::request(&[(":path", "/"), ("authorization", &bearer(&t))]);
            assert_eq!(run(&p, &mut host, false), Outcome::Answered);
            assert_eq!(host.counted, [metric]);
        }
    }

    #[test]
    fn an_optional_request_without_a_token_passes_but_loses_spoofed_claim_headers() {
        let p = JwtPolicy::compile(
            from_value(json!({"optional": true, "providers": [{"name": "p", "issuer": "iss",
                "localJWKS": {"inline": json!({"keys": [{"kty": "oct", "k": b64(SECRET)}]}).to_string()},
                "claimToHeaders": [{"header": "x-user", "claim": "sub"}]}]}))
            .unwrap(),
        )
        .unwrap();
        let mut host = FakeHost::request(&[(":path", "/"), ("x-user", "admin")]);
        assert_eq!(run(&p, &mut host, false), Outcome::Continue);
        assert!(host.get(Direction::Request, "x-user").is_empty());
        assert_eq!(host.route_cache_cleared, 1);
        assert_eq!(host.counted, [Metric::JwtPassedWithoutToken]);
    }

    #[test]
    fn a_request_waits_for_keys_being_fetched_and_is_refused_when_the_wait_is_over() {
        let p = remote_policy();
        let t = token(json!({"iss": "iss"}));
        let mut host = FakeHost::request(&[(":path", "/"), ("authorization", &bearer(&t))]);
        assert_eq!(run(&p, &mut host, false), Outcome::Wait);
        assert!(host.replies.is_empty());
        assert_eq!(run(&p, &mut host, true), Outcome::Answered);
        assert_eq!(host.counted, [Metric::JwtDeniedKeysUnavailable]);
        assert_eq!(max_wait_ms(&p), 3000);
        assert_eq!(max_wait_ms(&policy(json!({}))), 0);
    }
}
