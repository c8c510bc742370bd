//! Which policy applies to which Envoy route, and each policy's status.
//!
//! A policy attaches by `targetRefs` (a Gateway, one of its listeners by
//! `sectionName`, an HTTPRoute or GRPCRoute, one of its rules by
//! `sectionName`) or from an HTTPRoute rule's `extensionRef` filter. Per
//! filter, the most specific attachment wins for a route: extensionRef > route
//! rule > route > listener > Gateway, so a platform team's Gateway-wide limit
//! is a default an application's route policy overrides (Envoy Gateway's
//! rule). Two policies for the same filter on the same target conflict: the
//! older one wins (creationTimestamp, then file order, as route precedence
//! does) and the other is `Accepted: False, reason: Conflicted` (GEP-713).
//!
//! Known limit, by construction of the per-route envelope: a route name has
//! one entry per filter in its listener, so a route attached to two Gateways
//! on one port gets the policy of the more specific, then older, attachment
//! for both.

use std::collections::{BTreeMap, BTreeSet};

use crate::resources::policies::{FilterConfig, PolicyKind, PolicyObject};

use super::status::Condition;

const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// The filter a policy configures: at most one policy per filter per route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Filter {
    Jwt,
    RateLimit,
    Headers,
    Canary,
}

impl Filter {
    pub fn of(config: &FilterConfig) -> Filter {
        match config {
            FilterConfig::Jwt(_) => Filter::Jwt,
            FilterConfig::RateLimit(_) => Filter::RateLimit,
            FilterConfig::Headers(_) => Filter::Headers,
            FilterConfig::Canary(_) => Filter::Canary,
        }
    }
}

/// How specific an attachment is; a higher level wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Gateway,
    Listener,
    Route,
    RouteRule,
    ExtensionRef,
}

/// Where one Envoy route comes from. Names are borrowed from the resources:
/// there is a site per Envoy route, tens of thousands of them.
#[derive(Debug, Clone)]
pub struct RouteSite<'r> {
    pub envoy_route: String,
    /// `HTTPRoute` or `GRPCRoute`.
    pub route_kind: &'static str,
    pub namespace: &'r str,
    pub route_name: &'r str,
    pub rule_name: Option<&'r str>,
    /// The rule's `extensionRef` filters naming a policy: `(kind, name)`.
    pub extension_refs: Vec<(PolicyKind, &'r str)>,
    /// The Gateway listeners the route is attached through:
    /// `(gateway namespace, gateway name, listener name)`.
    pub listeners: Vec<(&'r str, &'r str, &'r str)>,
    /// The rule's backendRefs that resolved: `(Service name, cluster)`, for
    /// a CanaryPolicy naming Services.
    pub backends: Vec<(&'r str, String)>,
}

impl<'r> RouteSite<'r> {
    /// A site of route `kind` `namespace/name`, with nothing attached yet.
    pub fn new(envoy_route: &str, kind: &'static str, namespace: &'r str, name: &'r str) -> Self {
        Self {
            envoy_route: envoy_route.to_owned(),
            route_kind: kind,
            namespace,
            route_name: name,
            rule_name: None,
            extension_refs: Vec::new(),
            listeners: Vec::new(),
            backends: Vec::new(),
        }
    }

    /// Every target that covers this route: its route and rule, each Gateway
    /// and listener it is attached through.
    fn targets(&self) -> Vec<Target<'r>> {
        let (kind, ns, name) = (self.route_kind, self.namespace, self.route_name);
        let mut out = vec![Target::Route(kind, ns, name)];
        if let Some(rule) = self.rule_name {
            out.push(Target::RouteRule(kind, ns, name, rule));
        }
        for &(g_ns, g, l) in &self.listeners {
            out.push(Target::Gateway(g_ns, g));
            out.push(Target::Listener(g_ns, g, l));
        }
        out
    }
}

/// What exists to be targeted: Gateways with their listener names, routes with
/// their rule names.
#[derive(Debug, Default)]
pub struct Targets<'r> {
    /// `(namespace, name)` → listener names.
    pub gateways: BTreeMap<(&'r str, &'r str), Vec<&'r str>>,
    /// `(kind, namespace, name)` → rule names (unnamed rules left out).
    pub routes: BTreeMap<(&'static str, &'r str, &'r str), Vec<&'r str>>,
}

/// A policy's place in the age order, and its config's verdict.
pub struct Candidate<'p> {
    pub policy: &'p PolicyObject,
    /// `(creationTimestamp or "", load order)`: smaller is older.
    pub age: (String, usize),
    /// `Err(message)` when the filter would refuse the config.
    pub valid: Result<(), String>,
}

