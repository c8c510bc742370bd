//! `make bench-controller`: the controller at 1,000 and 10,000 HTTPRoutes
//! (`e2e::controller_bench` generates them), for each filter runtime
//! (`--runtimes dynamic-module,wasm`, both by default: the translation and
//! what Envoy loads differ). For each size and runtime, in one run:
//!
//! - `tollgate translate DIR`: wall time (median of `--translate-runs`) and
//!   peak RSS (`ru_maxrss` from `wait4`);
//! - `tollgate serve` with a real Envoy from `tollgate bootstrap`: the time from
//!   starting the controller to Envoy serving the last route, the controller's
//!   peak RSS (`VmHWM`) then and after the edits, the xDS bytes it sent
//!   (`tollgate_xds_bytes_sent_total`) for the full configuration and per edit;
//! - `--edits` edits, each bumping one route's path in its file: the time from
//!   the file write to the first request through Envoy that reaches the echo
//!   backend on the new path (polled every `--poll-ms`), p50 / p99 / max.
//!
//! `controller-bench generate --routes N --out DIR` writes a directory only
//! (for profiling `tollgate translate`). Never asserts on timings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};
use e2e::controller_bench::{
    metric_samples, metric_sum, proc_status_kib, quantile, run_measured, RouteSet, Spec,
};
use e2e::echo::Echo;
use e2e::envoy_config::Runtime;
use e2e::gateway::{free_port, wasm_dir, Gateway, Options, CHANGE_TIMEOUT};
use e2e::paths;

#[derive(Parser)]
#[command(about = "tollgate translate / serve at 1,000 and 10,000 HTTPRoutes")]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Measure, and print a table.
    Run(RunArgs),
    /// Only write a generated directory.
    Generate(GenerateArgs),
}

#[derive(ClapArgs, Clone)]
struct Shape {
    /// Share of routes (0 to 1) that get a HeaderPolicy and a RateLimitPolicy.
    #[arg(long, default_value_t = 0.1)]
    policy_share: f64,
    #[arg(long, default_value_t = 5)]
    hostnames: usize,
    /// Route files the routes are spread over.
    #[arg(long, default_value_t = 20)]
    files: usize,
    /// Routes sharing one backend Service (one Envoy cluster).
    #[arg(long, default_value_t = 10)]
    routes_per_service: usize,
}

#[derive(ClapArgs)]
struct RunArgs {
    /// Route counts, e.g. `--routes 1000,10000`.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    routes: Vec<usize>,
    /// Filter runtimes (`tollgate --filter-runtime`), each measured at every size.
    #[arg(long, value_delimiter = ',', default_value = "dynamic-module,wasm")]
    runtimes: Vec<RuntimeArg>,
    #[command(flatten)]
    shape: Shape,
    /// Edits timed from file write to Envoy serving them.
    #[arg(long, default_value_t = 50)]
    edits: usize,
    /// Runs of `tollgate translate` (the median is reported).
    #[arg(long, default_value_t = 3)]
    translate_runs: usize,
    /// Interval between requests while waiting for an edit to be served.
    #[arg(long, default_value_t = 2)]
    poll_ms: u64,
    /// The `tollgate` binary [default: dist/tollgate].
    #[arg(long)]
    tollgate: Option<PathBuf>,
}

#[derive(ClapArgs)]
struct GenerateArgs {
    #[arg(long)]
    routes: usize,
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    shape: Shape,
    #[arg(long, default_value_t = 18080)]
    listener_port: u16,
    /// The echo backend every Service points at.
    #[arg(long, default_value = "127.0.0.1:3000")]
    backend: SocketAddr,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RuntimeArg {
    DynamicModule,
    Wasm,
}

impl RuntimeArg {
    fn runtime(self) -> Runtime {
        match self {
            RuntimeArg::DynamicModule => Runtime::DynamicModule,
            RuntimeArg::Wasm => Runtime::Wasm,
        }
    }

    fn name(self) -> &'static str {
        match self {
            RuntimeArg::DynamicModule => "dynamic module",
            RuntimeArg::Wasm => "wasm",
        }
    }
}

