//! Signature verification: which keys a token may be checked against, and the check.
//!
//! Key choice is where JWT libraries get attacked, so it is strict: the token's
//! `alg` must fit the key's type (an RSA key is never an HMAC secret, which is
//! the RS/HS confusion attack), must equal the JWK's own `alg` when it has one,
//! and a token with a `kid` is only tried against keys with that `kid`.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256, Sha384, Sha512};

use super::alg::Alg;
use super::jwks::{Jwk, Jwks, KeyMaterial};

/// The keys a token with `alg` and `kid` may be verified with, in set order.
pub fn candidates<'a>(
    jwks: &'a Jwks,
    alg: Alg,
    kid: Option<&'a str>,
) -> impl Iterator<Item = &'a Jwk> + 'a {
    jwks.keys.iter().filter(move |key| {
        let kid_ok = match (kid, key.kid.as_deref()) {
            (Some(want), Some(have)) => want == have,
            (Some(_), None) => false,
            (None, _) => true,
        };
        kid_ok && key.alg.is_none_or(|a| a == alg) && key.material.fits(alg)
    })
}

/// Which code checks signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Pure Rust, compiled into the wasm filters too.
    Portable,
    /// ring (the dynamic module; `native-crypto` feature).
    #[cfg(feature = "native-crypto")]
    Native,
}

impl Backend {
    /// Every backend this build has (the tests check each).
    pub const ALL: &'static [Backend] = &[
        Backend::Portable,
        #[cfg(feature = "native-crypto")]
        Backend::Native,
    ];

    /// The one requests use: native when built in.
    #[cfg(feature = "native-crypto")]
    pub const DEFAULT: Backend = Backend::Native;
    #[cfg(not(feature = "native-crypto"))]
    pub const DEFAULT: Backend = Backend::Portable;
}

/// Checks `signature` over `signing_input` with `key`.
pub fn verify(alg: Alg, key: &Jwk, signing_input: &[u8], signature: &[u8]) -> bool {
    verify_with(Backend::DEFAULT, alg, key, signing_input, signature)
}

/// [`verify`] with a chosen backend; HMAC is always checked by the portable code.
pub fn verify_with(
    backend: Backend,
    alg: Alg,
    key: &Jwk,
    signing_input: &[u8],
    signature: &[u8],
) -> bool {
    match backend {
        Backend::Portable => verify_portable(alg, &key.material, signing_input, signature),
        #[cfg(feature = "native-crypto")]
        Backend::Native => {
            // The key must fit the algorithm whichever code checks it.
            key.material.fits(alg)
                && super::native::verify(alg, &key.native, signing_input, signature).unwrap_or_else(
                    || verify_portable(alg, &key.material, signing_input, signature),
                )
        }
    }
}

/// The portable verifiers.
fn verify_portable(alg: Alg, key: &KeyMaterial, signing_input: &[u8], signature: &[u8]) -> bool {
    use Alg::*;
    match (alg, key) {
        (RS256, KeyMaterial::Rsa(k)) => k.verify_pkcs1v15::<Sha256>(signing_input, signature),
        (RS384, KeyMaterial::Rsa(k)) => k.verify_pkcs1v15::<Sha384>(signing_input, signature),
        (RS512, KeyMaterial::Rsa(k)) => k.verify_pkcs1v15::<Sha512>(signing_input, signature),
        (PS256, KeyMaterial::Rsa(k)) => k.verify_pss::<Sha256>(signing_input, signature),
        (PS384, KeyMaterial::Rsa(k)) => k.verify_pss::<Sha384>(signing_input, signature),
        (PS512, KeyMaterial::Rsa(k)) => k.verify_pss::<Sha512>(signing_input, signature),
        // JWS carries r || s, 32 bytes each (RFC 7518 §3.4); crrl would also take
        // zero-padded longer forms, which are not ES256 signatures. A high S is valid
        // ECDSA (Wycheproof's P-256 vectors count it valid, BoringSSL under Envoy's
        // jwt_authn accepts it), and signers produce it, so it is accepted.
        (ES256, KeyMaterial::P256(k)) => {
            signature.len() == 64 && k.verify_hash(signature, &Sha256::digest(signing_input))
        }
        (ES384, KeyMaterial::P384(k)) => {
            use p384::ecdsa::signature::Verifier;
            p384::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|s| k.verify(signing_input, &s).is_ok())
        }
        (EdDSA, KeyMaterial::Ed25519(k)) => <&[u8; 64]>::try_from(signature).is_ok_and(|s| {
            k.verify_strict(signing_input, &ed25519_dalek::Signature::from_bytes(s))
                .is_ok()
        }),
        (HS256, KeyMaterial::Oct(k)) => hmac_ok::<Hmac<Sha256>>(k, signing_input, signature),
        (HS384, KeyMaterial::Oct(k)) => hmac_ok::<Hmac<Sha384>>(k, signing_input, signature),
        (HS512, KeyMaterial::Oct(k)) => hmac_ok::<Hmac<Sha512>>(k, signing_input, signature),
        _ => false,
    }
}

/// Constant-time HMAC comparison.
fn hmac_ok<M: Mac + KeyInit>(key: &[u8], msg: &[u8], signature: &[u8]) -> bool {
    <M as KeyInit>::new_from_slice(key).is_ok_and(|mut mac| {
        mac.update(msg);
        mac.verify_slice(signature).is_ok()
    })
}
