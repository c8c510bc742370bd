//! The status Tollgate writes back to a Kubernetes API server, made from a
//! translation's status and the object as the server has it. Pure, so its
//! rules are unit-tested here; [`super::status_writer`] only talks to the
//! server.
//!
//! - A condition keeps its `lastTransitionTime` unless its status flips
//!   (the translator's status has no times: they would make every
//!   translation differ).
//! - A Gateway is `Programmed` only once an Envoy of it has accepted its
//!   current configuration over xDS. Until then a `Programmed=True` the
//!   server already has stays as it is (its observedGeneration says which
//!   generation is programmed); without one, the Gateway is
//!   `Programmed=False Pending`.
//! - A route's `status.parents` is an atomic list shared with other
//!   controllers: their entries are kept, ours (by controllerName) replaced.
//! - Nothing is written when the server already holds it.

use serde_json::{json, Value};

use crate::translate::status::{
    Condition, GatewayStatus, ParentReference, RouteParentStatus, CONTROLLER_NAME,
};

/// The longest condition message the Gateway API CRDs accept.
const MAX_MESSAGE: usize = 32_768;
/// The most entries a route's `status.parents` may hold.
const MAX_PARENTS: usize = 32;

/// `desired` as the API's conditions, each keeping the `lastTransitionTime`
/// of the condition of its type in `current` unless its status flipped.
pub fn conditions(desired: &[Condition], current: Option<&Value>, now: &str) -> Value {
    Value::Array(
        desired
            .iter()
            .map(|c| condition(c, find_condition(current, c.kind), now))
            .collect(),
    )
}

/// The status of a GatewayClass or a policy: conditions alone.
pub fn conditions_only(desired: &[Condition], current: Option<&Value>, now: &str) -> Value {
    json!({ "conditions": conditions(desired, current.and_then(|s| s.get("conditions")), now) })
}

/// A Gateway's status; `running`: an Envoy of it has accepted its current
/// configuration.
pub fn gateway(
    desired: &GatewayStatus,
    current: Option<&Value>,
    running: bool,
    now: &str,
) -> Value {
    let current_conditions = current.and_then(|s| s.get("conditions"));
    let gateway_conditions: Vec<Value> = desired
        .conditions
        .iter()
        .map(|c| {
            let old = find_condition(current_conditions, c.kind);
            if c.kind != "Programmed" || c.status != "True" || running {
                return condition(c, old, now);
            }
            match old {
                Some(old) if old["status"] == "True" => old.clone(),
                _ => condition(&pending(c), old, now),
            }
        })
        .collect();
    let current_listeners = current
        .and_then(|s| s.get("listeners"))
        .and_then(Value::as_array);
    let listeners: Vec<Value> = desired
        .listeners
        .iter()
        .map(|l| {
            let old = current_listeners
                .and_then(|ls| ls.iter().find(|x| x["name"] == l.name.as_str()))
                .and_then(|x| x.get("conditions"));
            json!({
                "name": l.name,
                "supportedKinds": l.supported_kinds,
                "attachedRoutes": l.attached_routes,
                "conditions": conditions(&l.conditions, old, now),
            })
        })
        .collect();
    let mut status = json!({ "conditions": gateway_conditions, "listeners": listeners });
    if !desired.addresses.is_empty() {
        status["addresses"] = json!(desired.addresses);
    }
    status
}

/// A provisioned Gateway's addresses are its Envoy Service's load balancer
/// ingress (none until the load balancer gives one); whether it has one.
pub fn addresses_from(status: &mut Value, service: Option<&Value>) -> bool {
    let ingress = service
        .and_then(|s| s.pointer("/status/loadBalancer/ingress"))
        .and_then(Value::as_array);
    let addresses: Vec<Value> = ingress
        .into_iter()
        .flatten()
        .filter_map(|i| match (i["ip"].as_str(), i["hostname"].as_str()) {
            (Some(ip), _) => Some(json!({"type": "IPAddress", "value": ip})),
            (None, Some(host)) => Some(json!({"type": "Hostname", "value": host})),
            _ => None,
        })
        .collect();
    let addressed = !addresses.is_empty();
    if let Some(fields) = status.as_object_mut() {
        if addressed {
            fields.insert("addresses".to_owned(), Value::Array(addresses));
        } else {
            fields.remove("addresses");
        }
    }
    addressed
}

/// A provisioned Gateway whose Service has no address yet is not
/// programmed (`AddressNotAssigned`, as Gateway API says), whatever runs.
pub fn unaddressed(status: &mut Value, current: Option<&Value>, service: &str, now: &str) {
    let old = find_condition(current.and_then(|s| s.get("conditions")), "Programmed");
    let Some(programmed) = status["conditions"]
        .as_array_mut()
        .and_then(|cs| cs.iter_mut().find(|c| c["type"] == "Programmed"))
    else {
        return;
    };
    if programmed["status"] != "True" {
        return;
    }
    let desired = Condition {
        observed_generation: programmed["observedGeneration"].as_i64().unwrap_or(0),
        ..Condition::new(
            "Programmed",
            false,
            "AddressNotAssigned",
            format!("Waiting for the load balancer of Service {service} to give an address"),
        )
    };
    *programmed = condition(&desired, old, now);
}

