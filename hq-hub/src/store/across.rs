//! A project's data across all its sites (H26): customer data (客户资料: the rows HQ
//! dispatched, with the customer edits the sites synced up applied, and who has each) and
//! business records (业务资料 / 职场业务数据: the records every site synced up).
//!
//! - Filters: site, batch, agent, time range, phone (exact), and any field the project marks
//!   filterable (H6's 筛选条件). A field filter compares the field's *current* value: a
//!   customer field's latest site edit wins over the imported value, inside the query, so
//!   paging never loads rows to test them in Rust.
//! - Keyset pagination, never OFFSET: a page ends with a cursor naming its last row, and the
//!   next page starts strictly after it. Customer rows go newest dispatch first by row id
//!   (batch rows get increasing ids, batch by batch), read batch by batch through the
//!   `(batch_id, id)` index; business records go newest saved first through
//!   `business_records(saved_at, site_id, attempt_id)`.
//! - Scope and masking happen here, before anything leaves the store: a sub-admin sees only
//!   the project's sites it manages (another project is "no such project"), does not see the
//!   fields the project hides (nor filter by them, which would reveal them), and every
//!   viewer gets numbers with their middle four digits hidden when the project says so.

use std::collections::BTreeSet;

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection};
use serde::Serialize;

use super::projects::{load_project, FieldSpec, FieldSpecKind, Project};
use super::{DbError, Scope, Store};

/// Most rows one page answers.
pub const MAX_PAGE_ROWS: u32 = 500;

/// What to look for in one project's data.
#[derive(Debug, Clone, Default)]
pub struct AcrossQuery {
    pub project_id: i64,
    pub site_id: Option<i64>,
    pub batch_id: Option<i64>,
    /// The agent (extension or account) who has the row / saved the record.
    pub agent: Option<String>,
    /// Unix seconds, inclusive: dispatch time for customer rows, saving time for records.
    pub from: Option<i64>,
    /// Unix seconds, exclusive.
    pub to: Option<i64>,
    /// The full number, as stored.
    pub phone: Option<String>,
    /// `(field key, value)`: the field must be filterable and visible to the viewer.
    pub fields: Vec<(String, String)>,
    /// The cursor of the previous page (its `next`).
    pub after: Option<String>,
    /// Rows per page, 1..=[`MAX_PAGE_ROWS`].
    pub limit: u32,
}

/// A field the viewer sees, in the project's order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[derive(utoipa::ToSchema)]
pub struct DataColumn {
    pub key: String,
    pub title: String,
    /// Whether the viewer may filter by it.
    pub filterable: bool,
    /// Its options, for a choice field (the filter is then a choice too).
    pub options: Vec<String>,
    /// Shown as a column of the console's list (列表显示); the JSON and the export carry
    /// every column either way.
    pub listed: bool,
}

/// One field's value in a row.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[derive(utoipa::ToSchema)]
pub struct DataValue {
    pub key: String,
    pub value: String,
}

/// A customer row as HQ sees it now.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[derive(utoipa::ToSchema)]
pub struct CustomerData {
    /// HQ's row id (sent to the site with the batch).
    pub row_id: i64,
    pub batch_id: i64,
    pub batch_name: String,
    pub site_id: i64,
    pub site_name: String,
    /// Masked if the project hides the middle four digits.
    pub phone: String,
    /// Who has the row: the agent of its latest call, else of its latest edit.
    pub agent: Option<String>,
    pub dispatched_at: i64,
    pub last_edited_at: Option<i64>,
    pub last_edited_by: Option<String>,
    /// Current values of the visible fields (site edits applied), in the project's order.
    pub values: Vec<DataValue>,
}

