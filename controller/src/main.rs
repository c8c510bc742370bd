//! `tollgate`: the companion binary of the Tollgate filters.
//!
//! One subcommand per job (see DESIGN.md): `ratelimit-server` now; `serve`,
//! `translate`, `bootstrap` and `validate` join it as the controller grows.
//! Logs go to stderr through `tracing`; `RUST_LOG` sets the filter (default `info`).

mod ratelimit_server;

use std::process::ExitCode;

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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tollgate: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::RatelimitServer(args) => ratelimit_server::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tollgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}
