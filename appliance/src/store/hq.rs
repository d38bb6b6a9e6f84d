//! What HQ decides and the site must hold to even while the link is down, and what the
//! site sends up besides its outbox.
//!
//! - HQ's black and white lists ([`DownEvent::PhoneList`], one version per number across
//!   both lists, so a site keeps the newest change however the entries arrive; the older
//!   [`DownEvent::BlackList`] lands in the same table): a blacklisted number is never taken
//!   for dialing, by the predictive dialer, a one-click agent or a callback, and the site's
//!   data pages mark it; the white list is shown to the site's staff, read-only.
//! - Project settings ([`DownEvent::ProjectSettings`]): calling windows in China time
//!   (the site's local time, UTC+8 all year) outside which no number is taken, and HQ's
//!   running flag.
//! - Batch, project and one-click controls, each by its own version; every one that
//!   arrives writes an [`UpEvent::ControlApplied`] saying what the site actually did.
//! - Recordings waiting for upload, link settings and live figures for the link.
//!
//! The gates live in SQL ([`HQ_GATES`]) so that every claim checks them in the same
//! transaction that takes the number: nothing can slip between a check and a dial.

use std::sync::atomic::Ordering;

use rusqlite::{OptionalExtension, Transaction, params};
use sync_link::blob::{BlobRef, OpenBlob};
use sync_protocol::{
    BlackListChange, ControlApplied, ControlScope, ControlTarget, LinkSettings, LiveFigures, OneClickControl,
    PhoneListChange, PhoneListKind, ProjectControl, ProjectSettings, RunState, UpEvent,
};

use super::{DbError, Store, corrupt, now_unix, push_outbox};

/// Conditions a claim query adds so that HQ's guards hold: `r` is the batch row, `b` its
/// batch, and `?2` must be bound to the China-time minute of the day ([`china_minute`]).
///
/// A row is never taken when its number is black-listed, its project is paused or ended
/// by HQ (a project control, or the status in HQ's project settings), a one-click stop
/// covers it (the site, its project or its batch), or its project
/// has calling windows and none is open now.
pub(super) const HQ_GATES: &str = "
    AND NOT EXISTS (SELECT 1 FROM blacklist bl WHERE bl.phone = r.phone AND bl.listed = 1)
    AND NOT EXISTS (SELECT 1 FROM project_run pr
                    WHERE pr.project_id = b.project_id
                      AND (pr.hq_state <> 'running' OR pr.settings_running = 0))
    AND NOT EXISTS (SELECT 1 FROM one_click oc WHERE oc.start = 0
                    AND (oc.scope = 'site' OR oc.scope = 'project:' || b.project_id
                         OR oc.scope = 'batch:' || b.batch_id))
    AND (NOT EXISTS (SELECT 1 FROM calling_windows w WHERE w.project_id = b.project_id)
         OR EXISTS (SELECT 1 FROM calling_windows w WHERE w.project_id = b.project_id
                    AND w.start_minute <= ?2 AND ?2 < w.end_minute))";

/// Minutes after midnight in China time (UTC+8, no daylight saving) at `unix` seconds.
pub fn china_minute(unix: i64) -> i64 {
    (unix + 8 * 3600).rem_euclid(86_400) / 60
}

/// A task's abandon rate as regulators count it: answered calls not put through to an agent
/// within 2 s (outcome `abandoned`) over answered calls, for today (China time) and the
/// last 30 days. `None` when nothing was answered in the span.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct AbandonRates {
    pub today: Option<f64>,
    pub last_30_days: Option<f64>,
}

impl Store {
    /// [`AbandonRates`] of `batch_id` as of `now` (unix seconds).
    pub fn abandon_rates(&self, batch_id: u64, now: i64) -> Result<AbandonRates, DbError> {
        let midnight = now - china_minute(now) * 60 - now.rem_euclid(60);
        let thirty_days_ago = now - 30 * 86_400;
        let conn = self.lock();
        let mut statement = conn.prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(outcome = 'abandoned'), 0) FROM attempts
             WHERE batch_id = ?1 AND answered_at IS NOT NULL AND started_at >= ?2",
        )?;
        let mut rate_since = |since: i64| -> Result<Option<f64>, DbError> {
            let (answered, abandoned): (i64, i64) =
                statement.query_row(params![batch_id, since], |row| Ok((row.get(0)?, row.get(1)?)))?;
            Ok((answered > 0).then(|| abandoned as f64 / answered as f64))
        };
        Ok(AbandonRates { today: rate_since(midnight)?, last_30_days: rate_since(thirty_days_ago)? })
    }
}

