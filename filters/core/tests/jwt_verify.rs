//! JWT signature checks with tokens minted from real keys of every family
//! (`e2e::jwt_mint`): valid tokens pass, and the classic attacks fail (RS/HS
//! confusion, `alg: none`, unknown `kid`, tampering, a key not in the set).

// Test helpers outside #[test] functions: a failed expectation here is a test failure.
#![allow(clippy::expect_used, clippy::panic)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use e2e::jwt_mint::{alg_none, b64, hmac, Keys, ALGORITHMS};
use hmac::Hmac;
use serde_json::json;
use tollgate_core::jwt::alg::Alg;
use tollgate_core::jwt::jwks::{self, Jwks};
use tollgate_core::jwt::token;
use tollgate_core::jwt::verify::{candidates, verify};

fn key_set(keys: &Keys) -> Jwks {
    let (set, skipped) = jwks::parse(&keys.jwks().to_string()).expect("jwks");
    assert_eq!(skipped.len(), 1, "the enc-only key is skipped: {skipped:?}");
    set
}

/// Whether `token` verifies against any candidate key of `set`.
fn accepted(set: &Jwks, token: &str) -> bool {
    let Ok(t) = token::decode(token) else {
        return false;
    };
    let Some(alg) = Alg::parse(&t.alg) else {
        return false;
    };
    let ok = candidates(set, alg, t.kid.as_deref())
        .any(|key| verify(alg, key, t.signing_input.as_bytes(), &t.signature));
    ok
}

#[test]
fn every_algorithm_verifies_with_and_without_kid() {
    let k = Keys::default();
    let set = key_set(&k);
    let claims = json!({"sub": "alice"});
    for (alg, kid) in ALGORITHMS {
        assert!(
            accepted(&set, &k.sign(alg, Some(kid), &claims)),
            "{alg} with kid"
        );
        assert!(
            accepted(&set, &k.sign(alg, None, &claims)),
            "{alg} without kid (keys whose type fits)"
        );
    }
}

#[test]
fn attacks_are_refused() {
    let k = Keys::default();
    let set = key_set(&k);
    let claims = json!({"sub": "mallory", "admin": true});
    assert!(
        !accepted(&set, &k.rs_hs_confused(&claims)),
        "RS/HS confusion"
    );
    assert!(!accepted(&set, &alg_none(&claims)), "alg none");
    assert!(
        !accepted(&set, &k.sign("RS256", Some("nope"), &claims)),
        "unknown kid"
    );

    let good = k.sign("RS256", Some("rsa"), &claims);
    let parts: Vec<&str> = good.split('.').collect();
    let tampered_payload = format!("{}.{}.{}", parts[0], b64(br#"{"sub":"root"}"#), parts[2]);
    assert!(!accepted(&set, &tampered_payload), "tampered payload");
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).expect("sig");
    sig[10] ^= 1;
    assert!(
        !accepted(&set, &format!("{}.{}.{}", parts[0], parts[1], b64(&sig))),
        "tampered signature"
    );
    let ps_header = b64(json!({"alg": "PS256", "kid": "rsa"}).to_string().as_bytes());
    assert!(
        !accepted(&set, &format!("{ps_header}.{}.{}", parts[1], parts[2])),
        "RS256 signature under PS256"
    );

    let stranger = Keys::stranger();
    for alg in ["ES256", "ES384", "EdDSA"] {
        assert!(
            !accepted(&set, &stranger.sign(alg, None, &claims)),
            "{alg} by a key not in the set"
        );
    }
}

#[test]
fn jwk_alg_pins_the_algorithm() {
    let k = Keys::default();
    let mut rsa_only = k.jwks()["keys"][0].clone();
    rsa_only["alg"] = json!("PS256");
    let (set, _) = jwks::parse(&json!({"keys": [rsa_only]}).to_string()).expect("jwks");
    assert!(accepted(&set, &k.sign("PS256", None, &json!({}))));
    assert!(
        !accepted(&set, &k.sign("RS256", None, &json!({}))),
        "RS256 against a PS256-only key"
    );
}

#[test]
fn unusable_key_sets_are_errors() {
    for bad in [
        r#"{"keys": []}"#,
        r#"{"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}"#,
        r#"{"keys": [{"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}]}"#,
        r#"{"keys": [{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}]}"#,
        r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0", "alg": "RS256"}]}"#,
        r#"{"nokeys": 1}"#,
        "not json",
    ] {
        assert!(jwks::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn short_hmac_secrets_are_never_used() {
    let (set, _) = jwks::parse(&json!({"keys": [{"kty": "oct", "k": b64(b"short")}]}).to_string())
        .expect("jwks");
    let input = format!("{}.{}", b64(br#"{"alg":"HS256"}"#), b64(b"{}"));
    let t = format!(
        "{input}.{}",
        b64(&hmac::<Hmac<sha2::Sha256>>(b"short", input.as_bytes()))
    );
    assert!(!accepted(&set, &t));
}
