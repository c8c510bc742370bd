//! Objects as a Kubernetes API server hands them (JSON, from a list or a
//! watch) → the objects a directory loads, each with its `metadata.uid` as
//! its origin: the same kinds, the same typed parse (an unknown field is
//! named, never dropped), and the same refusal on its own of an object of a
//! kind with status that does not parse as its kind (`refused`). What the
//! server adds (`status`, `resourceVersion`, `managedFields`, defaults) is
//! ignored, as a file's would be; `metadata.generation` is the server's.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::generation;
use super::loader::{drop_nulls, Document};
use super::policies::{PolicyKind, PolicyObject};
use super::refused::{RefusedKind, RefusedObject};
use super::{Loaded, Origin, Resources};

/// Adds one object to `resources`: loaded, refused (its problem also in
/// `load_errors`), or skipped with a warning (a kind Tollgate does not read,
/// or an object a refusal cannot name).
pub fn add(mut value: Value, resources: &mut Resources) {
    drop_nulls(&mut value);
    let text = |pointer: &str| value.pointer(pointer).and_then(Value::as_str).unwrap_or("");
    let (api_version, kind) = (text("/apiVersion").to_owned(), text("/kind").to_owned());
    let origin = Origin::Object {
        uid: text("/metadata/uid").to_owned(),
    };
    let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
    let generation = generation::of(&value);
    let at = (&origin, generation);
    let document = match (group, kind.as_str()) {
        (group, kind) if PolicyKind::from_group_kind(group, kind).is_some() => {
            let Some(policy_kind) = PolicyKind::from_group_kind(group, kind) else {
                return;
            };
            policy(policy_kind, &value)
                .map(|o| Document::Policy(loaded(o, at)))
                .map_err(|e| (Some(RefusedKind::Policy(policy_kind)), e))
        }
        ("gateway.networking.k8s.io", "GatewayClass") => typed(&value)
            .map(|o| Document::GatewayClass(loaded(o, at)))
            .map_err(|e| (Some(RefusedKind::GatewayClass), e)),
        ("gateway.networking.k8s.io", "Gateway") => typed(&value)
            .map(|o| Document::Gateway(loaded(o, at)))
            .map_err(|e| (Some(RefusedKind::Gateway), e)),
        ("gateway.networking.k8s.io", "HTTPRoute") => typed(&value)
            .map(|o| Document::HttpRoute(loaded(o, at)))
            .map_err(|e| (Some(RefusedKind::HttpRoute), e)),
        ("gateway.networking.k8s.io", "GRPCRoute") => typed(&value)
            .map(|o| Document::GrpcRoute(loaded(o, at)))
            .map_err(|e| (Some(RefusedKind::GrpcRoute), e)),
        ("gateway.networking.k8s.io", "ReferenceGrant") => typed(&value)
            .map(|o| Document::ReferenceGrant(loaded(o, at)))
            .map_err(|e| (None, e)),
        ("", "Service") => typed(&value)
            .map(|o| Document::Service(loaded(o, at)))
            .map_err(|e| (None, e)),
        ("", "Secret") => typed(&value)
            .map(|o| Document::Secret(loaded(o, at)))
            .map_err(|e| (None, e)),
        ("", "Namespace") => typed(&value)
            .map(|o| Document::Namespace(loaded(o, at)))
            .map_err(|e| (None, e)),
        ("discovery.k8s.io", "EndpointSlice") => typed(&value)
            .map(|o| Document::EndpointSlice(loaded(o, at)))
            .map_err(|e| (None, e)),
        _ => Ok(Document::Skipped(format!(
            "{origin}: skipped {api_version:?} {kind:?}: not a kind Tollgate reads"
        ))),
    };
    match document {
        Ok(document) => resources.add(&document),
        Err((refusable, why)) => {
            let problem = format!("{origin}: {why}");
            let refused = refusable.and_then(|k| RefusedObject::read(k, &value, problem.clone()));
            match refused {
                Some(refused) => resources.add(&Document::Refused(loaded(refused, at))),
                None => resources.warnings.push(format!("{problem}; not loaded")),
            }
            resources.load_errors.push(problem);
        }
    }
}

