//! The status of objects refused at load (`resources::refused`): a document
//! of a kind with status that did not parse as that kind costs only itself.
//! Each Tollgate GatewayClass and Gateway among them is `Accepted=False`
//! (and a Gateway not `Programmed`), each route is `Accepted=False` on every
//! Tollgate Gateway its parentRefs name, with reason `UnsupportedValue` and
//! the problem as the message (file:line:column and the field). A refused
//! route is placed nowhere; a refused policy is an invalid one, so its routes
//! answer 500 (`policy_filters`).

use super::attach::{refused_route_status, RouteHead};
use super::listeners::{GatewayPlan, RouteKind};
use super::status::{
    observed, Condition, GatewayClassStatus, GatewayStatus, Status, CONTROLLER_NAME,
};
use crate::resources::refused::RefusedKind;
use crate::resources::Resources;

const REASON: &str = "UnsupportedValue";

/// Adds the status of every refused object that is Tollgate's to `status`
/// (`classes`: the names of Tollgate's GatewayClasses).
pub fn report(
    resources: &Resources,
    classes: &[&str],
    plans: &[GatewayPlan<'_>],
    status: &mut Status,
) {
    for loaded in &resources.refused {
        let object = &loaded.object;
        let refused = || Condition::new("Accepted", false, REASON, object.problem.clone());
        let owner = object.owner.as_deref();
        let meta = &object.metadata;
        match object.kind {
            RefusedKind::GatewayClass if owner == Some(CONTROLLER_NAME) => {
                status.gateway_classes.push(GatewayClassStatus {
                    name: meta.name.clone(),
                    conditions: observed(vec![refused()], loaded.generation),
                });
            }
            RefusedKind::Gateway if owner.is_some_and(|c| classes.contains(&c)) => {
                let not_programmed =
                    Condition::new("Programmed", false, "Invalid", object.problem.clone());
                status.gateways.push(GatewayStatus {
                    namespace: meta.namespace().to_owned(),
                    name: meta.name.clone(),
                    addresses: Vec::new(),
                    conditions: observed(vec![refused(), not_programmed], loaded.generation),
                    listeners: Vec::new(),
                });
            }
            RefusedKind::HttpRoute | RefusedKind::GrpcRoute => {
                let (kind, list) = match object.kind {
                    RefusedKind::HttpRoute => (RouteKind::Http, &mut status.http_routes),
                    _ => (RouteKind::Grpc, &mut status.grpc_routes),
                };
                let head = RouteHead {
                    kind,
                    namespace: meta.namespace(),
                    name: &meta.name,
                    hostnames: &[],
                    parent_refs: &object.parent_refs,
                    rules: 0,
                    generation: loaded.generation,
                };
                list.extend(refused_route_status(&head, plans, refused()));
            }
            _ => {}
        }
    }
}
