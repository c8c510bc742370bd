//! **Stand-ins for kubelet, cluster DNS and the load balancer**, for the
//! Envoys `tollgate serve --provision kubernetes` provisions. The test API
//! server runs no Pods, so for each provisioned Deployment this starts a
//! local Envoy the way its pod spec says:
//!
//! - its volumes are made into directories: a ConfigMap's and a Secret's
//!   data become files, an emptyDir an empty directory;
//! - the init container's command runs with the Tollgate image's filter
//!   directory (`/usr/lib/tollgate`) standing for the workspace's `dist/`
//!   (where `make build` puts the filters the image would hold);
//! - the Envoy container's `-c` bootstrap and its environment are read with
//!   every mount path mapped to its directory, and the xDS cluster's
//!   address (the controller's Service name: cluster DNS) resolved to the
//!   controller's loopback port; Envoy's admin port is a free one.
//!
//! Then it writes what kubelet and a cloud load balancer would: the
//! Deployment's available replicas and the Service's ingress address
//! (127.0.0.1). A Deployment that goes away has its Envoy stopped.
//!
//! What is not stood in: images (the Envoy binary is the one of `make
//! setup`, the same version the Deployment pins), probes, resources and
//! security contexts (read, not enforced), and Services' ClusterIPs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context as _, Result};
use base64::Engine as _;
use serde_json::Value;
use tempfile::TempDir;

use crate::envoy::{Envoy, Options as EnvoyOptions};
use crate::kube_apiserver::KubeApiServer;

/// Where the Tollgate image keeps the filters its init container copies.
const IMAGE_FILTERS: &str = "/usr/lib/tollgate";
/// A Deployment's status once its one replica runs (kubelet's part).
const AVAILABLE: &str = r#"{"status":{"replicas":1,"readyReplicas":1,"availableReplicas":1}}"#;
/// A Service's status once the load balancer gave it an address.
const LOAD_BALANCED: &str = r#"{"status":{"loadBalancer":{"ingress":[{"ip":"127.0.0.1"}]}}}"#;
/// The labels of provisioned Deployments.
const PROVISIONED: &str = "app.kubernetes.io/managed-by=tollgate,app.kubernetes.io/component=proxy";

/// The Envoys of the provisioned Deployments of one namespace.
pub struct Kubelet {
    namespace: String,
    /// The controller's xDS address, as cluster DNS would resolve its Service.
    xds: SocketAddr,
    pods: BTreeMap<String, Envoy>,
    dir: TempDir,
}

impl Kubelet {
    pub fn new(namespace: &str, xds: SocketAddr) -> Result<Kubelet> {
        Ok(Kubelet {
            namespace: namespace.to_owned(),
            xds,
            pods: BTreeMap::new(),
            dir: tempfile::Builder::new()
                .prefix("tollgate-kubelet-")
                .tempdir()?,
        })
    }

