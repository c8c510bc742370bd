//! The controller benchmark's generated directory (`e2e::controller_bench`,
//! `make bench-controller`) translates as intended: every route accepted, in
//! one virtual host per hostname, every Service a cluster, and every policy's
//! filter config one its filter accepts. Small (20 routes); the benchmark
//! itself measures, this only keeps its input honest. It calls the controller
//! as a library (load, translate, render), as a provider would.
#![allow(clippy::unwrap_used)] // test: a failure should stop it loudly

use e2e::controller_bench::{RouteSet, Spec};
use tollgate::translate::render::{document, Part, Secrets};
use tollgate::translate::{translate, FilterRuntime, Options};
use tollgate::translator_args::DEFAULT_LISTENER_ADDRESS;
use tollgate_core::headers::{HeaderModConfig, HeaderPolicy};
use tollgate_core::ratelimit::config::RateLimitConfig;
use tollgate_core::ratelimit::policy::RateLimitPolicy;

#[test]
fn the_benchmark_directory_translates() {
    let set = RouteSet::new(Spec {
        routes: 20,
        hostnames: 5,
        files: 3,
        routes_per_service: 4,
        policy_share: 0.1,
        listener_port: 18080,
        backend: "127.0.0.1:3000".parse().unwrap(),
    });
    assert_eq!(set.policy_routes(), 2);
    let dir = tempfile::tempdir().unwrap();
    set.write_all(dir.path()).unwrap();
    let resources = tollgate::resources::load_dir(dir.path()).unwrap();
    let options = Options {
        listener_address: DEFAULT_LISTENER_ADDRESS,
        port_remap: true,
        port_map: Default::default(),
        filter_runtime: FilterRuntime::DynamicModule,
        ratelimit_service: None,
    };
    let out = document(&translate(&resources, &options), Part::All, Secrets::Redact).unwrap();

    let vhosts = out["routes"][0]["virtual_hosts"].as_array().unwrap();
    let hosts: Vec<&str> = vhosts.iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(
        hosts,
        (0..5)
            .map(|h| format!("h{h}.bench.example"))
            .collect::<Vec<_>>()
    );
    let routes: usize = vhosts
        .iter()
        .map(|v| v["routes"].as_array().unwrap().len())
        .sum();
    assert_eq!(routes, 40, "two matches per route");
    assert_eq!(out["clusters"].as_array().unwrap().len(), 5);
    let statuses = out["status"]["httpRoutes"].as_array().unwrap();
    assert_eq!(statuses.len(), 20);
    for route in statuses {
        for condition in route["parents"][0]["conditions"].as_array().unwrap() {
            assert_eq!(condition["status"], "True", "{route}");
        }
    }
}

/// Whether or not this build reads the policy kinds, their configs are the
/// filters' own (docs/policies.md): `spec.headers`, `spec.rateLimit`.
#[test]
fn the_benchmark_policies_are_filter_configs() {
    let set = RouteSet::new(Spec {
        routes: 20,
        hostnames: 5,
        files: 3,
        routes_per_service: 4,
        policy_share: 0.1,
        listener_port: 18080,
        backend: "127.0.0.1:3000".parse().unwrap(),
    });
    let mut kinds = Vec::new();
    for (path, text) in set.files() {
        if !path.starts_with("policies/") {
            continue;
        }
        for doc in text.split("---\n").filter(|d| !d.trim().is_empty()) {
            let doc: serde_json::Value = serde_yaml_ng::from_str(doc).unwrap();
            let spec = &doc["spec"];
            assert_eq!(spec["targetRefs"][0]["kind"], "HTTPRoute");
            let kind = doc["kind"].as_str().unwrap().to_owned();
            match kind.as_str() {
                "HeaderPolicy" => {
                    let config: HeaderModConfig =
                        serde_json::from_value(spec["headers"].clone()).unwrap();
                    HeaderPolicy::compile(config).unwrap();
                }
                "RateLimitPolicy" => {
                    let config: RateLimitConfig =
                        serde_json::from_value(spec["rateLimit"].clone()).unwrap();
                    RateLimitPolicy::compile(config).unwrap();
                }
                other => panic!("unexpected kind {other}"),
            }
            kinds.push(kind);
        }
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "HeaderPolicy",
            "HeaderPolicy",
            "RateLimitPolicy",
            "RateLimitPolicy"
        ]
    );
}
