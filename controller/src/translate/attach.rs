//! Attaching routes to Gateways: which listeners each route's parentRefs
//! select and admit (`attach`), the parent statuses that come of it, and the
//! placement of its Envoy routes in the virtual hosts of the programmed
//! listeners. A route the CRDs would refuse as a whole (`route_checks`) is
//! refused on every parent and placed nowhere.

use super::invalid_rules::InvalidRules;
use super::listeners::{GatewayPlan, RouteKind};
use super::policy_filters::Sites;
use super::status::{
    observed, Condition, ParentReference, RouteParentStatus, RouteStatus, CONTROLLER_NAME,
};
use super::{hostnames, route_checks, HostRoutes, RankedRoute, VirtualHosts, GATEWAY_GROUP};
use std::sync::Arc;

use super::precedence::Precedence;
use super::route_plan::PlannedRoute;
use crate::resources::{ParentRef, Resources};

/// What a route of either kind has ahead of its rules.
pub struct RouteHead<'a> {
    pub kind: RouteKind,
    pub namespace: &'a str,
    pub name: &'a str,
    pub hostnames: &'a [String],
    pub parent_refs: &'a [ParentRef],
    /// How many rules it has.
    pub rules: usize,
    pub generation: i64,
}

/// What attaching changes: the Gateways' plans (attached routes), the
/// virtual hosts and the route sites.
pub type AttachState<'s, 'r> = (
    &'r Resources,
    &'s mut [GatewayPlan<'r>],
    &'s mut VirtualHosts<'r>,
    &'s mut Sites<'r>,
);

/// One route's status: refused as a whole when the CRD would refuse it
/// (`route_checks`), else its Envoy routes (`build`) attached and placed,
/// with its rules' validity (`invalid_rules`); `None` when it names no
/// Tollgate Gateway (another controller's route).
pub fn route_status<'r>(
    route: &RouteHead<'_>,
    (resources, plans, hosts, sites): AttachState<'_, 'r>,
    build: impl FnOnce(&mut Sites<'r>) -> (Condition, InvalidRules, Vec<RankedRoute<'r>>),
) -> Option<RouteStatus> {
    let parents =
        match route_checks::check(route.kind, route.hostnames, route.parent_refs, route.rules) {
            Err(why) => {
                let refused = Condition::new("Accepted", false, "UnsupportedValue", why);
                return refused_route_status(route, plans, refused);
            }
            Ok(()) => {
                let (resolved_refs, invalid_rules, routes) = build(sites);
                let mut parents = attach_route(
                    resources,
                    plans,
                    route,
                    routes,
                    &resolved_refs,
                    hosts,
                    sites,
                );
                invalid_rules.apply(&mut parents);
                parents
            }
        };
    of_parents(route, parents)
}