    /// Starts an Envoy for each provisioned Deployment that has none, stops
    /// those whose Deployment is gone; the names of the Deployments running.
    pub async fn sync(&mut self, api: &KubeApiServer) -> Result<Vec<String>> {
        let listed = api.kubectl_ok(&[
            "get",
            "deployments",
            "-n",
            &self.namespace,
            "-l",
            PROVISIONED,
            "-o",
            "json",
        ])?;
        let listed: Value = serde_json::from_str(&listed)?;
        let deployments: BTreeMap<String, Value> = listed["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| Some((d["metadata"]["name"].as_str()?.to_owned(), d.clone())))
            .collect();
        self.pods.retain(|name, _| deployments.contains_key(name));
        for (name, deployment) in &deployments {
            if self.pods.contains_key(name) {
                continue;
            }
            let envoy = self
                .run(api, name, deployment)
                .await
                .with_context(|| format!("running Deployment {name}"))?;
            self.pods.insert(name.clone(), envoy);
            self.patch_status(api, "deployment", name, AVAILABLE)?;
            self.patch_status(api, "service", name, LOAD_BALANCED)?;
        }
        Ok(self.pods.keys().cloned().collect())
    }

    /// The Envoy of Deployment `name`, if it runs.
    pub fn envoy(&self, name: &str) -> Option<&Envoy> {
        self.pods.get(name)
    }

    async fn run(&self, api: &KubeApiServer, name: &str, deployment: &Value) -> Result<Envoy> {
        let pod = &deployment["spec"]["template"]["spec"];
        let root = self.dir.path().join(name);
        // Volumes, each a directory.
        let mut volumes: BTreeMap<String, PathBuf> = BTreeMap::new();
        for volume in pod["volumes"].as_array().into_iter().flatten() {
            let volume_name = text(volume, "name")?;
            let dir = root.join("volumes").join(volume_name);
            std::fs::create_dir_all(&dir)?;
            if let Some(config_map) = volume["configMap"]["name"].as_str() {
                let object = self.get(api, "configmap", config_map)?;
                for (file, content) in object["data"].as_object().into_iter().flatten() {
                    std::fs::write(dir.join(file), content.as_str().unwrap_or(""))?;
                }
            } else if let Some(secret) = volume["secret"]["secretName"].as_str() {
                let object = self.get(api, "secret", secret)?;
                for (file, content) in object["data"].as_object().into_iter().flatten() {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(content.as_str().unwrap_or(""))
                        .with_context(|| format!("Secret {secret} {file}: not base64"))?;
                    std::fs::write(dir.join(file), bytes)?;
                }
            }
            volumes.insert(volume_name.to_owned(), dir);
        }
        // The init containers, with their mounts and the image's filters mapped.
        let dist = crate::paths::workspace_root().join("dist");
        for init in pod["initContainers"].as_array().into_iter().flatten() {
            let mounts = mounts(init, &volumes)?;
            let command: Vec<String> = init["command"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|arg| {
                    map_paths(
                        &arg.replace(IMAGE_FILTERS, &dist.display().to_string()),
                        &mounts,
                    )
                })
                .collect();
            let (program, args) = command
                .split_first()
                .context("an init container without a command")?;
            let status = std::process::Command::new(program).args(args).status()?;
            if !status.success() {
                bail!(
                    "init container {}: {command:?} exited with {status}",
                    text(init, "name")?
                );
            }
        }
        let envoy = pod["containers"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == "envoy"))
            .context("no envoy container")?;
        let mounts = mounts(envoy, &volumes)?;
        let args: Vec<&str> = envoy["args"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let config = args
            .windows(2)
            .find(|w| w[0] == "-c")
            .map(|w| map_paths(w[1], &mounts))
            .context("the envoy container has no -c")?;
        let module_dir = envoy["env"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == "ENVOY_DYNAMIC_MODULES_SEARCH_PATH")
            .and_then(|e| e["value"].as_str())
            .map(|dir| PathBuf::from(map_paths(dir, &mounts)));
        let text = std::fs::read_to_string(&config).with_context(|| format!("reading {config}"))?;
        let mut bootstrap: Value = serde_json::from_str(&map_paths(&text, &mounts))?;
        self.resolve_xds(&mut bootstrap)?;
        bootstrap["admin"]["address"]["socket_address"]["port_value"] = 0.into();
        let options = EnvoyOptions {
            module_dir,
            ..EnvoyOptions::default()
        };
        Envoy::try_start(&bootstrap, &options)
            .await
            .map_err(|e| anyhow!("{e}"))
    }

    /// Cluster DNS: the xDS cluster's host (the controller's Service) is the
    /// controller's loopback address.
    fn resolve_xds(&self, bootstrap: &mut Value) -> Result<()> {
        let cluster = bootstrap["static_resources"]["clusters"]
            .as_array_mut()
            .and_then(|c| c.iter_mut().find(|c| c["name"] == "tollgate-xds"))
            .context("the bootstrap has no tollgate-xds cluster")?;
        cluster["type"] = "STATIC".into();
        let address = &mut cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
            ["endpoint"]["address"]["socket_address"];
        address["address"] = self.xds.ip().to_string().into();
        address["port_value"] = self.xds.port().into();
        Ok(())
    }

    /// What kubelet or the load balancer would write: a merge patch of the
    /// `/status` of `kind` `name`.
    fn patch_status(&self, api: &KubeApiServer, kind: &str, name: &str, patch: &str) -> Result<()> {
        api.kubectl_ok(&[
            "patch",
            kind,
            name,
            "-n",
            &self.namespace,
            "--subresource=status",
            "--type=merge",
            "-p",
            patch,
        ])?;
        Ok(())
    }

    fn get(&self, api: &KubeApiServer, kind: &str, name: &str) -> Result<Value> {
        let text = api.kubectl_ok(&["get", kind, name, "-n", &self.namespace, "-o", "json"])?;
        Ok(serde_json::from_str(&text)?)
    }
}

/// A container's mounts: `(mount path, directory)`, longest path first.
fn mounts(container: &Value, volumes: &BTreeMap<String, PathBuf>) -> Result<Vec<(String, String)>> {
    let mut mounts = Vec::new();
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let volume = text(mount, "name")?;
        let dir = volumes
            .get(volume)
            .with_context(|| format!("mount of an unknown volume {volume}"))?;
        mounts.push((
            text(mount, "mountPath")?.to_owned(),
            dir.display().to_string(),
        ));
    }
    mounts.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
    Ok(mounts)
}

/// `text` with every mount path replaced by its directory.
fn map_paths(text: &str, mounts: &[(String, String)]) -> String {
    mounts.iter().fold(text.to_owned(), |text, (path, dir)| {
        text.replace(path.as_str(), dir)
    })
}

fn text<'a>(value: &'a Value, key: &str) -> Result<&'a str> {
    value[key]
        .as_str()
        .with_context(|| format!("no {key} in {value}"))
}
