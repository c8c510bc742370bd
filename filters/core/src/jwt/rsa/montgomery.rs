//! `s^e mod n` for RSA verification: Montgomery arithmetic on 32-bit limbs.
//!
//! Why our own arithmetic rather than crypto-bigint's: crypto-bigint uses 64-bit limbs on
//! wasm32, and WebAssembly has no 64×64→128-bit multiply, so each limb product costs
//! several instructions; with 32-bit limbs it is one `i64.mul`. Inside Envoy's V8
//! (`bench verify`) an RS256 verification took ~205–230 µs with crypto-bigint's
//! `BoxedMontyForm` and ~130 µs here; forcing crypto-bigint to 32-bit limbs also gave
//! ~130 µs, but that is a global `--cfg` that slows ES384 (p384 uses crypto-bigint) by
//! 16 %. Squaring has its own product (each cross term computed once and doubled): for
//! e = 65537, 16 of the 17 products are squares.
//!
//! The algorithms are the textbook ones (Koç, Acar and Kaliski, "Analyzing and Comparing
//! Montgomery Multiplication Algorithms", 1996: separated operand scanning), with the
//! bounds that make them correct written next to the code. The tests compare every
//! operation with crypto-bigint on random moduli of many sizes.
//!
//! Everything here is public (key, signature, exponent), so the code is variable-time.

/// An odd modulus `n > 1` with its Montgomery constants, for `R = 2^(32·len)`.
#[derive(Clone)]
pub struct Modulus {
    /// `n` as little-endian 32-bit limbs, the top one nonzero.
    n: Vec<u32>,
    /// `−n⁻¹ mod 2³²`.
    n0_inv: u32,
    /// `R² mod n`, which takes a number into Montgomery form.
    r2: Vec<u32>,
}

