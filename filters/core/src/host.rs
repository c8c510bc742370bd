//! What a filter needs of the proxy it runs in, for one stream: one trait,
//! implemented by each runtime's adapter (proxy-wasm, the Envoy dynamic
//! module) and by the fake host the flows are tested against. Every decision
//! lives in the flows ([`crate::headers::flow`], [`crate::canary::flow`]); an
//! adapter only maps these calls onto its ABI, logging what the host refuses
//! (an edit the host refuses is not a reason to fail the request).
//!
//! The core's older, narrower traits ([`HeaderEditor`], [`RequestSource`],
//! [`RequestAttrs`]) are served from a `Host` here, so the compiled policies
//! keep their small, separately tested interfaces.

use std::cell::{OnceCell, RefCell};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::headers::{HeaderEditor, RequestSource};
use crate::request_parts::RequestAttrs;

/// Which of the stream's header maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Request,
    Response,
}

/// The stream attributes the filters read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribute {
    /// The matched route's name (`xds.route_name`), for the per-route envelope.
    RouteName,
    /// The downstream peer, `ip:port` (`source.address`).
    SourceAddress,
    /// Envoy's request ID (`request.id`, the `x-request-id` header).
    RequestId,
}

/// A reply the filter sends instead of forwarding the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply<'a> {
    pub status: u32,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a str,
    /// The gRPC status a gRPC client sees (a trailers-only response).
    pub grpc_status: u32,
}

/// A unary gRPC call to a cluster, answered later through the flow's
/// `on_*_answer` with the call's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcCall<'a> {
    pub cluster: &'a str,
    /// Fully qualified, e.g. `envoy.service.ratelimit.v3.RateLimitService`.
    pub service: &'a str,
    pub method: &'a str,
    /// The serialized request message (unframed).
    pub message: &'a [u8],
    pub timeout: Duration,
}

/// A counter the flows count, named once for both runtimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    RateLimitAllowed,
    RateLimitLimited,
    /// Over a `shadowMode` rule's limit: counted, not refused.
    RateLimitShadowLimited,
    /// Counted in its rule's overflow bucket: every slot its bucket may use
    /// held another live bucket.
    RateLimitTableFull,
    /// The rate limit service did not answer in time, failed, or answered
    /// garbage; `failureMode` decided.
    RateLimitServiceFailures,
    JwtAllowed,
    /// Let through without a valid token (`optional`, `failOpen`).
    JwtPassedWithoutToken,
    JwtDeniedMissing,
    JwtDeniedMalformed,
    JwtDeniedBadSignature,
    JwtDeniedExpired,
    JwtDeniedBadIssuer,
    JwtDeniedBadAudience,
    JwtDeniedKeysUnavailable,
    JwksFetchSuccess,
    JwksFetchFailure,
}

impl Metric {
    /// The rate limit filter's counters.
    pub const RATELIMIT: [Metric; 5] = [
        Metric::RateLimitAllowed,
        Metric::RateLimitLimited,
        Metric::RateLimitShadowLimited,
        Metric::RateLimitTableFull,
        Metric::RateLimitServiceFailures,
    ];

    /// The JWT filter's counters.
    pub const JWT: [Metric; 11] = [
        Metric::JwtAllowed,
        Metric::JwtPassedWithoutToken,
        Metric::JwtDeniedMissing,
        Metric::JwtDeniedMalformed,
        Metric::JwtDeniedBadSignature,
        Metric::JwtDeniedExpired,
        Metric::JwtDeniedBadIssuer,
        Metric::JwtDeniedBadAudience,
        Metric::JwtDeniedKeysUnavailable,
        Metric::JwksFetchSuccess,
        Metric::JwksFetchFailure,
    ];

