//! HTTPRoute rule `timeouts` → the route's `timeout` (`request`) and its retry
//! policy's `per_try_timeout` (`backendRequest`), as Envoy Gateway maps them.

use envoy_types::pb::envoy::config::route::v3::{RetryPolicy, RouteAction};
use envoy_types::pb::google::protobuf::Duration;

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

fn duration(ms: u64) -> Duration {
    Duration {
        seconds: i64::try_from(ms / 1000).unwrap_or(i64::MAX),
        // Below 1e9 by construction.
        nanos: i32::try_from(ms % 1000 * 1_000_000).unwrap_or(0),
    }
}

/// Sets the timeouts of `timeouts` on `action`. `request: 0s` disables the
/// route timeout (Envoy's `0s` means none, as in the spec); `backendRequest:
/// 0s` leaves attempts unbounded. The spec forbids a `backendRequest` longer
/// than a non-zero `request`.
pub fn apply(timeouts: &HttpRouteTimeouts, action: &mut RouteAction) -> Result<(), RuleError> {
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
    if let Some(ms) = request {
        action.timeout = Some(duration(ms));
    }
    if let Some(ms) = backend.filter(|ms| *ms > 0) {
        action.retry_policy = Some(RetryPolicy {
            per_try_timeout: Some(duration(ms)),
            ..RetryPolicy::default()
        });
    }
    Ok(())
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
    fn request_and_backend_request_map_to_route_and_per_try_timeouts() {
        let mut action = RouteAction::default();
        apply(&timeouts(Some("1500ms"), Some("1s")), &mut action).unwrap();
        assert_eq!(
            action.timeout,
            Some(Duration {
                seconds: 1,
                nanos: 500_000_000
            })
        );
        let retry = action.retry_policy.unwrap();
        assert_eq!(
            retry.per_try_timeout,
            Some(Duration {
                seconds: 1,
                nanos: 0
            })
        );
    }

    #[test]
    fn zero_disables() {
        let mut action = RouteAction::default();
        apply(&timeouts(Some("0s"), Some("20s")), &mut action).unwrap();
        assert_eq!(action.timeout, Some(Duration::default()));
        assert!(action.retry_policy.is_some());
        let mut action = RouteAction::default();
        apply(&timeouts(None, Some("0s")), &mut action).unwrap();
        assert_eq!(action.retry_policy, None);
    }

    #[test]
    fn backend_request_longer_than_request_is_refused() {
        let e = apply(
            &timeouts(Some("1s"), Some("2s")),
            &mut RouteAction::default(),
        )
        .unwrap_err();
        assert!(e.message.contains("longer than timeouts.request"), "{e:?}");
        let e = apply(&timeouts(Some("soon"), None), &mut RouteAction::default()).unwrap_err();
        assert_eq!(e.reason, "UnsupportedValue");
        assert!(e.message.starts_with("timeouts.request: \"soon\""), "{e:?}");
    }
}
