//! Site-owned events as HQ keeps them: how each [`UpEvent`] lands in its table, and the
//! read side the console shows.
//!
//! Each outbox entry is applied in one transaction together with its `(site, epoch, seq)`
//! key and a hash of its content (`up_applied`), so an entry is applied exactly once however
//! often it arrives; a replay with different content is refused as a conflict and raises an
//! alarm. The tables are keyed as well (by the site's own ids, with the epoch where the
//! id restarts with a fresh site store), so even a replay that got past `up_applied` could
//! not double a row.

use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;
use sync_link::{StoreError, StoreResult};
use sync_protocol::{
    AgentState, AttemptKind, BusinessRecord, CallAttempt, CallAttemptDetail, Callback, CallbackState, ControlScope, ControlTarget, HangupSide,
    Outcome, UpEntry, UpEvent,
};

use super::link::{epoch_column, other};
use super::pools;
use super::report_facts;
use super::{now_unix, sha256_hex, DbError, Store};

pub(super) fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Connected => "connected",
        Outcome::Busy => "busy",
        Outcome::NoAnswer => "no_answer",
        Outcome::Rejected => "rejected",
        Outcome::Failed => "failed",
        Outcome::Abandoned => "abandoned",
        Outcome::AgentMissed => "agent_missed",
        // A newer protocol's outcome: kept, under a name that says it is not understood yet.
        _ => "unknown",
    }
}

/// How an attempt's kind is stored in `call_attempts.kind`. Attempts synced before sites
/// reported their kind (protocol 1) hold `unrecorded` (migration 7).
pub(super) fn attempt_kind_name(kind: AttemptKind) -> &'static str {
    match kind {
        AttemptKind::Predictive => "predictive",
        AttemptKind::OneClick => "one_click",
        AttemptKind::Callback => "callback",
        AttemptKind::Manual => "manual",
        AttemptKind::Inbound => "inbound",
        AttemptKind::Ivr => "ivr",
        // A newer protocol's kind: kept, and not counted as a task dial.
        _ => "unknown",
    }
}

fn hangup_name(side: HangupSide) -> &'static str {
    match side {
        HangupSide::Customer => "customer",
        HangupSide::Agent => "agent",
        HangupSide::System => "system",
    }
}

fn callback_state_name(state: CallbackState) -> &'static str {
    match state {
        CallbackState::Scheduled => "scheduled",
        CallbackState::Done => "done",
        CallbackState::Cancelled => "cancelled",
        _ => "unknown",
    }
}

/// The agent state's name and, for a break, its reason.
fn agent_state_name(state: &AgentState) -> (&'static str, Option<&str>) {
    match state {
        AgentState::LoggedOut => ("logged_out", None),
        AgentState::Ready => ("ready", None),
        AgentState::Ringing => ("ringing", None),
        AgentState::Talking => ("talking", None),
        AgentState::WrapUp => ("wrap_up", None),
        AgentState::Break(reason) => ("break", Some(reason.as_str())),
        _ => ("unknown", None),
    }
}

/// A control target as one text key: `batch:7`, `project:3`, `one_click:site`,
/// `one_click:project:3`, `one_click:batch:7`.
pub(super) fn control_target_key(target: &ControlTarget) -> String {
    match target {
        ControlTarget::Batch(id) => format!("batch:{id}"),
        ControlTarget::Project(id) => format!("project:{id}"),
        ControlTarget::OneClick(ControlScope::Site) => "one_click:site".to_owned(),
        ControlTarget::OneClick(ControlScope::Project(id)) => format!("one_click:project:{id}"),
        ControlTarget::OneClick(ControlScope::Batch(id)) => format!("one_click:batch:{id}"),
        ControlTarget::OneClick(other) => format!("one_click:{other:?}"),
        other => format!("{other:?}"),
    }
}

/// A site's id or count as SQLite stores it: the bits kept as they are (two's complement),
/// like the epoch, so nothing a site sends is refused for being large.
fn bits(value: u64) -> i64 {
    i64::from_ne_bytes(value.to_ne_bytes())
}

