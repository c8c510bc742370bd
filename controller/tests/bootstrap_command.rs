//! `tollgate bootstrap` prints a bootstrap a real Envoy accepts
//! (`envoy --mode validate`), in each of its variants, mutual TLS to xDS
//! included (with certificates made at test time, which Envoy loads), and
//! refuses bad arguments naming them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failure should stop the test loudly

use std::path::Path;
use std::process::Command;

use e2e::pki::Pki;
use serde_json::Value;

fn bootstrap(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("bootstrap")
        .args(args)
        .output()
        .unwrap()
}

/// `envoy --mode validate` on a bootstrap (written to `path`).
fn assert_envoy_accepts(path: &Path, bootstrap: &[u8], what: &str) {
    std::fs::write(path, bootstrap).unwrap();
    let envoy = Command::new(e2e::paths::envoy_bin())
        .args(["--mode", "validate", "-l", "error", "-c"])
        .arg(path)
        .output()
        .expect("running envoy (make setup installs it)");
    assert!(
        envoy.status.success(),
        "{what}: Envoy refused the bootstrap:\n{}{}\n{}",
        String::from_utf8_lossy(&envoy.stdout),
        String::from_utf8_lossy(&envoy.stderr),
        String::from_utf8_lossy(bootstrap)
    );
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
        let path = scratch.path().join(format!("{i}.json"));
        assert_envoy_accepts(&path, &out.stdout, &format!("{args:?}"));
        // Plain gRPC to xDS unless asked for TLS.
        let config: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            config["static_resources"]["clusters"][0]
                .get("transport_socket")
                .is_none(),
            "{config:#}"
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

/// The `UpstreamTlsContext` of the `tollgate-xds` cluster.
fn tls_context(config: &Value) -> &Value {
    let socket = &config["static_resources"]["clusters"][0]["transport_socket"];
    assert_eq!(socket["name"], "envoy.transport_sockets.tls", "{config:#}");
    &socket["typed_config"]
}

#[test]
fn envoy_accepts_mutual_tls_to_xds_with_the_files_referenced_by_path() {
    let pki = Pki::generate().unwrap();
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    let (ca, cert, key) = (path(&pki.ca), path(&pki.client.cert), path(&pki.client.key));
    let tls = [
        "--xds-tls-ca",
        &ca,
        "--xds-tls-cert",
        &cert,
        "--xds-tls-key",
        &key,
    ];
    // The server's name: the address's host unless --xds-tls-server-name says otherwise.
    let variants: [(&[&str], &str, &str, Option<&str>); 3] = [
        (
            &["--xds-address", "127.0.0.1:18000"],
            "IP_ADDRESS",
            "127.0.0.1",
            None,
        ),
        (
            &["--xds-address", "localhost:18000"],
            "DNS",
            "localhost",
            Some("localhost"),
        ),
        (
            &[
                "--xds-address",
                "127.0.0.1:18000",
                "--xds-tls-server-name",
                "tollgate.tollgate-system.svc",
            ],
            "DNS",
            "tollgate.tollgate-system.svc",
            Some("tollgate.tollgate-system.svc"),
        ),
    ];
    let key_text = std::fs::read_to_string(&pki.client.key).unwrap();
    let key_body = key_text.lines().nth(1).unwrap();
    for (i, (address, san_type, name, sni)) in variants.iter().enumerate() {
        let args: Vec<&str> = address
            .iter()
            .chain(&tls)
            .copied()
            .chain(["--node-id", "a"])
            .collect();
        let out = bootstrap(&args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bootstrap_path = pki.dir().join(format!("bootstrap-{i}.json"));
        assert_envoy_accepts(&bootstrap_path, &out.stdout, &format!("{args:?}"));
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            !text.contains(key_body) && !text.contains("inline_"),
            "{text}"
        );
        let config: Value = serde_json::from_str(&text).unwrap();
        let context = tls_context(&config);
        let common = &context["common_tls_context"];
        assert_eq!(
            common["tls_certificates"][0]["certificate_chain"]["filename"],
            cert
        );
        assert_eq!(
            common["tls_certificates"][0]["private_key"]["filename"],
            key
        );
        let validation = &common["validation_context"];
        assert_eq!(validation["trusted_ca"]["filename"], ca);
        assert_eq!(
            validation["match_typed_subject_alt_names"][0]["san_type"],
            *san_type
        );
        assert_eq!(
            validation["match_typed_subject_alt_names"][0]["matcher"]["exact"],
            *name
        );
        assert_eq!(context["sni"].as_str(), *sni, "{context:#}");
    }
}

#[test]
fn relative_certificate_paths_become_absolute() {
    let pki = Pki::generate().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .current_dir(pki.dir())
        .args([
            "bootstrap",
            "--xds-address",
            "127.0.0.1:18000",
            "--node-id",
            "a",
        ])
        .args(["--xds-tls-ca", "ca.crt", "--xds-tls-cert", "client.crt"])
        .args(["--xds-tls-key", "client.key"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: Value = serde_json::from_slice(&out.stdout).unwrap();
    let common = &tls_context(&config)["common_tls_context"];
    let ca = std::path::absolute(pki.dir().join("ca.crt")).unwrap();
    assert_eq!(
        common["validation_context"]["trusted_ca"]["filename"],
        ca.to_str().unwrap()
    );
    let key = &common["tls_certificates"][0]["private_key"]["filename"];
    assert!(Path::new(key.as_str().unwrap()).is_absolute(), "{key}");
}

#[test]
fn a_partial_set_of_tls_flags_is_refused_naming_what_is_missing() {
    let base = ["--xds-address", "127.0.0.1:18000", "--node-id", "a"];
    for (extra, named) in [
        (
            &["--xds-tls-ca", "ca.crt"][..],
            "--xds-tls-ca given without --xds-tls-cert, --xds-tls-key",
        ),
        (
            &["--xds-tls-ca", "ca.crt", "--xds-tls-cert", "c.crt"][..],
            "given without --xds-tls-key",
        ),
        (
            &["--xds-tls-key", "c.key"][..],
            "--xds-tls-key given without --xds-tls-ca, --xds-tls-cert",
        ),
        (
            &["--xds-tls-server-name", "localhost"][..],
            "--xds-tls-server-name given without --xds-tls-ca, --xds-tls-cert, --xds-tls-key",
        ),
        (
            &[
                "--xds-tls-ca",
                "a",
                "--xds-tls-cert",
                "b",
                "--xds-tls-key",
                "c",
                "--xds-tls-server-name",
                "bad name",
            ][..],
            "--xds-tls-server-name \"bad name\": not a DNS name or IP address",
        ),
    ] {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let out = bootstrap(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: printed a bootstrap");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
}

#[test]
fn an_admin_address_off_loopback_is_warned_about() {
    let base = ["--xds-address", "127.0.0.1:18000", "--node-id", "n"];
    let quiet = bootstrap(&base);
    assert!(quiet.status.success());
    assert!(
        !String::from_utf8_lossy(&quiet.stderr).contains("admin"),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    let open = bootstrap(&[&base[..], &["--admin-address", "0.0.0.0:9901"]].concat());
    assert!(open.status.success(), "a warning, not a refusal");
    let stderr = String::from_utf8_lossy(&open.stderr);
    assert!(
        stderr.contains("--admin-address 0.0.0.0:9901: Envoy's admin interface"),
        "{stderr}"
    );
}
