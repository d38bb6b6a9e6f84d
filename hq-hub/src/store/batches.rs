//! Batches (下发任务): dispatching an imported file to sites, the task list's figures, and
//! the business records sites sent back.
//!
//! A shared batch (共享批次) sent to N sites becomes N batches, one per site, each with its
//! own hub-wide row ids, so that every attempt and record a site reports names exactly one
//! batch and one row. Dispatch appends, per site and in one transaction: the project's
//! definition (only if that site has not been sent this version), the rows in chunks of at
//! most [`CHUNK_ROWS`], and a manifest carrying the count and `rows_hash` of all rows.

use std::collections::BTreeSet;

use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;
use sync_protocol::{BatchChunk, BatchManifest, CustomerRow, DownEvent};

use super::projects::load_project;
use super::{now_unix, DbError, Store};

/// Most rows in one [`BatchChunk`] (well under the frame size cap).
pub const CHUNK_ROWS: usize = 2000;

/// What HQ asks for when dispatching a file.
#[derive(Debug, Clone)]
pub struct DispatchRequest {
    pub file_id: i64,
    pub name: String,
    /// 1..=100 (1 = paused; 0 would end the batch before it started, so it is refused).
    pub priority: i64,
    pub site_ids: Vec<i64>,
    /// The dispatching account (下发账号).
    pub creator: String,
}