fn scope_key(scope: ControlScope) -> Option<String> {
    match scope {
        ControlScope::Site => Some("site".to_string()),
        ControlScope::Project(id) => Some(format!("project:{id}")),
        ControlScope::Batch(id) => Some(format!("batch:{id}")),
        _ => None,
    }
}

fn run_state_name(state: RunState) -> &'static str {
    match state {
        RunState::Running => "running",
        RunState::Paused => "paused",
        RunState::Ended => "ended",
        // A newer hub's state this build does not know: holding still is the safe reading.
        _ => "paused",
    }
}

/// Which batches a control covers, as an SQL condition on `a.batch_id` (ids are integers
/// from the message, so formatting them in is safe).
fn scope_condition(target: ControlTarget) -> String {
    match target {
        ControlTarget::Project(id) | ControlTarget::OneClick(ControlScope::Project(id)) => {
            format!("a.batch_id IN (SELECT batch_id FROM batches WHERE project_id = {id})")
        }
        ControlTarget::Batch(id) | ControlTarget::OneClick(ControlScope::Batch(id)) => format!("a.batch_id = {id}"),
        _ => "1".to_string(),
    }
}

/// Writes the [`ControlApplied`] of a control change: what was dialed in its scope since
/// the site last heard from HQ (the change was made at HQ after that, so this is what may
/// have been dialed against it), and how many calls are still in progress.
pub(super) fn report_control(
    tx: &Transaction<'_>,
    target: ControlTarget,
    version: u64,
    applied: bool,
    heard_at: i64,
) -> Result<(), DbError> {
    let scope = scope_condition(target);
    let dialed_before_applied: u64 = tx.query_row(
        &format!("SELECT COUNT(*) FROM attempts a WHERE {scope} AND a.started_at >= ?1"),
        [heard_at],
        |row| row.get(0),
    )?;
    let calls_in_progress: u32 =
        tx.query_row(&format!("SELECT COUNT(*) FROM attempts a WHERE {scope} AND a.state = 'dialing'"), [], |row| {
            row.get(0)
        })?;
    push_outbox(
        tx,
        &UpEvent::ControlApplied(ControlApplied {
            target,
            version,
            applied_at: now_unix(),
            dialed_before_applied,
            calls_in_progress,
            applied,
        }),
    )?;
    Ok(())
}

/// Why HQ holds `project_id` from dialing at China minute `minute`, if it does: told to an
/// agent whose one-click call found nothing, so they know it is not for lack of numbers.
pub(super) fn hold_reason(conn: &rusqlite::Connection, project_id: u64, minute: i64) -> Result<Option<String>, DbError> {
    let state: Option<String> = conn
        .query_row(
            "SELECT CASE WHEN hq_state = 'running' AND settings_running = 0 THEN 'paused' ELSE hq_state END
             FROM project_run WHERE project_id = ?1",
            [project_id],
            |row| row.get(0),
        )
        .optional()?;
    match state.as_deref() {
        Some("paused") => return Ok(Some(format!("HQ has paused project {project_id}; wait until HQ runs it again"))),
        Some("ended") => return Ok(Some(format!("HQ has ended project {project_id}"))),
        _ => {}
    }
    let stopped: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM one_click WHERE start = 0 AND scope IN ('site', 'project:' || ?1))",
        [project_id],
        |row| row.get(0),
    )?;
    if stopped {
        return Ok(Some(format!("HQ has stopped dialing for project {project_id}")));
    }
    let mut statement = conn.prepare_cached(
        "SELECT start_minute, end_minute FROM calling_windows WHERE project_id = ?1 ORDER BY start_minute",
    )?;
    let windows: Vec<(i64, i64)> =
        statement.query_map([project_id], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<Result<_, _>>()?;
    if !windows.is_empty() && !windows.iter().any(|(start, end)| *start <= minute && minute < *end) {
        let hhmm = |m: i64| format!("{:02}:{:02}", m / 60, m % 60);
        let list = windows.iter().map(|(start, end)| format!("{}-{}", hhmm(*start), hhmm(*end))).collect::<Vec<_>>();
        return Ok(Some(format!(
            "it is {} China time, outside HQ's calling windows for project {project_id} ({})",
            hhmm(minute),
            list.join(", ")
        )));
    }
    Ok(None)
}

