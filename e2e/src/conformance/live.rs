//! Plays the suite live: one `tollgate serve` and one Envoy for every test,
//! the test's manifests swapped in and out between tests (files of the
//! config directory, or objects of a Kubernetes API server: [`Source`]),
//! every case sent through Envoy to in-process echo backends.
//!
//! - **Backends.** One echo backend per Service any test names (pod = the
//!   Service's name, namespace = its namespace), started once; `base.yaml`
//!   is put in place once and never changes, each test's own manifests are
//!   put in place when it starts and removed when the next test starts.
//! - **Ports.** Every Gateway listener port of the suite (80, 443, 8080, …) is
//!   served on a free loopback port picked for the run (`tollgate serve
//!   --port-map`), so runs and other tests never compete for 10080. The
//!   Gateways keep their own ports, so a redirect's `Location` is what it
//!   would be on port 80.
//! - **Knowing Envoy caught up.** After every change the runner rewrites a
//!   sentinel: its own Gateway and HTTPRoute (namespace
//!   `tollgate-conformance-runner`, on a free port) redirecting to
//!   `g<N>.sentinel.invalid`, N counting changes. The sentinel is put in
//!   place last, so when Envoy redirects to `gN`, the load that produced it
//!   saw all of change N: no case is checked against the previous test's
//!   routes (through the API server, see [`super::source`] for what that
//!   proves of kinds other than HTTPRoute).
//! - **Eventual consistency, bounded.** A step's status must hold (polled
//!   for at most [`STATUS_TIMEOUT`]; through the API server, the status
//!   written to the objects as well, for at most [`WRITTEN_STATUS_TIMEOUT`]:
//!   [`super::written_status`]) and then each case is retried until it
//!   passes, while the step is younger than [`STEP_SETTLE`] (a listener that
//!   was just added may still be warming); after that each case gets one
//!   attempt. Every failure names the test, the step and the case.
//! - **Mirrors** are checked in the mirror backend's record of what it
//!   received ([`crate::echo::Echo::received`]), bounded by [`MIRROR_TIMEOUT`].
//! - **Distributions** send their requests [`IN_FLIGHT`] at a time; an
//!   unlucky draw is drawn again once (upstream retries up to ten times).
//! - **HTTPS** cases connect to the mapped port with SNI = the case's host and
//!   compare the certificate Envoy presents with the one in the test's Secret
//!   (byte for byte: the suite's certificate is self-signed with `CA:TRUE`,
//!   which rustls refuses as a server certificate even when trusted).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use base64::Engine as _;
use reqwest::Url;
use serde::Deserialize;
use serde_json::Value;

use super::cases::{Case, Distribution, Request, Scheme, Step};
use super::check::{case_name, check_case, check_distribution, check_mirrored, to_req};
use super::placeholders::Backend;
use super::source::Source;
use super::status::check_status;
use super::{written_status, ConformanceTest, Manifest, Suite};
use crate::echo::{Echo, EchoReply};
use crate::gateway::{free_port, Gateway, Options, CHANGE_TIMEOUT};
use crate::roundtrip::{self, Exchange};

/// How long a step's status may take to hold once Envoy has its configuration.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the status written to the API objects may take to hold once
/// `/status` does: the leader writes after the translation, a Gateway's
/// `Programmed` after Envoy accepted it.
pub const WRITTEN_STATUS_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after a change a failing case is retried.
pub const STEP_SETTLE: Duration = Duration::from_secs(10);
/// How long a mirror backend may take to record the mirrored request.
pub const MIRROR_TIMEOUT: Duration = Duration::from_secs(3);
/// Requests of a distribution in flight at once (upstream's concurrency).
pub const IN_FLIGHT: usize = 10;
/// Draws of a distribution before it fails.
pub const DISTRIBUTION_ATTEMPTS: u32 = 2;
const POLL: Duration = Duration::from_millis(50);
const RETRY: Duration = Duration::from_millis(100);

/// The sentinel's namespace, which no test uses.
const RUNNER_NAMESPACE: &str = "tollgate-conformance-runner";

/// What one test came to.
#[derive(Debug)]
pub struct Outcome {
    pub name: String,
    /// Requests sent, or every failure, one per line, each naming its step and case.
    pub result: Result<usize, String>,
    pub elapsed: Duration,
}

