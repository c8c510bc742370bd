//! Checks on a token's claims once its signature is good: issuer, audience and
//! the time claims with the provider's clock skew; and the claim values copied
//! into request headers.

use serde_json::{Map, Value};

use super::policy::{ClaimToHeader, Provider};

/// Why verified claims are still refused. Each maps to the response and the
/// metric reason: audience mismatch is 403, the rest 401 `invalid_token`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("token expired")]
    Expired,
    #[error("token not valid yet (nbf)")]
    NotYetValid,
    #[error("token issued in the future (iat)")]
    IssuedInFuture,
    #[error("`{0}` is not a number of seconds")]
    BadTime(&'static str),
    /// A registered claim of the wrong JSON type (RFC 7519 §4.1), as Envoy's jwt_authn refuses it.
    #[error("`{0}` has the wrong type")]
    BadType(&'static str),
    #[error("issuer not accepted")]
    BadIssuer,
    #[error("audience not accepted")]
    BadAudience,
}

/// Validates `claims` for `provider` at `now` (seconds since the epoch).
pub fn validate(
    claims: &Map<String, Value>,
    provider: &Provider,
    now: u64,
) -> Result<(), ClaimError> {
    let skew = provider.clock_skew_seconds;
    if let Some(exp) = time_claim(claims, "exp")? {
        if now > exp.saturating_add(skew) {
            return Err(ClaimError::Expired);
        }
    }
    if let Some(nbf) = time_claim(claims, "nbf")? {
        if now.saturating_add(skew) < nbf {
            return Err(ClaimError::NotYetValid);
        }
    }
    if let Some(iat) = time_claim(claims, "iat")? {
        if iat > now.saturating_add(skew) {
            return Err(ClaimError::IssuedInFuture);
        }
    }
    if let Some(issuer) = &provider.issuer {
        if claims.get("iss").and_then(Value::as_str) != Some(issuer.as_str()) {
            return Err(ClaimError::BadIssuer);
        }
    }
    if !provider.audiences.is_empty() {
        let accepted = |aud: &str| provider.audiences.iter().any(|a| a == aud);
        let ok = match claims.get("aud") {
            Some(Value::String(aud)) => accepted(aud),
            Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(accepted),
            _ => false,
        };
        if !ok {
            return Err(ClaimError::BadAudience);
        }
    }
    Ok(())
}

/// The seconds during which these (validated) claims stay acceptable, skew
/// included: `(nbf - skew, exp + skew)`, open-ended where a claim is absent.
pub fn window(claims: &Map<String, Value>, skew: u64) -> (u64, u64) {
    let nbf = time_claim(claims, "nbf").ok().flatten();
    let exp = time_claim(claims, "exp").ok().flatten();
    (
        nbf.map_or(0, |n| n.saturating_sub(skew)),
        exp.map_or(u64::MAX, |e| e.saturating_add(skew)),
    )
}

/// A NumericDate claim in whole seconds (fractions are truncated, as RFC 7519 allows).
fn time_claim(claims: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, ClaimError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(s), _) => Ok(Some(s)),
            (None, Some(f)) if f >= 0.0 && f.is_finite() => Ok(Some(f as u64)),
            _ => Err(ClaimError::BadTime(name)),
        },
        Some(_) => Err(ClaimError::BadTime(name)),
    }
}

/// The headers `claimToHeaders` asks for: `(header, value)` for each claim present.
/// Strings are copied as they are, other values as compact JSON text (`42`, `true`,
/// `["a","b"]`); a missing claim, or a string a header cannot carry, sets nothing.
pub fn claim_headers(
    claims: &Map<String, Value>,
    rules: &[ClaimToHeader],
) -> Vec<(String, String)> {
    rules
        .iter()
        .filter_map(|rule| {
            let value = lookup(claims, &rule.claim)?;
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Null => return None,
                other => other.to_string(),
            };
            let safe = !text.chars().any(|c| c.is_control() && c != '\t');
            safe.then(|| (rule.header.clone(), text))
        })
        .collect()
}

