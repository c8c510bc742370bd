//! Counting one request of a local rule: in its bucket's slot when one of the
//! bucket's [`PROBES`](super::counter::PROBES) slots is free or its own, else in
//! the rule's overflow bucket. Never uncounted.
//!
//! The overflow bucket has the rule's limit and is shared by every bucket that
//! found no slot in the window, so a bucket counts in exactly one place per
//! window (all of a rule's buckets share its window boundaries, and a slot
//! taken in a window stays taken until it ends) and can never pass more than
//! the limit; what a flood of distinct values can cost is the service of the
//! other newcomers, who share one limit until the window ends. We chose that
//! over letting them through uncounted, which let a victim pass 30 requests
//! against a limit of 5 (issue 16, item 3), and over refusing them outright,
//! which costs the same flood the same newcomers with no budget at all.
//!
//! Every write is a compare-and-swap against the version read, so two workers
//! counting in one slot at once never lose a count.

use super::counter::{self, Take};
use super::shared::{SharedData, StoreError, ABSENT, CAS_ATTEMPTS};
use super::slot_hash::SlotHasher;

/// Where a request was counted, and its number in its window there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// In its bucket's own slot.
    Slot(u64),
    /// In the rule's overflow bucket: every slot the bucket may use held
    /// another live bucket (`tollgate_ratelimit_bucket_table_full`).
    Overflow(u64),
    /// Not counted: the host failed, or other workers won the
    /// compare-and-swap [`CAS_ATTEMPTS`] times in a row.
    Failed(Failure),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Host(u32),
    Contended,
}

/// Where a runtime counts the local rules, one budget for every worker of the
/// Envoy: [`SharedTable`] in proxy-wasm shared data; the dynamic module keeps
/// the same slots in process memory.
pub trait LocalCounters {
    /// Counts one request of `bucket` of rule `rule` (under `scope`, the
    /// route) in the window starting at `window`.
    fn count(&mut self, scope: &str, rule: &str, bucket: &str, window: u64) -> Counted;
}

/// The slot table in a [`SharedData`] store. `hasher` is None only when no
/// slot hash key could be had (the filter then refuses its configuration);
/// every bucket then counts in the overflow bucket.
pub struct SharedTable<'a> {
    pub store: &'a mut dyn SharedData,
    pub hasher: Option<&'a SlotHasher>,
}

impl LocalCounters for SharedTable<'_> {
    fn count(&mut self, scope: &str, rule: &str, bucket: &str, window: u64) -> Counted {
        count(self.store, self.hasher, scope, rule, bucket, window)
    }
}

fn count(
    store: &mut dyn SharedData,
    hasher: Option<&SlotHasher>,
    scope: &str,
    rule: &str,
    bucket: &str,
    window: u64,
) -> Counted {
    for slot in hasher.into_iter().flat_map(|h| h.slots(bucket)) {
        let key = counter::slot_key(scope, rule, slot);
        match count_in(store, &key, bucket, window) {
            Ok(Some(n)) => return Counted::Slot(n),
            Ok(None) => continue,
            Err(f) => return Counted::Failed(f),
        }
    }
    let key = counter::overflow_key(scope, rule);
    match count_in(store, &key, counter::OVERFLOW_BUCKET, window) {
        Ok(Some(n)) => Counted::Overflow(n),
        // Only the overflow bucket is ever written there.
        Ok(None) => Counted::Failed(Failure::Contended),
        Err(f) => Counted::Failed(f),
    }
}

/// The request's number in slot `key`, or None when another live bucket holds it.
fn count_in(
    store: &mut dyn SharedData,
    key: &str,
    bucket: &str,
    window: u64,
) -> Result<Option<u64>, Failure> {
    for _ in 0..CAS_ATTEMPTS {
        let (value, version) = match store.get(key) {
            Ok(Some((value, version))) => (value, version),
            Ok(None) => (Vec::new(), ABSENT),
            Err(e) => return Err(host_failure(e)),
        };
        let Take::Counted { value, count } = counter::take(&value, bucket, window) else {
            return Ok(None);
        };
        match store.set(key, &value, version) {
            Ok(()) => return Ok(Some(count)),
            Err(StoreError::CasMismatch) => continue,
            Err(e) => return Err(host_failure(e)),
        }
    }
    Err(Failure::Contended)
}

