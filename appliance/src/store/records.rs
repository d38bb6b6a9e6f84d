//! Call records, business records and customers: saving an agent's business record against
//! the project's form, the records and customer lists (built through [`Viewer`](super::Viewer)),
//! agents' edits of customer fields, and the projects the site holds.

use rusqlite::{Connection, OptionalExtension, params};
use sync_protocol::{BusinessRecord, CustomerEdit, FieldDef, FieldKind, ProjectDef, UpEvent};

use super::viewer::DefCache;
use super::{DbError, PopupField, Store, Viewer, corrupt, load_project, now_unix, push_outbox, visible_fields};

/// Why a business record could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveRecordError {
    /// No attempt with that id.
    #[error("call {0} does not exist")]
    NoSuchAttempt(u64),
    /// The call was bridged to another agent (or to none).
    #[error("call {0} was not yours; only the agent who took it can save its record")]
    NotYours(u64),
    /// A value failed the project's form rules; the message names the field.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Store {
    /// Attempts bridged to `agent` whose business record is not saved yet, oldest first.
    pub fn unsaved_attempts(&self, agent: &str) -> Result<Vec<u64>, DbError> {
        let conn = self.lock();
        let mut statement = conn.prepare(
            "SELECT a.attempt_id FROM attempts a
             WHERE a.agent = ?1 AND (a.kind IN ('predictive', 'inbound') OR a.popped = 1)
               AND NOT EXISTS (SELECT 1 FROM business_records r WHERE r.attempt_id = a.attempt_id)
             ORDER BY a.attempt_id",
        )?;
        let ids = statement.query_map([agent], |row| row.get(0))?.collect::<Result<Vec<_>, _>>()?;
        Ok(ids)
    }

    /// Saves (or re-saves) the business record of an attempt taken by `agent`, checked
    /// against the project's form, with its [`UpEvent::BusinessRecord`] in the same
    /// transaction.
    pub fn save_record(
        &self,
        attempt_id: u64,
        agent: &str,
        values: &[(String, String)],
    ) -> Result<BusinessRecord, SaveRecordError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(DbError::from)?;
        let found: Option<(u64, u64, Option<String>, Option<u64>)> = tx
            .query_row(
                // An unknown caller's inbound call has no batch: its record has no field.
                "SELECT a.batch_id, a.row_id, a.agent, b.project_id
                 FROM attempts a LEFT JOIN batches b ON b.batch_id = a.batch_id
                 WHERE a.attempt_id = ?1",
                [attempt_id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .optional()
            .map_err(DbError::from)?;
        let Some((batch_id, row_id, owner, project_id)) = found else {
            return Err(SaveRecordError::NoSuchAttempt(attempt_id));
        };
        let owner = owner.or_else(|| self.pending().get(&attempt_id).cloned());
        if owner.as_deref() != Some(agent) {
            return Err(SaveRecordError::NotYours(attempt_id));
        }
        let def = load_project(&tx, project_id.unwrap_or_default())?;
        let record_fields = match (def, project_id) {
            (Some(def), _) => def.record_fields,
            (None, None) => super::default_form::default_record_fields_in(&tx)?,
            (None, Some(_)) => Vec::new(),
        };
        let checked = check_record(&record_fields, values)?;
        let record = BusinessRecord {
            attempt_id,
            batch_id,
            row_id,
            agent: agent.to_string(),
            saved_at: now_unix(),
            values: checked,
        };
        let values_json = serde_json::to_string(&record.values)
            .map_err(|e| corrupt("business record values", e))?;
        tx.execute(
            "INSERT INTO business_records (attempt_id, agent, saved_at, record_values)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (attempt_id) DO UPDATE
             SET agent = excluded.agent, saved_at = excluded.saved_at,
                 record_values = excluded.record_values",
            params![attempt_id, agent, record.saved_at, values_json],
        )
        .map_err(DbError::from)?;
        push_outbox(&tx, &UpEvent::BusinessRecord(record.clone()))?;
        let mut pending = reports::Pending::default();
        super::reports::record_business(&tx, project_id.unwrap_or_default(), attempt_id, &record.values, &mut pending)?;
        tx.commit().map_err(DbError::from)?;
        // Still under the write lock: the engine gets the deltas in commit order.
        self.apply_report(pending);
        drop(conn);
        self.notify.notify_one();
        Ok(record)
    }
}