/// The live stage: `tollgate serve`, its Envoy, the echo backends, and where
/// the objects come from.
pub struct Live {
    gw: Gateway,
    source: Source,
    echoes: BTreeMap<Backend, Echo>,
    addrs: BTreeMap<Backend, SocketAddr>,
    /// Gateway listener port → the Envoy port serving it.
    ports: BTreeMap<u16, u16>,
    sentinel_port: u16,
    generation: u64,
    http: reqwest::Client,
    /// The test whose objects are in place.
    current: Option<String>,
}

impl Live {
    /// Starts every backend the suite names, picks its ports, puts
    /// `base.yaml` and the sentinel in `source`, and serves them with
    /// `tollgate` (the binary).
    pub async fn start(tollgate: &Path, suite: &Suite, source: Source) -> Result<Live> {
        let mut backends = BTreeSet::new();
        let mut listener_ports = BTreeSet::new();
        for test in &suite.tests {
            backends.extend(test.backends(&suite.base).map_err(anyhow::Error::msg)?);
            for manifest in std::iter::once(&suite.base).chain(&test.manifests) {
                listener_ports.extend(
                    gateway_ports(manifest)
                        .map_err(|e| anyhow!("{}/{}: {e}", test.name, manifest.file))?,
                );
            }
            for step in &test.spec.steps {
                listener_ports.extend(step.cases.iter().map(|c| c.request.port));
                listener_ports.extend(step.distributions.iter().map(|d| d.request.port));
            }
        }
        let mut echoes = BTreeMap::new();
        let mut addrs = BTreeMap::new();
        for backend in backends {
            let echo = Echo::bind(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                &backend.namespace,
                &backend.name,
            )
            .await
            .with_context(|| format!("starting the echo backend for {backend}"))?;
            addrs.insert(backend.clone(), echo.addr());
            echoes.insert(backend, echo);
        }
        let free = distinct_free_ports(listener_ports.len() + 1)?;
        let sentinel_port = free[0];
        let ports: BTreeMap<u16, u16> =
            listener_ports.into_iter().zip(free[1..].to_vec()).collect();
        let base = substitute(&suite.base, &addrs)?;
        let sentinel = sentinel(sentinel_port, 0);
        let options = Options {
            port_map: ports.iter().map(|(p, e)| (*p, *e)).collect(),
            ..Options::default()
        };
        let mut all = vec![base.as_str(), sentinel.as_str()];
        for test in &suite.tests {
            all.extend(test.manifests.iter().map(|m| m.text.as_str()));
        }
        let gw = source
            .serve(tollgate, &base, &sentinel, &all, options)
            .await?;
        Ok(Live {
            gw,
            source,
            echoes,
            addrs,
            ports,
            sentinel_port,
            generation: 0,
            http: roundtrip::client(),
            current: None,
        })
    }

    /// The Envoy port each Gateway listener port of the suite is served on.
    pub fn ports(&self) -> &BTreeMap<u16, u16> {
        &self.ports
    }

    pub fn gateway(&self) -> &Gateway {
        &self.gw
    }

    /// Swaps `test`'s objects in and plays its steps; stops at the first
    /// step that fails.
    pub async fn play(&mut self, test: &ConformanceTest) -> Outcome {
        let started = Instant::now();
        let result = self.play_steps(test).await;
        Outcome {
            name: test.name.clone(),
            result,
            elapsed: started.elapsed(),
        }
    }

    async fn play_steps(&mut self, test: &ConformanceTest) -> Result<usize, String> {
        self.swap_in(test).map_err(|e| format!("{e:#}"))?;
        let certificates = certificates(&test.manifests).map_err(|e| format!("{e:#}"))?;
        let mut sent = 0;
        let mut case_index = 0;
        for (index, step) in test.spec.steps.iter().enumerate() {
            let at = format!("step {}", index + 1);
            let problems = self
                .play_step(test, step, &at, &mut case_index, &certificates, &mut sent)
                .await;
            if !problems.is_empty() {
                let later = test.spec.steps.len() - index - 1;
                let mut text = problems.join("\n");
                if later > 0 {
                    text.push_str(&format!("\n(the {later} later step(s) were not played)"));
                }
                return Err(text);
            }
        }
        Ok(sent)
    }

