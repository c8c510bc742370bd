//! A real Redis Cluster for one test: `primaries` × (1 + `replicas`)
//! `redis-server` nodes in cluster mode on loopback, joined with
//! `redis-cli --cluster create`, and ready once every node says
//! `cluster_state:ok`. A test kills a primary to watch its replica take over.

use std::ops::RangeInclusive;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

use crate::redis::{Options, Redis};

/// How long the cluster may take to agree on its slots (or on a failover).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

pub struct RedisCluster {
    nodes: Vec<Redis>,
    /// Shards: how many live primaries a settled cluster has.
    shards: usize,
    tls: bool,
}

impl RedisCluster {
    /// Starts the nodes and joins them; node `i < primaries` starts as a primary.
    pub async fn start(
        primaries: usize,
        replicas: usize,
        options: Options,
    ) -> Result<RedisCluster> {
        let tls = options.tls.is_some();
        let mut nodes = Vec::new();
        for _ in 0..primaries * (1 + replicas) {
            nodes.push(
                Redis::start_with(Options {
                    cluster: true,
                    ..options.clone()
                })
                .await?,
            );
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let mut create = Command::new("redis-cli");
        create
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null());
        let out = tokio::task::spawn_blocking(move || create.output())
            .await?
            .context("running redis-cli --cluster create (run `make setup`)")?;
        if !out.status.success() {
            bail!(
                "redis-cli --cluster create failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let cluster = RedisCluster {
            nodes,
            shards: primaries,
            tls,
        };
        cluster.wait_until_ok().await?;
        Ok(cluster)
    }

    /// The seed nodes for `--redis` (comma-separated; TLS ports when the
    /// cluster was started with TLS).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .filter_map(|n| if self.tls { n.tls_url() } else { Some(n.url()) })
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn node(&self, i: usize) -> &Redis {
        &self.nodes[i]
    }

    /// Indices of the live nodes that are primaries now.
    pub async fn primaries(&self) -> Result<Vec<usize>> {
        Ok(self.roles().await?.0)
    }

    /// The live primaries, and whether every live replica has finished
    /// copying its primary (a replica that never synced cannot take over).
    async fn roles(&self) -> Result<(Vec<usize>, bool)> {
        let mut primaries = Vec::new();
        let mut replicas_synced = true;
        for (i, node) in self.nodes.iter().enumerate() {
            if node.pid().is_none() {
                continue;
            }
            let info = node.command("INFO replication").await?;
            let has = |line: &str| info.lines().any(|l| l.trim() == line);
            if has("role:master") {
                primaries.push(i);
            } else if !has("master_link_status:up") {
                replicas_synced = false;
            }
        }
        Ok((primaries, replicas_synced))
    }

    /// Keys held by each live node (0 for a killed one), in node order.
    pub async fn keys_per_node(&self) -> Result<Vec<u64>> {
        let mut keys = Vec::new();
        for node in &self.nodes {
            if node.pid().is_none() {
                keys.push(0);
                continue;
            }
            keys.push(node.command("DBSIZE").await?.parse()?);
        }
        Ok(keys)
    }

    /// The slots node `i` serves, from its own `CLUSTER NODES` line.
    pub async fn slots_of(&self, i: usize) -> Result<Vec<RangeInclusive<u16>>> {
        let nodes = self.nodes[i].command("CLUSTER NODES").await?;
        let Some(myself) = nodes.lines().find(|l| l.contains("myself")) else {
            bail!("no `myself` line in CLUSTER NODES:\n{nodes}");
        };
        let mut slots = Vec::new();
        // `<id> <addr> <flags> <primary> <ping> <pong> <epoch> <link> <slot or range>…`
        for field in myself.split_whitespace().skip(8) {
            let (first, last) = field.split_once('-').unwrap_or((field, field));
            slots.push(first.parse()?..=last.parse()?);
        }
        Ok(slots)
    }

    /// SIGKILL one node.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Waits until every live node reports `cluster_state:ok` with all 16384
    /// slots served, there is a live primary for every shard (after a primary
    /// is killed: once its replica has taken over), and every replica is in sync.
    pub async fn wait_until_ok(&self) -> Result<()> {
        let started = Instant::now();
        loop {
            let mut last = String::new();
            let mut ok = true;
            for node in self.nodes.iter().filter(|n| n.pid().is_some()) {
                match node.command("CLUSTER INFO").await {
                    Ok(info)
                        if info.contains("cluster_state:ok")
                            && info.contains("cluster_slots_ok:16384") => {}
                    Ok(info) => {
                        ok = false;
                        last = info;
                    }
                    Err(e) => {
                        ok = false;
                        last = e.to_string();
                    }
                }
            }
            if ok {
                let (primaries, replicas_synced) = self.roles().await?;
                if primaries.len() == self.shards && replicas_synced {
                    return Ok(());
                }
                last = format!("live primaries: {primaries:?}, replicas synced: {replicas_synced}");
            }
            if started.elapsed() > SETTLE_TIMEOUT {
                bail!(
                    "the cluster did not settle in {SETTLE_TIMEOUT:?}; last CLUSTER INFO:\n{last}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
