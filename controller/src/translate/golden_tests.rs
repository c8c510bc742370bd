//! Golden tests in the style of Envoy Gateway's translator tests: each
//! `tests/translate/<case>/in.yaml` is translated and compared, exactly, with
//! `out.yaml` (Envoy resources and status). `TOLLGATE_GOLDEN_UPDATE=1`
//! rewrites the `out.yaml` files instead; review the diff before committing.
//! An optional `options.yaml` (`portRemap: false`) sets translator options.
//! The wasm directory is a fixed fake path, so the files do not depend on
//! where the repository is checked out.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::render::{document, Part, Secrets};
use super::{translate, Options};
use crate::resources::{loader::load_str, Resources};

const WASM_DIR: &str = "/opt/tollgate/dist";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CaseOptions {
    #[serde(default = "yes")]
    port_remap: bool,
    #[serde(default)]
    ratelimit_service: Option<String>,
}

fn yes() -> bool {
    true
}

fn run_case(dir: &Path) -> Result<(), String> {
    let input = std::fs::read_to_string(dir.join("in.yaml")).map_err(|e| e.to_string())?;
    let mut resources = Resources::default();
    load_str("in.yaml", &input, &mut resources).map_err(|e| e.to_string())?;
    let options = match std::fs::read_to_string(dir.join("options.yaml")) {
        Ok(text) => {
            let o: CaseOptions = serde_yaml_ng::from_str(&text).map_err(|e| e.to_string())?;
            Options {
                listener_address: crate::translator_args::DEFAULT_LISTENER_ADDRESS,
                port_remap: o.port_remap,
                port_map: Default::default(),
                wasm_dir: PathBuf::from(WASM_DIR),
                ratelimit_service: o.ratelimit_service,
            }
        }
        Err(_) => Options {
            listener_address: crate::translator_args::DEFAULT_LISTENER_ADDRESS,
            port_remap: true,
            port_map: Default::default(),
            wasm_dir: PathBuf::from(WASM_DIR),
            ratelimit_service: None,
        },
    };
    let rendered = document(&translate(&resources, &options), Part::All, Secrets::Redact)
        .map_err(|e| e.to_string())?;
    let actual = super::yaml_text::to_string(&rendered);
    // The hand-written YAML must read back as what was rendered.
    let back: serde_json::Value = serde_yaml_ng::from_str(&actual).map_err(|e| e.to_string())?;
    if back != rendered {
        return Err(format!(
            "the YAML does not read back as rendered:\n{actual}"
        ));
    }
    let out = dir.join("out.yaml");
    if std::env::var_os("TOLLGATE_GOLDEN_UPDATE").is_some_and(|v| v == "1") {
        return std::fs::write(&out, actual).map_err(|e| e.to_string());
    }
    let expected = std::fs::read_to_string(&out)
        .map_err(|e| format!("{e} (TOLLGATE_GOLDEN_UPDATE=1 writes it)"))?;
    if actual == expected {
        Ok(())
    } else {
        Err(format!(
            "differs from out.yaml (TOLLGATE_GOLDEN_UPDATE=1 rewrites it); got:\n{actual}"
        ))
    }
}

#[test]
fn golden_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/translate");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 6,
        "golden cases missing under {}",
        root.display()
    );
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            run_case(case)
                .err()
                .map(|e| format!("{}: {e}", case.display()))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
