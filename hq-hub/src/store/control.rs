//! Batch control (任务执行顺序控制): priority changes, delete, one-click start / pause (一键启停),
//! the numbers of a batch, and attribution rules (归属设置) for auto batches.
//!
//! Priority 0-100: higher dials first, equal priority by import time (the site orders them);
//! 0 ends a batch for ever, 1 pauses it. Every change bumps the batch's `control_version` and
//! goes down as a [`BatchControl`] in the same transaction, so a site applies changes in order
//! and ignores a stale one. A one-click pause remembers each batch's priority
//! (`resume_priority`) so that one-click start restores it.

use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};
use sync_protocol::{BatchControl, DownEvent};

use super::access::Scope;
use super::batches::{append_down, attribution_rules, AttributionRule, DispatchError};
use super::{DbError, Store};

/// Failure to change a batch.
#[derive(Debug, thiserror::Error)]
pub enum BatchControlError {
    /// No such batch (or not visible to this account).
    #[error("batch {0} does not exist")]
    UnknownBatch(i64),
    /// Priority outside 0..=100.
    #[error("priority {0} is out of range: use 0 (end for ever), 1 (pause) or 2 to 100 (higher dials first)")]
    Priority(i64),
    /// The batch was ended (priority 0) and cannot be reopened.
    #[error("batch {0} has ended (priority 0) and cannot be reopened: dispatch the file again for a new batch")]
    Ended(i64),
    /// No such category.
    #[error("category {0} does not exist")]
    UnknownCategory(i64),
    /// A down-log event could not be encoded.
    #[error("cannot encode the batch control: {0}")]
    Encode(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for BatchControlError {
    fn from(e: rusqlite::Error) -> Self {
        BatchControlError::Db(DbError(e))
    }
}

/// Failure to save attribution rules.
#[derive(Debug, thiserror::Error)]
pub enum AttributionError {
    /// No such project.
    #[error("sub-project {0} does not exist")]
    UnknownProject(i64),
    /// A rule names a field the project does not have.
    #[error("rule {number}: field {key:?} is not a customer field of this sub-project: add an attribution field such as 指定团队 first")]
    UnknownField { number: usize, key: String },
    /// A rule has no value.
    #[error("rule {0}: the value is empty: type the value the field must have")]
    EmptyValue(usize),
    /// A rule names a site that does not take part.
    #[error("rule {number}: site {site} does not take part in this sub-project")]
    NotParticipating { number: usize, site: i64 },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for AttributionError {
    fn from(e: rusqlite::Error) -> Self {
        AttributionError::Db(DbError(e))
    }
}

/// A number of a batch as "view numbers" (查看号码) shows it.
#[derive(Debug, Clone, Serialize)]
#[derive(utoipa::ToSchema)]
pub struct BatchNumber {
    pub row_id: i64,
    /// Masked if the project hides the middle four digits.
    pub phone: String,
    pub attempts: i64,
    /// The last attempt's outcome, if dialed.
    pub last_outcome: Option<String>,
}

/// One-click action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum OneClickAction {
    Start,
    Pause,
}

/// Sets a batch's priority and sends the control down; returns the new control version.
fn control(tx: &Transaction<'_>, batch_id: i64, site_id: i64, priority: i64, resume: Option<i64>) -> Result<u64, BatchControlError> {
    tx.execute(
        "UPDATE batches SET priority = ?2, resume_priority = ?3, control_version = control_version + 1 WHERE id = ?1",
        params![batch_id, priority, resume],
    )?;
    let version: i64 = tx.query_row("SELECT control_version FROM batches WHERE id = ?1", [batch_id], |r| r.get(0))?;
    let event = DownEvent::BatchControl(BatchControl { batch_id: batch_id as u64, version: version as u64, priority: priority.clamp(0, 100) as u8 });
    append_down(tx, site_id, &event).map_err(|e: DispatchError| BatchControlError::Encode(e.to_string()))?;
    Ok(version as u64)
}

impl Store {
    /// Visible, not deleted batch → (project, site, priority).
    fn batch_for(&self, tx: &Transaction<'_>, id: i64, scope: &Scope) -> Result<(i64, i64, i64), BatchControlError> {
        let found: Option<(i64, i64, i64)> = tx
            .query_row("SELECT project_id, site_id, priority FROM batches WHERE id = ?1 AND deleted = 0", [id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        match found {
            Some((project, site, priority)) if scope.project_site(project, site) => Ok((project, site, priority)),
            _ => Err(BatchControlError::UnknownBatch(id)),
        }
    }

    /// 调优先级: 0 ends for ever, 1 pauses, 2..=100 runs. Returns the control version sent.
    pub fn set_priority(&self, id: i64, priority: i64, scope: &Scope) -> Result<u64, BatchControlError> {
        if !(0..=100).contains(&priority) {
            return Err(BatchControlError::Priority(priority));
        }
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let (_, site, current) = self.batch_for(&tx, id, scope)?;
        if current == 0 {
            return Err(BatchControlError::Ended(id));
        }
        let version = control(&tx, id, site, priority, None)?;
        tx.commit()?;
        drop(conn);
        self.down_notify_for(site as u64).notify_one();
        Ok(version)
    }

    /// Deletes a batch: it ends at its site (priority 0) and leaves the task list.
    pub fn delete_batch(&self, id: i64, scope: &Scope) -> Result<(), BatchControlError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let (_, site, current) = self.batch_for(&tx, id, scope)?;
        if current != 0 {
            control(&tx, id, site, 0, None)?;
        }
        tx.execute("UPDATE batches SET deleted = 1 WHERE id = ?1", [id])?;
        tx.commit()?;
        drop(conn);
        self.down_notify_for(site as u64).notify_one();
        Ok(())
    }

    /// One-click start / pause of every batch of every project, or of one category's projects,
    /// that `scope` may control. Returns how many batches changed.
    pub fn one_click(&self, action: OneClickAction, category_id: Option<i64>, scope: &Scope) -> Result<u64, BatchControlError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if let Some(category) = category_id
            && tx.query_row("SELECT 1 FROM categories WHERE id = ?1", [category], |_| Ok(())).optional()?.is_none()
        {
            return Err(BatchControlError::UnknownCategory(category));
        }
        let candidates: Vec<(i64, i64, i64, i64, Option<i64>)> = {
            let mut stmt = tx.prepare(
                "SELECT b.id, b.project_id, b.site_id, b.priority, b.resume_priority FROM batches b JOIN projects p ON p.id = b.project_id
                 WHERE b.deleted = 0 AND b.priority > 0 AND (?1 IS NULL OR p.category_id = ?1) ORDER BY b.id",
            )?;
            stmt.query_map([category_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
                .collect::<Result<Vec<_>, _>>()?
        };
        let mut changed = 0;
        let mut sites = std::collections::BTreeSet::new();
        for (id, project, site, priority, resume) in candidates {
            if !scope.project_site(project, site) {
                continue;
            }
            match action {
                OneClickAction::Pause if priority > 1 => {
                    control(&tx, id, site, 1, Some(priority))?;
                }
                OneClickAction::Start if priority == 1 && resume.is_some() => {
                    control(&tx, id, site, resume.unwrap_or(2), None)?;
                }
                _ => continue,
            }
            changed += 1;
            sites.insert(site);
        }
        tx.commit()?;
        drop(conn);
        for site in sites {
            self.down_notify_for(site as u64).notify_one();
        }
        Ok(changed)
    }

    /// 查看号码: a batch's numbers with how often each was dialed.
    pub fn batch_numbers(&self, id: i64, scope: &Scope) -> Result<Vec<BatchNumber>, BatchControlError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let (project, _, _) = self.batch_for(&tx, id, scope)?;
        let hide: bool = tx.query_row("SELECT hide_middle_digits FROM projects WHERE id = ?1", [project], |r| r.get(0))?;
        let mut stmt = tx.prepare(
            "SELECT br.id, br.phone,
                (SELECT COUNT(*) FROM call_attempts a WHERE a.batch_id = br.batch_id AND a.row_id = br.id),
                (SELECT a.outcome FROM call_attempts a WHERE a.batch_id = br.batch_id AND a.row_id = br.id ORDER BY a.started_at DESC LIMIT 1)
             FROM batch_rows br WHERE br.batch_id = ?1 ORDER BY br.id",
        )?;
        let rows = stmt
            .query_map([id], |r| {
                let phone: String = r.get(1)?;
                Ok(BatchNumber {
                    row_id: r.get(0)?,
                    phone: if hide { crate::phone::mask_middle(&phone) } else { phone },
                    attempts: r.get(2)?,
                    last_outcome: r.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Replaces a project's attribution rules (归属设置).
    pub fn set_attribution_rules(&self, project_id: i64, rules: &[AttributionRule]) -> Result<(), AttributionError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let project = super::projects::load_project(&tx, project_id)?.ok_or(AttributionError::UnknownProject(project_id))?;
        tx.execute("DELETE FROM attribution_rules WHERE project_id = ?1", [project_id])?;
        for (idx, rule) in rules.iter().enumerate() {
            let number = idx + 1;
            if !project.customer_fields.iter().any(|f| f.key == rule.field_key) {
                return Err(AttributionError::UnknownField { number, key: rule.field_key.clone() });
            }
            if rule.value.trim().is_empty() {
                return Err(AttributionError::EmptyValue(number));
            }
            if !project.site_ids.contains(&rule.site_id) {
                return Err(AttributionError::NotParticipating { number, site: rule.site_id });
            }
            tx.execute(
                "INSERT INTO attribution_rules (project_id, field_key, value, site_id, agent) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![project_id, rule.field_key, rule.value.trim(), rule.site_id, rule.agent.trim()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A project's attribution rules.
    pub fn attribution_rules(&self, project_id: i64) -> Result<Vec<AttributionRule>, DbError> {
        Ok(attribution_rules(&self.conn(), project_id)?)
    }
}
