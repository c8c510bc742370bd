//! Keys known to be over their limit until their window ends, answered from
//! memory without a Redis round trip (envoyproxy/ratelimit's local cache,
//! `LOCAL_CACHE_SIZE_IN_BYTES`). A client hammering a key it has already
//! exhausted then costs Redis nothing until the window ends; the answer is the
//! same OVER_LIMIT Redis would have given, since a fixed window's count only
//! grows. Not counting those calls leaves the Redis count lower than the
//! reference's, which changes nothing while the key is over.
//!
//! An entry holds the limit the key was over: a reloaded config that changes
//! the limit makes it moot (the key is asked of Redis again).
//!
//! Bounded: at most `capacity` keys. A full cache first drops the keys whose
//! window has ended and otherwise skips the new key (it is then counted in
//! Redis as before), so a flood of distinct over-limit keys costs bounded
//! memory and never evicts a live entry.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

pub struct OverLimitCache {
    capacity: usize,
    /// Key → the end of its window (seconds since the epoch) and the limit it
    /// was over (a reloaded config with another limit makes the entry moot).
    keys: Mutex<HashMap<String, (u64, u32)>>,
}

impl OverLimitCache {
    /// A cache of at most `capacity` keys; 0 turns it off.
    pub fn new(capacity: usize) -> OverLimitCache {
        OverLimitCache {
            capacity,
            keys: Mutex::default(),
        }
    }

    /// Whether `key` is known to be over `limit` at `now`.
    pub fn is_over(&self, key: &str, limit: u32, now: u64) -> bool {
        if self.capacity == 0 {
            return false;
        }
        let keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        keys.get(key)
            .is_some_and(|&(end, over)| now < end && over == limit)
    }

    /// Remembers that `key` is over `limit` until `window_end`.
    pub fn insert(&self, key: &str, limit: u32, window_end: u64, now: u64) {
        if self.capacity == 0 || now >= window_end {
            return;
        }
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if keys.len() >= self.capacity && !keys.contains_key(key) {
            keys.retain(|_, &mut (end, _)| now < end);
            if keys.len() >= self.capacity {
                return;
            }
        }
        keys.insert(key.to_owned(), (window_end, limit));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_over_until_its_window_ends() {
        let c = OverLimitCache::new(10);
        c.insert("k", 3, 100, 50);
        assert!(c.is_over("k", 3, 99));
        assert!(!c.is_over("k", 3, 100));
        assert!(!c.is_over("other", 3, 50));
        assert!(
            !c.is_over("k", 10, 99),
            "another limit (a reloaded config): ask Redis"
        );
    }

    #[test]
    fn a_full_cache_drops_ended_windows_and_never_a_live_key() {
        let c = OverLimitCache::new(2);
        c.insert("a", 1, 100, 0);
        c.insert("b", 1, 200, 0);
        c.insert("c", 1, 300, 0);
        assert!(!c.is_over("c", 1, 0), "full of live keys: skipped");
        assert!(c.is_over("a", 1, 0) && c.is_over("b", 1, 0));
        c.insert("c", 1, 300, 150);
        assert!(c.is_over("c", 1, 150), "a's window ended: room made");
        assert!(!c.is_over("a", 1, 150));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn capacity_zero_is_off() {
        let c = OverLimitCache::new(0);
        c.insert("k", 1, 100, 0);
        assert!(!c.is_over("k", 1, 0));
        assert_eq!(c.len(), 0);
    }
}
