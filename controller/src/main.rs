//! `tollgate`: the companion binary of the Tollgate filters, a thin command
//! line over the `tollgate` library (`lib.rs`).
//!
//! One subcommand per job (see docs/design.md): `serve`, `bootstrap`, `translate`,
//! `validate`, `ratelimit-server` and `manifests`.
//! Logs go to stderr through `tracing`; `RUST_LOG` sets the filter (default `info`).

use tollgate::{
    bootstrap_command, manifests, ratelimit_server, serve, translate_command, validate_command,
};

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
    /// Watch a directory of Gateway API YAML, translate it and serve it to Envoy over ADS (SotW and Delta).
    Serve(serve::Args),
    /// Print the Envoy bootstrap (JSON) that points an Envoy at `tollgate serve`.
    Bootstrap(bootstrap_command::Args),
    /// Global rate limit service: Envoy's RateLimitService gRPC API, counters in Redis.
    RatelimitServer(ratelimit_server::Args),
    /// Translate a directory of Gateway API YAML to Envoy resources and status, offline.
    Translate(translate_command::Args),
    /// Check a directory of Gateway API and policy YAML; print every problem with file:line.
    Validate(validate_command::Args),
    /// Print Kubernetes manifests (`kubectl apply --server-side -f`).
    Manifests {
        #[command(subcommand)]
        manifest: Manifest,
    },
}

#[derive(Debug, Subcommand)]
enum Manifest {
    /// The install: namespace, policy CRDs, RBAC, the controller's Deployment and Service (multi-document YAML).
    Install(manifests::install::Args),
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
        Command::Bootstrap(args) => bootstrap_command::run(&args),
        Command::RatelimitServer(args) => run_async(ratelimit_server::run(args)),
        Command::Serve(args) => run_async(serve::run(args)),
        Command::Manifests {
            manifest: Manifest::Install(args),
        } => manifests::install::run(&args),
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
fn run_async(job: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(job)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn every_subcommand_s_flags_are_well_formed() {
        // clap checks unique names, groups and conflicts only when a command is
        // parsed in a debug build; this checks every subcommand at once.
        super::Cli::command().debug_assert();
    }
}
