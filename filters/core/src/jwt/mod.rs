//! JWT authentication: Envoy Gateway's `SecurityPolicy.jwt`, host-independent.
//!
//! Split as Envoy's jwt_authn is: `config` (the public JSON shape), `policy` (the
//! validated, compiled form), `extract` (finding the token in a request), `token`
//! (decoding the compact serialization), `claims` (issuer, audience, time and
//! claim-to-header checks), `alg` (the algorithms), `jwks` (key sets parsed
//! into verification keys; `public_key` their bytes for native verifiers),
//! `verify` (key selection and signature checks), `rsa` (the RSA verifier
//! `verify` uses) and `jwks_cache` (when remote key sets are fetched and refreshed).

pub mod alg;
pub mod authn;
pub mod cache;
pub mod claims;
pub mod config;
pub mod extract;
pub mod flow;
pub mod jwks;
pub mod jwks_cache;
#[cfg(feature = "native-crypto")]
pub mod native;
pub mod policy;
pub mod public_key;
pub mod rsa;
pub mod token;
pub mod verify;
