//! The local rate limit's counters in process memory, shared by every Envoy
//! worker (the dynamic module is one library in one process): the core's
//! [`SharedData`] store, so the bounded slot table, the overflow bucket and
//! the compare-and-swap counting are exactly the wasm build's
//! (`tollgate_core::ratelimit::table`), only without a host call per read and
//! write. The store follows proxy-wasm's shared-data rules, which the table is
//! written against: a present key is written only at its own version (or 0),
//! an absent one at any.
//!
//! It is sharded so that two workers counting different buckets rarely wait
//! for one lock. What it can hold is bounded by the configs (each rule's
//! table has a fixed number of slots), not by traffic.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::{LazyLock, Mutex, PoisonError};

use tollgate_core::ratelimit::shared::{SharedData, StoreError, ABSENT};
use tollgate_core::ratelimit::slot_hash::{self, KeyError, SlotHasher};

const SHARDS: usize = 16;

type Shard = Mutex<HashMap<String, (Vec<u8>, u32)>>;

static STORE: LazyLock<Vec<Shard>> =
    LazyLock::new(|| (0..SHARDS).map(|_| Mutex::default()).collect());

/// The process's store (a handle; every handle sees the same data).
pub struct ProcessShared;

fn shard(key: &str) -> &'static Shard {
    // A fixed hash only spreads keys over locks; the slot hash is keyed.
    let i = BuildHasherDefault::<DefaultHasher>::default().hash_one(key) as usize % SHARDS;
    &STORE[i]
}

/// The version after `v`, never 0 or [`ABSENT`] (both mean something to `set`).
fn next_version(v: u32) -> u32 {
    match v.wrapping_add(1) {
        0 | ABSENT => 1,
        n => n,
    }
}

impl SharedData for ProcessShared {
    fn get(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        let map = shard(key).lock().unwrap_or_else(PoisonError::into_inner);
        Ok(map.get(key).cloned())
    }

    fn set(&mut self, key: &str, value: &[u8], version: u32) -> Result<(), StoreError> {
        let mut map = shard(key).lock().unwrap_or_else(PoisonError::into_inner);
        match map.get_mut(key) {
            Some((held_value, held)) => {
                if version != 0 && version != *held {
                    return Err(StoreError::CasMismatch);
                }
                held_value.clear();
                held_value.extend_from_slice(value);
                *held = next_version(*held);
            }
            None => {
                map.insert(key.to_owned(), (value.to_vec(), 1));
            }
        }
        Ok(())
    }
}

/// This process's slot hash key, made from the OS's randomness by the first
/// config that needs it.
pub fn slot_hasher() -> Result<SlotHasher, KeyError> {
    slot_hash::shared_key(&mut ProcessShared, &mut |buf| {
        getrandom::fill(buf).map_err(|e| e.raw_os_error().map_or(0, |n| n.unsigned_abs()))
    })
}