/// A business record from a site.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[derive(utoipa::ToSchema)]
pub struct BusinessData {
    pub site_id: i64,
    pub site_name: String,
    /// The site's call attempt the record belongs to.
    pub attempt_id: i64,
    pub batch_id: i64,
    pub batch_name: String,
    pub row_id: i64,
    /// Masked if the project hides the middle four digits.
    pub phone: String,
    /// Who saved it (提交人).
    pub agent: String,
    /// When it was saved (提交时间), unix seconds.
    pub saved_at: i64,
    /// Values of the visible fields, in the project's order.
    pub values: Vec<DataValue>,
}

/// One page and where the next starts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataPage<T> {
    pub columns: Vec<DataColumn>,
    pub rows: Vec<T>,
    /// The cursor of the next page; `None` on the last.
    pub next: Option<String>,
}

/// Why a search cannot run.
#[derive(Debug, thiserror::Error)]
pub enum AcrossError {
    /// No such project, or not one the viewer may see.
    #[error("sub-project {0} does not exist")]
    UnknownProject(i64),
    /// The field is not a filter of this project (or is hidden from the viewer).
    #[error("field {0:?} is not a filter of this sub-project: mark it filterable (筛选条件) in the project's fields, or use one of the listed filters")]
    NotFilterable(String),
    /// The value cannot match the field.
    #[error("filter {title}: {reason}")]
    BadValue { title: String, reason: String, reason_zh: String },
    /// The cursor is not one this search answered.
    #[error("after: {0:?} is not a page cursor: use the `next` of the previous page")]
    BadCursor(String),
    /// The time range is upside down.
    #[error("the time range ends before it starts: swap from and to")]
    BadRange,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for AcrossError {
    fn from(e: rusqlite::Error) -> Self {
        AcrossError::Db(DbError(e))
    }
}

impl AcrossError {
    /// The message in Chinese, for the console in its default language.
    pub fn zh(&self) -> String {
        match self {
            AcrossError::UnknownProject(id) => format!("子项目 {id} 不存在"),
            AcrossError::NotFilterable(key) => {
                format!("字段“{key}”不是本子项目的筛选条件：请在项目字段中将其设为筛选条件，或使用列出的筛选项")
            }
            AcrossError::BadValue { title, reason_zh, .. } => format!("筛选条件“{title}”：{reason_zh}"),
            AcrossError::BadCursor(_) => "翻页参数有误：请使用上一页给出的“下一页”".to_string(),
            AcrossError::BadRange => "时间范围的结束早于开始：请对调起止时间".to_string(),
            AcrossError::Db(_) => "数据库出错，请查看总控日志".to_string(),
        }
    }
}

/// What the viewer may see of one project, and the fields it may filter by.
struct View {
    project: Project,
    /// `None` = every site; otherwise the project's sites in the viewer's scope.
    sites: Option<BTreeSet<i64>>,
    /// Sub-admins do not see the fields the project hides.
    withhold_hidden: bool,
}

impl View {
    fn visible<'a>(&self, fields: &'a [FieldSpec]) -> impl Iterator<Item = &'a FieldSpec> + 'a {
        let withhold = self.withhold_hidden;
        fields.iter().filter(move |f| !(withhold && f.hidden))
    }

    fn columns(&self, fields: &[FieldSpec]) -> Vec<DataColumn> {
        self.visible(fields)
            .map(|f| DataColumn {
                key: f.key.clone(),
                title: f.title.clone(),
                filterable: f.filterable,
                options: f.options.clone(),
                listed: f.listed,
            })
            .collect()
    }

    fn phone(&self, phone: String) -> String {
        if self.project.hide_middle_digits { crate::phone::mask_middle(&phone) } else { phone }
    }

    /// The visible fields' values from stored `[key, value]` pairs, in the project's order.
    fn values(&self, fields: &[FieldSpec], pairs: &[(String, String)]) -> Vec<DataValue> {
        self.visible(fields)
            .map(|f| DataValue {
                key: f.key.clone(),
                value: pairs.iter().rev().find(|(k, _)| *k == f.key).map(|(_, v)| v.clone()).unwrap_or_default(),
            })
            .collect()
    }

