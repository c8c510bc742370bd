//! The filter benchmark method of docs/benchmarks.md#method, as a library.
//!
//! One Envoy at a time (`--concurrency 1`, a `direct_response` route), loaded by
//! `wrk -t1 -c16`; the figure that matters is Envoy's CPU time per request, read
//! from `/proc/<pid>/stat` around the run. Variants (no filter, Envoy's native
//! filter, ours) alternate for several rounds and medians are reported, because
//! this 2-core machine is noisy. Each run is checked to have done its job.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use serde_json::Value;

use crate::envoy::{Envoy, Options};
use crate::envoy_config::LISTENER;
use crate::roundtrip::{self, Exchange, Req};

/// Proves a variant did its job on one exchange (a fast no-op is not a result).
pub type Check = Box<dyn Fn(&Exchange) -> Result<()>>;

/// One configuration under test.
pub struct Variant {
    pub name: String,
    /// Full Envoy bootstrap.
    pub config: Value,
    /// Headers every wrk request carries.
    pub headers: Vec<(String, String)>,
    /// A wrk Lua script (`-s`), e.g. to vary a header per request.
    pub script: Option<PathBuf>,
    /// Proves the filter did its job on one request before the run.
    pub check: Check,
    /// Costs outside Envoy, reported per request.
    pub side: Side,
}

/// Reads a count (e.g. from a service's `/metrics`) around a measured run.
pub type ReadCount = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<u64>>>>>;

/// What else a variant's requests cost, outside Envoy: each reported per
/// request, as an extra table column.
#[derive(Default)]
pub struct Side {
    /// Processes whose CPU time is measured like Envoy's (a rate limit service, Redis).
    pub processes: Vec<(String, u32)>,
    /// Counts whose growth over the run is divided by its requests (Redis round trips).
    pub counts: Vec<(String, ReadCount)>,
}

impl Side {
    /// Column names, in the order of [`Sample::side`].
    fn columns(&self) -> Vec<String> {
        self.processes
            .iter()
            .map(|(name, _)| format!("{name} CPU µs/req"))
            .chain(self.counts.iter().map(|(name, _)| format!("{name}/req")))
            .collect()
    }

    async fn read(&self) -> Result<Vec<f64>> {
        let mut out = Vec::new();
        for (_, pid) in &self.processes {
            out.push(cpu_seconds(*pid)? * 1e6);
        }
        for (name, read) in &self.counts {
            out.push(read().await.with_context(|| format!("reading {name}"))? as f64);
        }
        Ok(out)
    }
}

/// Writes `values` to `dir` and a wrk script that sends each request with the next
/// one as header `name` (cycling), so a run sees many distinct values.
pub fn rotating_header_script(
    dir: &Path,
    tag: &str,
    name: &str,
    prefix: &str,
    values: &[String],
) -> Result<PathBuf> {
    let list = dir.join(format!("{tag}.txt"));
    std::fs::write(&list, values.join("\n") + "\n")?;
    let script = dir.join(format!("{tag}.lua"));
    std::fs::write(
        &script,
        format!(
            "local values = {{}}\nfor line in io.lines(\"{}\") do values[#values + 1] = line end\nlocal i = 0\n\
             request = function()\n  i = i % #values + 1\n  return wrk.format(nil, nil, {{[\"{name}\"] = \"{prefix}\" .. values[i]}})\nend\n",
            list.display()
        ),
    )?;
    Ok(script)
}

/// What one measured wrk run gave.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub requests: u64,
    pub non_2xx: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub cpu_us_per_request: f64,
    pub rss_mib: f64,
    /// Per request, for each of the variant's [`Side::columns`].
    pub side: Vec<f64>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub rounds: usize,
    pub duration: Duration,
    pub connections: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            rounds: 3,
            duration: Duration::from_secs(4),
            connections: 16,
        }
    }
}

/// Runs every variant `rounds` times, alternating, and returns the samples per variant.
pub async fn run(variants: &[Variant], settings: &Settings) -> Result<Vec<Vec<Sample>>> {
    let mut samples = vec![Vec::new(); variants.len()];
    // Names padded to the longest, so that the figures line up in the log.
    let width = variants.iter().map(|v| v.name.chars().count()).max();
    let width = width.unwrap_or(0);
    for round in 1..=settings.rounds {
        for (i, variant) in variants.iter().enumerate() {
            eprint!(
                "round {round}/{}: {:<width$} ",
                settings.rounds, variant.name
            );
            let sample = measure(variant, settings)
                .await
                .with_context(|| format!("variant {}", variant.name))?;
            eprintln!(
                "{:>9.0} req/s  {:>6.2} µs CPU/req  p50 {:.2} ms  p99 {:.2} ms",
                sample.rps, sample.cpu_us_per_request, sample.p50_ms, sample.p99_ms
            );
            samples[i].push(sample);
        }
    }
    Ok(samples)
}

