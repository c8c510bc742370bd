//! `tollgate serve` feeding a real Envoy over ADS (the Envoy bootstrapped by
//! `tollgate bootstrap`): routing, edits, added and deleted files, a broken
//! file, a configuration Envoy rejects, the admin endpoint, Delta xDS, and an
//! Envoy serving one Gateway. Every wait is bounded (see e2e::gateway).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a broken setup should fail the test loudly

use std::path::Path;

use e2e::echo::Echo;
use e2e::gateway::{free_port, gateway, gateway_class, service, Gateway, Options};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tollgate"))
}

fn route(name: &str, host: &str, path_prefix: &str, service: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}}}\nspec:\n  parentRefs: [{{name: eg}}]\n  hostnames: [{host}]\n  rules:\n  - matches: [{{path: {{type: PathPrefix, value: {path_prefix}}}}}]\n    backendRefs: [{{name: {service}, port: 80}}]\n"
    )
}

/// Two echo backends behind `web-1` and `web-2`, Gateway `default/eg` on a
/// free port, and the routes of Envoy Gateway's quickstart and routing guide.
struct Setup {
    gw: Gateway,
    port: u16,
    _echoes: [Echo; 2],
}

async fn setup(options: &Options) -> Setup {
    let echoes = [
        Echo::start("web-1").await.unwrap(),
        Echo::start("web-2").await.unwrap(),
    ];
    let port = free_port().unwrap();
    let files = [
        ("class.yaml", gateway_class()),
        ("gateway.yaml", gateway("default", "eg", port)),
        (
            "services/web-1.yaml",
            service("default", "web-1", &[echoes[0].addr()]),
        ),
        (
            "services/web-2.yaml",
            service("default", "web-2", &[echoes[1].addr()]),
        ),
        (
            "routes/example.yaml",
            route("example", "example.com", "/", "web-1"),
        ),
        (
            "routes/foo.yaml",
            route("foo", "foo.example.com", "/login", "web-2"),
        ),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(p, y)| (*p, y.as_str())).collect();
    let gw = Gateway::start_with(bin(), &files, options).await.unwrap();
    Setup {
        gw,
        port,
        _echoes: echoes,
    }
}

fn pod(pod: &'static str) -> impl Fn(&e2e::gateway::Reply) -> bool {
    move |r| r.status == 200 && r.pod().as_deref() == Some(pod)
}

fn status(code: u16) -> impl Fn(&e2e::gateway::Reply) -> bool {
    move |r| r.status == code
}

#[tokio::test]
async fn host_and_path_routing_follow_edits_added_and_deleted_files() {
    let Setup { gw, port, _echoes } = setup(&Options::default()).await;
    let envoy_pid = gw.envoy.pid();
    gw.wait_until(port, "example.com", "/", "web-1", pod("web-1"))
        .await
        .unwrap();
    gw.wait_until(port, "foo.example.com", "/login", "web-2", pod("web-2"))
        .await
        .unwrap();
    assert_eq!(
        gw.get(port, "foo.example.com", "/").await.unwrap().status,
        404
    );

    // An edit reaches the running Envoy.
    gw.write(
        "routes/example.yaml",
        &route("example", "example.com", "/", "web-2"),
    )
    .unwrap();
    gw.wait_until(port, "example.com", "/", "moved to web-2", pod("web-2"))
        .await
        .unwrap();

    // A file in a directory created after the start.
    gw.write(
        "routes/new/late.yaml",
        &route("late", "late.example.com", "/", "web-1"),
    )
    .unwrap();
    gw.wait_until(port, "late.example.com", "/x", "added", pod("web-1"))
        .await
        .unwrap();
    gw.remove("routes/new/late.yaml").unwrap();
    gw.wait_until(port, "late.example.com", "/x", "removed", status(404))
        .await
        .unwrap();
    assert_eq!(gw.envoy.pid(), envoy_pid, "Envoy was never restarted");
    // Plain gRPC by default, and no warning about it on loopback.
    let log = gw.serve_log();
    assert!(log.contains("transport=\"plain gRPC\""), "{log}");
    assert!(!log.contains("not loopback"), "{log}");

    // The admin endpoint.
    let (code, ready) = gw.admin("/readyz").await.unwrap();
    assert_eq!(code, 200, "{ready}");
    assert_eq!(gw.admin("/healthz").await.unwrap().0, 200);
    let (code, dump) = gw.admin("/config_dump").await.unwrap();
    assert_eq!(code, 200);
    let dump: serde_json::Value = serde_json::from_str(&dump).unwrap();
    assert_eq!(dump["listeners"][0]["name"], format!("http-{port}"));
    assert!(dump["version"].is_string(), "{dump}");
    let served = dump["version"].as_str().unwrap();
    assert!(ready.contains(served), "{ready} vs {served}");
    let routes = dump["routes"][0]["virtual_hosts"].to_string();
    assert!(routes.contains("foo.example.com") && !routes.contains("late.example.com"));
    assert_eq!(gw.metric("tollgate_xds_streams").await.unwrap(), 1);
    assert!(
        gw.metric("tollgate_xds_acks_total{type=\"RouteConfiguration\"}")
            .await
            .unwrap()
            >= 3
    );
    assert_eq!(
        gw.metric("tollgate_xds_nacks_total{type=\"RouteConfiguration\"}")
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        gw.metric(&format!("tollgate_snapshot{{version=\"{served}\"}}"))
            .await
            .unwrap(),
        1
    );
    let (_, status) = gw.admin("/status").await.unwrap();
    assert!(
        status.contains("httpRoutes:") && status.contains("name: example"),
        "{status}"
    );
}

