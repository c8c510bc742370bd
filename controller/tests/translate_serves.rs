//! HTTPRoute filters, timeouts and weights, and GRPCRoute filters, as a user
//! sees them: a directory of
//! Gateway API YAML, translated by `tollgate translate`, served by a real
//! Envoy (route configurations inlined where ADS would deliver them) in front
//! of echo backends, with the filters from dist/ (the dynamic module and the
//! wasm build, each scenario on both).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failure should stop the test loudly

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{bootstrap, translate, Runtime};
use e2e::echo::Echo;
use e2e::envoy::Envoy;
use e2e::roundtrip::{client, send, Exchange, Expect, Req};

/// Services `backend`, `backend-2`, `mirror` and `grpc`, each on its own echo
/// backend (which speaks HTTP/2 to gRPC's clusters), and routes exercising
/// every filter. The Gateway listens on `port`, a free one, served as
/// written (`--no-port-remap`).
fn resources([backend, backend_2, mirror, grpc]: &[Echo; 4], port: u16) -> String {
    let service = |name: &str, echo: &Echo| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  annotations: {{tollgate.dev/static-endpoints: \"{}\"}}\nspec:\n  ports: [{{port: 8080}}]\n---\n",
            echo.addr()
        )
    };
    let mut yaml = String::new();
    yaml += &service("backend", backend);
    yaml += &service("backend-2", backend_2);
    yaml += &service("mirror", mirror);
    yaml += &service("grpc", grpc);
    yaml += r#"apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: tollgate}
spec: {controllerName: tollgate.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: eg}
spec:
  gatewayClassName: tollgate
  listeners:
  - {name: http, protocol: HTTP, port: PORT}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: filters}
