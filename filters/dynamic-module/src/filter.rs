//! The filters this module holds, by `filter_name`: each one's compiled
//! config (exactly the JSON its `.wasm` takes, the per-route envelope
//! included), its per-route config (one policy, `DynamicModuleFilterPerRoute`),
//! its metrics, and its stream, which is the core's flow for that filter.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value;
use tollgate_core::canary::flow::{self as canary_flow, Chosen};
use tollgate_core::canary::policy::{CanaryPolicy, Draws};
use tollgate_core::catalogue::FilterKind as Kind;
use tollgate_core::error::parse_json;
use tollgate_core::grpc;
use tollgate_core::headers::{flow as headers_flow, HeaderPolicy};
use tollgate_core::host::{route_name, Metric};
use tollgate_core::jwt::policy::JwtPolicy;
use tollgate_core::ratelimit::flow::{self as ratelimit_flow, Step};
use tollgate_core::ratelimit::policy::RateLimitPolicy;
use tollgate_core::ratelimit::slot_hash::SlotHasher;
use tollgate_core::route_policy::RoutePolicies;
use tollgate_core::ConfigError;

use crate::counters::{self, ProcessCounters};
use crate::host::StreamHost;
use crate::jwt::{self, JwtFilter, JwtStream};
use crate::metrics::{Counter, Definer};

/// One filter config: its policies and metrics. Shared by every stream, on
/// every worker (created once, on the main thread).
pub enum FilterConfig {
    JwtAuth(Box<JwtFilter>),
    HeaderMod {
        policies: RoutePolicies<HeaderPolicy>,
        requests_modified: Counter,
        responses_modified: Counter,
    },
    RateLimit {
        policies: RoutePolicies<RateLimitPolicy>,
        /// Where buckets go in their rule's table; one key for the process.
        hasher: SlotHasher,
        metrics: Vec<(Metric, Counter)>,
    },
    Canary {
        policies: RoutePolicies<CanaryPolicy>,
        selected: Counter,
        unselected: Counter,
    },
}

/// A route's own policy.
pub enum RoutePolicy {
    JwtAuth(Arc<JwtPolicy>),
    HeaderMod(Arc<HeaderPolicy>),
    RateLimit {
        policy: Arc<RateLimitPolicy>,
        /// The counters' scope when Envoy names no route: this config's own.
        unnamed_scope: String,
    },
    Canary(Arc<CanaryPolicy>),
}

/// Numbers the per-route rate limit configs of routes without a name.
static UNNAMED_ROUTES: AtomicU64 = AtomicU64::new(0);

fn parse<R, P>(
    bytes: &[u8],
    compile: impl Fn(R) -> Result<P, ConfigError>,
) -> Result<RoutePolicies<P>, ConfigError>
where
    R: serde::de::DeserializeOwned,
{
    parse_json(bytes).and_then(|doc: Value| RoutePolicies::parse(doc, compile))
}

impl FilterConfig {
    pub fn new(
        kind: Kind,
        config: &[u8],
        metrics: &mut Definer,
    ) -> Result<FilterConfig, ConfigError> {
        Ok(match kind {
            Kind::Jwt => FilterConfig::JwtAuth(Box::new(JwtFilter::new(
                parse(config, jwt::compile)?,
                metrics,
            ))),
            Kind::Headers => FilterConfig::HeaderMod {
                policies: parse(config, HeaderPolicy::compile)?,
                requests_modified: metrics.counter("tollgate_header_mod_requests_modified", None),
                responses_modified: metrics.counter("tollgate_header_mod_responses_modified", None),
            },
            Kind::RateLimit => FilterConfig::RateLimit {
                policies: parse(config, RateLimitPolicy::compile)?,
                // Without the key local buckets could only share one overflow
                // bucket per rule: refuse loudly instead.
                hasher: counters::slot_hasher().map_err(|e| {
                    ConfigError::new("", format!("no slot hash key for the local counters: {e}"))
                })?,
                metrics: Metric::RATELIMIT
                    .iter()
                    .map(|&m| (m, metrics.counter(m.name(), None)))
                    .collect(),
            },
            Kind::Canary => FilterConfig::Canary {
                policies: parse(config, CanaryPolicy::compile)?,
                selected: metrics.counter("tollgate_canary_selected", Some("backend")),
                unselected: metrics.counter("tollgate_canary_unselected", None),
            },
        })
    }

