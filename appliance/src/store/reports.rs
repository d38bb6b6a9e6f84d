//! The site's reports (S6-S9) from its own store, HQ link or not: each finished attempt and
//! each saved business record gives the report engine its fact inside the same transaction
//! ([`reports::record_attempt`], [`reports::record_business`]), and the commit's deltas go
//! to the one [`Engine`] the store holds, under the store's write lock so they arrive in
//! commit order.
//!
//! At the site: site = 0 (the box is one site; HQ uses its own site ids), team = the site
//! (empty: the site has no groups), the dispatching account is empty (the batch's manifest
//! does not name it). HQ's report definitions per project (项目任务报表) come down the link
//! ([`DownEvent::ReportDefinitions`](sync_protocol::DownEvent)); the newest version wins.

use std::sync::{Arc, PoisonError};

use reports::{AttemptFact, Direction, Engine, Filter, HangupSide, Outcome, Pending, ReportDef, ReportTable, Zone};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use sync_protocol::{FieldKind, ReportDefinition};

use super::{DbError, Store, corrupt, load_project};

/// The site's own id in its report facts.
pub const SITE: i64 = 0;

impl From<reports::ReportError> for DbError {
    fn from(error: reports::ReportError) -> DbError {
        match error {
            reports::ReportError::Sql(e) => DbError::Sqlite(e),
            reports::ReportError::BadCell(e) => corrupt("report cell", e),
        }
    }
}

/// One attempt of the per-number detail (项目任务批次), the phone as the viewer may see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberAttempt {
    pub attempt_id: u64,
    pub row_id: u64,
    pub phone: String,
    pub started_at: i64,
    pub outcome: Option<String>,
    pub agent: Option<String>,
    pub talk_seconds: i64,
    /// The row's attempts so far (this one included).
    pub nth: i64,
}

fn outcome_of(outcome: &str) -> Outcome {
    match outcome {
        "connected" => Outcome::Connected,
        // The customer answered and no agent took the call in time: left in the queue (as
        // HQ counts the same attempt).
        "abandoned" => Outcome::QueueAbandoned,
        "agent_missed" => Outcome::ExtensionMissed,
        _ => Outcome::NotAnswered,
    }
}

fn hangup_of(side: Option<&str>) -> Option<HangupSide> {
    match side? {
        "customer" => Some(HangupSide::Customer),
        "agent" => Some(HangupSide::Agent),
        "system" => Some(HangupSide::System),
        _ => None,
    }
}

/// The report fact of a finished attempt, read inside the writer's transaction.
pub(super) fn attempt_fact(conn: &Connection, attempt_id: u64) -> Result<Option<AttemptFact>, DbError> {
    type Row = (i64, i64, Option<String>, Option<String>, i64, Option<i64>, Option<i64>, Option<String>, Option<String>, i64, String);
    let row: Option<Row> = conn
        .query_row(
            "SELECT a.batch_id, COALESCE(b.project_id, 0), a.agent, u.extension, a.started_at, a.answered_at,
                    a.ended_at, a.outcome, a.hangup_side, a.talk_seconds, a.kind
             FROM attempts a LEFT JOIN batches b ON b.batch_id = a.batch_id
             LEFT JOIN users u ON u.username = a.agent
             WHERE a.attempt_id = ?1 AND a.state = 'done'",
            [attempt_id],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                ))
            },
        )
        .optional()?;
    let Some((batch, project, agent, extension, started, answered, ended, outcome, hangup, talk, kind)) = row else {
        return Ok(None);
    };
    let ended = ended.unwrap_or(started);
    let outcome = outcome_of(outcome.as_deref().unwrap_or(""));
    let secs = |from: i64, to: i64| u32::try_from((to - from).max(0)).unwrap_or(u32::MAX);
    Ok(Some(AttemptFact {
        project,
        site: SITE,
        attempt: attempt_id as i64,
        team: String::new(),
        agent: agent.unwrap_or_default(),
        extension: extension.unwrap_or_default(),
        batch,
        account: String::new(),
        direction: if kind == "inbound" { Direction::Inbound } else { Direction::Outbound },
        hangup: hangup_of(hangup.as_deref()),
        outcome,
        ring_seconds: secs(started, answered.unwrap_or(ended)),
        queue_seconds: match (outcome, answered) {
            (Outcome::QueueAbandoned, Some(answered)) => secs(answered, ended),
            _ => 0,
        },
        talk_seconds: u32::try_from(talk.max(0)).unwrap_or(u32::MAX),
        // No IVR at the site yet; HQ counts none either.
        ivr_seconds: 0,
        started_at: started,
        values: None,
    }))
}