fn host_failure(e: StoreError) -> Failure {
    match e {
        StoreError::Host(status) => Failure::Host(status),
        StoreError::CasMismatch => Failure::Contended,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::counter::{PROBES, SLOTS};
    use crate::ratelimit::shared::fake::FakeShared;

    const SCOPE: &str = "";
    const RULE: &str = "per-user";
    const WINDOW: u64 = 3600;

    fn hasher() -> SlotHasher {
        SlotHasher::new(&[0x5a; 16])
    }

    fn user(id: &str) -> String {
        format!("h:x-user-id={id}")
    }

    /// `n` requests of one bucket, and how many a limit of `limit` admits.
    fn admitted(
        store: &mut FakeShared,
        h: Option<&SlotHasher>,
        bucket: &str,
        n: u64,
        limit: u64,
    ) -> u64 {
        (0..n)
            .filter(|_| match count(store, h, SCOPE, RULE, bucket, WINDOW) {
                Counted::Slot(c) | Counted::Overflow(c) => c <= limit,
                Counted::Failed(f) => panic!("not counted: {f:?}"),
            })
            .count() as u64
    }

    /// The first slot FNV-1a, the public hash the table used before, gave a bucket.
    fn fnv_start(bucket: &str) -> u32 {
        let h = bucket.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        (h % u64::from(SLOTS)) as u32
    }

    /// Values whose first slots are `victim_slots`, one each, found by trying
    /// `user-0`, `user-1`, … against `first_slot` (what an attacker who knows the
    /// hash does).
    fn crafted(victim_slots: &[u32], first_slot: impl Fn(&str) -> u32) -> Vec<String> {
        let mut found: Vec<Option<String>> = vec![None; victim_slots.len()];
        for i in 0.. {
            let bucket = user(&format!("user-{i}"));
            if let Some(at) = victim_slots.iter().position(|s| *s == first_slot(&bucket)) {
                found[at].get_or_insert(bucket);
            }
            if found.iter().all(Option::is_some) {
                break;
            }
        }
        found.into_iter().flatten().collect()
    }

    #[test]
    fn a_bucket_counts_in_its_own_slot_and_starts_over_in_the_next_window() {
        let mut store = FakeShared::default();
        let h = hasher();
        for n in 1..=3 {
            assert_eq!(
                count(&mut store, Some(&h), SCOPE, RULE, &user("a"), WINDOW),
                Counted::Slot(n)
            );
        }
        assert_eq!(
            count(&mut store, Some(&h), SCOPE, RULE, &user("b"), WINDOW),
            Counted::Slot(1)
        );
        assert_eq!(
            count(&mut store, Some(&h), SCOPE, RULE, &user("a"), 2 * WINDOW),
            Counted::Slot(1)
        );
    }

    #[test]
    fn values_crafted_against_the_old_public_hash_no_longer_take_a_victims_slots() {
        // Issue 16, item 3: eight values on the victim's eight FNV slots made its
        // requests go uncounted. Against the keyed hash they land anywhere.
        let victim = user("victim");
        let start = fnv_start(&victim);
        let victim_fnv_slots: Vec<u32> = (0..PROBES).map(|i| (start + i) % SLOTS).collect();
        let attackers = crafted(&victim_fnv_slots, fnv_start);
        assert_eq!(attackers.len(), PROBES as usize);
        let mut store = FakeShared::default();
        let h = hasher();
        for a in &attackers {
            assert_eq!(admitted(&mut store, Some(&h), a, 1, 5), 1);
        }
        let mut counts = Vec::new();
        for _ in 0..30 {
            counts.push(count(&mut store, Some(&h), SCOPE, RULE, &victim, WINDOW));
        }
        assert_eq!(counts, (1..=30).map(Counted::Slot).collect::<Vec<_>>());
        assert_eq!(
            admitted(&mut store, Some(&h), &victim, 1, 5),
            0,
            "over its 5"
        );
    }

    #[test]
    fn a_bucket_whose_slots_are_all_taken_is_counted_in_the_overflow_bucket_with_the_rules_limit() {
        // Even an attacker who had the key, and took all eight of the victim's
        // slots, gets the victim counted, not let through.
        let h = hasher();
        let victim = user("victim");
        let victim_slots: Vec<u32> = h.slots(&victim).collect();
        let first = |b: &str| h.slots(b).next().unwrap_or_default();
        let attackers = crafted(&victim_slots, first);
        let mut store = FakeShared::default();
        for a in &attackers {
            assert!(matches!(
                count(&mut store, Some(&h), SCOPE, RULE, a, WINDOW),
                Counted::Slot(1)
            ));
        }
        for n in 1..=30 {
            assert_eq!(
                count(&mut store, Some(&h), SCOPE, RULE, &victim, WINDOW),
                Counted::Overflow(n)
            );
        }
        // Another newcomer with no slot shares that budget.
        let second = (0..)
            .map(|i| user(&format!("second-{i}")))
            .find(|b| h.slots(b).all(|s| victim_slots.contains(&s)))
            .unwrap();
        assert_eq!(
            count(&mut store, Some(&h), SCOPE, RULE, &second, WINDOW),
            Counted::Overflow(31)
        );
        assert_eq!(
            count(&mut store, Some(&h), SCOPE, RULE, &victim, 2 * WINDOW),
            Counted::Slot(1),
            "the next window frees the slots"
        );
    }

    #[test]
    fn a_flood_of_distinct_values_never_lets_a_victim_past_its_limit_and_memory_stays_bounded() {
        let mut store = FakeShared::default();
        let h = hasher();
        let mut flood_admitted = 0;
        for i in 0..40_000 {
            flood_admitted += admitted(&mut store, Some(&h), &user(&format!("flood-{i}")), 1, 5);
        }
        assert!(store.keys() <= SLOTS as usize + 1, "{} keys", store.keys());
        assert!(
            flood_admitted <= u64::from(SLOTS) + 5,
            "each value got a slot or shared the overflow's 5: {flood_admitted}"
        );
        assert!(admitted(&mut store, Some(&h), &user("late"), 20, 5) <= 5);
    }

    #[test]
    fn two_workers_counting_in_one_slot_at_once_lose_no_count() {
        let h = hasher();
        let bucket = user("a");
        let slot = h.slots(&bucket).next().unwrap_or_default();
        let key = counter::slot_key(SCOPE, RULE, slot);
        let mut store = FakeShared::default();
        // Both find the slot missing; the other worker creates it first.
        store.write_before_next_set(&key, format!("{WINDOW} 1 {bucket}").as_bytes());
        assert_eq!(
            count(&mut store, Some(&h), SCOPE, RULE, &bucket, WINDOW),
            Counted::Slot(2)
        );
        // Both read count 2; the other writes 3 first.
        store.write_before_next_set(&key, format!("{WINDOW} 3 {bucket}").as_bytes());
        assert_eq!(
            count(&mut store, Some(&h), SCOPE, RULE, &bucket, WINDOW),
            Counted::Slot(4)
        );
        assert_eq!(
            store.value(&key),
            Some(format!("{WINDOW} 4 {bucket}").as_bytes())
        );
        // Likewise in the overflow bucket.
        let overflow = counter::overflow_key(SCOPE, RULE);
        store.write_before_next_set(&overflow, format!("{WINDOW} 7 overflow").as_bytes());
        assert_eq!(
            count(&mut store, None, SCOPE, RULE, &bucket, WINDOW),
            Counted::Overflow(8)
        );
    }

    #[test]
    fn host_failures_are_reported_not_counted() {
        let mut store = FakeShared::broken(2);
        assert_eq!(
            count(&mut store, Some(&hasher()), SCOPE, RULE, &user("a"), WINDOW),
            Counted::Failed(Failure::Host(2))
        );
    }

    #[test]
    fn without_a_key_every_bucket_counts_in_the_overflow_bucket() {
        let mut store = FakeShared::default();
        assert_eq!(admitted(&mut store, None, &user("a"), 3, 2), 2);
        assert_eq!(admitted(&mut store, None, &user("b"), 3, 2), 0);
        assert_eq!(store.keys(), 1);
    }
}
