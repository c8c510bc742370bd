//! JSON configuration of the canary filter (DESIGN.md "Canary selection").
//! Unknown fields are errors.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CanaryConfig {
    /// The request header the selection is written to (default `x-tollgate-backend`).
    #[serde(default)]
    pub header: Option<String>,
    pub backends: Vec<BackendConfig>,
    /// Tried in order; the first whose match holds picks the backend.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    #[serde(default)]
    pub sticky: Option<StickyConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    pub name: String,
    /// Gateway API `backendRef.weight`: default 1, 0 gets no weighted traffic.
    /// Signed so that a negative weight gets our message, not serde's.
    #[serde(default)]
    pub weight: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    #[serde(rename = "match")]
    pub matches: MatchConfig,
    pub backend: String,
}

/// Every condition must hold (an empty match holds for every request).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MatchConfig {
    #[serde(default)]
    pub headers: Vec<ValueMatchConfig>,
    #[serde(default)]
    pub query_params: Vec<ValueMatchConfig>,
    #[serde(default)]
    pub cookies: Vec<ValueMatchConfig>,
}

/// Gateway API's `HTTPHeaderMatch` shape.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueMatchConfig {
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: Option<MatchType>,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum MatchType {
    Exact,
    RegularExpression,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StickyConfig {
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub cookie: Option<String>,
    #[serde(default)]
    pub set_cookie: Option<SetCookieConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SetCookieConfig {
    /// Default: the sticky cookie's name.
    #[serde(default)]
    pub name: Option<String>,
    /// `Max-Age` in seconds; a session cookie when absent.
    #[serde(default)]
    pub max_age: Option<u64>,
}
