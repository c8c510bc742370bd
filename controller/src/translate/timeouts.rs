//! HTTPRoute rule `timeouts`, checked into the route plan (`emit_route`
//! writes `request` as the route's `timeout` and `backendRequest` as its retry
//! policy's `per_try_timeout`, as Envoy Gateway maps them).

use crate::resources::http_filters::HttpRouteTimeouts;

use super::invalid_rules::RuleError;

/// A Gateway API duration (GEP-2257): one to four `<1-5 digits><h|m|s|ms>`
/// pairs, e.g. `500ms`, `1h30m`; returned in milliseconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let bad = || {
        format!("{text:?} is not a Gateway API duration (one to four of <number><h|m|s|ms>, e.g. 500ms, 10s, 1h30m)")
    };
    let mut rest = text;
    let mut total: u64 = 0;
    let mut pairs = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 5 {
            return Err(bad());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit_ms, len) = if rest.starts_with("ms") {
            (1, 2)
        } else if rest.starts_with('h') {
            (3_600_000, 1)
        } else if rest.starts_with('m') {
            (60_000, 1)
        } else if rest.starts_with('s') {
            (1_000, 1)
        } else {
            return Err(bad());
        };
        rest = &rest[len..];
        total += number * unit_ms;
        pairs += 1;
    }
    if pairs == 0 || pairs > 4 {
        return Err(bad());
    }
    Ok(total)
}

/// The timeouts of `timeouts` in milliseconds: `request` (`0s` disables the
/// route timeout, as in the spec and in Envoy) and `backendRequest` when it
/// bounds an attempt (`0s` leaves attempts unbounded). The spec forbids a
/// `backendRequest` longer than a non-zero `request`.
pub fn check(timeouts: &HttpRouteTimeouts) -> Result<(Option<u64>, Option<u64>), RuleError> {
    let parse = |field: &str, text: &Option<String>| {
        text.as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(|e| RuleError::unsupported(format!("timeouts.{field}: {e}")))
    };
    let request = parse("request", &timeouts.request)?;
    let backend = parse("backendRequest", &timeouts.backend_request)?;
    if let (Some(request), Some(backend)) = (request, backend) {
        if request != 0 && backend > request {
            return Err(RuleError::unsupported(format!(
                "timeouts.backendRequest ({:?}) is longer than timeouts.request ({:?})",
                timeouts.backend_request.as_deref().unwrap_or(""),
                timeouts.request.as_deref().unwrap_or("")
            )));
        }
    }
    Ok((request, backend.filter(|ms| *ms > 0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_gateway_api_format() {
        assert_eq!(parse_duration("500ms"), Ok(500));
        assert_eq!(parse_duration("10s"), Ok(10_000));
        assert_eq!(parse_duration("1h"), Ok(3_600_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("1m1s1ms"), Ok(61_001));
        assert_eq!(parse_duration("0s"), Ok(0));
        assert_eq!(parse_duration("99999ms"), Ok(99_999));
        for bad in [
            "",
            "10",
            "s",
            "1.5s",
            "-1s",
            "1d",
            "1 s",
            "100000s",
            "1S",
            "1h1m1s1ms1h",
            "1us",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("not a Gateway API duration"), "{bad}: {e}");
        }
    }

    fn timeouts(request: Option<&str>, backend: Option<&str>) -> HttpRouteTimeouts {
        HttpRouteTimeouts {
            request: request.map(str::to_owned),
            backend_request: backend.map(str::to_owned),
        }
    }

    #[test]
    fn request_and_backend_request_in_milliseconds_and_zero_disables() {
        assert_eq!(
            check(&timeouts(Some("1500ms"), Some("1s"))),
            Ok((Some(1500), Some(1000)))
        );
        assert_eq!(
            check(&timeouts(Some("0s"), Some("20s"))),
            Ok((Some(0), Some(20_000)))
        );
        assert_eq!(check(&timeouts(None, Some("0s"))), Ok((None, None)));
    }

    #[test]
    fn backend_request_longer_than_request_is_refused() {
        let e = check(&timeouts(Some("1s"), Some("2s"))).unwrap_err();
        assert!(e.message.contains("longer than timeouts.request"), "{e:?}");
        let e = check(&timeouts(Some("soon"), None)).unwrap_err();
        assert_eq!(e.reason, "UnsupportedValue");
        assert!(e.message.starts_with("timeouts.request: \"soon\""), "{e:?}");
    }
}
