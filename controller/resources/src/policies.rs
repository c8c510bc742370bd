//! Tollgate's policy kinds (`tollgate.dev/v1alpha1`) and the two Envoy Gateway
//! kinds accepted for migration (`gateway.envoyproxy.io/v1alpha1`
//! `BackendTrafficPolicy` with `rateLimit`, `SecurityPolicy` with `jwt`).
//!
//! Each is `spec.targetRefs` plus one filter config under one key, and that
//! config is the filter's own type from `tollgate-core` (docs/design.md): what the
//! YAML says is exactly what the filter is given. Unknown fields are refused
//! at load with their path, so an Envoy Gateway field Tollgate does not
//! implement (`retry`, `oidc`, …) is an error, never a silent no-op.

use serde::Deserialize;
use tollgate_core::canary::config::CanaryConfig;
use tollgate_core::catalogue::FilterKind;
use tollgate_core::headers::HeaderModConfig;
use tollgate_core::jwt::config::JwtConfig;
use tollgate_core::ratelimit::config::RateLimitConfig;

use super::meta::ObjectMeta;

pub const TOLLGATE_GROUP: &str = "tollgate.dev";
pub const ENVOY_GATEWAY_GROUP: &str = "gateway.envoyproxy.io";

/// The policy kinds, each named as its YAML `kind` (which all end in `Policy`).
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyKind {
    RateLimitPolicy,
    JwtPolicy,
    HeaderPolicy,
    CanaryPolicy,
    BackendTrafficPolicy,
    SecurityPolicy,
}

impl PolicyKind {
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::RateLimitPolicy => "RateLimitPolicy",
            PolicyKind::JwtPolicy => "JWTPolicy",
            PolicyKind::HeaderPolicy => "HeaderPolicy",
            PolicyKind::CanaryPolicy => "CanaryPolicy",
            PolicyKind::BackendTrafficPolicy => "BackendTrafficPolicy",
            PolicyKind::SecurityPolicy => "SecurityPolicy",
        }
    }

    /// Every policy kind.
    pub const ALL: [PolicyKind; 6] = [
        PolicyKind::RateLimitPolicy,
        PolicyKind::JwtPolicy,
        PolicyKind::HeaderPolicy,
        PolicyKind::CanaryPolicy,
        PolicyKind::BackendTrafficPolicy,
        PolicyKind::SecurityPolicy,
    ];

    /// The resource's plural name, as its API path has it (`jwtpolicies`).
    pub fn plural(self) -> String {
        let name = self.name().to_ascii_lowercase();
        format!("{}ies", name.trim_end_matches('y'))
    }

    pub fn group(self) -> &'static str {
        match self {
            PolicyKind::BackendTrafficPolicy | PolicyKind::SecurityPolicy => ENVOY_GATEWAY_GROUP,
            _ => TOLLGATE_GROUP,
        }
    }

    /// The filter a policy of this kind configures.
    pub fn filter(self) -> FilterKind {
        match self {
            PolicyKind::JwtPolicy | PolicyKind::SecurityPolicy => FilterKind::Jwt,
            PolicyKind::RateLimitPolicy | PolicyKind::BackendTrafficPolicy => FilterKind::RateLimit,
            PolicyKind::HeaderPolicy => FilterKind::Headers,
            PolicyKind::CanaryPolicy => FilterKind::Canary,
        }
    }

    /// The kind a `(group, kind)` pair names, as in an apiVersion or an
    /// HTTPRoute rule's `extensionRef`.
    pub fn from_group_kind(group: &str, kind: &str) -> Option<PolicyKind> {
        Self::ALL
            .into_iter()
            .find(|k| k.group() == group && k.name() == kind)
    }
}

/// One policy object as the API stores it, whatever its kind (the filters'
/// compiled programs are `tollgate_core`'s `*Policy` types).
#[derive(Debug, Clone)]
pub struct PolicyObject {
    pub kind: PolicyKind,
    pub metadata: ObjectMeta,
    pub target_refs: Vec<TargetRef>,
    pub config: FilterConfig,
}

/// The filter a policy configures, with its config.
#[derive(Debug, Clone)]
pub enum FilterConfig {
    Jwt(JwtConfig),
    RateLimit(RateLimitConfig),
    Headers(HeaderModConfig),
    Canary(CanaryConfig),
}

