//! RSA signature verification for RS256/384/512 (RSASSA-PKCS1-v1_5) and PS256/384/512
//! (RSASSA-PSS), RFC 8017 and RFC 7518 §3.3 and §3.5, on our own Montgomery arithmetic
//! ([`montgomery`], which says why it is not crypto-bigint's).
//!
//! Why not the `rsa` crate: verifying takes one exponentiation by the public exponent,
//! and `rsa` 0.10 does it with a generic fixed-window exponentiation that costs about
//! twice the multiplications the usual exponent 65537 needs, on 64-bit limbs that wasm32
//! multiplies slowly. Inside Envoy's V8 an RS256 verification took ~310 µs with it
//! (`bench verify`, docs/jwt-verifiers.md).
//!
//! Decisions:
//! - **Keys are prepared once**, when the JWKS is parsed: the modulus's Montgomery
//!   constants (R² mod n, −n⁻¹ mod 2³²), so no request pays for them.
//! - **Any odd public exponent 3 ≤ e < 2³³** is accepted (the range BoringSSL, which
//!   Envoy's own jwt_authn uses, and the `rsa` crate accept), and `s^e mod n` is computed
//!   by left-to-right square-and-multiply over the bits of `e`. For e = 65537 = 2¹⁶ + 1
//!   that is exactly 16 squarings and 1 multiplication, so the common case needs no
//!   special path; the worst exponent costs 32 of each, about 4× that. The exponent,
//!   the signature and the key are all public, so running time that depends on them
//!   leaks nothing. e = 1 (a "signature" equal to its message) and even exponents
//!   (never valid RSA keys) are refused when the key is parsed.
//! - **Modulus size 2048 to 8192 bits.** 2048 is NIST SP 800-131A's minimum; 8192 bounds
//!   the cost of one verification (about 16× a 2048-bit one) and covers every key size
//!   issuers use. The signature must be exactly as long as the modulus in bytes
//!   (RFC 8017 §8.2.2 step 1) and, as an integer, smaller than it (§5.2.2).
//! - **PKCS#1 v1.5 is checked by comparing the whole encoding** with the one valid
//!   encoding of the message's digest (RFC 8017 §8.2.2 step 3), never by parsing it:
//!   parsers that skip padding or read the DigestInfo leniently are what Bleichenbacher's
//!   2006 forgery against e = 3 exploits. DigestInfo with the NULL parameters is the only
//!   form accepted.
//! - **PSS requires MGF1 with the signature's hash and a salt as long as that hash**,
//!   which is what RFC 7518 §3.5 specifies for PS256/384/512; a signature with any other
//!   salt length is refused.

use core::fmt;
use core::iter::{once, repeat_n};

use sha2::{Digest, Sha256, Sha384, Sha512};

mod montgomery;
use montgomery::Modulus;

/// Smallest modulus accepted (NIST SP 800-131A).
pub const MIN_BITS: u32 = 2048;
/// Largest modulus accepted: bounds what one verification can cost.
pub const MAX_BITS: u32 = 8192;
/// Public exponents must be below this (BoringSSL's and the `rsa` crate's limit).
const MAX_EXPONENT: u64 = 1 << 33;

/// An RSA public key ready to verify: the modulus with its Montgomery constants,
/// computed once when the key is parsed, and the public exponent.
#[derive(Clone)]
pub struct RsaPublicKey {
    modulus: Modulus,
    e: u64,
    /// Significant bits of the modulus.
    bits: u32,
    /// Length of the modulus in bytes (`k` in RFC 8017), which every signature must have.
    len: usize,
}

/// The hashes RS*/PS* use, with the DER `DigestInfo` prefix PKCS#1 v1.5 puts before the
/// digest (RFC 8017 §9.2, note 1).
pub trait RsaHash: Digest {
    const DIGEST_INFO: &'static [u8];
}

impl RsaHash for Sha256 {
    const DIGEST_INFO: &'static [u8] = &[
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
}

