//! HTTPRoute (and GRPCRoute) rule filters → Envoy, following Envoy Gateway's
//! mapping:
//!
//! - `RequestHeaderModifier` / `ResponseHeaderModifier` → the route's entry in
//!   Tollgate's header filter (values escaped: Gateway API values are
//!   literal, the filter's `%{…}` are templates);
//! - `RequestRedirect` → a redirect (the rule has no backends) and
//!   `URLRewrite` → a host and path rewrite on the forwarded request (see
//!   `rewrites.rs`);
//! - `RequestMirror` → mirrors;
//! - `CORS` → Envoy's CORS filter (see `cors.rs`);
//! - `timeouts` (see `timeouts.rs`), weighted backends (see `weights.rs`).
//!
//! Each rule is checked once into its [`ActionPlan`] (the route plan, no
//! Envoy types; `emit_route` writes it) and [`RulePolicies`].
//!
//! A rule Tollgate cannot apply as written (a CEL rule of the CRD broken, a
//! value out of range, a filter not implemented yet) is a [`RuleError`]: its
//! routes answer 500 (the spec: a filter is never skipped) and the route's
//! `Accepted` condition says why.

use std::sync::Arc;

use serde_json::Value;
use tollgate_core::headers::config::{HeaderValueConfig, ModsConfig};
use tollgate_core::headers::HeaderModConfig;

use crate::resources::http_filters::{
    CorsFilter, FilterType, HeaderFilter, HttpHeader, HttpRouteFilter, HttpRouteTimeouts,
    LocalObjectReference, RequestMirror, RequestRedirect, UrlRewrite,
};
use crate::resources::{BackendRef, HttpRouteMatch, HttpRouteRule, PathMatchType};

use super::backends::{Backends, Unresolved};
use super::filter_chain::{checked, RulePolicies};
use super::invalid_rules::RuleError;
use super::policy_filters::Catalog;
use super::rewrites::{redirect, url_rewrite};
use super::route_plan::{ActionPlan, Forward, Fraction, Mirror, PathChange};
use super::timeouts;
use super::weights::{backend_action, Share};

/// One rule, checked: what each of its matches becomes.
pub struct Rule<'r> {
    /// The action, before a `ReplacePrefixMatch` (which depends on the match).
    action: ActionPlan,
    replace_prefix: Option<&'r str>,
    /// What the rule itself asks of Tollgate's filters and Envoy's CORS
    /// filter (`policy_filters` decides, per route, whether a policy wins).
    pub policies: RulePolicies,
}

/// The parts of a rule its filters act on: an HTTPRoute rule's, or a
/// GRPCRoute rule's (no timeouts; `grpc_route` refuses the filter types a
/// GRPCRoute does not have before it gets here).
pub struct RuleSpec<'r> {
    /// `HTTPRoute` or `GRPCRoute`: a mirror's backend is resolved as the
    /// route's own (ReferenceGrants name the kind; gRPC backends speak HTTP/2).
    pub route_kind: &'static str,
    pub filters: &'r [HttpRouteFilter],
    pub backend_refs: &'r [BackendRef],
    pub timeouts: Option<&'r HttpRouteTimeouts>,
}

impl<'r> From<&'r HttpRouteRule> for RuleSpec<'r> {
    fn from(rule: &'r HttpRouteRule) -> Self {
        Self {
            route_kind: "HTTPRoute",
            filters: &rule.filters,
            backend_refs: &rule.backend_refs,
            timeouts: rule.timeouts.as_ref(),
        }
    }
}

