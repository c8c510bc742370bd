//! The install (`tollgate manifests install`) and the Kubernetes quickstart
//! (`examples/kubernetes/quickstart.yaml`) against a real Kubernetes API
//! server, and the install's RBAC put to work: `tollgate serve --provider
//! kubernetes` run under the install's ServiceAccount identity.
//!
//! Real: the API server and etcd (`e2e::kube_apiserver`), the Gateway API
//! v1.6.1 CRDs, kubectl and its server-side apply, our four policy CRDs with
//! their schemas, `tollgate serve`. **Stand-ins** (`e2e::kube_stand_in`):
//! the core and apps kinds (Namespace, ServiceAccount, Service, Secret,
//! ConfigMap, Deployment) as CRDs behind a proxy at their real URLs, without
//! core validation or defaulting; the RBAC kinds, the Lease and
//! EndpointSlice as CRDs at their real URLs; authorization answered by that
//! proxy from the stored RBAC objects, so a missing rule is a real 403 from
//! the API server; the controller's identity is a client certificate for
//! `system:serviceaccount:tollgate-system:tollgate` instead of a token.
//! Nothing runs Pods: the test starts the controller itself, with the
//! Deployment's own arguments but for the listen addresses (free ports).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a broken setup should fail the test loudly

mod kube;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::gateway::{Options, Replica};
use e2e::kube_apiserver::KubeApiServer;
use kube::{condition, object_until};
use serde_json::Value;

const SERVICE_ACCOUNT: &str = "system:serviceaccount:tollgate-system:tollgate";
const SERVICE_ACCOUNT_GROUPS: [&str; 3] = [
    "system:serviceaccounts",
    "system:serviceaccounts:tollgate-system",
    "system:authenticated",
];
const POLICIES: [(&str, &str); 4] = [
    ("ratelimitpolicy", "per-user"),
    ("jwtpolicy", "private-jwt"),
    ("headerpolicy", "served-by"),
    ("canarypolicy", "testers"),
];

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tollgate"))
}

fn quickstart() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/kubernetes/quickstart.yaml")
}

