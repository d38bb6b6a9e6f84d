//! Changing a sub-project after it was created (H2, H6-H8): its name, its customer and
//! business-record fields (add, edit, reorder, delete), its popup page (详情页设置: script,
//! hiding the middle four digits, per-field 默认 / 必填 / 只读 / 隐藏) and whether it is
//! archived; and 查看号码, a batch's numbers page by page.
//!
//! - A definition edit is [`Store::update_project`] with the project's parameters kept, so it
//!   is a new version sent down the link to every site that has the project, in the same
//!   transaction, exactly as the first definition was.
//! - The manual (2.1.2): "更改项目名称后通话记录还是显示原项目名称". A rename therefore keeps
//!   the old name with the time it stopped being used (`project_names`), and the call records
//!   show the name the project had when the call started (`calls::CALL_COLUMNS`).
//! - Deleting a field leaves the values already saved in records and rows where they are
//!   (nothing is rewritten); they are no longer shown. [`Store::project_usage`] tells the page
//!   how many rows and records a deletion concerns, so it can warn first.
//! - Archiving (归档) moves a project out of the working list into the archived one; its
//!   data, batches, reports and sites' copies stay as they are. It is reversible.

use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

use super::projects::{load_project, CreateProjectError, FieldSpec, ProjectEdit};
use super::{now_unix, DbError, Scope, Store};
use super::control::BatchControlError;

/// What the definition editor sends: everything of a sub-project's definition except its
/// parameters (项目参数), participating sites and admins, which have pages of their own.
#[derive(Debug, Clone, Deserialize)]
#[derive(utoipa::ToSchema)]
pub struct DefinitionEdit {
    pub name: String,
    #[serde(default)]
    pub script: String,
    #[serde(default)]
    pub hide_middle_digits: bool,
    /// In display order. A field with an empty key is new: it is given a free `field_N` key.
    #[serde(default)]
    pub customer_fields: Vec<FieldSpec>,
    #[serde(default)]
    pub record_fields: Vec<FieldSpec>,
}

/// How much data a sub-project holds, for the warning before a field is deleted.
#[derive(Debug, Clone, Serialize)]
#[derive(utoipa::ToSchema)]
pub struct ProjectUsage {
    /// Customer rows dispatched to sites (each holds the customer fields).
    pub rows: i64,
    /// Business records saved by agents (each holds the business-record fields).
    pub records: i64,
}

/// One page of 查看号码.
#[derive(Debug, Clone, Serialize)]
#[derive(utoipa::ToSchema)]
pub struct NumberPage {
    pub numbers: Vec<super::BatchNumber>,
    /// The cursor of the next page (`after` = this row id); `None` on the last page.
    pub next_after: Option<i64>,
    /// Whether numbers are masked (the project hides the middle four digits).
    pub masked: bool,
}

/// Rows per page of 查看号码.
pub const NUMBERS_PAGE: usize = 50;

/// Remembers the name a project is about to stop using (inside the rename's transaction).
pub(super) fn remember_old_name(tx: &Transaction<'_>, id: i64, new_name: &str) -> rusqlite::Result<()> {
    let old: Option<String> = tx.query_row("SELECT name FROM projects WHERE id = ?1", [id], |r| r.get(0)).optional()?;
    if let Some(old) = old.filter(|old| old != new_name) {
        tx.execute("INSERT INTO project_names (project_id, name, until_at) VALUES (?1, ?2, ?3)", params![id, old, now_unix()])?;
    }
    Ok(())
}

/// Gives every new field (empty key) a key no other field of its list uses: titles are
/// Chinese, and a key must be `[a-z][a-z0-9_]*`.
fn fill_keys(fields: &mut [FieldSpec]) {
    let mut next = 1;
    for idx in 0..fields.len() {
        if !fields[idx].key.trim().is_empty() {
            continue;
        }
        loop {
            let key = format!("field_{next}");
            next += 1;
            if !fields.iter().any(|f| f.key == key) {
                fields[idx].key = key;
                break;
            }
        }
    }
}

impl Store {
    /// Replaces a sub-project's name, fields and popup page, keeping its parameters: a new
    /// version sent down to its sites. Returns the sites it was sent to.
    pub fn edit_definition(&self, id: i64, edit: &DefinitionEdit) -> Result<Vec<i64>, CreateProjectError> {
        let project = load_project(&self.conn(), id)?.ok_or(CreateProjectError::UnknownProject(id))?;
        let mut customer_fields = edit.customer_fields.clone();
        let mut record_fields = edit.record_fields.clone();
        fill_keys(&mut customer_fields);
        fill_keys(&mut record_fields);
        let full = ProjectEdit {
            name: edit.name.clone(),
            script: edit.script.clone(),
            hide_middle_digits: edit.hide_middle_digits,
            customer_fields,
            record_fields,
            settings: project.settings,
            phone_mode: project.phone_mode,
        };
        self.update_project(id, &full)
    }

