//! The global mode's call to the rate limit service:
//! `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`, one
//! descriptor per applicable rule, each carrying its limit in the API's
//! per-descriptor `limit` override so the service needs no limit config.
//!
//! Only the fields Tollgate sends or reads are declared (protobuf skips the
//! rest); the controller's tests check these against the full generated types.
//!
//! Descriptor entries name the counter: `route` (only for a per-route policy),
//! `rule`, and `distinct` (only for a rule with `Distinct` selectors: its
//! values, as `Rule::bucket` joins them). The service's Redis key is built
//! from them, so two policies with the same rule names share counters only
//! within one `service.domain`.

use prost::Message;

use super::policy::{Limit, RequestAttrs, Rule};
use super::verdict::{Standing, Verdict};
use super::window;

pub const SERVICE: &str = "envoy.service.ratelimit.v3.RateLimitService";
pub const METHOD: &str = "ShouldRateLimit";

/// `RateLimitResponse.Code.OVER_LIMIT`.
const OVER_LIMIT: i32 = 2;

#[derive(Clone, PartialEq, Message)]
pub struct RateLimitRequest {
    #[prost(string, tag = "1")]
    pub domain: String,
    #[prost(message, repeated, tag = "2")]
    pub descriptors: Vec<Descriptor>,
}

/// `envoy.extensions.common.ratelimit.v3.RateLimitDescriptor`.
#[derive(Clone, PartialEq, Message)]
pub struct Descriptor {
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<Entry>,
    #[prost(message, optional, tag = "2")]
    pub limit: Option<LimitOverride>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Entry {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `RateLimitDescriptor.RateLimitOverride`.
#[derive(Clone, PartialEq, Message)]
pub struct LimitOverride {
    #[prost(uint32, tag = "1")]
    pub requests_per_unit: u32,
    /// `RateLimitUnit` ([`super::config::Unit::api_code`]).
    #[prost(int32, tag = "2")]
    pub unit: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct RateLimitResponse {
    #[prost(int32, tag = "1")]
    pub overall_code: i32,
    #[prost(message, repeated, tag = "2")]
    pub statuses: Vec<DescriptorStatus>,
}

#[derive(Clone, PartialEq, Message)]
pub struct DescriptorStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(uint32, tag = "3")]
    pub limit_remaining: u32,
    #[prost(message, optional, tag = "4")]
    pub duration_until_reset: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, Message)]
pub struct ProtoDuration {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// One rule in the call, in descriptor order: what reading the answer needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub limit: Limit,
    pub shadow: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The serialized `RateLimitRequest`.
    pub message: Vec<u8>,
    pub sent: Vec<Sent>,
}

/// The call for those of `rules` that apply to `req`; None when none does.
/// `scope` is the per-route policy's route name, or empty.
pub fn build(domain: &str, scope: &str, rules: &[Rule], req: &dyn RequestAttrs) -> Option<Call> {
    let mut descriptors = Vec::new();
    let mut sent = Vec::new();
    for rule in rules {
        let Some(bucket) = rule.bucket(req) else {
            continue;
        };
        descriptors.push(descriptor(scope, rule, bucket));
        sent.push(Sent {
            limit: rule.limit,
            shadow: rule.shadow,
        });
    }
    if descriptors.is_empty() {
        return None;
    }
    let request = RateLimitRequest {
        domain: domain.to_string(),
        descriptors,
    };
    Some(Call {
        message: request.encode_to_vec(),
        sent,
    })
}

fn descriptor(scope: &str, rule: &Rule, bucket: String) -> Descriptor {
    let entry = |key: &str, value: String| Entry {
        key: key.to_string(),
        value,
    };
    let mut entries = Vec::with_capacity(3);
    if !scope.is_empty() {
        entries.push(entry("route", scope.to_string()));
    }
    entries.push(entry("rule", rule.name.clone()));
    if !bucket.is_empty() {
        entries.push(entry("distinct", bucket));
    }
    Descriptor {
        entries,
        limit: Some(LimitOverride {
            // Policy compilation refuses global limits above u32::MAX.
            requests_per_unit: u32::try_from(rule.limit.requests).unwrap_or(u32::MAX),
            unit: rule.limit.unit.api_code(),
        }),
    }
}

