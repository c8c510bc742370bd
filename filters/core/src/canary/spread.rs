//! How keys and draws become backends.
//!
//! A sticky key goes to the backend that wins weighted rendezvous hashing
//! (highest `weight / -ln(hash(key, backend))`): each backend gets keys in
//! proportion to its weight, every worker and every Envoy picks the same one,
//! and changing the weights moves only the keys that must move (raising the
//! canary's weight moves users stable → canary, never the other way).
//!
//! Requests without a key take a weighted pick from an additive recurrence
//! (the golden-ratio Weyl sequence) started at a random point per VM: as
//! unpredictable as a random draw from the client's side, but the shares hold
//! within a fraction of a point after a few hundred requests, where independent
//! draws wander by several points.

/// 2^64 / φ: consecutive positions are spread as evenly as possible.
const GOLDEN_STEP: u64 = 0x9E37_79B9_7F4A_7C15;

/// A VM's weighted-pick sequence.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    position: u64,
}

impl Spread {
    pub fn new(seed: u64) -> Self {
        Spread { position: seed }
    }

    /// The next position in `[0, 2^64)`.
    pub fn next_position(&mut self) -> u64 {
        self.position = self.position.wrapping_add(GOLDEN_STEP);
        self.position
    }
}

/// Index of the weight that `position` (in `[0, 2^64)`) falls in, laying the
/// weights end to end; None when they are all zero.
pub fn weighted_index(weights: &[u32], position: u64) -> Option<usize> {
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    if total == 0 {
        return None;
    }
    // Scaled to [0, total): the high half of position × total.
    let mut point = ((u128::from(position) * u128::from(total)) >> 64) as u64;
    for (i, w) in weights.iter().enumerate() {
        let w = u64::from(*w);
        if point < w {
            return Some(i);
        }
        point -= w;
    }
    None
}

/// Index of the backend weighted rendezvous hashing gives `key`; None when
/// every weight is zero. `backend_hashes[i]` is [`hash`] of backend i's name.
pub fn rendezvous(key: &str, weights: &[u32], backend_hashes: &[u64]) -> Option<usize> {
    let key = hash(key);
    let mut best: Option<(usize, f64)> = None;
    for (i, (w, h)) in weights.iter().zip(backend_hashes).enumerate() {
        if *w == 0 {
            continue;
        }
        // A uniform draw in (0, 1) from 53 bits of the pair's hash.
        let u = ((mix(key ^ h) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let score = f64::from(*w) / -u.ln();
        if best.is_none_or(|(_, s)| score > s) {
            best = Some((i, score));
        }
    }
    best.map(|(i, _)| i)
}

/// FNV-1a, then a finalizer so that similar keys (`user-1`, `user-2`) land far apart.
pub fn hash(s: &str) -> u64 {
    let fnv = s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    mix(fnv)
}

/// splitmix64's finalizer.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// splitmix64: keys for `setCookie`, from a per-VM random seed. Not secret
/// (a sticky key only picks a backend), but not guessable across VMs either.
#[derive(Debug, Clone, Copy)]
pub struct KeyGen {
    state: u64,
}

impl KeyGen {
    pub fn new(seed: u64) -> Self {
        KeyGen { state: seed }
    }

    /// 16 hex digits.
    pub fn next_key(&mut self) -> String {
        self.state = self.state.wrapping_add(GOLDEN_STEP);
        format!("{:016x}", mix(self.state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(counts: &[usize]) -> Vec<f64> {
        let total: usize = counts.iter().sum();
        counts
            .iter()
            .map(|c| *c as f64 / total as f64 * 100.0)
            .collect()
    }

    #[test]
    fn the_sequence_keeps_weighted_shares_tight() {
        for seed in [0, 1, 0xdead_beef, u64::MAX] {
            let mut s = Spread::new(seed);
            let mut counts = [0usize; 2];
            for _ in 0..300 {
                counts[weighted_index(&[1, 2], s.next_position()).unwrap()] += 1;
            }
            let share = shares(&counts);
            assert!(
                (share[0] - 100.0 / 3.0).abs() < 1.0,
                "seed {seed}: {share:?}"
            );
            let mut counts = [0usize; 3];
            for _ in 0..300 {
                counts[weighted_index(&[95, 5, 0], s.next_position()).unwrap()] += 1;
            }
            assert_eq!(counts[2], 0, "weight 0 gets nothing");
            assert!(
                (shares(&counts)[1] - 5.0).abs() < 1.0,
                "seed {seed}: {counts:?}"
            );
        }
    }

    #[test]
    fn weighted_index_edges() {
        assert_eq!(weighted_index(&[0, 0], 5), None);
        assert_eq!(weighted_index(&[0, 3], 0), Some(1));
        assert_eq!(weighted_index(&[3, 0], u64::MAX), Some(0));
        assert_eq!(weighted_index(&[1, 1], u64::MAX), Some(1));
    }

    #[test]
    fn rendezvous_splits_keys_by_weight_and_is_stable() {
        let names = [hash("stable"), hash("canary")];
        let mut counts = [0usize; 2];
        for i in 0..20_000 {
            counts[rendezvous(&format!("user-{i}"), &[1, 2], &names).unwrap()] += 1;
        }
        let share = shares(&counts);
        assert!((share[0] - 100.0 / 3.0).abs() < 1.5, "{share:?}");
        // Raising the canary's weight only moves users to it.
        for i in 0..2_000 {
            let key = format!("user-{i}");
            let before = rendezvous(&key, &[95, 5], &names).unwrap();
            let after = rendezvous(&key, &[50, 50], &names).unwrap();
            assert!(!(before == 1 && after == 0), "{key} left the canary");
        }
        assert_eq!(rendezvous("x", &[0, 0], &names), None);
        assert_eq!(rendezvous("x", &[0, 7], &names), Some(1));
    }

    #[test]
    fn keys_are_16_hex_digits_and_differ() {
        let mut g = KeyGen::new(42);
        let (a, b) = (g.next_key(), g.next_key());
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