/// Keeps `phone`'s list entry at `version` unless a newer one is already kept: a change
/// that arrives after a newer one (replayed, or seeded at enrollment) changes nothing.
fn keep_newest(tx: &Transaction<'_>, phone: &str, version: u64, black: bool, white: bool, note: &str) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO blacklist (phone, version, listed, white, note) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (phone) DO UPDATE SET version = excluded.version, listed = excluded.listed,
                                           white = excluded.white, note = excluded.note
         WHERE excluded.version > blacklist.version",
        params![phone.trim(), version as i64, black, white, note],
    )?;
    Ok(())
}

/// The protocol-1 black list change: on or off the black list (and so off the white one).
pub(super) fn apply_blacklist(tx: &Transaction<'_>, change: &BlackListChange) -> Result<(), DbError> {
    keep_newest(tx, &change.phone, change.version, change.listed, false, &change.note)
}

/// HQ's list change: the number is on the black list, the white list, or neither now.
pub(super) fn apply_phone_list(tx: &Transaction<'_>, change: &PhoneListChange) -> Result<(), DbError> {
    let (black, white) = match change.list {
        Some(PhoneListKind::Black) => (true, false),
        Some(PhoneListKind::White) => (false, true),
        None => (false, false),
        // A list this build does not know: it holds no number back, and the version is kept
        // so an older change cannot come back over it.
        Some(_) => {
            tracing::warn!(phone = %change.phone, "an HQ list this appliance does not know; upgrade it");
            (false, false)
        }
    };
    keep_newest(tx, &change.phone, change.version, black, white, &change.note)
}

/// A number on one of HQ's lists, as the site's staff see it (read-only: HQ owns the lists).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HqListedView {
    /// As the viewer may see it.
    pub phone: String,
    /// `black` or `white`.
    pub list: &'static str,
    pub note: String,
    pub version: u64,
}

pub(super) fn apply_project_settings(tx: &Transaction<'_>, settings: &ProjectSettings) -> Result<(), DbError> {
    let last: Option<i64> = tx
        .query_row(
            "SELECT settings_version FROM project_run WHERE project_id = ?1",
            [settings.project_id],
            |row| row.get(0),
        )
        .optional()?
        .flatten();
    if last.is_some_and(|last| settings.version < last as u64) {
        return Ok(());
    }
    // HQ's status (项目状态) is kept as sent: `None` hands it back to the site, so a pause
    // from an earlier version is lifted. A project control's pause or end (`hq_state`) is
    // another matter and stays.
    tx.execute(
        "INSERT INTO project_run (project_id, settings_version, popup_on_ring, settings_running) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (project_id) DO UPDATE SET settings_version = excluded.settings_version,
                                                popup_on_ring = excluded.popup_on_ring,
                                                settings_running = excluded.settings_running",
        params![settings.project_id, settings.version as i64, settings.popup_on_ring, settings.running],
    )?;
    tx.execute("DELETE FROM calling_windows WHERE project_id = ?1", [settings.project_id])?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO calling_windows (project_id, start_minute, end_minute) VALUES (?1, ?2, ?3)",
    )?;
    for window in &settings.calling_windows {
        if window.start_minute >= window.end_minute || window.end_minute > 1440 {
            // HQ checks windows before sending; one that slipped through opens nothing.
            tracing::warn!(project = settings.project_id, ?window, "calling window out of order ignored");
            continue;
        }
        insert.execute(params![settings.project_id, window.start_minute, window.end_minute])?;
    }
    Ok(())
}

