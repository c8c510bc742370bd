//! The input as the plugin configuration of the header, rate limit and canary
//! filters, through the same steps as their `on_configure`: JSON, the per-route
//! envelope, then each policy compiler (regular expressions included). Any
//! input must end in a policy or a `ConfigError`, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::canary::config::CanaryConfig;
use tollgate_core::canary::policy::CanaryPolicy;
use tollgate_core::error::parse_json;
use tollgate_core::headers::config::HeaderModConfig;
use tollgate_core::headers::HeaderPolicy;
use tollgate_core::ratelimit::config::RateLimitConfig;
use tollgate_core::ratelimit::policy::RateLimitPolicy;
use tollgate_core::route_policy::RoutePolicies;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = parse_json(data) else {
        return;
    };
    let errors = [
        RoutePolicies::<HeaderPolicy>::parse::<HeaderModConfig, _>(
            doc.clone(),
            HeaderPolicy::compile,
        )
        .err(),
        RoutePolicies::<RateLimitPolicy>::parse::<RateLimitConfig, _>(
            doc.clone(),
            RateLimitPolicy::compile,
        )
        .err(),
        RoutePolicies::<CanaryPolicy>::parse::<CanaryConfig, _>(doc, CanaryPolicy::compile).err(),
    ];
    for e in errors.into_iter().flatten() {
        // The filters log the error; rendering it must not panic either.
        let _ = e.to_string();
    }
});