#[tokio::test]
async fn a_new_broken_file_is_reported_and_every_other_edit_is_served() {
    let Setup { gw, port, _echoes } = setup(&Options::default()).await;
    gw.wait_until(port, "example.com", "/", "web-1", pod("web-1"))
        .await
        .unwrap();
    let version = gw.admin("/readyz").await.unwrap().1;

    // YAML that does not parse has no object to report on: it is left out
    // and reported, and a good edit elsewhere is served with it.
    gw.write("routes/broken.yaml", "apiVersion: v1\nkind: [broken\n")
        .unwrap();
    gw.write(
        "routes/example.yaml",
        &route("example", "example.com", "/", "web-2"),
    )
    .unwrap();
    gw.wait_until(port, "example.com", "/", "moved to web-2", pod("web-2"))
        .await
        .unwrap();
    let status = gw
        .admin_until("/status", "reporting the broken file", |s| {
            s.contains("broken.yaml:2:")
        })
        .await
        .unwrap();
    assert!(status.contains("loadErrors:"), "{status}");
    assert!(gw.status_file().unwrap().contains("broken.yaml:2:"));
    assert!(gw.serve_log().contains("broken.yaml:2:"));
    assert_eq!(gw.metric("tollgate_load_errors").await.unwrap(), 1);
    assert_ne!(gw.admin("/readyz").await.unwrap().1, version);

    // Fixed: nothing left to report.
    gw.remove("routes/broken.yaml").unwrap();
    let status = gw
        .admin_until("/status", "clean", |s| s.contains("loadErrors: []"))
        .await
        .unwrap();
    assert!(!status.contains("broken.yaml"), "{status}");
    assert_eq!(gw.metric("tollgate_load_errors").await.unwrap(), 0);
}

