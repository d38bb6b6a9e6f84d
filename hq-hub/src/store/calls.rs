//! Call records at HQ (职场通话记录, 录音管理): every synced attempt, searchable and paged by
//! keyset, joined with its batch, project, site, customer number and business record.
//!
//! - Pages are keyset-paged on `(started_at, site_id, attempt_id)`, newest first: a page
//!   costs the same however deep it is, and nothing ever reads every row. Each selective
//!   filter has an index that ends in that key (`calls_*` of migration 11), and the query
//!   names the index it walks ([`pick_index`]), so the planner never sorts a month of calls
//!   to find fifty.
//! - A number is found by its last four digits or exactly: `call_attempts.phone_last4` is
//!   copied from the batch row when the attempt is stored (and by the migration for older
//!   rows) and walked in key order; a whole number is looked up in its batch rows
//!   (`batch_rows(phone, batch_id)`) and its few calls through `(batch_id, row_id)`, then
//!   sorted (checking each of the last four's thousands of calls against the number cost
//!   150 ms on 30 million calls).
//! - What a viewer may see is decided here, not in a template: rows outside the caller's
//!   (project, site) scope are never read, numbers are masked when the project hides the
//!   middle digits (a call without a known project is masked too), and fields the project
//!   marks hidden never leave the store.
//! - The recording's hash is the one the site sent with the attempt; whether HQ holds it is
//!   read from `site_recordings`, never guessed.

use std::collections::HashMap;

use rusqlite::types::Value as SqlValue;
use rusqlite::{params_from_iter, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::projects::FieldSpec;
use super::{DbError, Scope, Store};

/// The largest page a search answers.
pub const MAX_PAGE: u32 = 200;

/// Which way a call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The site dialed the customer (task, one-click, callback, manual).
    Outbound,
    /// The customer called the site.
    Inbound,
}

/// Where a page starts: the last call of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallCursor {
    pub started_at: i64,
    pub site_id: i64,
    pub attempt_id: i64,
}

impl CallCursor {
    /// `started_at.site_id.attempt_id`, the form pages pass back.
    pub fn token(&self) -> String {
        format!("{}.{}.{}", self.started_at, self.site_id, self.attempt_id)
    }

    /// The cursor a [`CallCursor::token`] names; `None` if it is not one.
    pub fn parse(token: &str) -> Option<CallCursor> {
        let mut parts = token.split('.').map(|p| p.parse::<i64>().ok());
        let cursor = CallCursor { started_at: parts.next()??, site_id: parts.next()??, attempt_id: parts.next()?? };
        parts.next().is_none().then_some(cursor)
    }
}

/// How the searched number is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneMatch {
    /// Numbers ending in these four digits.
    LastFour(String),
    /// Exactly this (normalised) number.
    Exact(String),
}

/// A search of the call records; every filter is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallQuery {
    /// Started at or after (unix seconds).
    pub from: Option<i64>,
    /// Started before (unix seconds).
    pub to: Option<i64>,
    pub site_id: Option<i64>,
    pub project_id: Option<i64>,
    pub batch_id: Option<i64>,
    /// The agent's account at the site, exactly.
    pub agent: Option<String>,
    /// The agent's extension, exactly (calls synced before sites sent it have none).
    pub extension: Option<String>,
    pub direction: Option<Direction>,
    /// An outcome key (`connected`, `busy`, …).
    pub outcome: Option<String>,
    /// A hang-up side key (`customer`, `agent`, `system`).
    pub hangup: Option<String>,
    pub talk_min: Option<i64>,
    pub talk_max: Option<i64>,
    /// A business-record field key and the value it must hold.
    pub result: Option<(String, String)>,
    pub phone: Option<PhoneMatch>,
    pub after: Option<CallCursor>,
    /// Page size, 1..=[`MAX_PAGE`].
    pub limit: u32,
}

/// One value of a call's business record, titled by the project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RecordValue {
    pub key: String,
    pub title: String,
    pub value: String,
}

