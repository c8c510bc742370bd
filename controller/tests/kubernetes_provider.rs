//! `tollgate serve --provider kubernetes` against a real Kubernetes API server
//! (etcd and the API server built from Debian's sources, the Gateway API
//! v1.6.1 CRDs, kubectl: `e2e::kube_apiserver`) and a real Envoy from
//! `tollgate bootstrap` (`--provision none`). The routes answer with a
//! RequestRedirect, so no backend is needed. Stand-ins (named in their
//! modules): the leader Lease, a CRD at the real `coordination.k8s.io` URL,
//! and core/v1 behind `e2e::kube_stand_in`'s proxy. Tollgate's policy CRDs
//! are not installed at first: the provider reads those kinds as empty until
//! they are.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a broken setup should fail the test loudly

mod kube;

use std::path::Path;
use std::time::{Duration, Instant};

use e2e::gateway::{free_port, Gateway, Options, Replica};
use e2e::kube_apiserver::KubeApiServer;
use kube::{condition, object_until, parent};
use serde_json::Value;

const OTHER_CONTROLLER: &str = "example.com/other-controller";

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

/// A test API server holding the objects (redirecting to `to`), their
/// Gateway's port, and `serve`'s options for it: `--provision none` (each
/// test runs its own Envoy from `tollgate bootstrap`, as users of that
/// flag do) and `more` flags.
fn cluster_with_objects(to: &str, more: &[&str]) -> (KubeApiServer, u16, Options) {
    let api = KubeApiServer::start().unwrap();
    let port = free_port().unwrap();
    api.apply(&objects(port, to)).unwrap();
    let mut serve_args: Vec<String> = vec!["--provision".into(), "none".into()];
    serve_args.extend(more.iter().map(|a| (*a).to_owned()));
    let options = Options {
        kubeconfig: Some(api.kubeconfig.clone()),
        serve_args,
        ..Options::default()
    };
    (api, port, options)
}

