//! The common test stage: a real Envoy running one of our filters in front of
//! one echo backend, on routes `foo` (/foo) and `bar` (/bar).

use serde_json::Value;

use crate::echo::Echo;
use crate::envoy::{Envoy, Options};
use crate::envoy_config::{cluster, direct_route, prefix_route, Listener, Runtime, LISTENER};
use crate::roundtrip::{client, roundtrip, send, Exchange, Expect, Req};

pub struct Stage {
    pub envoy: Envoy,
    /// The runtime the filter runs in (metric names differ).
    pub runtime: Runtime,
    /// `http://127.0.0.1:<listener port>`.
    pub base: String,
    pub http: reqwest::Client,
    _backend: Echo,
}

impl Stage {
    /// Starts Envoy with `dist/<filter>.wasm` configured with `config`.
    pub async fn start(filter: &str, config: &Value) -> Stage {
        Stage::start_with(filter, config, Vec::new()).await
    }

    /// [`Stage::start`] with more clusters (ones the filter calls).
    pub async fn start_with(filter: &str, config: &Value, clusters: Vec<Value>) -> Stage {
        Stage::start_on(Runtime::Wasm, filter, config, clusters).await
    }

    /// [`Stage::start_with`] in `runtime`.
    pub async fn start_on(
        runtime: Runtime,
        filter: &str,
        config: &Value,
        clusters: Vec<Value>,
    ) -> Stage {
        let backend = Echo::start("backend").await.expect("echo backend");
        let listener = Listener {
            http_filters: vec![runtime.filter(filter, config)],
            routes: vec![
                prefix_route("foo", "/foo", "backend"),
                prefix_route("bar", "/bar", "backend"),
            ],
            clusters: [vec![cluster("backend", backend.addr())], clusters].concat(),
            ..Listener::default()
        };
        let envoy = Envoy::start(&listener.bootstrap()).await;
        let base = envoy.listener_url(LISTENER).await;
        Stage {
            envoy,
            runtime,
            base,
            http: client(),
            _backend: backend,
        }
    }

    /// Sends `req`; panics on a transport error.
    pub async fn send(&self, req: &Req) -> Exchange {
        send(&self.http, &self.base, req).await.expect("send")
    }

    /// Sends `req` and checks the exchange against `expect`.
    pub async fn check(&self, req: Req, expect: Expect) -> Exchange {
        roundtrip(&self.http, &self.base, &req, &expect).await
    }
}

/// Starts Envoy with our filter `filter` of `runtime` configured with
/// `config`, which it must refuse: returns Envoy's log after checking that
/// Envoy exited non-zero and that the filter said it rejected the
/// configuration. Panics otherwise.
pub async fn refused_config_log(runtime: Runtime, filter: &str, config: &Value) -> String {
    let listener = Listener {
        http_filters: vec![runtime.filter(filter, config)],
        routes: vec![direct_route("any", "/", "ok")],
        ..Listener::default()
    };
    let said = format!("tollgate {filter}: rejected configuration");
    refused_log(&listener.bootstrap(), &said).await
}

/// Starts Envoy with `bootstrap`, which it must refuse: returns Envoy's log
/// after checking that Envoy exited non-zero and that the log says `said`.
/// Panics otherwise.
pub async fn refused_log(bootstrap: &Value, said: &str) -> String {
    let failure = match Envoy::try_start(bootstrap, &Options::default()).await {
        Ok(_) => panic!("Envoy started with a config it should refuse (expected `{said}`)"),
        Err(f) => f,
    };
    assert!(
        failure.exit.is_some_and(|s| !s.success()),
        "Envoy should exit non-zero: {failure}"
    );
    assert!(
        failure.log.contains(said),
        "no `{said}` in\n{}",
        failure.log
    );
    failure.log
}
