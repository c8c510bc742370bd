//! The HTTPS proxy every test client talks to, in front of the real API
//! server. It serves discovery for the stood-in groups ([`super::discovery`]),
//! maps `/api/v1/...` and `/apis/apps/v1/...` onto the test groups
//! ([`super::rewrite`]), answers the API server's SubjectAccessReviews
//! ([`super::rbac`]) and passes every other path through unchanged.
//!
//! Callers authenticate with a client certificate from the test CA (CN =
//! user, O = groups; none = `system:anonymous`). The proxy forwards with the
//! admin certificate and, unless the caller is in `system:masters`,
//! impersonates the caller, so the API server authenticates the proxy and
//! authorizes the caller — through the proxy's own SubjectAccessReview
//! answer. It asks for JSON only (protobuf and CBOR are taken out of
//! `Accept`; a protobuf or CBOR body gets 415) and without compression (so it
//! can rewrite), and turns strategic-merge-patch into merge-patch for the
//! stood-in kinds (CRDs refuse strategic merge). It runs on a runtime of its
//! own, on a thread of its own, so a test that blocks its thread on kubectl
//! does not block the proxy; it stops when dropped.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

use super::rewrite::{self, ResponseBody};
pub use super::upstream::ProxyConfig;
use super::upstream::{certs, key, roots, status_response, State};
use super::{discovery, rbac};

/// The running proxy; dropping it stops it (and closes every watch).
pub struct Proxy {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Listens on a free loopback port and serves until dropped.
    pub fn start(config: &ProxyConfig) -> Result<Proxy> {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("binding the proxy's port")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let state = Arc::new(State::new(config, address)?);
        let acceptor = TlsAcceptor::from(Arc::new(server_tls(config)?));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kube-stand-in-proxy")
            .enable_all()
            .build()
            .context("starting the proxy's runtime")?;
        let (shutdown, stop) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("kube-stand-in-proxy".to_owned())
            .spawn(move || {
                runtime.block_on(serve(listener, acceptor, state, stop));
                // Open connections (watches) end with the runtime.
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .context("starting the proxy's thread")?;
        Ok(Proxy {
            url: format!("https://{address}"),
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<State>,
    mut stop: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            state.log(&format!("cannot listen: {e}"));
            return;
        }
    };
    loop {
        let tcp = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    state.log(&format!("accept: {e}"));
                    continue;
                }
            },
        };
        let (acceptor, state) = (acceptor.clone(), state.clone());
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(e) => {
                    state.log(&format!("TLS handshake: {e}"));
                    return;
                }
            };
            let caller = Arc::new(Caller::of(tls.get_ref().1.peer_certificates()));
            let service = service_fn(move |request| {
                let (state, caller) = (state.clone(), caller.clone());
                async move { Ok::<_, Infallible>(handle(&state, &caller, request).await) }
            });
            // HTTP/1.1 or HTTP/2, as ALPN chose.
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

fn server_tls(config: &ProxyConfig) -> Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots(config)?), provider.clone())
            .allow_unauthenticated()
            .build()
            .context("the client certificate verifier")?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&config.serving_cert)?, key(&config.serving_key)?)
        .context("the proxy's serving certificate")?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tls)
}

/// Who is asking, from the client certificate.
#[derive(Debug)]
struct Caller {
    user: String,
    groups: Vec<String>,
}

impl Caller {
    fn of(certs: Option<&[CertificateDer<'_>]>) -> Caller {
        let subject = certs
            .and_then(<[_]>::first)
            .and_then(|der| x509_parser::parse_x509_certificate(der).ok())
            .map(|(_, cert)| {
                let name = cert.subject();
                let text = |a: &x509_parser::x509::AttributeTypeAndValue| {
                    a.as_str().ok().map(str::to_owned)
                };
                let user = name.iter_common_name().find_map(text);
                let groups = name.iter_organization().filter_map(text).collect();
                (user, groups)
            });
        match subject {
            Some((Some(user), groups)) if !user.is_empty() => Caller { user, groups },
            _ => Caller {
                user: "system:anonymous".to_owned(),
                groups: vec!["system:unauthenticated".to_owned()],
            },
        }
    }

    fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:?}", self.user, self.groups)
    }
}

