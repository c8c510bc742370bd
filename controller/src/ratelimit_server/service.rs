//! `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`.
//!
//! Per descriptor: its `limit` override if it has one (Tollgate's filter always
//! sends it; with a `--config` file, only in the file's domain, as the
//! reference), else the `--config` file's entry, else not limited. Every
//! limited descriptor of a call is one `INCRBY` on a fixed window aligned to the
//! unit, all in one Redis pipeline (shared with concurrent calls, see
//! [`super::redis_store`]), except keys already over their limit in this window,
//! answered from [`super::over_limit_cache`]. The call is OVER_LIMIT if any
//! descriptor is.

use std::sync::PoisonError;
use std::time::{SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    Code, DescriptorStatus, RateLimit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitService;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::Duration as ProtoDuration;
use tollgate_core::ratelimit::config::Unit;
use tonic::{Request, Response, Status};

use super::config_file::{Limit, Rule};
use super::config_set::{ConfigSet, SharedConfigSet};
use super::metrics::Metrics;
use super::over_limit_cache::OverLimitCache;
use super::redis_connection::Increment;
use super::redis_store::RedisStore;

pub struct RateLimiter {
    configs: Option<SharedConfigSet>,
    store: RedisStore,
    over_limit: OverLimitCache,
    metrics: Metrics,
}

impl RateLimiter {
    pub fn new(
        configs: Option<SharedConfigSet>,
        store: RedisStore,
        over_limit: OverLimitCache,
        metrics: Metrics,
    ) -> Self {
        RateLimiter {
            configs,
            store,
            over_limit,
            metrics,
        }
    }
}

#[tonic::async_trait]
impl RateLimitService for RateLimiter {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        let request = request.into_inner();
        let now = unix_now();
        let result = self.decide(&request, now).await;
        match &result {
            Ok(response) if response.overall_code == Code::OverLimit as i32 => {
                self.metrics.request("over_limit")
            }
            Ok(_) => self.metrics.request("ok"),
            Err(status) => {
                self.metrics.request("error");
                tracing::debug!(domain = %request.domain, error = %status.message(), "ShouldRateLimit failed");
            }
        }
        result.map(Response::new)
    }
}

