//! `tollgate ratelimit-server` on a real Redis Cluster and over TLS (issue 18,
//! item 12). Every part is real: `redis-server` nodes in cluster mode joined by
//! `redis-cli --cluster create` on loopback, TLS with certificates made at test
//! time, the service as a process, called with tonic's client.

// Test helpers outside #[test] functions fail the test on a broken setup.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod rls;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::pki::Pki;
use e2e::ratelimit_server::RatelimitServer;
use e2e::redis::{Options, Redis, Tls};
use e2e::redis_cluster::RedisCluster;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use rls::{bin, codes, descriptor, not_ready_and_unavailable, request, wait_for_health, HOUR};
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

/// `n` user ids as varied as real ones: ids differing only in a digit or two
/// differ in a few bits, and CRC16 (the cluster's key hash) maps such keys to
/// a few neighbouring slots, often all on one shard.
fn users(prefix: &str, n: u64) -> Vec<String> {
    (1..=n)
        .map(|i| format!("{prefix}-{:08x}", i.wrapping_mul(2_654_435_761) % (1 << 32)))
        .collect()
}

fn user(id: &str) -> RateLimitRequest {
    request("edge", vec![descriptor(&[("user", id)], Some((3, HOUR)))])
}

/// The service started with `args`, once it reports SERVING, and a client.
async fn serving_service(args: &[&str]) -> (RatelimitServer, RateLimitServiceClient<Channel>) {
    let server = RatelimitServer::start_with(bin(), args, None)
        .await
        .unwrap();
    let serving = ServingStatus::Serving as i32;
    assert_eq!(wait_for_health(&server, serving).await, [serving; 2]);
    let client = RateLimitServiceClient::connect(server.grpc_url())
        .await
        .unwrap();
    (server, client)
}

async fn cluster_service(
    cluster: &RedisCluster,
) -> (RatelimitServer, RateLimitServiceClient<Channel>) {
    serving_service(&["--redis-type", "cluster", "--redis", &cluster.urls()]).await
}

/// `--redis-tls-ca`, `--redis-tls-cert` and `--redis-tls-key` with the test
/// PKI's CA and client certificate.
fn tls_flags(pki: &Pki) -> [&str; 6] {
    fn path(p: &std::path::Path) -> &str {
        p.to_str().unwrap()
    }
    [
        "--redis-tls-ca",
        path(&pki.ca),
        "--redis-tls-cert",
        path(&pki.client.cert),
        "--redis-tls-key",
        path(&pki.client.key),
    ]
}

/// Every one of `users` gets exactly its limit (3 of 4 calls) on its own counter.
async fn each_user_gets_exactly_its_limit(
    client: &RateLimitServiceClient<Channel>,
    users: &[String],
) {
    use Code::{Ok as Allowed, OverLimit};
    for id in users {
        assert_eq!(
            codes(client, &user(id), 4).await,
            [Allowed, Allowed, Allowed, OverLimit],
            "user {id}"
        );
    }
}

/// Counters land on every shard of a three-primary cluster (keys spread by
/// slot), each limit holds exactly, and a call whose descriptors live on
/// different shards is answered as one.
#[tokio::test]
async fn counters_spread_over_a_three_primary_cluster_and_every_limit_holds() {
    let cluster = RedisCluster::start(3, 0, Options::default()).await.unwrap();
    let (server, client) = cluster_service(&cluster).await;
    let users = users("u", 30);
    each_user_gets_exactly_its_limit(&client, &users).await;
    let keys = cluster.keys_per_node().await.unwrap();
    assert_eq!(keys.iter().sum::<u64>(), 30, "{keys:?}");
    assert!(keys.iter().all(|&k| k > 0), "keys per shard: {keys:?}");

    // Ten descriptors in one call: spread over the shards, all counted.
    let many: Vec<_> = (0..10)
        .map(|i| descriptor(&[("tenant", &format!("t{i}"))], Some((2, HOUR))))
        .collect();
    let call = request("edge", many);
    use Code::{Ok as Allowed, OverLimit};
    assert_eq!(
        codes(&client, &call, 3).await,
        [Allowed, Allowed, OverLimit]
    );
    assert_eq!(
        cluster.keys_per_node().await.unwrap().iter().sum::<u64>(),
        40
    );
    assert!(
        server
            .metric("tollgate_ratelimit_redis_pipelines_total")
            .await
            .unwrap()
            >= 3,
        "one pipeline per slot group"
    );
}

