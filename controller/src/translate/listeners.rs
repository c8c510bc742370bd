//! Gateway listeners: whether each is valid, which route kinds and namespaces
//! it admits, the Envoy port and TLS chain that serve it, and its status.
//!
//! Routes attach to a listener (and count in `attachedRoutes`) by their
//! parentRefs and its allowedRoutes alone, whatever its conditions (the spec
//! on `attachedRoutes`). A listener is *attachable* when it is Accepted and not
//! Conflicted; it is *programmed* (Envoy serves it) when it is attachable,
//! admits at least one route kind, and, for HTTPS, at least one
//! certificateRef resolved. So a listener whose only certificate is missing,
//! or that conflicts with another, keeps its routes attached, as the
//! conformance tests expect, but they are not served through it.
//!
//! Conflicts follow the spec within a Gateway (the same port with different
//! protocols: ProtocolConflict; the same port, protocol and hostname:
//! HostnameConflict) and extend it across Gateways, since every Tollgate
//! Gateway shares one Envoy: a port already served with another protocol by
//! an earlier Gateway (load order) is `PortUnavailable`, and an HTTPS
//! hostname an earlier Gateway already serves on the port is a
//! HostnameConflict. Plain HTTP listeners of several Gateways on one port and
//! hostname merge, as before. HTTPS listeners on one Envoy port whose
//! hostnames overlap (one covers the other, or one has none) are
//! `OverlappingTLSConfig=True OverlappingHostnames` (a MUST of the spec: a
//! client coalescing connections can reach one with the other's certificate);
//! they keep serving.

use std::collections::BTreeMap;

use super::certificates::{self, Certificate};
use super::gateway_spec::{self, GatewayProblem};
use super::status::{
    observed, Condition, GatewayAddress, GatewayStatus, ListenerStatus, RouteGroupKind,
};
use super::{envoy_port, hostnames, namespace_selector, tls, Options, GATEWAY_GROUP};
use crate::resources::gateway_api::{Listener, TlsMode};
use crate::resources::{FromNamespaces, Gateway, Loaded, Resources};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    Http,
    Grpc,
}

impl RouteKind {
    pub fn name(self) -> &'static str {
        match self {
            RouteKind::Http => "HTTPRoute",
            RouteKind::Grpc => "GRPCRoute",
        }
    }

    fn parse(group: Option<&str>, kind: &str) -> Option<Self> {
        if group.unwrap_or(GATEWAY_GROUP) != GATEWAY_GROUP {
            return None;
        }
        match kind {
            "HTTPRoute" => Some(RouteKind::Http),
            "GRPCRoute" => Some(RouteKind::Grpc),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Https,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
        }
    }
}

/// A condition's reason and message.
type Problem = (&'static str, String);

pub struct ListenerPlan<'a> {
    pub spec: &'a Listener,
    pub envoy_port: u32,
    /// `None`: a protocol Tollgate does not serve.
    pub protocol: Option<Protocol>,
    not_accepted: Option<Problem>,
    conflicted: Option<Problem>,
    unresolved: Option<Problem>,
    /// The listeners whose TLS hostnames overlap this one's (`OverlappingTLSConfig`).
    overlapping: Vec<String>,
    /// Why its Gateway as a whole is not served (`gateway_spec`): then
    /// neither is this listener.
    gateway_problem: Option<String>,
    kinds: Vec<RouteKind>,
    certificates: Vec<Certificate>,
    /// Routes attached so far (`attachedRoutes`).
    pub attached: u32,
}

/// `allowedRoutes.namespaces` that cannot select as written: `from:
/// Selector` without a selector, or one the API server would refuse.
fn invalid_namespaces(spec: &Listener) -> Option<Problem> {
    let namespaces = spec.allowed_routes.as_ref()?.namespaces.as_ref()?;
    if namespaces.from != FromNamespaces::Selector {
        return None;
    }
    let why = match &namespaces.selector {
        None => "from is Selector but selector is missing".to_owned(),
        Some(selector) => match namespace_selector::check(selector) {
            Ok(()) => return None,
            Err(e) => format!("selector.{e}"),
        },
    };
    Some(("Invalid", format!("allowedRoutes.namespaces.{why}")))
}

