//! Every golden case's translation, as `tollgate translate -o json` prints it,
//! is accepted by a real Envoy (`envoy --mode validate`, the same config
//! checks as a start, without binding ports; it also loads our filters, the
//! dynamic module and the wasm build, and has them accept their
//! configuration, per-route configs included; private keys are shown, as a
//! static config needs them): the listeners with their route
//! configurations inlined where ADS would deliver them, and the clusters.
//! The golden files pin what we generate; this pins that Envoy takes it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failure should stop the test loudly

mod common;

use std::path::Path;
use std::process::Command;

use common::{bootstrap, dist_dir, translate, Runtime};

#[test]
fn envoy_accepts_every_golden_translation() {
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/translate");
    let scratch = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for case in std::fs::read_dir(&cases).unwrap() {
        let case = case.unwrap().path();
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let flags = case_flags(&case);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        for runtime in [Runtime::DynamicModule, Runtime::Wasm] {
            let translation = translate(runtime, &case, &flags);
            let config = scratch.path().join(format!("{name}-{runtime:?}.json"));
            std::fs::write(&config, bootstrap(&translation).to_string()).unwrap();
            let envoy = Command::new(e2e::paths::envoy_bin())
                .args(["--mode", "validate", "-l", "error", "-c"])
                .arg(&config)
                .env("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", dist_dir())
                .output()
                .expect("running envoy (make setup installs it)");
            assert!(
                envoy.status.success(),
                "{name} ({runtime:?}): Envoy refused the translation:\n{}{}",
                String::from_utf8_lossy(&envoy.stdout),
                String::from_utf8_lossy(&envoy.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} golden translations checked");
}

/// The command-line flags a case's `options.yaml` stands for.
fn case_flags(case: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(case.join("options.yaml")) else {
        return Vec::new();
    };
    let options: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let mut flags = Vec::new();
    if options
        .get("portRemap")
        .and_then(serde_yaml_ng::Value::as_bool)
        == Some(false)
    {
        flags.push("--no-port-remap".to_owned());
    }
    if let Some(service) = options.get("ratelimitService").and_then(|v| v.as_str()) {
        flags.push(format!("--ratelimit-service={service}"));
    }
    flags
}
