//! The objects the controller reads, loaded from a directory of YAML (file mode).
//!
//! Own serde types rather than the `gateway-api` crate (0.21). Measured on
//! this 2-core machine: the crate does deserialize from serde_yaml_ng, but its
//! types accept unknown fields, so a typo such as `prot: 80` in a backendRef
//! loads silently as "no port"; and it brings kube 3 (client included) and
//! k8s-openapi 0.27 (which also needs a Kubernetes version feature): a clean
//! debug build of a probe crate using it took 3m36s, against 4m40s for all of
//! `tollgate` (tests included) before this module. Owned types are `deny_unknown_fields` where it matters (an
//! unimplemented Gateway API field is refused with its path, not dropped), keep
//! serde_yaml_ng's `file:line` in every error, and cover the couple of dozen
//! fields routing reads. The Kubernetes provider can map the crate's types
//! onto these later.

use std::sync::Arc;

pub mod api_objects;
pub mod config_files;
mod core;
mod duplicates;
pub mod gateway_api;
mod generation;
pub mod grpc_route;
pub mod http_filters;
pub mod loader;
pub mod meta;
pub mod policies;
pub mod refused;
mod yaml_bounds;

pub use self::core::{
    EndpointSlice, Namespace, Secret, Service, ServicePort, SERVICE_NAME_LABEL,
    STATIC_ENDPOINTS_ANNOTATION,
};
pub use gateway_api::{
    BackendRef, FromNamespaces, Gateway, GatewayClass, HttpRoute, HttpRouteMatch, HttpRouteRule,
    ParentRef, PathMatchType, ReferenceGrant, ValueMatch, ValueMatchType,
};
pub use grpc_route::GrpcRoute;
pub use loader::{load_dir, DirCache};

/// One object and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    /// Shared: a reload reuses the objects of files that did not change.
    pub object: Arc<T>,
    /// Position in load order (files sorted by path, documents in file order):
    /// the precedence tie-break when there is no `creationTimestamp`.
    pub order: usize,
    /// Where it came from, for every message about it.
    pub source: Origin,
    /// `metadata.generation`, or one derived from the spec (see
    /// `generation::of`): every status condition's `observedGeneration`.
    pub generation: i64,
}

/// Where an object came from: what a message about it names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A document in a file of the config directory, by the line it starts on.
    File { path: String, line: usize },
    /// An object read from a Kubernetes API server, by its `metadata.uid`.
    Object { uid: String },
}

impl std::fmt::Display for Origin {
    /// `path:line`, or `uid <uid>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{path}:{line}"),
            Origin::Object { uid } => write!(f, "uid {uid}"),
        }
    }
}

/// Everything one directory holds, each kind in load order.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    pub gateway_classes: Vec<Loaded<GatewayClass>>,
    pub gateways: Vec<Loaded<Gateway>>,
    pub http_routes: Vec<Loaded<HttpRoute>>,
    pub services: Vec<Loaded<Service>>,
    pub endpoint_slices: Vec<Loaded<EndpointSlice>>,
    pub reference_grants: Vec<Loaded<ReferenceGrant>>,
    pub grpc_routes: Vec<Loaded<GrpcRoute>>,
    pub secrets: Vec<Loaded<Secret>>,
    pub namespaces: Vec<Loaded<Namespace>>,
    /// Tollgate's policies and the Envoy Gateway kinds accepted for migration.
    pub policies: Vec<Loaded<policies::PolicyObject>>,
    /// Documents skipped (kinds Tollgate does not read), as `path:line: message`.
    pub warnings: Vec<String>,
    /// Objects refused one by one (`refused`): each gets a status condition
    /// naming the field, and costs nothing else.
    pub refused: Vec<Loaded<refused::RefusedObject>>,
    /// Documents not loaded as written, and not refused either,
    /// `path:line[:column]: message`: where their file has a last good
    /// version, that version is loaded in its place; otherwise the document
    /// is left out (YAML that does not parse has no object to report on).
    pub load_errors: Vec<String>,
}

impl Resources {
    /// Every problem of the load: the documents not loaded as written, then
    /// the objects refused.
    pub fn problems(&self) -> impl Iterator<Item = &str> {
        let refused = self.refused.iter().map(|r| r.object.problem.as_str());
        self.load_errors.iter().map(String::as_str).chain(refused)
    }
}