pub(super) fn apply_project_control(tx: &Transaction<'_>, control: &ProjectControl, heard_at: i64) -> Result<(), DbError> {
    let last: Option<i64> = tx
        .query_row("SELECT control_version FROM project_run WHERE project_id = ?1", [control.project_id], |row| {
            row.get(0)
        })
        .optional()?
        .flatten();
    let applied = last.is_none_or(|last| control.version > last as u64);
    if applied {
        tx.execute(
            "INSERT INTO project_run (project_id, control_version, hq_state) VALUES (?1, ?2, ?3)
             ON CONFLICT (project_id) DO UPDATE SET control_version = excluded.control_version,
                    hq_state = CASE WHEN project_run.hq_state = 'ended' THEN 'ended'
                                    ELSE excluded.hq_state END",
            params![control.project_id, control.version as i64, run_state_name(control.state)],
        )?;
    }
    report_control(tx, ControlTarget::Project(control.project_id), control.version, applied, heard_at)
}

pub(super) fn apply_one_click(tx: &Transaction<'_>, control: &OneClickControl, heard_at: i64) -> Result<(), DbError> {
    let Some(key) = scope_key(control.scope) else {
        tracing::warn!(scope = ?control.scope, "one-click control for an unknown scope skipped; upgrade the appliance");
        return Ok(());
    };
    let last: Option<i64> =
        tx.query_row("SELECT version FROM one_click WHERE scope = ?1", [&key], |row| row.get(0)).optional()?;
    let applied = last.is_none_or(|last| control.version > last as u64);
    if applied {
        tx.execute(
            "INSERT INTO one_click (scope, version, start) VALUES (?1, ?2, ?3)
             ON CONFLICT (scope) DO UPDATE SET version = excluded.version, start = excluded.start",
            params![key, control.version as i64, control.start],
        )?;
        if control.start {
            // A start over a scope lifts the stops inside it and starts its dialable,
            // not-ended batches with the parameters they have.
            let (inner, batches) = match control.scope {
                ControlScope::Project(id) => (
                    format!("scope IN (SELECT 'batch:' || batch_id FROM batches WHERE project_id = {id})"),
                    format!("project_id = {id}"),
                ),
                ControlScope::Batch(id) => ("0".to_string(), format!("batch_id = {id}")),
                _ => ("1".to_string(), "1".to_string()),
            };
            tx.execute(&format!("UPDATE one_click SET start = 1 WHERE start = 0 AND {inner}"), [])?;
            // Tasks are the projects' (S1): a start starts the tasks of the projects whose
            // batches it covers; batches whose project has not arrived start on their own.
            let covered = format!(
                "SELECT project_id FROM batches WHERE {batches} AND verified = 1 AND project_id IS NOT NULL
                 AND COALESCE(control_priority, manifest_priority, 2) >= 1"
            );
            tx.execute(&format!("INSERT OR IGNORE INTO project_tasks (project_id) {covered}"), [])?;
            tx.execute(&format!("UPDATE project_tasks SET running = 1 WHERE project_id IN ({covered})"), [])?;
            tx.execute(
                &format!(
                    "UPDATE batches SET running = 1 WHERE {batches} AND verified = 1 AND project_id IS NULL
                     AND COALESCE(control_priority, manifest_priority, 2) >= 1"
                ),
                [],
            )?;
        }
    }
    report_control(tx, ControlTarget::OneClick(control.scope), control.version, applied, heard_at)
}

pub(super) fn apply_link_settings(tx: &Transaction<'_>, settings: &LinkSettings) -> Result<(), DbError> {
    let bytes = postcard::to_stdvec(settings).map_err(|e| corrupt("link settings", e))?;
    tx.execute(
        "INSERT INTO link_settings (id, version, settings) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET version = excluded.version, settings = excluded.settings
         WHERE excluded.version >= link_settings.version",
        params![settings.version as i64, bytes],
    )?;
    Ok(())
}

/// HQ's name of the site; an older version never replaces a newer one.
pub(super) fn apply_site_profile(tx: &Transaction<'_>, profile: &sync_protocol::SiteProfile) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO site_profile (id, version, name) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET version = excluded.version, name = excluded.name
         WHERE excluded.version >= site_profile.version",
        params![profile.version as i64, profile.name],
    )?;
    Ok(())
}

