//! Which policy applies to which Envoy route, and each policy's status.
//!
//! A policy attaches by `targetRefs` (a Gateway, one of its listeners by
//! `sectionName`, an HTTPRoute or GRPCRoute, one of its rules by
//! `sectionName`) or from an HTTPRoute rule's `extensionRef` filter; a rule
//! also configures filters itself (its header modifiers, the split of its
//! weighted backendRefs). [`attach`] is the one place that decides, per route
//! and filter, what applies: the most specific wins, in the order of
//! [`Level`]: extensionRef > the rule's own filter > route rule > route >
//! listener > Gateway > the rule's weighted split; so a platform team's
//! Gateway-wide limit is a default an application's route policy overrides
//! (Envoy Gateway's rule), and any CanaryPolicy replaces a rule's weights.
//! Two policies for the same filter on the same target conflict: the older one
//! wins (creationTimestamp, then file order, as route precedence does) and the
//! other is `Accepted: False, reason: Conflicted` (GEP-713).
//!
//! An invalid policy still attaches (after every valid policy on its target):
//! where it is the one that applies, the route answers 500 rather than serve
//! without it, as a rule with a filter Tollgate cannot apply does.
//!
//! Known limit, by construction of the per-route envelope: a route name has
//! one entry per filter in its listener, so a route attached to two Gateways
//! on one port gets the policy of the more specific, then older, attachment
//! for both.

use std::collections::{BTreeMap, BTreeSet};

use crate::resources::meta::ObjectMeta;
use crate::resources::policies::{PolicyKind, PolicyObject, TargetRef};

use super::filter_chain::RulePolicies;
use super::status::Condition;
use super::weights::Share;
use crate::resources::http_filters::HttpRouteFilter;
use crate::resources::BackendRef;
use tollgate_core::catalogue::FilterKind;

const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// How specific an attachment is; a higher level wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    /// The split of the rule's weighted backendRefs: a default.
    RuleWeights,
    Gateway,
    Listener,
    Route,
    RouteRule,
    /// The rule's own filter (RequestHeaderModifier, ResponseHeaderModifier).
    RuleFilter,
    ExtensionRef,
}

/// What applies to a route for one filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The candidate at this index.
    Policy(usize),
    /// The route's rule's own policy for the filter (`RouteSite::rule`).
    Rule,
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
    /// What the rule itself configures.
    pub rule: RulePolicies,
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
            rule: RulePolicies::default(),
        }
    }

    /// The site of the routes of one rule of route `kind` `namespace/name`
    /// (each route's name is set as it is made): its extensionRefs, the
    /// Services behind its backendRefs that resolved (`shares`, in order),
    /// and what it configures itself (nothing when the rule is invalid: its
    /// routes answer 500).
    pub fn of_rule(
        (kind, namespace, name): (&'static str, &'r str, &'r str),
        rule_name: Option<&'r str>,
        (filters, backend_refs): (&'r [HttpRouteFilter], &'r [BackendRef]),
        shares: &[(Share, u32)],
        rule: Option<&RulePolicies>,
    ) -> Self {
        Self {
            rule_name,
            extension_refs: filters
                .iter()
                .filter_map(|f| f.extension_ref.as_ref())
                .filter_map(|r| {
                    Some((
                        PolicyKind::from_group_kind(&r.group, &r.kind)?,
                        r.name.as_str(),
                    ))
                })
                .collect(),
            backends: backend_refs
                .iter()
                .zip(shares)
                .filter_map(|(b, (share, _))| match share {
                    Share::Cluster(cluster) => Some((b.name.as_str(), cluster.clone())),
                    Share::Invalid(_) => None,
                })
                .collect(),
            rule: rule.cloned().unwrap_or_default(),
            ..Self::new("", kind, namespace, name)
        }
    }

    /// This site for the Envoy route `name`.
    pub fn for_route(&self, name: &str) -> Self {
        Self {
            envoy_route: name.to_owned(),
            ..self.clone()
        }
    }

    /// The filters the rule configures itself, each at its level.
    fn own_filters(&self) -> impl Iterator<Item = (FilterKind, Level)> {
        let headers = self
            .rule
            .headers
            .is_some()
            .then_some((FilterKind::Headers, Level::RuleFilter));
        let canary = self
            .rule
            .canary
            .is_some()
            .then_some((FilterKind::Canary, Level::RuleWeights));
        headers.into_iter().chain(canary)
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

/// What attaching reads of a policy: its kind, name and targets (a policy
/// refused at load has these and no config).
#[derive(Debug, Clone, Copy)]
pub struct PolicyHead<'p> {
    pub kind: PolicyKind,
    pub metadata: &'p ObjectMeta,
    pub target_refs: &'p [TargetRef],
}

impl<'p> PolicyHead<'p> {
    pub fn of(policy: &'p PolicyObject) -> Self {
        Self {
            kind: policy.kind,
            metadata: &policy.metadata,
            target_refs: &policy.target_refs,
        }
    }
}

/// A policy's place in the age order, and its config's verdict.
pub struct Candidate<'p> {
    pub policy: PolicyHead<'p>,
    /// `(creationTimestamp or "", load order)`: smaller is older.
    pub age: (String, usize),
    /// `Err(message)` when the filter would refuse the config.
    pub valid: Result<(), String>,
}

