//! The stand-in CRDs, built from the table in [`super::KINDS`] plus the
//! kinds registered at their real URLs (EndpointSlice, the RBAC kinds). Each
//! schema names the kind's real top-level fields (so strict field
//! validation still refuses a typo such as `sepc:`) and preserves whatever
//! is inside them: no core validation or defaulting.

use serde_json::{json, Value};

use super::{Scope, StandIn, KINDS};

/// An object that keeps every field inside it.
fn open_object() -> Value {
    json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

/// A list of such objects.
fn open_list() -> Value {
    json!({"type": "array", "items": open_object()})
}

/// A map of strings (ConfigMap and Secret `data`).
fn string_map() -> Value {
    json!({"type": "object", "additionalProperties": {"type": "string"}})
}

fn string() -> Value {
    json!({"type": "string"})
}

/// The top-level fields (besides apiVersion, kind and metadata) of `kind`.
fn fields(kind: &str) -> Value {
    match kind {
        "Secret" => json!({
            "data": string_map(),
            "stringData": string_map(),
            "type": string(),
            "immutable": {"type": "boolean"},
        }),
        "ConfigMap" => json!({
            "data": string_map(),
            "binaryData": string_map(),
            "immutable": {"type": "boolean"},
        }),
        "ServiceAccount" => json!({
            "secrets": open_list(),
            "imagePullSecrets": open_list(),
            "automountServiceAccountToken": {"type": "boolean"},
        }),
        "Event" => json!({
            "involvedObject": open_object(),
            "related": open_object(),
            "source": open_object(),
            "series": open_object(),
            "reason": string(),
            "message": string(),
            "type": string(),
            "action": string(),
            "count": {"type": "integer", "format": "int32"},
            "firstTimestamp": string(),
            "lastTimestamp": string(),
            "eventTime": string(),
            "reportingComponent": string(),
            "reportingInstance": string(),
        }),
        "EndpointSlice" => json!({
            "addressType": string(),
            "endpoints": open_list(),
            "ports": open_list(),
        }),
        "Role" => json!({"rules": open_list()}),
        "ClusterRole" => json!({"rules": open_list(), "aggregationRule": open_object()}),
        "RoleBinding" | "ClusterRoleBinding" => json!({
            "roleRef": open_object(),
            "subjects": open_list(),
        }),
        // Namespace, Service, Deployment and anything else: spec and status.
        _ => json!({"spec": open_object(), "status": open_object()}),
    }
}

/// One CRD: `kind` as `plural.group`, served at `/apis/group/v1`.
fn crd(stand_in: &StandIn, group: &str, plural: &str, annotate: bool) -> Value {
    let mut subresources = json!({});
    if stand_in.status {
        subresources["status"] = json!({});
    }
    if stand_in.kind == "Deployment" {
        subresources["scale"] = json!({
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
        });
    }
    let mut metadata = json!({"name": format!("{plural}.{group}")});
    if annotate {
        // A `*.k8s.io` group is protected; this annotation is how a CRD says
        // it is not an approved API (as the Lease stand-in does).
        metadata["annotations"] =
            json!({"api-approved.kubernetes.io": "unapproved, test stand-in"});
    }
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": metadata,
        "spec": {
            "group": group,
            "scope": match stand_in.scope {
                Scope::Namespaced => "Namespaced",
                Scope::Cluster => "Cluster",
            },
            "names": {
                "kind": stand_in.kind,
                "listKind": format!("{}List", stand_in.kind),
                "plural": plural,
                "singular": stand_in.kind.to_lowercase(),
                "shortNames": stand_in.short_names,
                "categories": if stand_in.all { vec!["all"] } else { vec![] },
            },
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "subresources": subresources,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": fields(stand_in.kind),
                }},
            }],
        },
    })
}

/// Every stand-in CRD, as one YAML stream (each document is JSON, which is
/// YAML) for `kubectl apply --server-side`.
pub fn yaml() -> String {
    KINDS
        .iter()
        .map(|k| match k.stand_in_group() {
            // Core and apps kinds: the test group, the stand-in plural.
            Some(group) => crd(k, group, k.stand_in_plural(), false),
            // The others: their real group and URL.
            None => crd(k, k.group, k.plural, true),
        })
        .map(|crd| crd.to_string())
        .collect::<Vec<_>>()
        .join("\n---\n")
}