/// One call of the load: when it was sent, on which value, and how it went.
struct Sent {
    at: Instant,
    unix_secs: u64,
    value: String,
    took: Duration,
    outcome: Result<(), String>,
}

/// `clients` tasks each calling one after another, every call on one of its
/// own 200 values, until `stop` (or 100,000 calls each).
fn load(
    client: &RateLimitServiceClient<Channel>,
    clients: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<Sent>>> {
    (0..clients)
        .map(|c| {
            let mut client = client.clone();
            let stop = stop.clone();
            let values = users(&format!("c{c}"), 200);
            tokio::spawn(async move {
                let mut sent = Vec::new();
                for value in values.iter().cycle().take(100_000) {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let req = request(
                        "edge",
                        vec![descriptor(&[("load", value)], Some((1_000_000, HOUR)))],
                    );
                    let at = Instant::now();
                    let unix_secs = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs();
                    let answer =
                        tokio::time::timeout(Duration::from_secs(5), client.should_rate_limit(req))
                            .await;
                    let outcome = match answer {
                        Err(_) => Err("timed out".to_string()),
                        Ok(Err(status)) if status.code() == tonic::Code::Unavailable => {
                            Err("unavailable".into())
                        }
                        Ok(Err(status)) => Err(format!("unexpected {status:?}")),
                        Ok(Ok(_)) => Ok(()),
                    };
                    sent.push(Sent {
                        at,
                        unix_secs,
                        value: value.clone(),
                        took: at.elapsed(),
                        outcome,
                    });
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                sent
            })
        })
        .collect()
}

/// A primary killed (SIGKILL) in the middle of load: its replica takes over,
/// and only calls on the killed primary's slots fail, fast (UNAVAILABLE,
/// never hanging) and only until the failover; the other shards keep
/// counting throughout (and the service stays ready), and every shard counts
/// again afterwards.
#[tokio::test]
async fn a_primary_killed_mid_load_fails_over_and_counting_goes_on() {
    let mut cluster = RedisCluster::start(3, 1, Options::default()).await.unwrap();
    let (server, client) = cluster_service(&cluster).await;
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = load(&client, 8, &stop);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let primaries = cluster.primaries().await.unwrap();
    assert_eq!(primaries.len(), 3);
    let victim = primaries[0];
    let victim_slots = cluster.slots_of(victim).await.unwrap();
    let killed_at = Instant::now();
    cluster.kill(victim);
    cluster.wait_until_ok().await.unwrap();
    let failed_over = killed_at.elapsed();
    // The service's slot map follows within a second; load goes on 3 s more.
    let settled = Instant::now() + Duration::from_secs(1);
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);

    let mut sent = Vec::new();
    for task in tasks {
        sent.extend(task.await.unwrap());
    }
    let failures: Vec<&Sent> = sent.iter().filter(|s| s.outcome.is_err()).collect();
    let slowest = sent.iter().map(|s| s.took).max().unwrap_or_default();
    eprintln!(
        "{} calls, {} UNAVAILABLE; failover took {failed_over:?}; slowest call {slowest:?}",
        sent.len(),
        failures.len()
    );
    let survivor = cluster.node(cluster.primaries().await.unwrap()[0]);
    for failure in &failures {
        assert_eq!(
            failure.outcome,
            Err("unavailable".into()),
            "a call hung or failed otherwise"
        );
        assert!(
            failure.at + failure.took >= killed_at,
            "a call failed before the kill"
        );
        assert!(
            failure.at < settled,
            "a call failed after the failover settled"
        );
        let hour = failure.unix_secs - failure.unix_secs % 3600;
        let key = format!("edge_load_{}_{hour}", failure.value);
        let slot: u16 = survivor
            .command(&format!("CLUSTER KEYSLOT {key}"))
            .await
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            victim_slots.iter().any(|r| r.contains(&slot)),
            "{key} (slot {slot}) is not on the killed primary, yet its call failed"
        );
    }
    assert!(slowest < Duration::from_secs(3), "slowest call {slowest:?}");

    // Every shard counts again, limits exact. The service stayed ready
    // throughout: one shard failing over costs the calls on its slots, not
    // every call (as Envoy taking the service out of its cluster would).
    each_user_gets_exactly_its_limit(&client, &users("after", 30)).await;
    let serving = ServingStatus::Serving as i32;
    assert_eq!(wait_for_health(&server, serving).await, [serving; 2]);
    let log = server.log();
    assert!(!log.contains("not serving"), "{log}");
}