spec:
  parentRefs: [{name: eg}]
  hostnames: [filters.example]
  rules:
  - matches: [{path: {value: /httpbin/}}]
    filters:
    - type: URLRewrite
      urlRewrite:
        hostname: internal.example
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /}
    backendRefs: [{name: backend, port: 8080}]
  - matches: [{path: {value: /full}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /one}}
    backendRefs: [{name: backend, port: 8080}]
  - matches: [{path: {value: /headers}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        add: [{name: my-added-header, value: added-value}]
        set: [{name: x-set, value: "100%{request.path}"}]
        remove: [x-remove]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set: [{name: x-served-by, value: tollgate}]
    backendRefs: [{name: backend, port: 8080}]
  - matches: [{path: {value: /to-https}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, statusCode: 301, hostname: www.example.com}
  - matches: [{path: {value: /moved}}]
    filters:
    - type: RequestRedirect
      requestRedirect:
        port: 8443
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}
  - matches: [{path: {value: /slow}}]
    timeouts: {request: 500ms}
    backendRefs: [{name: backend, port: 8080}]
  - matches: [{path: {value: /mirrored}}]
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: mirror, port: 8080}}
    backendRefs: [{name: backend, port: 8080}]
  - matches: [{path: {value: /split}}]
    backendRefs: [{name: backend, port: 8080, weight: 1}, {name: backend-2, port: 8080, weight: 3}]
  - matches: [{path: {value: /half-missing}}]
    backendRefs: [{name: backend, port: 8080}, {name: missing, port: 8080}]
  - matches: [{path: {value: /cors}}]
    filters:
    - type: CORS
      cors:
        allowOrigins: [https://app.example.com, "https://*.example.org"]
        allowMethods: [GET, POST]
        allowHeaders: [x-token]
        exposeHeaders: [x-trace]
        allowCredentials: true
        maxAge: 600
    backendRefs: [{name: backend, port: 8080}]
  - matches: [{path: {value: /refused}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {statusCode: 302}
    - type: URLRewrite
      urlRewrite: {hostname: elsewhere.example}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: yages}
spec:
  parentRefs: [{name: eg}]
  hostnames: [grpc.example]
  rules:
  - matches: [{method: {service: yages.Echo, method: Ping}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: x-tenant, value: blue}]
        remove: [x-debug]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        add: [{name: x-grpc-served-by, value: tollgate}]
    - type: RequestMirror
      requestMirror: {backendRef: {name: mirror, port: 8080}}
    backendRefs: [{name: grpc, port: 8080}]
  - matches: [{method: {service: yages.Echo, method: Reverse}}]
    filters:
    - type: URLRewrite
      urlRewrite: {hostname: elsewhere.example}
    backendRefs: [{name: grpc, port: 8080}]
"#;
    yaml.replace("port: PORT", &format!("port: {port}"))
}

struct Served {
    envoy: Envoy,
    base: String,
    backends: [Echo; 4],
}

impl Served {
    /// Sends `req` and asserts `expect`, failing with the exchange and Envoy's log.
    async fn check(&self, req: Req, expect: Expect) -> Exchange {
        let ex = send(&client(), &self.base, &req).await.unwrap();
        let diffs = expect.differences(&ex);
        assert!(
            diffs.is_empty(),
            "{req:?}: {diffs:?}\n{} {:?}\n{}\nEnvoy log:\n{}",
            ex.status,
            ex.headers,
            ex.body,
            self.envoy.log()
        );
        ex
    }
}

async fn serve(runtime: Runtime) -> Served {
    let backends = [
        Echo::start("backend").await.unwrap(),
        Echo::start("backend-2").await.unwrap(),
        Echo::start("mirror").await.unwrap(),
        Echo::start("grpc").await.unwrap(),
    ];
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::gateway::free_port().unwrap();
    std::fs::write(dir.path().join("routes.yaml"), resources(&backends, port)).unwrap();
    let translation = translate(runtime, dir.path(), &["--no-port-remap"]);
    let mut config = bootstrap(&translation);
    // Tests bind loopback only.
    for listener in config["static_resources"]["listeners"]
        .as_array_mut()
        .unwrap()
    {
        listener["address"]["socket_address"]["address"] = "127.0.0.1".into();
    }
    let envoy = Envoy::start(&config).await;
    let base = envoy.listener_url(&format!("http-{port}")).await;
    Served {
        envoy,
        base,
        backends,
    }
}

fn get(path: &str) -> Req {
    Req::get(path).host("filters.example")
}

e2e::on_both_runtimes!(httproute_filters_timeouts_and_weights_behave_in_envoy);

async fn httproute_filters_timeouts_and_weights_behave_in_envoy(runtime: Runtime) {
    let s = serve(runtime).await;
    let check = |req, expect| s.check(req, expect);

    // URLRewrite: /httpbin/get → /get (no double slash), the query kept, the host rewritten.
    let ex = check(get("/httpbin/get?x=1"), Expect::status(200).pod("backend")).await;
    let echo = ex.echo.unwrap();
    assert_eq!(echo.path, "/get?x=1");
    assert_eq!(echo.host, "internal.example");
    let ex = check(get("/full/one/two"), Expect::status(200)).await;
    assert_eq!(ex.echo.unwrap().path, "/one");

    // Header modifiers through the header filter; values stay literal.
    check(
        get("/headers")
            .header("x-remove", "gone")
            .header("x-set", "old"),
        Expect::status(200)
            .backend_header("my-added-header", "added-value")
            .backend_header("x-set", "100%{request.path}")
            .backend_absent("x-remove")
            .response_header("x-served-by", "tollgate"),
    )
    .await;
    check(
        get("/full"),
        Expect::status(200).response_absent("x-served-by"),
    )
    .await;

    // Redirects: explicit scheme and host; a port and a prefix replacement.
    check(
        get("/to-https/a?b=c"),
        Expect::status(301)
            .no_backend()
            .response_header("location", "https://www.example.com/to-https/a?b=c"),
    )
    .await;
    check(
        get("/moved/deeper"),
        Expect::status(302)
            .no_backend()
            .response_header("location", "http://filters.example:8443/new/deeper"),
    )
    .await;

    // timeouts.request: a backend slower than 500ms gets Envoy's 504.
    check(get("/slow?delay=3s"), Expect::status(504).no_backend()).await;
    check(get("/slow"), Expect::status(200)).await;

    // CORS through Envoy's CORS filter: a preflight from an allowed origin
    // (a wildcard one too) is answered by Envoy; a simple request reaches the
    // backend and gets the CORS headers; an origin not allowed gets none.
    for origin in ["https://app.example.com", "https://a.b.example.org"] {
        check(
            get("/cors")
                .method("OPTIONS")
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "x-token"),
            Expect::status(200)
                .no_backend()
                .response_header("access-control-allow-origin", origin)
                .response_header("access-control-allow-methods", "GET, POST")
                .response_header("access-control-allow-headers", "x-token")
                .response_header("access-control-allow-credentials", "true")
                .response_header("access-control-max-age", "600"),
        )
        .await;
    }
    check(
        get("/cors").header("origin", "https://app.example.com"),
        Expect::status(200)
            .pod("backend")
            .response_header("access-control-allow-origin", "https://app.example.com")
            .response_header("access-control-expose-headers", "x-trace"),
    )
    .await;
    let preflight_from = |origin: &str| {
        get("/cors")
            .method("OPTIONS")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
    };
    for origin in ["https://evil.example", "https://example.org"] {
        check(
            preflight_from(origin),
            Expect::status(200)
                .no_backend()
                .response_absent("access-control-allow-origin"),
        )
        .await;
    }

    // A rule Tollgate refuses answers 500 rather than skipping a filter.
    check(get("/refused"), Expect::status(500).no_backend()).await;

    // RequestMirror: the mirror backend gets a copy (Envoy counts its requests).
    check(get("/mirrored"), Expect::status(200).pod("backend")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mirrored = loop {
        let stats = s.envoy.admin_get("/stats").await.unwrap();
        let count = stats
            .lines()
            .find_map(|l| l.strip_prefix("cluster.service/default/mirror/8080.upstream_rq_total: "))
            .map_or(0, |v| v.trim().parse::<u64>().unwrap());
        if count >= 1 || Instant::now() >= deadline {
            break count;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(mirrored, 1, "the mirror backend got no copy");

    // Weights through the canary filter: 1:3, and 1:1 with an unresolved
    // backendRef whose share answers 500. A client cannot pick its backend.
    let mut pods: HashMap<String, u32> = HashMap::new();
    for _ in 0..200 {
        let ex = check(
            get("/split").header("x-tollgate-backend", "service/default/backend/8080"),
            Expect::status(200),
        )
        .await;
        *pods.entry(ex.echo.unwrap().pod).or_default() += 1;
    }
    let to_backend = pods.get("backend").copied().unwrap_or(0);
    assert!(
        (40..=60).contains(&to_backend) && pods.get("backend-2") == Some(&(200 - to_backend)),
        "1:3 split over 200 requests: {pods:?}"
    );
    let http = client();
    let mut statuses: HashMap<u16, u32> = HashMap::new();
    for _ in 0..200 {
        let ex = send(&http, &s.base, &get("/half-missing")).await.unwrap();
        *statuses.entry(ex.status).or_default() += 1;
    }
    let errors = statuses.get(&500).copied().unwrap_or(0);
    assert!(
        (90..=110).contains(&errors) && statuses.get(&200) == Some(&(200 - errors)),
        "1:1 with a missing backend over 200 requests: {statuses:?}"
    );
    check(get("/nothing-here"), Expect::status(404).no_backend()).await;

    // GRPCRoute filters, over HTTP/2 to the backend: header modifiers through
    // the header filter and a mirror; a rule with a filter type a GRPCRoute
    // does not have is dropped (an error), the route's other rule serving.
    let call = |method: &str| {
        Req::get(&format!("/yages.Echo/{method}"))
            .method("POST")
            .host("grpc.example")
            .header("content-type", "application/grpc")
    };
    let ex = check(
        call("Ping").header("x-debug", "1"),
        Expect::status(200)
            .pod("grpc")
            .backend_header("x-tenant", "blue")
            .backend_absent("x-debug")
            .response_header("x-grpc-served-by", "tollgate"),
    )
    .await;
    assert_eq!(ex.echo.unwrap().proto, "HTTP/2.0");
    // Envoy turns the local 500 for a gRPC request into a trailers-only
    // answer: HTTP 200 with grpc-status 2 (UNKNOWN).
    check(
        call("Reverse"),
        Expect::status(200)
            .no_backend()
            .response_header("grpc-status", "2"),
    )
    .await;
    let mirror = &s.backends[2];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !mirror
        .received()
        .iter()
        .any(|r| r.path == "/yages.Echo/Ping" && r.proto == "HTTP/2.0")
    {
        assert!(
            Instant::now() < deadline,
            "the mirror got no HTTP/2 copy of the gRPC call: {:?}",
            mirror.received()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
