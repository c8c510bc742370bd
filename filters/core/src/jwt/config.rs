//! JSON configuration of the JWT filter: Envoy Gateway's `SecurityPolicy.jwt`
//! shape (plus `failOpen`, `clockSkewSeconds`, `forward` and the JWKS cache
//! settings). Unknown fields are errors. `Serialize` writes the same shape back,
//! leaving out what is unset, so the controller emits a policy as this very type.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JwtConfig {
    pub providers: Vec<ProviderConfig>,
    /// A request without a token passes; a bad token is still rejected.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// When keys cannot be had (JWKS unreachable), let requests through instead of 401.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_open: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProviderConfig {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The token's `aud` must contain one of these (when non-empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    #[serde(
        default,
        rename = "remoteJWKS",
        skip_serializing_if = "Option::is_none"
    )]
    pub remote_jwks: Option<RemoteJwksConfig>,
    #[serde(default, rename = "localJWKS", skip_serializing_if = "Option::is_none")]
    pub local_jwks: Option<LocalJwksConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claim_to_headers: Vec<ClaimToHeaderConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract_from: Option<ExtractFromConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew_seconds: Option<u64>,
    /// Keep the token on the request sent upstream (default: strip it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forward: bool,
    /// Re-select the route after the claim headers are set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recompute_route: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RemoteJwksConfig {
    pub uri: String,
    /// The Envoy cluster to call; default: the URI's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LocalJwksConfig {
    /// Envoy Gateway writes `type: Inline`; it is the only kind a filter config can carry.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<LocalJwksType>,
    pub inline: String,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum LocalJwksType {
    Inline,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ClaimToHeaderConfig {
    pub header: String,
    /// A claim name; dots reach into nested objects (`org.team`).
    pub claim: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ExtractFromConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderExtractorConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cookies: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HeaderExtractorConfig {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_prefix: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The controller emits a JWTPolicy's config by serialising this type: it
    /// must write back exactly what was read, defaults left out.
    #[test]
    fn serialising_writes_back_what_was_read() {
        let doc = json!({
            "providers": [{
                "name": "p", "issuer": "https://issuer", "audiences": ["a"],
                "remoteJWKS": {"uri": "https://issuer/jwks", "cluster": "idp", "cacheDuration": "5m", "timeout": "1s"},
                "claimToHeaders": [{"header": "x-sub", "claim": "sub"}],
                "extractFrom": {"headers": [{"name": "x-token", "valuePrefix": "T "}], "params": ["t"], "cookies": ["c"]},
                "clockSkewSeconds": 30, "forward": true, "recomputeRoute": true
            }, {
                "name": "local", "localJWKS": {"type": "Inline", "inline": "{}"}
            }],
            "optional": true,
            "failOpen": true
        });
        let config: JwtConfig = serde_json::from_value(doc.clone()).unwrap();
        assert_eq!(serde_json::to_value(&config).unwrap(), doc);
    }
}