/// One size's figures, for one runtime.
struct Row {
    routes: usize,
    runtime: RuntimeArg,
    policy_routes: usize,
    policies_applied: bool,
    translate_walls: Vec<f64>,
    translate_rss_mib: f64,
    translate_output_mib: f64,
    cold_start: f64,
    serve_hwm_loaded_mib: f64,
    serve_hwm_edited_mib: f64,
    serve_load_s: f64,
    serve_translate_s: f64,
    envoy_rss_mib: f64,
    xds_full: Vec<(String, f64)>,
    xds_per_edit: f64,
    edits_ms: Vec<f64>,
}

const TRANSLATE_TIMEOUT: Duration = Duration::from_secs(300);
/// Pause after an edit was served, so the next one is a reload of its own.
const BETWEEN_EDITS: Duration = Duration::from_millis(150);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    match Args::parse().command {
        Cmd::Generate(args) => {
            let set = RouteSet::new(spec(
                &args.shape,
                args.routes,
                args.listener_port,
                args.backend,
            ));
            set.write_all(&args.out)?;
            eprintln!(
                "wrote {} routes ({} with policies) to {}",
                args.routes,
                set.policy_routes(),
                args.out.display()
            );
            Ok(())
        }
        Cmd::Run(args) => run(&args).await,
    }
}

fn spec(shape: &Shape, routes: usize, listener_port: u16, backend: SocketAddr) -> Spec {
    Spec {
        routes,
        hostnames: shape.hostnames,
        files: shape.files,
        routes_per_service: shape.routes_per_service,
        policy_share: shape.policy_share,
        listener_port,
        backend,
    }
}

async fn run(args: &RunArgs) -> Result<()> {
    let tollgate = args.tollgate.clone().unwrap_or_else(paths::tollgate_bin);
    let echo = Echo::start("bench-echo").await?;
    eprintln!(
        "controller benchmark: {} with {} routes; {} edits; load now: {}",
        tollgate.display(),
        args.routes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        args.edits,
        load_average()
    );
    let mut rows = Vec::new();
    for &routes in &args.routes {
        for &runtime in &args.runtimes {
            let spec = spec(&args.shape, routes, free_port()?, echo.addr());
            rows.push(measure(args, &tollgate, spec, runtime).await?);
        }
    }
    println!(
        "\ncontroller at scale — {} ({} hostnames, {} route files, {} routes per Service; load after: {})\n",
        today(),
        args.shape.hostnames,
        args.shape.files,
        args.shape.routes_per_service,
        load_average()
    );
    println!("{}", table(&rows, args));
    for row in &rows {
        if row.policy_routes > 0 {
            println!(
                "- {} routes, {}: {} routes with a HeaderPolicy and a RateLimitPolicy; in the translation's filters: {}",
                row.routes,
                row.runtime.name(),
                row.policy_routes,
                if row.policies_applied {
                    "yes"
                } else {
                    "no (this build does not apply them)"
                }
            );
        }
    }
    Ok(())
}