impl RsaHash for Sha384 {
    const DIGEST_INFO: &'static [u8] = &[
        0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02,
        0x05, 0x00, 0x04, 0x30,
    ];
}

impl RsaHash for Sha512 {
    const DIGEST_INFO: &'static [u8] = &[
        0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03,
        0x05, 0x00, 0x04, 0x40,
    ];
}

impl RsaPublicKey {
    /// A key from the big-endian modulus and exponent (a JWK's decoded `n` and `e`).
    /// Leading zero bytes are ignored in both, as RFC 7518 §6.3.1 forbids them but some
    /// issuers send them anyway.
    pub fn new(n: &[u8], e: &[u8]) -> Result<Self, String> {
        let n = strip_leading_zeros(n);
        // Bound the length before doing any arithmetic on it.
        if n.len() < (MIN_BITS / 8) as usize || n.len() > (MAX_BITS / 8) as usize {
            return Err(format!(
                "RSA modulus of {} bytes; {MIN_BITS} to {MAX_BITS} bits supported",
                n.len()
            ));
        }
        // The first byte is nonzero, so this counts the significant bits.
        let bits = 8 * n.len() as u32 - n.first().map_or(8, |b| b.leading_zeros());
        if !(MIN_BITS..=MAX_BITS).contains(&bits) {
            return Err(format!(
                "RSA modulus of {bits} bits; {MIN_BITS} to {MAX_BITS} bits supported"
            ));
        }
        let e = exponent(e)?;
        let modulus =
            Modulus::new(n).ok_or("RSA modulus is even, so not a product of two primes")?;
        Ok(RsaPublicKey {
            modulus,
            e,
            bits,
            len: n.len(),
        })
    }

    /// RSASSA-PKCS1-v1_5 verification (RFC 8017 §8.2.2) of `signature` over `msg`.
    pub fn verify_pkcs1v15<H: RsaHash>(&self, msg: &[u8], signature: &[u8]) -> bool {
        self.public_op(signature)
            .is_some_and(|em| pkcs1v15_encoding_ok::<H>(&em, msg))
    }

    /// RSASSA-PSS verification (RFC 8017 §8.1.2) of `signature` over `msg`, with MGF1 over
    /// the same hash and a salt of the hash's length (RFC 7518 §3.5).
    pub fn verify_pss<H: Digest>(&self, msg: &[u8], signature: &[u8]) -> bool {
        self.public_op(signature)
            .is_some_and(|mut m| pss_encoding_ok::<H>(&mut m, self.bits as usize, msg))
    }

    /// RSAVP1 and I2OSP (RFC 8017 §5.2.2, §8.2.2 step 2): `signature^e mod n` as `k` bytes,
    /// or `None` when the signature is not `k` bytes long or not smaller than `n`.
    fn public_op(&self, signature: &[u8]) -> Option<Vec<u8>> {
        if signature.len() != self.len {
            return None;
        }
        // `None` when the signature, as a number, is not below n (§5.2.2 step 1).
        let mut m = self.modulus.pow(signature, self.e)?;
        // `m` is padded to whole 32-bit limbs; the bytes above `k` are zero since m < n.
        m.drain(..m.len().checked_sub(self.len)?);
        Some(m)
    }
}

impl fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaPublicKey")
            .field("bits", &self.bits)
            .field("e", &self.e)
            .finish_non_exhaustive()
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// The public exponent as a number: odd, at least 3, below 2³³.
fn exponent(e: &[u8]) -> Result<u64, String> {
    let e = strip_leading_zeros(e);
    let value = (e.len() <= 8).then(|| e.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)));
    match value {
        Some(v) if v >= 3 && v % 2 == 1 && v < MAX_EXPONENT => Ok(v),
        Some(v) => Err(format!(
            "RSA public exponent {v} is not odd, at least 3 and below 2^33"
        )),
        None => Err(format!(
            "RSA public exponent of {} bytes; below 2^33 supported",
            e.len()
        )),
    }
}

