//! `tollgate validate` as CI runs it: the binary on a directory, its exit
//! code and the problems it prints, each at `file:line`.
#![allow(clippy::unwrap_used)] // test helpers: a failure should stop the test loudly

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn validate(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("validate")
        .arg(dir)
        .output()
        .unwrap()
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tollgate-validate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn golden_input(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/translate/{case}/in.yaml"))
}

#[test]
fn a_clean_directory_passes() {
    let dir = scratch_dir("clean");
    std::fs::copy(golden_input("basic-routing"), dir.join("all.yaml")).unwrap();
    let out = validate(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("no problems"), "{stdout}");
}

#[test]
fn every_load_problem_is_printed_with_file_and_line_and_the_exit_code_says_so() {
    let dir = scratch_dir("broken");
    std::fs::write(
        dir.join("a.yaml"),
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{name: gw}]\n  rulez: []\n",
    )
    .unwrap();
    std::fs::write(dir.join("b.yaml"), "kind: Service\nmetadata: [oops\n").unwrap();
    let out = validate(&dir);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let a = dir.join("a.yaml").display().to_string();
    let b = dir.join("b.yaml").display().to_string();
    assert!(
        stdout.contains(&format!("{a}:6:")) && stdout.contains("rulez"),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("{b}:")), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 problem(s)"));
}

#[test]
fn a_translation_problem_fails_validation() {
    let dir = scratch_dir("unresolved");
    std::fs::copy(golden_input("missing-backend"), dir.join("all.yaml")).unwrap();
    let out = validate(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("ResolvedRefs=False (BackendNotFound)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&dir.join("all.yaml").display().to_string()),
        "{stdout}"
    );
}

#[test]
fn an_object_refused_at_load_is_reported_once_at_its_line() {
    let dir = scratch_dir("refused");
    std::fs::copy(golden_input("refused-objects"), dir.join("all.yaml")).unwrap();
    let out = validate(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    let all = dir.join("all.yaml").display().to_string();
    for (line, field) in [
        ("26", "unknown field `bogus`"),
        ("60", "unknown field `timeout`"),
        ("70", "invalid type: string \"eighty\""),
        ("91", "unknown field `audience`"),
    ] {
        let at = format!("{all}:{line}:");
        assert_eq!(stdout.matches(&at).count(), 1, "{at} in {stdout}");
        assert!(stdout.contains(field), "{field} in {stdout}");
    }
    // The four of Tollgate's objects, and another controller's Gateway.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("5 problem(s)"), "{stderr}");
}