    /// Whether site `site` is in view (and matches the site filter).
    fn site_allowed(&self, site: i64, wanted: Option<i64>) -> bool {
        wanted.is_none_or(|w| w == site) && self.sites.as_ref().is_none_or(|s| s.contains(&site))
    }
}

/// A query's extra conditions, with `?` placeholders and their values in order.
#[derive(Default)]
struct Conditions {
    sql: String,
    values: Vec<SqlValue>,
}

impl Conditions {
    fn push(&mut self, sql: &str, values: impl IntoIterator<Item = SqlValue>) {
        self.sql.push_str(" AND ");
        self.sql.push_str(sql);
        self.values.extend(values);
    }
}

/// The condition "the value `expr` (with its own `?`s bound to `key` twice) matches `value`"
/// for a field of `kind`. Choice, number and date fields match exactly (a multiple choice:
/// one chosen option); text matches any part, ignoring case.
fn field_condition(conditions: &mut Conditions, expr: &str, keys: usize, field: &FieldSpec, value: &str) -> Result<(), AcrossError> {
    let value = value.trim();
    let single = FieldSpec { kind: if field.kind == FieldSpecKind::MultipleChoice { FieldSpecKind::SingleChoice } else { field.kind }, ..field.clone() };
    if let Err((reason, reason_zh)) = single.check_value(value) {
        return Err(AcrossError::BadValue { title: field.title.clone(), reason, reason_zh });
    }
    let sql = match field.kind {
        FieldSpecKind::Text => format!("instr(lower({expr}), lower(?)) > 0"),
        FieldSpecKind::SingleChoice | FieldSpecKind::Number => format!("{expr} = ?"),
        FieldSpecKind::Date => format!("substr({expr}, 1, 10) = ?"),
        FieldSpecKind::MultipleChoice => format!(
            "instr(';' || replace(replace(replace(replace({expr}, '；', ';'), '，', ';'), ',', ';'), ' ', '') || ';', ';' || ? || ';') > 0"
        ),
    };
    let mut values: Vec<SqlValue> = std::iter::repeat_n(SqlValue::Text(field.key.clone()), keys).collect();
    values.push(SqlValue::Text(value.to_string()));
    conditions.push(&sql, values);
    Ok(())
}

/// The field a filter names, if the viewer may filter by it.
fn filter_field<'a>(view: &View, fields: &'a [FieldSpec], key: &str) -> Result<&'a FieldSpec, AcrossError> {
    view.visible(fields).find(|f| f.key == key && f.filterable).ok_or_else(|| AcrossError::NotFilterable(key.to_string()))
}

fn check_limit_and_range(query: &AcrossQuery) -> Result<u32, AcrossError> {
    if let (Some(from), Some(to)) = (query.from, query.to)
        && to < from
    {
        return Err(AcrossError::BadRange);
    }
    Ok(query.limit.clamp(1, MAX_PAGE_ROWS))
}

fn decode_pairs(idx: usize, json: &str) -> rusqlite::Result<Vec<(String, String)>> {
    serde_json::from_str(json).map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e)))
}

/// A customer field's current value at row `br` (import row `ir`): the latest site edit
/// that changed it, else the imported value. Binds the field key twice.
const CUSTOMER_VALUE: &str = "COALESCE(
    (SELECT json_extract(j.value, '$[1]') FROM site_customer_edits e, json_each(e.changes) j
      WHERE e.batch_id = br.batch_id AND e.row_id = br.id AND json_extract(j.value, '$[0]') = ?
      ORDER BY e.edited_at DESC, e.edit_id DESC LIMIT 1),
    (SELECT json_extract(j.value, '$[1]') FROM json_each(ir.fields) j WHERE json_extract(j.value, '$[0]') = ?),
    '')";