/// EMSA-PKCS1-v1_5 check (RFC 8017 §8.2.2 steps 3–4): `em` must equal
/// `00 01 FF…FF 00 || DigestInfo || H(msg)`, compared byte for byte over its whole length.
fn pkcs1v15_encoding_ok<H: RsaHash>(em: &[u8], msg: &[u8]) -> bool {
    let hash = H::digest(msg);
    let t_len = H::DIGEST_INFO.len() + hash.len();
    // At least 8 bytes of FF padding (§9.2 step 3); always true for 2048-bit and larger keys.
    let Some(ps_len) = em.len().checked_sub(t_len + 3).filter(|&l| l >= 8) else {
        return false;
    };
    let expected = [0x00, 0x01]
        .into_iter()
        .chain(repeat_n(0xff, ps_len))
        .chain(once(0x00))
        .chain(H::DIGEST_INFO.iter().copied())
        .chain(hash.iter().copied());
    // Both sides are em.len() bytes long; every byte is compared whatever differs first.
    em.iter()
        .zip(expected)
        .fold(0u8, |diff, (a, b)| diff | (a ^ b))
        == 0
}

/// EMSA-PSS-VERIFY (RFC 8017 §9.1.2) with MGF1 over `H` and a salt of `H`'s output
/// length. `m` is the `k`-byte output of the RSA operation for a `mod_bits`-bit modulus;
/// it is unmasked in place.
fn pss_encoding_ok<H: Digest>(m: &mut [u8], mod_bits: usize, msg: &[u8]) -> bool {
    let h_len = <H as Digest>::output_size();
    let s_len = h_len;
    // emBits = modBits − 1 (§8.1.2 step 2c): when that is a multiple of 8 the encoding is
    // one byte shorter than the modulus, and that byte must be zero (I2OSP's check).
    let Some(em_bits) = mod_bits.checked_sub(1) else {
        return false;
    };
    let em_len = em_bits.div_ceil(8);
    if m.len() != mod_bits.div_ceil(8) {
        return false;
    }
    let (zero, em) = m.split_at_mut(m.len() - em_len);
    // Step 3, then step 4: the trailer byte.
    if zero.iter().any(|&b| b != 0) || em_len < h_len + s_len + 2 || em[em_len - 1] != 0xbc {
        return false;
    }
    let (masked_db, rest) = em.split_at_mut(em_len - h_len - 1);
    let h = &rest[..h_len];
    // Step 6: the bits above emBits must be zero.
    let top_mask = 0xffu8 >> (8 * em_len - em_bits);
    if masked_db[0] & !top_mask != 0 {
        return false;
    }
    // Steps 7–9: DB = maskedDB xor MGF1(H, len), then clear the bits above emBits again.
    mgf1_xor::<H>(h, masked_db);
    let db = masked_db;
    db[0] &= top_mask;
    // Step 10: PS (zeros), then 0x01, then the salt.
    let ps_len = em_len - h_len - s_len - 2;
    if db[..ps_len].iter().any(|&b| b != 0) || db[ps_len] != 0x01 {
        return false;
    }
    let salt = &db[ps_len + 1..];
    // Steps 12–14: H' = Hash(00×8 || Hash(msg) || salt) must equal H.
    let expected = H::new()
        .chain_update([0u8; 8])
        .chain_update(H::digest(msg))
        .chain_update(salt)
        .finalize();
    expected
        .iter()
        .zip(h)
        .fold(0u8, |diff, (a, b)| diff | (a ^ b))
        == 0
}

/// XORs MGF1(`seed`) (RFC 8017 §B.2.1) into `out`.
fn mgf1_xor<H: Digest>(seed: &[u8], out: &mut [u8]) {
    for (counter, chunk) in (0u32..).zip(out.chunks_mut(<H as Digest>::output_size())) {
        let block = H::new()
            .chain_update(seed)
            .chain_update(counter.to_be_bytes())
            .finalize();
        chunk
            .iter_mut()
            .zip(block.iter())
            .for_each(|(o, m)| *o ^= m);
    }
}

