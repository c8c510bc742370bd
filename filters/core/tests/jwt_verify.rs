//! JWT signature checks with tokens minted here from real keys of every family:
//! valid tokens pass, and the classic attacks fail (RS/HS confusion, `alg: none`,
//! unknown `kid`, tampering, a key that is not in the set).

// Test helpers outside #[test] functions: a failed expectation here is a test failure.
#![allow(clippy::expect_used, clippy::panic)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};
use tollgate_core::jwt::jwks::{self, Jwks};
use tollgate_core::jwt::token;
use tollgate_core::jwt::verify::{candidates, verify, Alg};

const RSA_PEM: &str = include_str!("fixtures/rsa2048.pem");
const HMAC_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The signing keys and the public JWKS for them.
struct Keys {
    rsa: rsa::RsaPrivateKey,
    p256: p256::ecdsa::SigningKey,
    p384: p384::ecdsa::SigningKey,
    ed: ed25519_dalek::SigningKey,
}

fn keys() -> Keys {
    Keys {
        rsa: rsa::RsaPrivateKey::from_pkcs8_pem(RSA_PEM).expect("test RSA key"),
        p256: p256::ecdsa::SigningKey::from_slice(&[7; 32]).expect("p256"),
        p384: p384::ecdsa::SigningKey::from_slice(&[9; 48]).expect("p384"),
        ed: ed25519_dalek::SigningKey::from_bytes(&[5; 32]),
    }
}

fn ec_jwk(kid: &str, crv: &str, point: &[u8]) -> Value {
    let len = (point.len() - 1) / 2;
    json!({"kty": "EC", "kid": kid, "crv": crv, "x": b64(&point[1..1 + len]), "y": b64(&point[1 + len..])})
}