/// Checks `rule`'s filters and builds its action over `shares` (its
/// backendRefs, resolved). A mirror whose backend does not resolve is left
/// out and reported in `unresolved` (the route's `ResolvedRefs`).
pub fn rule<'r>(
    rule: RuleSpec<'r>,
    shares: &[(Share, u32)],
    namespace: &str,
    backends: &mut Backends<'_>,
    unresolved: &mut Option<Unresolved>,
    catalog: &Catalog<'_>,
) -> Result<Rule<'r>, RuleError> {
    if let Some(i) = rule.backend_refs.iter().position(|b| !b.filters.is_empty()) {
        return Err(RuleError::unsupported(format!(
            "backendRefs[{i}].filters: filters on a backendRef are not supported yet; put them on the rule"
        )));
    }
    let mut request_headers = None;
    let mut response_headers = None;
    let mut redirect_filter = None;
    let mut rewrite = None;
    let mut mirrors = Vec::new();
    let mut cors = None;
    for (i, filter) in rule.filters.iter().enumerate() {
        let at = format!("filters[{i}]");
        let twice = || {
            RuleError::incompatible(format!(
                "{at}: a second {:?} filter; a rule takes one",
                filter.kind
            ))
        };
        match payload(filter, &at)? {
            Payload::RequestHeaders(h) => {
                if request_headers.replace((i, h)).is_some() {
                    return Err(twice());
                }
            }
            Payload::ResponseHeaders(h) => {
                if response_headers.replace((i, h)).is_some() {
                    return Err(twice());
                }
            }
            Payload::Mirror(m) => {
                let at = format!("{at}.requestMirror");
                let from = (rule.route_kind, namespace);
                if let Some(planned) = mirror(m, &at, from, backends, unresolved)? {
                    mirrors.push(planned);
                }
            }
            Payload::Redirect(r) => {
                if redirect_filter.replace((i, r)).is_some() {
                    return Err(twice());
                }
            }
            Payload::Rewrite(r) => {
                if rewrite.replace((i, r)).is_some() {
                    return Err(twice());
                }
            }
            Payload::Cors(c) => {
                let policy = super::cors::policy(c, &format!("{at}.cors"))?;
                if cors.replace(Arc::new(policy)).is_some() {
                    return Err(twice());
                }
            }
            // A policy named here is applied by `policy_filters`; one that
            // cannot apply fails the rule (the spec: never skip a filter).
            Payload::ExtensionRef(r) => match catalog.reference(namespace, r) {
                Some(Ok(_)) => {}
                Some(Err(why)) => {
                    return Err(RuleError::unsupported(format!("{at}.extensionRef: {why}")))
                }
                None => {
                    return Err(RuleError::unsupported(format!(
                        "{at}.extensionRef: {}/{} is not a policy kind Tollgate implements (tollgate.dev: RateLimitPolicy, JWTPolicy, HeaderPolicy, CanaryPolicy; gateway.envoyproxy.io: BackendTrafficPolicy, SecurityPolicy)",
                        r.group, r.kind
                    )))
                }
            },
        }
    }
    let headers = header_config(request_headers, response_headers)?;
    // Checked wherever they are: a bad value is an error even on a redirect.
    let (request_timeout_ms, backend_timeout_ms) =
        timeouts::check(&rule.timeouts.cloned().unwrap_or_default())?;
    let (action, canary, replace_prefix) = match (redirect_filter, rewrite) {
        (Some((i, _)), Some((j, _))) => {
            return Err(RuleError::incompatible(format!(
                "filters[{i}]: a RequestRedirect rule cannot also have a URLRewrite (filters[{j}])"
            )))
        }
        (Some((i, _)), _) if !rule.backend_refs.is_empty() => {
            return Err(RuleError::incompatible(format!(
                "filters[{i}]: a RequestRedirect rule has no backendRefs"
            )))
        }
        (Some((i, _)), _) if !mirrors.is_empty() => {
            return Err(RuleError::incompatible(format!(
                "filters[{i}]: a RequestRedirect rule forwards nothing to mirror"
            )))
        }
        (Some((i, r)), None) => {
            let (plan, prefix) = redirect(r, &format!("filters[{i}].requestRedirect"))?;
            (ActionPlan::Redirect(plan), None, prefix)
        }
        (None, rewrite) => {
            let backend = backend_action(shares);
            let (hostname, path, prefix) = match rewrite {
                Some((i, r)) => url_rewrite(r, &format!("filters[{i}].urlRewrite"))?,
                None => (None, PathChange::Keep, None),
            };
            let action = match backend.destination {
                None => ActionPlan::InternalServerError,
                Some((to, unresolved_share)) => ActionPlan::Forward(Forward {
                    to,
                    unresolved_share,
                    hostname,
                    path,
                    request_timeout_ms,
                    backend_timeout_ms,
                    mirrors,
                }),
            };
            (action, backend.canary, prefix)
        }
    };
    let canary = match &canary {
        None => None,
        Some(canary) => Some(Arc::new(checked(canary).map_err(|e| {
            RuleError::unsupported(format!(
                "backendRefs: the canary filter refuses the split at `{}`: {}",
                e.field, e.message
            ))
        })?)),
    };
    Ok(Rule {
        action,
        replace_prefix,
        policies: RulePolicies {
            headers,
            canary,
            cors,
        },
    })
}

