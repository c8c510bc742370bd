//! Counters in Redis: fixed-window `INCRBY` + `EXPIRE`, as envoyproxy/ratelimit
//! does, with every concurrent call's commands batched into one pipeline.
//!
//! Why the `redis` crate and not `limitador`: limitador (0.14) keeps its limits
//! in the limiter (registered up front, matched by CEL conditions), while Envoy
//! sends each limit with the request (`RateLimitDescriptor.limit`); its windows
//! start at a counter's first hit rather than aligned to the unit; its Redis keys
//! are its own encoding, not envoyproxy/ratelimit's `<domain>_<key>_<value>_<window>`;
//! its exact Redis storage runs a Lua script per check (one round trip each), and
//! its batching storage flushes on a timer and so admits more than the limit
//! across replicas; and it pins redis 0.27 and tonic 0.12, older than envoy-types
//! needs. So the counting is ours, and small.
//!
//! Round trips: a single task owns the batching. It takes every request
//! waiting in the queue (up to [`MAX_BATCH_COMMANDS`]), sends all their commands
//! as one pipeline (one per hash slot on a Redis Cluster:
//! [`super::redis_connection`]), waits for the answers, hands each caller its
//! counts, and repeats. While one batch is in flight the next queues up, so
//! under load many calls share one round trip; an idle service still answers a
//! lone call with one. The `tollgate_ratelimit_redis_pipelines` counter against
//! `tollgate_ratelimit_requests` gives the round trips per request.

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::metrics::Metrics;
use super::redis_connection::{Connection, Increment, RedisArgs, StoreError, REDIS_TIMEOUT};

/// Most counter increments sent in one batch. Bounds the size of a pipeline
/// (two commands per increment) so one batch cannot hold Redis for long.
const MAX_BATCH_COMMANDS: usize = 1024;
/// Calls waiting for the batch task; a full queue makes callers wait (backpressure).
const QUEUE_LEN: usize = 4096;

struct Job {
    increments: Vec<Increment>,
    reply: oneshot::Sender<Result<Vec<u64>, StoreError>>,
}

/// Handle to the batch task; cheap to clone. The task ends once every handle is
/// dropped and the queue is drained.
#[derive(Clone)]
pub struct RedisStore {
    jobs: mpsc::Sender<Job>,
    /// The batch task's connection, shared, for [`RedisStore::ping`].
    conn: Connection,
}

impl RedisStore {
    /// Starts the batch task. Does not connect: the first call does, so the
    /// service starts (and answers UNAVAILABLE) while Redis is down.
    pub fn start(
        args: &RedisArgs,
        metrics: Metrics,
    ) -> Result<(RedisStore, JoinHandle<()>), StoreError> {
        let conn = Connection::open(args)?;
        let (jobs, queue) = mpsc::channel(QUEUE_LEN);
        let task = tokio::spawn(run_batches(conn.clone(), queue, metrics));
        Ok((RedisStore { jobs, conn }, task))
    }

    /// Whether Redis answers a `PING` on the service's own connection (so a
    /// wrong password or a Redis that is away fails it), within the timeout.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match tokio::time::timeout(REDIS_TIMEOUT, self.conn.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Redis(e.to_string())),
            Err(_) => Err(StoreError::Redis("PING timed out".into())),
        }
    }

    /// Adds to every counter and returns their new values, in order.
    pub async fn increment(&self, increments: Vec<Increment>) -> Result<Vec<u64>, StoreError> {
        if increments.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { increments, reply })
            .await
            .map_err(|_| StoreError::Stopped)?;
        answer.await.map_err(|_| StoreError::Stopped)?
    }
}

async fn run_batches(conn: Connection, mut queue: mpsc::Receiver<Job>, metrics: Metrics) {
    while let Some(first) = queue.recv().await {
        let mut commands = first.increments.len();
        let mut batch = vec![first];
        while commands < MAX_BATCH_COMMANDS {
            match queue.try_recv() {
                Ok(job) => {
                    commands += job.increments.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let increments: Vec<&Increment> = batch.iter().flat_map(|job| &job.increments).collect();
        let counts = conn.increment(&increments).await;
        metrics.redis_pipelines.inc_by(counts.pipelines as u64);
        metrics.redis_commands.inc_by(2 * commands as u64);
        if let Some(first_error) = counts.failed.first() {
            metrics.redis_errors.inc_by(counts.failed.len() as u64);
            tracing::warn!(error = %first_error, failed = counts.failed.len(), pipelines = counts.pipelines, "redis pipeline failed; answering UNAVAILABLE for its calls");
        }
        let mut values = counts.values.into_iter();
        for job in batch {
            let mine = values
                .by_ref()
                .take(job.increments.len())
                .map(saturated)
                .collect::<Result<Vec<u64>, _>>();
            if let (Err(e), true) = (&mine, counts.failed.is_empty()) {
                metrics.redis_errors.inc();
                tracing::warn!(error = %e, "a counter could not be incremented; answering UNAVAILABLE for its call");
            }
            // A caller that went away (Envoy's timeout) no longer needs its answer.
            let _ = job.reply.send(mine);
        }
    }
    tracing::debug!("redis batch task stopped");
}

/// A counter's new value; one Redis refused to take past `i64::MAX` is full
/// (over any limit) rather than an error, so a key pushed to the top keeps
/// answering OVER_LIMIT until its window ends instead of failing every call.
fn saturated(result: redis::RedisResult<u64>) -> Result<u64, StoreError> {
    match result {
        Ok(n) => Ok(n),
        Err(e) if e.to_string().contains("would overflow") => Ok(u64::MAX),
        Err(e) => Err(StoreError::Redis(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::super::redis_connection::{redacted_url, RedisType};
    use super::*;

    fn single(url: &str) -> RedisArgs {
        RedisArgs {
            redis: url.into(),
            redis_type: RedisType::Single,
            redis_tls_ca: None,
            redis_tls_cert: None,
            redis_tls_key: None,
        }
    }

    #[test]
    fn a_password_in_a_redis_url_is_never_shown() {
        for (url, shown) in [
            (
                "redis://:hunter2@127.0.0.1:6379",
                "redis://[redacted]@127.0.0.1:6379",
            ),
            (
                "redis://app:hunter2@redis:6379/2",
                "redis://[redacted]@redis:6379/2",
            ),
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            ("redis://a@b:c@host/0", "redis://[redacted]@host/0"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redacted_url(url), shown);
        }
    }

    #[test]
    fn a_malformed_url_with_a_password_is_refused_without_it() {
        let Err(e) = RedisStore::start(
            &single("redis://:hunter2@127.0.0.1:notaport"),
            Metrics::new(),
        ) else {
            panic!("accepted");
        };
        let message = e.to_string();
        assert!(message.starts_with("invalid --redis URL"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}