#[derive(Debug, Default)]
pub struct Attachment {
    /// Per Envoy route, per filter: the index (into the candidates) of the
    /// policy that applies.
    pub winners: BTreeMap<String, BTreeMap<Filter, usize>>,
    /// Per candidate, its `Accepted` condition.
    pub accepted: Vec<Condition>,
}

/// One target a policy names, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Target<'r> {
    Gateway(&'r str, &'r str),
    Listener(&'r str, &'r str, &'r str),
    Route(&'static str, &'r str, &'r str),
    RouteRule(&'static str, &'r str, &'r str, &'r str),
}

impl std::fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Gateway(ns, name) => write!(f, "Gateway {ns}/{name}"),
            Target::Listener(ns, name, l) => write!(f, "Gateway {ns}/{name} listener {l}"),
            Target::Route(kind, ns, name) => write!(f, "{kind} {ns}/{name}"),
            Target::RouteRule(kind, ns, name, r) => write!(f, "{kind} {ns}/{name} rule {r}"),
        }
    }
}

impl Target<'_> {
    fn level(&self) -> Level {
        match self {
            Target::Gateway(..) => Level::Gateway,
            Target::Listener(..) => Level::Listener,
            Target::Route(..) => Level::Route,
            Target::RouteRule(..) => Level::RouteRule,
        }
    }
}

/// Resolves every candidate's targets and picks, per route and filter, the
/// policy that applies.
pub fn attach<'r>(
    candidates: &[Candidate<'r>],
    targets: &Targets<'r>,
    sites: &[RouteSite<'r>],
) -> Attachment {
    // Each candidate's resolved targets, and the refs that named nothing.
    let mut resolved: Vec<Vec<Target<'r>>> = Vec::with_capacity(candidates.len());
    let mut missing: Vec<Vec<String>> = Vec::with_capacity(candidates.len());
    for c in candidates {
        let namespace = c.policy.metadata.namespace();
        let (mut found, mut lost) = (Vec::new(), Vec::new());
        for r in &c.policy.target_refs {
            match resolve(targets, namespace, r) {
                Some(t) => found.push(t),
                None => lost.push(describe(r)),
            }
        }
        resolved.push(found);
        missing.push(lost);
    }
    // A target named by two policies of one filter belongs to the older.
    let mut owner: BTreeMap<(Filter, Target<'r>), usize> = BTreeMap::new();
    let mut conflicted: Vec<Vec<String>> = vec![Vec::new(); candidates.len()];
    let mut by_age: Vec<usize> = (0..candidates.len())
        .filter(|i| candidates[*i].valid.is_ok())
        .collect();
    by_age.sort_by(|a, b| {
        let (a, b) = (&candidates[*a], &candidates[*b]);
        (
            &a.age,
            a.policy.metadata.namespace(),
            &a.policy.metadata.name,
        )
            .cmp(&(
                &b.age,
                b.policy.metadata.namespace(),
                &b.policy.metadata.name,
            ))
    });
    for &i in &by_age {
        let filter = Filter::of(&candidates[i].policy.config);
        for &target in &resolved[i] {
            match owner.get(&(filter, target)) {
                Some(&older) => conflicted[i].push(format!(
                    "{target} is already configured by {} {}/{}",
                    candidates[older].policy.kind.name(),
                    candidates[older].policy.metadata.namespace(),
                    candidates[older].policy.metadata.name
                )),
                None => {
                    owner.insert((filter, target), i);
                }
            }
        }
    }
    // Candidate → its place in age order (older first); invalid ones never win.
    let mut rank = vec![usize::MAX; candidates.len()];
    for (place, &i) in by_age.iter().enumerate() {
        rank[i] = place;
    }
    let mut by_target: BTreeMap<Target<'r>, Vec<(Filter, usize)>> = BTreeMap::new();
    for (&(filter, target), &i) in &owner {
        by_target.entry(target).or_default().push((filter, i));
    }
    let mut winners: BTreeMap<String, BTreeMap<Filter, usize>> = BTreeMap::new();
    for site in sites {
        let mut best: BTreeMap<Filter, (Level, usize)> = BTreeMap::new();
        let mut offer = |filter: Filter, level: Level, i: usize| {
            let better = best
                .get(&filter)
                .is_none_or(|(l, held)| level > *l || (level == *l && rank[i] < rank[*held]));
            if better {
                best.insert(filter, (level, i));
            }
        };
        for target in site.targets() {
            for &(filter, i) in by_target.get(&target).into_iter().flatten() {
                offer(filter, target.level(), i);
            }
        }
        for (kind, name) in &site.extension_refs {
            let by_ref = by_age.iter().copied().find(|i| {
                let p = candidates[*i].policy;
                p.kind == *kind
                    && p.metadata.name == *name
                    && p.metadata.namespace() == site.namespace
            });
            if let Some(i) = by_ref {
                offer(
                    Filter::of(&candidates[i].policy.config),
                    Level::ExtensionRef,
                    i,
                );
            }
        }
        if !best.is_empty() {
            winners.insert(
                site.envoy_route.clone(),
                best.into_iter().map(|(f, (_, i))| (f, i)).collect(),
            );
        }
    }
    let named_by_rules: BTreeSet<(PolicyKind, &str, &str)> = sites
        .iter()
        .flat_map(|s| s.extension_refs.iter().map(|&(k, n)| (k, s.namespace, n)))
        .collect();
    let referenced: Vec<bool> = candidates
        .iter()
        .map(|c| {
            let p = c.policy;
            named_by_rules.contains(&(p.kind, p.metadata.namespace(), p.metadata.name.as_str()))
        })
        .collect();
    let accepted = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if let Err(message) = &c.valid {
                return Condition::new("Accepted", false, "Invalid", message.clone());
            }
            let owns_any = resolved[i].len() > conflicted[i].len();
            if !owns_any && !conflicted[i].is_empty() {
                return Condition::new("Accepted", false, "Conflicted", conflicted[i].join("; "));
            }
            if resolved[i].is_empty() && !referenced[i] {
                let message = if missing[i].is_empty() {
                    "no targetRefs and no HTTPRoute rule's extensionRef names it".to_owned()
                } else {
                    format!("not found: {}", missing[i].join(", "))
                };
                return Condition::new("Accepted", false, "TargetNotFound", message);
            }
            let mut notes: Vec<String> = Vec::new();
            if !missing[i].is_empty() {
                notes.push(format!("not found: {}", missing[i].join(", ")));
            }
            notes.extend(conflicted[i].iter().cloned());
            Condition::new("Accepted", true, "Accepted", notes.join("; "))
        })
        .collect();
    Attachment { winners, accepted }
}