/// Gives the engine the fact of finished attempt `attempt_id` (a no-op while it dials).
pub(super) fn record_attempt(tx: &Transaction<'_>, attempt_id: u64, pending: &mut Pending) -> Result<(), DbError> {
    if let Some(fact) = attempt_fact(tx, attempt_id)? {
        reports::record_attempt(tx, &fact, pending)?;
    }
    Ok(())
}

/// The single-choice values of a record: only they can be counted or grouped by.
pub(super) fn single_choice_values(
    conn: &Connection,
    project_id: u64,
    values: &[(String, String)],
) -> Result<Vec<(String, String)>, DbError> {
    let def = load_project(conn, project_id)?;
    let choice = |key: &str| {
        def.as_ref().is_some_and(|def| {
            def.record_fields.iter().any(|f| f.key == key && matches!(f.kind, FieldKind::SingleChoice(_)))
        })
    };
    Ok(values.iter().filter(|(key, _)| choice(key)).cloned().collect())
}

/// Gives the engine the single-choice values of attempt `attempt_id`'s business record.
pub(super) fn record_business(
    tx: &Transaction<'_>,
    project_id: u64,
    attempt_id: u64,
    values: &[(String, String)],
    pending: &mut Pending,
) -> Result<(), DbError> {
    let values = single_choice_values(tx, project_id, values)?;
    reports::record_business(tx, SITE, attempt_id as i64, &values, pending)?;
    Ok(())
}

/// Feeds the engine every finished attempt and saved record a store held before the report
/// tables existed; runs once, inside the migration's transaction.
pub(super) fn backfill(tx: &Transaction<'_>) -> Result<(), DbError> {
    let done: i64 =
        tx.query_row("SELECT value FROM report_meta WHERE key = 'site_backfill'", [], |r| r.get(0)).optional()?.unwrap_or(1);
    if done != 0 {
        return Ok(());
    }
    let mut pending = Pending::default();
    let ids: Vec<u64> = tx
        .prepare("SELECT attempt_id FROM attempts WHERE state = 'done' ORDER BY attempt_id")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in ids {
        record_attempt(tx, id, &mut pending)?;
    }
    let records: Vec<(u64, u64, String)> = tx
        .prepare(
            "SELECT r.attempt_id, COALESCE(b.project_id, 0), r.record_values FROM business_records r
             JOIN attempts a ON a.attempt_id = r.attempt_id LEFT JOIN batches b ON b.batch_id = a.batch_id",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (attempt, project, json) in records {
        let values: Vec<(String, String)> =
            serde_json::from_str(&json).map_err(|e| corrupt("business record values", e))?;
        record_business(tx, project, attempt, &values, &mut pending)?;
    }
    tx.execute("UPDATE report_meta SET value = 1 WHERE key = 'site_backfill'", [])?;
    Ok(())
}

/// Stores HQ's report definitions of a project when newer than the ones kept, as the JSON
/// list of their [`ReportDef`]s. Definitions this build cannot read are skipped whole
/// (logged), so the link keeps moving and the site keeps the last list it could read.
pub(super) fn apply_report_definitions(
    tx: &Transaction<'_>,
    project_id: u64,
    version: u64,
    defs: &[ReportDefinition],
) -> Result<(), DbError> {
    let parsed: Result<Vec<ReportDef>, _> = defs.iter().map(|d| serde_json::from_str::<ReportDef>(&d.definition)).collect();
    let parsed = match parsed {
        Ok(parsed) => parsed,
        Err(error) => {
            tracing::warn!(project = project_id, version, %error, "HQ's report definitions unreadable; skipped");
            return Ok(());
        }
    };
    let json = serde_json::to_string(&parsed).map_err(|e| corrupt("report definitions", e))?;
    tx.execute(
        "INSERT INTO report_defs (project_id, version, definitions) VALUES (?1, ?2, ?3)
         ON CONFLICT (project_id) DO UPDATE SET version = excluded.version, definitions = excluded.definitions
         WHERE excluded.version > report_defs.version",
        params![project_id as i64, version as i64, json],
    )?;
    Ok(())
}

