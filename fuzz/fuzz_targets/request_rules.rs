//! What clients (and the rate limit service) control on the request path of
//! the rate limit and canary filters: header values, the path and query,
//! cookies, the client address, and the bytes of the service's answer. Fixed
//! policies using every kind of selector and rule meet arbitrary requests: the
//! bucket of every rule, the `ShouldRateLimit` call and the reading of an
//! arbitrary answer to it, and the canary selection must all finish without a
//! panic (a panic kills the filter's VM).
//!
//! Input: the first byte is the length of the service's answer, which follows;
//! the rest is text: the path on the first line, the client address on the
//! second, then `name: value` headers.

#![no_main]

use std::net::IpAddr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use tollgate_core::canary::policy::{CanaryPolicy, Draws};
use tollgate_core::ratelimit::policy::RateLimitPolicy;
use tollgate_core::ratelimit::service_call::{build, read_answer};
use tollgate_core::ratelimit::verdict::Verdict;
use tollgate_core::request_parts::RequestAttrs;

struct Req {
    path: String,
    source: Option<IpAddr>,
    headers: Vec<(String, String)>,
}

impl RequestAttrs for Req {
    fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    fn method(&self) -> &str {
        self.header(":method").unwrap_or("GET")
    }
    fn path(&self) -> &str {
        &self.path
    }
    fn source_ip(&self) -> Option<IpAddr> {
        self.source
    }
}

fn policies() -> &'static (RateLimitPolicy, CanaryPolicy) {
    static POLICIES: OnceLock<(RateLimitPolicy, CanaryPolicy)> = OnceLock::new();
    POLICIES.get_or_init(|| {
        let rules = json!([
            {"clientSelectors": [{"headers": [{"name": "x-user-id", "type": "Distinct"},
                                              {"name": "x-tier", "type": "RegularExpression", "value": "g(o|ol)+d"}]}],
             "limit": {"requests": 3, "unit": "Hour"}},
            {"clientSelectors": [{"sourceCIDR": {"type": "Distinct", "value": "10.0.0.0/8"},
                                  "queryParams": [{"name": "key", "type": "Distinct"}]}],
             "limit": {"requests": 5, "unit": "Second"}, "shadowMode": true},
            {"clientSelectors": [{"headers": [{"name": "x-role", "value": "admin", "invert": true}],
                                  "sourceCIDR": {"value": "2001:db8::/32"},
                                  "methods": [{"value": "POST"}, {"value": "GET", "invert": true}],
                                  "path": {"type": "RegularExpression", "value": "/api/.*"}}],
             "limit": {"requests": 100, "unit": "Year"}}
        ]);
        let ratelimit = serde_json::from_value(json!({
            "local": {"rules": rules},
            "global": {"rules": rules},
            "service": {"cluster": "rls"}
        }))
        .expect("rate limit config");
        let canary = serde_json::from_value(json!({
            "backends": [{"name": "stable", "weight": 3}, {"name": "canary", "weight": 1}, {"name": "dark", "weight": 0}],
            "rules": [
                {"match": {"headers": [{"name": "env", "type": "RegularExpression", "value": "can(a|ary)+"}],
                           "queryParams": [{"name": "v", "value": "2"}]}, "backend": "dark"},
                {"match": {"cookies": [{"name": "beta", "value": "yes"}]}, "backend": "canary"}
            ],
            "sticky": {"header": "x-user-id", "setCookie": {"name": "tg", "maxAge": 60}}
        }))
        .expect("canary config");
        (
            RateLimitPolicy::compile(ratelimit).expect("rate limit policy"),
            CanaryPolicy::compile(canary).expect("canary policy"),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&answer_len, rest)) = data.split_first() else {
        return;
    };
    let (answer, text) = rest.split_at(usize::from(answer_len).min(rest.len()));
    let text = String::from_utf8_lossy(text);
    let mut lines = text.split('\n');
    let req = Req {
        path: lines.next().unwrap_or_default().to_string(),
        source: lines.next().and_then(|l| l.parse().ok()),
        headers: lines
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect(),
    };
    let (ratelimit, canary) = policies();
    for rule in ratelimit.local.iter().chain(&ratelimit.global) {
        let _ = rule.bucket(&req);
    }
    if let Some(call) = build("tollgate", "route", &ratelimit.global, &req) {
        let mut verdict = Verdict::default();
        if read_answer(answer, &call.sent, 1_795_377_605, &mut verdict).is_ok() {
            let _ = verdict.headers();
        }
    }
    let mut draws = Draws::new(data.len() as u64);
    let _ = canary.select(&req, &mut draws);
});
