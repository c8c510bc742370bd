//! The JWT filter in a real Envoy, on both runtimes (jwt_auth.wasm and the
//! dynamic module): Envoy Gateway's JWT guide scenario, every algorithm, the
//! security cases, claim headers, token stripping, gRPC answers, optional,
//! metrics and bad configs. Tokens are minted here from real keys.

use std::time::{SystemTime, UNIX_EPOCH};

use e2e::echo::Echo;
use e2e::envoy::Envoy;
use e2e::envoy_config::Runtime;
use e2e::envoy_config::{cluster, prefix_route, Listener, LISTENER};
use e2e::jwt_mint::{alg_none, b64, Keys, ALGORITHMS};
use e2e::on_both_runtimes;
use e2e::roundtrip::{client, roundtrip, send, Expect, Req};
use e2e::stage::{refused_config_log, Stage};
use serde_json::{json, Value};

const ISSUER: &str = "https://issuer.example";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn claims() -> Value {
    json!({"iss": ISSUER, "aud": "api", "sub": "alice", "org": {"team": "core"}, "exp": now() + 600})
}

fn provider(keys: &Keys) -> Value {
    json!({
        "name": "example",
        "issuer": ISSUER,
        "audiences": ["api"],
        "localJWKS": {"type": "Inline", "inline": keys.jwks().to_string()},
        "claimToHeaders": [{"header": "x-user", "claim": "sub"}, {"header": "x-team", "claim": "org.team"}]
    })
}

type Setup = Stage;

async fn start(runtime: Runtime, config: Value) -> Setup {
    Stage::start_on(runtime, "jwt_auth", &config, Vec::new()).await
}

/// Envoy Gateway's guide: `/foo` requires a JWT, `/bar` does not.
async fn guide(runtime: Runtime, keys: &Keys) -> Setup {
    start(
        runtime,
        json!({"routes": {"foo": {"providers": [provider(keys)]}}}),
    )
    .await
}

fn bearer(path: &str, token: &str) -> Req {
    Req::get(path)
        .host("www.example.com")
        .header("authorization", &format!("Bearer {token}"))
}

/// Wasm VM reloads (each one a crash); the dynamic module has no VM (a panic
/// there is caught, and one that escaped would have stopped Envoy).
async fn vm_reloads(s: &Setup) -> u64 {
    match s.runtime {
        Runtime::Wasm => s
            .envoy
            .prometheus_counter("envoy_wasm_jwt_auth_vm_reload")
            .await
            .expect("stats"),
        Runtime::DynamicModule => 0,
    }
}

async fn foo_requires_a_token_and_bar_does_not(runtime: Runtime) {
    let keys = Keys::default();
    let s = guide(runtime, &keys).await;
    s.check(
        Req::get("/foo?x=1").host("www.example.com"),
        Expect::status(401).no_backend().response_header(
            "www-authenticate",
            r#"Bearer realm="http://www.example.com/foo""#,
        ),
    )
    .await;
    s.check(
        bearer("/foo", &keys.sign("RS256", Some("rsa"), &claims())),
        Expect::status(200)
            .backend_header("x-user", "alice")
            .backend_header("x-team", "core")
            .backend_absent("authorization"),
    )
    .await;
    s.check(Req::get("/bar"), Expect::status(200)).await;
}

async fn every_algorithm_passes(runtime: Runtime) {
    let keys = Keys::default();
    let s = guide(runtime, &keys).await;
    for (alg, kid) in ALGORITHMS {
        for kid in [Some(kid), None] {
            let ex = send(
                &s.http,
                &s.base,
                &bearer("/foo", &keys.sign(alg, kid, &claims())),
            )
            .await
            .expect("send");
            assert_eq!(ex.status, 200, "{alg} kid={kid:?}: {}", ex.body);
            let echo = ex.echo.expect("the backend answered");
            assert_eq!(echo.header("x-user").as_deref(), Some("alice"), "{alg}");
            assert_eq!(echo.header("x-team").as_deref(), Some("core"), "{alg}");
            assert_eq!(echo.header("authorization"), None, "{alg}: token stripped");
        }
    }
}