pub(super) fn hex_of(sha256: &[u8; 32]) -> String {
    sha256.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn sha_of_hex(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (idx, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(text.get(idx * 2..idx * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Store {
    /// HQ's black and white lists as the site holds them now (numbers masked unless the
    /// viewer may see them whole), black first.
    pub fn hq_lists(&self, viewer: &super::Viewer) -> Result<Vec<HqListedView>, DbError> {
        let conn = self.lock();
        let mut statement = conn.prepare(
            "SELECT phone, listed, note, version FROM blacklist WHERE listed = 1 OR white = 1
             ORDER BY listed DESC, phone",
        )?;
        let rows = statement
            .query_map([], |row| {
                let phone: String = row.get(0)?;
                let black: bool = row.get(1)?;
                Ok(HqListedView {
                    phone: viewer.phone(None, &phone),
                    list: if black { "black" } else { "white" },
                    note: row.get(2)?,
                    version: row.get::<_, i64>(3)? as u64,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Whether `phone` is on HQ's black list now.
    pub fn is_blacklisted(&self, phone: &str) -> Result<bool, DbError> {
        let listed: Option<bool> = self
            .lock()
            .query_row("SELECT listed FROM blacklist WHERE phone = ?1", [phone.trim()], |row| row.get(0))
            .optional()?;
        Ok(listed.unwrap_or(false))
    }

    /// HQ's popup timing for a project (`Some(true)` on ring), if HQ set one.
    pub fn hq_popup_on_ring(&self, project_id: u64) -> Result<Option<bool>, DbError> {
        let found: Option<Option<bool>> = self
            .lock()
            .query_row("SELECT popup_on_ring FROM project_run WHERE project_id = ?1", [project_id], |row| row.get(0))
            .optional()?;
        Ok(found.flatten())
    }

    /// Whether the popup of `user_id`'s call in `batch_id` comes on ring: HQ's project
    /// setting when HQ set one (弹屏时机 bound by HQ), otherwise the agent's own choice.
    pub fn pops_on_ring_for(&self, batch_id: u64, user_id: u64) -> Result<bool, DbError> {
        let conn = self.lock();
        let hq: Option<Option<bool>> = conn
            .query_row(
                "SELECT pr.popup_on_ring FROM batches b JOIN project_run pr ON pr.project_id = b.project_id
                 WHERE b.batch_id = ?1",
                [batch_id],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(Some(hq)) = hq {
            return Ok(hq);
        }
        let timing: Option<String> = conn
            .query_row("SELECT popup_timing FROM agent_settings WHERE user_id = ?1", [user_id], |row| row.get(0))
            .optional()?;
        Ok(timing.as_deref() == Some("ring"))
    }

    /// The link polled the live figures (every 500 ms while a session is up). If the
    /// previous poll was moments ago, the session has been up since then, so HQ was there
    /// at that time. After a gap (a new session), the last time HQ was known to be there
    /// stays where it was before the outage until the next poll: control changes HQ made
    /// during the outage, which arrive first, count what was dialed since the outage began.
    pub(super) fn heard_from_link(&self) {
        let now = now_unix();
        let previous = self.link_tick_at.swap(now, Ordering::Relaxed);
        if now - previous <= 2 {
            self.link_heard_at.fetch_max(previous, Ordering::Relaxed);
        }
    }

    /// When HQ was last known to be there (unix seconds); see [`Store::heard_from_link`].
    pub fn link_heard_at(&self) -> i64 {
        self.link_heard_at.load(Ordering::Relaxed)
    }

    /// Recordings of finished attempts HQ has not confirmed yet, oldest first. A recording
    /// whose file is gone (cleaned up by hand) is skipped with a warning.
    pub fn recordings_to_upload(&self, limit: usize) -> Result<Vec<BlobRef>, DbError> {
        let conn = self.lock();
        let mut statement = conn.prepare_cached(
            "SELECT recording_sha256, recording_path FROM attempts
             WHERE recording_sha256 IS NOT NULL AND recording_uploaded = 0 AND state = 'done'
             ORDER BY attempt_id LIMIT ?1",
        )?;
        let rows = statement
            .query_map([limit as i64], |row| Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        let mut refs = Vec::new();
        for (hex, path) in rows {
            let Some(sha256) = sha_of_hex(&hex) else {
                tracing::warn!(%hex, "recording hash unreadable; it is not uploaded");
                continue;
            };
            let Some(size) = path.and_then(|path| std::fs::metadata(path).ok()).map(|meta| meta.len()) else {
                tracing::warn!(%hex, "recording file missing; it is not uploaded");
                continue;
            };
            if !refs.iter().any(|r: &BlobRef| r.sha256 == sha256) {
                refs.push(BlobRef { sha256, size });
            }
        }
        Ok(refs)
    }

    /// The recording file whose SHA-256 is `sha256`, opened for reading.
    pub fn open_recording_file(&self, sha256: &[u8; 32]) -> Result<Option<OpenBlob>, DbError> {
        let path: Option<Option<String>> = self
            .lock()
            .query_row(
                "SELECT recording_path FROM attempts WHERE lower(recording_sha256) = ?1
                 AND recording_path IS NOT NULL LIMIT 1",
                [hex_of(sha256)],
                |row| row.get(0),
            )
            .optional()?;
        let Some(Some(path)) = path else { return Ok(None) };
        let Ok(file) = std::fs::File::open(&path) else {
            tracing::warn!(%path, "recording listed but its file cannot be opened");
            return Ok(None);
        };
        let size = file.metadata().map(|meta| meta.len()).unwrap_or(0);
        Ok(Some(OpenBlob { size, reader: Box::new(file) }))
    }

    /// HQ holds the recording: it is not offered again.
    pub fn mark_recording_uploaded(&self, sha256: &[u8; 32]) -> Result<(), DbError> {
        self.lock().execute(
            "UPDATE attempts SET recording_uploaded = 1 WHERE lower(recording_sha256) = ?1",
            [hex_of(sha256)],
        )?;
        Ok(())
    }

    /// The last link settings HQ sent.
    /// HQ's name of the site, once HQ sent it.
    pub fn site_name(&self) -> Result<Option<String>, DbError> {
        Ok(self.lock().query_row("SELECT name FROM site_profile WHERE id = 1", [], |row| row.get(0)).optional()?)
    }

    pub fn stored_link_settings(&self) -> Result<Option<LinkSettings>, DbError> {
        let bytes: Option<Vec<u8>> = self
            .lock()
            .query_row("SELECT settings FROM link_settings WHERE id = 1", [], |row| row.get(0))
            .optional()?;
        match bytes {
            Some(bytes) => Ok(Some(postcard::from_bytes(&bytes).map_err(|e| corrupt("link settings", e))?)),
            None => Ok(None),
        }
    }

    /// The site's figures for HQ's wallboard: calls from the store, agents from what the
    /// desk last told [`Store::set_agent_counts`].
    pub fn figures_now(&self) -> Result<LiveFigures, DbError> {
        let now = now_unix();
        // Today starts at midnight China time.
        let day_start = now - china_minute(now) * 60 - (now.rem_euclid(60));
        let conn = self.lock();
        let (calls_dialing, calls_queued, calls_today, connected_today): (u32, u32, u64, u64) = conn.query_row(
            "SELECT (SELECT COUNT(*) FROM attempts WHERE state = 'dialing' AND answered_at IS NULL),
                    (SELECT COUNT(*) FROM attempts WHERE state = 'dialing' AND answered_at IS NOT NULL AND agent IS NULL),
                    (SELECT COUNT(*) FROM attempts WHERE started_at >= ?1),
                    (SELECT COUNT(*) FROM attempts WHERE started_at >= ?1 AND outcome = 'connected')",
            [day_start],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )?;
        let mut statement = conn.prepare_cached(
            "SELECT b.batch_id, (SELECT COUNT(*) FROM batch_rows r WHERE r.batch_id = b.batch_id AND r.status = 'new')
             FROM batches b WHERE b.running = 1 AND b.verified = 1 ORDER BY b.batch_id",
        )?;
        let batches_remaining = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<Result<_, _>>()?;
        let agents = *self.agent_counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(LiveFigures {
            taken_at_ms: now * 1000,
            agents_logged_in: agents.logged_in,
            agents_ready: agents.ready,
            agents_talking: agents.talking,
            agents_wrap_up: agents.wrap_up,
            agents_on_break: agents.on_break,
            calls_dialing,
            calls_queued,
            calls_today,
            connected_today,
            batches_remaining,
        })
    }

    /// The desk's agent counts, for [`Store::figures_now`].
    pub fn set_agent_counts(&self, counts: AgentCounts) {
        *self.agent_counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = counts;
    }
}

/// Agents by state, as the desk knows them (the store keeps no agent state of its own).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentCounts {
    pub logged_in: u32,
    pub ready: u32,
    pub talking: u32,
    pub wrap_up: u32,
    pub on_break: u32,
}
