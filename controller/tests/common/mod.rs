//! What the controller's Envoy tests share: running a translation as Envoy
//! would get it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failure should stop the test loudly

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

/// The repository's dist/, where `make build` puts the wasm filters. Envoy
/// (validate mode too) loads each filter and runs its `on_configure` on the
/// translator's configuration.
pub fn wasm_dir() -> PathBuf {
    e2e::paths::wasm("header_mod").parent().unwrap().to_owned()
}

/// `tollgate translate DIR -o json --wasm-dir <dist> ARGS…`, parsed.
pub fn translate(dir: &Path, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("translate")
        .arg(dir)
        .args(["-o", "json", "--show-secrets", "--wasm-dir"])
        .arg(wasm_dir())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "translating {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A static bootstrap from a translation: each listener's `rds` replaced by
/// the route configuration it names.
pub fn bootstrap(translation: &Value) -> Value {
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
