//! `tollgate manifests install`: the multi-document YAML that installs
//! Tollgate on a cluster with `kubectl apply --server-side -f`. It is printed
//! by the binary it installs, so the manifest, the CRDs and the RBAC always
//! match that build: `make build` writes it to `dist/install.yaml`.
//!
//! The RBAC is made from the controller's own tables, so it cannot drift
//! from what the code does: read access to every kind
//! [`kinds`](crate::serve::kubernetes::kinds) watches, and status writes for
//! the kinds the status writer writes (the Gateway API kinds and Tollgate's
//! own policies, not Envoy Gateway's: [`status_resources`]). What the controller does in its own
//! namespace (its leader Lease, its xDS certificates, one Envoy per Gateway)
//! is a Role there, not cluster-wide.
//!
//! The objects are `serde_json` values, so the YAML reads like the
//! Kubernetes documentation; a unit test round-trips each built-in one
//! through its `k8s-openapi` type, which drops (and so catches) a misspelt
//! field. Keys come out sorted: the output is the same on every run.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use serde_json::{json, Value};

use super::crds;
use crate::resources::policies::{PolicyKind, TOLLGATE_GROUP};
use crate::serve::kubernetes::kinds;
use crate::serve::leader::LEASE_NAME;
use crate::serve::provision::{DEFAULT_ENVOY_IMAGE, DEFAULT_TOLLGATE_IMAGE as DEFAULT_IMAGE};
use crate::serve::status_writer::GATEWAY_API_KINDS;

/// The controller's name: its namespace's ServiceAccount, ClusterRole, Role,
/// bindings, Deployment and Service.
pub const NAME: &str = "tollgate";
pub const DEFAULT_NAMESPACE: &str = "tollgate-system";
/// The port provisioned Envoys reach xDS on (`tollgate.<namespace>.svc`).
pub const XDS_PORT: i32 = 18000;
/// `/healthz`, `/readyz`, `/metrics`, `/status`.
pub const ADMIN_PORT: i32 = 19000;
/// "nonroot" of distroless images; the Dockerfile's user.
const USER: i64 = 65532;
const GATEWAY_API: &str = "gateway.networking.k8s.io";

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The Tollgate image: the controller, and the filters the Envoy pods copy from it.
    #[arg(long, default_value = DEFAULT_IMAGE, value_parser = non_empty)]
    pub image: String,
    /// The namespace of the controller and of the Envoys it provisions.
    #[arg(long, default_value = DEFAULT_NAMESPACE, value_parser = dns_label)]
    pub namespace: String,
    /// The Envoy image of the provisioned Envoys (the version the filters are built and tested for).
    #[arg(long, default_value = DEFAULT_ENVOY_IMAGE, value_parser = non_empty)]
    pub envoy_image: String,
}

impl Default for Args {
    fn default() -> Args {
        Args {
            image: DEFAULT_IMAGE.to_owned(),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            envoy_image: DEFAULT_ENVOY_IMAGE.to_owned(),
        }
    }
}

/// One object of the install and the comment line above it.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub about: String,
    pub object: Value,
}

/// Prints the install to stdout.
pub fn run(args: &Args) -> Result<()> {
    let text = render(&documents(args))?;
    let mut out = std::io::stdout().lock();
    std::io::Write::write_all(&mut out, text.as_bytes()).context("writing the install to stdout")
}

