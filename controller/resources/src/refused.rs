//! Objects of a kind that carries status (GatewayClass, Gateway, HTTPRoute,
//! GRPCRoute, the policies) whose document parses as YAML but not as that kind:
//! a field Tollgate does not implement, a value of the wrong type. Each is
//! refused on its own: what identifies it and what its status needs
//! (metadata, parentRefs, targetRefs, the class and controller names) is read
//! leniently from the parsed value, so the refusal becomes a status condition
//! on that object naming the field, and every other object still loads.
//!
//! A document that does not parse as YAML at all has no identity to put a
//! condition on; it is a load error (`loader`). Objects of the other kinds
//! (Service, Secret, …) have no status either: theirs are load errors, and
//! whatever refers to them reports the missing reference.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::gateway_api::ParentRef;
use super::meta::ObjectMeta;
use super::policies::{PolicyKind, TargetRef};

/// The kinds refused one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusedKind {
    GatewayClass,
    Gateway,
    HttpRoute,
    GrpcRoute,
    Policy(PolicyKind),
}

/// One refused object: who it is, why, and where it would attach.
#[derive(Debug, Clone)]
pub struct RefusedObject {
    pub kind: RefusedKind,
    pub metadata: ObjectMeta,
    /// `path:line:column: field: message`, as the typed parse reported it.
    pub problem: String,
    /// A route's `spec.parentRefs` (each one that reads).
    pub parent_refs: Vec<ParentRef>,
    /// A policy's `spec.targetRefs` (each one that reads).
    pub target_refs: Vec<TargetRef>,
    /// A Gateway's `spec.gatewayClassName`, a GatewayClass's
    /// `spec.controllerName`: whether the object is Tollgate's to report on.
    pub owner: Option<String>,
}

impl RefusedObject {
    /// The object `value` (a document of `kind` that failed its typed parse
    /// with `problem`) as far as it reads; `None` without a `metadata.name`.
    pub fn read(kind: RefusedKind, value: &Value, problem: String) -> Option<Self> {
        let metadata = ObjectMeta::deserialize(value.get("metadata")?)
            .ok()
            .filter(|m| !m.name.is_empty())?;
        let spec = value.get("spec");
        let field = |name: &str| spec.and_then(|s| s.get(name));
        let owner = match kind {
            RefusedKind::Gateway => field("gatewayClassName"),
            RefusedKind::GatewayClass => field("controllerName"),
            _ => None,
        };
        Some(Self {
            kind,
            metadata,
            problem,
            parent_refs: each(field("parentRefs")),
            target_refs: each(field("targetRefs")),
            owner: owner.and_then(Value::as_str).map(str::to_owned),
        })
    }
}

/// The items of a list that read as `T` (the others are left out).
fn each<T: DeserializeOwned>(list: Option<&Value>) -> Vec<T> {
    let Some(Value::Array(items)) = list else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| T::deserialize(item).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_refused_route_keeps_its_identity_and_the_parent_refs_that_read() {
        let value = json!({
            "metadata": {"name": "r", "namespace": "app"},
            "spec": {
                "parentRefs": [{"name": "eg"}, {"name": "x", "bogus": 1}, 7],
                "rules": [{"unknown": true}]
            }
        });
        let refused = RefusedObject::read(RefusedKind::HttpRoute, &value, "why".into()).unwrap();
        assert_eq!(refused.metadata.namespace(), "app");
        assert_eq!(refused.metadata.name, "r");
        assert_eq!(refused.parent_refs.len(), 1);
        assert_eq!(refused.parent_refs[0].name, "eg");
        assert_eq!(refused.problem, "why");
    }

    #[test]
    fn a_gateway_names_its_class_and_a_policy_its_targets() {
        let gateway = json!({"metadata": {"name": "g"}, "spec": {"gatewayClassName": "c", "x": 1}});
        let refused = RefusedObject::read(RefusedKind::Gateway, &gateway, String::new()).unwrap();
        assert_eq!(refused.owner.as_deref(), Some("c"));
        let policy = json!({"metadata": {"name": "p"}, "spec": {"targetRefs": [
            {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "r"}
        ]}});
        let kind = RefusedKind::Policy(PolicyKind::JwtPolicy);
        let refused = RefusedObject::read(kind, &policy, String::new()).unwrap();
        assert_eq!(refused.target_refs[0].name, "r");
    }

    #[test]
    fn without_a_name_there_is_nothing_to_refuse() {
        for value in [
            json!({"spec": {}}),
            json!({"metadata": {"name": ""}}),
            json!([]),
        ] {
            assert!(RefusedObject::read(RefusedKind::Gateway, &value, String::new()).is_none());
        }
    }
}
