//! The translator: a pure function from loaded resources to the Envoy
//! resources that implement them, plus the status of every object Tollgate
//! owns. No I/O and no clock, so a golden file pins the whole behaviour.
//!
//! Every Gateway of a Tollgate GatewayClass shares one Envoy: one listener per
//! port (Gateways and listeners on the same port merge), one route
//! configuration per listener, one virtual host per hostname a route serves
//! there, routes ordered by Gateway API precedence. Requests matching no
//! virtual host or route get Envoy's own 404.

mod backends;
mod envoy;
#[cfg(test)]
mod golden_tests;
mod hostnames;
mod matches;
mod precedence;
pub mod render;
mod rewrites;
mod route_filters;
pub mod status;
mod timeouts;
mod wasm_filters;
mod weights;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::{Route, RouteConfiguration, VirtualHost};
use envoy_types::pb::google::protobuf::BoolValue;

use crate::resources::{FromNamespaces, Gateway, HttpRoute, Loaded, ParentRef, Resources};
use backends::{Backends, Unresolved};
use precedence::{MatchOrigin, Precedence};
use route_filters::RuleError;
use status::{
    Condition, GatewayClassStatus, GatewayStatus, ListenerStatus, ParentReference,
    RouteParentStatus, RouteStatus, Status, CONTROLLER_NAME,
};
use wasm_filters::RoutePolicies;
use weights::Share;

const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

#[derive(Debug, Clone)]
pub struct Options {
    /// Serve listener ports below 1024 on port + 10000, so Envoy needs no
    /// privilege to bind them.
    pub port_remap: bool,
    /// The absolute directory holding Tollgate's `.wasm` filters, as Envoy
    /// will read them.
    pub wasm_dir: PathBuf,
}

#[derive(Debug, Clone, Default)]
pub struct Translation {
    pub listeners: Vec<Listener>,
    pub route_configurations: Vec<RouteConfiguration>,
    pub clusters: Vec<Cluster>,
    pub status: Status,
}

/// The Envoy port a Gateway listener port is served on.
pub fn envoy_port(port: u16, options: &Options) -> u32 {
    let port = u32::from(port);
    if options.port_remap && port < 1024 {
        port + 10000
    } else {
        port
    }
}

/// Routes of one virtual host, each with its precedence; keyed by hostname,
/// per Envoy port.
type VirtualHosts = BTreeMap<u32, BTreeMap<String, Vec<(Precedence, Route)>>>;

pub fn translate(resources: &Resources, options: &Options) -> Translation {
    let mut status = Status::default();
    let classes: Vec<&str> = resources
        .gateway_classes
        .iter()
        .map(|c| &c.object)
        .filter(|c| c.spec.controller_name == CONTROLLER_NAME)
        .map(|c| c.metadata.name.as_str())
        .collect();
    status.gateway_classes = classes
        .iter()
        .map(|name| GatewayClassStatus {
            name: (*name).to_owned(),
            conditions: vec![Condition::new("Accepted", true, "Accepted", String::new())],
        })
        .collect();
    let gateways: Vec<&Gateway> = resources
        .gateways
        .iter()
        .map(|g| &g.object)
        .filter(|g| classes.contains(&g.spec.gateway_class_name.as_str()))
        .collect();
    // attachedRoutes per gateway, per listener.
    let mut attached: Vec<Vec<u32>> = gateways
        .iter()
        .map(|g| vec![0; g.spec.listeners.len()])
        .collect();
    let mut hosts = VirtualHosts::new();
    for gateway in &gateways {
        for listener in gateway
            .spec
            .listeners
            .iter()
            .filter(|l| l.protocol == "HTTP")
        {
            hosts.entry(envoy_port(listener.port, options)).or_default();
        }
    }
    let mut backends = Backends::new(resources);
    let mut policies = RoutePolicies::default();
    for route in &resources.http_routes {
        let (resolved_refs, invalid_rule, routes) =
            envoy_routes(route, &mut backends, &mut policies);
        let mut parents = Vec::new();
        for parent in &route.object.spec.parent_refs {
            let namespace = route.object.metadata.namespace();
            let Some((gw_index, gateway)) = find_gateway(&gateways, parent, namespace) else {
                continue; // not a Gateway Tollgate owns: another controller's status
            };
            let accepted = attach(
                gateway,
                parent,
                &route.object,
                &mut attached[gw_index],
                &routes,
                &mut hosts,
                options,
            );
            let accepted = match &invalid_rule {
                Some(e) if accepted.status == "True" => {
                    Condition::new("Accepted", false, e.reason, e.message.clone())
                }
                _ => accepted,
            };
            parents.push(RouteParentStatus {
                parent_ref: ParentReference {
                    namespace: gateway.metadata.namespace().to_owned(),
                    name: gateway.metadata.name.clone(),
                    section_name: parent.section_name.clone(),
                },
                controller_name: CONTROLLER_NAME.to_owned(),
                conditions: vec![accepted, resolved_refs.clone()],
            });
        }
        if !parents.is_empty() {
            status.http_routes.push(RouteStatus {
                namespace: route.object.metadata.namespace().to_owned(),
                name: route.object.metadata.name.clone(),
                parents,
            });
        }
    }
    status.gateways = gateways
        .iter()
        .zip(&attached)
        .map(|(gateway, attached)| gateway_status(gateway, attached))
        .collect();
    let listeners = hosts
        .iter()
        .map(|(port, vhosts)| {
            let served: BTreeSet<&str> = vhosts
                .values()
                .flatten()
                .map(|(_, r)| r.name.as_str())
                .collect();
            envoy::http_listener(*port, policies.http_filters(&served, &options.wasm_dir))
        })
        .collect();
    let route_configurations = hosts.into_iter().map(route_configuration).collect();
    Translation {
        listeners,
        route_configurations,
        clusters: backends.into_clusters(),
        status,
    }
}

