//! A bounded cache of tokens that verified, so a client repeating its token does
//! not pay for a signature check on every request.
//!
//! Only successes are cached (a flood of bad tokens cannot evict good ones or
//! poison anything). The key is SHA-256 of the token and the provider index: a
//! collision would be needed to ride on another token's entry. An entry is used
//! only inside the token's own validity window (exp/nbf with the skew), and the
//! cache belongs to one compiled policy and one key set: the filter drops it when
//! either changes.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// Entries per cache (per policy, per Envoy worker).
pub const DEFAULT_CAPACITY: usize = 4096;

/// What a verified token gave, and until when it may be reused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub claim_headers: Vec<(String, String)>,
    /// Reusable while `not_before <= now <= not_after` (seconds, skew included).
    pub not_before: u64,
    pub not_after: u64,
}

#[derive(Debug)]
pub struct VerifiedCache {
    entries: HashMap<(usize, [u8; 32]), Verified>,
    capacity: usize,
}

impl Default for VerifiedCache {
    fn default() -> Self {
        VerifiedCache::with_capacity(DEFAULT_CAPACITY)
    }
}

impl VerifiedCache {
    pub fn with_capacity(capacity: usize) -> Self {
        VerifiedCache {
            entries: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    fn key(provider: usize, token: &str) -> (usize, [u8; 32]) {
        (provider, Sha256::digest(token.as_bytes()).into())
    }

    /// The cached result for `token` under `provider`, if it is still valid at `now`.
    pub fn get(&mut self, provider: usize, token: &str, now: u64) -> Option<&Verified> {
        let key = Self::key(provider, token);
        let usable = self
            .entries
            .get(&key)
            .map(|v| v.not_before <= now && now <= v.not_after)?;
        if !usable {
            self.entries.remove(&key);
            return None;
        }
        self.entries.get(&key)
    }

    /// Remembers a verified token. When full, expired entries go first; if none
    /// has expired, everything goes (the bound matters more than the hit rate).
    pub fn insert(&mut self, provider: usize, token: &str, verified: Verified, now: u64) {
        if self.entries.len() >= self.capacity {
            self.entries.retain(|_, v| now <= v.not_after);
            if self.entries.len() >= self.capacity {
                self.entries.clear();
            }
        }
        self.entries.insert(Self::key(provider, token), verified);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(not_before: u64, not_after: u64) -> Verified {
        Verified {
            claim_headers: vec![("x-user".into(), "alice".into())],
            not_before,
            not_after,
        }
    }

    #[test]
    fn hits_only_inside_the_window_and_only_for_the_same_provider() {
        let mut c = VerifiedCache::default();
        c.insert(0, "tok", verified(100, 200), 150);
        assert!(c.get(0, "tok", 150).is_some());
        assert!(
            c.get(1, "tok", 150).is_none(),
            "another provider validates differently"
        );
        assert!(c.get(0, "tok2", 150).is_none());
        assert!(c.get(0, "tok", 99).is_none(), "before nbf: dropped");
        assert!(c.is_empty());
        c.insert(0, "tok", verified(100, 200), 150);
        assert!(c.get(0, "tok", 201).is_none(), "after exp: dropped");
        assert!(c.is_empty());
    }

    #[test]
    fn stays_within_capacity() {
        let mut c = VerifiedCache::with_capacity(3);
        for i in 0..10 {
            c.insert(0, &format!("t{i}"), verified(0, 1000), 10);
            assert!(c.len() <= 3);
        }
        assert!(c.get(0, "t9", 10).is_some(), "the newest entry is kept");
        c.insert(0, "a", verified(0, 5), 1);
        c.insert(0, "b", verified(0, 5), 1);
        c.insert(0, "c", verified(0, 1000), 10);
        assert!(c.get(0, "c", 10).is_some());
    }
}
