//! Native signature verification with ring, for the dynamic module (built with
//! the `native-crypto` feature; the wasm filters keep the portable verifiers of
//! [`super::verify`], which compile to wasm). ring's RSA, ECDSA and Ed25519 run
//! BoringSSL-derived assembly: what Envoy's own jwt_authn gets from BoringSSL.
//! Measured against aws-lc-rs and our portable code in docs/jwt-verifiers.md.
//!
//! Key choice stays in [`super::verify`] (algorithm must fit the key, `kid`
//! must match); this only checks a signature with a chosen key. ring's RSA
//! takes moduli of 2048 to 8192 bits, the range our JWKS parser accepts.
//! HMAC has no native path (it is already cheap).

use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey, VerificationAlgorithm};

use super::jwks::Public;
use super::verify::Alg;

/// A public key as ring takes it.
#[derive(Debug)]
pub enum NativeKey {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An uncompressed SEC1 point, or an Ed25519 key.
    Bytes(Vec<u8>),
    /// An HMAC secret (no native verifier).
    None,
}

impl NativeKey {
    pub fn new(public: Public) -> NativeKey {
        match public {
            // ring refuses leading zero bytes, which some JWKs carry (an
            // `e` of fixed width); our parser and RFC 7518 read past them.
            Public::Rsa { n, e } => NativeKey::Rsa {
                n: without_leading_zeros(n),
                e: without_leading_zeros(e),
            },
            Public::Bytes(b) => NativeKey::Bytes(b),
            Public::Secret => NativeKey::None,
        }
    }
}

fn without_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

/// Checks `signature` over `input` with `key`; None when the algorithm has no
/// native verifier here (HMAC) or the key does not fit it.
pub fn verify(alg: Alg, key: &NativeKey, input: &[u8], signature: &[u8]) -> Option<bool> {
    use Alg::*;
    let rsa = |params: &'static signature::RsaParameters| match key {
        NativeKey::Rsa { n, e } => Some(
            RsaPublicKeyComponents { n, e }
                .verify(params, input, signature)
                .is_ok(),
        ),
        _ => None,
    };
    let other = |algorithm: &'static dyn VerificationAlgorithm| match key {
        NativeKey::Bytes(bytes) => Some(
            UnparsedPublicKey::new(algorithm, bytes)
                .verify(input, signature)
                .is_ok(),
        ),
        _ => None,
    };
    match alg {
        RS256 => rsa(&signature::RSA_PKCS1_2048_8192_SHA256),
        RS384 => rsa(&signature::RSA_PKCS1_2048_8192_SHA384),
        RS512 => rsa(&signature::RSA_PKCS1_2048_8192_SHA512),
        PS256 => rsa(&signature::RSA_PSS_2048_8192_SHA256),
        PS384 => rsa(&signature::RSA_PSS_2048_8192_SHA384),
        PS512 => rsa(&signature::RSA_PSS_2048_8192_SHA512),
        ES256 => other(&signature::ECDSA_P256_SHA256_FIXED),
        ES384 => other(&signature::ECDSA_P384_SHA384_FIXED),
        EdDSA => other(&signature::ED25519),
        HS256 | HS384 | HS512 => None,
    }
}
