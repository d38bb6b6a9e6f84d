//! Callbacks (回访): scheduled by an agent after a call or added by the admin, armed, due
//! for the driver to execute, and listed (numbers as the viewer may see them). Every change
//! goes up as an [`UpEvent::Callback`](sync_protocol::UpEvent::Callback).

use rusqlite::{OptionalExtension, Transaction, params};
use sync_protocol::{Callback, CallbackState, UpEvent};

pub use super::callback_edit::CallbackScope;
use super::dialing::attempt_customer;
use super::viewer::DefCache;
use super::{DbError, Store, Viewer, now_unix, push_outbox};

/// A callback as the lists show it (number as the viewer may see it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct CallbackView {
    pub callback_id: u64,
    pub title: String,
    pub phone: String,
    /// new (新建未执行), waiting (等待执行), done (完成), cancelled.
    pub state: String,
    pub created_by: String,
    pub created_at: i64,
    pub agent: String,
    pub due_at: i64,
    pub done_at: Option<i64>,
    pub note: String,
    pub project: String,
    /// `agent` (this agent only) or `task` (anyone in the task).
    pub scope: String,
    /// When a due callback of an absent agent went to its task.
    pub handed_over_at: Option<i64>,
}

/// Why a callback could not be created or changed.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    NotAllowed(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A callback due now, for the driver to execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueCallback {
    pub callback_id: u64,
    pub agent: String,
    /// `agent` (this agent only) or `task` (anyone in the task, or handed over).
    pub scope: String,
    pub due_at: i64,
    pub batch_id: u64,
}

fn callback_state(state: &str) -> CallbackState {
    match state {
        "done" => CallbackState::Done,
        "cancelled" => CallbackState::Cancelled,
        _ => CallbackState::Scheduled,
    }
}

pub(super) fn push_callback_event(tx: &Transaction<'_>, callback_id: u64) -> Result<(), DbError> {
    let callback = tx.query_row(
        "SELECT batch_id, row_id, agent, due_at, note, state, COALESCE(done_at, created_at), title
         FROM callbacks WHERE callback_id = ?1",
        [callback_id],
        |row| {
            let title: String = row.get(7)?;
            let note: String = row.get(4)?;
            let state: String = row.get(5)?;
            Ok(Callback {
                callback_id,
                batch_id: row.get(0)?,
                row_id: row.get(1)?,
                agent: Some(row.get(2)?),
                due_at: row.get(3)?,
                note: if note.is_empty() { title } else { format!("{title}: {note}") },
                state: callback_state(&state),
                changed_at: row.get(6)?,
            })
        },
    )?;
    push_outbox(tx, &UpEvent::Callback(callback))?;
    Ok(())
}

pub(super) fn check_callback_text(title: &str, note: &str) -> Result<(), CallbackError> {
    if title.trim().is_empty() || title.chars().count() > 60 {
        return Err(CallbackError::Invalid("callback title must be 1 to 60 characters".into()));
    }
    if note.chars().count() > 1000 {
        return Err(CallbackError::Invalid("callback note must be at most 1000 characters".into()));
    }
    Ok(())
}

impl Store {
    /// Schedules a callback of the customer of `attempt_id` (the agent's own call), state new.
    pub fn schedule_callback(&self, attempt_id: u64, agent: &str, title: &str, due_at: i64, note: &str) -> Result<u64, CallbackError> {
        self.schedule_callback_for(attempt_id, agent, title, due_at, note, CallbackScope::Agent)
    }

    /// [`Store::schedule_callback`] for this agent only or for anyone in the task.
    pub fn schedule_callback_for(
        &self,
        attempt_id: u64,
        agent: &str,
        title: &str,
        due_at: i64,
        note: &str,
        scope: CallbackScope,
    ) -> Result<u64, CallbackError> {
        check_callback_text(title, note)?;
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(DbError::from)?;
        let found = attempt_customer(&tx, attempt_id)?;
        let Some((batch_id, chunk_idx, row_idx, row_id, phone, owner)) = found else {
            return Err(CallbackError::NotFound(format!("call {attempt_id} does not exist")));
        };
        if owner.as_deref() != Some(agent) {
            return Err(CallbackError::NotAllowed(format!("call {attempt_id} was not yours; schedule callbacks of your own calls")));
        }
        let callback_id = insert_callback(&tx, (batch_id, chunk_idx, row_idx, row_id, &phone), agent, agent, title, due_at, note)?;
        tx.execute("UPDATE callbacks SET scope = ?2 WHERE callback_id = ?1", params![callback_id, scope.as_str()])
            .map_err(DbError::from)?;
        tx.commit().map_err(DbError::from)?;
        self.notify.notify_one();
        Ok(callback_id)
    }