fn jwks_json(k: &Keys) -> String {
    let public = k.rsa.to_public_key();
    json!({"keys": [
        {"kty": "RSA", "kid": "rsa", "n": b64(&public.n().to_be_bytes()), "e": b64(&public.e().to_be_bytes())},
        ec_jwk("p256", "P-256", k.p256.verifying_key().to_sec1_point(false).as_bytes()),
        ec_jwk("p384", "P-384", k.p384.verifying_key().to_sec1_point(false).as_bytes()),
        {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": b64(k.ed.verifying_key().as_bytes())},
        {"kty": "oct", "kid": "hmac", "k": b64(HMAC_SECRET)},
        {"kty": "RSA", "kid": "enc-only", "use": "enc", "n": "AQAB", "e": "AQAB"}
    ]})
    .to_string()
}

fn sign(k: &Keys, alg: &str, kid: Option<&str>, claims: &Value) -> String {
    let mut header = json!({"alg": alg, "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let msg = input.as_bytes();
    let sig: Vec<u8> = match alg {
        "RS256" => rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(k.rsa.clone())
            .sign(msg)
            .to_vec(),
        "RS384" => rsa::pkcs1v15::SigningKey::<sha2::Sha384>::new(k.rsa.clone())
            .sign(msg)
            .to_vec(),
        "RS512" => rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new(k.rsa.clone())
            .sign(msg)
            .to_vec(),
        "PS256" => rsa::pss::SigningKey::<sha2::Sha256>::new(k.rsa.clone())
            .sign(msg)
            .to_vec(),
        "PS384" => rsa::pss::SigningKey::<sha2::Sha384>::new(k.rsa.clone())
            .sign(msg)
            .to_vec(),
        "PS512" => rsa::pss::SigningKey::<sha2::Sha512>::new(k.rsa.clone())
            .sign(msg)
            .to_vec(),
        "ES256" => {
            let s: p256::ecdsa::Signature = k.p256.sign(msg);
            s.to_bytes().to_vec()
        }
        "ES384" => {
            let s: p384::ecdsa::Signature = k.p384.sign(msg);
            s.to_bytes().to_vec()
        }
        "EdDSA" => k.ed.sign(msg).to_bytes().to_vec(),
        "HS256" => hmac::<Hmac<sha2::Sha256>>(HMAC_SECRET, msg),
        other => panic!("no signer for {other}"),
    };
    format!("{input}.{}", b64(&sig))
}

fn hmac<M: Mac + KeyInit>(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut mac = <M as KeyInit>::new_from_slice(key).expect("hmac key");
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
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
        .any(|key| verify(alg, &key.material, t.signing_input.as_bytes(), &t.signature));
    ok
}

#[test]
fn every_algorithm_verifies_with_and_without_kid() {
    let k = keys();
    let (set, skipped) = jwks::parse(&jwks_json(&k)).expect("jwks");
    assert_eq!(skipped.len(), 1, "the enc-only key is skipped: {skipped:?}");
    let claims = json!({"sub": "alice"});
    for (alg, kid) in [
        ("RS256", "rsa"),
        ("RS384", "rsa"),
        ("RS512", "rsa"),
        ("PS256", "rsa"),
        ("PS384", "rsa"),
        ("PS512", "rsa"),
        ("ES256", "p256"),
        ("ES384", "p384"),
        ("EdDSA", "ed"),
        ("HS256", "hmac"),
    ] {
        assert!(
            accepted(&set, &sign(&k, alg, Some(kid), &claims)),
            "{alg} with kid"
        );
        assert!(
            accepted(&set, &sign(&k, alg, None, &claims)),
            "{alg} without kid (keys whose type fits)"
        );
    }
}

#[test]
fn attacks_are_refused() {
    let k = keys();
    let (set, _) = jwks::parse(&jwks_json(&k)).expect("jwks");
    let claims = json!({"sub": "mallory", "admin": true});
    let good = sign(&k, "RS256", Some("rsa"), &claims);

    // RS/HS confusion: HS256 "signed" with the RSA public key as the HMAC secret.
    let public_n = k.rsa.to_public_key().n().to_be_bytes();
    let header = b64(json!({"alg": "HS256", "kid": "rsa"}).to_string().as_bytes());
    let input = format!("{header}.{}", b64(claims.to_string().as_bytes()));
    let confused = format!(
        "{input}.{}",
        b64(&hmac::<Hmac<sha2::Sha256>>(&public_n, input.as_bytes()))
    );
    assert!(!accepted(&set, &confused), "RS/HS confusion");

    // alg: none with an empty signature.
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none"}"#),
        b64(claims.to_string().as_bytes())
    );
    assert!(!accepted(&set, &none), "alg none");

    // Unknown kid; tampered payload; tampered signature; alg swapped to another RSA scheme.
    assert!(
        !accepted(&set, &sign(&k, "RS256", Some("nope"), &claims)),
        "unknown kid"
    );
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

    // A token signed by a key that is not in the set.
    let stranger = Keys {
        p256: p256::ecdsa::SigningKey::from_slice(&[8; 32]).expect("p256"),
        ..keys()
    };
    assert!(
        !accepted(&set, &sign(&stranger, "ES256", Some("p256"), &claims)),
        "foreign key"
    );
    assert!(
        !accepted(&set, &sign(&stranger, "ES256", None, &claims)),
        "foreign key, no kid"
    );
}

#[test]
fn jwk_alg_pins_the_algorithm() {
    let k = keys();
    let public = k.rsa.to_public_key();
    let pinned = json!({"keys": [{"kty": "RSA", "alg": "PS256", "n": b64(&public.n().to_be_bytes()), "e": b64(&public.e().to_be_bytes())}]});
    let (set, _) = jwks::parse(&pinned.to_string()).expect("jwks");
    assert!(accepted(&set, &sign(&k, "PS256", None, &json!({}))));
    assert!(
        !accepted(&set, &sign(&k, "RS256", None, &json!({}))),
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
    let header = b64(br#"{"alg":"HS256"}"#);
    let input = format!("{header}.{}", b64(b"{}"));
    let t = format!(
        "{input}.{}",
        b64(&hmac::<Hmac<sha2::Sha256>>(b"short", input.as_bytes()))
    );
    assert!(!accepted(&set, &t));
}