/// Who has customer row `br`: the agent of its latest call, else of its latest edit.
const CUSTOMER_AGENT: &str = "COALESCE(
    (SELECT a.agent FROM call_attempts a WHERE a.batch_id = br.batch_id AND a.row_id = br.id AND a.agent IS NOT NULL
      ORDER BY a.started_at DESC LIMIT 1),
    (SELECT e.agent FROM site_customer_edits e WHERE e.batch_id = br.batch_id AND e.row_id = br.id
      ORDER BY e.edited_at DESC, e.edit_id DESC LIMIT 1))";

/// A business-record field's value in record `r`. Binds the field key once.
const RECORD_VALUE: &str =
    "COALESCE((SELECT json_extract(j.value, '$[1]') FROM json_each(r.record) j WHERE json_extract(j.value, '$[0]') = ?), '')";

impl Store {
    /// The project as `scope` may see it, or `UnknownProject`.
    fn across_view(&self, conn: &Connection, scope: &Scope, project_id: i64) -> Result<View, AcrossError> {
        let project = load_project(conn, project_id)?.filter(|_| scope.project(project_id)).ok_or(AcrossError::UnknownProject(project_id))?;
        let sites = if scope.is_admin() {
            None
        } else {
            let mut all: BTreeSet<i64> = project.site_ids.iter().copied().collect();
            let mut stmt = conn.prepare_cached("SELECT DISTINCT site_id FROM batches WHERE project_id = ?1")?;
            for site in stmt.query_map([project_id], |r| r.get::<_, i64>(0))? {
                all.insert(site?);
            }
            Some(all.into_iter().filter(|&site| scope.project_site(project_id, site)).collect())
        };
        Ok(View { project, sites, withhold_hidden: !scope.is_admin() })
    }

