//! The `cases.yaml` schema: what a conformance test sends and expects, step by
//! step. Field names are camelCase like the Gateway API's own; unknown fields
//! are an error so a typo cannot silently drop an expectation.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One test's `cases.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestSpec {
    /// What the test shows, in upstream's words where it has them.
    pub description: String,
    /// The upstream file(s) this test re-creates, or the guide it follows.
    pub upstream: String,
    pub steps: Vec<Step>,
}

/// A change to the configuration (none for the first step), then what must hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Step {
    /// Manifest files of this test to delete from the config directory first.
    #[serde(default)]
    pub remove: Vec<String>,
    #[serde(default)]
    pub status: StatusExpectations,
    #[serde(default)]
    pub cases: Vec<Case>,
    #[serde(default)]
    pub distributions: Vec<Distribution>,
}

/// One request and what must come back.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Case {
    /// Overrides the generated name (`<index> request to '<host><path>' …`).
    #[serde(default)]
    pub name: Option<String>,
    pub request: Request,
    #[serde(default)]
    pub expect: Expect,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Request {
    /// The `Host` header; absent means the gateway's address (`127.0.0.1:<port>`).
    #[serde(default)]
    pub host: Option<String>,
    /// Path and query.
    pub path: String,
    #[serde(default = "get")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The Gateway listener port as the manifests write it.
    #[serde(default = "http_port")]
    pub port: u16,
    #[serde(default)]
    pub scheme: Scheme,
    /// Response headers the echo backend is asked to set (sent to it as
    /// `X-Echo-Set-Header`), upstream's `BackendSetResponseHeaders`.
    #[serde(default)]
    pub backend_sets_response_headers: BTreeMap<String, String>,
}

fn get() -> String {
    "GET".to_owned()
}

fn http_port() -> u16 {
    80
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    #[default]
    Http,
    /// Against a TLS listener; the runner trusts the certificate in the
    /// listener's Secret and sends SNI = `host`.
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// Upstream `ExpectedResponse`, with its defaults: see [`super::check`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expect {
    /// Default 200.
    #[serde(default)]
    pub status: Option<u16>,
    /// The Service whose echo backend must answer (checked on a 200 only).
    #[serde(default)]
    pub backend: Option<String>,
    /// The namespace the answering backend runs in (checked on a 200 only).
    #[serde(default)]
    pub namespace: Option<String>,
    /// The request as the backend saw it (checked on a 200 only).
    #[serde(default)]
    pub request: Option<SeenRequest>,
    /// Response headers the client must get, or must not get.
    #[serde(default)]
    pub response: Option<HeaderExpectations>,
    /// For a 3xx: the parts of `Location` that must match.
    #[serde(default)]
    pub redirect: Option<Redirect>,
    /// Services (`namespace/name`) that must also receive the request, with its path.
    #[serde(default)]
    pub mirrored_to: Vec<String>,
}

/// The request as the backend saw it. `path` and `method` default to what was sent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeenRequest {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    /// Values of repeated headers are joined with `,`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub absent_headers: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderExpectations {
    /// Values of repeated headers are joined with `,`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub absent_headers: Vec<String>,
}

/// Upstream `RedirectRequest`: `scheme` defaults to the request's, `path` to
/// the request's path (without query); `host` and `port` are checked only when
/// given (`port: ""` means `Location` carries no port).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Redirect {
    #[serde(default)]
    pub scheme: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub port: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
}

/// Send `requests` copies of `request`; every answer must be a 200 from an
/// echo backend, and each backend's share must be within `tolerance` of its
/// expected fraction. Backends not listed must get nothing.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Distribution {
    pub request: Request,
    pub requests: u32,
    pub shares: BTreeMap<String, f64>,
    pub tolerance: f64,
}

/// Status the controller must report (the `status` document of
/// `tollgate translate`, or `tollgate serve`'s `/status`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusExpectations {
    #[serde(default)]
    pub routes: Vec<RouteStatusExpectation>,
    #[serde(default)]
    pub gateways: Vec<GatewayStatusExpectation>,
}

impl StatusExpectations {
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty() && self.gateways.is_empty()
    }
}

/// An HTTPRoute (`namespace/name`) and, for its parent `parent`
/// (`namespace/name` of the Gateway), conditions it must carry.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteStatusExpectation {
    pub name: String,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub conditions: Vec<ConditionExpectation>,
    /// Upstream `HTTPRouteMustHaveNoAcceptedParents`: no parent status says
    /// `Accepted: True`.
    #[serde(default)]
    pub no_accepted_parents: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayStatusExpectation {
    pub name: String,
    #[serde(default)]
    pub conditions: Vec<ConditionExpectation>,
    /// Routes attached over all listeners (upstream `GatewayMustHaveZeroRoutes` is 0).
    #[serde(default)]
    pub attached_routes: Option<u32>,
}

/// `reason` is checked only when given, as upstream does.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConditionExpectation {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: ConditionStatus,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `"True"`, `"False"`, `"Unknown"`; an unquoted `True`/`False` (a YAML
/// boolean) is taken too, so a missing pair of quotes is not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

impl<'de> Deserialize<'de> for ConditionStatus {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Bool(true) => Ok(ConditionStatus::True),
            Raw::Bool(false) => Ok(ConditionStatus::False),
            Raw::Text(text) => match text.as_str() {
                "True" => Ok(ConditionStatus::True),
                "False" => Ok(ConditionStatus::False),
                "Unknown" => Ok(ConditionStatus::Unknown),
                other => Err(serde::de::Error::custom(format!(
                    "a condition status is \"True\", \"False\" or \"Unknown\", not {other:?}"
                ))),
            },
        }
    }
}
