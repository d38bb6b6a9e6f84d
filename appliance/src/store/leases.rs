//! A shared batch's leases at the site (see ARCHITECTURE.md, "Shared batches"): rows HQ
//! leased to this site alone, asking for more when few are left, and giving back the
//! undialed rest when a lease expires or HQ recalls it.
//!
//! A leased row is a row of the site's batch whose `chunk_idx` is the lease id. A row goes
//! back by being deleted, in the transaction that writes the [`LeaseReturn`] to the outbox:
//! once returned, a number is never claimed here again.

use rusqlite::{OptionalExtension, Transaction, params};
use sync_protocol::{LeaseGrant, LeaseRecall, LeaseRequest, LeaseReturn, UpEvent};

use super::{DbError, Store, push_outbox};

/// How long the site waits for HQ's answer, or after HQ had nothing left, before asking again.
pub const ASK_AGAIN_S: i64 = 20;

/// Applies HQ's grant (a down-log entry, applied once under the down cursor): the lease
/// and its rows, or, for an empty answer, that the pool had nothing left for now.
pub(super) fn apply_grant(tx: &Transaction<'_>, grant: &LeaseGrant, now: i64) -> Result<(), DbError> {
    tx.execute("INSERT OR IGNORE INTO batches (batch_id) VALUES (?1)", [grant.batch_id])?;
    tx.execute("INSERT OR IGNORE INTO pool_batches (batch_id) VALUES (?1)", [grant.batch_id])?;
    if grant.request_id > 0 {
        tx.execute(
            "UPDATE pool_batches SET answered = MAX(answered, ?2) WHERE batch_id = ?1",
            params![grant.batch_id, grant.request_id as i64],
        )?;
    }
    if grant.rows.is_empty() {
        tx.execute("UPDATE pool_batches SET dry_until = ?2 WHERE batch_id = ?1", params![grant.batch_id, now + ASK_AGAIN_S])?;
        return Ok(());
    }
    tx.execute(
        "UPDATE pool_batches SET refill_below = ?2, dry_until = 0 WHERE batch_id = ?1",
        params![grant.batch_id, grant.refill_below as i64],
    )?;
    tx.execute(
        "INSERT OR IGNORE INTO leases (lease_id, batch_id, granted_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![grant.lease_id as i64, grant.batch_id as i64, grant.granted_at, grant.expires_at],
    )?;
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO batch_rows (batch_id, chunk_idx, row_idx, row_id, phone, fields) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (idx, row) in grant.rows.iter().enumerate() {
        let fields = postcard::to_stdvec(&row.fields).map_err(|e| super::corrupt("customer row", e))?;
        insert.execute(params![grant.batch_id as i64, grant.lease_id as i64, idx as i64, row.row_id as i64, row.phone, fields])?;
    }
    drop(insert);
    super::attribution::allocate_by_hq_rules(tx, grant.batch_id)?;
    Ok(())
}

