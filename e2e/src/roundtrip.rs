//! Send a request through Envoy and compare what the backend saw and what the
//! client got with an expectation, in the style of the Gateway API conformance
//! suite's `ExpectedResponse`. A mismatch lists every difference at once.

use std::time::Duration;

use anyhow::{Context as _, Result};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::echo::EchoReply;

/// A request to send.
#[derive(Debug, Clone, Default)]
pub struct Req {
    pub method: Option<String>,
    pub path: String,
    pub host: Option<String>,
    /// Sent in order; a repeated name sends several header lines.
    pub headers: Vec<(String, String)>,
}

impl Req {
    pub fn get(path: &str) -> Self {
        Req {
            path: path.to_string(),
            ..Req::default()
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn host(mut self, host: &str) -> Self {
        self.host = Some(host.to_string());
        self
    }

    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_string());
        self
    }
}

/// What came back: the response, and the echo backend's view of the request
/// when the body was an echo reply.
#[derive(Debug)]
pub struct Exchange {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
    pub echo: Option<EchoReply>,
}

impl Exchange {
    /// All values of a response header joined with `,`.
    pub fn header(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("<non-utf8>"))
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    }
}

/// One HTTP/1.1 client for a test; no connection reuse surprises between requests
/// that expect different routes.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap_or_else(|e| panic!("building the HTTP client: {e}"))
}

/// Sends `req` to `base` (`http://127.0.0.1:port`).
pub async fn send(client: &reqwest::Client, base: &str, req: &Req) -> Result<Exchange> {
    let method = reqwest::Method::from_bytes(req.method.as_deref().unwrap_or("GET").as_bytes())?;
    let mut headers = HeaderMap::new();
    if let Some(host) = &req.host {
        headers.insert(reqwest::header::HOST, HeaderValue::from_str(host)?);
    }
    for (name, value) in &req.headers {
        headers.append(
            HeaderName::from_bytes(name.as_bytes())?,
            HeaderValue::from_str(value)?,
        );
    }
    let url = format!("{base}{}", req.path);
    let resp = client
        .request(method, &url)
        .headers(headers)
        .send()
        .await
        .with_context(|| format!("sending {req:?} to {url}"))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.text().await?;
    let echo = serde_json::from_str(&body).ok();
    Ok(Exchange {
        status,
        headers,
        body,
        echo,
    })
}

/// Statuses of `n` requests sent `in_flight` at a time, each on its own connection.
pub async fn concurrent_statuses(base: &str, req: &Req, n: usize, in_flight: usize) -> Vec<u16> {
    let http = client();
    let mut out = Vec::new();
    while out.len() < n {
        let batch = (n - out.len()).min(in_flight.max(1));
        let calls: Vec<_> = (0..batch)
            .map(|_| {
                let (http, base, req) = (http.clone(), base.to_string(), req.clone());
                tokio::spawn(async move { send(&http, &base, &req).await })
            })
            .collect();
        for call in calls {
            let exchange = call.await.expect("client task").expect("send");
            out.push(exchange.status);
        }
    }
    out
}

/// What a test expects of one exchange. Unset fields are not checked.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    pub status: Option<u16>,
    /// Headers the backend must have received (values joined with `,`).
    pub backend_headers: Vec<(String, String)>,
    /// Headers the backend must not have received.
    pub backend_absent: Vec<String>,
    /// Headers the client must have received (values joined with `,`).
    pub response_headers: Vec<(String, String)>,
    /// Headers the client must not have received.
    pub response_absent: Vec<String>,
    /// The echo pod that must have served the request.
    pub pod: Option<String>,
    /// The path (with query) the backend must have seen.
    pub backend_path: Option<String>,
    /// The response must not be an echo reply (e.g. a direct response or local reply).
    pub no_backend: bool,
}

impl Expect {
    pub fn status(status: u16) -> Self {
        Expect {
            status: Some(status),
            ..Expect::default()
        }
    }

    pub fn backend_header(mut self, name: &str, value: &str) -> Self {
        self.backend_headers
            .push((name.to_string(), value.to_string()));
        self
    }

    pub fn backend_absent(mut self, name: &str) -> Self {
        self.backend_absent.push(name.to_string());
        self
    }

    pub fn response_header(mut self, name: &str, value: &str) -> Self {
        self.response_headers
            .push((name.to_string(), value.to_string()));
        self
    }

    pub fn response_absent(mut self, name: &str) -> Self {
        self.response_absent.push(name.to_string());
        self
    }

    /// The response must come from Envoy (local reply), not the echo backend.
    pub fn no_backend(mut self) -> Self {
        self.no_backend = true;
        self
    }

    pub fn pod(mut self, pod: &str) -> Self {
        self.pod = Some(pod.to_string());
        self
    }

    /// Every way `ex` differs from this expectation (empty when it matches).
    pub fn differences(&self, ex: &Exchange) -> Vec<String> {
        let mut diffs = Vec::new();
        if let Some(status) = self.status.filter(|s| *s != ex.status) {
            diffs.push(format!("status: expected {status}, got {}", ex.status));
        }
        for (name, want) in &self.response_headers {
            match ex.header(name) {
                Some(got) if got == *want => {}
                got => diffs.push(format!(
                    "response header {name}: expected {want:?}, got {got:?}"
                )),
            }
        }
        for name in &self.response_absent {
            if let Some(got) = ex.header(name) {
                diffs.push(format!(
                    "response header {name}: expected absent, got {got:?}"
                ));
            }
        }
        let needs_echo = self.pod.is_some()
            || self.backend_path.is_some()
            || !self.backend_headers.is_empty()
            || !self.backend_absent.is_empty();
        match (&ex.echo, needs_echo, self.no_backend) {
            (Some(_), _, true) => {
                diffs.push("expected no backend, but the echo backend answered".into())
            }
            (None, true, _) => {
                diffs.push("expected an echo reply from the backend, got a non-echo body".into())
            }
            (Some(echo), _, false) => {
                if let Some(pod) = self.pod.as_ref().filter(|p| **p != echo.pod) {
                    diffs.push(format!("backend pod: expected {pod}, got {}", echo.pod));
                }
                if let Some(path) = self.backend_path.as_ref().filter(|p| **p != echo.path) {
                    diffs.push(format!("backend path: expected {path}, got {}", echo.path));
                }
                for (name, want) in &self.backend_headers {
                    match echo.header(name) {
                        Some(got) if got == *want => {}
                        got => diffs.push(format!(
                            "backend saw header {name}: expected {want:?}, got {got:?}"
                        )),
                    }
                }
                for name in &self.backend_absent {
                    if let Some(got) = echo.header(name) {
                        diffs.push(format!(
                            "backend saw header {name}: expected absent, got {got:?}"
                        ));
                    }
                }
            }
            (None, false, _) => {}
        }
        diffs
    }
}

/// Sends `req` and asserts `expect`, panicking with every difference and the
/// full exchange (the Envoy harness then adds Envoy's log).
pub async fn roundtrip(
    client: &reqwest::Client,
    base: &str,
    req: &Req,
    expect: &Expect,
) -> Exchange {
    let ex = send(client, base, req)
        .await
        .unwrap_or_else(|e| panic!("request failed: {e:?}"));
    let diffs = expect.differences(&ex);
    assert!(
        diffs.is_empty(),
        "{req:?} did not meet expectations:\n  - {}\nresponse: {} {:?}\nbody: {}",
        diffs.join("\n  - "),
        ex.status,
        ex.headers,
        ex.body
    );
    ex
}