/// Issue 19 part 3: at start-up, YAML that does not parse is left out and
/// reported, an object that does not parse as its kind is refused with a
/// status condition naming the field, a refused policy's route answers 500
/// (never served without it), and everything else is served.
#[tokio::test]
async fn at_start_up_a_broken_file_and_refused_objects_cost_only_themselves() {
    let echo = Echo::start("web-1").await.unwrap();
    let port = free_port().unwrap();
    let refused_route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: typo}\nspec:\n  parentRefs: [{name: eg}]\n  hostnames: [typo.example.com]\n  rules:\n  - backendRefs: [{name: web-1, port: 80}]\n    timeout: {request: 5s}\n";
    let rsa = e2e::jwt_mint::Keys::default().jwks()["keys"][0].clone();
    let jwks = serde_json::json!({ "keys": [rsa] }).to_string();
    let refused_policy = format!("apiVersion: tollgate.dev/v1alpha1\nkind: JWTPolicy\nmetadata: {{name: guard}}\nspec:\n  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: guarded}}]\n  jwt:\n    providers:\n    - {{name: idp, issuer: https://idp.example, localJWKS: {{inline: '{jwks}'}}, audience: api}}\n");
    let files = [
        ("class.yaml", gateway_class()),
        ("gateway.yaml", gateway("default", "eg", port)),
        ("web-1.yaml", service("default", "web-1", &[echo.addr()])),
        ("served.yaml", route("served", "example.com", "/", "web-1")),
        (
            "guarded.yaml",
            route("guarded", "guarded.example.com", "/", "web-1"),
        ),
        ("broken.yaml", "apiVersion: v1\nkind: [broken\n".to_owned()),
        ("typo.yaml", refused_route.to_owned()),
        ("guard.yaml", refused_policy.clone()),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(p, y)| (*p, y.as_str())).collect();
    let gw = Gateway::start_with(bin(), &files, &Options::default())
        .await
        .unwrap();
    gw.wait_until(port, "example.com", "/", "web-1", pod("web-1"))
        .await
        .unwrap();
    gw.wait_until(port, "guarded.example.com", "/", "500", status(500))
        .await
        .unwrap();
    let typo = gw.get(port, "typo.example.com", "/").await.unwrap();
    assert_eq!(typo.status, 404, "a refused route is placed nowhere");

    let report = gw.admin("/status").await.unwrap().1;
    assert!(report.contains("broken.yaml:2:"), "{report}");
    assert!(
        report.contains("typo.yaml:9:") && report.contains("unknown field `timeout`"),
        "{report}"
    );
    assert!(report.contains("reason: UnsupportedValue"), "{report}");
    assert!(
        report.contains("unknown field `audience`")
            && report.contains("answer 500 until it is fixed"),
        "{report}"
    );
    assert_eq!(gw.metric("tollgate_load_errors").await.unwrap(), 3);
    let log = gw.serve_log();
    assert!(
        log.contains("broken.yaml:2:") && log.contains("typo.yaml:9:"),
        "{log}"
    );

    // Fixing the policy protects the route instead of refusing it.
    let fixed = refused_policy.replace("audience: api", "audiences: [api]");
    gw.write("guard.yaml", &fixed).unwrap();
    gw.wait_until(port, "guarded.example.com", "/", "401", status(401))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_file_that_stops_parsing_keeps_its_last_good_version_while_other_edits_are_served() {
    let Setup { gw, port, _echoes } = setup(&Options::default()).await;
    gw.write(
        "routes/other.yaml",
        &route("other", "other.example.com", "/", "web-1"),
    )
    .unwrap();
    gw.wait_until(port, "other.example.com", "/", "web-1", pod("web-1"))
        .await
        .unwrap();

    // other.yaml breaks after it was good, then example.yaml moves to web-2:
    // the edit is served, and other.yaml's last good route with it.
    gw.write("routes/other.yaml", "apiVersion: v1\nkind: [broken\n")
        .unwrap();
    gw.write(
        "routes/example.yaml",
        &route("example", "example.com", "/", "web-2"),
    )
    .unwrap();
    gw.wait_until(port, "example.com", "/", "moved to web-2", pod("web-2"))
        .await
        .unwrap();
    let reply = gw.get(port, "other.example.com", "/").await.unwrap();
    assert_eq!(reply.pod().as_deref(), Some("web-1"));
    let status = gw
        .admin_until("/status", "reporting the stale file", |s| {
            s.contains("other.yaml:2:")
        })
        .await
        .unwrap();
    assert!(
        status.contains("last good version keeps serving"),
        "{status}"
    );
    assert!(gw.serve_log().contains("other.yaml:2:"));
    assert!(gw.metric("tollgate_load_errors").await.unwrap() >= 1);
}