/// Failure to dispatch.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// No file with this id.
    #[error("file {0} does not exist: upload it first")]
    UnknownFile(i64),
    /// The batch name is empty.
    #[error("batch name is empty: give the batch a name")]
    EmptyName,
    /// Priority outside 1..=100.
    #[error("priority {0} is out of range: use 1 (paused) to 100 (highest)")]
    Priority(i64),
    /// No site was chosen.
    #[error("no site chosen: pick at least one site to dispatch to")]
    NoSites,
    /// A chosen site does not exist.
    #[error("site {0} does not exist: choose an existing site")]
    UnknownSite(i64),
    /// The file has no good rows.
    #[error("file {0} has no valid rows to dispatch: fix the rows in its import report and upload it again")]
    NoRows(i64),
    /// A down-log event could not be encoded (a bug).
    #[error("cannot encode a down-log event: {0}")]
    Encode(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for DispatchError {
    fn from(e: rusqlite::Error) -> Self {
        DispatchError::Db(DbError(e))
    }
}

/// One line of the task list (下发任务管理).
#[derive(Debug, Clone, Serialize)]
pub struct BatchSummary {
    pub id: i64,
    pub name: String,
    pub project_id: i64,
    pub project_name: String,
    pub site_id: i64,
    pub site_name: String,
    /// 号码总数
    pub numbers: i64,
    /// 呼出量: dial attempts reported.
    pub dialed: i64,
    /// 接通量: attempts the customer answered.
    pub connected: i64,
    /// 坐席未接量: attempts offered to an agent who did not take them.
    pub agent_missed: i64,
    /// 坐席接通量: attempts an agent talked on.
    pub agent_connected: i64,
    pub priority: i64,
    pub creator: String,
    pub created_at: i64,
}

impl BatchSummary {
    /// 未接量: dialed but not answered.
    pub fn not_connected(&self) -> i64 {
        self.dialed - self.connected
    }
}

/// A business record as shown to HQ (phone already masked if the project says so).
#[derive(Debug, Clone, Serialize)]
pub struct RecordView {
    pub site_id: i64,
    pub attempt_id: i64,
    pub row_id: i64,
    pub phone: String,
    pub agent: String,
    pub saved_at: i64,
    pub values: Vec<(String, String)>,
}

/// Appends one event to `site_id`'s down log and returns its seq.
pub(super) fn append_down(tx: &Transaction<'_>, site_id: i64, event: &DownEvent) -> Result<i64, DispatchError> {
    let seq: i64 = tx.query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM down_log WHERE site_id = ?1", [site_id], |r| r.get(0))?;
    let json = serde_json::to_string(event).map_err(|e| DispatchError::Encode(e.to_string()))?;
    tx.execute(
        "INSERT INTO down_log (site_id, seq, event, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![site_id, seq, json, now_unix()],
    )?;
    Ok(seq)
}

impl Store {
    /// Dispatches a file as a shared batch: one batch per chosen site. Returns the batch ids,
    /// in the order of the (deduplicated) sites.
    pub fn dispatch(&self, request: &DispatchRequest) -> Result<Vec<i64>, DispatchError> {
        let name = request.name.trim();
        if name.is_empty() {
            return Err(DispatchError::EmptyName);
        }
        if !(1..=100).contains(&request.priority) {
            return Err(DispatchError::Priority(request.priority));
        }
        let priority = request.priority as u8; // in 1..=100, checked above
        let mut seen = BTreeSet::new();
        let site_ids: Vec<i64> = request.site_ids.iter().copied().filter(|id| seen.insert(*id)).collect();
        if site_ids.is_empty() {
            return Err(DispatchError::NoSites);
        }

        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let file: Option<(i64, i64)> = tx
            .query_row("SELECT project_id, created_at FROM files WHERE id = ?1", [request.file_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let Some((project_id, imported_at)) = file else {
            return Err(DispatchError::UnknownFile(request.file_id));
        };
        let project = load_project(&tx, project_id)?.ok_or(DispatchError::UnknownFile(request.file_id))?;
        for site_id in &site_ids {
            let exists = tx.query_row("SELECT 1 FROM sites WHERE id = ?1", [site_id], |_| Ok(())).optional()?;
            if exists.is_none() {
                return Err(DispatchError::UnknownSite(*site_id));
            }
        }
        // (import row id, phone, field values by key)
        type ImportRow = (i64, String, Vec<(String, String)>);
        let mut import_rows: Vec<ImportRow> = Vec::new();
        {
            let mut stmt = tx.prepare("SELECT id, phone, fields FROM import_rows WHERE file_id = ?1 ORDER BY id")?;
            let mut rows = stmt.query([request.file_id])?;
            while let Some(row) = rows.next()? {
                let fields_json: String = row.get(2)?;
                let fields: Vec<(String, String)> = serde_json::from_str(&fields_json).map_err(|e| {
                    DbError(rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e)))
                })?;
                import_rows.push((row.get(0)?, row.get(1)?, fields));
            }
        }
        if import_rows.is_empty() {
            return Err(DispatchError::NoRows(request.file_id));
        }

        let now = now_unix();
        let mut batch_ids = Vec::with_capacity(site_ids.len());
        for site_id in &site_ids {
            let sent_version: Option<i64> = tx
                .query_row(
                    "SELECT version FROM sent_projects WHERE site_id = ?1 AND project_id = ?2",
                    params![site_id, project_id],
                    |r| r.get(0),
                )
                .optional()?;
            if sent_version != Some(project.version) {
                append_down(&tx, *site_id, &DownEvent::Project(project.to_wire()))?;
                tx.execute(
                    "INSERT INTO sent_projects (site_id, project_id, version) VALUES (?1, ?2, ?3)
                     ON CONFLICT (site_id, project_id) DO UPDATE SET version = excluded.version",
                    params![site_id, project_id, project.version],
                )?;
            }
            tx.execute(
                "INSERT INTO batches (file_id, project_id, site_id, name, priority, n_rows, created_at, creator)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![request.file_id, project_id, site_id, name, request.priority, import_rows.len() as i64, now, request.creator],
            )?;
            let batch_id = tx.last_insert_rowid();
            let mut customer_rows = Vec::with_capacity(import_rows.len());
            {
                let mut insert =
                    tx.prepare("INSERT INTO batch_rows (batch_id, import_row_id, phone) VALUES (?1, ?2, ?3)")?;
                for (import_row_id, phone, fields) in &import_rows {
                    insert.execute(params![batch_id, import_row_id, phone])?;
                    customer_rows.push(CustomerRow {
                        row_id: tx.last_insert_rowid() as u64,
                        phone: phone.clone(),
                        fields: fields.clone(),
                    });
                }
            }
            let mut n_chunks: u32 = 0;
            for chunk in customer_rows.chunks(CHUNK_ROWS) {
                let event = DownEvent::BatchChunk(BatchChunk {
                    batch_id: batch_id as u64,
                    chunk_idx: n_chunks,
                    rows: chunk.to_vec(),
                });
                append_down(&tx, *site_id, &event)?;
                n_chunks += 1;
            }
            let manifest = BatchManifest {
                batch_id: batch_id as u64,
                project_id: project_id as u64,
                name: name.to_string(),
                priority,
                imported_at,
                n_rows: customer_rows.len() as u64,
                n_chunks,
                rows_hash: sync_protocol::rows_hash(&customer_rows),
            };
            append_down(&tx, *site_id, &DownEvent::BatchManifest(manifest))?;
            batch_ids.push(batch_id);
        }
        tx.execute("UPDATE files SET status = 'done' WHERE id = ?1", [request.file_id])?;
        tx.commit()?;
        drop(conn);
        for site_id in &site_ids {
            self.down_notify_for(*site_id as u64).notify_one();
        }
        Ok(batch_ids)
    }

    /// The task list, newest batch first.
    pub fn list_batches(&self) -> Result<Vec<BatchSummary>, DbError> {
        self.batches_where("1 = 1", None)
    }

    /// One batch's line of the task list.
    pub fn batch(&self, id: i64) -> Result<Option<BatchSummary>, DbError> {
        Ok(self.batches_where("b.id = ?1", Some(id))?.pop())
    }

    fn batches_where(&self, condition: &str, id: Option<i64>) -> Result<Vec<BatchSummary>, DbError> {
        let conn = self.conn();
        let sql = format!(
            "SELECT b.id, b.name, b.project_id, p.name, b.site_id, s.name, b.n_rows, b.priority, b.creator, b.created_at,
                (SELECT COUNT(*) FROM call_attempts a WHERE a.batch_id = b.id AND a.site_id = b.site_id),
                (SELECT COUNT(*) FROM call_attempts a WHERE a.batch_id = b.id AND a.site_id = b.site_id AND a.answered_at IS NOT NULL),
                (SELECT COUNT(*) FROM call_attempts a WHERE a.batch_id = b.id AND a.site_id = b.site_id AND a.outcome = 'agent_missed'),
                (SELECT COUNT(*) FROM call_attempts a WHERE a.batch_id = b.id AND a.site_id = b.site_id AND a.outcome = 'connected')
             FROM batches b JOIN projects p ON p.id = b.project_id JOIN sites s ON s.id = b.site_id
             WHERE {condition} ORDER BY b.id DESC"
        );
        let mut stmt = conn.prepare(&sql)?;
        let map = |r: &rusqlite::Row<'_>| {
            Ok(BatchSummary {
                id: r.get(0)?,
                name: r.get(1)?,
                project_id: r.get(2)?,
                project_name: r.get(3)?,
                site_id: r.get(4)?,
                site_name: r.get(5)?,
                numbers: r.get(6)?,
                priority: r.get(7)?,
                creator: r.get(8)?,
                created_at: r.get(9)?,
                dialed: r.get(10)?,
                connected: r.get(11)?,
                agent_missed: r.get(12)?,
                agent_connected: r.get(13)?,
            })
        };
        let rows = match id {
            Some(id) => stmt.query_map([id], map)?.collect::<Result<Vec<_>, _>>()?,
            None => stmt.query_map([], map)?.collect::<Result<Vec<_>, _>>()?,
        };
        Ok(rows)
    }

    /// A batch's business records, newest first. Phones are masked here (not in a template)
    /// when the batch's project hides the middle four digits.
    pub fn batch_records(&self, batch_id: i64) -> Result<Vec<RecordView>, DbError> {
        let conn = self.conn();
        let hide: bool = conn
            .query_row(
                "SELECT p.hide_middle_digits FROM batches b JOIN projects p ON p.id = b.project_id WHERE b.id = ?1",
                [batch_id],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(true);
        let mut stmt = conn.prepare(
            "SELECT r.site_id, r.attempt_id, r.row_id, COALESCE(br.phone, ''), r.agent, r.saved_at, r.record
             FROM business_records r LEFT JOIN batch_rows br ON br.id = r.row_id AND br.batch_id = r.batch_id
             WHERE r.batch_id = ?1 ORDER BY r.saved_at DESC, r.attempt_id DESC",
        )?;
        let rows = stmt
            .query_map([batch_id], |r| {
                let phone: String = r.get(3)?;
                let values_json: String = r.get(6)?;
                let values: Vec<(String, String)> = serde_json::from_str(&values_json).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(6, rusqlite::types::Type::Text, Box::new(e))
                })?;
                Ok(RecordView {
                    site_id: r.get(0)?,
                    attempt_id: r.get(1)?,
                    row_id: r.get(2)?,
                    phone: if hide { crate::phone::mask_middle(&phone) } else { phone },
                    agent: r.get(4)?,
                    saved_at: r.get(5)?,
                    values,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
