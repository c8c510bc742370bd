//! `ratelimit.wasm`: Envoy Gateway's `BackendTrafficPolicy.rateLimit`. Which
//! rules and buckets a request counts against is `tollgate_core::ratelimit`;
//! this crate counts in shared data (one budget for all Envoy workers) and
//! answers 429.
//!
//! This build does local mode; a config with `global` rules is refused at
//! configure time until the gRPC path to the rate limit service lands.

mod counters;
mod request;

use std::sync::Arc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType};
use tollgate_core::ratelimit::config::RateLimitConfig;
use tollgate_core::ratelimit::policy::RateLimitPolicy;
use tollgate_core::ratelimit::window::{self, Quota};
use tollgate_core::route_policy::RoutePolicies;
use tollgate_core::ConfigError;
use tollgate_host::metrics::Counter;
use tollgate_host::{abi, config, request as host_request};

use request::Attrs;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| Box::new(Root::new()));
}}

/// gRPC RESOURCE_EXHAUSTED, for gRPC requests over the limit.
const GRPC_RESOURCE_EXHAUSTED: u32 = 8;

#[derive(Clone)]
struct Metrics {
    allowed: Counter,
    limited: Counter,
    /// Over a `shadowMode` rule's limit: counted, not refused.
    shadow_limited: Counter,
    /// Not counted: every slot its bucket may use holds another live bucket.
    table_full: Counter,
}

impl Metrics {
    fn new() -> Self {
        Metrics {
            allowed: Counter::define("tollgate_ratelimit_allowed"),
            limited: Counter::define("tollgate_ratelimit_limited"),
            shadow_limited: Counter::define("tollgate_ratelimit_shadow_limited"),
            table_full: Counter::define("tollgate_ratelimit_bucket_table_full"),
        }
    }

    fn flush(&self) {
        self.allowed.flush();
        self.limited.flush();
        self.shadow_limited.flush();
        self.table_full.flush();
    }
}

struct Root {
    policies: Option<Arc<RoutePolicies<RateLimitPolicy>>>,
    metrics: Metrics,
}

impl Root {
    fn new() -> Self {
        Root {
            policies: None,
            metrics: Metrics::new(),
        }
    }
}

fn compile(config: RateLimitConfig) -> Result<RateLimitPolicy, ConfigError> {
    let policy = RateLimitPolicy::compile(config)?;
    if !policy.global.is_empty() {
        return Err(ConfigError::new(
            "global",
            "global rules are not supported by this build yet; use local rules",
        ));
    }
    Ok(policy)
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        if !config::reload(&mut self.policies, "ratelimit", compile) {
            return false;
        }
        if let Some(policies) = &self.policies {
            counters::create(policies);
        }
        true
    }

    fn on_tick(&mut self) {
        self.metrics.flush();
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Never None: the SDK panics (killing the VM) when a root context refuses a stream.
        Some(Box::new(Stream {
            policies: self.policies.clone(),
            metrics: self.metrics.clone(),
            response_headers: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream {
    policies: Option<Arc<RoutePolicies<RateLimitPolicy>>>,
    metrics: Metrics,
    /// `x-ratelimit-*` for the response of an allowed request.
    response_headers: Option<[(&'static str, String); 3]>,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let Some((scope, policy)) = self
            .policies
            .as_ref()
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
        let mut quotas = Vec::new();
        let mut over = false;
        for rule in &policy.local {
            let Some(bucket) = rule.bucket(&req) else {
                continue;
            };
            let start = window::window_start(now, &rule.limit);
            let Some(count) = counters::count(scope, &rule.name, &bucket, start) else {
                self.metrics.table_full.inc();
                continue;
            };
            let exceeded = count > rule.limit.requests;
            if rule.shadow {
                if exceeded {
                    self.metrics.shadow_limited.inc();
                }
                continue;
            }
            over |= exceeded;
            quotas.push(Quota {
                limit: rule.limit,
                remaining: rule.limit.requests.saturating_sub(count),
                reset: window::reset_after(now, &rule.limit),
            });
        }
        let headers = window::headers(&quotas);
        if !over {
            self.metrics.allowed.inc();
            self.response_headers = headers;
            return Action::Continue;
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
        Action::Pause
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
