//! HQ's facts for the report engine (`reports`): how a synced attempt and business record
//! become an [`AttemptFact`] and its single-choice values, written in the sync-up
//! transaction, and the one-time backfill of the attempts synced before the engine existed.
//!
//! HQ adds what only it knows: the sub-project and the dispatching account (数据来源) of the
//! attempt's batch. What only the site knows (extension, team, ring and queue seconds) comes
//! with [`CallAttemptDetail`]; a plain [`CallAttempt`] (an older site, or the backfill) counts
//! with those empty, and its ring time from its own timestamps.
//!
//! Unlike the site, HQ keeps no `report_facts` table (migration 23): a call's fact lives in
//! its own `call_attempts` row (the report columns beside the call record's), and its record's
//! single-choice values in `business_records.report_combo`. One row per attempt instead of
//! two is the write path's budget (`docs/benchmarks.md`). `report_facts` is a view over both
//! with the engine's columns, which is what the brute-force oracle reads.

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

/// Migration 23: the facts move into the call records (see the module's comment). The
/// cells do not change: each call's columns are filled from the fact it was counted as, and
/// where a call record kept an extension its fact did not have (a plain attempt re-sent
/// after a detailed one), the record takes the fact's, so the call counts as it did.
pub(super) const FACTS_IN_CALLS_MIGRATION: &str = "
    ALTER TABLE call_attempts ADD COLUMN report_project INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE call_attempts ADD COLUMN report_account TEXT NOT NULL DEFAULT '';
    ALTER TABLE call_attempts ADD COLUMN team TEXT NOT NULL DEFAULT '';
    ALTER TABLE call_attempts ADD COLUMN ring_s INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE call_attempts ADD COLUMN queue_s INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE call_attempts ADD COLUMN ivr_s INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE business_records ADD COLUMN report_combo TEXT NOT NULL DEFAULT '[]';
    UPDATE call_attempts SET report_project = f.project_id, report_account = f.account, team = f.team,
        ring_s = f.ring_s, queue_s = f.queue_s, ivr_s = f.ivr_s, extension = NULLIF(f.extension, '')
    FROM report_facts f
    WHERE f.site_id = call_attempts.site_id AND f.attempt_id = call_attempts.attempt_id AND f.has_attempt = 1;
    UPDATE business_records SET report_combo = f.combo FROM report_facts f
    WHERE f.site_id = business_records.site_id AND f.attempt_id = business_records.attempt_id;
    DROP TABLE report_facts;
    -- The engine's columns over the calls and their records (codes as `reports::Direction::code`,
    -- `reports::hangup_code`, `reports::Outcome::code`), for the oracle; written apart from
    -- `fact_of_row` so that the two check each other.
    CREATE VIEW report_facts AS
    SELECT a.site_id, a.attempt_id, 1 AS has_attempt, a.started_at / 3600 AS utc_hour, a.report_project AS project_id,
        a.team, COALESCE(a.agent, '') AS agent, COALESCE(a.extension, '') AS extension, a.batch_id,
        a.report_account AS account, CASE a.kind WHEN 'inbound' THEN 1 ELSE 0 END AS direction,
        CASE a.hangup_side WHEN 'customer' THEN 1 WHEN 'agent' THEN 2 WHEN 'system' THEN 3 ELSE 0 END AS hangup,
        CASE a.outcome WHEN 'connected' THEN 1 WHEN 'abandoned' THEN 2 WHEN 'agent_missed' THEN 5 ELSE 0 END AS outcome,
        a.ring_s, a.queue_s, a.talk_seconds AS talk_s, a.ivr_s, a.started_at, COALESCE(r.report_combo, '[]') AS combo
    FROM call_attempts a LEFT JOIN business_records r ON r.site_id = a.site_id AND r.attempt_id = a.attempt_id;
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
    /// Whether a batch is part of a shared pool: only then does an attempt mark its number
    /// in the pool (`pools::note_attempt`); most batches are not, and the run skips the write.
    pooled: HashMap<i64, bool>,
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

    /// Whether `batch_id` belongs to a shared pool (looked up once per run).
    pub(super) fn pooled(&mut self, conn: &Connection, batch_id: i64) -> rusqlite::Result<bool> {
        if let Some(found) = self.pooled.get(&batch_id) {
            return Ok(*found);
        }
        let found = conn
            .prepare_cached("SELECT pool_id IS NOT NULL FROM batches WHERE id = ?1")?
            .query_row([batch_id], |r| r.get(0))
            .optional()?
            .unwrap_or(false);
        self.pooled.insert(batch_id, found);
        Ok(found)
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

/// The fact a synced attempt adds, as HQ stores it in `call_attempts` (migration 23):
/// `extension` is the one the call record keeps.
pub(super) fn attempt_fact(
    conn: &Connection,
    writes: &mut ReportWrites,
    site: i64,
    attempt: &CallAttempt,
    detail: Option<&CallAttemptDetail>,
    extension: &str,
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
        extension: extension.to_owned(),
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

/// The fact columns of a call, as [`stored_fact`] and the backfill read them: `a` the call,
/// `r` its business record.
const FACT_SELECT: &str = "a.site_id, a.attempt_id, a.report_project, a.team, COALESCE(a.agent, ''),
    COALESCE(a.extension, ''), a.batch_id, a.report_account, a.kind, a.hangup_side, a.outcome, a.ring_s, a.queue_s,
    a.talk_seconds, a.ivr_s, a.started_at, COALESCE(r.report_combo, '[]')";

/// A row of [`FACT_SELECT`] as the fact it counted as, and its record's values.
fn fact_of_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(AttemptFact, String)> {
    let fact = AttemptFact {
        site: r.get(0)?,
        attempt: r.get(1)?,
        project: r.get(2)?,
        team: r.get(3)?,
        agent: r.get(4)?,
        extension: r.get(5)?,
        batch: r.get(6)?,
        account: r.get(7)?,
        direction: if r.get::<_, String>(8)? == "inbound" { Direction::Inbound } else { Direction::Outbound },
        hangup: fact_hangup(hangup_from_name(r.get::<_, Option<String>>(9)?.as_deref())),
        outcome: fact_outcome(outcome_from_name(&r.get::<_, String>(10)?)),
        ring_seconds: r.get(11)?,
        queue_seconds: r.get(12)?,
        talk_seconds: r.get(13)?,
        ivr_seconds: r.get(14)?,
        started_at: r.get(15)?,
        values: None,
    };
    Ok((fact, r.get(16)?))
}

/// The fact a stored call counts as, with its record's values; `None` before it arrived.
pub(super) fn stored_fact(conn: &Connection, site: i64, attempt: i64) -> rusqlite::Result<Option<(AttemptFact, String)>> {
    conn.prepare_cached(&format!(
        "SELECT {FACT_SELECT} FROM call_attempts a
         LEFT JOIN business_records r ON r.site_id = a.site_id AND r.attempt_id = a.attempt_id
         WHERE a.site_id = ?1 AND a.attempt_id = ?2"
    ))?
    .query_row([site, attempt], fact_of_row)
    .optional()
}

/// The single-choice values (canonical) kept with the business record of `(site, attempt)`.
pub(super) fn kept_combo(conn: &Connection, site: i64, attempt: i64) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT report_combo FROM business_records WHERE site_id = ?1 AND attempt_id = ?2")?
        .query_row([site, attempt], |r| r.get(0))
        .optional()
}

/// Counts a call stored for the first time, inside the sync-up transaction: its record may
/// have arrived before it (saved while the call went on).
pub(super) fn count_new_attempt(tx: &Transaction<'_>, fact: &AttemptFact, writes: &mut ReportWrites) -> Result<(), ReportError> {
    let combo = kept_combo(tx, fact.site, fact.attempt)?.unwrap_or_else(|| "[]".to_owned());
    reports::move_attempt(tx, &mut writes.pending, None, Some((fact, &combo)))
}

/// Moves a re-delivered call's contribution from what it counted as to its new fact.
pub(super) fn count_changed_attempt(
    tx: &Transaction<'_>,
    old: Option<&(AttemptFact, String)>,
    new: &AttemptFact,
    writes: &mut ReportWrites,
) -> Result<(), ReportError> {
    let combo = old.map_or("[]", |(_, c)| c.as_str());
    reports::move_attempt(tx, &mut writes.pending, old.map(|(f, c)| (f, c.as_str())), Some((new, combo)))
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

/// The single-choice values of `record`, canonical: what a report groups it by.
pub(super) fn record_combo(conn: &Connection, record: &sync_protocol::BusinessRecord, writes: &mut ReportWrites) -> rusqlite::Result<String> {
    let batch_id = record.batch_id as i64;
    let keys = match writes.choice_keys.entry(batch_id) {
        std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
        std::collections::hash_map::Entry::Vacant(slot) => slot.insert(single_choice_keys(conn, batch_id)?),
    };
    Ok(reports::canonical_combo(&keep_keys(keys, &record.values)))
}

/// Counts a (re-)saved business record, inside the sync-up transaction: the caller calls
/// it only when the record replaced the one kept (whose values were `before`). Its call, if
/// it arrived, moves to the new values' cell.
pub(super) fn record_business(
    tx: &Transaction<'_>,
    site: i64,
    attempt: i64,
    before: Option<&str>,
    combo: &str,
    writes: &mut ReportWrites,
) -> Result<(), ReportError> {
    let before = before.unwrap_or("[]");
    if before == combo {
        // The same values again (a re-save of other fields): nothing moves.
        return Ok(());
    }
    if let Some((fact, _)) = stored_fact(tx, site, attempt)? {
        reports::move_attempt(tx, &mut writes.pending, Some((&fact, before)), Some((&fact, combo)))?;
    }
    Ok(())
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
/// (migration flag `hub_backfill_pending`), in one transaction: fills the calls' report
/// columns (their batch's sub-project and account, the ring time from their timestamps)
/// and the records' values, then adds every call to the cells.
pub(super) fn backfill(conn: &mut Connection) -> Result<(), ReportError> {
    let pending_flag: Option<i64> = conn
        .query_row("SELECT value FROM report_meta WHERE key = 'hub_backfill_pending'", [], |r| r.get(0))
        .optional()?;
    if pending_flag.is_none() {
        return Ok(());
    }
    let tx = conn.transaction()?;
    tx.execute_batch(
        "UPDATE call_attempts SET
             report_project = COALESCE((SELECT b.project_id FROM batches b WHERE b.id = call_attempts.batch_id), 0),
             report_account = COALESCE((SELECT b.creator FROM batches b WHERE b.id = call_attempts.batch_id), ''),
             team = '', queue_s = 0, ivr_s = 0,
             ring_s = MIN(MAX(COALESCE(answered_at, ended_at) - started_at, 0), 4294967295);",
    )?;
    {
        let mut read = tx.prepare("SELECT site_id, attempt_id, batch_id, record FROM business_records")?;
        let mut write = tx.prepare("UPDATE business_records SET report_combo = ?3 WHERE site_id = ?1 AND attempt_id = ?2")?;
        let mut rows = read.query([])?;
        while let Some(r) = rows.next()? {
            let values: Vec<(String, String)> = serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default();
            let combo = reports::canonical_combo(&single_choice_values(&tx, r.get(2)?, &values)?);
            write.execute(rusqlite::params![r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, combo])?;
        }
    }
    // The engine is not loaded yet: the deltas are not needed, the cells are.
    let mut writes = ReportWrites::buffered();
    {
        let mut stmt = tx.prepare(&format!(
            "SELECT {FACT_SELECT} FROM call_attempts a
             LEFT JOIN business_records r ON r.site_id = a.site_id AND r.attempt_id = a.attempt_id"
        ))?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let (fact, combo) = fact_of_row(r)?;
            reports::move_attempt(&tx, &mut writes.pending, None, Some((&fact, &combo)))?;
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