/// A call's business record as the viewer may see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CallRecord {
    pub agent: String,
    pub saved_at: i64,
    /// In the project's field order; hidden fields left out.
    pub values: Vec<RecordValue>,
}

/// A call's recording: the hash the site sent, and whether HQ holds the file yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CallRecording {
    pub sha256: String,
    pub held: bool,
}

/// One leg's audio quality as the site measured it (丢包率, 抖动, MOS 评分).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LegQualityView {
    /// Packets lost, per cent.
    pub loss_percent: f64,
    /// RFC 3550 interarrival jitter, milliseconds.
    pub jitter_ms: f64,
    /// E-model (ITU-T G.107) estimated MOS, 1 to 4.5.
    pub mos: f64,
}

/// A call's quality per leg; a leg that carried no audio has none.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CallQualityView {
    /// What the box received from the customer.
    pub customer: Option<LegQualityView>,
    /// What the box received from the agent's phone.
    pub agent: Option<LegQualityView>,
}

impl CallQualityView {
    /// Whether either leg is poor: MOS under 3.6 or more than 3 % lost.
    pub fn is_poor(&self) -> bool {
        [self.customer, self.agent].into_iter().flatten().any(|leg| leg.mos < 3.6 || leg.loss_percent > 3.0)
    }
}

/// One call as the search shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CallView {
    pub site_id: i64,
    pub site_name: String,
    /// Whether the site's link is up now (a recording can be fetched on demand).
    pub site_online: bool,
    pub attempt_id: i64,
    pub project_id: Option<i64>,
    pub project_name: Option<String>,
    pub batch_id: i64,
    pub batch_name: Option<String>,
    /// Masked when the project hides the middle digits.
    pub phone: String,
    pub agent: Option<String>,
    pub extension: Option<String>,
    pub direction: Direction,
    /// The path that placed it (`predictive`, `one_click`, `callback`, `manual`, `inbound`, `ivr`).
    pub kind: String,
    pub outcome: String,
    pub hangup_side: Option<String>,
    pub started_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: i64,
    pub talk_seconds: i64,
    pub recording: Option<CallRecording>,
    pub record: Option<CallRecord>,
    /// The call's audio quality, once the site sent it (a site of protocol 4 or later).
    pub quality: Option<CallQualityView>,
}

impl CallView {
    /// This call as a cursor: the next page starts after it.
    pub fn cursor(&self) -> CallCursor {
        CallCursor { started_at: self.started_at, site_id: self.site_id, attempt_id: self.attempt_id }
    }
}

/// A page of calls and where the next one starts (`None` on the last page).
#[derive(Debug, Clone, PartialEq)]
pub struct CallPage {
    pub calls: Vec<CallView>,
    pub next: Option<CallCursor>,
}

/// The index a search walks: the most selective filter it has.
fn pick_index(query: &CallQuery, site: Option<i64>) -> &'static str {
    if let Some(PhoneMatch::Exact(_)) = query.phone {
        // A number has a few calls: found through its batch rows, then sorted.
        "call_attempts_batch_row"
    } else if query.phone.is_some() {
        "calls_last4_time"
    } else if query.agent.is_some() {
        "calls_agent_time"
    } else if query.batch_id.is_some() {
        "calls_batch_time"
    } else if site.is_some() {
        "calls_site_time"
    } else {
        "calls_time"
    }
}