/// The install's objects, in the order they must be applied: the
/// namespace before what lives in it, the CRDs before anything could use
/// them, the RBAC before the controller that needs it.
pub fn documents(args: &Args) -> Vec<Document> {
    let ns = args.namespace.as_str();
    let mut docs = vec![doc(
        "the controller's namespace; the Envoys it provisions run here too.",
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": ns, "labels": labels("controller")},
        }),
    )];
    for crd in crds::policy_crds() {
        let kind = crd["spec"]["names"]["kind"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        docs.push(doc(
            &format!("the {kind} CRD (its schema is the filter's own config type)."),
            crd,
        ));
    }
    docs.extend([
        doc(
            "the controller's identity.",
            json!({
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": metadata(ns, "controller"),
            }),
        ),
        doc(
            "read every kind the controller watches; write the status it owns.",
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": NAME, "labels": labels("controller")},
                "rules": cluster_rules(),
            }),
        ),
        doc(
            "the ClusterRole, to the controller's ServiceAccount.",
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": NAME, "labels": labels("controller")},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
                "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": ns}],
            }),
        ),
        doc(
            "in its own namespace only: the leader Lease, the xDS certificates, the Envoys it provisions.",
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": metadata(ns, "controller"),
                "rules": namespace_rules(),
            }),
        ),
        doc(
            "the Role, to the controller's ServiceAccount.",
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": metadata(ns, "controller"),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
                "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": ns}],
            }),
        ),
        doc(
            "the controller: every replica watches, translates and serves xDS; the leader writes status and provisions Envoys.",
            deployment(args),
        ),
        doc(
            &format!("where the provisioned Envoys reach xDS: {NAME}.{ns}.svc:{XDS_PORT}."),
            json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": metadata(ns, "controller"),
                "spec": {
                    "type": "ClusterIP",
                    "selector": selector(),
                    "ports": [
                        {"name": "xds", "port": XDS_PORT, "targetPort": "xds", "protocol": "TCP", "appProtocol": "grpc"},
                        {"name": "metrics", "port": ADMIN_PORT, "targetPort": "admin", "protocol": "TCP"},
                    ],
                },
            }),
        ),
    ]);
    docs
}

/// The documents as YAML, separated by `---`, each under its comment.
pub fn render(docs: &[Document]) -> Result<String> {
    let mut out = format!(
        "# Tollgate {} install: kubectl apply --server-side -f install.yaml\n# Generated by `tollgate manifests install`; do not edit.\n",
        env!("CARGO_PKG_VERSION")
    );
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        let kind = d.object["kind"].as_str().unwrap_or("");
        let name = d.object["metadata"]["name"].as_str().unwrap_or("");
        out.push_str(&format!("# {kind} {name}: {}\n", d.about));
        out.push_str(
            &serde_yaml_ng::to_string(&d.object)
                .with_context(|| format!("writing {kind} {name} as YAML"))?,
        );
    }
    Ok(out)
}

/// The ClusterRole's rules: `get, list, watch` on every kind `serve`
/// watches, `get, patch, update` on the status of the kinds it writes
/// status to (server-side apply is a patch; a route's parents are read
/// again and replaced after a conflict), and `get` on CRDs (is a kind that
/// answers 404 installed?). One rule per API group and verb set, resources
/// sorted.
pub fn cluster_rules() -> Vec<Value> {
    let mut read: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (group, _, _, plural) in kinds() {
        read.entry(group).or_default().push(plural);
    }
    let mut status: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (group, plural) in status_resources() {
        status
            .entry(group)
            .or_default()
            .push(format!("{plural}/status"));
    }
    let mut rules = Vec::new();
    for (resources, verbs) in [
        (read, ["get", "list", "watch"]),
        (status, ["get", "patch", "update"]),
    ] {
        for (group, mut plurals) in resources {
            plurals.sort();
            plurals.dedup();
            rules.push(rule(group, &plurals, &verbs, &[]));
        }
    }
    // A kind answering 404: not installed, or its CRD still loading after
    // the API server restarted (serve::kubernetes::not_installed)?
    rules.push(rule(
        "apiextensions.k8s.io",
        &["customresourcedefinitions".to_owned()],
        &["get"],
        &[],
    ));
    rules
}

/// `(group, plural)` of each kind whose status `serve` writes, taken from
/// [`kinds`] (a status kind it does not watch is left out: it would have no
/// object to write to).
pub fn status_resources() -> Vec<(&'static str, String)> {
    kinds()
        .into_iter()
        .filter(|(group, _, kind, _)| {
            (*group == GATEWAY_API && GATEWAY_API_KINDS.contains(kind))
                || (*group == TOLLGATE_GROUP
                    && PolicyKind::from_group_kind(TOLLGATE_GROUP, kind).is_some())
        })
        .map(|(group, _, _, plural)| (group, plural))
        .collect()
}

