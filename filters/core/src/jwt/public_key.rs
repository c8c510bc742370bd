//! A JWK's public key as bytes, between the JWK parser (`jwks`), which makes
//! it, and the native verifiers (`native`), which take it: below both, so
//! neither imports the other for it.

use super::alg::Alg;

/// A key's public bytes as the JWK gave them (what native verifiers take).
#[cfg_attr(not(feature = "native-crypto"), allow(dead_code))]
pub enum Public {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An uncompressed SEC1 point, and the one algorithm its curve verifies.
    Ec {
        point: Vec<u8>,
        alg: Alg,
    },
    /// Ed25519 and HMAC secrets: no native verifier (ed25519-dalek is faster
    /// than the native crates here: docs/jwt-verifiers.md).
    Portable,
}
