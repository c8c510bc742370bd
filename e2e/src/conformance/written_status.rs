//! The status Tollgate wrote to the Gateways and HTTPRoutes of the API server
//! ([`super::source::Source::Kubernetes`]), in the shape of serve's
//! `/status`, so that a step's status expectations are checked on both:
//! what serve reports, and what it wrote where `kubectl get` and every other
//! controller read it.
//!
//! Written status lags the translation (the leader writes after it, and a
//! Gateway's `Programmed` after Envoy accepted its configuration), and a
//! status left from before a change can look right (the base Gateway's
//! `attachedRoutes: 0` before the test's route arrived). So besides the
//! expectations, the written status of every object a step names must agree
//! with `/status` (which the runner's sync made current): conditions by
//! type, status and reason, listeners by name and attached routes, a
//! route's parents (Tollgate's entries) by reference.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use serde_json::{json, Value};

use super::cases::StatusExpectations;
use super::placeholders::Backend;
use super::status::{array_at, check_status, str_at};
use crate::kube_apiserver::KubeApiServer;

/// The controller name of Tollgate's entries in a route's `status.parents`.
pub const CONTROLLER_NAME: &str = "tollgate.dev/gateway-controller";

/// Every Gateway's and HTTPRoute's written status, as a `/status` document.
pub fn read(api: &KubeApiServer) -> Result<Value> {
    let text = api.kubectl_ok(&[
        "get",
        "gateways.gateway.networking.k8s.io,httproutes.gateway.networking.k8s.io",
        "--all-namespaces",
        "-o",
        "json",
    ])?;
    let list: Value = serde_json::from_str(&text).context("kubectl get printed no JSON")?;
    Ok(document(&list))
}

/// A `/status` document (`gateways[]`, `httpRoutes[]`) of the objects in a
/// List: each with its namespace, name and written status; a route's parents
/// only Tollgate's, each `parentRef` with its namespace (the route's when
/// unset).
pub fn document(list: &Value) -> Value {
    let mut gateways = Vec::new();
    let mut routes = Vec::new();
    let items = list.get("items").and_then(Value::as_array);
    for item in items.into_iter().flatten() {
        let namespace = str_at(&item["metadata"], "namespace");
        let name = str_at(&item["metadata"], "name");
        let status = &item["status"];
        match str_at(item, "kind") {
            "Gateway" => gateways.push(json!({
                "namespace": namespace,
                "name": name,
                "conditions": status.get("conditions").cloned().unwrap_or(json!([])),
                "listeners": status.get("listeners").cloned().unwrap_or(json!([])),
            })),
            "HTTPRoute" => {
                let parents: Vec<Value> = array_at(status, "parents")
                    .iter()
                    .filter(|p| str_at(p, "controllerName") == CONTROLLER_NAME)
                    .map(|p| {
                        let mut parent = p.clone();
                        if str_at(&parent["parentRef"], "namespace").is_empty() {
                            parent["parentRef"]["namespace"] = json!(namespace);
                        }
                        parent
                    })
                    .collect();
                routes.push(json!({"namespace": namespace, "name": name, "parents": parents}));
            }
            _ => {}
        }
    }
    json!({"gateways": gateways, "httpRoutes": routes})
}

/// Whether `written` meets `expect` and agrees with `served` (`/status`) on
/// every object `expect` names; every difference otherwise.
pub fn check(expect: &StatusExpectations, served: &Value, written: &Value) -> Result<(), String> {
    let mut diffs: Vec<String> = check_status(expect, written).err().into_iter().collect();
    for route in &expect.routes {
        compare(
            "HTTPRoute",
            "httpRoutes",
            &route.name,
            served,
            written,
            route_summary,
            &mut diffs,
        );
    }
    for gateway in &expect.gateways {
        compare(
            "Gateway",
            "gateways",
            &gateway.name,
            served,
            written,
            gateway_summary,
            &mut diffs,
        );
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("\n"))
    }
}

/// What is compared of an object's status, as sorted lines.
type Summary = Vec<String>;

fn compare(
    kind: &str,
    list: &str,
    name: &str,
    served: &Value,
    written: &Value,
    summary: fn(&Value) -> Summary,
    diffs: &mut Vec<String>,
) {
    let Ok(name) = Backend::parse(name) else {
        return; // check_status reported it
    };
    let of = |document: &Value| find(document, list, &name).map(summary);
    let (served, written) = (of(served), of(written));
    if served != written {
        diffs.push(format!(
            "{kind} {name}: the status written to the object is not serve's /status:\n  written: {}\n  /status: {}",
            show(written.as_ref()),
            show(served.as_ref())
        ));
    }
}

fn show(summary: Option<&Summary>) -> String {
    match summary {
        None => "none".into(),
        Some(lines) => lines.join("; "),
    }
}

fn find<'a>(document: &'a Value, list: &str, name: &Backend) -> Option<&'a Value> {
    array_at(document, list).iter().find(|object| {
        str_at(object, "namespace") == name.namespace && str_at(object, "name") == name.name
    })
}

