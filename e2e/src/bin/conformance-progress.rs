//! Which conformance tests' manifests the current translator accepts, and
//! whether the status it reports already meets each step's expectations.
//! A progress table, not a test: it always exits 0 once the suite loads.
//!
//! `cargo run -p e2e --bin conformance-progress [-- --tollgate PATH]`
//!
//! For each test directory: placeholders get dummy loopback addresses, the
//! files go into a temporary directory, and `tollgate translate --type status`
//! runs on it once per step (after that step's removals).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use e2e::conformance::{status::check_status, ConformanceTest, Manifest, Suite};

#[derive(Parser)]
struct Args {
    /// The translator to ask (default: dist/tollgate).
    #[arg(long)]
    tollgate: Option<PathBuf>,
    /// The suite (default: e2e/tests/conformance).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// One test's outcome: how far the translator gets.
enum Progress {
    /// `tollgate translate` refused the files; its first error line.
    Refused(String),
    /// Translated; the steps whose status expectations hold, and the first miss.
    Translated {
        steps_ok: usize,
        steps: usize,
        first_miss: Option<String>,
    },
}

fn main() -> Result<()> {
    let args = Args::parse();
    let tollgate = args.tollgate.unwrap_or_else(e2e::paths::tollgate_bin);
    let suite = Suite::load(&args.dir.unwrap_or_else(e2e::conformance::default_dir))
        .map_err(|e| anyhow::anyhow!("the conformance suite does not load:\n{e}"))?;
    let mut accepted = 0;
    println!("| Test | Translates | Status steps met | First problem |");
    println!("|---|---|---|---|");
    for test in &suite.tests {
        let (translates, steps, problem) = match progress(&tollgate, &suite.base, test)? {
            Progress::Refused(error) => ("no".to_owned(), "-".to_owned(), error),
            Progress::Translated {
                steps_ok,
                steps,
                first_miss,
            } => {
                accepted += 1;
                (
                    "yes".to_owned(),
                    format!("{steps_ok}/{steps}"),
                    first_miss.unwrap_or_default(),
                )
            }
        };
        println!(
            "| {} | {translates} | {steps} | {} |",
            test.name,
            one_line(&problem)
        );
    }
    println!(
        "\n{accepted} of {} tests translate with {}",
        suite.tests.len(),
        tollgate.display()
    );
    Ok(())
}

fn progress(tollgate: &Path, base: &Manifest, test: &ConformanceTest) -> Result<Progress> {
    let backends = test.backends(base).map_err(anyhow::Error::msg)?;
    let addrs: BTreeMap<_, _> = backends
        .into_iter()
        .zip(1u16..)
        .map(|(backend, port)| (backend, SocketAddr::from(([127, 0, 0, 1], port))))
        .collect();
    let dir = tempfile::tempdir()?;
    for (file, text) in test.files(base, &addrs).map_err(anyhow::Error::msg)? {
        std::fs::write(dir.path().join(file), text)?;
    }
    let mut steps_ok = 0;
    let mut first_miss = None;
    for (index, step) in test.spec.steps.iter().enumerate() {
        for file in &step.remove {
            std::fs::remove_file(dir.path().join(file))
                .with_context(|| format!("{}: removing {file}", test.name))?;
        }
        let status = match translate_status(tollgate, dir.path())? {
            Ok(status) => status,
            Err(error) => return Ok(Progress::Refused(error)),
        };
        match check_status(&step.status, &status) {
            Ok(()) => steps_ok += 1,
            Err(miss) => {
                first_miss.get_or_insert(format!("step {}: {miss}", index + 1));
            }
        }
    }
    Ok(Progress::Translated {
        steps_ok,
        steps: test.spec.steps.len(),
        first_miss,
    })
}

/// The `status` document, or the translator's refusal (its first problem).
fn translate_status(tollgate: &Path, dir: &Path) -> Result<Result<serde_json::Value, String>> {
    let out = Command::new(tollgate)
        .args(["translate", "--type", "status", "-o", "json"])
        .arg(dir)
        .output()
        .with_context(|| format!("running {}", tollgate.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let dir_text = dir.display().to_string();
        let problem = stderr
            .lines()
            .map(|l| l.replace(&dir_text, "").trim_start_matches('/').to_owned())
            .find(|l| !l.trim().is_empty() && !l.contains("has errors"))
            .unwrap_or_else(|| stderr.trim().to_owned());
        return Ok(Err(problem));
    }
    let document: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    match document.get("status") {
        Some(status) => Ok(Ok(status.clone())),
        None => bail!("translate printed no status: {document}"),
    }
}

/// Table cells hold one line; `|` would end the cell.
fn one_line(text: &str) -> String {
    let first = text.lines().next().unwrap_or("").replace('|', "\\|");
    if text.lines().count() > 1 {
        format!("{first} (…)")
    } else {
        first
    }
}