/// The status of a route refused as a whole (`accepted` False), placed
/// nowhere; `None` when it names no Tollgate Gateway.
pub fn refused_route_status(
    route: &RouteHead<'_>,
    plans: &[GatewayPlan<'_>],
    accepted: Condition,
) -> Option<RouteStatus> {
    of_parents(route, refused_parents(plans, route, accepted))
}

fn of_parents(route: &RouteHead<'_>, parents: Vec<RouteParentStatus>) -> Option<RouteStatus> {
    (!parents.is_empty()).then(|| RouteStatus {
        namespace: route.namespace.to_owned(),
        name: route.name.to_owned(),
        parents,
    })
}

/// The parent statuses of a route refused as a whole (`accepted` False) on
/// each Tollgate Gateway its parentRefs name, once per parent reference
/// (a route refused for naming one twice gets one entry); nothing is attached.
fn refused_parents(
    plans: &[GatewayPlan<'_>],
    route: &RouteHead<'_>,
    accepted: Condition,
) -> Vec<RouteParentStatus> {
    let mut parents: Vec<RouteParentStatus> = Vec::new();
    for parent in route.parent_refs {
        let Some(plan) = find_gateway(plans, parent, route.namespace) else {
            continue;
        };
        let resolved = Condition::new("ResolvedRefs", true, "ResolvedRefs", String::new());
        let conditions = observed(vec![accepted.clone(), resolved], route.generation);
        let status = parent_status(plan, parent, conditions);
        if !parents.iter().any(|p| p.parent_ref == status.parent_ref) {
            parents.push(status);
        }
    }
    parents
}

/// One parent's entry in a route's status.
fn parent_status(
    plan: &GatewayPlan<'_>,
    parent: &ParentRef,
    conditions: Vec<Condition>,
) -> RouteParentStatus {
    RouteParentStatus {
        parent_ref: ParentReference {
            namespace: plan.gateway.metadata.namespace().to_owned(),
            name: plan.gateway.metadata.name.clone(),
            section_name: parent.section_name.clone(),
            port: parent.port,
        },
        controller_name: CONTROLLER_NAME.to_owned(),
        conditions,
    }
}

/// Attaches one route to every Tollgate Gateway its parentRefs name and
/// places its Envoy routes; returns its parent statuses, each with the
/// route's `ResolvedRefs` condition and generation.
fn attach_route<'r>(
    resources: &Resources,
    plans: &mut [GatewayPlan<'r>],
    route: &RouteHead<'_>,
    routes: Vec<RankedRoute<'r>>,
    resolved_refs: &Condition,
    hosts: &mut VirtualHosts<'r>,
    sites: &mut Sites<'r>,
) -> Vec<RouteParentStatus> {
    let mut parents = Vec::new();
    let mut placements = Vec::new();
    for parent in route.parent_refs {
        let Some(plan) = find_gateway_mut(plans, parent, route.namespace) else {
            continue; // not a Gateway Tollgate owns: another controller's status
        };
        let accepted = attach(
            resources,
            plan,
            parent,
            (route, &routes),
            &mut placements,
            sites,
        );
        let conditions = observed(vec![accepted, resolved_refs.clone()], route.generation);
        parents.push(parent_status(plan, parent, conditions));
    }
    place(routes, &placements, hosts);
    parents
}

/// A virtual host a route was attached to, and the listener serving it (a
/// redirect's port depends on it).
struct Placement<'g> {
    port: u32,
    hostname: String,
    listener: &'g crate::resources::gateway_api::Listener,
}

impl Placement<'_> {
    /// The virtual host placed in, created if new.
    fn host<'h, 'r>(&self, hosts: &'h mut VirtualHosts<'r>) -> &'h mut HostRoutes<'r> {
        let vhosts = hosts.entry(self.port).or_default();
        vhosts.entry(self.hostname.clone()).or_default()
    }
}

/// Puts each route in the virtual hosts it was attached to, shared by them.
fn place<'r>(
    routes: Vec<RankedRoute<'r>>,
    placements: &[Placement<'r>],
    hosts: &mut VirtualHosts<'r>,
) {
    if placements.is_empty() {
        return;
    }
    let routes: Vec<(Precedence<'r>, Arc<PlannedRoute<'r>>)> =
        routes.into_iter().map(|(p, r)| (p, Arc::new(r))).collect();
    for at in placements {
        let host = at.host(hosts);
        for (precedence, route) in &routes {
            host.add(precedence, route, at.listener);
        }
    }
}

/// The plan of the Tollgate Gateway `parent` names, if it is one.
fn find_gateway<'p, 'g>(
    plans: &'p [GatewayPlan<'g>],
    parent: &ParentRef,
    route_namespace: &str,
) -> Option<&'p GatewayPlan<'g>> {
    gateway_index(plans, parent, route_namespace).map(|i| &plans[i])
}

fn find_gateway_mut<'p, 'g>(
    plans: &'p mut [GatewayPlan<'g>],
    parent: &ParentRef,
    route_namespace: &str,
) -> Option<&'p mut GatewayPlan<'g>> {
    gateway_index(plans, parent, route_namespace).map(|i| &mut plans[i])
}

