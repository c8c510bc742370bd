//! The local counters in shared data (layout and bounds: `tollgate_core::ratelimit::counter`).

use tollgate_core::ratelimit::counter::{self, Take};
use tollgate_host::abi::{self, CAS_MISMATCH};

/// Compare-and-swap attempts per slot before giving up on a request.
const CAS_ATTEMPTS: usize = 16;

/// The version a slot is written against when it does not exist yet. The
/// host creates a missing key whatever version is given, and refuses a
/// non-zero version that is not the key's: so when two workers create one
/// slot at once, the second one's write fails and it counts again, on top of
/// the first's (version 0 would overwrite it). The host hands out versions
/// from a 32-bit counter, so this one could only match a key written exactly
/// at that count.
const ABSENT: u32 = u32::MAX;

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
        let cas = if value.is_some() { cas } else { ABSENT };
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