/// The CRDs of `tollgate manifests install`, alone.
fn policy_crds() -> String {
    let install = std::process::Command::new(bin())
        .args(["manifests", "install"])
        .output()
        .unwrap();
    assert!(install.status.success());
    String::from_utf8(install.stdout)
        .unwrap()
        .split("\n---\n")
        .filter(|doc| doc.contains("\nkind: CustomResourceDefinition"))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// Whether our parent entry of `route` says Accepted for `generation`.
fn route_accepted_at(route: &Value, generation: i64) -> bool {
    let accepted = condition(
        &parent(route, "tollgate.dev/gateway-controller")["conditions"],
        "Accepted",
    );
    accepted["status"] == "True" && accepted["observedGeneration"] == generation
}

#[tokio::test]
async fn objects_applied_with_kubectl_are_served_their_edits_follow_and_a_bad_one_costs_only_itself(
) {
    let (api, port, options) = cluster_with_objects("new.example", &[]);
    // Another controller's Gateway also parents the route; its entry in the
    // route's status is its own.
    api.kubectl_ok(&[
        "patch", "httproute", "moved", "--subresource=status", "--type=merge", "-p",
        &format!(r#"{{"status":{{"parents":[{{"parentRef":{{"name":"theirs"}},"controllerName":"{OTHER_CONTROLLER}","conditions":[{{"type":"Accepted","status":"True","reason":"Accepted","message":"","lastTransitionTime":"2026-01-01T00:00:00Z"}}]}}]}}}}"#),
    ])
    .unwrap();
    let gw = Gateway::start_with(bin(), &[], &options).await.unwrap();
    let location = location_becomes(port, "old.example", "http://new.example").await;
    assert_eq!(location, format!("http://new.example:{port}/a"));

    // Status is written back: the class accepted, the Gateway programmed
    // once its Envoy accepted the configuration, the route's parents ours
    // beside the other controller's.
    object_until(&api, &["gatewayclass", "tollgate"], "Accepted", |c| {
        condition(&c["status"]["conditions"], "Accepted")["status"] == "True"
    })
    .await;
    let gateway = object_until(&api, &["gateway", "eg"], "Programmed", |g| {
        condition(&g["status"]["conditions"], "Programmed")["status"] == "True"
    })
    .await;
    assert_eq!(
        gateway["status"]["listeners"][0]["attachedRoutes"], 1,
        "{gateway:#}"
    );
    let route = object_until(&api, &["httproute", "moved"], "Accepted by us", |r| {
        route_accepted_at(r, 1)
    })
    .await;
    assert_eq!(
        parent(&route, OTHER_CONTROLLER)["parentRef"]["name"],
        "theirs",
        "{route:#}"
    );
    let accepted_since = condition(
        &parent(&route, "tollgate.dev/gateway-controller")["conditions"],
        "Accepted",
    )["lastTransitionTime"]
        .clone();
    assert_eq!(gw.metric("tollgate_leader").await.unwrap(), 1);

    // An edit through the API server reaches Envoy without a restart; its
    // status follows, the condition's transition time kept (it did not flip).
    tokio::time::sleep(Duration::from_millis(1100)).await; // a new second
    api.apply(&objects(port, "newer.example")).unwrap();
    location_becomes(port, "old.example", "http://newer.example").await;
    let route = object_until(
        &api,
        &["httproute", "moved"],
        "Accepted at generation 2",
        |r| route_accepted_at(r, 2),
    )
    .await;
    let ours = &parent(&route, "tollgate.dev/gateway-controller")["conditions"];
    assert_eq!(
        condition(ours, "Accepted")["lastTransitionTime"],
        accepted_since
    );
    assert_eq!(
        parent(&route, OTHER_CONTROLLER)["parentRef"]["name"],
        "theirs",
        "{route:#}"
    );

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
    let odd = object_until(&api, &["gateway", "odd"], "refused", |g| {
        condition(&g["status"]["conditions"], "Accepted")["reason"] == "UnsupportedValue"
    })
    .await;
    let message = condition(&odd["status"]["conditions"], "Accepted")["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("unknown field `options`"), "{message}");

    // The controller read every kind the server serves, and knows which it
    // does not (Tollgate's policies here: their CRDs are not installed).
    let log = gw.serve_log();
    assert!(
        log.contains("the API server does not serve HeaderPolicy"),
        "{log}"
    );
    assert!(log.contains("every kind listed"), "{log}");

    // Installed later, the CRDs are read: a policy applied then gets its
    // status from the controller.
    api.apply(&policy_crds()).unwrap();
    api.kubectl_ok(&[
        "wait",
        "--for",
        "condition=Established",
        "crd/headerpolicies.tollgate.dev",
        "--timeout=20s",
    ])
    .unwrap();
    api.apply("apiVersion: tollgate.dev/v1alpha1\nkind: HeaderPolicy\nmetadata: {name: later, namespace: default}\nspec:\n  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: moved}]\n  headers:\n    response: {set: [{name: x-later, value: \"yes\"}]}\n")
        .unwrap();
    object_until(&api, &["headerpolicy", "later"], "Accepted", |p| {
        condition(&p["status"]["conditions"], "Accepted")["status"] == "True"
    })
    .await;
    let status = gw.admin("/status").await.unwrap().1;
    assert!(status.contains("name: moved"), "{status}");
}

/// Two replicas: the first leads and writes; killed without a word (no
/// release of the Lease), the second takes over once the Lease expires and
/// writes the route edited meanwhile (no write lost), and nothing else: the
/// statuses the server already holds are not written again (none doubled).
#[tokio::test]
async fn when_the_leader_dies_the_other_replica_takes_over_and_writes_only_what_changed() {
    let (api, port, options) = cluster_with_objects("new.example", &["--lease-duration", "2"]);
    let mut first = Gateway::start_with(bin(), &[], &options).await.unwrap();
    object_until(&api, &["gateway", "eg"], "Programmed", |g| {
        condition(&g["status"]["conditions"], "Programmed")["status"] == "True"
    })
    .await;
    object_until(&api, &["httproute", "moved"], "Accepted", |r| {
        route_accepted_at(r, 1)
    })
    .await;
    let second = Replica::start(bin(), &options).await.unwrap();
    // Two renewals later, the first still leads and the second has written nothing.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(first.metric("tollgate_leader").await.unwrap(), 1);
    assert_eq!(second.metric("tollgate_leader").await.unwrap(), 0);
    let version = |object: &[&str]| {
        let args = [
            &["get"],
            object,
            &["-o", "jsonpath={.metadata.resourceVersion}"],
        ]
        .concat();
        api.kubectl_ok(&args).unwrap()
    };
    let (class_version, gateway_version) = (
        version(&["gatewayclass", "tollgate"]),
        version(&["gateway", "eg"]),
    );

    first.kill_serve().unwrap();
    api.apply(&objects(port, "newer.example")).unwrap();
    object_until(
        &api,
        &["httproute", "moved"],
        "Accepted at generation 2 by the new leader",
        |r| route_accepted_at(r, 2),
    )
    .await;
    assert_eq!(
        second.metric("tollgate_leader").await.unwrap(),
        1,
        "{}",
        second.log()
    );
    let writes =
        |kind: &str| format!("tollgate_status_writes_total{{kind=\"{kind}\",result=\"ok\"}}");
    assert_eq!(
        second.metric(&writes("HTTPRoute")).await.unwrap(),
        1,
        "{}",
        second.log()
    );
    assert_eq!(second.metric(&writes("Gateway")).await.unwrap(), 0);
    assert_eq!(second.metric(&writes("GatewayClass")).await.unwrap(), 0);
    assert_eq!(version(&["gatewayclass", "tollgate"]), class_version);
    assert_eq!(version(&["gateway", "eg"]), gateway_version);
}

/// The API server restarts (an upgrade, a crash): the controller's watches
/// break, the last good configuration keeps serving, and once the server is
/// back the watches resume and an edit made then is served and its status
/// written.
#[tokio::test]
async fn after_the_api_server_restarts_the_controller_reconnects_and_serves_edits() {
    let (mut api, port, options) = cluster_with_objects("new.example", &[]);
    let gw = Gateway::start_with(bin(), &[], &options).await.unwrap();
    location_becomes(port, "old.example", "http://new.example").await;

    api.restart().unwrap();
    // Envoy kept its configuration throughout.
    location_becomes(port, "old.example", "http://new.example").await;
    api.apply(&objects(port, "newer.example")).unwrap();
    location_becomes(port, "old.example", "http://newer.example").await;
    object_until(
        &api,
        &["httproute", "moved"],
        "Accepted at generation 2",
        |r| route_accepted_at(r, 2),
    )
    .await;
    assert_eq!(
        gw.metric("tollgate_leader").await.unwrap(),
        1,
        "{}",
        gw.serve_log()
    );
}

/// An Envoy talks to the replica that does not lead: that replica lists the
/// Gateway as running (its ConfigMap), and the leader, which sees none of
/// that Envoy's ACKs itself, writes `Programmed` from the list.
#[tokio::test]
async fn a_gateway_whose_envoy_talks_to_a_follower_is_programmed_by_the_leader() {
    let (api, port, options) = cluster_with_objects("new.example", &[]);
    let leader = Replica::start(bin(), &options).await.unwrap();
    let started = Instant::now();
    while leader.metric("tollgate_leader").await.unwrap() != 1 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{}",
            leader.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let follower = Gateway::start_with(bin(), &[], &options).await.unwrap();
    location_becomes(port, "old.example", "http://new.example").await;
    object_until(&api, &["gateway", "eg"], "Programmed", |g| {
        condition(&g["status"]["conditions"], "Programmed")["status"] == "True"
    })
    .await;
    assert_eq!(follower.metric("tollgate_leader").await.unwrap(), 0);
    let writes = "tollgate_status_writes_total{kind=\"Gateway\",result=\"ok\"}";
    assert_eq!(
        follower.metric(writes).await.unwrap(),
        0,
        "only the leader writes"
    );
    assert!(leader.metric(writes).await.unwrap() >= 1);
}
