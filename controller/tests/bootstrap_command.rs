//! `tollgate bootstrap` prints a bootstrap a real Envoy accepts
//! (`envoy --mode validate`), in each of its variants, and refuses bad
//! arguments naming them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failure should stop the test loudly

use std::process::Command;

use serde_json::Value;

fn bootstrap(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("bootstrap")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn envoy_accepts_every_variant() {
    let scratch = tempfile::tempdir().unwrap();
    let variants: [&[&str]; 3] = [
        &["--xds-address", "127.0.0.1:18000", "--node-id", "a"],
        &[
            "--xds-address",
            "tollgate.tollgate-system.svc:18000",
            "--node-id",
            "b",
            "--gateway",
            "web/eg",
            "--xds-protocol",
            "delta",
        ],
        &[
            "--xds-address",
            "[::1]:18000",
            "--node-id",
            "c",
            "--admin-address",
            "[::1]:0",
        ],
    ];
    for (i, args) in variants.iter().enumerate() {
        let out = bootstrap(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config: Value = serde_json::from_slice(&out.stdout).unwrap();
        let path = scratch.path().join(format!("{i}.json"));
        std::fs::write(&path, &out.stdout).unwrap();
        let envoy = Command::new(e2e::paths::envoy_bin())
            .args(["--mode", "validate", "-l", "error", "-c"])
            .arg(&path)
            .output()
            .expect("running envoy (make setup installs it)");
        assert!(
            envoy.status.success(),
            "{args:?}: Envoy refused the bootstrap:\n{}{}\n{config:#}",
            String::from_utf8_lossy(&envoy.stdout),
            String::from_utf8_lossy(&envoy.stderr)
        );
    }
    let with_gateway: Value = serde_json::from_slice(&bootstrap(variants[1]).stdout).unwrap();
    assert_eq!(
        with_gateway["node"]["metadata"]["tollgate.dev/gateway"],
        "web/eg"
    );
    assert_eq!(
        with_gateway["static_resources"]["clusters"][0]["type"],
        "STRICT_DNS"
    );
    assert_eq!(
        with_gateway["dynamic_resources"]["ads_config"]["api_type"],
        "DELTA_GRPC"
    );
}

#[test]
fn bad_arguments_are_named() {
    for (args, named) in [
        (
            [
                "--xds-address",
                "localhost",
                "--node-id",
                "a",
                "--gateway",
                "web/eg",
            ],
            "--xds-address",
        ),
        (
            [
                "--xds-address",
                "127.0.0.1:1",
                "--node-id",
                "a",
                "--gateway",
                "eg",
            ],
            "--gateway",
        ),
    ] {
        let out = bootstrap(&args);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
}