fn gateway_index(
    plans: &[GatewayPlan<'_>],
    parent: &ParentRef,
    route_namespace: &str,
) -> Option<usize> {
    if parent.group.as_deref().unwrap_or(GATEWAY_GROUP) != GATEWAY_GROUP
        || parent.kind.as_deref().unwrap_or("Gateway") != "Gateway"
    {
        return None;
    }
    let namespace = parent.namespace.as_deref().unwrap_or(route_namespace);
    plans.iter().position(|p| {
        p.gateway.metadata.namespace() == namespace && p.gateway.metadata.name == parent.name
    })
}

/// Attaches `route` (its Envoy routes `routes`) to the listeners of a
/// Gateway that `parent` selects and that admit it, adding the virtual hosts
/// of the programmed ones to `placements`; returns the parent's `Accepted`
/// condition.
fn attach<'g>(
    resources: &Resources,
    plan: &mut GatewayPlan<'g>,
    parent: &ParentRef,
    (route, routes): (&RouteHead<'_>, &[RankedRoute<'_>]),
    placements: &mut Vec<Placement<'g>>,
    sites: &mut Sites<'g>,
) -> Condition {
    let gateway_namespace = plan.gateway.metadata.namespace();
    let selected: Vec<usize> = (0..plan.listeners.len())
        .filter(|i| {
            let listener = plan.listeners[*i].spec;
            parent
                .section_name
                .as_ref()
                .is_none_or(|s| *s == listener.name)
                && parent.port.is_none_or(|p| p == listener.port)
        })
        .collect();
    if selected.is_empty() {
        let wanted = match (&parent.section_name, parent.port) {
            (Some(s), Some(p)) => format!("{s:?} on port {p}"),
            (Some(s), None) => format!("{s:?}"),
            (None, Some(p)) => format!("on port {p}"),
            (None, None) => "at all".to_owned(),
        };
        return Condition::new(
            "Accepted",
            false,
            "NoMatchingParent",
            format!("Gateway has no listener {wanted}"),
        );
    }
    let allowed: Vec<usize> = selected
        .into_iter()
        .filter(|i| {
            // Attachment depends only on allowedRoutes and the parentRef, not
            // on the listener's own conditions (spec, ListenerStatus.attachedRoutes):
            // a route attached to a listener that is not Accepted counts and is
            // Accepted, but is not served (`programmed` below).
            let listener = &plan.listeners[*i];
            listener.admits_kind(route.kind)
                && listener.admits_namespace(resources, gateway_namespace, route.namespace)
        })
        .collect();
    if allowed.is_empty() {
        return Condition::new(
            "Accepted",
            false,
            "NotAllowedByListeners",
            format!(
                "no listener of the Gateway allows this {} (its kind or namespace)",
                route.kind.name()
            ),
        );
    }
    let mut any = false;
    for i in allowed {
        let listener = &mut plan.listeners[i];
        let names = hostnames::intersect(listener.spec.hostname.as_deref(), route.hostnames);
        if names.is_empty() {
            continue;
        }
        any = true;
        listener.attached += 1;
        if !listener.programmed() {
            continue; // attached, but Envoy does not serve this listener
        }
        let through = (
            gateway_namespace,
            plan.gateway.metadata.name.as_str(),
            listener.spec.name.as_str(),
        );
        for (_, envoy_route) in routes {
            if let Some(site) = sites.get_mut(&envoy_route.name) {
                if !site.listeners.contains(&through) {
                    site.listeners.push(through);
                }
            }
        }
        placements.extend(names.into_iter().map(|hostname| Placement {
            port: listener.envoy_port,
            hostname,
            listener: listener.spec,
        }));
    }
    if any {
        Condition::new("Accepted", true, "Accepted", String::new())
    } else {
        Condition::new(
            "Accepted",
            false,
            "NoMatchingListenerHostname",
            "no listener hostname intersects the route's hostnames".to_owned(),
        )
    }
}
