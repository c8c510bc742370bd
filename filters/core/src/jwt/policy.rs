//! The compiled JWT policy: every provider validated once, at configure time.

use std::time::Duration;

use super::config::{
    ClaimToHeaderConfig, JwtConfig, LocalJwksConfig, ProviderConfig, RemoteJwksConfig,
};
use super::extract::TokenSource;
use super::jwks::{self, Jwks};
use crate::{duration, http_field, ConfigError};

/// Clock skew allowed on `exp`/`nbf`/`iat` unless a provider says otherwise.
pub const DEFAULT_CLOCK_SKEW_SECONDS: u64 = 60;
/// Largest skew accepted: beyond an hour, expiry stops meaning much.
pub const MAX_CLOCK_SKEW_SECONDS: u64 = 3600;
/// How long fetched keys are used before they are refreshed.
pub const DEFAULT_CACHE_DURATION: Duration = Duration::from_secs(300);
/// How long a JWKS fetch (and a request waiting for the first one) may take.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct JwtPolicy {
    pub providers: Vec<Provider>,
    pub optional: bool,
    pub fail_open: bool,
    /// Keys of inline JWKS that were skipped (the filter logs these at configure time).
    pub warnings: Vec<String>,
}

#[derive(Debug)]
pub struct Provider {
    pub name: String,
    pub issuer: Option<String>,
    pub audiences: Vec<String>,
    pub keys: KeySource,
    pub claim_to_headers: Vec<ClaimToHeader>,
    /// Where the token may be, in order; never empty.
    pub sources: Vec<TokenSource>,
    pub clock_skew_seconds: u64,
    pub forward: bool,
    pub recompute_route: bool,
}

#[derive(Debug)]
pub enum KeySource {
    /// An inline JWKS, parsed into verification keys once.
    Local(Jwks),
    Remote(RemoteJwks),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJwks {
    pub uri: String,
    /// Envoy cluster the fetch goes to.
    pub cluster: String,
    /// `:authority` of the fetch.
    pub authority: String,
    /// `:path` of the fetch (with query).
    pub path: String,
    pub cache_duration: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToHeader {
    /// Lower-case header name.
    pub header: String,
    /// The claim's path: `org.team` is `["org", "team"]`.
    pub claim: Vec<String>,
}

impl JwtPolicy {
    pub fn compile(config: JwtConfig) -> Result<Self, ConfigError> {
        if config.providers.is_empty() {
            return Err(ConfigError::new(
                "providers",
                "at least one provider is required",
            ));
        }
        let mut providers: Vec<Provider> = Vec::with_capacity(config.providers.len());
        let mut warnings = Vec::new();
        for (i, p) in config.providers.into_iter().enumerate() {
            let at = format!("providers[{i}]");
            let provider = compile_provider(p, &mut warnings).map_err(|e| e.within(&at))?;
            if providers.iter().any(|q| q.name == provider.name) {
                return Err(ConfigError::new(
                    format!("{at}.name"),
                    format!("provider name `{}` is used twice", provider.name),
                ));
            }
            providers.push(provider);
        }
        Ok(JwtPolicy {
            providers,
            optional: config.optional,
            fail_open: config.fail_open,
            warnings,
        })
    }
}

fn compile_provider(
    p: ProviderConfig,
    warnings: &mut Vec<String>,
) -> Result<Provider, ConfigError> {
    if p.name.is_empty() {
        return Err(ConfigError::new("name", "provider name is empty"));
    }
    if p.issuer.as_deref() == Some("") {
        return Err(ConfigError::new(
            "issuer",
            "issuer is empty; leave it out to accept any issuer",
        ));
    }
    if let Some(i) = p.audiences.iter().position(String::is_empty) {
        return Err(ConfigError::new(
            format!("audiences[{i}]"),
            "audience is empty",
        ));
    }
    let keys = match (p.remote_jwks, p.local_jwks) {
        (Some(remote), None) => {
            KeySource::Remote(compile_remote(remote).map_err(|e| e.within("remoteJWKS"))?)
        }
        (None, Some(local)) => {
            let (keys, skipped) = compile_local(local).map_err(|e| e.within("localJWKS"))?;
            let name = &p.name;
            warnings.extend(
                skipped
                    .into_iter()
                    .map(|s| format!("provider {name}: localJWKS {s} (skipped)")),
            );
            KeySource::Local(keys)
        }
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "",
                "set either remoteJWKS or localJWKS, not both",
            ));
        }
        (None, None) => {
            return Err(ConfigError::new(
                "",
                "a provider needs remoteJWKS or localJWKS",
            ))
        }
    };
    let clock_skew_seconds = p.clock_skew_seconds.unwrap_or(DEFAULT_CLOCK_SKEW_SECONDS);
    if clock_skew_seconds > MAX_CLOCK_SKEW_SECONDS {
        return Err(ConfigError::new(
            "clockSkewSeconds",
            format!("{clock_skew_seconds} is more than the {MAX_CLOCK_SKEW_SECONDS} allowed"),
        ));
    }
    Ok(Provider {
        name: p.name,
        issuer: p.issuer,
        audiences: p.audiences,
        keys,
        claim_to_headers: compile_claim_headers(&p.claim_to_headers)?,
        sources: TokenSource::compile(p.extract_from.as_ref())
            .map_err(|e| e.within("extractFrom"))?,
        clock_skew_seconds,
        forward: p.forward,
        recompute_route: p.recompute_route,
    })
}

