//! A planned route (`route_plan`) as Envoy's `Route`, on the listener it is
//! served through, with what its policies decided (`RouteVerdict`): the one
//! place the route plan becomes Envoy types. The filters' per-route config is
//! added by `PolicyTable::configure_route`, in the form the runtime takes.

use envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent;
use envoy_types::pb::envoy::config::route::v3::{
    redirect_action::{PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier},
    route::Action,
    route_action::{
        ClusterNotFoundResponseCode, ClusterSpecifier, HostRewriteSpecifier, RequestMirrorPolicy,
    },
    route_match::PathSpecifier,
    DirectResponseAction, RedirectAction, RetryPolicy, Route, RouteAction,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatchAndSubstitute, RegexMatcher};
use envoy_types::pb::envoy::r#type::v3::{fractional_percent::DenominatorType, FractionalPercent};
use envoy_types::pb::google::protobuf::Duration;
use tollgate_core::canary::policy::DEFAULT_HEADER;

use super::filter_chain::RouteVerdict;
use super::matches;
use super::route_plan::{
    ActionPlan, Destination, Forward, Fraction, Mirror, PathChange, PlannedRoute, Redirect,
};
use crate::resources::gateway_api::Listener;

/// `planned` as Envoy's route, served through `listener`, with its policies'
/// `verdict` applied.
pub fn route(
    planned: &PlannedRoute<'_>,
    listener: &Listener,
    verdict: Option<&RouteVerdict>,
) -> Route {
    let action = match (verdict, &planned.action) {
        (Some(RouteVerdict::InternalServerError), _) | (_, ActionPlan::InternalServerError) => {
            internal_server_error()
        }
        (_, ActionPlan::Redirect(r)) => Action::Redirect(redirect(r, listener)),
        (Some(RouteVerdict::ForwardByCanaryHeader), ActionPlan::Forward(f)) => {
            Action::Route(forward(&Forward {
                to: Destination::CanaryHeader,
                ..f.clone()
            }))
        }
        (None, ActionPlan::Forward(f)) => Action::Route(forward(f)),
    };
    Route {
        name: planned.name.clone(),
        r#match: Some(matches::route_match(&planned.matcher)),
        action: Some(action),
        ..Route::default()
    }
}

/// The action of a route whose requests can only fail.
fn internal_server_error() -> Action {
    Action::DirectResponse(DirectResponseAction {
        status: 500,
        ..DirectResponseAction::default()
    })
}

/// The spec: without `port` a redirect goes to the listener's port, unless it
/// changes the scheme (then to that scheme's default port); a port that is the
/// scheme's default is left out of `Location`. (The HCM strips the port from
/// `Host`, so Envoy adds none of its own.)
fn redirect(r: &Redirect, listener: &Listener) -> RedirectAction {
    let response_code = match r.status {
        301 => RedirectResponseCode::MovedPermanently,
        303 => RedirectResponseCode::SeeOther,
        307 => RedirectResponseCode::TemporaryRedirect,
        308 => RedirectResponseCode::PermanentRedirect,
        _ => RedirectResponseCode::Found,
    };
    let (scheme, fallback) = match r.scheme.as_deref() {
        Some(scheme) => (scheme, default_port(scheme)),
        None if listener.protocol == "HTTPS" => ("https", u32::from(listener.port)),
        None => ("http", u32::from(listener.port)),
    };
    let port = r.port.map_or(fallback, u32::from);
    RedirectAction {
        response_code: response_code as i32,
        host_redirect: r.hostname.clone().unwrap_or_default(),
        port_redirect: if port == default_port(scheme) {
            0
        } else {
            port
        },
        scheme_rewrite_specifier: r.scheme.clone().map(SchemeRewriteSpecifier::SchemeRedirect),
        path_rewrite_specifier: match &r.path {
            PathChange::Keep => None,
            PathChange::Full(p) => Some(PathRewriteSpecifier::PathRedirect(p.clone())),
            PathChange::Prefix {
                prefix,
                replacement,
            } => match prefix_rewrite(prefix, replacement) {
                PrefixRewrite::None => None,
                PrefixRewrite::Prefix(p) => Some(PathRewriteSpecifier::PrefixRewrite(p)),
                PrefixRewrite::Regex(r) => Some(PathRewriteSpecifier::RegexRewrite(r)),
            },
        },
        ..RedirectAction::default()
    }
}

