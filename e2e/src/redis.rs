//! A real `redis-server` for one test, on a free loopback port, without
//! persistence. A test can kill it (Redis down) and start it again on the same
//! port (Redis back) to check that clients recover without a restart. With
//! [`Options`] it also listens for TLS on a second port, or runs as a node of
//! a Redis Cluster ([`crate::redis_cluster`]). The plain port is always open:
//! it is how the test itself inspects the server.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::process::{die_with_parent, free_port};

/// How long redis-server may take to answer PING after starting.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How a server is started beyond the plain defaults.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Also serve TLS on a port of its own, requiring a client certificate
    /// signed by the CA (`tls-auth-clients yes`).
    pub tls: Option<Tls>,
    /// Run as a cluster node (cluster bus on a port of its own, 1 s node timeout).
    pub cluster: bool,
}

/// The PEM files of a TLS server.
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Trusted for client certificates (and, in a cluster, the other nodes').
    pub ca: PathBuf,
    /// Presented when this node connects to another (cluster bus, replication).
    pub client: Option<(PathBuf, PathBuf)>,
}

pub struct Redis {
    child: Option<Child>,
    port: u16,
    tls_port: Option<u16>,
    cluster_port: Option<u16>,
    options: Options,
    dir: TempDir,
}

impl Redis {
    /// Starts `redis-server` (installed by `make setup`) and waits for PING.
    pub async fn start() -> Result<Redis> {
        Redis::start_with(Options::default()).await
    }

    /// Starts with `options`. A port taken between choosing it and Redis
    /// binding it (by another test's process) is chosen again, up to 3 times.
    pub async fn start_with(options: Options) -> Result<Redis> {
        let dir = tempfile::Builder::new()
            .prefix("tollgate-redis-")
            .tempdir()?;
        let mut redis = Redis {
            child: None,
            port: 0,
            tls_port: None,
            cluster_port: None,
            options,
            dir,
        };
        let mut attempt = 1;
        loop {
            redis.port = free_port()?;
            redis.tls_port = redis
                .options
                .tls
                .as_ref()
                .map(|_| free_port())
                .transpose()?;
            redis.cluster_port = redis.options.cluster.then(free_port).transpose()?;
            match redis.spawn().await {
                Err(e) if attempt < 3 && e.to_string().contains("Address already in use") => {
                    attempt += 1;
                    let _ = std::fs::remove_file(redis.dir.path().join("redis.log"));
                }
                Err(e) => return Err(e),
                Ok(()) => return Ok(redis),
            }
        }
    }

    /// `rediss://127.0.0.1:<tls port>`, when started with TLS.
    pub fn tls_url(&self) -> Option<String> {
        self.tls_port.map(|p| format!("rediss://127.0.0.1:{p}"))
    }

    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// The running server's process id (None while killed).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as a crash or a network partition looks to clients.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts Redis again on the same port, empty (no persistence).
    pub async fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn().await
    }

    async fn spawn(&mut self) -> Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("redis.log"))?;
        let mut command = Command::new("redis-server");
        die_with_parent(&mut command);
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path());
        if let (Some(tls), Some(port)) = (&self.options.tls, self.tls_port) {
            command
                .args(["--tls-port", &port.to_string()])
                .arg("--tls-cert-file")
                .arg(&tls.cert)
                .arg("--tls-key-file")
                .arg(&tls.key)
                .arg("--tls-ca-cert-file")
                .arg(&tls.ca)
                .args(["--tls-auth-clients", "yes"]);
            if let Some((cert, key)) = &tls.client {
                command
                    .arg("--tls-client-cert-file")
                    .arg(cert)
                    .arg("--tls-client-key-file")
                    .arg(key);
            }
        }
        if let Some(bus) = self.cluster_port {
            command
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus.to_string(),
                ])
                .args(["--cluster-node-timeout", "1000"])
                // A replica copies its primary at once, not after the default 5 s.
                .args(["--repl-diskless-sync-delay", "0"])
                // The other shards keep counting while one fails over.
                .args(["--cluster-require-full-coverage", "no"]);
            if self.options.tls.is_some() {
                command.args(["--tls-cluster", "yes", "--tls-replication", "yes"]);
            }
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("running redis-server (run `make setup`)")?;
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    bail!("redis-server exited with {status}; log:\n{}", self.log());
                }
            }
            if matches!(self.command("PING").await, Ok(reply) if reply == "PONG") {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "redis-server not answering after {READY_TIMEOUT:?}; log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// Sends one inline command (`INFO commandstats`) and returns a simple-string
    /// or bulk-string reply. Enough RESP for tests; bounded by a timeout.
    pub async fn command(&self, command: &str) -> Result<String> {
        tokio::time::timeout(Duration::from_secs(5), async {
            let mut stream = TcpStream::connect(("127.0.0.1", self.port)).await?;
            stream
                .write_all(format!("{command}\r\n").as_bytes())
                .await?;
            let mut reply = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    bail!("redis closed the connection");
                }
                reply.extend_from_slice(&buf[..n]);
                if let Some(parsed) = parse_reply(&reply)? {
                    return Ok(parsed);
                }
            }
        })
        .await
        .context("redis command timed out")?
    }

    /// Calls of one command from `INFO commandstats` (`incrby`, `expire`); 0 if never called.
    pub async fn command_calls(&self, name: &str) -> Result<u64> {
        let info = self.command("INFO commandstats").await?;
        let prefix = format!("cmdstat_{name}:calls=");
        Ok(info
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }
}

/// A complete reply in `buf`, or `None` when more bytes are needed.
fn parse_reply(buf: &[u8]) -> Result<Option<String>> {
    let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = String::from_utf8_lossy(&buf[1..eol]).to_string();
    match buf.first() {
        Some(b'+') => Ok(Some(line)),
        Some(b'-') => bail!("redis error: {line}"),
        Some(b':') => Ok(Some(line)),
        Some(b'$') => {
            let len: usize = line.parse().context("bulk length")?;
            let body = eol + 2;
            if buf.len() < body + len {
                return Ok(None);
            }
            Ok(Some(
                String::from_utf8_lossy(&buf[body..body + len]).to_string(),
            ))
        }
        _ => bail!("unexpected redis reply {:?}", String::from_utf8_lossy(buf)),
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- redis log ----\n{}\n---- end of redis log ----",
                self.log()
            );
        }
    }
}
