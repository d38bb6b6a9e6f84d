//! The `appliance` command: provisioning (`enroll`, `init-admin`) and running the box (`run`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use appliance::ApplianceConfig;

#[derive(Parser)]
#[command(name = "appliance", about = "Outpost site appliance", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enroll this box with HQ using the one-time code HQ issued for this site.
    Enroll {
        /// The hub's sync address, HOST:PORT.
        #[arg(long)]
        hub: String,
        /// The one-time enrollment code.
        #[arg(long)]
        code: String,
        /// The box's data directory.
        #[arg(long, env = "OUTPOST_DATA")]
        data: PathBuf,
    },
    /// Create the site admin account (or reset its password); prints a one-time password.
    InitAdmin {
        #[arg(long, env = "OUTPOST_DATA")]
        data: PathBuf,
        #[arg(long, default_value = "admin")]
        username: String,
    },
    /// Run the box until interrupted.
    Run {
        #[arg(long, env = "OUTPOST_DATA")]
        data: PathBuf,
        /// Configuration file (default: appliance.toml in the data directory).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::Enroll { hub, code, data } => {
            appliance::enroll(&data, &hub, &code).await?;
            println!("enrolled with {hub}; start the box with: appliance run --data {}", data.display());
        }
        Command::InitAdmin { data, username } => {
            let password = appliance::init_admin(&data, &username)?;
            println!("site admin \"{username}\" one-time password: {password}");
            println!("log in at the box's web UI and hand this password over in person.");
        }
        Command::Run { data, config } => {
            let config = ApplianceConfig::load(&data, config.as_deref())?;
            let shutdown = CancellationToken::new();
            let running = appliance::start(config, shutdown.clone()).await.context("starting the appliance")?;
            println!("web UI on http://{}  SIP on {}", running.http_addr, running.sip_addr);
            tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
            tracing::info!("stopping");
            shutdown.cancel();
            running.wait().await;
        }
    }
    Ok(())
}
