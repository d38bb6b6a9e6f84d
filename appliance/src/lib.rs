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

pub mod backup;
pub mod config;
pub mod desk;
pub mod driver;
pub mod panel;
pub mod recordings;
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
    pub async fn wait(&mut self) {
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

    // A stop goes in order: the lines first (calls may finish, see `stop_grace`), then the
    // web (agents save their records meanwhile) and the link (it carries what the last calls
    // wrote up to HQ first, for a few seconds).
    let lines_done = CancellationToken::new();
    let link_stop = CancellationToken::new();
    let (link_tx, link_rx) = watch::channel(LinkView::NotEnrolled);
    sync::spawn(&config.data_dir, store.clone(), link_tx, link_stop.clone(), &mut tasks);
    tasks.spawn(stop_link_after_flush(store.clone(), link_rx.clone(), lines_done.clone(), link_stop));
    tasks.spawn(keep_leases(store.clone(), shutdown.clone()));

    let (driver, sip_addr) =
        driver::spawn(&config, store.clone(), desk.clone(), shutdown.clone(), lines_done.clone().drop_guard(), &mut tasks)
            .await;

    let listener = tokio::net::TcpListener::bind(config.http_bind)
        .await
        .with_context(|| format!("cannot bind the web UI on {}; is another appliance running?", config.http_bind))?;
    let http_addr = listener.local_addr()?;
    let idle = config.web.session_idle;
    let pruned = store.prune_sessions(store::now_unix(), idle.as_secs() as i64)?;
    if pruned > 0 {
        tracing::info!(pruned, "web sessions idle past the limit were removed");
    }
    let panel_image = Arc::new(panel::PanelImage::default());
    let sources = panel::PanelSources {
        store: store.clone(),
        desk: desk.clone(),
        driver: driver.clone(),
        link: link_rx.clone(),
        site_name: site_name(&config),
    };
    tasks.spawn(panel::run(sources, config.panel.clone(), panel_image.clone(), lines_done.clone()));
    let app = web::router(
        web::AppState::new(store.clone(), desk, driver, link_rx).with_session_idle(idle).with_panel(panel_image),
    );
    tasks.spawn(async move {
        let web_done = lines_done.clone();
        let served = axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(async move { web_done.cancelled().await });
        // Requests in flight get a moment to finish; the desks' event streams never end by
        // themselves, so they are cut then.
        tokio::select! {
            served = served => {
                if let Err(error) = served {
                    tracing::error!(%error, "web server stopped");
                }
            }
            _ = async {
                lines_done.cancelled().await;
                tokio::time::sleep(WEB_DRAIN).await;
            } => tracing::info!("the web's open connections were closed by the stop"),
        }
    });
    tracing::info!(%http_addr, %sip_addr, "appliance started");
    Ok(Appliance { http_addr, sip_addr, store, tasks })
}

/// The site's name on the front panel: the configured one, else the enrolled site's id.
fn site_name(config: &ApplianceConfig) -> String {
    if let Some(name) = &config.panel.name {
        return name.clone();
    }
    match sync_link::client::SiteIdentity::load(&sync::identity_dir(&config.data_dir)) {
        Ok(identity) => format!("SITE {}", identity.site_id),
        Err(_) => "OUTPOST".to_string(),
    }
}

/// The lease keeper: every second, returns expired leases of shared batches and asks HQ
/// for more where few numbers are left (see `store::leases`). It runs with the link down
/// too: a return waits in the outbox, and the site dials on from what it holds.
async fn keep_leases(store: Arc<Store>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(error) = store.keep_leases(store::now_unix()) {
            tracing::warn!(%error, "the lease keeper could not run");
        }
    }
}

/// How long a stopping box's web finishes the requests in flight.
const WEB_DRAIN: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a stopping box keeps the link up for HQ to take what its last calls wrote.
const LINK_FLUSH: std::time::Duration = std::time::Duration::from_secs(10);

/// Stops the link once the lines are done and the outbox is empty (or the link is not up,
/// or [`LINK_FLUSH`] has passed): what is left stays in the outbox for the next start.
async fn stop_link_after_flush(
    store: Arc<Store>,
    link: watch::Receiver<LinkView>,
    lines_done: CancellationToken,
    link_stop: CancellationToken,
) {
    lines_done.cancelled().await;
    let until = tokio::time::Instant::now() + LINK_FLUSH;
    while tokio::time::Instant::now() < until && matches!(*link.borrow(), LinkView::Online { .. }) {
        match store.outbox_len() {
            Ok(0) => break,
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            Err(error) => {
                tracing::warn!(%error, "cannot read the outbox while stopping");
                break;
            }
        }
    }
    let left = store.outbox_len().unwrap_or(0);
    if left > 0 {
        tracing::info!(left, "stopping with entries for HQ still in the outbox; they go up after the restart");
    }
    link_stop.cancel();
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
