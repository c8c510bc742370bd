//! The parts of a request the filters' rules look at, and how query
//! parameters and cookies are read: raw (not percent-decoded), compared as sent.

use std::net::IpAddr;

/// What the rate limit and canary rules need to know of a request.
pub trait RequestAttrs {
    /// Every value of a request header (lower-case name), in arrival order. A
    /// header may come several times: HTTP/1 clients send one `Cookie` line per
    /// cookie if they like, and Envoy joins them only for HTTP/2 and HTTP/3.
    fn header_values(&self, name: &str) -> Vec<&str>;
    /// First value of a request header (lower-case name).
    fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).into_iter().next()
    }
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

/// Every value of cookie `name` in all of a request's `cookie` headers, in
/// order, quotes removed. Every header is read, never only the first: the
/// cookie a rule or a token source wants may be in any of them.
pub fn request_cookie_values<'a>(
    cookie_headers: impl IntoIterator<Item = &'a str>,
    name: &str,
) -> Vec<String> {
    cookie_headers
        .into_iter()
        .flat_map(|h| cookie_values(h, name))
        .collect()
}

/// Every value of cookie `name` in one `cookie` header value, quotes removed.
fn cookie_values(header: &str, name: &str) -> Vec<String> {
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

    #[test]
    fn request_cookies_are_read_from_every_cookie_header() {
        let headers = ["theme=dark", "a=1; session=s2", "session=s3"];
        assert_eq!(request_cookie_values(headers, "session"), ["s2", "s3"]);
        assert_eq!(request_cookie_values(headers, "a"), ["1"]);
        assert!(request_cookie_values([], "a").is_empty());
    }
}
