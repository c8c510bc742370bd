//! An echo backend following the Gateway API conformance echo contract.
//!
//! Replies with JSON `{path, host, method, proto, headers, namespace, pod}` where
//! `path` includes the query and `headers` maps each lower-case name to its values
//! in arrival order. Test controls:
//! - `X-Echo-Set-Header: Name:val,Name2:val2` sets those response headers;
//! - `?delay=1s` (any humantime duration) waits before answering;
//! - `/status/NNN` answers with status NNN.
//!
//! Speaks HTTP/1.1 and HTTP/2 (prior knowledge), so gRPC-style clients work too.
//! Every backend remembers the last [`RECORDED`] requests it received
//! ([`Echo::received`]), so a test can see what reached a backend whose answer
//! nobody reads (a mirror).

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Longest `?delay=` honoured, so a typo cannot hang a test.
const MAX_DELAY: Duration = Duration::from_secs(30);
/// How many requests a backend remembers (the oldest are forgotten first).
pub const RECORDED: usize = 256;

/// What the echo backend answers: the request as it saw it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EchoReply {
    pub path: String,
    pub host: String,
    pub method: String,
    pub proto: String,
    pub headers: BTreeMap<String, Vec<String>>,
    pub namespace: String,
    pub pod: String,
}

impl EchoReply {
    /// All values of a header joined with `,` (how HTTP folds repeated headers).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(|v| v.join(","))
    }
}

#[derive(Debug, Clone)]
struct Identity {
    namespace: String,
    pod: String,
}

/// The requests a backend received, newest last, at most [`RECORDED`].
type Received = Arc<Mutex<VecDeque<EchoReply>>>;

/// A running echo backend; stops when dropped.
pub struct Echo {
    addr: SocketAddr,
    task: JoinHandle<()>,
    received: Received,
}

impl Echo {
    /// Starts an echo backend on a free loopback port.
    pub async fn start(pod: &str) -> std::io::Result<Echo> {
        Self::bind(
            "127.0.0.1:0".parse().map_err(std::io::Error::other)?,
            "default",
            pod,
        )
        .await
    }

    /// Starts an echo backend on `addr` with the given identity.
    pub async fn bind(addr: SocketAddr, namespace: &str, pod: &str) -> std::io::Result<Echo> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let identity = Arc::new(Identity {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
        });
        let received = Received::default();
        let record = Arc::clone(&received);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let identity = Arc::clone(&identity);
                let record = Arc::clone(&record);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        handle(Arc::clone(&identity), Arc::clone(&record), req)
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Echo {
            addr,
            task,
            received,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The requests received so far (at most the last [`RECORDED`]), oldest first.
    pub fn received(&self) -> Vec<EchoReply> {
        let received = self.received.lock().unwrap_or_else(PoisonError::into_inner);
        received.iter().cloned().collect()
    }

    /// Forgets the requests received so far.
    pub fn clear_received(&self) {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    identity: Arc<Identity>,
    received: Received,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let host = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in req.headers() {
        if name == hyper::header::HOST {
            continue;
        }
        headers
            .entry(name.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let reply = EchoReply {
        path,
        host,
        method: req.method().to_string(),
        proto: format!("{:?}", req.version()),
        headers,
        namespace: identity.namespace.clone(),
        pod: identity.pod.clone(),
    };
    {
        let mut received = received.lock().unwrap_or_else(PoisonError::into_inner);
        if received.len() == RECORDED {
            received.pop_front();
        }
        received.push_back(reply.clone());
    }

    if let Some(delay) =
        query_param(req.uri().query(), "delay").and_then(|d| humantime::parse_duration(&d).ok())
    {
        tokio::time::sleep(delay.min(MAX_DELAY)).await;
    }
    let status = req
        .uri()
        .path()
        .strip_prefix("/status/")
        .map(|code| {
            code.parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::BAD_REQUEST)
        })
        .unwrap_or(StatusCode::OK);

    let body = serde_json::to_vec_pretty(&reply).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let out = response.headers_mut();
    out.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    for set in req.headers().get_all("x-echo-set-header") {
        let Ok(set) = set.to_str() else { continue };
        for pair in set.split(',') {
            let Some((name, value)) = pair.split_once(':') else {
                continue;
            };
            if let (Ok(name), Ok(value)) = (
                hyper::header::HeaderName::from_bytes(name.trim().as_bytes()),
                hyper::header::HeaderValue::from_str(value.trim()),
            ) {
                out.append(name, value);
            }
        }
    }
    Ok(response)
}

fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_backend_records_what_it_received_up_to_its_limit() {
        let echo = Echo::start("pod-a").await.expect("echo");
        let http = reqwest::Client::new();
        for i in 0..RECORDED + 2 {
            let reply = http
                .get(format!("http://{}/r/{i}?delay=0s", echo.addr()))
                .header("x-test", "1")
                .send()
                .await
                .expect("request");
            assert_eq!(reply.status(), 200);
        }
        let received = echo.received();
        assert_eq!(received.len(), RECORDED);
        assert_eq!(
            received[0].path, "/r/2?delay=0s",
            "the oldest are forgotten"
        );
        let last = received.last().expect("one");
        assert_eq!(
            (last.pod.as_str(), last.header("x-test")),
            ("pod-a", Some("1".to_owned()))
        );
        echo.clear_received();
        assert!(echo.received().is_empty());
    }
}
