//! Listener × route hostname intersection, as Gateway API defines it: a
//! wildcard `*.example.com` stands for one or more labels in front of
//! `example.com` (never `example.com` itself), and where one side is a
//! wildcard covering the other, the more specific side is what Envoy matches.

/// The hostnames a route serves on a listener; empty means the route does not
/// attach to that listener (`NoMatchingListenerHostname`). `["*"]` when neither
/// side restricts hostnames.
pub fn intersect(listener: Option<&str>, route: &[String]) -> Vec<String> {
    let mut out: Vec<String> = match (listener, route.is_empty()) {
        (None, true) => vec!["*".to_owned()],
        (None, false) => route.to_vec(),
        (Some(l), true) => vec![l.to_owned()],
        (Some(l), false) => route.iter().filter_map(|r| pair(l, r)).collect(),
    };
    out.dedup();
    out
}

fn pair(listener: &str, route: &str) -> Option<String> {
    if listener == route || covers(listener, route) {
        Some(route.to_owned())
    } else if covers(route, listener) {
        Some(listener.to_owned())
    } else {
        None
    }
}

/// The CRD's Hostname: lower-case DNS labels (`[a-z0-9]`, `-` inside),
/// optionally after one `*.`, at most 253 characters. Anything else would
/// reach Envoy as a domain it refuses (`*` alone, a partial wildcard, a
/// second name differing only in case) or matches unexpectedly.
pub fn check(name: &str) -> Result<(), String> {
    let labels = name.strip_prefix("*.").unwrap_or(name);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() <= 253 && labels.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a hostname (lower-case DNS labels, optionally after `*.`)"
        ))
    }
}

/// Whether two listener hostnames (`None`: any) match some name in common:
/// equal, one a wildcard covering the other, or either absent.
pub fn overlap(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b || covers(a, b) || covers(b, a),
        _ => true,
    }
}

/// Whether the wildcard `pattern` (`*.suffix`) matches every name `name` does.
fn covers(pattern: &str, name: &str) -> bool {
    let Some(suffix) = pattern.strip_prefix('*') else {
        return false;
    };
    // `suffix` keeps its leading dot, so `*.example.com` never covers `example.com`.
    let name = name.strip_prefix('*').unwrap_or(name);
    name.len() > suffix.len() && name.ends_with(suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn absent_sides_leave_the_other() {
        assert_eq!(intersect(None, &[]), names(&["*"]));
        assert_eq!(intersect(Some("a.com"), &[]), names(&["a.com"]));
        assert_eq!(intersect(None, &names(&["a.com"])), names(&["a.com"]));
    }

    #[test]
    fn wildcard_listener_keeps_the_covered_route_hostnames() {
        let route = names(&[
            "foo.example.com",
            "example.com",
            "a.b.example.com",
            "other.org",
        ]);
        assert_eq!(
            intersect(Some("*.example.com"), &route),
            names(&["foo.example.com", "a.b.example.com"])
        );
    }

    #[test]
    fn wildcard_route_narrows_to_the_listener_and_vice_versa() {
        assert_eq!(
            intersect(Some("foo.example.com"), &names(&["*.example.com"])),
            names(&["foo.example.com"])
        );
        assert_eq!(
            intersect(Some("*.example.com"), &names(&["*.foo.example.com"])),
            names(&["*.foo.example.com"])
        );
        assert_eq!(
            intersect(Some("*.foo.example.com"), &names(&["*.example.com"])),
            names(&["*.foo.example.com"])
        );
        assert_eq!(
            intersect(Some("*.example.com"), &names(&["*.example.com"])),
            names(&["*.example.com"])
        );
    }

    #[test]
    fn listener_hostnames_overlap_as_the_spec_example_says() {
        // ListenerConditionOverlappingTLSConfig: A and C overlap, B overlaps neither.
        let (a, b, c) = ("foo.example.com", "foo.example.org", "*.example.com");
        assert!(overlap(Some(a), Some(c)) && overlap(Some(c), Some(a)));
        assert!(!overlap(Some(a), Some(b)) && !overlap(Some(b), Some(c)));
        assert!(overlap(Some(a), Some(a)));
        assert!(overlap(None, Some(b)) && overlap(Some(c), None));
        assert!(overlap(Some("*.a.example.com"), Some(c)));
        assert!(!overlap(Some("*.a.example.com"), Some("*.b.example.com")));
        assert!(!overlap(Some("example.com"), Some(c)));
    }

    #[test]
    fn hostnames_are_checked_as_the_crd_does() {
        for good in ["example.com", "*.example.com", "a-1.b2", "localhost"] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
        for bad in [
            "*",
            "Example.com",
            "foo*.example.com",
            "*.*.example.com",
            "a..b",
            "-a.com",
            "a b",
            "",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
        assert!(check(&"a.".repeat(127)).is_err());
    }

    #[test]
    fn no_overlap_is_empty() {
        assert!(intersect(Some("example.com"), &names(&["example.org"])).is_empty());
        assert!(intersect(Some("*.example.com"), &names(&["example.com"])).is_empty());
        assert!(intersect(Some("example.com"), &names(&["*.example.com"])).is_empty());
    }
}