fn default_port(scheme: &str) -> u32 {
    if scheme == "https" {
        443
    } else {
        80
    }
}

fn forward(f: &Forward) -> RouteAction {
    let mut action = RouteAction {
        cluster_specifier: Some(match &f.to {
            Destination::Cluster(name) => ClusterSpecifier::Cluster(name.clone()),
            Destination::CanaryHeader => ClusterSpecifier::ClusterHeader(DEFAULT_HEADER.to_owned()),
        }),
        // Unresolved shares name clusters that never exist.
        cluster_not_found_response_code: if f.unresolved_share {
            ClusterNotFoundResponseCode::InternalServerError as i32
        } else {
            ClusterNotFoundResponseCode::ServiceUnavailable as i32
        },
        host_rewrite_specifier: f
            .hostname
            .clone()
            .map(HostRewriteSpecifier::HostRewriteLiteral),
        timeout: f.request_timeout_ms.map(duration),
        retry_policy: f.backend_timeout_ms.map(|ms| RetryPolicy {
            per_try_timeout: Some(duration(ms)),
            ..RetryPolicy::default()
        }),
        request_mirror_policies: f.mirrors.iter().map(mirror).collect(),
        ..RouteAction::default()
    };
    match &f.path {
        PathChange::Keep => {}
        PathChange::Full(p) => {
            action.regex_rewrite = Some(RegexMatchAndSubstitute {
                pattern: Some(RegexMatcher {
                    regex: "^/.*$".to_owned(),
                    ..RegexMatcher::default()
                }),
                substitution: regex_substitution(p),
            });
        }
        PathChange::Prefix {
            prefix,
            replacement,
        } => match prefix_rewrite(prefix, replacement) {
            PrefixRewrite::None => {}
            PrefixRewrite::Prefix(p) => action.prefix_rewrite = p,
            PrefixRewrite::Regex(r) => action.regex_rewrite = Some(r),
        },
    }
    action
}

fn mirror(m: &Mirror) -> RequestMirrorPolicy {
    RequestMirrorPolicy {
        cluster: m.cluster.clone(),
        runtime_fraction: m.fraction.map(
            |Fraction {
                 numerator,
                 denominator,
             }| {
                RuntimeFractionalPercent {
                    default_value: Some(FractionalPercent {
                        numerator,
                        denominator: match denominator {
                            100 => DenominatorType::Hundred,
                            10_000 => DenominatorType::TenThousand,
                            _ => DenominatorType::Million,
                        } as i32,
                    }),
                    ..RuntimeFractionalPercent::default()
                }
            },
        ),
        ..RequestMirrorPolicy::default()
    }
}

fn duration(ms: u64) -> Duration {
    Duration {
        seconds: i64::try_from(ms / 1000).unwrap_or(i64::MAX),
        // Below 1e9 by construction.
        nanos: i32::try_from(ms % 1000 * 1_000_000).unwrap_or(0),
    }
}

/// How Envoy rewrites a PathPrefix match's prefix.
#[derive(Debug, PartialEq)]
enum PrefixRewrite {
    None,
    Prefix(String),
    Regex(RegexMatchAndSubstitute),
}

/// `ReplacePrefixMatch` with the spec's table: `/foo` → `/xyz` turns `/foo/bar`
/// into `/xyz/bar` and `/foo/` into `/xyz/`; an empty or `/` replacement turns
/// `/foo/bar`, `/foo/` and `/foo` into `/bar`, `/`, `/`. Envoy's
/// `prefix_rewrite` of `/foo` with `/` would give `//bar`, so that case is a
/// regex (as Envoy Gateway does). The match prefix is the one Envoy matches
/// (`matches::path_prefix`: trailing slashes dropped).
fn prefix_rewrite(match_prefix: &str, replacement: &str) -> PrefixRewrite {
    let replacement = replacement.trim_end_matches('/');
    let prefix = match matches::path_prefix(match_prefix) {
        PathSpecifier::PathSeparatedPrefix(p) => p,
        // Every path starts with `/`: keep it as the separator after the replacement.
        _ if replacement.is_empty() => return PrefixRewrite::None,
        _ => return PrefixRewrite::Prefix(format!("{replacement}/")),
    };
    if replacement.is_empty() {
        PrefixRewrite::Regex(RegexMatchAndSubstitute {
            pattern: Some(RegexMatcher {
                regex: format!("^{}/*", regex_escape(&prefix)),
                ..RegexMatcher::default()
            }),
            substitution: "/".to_owned(),
        })
    } else {
        PrefixRewrite::Prefix(replacement.to_owned())
    }
}

fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// RE2 substitutions give `\` a meaning (`\1`); a literal path escapes it.
fn regex_substitution(text: &str) -> String {
    text.replace('\\', "\\\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regex(re: &str, sub: &str) -> PrefixRewrite {
        PrefixRewrite::Regex(RegexMatchAndSubstitute {
            pattern: Some(RegexMatcher {
                regex: re.to_owned(),
                ..RegexMatcher::default()
            }),
            substitution: sub.to_owned(),
        })
    }

    #[test]
    fn prefix_rewrites_follow_the_spec_table() {
        let prefix = |p: &str| PrefixRewrite::Prefix(p.to_owned());
        assert_eq!(prefix_rewrite("/foo", "/xyz"), prefix("/xyz"));
        assert_eq!(prefix_rewrite("/foo/", "/xyz/"), prefix("/xyz"));
        assert_eq!(prefix_rewrite("/foo", ""), regex("^/foo/*", "/"));
        assert_eq!(prefix_rewrite("/httpbin/", "/"), regex("^/httpbin/*", "/"));
        assert_eq!(prefix_rewrite("/a.b", "/"), regex("^/a\\.b/*", "/"));
        assert_eq!(prefix_rewrite("/", "/xyz"), prefix("/xyz/"));
        assert_eq!(prefix_rewrite("/", "/"), PrefixRewrite::None);
    }

    fn listener(port: u16, protocol: &str) -> Listener {
        serde_yaml_ng::from_str(&format!("{{name: l, port: {port}, protocol: {protocol}}}"))
            .unwrap()
    }

    fn planned(yaml: &str) -> Redirect {
        let r = serde_yaml_ng::from_str(yaml).unwrap();
        super::super::rewrites::redirect(&r, "f").unwrap().0
    }

    fn port_on(yaml: &str, port: u16, protocol: &str) -> u32 {
        redirect(&planned(yaml), &listener(port, protocol)).port_redirect
    }

    #[test]
    fn a_redirect_without_scheme_goes_to_the_listeners_port() {
        assert_eq!(port_on("{}", 80, "HTTP"), 0);
        assert_eq!(port_on("{}", 443, "HTTPS"), 0);
        assert_eq!(port_on("{}", 8080, "HTTP"), 8080);
        assert_eq!(port_on("{port: 80}", 8080, "HTTP"), 0);
        assert_eq!(port_on("{port: 9000}", 80, "HTTP"), 9000);
        // With a scheme the listener does not matter.
        assert_eq!(port_on("{scheme: https}", 8080, "HTTP"), 0);
        assert_eq!(port_on("{scheme: https, port: 8443}", 80, "HTTP"), 8443);
        assert_eq!(port_on("{scheme: http, port: 443}", 80, "HTTP"), 443);
    }

    #[test]
    fn redirects_keep_status_scheme_host_and_full_path() {
        let r = redirect(
            &planned("{scheme: https, statusCode: 301, hostname: example.com, path: {type: ReplaceFullPath, replaceFullPath: /new}}"),
            &listener(80, "HTTP"),
        );
        assert_eq!(
            r.response_code,
            RedirectResponseCode::MovedPermanently as i32
        );
        assert_eq!(r.host_redirect, "example.com");
        assert_eq!(
            r.scheme_rewrite_specifier,
            Some(SchemeRewriteSpecifier::SchemeRedirect("https".into()))
        );
        assert_eq!(
            r.path_rewrite_specifier,
            Some(PathRewriteSpecifier::PathRedirect("/new".into()))
        );
        let r = redirect(&planned("{}"), &listener(80, "HTTP"));
        assert_eq!(r.response_code, RedirectResponseCode::Found as i32);
        assert_eq!(r.scheme_rewrite_specifier, None);
    }
}