async fn measure(variant: &Variant, settings: &Settings) -> Result<Sample> {
    let options = Options {
        concurrency: 1,
        log_level: "warn".into(),
        module_dir: None,
    };
    let envoy = Envoy::try_start(&variant.config, &options)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let base = envoy.listener_url(LISTENER).await;
    let mut req = Req::get("/");
    req.headers = variant.headers.clone();
    let ex = roundtrip::send(&roundtrip::client(), &base, &req).await?;
    (variant.check)(&ex).with_context(|| {
        format!(
            "the filter did not do its job: {} {:?} {}",
            ex.status, ex.headers, ex.body
        )
    })?;

    let script = variant.script.as_deref();
    wrk(
        &base,
        &variant.headers,
        script,
        Duration::from_secs(1),
        settings.connections,
    )?;
    let side_before = variant.side.read().await?;
    let before = cpu_seconds(envoy.pid())?;
    let out = wrk(
        &base,
        &variant.headers,
        script,
        settings.duration,
        settings.connections,
    )?;
    let after = cpu_seconds(envoy.pid())?;
    let side_after = variant.side.read().await?;
    let mut sample = parse_wrk(&out)?;
    if sample.requests == 0 {
        bail!("wrk completed no requests:\n{out}");
    }
    if sample.non_2xx > 0 {
        bail!(
            "{} non-2xx responses during the run:\n{out}",
            sample.non_2xx
        );
    }
    sample.cpu_us_per_request = (after - before) * 1e6 / sample.requests as f64;
    sample.side = side_after
        .iter()
        .zip(&side_before)
        .map(|(a, b)| (a - b) / sample.requests as f64)
        .collect();
    sample.rss_mib = rss_mib(envoy.pid())?;
    Ok(sample)
}

fn wrk(
    base: &str,
    headers: &[(String, String)],
    script: Option<&Path>,
    duration: Duration,
    connections: u32,
) -> Result<String> {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t1",
        &format!("-c{connections}"),
        &format!("-d{}s", duration.as_secs().max(1)),
        "--latency",
    ]);
    // wrk stops by itself after -d; the timeout only bounds a hung connection.
    cmd.args(["--timeout", "5s"]);
    for (name, value) in headers {
        cmd.args(["-H", &format!("{name}: {value}")]);
    }
    if let Some(script) = script {
        cmd.arg("-s").arg(script);
    }
    cmd.arg(format!("{base}/"));
    let out = cmd
        .output()
        .context("running wrk (make setup installs it)")?;
    if !out.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Parses wrk's `--latency` report.
pub fn parse_wrk(out: &str) -> Result<Sample> {
    let mut s = Sample::default();
    for line in out.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("50%"), Some(v)) => s.p50_ms = duration_ms(v)?,
            (Some("99%"), Some(v)) => s.p99_ms = duration_ms(v)?,
            (Some("Requests/sec:"), Some(v)) => s.rps = v.parse()?,
            (Some("Non-2xx"), _) => s.non_2xx = line.rsplit(' ').next().unwrap_or("0").parse()?,
            (Some(n), Some("requests")) => s.requests = n.parse()?,
            _ => {}
        }
    }
    Ok(s)
}

fn duration_ms(v: &str) -> Result<f64> {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num.parse().with_context(|| format!("latency {v}"))?;
    Ok(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => bail!("unknown latency unit in {v}"),
    })
}

