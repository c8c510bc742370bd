//! The path and host rewrites of RequestRedirect and URLRewrite, and the
//! redirect's port, per the Gateway API spec and as Envoy Gateway maps them.

use envoy_types::pb::envoy::config::route::v3::{
    redirect_action::{PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier},
    route::Action,
    route_action::HostRewriteSpecifier,
    route_match::PathSpecifier,
    RedirectAction, Route, RouteAction,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatchAndSubstitute, RegexMatcher};

use crate::resources::gateway_api::Listener;
use crate::resources::http_filters::{PathModifier, PathModifierType, RequestRedirect, UrlRewrite};

use super::matches;

use super::invalid_rules::RuleError;

/// Completes a redirect that keeps the request's scheme for the listener it
/// is served on. The spec: without `port` the redirect goes to the
/// listener's port; a port that is the scheme's default is left out of
/// `Location`. (The HCM strips the port from `Host`, so Envoy adds none of
/// its own.) Other routes are returned as they are.
pub fn for_listener(mut route: Route, listener: &Listener) -> Route {
    if let Some(Action::Redirect(redirect)) = &mut route.action {
        if redirect.scheme_rewrite_specifier.is_none() {
            let port = if redirect.port_redirect == 0 {
                u32::from(listener.port)
            } else {
                redirect.port_redirect
            };
            let scheme = if listener.protocol == "HTTPS" {
                "https"
            } else {
                "http"
            };
            redirect.port_redirect = if port == default_port(scheme) {
                0
            } else {
                port
            };
        }
    }
    route
}

/// Applies a `ReplacePrefixMatch` of `replacement` under the PathPrefix
/// match `prefix` to a route or redirect action.
pub fn apply_prefix(action: &mut Action, prefix: &str, replacement: &str) {
    let rewrite = prefix_rewrite(prefix, replacement);
    match action {
        Action::Route(route) => match rewrite {
            PrefixRewrite::None => {}
            PrefixRewrite::Prefix(p) => route.prefix_rewrite = p,
            PrefixRewrite::Regex(r) => route.regex_rewrite = Some(r),
        },
        Action::Redirect(redirect) => {
            redirect.path_rewrite_specifier = match rewrite {
                PrefixRewrite::None => None,
                PrefixRewrite::Prefix(p) => Some(PathRewriteSpecifier::PrefixRewrite(p)),
                PrefixRewrite::Regex(r) => Some(PathRewriteSpecifier::RegexRewrite(r)),
            }
        }
        _ => {}
    }
}

fn default_port(scheme: &str) -> u32 {
    if scheme == "https" {
        443
    } else {
        80
    }
}

/// The redirect action without its `ReplacePrefixMatch` path, which each match
/// completes; the replacement is returned.
pub fn redirect_action<'r>(
    r: &'r RequestRedirect,
    at: &str,
) -> Result<(RedirectAction, Option<&'r str>), RuleError> {
    let response_code = match r.status_code.unwrap_or(302) {
        301 => RedirectResponseCode::MovedPermanently,
        302 => RedirectResponseCode::Found,
        303 => RedirectResponseCode::SeeOther,
        307 => RedirectResponseCode::TemporaryRedirect,
        308 => RedirectResponseCode::PermanentRedirect,
        other => {
            return Err(RuleError::unsupported(format!(
                "{at}.statusCode: {other} is not one of 301, 302, 303, 307, 308"
            )))
        }
    };
    let mut action = RedirectAction {
        response_code: response_code as i32,
        ..RedirectAction::default()
    };
    if let Some(hostname) = &r.hostname {
        action.host_redirect = hostname_value(hostname, &format!("{at}.hostname"))?;
    }
    match r.scheme.as_deref() {
        None => action.port_redirect = r.port.map(u32::from).unwrap_or(0),
        Some(scheme @ ("http" | "https")) => {
            let port = r.port.map_or(default_port(scheme), u32::from);
            action.port_redirect = if port == default_port(scheme) {
                0
            } else {
                port
            };
            action.scheme_rewrite_specifier =
                Some(SchemeRewriteSpecifier::SchemeRedirect(scheme.to_owned()));
        }
        Some(other) => {
            return Err(RuleError::unsupported(format!(
                "{at}.scheme: {other:?} is not http or https"
            )))
        }
    }
    if r.port == Some(0) {
        return Err(RuleError::unsupported(format!(
            "{at}.port: 0 is not a port"
        )));
    }
    let mut prefix = None;
    match path(r.path.as_ref(), &format!("{at}.path"))? {
        Some(Path::Full(p)) => {
            action.path_rewrite_specifier = Some(PathRewriteSpecifier::PathRedirect(p.to_owned()));
        }
        Some(Path::Prefix(p)) => prefix = Some(p),
        None => {}
    }
    Ok((action, prefix))
}

/// Applies a URLRewrite's hostname and full path to `route`; returns a
/// `ReplacePrefixMatch` replacement, which each match completes.
pub fn url_rewrite<'r>(
    r: &'r UrlRewrite,
    route: &mut RouteAction,
    at: &str,
) -> Result<Option<&'r str>, RuleError> {
    if let Some(hostname) = &r.hostname {
        route.host_rewrite_specifier = Some(HostRewriteSpecifier::HostRewriteLiteral(
            hostname_value(hostname, &format!("{at}.hostname"))?,
        ));
    }
    Ok(match path(r.path.as_ref(), &format!("{at}.path"))? {
        Some(Path::Full(p)) => {
            route.regex_rewrite = Some(RegexMatchAndSubstitute {
                pattern: Some(RegexMatcher {
                    regex: "^/.*$".to_owned(),
                    ..RegexMatcher::default()
                }),
                substitution: regex_substitution(p),
            });
            None
        }
        Some(Path::Prefix(p)) => Some(p),
        None => None,
    })
}

