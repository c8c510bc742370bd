//! Proxy-wasm counters, counted inside the VM and flushed to Envoy once a second.
//!
//! A host call costs about as much as a small header edit, so counting per request
//! with `increment_metric` would add one or two host calls to every request. The
//! filter bumps a plain integer instead and the root context's tick hands the sum to
//! Envoy. A counter can lag by up to one tick; nothing on the request path can fail.

use std::cell::Cell;
use std::rc::Rc;

use proxy_wasm::hostcalls;

use crate::abi;
use proxy_wasm::types::MetricType;
use tollgate_core::host::Metric;

/// How often pending counts reach Envoy (the root context's tick period).
/// A filter with other periodic work may tick faster; counters then flush more often.
pub const FLUSH_PERIOD_MILLIS: u32 = 1000;

/// A counter Envoy exports (as `wasmcustom.<name>` in /stats; as plain `<name>` in
/// /stats/prometheus). Clones share the pending count (one VM is one thread).
#[derive(Debug, Clone)]
pub struct Counter {
    id: Option<u32>,
    pending: Rc<Cell<u64>>,
}

impl Counter {
    /// Defining can fail (e.g. an invalid name); the counter then stays silent
    /// rather than failing requests, and the failure is logged once.
    pub fn define(name: &str) -> Self {
        let id = match hostcalls::define_metric(MetricType::Counter, name) {
            Ok(id) => Some(id),
            Err(status) => {
                log::warn!("tollgate: could not define metric {name}: {status:?}");
                None
            }
        };
        Counter {
            id,
            pending: Rc::default(),
        }
    }

    pub fn inc(&self) {
        self.pending.set(self.pending.get().saturating_add(1));
    }

    /// Hands the pending count to Envoy. Zero is skipped: Envoy answers
    /// `increment_metric(id, 0)` with BadArgument.
    pub fn flush(&self) {
        let n = self.pending.take();
        let (Some(id), Ok(delta)) = (self.id, i64::try_from(n)) else {
            return;
        };
        if delta == 0 {
            return;
        }
        if let Err(e) = abi::increment_metric(id, delta) {
            log::debug!("tollgate: increment_metric({id}) failed: {e:?}");
            // Keep the count for the next tick rather than lose it.
            self.pending.set(self.pending.get().saturating_add(n));
        }
    }
}

/// Starts the root context's tick that flushes counters; logs if the host refuses.
pub fn start_flushing() {
    if let Err(status) = abi::set_tick_period_millis(FLUSH_PERIOD_MILLIS) {
        log::warn!("tollgate: set_tick_period failed ({status:?}); counters will not be exported");
    }
}

/// The counters of one filter, by the core's [`Metric`] (what its flow counts).
#[derive(Debug, Clone)]
pub struct Metrics(Vec<(Metric, Counter)>);

impl Metrics {
    pub fn define(metrics: &[Metric]) -> Self {
        Metrics(
            metrics
                .iter()
                .map(|&m| (m, Counter::define(m.name())))
                .collect(),
        )
    }

    pub fn count(&self, metric: Metric) {
        if let Some((_, c)) = self.0.iter().find(|(m, _)| *m == metric) {
            c.inc();
        }
    }

    pub fn flush(&self) {
        for (_, c) in &self.0 {
            c.flush();
        }
    }
}
