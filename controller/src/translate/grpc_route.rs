//! GRPCRoute → Envoy routes. gRPC is HTTP/2 with the path
//! `/<package.Service>/<Method>`, so a method match is a path match, mapped as
//! Envoy Gateway maps it: service and method Exact → the exact path; service
//! alone → the prefix `/<service>/`; method alone, or RegularExpression → a
//! regular expression on the whole path, with the spec's service and method
//! name grammar standing in for the part not given. Each match becomes an
//! HTTPRoute-style match so that it sorts with HTTPRoutes on the same virtual
//! host by the same precedence: exact paths first, then regular expressions,
//! then the longest service prefix, then the most header matches, then the
//! oldest route (the GRPCRoute spec's order within one hostname).
//!
//! Filters are HTTPRoute's (`route_filters`): RequestHeaderModifier,
//! ResponseHeaderModifier and RequestMirror. ExtensionRef is not supported on
//! a GRPCRoute yet (attach a policy with `targetRefs` instead), and the types
//! a GRPCRoute does not have are refused as the CRD's enum would refuse them:
//! either way that rule is invalid (`invalid_rules`), the rest serve.

use std::borrow::Cow;

use super::backends::{Backends, Unresolved};
use super::invalid_rules::{InvalidRules, RuleError};
use super::matches;
use super::policy_attachment::RouteSite;
use super::policy_filters::{Catalog, Sites};
use super::precedence::{MatchOrigin, Precedence};
use super::route_filters::{self, RuleSpec};
use super::route_plan::{ActionPlan, PlannedRoute};
use super::status::Condition;
use super::RankedRoute;
use crate::resources::gateway_api::PathMatch;
use crate::resources::grpc_route::{GrpcMethodMatch, GrpcMethodMatchType, GrpcRouteMatch};
use crate::resources::http_filters::{FilterType, HttpRouteFilter};
use crate::resources::{GrpcRoute, HttpRouteMatch, Loaded, PathMatchType};

/// A fully qualified gRPC service name (`package.Service`).
const SERVICE_NAME: &str = r"(?:[A-Za-z_][A-Za-z_0-9]*\.)*[A-Za-z_][A-Za-z_0-9]*";
/// A gRPC method name.
const METHOD_NAME: &str = "[A-Za-z_][A-Za-z_0-9]*";

