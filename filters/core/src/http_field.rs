//! Validation of HTTP header names and values that a config asks a filter to write.
//!
//! Envoy would reject (or, worse, pass on) a header the codec cannot encode, so
//! these checks run at configure time and name the field; nothing malformed is
//! ever handed to the host on the request path.

use crate::ConfigError;

/// Longest header name accepted, as Gateway API's `HTTPHeaderName`.
pub const MAX_NAME_LEN: usize = 256;
/// Longest literal header value accepted, as Gateway API's `HTTPHeader.value`.
pub const MAX_VALUE_LEN: usize = 4096;

/// Validates a header name a filter will write and returns it lower-cased, the
/// form Envoy stores. Pseudo-headers (`:path`) and `host` (Envoy's `:authority`)
/// are refused, as Envoy's own `request_headers_to_add` refuses them: editing them
/// would silently change what the route matched on.
pub fn header_name(field: &str, name: &str) -> Result<String, ConfigError> {
    if name.is_empty() {
        return Err(ConfigError::new(field, "header name is empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(ConfigError::new(
            field,
            format!("header name is longer than {MAX_NAME_LEN} characters"),
        ));
    }
    if name.starts_with(':') {
        return Err(ConfigError::new(
            field,
            format!("`{name}` is a pseudo-header; pseudo-headers cannot be modified"),
        ));
    }
    if let Some(bad) = name.chars().find(|c| !is_token_char(*c)) {
        return Err(ConfigError::new(
            field,
            format!(
                "header name `{}` contains the illegal character {bad:?}",
                name.escape_debug()
            ),
        ));
    }
    let lower = name.to_ascii_lowercase();
    if lower == "host" {
        return Err(ConfigError::new(
            field,
            "`host` is Envoy's `:authority` pseudo-header and cannot be modified",
        ));
    }
    Ok(lower)
}

/// Validates a literal header value: no CR, LF, NUL or other control characters
/// (horizontal tab is allowed, as RFC 9110 allows it).
pub fn header_value(field: &str, value: &str) -> Result<(), ConfigError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(ConfigError::new(
            field,
            format!("header value is longer than {MAX_VALUE_LEN} bytes"),
        ));
    }
    if let Some(bad) = value.chars().find(|c| c.is_control() && *c != '\t') {
        return Err(ConfigError::new(
            field,
            format!("header value contains the control character {bad:?}; CR, LF and NUL can never appear in a header"),
        ));
    }
    Ok(())
}

/// Validates a cookie name (an RFC 6265 token; case is kept, cookie names are
/// case-sensitive).
pub fn cookie_name(field: &str, name: &str) -> Result<String, ConfigError> {
    if name.is_empty() {
        return Err(ConfigError::new(field, "cookie name is empty"));
    }
    if let Some(bad) = name.chars().find(|c| !is_token_char(*c)) {
        return Err(ConfigError::new(
            field,
            format!(
                "cookie name `{}` contains the illegal character {bad:?}",
                name.escape_debug()
            ),
        ));
    }
    Ok(name.to_string())
}

/// RFC 9110 `tchar`, the characters allowed in a header name.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercased() {
        assert_eq!(header_name("f", "X-Header-Set").unwrap(), "x-header-set");
    }

    #[test]
    fn illegal_names_are_rejected_with_the_field() {
        for bad in [
            "", "a b", "a:b", "x\r\ny", "é", ":path", ":status", "Host", "a/b",
        ] {
            let e = header_name("request.set[0].name", bad).unwrap_err();
            assert_eq!(e.field, "request.set[0].name", "{bad:?}");
        }
        assert!(header_name("f", &"a".repeat(257)).is_err());
        assert!(header_name("f", &"a".repeat(256)).is_ok());
    }

    #[test]
    fn values_with_control_characters_are_rejected() {
        for bad in ["a\rb", "a\nb", "a\0b", "\x7f"] {
            assert!(header_value("v", bad).is_err(), "{bad:?}");
        }
        assert!(header_value("v", "tab\tis fine, so is ünïcode").is_ok());
        assert!(header_value("v", &"x".repeat(4097)).is_err());
    }
}
