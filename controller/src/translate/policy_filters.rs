//! Tollgate policies → the filters' per-route entries, the clusters the
//! filters call, and each policy's status.
//!
//! Every policy is prepared once (`Catalog::new`): the controller fills in
//! what only it knows (the cluster of each remote JWKS, the rate limit
//! service of global rules) and checks the result with the filter's own
//! compiler, so an invalid policy is `Accepted: False, reason: Invalid` with
//! the field's path and never reaches Envoy. `policy_attachment` then picks
//! per route and filter the one that applies, and `Catalog::apply` writes it
//! into the route's entry.
//!
//! Decisions where the spec is silent (written down in docs/policies.md):
//! - An HTTPRoute rule's own RequestHeaderModifier / ResponseHeaderModifier
//!   wins over a HeaderPolicy for that rule's routes (it is the more specific
//!   statement); a CanaryPolicy replaces the split the rule's weights give,
//!   choosing among the rule's backendRefs by Service name.
//! - `remoteJWKS.cluster` names the cluster the controller creates for the
//!   URI (default `jwks/<host>:<port>`); file mode has no other clusters.
//! - Global rate limit rules need `--ratelimit-service HOST:PORT`; the
//!   service then is cluster `tollgate-ratelimit` (HTTP/2).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use serde_json::Value;
use tollgate_core::canary::config::CanaryConfig;
use tollgate_core::canary::policy::DEFAULT_HEADER;
use tollgate_core::headers::HeaderModConfig;
use tollgate_core::jwt::config::JwtConfig;
use tollgate_core::ratelimit::config::{RateLimitConfig, ServiceConfig};
use tollgate_core::ConfigError;

use super::filter_chain::{checked, FilterPolicy, PolicyTable, RouteVerdict, RulePolicies};
use super::policy_attachment::{self, Candidate, PolicyHead, RouteSite, Source, Targets};
use super::service_clusters::{self, Upstream, RATELIMIT_CLUSTER};
use super::status::{observed, Condition, PolicyStatus};
use crate::resources::http_filters::LocalObjectReference;
use crate::resources::policies::{FilterConfig, PolicyKind, PolicyObject};
use crate::resources::refused::{RefusedKind, RefusedObject};
use crate::resources::{Loaded, Resources};
use tollgate_core::catalogue::FilterKind;

/// A policy as it will be emitted.
struct Prepared<'r> {
    head: PolicyHead<'r>,
    /// Load order and generation.
    order: usize,
    generation: i64,
    /// `None` for a policy refused at load.
    config: Option<FilterConfig>,
    /// `config` serialised, once checked (what every route it applies to gets).
    checked: Arc<Value>,
    /// The clusters its filter calls.
    clusters: Vec<Cluster>,
    valid: Result<(), String>,
}

/// Every loaded policy, prepared and checked.
pub struct Catalog<'r> {
    policies: Vec<Prepared<'r>>,
}

/// What applying the policies produced besides the filter entries.
#[derive(Default)]
pub struct Applied {
    pub statuses: Vec<PolicyStatus>,
    pub clusters: Vec<Cluster>,
}

impl<'r> Catalog<'r> {
    pub fn new(resources: &'r Resources, ratelimit_service: Option<&Upstream>) -> Self {
        let mut policies: Vec<Prepared<'r>> = resources
            .policies
            .iter()
            .map(|loaded| prepare(loaded, ratelimit_service))
            .collect();
        policies.extend(resources.refused.iter().filter_map(refused));
        Self { policies }
    }

    /// `Ok` when an HTTPRoute rule's `extensionRef` in `namespace` names a
    /// usable policy; `None` when it names no policy kind at all.
    pub fn reference(
        &self,
        namespace: &str,
        r: &LocalObjectReference,
    ) -> Option<Result<PolicyKind, String>> {
        let kind = PolicyKind::from_group_kind(&r.group, &r.kind)?;
        let found = self.find(kind, namespace, &r.name);
        Some(match found {
            None => Err(format!(
                "{} {namespace}/{} does not exist",
                kind.name(),
                r.name
            )),
            Some(p) => match &p.valid {
                Ok(()) => Ok(kind),
                Err(e) => Err(format!(
                    "{} {namespace}/{} is invalid: {e}",
                    kind.name(),
                    r.name
                )),
            },
        })
    }

