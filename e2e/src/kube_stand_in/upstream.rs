//! The proxy's side towards the real API server: its settings, the client
//! it forwards with (the admin certificate), its own reads (discovery and
//! RBAC, as admin), and the answers it makes itself. Shared by the request
//! handling ([`super::proxy`]), discovery and the access reviews, so none
//! of them imports another.

use std::fs::File;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;
use serde_json::{json, Value};

use super::rewrite::ResponseBody;

/// How long an answer the proxy asks for itself (discovery, RBAC) may take;
/// less than the API server's 10 s for a SubjectAccessReview.
const OWN_REQUEST_TIMEOUT: Duration = Duration::from_secs(8);

/// What the proxy needs: the API server and the PEM files of the test PKI.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The real API server, `https://127.0.0.1:PORT`.
    pub upstream: String,
    /// The test CA: it signed the API server's certificate and every client's.
    pub ca: PathBuf,
    /// A client certificate in `system:masters`, which the proxy forwards with.
    pub admin_cert: PathBuf,
    pub admin_key: PathBuf,
    /// What the proxy presents (for `127.0.0.1`).
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    /// One line per request and review, for a failing test to read.
    pub log: Option<PathBuf>,
}

/// What every request shares: the client to the API server and the log.
pub(crate) struct State {
    pub(super) client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    pub(super) upstream: String,
    address: SocketAddr,
    log: Option<Mutex<File>>,
}

impl State {
    pub(super) fn new(config: &ProxyConfig, address: SocketAddr) -> Result<State> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots(config)?)
            .with_client_auth_cert(certs(&config.admin_cert)?, key(&config.admin_key)?)
            .context("the admin client certificate")?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .build();
        let log = match &config.log {
            Some(path) => Some(Mutex::new(
                File::create(path).with_context(|| format!("creating {}", path.display()))?,
            )),
            None => None,
        };
        Ok(State {
            client: Client::builder(TokioExecutor::new()).build(https),
            upstream: config.upstream.trim_end_matches('/').to_owned(),
            address,
            log,
        })
    }

    /// `127.0.0.1:PORT`, what discovery names as the server address.
    pub(crate) fn address(&self) -> String {
        self.address.to_string()
    }

    pub(crate) fn log(&self, line: &str) {
        if let Some(file) = &self.log {
            if let Ok(mut file) = file.lock() {
                let _ = writeln!(file, "{line}");
            }
        }
    }

    /// GET `path` from the API server as admin. A 429 (a kind's storage
    /// still initializing, in the seconds after its CRD is Established) is
    /// asked again, as client-go would, within the same bound.
    pub(crate) async fn get(&self, path: &str, accept: &str) -> Result<(StatusCode, Bytes)> {
        let answer = async {
            loop {
                let request = Request::get(format!("{}{path}", self.upstream))
                    .header(ACCEPT, accept)
                    .body(Full::new(Bytes::new()))?;
                let response = self.client.request(request).await?;
                let status = response.status();
                let body = response.into_body().collect().await?.to_bytes();
                if status != StatusCode::TOO_MANY_REQUESTS {
                    return anyhow::Ok((status, body));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::time::timeout(OWN_REQUEST_TIMEOUT, answer)
            .await
            .with_context(|| format!("GET {path}: no answer in {OWN_REQUEST_TIMEOUT:?}"))?
            .with_context(|| format!("GET {path}"))
    }

    /// GET `path` as admin; the JSON of a successful answer.
    pub(crate) async fn get_json(&self, path: &str, accept: &str) -> Result<Value> {
        let (status, body) = self.get(path, accept).await?;
        if !status.is_success() {
            bail!("GET {path}: {status}: {}", String::from_utf8_lossy(&body));
        }
        serde_json::from_slice(&body).with_context(|| format!("GET {path}: not JSON"))
    }
}

/// A JSON answer.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response<ResponseBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A Kubernetes `Status` failure, as the API server words one.
pub(crate) fn status_response(status: StatusCode, message: &str) -> Response<ResponseBody> {
    let reason = match status {
        StatusCode::BAD_REQUEST => "BadRequest",
        StatusCode::FORBIDDEN => "Forbidden",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UnsupportedMediaType",
        _ => "InternalError",
    };
    json_response(
        status,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": status.as_u16(),
        }),
    )
}

pub(super) fn roots(config: &ProxyConfig) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in certs(&config.ca)? {
        roots.add(cert).context("the test CA")?;
    }
    Ok(roots)
}

pub(super) fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect)
        .with_context(|| format!("reading {}", path.display()))
}

pub(super) fn key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).with_context(|| format!("reading {}", path.display()))
}
