//! The controller live: `tollgate serve` watching a temporary config
//! directory, and a real Envoy started from `tollgate bootstrap`'s output and
//! fed over ADS. A test writes Gateway API YAML, changes it, and sends
//! requests through Envoy until they get the answer it expects:
//!
//! ```text
//! let echo = Echo::start("web-1").await?;
//! let gw = Gateway::start(bin, &[("gw.yaml", &gateway_yaml), ("svc.yaml", &service(...))]).await?;
//! gw.write("routes/web.yaml", route)?;
//! let reply = gw.wait_until(port, "example.com", "/", "web-1 answers", |r| r.pod() == Some("web-1")).await?;
//! ```
//!
//! Listener ports are whatever the YAML says (use [`free_port`] and ports of
//! 1024 and above, which are not remapped), so tests run in parallel; YAML with
//! fixed ports (the conformance suite's 80) maps them to free ones with
//! [`Options::port_map`]. With [`Options::xds_tls`], xDS runs over mutual TLS
//! (`tollgate serve --xds-tls-*` and the matching `tollgate bootstrap` flags).
//! Processes die with the test; their logs are printed if it fails.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use tempfile::TempDir;

use crate::echo::EchoReply;
use crate::envoy::{Envoy, Options as EnvoyOptions};
use crate::envoy_config::Runtime;
use crate::pki::Pki;
use crate::process::die_with_parent;
pub use crate::process::free_port;

const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a change may take to reach Envoy: debounce, translation, the
/// push, Envoy applying it (a new listener binds, a drained one closes).
pub const CHANGE_TIMEOUT: Duration = Duration::from_secs(20);

/// How the Envoy is bootstrapped.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--gateway NS/NAME`: the Envoy serves only that Gateway.
    pub gateway: Option<String>,
    /// `--xds-protocol delta` instead of state of the world.
    pub delta: bool,
    /// `tollgate serve --port-map PORT=ENVOY_PORT` for each pair: Gateway
    /// listener ports (e.g. the conformance suite's 80) served on free ones.
    pub port_map: Vec<(u16, u16)>,
    /// Mutual TLS on xDS with these certificates: `tollgate serve` presents
    /// the server certificate and trusts the CA for clients; Envoy presents
    /// the client certificate and trusts the CA for the server.
    pub xds_tls: Option<Arc<Pki>>,
    /// `tollgate serve --filter-runtime`: the dynamic module (the default),
    /// or the wasm filters from dist/ by absolute path.
    pub runtime: Runtime,
    /// `tollgate serve --provider kubernetes --kubeconfig` this file, instead
    /// of the config directory (which is then unused).
    pub kubeconfig: Option<PathBuf>,
    /// More flags for `tollgate serve` (`--lease-duration 2`).
    pub serve_args: Vec<String>,
}

pub struct Gateway {
    config: TempDir,
    serve: Serve,
    pub envoy: Envoy,
    http: reqwest::Client,
    /// Kept for as long as the processes that read the certificates.
    _pki: Option<Arc<Pki>>,
}

/// What a request through Envoy got.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    /// The echo backend's view of the request, if an echo backend answered.
    pub fn echo(&self) -> Option<EchoReply> {
        serde_json::from_str(&self.body).ok()
    }

    /// The pod of the echo backend that answered.
    pub fn pod(&self) -> Option<String> {
        self.echo().map(|e| e.pod)
    }
}

impl Gateway {
    /// Writes `files` (path relative to the config directory, YAML) and starts
    /// `tollgate serve` (the binary `tollgate`) on them, then an Envoy from
    /// `tollgate bootstrap`. The files must load: start waits for `/readyz`.
    pub async fn start(tollgate: &Path, files: &[(&str, &str)]) -> Result<Gateway> {
        Self::start_with(tollgate, files, &Options::default()).await
    }

