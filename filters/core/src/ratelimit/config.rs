//! JSON configuration of the rate limit filter: Envoy Gateway's
//! `BackendTrafficPolicy.rateLimit` (plus `service` for global mode and an
//! optional rule `name`). Unknown fields are errors.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RateLimitConfig {
    /// The older Envoy Gateway form says which of `local`/`global` applies.
    #[serde(default, rename = "type")]
    pub kind: Option<ModeConfig>,
    #[serde(default)]
    pub local: Option<RulesConfig>,
    #[serde(default)]
    pub global: Option<RulesConfig>,
    #[serde(default)]
    pub service: Option<ServiceConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ModeConfig {
    Local,
    Global,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    pub rules: Vec<RuleConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuleConfig {
    #[serde(default)]
    pub name: Option<String>,
    /// Every selector must match (AND); none means every request.
    #[serde(default)]
    pub client_selectors: Vec<SelectorConfig>,
    pub limit: LimitConfig,
    /// Count and report, never reject.
    #[serde(default)]
    pub shadow_mode: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SelectorConfig {
    #[serde(default)]
    pub headers: Vec<HeaderMatchConfig>,
    #[serde(default, rename = "sourceCIDR")]
    pub source_cidr: Option<SourceCidrConfig>,
    #[serde(default)]
    pub methods: Vec<MethodMatchConfig>,
    #[serde(default)]
    pub path: Option<PathMatchConfig>,
    #[serde(default)]
    pub query_params: Vec<HeaderMatchConfig>,
}

/// A header or query parameter condition.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatchConfig {
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: Option<ValueMatchType>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub invert: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ValueMatchType {
    Exact,
    RegularExpression,
    Distinct,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceCidrConfig {
    #[serde(default, rename = "type")]
    pub kind: Option<CidrMatchType>,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum CidrMatchType {
    Exact,
    Distinct,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodMatchConfig {
    pub value: String,
    #[serde(default)]
    pub invert: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathMatchConfig {
    #[serde(default, rename = "type")]
    pub kind: Option<PathMatchType>,
    pub value: String,
    #[serde(default)]
    pub invert: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum PathMatchType {
    Exact,
    PathPrefix,
    RegularExpression,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    pub requests: u64,
    pub unit: Unit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Unit {
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Unit {
    /// Window length: the dividers envoyproxy/ratelimit uses (a month is 30
    /// days, a year 365), so both modes count the same windows.
    pub fn seconds(self) -> u64 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 60,
            Unit::Hour => 3600,
            Unit::Day => 86_400,
            Unit::Week => 7 * 86_400,
            Unit::Month => 30 * 86_400,
            Unit::Year => 365 * 86_400,
        }
    }

    /// The `RateLimitResponse.RateLimit.Unit` name of the ratelimit API.
    pub fn api_name(self) -> &'static str {
        match self {
            Unit::Second => "SECOND",
            Unit::Minute => "MINUTE",
            Unit::Hour => "HOUR",
            Unit::Day => "DAY",
            Unit::Week => "WEEK",
            Unit::Month => "MONTH",
            Unit::Year => "YEAR",
        }
    }

    /// The `RateLimitUnit` number of the ratelimit API (WEEK, added last, is 7).
    pub fn api_code(self) -> i32 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 2,
            Unit::Hour => 3,
            Unit::Day => 4,
            Unit::Month => 5,
            Unit::Year => 6,
            Unit::Week => 7,
        }
    }

    /// The unit of a `RateLimitUnit` number; None for UNKNOWN (0) and numbers
    /// this build does not know.
    pub fn from_api_code(code: i32) -> Option<Unit> {
        [
            Unit::Second,
            Unit::Minute,
            Unit::Hour,
            Unit::Day,
            Unit::Week,
            Unit::Month,
            Unit::Year,
        ]
        .into_iter()
        .find(|u| u.api_code() == code)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceConfig {
    /// Envoy cluster of the rate limit service.
    pub cluster: String,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub failure_mode: Option<FailureModeConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureModeConfig {
    Allow,
    Deny,
}
