//! Checks the status Tollgate reports against a step's expectations. The
//! document is the `status` object `tollgate translate` prints (and
//! `tollgate serve` writes): `gateways[]` with `namespace`, `name`,
//! `conditions`, `listeners[].attachedRoutes`, and `httpRoutes[]` with
//! `namespace`, `name`, `parents[].parentRef.{namespace,name}` and
//! `parents[].conditions`.

use serde_json::Value;

use super::cases::{
    ConditionExpectation, GatewayStatusExpectation, RouteStatusExpectation, StatusExpectations,
};
use super::placeholders::Backend;

/// Every way `status` differs from `expect`; `Ok` when it matches.
pub fn check_status(expect: &StatusExpectations, status: &Value) -> Result<(), String> {
    let mut diffs = Vec::new();
    for route in &expect.routes {
        check_route(route, status, &mut diffs);
    }
    for gateway in &expect.gateways {
        check_gateway(gateway, status, &mut diffs);
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("\n"))
    }
}

fn find<'a>(status: &'a Value, list: &str, name: &Backend) -> Option<&'a Value> {
    status.get(list)?.as_array()?.iter().find(|object| {
        str_at(object, "namespace") == name.namespace && str_at(object, "name") == name.name
    })
}

pub(super) fn str_at<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

pub(super) fn array_at<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn check_route(expect: &RouteStatusExpectation, status: &Value, diffs: &mut Vec<String>) {
    let name = match Backend::parse(&expect.name) {
        Ok(name) => name,
        Err(e) => return diffs.push(format!("HTTPRoute name: {e}")),
    };
    let Some(route) = find(status, "httpRoutes", &name) else {
        return diffs.push(format!("HTTPRoute {name}: no status reported"));
    };
    let parents = array_at(route, "parents");
    if expect.no_accepted_parents {
        for parent in parents {
            if has_condition(parent, "Accepted", "True") {
                diffs.push(format!(
                    "HTTPRoute {name}: expected no accepted parents, but {} accepted it",
                    parent_name(parent)
                ));
            }
        }
    }
    if expect.conditions.is_empty() {
        return;
    }
    let Some(parent) = &expect.parent else {
        return diffs.push(format!(
            "HTTPRoute {name}: conditions need the `parent` they are reported for"
        ));
    };
    let Some(reported) = parents.iter().find(|p| parent_name(p) == *parent) else {
        return diffs.push(format!(
            "HTTPRoute {name}: no status for parent {parent} (parents: {:?})",
            parents.iter().map(parent_name).collect::<Vec<_>>()
        ));
    };
    let conditions = array_at(reported, "conditions");
    for want in &expect.conditions {
        check_condition(
            &format!("HTTPRoute {name} (parent {parent})"),
            want,
            conditions,
            diffs,
        );
    }
}

fn parent_name(parent: &Value) -> String {
    let reference = parent.get("parentRef").unwrap_or(&Value::Null);
    format!(
        "{}/{}",
        str_at(reference, "namespace"),
        str_at(reference, "name")
    )
}

fn has_condition(object: &Value, kind: &str, status: &str) -> bool {
    array_at(object, "conditions")
        .iter()
        .any(|c| str_at(c, "type") == kind && str_at(c, "status") == status)
}

fn check_gateway(expect: &GatewayStatusExpectation, status: &Value, diffs: &mut Vec<String>) {
    let name = match Backend::parse(&expect.name) {
        Ok(name) => name,
        Err(e) => return diffs.push(format!("Gateway name: {e}")),
    };
    let Some(gateway) = find(status, "gateways", &name) else {
        return diffs.push(format!("Gateway {name}: no status reported"));
    };
    let conditions = array_at(gateway, "conditions");
    for want in &expect.conditions {
        check_condition(&format!("Gateway {name}"), want, conditions, diffs);
    }
    if let Some(want) = expect.attached_routes {
        let got: u64 = array_at(gateway, "listeners")
            .iter()
            .filter_map(|l| l.get("attachedRoutes").and_then(Value::as_u64))
            .sum();
        if got != u64::from(want) {
            diffs.push(format!(
                "Gateway {name}: {got} routes attached, expected {want}"
            ));
        }
    }
}