impl Store {
    /// Applies a run of up entries in one transaction; see [`sync_link::HubStore::apply_up_batch`].
    ///
    /// Each entry is checked against `up_applied` first: the same content again is skipped,
    /// different content stops the run with an alarm (committed together with the entries
    /// before it) and [`StoreError::Conflict`].
    pub(super) fn apply_up_entries(&self, site: i64, entries: &[UpEntry]) -> StoreResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(other)?;
        let now = now_unix();
        // The report engine's changes of this transaction, handed to its cubes once (and
        // only if) it commits; the connection lock keeps commits and hand-overs in order.
        // Buffered: the run's cell changes are summed and written once, before the commit.
        let mut writes = report_facts::ReportWrites::buffered();
        for entry in entries {
            let epoch = epoch_column(entry.epoch);
            let seq = i64::try_from(entry.seq).map_err(other)?;
            let content = serde_json::to_vec(&entry.event).map_err(other)?;
            let content_hash = sha256_hex(&content);
            let existing: Option<String> = tx
                .prepare_cached("SELECT content_hash FROM up_applied WHERE site_id = ?1 AND epoch = ?2 AND seq = ?3")
                .and_then(|mut stmt| stmt.query_row(params![site, epoch, seq], |r| r.get(0)).optional())
                .map_err(other)?;
            match existing {
                Some(hash) if hash == content_hash => continue,
                Some(_) => {
                    tx.execute(
                        "INSERT INTO alarms (site_id, kind, message, created_at) VALUES (?1, 'up_conflict', ?2, ?3)",
                        params![
                            site,
                            format!(
                                "site {site} sent outbox entry {}/{} again with different content; \
                                 the site may have been restored from an old backup. The first version is kept.",
                                entry.epoch, entry.seq
                            ),
                            now
                        ],
                    )
                    .map_err(other)?;
                    writes.flush(&tx).map_err(other)?;
                    tx.commit().map_err(other)?;
                    self.reports.apply(writes.pending);
                    return Err(StoreError::Conflict { epoch: entry.epoch, seq: entry.seq });
                }
                None => {}
            }
            apply_event(&tx, site, entry, epoch, &mut writes)?;
            tx.prepare_cached(
                "INSERT INTO up_applied (site_id, epoch, seq, content_hash, applied_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut stmt| stmt.execute(params![site, epoch, seq, content_hash, now]))
            .map_err(other)?;
        }
        writes.flush(&tx).map_err(other)?;
        tx.commit().map_err(other)?;
        self.reports.apply(writes.pending);
        if entries.iter().any(|e| matches!(e.event, UpEvent::LeaseRequest(_))) {
            // A request is answered by a grant in the site's down log.
            self.down_notify_for(site as u64).notify_one();
        }
        Ok(())
    }
}

/// A finished attempt and its report fact (kept in the same row, see `report_facts`); a
/// replay with new facts of the same attempt replaces them, and its contribution to the
/// report cells moves with them.
fn upsert_attempt(
    tx: &Transaction<'_>,
    site: i64,
    attempt: &CallAttempt,
    detail: Option<&CallAttemptDetail>,
    writes: &mut report_facts::ReportWrites,
) -> StoreResult<()> {
    // An empty extension is none; a re-sent attempt without one keeps the stored one.
    let extension = detail.map(|d| d.extension.as_str()).filter(|e| !e.is_empty());
    let fact = report_facts::attempt_fact(tx, writes, site, attempt, detail, extension.unwrap_or("")).map_err(other)?;
    let (id, batch, row) = (attempt.attempt_id as i64, attempt.batch_id as i64, attempt.row_id as i64);
    let (outcome, hangup, kind) =
        (outcome_name(attempt.outcome), attempt.hangup_side.map(hangup_name), attempt_kind_name(attempt.kind));
    let values = params![
        site,
        id,
        batch,
        row,
        attempt.started_at,
        attempt.answered_at,
        attempt.ended_at,
        outcome,
        hangup,
        attempt.agent,
        attempt.talk_seconds,
        attempt.recording_sha256,
        kind,
        extension,
        fact.project,
        fact.account,
        fact.team,
        fact.ring_seconds,
        fact.queue_seconds,
        fact.ivr_seconds,
    ];
    // Insert first: an attempt seen the first time (nearly every one in a sync-up run) has
    // nothing stored to take back.
    let inserted = tx
        .prepare_cached(
            "INSERT INTO call_attempts (site_id, attempt_id, batch_id, row_id, started_at, answered_at, ended_at,
                 outcome, hangup_side, agent, talk_seconds, recording_sha256, kind, phone_last4, extension,
                 report_project, report_account, team, ring_s, queue_s, ivr_s)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,
                 (SELECT substr(phone, -4) FROM batch_rows WHERE id = ?4), ?14, ?15, ?16, ?17, ?18, ?19, ?20)
             ON CONFLICT (site_id, attempt_id) DO NOTHING",
        )
        .and_then(|mut stmt| stmt.execute(values))
        .map_err(other)?;
    if inserted == 1 {
        return report_facts::count_new_attempt(tx, &fact, writes).map_err(other);
    }
    let old = report_facts::stored_fact(tx, site, id).map_err(other)?;
    tx.prepare_cached(
        "UPDATE call_attempts SET
             batch_id = ?3, row_id = ?4, started_at = ?5, answered_at = ?6, ended_at = ?7, outcome = ?8,
             hangup_side = ?9, agent = ?10, talk_seconds = ?11, recording_sha256 = ?12, kind = ?13,
             phone_last4 = (SELECT substr(phone, -4) FROM batch_rows WHERE id = ?4),
             extension = COALESCE(?14, extension), report_project = ?15, report_account = ?16, team = ?17,
             ring_s = ?18, queue_s = ?19, ivr_s = ?20
         WHERE site_id = ?1 AND attempt_id = ?2",
    )
    .and_then(|mut stmt| stmt.execute(values))
    .map_err(other)?;
    let mut fact = fact;
    if extension.is_none() {
        fact.extension = old.as_ref().map(|(f, _)| f.extension.clone()).unwrap_or_default();
    }
    report_facts::count_changed_attempt(tx, old.as_ref(), &fact, writes).map_err(other)
}

