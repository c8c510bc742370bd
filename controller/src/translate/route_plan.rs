//! The route plan: what each Envoy route is to do, decided from the Gateway
//! API objects with no Envoy type in it. A rule's filters, backendRefs and
//! timeouts are checked into an [`ActionPlan`] (`route_filters`), each match
//! of the rule gets a [`PlannedRoute`], the routes are attached and placed
//! (`attach`), policies decide per route what their filters do and whether
//! the action changes (`policy_filters`, `policy_attachment`), and only then
//! does `emit_route` write each one as Envoy's `Route` for the runtime.

use std::borrow::Cow;

use crate::resources::HttpRouteMatch;

/// One Envoy route, planned.
#[derive(Debug, Clone)]
pub struct PlannedRoute<'r> {
    /// Its name, unique in the translation (`httproute/<ns>/<name>/rule/<i>/match/<j>`).
    pub name: String,
    /// The match it serves (a GRPCRoute's method match as an HTTPRoute match).
    pub matcher: Cow<'r, HttpRouteMatch>,
    pub action: ActionPlan,
}

/// What a route does with a request it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionPlan {
    /// Answer 500: nothing to send to, a filter Tollgate cannot apply, or an
    /// invalid policy (the spec: a filter is never skipped).
    InternalServerError,
    Redirect(Redirect),
    Forward(Forward),
}

/// A RequestRedirect, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
    /// `http` or `https`; none keeps the request's (and the port then
    /// defaults to the listener's).
    pub scheme: Option<String>,
    pub hostname: Option<String>,
    pub port: Option<u16>,
    pub path: PathChange,
}

/// Where a forwarded request goes, and what changes on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub to: Destination,
    /// Some share of the split names a backend that did not resolve: the
    /// requests it gets answer 500 (the spec), where a cluster missing for
    /// another reason answers 503.
    pub unresolved_share: bool,
    /// A URLRewrite hostname.
    pub hostname: Option<String>,
    pub path: PathChange,
    /// `timeouts.request` in milliseconds (0: none).
    pub request_timeout_ms: Option<u64>,
    /// `timeouts.backendRequest` in milliseconds, when bounded.
    pub backend_timeout_ms: Option<u64>,
    pub mirrors: Vec<Mirror>,
}

/// The backend of a forwarded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// One cluster.
    Cluster(String),
    /// The cluster the canary filter chose, by the header it writes.
    CanaryHeader,
}

/// A path rewrite, of a redirect or a forwarded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathChange {
    Keep,
    /// ReplaceFullPath.
    Full(String),
    /// ReplacePrefixMatch: the match's path `prefix` becomes `replacement`.
    Prefix {
        prefix: String,
        replacement: String,
    },
}

/// A RequestMirror, its backend resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub cluster: String,
    /// The share of requests mirrored; none mirrors every request.
    pub fraction: Option<Fraction>,
}

/// `numerator` out of `denominator` (100, 10,000 or 1,000,000: what Envoy's
/// fractional percent can say; `route_filters` rounds others to a million).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fraction {
    pub numerator: u32,
    pub denominator: u32,
}