async fn handle(
    state: &State,
    caller: &Caller,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    let line = format!("{caller} {} {}", request.method(), request.uri());
    let response = match route(state, caller, request).await {
        Ok(response) => response,
        Err(e) => status_response(
            StatusCode::BAD_GATEWAY,
            &format!("tollgate stand-in proxy: {e:#}"),
        ),
    };
    state.log(&format!("{line} -> {}", response.status().as_u16()));
    response
}

async fn route(
    state: &State,
    caller: &Caller,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>> {
    let path = request.uri().path();
    if request.method() == Method::GET {
        let accept = header(request.headers(), &ACCEPT);
        if let Some(answer) = discovery::serve(state, path, accept).await {
            return answer;
        }
    }
    if request.method() == Method::POST
        && path == "/apis/authorization.k8s.io/v1/subjectaccessreviews"
    {
        if !caller.is_master() {
            return Ok(status_response(
                StatusCode::FORBIDDEN,
                "the stand-in answers SubjectAccessReviews of system:masters (the API server) only",
            ));
        }
        let body = request.into_body().collect().await?.to_bytes();
        return Ok(rbac::review(state, &body).await);
    }
    forward(state, caller, request).await
}

fn header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Headers that belong to one connection, not to the request.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "trailer"
            | "host"
    )
}

/// A media type the API server would need protobuf or CBOR for.
fn binary(media: &str) -> bool {
    let base = media.split(';').next().unwrap_or_default().trim();
    base == "application/vnd.kubernetes.protobuf" || base.ends_with("cbor")
}

/// `accept` without protobuf and CBOR (JSON if nothing is left).
fn json_only(accept: &str) -> String {
    let kept: Vec<&str> = accept
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty() && !binary(entry))
        .collect();
    if kept.is_empty() {
        "application/json".to_owned()
    } else {
        kept.join(", ")
    }
}

fn is_watch(uri: &Uri) -> bool {
    let query_watch = uri
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .any(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            key == "watch" && !matches!(value, "false" | "0")
        });
    query_watch || uri.path().contains("/watch/")
}

/// A stood-in kind's request body with the test group's apiVersion, and its
/// content type (strategic merge → JSON merge patch). Bodies that are not
/// JSON (or YAML, for apply) go as they came.
fn request_body(body: &Bytes, content_type: &str) -> (Bytes, Option<&'static str>) {
    let base = content_type.split(';').next().unwrap_or_default().trim();
    let new_type = match base {
        "application/strategic-merge-patch+json" => Some("application/merge-patch+json"),
        _ => None,
    };
    let parsed: Option<Value> = match base {
        "application/json"
        | "application/merge-patch+json"
        | "application/json-patch+json"
        | "application/strategic-merge-patch+json" => serde_json::from_slice(body).ok(),
        "application/apply-patch+yaml" => serde_json::from_slice(body)
            .ok()
            .or_else(|| serde_yaml_ng::from_slice(body).ok()),
        _ => None,
    };
    match parsed {
        Some(mut value) => {
            rewrite::to_stand_in(&mut value);
            (Bytes::from(value.to_string()), new_type)
        }
        None => (body.clone(), new_type),
    }
}