/// An object from the API server, with its origin and generation.
fn loaded<T>(object: T, (origin, generation): (&Origin, i64)) -> Loaded<T> {
    Loaded {
        object: Arc::new(object),
        order: 0,
        source: origin.clone(),
        generation,
    }
}

/// `value` as `T`; the error names the field path.
fn typed<T: DeserializeOwned>(value: &Value) -> Result<T, String> {
    let mut track = serde_path_to_error::Track::new();
    T::deserialize(serde_path_to_error::Deserializer::new(value, &mut track))
        .map_err(|e| format!("{}: {e}", track.path()))
}

/// `value` as a policy of `kind`; the error names the field path.
fn policy(kind: PolicyKind, value: &Value) -> Result<PolicyObject, String> {
    let mut track = serde_path_to_error::Track::new();
    PolicyObject::deserialize(
        kind,
        serde_path_to_error::Deserializer::new(value, &mut track),
    )
    .map_err(|e| format!("{}: {e}", track.path()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An HTTPRoute as the API server returns it: server fields, defaults
    /// (parentRef group and kind, backendRef weight), and a status.
    fn served_route(rule: Value) -> Value {
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {
                "name": "r", "namespace": "app", "uid": "6f1c", "resourceVersion": "812",
                "generation": 3, "creationTimestamp": "2026-12-04T10:00:00Z",
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]
            },
            "spec": {
                "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "eg"}],
                "rules": [rule]
            },
            "status": {"parents": [{"controllerName": "other.example/controller", "parentRef": {"name": "x"}, "conditions": []}]}
        })
    }

    #[test]
    fn an_object_from_the_api_server_loads_with_its_uid_and_generation() {
        let mut resources = Resources::default();
        let rule = json!({"backendRefs": [{"group": "", "kind": "Service", "name": "s", "port": 80, "weight": 1}]});
        add(served_route(rule), &mut resources);
        assert!(
            resources.load_errors.is_empty(),
            "{:?}",
            resources.load_errors
        );
        let route = &resources.http_routes[0];
        assert_eq!(route.source.to_string(), "uid 6f1c");
        assert_eq!(route.generation, 3);
        assert_eq!(route.object.metadata.namespace(), "app");
    }

    #[test]
    fn a_field_tollgate_does_not_implement_refuses_that_object_naming_the_field() {
        let mut resources = Resources::default();
        let rule = json!({"backendRefs": [{"name": "s", "port": 80}], "sessionPersistence": {}});
        add(served_route(rule), &mut resources);
        assert!(resources.http_routes.is_empty());
        let refused = &resources.refused[0];
        assert_eq!(refused.object.kind, RefusedKind::HttpRoute);
        assert_eq!(refused.object.parent_refs[0].name, "eg");
        assert_eq!(refused.generation, 3);
        assert!(
            refused
                .object
                .problem
                .starts_with("uid 6f1c: spec.rules[0].sessionPersistence: unknown field"),
            "{}",
            refused.object.problem
        );
        assert_eq!(
            resources.load_errors,
            std::slice::from_ref(&refused.object.problem)
        );
    }

    #[test]
    fn kinds_tollgate_does_not_read_are_skipped_and_a_broken_service_is_reported() {
        let mut resources = Resources::default();
        add(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "uid": "1"}}),
            &mut resources,
        );
        add(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "uid": "2"}, "spec": {"ports": "eighty"}}),
            &mut resources,
        );
        assert!(resources.services.is_empty() && resources.refused.is_empty());
        assert!(resources.warnings[0].contains("\"ConfigMap\": not a kind Tollgate reads"));
        assert!(
            resources.load_errors[0].starts_with("uid 2: spec.ports: invalid type"),
            "{:?}",
            resources.load_errors
        );
    }
}
