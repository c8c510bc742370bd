//! Secrets inside the filters' own JSON configs, for the rendered views of a
//! translation (`tollgate translate`, the admin `/config_dump`): an inline
//! JWKS may hold an HMAC key (`k`), and with it anyone can mint tokens the
//! filter accepts. Its private members are redacted like a listener's private
//! key; Envoy itself still gets them over xDS.
//!
//! The JWT filter's config is the only one with key material; its inline
//! JWKS sits under `localJWKS.inline` wherever a policy is (a bare policy, an
//! envelope's routes or default), so every `localJWKS` object is visited.

use serde_json::Value;

/// What a redacted secret (a private key, a JWKS key's secret members)
/// renders as.
pub const REDACTED: &str = "[redacted]";

/// JWK members that are secret: the symmetric key and the private parts of
/// RSA, EC and OKP keys (RFC 7518 §6).
const SECRET_MEMBERS: &[&str] = &["k", "d", "p", "q", "dp", "dq", "qi", "oth"];

/// A filter config (JSON text) with every inline JWKS's secrets redacted;
/// text that is not JSON is returned as it is (no filter config we emit is).
pub fn filter_config(text: &str) -> String {
    let Ok(mut config) = serde_json::from_str::<Value>(text) else {
        return text.to_owned();
    };
    if !redact_jwks_in(&mut config) {
        return text.to_owned();
    }
    serde_json::to_string(&config).unwrap_or_else(|_| REDACTED.to_owned())
}

/// Redacts below `value`; whether anything changed.
fn redact_jwks_in(value: &mut Value) -> bool {
    match value {
        Value::Object(map) => {
            let mut changed = false;
            if let Some(Value::String(inline)) = map
                .get_mut("localJWKS")
                .and_then(|jwks| jwks.get_mut("inline"))
            {
                let redacted = jwks(inline);
                changed = redacted != *inline;
                *inline = redacted;
            }
            for (key, child) in map.iter_mut() {
                if key != "localJWKS" {
                    changed |= redact_jwks_in(child);
                }
            }
            changed
        }
        Value::Array(items) => items.iter_mut().fold(false, |c, v| redact_jwks_in(v) | c),
        _ => false,
    }
}

/// A JWKS (JSON text) with each key's secret members redacted; a set that is
/// not JSON is redacted whole.
fn jwks(text: &str) -> String {
    let Ok(mut set) = serde_json::from_str::<Value>(text) else {
        return REDACTED.to_owned();
    };
    let mut changed = false;
    if let Some(keys) = set.get_mut("keys").and_then(Value::as_array_mut) {
        for key in keys.iter_mut().filter_map(Value::as_object_mut) {
            for member in SECRET_MEMBERS {
                if let Some(secret) = key.get_mut(*member) {
                    *secret = Value::String(REDACTED.to_owned());
                    changed = true;
                }
            }
        }
    }
    if !changed {
        return text.to_owned();
    }
    serde_json::to_string(&set).unwrap_or_else(|_| REDACTED.to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn inline(config: &str, route: &str) -> Value {
        let config: Value = serde_json::from_str(config).unwrap();
        let text = config["routes"][route]["providers"][0]["localJWKS"]["inline"]
            .as_str()
            .unwrap();
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn an_hmac_key_in_an_envelope_route_is_redacted_and_the_rest_kept() {
        let jwks = json!({"keys": [
            {"kty": "oct", "kid": "demo", "alg": "HS256", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "pub", "n": "AQAB", "e": "AQAB"},
        ]});
        let config = json!({"routes": {"r": {"providers": [
            {"name": "p", "localJWKS": {"type": "Inline", "inline": jwks.to_string()}}
        ]}}});
        let redacted = inline(&filter_config(&config.to_string()), "r");
        assert_eq!(redacted["keys"][0]["k"], REDACTED);
        assert_eq!(redacted["keys"][0]["kid"], "demo");
        assert_eq!(redacted["keys"][1], jwks["keys"][1], "public keys stay");
    }

    #[test]
    fn private_members_of_asymmetric_keys_are_redacted() {
        let set =
            json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "d": "secret"}]});
        let out: Value = serde_json::from_str(&jwks(&set.to_string())).unwrap();
        assert_eq!(out["keys"][0]["d"], REDACTED);
        assert_eq!(out["keys"][0]["x"], "x");
    }

    #[test]
    fn configs_without_secrets_are_left_byte_for_byte() {
        let text = r#"{"routes":{"r":{"request":{"set":[{"name":"k","value":"v"}]}}}}"#;
        assert_eq!(filter_config(text), text);
        let public = r#"{"providers":[{"name":"p","localJWKS":{"inline":"{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}"}}]}"#;
        assert_eq!(filter_config(public), public);
    }

    #[test]
    fn an_inline_set_that_is_not_json_is_redacted_whole() {
        assert_eq!(jwks("not json k=secret"), REDACTED);
    }
}
