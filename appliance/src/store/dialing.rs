//! The predictive dialer's side of the store: claiming numbers (HQ's gates checked in the same
//! transaction), marking attempts answered and bridged, and finishing them with their
//! [`UpEvent::CallAttemptDetail`](sync_protocol::UpEvent::CallAttemptDetail) in the outbox; attempts a
//! crash left dialing are finished as failed on start.

use std::path::PathBuf;
use std::sync::MutexGuard;

use rusqlite::{OptionalExtension, params};
use sync_protocol::{AttemptKind, CallAttempt, CallAttemptDetail, HangupSide, Outcome, UpEvent};

use super::{DbError, Store, hq, now_unix, push_outbox};

/// A number taken for dialing: the attempt row is already written as "dialing".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedNumber {
    pub attempt_id: u64,
    pub batch_id: u64,
    pub row_id: u64,
    pub phone: String,
    /// The agent the attribution gave the number to (S4): its call goes to them only.
    pub owner: Option<String>,
}

/// How an attempt ended, as the dialer driver learned it from the lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptEnd {
    pub outcome: Outcome,
    pub hangup_side: Option<HangupSide>,
    pub ended_at: i64,
    pub recording_path: Option<PathBuf>,
    pub recording_sha256: Option<String>,
}

/// The [`AttemptKind`] of an attempt from the path that wrote it (`attempts.kind`:
/// `predictive` by the task's dialer, `one_click` and `callback` by an agent's own call,
/// `manual` for a number dialed by hand).
fn attempt_kind(kind: &str) -> AttemptKind {
    match kind {
        "one_click" => AttemptKind::OneClick,
        "callback" => AttemptKind::Callback,
        "manual" => AttemptKind::Manual,
        "inbound" => AttemptKind::Inbound,
        "ivr" => AttemptKind::Ivr,
        _ => AttemptKind::Predictive,
    }
}

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Connected => "connected",
        Outcome::Busy => "busy",
        Outcome::NoAnswer => "no_answer",
        Outcome::Rejected => "rejected",
        Outcome::Failed => "failed",
        Outcome::Abandoned => "abandoned",
        Outcome::AgentMissed => "agent_missed",
        _ => "failed",
    }
}

fn hangup_name(side: HangupSide) -> &'static str {
    match side {
        HangupSide::Customer => "customer",
        HangupSide::Agent => "agent",
        HangupSide::System => "system",
    }
}

impl Store {
    /// Takes the next number of one batch and writes its attempt as "dialing", in one
    /// transaction (tests and benchmarks; the driver dials a project's task through
    /// [`Store::claim_next_numbers_for_task`], which also keeps owned numbers to their agent). Order: batch priority (desc), import time, then row order; a number that
    /// has an attempt in progress anywhere on the site is skipped. `None` when nothing is left.
    pub fn claim_next_number(&self, batch_id: u64) -> Result<Option<ClaimedNumber>, DbError> {
        Ok(self.claim_next_numbers(batch_id, 1)?.pop())
    }

    /// Takes up to `n` numbers of `batch_id` in one transaction (one disk flush for a whole
    /// wave of dials), in the order [`Store::claim_next_number`] takes them.
    pub fn claim_next_numbers(&self, batch_id: u64, n: usize) -> Result<Vec<ClaimedNumber>, DbError> {
        self.claim_next_numbers_at(batch_id, n, now_unix())
    }

