//! JSON Web Key Sets: parsing each key once into ready-to-use verification keys.
//!
//! A key that cannot be used (unknown `kty`, `use: enc`, an RSA modulus outside
//! 2048–8192 bits, a malformed component) is skipped and reported, so one odd key in
//! an identity provider's set does not take the others down; a set with no
//! usable key at all is an error.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;

use super::alg::Alg;
use super::public_key::Public;
use super::rsa::RsaPublicKey;

/// Usable keys of a set, in document order.
#[derive(Debug)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

#[derive(Debug)]
pub struct Jwk {
    pub kid: Option<String>,
    /// The only algorithm this key may verify, when the JWK says so.
    pub alg: Option<Alg>,
    pub material: KeyMaterial,
    /// The same public key for the native verifiers (ring), when built with them.
    #[cfg(feature = "native-crypto")]
    pub native: super::native::NativeKey,
}

#[derive(Debug)]
pub enum KeyMaterial {
    Rsa(RsaPublicKey),
    P256(crrl::p256::PublicKey),
    P384(p384::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
    /// An HMAC secret (`kty: oct`).
    Oct(Vec<u8>),
}

impl KeyMaterial {
    /// Whether this key may verify `alg`. HMAC secrets
    /// shorter than the hash are refused (RFC 7518 §3.2).
    pub fn fits(&self, alg: Alg) -> bool {
        use Alg::*;
        match (alg, self) {
            (RS256 | RS384 | RS512 | PS256 | PS384 | PS512, KeyMaterial::Rsa(_)) => true,
            (ES256, KeyMaterial::P256(_))
            | (ES384, KeyMaterial::P384(_))
            | (EdDSA, KeyMaterial::Ed25519(_)) => true,
            (HS256, KeyMaterial::Oct(k)) => k.len() >= 32,
            (HS384, KeyMaterial::Oct(k)) => k.len() >= 48,
            (HS512, KeyMaterial::Oct(k)) => k.len() >= 64,
            _ => false,
        }
    }
}

/// The raw JWK fields we read; everything else in a JWK is ignored (RFC 7517 allows extensions).
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    #[serde(default)]
    k: Option<String>,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

/// Parses a JWKS document. Returns the usable keys and, for each skipped key,
/// why (the caller logs those).
pub fn parse(json: &str) -> Result<(Jwks, Vec<String>), String> {
    let raw: RawJwks =
        serde_json::from_str(json).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    for (i, value) in raw.keys.into_iter().enumerate() {
        match serde_json::from_value::<RawJwk>(value)
            .map_err(|e| e.to_string())
            .and_then(parse_key)
        {
            Ok(key) => keys.push(key),
            Err(why) => skipped.push(format!("keys[{i}]: {why}")),
        }
    }
    if keys.is_empty() {
        return Err(format!("no usable key in the set ({})", skipped.join("; ")));
    }
    Ok((Jwks { keys }, skipped))
}

fn parse_key(raw: RawJwk) -> Result<Jwk, String> {
    if raw.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err(format!(
            "`use: {}` is not a signing key",
            raw.use_.unwrap_or_default()
        ));
    }
    let alg = match raw.alg.as_deref() {
        None => None,
        Some(a) => Some(Alg::parse(a).ok_or_else(|| format!("unsupported `alg` {a}"))?),
    };
    let field = |name: &str, value: &Option<String>| -> Result<Vec<u8>, String> {
        let v = value
            .as_deref()
            .ok_or_else(|| format!("`{name}` is missing"))?;
        URL_SAFE_NO_PAD
            .decode(v.trim_end_matches('='))
            .map_err(|e| format!("`{name}` is not base64url: {e}"))
    };
    let (material, public) = match (raw.kty.as_str(), raw.crv.as_deref()) {
        ("RSA", _) => {
            let (n, e) = (field("n", &raw.n)?, field("e", &raw.e)?);
            (
                KeyMaterial::Rsa(RsaPublicKey::new(&n, &e)?),
                Public::Rsa { n, e },
            )
        }
        ("EC", Some("P-256")) => {
            let point = sec1_point(&field("x", &raw.x)?, &field("y", &raw.y)?, 32)?;
            let key = crrl::p256::PublicKey::decode(&point).ok_or("not a point on P-256")?;
            (
                KeyMaterial::P256(key),
                Public::Ec {
                    point,
                    alg: Alg::ES256,
                },
            )
        }
        ("EC", Some("P-384")) => {
            let point = sec1_point(&field("x", &raw.x)?, &field("y", &raw.y)?, 48)?;
            let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(&point)
                .map_err(|_| "not a point on P-384")?;
            (
                KeyMaterial::P384(key),
                Public::Ec {
                    point,
                    alg: Alg::ES384,
                },
            )
        }
        ("OKP", Some("Ed25519")) => {
            let x: [u8; 32] = field("x", &raw.x)?
                .try_into()
                .map_err(|_| "Ed25519 `x` is not 32 bytes")?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(&x)
                .map_err(|_| "not an Ed25519 public key")?;
            (KeyMaterial::Ed25519(key), Public::Portable)
        }
        ("oct", _) => {
            let k = field("k", &raw.k)?;
            if k.is_empty() {
                return Err("`k` is empty".into());
            }
            (KeyMaterial::Oct(k), Public::Portable)
        }
        (kty, crv) => {
            return Err(format!(
                "unsupported key type {kty}{}",
                crv.map(|c| format!("/{c}")).unwrap_or_default()
            ))
        }
    };
    #[cfg(not(feature = "native-crypto"))]
    let _ = public;
    let key = Jwk {
        kid: raw.kid,
        alg,
        material,
        #[cfg(feature = "native-crypto")]
        native: super::native::NativeKey::new(public),
    };
    if let Some(alg) = key.alg {
        if !key.material.fits(alg) {
            return Err(format!(
                "`alg` {} does not fit a {} key",
                alg.name(),
                raw.kty
            ));
        }
    }
    Ok(key)
}

/// Uncompressed SEC1 encoding `04 || x || y`, with coordinates of exactly `len` bytes.
fn sec1_point(x: &[u8], y: &[u8], len: usize) -> Result<Vec<u8>, String> {
    if x.len() != len || y.len() != len {
        return Err(format!("EC coordinates must be {len} bytes"));
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(4);
    point.extend_from_slice(x);
    point.extend_from_slice(y);
    Ok(point)
}