    fn find(&self, kind: PolicyKind, namespace: &str, name: &str) -> Option<&Prepared<'r>> {
        self.policies.iter().find(|p| {
            let o = &p.head;
            o.kind == kind && o.metadata.name == name && o.metadata.namespace() == namespace
        })
    }

    /// Decides, per route in `sites` and filter, what applies (the rule's own
    /// policy or a Tollgate policy, `policy_attachment::attach`), and writes
    /// it to `entries`: the one place the table is filled.
    pub fn apply(
        &self,
        targets: &Targets<'r>,
        sites: &[RouteSite<'r>],
        entries: &mut PolicyTable,
    ) -> Applied {
        let candidates: Vec<Candidate<'_>> = self
            .policies
            .iter()
            .map(|p| Candidate {
                policy: p.head,
                age: (
                    p.head
                        .metadata
                        .creation_timestamp
                        .clone()
                        .unwrap_or_default(),
                    p.order,
                ),
                valid: p.valid.clone(),
            })
            .collect();
        let attachment = policy_attachment::attach(&candidates, targets, sites);
        let mut applied = Applied::default();
        let mut used = vec![false; self.policies.len()];
        // Per policy, the routes it could not be applied to and why.
        let mut skipped: Vec<Vec<String>> = vec![Vec::new(); self.policies.len()];
        for (i, routes) in attachment.overridden_by_rule.iter().enumerate() {
            for route in routes {
                skipped[i].push(format!(
                    "{route}: its rule's own header modifier applies instead"
                ));
            }
        }
        // Per policy, the routes that answer 500 because it is invalid.
        let mut refused: Vec<Vec<&str>> = vec![Vec::new(); self.policies.len()];
        for site in sites {
            let route = site.envoy_route.as_str();
            if let Some(cors) = &site.rule.cors {
                entries.insert_cors(route, cors);
            }
            let Some(winners) = attachment.winners.get(route) else {
                continue;
            };
            for (&filter, &source) in winners {
                let i = match source {
                    Source::Rule => {
                        rule_policy(entries, route, filter, &site.rule);
                        continue;
                    }
                    Source::Policy(i) => i,
                };
                let policy = &self.policies[i];
                if policy.valid.is_err() {
                    entries.decide(route, RouteVerdict::InternalServerError);
                    refused[i].push(route);
                    continue;
                }
                let outcome = match (&policy.config, filter) {
                    (Some(FilterConfig::Jwt(_)), FilterKind::Jwt) => {
                        entries.insert_checked::<JwtConfig>(route, &policy.checked);
                        Ok(())
                    }
                    (Some(FilterConfig::RateLimit(_)), FilterKind::RateLimit) => {
                        entries.insert_checked::<RateLimitConfig>(route, &policy.checked);
                        Ok(())
                    }
                    (Some(FilterConfig::Headers(_)), FilterKind::Headers) => {
                        entries.insert_checked::<HeaderModConfig>(route, &policy.checked);
                        Ok(())
                    }
                    (Some(FilterConfig::Canary(c)), FilterKind::Canary) => canary_for(c, site)
                        .and_then(|c| insert(entries, route, &c))
                        .map(|()| entries.decide(route, RouteVerdict::ForwardByCanaryHeader)),
                    _ => Err("internal: policy and filter disagree".to_owned()),
                };
                match outcome {
                    Ok(()) => used[i] = true,
                    Err(why) => skipped[i].push(format!("{route}: {why}")),
                }
            }
        }
        let mut cluster_names = BTreeSet::new();
        for (p, _) in self.policies.iter().zip(&used).filter(|(_, u)| **u) {
            for c in &p.clusters {
                if cluster_names.insert(c.name.clone()) {
                    applied.clusters.push(c.clone());
                }
            }
        }
        applied.statuses = self
            .policies
            .iter()
            .zip(attachment.accepted)
            .enumerate()
            .map(|(i, (p, mut accepted))| {
                if !skipped[i].is_empty() {
                    let note = format!("not applied to {}", skipped[i].join("; "));
                    accepted = if used[i] || accepted.status == "False" {
                        let message = [accepted.message.as_str(), note.as_str()]
                            .iter()
                            .filter(|m| !m.is_empty())
                            .copied()
                            .collect::<Vec<_>>()
                            .join("; ");
                        Condition::new(
                            "Accepted",
                            accepted.status == "True",
                            accepted.reason,
                            message,
                        )
                    } else {
                        Condition::new("Accepted", false, "Invalid", note)
                    };
                }
                if !refused[i].is_empty() {
                    accepted.message.push_str(&format!(
                        "; the routes it applies to answer 500 until it is fixed: {}",
                        refused[i].join(", ")
                    ));
                }
                let meta = p.head.metadata;
                PolicyStatus {
                    kind: p.head.kind.name(),
                    namespace: meta.namespace().to_owned(),
                    name: meta.name.clone(),
                    conditions: observed(vec![accepted], p.generation),
                }
            })
            .collect();
        applied
    }
}