    pub fn kind(&self) -> Kind {
        match self {
            FilterConfig::JwtAuth(_) => Kind::Jwt,
            FilterConfig::HeaderMod { .. } => Kind::Headers,
            FilterConfig::RateLimit { .. } => Kind::RateLimit,
            FilterConfig::Canary { .. } => Kind::Canary,
        }
    }

    /// The counters the filter's flow counts through its host.
    pub fn flow_metrics(&self) -> &[(Metric, Counter)] {
        match self {
            FilterConfig::RateLimit { metrics, .. } => metrics,
            FilterConfig::JwtAuth(filter) => &filter.metrics,
            _ => &[],
        }
    }
}

impl RoutePolicy {
    /// A per-route config: one policy of the filter's kind. The envelope is
    /// accepted too (its default, or its only policy, is the route's).
    pub fn new(kind: Kind, config: &[u8]) -> Result<RoutePolicy, ConfigError> {
        fn one<P>(policies: RoutePolicies<P>) -> Result<Arc<P>, ConfigError> {
            policies.for_route(None).cloned().ok_or_else(|| {
                ConfigError::new(
                    "",
                    "a per-route config holds one policy, not routes by name",
                )
            })
        }
        Ok(match kind {
            Kind::Jwt => RoutePolicy::JwtAuth(one(parse(config, jwt::compile)?)?),
            Kind::Headers => RoutePolicy::HeaderMod(one(parse(config, HeaderPolicy::compile)?)?),
            Kind::RateLimit => RoutePolicy::RateLimit {
                policy: one(parse(config, RateLimitPolicy::compile)?)?,
                unnamed_scope: format!(
                    "per-route-config-{}",
                    UNNAMED_ROUTES.fetch_add(1, Ordering::Relaxed)
                ),
            },
            Kind::Canary => RoutePolicy::Canary(one(parse(config, CanaryPolicy::compile)?)?),
        })
    }
}

/// One stream's state: its filter's flow.
pub enum Stream {
    JwtAuth(JwtStream),
    HeaderMod(headers_flow::Stream),
    RateLimit {
        flow: ratelimit_flow::Stream,
        /// The rate limit service's answer as it arrives, by callout id.
        answer: Option<Box<(u64, grpc::Answer)>>,
    },
    Canary(canary_flow::Stream),
}

thread_local! {
    /// This worker's canary draws, seeded from the OS once per thread.
    static DRAWS: Cell<Option<Draws>> = const { Cell::new(None) };
}

/// Runs `f` with this worker's canary draws (the filter's and the cluster
/// specifier's: one sequence per worker).
pub fn with_draws<T>(f: impl FnOnce(&mut Draws) -> T) -> T {
    let mut draws = DRAWS
        .take()
        .unwrap_or_else(|| Draws::new(RandomState::new().hash_one(0u8)));
    let value = f(&mut draws);
    DRAWS.set(Some(draws));
    value
}

impl Stream {
    pub fn new(kind: Kind) -> Stream {
        match kind {
            Kind::Jwt => Stream::JwtAuth(JwtStream::default()),
            Kind::Headers => Stream::HeaderMod(headers_flow::Stream::default()),
            Kind::RateLimit => Stream::RateLimit {
                flow: ratelimit_flow::Stream::default(),
                answer: None,
            },
            Kind::Canary => Stream::Canary(canary_flow::Stream::default()),
        }
    }

