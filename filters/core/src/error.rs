//! The one error type a filter config can fail with.
//!
//! Every rejection names the JSON field it is about, because the only place an
//! operator sees it is one line in Envoy's log at startup or reload.

use std::fmt;

/// A rejected configuration: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the offending field, e.g. `request.set[0].name`; empty for the whole document.
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Prepends `prefix` to the field path, so errors from a nested policy name
    /// their full location (`routes.api.request.set[0].name`).
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = join_path(prefix, &self.field);
        self
    }
}

/// Joins two dotted JSON paths, where either may be empty and the second may start with an index.
pub fn join_path(prefix: &str, rest: &str) -> String {
    match (prefix.is_empty(), rest.is_empty()) {
        (true, _) => rest.to_string(),
        (_, true) => prefix.to_string(),
        _ if rest.starts_with('[') => format!("{prefix}{rest}"),
        _ => format!("{prefix}.{rest}"),
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "invalid config: {}", self.message)
        } else {
            write!(f, "invalid config at `{}`: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Deserializes `value` into `T`, turning serde's message into a [`ConfigError`]
/// that names the field (serde_path_to_error tracks where deserialization stopped).
pub fn from_value<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { path };
        ConfigError::new(field, e.inner().to_string())
    })
}

/// Parses a plugin configuration document as JSON.
pub fn parse_json(bytes: &[u8]) -> Result<serde_json::Value, ConfigError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ConfigError::new(
            "",
            "the plugin configuration is empty; expected a JSON object",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| ConfigError::new("", format!("not valid JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_handles_indexes_and_empty_sides() {
        assert_eq!(
            join_path("routes.a", "request.set[0]"),
            "routes.a.request.set[0]"
        );
        assert_eq!(join_path("set", "[1].name"), "set[1].name");
        assert_eq!(join_path("", "x"), "x");
        assert_eq!(join_path("x", ""), "x");
    }

    #[test]
    fn display_names_the_field() {
        let e = ConfigError::new("request.set[0].name", "bad").within("routes.r1");
        assert_eq!(
            e.to_string(),
            "invalid config at `routes.r1.request.set[0].name`: bad"
        );
    }

    #[test]
    fn empty_and_invalid_json_are_rejected() {
        assert!(parse_json(b"  ").unwrap_err().message.contains("empty"));
        assert!(parse_json(b"{")
            .unwrap_err()
            .message
            .contains("not valid JSON"));
    }
}
