//! JSON configuration of the JWT filter: Envoy Gateway's `SecurityPolicy.jwt`
//! shape (plus `failOpen`, `clockSkewSeconds`, `forward` and the JWKS cache
//! settings). Unknown fields are errors.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JwtConfig {
    pub providers: Vec<ProviderConfig>,
    /// A request without a token passes; a bad token is still rejected.
    #[serde(default)]
    pub optional: bool,
    /// When keys cannot be had (JWKS unreachable), let requests through instead of 401.
    #[serde(default)]
    pub fail_open: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProviderConfig {
    pub name: String,
    #[serde(default)]
    pub issuer: Option<String>,
    /// The token's `aud` must contain one of these (when non-empty).
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default, rename = "remoteJWKS")]
    pub remote_jwks: Option<RemoteJwksConfig>,
    #[serde(default, rename = "localJWKS")]
    pub local_jwks: Option<LocalJwksConfig>,
    #[serde(default)]
    pub claim_to_headers: Vec<ClaimToHeaderConfig>,
    #[serde(default)]
    pub extract_from: Option<ExtractFromConfig>,
    #[serde(default)]
    pub clock_skew_seconds: Option<u64>,
    /// Keep the token on the request sent upstream (default: strip it).
    #[serde(default)]
    pub forward: bool,
    /// Re-select the route after the claim headers are set.
    #[serde(default)]
    pub recompute_route: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RemoteJwksConfig {
    pub uri: String,
    /// The Envoy cluster to call; default: the URI's host.
    #[serde(default)]
    pub cluster: Option<String>,
    #[serde(default)]
    pub cache_duration: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalJwksConfig {
    /// Envoy Gateway writes `type: Inline`; it is the only kind a filter config can carry.
    #[serde(default, rename = "type")]
    pub kind: Option<LocalJwksType>,
    pub inline: String,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub enum LocalJwksType {
    Inline,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimToHeaderConfig {
    pub header: String,
    /// A claim name; dots reach into nested objects (`org.team`).
    pub claim: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractFromConfig {
    #[serde(default)]
    pub headers: Vec<HeaderExtractorConfig>,
    #[serde(default)]
    pub params: Vec<String>,
    #[serde(default)]
    pub cookies: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HeaderExtractorConfig {
    pub name: String,
    #[serde(default)]
    pub value_prefix: Option<String>,
}