/// `LocalPolicyTargetReferenceWithSectionName` (GEP-713): the target is in
/// the policy's namespace.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetRef {
    pub group: String,
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub section_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Object<S> {
    metadata: ObjectMeta,
    spec: S,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RateLimitSpec {
    target_refs: Vec<TargetRef>,
    rate_limit: RateLimitConfig,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JwtSpec {
    target_refs: Vec<TargetRef>,
    jwt: JwtConfig,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HeaderSpec {
    target_refs: Vec<TargetRef>,
    headers: HeaderModConfig,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CanarySpec {
    target_refs: Vec<TargetRef>,
    canary: CanaryConfig,
}

/// Envoy Gateway's older single `targetRef` is accepted next to `targetRefs`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BackendTrafficSpec {
    #[serde(default)]
    target_ref: Option<TargetRef>,
    #[serde(default)]
    target_refs: Vec<TargetRef>,
    rate_limit: RateLimitConfig,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SecuritySpec {
    #[serde(default)]
    target_ref: Option<TargetRef>,
    #[serde(default)]
    target_refs: Vec<TargetRef>,
    jwt: JwtConfig,
}

/// The JSON schema of a Tollgate policy kind's `spec`, for its CRD; `None`
/// for the Envoy Gateway kinds (their CRDs are Envoy Gateway's).
#[cfg(feature = "schema")]
pub fn spec_schema(
    kind: PolicyKind,
    generator: &mut schemars::SchemaGenerator,
) -> Option<schemars::Schema> {
    Some(match kind {
        PolicyKind::RateLimitPolicy => generator.root_schema_for::<RateLimitSpec>(),
        PolicyKind::JwtPolicy => generator.root_schema_for::<JwtSpec>(),
        PolicyKind::HeaderPolicy => generator.root_schema_for::<HeaderSpec>(),
        PolicyKind::CanaryPolicy => generator.root_schema_for::<CanarySpec>(),
        PolicyKind::BackendTrafficPolicy | PolicyKind::SecurityPolicy => return None,
    })
}

impl PolicyObject {
    /// Parses one YAML document of kind `kind`; the error is serde_yaml_ng's,
    /// with its location and field path.
    pub fn from_yaml(kind: PolicyKind, doc: &str) -> Result<PolicyObject, serde_yaml_ng::Error> {
        PolicyObject::deserialize(kind, serde_yaml_ng::Deserializer::from_str(doc))
    }

    /// A policy of kind `kind` from any serde data (the loader types the
    /// document it has parsed already).
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        kind: PolicyKind,
        de: D,
    ) -> Result<PolicyObject, D::Error> {
        fn both(one: Option<TargetRef>, mut many: Vec<TargetRef>) -> Vec<TargetRef> {
            many.extend(one);
            many
        }
        let (metadata, target_refs, config) = match kind {
            PolicyKind::RateLimitPolicy => {
                let o = Object::<RateLimitSpec>::deserialize(de)?;
                let s = o.spec;
                (
                    o.metadata,
                    s.target_refs,
                    FilterConfig::RateLimit(s.rate_limit),
                )
            }
            PolicyKind::JwtPolicy => {
                let o = Object::<JwtSpec>::deserialize(de)?;
                (
                    o.metadata,
                    o.spec.target_refs,
                    FilterConfig::Jwt(o.spec.jwt),
                )
            }
            PolicyKind::HeaderPolicy => {
                let o = Object::<HeaderSpec>::deserialize(de)?;
                let s = o.spec;
                (o.metadata, s.target_refs, FilterConfig::Headers(s.headers))
            }
            PolicyKind::CanaryPolicy => {
                let o = Object::<CanarySpec>::deserialize(de)?;
                let s = o.spec;
                (o.metadata, s.target_refs, FilterConfig::Canary(s.canary))
            }
            PolicyKind::BackendTrafficPolicy => {
                let o = Object::<BackendTrafficSpec>::deserialize(de)?;
                let s = o.spec;
                let targets = both(s.target_ref, s.target_refs);
                (o.metadata, targets, FilterConfig::RateLimit(s.rate_limit))
            }
            PolicyKind::SecurityPolicy => {
                let o = Object::<SecuritySpec>::deserialize(de)?;
                let s = o.spec;
                let targets = both(s.target_ref, s.target_refs);
                (o.metadata, targets, FilterConfig::Jwt(s.jwt))
            }
        };
        Ok(PolicyObject {
            kind,
            metadata,
            target_refs,
            config,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_gateway_backend_traffic_policy_loads_as_a_rate_limit_policy() {
        let doc = "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {name: p, namespace: default}\nspec:\n  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}\n  rateLimit:\n    type: Local\n    local:\n      rules:\n      - limit: {requests: 3, unit: Hour}\n";
        let policy = PolicyObject::from_yaml(PolicyKind::BackendTrafficPolicy, doc).unwrap();
        assert_eq!(policy.target_refs.len(), 1);
        assert_eq!(policy.target_refs[0].name, "r");
        assert!(matches!(policy.config, FilterConfig::RateLimit(_)));
    }

    #[test]
    fn an_envoy_gateway_field_tollgate_lacks_is_refused_with_its_path() {
        let doc = "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {name: p}\nspec:\n  targetRefs: []\n  retry: {numRetries: 3}\n  rateLimit: {local: {rules: []}}\n";
        let err = PolicyObject::from_yaml(PolicyKind::BackendTrafficPolicy, doc).unwrap_err();
        assert!(err.to_string().contains("retry"), "{err}");
    }

    #[test]
    fn a_typo_inside_the_filter_config_names_the_field() {
        let doc = "kind: HeaderPolicy\nmetadata: {name: p}\nspec:\n  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: g}]\n  headers:\n    request: {sett: [{name: a, value: b}]}\n";
        let err = PolicyObject::from_yaml(PolicyKind::HeaderPolicy, doc).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("spec.headers.request") && text.contains("sett"),
            "{text}"
        );
    }

    #[test]
    fn group_and_kind_name_the_policy_kind() {
        assert_eq!(
            PolicyKind::from_group_kind("tollgate.dev", "JWTPolicy"),
            Some(PolicyKind::JwtPolicy)
        );
        assert_eq!(
            PolicyKind::from_group_kind("gateway.envoyproxy.io", "SecurityPolicy"),
            Some(PolicyKind::SecurityPolicy)
        );
        assert_eq!(
            PolicyKind::from_group_kind("tollgate.dev", "SecurityPolicy"),
            None
        );
    }
}
