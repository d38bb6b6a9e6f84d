//! Batch recovery (批次数据回收) of an exclusive or auto batch, and the dispatch of a
//! recovered remainder. See ARCHITECTURE.md, "Shared batches".
//!
//! Recovery reuses the pool's recall and return: the site's whole batch becomes one lease
//! of a pool of its own (its numbers `leased` to the site), HQ recalls that lease, and the
//! site's [`sync_protocol::LeaseReturn`] marks what it dialed and puts what it did not back
//! in the pool. The remainder is dispatched again as a new batch drawing from that pool,
//! so a number is dialed by one site only, whichever way it went.

use rusqlite::{params, OptionalExtension, Transaction};
use sync_protocol::{BatchManifest, DownEvent};

use super::down::append_down;
use super::pools::{grant_first, recall, PoolError, PoolSettings};
use super::{now_unix, Store};

/// Turns the exclusive (or auto) `batch_id` into one lease, recalling, of a pool of its
/// own; answers the lease. Numbers the site already dialed come back in its return.
pub(super) fn lease_whole_batch(tx: &Transaction<'_>, batch_id: i64, now: i64) -> Result<i64, PoolError> {
    let batch: Option<(i64, i64, i64, String, i64, i64)> = tx
        .query_row(
            "SELECT project_id, file_id, site_id, name, n_rows, created_at FROM batches WHERE id = ?1 AND pool_id IS NULL",
            [batch_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .optional()?;
    let (project_id, file_id, site_id, name, n_rows, created_at) = batch.ok_or(PoolError::NotPooled(batch_id))?;
    let settings = PoolSettings::default();
    tx.execute(
        "INSERT INTO pools (project_id, file_id, name, created_at, lease_hours, lease_lifetime_s, min_block)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![project_id, file_id, name, now, settings.lease_hours, settings.lease_lifetime_s, settings.min_block],
    )?;
    let pool_id = tx.last_insert_rowid();
    // The site holds the lease until it answers the recall, so it never expires at HQ.
    tx.execute(
        "INSERT INTO leases (pool_id, site_id, batch_id, request_id, granted_at, expires_at, n_rows, state)
         VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6, 'recalling')",
        params![pool_id, site_id, batch_id, created_at, i64::MAX, n_rows],
    )?;
    let lease_id = tx.last_insert_rowid();
    tx.execute(
        "INSERT OR IGNORE INTO pool_numbers (pool_id, import_row_id, phone, state, site_id, lease_id, row_id)
         SELECT ?1, import_row_id, phone, 'leased', ?2, ?3, id FROM batch_rows WHERE batch_id = ?4 ORDER BY id",
        params![pool_id, site_id, lease_id, batch_id],
    )?;
    tx.execute("UPDATE batches SET pool_id = ?2, pool_recalled = 1 WHERE id = ?1", params![batch_id, pool_id])?;
    Ok(lease_id)
}

impl Store {
    /// Batch recovery of an exclusive or auto batch: see the module. Answers the lease.
    pub(super) fn recover_whole_batch(&self, batch_id: i64) -> Result<i64, PoolError> {
        let now = now_unix();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let lease_id = lease_whole_batch(&tx, batch_id, now)?;
        let site_id = recall(&tx, batch_id, Some(lease_id), false, now)?;
        tx.commit()?;
        drop(conn);
        self.down_notify_for(site_id as u64).notify_one();
        Ok(lease_id)
    }

    /// Dispatches the numbers `batch_id`'s pool holds (a recovered remainder, or a shared
    /// pool's) again, as a new batch of `site_id` leasing from the pool, by `creator`.
    /// Answers the new batch.
    pub fn redispatch_remainder(&self, batch_id: i64, site_id: i64, creator: &str) -> Result<i64, PoolError> {
        let now = now_unix();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let source: Option<(i64, i64, i64, String, i64, String, i64)> = tx
            .query_row(
                "SELECT b.pool_id, b.file_id, b.project_id, b.name, b.priority, b.description, f.created_at
                 FROM batches b JOIN files f ON f.id = b.file_id WHERE b.id = ?1 AND b.pool_id IS NOT NULL",
                [batch_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
            )
            .optional()?;
        let (pool_id, file_id, project_id, name, priority, description, imported_at) = source.ok_or(PoolError::NotPooled(batch_id))?;
        let site: Option<i64> = tx.query_row("SELECT id FROM sites WHERE id = ?1", [site_id], |r| r.get(0)).optional()?;
        site.ok_or(PoolError::UnknownSite(site_id))?;
        let pooled: i64 =
            tx.query_row("SELECT COUNT(*) FROM pool_numbers WHERE pool_id = ?1 AND state = 'pooled'", [pool_id], |r| r.get(0))?;
        if pooled == 0 {
            return Err(PoolError::NothingPooled(batch_id));
        }
        tx.execute("INSERT OR IGNORE INTO project_sites (project_id, site_id) VALUES (?1, ?2)", params![project_id, site_id])?;
        super::projects::push_project(&tx, project_id).map_err(|e| PoolError::Encode(e.to_string()))?;
        tx.execute(
            "INSERT INTO batches (file_id, project_id, site_id, name, priority, n_rows, created_at, creator, description, kind, pool_id)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?8, 'shared', ?9)",
            params![file_id, project_id, site_id, name, priority, now, creator, description, pool_id],
        )?;
        let new_batch = tx.last_insert_rowid();
        let manifest = BatchManifest {
            batch_id: new_batch as u64,
            project_id: project_id as u64,
            name,
            priority: priority.clamp(1, 100) as u8,
            imported_at,
            n_rows: 0,
            n_chunks: 0,
            rows_hash: sync_protocol::rows_hash([]),
        };
        append_down(&tx, site_id, &DownEvent::BatchManifest(manifest))?;
        grant_first(&tx, new_batch, pool_id, now)?;
        tx.commit()?;
        drop(conn);
        self.down_notify_for(site_id as u64).notify_one();
        Ok(new_batch)
    }
}
