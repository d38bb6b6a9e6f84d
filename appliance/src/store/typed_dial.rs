//! 坐席手动外呼 (A11): the attempt of a number an agent typed. Any number may be typed
//! (manual 3.2.1.1). A customer of one of the agent's projects (a row of a verified batch of
//! a task the agent works, not owned by another agent) is dialed as that customer, with
//! their card in the popup; any other number is dialed under the agent's project (the
//! newest batch of a task they work: an empty customer card and that project's business
//! record form) or, for an agent in no task, under no project (batch 0: the site-wide
//! default form, a note). The
//! black list, the project's calling windows and "one call per number at a time" hold as
//! for every dial. The attempt is `manual`: it leaves the row's status alone (the task may
//! still dial it) and goes up as `AttemptKind::Manual`, which HQ's data filter does not
//! count. It dials on the line the agent chose in the desk settings (manual 3.2.1.1: no
//! caller chosen, no manual dial).

use rusqlite::{OptionalExtension, params};
use sync_protocol::mask_middle_digits;

use super::accounts::agent_settings_in;
use super::tasks::task_agents_in;
use super::{ClaimedNumber, DbError, ManualClaim, Store};

/// Why a typed number cannot be dialed.
#[derive(Debug, thiserror::Error)]
pub enum TypedDialError {
    #[error("no caller number is chosen in the desk settings")]
    NoCaller,
    #[error("the agent works no task of that project")]
    NotYours,
    #[error("the number is on the black list")]
    BlackListed,
    #[error("it is {now} China time, outside the project's calling windows ({windows})")]
    OutsideWindows { now: String, windows: String },
    #[error("the number is on another call")]
    BusyNumber,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Store {
    /// Writes the `manual` attempt of `phone` (digits only) for the agent, in one
    /// transaction with its checks; `project_id` narrows the search to one project.
    pub fn claim_typed_number(
        &self,
        project_id: Option<u64>,
        phone: &str,
        user_id: u64,
        username: &str,
        now: i64,
    ) -> Result<ManualClaim, TypedDialError> {
        let minute = super::hq::china_minute(now);
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(DbError::from)?;
        let caller = agent_settings_in(&tx, user_id)?.caller;
        if caller.trim().is_empty() {
            return Err(TypedDialError::NoCaller);
        }
        // The agent's own rows first, then the newest batch.
        // batch, chunk, row, row id, project, ring seconds, answer mode.
        type Candidate = (u64, u32, u32, u64, Option<u64>, u32, String);
        let candidates: Vec<Candidate> = {
            let mut statement = tx
                .prepare(
                    "SELECT r.batch_id, r.chunk_idx, r.row_idx, r.row_id, b.project_id, b.ring_seconds, b.answer_mode
                     FROM batch_rows r JOIN batches b ON b.batch_id = r.batch_id
                     WHERE r.phone = ?1 AND b.verified = 1 AND b.project_id IS NOT NULL
                       AND (?2 IS NULL OR b.project_id = ?2) AND (r.owner IS NULL OR r.owner = ?3)
                     ORDER BY (r.owner IS NOT NULL) DESC, b.imported_at DESC, b.batch_id DESC",
                )
                .map_err(DbError::from)?;
            statement
                .query_map(params![phone, project_id, username], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?))
                })
                .map_err(DbError::from)?
                .collect::<Result<_, _>>()
                .map_err(DbError::from)?
        };
        let mut found = None;
        for candidate in candidates {
            let agents = task_agents_in(&tx, candidate.0)?;
            if agents.is_empty() || agents.contains(&user_id) {
                found = Some(candidate);
                break;
            }
        }
        let found = match found {
            Some(found) => found,
            None => typed_elsewhere(&tx, project_id, user_id)?,
        };
        let (batch_id, chunk_idx, row_idx, row_id, project, ring_seconds, answer_mode) = found;
        let listed: Option<bool> = tx
            .query_row("SELECT listed FROM blacklist WHERE phone = ?1", [phone], |row| row.get(0))
            .optional()
            .map_err(DbError::from)?;
        if listed == Some(true) {
            return Err(TypedDialError::BlackListed);
        }
        let windows: Vec<(i64, i64)> = {
            let mut statement = tx
                .prepare("SELECT start_minute, end_minute FROM calling_windows WHERE project_id = ?1 ORDER BY start_minute")
                .map_err(DbError::from)?;
            statement
                .query_map([project.unwrap_or_default()], |row| Ok((row.get(0)?, row.get(1)?)))
                .map_err(DbError::from)?
                .collect::<Result<_, _>>()
                .map_err(DbError::from)?
        };
        if !windows.is_empty() && !windows.iter().any(|(start, end)| *start <= minute && minute < *end) {
            let hhmm = |m: i64| format!("{:02}:{:02}", m / 60, m % 60);
            let list: Vec<String> = windows.iter().map(|(start, end)| format!("{}-{}", hhmm(*start), hhmm(*end))).collect();
            return Err(TypedDialError::OutsideWindows { now: hhmm(minute), windows: list.join(", ") });
        }
        let dialing: Option<u64> = tx
            .query_row("SELECT attempt_id FROM attempts WHERE phone = ?1 AND state = 'dialing'", [phone], |row| row.get(0))
            .optional()
            .map_err(DbError::from)?;
        if dialing.is_some() {
            return Err(TypedDialError::BusyNumber);
        }
        tx.execute(
            "INSERT INTO attempts (batch_id, chunk_idx, row_idx, row_id, phone, state, started_at, agent, kind)
             VALUES (?1, ?2, ?3, ?4, ?5, 'dialing', ?6, ?7, 'manual')",
            params![batch_id, chunk_idx, row_idx, row_id, phone, now, username],
        )
        .map_err(DbError::from)?;
        let attempt_id = tx.last_insert_rowid() as u64;
        tx.commit().map_err(DbError::from)?;
        Ok(ManualClaim {
            claimed: ClaimedNumber { attempt_id, batch_id, row_id, phone: phone.to_string(), owner: None },
            caller,
            ring_seconds,
            auto_answer: answer_mode != "ring",
            ringing_phone: mask_middle_digits(phone),
        })
    }
}