#[tokio::test]
async fn a_configuration_envoy_rejects_is_logged_counted_and_the_previous_keeps_serving() {
    let Setup { gw, port, _echoes } = setup(&Options::default()).await;
    gw.wait_until(port, "example.com", "/", "web-1", pod("web-1"))
        .await
        .unwrap();
    // RE2 allows at most 1,000 repetitions, which the translator's regex
    // check (Rust's syntax) does not know: Envoy rejects the whole route
    // configuration.
    let repetitions = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: repetitions}\nspec:\n  parentRefs: [{name: eg}]\n  hostnames: [re.example.com]\n  rules:\n  - matches: [{path: {type: RegularExpression, value: \"/x{1001}\"}}]\n    backendRefs: [{name: web-2, port: 80}]\n";
    gw.write("routes/repetitions.yaml", repetitions).unwrap();
    gw.admin_until("/metrics", "counting the NACK", |m| {
        m.contains("tollgate_xds_nacks_total{type=\"RouteConfiguration\"} 1")
    })
    .await
    .unwrap();
    let log = gw.serve_log();
    assert!(
        log.contains("NACK") && log.contains("invalid repetition size"),
        "Envoy's error is in the log:\n{log}"
    );
    // Envoy kept the previous route configuration.
    assert_eq!(
        gw.get(port, "example.com", "/")
            .await
            .unwrap()
            .pod()
            .as_deref(),
        Some("web-1")
    );
    assert_eq!(
        gw.get(port, "re.example.com", "/x").await.unwrap().status,
        404
    );

    // The next good configuration is sent and taken.
    gw.remove("routes/repetitions.yaml").unwrap();
    gw.write(
        "routes/example.yaml",
        &route("example", "example.com", "/", "web-2"),
    )
    .unwrap();
    gw.wait_until(port, "example.com", "/", "moved to web-2", pod("web-2"))
        .await
        .unwrap();
    assert_eq!(
        gw.metric("tollgate_xds_nacks_total{type=\"RouteConfiguration\"}")
            .await
            .unwrap(),
        1,
        "the rejected version was not sent again"
    );
}

#[tokio::test]
async fn delta_xds_carries_edits_and_removals() {
    let options = Options {
        delta: true,
        ..Options::default()
    };
    let Setup { gw, port, _echoes } = setup(&options).await;
    gw.wait_until(port, "example.com", "/", "web-1", pod("web-1"))
        .await
        .unwrap();
    gw.write(
        "routes/example.yaml",
        &route("example", "example.com", "/", "web-2"),
    )
    .unwrap();
    gw.wait_until(port, "example.com", "/", "moved to web-2", pod("web-2"))
        .await
        .unwrap();
    // The route goes, and with it the only use of web-1's cluster.
    gw.remove("routes/example.yaml").unwrap();
    gw.wait_until(port, "example.com", "/", "removed", status(404))
        .await
        .unwrap();
    gw.wait_until(
        port,
        "foo.example.com",
        "/login",
        "still web-2",
        pod("web-2"),
    )
    .await
    .unwrap();
    assert!(gw.serve_log().contains("protocol=\"delta\""));
    assert_eq!(
        gw.metric("tollgate_xds_nacks_total{type=\"Cluster\"}")
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn an_envoy_bootstrapped_for_one_gateway_gets_only_that_gateway() {
    let echo = Echo::start("web-1").await.unwrap();
    let (port_a, port_b) = (free_port().unwrap(), free_port().unwrap());
    let route_b = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: b, namespace: team-b}\nspec:\n  parentRefs: [{name: b, namespace: team-b}]\n  hostnames: [b.example.com]\n  rules: [{backendRefs: [{name: web-1, port: 80, namespace: team-a}]}]\n";
    let route_a = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: a, namespace: team-a}\nspec:\n  parentRefs: [{name: a}]\n  hostnames: [a.example.com]\n  rules: [{backendRefs: [{name: web-1, port: 80}]}]\n";
    let files = [
        ("class.yaml", gateway_class()),
        ("a.yaml", gateway("team-a", "a", port_a)),
        ("b.yaml", gateway("team-b", "b", port_b)),
        ("svc.yaml", service("team-a", "web-1", &[echo.addr()])),
        ("route-a.yaml", route_a.to_owned()),
        ("route-b.yaml", route_b.to_owned()),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(p, y)| (*p, y.as_str())).collect();
    let options = Options {
        gateway: Some("team-a/a".into()),
        ..Options::default()
    };
    let gw = Gateway::start_with(bin(), &files, &options).await.unwrap();
    gw.wait_until(port_a, "a.example.com", "/", "web-1", pod("web-1"))
        .await
        .unwrap();
    let listeners = gw.envoy.admin_get("/listeners").await.unwrap();
    assert!(listeners.contains(&format!("http-{port_a}")), "{listeners}");
    assert!(
        !listeners.contains(&format!("http-{port_b}")),
        "{listeners}"
    );
    let clusters = gw.envoy.admin_get("/clusters").await.unwrap();
    assert!(clusters.contains("web-1"), "{clusters}");
    // Status still covers every Gateway.
    let (_, status) = gw.admin("/status").await.unwrap();
    assert!(status.contains("name: b"), "{status}");
}

#[tokio::test]
async fn the_controller_stops_on_sigterm_and_envoy_keeps_its_configuration() {
    let Setup {
        mut gw,
        port,
        _echoes,
    } = setup(&Options::default()).await;
    gw.wait_until(port, "example.com", "/", "web-1", pod("web-1"))
        .await
        .unwrap();
    let exit = gw.terminate_serve().await.unwrap();
    assert!(exit.success(), "{exit}\n{}", gw.serve_log());
    let reply = gw.get(port, "example.com", "/").await.unwrap();
    assert_eq!(reply.pod().as_deref(), Some("web-1"));
}

/// A route filter is the dynamic module's filter in the listener Envoy gets
/// over ADS, with the route's policy in the route; changing it reaches the
/// running Envoy too.
#[tokio::test]
async fn a_header_filter_over_ads_and_its_edit() {
    let Setup { gw, port, _echoes } = setup(&Options::default()).await;
    let with_header = |value: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: example}}\nspec:\n  parentRefs: [{{name: eg}}]\n  hostnames: [example.com]\n  rules:\n  - filters:\n    - type: RequestHeaderModifier\n      requestHeaderModifier: {{add: [{{name: my-added-header, value: {value}}}]}}\n    backendRefs: [{{name: web-1, port: 80}}]\n"
        )
    };
    let header_is = |value: &'static str| {
        move |r: &e2e::gateway::Reply| {
            r.echo()
                .and_then(|e| e.header("my-added-header"))
                .as_deref()
                == Some(value)
        }
    };
    gw.write("routes/example.yaml", &with_header("added-value"))
        .unwrap();
    gw.wait_until(
        port,
        "example.com",
        "/headers",
        "with the header",
        header_is("added-value"),
    )
    .await
    .unwrap();
    gw.write("routes/example.yaml", &with_header("changed"))
        .unwrap();
    gw.wait_until(
        port,
        "example.com",
        "/headers",
        "with the new value",
        header_is("changed"),
    )
    .await
    .unwrap();
    let (_, dump) = gw.admin("/config_dump").await.unwrap();
    assert!(
        dump.contains("DynamicModuleFilterPerRoute") && dump.contains("changed"),
        "{dump}"
    );
}