impl<'a> ListenerPlan<'a> {
    fn new(resources: &Resources, namespace: &str, spec: &'a Listener, options: &Options) -> Self {
        let protocol = match spec.protocol.as_str() {
            "HTTP" => Some(Protocol::Http),
            "HTTPS" => Some(Protocol::Https),
            _ => None,
        };
        let mut plan = Self {
            spec,
            envoy_port: envoy_port(spec.port, options),
            protocol,
            not_accepted: None,
            conflicted: None,
            unresolved: None,
            overlapping: Vec::new(),
            gateway_problem: None,
            kinds: Vec::new(),
            certificates: Vec::new(),
            attached: 0,
        };
        plan.not_accepted = match (protocol, &spec.tls) {
            (None, _) => Some((
                "UnsupportedProtocol",
                format!(
                    "protocol {:?} is not supported; HTTP and HTTPS are",
                    spec.protocol
                ),
            )),
            (Some(Protocol::Http), Some(_)) => Some((
                "Invalid",
                "an HTTP listener takes no tls; HTTPS terminates TLS".to_owned(),
            )),
            (Some(Protocol::Https), None) => Some((
                "Invalid",
                "an HTTPS listener needs tls.certificateRefs".to_owned(),
            )),
            (Some(Protocol::Https), Some(t)) if t.mode == TlsMode::Passthrough => Some((
                "Invalid",
                "tls.mode Passthrough is not supported: HTTPS listeners terminate TLS".to_owned(),
            )),
            _ => None,
        }
        .or_else(|| {
            // The CRD's minimum; port 0 would let the kernel pick Envoy's port.
            (spec.port == 0).then(|| ("Invalid", "port: 0 is not a port (1 to 65535)".to_owned()))
        })
        .or_else(|| {
            let hostname = spec.hostname.as_deref()?;
            let e = hostnames::check(hostname).err()?;
            Some(("Invalid", format!("hostname: {e}")))
        })
        .or_else(|| invalid_namespaces(spec));
        if plan.not_accepted.is_some() {
            return plan;
        }
        plan.resolve_kinds();
        if protocol == Some(Protocol::Https) {
            plan.resolve_certificates(resources, namespace);
        }
        plan
    }

    /// `allowedRoutes.kinds`, HTTPRoute and GRPCRoute when absent.
    fn resolve_kinds(&mut self) {
        let requested = self
            .spec
            .allowed_routes
            .as_ref()
            .map(|a| a.kinds.as_slice())
            .unwrap_or_default();
        if requested.is_empty() {
            self.kinds = vec![RouteKind::Http, RouteKind::Grpc];
            return;
        }
        let mut invalid = Vec::new();
        for k in requested {
            match RouteKind::parse(k.group.as_deref(), &k.kind) {
                Some(kind) if !self.kinds.contains(&kind) => self.kinds.push(kind),
                Some(_) => {}
                None => invalid.push(format!(
                    "{}/{}",
                    k.group.as_deref().unwrap_or(GATEWAY_GROUP),
                    k.kind
                )),
            }
        }
        if !invalid.is_empty() {
            self.unresolved = Some((
                "InvalidRouteKinds",
                format!(
                    "route kinds {} are not supported on {} listeners; HTTPRoute and GRPCRoute are",
                    invalid.join(", "),
                    self.spec.protocol
                ),
            ));
        }
    }

    fn resolve_certificates(&mut self, resources: &Resources, namespace: &str) {
        let refs = self
            .spec
            .tls
            .as_ref()
            .map(|t| t.certificate_refs.as_slice())
            .unwrap_or_default();
        if refs.is_empty() {
            self.unresolved.get_or_insert((
                "InvalidCertificateRef",
                "tls.certificateRefs is empty".to_owned(),
            ));
        }
        for reference in refs {
            match certificates::resolve(resources, namespace, reference) {
                Ok(certificate) => self.certificates.push(certificate),
                Err(p) => {
                    self.unresolved.get_or_insert((p.reason, p.message));
                }
            }
        }
    }

    pub fn attachable(&self) -> bool {
        self.not_accepted.is_none() && self.conflicted.is_none()
    }

    pub fn programmed(&self) -> bool {
        self.attachable()
            && self.gateway_problem.is_none()
            && !self.kinds.is_empty()
            && (self.protocol != Some(Protocol::Https) || !self.certificates.is_empty())
    }

    pub fn admits_kind(&self, kind: RouteKind) -> bool {
        self.kinds.contains(&kind)
    }

