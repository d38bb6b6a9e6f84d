//! How long each site keeps its recordings (录音保留天数), set at HQ per site.
//!
//! The setting travels down the site's log as [`DownEvent::RecordingRetention`] under a
//! per-site version, in the transaction that changes it; a site not enrolled yet gets it
//! when it first enrolls ([`seed_enrolled_site`]). The site deletes only the recordings HQ
//! already holds, so HQ's copy is never the one lost.

use rusqlite::{OptionalExtension as _, Transaction, params};
use sync_protocol::{DownEvent, RecordingRetention};

use super::down::{DownError, append_down};
use super::{DbError, Store};

/// The longest retention HQ accepts: ten years.
pub const MAX_RETENTION_DAYS: u32 = 3650;

/// Why a site's retention was not changed.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// No site has this id.
    #[error("site {0} does not exist")]
    UnknownSite(i64),
    /// Zero days, or more than [`MAX_RETENTION_DAYS`].
    #[error("recording_retention_days: {0} days is out of range: use 1 to {max}, or leave it empty to keep recordings for ever", max = MAX_RETENTION_DAYS)]
    OutOfRange(u32),
    /// A down-log event could not be encoded (a bug).
    #[error("cannot encode the recording retention: {0}")]
    Encode(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for RetentionError {
    fn from(e: rusqlite::Error) -> Self {
        RetentionError::Db(DbError(e))
    }
}

fn load(tx: &Transaction<'_>, site_id: i64) -> rusqlite::Result<Option<(RecordingRetention, bool)>> {
    tx.query_row(
        "SELECT retention_version, recording_retention_days, enrolled_at IS NOT NULL FROM sites WHERE id = ?1",
        [site_id],
        |r| {
            let retention = RecordingRetention {
                version: r.get::<_, i64>(0)? as u64,
                days: r.get::<_, Option<i64>>(1)?.map(|days| days as u32),
            };
            Ok((retention, r.get(2)?))
        },
    )
    .optional()
}

/// Sends a newly enrolled site its retention, if HQ set one, in the enrollment transaction.
pub(super) fn seed_enrolled_site(tx: &Transaction<'_>, site_id: i64) -> rusqlite::Result<()> {
    if let Some((retention, _)) = load(tx, site_id)?
        && retention.version > 0
    {
        append_down(tx, site_id, &DownEvent::RecordingRetention(retention)).map_err(|error| match error {
            DownError::Db(DbError(e)) => e,
            DownError::Encode(e) => rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
        })?;
    }
    Ok(())
}

impl Store {
    /// Sets how many days site `site_id` keeps its recordings (`None`: for ever) and sends
    /// it down the site's link. Returns the setting's new version.
    pub fn set_recording_retention(&self, site_id: i64, days: Option<u32>) -> Result<u64, RetentionError> {
        if let Some(days) = days
            && !(1..=MAX_RETENTION_DAYS).contains(&days)
        {
            return Err(RetentionError::OutOfRange(days));
        }
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let changed = tx.execute(
            "UPDATE sites SET recording_retention_days = ?2, retention_version = retention_version + 1 WHERE id = ?1",
            params![site_id, days.map(i64::from)],
        )?;
        if changed == 0 {
            return Err(RetentionError::UnknownSite(site_id));
        }
        let Some((retention, enrolled)) = load(&tx, site_id)? else {
            return Err(RetentionError::UnknownSite(site_id));
        };
        if enrolled {
            append_down(&tx, site_id, &DownEvent::RecordingRetention(retention))
                .map_err(|error| RetentionError::Encode(error.to_string()))?;
        }
        tx.commit()?;
        drop(conn);
        self.down_notify_for(site_id as u64).notify_one();
        Ok(retention.version)
    }
}