/// Checks submitted values against the form; returns them in the form's order.
fn check_record(
    fields: &[FieldDef],
    values: &[(String, String)],
) -> Result<Vec<(String, String)>, SaveRecordError> {
    for (key, _) in values {
        if !fields.iter().any(|field| field.key == *key && !field.hidden && !field.read_only) {
            return Err(SaveRecordError::Invalid(format!(
                "field \"{key}\" is not an editable field of this project's business record"
            )));
        }
    }
    let mut checked = Vec::new();
    for field in fields.iter().filter(|field| !field.hidden && !field.read_only) {
        let value = values
            .iter()
            .find(|(key, _)| *key == field.key)
            .map(|(_, value)| value.trim().to_string())
            .unwrap_or_default();
        if value.is_empty() {
            if field.required {
                return Err(SaveRecordError::Invalid(format!(
                    "field \"{}\" ({}) is required",
                    field.title, field.key
                )));
            }
            continue;
        }
        if value.chars().count() > 2000 {
            return Err(SaveRecordError::Invalid(format!(
                "field \"{}\" is longer than 2000 characters",
                field.title
            )));
        }
        if let FieldKind::SingleChoice(options) = &field.kind
            && !options.contains(&value)
        {
            return Err(SaveRecordError::Invalid(format!(
                "field \"{}\": \"{value}\" is not one of its options ({})",
                field.title,
                options.join(" / ")
            )));
        }
        checked.push((field.key.clone(), value));
    }
    Ok(checked)
}

/// The row's values with the agents' edits laid over HQ's.
pub(super) fn row_values(conn: &Connection, batch_id: u64, row_id: u64, blob: &[u8]) -> Result<Vec<(String, String)>, DbError> {
    let mut values: Vec<(String, String)> = postcard::from_bytes(blob).map_err(|e| corrupt("customer row", e))?;
    let mut statement = conn.prepare("SELECT field, value FROM customer_edits WHERE batch_id = ?1 AND row_id = ?2")?;
    let edits = statement
        .query_map(params![batch_id, row_id], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    for (field, value) in edits {
        match values.iter_mut().find(|(key, _)| *key == field) {
            Some(slot) => slot.1 = value,
            None => values.push((field, value)),
        }
    }
    Ok(values)
}

/// Filters of the call-record and business-data lists. `None` is "any".
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct CallFilter {
    pub agent: Option<String>,
    pub project_id: Option<u64>,
    pub batch_id: Option<u64>,
    pub outcome: Option<String>,
    /// Trailing digits of the number. A viewer who sees masked numbers may only give the
    /// last four (more would let them test guesses of the hidden digits).
    pub phone_tail: Option<String>,
    /// Started at or after (unix seconds).
    pub from: Option<i64>,
    /// Started before (unix seconds).
    pub to: Option<i64>,
    /// Only calls with a saved business record.
    #[serde(default)]
    pub with_record: bool,
}

/// One call as the records pages show it, already masked for its viewer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct CallRecordView {
    pub attempt_id: u64,
    /// predictive, one_click or callback.
    pub kind: String,
    pub batch_id: u64,
    pub row_id: u64,
    pub project_id: Option<u64>,
    pub project: String,
    pub phone: String,
    pub started_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub outcome: Option<String>,
    pub hangup_side: Option<String>,
    pub agent: Option<String>,
    pub talk_seconds: u32,
    pub has_recording: bool,
    pub customer: Vec<PopupField>,
    /// Business-record values by field (visible fields only), with titles.
    pub record: Vec<PopupField>,
    pub record_saved_at: Option<i64>,
}

/// A keyset page of [`Store::customers_page`]: rows after customer `after` (batch id, row
/// id: the last row of the page before), of batches imported in `[imported_from,
/// imported_to)` (unix seconds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerPage {
    pub after: Option<(u64, u64)>,
    pub imported_from: Option<i64>,
    pub imported_to: Option<i64>,
}

/// A customer row as the data pages show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct CustomerView {
    pub batch_id: u64,
    pub row_id: u64,
    pub project_id: Option<u64>,
    pub project: String,
    pub phone: String,
    pub status: String,
    /// On HQ's black list: never dialed here, whatever its status says.
    pub hq_black: bool,
    pub owner: Option<String>,
    pub fields: Vec<PopupField>,
    /// The fields the agent may edit (not hidden, not read-only).
    pub editable: Vec<String>,
}