/// The `WHERE` clause and its parameters for `query` within `scope`; `None` when the scope
/// leaves nothing to see.
fn conditions(query: &CallQuery, scope: &Scope) -> Option<(String, Vec<SqlValue>, &'static str)> {
    let mut clauses: Vec<String> = Vec::new();
    let mut args: Vec<SqlValue> = Vec::new();
    // Appends `clause` with its one `?` bound to `value`.
    fn push(clause: &str, value: SqlValue, clauses: &mut Vec<String>, args: &mut Vec<SqlValue>) {
        args.push(value);
        clauses.push(clause.replace('?', &format!("?{}", args.len())));
    }
    // A sub-admin sees the (project, site) pairs it administers; one site alone walks that
    // site's index.
    let pairs = scope.project_site_pairs();
    let mut site = query.site_id;
    if let Some(pairs) = &pairs {
        if pairs.is_empty() {
            return None;
        }
        let values: Vec<String> = pairs.iter().map(|(p, s)| format!("({p}, {s})")).collect();
        clauses.push(format!("(b.project_id, a.site_id) IN (VALUES {})", values.join(", ")));
        let mut sites: Vec<i64> = pairs.iter().map(|(_, s)| *s).collect();
        sites.sort_unstable();
        sites.dedup();
        if site.is_none() && sites.len() == 1 {
            site = Some(sites[0]);
        }
    }
    if let Some(site) = site {
        push("a.site_id = ?", site.into(), &mut clauses, &mut args);
    }
    if let Some(from) = query.from {
        push("a.started_at >= ?", from.into(), &mut clauses, &mut args);
    }
    if let Some(to) = query.to {
        push("a.started_at < ?", to.into(), &mut clauses, &mut args);
    }
    if let Some(project) = query.project_id {
        push("b.project_id = ?", project.into(), &mut clauses, &mut args);
    }
    if let Some(batch) = query.batch_id {
        push("a.batch_id = ?", batch.into(), &mut clauses, &mut args);
    }
    if let Some(agent) = &query.agent {
        push("a.agent = ?", agent.clone().into(), &mut clauses, &mut args);
    }
    if let Some(extension) = &query.extension {
        push("a.extension = ?", extension.clone().into(), &mut clauses, &mut args);
    }
    match query.direction {
        Some(Direction::Inbound) => clauses.push("a.kind = 'inbound'".into()),
        Some(Direction::Outbound) => clauses.push("a.kind <> 'inbound'".into()),
        None => {}
    }
    if let Some(outcome) = &query.outcome {
        push("a.outcome = ?", outcome.clone().into(), &mut clauses, &mut args);
    }
    if let Some(side) = &query.hangup {
        push("a.hangup_side = ?", side.clone().into(), &mut clauses, &mut args);
    }
    if let Some(min) = query.talk_min {
        push("a.talk_seconds >= ?", min.into(), &mut clauses, &mut args);
    }
    if let Some(max) = query.talk_max {
        push("a.talk_seconds <= ?", max.into(), &mut clauses, &mut args);
    }
    if let Some((key, value)) = &query.result {
        // The record is stored as `[[key, value], …]`.
        args.extend([SqlValue::from(key.clone()), SqlValue::from(value.clone())]);
        let n = args.len();
        clauses.push(format!(
            "EXISTS (SELECT 1 FROM json_each(r.record) j WHERE j.value ->> 0 = ?{} AND j.value ->> 1 = ?{n})",
            n - 1
        ));
    }
    match &query.phone {
        Some(PhoneMatch::LastFour(four)) => push("a.phone_last4 = ?", four.clone().into(), &mut clauses, &mut args),
        Some(PhoneMatch::Exact(number)) => push(
            "(a.batch_id, a.row_id) IN (SELECT n.batch_id, n.id FROM batch_rows n WHERE n.phone = ?)",
            number.clone().into(),
            &mut clauses,
            &mut args,
        ),
        None => {}
    }
    if let Some(after) = query.after {
        args.extend([after.started_at.into(), after.site_id.into(), after.attempt_id.into()]);
        let n = args.len();
        clauses.push(format!("(a.started_at, a.site_id, a.attempt_id) < (?{}, ?{}, ?{})", n - 2, n - 1, n));
    }
    let index = pick_index(query, site);
    let text = if clauses.is_empty() { "1".to_string() } else { clauses.join(" AND ") };
    Some((text, args, index))
}