    /// [`Store::claim_next_numbers`] as if the clock read `now` (unix seconds): HQ's
    /// calling windows are judged at that time.
    pub fn claim_next_numbers_at(&self, batch_id: u64, n: usize, now: i64) -> Result<Vec<ClaimedNumber>, DbError> {
        let minute = hq::china_minute(now);
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let sql = format!(
            "SELECT r.chunk_idx, r.row_idx, r.row_id, r.phone
             FROM batch_rows r JOIN batches b ON b.batch_id = r.batch_id
             WHERE r.batch_id = ?1 AND r.status = 'new' AND b.verified = 1
               AND COALESCE(b.control_priority, b.manifest_priority, 2) >= 2
               AND NOT EXISTS (SELECT 1 FROM attempts a
                               WHERE a.phone = r.phone AND a.state = 'dialing')
               {gates}
             ORDER BY COALESCE(b.control_priority, b.manifest_priority) DESC,
                      b.imported_at, r.chunk_idx, r.row_idx
             LIMIT 1",
            gates = hq::HQ_GATES
        );
        // Prepared once per connection and reused by every claim of every wave.
        let mut next_row = tx.prepare_cached(&sql)?;
        let mut claimed = Vec::new();
        for _ in 0..n {
            let next: Option<(u32, u32, u64, String)> = next_row
                .query_row(params![batch_id, minute], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
                .optional()?;
            let Some((chunk_idx, row_idx, row_id, phone)) = next else { break };
            tx.execute(
                "UPDATE batch_rows SET status = 'dialing'
                 WHERE batch_id = ?1 AND chunk_idx = ?2 AND row_idx = ?3",
                params![batch_id, chunk_idx, row_idx],
            )?;
            tx.execute(
                "INSERT INTO attempts (batch_id, chunk_idx, row_idx, row_id, phone, state, started_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'dialing', ?6)",
                params![batch_id, chunk_idx, row_idx, row_id, phone, now_unix()],
            )?;
            let attempt_id = tx.last_insert_rowid() as u64;
            claimed.push(ClaimedNumber { attempt_id, batch_id, row_id, phone, owner: None });
        }
        drop(next_row);
        tx.commit()?;
        Ok(claimed)
    }

    /// Takes up to `n` numbers for a project's task from all its batches, in one
    /// transaction: higher batch priority first, equal priority the earlier import first
    /// (the manual's rule), then row order. A batch at priority 1 is skipped, at 0 never
    /// dialed again. A number the attribution gave to an agent (S4) is taken only when that
    /// agent is in `owners` (free and given to this task), at most one per owner per call,
    /// and the caller routes its call to that agent only; otherwise it waits.
    pub fn claim_next_numbers_for_task(
        &self,
        project_id: u64,
        n: usize,
        owners: &[String],
    ) -> Result<Vec<ClaimedNumber>, DbError> {
        self.claim_for_task_at(project_id, n, owners, now_unix())
    }

    /// [`Store::claim_next_numbers_for_task`] as if the clock read `now` (unix seconds).
    pub fn claim_for_task_at(
        &self,
        project_id: u64,
        n: usize,
        owners: &[String],
        now: i64,
    ) -> Result<Vec<ClaimedNumber>, DbError> {
        let minute = hq::china_minute(now);
        let mut owners: Vec<String> = owners.to_vec();
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let sql = format!(
            "SELECT r.batch_id, r.chunk_idx, r.row_idx, r.row_id, r.phone, r.owner
             FROM batch_rows r JOIN batches b ON b.batch_id = r.batch_id
             WHERE b.project_id = ?1 AND r.status = 'new' AND b.verified = 1
               AND COALESCE(b.control_priority, b.manifest_priority, 2) >= 2
               AND (r.owner IS NULL OR r.owner IN (SELECT value FROM json_each(?3)))
               AND NOT EXISTS (SELECT 1 FROM attempts a
                               WHERE a.phone = r.phone AND a.state = 'dialing')
               {gates}
             ORDER BY COALESCE(b.control_priority, b.manifest_priority, 2) DESC,
                      b.imported_at, b.batch_id, r.chunk_idx, r.row_idx
             LIMIT 1",
            gates = hq::HQ_GATES
        );
        let mut next_row = tx.prepare_cached(&sql)?;
        let mut claimed = Vec::new();
        for _ in 0..n {
            let owners_json = serde_json::to_string(&owners).map_err(|e| super::corrupt("owners", e))?;
            type Row = (u64, u32, u32, u64, String, Option<String>);
            let next: Option<Row> = next_row
                .query_row(params![project_id, minute, owners_json], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?))
                })
                .optional()?;
            let Some((batch_id, chunk_idx, row_idx, row_id, phone, owner)) = next else { break };
            if let Some(owner) = &owner {
                owners.retain(|name| name != owner);
            }
            tx.execute(
                "UPDATE batch_rows SET status = 'dialing'
                 WHERE batch_id = ?1 AND chunk_idx = ?2 AND row_idx = ?3",
                params![batch_id, chunk_idx, row_idx],
            )?;
            tx.execute(
                "INSERT INTO attempts (batch_id, chunk_idx, row_idx, row_id, phone, state, started_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'dialing', ?6)",
                params![batch_id, chunk_idx, row_idx, row_id, phone, now_unix()],
            )?;
            let attempt_id = tx.last_insert_rowid() as u64;
            claimed.push(ClaimedNumber { attempt_id, batch_id, row_id, phone, owner });
        }
        drop(next_row);
        tx.commit()?;
        Ok(claimed)
    }

    /// The customer answered.
    pub fn mark_answered(&self, attempt_id: u64, at: i64) -> Result<(), DbError> {
        self.lock().execute(
            "UPDATE attempts SET answered_at = ?2 WHERE attempt_id = ?1 AND answered_at IS NULL",
            params![attempt_id, at],
        )?;
        Ok(())
    }

    /// The agent's desk was shown the popup of an agent's own call: from now on it stays
    /// open (and comes back after a reload) until its record is saved.
    pub fn mark_popped(&self, attempt_id: u64) -> Result<(), DbError> {
        self.lock().execute("UPDATE attempts SET popped = 1 WHERE attempt_id = ?1", [attempt_id])?;
        Ok(())
    }

    /// The customer answered at `answered_at` and the call was put through to `agent`, in
    /// one write.
    pub fn mark_answered_and_bridged(&self, attempt_id: u64, answered_at: i64, agent: &str) -> Result<(), DbError> {
        let written = self.lock().execute(
            "UPDATE attempts SET answered_at = COALESCE(answered_at, ?2), agent = ?3 WHERE attempt_id = ?1",
            params![attempt_id, answered_at, agent],
        );
        self.pending().remove(&attempt_id);
        written?;
        Ok(())
    }

    pub(super) fn pending(&self) -> MutexGuard<'_, std::collections::HashMap<u64, String>> {
        // One insert or remove per use: a poisoned map is still consistent.
        self.pending_agents.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The dialer put `attempt_id` through to `agent` and queued the write: until it lands,
    /// the agent is known to be the call's owner all the same.
    pub fn note_bridge(&self, attempt_id: u64, agent: &str) {
        self.pending().insert(attempt_id, agent.to_string());
    }

    /// The call was put through to `agent` (username).
    pub fn mark_bridged(&self, attempt_id: u64, agent: &str) -> Result<(), DbError> {
        self.lock().execute(
            "UPDATE attempts SET agent = ?2 WHERE attempt_id = ?1",
            params![attempt_id, agent],
        )?;
        Ok(())
    }

    /// Writes the attempt's final outcome, marks its number done and queues the
    /// [`UpEvent::CallAttemptDetail`] in the outbox, all in one transaction.
    pub fn finish_attempt(&self, attempt_id: u64, end: &AttemptEnd) -> Result<CallAttempt, DbError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let (batch_id, chunk_idx, row_idx, row_id, started_at, answered_at, agent, state, kind): (
            u64,
            u32,
            u32,
            u64,
            i64,
            Option<i64>,
            Option<String>,
            String,
            String,
        ) = tx.query_row(
            "SELECT batch_id, chunk_idx, row_idx, row_id, started_at, answered_at, agent, state, kind
             FROM attempts WHERE attempt_id = ?1",
            [attempt_id],
            |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                    row.get(7)?,
                    row.get(8)?,
                ))
            },
        )?;
        let talk_seconds = match (end.outcome, answered_at) {
            (Outcome::Connected, Some(answered)) => (end.ended_at - answered).max(0) as u32,
            _ => 0,
        };
        let attempt = CallAttempt {
            attempt_id,
            batch_id,
            row_id,
            started_at,
            answered_at,
            ended_at: end.ended_at,
            outcome: end.outcome,
            hangup_side: end.hangup_side,
            agent,
            talk_seconds,
            recording_sha256: end.recording_sha256.clone(),
            kind: attempt_kind(&kind),
        };
        if state == "done" {
            // Already finished (a duplicate end event): nothing new to report.
            return Ok(attempt);
        }
        tx.execute(
            "UPDATE attempts SET state = 'done', ended_at = ?2, outcome = ?3, hangup_side = ?4,
                    talk_seconds = ?5, recording_path = ?6, recording_sha256 = ?7
             WHERE attempt_id = ?1",
            params![
                attempt_id,
                end.ended_at,
                outcome_name(end.outcome),
                end.hangup_side.map(hangup_name),
                talk_seconds,
                end.recording_path.as_ref().map(|p| p.to_string_lossy().into_owned()),
                end.recording_sha256,
            ],
        )?;
        // A number the agent typed (`manual`) is not the task's dial, nor is a customer's own
        // call (`inbound`): the row stays as it was.
        if kind != "manual" && kind != "inbound" {
            tx.execute(
                "UPDATE batch_rows SET status = 'done'
                 WHERE batch_id = ?1 AND chunk_idx = ?2 AND row_idx = ?3",
                params![batch_id, chunk_idx, row_idx],
            )?;
        }
        push_outbox(&tx, &UpEvent::CallAttemptDetail(attempt_detail(&tx, &attempt)?))?;
        let mut pending = reports::Pending::default();
        super::reports::record_attempt(&tx, attempt_id, &mut pending)?;
        tx.commit()?;
        // Still under the write lock: the engine gets the deltas in commit order.
        self.apply_report(pending);
        drop(conn);
        self.notify.notify_one();
        Ok(attempt)
    }

    /// Attempts left "dialing" by a crash or power cut: their calls died with the process.
    /// Each is finished as failed (and reported), so its number is not stuck.
    pub fn recover_interrupted(&self) -> Result<usize, DbError> {
        let ids: Vec<u64> = {
            let conn = self.lock();
            let mut statement =
                conn.prepare("SELECT attempt_id FROM attempts WHERE state = 'dialing'")?;
            statement.query_map([], |row| row.get(0))?.collect::<Result<Vec<_>, _>>()?
        };
        for attempt_id in &ids {
            self.finish_attempt(
                *attempt_id,
                &AttemptEnd {
                    outcome: Outcome::Failed,
                    hangup_side: Some(HangupSide::System),
                    ended_at: now_unix(),
                    recording_path: None,
                    recording_sha256: None,
                },
            )?;
        }
        Ok(ids.len())
    }
}