#[cfg(test)]
mod tests {
    //! The padding checks against hand-built encodings, tampered one way at a time.
    //! (Real signatures are covered by tests/jwt_verify.rs and tests/wycheproof.rs.)

    use super::*;

    const MSG: &[u8] = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9";
    const K: usize = 256;

    fn pkcs1v15<H: RsaHash>(msg: &[u8]) -> Vec<u8> {
        let t: Vec<u8> = H::DIGEST_INFO
            .iter()
            .copied()
            .chain(H::digest(msg))
            .collect();
        let mut em = vec![0x00, 0x01];
        em.resize(K - t.len() - 1, 0xff);
        em.push(0x00);
        em.extend(t);
        em
    }

    /// EMSA-PSS-ENCODE (RFC 8017 §9.1.1) with a given salt, as the `k` bytes an RSA
    /// operation with a `mod_bits`-bit modulus yields (a leading zero when emLen < k).
    fn pss<H: Digest>(msg: &[u8], salt: &[u8], mod_bits: usize) -> Vec<u8> {
        let h_len = <H as Digest>::output_size();
        let em_bits = mod_bits - 1;
        let em_len = em_bits.div_ceil(8);
        let h = H::new()
            .chain_update([0u8; 8])
            .chain_update(H::digest(msg))
            .chain_update(salt)
            .finalize();
        let mut db = vec![0u8; em_len - salt.len() - h_len - 2];
        db.push(0x01);
        db.extend_from_slice(salt);
        mgf1_xor::<H>(&h, &mut db);
        db[0] &= 0xff >> (8 * em_len - em_bits);
        let mut m = vec![0u8; mod_bits.div_ceil(8) - em_len];
        m.extend(db);
        m.extend_from_slice(&h);
        m.push(0xbc);
        m
    }

    fn pss_ok<H: Digest>(m: &[u8], mod_bits: usize, msg: &[u8]) -> bool {
        pss_encoding_ok::<H>(&mut m.to_vec(), mod_bits, msg)
    }

    #[test]
    fn pkcs1v15_accepts_only_the_exact_encoding() {
        let good = pkcs1v15::<Sha256>(MSG);
        assert!(pkcs1v15_encoding_ok::<Sha256>(&good, MSG));
        assert!(pkcs1v15_encoding_ok::<Sha384>(
            &pkcs1v15::<Sha384>(MSG),
            MSG
        ));
        assert!(pkcs1v15_encoding_ok::<Sha512>(
            &pkcs1v15::<Sha512>(MSG),
            MSG
        ));

        assert!(!pkcs1v15_encoding_ok::<Sha256>(&good, b"another message"));
        // The right digest announced as another hash, and the other way round.
        assert!(!pkcs1v15_encoding_ok::<Sha384>(&good, MSG));
        assert!(!pkcs1v15_encoding_ok::<Sha256>(
            &pkcs1v15::<Sha384>(MSG),
            MSG
        ));

        let tampered = |at: usize, value: u8| {
            let mut em = good.clone();
            em[at] = value;
            !pkcs1v15_encoding_ok::<Sha256>(&em, MSG)
        };
        assert!(tampered(0, 0x01), "first byte must be 00");
        assert!(tampered(1, 0x02), "block type must be 01");
        assert!(tampered(1, 0x00), "block type must be 01");
        assert!(tampered(100, 0xfe), "padding must be all FF");
        let sep = K - 32 - 19 - 1;
        assert!(tampered(sep, 0x01), "separator must be 00");
        assert!(tampered(sep + 2, 0x30), "DigestInfo (SEQUENCE length)");
        assert!(tampered(sep + 15, 0x02), "DigestInfo (hash OID)");
        assert!(tampered(K - 1, good[K - 1] ^ 1), "digest");

        // DigestInfo without the NULL parameters (05 00), padded to the same length.
        let mut no_null = vec![0x00, 0x01];
        no_null.resize(K - 17 - 32 - 1, 0xff);
        no_null.push(0x00);
        no_null.extend_from_slice(&[
            0x30, 0x2f, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x04, 0x20,
        ]);
        no_null.extend_from_slice(&Sha256::digest(MSG));
        assert_eq!(no_null.len(), K);
        assert!(!pkcs1v15_encoding_ok::<Sha256>(&no_null, MSG));

        // Garbage hidden after the digest with less padding (the e = 3 forgery's shape).
        let mut short = good.clone();
        short.drain(2..12);
        short.extend_from_slice(&[0xaa; 10]);
        assert!(!pkcs1v15_encoding_ok::<Sha256>(&short, MSG));
        // Padding shorter than 8 bytes (a modulus far too small for the hash).
        let mut tiny = vec![0x00, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00];
        tiny.extend_from_slice(Sha256::DIGEST_INFO);
        tiny.extend_from_slice(&Sha256::digest(MSG));
        assert!(!pkcs1v15_encoding_ok::<Sha256>(&tiny, MSG));
        tiny.insert(2, 0xff);
        assert!(
            pkcs1v15_encoding_ok::<Sha256>(&tiny, MSG),
            "8 bytes are enough"
        );
        assert!(!pkcs1v15_encoding_ok::<Sha256>(&[], MSG));
    }