/// A route's `status.parents` with Tollgate's entries replaced by `ours`
/// and every other controller's kept; `None` when the server has that
/// already.
pub fn route_parents(
    ours: &[RouteParentStatus],
    current: Option<&Value>,
    now: &str,
) -> Option<Value> {
    let existing = current
        .and_then(|s| s.get("parents"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let (mine, mut parents): (Vec<Value>, Vec<Value>) = existing
        .into_iter()
        .partition(|p| p["controllerName"] == CONTROLLER_NAME);
    let desired: Vec<Value> = ours
        .iter()
        .map(|p| {
            let parent_ref = parent_reference(&p.parent_ref);
            let old = mine
                .iter()
                .find(|m| m["parentRef"] == parent_ref)
                .and_then(|m| m.get("conditions"));
            json!({
                "parentRef": parent_ref,
                "controllerName": p.controller_name,
                "conditions": conditions(&p.conditions, old, now),
            })
        })
        .collect();
    if desired == mine {
        return None;
    }
    let room = MAX_PARENTS.saturating_sub(parents.len());
    parents.extend(desired.into_iter().take(room));
    Some(Value::Array(parents))
}

/// Whether `current` (an object's status on the server) holds every field
/// of `desired` as it is.
pub fn holds(current: Option<&Value>, desired: &Value) -> bool {
    desired.as_object().is_some_and(|fields| {
        fields
            .iter()
            .all(|(key, value)| current.and_then(|c| c.get(key)) == Some(value))
    })
}

/// `status` without its `lastTransitionTime`s: what a write decided, apart
/// from when.
pub fn timeless(status: &Value) -> Value {
    match status {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter(|(key, _)| key.as_str() != "lastTransitionTime")
                .map(|(key, value)| (key.clone(), timeless(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(timeless).collect()),
        other => other.clone(),
    }
}

fn find_condition<'a>(conditions: Option<&'a Value>, kind: &str) -> Option<&'a Value> {
    conditions?.as_array()?.iter().find(|c| c["type"] == kind)
}

fn condition(desired: &Condition, current: Option<&Value>, now: &str) -> Value {
    let since = match current.and_then(|c| c.get("lastTransitionTime")) {
        Some(time) if current.is_some_and(|c| c["status"] == desired.status) => time.clone(),
        _ => Value::String(now.to_owned()),
    };
    json!({
        "type": desired.kind,
        "status": desired.status,
        "reason": desired.reason,
        "message": truncated(&desired.message),
        "observedGeneration": desired.observed_generation,
        "lastTransitionTime": since,
    })
}

/// `Programmed=False Pending`, for a Gateway no Envoy runs yet.
fn pending(programmed: &Condition) -> Condition {
    Condition {
        observed_generation: programmed.observed_generation,
        ..Condition::new(
            "Programmed",
            false,
            "Pending",
            "Waiting for an Envoy of this Gateway to accept its configuration over xDS".to_owned(),
        )
    }
}

fn parent_reference(parent: &ParentReference) -> Value {
    let mut reference = json!({
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "namespace": parent.namespace,
        "name": parent.name,
    });
    if let Some(section) = &parent.section_name {
        reference["sectionName"] = json!(section);
    }
    if let Some(port) = parent.port {
        reference["port"] = json!(port);
    }
    reference
}

fn truncated(message: &str) -> &str {
    if message.len() <= MAX_MESSAGE {
        return message;
    }
    let mut end = MAX_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::status::{ListenerStatus, RouteGroupKind};

    const T0: &str = "2026-01-01T00:00:00Z";
    const T1: &str = "2026-01-02T00:00:00Z";

    fn accepted(ok: bool, generation: i64) -> Condition {
        let reason = if ok { "Accepted" } else { "Invalid" };
        Condition {
            observed_generation: generation,
            ..Condition::new("Accepted", ok, reason, String::new())
        }
    }

    fn gateway_status(programmed: bool) -> GatewayStatus {
        GatewayStatus {
            namespace: "web".into(),
            name: "eg".into(),
            addresses: Vec::new(),
            conditions: vec![
                accepted(true, 2),
                Condition {
                    observed_generation: 2,
                    ..Condition::new("Programmed", programmed, "Programmed", String::new())
                },
            ],
            listeners: vec![ListenerStatus {
                name: "http".into(),
                supported_kinds: vec![RouteGroupKind {
                    group: "gateway.networking.k8s.io",
                    kind: "HTTPRoute",
                }],
                attached_routes: 1,
                conditions: vec![accepted(true, 2)],
            }],
        }
    }

    fn ours(gateway: &str, ok: bool) -> RouteParentStatus {
        RouteParentStatus {
            parent_ref: ParentReference {
                namespace: "web".into(),
                name: gateway.into(),
                section_name: None,
                port: None,
            },
            controller_name: CONTROLLER_NAME.into(),
            conditions: vec![accepted(ok, 1)],
        }
    }

    #[test]
    fn a_condition_keeps_its_transition_time_unless_its_status_flips() {
        let first = conditions(&[accepted(true, 1)], None, T0);
        assert_eq!(first[0]["lastTransitionTime"], T0);
        let again = conditions(&[accepted(true, 2)], Some(&first), T1);
        assert_eq!(again[0]["lastTransitionTime"], T0, "still True");
        assert_eq!(again[0]["observedGeneration"], 2);
        let flipped = conditions(&[accepted(false, 3)], Some(&again), T1);
        assert_eq!(flipped[0]["lastTransitionTime"], T1);
    }

    #[test]
    fn a_gateway_no_envoy_runs_yet_is_pending_and_one_programmed_before_stays_so() {
        let desired = gateway_status(true);
        let never = gateway(&desired, None, false, T0);
        assert_eq!(never["conditions"][1]["status"], "False");
        assert_eq!(never["conditions"][1]["reason"], "Pending");
        assert_eq!(
            never["conditions"][0]["status"], "True",
            "Accepted is not held"
        );

        let running = gateway(&desired, Some(&never), true, T1);
        assert_eq!(running["conditions"][1]["status"], "True");
        assert_eq!(running["conditions"][1]["lastTransitionTime"], T1);

        // A new generation its Envoy has not accepted yet: the server's
        // Programmed (of generation 1) stays as it is.
        let mut earlier = running.clone();
        earlier["conditions"][1]["observedGeneration"] = json!(1);
        let catching_up = gateway(&desired, Some(&earlier), false, T1);
        assert_eq!(catching_up["conditions"][1], earlier["conditions"][1]);

        // A Gateway the translator cannot program is False whatever runs.
        let broken = gateway(&gateway_status(false), Some(&running), true, T1);
        assert_eq!(broken["conditions"][1]["reason"], "Programmed");
        assert_eq!(broken["conditions"][1]["status"], "False");
        assert_eq!(broken["listeners"][0]["attachedRoutes"], 1);
    }

    #[test]
    fn other_controllers_route_parents_are_kept_and_ours_replaced() {
        let theirs = json!({
            "parentRef": {"name": "theirs", "namespace": "web"},
            "controllerName": "example.com/other",
            "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "", "lastTransitionTime": T0}],
        });
        let current = json!({ "parents": [theirs.clone()] });
        let written = route_parents(&[ours("eg", true)], Some(&current), T0).unwrap();
        assert_eq!(written.as_array().unwrap().len(), 2);
        assert_eq!(written[0], theirs);
        assert_eq!(written[1]["parentRef"]["name"], "eg");
        assert_eq!(written[1]["parentRef"]["kind"], "Gateway");

        let now_current = json!({ "parents": written });
        assert_eq!(
            route_parents(&[ours("eg", true)], Some(&now_current), T1),
            None,
            "the server has it: nothing to write"
        );
        let flipped = route_parents(&[ours("eg", false)], Some(&now_current), T1).unwrap();
        assert_eq!(flipped[1]["conditions"][0]["lastTransitionTime"], T1);
        let detached = route_parents(&[], Some(&now_current), T1).unwrap();
        assert_eq!(detached, json!([theirs]), "ours removed, theirs kept");
    }

    #[test]
    fn a_status_the_server_holds_is_not_written_again() {
        let desired = conditions_only(&[accepted(true, 1)], None, T0);
        let server = json!({"conditions": desired["conditions"], "other": 1});
        assert!(holds(Some(&server), &desired));
        let later = conditions_only(&[accepted(true, 2)], Some(&server), T1);
        assert!(!holds(Some(&server), &later), "a new generation is news");
        assert!(!holds(None, &desired));
        assert_eq!(
            timeless(&desired),
            timeless(&conditions_only(&[accepted(true, 1)], None, T1)),
            "only the time differs"
        );
    }

    #[test]
    fn a_provisioned_gateway_is_addressed_by_its_load_balancer() {
        let mut status = gateway(&gateway_status(true), None, true, T0);
        status["addresses"] = json!([{"type": "IPAddress", "value": "0.0.0.0"}]);
        assert!(!addresses_from(&mut status, None));
        unaddressed(&mut status, None, "envoy", T1);
        assert_eq!(status["conditions"][1]["reason"], "AddressNotAssigned");
        assert!(
            status.get("addresses").is_none(),
            "no address before the load balancer's"
        );
        let service = json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}, {"hostname": "lb.example"}]}}});
        assert!(addresses_from(&mut status, Some(&service)));
        assert_eq!(
            status["addresses"],
            json!([{"type": "IPAddress", "value": "192.0.2.7"}, {"type": "Hostname", "value": "lb.example"}])
        );
    }

    #[test]
    fn an_overlong_message_is_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_MESSAGE);
        let cut = truncated(&long);
        assert!(cut.len() <= MAX_MESSAGE && cut.chars().all(|c| c == 'é'));
    }
}
