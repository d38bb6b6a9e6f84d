//! `hq-hub`: the HQ hub's command line. `init-admin` creates the first admin and prints its
//! one-time password; `serve` runs the console and the sync link until Ctrl-C / SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use hq_hub::HubConfig;
use hq_hub::config::{HubConfigError, HubFile, ServeFlags, ServeSettings};

#[derive(Parser)]
#[command(name = "hq-hub", about = "Outpost HQ hub: console, xlsx import, dispatch and the sync server", version)]
struct Cli {
    /// `json` writes one JSON object per log event, for a log collector.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: web_guard::probe::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the first admin account and print its one-time password.
    InitAdmin {
        /// Data directory (database, uploaded files, CA).
        #[arg(long, env = "HQ_HUB_DATA")]
        data: PathBuf,
        #[arg(long, default_value = "admin")]
        username: String,
        /// Write the password to this file (mode 0600) instead of printing it: for install
        /// scripts, whose output goes to a log.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Run the console and the sync link.
    Serve(ServeArgs),
    /// Back up the hub while it runs: its store (SQLite's online backup), the link's CA and
    /// the configuration file, into a new directory.
    Backup {
        #[arg(long, env = "HQ_HUB_DATA")]
        data: PathBuf,
        /// The configuration file to include (`/etc/outpost/hub.toml` in the package).
        #[arg(long, env = "HQ_HUB_CONFIG")]
        config: Option<PathBuf>,
        /// A new (or empty) directory for the backup.
        #[arg(long)]
        to: PathBuf,
    },
    /// Restore a backup into the data directory; stop the hub first. What it replaces is
    /// moved to `replaced-<time>/` in the data directory.
    Restore {
        #[arg(long, env = "HQ_HUB_DATA")]
        data: PathBuf,
        /// Where to write the backup's configuration file, if it holds one.
        #[arg(long, env = "HQ_HUB_CONFIG")]
        config: Option<PathBuf>,
        /// The directory `backup --to` wrote.
        #[arg(long)]
        from: PathBuf,
    },
    /// Check the configuration (file, variables, flags) and say what `serve` would run with;
    /// exit code 1 and the key to fix when it is wrong.
    CheckConfig(ServeArgs),
}

/// `serve`'s settings: each flag (or its variable) wins over the file's key.
#[derive(clap::Args)]
struct ServeArgs {
    /// The configuration file (TOML; `/etc/outpost/hub.toml` in the package).
    #[arg(long, env = "HQ_HUB_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (database, uploaded files, CA).
    #[arg(long, env = "HQ_HUB_DATA")]
    data: Option<PathBuf>,
    /// Console (HTTP) address [default: 127.0.0.1:8080].
    #[arg(long, env = "HQ_HUB_HTTP")]
    http: Option<SocketAddr>,
    /// Sync link (QUIC/UDP) address [default: 127.0.0.1:4433].
    #[arg(long, env = "HQ_HUB_SYNC")]
    sync: Option<SocketAddr>,
    /// How long an enrollment code stays valid: a number with s, m, h or d (`90m`, `24h`)
    /// [default: 24h].
    #[arg(long, env = "HQ_HUB_ENROLLMENT_CODE_TTL", value_parser = hq_hub::config::parse_ttl)]
    enrollment_code_ttl: Option<Duration>,
    /// The IANA time zone the console counts local hours and days in (the home page's
    /// "today", reports); zones with part-hour offsets are refused [default: Asia/Shanghai].
    #[arg(long, env = "HQ_HUB_TIME_ZONE", value_parser = parse_zone)]
    time_zone: Option<hq_hub::TimeZone>,
}

impl ServeArgs {
    fn settings(self) -> Result<ServeSettings, HubConfigError> {
        let file = match &self.config {
            Some(path) => HubFile::load(path)?,
            None => HubFile::default(),
        };
        let flags = ServeFlags {
            data_dir: self.data,
            http_bind: self.http,
            sync_bind: self.sync,
            time_zone: self.time_zone,
            enrollment_code_ttl: self.enrollment_code_ttl,
        };
        file.settings(flags, self.config.as_deref())
    }
}

/// An IANA zone name such as `Asia/Shanghai`.
fn parse_zone(text: &str) -> Result<hq_hub::TimeZone, String> {
    hq_hub::TimeZone::new(text.trim()).map_err(|err| format!("{err}; give an IANA zone with whole-hour offsets, e.g. Asia/Shanghai"))
}

/// Hands the one-time password over: into `file` (owner-only) when given, else on the terminal.
fn hand_over(username: &str, password: &str, file: Option<&std::path::Path>) -> anyhow::Result<()> {
    match file {
        Some(path) => {
            web_guard::password::write_secret_file(path, password)
                .with_context(|| format!("writing the password to {}", path.display()))?;
            println!("First admin account \"{username}\" created; its one-time password is in {}", path.display());
        }
        None => print_password(username, password),
    }
    Ok(())
}

fn print_password(username: &str, password: &str) {
    println!("First admin account created. This password is shown only once:");
    println!("  username: {username}");
    println!("  password: {password}");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    web_guard::probe::init_logging(cli.log_format);
    match cli.command {
        Command::InitAdmin { data, username, password_file } => {
            let password = hq_hub::init_admin(&data, &username)?;
            hand_over(&username, &password, password_file.as_deref())?;
        }
        Command::Backup { data, config, to } => {
            hq_hub::backup::backup(&data, config.as_deref(), &to)?;
            println!("backed up {} to {}", data.display(), to.display());
        }
        Command::Restore { data, config, from } => {
            if let Some(aside) = hq_hub::backup::restore(&from, &data, config.as_deref())? {
                println!("what was in {} is kept in {}", data.display(), aside.display());
            }
            println!("restored {} into {}; start the hub", from.display(), data.display());
        }
        Command::CheckConfig(args) => match args.settings() {
            Ok(settings) => {
                println!("configuration ok");
                println!("  data directory {}", settings.data_dir.display());
                println!("  console {}  sync link {}", settings.http_bind, settings.sync_bind);
                println!("  time zone {}  enrollment codes valid {} s", settings.time_zone.name(), settings.enrollment_code_ttl.as_secs());
            }
            Err(error) => {
                eprintln!("configuration error: {error}");
                std::process::exit(1);
            }
        },
        Command::Serve(args) => {
            let ServeSettings { data_dir: data, http_bind: http, sync_bind: sync, time_zone, enrollment_code_ttl } =
                args.settings()?;
            // A service's output is its journal: the password goes to a file only the
            // service's account can read, never into the log.
            if let Some(password) = hq_hub::ensure_admin(&data, "admin")? {
                let file = data.join("first-admin-password");
                web_guard::password::write_secret_file(&file, &password)
                    .with_context(|| format!("writing the first admin's password to {}", file.display()))?;
                tracing::warn!(file = %file.display(), "first admin \"admin\" created; its one-time password is in this file");
            }
            let shutdown = CancellationToken::new();
            let hub = hq_hub::start(HubConfig { data_dir: data, http_bind: http, sync_bind: sync, time_zone }, shutdown.clone())
                .await?;
            hub.store.set_enrollment_code_ttl(enrollment_code_ttl);
            println!("console: http://{}  sync link: {}  CA fingerprint: {}", hub.http_addr, hub.sync_addr, hub.ca_fingerprint);
            let signal = shutdown.clone();
            tokio::spawn(async move {
                wait_for_signal().await;
                signal.cancel();
            });
            hub.wait().await;
        }
    }
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; stopping on Ctrl-C only");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
