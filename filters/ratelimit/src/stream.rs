//! One request: local rules counted in shared data, then (when global rules
//! apply) one `ShouldRateLimit` call to the rate limit service while the
//! request waits, then 429 or on to the upstream.

use std::sync::Arc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MapType};
use tollgate_core::ratelimit::policy::{RateLimitPolicy, Service};
use tollgate_core::ratelimit::service_call::{self, Sent};
use tollgate_core::ratelimit::slot_hash::SlotHasher;
use tollgate_core::ratelimit::table::{self, Counted};
use tollgate_core::ratelimit::verdict::{Standing, Verdict};
use tollgate_core::ratelimit::window;
use tollgate_core::route_policy::RoutePolicies;
use tollgate_host::request_attrs::Attrs;
use tollgate_host::{abi, request as host_request};

use crate::counters::HostShared;
use crate::Metrics;

/// gRPC RESOURCE_EXHAUSTED, for gRPC requests over the limit.
const GRPC_RESOURCE_EXHAUSTED: u32 = 8;
/// gRPC UNAVAILABLE, for gRPC requests refused by `failureMode: deny`.
const GRPC_UNAVAILABLE: u32 = 14;

pub struct Stream {
    policies: Option<Arc<RoutePolicies<RateLimitPolicy>>>,
    hasher: Option<SlotHasher>,
    metrics: Metrics,
    /// The call to the rate limit service the request waits for.
    waiting: Option<Waiting>,
    /// `x-ratelimit-*` for the response of an allowed request.
    response_headers: Option<[(&'static str, String); 3]>,
}

struct Waiting {
    token: u32,
    sent: Vec<Sent>,
    /// The local rules' standing, to which the service's answer is added.
    verdict: Verdict,
    now: u64,
    fail_open: bool,
}

/// What became of a request for now.
enum Outcome {
    Allowed,
    Refused,
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
            waiting: None,
            response_headers: None,
        }
    }

    /// Counts the request against every local rule that applies.
    fn count_local(
        &self,
        scope: &str,
        policy: &RateLimitPolicy,
        req: &Attrs,
        now: u64,
        verdict: &mut Verdict,
    ) {
        for rule in &policy.local {
            let Some(bucket) = rule.bucket(req) else {
                continue;
            };
            let start = window::window_start(now, &rule.limit);
            let counted = table::count(
                &mut HostShared,
                self.hasher.as_ref(),
                scope,
                &rule.name,
                &bucket,
                start,
            );
            let count = match counted {
                Counted::Slot(n) => n,
                Counted::Overflow(n) => {
                    self.metrics.table_full.inc();
                    n
                }
                Counted::Failed(why) => {
                    log::warn!(
                        "tollgate ratelimit: counting rule {} failed ({why:?}); not limited",
                        rule.name
                    );
                    continue;
                }
            };
            verdict.record(Standing {
                limit: rule.limit,
                shadow: rule.shadow,
                over: count > rule.limit.requests,
                remaining: rule.limit.requests.saturating_sub(count),
                reset: window::reset_after(now, &rule.limit),
            });
        }
    }

    /// Starts the `ShouldRateLimit` call; its token, or None when it could not
    /// be sent (no such cluster, say).
    fn dispatch(service: &Service, message: &[u8]) -> Option<u32> {
        hostcalls::dispatch_grpc_call(
            &service.cluster,
            service_call::SERVICE,
            service_call::METHOD,
            Vec::new(),
            Some(message),
            service.timeout,
        )
        .map_err(|e| {
            log::warn!(
                "tollgate ratelimit: calling the rate limit service on cluster `{}` failed: {e:?}",
                service.cluster
            );
        })
        .ok()
    }

    /// Answers 429 or lets the request go on (with the headers for its response).
    fn settle(&mut self, verdict: &Verdict) -> Outcome {
        for _ in 0..verdict.shadow_over() {
            self.metrics.shadow_limited.inc();
        }
        let headers = verdict.headers();
        if !verdict.is_over() {
            self.metrics.allowed.inc();
            self.response_headers = headers;
            return Outcome::Allowed;
        }
        self.metrics.limited.inc();
        let mut reply: Vec<(&str, &str)> = vec![("content-type", "text/plain")];
        if let Some(h) = &headers {
            reply.extend(h.iter().map(|(k, v)| (*k, v.as_str())));
        }
        if let Err(e) =
            abi::send_local_response(429, &reply, "Too Many Requests", GRPC_RESOURCE_EXHAUSTED)
        {
            log::warn!("tollgate ratelimit: sending 429 failed: {e:?}");
        }
        Outcome::Refused
    }

