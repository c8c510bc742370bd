//! Which Gateways' Envoys run their current configuration, shared between
//! the controller's replicas. An Envoy connects to any replica (the
//! controller's Service spreads them), and only the replica it talks to
//! sees its ACKs; the leader, which writes `Programmed`, must know of all.
//! So each replica keeps a ConfigMap in the controller's namespace,
//! `tollgate-accepted-<replica>`, listing the Gateways whose Envoys accepted
//! what it serves, with the version of the whole configuration it serves
//! (a content hash: the same on every replica translating the same
//! objects). The leader counts a Gateway running when its own Envoys say
//! so or when another replica's list of the same version names it; a list
//! of another version (a replica behind, or gone) counts for nothing.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use super::provision::dns_label;
use crate::translate::status::CONTROLLER_NAME;

/// The label of every replica's list.
const LABEL: &str = "tollgate.dev/accepted-by";

pub struct ReplicaAcceptance {
    api: Api<ConfigMap>,
    name: String,
    /// What this replica last wrote: `(version, gateways)`.
    written: Option<(String, String)>,
}

impl ReplicaAcceptance {
    pub fn new(client: kube::Client, namespace: &str, replica: &str) -> ReplicaAcceptance {
        ReplicaAcceptance {
            api: Api::namespaced(client, namespace),
            name: dns_label(&format!("tollgate-accepted-{replica}")),
            written: None,
        }
    }

    /// Records that, at `version`, the Envoys of this replica run `running`
    /// (`NAMESPACE/NAME` of each Gateway); written only when it changed.
    pub async fn publish(&mut self, version: &str, running: &BTreeSet<String>) {
        let gateways = running.iter().cloned().collect::<Vec<_>>().join("\n");
        let now = (version.to_owned(), gateways);
        if self.written.as_ref() == Some(&now) {
            return;
        }
        let list = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": self.name, "labels": {LABEL: "true", "app.kubernetes.io/managed-by": "tollgate"}},
            "data": {"version": now.0, "gateways": now.1},
        });
        let params = PatchParams::apply(CONTROLLER_NAME).force();
        match self
            .api
            .patch(&self.name, &params, &Patch::Apply(&list))
            .await
        {
            Ok(_) => self.written = Some(now),
            Err(e) => tracing::warn!(name = self.name, "sharing which Gateways run: {e}"),
        }
    }

    /// The Gateways other replicas' Envoys run at `version`.
    pub async fn elsewhere(&self, version: &str) -> BTreeSet<String> {
        let lists = match self.api.list(&ListParams::default().labels(LABEL)).await {
            Ok(lists) => lists,
            Err(e) => {
                tracing::warn!("reading which Gateways other replicas run: {e}");
                return BTreeSet::new();
            }
        };
        lists
            .into_iter()
            .filter(|list| list.metadata.name.as_deref() != Some(self.name.as_str()))
            .filter_map(|list| list.data)
            .filter(|data: &BTreeMap<String, String>| {
                data.get("version").map(String::as_str) == Some(version)
            })
            .flat_map(|data| {
                data.get("gateways")
                    .map(|g| g.lines().map(str::to_owned).collect::<Vec<_>>())
                    .unwrap_or_default()
            })
            .collect()
    }
}
