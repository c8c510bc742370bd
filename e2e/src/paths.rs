//! Where the harness finds the repository's built artefacts and the Envoy binary.

use std::path::{Path, PathBuf};

/// The workspace root (the directory holding `dist/` and `.venv/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A built filter, `dist/<name>.wasm`. Panics with the fix when it is missing:
/// tests must not silently skip a filter that was not built.
pub fn wasm(name: &str) -> PathBuf {
    let path = workspace_root().join("dist").join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run `make build` first (make test does)",
        path.display()
    );
    path
}

/// The dynamic module, `dist/libtollgate.so`. Panics with the fix when it is
/// missing: tests must not silently skip a runtime that was not built.
pub fn dynamic_module() -> PathBuf {
    let path = workspace_root().join("dist/libtollgate.so");
    assert!(
        path.is_file(),
        "{} is missing: run `make build` first (make test does)",
        path.display()
    );
    path
}

/// A benchmark-only module, built by `make build` into cargo's wasm output directory
/// and never copied to `dist/`. Panics with the fix when it is missing.
pub fn bench_wasm(name: &str) -> PathBuf {
    let path = workspace_root()
        .join("target/wasm32-wasip1/release")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run `make build` first",
        path.display()
    );
    path
}

/// The Envoy to run: `$ENVOY_BIN`, else the project's `.venv/bin/envoy` (installed
/// by `make setup`), else `envoy` on PATH.
pub fn envoy_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("ENVOY_BIN").filter(|v| !v.is_empty()) {
        return PathBuf::from(bin);
    }
    let venv = workspace_root().join(".venv/bin/envoy");
    if venv.is_file() {
        return venv;
    }
    PathBuf::from("envoy")
}

/// The `tollgate` binary built by `make build` (`dist/tollgate`). Panics with the
/// fix when it is missing. (The controller's own tests use cargo's fresh build.)
pub fn tollgate_bin() -> PathBuf {
    let path = workspace_root().join("dist/tollgate");
    assert!(
        path.is_file(),
        "{} is missing: run `make build` first (make test does)",
        path.display()
    );
    path
}
