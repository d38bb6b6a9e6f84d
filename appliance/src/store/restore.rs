//! A store restored from a backup, and how it finds its place again at HQ.
//!
//! A backup is a snapshot of a running box. After it, the box went on: it numbered more
//! outbox entries, attempts and callbacks, and HQ received them. A store restored from the
//! snapshot keeps its epoch (drawn once, when the store was created), so without care it
//! would number its next entries with seqs HQ already holds for other events, and its next
//! attempts and callbacks with ids HQ already keys other calls by. So:
//!
//! - [`mark_restored`] (run by `appliance restore` on the copied file) records where the
//!   outbox stood in the backup (`sync_state.restored_outbox_seq`, migration 14) and moves
//!   the attempt and callback numbering [`ID_GAP`] ahead: HQ keys attempts by the site's
//!   id alone and callbacks by (epoch, id), and an id the box used after the backup is gone
//!   from the snapshot.
//! - At the first hello after the restore, HQ answers with the highest outbox seq it holds
//!   ([`Store::realign_after_restore`]). If that is past the backup's, the backup's own
//!   entries are all at HQ (the box sent them before it failed) and are dropped, and those
//!   written since the restore are renumbered after HQ's (a customer edit's id, which is its
//!   seq, with them). Then the mark goes. HQ meanwhile sees the site's down position behind
//!   what it had acknowledged, raises the rollback alarm and sends the down log after it
//!   again, which the restored store lacks and applies once.

use rusqlite::{Connection, OptionalExtension, params};
use sync_protocol::UpEvent;

use super::{DbError, Store, corrupt};

/// How far a restore moves the attempt and callback numbering ahead: more than a box dials
/// between a backup and its restore (at 100,000 calls a day, 27 years).
pub const ID_GAP: i64 = 1_000_000_000;

/// Marks a just-restored database (already migrated): see the module doc. Returns the
/// outbox seq the backup stood at.
pub fn mark_restored(conn: &mut Connection) -> Result<i64, DbError> {
    let tx = conn.transaction()?;
    let at: i64 = tx.query_row(
        "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0)",
        [],
        |r| r.get(0),
    )?;
    tx.execute("UPDATE sync_state SET restored_outbox_seq = ?1 WHERE id = 1", [at])?;
    for table in ["attempts", "callbacks"] {
        let moved = tx.execute("UPDATE sqlite_sequence SET seq = seq + ?1 WHERE name = ?2", params![ID_GAP, table])?;
        if moved == 0 {
            tx.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?1, ?2)", params![table, ID_GAP])?;
        }
    }
    tx.commit()?;
    Ok(at)
}

impl Store {
    /// HQ holds this epoch's outbox up to `up_committed`: if the store was restored and HQ
    /// holds more than the backup did, drop the backup's entries and renumber the rest
    /// after HQ's (see the module doc). Nothing for a store that was not restored.
    pub(super) fn realign_after_restore(&self, up_committed: Option<u64>) -> Result<(), DbError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let mark: Option<i64> = tx
            .query_row("SELECT restored_outbox_seq FROM sync_state WHERE id = 1", [], |r| r.get(0))
            .optional()?
            .flatten();
        let Some(at_backup) = mark else { return Ok(()) };
        let held = up_committed.map_or(0, |seq| seq as i64);
        if held > at_backup {
            let shift = held - at_backup;
            let since_restore: Vec<(i64, Vec<u8>)> = tx
                .prepare("SELECT seq, payload FROM outbox WHERE seq > ?1 ORDER BY seq DESC")?
                .query_map([at_backup], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            // Newest first, so a seq is free when an entry moves onto it.
            for (seq, payload) in &since_restore {
                let mut event: UpEvent = postcard::from_bytes(payload).map_err(|e| corrupt("outbox entry", e))?;
                if let UpEvent::CustomerEdit(edit) = &mut event
                    && edit.edit_id == *seq as u64
                {
                    edit.edit_id += shift as u64;
                }
                let payload = postcard::to_stdvec(&event).map_err(|e| corrupt("outbox entry", e))?;
                tx.execute("UPDATE outbox SET seq = ?1, payload = ?2 WHERE seq = ?3", params![seq + shift, payload, seq])?;
            }
            tx.execute("DELETE FROM outbox WHERE seq <= ?1", [at_backup])?;
            tx.execute("UPDATE sqlite_sequence SET seq = seq + ?1 WHERE name = 'outbox'", [shift])?;
            tracing::warn!(
                backup_at = at_backup,
                hq_holds = held,
                renumbered = since_restore.len(),
                "restored from a backup: HQ holds outbox entries this store lost; what was written since the restore follows them"
            );
        }
        tx.execute("UPDATE sync_state SET restored_outbox_seq = NULL WHERE id = 1", [])?;
        tx.commit()?;
        Ok(())
    }
}
