//! The JWT authentication decision: providers in order, first success wins,
//! optional / failOpen, waiting for keys, and which failure is answered.

// Test helpers outside #[test] functions: a failed expectation here is a test failure.
#![allow(clippy::expect_used, clippy::panic)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use tollgate_core::error::from_value;
use tollgate_core::jwt::authn::{authenticate, Allowed, Decision, Denial, KeyStore, Keys};
use tollgate_core::jwt::cache::VerifiedCache;
use tollgate_core::jwt::extract::{TokenCarrier, TokenSource};
use tollgate_core::jwt::jwks::{self, Jwks};
use tollgate_core::jwt::policy::JwtPolicy;

const NOW: u64 = 1_800_000_000;
const SECRET_A: &[u8] = b"provider-a-secret-provider-a-secret!";
const SECRET_B: &[u8] = b"provider-b-secret-provider-b-secret!";

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn hs256(secret: &[u8], claims: Value) -> String {
    let input = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256"}"#),
        b64(claims.to_string().as_bytes())
    );
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret).expect("key");
    mac.update(input.as_bytes());
    format!("{input}.{}", b64(&mac.finalize().into_bytes()))
}

fn jwks_of(secret: &[u8]) -> String {
    json!({"keys": [{"kty": "oct", "k": b64(secret)}]}).to_string()
}

fn policy(config: Value) -> JwtPolicy {
    JwtPolicy::compile(from_value(config).expect("config")).expect("policy")
}

/// Two providers: `a` (issuer a, audience api, header Authorization) and `b`
/// (issuer b, token in the `t` query parameter, copies `sub` to x-sub, forwards the token).
fn two_providers(extra: Value) -> JwtPolicy {
    let mut config = json!({"providers": [
        {"name": "a", "issuer": "a", "audiences": ["api"], "localJWKS": {"inline": jwks_of(SECRET_A)}},
        {"name": "b", "issuer": "b", "localJWKS": {"inline": jwks_of(SECRET_B)}, "forward": true,
         "extractFrom": {"params": ["t"]}, "claimToHeaders": [{"header": "x-sub", "claim": "sub"}]}
    ]});
    if let (Value::Object(c), Value::Object(e)) = (&mut config, extra) {
        c.extend(e);
    }
    policy(config)
}

/// Keys per provider: Some(set) = ready; None = per `missing`.
struct Store {
    sets: Vec<Option<Jwks>>,
    missing: fn() -> Keys<'static>,
    /// What `refetch` answers: whether newer keys are on their way.
    rotating: bool,
}

impl KeyStore for Store {
    fn keys(&self, provider: usize) -> Keys<'_> {
        match self.sets.get(provider).and_then(Option::as_ref) {
            Some(set) => Keys::Ready(set),
            None => (self.missing)(),
        }
    }

    fn refetch(&self, _provider: usize) -> bool {
        self.rotating
    }
}

fn ready() -> Store {
    let set = |s| Some(jwks::parse(&jwks_of(s)).expect("jwks").0);
    Store {
        sets: vec![set(SECRET_A), set(SECRET_B)],
        missing: || Keys::Unavailable,
        rotating: false,
    }
}

#[derive(Default)]
struct Req {
    auth: Vec<String>,
    path: String,
}

impl TokenCarrier for Req {
    fn header_values(&mut self, name: &str) -> Vec<String> {
        if name == "authorization" {
            self.auth.clone()
        } else {
            vec![]
        }
    }
    fn path(&mut self) -> Option<String> {
        Some(if self.path.is_empty() {
            "/".into()
        } else {
            self.path.clone()
        })
    }
}

fn bearer(token: &str) -> Req {
    Req {
        auth: vec![format!("Bearer {token}")],
        ..Req::default()
    }
}

/// One decision with a fresh cache.
fn decide(p: &JwtPolicy, req: &mut Req, store: &Store) -> Decision {
    authenticate(p, req, store, &mut VerifiedCache::default(), NOW)
}

#[test]
fn verified_tokens_are_reused_only_while_valid() {
    let p = two_providers(json!({}));
    let mut cache = VerifiedCache::default();
    let token = hs256(SECRET_A, json!({"iss": "a", "aud": "api", "exp": NOW + 60}));
    let first = authenticate(&p, &mut bearer(&token), &ready(), &mut cache, NOW);
    assert!(matches!(first, Decision::Allow(_)));
    assert_eq!(cache.len(), 1);
    // A hit gives the same decision without the keys being consulted for a signature.
    assert_eq!(
        authenticate(&p, &mut bearer(&token), &ready(), &mut cache, NOW + 10),
        first
    );
    // Past exp + skew the entry is dropped and the full check refuses the token.
    assert_eq!(
        authenticate(&p, &mut bearer(&token), &ready(), &mut cache, NOW + 121),
        Decision::Deny(Denial::Expired)
    );
    // Without keys, a cached token is not trusted.
    authenticate(&p, &mut bearer(&token), &ready(), &mut cache, NOW);
    let no_keys = Store {
        sets: vec![None, None],
        missing: || Keys::Unavailable,
        rotating: false,
    };
    assert_eq!(
        authenticate(&p, &mut bearer(&token), &no_keys, &mut cache, NOW),
        Decision::Deny(Denial::KeysUnavailable)
    );
    // Failures are never cached.
    let mut fresh = VerifiedCache::default();
    authenticate(&p, &mut bearer("a.b.c"), &ready(), &mut fresh, NOW);
    assert!(fresh.is_empty());
}

