//! The input as a JWT, through the decoder and the whole authentication path.
//!
//! The filter meets attacker-chosen tokens on every request, and a panic there
//! kills the worker's wasm VM, so nothing on this path may panic. Beyond "no
//! panic", the harness checks what the rest of the filter relies on: a decoded
//! token's signing input is the token up to its last dot, a decision does not
//! depend on the verified-token cache, and claim headers carry no control
//! characters.
//!
//! The policy (`jwt_policy.json`, written with the seed corpus by
//! `filters/core/tests/fuzz_seeds.rs`) has a JWKS with RSA, P-256, P-384,
//! Ed25519 and HMAC keys and two providers, so every verifier, the provider
//! ranking and every token source are reachable.

#![no_main]

use std::sync::LazyLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use tollgate_core::error::{from_value, parse_json};
use tollgate_core::jwt::authn::{authenticate, Decision, KeyStore, Keys};
use tollgate_core::jwt::cache::VerifiedCache;
use tollgate_core::jwt::extract::TokenCarrier;
use tollgate_core::jwt::jwks::KeyMaterial;
use tollgate_core::jwt::policy::{JwtPolicy, KeySource};
use tollgate_core::jwt::token::{self, MAX_TOKEN_BYTES};

/// The clock every decision is made at. Fixed, so a crash input reproduces; the
/// seed tokens are valid at this time.
const NOW: u64 = 1_800_000_000;

struct Harness {
    policy: JwtPolicy,
    /// The JWKS's HMAC secret, to sign inputs the fuzzer cannot sign itself.
    hmac_secret: Vec<u8>,
}

static HARNESS: LazyLock<Harness> = LazyLock::new(|| {
    let doc = parse_json(include_bytes!("../jwt_policy.json")).expect("jwt_policy.json is JSON");
    let policy = JwtPolicy::compile(from_value(doc).expect("jwt_policy.json is a JWT config"))
        .expect("jwt_policy.json compiles");
    let hmac_secret = policy
        .providers
        .iter()
        .find_map(|p| match &p.keys {
            KeySource::Local(jwks) => jwks.keys.iter().find_map(|k| match &k.material {
                KeyMaterial::Oct(secret) => Some(secret.clone()),
                _ => None,
            }),
            KeySource::Remote(_) => None,
        })
        .expect("jwt_policy.json has an HMAC key");
    Harness {
        policy,
        hmac_secret,
    }
});

/// Every provider's inline keys, as the filter's glue hands them over.
struct InlineKeys<'a>(&'a JwtPolicy);

impl KeyStore for InlineKeys<'_> {
    fn keys(&self, provider: usize) -> Keys<'_> {
        match self.0.providers.get(provider).map(|p| &p.keys) {
            Some(KeySource::Local(jwks)) => Keys::Ready(jwks),
            _ => Keys::Unavailable,
        }
    }
}

/// Where a request carries the input; the policy's first provider looks in all three.
#[derive(Clone, Copy)]
enum Place {
    Bearer,
    Param,
    Cookie,
}

/// A request holding `token` in one place.
struct Request<'a> {
    token: &'a str,
    place: Place,
}

impl TokenCarrier for Request<'_> {
    fn header_values(&mut self, name: &str) -> Vec<String> {
        match (self.place, name) {
            (Place::Bearer, "authorization") => vec![format!("Bearer {}", self.token)],
            (Place::Cookie, "cookie") => vec![format!("theme=dark; session={}", self.token)],
            _ => Vec::new(),
        }
    }

    fn path(&mut self) -> Option<String> {
        Some(match self.place {
            Place::Param => format!("/api?page=2&access_token={}", self.token),
            _ => "/api".to_string(),
        })
    }
}

fn decide(h: &Harness, token: &str, place: Place, cache: &mut VerifiedCache) -> Decision {
    let mut req = Request { token, place };
    authenticate(&h.policy, &mut req, &InlineKeys(&h.policy), cache, NOW)
}

fn check_decode(token: &str) {
    if let Ok(t) = token::decode(token) {
        assert!(token.len() <= MAX_TOKEN_BYTES, "oversized token decoded");
        assert!(!t.alg.eq_ignore_ascii_case("none"), "alg none decoded");
        let rest = token
            .strip_prefix(t.signing_input)
            .and_then(|r| r.strip_prefix('.'))
            .expect("signing input is the token up to a dot");
        assert!(!rest.contains('.'), "signing input stops at the last dot");
    }
}

/// Decides with a fresh cache, then again with what the first decision cached:
/// a hit must give the same answer as the full check.
fn check_authenticate(h: &Harness, token: &str, place: Place) {
    let mut cache = VerifiedCache::default();
    let first = decide(h, token, place, &mut cache);
    if let Decision::Allow(allowed) = &first {
        for (name, value) in &allowed.claim_headers {
            assert!(
                !value.chars().any(|c| c.is_control() && c != '\t'),
                "claim header {name} carries a control character: {value:?}"
            );
        }
    }
    assert_eq!(
        decide(h, token, place, &mut cache),
        first,
        "cache changed the decision"
    );
}

/// `token` with its last segment replaced by a valid HS256 signature, so the
/// claim checks and claim headers are reached without forging anything.
fn hmac_signed(h: &Harness, token: &str) -> String {
    let input = token.rsplit_once('.').map_or(token, |(head, _)| head);
    let mut mac =
        <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&h.hmac_secret).expect("any key length");
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

fuzz_target!(|data: &[u8]| {
    let h = &*HARNESS;
    // Header values reach the filter as text; invalid UTF-8 becomes U+FFFD.
    let token = String::from_utf8_lossy(data);
    check_decode(&token);
    check_authenticate(h, &token, Place::Bearer);
    check_authenticate(h, &token, Place::Param);
    check_authenticate(h, &token, Place::Cookie);
    let signed = hmac_signed(h, &token);
    check_decode(&signed);
    check_authenticate(h, &signed, Place::Bearer);
});
