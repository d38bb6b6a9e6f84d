//! The recordings keeper: keeps the box's disk from filling with recordings.
//!
//! - Every [`RecordingOptions::check_every`] (and at start) it measures the free space of the
//!   recordings' file system. Under [`RecordingOptions::floor_bytes`] it stops recording the
//!   calls bridged from then on ([`hardware::Telephony::pause_recording`]) rather than let the
//!   store and the recordings fail on a full disk: calls go on unrecorded, and the alarm
//!   ([`sync_protocol::SiteAlarm::RecordingStopped`]) shows on the site's status page and on
//!   HQ's wall until the space is back.
//! - Each pass deletes the recordings past the retention HQ set, oldest first, among those
//!   HQ already holds ([`Store::delete_expired_recordings`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::{Store, now_unix};

/// The keeper's settings (`recording_floor_mb` in `appliance.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingOptions {
    /// Under this much free space new calls are not recorded.
    pub floor_bytes: u64,
    /// How often the space is measured and expired recordings deleted.
    pub check_every: Duration,
}

impl Default for RecordingOptions {
    fn default() -> RecordingOptions {
        // 512 MiB leaves the store and the logs room for a day of calls without recordings.
        RecordingOptions { floor_bytes: 512 << 20, check_every: Duration::from_secs(60) }
    }
}

/// Runs the keeper until `shutdown`.
pub async fn keep(
    store: Arc<Store>,
    telephony: hardware::Telephony,
    recordings_dir: PathBuf,
    options: RecordingOptions,
    shutdown: CancellationToken,
) {
    loop {
        check_once(&store, &telephony, &recordings_dir, &options).await;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(options.check_every) => {}
        }
    }
}

async fn check_once(store: &Arc<Store>, telephony: &hardware::Telephony, dir: &std::path::Path, options: &RecordingOptions) {
    let pass_store = store.clone();
    match tokio::task::spawn_blocking(move || pass_store.delete_expired_recordings(now_unix())).await {
        Ok(Ok(pass)) if !pass.deleted.is_empty() => {
            tracing::info!(deleted = pass.deleted.len(), bytes = pass.bytes_freed, "recordings past the retention deleted");
        }
        Ok(Ok(_)) => {}
        Ok(Err(error)) => tracing::warn!(%error, "cannot delete expired recordings"),
        Err(error) => tracing::warn!(%error, "the retention pass failed"),
    }
    let Some(space) = web_guard::probe::disk_space(dir) else {
        return;
    };
    let under = space.free_bytes < options.floor_bytes;
    if under != telephony.recording_paused() {
        if under {
            tracing::warn!(free = space.free_bytes, floor = options.floor_bytes, "disk under the floor: new calls are not recorded");
        } else {
            tracing::info!(free = space.free_bytes, "disk space is back: calls are recorded again");
        }
    }
    telephony.pause_recording(under);
    store.set_recording_stopped(under.then_some((space.free_bytes, options.floor_bytes)));
}
