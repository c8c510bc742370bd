//! The canary tests' arithmetic, shared by the filter's and the cluster
//! specifier's: a policy's `backends` from (name, weight) pairs, and the share
//! of requests each backend (echo pod) answered.

use std::collections::HashMap;

use serde_json::{json, Value};

/// A canary config with these backends and weights.
pub fn weights(w: &[(&str, i64)]) -> Value {
    json!({"backends": w.iter().map(|(name, weight)| json!({"name": name, "weight": weight})).collect::<Vec<_>>()})
}

/// `pod`'s share of `counts` (answers per pod), in percent.
pub fn share(counts: &HashMap<String, usize>, pod: &str) -> f64 {
    let total: usize = counts.values().sum();
    counts.get(pod).copied().unwrap_or(0) as f64 * 100.0 / total as f64
}

/// Panics unless `pod` answered within 5 points of `percent` of `counts`.
pub fn assert_share(counts: &HashMap<String, usize>, pod: &str, percent: f64) {
    assert!(
        (share(counts, pod) - percent).abs() <= 5.0,
        "{pod} should get {percent:.1} %: {counts:?}"
    );
}
