//! The translator: a pure function from loaded resources to the Envoy
//! resources that implement them, plus the status of every object Tollgate
//! owns. No I/O and no clock, so a golden file pins the whole behaviour.
//!
//! Every Gateway of a Tollgate GatewayClass shares one Envoy: one listener per
//! port (Gateways and listeners on the same port merge), one route
//! configuration per listener, one virtual host per hostname a route serves
//! there, routes ordered by Gateway API precedence. Requests matching no
//! virtual host or route get Envoy's own 404.

mod attach;
mod backends;
mod certificates;
mod cors;
mod emit_route;
mod envoy;
mod filter_chain;
pub mod filter_runtime;
mod gateway_spec;
#[cfg(test)]
mod golden_tests;
mod grpc_route;
mod hostnames;
mod http2_upstream;
mod invalid_rules;
mod listeners;
mod matches;
mod namespace_selector;
mod policy_attachment;
mod policy_filters;
mod precedence;
mod redact;
mod reference_grants;
mod refused_objects;
pub mod render;
mod rewrites;
mod route_checks;
mod route_filters;
mod route_plan;
mod service_clusters;
pub mod status;
mod timeouts;
mod tls;
mod weights;
pub mod yaml_text;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
use envoy_types::pb::google::protobuf::BoolValue;

use crate::resources::gateway_api::Listener as GatewayListener;
use crate::resources::{Gateway, HttpRoute, Loaded, Resources};
use attach::{route_status, RouteHead};
use backends::{Backends, Unresolved};
use filter_chain::PolicyTable;
pub use filter_runtime::{FilterRuntime, RuntimeKind};
use invalid_rules::{InvalidRules, RuleError};
use listeners::{GatewayPlan, Protocol, RouteKind};
use policy_attachment::RouteSite;
use policy_filters::{Catalog, Sites};
use precedence::{MatchOrigin, Precedence};
use route_plan::{ActionPlan, PlannedRoute};
use service_clusters::Upstream;
use status::{observed, Condition, GatewayClassStatus, Status, CONTROLLER_NAME};

const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

#[derive(Debug, Clone)]
pub struct Options {
    /// The address Envoy binds every Gateway listener on, and the one
    /// Gateway status reports.
    pub listener_address: IpAddr,
    /// Serve listener ports below 1024 on port + 10000, so Envoy needs no
    /// privilege to bind them.
    pub port_remap: bool,
    /// Envoy ports for given Gateway listener ports, taking precedence over
    /// `port_remap` (`--port-map 80=18080`): the Gateway keeps its port
    /// (redirects, `parentRefs[].port`), only Envoy binds elsewhere.
    pub port_map: BTreeMap<u16, u16>,
    /// The build of Tollgate's filters Envoy runs (with the absolute
    /// directory of the `.wasm` filters, as Envoy will read them).
    pub filter_runtime: FilterRuntime,
    /// `HOST:PORT` of the global rate limit service (`tollgate
    /// ratelimit-server`) that global rate limit rules call.
    pub ratelimit_service: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Translation {
    pub listeners: Vec<Listener>,
    pub route_configurations: Vec<RouteConfiguration>,
    pub clusters: Vec<Cluster>,
    pub status: Status,
}

/// Checks a `--ratelimit-service` value: `HOST:PORT`.
pub fn parse_service_address(value: &str) -> Result<String, String> {
    Upstream::of_address(value)
        .map(|_| value.to_owned())
        .ok_or_else(|| format!("{value:?} is not HOST:PORT"))
}

/// The Envoy port a Gateway listener port is served on.
pub fn envoy_port(port: u16, options: &Options) -> u32 {
    if let Some(mapped) = options.port_map.get(&port) {
        return u32::from(*mapped);
    }
    let port = u32::from(port);
    if options.port_remap && port < 1024 {
        port + 10000
    } else {
        port
    }
}

/// Routes of one virtual host, each with its precedence; keyed by hostname,
/// per Envoy port.
type VirtualHosts<'r> = BTreeMap<u32, BTreeMap<String, HostRoutes<'r>>>;

/// A planned route with its precedence.
type RankedRoute<'r> = (Precedence<'r>, PlannedRoute<'r>);

/// A route placed in a virtual host, with the listener it is served through
/// (a redirect's port depends on it); a route placed in many virtual hosts is
/// shared by them.
type Placed<'r> = (Arc<PlannedRoute<'r>>, &'r GatewayListener);

/// The routes of one virtual host, their precedences (side by side) and their
/// names: the same route reaches a virtual host through several listeners or
/// parentRefs, and is placed once.
#[derive(Default)]
struct HostRoutes<'r> {
    routes: Vec<Placed<'r>>,
    precedences: Vec<Precedence<'r>>,
    names: HashSet<String>,
}

