//! `tollgate ratelimit-server` as a real process for one test: free loopback
//! ports for gRPC and metrics, ready once `/healthz` answers, killed when
//! dropped (its log printed if the test failed).

use std::fs::File;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use tempfile::TempDir;

use crate::process::{die_with_parent, free_port};

const READY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct RatelimitServer {
    child: Child,
    pub grpc: SocketAddr,
    pub metrics: SocketAddr,
    dir: TempDir,
    http: reqwest::Client,
}

impl RatelimitServer {
    /// Starts `bin ratelimit-server --redis <redis_url>`, with `config_yaml`
    /// written to a file and passed as `--config` when given.
    pub async fn start(
        bin: &Path,
        redis_url: &str,
        config_yaml: Option<&str>,
    ) -> Result<RatelimitServer> {
        RatelimitServer::start_with(bin, &["--redis", redis_url], config_yaml).await
    }

    /// Starts `bin ratelimit-server <redis_args…>`: `--redis` and the other
    /// Redis flags (`--redis-type cluster`, `--redis-tls-*`).
    pub async fn start_with(
        bin: &Path,
        redis_args: &[&str],
        config_yaml: Option<&str>,
    ) -> Result<RatelimitServer> {
        let dir = tempfile::Builder::new().prefix("tollgate-rls-").tempdir()?;
        let grpc = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let log = File::create(dir.path().join("server.log"))?;
        let mut command = Command::new(bin);
        die_with_parent(&mut command);
        command
            .arg("ratelimit-server")
            .args(redis_args)
            .args(["--listen", &grpc.to_string()])
            .args(["--metrics-listen", &metrics.to_string()])
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            );
        if let Some(yaml) = config_yaml {
            let path = dir.path().join("limits.yaml");
            std::fs::write(&path, yaml)?;
            command.arg("--config").arg(path);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("running {} (run `make build`)", bin.display()))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        let mut server = RatelimitServer {
            child,
            grpc,
            metrics,
            dir,
            http,
        };
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                bail!(
                    "ratelimit-server exited with {status}; log:\n{}",
                    server.log()
                );
            }
            let healthz = server
                .http
                .get(format!("http://{}/healthz", server.metrics))
                .send()
                .await;
            if matches!(healthz, Ok(r) if r.status().is_success())
                && tokio::net::TcpStream::connect(server.grpc).await.is_ok()
            {
                return Ok(server);
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "ratelimit-server not ready after {READY_TIMEOUT:?}; log:\n{}",
                    server.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// Where the `--config` file given to `start` is (rewrite it to test reloads).
    pub fn config_file(&self) -> std::path::PathBuf {
        self.dir.path().join("limits.yaml")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The `/metrics` text.
    pub async fn metrics_text(&self) -> Result<String> {
        Ok(self
            .http
            .get(format!("http://{}/metrics", self.metrics))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?)
    }

    /// One sample's value from `/metrics` (`tollgate_ratelimit_redis_pipelines_total`,
    /// or with labels, `tollgate_ratelimit_requests_total{code="ok"}`). A missing
    /// sample is an error, so a misspelt name cannot pass as zero.
    pub async fn metric(&self, sample: &str) -> Result<u64> {
        let text = self.metrics_text().await?;
        text.lines()
            .filter_map(|l| l.rsplit_once(' '))
            .find(|(name, _)| *name == sample)
            .and_then(|(_, v)| v.parse::<f64>().ok())
            .map(|v| v as u64)
            .ok_or_else(|| anyhow!("no sample {sample} in /metrics:\n{text}"))
    }

    /// SIGTERM, then waits (at most 10 s) for the process to exit by itself.
    pub async fn terminate(&mut self) -> Result<ExitStatus> {
        let pid = libc::pid_t::try_from(self.child.id())?;
        // SAFETY: sending a signal to our own child.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            bail!("kill: {}", std::io::Error::last_os_error());
        }
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!("ratelimit-server still running 10 s after SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for RatelimitServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- ratelimit-server log ----\n{}\n---- end of ratelimit-server log ----",
                self.log()
            );
        }
    }
}