    /// `allowedRoutes.namespaces` for a route in `route_namespace` of a
    /// Gateway in `gateway_namespace`.
    pub fn admits_namespace(
        &self,
        resources: &Resources,
        gateway_namespace: &str,
        route_namespace: &str,
    ) -> bool {
        let namespaces = self
            .spec
            .allowed_routes
            .as_ref()
            .and_then(|a| a.namespaces.as_ref());
        match namespaces.map(|n| n.from).unwrap_or_default() {
            FromNamespaces::Same => gateway_namespace == route_namespace,
            FromNamespaces::All => true,
            // Without a selector the listener is not Accepted (`invalid_namespaces`).
            FromNamespaces::Selector => {
                namespaces
                    .and_then(|n| n.selector.as_ref())
                    .is_some_and(|s| {
                        namespace_selector::matches(
                            s,
                            &namespace_selector::labels(resources, route_namespace),
                        )
                    })
            }
        }
    }

    fn valid(&self) -> bool {
        self.attachable() && self.unresolved.is_none()
    }

    fn status(&self, generation: i64) -> ListenerStatus {
        let accepted = match (&self.not_accepted, &self.conflicted) {
            (Some((reason, message)), _) => {
                Condition::new("Accepted", false, reason, message.clone())
            }
            (None, Some(_)) => Condition::new(
                "Accepted",
                false,
                "Invalid",
                "conflicts with another listener (see Conflicted)".to_owned(),
            ),
            (None, None) => Condition::new("Accepted", true, "Accepted", String::new()),
        };
        let resolved = match &self.unresolved {
            Some((reason, message)) => {
                Condition::new("ResolvedRefs", false, reason, message.clone())
            }
            None => Condition::new("ResolvedRefs", true, "ResolvedRefs", String::new()),
        };
        let programmed = if self.programmed() {
            Condition::new("Programmed", true, "Programmed", String::new())
        } else {
            let why = [&self.not_accepted, &self.conflicted, &self.unresolved]
                .into_iter()
                .flatten()
                .map(|(_, message)| message.clone())
                .chain(
                    self.gateway_problem
                        .iter()
                        .map(|m| format!("the Gateway is not served: {m}")),
                )
                .next()
                .unwrap_or_default();
            Condition::new("Programmed", false, "Invalid", why)
        };
        let conflicted = match &self.conflicted {
            Some((reason, message)) => Condition::new("Conflicted", true, reason, message.clone()),
            None => Condition::new("Conflicted", false, "NoConflicts", String::new()),
        };
        let mut conditions = vec![accepted, resolved, programmed, conflicted];
        if !self.overlapping.is_empty() {
            // Negative polarity: set only when True.
            conditions.push(Condition::new(
                "OverlappingTLSConfig",
                true,
                "OverlappingHostnames",
                format!(
                    "hostname {:?} overlaps those of listeners {} on port {}",
                    self.spec.hostname.as_deref().unwrap_or("*"),
                    self.overlapping.join(", "),
                    self.spec.port
                ),
            ));
        }
        ListenerStatus {
            name: self.spec.name.clone(),
            supported_kinds: self
                .kinds
                .iter()
                .map(|k| RouteGroupKind {
                    group: GATEWAY_GROUP,
                    kind: k.name(),
                })
                .collect(),
            attached_routes: self.attached,
            conditions: observed(conditions, generation),
        }
    }
}

pub struct GatewayPlan<'a> {
    pub gateway: &'a Gateway,
    /// What the Gateway as a whole asks for that is not served (`gateway_spec`).
    problem: Option<GatewayProblem>,
    /// Where Envoy binds its listeners: the address its status reports.
    pub address: std::net::IpAddr,
    pub generation: i64,
    pub listeners: Vec<ListenerPlan<'a>>,
}

