//! The fuzz targets' policy and seed corpus (`fuzz/`), derived from the test keys.
//!
//! The `jwt_token` target verifies tokens against `fuzz/jwt_policy.json`; its seeds
//! are real tokens signed with `e2e::jwt_mint`'s keys, so the fuzzer starts from
//! inputs that reach every verifier and every claim check instead of having to
//! find base64url JSON on its own. This test keeps the files in step with the keys
//! and checks that each seed gets the decision its name promises.
//! `TOLLGATE_UPDATE_FUZZ_SEEDS=1 cargo test -p tollgate-core --test fuzz_seeds`
//! rewrites them.

// Test helpers outside #[test] functions: a failed expectation here is a test failure.
#![allow(clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use e2e::jwt_mint::{alg_none, b64, Keys};
use serde_json::{json, Value};
use tollgate_core::error::{from_value, parse_json};
use tollgate_core::jwt::authn::{authenticate, Decision, Denial, KeyStore, Keys as KeySet};
use tollgate_core::jwt::cache::VerifiedCache;
use tollgate_core::jwt::extract::TokenCarrier;
use tollgate_core::jwt::policy::{JwtPolicy, KeySource};

/// The clock of the `jwt_token` target (its `NOW`): the seeds are valid at this time.
const NOW: u64 = 1_800_000_000;
const ISSUER: &str = "https://issuer.example";

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Two providers over the same keys: one with issuer, audience, claim headers and
/// every kind of token source; one accepting any issuer with no skew, which sees
/// the same `Authorization` token, so provider order and failure ranking are exercised.
fn policy_config(jwks: &str) -> Value {
    json!({"providers": [
        {"name": "strict", "issuer": ISSUER, "audiences": ["api"],
         "localJWKS": {"type": "Inline", "inline": jwks},
         "claimToHeaders": [{"header": "x-sub", "claim": "sub"}, {"header": "x-team", "claim": "org.team"}],
         "extractFrom": {"headers": [{"name": "authorization", "valuePrefix": "Bearer "}],
                         "params": ["access_token"], "cookies": ["session"]}},
        {"name": "any-issuer", "audiences": ["api", "web"], "localJWKS": {"inline": jwks}, "clockSkewSeconds": 0,
         "forward": true, "recomputeRoute": true,
         "claimToHeaders": [{"header": "x-roles", "claim": "roles"}]}
    ]})
}

fn good_claims() -> Value {
    json!({"iss": ISSUER, "aud": "api", "sub": "alice", "org": {"team": "core"},
           "roles": ["reader"], "iat": NOW - 60, "nbf": NOW - 60, "exp": NOW + 3600})
}

fn with(claims: Value, changes: Value) -> Value {
    let (Value::Object(mut c), Value::Object(changes)) = (claims, changes) else {
        panic!("claims are objects");
    };
    c.extend(changes);
    Value::Object(c)
}

/// `jwt_token` seeds: name, token and the decision it must get. RSA-PSS is left
/// out only because its signatures are randomized (the files would never be stable).
fn token_seeds(keys: &Keys) -> Vec<(&'static str, String, Expect)> {
    let good = good_claims();
    let hs = |claims: Value| keys.sign("HS256", Some("hmac"), &claims);
    let token = keys.sign("HS256", Some("hmac"), &good);
    vec![
        (
            "valid-rs256",
            keys.sign("RS256", Some("rsa"), &good),
            Expect::Allow,
        ),
        (
            "valid-rs512-no-kid",
            keys.sign("RS512", None, &good),
            Expect::Allow,
        ),
        (
            "valid-es256",
            keys.sign("ES256", Some("p256"), &good),
            Expect::Allow,
        ),
        (
            "valid-es384",
            keys.sign("ES384", Some("p384"), &good),
            Expect::Allow,
        ),
        (
            "valid-eddsa",
            keys.sign("EdDSA", Some("ed"), &good),
            Expect::Allow,
        ),
        ("valid-hs256", token.clone(), Expect::Allow),
        (
            "valid-hs512-no-kid",
            keys.sign("HS512", None, &good),
            Expect::Allow,
        ),
        (
            "valid-other-issuer",
            hs(with(good.clone(), json!({"iss": "https://other.example"}))),
            Expect::Allow,
        ),
        (
            "expired",
            hs(with(good.clone(), json!({"exp": NOW - 3600}))),
            Expect::Deny(Denial::Expired),
        ),
        (
            "not-yet-valid",
            hs(with(good.clone(), json!({"nbf": NOW + 3600}))),
            Expect::Deny(Denial::NotYetValid),
        ),
        (
            "wrong-audience",
            hs(with(good.clone(), json!({"aud": ["other", "more"]}))),
            Expect::Deny(Denial::BadAudience),
        ),
        (
            "bad-claim-types",
            hs(with(good.clone(), json!({"iss": 7, "exp": "tomorrow"}))),
            Expect::Malformed,
        ),
        (
            "claim-with-crlf",
            hs(with(good.clone(), json!({"sub": "x\r\ninjected: 1"}))),
            Expect::Allow,
        ),
        (
            "stranger-es256",
            Keys::stranger().sign("ES256", Some("p256"), &good),
            Expect::Deny(Denial::BadSignature),
        ),
        (
            "rs-hs-confused",
            keys.rs_hs_confused(&good),
            // The RSA key cannot verify HS256, so no key of the set fits.
            Expect::Deny(Denial::UnknownKey),
        ),
        (
            "alg-none",
            alg_none(&good),
            Expect::Deny(Denial::BadSignature),
        ),
        (
            "crit-header",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"HS256","crit":["exp"]}"#),
                b64(b"{}")
            ),
            Expect::Malformed,
        ),
        (
            "two-segments",
            token
                .rsplit_once('.')
                .map(|(head, _)| head.to_string())
                .expect("three segments"),
            Expect::Malformed,
        ),
        ("four-segments", format!("{token}.e30"), Expect::Malformed),
    ]
}