async fn measure(args: &RunArgs, tollgate: &Path, spec: Spec, runtime: RuntimeArg) -> Result<Row> {
    let routes = spec.routes;
    let mut set = RouteSet::new(spec);
    let scratch = tempfile::Builder::new()
        .prefix("tollgate-controller-bench-")
        .tempdir()?;
    let dir = scratch.path().join("config");
    set.write_all(&dir)?;
    eprintln!(
        "==> {routes} routes ({} with policies), {}: tollgate translate ×{}",
        set.policy_routes(),
        runtime.name(),
        args.translate_runs
    );
    let mut translate = Command::new(tollgate);
    translate.arg("translate").arg(&dir);
    if let RuntimeArg::Wasm = runtime {
        translate
            .args(["--filter-runtime", "wasm", "--wasm-dir"])
            .arg(wasm_dir());
    }
    let out = scratch.path().join("translate.yaml");
    let err = scratch.path().join("translate.log");
    let mut walls = Vec::new();
    let mut rss_kib = 0;
    for run in 1..=args.translate_runs.max(1) {
        let cost = run_measured(&mut translate, &out, &err, TRANSLATE_TIMEOUT)?;
        eprintln!(
            "    run {run}: {:.3} s, peak RSS {:.1} MiB",
            cost.wall.as_secs_f64(),
            mib(cost.max_rss_kib)
        );
        walls.push(cost.wall.as_secs_f64());
        rss_kib = rss_kib.max(cost.max_rss_kib);
    }
    let translated = std::fs::read_to_string(&out)?;
    let policies_applied =
        translated.contains("tollgate.header_mod") && translated.contains("tollgate.ratelimit");
    let translate_output_mib = translated.len() as f64 / (1024.0 * 1024.0);
    drop(translated);

    eprintln!(
        "==> {routes} routes, {}: tollgate serve + Envoy",
        runtime.name()
    );
    let files = set.files();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let started = Instant::now();
    let options = Options {
        runtime: runtime.runtime(),
        ..Options::default()
    };
    let gw = Gateway::start_with(tollgate, &refs, &options).await?;
    drop(files);
    let last = routes - 1;
    let port = set.spec.listener_port;
    served(&gw, port, &set.host(last), &set.path(last), args.poll_ms).await?;
    let cold_start = started.elapsed().as_secs_f64();
    let serve_pid = gw.serve_pid();
    let serve_hwm_loaded_mib = mib(proc_status_kib(serve_pid, "VmHWM")?);
    let envoy_rss_mib = mib(proc_status_kib(gw.envoy.pid(), "VmRSS")?);
    let (_, metrics) = gw.admin("/metrics").await?;
    let xds_full = metric_samples(&metrics, "tollgate_xds_bytes_sent_total");
    let bytes_before = metric_sum(&metrics, "tollgate_xds_bytes_sent_total");
    eprintln!(
        "    Envoy serves every route {cold_start:.2} s after the controller started; controller VmHWM {serve_hwm_loaded_mib:.1} MiB; xDS {:.0} KiB",
        bytes_before / 1024.0
    );

    let mut edits_ms = Vec::new();
    for k in 0..args.edits {
        // 7919 is prime: every edit a different route, spread over the files.
        let i = (k * 7919 + 13) % routes;
        let (file, text) = set.edit(i);
        let written = Instant::now();
        gw.write(&file, &text)?;
        served(&gw, port, &set.host(i), &set.path(i), args.poll_ms).await?;
        let ms = written.elapsed().as_secs_f64() * 1000.0;
        edits_ms.push(ms);
        if (k + 1).is_multiple_of(10) || k + 1 == args.edits {
            eprintln!(
                "    edit {}/{}: {ms:.0} ms (p50 so far {:.0} ms)",
                k + 1,
                args.edits,
                quantile(&edits_ms, 0.5)
            );
        }
        tokio::time::sleep(BETWEEN_EDITS).await;
    }
    let serve_hwm_edited_mib = mib(proc_status_kib(serve_pid, "VmHWM")?);
    let (_, metrics) = gw.admin("/metrics").await?;
    let bytes_after = metric_sum(&metrics, "tollgate_xds_bytes_sent_total");
    Ok(Row {
        routes,
        runtime,
        policy_routes: set.policy_routes(),
        policies_applied,
        translate_walls: walls,
        translate_rss_mib: mib(rss_kib),
        translate_output_mib,
        cold_start,
        serve_hwm_loaded_mib,
        serve_hwm_edited_mib,
        serve_load_s: metric_sum(&metrics, "tollgate_last_load_seconds"),
        serve_translate_s: metric_sum(&metrics, "tollgate_last_translate_seconds"),
        envoy_rss_mib,
        xds_full,
        xds_per_edit: (bytes_after - bytes_before) / args.edits.max(1) as f64,
        edits_ms,
    })
}

/// Polls `host` `path` through Envoy every `poll_ms` (at most
/// [`CHANGE_TIMEOUT`]) until the echo backend answers it.
async fn served(gw: &Gateway, port: u16, host: &str, path: &str, poll_ms: u64) -> Result<()> {
    let started = Instant::now();
    loop {
        let last = gw.get(port, host, path).await;
        if matches!(&last, Ok(r) if r.status == 200 && r.pod().as_deref() == Some("bench-echo")) {
            return Ok(());
        }
        if started.elapsed() > CHANGE_TIMEOUT {
            bail!(
                "{host}{path}: not served after {CHANGE_TIMEOUT:?}; last answer {last:?}\n---- tollgate serve log (tail) ----\n{}",
                tail(&gw.serve_log(), 40)
            );
        }
        tokio::time::sleep(Duration::from_millis(poll_ms)).await;
    }
}