impl GatewayPlan<'_> {
    fn id(&self) -> String {
        format!(
            "{}/{}",
            self.gateway.metadata.namespace(),
            self.gateway.metadata.name
        )
    }

    /// The Gateway's `Accepted` and `Programmed` from its listeners' states.
    fn listener_conditions(&self, programmed: bool) -> (Condition, Condition) {
        let invalid: Vec<&str> = self
            .listeners
            .iter()
            .filter(|l| !l.valid())
            .map(|l| l.spec.name.as_str())
            .collect();
        let accepted = if invalid.is_empty() {
            Condition::new("Accepted", true, "Accepted", String::new())
        } else {
            Condition::new(
                "Accepted",
                programmed,
                "ListenersNotValid",
                format!(
                    "listeners not valid (see their conditions): {}",
                    invalid.join(", ")
                ),
            )
        };
        let programmed_condition = if programmed {
            Condition::new("Programmed", true, "Programmed", String::new())
        } else {
            Condition::new(
                "Programmed",
                false,
                "Invalid",
                "no listener is programmed".to_owned(),
            )
        };
        (accepted, programmed_condition)
    }

    pub fn status(&self) -> GatewayStatus {
        let programmed = self.listeners.iter().any(ListenerPlan::programmed);
        let (accepted, programmed_condition) = match &self.problem {
            Some(GatewayProblem::NotAccepted(reason, message)) => (
                Condition::new("Accepted", false, reason, message.clone()),
                Condition::new("Programmed", false, "Invalid", message.clone()),
            ),
            Some(GatewayProblem::NotProgrammed(reason, message)) => (
                Condition::new("Accepted", true, "Accepted", String::new()),
                Condition::new("Programmed", false, reason, message.clone()),
            ),
            None => self.listener_conditions(programmed),
        };
        GatewayStatus {
            namespace: self.gateway.metadata.namespace().to_owned(),
            name: self.gateway.metadata.name.clone(),
            addresses: if programmed {
                vec![GatewayAddress {
                    kind: "IPAddress",
                    value: self.address.to_string(),
                }]
            } else {
                Vec::new()
            },
            conditions: observed(vec![accepted, programmed_condition], self.generation),
            listeners: self
                .listeners
                .iter()
                .map(|l| l.status(self.generation))
                .collect(),
        }
    }
}

/// The listeners of `gateways` (Tollgate's, in load order), validated and
/// checked for conflicts within and across Gateways.
pub fn plan<'a>(
    gateways: &[&'a Loaded<Gateway>],
    resources: &Resources,
    options: &Options,
) -> Vec<GatewayPlan<'a>> {
    let mut plans: Vec<GatewayPlan<'a>> = gateways
        .iter()
        .map(|g| {
            let namespace = g.object.metadata.namespace();
            let mut listeners: Vec<ListenerPlan<'a>> = g
                .object
                .spec
                .listeners
                .iter()
                .map(|l| ListenerPlan::new(resources, namespace, l, options))
                .collect();
            mark_conflicts(&mut listeners);
            let problem = gateway_spec::problem(&g.object.spec, options.listener_address);
            if let Some(p) = &problem {
                for l in &mut listeners {
                    l.gateway_problem = Some(p.message().to_owned());
                }
            }
            GatewayPlan {
                gateway: &g.object,
                problem,
                address: options.listener_address,
                generation: g.generation,
                listeners,
            }
        })
        .collect();
    claim_ports(&mut plans);
    mark_overlapping_tls(&mut plans);
    plans
}

/// Conflicts among the listeners of one Gateway, by Envoy port (two spec
/// ports can land on one Envoy port when ports are remapped). A name used
/// twice (the CRD's list-map key) leaves the later listener not Accepted.
fn mark_conflicts(listeners: &mut [ListenerPlan<'_>]) {
    for i in 1..listeners.len() {
        let name = &listeners[i].spec.name;
        if listeners[..i].iter().any(|l| l.spec.name == *name) {
            let message = format!("name {name:?} is used by an earlier listener of this Gateway");
            listeners[i].not_accepted = Some(("Invalid", message));
        }
    }
    let mut by_port: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, l) in listeners.iter().enumerate() {
        by_port.entry(l.envoy_port).or_default().push(i);
    }
    for (port, group) in by_port {
        let mut protocols: Vec<&str> = group
            .iter()
            .map(|i| listeners[*i].spec.protocol.as_str())
            .collect();
        protocols.sort_unstable();
        protocols.dedup();
        if protocols.len() > 1 {
            let message = format!(
                "Envoy port {port} has listeners of protocols {}",
                protocols.join(", ")
            );
            for i in group {
                listeners[i].conflicted = Some(("ProtocolConflict", message.clone()));
            }
            continue;
        }
        let mut by_hostname: BTreeMap<Option<&str>, Vec<usize>> = BTreeMap::new();
        for i in &group {
            by_hostname
                .entry(listeners[*i].spec.hostname.as_deref())
                .or_default()
                .push(*i);
        }
        for (hostname, same) in by_hostname.into_iter().filter(|(_, s)| s.len() > 1) {
            let names: Vec<String> = same
                .iter()
                .map(|i| listeners[*i].spec.name.clone())
                .collect();
            let message = format!(
                "listeners {} share Envoy port {port} and hostname {:?}",
                names.join(", "),
                hostname.unwrap_or("*")
            );
            for i in same {
                listeners[i].conflicted = Some(("HostnameConflict", message.clone()));
            }
        }
    }
}

