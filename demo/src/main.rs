//! `outpost-demo`: runs the whole product on loopback and prints where to look.

use std::path::PathBuf;

use clap::Parser;
use tokio_util::sync::CancellationToken;

/// Runs an HQ hub, one enrolled site appliance, a simulated carrier and simulated agents on
/// 127.0.0.1, seeded with a demo project and batch.
#[derive(Parser)]
#[command(name = "outpost-demo")]
struct Args {
    /// Where the hub's and the site's data live (created if missing; reused if present).
    #[arg(long, default_value = "demo-data")]
    data: PathBuf,
    /// Number of simulated agents.
    #[arg(long, default_value_t = 3)]
    agents: u32,
    /// Share of calls the simulated carrier answers, 0.0 to 1.0.
    #[arg(long, default_value_t = 0.5)]
    answer_share: f64,
    /// Rows in the demo call list.
    #[arg(long, default_value_t = 300)]
    rows: u32,
    /// Added to every port the demo listens on (8080, 4433, 8090, 5060, 5070, 30000+), for a
    /// machine where those are taken or to run two demos side by side.
    #[arg(long, default_value_t = 0)]
    port_offset: u16,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,quinn=warn,rustls=warn")
            }),
        )
        .init();
    let args = Args::parse();
    if !(0.0..=1.0).contains(&args.answer_share) {
        anyhow::bail!(
            "--answer-share must be between 0.0 and 1.0, got {}",
            args.answer_share
        );
    }
    let mut config = demo::DemoConfig::on_loopback(args.data.clone());
    config.n_agents = args.agents;
    config.answer_share = args.answer_share;
    config.n_rows = args.rows;
    config.offset_ports(args.port_offset)?;

    let shutdown = CancellationToken::new();
    let demo = demo::run(config, shutdown.clone()).await?;
    let logins = &demo.credentials;
    println!();
    println!("Outpost demo is running (data in {}).", args.data.display());
    println!();
    println!(
        "  HQ console (总控)      {}    login {} / {}",
        demo.hub_url, logins.hq_admin.username, logins.hq_admin.password
    );
    println!(
        "  Site admin (职场管理)  {}    login {} / {}",
        demo.site_url, logins.site_admin.username, logins.site_admin.password
    );
    println!(
        "  Agent desk (坐席)      {}    login {} / {}   (extension {}, answered by a simulated phone)",
        demo.site_url,
        logins.browser_agent.username,
        logins.browser_agent.password,
        logins.browser_agent.extension
    );
    println!();
    println!(
        "  Log in as the agent, press 可回接, and popups arrive as the simulated carrier answers."
    );
    println!(
        "  {} simulated agents are working batch {} too. Ctrl-C stops everything.",
        logins.sim_agents.len(),
        demo.batch_id
    );
    println!();

    tokio::signal::ctrl_c().await?;
    println!("stopping...");
    shutdown.cancel();
    demo.wait().await;
    println!("stopped; data kept in {}", args.data.display());
    Ok(())
}
