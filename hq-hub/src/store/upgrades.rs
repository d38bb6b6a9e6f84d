//! What the hub learns at a site's hello: which protocol it speaks (rolling upgrades: what
//! HQ holds back from a site too old to read it), and whether its store went back in time
//! (a box restored from a backup).
//!
//! The link's session sends a site of an older protocol a stand-in at the seq of each down
//! entry whose event is newer than the site's version (`DownEvent::held_back_stand_in`), and
//! the entry is kept here first (`down_held`, migration 20). When the site's hello speaks a
//! version that reads it, the event is appended to the site's down log again, in the held
//! order, and forgotten: the site applies it then, idempotently like every down event. A
//! site with entries held is shown as needing an upgrade (职场需升级).
//!
//! A hello whose down position is behind what the site had acknowledged comes from a store
//! restored from a backup (or replaced): HQ raises the `site_rollback` alarm, takes the
//! hello's position as the site's, and the session sends everything after it again.

use rusqlite::{params, OptionalExtension, Transaction};
use sync_protocol::{DownEntry, DownEvent, SiteProfile};

use super::down::append_down;
use super::{now_unix, DbError, Store};

/// Tells a newly enrolled box HQ's name of its site, in the enrollment transaction (a box of
/// protocol 2 gets it once it is upgraded).
pub(super) fn seed_site_profile(tx: &Transaction<'_>, site_id: i64) -> rusqlite::Result<()> {
    let name: String = tx.query_row("SELECT name FROM sites WHERE id = ?1", [site_id], |r| r.get(0))?;
    append_down(tx, site_id, &DownEvent::SiteProfile(SiteProfile { version: 1, name }))?;
    Ok(())
}

impl Store {
    /// Keeps `entry`, which `site` was sent a stand-in for (idempotent).
    pub(super) fn hold_back_down(&self, site: i64, entry: &DownEntry) -> Result<(), DbError> {
        let json = serde_json::to_string(&entry.event)
            .map_err(|e| DbError(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
        self.conn().execute(
            "INSERT OR IGNORE INTO down_held (site_id, seq, since, event, held_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![site, entry.seq as i64, entry.event.since(), json, now_unix()],
        )?;
        self.wall_needs_upgrade(site, true);
        Ok(())
    }

    /// `site` speaks `version` and has applied its down log up to `down_applied`: records
    /// the version and appends again the held events it now reads. One held at a seq the
    /// site has not applied yet is simply forgotten: this session sends it from the log.
    pub(super) fn release_held_down(&self, site: i64, version: u32, down_applied: u64) -> Result<(), DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let acked: i64 = tx.query_row("SELECT down_acked FROM sites WHERE id = ?1", [site], |r| r.get(0))?;
        let position = i64::try_from(down_applied).unwrap_or(i64::MAX);
        if position < acked {
            let message = format!(
                "site {site} came back at down-log entry {position} after acknowledging {acked}: its box was restored \
                 from a backup or its store replaced. HQ sends it everything after {position} again; what it recorded \
                 since the backup and sent to HQ is kept here."
            );
            tx.execute(
                "INSERT INTO alarms (site_id, kind, message, created_at) VALUES (?1, 'site_rollback', ?2, ?3)",
                params![site, message, now_unix()],
            )?;
            tx.execute("UPDATE sites SET down_acked = ?1 WHERE id = ?2", params![position, site])?;
            tracing::warn!(site, position, acked, "the site's store went back in time (restored from a backup)");
        }
        tx.execute("UPDATE sites SET protocol_version = ?1 WHERE id = ?2", params![version, site])?;
        let held: Vec<(i64, String)> = tx
            .prepare("SELECT seq, event FROM down_held WHERE site_id = ?1 AND since <= ?2 ORDER BY seq")?
            .query_map(params![site, version], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let mut appended = false;
        for (seq, json) in &held {
            if *seq as u64 <= down_applied {
                let event: DownEvent = serde_json::from_str(json).map_err(|e| {
                    DbError(rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(e)))
                })?;
                append_down(&tx, site, &event).map_err(|e| DbError(e.into()))?;
                appended = true;
            }
            tx.execute("DELETE FROM down_held WHERE site_id = ?1 AND seq = ?2", params![site, seq])?;
        }
        let still_held: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM down_held WHERE site_id = ?1)", [site], |r| r.get(0))?;
        tx.commit()?;
        drop(conn);
        self.wall_needs_upgrade(site, still_held);
        if appended {
            tracing::info!(site, version, entries = held.len(), "down entries held back from the site sent again after its upgrade");
            self.down_notify_for(site as u64).notify_one();
        }
        Ok(())
    }

    /// Whether HQ holds back anything from `site` until it is upgraded, and the oldest
    /// version that would read it all.
    pub fn site_needs_upgrade(&self, site: i64) -> Result<Option<u32>, DbError> {
        let needs: Option<u32> = self
            .conn()
            .query_row("SELECT MAX(since) FROM down_held WHERE site_id = ?1", [site], |r| r.get(0))
            .optional()?
            .flatten();
        Ok(needs)
    }
}
