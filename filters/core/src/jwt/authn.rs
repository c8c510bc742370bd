//! The authentication decision for one request, from the compiled policy, the
//! request and the keys at hand. Providers are tried in order and the first that
//! validates the token wins; if none does, the most telling failure is answered.

use serde_json::{Map, Value};

use super::alg::Alg;
use super::cache::{Verified, VerifiedCache};
use super::claims::{self, ClaimError};
use super::extract::{self, Found, TokenCarrier, TokenSource};
use super::jwks::Jwks;
use super::policy::{JwtPolicy, Provider};
use super::token::{self, TokenError};
use super::verify;

/// The keys a provider has right now.
pub enum Keys<'a> {
    Ready(&'a Jwks),
    /// The first fetch of a remote JWKS is under way: the request should wait.
    Pending,
    /// No keys could be had (fetch failed and nothing is cached).
    Unavailable,
}

/// Where the glue gets each provider's keys (local keys, or the JWKS cache).
pub trait KeyStore {
    fn keys(&self, provider: usize) -> Keys<'_>;

    /// A token named a key the provider's set lacks: true when newer keys may
    /// come (a remote set being refetched), so the request should wait for them.
    fn refetch(&self, _provider: usize) -> bool {
        false
    }
}

/// What to do with the request.
#[derive(Debug, PartialEq)]
pub enum Decision {
    Allow(Allowed),
    /// `optional` and no token: pass without any change.
    PassWithoutToken,
    /// Keys are still being fetched for a provider that found a token: wait, then decide again.
    Wait,
    /// `failOpen` and no provider could get keys: pass without any change.
    PassFailOpen,
    Deny(Denial),
}

#[derive(Debug, PartialEq)]
pub struct Allowed {
    /// Index of the provider that validated the token.
    pub provider: usize,
    /// Headers to set from claims (client-sent values of these names are removed first).
    pub claim_headers: Vec<(String, String)>,
    /// Where the token was, so it can be removed before the upstream; None with `forward: true`.
    pub strip: Option<TokenSource>,
    pub recompute_route: bool,
}

/// Why a request is refused; each maps to a status, a challenge and a metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    Missing,
    Malformed(String),
    BadSignature,
    /// No key of the set has the token's `kid` (or fits its `alg`).
    UnknownKey,
    Expired,
    NotYetValid,
    BadIssuer,
    BadAudience,
    /// No keys for any provider that found a token (and not `failOpen`).
    KeysUnavailable,
}

impl Denial {
    /// 403 for an audience mismatch (the token is genuine but not for us), else 401.
    pub fn http_status(&self) -> u32 {
        match self {
            Denial::BadAudience => 403,
            _ => 401,
        }
    }

    /// gRPC status: PERMISSION_DENIED (7) for audience, UNAUTHENTICATED (16) otherwise.
    pub fn grpc_status(&self) -> u32 {
        match self {
            Denial::BadAudience => 7,
            _ => 16,
        }
    }

    /// Label for the denied-requests metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Denial::Missing => "missing",
            Denial::Malformed(_) => "malformed",
            Denial::BadSignature | Denial::UnknownKey => "bad_signature",
            Denial::Expired | Denial::NotYetValid => "expired",
            Denial::BadIssuer => "bad_issuer",
            Denial::BadAudience => "bad_audience",
            Denial::KeysUnavailable => "keys_unavailable",
        }
    }

    /// Body / gRPC message, in Envoy jwt_authn's words where it has them.
    pub fn message(&self) -> String {
        match self {
            Denial::Missing => "Jwt is missing".into(),
            Denial::Malformed(why) => {
                format!("Jwt is not in the form of Header.Payload.Signature ({why})")
            }
            Denial::BadSignature => "Jwt verification fails".into(),
            Denial::UnknownKey => "Jwks doesn't have key to match kid or alg from Jwt".into(),
            Denial::Expired => "Jwt is expired".into(),
            Denial::NotYetValid => "Jwt not yet valid".into(),
            Denial::BadIssuer => "Jwt issuer is not configured".into(),
            Denial::BadAudience => "Audiences in Jwt are not allowed".into(),
            Denial::KeysUnavailable => "Jwks remote fetch is failed".into(),
        }
    }

    /// `WWW-Authenticate` value (RFC 6750 §3); `realm` is the request URL.
    pub fn challenge(&self, realm: &str) -> String {
        let realm = realm.replace(['"', '\\'], "");
        match self {
            Denial::Missing => format!("Bearer realm=\"{realm}\""),
            Denial::BadAudience => {
                format!("Bearer realm=\"{realm}\", error=\"insufficient_scope\"")
            }
            _ => format!("Bearer realm=\"{realm}\", error=\"invalid_token\""),
        }
    }

    /// How telling a failure is, to pick one when several providers fail: a token
    /// that verified but was refused on its claims says more than a bad signature.
    fn rank(&self) -> u8 {
        match self {
            Denial::Missing => 0,
            Denial::KeysUnavailable => 1,
            Denial::Malformed(_) => 2,
            Denial::BadSignature | Denial::UnknownKey => 3,
            Denial::BadIssuer => 4,
            Denial::Expired | Denial::NotYetValid => 5,
            Denial::BadAudience => 6,
        }
    }
}

