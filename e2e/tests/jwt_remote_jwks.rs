//! The JWT filter with `remoteJWKS` in a real Envoy (two workers), on both
//! runtimes, against a real HTTP JWKS endpoint: one fetch for all workers, waiting for the first fetch,
//! its timeout, refresh and failure with the last good keys kept, key rotation
//! by unknown `kid` (rate-limited), removed keys not trusted from the cache, and
//! the body size limit.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e::echo::Echo;
use e2e::envoy::Envoy;
use e2e::envoy_config::{cluster, prefix_route, Listener, Runtime, LISTENER};
use e2e::jwks_server::{Answer, JwksServer};
use e2e::jwt_mint::Keys;
use e2e::on_both_runtimes;
use e2e::roundtrip::{client, send, Req};
use serde_json::{json, Value};

const ISSUER: &str = "https://idp.example";

fn claims() -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    json!({"iss": ISSUER, "sub": "alice", "exp": now + 600})
}

/// A JWKS with the P-256 key of `keys` under `kid`.
fn ec_set(entries: &[(&Keys, &str)]) -> String {
    let keys: Vec<Value> = entries
        .iter()
        .map(|(keys, kid)| {
            let mut jwk = keys.jwks()["keys"][1].clone();
            jwk["kid"] = json!(kid);
            jwk
        })
        .collect();
    json!({ "keys": keys }).to_string()
}

fn token(keys: &Keys, kid: &str) -> String {
    keys.sign("ES256", Some(kid), &claims())
}

struct Setup {
    runtime: Runtime,
    envoy: Envoy,
    base: String,
    http: reqwest::Client,
    idp: JwksServer,
    _backend: Echo,
}

/// One remote provider fetching from `idp` through cluster `idp`; `remote`
/// adds to its `remoteJWKS` and `extra` to the filter config.
async fn start(runtime: Runtime, answer: Answer, remote: Value, extra: Value) -> Setup {
    let idp = JwksServer::start(answer).await.expect("jwks server");
    let backend = Echo::start("backend").await.expect("echo");
    let mut remote_jwks =
        json!({"uri": "http://idp.example/.well-known/jwks.json", "cluster": "idp"});
    merge(&mut remote_jwks, remote);
    let mut config = json!({"providers": [{
        "name": "idp", "issuer": ISSUER, "remoteJWKS": remote_jwks,
        "claimToHeaders": [{"header": "x-user", "claim": "sub"}]
    }]});
    merge(&mut config, extra);
    let listener = Listener {
        http_filters: vec![runtime.filter("jwt_auth", &config)],
        routes: vec![prefix_route("all", "/", "backend")],
        clusters: vec![
            cluster("backend", backend.addr()),
            cluster("idp", idp.addr()),
        ],
        ..Listener::default()
    };
    let envoy = Envoy::start(&listener.bootstrap()).await;
    let base = envoy.listener_url(LISTENER).await;
    Setup {
        runtime,
        envoy,
        base,
        http: client(),
        idp,
        _backend: backend,
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, from) {
        a.extend(b);
    }
}

/// Status and the user the backend saw (None for a local reply).
async fn get(http: &reqwest::Client, base: &str, token: &str) -> (u16, Option<String>) {
    let req = Req::get("/api").header("authorization", &format!("Bearer {token}"));
    let ex = send(http, base, &req).await.expect("send");
    (ex.status, ex.echo.and_then(|e| e.header("x-user")))
}

impl Setup {
    async fn get(&self, token: &str) -> (u16, Option<String>) {
        get(&self.http, &self.base, token).await
    }

    /// A counter once it reaches `want` (wasm counters flush every second).
    async fn counter_reaches(&self, name: &str, want: u64) -> u64 {
        self.envoy
            .counter_reaching(&self.runtime.metric(name), want, Duration::from_secs(4))
            .await
    }

