//! Shared batches as one pool (共享批次), leased to sites in blocks, and batch recovery
//! (批次数据回收). See ARCHITECTURE.md, "Shared batches".
//!
//! A number is in one state at a time: `pooled` (HQ's), `leased` (one site's, under one
//! lease) or `dialed`. Numbers leave a site only through the site's own return
//! ([`LeaseReturn`]), except by HQ's forced reclaim, which the console warns about.

use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;
use sync_protocol::{BatchManifest, CustomerRow, DownEvent, LeaseGrant, LeaseRecall, LeaseRequest, LeaseReturn};

use super::down::{append_down, DownError};
use super::{now_unix, DbError, Store};

/// Most rows in one lease: one grant is one frame, well under the size cap.
pub const MAX_BLOCK: i64 = 2000;

/// A pool's lease settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PoolSettings {
    /// A block holds this many hours of the site's recent dialing.
    pub lease_hours: f64,
    /// Seconds a lease lasts; then the site returns what it did not dial.
    pub lease_lifetime_s: i64,
    /// The smallest block (also the first one, shared fairly between the sites).
    pub min_block: i64,
}

impl Default for PoolSettings {
    /// The pool's defaults (hub migration 22): two hours of dialing, a day's lease, 200 numbers.
    fn default() -> Self {
        PoolSettings { lease_hours: 2.0, lease_lifetime_s: 86_400, min_block: 200 }
    }
}

impl PoolSettings {
    /// Each setting in its range, or the first out of range, named.
    pub fn check(&self) -> Result<(), PoolError> {
        if !(0.1..=72.0).contains(&self.lease_hours) {
            return Err(PoolError::LeaseHours(self.lease_hours));
        }
        if !(60..=30 * 86_400).contains(&self.lease_lifetime_s) {
            return Err(PoolError::LeaseLifetime(self.lease_lifetime_s));
        }
        if !(1..=MAX_BLOCK).contains(&self.min_block) {
            return Err(PoolError::MinBlock(self.min_block));
        }
        Ok(())
    }
}

/// Failure of a pool action.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("batch {0} is not a site's batch of a shared pool: open a shared batch")]
    NotPooled(i64),
    #[error("lease {0} is not open at this batch: reload the page")]
    NoLease(i64),
    #[error("site_id: site {0} does not exist: choose a site")]
    UnknownSite(i64),
    #[error("batch {0} has no numbers left to dispatch: recover a batch first, and wait for the site's answer")]
    NothingPooled(i64),
    #[error("lease_hours: {0} hours is out of range: use 0.1 to 72 hours of the site's dialing")]
    LeaseHours(f64),
    #[error("lease_lifetime_s: {0} seconds is out of range: use 60 to 2592000 seconds")]
    LeaseLifetime(i64),
    #[error("min_block: {0} numbers is out of range: use 1 to 2000 numbers")]
    MinBlock(i64),
    #[error("cannot encode a down-log event: {0}")]
    Encode(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for PoolError {
    fn from(e: rusqlite::Error) -> Self {
        PoolError::Db(DbError(e))
    }
}

impl From<DownError> for PoolError {
    fn from(e: DownError) -> Self {
        match e {
            DownError::Encode(e) => PoolError::Encode(e.to_string()),
            DownError::Db(e) => PoolError::Db(e),
        }
    }
}

/// One site of a pool as the console shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PoolSite {
    pub batch_id: i64,
    pub site_id: i64,
    pub site_name: String,
    pub online: bool,
    /// Numbers the site holds now (leased, not known dialed).
    pub leased: i64,
    /// Numbers the site dialed.
    pub dialed: i64,
    /// Numbers the site gave back.
    pub returned: i64,
    /// Numbers the site dialed after HQ had forced them back and given them to another.
    pub dialed_twice: i64,
    /// HQ stopped leasing to it (its batch was recovered).
    pub recalled: bool,
    /// Away with leases: the forced reclaim is offered.
    pub flagged: bool,
    pub leases: Vec<LeaseView>,
}