    pub async fn start_with(
        tollgate: &Path,
        files: &[(&str, &str)],
        options: &Options,
    ) -> Result<Gateway> {
        let config = tempfile::Builder::new()
            .prefix("tollgate-config-")
            .tempdir()?;
        for (path, yaml) in files {
            write_file(config.path(), path, yaml)?;
        }
        let serve = Serve::start(tollgate, config.path(), options).await?;
        let mut bootstrap = Command::new(tollgate);
        bootstrap
            .arg("bootstrap")
            .args(["--xds-address", &serve.xds.to_string()])
            .args(["--node-id", "e2e"])
            .args(["--admin-address", "127.0.0.1:0"]);
        if let Some(pki) = &options.xds_tls {
            bootstrap
                .arg("--xds-tls-ca")
                .arg(&pki.ca)
                .arg("--xds-tls-cert")
                .arg(&pki.client.cert)
                .arg("--xds-tls-key")
                .arg(&pki.client.key);
        }
        if let Some(gateway) = &options.gateway {
            bootstrap.args(["--gateway", gateway]);
        }
        if options.delta {
            bootstrap.args(["--xds-protocol", "delta"]);
        }
        let out = bootstrap.output().context("running tollgate bootstrap")?;
        if !out.status.success() {
            bail!(
                "tollgate bootstrap failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let bootstrap: serde_json::Value =
            serde_json::from_slice(&out.stdout).context("tollgate bootstrap printed no JSON")?;
        let envoy = Envoy::try_start(&bootstrap, &EnvoyOptions::default())
            .await
            .map_err(|e| anyhow!("{e}\n---- tollgate serve log ----\n{}", serve.log()))?;
        Ok(Gateway {
            config,
            serve,
            envoy,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
            _pki: options.xds_tls.clone(),
        })
    }

    pub fn config_dir(&self) -> &Path {
        self.config.path()
    }

    /// Writes a file below the config directory, creating its directories,
    /// as editors and `kubectl`-style tools do: a temporary file renamed into
    /// place, so the watcher never reads half of it.
    pub fn write(&self, path: &str, yaml: &str) -> Result<()> {
        write_file(self.config.path(), path, yaml)
    }

    pub fn remove(&self, path: &str) -> Result<()> {
        let full = self.config.path().join(path);
        std::fs::remove_file(&full).with_context(|| format!("removing {}", full.display()))
    }

    /// Deletes a directory below the config directory and everything in it.
    pub fn remove_dir(&self, path: &str) -> Result<()> {
        let full = self.config.path().join(path);
        std::fs::remove_dir_all(&full).with_context(|| format!("removing {}", full.display()))
    }

    /// GET `path` with `Host: host` through Envoy's listener on `port`.
    pub async fn get(&self, port: u16, host: &str, path: &str) -> Result<Reply> {
        let response = self
            .http
            .get(format!("http://127.0.0.1:{port}{path}"))
            .header(reqwest::header::HOST, host)
            .send()
            .await?;
        Ok(Reply {
            status: response.status().as_u16(),
            body: response.text().await?,
        })
    }

    /// Repeats [`Self::get`] (every 50 ms, at most [`CHANGE_TIMEOUT`]) until
    /// `done` holds; the error names `what` and the last answer.
    pub async fn wait_until(
        &self,
        port: u16,
        host: &str,
        path: &str,
        what: &str,
        done: impl Fn(&Reply) -> bool,
    ) -> Result<Reply> {
        let started = Instant::now();
        loop {
            let last = self.get(port, host, path).await;
            if let Ok(reply) = &last {
                if done(reply) {
                    return Ok(reply.clone());
                }
            }
            if started.elapsed() > CHANGE_TIMEOUT {
                bail!(
                    "{host}{path} on port {port}: not {what} after {CHANGE_TIMEOUT:?}; last answer: {last:?}\n---- tollgate serve log ----\n{}",
                    self.serve.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Where `tollgate serve`'s admin endpoint listens.
    pub fn admin_addr(&self) -> SocketAddr {
        self.serve.admin
    }

    /// GET on `tollgate serve`'s admin endpoint: status code and body.
    pub async fn admin(&self, path: &str) -> Result<(u16, String)> {
        admin_get(&self.http, self.serve.admin, path).await
    }

    /// Polls `tollgate serve`'s admin `path` (bounded) until its body satisfies `done`.
    pub async fn admin_until(
        &self,
        path: &str,
        what: &str,
        done: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let started = Instant::now();
        loop {
            let (_, body) = self.admin(path).await?;
            if done(&body) {
                return Ok(body);
            }
            if started.elapsed() > CHANGE_TIMEOUT {
                bail!("admin {path}: not {what} after {CHANGE_TIMEOUT:?}; last:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One sample of `tollgate serve`'s `/metrics`
    /// (`tollgate_xds_nacks_total{type="RouteConfiguration"}`); 0 when absent
    /// (a labelled counter appears on its first increment).
    pub async fn metric(&self, sample: &str) -> Result<u64> {
        let (_, text) = self.admin("/metrics").await?;
        Ok(metric_sample(&text, sample))
    }

    /// `tollgate serve`'s `status.yaml` (written to its `--status-dir`).
    pub fn status_file(&self) -> Result<String> {
        let path = self.serve.dir.path().join("status/status.yaml");
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    }

    /// Where `tollgate serve`'s ADS server listens.
    pub fn xds_address(&self) -> SocketAddr {
        self.serve.xds
    }

    pub fn serve_log(&self) -> String {
        self.serve.log()
    }

    /// The `tollgate serve` process's id (for reading its memory from /proc).
    pub fn serve_pid(&self) -> u32 {
        self.serve.child.id()
    }

    /// SIGKILL to `tollgate serve`: it ends without a word (a crash, a lost
    /// node); Envoy keeps running on what it was served.
    pub fn kill_serve(&mut self) -> Result<()> {
        self.serve.child.kill()?;
        self.serve.child.wait()?;
        Ok(())
    }

    /// SIGTERM to `tollgate serve`, then waits (at most 10 s) for it to exit.
    pub async fn terminate_serve(&mut self) -> Result<ExitStatus> {
        let pid = libc::pid_t::try_from(self.serve.child.id())?;
        // SAFETY: sending a signal to our own child.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            bail!("kill: {}", std::io::Error::last_os_error());
        }
        let started = Instant::now();
        loop {
            if let Some(status) = self.serve.child.try_wait()? {
                return Ok(status);
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!(
                    "tollgate serve still running 10 s after SIGTERM; log:\n{}",
                    self.serve.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Another replica of `tollgate serve` with no Envoy of its own (on
/// Kubernetes: a second controller pod, for leader election).
pub struct Replica {
    serve: Serve,
    http: reqwest::Client,
}

impl Replica {
    /// Starts `tollgate serve` as `options` say (`kubeconfig`, `serve_args`)
    /// and waits for `/readyz`.
    pub async fn start(tollgate: &Path, options: &Options) -> Result<Replica> {
        let unused = tempfile::Builder::new()
            .prefix("tollgate-config-")
            .tempdir()?;
        Ok(Replica {
            serve: Serve::start(tollgate, unused.path(), options).await?,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
        })
    }

    /// One sample of its `/metrics`, as [`Gateway::metric`].
    pub async fn metric(&self, sample: &str) -> Result<u64> {
        let (_, text) = admin_get(&self.http, self.serve.admin, "/metrics").await?;
        Ok(metric_sample(&text, sample))
    }

    /// Where its ADS server listens.
    pub fn xds_address(&self) -> SocketAddr {
        self.serve.xds
    }

    pub fn log(&self) -> String {
        self.serve.log()
    }
}

async fn admin_get(http: &reqwest::Client, admin: SocketAddr, path: &str) -> Result<(u16, String)> {
    let response = http.get(format!("http://{admin}{path}")).send().await?;
    Ok((response.status().as_u16(), response.text().await?))
}

/// The value of `sample` in an OpenMetrics text; 0 when absent.
fn metric_sample(text: &str, sample: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(name, _)| *name == sample)
        .and_then(|(_, v)| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn write_file(dir: &Path, path: &str, text: &str) -> Result<()> {
    let full = dir.join(path);
    if let Some(parent) = full.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // Outside the directory's YAML pattern until it is complete.
    let tmp = full.with_extension("partial");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &full).with_context(|| format!("renaming to {}", full.display()))
}

/// The `tollgate serve` process.
struct Serve {
    child: Child,
    xds: SocketAddr,
    admin: SocketAddr,
    /// Its log and status directory.
    dir: TempDir,
}

impl Serve {
    async fn start(bin: &Path, config: &Path, options: &Options) -> Result<Serve> {
        let dir = tempfile::Builder::new()
            .prefix("tollgate-serve-")
            .tempdir()?;
        let xds = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let log = File::create(dir.path().join("serve.log"))?;
        let mut command = Command::new(bin);
        die_with_parent(&mut command);
        command.arg("serve");
        if options.runtime == Runtime::Wasm {
            // The filters `make build` put in dist/, by absolute path.
            command
                .args(["--filter-runtime", "wasm", "--wasm-dir"])
                .arg(wasm_dir());
        }
        if let Some(pki) = &options.xds_tls {
            command
                .arg("--xds-tls-cert")
                .arg(&pki.server.cert)
                .arg("--xds-tls-key")
                .arg(&pki.server.key)
                .arg("--xds-tls-client-ca")
                .arg(&pki.ca);
        }
        match &options.kubeconfig {
            Some(kubeconfig) => command
                .args(["--provider", "kubernetes", "--kubeconfig"])
                .arg(kubeconfig),
            None => command.arg("--config-dir").arg(config),
        };
        let child = command
            .args(["--xds-listen", &xds.to_string()])
            .args(["--admin", &admin.to_string()])
            .arg("--status-dir")
            .arg(dir.path().join("status"))
            .args(
                options
                    .port_map
                    .iter()
                    .flat_map(|(port, to)| ["--port-map".to_owned(), format!("{port}={to}")]),
            )
            .args(&options.serve_args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("running {}", bin.display()))?;
        let mut serve = Serve {
            child,
            xds,
            admin,
            dir,
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = serve.child.try_wait() {
                bail!("tollgate serve exited with {status}; log:\n{}", serve.log());
            }
            let ready = http.get(format!("http://{admin}/readyz")).send().await;
            if matches!(ready, Ok(r) if r.status().is_success()) {
                return Ok(serve);
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "tollgate serve not ready after {READY_TIMEOUT:?}; log:\n{}",
                    serve.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("serve.log")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- tollgate serve log ({}) ----\n{}\n---- end of tollgate serve log ----",
                self.log_path().display(),
                self.log()
            );
        }
    }
}

/// The workspace's `dist/`, holding the built filters (panics with the fix if
/// they are missing).
/// The directory of the `.wasm` filters `make build` put in dist/.
pub fn wasm_dir() -> PathBuf {
    let header_mod = crate::paths::wasm("header_mod");
    header_mod
        .parent()
        .map_or_else(|| PathBuf::from("dist"), Path::to_path_buf)
}

/// A GatewayClass named `tollgate` that Tollgate owns.
pub fn gateway_class() -> String {
    "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: tollgate}\nspec: {controllerName: tollgate.dev/gateway-controller}\n".to_owned()
}

/// A Gateway of class `tollgate` with one HTTP listener `http` on `port`,
/// accepting routes from every namespace.
pub fn gateway(namespace: &str, name: &str, port: u16) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  gatewayClassName: tollgate\n  listeners:\n  - name: http\n    protocol: HTTP\n    port: {port}\n    allowedRoutes: {{namespaces: {{from: All}}}}\n"
    )
}

/// A Service on port 80 whose endpoints are `backends` (file mode's
/// `tollgate.dev/static-endpoints`).
pub fn service(namespace: &str, name: &str, backends: &[SocketAddr]) -> String {
    let endpoints: Vec<String> = backends.iter().map(SocketAddr::to_string).collect();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  annotations: {{tollgate.dev/static-endpoints: \"{}\"}}\nspec: {{ports: [{{port: 80}}]}}\n",
        endpoints.join(",")
    )
}
