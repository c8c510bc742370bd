//! `bench verify`: the in-VM cost of one JWT signature verification per algorithm.
//!
//! The request benchmarks (`bench jwt`) give Envoy's CPU per request, which mixes the
//! verification with everything else a request costs. This suite isolates the
//! verification: it loads the prebuilt `verify_bench.wasm` (e2e/verify-bench-wasm) into
//! a real Envoy with keys and tokens of every algorithm minted by [`crate::jwt_mint`],
//! waits for the module's per-algorithm timings in Envoy's log, then runs the same
//! measurement natively in this process for reference.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};
use verify_bench::{Bench, Config, Timing, LOG_MARKER};

use crate::envoy::{Envoy, Options};
use crate::envoy_config::{direct_route, wasm_filter, Listener};
use crate::jwt_mint::{Keys, ALGORITHMS};

/// How long the module may take to report (it measures before Envoy is ready).
const REPORT_TIMEOUT: Duration = Duration::from_secs(60);

/// One token per algorithm, signed by the keys of [`Keys::default`], and their JWKS.
pub fn config(batch_ms: u64, rounds: usize) -> Config {
    let keys = Keys::default();
    let claims = json!({"iss": "https://issuer.example", "aud": "api", "sub": "alice"});
    Config {
        jwks: keys.jwks().to_string(),
        tokens: ALGORITHMS
            .iter()
            .map(|(alg, kid)| keys.sign(alg, Some(kid), &claims))
            .collect(),
        batch_ms,
        rounds,
    }
}

/// What one module reported from inside Envoy.
pub struct VmReport {
    /// The smallest step Envoy's clock took, as the module saw it.
    pub clock_step_ns: u64,
    pub timings: Vec<Timing>,
}

/// Runs `wasm` in Envoy (one worker) with `config` and collects its report.
pub async fn in_envoy(wasm: &Path, config: &Config) -> Result<VmReport> {
    let bootstrap = Listener {
        http_filters: vec![wasm_filter(
            "verify_bench",
            wasm,
            &serde_json::to_value(config)?,
        )],
        routes: vec![direct_route("bench", "/", "ok")],
        ..Listener::default()
    }
    .bootstrap();
    let options = Options {
        concurrency: 1,
        // The module reports at info level.
        log_level: "info".into(),
        module_dir: None,
    };
    let envoy = Envoy::try_start(&bootstrap, &options)
        .await
        .map_err(|failure| anyhow!("{failure}"))?;
    let started = Instant::now();
    loop {
        if let Some(report) = parse_report(&envoy.log())? {
            return Ok(report);
        }
        if started.elapsed() > REPORT_TIMEOUT {
            bail!(
                "{} reported nothing within {REPORT_TIMEOUT:?}; Envoy log:\n{}",
                wasm.display(),
                envoy.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The module's report once its last line is in the log; an error line is an error.
fn parse_report(log: &str) -> Result<Option<VmReport>> {
    let mut clock_step_ns = 0;
    let mut timings = Vec::new();
    for line in log.lines() {
        let Some((_, payload)) = line.split_once(LOG_MARKER) else {
            continue;
        };
        let value: Value = serde_json::from_str(payload)?;
        if let Some(error) = value.get("error") {
            bail!("the benchmark module failed: {error}");
        }
        if let Some(step) = value.get("clockStepNs").and_then(Value::as_u64) {
            clock_step_ns = step;
        } else if value.get("done").is_some() {
            return Ok(Some(VmReport {
                clock_step_ns,
                timings,
            }));
        } else {
            timings.push(serde_json::from_value(value)?);
        }
    }
    Ok(None)
}

/// The same measurement natively, with this process's monotonic clock.
pub fn native(config: &Config) -> Result<Vec<Timing>> {
    let bench = Bench::new(config).map_err(|e| anyhow!(e))?;
    let epoch = Instant::now();
    let now_ns = || u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
    Ok(bench.run(&now_ns, config.batch_ms, config.rounds))
}

/// A Markdown table: per algorithm, µs per verification in V8 (min and median over
/// batches, and the first call), natively, and the V8 / native ratio of the minima;
/// with `other`, a second module's V8 figures (e.g. a previous build) and the change.
pub fn table(vm: &[Timing], native: &[Timing], other: Option<(&str, &[Timing])>) -> String {
    let mut head = "| algorithm | V8 µs min | V8 µs median | V8 first call µs | native µs min | native µs median | V8 ÷ native |".to_string();
    let mut rule = "|---|---:|---:|---:|---:|---:|---:|".to_string();
    if let Some((name, _)) = other {
        head.push_str(&format!(
            " {name} V8 µs min | {name} V8 µs median | min change |"
        ));
        rule.push_str("---:|---:|---:|");
    }
    let mut out = format!("{head}\n{rule}\n");
    for t in vm {
        let find = |set: &[Timing]| set.iter().find(|n| n.alg == t.alg).cloned();
        let (native_min, native_median) = find(native)
            .map(|n| (n.min_us(), n.median_us()))
            .unwrap_or((f64::NAN, f64::NAN));
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.1}× |",
            t.alg,
            us(t.min_us()),
            us(t.median_us()),
            us(t.first_us),
            us(native_min),
            us(native_median),
            t.min_us() / native_min
        ));
        if let Some((_, set)) = other {
            match find(set) {
                Some(o) => out.push_str(&format!(
                    " {} | {} | {:+.0} % |",
                    us(o.min_us()),
                    us(o.median_us()),
                    (t.min_us() / o.min_us() - 1.0) * 100.0
                )),
                None => out.push_str(" – | – | – |"),
            }
        }
        out.push('\n');
    }
    out
}

/// Microseconds with the precision that means something at that size.
fn us(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_verifies_natively() {
        let config = config(1, 1);
        let timings = native(&config).expect("bench");
        let algs: Vec<&str> = timings.iter().map(|t| t.alg.as_str()).collect();
        let want: Vec<&str> = ALGORITHMS.iter().map(|(alg, _)| *alg).collect();
        assert_eq!(algs, want);
        assert!(timings.iter().all(|t| t.batches_us.len() == 1));
    }

    #[test]
    fn the_report_is_read_from_envoy_log_lines() {
        let log = format!(
            "[info][wasm] wasm log verify_bench verify_bench: {LOG_MARKER}{{\"clockStepNs\": 1000}}\n\
             [info][wasm] wasm log verify_bench verify_bench: {LOG_MARKER}{{\"alg\":\"RS256\",\"firstUs\":300.0,\"iterations\":250,\"batchesUs\":[200.0,190.0,210.0]}}\n"
        );
        assert!(
            parse_report(&log).expect("no error").is_none(),
            "not done yet"
        );
        let done = format!("{log}x {LOG_MARKER}{{\"done\": true}}\n");
        let report = parse_report(&done).expect("no error").expect("done");
        assert_eq!(report.clock_step_ns, 1000);
        assert_eq!(report.timings.len(), 1);
        assert_eq!(report.timings[0].min_us(), 190.0);
        assert_eq!(report.timings[0].median_us(), 200.0);
        let failed = format!("x {LOG_MARKER}{{\"error\": \"RS256: the token does not verify\"}}\n");
        assert!(parse_report(&failed).is_err());
    }
}
