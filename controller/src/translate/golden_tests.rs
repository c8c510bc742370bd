//! Golden tests in the style of Envoy Gateway's translator tests: each
//! `tests/translate/<case>/in.yaml` is translated for both filter runtimes
//! and compared, exactly, with `out.yaml` (Envoy resources and status, the
//! dynamic module) and `out-wasm.yaml` (the wasm filters) — the latter only
//! where the two differ (a case with no Tollgate filter has no
//! `out-wasm.yaml`). `TOLLGATE_GOLDEN_UPDATE=1` rewrites the files instead;
//! review the diff before committing. An optional `options.yaml`
//! (`portRemap: false`) sets translator options. The wasm directory is a
//! fixed fake path, so the files do not depend on where the repository is
//! checked out.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::render::{document, Part, Secrets};
use super::{translate, FilterRuntime, Options};
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
    let case = match std::fs::read_to_string(dir.join("options.yaml")) {
        Ok(text) => serde_yaml_ng::from_str(&text).map_err(|e| e.to_string())?,
        Err(_) => CaseOptions {
            port_remap: true,
            ratelimit_service: None,
        },
    };
    let options = |filter_runtime| Options {
        listener_address: crate::translator_args::DEFAULT_LISTENER_ADDRESS,
        port_remap: case.port_remap,
        port_map: Default::default(),
        filter_runtime,
        ratelimit_service: case.ratelimit_service.clone(),
    };
    let module = rendered(&resources, &options(FilterRuntime::DynamicModule))?;
    let wasm = rendered(
        &resources,
        &options(FilterRuntime::Wasm {
            dir: PathBuf::from(WASM_DIR),
        }),
    )?;
    compare(&dir.join("out.yaml"), Some(&module))?;
    compare(
        &dir.join("out-wasm.yaml"),
        (wasm != module).then_some(&wasm),
    )
}

/// The translation as YAML, checked to read back as what was rendered.
fn rendered(resources: &Resources, options: &Options) -> Result<String, String> {
    let rendered = document(&translate(resources, options), Part::All, Secrets::Redact)
        .map_err(|e| e.to_string())?;
    let actual = super::yaml_text::to_string(&rendered);
    let back: serde_json::Value = serde_yaml_ng::from_str(&actual).map_err(|e| e.to_string())?;
    if back != rendered {
        return Err(format!(
            "the YAML does not read back as rendered:\n{actual}"
        ));
    }
    Ok(actual)
}

/// `out` holds `actual`, or is absent when `actual` is `None`.
fn compare(out: &Path, actual: Option<&String>) -> Result<(), String> {
    let name = out.file_name().unwrap_or_default().to_string_lossy();
    if std::env::var_os("TOLLGATE_GOLDEN_UPDATE").is_some_and(|v| v == "1") {
        return match actual {
            Some(text) => std::fs::write(out, text).map_err(|e| e.to_string()),
            None => match std::fs::remove_file(out) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
                _ => Ok(()),
            },
        };
    }
    match (actual, std::fs::read_to_string(out)) {
        (Some(actual), Ok(expected)) if *actual == expected => Ok(()),
        (Some(actual), Ok(_)) => Err(format!(
            "differs from {name} (TOLLGATE_GOLDEN_UPDATE=1 rewrites it); got:\n{actual}"
        )),
        (Some(_), Err(e)) => Err(format!("{name}: {e} (TOLLGATE_GOLDEN_UPDATE=1 writes it)")),
        (None, Ok(_)) => Err(format!(
            "{name} is left over: both runtimes translate this case alike (TOLLGATE_GOLDEN_UPDATE=1 removes it)"
        )),
        (None, Err(_)) => Ok(()),
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