/// `tollgate manifests install`'s output.
fn install_yaml() -> String {
    let out = Command::new(bin())
        .args(["manifests", "install"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The install's documents, parsed.
fn install_documents(yaml: &str) -> Vec<Value> {
    yaml.split("\n---\n")
        .map(|doc| serde_yaml_ng::from_str(doc).unwrap())
        .collect()
}

fn document<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter().find(|d| d["kind"] == kind).unwrap()
}

fn to_yaml(object: &Value) -> String {
    serde_yaml_ng::to_string(object).unwrap()
}

/// Applies the install and waits until its CRDs serve; the install's YAML
/// and what kubectl said.
fn apply_install(api: &KubeApiServer) -> (String, String) {
    let yaml = install_yaml();
    let applied = api.apply(&yaml).unwrap();
    api.kubectl_ok(&[
        "wait",
        "--for",
        "condition=Established",
        "crd/ratelimitpolicies.tollgate.dev",
        "crd/jwtpolicies.tollgate.dev",
        "crd/headerpolicies.tollgate.dev",
        "crd/canarypolicies.tollgate.dev",
        "--timeout=60s",
    ])
    .unwrap();
    (yaml, applied)
}

/// Whether an object's `status.conditions` say Accepted.
fn accepted(object: &Value) -> bool {
    accepted_in(&object["status"]["conditions"])
}

fn accepted_in(conditions: &Value) -> bool {
    condition(conditions, "Accepted")["status"] == "True"
}

/// A metric of `replica` polled (bounded: 30 s) until `done`.
async fn metric_until(replica: &Replica, sample: &str, done: impl Fn(u64) -> bool) -> u64 {
    let started = Instant::now();
    let mut last = 0;
    while started.elapsed() < Duration::from_secs(30) {
        last = replica.metric(sample).await.unwrap();
        if done(last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{sample} still {last} after 30 s; log:\n{}", replica.log());
}

#[test]
fn the_quickstart_passes_tollgate_validate_with_every_policy_accepted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(quickstart(), dir.path().join("quickstart.yaml")).unwrap();
    let validate = Command::new(bin())
        .arg("validate")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&validate.stdout);
    assert!(validate.status.success(), "{stdout}");
    assert!(stdout.contains("no problems"), "{stdout}");
    let translate = Command::new(bin())
        .args(["translate", "--type", "status"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(translate.status.success());
    let status: Value = serde_yaml_ng::from_slice(&translate.stdout).unwrap();
    let policies = status["status"]["policies"].as_array().unwrap();
    let mut kinds: Vec<&str> = policies
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "CanaryPolicy",
            "HeaderPolicy",
            "JWTPolicy",
            "RateLimitPolicy"
        ]
    );
    for policy in policies {
        assert_eq!(
            condition(&policy["conditions"], "Accepted")["reason"],
            "Accepted",
            "{policy:#?}"
        );
    }
}

#[tokio::test]
async fn the_install_and_the_quickstart_apply_cleanly_and_a_misspelt_policy_field_is_refused_by_name(
) {
    let api = KubeApiServer::start().unwrap();
    let (_, applied) = apply_install(&api);
    for object in [
        "namespace/tollgate-system serverside-applied",
        "customresourcedefinition.apiextensions.k8s.io/jwtpolicies.tollgate.dev serverside-applied",
        "clusterrole.rbac.authorization.k8s.io/tollgate serverside-applied",
        "deployment.apps/tollgate serverside-applied",
        "service/tollgate serverside-applied",
    ] {
        assert!(applied.contains(object), "{applied}");
    }
    // Applying it again (an upgrade to the same version) is clean too.
    apply_install(&api);
    let deployment: Value = serde_json::from_str(
        &api.kubectl_ok(&[
            "-n",
            "tollgate-system",
            "get",
            "deployment",
            "tollgate",
            "-o",
            "json",
        ])
        .unwrap(),
    )
    .unwrap();
    assert_eq!(deployment["spec"]["replicas"], 2, "{deployment:#}");

    let quickstart = std::fs::read_to_string(quickstart()).unwrap();
    let applied = api.apply(&quickstart).unwrap();
    for object in [
        "gatewayclass.gateway.networking.k8s.io/tollgate serverside-applied",
        "gateway.gateway.networking.k8s.io/eg serverside-applied",
        "deployment.apps/echo serverside-applied",
        "service/echo serverside-applied",
        "httproute.gateway.networking.k8s.io/echo serverside-applied",
    ] {
        assert!(applied.contains(object), "{applied}");
    }
    for (kind, name) in POLICIES {
        api.kubectl_ok(&["get", kind, name]).unwrap();
    }

    // The CRD's schema is the filter's config type: a misspelt field is
    // refused by the API server, which names it.
    let misspelt = "apiVersion: tollgate.dev/v1alpha1\nkind: RateLimitPolicy\nmetadata: {name: misspelt, namespace: default}\nspec:\n  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: echo}]\n  rateLimit:\n    local:\n      rules:\n      - limit: {requets: 5, unit: Minute}\n";
    let refused = api.apply(misspelt).unwrap_err().to_string();
    assert!(
        refused
            .contains(".spec.rateLimit.local.rules[0].limit.requets: field not declared in schema"),
        "{refused}"
    );
    assert!(
        api.kubectl_ok(&["get", "ratelimitpolicy", "misspelt"])
            .is_err(),
        "a refused policy must not exist"
    );
}

#[tokio::test]
async fn the_install_s_rbac_lets_the_controller_read_lead_and_write_status_and_a_missing_rule_is_a_403_it_reports(
) {
    let api = KubeApiServer::start().unwrap();
    let (install, _) = apply_install(&api);
    let docs = install_documents(&install);
    api.apply(&std::fs::read_to_string(quickstart()).unwrap())
        .unwrap();

    // The controller as the install's ServiceAccount, with the Deployment's
    // own arguments but for the addresses (the harness picks free ports).
    let deployment = document(&docs, "Deployment");
    let container_args: Vec<String> = deployment["spec"]["template"]["spec"]["containers"][0]
        ["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    let mut serve_args = vec!["--namespace".to_owned(), "tollgate-system".to_owned()];
    let mut args = container_args.iter().skip(1); // `serve`
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--provider" | "--xds-listen" | "--admin" => {
                args.next();
            }
            _ => serve_args.push(arg.clone()),
        }
    }
    let kubeconfig = api
        .kubeconfig_for(SERVICE_ACCOUNT, &SERVICE_ACCOUNT_GROUPS)
        .unwrap();
    let options = Options {
        kubeconfig: Some(kubeconfig),
        serve_args,
        ..Options::default()
    };
    // Ready means every kind was listed: the read rules suffice.
    let controller = Replica::start(bin(), &options).await.unwrap();
    let log = controller.log();
    assert!(log.contains("every kind listed"), "{log}");
    assert!(!log.contains("forbidden"), "{log}");

    // It wins the Lease and writes status: the class, the Gateway, the
    // route's parents and every policy (each a rule of the ClusterRole).
    metric_until(&controller, "tollgate_leader", |v| v == 1).await;
    object_until(&api, &["gatewayclass", "tollgate"], "Accepted", accepted).await;
    object_until(&api, &["gateway", "eg"], "Accepted", accepted).await;
    object_until(&api, &["httproute", "echo"], "given parents", |r| {
        r["status"]["parents"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| accepted_in(&p["conditions"])))
    })
    .await;
    for (kind, name) in POLICIES {
        object_until(&api, &[kind, name], "Accepted", accepted).await;
    }
    // The Envoy of Gateway eg, provisioned in its namespace (the Role).
    let started = Instant::now();
    loop {
        let provisioned = api
            .kubectl_ok(&[
                "-n",
                "tollgate-system",
                "get",
                "deployment,service,serviceaccount,configmap",
                "-l",
                "gateway.tollgate.dev/namespace=default,gateway.tollgate.dev/name=eg",
                "-o",
                "name",
            ])
            .unwrap();
        if provisioned.lines().count() == 4 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not provisioned after 30 s: {provisioned:?}\n{}",
            controller.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Its xDS certificates, made into Secrets of its namespace (the Role).
    for secret in ["tollgate-xds-server", "tollgate-xds-client"] {
        api.kubectl_ok(&["-n", "tollgate-system", "get", "secret", secret])
            .unwrap();
    }
    let log = controller.log();
    assert!(!log.contains("forbidden"), "{log}");

    // Without `gateways/status` in the ClusterRole, a Gateway's status write
    // is a 403 from the API server, which the controller counts and logs.
    let mut cluster_role = document(&docs, "ClusterRole").clone();
    for rule in cluster_role["rules"].as_array_mut().unwrap() {
        if let Some(resources) = rule["resources"].as_array_mut() {
            resources.retain(|r| r != "gateways/status");
        }
    }
    api.apply(&to_yaml(&cluster_role)).unwrap();
    // The API server keeps an authorization answer for 500 ms
    // (`e2e::kube_apiserver`): the last allowed write must not stand in.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let errors_before = controller
        .metric(r#"tollgate_status_writes_total{kind="Gateway",result="error"}"#)
        .await
        .unwrap();
    // A second listener changes the Gateway's status.
    api.apply("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: eg, namespace: default}\nspec:\n  gatewayClassName: tollgate\n  listeners:\n  - {name: http, protocol: HTTP, port: 8080}\n  - {name: other, protocol: HTTP, port: 8081}\n")
        .unwrap();
    metric_until(
        &controller,
        r#"tollgate_status_writes_total{kind="Gateway",result="error"}"#,
        |v| v > errors_before,
    )
    .await;
    let log = controller.log();
    let refused = log
        .lines()
        .find(|l| l.contains("writing status") && l.contains("forbidden"))
        .unwrap_or_else(|| panic!("no 403 logged:\n{log}"));
    assert!(refused.contains("gateways/status"), "{refused}");
    assert!(refused.contains(SERVICE_ACCOUNT), "{refused}");

    // The rule back, the write goes through on the writer's next attempt.
    api.apply(&to_yaml(document(&docs, "ClusterRole"))).unwrap();
    object_until(&api, &["gateway", "eg"], "given both listeners", |g| {
        g["status"]["listeners"]
            .as_array()
            .is_some_and(|l| l.len() == 2)
    })
    .await;
}