    /// One page of a project's customer data, newest dispatch first.
    pub fn customer_data(&self, scope: &Scope, query: &AcrossQuery) -> Result<DataPage<CustomerData>, AcrossError> {
        let limit = check_limit_and_range(query)?;
        let after: Option<i64> = match &query.after {
            Some(text) => Some(text.strip_prefix('r').and_then(|n| n.parse().ok()).ok_or_else(|| AcrossError::BadCursor(text.clone()))?),
            None => None,
        };
        let conn = self.conn();
        let view = self.across_view(&conn, scope, query.project_id)?;
        let fields = view.project.customer_fields.clone();
        let mut conditions = Conditions::default();
        if let Some(phone) = query.phone.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
            conditions.push("br.phone = ?", [SqlValue::Text(phone.to_string())]);
        }
        if let Some(agent) = query.agent.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
            conditions.push(&format!("{CUSTOMER_AGENT} = ?"), [SqlValue::Text(agent.to_string())]);
        }
        for (key, value) in query.fields.iter().filter(|(_, v)| !v.trim().is_empty()) {
            let field = filter_field(&view, &fields, key)?;
            field_condition(&mut conditions, CUSTOMER_VALUE, 2, field, value)?;
        }
        // The project's batches in view, newest first; each is read through its
        // (batch_id, id) index from the cursor down until the page is full.
        let batches: Vec<(i64, i64)> = {
            let mut stmt = conn.prepare_cached(
                "SELECT id, site_id FROM batches WHERE project_id = ?1 AND deleted = 0 AND created_at >= ?2 AND created_at < ?3
                   AND (?4 IS NULL OR id = ?4) ORDER BY id DESC",
            )?;
            let range = (query.from.unwrap_or(i64::MIN), query.to.unwrap_or(i64::MAX));
            stmt.query_map(params![query.project_id, range.0, range.1, query.batch_id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?
        };
        let mut stmt = conn.prepare(&customer_select(&conditions.sql))?;
        let mut rows = Vec::new();
        let mut more = false;
        for (batch_id, site_id) in batches {
            if !view.site_allowed(site_id, query.site_id) {
                continue;
            }
            let want = (limit as usize + 1).saturating_sub(rows.len());
            let mut bound: Vec<SqlValue> = vec![SqlValue::Integer(batch_id), SqlValue::Integer(after.unwrap_or(i64::MAX))];
            bound.extend(conditions.values.iter().cloned());
            bound.push(SqlValue::Integer(want as i64));
            let found = stmt.query_map(params_from_iter(bound), |r| {
                let fields_json: String = r.get(6)?;
                Ok((
                    CustomerData {
                        row_id: r.get(0)?,
                        batch_id: r.get(1)?,
                        batch_name: r.get(2)?,
                        site_id: r.get(3)?,
                        site_name: r.get(4)?,
                        phone: r.get(5)?,
                        agent: r.get(8)?,
                        dispatched_at: r.get(7)?,
                        last_edited_at: None,
                        last_edited_by: None,
                        values: Vec::new(),
                    },
                    decode_pairs(6, &fields_json)?,
                ))
            })?;
            for row in found {
                rows.push(row?);
            }
            if rows.len() > limit as usize {
                rows.truncate(limit as usize);
                more = true;
                break;
            }
        }
        drop(stmt);
        let mut out = Vec::with_capacity(rows.len());
        for (mut row, mut pairs) in rows {
            let mut edits = conn.prepare_cached(
                "SELECT agent, edited_at, changes FROM site_customer_edits WHERE batch_id = ?1 AND row_id = ?2 ORDER BY edited_at, edit_id",
            )?;
            for edit in edits.query_map(params![row.batch_id, row.row_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?)))? {
                let (agent, at, changes) = edit?;
                pairs.extend(decode_pairs(2, &changes)?);
                row.last_edited_at = Some(at);
                row.last_edited_by = Some(agent);
            }
            row.values = view.values(&fields, &pairs);
            row.phone = view.phone(std::mem::take(&mut row.phone));
            out.push(row);
        }
        let next = if more { out.last().map(|r| format!("r{}", r.row_id)) } else { None };
        Ok(DataPage { columns: view.columns(&fields), rows: out, next })
    }

    /// One page of a project's business records from all its sites, newest saved first.
    ///
    /// A project of few batches (most) is read batch by batch through
    /// `business_records(batch_id, saved_at, …)` and the pages merged, so a quiet project
    /// is not paged by walking every busier project's newer records; a project of many
    /// batches walks the time index `business_records(saved_at, …)` instead, which bounds
    /// the work by the page rather than by the number of batches.
    pub fn business_data(&self, scope: &Scope, query: &AcrossQuery) -> Result<DataPage<BusinessData>, AcrossError> {
        self.business_data_by(scope, query, PER_BATCH_MAX)
    }

    /// [`Store::business_data`], reading batch by batch up to `per_batch_max` batches (the
    /// tests run both ways over the same data).
    fn business_data_by(&self, scope: &Scope, query: &AcrossQuery, per_batch_max: usize) -> Result<DataPage<BusinessData>, AcrossError> {
        let limit = check_limit_and_range(query)?;
        let after = match &query.after {
            Some(text) => Some(parse_record_cursor(text).ok_or_else(|| AcrossError::BadCursor(text.clone()))?),
            None => None,
        };
        let conn = self.conn();
        let view = self.across_view(&conn, scope, query.project_id)?;
        let fields = view.project.record_fields.clone();
        let conditions = record_conditions(&view, &fields, query, after)?;
        let batches: Vec<i64> = {
            let mut stmt = conn.prepare_cached("SELECT id FROM batches WHERE project_id = ?1 AND (?2 IS NULL OR id = ?2) ORDER BY id")?;
            stmt.query_map(params![query.project_id, query.batch_id], |r| r.get(0))?.collect::<Result<_, _>>()?
        };
        let want = limit as usize + 1;
        let mut rows = if batches.len() <= per_batch_max {
            let mut stmt = conn.prepare(&business_select(&conditions.sql, true))?;
            let mut rows = Vec::new();
            for batch in batches {
                let mut bound = vec![SqlValue::Integer(batch)];
                bound.extend(conditions.values.iter().cloned());
                bound.push(SqlValue::Integer(want as i64));
                rows.extend(stmt.query_map(params_from_iter(bound), record_row)?.collect::<Result<Vec<_>, _>>()?);
            }
            rows.sort_unstable_by_key(|(r, _)| std::cmp::Reverse((r.saved_at, r.site_id, r.attempt_id)));
            rows
        } else {
            let mut bound = vec![SqlValue::Integer(query.project_id)];
            bound.extend(conditions.values.iter().cloned());
            bound.push(SqlValue::Integer(want as i64));
            let mut stmt = conn.prepare(&business_select(&conditions.sql, false))?;
            stmt.query_map(params_from_iter(bound), record_row)?.collect::<Result<Vec<_>, _>>()?
        };
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let out: Vec<BusinessData> = rows
            .into_iter()
            .map(|(mut row, pairs)| {
                row.values = view.values(&fields, &pairs);
                row.phone = view.phone(std::mem::take(&mut row.phone));
                row
            })
            .collect();
        let next = if more { out.last().map(|r| format!("s{}.{}.{}", r.saved_at, r.site_id, r.attempt_id)) } else { None };
        Ok(DataPage { columns: view.columns(&fields), rows: out, next })
    }

    /// Marks which fields are filters (筛选条件): `customer` and `record` name the filterable
    /// keys of each list, every other field is not. HQ-side only: no new version goes down.
    pub fn set_filterable_fields(&self, project_id: i64, customer: &[String], record: &[String]) -> Result<(), AcrossError> {
        let conn = self.conn();
        let project = load_project(&conn, project_id)?.ok_or(AcrossError::UnknownProject(project_id))?;
        let mark = |fields: &[FieldSpec], keys: &[String]| -> Result<Vec<FieldSpec>, AcrossError> {
            if let Some(unknown) = keys.iter().find(|k| !fields.iter().any(|f| &f.key == *k)) {
                return Err(AcrossError::NotFilterable(unknown.clone()));
            }
            Ok(fields.iter().map(|f| FieldSpec { filterable: keys.contains(&f.key), ..f.clone() }).collect())
        };
        let customer = mark(&project.customer_fields, customer)?;
        let record = mark(&project.record_fields, record)?;
        let encode = |fields: &[FieldSpec]| serde_json::to_string(fields).unwrap_or_else(|_| "[]".to_string());
        conn.execute(
            "UPDATE projects SET customer_fields = ?2, record_fields = ?3 WHERE id = ?1",
            params![project_id, encode(&customer), encode(&record)],
        )?;
        Ok(())
    }

    /// The site names of a project's batches in view of `scope`, for the filter form.
    pub fn across_sites(&self, scope: &Scope, project_id: i64) -> Result<Vec<(i64, String)>, AcrossError> {
        let conn = self.conn();
        let view = self.across_view(&conn, scope, project_id)?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, name FROM sites WHERE id IN (SELECT site_id FROM batches WHERE project_id = ?1
                                                     UNION SELECT site_id FROM project_sites WHERE project_id = ?1) ORDER BY id",
        )?;
        let sites = stmt
            .query_map([project_id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(sites.into_iter().filter(|(id, _)| view.site_allowed(*id, None)).collect())
    }
}

