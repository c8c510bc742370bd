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

    use super::{Attribute, Direction, Host};

    #[derive(Debug, Default)]
    pub struct FakeHost {
        pub request: Vec<(String, String)>,
        pub response: Vec<(String, String)>,
        pub attributes: HashMap<&'static str, String>,
        pub route_cache_cleared: usize,
        /// Host calls made, for flows that promise to make few.
        pub header_reads: usize,
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