/// One lease not yet closed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LeaseView {
    pub lease_id: i64,
    pub n_rows: i64,
    pub granted_at: i64,
    pub expires_at: i64,
    /// Seconds since it was granted.
    pub age_s: i64,
    /// `open` or `recalling`.
    pub state: String,
}

/// A pool as the console shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PoolView {
    pub pool_id: i64,
    pub name: String,
    pub total: i64,
    pub pooled: i64,
    pub leased: i64,
    pub dialed: i64,
    pub settings: PoolSettings,
    pub sites: Vec<PoolSite>,
}

/// Creates the pool of a shared dispatch with its lease `settings` (checked by the caller):
/// its numbers, and per site an empty batch (its manifest carries no rows, so it is dialable
/// at once) with a first lease of at most `min_block` numbers and at most a share of half
/// the pool.
#[allow(clippy::too_many_arguments)]
pub(super) fn create_pool(
    tx: &Transaction<'_>,
    project_id: i64,
    file_id: i64,
    name: &str,
    rows: &[(i64, String)],
    batch_ids: &[(i64, i64)],
    imported_at: i64,
    priority: i64,
    settings: PoolSettings,
    now: i64,
) -> Result<i64, PoolError> {
    tx.execute(
        "INSERT INTO pools (project_id, file_id, name, created_at, lease_hours, lease_lifetime_s, min_block)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![project_id, file_id, name, now, settings.lease_hours, settings.lease_lifetime_s, settings.min_block],
    )?;
    let pool_id = tx.last_insert_rowid();
    {
        let mut insert = tx.prepare("INSERT OR IGNORE INTO pool_numbers (pool_id, import_row_id, phone) VALUES (?1, ?2, ?3)")?;
        for (import_row_id, phone) in rows {
            insert.execute(params![pool_id, import_row_id, phone])?;
        }
    }
    // The first blocks cover half the pool between them; the rest goes to whoever asks, so
    // a faster site is not left idle while a slower one holds numbers.
    let shares = 2 * batch_ids.len().max(1) as i64;
    let fair = ((rows.len() as i64 + shares - 1) / shares).max(1);
    for &(site_id, batch_id) in batch_ids {
        tx.execute("UPDATE batches SET pool_id = ?2, n_rows = 0 WHERE id = ?1", params![batch_id, pool_id])?;
        let manifest = BatchManifest {
            batch_id: batch_id as u64,
            project_id: project_id as u64,
            name: name.to_string(),
            priority: priority.clamp(1, 100) as u8,
            imported_at,
            n_rows: 0,
            n_chunks: 0,
            rows_hash: sync_protocol::rows_hash([]),
        };
        append_down(tx, site_id, &DownEvent::BatchManifest(manifest))?;
        let settings = pool_settings(tx, pool_id)?;
        grant(tx, batch_id, 0, settings.min_block.min(fair), now)?;
    }
    Ok(pool_id)
}

fn pool_settings(tx: &rusqlite::Connection, pool_id: i64) -> rusqlite::Result<PoolSettings> {
    tx.query_row("SELECT lease_hours, lease_lifetime_s, min_block FROM pools WHERE id = ?1", [pool_id], |r| {
        Ok(PoolSettings { lease_hours: r.get(0)?, lease_lifetime_s: r.get(1)?, min_block: r.get(2)? })
    })
}

