//! Status as Gateway API defines it, for every object Tollgate owns, in a form
//! that renders to stable YAML: no `lastTransitionTime` (it would make every
//! translation differ) and objects in a fixed order.

use serde::Serialize;

/// The controller name a GatewayClass must carry for Tollgate to own it.
pub const CONTROLLER_NAME: &str = "tollgate.dev/gateway-controller";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub gateway_classes: Vec<GatewayClassStatus>,
    pub gateways: Vec<GatewayStatus>,
    #[serde(rename = "httpRoutes")]
    pub http_routes: Vec<RouteStatus>,
    #[serde(rename = "grpcRoutes")]
    pub grpc_routes: Vec<RouteStatus>,
    /// Tollgate's policies and the Envoy Gateway kinds, each with `Accepted`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<PolicyStatus>,
}

/// One policy's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayClassStatus {
    pub name: String,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    pub namespace: String,
    pub name: String,
    /// Where clients reach the Gateway once it is programmed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<GatewayAddress>,
    pub conditions: Vec<Condition>,
    pub listeners: Vec<ListenerStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayAddress {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    pub name: String,
    pub supported_kinds: Vec<RouteGroupKind>,
    pub attached_routes: u32,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteGroupKind {
    pub group: &'static str,
    pub kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteStatus {
    pub namespace: String,
    pub name: String,
    pub parents: Vec<RouteParentStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteParentStatus {
    pub parent_ref: ParentReference,
    pub controller_name: String,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    pub namespace: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub status: &'static str,
    pub reason: &'static str,
    pub message: String,
    /// The generation of the object the condition is about (see
    /// `resources::generation`); set by [`observed`] once the condition is final.
    #[serde(rename = "observedGeneration")]
    pub observed_generation: i64,
}

impl Condition {
    pub fn new(kind: &'static str, ok: bool, reason: &'static str, message: String) -> Self {
        Self {
            kind,
            status: if ok { "True" } else { "False" },
            reason,
            message,
            observed_generation: 0,
        }
    }
}

/// `conditions`, each stamped with the generation they were computed from.
pub fn observed(mut conditions: Vec<Condition>, generation: i64) -> Vec<Condition> {
    for condition in &mut conditions {
        condition.observed_generation = generation;
    }
    conditions
}
