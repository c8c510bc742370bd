//! What `kubectl apply` installs: Tollgate's policy CRDs ([`crds`]) and the
//! whole install around them ([`install`]: namespace, RBAC, the controller's
//! Deployment and Service), printed by `tollgate manifests install`.

pub mod crds;
pub mod install;