fn find_gateway<'g>(
    gateways: &[&'g Gateway],
    parent: &ParentRef,
    route_namespace: &str,
) -> Option<(usize, &'g Gateway)> {
    if parent.group.as_deref().unwrap_or(GATEWAY_GROUP) != GATEWAY_GROUP
        || parent.kind.as_deref().unwrap_or("Gateway") != "Gateway"
    {
        return None;
    }
    let namespace = parent.namespace.as_deref().unwrap_or(route_namespace);
    gateways
        .iter()
        .enumerate()
        .find(|(_, g)| g.metadata.namespace() == namespace && g.metadata.name == parent.name)
        .map(|(i, g)| (i, *g))
}

/// The Envoy routes of one HTTPRoute (not yet placed in a virtual host), with
/// their filter policies added to `policies`; its `ResolvedRefs` condition,
/// and what it cannot program as written (those rules' routes answer 500).
fn envoy_routes(
    route: &Loaded<HttpRoute>,
    backends: &mut Backends<'_>,
    policies: &mut RoutePolicies,
) -> (Condition, Option<RuleError>, Vec<(Precedence, Route)>) {
    let meta = &route.object.metadata;
    let namespace = meta.namespace();
    let mut first_unresolved: Option<Unresolved> = None;
    let mut rule_errors: Vec<RuleError> = Vec::new();
    let mut out = Vec::new();
    for (rule_index, rule) in route.object.spec.rules.iter().enumerate() {
        let invalid = format!(
            "invalid-backend/{namespace}/{}/rule/{rule_index}",
            meta.name
        );
        let shares: Vec<(Share, u32)> = rule
            .backend_refs
            .iter()
            .map(|b| match backends.resolve(namespace, b) {
                Ok(cluster) => (Share::Cluster(cluster), b.weight),
                Err(unresolved) => {
                    first_unresolved.get_or_insert(unresolved);
                    (Share::Invalid(invalid.clone()), b.weight)
                }
            })
            .collect();
        let planned =
            route_filters::rule(rule, &shares, namespace, backends, &mut first_unresolved);
        for (match_index, m) in rule.matches.iter().enumerate() {
            let name = format!(
                "httproute/{namespace}/{}/rule/{rule_index}/match/{match_index}",
                meta.name
            );
            let action = planned
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|p| p.route(m, match_index, &name, policies))
                .unwrap_or_else(|e| {
                    let e = e.in_rule(rule_index);
                    if !rule_errors.contains(&e) {
                        rule_errors.push(e);
                    }
                    weights::internal_server_error()
                });
            let origin = MatchOrigin {
                namespace,
                name: &meta.name,
                creation_timestamp: meta.creation_timestamp.as_deref(),
                load_order: route.order,
                rule: rule_index,
                index: match_index,
            };
            out.push((
                Precedence::of(m, &origin),
                Route {
                    name,
                    r#match: Some(matches::route_match(m)),
                    action: Some(action),
                    ..Route::default()
                },
            ));
        }
    }
    let condition = match first_unresolved {
        None => Condition::new("ResolvedRefs", true, "ResolvedRefs", String::new()),
        Some(u) => Condition::new("ResolvedRefs", false, u.reason, u.message),
    };
    (condition, route_filters::combined(rule_errors), out)
}