/// Applies HQ's recall: every open lease it names goes back now. A recall of the whole
/// batch also ends the site's asking for more of it. Answers whether the outbox grew.
pub(super) fn apply_recall(tx: &Transaction<'_>, recall: &LeaseRecall, now: i64) -> Result<bool, DbError> {
    let pooled: bool =
        tx.query_row("SELECT EXISTS (SELECT 1 FROM pool_batches WHERE batch_id = ?1)", [recall.batch_id], |r| r.get(0))?;
    if !pooled {
        // An exclusive or auto batch: HQ names its whole batch as one lease.
        return return_whole_batch(tx, recall, now);
    }
    let leases: Vec<i64> = match recall.lease_id {
        Some(lease) => vec![lease as i64],
        None => {
            tx.execute("UPDATE pool_batches SET recalled = 1 WHERE batch_id = ?1", [recall.batch_id])?;
            tx.prepare("SELECT lease_id FROM leases WHERE batch_id = ?1 AND state = 'open' ORDER BY lease_id")?
                .query_map([recall.batch_id], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        }
    };
    let mut wrote = false;
    for lease in leases {
        wrote |= return_lease(tx, lease, Some(recall.recall_id), now)?;
    }
    Ok(wrote)
}

/// Gives a lease back if it is still open: deletes its undialed rows and writes which rows
/// were dialed (or are being dialed) and which go back. Answers whether it was open.
fn return_lease(tx: &Transaction<'_>, lease_id: i64, recall_id: Option<u64>, now: i64) -> Result<bool, DbError> {
    let batch: Option<i64> = tx
        .query_row("SELECT batch_id FROM leases WHERE lease_id = ?1 AND state = 'open'", [lease_id], |r| r.get(0))
        .optional()?;
    let Some(batch_id) = batch else { return Ok(false) };
    let ids = |status: &str| -> rusqlite::Result<Vec<u64>> {
        tx.prepare_cached(&format!(
            "SELECT row_id FROM batch_rows WHERE batch_id = ?1 AND chunk_idx = ?2 AND status {status} ORDER BY row_idx"
        ))?
        .query_map(params![batch_id, lease_id], |r| Ok(r.get::<_, i64>(0)? as u64))?
        .collect()
    };
    let dialed = ids("!= 'new'")?;
    let returned = ids("= 'new'")?;
    tx.execute("DELETE FROM batch_rows WHERE batch_id = ?1 AND chunk_idx = ?2 AND status = 'new'", params![batch_id, lease_id])?;
    tx.execute("UPDATE leases SET state = 'returned' WHERE lease_id = ?1", [lease_id])?;
    let event = LeaseReturn { batch_id: batch_id as u64, lease_id: lease_id as u64, recall_id, dialed, returned, returned_at: now };
    push_outbox(tx, &UpEvent::LeaseReturn(event))?;
    tracing::info!(batch_id, lease_id, ?recall_id, "lease returned to HQ");
    Ok(true)
}

/// Recovery of an exclusive (or auto) batch: the site's whole batch is one lease (the id
/// HQ named, 0 if none) that it gives back like any other. Its undialed rows are deleted in
/// the transaction that writes the return, so none is claimed here after; the batch is
/// then marked recalled in `pool_batches`, so a chunk of it HQ sends again is not stored
/// (see [`is_recovered`]) and a second recall finds it pooled with no open lease: one return.
fn return_whole_batch(tx: &Transaction<'_>, recall: &LeaseRecall, now: i64) -> Result<bool, DbError> {
    let batch_id = recall.batch_id as i64;
    tx.execute("INSERT OR IGNORE INTO pool_batches (batch_id, recalled) VALUES (?1, 1)", [batch_id])?;
    let ids = |status: &str| -> rusqlite::Result<Vec<u64>> {
        tx.prepare_cached(&format!(
            "SELECT row_id FROM batch_rows WHERE batch_id = ?1 AND status {status} ORDER BY chunk_idx, row_idx"
        ))?
        .query_map([batch_id], |r| Ok(r.get::<_, i64>(0)? as u64))?
        .collect()
    };
    let returned = ids("= 'new'")?;
    let dialed = ids("!= 'new'")?;
    tx.execute("DELETE FROM batch_rows WHERE batch_id = ?1 AND status = 'new'", [batch_id])?;
    let lease_id = recall.lease_id.unwrap_or(0);
    let event = LeaseReturn { batch_id: recall.batch_id, lease_id, recall_id: Some(recall.recall_id), dialed, returned, returned_at: now };
    push_outbox(tx, &UpEvent::LeaseReturn(event))?;
    tracing::info!(batch_id, recall_id = recall.recall_id, "batch's undialed rows returned to HQ");
    Ok(true)
}

/// Whether HQ recovered `batch_id` from this site: its manifest and chunks are no longer
/// stored, so a number given back never becomes dialable here again.
pub(super) fn is_recovered(tx: &Transaction<'_>, batch_id: u64) -> Result<bool, DbError> {
    Ok(tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM pool_batches WHERE batch_id = ?1 AND recalled = 1)",
        [batch_id as i64],
        |r| r.get(0),
    )?)
}

