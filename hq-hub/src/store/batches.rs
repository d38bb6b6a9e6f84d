//! Batches (下发任务): dispatching an imported file to sites, the task list's figures, and
//! the business records sites sent back.
//!
//! Three kinds of dispatch (数据下发): shared (共享批次: one pool the chosen sites dial
//! once between them, leased in blocks, see `pools`),
//! exclusive (独享批次: N batches, each a count of rows and one site, renamable) and auto
//! (自动批次: rows routed by the project's attribution rules, "attributed: N; not found: M").
//! Blacklisted numbers are removed before any of them, each with its reason.
//!
//! A shared batch (共享批次) sent to N sites becomes N batches, one per site, whose rows
//! arrive in leases from one pool, each leased number with a hub-wide row id of that site's
//! batch, so that every attempt and record a site reports names exactly one batch and one
//! row. Exclusive and auto dispatch append, per site and in one transaction: the project's
//! definition (only if that site has not been sent this version), the rows in chunks of at
//! most [`CHUNK_ROWS`], and a manifest carrying the count and `rows_hash` of all rows.

mod plan;

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};
use sync_protocol::{BatchChunk, BatchManifest, CustomerRow, DownEvent};

use self::plan::{named_sites, plan_dispatch, PlanInput, PlannedBatch, SiteVerdict, SourceRow};
use super::access::Scope;
use super::down::{append_down, DownError};
use super::pools::{create_pool, PoolSettings};
use super::projects::{load_project, push_project, Project};
use super::{now_unix, DbError, Store};

/// Most rows in one [`BatchChunk`] (well under the frame size cap).
pub const CHUNK_ROWS: usize = 2000;

/// One exclusive batch (独享批次): the next `count` rows of the file, for one site.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[derive(utoipa::ToSchema)]
pub struct ExclusivePart {
    pub name: String,
    pub count: u64,
    pub site_id: i64,
}

/// The kind of dispatch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "parts")]
pub enum DispatchKind {
    /// Every chosen site dials all rows.
    #[default]
    Shared,
    /// Each part is its own batch for one site.
    Exclusive(Vec<ExclusivePart>),
    /// Rows routed by the project's attribution rules.
    Auto,
}

/// What HQ asks for when dispatching a file.
#[derive(Debug, Clone)]
pub struct DispatchRequest {
    pub file_id: i64,
    pub name: String,
    /// 1..=100 (1 = paused; 0 would end the batch before it started, so it is refused).
    pub priority: i64,
    /// The sites of a shared batch.
    pub site_ids: Vec<i64>,
    /// The dispatching account (下发账号).
    pub creator: String,
    pub kind: DispatchKind,
    /// "Update existing data" (更新已有数据, the default): a number already live in a batch of
    /// this project at a site is not sent to that site again.
    pub update_existing: bool,
    pub description: String,
}

/// A row left out of a dispatch, and why.
#[derive(Debug, Clone, Serialize)]
#[derive(utoipa::ToSchema)]
pub struct RemovedRow {
    pub row: u32,
    pub phone: String,
    pub reason: String,
    pub reason_zh: String,
}

