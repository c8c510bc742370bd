//! Proxy-wasm counters, defined once per VM and incremented without ever failing a request.

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

/// A counter Envoy exports (as `wasmcustom.<name>` in /stats; as plain `<name>` in /stats/prometheus).
/// Defining can fail (e.g. an invalid name); the counter then stays silent rather
/// than failing requests, and the failure is logged once at configure time.
#[derive(Debug, Clone, Copy)]
pub struct Counter(Option<u32>);

impl Counter {
    pub fn define(name: &str) -> Self {
        match hostcalls::define_metric(MetricType::Counter, name) {
            Ok(id) => Counter(Some(id)),
            Err(status) => {
                log::warn!("tollgate: could not define metric {name}: {status:?}");
                Counter(None)
            }
        }
    }

    /// Adds `n`. Zero is skipped: Envoy answers `increment_metric(id, 0)` with BadArgument.
    pub fn add(self, n: u64) {
        let (Some(id), Ok(n)) = (self.0, i64::try_from(n)) else {
            return;
        };
        if n == 0 {
            return;
        }
        if let Err(status) = hostcalls::increment_metric(id, n) {
            log::debug!("tollgate: increment_metric({id}) failed: {status:?}");
        }
    }

    pub fn inc(self) {
        self.add(1);
    }
}