    /// Its name in Envoy's stats (each runtime adds its own prefix).
    pub fn name(self) -> &'static str {
        match self {
            Metric::RateLimitAllowed => "tollgate_ratelimit_allowed",
            Metric::RateLimitLimited => "tollgate_ratelimit_limited",
            Metric::RateLimitShadowLimited => "tollgate_ratelimit_shadow_limited",
            Metric::RateLimitTableFull => "tollgate_ratelimit_bucket_table_full",
            Metric::RateLimitServiceFailures => "tollgate_ratelimit_service_failures",
            Metric::JwtAllowed => "tollgate_jwt_auth_allowed",
            Metric::JwtPassedWithoutToken => "tollgate_jwt_auth_passed_without_token",
            Metric::JwtDeniedMissing => "tollgate_jwt_auth_denied_missing",
            Metric::JwtDeniedMalformed => "tollgate_jwt_auth_denied_malformed",
            Metric::JwtDeniedBadSignature => "tollgate_jwt_auth_denied_bad_signature",
            Metric::JwtDeniedExpired => "tollgate_jwt_auth_denied_expired",
            Metric::JwtDeniedBadIssuer => "tollgate_jwt_auth_denied_bad_issuer",
            Metric::JwtDeniedBadAudience => "tollgate_jwt_auth_denied_bad_audience",
            Metric::JwtDeniedKeysUnavailable => "tollgate_jwt_auth_denied_keys_unavailable",
            Metric::JwksFetchSuccess => "tollgate_jwt_auth_jwks_fetch_success",
            Metric::JwksFetchFailure => "tollgate_jwt_auth_jwks_fetch_failure",
        }
    }
}

pub trait Host {
    /// Every header of one map, in order; names lower-case, pseudo-headers
    /// (`:path`, `:method`, `:authority`) included for requests.
    fn headers(&mut self, dir: Direction) -> Vec<(String, String)>;
    /// Every value of header `name` (lower-case), in order.
    fn header_values(&mut self, dir: Direction, name: &str) -> Vec<String>;
    /// Replaces every value of `name` with `value` (creating it).
    fn set_header(&mut self, dir: Direction, name: &str, value: &str);
    /// Appends a value, keeping the existing ones.
    fn add_header(&mut self, dir: Direction, name: &str, value: &str);
    fn remove_header(&mut self, dir: Direction, name: &str);
    /// An attribute of the stream; None when the host has none.
    fn attribute(&mut self, attribute: Attribute) -> Option<String>;
    /// Makes Envoy select the route again after this filter's edits: only
    /// where re-routing is the point (canary, JWT `recomputeRoute`).
    fn clear_route_cache(&mut self);
    /// Answers the request locally; the stream goes no further.
    fn send_response(&mut self, reply: &Reply);
    /// Resumes a request a flow paused (waiting for a call's answer).
    fn continue_request(&mut self);
    /// Starts a gRPC call; its id, or why it could not start.
    fn grpc_call(&mut self, call: &GrpcCall) -> Result<u64, String>;
    /// Wall-clock seconds since the Unix epoch; None when the host has no clock.
    fn now_seconds(&mut self) -> Option<u64>;
    /// Adds one to a counter.
    fn count(&mut self, metric: Metric);
}

/// The first value of a request header.
pub fn request_header(host: &mut dyn Host, name: &str) -> Option<String> {
    host.header_values(Direction::Request, name)
        .into_iter()
        .next()
}

/// The route name for the per-route envelope; an empty name is no name.
pub fn route_name(host: &mut dyn Host) -> Option<String> {
    host.attribute(Attribute::RouteName)
        .filter(|name| !name.is_empty())
}

/// One header map of the stream, for [`crate::headers::Mods::apply`].
pub struct Headers<'h> {
    pub host: &'h mut dyn Host,
    pub dir: Direction,
}

impl HeaderEditor for Headers<'_> {
    fn names(&mut self) -> Vec<String> {
        self.host
            .headers(self.dir)
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }

    fn remove(&mut self, name: &str) {
        self.host.remove_header(self.dir, name);
    }

    fn set(&mut self, name: &str, value: &str) {
        self.host.set_header(self.dir, name, value);
    }

    fn add(&mut self, name: &str, value: &str) {
        self.host.add_header(self.dir, name, value);
    }
}

/// The request, for header value templates.
pub struct Request<'h>(pub &'h mut dyn Host);

