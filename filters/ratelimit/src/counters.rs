//! The local counters' shared data and randomness, from the host: what
//! `tollgate_core::ratelimit::table` counts in and `slot_hash` keeps its key in
//! (layout, bounds and the overflow bucket are decided there).

use tollgate_core::ratelimit::shared::{SharedData, StoreError};
use tollgate_core::ratelimit::slot_hash::{self, KeyError, SlotHasher};
use tollgate_host::abi::{self, HostError, CAS_MISMATCH};

/// Proxy-wasm shared data of this plugin's `vm_id`: all of Envoy's workers.
pub struct HostShared;

impl SharedData for HostShared {
    fn get(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        match abi::get_shared_data(key) {
            Ok((value, version)) => Ok(value.map(|v| (v, version))),
            Err(HostError(status)) => Err(StoreError::Host(status)),
        }
    }

    fn set(&mut self, key: &str, value: &[u8], version: u32) -> Result<(), StoreError> {
        match abi::set_shared_data(key, value, version) {
            Ok(()) => Ok(()),
            Err(CAS_MISMATCH) => Err(StoreError::CasMismatch),
            Err(HostError(status)) => Err(StoreError::Host(status)),
        }
    }
}

/// This Envoy's slot hash key: read from shared data, or created there with
/// WASI randomness by the first worker to need it.
pub fn slot_hasher() -> Result<SlotHasher, KeyError> {
    slot_hash::shared_key(&mut HostShared, &mut |buf| {
        abi::random_bytes(buf).map_err(|HostError(errno)| errno)
    })
}