/// What a dispatch did.
#[derive(Debug, Clone, Serialize)]
pub struct DispatchOutcome {
    pub batch_ids: Vec<i64>,
    /// Rows removed (blacklist) or not sent (already live at the site), with reasons.
    pub removed: Vec<RemovedRow>,
    /// Auto batches: rows a rule routed (归属数量) and rows no rule matched (未找到归属数量).
    pub attributed: u64,
    pub not_found: u64,
    /// Rows of the file no batch took (exclusive batches asking fewer than there are, or
    /// auto rows no rule matched): still in the file, to dispatch later.
    pub leftover: u64,
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
    /// A chosen site does not take part in the project.
    #[error("site {0} does not take part in this sub-project: add it to the participating sites first")]
    NotParticipating(i64),
    /// The account may not dispatch to this site.
    #[error("site {0} is outside your data permission: ask an admin to extend it")]
    OutsideScope(i64),
    /// The file has no good rows.
    #[error("file {0} has no valid rows to dispatch: fix the rows in its import report and upload it again")]
    NoRows(i64),
    /// Exclusive batches ask for more rows than there are.
    #[error("the exclusive batches ask for {asked} rows but only {available} can be dispatched: lower the counts")]
    TooManyRows { asked: u64, available: u64 },
    /// An exclusive batch is malformed.
    #[error("exclusive batch {number}: {reason}")]
    BadPart { number: usize, reason: String },
    /// Auto batches need attribution rules.
    #[error("this sub-project has no attribution rules: set them up (归属设置) before using auto batches")]
    NoRules,
    /// Every row was removed: `blacklisted` on HQ's black list, `live` already in a running
    /// batch of this sub-project at the site (更新已有数据).
    #[error("no row is left to dispatch: {blacklisted} on the black list, {live} already in this sub-project's batches at the site (untick 更新已有数据 to send them again)")]
    NothingLeft { blacklisted: u64, live: u64 },
    /// The file's sub-project is archived: it takes no new batches until brought back.
    #[error("sub-project {0} is archived: bring it back (取消归档) before dispatching to it")]
    Archived(i64),
    /// A down-log event could not be encoded (a bug).
    #[error("cannot encode a down-log event: {0}")]
    Encode(String),
    /// A shared batch's lease setting out of range, named.
    #[error(transparent)]
    Lease(super::pools::PoolError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for DispatchError {
    fn from(e: rusqlite::Error) -> Self {
        DispatchError::Db(DbError(e))
    }
}

impl From<DownError> for DispatchError {
    fn from(e: DownError) -> Self {
        match e {
            DownError::Encode(e) => DispatchError::Encode(e.to_string()),
            DownError::Db(e) => DispatchError::Db(e),
        }
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
    /// 放弃量: answered calls no agent took within 2 s (the regulators' abandoned call).
    pub abandoned: i64,
    pub priority: i64,
    pub creator: String,
    pub created_at: i64,
    pub description: String,
    /// `shared`, `exclusive` or `auto`.
    pub kind: String,
    /// Ended for ever (priority 0).
    pub ended: bool,
    /// The shared pool this site's batch draws from (共享批次), if any.
    pub pool_id: Option<i64>,
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

/// An attribution rule (归属设置): rows whose `field_key` equals `value` go to `site_id`,
/// to `agent` if one is named.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[derive(utoipa::ToSchema)]
pub struct AttributionRule {
    pub field_key: String,
    pub value: String,
    pub site_id: i64,
    #[serde(default)]
    pub agent: String,
}

pub(super) fn attribution_rules(conn: &rusqlite::Connection, project_id: i64) -> rusqlite::Result<Vec<AttributionRule>> {
    let mut stmt = conn.prepare("SELECT field_key, value, site_id, agent FROM attribution_rules WHERE project_id = ?1 ORDER BY id")?;
    let rules = stmt
        .query_map([project_id], |r| Ok(AttributionRule { field_key: r.get(0)?, value: r.get(1)?, site_id: r.get(2)?, agent: r.get(3)? }))?
        .collect();
    rules
}

/// The rows of a shared dispatch's pool: those every site's planned batch kept, in order.
fn shared_rows(batches: &[PlannedBatch]) -> Vec<(i64, String)> {
    let Some((first, rest)) = batches.split_first() else { return Vec::new() };
    let kept: Vec<BTreeSet<i64>> = rest.iter().map(|b| b.rows.iter().map(|r| r.import_row_id).collect()).collect();
    first
        .rows
        .iter()
        .filter(|r| kept.iter().all(|k| k.contains(&r.import_row_id)))
        .map(|r| (r.import_row_id, r.phone.clone()))
        .collect()
}

/// Inserts a batch's line of the task list; answers its id.
#[allow(clippy::too_many_arguments)]
fn insert_batch(
    tx: &Transaction<'_>,
    project_id: i64,
    site_id: i64,
    name: &str,
    n_rows: i64,
    request: &DispatchRequest,
    kind: &str,
    now: i64,
) -> Result<i64, DispatchError> {
    tx.execute(
        "INSERT INTO batches (file_id, project_id, site_id, name, priority, n_rows, created_at, creator, description, kind)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![request.file_id, project_id, site_id, name, request.priority, n_rows, now, request.creator, request.description, kind],
    )?;
    Ok(tx.last_insert_rowid())
}

/// Writes one batch: its row, its rows, chunks and manifest into the site's down log.
fn write_batch(
    tx: &Transaction<'_>,
    project: &Project,
    batch: &PlannedBatch,
    request: &DispatchRequest,
    kind: &str,
    imported_at: i64,
    now: i64,
) -> Result<i64, DispatchError> {
    let (site_id, name, rows) = (batch.site_id, batch.name.as_str(), batch.rows.as_slice());
    let batch_id = insert_batch(tx, project.id, site_id, name, rows.len() as i64, request, kind, now)?;
    let mut customer_rows = Vec::with_capacity(rows.len());
    {
        let mut insert = tx.prepare("INSERT INTO batch_rows (batch_id, import_row_id, phone) VALUES (?1, ?2, ?3)")?;
        for row in rows {
            insert.execute(params![batch_id, row.import_row_id, row.phone])?;
            customer_rows.push(CustomerRow { row_id: tx.last_insert_rowid() as u64, phone: row.phone.clone(), fields: row.fields.clone() });
        }
    }
    let mut n_chunks: u32 = 0;
    for chunk in customer_rows.chunks(CHUNK_ROWS) {
        let event = DownEvent::BatchChunk(BatchChunk { batch_id: batch_id as u64, chunk_idx: n_chunks, rows: chunk.to_vec() });
        append_down(tx, site_id, &event)?;
        n_chunks += 1;
    }
    let manifest = BatchManifest {
        batch_id: batch_id as u64,
        project_id: project.id as u64,
        name: name.to_string(),
        priority: request.priority.clamp(1, 100) as u8,
        imported_at,
        n_rows: customer_rows.len() as u64,
        n_chunks,
        rows_hash: sync_protocol::rows_hash(&customer_rows),
    };
    append_down(tx, site_id, &DownEvent::BatchManifest(manifest))?;
    Ok(batch_id)
}

/// A file's imported rows, in file order.
fn file_rows(tx: &Transaction<'_>, file_id: i64) -> Result<Vec<SourceRow>, DbError> {
    let mut rows = Vec::new();
    let mut stmt = tx.prepare("SELECT id, row_number, phone, fields FROM import_rows WHERE file_id = ?1 ORDER BY id")?;
    let mut found = stmt.query([file_id])?;
    while let Some(row) = found.next()? {
        let fields_json: String = row.get(3)?;
        let fields: Vec<(String, String)> = serde_json::from_str(&fields_json)
            .map_err(|e| DbError(rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(e))))?;
        rows.push(SourceRow { import_row_id: row.get(0)?, row_number: row.get(1)?, phone: row.get(2)?, fields });
    }
    Ok(rows)
}

/// Blacklisted numbers never leave HQ: the rows kept, and those removed with the reason.
fn without_blacklisted(tx: &Transaction<'_>, rows: Vec<SourceRow>) -> rusqlite::Result<(Vec<SourceRow>, Vec<RemovedRow>)> {
    let mut black = tx.prepare("SELECT note FROM phone_lists WHERE phone = ?1 AND list = 'black'")?;
    let mut kept = Vec::with_capacity(rows.len());
    let mut removed = Vec::new();
    for row in rows {
        match black.query_row([&row.phone], |r| r.get::<_, String>(0)).optional()? {
            Some(note) => {
                let note = if note.is_empty() { String::new() } else { format!(" ({note})") };
                removed.push(RemovedRow {
                    row: row.row_number,
                    phone: row.phone.clone(),
                    reason: format!("the number is on the blacklist{note}"),
                    reason_zh: format!("号码在黑名单中{note}"),
                });
            }
            None => kept.push(row),
        }
    }
    Ok((kept, removed))
}

/// Whether `site_id` may get rows of `project` from the caller of `scope`.
fn site_verdict(tx: &Transaction<'_>, project: &Project, scope: &Scope, site_id: i64) -> rusqlite::Result<SiteVerdict> {
    let exists = tx.query_row("SELECT 1 FROM sites WHERE id = ?1", [site_id], |_| Ok(())).optional()?;
    Ok(if exists.is_none() {
        SiteVerdict::Unknown
    } else if !project.site_ids.is_empty() && !project.site_ids.contains(&site_id) {
        SiteVerdict::NotParticipating
    } else if !scope.project_site(project.id, site_id) {
        SiteVerdict::OutsideScope
    } else {
        SiteVerdict::Open
    })
}

/// "Update existing data": takes out of `batch` the numbers already live in this project
/// at its site (they stay in the batch that has them) and answers them with the reason.
fn leave_out_live(tx: &Transaction<'_>, project_id: i64, batch: &mut PlannedBatch) -> rusqlite::Result<Vec<RemovedRow>> {
    let site = batch.site_id;
    let mut live = tx.prepare(
        "SELECT 1 FROM batch_rows br JOIN batches b ON b.id = br.batch_id
         WHERE br.phone = ?1 AND b.project_id = ?2 AND b.site_id = ?3 AND b.deleted = 0 AND b.priority > 0 LIMIT 1",
    )?;
    let mut kept = Vec::with_capacity(batch.rows.len());
    let mut removed = Vec::new();
    for row in batch.rows.drain(..) {
        if live.query_row(params![row.phone, project_id, site], |_| Ok(())).optional()?.is_some() {
            removed.push(RemovedRow {
                row: row.row_number,
                phone: row.phone.clone(),
                reason: format!("already live at site {site} in this sub-project (update existing data): not sent again"),
                reason_zh: format!("该号码已在职场 {site} 的本项目任务中（更新已有数据）：不重复下发"),
            });
        } else {
            kept.push(row);
        }
    }
    batch.rows = kept;
    Ok(removed)
}

impl Store {
    /// Dispatches a file (shared, exclusive or auto batches) as `scope` may: reads the
    /// file's rows and leaves out blacklisted numbers, plans the batches
    /// ([`plan_dispatch`]), leaves out numbers already live at a site ("update existing
    /// data"), and writes the batches and their down-log events in one transaction.
    pub fn dispatch(&self, request: &DispatchRequest, scope: &Scope) -> Result<DispatchOutcome, DispatchError> {
        self.dispatch_with_lease(request, scope, PoolSettings::default())
    }

    /// [`Store::dispatch`] with the lease settings a shared batch sent to two sites or more
    /// starts its pool with (the dispatch form's 租约 fields; other batches ignore them).
    pub fn dispatch_with_lease(&self, request: &DispatchRequest, scope: &Scope, lease: PoolSettings) -> Result<DispatchOutcome, DispatchError> {
        if matches!(request.kind, DispatchKind::Shared) {
            lease.check().map_err(DispatchError::Lease)?;
        }
        let name = request.name.trim();
        if name.is_empty() && !matches!(request.kind, DispatchKind::Exclusive(_)) {
            return Err(DispatchError::EmptyName);
        }
        if !(1..=100).contains(&request.priority) {
            return Err(DispatchError::Priority(request.priority));
        }

        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let file: Option<(i64, i64)> = tx
            .query_row("SELECT project_id, created_at FROM files WHERE id = ?1 AND deleted = 0", [request.file_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let Some((project_id, imported_at)) = file.filter(|(project, _)| scope.project(*project)) else {
            return Err(DispatchError::UnknownFile(request.file_id));
        };
        let project = load_project(&tx, project_id)?.ok_or(DispatchError::UnknownFile(request.file_id))?;
        let archived: Option<i64> = tx.query_row("SELECT archived_at FROM projects WHERE id = ?1", [project_id], |r| r.get(0))?;
        if archived.is_some() {
            return Err(DispatchError::Archived(project_id));
        }
        let rows = file_rows(&tx, request.file_id)?;
        if rows.is_empty() {
            return Err(DispatchError::NoRows(request.file_id));
        }
        let (rows, mut removed) = without_blacklisted(&tx, rows)?;
        let n_kept = rows.len() as u64;
        let rules = match request.kind {
            DispatchKind::Auto => attribution_rules(&tx, project_id)?,
            _ => Vec::new(),
        };
        let mut sites = BTreeMap::new();
        for site_id in named_sites(&request.kind, &request.site_ids, &rules) {
            sites.insert(site_id, site_verdict(&tx, &project, scope, site_id)?);
        }
        let plan = plan_dispatch(PlanInput { name, kind: &request.kind, site_ids: &request.site_ids, rows, rules: &rules, sites: &sites })?;
        let mut batches = plan.batches;
        let blacklisted = removed.len() as u64;
        let leftover = match &request.kind {
            DispatchKind::Exclusive(_) => n_kept.saturating_sub(batches.iter().map(|b| b.rows.len() as u64).sum()),
            DispatchKind::Auto => plan.not_found,
            DispatchKind::Shared => 0,
        };
        if request.update_existing {
            for batch in batches.iter_mut() {
                removed.extend(leave_out_live(&tx, project_id, batch)?);
            }
        }
        batches.retain(|batch| !batch.rows.is_empty());
        if batches.is_empty() {
            return Err(DispatchError::NothingLeft { blacklisted, live: removed.len() as u64 - blacklisted });
        }

        let now = now_unix();
        let mut batch_ids = Vec::with_capacity(batches.len());
        let mut touched = BTreeSet::new();
        // Two sites or more share one pool; a single site is given the whole batch, as
        // nobody else dials it.
        let pooled = matches!(request.kind, DispatchKind::Shared) && batches.len() >= 2;
        let mut pool_sites = Vec::new();
        for batch in &batches {
            if !project.site_ids.contains(&batch.site_id) {
                // A site outside the participating list (older set-ups) still needs the definition.
                tx.execute("INSERT OR IGNORE INTO project_sites (project_id, site_id) VALUES (?1, ?2)", params![project_id, batch.site_id])?;
            }
            push_project(&tx, project_id).map_err(|e| DispatchError::Encode(e.to_string()))?;
            touched.insert(batch.site_id);
            let batch_id = if pooled {
                insert_batch(&tx, project.id, batch.site_id, &batch.name, 0, request, plan.kind, now)?
            } else {
                write_batch(&tx, &project, batch, request, plan.kind, imported_at, now)?
            };
            pool_sites.push((batch.site_id, batch_id));
            batch_ids.push(batch_id);
        }
        if pooled {
            // One pool of the numbers every chosen site may dial (none live at any of them).
            let rows = shared_rows(&batches);
            create_pool(&tx, project_id, request.file_id, name, &rows, &pool_sites, imported_at, request.priority, lease, now)
                .map_err(|e| DispatchError::Encode(e.to_string()))?;
        }
        tx.execute("UPDATE files SET status = 'done' WHERE id = ?1", [request.file_id])?;
        tx.commit()?;
        drop(conn);
        for site_id in touched {
            self.down_notify_for(site_id as u64).notify_one();
        }
        Ok(DispatchOutcome { batch_ids, removed, attributed: plan.attributed, not_found: plan.not_found, leftover })
    }

    /// The task list, newest batch first (deleted batches left out).
    pub fn list_batches(&self) -> Result<Vec<BatchSummary>, DbError> {
        self.batches_where("b.deleted = 0", None)
    }

    /// The task list as `scope` may see it.
    pub fn list_batches_scoped(&self, scope: &Scope) -> Result<Vec<BatchSummary>, DbError> {
        Ok(self.list_batches()?.into_iter().filter(|b| scope.project_site(b.project_id, b.site_id)).collect())
    }

    /// One batch's line of the task list.
    pub fn batch(&self, id: i64) -> Result<Option<BatchSummary>, DbError> {
        Ok(self.batches_where("b.id = ?1 AND b.deleted = 0", Some(id))?.pop())
    }

    fn batches_where(&self, condition: &str, id: Option<i64>) -> Result<Vec<BatchSummary>, DbError> {
        self.batches_limited(condition, id, i64::MAX)
    }

    /// The task list's lines matching `condition` (`?1` = `id`), newest first, at most `limit`.
    pub(super) fn batches_limited(&self, condition: &str, id: Option<i64>, limit: i64) -> Result<Vec<BatchSummary>, DbError> {
        let conn = self.conn();
        let sql = format!(
            "SELECT b.id, b.name, b.project_id, p.name, b.site_id, s.name, b.n_rows, b.priority, b.creator, b.created_at,
                b.description, b.kind,
                (SELECT COUNT(*) FROM call_attempts a WHERE a.batch_id = b.id AND a.site_id = b.site_id),
                (SELECT COUNT(*) FROM call_attempts a WHERE a.batch_id = b.id AND a.site_id = b.site_id AND a.answered_at IS NOT NULL),
                (SELECT COUNT(*) FROM call_attempts a WHERE a.batch_id = b.id AND a.site_id = b.site_id AND a.outcome = 'agent_missed'),
                (SELECT COUNT(*) FROM call_attempts a WHERE a.batch_id = b.id AND a.site_id = b.site_id AND a.outcome = 'connected'),
                (SELECT COUNT(*) FROM call_attempts a WHERE a.batch_id = b.id AND a.site_id = b.site_id AND a.outcome = 'abandoned'),
                b.pool_id
             FROM batches b JOIN projects p ON p.id = b.project_id JOIN sites s ON s.id = b.site_id
             WHERE {condition} ORDER BY b.id DESC LIMIT {limit}"
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
                description: r.get(10)?,
                kind: r.get(11)?,
                ended: r.get::<_, i64>(7)? == 0,
                dialed: r.get(12)?,
                connected: r.get(13)?,
                agent_missed: r.get(14)?,
                agent_connected: r.get(15)?,
                abandoned: r.get(16)?,
                pool_id: r.get(17)?,
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
        self.batch_records_window(batch_id, &super::paging::RecordWindow::default())
    }

    /// One page of a batch's business records, newest first: saved in `[from, to)`, before
    /// the cursor `(saved_at, attempt_id)`, at most `limit` (all when 0).
    pub fn batch_records_window(&self, batch_id: i64, window: &super::paging::RecordWindow) -> Result<Vec<RecordView>, DbError> {
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
             WHERE r.batch_id = ?1 AND r.saved_at >= ?2 AND r.saved_at < ?3 AND (r.saved_at, r.attempt_id) < (?4, ?5)
             ORDER BY r.saved_at DESC, r.attempt_id DESC LIMIT ?6",
        )?;
        let (before_saved, before_attempt) = window.before.unwrap_or((i64::MAX, i64::MAX));
        let limit = if window.limit == 0 { i64::MAX } else { window.limit as i64 };
        let args = params![batch_id, window.from.unwrap_or(i64::MIN), window.to.unwrap_or(i64::MAX), before_saved, before_attempt, limit];
        let rows = stmt
            .query_map(args, |r| {
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
