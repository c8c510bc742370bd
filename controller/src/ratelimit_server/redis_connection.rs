//! Where the counters live: one Redis, or a Redis Cluster, plain or over TLS.
//!
//! The flags follow envoyproxy/ratelimit's settings: `--redis-type cluster`
//! (its `REDIS_TYPE=cluster`) with the seed nodes as a comma-separated
//! `--redis` (its `REDIS_URL`), and `rediss://` plus `--redis-tls-ca`,
//! `--redis-tls-cert`, `--redis-tls-key` (its `REDIS_TLS_CACERT`,
//! `REDIS_TLS_CLIENT_CERT`, `REDIS_TLS_CLIENT_KEY`).
//!
//! On a cluster a pipeline must stay within one hash slot (the redis crate
//! refuses crossed slots), so a batch is split by the slot of each counter's
//! key and the slot groups are sent at once; the cluster connection writes
//! every group bound for one node on that node's single connection, so the
//! round trips are per shard, not per key. A group that fails (its shard is
//! failing over) fails only the calls with a counter in it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo, Slot};
use redis::io::tcp::TcpSettings;
use redis::{ClientTlsConfig, IntoConnectionInfo as _, TlsCertificates};

/// One counter to add to: `INCRBY key hits` then `EXPIRE key expire_secs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Increment {
    pub key: String,
    pub hits: u64,
    pub expire_secs: u64,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("invalid --redis URL `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("invalid {flag}: {reason}")]
    BadTls { flag: String, reason: String },
    #[error("redis: {0}")]
    Redis(String),
    #[error("the redis batch task has stopped")]
    Stopped,
}

/// A Redis URL as logs and errors may show it: its user information
/// (`redis://user:password@host`) replaced, since it holds the password.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://[redacted]@{host}{}", &rest[authority_end..]),
        None => url.to_owned(),
    }
}

/// Connecting and each pipeline's answer. Envoy's rate limit filter times out
/// after 20 ms by default; an answer after a second helps no one.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// `TCP_NODELAY` on every Redis connection (the redis crate leaves Nagle on):
/// on a cluster the slot groups bound for one node are written back to back,
/// and with Nagle on each after the first would wait for the previous one's
/// ACK, which Redis may delay by up to 40 ms.
fn tcp_settings() -> TcpSettings {
    TcpSettings::default().set_nodelay(true)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RedisType {
    /// One Redis (or a proxy in front of several).
    Single,
    /// A Redis Cluster: counters spread over its shards by key slot.
    Cluster,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RedisArgs {
    /// Redis holding the counters, e.g. `redis://127.0.0.1:6379`, `rediss://` for TLS; with
    /// `--redis-type cluster`, some or all of the cluster's nodes, comma-separated.
    #[arg(long, env = "TOLLGATE_REDIS_URL", value_name = "URL[,URL…]")]
    pub redis: String,
    #[arg(long, env = "TOLLGATE_REDIS_TYPE", value_enum, default_value_t = RedisType::Single)]
    pub redis_type: RedisType,
    /// PEM file of the certificate authorities that sign Redis's certificate (`rediss://`);
    /// the system's roots when absent.
    #[arg(long, env = "TOLLGATE_REDIS_TLS_CA", value_name = "FILE")]
    pub redis_tls_ca: Option<PathBuf>,
    /// PEM client certificate presented to Redis (`tls-auth-clients yes`); needs `--redis-tls-key`.
    #[arg(
        long,
        env = "TOLLGATE_REDIS_TLS_CERT",
        value_name = "FILE",
        requires = "redis_tls_key"
    )]
    pub redis_tls_cert: Option<PathBuf>,
    /// PEM private key of `--redis-tls-cert`.
    #[arg(
        long,
        env = "TOLLGATE_REDIS_TLS_KEY",
        value_name = "FILE",
        requires = "redis_tls_cert"
    )]
    pub redis_tls_key: Option<PathBuf>,
}

impl RedisArgs {
    /// Every URL of `--redis`, trimmed.
    fn urls(&self) -> Vec<&str> {
        self.redis
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect()
    }