/// A cluster none of whose seeds answers: the service starts, is not ready,
/// and answers UNAVAILABLE (Envoy's failure mode applies), never OK by default.
#[tokio::test]
async fn a_cluster_that_cannot_be_reached_is_not_serving_and_calls_are_unavailable() {
    let nowhere = format!("redis://127.0.0.1:{}", e2e::process::free_port().unwrap());
    let server = RatelimitServer::start_with(
        bin(),
        &["--redis-type", "cluster", "--redis", &nowhere],
        None,
    )
    .await
    .unwrap();
    not_ready_and_unavailable(&server).await;
}

/// `rediss://` with the CA and a client certificate: counted in the Redis
/// behind the TLS port. Without the client certificate, or trusting another
/// CA, the service is not ready (and says so), never serving a budget it
/// cannot count; TLS files with a plain `redis://` URL are refused at start.
#[tokio::test]
async fn rediss_with_a_client_certificate_counts_and_a_wrong_ca_is_not_serving() {
    let pki = Pki::generate().unwrap();
    let redis = Redis::start_with(Options {
        tls: Some(Tls {
            cert: pki.server.cert.clone(),
            key: pki.server.key.clone(),
            ca: pki.ca.clone(),
            client: None,
        }),
        cluster: false,
    })
    .await
    .unwrap();
    let url = redis.tls_url().unwrap();
    let tls = tls_flags(&pki);
    let (_server, client) = serving_service(&[&["--redis", &url][..], &tls].concat()).await;
    each_user_gets_exactly_its_limit(&client, &["alice".to_string()]).await;
    assert_eq!(redis.command("DBSIZE").await.unwrap(), "1");

    let [ca_flag, ca, cert_flag, cert, key_flag, key] = tls;
    let rogue_ca = pki.rogue_ca.to_str().unwrap();
    for (what, args) in [
        ("no client certificate", vec!["--redis", &url, ca_flag, ca]),
        (
            "another CA",
            vec![
                "--redis", &url, ca_flag, rogue_ca, cert_flag, cert, key_flag, key,
            ],
        ),
    ] {
        eprintln!("{what}:");
        let server = RatelimitServer::start_with(bin(), &args, None)
            .await
            .unwrap();
        not_ready_and_unavailable(&server).await;
    }

    let refused = std::process::Command::new(bin())
        .args(["ratelimit-server", "--redis", &redis.url(), ca_flag, ca])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("--redis") && stderr.contains("rediss://"),
        "{stderr}"
    );
}

/// A Redis Cluster over TLS (`tls-cluster yes`): the seeds are `rediss://`
/// and the nodes the cluster announces are reached over TLS too.
#[tokio::test]
async fn a_cluster_over_tls_counts_on_every_shard() {
    let pki = Pki::generate().unwrap();
    let tls = Tls {
        cert: pki.server.cert.clone(),
        key: pki.server.key.clone(),
        ca: pki.ca.clone(),
        client: Some((pki.client.cert.clone(), pki.client.key.clone())),
    };
    let cluster = RedisCluster::start(
        3,
        0,
        Options {
            tls: Some(tls),
            cluster: true,
        },
    )
    .await
    .unwrap();
    let urls = cluster.urls();
    assert!(urls.starts_with("rediss://"), "{urls}");
    let cluster_flags = ["--redis-type", "cluster", "--redis", &urls];
    let (_server, client) = serving_service(&[&cluster_flags[..], &tls_flags(&pki)].concat()).await;
    each_user_gets_exactly_its_limit(&client, &users("u", 30)).await;
    let keys = cluster.keys_per_node().await.unwrap();
    assert!(keys.iter().all(|&k| k > 0), "keys per shard: {keys:?}");
}
