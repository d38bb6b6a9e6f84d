//! The store's side of the link: applying down-log entries (projects, batch chunks and
//! manifests, controls and HQ's rules, each entry in the same transaction as the down cursor),
//! checking each batch against its manifest before it becomes dialable, the outbox, and
//! [`sync_link::SiteStore`] for [`Store`].

use std::sync::Arc;

use rusqlite::{Transaction, params};
use sync_link::{SiteStore, StoreResult};
use sync_protocol::{BatchChunk, BatchControl, BatchManifest, DownEntry, DownEvent, ProjectDef, UpEntry, UpEvent};
use tokio::sync::Notify;

use super::attribution::{allocate_by_hq_rules, apply_hq_rules};
use super::{DbError, Store, corrupt, hq, notices};

impl Store {
    /// Entries waiting in the outbox (not yet acknowledged by HQ).
    pub fn outbox_len(&self) -> Result<u64, DbError> {
        Ok(self.lock().query_row("SELECT COUNT(*) FROM outbox", [], |row| row.get(0))?)
    }

    /// The down-log position (last entry committed).
    pub fn down_applied(&self) -> Result<u64, DbError> {
        let applied: i64 = self
            .lock()
            .query_row("SELECT down_applied FROM sync_state WHERE id = 1", [], |row| row.get(0))?;
        Ok(applied as u64)
    }

    /// Applies one down-log entry (see [`SiteStore::apply_down`]).
    pub fn apply_down_entry(&self, entry: &DownEntry) -> Result<(), DbError> {
        self.apply_down_entries(std::slice::from_ref(entry))
    }

