//! The site appliance: the box each BPO site runs.
//!
//! It keeps the site's state in its own SQLite store ([`store::Store`]), dials customers and
//! puts answered calls through to agents ([`driver`], over `hardware`'s lines and `dialer`'s
//! sans-IO core), serves the site admin pages and the agent desk ([`web`]), and syncs with
//! HQ over the link when the box is enrolled. A site never needs HQ to keep working: without
//! an enrollment (or with the link down) everything but the sync runs.
//!
//! Data flow:
//! - HQ's batches and projects come down the link into the store ([`sync_link::SiteStore`]).
//! - The site admin starts a task in the web; the driver runs one `dialer::Dialer` per running
//!   task, takes numbers from the store and places calls on the lines.
//! - An answered call is put through to a free 可回接 agent's extension; the agent's browser
//!   gets the popup over server-sent events ([`desk::Desk`]).
//! - Each finished attempt and each saved business record is written with its outbox entry
//!   in one transaction; the link carries the outbox up.
//!
//! Entry points: [`start`] (run the box), [`enroll`] (one-time provisioning against HQ) and
//! [`init_admin`] (first site admin account).

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod config;
pub mod desk;
pub mod driver;
pub mod store;
pub mod sync;
pub mod web;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use config::ApplianceConfig;

use crate::desk::Desk;
use crate::store::{Role, Store};
use crate::sync::LinkView;

/// A running appliance.
pub struct Appliance {
    /// Where the web UI listens.
    pub http_addr: SocketAddr,
    /// Where the SIP socket listens (trunks and agents' phones).
    pub sip_addr: SocketAddr,
    /// The store, for tests and the panel.
    pub store: Arc<Store>,
    tasks: JoinSet<()>,
}

impl Appliance {
    /// Waits until every part has stopped (after the shutdown token is cancelled).
    pub async fn wait(mut self) {
        while let Some(result) = self.tasks.join_next().await {
            if let Err(error) = result {
                tracing::error!(%error, "an appliance task panicked");
            }
        }
    }
}

/// Starts the box: store, web, lines and dialer, and the sync link if enrolled. Returns once
/// every socket is bound.
pub async fn start(config: ApplianceConfig, shutdown: CancellationToken) -> anyhow::Result<Appliance> {
    let store = Arc::new(Store::open(&config.data_dir)?);
    store.set_report_zone(config.web.report_zone.clone());
    let recovered = store.recover_interrupted()?;
    if recovered > 0 {
        tracing::warn!(recovered, "attempts interrupted by the last stop were closed as failed");
    }
    store.set_lines(
        config
            .trunks
            .iter()
            .map(|trunk| store::Line { name: trunk.name.clone(), channels: trunk.channels })
            .collect(),
    );
    let desk = Arc::new(Desk::default());
    let mut tasks = JoinSet::new();

    let (link_tx, link_rx) = watch::channel(LinkView::NotEnrolled);
    sync::spawn(&config.data_dir, store.clone(), link_tx, shutdown.clone(), &mut tasks);

    let (driver, sip_addr) =
        driver::spawn(&config, store.clone(), desk.clone(), shutdown.clone(), &mut tasks).await;

    let listener = tokio::net::TcpListener::bind(config.http_bind)
        .await
        .with_context(|| format!("cannot bind the web UI on {}; is another appliance running?", config.http_bind))?;
    let http_addr = listener.local_addr()?;
    let idle = config.web.session_idle;
    let pruned = store.prune_sessions(store::now_unix(), idle.as_secs() as i64)?;
    if pruned > 0 {
        tracing::info!(pruned, "web sessions idle past the limit were removed");
    }
    let app = web::router(web::AppState::new(store.clone(), desk, driver, link_rx).with_session_idle(idle));
    let web_shutdown = shutdown.clone();
    tasks.spawn(async move {
        let served = axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(async move { web_shutdown.cancelled().await })
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "web server stopped");
        }
    });
    tracing::info!(%http_addr, %sip_addr, "appliance started");
    Ok(Appliance { http_addr, sip_addr, store, tasks })
}

/// Creates (or resets) the site admin account `username`; returns a fresh one-time password
/// for the technician to hand over.
pub fn init_admin(data_dir: &Path, username: &str) -> anyhow::Result<String> {
    let store = Store::open(data_dir)?;
    let password = random_password(14);
    if !store.set_password(username, &password)? {
        store.create_user(username, &password, Role::Admin, username, None)?;
    }
    Ok(password)
}

pub(crate) fn random_password(len: usize) -> String {
    use rand::Rng;
    // Letters and digits a person can read aloud without confusion (no 0/O, 1/l/I).
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..len).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

/// Enrolls this box with HQ using a one-time code; the site identity is written to
/// `data_dir` and the link starts with the next [`start`].
pub async fn enroll(data_dir: &Path, hub: &str, code: &str) -> anyhow::Result<()> {
    let dir = sync::identity_dir(data_dir);
    let identity = sync_link::client::enroll(hub, code, &dir)
        .await
        .with_context(|| format!("enrolling with HQ at {hub}"))?;
    tracing::info!(site = identity.site_id, hub, "enrolled");
    Ok(())
}
