//! Callbacks after they are made (A7): 重新编辑 (the agent edits and reschedules one that
//! is not done), who may take it (this agent only, or anyone in the task), and the hand-over
//! of a due callback whose agent is absent to its task once the site admin's grace period
//! has passed. Each change to a callback goes up like any other (`push_callback_event`).

use rusqlite::{OptionalExtension, params};

use super::callbacks::{CallbackError, check_callback_text, push_callback_event};
use super::tasks::task_agents_in;
use super::{DbError, Store};

/// Who may take a callback when it comes due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallbackScope {
    /// Only the agent who scheduled it (VICIdial's USERONLY).
    Agent,
    /// Any agent of the task (VICIdial's ANYONE); also where an absent agent's callback goes.
    Task,
}

impl CallbackScope {
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackScope::Agent => "agent",
            CallbackScope::Task => "task",
        }
    }

    pub fn parse(text: &str) -> Option<CallbackScope> {
        match text {
            "agent" => Some(CallbackScope::Agent),
            "task" => Some(CallbackScope::Task),
            _ => None,
        }
    }
}

/// An agent's edit of one of their callbacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackEdit {
    pub title: String,
    pub due_at: i64,
    pub note: String,
    pub scope: CallbackScope,
}

/// Longest grace the site admin may set: a day.
pub const MAX_GRACE_MINUTES: u32 = 1440;

impl Store {
    /// 重新编辑: the agent changes the title, time, note and scope of their own callback
    /// that is neither done nor cancelled. An armed (waiting) callback stays armed at its
    /// new time; a hand-over already made is undone when the agent takes it back.
    pub fn edit_callback(&self, callback_id: u64, agent: &str, edit: &CallbackEdit) -> Result<(), CallbackError> {
        check_callback_text(&edit.title, &edit.note)?;
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
        if state == "done" || state == "cancelled" {
            return Err(CallbackError::Invalid(format!("callback {callback_id} is {state}")));
        }
        tx.execute(
            "UPDATE callbacks SET title = ?2, due_at = ?3, note = ?4, scope = ?5, handed_over_at = NULL
             WHERE callback_id = ?1",
            params![callback_id, edit.title.trim(), edit.due_at, edit.note.trim(), edit.scope.as_str()],
        )
        .map_err(DbError::from)?;
        push_callback_event(&tx, callback_id)?;
        tx.commit().map_err(DbError::from)?;
        self.notify.notify_one();
        Ok(())
    }

    /// Minutes a due callback waits for its absent agent before it goes to the task.
    pub fn callback_grace_minutes(&self) -> Result<u32, DbError> {
        let conn = self.lock();
        let minutes: Option<u32> = conn
            .query_row("SELECT callback_grace_minutes FROM desk_settings WHERE id = 1", [], |row| row.get(0))
            .optional()?;
        Ok(minutes.unwrap_or(10))
    }

    /// The site admin sets the grace period (0 to [`MAX_GRACE_MINUTES`]); false if out of range.
    pub fn set_callback_grace_minutes(&self, minutes: u32) -> Result<bool, DbError> {
        if minutes > MAX_GRACE_MINUTES {
            return Ok(false);
        }
        let conn = self.lock();
        conn.execute(
            "INSERT INTO desk_settings (id, callback_grace_minutes) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET callback_grace_minutes = excluded.callback_grace_minutes",
            [minutes],
        )?;
        Ok(true)
    }

    /// Gives a due "this agent only" callback to its task (anyone in it may take it now);
    /// true if it was handed over by this call.
    pub fn hand_over_callback(&self, callback_id: u64, now: i64) -> Result<bool, DbError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let changed = tx.execute(
            "UPDATE callbacks SET scope = 'task', handed_over_at = ?2
             WHERE callback_id = ?1 AND scope = 'agent' AND state = 'waiting'",
            params![callback_id, now],
        )?;
        if changed == 1 {
            push_callback_event(&tx, callback_id)?;
        }
        tx.commit()?;
        Ok(changed == 1)
    }

    /// The agents who may take a task callback of `batch_id`: the task's agents (empty:
    /// the task names none, so any agent may).
    pub fn callback_takers(&self, batch_id: u64) -> Result<Vec<u64>, DbError> {
        let conn = self.lock();
        task_agents_in(&conn, batch_id)
    }
}