    /// Applies consecutive down-log entries in one transaction and moves the down cursor to
    /// the last (see [`SiteStore::apply_down_batch`]). Entries at or below the cursor are
    /// skipped. A run of batch chunks and manifests has each touched batch checked against
    /// its manifest once, when the run ends or before any other kind of entry (which may
    /// look at whether a batch is dialable): a million-row batch is hundreds of chunks,
    /// and checking it after each would read it hundreds of times.
    pub fn apply_down_entries(&self, entries: &[DownEntry]) -> Result<(), DbError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let applied: i64 =
            tx.query_row("SELECT down_applied FROM sync_state WHERE id = 1", [], |row| row.get(0))?;
        let applied = applied as u64;
        let heard_at = self.link_heard_at.load(std::sync::atomic::Ordering::Relaxed);
        let mut position = applied;
        let mut wrote_outbox = false;
        // Batches written by the current run of chunks and manifests, not yet checked.
        let mut unchecked: Vec<u64> = Vec::new();
        // The written-rows hashes of the batches this call touches, taken out of the store's
        // map and put back only once the transaction commits: a rolled-back write must not
        // leave a hash of rows that are not there.
        let mut kept = self.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut written: std::collections::HashMap<u64, Option<WrittenHash>> = std::collections::HashMap::new();
        let mut dialable: Vec<u64> = Vec::new();
        let check = |tx: &Transaction<'_>,
                     unchecked: &mut Vec<u64>,
                     written: &std::collections::HashMap<u64, Option<WrittenHash>>,
                     dialable: &mut Vec<u64>|
         -> Result<(), DbError> {
            for batch_id in unchecked.drain(..) {
                if verify_batch(tx, batch_id, written.get(&batch_id).and_then(Option::as_ref))? {
                    dialable.push(batch_id);
                }
            }
            Ok(())
        };
        for entry in entries {
            if entry.seq <= position {
                continue;
            }
            position = entry.seq;
            let batch_id = match &entry.event {
                DownEvent::BatchChunk(chunk) => Some(chunk.batch_id),
                DownEvent::BatchManifest(manifest) => Some(manifest.batch_id),
                _ => None,
            };
            if let Some(batch_id) = batch_id
                && super::leases::is_recovered(&tx, batch_id)?
            {
                continue;
            }
            match batch_id {
                Some(batch_id) => {
                    if !unchecked.contains(&batch_id) {
                        unchecked.push(batch_id);
                    }
                    written.entry(batch_id).or_insert_with(|| kept.remove(&batch_id));
                }
                None => check(&tx, &mut unchecked, &written, &mut dialable)?,
            }
            match &entry.event {
                DownEvent::Project(def) => apply_project(&tx, def)?,
                DownEvent::BatchChunk(chunk) => {
                    if let Some(state) = written.get_mut(&chunk.batch_id) {
                        *state = WrittenHash::follow(&tx, state.take(), chunk)?;
                    }
                    apply_chunk(&tx, chunk)?
                }
                DownEvent::BatchManifest(manifest) => apply_manifest(&tx, manifest)?,
                DownEvent::BatchControl(control) => {
                    let applied = apply_control(&tx, control)?;
                    hq::report_control(&tx, sync_protocol::ControlTarget::Batch(control.batch_id), control.version, applied, heard_at)?;
                    wrote_outbox = true;
                }
                DownEvent::AttributionRules(rules) => apply_hq_rules(&tx, rules)?,
                DownEvent::BlackList(change) => hq::apply_blacklist(&tx, change)?,
                DownEvent::PhoneList(change) => hq::apply_phone_list(&tx, change)?,
                DownEvent::ProjectSettings(settings) => hq::apply_project_settings(&tx, settings)?,
                DownEvent::LinkSettings(settings) => hq::apply_link_settings(&tx, settings)?,
                DownEvent::RecordingRetention(retention) => super::retention::apply_recording_retention(&tx, retention)?,
                DownEvent::ProjectControl(control) => {
                    hq::apply_project_control(&tx, control, heard_at)?;
                    wrote_outbox = true;
                }
                DownEvent::OneClick(control) => {
                    hq::apply_one_click(&tx, control, heard_at)?;
                    wrote_outbox = true;
                }
                DownEvent::VoiceFile(voice) => notices::apply_voice_file(&tx, voice)?,
                DownEvent::Announcement(notice) => notices::apply_announcement(&tx, notice)?,
                DownEvent::ReportDefinitions { project_id, version, defs } => {
                    super::reports::apply_report_definitions(&tx, *project_id, *version, defs)?
                }
                DownEvent::SiteProfile(profile) => hq::apply_site_profile(&tx, profile)?,
                DownEvent::LeaseGrant(grant) => super::leases::apply_grant(&tx, grant, super::now_unix())?,
                DownEvent::LeaseRecall(recall) => wrote_outbox |= super::leases::apply_recall(&tx, recall, super::now_unix())?,
                DownEvent::ListColumns(columns) => super::list_columns::apply_list_columns(&tx, columns)?,
                other => {
                    // A newer hub sent something this build does not know; skipping it keeps the
                    // link moving, and the log line tells the technician to upgrade.
                    tracing::warn!(seq = entry.seq, event = ?other, "unknown down event skipped; upgrade the appliance");
                }
            }
        }
        if position == applied {
            return Ok(());
        }
        check(&tx, &mut unchecked, &written, &mut dialable)?;
        for &batch_id in &dialable {
            // HQ's attribution rules give the arrived rows to their agents (unless the site
            // keeps rules of its own for the project, which its admin applies).
            allocate_by_hq_rules(&tx, batch_id)?;
        }
        tx.execute(
            "UPDATE sync_state SET down_applied = ?1, heard_at = ?2 WHERE id = 1",
            params![position as i64, heard_at],
        )?;
        tx.commit()?;
        // A batch that checked out needs its hash no more; the others keep following.
        for (batch_id, state) in written {
            if let Some(state) = state
                && !dialable.contains(&batch_id)
            {
                kept.insert(batch_id, state);
            }
        }
        drop(kept);
        if wrote_outbox {
            self.notify.notify_one();
        }
        Ok(())
    }

    fn outbox_entries(&self, after_seq: u64, limit: usize) -> Result<Vec<UpEntry>, DbError> {
        let conn = self.lock();
        let mut statement =
            conn.prepare("SELECT seq, payload FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let mut rows = statement.query(params![after_seq as i64, limit as i64])?;
        let mut entries = Vec::new();
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let payload: Vec<u8> = row.get(1)?;
            let event: UpEvent =
                postcard::from_bytes(&payload).map_err(|e| corrupt("outbox entry", e))?;
            entries.push(UpEntry { epoch: self.epoch, seq: seq as u64, event });
        }
        Ok(entries)
    }

    fn drop_acked(&self, epoch: u64, seq: u64) -> Result<(), DbError> {
        if epoch != self.epoch {
            // An acknowledgement for another epoch says nothing about this outbox.
            tracing::warn!(epoch, ours = self.epoch, "outbox acknowledgement for a foreign epoch ignored");
            return Ok(());
        }
        self.lock().execute("DELETE FROM outbox WHERE seq <= ?1", [seq as i64])?;
        Ok(())
    }
}

