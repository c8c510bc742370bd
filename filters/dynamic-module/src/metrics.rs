//! Filter counters, as Envoy's own stats (`/stats`, `/stats/prometheus`):
//! defined when the filter config is created, counted from a stream. Unlike
//! the wasm build's, they reach Envoy at once, and a counter may carry a label
//! (the canary's `backend`), so backends named only in per-route configs are
//! counted too.

#![allow(unsafe_code)] // calls into Envoy through the declarations in `abi`

use crate::abi::{self, FilterConfigEnvoyPtr, ModuleBuffer};
use crate::log;

/// Defines counters for one filter config (during `on_http_filter_config_new`).
pub struct Definer {
    config: FilterConfigEnvoyPtr,
}

impl Definer {
    /// # Safety
    /// `config` must be the `filter_config_envoy_ptr` of the running config hook.
    pub unsafe fn new(config: FilterConfigEnvoyPtr) -> Definer {
        Definer { config }
    }

    /// A counter, with one label when `label` names it. A counter Envoy
    /// refuses is logged and never counted.
    pub fn counter(&mut self, name: &str, label: Option<&str>) -> Counter {
        let id = define_counter(name, label, |name, labels, count, id| {
            // SAFETY: a live config pointer; the buffers outlive the call.
            unsafe {
                abi::envoy_dynamic_module_callback_http_filter_config_define_counter(
                    self.config,
                    name,
                    labels,
                    count,
                    id,
                )
            }
        });
        Counter {
            id,
            labelled: id.is_some() && label.is_some(),
        }
    }
}

/// Defines counter `name`, with one label when `label` names it, through
/// `define` (the filter's or the cluster specifier's ABI call: both take the
/// name, the label names and their number, and where to write the id). Its
/// id, or None when Envoy refuses it (logged; it is then never counted).
pub fn define_counter(
    name: &str,
    label: Option<&str>,
    define: impl FnOnce(ModuleBuffer, *mut ModuleBuffer, usize, *mut usize) -> u32,
) -> Option<usize> {
    let mut labels = LabelBuffers::of(label);
    let mut id = 0usize;
    let result = define(
        ModuleBuffer::of(name.as_bytes()),
        labels.ptr(),
        labels.len(),
        &mut id,
    );
    if result != abi::METRICS_SUCCESS {
        log::warn(&format!("defining counter {name} failed ({result})"));
        return None;
    }
    Some(id)
}

/// Adds one to counter `id` through `increment` (the ABI call of whoever
/// defined it: it takes the id, the label values and their number, and the
/// amount); `label` is the label's value for a labelled counter.
pub fn increment_counter(
    id: usize,
    label: Option<&str>,
    increment: impl FnOnce(usize, *mut ModuleBuffer, usize, u64) -> u32,
) {
    let mut values = LabelBuffers::of(label);
    let result = increment(id, values.ptr(), values.len(), 1);
    if result != abi::METRICS_SUCCESS {
        log::debug(&format!("counting metric {id} failed ({result})"));
    }
}

/// At most one label name or value, as the ABI takes them: a pointer (null
/// for none) and a count. Lives across the call that reads it.
struct LabelBuffers(Option<ModuleBuffer>);

impl LabelBuffers {
    fn of(label: Option<&str>) -> Self {
        LabelBuffers(label.map(|l| ModuleBuffer::of(l.as_bytes())))
    }

    fn ptr(&mut self) -> *mut ModuleBuffer {
        self.0
            .as_mut()
            .map_or(std::ptr::null_mut(), std::ptr::from_mut)
    }

    fn len(&self) -> usize {
        usize::from(self.0.is_some())
    }
}

/// A defined counter.
#[derive(Debug, Clone, Copy)]
pub struct Counter {
    id: Option<usize>,
    labelled: bool,
}

impl Counter {
    /// Adds one outside any stream (main-thread work of the config); only
    /// for unlabelled counters.
    ///
    /// # Safety
    /// `config` must be the live config's `filter_config_envoy_ptr` that defined it.
    pub unsafe fn increment_from_config(&self, config: FilterConfigEnvoyPtr) {
        let (Some(id), false) = (self.id, self.labelled) else {
            return;
        };
        increment_counter(id, None, |id, values, count, amount| {
            // SAFETY: per the caller; no labels.
            unsafe {
                abi::envoy_dynamic_module_callback_http_filter_config_increment_counter(
                    config, id, values, count, amount,
                )
            }
        });
    }

    /// Adds one through `increment`, the ABI call of a stream
    /// (`StreamHost::increment`) or of a config; `label` is the label's value
    /// for a labelled counter (as many values as labels were defined).
    pub fn increment_with(
        &self,
        label: Option<&str>,
        increment: impl FnOnce(usize, *mut ModuleBuffer, usize, u64) -> u32,
    ) {
        let Some(id) = self.id else {
            return;
        };
        let value = self.labelled.then(|| label.unwrap_or(""));
        increment_counter(id, value, increment);
    }
}