/// Whether a row of `batch_id` is shown on the data pages before it is dialed: a pooled
/// batch's numbers are not (the manual: a site does not see a number before it dials it).
pub(super) const HIDE_UNDIALED_POOLED: &str =
    "NOT (r.status = 'new' AND r.batch_id IN (SELECT batch_id FROM pool_batches))";

impl Store {
    /// The lease keeper's turn (every second): returns the leases that expired, and asks HQ
    /// for another lease of each pooled batch holding fewer undialed rows than HQ said,
    /// unless a request is still unanswered (asked again after [`ASK_AGAIN_S`]) or HQ had
    /// nothing left a moment ago. Answers whether it wrote to the outbox.
    pub fn keep_leases(&self, now: i64) -> Result<bool, DbError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let expired: Vec<i64> = tx
            .prepare("SELECT lease_id FROM leases WHERE state = 'open' AND expires_at <= ?1 ORDER BY lease_id")?
            .query_map([now], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut wrote = false;
        for lease in expired {
            wrote |= return_lease(&tx, lease, None, now)?;
        }
        let due: Vec<(i64, i64, i64, i64, i64)> = tx
            .prepare(
                "SELECT p.batch_id, p.request_id, p.answered, p.asked_at,
                        (SELECT COUNT(*) FROM batch_rows r WHERE r.batch_id = p.batch_id AND r.status = 'new')
                 FROM pool_batches p
                 WHERE p.recalled = 0 AND p.dry_until <= ?1
                   AND (SELECT COUNT(*) FROM batch_rows r WHERE r.batch_id = p.batch_id AND r.status = 'new') < p.refill_below",
            )?
            .query_map([now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
            .collect::<Result<_, _>>()?;
        for (batch_id, request_id, answered, asked_at, held) in due {
            if answered < request_id && now - asked_at < ASK_AGAIN_S {
                continue;
            }
            let dials_last_hour: i64 = tx.query_row(
                "SELECT COUNT(*) FROM attempts WHERE batch_id = ?1 AND started_at >= ?2",
                params![batch_id, now - 3600],
                |r| r.get(0),
            )?;
            let next = request_id + 1;
            tx.execute("UPDATE pool_batches SET request_id = ?2, asked_at = ?3 WHERE batch_id = ?1", params![batch_id, next, now])?;
            let request = LeaseRequest {
                batch_id: batch_id as u64,
                request_id: next as u64,
                held: held as u64,
                dials_last_hour: dials_last_hour as u64,
                asked_at: now,
            };
            push_outbox(&tx, &UpEvent::LeaseRequest(request))?;
            wrote = true;
        }
        tx.commit()?;
        drop(conn);
        if wrote {
            self.notify.notify_one();
        }
        Ok(wrote)
    }

    /// Open leases of a batch: `(lease_id, undialed rows held, expires_at)`.
    pub fn open_leases(&self, batch_id: u64) -> Result<Vec<(u64, u64, i64)>, DbError> {
        let conn = self.lock();
        let mut statement = conn.prepare(
            "SELECT l.lease_id, (SELECT COUNT(*) FROM batch_rows r WHERE r.batch_id = l.batch_id AND r.chunk_idx = l.lease_id AND r.status = 'new'),
                    l.expires_at
             FROM leases l WHERE l.batch_id = ?1 AND l.state = 'open' ORDER BY l.lease_id",
        )?;
        let leases = statement
            .query_map([batch_id as i64], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        Ok(leases)
    }
}

#[cfg(test)]
mod tests {
    use sync_link::SiteStore;
    use sync_protocol::{BatchManifest, CustomerRow, DownEntry, DownEvent};

    use super::*;
    use crate::store::Viewer;

    fn grant(lease_id: u64, first_row: u64, n: u64, expires_at: i64) -> LeaseGrant {
        let rows = (0..n).map(|i| CustomerRow { row_id: first_row + i, phone: format!("1380000{:04}", first_row + i), fields: vec![] }).collect();
        LeaseGrant { batch_id: 7, lease_id, request_id: 0, granted_at: 100, expires_at, refill_below: 2, rows }
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let manifest = BatchManifest {
            batch_id: 7,
            project_id: 1,
            name: "共享".into(),
            priority: 50,
            imported_at: 1,
            n_rows: 0,
            n_chunks: 0,
            rows_hash: sync_protocol::rows_hash([]),
        };
        store.apply_down_entries(&[DownEntry { seq: 1, event: DownEvent::BatchManifest(manifest) }, DownEntry { seq: 2, event: DownEvent::LeaseGrant(grant(3, 100, 4, 1000)) }]).unwrap();
        (dir, store)
    }

    fn outbox(store: &Store) -> Vec<UpEvent> {
        store.outbox_after(0, 100).unwrap().into_iter().map(|e| e.event).collect()
    }

    fn dial(store: &Store, row_ids: &[u64]) {
        for row in row_ids {
            store.lock().execute("UPDATE batch_rows SET status = 'done' WHERE row_id = ?1", [*row as i64]).unwrap();
        }
    }

    #[test]
    fn a_lease_is_dialable_hidden_until_dialed_refilled_when_low_and_returned_at_expiry() {
        let (_dir, store) = open();
        let verified: bool = store.lock().query_row("SELECT verified FROM batches WHERE batch_id = 7", [], |r| r.get(0)).unwrap();
        assert!(verified, "a pooled batch's empty manifest checks out at once");
        assert_eq!(store.open_leases(7).unwrap(), vec![(3, 4, 1000)]);
        let viewer = Viewer { username: "t".into(), unmask: true };
        assert!(store.customers(&viewer, None, None, None, 100).unwrap().is_empty(), "no undialed pooled number is shown");
        dial(&store, &[100]);
        let shown = store.customers(&viewer, None, None, None, 100).unwrap();
        assert_eq!(shown.iter().map(|c| c.row_id).collect::<Vec<_>>(), vec![100], "a dialed one is");

        assert!(!store.keep_leases(500).unwrap(), "3 held, not below 2: nothing to ask");
        dial(&store, &[101, 102]);
        assert!(store.keep_leases(500).unwrap());
        assert!(!store.keep_leases(510).unwrap(), "unanswered, asked again only after a while");
        assert!(store.keep_leases(521).unwrap());
        let asked: Vec<(u64, u64)> = outbox(&store)
            .into_iter()
            .filter_map(|e| match e {
                UpEvent::LeaseRequest(r) => Some((r.request_id, r.held)),
                _ => None,
            })
            .collect();
        assert_eq!(asked, vec![(1, 1), (2, 1)]);

        // Expired: the undialed row goes back and is gone; a second turn returns nothing.
        assert!(store.keep_leases(1000).unwrap());
        store.keep_leases(1001).unwrap();
        assert!(store.open_leases(7).unwrap().is_empty());
        let returns: Vec<LeaseReturn> = outbox(&store)
            .into_iter()
            .filter_map(|e| match e {
                UpEvent::LeaseReturn(r) => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(returns.len(), 1);
        assert_eq!((returns[0].dialed.clone(), returns[0].returned.clone(), returns[0].recall_id), (vec![100, 101, 102], vec![103], None));
        let left: i64 = store.lock().query_row("SELECT COUNT(*) FROM batch_rows WHERE batch_id = 7 AND status = 'new'", [], |r| r.get(0)).unwrap();
        assert_eq!(left, 0, "a returned number is never dialed here again");
    }

    #[test]
    fn a_recall_of_the_batch_returns_every_open_lease_and_ends_the_asking() {
        let (_dir, store) = open();
        store.apply_down_entries(&[DownEntry { seq: 3, event: DownEvent::LeaseGrant(grant(4, 200, 3, 1000)) }]).unwrap();
        dial(&store, &[200]);
        let recall = LeaseRecall { recall_id: 9, batch_id: 7, lease_id: None };
        store.apply_down_entries(&[DownEntry { seq: 4, event: DownEvent::LeaseRecall(recall) }]).unwrap();
        let returns: Vec<(u64, usize, usize)> = outbox(&store)
            .into_iter()
            .filter_map(|e| match e {
                UpEvent::LeaseReturn(r) if r.recall_id == Some(9) => Some((r.lease_id, r.dialed.len(), r.returned.len())),
                _ => None,
            })
            .collect();
        assert_eq!(returns, vec![(3, 0, 4), (4, 1, 2)]);
        assert!(store.open_leases(7).unwrap().is_empty());
        assert!(!store.keep_leases(500).unwrap(), "a recovered batch asks for no more");
    }
    #[test]
    fn a_recall_of_an_exclusive_batch_returns_its_undialed_rows_as_the_lease_hq_named_and_a_resent_chunk_is_not_stored() {
        let (_dir, store) = open();
        let rows: Vec<CustomerRow> =
            (0..5).map(|i| CustomerRow { row_id: 500 + i, phone: format!("1390000{:04}", 500 + i), fields: vec![] }).collect();
        let manifest = BatchManifest {
            batch_id: 8,
            project_id: 1,
            name: "独占".into(),
            priority: 50,
            imported_at: 1,
            n_rows: 5,
            n_chunks: 1,
            rows_hash: sync_protocol::rows_hash(&rows),
        };
        let chunk = sync_protocol::BatchChunk { batch_id: 8, chunk_idx: 0, rows };
        store
            .apply_down_entries(&[
                DownEntry { seq: 3, event: DownEvent::BatchManifest(manifest) },
                DownEntry { seq: 4, event: DownEvent::BatchChunk(chunk.clone()) },
            ])
            .unwrap();
        let verified: bool = store.lock().query_row("SELECT verified FROM batches WHERE batch_id = 8", [], |r| r.get(0)).unwrap();
        assert!(verified);
        dial(&store, &[500, 502]);
        let recall = LeaseRecall { recall_id: 11, batch_id: 8, lease_id: Some(40) };
        store.apply_down_entries(&[DownEntry { seq: 5, event: DownEvent::LeaseRecall(recall.clone()) }]).unwrap();
        let returns: Vec<LeaseReturn> = outbox(&store)
            .into_iter()
            .filter_map(|e| match e {
                UpEvent::LeaseReturn(r) if r.batch_id == 8 => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(returns.len(), 1);
        assert_eq!(
            (returns[0].lease_id, returns[0].recall_id, returns[0].dialed.clone(), returns[0].returned.clone()),
            (40, Some(11), vec![500, 502], vec![501, 503, 504])
        );
        let undialed = |store: &Store| -> i64 {
            store.lock().query_row("SELECT COUNT(*) FROM batch_rows WHERE batch_id = 8 AND status = 'new'", [], |r| r.get(0)).unwrap()
        };
        assert_eq!(undialed(&store), 0, "nothing given back is dialable here");
        // HQ sends the chunk again, and the recall again: neither brings a number back.
        store
            .apply_down_entries(&[
                DownEntry { seq: 6, event: DownEvent::BatchChunk(chunk) },
                DownEntry { seq: 7, event: DownEvent::LeaseRecall(LeaseRecall { recall_id: 12, lease_id: None, ..recall }) },
            ])
            .unwrap();
        assert_eq!(undialed(&store), 0, "a resent chunk of a recovered batch is not stored");
        let kept: i64 = store.lock().query_row("SELECT COUNT(*) FROM batch_rows WHERE batch_id = 8", [], |r| r.get(0)).unwrap();
        assert_eq!(kept, 2, "the dialed rows stay");
        assert_eq!(outbox(&store).iter().filter(|e| matches!(e, UpEvent::LeaseReturn(r) if r.batch_id == 8)).count(), 1);
        assert!(!store.keep_leases(500).unwrap(), "a recovered batch asks for nothing");
    }
}
