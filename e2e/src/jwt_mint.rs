//! Minting JWTs from real keys, for tests: one key of every family the filter
//! supports, their public JWKS, and tokens signed with any of them (or forged).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};

/// A 2048-bit RSA test key (generated once with openssl; test use only).
const RSA_PEM: &str = include_str!("../fixtures/rsa2048.pem");
/// The HMAC secret of the `hmac` key (64 bytes: long enough for HS512).
pub const HMAC_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Every algorithm with the `kid` of the key that signs it.
pub const ALGORITHMS: [(&str, &str); 12] = [
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
    ("HS384", "hmac"),
    ("HS512", "hmac"),
];

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signing keys; `Keys::default()` are the ones in [`Keys::jwks`], `Keys::stranger()`
/// has different EC/Ed25519 keys (tokens a verifier must refuse).
pub struct Keys {
    pub rsa: rsa::RsaPrivateKey,
    pub p256: p256::ecdsa::SigningKey,
    pub p384: p384::ecdsa::SigningKey,
    pub ed: ed25519_dalek::SigningKey,
}

impl Default for Keys {
    fn default() -> Self {
        Keys::seeded(7)
    }
}

impl Keys {
    fn seeded(seed: u8) -> Self {
        Keys {
            rsa: rsa::RsaPrivateKey::from_pkcs8_pem(RSA_PEM)
                .unwrap_or_else(|e| panic!("test RSA key: {e}")),
            p256: p256::ecdsa::SigningKey::from_slice(&[seed; 32])
                .unwrap_or_else(|e| panic!("p256: {e}")),
            p384: p384::ecdsa::SigningKey::from_slice(&[seed; 48])
                .unwrap_or_else(|e| panic!("p384: {e}")),
            ed: ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
        }
    }

    /// Different EC and Ed25519 keys with the same `kid`s.
    pub fn stranger() -> Self {
        Keys::seeded(8)
    }

    /// The public JWKS of these keys (plus an encryption-only key a verifier must skip).
    pub fn jwks(&self) -> Value {
        let public = self.rsa.to_public_key();
        let ec = |kid: &str, crv: &str, point: &[u8]| {
            let len = (point.len() - 1) / 2;
            json!({"kty": "EC", "kid": kid, "crv": crv, "x": b64(&point[1..1 + len]), "y": b64(&point[1 + len..])})
        };
        json!({"keys": [
            {"kty": "RSA", "kid": "rsa", "n": b64(&public.n().to_be_bytes()), "e": b64(&public.e().to_be_bytes())},
            ec("p256", "P-256", self.p256.verifying_key().to_sec1_point(false).as_bytes()),
            ec("p384", "P-384", self.p384.verifying_key().to_sec1_point(false).as_bytes()),
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": b64(self.ed.verifying_key().as_bytes())},
            {"kty": "oct", "kid": "hmac", "k": b64(HMAC_SECRET)},
            {"kty": "RSA", "kid": "enc-only", "use": "enc", "n": "AQAB", "e": "AQAB"}
        ]})
    }

    /// A JWS signed with the key for `alg`; `kid` goes into the header when given.
    pub fn sign(&self, alg: &str, kid: Option<&str>, claims: &Value) -> String {
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
            "RS256" => rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(self.rsa.clone())
                .sign(msg)
                .to_vec(),
            "RS384" => rsa::pkcs1v15::SigningKey::<sha2::Sha384>::new(self.rsa.clone())
                .sign(msg)
                .to_vec(),
            "RS512" => rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new(self.rsa.clone())
                .sign(msg)
                .to_vec(),
            "PS256" => rsa::pss::SigningKey::<sha2::Sha256>::new(self.rsa.clone())
                .sign(msg)
                .to_vec(),
            "PS384" => rsa::pss::SigningKey::<sha2::Sha384>::new(self.rsa.clone())
                .sign(msg)
                .to_vec(),
            "PS512" => rsa::pss::SigningKey::<sha2::Sha512>::new(self.rsa.clone())
                .sign(msg)
                .to_vec(),
            "ES256" => {
                let s: p256::ecdsa::Signature = self.p256.sign(msg);
                s.to_bytes().to_vec()
            }
            "ES384" => {
                let s: p384::ecdsa::Signature = self.p384.sign(msg);
                s.to_bytes().to_vec()
            }
            "EdDSA" => self.ed.sign(msg).to_bytes().to_vec(),
            "HS256" => hmac::<Hmac<sha2::Sha256>>(HMAC_SECRET, msg),
            "HS384" => hmac::<Hmac<sha2::Sha384>>(HMAC_SECRET, msg),
            "HS512" => hmac::<Hmac<sha2::Sha512>>(HMAC_SECRET, msg),
            other => panic!("no signer for {other}"),
        };
        format!("{input}.{}", b64(&sig))
    }

    /// The RS/HS confusion attack: an HS256 token whose HMAC secret is the RSA public modulus.
    pub fn rs_hs_confused(&self, claims: &Value) -> String {
        let n = self.rsa.to_public_key().n().to_be_bytes();
        let input = format!(
            "{}.{}",
            b64(json!({"alg": "HS256", "kid": "rsa"}).to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        format!(
            "{input}.{}",
            b64(&hmac::<Hmac<sha2::Sha256>>(&n, input.as_bytes()))
        )
    }
}

/// An unsigned `alg: none` token.
pub fn alg_none(claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    )
}

pub fn hmac<M: Mac + KeyInit>(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut mac = <M as KeyInit>::new_from_slice(key).unwrap_or_else(|e| panic!("hmac key: {e}"));
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}