/// Marks the attempt's number dialed in its shared pool, if its batch is of one.
fn note_pooled(tx: &Transaction<'_>, attempt: &CallAttempt, writes: &mut report_facts::ReportWrites) -> StoreResult<()> {
    let batch = attempt.batch_id as i64;
    if writes.pooled(tx, batch).map_err(other)? {
        pools::note_attempt(tx, batch, attempt.row_id as i64).map_err(other)?;
    }
    Ok(())
}

/// A business record, as last saved at the site, with its single-choice values `combo`;
/// whether it replaced the one kept.
fn upsert_record(tx: &Transaction<'_>, site: i64, record: &BusinessRecord, combo: &str) -> StoreResult<bool> {
    let values = serde_json::to_string(&record.values).map_err(other)?;
    // A re-save replaces the record: the site owns it and sends the latest.
    tx.prepare_cached(
        "INSERT INTO business_records (site_id, attempt_id, batch_id, row_id, agent, saved_at, record, report_combo)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (site_id, attempt_id) DO UPDATE SET
             batch_id = excluded.batch_id, row_id = excluded.row_id, agent = excluded.agent,
             saved_at = excluded.saved_at, record = excluded.record, report_combo = excluded.report_combo
         WHERE excluded.saved_at >= business_records.saved_at",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            site,
            record.attempt_id as i64,
            record.batch_id as i64,
            record.row_id as i64,
            record.agent,
            record.saved_at,
            values,
            combo
        ])
    })
    .map_err(other)
    .map(|changed| changed > 0)
}

/// A callback's state, kept as the site's latest entry about it.
fn upsert_callback(tx: &Transaction<'_>, site: i64, epoch: i64, seq: i64, callback: &Callback) -> StoreResult<()> {
    // The latest entry about a callback (by outbox order) is its current state.
    tx.prepare_cached(
        "INSERT INTO site_callbacks (site_id, epoch, callback_id, seq, batch_id, row_id, agent, due_at, note,
             state, changed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (site_id, epoch, callback_id) DO UPDATE SET
             seq = excluded.seq, batch_id = excluded.batch_id, row_id = excluded.row_id,
             agent = excluded.agent, due_at = excluded.due_at, note = excluded.note,
             state = excluded.state, changed_at = excluded.changed_at
         WHERE excluded.seq > site_callbacks.seq",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            site,
            epoch,
            bits(callback.callback_id),
            seq,
            bits(callback.batch_id),
            bits(callback.row_id),
            callback.agent,
            callback.due_at,
            callback.note,
            callback_state_name(callback.state),
            callback.changed_at
        ])
    })
    .map_err(other)?;
    Ok(())
}

