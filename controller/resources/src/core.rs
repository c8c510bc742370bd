//! Service and EndpointSlice: where a backendRef's traffic goes. Lenient
//! (no `deny_unknown_fields`) because core objects carry many fields
//! (`selector`, `clusterIP`, `sessionAffinity`…) that describe the cluster,
//! not the routing Tollgate derives from them.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::meta::ObjectMeta;

/// Lets file mode name its backends without an EndpointSlice:
/// `"127.0.0.1:3000,127.0.0.1:3001"`.
pub const STATIC_ENDPOINTS_ANNOTATION: &str = "tollgate.dev/static-endpoints";
/// The label that ties an EndpointSlice to its Service, as in Kubernetes.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ServiceSpec,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(default)]
    pub ports: Vec<ServicePort>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    #[serde(default)]
    pub name: Option<String>,
    pub port: u16,
    /// `kubernetes.io/h2c` or `grpc` makes the cluster speak HTTP/2 (h2c) upstream.
    #[serde(default)]
    pub app_protocol: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSlice {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub ports: Vec<EndpointPort>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub addresses: Vec<String>,
    #[serde(default)]
    pub conditions: EndpointConditions,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointConditions {
    /// Absent means ready, as in Kubernetes.
    #[serde(default)]
    pub ready: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPort {
    #[serde(default)]
    pub name: Option<String>,
    pub port: u16,
}

/// A TLS certificate for an HTTPS listener (`type: kubernetes.io/tls`,
/// `data.tls.crt` / `data.tls.key` in base64, or `stringData` in plain text
/// as `kubectl apply` accepts it).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    pub metadata: ObjectMeta,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    #[serde(default)]
    pub string_data: BTreeMap<String, String>,
}

/// Only its labels matter: `allowedRoutes.namespaces.from: Selector` reads them.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Namespace {
    pub metadata: ObjectMeta,
}