fn gateway_summary(gateway: &Value) -> Summary {
    let mut lines = conditions(gateway);
    for listener in array_at(gateway, "listeners") {
        let attached = listener
            .get("attachedRoutes")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let name = str_at(listener, "name");
        lines.push(format!("listener {name}: {attached} attached"));
        lines.extend(
            conditions(listener)
                .into_iter()
                .map(|c| format!("listener {name}: {c}")),
        );
    }
    lines.sort();
    lines
}

fn route_summary(route: &Value) -> Summary {
    let mut lines = Vec::new();
    for parent in array_at(route, "parents") {
        if !matches!(str_at(parent, "controllerName"), "" | CONTROLLER_NAME) {
            continue;
        }
        let reference = &parent["parentRef"];
        let mut at = format!(
            "parent {}/{}",
            str_at(reference, "namespace"),
            str_at(reference, "name")
        );
        if let Some(section) = reference.get("sectionName").and_then(Value::as_str) {
            at.push_str(&format!(" section {section}"));
        }
        if let Some(port) = reference.get("port").and_then(Value::as_u64) {
            at.push_str(&format!(" port {port}"));
        }
        lines.extend(conditions(parent).into_iter().map(|c| format!("{at}: {c}")));
        lines.push(at);
    }
    lines.sort();
    lines
}

/// An object's conditions as `type=status (reason)`, by type.
fn conditions(object: &Value) -> Summary {
    let by_type: BTreeMap<&str, String> = array_at(object, "conditions")
        .iter()
        .map(|c| {
            let kind = str_at(c, "type");
            (
                kind,
                format!("{kind}={} ({})", str_at(c, "status"), str_at(c, "reason")),
            )
        })
        .collect();
    by_type.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(kind: &str, status: &str, reason: &str) -> Value {
        json!({"type": kind, "status": status, "reason": reason, "message": "m",
               "lastTransitionTime": "2026-12-01T00:00:00Z", "observedGeneration": 1})
    }

    /// A List as `kubectl get gateways,httproutes -A -o json` prints it.
    fn list(attached: u64, route_accepted: &str) -> Value {
        json!({"kind": "List", "items": [
            {"kind": "Gateway", "metadata": {"namespace": "infra", "name": "gw", "generation": 1},
             "status": {"conditions": [condition("Programmed", "True", "Programmed"), condition("Accepted", "True", "Accepted")],
                        "listeners": [{"name": "http", "attachedRoutes": attached, "conditions": [condition("Accepted", "True", "Accepted")]}]}},
            {"kind": "HTTPRoute", "metadata": {"namespace": "infra", "name": "r"},
             "status": {"parents": [
                {"parentRef": {"name": "gw"}, "controllerName": CONTROLLER_NAME,
                 "conditions": [condition("Accepted", route_accepted, "Accepted")]},
                {"parentRef": {"name": "theirs"}, "controllerName": "example.com/other",
                 "conditions": [condition("Accepted", "True", "Accepted")]}]}},
            {"kind": "HTTPRoute", "metadata": {"namespace": "infra", "name": "new"}}
        ]})
    }

    fn expect(yaml: &str) -> StatusExpectations {
        serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn written_status_reads_as_a_status_document_of_tollgate_s_entries() {
        let document = document(&list(1, "True"));
        assert_eq!(document["gateways"][0]["listeners"][0]["attachedRoutes"], 1);
        let parents = document["httpRoutes"][0]["parents"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(parents.len(), 1, "{document:#}");
        assert_eq!(parents[0]["parentRef"]["namespace"], "infra");
        assert_eq!(document["httpRoutes"][1]["parents"], json!([]));
        let want = expect(concat!(
            "routes: [{name: infra/r, parent: infra/gw, conditions: [{type: Accepted, status: 'True'}]}]\n",
            "gateways: [{name: infra/gw, attachedRoutes: 1, conditions: [{type: Programmed, status: 'True'}]}]\n",
        ));
        assert_eq!(check(&want, &document, &document), Ok(()));
    }

    #[test]
    fn written_status_that_meets_the_expectation_must_still_be_serve_s() {
        let served = document(&list(1, "True"));
        let stale = document(&list(0, "True"));
        let want = expect("gateways: [{name: infra/gw}]\n");
        let err = check(&want, &served, &stale).err().unwrap_or_default();
        assert!(
            err.starts_with(
                "Gateway infra/gw: the status written to the object is not serve's /status:"
            ),
            "{err}"
        );
        assert!(err.contains("listener http: 0 attached"), "{err}");
    }

    #[test]
    fn written_status_is_checked_against_the_expectation() {
        let written = document(&list(1, "False"));
        let want = expect(
            "routes: [{name: infra/r, parent: infra/gw, conditions: [{type: Accepted, status: 'True'}]}]\n",
        );
        let err = check(&want, &written, &written).err().unwrap_or_default();
        assert_eq!(
            err,
            "HTTPRoute infra/r (parent infra/gw): Accepted is False (Accepted: \"m\"), expected True"
        );
        let missing = expect("routes: [{name: infra/gone}]\n");
        let err = check(&missing, &written, &written)
            .err()
            .unwrap_or_default();
        assert_eq!(err, "HTTPRoute infra/gone: no status reported");
    }
}