/// Why a customer edit was refused.
#[derive(Debug, thiserror::Error)]
pub enum EditCustomerError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    NotAllowed(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Store {
    /// Calls matching `filter`, newest first, at most `limit`, masked for `viewer`.
    pub fn call_records(&self, viewer: &Viewer, filter: &CallFilter, limit: u32) -> Result<Vec<CallRecordView>, DbError> {
        self.call_records_before(viewer, filter, None, limit)
    }

    /// [`Store::call_records`] one keyset page at a time: calls older than attempt
    /// `before` (the last one of the page before), newest first.
    pub fn call_records_before(&self, viewer: &Viewer, filter: &CallFilter, before: Option<u64>, limit: u32) -> Result<Vec<CallRecordView>, DbError> {
        let conn = self.lock();
        let tail: Option<String> = filter.phone_tail.as_ref().map(|tail| {
            let digits: String = tail.chars().filter(char::is_ascii_alphanumeric).collect();
            if viewer.unmask {
                digits
            } else {
                let skip = digits.chars().count().saturating_sub(4);
                digits.chars().skip(skip).collect()
            }
        });
        let mut statement = conn.prepare(
            "SELECT a.attempt_id, a.kind, a.batch_id, a.row_id, b.project_id, a.phone, a.started_at, a.answered_at,
                    a.ended_at, a.outcome, a.hangup_side, a.agent, a.talk_seconds, a.recording_path,
                    r.fields, br.record_values, br.saved_at
             FROM attempts a
             JOIN batches b ON b.batch_id = a.batch_id
             LEFT JOIN batch_rows r ON r.batch_id = a.batch_id AND r.chunk_idx = a.chunk_idx AND r.row_idx = a.row_idx
             LEFT JOIN business_records br ON br.attempt_id = a.attempt_id
             WHERE (?1 IS NULL OR a.agent = ?1) AND (?2 IS NULL OR b.project_id = ?2)
               AND (?3 IS NULL OR a.batch_id = ?3) AND (?4 IS NULL OR a.outcome = ?4)
               AND (?5 IS NULL OR a.phone LIKE '%' || ?5) AND (?6 IS NULL OR a.started_at >= ?6)
               AND (?7 IS NULL OR a.started_at < ?7) AND (?8 = 0 OR br.attempt_id IS NOT NULL)
               AND (?10 IS NULL OR a.attempt_id < ?10)
             ORDER BY a.attempt_id DESC LIMIT ?9",
        )?;
        let mut rows = statement.query(params![
            filter.agent,
            filter.project_id,
            filter.batch_id,
            filter.outcome,
            tail.filter(|tail| !tail.is_empty()),
            filter.from,
            filter.to,
            filter.with_record,
            limit,
            before
        ])?;
        let mut defs = DefCache::default();
        let mut list = Vec::new();
        while let Some(row) = rows.next()? {
            let batch_id: u64 = row.get(2)?;
            let row_id: u64 = row.get(3)?;
            let project_id: Option<u64> = row.get(4)?;
            let phone: String = row.get(5)?;
            let fields_blob: Option<Vec<u8>> = row.get(14)?;
            let record_json: Option<String> = row.get(15)?;
            let recording: Option<String> = row.get(13)?;
            let values = match &fields_blob {
                Some(blob) => row_values(&conn, batch_id, row_id, blob)?,
                None => Vec::new(),
            };
            let def = defs.get(&conn, project_id)?;
            let record_values: Vec<(String, String)> = match record_json {
                Some(json) => serde_json::from_str(&json).map_err(|e| corrupt("business record", e))?,
                None => Vec::new(),
            };
            let record = match def {
                Some(def) => def
                    .record_fields
                    .iter()
                    .filter(|field| !field.hidden)
                    .map(|field| PopupField {
                        key: field.key.clone(),
                        title: field.title.clone(),
                        value: record_values.iter().find(|(k, _)| *k == field.key).map(|(_, v)| v.clone()).unwrap_or_default(),
                    })
                    .collect(),
                // Under no project (batch 0) the site-wide form keyed its fields by their
                // labels: the values as saved, whatever the form is now.
                None if project_id.is_none() => record_values
                    .iter()
                    .map(|(key, value)| PopupField { key: key.clone(), title: key.clone(), value: value.clone() })
                    .collect(),
                None => Vec::new(),
            };
            list.push(CallRecordView {
                attempt_id: row.get(0)?,
                kind: row.get(1)?,
                batch_id,
                row_id,
                project_id,
                project: def.map(|d| d.name.clone()).unwrap_or_default(),
                phone: viewer.phone(def, &phone),
                started_at: row.get(6)?,
                answered_at: row.get(7)?,
                ended_at: row.get(8)?,
                outcome: row.get(9)?,
                hangup_side: row.get(10)?,
                agent: row.get(11)?,
                talk_seconds: row.get(12)?,
                has_recording: recording.is_some(),
                customer: visible_fields(def, &values),
                record,
                record_saved_at: row.get(16)?,
            });
        }
        Ok(list)
    }

    /// The recording file of a call and the agent who took it.
    pub fn recording_of(&self, attempt_id: u64) -> Result<Option<(std::path::PathBuf, Option<String>)>, DbError> {
        let conn = self.lock();
        let found: Option<(Option<String>, Option<String>)> = conn
            .query_row("SELECT recording_path, agent FROM attempts WHERE attempt_id = ?1", [attempt_id], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        Ok(found.and_then(|(path, agent)| path.map(|path| (std::path::PathBuf::from(path), agent))))
    }

    /// Customer rows: an agent's own (`owner_or_agent`: rows they own or calls they took),
    /// or a project's for the admin, filtered by status and phone tail; masked for `viewer`.
    pub fn customers(&self, viewer: &Viewer, owner_or_agent: Option<&str>, project_id: Option<u64>, status: Option<&str>, limit: u32) -> Result<Vec<CustomerView>, DbError> {
        self.customers_page(viewer, owner_or_agent, project_id, status, &CustomerPage::default(), limit)
    }

    /// [`Store::customers`] one keyset page at a time, optionally only of batches imported
    /// within a span (see [`CustomerPage`]).
    pub fn customers_page(
        &self,
        viewer: &Viewer,
        owner_or_agent: Option<&str>,
        project_id: Option<u64>,
        status: Option<&str>,
        page: &CustomerPage,
        limit: u32,
    ) -> Result<Vec<CustomerView>, DbError> {
        let conn = self.lock();
        let mut statement = conn.prepare(&format!(
            "SELECT r.batch_id, r.row_id, b.project_id, r.phone, r.status, r.owner, r.fields,
                    EXISTS (SELECT 1 FROM blacklist bl WHERE bl.phone = r.phone AND bl.listed = 1)
             FROM batch_rows r JOIN batches b ON b.batch_id = r.batch_id
             WHERE (?1 IS NULL OR r.owner = ?1 OR EXISTS (SELECT 1 FROM attempts a WHERE a.batch_id = r.batch_id
                        AND a.chunk_idx = r.chunk_idx AND a.row_idx = r.row_idx AND a.agent = ?1))
               AND (?2 IS NULL OR b.project_id = ?2) AND (?3 IS NULL OR r.status = ?3)
               AND (?5 IS NULL OR (r.batch_id, r.chunk_idx, r.row_idx) >
                    (SELECT k.batch_id, k.chunk_idx, k.row_idx FROM batch_rows k WHERE k.batch_id = ?5 AND k.row_id = ?6))
               AND (?7 IS NULL OR b.imported_at >= ?7) AND (?8 IS NULL OR b.imported_at < ?8)
               AND {hide}
             ORDER BY r.batch_id, r.chunk_idx, r.row_idx LIMIT ?4",
            hide = super::leases::HIDE_UNDIALED_POOLED,
        ))?;
        let (after_batch, after_row) = match page.after {
            Some((batch_id, row_id)) => (Some(batch_id), Some(row_id)),
            None => (None, None),
        };
        let mut rows = statement.query(params![
            owner_or_agent,
            project_id,
            status,
            limit,
            after_batch,
            after_row,
            page.imported_from,
            page.imported_to
        ])?;
        let mut defs = DefCache::default();
        let mut list = Vec::new();
        while let Some(row) = rows.next()? {
            let batch_id: u64 = row.get(0)?;
            let row_id: u64 = row.get(1)?;
            let project_id: Option<u64> = row.get(2)?;
            let phone: String = row.get(3)?;
            let blob: Vec<u8> = row.get(6)?;
            let values = row_values(&conn, batch_id, row_id, &blob)?;
            let def = defs.get(&conn, project_id)?;
            list.push(CustomerView {
                batch_id,
                row_id,
                project_id,
                project: def.map(|d| d.name.clone()).unwrap_or_default(),
                phone: viewer.phone(def, &phone),
                status: row.get(4)?,
                hq_black: row.get(7)?,
                owner: row.get(5)?,
                fields: visible_fields(def, &values),
                editable: def
                    .map(|d| d.customer_fields.iter().filter(|f| !f.hidden && !f.read_only).map(|f| f.key.clone()).collect())
                    .unwrap_or_default(),
            });
        }
        Ok(list)
    }

    /// An agent edits their own customer's editable fields; the change goes up as a
    /// [`CustomerEdit`] in the same transaction.
    pub fn edit_customer(&self, batch_id: u64, row_id: u64, agent: &str, changes: &[(String, String)]) -> Result<CustomerEdit, EditCustomerError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(DbError::from)?;
        let found: Option<(Option<String>, Option<u64>, bool)> = tx
            .query_row(
                "SELECT r.owner, b.project_id, EXISTS (SELECT 1 FROM attempts a WHERE a.batch_id = r.batch_id
                        AND a.chunk_idx = r.chunk_idx AND a.row_idx = r.row_idx AND a.agent = ?3)
                 FROM batch_rows r JOIN batches b ON b.batch_id = r.batch_id
                 WHERE r.batch_id = ?1 AND r.row_id = ?2",
                params![batch_id, row_id, agent],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()
            .map_err(DbError::from)?;
        let Some((owner, project_id, talked)) = found else {
            return Err(EditCustomerError::NotFound(format!("customer {row_id} is not in batch {batch_id}")));
        };
        if owner.as_deref() != Some(agent) && !talked {
            return Err(EditCustomerError::NotAllowed(format!("customer {row_id} is not one of yours")));
        }
        let def = load_project(&tx, project_id.unwrap_or_default())?;
        let Some(def) = def else {
            return Err(EditCustomerError::Invalid("the project's definition has not arrived from HQ".into()));
        };
        for (key, value) in changes {
            let Some(field) = def.customer_fields.iter().find(|f| f.key == *key && !f.hidden && !f.read_only) else {
                return Err(EditCustomerError::Invalid(format!("field \"{key}\" is not an editable customer field")));
            };
            if field.required && value.trim().is_empty() {
                return Err(EditCustomerError::Invalid(format!("field \"{}\" is required", field.title)));
            }
            if value.chars().count() > 2000 {
                return Err(EditCustomerError::Invalid(format!("field \"{}\" is longer than 2000 characters", field.title)));
            }
        }
        let now = now_unix();
        for (key, value) in changes {
            tx.execute(
                "INSERT INTO customer_edits (batch_id, row_id, field, value, agent, edited_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (batch_id, row_id, field) DO UPDATE SET value = excluded.value, agent = excluded.agent,
                    edited_at = excluded.edited_at",
                params![batch_id, row_id, key, value.trim(), agent, now],
            )
            .map_err(DbError::from)?;
        }
        // The edit's id is the outbox sequence number its entry is about to take: unique
        // on the site for the store's epoch, and nothing else inserts in between.
        let edit_id: u64 = tx
            .query_row(
                "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0) + 1",
                [],
                |row| row.get(0),
            )
            .map_err(DbError::from)?;
        let edit = CustomerEdit {
            edit_id,
            batch_id,
            row_id,
            agent: agent.to_string(),
            edited_at: now,
            changes: changes.iter().map(|(k, v)| (k.clone(), v.trim().to_string())).collect(),
        };
        push_outbox(&tx, &UpEvent::CustomerEdit(edit.clone()))?;
        tx.commit().map_err(DbError::from)?;
        self.notify.notify_one();
        Ok(edit)
    }

    /// Projects the site knows, `(project_id, name)`.
    pub fn projects(&self) -> Result<Vec<(u64, String)>, DbError> {
        let conn = self.lock();
        let mut statement = conn.prepare("SELECT project_id, def FROM projects ORDER BY project_id")?;
        let mut rows = statement.query([])?;
        let mut list = Vec::new();
        while let Some(row) = rows.next()? {
            let blob: Vec<u8> = row.get(1)?;
            let def: ProjectDef = postcard::from_bytes(&blob).map_err(|e| corrupt("project definition", e))?;
            list.push((row.get(0)?, def.name));
        }
        Ok(list)
    }

    /// One project's definition.
    pub fn project(&self, project_id: u64) -> Result<Option<ProjectDef>, DbError> {
        let conn = self.lock();
        load_project(&conn, project_id)
    }

    /// Who took a call, if anyone.
    pub fn attempt_agent(&self, attempt_id: u64) -> Result<Option<String>, DbError> {
        let conn = self.lock();
        let agent: Option<Option<String>> = conn
            .query_row("SELECT agent FROM attempts WHERE attempt_id = ?1", [attempt_id], |row| row.get(0))
            .optional()?;
        Ok(agent.flatten())
    }
}