/// The customer an attempt dialed, as `(batch_id, chunk_idx, row_idx, row_id, phone)`, and the
/// agent who had it: what a callback of that call or a call back now starts from.
pub(super) fn attempt_customer(
    tx: &rusqlite::Transaction<'_>,
    attempt_id: u64,
) -> Result<Option<(u64, u32, u32, u64, String, Option<String>)>, DbError> {
    use rusqlite::OptionalExtension;
    Ok(tx
        .query_row(
            "SELECT batch_id, chunk_idx, row_idx, row_id, phone, agent FROM attempts WHERE attempt_id = ?1",
            [attempt_id],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?)),
        )
        .optional()?)
}

/// The attempt with what HQ's reports need besides it: the agent's extension (teams do not
/// exist at the site yet, so the team is empty), how long the customer's phone rang, and how
/// long an answered customer who left without an agent waited in the queue. IVR time stays
/// 0 until the site has an IVR.
fn attempt_detail(tx: &rusqlite::Transaction<'_>, attempt: &CallAttempt) -> Result<CallAttemptDetail, DbError> {
    let extension: Option<String> = match &attempt.agent {
        Some(agent) => tx
            .query_row("SELECT extension FROM users WHERE username = ?1", [agent], |row| row.get(0))
            .optional()?
            .flatten(),
        None => None,
    };
    let seconds = |from: i64, to: i64| (to - from).clamp(0, i64::from(u32::MAX)) as u32;
    let ring_seconds = seconds(attempt.started_at, attempt.answered_at.unwrap_or(attempt.ended_at));
    let queue_seconds = match (attempt.outcome, attempt.answered_at) {
        (Outcome::Abandoned, Some(answered)) => seconds(answered, attempt.ended_at),
        _ => 0,
    };
    Ok(CallAttemptDetail {
        attempt: attempt.clone(),
        team: String::new(),
        extension: extension.unwrap_or_default(),
        ring_seconds,
        queue_seconds,
        ivr_seconds: 0,
    })
}
