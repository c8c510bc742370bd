//! GRPCRoute (gateway.networking.k8s.io/v1): parentRefs, hostnames and
//! backendRefs as HTTPRoute has them; matches on the gRPC service and method
//! and on headers; filters of HTTPRoute's shape (the translator refuses the
//! types a GRPCRoute does not have, as the CRD's enum would).

use serde::Deserialize;

use super::gateway_api::{BackendRef, ParentRef, ValueMatch};
use super::http_filters::HttpRouteFilter;
use super::meta::ObjectMeta;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRoute {
    pub metadata: ObjectMeta,
    pub spec: GrpcRouteSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcRouteSpec {
    #[serde(default)]
    pub parent_refs: Vec<ParentRef>,
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// Absent: one rule matching every call, with no backends (as HTTPRoute).
    #[serde(default = "default_rules")]
    pub rules: Vec<GrpcRouteRule>,
}

fn default_rules() -> Vec<GrpcRouteRule> {
    vec![GrpcRouteRule::default()]
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcRouteRule {
    /// The rule's `name`: a policy's `sectionName` targets it.
    #[serde(default)]
    pub name: Option<String>,
    /// Empty matches every gRPC call.
    #[serde(default)]
    pub matches: Vec<GrpcRouteMatch>,
    /// GRPCRouteFilter: RequestHeaderModifier, ResponseHeaderModifier,
    /// RequestMirror or ExtensionRef.
    #[serde(default)]
    pub filters: Vec<HttpRouteFilter>,
    #[serde(default)]
    pub backend_refs: Vec<BackendRef>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcRouteMatch {
    #[serde(default)]
    pub method: Option<GrpcMethodMatch>,
    /// GRPCHeaderMatch has HTTPHeaderMatch's shape (type, name, value).
    #[serde(default)]
    pub headers: Vec<ValueMatch>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcMethodMatch {
    #[serde(default, rename = "type")]
    pub kind: GrpcMethodMatchType,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum GrpcMethodMatchType {
    #[default]
    Exact,
    RegularExpression,
}
