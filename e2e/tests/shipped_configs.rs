//! The static configs in envoy-configs/ are what users copy: they must load the
//! built filters and behave as their comments say. Fixed ports are swapped for
//! free ones; everything else is used verbatim.

use e2e::echo::Echo;
use e2e::envoy::{Envoy, Options};
use e2e::envoy_config::LISTENER;
use e2e::paths;
use e2e::roundtrip::{client, roundtrip, Expect, Req};

/// Starts Envoy on `envoy-configs/<name>` with echo backends `echo-a` (port 3000)
/// and `echo-b` (port 3001) moved to free ports.
async fn start_shipped(name: &str) -> (Envoy, String, Vec<Echo>) {
    let root = paths::workspace_root();
    let mut text = std::fs::read_to_string(root.join("envoy-configs").join(name)).expect("config");
    let a = Echo::start("echo-a").await.expect("echo");
    let b = Echo::start("echo-b").await.expect("echo");
    for (fixed, port) in [
        (9901, 0),
        (10000, 0),
        (3000, a.addr().port()),
        (3001, b.addr().port()),
    ] {
        text = text.replace(
            &format!("port_value: {fixed} "),
            &format!("port_value: {port} "),
        );
    }
    // The configs name the filters relative to the repository root, where users run Envoy.
    text = text.replace(
        "filename: dist/",
        &format!("filename: {}/dist/", root.display()),
    );
    let envoy = Envoy::try_start_text(&text, name, &Options::default())
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let base = envoy.listener_url(LISTENER).await;
    (envoy, base, vec![a, b])
}

#[tokio::test]
async fn header_mod_examples_do_what_their_comments_say() {
    for example in ["header-mod.yaml", "header-mod-dynamic.yaml"] {
        header_mod_example(example).await;
    }
}

/// The wasm and the dynamic module example hold the same policy.
async fn header_mod_example(name: &str) {
    let (_envoy, base, _backends) = start_shipped(name).await;
    let http = client();
    roundtrip(
        &http,
        &base,
        &Req::get("/headers"),
        &Expect::status(200).backend_header("my-added-header", "added-value"),
    )
    .await;
    roundtrip(
        &http,
        &base,
        &Req::get("/req-header-add"),
        &Expect::status(200).backend_header("foo", "bar"),
    )
    .await;
    roundtrip(
        &http,
        &base,
        &Req::get("/anything?q=1")
            .header("x-internal-secret", "s3cr3t")
            .header("X-Echo-Set-Header", "X-Debug-Trace:abc,X-Kept:yes"),
        &Expect::status(200)
            .pod("echo-a")
            .backend_header("x-forwarded-path", "GET /anything?q=1")
            .backend_absent("x-internal-secret")
            .response_header("x-served-by", "tollgate")
            .response_header("x-kept", "yes")
            .response_absent("x-debug-trace"),
    )
    .await;
}

#[tokio::test]
async fn header_mod_upstream_example_keeps_the_route() {
    let (_envoy, base, _backends) = start_shipped("header-mod-upstream.yaml").await;
    let http = client();
    roundtrip(
        &http,
        &base,
        &Req::get("/"),
        &Expect::status(200)
            .pod("echo-a")
            .backend_header("env", "canary"),
    )
    .await;
    roundtrip(
        &http,
        &base,
        &Req::get("/").header("env", "canary"),
        &Expect::status(200).pod("echo-b"),
    )
    .await;
}

#[tokio::test]
async fn canary_examples_do_what_their_comments_say() {
    for example in [
        "canary.yaml",
        "canary-dynamic.yaml",
        "canary-cluster-specifier.yaml",
    ] {
        canary_example(example).await;
    }
}

async fn canary_example(name: &str) {
    let (_envoy, base, _backends) = start_shipped(name).await;
    let http = client();
    let pod = |req: Req| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let ex = e2e::roundtrip::send(&http, &base, &req)
                .await
                .expect("send");
            assert_eq!(ex.status, 200, "{}", ex.body);
            let echo = ex.echo.expect("echo reply");
            // The filters route by the header they write; the cluster specifier writes none.
            let wrote = echo.header("x-tollgate-backend").is_some();
            assert_eq!(wrote, !name.contains("cluster-specifier"), "{name}");
            echo.pod
        }
    };
    for _ in 0..5 {
        assert_eq!(pod(Req::get("/").header("env", "canary")).await, "echo-b");
    }
    let mut on_canary = 0;
    for u in 0..100 {
        let user = Req::get("/").header("x-user-id", &format!("user-{u}"));
        let first = pod(user.clone()).await;
        for _ in 0..3 {
            assert_eq!(pod(user.clone()).await, first, "user-{u} moved");
        }
        on_canary += usize::from(first == "echo-b");
    }
    assert!(
        (3..=20).contains(&on_canary),
        "{on_canary} of 100 users on the canary"
    );
}

/// The four filters from the dynamic module in one chain: a verified user is
/// counted by the rate limit under the `sub` of its token (a client-sent
/// x-user-id is not trusted), responses carry the header, `env: canary` picks
/// the canary.
#[tokio::test]
async fn the_all_filters_dynamic_example_chains_the_four() {
    use e2e::jwt_mint::Keys;
    let (_envoy, base, _backends) = start_shipped("all-filters-dynamic.yaml").await;
    let http = client();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let token = Keys::default().sign(
        "HS256",
        None,
        &serde_json::json!({"iss": "https://issuer.example", "sub": "alice", "exp": now + 600}),
    );
    let alice = Req::get("/").header("authorization", &format!("Bearer {token}"));
    for _ in 0..3 {
        roundtrip(
            &http,
            &base,
            &alice,
            &Expect::status(200)
                .pod("echo-a")
                .backend_header("x-user-id", "alice")
                .response_header("x-served-by", "tollgate"),
        )
        .await;
    }
    roundtrip(&http, &base, &alice, &Expect::status(429).no_backend()).await;
    // Claiming to be alice without her token: the header is dropped, not counted as hers.
    roundtrip(
        &http,
        &base,
        &Req::get("/").header("x-user-id", "alice"),
        &Expect::status(200).backend_absent("x-user-id"),
    )
    .await;
    roundtrip(
        &http,
        &base,
        &Req::get("/").header("env", "canary"),
        &Expect::status(200).pod("echo-b"),
    )
    .await;
}
