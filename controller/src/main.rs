//! `tollgate`: the companion binary of the Tollgate filters.
//!
//! One subcommand per job (see DESIGN.md): `ratelimit-server`, `translate`
//! and `validate` now; `serve` and `bootstrap` join them as the controller grows.
//! Logs go to stderr through `tracing`; `RUST_LOG` sets the filter (default `info`).

mod ratelimit_server;
mod resources;
mod translate;
mod translate_command;
mod validate_command;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "tollgate",
    version,
    about = "Tollgate: Envoy filters' companion binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Global rate limit service: Envoy's RateLimitService gRPC API, counters in Redis.
    RatelimitServer(ratelimit_server::Args),
    /// Translate a directory of Gateway API YAML to Envoy resources and status, offline.
    Translate(translate_command::Args),
    /// Check a directory of Gateway API and policy YAML; print every problem with file:line.
    Validate(validate_command::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Translate(args) => translate_command::run(&args),
        Command::Validate(args) => validate_command::run(&args),
        Command::RatelimitServer(args) => serve_async(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tollgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The async subcommands, on a multi-threaded runtime built only for them.
fn serve_async(args: ratelimit_server::Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(ratelimit_server::run(args))
}
