//! Stand-alone echo backend (`make run` starts two): the conformance echo contract
//! described in `e2e::echo`.

use clap::Parser;

#[derive(Parser)]
#[command(about = "Echo backend following the Gateway API conformance echo contract")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: std::net::SocketAddr,
    /// Namespace reported in replies.
    #[arg(long, env = "NAMESPACE", default_value = "default")]
    namespace: String,
    /// Pod name reported in replies.
    #[arg(long, env = "POD_NAME", default_value = "echo")]
    pod: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let echo = e2e::echo::Echo::bind(args.listen, &args.namespace, &args.pod).await?;
    eprintln!(
        "echo-backend {} ({}/{}) listening on http://{}",
        args.pod,
        args.namespace,
        args.pod,
        echo.addr()
    );
    tokio::signal::ctrl_c().await?;
    drop(echo);
    Ok(())
}