fn insert<P: FilterPolicy>(entries: &mut PolicyTable, route: &str, c: &P) -> Result<(), String> {
    entries.insert(route, c).map_err(|e| e.to_string())
}

/// Gives `route` its rule's own policy for `filter` (checked with the rule).
fn rule_policy(entries: &mut PolicyTable, route: &str, filter: FilterKind, rule: &RulePolicies) {
    match (filter, &rule.headers, &rule.canary) {
        (FilterKind::Headers, Some(headers), _) => {
            entries.insert_checked::<HeaderModConfig>(route, headers);
        }
        (FilterKind::Canary, _, Some(canary)) => {
            entries.insert_checked::<CanaryConfig>(route, canary);
        }
        _ => {}
    }
}

/// The policy's split over the route's rule: backend names are Service names
/// among the rule's backendRefs, emitted as their clusters.
fn canary_for(config: &CanaryConfig, site: &RouteSite<'_>) -> Result<CanaryConfig, String> {
    let cluster = |name: &str| {
        site.backends
            .iter()
            .find(|(service, _)| *service == name)
            .map(|(_, cluster)| cluster.clone())
            .ok_or_else(|| format!("its rule has no backendRef to Service {name:?}"))
    };
    let mut out = config.clone();
    for backend in &mut out.backends {
        backend.name = cluster(&backend.name)?;
    }
    for rule in &mut out.rules {
        rule.backend = cluster(&rule.backend)?;
    }
    Ok(out)
}

fn prepare<'r>(
    loaded: &'r Loaded<PolicyObject>,
    ratelimit_service: Option<&Upstream>,
) -> Prepared<'r> {
    let policy = &loaded.object;
    let key = spec_key(policy.kind);
    let mut clusters = Vec::new();
    let prepared = match &policy.config {
        FilterConfig::Jwt(c) => jwks_clusters(c, &mut clusters).map(FilterConfig::Jwt),
        FilterConfig::RateLimit(c) => {
            service(c, ratelimit_service, &mut clusters).map(FilterConfig::RateLimit)
        }
        FilterConfig::Headers(c) => Ok(FilterConfig::Headers(c.clone())),
        FilterConfig::Canary(c) => match &c.header {
            Some(h) if !h.eq_ignore_ascii_case(DEFAULT_HEADER) => Err(ConfigError::new(
                "header",
                format!("the controller's routes forward by {DEFAULT_HEADER}; leave `header` out"),
            )),
            _ => Ok(FilterConfig::Canary(c.clone())),
        },
    };
    let checked = prepared.and_then(|config| {
        match &config {
            FilterConfig::Jwt(c) => checked(c),
            FilterConfig::RateLimit(c) => checked(c),
            FilterConfig::Headers(c) => checked(c),
            FilterConfig::Canary(c) => checked(c),
        }
        .map(|value| (config, value))
    });
    let (head, order, generation) = (PolicyHead::of(policy), loaded.order, loaded.generation);
    match checked {
        Ok((config, checked)) => Prepared {
            head,
            order,
            generation,
            config: Some(config),
            checked: Arc::new(checked),
            clusters,
            valid: Ok(()),
        },
        Err(e) => Prepared {
            head,
            order,
            generation,
            config: None,
            checked: Arc::new(Value::Null),
            clusters: Vec::new(),
            valid: Err(if e.field.is_empty() {
                format!("spec.{key}: {}", e.message)
            } else {
                format!("spec.{key}.{}: {}", e.field, e.message)
            }),
        },
    }
}