impl Rule<'_> {
    /// The action for match `m` of the rule.
    pub fn route(&self, m: &HttpRouteMatch, match_index: usize) -> Result<ActionPlan, RuleError> {
        let mut action = self.action.clone();
        if let Some(replacement) = self.replace_prefix {
            let prefix = match &m.path {
                None => "/",
                Some(p) if p.kind == PathMatchType::PathPrefix => p.value.as_str(),
                Some(p) => {
                    return Err(RuleError::unsupported(format!(
                        "matches[{match_index}].path: ReplacePrefixMatch needs a PathPrefix match, not {:?}",
                        p.kind
                    )))
                }
            };
            let change = PathChange::Prefix {
                prefix: prefix.to_owned(),
                replacement: replacement.to_owned(),
            };
            match &mut action {
                ActionPlan::Redirect(r) => r.path = change,
                ActionPlan::Forward(f) => f.path = change,
                ActionPlan::InternalServerError => {}
            }
        }
        Ok(action)
    }
}

enum Payload<'f> {
    RequestHeaders(&'f HeaderFilter),
    ResponseHeaders(&'f HeaderFilter),
    Mirror(&'f RequestMirror),
    Redirect(&'f RequestRedirect),
    Rewrite(&'f UrlRewrite),
    ExtensionRef(&'f LocalObjectReference),
    Cors(&'f CorsFilter),
}

/// The filter's configuration: exactly the field its `type` names (a CEL
/// rule of the CRD).
fn payload<'f>(f: &'f HttpRouteFilter, at: &str) -> Result<Payload<'f>, RuleError> {
    let given = [
        f.request_header_modifier.is_some(),
        f.response_header_modifier.is_some(),
        f.request_mirror.is_some(),
        f.request_redirect.is_some(),
        f.url_rewrite.is_some(),
        f.extension_ref.is_some(),
        f.cors.is_some(),
    ];
    let (payload, field) = match f.kind {
        FilterType::RequestHeaderModifier => (
            f.request_header_modifier
                .as_ref()
                .map(Payload::RequestHeaders),
            "requestHeaderModifier",
        ),
        FilterType::ResponseHeaderModifier => (
            f.response_header_modifier
                .as_ref()
                .map(Payload::ResponseHeaders),
            "responseHeaderModifier",
        ),
        FilterType::RequestMirror => (
            f.request_mirror.as_ref().map(Payload::Mirror),
            "requestMirror",
        ),
        FilterType::RequestRedirect => (
            f.request_redirect.as_ref().map(Payload::Redirect),
            "requestRedirect",
        ),
        FilterType::UrlRewrite => (f.url_rewrite.as_ref().map(Payload::Rewrite), "urlRewrite"),
        FilterType::ExtensionRef => (
            f.extension_ref.as_ref().map(Payload::ExtensionRef),
            "extensionRef",
        ),
        FilterType::Cors => (f.cors.as_ref().map(Payload::Cors), "cors"),
    };
    match payload {
        Some(p) if given.iter().filter(|g| **g).count() == 1 => Ok(p),
        _ => Err(RuleError::unsupported(format!(
            "{at}: type {:?} takes exactly the field `{field}`",
            f.kind
        ))),
    }
}

/// The header filter's policy for a rule's two header modifiers (each with
/// its index in `filters`), checked by the filter's own compiler and
/// serialised; an error names the modifier's field.
fn header_config(
    request: Option<(usize, &HeaderFilter)>,
    response: Option<(usize, &HeaderFilter)>,
) -> Result<Option<Arc<Value>>, RuleError> {
    if request.is_none() && response.is_none() {
        return Ok(None);
    }
    // The CRD's `minLength: 1` on a value (the header filter itself takes an
    // empty one, and would set an empty header).
    let sides = [
        (request, "requestHeaderModifier"),
        (response, "responseHeaderModifier"),
    ];
    for ((i, h), field) in sides.iter().filter_map(|(f, name)| Some(((*f)?, *name))) {
        for (list, headers) in [("set", &h.set), ("add", &h.add)] {
            if let Some(j) = headers.iter().position(|v| v.value.is_empty()) {
                return Err(RuleError::unsupported(format!(
                    "filters[{i}].{field}.{list}[{j}].value: must not be empty"
                )));
            }
        }
    }
    let config = HeaderModConfig {
        request: request.map(|(_, h)| mods(h)),
        response: response.map(|(_, h)| mods(h)),
    };
    let value = checked(&config).map_err(|e| {
        let within = |side: &str, filter: Option<(usize, &HeaderFilter)>, field: &str| {
            let rest = e.field.strip_prefix(side)?;
            let (i, _) = filter?;
            Some(format!("filters[{i}].{field}{rest}"))
        };
        let at = within("request", request, "requestHeaderModifier")
            .or_else(|| within("response", response, "responseHeaderModifier"))
            .unwrap_or_else(|| "filters".to_owned());
        RuleError::unsupported(format!("{at}: {}", e.message))
    })?;
    Ok(Some(Arc::new(value)))
}

fn mods(filter: &HeaderFilter) -> ModsConfig {
    let values = |headers: &[HttpHeader]| {
        headers
            .iter()
            .map(|h| HeaderValueConfig {
                name: h.name.clone(),
                value: literal(&h.value),
            })
            .collect()
    };
    ModsConfig {
        set: values(&filter.set),
        add: values(&filter.add),
        remove: filter.remove.clone(),
        remove_matching: Vec::new(),
    }
}

/// A Gateway API header value as a header filter template that renders it
/// unchanged: `%{` is the filter's variable syntax, `%%{` its literal.
fn literal(value: &str) -> String {
    value.replace("%{", "%%{")
}

fn mirror(
    m: &RequestMirror,
    at: &str,
    (route_kind, namespace): (&str, &str),
    backends: &mut Backends<'_>,
    unresolved: &mut Option<Unresolved>,
) -> Result<Option<Mirror>, RuleError> {
    let fraction = match (m.percent, &m.fraction) {
        (Some(_), Some(_)) => {
            return Err(RuleError::unsupported(format!(
                "{at}: percent and fraction are exclusive"
            )))
        }
        (Some(p), None) if p > 100 => {
            return Err(RuleError::unsupported(format!(
                "{at}.percent: {p} is above 100"
            )))
        }
        (Some(p), None) => Some((p, 100)),
        (None, Some(f)) if f.denominator == 0 || f.numerator > f.denominator => {
            return Err(RuleError::unsupported(format!(
                "{at}.fraction: {}/{} is not a fraction between 0 and 1",
                f.numerator, f.denominator
            )))
        }
        (None, Some(f)) => Some(match f.denominator {
            100 | 10_000 | 1_000_000 => (f.numerator, f.denominator),
            d => (
                u32::try_from(u64::from(f.numerator) * 1_000_000 / u64::from(d)).unwrap_or(0),
                1_000_000,
            ),
        }),
        (None, None) => None,
    };
    let backend = BackendRef {
        group: m.backend_ref.group.clone(),
        kind: m.backend_ref.kind.clone(),
        name: m.backend_ref.name.clone(),
        namespace: m.backend_ref.namespace.clone(),
        port: m.backend_ref.port,
        weight: 1,
        filters: Vec::new(),
    };
    let cluster = match backends.resolve_from(route_kind, namespace, &backend) {
        Ok(cluster) => cluster,
        Err(e) => {
            unresolved.get_or_insert(e);
            return Ok(None);
        }
    };
    Ok(Some(Mirror {
        cluster,
        fraction: fraction.map(|(numerator, denominator)| Fraction {
            numerator,
            denominator,
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_stay_literal_in_the_header_filter() {
        assert_eq!(literal("a %{request.path} b"), "a %%{request.path} b");
        assert_eq!(literal("%%{x}"), "%%%{x}");
        assert_eq!(literal("50%"), "50%");
        let filter = HeaderFilter {
            set: vec![HttpHeader {
                name: "x".into(),
                value: "%{request.path}".into(),
            }],
            ..HeaderFilter::default()
        };
        let config = header_config(Some((0, &filter)), None).unwrap().unwrap();
        assert_eq!(config["request"]["set"][0]["value"], "%%{request.path}");
    }

    #[test]
    fn an_empty_header_value_is_a_rule_error() {
        let filter = HeaderFilter {
            add: vec![HttpHeader {
                name: "x".into(),
                value: String::new(),
            }],
            ..HeaderFilter::default()
        };
        let e = header_config(None, Some((2, &filter))).unwrap_err();
        assert_eq!(
            e.message,
            "filters[2].responseHeaderModifier.add[0].value: must not be empty"
        );
    }

    #[test]
    fn header_names_the_filter_refuses_are_rule_errors() {
        let filter = HeaderFilter {
            remove: vec!["bad name".into()],
            ..HeaderFilter::default()
        };
        let e = header_config(None, Some((2, &filter))).unwrap_err();
        assert_eq!(e.reason, "UnsupportedValue");
        assert!(
            e.message
                .starts_with("filters[2].responseHeaderModifier.remove[0]: header name"),
            "{e:?}"
        );
    }
}
