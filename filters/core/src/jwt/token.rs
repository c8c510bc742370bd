//! Decoding a JWS compact serialization (`header.payload.signature`) without
//! trusting any of it: size, shape, base64url and JSON are checked here; the
//! signature is checked by the verifier with the keys the header points at.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

/// Longest token accepted. Real tokens are a few KiB; a bigger one is refused
/// before any decoding work (Envoy's own header limit is 60 KiB for all headers).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A decoded, not yet verified token.
#[derive(Debug, Clone)]
pub struct Token<'a> {
    pub alg: String,
    pub kid: Option<String>,
    pub claims: Map<String, Value>,
    /// `header.payload`, the bytes the signature covers.
    pub signing_input: &'a str,
    pub signature: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("unsupported algorithm `{0}`")]
    UnsupportedAlgorithm(String),
}

fn malformed(why: impl Into<String>) -> TokenError {
    TokenError::Malformed(why.into())
}

/// Decodes `token`; nothing here panics whatever the input.
pub fn decode(token: &str) -> Result<Token<'_>, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(malformed(format!(
            "{} bytes, more than {MAX_TOKEN_BYTES}",
            token.len()
        )));
    }
    let segments: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = segments.as_slice() else {
        return Err(malformed(format!(
            "{} segments, expected 3",
            segments.len()
        )));
    };
    let header = json_object(header, "header")?;
    let claims = json_object(payload, "payload")?;
    let signature = base64url(signature, "signature")?;
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg.clone(),
        _ => return Err(malformed("header has no `alg`")),
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err(TokenError::UnsupportedAlgorithm(alg));
    }
    // RFC 7515 §4.1.11: a `crit` extension we do not implement must fail the token.
    if header.contains_key("crit") {
        return Err(malformed(
            "header has `crit` extensions, which are not supported",
        ));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(malformed("`kid` is not a string")),
    };
    let signing_input = &token[..token.len() - segments[2].len() - 1];
    Ok(Token {
        alg,
        kid,
        claims,
        signing_input,
        signature,
    })
}

fn base64url(segment: &str, what: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|e| malformed(format!("{what} is not base64url: {e}")))
}

fn json_object(segment: &str, what: &str) -> Result<Map<String, Value>, TokenError> {
    let bytes = base64url(segment, what)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(malformed(format!("{what} is not a JSON object"))),
        Err(e) => Err(malformed(format!("{what} is not JSON: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(payload), b64("sig"))
    }

    #[test]
    fn decodes_header_claims_and_signing_input() {
        let t = token(
            r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#,
            r#"{"sub":"alice"}"#,
        );
        let d = decode(&t).unwrap();
        assert_eq!(d.alg, "RS256");
        assert_eq!(d.kid.as_deref(), Some("k1"));
        assert_eq!(d.claims["sub"], "alice");
        assert_eq!(d.signature, b"sig");
        assert_eq!(d.signing_input, &t[..t.rfind('.').unwrap()]);
    }

    #[test]
    fn hostile_tokens_are_refused_with_a_reason() {
        let cases = [
            ("a.b".to_string(), "2 segments"),
            ("a.b.c.d".to_string(), "4 segments"),
            (
                format!("{}.{}.***", b64(r#"{"alg":"HS256"}"#), b64("{}")),
                "signature is not base64url",
            ),
            (
                format!("{}.{}.", b64("not json"), b64("{}")),
                "header is not JSON",
            ),
            (
                format!("{}.{}.", b64(r#"{"alg":"HS256"}"#), b64("[1]")),
                "payload is not a JSON object",
            ),
            (token(r#"{"typ":"JWT"}"#, "{}"), "no `alg`"),
            (
                token(r#"{"alg":"HS256","kid":7}"#, "{}"),
                "`kid` is not a string",
            ),
            (token(r#"{"alg":"HS256","crit":["exp"]}"#, "{}"), "crit"),
            ("x".repeat(64 * 1024), "more than"),
        ];
        for (t, why) in cases {
            match decode(&t) {
                Err(TokenError::Malformed(m)) => {
                    assert!(m.contains(why), "{m} should mention {why}")
                }
                other => panic!("{why}: {other:?}"),
            }
        }
    }

    #[test]
    fn alg_none_is_unsupported() {
        for alg in ["none", "None", "NONE"] {
            let t = token(&format!(r#"{{"alg":"{alg}"}}"#), "{}");
            assert_eq!(
                decode(&t).unwrap_err(),
                TokenError::UnsupportedAlgorithm(alg.into())
            );
        }
    }
}
