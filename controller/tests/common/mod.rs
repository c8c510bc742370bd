//! What the controller's Envoy tests share: running a translation as Envoy
//! would get it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failure should stop the test loudly

use std::path::{Path, PathBuf};
use std::process::Command;

pub use e2e::envoy_config::Runtime;
use serde_json::{json, Value};

/// The repository's dist/, where `make build` puts the filters: the `.wasm`
/// files, and `libtollgate.so`, which Envoy finds there through
/// `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`. Envoy (validate mode too) loads each
/// filter and has it compile the translator's configuration.
pub fn dist_dir() -> PathBuf {
    e2e::paths::dynamic_module().parent().unwrap().to_owned()
}

/// `tollgate translate DIR -o json --show-secrets ARGS…` for `runtime` (the
/// wasm filters from dist/), parsed.
pub fn translate(runtime: Runtime, dir: &Path, args: &[&str]) -> Value {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tollgate"));
    command
        .arg("translate")
        .arg(dir)
        .args(["-o", "json", "--show-secrets"]);
    if runtime == Runtime::Wasm {
        command
            .args(["--filter-runtime", "wasm", "--wasm-dir"])
            .arg(dist_dir());
    }
    let out = command.args(args).output().unwrap();
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