/// A policy refused at load: invalid, so its routes answer 500 where it
/// applies (`None` for the other kinds refused).
fn refused(loaded: &Loaded<RefusedObject>) -> Option<Prepared<'_>> {
    let object = &loaded.object;
    let RefusedKind::Policy(kind) = object.kind else {
        return None;
    };
    Some(Prepared {
        head: PolicyHead {
            kind,
            metadata: &object.metadata,
            target_refs: &object.target_refs,
        },
        order: loaded.order,
        generation: loaded.generation,
        config: None,
        checked: Arc::new(Value::Null),
        clusters: Vec::new(),
        valid: Err(object.problem.clone()),
    })
}

/// The YAML key under `spec` holding the filter config.
fn spec_key(kind: PolicyKind) -> &'static str {
    match kind {
        PolicyKind::RateLimitPolicy | PolicyKind::BackendTrafficPolicy => "rateLimit",
        PolicyKind::JwtPolicy | PolicyKind::SecurityPolicy => "jwt",
        PolicyKind::HeaderPolicy => "headers",
        PolicyKind::CanaryPolicy => "canary",
    }
}

/// Names each remote JWKS's cluster and creates it.
fn jwks_clusters(
    config: &JwtConfig,
    clusters: &mut Vec<Cluster>,
) -> Result<JwtConfig, ConfigError> {
    let mut out = config.clone();
    for (i, provider) in out.providers.iter_mut().enumerate() {
        let Some(remote) = &mut provider.remote_jwks else {
            continue;
        };
        let upstream = Upstream::of_uri(&remote.uri).ok_or_else(|| {
            ConfigError::new(
                format!("providers[{i}].remoteJWKS.uri"),
                format!("`{}` is not an absolute http(s) URI", remote.uri),
            )
        })?;
        let name = remote
            .cluster
            .get_or_insert_with(|| format!("jwks/{}", upstream.authority()))
            .clone();
        if !clusters.iter().any(|c| c.name == name) {
            clusters.push(service_clusters::cluster(&name, &upstream, false));
        }
    }
    Ok(out)
}

/// Points global rules at the rate limit service `tollgate` was given.
fn service(
    config: &RateLimitConfig,
    ratelimit_service: Option<&Upstream>,
    clusters: &mut Vec<Cluster>,
) -> Result<RateLimitConfig, ConfigError> {
    let global = config.global.as_ref().is_some_and(|g| !g.rules.is_empty());
    if !global {
        return Ok(config.clone());
    }
    let Some(upstream) = ratelimit_service else {
        return Err(ConfigError::new(
            "global",
            "global rules need the rate limit service: start tollgate with --ratelimit-service HOST:PORT (see `tollgate ratelimit-server`)",
        ));
    };
    let mut out = config.clone();
    match &mut out.service {
        Some(s) if s.cluster != RATELIMIT_CLUSTER => {
            return Err(ConfigError::new(
                "service.cluster",
                format!(
                    "file mode has no cluster {:?}; leave `cluster` out to use --ratelimit-service",
                    s.cluster
                ),
            ))
        }
        Some(_) => {}
        None => {
            out.service = Some(ServiceConfig {
                cluster: RATELIMIT_CLUSTER.to_owned(),
                domain: None,
                timeout: None,
                failure_mode: None,
            })
        }
    }
    clusters.push(service_clusters::cluster(RATELIMIT_CLUSTER, upstream, true));
    Ok(out)
}

/// What policies can target: the Gateways with their listener names, the
/// routes with their rule names.
pub fn targets<'r>(
    gateways: impl Iterator<Item = ((&'r str, &'r str), Vec<&'r str>)>,
    resources: &'r Resources,
) -> Targets<'r> {
    let mut targets = Targets::default();
    targets.gateways.extend(gateways);
    let http = resources.http_routes.iter().map(|r| {
        let names = r.object.spec.rules.iter().map(|rule| rule.name.as_deref());
        (("HTTPRoute", &r.object.metadata), names.flatten().collect())
    });
    let grpc = resources.grpc_routes.iter().map(|r| {
        let names = r.object.spec.rules.iter().map(|rule| rule.name.as_deref());
        (("GRPCRoute", &r.object.metadata), names.flatten().collect())
    });
    for ((kind, meta), rule_names) in http.chain(grpc) {
        let key = (kind, meta.namespace(), meta.name.as_str());
        targets.routes.insert(key, rule_names);
    }
    targets
}

/// The route sites keyed by Envoy route name, for `attach` to fill in.
pub type Sites<'r> = BTreeMap<String, RouteSite<'r>>;