impl RateLimiter {
    async fn decide(
        &self,
        request: &RateLimitRequest,
        now: u64,
    ) -> Result<RateLimitResponse, Status> {
        // This call's view of the files; a reload meanwhile serves the next call.
        let configs = self
            .configs
            .as_ref()
            .map(|c| c.read().unwrap_or_else(PoisonError::into_inner).clone());
        let plans = plan(request, configs.as_deref(), now)?;
        let counted: Vec<&Counted> = plans
            .iter()
            .filter_map(|p| match p {
                Plan::Count(c) => Some(c),
                Plan::NotCounted | Plan::Unlimited => None,
            })
            .collect();
        // Keys already over their limit in this window answer from memory.
        let cached: Vec<bool> = counted
            .iter()
            .map(|c| {
                let limit = c.limit.requests_per_unit;
                !c.shadow_mode && self.over_limit.is_over(&c.increment.key, limit, now)
            })
            .collect();
        let increments: Vec<Increment> = counted
            .iter()
            .zip(&cached)
            .filter(|(_, &hit)| !hit)
            .map(|(c, _)| c.increment.clone())
            .collect();
        let fresh = self
            .store
            .increment(increments)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let mut fresh = fresh.into_iter();
        let mut counts = Vec::with_capacity(counted.len());
        for (c, &hit) in counted.iter().zip(&cached) {
            if hit {
                self.metrics.over_limit_cache_hits.inc();
                counts.push(u64::MAX);
                continue;
            }
            let n = fresh.next().unwrap_or(0);
            if !c.shadow_mode && n > u64::from(c.limit.requests_per_unit) {
                let window = c.limit.unit.seconds();
                let end = now - now % window + window;
                let limit = c.limit.requests_per_unit;
                self.over_limit.insert(&c.increment.key, limit, end, now);
            }
            counts.push(n);
        }
        Ok(respond(&plans, &counts, now, &self.metrics))
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Most descriptors in one call. Envoy sends one per rate limit action that
/// applies (Tollgate's filter one per global rule); more is a caller trying
/// to make one call cost many Redis commands.
pub const MAX_DESCRIPTORS: usize = 128;
/// Most entries in one descriptor.
pub const MAX_ENTRIES: usize = 32;
/// Most bytes of one entry's key plus value (a header value, a path, a
/// token's claim), so that one call cannot write large keys into Redis.
pub const MAX_ENTRY_BYTES: usize = 4096;
/// Most bytes of the domain.
pub const MAX_DOMAIN_BYTES: usize = 256;

/// Refuses, naming the field, a call over the bounds above; what passes
/// costs Redis at most [`MAX_DESCRIPTORS`] increments of keys at most about
/// `MAX_ENTRIES × MAX_ENTRY_BYTES` long.
fn check_sizes(request: &RateLimitRequest) -> Result<(), Status> {
    let over =
        |field: String, what: String| Err(Status::invalid_argument(format!("{field}: {what}")));
    if request.domain.len() > MAX_DOMAIN_BYTES {
        return over(
            "domain".into(),
            format!("longer than {MAX_DOMAIN_BYTES} bytes"),
        );
    }
    if request.descriptors.len() > MAX_DESCRIPTORS {
        let n = request.descriptors.len();
        return over(
            "descriptors".into(),
            format!("{n} is more than {MAX_DESCRIPTORS}"),
        );
    }
    for (i, d) in request.descriptors.iter().enumerate() {
        if d.entries.len() > MAX_ENTRIES {
            let n = d.entries.len();
            return over(
                format!("descriptors[{i}].entries"),
                format!("{n} is more than {MAX_ENTRIES}"),
            );
        }
        for (j, e) in d.entries.iter().enumerate() {
            if e.key.len() + e.value.len() > MAX_ENTRY_BYTES {
                return over(
                    format!("descriptors[{i}].entries[{j}]"),
                    format!("key and value longer than {MAX_ENTRY_BYTES} bytes"),
                );
            }
        }
    }
    Ok(())
}

/// The most hits one descriptor may add in one call: the request-level
/// `hits_addend` is a uint32, and a limit (`requests_per_unit`) is one too, so
/// more could never count for anything but pushing a counter towards Redis's
/// 64-bit ceiling.
pub const MAX_HITS_ADDEND: u64 = u32::MAX as u64;

/// What to do for one descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// No limit applies: OK, nothing counted.
    NotCounted,
    /// The config file's entry is `unlimited: true`: OK, nothing counted, and
    /// `limit_remaining` is 4294967295 as envoyproxy/ratelimit answers (its
    /// `src/service/ratelimit.go`, and the expected response in
    /// `test/service/ratelimit_test.go`: MaxUint32 unlimited, 0 without a limit).
    Unlimited,
    Count(Counted),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    pub limit: Limit,
    pub shadow_mode: bool,
    pub increment: Increment,
}

/// Decides, without Redis, which descriptors count and on which keys.
pub fn plan(
    request: &RateLimitRequest,
    config: Option<&ConfigSet>,
    now: u64,
) -> Result<Vec<Plan>, Status> {
    if request.domain.is_empty() {
        return Err(Status::invalid_argument(
            "rate limit domain must not be empty",
        ));
    }
    if request.descriptors.is_empty() {
        return Err(Status::invalid_argument(
            "rate limit descriptor list must not be empty",
        ));
    }
    check_sizes(request)?;
    let default_hits = if request.hits_addend == 0 {
        1
    } else {
        u64::from(request.hits_addend)
    };
    let mut plans = request
        .descriptors
        .iter()
        .enumerate()
        .map(|(i, d)| plan_one(&request.domain, i, d, config, default_hits, now))
        .collect::<Result<Vec<_>, _>>()?;
    drop_replaced(&mut plans);
    Ok(plans)
}

/// envoyproxy/ratelimit's `replaces` (README, example 7): a limit that applies
/// to this call drops every limit it names from the call, which then neither
/// counts nor refuses (answered OK, as a descriptor without a limit).
fn drop_replaced(plans: &mut [Plan]) {
    let replaced: Vec<String> = plans
        .iter()
        .filter_map(|p| match p {
            Plan::Count(c) => Some(c.limit.replaces.iter().cloned()),
            _ => None,
        })
        .flatten()
        .collect();
    if replaced.is_empty() {
        return;
    }
    for plan in plans.iter_mut() {
        if let Plan::Count(c) = plan {
            if !c.limit.name.is_empty() && replaced.contains(&c.limit.name) {
                *plan = Plan::NotCounted;
            }
        }
    }
}

fn plan_one(
    domain: &str,
    index: usize,
    descriptor: &RateLimitDescriptor,
    config: Option<&ConfigSet>,
    default_hits: u64,
    now: u64,
) -> Result<Plan, Status> {
    let (limit, shadow_mode) = match &descriptor.limit {
        // envoyproxy/ratelimit applies an override only in a domain it has a
        // config for: with config files, any other domain is not counted.
        Some(_) if config.is_some_and(|c| !c.has_domain(domain)) => return Ok(Plan::NotCounted),
        Some(o) => {
            let unit = Unit::from_api_code(o.unit).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "descriptors[{index}].limit.unit: unknown unit {} (expected SECOND … YEAR)",
                    o.unit
                ))
            })?;
            let limit = Limit {
                requests_per_unit: o.requests_per_unit,
                unit,
                name: String::new(),
                replaces: Vec::new(),
            };
            (limit, false)
        }
        None => {
            let entries = descriptor
                .entries
                .iter()
                .map(|e| (e.key.as_str(), e.value.as_str()));
            match config.and_then(|c| c.lookup(domain, entries)) {
                Some(Rule::Limited { limit, shadow_mode }) => (limit.clone(), shadow_mode),
                Some(Rule::Unlimited) => return Ok(Plan::Unlimited),
                None => return Ok(Plan::NotCounted),
            }
        }
    };
    let hits = match &descriptor.hits_addend {
        None => default_hits,
        Some(h) if h.value <= MAX_HITS_ADDEND => h.value,
        Some(h) => {
            return Err(Status::invalid_argument(format!(
                "descriptors[{index}].hits_addend: {} is more than one call may add ({MAX_HITS_ADDEND})",
                h.value
            )))
        }
    };
    let window = limit.unit.seconds();
    Ok(Plan::Count(Counted {
        increment: Increment {
            key: cache_key(domain, descriptor, now - now % window),
            hits,
            expire_secs: window,
        },
        limit,
        shadow_mode,
    }))
}