/// Projects of at most this many batches (in the search) are read batch by batch.
const PER_BATCH_MAX: usize = 64;

/// The business-record search's conditions, in the order [`business_select`] binds them.
fn record_conditions(view: &View, fields: &[FieldSpec], query: &AcrossQuery, after: Option<(i64, i64, i64)>) -> Result<Conditions, AcrossError> {
    let mut conditions = Conditions::default();
    if let Some(sites) = &view.sites {
        let list = sites.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        conditions.push(&format!("r.site_id IN ({list})"), []);
    }
    if let Some(site) = query.site_id {
        conditions.push("r.site_id = ?", [SqlValue::Integer(site)]);
    }
    if let Some(agent) = query.agent.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
        conditions.push("r.agent = ?", [SqlValue::Text(agent.to_string())]);
    }
    if let Some(from) = query.from {
        conditions.push("r.saved_at >= ?", [SqlValue::Integer(from)]);
    }
    if let Some(to) = query.to {
        conditions.push("r.saved_at < ?", [SqlValue::Integer(to)]);
    }
    if let Some(phone) = query.phone.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        conditions.push("br.phone = ?", [SqlValue::Text(phone.to_string())]);
    }
    if let Some((saved_at, site, attempt)) = after {
        conditions.push("(r.saved_at, r.site_id, r.attempt_id) < (?, ?, ?)", [saved_at, site, attempt].map(SqlValue::Integer));
    }
    for (key, value) in query.fields.iter().filter(|(_, v)| !v.trim().is_empty()) {
        let field = filter_field(view, fields, key)?;
        field_condition(&mut conditions, RECORD_VALUE, 1, field, value)?;
    }
    Ok(conditions)
}