/// Adds the service's answer to `verdict`. Per-descriptor statuses give each
/// rule's standing (and the headers); a service that sends only the overall
/// code refuses (or, if every rule sent was `shadowMode`, shadow-refuses) on
/// OVER_LIMIT. Any other overall code allows, as Envoy's native filter does.
pub fn read_answer(
    body: &[u8],
    sent: &[Sent],
    now: u64,
    verdict: &mut Verdict,
) -> Result<(), prost::DecodeError> {
    let answer = RateLimitResponse::decode(body)?;
    if answer.statuses.len() != sent.len() {
        if answer.overall_code == OVER_LIMIT {
            if sent.iter().all(|s| s.shadow) {
                verdict.shadow_refuse();
            } else {
                verdict.refuse();
            }
        }
        return Ok(());
    }
    for (s, status) in sent.iter().zip(&answer.statuses) {
        let reset = status
            .duration_until_reset
            .as_ref()
            .and_then(|d| u64::try_from(d.seconds).ok())
            .unwrap_or_else(|| window::reset_after(now, &s.limit));
        verdict.record(Standing {
            limit: s.limit,
            shadow: s.shadow,
            over: status.code == OVER_LIMIT,
            remaining: u64::from(status.limit_remaining),
            reset,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::config::RateLimitConfig;
    use crate::ratelimit::policy::{RateLimitPolicy, Unit};
    use std::net::IpAddr;

    struct Req(Vec<(&'static str, &'static str)>);

    impl RequestAttrs for Req {
        fn header_values(&self, name: &str) -> Vec<&str> {
            self.0
                .iter()
                .filter(|(k, _)| *k == name)
                .map(|(_, v)| *v)
                .collect()
        }
        fn method(&self) -> &str {
            "GET"
        }
        fn path(&self) -> &str {
            "/"
        }
        fn source_ip(&self) -> Option<IpAddr> {
            None
        }
    }

    fn policy() -> RateLimitPolicy {
        let config: RateLimitConfig = serde_json::from_value(serde_json::json!({
            "global": {"rules": [
                {"name": "one", "clientSelectors": [{"headers": [{"name": "x-user-id", "value": "one"}]}],
                 "limit": {"requests": 3, "unit": "Hour"}},
                {"name": "per-user", "clientSelectors": [{"headers": [{"name": "x-user-id", "type": "Distinct"}]}],
                 "limit": {"requests": 10, "unit": "Week"}, "shadowMode": true},
                {"name": "all", "limit": {"requests": 100, "unit": "Second"}}
            ]},
            "service": {"cluster": "rls", "domain": "edge"}
        }))
        .unwrap();
        RateLimitPolicy::compile(config).unwrap()
    }

    fn entries(d: &Descriptor) -> Vec<(&str, &str)> {
        d.entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect()
    }

    #[test]
    fn one_descriptor_per_applicable_rule_with_its_limit() {
        let p = policy();
        let call = build("edge", "foo", &p.global, &Req(vec![("x-user-id", "two")])).unwrap();
        let request = RateLimitRequest::decode(call.message.as_slice()).unwrap();
        assert_eq!(request.domain, "edge");
        assert_eq!(request.descriptors.len(), 2, "`one` does not apply");
        assert_eq!(
            entries(&request.descriptors[0]),
            [
                ("route", "foo"),
                ("rule", "per-user"),
                ("distinct", "h:x-user-id=two")
            ]
        );
        assert_eq!(
            request.descriptors[0].limit,
            Some(LimitOverride {
                requests_per_unit: 10,
                unit: 7
            })
        );
        assert_eq!(
            entries(&request.descriptors[1]),
            [("route", "foo"), ("rule", "all")]
        );
        assert_eq!(
            call.sent,
            [
                Sent {
                    limit: Limit {
                        requests: 10,
                        unit: Unit::Week
                    },
                    shadow: true
                },
                Sent {
                    limit: Limit {
                        requests: 100,
                        unit: Unit::Second
                    },
                    shadow: false
                }
            ]
        );
        let unscoped = build("edge", "", &p.global[2..], &Req(vec![])).unwrap();
        let request = RateLimitRequest::decode(unscoped.message.as_slice()).unwrap();
        assert_eq!(entries(&request.descriptors[0]), [("rule", "all")]);
    }

    #[test]
    fn no_applicable_rule_means_no_call() {
        let p = policy();
        assert!(build("edge", "", &p.global[..2], &Req(vec![])).is_none());
    }

    fn answer(overall: i32, statuses: &[(i32, u32, Option<i64>)]) -> Vec<u8> {
        RateLimitResponse {
            overall_code: overall,
            statuses: statuses
                .iter()
                .map(|&(code, remaining, reset)| DescriptorStatus {
                    code,
                    limit_remaining: remaining,
                    duration_until_reset: reset.map(|seconds| ProtoDuration { seconds, nanos: 0 }),
                })
                .collect(),
        }
        .encode_to_vec()
    }

    fn sent(shadow: &[bool]) -> Vec<Sent> {
        shadow
            .iter()
            .map(|&shadow| Sent {
                limit: Limit {
                    requests: 3,
                    unit: Unit::Hour,
                },
                shadow,
            })
            .collect()
    }

    /// 2026-11-21T20:00:05Z.
    const NOW: u64 = 1_795_377_605;

    #[test]
    fn statuses_give_each_rule_its_standing() {
        let mut v = Verdict::default();
        let body = answer(OVER_LIMIT, &[(OVER_LIMIT, 0, None), (1, 2, Some(40))]);
        read_answer(&body, &sent(&[true, false]), NOW, &mut v).unwrap();
        assert!(!v.is_over(), "only the shadow rule is over");
        assert_eq!(v.shadow_over(), 1);
        let h = v.headers().unwrap();
        assert_eq!((h[1].1.as_str(), h[2].1.as_str()), ("2", "40"));

        let mut v = Verdict::default();
        let body = answer(OVER_LIMIT, &[(OVER_LIMIT, 0, None)]);
        read_answer(&body, &sent(&[false]), NOW, &mut v).unwrap();
        assert!(v.is_over());
        let h = v.headers().unwrap();
        assert_eq!(h[2].1, "3595", "no duration_until_reset: our own window");
    }

    #[test]
    fn an_answer_without_statuses_goes_by_the_overall_code() {
        let mut v = Verdict::default();
        read_answer(&answer(OVER_LIMIT, &[]), &sent(&[false, true]), NOW, &mut v).unwrap();
        assert!(v.is_over());
        assert!(v.headers().is_none());
        let mut v = Verdict::default();
        read_answer(&answer(OVER_LIMIT, &[]), &sent(&[true]), NOW, &mut v).unwrap();
        assert!(!v.is_over());
        assert_eq!(v.shadow_over(), 1);
        let mut v = Verdict::default();
        read_answer(&answer(0, &[]), &sent(&[false]), NOW, &mut v).unwrap();
        assert!(!v.is_over(), "UNKNOWN allows, as Envoy's filter does");
    }

    #[test]
    fn garbage_is_an_error() {
        let mut v = Verdict::default();
        assert!(read_answer(&[0xff, 0xff, 0xff], &sent(&[false]), NOW, &mut v).is_err());
    }
}