enum Path<'p> {
    Full(&'p str),
    Prefix(&'p str),
}

fn path<'p>(m: Option<&'p PathModifier>, at: &str) -> Result<Option<Path<'p>>, RuleError> {
    let Some(m) = m else { return Ok(None) };
    let (value, field) = match (m.kind, &m.replace_full_path, &m.replace_prefix_match) {
        (PathModifierType::ReplaceFullPath, Some(p), None) => (Path::Full(p), "replaceFullPath"),
        (PathModifierType::ReplacePrefixMatch, None, Some(p)) => {
            (Path::Prefix(p), "replacePrefixMatch")
        }
        (kind, _, _) => {
            return Err(RuleError::unsupported(format!(
                "{at}: type {kind:?} takes exactly the field `{}`",
                match kind {
                    PathModifierType::ReplaceFullPath => "replaceFullPath",
                    PathModifierType::ReplacePrefixMatch => "replacePrefixMatch",
                }
            )))
        }
    };
    let (Path::Full(text) | Path::Prefix(text)) = value;
    if !text.is_empty() && !text.starts_with('/') || text.chars().any(char::is_control) {
        return Err(RuleError::unsupported(format!(
            "{at}.{field}: {text:?} is not an absolute path"
        )));
    }
    Ok(Some(value))
}

/// A hostname for `Location` or `Host`: RFC 1123 characters only (the CRD's
/// pattern), so nothing else can be smuggled into a header.
fn hostname_value(hostname: &str, at: &str) -> Result<String, RuleError> {
    let ok = !hostname.is_empty()
        && hostname.len() <= 253
        && hostname
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if ok {
        Ok(hostname.to_owned())
    } else {
        Err(RuleError::unsupported(format!(
            "{at}: {hostname:?} is not a hostname (lowercase letters, digits, '-' and '.')"
        )))
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

    fn redirect(yaml: &str) -> Result<RedirectAction, RuleError> {
        let r: RequestRedirect = serde_yaml_ng::from_str(yaml).unwrap();
        redirect_action(&r, "f").map(|(a, _)| a)
    }

    #[test]
    fn redirects_default_to_302_and_leave_default_ports_out() {
        let a = redirect("{}").unwrap();
        assert_eq!(a.response_code, RedirectResponseCode::Found as i32);
        assert_eq!(a.port_redirect, 0);
        assert_eq!(a.scheme_rewrite_specifier, None);
        let a = redirect("{scheme: https, statusCode: 301}").unwrap();
        assert_eq!(
            a.response_code,
            RedirectResponseCode::MovedPermanently as i32
        );
        assert_eq!(a.port_redirect, 0);
        let a = redirect("{scheme: https, port: 8443, hostname: example.com}").unwrap();
        assert_eq!(a.port_redirect, 8443);
        assert_eq!(a.host_redirect, "example.com");
        let a = redirect("{scheme: http, port: 443}").unwrap();
        assert_eq!(a.port_redirect, 443);
        let a = redirect("{path: {type: ReplaceFullPath, replaceFullPath: /new}}").unwrap();
        assert_eq!(
            a.path_rewrite_specifier,
            Some(PathRewriteSpecifier::PathRedirect("/new".into()))
        );
    }

    #[test]
    fn bad_redirects_name_the_field() {
        let msg = |yaml| redirect(yaml).unwrap_err().message;
        assert!(msg("{statusCode: 404}").starts_with("f.statusCode: 404"));
        assert!(msg("{scheme: ftp}").starts_with("f.scheme:"));
        assert!(msg("{hostname: 'a b'}").starts_with("f.hostname:"));
        assert!(
            msg("{path: {type: ReplaceFullPath, replacePrefixMatch: /x}}").starts_with("f.path:")
        );
        assert!(msg("{path: {type: ReplaceFullPath, replaceFullPath: x}}")
            .starts_with("f.path.replaceFullPath:"));
    }

    fn listener(port: u16) -> Listener {
        serde_yaml_ng::from_str(&format!("{{name: l, port: {port}, protocol: HTTP}}")).unwrap()
    }

    fn redirect_route(yaml: &str) -> Route {
        Route {
            action: Some(Action::Redirect(redirect(yaml).unwrap())),
            ..Route::default()
        }
    }

    fn port_on(route: Route, port: u16) -> u32 {
        match for_listener(route, &listener(port)).action {
            Some(Action::Redirect(r)) => r.port_redirect,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_redirect_without_scheme_goes_to_the_listeners_port() {
        assert_eq!(port_on(redirect_route("{}"), 80), 0);
        assert_eq!(port_on(redirect_route("{}"), 8080), 8080);
        assert_eq!(port_on(redirect_route("{port: 80}"), 8080), 0);
        assert_eq!(port_on(redirect_route("{port: 9000}"), 80), 9000);
        // With a scheme the listener does not matter.
        assert_eq!(port_on(redirect_route("{scheme: https}"), 8080), 0);
    }
}