    /// Whether the request goes on now (false: it waits, or was answered).
    pub fn on_request_headers(
        &mut self,
        config: &FilterConfig,
        own: Option<&RoutePolicy>,
        host: &mut StreamHost,
    ) -> bool {
        match (self, config) {
            (Stream::JwtAuth(stream), FilterConfig::JwtAuth(filter)) => {
                let own = match own {
                    Some(RoutePolicy::JwtAuth(p)) => Some(p),
                    _ => None,
                };
                let Some(policy) = RoutePolicies::for_stream(own, Some(&filter.policies), host)
                else {
                    return true;
                };
                return stream.on_request_headers(filter, policy, host);
            }
            (
                Stream::RateLimit { flow, answer },
                FilterConfig::RateLimit {
                    policies, hasher, ..
                },
            ) => {
                let named = match own {
                    Some(RoutePolicy::RateLimit {
                        policy,
                        unnamed_scope,
                    }) => Some((
                        route_name(host).unwrap_or_else(|| unnamed_scope.clone()),
                        policy,
                    )),
                    _ => policies
                        .select_scoped(|| route_name(host))
                        .map(|(scope, p)| (scope.to_owned(), p)),
                };
                let Some((scope, policy)) = named else {
                    return true;
                };
                let mut local = ProcessCounters { hasher };
                let step = flow.on_request_headers(&scope, policy, &mut local, host);
                *answer = None;
                return step == Step::Continue;
            }
            (
                Stream::HeaderMod(flow),
                FilterConfig::HeaderMod {
                    policies,
                    requests_modified,
                    ..
                },
            ) => {
                let own = match own {
                    Some(RoutePolicy::HeaderMod(p)) => Some(p),
                    _ => None,
                };
                let policy = RoutePolicies::for_stream(own, Some(policies), host);
                if flow.on_request_headers(policy, host) {
                    host.increment(requests_modified, None);
                }
            }
            (
                Stream::Canary(flow),
                FilterConfig::Canary {
                    policies,
                    selected,
                    unselected,
                },
            ) => {
                let own = match own {
                    Some(RoutePolicy::Canary(p)) => Some(p),
                    _ => None,
                };
                let Some(policy) = RoutePolicies::for_stream(own, Some(policies), host) else {
                    return true;
                };
                let chosen = with_draws(|draws| flow.on_request_headers(Some(policy), draws, host));
                match chosen {
                    Some(Chosen::Backend(i)) => {
                        host.increment(selected, Some(&policy.backend_names()[i]));
                    }
                    Some(Chosen::Nothing) => host.increment(unselected, None),
                    None => {}
                }
            }
            _ => {}
        }
        true
    }

    /// Whether the body and trailers must wait (the rate limit service is deciding).
    pub fn holds_request(&self) -> bool {
        match self {
            Stream::RateLimit { flow, .. } => flow.holds_request(),
            Stream::JwtAuth(stream) => stream.holds_request(),
            _ => false,
        }
    }

    /// A scheduler event for this stream (a JWT request woken by its keys).
    pub fn on_scheduled(&mut self, config: &FilterConfig, event: u64, host: &mut StreamHost) {
        if let (Stream::JwtAuth(stream), FilterConfig::JwtAuth(filter)) = (self, config) {
            stream.on_scheduled(filter, event, host);
        }
    }

    /// The stream is going: it leaves whatever waits it is registered for.
    pub fn leave(&mut self, config: &FilterConfig) {
        if let (Stream::JwtAuth(stream), FilterConfig::JwtAuth(filter)) = (self, config) {
            stream.leave(filter);
        }
    }

    /// Part of the rate limit service's answer to callout `id`: the response
    /// headers or trailers, data, or (`end`) the end of the callout, when the
    /// flow reads the whole answer. `failed` is a reset callout.
    pub fn on_callout(&mut self, id: u64, part: CalloutPart, host: &mut StreamHost) {
        let Stream::RateLimit { flow, answer } = self else {
            return;
        };
        let collected = &mut answer
            .get_or_insert_with(|| Box::new((id, grpc::Answer::default())))
            .1;
        match part {
            CalloutPart::Headers(h) => collected.headers(&h),
            CalloutPart::Data(d) => collected.data(&d),
            CalloutPart::Complete => {
                let Some(done) = answer.take() else {
                    return;
                };
                let (call, collected) = *done;
                flow.on_service_answer(call, collected.finish(), host);
            }
            CalloutPart::Reset(reason) => {
                answer.take();
                flow.on_service_answer(id, Err(format!("the callout was reset ({reason})")), host);
            }
        }
    }

    pub fn on_response_headers(&mut self, config: &FilterConfig, host: &mut StreamHost) {
        match (self, config) {
            (
                Stream::HeaderMod(flow),
                FilterConfig::HeaderMod {
                    responses_modified, ..
                },
            ) => {
                let modified = flow.on_response_headers(host);
                if modified {
                    host.increment(responses_modified, None);
                }
            }
            (Stream::RateLimit { flow, .. }, _) => flow.on_response_headers(host),
            (Stream::Canary(flow), _) => flow.on_response_headers(host),
            _ => {}
        }
    }
}

/// What a `http_stream_*` hook brings.
pub enum CalloutPart {
    Headers(Vec<(String, String)>),
    Data(Vec<u8>),
    Complete,
    /// Envoy's reset reason number.
    Reset(u32),
}
