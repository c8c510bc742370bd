//! Which slots of a rule's counter table a bucket may use: a keyed hash, with
//! one random key per Envoy that all its workers share.
//!
//! Keyed, because clients choose the values that become buckets. With a public
//! hash (FNV-1a, before) anyone could compute offline eight `x-user-id` values
//! whose slots were a victim's eight, take them, and the victim's requests went
//! uncounted: 30 passed a limit of 5 (issue 16, item 3). SipHash is a pseudo-
//! random function made for exactly this (hash flooding; Rust's and Python's
//! hash tables use it): without the key, where a value lands cannot be told
//! from the value, so colliding with a given bucket takes luck, not arithmetic.
//! SipHash-2-4 rather than std's 1-3: one hash per rule per request, and the
//! conservative variant costs nothing noticeable there.
//!
//! Shared, because a bucket must land on the same slots whichever worker
//! counts it. The key lives in shared data under [`KEY_NAME`]: the first worker
//! to find it missing writes a random one with a compare-and-swap, a worker
//! that loses that race reads the winner's, and a restarted VM reads it back.

use siphasher::sip::SipHasher24;

use super::counter::{PROBES, SLOTS};
use super::shared::{SharedData, StoreError, ABSENT, CAS_ATTEMPTS};

/// The shared-data key of the slot hash key (raw 16 bytes). Named after the
/// hash, so a change of hash never reads an old key as its own.
pub const KEY_NAME: &str = "tollgate.ratelimit|slot-hash-key|siphash-2-4";

/// Bytes of a key.
pub const KEY_LEN: usize = 16;

/// Places buckets in a rule's table.
#[derive(Debug, Clone, Copy)]
pub struct SlotHasher(SipHasher24);

impl SlotHasher {
    pub fn new(key: &[u8; KEY_LEN]) -> Self {
        SlotHasher(SipHasher24::new_with_key(key))
    }

    /// The slots `bucket` may live in, in probing order. Rules without
    /// `Distinct` have the single bucket "" and so always use one slot.
    pub fn slots(&self, bucket: &str) -> impl Iterator<Item = u32> {
        let start = self.0.hash(bucket.as_bytes()) % u64::from(SLOTS);
        (0..PROBES).map(move |i| ((start + u64::from(i)) % u64::from(SLOTS)) as u32)
    }
}

/// Why there is no key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The host's random source failed (its status).
    Random(u32),
    Store(StoreError),
    /// Other workers kept rewriting the key (only a broken value is ever rewritten).
    Contended,
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::Random(status) => write!(f, "random_get failed (status {status})"),
            KeyError::Store(e) => write!(f, "shared data failed: {e:?}"),
            KeyError::Contended => write!(f, "the key in shared data kept changing"),
        }
    }
}

/// This Envoy's key: the one in shared data, or a new random one written there
/// first. `random` fills a buffer from the host's random source (WASI `random_get`).
pub fn shared_key(
    store: &mut dyn SharedData,
    random: &mut dyn FnMut(&mut [u8]) -> Result<(), u32>,
) -> Result<SlotHasher, KeyError> {
    for _ in 0..CAS_ATTEMPTS {
        let version = match store.get(KEY_NAME).map_err(KeyError::Store)? {
            Some((value, version)) => match <[u8; KEY_LEN]>::try_from(value.as_slice()) {
                Ok(key) => return Ok(SlotHasher::new(&key)),
                // Not ours to read: replace it, at its version.
                Err(_) => version,
            },
            None => ABSENT,
        };
        let mut key = [0u8; KEY_LEN];
        random(&mut key).map_err(KeyError::Random)?;
        match store.set(KEY_NAME, &key, version) {
            Ok(()) => return Ok(SlotHasher::new(&key)),
            // Another worker wrote first: read theirs.
            Err(StoreError::CasMismatch) => continue,
            Err(e) => return Err(KeyError::Store(e)),
        }
    }
    Err(KeyError::Contended)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::shared::fake::FakeShared;

    fn counting_random(seed: u8) -> impl FnMut(&mut [u8]) -> Result<(), u32> {
        let mut n = seed;
        move |buf: &mut [u8]| {
            for b in buf.iter_mut() {
                n = n.wrapping_mul(31).wrapping_add(7);
                *b = n;
            }
            Ok(())
        }
    }

    fn slots_of(h: &SlotHasher, bucket: &str) -> Vec<u32> {
        h.slots(bucket).collect()
    }

    #[test]
    fn slots_are_stable_bounded_and_depend_on_the_key() {
        let a = SlotHasher::new(&[1; KEY_LEN]);
        let s = slots_of(&a, "h:x-user-id=alice");
        assert_eq!(s.len(), PROBES as usize);
        assert_eq!(s, slots_of(&a, "h:x-user-id=alice"));
        assert!(s.iter().all(|i| *i < SLOTS));
        assert!(s.windows(2).all(|w| w[1] == (w[0] + 1) % SLOTS));
        let b = SlotHasher::new(&[2; KEY_LEN]);
        let moved = (0..100)
            .filter(|i| {
                let bucket = format!("h:x-user-id=user-{i}");
                slots_of(&a, &bucket)[0] != slots_of(&b, &bucket)[0]
            })
            .count();
        assert!(moved > 95, "another key, other slots: {moved} of 100 moved");
    }

    #[test]
    fn every_worker_gets_the_key_the_first_one_wrote() {
        let mut store = FakeShared::default();
        let first = shared_key(&mut store, &mut counting_random(1)).unwrap();
        let second = shared_key(&mut store, &mut counting_random(2)).unwrap();
        assert_eq!(slots_of(&first, "b"), slots_of(&second, "b"));
        assert_eq!(store.sets, 1, "the second worker only read");
        assert_eq!(store.value(KEY_NAME).map(<[u8]>::len), Some(KEY_LEN));
    }

    #[test]
    fn a_worker_that_loses_the_race_to_create_the_key_takes_the_winners() {
        let mut store = FakeShared::default();
        let winner = [9u8; KEY_LEN];
        // Both saw no key; the other worker's write lands between our read and write.
        store.write_before_next_set(KEY_NAME, &winner);
        let ours = shared_key(&mut store, &mut counting_random(3)).unwrap();
        assert_eq!(store.value(KEY_NAME), Some(&winner[..]), "not overwritten");
        let theirs = SlotHasher::new(&winner);
        assert_eq!(slots_of(&ours, "x"), slots_of(&theirs, "x"));
    }

    #[test]
    fn a_broken_key_is_replaced_and_host_failures_are_errors() {
        let mut store = FakeShared::default();
        store.write_before_next_set("unrelated", b"");
        store.set(KEY_NAME, b"short", 0).unwrap();
        let h = shared_key(&mut store, &mut counting_random(4)).unwrap();
        let key = store.value(KEY_NAME).unwrap().to_vec();
        let key: [u8; KEY_LEN] = key.try_into().unwrap();
        assert_eq!(slots_of(&h, "x"), slots_of(&SlotHasher::new(&key), "x"));

        let mut broken = FakeShared::broken(2);
        let e = shared_key(&mut broken, &mut counting_random(5)).unwrap_err();
        assert_eq!(e, KeyError::Store(StoreError::Host(2)));
        let e = shared_key(&mut FakeShared::default(), &mut |_: &mut [u8]| Err(29)).unwrap_err();
        assert_eq!(e, KeyError::Random(29));
    }
}