fn compile_claim_headers(list: &[ClaimToHeaderConfig]) -> Result<Vec<ClaimToHeader>, ConfigError> {
    let mut out: Vec<ClaimToHeader> = Vec::with_capacity(list.len());
    for (i, c) in list.iter().enumerate() {
        let header = http_field::header_name(&format!("claimToHeaders[{i}].header"), &c.header)?;
        if out.iter().any(|o| o.header == header) {
            return Err(ConfigError::new(
                format!("claimToHeaders[{i}].header"),
                format!("`{header}` is listed twice"),
            ));
        }
        let claim: Vec<String> = c.claim.split('.').map(str::to_string).collect();
        if claim.iter().any(String::is_empty) {
            return Err(ConfigError::new(
                format!("claimToHeaders[{i}].claim"),
                format!(
                    "`{}` is not a claim name (empty part between dots)",
                    c.claim
                ),
            ));
        }
        out.push(ClaimToHeader { header, claim });
    }
    Ok(out)
}

fn compile_local(local: LocalJwksConfig) -> Result<(Jwks, Vec<String>), ConfigError> {
    jwks::parse(&local.inline).map_err(|why| ConfigError::new("inline", why))
}

fn compile_remote(remote: RemoteJwksConfig) -> Result<RemoteJwks, ConfigError> {
    let (authority, path) = split_uri(&remote.uri).ok_or_else(|| {
        ConfigError::new(
            "uri",
            format!("`{}` is not an absolute http(s) URI like https://issuer.example/.well-known/jwks.json", remote.uri),
        )
    })?;
    let cluster = match remote.cluster {
        Some(c) if c.is_empty() => return Err(ConfigError::new("cluster", "cluster is empty")),
        Some(c) => c,
        None => authority
            .split(':')
            .next()
            .unwrap_or(&authority)
            .to_string(),
    };
    let cache_duration = remote
        .cache_duration
        .map(|d| duration::parse("cacheDuration", &d))
        .transpose()?
        .unwrap_or(DEFAULT_CACHE_DURATION);
    if cache_duration < Duration::from_secs(1) {
        return Err(ConfigError::new("cacheDuration", "must be at least 1s"));
    }
    let timeout = duration::timeout("timeout", remote.timeout.as_deref(), DEFAULT_FETCH_TIMEOUT)?;
    Ok(RemoteJwks {
        uri: remote.uri,
        cluster,
        authority,
        path,
        cache_duration,
        timeout,
    })
}

