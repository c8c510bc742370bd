//! The canary filter, one stream at a time, for every runtime: the backend is
//! chosen when the request headers arrive and written to the policy's header
//! (replacing whatever the client sent, or removing it when nothing applies),
//! then Envoy is asked to route again by it; a sticky key handed out with the
//! choice goes back as `Set-Cookie` on the response.

use std::sync::Arc;

use super::policy::{CanaryPolicy, Draws};
use crate::host::{Attrs, Direction, Host};

/// What the choice was, for the filter's metrics.
#[derive(Debug, PartialEq, Eq)]
pub enum Chosen {
    /// The backend (its index among the policy's backends).
    Backend(usize),
    /// Nothing applied; the header was removed.
    Nothing,
}

/// One stream's state: the cookie for the response.
#[derive(Debug, Default)]
pub struct Stream {
    set_cookie: Option<String>,
}

impl Stream {
    /// Chooses and writes the backend; None without a policy.
    pub fn on_request_headers(
        &mut self,
        policy: Option<&Arc<CanaryPolicy>>,
        draws: &mut Draws,
        host: &mut dyn Host,
    ) -> Option<Chosen> {
        let policy = policy?;
        let selection = policy.select(&Attrs::new(host), draws);
        let chosen = match &selection {
            Some(s) => {
                let name = &policy.backend_names()[s.backend];
                host.set_header(Direction::Request, &policy.header, name);
                Chosen::Backend(s.backend)
            }
            None => {
                host.remove_header(Direction::Request, &policy.header);
                Chosen::Nothing
            }
        };
        // Re-routing is the point here: asked for explicitly, so it holds on
        // an Envoy that does not clear the route cache after edits by itself.
        host.clear_route_cache();
        self.set_cookie = selection.and_then(|s| s.set_cookie);
        Some(chosen)
    }

    pub fn on_response_headers(&mut self, host: &mut dyn Host) {
        if let Some(cookie) = self.set_cookie.take() {
            host.add_header(Direction::Response, "set-cookie", &cookie);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::canary::config::CanaryConfig;
    use crate::host::fake::FakeHost;

    fn policy(config: serde_json::Value) -> Arc<CanaryPolicy> {
        let config: CanaryConfig = serde_json::from_value(config).unwrap();
        Arc::new(CanaryPolicy::compile(config).unwrap())
    }

    #[test]
    fn the_choice_replaces_what_the_client_sent_and_envoy_routes_again() {
        let p = policy(
            json!({"backends": [{"name": "stable", "weight": 0}, {"name": "canary", "weight": 1}]}),
        );
        let mut host = FakeHost::request(&[
            ("x-tollgate-backend", "stable"),
            ("x-tollgate-backend", "x"),
        ]);
        let chosen = Stream::default().on_request_headers(Some(&p), &mut Draws::new(1), &mut host);
        assert_eq!(chosen, Some(Chosen::Backend(1)));
        assert_eq!(
            host.get(Direction::Request, "x-tollgate-backend"),
            ["canary"]
        );
        assert_eq!(host.route_cache_cleared, 1);
    }

    #[test]
    fn when_nothing_applies_the_header_is_removed() {
        let p = policy(json!({
            "backends": [{"name": "stable", "weight": 0}],
            "rules": [{"match": {"headers": [{"name": "env", "value": "canary"}]}, "backend": "stable"}]
        }));
        let mut host = FakeHost::request(&[("x-tollgate-backend", "stable")]);
        let chosen = Stream::default().on_request_headers(Some(&p), &mut Draws::new(1), &mut host);
        assert_eq!(chosen, Some(Chosen::Nothing));
        assert!(host
            .get(Direction::Request, "x-tollgate-backend")
            .is_empty());
    }

    #[test]
    fn a_new_sticky_key_goes_back_as_a_cookie_on_the_response() {
        let p = policy(json!({
            "backends": [{"name": "a"}, {"name": "b"}],
            "sticky": {"cookie": "k", "setCookie": {"maxAge": 60}}
        }));
        let mut host = FakeHost::request(&[]);
        let mut stream = Stream::default();
        stream.on_request_headers(Some(&p), &mut Draws::new(7), &mut host);
        stream.on_response_headers(&mut host);
        let cookie = host.get(Direction::Response, "set-cookie");
        assert_eq!(cookie.len(), 1);
        assert!(
            cookie[0].starts_with("k=") && cookie[0].ends_with("Max-Age=60"),
            "{cookie:?}"
        );
    }

    #[test]
    fn without_a_policy_the_stream_is_left_alone() {
        let mut host = FakeHost::request(&[("x-tollgate-backend", "mine")]);
        assert_eq!(
            Stream::default().on_request_headers(None, &mut Draws::new(1), &mut host),
            None
        );
        assert_eq!(host.get(Direction::Request, "x-tollgate-backend"), ["mine"]);
        assert_eq!(host.route_cache_cleared, 0);
    }
}