/// Attaches `route` to the listeners of `gateway` that `parent` selects and
/// allow it, adding its routes to their virtual hosts; returns the parent's
/// `Accepted` condition.
fn attach(
    gateway: &Gateway,
    parent: &ParentRef,
    route: &HttpRoute,
    attached: &mut [u32],
    routes: &[(Precedence, Route)],
    hosts: &mut VirtualHosts,
    options: &Options,
) -> Condition {
    let selected: Vec<usize> = (0..gateway.spec.listeners.len())
        .filter(|i| {
            parent
                .section_name
                .as_ref()
                .is_none_or(|s| *s == gateway.spec.listeners[*i].name)
        })
        .collect();
    if selected.is_empty() {
        return Condition::new(
            "Accepted",
            false,
            "NoMatchingParent",
            format!(
                "Gateway has no listener {:?}",
                parent.section_name.as_deref().unwrap_or("")
            ),
        );
    }
    let allowed: Vec<usize> = selected
        .into_iter()
        .filter(|i| {
            let listener = &gateway.spec.listeners[*i];
            let from = listener
                .allowed_routes
                .as_ref()
                .and_then(|a| a.namespaces.as_ref())
                .map(|n| n.from)
                .unwrap_or_default();
            listener.protocol == "HTTP"
                && (from == FromNamespaces::All
                    || gateway.metadata.namespace() == route.metadata.namespace())
        })
        .collect();
    if allowed.is_empty() {
        return Condition::new(
            "Accepted",
            false,
            "NotAllowedByListeners",
            "no listener of the Gateway allows this route".to_owned(),
        );
    }
    let mut any = false;
    for i in allowed {
        let listener = &gateway.spec.listeners[i];
        let names = hostnames::intersect(listener.hostname.as_deref(), &route.spec.hostnames);
        if names.is_empty() {
            continue;
        }
        any = true;
        attached[i] += 1;
        let vhosts = hosts.entry(envoy_port(listener.port, options)).or_default();
        for name in names {
            let vhost = vhosts.entry(name).or_default();
            for (precedence, envoy_route) in routes {
                // The same route reaches one virtual host through several
                // listeners or parentRefs: once is enough.
                if !vhost.iter().any(|(_, r)| r.name == envoy_route.name) {
                    let envoy_route = rewrites::for_listener(envoy_route.clone(), listener);
                    vhost.push((precedence.clone(), envoy_route));
                }
            }
        }
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

fn gateway_status(gateway: &Gateway, attached: &[u32]) -> GatewayStatus {
    let listeners: Vec<ListenerStatus> = gateway
        .spec
        .listeners
        .iter()
        .zip(attached)
        .map(|(listener, attached)| {
            let ok = listener.protocol == "HTTP";
            let (reason, message) = if ok {
                ("Accepted", String::new())
            } else {
                (
                    "UnsupportedProtocol",
                    format!(
                        "protocol {:?} is not supported yet; HTTP is",
                        listener.protocol
                    ),
                )
            };
            ListenerStatus {
                name: listener.name.clone(),
                attached_routes: *attached,
                conditions: vec![
                    Condition::new("Accepted", ok, reason, message.clone()),
                    Condition::new("ResolvedRefs", true, "ResolvedRefs", String::new()),
                    Condition::new(
                        "Programmed",
                        ok,
                        if ok { "Programmed" } else { "Invalid" },
                        message,
                    ),
                ],
            }
        })
        .collect();
    let programmed = gateway.spec.listeners.iter().any(|l| l.protocol == "HTTP");
    GatewayStatus {
        namespace: gateway.metadata.namespace().to_owned(),
        name: gateway.metadata.name.clone(),
        conditions: vec![
            Condition::new("Accepted", true, "Accepted", String::new()),
            Condition::new(
                "Programmed",
                programmed,
                if programmed { "Programmed" } else { "Invalid" },
                String::new(),
            ),
        ],
        listeners,
    }
}

fn route_configuration(
    (port, vhosts): (u32, BTreeMap<String, Vec<(Precedence, Route)>>),
) -> RouteConfiguration {
    RouteConfiguration {
        name: envoy::listener_name(port),
        virtual_hosts: vhosts
            .into_iter()
            .map(|(hostname, mut routes)| {
                routes.sort_by(|a, b| a.0.cmp(&b.0));
                VirtualHost {
                    name: hostname.clone(),
                    domains: vec![hostname],
                    routes: routes.into_iter().map(|(_, r)| r).collect(),
                    ..VirtualHost::default()
                }
            })
            .collect(),
        // Invalid backend shares name clusters that never exist (see
        // `envoy::rule_action`); Envoy must not refuse the configuration for it.
        validate_clusters: Some(BoolValue { value: false }),
        ..RouteConfiguration::default()
    }
}
