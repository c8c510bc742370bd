//! The local counters in shared data (layout and bounds: `tollgate_core::ratelimit::counter`).

use tollgate_core::ratelimit::counter::{self, Take, SLOTS};
use tollgate_core::ratelimit::policy::RateLimitPolicy;
use tollgate_core::route_policy::RoutePolicies;
use tollgate_host::abi::{self, CAS_MISMATCH};

/// Compare-and-swap attempts per slot before giving up on a request.
const CAS_ATTEMPTS: usize = 16;

/// Creates every slot the rules may use, empty, unless it exists. Runs first on
/// Envoy's main thread (before workers are configured), so later writes are all
/// real compare-and-swaps, and the table's size is fixed from the start.
pub fn create(policies: &RoutePolicies<RateLimitPolicy>) {
    for (scope, policy) in policies.all_scoped() {
        for rule in &policy.local {
            let slots: Vec<u32> = if rule.is_distinct() {
                (0..SLOTS).collect()
            } else {
                counter::slots("").collect()
            };
            // Slots are created in order by one thread, so a present last slot
            // means the table exists: workers (and reloads) skip the walk.
            let last = slots
                .last()
                .map(|s| counter::slot_key(scope, &rule.name, *s));
            if last.is_some_and(|key| matches!(abi::get_shared_data(&key), Ok((Some(_), _)))) {
                continue;
            }
            for slot in slots {
                let key = counter::slot_key(scope, &rule.name, slot);
                if let Ok((None, _)) = abi::get_shared_data(&key) {
                    if let Err(e) = abi::set_shared_data(&key, b"", 0) {
                        log::warn!("tollgate ratelimit: creating counter {key} failed: {e:?}");
                        return;
                    }
                }
            }
        }
    }
}

/// Counts one request of `bucket` in the window starting at `window`; returns
/// its number in the window, or None when it could not be counted.
pub fn count(scope: &str, rule: &str, bucket: &str, window: u64) -> Option<u64> {
    for slot in counter::slots(bucket) {
        let key = counter::slot_key(scope, rule, slot);
        match count_in(&key, bucket, window) {
            Slot::Counted(n) => return Some(n),
            Slot::Occupied => continue,
            Slot::Failed => return None,
        }
    }
    None
}

enum Slot {
    Counted(u64),
    Occupied,
    /// Contention beyond [`CAS_ATTEMPTS`] or a host error.
    Failed,
}

fn count_in(key: &str, bucket: &str, window: u64) -> Slot {
    for _ in 0..CAS_ATTEMPTS {
        let Ok((value, cas)) = abi::get_shared_data(key) else {
            return Slot::Failed;
        };
        let Take::Counted { value, count } =
            counter::take(value.as_deref().unwrap_or_default(), bucket, window)
        else {
            return Slot::Occupied;
        };
        match abi::set_shared_data(key, &value, cas) {
            Ok(()) => return Slot::Counted(count),
            Err(CAS_MISMATCH) => continue,
            Err(e) => {
                log::warn!("tollgate ratelimit: writing counter {key} failed: {e:?}");
                return Slot::Failed;
            }
        }
    }
    Slot::Failed
}