#[derive(Debug, Default)]
pub struct Attachment {
    /// Per Envoy route, per filter: what applies.
    pub winners: BTreeMap<String, BTreeMap<FilterKind, Source>>,
    /// Per candidate, its `Accepted` condition.
    pub accepted: Vec<Condition>,
    /// Per candidate, the routes where the rule's own filter applies instead.
    pub overridden_by_rule: Vec<Vec<String>>,
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
        for r in c.policy.target_refs {
            match resolve(targets, namespace, r) {
                Some(t) => found.push(t),
                None => lost.push(describe(r)),
            }
        }
        resolved.push(found);
        missing.push(lost);
    }
    // A target named by two policies of one filter belongs to the older.
    let mut owner: BTreeMap<(FilterKind, Target<'r>), usize> = BTreeMap::new();
    let mut conflicted: Vec<Vec<String>> = vec![Vec::new(); candidates.len()];
    // Valid policies first, each group oldest first: an invalid policy only
    // takes a target no valid one holds, and is never "Conflicted".
    let mut by_age: Vec<usize> = (0..candidates.len()).collect();
    by_age.sort_by(|a, b| {
        let (a, b) = (&candidates[*a], &candidates[*b]);
        (
            a.valid.is_err(),
            &a.age,
            a.policy.metadata.namespace(),
            &a.policy.metadata.name,
        )
            .cmp(&(
                b.valid.is_err(),
                &b.age,
                b.policy.metadata.namespace(),
                &b.policy.metadata.name,
            ))
    });
    for &i in &by_age {
        let filter = candidates[i].policy.kind.filter();
        for &target in &resolved[i] {
            match owner.get(&(filter, target)) {
                Some(_) if candidates[i].valid.is_err() => {}
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
    // Candidate → its place in age order (valid first, older first).
    let mut rank = vec![usize::MAX; candidates.len()];
    for (place, &i) in by_age.iter().enumerate() {
        rank[i] = place;
    }
    let mut by_target: BTreeMap<Target<'r>, Vec<(FilterKind, usize)>> = BTreeMap::new();
    for (&(filter, target), &i) in &owner {
        by_target.entry(target).or_default().push((filter, i));
    }
    let mut winners: BTreeMap<String, BTreeMap<FilterKind, Source>> = BTreeMap::new();
    let mut overridden_by_rule = vec![Vec::new(); candidates.len()];
    for site in sites {
        // Per filter: the best offer so far, and the policies offered.
        let mut best: BTreeMap<FilterKind, (Level, Source)> = BTreeMap::new();
        let mut offered: Vec<(FilterKind, usize)> = Vec::new();
        let mut offer = |filter: FilterKind, level: Level, source: Source| {
            let better = best.get(&filter).is_none_or(|(l, held)| {
                level > *l
                    || (level == *l
                        && matches!((source, held), (Source::Policy(i), Source::Policy(h)) if rank[i] < rank[*h]))
            });
            if let Source::Policy(i) = source {
                offered.push((filter, i));
            }
            if better {
                best.insert(filter, (level, source));
            }
        };
        for (filter, level) in site.own_filters() {
            offer(filter, level, Source::Rule);
        }
        for target in site.targets() {
            for &(filter, i) in by_target.get(&target).into_iter().flatten() {
                offer(filter, target.level(), Source::Policy(i));
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
                    candidates[i].policy.kind.filter(),
                    Level::ExtensionRef,
                    Source::Policy(i),
                );
            }
        }
        for (filter, i) in offered {
            if best.get(&filter).is_some_and(|(_, s)| *s == Source::Rule) {
                overridden_by_rule[i].push(site.envoy_route.clone());
            }
        }
        if !best.is_empty() {
            winners.insert(
                site.envoy_route.clone(),
                best.into_iter().map(|(f, (_, s))| (f, s)).collect(),
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
    Attachment {
        winners,
        accepted,
        overridden_by_rule,
    }
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
                policy: PolicyHead::of(policy),
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
            rule: RulePolicies::default(),
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

    fn source(attachment: &Attachment, route: &str) -> Option<Source> {
        attachment
            .winners
            .get(&format!("httproute/app/{route}/rule/0/match/0"))
            .and_then(|w| w.get(&FilterKind::Headers).copied())
    }

    fn winner(attachment: &Attachment, route: &str) -> Option<usize> {
        match source(attachment, route)? {
            Source::Policy(i) => Some(i),
            Source::Rule => None,
        }
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
    fn missing_targets_are_reported_and_an_invalid_policy_applies_only_as_a_refusal() {
        let missing = "[{group: gateway.networking.k8s.io, kind: HTTPRoute, name: nope}]";
        let policies = [
            header_policy("lost", missing),
            header_policy("bad", ROUTE_A),
            header_policy("gateway", GW),
        ];
        let mut cands = candidates(&policies);
        cands[1].valid = Err("invalid config at `request.set[0].name`: empty".into());
        let a = attach(&cands, &targets(), &[site("a", None, "http")]);
        // The route policy applies (it is the more specific), and it is invalid.
        assert_eq!(winner(&a, "a"), Some(1));
        assert_eq!(a.accepted[0].reason, "TargetNotFound");
        assert!(a.accepted[0].message.contains("HTTPRoute nope"));
        assert_eq!(a.accepted[1].reason, "Invalid");
        assert!(a.accepted[1].message.contains("request.set[0].name"));
        assert_eq!(a.accepted[2].reason, "Accepted");
    }

    #[test]
    fn an_invalid_policy_never_takes_a_target_from_a_valid_one_nor_conflicts() {
        let policies = [
            header_policy("bad", ROUTE_A),
            header_policy("good", ROUTE_A),
        ];
        let mut cands = candidates(&policies);
        cands[0].valid = Err("broken".into());
        let a = attach(&cands, &targets(), &[site("a", None, "http")]);
        assert_eq!(winner(&a, "a"), Some(1), "the older policy is invalid");
        assert_eq!(a.accepted[0].reason, "Invalid");
        assert_eq!(a.accepted[1].reason, "Accepted");
        assert_eq!(a.accepted[1].message, "");
    }

    #[test]
    fn the_rules_own_modifier_beats_route_policies_and_an_extension_ref_beats_it() {
        let policies = [
            header_policy("route", ROUTE_A),
            header_policy("by-ref", "[]"),
        ];
        let mut own = site("a", None, "http");
        own.rule.headers = Some(std::sync::Arc::new(serde_json::json!({})));
        let a = attach(
            &candidates(&policies),
            &targets(),
            std::slice::from_ref(&own),
        );
        assert_eq!(source(&a, "a"), Some(Source::Rule));
        assert_eq!(a.overridden_by_rule[0], [own.envoy_route.clone()]);
        own.extension_refs = vec![(PolicyKind::HeaderPolicy, "by-ref")];
        let a = attach(&candidates(&policies), &targets(), &[own]);
        assert_eq!(source(&a, "a"), Some(Source::Policy(1)));
        assert!(a.overridden_by_rule[0].is_empty());
    }

    #[test]
    fn any_canary_policy_replaces_the_split_of_a_rules_weights() {
        let canary = |name: &str, targets: &str| {
            let doc = format!(
                "metadata: {{name: {name}, namespace: app}}\nspec:\n  targetRefs: {targets}\n  canary: {{backends: [{{name: a}}]}}\n"
            );
            PolicyObject::from_yaml(PolicyKind::CanaryPolicy, &doc).unwrap()
        };
        let policies = [canary("gateway", GW)];
        let mut weighted = site("a", None, "http");
        weighted.rule.canary = Some(std::sync::Arc::new(serde_json::json!({})));
        let a = attach(
            &candidates(&policies),
            &targets(),
            std::slice::from_ref(&weighted),
        );
        let route = &a.winners[&weighted.envoy_route];
        assert_eq!(route[&FilterKind::Canary], Source::Policy(0));
        let a = attach(&candidates(&[]), &targets(), &[weighted.clone()]);
        assert_eq!(
            a.winners[&weighted.envoy_route][&FilterKind::Canary],
            Source::Rule
        );
    }
}
