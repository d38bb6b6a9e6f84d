//! Wiring of the sync link's client: runs only when the box is enrolled, and mirrors the
//! link's state into the [`LinkView`] the pages and the panel show.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use sync_link::client::{LinkStatus, SiteIdentity};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// Where enrollment leaves the site identity (key, certificates, site id, hub address).
pub fn identity_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("identity")
}

fn unix(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn view(status: &LinkStatus) -> LinkView {
    match status {
        LinkStatus::Connecting => LinkView::Connecting,
        LinkStatus::Online { since } => LinkView::Online { since: unix(*since) },
        LinkStatus::Offline { since, reason } => LinkView::Offline { since: unix(*since), reason: reason.clone() },
    }
}

/// Starts the link if the box is enrolled; otherwise leaves the view at "not enrolled".
pub fn spawn(
    data_dir: &Path,
    store: Arc<Store>,
    link: watch::Sender<LinkView>,
    shutdown: CancellationToken,
    tasks: &mut JoinSet<()>,
) {
    let dir = identity_dir(data_dir);
    if !dir.join("site.json").exists() {
        tracing::info!("not enrolled with HQ: running stand-alone (run `appliance enroll` to link)");
        return;
    }
    let identity = match SiteIdentity::load(&dir) {
        Ok(identity) => identity,
        Err(error) => {
            tracing::error!(%error, "site identity unreadable; the HQ link stays down");
            link.send_replace(LinkView::Offline {
                since: unix(SystemTime::now()),
                reason: format!("site identity unreadable: {error}; enroll the box again"),
            });
            return;
        }
    };
    tracing::info!(site = identity.site_id, hub = %identity.hub, "starting the HQ link");
    let (status_tx, mut status_rx) = watch::channel(LinkStatus::Connecting);
    link.send_replace(LinkView::Connecting);
    tasks.spawn(sync_link::client::run(identity, store, status_tx, shutdown));
    tasks.spawn(async move {
        while status_rx.changed().await.is_ok() {
            let current = view(&status_rx.borrow_and_update());
            link.send_replace(current);
        }
    });
}

/// The HQ link as the site's pages show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LinkView {
    /// The box has no site identity; run `appliance enroll`.
    NotEnrolled,
    Connecting,
    Online { since: i64 },
    Offline { since: i64, reason: String },
}