#[tokio::test]
async fn an_hmac_key_reaches_envoy_but_never_the_admin_endpoint_or_the_status_file() {
    let Setup { gw, port, _echoes } = setup(&Options::default()).await;
    // The quickstart's HS256 key and a token it signed (valid until 2100),
    // taken from the query string so the test needs no header support.
    let quickstart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart");
    let token = std::fs::read_to_string(quickstart.join("token.jwt")).unwrap();
    let secret = "dG9sbGdhdGUtcXVpY2tzdGFydC1kZW1vLXNlY3JldC0wMTIzNDU2Nzg5YWJjZGVm";
    let policy = std::fs::read_to_string(quickstart.join("policies/jwt.yaml"))
        .unwrap()
        .replace("name: backend, sectionName: foo", "name: example")
        .replace(
            "      claimToHeaders:",
            "      extractFrom: {params: [access_token]}\n      claimToHeaders:",
        );
    assert!(policy.contains(secret), "the quickstart's key changed");
    gw.write("policies/jwt.yaml", &policy).unwrap();
    gw.wait_until(port, "example.com", "/", "JWT required", status(401))
        .await
        .unwrap();
    let with_token = format!("/?access_token={}", token.trim());
    gw.wait_until(
        port,
        "example.com",
        &with_token,
        "the token accepted",
        pod("web-1"),
    )
    .await
    .unwrap();

    let (code, dump) = gw.admin("/config_dump").await.unwrap();
    assert_eq!(code, 200);
    assert!(
        dump.contains("DynamicModuleFilter") && dump.contains("jwt_auth"),
        "{dump}"
    );
    assert!(!dump.contains(secret), "the HMAC key is in /config_dump");
    assert!(dump.contains("[redacted]"), "{dump}");
    let (_, status) = gw.admin("/status").await.unwrap();
    assert!(!status.contains(secret), "the HMAC key is in /status");
    assert!(!gw.status_file().unwrap().contains(secret));
    assert!(
        !gw.serve_log().contains(secret),
        "the HMAC key is in the log"
    );
}

