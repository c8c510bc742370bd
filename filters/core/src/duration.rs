//! Gateway API `Duration` strings (`300s`, `1h30m`, `500ms`), as Envoy Gateway's
//! policies write them: one to four `<number><unit>` parts, units h, m, s, ms.

use std::time::Duration;

use crate::ConfigError;

/// Parses a Gateway API duration; `field` names it in errors.
pub fn parse(field: &str, s: &str) -> Result<Duration, ConfigError> {
    let bad = || {
        ConfigError::new(
            field,
            format!("`{s}` is not a duration; write e.g. `300s`, `1h30m` or `500ms` (units h, m, s, ms)"),
        )
    };
    let mut total = Duration::ZERO;
    let mut rest = s;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 || digits > 5 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else if rest.starts_with('h') {
            (Duration::from_secs(3600), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(60), 1)
        } else if rest.starts_with('s') {
            (Duration::from_secs(1), 1)
        } else {
            return Err(bad());
        };
        rest = &rest[len..];
        total += unit * u32::try_from(n).map_err(|_| bad())?;
        parts += 1;
    }
    if parts == 0 || parts > 4 {
        return Err(bad());
    }
    Ok(total)
}

/// An optional timeout field: `default` when absent, and never zero (a zero
/// timeout would make every call fail).
pub fn timeout(
    field: &str,
    value: Option<&str>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let timeout = value
        .map(|v| parse(field, v))
        .transpose()?
        .unwrap_or(default);
    if timeout.is_zero() {
        return Err(ConfigError::new(field, "must be more than 0"));
    }
    Ok(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_default_and_are_never_zero() {
        let d = Duration::from_secs(5);
        assert_eq!(timeout("t", None, d).unwrap(), d);
        assert_eq!(timeout("t", Some("1s"), d).unwrap(), Duration::from_secs(1));
        assert_eq!(timeout("t", Some("0s"), d).unwrap_err().field, "t");
        assert_eq!(timeout("t", Some("x"), d).unwrap_err().field, "t");
    }

    #[test]
    fn gateway_api_durations() {
        assert_eq!(parse("f", "300s").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("f", "1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("f", "500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(
            parse("f", "1m1s1ms").unwrap(),
            Duration::from_millis(61_001)
        );
    }

    #[test]
    fn malformed_durations_name_the_field() {
        for bad in [
            "",
            "5",
            "s",
            "5x",
            "1.5s",
            "-1s",
            "123456s",
            "1h1h1h1h1h",
            "5 s",
            "5S",
        ] {
            assert_eq!(
                parse("remoteJWKS.timeout", bad).unwrap_err().field,
                "remoteJWKS.timeout",
                "{bad:?}"
            );
        }
    }
}
