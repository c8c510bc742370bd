//! Tollgate policies reaching a real Envoy through `tollgate serve`: the seed
//! scenarios of Envoy Gateway's guides in file mode (JWT on `/foo` but not
//! `/bar`, 3 per hour for `x-user-id: one`), a CanaryPolicy sending canary
//! users to the canary backend, a Gateway-wide HeaderPolicy, and deleting a
//! policy file lifting its effect without a restart. One Envoy for all of it;
//! every wait is bounded (see e2e::gateway). Run on both filter runtimes
//! (`--filter-runtime dynamic-module` and `wasm`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a broken setup should fail the test loudly

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e::echo::{Echo, EchoReply};
use e2e::envoy_config::Runtime;
use e2e::gateway::{free_port, gateway, gateway_class, service, Gateway, Options, CHANGE_TIMEOUT};
use e2e::jwks_server::{Answer, JwksServer};
use e2e::jwt_mint::Keys;
use serde_json::json;

const ROUTES: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: backend}
spec:
  parentRefs: [{name: eg}]
  hostnames: [www.example.com]
  rules:
  - name: foo
    matches: [{path: {type: PathPrefix, value: /foo}}]
    backendRefs: [{name: web, port: 80}]
  - name: bar
    matches: [{path: {type: PathPrefix, value: /bar}}]
    backendRefs: [{name: web, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ratelimit}
spec:
  parentRefs: [{name: eg}]
  hostnames: [ratelimit.example]
  rules:
  - backendRefs: [{name: web, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: canary}
spec:
  parentRefs: [{name: eg}]
  hostnames: [canary.example]
  rules:
  - backendRefs:
    - {name: web, port: 80, weight: 100}
    - {name: web-canary, port: 80, weight: 0}
";

const RATE_LIMIT: &str = "apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: one-user}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: ratelimit}]
  rateLimit:
    type: Local
    local:
      rules:
      - clientSelectors:
        - headers: [{name: x-user-id, value: one}]
        limit: {requests: 3, unit: Hour}
";

const CANARY: &str = "apiVersion: tollgate.dev/v1alpha1
kind: CanaryPolicy
metadata: {name: canary-users}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: canary}]
  canary:
    backends: [{name: web, weight: 100}, {name: web-canary, weight: 0}]
    rules:
    - match: {headers: [{name: x-canary, value: \"true\"}]}
      backend: web-canary
";

const HEADERS: &str = "apiVersion: tollgate.dev/v1alpha1
kind: HeaderPolicy
metadata: {name: gateway-wide}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: eg}]
  headers:
    response: {set: [{name: x-served-by, value: tollgate}]}
";

fn jwt_policy(jwks: &JwksServer) -> String {
    format!(
        "apiVersion: tollgate.dev/v1alpha1
kind: JWTPolicy
metadata: {{name: foo-jwt}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: backend, sectionName: foo}}]
  jwt:
    providers:
    - name: example
      remoteJWKS: {{uri: \"http://{}/jwks.json\"}}
",
        jwks.addr()
    )
}

struct Answered {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answered {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn pod(&self) -> Option<String> {
        serde_json::from_str::<EchoReply>(&self.body)
            .ok()
            .map(|e| e.pod)
    }
}

async fn send(port: u16, host: &str, path: &str, headers: &[(&str, &str)]) -> Answered {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut request = client
        .get(format!("http://127.0.0.1:{port}{path}"))
        .header("host", host);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    Answered {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
}

/// Sends until `done` holds, at most [`CHANGE_TIMEOUT`].
async fn send_until(
    gw: &Gateway,
    port: u16,
    (host, path, headers): (&str, &str, &[(&str, &str)]),
    what: &str,
    done: impl Fn(&Answered) -> bool,
) -> Answered {
    let started = Instant::now();
    loop {
        let answer = send(port, host, path, headers).await;
        if done(&answer) {
            return answer;
        }
        assert!(
            started.elapsed() < CHANGE_TIMEOUT,
            "{host}{path}: not {what} after {CHANGE_TIMEOUT:?}; last: {} {:?} {}\n---- serve log ----\n{}",
            answer.status,
            answer.headers,
            answer.body,
            gw.serve_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

e2e::on_both_runtimes!(policies_reach_envoy_and_leave_with_their_file);

async fn policies_reach_envoy_and_leave_with_their_file(runtime: Runtime) {
    let web = Echo::start("web").await.unwrap();
    let canary = Echo::start("web-canary").await.unwrap();
    let keys = Keys::default();
    let jwks = JwksServer::start(Answer::jwks(keys.jwks())).await.unwrap();
    let port = free_port().unwrap();
    let tollgate = Path::new(env!("CARGO_BIN_EXE_tollgate"));
    let gw = Gateway::start_with(
        tollgate,
        &[
            ("class.yaml", &gateway_class()),
            ("gateway.yaml", &gateway("default", "eg", port)),
            ("web.yaml", &service("default", "web", &[web.addr()])),
            (
                "web-canary.yaml",
                &service("default", "web-canary", &[canary.addr()]),
            ),
            ("routes.yaml", ROUTES),
            ("policies/jwt.yaml", &jwt_policy(&jwks)),
            ("policies/ratelimit.yaml", RATE_LIMIT),
            ("policies/canary.yaml", CANARY),
            ("policies/headers.yaml", HEADERS),
        ],
        &Options {
            runtime,
            ..Options::default()
        },
    )
    .await
    .unwrap();

    // JWT: /foo needs a token, /bar does not.
    let missing = send_until(
        &gw,
        port,
        ("www.example.com", "/foo", &[]),
        "refused without a token",
        |a| a.status == 401,
    )
    .await;
    assert!(
        missing
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")),
        "{:?}",
        missing.headers
    );
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let token = keys.sign("RS256", Some("rsa"), &json!({"sub": "user", "exp": exp}));
    let bearer = format!("Bearer {token}");
    let with_token = send(
        port,
        "www.example.com",
        "/foo",
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(with_token.status, 200, "{}", with_token.body);
    let forged = send(
        port,
        "www.example.com",
        "/foo",
        &[(
            "authorization",
            &format!("Bearer {}x", &token[..token.len() - 1]),
        )],
    )
    .await;
    assert_eq!(forged.status, 401);
    let bar = send(port, "www.example.com", "/bar", &[]).await;
    assert_eq!(bar.status, 200, "{}", bar.body);
    // The Gateway-wide HeaderPolicy reaches every route.
    assert_eq!(bar.header("x-served-by"), Some("tollgate"));

    // Rate limit: the first answer carrying the limit headers is request 1.
    let one: &[(&str, &str)] = &[("x-user-id", "one")];
    let first = send_until(
        &gw,
        port,
        ("ratelimit.example", "/", one),
        "rate limited",
        |a| a.header("x-ratelimit-limit").is_some(),
    )
    .await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-ratelimit-limit"), Some("3, 3;w=3600"));
    assert_eq!(first.header("x-ratelimit-remaining"), Some("2"));
    for remaining in ["1", "0"] {
        let a = send(port, "ratelimit.example", "/", one).await;
        assert_eq!(
            (a.status, a.header("x-ratelimit-remaining")),
            (200, Some(remaining))
        );
    }
    let fourth = send(port, "ratelimit.example", "/", one).await;
    assert_eq!(fourth.status, 429);
    for _ in 0..5 {
        let two = send(port, "ratelimit.example", "/", &[("x-user-id", "two")]).await;
        assert_eq!(two.status, 200);
        assert_eq!(two.header("x-ratelimit-limit"), None);
    }

    // Canary: the rule's weights say web only; the policy's rule sends canary users to web-canary.
    let to_canary = send(port, "canary.example", "/", &[("x-canary", "true")]).await;
    assert_eq!(
        to_canary.pod().as_deref(),
        Some("web-canary"),
        "{}",
        to_canary.body
    );
    for _ in 0..5 {
        let a = send(
            port,
            "canary.example",
            "/",
            &[("x-tollgate-backend", "service/default/web-canary/80")],
        )
        .await;
        assert_eq!(
            a.pod().as_deref(),
            Some("web"),
            "a client cannot pick its backend"
        );
    }

    // Status says every policy is Accepted.
    let (_, status) = gw.admin("/status").await.unwrap();
    assert!(
        status.matches("reason: Accepted").count() >= 4 && !status.contains("reason: Invalid"),
        "{status}"
    );

    // Deleting the JWT policy file opens /foo again, without a restart.
    gw.remove("policies/jwt.yaml").unwrap();
    send_until(
        &gw,
        port,
        ("www.example.com", "/foo", &[]),
        "open once the policy is gone",
        |a| a.status == 200,
    )
    .await;
}