fn apply_project(tx: &Transaction<'_>, def: &ProjectDef) -> Result<(), DbError> {
    let bytes = postcard::to_stdvec(def).map_err(|e| corrupt("project definition", e))?;
    tx.execute(
        "INSERT INTO projects (project_id, version, def) VALUES (?1, ?2, ?3)
         ON CONFLICT (project_id) DO UPDATE SET version = excluded.version, def = excluded.def
         WHERE excluded.version > projects.version",
        params![def.project_id, def.version as i64, bytes],
    )?;
    Ok(())
}

fn ensure_batch(tx: &Transaction<'_>, batch_id: u64) -> Result<(), DbError> {
    tx.execute("INSERT OR IGNORE INTO batches (batch_id) VALUES (?1)", [batch_id])?;
    Ok(())
}

/// Rows one `INSERT` of a chunk carries (six parameters each, far below SQLite's limit).
const ROWS_PER_INSERT: usize = 50;

/// Inserts (or replaces) `n` rows of a chunk; see [`apply_chunk`].
fn upsert_rows_sql(n: usize) -> String {
    let values = vec!["(?, ?, ?, ?, ?, ?)"; n].join(", ");
    format!(
        "INSERT INTO batch_rows (batch_id, chunk_idx, row_idx, row_id, phone, fields)
         VALUES {values}
         ON CONFLICT (batch_id, chunk_idx, row_idx) DO UPDATE
         SET status = CASE WHEN batch_rows.row_id = excluded.row_id
                           THEN batch_rows.status ELSE 'new' END,
             row_id = excluded.row_id, phone = excluded.phone, fields = excluded.fields"
    )
}

static UPSERT_ROWS_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| upsert_rows_sql(ROWS_PER_INSERT));
static UPSERT_ONE_ROW_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| upsert_rows_sql(1));

fn apply_chunk(tx: &Transaction<'_>, chunk: &BatchChunk) -> Result<(), DbError> {
    ensure_batch(tx, chunk.batch_id)?;
    // A re-sent chunk replaces the earlier copy; a row whose id did not change keeps its
    // dialing status so that a resend never makes a dialed number dialable again.
    // Statements carrying ROWS_PER_INSERT rows each (prepared once per connection, then
    // cached) and one encoding buffer reused across rows: at 2,000 rows a chunk,
    // re-preparing the SQL and allocating a fresh buffer for each row was most of the
    // apply time, and then running one statement per row was a third of what remained.
    let mut upsert = tx.prepare_cached(&UPSERT_ROWS_SQL)?;
    let mut upsert_one = tx.prepare_cached(&UPSERT_ONE_ROW_SQL)?;
    let batch_id = chunk.batch_id as i64;
    let chunk_idx = i64::from(chunk.chunk_idx);
    let mut fields = Vec::with_capacity(256);
    let mut bind = |statement: &mut rusqlite::CachedStatement<'_>, slot: usize, row_idx: usize, row: &sync_protocol::CustomerRow| {
        fields.clear();
        fields = postcard::to_extend(&row.fields, std::mem::take(&mut fields)).map_err(|e| corrupt("customer row", e))?;
        let first = slot * 6;
        statement.raw_bind_parameter(first + 1, batch_id)?;
        statement.raw_bind_parameter(first + 2, chunk_idx)?;
        statement.raw_bind_parameter(first + 3, row_idx as i64)?;
        statement.raw_bind_parameter(first + 4, row.row_id as i64)?;
        statement.raw_bind_parameter(first + 5, row.phone.as_str())?;
        // Blobs are bound as copies (SQLITE_TRANSIENT), so the buffer can be reused.
        statement.raw_bind_parameter(first + 6, fields.as_slice())?;
        Ok::<(), DbError>(())
    };
    let mut blocks = chunk.rows.chunks_exact(ROWS_PER_INSERT);
    for (block_idx, block) in blocks.by_ref().enumerate() {
        for (slot, row) in block.iter().enumerate() {
            bind(&mut upsert, slot, block_idx * ROWS_PER_INSERT + slot, row)?;
        }
        upsert.raw_execute()?;
    }
    let done = chunk.rows.len() - blocks.remainder().len();
    for (offset, row) in blocks.remainder().iter().enumerate() {
        bind(&mut upsert_one, 0, done + offset, row)?;
        upsert_one.raw_execute()?;
    }
    drop(upsert_one);
    drop(upsert);
    tx.execute(
        "DELETE FROM batch_rows WHERE batch_id = ?1 AND chunk_idx = ?2 AND row_idx >= ?3",
        params![chunk.batch_id, chunk.chunk_idx, chunk.rows.len() as u32],
    )?;
    // Checked against the manifest by the caller, once per run of chunks.
    Ok(())
}

