//! The stand-ins for what our test API server does not serve
//! (`e2e::kube_stand_in`): core/v1 and apps/v1 kinds as CRDs behind a proxy
//! that serves them at their real URLs, and authorization answered from the
//! stored RBAC objects. These tests hold the stand-ins to what the
//! controller's tests rely on: a real install manifest applies server-side
//! and reads back as `v1` / `apps/v1`, status is writable through `/status`,
//! a typed kube-rs watch streams, and an identity gets what its Roles grant
//! (a real 403 otherwise), RBAC changes included.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a broken setup should fail the test loudly

use std::path::Path;
use std::time::{Duration, Instant};

use e2e::kube_apiserver::KubeApiServer;
use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt as _;
use serde_json::Value;

/// An install manifest of the shape a controller ships: its namespace,
/// identity, RBAC, configuration, Deployment and Service.
const INSTALL: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: tollgate-system
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: tollgate
  namespace: tollgate-system
---
apiVersion: v1
kind: Secret
metadata:
  name: xds-tls
  namespace: tollgate-system
type: kubernetes.io/tls
data:
  tls.crt: Y2VydA==
  tls.key: a2V5
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: tollgate
  namespace: tollgate-system
data:
  log: info
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: tollgate
rules:
- apiGroups: [gateway.networking.k8s.io]
  resources: [gatewayclasses, gateways, httproutes]
  verbs: [get, list, watch]