    #[test]
    fn pss_accepts_a_hash_length_salt_only() {
        for mod_bits in [2048, 2049, 2056, 3072] {
            let good = pss::<Sha256>(MSG, &[7; 32], mod_bits);
            assert!(pss_ok::<Sha256>(&good, mod_bits, MSG), "{mod_bits}");
        }
        assert!(pss_ok::<Sha384>(
            &pss::<Sha384>(MSG, &[7; 48], 2048),
            2048,
            MSG
        ));
        assert!(pss_ok::<Sha512>(
            &pss::<Sha512>(MSG, &[7; 64], 2048),
            2048,
            MSG
        ));

        let good = pss::<Sha256>(MSG, &[7; 32], 2048);
        assert!(!pss_ok::<Sha256>(&good, 2048, b"another message"));
        assert!(!pss_ok::<Sha384>(&good, 2048, MSG), "wrong hash");
        for salt_len in [0, 20, 31, 33, 64] {
            let em = pss::<Sha256>(MSG, &vec![7; salt_len], 2048);
            assert!(
                !pss_ok::<Sha256>(&em, 2048, MSG),
                "salt of {salt_len} bytes"
            );
        }

        let tampered = |at: usize, flip: u8| {
            let mut em = good.clone();
            em[at] ^= flip;
            !pss_ok::<Sha256>(&em, 2048, MSG)
        };
        assert!(tampered(255, 0xbc ^ 0xcc), "trailer must be BC");
        assert!(tampered(0, 0x80), "bit above emBits must be zero");
        // emLen = 256: DB = 190 zero bytes, 01 at 190, salt at 191..223; H at 223..255.
        assert!(tampered(10, 0x01), "zero padding of DB");
        assert!(tampered(190, 0x01), "the 01 before the salt");
        assert!(tampered(200, 0x01), "salt");
        assert!(tampered(230, 0x01), "H");

        // A 2049-bit modulus: emLen = 256 < k = 257, so the RSA output's first byte
        // must be zero (RFC 8017 §8.1.2 step 2c).
        let mut wide = pss::<Sha256>(MSG, &[7; 32], 2049);
        assert_eq!((wide.len(), wide[0]), (257, 0));
        wide[0] = 1;
        assert!(!pss_ok::<Sha256>(&wide, 2049, MSG));

        // The wrong length for the modulus, and too short to hold anything.
        assert!(!pss_ok::<Sha256>(&good[1..], 2048, MSG));
        let mut short = [0u8; 40];
        short[39] = 0xbc;
        assert!(!pss_ok::<Sha256>(&short, 320, MSG));
        assert!(!pss_ok::<Sha256>(&[], 0, MSG));
    }

