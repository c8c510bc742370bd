//! The controller at scale (`make bench-controller`): a generator of N
//! HTTPRoutes in the shape of Envoy Gateway's scale tests, and the process
//! measurements the benchmark driver (`src/bin/controller-bench.rs`) reads.
//!
//! The generated directory: one GatewayClass and one Gateway (`bench/gw`, one
//! HTTP listener), Services each backing `routes_per_service` routes and
//! pointing at one echo backend (`tollgate.dev/static-endpoints`), and the
//! routes spread over `files` files. Route `i` serves hostname
//! `h{i % hostnames}.bench.example` with one rule of two path matches,
//! PathPrefix `/r{i}/v{generation}` and Exact `/r{i}`; an edit bumps the
//! generation, so the new path answers only once Envoy has the change.
//! A `policy_share` of the routes (spread evenly) each get a HeaderPolicy
//! (a response header) and a RateLimitPolicy (one local rule, never reached)
//! targeting them, in `policies/` files of their own.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

pub const NAMESPACE: &str = "bench";
pub const GATEWAY: &str = "gw";
/// The response header each HeaderPolicy sets (value: the route's name).
pub const POLICY_HEADER: &str = "x-bench-policy";

#[derive(Debug, Clone)]
pub struct Spec {
    pub routes: usize,
    pub hostnames: usize,
    /// Route files (`routes/routes-NNN.yaml`); routes are split evenly.
    pub files: usize,
    pub routes_per_service: usize,
    /// Share of routes, 0 to 1, that get a HeaderPolicy and a RateLimitPolicy.
    pub policy_share: f64,
    /// The Gateway listener's port (1024 or above: not remapped).
    pub listener_port: u16,
    /// Every Service's one endpoint.
    pub backend: SocketAddr,
}

/// A generated directory's content, and each route's generation.
#[derive(Debug, Clone)]
pub struct RouteSet {
    pub spec: Spec,
    generations: Vec<u32>,
}

impl RouteSet {
    pub fn new(spec: Spec) -> RouteSet {
        RouteSet {
            generations: vec![0; spec.routes],
            spec,
        }
    }

    fn routes_per_file(&self) -> usize {
        self.spec.routes.div_ceil(self.spec.files.max(1)).max(1)
    }

    fn file_count(&self) -> usize {
        self.spec.routes.div_ceil(self.routes_per_file())
    }

    fn services(&self) -> usize {
        self.spec
            .routes
            .div_ceil(self.spec.routes_per_service.max(1))
            .max(1)
    }

    pub fn route_name(i: usize) -> String {
        format!("route-{i:05}")
    }

    pub fn host(&self, i: usize) -> String {
        format!("h{}.bench.example", i % self.spec.hostnames.max(1))
    }

    /// The path that answers only at route `i`'s current generation.
    pub fn path(&self, i: usize) -> String {
        format!("/r{i}/v{}", self.generations[i])
    }

    /// Whether route `i` gets policies: the routes where `i * share` crosses
    /// an integer, so exactly `floor(routes * share)` routes, spread evenly.
    pub fn has_policies(&self, i: usize) -> bool {
        let share = self.spec.policy_share.clamp(0.0, 1.0);
        ((i + 1) as f64 * share).floor() > (i as f64 * share).floor()
    }

    pub fn policy_routes(&self) -> usize {
        (0..self.spec.routes)
            .filter(|i| self.has_policies(*i))
            .count()
    }

    /// Every file: (path relative to the config directory, YAML).
    pub fn files(&self) -> Vec<(String, String)> {
        let mut files = vec![
            ("gateway.yaml".to_owned(), self.gateway_yaml()),
            ("services.yaml".to_owned(), self.services_yaml()),
        ];
        for f in 0..self.file_count() {
            files.push(self.route_file(f));
            if let Some(policies) = self.policy_file(f) {
                files.push(policies);
            }
        }
        files
    }