    /// `--redis` as logs may show it (passwords redacted).
    pub fn redacted(&self) -> String {
        self.urls()
            .into_iter()
            .map(redacted_url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The TLS files, read; `None` when no TLS flag is given.
    fn certificates(&self) -> Result<Option<TlsCertificates>, StoreError> {
        let read = |flag: &str, path: &PathBuf| {
            std::fs::read(path).map_err(|e| StoreError::BadTls {
                flag: flag.to_owned(),
                reason: format!("{}: {e}", path.display()),
            })
        };
        let root_cert = match &self.redis_tls_ca {
            Some(path) => Some(read("--redis-tls-ca", path)?),
            None => None,
        };
        let client_tls = match (&self.redis_tls_cert, &self.redis_tls_key) {
            (Some(cert), Some(key)) => Some(ClientTlsConfig {
                client_cert: read("--redis-tls-cert", cert)?,
                client_key: read("--redis-tls-key", key)?,
            }),
            _ => None,
        };
        if root_cert.is_none() && client_tls.is_none() {
            return Ok(None);
        }
        if let Some(plain) = self
            .urls()
            .into_iter()
            .find(|u| !u.starts_with("rediss://"))
        {
            return Err(StoreError::BadTls {
                flag: "--redis".into(),
                reason: format!(
                    "TLS files are given but `{}` is not a rediss:// URL",
                    redacted_url(plain)
                ),
            });
        }
        Ok(Some(TlsCertificates {
            client_tls,
            root_cert,
        }))
    }
}

/// An open (or lazily opening) connection; cheap to clone, every clone shares it.
#[derive(Clone)]
pub enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// What one batch of increments got back.
pub struct Counts {
    /// Each increment's new value or its error, in the order given.
    pub values: Vec<Result<u64, redis::RedisError>>,
    /// Pipelines sent (one per slot group on a cluster).
    pub pipelines: usize,
    /// Pipelines that failed as a whole.
    pub failed: Vec<redis::RedisError>,
}

impl Connection {
    /// Prepares the connection without connecting: the first command does, so
    /// the service starts (and answers UNAVAILABLE) while Redis is down.
    pub fn open(args: &RedisArgs) -> Result<Connection, StoreError> {
        let urls = args.urls();
        let bad_url = |url: &str, e: redis::RedisError| StoreError::BadUrl {
            url: redacted_url(url),
            reason: e.to_string().replace(url, &redacted_url(url)),
        };
        let certificates = args.certificates()?;
        match args.redis_type {
            RedisType::Single => {
                let [url] = urls.as_slice() else {
                    return Err(StoreError::BadUrl {
                        url: args.redacted(),
                        reason: "one URL is expected unless --redis-type is cluster".into(),
                    });
                };
                let info = url
                    .into_connection_info()
                    .map_err(|e| bad_url(url, e))?
                    .set_tcp_settings(tcp_settings());
                let client = match certificates {
                    Some(certs) => redis::Client::build_with_tls(info, certs),
                    None => redis::Client::open(info),
                }
                .map_err(|e| bad_url(url, e))?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(REDIS_TIMEOUT))
                    .set_response_timeout(Some(REDIS_TIMEOUT))
                    // Fail fast while Redis is away (the call answers UNAVAILABLE and
                    // Envoy applies its failure mode); the manager reconnects on the next call.
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(50));
                let manager = ConnectionManager::new_lazy_with_config(client, config)
                    .map_err(|e| StoreError::Redis(e.to_string()))?;
                Ok(Connection::Single(manager))
            }
            RedisType::Cluster => {
                if urls.is_empty() {
                    return Err(StoreError::BadUrl {
                        url: String::new(),
                        reason: "no node URL given".into(),
                    });
                }
                for url in &urls {
                    // Each seed parsed alone, so an error names the one at fault.
                    redis::Client::open(*url).map_err(|e| bad_url(url, e))?;
                }
                let mut builder = ClusterClient::builder(urls.iter().copied())
                    .tcp_settings(tcp_settings())
                    .connection_timeout(REDIS_TIMEOUT)
                    .response_timeout(REDIS_TIMEOUT)
                    // A shard failing over fails its calls within a few hundred
                    // milliseconds instead of holding them through the election; the
                    // slot map is refreshed as the errors come, so later calls reach
                    // the promoted replica.
                    .retries(2)
                    .min_retry_wait(20)
                    .max_retry_wait(200);
                if let Some(certs) = certificates {
                    builder = builder.certs(certs);
                }
                let client = builder.build().map_err(|e| StoreError::BadUrl {
                    url: args.redacted(),
                    reason: e.to_string(),
                })?;
                let config = ClusterConfig::new()
                    .set_connection_timeout(REDIS_TIMEOUT)
                    .set_response_timeout(REDIS_TIMEOUT);
                Ok(Connection::Cluster(
                    client.get_pending_async_connection_with_config(config),
                ))
            }
        }
    }

    /// Whether Redis answers a `PING` — on a cluster, every primary, so the
    /// service is ready only while every slot can be counted.
    pub async fn ping(&self) -> Result<(), redis::RedisError> {
        let ping = redis::cmd("PING");
        match self.clone() {
            Connection::Single(mut conn) => ping.query_async::<String>(&mut conn).await.map(drop),
            Connection::Cluster(mut conn) => conn
                .route_command(
                    ping,
                    RoutingInfo::MultiNode((
                        MultipleNodeRoutingInfo::AllMasters,
                        Some(ResponsePolicy::AllSucceeded),
                    )),
                )
                .await
                .map(drop),
        }
    }

