//! Mutual TLS on xDS, live: `tollgate serve --xds-tls-*` feeding a real Envoy
//! bootstrapped with `tollgate bootstrap --xds-tls-*`, and gRPC clients
//! in-process that the server must turn away: one without a certificate, one
//! with a certificate from a CA the server does not trust, one without TLS.
//! The same client code with the right certificate is the control: it does
//! get the listeners, so the refusals are the server's doing. Certificates are
//! made at test time (e2e::pki). And what a client sends reaches the log
//! escaped, never as lines of its own. Every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a broken setup should fail the test loudly

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use e2e::echo::Echo;
use e2e::gateway::{free_port, gateway, gateway_class, service, Gateway, Options};
use e2e::pki::{Pair, Pki};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use prost::{Message, Name};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// A bound on each in-process client's attempt: a refusal comes as soon as
/// the handshake fails; this only keeps a hung attempt from hanging the test.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tollgate"))
}

/// `tollgate serve` with mutual TLS and an Envoy with the client certificate,
/// serving `example.com` on `port` from an echo backend `web-1`.
async fn start(pki: &Arc<Pki>) -> (Gateway, u16, Echo) {
    let echo = Echo::start("web-1").await.unwrap();
    let port = free_port().unwrap();
    let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: web}\nspec:\n  parentRefs: [{name: eg}]\n  hostnames: [example.com]\n  rules: [{backendRefs: [{name: web-1, port: 80}]}]\n";
    let files = [
        ("class.yaml", gateway_class()),
        ("gateway.yaml", gateway("default", "eg", port)),
        ("service.yaml", service("default", "web-1", &[echo.addr()])),
        ("route.yaml", route.to_owned()),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(p, y)| (*p, y.as_str())).collect();
    let options = Options {
        xds_tls: Some(pki.clone()),
        ..Options::default()
    };
    let gw = Gateway::start_with(bin(), &files, &options).await.unwrap();
    (gw, port, echo)
}

#[tokio::test]
async fn an_envoy_with_a_client_certificate_gets_its_configuration_over_mutual_tls() {
    let pki = Arc::new(Pki::generate().unwrap());
    let (gw, port, _echo) = start(&pki).await;
    gw.wait_until(port, "example.com", "/", "web-1 answers", |r| {
        r.status == 200 && r.pod().as_deref() == Some("web-1")
    })
    .await
    .unwrap();
    // The ADS connection is TLS: Envoy counts its handshakes with the xDS cluster.
    let stats = gw
        .envoy
        .admin_get("/stats?filter=^cluster\\.tollgate-xds\\.ssl\\.handshake$")
        .await
        .unwrap();
    let handshakes: u64 = stats
        .trim()
        .rsplit_once(": ")
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(0);
    assert!(handshakes >= 1, "no TLS handshake with xDS: {stats:?}");
    let log = gw.serve_log();
    assert!(log.contains("transport=\"mutual TLS\""), "{log}");
    assert!(log.contains("xDS stream opened node=\"e2e\""), "{log}");
}

#[tokio::test]
async fn a_client_without_a_certificate_from_the_client_ca_gets_no_configuration() {
    let pki = Arc::new(Pki::generate().unwrap());
    let (gw, port, _echo) = start(&pki).await;
    let xds = gw.xds_address();
    let ca = std::fs::read(&pki.ca).unwrap();
    let trusting = || {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&ca))
            .domain_name("localhost")
    };
    let with = |pair: &Pair| {
        trusting().identity(Identity::from_pem(
            std::fs::read(&pair.cert).unwrap(),
            std::fs::read(&pair.key).unwrap(),
        ))
    };
    // The client sees the server's alert (CertificateRequired, UnknownCA) or,
    // in TLS 1.3 where its side of the handshake may finish first, the
    // connection closed under its first request; either way no configuration,
    // and no stream in the server's log (checked below).
    let strangers = [
        ("no-certificate", Some(trusting())),
        ("rogue-certificate", Some(with(&pki.rogue_client))),
        ("plaintext", None),
    ];
    for (node, tls) in strangers {
        match listeners(xds, node, tls).await {
            Ok(response) => panic!("{node} got configuration: {response:?}"),
            // Refused, not left hanging.
            Err(why) => assert!(!why.starts_with("no answer"), "{node}: {why}"),
        }
    }

    // The control: the same client with a certificate the CA signed.
    let response = listeners(xds, "control", Some(with(&pki.client)))
        .await
        .unwrap();
    let names: Vec<String> = response
        .resources
        .iter()
        .map(|any| Listener::decode(any.value.as_slice()).unwrap().name)
        .collect();
    assert_eq!(names, [format!("http-{port}")]);

    let log = gw.serve_log();
    assert!(log.contains("xDS stream opened node=\"control\""), "{log}");
    for stranger in ["no-certificate", "rogue-certificate", "plaintext"] {
        assert!(!log.contains(&format!("node=\"{stranger}\"")), "{log}");
    }
}