    /// Removes the previous test's objects and puts `test`'s.
    fn swap_in(&mut self, test: &ConformanceTest) -> Result<()> {
        if let Some(previous) = self.current.take() {
            self.source.remove_test(&self.gw, &previous)?;
        }
        for echo in self.echoes.values() {
            echo.clear_received();
        }
        let files = test
            .manifests
            .iter()
            .map(|manifest| Ok((manifest.file.clone(), substitute(manifest, &self.addrs)?)))
            .collect::<Result<Vec<_>>>()?;
        self.current = Some(test.name.clone());
        self.source.put_test(&self.gw, &test.name, &files)
    }

    /// Applies the step's removals, waits for Envoy and the status, plays the
    /// cases and distributions; every problem found.
    async fn play_step(
        &mut self,
        test: &ConformanceTest,
        step: &Step,
        at: &str,
        case_index: &mut usize,
        certificates: &[Vec<u8>],
        sent: &mut usize,
    ) -> Vec<String> {
        for file in &step.remove {
            if let Err(e) = self.source.remove_file(&self.gw, &test.name, file) {
                return vec![format!("{at}: {e:#}")];
            }
        }
        if let Err(e) = self.sync(&test.name).await {
            return vec![format!("{at}: {e:#}")];
        }
        let settle_until = Instant::now() + STEP_SETTLE;
        let mut problems = Vec::new();
        if let Err(e) = self.wait_status(step).await {
            problems.push(format!("{at} status: {e}"));
        } else if let Err(e) = self.wait_written_status(step).await {
            problems.push(format!(
                "{at} status written to the API objects: {}",
                e.replace('\n', "\n    ")
            ));
        }
        for case in &step.cases {
            let name = case_name(*case_index, case);
            *case_index += 1;
            let (attempts, result) = self.eventually(case, certificates, settle_until).await;
            *sent += attempts;
            if let Err(e) = result {
                problems.push(format!(
                    "{at} case `{name}` ({attempts} attempt(s)):\n    {}",
                    e.replace('\n', "\n    ")
                ));
            }
        }
        for (index, distribution) in step.distributions.iter().enumerate() {
            match self.distribution(distribution, certificates).await {
                Ok(requests) => *sent += requests,
                Err(e) => problems.push(format!(
                    "{at} distribution {} ({} requests to {}):\n    {}",
                    index + 1,
                    distribution.requests,
                    distribution.request.path,
                    e.replace('\n', "\n    ")
                )),
            }
        }
        problems
    }

