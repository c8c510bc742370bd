//! `tollgate translate DIR`: the translator offline, for looking at what a
//! directory becomes and for diffing it in review.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::resources;
use crate::translate::{self, render};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory of Gateway API YAML (`*.yaml`, `*.yml`, recursive, multi-document).
    dir: PathBuf,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Yaml)]
    format: Format,
    /// Which part to print.
    #[arg(long = "type", value_enum, default_value_t = render::Part::All)]
    part: render::Part,
    /// Serve listener ports as written, even below 1024 (by default they move to port + 10000).
    #[arg(long)]
    no_port_remap: bool,
    /// Print listeners' TLS private keys instead of `[redacted]` (for a static Envoy config).
    #[arg(long)]
    show_secrets: bool,
    /// Directory of Tollgate's `.wasm` filters, as Envoy will read it [default: the directory of
    /// this binary when it holds them (`dist/`), else `./dist`; made absolute].
    #[arg(long)]
    wasm_dir: Option<PathBuf>,
    /// `HOST:PORT` of the global rate limit service (`tollgate ratelimit-server`) that global rate
    /// limit rules call; without it a policy with global rules is Invalid.
    #[arg(long, value_name = "HOST:PORT", value_parser = crate::translate::parse_service_address)]
    ratelimit_service: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Yaml,
    Json,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let loaded = resources::load_dir(&args.dir)
        .map_err(|e| anyhow::anyhow!("{} has errors:\n{e}", args.dir.display()))?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let wasm_dir = match &args.wasm_dir {
        Some(dir) => dir.clone(),
        None => default_wasm_dir(),
    };
    let options = translate::Options {
        port_remap: !args.no_port_remap,
        wasm_dir: std::path::absolute(&wasm_dir)
            .with_context(|| format!("making {} absolute", wasm_dir.display()))?,
        ratelimit_service: args.ratelimit_service.clone(),
    };
    let secrets = if args.show_secrets {
        render::Secrets::Reveal
    } else {
        render::Secrets::Redact
    };
    let document = render::document(&translate::translate(&loaded, &options), args.part, secrets)?;
    let text = match args.format {
        Format::Yaml => serde_yaml_ng::to_string(&document).context("writing YAML")?,
        Format::Json => serde_json::to_string_pretty(&document).context("writing JSON")? + "\n",
    };
    print!("{text}");
    Ok(())
}

/// `make build` puts `tollgate` next to the filters in `dist/`; a cargo build
/// (`target/debug/tollgate`) is run from the repository root.
pub fn default_wasm_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .filter(|dir| dir.join("header_mod.wasm").is_file())
        .unwrap_or_else(|| PathBuf::from("dist"))
}