/// Opens an ADS stream to `xds` as `node` and asks for the listeners: the
/// first response, or why there is none.
async fn listeners(
    xds: SocketAddr,
    node: &str,
    tls: Option<ClientTlsConfig>,
) -> Result<DiscoveryResponse, String> {
    let attempt = async {
        let endpoint = match tls {
            Some(tls) => Endpoint::from_shared(format!("https://{xds}"))
                .unwrap()
                .tls_config(tls)
                .map_err(|e| format!("TLS settings: {e}"))?,
            None => Endpoint::from_shared(format!("http://{xds}")).unwrap(),
        };
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("connect: {e:?}"))?;
        let mut client = AggregatedDiscoveryServiceClient::new(channel);
        // The sender stays open while the response is awaited, as Envoy's does.
        let (requests, rx) = mpsc::channel(1);
        requests
            .send(DiscoveryRequest {
                node: Some(Node {
                    id: node.to_owned(),
                    ..Node::default()
                }),
                type_url: Listener::type_url(),
                ..DiscoveryRequest::default()
            })
            .await
            .unwrap();
        let mut responses = client
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await
            .map_err(|status| format!("stream: {status}"))?
            .into_inner();
        let response = responses
            .message()
            .await
            .map_err(|status| format!("response: {status}"))?
            .ok_or_else(|| "the stream ended without a response".to_owned());
        drop(requests);
        response
    };
    tokio::time::timeout(ATTEMPT_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {ATTEMPT_TIMEOUT:?}")))
}

#[tokio::test]
async fn a_node_id_with_line_breaks_is_logged_escaped_never_as_a_line_of_its_own() {
    let echo = Echo::start("web-1").await.unwrap();
    let files = [
        ("class.yaml", gateway_class()),
        (
            "gateway.yaml",
            gateway("default", "eg", free_port().unwrap()),
        ),
        ("service.yaml", service("default", "web-1", &[echo.addr()])),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(p, y)| (*p, y.as_str())).collect();
    let gw = Gateway::start_with(bin(), &files, &Options::default())
        .await
        .unwrap();
    let forged = "x\n2026-12-03T00:00:00.000000Z ERROR tollgate: forged\r\u{1b}[31m";
    listeners(gw.xds_address(), forged, None).await.unwrap();
    let started = std::time::Instant::now();
    while !gw.serve_log().contains("xDS stream opened node=\"x") {
        assert!(started.elapsed() < ATTEMPT_TIMEOUT, "{}", gw.serve_log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = gw.serve_log();
    assert!(
        !log.lines()
            .any(|l| l.contains("ERROR tollgate: forged") && !l.contains("node=")),
        "{log}"
    );
    assert!(!log.contains('\u{1b}'), "a raw escape sequence in the log");
    assert!(log.contains(r#"node="x\n2026"#), "{log}");
}

#[test]
fn serve_refuses_to_start_with_a_partial_or_unreadable_tls_setup_naming_it() {
    let pki = Pki::generate().unwrap();
    let config = tempfile::tempdir().unwrap();
    let missing = pki.dir().join("missing.key");
    let (cert, key, ca) = (&pki.server.cert, &pki.server.key, &pki.ca);
    let cases: [(&[(&str, &Path)], String); 3] = [
        (
            &[("--xds-tls-cert", cert), ("--xds-tls-key", key)],
            "given without --xds-tls-client-ca".to_owned(),
        ),
        (
            &[
                ("--xds-tls-cert", cert),
                ("--xds-tls-key", &missing),
                ("--xds-tls-client-ca", ca),
            ],
            format!("--xds-tls-key {}: cannot read it", missing.display()),
        ),
        (
            // A key where the client CA should be.
            &[
                ("--xds-tls-cert", cert),
                ("--xds-tls-key", key),
                ("--xds-tls-client-ca", key),
            ],
            format!(
                "--xds-tls-client-ca {}: holds no PEM certificate",
                key.display()
            ),
        ),
    ];
    for (flags, expected) in cases {
        let mut serve = std::process::Command::new(bin());
        serve
            .args(["serve", "--xds-listen", "127.0.0.1:0", "--config-dir"])
            .arg(config.path());
        for (flag, path) in flags {
            serve.arg(flag).arg(path);
        }
        let out = serve.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flags:?}: {stderr}");
        assert!(stderr.contains(&expected), "{flags:?}: {stderr}");
    }
}