impl RequestSource for Request<'_> {
    fn header(&mut self, name: &str) -> Option<String> {
        request_header(self.0, name)
    }

    fn source_address(&mut self) -> Option<String> {
        self.0.attribute(Attribute::SourceAddress)
    }

    fn request_id(&mut self) -> Option<String> {
        self.0.attribute(Attribute::RequestId)
    }
}

/// The request as the rate limit and canary rules see it: the headers read
/// with one host call and the client address with another, each only when a
/// rule asks (a rule without selectors needs neither).
pub struct Attrs<'h> {
    host: RefCell<&'h mut dyn Host>,
    headers: OnceCell<Vec<(String, String)>>,
    source: OnceCell<Option<IpAddr>>,
}

impl<'h> Attrs<'h> {
    pub fn new(host: &'h mut dyn Host) -> Self {
        Attrs {
            host: RefCell::new(host),
            headers: OnceCell::new(),
            source: OnceCell::new(),
        }
    }

    fn all(&self) -> &[(String, String)] {
        self.headers.get_or_init(|| {
            self.host
                .try_borrow_mut()
                .map(|mut h| h.headers(Direction::Request))
                .unwrap_or_default()
        })
    }
}

impl RequestAttrs for Attrs<'_> {
    fn header_values(&self, name: &str) -> Vec<&str> {
        self.all()
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The first value without collecting them all (most rules read one).
    fn header(&self, name: &str) -> Option<&str> {
        self.all()
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn method(&self) -> &str {
        self.header(":method").unwrap_or_default()
    }

    fn path(&self) -> &str {
        self.header(":path").unwrap_or("/")
    }

    /// Envoy's `source.address` (`ip:port`): the downstream peer, or the
    /// address Envoy derived from `x-forwarded-for` when told to trust it.
    fn source_ip(&self) -> Option<IpAddr> {
        *self.source.get_or_init(|| {
            self.host
                .try_borrow_mut()
                .ok()
                .and_then(|mut h| h.attribute(Attribute::SourceAddress))
                .and_then(|a| parse_ip(&a))
        })
    }
}

/// `ip:port`, `[v6]:port` or a bare address.
fn parse_ip(address: &str) -> Option<IpAddr> {
    address
        .parse::<SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| address.parse::<IpAddr>())
        .ok()
}

#[cfg(test)]
pub mod fake {
    //! A host that keeps headers in memory and records what a flow asked of
    //! it: what the flows are tested against.

    use std::collections::HashMap;

    use super::{Attribute, Direction, GrpcCall, Host, Metric, Reply};

