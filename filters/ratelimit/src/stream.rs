//! One request, as the core's flow (`tollgate_core::ratelimit::flow`) decides
//! it: this adapter selects the route's policy, hands the flow the shared-data
//! counters, and passes the rate limit service's gRPC answer back to it.

use std::sync::Arc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use tollgate_core::ratelimit::flow::{self, Step};
use tollgate_core::ratelimit::policy::RateLimitPolicy;
use tollgate_core::ratelimit::slot_hash::SlotHasher;
use tollgate_core::ratelimit::table::SharedTable;
use tollgate_core::route_policy::RoutePolicies;
use tollgate_host::metrics::Metrics;
use tollgate_host::stream_host::WasmHost;
use tollgate_host::{abi, request as host_request};

use crate::counters::HostShared;

pub struct Stream {
    policies: Option<Arc<RoutePolicies<RateLimitPolicy>>>,
    hasher: Option<SlotHasher>,
    metrics: Metrics,
    flow: flow::Stream,
}

impl Stream {
    pub fn new(
        policies: Option<Arc<RoutePolicies<RateLimitPolicy>>>,
        hasher: Option<SlotHasher>,
        metrics: Metrics,
    ) -> Self {
        Stream {
            policies,
            hasher,
            metrics,
            flow: flow::Stream::default(),
        }
    }

    /// Holds the body and trailers while the service decides.
    fn hold_while_waiting(&self) -> Action {
        if self.flow.holds_request() {
            Action::Pause
        } else {
            Action::Continue
        }
    }
}

impl Context for Stream {
    fn on_grpc_call_response(&mut self, token: u32, status: u32, size: usize) {
        let answer = if status != 0 {
            Err(format!("it answered gRPC status {status}"))
        } else {
            abi::grpc_call_response_body(size)
                .map(Option::unwrap_or_default)
                .map_err(|e| format!("reading its answer failed: {e:?}"))
        };
        let mut host = WasmHost::counting(&self.metrics);
        self.flow
            .on_service_answer(u64::from(token), answer, &mut host);
    }
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let Some((scope, policy)) = self
            .policies
            .as_deref()
            .and_then(|p| p.select_scoped(host_request::route_name))
        else {
            return Action::Continue;
        };
        let mut local = SharedTable {
            store: &mut HostShared,
            hasher: self.hasher.as_ref(),
        };
        let mut host = WasmHost::counting(&self.metrics);
        match self
            .flow
            .on_request_headers(scope, policy, &mut local, &mut host)
        {
            Step::Continue => Action::Continue,
            Step::Stop => Action::Pause,
        }
    }

    fn on_http_request_body(&mut self, _size: usize, _end_of_stream: bool) -> Action {
        self.hold_while_waiting()
    }

    fn on_http_request_trailers(&mut self, _trailers: usize) -> Action {
        self.hold_while_waiting()
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        self.flow
            .on_response_headers(&mut WasmHost::counting(&self.metrics));
        Action::Continue
    }
}
