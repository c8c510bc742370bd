//! The Kubernetes quickstart end to end: `tollgate manifests install` and
//! `examples/kubernetes/quickstart.yaml` applied with `kubectl apply
//! --server-side`, the controller running as the install's ServiceAccount
//! (so its RBAC is what it has), Envoy provisioned per Gateway, and traffic
//! through it with each of Tollgate's policies.
//!
//! Real: the API server and etcd (built from Debian's sources), the Gateway
//! API CRDs and ours, kubectl, `tollgate serve`, Envoy 1.40 with
//! libtollgate.so. Stand-ins, each named in its module:
//! - core/v1, apps/v1, RBAC, EndpointSlice and authorization
//!   (`e2e::kube_stand_in`: CRDs behind a proxy that answers
//!   SubjectAccessReviews from the stored RBAC);
//! - kubelet, cluster DNS and the load balancer (`e2e::kubelet`: a local
//!   Envoy per provisioned Deployment, run as its pod spec says);
//! - the endpoints controller and the echo pods: the test's own echo
//!   backends on loopback, written into EndpointSlices.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a broken setup should fail the test loudly

mod kube;

use std::path::Path;
use std::time::{Duration, Instant};

use e2e::echo::{Echo, EchoReply};
use e2e::gateway::{free_port, Options, Replica};
use e2e::kube_apiserver::KubeApiServer;
use e2e::kubelet::Kubelet;
use kube::{condition, object_until};
use tollgate::serve::provision::Provisioner;

const NAMESPACE: &str = "tollgate-system";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tollgate"))
}

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// An EndpointSlice of Service `service` (port `http`) at `echo`: what the
/// endpoints controller writes for a Service's ready pods.
fn endpoints(service: &str, echo: &Echo) -> String {
    let port = echo.addr().port();
    format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {service}-1\n  namespace: default\n  labels: {{kubernetes.io/service-name: {service}}}\naddressType: IPv4\nports: [{{name: http, port: {port}, protocol: TCP}}]\nendpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]\n"
    )
}

/// One request through the provisioned Envoy.
struct Reply {
    status: u16,
    served_by: Option<String>,
    echo: Option<EchoReply>,
}

async fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> Option<Reply> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let mut request = client.get(format!("http://127.0.0.1:{port}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let reply = request.send().await.ok()?;
    let status = reply.status().as_u16();
    let served_by = reply
        .headers()
        .get("x-served-by")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = reply.text().await.ok()?;
    Some(Reply {
        status,
        served_by,
        echo: serde_json::from_str(&body).ok(),
    })
}

/// Polls (bounded: 30 s) until a request answers as `done` wants.
async fn until(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    what: &str,
    done: impl Fn(&Reply) -> bool,
) -> Reply {
    let started = Instant::now();
    let mut last = String::from("no answer");
    while started.elapsed() < Duration::from_secs(30) {
        if let Some(reply) = get(port, path, headers).await {
            if done(&reply) {
                return reply;
            }
            last = format!("{} served by {:?}", reply.status, reply.served_by);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} on port {port}: not {what} after 30 s; last: {last}");
}

#[tokio::test]
async fn the_install_and_the_quickstart_serve_traffic_through_a_provisioned_envoy_with_every_policy(
) {
    let api = KubeApiServer::start().unwrap();
    let install = std::process::Command::new(bin())
        .args(["manifests", "install"])
        .output()
        .unwrap();
    assert!(
        install.status.success(),
        "{}",
        String::from_utf8_lossy(&install.stderr)
    );
    api.apply(&String::from_utf8(install.stdout).unwrap())
        .unwrap();

    // The quickstart, its Gateway on a free port, its echo pods played by
    // the test's echo backends.
    let port = free_port().unwrap();
    let quickstart =
        std::fs::read_to_string(workspace().join("examples/kubernetes/quickstart.yaml")).unwrap();
    assert!(quickstart.contains("port: 8080}"));
    api.apply(&quickstart.replace("port: 8080}", &format!("port: {port}}}")))
        .unwrap();
    let echo = Echo::start("echo-1").await.unwrap();
    let canary = Echo::start("echo-canary-1").await.unwrap();
    api.apply(&format!(
        "{}---\n{}",
        endpoints("echo", &echo),
        endpoints("echo-canary", &canary)
    ))
    .unwrap();

    // The controller, as the install's ServiceAccount.
    let identity = api
        .kubeconfig_for(
            "system:serviceaccount:tollgate-system:tollgate",
            &[
                "system:serviceaccounts",
                "system:serviceaccounts:tollgate-system",
                "system:authenticated",
            ],
        )
        .unwrap();
    let controller = Replica::start(
        bin(),
        &Options {
            kubeconfig: Some(identity),
            serve_args: ["--xds-tls-secrets", "--namespace", NAMESPACE]
                .map(String::from)
                .into(),
            ..Options::default()
        },
    )
    .await
    .unwrap();

    // The Envoy of Gateway eg is provisioned, and runs (kubelet's part).
    let mut kubelet = Kubelet::new(NAMESPACE, controller.xds_address()).unwrap();
    let started = Instant::now();
    while kubelet.sync(&api).await.unwrap().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no Deployment provisioned after 30 s:\n{}",
            controller.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let envoy = Provisioner::object_name("default", "eg");
    for kind in ["serviceaccount", "configmap", "service"] {
        api.kubectl_ok(&["get", kind, &envoy, "-n", NAMESPACE])
            .unwrap();
    }

    // Traffic, with each policy: the HeaderPolicy on every response, the
    // CanaryPolicy's testers on the canary, the JWTPolicy on /private, the
    // RateLimitPolicy's fifth request per user the last.
    let reply = until(port, "/", &[("x-user-id", "a")], "served by echo", |r| {
        r.status == 200 && r.echo.as_ref().is_some_and(|e| e.pod == "echo-1")
    })
    .await;
    assert_eq!(reply.served_by.as_deref(), Some("tollgate"));
    let tester = get(port, "/", &[("x-canary", "true"), ("x-user-id", "b")])
        .await
        .unwrap();
    assert_eq!(tester.echo.map(|e| e.pod).as_deref(), Some("echo-canary-1"));
    let anonymous = get(port, "/private", &[("x-user-id", "c")]).await.unwrap();
    assert_eq!(anonymous.status, 401);
    let token = std::fs::read_to_string(workspace().join("examples/quickstart/token.jwt")).unwrap();
    let bearer = format!("Bearer {}", token.trim());
    let signed = get(
        port,
        "/private",
        &[("authorization", &bearer), ("x-user-id", "c")],
    )
    .await
    .unwrap();
    assert_eq!(signed.status, 200);
    assert_eq!(
        signed.echo.unwrap().header("x-jwt-sub").as_deref(),
        Some("demo-user")
    );
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            get(port, "/", &[("x-user-id", "limited")])
                .await
                .unwrap()
                .status,
        );
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);

    // Status: the Gateway programmed (its Envoy accepted the configuration)
    // at its load balancer's address; every policy accepted.
    let gateway = object_until(
        &api,
        &["gateway", "eg"],
        "Programmed with an address",
        |g| {
            condition(&g["status"]["conditions"], "Programmed")["status"] == "True"
                && g["status"]["addresses"][0]["value"] == "127.0.0.1"
        },
    )
    .await;
    assert_eq!(gateway["status"]["listeners"][0]["attachedRoutes"], 1);
    for (kind, name) in [
        ("ratelimitpolicy", "per-user"),
        ("jwtpolicy", "private-jwt"),
        ("headerpolicy", "served-by"),
        ("canarypolicy", "testers"),
    ] {
        object_until(&api, &[kind, name], "Accepted", |p| {
            condition(&p["status"]["conditions"], "Accepted")["status"] == "True"
        })
        .await;
    }

    // A provisioned object deleted by hand is applied again.
    api.kubectl_ok(&["delete", "deployment", &envoy, "-n", NAMESPACE])
        .unwrap();
    let started = Instant::now();
    while api
        .kubectl_ok(&["get", "deployment", &envoy, "-n", NAMESPACE])
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the deleted Deployment was not applied again within 20 s:\n{}",
            controller.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // An edit is served.
    api.apply(
        "apiVersion: tollgate.dev/v1alpha1\nkind: HeaderPolicy\nmetadata: {name: served-by, namespace: default}\nspec:\n  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: eg}]\n  headers:\n    response: {set: [{name: x-served-by, value: tollgate-edited}]}\n",
    )
    .unwrap();
    until(
        port,
        "/",
        &[("x-user-id", "d")],
        "served with the edited header",
        |r| r.served_by.as_deref() == Some("tollgate-edited"),
    )
    .await;

    // A bad policy (a regular expression the filter cannot compile; the
    // CRD's schema cannot tell) is reported on itself and fails its own
    // route closed, while the rest serves.
    api.apply(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: extra, namespace: default}\nspec:\n  parentRefs: [{name: eg}]\n  hostnames: [extra.example]\n  rules: [{backendRefs: [{name: echo, port: 3000}]}]\n---\napiVersion: tollgate.dev/v1alpha1\nkind: HeaderPolicy\nmetadata: {name: bad, namespace: default}\nspec:\n  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: extra}]\n  headers:\n    request: {removeMatching: [\"(\"]}\n"
    )
    .unwrap();
    let bad = object_until(&api, &["headerpolicy", "bad"], "refused", |p| {
        condition(&p["status"]["conditions"], "Accepted")["status"] == "False"
    })
    .await;
    let message = condition(&bad["status"]["conditions"], "Accepted")["message"].clone();
    assert!(
        message.as_str().unwrap().contains("removeMatching"),
        "{message}"
    );
    until(
        port,
        "/",
        &[("host", "extra.example"), ("x-user-id", "e")],
        "500",
        |r| r.status == 500,
    )
    .await;
    assert_eq!(
        get(port, "/", &[("x-user-id", "f")]).await.unwrap().status,
        200
    );

    // The Gateway goes, and so does its infrastructure.
    api.kubectl_ok(&["delete", "gateway", "eg", "-n", "default"])
        .unwrap();
    let started = Instant::now();
    loop {
        let left: Vec<&str> = ["deployment", "service", "serviceaccount", "configmap"]
            .into_iter()
            .filter(|kind| {
                api.kubectl_ok(&["get", kind, &envoy, "-n", NAMESPACE])
                    .is_ok()
            })
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{left:?} of the deleted Gateway still there after 20 s:\n{}",
            controller.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(kubelet.sync(&api).await.unwrap().is_empty());
}