impl Modulus {
    /// The modulus given big-endian; `None` unless it is odd and greater than 1.
    pub fn new(n_be: &[u8]) -> Option<Modulus> {
        let n = from_be(n_be, n_be.len().div_ceil(4))?;
        let len = n.len();
        if n.first()? & 1 == 0 || *n.last()? == 0 || (len == 1 && n[0] == 1) {
            return None;
        }
        // n⁻¹ mod 2³² by Newton's iteration x ← x(2 − n·x), which doubles the number of
        // correct low bits each time; x = n is correct to 3 bits (n² ≡ 1 mod 8 for odd n).
        let mut inv = n[0];
        for _ in 0..4 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(n[0].wrapping_mul(inv)));
        }
        // R² mod n: 1 doubled 2·32·len times, reduced after each doubling. Only at key
        // setup, and obviously right (a few ms for an 8192-bit key in V8).
        let mut r2 = vec![0u32; len];
        r2[0] = 1;
        for _ in 0..64 * len {
            let carry = shl1(&mut r2);
            if carry != 0 || !less_than(&r2, &n) {
                sub_assign(&mut r2, &n);
            }
        }
        Some(Modulus {
            n,
            n0_inv: inv.wrapping_neg(),
            r2,
        })
    }

    /// `base^e mod n` for big-endian `base` and `e ≥ 1`, big-endian in `4·len` bytes;
    /// `None` when `base ≥ n` (or `e = 0`). Left-to-right square-and-multiply.
    pub fn pow(&self, base_be: &[u8], e: u64) -> Option<Vec<u8>> {
        let len = self.n.len();
        let base = from_be(base_be, len)?;
        if e == 0 || !less_than(&base, &self.n) {
            return None;
        }
        let mut wide = vec![0u32; 2 * len];
        let mut x = vec![0u32; len];
        // x = base·R mod n (Montgomery form).
        self.mul(&base, &self.r2, &mut wide, &mut x);
        let mut acc = x.clone();
        let mut next = vec![0u32; len];
        let top = u64::BITS - 1 - e.leading_zeros();
        for i in (0..top).rev() {
            self.square(&acc, &mut wide, &mut next);
            std::mem::swap(&mut acc, &mut next);
            if (e >> i) & 1 == 1 {
                self.mul(&acc, &x, &mut wide, &mut next);
                std::mem::swap(&mut acc, &mut next);
            }
        }
        // Out of Montgomery form: REDC(acc) = acc·R⁻¹ mod n.
        wide.fill(0);
        wide[..len].copy_from_slice(&acc);
        self.redc(&mut wide, &mut next);
        Some(to_be(&next))
    }

    /// `out = a·b·R⁻¹ mod n` for `a, b < n`; `wide` is scratch of `2·len` limbs.
    fn mul(&self, a: &[u32], b: &[u32], wide: &mut [u32], out: &mut [u32]) {
        let len = self.n.len();
        wide.fill(0);
        for (i, &ai) in a.iter().enumerate() {
            let ai = u64::from(ai);
            let mut carry = 0u64;
            for (w, &bj) in wide[i..].iter_mut().zip(b) {
                // ≤ (2³²−1) + (2³²−1)² + (2³²−1) = 2⁶⁴ − 1: no overflow.
                let s = u64::from(*w) + ai * u64::from(bj) + carry;
                *w = s as u32;
                carry = s >> 32;
            }
            // Row i reaches limb i + len − 1; no earlier row wrote limb i + len.
            wide[i + len] = carry as u32;
        }
        self.redc(wide, out);
    }

    /// `out = a²·R⁻¹ mod n` for `a < n`: the cross terms once, doubled, plus the squares.
    fn square(&self, a: &[u32], wide: &mut [u32], out: &mut [u32]) {
        let len = self.n.len();
        wide.fill(0);
        for (i, &ai) in a.iter().enumerate() {
            let ai = u64::from(ai);
            let mut carry = 0u64;
            for (w, &aj) in wide[2 * i + 1..].iter_mut().zip(&a[i + 1..]) {
                let s = u64::from(*w) + ai * u64::from(aj) + carry;
                *w = s as u32;
                carry = s >> 32;
            }
            // Row i writes limbs 2i+1 ..= i+len−1; no earlier row wrote limb i + len.
            if let Some(w) = wide.get_mut(i + len) {
                *w = carry as u32;
            }
        }
        // 2·(cross terms) ≤ a² < 2^(64·len): the doubling and the squares cannot overflow.
        shl1(wide);
        let mut carry = 0u64;
        for (pair, &ai) in wide.chunks_exact_mut(2).zip(a) {
            let sq = u64::from(ai) * u64::from(ai);
            let s = u64::from(pair[0]) + (sq & 0xffff_ffff) + carry;
            pair[0] = s as u32;
            let s = u64::from(pair[1]) + (sq >> 32) + (s >> 32);
            pair[1] = s as u32;
            carry = s >> 32;
        }
        self.redc(wide, out);
    }

    /// Montgomery reduction: `out = T·R⁻¹ mod n` for the `2·len`-limb `T = wide < n·R`
    /// (destroys `wide`). Adding `m·n·2^(32i)` with `m = −T[i]·n⁻¹` clears limb i; after
    /// `len` rounds `T + M·n` is a multiple of R, and `(T + M·n)/R < (n·R + R·n)/R = 2n`,
    /// so one conditional subtraction finishes.
    fn redc(&self, wide: &mut [u32], out: &mut [u32]) {
        let len = self.n.len();
        // The carry out of limb i + len, owed to limb i + len + 1 (added next round).
        let mut pending = 0u64;
        for i in 0..len {
            let m = u64::from(wide[i].wrapping_mul(self.n0_inv));
            let mut carry = 0u64;
            for (w, &nj) in wide[i..].iter_mut().zip(&self.n) {
                let s = u64::from(*w) + m * u64::from(nj) + carry;
                *w = s as u32;
                carry = s >> 32;
            }
            let s = u64::from(wide[i + len]) + carry + pending;
            wide[i + len] = s as u32;
            pending = s >> 32;
        }
        // The result is `pending·R + wide[len..]`, below 2n.
        out.copy_from_slice(&wide[len..]);
        if pending != 0 || !less_than(out, &self.n) {
            sub_assign(out, &self.n);
        }
    }
}

/// `len` little-endian limbs from big-endian bytes; `None` if they do not fit.
fn from_be(be: &[u8], len: usize) -> Option<Vec<u32>> {
    if be.len() > 4 * len {
        return None;
    }
    let mut limbs = vec![0u32; len];
    for (i, &byte) in be.iter().rev().enumerate() {
        limbs[i / 4] |= u32::from(byte) << (8 * (i % 4));
    }
    Some(limbs)
}

fn to_be(limbs: &[u32]) -> Vec<u8> {
    limbs.iter().rev().flat_map(|l| l.to_be_bytes()).collect()
}