/// The pool and site of a site's pooled batch.
fn pooled_batch(tx: &rusqlite::Connection, batch_id: i64) -> rusqlite::Result<Option<(i64, i64, bool)>> {
    tx.query_row(
        "SELECT pool_id, site_id, pool_recalled FROM batches WHERE id = ?1 AND pool_id IS NOT NULL",
        [batch_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .optional()
}

/// Leases up to `block` pooled numbers to the site of `batch_id`, answering `request_id`;
/// answers the lease id, or `None` when the pool had nothing left (a request is then
/// answered with an empty grant, so the site knows).
fn grant(tx: &Transaction<'_>, batch_id: i64, request_id: u64, block: i64, now: i64) -> Result<Option<i64>, PoolError> {
    let (pool_id, site_id, _) = pooled_batch(tx, batch_id)?.ok_or(PoolError::NotPooled(batch_id))?;
    let settings = pool_settings(tx, pool_id)?;
    let block = block.clamp(1, MAX_BLOCK);
    let picked: Vec<(i64, i64, String, String)> = tx
        .prepare(
            "SELECT pn.id, pn.import_row_id, pn.phone, ir.fields FROM pool_numbers pn JOIN import_rows ir ON ir.id = pn.import_row_id
             WHERE pn.pool_id = ?1 AND pn.state = 'pooled'
               AND NOT EXISTS (SELECT 1 FROM phone_lists pl WHERE pl.phone = pn.phone AND pl.list = 'black')
             ORDER BY pn.id LIMIT ?2",
        )?
        .query_map(params![pool_id, block], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    let refill_below = (block / 2).max(1) as u64;
    if picked.is_empty() {
        if request_id > 0 {
            let answer = LeaseGrant { batch_id: batch_id as u64, lease_id: 0, request_id, granted_at: now, expires_at: now, refill_below, rows: vec![] };
            append_down(tx, site_id, &DownEvent::LeaseGrant(answer))?;
        }
        return Ok(None);
    }
    let expires_at = now + settings.lease_lifetime_s;
    tx.execute(
        "INSERT INTO leases (pool_id, site_id, batch_id, request_id, granted_at, expires_at, n_rows, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'open')",
        params![pool_id, site_id, batch_id, request_id as i64, now, expires_at, picked.len() as i64],
    )?;
    let lease_id = tx.last_insert_rowid();
    let mut rows = Vec::with_capacity(picked.len());
    {
        let mut insert = tx.prepare_cached("INSERT INTO batch_rows (batch_id, import_row_id, phone) VALUES (?1, ?2, ?3)")?;
        let mut lease = tx.prepare_cached("UPDATE pool_numbers SET state = 'leased', site_id = ?2, lease_id = ?3, row_id = ?4 WHERE id = ?1")?;
        for (number_id, import_row_id, phone, fields) in picked {
            insert.execute(params![batch_id, import_row_id, phone])?;
            let row_id = tx.last_insert_rowid();
            lease.execute(params![number_id, site_id, lease_id, row_id])?;
            let fields: Vec<(String, String)> = serde_json::from_str(&fields).map_err(|e| PoolError::Encode(e.to_string()))?;
            rows.push(CustomerRow { row_id: row_id as u64, phone, fields });
        }
    }
    tx.execute("UPDATE batches SET n_rows = n_rows + ?2 WHERE id = ?1", params![batch_id, rows.len() as i64])?;
    let event = LeaseGrant { batch_id: batch_id as u64, lease_id: lease_id as u64, request_id, granted_at: now, expires_at, refill_below, rows };
    append_down(tx, site_id, &DownEvent::LeaseGrant(event))?;
    Ok(Some(lease_id))
}

/// A site's request for another lease, applied once (under `up_applied`): answered unless
/// already answered (a request id not above the last) or the batch was recovered. Answers
/// whether the site's down log grew.
pub(super) fn apply_lease_request(tx: &Transaction<'_>, site: i64, request: &LeaseRequest, now: i64) -> Result<bool, PoolError> {
    let batch_id = request.batch_id as i64;
    let Some((pool_id, batch_site, recalled)) = pooled_batch(tx, batch_id)? else {
        return Ok(false);
    };
    let last: i64 = tx.query_row("SELECT lease_request FROM batches WHERE id = ?1", [batch_id], |r| r.get(0))?;
    if batch_site != site || request.request_id as i64 <= last {
        return Ok(false);
    }
    tx.execute("UPDATE batches SET lease_request = ?2 WHERE id = ?1", params![batch_id, request.request_id as i64])?;
    let settings = pool_settings(tx, pool_id)?;
    let by_rate = (request.dials_last_hour as f64 * settings.lease_hours).ceil() as i64;
    let block = if recalled { 0 } else { by_rate.max(settings.min_block) };
    if block == 0 {
        let answer = LeaseGrant {
            batch_id: request.batch_id,
            lease_id: 0,
            request_id: request.request_id,
            granted_at: now,
            expires_at: now,
            refill_below: 0,
            rows: vec![],
        };
        append_down(tx, site, &DownEvent::LeaseGrant(answer))?;
        return Ok(true);
    }
    grant(tx, batch_id, request.request_id, block, now)?;
    Ok(true)
}

/// Marks a pooled number dialed as soon as its attempt arrives.
pub(super) fn note_attempt(tx: &Transaction<'_>, batch_id: i64, row_id: i64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE pool_numbers SET state = 'dialed', site_id = (SELECT site_id FROM batches WHERE id = ?1)
         WHERE row_id = ?2 AND state != 'dialed' AND pool_id = (SELECT pool_id FROM batches WHERE id = ?1)",
    )?
    .execute(params![batch_id, row_id])?;
    Ok(())
}

/// A site's return of a lease, applied once: its dialed numbers become `dialed` (one HQ
/// already gave another site counts as dialed twice), its returned ones go back to the
/// pool, and the lease closes. A second copy finds the lease closed and changes nothing.
pub(super) fn apply_lease_return(tx: &Transaction<'_>, site: i64, ret: &LeaseReturn, now: i64) -> Result<(), PoolError> {
    let lease: Option<(i64, i64, String)> = tx
        .query_row(
            "SELECT pool_id, batch_id, state FROM leases WHERE id = ?1 AND site_id = ?2",
            params![ret.lease_id as i64, site],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((pool_id, batch_id, state)) = lease else { return Ok(()) };
    if state == "closed" || batch_id != ret.batch_id as i64 {
        return Ok(());
    }
    let (mut twice, mut regained, mut given) = (0, 0, 0);
    {
        let mut find = tx.prepare_cached(
            "SELECT pn.id, pn.state, pn.row_id FROM batch_rows br
             JOIN pool_numbers pn ON pn.pool_id = ?1 AND pn.import_row_id = br.import_row_id
             WHERE br.id = ?2 AND br.batch_id = ?3",
        )?;
        let mut dial = tx.prepare_cached("UPDATE pool_numbers SET state = 'dialed', site_id = ?2, lease_id = ?3, row_id = ?4 WHERE id = ?1")?;
        for &row in &ret.dialed {
            let row = row as i64;
            let found: Option<(i64, String, Option<i64>)> =
                find.query_row(params![pool_id, row, batch_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).optional()?;
            let Some((number, number_state, number_row)) = found else { continue };
            if number_row == Some(row) || number_state == "pooled" {
                // A number HQ forced back and nobody took since counts for this site again.
                regained += i64::from(number_state == "pooled");
                dial.execute(params![number, site, ret.lease_id as i64, row])?;
            } else {
                twice += 1;
            }
        }
        let mut give_back = tx.prepare_cached(
            "UPDATE pool_numbers SET state = 'pooled', site_id = NULL, lease_id = NULL
             WHERE row_id = ?1 AND lease_id = ?2 AND state = 'leased'",
        )?;
        for &row in &ret.returned {
            given += give_back.execute(params![row as i64, ret.lease_id as i64])? as i64;
        }
    }
    // A site's batch counts the numbers it holds or dialed, so the sites' counts and the
    // pool's add up to the batch: each number once.
    tx.execute("UPDATE batches SET n_rows = n_rows - ?2 + ?3 WHERE id = ?1", params![batch_id, given, regained])?;
    tx.execute(
        "UPDATE leases SET state = 'closed', dialed = ?2, returned = ?3, dialed_twice = ?4, closed_at = ?5 WHERE id = ?1",
        params![ret.lease_id as i64, ret.dialed.len() as i64, ret.returned.len() as i64, twice, now],
    )?;
    Ok(())
}

/// The first lease of a site's new batch of `pool_id`: the pool's smallest block.
pub(super) fn grant_first(tx: &Transaction<'_>, batch_id: i64, pool_id: i64, now: i64) -> Result<Option<i64>, PoolError> {
    let settings = pool_settings(tx, pool_id)?;
    grant(tx, batch_id, 0, settings.min_block, now)
}

pub(super) fn recall(tx: &Transaction<'_>, batch_id: i64, lease_id: Option<i64>, forced: bool, now: i64) -> Result<i64, PoolError> {
    let (_, site_id, _) = pooled_batch(tx, batch_id)?.ok_or(PoolError::NotPooled(batch_id))?;
    tx.execute(
        "INSERT INTO lease_recalls (batch_id, lease_id, forced, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![batch_id, lease_id, forced, now],
    )?;
    let recall_id = tx.last_insert_rowid();
    let event = LeaseRecall { recall_id: recall_id as u64, batch_id: batch_id as u64, lease_id: lease_id.map(|l| l as u64) };
    append_down(tx, site_id, &DownEvent::LeaseRecall(event))?;
    Ok(site_id)
}

impl Store {
    /// Batch recovery (批次数据回收): asks the site of `batch_id` to give back the undialed
    /// rest of one lease, or of all its leases (then HQ leases it no more of the pool), or of
    /// its whole exclusive or auto batch. The numbers return to the pool only with the
    /// site's answer, so none is dialed twice.
    pub fn recover_batch(&self, batch_id: i64, lease_id: Option<i64>) -> Result<(), PoolError> {
        let exclusive = self.conn().query_row("SELECT pool_id IS NULL FROM batches WHERE id = ?1", [batch_id], |r| r.get(0)).optional()?;
        if lease_id.is_none() && exclusive == Some(true) {
            // An exclusive or auto batch: recovered as one lease (see `recovery`).
            return self.recover_whole_batch(batch_id).map(|_| ());
        }
        let now = now_unix();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let changed = match lease_id {
            Some(lease) => tx.execute(
                "UPDATE leases SET state = 'recalling' WHERE id = ?1 AND batch_id = ?2 AND state = 'open'",
                params![lease, batch_id],
            )?,
            None => {
                tx.execute("UPDATE batches SET pool_recalled = 1 WHERE id = ?1 AND pool_id IS NOT NULL", [batch_id])?;
                tx.execute("UPDATE leases SET state = 'recalling' WHERE batch_id = ?1 AND state = 'open'", [batch_id])?;
                1
            }
        };
        if changed == 0 {
            return Err(PoolError::NoLease(lease_id.unwrap_or_default()));
        }
        let site_id = recall(&tx, batch_id, lease_id, false, now)?;
        tx.commit()?;
        drop(conn);
        self.down_notify_for(site_id as u64).notify_one();
        Ok(())
    }

    /// HQ's forced reclaim of a site that stays away: its open leases of the pool go back
    /// to the pool now, unconfirmed, and each is recalled at the site. A number the site
    /// dialed offline may then be dialed twice (the console says so before asking).
    /// Answers how many numbers went back.
    pub fn force_reclaim(&self, batch_id: i64) -> Result<i64, PoolError> {
        let now = now_unix();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        pooled_batch(&tx, batch_id)?.ok_or(PoolError::NotPooled(batch_id))?;
        let leases: Vec<i64> = tx
            .prepare("SELECT id FROM leases WHERE batch_id = ?1 AND state IN ('open', 'recalling')")?
            .query_map([batch_id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut back = 0;
        let mut site_id = None;
        for lease in &leases {
            let freed = tx.execute(
                "UPDATE pool_numbers SET state = 'pooled', site_id = NULL, lease_id = NULL WHERE lease_id = ?1 AND state = 'leased'",
                [lease],
            )? as i64;
            back += freed;
            tx.execute("UPDATE leases SET state = 'recalling', forced = 1 WHERE id = ?1", [lease])?;
            tx.execute("UPDATE batches SET n_rows = n_rows - ?2 WHERE id = ?1", params![batch_id, freed])?;
            site_id = Some(recall(&tx, batch_id, Some(*lease), true, now)?);
        }
        tx.commit()?;
        drop(conn);
        if let Some(site_id) = site_id {
            self.down_notify_for(site_id as u64).notify_one();
        }
        Ok(back)
    }

    /// Changes a pool's lease settings (the blocks leased from now on).
    pub fn set_pool_settings(&self, pool_id: i64, settings: PoolSettings) -> Result<(), PoolError> {
            settings.check()?;
        let changed = self.conn().execute(
            "UPDATE pools SET lease_hours = ?2, lease_lifetime_s = ?3, min_block = ?4 WHERE id = ?1",
            params![pool_id, settings.lease_hours, settings.lease_lifetime_s, settings.min_block],
        )?;
        if changed == 0 {
            return Err(PoolError::NotPooled(pool_id));
        }
        Ok(())
    }

    /// The pool a site's batch draws from, if any.
    pub fn batch_pool(&self, batch_id: i64) -> Result<Option<i64>, DbError> {
        Ok(self.conn().query_row("SELECT pool_id FROM batches WHERE id = ?1", [batch_id], |r| r.get(0)).optional()?.flatten())
    }

    /// A pool with its sites, their counts and open leases.
    pub fn pool_view(&self, pool_id: i64) -> Result<Option<PoolView>, DbError> {
        let conn = self.conn();
        let now = now_unix();
        let Some(name) = conn.query_row("SELECT name FROM pools WHERE id = ?1", [pool_id], |r| r.get::<_, String>(0)).optional()? else {
            return Ok(None);
        };
        let settings = pool_settings(&conn, pool_id)?;
        let count = |state: &str| -> rusqlite::Result<i64> {
            conn.query_row("SELECT COUNT(*) FROM pool_numbers WHERE pool_id = ?1 AND state = ?2", params![pool_id, state], |r| r.get(0))
        };
        let (pooled, leased, dialed) = (count("pooled")?, count("leased")?, count("dialed")?);
        let mut sites: Vec<PoolSite> = conn
            .prepare(
                "SELECT b.id, b.site_id, s.name, s.online, b.pool_recalled,
                    (SELECT COUNT(*) FROM pool_numbers pn WHERE pn.pool_id = ?1 AND pn.site_id = b.site_id AND pn.state = 'leased'),
                    (SELECT COUNT(*) FROM pool_numbers pn WHERE pn.pool_id = ?1 AND pn.site_id = b.site_id AND pn.state = 'dialed'),
                    (SELECT COALESCE(SUM(returned), 0) FROM leases l WHERE l.batch_id = b.id),
                    (SELECT COALESCE(SUM(dialed_twice), 0) FROM leases l WHERE l.batch_id = b.id)
                 FROM batches b JOIN sites s ON s.id = b.site_id WHERE b.pool_id = ?1 AND b.deleted = 0 ORDER BY b.id",
            )?
            .query_map([pool_id], |r| {
                Ok(PoolSite {
                    batch_id: r.get(0)?,
                    site_id: r.get(1)?,
                    site_name: r.get(2)?,
                    online: r.get(3)?,
                    recalled: r.get(4)?,
                    leased: r.get(5)?,
                    dialed: r.get(6)?,
                    returned: r.get(7)?,
                    dialed_twice: r.get(8)?,
                    flagged: false,
                    leases: Vec::new(),
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut leases = conn.prepare(
            "SELECT id, n_rows, granted_at, expires_at, state FROM leases WHERE batch_id = ?1 AND state != 'closed' ORDER BY id",
        )?;
        for site in &mut sites {
            site.leases = leases
                .query_map([site.batch_id], |r| {
                    let granted_at: i64 = r.get(2)?;
                    Ok(LeaseView { lease_id: r.get(0)?, n_rows: r.get(1)?, granted_at, expires_at: r.get(3)?, age_s: now - granted_at, state: r.get(4)? })
                })?
                .collect::<Result<_, _>>()?;
            site.flagged = !site.online && site.leased > 0;
        }
        Ok(Some(PoolView { pool_id, name, total: pooled + leased + dialed, pooled, leased, dialed, settings, sites }))
    }
}

#[cfg(test)]
#[path = "pools_tests.rs"]
mod tests;
