//! The filters this module holds, by `filter_name`: each one's compiled
//! config (exactly the JSON its `.wasm` takes, the per-route envelope
//! included), its per-route config (one policy, `DynamicModuleFilterPerRoute`),
//! its metrics, and its stream, which is the core's flow for that filter.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;

use serde_json::Value;
use tollgate_core::canary::flow::{self as canary_flow, Chosen};
use tollgate_core::canary::policy::{CanaryPolicy, Draws};
use tollgate_core::error::parse_json;
use tollgate_core::headers::{flow as headers_flow, HeaderPolicy};
use tollgate_core::route_policy::RoutePolicies;
use tollgate_core::ConfigError;

use crate::host::StreamHost;
use crate::metrics::{Counter, Definer};

/// A filter of this module, as `filter_name` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    HeaderMod,
    Canary,
}

impl Kind {
    pub fn from_name(name: &str) -> Option<Kind> {
        match name {
            "header_mod" => Some(Kind::HeaderMod),
            "canary" => Some(Kind::Canary),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::HeaderMod => "header_mod",
            Kind::Canary => "canary",
        }
    }
}

/// What `filter_name` may be, for the refusal of any other name.
pub const KNOWN: &str = "header_mod, canary (jwt_auth and ratelimit are not in this build yet)";

/// One filter config: its policies and metrics. Shared by every stream, on
/// every worker (created once, on the main thread).
pub enum FilterConfig {
    HeaderMod {
        policies: RoutePolicies<HeaderPolicy>,
        requests_modified: Counter,
        responses_modified: Counter,
    },
    Canary {
        policies: RoutePolicies<CanaryPolicy>,
        selected: Counter,
        unselected: Counter,
    },
}

/// A route's own policy.
pub enum RoutePolicy {
    HeaderMod(Arc<HeaderPolicy>),
    Canary(Arc<CanaryPolicy>),
}

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
            Kind::HeaderMod => FilterConfig::HeaderMod {
                policies: parse(config, HeaderPolicy::compile)?,
                requests_modified: metrics.counter("tollgate_header_mod_requests_modified", None),
                responses_modified: metrics.counter("tollgate_header_mod_responses_modified", None),
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
            FilterConfig::HeaderMod { .. } => Kind::HeaderMod,
            FilterConfig::Canary { .. } => Kind::Canary,
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
            Kind::HeaderMod => RoutePolicy::HeaderMod(one(parse(config, HeaderPolicy::compile)?)?),
            Kind::Canary => RoutePolicy::Canary(one(parse(config, CanaryPolicy::compile)?)?),
        })
    }
}

/// One stream's state: its filter's flow.
pub enum Stream {
    HeaderMod(headers_flow::Stream),
    Canary(canary_flow::Stream),
}

thread_local! {
    /// This worker's canary draws, seeded from the OS once per thread.
    static DRAWS: Cell<Option<Draws>> = const { Cell::new(None) };
}

impl Stream {
    pub fn new(kind: Kind) -> Stream {
        match kind {
            Kind::HeaderMod => Stream::HeaderMod(headers_flow::Stream::default()),
            Kind::Canary => Stream::Canary(canary_flow::Stream::default()),
        }
    }

    pub fn on_request_headers(
        &mut self,
        config: &FilterConfig,
        own: Option<&RoutePolicy>,
        host: &mut StreamHost,
    ) {
        match (self, config) {
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
                    requests_modified.increment(host, None);
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
                    return;
                };
                let mut draws = DRAWS
                    .take()
                    .unwrap_or_else(|| Draws::new(RandomState::new().hash_one(0u8)));
                let chosen = flow.on_request_headers(Some(policy), &mut draws, host);
                DRAWS.set(Some(draws));
                match chosen {
                    Some(Chosen::Backend(i)) => {
                        selected.increment(host, Some(&policy.backend_names()[i]));
                    }
                    Some(Chosen::Nothing) => unselected.increment(host, None),
                    None => {}
                }
            }
            _ => {}
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
                    responses_modified.increment(host, None);
                }
            }
            (Stream::Canary(flow), _) => flow.on_response_headers(host),
            _ => {}
        }
    }
}