    /// Bumps the sentinel and waits until Envoy serves it: the objects as
    /// they are now have reached Envoy. Fails fast when they do not load
    /// because of `test`'s.
    async fn sync(&mut self, test: &str) -> Result<()> {
        self.generation += 1;
        let generation = self.generation;
        self.source
            .put_sentinel(&self.gw, &sentinel(self.sentinel_port, generation))?;
        let want = sentinel_host(generation);
        let url = format!("http://127.0.0.1:{}/", self.sentinel_port);
        let started = Instant::now();
        loop {
            let location = match self.http.get(&url).send().await {
                Ok(response) => response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| Url::parse(l).ok())
                    .and_then(|u| u.host_str().map(str::to_owned)),
                Err(_) => None,
            };
            if location.as_deref() == Some(want.as_str()) {
                return Ok(());
            }
            let status = self.status().await.unwrap_or(Value::Null);
            let errors = load_errors(&status);
            if errors.iter().any(|e| self.source.is_from_test(test, e)) {
                bail!(
                    "the objects from {} do not load:\n    {}",
                    self.source.describe(),
                    errors.join("\n    ")
                );
            }
            if started.elapsed() > CHANGE_TIMEOUT {
                bail!(
                    "Envoy did not get the new configuration within {CHANGE_TIMEOUT:?} (sentinel: want a redirect to {want}, got {location:?}); load errors: {errors:?}"
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// `tollgate serve`'s `/status` as JSON.
    pub async fn status(&self) -> Result<Value> {
        let (code, body) = self.gw.admin("/status").await?;
        if code != 200 {
            bail!("/status answered {code}: {body}");
        }
        serde_yaml_ng::from_str(&body).context("/status is not YAML")
    }

    async fn wait_status(&self, step: &Step) -> Result<(), String> {
        if step.status.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        loop {
            let result = match self.status().await {
                Ok(status) => check_status(&step.status, &status),
                Err(e) => Err(format!("{e:#}")),
            };
            match result {
                Ok(()) => return Ok(()),
                Err(e) if started.elapsed() > STATUS_TIMEOUT => return Err(e),
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Through the API server: polls until the status written to the
    /// objects meets the step's expectations and agrees with `/status`
    /// ([`written_status::check`]). Nothing to do for a directory.
    async fn wait_written_status(&self, step: &Step) -> Result<(), String> {
        let Some(api) = self.source.api() else {
            return Ok(());
        };
        if step.status.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        loop {
            let result = match (self.status().await, written_status::read(api)) {
                (Ok(served), Ok(written)) => written_status::check(&step.status, &served, &written),
                (Err(e), _) | (_, Err(e)) => Err(format!("{e:#}")),
            };
            match result {
                Ok(()) => return Ok(()),
                Err(e) if started.elapsed() > WRITTEN_STATUS_TIMEOUT => return Err(e),
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Attempts `case` until it passes or `settle_until` has passed (at least
    /// one attempt); the number of attempts and the last result.
    async fn eventually(
        &self,
        case: &Case,
        certificates: &[Vec<u8>],
        settle_until: Instant,
    ) -> (usize, Result<(), String>) {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let result = self.attempt(case, certificates).await;
            if result.is_ok() || Instant::now() >= settle_until {
                return (attempts, result);
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    async fn attempt(&self, case: &Case, certificates: &[Vec<u8>]) -> Result<(), String> {
        let exchange = self
            .send(&case.request, certificates)
            .await
            .map_err(|e| format!("{e:#}"))?;
        check_case(case, &exchange).map_err(|diffs| {
            format!(
                "{diffs}\n(got {} {:?}, body {:?})",
                exchange.status,
                exchange.headers,
                clip(&exchange.body)
            )
        })?;
        if case.expect.mirrored_to.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        loop {
            let result = check_mirrored(case, &self.mirror_records(case)?);
            if result.is_ok() || started.elapsed() > MIRROR_TIMEOUT {
                return result;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// What the backends a case expects a mirror on have received.
    fn mirror_records(&self, case: &Case) -> Result<Vec<EchoReply>, String> {
        let mut seen = Vec::new();
        for target in &case.expect.mirrored_to {
            let backend = Backend::parse(target)?;
            let echo = self
                .echoes
                .get(&backend)
                .ok_or_else(|| format!("no echo backend runs for {backend}"))?;
            seen.extend(echo.received());
        }
        Ok(seen)
    }

    /// Sends one request to the Envoy port serving `request.port`.
    async fn send(&self, request: &Request, certificates: &[Vec<u8>]) -> Result<Exchange> {
        let port = *self
            .ports
            .get(&request.port)
            .ok_or_else(|| anyhow!("no Envoy port for listener port {}", request.port))?;
        let mut req = to_req(request);
        match request.scheme {
            Scheme::Http => {
                roundtrip::send(&self.http, &format!("http://127.0.0.1:{port}"), &req).await
            }
            Scheme::Https => {
                let host = req
                    .host
                    .take()
                    .ok_or_else(|| anyhow!("an https request needs a host (the SNI)"))?;
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(15))
                    .redirect(reqwest::redirect::Policy::none())
                    .pool_max_idle_per_host(0)
                    .resolve(&host, SocketAddr::from(([127, 0, 0, 1], port)))
                    .danger_accept_invalid_certs(true)
                    .tls_info(true)
                    .build()?;
                let base = format!("https://{host}:{port}");
                let (exchange, served) = send_tls(&client, &base, &req).await?;
                if !certificates.iter().any(|c| Some(c) == served.as_ref()) {
                    bail!(
                        "Envoy presented a certificate for {host} that is none of the test's Secrets'"
                    );
                }
                Ok(exchange)
            }
        }
    }

    /// Sends `distribution.request` `requests` times and checks the shares;
    /// one more draw when the first is off. Requests sent.
    async fn distribution(
        &self,
        distribution: &Distribution,
        certificates: &[Vec<u8>],
    ) -> Result<usize, String> {
        let mut sent = 0;
        for attempt in 1..=DISTRIBUTION_ATTEMPTS {
            let counts = self.draw(distribution, certificates).await?;
            sent += distribution.requests as usize;
            match check_distribution(distribution, &counts) {
                Ok(()) => return Ok(sent),
                Err(e) if attempt == DISTRIBUTION_ATTEMPTS => {
                    return Err(format!("{e}\n(counts of the last draw: {counts:?})"))
                }
                Err(e) => eprintln!(
                    "  draw {attempt} of {} requests was off, drawing again: {}",
                    distribution.requests,
                    e.replace('\n', "; ")
                ),
            }
        }
        Err("no draw".into())
    }

    /// Answers per pod; an answer that is not an echo backend's 200 counts
    /// under `status <code>`, which no distribution expects.
    async fn draw(
        &self,
        distribution: &Distribution,
        certificates: &[Vec<u8>],
    ) -> Result<BTreeMap<String, u32>, String> {
        let mut counts = BTreeMap::new();
        let mut left = distribution.requests;
        while left > 0 {
            let batch = left.min(IN_FLIGHT as u32);
            left -= batch;
            let sends = (0..batch).map(|_| self.send(&distribution.request, certificates));
            for result in join_all(sends).await {
                let exchange = result.map_err(|e| format!("{e:#}"))?;
                let key = match (&exchange.echo, exchange.status) {
                    (Some(echo), 200) => echo.pod.clone(),
                    (_, status) => format!("status {status}"),
                };
                *counts.entry(key).or_insert(0) += 1;
            }
        }
        Ok(counts)
    }
}

/// Runs the futures concurrently on this task and collects their outputs in order.
async fn join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (future, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// [`roundtrip::send`] over TLS, with the leaf certificate (DER) Envoy presented.
async fn send_tls(
    client: &reqwest::Client,
    base: &str,
    req: &roundtrip::Req,
) -> Result<(Exchange, Option<Vec<u8>>)> {
    let method = reqwest::Method::from_bytes(req.method.as_deref().unwrap_or("GET").as_bytes())?;
    let mut builder = client.request(method, format!("{base}{}", req.path));
    for (name, value) in &req.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let response = builder
        .send()
        .await
        .with_context(|| format!("sending {req:?} to {base}"))?;
    let served = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .map(<[u8]>::to_vec);
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await?;
    let echo = serde_json::from_str(&body).ok();
    Ok((
        Exchange {
            status,
            headers,
            body,
            echo,
        },
        served,
    ))
}

fn substitute(manifest: &Manifest, addrs: &BTreeMap<Backend, SocketAddr>) -> Result<String> {
    super::placeholders::substitute(&manifest.text, addrs)
        .map_err(|e| anyhow!("{}: {e}", manifest.file))
}

fn clip(text: &str) -> String {
    const MAX: usize = 300;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

fn load_errors(status: &Value) -> Vec<String> {
    status
        .get("loadErrors")
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// `n` distinct free loopback ports.
fn distinct_free_ports(n: usize) -> Result<Vec<u16>> {
    let mut ports = Vec::new();
    for _ in 0..n * 10 {
        let port = free_port()?;
        if !ports.contains(&port) {
            ports.push(port);
        }
        if ports.len() == n {
            return Ok(ports);
        }
    }
    bail!("could not find {n} distinct free ports")
}

fn sentinel_host(generation: u64) -> String {
    format!("g{generation}.sentinel.invalid")
}

/// The sentinel's Gateway and HTTPRoute for change `generation`.
fn sentinel(port: u16, generation: u64) -> String {
    format!(
        "# The conformance runner's sentinel (see e2e::conformance::live).
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: sentinel, namespace: {RUNNER_NAMESPACE}}}
spec:
  gatewayClassName: tollgate
  listeners: [{{name: http, port: {port}, protocol: HTTP}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: sentinel, namespace: {RUNNER_NAMESPACE}}}
spec:
  parentRefs: [{{name: sentinel}}]
  rules:
  - filters:
    - type: RequestRedirect
      requestRedirect: {{hostname: {}}}
",
        sentinel_host(generation)
    )
}

#[derive(Deserialize)]
struct Object {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    spec: Value,
    #[serde(default)]
    data: Value,
}

/// The listener ports of the Gateways in `manifest`.
fn gateway_ports(manifest: &Manifest) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(&manifest.text) {
        let object = Object::deserialize(document).map_err(|e| e.to_string())?;
        if object.kind != "Gateway" {
            continue;
        }
        let listeners = object.spec.get("listeners").and_then(Value::as_array);
        for listener in listeners.into_iter().flatten() {
            let port = listener
                .get("port")
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| format!("a Gateway listener without a port: {listener}"))?;
            ports.push(port);
        }
    }
    Ok(ports)
}

/// The certificates (DER) of the `kubernetes.io/tls` Secrets in `manifests`.
fn certificates(manifests: &[Manifest]) -> Result<Vec<Vec<u8>>> {
    let mut found = Vec::new();
    for manifest in manifests {
        for document in serde_yaml_ng::Deserializer::from_str(&manifest.text) {
            let object =
                Object::deserialize(document).map_err(|e| anyhow!("{}: {e}", manifest.file))?;
            if object.kind != "Secret" {
                continue;
            }
            let Some(data) = object.data.get("tls.crt").and_then(Value::as_str) else {
                continue;
            };
            let engine = base64::engine::general_purpose::STANDARD;
            let pem = engine
                .decode(data.trim())
                .with_context(|| format!("{}: tls.crt is not base64", manifest.file))?;
            let pem = String::from_utf8(pem)
                .with_context(|| format!("{}: tls.crt is not PEM", manifest.file))?;
            for block in pem.split("-----BEGIN CERTIFICATE-----").skip(1) {
                let body: String = block
                    .split("-----END CERTIFICATE-----")
                    .next()
                    .unwrap_or("")
                    .split_whitespace()
                    .collect();
                found.push(
                    engine
                        .decode(body)
                        .with_context(|| format!("{}: a certificate in tls.crt", manifest.file))?,
                );
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(text: &str) -> Manifest {
        Manifest {
            file: "m.yaml".into(),
            text: text.into(),
        }
    }

    #[test]
    fn the_suite_s_gateway_ports_are_found() {
        let suite = Suite::load(&super::super::default_dir()).unwrap_or_else(|e| panic!("{e}"));
        let mut ports = BTreeSet::new();
        for test in &suite.tests {
            for m in std::iter::once(&suite.base).chain(&test.manifests) {
                ports.extend(gateway_ports(m).unwrap_or_else(|e| panic!("{e}")));
            }
        }
        assert_eq!(ports.into_iter().collect::<Vec<_>>(), [80, 443, 8080]);
    }

    #[test]
    fn certificates_come_from_tls_secrets() {
        let suite = Suite::load(&super::super::default_dir()).unwrap_or_else(|e| panic!("{e}"));
        let test = suite
            .test("HTTPRouteRedirectPortAndScheme")
            .expect("shipped");
        let found = certificates(&test.manifests).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(found.len(), 1);
        // A DER certificate is a SEQUENCE.
        assert_eq!(found[0][0], 0x30);
        let none = certificates(&[manifest("kind: Secret\ndata: {other: eA==}\n")]);
        assert_eq!(none.map(|c| c.len()).ok(), Some(0));
    }

    #[test]
    fn the_sentinel_is_one_gateway_and_one_redirecting_route() {
        let text = sentinel(40000, 7);
        assert_eq!(gateway_ports(&manifest(&text)), Ok(vec![40000]));
        assert!(text.contains("hostname: g7.sentinel.invalid"), "{text}");
    }

    #[test]
    fn long_bodies_are_clipped() {
        assert_eq!(clip("short"), "short");
        assert_eq!(clip(&"é".repeat(400)).chars().count(), 301);
    }

    #[tokio::test]
    async fn join_all_keeps_the_order() {
        let futures = [30u64, 10, 20].map(|ms| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            ms
        });
        assert_eq!(join_all(futures).await, [30, 10, 20]);
    }
}