fn check_condition(
    what: &str,
    want: &ConditionExpectation,
    conditions: &[Value],
    diffs: &mut Vec<String>,
) {
    let Some(got) = conditions.iter().find(|c| str_at(c, "type") == want.kind) else {
        return diffs.push(format!("{what}: no {} condition", want.kind));
    };
    let (status, reason) = (str_at(got, "status"), str_at(got, "reason"));
    let reason_ok = want.reason.as_deref().is_none_or(|r| r == reason);
    if status != want.status.as_str() || !reason_ok {
        diffs.push(format!(
            "{what}: {} is {status} ({reason}: {:?}), expected {}{}",
            want.kind,
            str_at(got, "message"),
            want.status.as_str(),
            want.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape `tollgate translate` prints, trimmed to what the checks read.
    fn status() -> Value {
        serde_json::json!({
            "gateways": [{
                "namespace": "infra", "name": "same-namespace",
                "conditions": [{"type": "Programmed", "status": "True", "reason": "Programmed", "message": ""}],
                "listeners": [{"name": "http", "attachedRoutes": 1, "conditions": []}]
            }],
            "httpRoutes": [{
                "namespace": "infra", "name": "r",
                "parents": [{
                    "parentRef": {"namespace": "infra", "name": "same-namespace"},
                    "controllerName": "tollgate.dev/gateway-controller",
                    "conditions": [
                        {"type": "Accepted", "status": "True", "reason": "Accepted", "message": ""},
                        {"type": "ResolvedRefs", "status": "False", "reason": "RefNotPermitted", "message": "no grant"}
                    ]
                }]
            }]
        })
    }

    fn expect(yaml: &str) -> StatusExpectations {
        serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn matching_conditions_pass() {
        let want = expect(concat!(
            "routes:\n",
            "- name: infra/r\n",
            "  parent: infra/same-namespace\n",
            "  conditions: [{type: Accepted, status: True}, {type: ResolvedRefs, status: 'False', reason: RefNotPermitted}]\n",
            "gateways:\n",
            "- {name: infra/same-namespace, attachedRoutes: 1, conditions: [{type: Programmed, status: 'True'}]}\n",
        ));
        assert_eq!(check_status(&want, &status()), Ok(()));
    }

    #[test]
    fn every_mismatch_is_reported() {
        let want = expect(concat!(
            "routes:\n",
            "- name: infra/r\n",
            "  parent: infra/same-namespace\n",
            "  conditions: [{type: ResolvedRefs, status: 'True'}, {type: Other, status: 'True'}]\n",
            "  noAcceptedParents: true\n",
            "- {name: infra/missing}\n",
            "- {name: infra/r, parent: infra/elsewhere, conditions: [{type: Accepted, status: 'True'}]}\n",
            "gateways:\n",
            "- {name: infra/same-namespace, attachedRoutes: 0}\n",
        ));
        assert_eq!(
            check_status(&want, &status()),
            Err([
                "HTTPRoute infra/r: expected no accepted parents, but infra/same-namespace accepted it",
                "HTTPRoute infra/r (parent infra/same-namespace): ResolvedRefs is False (RefNotPermitted: \"no grant\"), expected True",
                "HTTPRoute infra/r (parent infra/same-namespace): no Other condition",
                "HTTPRoute infra/missing: no status reported",
                "HTTPRoute infra/r: no status for parent infra/elsewhere (parents: [\"infra/same-namespace\"])",
                "Gateway infra/same-namespace: 1 routes attached, expected 0",
            ]
            .join("\n"))
        );
    }

    #[test]
    fn a_condition_status_must_be_one_of_three() {
        let err = serde_yaml_ng::from_str::<StatusExpectations>(
            "routes: [{name: a/b, parent: a/g, conditions: [{type: Accepted, status: yes}]}]",
        )
        .map(|_| ())
        .map_err(|e| e.to_string());
        assert!(
            err.as_ref().is_err_and(|e| e
                .contains("a condition status is \"True\", \"False\" or \"Unknown\", not \"yes\"")),
            "{err:?}"
        );
    }
}