/// Apply one entry's event in `tx` (the caller records the entry in `up_applied`).
/// `epoch` is the entry's epoch as stored (see `epoch_column`).
pub(super) fn apply_event(
    tx: &Transaction<'_>,
    site: i64,
    entry: &UpEntry,
    epoch: i64,
    writes: &mut report_facts::ReportWrites,
) -> StoreResult<()> {
    let seq = bits(entry.seq);
    match &entry.event {
        UpEvent::CallAttempt(attempt) => {
            upsert_attempt(tx, site, attempt, None, writes)?;
            note_pooled(tx, attempt, writes)?;
        }
        UpEvent::CallAttemptDetail(detail) => {
            upsert_attempt(tx, site, &detail.attempt, Some(detail), writes)?;
            note_pooled(tx, &detail.attempt, writes)?;
        }
        UpEvent::BusinessRecord(record) => {
            let attempt = record.attempt_id as i64;
            let combo = report_facts::record_combo(tx, record, writes).map_err(other)?;
            let before = report_facts::kept_combo(tx, site, attempt).map_err(other)?;
            if upsert_record(tx, site, record, &combo)? {
                report_facts::record_business(tx, site, attempt, before.as_deref(), &combo, writes).map_err(other)?;
            }
        }
        UpEvent::CustomerEdit(edit) => {
            let changes = serde_json::to_string(&edit.changes).map_err(other)?;
            // An edit is a fact that happened; it never changes, so a second copy is ignored.
            tx.prepare_cached(
                "INSERT INTO site_customer_edits (site_id, epoch, edit_id, batch_id, row_id, agent, edited_at, changes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (site_id, epoch, edit_id) DO NOTHING",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    site,
                    epoch,
                    bits(edit.edit_id),
                    bits(edit.batch_id),
                    bits(edit.row_id),
                    edit.agent,
                    edit.edited_at,
                    changes
                ])
            })
            .map_err(other)?;
        }
        UpEvent::Callback(callback) => upsert_callback(tx, site, epoch, seq, callback)?,
        UpEvent::AgentState(change) => {
            let (state, reason) = agent_state_name(&change.state);
            tx.prepare_cached(
                "INSERT INTO site_agent_states (site_id, epoch, seq, agent, state, break_reason, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (site_id, epoch, seq) DO NOTHING",
            )
            .and_then(|mut stmt| stmt.execute(params![site, epoch, seq, change.agent, state, reason, change.at]))
            .map_err(other)?;
        }
        UpEvent::ControlApplied(report) => {
            tx.prepare_cached(
                "INSERT INTO site_control_reports (site_id, target, version, applied_at, dialed_before_applied,
                     calls_in_progress, applied)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (site_id, target, version) DO UPDATE SET
                     applied_at = excluded.applied_at, dialed_before_applied = excluded.dialed_before_applied,
                     calls_in_progress = excluded.calls_in_progress, applied = excluded.applied",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    site,
                    control_target_key(&report.target),
                    bits(report.version),
                    report.applied_at,
                    bits(report.dialed_before_applied),
                    report.calls_in_progress,
                    report.applied
                ])
            })
            .map_err(other)?;
        }
        UpEvent::LeaseRequest(request) => {
            pools::apply_lease_request(tx, site, request, now_unix()).map_err(other)?;
        }
        UpEvent::LeaseReturn(ret) => pools::apply_lease_return(tx, site, ret, now_unix()).map_err(other)?,
        UpEvent::CallQuality(report) => {
            let leg = |leg: Option<sync_protocol::LegQualityFigures>| {
                // Two decimals: the wire's f32 widened as is shows noise digits (1.2000000476...).
                let round = |x: f32| (f64::from(x) * 100.0).round() / 100.0;
                leg.map(|l| (round(l.loss_percent), round(l.jitter_ms), round(l.mos)))
            };
            let (c, a) = (leg(report.customer), leg(report.agent));
            tx.prepare_cached(
                "INSERT OR REPLACE INTO call_quality (site_id, attempt_id, customer_loss, customer_jitter_ms, customer_mos,
                     agent_loss, agent_jitter_ms, agent_mos)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    site,
                    bits(report.attempt_id),
                    c.map(|l| l.0),
                    c.map(|l| l.1),
                    c.map(|l| l.2),
                    a.map(|l| l.0),
                    a.map(|l| l.1),
                    a.map(|l| l.2)
                ])
            })
            .map_err(other)?;
        }
        unknown => {
            // Not acknowledged: the site keeps it until a hub that understands it runs.
            return Err(StoreError::Other(format!(
                "outbox entry {}/{} carries an event this hub does not know ({unknown:?}); upgrade hq-hub",
                entry.epoch, entry.seq
            )));
        }
    }
    Ok(())
}

/// A customer-data edit made at a site.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomerEditView {
    pub site_id: i64,
    pub edit_id: i64,
    pub batch_id: i64,
    pub row_id: i64,
    pub agent: String,
    pub edited_at: i64,
    /// New values by customer field key.
    pub changes: Vec<(String, String)>,
}

