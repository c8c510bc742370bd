//! `tollgate serve --provider kubernetes` against a real Kubernetes API server
//! (etcd and the API server built from Debian's sources, the Gateway API
//! v1.6.1 CRDs, kubectl: `e2e::kube_apiserver`) and a real Envoy from
//! `tollgate bootstrap`. The routes answer with a RequestRedirect, so no
//! Service is needed: core/v1 is a kind this API server does not serve (the
//! provider reads it as empty), and no stand-in is used here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a broken setup should fail the test loudly

use std::path::Path;
use std::time::{Duration, Instant};

use e2e::gateway::{free_port, Gateway, Options};
use e2e::kube_apiserver::KubeApiServer;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tollgate"))
}

fn objects(port: u16, to: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: tollgate}}\nspec: {{controllerName: tollgate.dev/gateway-controller}}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: eg, namespace: default}}\nspec:\n  gatewayClassName: tollgate\n  listeners:\n  - {{name: http, protocol: HTTP, port: {port}}}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: moved, namespace: default}}\nspec:\n  parentRefs: [{{name: eg}}]\n  hostnames: [old.example]\n  rules:\n  - filters:\n    - type: RequestRedirect\n      requestRedirect: {{hostname: {to}, statusCode: 301}}\n"
    )
}

/// The `Location` Envoy answers for `host` on `port`, once it is `wanted`
/// (bounded: 20 s).
async fn location_becomes(port: u16, host: &str, wanted: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < Duration::from_secs(20) {
        let reply = client
            .get(format!("http://127.0.0.1:{port}/a"))
            .header("host", host)
            .send()
            .await;
        if let Ok(reply) = reply {
            let location = reply
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .unwrap_or("");
            last = format!("{} {location}", reply.status().as_u16());
            if reply.status().as_u16() == 301 && location.starts_with(wanted) {
                return location.to_owned();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{host} on port {port}: no 301 to {wanted} after 20 s; last answer: {last}");
}

#[tokio::test]
async fn objects_applied_with_kubectl_are_served_their_edits_follow_and_a_bad_one_costs_only_itself(
) {
    let api = KubeApiServer::start().unwrap();
    let port = free_port().unwrap();
    api.apply(&objects(port, "new.example")).unwrap();
    let options = Options {
        kubeconfig: Some(api.kubeconfig.clone()),
        ..Options::default()
    };
    let gw = Gateway::start_with(bin(), &[], &options).await.unwrap();
    let location = location_becomes(port, "old.example", "http://new.example").await;
    assert_eq!(location, format!("http://new.example:{port}/a"));

    // An edit through the API server reaches Envoy without a restart.
    api.apply(&objects(port, "newer.example")).unwrap();
    location_becomes(port, "old.example", "http://newer.example").await;

    // A Gateway with a field Tollgate does not implement (listener TLS
    // `options`, in the standard CRD) costs only itself: it is refused with a
    // condition naming the field and its uid, and the other Gateway serves on.
    let other_port = free_port().unwrap();
    api.apply(&format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: odd, namespace: default}}\nspec:\n  gatewayClassName: tollgate\n  listeners:\n  - name: https\n    protocol: HTTPS\n    port: {other_port}\n    tls: {{mode: Terminate, options: {{example.com/cipher: strong}}}}\n"
    ))
    .unwrap();
    let status = gw
        .admin_until("/status", "the refused Gateway", |s| {
            s.contains("name: odd")
        })
        .await
        .unwrap();
    let odd = &status[status.find("name: odd").unwrap()..];
    assert!(odd.contains("reason: UnsupportedValue"), "{status}");
    assert!(
        status.contains("spec.listeners[0].tls.options: unknown field `options`")
            && status.contains("uid "),
        "{status}"
    );
    location_becomes(port, "old.example", "http://newer.example").await;

    // The controller read every kind the server serves, and knows which it
    // does not (core/v1 here), from its log.
    let log = gw.serve_log();
    assert!(
        log.contains("the API server does not serve Service"),
        "{log}"
    );
    assert!(log.contains("every kind listed"), "{log}");
    let status = gw.admin("/status").await.unwrap().1;
    assert!(status.contains("name: moved"), "{status}");
}