    /// `INCRBY key hits` + `EXPIRE key expire_secs` for every increment: one
    /// pipeline on one Redis, one per hash slot (sent together) on a cluster.
    pub async fn increment(&self, increments: &[&Increment]) -> Counts {
        match self {
            Connection::Single(conn) => {
                let all: Vec<usize> = (0..increments.len()).collect();
                let answer = send(conn.clone(), increments, &all).await;
                counts(increments.len(), &[all], vec![answer])
            }
            Connection::Cluster(conn) => {
                let mut by_slot: HashMap<Slot, Vec<usize>> = HashMap::new();
                for (i, inc) in increments.iter().enumerate() {
                    by_slot.entry(Slot::for_key(&inc.key)).or_default().push(i);
                }
                let groups: Vec<Vec<usize>> = by_slot.into_values().collect();
                let answers = futures_util::future::join_all(
                    groups
                        .iter()
                        .map(|group| send(conn.clone(), increments, group)),
                )
                .await;
                counts(increments.len(), &groups, answers)
            }
        }
    }
}

/// What one pipeline answered: each of its commands' results, or its failure.
type Answer = Result<Vec<Result<u64, redis::RedisError>>, redis::RedisError>;

/// The `len` increments' values from the answers of the pipelines that
/// carried them (`groups[k]` the indices pipeline `k` carried); a failed
/// pipeline fails each of its increments.
fn counts(len: usize, groups: &[Vec<usize>], answers: Vec<Answer>) -> Counts {
    let mut values: Vec<Option<Result<u64, redis::RedisError>>> = (0..len).map(|_| None).collect();
    let mut failed = Vec::new();
    for (group, answer) in groups.iter().zip(answers) {
        match answer {
            Ok(group_values) => {
                for (&i, value) in group.iter().zip(group_values) {
                    values[i] = Some(value);
                }
            }
            Err(e) => {
                for &i in group {
                    values[i] = Some(Err(e.clone()));
                }
                failed.push(e);
            }
        }
    }
    Counts {
        values: values
            .into_iter()
            .map(|v| v.unwrap_or_else(|| Err(missing_answer())))
            .collect(),
        pipelines: groups.len(),
        failed,
    }
}

/// One pipeline for the increments at `indices`; each command's own result,
/// so one caller's bad key (a value that is not a number, say) fails only
/// that caller's call, not the rest of the pipeline.
async fn send<C: redis::aio::ConnectionLike>(
    mut conn: C,
    increments: &[&Increment],
    indices: &[usize],
) -> Answer {
    let mut pipe = redis::pipe();
    for &i in indices {
        let inc = increments[i];
        pipe.cmd("INCRBY").arg(&inc.key).arg(inc.hits);
        pipe.cmd("EXPIRE")
            .arg(&inc.key)
            .arg(inc.expire_secs)
            .ignore();
    }
    let values: Vec<redis::RedisResult<u64>> = pipe.ignore_errors().query_async(&mut conn).await?;
    if values.len() != indices.len() {
        return Err(redis::RedisError::from((
            redis::ErrorKind::Client,
            "pipeline answer",
            format!("expected {} counts, got {}", indices.len(), values.len()),
        )));
    }
    Ok(values)
}

fn missing_answer() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Client, "no answer for a counter"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(redis: &str, redis_type: RedisType) -> RedisArgs {
        RedisArgs {
            redis: redis.into(),
            redis_type,
            redis_tls_ca: None,
            redis_tls_cert: None,
            redis_tls_key: None,
        }
    }

    fn refusal(args: &RedisArgs) -> String {
        match Connection::open(args) {
            Ok(_) => panic!("{} was accepted", args.redacted()),
            Err(e) => e.to_string(),
        }
    }

    #[tokio::test]
    async fn one_redis_takes_one_url_and_a_cluster_several() {
        let two = "redis://127.0.0.1:7000, redis://127.0.0.1:7001";
        let message = refusal(&args(two, RedisType::Single));
        assert!(message.contains("one URL is expected"), "{message}");
        assert!(Connection::open(&args(two, RedisType::Cluster)).is_ok());
        assert!(refusal(&args(" , ", RedisType::Cluster)).contains("no node URL"));
    }

    #[tokio::test]
    async fn a_bad_seed_is_named_without_its_password() {
        let seeds = "redis://127.0.0.1:7000,redis://:hunter2@127.0.0.1:notaport";
        let message = refusal(&args(seeds, RedisType::Cluster));
        assert!(
            message.contains("[redacted]@127.0.0.1:notaport"),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[tokio::test]
    async fn tls_files_need_rediss_urls_and_name_their_flag() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not read by this test").unwrap();
        let mut plain = args("redis://:hunter2@127.0.0.1:6379", RedisType::Single);
        plain.redis_tls_ca = Some(ca.clone());
        let message = refusal(&plain);
        assert!(message.starts_with("invalid --redis:"), "{message}");
        assert!(
            message.contains("not a rediss:// URL") && !message.contains("hunter2"),
            "{message}"
        );

        let mut missing = args("rediss://127.0.0.1:6379", RedisType::Single);
        missing.redis_tls_ca = Some(dir.path().join("absent.pem"));
        let message = refusal(&missing);
        assert!(
            message.starts_with("invalid --redis-tls-ca:") && message.contains("absent.pem"),
            "{message}"
        );
    }
}