/// `(authority, path)` of an absolute http(s) URI; the path defaults to `/`.
fn split_uri(uri: &str) -> Option<(String, String)> {
    let rest = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"))?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    let valid_authority = !authority.is_empty()
        && !authority.contains('@')
        && authority
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:[]_".contains(c));
    let valid_path = path.chars().all(|c| c.is_ascii_graphic());
    (valid_authority && valid_path).then(|| (authority.to_string(), path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::from_value;
    use serde_json::json;

    const JWKS: &str =
        r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}, {"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}"#;

    fn compile(v: serde_json::Value) -> Result<JwtPolicy, ConfigError> {
        JwtPolicy::compile(from_value(v)?)
    }

    #[test]
    fn envoy_gateway_shapes_compile_with_defaults() {
        let p = compile(json!({"providers": [
            {"name": "example", "remoteJWKS": {"uri": "https://raw.example.com/jwks.json"}},
            {"name": "local", "issuer": "https://iss", "audiences": ["a"],
             "localJWKS": {"type": "Inline", "inline": JWKS},
             "claimToHeaders": [{"header": "X-Team", "claim": "org.team"}]}
        ]}))
        .unwrap();
        assert!(!p.optional && !p.fail_open);
        assert_eq!(
            p.warnings.len(),
            1,
            "the short RSA key is skipped: {:?}",
            p.warnings
        );
        let KeySource::Local(keys) = &p.providers[1].keys else {
            panic!("local")
        };
        assert_eq!(keys.keys.len(), 1);
        let KeySource::Remote(remote) = &p.providers[0].keys else {
            panic!("remote")
        };
        assert_eq!(remote.cluster, "raw.example.com");
        assert_eq!(remote.authority, "raw.example.com");
        assert_eq!(remote.path, "/jwks.json");
        assert_eq!(remote.cache_duration, DEFAULT_CACHE_DURATION);
        assert_eq!(remote.timeout, DEFAULT_FETCH_TIMEOUT);
        assert_eq!(p.providers[0].clock_skew_seconds, 60);
        assert!(!p.providers[0].forward && !p.providers[0].recompute_route);
        assert_eq!(
            p.providers[1].claim_to_headers,
            [ClaimToHeader {
                header: "x-team".into(),
                claim: vec!["org".into(), "team".into()]
            }]
        );
    }

    #[test]
    fn remote_jwks_settings() {
        let p = compile(json!({"providers": [{"name": "p", "remoteJWKS": {
            "uri": "http://idp:8080?x=1", "cluster": "idp-cluster", "cacheDuration": "10m", "timeout": "500ms"
        }}]}))
        .unwrap();
        let KeySource::Remote(r) = &p.providers[0].keys else {
            panic!("remote")
        };
        assert_eq!(
            (r.cluster.as_str(), r.authority.as_str(), r.path.as_str()),
            ("idp-cluster", "idp:8080", "/?x=1")
        );
        assert_eq!(
            (r.cache_duration, r.timeout),
            (Duration::from_secs(600), Duration::from_millis(500))
        );
    }

    #[test]
    fn bad_configs_name_the_field() {
        let remote = json!({"uri": "https://idp/jwks"});
        let cases = [
            (json!({"providers": []}), "providers"),
            (
                json!({"providers": [{"name": "", "remoteJWKS": remote}]}),
                "providers[0].name",
            ),
            (
                json!({"providers": [{"name": "a", "remoteJWKS": remote}, {"name": "a", "remoteJWKS": remote}]}),
                "providers[1].name",
            ),
            (json!({"providers": [{"name": "a"}]}), "providers[0]"),
            (
                json!({"providers": [{"name": "a", "remoteJWKS": remote, "localJWKS": {"inline": JWKS}}]}),
                "providers[0]",
            ),
            (
                json!({"providers": [{"name": "a", "remoteJWKS": {"uri": "ftp://x/y"}}]}),
                "providers[0].remoteJWKS.uri",
            ),
            (
                json!({"providers": [{"name": "a", "remoteJWKS": {"uri": "https:///y"}}]}),
                "providers[0].remoteJWKS.uri",
            ),
            (
                json!({"providers": [{"name": "a", "remoteJWKS": {"uri": "https://x", "timeout": "5"}}]}),
                "providers[0].remoteJWKS.timeout",
            ),
            (
                json!({"providers": [{"name": "a", "remoteJWKS": {"uri": "https://x", "cacheDuration": "0s"}}]}),
                "providers[0].remoteJWKS.cacheDuration",
            ),
            (
                json!({"providers": [{"name": "a", "localJWKS": {"inline": "{"}}]}),
                "providers[0].localJWKS.inline",
            ),
            (
                json!({"providers": [{"name": "a", "localJWKS": {"inline": "{\"keys\": []}"}}]}),
                "providers[0].localJWKS.inline",
            ),
            (
                json!({"providers": [{"name": "a", "localJWKS": {"type": "ValueRef", "inline": JWKS}}]}),
                "providers[0].localJWKS.type",
            ),
            (
                json!({"providers": [{"name": "a", "issuer": "", "remoteJWKS": remote}]}),
                "providers[0].issuer",
            ),
            (
                json!({"providers": [{"name": "a", "audiences": ["x", ""], "remoteJWKS": remote}]}),
                "providers[0].audiences[1]",
            ),
            (
                json!({"providers": [{"name": "a", "remoteJWKS": remote, "claimToHeaders": [{"header": "x y", "claim": "sub"}]}]}),
                "providers[0].claimToHeaders[0].header",
            ),
            (
                json!({"providers": [{"name": "a", "remoteJWKS": remote, "claimToHeaders": [{"header": "x", "claim": "a..b"}]}]}),
                "providers[0].claimToHeaders[0].claim",
            ),
            (
                json!({"providers": [{"name": "a", "remoteJWKS": remote, "claimToHeaders": [{"header": "x", "claim": "a"}, {"header": "X", "claim": "b"}]}]}),
                "providers[0].claimToHeaders[1].header",
            ),
            (
                json!({"providers": [{"name": "a", "remoteJWKS": remote, "clockSkewSeconds": 7200}]}),
                "providers[0].clockSkewSeconds",
            ),
            (
                json!({"providers": [{"name": "a", "remoteJWKS": remote, "extractFrom": {}}]}),
                "providers[0].extractFrom",
            ),
            (
                json!({"providers": [{"name": "a", "remoteJWKS": remote, "extractFrom": {"params": [""]}}]}),
                "providers[0].extractFrom.params[0]",
            ),
            (
                json!({"providers": [{"name": "a", "remoteJWKS": remote, "audience": ["x"]}]}),
                "providers[0].audience",
            ),
        ];
        for (config, field) in cases {
            let e = compile(config.clone()).unwrap_err();
            assert_eq!(e.field, field, "{config} -> {e}");
        }
    }
}
