//! `hq-hub`: the HQ hub's command line. `init-admin` creates the first admin and prints its
//! one-time password; `serve` runs the console and the sync link until Ctrl-C / SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use hq_hub::HubConfig;

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
    Serve {
        #[arg(long, env = "HQ_HUB_DATA")]
        data: PathBuf,
        /// Console (HTTP) address.
        #[arg(long, env = "HQ_HUB_HTTP", default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        /// Sync link (QUIC/UDP) address.
        #[arg(long, env = "HQ_HUB_SYNC", default_value = "127.0.0.1:4433")]
        sync: SocketAddr,
        /// How long an enrollment code stays valid: a number with s, m, h or d (`90m`, `24h`).
        #[arg(long, env = "HQ_HUB_ENROLLMENT_CODE_TTL", default_value = "24h", value_parser = parse_ttl)]
        enrollment_code_ttl: Duration,
        /// The IANA time zone the console counts local hours and days in (the home page's
        /// "today", reports); zones with part-hour offsets are refused.
        #[arg(long, env = "HQ_HUB_TIME_ZONE", default_value = "Asia/Shanghai", value_parser = parse_zone)]
        time_zone: hq_hub::TimeZone,
    },
}

/// An IANA zone name such as `Asia/Shanghai`.
fn parse_zone(text: &str) -> Result<hq_hub::TimeZone, String> {
    hq_hub::TimeZone::new(text.trim()).map_err(|err| format!("{err}; give an IANA zone with whole-hour offsets, e.g. Asia/Shanghai"))
}

/// `90s`, `30m`, `24h`, `7d`: a positive whole number and its unit.
fn parse_ttl(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || format!("{text:?} is not a lifetime: give a positive whole number with s, m, h or d, e.g. 24h");
    let unit_at = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(unit_at);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 24 * 3600,
        _ => return Err(bad()),
    };
    match number.checked_mul(seconds) {
        Some(total) if total > 0 => Ok(Duration::from_secs(total)),
        _ => Err(bad()),
    }
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
        Command::Serve { data, http, sync, enrollment_code_ttl, time_zone } => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrollment_code_lifetimes() {
        assert_eq!(parse_ttl("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_ttl("90m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_ttl("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(604_800)));
        for bad in ["", "24", "h", "0h", "1.5h", "-1h", "24 h", "3w"] {
            let error = parse_ttl(bad).unwrap_err();
            assert!(error.contains("not a lifetime"), "{bad:?}: {error}");
        }
    }
}
