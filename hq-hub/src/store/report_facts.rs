//! HQ's facts for the report engine (`reports`): how a synced attempt and business record
//! become an [`AttemptFact`] and its single-choice values, written in the sync-up
//! transaction, and the one-time backfill of the attempts synced before the engine existed.
//!
//! HQ adds what only it knows: the sub-project and the dispatching account (数据来源) of the
//! attempt's batch. What only the site knows (extension, team, ring and queue seconds) comes
//! with [`CallAttemptDetail`]; a plain [`CallAttempt`] (an older site, or the backfill) counts
//! with those empty, and its ring time from its own timestamps.

use std::collections::HashMap;

use reports::{AttemptFact, Direction, Outcome as FactOutcome, Pending, ReportError};
use rusqlite::{Connection, OptionalExtension, Transaction};
use sync_protocol::{AttemptKind, CallAttempt, CallAttemptDetail, HangupSide, Outcome};

use super::projects::FieldSpecKind;
use super::DbError;

/// The engine's tables, then HQ's report definitions and the backfill flag.
pub(super) const DEFINITIONS_MIGRATION: &str = "
    CREATE TABLE report_definitions (
        id         INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id),
        name       TEXT NOT NULL,
        definition TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        created_by TEXT NOT NULL
    );
    CREATE INDEX report_definitions_project ON report_definitions(project_id, id);
    ALTER TABLE projects ADD COLUMN reports_version INTEGER NOT NULL DEFAULT 0;
    -- Attempts synced before this migration are counted once, at the next start (`backfill`).
    INSERT INTO report_meta (key, value) VALUES ('hub_backfill_pending', 1);
";

fn fact_outcome(outcome: Outcome) -> FactOutcome {
    match outcome {
        Outcome::Connected => FactOutcome::Connected,
        // Answered, and no agent took it in time: the customer left the queue.
        Outcome::Abandoned => FactOutcome::QueueAbandoned,
        Outcome::AgentMissed => FactOutcome::ExtensionMissed,
        _ => FactOutcome::NotAnswered,
    }
}

fn fact_hangup(side: Option<HangupSide>) -> Option<reports::HangupSide> {
    side.map(|s| match s {
        HangupSide::Customer => reports::HangupSide::Customer,
        HangupSide::Agent => reports::HangupSide::Agent,
        HangupSide::System => reports::HangupSide::System,
    })
}

/// One write transaction's report changes, and what it looked up once per batch (a batch's
/// sub-project, account and field kinds do not change under a sync-up run).
#[derive(Default)]
pub(super) struct ReportWrites {
    pub(super) pending: Pending,
    origins: HashMap<i64, (i64, String)>,
    choice_keys: HashMap<i64, Vec<String>>,
}

impl ReportWrites {
    /// Cell changes summed in memory and written by [`ReportWrites::flush`].
    pub(super) fn buffered() -> ReportWrites {
        ReportWrites { pending: Pending::buffered(), ..ReportWrites::default() }
    }

    /// Writes the summed cells: call inside the transaction, just before its commit.
    pub(super) fn flush(&mut self, tx: &Transaction<'_>) -> Result<(), ReportError> {
        reports::flush(tx, &mut self.pending)
    }

    fn origin(&mut self, conn: &Connection, batch_id: i64) -> rusqlite::Result<(i64, String)> {
        if let Some(found) = self.origins.get(&batch_id) {
            return Ok(found.clone());
        }
        let found = batch_origin(conn, batch_id)?;
        self.origins.insert(batch_id, found.clone());
        Ok(found)
    }
}

