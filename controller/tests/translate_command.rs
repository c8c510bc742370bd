//! `tollgate translate` as a user runs it: the binary, a directory, its exit
//! code and output. The translation itself is pinned by the golden files
//! (`tests/translate/`, run from `src/translate/golden_tests.rs`).
#![allow(clippy::unwrap_used)] // test helpers: a failure should stop the test loudly

use std::path::Path;
use std::process::{Command, Output};

fn translate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("translate")
        .args(args)
        .output()
        .unwrap()
}

fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("tollgate-translate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("nested")).unwrap();
    dir
}

#[test]
fn prints_one_part_as_json_from_a_nested_directory() {
    let dir = scratch_dir("json");
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/translate/basic-routing/in.yaml");
    std::fs::copy(case, dir.join("nested/gateway.yml")).unwrap();
    std::fs::write(
        dir.join("configmap.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    )
    .unwrap();
    let out = translate(&[dir.to_str().unwrap(), "-o", "json", "--type", "route"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let object = doc.as_object().unwrap();
    assert_eq!(object.keys().collect::<Vec<_>>(), vec!["routes"]);
    assert_eq!(doc["routes"][0]["name"], "http-8080");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("configmap.yaml:1: skipped \"v1\" \"ConfigMap\""),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_port_map_moves_the_envoy_listener_but_not_the_gateway_port() {
    let dir = scratch_dir("port-map");
    std::fs::write(
        dir.join("gateway.yaml"),
        concat!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: t}\nspec: {controllerName: tollgate.dev/gateway-controller}\n---\n",
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec:\n  gatewayClassName: t\n  listeners: [{name: a, port: 80, protocol: HTTP}, {name: b, port: 81, protocol: HTTP}]\n---\n",
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{name: g, sectionName: a}]\n  rules: [{filters: [{type: RequestRedirect, requestRedirect: {hostname: example.org}}]}]\n",
        ),
    )
    .unwrap();
    let out = translate(&[
        dir.to_str().unwrap(),
        "-o",
        "json",
        "--port-map",
        "80=18080",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut ports: Vec<u64> = doc["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            l["address"]["socket_address"]["port_value"]
                .as_u64()
                .unwrap()
        })
        .collect();
    ports.sort_unstable();
    assert_eq!(ports, [10081, 18080], "80 mapped, 81 remapped as usual");
    // The redirect is to the Gateway's port 80: no port in Location.
    let config = doc["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "http-18080")
        .unwrap();
    let route = &config["virtual_hosts"][0]["routes"][0];
    assert_eq!(route["redirect"]["host_redirect"], "example.org", "{route}");
    assert!(route["redirect"].get("port_redirect").is_none(), "{route}");
    let bad = translate(&[dir.to_str().unwrap(), "--port-map", "80"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("\"80\" is not PORT=ENVOY_PORT"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn listeners_bind_the_address_the_gateway_status_reports() {
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/translate/basic-routing");
    let addresses = |args: &[&str]| {
        let out = translate(&[&[case.to_str().unwrap(), "-o", "json"], args].concat());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let bound: Vec<String> = doc["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                l["address"]["socket_address"]["address"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        let reported = doc["status"]["gateways"][0]["addresses"][0]["value"]
            .as_str()
            .unwrap()
            .to_owned();
        (bound, reported)
    };
    let (bound, reported) = addresses(&[]);
    assert!(bound.iter().all(|a| *a == "127.0.0.1"), "{bound:?}");
    assert_eq!(reported, "127.0.0.1", "loopback by default");
    let (bound, reported) = addresses(&["--listener-address", "0.0.0.0"]);
    assert!(bound.iter().all(|a| *a == "0.0.0.0"), "{bound:?}");
    assert_eq!(reported, "0.0.0.0");
    let bad = translate(&[case.to_str().unwrap(), "--listener-address", "localhost"]);
    assert_eq!(bad.status.code(), Some(2), "not an IP address");
}

#[test]
fn a_schema_error_is_refused_naming_file_line_and_field_and_broken_yaml_exits_1() {
    let dir = scratch_dir("error");
    let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  rules:\n  - matches:\n    - path: {type: Prefix, value: /}\n";
    std::fs::write(dir.join("nested/route.yaml"), format!("---\n{route}")).unwrap();
    // The route is refused on its own (its status would say so); the rest is
    // translated.
    let out = translate(&[dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nested/route.yaml:8:"), "{stderr}");
    assert!(
        stderr.contains("spec.rules[0].matches[0].path.type"),
        "{stderr}"
    );
    // YAML that does not parse has no object to report on: exit 1.
    std::fs::write(dir.join("nested/broken.yaml"), "kind: [\n").unwrap();
    let out = translate(&[dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nested/broken.yaml:"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn private_keys_are_redacted_unless_asked_for() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let case = root.join("translate/https");
    let key = std::fs::read_to_string(root.join("tls-test-data/tls.key")).unwrap();
    let key_body = key.lines().nth(1).unwrap();
    let default = translate(&[case.to_str().unwrap(), "--type", "listener"]);
    assert!(default.status.success());
    let text = String::from_utf8_lossy(&default.stdout);
    assert!(!text.contains(key_body), "{text}");
    assert!(text.contains("[redacted]"), "{text}");
    let shown = translate(&[case.to_str().unwrap(), "-o", "json", "--show-secrets"]);
    assert!(shown.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    let https = doc["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "http-10443")
        .unwrap();
    let socket = &https["filter_chains"][0]["transport_socket"]["typed_config"];
    assert_eq!(
        socket["common_tls_context"]["tls_certificates"][0]["private_key"]["inline_string"],
        key.as_str()
    );
}

#[test]
fn an_hmac_key_in_an_inline_jwks_is_redacted_unless_asked_for() {
    let quickstart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart");
    let quickstart = quickstart.to_str().unwrap();
    let secret = "dG9sbGdhdGUtcXVpY2tzdGFydC1kZW1vLXNlY3JldC0wMTIzNDU2Nzg5YWJjZGVm";
    let policy = std::fs::read_to_string(Path::new(quickstart).join("policies/jwt.yaml")).unwrap();
    assert!(policy.contains(secret), "the quickstart's key changed");
    // JWT policies are in the listener's envelope on both runtimes (see
    // `FilterPolicy::PER_ROUTE`).
    for (runtime, filter) in [
        ("dynamic-module", "DynamicModuleFilter"),
        ("wasm", "jwt_auth.wasm"),
    ] {
        for args in [
            &["-o", "yaml"][..],
            &["-o", "json"],
            &["--type", "listener", "-o", "yaml"],
        ] {
            let runtime_args = ["--filter-runtime", runtime];
            let out = translate(&[&[quickstart][..], &runtime_args, args].concat());
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains(filter) && text.contains("jwt_auth"),
                "{runtime} {args:?}: no {filter}:\n{text}"
            );
            assert!(
                !text.contains(secret),
                "{runtime} {args:?}: the HMAC key is printed"
            );
            assert!(text.contains("[redacted]"), "{runtime} {args:?}");
        }
        let shown = translate(&[quickstart, "--filter-runtime", runtime, "--show-secrets"]);
        assert!(String::from_utf8_lossy(&shown.stdout).contains(secret));
    }
}

/// The header filter's module path in a translation of the header-modifiers case.
fn header_mod_filename(command: &mut Command, args: &[&str]) -> String {
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/translate/header-modifiers");
    let out = command
        .arg("translate")
        .arg(case)
        .args([
            "-o",
            "json",
            "--type",
            "listener",
            "--filter-runtime",
            "wasm",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let filter =
        &doc["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0];
    assert_eq!(filter["name"], "tollgate.header_mod");
    filter["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn the_dynamic_module_is_the_default_runtime_and_a_wasm_dir_needs_the_wasm_runtime() {
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/translate/header-modifiers");
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("translate")
        .arg(&case)
        .args(["-o", "json", "--type", "listener"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let filter =
        &doc["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0];
    assert_eq!(
        filter["typed_config"]["@type"],
        "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter"
    );
    assert_eq!(
        filter["typed_config"]["dynamic_module_config"]["name"],
        "tollgate"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("translate")
        .arg(&case)
        .args(["--wasm-dir", "dist"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--wasm-dir is for --filter-runtime wasm"),
        "{stderr}"
    );
}

#[test]
fn the_wasm_dir_defaults_to_the_binarys_directory_when_it_holds_the_filters_else_dist() {
    let dir = scratch_dir("wasm-dir");
    // cargo's binary has no filters next to it: ./dist, made absolute.
    let filename = header_mod_filename(
        Command::new(env!("CARGO_BIN_EXE_tollgate")).current_dir(dir.join("nested")),
        &[],
    );
    assert_eq!(
        Path::new(&filename),
        dir.join("nested/dist/header_mod.wasm")
    );
    // A binary next to the filters, as `make build` leaves dist/.
    let bin = dir.join("tollgate");
    std::fs::copy(env!("CARGO_BIN_EXE_tollgate"), &bin).unwrap();
    std::fs::write(dir.join("header_mod.wasm"), b"").unwrap();
    let filename = header_mod_filename(Command::new(&bin).current_dir(dir.join("nested")), &[]);
    assert_eq!(Path::new(&filename), dir.join("header_mod.wasm"));
    // An explicit relative --wasm-dir is made absolute too.
    let filename = header_mod_filename(
        Command::new(&bin).current_dir(&dir),
        &["--wasm-dir", "elsewhere"],
    );
    assert_eq!(Path::new(&filename), dir.join("elsewhere/header_mod.wasm"));
    std::fs::remove_dir_all(dir).unwrap();
}
