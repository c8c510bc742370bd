//! The rate limit filter, one request at a time, for every runtime: the local
//! rules are counted first (in the runtime's shared counters), a request they
//! refuse never spends the global budget, the global rules become one
//! `ShouldRateLimit` call while the request waits, and `failureMode` decides
//! when the service cannot. The 429 (gRPC RESOURCE_EXHAUSTED), the 500 of
//! `failureMode: deny` (gRPC UNAVAILABLE) and the `x-ratelimit-*` headers of
//! an allowed response are sent from here.

use super::policy::{RateLimitPolicy, Service};
use super::service_call::{self, Sent};
use super::table::{Counted, LocalCounters};
use super::verdict::{Standing, Verdict};
use super::window;
use crate::host::{Attrs, Direction, GrpcCall, Host, Metric, Reply};

/// gRPC RESOURCE_EXHAUSTED, for gRPC requests over the limit.
const GRPC_RESOURCE_EXHAUSTED: u32 = 8;
/// gRPC UNAVAILABLE, for gRPC requests refused by `failureMode: deny`.
const GRPC_UNAVAILABLE: u32 = 14;

/// What the runtime does with the request after a hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Continue,
    /// Held: waiting for the service, or answered locally.
    Stop,
}

/// One stream's state.
#[derive(Debug, Default)]
pub struct Stream {
    /// The call to the rate limit service the request waits for.
    waiting: Option<Waiting>,
    /// `x-ratelimit-*` for the response of an allowed request.
    response_headers: Option<[(&'static str, String); 3]>,
}

#[derive(Debug)]
struct Waiting {
    call: u64,
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
    /// Counts the request under `policy` (`scope` keys its counters: the
    /// route name of a route's own policy, "" for the default).
    pub fn on_request_headers(
        &mut self,
        scope: &str,
        policy: &RateLimitPolicy,
        local: &mut dyn LocalCounters,
        host: &mut dyn Host,
    ) -> Step {
        // Without a clock there are no windows; let traffic through rather
        // than count everything into one.
        let Some(now) = host.now_seconds() else {
            log::warn!("tollgate ratelimit: reading the clock failed; not limiting");
            return Step::Continue;
        };
        let mut verdict = Verdict::default();
        let call = {
            let req = Attrs::new(host);
            let table_full = count_local(scope, policy, &req, local, now, &mut verdict);
            // Refused locally: the global budget is not spent on it.
            let call = match (&policy.service, verdict.is_over()) {
                (Some(service), false) => {
                    service_call::build(&service.domain, scope, &policy.global, &req)
                        .map(|call| (service, call))
                }
                _ => None,
            };
            drop(req);
            for _ in 0..table_full {
                host.count(Metric::RateLimitTableFull);
            }
            call
        };
        let outcome = match call {
            None => self.settle(&verdict, host),
            Some((service, call)) => match dispatch(service, &call.message, host) {
                Some(id) => {
                    self.waiting = Some(Waiting {
                        call: id,
                        sent: call.sent,
                        verdict,
                        now,
                        fail_open: service.fail_open,
                    });
                    return Step::Stop;
                }
                None => self.service_failed(service.fail_open, &verdict, host),
            },
        };
        match outcome {
            Outcome::Allowed => Step::Continue,
            Outcome::Refused => Step::Stop,
        }
    }

    /// The service's answer to call `call`: its `RateLimitResponse` message,
    /// or why there is none. Resumes the request when it is allowed.
    pub fn on_service_answer(
        &mut self,
        call: u64,
        answer: Result<Vec<u8>, String>,
        host: &mut dyn Host,
    ) {
        let Some(w) = self.waiting.take_if(|w| w.call == call) else {
            return;
        };
        let outcome = match answer {
            Err(why) => {
                log::debug!("tollgate ratelimit: the rate limit service failed: {why}");
                self.service_failed(w.fail_open, &w.verdict, host)
            }
            Ok(body) => {
                let mut verdict = w.verdict.clone();
                match service_call::read_answer(&body, &w.sent, w.now, &mut verdict) {
                    Ok(()) => self.settle(&verdict, host),
                    Err(e) => {
                        log::warn!(
                            "tollgate ratelimit: bad answer from the rate limit service: it does not decode: {e}"
                        );
                        self.service_failed(w.fail_open, &w.verdict, host)
                    }
                }
            }
        };
        if let Outcome::Allowed = outcome {
            host.continue_request();
        }
    }

    /// Whether the body and trailers must be held: the service is still
    /// deciding (going on would send the request upstream undecided).
    pub fn holds_request(&self) -> bool {
        self.waiting.is_some()
    }

    /// Adds the `x-ratelimit-*` headers to an allowed request's response.
    pub fn on_response_headers(&mut self, host: &mut dyn Host) {
        if let Some(headers) = self.response_headers.take() {
            for (name, value) in &headers {
                host.set_header(Direction::Response, name, value);
            }
        }
    }

    /// Answers 429 or lets the request go on (with the headers for its response).
    fn settle(&mut self, verdict: &Verdict, host: &mut dyn Host) -> Outcome {
        for _ in 0..verdict.shadow_over() {
            host.count(Metric::RateLimitShadowLimited);
        }
        let headers = verdict.headers();
        if !verdict.is_over() {
            host.count(Metric::RateLimitAllowed);
            self.response_headers = headers;
            return Outcome::Allowed;
        }
        host.count(Metric::RateLimitLimited);
        let mut reply: Vec<(&str, &str)> = vec![("content-type", "text/plain")];
        if let Some(h) = &headers {
            reply.extend(h.iter().map(|(k, v)| (*k, v.as_str())));
        }
        host.send_response(&Reply {
            status: 429,
            headers: &reply,
            body: "Too Many Requests",
            grpc_status: GRPC_RESOURCE_EXHAUSTED,
        });
        Outcome::Refused
    }

    /// The service could not decide: `failureMode` does.
    fn service_failed(&mut self, fail_open: bool, local: &Verdict, host: &mut dyn Host) -> Outcome {
        host.count(Metric::RateLimitServiceFailures);
        if fail_open {
            return self.settle(local, host);
        }
        host.send_response(&Reply {
            status: 500,
            headers: &[("content-type", "text/plain")],
            body: "Rate limit service unavailable",
            grpc_status: GRPC_UNAVAILABLE,
        });
        Outcome::Refused
    }
}

/// Counts the request against every local rule that applies; how many of
/// them counted in their overflow bucket.
fn count_local(
    scope: &str,
    policy: &RateLimitPolicy,
    req: &Attrs,
    local: &mut dyn LocalCounters,
    now: u64,
    verdict: &mut Verdict,
) -> usize {
    let mut table_full = 0;
    for rule in &policy.local {
        let Some(bucket) = rule.bucket(req) else {
            continue;
        };
        let start = window::window_start(now, &rule.limit);
        let counted = local.count(scope, &rule.name, &bucket, start);
        let count = match counted {
            Counted::Slot(n) => n,
            Counted::Overflow(n) => {
                table_full += 1;
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
    table_full
}

/// Starts the `ShouldRateLimit` call; its id, or None when it could not be
/// sent (no such cluster, say).
fn dispatch(service: &Service, message: &[u8], host: &mut dyn Host) -> Option<u64> {
    host.grpc_call(&GrpcCall {
        cluster: &service.cluster,
        service: service_call::SERVICE,
        method: service_call::METHOD,
        message,
        timeout: service.timeout,
    })
    .map_err(|e| {
        log::warn!(
            "tollgate ratelimit: calling the rate limit service on cluster `{}` failed: {e}",
            service.cluster
        );
    })
    .ok()
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use serde_json::{json, Value};

    use super::*;
    use crate::error::from_value;
    use crate::host::fake::FakeHost;
    use crate::ratelimit::service_call::{DescriptorStatus, RateLimitRequest, RateLimitResponse};
    use crate::ratelimit::shared::fake::FakeShared;
    use crate::ratelimit::slot_hash::SlotHasher;
    use crate::ratelimit::table::SharedTable;

    const NOW: u64 = 1_700_000_000;

    fn policy(v: Value) -> RateLimitPolicy {
        RateLimitPolicy::compile(from_value(v).unwrap()).unwrap()
    }

    fn local(requests: u64) -> RateLimitPolicy {
        policy(json!({"local": {"rules": [{"limit": {"requests": requests, "unit": "Hour"}}]}}))
    }

    fn global(failure_mode: &str) -> RateLimitPolicy {
        policy(json!({
            "global": {"rules": [{"name": "g", "limit": {"requests": 10, "unit": "Minute"}}]},
            "service": {"cluster": "rls", "timeout": "250ms", "failureMode": failure_mode}
        }))
    }

    fn host() -> FakeHost {
        FakeHost {
            now: Some(NOW),
            ..FakeHost::request(&[(":method", "GET"), (":path", "/")])
        }
    }

    fn hasher() -> SlotHasher {
        SlotHasher::new(&[7; 16])
    }

    /// One request through the flow, counting in `store`.
    fn request(p: &RateLimitPolicy, store: &mut FakeShared, host: &mut FakeHost) -> (Stream, Step) {
        let mut stream = Stream::default();
        let h = hasher();
        let step = stream.on_request_headers(
            "",
            p,
            &mut SharedTable {
                store,
                hasher: Some(&h),
            },
            host,
        );
        (stream, step)
    }

    fn answer(codes: &[i32], remaining: u32) -> Vec<u8> {
        RateLimitResponse {
            overall_code: *codes.iter().max().unwrap_or(&1),
            statuses: codes
                .iter()
                .map(|&code| DescriptorStatus {
                    code,
                    limit_remaining: remaining,
                    ..DescriptorStatus::default()
                })
                .collect(),
        }
        .encode_to_vec()
    }

    #[test]
    fn requests_under_a_local_limit_go_on_and_their_responses_carry_the_quota() {
        let p = local(2);
        let mut store = FakeShared::default();
        for remaining in ["1", "0"] {
            let mut host = host();
            let (mut stream, step) = request(&p, &mut store, &mut host);
            assert_eq!(step, Step::Continue);
            assert!(host.replies.is_empty());
            stream.on_response_headers(&mut host);
            assert_eq!(
                host.get(Direction::Response, "x-ratelimit-remaining"),
                [remaining]
            );
            assert_eq!(host.counted, [Metric::RateLimitAllowed]);
        }
    }

    #[test]
    fn the_request_over_a_local_limit_gets_429_with_resource_exhausted_for_grpc() {
        let p = local(1);
        let mut store = FakeShared::default();
        request(&p, &mut store, &mut host());
        let mut host = host();
        let (stream, step) = request(&p, &mut store, &mut host);
        assert_eq!(step, Step::Stop);
        assert!(!stream.holds_request());
        let reply = &host.replies[0];
        assert_eq!(
            (reply.status, reply.grpc_status),
            (429, GRPC_RESOURCE_EXHAUSTED)
        );
        assert!(reply
            .headers
            .contains(&("x-ratelimit-remaining".into(), "0".into())));
        assert_eq!(host.counted, [Metric::RateLimitLimited]);
    }

    #[test]
    fn a_shadow_rule_over_its_limit_is_counted_and_lets_the_request_through() {
        let p = policy(json!({"local": {"rules": [
            {"limit": {"requests": 1, "unit": "Hour"}, "shadowMode": true}
        ]}}));
        let mut store = FakeShared::default();
        request(&p, &mut store, &mut host());
        let mut host = host();
        let (_, step) = request(&p, &mut store, &mut host);
        assert_eq!(step, Step::Continue);
        assert_eq!(
            host.counted,
            [Metric::RateLimitShadowLimited, Metric::RateLimitAllowed]
        );
    }

    #[test]
    fn without_a_clock_nothing_is_counted_or_refused() {
        let p = local(1);
        let mut store = FakeShared::default();
        let mut host = FakeHost::default();
        let (_, step) = request(&p, &mut store, &mut host);
        assert_eq!(step, Step::Continue);
        assert_eq!(store.keys(), 0);
    }

    #[test]
    fn global_rules_hold_the_request_for_one_call_and_an_allowing_answer_resumes_it() {
        let p = global("allow");
        let mut store = FakeShared::default();
        let mut host = host();
        let (mut stream, step) = request(&p, &mut store, &mut host);
        assert_eq!(step, Step::Stop);
        assert!(stream.holds_request());
        let call = &host.calls[0];
        assert_eq!(call.cluster, "rls");
        assert_eq!(
            call.path,
            "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit"
        );
        assert_eq!(call.timeout_ms, 250);
        let sent = RateLimitRequest::decode(call.message.as_slice()).unwrap();
        assert_eq!(sent.descriptors.len(), 1);

        stream.on_service_answer(1, Ok(answer(&[1], 9)), &mut host);
        assert_eq!(host.continued, 1);
        assert!(!stream.holds_request());
        stream.on_response_headers(&mut host);
        assert_eq!(
            host.get(Direction::Response, "x-ratelimit-remaining"),
            ["9"]
        );
    }

    #[test]
    fn an_over_limit_answer_refuses_and_does_not_resume() {
        let p = global("allow");
        let mut host = host();
        let (mut stream, _) = request(&p, &mut FakeShared::default(), &mut host);
        stream.on_service_answer(1, Ok(answer(&[2], 0)), &mut host);
        assert_eq!(host.continued, 0);
        assert_eq!(host.replies[0].status, 429);
    }

    #[test]
    fn an_answer_to_another_call_is_ignored() {
        let p = global("allow");
        let mut host = host();
        let (mut stream, _) = request(&p, &mut FakeShared::default(), &mut host);
        stream.on_service_answer(99, Ok(answer(&[2], 0)), &mut host);
        assert!(stream.holds_request());
        assert!(host.replies.is_empty() && host.continued == 0);
    }

    #[test]
    fn failure_mode_decides_when_the_service_fails_answers_garbage_or_cannot_be_called() {
        for (mode, allowed) in [("allow", true), ("deny", false)] {
            let p = global(mode);
            type Failure<'a> = &'a dyn Fn(&mut FakeHost, &mut Stream);
            let failures: [Failure; 3] = [
                &|host, stream| stream.on_service_answer(1, Err("status 14".into()), host),
                &|host, stream| stream.on_service_answer(1, Ok(vec![0xff, 0xff]), host),
                &|_, _| {},
            ];
            for (i, fail) in failures.iter().enumerate() {
                let mut host = host();
                if i == 2 {
                    host.refuse_calls = Some("no cluster".into());
                }
                let (mut stream, step) = request(&p, &mut FakeShared::default(), &mut host);
                fail(&mut host, &mut stream);
                assert!(host.counted.contains(&Metric::RateLimitServiceFailures));
                if allowed {
                    assert!(host.replies.is_empty(), "{mode} #{i}");
                    assert!(step == Step::Continue || host.continued == 1, "{mode} #{i}");
                } else {
                    let reply = &host.replies[0];
                    assert_eq!((reply.status, reply.grpc_status), (500, GRPC_UNAVAILABLE));
                    assert_eq!(host.continued, 0);
                }
            }
        }
    }

    #[test]
    fn a_request_refused_locally_never_calls_the_service() {
        let p = policy(json!({
            "local": {"rules": [{"limit": {"requests": 1, "unit": "Hour"}}]},
            "global": {"rules": [{"limit": {"requests": 10, "unit": "Minute"}}]},
            "service": {"cluster": "rls"}
        }));
        let mut store = FakeShared::default();
        request(&p, &mut store, &mut host());
        let mut host = host();
        let (_, step) = request(&p, &mut store, &mut host);
        assert_eq!(step, Step::Stop);
        assert!(host.calls.is_empty());
        assert_eq!(host.replies[0].status, 429);
    }

    #[test]
    fn a_bucket_that_finds_no_slot_counts_in_the_overflow_bucket_and_says_so() {
        let p = local(5);
        let mut store = FakeShared::default();
        let mut host = host();
        let mut stream = Stream::default();
        // Without a slot hash key every bucket counts in the overflow bucket.
        stream.on_request_headers(
            "",
            &p,
            &mut SharedTable {
                store: &mut store,
                hasher: None,
            },
            &mut host,
        );
        assert_eq!(
            host.counted,
            [Metric::RateLimitTableFull, Metric::RateLimitAllowed]
        );
    }
}
