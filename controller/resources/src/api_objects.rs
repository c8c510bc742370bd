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

/// The Gateway API group.
const GATEWAY_API: &str = "gateway.networking.k8s.io";

/// Adds one object to `resources`: loaded, refused, skipped with a warning (a
/// kind Tollgate does not read), or left out with its problem in
/// `load_errors` (an object of a kind without status that does not parse).
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
    let document = if let Some(policy_kind) = PolicyKind::from_group_kind(group, &kind) {
        policy(policy_kind, &value)
            .map(|o| Document::Policy(loaded(o, at)))
            .map_err(|e| (Some(RefusedKind::Policy(policy_kind)), e))
    } else {
        match (group, kind.as_str()) {
            (GATEWAY_API, "GatewayClass") => object(
                &value,
                at,
                Document::GatewayClass,
                Some(RefusedKind::GatewayClass),
            ),
            (GATEWAY_API, "Gateway") => {
                object(&value, at, Document::Gateway, Some(RefusedKind::Gateway))
            }
            (GATEWAY_API, "HTTPRoute") => object(
                &value,
                at,
                Document::HttpRoute,
                Some(RefusedKind::HttpRoute),
            ),
            (GATEWAY_API, "GRPCRoute") => object(
                &value,
                at,
                Document::GrpcRoute,
                Some(RefusedKind::GrpcRoute),
            ),
            (GATEWAY_API, "ReferenceGrant") => object(&value, at, Document::ReferenceGrant, None),
            ("", "Service") => object(&value, at, Document::Service, None),
            ("", "Secret") => object(&value, at, Document::Secret, None),
            ("", "Namespace") => object(&value, at, Document::Namespace, None),
            ("discovery.k8s.io", "EndpointSlice") => {
                object(&value, at, Document::EndpointSlice, None)
            }
            _ => Ok(Document::Skipped(format!(
                "{origin}: skipped {api_version:?} {kind:?}: not a kind Tollgate reads"
            ))),
        }
    };
    match document {
        Ok(document) => resources.add(&document),
        Err((refusable, why)) => {
            let problem = format!("{origin}: {why}");
            let refused = refusable.and_then(|k| RefusedObject::read(k, &value, problem.clone()));
            match refused {
                Some(refused) => resources.add(&Document::Refused(loaded(refused, at))),
                None => resources.load_errors.push(problem),
            }
        }
    }
}

/// `value` typed as `T` and wrapped as its `document`; on failure the
/// problem, and the kind it is refused as (`None`: left out).
fn object<T: DeserializeOwned>(
    value: &Value,
    at: (&Origin, i64),
    document: fn(Loaded<T>) -> Document,
    refusable: Option<RefusedKind>,
) -> Result<Document, (Option<RefusedKind>, String)> {
    typed(value)
        .map(|o| document(loaded(o, at)))
        .map_err(|e| (refusable, e))
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
        let problems: Vec<&str> = resources.problems().collect();
        assert_eq!(problems, [refused.object.problem.as_str()]);
        assert!(resources.load_errors.is_empty(), "refused, not left out");
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