    /// Holds the body and trailers while the service decides: `Continue` from
    /// their callbacks would send the request on undecided.
    fn hold_while_waiting(&self) -> Action {
        if self.waiting.is_some() {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    /// The service could not decide: `failureMode` does.
    fn service_failed(&mut self, fail_open: bool, local: &Verdict) -> Outcome {
        self.metrics.service_failures.inc();
        if fail_open {
            return self.settle(local);
        }
        let reply = [("content-type", "text/plain")];
        if let Err(e) = abi::send_local_response(
            500,
            &reply,
            "Rate limit service unavailable",
            GRPC_UNAVAILABLE,
        ) {
            log::warn!("tollgate ratelimit: sending 500 failed: {e:?}");
        }
        Outcome::Refused
    }
}

impl Context for Stream {
    fn on_grpc_call_response(&mut self, token: u32, status: u32, size: usize) {
        let Some(w) = self.waiting.take_if(|w| w.token == token) else {
            return;
        };
        let outcome = if status != 0 {
            log::debug!("tollgate ratelimit: the rate limit service answered gRPC status {status}");
            self.service_failed(w.fail_open, &w.verdict)
        } else {
            let body = abi::grpc_call_response_body(size).map(Option::unwrap_or_default);
            let mut verdict = w.verdict.clone();
            let read = body
                .map_err(|e| format!("reading it failed: {e:?}"))
                .and_then(|b| {
                    service_call::read_answer(&b, &w.sent, w.now, &mut verdict)
                        .map_err(|e| format!("it does not decode: {e}"))
                });
            match read {
                Ok(()) => self.settle(&verdict),
                Err(why) => {
                    log::warn!("tollgate ratelimit: bad answer from the rate limit service: {why}");
                    self.service_failed(w.fail_open, &w.verdict)
                }
            }
        };
        if let Outcome::Allowed = outcome {
            if let Err(e) = abi::continue_request() {
                log::debug!("tollgate ratelimit: resuming the request failed: {e:?}");
            }
        }
    }
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        // A clone of the Arc, so that the selected policy does not borrow `self`.
        let policies = self.policies.clone();
        let Some((scope, policy)) = policies
            .as_deref()
            .and_then(|p| p.select_scoped(host_request::route_name))
        else {
            return Action::Continue;
        };
        let req = Attrs::default();
        // Without a clock there are no windows; let traffic through rather than
        // count everything into one.
        let Ok(now) = abi::now_seconds() else {
            log::warn!("tollgate ratelimit: reading the clock failed; not limiting");
            return Action::Continue;
        };
        let mut verdict = Verdict::default();
        self.count_local(scope, policy, &req, now, &mut verdict);
        // Refused locally: the global budget is not spent on it.
        let call = match (&policy.service, verdict.is_over()) {
            (Some(service), false) => {
                service_call::build(&service.domain, scope, &policy.global, &req)
                    .map(|call| (service, call))
            }
            _ => None,
        };
        let outcome = match call {
            None => self.settle(&verdict),
            Some((service, call)) => match Self::dispatch(service, &call.message) {
                Some(token) => {
                    self.waiting = Some(Waiting {
                        token,
                        sent: call.sent,
                        verdict,
                        now,
                        fail_open: service.fail_open,
                    });
                    return Action::Pause;
                }
                None => self.service_failed(service.fail_open, &verdict),
            },
        };
        match outcome {
            Outcome::Allowed => Action::Continue,
            Outcome::Refused => Action::Pause,
        }
    }

    fn on_http_request_body(&mut self, _size: usize, _end_of_stream: bool) -> Action {
        self.hold_while_waiting()
    }

    fn on_http_request_trailers(&mut self, _trailers: usize) -> Action {
        self.hold_while_waiting()
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        if let Some(headers) = self.response_headers.take() {
            for (name, value) in &headers {
                if let Err(e) = abi::replace_header(MapType::HttpResponseHeaders, name, value) {
                    log::debug!("tollgate ratelimit: setting {name} failed: {e:?}");
                }
            }
        }
        Action::Continue
    }
}