// The project's name is the one it had when the call started (`project_names`, kept by a
// rename): the manual says call records keep showing the old name.
const CALL_COLUMNS: &str = "a.site_id, COALESCE(s.name, ''), COALESCE(s.online, 0), a.attempt_id, b.project_id,
    COALESCE((SELECT n.name FROM project_names n WHERE n.project_id = b.project_id AND n.until_at > a.started_at
              ORDER BY n.until_at LIMIT 1), p.name),
    a.batch_id, b.name, COALESCE(br.phone, ''), a.agent, a.kind, a.outcome, a.hangup_side, a.started_at, a.answered_at,
    a.ended_at, a.talk_seconds, a.recording_sha256,
    (a.recording_sha256 IS NOT NULL AND EXISTS (SELECT 1 FROM site_recordings sr WHERE sr.site_id = a.site_id AND sr.sha256 = a.recording_sha256)),
    r.agent, r.saved_at, r.record, a.extension,
    q.customer_loss, q.customer_jitter_ms, q.customer_mos, q.agent_loss, q.agent_jitter_ms, q.agent_mos";

/// The joins every call read shares: `a` is the attempt.
const CALL_JOINS: &str = "LEFT JOIN batches b ON b.id = a.batch_id
    LEFT JOIN projects p ON p.id = b.project_id
    LEFT JOIN sites s ON s.id = a.site_id
    LEFT JOIN batch_rows br ON br.id = a.row_id
    LEFT JOIN business_records r ON r.site_id = a.site_id AND r.attempt_id = a.attempt_id
    LEFT JOIN call_quality q ON q.site_id = a.site_id AND q.attempt_id = a.attempt_id";

/// A project's masking rule and record fields, read once per project per page.
struct ProjectView {
    hide_middle_digits: bool,
    record_fields: Vec<FieldSpec>,
}

fn project_views(conn: &Connection, ids: impl Iterator<Item = i64>) -> Result<HashMap<i64, ProjectView>, DbError> {
    let mut out = HashMap::new();
    let mut stmt = conn.prepare_cached("SELECT hide_middle_digits, record_fields FROM projects WHERE id = ?1")?;
    for id in ids {
        if out.contains_key(&id) {
            continue;
        }
        let found = stmt
            .query_row([id], |r| Ok((r.get::<_, bool>(0)?, r.get::<_, String>(1)?)))
            .optional()?;
        if let Some((hide, fields)) = found {
            let record_fields = serde_json::from_str(&fields).unwrap_or_default();
            out.insert(id, ProjectView { hide_middle_digits: hide, record_fields });
        }
    }
    Ok(out)
}

/// One row of [`CALL_COLUMNS`], before masking.
struct RawCall {
    view: CallView,
    record: Option<(String, i64, String)>,
}

