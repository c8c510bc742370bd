//! The path and host rewrites of RequestRedirect and URLRewrite, and the
//! redirect's port, checked per the Gateway API spec into the route plan
//! (`emit_route` writes them as Envoy Gateway maps them).

use crate::resources::http_filters::{PathModifier, PathModifierType, RequestRedirect, UrlRewrite};

use super::invalid_rules::RuleError;
use super::route_plan::{PathChange, Redirect};

/// The redirect, its path a `ReplaceFullPath` or kept; a `ReplacePrefixMatch`
/// replacement is returned for each match to complete.
pub fn redirect<'r>(
    r: &'r RequestRedirect,
    at: &str,
) -> Result<(Redirect, Option<&'r str>), RuleError> {
    let status = r.status_code.unwrap_or(302);
    if ![301, 302, 303, 307, 308].contains(&status) {
        return Err(RuleError::unsupported(format!(
            "{at}.statusCode: {status} is not one of 301, 302, 303, 307, 308"
        )));
    }
    let hostname = match &r.hostname {
        Some(h) => Some(hostname_value(h, &format!("{at}.hostname"))?),
        None => None,
    };
    if let Some(other) = r
        .scheme
        .as_deref()
        .filter(|s| !["http", "https"].contains(s))
    {
        return Err(RuleError::unsupported(format!(
            "{at}.scheme: {other:?} is not http or https"
        )));
    }
    if r.port == Some(0) {
        return Err(RuleError::unsupported(format!(
            "{at}.port: 0 is not a port"
        )));
    }
    let (path, prefix) = match path(r.path.as_ref(), &format!("{at}.path"))? {
        Some(Path::Full(p)) => (PathChange::Full(p.to_owned()), None),
        Some(Path::Prefix(p)) => (PathChange::Keep, Some(p)),
        None => (PathChange::Keep, None),
    };
    let redirect = Redirect {
        status,
        scheme: r.scheme.clone(),
        hostname,
        port: r.port,
        path,
    };
    Ok((redirect, prefix))
}

/// A URLRewrite's hostname and path (a `ReplaceFullPath`, or kept); a
/// `ReplacePrefixMatch` replacement is returned for each match to complete.
pub fn url_rewrite<'r>(
    r: &'r UrlRewrite,
    at: &str,
) -> Result<(Option<String>, PathChange, Option<&'r str>), RuleError> {
    let hostname = match &r.hostname {
        Some(h) => Some(hostname_value(h, &format!("{at}.hostname"))?),
        None => None,
    };
    Ok(match path(r.path.as_ref(), &format!("{at}.path"))? {
        Some(Path::Full(p)) => (hostname, PathChange::Full(p.to_owned()), None),
        Some(Path::Prefix(p)) => (hostname, PathChange::Keep, Some(p)),
        None => (hostname, PathChange::Keep, None),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect_of(yaml: &str) -> Result<Redirect, RuleError> {
        let r: RequestRedirect = serde_yaml_ng::from_str(yaml).unwrap();
        redirect(&r, "f").map(|(a, _)| a)
    }

    #[test]
    fn redirects_default_to_302_and_keep_what_they_are_given() {
        let a = redirect_of("{}").unwrap();
        assert_eq!((a.status, a.scheme, a.port), (302, None, None));
        let a = redirect_of("{scheme: https, port: 8443, hostname: example.com, statusCode: 301}")
            .unwrap();
        assert_eq!(a.status, 301);
        assert_eq!(a.scheme.as_deref(), Some("https"));
        assert_eq!(a.port, Some(8443));
        assert_eq!(a.hostname.as_deref(), Some("example.com"));
        let a = redirect_of("{path: {type: ReplaceFullPath, replaceFullPath: /new}}").unwrap();
        assert_eq!(a.path, PathChange::Full("/new".into()));
        let r: RequestRedirect =
            serde_yaml_ng::from_str("{path: {type: ReplacePrefixMatch, replacePrefixMatch: /x}}")
                .unwrap();
        let (a, prefix) = redirect(&r, "f").unwrap();
        assert_eq!((a.path, prefix), (PathChange::Keep, Some("/x")));
    }

    #[test]
    fn bad_redirects_name_the_field() {
        let msg = |yaml| redirect_of(yaml).unwrap_err().message;
        assert!(msg("{statusCode: 404}").starts_with("f.statusCode: 404"));
        assert!(msg("{scheme: ftp}").starts_with("f.scheme:"));
        assert!(msg("{hostname: 'a b'}").starts_with("f.hostname:"));
        assert!(msg("{port: 0}").starts_with("f.port:"));
        assert!(
            msg("{path: {type: ReplaceFullPath, replacePrefixMatch: /x}}").starts_with("f.path:")
        );
        assert!(msg("{path: {type: ReplaceFullPath, replaceFullPath: x}}")
            .starts_with("f.path.replaceFullPath:"));
    }
}
