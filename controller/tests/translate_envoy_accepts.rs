//! Every golden case's translation, as `tollgate translate -o json` prints it,
//! is accepted by a real Envoy (`envoy --mode validate`, the same config
//! checks as a start, without binding ports; it also loads our wasm filters
//! and has them accept their configuration): the listeners with their route
//! configurations inlined where ADS would deliver them, and the clusters.
//! The golden files pin what we generate; this pins that Envoy takes it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failure should stop the test loudly

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

/// A static bootstrap from a translation: each listener's `rds` replaced by
/// the route configuration it names.
fn bootstrap(translation: &Value) -> Value {
    let routes = translation["routes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut listeners = translation["listeners"].clone();
    for listener in listeners.as_array_mut().into_iter().flatten() {
        for chain in listener["filter_chains"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            for filter in chain["filters"].as_array_mut().into_iter().flatten() {
                let config = &mut filter["typed_config"];
                let Some(name) = config["rds"]["route_config_name"]
                    .as_str()
                    .map(str::to_owned)
                else {
                    continue;
                };
                let route = routes
                    .iter()
                    .find(|r| r["name"] == name.as_str())
                    .unwrap_or_else(|| panic!("no route configuration {name}"));
                let map = config.as_object_mut().unwrap();
                map.remove("rds");
                map.insert("route_config".into(), route.clone());
            }
        }
    }
    json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {"listeners": listeners, "clusters": translation["clusters"]}
    })
}

#[test]
fn envoy_accepts_every_golden_translation() {
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/translate");
    let scratch = tempfile::tempdir().unwrap();
    // Envoy's validate mode loads each wasm filter and runs its on_configure on
    // our configuration: `make build` puts them in dist/.
    let wasm_dir = e2e::paths::wasm("header_mod").parent().unwrap().to_owned();
    let mut checked = 0;
    for case in std::fs::read_dir(&cases).unwrap() {
        let case = case.unwrap().path();
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let mut command = Command::new(env!("CARGO_BIN_EXE_tollgate"));
        command
            .arg("translate")
            .arg(&case)
            .args(["-o", "json", "--wasm-dir"])
            .arg(&wasm_dir);
        if name == "no-port-remap" {
            command.arg("--no-port-remap");
        }
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let translation: Value = serde_json::from_slice(&out.stdout).unwrap();
        let config = scratch.path().join(format!("{name}.json"));
        std::fs::write(&config, bootstrap(&translation).to_string()).unwrap();
        let envoy = Command::new(e2e::paths::envoy_bin())
            .args(["--mode", "validate", "-l", "error", "-c"])
            .arg(&config)
            .output()
            .expect("running envoy (make setup installs it)");
        assert!(
            envoy.status.success(),
            "{name}: Envoy refused the translation:\n{}{}",
            String::from_utf8_lossy(&envoy.stdout),
            String::from_utf8_lossy(&envoy.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} golden cases found");
}
