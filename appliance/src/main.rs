//! The `appliance` command: provisioning (`enroll`, `init-admin`), the technician's line test
//! (`line-test`), `backup` / `restore`, and running the box (`run`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use appliance::ApplianceConfig;

#[derive(Parser)]
#[command(name = "appliance", about = "Outpost site appliance", version)]
struct Cli {
    /// `json` writes one JSON object per log event, for a log collector.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: web_guard::probe::LogFormat,
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
        /// Write the password to this file (mode 0600) instead of printing it: for install
        /// scripts, whose output goes to a log.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Dial a number on one trunk or FXO line (e.g. `gw1/3`) and report what happened; works
    /// while the box runs (it uses its own SIP port). Exit code 0 when the line works.
    LineTest {
        #[arg(long, env = "OUTPOST_DATA")]
        data: PathBuf,
        /// Configuration file (default: appliance.toml in the data directory).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The trunk or line name, as in appliance.toml or the FXO profiles.
        #[arg(long)]
        line: String,
        /// The number to dial (a test phone the technician holds).
        #[arg(long)]
        number: String,
        /// Give up ringing after this many seconds.
        #[arg(long, default_value_t = 30)]
        ring_seconds: u64,
    },
    /// Check the configuration file and say what the box would run with; exit code 1 and
    /// the key to fix when it is wrong.
    CheckConfig {
        #[arg(long, env = "OUTPOST_DATA", default_value = "/var/lib/outpost")]
        data: PathBuf,
        /// Configuration file (default: appliance.toml in the data directory).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Back up the box while it runs: its store (SQLite's online backup), site identity and
    /// appliance.toml, into a new directory.
    Backup {
        #[arg(long, env = "OUTPOST_DATA", default_value = "/var/lib/outpost")]
        data: PathBuf,
        /// A new (or empty) directory for the backup.
        #[arg(long)]
        to: PathBuf,
    },
    /// Restore a backup into the data directory; stop the box first. What it replaces is
    /// moved to `replaced-<time>/` in the data directory.
    Restore {
        #[arg(long, env = "OUTPOST_DATA", default_value = "/var/lib/outpost")]
        data: PathBuf,
        /// The directory `backup --to` wrote.
        #[arg(long)]
        from: PathBuf,
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
    let cli = Cli::parse();
    web_guard::probe::init_logging(cli.log_format);
    match cli.command {
        Command::Enroll { hub, code, data } => {
            appliance::enroll(&data, &hub, &code).await?;
            println!("enrolled with {hub}; start the box with: appliance run --data {}", data.display());
        }
        Command::InitAdmin { data, username, password_file } => {
            let password = appliance::init_admin(&data, &username)?;
            match password_file {
                Some(path) => {
                    web_guard::password::write_secret_file(&path, &password)
                        .with_context(|| format!("writing the password to {}", path.display()))?;
                    println!("site admin \"{username}\" created; its one-time password is in {}", path.display());
                }
                None => {
                    println!("site admin \"{username}\" one-time password: {password}");
                    println!("log in at the box's web UI and hand this password over in person.");
                }
            }
        }
        Command::LineTest { data, config, line, number, ring_seconds } => {
            let config = ApplianceConfig::load(&data, config.as_deref())?;
            let telephony = config.telephony_config(Vec::new());
            println!("dialing {number} on {line} …");
            let report = hardware::fxo::line_test_with(
                &telephony,
                &config.telephony,
                &line,
                &number,
                std::time::Duration::from_secs(ring_seconds),
            )
            .await;
            let seconds = |d: Option<std::time::Duration>| d.map_or("-".to_string(), |d| format!("{:.1} s", d.as_secs_f64()));
            println!("{}", report.summary);
            println!(
                "ringing after {}, answered after {}, total {:.1} s",
                seconds(report.ringing_after),
                seconds(report.answered_after),
                report.total.as_secs_f64()
            );
            if matches!(report.outcome, hardware::Outcome::Failed { .. }) {
                std::process::exit(1);
            }
        }
        Command::CheckConfig { data, config } => match ApplianceConfig::load(&data, config.as_deref()) {
            Ok(config) => {
                println!("configuration ok");
                println!("  web UI {}  SIP {}  public IP {}", config.http_bind, config.sip_bind, config.public_ip);
                println!("  RTP ports {}-{}  stop grace {} s", config.rtp_ports.0, config.rtp_ports.1, config.stop_grace.as_secs());
                for trunk in &config.trunks {
                    println!("  trunk {}: {} ({} channels)", trunk.name, trunk.address, trunk.channels);
                }
                if config.trunks.is_empty() {
                    println!("  no trunk: add [[trunks]] before the box can dial");
                }
            }
            Err(error) => {
                eprintln!("configuration error: {error}");
                std::process::exit(1);
            }
        },
        Command::Backup { data, to } => {
            let done = appliance::backup::backup(&data, &to)?;
            println!("backed up {} to {} (outbox at {})", data.display(), to.display(), done.outbox_seq);
            if !done.identity {
                println!("the box is not enrolled: the backup holds no site identity");
            }
        }
        Command::Restore { data, from } => {
            let done = appliance::backup::restore(&from, &data)?;
            if let Some(aside) = &done.set_aside {
                println!("what was in {} is kept in {}", data.display(), aside.display());
            }
            println!(
                "restored {} into {}; start the box: it finds its place at HQ on its first connection",
                from.display(),
                data.display()
            );
        }
        Command::Run { data, config } => {
            let config = ApplianceConfig::load(&data, config.as_deref())?;
            let config_grace = config.stop_grace;
            let shutdown = CancellationToken::new();
            let mut running = appliance::start(config, shutdown.clone()).await.context("starting the appliance")?;
            println!("web UI on http://{}  SIP on {}", running.http_addr, running.sip_addr);
            wait_for_stop_signal().await?;
            tracing::info!(grace_seconds = config_grace.as_secs(), "stopping");
            shutdown.cancel();
            running.wait().await;
            tracing::info!("stopped");
        }
    }
    Ok(())
}

/// SIGTERM (systemd's stop) or Ctrl-C.
async fn wait_for_stop_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    tokio::select! {
        _ = term.recv() => {}
        result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C")?,
    }
    Ok(())
}