pub fn translate(resources: &Resources, options: &Options) -> Translation {
    let mut status = Status::default();
    let classes: Vec<&Loaded<_>> = resources
        .gateway_classes
        .iter()
        .filter(|c| c.object.spec.controller_name == CONTROLLER_NAME)
        .collect();
    status.gateway_classes = classes
        .iter()
        .map(|class| GatewayClassStatus {
            name: class.object.metadata.name.clone(),
            conditions: observed(
                vec![Condition::new("Accepted", true, "Accepted", String::new())],
                class.generation,
            ),
        })
        .collect();
    let gateways: Vec<&Loaded<Gateway>> = resources
        .gateways
        .iter()
        .filter(|g| {
            classes
                .iter()
                .any(|c| c.object.metadata.name == g.object.spec.gateway_class_name)
        })
        .collect();
    let mut plans = listeners::plan(&gateways, resources, options);
    let ports = listeners::ports(&plans);
    let mut hosts = VirtualHosts::new();
    for port in ports.keys() {
        hosts.entry(*port).or_default();
    }
    let mut backends = Backends::new(resources);
    let ratelimit_service = options
        .ratelimit_service
        .as_deref()
        .and_then(Upstream::of_address);
    let catalog = Catalog::new(resources, ratelimit_service.as_ref());
    let mut sites = Sites::new();
    for route in &resources.http_routes {
        let (meta, spec) = (&route.object.metadata, &route.object.spec);
        let head = RouteHead {
            kind: RouteKind::Http,
            namespace: meta.namespace(),
            name: &meta.name,
            hostnames: &spec.hostnames,
            parent_refs: &spec.parent_refs,
            rules: spec.rules.len(),
            generation: route.generation,
        };
        status.http_routes.extend(route_status(
            &head,
            (resources, &mut plans, &mut hosts, &mut sites),
            |sites| envoy_routes(route, &mut backends, &catalog, sites),
        ));
    }
    for route in &resources.grpc_routes {
        let (meta, spec) = (&route.object.metadata, &route.object.spec);
        let head = RouteHead {
            kind: RouteKind::Grpc,
            namespace: meta.namespace(),
            name: &meta.name,
            hostnames: &spec.hostnames,
            parent_refs: &spec.parent_refs,
            rules: spec.rules.len(),
            generation: route.generation,
        };
        status.grpc_routes.extend(route_status(
            &head,
            (resources, &mut plans, &mut hosts, &mut sites),
            |sites| grpc_route::envoy_routes(route, &mut backends, &catalog, sites),
        ));
    }
    let targets = policy_filters::targets(
        plans.iter().map(|p| {
            let meta = &p.gateway.metadata;
            let listeners = p.listeners.iter().map(|l| l.spec.name.as_str()).collect();
            ((meta.namespace(), meta.name.as_str()), listeners)
        }),
        resources,
    );
    let served_sites: Vec<RouteSite<'_>> = sites
        .into_values()
        .filter(|s| !s.listeners.is_empty())
        .collect();
    let mut policies = PolicyTable::default();
    let applied = catalog.apply(&targets, &served_sites, &mut policies);
    status.policies = applied.statuses;
    status.gateways = plans.iter().map(GatewayPlan::status).collect();
    let class_names: Vec<&str> = classes
        .iter()
        .map(|c| c.object.metadata.name.as_str())
        .collect();
    refused_objects::report(resources, &class_names, &plans, &mut status);
    let listeners = hosts
        .iter()
        .map(|(port, vhosts)| {
            let served: HashSet<&str> = vhosts
                .values()
                .flat_map(|v| &v.names)
                .map(String::as_str)
                .collect();
            let filters = policies.http_filters(&served, &options.filter_runtime);
            match ports.get(port) {
                Some(Protocol::Https) => tls::https_listener(
                    options.listener_address,
                    *port,
                    filters,
                    &listeners::tls_chains(&plans, *port),
                ),
                _ => envoy::http_listener(options.listener_address, *port, filters),
            }
        })
        .collect();
    let route_configurations = hosts
        .into_iter()
        .map(|host| route_configuration(host, &policies, &options.filter_runtime))
        .collect();
    let mut clusters = backends.into_clusters();
    clusters.extend(applied.clusters);
    Translation {
        listeners,
        route_configurations,
        clusters,
        status,
    }
}

impl<'r> HostRoutes<'r> {
    /// Adds `route` unless this host has it already (the same route reaches a
    /// host through several listeners or parentRefs).
    fn add(
        &mut self,
        precedence: &Precedence<'r>,
        route: &Arc<PlannedRoute<'r>>,
        listener: &'r GatewayListener,
    ) {
        if self.names.insert(route.name.clone()) {
            self.routes.push((Arc::clone(route), listener));
            self.precedences.push(precedence.clone());
        }
    }
}

