//! The parts of a request the filters' rules look at, and how query
//! parameters and cookies are read: raw (not percent-decoded), compared as sent.

use std::net::IpAddr;

/// What the rate limit and canary rules need to know of a request.
pub trait RequestAttrs {
    /// First value of a request header (lower-case name).
    fn header(&self, name: &str) -> Option<&str>;
    fn method(&self) -> &str;
    /// `:path`, query included.
    fn path(&self) -> &str;
    /// The client address as Envoy sees it.
    fn source_ip(&self) -> Option<IpAddr>;
}

/// Every value of query parameter `name` in `path` (`/p?a=1&a=2`), in order; a
/// parameter without `=` has the empty value.
pub fn query_values(path: &str, name: &str) -> Vec<String> {
    let Some((_, query)) = path.split_once('?') else {
        return Vec::new();
    };
    let query = query.split('#').next().unwrap_or_default();
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .collect()
}

/// Every value of cookie `name` in a `cookie` header value, quotes removed.
pub fn cookie_values(header: &str, name: &str) -> Vec<String> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_raw_and_ordered() {
        assert_eq!(query_values("/p?a=1&b=2&a=x%20y#a=3", "a"), ["1", "x%20y"]);
        assert_eq!(query_values("/p?flag&a=", "flag"), [""]);
        assert!(query_values("/p", "a").is_empty());
    }

    #[test]
    fn cookie_values_ignore_spacing_and_quotes() {
        assert_eq!(cookie_values("a=1;  b=\"two\"; a=3", "a"), ["1", "3"]);
        assert_eq!(cookie_values("a=1;  b=\"two\"", "b"), ["two"]);
        assert!(cookie_values("ab=1", "a").is_empty());
    }
}