/// One Envoy serves every Gateway: the first Gateway to use a port decides
/// its protocol, and an HTTPS hostname has one certificate per port.
fn claim_ports(plans: &mut [GatewayPlan<'_>]) {
    let mut protocols: BTreeMap<u32, (Protocol, String)> = BTreeMap::new();
    let mut server_names: BTreeMap<(u32, Option<String>), String> = BTreeMap::new();
    for plan in plans.iter_mut() {
        let id = plan.id();
        let served = |l: &&mut ListenerPlan<'_>| l.attachable() && l.gateway_problem.is_none();
        for listener in plan.listeners.iter_mut().filter(served) {
            let Some(protocol) = listener.protocol else {
                continue;
            };
            let port = listener.envoy_port;
            let (owner_protocol, owner) = protocols
                .entry(port)
                .or_insert_with(|| (protocol, id.clone()));
            if *owner_protocol != protocol {
                listener.not_accepted = Some((
                    "PortUnavailable",
                    format!(
                        "Envoy port {port} already serves {} for Gateway {owner}",
                        owner_protocol.name()
                    ),
                ));
                continue;
            }
            if protocol == Protocol::Https {
                let owner = server_names
                    .entry((port, listener.spec.hostname.clone()))
                    .or_insert_with(|| id.clone());
                if *owner != id {
                    listener.conflicted = Some((
                        "HostnameConflict",
                        format!(
                            "Gateway {owner} already serves hostname {:?} on Envoy port {port}",
                            listener.spec.hostname.as_deref().unwrap_or("*")
                        ),
                    ));
                }
            }
        }
    }
}

/// HTTPS listeners of every Gateway that share an Envoy port and overlap in
/// hostname, each told the others' `gateway/listener` names.
fn mark_overlapping_tls(plans: &mut [GatewayPlan<'_>]) {
    let mut https: Vec<(usize, usize)> = Vec::new();
    for (p, plan) in plans.iter().enumerate() {
        for (l, listener) in plan.listeners.iter().enumerate() {
            if listener.protocol == Some(Protocol::Https)
                && listener.not_accepted.is_none()
                && listener.gateway_problem.is_none()
            {
                https.push((p, l));
            }
        }
    }
    let mut found: Vec<((usize, usize), String)> = Vec::new();
    for (i, &(pa, la)) in https.iter().enumerate() {
        for &(pb, lb) in &https[i + 1..] {
            let (a, b) = (&plans[pa].listeners[la], &plans[pb].listeners[lb]);
            if a.envoy_port == b.envoy_port
                && hostnames::overlap(a.spec.hostname.as_deref(), b.spec.hostname.as_deref())
            {
                found.push(((pa, la), format!("{}/{}", plans[pb].id(), b.spec.name)));
                found.push(((pb, lb), format!("{}/{}", plans[pa].id(), a.spec.name)));
            }
        }
    }
    for ((p, l), other) in found {
        plans[p].listeners[l].overlapping.push(other);
    }
}

/// The Envoy ports of programmed listeners and what each speaks.
pub fn ports(plans: &[GatewayPlan<'_>]) -> BTreeMap<u32, Protocol> {
    plans
        .iter()
        .flat_map(|p| &p.listeners)
        .filter(|l| l.programmed())
        .filter_map(|l| l.protocol.map(|p| (l.envoy_port, p)))
        .collect()
}

/// The TLS filter chains of HTTPS `port`, in Gateway and listener order.
pub fn tls_chains(plans: &[GatewayPlan<'_>], port: u32) -> Vec<tls::Chain> {
    plans
        .iter()
        .flat_map(|plan| {
            let id = plan.id();
            plan.listeners
                .iter()
                .filter(move |l| {
                    l.programmed() && l.envoy_port == port && l.protocol == Some(Protocol::Https)
                })
                .map(move |l| tls::Chain {
                    name: format!("{id}/{}", l.spec.name),
                    hostname: l.spec.hostname.clone(),
                    certificates: l.certificates.clone(),
                })
        })
        .collect()
}