/// `jwt_config` seeds: the target's own policy, the per-route envelope, remote
/// keys and a set whose keys are all refused.
fn config_seeds(policy: &Value) -> Vec<(&'static str, Value)> {
    let small_rsa = json!({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}).to_string();
    vec![
        ("policy", policy.clone()),
        (
            "per-route",
            json!({"routes": {"api": policy}, "default": {"providers": [
            {"name": "b", "localJWKS": {"inline": json!({"keys": [{"kty": "oct", "k": b64(&[7; 32])}]}).to_string()}}
        ], "optional": true}}),
        ),
        (
            "remote-jwks",
            json!({"providers": [{"name": "r", "remoteJWKS": {
            "uri": "https://issuer.example/.well-known/jwks.json", "cluster": "idp",
            "cacheDuration": "5m", "timeout": "2s"}}], "failOpen": true}),
        ),
        (
            "unusable-keys",
            json!({"providers": [{"name": "s", "localJWKS": {"inline": small_rsa}}]}),
        ),
    ]
}

enum Expect {
    Allow,
    Malformed,
    Deny(Denial),
}

struct Bearer<'a>(&'a str);

impl TokenCarrier for Bearer<'_> {
    fn header_values(&mut self, name: &str) -> Vec<String> {
        match name {
            "authorization" => vec![format!("Bearer {}", self.0)],
            _ => Vec::new(),
        }
    }
    fn path(&mut self) -> Option<String> {
        Some("/".into())
    }
}

struct InlineKeys<'a>(&'a JwtPolicy);

impl KeyStore for InlineKeys<'_> {
    fn keys(&self, provider: usize) -> KeySet<'_> {
        match &self.0.providers[provider].keys {
            KeySource::Local(jwks) => KeySet::Ready(jwks),
            KeySource::Remote(_) => KeySet::Unavailable,
        }
    }
}

/// Every file under `fuzz/` this test owns, by path relative to it.
fn expected_files() -> BTreeMap<String, String> {
    let keys = Keys::default();
    let policy = policy_config(&keys.jwks().to_string());
    let policy_text = serde_json::to_string_pretty(&policy).expect("json") + "\n";
    let compiled = JwtPolicy::compile(
        from_value(parse_json(policy_text.as_bytes()).expect("json")).expect("config"),
    )
    .expect("the fuzz policy compiles");
    let mut files = BTreeMap::new();
    for (name, token, expect) in token_seeds(&keys) {
        let got = authenticate(
            &compiled,
            &mut Bearer(&token),
            &InlineKeys(&compiled),
            &mut VerifiedCache::default(),
            NOW,
        );
        let ok = match (&expect, &got) {
            (Expect::Allow, Decision::Allow(_)) => true,
            (Expect::Malformed, Decision::Deny(Denial::Malformed(_))) => true,
            (Expect::Deny(want), Decision::Deny(denial)) => want == denial,
            _ => false,
        };
        assert!(ok, "seed {name}: got {got:?}");
        files.insert(format!("corpus/jwt_token/{name}"), token);
    }
    for (name, config) in config_seeds(&policy) {
        files.insert(format!("corpus/jwt_config/{name}.json"), config.to_string());
    }
    files.insert("jwt_policy.json".into(), policy_text);
    files
}

#[test]
fn fuzz_policy_and_seeds_are_current() {
    let dir = fuzz_dir();
    let update = std::env::var_os("TOLLGATE_UPDATE_FUZZ_SEEDS").is_some();
    let mut stale = Vec::new();
    for (path, content) in expected_files() {
        let file = dir.join(&path);
        if update {
            std::fs::create_dir_all(file.parent().expect("has a parent")).expect("mkdir");
            std::fs::write(&file, &content).expect("write seed");
        } else if std::fs::read_to_string(&file).ok().as_deref() != Some(content.as_str()) {
            stale.push(path);
        }
    }
    assert!(
        stale.is_empty(),
        "fuzz/{stale:?} differ from what the test keys give; rewrite them with \
         TOLLGATE_UPDATE_FUZZ_SEEDS=1 cargo test -p tollgate-core --test fuzz_seeds"
    );
}
