//! `ratelimit.wasm`: Envoy Gateway's `BackendTrafficPolicy.rateLimit`. Which
//! rules and buckets a request counts against is `tollgate_core::ratelimit`;
//! this crate counts local rules in shared data (one budget for all Envoy
//! workers), asks the rate limit service about global rules, and answers 429.

mod counters;
mod stream;

use std::sync::Arc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};
use tollgate_core::catalogue::FilterKind;
use tollgate_core::host::Metric;
use tollgate_core::ratelimit::policy::RateLimitPolicy;
use tollgate_core::ratelimit::slot_hash::SlotHasher;
use tollgate_core::route_policy::RoutePolicies;
use tollgate_host::config;
use tollgate_host::metrics::Metrics;

use stream::Stream;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| Box::new(Root::new()));
}}

struct Root {
    policies: Option<Arc<RoutePolicies<RateLimitPolicy>>>,
    /// Where local buckets go in their rule's table; the same on every worker.
    hasher: Option<SlotHasher>,
    metrics: Metrics,
}

impl Root {
    fn new() -> Self {
        Root {
            policies: None,
            hasher: None,
            metrics: Metrics::define(&Metric::RATELIMIT),
        }
    }
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        if self.hasher.is_none() {
            // Without the shared key local buckets could only share one
            // overflow bucket per rule: refuse loudly instead.
            match counters::slot_hasher() {
                Ok(h) => self.hasher = Some(h),
                Err(e) => {
                    log::error!(
                        "tollgate ratelimit: rejected configuration: no slot hash key: {e}"
                    );
                    return false;
                }
            }
        }
        config::reload(
            &mut self.policies,
            FilterKind::RateLimit.module(),
            RateLimitPolicy::compile,
        )
    }

    fn on_tick(&mut self) {
        self.metrics.flush();
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Never None: the SDK panics (killing the VM) when a root context refuses a stream.
        Some(Box::new(Stream::new(
            self.policies.clone(),
            self.hasher,
            self.metrics.clone(),
        )))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