async fn forged_and_invalid_tokens_are_refused_and_nothing_crashes(runtime: Runtime) {
    let keys = Keys::default();
    let s = guide(runtime, &keys).await;
    let invalid = r#"error="invalid_token""#;
    let good = keys.sign("RS256", Some("rsa"), &claims());
    let parts: Vec<&str> = good.split('.').collect();
    let mut sig = base64_decode(parts[2]);
    sig[5] ^= 0x40;
    let with = |c: Value| keys.sign("ES256", Some("p256"), &c);
    let mut expired = claims();
    expired["exp"] = json!(now() - 3600);
    let mut early = claims();
    early["nbf"] = json!(now() + 3600);
    let mut wrong_iss = claims();
    wrong_iss["iss"] = json!("https://evil.example");
    let mut wrong_aud = claims();
    wrong_aud["aud"] = json!("other");
    let cases: Vec<(&str, String, u16)> = vec![
        ("alg none", alg_none(&claims()), 401),
        ("RS/HS confusion", keys.rs_hs_confused(&claims()), 401),
        (
            "unknown kid",
            keys.sign("RS256", Some("nope"), &claims()),
            401,
        ),
        (
            "tampered payload",
            format!("{}.{}.{}", parts[0], b64(br#"{"sub":"root"}"#), parts[2]),
            401,
        ),
        (
            "tampered signature",
            format!("{}.{}.{}", parts[0], parts[1], b64(&sig)),
            401,
        ),
        ("expired", with(expired), 401),
        ("nbf in the future", with(early), 401),
        ("wrong issuer", with(wrong_iss), 401),
        ("malformed base64", "e30.*****.e30".into(), 401),
        ("two segments", "e30.e30".into(), 401),
        ("four segments", format!("{good}.e30"), 401),
        (
            "20 KiB token",
            format!("{}.{}.{}", parts[0], "A".repeat(20 * 1024), parts[2]),
            401,
        ),
        (
            "non-JSON header",
            format!("{}.{}.{}", b64(b"not json"), parts[1], parts[2]),
            401,
        ),
        (
            "non-JSON payload",
            format!("{}.{}.{}", parts[0], b64(b"[1,"), parts[2]),
            401,
        ),
        (
            "signed by a key not in the JWKS",
            Keys::stranger().sign("ES256", Some("p256"), &claims()),
            401,
        ),
    ];
    for (what, token, status) in cases {
        let ex = send(&s.http, &s.base, &bearer("/foo", &token))
            .await
            .expect("send");
        assert_eq!(ex.status, status, "{what}: {}", ex.body);
        assert!(ex.echo.is_none(), "{what}: reached the backend");
        let challenge = ex.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.contains(invalid),
            "{what}: WWW-Authenticate {challenge:?}"
        );
    }
    // Audience mismatch is 403: the token is genuine, just not for this API.
    s.check(
        bearer("/foo", &with(wrong_aud)),
        Expect::status(403).no_backend(),
    )
    .await;
    // Two Authorization headers: refused rather than guessing which one counts.
    s.check(
        bearer("/foo", &good).header("authorization", &format!("Bearer {good}")),
        Expect::status(401).no_backend(),
    )
    .await;
    // A 64 KiB token exceeds Envoy's own header limit: Envoy answers 431 before any filter runs.
    let huge = send(&s.http, &s.base, &bearer("/foo", &"a".repeat(64 * 1024)))
        .await
        .expect("send");
    assert_eq!(huge.status, 431);
    // After all that, a valid token still passes and the VM never crashed.
    s.check(bearer("/foo", &good), Expect::status(200)).await;
    assert_eq!(
        vm_reloads(&s).await,
        0,
        "the VM was reloaded, so it crashed:\n{}",
        s.envoy.log()
    );
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .expect("base64")
}

async fn client_sent_claim_headers_are_replaced_or_removed(runtime: Runtime) {
    let keys = Keys::default();
    let s = start(
        runtime,
        json!({"providers": [provider(&keys)], "optional": true}),
    )
    .await;
    // Valid token: the claim wins over what the client sent.
    s.check(
        bearer("/foo", &keys.sign("EdDSA", Some("ed"), &claims())).header("x-user", "admin"),
        Expect::status(200).backend_header("x-user", "alice"),
    )
    .await;
    // No token (optional): the spoofed header never reaches the backend.
    s.check(
        Req::get("/foo")
            .header("x-user", "admin")
            .header("x-team", "root"),
        Expect::status(200)
            .backend_absent("x-user")
            .backend_absent("x-team"),
    )
    .await;
    // Optional does not excuse a bad token.
    s.check(bearer("/foo", "a.b.c"), Expect::status(401).no_backend())
        .await;
}

async fn tokens_from_params_and_cookies_are_stripped_unless_forwarded(runtime: Runtime) {
    let keys = Keys::default();
    let mut p = provider(&keys);
    p["extractFrom"] = json!({"params": ["access_token"], "cookies": ["session"]});
    let mut forwarded = provider(&keys);
    forwarded["name"] = json!("forwarded");
    forwarded["forward"] = json!(true);
    let s = start(
        runtime,
        json!({"routes": {
            "foo": {"providers": [p]},
            "bar": {"providers": [forwarded]}
        }}),
    )
    .await;
    let token = keys.sign("ES384", Some("p384"), &claims());
    let ex = s
        .check(
            Req::get(&format!("/foo?a=1&access_token={token}&b=2")),
            Expect::status(200),
        )
        .await;
    assert_eq!(ex.echo.expect("echo").path, "/foo?a=1&b=2");
    s.check(
        Req::get("/foo").header("cookie", &format!("theme=dark; session={token}")),
        Expect::status(200).backend_header("cookie", "theme=dark"),
    )
    .await;
    // HTTP/1 may carry several Cookie headers: the token is found in the second,
    // and the backend gets the other cookies in one header.
    s.check(
        Req::get("/foo")
            .header("cookie", "theme=dark")
            .header("cookie", &format!("lang=en; session={token}")),
        Expect::status(200).backend_header("cookie", "theme=dark; lang=en"),
    )
    .await;
    s.check(
        bearer("/bar", &token),
        Expect::status(200).backend_header("authorization", &format!("Bearer {token}")),
    )
    .await;
}

async fn grpc_requests_get_unauthenticated(runtime: Runtime) {
    let keys = Keys::default();
    let s = guide(runtime, &keys).await;
    let ex = s
        .check(
            Req::get("/foo")
                .method("POST")
                .header("content-type", "application/grpc"),
            Expect::status(200)
                .no_backend()
                .response_header("grpc-status", "16"),
        )
        .await;
    assert_eq!(ex.header("grpc-message").as_deref(), Some("Jwt is missing"));
    let mut wrong_aud = claims();
    wrong_aud["aud"] = json!("other");
    s.check(
        bearer("/foo", &keys.sign("RS256", Some("rsa"), &wrong_aud))
            .method("POST")
            .header("content-type", "application/grpc"),
        Expect::status(200)
            .no_backend()
            .response_header("grpc-status", "7"),
    )
    .await;
}

async fn outcomes_are_counted(runtime: Runtime) {
    let keys = Keys::default();
    let s = guide(runtime, &keys).await;
    s.check(
        bearer("/foo", &keys.sign("HS256", None, &claims())),
        Expect::status(200),
    )
    .await;
    s.check(Req::get("/foo"), Expect::status(401)).await;
    s.check(bearer("/foo", &alg_none(&claims())), Expect::status(401))
        .await;
    let want = [
        ("tollgate_jwt_auth_allowed", 1),
        ("tollgate_jwt_auth_denied_missing", 1),
        ("tollgate_jwt_auth_denied_bad_signature", 1),
    ];
    let mut got = Vec::new();
    for _ in 0..50 {
        got.clear();
        for (name, _) in want {
            let metric = runtime.metric(name);
            got.push((
                name,
                s.envoy.prometheus_counter(&metric).await.expect("stats"),
            ));
        }
        if got == want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(got, want);
}

async fn bad_configs_are_rejected_at_startup_naming_the_field(runtime: Runtime) {
    let keys = Keys::default();
    let cases = [
        (
            json!({"providers": []}),
            "`providers`: at least one provider is required",
        ),
        (
            json!({"providers": [provider(&keys)], "optionl": true}),
            "`optionl`: unknown field",
        ),
        (
            json!({"providers": [{"name": "r", "remoteJWKS": {"uri": "idp/jwks"}}]}),
            "`providers[0].remoteJWKS.uri`: `idp/jwks` is not an absolute http(s) URI",
        ),
        (
            json!({"providers": [{"name": "l", "localJWKS": {"inline": "{\"keys\": []}"}}]}),
            "`providers[0].localJWKS.inline`: no usable key",
        ),
    ];
    for (config, expected) in cases {
        let log = refused_config_log(runtime, "jwt_auth", &config).await;
        assert!(
            log.contains(expected),
            "{config}: expected {expected:?} in\n{log}"
        );
    }
}

/// The verified-token cache never outlives the token: cached while valid, refused
/// once `exp` has passed (no skew here, so the test waits only a few seconds).
async fn a_cached_token_is_refused_once_it_expires(runtime: Runtime) {
    let keys = Keys::default();
    let mut p = provider(&keys);
    p["clockSkewSeconds"] = json!(0);
    let s = start(runtime, json!({"providers": [p]})).await;
    let mut short = claims();
    short["exp"] = json!(now() + 2);
    let token = keys.sign("ES256", Some("p256"), &short);
    for _ in 0..3 {
        s.check(
            bearer("/foo", &token),
            Expect::status(200).backend_header("x-user", "alice"),
        )
        .await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    s.check(
        bearer("/foo", &token),
        Expect::status(401).no_backend().response_header(
            "www-authenticate",
            r#"Bearer realm="http://www.example.com/foo", error="invalid_token""#,
        ),
    )
    .await;
}

/// Claim-based routing: a route matched on the `x-team` claim header. With
/// `recomputeRoute: true` the filter asks Envoy to re-select the route after
/// setting the claim headers. Without it the dynamic module keeps the route
/// chosen before the filter ran, while Envoy 1.40 re-selects anyway for wasm,
/// because it clears the route cache on every header edit a wasm module makes
/// (ABI 0.2.1; see the header filter's route-stability notes): the second half
/// pins both so a change in Envoy shows up here. A client that sends the claim
/// header itself never picks the route with it, on either runtime.
async fn recompute_route_routes_by_claim(runtime: Runtime) {
    let keys = Keys::default();
    let core = Echo::start("core-team").await.expect("echo");
    let rest = Echo::start("everyone").await.expect("echo");
    for recompute in [true, false] {
        let mut p = provider(&keys);
        p["recomputeRoute"] = json!(recompute);
        let listener = Listener {
            http_filters: vec![
                runtime.filter("jwt_auth", &json!({"providers": [p], "optional": true}))
            ],
            routes: vec![
                json!({"name": "core", "match": {"prefix": "/", "headers": [
                    {"name": "x-team", "string_match": {"exact": "core"}}
                ]}, "route": {"cluster": "core"}}),
                prefix_route("rest", "/", "rest"),
            ],
            clusters: vec![cluster("core", core.addr()), cluster("rest", rest.addr())],
            ..Listener::default()
        };
        let envoy = Envoy::start(&listener.bootstrap()).await;
        let base = envoy.listener_url(LISTENER).await;
        let http = client();
        let token = keys.sign("ES256", Some("p256"), &claims());
        let by_claim = recompute || runtime == Runtime::Wasm;
        roundtrip(
            &http,
            &base,
            &bearer("/x", &token),
            &Expect::status(200).pod(if by_claim { "core-team" } else { "everyone" }),
        )
        .await;
        // A client sending the claim header itself (no token; `optional`) is not
        // routed by it: the header is removed and the route re-selected.
        roundtrip(
            &http,
            &base,
            &Req::get("/x").header("x-team", "core"),
            &Expect::status(200).pod("everyone").backend_absent("x-team"),
        )
        .await;
    }
}

on_both_runtimes!(
    foo_requires_a_token_and_bar_does_not,
    every_algorithm_passes,
    forged_and_invalid_tokens_are_refused_and_nothing_crashes,
    client_sent_claim_headers_are_replaced_or_removed,
    tokens_from_params_and_cookies_are_stripped_unless_forwarded,
    grpc_requests_get_unauthenticated,
    outcomes_are_counted,
    bad_configs_are_rejected_at_startup_naming_the_field,
    a_cached_token_is_refused_once_it_expires,
    recompute_route_routes_by_claim,
);
