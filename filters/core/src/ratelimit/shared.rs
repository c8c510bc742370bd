//! Proxy-wasm shared data as the local rate limit sees it: one key-value store
//! for every VM of a `vm_id` (so for all of an Envoy's workers), each value
//! with a version, written by compare-and-swap. The counting and the choice of
//! the slot hash key are decided in core against this trait; the filter crate
//! implements it over the host calls, the tests over [`fake::FakeShared`],
//! which follows Envoy's rules exactly.

/// Why a read or write did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// The key's version is not the one given: another worker wrote it since it was read.
    CasMismatch,
    /// Any other host status (the ABI's number).
    Host(u32),
}

/// The store.
pub trait SharedData {
    /// A key's value and version; None when the key does not exist.
    fn get(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError>;
    /// Writes `value` if the key's version is still `version` (Envoy's rules:
    /// [`ABSENT`]).
    fn set(&mut self, key: &str, value: &[u8], version: u32) -> Result<(), StoreError>;
}

/// The version to write a key with when it was read as absent. Envoy creates
/// a missing key whatever version is given, and refuses a non-zero version
/// that is not the key's: so when two workers create one key at once, the
/// second one's write fails and it reads again, on top of the first's
/// (version 0 would overwrite it). Envoy hands out versions from a 32-bit
/// counter, so this one could only match a key written exactly at that count.
pub const ABSENT: u32 = u32::MAX;

/// How many compare-and-swap attempts one read-modify-write makes before
/// giving up (each failure means another worker's write went through).
pub const CAS_ATTEMPTS: usize = 16;

#[cfg(test)]
pub mod fake {
    //! Envoy's shared data in a test: the rules of proxy-wasm-cpp-host's
    //! `SharedData::set` (a present key is written only at version 0 or its
    //! own; an absent one is created at any; versions from one counter that
    //! skips 0), and a way to let "another worker" write in between.

    use std::collections::HashMap;

    use super::{SharedData, StoreError};

    #[derive(Debug, Default)]
    pub struct FakeShared {
        map: HashMap<String, (Vec<u8>, u32)>,
        last_version: u32,
        /// Written by another worker just before our next `set`s, one per `set`.
        interleaved: Vec<(String, Vec<u8>)>,
        /// A host status every call answers with, when set.
        broken: Option<u32>,
        /// `set` calls made (by us, not the interleaved writes).
        pub sets: usize,
    }

    impl FakeShared {
        /// A store whose every call fails with host status `status`.
        pub fn broken(status: u32) -> Self {
            FakeShared {
                broken: Some(status),
                ..FakeShared::default()
            }
        }

        /// Another worker writes `key` (unconditionally) between our next read and write.
        pub fn write_before_next_set(&mut self, key: &str, value: &[u8]) {
            self.interleaved.push((key.to_string(), value.to_vec()));
        }

        pub fn value(&self, key: &str) -> Option<&[u8]> {
            self.map.get(key).map(|(v, _)| v.as_slice())
        }

        pub fn keys(&self) -> usize {
            self.map.len()
        }

        fn write(&mut self, key: &str, value: &[u8], version: u32) -> Result<(), StoreError> {
            if let Some((_, held)) = self.map.get(key) {
                if version != 0 && version != *held {
                    return Err(StoreError::CasMismatch);
                }
            }
            self.last_version = self.last_version.wrapping_add(1).max(1);
            self.map
                .insert(key.to_string(), (value.to_vec(), self.last_version));
            Ok(())
        }
    }

    impl SharedData for FakeShared {
        fn get(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
            if let Some(status) = self.broken {
                return Err(StoreError::Host(status));
            }
            Ok(self.map.get(key).cloned())
        }

        fn set(&mut self, key: &str, value: &[u8], version: u32) -> Result<(), StoreError> {
            if let Some(status) = self.broken {
                return Err(StoreError::Host(status));
            }
            if !self.interleaved.is_empty() {
                let (k, v) = self.interleaved.remove(0);
                self.write(&k, &v, 0)?;
            }
            self.sets += 1;
            self.write(key, value, version)
        }
    }
}