/// Decides for one request at `now` (seconds since the epoch). `cache` holds the
/// tokens this policy verified before with the same keys (see [`VerifiedCache`]).
pub fn authenticate(
    policy: &JwtPolicy,
    req: &mut dyn TokenCarrier,
    keys: &dyn KeyStore,
    cache: &mut VerifiedCache,
    now: u64,
) -> Decision {
    let mut worst: Option<Denial> = None;
    let mut waiting = false;
    let mut any_keys = false;
    for (index, provider) in policy.providers.iter().enumerate() {
        let (token, source) = match extract::find(&provider.sources, req) {
            Found::Missing => continue,
            Found::Ambiguous(why) => {
                note(&mut worst, Denial::Malformed(why));
                continue;
            }
            Found::Token { token, source } => (token, source),
        };
        let jwks = match keys.keys(index) {
            Keys::Ready(jwks) => jwks,
            Keys::Pending => {
                waiting = true;
                continue;
            }
            Keys::Unavailable => {
                note(&mut worst, Denial::KeysUnavailable);
                continue;
            }
        };
        any_keys = true;
        let allow = |claim_headers| {
            Decision::Allow(Allowed {
                provider: index,
                claim_headers,
                strip: (!provider.forward).then(|| provider.sources[source].clone()),
                recompute_route: provider.recompute_route,
            })
        };
        if let Some(hit) = cache.get(index, &token, now) {
            return allow(hit.claim_headers.clone());
        }
        match check(provider, jwks, &token, now) {
            Ok(claims) => {
                let claim_headers = claims::claim_headers(&claims, &provider.claim_to_headers);
                let (not_before, not_after) = claims::window(&claims, provider.clock_skew_seconds);
                let verified = Verified {
                    claim_headers: claim_headers.clone(),
                    not_before,
                    not_after,
                };
                cache.insert(index, &token, verified, now);
                return allow(claim_headers);
            }
            Err(Denial::UnknownKey) if keys.refetch(index) => waiting = true,
            Err(denial) => note(&mut worst, denial),
        }
    }
    if waiting {
        return Decision::Wait;
    }
    match worst {
        None if policy.optional => Decision::PassWithoutToken,
        None => Decision::Deny(Denial::Missing),
        Some(Denial::KeysUnavailable) if policy.fail_open && !any_keys => Decision::PassFailOpen,
        Some(denial) => Decision::Deny(denial),
    }
}

fn note(worst: &mut Option<Denial>, denial: Denial) {
    if worst.as_ref().is_none_or(|w| denial.rank() > w.rank()) {
        *worst = Some(denial);
    }
}

/// Verifies `token` for one provider and returns its claims.
fn check(
    provider: &Provider,
    jwks: &Jwks,
    token: &str,
    now: u64,
) -> Result<Map<String, Value>, Denial> {
    let t = token::decode(token).map_err(|e| match e {
        TokenError::Malformed(why) => Denial::Malformed(why),
        TokenError::UnsupportedAlgorithm(_) => Denial::BadSignature,
    })?;
    let alg = Alg::parse(&t.alg).ok_or(Denial::BadSignature)?;
    let mut candidates = verify::candidates(jwks, alg, t.kid.as_deref()).peekable();
    if candidates.peek().is_none() {
        return Err(Denial::UnknownKey);
    }
    let verified =
        candidates.any(|key| verify::verify(alg, key, t.signing_input.as_bytes(), &t.signature));
    if !verified {
        return Err(Denial::BadSignature);
    }
    claims::validate(&t.claims, provider, now).map_err(|e| match e {
        ClaimError::Expired | ClaimError::IssuedInFuture => Denial::Expired,
        ClaimError::NotYetValid => Denial::NotYetValid,
        ClaimError::BadTime(name) => {
            Denial::Malformed(format!("`{name}` is not a number of seconds"))
        }
        ClaimError::BadType(name) => {
            Denial::Malformed(format!("Jwt payload [{name}] field has the wrong type"))
        }
        ClaimError::BadIssuer => Denial::BadIssuer,
        ClaimError::BadAudience => Denial::BadAudience,
    })?;
    Ok(t.claims)
}