    /// The site admin adds a callback for a customer row to an agent (S10).
    #[allow(clippy::too_many_arguments)] // each is one column of the admin's form
    pub fn add_callback(&self, batch_id: u64, row_id: u64, agent: &str, created_by: &str, title: &str, due_at: i64, note: &str) -> Result<u64, CallbackError> {
        check_callback_text(title, note)?;
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(DbError::from)?;
        let is_agent: Option<String> = tx
            .query_row("SELECT role FROM users WHERE username = ?1", [agent], |row| row.get(0))
            .optional()
            .map_err(DbError::from)?;
        if is_agent.as_deref() != Some("agent") {
            return Err(CallbackError::Invalid(format!("\"{agent}\" is not an agent of this site")));
        }
        let found: Option<(u32, u32, String)> = tx
            .query_row(
                "SELECT chunk_idx, row_idx, phone FROM batch_rows WHERE batch_id = ?1 AND row_id = ?2",
                params![batch_id, row_id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()
            .map_err(DbError::from)?;
        let Some((chunk_idx, row_idx, phone)) = found else {
            return Err(CallbackError::NotFound(format!("customer {row_id} is not in batch {batch_id}")));
        };
        let callback_id = insert_callback(&tx, (batch_id, chunk_idx, row_idx, row_id, &phone), agent, created_by, title, due_at, note)?;
        tx.commit().map_err(DbError::from)?;
        self.notify.notify_one();
        Ok(callback_id)
    }

    /// 定时执行: the agent arms a new callback; at its time the system brings it to them.
    pub fn arm_callback(&self, callback_id: u64, agent: &str) -> Result<(), CallbackError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(DbError::from)?;
        let found: Option<(String, String)> = tx
            .query_row("SELECT agent, state FROM callbacks WHERE callback_id = ?1", [callback_id], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()
            .map_err(DbError::from)?;
        let Some((owner, state)) = found else {
            return Err(CallbackError::NotFound(format!("callback {callback_id} does not exist")));
        };
        if owner != agent {
            return Err(CallbackError::NotAllowed(format!("callback {callback_id} is assigned to another agent")));
        }
        if state != "new" {
            return Err(CallbackError::Invalid(format!("callback {callback_id} is {state}, not new")));
        }
        tx.execute("UPDATE callbacks SET state = 'waiting' WHERE callback_id = ?1", [callback_id]).map_err(DbError::from)?;
        tx.commit().map_err(DbError::from)?;
        Ok(())
    }

    /// Callbacks armed and due at `now`, oldest first.
    pub fn due_callbacks(&self, now: i64) -> Result<Vec<DueCallback>, DbError> {
        let conn = self.lock();
        let mut statement = conn.prepare(
            "SELECT callback_id, agent, scope, due_at, batch_id FROM callbacks
             WHERE state = 'waiting' AND due_at <= ?1 ORDER BY due_at, callback_id",
        )?;
        let due = statement
            .query_map([now], |row| {
                Ok(DueCallback {
                    callback_id: row.get(0)?,
                    agent: row.get(1)?,
                    scope: row.get(2)?,
                    due_at: row.get(3)?,
                    batch_id: row.get(4)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(due)
    }

    /// Callbacks, newest first: an agent's own (`agent`), or all of a project for the admin.
    pub fn callbacks(&self, viewer: &Viewer, agent: Option<&str>, project_id: Option<u64>, state: Option<&str>) -> Result<Vec<CallbackView>, DbError> {
        let conn = self.lock();
        let mut statement = conn.prepare(
            "SELECT c.callback_id, c.title, c.phone, c.state, c.created_by, c.created_at, c.agent, c.due_at,
                    c.done_at, c.note, b.project_id, c.scope, c.handed_over_at
             FROM callbacks c JOIN batches b ON b.batch_id = c.batch_id
             WHERE (?1 IS NULL OR c.agent = ?1) AND (?2 IS NULL OR b.project_id = ?2) AND (?3 IS NULL OR c.state = ?3)
             ORDER BY c.callback_id DESC LIMIT 500",
        )?;
        let mut rows = statement.query(params![agent, project_id, state])?;
        let mut defs = DefCache::default();
        let mut list = Vec::new();
        while let Some(row) = rows.next()? {
            let project_id: Option<u64> = row.get(10)?;
            let def = defs.get(&conn, project_id)?;
            let phone: String = row.get(2)?;
            list.push(CallbackView {
                callback_id: row.get(0)?,
                title: row.get(1)?,
                phone: viewer.phone(def, &phone),
                state: row.get(3)?,
                created_by: row.get(4)?,
                created_at: row.get(5)?,
                agent: row.get(6)?,
                due_at: row.get(7)?,
                done_at: row.get(8)?,
                note: row.get(9)?,
                project: def.map(|d| d.name.clone()).unwrap_or_default(),
                scope: row.get(11)?,
                handed_over_at: row.get(12)?,
            });
        }
        Ok(list)
    }
}

pub(super) fn insert_callback(
    tx: &Transaction<'_>,
    (batch_id, chunk_idx, row_idx, row_id, phone): (u64, u32, u32, u64, &str),
    agent: &str,
    created_by: &str,
    title: &str,
    due_at: i64,
    note: &str,
) -> Result<u64, DbError> {
    tx.execute(
        "INSERT INTO callbacks (batch_id, chunk_idx, row_idx, row_id, phone, agent, created_by, title, note,
                                due_at, state, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'new', ?11)",
        params![batch_id, chunk_idx, row_idx, row_id, phone, agent, created_by, title.trim(), note.trim(), due_at, now_unix()],
    )?;
    let callback_id = tx.last_insert_rowid() as u64;
    push_callback_event(tx, callback_id)?;
    Ok(callback_id)
}
