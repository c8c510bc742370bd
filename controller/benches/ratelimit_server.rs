//! `make bench-ratelimit-server`: `tollgate ratelimit-server` (the release
//! build in `dist/`) against a real `redis-server`, driven directly by a gRPC
//! client at concurrency 1, 16 and 64, on one hot key that is over its
//! limit (the over-limit cache's case), and at concurrency 1, 16 and 64 on a
//! real three-primary Redis Cluster. Prints a Markdown table: calls/s,
//! p50/p99, the service's CPU per call (from `/proc`), and Redis round trips
//! (pipelines) and commands per call (from the service's own counters).
//! Every loop is bounded by its duration; nothing here is asserted on time.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use e2e::bench::cpu_seconds;
use e2e::ratelimit_server::RatelimitServer;
use e2e::redis::{Options, Redis};
use e2e::redis_cluster::RedisCluster;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{
    Entry, RateLimitOverride,
};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;

const SECONDS: u64 = 4;
const HOUR: i32 = 3;

fn call(user: &str, limit: u32) -> RateLimitRequest {
    RateLimitRequest {
        domain: "bench".into(),
        descriptors: vec![RateLimitDescriptor {
            entries: vec![Entry {
                key: "user".into(),
                value: user.into(),
            }],
            limit: Some(RateLimitOverride {
                requests_per_unit: limit,
                unit: HOUR,
            }),
            ..RateLimitDescriptor::default()
        }],
        hits_addend: 0,
    }
}

struct Row {
    name: String,
    calls: usize,
    over: usize,
    latencies: Vec<Duration>,
    cpu_us_per_call: f64,
    pipelines_per_call: f64,
    commands_per_call: f64,
}

/// `concurrency` clients calling for SECONDS; `user(i)` is client i's key.
async fn run(
    server: &RatelimitServer,
    name: &str,
    concurrency: usize,
    user: impl Fn(usize) -> (String, u32),
) -> Result<Row> {
    let client = RateLimitServiceClient::connect(server.grpc_url()).await?;
    let pipelines0 = server
        .metric("tollgate_ratelimit_redis_pipelines_total")
        .await?;
    let commands0 = server
        .metric("tollgate_ratelimit_redis_commands_total")
        .await?;
    let cpu0 = cpu_seconds(server.pid())?;
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let mut tasks = Vec::new();
    for i in 0..concurrency {
        let mut client = client.clone();
        let (id, limit) = user(i);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut over = 0;
            while Instant::now() < deadline {
                let started = Instant::now();
                let answer = client
                    .should_rate_limit(call(&id, limit))
                    .await?
                    .into_inner();
                latencies.push(started.elapsed());
                if answer.overall_code == Code::OverLimit as i32 {
                    over += 1;
                }
            }
            anyhow::Ok((latencies, over))
        }));
    }
    let mut latencies = Vec::new();
    let mut over = 0;
    for t in tasks {
        let (l, o) = t.await??;
        latencies.extend(l);
        over += o;
    }
    let cpu = cpu_seconds(server.pid())? - cpu0;
    let calls = latencies.len();
    ensure!(calls > 0, "no call finished");
    let pipelines = server
        .metric("tollgate_ratelimit_redis_pipelines_total")
        .await?
        - pipelines0;
    let commands = server
        .metric("tollgate_ratelimit_redis_commands_total")
        .await?
        - commands0;
    latencies.sort();
    Ok(Row {
        name: name.into(),
        calls,
        over,
        latencies,
        cpu_us_per_call: cpu * 1e6 / calls as f64,
        pipelines_per_call: pipelines as f64 / calls as f64,
        commands_per_call: commands as f64 / calls as f64,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> Result<()> {
    let bin = e2e::paths::tollgate_bin();
    let redis = Redis::start().await?;
    let server = RatelimitServer::start(&bin, &redis.url(), None).await?;
    eprintln!("benchmark: tollgate ratelimit-server, {SECONDS} s per row, one gRPC channel");
    let huge = u32::MAX;
    let mut rows = Vec::new();
    for concurrency in [1, 16, 64] {
        eprintln!("  concurrency {concurrency}, a key per client, never over");
        let name = format!("concurrency {concurrency}, key per client");
        rows.push(
            run(&server, &name, concurrency, |i| {
                (format!("c{concurrency}-{i}"), huge)
            })
            .await?,
        );
    }
    eprintln!("  concurrency 16, one hot key over its limit");
    rows.push(
        run(
            &server,
            "concurrency 16, one key over its limit",
            16,
            |_| ("hot".into(), 1),
        )
        .await?,
    );
    drop(server);
    drop(redis);

    // The same load on a three-primary Redis Cluster: counters spread by slot,
    // one pipeline per slot group ("round trips" counts those groups).
    let cluster = RedisCluster::start(3, 0, Options::default()).await?;
    let urls = cluster.urls();
    let server =
        RatelimitServer::start_with(&bin, &["--redis-type", "cluster", "--redis", &urls], None)
            .await?;
    for concurrency in [1, 16, 64] {
        eprintln!("  Redis Cluster, concurrency {concurrency}, a key per client, never over");
        let name =
            format!("Redis Cluster (3 primaries), concurrency {concurrency}, key per client");
        rows.push(
            run(&server, &name, concurrency, |i| {
                (format!("k{concurrency}-{i}"), huge)
            })
            .await?,
        );
    }
    drop(server);
    drop(cluster);

    let date = std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()?;
    println!(
        "\ntollgate ratelimit-server — {} (2 vCPU shared with the client and Redis)\n",
        String::from_utf8_lossy(&date.stdout).trim()
    );
    println!("| run | calls/s | p50 ms | p99 ms | over limit | service CPU µs/call | Redis round trips/call | Redis commands/call |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        let pct = |p: f64| ms(r.latencies[((r.latencies.len() - 1) as f64 * p) as usize]);
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {} | {:.1} | {:.3} | {:.2} |",
            r.name,
            r.calls as f64 / SECONDS as f64,
            pct(0.5),
            pct(0.99),
            r.over,
            r.cpu_us_per_call,
            r.pipelines_per_call,
            r.commands_per_call
        );
    }
    Ok(())
}