/// User + system CPU seconds Envoy has used, from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the `(comm)`, which may contain spaces: state is field 3, utime 14, stime 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11).context("utime")?.parse::<u64>()?
        + fields.get(12).context("stime")?.parse::<u64>()?;
    Ok(ticks as f64 / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .context("VmRSS")?
        .parse()?;
    Ok(kib / 1024.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Median figures of one variant.
#[derive(Debug, Clone)]
pub struct Summary {
    pub name: String,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub cpu_us: f64,
    /// Median over rounds of (this variant − the baseline *in the same round*): the
    /// machine's speed drifts between rounds by more than a filter costs, and pairing
    /// each run with its neighbour cancels most of that drift.
    pub added_us: f64,
    /// Lowest and highest of those per-round differences.
    pub added_range: (f64, f64),
    pub rss_mib: f64,
    /// Medians of the [`Side`] columns, by name.
    pub side: Vec<(String, f64)>,
}

/// Medians per variant; added cost is paired with `baseline`'s run in each round.
pub fn summarize(variants: &[Variant], samples: &[Vec<Sample>], baseline: &str) -> Vec<Summary> {
    let base = variants
        .iter()
        .position(|v| v.name == baseline)
        .map(|i| &samples[i]);
    variants
        .iter()
        .zip(samples)
        .map(|(v, s)| {
            let m = |f: fn(&Sample) -> f64| median(s.iter().map(f).collect());
            let added: Vec<f64> = match base {
                Some(base) => s
                    .iter()
                    .zip(base)
                    .map(|(x, b)| x.cpu_us_per_request - b.cpu_us_per_request)
                    .collect(),
                None => Vec::new(),
            };
            let range = added
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
                    (lo.min(*x), hi.max(*x))
                });
            Summary {
                name: v.name.clone(),
                rps: m(|s| s.rps),
                p50_ms: m(|s| s.p50_ms),
                p99_ms: m(|s| s.p99_ms),
                cpu_us: m(|s| s.cpu_us_per_request),
                added_us: median(added),
                added_range: range,
                rss_mib: m(|s| s.rss_mib),
                side: v
                    .side
                    .columns()
                    .into_iter()
                    .enumerate()
                    .map(|(i, name)| {
                        (
                            name,
                            median(s.iter().filter_map(|x| x.side.get(i).copied()).collect()),
                        )
                    })
                    .collect(),
            }
        })
        .collect()
}

/// A Markdown table: added cost is paired with `baseline` per round (see
/// [`Summary::added_us`]). The ratio compares a variant's added cost with its native
/// counterpart: the variant named like it with `tollgate` replaced by `native`, else
/// the one named `native` (also for variants without `tollgate` in their name).
pub fn table(summaries: &[Summary], baseline: &str) -> String {
    let added_of = |name: &str| {
        summaries
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.added_us)
    };
    let mut columns: Vec<&str> = Vec::new();
    for (name, _) in summaries.iter().flat_map(|s| &s.side) {
        if !columns.contains(&name.as_str()) {
            columns.push(name);
        }
    }
    let mut out = String::from(
        "| variant | req/s | p50 ms | p99 ms | CPU µs/req | added µs/req (range over rounds) | added vs native | RSS MiB |",
    );
    for c in &columns {
        out.push_str(&format!(" {c} |"));
    }
    out.push_str("\n|---|---:|---:|---:|---:|---:|---:|---:|");
    out.push_str(&"---:|".repeat(columns.len()));
    out.push('\n');
    for s in summaries {
        let (added, ratio) = if s.name == baseline {
            ("—".to_string(), "—".to_string())
        } else {
            // "tollgate X" pairs with "native X" when there is one; everything
            // else (a floor module, say) is compared with plain "native".
            let counterpart = s.name.replacen("tollgate", "native", 1);
            let native = (counterpart != s.name)
                .then(|| added_of(&counterpart))
                .flatten()
                .or_else(|| added_of("native"));
            (
                format!(
                    "{:.1} ({:.1} … {:.1})",
                    s.added_us, s.added_range.0, s.added_range.1
                ),
                native.map_or("—".to_string(), |n| format!("{:.1}×", s.added_us / n)),
            )
        };
        out.push_str(&format!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.1} | {} | {} | {:.1} |",
            s.name, s.rps, s.p50_ms, s.p99_ms, s.cpu_us, added, ratio, s.rss_mib
        ));
        for c in &columns {
            match s.side.iter().find(|(name, _)| name == c) {
                Some((_, v)) => out.push_str(&format!(" {v:.2} |")),
                None => out.push_str(" — |"),
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_latency_report() {
        let out = "Running 4s test @ http://127.0.0.1:1/\n  1 threads and 16 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   613.35us  300.00us   9.00ms   90.00%\n  Latency Distribution\n     50%  560.00us\n     75%  700.00us\n     90%    1.00ms\n     99%    1.50ms\n  104402 requests in 4.00s, 12.00MB read\n  Non-2xx or 3xx responses: 3\nRequests/sec:  26100.50\nTransfer/sec:      3.00MB\n";
        let s = parse_wrk(out).unwrap();
        assert_eq!(s.requests, 104402);
        assert_eq!(s.non_2xx, 3);
        assert!((s.rps - 26100.5).abs() < 1e-6);
        assert!((s.p50_ms - 0.56).abs() < 1e-9);
        assert!((s.p99_ms - 1.5).abs() < 1e-9);
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
