//! Local-mode counters: a fixed table of slots per rule in proxy-wasm shared
//! data, so every Envoy worker counts against one budget and memory stays
//! bounded however many distinct values clients send.
//!
//! Shared data cannot delete keys, so a counter per distinct value would grow
//! without end. Instead each rule owns [`SLOTS`] keys, each created by the first
//! request that counts in it (creating them all up front cost 75 ms per rule
//! and route in V8, minutes of Envoy start-up for a policy on 1,000 routes).
//! A bucket's slots are [`PROBES`] neighbours from where a keyed hash puts it
//! (`slot_hash`); a slot holds one bucket's count for one window and is reused
//! once its window is over. A bucket that finds all of them held by other live
//! buckets is counted in the rule's overflow bucket (`table`), never let through
//! uncounted. This file is a slot's rule ([`advance`], which the dynamic
//! module's in-memory slots follow too), its shared-data value and its keys.

/// Slots per rule: distinct buckets one rule can count within one window.
pub const SLOTS: u32 = 16_384;
/// Slots tried per bucket before the table counts as full.
pub const PROBES: u32 = 8;

/// The shared-data key of one slot.
pub fn slot_key(scope: &str, rule: &str, slot: u32) -> String {
    format!("tollgate.ratelimit|{scope}|{rule}|{slot}")
}

/// The shared-data key of a rule's overflow bucket.
pub fn overflow_key(scope: &str, rule: &str) -> String {
    format!("tollgate.ratelimit|{scope}|{rule}|overflow")
}

/// The bucket name counted under [`overflow_key`] (it is alone there).
pub const OVERFLOW_BUCKET: &str = "overflow";

/// What counting one request in a slot gives.
#[derive(Debug, PartialEq, Eq)]
pub enum Take {
    /// Write `value` (compare-and-swap); the request is number `count` of its window.
    Counted { value: Vec<u8>, count: u64 },
    /// Another bucket is counting here in this window: try the next slot.
    Occupied,
}

/// Counts one request of `bucket` in window `window` (its start, in seconds)
/// against the slot's current value.
pub fn take(current: &[u8], bucket: &str, window: u64) -> Take {
    let (held_window, count, held_bucket) = decode(current).unwrap_or((0, 0, ""));
    match advance(held_window, count, held_bucket == bucket, window) {
        Some((window, count)) => Take::Counted {
            value: format!("{window} {count} {bucket}").into_bytes(),
            count,
        },
        None => Take::Occupied,
    }
}

/// The rule every runtime's slots follow: a slot holding `held_count` requests
/// of window `held_window` (of the counting bucket when `held_is_bucket`)
/// becomes the returned (window, count), or None when another bucket holds it
/// in this window.
pub fn advance(
    held_window: u64,
    held_count: u64,
    held_is_bucket: bool,
    window: u64,
) -> Option<(u64, u64)> {
    if held_is_bucket && held_window >= window {
        // Same bucket and window (a worker whose clock runs behind never resets it).
        Some((held_window, held_count.saturating_add(1)))
    } else if held_count == 0 || held_window < window {
        Some((window.max(held_window), 1))
    } else {
        None
    }
}

fn decode(value: &[u8]) -> Option<(u64, u64, &str)> {
    let text = std::str::from_utf8(value).ok()?;
    let mut parts = text.splitn(3, ' ');
    let window = parts.next()?.parse().ok()?;
    let count = parts.next()?.parse().ok()?;
    Some((window, count, parts.next().unwrap_or("")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(t: &Take) -> u64 {
        match t {
            Take::Counted { count, .. } => *count,
            Take::Occupied => 0,
        }
    }

    fn value(t: Take) -> Vec<u8> {
        match t {
            Take::Counted { value, .. } => value,
            Take::Occupied => panic!("occupied"),
        }
    }

    #[test]
    fn counts_within_a_window_and_restarts_in_the_next() {
        let mut v = Vec::new();
        for n in 1..=3 {
            let t = take(&v, "u=1", 3600);
            assert_eq!(count(&t), n);
            v = value(t);
        }
        assert_eq!(count(&take(&v, "u=1", 7200)), 1, "new window");
        assert_eq!(
            count(&take(&v, "u=1", 0)),
            4,
            "a clock behind keeps counting"
        );
    }

    #[test]
    fn a_live_slot_belongs_to_its_bucket_until_its_window_ends() {
        let v = value(take(b"", "a", 60));
        assert_eq!(take(&v, "b", 60), Take::Occupied);
        assert_eq!(count(&take(&v, "b", 120)), 1, "stale: reused");
        assert_eq!(count(&take(b"garbage", "b", 60)), 1);
        assert_eq!(
            count(&take(b"60 2 a b c", "a b c", 60)),
            3,
            "spaces in buckets"
        );
    }

    #[test]
    fn slot_and_overflow_keys_name_the_route_and_rule() {
        assert_eq!(slot_key("route", "r", 7), "tollgate.ratelimit|route|r|7");
        assert_eq!(
            overflow_key("route", "r"),
            "tollgate.ratelimit|route|r|overflow"
        );
    }
}