fn table(rows: &[Row], args: &RunArgs) -> String {
    let mut lines = vec![
        format!(
            "| | {} | target |",
            rows.iter()
                .map(|r| format!("{} routes, {}", thousands(r.routes), r.runtime.name()))
                .collect::<Vec<_>>()
                .join(" | ")
        ),
        format!("|---|{}---|", "---:|".repeat(rows.len())),
    ];
    let mut line = |what: &str, cell: &dyn Fn(&Row) -> String, target: &str| {
        lines.push(format!(
            "| {what} | {} | {target} |",
            rows.iter().map(cell).collect::<Vec<_>>().join(" | ")
        ));
    };
    line(
        &format!(
            "`tollgate translate` wall s (median of {}, range)",
            args.translate_runs
        ),
        &|r| {
            let min = r
                .translate_walls
                .iter()
                .copied()
                .fold(f64::INFINITY, f64::min);
            let max = r.translate_walls.iter().copied().fold(0.0, f64::max);
            format!(
                "{:.3} ({min:.3}–{max:.3})",
                quantile(&r.translate_walls, 0.5)
            )
        },
        "< 1 s at 10,000",
    );
    line(
        "`tollgate translate` peak RSS MiB",
        &|r| format!("{:.1}", r.translate_rss_mib),
        "",
    );
    line(
        "`tollgate translate` output (YAML) MiB",
        &|r| format!("{:.1}", r.translate_output_mib),
        "",
    );
    line(
        "`tollgate serve` peak RSS MiB, Envoy serving everything",
        &|r| format!("{:.1}", r.serve_hwm_loaded_mib),
        "< 60 at 1,000; < 250 at 10,000",
    );
    line(
        &format!("`tollgate serve` peak RSS MiB after {} edits", args.edits),
        &|r| format!("{:.1}", r.serve_hwm_edited_mib),
        "as above",
    );
    line(
        "xDS bytes, full config (Cluster + Listener + RouteConfiguration)",
        &|r| {
            let total: f64 = r.xds_full.iter().map(|(_, v)| v).sum();
            format!("{} ({})", thousands(total as usize), by_type(&r.xds_full))
        },
        "",
    );
    line(
        "xDS bytes per edit",
        &|r| thousands(r.xds_per_edit as usize),
        "",
    );
    line(
        &format!(
            "edit → served ms, p50 / p99 / max of {} (poll {} ms)",
            args.edits, args.poll_ms
        ),
        &|r| {
            format!(
                "{:.0} / {:.0} / {:.0}",
                quantile(&r.edits_ms, 0.5),
                quantile(&r.edits_ms, 0.99),
                quantile(&r.edits_ms, 1.0)
            )
        },
        "p99 < 500 at 1,000",
    );
    line(
        "`tollgate serve` reload: load s / translate s (last edit)",
        &|r| format!("{:.3} / {:.3}", r.serve_load_s, r.serve_translate_s),
        "",
    );
    line(
        "controller start → Envoy serving the last route, s",
        &|r| format!("{:.2}", r.cold_start),
        "",
    );
    line(
        "Envoy RSS MiB (2 workers)",
        &|r| format!("{:.1}", r.envoy_rss_mib),
        "",
    );
    lines.join("\n")
}

/// `C 12,345, L 678, R 90,123` from `{type="Cluster"}`-labelled samples.
fn by_type(samples: &[(String, f64)]) -> String {
    samples
        .iter()
        .map(|(labels, v)| {
            let name = labels
                .split('"')
                .nth(1)
                .and_then(|t| t.chars().next())
                .unwrap_or('?');
            format!("{name} {}", thousands(*v as usize))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| {
            let parts: Vec<&str> = l.split_whitespace().take(3).collect();
            (parts.len() == 3).then(|| parts.join(" "))
        })
        .unwrap_or_else(|| "?".into())
}

fn today() -> String {
    Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