/// envoyproxy/ratelimit's key, `<domain>_<key>_<value>_…_<window start>`, made
/// unambiguous: in the reference the value `bob_path_/login` of one entry
/// shares a counter with the two entries `user=bob`, `path=/login`. Here a `_`
/// or `\` inside a domain, key or value is escaped with `\`, so separators are
/// only ever the unescaped `_`. Parts without those two characters (the usual
/// ones) give exactly the reference's key, so both services still count the
/// same keys for them.
pub fn cache_key(domain: &str, descriptor: &RateLimitDescriptor, window_start: u64) -> String {
    let mut key = String::with_capacity(64);
    push_escaped(&mut key, domain);
    key.push('_');
    for e in &descriptor.entries {
        push_escaped(&mut key, &e.key);
        key.push('_');
        push_escaped(&mut key, &e.value);
        key.push('_');
    }
    key.push_str(&window_start.to_string());
    key
}

fn push_escaped(key: &mut String, part: &str) {
    for c in part.chars() {
        if c == '_' || c == '\\' {
            key.push('\\');
        }
        key.push(c);
    }
}

/// Builds the answer from the plans and the counters' new values (one per
/// counted plan, in order).
pub fn respond(plans: &[Plan], counts: &[u64], now: u64, metrics: &Metrics) -> RateLimitResponse {
    let mut counts = counts.iter();
    let mut overall = Code::Ok;
    let statuses = plans
        .iter()
        .map(|plan| {
            let c = match plan {
                Plan::Count(c) => c,
                Plan::NotCounted => {
                    return DescriptorStatus {
                        code: Code::Ok as i32,
                        ..DescriptorStatus::default()
                    }
                }
                Plan::Unlimited => {
                    return DescriptorStatus {
                        code: Code::Ok as i32,
                        limit_remaining: u32::MAX,
                        ..DescriptorStatus::default()
                    }
                }
            };
            // `counts` has one value per counted plan; a missing one (never
            // expected) reads as zero rather than failing the call.
            let after = counts.next().copied().unwrap_or(0);
            let limit = u64::from(c.limit.requests_per_unit);
            metrics.descriptors_counted.inc();
            let over = after > limit;
            let code = if over && c.shadow_mode {
                metrics.descriptors_shadow_over_limit.inc();
                Code::Ok
            } else if over {
                metrics.descriptors_over_limit.inc();
                overall = Code::OverLimit;
                Code::OverLimit
            } else {
                Code::Ok
            };
            let window = c.limit.unit.seconds();
            DescriptorStatus {
                code: code as i32,
                current_limit: Some(RateLimit {
                    name: c.limit.name.clone(),
                    requests_per_unit: c.limit.requests_per_unit,
                    unit: c.limit.unit.api_code(),
                }),
                // Fits: at most `requests_per_unit`, a u32.
                limit_remaining: u32::try_from(limit.saturating_sub(after)).unwrap_or(u32::MAX),
                duration_until_reset: Some(ProtoDuration {
                    seconds: i64::try_from(window - now % window).unwrap_or(i64::MAX),
                    nanos: 0,
                }),
                quota: None,
            }
        })
        .collect();
    RateLimitResponse {
        overall_code: overall as i32,
        statuses,
        ..RateLimitResponse::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit_server::config_file::ConfigFile;
    use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{
        Entry, RateLimitOverride,
    };
    use envoy_types::pb::google::protobuf::UInt64Value;

    fn descriptor(entries: &[(&str, &str)], limit: Option<(u32, i32)>) -> RateLimitDescriptor {
        RateLimitDescriptor {
            entries: entries
                .iter()
                .map(|(k, v)| Entry {
                    key: k.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            limit: limit.map(|(requests_per_unit, unit)| RateLimitOverride {
                requests_per_unit,
                unit,
            }),
            ..RateLimitDescriptor::default()
        }
    }

    fn request(descriptors: Vec<RateLimitDescriptor>) -> RateLimitRequest {
        RateLimitRequest {
            domain: "edge".into(),
            descriptors,
            hits_addend: 0,
        }
    }

    const HOUR: i32 = 3;
    /// 2026-11-21T20:00:05Z: five seconds into an hour.
    const NOW: u64 = 1_795_377_605;

    fn counted(plan: &Plan) -> &Counted {
        match plan {
            Plan::Count(c) => c,
            other => panic!("expected a counted plan, got {other:?}"),
        }
    }

    #[test]
    fn keys_and_windows_follow_envoyproxy_ratelimit() {
        let plans = plan(
            &request(vec![descriptor(
                &[("user", "alice"), ("path", "/x")],
                Some((3, HOUR)),
            )]),
            None,
            NOW,
        )
        .unwrap();
        let c = counted(&plans[0]);
        let start = NOW - NOW % 3600;
        assert_eq!(NOW - start, 5);
        assert_eq!(c.increment.key, format!("edge_user_alice_path_/x_{start}"));
        assert_eq!(c.increment.expire_secs, 3600);
        assert_eq!(c.increment.hits, 1);
        assert_eq!(c.limit.unit, Unit::Hour);
    }

    #[test]
    fn a_value_with_separators_never_shares_a_counter_with_other_entries() {
        let start = NOW - NOW % 3600;
        let key = |entries: &[(&str, &str)]| cache_key("edge", &descriptor(entries, None), start);
        let one = key(&[("user", "bob_path_/login")]);
        let two = key(&[("user", "bob"), ("path", "/login")]);
        assert_ne!(one, two);
        assert_eq!(one, format!("edge_user_bob\\_path\\_/login_{start}"));
        // Plain parts keep envoyproxy/ratelimit's key exactly.
        assert_eq!(two, format!("edge_user_bob_path_/login_{start}"));
        assert_ne!(key(&[("a\\", "b")]), key(&[("a", "\\b")]));
        assert_ne!(
            cache_key("a_b", &descriptor(&[("c", "d")], None), start),
            cache_key("a", &descriptor(&[("b_c", "d")], None), start)
        );
    }

    /// envoyproxy/ratelimit answers an override in a domain no config file
    /// names OK without counting; without config files every override counts
    /// (Tollgate's filter needs no file).
    #[test]
    fn an_override_counts_only_in_a_configured_domain_when_there_is_a_file() {
        let config = ConfigSet::of([ConfigFile::parse(
            "domain: other\ndescriptors:\n  - key: k\n    rate_limit: {unit: second, requests_per_unit: 1}\n",
            "t.yaml",
        )
        .unwrap()]);
        let r = request(vec![descriptor(&[("user", "a")], Some((3, HOUR)))]);
        assert_eq!(plan(&r, Some(&config), NOW).unwrap()[0], Plan::NotCounted);
        assert_eq!(
            counted(&plan(&r, None, NOW).unwrap()[0])
                .limit
                .requests_per_unit,
            3
        );
        let mut mine = r.clone();
        mine.domain = "other".into();
        assert_eq!(
            counted(&plan(&mine, Some(&config), NOW).unwrap()[0])
                .limit
                .requests_per_unit,
            3
        );
    }

    /// The reference README's example 7: a per-user limit that replaces the
    /// generic one when both apply.
    #[test]
    fn a_limit_that_replaces_another_drops_it_from_the_call() {
        let config = ConfigSet::of([ConfigFile::parse(
            "domain: edge\ndescriptors:\n  - key: path\n    rate_limit: {unit: minute, requests_per_unit: 100, name: generic}\n  - key: user\n    value: vip\n    rate_limit: {unit: minute, requests_per_unit: 1000, replaces: [{name: generic}]}\n",
            "t.yaml",
        )
        .unwrap()]);
        let both = request(vec![
            descriptor(&[("path", "/x")], None),
            descriptor(&[("user", "vip")], None),
        ]);
        let plans = plan(&both, Some(&config), NOW).unwrap();
        assert_eq!(plans[0], Plan::NotCounted, "the generic limit is replaced");
        assert_eq!(counted(&plans[1]).limit.requests_per_unit, 1000);
        let alone = request(vec![
            descriptor(&[("path", "/x")], None),
            descriptor(&[("user", "someone")], None),
        ]);
        let plans = plan(&alone, Some(&config), NOW).unwrap();
        assert_eq!(
            counted(&plans[0]).limit.name,
            "generic",
            "nothing replaces it"
        );
    }

    #[test]
    fn every_unit_has_its_divider() {
        let dividers = [
            (1, 1),
            (2, 60),
            (3, 3600),
            (4, 86_400),
            (7, 604_800),
            (5, 2_592_000),
            (6, 31_536_000),
        ];
        for (api, secs) in dividers {
            let plans = plan(
                &request(vec![descriptor(&[("k", "v")], Some((1, api)))]),
                None,
                NOW,
            )
            .unwrap();
            let c = counted(&plans[0]);
            assert_eq!(c.increment.expire_secs, secs, "unit {api}");
            assert!(c.increment.key.ends_with(&format!("_{}", NOW - NOW % secs)));
            assert_eq!(c.limit.unit.api_code(), api);
        }
    }

    #[test]
    fn hits_addend_comes_from_the_descriptor_then_the_request() {
        let mut d = descriptor(&[("k", "v")], Some((10, HOUR)));
        let mut r = request(vec![d.clone()]);
        r.hits_addend = 4;
        assert_eq!(counted(&plan(&r, None, NOW).unwrap()[0]).increment.hits, 4);
        d.hits_addend = Some(UInt64Value { value: 7 });
        r.descriptors = vec![d];
        assert_eq!(counted(&plan(&r, None, NOW).unwrap()[0]).increment.hits, 7);
    }

    #[test]
    fn descriptors_without_override_use_the_config_file_or_are_not_limited() {
        let config = ConfigSet::of([ConfigFile::parse(
            "domain: edge\ndescriptors:\n  - key: user\n    rate_limit: {unit: minute, requests_per_unit: 5, name: per-user}\n  - key: user\n    value: root\n    rate_limit: {unlimited: true}\n",
            "t.yaml",
        )
        .unwrap()]);
        let r = request(vec![
            descriptor(&[("user", "alice")], None),
            descriptor(&[("user", "root")], None),
            descriptor(&[("other", "x")], None),
        ]);
        let plans = plan(&r, Some(&config), NOW).unwrap();
        let c = counted(&plans[0]);
        assert_eq!(c.limit.requests_per_unit, 5);
        assert_eq!(c.limit.name, "per-user");
        assert_eq!(plans[1], Plan::Unlimited);
        assert_eq!(plans[2], Plan::NotCounted);
        let answer = respond(&plans[1..], &[], NOW, &Metrics::new());
        assert_eq!(answer.statuses[0].limit_remaining, u32::MAX, "unlimited");
        assert_eq!(answer.statuses[1].limit_remaining, 0, "no limit applies");
        assert_eq!(plan(&r, None, NOW).unwrap()[0], Plan::NotCounted);
    }

    #[test]
    fn calls_over_the_size_bounds_are_refused_naming_the_field() {
        let one = || descriptor(&[("user", "alice")], Some((3, HOUR)));
        let many = request((0..=MAX_DESCRIPTORS).map(|_| one()).collect());
        let e = plan(&many, None, NOW).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(
            e.message().starts_with("descriptors: 129 is more than 128"),
            "{e:?}"
        );
        let at_bound = request((0..MAX_DESCRIPTORS).map(|_| one()).collect());
        assert_eq!(plan(&at_bound, None, NOW).unwrap().len(), MAX_DESCRIPTORS);

        let long = "x".repeat(MAX_ENTRY_BYTES);
        let e = plan(
            &request(vec![one(), descriptor(&[("user", &long)], Some((3, HOUR)))]),
            None,
            NOW,
        )
        .unwrap_err();
        assert!(
            e.message().starts_with("descriptors[1].entries[0]:"),
            "{e:?}"
        );
        let wide: Vec<(String, String)> = (0..=MAX_ENTRIES)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        let wide: Vec<(&str, &str)> = wide.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let e = plan(&request(vec![descriptor(&wide, None)]), None, NOW).unwrap_err();
        assert!(
            e.message()
                .starts_with("descriptors[0].entries: 33 is more than 32"),
            "{e:?}"
        );
        let mut r = request(vec![one()]);
        r.domain = "d".repeat(MAX_DOMAIN_BYTES + 1);
        assert!(plan(&r, None, NOW)
            .unwrap_err()
            .message()
            .starts_with("domain:"));
    }

    #[test]
    fn bad_requests_are_invalid_argument() {
        let e = plan(&request(vec![]), None, NOW).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        let mut r = request(vec![descriptor(&[("k", "v")], None)]);
        r.domain.clear();
        assert_eq!(
            plan(&r, None, NOW).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        let r = request(vec![
            descriptor(&[("k", "v")], None),
            descriptor(&[("k", "v")], Some((1, 0))),
        ]);
        let e = plan(&r, None, NOW).unwrap_err();
        assert!(e.message().contains("descriptors[1].limit.unit"), "{e:?}");
    }

    #[test]
    fn response_is_over_limit_when_any_descriptor_is() {
        let metrics = Metrics::new();
        let r = request(vec![
            descriptor(&[("a", "1")], Some((3, HOUR))),
            descriptor(&[("b", "1")], None),
            descriptor(&[("c", "1")], Some((3, HOUR))),
        ]);
        let plans = plan(&r, None, NOW).unwrap();
        let ok = respond(&plans, &[3, 1], NOW, &metrics);
        assert_eq!(ok.overall_code, Code::Ok as i32);
        assert_eq!(ok.statuses.len(), 3);
        assert_eq!(ok.statuses[0].limit_remaining, 0);
        assert_eq!(ok.statuses[2].limit_remaining, 2);
        assert_eq!(
            ok.statuses[0].duration_until_reset.map(|d| d.seconds),
            Some(3595)
        );
        assert_eq!(ok.statuses[1].current_limit, None);
        let over = respond(&plans, &[1, 4], NOW, &metrics);
        assert_eq!(over.overall_code, Code::OverLimit as i32);
        assert_eq!(over.statuses[0].code, Code::Ok as i32);
        assert_eq!(over.statuses[2].code, Code::OverLimit as i32);
        assert_eq!(over.statuses[2].limit_remaining, 0);
        let limit = over.statuses[2].current_limit.clone().unwrap();
        assert_eq!((limit.requests_per_unit, limit.unit), (3, HOUR));
    }

    #[test]
    fn shadow_mode_reports_but_never_refuses() {
        let metrics = Metrics::new();
        let config = ConfigSet::of([ConfigFile::parse(
            "domain: edge\ndescriptors:\n  - key: k\n    shadow_mode: true\n    rate_limit: {unit: second, requests_per_unit: 1}\n",
            "t.yaml",
        )
        .unwrap()]);
        let plans = plan(
            &request(vec![descriptor(&[("k", "v")], None)]),
            Some(&config),
            NOW,
        )
        .unwrap();
        let r = respond(&plans, &[5], NOW, &metrics);
        assert_eq!(r.overall_code, Code::Ok as i32);
        assert_eq!(metrics.descriptors_shadow_over_limit.get(), 1);
    }

    /// The wasm filter's hand-declared messages (`tollgate_core::ratelimit::
    /// service_call`) against the generated API types, both ways: the filter's
    /// call plans here as intended, and our answer reads back as each rule's
    /// standing.
    #[test]
    fn the_wasm_filters_call_and_our_answer_agree_on_the_wire() {
        use prost::Message;
        use tollgate_core::ratelimit::policy::{RateLimitPolicy, RequestAttrs};
        use tollgate_core::ratelimit::service_call::{build, read_answer};
        use tollgate_core::ratelimit::verdict::Verdict;

        struct Anyone;
        impl RequestAttrs for Anyone {
            fn header_values(&self, _: &str) -> Vec<&str> {
                vec!["alice"]
            }
            fn method(&self) -> &str {
                "GET"
            }
            fn path(&self) -> &str {
                "/"
            }
            fn source_ip(&self) -> Option<std::net::IpAddr> {
                None
            }
        }
        let policy = RateLimitPolicy::compile(
            serde_json::from_value(serde_json::json!({
                "global": {"rules": [
                    {"name": "users", "clientSelectors": [{"headers": [{"name": "x-user-id", "type": "Distinct"}]}],
                     "limit": {"requests": 3, "unit": "Hour"}},
                    {"name": "weekly", "limit": {"requests": 1, "unit": "Week"}}
                ]},
                "service": {"cluster": "rls", "domain": "edge"}
            }))
            .unwrap(),
        )
        .unwrap();
        let call = build("edge", "foo", &policy.global, &Anyone).unwrap();
        let request = RateLimitRequest::decode(call.message.as_slice()).unwrap();
        let plans = plan(&request, None, NOW).unwrap();
        let keys: Vec<_> = plans
            .iter()
            .map(|p| counted(p).increment.key.clone())
            .collect();
        assert_eq!(
            keys,
            [
                format!(
                    "edge_route_foo_rule_users_distinct_h:x-user-id=alice_{}",
                    NOW - NOW % 3600
                ),
                format!("edge_route_foo_rule_weekly_{}", NOW - NOW % 604_800),
            ]
        );
        let answer = respond(&plans, &[1, 2], NOW, &Metrics::new()).encode_to_vec();
        let mut verdict = Verdict::default();
        read_answer(&answer, &call.sent, NOW, &mut verdict).unwrap();
        assert!(verdict.is_over(), "the weekly rule is over");
        let headers = verdict.headers().unwrap();
        assert_eq!(headers[0].1, "1, 3;w=3600, 1;w=604800");
        assert_eq!(headers[1].1, "0");
    }
}
