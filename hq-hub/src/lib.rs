//! HQ hub (总控): the console where HQ sets up projects, imports call lists from xlsx and
//! dispatches them to sites, and the sync server sites report back to.
//!
//! - [`store`]: every SQL statement (SQLite now, PostgreSQL later behind the same API); also
//!   the [`sync_link::HubStore`] the sync server drives.
//! - [`import`]: xlsx → good rows + a report of bad ones; [`phone`]: number normalisation;
//!   [`filter`]: the data filter's result file; [`export`]: the workbooks HQ hands out;
//!   [`across_export`]: a project's customer data and business records across sites.
//! - `web`: the axum console (Simplified Chinese by default, English switchable) and the
//!   JSON API under `/api`.
//!
//! Drive it with [`start`] (binds both listeners, returns a [`Hub`]) and a cancellation
//! token; create the first admin with [`init_admin`].

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod across_export;
pub mod backup;
pub mod config;
pub mod export;
pub mod filter;
pub mod import;
pub mod phone;
pub mod store;
mod web;

/// The console's route table, each route with who may call it (tests enumerate it).
pub use web::{format_time, routes, Access, RouteInfo};
/// The JSON API's OpenAPI document, as `/api/openapi.json` serves it.
pub use web::openapi::api_document;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// Where the hub keeps its data and where it listens.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Holds `hub.sqlite3`, uploaded files (`files/`) and the link's CA (`ca/`).
    pub data_dir: PathBuf,
    /// The console and JSON API (TCP).
    pub http_bind: SocketAddr,
    /// The sync link (QUIC, UDP).
    pub sync_bind: SocketAddr,
    /// The zone the console counts local hours and days in: reports and the home page's
    /// "today" (China time by default).
    pub time_zone: TimeZone,
}

/// An IANA time zone with whole-hour offsets (see [`reports::Zone::new`]).
pub use reports::Zone as TimeZone;

/// A running hub.
pub struct Hub {
    pub http_addr: SocketAddr,
    pub sync_addr: SocketAddr,
    /// Fingerprint of the link's CA (technicians compare it when enrolling a box).
    pub ca_fingerprint: String,
    pub store: Arc<Store>,
    tasks: Vec<JoinHandle<()>>,
}

impl Hub {
    /// Waits until both servers have stopped (after the shutdown token is cancelled).
    pub async fn wait(self) {
        for task in self.tasks {
            if let Err(err) = task.await {
                tracing::error!(error = %err, "a hub task ended abnormally");
            }
        }
    }
}

/// Opens the store, binds the console and the sync link, and serves until `shutdown`.
pub async fn start(config: HubConfig, shutdown: CancellationToken) -> anyhow::Result<Hub> {
    let data_dir = config.data_dir.clone();
    let time_zone = config.time_zone.clone();
    web::set_display_zone(time_zone.clone());
    let store = tokio::task::spawn_blocking(move || Store::open_with_report_zone(&data_dir, time_zone))
        .await
        .context("opening the store")?
        .with_context(|| format!("opening the hub's store in {}", config.data_dir.display()))?;
    let store = Arc::new(store);

    // The link is bound first: the console needs its handle to ask sites for recordings.
    let (server, ca_fingerprint) = bind_sync_link(&config, store.clone()).await?;
    let sync_addr = server.local_addr();
    let recordings = server.recording_requests();
    let sync_task = tokio::spawn(server.run(shutdown.clone()));

    let listener = tokio::net::TcpListener::bind(config.http_bind)
        .await
        .with_context(|| format!("cannot listen for the console on {}; pick a free port", config.http_bind))?;
    let http_addr = listener.local_addr()?;
    let app = web::router(web::AppState::new(store.clone(), recordings).with_shutdown(shutdown.clone()));
    let http_shutdown = shutdown.clone();
    let http_task = tokio::spawn(async move {
        let served = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(async move { http_shutdown.cancelled().await }).await;
        if let Err(err) = served {
            tracing::error!(error = %err, "the console's HTTP server failed");
        }
    });
    tracing::info!(%http_addr, "console listening");

    Ok(Hub { http_addr, sync_addr, ca_fingerprint, store, tasks: vec![http_task, sync_task] })
}

/// The one place the sync link is wired: load (or create) the CA and bind.
async fn bind_sync_link(config: &HubConfig, store: Arc<Store>) -> anyhow::Result<(sync_link::server::Server, String)> {
    let ca_dir = config.data_dir.join("ca");
    let ca = tokio::task::spawn_blocking(move || sync_link::ca::HubCa::load_or_create(&ca_dir))
        .await
        .context("loading the link's CA")?
        .context("loading or creating the link's certificate authority")?;
    let ca = Arc::new(ca);
    let fingerprint = ca.fingerprint();
    let server = sync_link::server::bind(sync_link::server::ServerConfig { bind: config.sync_bind, ca }, store)
        .await
        .context("starting the sync link")?;
    Ok((server, fingerprint))
}

/// Creates the first admin account with a random password and returns that password (shown
/// once; only its argon2 hash is kept). Refuses if an admin already exists.
pub fn init_admin(data_dir: &Path, username: &str) -> anyhow::Result<String> {
    let store = Store::open(data_dir).with_context(|| format!("opening the hub's store in {}", data_dir.display()))?;
    Ok(store.init_admin(username)?)
}

/// Creates the first admin if none exists (for `serve` on a fresh data directory): the
/// password to print once, or `None` if an admin already exists.
pub fn ensure_admin(data_dir: &Path, username: &str) -> anyhow::Result<Option<String>> {
    let store = Store::open(data_dir).with_context(|| format!("opening the hub's store in {}", data_dir.display()))?;
    if store.admin_exists()? {
        return Ok(None);
    }
    Ok(Some(store.init_admin(username)?))
}
