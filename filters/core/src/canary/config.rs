//! JSON configuration of the canary filter (docs/filters/canary.md).
//! Unknown fields are errors. `Serialize` writes the same shape back, leaving
//! out what is unset, so the controller emits a policy as this very type.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CanaryConfig {
    /// The request header the selection is written to (default `x-tollgate-backend`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    pub backends: Vec<BackendConfig>,
    /// Tried in order; the first whose match holds picks the backend.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<StickyConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    pub name: String,
    /// Gateway API `backendRef.weight`: default 1, 0 gets no weighted traffic.
    /// Signed so that a negative weight gets our message, not serde's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    #[serde(rename = "match")]
    pub matches: MatchConfig,
    pub backend: String,
}

/// Every condition must hold (an empty match holds for every request).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MatchConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<ValueMatchConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<ValueMatchConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cookies: Vec<ValueMatchConfig>,
}

/// Gateway API's `HTTPHeaderMatch` shape.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ValueMatchConfig {
    pub name: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<MatchType>,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum MatchType {
    Exact,
    RegularExpression,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StickyConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_cookie: Option<SetCookieConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SetCookieConfig {
    /// Default: the sticky cookie's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `Max-Age` in seconds; a session cookie when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serializes_back_to_the_shape_it_reads() {
        let doc = json!({
            "header": "x-b",
            "backends": [{"name": "a", "weight": 2}, {"name": "b"}],
            "rules": [{"match": {"headers": [{"name": "env", "type": "Exact", "value": "c"}],
                                 "cookies": [{"name": "k", "value": "v"}]},
                       "backend": "b"}],
            "sticky": {"cookie": "s", "setCookie": {"maxAge": 60}}
        });
        let config: CanaryConfig = serde_json::from_value(doc.clone()).unwrap();
        assert_eq!(serde_json::to_value(&config).unwrap(), doc);
    }
}
