//! What `kubectl apply` installs: Tollgate's policy CRDs ([`crds`]).

pub mod crds;