/// A callback as its site last reported it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallbackView {
    pub site_id: i64,
    pub callback_id: i64,
    pub batch_id: i64,
    pub row_id: i64,
    pub agent: Option<String>,
    pub due_at: i64,
    pub note: String,
    /// `scheduled`, `done` or `cancelled`.
    pub state: String,
    pub changed_at: i64,
}

/// An agent's latest reported state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentStateView {
    pub site_id: i64,
    pub agent: String,
    /// `logged_out`, `ready`, `ringing`, `talking`, `wrap_up` or `break`.
    pub state: String,
    pub break_reason: Option<String>,
    pub at: i64,
}

/// What a site did about one control change from HQ.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ControlReportView {
    pub site_id: i64,
    /// `batch:7`, `project:3`, `one_click:site`, `one_click:project:3`, `one_click:batch:7`.
    pub target: String,
    pub version: i64,
    pub applied_at: i64,
    pub dialed_before_applied: i64,
    pub calls_in_progress: i64,
    /// `false`: skipped, a newer version had already been applied.
    pub applied: bool,
}

fn decode_pairs(json: &str) -> rusqlite::Result<Vec<(String, String)>> {
    serde_json::from_str(json)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

impl Store {
    /// Customer edits from the sites, newest first; `site_id` narrows to one site.
    pub fn customer_edits(&self, site_id: Option<i64>, limit: u32) -> Result<Vec<CustomerEditView>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT site_id, edit_id, batch_id, row_id, agent, edited_at, changes FROM site_customer_edits
             WHERE ?1 IS NULL OR site_id = ?1 ORDER BY edited_at DESC, edit_id DESC LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![site_id, limit], |r| {
                let changes: String = r.get(6)?;
                Ok(CustomerEditView {
                    site_id: r.get(0)?,
                    edit_id: r.get(1)?,
                    batch_id: r.get(2)?,
                    row_id: r.get(3)?,
                    agent: r.get(4)?,
                    edited_at: r.get(5)?,
                    changes: decode_pairs(&changes)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Callbacks as the sites last reported them, by due time; `site_id` narrows to one site.
    pub fn site_callbacks(&self, site_id: Option<i64>, limit: u32) -> Result<Vec<CallbackView>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT site_id, callback_id, batch_id, row_id, agent, due_at, note, state, changed_at FROM site_callbacks
             WHERE ?1 IS NULL OR site_id = ?1 ORDER BY due_at, site_id, callback_id LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![site_id, limit], |r| {
                Ok(CallbackView {
                    site_id: r.get(0)?,
                    callback_id: r.get(1)?,
                    batch_id: r.get(2)?,
                    row_id: r.get(3)?,
                    agent: r.get(4)?,
                    due_at: r.get(5)?,
                    note: r.get(6)?,
                    state: r.get(7)?,
                    changed_at: r.get(8)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Each agent's latest reported state at `site_id`, by agent.
    pub fn agent_states(&self, site_id: i64) -> Result<Vec<AgentStateView>, DbError> {
        let conn = self.conn();
        // The latest change per agent: highest time, then the later outbox entry.
        let mut stmt = conn.prepare(
            "SELECT s.site_id, s.agent, s.state, s.break_reason, s.at FROM site_agent_states s
             WHERE s.site_id = ?1 AND s.rowid = (
                 SELECT t.rowid FROM site_agent_states t WHERE t.site_id = s.site_id AND t.agent = s.agent
                 ORDER BY t.at DESC, t.rowid DESC LIMIT 1)
             ORDER BY s.agent",
        )?;
        let rows = stmt
            .query_map([site_id], |r| {
                Ok(AgentStateView {
                    site_id: r.get(0)?,
                    agent: r.get(1)?,
                    state: r.get(2)?,
                    break_reason: r.get(3)?,
                    at: r.get(4)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// What the sites reported about HQ's control changes, newest first.
    pub fn control_reports(&self, site_id: Option<i64>, limit: u32) -> Result<Vec<ControlReportView>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT site_id, target, version, applied_at, dialed_before_applied, calls_in_progress, applied
             FROM site_control_reports WHERE ?1 IS NULL OR site_id = ?1
             ORDER BY applied_at DESC, site_id, target, version DESC LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![site_id, limit], |r| {
                Ok(ControlReportView {
                    site_id: r.get(0)?,
                    target: r.get(1)?,
                    version: r.get(2)?,
                    applied_at: r.get(3)?,
                    dialed_before_applied: r.get(4)?,
                    calls_in_progress: r.get(5)?,
                    applied: r.get(6)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