/// The value at a dotted claim path (`["org", "team"]` → `claims.org.team`).
pub fn lookup<'a>(claims: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    rest.iter()
        .try_fold(claims.get(first)?, |value, key| value.get(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::extract::TokenSource;
    use crate::jwt::jwks::Jwks;
    use crate::jwt::policy::KeySource;
    use serde_json::json;

    fn provider(issuer: Option<&str>, audiences: &[&str]) -> Provider {
        Provider {
            name: "p".into(),
            issuer: issuer.map(str::to_string),
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
            keys: KeySource::Local(Jwks { keys: vec![] }),
            claim_to_headers: vec![],
            sources: TokenSource::compile(None).unwrap(),
            clock_skew_seconds: 60,
            forward: false,
            recompute_route: false,
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn time_claims_honour_the_skew() {
        let p = provider(None, &[]);
        assert_eq!(validate(&claims(json!({"exp": NOW - 60})), &p, NOW), Ok(()));
        assert_eq!(
            validate(&claims(json!({"exp": NOW - 61})), &p, NOW),
            Err(ClaimError::Expired)
        );
        assert_eq!(validate(&claims(json!({"nbf": NOW + 60})), &p, NOW), Ok(()));
        assert_eq!(
            validate(&claims(json!({"nbf": NOW + 61})), &p, NOW),
            Err(ClaimError::NotYetValid)
        );
        assert_eq!(
            validate(&claims(json!({"iat": NOW + 61})), &p, NOW),
            Err(ClaimError::IssuedInFuture)
        );
        assert_eq!(
            validate(&claims(json!({"exp": (NOW + 10) as f64 + 0.5})), &p, NOW),
            Ok(())
        );
        assert_eq!(
            validate(&claims(json!({"exp": "tomorrow"})), &p, NOW),
            Err(ClaimError::BadTime("exp"))
        );
        assert_eq!(
            validate(&claims(json!({"exp": -5})), &p, NOW),
            Err(ClaimError::BadTime("exp"))
        );
        assert_eq!(
            validate(&claims(json!({})), &p, NOW),
            Ok(()),
            "time claims are optional"
        );
    }

    #[test]
    fn issuer_and_audience() {
        let p = provider(Some("https://iss"), &["api", "web"]);
        let ok = claims(json!({"iss": "https://iss", "aud": ["other", "web"]}));
        assert_eq!(validate(&ok, &p, NOW), Ok(()));
        assert_eq!(
            validate(
                &claims(json!({"iss": "https://iss", "aud": "api"})),
                &p,
                NOW
            ),
            Ok(())
        );
        assert_eq!(
            validate(
                &claims(json!({"iss": "https://evil", "aud": "api"})),
                &p,
                NOW
            ),
            Err(ClaimError::BadIssuer)
        );
        assert_eq!(
            validate(&claims(json!({"aud": "api"})), &p, NOW),
            Err(ClaimError::BadIssuer)
        );
        assert_eq!(
            validate(
                &claims(json!({"iss": "https://iss", "aud": "nope"})),
                &p,
                NOW
            ),
            Err(ClaimError::BadAudience)
        );
        assert_eq!(
            validate(&claims(json!({"iss": "https://iss"})), &p, NOW),
            Err(ClaimError::BadAudience)
        );
    }

    #[test]
    fn claims_become_header_values() {
        let rule = |h: &str, c: &str| ClaimToHeader {
            header: h.into(),
            claim: c.split('.').map(str::to_string).collect(),
        };
        let c = claims(json!({
            "sub": "alice", "level": 3, "admin": true, "roles": ["a", "b"],
            "org": {"team": "core"}, "evil": "x\r\ninjected: 1", "nothing": null
        }));
        let rules = [
            rule("x-sub", "sub"),
            rule("x-level", "level"),
            rule("x-admin", "admin"),
            rule("x-roles", "roles"),
            rule("x-team", "org.team"),
            rule("x-missing", "org.nope"),
            rule("x-evil", "evil"),
            rule("x-null", "nothing"),
        ];
        assert_eq!(
            claim_headers(&c, &rules),
            [
                ("x-sub".to_string(), "alice".to_string()),
                ("x-level".into(), "3".into()),
                ("x-admin".into(), "true".into()),
                ("x-roles".into(), r#"["a","b"]"#.into()),
                ("x-team".into(), "core".into()),
            ]
        );
    }
}