    /// A local reply the flow sent.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Sent {
        pub status: u32,
        pub headers: Vec<(String, String)>,
        pub body: String,
        pub grpc_status: u32,
    }

    /// A gRPC call the flow started.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Called {
        pub cluster: String,
        pub path: String,
        pub message: Vec<u8>,
        pub timeout_ms: u128,
    }

    #[derive(Debug, Default)]
    pub struct FakeHost {
        pub request: Vec<(String, String)>,
        pub response: Vec<(String, String)>,
        pub attributes: HashMap<&'static str, String>,
        pub route_cache_cleared: usize,
        /// Host calls made, for flows that promise to make few.
        pub header_reads: usize,
        pub replies: Vec<Sent>,
        pub continued: usize,
        pub calls: Vec<Called>,
        /// Why the next `grpc_call` fails, when set.
        pub refuse_calls: Option<String>,
        /// The clock; None is a host without one.
        pub now: Option<u64>,
        pub counted: Vec<Metric>,
    }

    impl FakeHost {
        pub fn request(headers: &[(&str, &str)]) -> Self {
            FakeHost {
                request: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..FakeHost::default()
            }
        }

        pub fn with(mut self, attribute: Attribute, value: &str) -> Self {
            self.attributes.insert(key(attribute), value.to_owned());
            self
        }

        fn map(&mut self, dir: Direction) -> &mut Vec<(String, String)> {
            match dir {
                Direction::Request => &mut self.request,
                Direction::Response => &mut self.response,
            }
        }

        /// Every value of `name` in one map, joined as Envoy would show them.
        pub fn get(&self, dir: Direction, name: &str) -> Vec<&str> {
            let map = match dir {
                Direction::Request => &self.request,
                Direction::Response => &self.response,
            };
            map.iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .collect()
        }
    }

    fn key(attribute: Attribute) -> &'static str {
        match attribute {
            Attribute::RouteName => "route",
            Attribute::SourceAddress => "source",
            Attribute::RequestId => "id",
        }
    }

    impl Host for FakeHost {
        fn headers(&mut self, dir: Direction) -> Vec<(String, String)> {
            self.header_reads += 1;
            self.map(dir).clone()
        }

        fn header_values(&mut self, dir: Direction, name: &str) -> Vec<String> {
            self.header_reads += 1;
            self.get(dir, name).into_iter().map(str::to_owned).collect()
        }

        fn set_header(&mut self, dir: Direction, name: &str, value: &str) {
            self.remove_header(dir, name);
            self.map(dir).push((name.to_owned(), value.to_owned()));
        }

        fn add_header(&mut self, dir: Direction, name: &str, value: &str) {
            self.map(dir).push((name.to_owned(), value.to_owned()));
        }

        fn remove_header(&mut self, dir: Direction, name: &str) {
            self.map(dir).retain(|(k, _)| k != name);
        }

        fn attribute(&mut self, attribute: Attribute) -> Option<String> {
            self.attributes.get(key(attribute)).cloned()
        }

        fn clear_route_cache(&mut self) {
            self.route_cache_cleared += 1;
        }

        fn send_response(&mut self, reply: &Reply) {
            self.replies.push(Sent {
                status: reply.status,
                headers: reply
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                body: reply.body.to_owned(),
                grpc_status: reply.grpc_status,
            });
        }

        fn continue_request(&mut self) {
            self.continued += 1;
        }

        fn grpc_call(&mut self, call: &GrpcCall) -> Result<u64, String> {
            if let Some(why) = self.refuse_calls.clone() {
                return Err(why);
            }
            self.calls.push(Called {
                cluster: call.cluster.to_owned(),
                path: format!("/{}/{}", call.service, call.method),
                message: call.message.to_vec(),
                timeout_ms: call.timeout.as_millis(),
            });
            Ok(self.calls.len() as u64)
        }

        fn now_seconds(&mut self) -> Option<u64> {
            self.now
        }

        fn count(&mut self, metric: Metric) {
            self.counted.push(metric);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeHost;
    use super::*;

    #[test]
    fn attrs_read_the_headers_once_and_only_when_a_rule_asks() {
        let mut host = FakeHost::request(&[(":method", "GET"), ("x", "1"), ("x", "2")]);
        {
            let attrs = Attrs::new(&mut host);
            assert_eq!(attrs.header_values("x"), ["1", "2"]);
            assert_eq!(attrs.method(), "GET");
            assert_eq!(attrs.path(), "/");
        }
        assert_eq!(host.header_reads, 1);
        let untouched = {
            let mut host = FakeHost::default();
            drop(Attrs::new(&mut host));
            host.header_reads
        };
        assert_eq!(untouched, 0);
    }

    #[test]
    fn the_source_address_is_read_with_or_without_a_port() {
        for (address, ip) in [
            ("10.0.0.1:5555", "10.0.0.1"),
            ("[::1]:80", "::1"),
            ("192.168.1.2", "192.168.1.2"),
        ] {
            let mut host = FakeHost::default().with(Attribute::SourceAddress, address);
            let attrs = Attrs::new(&mut host);
            assert_eq!(attrs.source_ip(), ip.parse().ok(), "{address}");
        }
        let mut host = FakeHost::default().with(Attribute::SourceAddress, "pipe");
        assert_eq!(Attrs::new(&mut host).source_ip(), None);
    }

    #[test]
    fn an_empty_route_name_is_no_route_name() {
        let mut host = FakeHost::default().with(Attribute::RouteName, "");
        assert_eq!(route_name(&mut host), None);
        let mut host = FakeHost::default().with(Attribute::RouteName, "r");
        assert_eq!(route_name(&mut host).as_deref(), Some("r"));
    }
}