    #[test]
    fn keys_are_checked_when_parsed() {
        // 2^bits − 1: odd, exactly `bits` long.
        let n = |bits: usize| vec![0xffu8; bits / 8];
        let e = [0x01, 0x00, 0x01];
        assert!(RsaPublicKey::new(&n(2048), &e).is_ok());
        assert!(RsaPublicKey::new(&n(8192), &e).is_ok());
        // Leading zeros are not bits.
        let mut padded = vec![0, 0];
        padded.extend(n(2048));
        assert_eq!(
            RsaPublicKey::new(&padded, &[0, 1, 0, 1]).map(|k| k.bits),
            Ok(2048)
        );
        let mut short = n(2048);
        short[0] = 0x7f;
        assert!(RsaPublicKey::new(&short, &e).is_err(), "2047 bits");
        assert!(RsaPublicKey::new(&n(8200), &e).is_err());
        assert!(RsaPublicKey::new(&[], &e).is_err());
        let mut even = n(2048);
        even[255] = 0xfe;
        assert!(RsaPublicKey::new(&even, &e).is_err(), "even modulus");
        for bad_e in [&[][..], &[1], &[2], &[1, 0, 0], &[2, 0, 0, 0, 1], &[1; 9]] {
            assert!(RsaPublicKey::new(&n(2048), bad_e).is_err(), "e = {bad_e:?}");
        }
        assert!(RsaPublicKey::new(&n(2048), &[3]).is_ok());
        assert!(RsaPublicKey::new(&n(2048), &[1, 0xff, 0xff, 0xff, 0xff]).is_ok());
    }

    #[test]
    fn signatures_of_the_wrong_size_or_not_below_n_are_refused() {
        let mut n = vec![0xffu8; K];
        n[0] = 0xc0;
        let key = RsaPublicKey::new(&n, &[1, 0, 1]).expect("key");
        assert!(key.public_op(&[1; K]).is_some());
        assert!(key.public_op(&[1; K - 1]).is_none());
        assert!(key.public_op(&[1; K + 1]).is_none());
        assert!(key.public_op(&n).is_none(), "s = n");
        assert!(key.public_op(&[0xff; K]).is_none(), "s > n");
    }

    #[test]
    fn exponentiation_matches_known_powers() {
        // n = 2^2047 + 1 is odd and 2048 bits long, and 2^2047 ≡ −1 (mod n), so
        // 2^e ≡ (−1)^(e div 2047) · 2^(e mod 2047): one set bit, or n minus one.
        let mut n = vec![0u8; K];
        n[0] = 0x80;
        n[K - 1] = 0x01;
        let mut two = vec![0u8; K];
        two[K - 1] = 2;
        for e in [3u64, 5, 17, 65537, (1 << 32) + 1, (1 << 33) - 1] {
            let key = RsaPublicKey::new(&n, &e.to_be_bytes()).expect("key");
            let bit = (e % 2047) as usize;
            let mut power = vec![0u8; K];
            power[K - 1 - bit / 8] = 1 << (bit % 8);
            let want = if (e / 2047) % 2 == 1 {
                sub(&n, &power)
            } else {
                power
            };
            assert_eq!(key.public_op(&two), Some(want), "2^{e} mod n");
        }
    }

    /// a − b for big-endian numbers of equal length, a ≥ b.
    fn sub(a: &[u8], b: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; a.len()];
        let mut borrow = 0i16;
        for i in (0..a.len()).rev() {
            let d = i16::from(a[i]) - i16::from(b[i]) - borrow;
            borrow = i16::from(d < 0);
            out[i] = d.rem_euclid(256) as u8;
        }
        out
    }
}