/// The Role's rules, in the controller's namespace: its leader Lease (a
/// name cannot restrict `create`, so that verb has a rule of its own), the
/// Secrets of its xDS certificates (it reads Secrets through the
/// ClusterRole), and the Envoy Deployments, Services, ServiceAccounts and
/// bootstrap ConfigMaps it provisions per Gateway (server-side apply, and
/// deletion when the Gateway goes).
pub fn namespace_rules() -> Vec<Value> {
    const PROVISION: [&str; 6] = ["get", "list", "watch", "create", "patch", "delete"];
    vec![
        rule("coordination.k8s.io", &["leases"], &["create"], &[]),
        rule(
            "coordination.k8s.io",
            &["leases"],
            &["get", "update"],
            &[LEASE_NAME],
        ),
        rule("", &["secrets"], &["create"], &[]),
        rule("apps", &["deployments"], &PROVISION, &[]),
        rule(
            "",
            &["configmaps", "serviceaccounts", "services"],
            &PROVISION,
            &[],
        ),
    ]
}

/// The `serve` arguments of the controller's container.
pub fn serve_args(args: &Args) -> Vec<String> {
    [
        "serve",
        "--provider",
        "kubernetes",
        "--xds-listen",
        &format!("0.0.0.0:{XDS_PORT}"),
        "--admin",
        &format!("0.0.0.0:{ADMIN_PORT}"),
        "--listener-address",
        "0.0.0.0",
        "--xds-tls-secrets",
        "--envoy-image",
        &args.envoy_image,
        "--tollgate-image",
        &args.image,
    ]
    .map(str::to_owned)
    .to_vec()
}

fn deployment(args: &Args) -> Value {
    let probe = |path: &str| {
        json!({
            "httpGet": {"path": path, "port": "admin"},
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        })
    };
    let from_pod = |name: &str, field: &str| json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": field}}});
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(&args.namespace, "controller"),
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": selector()},
            "template": {
                "metadata": {"labels": labels("controller")},
                "spec": {
                    "serviceAccountName": NAME,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": USER,
                        "runAsGroup": USER,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    // The two replicas on different nodes when there are two.
                    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": selector()},
                        },
                    }]}},
                    "containers": [{
                        "name": NAME,
                        "image": args.image,
                        "args": serve_args(args),
                        "env": [
                            from_pod("POD_NAMESPACE", "metadata.namespace"),
                            from_pod("POD_NAME", "metadata.name"),
                        ],
                        "ports": [
                            {"name": "xds", "containerPort": XDS_PORT, "protocol": "TCP"},
                            {"name": "admin", "containerPort": ADMIN_PORT, "protocol": "TCP"},
                        ],
                        "readinessProbe": probe("/readyz"),
                        "livenessProbe": probe("/healthz"),
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]},
                        },
                    }],
                },
            },
        },
    })
}

fn doc(about: &str, object: Value) -> Document {
    Document {
        about: about.to_owned(),
        object,
    }
}

fn rule(group: &str, resources: &[impl AsRef<str>], verbs: &[&str], names: &[&str]) -> Value {
    let resources: Vec<&str> = resources.iter().map(AsRef::as_ref).collect();
    let mut rule = json!({"apiGroups": [group], "resources": resources, "verbs": verbs});
    if !names.is_empty() {
        rule["resourceNames"] = json!(names);
    }
    rule
}

fn labels(component: &str) -> Value {
    json!({
        "app.kubernetes.io/name": NAME,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": NAME,
    })
}

/// The controller pods' labels the Deployment and Service select on
/// (immutable in a Deployment: never the version).
fn selector() -> Value {
    json!({"app.kubernetes.io/name": NAME, "app.kubernetes.io/component": "controller"})
}

fn metadata(namespace: &str, component: &str) -> Value {
    json!({"name": NAME, "namespace": namespace, "labels": labels(component)})
}

fn non_empty(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        Err("must not be empty".to_owned())
    } else {
        Ok(value.to_owned())
    }
}