fn less_than(a: &[u32], b: &[u32]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

/// `a −= b` modulo `2^(32·len)`.
fn sub_assign(a: &mut [u32], b: &[u32]) {
    let mut borrow = false;
    for (x, &y) in a.iter_mut().zip(b) {
        let (d, b1) = x.overflowing_sub(y);
        let (d, b2) = d.overflowing_sub(u32::from(borrow));
        *x = d;
        borrow = b1 || b2;
    }
}

/// `a <<= 1`, returning the bit shifted out.
fn shl1(a: &mut [u32]) -> u32 {
    let mut carry = 0;
    for x in a.iter_mut() {
        let out = *x >> 31;
        *x = (*x << 1) | carry;
        carry = out;
    }
    carry
}

#[cfg(test)]
mod tests {
    //! Every operation against crypto-bigint, on random odd moduli of 1 to 70 limbs
    //! (the 64-limb 2048-bit case included) and on the edges (base 0, 1, n − 1).

    use super::*;
    use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
    use crypto_bigint::{BoxedUint, Odd};
    use proptest::prelude::*;

    fn reference(n: &[u8], base: &[u8], e: u64) -> Vec<u8> {
        let bits = u32::try_from(8 * n.len().div_ceil(8).max(1) * 8).expect("small");
        let modulus = BoxedUint::from_be_slice(n, bits).expect("fits");
        let params = BoxedMontyParams::new_vartime(Odd::new(modulus).expect("odd"));
        let base = BoxedUint::from_be_slice(base, bits).expect("fits");
        let exp = BoxedUint::from(e);
        let r = BoxedMontyForm::new(base, &params).pow(&exp).retrieve();
        r.to_be_bytes().to_vec()
    }

    /// `ours` and `theirs` as numbers (they differ in padding).
    fn same(ours: &[u8], theirs: &[u8]) -> bool {
        let trim = |b: &[u8]| {
            b.iter()
                .skip_while(|&&x| x == 0)
                .copied()
                .collect::<Vec<_>>()
        };
        trim(ours) == trim(theirs)
    }

    /// An odd modulus with a nonzero top byte from random bytes.
    fn modulus(mut n: Vec<u8>) -> Vec<u8> {
        n[0] |= 0x80;
        if let Some(last) = n.last_mut() {
            *last |= 1;
        }
        n
    }

    /// `base` reduced below `n` the cheap way: clear its top bit (n's is set).
    fn below(mut base: Vec<u8>, n: &[u8]) -> Vec<u8> {
        base.resize(n.len(), 0);
        base[0] &= 0x7f;
        base
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn pow_matches_crypto_bigint(
            n in prop::collection::vec(any::<u8>(), 1..280),
            base in prop::collection::vec(any::<u8>(), 280),
            e in prop_oneof![Just(65537u64), Just(3u64), 1u64..(1 << 33)],
        ) {
            let n = modulus(n);
            prop_assume!(n != [1]);
            let base = below(base, &n);
            let m = Modulus::new(&n).expect("odd modulus");
            let ours = m.pow(&base, e).expect("base below n");
            prop_assert!(same(&ours, &reference(&n, &base, e)), "n={n:02x?} base={base:02x?} e={e}");
        }
    }

    #[test]
    fn rsa_sizes_and_edge_bases() {
        for bytes in [256usize, 257, 384, 512, 1024] {
            let n = modulus(vec![0xa5; bytes]);
            let m = Modulus::new(&n).expect("odd");
            let mut n_minus_1 = n.clone();
            *n_minus_1.last_mut().expect("bytes") -= 1;
            let all_ones = below(vec![0xff; bytes], &n);
            for base in [vec![0u8], vec![1], vec![2], n_minus_1, all_ones] {
                for e in [1, 3, 65537, (1 << 33) - 1] {
                    let ours = m.pow(&base, e).expect("below n");
                    assert!(
                        same(&ours, &reference(&n, &base, e)),
                        "{bytes} bytes, e = {e}"
                    );
                }
            }
            assert!(m.pow(&n, 65537).is_none(), "base = n");
            assert!(m.pow(&vec![0xff; bytes], 65537).is_none(), "base > n");
            assert!(m.pow(&vec![1; bytes + 1], 65537).is_none(), "too long");
            assert!(m.pow(&[1], 0).is_none(), "e = 0");
        }
    }

    #[test]
    fn only_odd_moduli_above_one() {
        assert!(Modulus::new(&[]).is_none());
        assert!(Modulus::new(&[0]).is_none());
        assert!(Modulus::new(&[1]).is_none());
        assert!(Modulus::new(&[0, 0, 0, 1]).is_none(), "top limb zero");
        assert!(Modulus::new(&[0x12, 0x34]).is_none(), "even");
        assert!(Modulus::new(&[3]).is_some());
        let m = Modulus::new(&[0xff; 256]).expect("odd");
        assert_eq!(m.n[0].wrapping_mul(m.n0_inv), u32::MAX, "n·(−n⁻¹) ≡ −1");
    }
}
