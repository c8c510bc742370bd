//! `metadata` as far as routing needs it. Lenient on purpose: objects exported
//! with `kubectl get -o yaml` carry `uid`, `resourceVersion`, `managedFields`
//! and so on, none of which change what Envoy should do.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: String,
    /// Absent means `default`, as `kubectl apply` would place it.
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339 as Kubernetes writes it (`2024-01-02T03:04:05Z`); it sorts
    /// lexically, which is all precedence needs.
    #[serde(default)]
    pub creation_timestamp: Option<String>,
}

impl ObjectMeta {
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("default")
    }
}