/// The sub-project and dispatching account of a batch; `(0, "")` for an attempt of no
/// batch HQ knows (a hand-dialed number).
fn batch_origin(tx: &Connection, batch_id: i64) -> rusqlite::Result<(i64, String)> {
    let found = tx
        .prepare_cached("SELECT project_id, creator FROM batches WHERE id = ?1")?
        .query_row([batch_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(found.unwrap_or((0, String::new())))
}

fn attempt_fact(
    conn: &Connection,
    writes: &mut ReportWrites,
    site: i64,
    attempt: &CallAttempt,
    detail: Option<&CallAttemptDetail>,
) -> rusqlite::Result<AttemptFact> {
    let (project, account) = writes.origin(conn, attempt.batch_id as i64)?;
    let rang_until = attempt.answered_at.unwrap_or(attempt.ended_at);
    let ring_seconds = detail.map_or_else(|| (rang_until - attempt.started_at).clamp(0, i64::from(u32::MAX)) as u32, |d| d.ring_seconds);
    Ok(AttemptFact {
        project,
        site,
        attempt: attempt.attempt_id as i64,
        team: detail.map(|d| d.team.clone()).unwrap_or_default(),
        agent: attempt.agent.clone().unwrap_or_default(),
        extension: detail.map(|d| d.extension.clone()).unwrap_or_default(),
        batch: attempt.batch_id as i64,
        account,
        direction: if attempt.kind == AttemptKind::Inbound { Direction::Inbound } else { Direction::Outbound },
        hangup: fact_hangup(attempt.hangup_side),
        outcome: fact_outcome(attempt.outcome),
        ring_seconds,
        queue_seconds: detail.map_or(0, |d| d.queue_seconds),
        talk_seconds: attempt.talk_seconds,
        ivr_seconds: detail.map_or(0, |d| d.ivr_seconds),
        started_at: attempt.started_at,
        values: None,
    })
}

/// Counts a synced attempt, inside the sync-up transaction.
pub(super) fn record_attempt(
    tx: &Transaction<'_>,
    site: i64,
    attempt: &CallAttempt,
    detail: Option<&CallAttemptDetail>,
    writes: &mut ReportWrites,
) -> Result<(), ReportError> {
    let fact = attempt_fact(tx, writes, site, attempt, detail)?;
    reports::record_attempt(tx, &fact, &mut writes.pending)
}

/// The keys of the single-choice fields of `batch_id`'s sub-project.
fn single_choice_keys(conn: &Connection, batch_id: i64) -> rusqlite::Result<Vec<String>> {
    let fields: Option<String> = conn
        .prepare_cached("SELECT p.record_fields FROM batches b JOIN projects p ON p.id = b.project_id WHERE b.id = ?1")?
        .query_row([batch_id], |r| r.get(0))
        .optional()?;
    let specs: Vec<super::FieldSpec> = fields.and_then(|f| serde_json::from_str(&f).ok()).unwrap_or_default();
    Ok(specs.into_iter().filter(|s| s.kind == FieldSpecKind::SingleChoice).map(|s| s.key).collect())
}

/// The single-choice values of a record of `batch_id`'s sub-project: the only values a
/// report groups, filters or counts by.
fn single_choice_values(conn: &Connection, batch_id: i64, values: &[(String, String)]) -> rusqlite::Result<Vec<(String, String)>> {
    let keys = single_choice_keys(conn, batch_id)?;
    Ok(keep_keys(&keys, values))
}

fn keep_keys(keys: &[String], values: &[(String, String)]) -> Vec<(String, String)> {
    values.iter().filter(|(key, _)| keys.contains(key)).cloned().collect()
}

/// Counts a (re-)saved business record, inside the sync-up transaction: the caller calls
/// it only when the record replaced the one kept.
pub(super) fn record_business(
    tx: &Transaction<'_>,
    site: i64,
    record: &sync_protocol::BusinessRecord,
    writes: &mut ReportWrites,
) -> Result<(), ReportError> {
    let batch_id = record.batch_id as i64;
    let keys = match writes.choice_keys.entry(batch_id) {
        std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
        std::collections::hash_map::Entry::Vacant(slot) => slot.insert(single_choice_keys(tx, batch_id)?),
    };
    let values = keep_keys(keys, &record.values);
    reports::record_business(tx, site, record.attempt_id as i64, &values, &mut writes.pending)
}

fn outcome_from_name(name: &str) -> Outcome {
    match name {
        "connected" => Outcome::Connected,
        "abandoned" => Outcome::Abandoned,
        "agent_missed" => Outcome::AgentMissed,
        "busy" => Outcome::Busy,
        "no_answer" => Outcome::NoAnswer,
        "rejected" => Outcome::Rejected,
        _ => Outcome::Failed,
    }
}

fn hangup_from_name(name: Option<&str>) -> Option<HangupSide> {
    match name {
        Some("customer") => Some(HangupSide::Customer),
        Some("agent") => Some(HangupSide::Agent),
        Some("system") => Some(HangupSide::System),
        _ => None,
    }
}

/// Counts, once, the attempts and records synced before the engine's tables existed
/// (migration flag `hub_backfill_pending`), in one transaction.
pub(super) fn backfill(conn: &mut Connection) -> Result<(), ReportError> {
    let pending_flag: Option<i64> = conn
        .query_row("SELECT value FROM report_meta WHERE key = 'hub_backfill_pending'", [], |r| r.get(0))
        .optional()?;
    if pending_flag.is_none() {
        return Ok(());
    }
    let tx = conn.transaction()?;
    // The engine is not loaded yet: the deltas are not needed, the cells are.
    let mut writes = ReportWrites::buffered();
    {
        let mut stmt = tx.prepare(
            "SELECT site_id, attempt_id, batch_id, row_id, started_at, answered_at, ended_at, outcome, hangup_side,
                    agent, talk_seconds, kind FROM call_attempts",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let kind: String = r.get(11)?;
            let attempt = CallAttempt {
                attempt_id: r.get::<_, i64>(1)? as u64,
                batch_id: r.get::<_, i64>(2)? as u64,
                row_id: r.get::<_, i64>(3)? as u64,
                started_at: r.get(4)?,
                answered_at: r.get(5)?,
                ended_at: r.get(6)?,
                outcome: outcome_from_name(&r.get::<_, String>(7)?),
                hangup_side: hangup_from_name(r.get::<_, Option<String>>(8)?.as_deref()),
                agent: r.get(9)?,
                talk_seconds: r.get(10)?,
                recording_sha256: None,
                kind: if kind == "inbound" { AttemptKind::Inbound } else { AttemptKind::Predictive },
            };
            record_attempt(&tx, r.get(0)?, &attempt, None, &mut writes)?;
        }
    }
    {
        let mut stmt = tx.prepare("SELECT site_id, attempt_id, batch_id, record FROM business_records")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let values: Vec<(String, String)> = serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default();
            let values = single_choice_values(&tx, r.get(2)?, &values)?;
            reports::record_business(&tx, r.get(0)?, r.get(1)?, &values, &mut writes.pending)?;
        }
    }
    writes.flush(&tx)?;
    tx.execute("DELETE FROM report_meta WHERE key = 'hub_backfill_pending'", [])?;
    tx.commit()?;
    Ok(())
}

/// A report engine failure as the store's error.
pub(super) fn db_error(e: ReportError) -> DbError {
    match e {
        ReportError::Sql(e) => DbError(e),
        other => DbError(rusqlite::Error::ToSqlConversionFailure(Box::new(std::io::Error::other(other.to_string())))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_map_to_the_statistics_they_count_in() {
        assert_eq!(fact_outcome(Outcome::Abandoned), FactOutcome::QueueAbandoned);
        assert_eq!(fact_outcome(Outcome::Busy), FactOutcome::NotAnswered);
        for name in ["connected", "abandoned", "agent_missed", "busy", "no_answer", "rejected", "failed"] {
            let outcome = outcome_from_name(name);
            assert_eq!(super::super::sync_up::outcome_name(outcome), name);
        }
    }

    #[test]
    fn kept_values_are_the_single_choice_ones() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE projects (id INTEGER PRIMARY KEY, record_fields TEXT NOT NULL);
             CREATE TABLE batches (id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, creator TEXT NOT NULL);
             INSERT INTO projects VALUES (1, '[{\"key\":\"result\",\"title\":\"结果\",\"kind\":\"single_choice\",\"options\":[\"成功\",\"失败\"]},
                                              {\"key\":\"note\",\"title\":\"备注\",\"kind\":\"text\"}]');
             INSERT INTO batches VALUES (7, 1, 'hq');",
        )
        .unwrap();
        let values = vec![("result".to_owned(), "成功".to_owned()), ("note".to_owned(), "x".to_owned())];
        assert_eq!(single_choice_values(&conn, 7, &values).unwrap(), vec![("result".to_owned(), "成功".to_owned())]);
        assert_eq!(batch_origin(&conn, 7).unwrap(), (1, "hq".to_owned()));
        assert_eq!(batch_origin(&conn, 8).unwrap(), (0, String::new()));
    }
}
