//! Native signature verification with aws-lc-rs, for the dynamic module (built
//! with the `native-crypto` feature; the wasm filters keep the portable
//! verifiers of [`super::verify`], which compile to wasm). AWS-LC is a BoringSSL
//! fork: the code Envoy's own jwt_authn runs. Chosen over ring after measuring
//! both natively (docs/jwt-verifiers.md): 18 % faster for RS256 (28 % with the key
//! parsed once, as here), even for ES256, 3.3× for ES384; ed25519-dalek beat both
//! for EdDSA, so Ed25519 (and HMAC) stay portable.
//!
//! Key choice stays in [`super::verify`] (algorithm must fit the key, `kid`
//! must match); this only checks a signature with a chosen key. An RSA key is
//! parsed for an algorithm the first time a token uses it (a JWK without `alg`
//! may serve six), an EC key when its set is parsed. AWS-LC's RSA takes moduli
//! of 2048 to 8192 bits, the range our JWKS parser accepts.

use std::sync::OnceLock;

use aws_lc_rs::signature::{self, ParsedPublicKey, VerificationAlgorithm};

use super::alg::Alg;
use super::public_key::Public;

/// The RSA algorithms, in the order of [`NativeKey::Rsa`]'s parsed keys.
const RSA: [Alg; 6] = [
    Alg::RS256,
    Alg::RS384,
    Alg::RS512,
    Alg::PS256,
    Alg::PS384,
    Alg::PS512,
];

/// A public key as AWS-LC takes it.
pub enum NativeKey {
    Rsa {
        /// DER `RSAPublicKey` (PKCS #1).
        der: Vec<u8>,
        /// Parsed per algorithm on first use; None when AWS-LC refused it.
        parsed: Box<[OnceLock<Option<ParsedPublicKey>>; 6]>,
    },
    Ec {
        alg: Alg,
        key: Option<ParsedPublicKey>,
    },
    /// Checked by the portable code.
    Portable,
}

impl std::fmt::Debug for NativeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NativeKey::Rsa { der, .. } => write!(f, "Rsa({} DER bytes)", der.len()),
            NativeKey::Ec { alg, key } => write!(f, "Ec({alg:?}, parsed: {})", key.is_some()),
            NativeKey::Portable => write!(f, "Portable"),
        }
    }
}

fn algorithm(alg: Alg) -> Option<&'static dyn VerificationAlgorithm> {
    use Alg::*;
    Some(match alg {
        RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        ES256 => &signature::ECDSA_P256_SHA256_FIXED,
        ES384 => &signature::ECDSA_P384_SHA384_FIXED,
        EdDSA | HS256 | HS384 | HS512 => return None,
    })
}

impl NativeKey {
    pub fn new(public: Public) -> NativeKey {
        match public {
            Public::Rsa { n, e } => NativeKey::Rsa {
                der: rsa_public_key_der(&n, &e),
                parsed: Default::default(),
            },
            Public::Ec { point, alg } => NativeKey::Ec {
                alg,
                key: algorithm(alg).and_then(|a| ParsedPublicKey::new(a, &point).ok()),
            },
            Public::Portable => NativeKey::Portable,
        }
    }
}

/// Checks `signature` over `input` with `key`; None when the key is checked
/// by the portable code (Ed25519, HMAC).
pub fn verify(alg: Alg, key: &NativeKey, input: &[u8], signature: &[u8]) -> Option<bool> {
    let parsed = match key {
        NativeKey::Rsa { der, parsed } => {
            let i = RSA.iter().position(|a| *a == alg)?;
            parsed
                .get(i)?
                .get_or_init(|| algorithm(alg).and_then(|a| ParsedPublicKey::new(a, der).ok()))
        }
        NativeKey::Ec { alg: own, key } => {
            if *own != alg {
                return Some(false);
            }
            key
        }
        NativeKey::Portable => return None,
    };
    Some(
        parsed
            .as_ref()
            .is_some_and(|k| k.verify_sig(input, signature).is_ok()),
    )
}

/// DER `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`
/// (RFC 8017 A.1.1) from the JWK's unsigned big-endian `n` and `e`.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    let body = [integer(n), integer(e)].concat();
    let mut der = vec![0x30];
    der.extend(length(body.len()));
    der.extend(body);
    der
}

/// A DER INTEGER holding the unsigned value `bytes`.
fn integer(bytes: &[u8]) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    let mut value = bytes[zeros..].to_vec();
    if value.first().is_none_or(|b| b & 0x80 != 0) {
        value.insert(0, 0);
    }
    let mut der = vec![0x02];
    der.extend(length(value.len()));
    der.extend(value);
    der
}

/// A DER length.
fn length(len: usize) -> Vec<u8> {
    if len < 0x80 {
        return vec![len as u8];
    }
    let bytes: Vec<u8> = len
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    let mut der = vec![0x80 | bytes.len() as u8];
    der.extend(bytes);
    der
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_integers_are_minimal_and_positive() {
        assert_eq!(integer(&[0, 0, 1, 0, 1]), [0x02, 3, 1, 0, 1]);
        assert_eq!(integer(&[0x80]), [0x02, 2, 0, 0x80]);
        assert_eq!(integer(&[]), [0x02, 1, 0]);
        assert_eq!(length(300), [0x82, 1, 44]);
        assert_eq!(rsa_public_key_der(&[1], &[3]), [0x30, 6, 2, 1, 1, 2, 1, 3]);
    }
}
