//! Filter counters, as Envoy's own stats (`/stats`, `/stats/prometheus`):
//! defined when the filter config is created, counted from a stream. Unlike
//! the wasm build's, they reach Envoy at once, and a counter may carry a label
//! (the canary's `backend`), so backends named only in per-route configs are
//! counted too.

#![allow(unsafe_code)] // calls into Envoy through the declarations in `abi`

use crate::abi::{self, FilterConfigEnvoyPtr, ModuleBuffer};
use crate::host::StreamHost;
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
        let mut labels: Vec<ModuleBuffer> = label
            .map(|l| ModuleBuffer::of(l.as_bytes()))
            .into_iter()
            .collect();
        let mut id = 0usize;
        // SAFETY: a live config pointer; the buffers outlive the call.
        let result = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_config_define_counter(
                self.config,
                ModuleBuffer::of(name.as_bytes()),
                if labels.is_empty() {
                    std::ptr::null_mut()
                } else {
                    labels.as_mut_ptr()
                },
                labels.len(),
                &mut id,
            )
        };
        if result != abi::METRICS_SUCCESS {
            log::warn(&format!("defining counter {name} failed ({result})"));
            return Counter {
                id: None,
                labelled: false,
            };
        }
        Counter {
            id: Some(id),
            labelled: label.is_some(),
        }
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
        // SAFETY: per the caller; no labels.
        let result = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_config_increment_counter(
                config,
                id,
                std::ptr::null_mut(),
                0,
                1,
            )
        };
        if result != abi::METRICS_SUCCESS {
            log::debug(&format!("counting metric {id} failed ({result})"));
        }
    }

    /// Adds one; `label` is the label's value for a labelled counter.
    pub fn increment(&self, host: &StreamHost, label: Option<&str>) {
        let Some(id) = self.id else {
            return;
        };
        let mut values: Vec<ModuleBuffer> = match (self.labelled, label) {
            (true, Some(v)) => vec![ModuleBuffer::of(v.as_bytes())],
            (true, None) => vec![ModuleBuffer::of(b"")],
            (false, _) => Vec::new(),
        };
        // SAFETY: a live filter pointer; the label values outlive the call,
        // and their number is the number of labels defined.
        let result = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_increment_counter(
                host.filter(),
                id,
                if values.is_empty() {
                    std::ptr::null_mut()
                } else {
                    values.as_mut_ptr()
                },
                values.len(),
                1,
            )
        };
        if result != abi::METRICS_SUCCESS {
            log::debug(&format!("counting metric {id} failed ({result})"));
        }
    }
}