async fn forward(
    state: &State,
    caller: &Caller,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>> {
    let (parts, body) = request.into_parts();
    let content_type = header(&parts.headers, &CONTENT_TYPE).to_owned();
    if binary(&content_type) {
        return Ok(status_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!("the tollgate stand-in proxy takes JSON only, not {content_type}"),
        ));
    }
    let mapped = rewrite::upstream_path(parts.uri.path());
    let body = body
        .collect()
        .await
        .context("reading the request")?
        .to_bytes();
    let (body, new_type) = match &mapped {
        Some(_) if !body.is_empty() => request_body(&body, &content_type),
        _ => (body, None),
    };
    let path = mapped.as_deref().unwrap_or(parts.uri.path());
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let mut upstream = Request::builder()
        .method(parts.method.clone())
        .uri(format!("{}{path}{query}", state.upstream));
    let master = caller.is_master();
    for (name, value) in &parts.headers {
        let skip = hop_by_hop(name)
            || matches!(
                name.as_str(),
                "content-length" | "accept-encoding" | "authorization" | "accept" | "content-type"
            )
            || (!master && name.as_str().starts_with("impersonate-"));
        if !skip {
            upstream = upstream.header(name, value);
        }
    }
    if let Some(accept) = parts.headers.get(ACCEPT).and_then(|v| v.to_str().ok()) {
        upstream = upstream.header(ACCEPT, json_only(accept));
    }
    if !content_type.is_empty() {
        upstream = upstream.header(CONTENT_TYPE, new_type.unwrap_or(&content_type));
    }
    if !master {
        upstream = upstream.header("impersonate-user", &caller.user);
        for group in &caller.groups {
            upstream = upstream.header("impersonate-group", group);
        }
    }
    let response = state
        .client
        .request(upstream.body(Full::new(body))?)
        .await
        .context("forwarding to the API server")?;
    let (mut parts_out, body) = response.into_parts();
    let names: Vec<HeaderName> = parts_out.headers.keys().cloned().collect();
    for name in names.iter().filter(|n| hop_by_hop(n)) {
        parts_out.headers.remove(name);
    }
    let body = if mapped.is_none() {
        body.map_err(Into::into).boxed_unsync()
    } else {
        parts_out.headers.remove(CONTENT_LENGTH);
        let streaming = is_watch(&parts.uri)
            || header(&parts_out.headers, &CONTENT_TYPE).contains("stream=watch");
        if streaming {
            rewrite::watch_body(body)
        } else {
            let bytes = body
                .collect()
                .await
                .context("reading the answer")?
                .to_bytes();
            Full::new(rewrite::response_body(&bytes))
                .map_err(|never| match never {})
                .boxed_unsync()
        }
    };
    Ok(Response::from_parts(parts_out, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_and_cbor_leave_accept_and_json_stays() {
        assert_eq!(
            json_only("application/vnd.kubernetes.protobuf, application/json"),
            "application/json"
        );
        assert_eq!(
            json_only("application/vnd.kubernetes.protobuf"),
            "application/json"
        );
        assert_eq!(
            json_only("application/json;as=Table;v=v1;g=meta.k8s.io,application/json"),
            "application/json;as=Table;v=v1;g=meta.k8s.io, application/json"
        );
        assert!(binary("application/cbor"));
        assert!(!binary(
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
        ));
    }

    #[test]
    fn a_watch_is_a_query_or_a_path() {
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        assert!(is_watch(&uri("/api/v1/services?watch=1&resourceVersion=5")));
        assert!(is_watch(&uri(
            "/api/v1/services?allowWatchBookmarks=true&watch=true"
        )));
        assert!(!is_watch(&uri("/api/v1/services?watch=false")));
        assert!(is_watch(&uri("/api/v1/watch/services")));
        assert!(!is_watch(&uri("/api/v1/services")));
    }

    #[test]
    fn strategic_merge_becomes_merge_and_apply_yaml_is_read() {
        let (body, new_type) = request_body(
            &Bytes::from_static(b"apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"),
            "application/apply-patch+yaml",
        );
        assert_eq!(new_type, None);
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["apiVersion"], "core.stand-in.tollgate.test/v1");
        let (_, new_type) = request_body(
            &Bytes::from_static(b"{\"spec\":{}}"),
            "application/strategic-merge-patch+json",
        );
        assert_eq!(new_type, Some("application/merge-patch+json"));
    }
}