- apiGroups: [gateway.networking.k8s.io]
  resources: [gatewayclasses/status, gateways/status, httproutes/status]
  verbs: [update, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: tollgate
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: tollgate
subjects:
- kind: ServiceAccount
  name: tollgate
  namespace: tollgate-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: tollgate
  namespace: tollgate-system
rules:
- apiGroups: [""]
  resources: [services, secrets]
  verbs: [get, list, watch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, update, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: tollgate
  namespace: tollgate-system
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: tollgate
subjects:
- kind: ServiceAccount
  name: tollgate
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: tollgate
  namespace: tollgate-system
  labels: {app: tollgate}
spec:
  replicas: 1
  selector:
    matchLabels: {app: tollgate}
  template:
    metadata:
      labels: {app: tollgate}
    spec:
      serviceAccountName: tollgate
      containers:
      - name: tollgate
        image: tollgate:test
        args: [serve, --provider, kubernetes]
---
apiVersion: v1
kind: Service
metadata:
  name: tollgate
  namespace: tollgate-system
spec:
  type: LoadBalancer
  selector: {app: tollgate}
  ports:
  - {name: xds, port: 18000, targetPort: 18000}
"#;

/// `kubectl get ARGS -o json` as admin.
fn get(api: &KubeApiServer, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend(["-o", "json"]);
    serde_json::from_str(&api.kubectl_ok(&all).unwrap()).unwrap()
}

/// Runs kubectl as the identity of `kubeconfig`: `Ok(stdout)` or `Err(stderr)`.
fn kubectl_as(api: &KubeApiServer, kubeconfig: &Path, args: &[&str]) -> Result<String, String> {
    let out = api.kubectl_with(kubeconfig, args).unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test]
async fn an_install_manifest_applies_server_side_and_reads_back_as_v1_and_apps_v1() {
    let started = Instant::now();
    let api = KubeApiServer::start().unwrap();
    eprintln!("KubeApiServer::start took {:?}", started.elapsed());

    let out = api.apply(INSTALL).unwrap();
    for applied in [
        "namespace/tollgate-system",
        "serviceaccount/tollgate",
        "secret/xds-tls",
        "configmap/tollgate",
        "clusterrole.rbac.authorization.k8s.io/tollgate",
        "rolebinding.rbac.authorization.k8s.io/tollgate",
        "deployment.apps/tollgate",
        "service/tollgate",
    ] {
        assert!(
            out.contains(&format!("{applied} serverside-applied")),
            "{applied} missing in:\n{out}"
        );
    }

    let ns = ["-n", "tollgate-system"];
    for (kind, name, api_version) in [
        ("service", "tollgate", "v1"),
        ("secret", "xds-tls", "v1"),
        ("configmap", "tollgate", "v1"),
        ("serviceaccount", "tollgate", "v1"),
        ("deployment", "tollgate", "apps/v1"),
    ] {
        let object = get(&api, &[kind, name, ns[0], ns[1], "--show-managed-fields"]);
        assert_eq!(object["apiVersion"], api_version, "{kind}: {object:#}");
        // (A ServiceAccount with no fields but its name has none.)
        let managed = object["metadata"]["managedFields"].as_array();
        for entry in managed.into_iter().flatten() {
            assert_eq!(entry["apiVersion"], api_version, "{kind}: {entry:#}");
        }
    }
    let namespace = get(&api, &["namespace", "tollgate-system"]);
    assert_eq!(namespace["apiVersion"], "v1");
    assert_eq!(namespace["kind"], "Namespace");
    let secret = get(&api, &["secret", "xds-tls", "-n", "tollgate-system"]);
    assert_eq!(secret["data"]["tls.key"], "a2V5");
    let list = get(&api, &["services", "-A"]);
    assert_eq!(list["apiVersion"], "v1");
    assert_eq!(list["items"][0]["apiVersion"], "v1");
    // Table output (the server's columns) works too.
    let table = api
        .kubectl_ok(&["get", "deployments,services", "-n", "tollgate-system"])
        .unwrap();
    assert!(table.contains("deployment.apps/tollgate"), "{table}");

    // The test plays kubelet and load balancer: status goes through /status,
    // and a status write leaves the spec alone.
    api.kubectl_ok(&[
        "patch",
        "deployment",
        "tollgate",
        "-n",
        "tollgate-system",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":1,"availableReplicas":1}}"#,
    ])
    .unwrap();
    api.kubectl_ok(&[
        "patch",
        "service",
        "tollgate",
        "-n",
        "tollgate-system",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"loadBalancer":{"ingress":[{"ip":"127.0.0.1"}]}}}"#,
    ])
    .unwrap();
    let deployment = get(&api, &["deployment", "tollgate", "-n", "tollgate-system"]);
    assert_eq!(deployment["status"]["availableReplicas"], 1);
    assert_eq!(deployment["spec"]["replicas"], 1);
    let service = get(&api, &["service", "tollgate", "-n", "tollgate-system"]);
    assert_eq!(
        service["status"]["loadBalancer"]["ingress"][0]["ip"],
        "127.0.0.1"
    );
    // A spec write through the main resource does not touch status.
    api.kubectl_ok(&[
        "patch",
        "deployment",
        "tollgate",
        "-n",
        "tollgate-system",
        "-p",
        r#"{"spec":{"replicas":2}}"#,
    ])
    .unwrap();
    let deployment = get(&api, &["deployment", "tollgate", "-n", "tollgate-system"]);
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(deployment["status"]["availableReplicas"], 1);

    // Strict field validation still refuses a top-level typo.
    let typo = api.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: typo, namespace: tollgate-system}\ndatta: {a: b}\n",
    );
    let error = typo.unwrap_err().to_string();
    assert!(error.contains("datta"), "{error}");
}

type Events = futures_util::stream::BoxStream<'static, watcher::Result<Event<Service>>>;

/// The watch's next event (bounded: 20 s). Errors are retried (with the
/// watcher's backoff): in the first seconds a kind's storage may still be
/// initializing (429).
async fn next_event(events: &mut Events) -> Event<Service> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Err(_) => panic!("no watch event in 20 s"),
            Ok(None) => panic!("the watch ended"),
            Ok(Some(Ok(event))) => return event,
            Ok(Some(Err(e))) => eprintln!("watch error (retried): {e}"),
        }
    }
}

