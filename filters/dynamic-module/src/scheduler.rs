//! Envoy's schedulers, owned: a stream's (an event runs the stream's
//! `on_http_filter_scheduled` on its worker) and a filter config's (an event
//! runs `on_http_filter_config_scheduled` on the main thread). Envoy lets any
//! thread commit; the owner deletes it when dropped, so whoever may commit
//! must be gone first (the JWKS cache drops a stream's waiter entry, under the
//! lock it commits under, before the stream's scheduler is dropped).

#![allow(unsafe_code)] // calls into Envoy through the declarations in `abi`

use crate::abi::{self, FilterConfigEnvoyPtr, FilterEnvoyPtr, SchedulerPtr};

/// A stream's scheduler.
#[derive(Debug)]
pub struct StreamScheduler(SchedulerPtr);

// SAFETY: Envoy's scheduler may be committed from any thread; only `Drop`
// deletes it, once.
unsafe impl Send for StreamScheduler {}
// SAFETY: as above: `commit` takes `&self` and is thread-safe in Envoy.
unsafe impl Sync for StreamScheduler {}

impl StreamScheduler {
    /// # Safety
    /// `filter` must be the running hook's filter pointer.
    pub unsafe fn new(filter: FilterEnvoyPtr) -> Option<StreamScheduler> {
        // SAFETY: per the caller.
        let ptr = unsafe { abi::envoy_dynamic_module_callback_http_filter_scheduler_new(filter) };
        (!ptr.is_null()).then_some(StreamScheduler(ptr))
    }

    /// Runs the stream's `on_http_filter_scheduled(event)` on its worker (a
    /// no-op once the stream is gone).
    pub fn commit(&self, event: u64) {
        // SAFETY: alive until dropped.
        unsafe { abi::envoy_dynamic_module_callback_http_filter_scheduler_commit(self.0, event) }
    }
}

impl Drop for StreamScheduler {
    fn drop(&mut self) {
        // SAFETY: made by scheduler_new, deleted once.
        unsafe { abi::envoy_dynamic_module_callback_http_filter_scheduler_delete(self.0) }
    }
}

/// A filter config's scheduler.
#[derive(Debug)]
pub struct ConfigScheduler(SchedulerPtr);

// SAFETY: as for `StreamScheduler`.
unsafe impl Send for ConfigScheduler {}
// SAFETY: as for `StreamScheduler`.
unsafe impl Sync for ConfigScheduler {}

impl ConfigScheduler {
    /// # Safety
    /// `config` must be the `filter_config_envoy_ptr` of a live config.
    pub unsafe fn new(config: FilterConfigEnvoyPtr) -> Option<ConfigScheduler> {
        // SAFETY: per the caller.
        let ptr =
            unsafe { abi::envoy_dynamic_module_callback_http_filter_config_scheduler_new(config) };
        (!ptr.is_null()).then_some(ConfigScheduler(ptr))
    }

    /// Runs the config's `on_http_filter_config_scheduled(event)` on the main
    /// thread (a no-op once the config is gone).
    pub fn commit(&self, event: u64) {
        // SAFETY: alive until dropped.
        unsafe {
            abi::envoy_dynamic_module_callback_http_filter_config_scheduler_commit(self.0, event)
        }
    }
}

impl Drop for ConfigScheduler {
    fn drop(&mut self) {
        // SAFETY: made by config_scheduler_new, deleted once.
        unsafe { abi::envoy_dynamic_module_callback_http_filter_config_scheduler_delete(self.0) }
    }
}