/// The planned routes of one HTTPRoute (not yet placed in a virtual host), with
/// their sites (what their rule configures, for `Catalog::apply`); its
/// `ResolvedRefs` condition, and the rules it cannot program as written
/// (their routes answer 500).
fn envoy_routes<'r>(
    route: &'r Loaded<HttpRoute>,
    backends: &mut Backends<'_>,
    catalog: &Catalog<'_>,
    sites: &mut Sites<'r>,
) -> (Condition, InvalidRules, Vec<RankedRoute<'r>>) {
    let meta = &route.object.metadata;
    let namespace = meta.namespace();
    let mut first_unresolved: Option<Unresolved> = None;
    let mut invalid = InvalidRules::of(route.object.spec.rules.len());
    let mut out = Vec::with_capacity(
        route
            .object
            .spec
            .rules
            .iter()
            .map(|r| r.matches.len())
            .sum(),
    );
    for (rule_index, rule) in route.object.spec.rules.iter().enumerate() {
        let shares = backends.rule_shares(
            "HTTPRoute",
            (namespace, &meta.name),
            rule_index,
            &rule.backend_refs,
            &mut first_unresolved,
        );
        let planned = route_filters::rule(
            rule.into(),
            &shares,
            namespace,
            backends,
            &mut first_unresolved,
            catalog,
        );
        let site = RouteSite::of_rule(
            ("HTTPRoute", namespace, &meta.name),
            rule.name.as_deref(),
            (&rule.filters, &rule.backend_refs),
            &shares,
            planned.as_ref().ok().map(|p| &p.policies),
        );
        for (match_index, m) in rule.matches.iter().enumerate() {
            // A match Envoy would refuse (or the CRD) costs only its route.
            if let Err(why) = matches::check(m) {
                invalid.push(
                    rule_index,
                    RuleError::unsupported(format!("matches[{match_index}].{why}")),
                );
                continue;
            }
            let name = format!(
                "httproute/{namespace}/{}/rule/{rule_index}/match/{match_index}",
                meta.name
            );
            let action = planned
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|p| p.route(m, match_index))
                .unwrap_or_else(|e| {
                    invalid.push(rule_index, e);
                    ActionPlan::InternalServerError
                });
            sites.insert(name.clone(), site.for_route(&name));
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
                PlannedRoute {
                    name,
                    matcher: Cow::Borrowed(m),
                    action,
                },
            ));
        }
    }
    let condition = match first_unresolved {
        None => Condition::new("ResolvedRefs", true, "ResolvedRefs", String::new()),
        Some(u) => Condition::new("ResolvedRefs", false, u.reason, u.message),
    };
    (condition, invalid, out)
}

/// One listener's route configuration: each virtual host's routes in
/// precedence order, emitted as Envoy's with their policies.
fn route_configuration(
    (port, vhosts): (u32, BTreeMap<String, HostRoutes>),
    policies: &PolicyTable,
    runtime: &FilterRuntime,
) -> RouteConfiguration {
    RouteConfiguration {
        name: envoy::listener_name(port),
        virtual_hosts: vhosts
            .into_iter()
            .map(|(hostname, host)| VirtualHost {
                name: hostname.clone(),
                domains: vec![hostname],
                routes: by_precedence(&host.precedences)
                    .into_iter()
                    .map(|i| {
                        let (planned, listener) = &host.routes[i];
                        let verdict = policies.verdict(&planned.name);
                        let mut route = emit_route::route(planned, listener, verdict);
                        policies.configure_route(&mut route, runtime);
                        route
                    })
                    .collect(),
                ..VirtualHost::default()
            })
            .collect(),
        // Invalid backend shares name clusters that never exist (see
        // `weights::backend_action`); Envoy must not refuse the configuration for it.
        validate_clusters: Some(BoolValue { value: false }),
        ..RouteConfiguration::default()
    }
}

/// The order of Envoy routes: indices into `precedences`, first route first.
fn by_precedence(precedences: &[Precedence<'_>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..precedences.len()).collect();
    order.sort_by(|&a, &b| precedences[a].cmp(&precedences[b]));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapped_port_wins_over_the_remap() {
        let options = Options {
            listener_address: crate::translator_args::DEFAULT_LISTENER_ADDRESS,
            port_remap: true,
            port_map: BTreeMap::from([(80, 18080), (8080, 28080)]),
            filter_runtime: FilterRuntime::DynamicModule,
            ratelimit_service: None,
        };
        assert_eq!(
            [80, 8080, 443, 9000].map(|p| envoy_port(p, &options)),
            [18080, 28080, 10443, 9000]
        );
        let unmapped = Options {
            listener_address: crate::translator_args::DEFAULT_LISTENER_ADDRESS,
            port_remap: false,
            port_map: BTreeMap::new(),
            ..options
        };
        assert_eq!(envoy_port(80, &unmapped), 80);
    }
}
