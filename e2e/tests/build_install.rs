//! `make build` puts its outputs into dist/ with scripts/install-built.sh while a
//! `make run` demo may be running the previous ones. Writing over a running
//! executable fails with "Text file busy", so the script must replace the file
//! (write a temporary one, rename it over), never overwrite it in place.

use std::path::Path;
use std::process::Command;

use e2e::paths::workspace_root;

fn copy_executable(from: &str, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap();
}

#[test]
fn installing_over_a_running_binary_replaces_it_and_leaves_nothing_else_behind() {
    let dir = tempfile::tempdir().unwrap();
    let installed = dir.path().join("dist/tool");
    copy_executable("/bin/sleep", &installed);
    let mut running = Command::new(&installed).arg("30").spawn().unwrap();
    // The new build: another executable under the same name.
    let built = dir.path().join("build/tool");
    copy_executable("/bin/true", &built);

    let out = Command::new(workspace_root().join("scripts/install-built.sh"))
        .arg(dir.path().join("dist"))
        .arg(&built)
        .output()
        .unwrap();
    let still_running = running.try_wait().unwrap().is_none();
    running.kill().unwrap();
    running.wait().unwrap();

    assert!(
        out.status.success(),
        "install-built.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(still_running, "the running binary was disturbed");
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read("/bin/true").unwrap()
    );
    assert!(Command::new(&installed).status().unwrap().success());
    let left: Vec<_> = std::fs::read_dir(dir.path().join("dist"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["tool"], "temporary files left in dist/");
}
