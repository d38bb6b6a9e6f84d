//! A real hub for a scenario: its data in a directory the test owns, its console and sync
//! link on loopback ports the system picks, and its first admin created the way HQ creates
//! it (`init-admin`), so the scenario logs in with the one-time password.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

/// A hub of its own on a temporary data directory, for the console scenarios; stopped when
/// dropped (or by [`RunningHub::stop`], which waits for it).
pub struct RunningHub {
    /// The console's base URL.
    pub url: String,
    /// The one-time password of `admin`.
    pub password: String,
    /// Owns the hub's data (`hub/` inside it) and anything else the scenario writes.
    pub dir: tempfile::TempDir,
    hub: Option<hq_hub::Hub>,
    shutdown: CancellationToken,
}

impl Drop for RunningHub {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl RunningHub {
    pub async fn start() -> anyhow::Result<RunningHub> {
        let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("warn").try_init();
        let dir = tempfile::tempdir()?;
        let shutdown = CancellationToken::new();
        let (hub, password) = start_hub(&dir.path().join("hub"), shutdown.clone()).await?;
        let url = format!("http://{}", hub.http_addr);
        Ok(RunningHub { url, password, dir, hub: Some(hub), shutdown })
    }

    /// The running hub (its addresses and store).
    pub fn hub(&self) -> &hq_hub::Hub {
        self.hub.as_ref().expect("the hub runs until stop")
    }

    /// Stops the hub and waits (at most 20 s) until its servers have ended.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        if let Some(hub) = self.hub.take() {
            tokio::time::timeout(Duration::from_secs(20), hub.wait()).await.context("the hub stops")?;
        }
        Ok(())
    }
}

/// Starts a hub on `data_dir` until `shutdown`; returns it and the password of its admin
/// account `admin`. Bounded: a hub that has not started in 30 s is an error.
pub async fn start_hub(data_dir: &Path, shutdown: CancellationToken) -> anyhow::Result<(hq_hub::Hub, String)> {
    let password = hq_hub::init_admin(data_dir, "admin")?;
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let config = hq_hub::HubConfig {
        data_dir: data_dir.to_path_buf(),
        http_bind: SocketAddr::new(localhost, 0),
        sync_bind: SocketAddr::new(localhost, 0),
        time_zone: Default::default(),
    };
    let hub = tokio::time::timeout(Duration::from_secs(30), hq_hub::start(config, shutdown))
        .await
        .context("the hub did not start within 30 s")??;
    Ok((hub, password))
}