fn resolve<'r>(
    targets: &Targets<'r>,
    namespace: &'r str,
    r: &'r crate::resources::policies::TargetRef,
) -> Option<Target<'r>> {
    if r.group != GATEWAY_GROUP {
        return None;
    }
    let (ns, name) = (namespace, r.name.as_str());
    match r.kind.as_str() {
        "Gateway" => {
            let listeners = targets.gateways.get(&(ns, name))?;
            match r.section_name.as_deref() {
                None => Some(Target::Gateway(ns, name)),
                Some(l) => listeners
                    .contains(&l)
                    .then_some(Target::Listener(ns, name, l)),
            }
        }
        "HTTPRoute" | "GRPCRoute" => {
            let kind: &'static str = if r.kind == "HTTPRoute" {
                "HTTPRoute"
            } else {
                "GRPCRoute"
            };
            let rules = targets.routes.get(&(kind, ns, name))?;
            match r.section_name.as_deref() {
                None => Some(Target::Route(kind, ns, name)),
                Some(rule) => rules
                    .contains(&rule)
                    .then_some(Target::RouteRule(kind, ns, name, rule)),
            }
        }
        _ => None,
    }
}

fn describe(r: &crate::resources::policies::TargetRef) -> String {
    match &r.section_name {
        Some(s) => format!("{} {}/{}", r.kind, r.name, s),
        None => format!("{} {}", r.kind, r.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_policy(name: &str, targets: &str) -> PolicyObject {
        let doc = format!(
            "metadata: {{name: {name}, namespace: app}}\nspec:\n  targetRefs: {targets}\n  headers: {{request: {{set: [{{name: x-policy, value: {name}}}]}}}}\n"
        );
        PolicyObject::from_yaml(PolicyKind::HeaderPolicy, &doc).unwrap()
    }

    fn candidates(policies: &[PolicyObject]) -> Vec<Candidate<'_>> {
        policies
            .iter()
            .enumerate()
            .map(|(order, policy)| Candidate {
                policy,
                age: (String::new(), order),
                valid: Ok(()),
            })
            .collect()
    }

    fn site(
        route: &'static str,
        rule: Option<&'static str>,
        listener: &'static str,
    ) -> RouteSite<'static> {
        RouteSite {
            envoy_route: format!("httproute/app/{route}/rule/0/match/0"),
            route_kind: "HTTPRoute",
            namespace: "app",
            route_name: route,
            rule_name: rule,
            extension_refs: Vec::new(),
            listeners: vec![("app", "gw", listener)],
            backends: Vec::new(),
        }
    }

    fn targets() -> Targets<'static> {
        let mut t = Targets::default();
        t.gateways.insert(("app", "gw"), vec!["http", "admin"]);
        for route in ["a", "b"] {
            t.routes.insert(("HTTPRoute", "app", route), vec!["main"]);
        }
        t
    }

    fn winner(attachment: &Attachment, route: &str) -> Option<usize> {
        attachment
            .winners
            .get(&format!("httproute/app/{route}/rule/0/match/0"))
            .and_then(|w| w.get(&Filter::Headers).copied())
    }

    const GW: &str = "[{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]";
    const ROUTE_A: &str = "[{group: gateway.networking.k8s.io, kind: HTTPRoute, name: a}]";

    #[test]
    fn a_route_policy_overrides_the_gateway_policy_for_that_route_only() {
        let policies = [
            header_policy("route", ROUTE_A),
            header_policy("gateway", GW),
        ];
        let sites = [site("a", None, "http"), site("b", None, "http")];
        let a = attach(&candidates(&policies), &targets(), &sites);
        assert_eq!(winner(&a, "a"), Some(0));
        assert_eq!(winner(&a, "b"), Some(1));
        assert!(
            a.accepted.iter().all(|c| c.status == "True"),
            "{:?}",
            a.accepted
        );
    }

    #[test]
    fn a_listener_policy_reaches_only_routes_through_that_listener() {
        let listener =
            "[{group: gateway.networking.k8s.io, kind: Gateway, name: gw, sectionName: admin}]";
        let policies = [
            header_policy("gateway", GW),
            header_policy("admin", listener),
        ];
        let sites = [site("a", None, "http"), site("b", None, "admin")];
        let a = attach(&candidates(&policies), &targets(), &sites);
        assert_eq!(winner(&a, "a"), Some(0));
        assert_eq!(winner(&a, "b"), Some(1));
    }

    #[test]
    fn a_rule_section_beats_the_whole_route_and_an_extension_ref_beats_both() {
        let rule =
            "[{group: gateway.networking.k8s.io, kind: HTTPRoute, name: a, sectionName: main}]";
        let policies = [
            header_policy("route", ROUTE_A),
            header_policy("rule", rule),
            header_policy("by-ref", "[]"),
        ];
        let mut by_ref = site("a", Some("main"), "http");
        let plain = site("a", Some("main"), "http");
        let a = attach(&candidates(&policies), &targets(), &[plain]);
        assert_eq!(winner(&a, "a"), Some(1));
        by_ref.extension_refs = vec![(PolicyKind::HeaderPolicy, "by-ref")];
        let a = attach(&candidates(&policies), &targets(), &[by_ref]);
        assert_eq!(winner(&a, "a"), Some(2));
        assert_eq!(
            a.accepted[2].reason, "Accepted",
            "referenced, so not TargetNotFound"
        );
    }

    #[test]
    fn the_older_of_two_policies_on_one_target_wins_and_the_other_is_conflicted() {
        let policies = [
            header_policy("first", ROUTE_A),
            header_policy("second", ROUTE_A),
        ];
        let a = attach(
            &candidates(&policies),
            &targets(),
            &[site("a", None, "http")],
        );
        assert_eq!(winner(&a, "a"), Some(0));
        assert_eq!(a.accepted[0].reason, "Accepted");
        assert_eq!(a.accepted[1].reason, "Conflicted");
        assert!(
            a.accepted[1].message.contains("app/first"),
            "{}",
            a.accepted[1].message
        );
    }

    #[test]
    fn missing_targets_and_invalid_configs_are_reported_and_never_applied() {
        let missing = "[{group: gateway.networking.k8s.io, kind: HTTPRoute, name: nope}]";
        let policies = [
            header_policy("lost", missing),
            header_policy("bad", ROUTE_A),
        ];
        let mut cands = candidates(&policies);
        cands[1].valid = Err("invalid config at `request.set[0].name`: empty".into());
        let a = attach(&cands, &targets(), &[site("a", None, "http")]);
        assert_eq!(winner(&a, "a"), None);
        assert_eq!(a.accepted[0].reason, "TargetNotFound");
        assert!(a.accepted[0].message.contains("HTTPRoute nope"));
        assert_eq!(a.accepted[1].reason, "Invalid");
        assert!(a.accepted[1].message.contains("request.set[0].name"));
    }
}
