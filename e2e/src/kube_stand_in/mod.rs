//! **Stand-ins** for the APIs our test API server ([`crate::kube_apiserver`],
//! an apiextensions-apiserver) does not serve — core/v1, apps/v1 and
//! authorization — so a test can `kubectl apply --server-side` a real install
//! manifest and run the controller under its own least-privilege identity.
//! Every one of them is a stand-in, not the real API:
//!
//! - **Core and apps kinds** (Namespace, Service, Secret, ConfigMap,
//!   ServiceAccount, Event; Deployment) are CRDs in the test groups
//!   [`CORE_GROUP`] and [`APPS_GROUP`] ([`crds`]), served at their real URLs
//!   (`/api/v1/...`, `/apis/apps/v1/...`) by the [`proxy`], which rewrites
//!   paths and `apiVersion`s both ways. Their schemas name the real top-level
//!   fields and keep anything inside. Service, Deployment and Namespace have a
//!   status subresource (the test plays load balancer and kubelet through
//!   `/status`), Deployment a scale subresource.
//! - **EndpointSlice and the RBAC kinds** (Role, ClusterRole, RoleBinding,
//!   ClusterRoleBinding) are CRDs at their real URLs, like the Lease stand-in.
//! - **Authorization**: the API server asks the proxy (its
//!   `--authorization-kubeconfig`) a SubjectAccessReview for every request of
//!   a caller outside `system:masters`; the proxy judges it by the stored RBAC
//!   objects (module `rbac`), so a missing rule is a real 403 from the API
//!   server. An RBAC change takes effect within the API server's review
//!   cache time (0.5 s, set by [`crate::kube_apiserver`]).
//!
//! Limits — what a real cluster does and these stand-ins do not:
//! - no core validation or defaulting (a Service gets no ClusterIP, a
//!   Deployment no default strategy, a Secret's `stringData` is stored as is
//!   and not merged into `data`, a Namespace gets no `status.phase`);
//! - no controllers: no ClusterIP or NodePort allocation, no garbage
//!   collection (ownerReferences are stored, nothing follows them), no
//!   namespace deletion of contents, no kubelet, scheduler or Pods, no
//!   EndpointSlices made from Services, no token for a ServiceAccount;
//! - strategic-merge-patch is applied as a JSON merge patch (list merge keys
//!   and `$patch` directives are not understood), so client-side `kubectl
//!   apply` *updates* of stand-in kinds are wrong: use `--server-side`;
//! - RBAC has no escalation check (anyone who may write a Role may grant
//!   anything), ClusterRole aggregation is evaluated at review time rather
//!   than written into the role, and the bootstrap roles `system:discovery`,
//!   `system:basic-user` and `system:public-info-viewer` are built into the
//!   evaluator instead of stored;
//! - no protobuf or CBOR: a protobuf body is answered 415, and kubectl's
//!   imperative generators for built-in kinds send one (`kubectl create
//!   namespace|configmap|secret|deployment ...` fail): apply YAML instead;
//!   kubectl apply, get, patch, label, delete and kube-rs send JSON;
//! - field selectors only on `metadata.name` and `metadata.namespace` (as
//!   for any CRD); no `default`, `kube-system` or other namespace exists
//!   until a test creates it (nothing requires one: no NamespaceLifecycle);
//! - in the first seconds after start-up the first request for a kind can be
//!   slow or answered 429 ("storage is (re)initializing"; kubectl and
//!   kube-rs's watcher retry);
//! - no exec/attach/port-forward, no SelfSubjectAccessReview (`kubectl auth
//!   can-i`), no TokenReview: callers authenticate with client certificates
//!   from the test CA (CN = user, O = groups; [`identity`]).

pub mod crds;
mod discovery;
pub mod identity;
pub mod proxy;
mod rbac;
mod rewrite;
mod upstream;

pub use proxy::{Proxy, ProxyConfig};

/// The test group standing in for the core group `""` (a CRD's group needs a dot).
pub const CORE_GROUP: &str = "core.stand-in.tollgate.test";
/// The test group standing in for `apps`.
pub const APPS_GROUP: &str = "apps.stand-in.tollgate.test";