/// A row of [`business_select`]: the record and its stored `[key, value]` pairs.
fn record_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(BusinessData, Vec<(String, String)>)> {
    let record: String = r.get(9)?;
    Ok((
        BusinessData {
            site_id: r.get(0)?,
            site_name: r.get(1)?,
            attempt_id: r.get(2)?,
            batch_id: r.get(3)?,
            batch_name: r.get(4)?,
            row_id: r.get(5)?,
            phone: r.get(6)?,
            agent: r.get(7)?,
            saved_at: r.get(8)?,
            values: Vec::new(),
        },
        decode_pairs(9, &record)?,
    ))
}

/// One batch's part of a customer page with `conditions` (each starting with ` AND `);
/// binds the batch, the cursor's row id, the conditions' values, then the row limit.
fn customer_select(conditions: &str) -> String {
    format!(
        "SELECT br.id, b.id, b.name, b.site_id, s.name, br.phone, ir.fields, b.created_at, {CUSTOMER_AGENT}
         FROM batch_rows br JOIN batches b ON b.id = br.batch_id JOIN sites s ON s.id = b.site_id
         JOIN import_rows ir ON ir.id = br.import_row_id
         WHERE br.batch_id = ? AND br.id < ? {conditions} ORDER BY br.id DESC LIMIT ?"
    )
}

/// The business-record page query with `conditions` (each starting with ` AND `): of one
/// batch (`by_batch`; binds the batch) or of the whole project (binds the project); then
/// the conditions' values and the row limit.
fn business_select(conditions: &str, by_batch: bool) -> String {
    // By batch: `business_records(batch_id, saved_at, …)` gives the batch's records in order.
    // Whole project: `+r.batch_id` keeps the planner off the batch index, so the time index
    // gives the order and the cursor's range and no page is sorted in memory.
    let (join, scope) = if by_batch { ("b.id = r.batch_id", "r.batch_id = ?") } else { ("b.id = +r.batch_id", "b.project_id = ?") };
    format!(
        "SELECT r.site_id, s.name, r.attempt_id, r.batch_id, b.name, r.row_id, COALESCE(br.phone, ''), r.agent, r.saved_at, r.record
         FROM business_records r JOIN batches b ON {join} JOIN sites s ON s.id = r.site_id
         LEFT JOIN batch_rows br ON br.id = r.row_id
         WHERE {scope} {conditions} ORDER BY r.saved_at DESC, r.site_id DESC, r.attempt_id DESC LIMIT ?"
    )
}

fn parse_record_cursor(text: &str) -> Option<(i64, i64, i64)> {
    let mut parts = text.strip_prefix('s')?.split('.');
    let cursor = (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
    parts.next().is_none().then_some(cursor)
}

#[cfg(test)]
#[path = "across_tests.rs"]
mod tests;
