//! The down log: per site, the numbered events HQ sends it (`down_log`), in the order the
//! site must apply them.
//!
//! - Every change HQ makes for a site appends its events here in the change's own
//!   transaction ([`append_down`]), so an event is logged exactly when the change is
//!   committed; the site's link is woken after the commit (`Store::down_notify_for`).
//! - What HQ publishes to every site (lists, the voice library, announcements, link
//!   settings) goes to each enrolled site ([`publish_to_enrolled`]); a site enrolled later is
//!   seeded by each publisher in the enrollment transaction.
//! - The link reads the log back in seq order ([`Store::down_log`]).
//!
//! This module depends on nothing else in the store but its root, so every module that
//! sends something down can use it without a cycle.

use rusqlite::{params, Transaction};
use sync_protocol::DownEvent;

use super::{now_unix, DbError, Store};

/// Failure to append to a down log.
#[derive(Debug, thiserror::Error)]
pub enum DownError {
    /// The event could not be encoded (a bug).
    #[error("cannot encode a down-log event: {0}")]
    Encode(#[source] serde_json::Error),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for DownError {
    fn from(e: rusqlite::Error) -> Self {
        DownError::Db(DbError(e))
    }
}

/// Seeding runs inside statements that answer `rusqlite` errors (enrollment): a database
/// failure stays itself, an encoding failure travels as a conversion failure.
impl From<DownError> for rusqlite::Error {
    fn from(e: DownError) -> Self {
        match e {
            DownError::Db(DbError(db)) => db,
            encode @ DownError::Encode(_) => rusqlite::Error::ToSqlConversionFailure(Box::new(encode)),
        }
    }
}

/// One decoded entry of a site's down log.
#[derive(Debug, Clone, PartialEq)]
pub struct DownLogEntry {
    pub seq: u64,
    pub event: DownEvent,
}

/// Appends one event to `site_id`'s down log and returns its seq.
pub(super) fn append_down(tx: &Transaction<'_>, site_id: i64, event: &DownEvent) -> Result<i64, DownError> {
    let seq: i64 = tx.query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM down_log WHERE site_id = ?1", [site_id], |r| r.get(0))?;
    let json = serde_json::to_string(event).map_err(DownError::Encode)?;
    tx.execute(
        "INSERT INTO down_log (site_id, seq, event, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![site_id, seq, json, now_unix()],
    )?;
    Ok(seq)
}

/// The sites that receive what HQ publishes to every site: the enrolled ones (a site
/// enrolled later is seeded when it enrolls).
pub(super) fn enrolled_sites(tx: &Transaction<'_>) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = tx.prepare_cached("SELECT id FROM sites WHERE enrolled_at IS NOT NULL ORDER BY id")?;
    let sites = stmt.query_map([], |r| r.get(0))?.collect();
    sites
}

/// Appends `event` to the down log of each of `sites`, in `tx`.
pub(super) fn append_to_sites(tx: &Transaction<'_>, sites: &[i64], event: &DownEvent) -> Result<(), DownError> {
    for &site in sites {
        append_down(tx, site, event)?;
    }
    Ok(())
}

/// Appends `event` to every enrolled site's down log; the sites to wake after the commit.
pub(super) fn publish_to_enrolled(tx: &Transaction<'_>, event: &DownEvent) -> Result<Vec<i64>, DownError> {
    let sites = enrolled_sites(tx)?;
    append_to_sites(tx, &sites, event)?;
    Ok(sites)
}

impl Store {
    /// A site's down log after `after_seq`, oldest first, at most `limit` entries.
    pub fn down_log(&self, site: i64, after_seq: u64, limit: usize) -> Result<Vec<DownLogEntry>, DbError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT seq, event FROM down_log WHERE site_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3")?;
        let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let entries = stmt
            .query_map(params![site, after, limit], |r| {
                let seq: i64 = r.get(0)?;
                let json: String = r.get(1)?;
                let event: DownEvent = serde_json::from_str(&json).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
                })?;
                Ok(DownLogEntry { seq: seq as u64, event })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use sync_protocol::LinkSettings;

    use super::*;

    #[test]
    fn each_site_numbers_its_own_events_and_only_enrolled_sites_get_published_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let enrolled = store.create_site("甲").unwrap();
        let pending = store.create_site("乙").unwrap();
        let event = |version| DownEvent::LinkSettings(LinkSettings { version, recording_upload_bytes_per_sec: None });
        let published = {
            let mut conn = store.conn();
            let tx = conn.transaction().unwrap();
            tx.execute("UPDATE sites SET enrolled_at = 1 WHERE id = ?1", [enrolled]).unwrap();
            assert_eq!(append_down(&tx, pending, &event(1)).unwrap(), 1);
            let published = publish_to_enrolled(&tx, &event(2)).unwrap();
            assert_eq!(append_down(&tx, enrolled, &event(3)).unwrap(), 2, "seqs count per site");
            tx.commit().unwrap();
            published
        };
        assert_eq!(published, vec![enrolled]);
        let logged = |site| store.down_log(site, 0, 10).unwrap();
        assert_eq!(logged(enrolled), vec![DownLogEntry { seq: 1, event: event(2) }, DownLogEntry { seq: 2, event: event(3) }]);
        assert_eq!(logged(pending), vec![DownLogEntry { seq: 1, event: event(1) }]);
        assert_eq!(store.down_log(enrolled, 1, 10).unwrap(), vec![DownLogEntry { seq: 2, event: event(3) }], "after a seq");
        assert_eq!(store.down_log(enrolled, 0, 1).unwrap().len(), 1, "at most the limit");
    }
}