/// A namespace name: an RFC 1123 label (lower-case letters, digits and
/// `-`, at most 63, starting and ending with a letter or digit).
fn dns_label(value: &str) -> Result<String, String> {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let valid = !value.is_empty()
        && value.len() <= 63
        && value.chars().all(|c| alnum(c) || c == '-')
        && value.starts_with(alnum)
        && value.ends_with(alnum);
    if valid {
        Ok(value.to_owned())
    } else {
        Err("a namespace is a DNS label: lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};

    use super::*;

    fn find<'a>(docs: &'a [Document], kind: &str) -> &'a Value {
        &docs
            .iter()
            .find(|d| d.object["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
            .object
    }

    fn strings(value: &Value) -> Vec<&str> {
        value
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    /// `(group, resource, verb)` of every grant of `rules`.
    fn grants(rules: &[Value]) -> BTreeSet<(String, String, String)> {
        let mut grants = BTreeSet::new();
        for rule in rules {
            for group in strings(&rule["apiGroups"]) {
                for resource in strings(&rule["resources"]) {
                    for verb in strings(&rule["verbs"]) {
                        grants.insert((group.to_owned(), resource.to_owned(), verb.to_owned()));
                    }
                }
            }
        }
        grants
    }

    #[test]
    fn the_cluster_role_reads_every_kind_the_controller_watches() {
        let granted = grants(&cluster_rules());
        for (group, _, kind, plural) in kinds() {
            for verb in ["get", "list", "watch"] {
                assert!(
                    granted.contains(&(group.to_owned(), plural.clone(), verb.to_owned())),
                    "{kind} ({group}/{plural}): no {verb}"
                );
            }
        }
    }

    #[test]
    fn the_cluster_role_writes_only_the_status_of_the_kinds_the_status_writer_writes() {
        let written: BTreeSet<(String, String)> = grants(&cluster_rules())
            .into_iter()
            .filter(|(_, _, verb)| !["get", "list", "watch"].contains(&verb.as_str()))
            .map(|(group, resource, _)| (group, resource))
            .collect();
        let expected: BTreeSet<(String, String)> = [
            (GATEWAY_API, "gatewayclasses/status"),
            (GATEWAY_API, "gateways/status"),
            (GATEWAY_API, "grpcroutes/status"),
            (GATEWAY_API, "httproutes/status"),
            (TOLLGATE_GROUP, "canarypolicies/status"),
            (TOLLGATE_GROUP, "headerpolicies/status"),
            (TOLLGATE_GROUP, "jwtpolicies/status"),
            (TOLLGATE_GROUP, "ratelimitpolicies/status"),
        ]
        .into_iter()
        .map(|(g, r)| (g.to_owned(), r.to_owned()))
        .collect();
        assert_eq!(written, expected);
        // Envoy Gateway's policy kinds are read, never written.
        assert!(grants(&cluster_rules())
            .iter()
            .filter(|(group, _, _)| group == "gateway.envoyproxy.io")
            .all(|(_, resource, verb)| !resource.ends_with("/status")
                && ["get", "list", "watch"].contains(&verb.as_str())));
    }

    #[test]
    fn no_rule_is_wider_than_a_kind_the_controller_uses() {
        let watched: BTreeSet<(String, String)> = kinds()
            .into_iter()
            .map(|(group, _, _, plural)| (group.to_owned(), plural))
            .collect();
        for (group, resource, verb) in grants(&cluster_rules()) {
            if (group.as_str(), resource.as_str(), verb.as_str())
                == ("apiextensions.k8s.io", "customresourcedefinitions", "get")
            {
                continue; // is a kind that answers 404 installed?
            }
            let base = resource.trim_end_matches("/status").to_owned();
            assert!(
                watched.contains(&(group.clone(), base)),
                "ClusterRole: {verb} {group}/{resource} is not a watched kind"
            );
            if !resource.ends_with("/status") {
                assert!(
                    ["get", "list", "watch"].contains(&verb.as_str()),
                    "ClusterRole: {verb} on {group}/{resource}"
                );
            }
        }
        let namespaced: BTreeSet<(String, String, String)> = [
            ("coordination.k8s.io", "leases", "create"),
            ("coordination.k8s.io", "leases", "get"),
            ("coordination.k8s.io", "leases", "update"),
            ("", "secrets", "create"),
        ]
        .into_iter()
        .chain(
            [
                ("apps", "deployments"),
                ("", "services"),
                ("", "serviceaccounts"),
                ("", "configmaps"),
            ]
            .into_iter()
            .flat_map(|(g, r)| {
                ["get", "list", "watch", "create", "patch", "delete"].map(move |v| (g, r, v))
            }),
        )
        .map(|(g, r, v)| (g.to_owned(), r.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(grants(&namespace_rules()), namespaced);
        // No wildcard anywhere, and no rule for URLs that are not resources.
        for rule in cluster_rules().iter().chain(&namespace_rules()) {
            for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
                assert!(!strings(&rule[field]).contains(&"*"), "{rule}");
            }
            assert!(rule.get("nonResourceURLs").is_none(), "{rule}");
        }
        // The Lease verbs that can be limited to the Lease's name are.
        let lease = namespace_rules()
            .into_iter()
            .find(|r| strings(&r["verbs"]) == ["get", "update"])
            .unwrap();
        assert_eq!(lease["resourceNames"], json!([LEASE_NAME]));
    }

    #[test]
    fn the_objects_come_in_apply_order_and_the_namespaced_ones_are_in_the_namespace_asked_for() {
        let args = Args {
            namespace: "gateways".into(),
            ..Args::default()
        };
        let docs = documents(&args);
        let kinds: Vec<&str> = docs
            .iter()
            .map(|d| d.object["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "Namespace",
                "CustomResourceDefinition",
                "CustomResourceDefinition",
                "CustomResourceDefinition",
                "CustomResourceDefinition",
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Role",
                "RoleBinding",
                "Deployment",
                "Service",
            ]
        );
        assert_eq!(docs[0].object["metadata"]["name"], "gateways");
        for d in &docs[5..] {
            let cluster_scoped =
                ["ClusterRole", "ClusterRoleBinding"].contains(&d.object["kind"].as_str().unwrap());
            let namespace = &d.object["metadata"]["namespace"];
            if cluster_scoped {
                assert!(namespace.is_null(), "{}", d.object);
            } else {
                assert_eq!(namespace, "gateways", "{}", d.object);
            }
        }
        for binding in ["ClusterRoleBinding", "RoleBinding"] {
            assert_eq!(
                find(&docs, binding)["subjects"],
                json!([{"kind": "ServiceAccount", "name": "tollgate", "namespace": "gateways"}])
            );
        }
        assert_eq!(
            find(&docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"],
            "tollgate"
        );
    }

    #[test]
    fn the_controller_runs_twice_unprivileged_with_probes_on_its_admin_port() {
        let args = Args {
            image: "registry.example/tollgate:1".into(),
            envoy_image: "registry.example/envoy:1".into(),
            ..Args::default()
        };
        let docs = documents(&args);
        let deployment = find(&docs, "Deployment");
        assert_eq!(deployment["spec"]["replicas"], 2);
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(
            pod["securityContext"],
            json!({"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}})
        );
        let container = &pod["containers"][0];
        assert_eq!(container["image"], "registry.example/tollgate:1");
        assert_eq!(
            container["securityContext"],
            json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}})
        );
        let args_given = strings(&container["args"]).join(" ");
        assert!(
            args_given.starts_with("serve --provider kubernetes "),
            "{args_given}"
        );
        assert!(
            args_given.contains("--envoy-image registry.example/envoy:1"),
            "{args_given}"
        );
        assert!(
            args_given.contains("--tollgate-image registry.example/tollgate:1"),
            "{args_given}"
        );
        assert!(
            args_given.contains("--xds-listen 0.0.0.0:18000 --admin 0.0.0.0:19000"),
            "{args_given}"
        );
        assert_eq!(
            container["readinessProbe"]["httpGet"],
            json!({"path": "/readyz", "port": "admin"})
        );
        assert_eq!(
            container["livenessProbe"]["httpGet"],
            json!({"path": "/healthz", "port": "admin"})
        );
        assert_eq!(
            container["ports"],
            json!([
                {"name": "xds", "containerPort": 18000, "protocol": "TCP"},
                {"name": "admin", "containerPort": 19000, "protocol": "TCP"},
            ])
        );
        let env: Vec<(&str, &str)> = container["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap(),
                    e["valueFrom"]["fieldRef"]["fieldPath"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            env,
            [
                ("POD_NAMESPACE", "metadata.namespace"),
                ("POD_NAME", "metadata.name")
            ]
        );
        assert!(container["resources"]["requests"].is_object());
        // The Service and the Deployment select the pods the template labels.
        let labels = &deployment["spec"]["template"]["metadata"]["labels"];
        let service = find(&docs, "Service");
        for selector in [
            &deployment["spec"]["selector"]["matchLabels"],
            &service["spec"]["selector"],
        ] {
            for (key, value) in selector.as_object().unwrap() {
                assert_eq!(&labels[key], value, "{key}");
            }
        }
        let ports: Vec<(&str, i64, &str)> = service["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap(),
                    p["port"].as_i64().unwrap(),
                    p["targetPort"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(ports, [("xds", 18000, "xds"), ("metrics", 19000, "admin")]);
    }

    #[test]
    fn the_controller_s_arguments_are_flags_tollgate_serve_has() {
        #[derive(Debug, clap::Parser)]
        struct Tollgate {
            #[command(subcommand)]
            command: Sub,
        }
        #[derive(Debug, clap::Subcommand)]
        enum Sub {
            Serve(crate::serve::Args),
        }
        let args = serve_args(&Args::default());
        let parsed = <Tollgate as clap::Parser>::try_parse_from(
            std::iter::once("tollgate".to_owned()).chain(args.iter().cloned()),
        );
        assert!(
            parsed.is_ok(),
            "tollgate {}: {}",
            args.join(" "),
            parsed.unwrap_err()
        );
    }

    #[test]
    fn every_built_in_object_survives_a_round_trip_through_its_k8s_openapi_type() {
        // k8s-openapi drops fields it does not know: a misspelt one would not come back.
        fn same<T: serde::de::DeserializeOwned + serde::Serialize>(object: &Value) {
            let typed: T = serde_json::from_value(object.clone()).unwrap();
            assert_eq!(&serde_json::to_value(typed).unwrap(), object);
        }
        for d in documents(&Args::default()) {
            match d.object["kind"].as_str().unwrap() {
                "Namespace" => same::<Namespace>(&d.object),
                // Made from the filters' types by schemars (its `minimum: 0`
                // would come back as `0.0`): no hand-written field to misspell.
                "CustomResourceDefinition" => {}
                "ServiceAccount" => same::<ServiceAccount>(&d.object),
                "ClusterRole" => same::<ClusterRole>(&d.object),
                "ClusterRoleBinding" => same::<ClusterRoleBinding>(&d.object),
                "Role" => same::<Role>(&d.object),
                "RoleBinding" => same::<RoleBinding>(&d.object),
                "Deployment" => same::<Deployment>(&d.object),
                "Service" => same::<Service>(&d.object),
                other => panic!("no round trip for {other}"),
            }
        }
    }

    #[test]
    fn the_yaml_is_the_same_every_time_and_reads_back_as_the_objects_each_under_its_comment() {
        let docs = documents(&Args::default());
        let text = render(&docs).unwrap();
        assert_eq!(text, render(&documents(&Args::default())).unwrap());
        let parts: Vec<&str> = text.split("\n---\n").collect();
        assert_eq!(parts.len(), docs.len());
        for (part, d) in parts.iter().zip(&docs) {
            let comment = format!(
                "# {} {}",
                d.object["kind"].as_str().unwrap(),
                d.object["metadata"]["name"].as_str().unwrap()
            );
            let last_comment = part.lines().rfind(|l| l.starts_with('#')).unwrap();
            assert!(last_comment.starts_with(&comment), "{last_comment}");
            let read: Value = serde_yaml_ng::from_str(part).unwrap();
            assert_eq!(&read, &d.object);
        }
    }

    #[test]
    fn a_namespace_must_be_a_dns_label_and_an_image_must_be_named() {
        assert!(dns_label("tollgate-system").is_ok());
        for bad in ["", "Tollgate", "-a", "a-", "a.b", &"a".repeat(64)] {
            assert!(dns_label(bad).is_err(), "{bad:?}");
        }
        assert!(non_empty(" ").is_err());
    }
}
