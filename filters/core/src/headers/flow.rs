//! The header modification filter, one stream at a time, for every runtime:
//! the route's request edits are applied when the request headers arrive, and
//! its response values are rendered then too (templates read the request as it
//! arrived), to be applied when the response headers come.

use std::sync::Arc;

use super::policy::{HeaderPolicy, Rendered};
use crate::host::{Direction, Headers, Host, Request};

/// One stream's state: the response edits waiting for the response.
#[derive(Debug, Default)]
pub struct Stream {
    response: Option<(Arc<HeaderPolicy>, Rendered)>,
}

impl Stream {
    /// Applies `policy`'s request edits; whether there were any (for the
    /// filter's `requests_modified` counter).
    pub fn on_request_headers(
        &mut self,
        policy: Option<&Arc<HeaderPolicy>>,
        host: &mut dyn Host,
    ) -> bool {
        let Some(policy) = policy else {
            return false;
        };
        let mut edited = false;
        if let Some(mods) = &policy.request {
            let rendered = mods.render(&mut Request(host));
            mods.apply(
                &rendered,
                &mut Headers {
                    host,
                    dir: Direction::Request,
                },
            );
            edited = true;
        }
        if let Some(mods) = &policy.response {
            self.response = Some((Arc::clone(policy), mods.render(&mut Request(host))));
        }
        edited
    }

    /// Applies the response edits decided with the request; whether there
    /// were any.
    pub fn on_response_headers(&mut self, host: &mut dyn Host) -> bool {
        let Some((policy, rendered)) = self.response.take() else {
            return false;
        };
        let Some(mods) = &policy.response else {
            return false;
        };
        mods.apply(
            &rendered,
            &mut Headers {
                host,
                dir: Direction::Response,
            },
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::headers::HeaderModConfig;
    use crate::host::fake::FakeHost;
    use crate::host::Attribute;

    fn policy(config: serde_json::Value) -> Arc<HeaderPolicy> {
        let config: HeaderModConfig = serde_json::from_value(config).unwrap();
        Arc::new(HeaderPolicy::compile(config).unwrap())
    }

    #[test]
    fn request_edits_apply_at_once_and_response_edits_when_the_response_comes() {
        let p = policy(json!({
            "request": {"set": [{"name": "x-env", "value": "prod"}], "remove": ["x-secret"]},
            "response": {"add": [{"name": "x-path", "value": "%{request.path} from %{source.address}"}]}
        }));
        let mut host = FakeHost::request(&[(":path", "/a?b"), ("x-secret", "s"), ("x-env", "dev")])
            .with(Attribute::SourceAddress, "10.0.0.1:5000");
        let mut stream = Stream::default();
        assert!(stream.on_request_headers(Some(&p), &mut host));
        assert_eq!(host.get(Direction::Request, "x-env"), ["prod"]);
        assert!(host.get(Direction::Request, "x-secret").is_empty());
        // The request changes later; the response value was rendered from the first.
        host.set_header(Direction::Request, ":path", "/changed");
        host.response = vec![("x-path".into(), "upstream".into())];
        assert!(stream.on_response_headers(&mut host));
        assert_eq!(
            host.get(Direction::Response, "x-path"),
            ["upstream", "/a?b from 10.0.0.1:5000"]
        );
        assert!(!stream.on_response_headers(&mut host), "once");
    }

    #[test]
    fn without_a_policy_nothing_is_read_or_edited() {
        let mut host = FakeHost::request(&[("x", "1")]);
        let mut stream = Stream::default();
        assert!(!stream.on_request_headers(None, &mut host));
        assert!(!stream.on_response_headers(&mut host));
        assert_eq!(host.header_reads, 0);
        assert_eq!(host.route_cache_cleared, 0);
    }

    #[test]
    fn header_edits_never_ask_envoy_to_route_again() {
        let p = policy(json!({"request": {"set": [{"name": "env", "value": "canary"}]}}));
        let mut host = FakeHost::request(&[("env", "prod")]);
        Stream::default().on_request_headers(Some(&p), &mut host);
        assert_eq!(host.route_cache_cleared, 0, "route stability");
    }
}
