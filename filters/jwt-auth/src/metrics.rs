//! The filter's counters (exported as `tollgate_jwt_auth_*`).

use tollgate_core::jwt::authn::Denial;
use tollgate_host::metrics::Counter;

/// Metric suffixes of [`Denial::reason`], one counter each.
const DENIALS: [&str; 7] = [
    "missing",
    "malformed",
    "bad_signature",
    "expired",
    "bad_issuer",
    "bad_audience",
    "keys_unavailable",
];

#[derive(Clone)]
pub struct Metrics {
    pub allowed: Counter,
    /// Requests let through without a valid token (`optional`, `failOpen`).
    pub passed: Counter,
    /// One per entry of [`DENIALS`].
    denied: Vec<Counter>,
    pub jwks_fetched: Counter,
    pub jwks_fetch_failed: Counter,
}

impl Metrics {
    pub fn new() -> Self {
        Metrics {
            allowed: Counter::define("tollgate_jwt_auth_allowed"),
            passed: Counter::define("tollgate_jwt_auth_passed_without_token"),
            denied: DENIALS
                .iter()
                .map(|r| Counter::define(&format!("tollgate_jwt_auth_denied_{r}")))
                .collect(),
            jwks_fetched: Counter::define("tollgate_jwt_auth_jwks_fetch_success"),
            jwks_fetch_failed: Counter::define("tollgate_jwt_auth_jwks_fetch_failure"),
        }
    }

    pub fn denied(&self, denial: &Denial) {
        if let Some(i) = DENIALS.iter().position(|r| *r == denial.reason()) {
            if let Some(c) = self.denied.get(i) {
                c.inc();
            }
        }
    }

    pub fn flush(&self) {
        self.allowed.flush();
        self.passed.flush();
        self.denied.iter().for_each(Counter::flush);
        self.jwks_fetched.flush();
        self.jwks_fetch_failed.flush();
    }
}