fn apply_manifest(tx: &Transaction<'_>, manifest: &BatchManifest) -> Result<(), DbError> {
    ensure_batch(tx, manifest.batch_id)?;
    tx.execute(
        "UPDATE batches SET project_id = ?2, name = ?3, manifest_priority = ?4, imported_at = ?5,
                n_rows = ?6, n_chunks = ?7, rows_hash = ?8
         WHERE batch_id = ?1",
        params![
            manifest.batch_id,
            manifest.project_id,
            manifest.name,
            manifest.priority,
            manifest.imported_at,
            manifest.n_rows as i64,
            manifest.n_chunks,
            manifest.rows_hash.to_vec(),
        ],
    )?;
    // Checked against the stored rows by the caller, once per run of chunks.
    Ok(())
}

/// [`rows_hash`] fed one row at a time from borrowed parts: the same length-prefixed
/// SHA-256 (a test holds the two equal), without building a `CustomerRow` per row.
#[derive(Default, Clone)]
struct RowsHasher(sha2::Sha256);

impl RowsHasher {
    fn put(&mut self, bytes: &[u8]) {
        use sha2::Digest;
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }

    fn row<'a>(&mut self, row_id: u64, phone: &str, fields: impl IntoIterator<Item = (&'a str, &'a str)>) {
        self.put(&row_id.to_le_bytes());
        self.put(phone.as_bytes());
        for (key, value) in fields {
            self.put(key.as_bytes());
            self.put(value.as_bytes());
        }
    }

    fn finish(self) -> [u8; 32] {
        use sha2::Digest;
        self.0.finalize().into()
    }
}

/// A batch's rows hashed as they were written, so the manifest check need not read a
/// million rows back.
///
/// It holds only while the batch's stored rows are exactly the rows of chunks
/// `0..next_chunk`, each written once, in order, into a batch that held no rows, by the
/// same transactions that hashed them (the store keeps it only after they commit). Any
/// other write breaks the chain ([`WrittenHash::follow`] answers `None`) and the batch is
/// checked by reading its rows back, as after a restart. Dialing and ownership change a
/// row's status and owner, which the hash does not cover; nothing else writes the rows.
#[derive(Clone, Default)]
pub(super) struct WrittenHash {
    next_chunk: u32,
    rows: i64,
    hasher: RowsHasher,
}

impl WrittenHash {
    /// The state after `chunk` is written (call before writing it): the chain goes on if
    /// this is the next chunk, starts at chunk 0 of a batch holding no rows, and breaks
    /// otherwise.
    fn follow(tx: &Transaction<'_>, state: Option<WrittenHash>, chunk: &BatchChunk) -> Result<Option<WrittenHash>, DbError> {
        let mut state = match state {
            Some(state) if chunk.chunk_idx > 0 && state.next_chunk == chunk.chunk_idx => state,
            _ if chunk.chunk_idx == 0 => {
                let holds_rows: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM batch_rows WHERE batch_id = ?1)",
                    [chunk.batch_id],
                    |row| row.get(0),
                )?;
                if holds_rows {
                    return Ok(None);
                }
                WrittenHash::default()
            }
            _ => return Ok(None),
        };
        for row in &chunk.rows {
            state.hasher.row(row.row_id, &row.phone, row.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        state.rows += chunk.rows.len() as i64;
        state.next_chunk += 1;
        Ok(Some(state))
    }
}

