//! The input as the JWT filter's plugin configuration, through the same steps
//! as the filter's `on_configure`: JSON, the per-route envelope, then the policy
//! compiler (inline JWKS parsing included).
//!
//! A configuration comes from the control plane, not from clients, but a panic
//! while compiling it takes the filter down instead of refusing the update, so
//! any input must end in a policy or a `ConfigError`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::error::parse_json;
use tollgate_core::jwt::config::JwtConfig;
use tollgate_core::jwt::policy::JwtPolicy;
use tollgate_core::route_policy::RoutePolicies;

fuzz_target!(|data: &[u8]| {
    let compiled = parse_json(data)
        .and_then(|doc| RoutePolicies::<JwtPolicy>::parse::<JwtConfig, _>(doc, JwtPolicy::compile));
    if let Err(e) = compiled {
        // The filter logs the error; rendering it must not panic either.
        let _ = e.to_string();
    }
});
