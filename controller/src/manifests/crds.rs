//! The CustomResourceDefinitions of Tollgate's four policy kinds
//! (`tollgate.dev/v1alpha1`). Each `spec` schema is made from the very
//! types the loader reads and the filters compile (`tollgate_core`'s config
//! types, through `tollgate_resources::policies::spec_schema`), so the API
//! server refuses what the filter would refuse for shape (a misspelt field, a
//! string where a number goes) before Tollgate sees it. Values the schema
//! cannot express (a regular expression that does not compile, an unknown
//! JWT algorithm) are still checked by the filter's own compiler and
//! reported in the policy's status.
//!
//! schemars writes JSON Schema; kube's `StructuralSchemaRewriter` makes it
//! the structural subset Kubernetes requires, as `#[derive(CustomResource)]`
//! does (the derive is not used: the spec types live in the resources crate,
//! which must build without kube for the fuzz targets).

use kube::core::schema::{OptionalEnum, StructuralSchemaRewriter};
use schemars::generate::SchemaSettings;
use serde_json::{json, Value};

use crate::resources::policies::{spec_schema, PolicyKind, TOLLGATE_GROUP};

/// The API version of every Tollgate policy kind.
pub const VERSION: &str = "v1alpha1";

/// The CRDs of Tollgate's policy kinds, in `PolicyKind::ALL` order.
pub fn policy_crds() -> Vec<Value> {
    PolicyKind::ALL
        .into_iter()
        .filter(|kind| kind.group() == TOLLGATE_GROUP)
        .filter_map(crd)
        .collect()
}

fn crd(kind: PolicyKind) -> Option<Value> {
    let mut generator = SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(OptionalEnum)
        .with_transform(StructuralSchemaRewriter)
        .into_generator();
    let mut spec = spec_schema(kind, &mut generator)?.to_value();
    if let Some(fields) = spec.as_object_mut() {
        fields.remove("title");
        fields.remove("$schema");
    }
    let plural = kind.plural();
    let singular = kind.name().to_lowercase();
    Some(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": format!("{plural}.{TOLLGATE_GROUP}"),
            "labels": {"app.kubernetes.io/part-of": "tollgate"},
        },
        "spec": {
            "group": TOLLGATE_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.name(),
                "listKind": format!("{}List", kind.name()),
                "plural": plural,
                "singular": singular,
                "categories": ["tollgate", "gateway-api"],
            },
            "versions": [{
                "name": VERSION,
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Accepted", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Accepted\")].status"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": format!("{}: configures Tollgate's {} filter for the Gateway API objects its targetRefs name.", kind.name(), kind.filter().module()),
                    "required": ["spec"],
                    "properties": {
                        "spec": spec,
                        "status": status_schema(),
                    },
                }},
            }],
        },
    }))
}

/// `status.conditions`, as Gateway API's conditions (Tollgate writes
/// `Accepted`, keyed by type).
fn status_schema() -> Value {
    json!({
        "type": "object",
        "description": "Written by the Tollgate controller.",
        "properties": {
            "conditions": {
                "type": "array",
                "maxItems": 8,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
                "items": {
                    "type": "object",
                    "required": ["type", "status", "reason", "message", "lastTransitionTime"],
                    "properties": {
                        "type": {"type": "string", "maxLength": 316},
                        "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                        "reason": {"type": "string", "maxLength": 1024},
                        "message": {"type": "string", "maxLength": 32768},
                        "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
                        "lastTransitionTime": {"type": "string", "format": "date-time"},
                    },
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Kubernetes refuses in a structural schema, found anywhere in it.
    fn unstructural(path: &str, schema: &Value, found: &mut Vec<String>) {
        let Some(fields) = schema.as_object() else {
            return;
        };
        for bad in [
            "$ref",
            "$defs",
            "definitions",
            "oneOf",
            "anyOf",
            "allOf",
            "not",
        ] {
            if fields.contains_key(bad) {
                found.push(format!("{path}: {bad}"));
            }
        }
        if fields.get("additionalProperties") == Some(&Value::Bool(false)) {
            found.push(format!("{path}: additionalProperties: false"));
        }
        let open = fields.contains_key("x-kubernetes-preserve-unknown-fields")
            || fields.contains_key("x-kubernetes-int-or-string");
        if !fields.contains_key("type") && !open {
            found.push(format!("{path}: no type"));
        }
        if let Some(properties) = fields.get("properties").and_then(Value::as_object) {
            for (name, property) in properties {
                unstructural(&format!("{path}.{name}"), property, found);
            }
        }
        if let Some(items) = fields.get("items") {
            unstructural(&format!("{path}[]"), items, found);
        }
        if let Some(values) = fields.get("additionalProperties").filter(|v| v.is_object()) {
            unstructural(&format!("{path}{{}}"), values, found);
        }
    }

    #[test]
    fn each_tollgate_policy_kind_has_a_structural_crd_with_a_status_subresource() {
        let crds = policy_crds();
        let names: Vec<&str> = crds
            .iter()
            .map(|c| c["spec"]["names"]["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "RateLimitPolicy",
                "JWTPolicy",
                "HeaderPolicy",
                "CanaryPolicy"
            ]
        );
        for crd in &crds {
            let version = &crd["spec"]["versions"][0];
            assert_eq!(version["subresources"], json!({"status": {}}));
            let schema = &version["schema"]["openAPIV3Schema"];
            let mut found = Vec::new();
            unstructural("", schema, &mut found);
            assert!(found.is_empty(), "{}: {found:#?}", crd["metadata"]["name"]);
        }
    }

    #[test]
    fn a_spec_schema_is_the_filter_config_type_with_the_target_refs() {
        let crds = policy_crds();
        let rate_limit =
            &crds[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(
            rate_limit["required"],
            json!(["rateLimit", "targetRefs"]),
            "{rate_limit:#}"
        );
        let refs = &rate_limit["properties"]["targetRefs"]["items"];
        assert_eq!(refs["required"], json!(["group", "kind", "name"]));
        // A rule's limit unit is the filter's enum.
        let rule = &rate_limit["properties"]["rateLimit"]["properties"]["local"]["properties"]
            ["rules"]["items"];
        let unit = &rule["properties"]["limit"]["properties"]["unit"];
        assert!(
            unit["enum"]
                .as_array()
                .is_some_and(|u| u.contains(&json!("Second"))),
            "{unit:#}"
        );
    }
}