    /// Writes every file below `dir`.
    pub fn write_all(&self, dir: &Path) -> Result<()> {
        for (path, text) in self.files() {
            let full = dir.join(path);
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&full, text).with_context(|| format!("writing {}", full.display()))?;
        }
        Ok(())
    }

    /// Bumps route `i`'s generation; returns the file that changed.
    pub fn edit(&mut self, i: usize) -> (String, String) {
        self.generations[i] += 1;
        self.route_file(i / self.routes_per_file())
    }

    fn gateway_yaml(&self) -> String {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: tollgate}}\nspec: {{controllerName: tollgate.dev/gateway-controller}}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: {GATEWAY}, namespace: {NAMESPACE}}}\nspec:\n  gatewayClassName: tollgate\n  listeners:\n  - name: http\n    protocol: HTTP\n    port: {}\n",
            self.spec.listener_port
        )
    }

    fn services_yaml(&self) -> String {
        let mut out = String::new();
        for s in 0..self.services() {
            out.push_str(&format!(
                "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{s:05}\n  namespace: {NAMESPACE}\n  annotations: {{tollgate.dev/static-endpoints: \"{}\"}}\nspec: {{ports: [{{port: 80}}]}}\n",
                self.spec.backend
            ));
        }
        out
    }

    fn file_routes(&self, f: usize) -> std::ops::Range<usize> {
        let per = self.routes_per_file();
        f * per..((f + 1) * per).min(self.spec.routes)
    }

    fn route_file(&self, f: usize) -> (String, String) {
        let mut out = String::new();
        for i in self.file_routes(f) {
            out.push_str(&format!(
                "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: {}\n  namespace: {NAMESPACE}\nspec:\n  parentRefs:\n  - name: {GATEWAY}\n  hostnames:\n  - {}\n  rules:\n  - matches:\n    - path: {{type: PathPrefix, value: {}}}\n    - path: {{type: Exact, value: /r{i}}}\n    backendRefs:\n    - name: svc-{:05}\n      port: 80\n",
                Self::route_name(i),
                self.host(i),
                self.path(i),
                i / self.spec.routes_per_service.max(1),
            ));
        }
        (format!("routes/routes-{f:03}.yaml"), out)
    }

    /// The policy shape (docs/policies.md): `spec.targetRefs` plus the filter's config
    /// under one key (`headers`, `rateLimit`).
    fn policy_file(&self, f: usize) -> Option<(String, String)> {
        let mut out = String::new();
        for i in self.file_routes(f).filter(|i| self.has_policies(*i)) {
            let route = Self::route_name(i);
            let target = format!(
                "  targetRefs:\n  - {{group: gateway.networking.k8s.io, kind: HTTPRoute, name: {route}}}\n"
            );
            out.push_str(&format!(
                "---\napiVersion: tollgate.dev/v1alpha1\nkind: HeaderPolicy\nmetadata:\n  name: {route}-headers\n  namespace: {NAMESPACE}\nspec:\n{target}  headers:\n    response:\n      set:\n      - {{name: {POLICY_HEADER}, value: {route}}}\n"
            ));
            out.push_str(&format!(
                "---\napiVersion: tollgate.dev/v1alpha1\nkind: RateLimitPolicy\nmetadata:\n  name: {route}-ratelimit\n  namespace: {NAMESPACE}\nspec:\n{target}  rateLimit:\n    local:\n      rules:\n      - clientSelectors:\n        - headers:\n          - {{name: x-user-id, value: one}}\n        limit: {{requests: 100000, unit: Minute}}\n"
            ));
        }
        (!out.is_empty()).then(|| (format!("policies/policies-{f:03}.yaml"), out))
    }
}

/// What one run of a command cost: wall time and peak RSS (the kernel's
/// `ru_maxrss` of the child, from `wait4`).
#[derive(Debug, Clone, Copy)]
pub struct Cost {
    pub wall: Duration,
    pub max_rss_kib: u64,
}