#[tokio::test]
async fn a_typed_watch_of_services_sees_one_applied_and_then_its_deletion() {
    let api = KubeApiServer::start().unwrap();
    let file = kube::config::Kubeconfig::read_from(&api.kubeconfig).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let services: Api<Service> = Api::namespaced(client, "default");
    let mut events: Events = watcher::watcher(services, watcher::Config::default())
        .default_backoff()
        .boxed();
    // The initial (empty) list.
    loop {
        if let Event::InitDone = next_event(&mut events).await {
            break;
        }
    }
    api.apply(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec:\n  ports: [{port: 80}]\n",
    )
    .unwrap();
    let applied: Service = loop {
        if let Event::Apply(service) = next_event(&mut events).await {
            break service;
        }
    };
    assert_eq!(applied.metadata.name.as_deref(), Some("web"));
    let port = &applied.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
    assert_eq!(port.port, 80);

    api.kubectl_ok(&["delete", "service", "web", "-n", "default", "--wait=false"])
        .unwrap();
    let deleted: Service = loop {
        if let Event::Delete(service) = next_event(&mut events).await {
            break service;
        }
    };
    assert_eq!(deleted.metadata.name.as_deref(), Some("web"));
}

#[tokio::test]
async fn a_role_for_services_in_one_namespace_allows_just_that_and_a_merged_grant_takes_effect() {
    let api = KubeApiServer::start().unwrap();
    api.apply(
        r#"apiVersion: v1
kind: Secret
metadata: {name: s, namespace: a}
data: {k: dg==}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: a}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: b}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: a}
rules:
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader, namespace: a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects:
- {kind: ServiceAccount, name: ctl, namespace: a}
"#,
    )
    .unwrap();
    let sa = api
        .kubeconfig_for(
            "system:serviceaccount:a:ctl",
            &[
                "system:serviceaccounts",
                "system:serviceaccounts:a",
                "system:authenticated",
            ],
        )
        .unwrap();

    let listed = kubectl_as(&api, &sa, &["get", "services", "-n", "a", "-o", "name"]).unwrap();
    assert_eq!(listed.trim(), "service/web");
    kubectl_as(&api, &sa, &["get", "service", "web", "-n", "a"]).unwrap();
    let forbidden = |args: &[&str]| {
        let error = kubectl_as(&api, &sa, args).unwrap_err();
        assert!(
            error.contains("Forbidden") && !error.contains("stand-in"),
            "{args:?}: {error}"
        );
        error
    };
    let secrets = forbidden(&["get", "secrets", "-n", "a"]);
    assert!(
        secrets.contains(r#"User "system:serviceaccount:a:ctl" cannot list resource "secrets" in API group "" in the namespace "a""#),
        "{secrets}"
    );
    forbidden(&["get", "services", "-n", "b"]);
    forbidden(&["delete", "service", "web", "-n", "a"]);
    forbidden(&["get", "deployments", "-n", "a"]);

    // A merge of RBAC (server-side apply of the Role with one more rule)
    // takes effect within about a second.
    api.apply(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: reader, namespace: a}\nrules:\n- apiGroups: [\"\"]\n  resources: [services, secrets]\n  verbs: [get, list, watch]\n",
    )
    .unwrap();
    let granted = Instant::now();
    loop {
        match kubectl_as(&api, &sa, &["get", "secrets", "-n", "a", "-o", "name"]) {
            Ok(names) => {
                assert_eq!(names.trim(), "secret/s");
                break;
            }
            Err(error) if granted.elapsed() < Duration::from_secs(2) => {
                assert!(error.contains("Forbidden"), "{error}");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(error) => panic!("still refused 2 s after the grant: {error}"),
        }
    }
    eprintln!("the grant took effect after {:?}", granted.elapsed());
    // Still nothing in namespace b.
    forbidden(&["get", "secrets", "-n", "b"]);
}