/// `chunk_idx` of a typed number's attempt with no customer row: no row has it, so the
/// popup shows an empty customer card.
pub(super) const NO_ROW_CHUNK: u32 = u32::MAX;

/// Where a typed number that is no customer of the agent's is recorded: the newest verified
/// batch of a task the agent works (of `project_id` if given), else batch 0 (no project).
fn typed_elsewhere(
    tx: &rusqlite::Transaction<'_>,
    project_id: Option<u64>,
    user_id: u64,
) -> Result<(u64, u32, u32, u64, Option<u64>, u32, String), TypedDialError> {
    let batches: Vec<(u64, Option<u64>, u32, String)> = {
        let mut statement = tx
            .prepare(
                "SELECT b.batch_id, b.project_id, b.ring_seconds, b.answer_mode FROM batches b
                 WHERE b.verified = 1 AND b.project_id IS NOT NULL AND (?1 IS NULL OR b.project_id = ?1)
                 ORDER BY b.imported_at DESC, b.batch_id DESC",
            )
            .map_err(DbError::from)?;
        statement
            .query_map(params![project_id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
            .map_err(DbError::from)?
            .collect::<Result<_, _>>()
            .map_err(DbError::from)?
    };
    for (batch_id, project, ring_seconds, answer_mode) in batches {
        let agents = task_agents_in(tx, batch_id)?;
        if agents.is_empty() || agents.contains(&user_id) {
            return Ok((batch_id, NO_ROW_CHUNK, 0, 0, project, ring_seconds, answer_mode));
        }
    }
    if project_id.is_some() {
        return Err(TypedDialError::NotYours);
    }
    Ok((0, NO_ROW_CHUNK, 0, 0, None, 35, "auto".to_string()))
}
