//! The local rate limit's counters in process memory, shared by every Envoy
//! worker (the dynamic module is one library in one process). The table is the
//! wasm build's (`tollgate_core::ratelimit::table`): every rule of every scope
//! has `SLOTS` slots, a bucket tries its `PROBES` slots from where the keyed
//! slot hash puts it, one that finds them all held by other live buckets
//! counts in the rule's overflow bucket, and a slot changes hands by the core's
//! one rule (`counter::advance`). Only the storage differs: a slot is a plain
//! struct under its rule's lock instead of an encoded value in shared data
//! behind compare-and-swap, so a request formats no key or value and, once its
//! slot has held its bucket, allocates nothing.
//!
//! A rule's table is made by its first request under a scope and lives as
//! long as the process, like wasm shared data; slots are made on first use.
//! What the tables hold is bounded by the configs (rules × route scopes, at
//! most `SLOTS` slots each), not by traffic.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, OnceLock, PoisonError, RwLock};

use tollgate_core::ratelimit::counter::{self, OVERFLOW_BUCKET};
use tollgate_core::ratelimit::slot_hash::{KeyError, SlotHasher, KEY_LEN};
use tollgate_core::ratelimit::table::{Counted, LocalCounters};

/// One slot: the bucket counting in it, its window and count.
#[derive(Default)]
struct Slot {
    window: u64,
    count: u64,
    bucket: String,
}

impl Slot {
    /// Counts one request of `bucket`; None when another live bucket holds the slot.
    fn take(&mut self, bucket: &str, window: u64) -> Option<u64> {
        let held = self.bucket == bucket;
        let (window, count) = counter::advance(self.window, self.count, held, window)?;
        if !held {
            self.bucket.clear();
            self.bucket.push_str(bucket);
        }
        self.window = window;
        self.count = count;
        Some(count)
    }
}

/// One rule's slots under one scope.
#[derive(Default)]
struct RuleTable {
    slots: HashMap<u32, Slot>,
    overflow: Slot,
}

impl RuleTable {
    fn count(&mut self, hasher: &SlotHasher, bucket: &str, window: u64) -> Counted {
        for i in hasher.slots(bucket) {
            if let Some(n) = self.slots.entry(i).or_default().take(bucket, window) {
                return Counted::Slot(n);
            }
        }
        // Only the overflow bucket counts there, so it always takes.
        let n = self
            .overflow
            .take(OVERFLOW_BUCKET, window)
            .unwrap_or(u64::MAX);
        Counted::Overflow(n)
    }
}

/// Scope (route) → rule name → its table.
type Tables = HashMap<String, HashMap<String, Mutex<RuleTable>>>;

static TABLES: LazyLock<RwLock<Tables>> = LazyLock::new(RwLock::default);

/// The process's counters, seen through the process's slot hash key.
pub struct ProcessCounters<'a> {
    pub hasher: &'a SlotHasher,
}

impl LocalCounters for ProcessCounters<'_> {
    fn count(&mut self, scope: &str, rule: &str, bucket: &str, window: u64) -> Counted {
        {
            let tables = TABLES.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(table) = tables.get(scope).and_then(|rules| rules.get(rule)) {
                let mut table = table.lock().unwrap_or_else(PoisonError::into_inner);
                return table.count(self.hasher, bucket, window);
            }
        }
        let mut tables = TABLES.write().unwrap_or_else(PoisonError::into_inner);
        let table = tables
            .entry(scope.to_owned())
            .or_default()
            .entry(rule.to_owned())
            .or_default()
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        table.count(self.hasher, bucket, window)
    }
}

/// This process's slot hash key, made from the OS's randomness by the first
/// config that needs it (every config must agree: the tables outlive them).
pub fn slot_hasher() -> Result<SlotHasher, KeyError> {
    static KEY: OnceLock<Result<[u8; KEY_LEN], KeyError>> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        let mut key = [0u8; KEY_LEN];
        getrandom::fill(&mut key)
            .map(|()| key)
            .map_err(|e| KeyError::Random(e.raw_os_error().map_or(0, |n| n.unsigned_abs())))
    });
    key.as_ref().map(SlotHasher::new).map_err(Clone::clone)
}

#[cfg(test)]
mod tests {
    use tollgate_core::ratelimit::counter::{PROBES, SLOTS};

    use super::*;

    fn hasher() -> SlotHasher {
        SlotHasher::new(&[3; KEY_LEN])
    }

    #[test]
    fn a_bucket_counts_up_within_its_window_and_restarts_in_the_next() {
        let mut c = ProcessCounters { hasher: &hasher() };
        let scope = "counts-up";
        assert_eq!(c.count(scope, "r", "u=1", 60), Counted::Slot(1));
        assert_eq!(c.count(scope, "r", "u=1", 60), Counted::Slot(2));
        assert_eq!(c.count(scope, "other-rule", "u=1", 60), Counted::Slot(1));
        assert_eq!(c.count("other-scope", "r", "u=1", 60), Counted::Slot(1));
        assert_eq!(c.count(scope, "r", "u=1", 120), Counted::Slot(1));
    }

    #[test]
    fn a_bucket_whose_slots_are_all_held_counts_in_the_overflow_bucket() {
        let h = hasher();
        let mut table = RuleTable::default();
        let victim = "victim";
        for i in h.slots(victim) {
            let other = Slot {
                window: 60,
                count: 1,
                bucket: format!("other-{i}"),
            };
            table.slots.insert(i, other);
        }
        assert_eq!(h.slots(victim).count(), PROBES as usize);
        assert_eq!(table.count(&h, victim, 60), Counted::Overflow(1));
        assert_eq!(table.count(&h, victim, 60), Counted::Overflow(2));
        // The next window frees the slots.
        assert_eq!(table.count(&h, victim, 120), Counted::Slot(1));
        assert!(table.slots.len() <= SLOTS as usize);
    }

    #[test]
    fn two_workers_counting_one_bucket_lose_no_count() {
        let h = hasher();
        let workers: Vec<_> = (0..2)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut c = ProcessCounters { hasher: &h };
                    for _ in 0..10_000 {
                        c.count("two-workers", "r", "", 60);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        let mut c = ProcessCounters { hasher: &h };
        assert_eq!(c.count("two-workers", "r", "", 60), Counted::Slot(20_001));
    }

    #[test]
    fn every_config_gets_the_same_key() {
        let (a, b) = (slot_hasher().unwrap(), slot_hasher().unwrap());
        let bucket = "u=1";
        assert!(a.slots(bucket).eq(b.slots(bucket)));
    }
}