impl Store {
    /// The engine the store feeds; answers reports from memory.
    pub fn report_engine(&self) -> Arc<Engine> {
        self.reports.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Counts local days and hours in `zone` from now on (set at start, from the config).
    pub fn set_report_zone(&self, zone: Zone) {
        *self.reports.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(Engine::site(zone));
    }

    /// Applies a committed transaction's report deltas; called with the write lock held.
    pub(super) fn apply_report(&self, pending: Pending) {
        self.report_engine().apply(pending);
    }

    /// Answers `def` within `filter` from the engine (the reader connection checks it is
    /// current).
    pub fn run_report(&self, def: &ReportDef, filter: &Filter) -> Result<ReportTable, DbError> {
        let engine = self.report_engine();
        let reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(engine.run(&reader, def, filter)?)
    }

    /// HQ's report definitions of `project_id` and their version; none when HQ sent none.
    pub fn report_definitions(&self, project_id: u64) -> Result<Option<(u64, Vec<ReportDef>)>, DbError> {
        let row: Option<(i64, String)> = self
            .lock()
            .query_row("SELECT version, definitions FROM report_defs WHERE project_id = ?1", [project_id as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        match row {
            None => Ok(None),
            Some((version, json)) => {
                let defs = serde_json::from_str(&json).map_err(|e| corrupt("report definitions", e))?;
                Ok(Some((version as u64, defs)))
            }
        }
    }

    /// The batches of `project_id`: `(batch_id, name, numbers)`, newest first.
    pub fn project_batches(&self, project_id: u64) -> Result<Vec<(u64, String, u64)>, DbError> {
        let conn = self.lock();
        let mut statement = conn.prepare(
            "SELECT batch_id, COALESCE(name, ''), COALESCE(n_rows, 0) FROM batches WHERE project_id = ?1
             ORDER BY batch_id DESC",
        )?;
        let rows = statement
            .query_map([project_id as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// One page of a batch's attempts, newest first, each with its number masked for
    /// `viewer`; and the count of all of them.
    pub fn batch_attempts(
        &self,
        viewer: &super::Viewer,
        batch_id: u64,
        page: u32,
        per_page: u32,
    ) -> Result<(Vec<NumberAttempt>, u64), DbError> {
        let conn = self.lock();
        let project: Option<u64> = conn
            .query_row("SELECT project_id FROM batches WHERE batch_id = ?1", [batch_id as i64], |r| r.get(0))
            .optional()?
            .flatten();
        let def = load_project(&conn, project.unwrap_or_default())?;
        let total: u64 = conn.query_row(
            "SELECT COUNT(*) FROM attempts WHERE batch_id = ?1 AND state = 'done'",
            [batch_id as i64],
            |r| r.get(0),
        )?;
        let mut statement = conn.prepare(
            "SELECT a.attempt_id, a.row_id, a.phone, a.started_at, a.outcome, a.agent, a.talk_seconds,
                    (SELECT COUNT(*) FROM attempts p WHERE p.batch_id = a.batch_id AND p.row_id = a.row_id
                        AND p.attempt_id <= a.attempt_id)
             FROM attempts a WHERE a.batch_id = ?1 AND a.state = 'done'
             ORDER BY a.attempt_id DESC LIMIT ?2 OFFSET ?3",
        )?;
        let offset = i64::from(page.saturating_sub(1)) * i64::from(per_page);
        let rows = statement
            .query_map(params![batch_id as i64, per_page, offset], |r| {
                Ok(NumberAttempt {
                    attempt_id: r.get(0)?,
                    row_id: r.get(1)?,
                    phone: viewer.phone(def.as_ref(), &r.get::<_, String>(2)?),
                    started_at: r.get(3)?,
                    outcome: r.get(4)?,
                    agent: r.get(5)?,
                    talk_seconds: r.get(6)?,
                    nth: r.get(7)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok((rows, total))
    }
}