    /// How many dispatched rows and saved records sub-project `id` holds.
    pub fn project_usage(&self, id: i64) -> Result<ProjectUsage, DbError> {
        let conn = self.conn();
        let rows: i64 = conn.query_row(
            "SELECT COALESCE(SUM(n_rows), 0) FROM batches WHERE project_id = ?1",
            [id],
            |r| r.get(0),
        )?;
        // Records are indexed by batch: count batch by batch rather than scanning them all.
        let records: i64 = conn.query_row(
            "SELECT COUNT(*) FROM business_records r WHERE r.batch_id IN (SELECT id FROM batches WHERE project_id = ?1)",
            [id],
            |r| r.get(0),
        )?;
        Ok(ProjectUsage { rows, records })
    }

    /// Archives (or brings back) sub-project `id`. Returns false if there is no such project.
    pub fn set_project_archived(&self, id: i64, archived: bool) -> Result<bool, DbError> {
        let at = archived.then(now_unix);
        let changed = self.conn().execute("UPDATE projects SET archived_at = ?2 WHERE id = ?1", params![id, at])?;
        Ok(changed > 0)
    }

    /// When sub-project `id` was archived; `None` while it is in use (or does not exist).
    pub fn project_archived_at(&self, id: i64) -> Result<Option<i64>, DbError> {
        let at: Option<Option<i64>> =
            self.conn().query_row("SELECT archived_at FROM projects WHERE id = ?1", [id], |r| r.get(0)).optional()?;
        Ok(at.flatten())
    }

    /// The ids of archived sub-projects.
    pub fn archived_projects(&self) -> Result<Vec<i64>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id FROM projects WHERE archived_at IS NOT NULL ORDER BY id")?;
        let ids = stmt.query_map([], |r| r.get(0))?.collect::<Result<Vec<i64>, _>>()?;
        Ok(ids)
    }

    /// 查看号码, one page: the batch's numbers after row `after`, masked when the project
    /// hides the middle four digits, optionally only those matching `search`. A masked page
    /// matches only a whole number or its last digits, so searching cannot reveal the
    /// hidden ones.
    pub fn batch_number_page(&self, id: i64, scope: &Scope, search: &str, after: Option<i64>) -> Result<NumberPage, BatchControlError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let project: Option<(i64, i64)> = tx
            .query_row("SELECT project_id, site_id FROM batches WHERE id = ?1 AND deleted = 0", [id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((project, _)) = project.filter(|(p, s)| scope.project_site(*p, *s)) else {
            return Err(BatchControlError::UnknownBatch(id));
        };
        let masked: bool = tx.query_row("SELECT hide_middle_digits FROM projects WHERE id = ?1", [project], |r| r.get(0))?;
        let digits: String = search.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        let pattern = match (digits.is_empty(), masked) {
            (true, _) => "%".to_string(),
            (false, true) if digits.len() <= 4 => format!("%{digits}"),
            (false, true) => digits.clone(),
            (false, false) => format!("%{digits}%"),
        };
        let mut stmt = tx.prepare(
            "SELECT br.id, br.phone,
                (SELECT COUNT(*) FROM call_attempts a WHERE a.batch_id = br.batch_id AND a.row_id = br.id),
                (SELECT a.outcome FROM call_attempts a WHERE a.batch_id = br.batch_id AND a.row_id = br.id ORDER BY a.started_at DESC LIMIT 1)
             FROM batch_rows br
             WHERE br.batch_id = ?1 AND br.id > ?2 AND br.phone LIKE ?3
             ORDER BY br.id LIMIT ?4",
        )?;
        let limit = NUMBERS_PAGE as i64 + 1;
        let mut numbers = stmt
            .query_map(params![id, after.unwrap_or(0), pattern, limit], |r| {
                let phone: String = r.get(1)?;
                Ok(super::BatchNumber {
                    row_id: r.get(0)?,
                    phone: if masked { crate::phone::mask_middle(&phone) } else { phone },
                    attempts: r.get(2)?,
                    last_outcome: r.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let next_after = if numbers.len() > NUMBERS_PAGE {
            numbers.truncate(NUMBERS_PAGE);
            numbers.last().map(|n| n.row_id)
        } else {
            None
        };
        Ok(NumberPage { numbers, next_after, masked })
    }
}

#[cfg(test)]
#[path = "edits_tests.rs"]
mod tests;