/// Marks the batch dialable if its stored rows match its manifest, or records why not;
/// answers whether it is dialable. `written` is the batch's rows hashed as they were
/// written, if the chain held (see [`WrittenHash`]); without it the rows are read back.
fn verify_batch(tx: &Transaction<'_>, batch_id: u64, written: Option<&WrittenHash>) -> Result<bool, DbError> {
    let (n_rows, n_chunks, expected_hash): (Option<i64>, Option<u32>, Option<Vec<u8>>) = tx
        .query_row(
            "SELECT n_rows, n_chunks, rows_hash FROM batches WHERE batch_id = ?1",
            [batch_id],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?;
    let (Some(n_rows), Some(n_chunks), Some(expected_hash)) = (n_rows, n_chunks, expected_hash)
    else {
        return Ok(false); // no manifest yet: stays not dialable
    };
    let (n_stored, max_chunk, hash) = match written {
        Some(written) => (written.rows, written.next_chunk.checked_sub(1), written.hasher.clone().finish()),
        None => read_back(tx, batch_id)?,
    };
    let problem = if n_stored != n_rows {
        Some(format!("batch {batch_id}: manifest says {n_rows} rows, {n_stored} received so far"))
    } else if max_chunk.is_some_and(|m| m >= n_chunks) {
        Some(format!("batch {batch_id}: a chunk index is beyond the manifest's {n_chunks} chunks"))
    } else if hash.as_slice() != expected_hash.as_slice() {
        Some(format!(
            "batch {batch_id}: rows hash does not match the manifest; HQ must re-send the batch"
        ))
    } else {
        None
    };
    match &problem {
        Some(reason) => tracing::warn!(batch_id, %reason, "batch not dialable"),
        None => tracing::info!(batch_id, n_rows, "batch verified and dialable"),
    }
    tx.execute(
        "UPDATE batches SET verified = ?2, verify_error = ?3 WHERE batch_id = ?1",
        params![batch_id, problem.is_none(), problem],
    )?;
    Ok(problem.is_none())
}

/// The batch's stored rows: how many, the highest chunk index, and their [`rows_hash`].
fn read_back(tx: &Transaction<'_>, batch_id: u64) -> Result<(i64, Option<u32>, [u8; 32]), DbError> {
    // One pass over the stored rows, hashed as they stream by: each row's fields are read
    // borrowed from the stored bytes, never built into owned rows, so checking a batch of
    // a million rows costs no more memory than one row.
    let mut statement = tx.prepare(
        "SELECT chunk_idx, row_id, phone, fields FROM batch_rows WHERE batch_id = ?1
         ORDER BY chunk_idx, row_idx",
    )?;
    let mut rows = statement.query([batch_id])?;
    let mut hasher = RowsHasher::default();
    let mut n_stored: i64 = 0;
    let mut max_chunk: Option<u32> = None;
    while let Some(row) = rows.next()? {
        let chunk_idx: u32 = row.get(0)?;
        max_chunk = Some(max_chunk.map_or(chunk_idx, |m| m.max(chunk_idx)));
        let row_id: i64 = row.get(1)?;
        let phone = row.get_ref(2)?.as_str().map_err(|e| corrupt("customer row", e))?;
        let blob = row.get_ref(3)?.as_blob().map_err(|e| corrupt("customer row", e))?;
        let fields: Vec<(&str, &str)> = postcard::from_bytes(blob).map_err(|e| corrupt("customer row", e))?;
        hasher.row(row_id as u64, phone, fields.iter().copied());
        n_stored += 1;
    }
    Ok((n_stored, max_chunk, hasher.finish()))
}

/// Applies a batch control if it is newer than the last; returns whether it was.
fn apply_control(tx: &Transaction<'_>, control: &BatchControl) -> Result<bool, DbError> {
    ensure_batch(tx, control.batch_id)?;
    let changed = tx.execute(
        "UPDATE batches SET control_version = ?2, control_priority = ?3
         WHERE batch_id = ?1 AND (control_version IS NULL OR control_version < ?2)",
        params![control.batch_id, control.version as i64, control.priority],
    )?;
    Ok(changed > 0)
}

fn link_error(error: DbError) -> sync_link::StoreError {
    sync_link::StoreError::Other(error.to_string())
}

impl SiteStore for Store {
    fn sync_position(&self) -> StoreResult<(u64, u64)> {
        Ok((self.epoch, self.down_applied().map_err(link_error)?))
    }

    fn outbox_after(&self, after_seq: u64, limit: usize) -> StoreResult<Vec<UpEntry>> {
        self.outbox_entries(after_seq, limit).map_err(link_error)
    }

    fn outbox_acked(&self, epoch: u64, seq: u64) -> StoreResult<()> {
        self.drop_acked(epoch, seq).map_err(link_error)
    }

    fn hub_position(&self, epoch: u64, up_committed: Option<u64>) -> StoreResult<()> {
        if epoch != self.epoch {
            return Ok(());
        }
        self.realign_after_restore(up_committed).map_err(link_error)
    }

    fn apply_down(&self, entry: &DownEntry) -> StoreResult<()> {
        self.apply_down_entry(entry).map_err(link_error)
    }

    fn apply_down_batch(&self, entries: &[DownEntry]) -> StoreResult<()> {
        self.apply_down_entries(entries).map_err(link_error)
    }

    fn outbox_notify(&self) -> Arc<Notify> {
        self.notify.clone()
    }

    fn pending_recordings(&self, limit: usize) -> StoreResult<Vec<sync_link::blob::BlobRef>> {
        self.recordings_to_upload(limit).map_err(link_error)
    }

    fn open_recording(&self, sha256: &[u8; 32]) -> StoreResult<Option<sync_link::blob::OpenBlob>> {
        self.open_recording_file(sha256).map_err(link_error)
    }

    fn recording_uploaded(&self, sha256: &[u8; 32]) -> StoreResult<()> {
        self.mark_recording_uploaded(sha256).map_err(link_error)
    }

    fn voice_held(&self, sha256: &[u8; 32]) -> StoreResult<u64> {
        self.voice_held_bytes(sha256).map_err(|error| sync_link::StoreError::Other(error.to_string()))
    }

    fn voice_append(&self, sha256: &[u8; 32], offset: u64, bytes: &[u8]) -> StoreResult<()> {
        self.voice_append_bytes(sha256, offset, bytes).map_err(|error| sync_link::StoreError::Other(error.to_string()))
    }

    fn voice_finish(&self, sha256: &[u8; 32]) -> StoreResult<sync_link::blob::BlobCheck> {
        self.voice_finish_bytes(sha256).map_err(|error| sync_link::StoreError::Other(error.to_string()))
    }

    fn link_settings(&self) -> StoreResult<Option<sync_protocol::LinkSettings>> {
        self.stored_link_settings().map_err(link_error)
    }

    fn live_figures(&self) -> StoreResult<Option<sync_protocol::LiveFigures>> {
        // Polled every 500 ms, only while the session is up: its rhythm tells when HQ
        // was last known to be there (see `Store::heard_from_link`).
        self.heard_from_link();
        self.figures_now().map(Some).map_err(link_error)
    }

    fn site_live(&self) -> StoreResult<Option<sync_protocol::SiteLive>> {
        self.site_live_now().map(Some).map_err(link_error)
    }
}

#[cfg(test)]
mod tests {
    use sync_protocol::{CustomerRow, rows_hash};

    use super::*;

    #[test]
    fn streaming_rows_hash_equals_the_protocols() {
        let rows: Vec<CustomerRow> = (0..50u64)
            .map(|i| CustomerRow {
                row_id: i * 7 + 1,
                phone: format!("1380013{i:04}"),
                fields: (0..(i % 4)).map(|f| (format!("k{f}"), format!("值{i}-{f}"))).collect(),
            })
            .collect();
        let mut hasher = RowsHasher::default();
        for row in &rows {
            let fields: Vec<(&str, &str)> = row.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            hasher.row(row.row_id, &row.phone, fields.iter().copied());
        }
        assert_eq!(hasher.finish(), rows_hash(&rows));
    }

    fn test_rows(n: u64) -> Vec<CustomerRow> {
        (1..=n)
            .map(|i| CustomerRow {
                row_id: i,
                phone: format!("1380013{i:04}"),
                fields: vec![("name".to_owned(), format!("客户{i}")), ("city".to_owned(), "上海".to_owned())],
            })
            .collect()
    }

    /// The batch's chunks (`per` rows each) at seqs from `first_seq`, then its manifest.
    fn batch(first_seq: u64, batch_id: u64, rows: &[CustomerRow], per: usize) -> Vec<DownEntry> {
        let mut events: Vec<DownEvent> = rows
            .chunks(per)
            .enumerate()
            .map(|(idx, chunk)| {
                DownEvent::BatchChunk(BatchChunk { batch_id, chunk_idx: idx as u32, rows: chunk.to_vec() })
            })
            .collect();
        events.push(DownEvent::BatchManifest(BatchManifest {
            batch_id,
            project_id: 1,
            name: format!("batch {batch_id}"),
            priority: 50,
            imported_at: 1,
            n_rows: rows.len() as u64,
            n_chunks: rows.len().div_ceil(per) as u32,
            rows_hash: rows_hash(rows),
        }));
        events.into_iter().enumerate().map(|(i, event)| DownEntry { seq: first_seq + i as u64, event }).collect()
    }

    /// (verified, verify_error, stored rows) of a batch.
    fn batch_state(store: &Store, batch_id: u64) -> (bool, Option<String>, i64) {
        store
            .lock()
            .query_row(
                "SELECT verified, verify_error, (SELECT COUNT(*) FROM batch_rows WHERE batch_id = ?1)
                 FROM batches WHERE batch_id = ?1",
                [batch_id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .expect("batch state")
    }

    fn following(store: &Store, batch_id: u64) -> Option<u32> {
        store.written.lock().expect("written").get(&batch_id).map(|state| state.next_chunk)
    }

    #[test]
    fn a_run_of_entries_commits_in_one_call_and_replays_as_a_no_op() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let rows = test_rows(10);
        let entries = batch(1, 7, &rows, 3); // 4 chunks and the manifest: seqs 1..=5
        store.apply_down_batch(&entries[..2]).expect("first run");
        assert_eq!(store.down_applied().expect("position"), 2);
        assert_eq!(following(&store, 7), Some(2), "the chain follows the chunks as written");
        assert!(!batch_state(&store, 7).0);
        store.apply_down_batch(&entries[2..]).expect("second run");
        assert_eq!(store.down_applied().expect("position"), 5);
        assert_eq!(batch_state(&store, 7), (true, None, 10));
        assert_eq!(following(&store, 7), None, "a checked batch needs its hash no more");
        // The whole log again, in one call and one by one: nothing changes, the cursor stays.
        store.apply_down_batch(&entries).expect("replay");
        for entry in &entries {
            store.apply_down(entry).expect("replay one");
        }
        assert_eq!(store.down_applied().expect("position"), 5);
        assert_eq!(batch_state(&store, 7), (true, None, 10));
    }

    #[test]
    fn rows_hashed_as_written_catch_a_row_changed_in_transit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let rows = test_rows(6);
        let mut entries = batch(1, 8, &rows, 2);
        if let DownEvent::BatchChunk(chunk) = &mut entries[1].event {
            chunk.rows[1].fields[0].1 = "someone else".to_owned();
        }
        store.apply_down_batch(&entries).expect("apply");
        let (verified, problem, stored) = batch_state(&store, 8);
        assert!(!verified);
        assert!(problem.unwrap_or_default().contains("hash"));
        assert_eq!(stored, 6);
        assert_eq!(following(&store, 8), Some(3), "checked against the rows as written, and kept");
        // HQ re-sends the chunk: the chain is broken (chunk 1 again), so the batch is read
        // back, and now it checks out.
        let resent = DownEntry { seq: 10, event: DownEvent::BatchChunk(BatchChunk { batch_id: 8, chunk_idx: 1, rows: rows[2..4].to_vec() }) };
        store.apply_down_batch(std::slice::from_ref(&resent)).expect("resend");
        assert_eq!(following(&store, 8), None);
        assert_eq!(batch_state(&store, 8), (true, None, 6));
    }

    #[test]
    fn a_broken_chain_falls_back_to_reading_the_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rows = test_rows(9);
        // A restart halfway: the chain is lost with the process, the rest is read back.
        let entries = batch(1, 9, &rows, 3);
        {
            let store = Store::open(dir.path()).expect("open");
            store.apply_down_batch(&entries[..2]).expect("before the restart");
        }
        let store = Store::open(dir.path()).expect("reopen");
        store.apply_down_batch(&entries[2..]).expect("after the restart");
        assert_eq!(following(&store, 9), None);
        assert_eq!(batch_state(&store, 9), (true, None, 9));

        // Chunks out of order: read back, and the batch still checks out.
        let mut shuffled = batch(100, 10, &rows, 3);
        shuffled.swap(0, 1);
        for (i, entry) in shuffled.iter_mut().enumerate() {
            entry.seq = 100 + i as u64;
        }
        store.apply_down_batch(&shuffled).expect("shuffled");
        assert_eq!(batch_state(&store, 10), (true, None, 9));

        // A batch sent again with fewer chunks into rows already held: the chain does not
        // start (chunk 0 into a batch with rows), so the leftover chunk is counted.
        let shorter = test_rows(6);
        let again = batch(200, 10, &shorter, 3);
        store.apply_down_batch(&again).expect("again");
        let (verified, problem, stored) = batch_state(&store, 10);
        assert!(!verified, "{problem:?}");
        assert_eq!(stored, 9);
        assert!(problem.unwrap_or_default().contains("6 rows"));
    }

    #[test]
    fn rows_inserted_many_to_a_statement_read_back_whole_and_a_resend_keeps_their_status() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        // Two full statements and 20 rows one by one.
        let mut rows = test_rows(2 * ROWS_PER_INSERT as u64 + 20);
        let entries = batch(1, 12, &rows, rows.len());
        store.apply_down_batch(&entries).expect("apply");
        assert_eq!(batch_state(&store, 12), (true, None, rows.len() as i64));
        {
            let mut conn = store.lock();
            let tx = conn.transaction().expect("tx");
            let (n, max_chunk, hash) = read_back(&tx, 12).expect("read back");
            assert_eq!((n, max_chunk, hash), (rows.len() as i64, Some(0), rows_hash(&rows)));
            tx.execute("UPDATE batch_rows SET status = 'dialing' WHERE batch_id = 12 AND row_idx IN (55, 110)", [])
                .expect("dial");
            tx.commit().expect("commit");
        }
        // The same chunk again keeps what was dialed; a row whose id changed is new again.
        rows[110].row_id = 9_999;
        let resent = DownEntry { seq: 10, event: DownEvent::BatchChunk(BatchChunk { batch_id: 12, chunk_idx: 0, rows: rows.clone() }) };
        store.apply_down_batch(std::slice::from_ref(&resent)).expect("resend");
        let status = |row_idx: i64| -> String {
            store
                .lock()
                .query_row("SELECT status FROM batch_rows WHERE batch_id = 12 AND row_idx = ?1", [row_idx], |row| row.get(0))
                .expect("status")
        };
        assert_eq!(status(55), "dialing");
        assert_eq!(status(110), "new");
        let (verified, problem, stored) = batch_state(&store, 12);
        assert!(!verified && problem.unwrap_or_default().contains("hash"), "row 110 no longer matches the manifest");
        assert_eq!(stored, rows.len() as i64);
    }

    #[test]
    fn a_batch_is_checked_before_a_later_entry_in_the_same_run_looks_at_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let rows = test_rows(4);
        let mut entries = batch(1, 11, &rows, 2);
        // A one-click start starts only dialable batches: in the same run as the batch, it
        // must see the batch already checked against its manifest.
        entries.push(DownEntry {
            seq: 4,
            event: DownEvent::OneClick(sync_protocol::OneClickControl {
                scope: sync_protocol::ControlScope::Batch(11),
                version: 1,
                start: true,
            }),
        });
        store.apply_down_batch(&entries).expect("apply");
        assert_eq!(batch_state(&store, 11), (true, None, 4));
        let running: bool = store
            .lock()
            .query_row("SELECT running FROM batches WHERE batch_id = 11", [], |row| row.get(0))
            .expect("running");
        assert!(running, "the start saw the batch dialable");
        assert_eq!(store.down_applied().expect("position"), 4);
    }
}