/// The Envoy routes of one GRPCRoute (not yet placed in a virtual host), its
/// `ResolvedRefs` condition, and its matches Envoy would refuse (each costs
/// only its own route).
pub fn envoy_routes<'r>(
    route: &'r Loaded<GrpcRoute>,
    backends: &mut Backends<'_>,
    catalog: &Catalog<'_>,
    sites: &mut Sites<'r>,
) -> (Condition, InvalidRules, Vec<RankedRoute<'r>>) {
    let meta = &route.object.metadata;
    let namespace = meta.namespace();
    let mut first_unresolved: Option<Unresolved> = None;
    let mut invalid = InvalidRules::of(route.object.spec.rules.len());
    let mut out: Vec<RankedRoute<'r>> = Vec::new();
    for (rule_index, rule) in route.object.spec.rules.iter().enumerate() {
        let shares = backends.rule_shares(
            "GRPCRoute",
            (namespace, &meta.name),
            rule_index,
            &rule.backend_refs,
            &mut first_unresolved,
        );
        let planned = grpc_filters(&rule.filters).and_then(|()| {
            let spec = RuleSpec {
                route_kind: "GRPCRoute",
                filters: &rule.filters,
                backend_refs: &rule.backend_refs,
                timeouts: None,
            };
            route_filters::rule(
                spec,
                &shares,
                namespace,
                backends,
                &mut first_unresolved,
                catalog,
            )
        });
        let site = RouteSite::of_rule(
            ("GRPCRoute", namespace, &meta.name),
            rule.name.as_deref(),
            (&rule.filters, &rule.backend_refs),
            &shares,
            planned.as_ref().ok().map(|p| &p.policies),
        );
        // No matches: every call.
        let every_call = [GrpcRouteMatch::default()];
        let rule_matches = if rule.matches.is_empty() {
            &every_call[..]
        } else {
            &rule.matches[..]
        };
        for (match_index, m) in rule_matches.iter().enumerate() {
            if let Err(why) = m.method.as_ref().map_or(Ok(()), check_method) {
                let e = RuleError::unsupported(format!("matches[{match_index}].method{why}"));
                invalid.push(rule_index, e);
                continue;
            }
            let http = http_match(m);
            // Header names and regular expressions, as for HTTPRoute (the path
            // is built from a checked method).
            if let Err(why) = matches::check(&http) {
                let e = RuleError::unsupported(format!("matches[{match_index}].{why}"));
                invalid.push(rule_index, e);
                continue;
            }
            let origin = MatchOrigin {
                namespace,
                name: &meta.name,
                creation_timestamp: meta.creation_timestamp.as_deref(),
                load_order: route.order,
                rule: rule_index,
                index: match_index,
            };
            let name = format!(
                "grpcroute/{namespace}/{}/rule/{rule_index}/match/{match_index}",
                meta.name
            );
            // A split goes through the canary filter and header modifiers
            // through the header filter, as for HTTPRoute.
            let action = planned
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|p| p.route(&http, match_index))
                .unwrap_or_else(|e| {
                    invalid.push(rule_index, e);
                    ActionPlan::InternalServerError
                });
            sites.insert(name.clone(), site.for_route(&name));
            out.push((
                Precedence::of(&http, &origin),
                PlannedRoute {
                    name,
                    matcher: Cow::Owned(http),
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

/// The filter types a GRPCRoute takes, and the one Tollgate does not yet.
fn grpc_filters(filters: &[HttpRouteFilter]) -> Result<(), RuleError> {
    for (i, f) in filters.iter().enumerate() {
        match f.kind {
            FilterType::RequestHeaderModifier
            | FilterType::ResponseHeaderModifier
            | FilterType::RequestMirror => {}
            FilterType::ExtensionRef => {
                return Err(RuleError::unsupported(format!(
                    "filters[{i}].extensionRef: not supported on a GRPCRoute yet; attach the policy to the route with targetRefs"
                )))
            }
            FilterType::RequestRedirect | FilterType::UrlRewrite | FilterType::Cors => {
                let name = match f.kind {
                    FilterType::UrlRewrite => "URLRewrite",
                    FilterType::Cors => "CORS",
                    _ => "RequestRedirect",
                };
                return Err(RuleError::unsupported(format!(
                    "filters[{i}].type: {name} is not a GRPCRoute filter (RequestHeaderModifier, ResponseHeaderModifier, RequestMirror, ExtensionRef)"
                )));
            }
        }
    }
    Ok(())
}

/// A RegularExpression method match's service and method as RE2 reads them.
/// The CRD's CEL rules on a method match (a service or a method, or both;
/// Exact names in gRPC's grammar) and RE2's on a RegularExpression one; the
/// error starts with the field under `method` (`.service: …`, or `: …`).
fn check_method(m: &GrpcMethodMatch) -> Result<(), String> {
    if m.service.is_none() && m.method.is_none() {
        return Err(": one or both of service and method must be given".to_owned());
    }
    for (field, value) in [("service", &m.service), ("method", &m.method)] {
        let Some(value) = value else { continue };
        let valid = match (m.kind, field) {
            (GrpcMethodMatchType::RegularExpression, _) => {
                matches::check_regex(value).map_err(|e| format!(".{field}: {e}"))?;
                true
            }
            // `^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$`
            (_, "service") => value
                .strip_prefix('.')
                .unwrap_or(value)
                .split('.')
                .all(is_identifier),
            _ => is_identifier(value),
        };
        if !valid {
            return Err(format!(".{field}: {value:?} is not a gRPC {field} name"));
        }
    }
    Ok(())
}

/// `[A-Za-z_][A-Za-z_0-9]*`: a method, or one label of a service.
fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn http_match(m: &GrpcRouteMatch) -> HttpRouteMatch {
    HttpRouteMatch {
        path: m.method.as_ref().and_then(method_path),
        headers: m.headers.clone(),
        ..HttpRouteMatch::default()
    }
}

fn method_path(m: &GrpcMethodMatch) -> Option<PathMatch> {
    let (kind, value) = match (m.kind, m.service.as_deref(), m.method.as_deref()) {
        (_, None, None) => return None,
        (GrpcMethodMatchType::Exact, Some(service), Some(method)) => {
            (PathMatchType::Exact, format!("/{service}/{method}"))
        }
        (GrpcMethodMatchType::Exact, Some(service), None) => {
            (PathMatchType::PathPrefix, format!("/{service}/"))
        }
        (GrpcMethodMatchType::Exact, None, Some(method)) => (
            PathMatchType::RegularExpression,
            format!("/{SERVICE_NAME}/{}", escape(method)),
        ),
        (GrpcMethodMatchType::RegularExpression, service, method) => (
            PathMatchType::RegularExpression,
            format!(
                "/(?:{})/(?:{})",
                service.unwrap_or(SERVICE_NAME),
                method.unwrap_or(METHOD_NAME)
            ),
        ),
    };
    Some(PathMatch { kind, value })
}

/// `text` as a regular expression matching only itself (RE2 syntax).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn method(
        kind: GrpcMethodMatchType,
        service: Option<&str>,
        method: Option<&str>,
    ) -> Option<(PathMatchType, String)> {
        method_path(&GrpcMethodMatch {
            kind,
            service: service.map(str::to_owned),
            method: method.map(str::to_owned),
        })
        .map(|p| (p.kind, p.value))
    }

    #[test]
    fn exact_method_matches_map_to_paths() {
        use GrpcMethodMatchType::Exact;
        assert_eq!(
            method(Exact, Some("yages.Echo"), Some("Ping")),
            Some((PathMatchType::Exact, "/yages.Echo/Ping".to_owned()))
        );
        assert_eq!(
            method(Exact, Some("yages.Echo"), None),
            Some((PathMatchType::PathPrefix, "/yages.Echo/".to_owned()))
        );
        assert_eq!(
            method(Exact, None, Some("Ping")),
            Some((
                PathMatchType::RegularExpression,
                format!("/{SERVICE_NAME}/Ping")
            ))
        );
        assert_eq!(method(Exact, None, None), None);
    }

    #[test]
    fn regular_expressions_fill_the_missing_part_with_the_name_grammar() {
        use GrpcMethodMatchType::RegularExpression;
        assert_eq!(
            method(RegularExpression, Some(".*.Echo"), Some("Pin.+")),
            Some((
                PathMatchType::RegularExpression,
                "/(?:.*.Echo)/(?:Pin.+)".to_owned()
            ))
        );
        assert_eq!(
            method(RegularExpression, None, Some("Pin.+")),
            Some((
                PathMatchType::RegularExpression,
                format!("/(?:{SERVICE_NAME})/(?:Pin.+)")
            ))
        );
    }

    #[test]
    fn escape_quotes_every_meta_character() {
        assert_eq!(escape("a.b+c"), r"a\.b\+c");
    }
}