    /// Polls until a request with `token` gets `status` (bounded), returning how long it took.
    async fn until_status(&self, token: &str, status: u16, within: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let (got, _) = self.get(token).await;
            if got == status {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < within,
                "still {got} after {within:?}, wanted {status}; {} fetches",
                self.idp.fetches()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn one_fetch_serves_every_worker_and_the_first_requests_wait_for_it(runtime: Runtime) {
    let keys = Keys::default();
    // Slow enough that the first requests arrive while the fetch is under way.
    let answer = Answer::jwks(ec_set(&[(&keys, "k1")])).after(Duration::from_millis(500));
    let s = start(runtime, answer, json!({}), json!({})).await;
    let good = token(&keys, "k1");
    let burst: Vec<_> = (0..20)
        .map(|_| {
            let (http, base, good) = (s.http.clone(), s.base.clone(), good.clone());
            tokio::spawn(async move { get(&http, &base, &good).await })
        })
        .collect();
    for request in burst {
        let (status, user) = request.await.expect("request task");
        assert_eq!((status, user.as_deref()), (200, Some("alice")));
    }
    for _ in 0..20 {
        assert_eq!(s.get(&good).await.0, 200);
    }
    assert_eq!(s.get(&token(&Keys::stranger(), "k1")).await.0, 401);
    assert_eq!(s.idp.fetches(), 1, "two workers, one fetch");
    assert_eq!(
        s.counter_reaches("tollgate_jwt_auth_jwks_fetch_success", 1)
            .await,
        1
    );
}

async fn a_request_waits_no_longer_than_the_timeout_and_its_body_never_leaks(runtime: Runtime) {
    let keys = Keys::default();
    let slow = Answer::jwks(ec_set(&[(&keys, "k1")])).after(Duration::from_secs(20));
    let s = start(runtime, slow, json!({"timeout": "700ms"}), json!({})).await;
    let started = Instant::now();
    let resp = s
        .http
        .post(format!("{}/api", s.base))
        .header("authorization", format!("Bearer {}", token(&keys, "k1")))
        .body("a request body that must not reach the backend while undecided")
        .send()
        .await
        .expect("send");
    let status = resp.status().as_u16();
    let body = resp.text().await.expect("body");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("Jwks remote fetch is failed"), "{body}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(600) && waited < Duration::from_secs(5),
        "waited {waited:?} for a 700ms timeout"
    );
    assert!(
        s.counter_reaches("tollgate_jwt_auth_denied_keys_unavailable", 1)
            .await
            >= 1
    );
}

async fn fail_open_lets_requests_through_when_keys_cannot_be_had(runtime: Runtime) {
    let s = start(
        runtime,
        Answer::status(503),
        json!({}),
        json!({"failOpen": true}),
    )
    .await;
    let (status, user) = s.get(&token(&Keys::default(), "k1")).await;
    assert_eq!((status, user), (200, None), "passed, without claims");
    assert!(
        s.counter_reaches("tollgate_jwt_auth_jwks_fetch_failure", 1)
            .await
            >= 1
    );
}

async fn failed_refreshes_keep_the_last_good_keys_and_retry(runtime: Runtime) {
    let keys = Keys::default();
    let s = start(
        runtime,
        Answer::jwks(ec_set(&[(&keys, "k1")])),
        json!({"cacheDuration": "1s"}),
        json!({}),
    )
    .await;
    let good = token(&keys, "k1");
    assert_eq!(s.get(&good).await.0, 200);
    s.idp.set(Answer::status(500));
    let failing_since = s.idp.fetches();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(s.idp.fetches() > failing_since, "refreshes were attempted");
    assert_eq!(s.get(&good).await.0, 200, "the last good keys still serve");
    assert!(
        s.counter_reaches("tollgate_jwt_auth_jwks_fetch_failure", 1)
            .await
            >= 1
    );
    // Backoff: 1 s, 2 s, 4 s … so a failing endpoint is not hammered.
    let during = s.idp.fetches();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        s.idp.fetches() - during <= 3,
        "{} fetches in 3 s while failing",
        s.idp.fetches() - during
    );
    // The endpoint recovers with a rotated set: the new key works, the old is gone.
    let next = Keys::stranger();
    s.idp.set(Answer::jwks(ec_set(&[(&next, "k2")])));
    s.until_status(&token(&next, "k2"), 200, Duration::from_secs(15))
        .await;
    // The worker that fetched switched at once; the other reads the new set on
    // its next tick (100 ms). After that no worker trusts the removed key, even
    // for a token it verified and cached before.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..10 {
        assert_eq!(
            s.get(&good).await.0,
            401,
            "a removed key is not trusted, even cached"
        );
    }
}

async fn an_unknown_kid_refetches_at_most_once_per_ten_seconds(runtime: Runtime) {
    let old = Keys::default();
    let new = Keys::stranger();
    let s = start(
        runtime,
        Answer::jwks(ec_set(&[(&old, "k1")])),
        json!({"cacheDuration": "1h"}),
        json!({}),
    )
    .await;
    assert_eq!(s.get(&token(&old, "k1")).await.0, 200);
    assert_eq!(s.idp.fetches(), 1);
    // The provider rotates: the first token signed with the new key waits for a refetch.
    s.idp
        .set(Answer::jwks(ec_set(&[(&old, "k1"), (&new, "k2")])));
    let (status, user) = s.get(&token(&new, "k2")).await;
    assert_eq!((status, user.as_deref()), (200, Some("alice")));
    assert_eq!(s.idp.fetches(), 2);
    // Tokens naming keys nobody has do not turn into a fetch flood.
    for i in 0..30 {
        assert_eq!(s.get(&token(&new, &format!("forged-{i}"))).await.0, 401);
    }
    assert_eq!(s.idp.fetches(), 2, "no refetch within 10 s of the last");
}

async fn an_oversized_or_unparsable_jwks_is_refused(runtime: Runtime) {
    let keys = Keys::default();
    let huge = json!({"keys": [], "padding": "x".repeat(300 * 1024)}).to_string();
    let s = start(runtime, Answer::jwks(huge), json!({}), json!({})).await;
    assert_eq!(s.get(&token(&keys, "k1")).await.0, 401);
    assert!(
        s.counter_reaches("tollgate_jwt_auth_jwks_fetch_failure", 1)
            .await
            >= 1
    );
    s.idp.set(Answer::jwks("<html>not json</html>"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(s.get(&token(&keys, "k1")).await.0, 401);
    s.idp.set(Answer::jwks(ec_set(&[(&keys, "k1")])));
    s.until_status(&token(&keys, "k1"), 200, Duration::from_secs(10))
        .await;
}

on_both_runtimes!(
    one_fetch_serves_every_worker_and_the_first_requests_wait_for_it,
    a_request_waits_no_longer_than_the_timeout_and_its_body_never_leaks,
    fail_open_lets_requests_through_when_keys_cannot_be_had,
    failed_refreshes_keep_the_last_good_keys_and_retry,
    an_unknown_kid_refetches_at_most_once_per_ten_seconds,
    an_oversized_or_unparsable_jwks_is_refused,
);