fn quality_leg(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Option<LegQualityView>> {
    Ok(match (r.get::<_, Option<f64>>(at)?, r.get::<_, Option<f64>>(at + 1)?, r.get::<_, Option<f64>>(at + 2)?) {
        (Some(loss_percent), Some(jitter_ms), Some(mos)) => Some(LegQualityView { loss_percent, jitter_ms, mos }),
        _ => None,
    })
}

fn raw_call(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawCall> {
    let (customer, agent) = (quality_leg(r, 23)?, quality_leg(r, 26)?);
    let quality = (customer.is_some() || agent.is_some()).then_some(CallQualityView { customer, agent });
    let kind: String = r.get(10)?;
    let recording = r.get::<_, Option<String>>(17)?.map(|sha256| CallRecording { sha256, held: false });
    let held: bool = r.get(18)?;
    let record = match (r.get::<_, Option<String>>(19)?, r.get::<_, Option<i64>>(20)?, r.get::<_, Option<String>>(21)?) {
        (Some(agent), Some(saved_at), Some(json)) => Some((agent, saved_at, json)),
        _ => None,
    };
    Ok(RawCall {
        view: CallView {
            site_id: r.get(0)?,
            site_name: r.get(1)?,
            site_online: r.get(2)?,
            attempt_id: r.get(3)?,
            project_id: r.get(4)?,
            project_name: r.get(5)?,
            batch_id: r.get(6)?,
            batch_name: r.get(7)?,
            phone: r.get(8)?,
            agent: r.get(9)?,
            extension: r.get(22)?,
            direction: if kind == "inbound" { Direction::Inbound } else { Direction::Outbound },
            kind,
            outcome: r.get(11)?,
            hangup_side: r.get(12)?,
            started_at: r.get(13)?,
            answered_at: r.get(14)?,
            ended_at: r.get(15)?,
            talk_seconds: r.get(16)?,
            recording: recording.map(|rec| CallRecording { held, ..rec }),
            record: None,
            quality,
        },
        record,
    })
}

/// Masks the number and titles the record as the call's project says. Without a known
/// project the number is masked; a call under no project at all (batch 0: a number an
/// agent in no task dialed by hand, an unknown caller) has the site's own note form, which
/// HQ does not hold, so its values are shown as saved, each titled by its key (the site's
/// default form keys its fields by their titles). A call whose project HQ no longer knows
/// shows no field: its form's hidden fields must not leak.
fn finish(raw: RawCall, projects: &HashMap<i64, ProjectView>) -> CallView {
    let mut view = raw.view;
    let project = view.project_id.and_then(|id| projects.get(&id));
    if project.is_none_or(|p| p.hide_middle_digits) {
        view.phone = crate::phone::mask_middle(&view.phone);
    }
    view.record = raw.record.map(|(agent, saved_at, json)| {
        let saved: Vec<(String, String)> = serde_json::from_str(&json).unwrap_or_default();
        let values = project
            .map(|p| {
                p.record_fields
                    .iter()
                    .filter(|field| !field.hidden)
                    .map(|field| RecordValue {
                        key: field.key.clone(),
                        title: field.title.clone(),
                        value: saved.iter().find(|(k, _)| *k == field.key).map(|(_, v)| v.clone()).unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_else(|| {
                if view.batch_id != 0 {
                    return Vec::new();
                }
                saved.iter().map(|(key, value)| RecordValue { key: key.clone(), title: key.clone(), value: value.clone() }).collect()
            });
        CallRecord { agent, saved_at, values }
    });
    view
}

impl Store {
    /// One page of the calls `query` finds within `scope`, newest first.
    pub fn search_calls(&self, query: &CallQuery, scope: &Scope) -> Result<CallPage, DbError> {
        let limit = query.limit.clamp(1, MAX_PAGE);
        let Some((clause, mut args, index)) = conditions(query, scope) else {
            return Ok(CallPage { calls: Vec::new(), next: None });
        };
        // One more than the page: whether a next page exists without counting.
        args.push(i64::from(limit + 1).into());
        let sql = format!(
            "SELECT {CALL_COLUMNS} FROM call_attempts a INDEXED BY {index} {CALL_JOINS}
             WHERE {clause} ORDER BY a.started_at DESC, a.site_id DESC, a.attempt_id DESC LIMIT ?{}",
            args.len()
        );
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut raws = stmt.query_map(params_from_iter(args), raw_call)?.collect::<Result<Vec<_>, _>>()?;
        let more = raws.len() > limit as usize;
        raws.truncate(limit as usize);
        let projects = project_views(&conn, raws.iter().filter_map(|raw| raw.view.project_id))?;
        let calls: Vec<CallView> = raws.into_iter().map(|raw| finish(raw, &projects)).collect();
        let next = if more { calls.last().map(CallView::cursor) } else { None };
        Ok(CallPage { calls, next })
    }

    /// One call, if it exists and `scope` may see it.
    pub fn call(&self, site_id: i64, attempt_id: i64, scope: &Scope) -> Result<Option<CallView>, DbError> {
        let conn = self.conn();
        let raw = conn
            .prepare_cached(&format!(
                "SELECT {CALL_COLUMNS} FROM call_attempts a {CALL_JOINS} WHERE a.site_id = ?1 AND a.attempt_id = ?2"
            ))?
            .query_row([site_id, attempt_id], raw_call)
            .optional()?;
        let Some(raw) = raw else { return Ok(None) };
        let visible = match raw.view.project_id {
            Some(project) => scope.project_site(project, site_id),
            None => scope.is_admin(),
        };
        if !visible {
            return Ok(None);
        }
        let projects = project_views(&conn, raw.view.project_id.into_iter())?;
        Ok(Some(finish(raw, &projects)))
    }
}

/// Undoes migration 25 (call quality), migrations 15 and 16 (the call search) and 17 (edit after create, whose
/// `project_names` the call search reads), 20 (recording retention, which a store
/// rebuilt at an older version would otherwise add twice), 22 (pools) and 23 (the report
/// facts in the call records: the table comes back, keyed as migration 18 leaves it), for
/// the tests that rebuild an older store. Migration 24 needs no undoing: it runs again on
/// its own result.
#[cfg(test)]
pub(super) const UNDO_MIGRATION: &str = "DROP TABLE call_quality; DROP VIEW report_facts;
    CREATE TABLE report_facts (site_id INTEGER NOT NULL, attempt_id INTEGER NOT NULL,
        has_attempt INTEGER NOT NULL DEFAULT 0, utc_hour INTEGER NOT NULL DEFAULT 0, project_id INTEGER NOT NULL DEFAULT 0,
        team TEXT NOT NULL DEFAULT '', agent TEXT NOT NULL DEFAULT '', extension TEXT NOT NULL DEFAULT '',
        batch_id INTEGER NOT NULL DEFAULT 0, account TEXT NOT NULL DEFAULT '', direction INTEGER NOT NULL DEFAULT 0,
        hangup INTEGER NOT NULL DEFAULT 0, outcome INTEGER NOT NULL DEFAULT 0, ring_s INTEGER NOT NULL DEFAULT 0,
        queue_s INTEGER NOT NULL DEFAULT 0, talk_s INTEGER NOT NULL DEFAULT 0, ivr_s INTEGER NOT NULL DEFAULT 0,
        started_at INTEGER NOT NULL DEFAULT 0, combo TEXT NOT NULL DEFAULT '[]', PRIMARY KEY (site_id, attempt_id))
        WITHOUT ROWID;
    ALTER TABLE call_attempts DROP COLUMN report_project; ALTER TABLE call_attempts DROP COLUMN report_account;
    ALTER TABLE call_attempts DROP COLUMN team; ALTER TABLE call_attempts DROP COLUMN ring_s;
    ALTER TABLE call_attempts DROP COLUMN queue_s; ALTER TABLE call_attempts DROP COLUMN ivr_s;
    ALTER TABLE business_records DROP COLUMN report_combo;
    DROP TABLE lease_recalls; DROP TABLE leases; DROP TABLE pool_numbers; DROP TABLE pools;
    ALTER TABLE batches DROP COLUMN pool_id; ALTER TABLE batches DROP COLUMN lease_request; ALTER TABLE batches DROP COLUMN pool_recalled;
    DROP TABLE project_names; ALTER TABLE projects DROP COLUMN archived_at;
    ALTER TABLE accounts DROP COLUMN disabled; DROP INDEX calls_time; DROP INDEX calls_site_time; DROP INDEX calls_last4_time;
    DROP INDEX calls_agent_time; DROP INDEX calls_batch_time; CREATE INDEX call_attempts_started ON call_attempts(started_at);
    ALTER TABLE call_attempts DROP COLUMN phone_last4; ALTER TABLE call_attempts DROP COLUMN extension;
    DROP TABLE down_held; ALTER TABLE sites DROP COLUMN protocol_version;
    ALTER TABLE sites DROP COLUMN recording_retention_days; ALTER TABLE sites DROP COLUMN retention_version;";

#[cfg(test)]
mod tests;