/// The plural of the Namespace stand-in in [`CORE_GROUP`]. It cannot be
/// `namespaces`: the API server reads `/apis/G/v1/namespaces/NAME` as
/// "namespace NAME" and refuses a cluster-scoped kind there (404), so
/// `/api/v1/namespaces/NAME` maps to `/apis/G/v1/standinnamespaces/NAME`.
pub const NAMESPACE_STAND_IN_PLURAL: &str = "standinnamespaces";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Namespaced,
    Cluster,
}

/// One kind the stand-ins serve.
#[derive(Debug)]
pub(crate) struct StandIn {
    /// The real group (`""` for core).
    pub group: &'static str,
    pub kind: &'static str,
    /// The real plural.
    pub plural: &'static str,
    pub scope: Scope,
    pub short_names: &'static [&'static str],
    /// In the `all` category (`kubectl get all`).
    pub all: bool,
    /// Has a status subresource.
    pub status: bool,
}

impl StandIn {
    /// The test group of a core or apps kind; `None` for a kind registered
    /// at its real group.
    pub fn stand_in_group(&self) -> Option<&'static str> {
        stand_in_group(self.group)
    }

    /// The plural in the test group.
    pub fn stand_in_plural(&self) -> &'static str {
        if self.group.is_empty() && self.plural == "namespaces" {
            NAMESPACE_STAND_IN_PLURAL
        } else {
            self.plural
        }
    }
}

/// The test group standing in for a real `group`, if any.
pub(crate) fn stand_in_group(group: &str) -> Option<&'static str> {
    match group {
        "" => Some(CORE_GROUP),
        "apps" => Some(APPS_GROUP),
        _ => None,
    }
}

/// The real group a test group stands in for (others are themselves).
pub(crate) fn real_group(group: &str) -> &str {
    match group {
        CORE_GROUP => "",
        APPS_GROUP => "apps",
        _ => group,
    }
}

const fn kind(
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    scope: Scope,
    short_names: &'static [&'static str],
    all: bool,
    status: bool,
) -> StandIn {
    StandIn {
        group,
        kind,
        plural,
        scope,
        short_names,
        all,
        status,
    }
}

use Scope::{Cluster, Namespaced};

/// Every stood-in kind: group, kind, plural, scope, short names, in the
/// `all` category, status subresource.
#[rustfmt::skip]
pub(crate) const KINDS: &[StandIn] = &[
    kind("", "Namespace", "namespaces", Cluster, &["ns"], false, true),
    kind("", "Service", "services", Namespaced, &["svc"], true, true),
    kind("", "Secret", "secrets", Namespaced, &[], false, false),
    kind("", "ConfigMap", "configmaps", Namespaced, &["cm"], false, false),
    kind("", "ServiceAccount", "serviceaccounts", Namespaced, &["sa"], false, false),
    kind("", "Event", "events", Namespaced, &["ev"], false, false),
    kind("apps", "Deployment", "deployments", Namespaced, &["deploy"], true, true),
    kind("discovery.k8s.io", "EndpointSlice", "endpointslices", Namespaced, &[], false, false),
    kind("rbac.authorization.k8s.io", "Role", "roles", Namespaced, &[], false, false),
    kind("rbac.authorization.k8s.io", "ClusterRole", "clusterroles", Cluster, &[], false, false),
    kind("rbac.authorization.k8s.io", "RoleBinding", "rolebindings", Namespaced, &[], false, false),
    kind("rbac.authorization.k8s.io", "ClusterRoleBinding", "clusterrolebindings", Cluster, &[], false, false),
];

/// Whether `kind` (or `kind` without a `List` suffix) is a stood-in kind of
/// the real `group`.
pub(crate) fn is_stood_in(group: &str, kind: &str) -> bool {
    let base = kind.strip_suffix("List").unwrap_or(kind);
    KINDS
        .iter()
        .any(|k| k.group == group && k.kind == base && k.stand_in_group().is_some())
}