/// Every file of the [`setup`] directory, with the example route sent to `service`.
fn copy_config(from: &Path, to: &Path, service: &str) {
    for entry in ["class.yaml", "gateway.yaml", "services", "routes"] {
        let status = std::process::Command::new("cp")
            .arg("-r")
            .arg(from.join(entry))
            .arg(to)
            .status()
            .unwrap();
        assert!(status.success());
    }
    std::fs::write(
        to.join("routes/example.yaml"),
        route("example", "example.com", "/", service),
    )
    .unwrap();
}

#[tokio::test]
async fn a_config_directory_removed_and_created_again_is_watched_again() {
    let Setup { gw, port, _echoes } = setup(&Options::default()).await;
    gw.wait_until(port, "example.com", "/", "web-1", pod("web-1"))
        .await
        .unwrap();
    let dir = gw.config_dir().to_owned();
    let saved = tempfile::tempdir().unwrap();
    copy_config(&dir, saved.path(), "web-2");
    std::fs::remove_dir_all(&dir).unwrap();
    gw.admin_until("/status", "reporting the missing directory", |s| {
        s.contains("No such file or directory")
    })
    .await
    .unwrap();

    std::fs::create_dir(&dir).unwrap();
    copy_config(saved.path(), &dir, "web-2");
    gw.wait_until(
        port,
        "example.com",
        "/",
        "served from the new directory",
        pod("web-2"),
    )
    .await
    .unwrap();
    // And the new directory's edits are seen.
    gw.write(
        "routes/example.yaml",
        &route("example", "example.com", "/", "web-1"),
    )
    .unwrap();
    gw.wait_until(
        port,
        "example.com",
        "/",
        "an edit in the new directory",
        pod("web-1"),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_config_directory_swapped_in_by_mv_is_served_and_its_edits_followed() {
    let Setup { gw, port, _echoes } = setup(&Options::default()).await;
    gw.wait_until(port, "example.com", "/", "web-1", pod("web-1"))
        .await
        .unwrap();
    let dir = gw.config_dir().to_owned();
    let staging = dir.with_extension("next");
    let old = dir.with_extension("old");
    std::fs::create_dir(&staging).unwrap();
    copy_config(&dir, &staging, "web-2");
    std::fs::rename(&dir, &old).unwrap();
    std::fs::rename(&staging, &dir).unwrap();
    gw.wait_until(
        port,
        "example.com",
        "/",
        "the swapped-in directory",
        pod("web-2"),
    )
    .await
    .unwrap();
    // Edits to the new directory are followed (the old one is not watched).
    gw.write(
        "routes/foo.yaml",
        &route("foo", "foo.example.com", "/login", "web-1"),
    )
    .unwrap();
    gw.wait_until(
        port,
        "foo.example.com",
        "/login",
        "an edit in the new directory",
        pod("web-1"),
    )
    .await
    .unwrap();
    std::fs::remove_dir_all(&old).unwrap();
}

#[tokio::test]
async fn a_fifo_named_yaml_blocks_neither_reloads_nor_sigterm() {
    let Setup {
        mut gw,
        port,
        _echoes,
    } = setup(&Options::default()).await;
    gw.wait_until(port, "example.com", "/", "web-1", pod("web-1"))
        .await
        .unwrap();
    let fifo = gw.config_dir().join("routes/pipe.yaml");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    gw.write(
        "routes/example.yaml",
        &route("example", "example.com", "/", "web-2"),
    )
    .unwrap();
    gw.wait_until(
        port,
        "example.com",
        "/",
        "an edit beside the FIFO",
        pod("web-2"),
    )
    .await
    .unwrap();
    let status = gw.admin("/status").await.unwrap().1;
    assert!(
        status.contains("pipe.yaml: skipped: not a regular file"),
        "{status}"
    );
    let exit = gw.terminate_serve().await.unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test]
async fn a_file_truncated_and_written_slowly_is_never_served_half_written() {
    use std::io::Write as _;
    let Setup { gw, port, _echoes } = setup(&Options::default()).await;
    let two_routes = |service: &str| {
        route("example", "example.com", "/", service)
            + "---\n"
            + &route("bar", "bar.example.com", "/", "web-1")
    };
    gw.write("routes/example.yaml", &two_routes("web-1"))
        .unwrap();
    gw.wait_until(port, "bar.example.com", "/", "bar", pod("web-1"))
        .await
        .unwrap();
    // A writer that truncates the file, writes its first document and
    // pauses (a slow disk, a tool writing in chunks) before the second: what
    // it wrote so far loads, but is half of the file.
    let text = two_routes("web-2");
    let (first, rest) = text.split_at(text.find("---").unwrap());
    let mut file = std::fs::File::create(gw.config_dir().join("routes/example.yaml")).unwrap();
    file.write_all(first.as_bytes()).unwrap();
    file.flush().unwrap();
    let pause = std::time::Instant::now();
    let mut answers = Vec::new();
    while pause.elapsed() < std::time::Duration::from_millis(600) {
        answers.push(gw.get(port, "bar.example.com", "/").await.unwrap().status);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    file.write_all(rest.as_bytes()).unwrap();
    drop(file);
    gw.wait_until(port, "example.com", "/", "the whole new file", pod("web-2"))
        .await
        .unwrap();
    assert!(answers.len() > 5);
    assert!(
        answers.iter().all(|s| *s == 200),
        "the second route vanished while its file was written: {answers:?}"
    );
    assert_eq!(
        gw.get(port, "bar.example.com", "/").await.unwrap().status,
        200
    );
}

/// Descriptors the process `pid` has open.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[tokio::test]
async fn idle_admin_connections_cannot_use_up_the_controllers_descriptors() {
    let Setup { gw, port, _echoes } = setup(&Options::default()).await;
    gw.wait_until(port, "example.com", "/", "web-1", pod("web-1"))
        .await
        .unwrap();
    let pid = gw.serve_pid();
    let before = open_files(pid);
    let admin = gw.admin_addr();
    // 300 connections that never send a byte (once enough to break reloads).
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(tokio::net::TcpStream::connect(admin).await.unwrap());
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let during = open_files(pid);
    assert!(
        during <= before + 64 + 4,
        "{during} descriptors open with 300 idle admin connections (were {before})"
    );
    // Reloads and xDS go on.
    gw.write(
        "routes/example.yaml",
        &route("example", "example.com", "/", "web-2"),
    )
    .unwrap();
    gw.wait_until(
        port,
        "example.com",
        "/",
        "an edit during the flood",
        pod("web-2"),
    )
    .await
    .unwrap();
    // The idle ones are closed after 10 s, and the endpoint answers again
    // (a request waits in the backlog meanwhile; the client gives up after 5 s).
    let started = std::time::Instant::now();
    loop {
        if let Ok((200, _)) = gw.admin("/healthz").await {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 30,
            "the admin endpoint never answered again"
        );
    }
    drop(idle);
}

#[tokio::test]
async fn a_load_that_failed_for_lack_of_descriptors_is_retried_without_another_edit() {
    let Setup { gw, port, _echoes } = setup(&Options::default()).await;
    gw.wait_until(port, "example.com", "/", "web-1", pod("web-1"))
        .await
        .unwrap();
    let pid = gw.serve_pid().to_string();
    // util-linux's prlimit on our own child: its soft limit of open files.
    let set_limit = |limit: usize| {
        let done = std::process::Command::new("prlimit")
            .args(["--pid", &pid, &format!("--nofile={limit}:")])
            .output()
            .unwrap();
        assert!(
            done.status.success(),
            "prlimit {limit}: {}",
            String::from_utf8_lossy(&done.stderr)
        );
    };
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let soft: usize = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
        .unwrap();
    // No descriptor left (those open stay usable): the next load cannot open a file.
    set_limit(3);
    gw.write(
        "routes/example.yaml",
        &route("example", "example.com", "/", "web-2"),
    )
    .unwrap();
    // The admin endpoint would need a descriptor too: read the log.
    let started = std::time::Instant::now();
    while !gw.serve_log().contains("retrying the load") {
        assert!(
            started.elapsed().as_secs() < 20,
            "no retry planned:\n{}",
            gw.serve_log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    set_limit(soft);
    assert!(
        gw.serve_log().contains("Too many open files"),
        "{}",
        gw.serve_log()
    );
    // Nothing else changes in the directory; the retry serves the edit.
    gw.wait_until(
        port,
        "example.com",
        "/",
        "the edit, after a retry",
        pod("web-2"),
    )
    .await
    .unwrap();
}
