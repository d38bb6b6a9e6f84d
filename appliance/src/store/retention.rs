//! How long the site keeps its recordings, and their deletion.
//!
//! - HQ sets each site's retention in days ([`sync_protocol::RecordingRetention`], down the
//!   link, latest version wins); until it does, recordings are kept for ever.
//! - [`Store::delete_expired_recordings`] deletes the files of calls that ended more than the
//!   retention ago, oldest first, and only those HQ has confirmed it holds
//!   (`recording_uploaded`): a recording still waiting for the link is never deleted, however
//!   old. The attempt keeps its hash; its path is cleared, so the site's player says there is
//!   no recording and HQ's copy is the one left.

use rusqlite::{OptionalExtension as _, Transaction, params};
use sync_protocol::RecordingRetention;

use super::{DbError, Store};

/// Recordings deleted in one pass at most, so one pass never holds the store long.
const DELETE_BATCH: usize = 500;

/// What one deletion pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPass {
    /// Attempts whose recordings were deleted, oldest first.
    pub deleted: Vec<u64>,
    /// Bytes the deleted files held.
    pub bytes_freed: u64,
}

pub(super) fn apply_recording_retention(tx: &Transaction<'_>, retention: &RecordingRetention) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO recording_retention (id, version, days) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET version = excluded.version, days = excluded.days
         WHERE excluded.version >= recording_retention.version",
        params![retention.version as i64, retention.days.map(i64::from)],
    )?;
    Ok(())
}

impl Store {
    /// The days HQ set recordings to be kept here; `None` keeps them for ever.
    pub fn recording_retention_days(&self) -> Result<Option<u32>, DbError> {
        let days: Option<Option<i64>> = self
            .lock()
            .query_row("SELECT days FROM recording_retention WHERE id = 1", [], |row| row.get(0))
            .optional()?;
        Ok(days.flatten().map(|days| days.clamp(0, i64::from(u32::MAX)) as u32))
    }

    /// Deletes up to [`DELETE_BATCH`] recordings past the retention at `now` (unix seconds),
    /// oldest call first, among those HQ holds. A file already gone counts as deleted.
    pub fn delete_expired_recordings(&self, now: i64) -> Result<RetentionPass, DbError> {
        let Some(days) = self.recording_retention_days()? else {
            return Ok(RetentionPass::default());
        };
        let cutoff = now - i64::from(days) * 86_400;
        let expired: Vec<(u64, String)> = {
            let conn = self.lock();
            let mut statement = conn.prepare_cached(
                "SELECT attempt_id, recording_path FROM attempts
                 WHERE recording_path IS NOT NULL AND recording_uploaded = 1 AND state = 'done'
                   AND COALESCE(ended_at, started_at) < ?1
                 ORDER BY COALESCE(ended_at, started_at), attempt_id LIMIT ?2",
            )?;
            statement
                .query_map(params![cutoff, DELETE_BATCH as i64], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<Result<_, _>>()?
        };
        let mut pass = RetentionPass::default();
        for (attempt_id, path) in expired {
            let size = std::fs::metadata(&path).map(|meta| meta.len()).unwrap_or(0);
            match std::fs::remove_file(&path) {
                Ok(()) => pass.bytes_freed += size,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    tracing::warn!(%path, %error, "an expired recording could not be deleted; kept for the next pass");
                    continue;
                }
            }
            self.lock().execute("UPDATE attempts SET recording_path = NULL WHERE attempt_id = ?1", [attempt_id as i64])?;
            pass.deleted.push(attempt_id);
        }
        Ok(pass)
    }
}