/// Runs `command` with stdout to `stdout` and stderr to `stderr`, at most
/// `timeout`; fails if it fails.
pub fn run_measured(
    command: &mut Command,
    stdout: &Path,
    stderr: &Path,
    timeout: Duration,
) -> Result<Cost> {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(stdout)?)
        .stderr(std::fs::File::create(stderr)?)
        .spawn()
        .with_context(|| format!("running {command:?}"))?;
    let pid = libc::pid_t::try_from(child.id())?;
    loop {
        let mut status = 0;
        // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: pid is our child, not yet reaped; the pointers are to locals.
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if reaped == pid {
            let wall = started.elapsed();
            if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
                bail!(
                    "{command:?} failed ({status:#x}): {}",
                    std::fs::read_to_string(stderr).unwrap_or_default()
                );
            }
            return Ok(Cost {
                wall,
                max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
            });
        }
        if reaped < 0 {
            bail!("wait4: {}", std::io::Error::last_os_error());
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{command:?} still running after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A field of `/proc/<pid>/status` in KiB (`VmHWM`: peak RSS, `VmRSS`: now).
pub fn proc_status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let prefix = format!("{field}:");
    status
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.split_whitespace().next())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?
        .parse()
        .with_context(|| format!("{field} of /proc/{pid}/status"))
}

/// The sum of a Prometheus text exposition's samples of `metric` (any labels).
pub fn metric_sum(text: &str, metric: &str) -> f64 {
    metric_samples(text, metric).iter().map(|(_, v)| v).sum()
}

/// `(labels, value)` of each sample of `metric`.
pub fn metric_samples(text: &str, metric: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(name, value)| {
            let labels = name.strip_prefix(metric)?;
            if !(labels.is_empty() || labels.starts_with('{')) {
                return None;
            }
            Some((labels.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// The `q` quantile (0..=1) of `values`, nearest rank.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = (q * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(routes: usize, share: f64) -> Spec {
        Spec {
            routes,
            hostnames: 5,
            files: 4,
            routes_per_service: 10,
            policy_share: share,
            listener_port: 18080,
            backend: "127.0.0.1:3000".parse().unwrap(),
        }
    }

    #[test]
    fn routes_files_and_policies_are_spread_evenly() {
        let set = RouteSet::new(spec(1000, 0.1));
        assert_eq!(set.policy_routes(), 100);
        let files = set.files();
        let routes = files
            .iter()
            .filter(|(p, _)| p.starts_with("routes/"))
            .count();
        assert_eq!(routes, 4);
        let documents = |kind: &str| {
            files
                .iter()
                .map(|(_, t)| t.matches(&format!("kind: {kind}\n")).count())
                .sum::<usize>()
        };
        assert_eq!(documents("HTTPRoute"), 1000);
        assert_eq!(documents("Service"), 100);
        assert_eq!(documents("HeaderPolicy"), 100);
        assert_eq!(documents("RateLimitPolicy"), 100);
        assert_eq!(RouteSet::new(spec(1000, 0.0)).policy_routes(), 0);
        assert_eq!(RouteSet::new(spec(7, 1.0)).policy_routes(), 7);
    }

    #[test]
    fn an_edit_rewrites_the_route_file_with_the_new_path() {
        let mut set = RouteSet::new(spec(10, 0.0));
        assert_eq!(set.path(7), "/r7/v0");
        let (path, text) = set.edit(7);
        assert_eq!(path, "routes/routes-002.yaml");
        assert_eq!(set.path(7), "/r7/v1");
        assert!(text.contains("value: /r7/v1}"), "{text}");
        assert_eq!(set.host(7), "h2.bench.example");
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=50).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 25.0);
        assert_eq!(quantile(&v, 0.99), 50.0);
        assert_eq!(quantile(&v, 1.0), 50.0);
    }

    #[test]
    fn metric_samples_by_name_and_labels() {
        let text = "# TYPE x counter\nx_total{type=\"Cluster\"} 10\nx_total{type=\"Listener\"} 5\nx_totally 1\n";
        assert_eq!(metric_sum(text, "x_total"), 15.0);
    }
}
