//! A real Envoy process for one test.
//!
//! Every port is 0 in the generated config (admin and listeners), so the kernel
//! picks free ones and tests run in parallel without clashes; the harness reads
//! the chosen ports back from the admin API. `--disable-hot-restart` keeps
//! parallel Envoys from fighting over the shared-memory region.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::Value;
use tempfile::TempDir;

use crate::paths;
use crate::process::die_with_parent;

/// How long Envoy may take to become ready (V8 compiles every filter at startup).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Envoy {
    child: Child,
    admin: String,
    dir: TempDir,
    http: reqwest::Client,
}

/// Envoy did not come up; carries its log, which is the whole story.
#[derive(Debug)]
pub struct StartFailure {
    pub exit: Option<ExitStatus>,
    pub log: String,
    pub reason: String,
}

impl std::fmt::Display for StartFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Envoy did not start ({}; exit {:?}). Envoy log:\n{}",
            self.reason, self.exit, self.log
        )
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Worker threads (`--concurrency`).
    pub concurrency: u32,
    /// Envoy's log level (`-l`); `ENVOY_LOG_LEVEL` overrides it.
    pub log_level: String,
    /// Where Envoy finds libtollgate.so (`ENVOY_DYNAMIC_MODULES_SEARCH_PATH`);
    /// `None`: the workspace's `dist/`.
    pub module_dir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            concurrency: 2,
            log_level: std::env::var("ENVOY_LOG_LEVEL").unwrap_or_else(|_| "info".into()),
            module_dir: None,
        }
    }
}

impl Envoy {
    /// Starts Envoy with `config` and waits until it is ready; panics with Envoy's
    /// log if it does not come up.
    pub async fn start(config: &Value) -> Envoy {
        match Self::try_start(config, &Options::default()).await {
            Ok(envoy) => envoy,
            Err(failure) => panic!("{failure}"),
        }
    }

    /// Starts Envoy and waits for `/ready`; on failure returns what Envoy said.
    pub async fn try_start(config: &Value, options: &Options) -> Result<Envoy, StartFailure> {
        Self::try_start_text(&config.to_string(), "envoy.json", options).await
    }

    /// Like [`Envoy::try_start`] with the config as text; `file_name`'s extension
    /// (`.yaml` or `.json`) tells Envoy how to read it.
    pub async fn try_start_text(
        config: &str,
        file_name: &str,
        options: &Options,
    ) -> Result<Envoy, StartFailure> {
        let dir = tempfile::Builder::new()
            .prefix("tollgate-envoy-")
            .tempdir()
            .map_err(|e| StartFailure {
                exit: None,
                log: String::new(),
                reason: format!("creating a temp dir: {e}"),
            })?;
        let fail = |dir: &Path, exit, reason: String| StartFailure {
            exit,
            log: read_log(dir),
            reason,
        };
        let config_path = dir.path().join(file_name);
        let admin_path = dir.path().join("admin-address");
        std::fs::write(&config_path, config)
            .map_err(|e| fail(dir.path(), None, format!("writing the config: {e}")))?;
        let log = File::create(dir.path().join("envoy.log"))
            .map_err(|e| fail(dir.path(), None, format!("creating the log file: {e}")))?;
        let log_err = log
            .try_clone()
            .map_err(|e| fail(dir.path(), None, e.to_string()))?;
        let bin = paths::envoy_bin();
        let mut command = Command::new(&bin);
        die_with_parent(&mut command);
        let mut child = command
            .arg("-c")
            .arg(&config_path)
            .arg("--admin-address-path")
            .arg(&admin_path)
            .args([
                "--disable-hot-restart",
                "--concurrency",
                &options.concurrency.to_string(),
            ])
            .args(["-l", &options.log_level])
            // Where a config naming the dynamic module `tollgate` finds libtollgate.so.
            .env(
                "ENVOY_DYNAMIC_MODULES_SEARCH_PATH",
                options
                    .module_dir
                    .clone()
                    .unwrap_or_else(|| paths::workspace_root().join("dist")),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| {
                fail(
                    dir.path(),
                    None,
                    format!(
                        "running {}: {e} (run `make setup`, or set ENVOY_BIN)",
                        bin.display()
                    ),
                )
            })?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| fail(dir.path(), None, e.to_string()))?;
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(fail(
                    dir.path(),
                    Some(status),
                    "Envoy exited during startup".into(),
                ));
            }
            if started.elapsed() > READY_TIMEOUT {
                let _ = child.kill();
                let exit = child.wait().ok();
                return Err(fail(
                    dir.path(),
                    exit,
                    format!("not ready after {READY_TIMEOUT:?}"),
                ));
            }
            if let Some(admin) = std::fs::read_to_string(&admin_path)
                .ok()
                .filter(|a| !a.trim().is_empty())
            {
                let admin = admin.trim().to_string();
                let ready = http.get(format!("http://{admin}/ready")).send().await;
                if matches!(ready, Ok(r) if r.status().is_success()) {
                    return Ok(Envoy {
                        child,
                        admin,
                        dir,
                        http,
                    });
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }

    /// GET on the admin API, returning the body.
    pub async fn admin_get(&self, path: &str) -> Result<String> {
        let resp = self
            .http
            .get(format!("http://{}{path}", self.admin))
            .send()
            .await?;
        let status = resp.status();
        let body = resp.text().await?;
        if !status.is_success() {
            bail!("admin {path}: {status}: {body}");
        }
        Ok(body)
    }

    /// The port Envoy bound for the listener called `name`.
    pub async fn listener_port(&self, name: &str) -> Result<u16> {
        let body: Value = serde_json::from_str(&self.admin_get("/listeners?format=json").await?)?;
        body["listener_statuses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["name"] == name)
            .and_then(|l| l["local_address"]["socket_address"]["port_value"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| anyhow!("no listener {name} in {body}"))
    }

    /// `http://127.0.0.1:<port>` of listener `name`.
    pub async fn listener_url(&self, name: &str) -> String {
        let port = self
            .listener_port(name)
            .await
            .with_context(|| self.log())
            .unwrap_or_else(|e| panic!("{e:?}"));
        format!("http://127.0.0.1:{port}")
    }

    /// Polls [`Self::prometheus_counter`] every 100 ms until it reaches
    /// `at_least` or `within` passes (the filters flush their counters to Envoy
    /// once a second); returns the last value read, for the test to assert on.
    pub async fn counter_reaching(&self, metric: &str, at_least: u64, within: Duration) -> u64 {
        let deadline = Instant::now() + within;
        loop {
            let value = self.prometheus_counter(metric).await.expect("stats");
            if value >= at_least || Instant::now() >= deadline {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The value of one counter from `/stats/prometheus`, summed over its labels.
    /// A metric Envoy does not export is an error, so a misspelt name cannot pass
    /// as zero.
    pub async fn prometheus_counter(&self, metric: &str) -> Result<u64> {
        let text = self.admin_get("/stats/prometheus").await?;
        let values: Vec<f64> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once(' '))
            .filter(|(name, _)| *name == metric || name.starts_with(&format!("{metric}{{")))
            .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
            .collect();
        if values.is_empty() {
            bail!("Envoy exports no metric {metric}");
        }
        Ok(values.iter().sum::<f64>() as u64)
    }
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("envoy.log")).unwrap_or_default()
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(200).collect();
            eprintln!(
                "---- Envoy log (last {} lines of {}) ----\n{}\n---- end of Envoy log ----",
                tail.len(),
                self.dir.path().join("envoy.log").display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}
