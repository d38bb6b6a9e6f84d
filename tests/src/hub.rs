//! A real hub for a scenario: its data in a directory the test owns, its console and sync
//! link on loopback ports the system picks, and its first admin created the way HQ creates
//! it (`init-admin`), so the scenario logs in with the one-time password.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

/// Starts a hub on `data_dir` until `shutdown`; returns it and the password of its admin
/// account `admin`. Bounded: a hub that has not started in 30 s is an error.
pub async fn start_hub(data_dir: &Path, shutdown: CancellationToken) -> anyhow::Result<(hq_hub::Hub, String)> {
    let password = hq_hub::init_admin(data_dir, "admin")?;
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let config = hq_hub::HubConfig {
        data_dir: data_dir.to_path_buf(),
        http_bind: SocketAddr::new(localhost, 0),
        sync_bind: SocketAddr::new(localhost, 0),
    };
    let hub = tokio::time::timeout(Duration::from_secs(30), hq_hub::start(config, shutdown))
        .await
        .context("the hub did not start within 30 s")??;
    Ok((hub, password))
}