#[test]
fn first_provider_that_validates_wins() {
    let p = two_providers(json!({}));
    let token_a = hs256(SECRET_A, json!({"iss": "a", "aud": "api", "exp": NOW + 60}));
    assert_eq!(
        decide(&p, &mut bearer(&token_a), &ready()),
        Decision::Allow(Allowed {
            provider: 0,
            claim_headers: vec![],
            strip: Some(TokenSource::Header {
                name: "authorization".into(),
                prefix: "Bearer ".into()
            }),
            recompute_route: false,
        })
    );
    let token_b = hs256(SECRET_B, json!({"iss": "b", "sub": "alice"}));
    let mut by_param = Req {
        path: format!("/x?t={token_b}"),
        ..Req::default()
    };
    assert_eq!(
        decide(&p, &mut by_param, &ready()),
        Decision::Allow(Allowed {
            provider: 1,
            claim_headers: vec![("x-sub".into(), "alice".into())],
            strip: None,
            recompute_route: false
        })
    );
}

#[test]
fn refusals_carry_the_right_reason_and_status() {
    let p = two_providers(json!({}));
    let cases = [
        (
            hs256(
                SECRET_A,
                json!({"iss": "a", "aud": "api", "exp": NOW - 3600}),
            ),
            Denial::Expired,
            401,
        ),
        (
            hs256(
                SECRET_A,
                json!({"iss": "a", "aud": "api", "nbf": NOW + 3600}),
            ),
            Denial::NotYetValid,
            401,
        ),
        (
            hs256(SECRET_A, json!({"iss": "x", "aud": "api"})),
            Denial::BadIssuer,
            401,
        ),
        (
            hs256(SECRET_A, json!({"iss": "a", "aud": "web"})),
            Denial::BadAudience,
            403,
        ),
        (
            hs256(
                b"some-other-secret-some-other-secret!",
                json!({"iss": "a", "aud": "api"}),
            ),
            Denial::BadSignature,
            401,
        ),
        (
            "a.b".to_string(),
            Denial::Malformed("2 segments, expected 3".into()),
            401,
        ),
    ];
    for (token, want, status) in cases {
        let got = decide(&p, &mut bearer(&token), &ready());
        assert_eq!(got, Decision::Deny(want.clone()), "{want:?}");
        assert_eq!(want.http_status(), status);
    }
    assert_eq!(
        decide(&p, &mut Req::default(), &ready()),
        Decision::Deny(Denial::Missing)
    );
    let mut twice = Req {
        auth: vec!["Bearer a.b.c".into(), "Bearer d.e.f".into()],
        ..Req::default()
    };
    assert!(matches!(
        decide(&p, &mut twice, &ready()),
        Decision::Deny(Denial::Malformed(_))
    ));
}

#[test]
fn optional_passes_missing_tokens_but_not_bad_ones() {
    let p = two_providers(json!({"optional": true}));
    assert_eq!(
        decide(&p, &mut Req::default(), &ready()),
        Decision::PassWithoutToken
    );
    assert!(matches!(
        decide(&p, &mut bearer("x.y.z"), &ready()),
        Decision::Deny(Denial::Malformed(_))
    ));
}

#[test]
fn waiting_for_keys_and_fail_open() {
    let token = hs256(SECRET_A, json!({"iss": "a", "aud": "api"}));
    let none = |missing: fn() -> Keys<'static>| Store {
        sets: vec![None, None],
        missing,
        rotating: false,
    };
    let p = two_providers(json!({}));
    assert_eq!(
        decide(&p, &mut bearer(&token), &none(|| Keys::Pending)),
        Decision::Wait
    );
    assert_eq!(
        decide(&p, &mut bearer(&token), &none(|| Keys::Unavailable)),
        Decision::Deny(Denial::KeysUnavailable)
    );
    let open = two_providers(json!({"failOpen": true}));
    assert_eq!(
        decide(&open, &mut bearer(&token), &none(|| Keys::Unavailable)),
        Decision::PassFailOpen
    );
    // failOpen never lets a bad token through when keys are there.
    assert_eq!(
        decide(
            &open,
            &mut bearer(&hs256(b"wrong-wrong-wrong-wrong-wrong-wrong!", json!({}))),
            &ready()
        ),
        Decision::Deny(Denial::BadSignature)
    );
}

#[test]
fn an_unknown_kid_waits_for_a_refetch_only_when_one_is_coming() {
    let p = two_providers(json!({}));
    let input = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","kid":"next"}"#),
        b64(json!({"iss": "a", "aud": "api"}).to_string().as_bytes())
    );
    let token = format!("{input}.{}", b64(&[0u8; 32]));
    assert_eq!(
        decide(&p, &mut bearer(&token), &ready()),
        Decision::Deny(Denial::UnknownKey)
    );
    assert_eq!(Denial::UnknownKey.http_status(), 401);
    assert_eq!(Denial::UnknownKey.reason(), "bad_signature");
    let rotating = Store {
        rotating: true,
        ..ready()
    };
    assert_eq!(decide(&p, &mut bearer(&token), &rotating), Decision::Wait);
    // A known key with a bad signature never waits: refetching cannot fix it.
    let forged = hs256(b"wrong-wrong-wrong-wrong-wrong-wrong!", json!({}));
    assert_eq!(
        decide(&p, &mut bearer(&forged), &rotating),
        Decision::Deny(Denial::BadSignature)
    );
}

#[test]
fn challenges_follow_rfc_6750() {
    assert_eq!(
        Denial::Missing.challenge("http://h/p"),
        r#"Bearer realm="http://h/p""#
    );
    assert_eq!(
        Denial::Expired.challenge("http://h/p"),
        r#"Bearer realm="http://h/p", error="invalid_token""#
    );
    assert_eq!(
        Denial::BadAudience.challenge("http://h/\"p"),
        r#"Bearer realm="http://h/p", error="insufficient_scope""#
    );
    assert_eq!(
        (
            Denial::Missing.grpc_status(),
            Denial::BadAudience.grpc_status()
        ),
        (16, 7)
    );
}
