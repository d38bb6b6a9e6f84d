//! The site's working day in the store: task settings and task agents, the site's
//! attribution rules and allocation, one-click and callback dialing, callbacks, call records,
//! the agents' customers, site roles and the agents' desk settings.
//!
//! Masking lives here, where data is read: every view that carries a phone number or
//! customer fields is built through [`Viewer`], so a hidden field or a masked number is never
//! in the value handed to the web layer in the first place.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use sync_protocol::{
    AttributionRules, Callback, CallbackState, CustomerEdit, DialMode, ProjectDef, UpEvent,
};

use super::{
    ClaimedNumber, DbError, PopupField, Store, corrupt, load_project, mask_phone, now_unix,
    push_outbox,
};

// ---------------------------------------------------------------------------------------
// Lines and task parameters (S1, S2, S5)
// ---------------------------------------------------------------------------------------

/// One of the site's lines as the admin picks it for a task's caller number (主叫).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Line {
    /// The trunk's name, which is the caller number shown to the admin.
    pub name: String,
    /// How many calls the line carries at once.
    pub channels: u32,
}

/// The largest max concurrency worth setting: the caller's lines, or fewer when the task's
/// agents at this ratio cannot use them all (the manual's example: 20 lines, 5 agents,
/// 1:3 gives 15; 1:5 gives 20, because 25 would be above the line count).
pub fn suggested_max_concurrency(lines: u32, agents: u32, ratio: u32) -> u32 {
    lines.min(agents.saturating_mul(ratio)).max(1).min(lines.max(1))
}

/// A task's predictive or one-click mode as the site runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SiteDialMode {
    /// 预测外呼: the system dials for 可回接 agents.
    Predictive,
    /// 一键外呼: agents take numbers one at a time.
    OneClick,
}

impl SiteDialMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SiteDialMode::Predictive => "predictive",
            SiteDialMode::OneClick => "one_click",
        }
    }

    pub fn parse(text: &str) -> Option<SiteDialMode> {
        match text {
            "predictive" => Some(SiteDialMode::Predictive),
            "one_click" => Some(SiteDialMode::OneClick),
            _ => None,
        }
    }
}

/// The routing rules the site offers (转接规则). The dialer core routes to the agent idle
/// the longest, the manual's advice; it is the only rule offered so the page never promises
/// one the core does not follow.
pub const ROUTING_RULES: [&str; 1] = ["longest_idle"];
/// Answer modes (接听方式): the phone picks up by itself, or rings for the agent.
pub const ANSWER_MODES: [&str; 2] = ["auto", "ring"];

/// The task parameters beyond ratio, max concurrency and ring time.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct TaskExtras {
    pub dial_mode: SiteDialMode,
    /// The line (trunk name) the task dials on; empty means any line.
    pub caller: String,
    /// Seconds between an agent's calls (advice 3-5).
    pub cool_down: u32,
    /// Seconds an answered call waits for an agent before it is dropped (advice 35-40).
    pub queue_timeout: u32,
    pub routing: String,
    pub answer_mode: String,
    /// How the dialer paces: one of [`PACING_MODES`].
    pub pacing: String,
    /// The abandon-rate cap of adaptive pacing, in per cent of answered calls (default 3).
    pub abandon_cap_percent: f64,
    /// Hold music (等待音乐) for answered calls waiting for an agent: a voice file from HQ's
    /// voice library; `None` is the manual's 无 (the box's own hold audio).
    pub hold_music: Option<u64>,
}

/// Pacing modes a task can use: `fixed` is the manual's ratio and max concurrency;
/// `progressive` one call per free agent; `adaptive` keeps agents busy while holding the
/// abandon rate (answered, no agent within 2 s) under the task's cap.
pub const PACING_MODES: &[&str] = &["fixed", "progressive", "adaptive"];

impl Default for TaskExtras {
    fn default() -> TaskExtras {
        TaskExtras {
            dial_mode: SiteDialMode::Predictive,
            caller: String::new(),
            cool_down: 3,
            queue_timeout: 35,
            routing: "longest_idle".to_string(),
            answer_mode: "auto".to_string(),
            pacing: "fixed".to_string(),
            abandon_cap_percent: 3.0,
            hold_music: None,
        }
    }
}

/// Which parameters HQ bound for the task's project (shown read-only at the site).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct HqBound {
    pub dial_mode: bool,
    pub ratio: bool,
    pub max_concurrency: bool,
    pub ring_seconds: bool,
}

/// Everything the task page shows about one task's settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct TaskSettings {
    pub batch_id: u64,
    pub project_id: Option<u64>,
    pub extras: TaskExtras,
    pub bound: HqBound,
    /// User ids of the task's agents; empty means every agent of the site.
    pub agents: Vec<u64>,
}

/// Why task settings could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum TaskSettingsError {
    #[error("batch {0} is unknown at this site")]
    NoSuchBatch(u64),
    /// A value is out of range or names something that does not exist; the message says which.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

fn bound_of(def: Option<&ProjectDef>) -> HqBound {
    let Some(def) = def else { return HqBound::default() };
    HqBound {
        dial_mode: def.params.dial_mode.is_some(),
        ratio: def.params.ratio.is_some(),
        max_concurrency: def.params.max_concurrency.is_some(),
        ring_seconds: def.params.ring_seconds.is_some_and(|seconds| seconds > 0),
    }
}

fn hq_dial_mode(def: Option<&ProjectDef>) -> Option<SiteDialMode> {
    match def?.params.dial_mode? {
        DialMode::Predictive => Some(SiteDialMode::Predictive),
        DialMode::OneClick => Some(SiteDialMode::OneClick),
        _ => None,
    }
}

impl Store {
    /// Tells the store the site's lines (from the configuration), for the S2 checks.
    pub fn set_lines(&self, lines: Vec<Line>) {
        *self.lines.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = lines;
    }

    /// The site's lines.
    pub fn lines(&self) -> Vec<Line> {
        self.lines.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// How many channels the task may use: its caller's, or every line's when it has none.
    pub fn caller_channels(&self, caller: &str) -> Option<u32> {
        let lines = self.lines();
        if lines.is_empty() {
            return None;
        }
        if caller.is_empty() {
            return Some(lines.iter().map(|line| line.channels).sum());
        }
        lines.iter().find(|line| line.name == caller).map(|line| line.channels)
    }

    /// The task's settings, with what HQ bound.
    pub fn task_settings(&self, batch_id: u64) -> Result<Option<TaskSettings>, DbError> {
        let conn = self.lock();
        task_settings_in(&conn, batch_id)
    }

    /// Saves the parameters beyond ratio, concurrency and ring time. A value HQ bound is
    /// kept at HQ's value whatever the form says.
    pub fn set_task_extras(&self, batch_id: u64, extras: &TaskExtras) -> Result<TaskExtras, TaskSettingsError> {
        if !(0..=60).contains(&extras.cool_down) {
            return Err(TaskSettingsError::Invalid(format!(
                "cool-down {} s is out of range; choose 0 to 60 (advice: 3-5)",
                extras.cool_down
            )));
        }
        if !(5..=300).contains(&extras.queue_timeout) {
            return Err(TaskSettingsError::Invalid(format!(
                "queue timeout {} s is out of range; choose 5 to 300 (advice: 35-40)",
                extras.queue_timeout
            )));
        }
        if !ROUTING_RULES.contains(&extras.routing.as_str()) {
            return Err(TaskSettingsError::Invalid(format!(
                "routing rule \"{}\" is unknown; use longest_idle",
                extras.routing
            )));
        }
        if !PACING_MODES.contains(&extras.pacing.as_str()) {
            return Err(TaskSettingsError::Invalid(format!(
                "pacing \"{}\" is unknown; use fixed, progressive or adaptive",
                extras.pacing
            )));
        }
        if !(extras.abandon_cap_percent > 0.0 && extras.abandon_cap_percent <= 20.0) {
            return Err(TaskSettingsError::Invalid(format!(
                "abandon-rate cap {} % is out of range; choose above 0 and at most 20 (regulators use 3)",
                extras.abandon_cap_percent
            )));
        }
        if !ANSWER_MODES.contains(&extras.answer_mode.as_str()) {
            return Err(TaskSettingsError::Invalid(format!(
                "answer mode \"{}\" is unknown; use auto or ring",
                extras.answer_mode
            )));
        }
        if let Some(voice_id) = extras.hold_music
            && !self.is_hold_music(voice_id)?
        {
            return Err(TaskSettingsError::Invalid(format!(
                "hold music {voice_id} is not in the voice library HQ sent (语音库); choose one listed, or none"
            )));
        }
        let lines = self.lines();
        if !extras.caller.is_empty() && !lines.iter().any(|line| line.name == extras.caller) {
            let names: Vec<&str> = lines.iter().map(|line| line.name.as_str()).collect();
            return Err(TaskSettingsError::Invalid(format!(
                "caller \"{}\" is not one of the site's lines ({})",
                extras.caller,
                if names.is_empty() { "none configured".to_string() } else { names.join(", ") }
            )));
        }
        let conn = self.lock();
        let Some(current) = task_settings_in(&conn, batch_id)? else {
            return Err(TaskSettingsError::NoSuchBatch(batch_id));
        };
        let def = load_project(&conn, current.project_id.unwrap_or_default())?;
        let mut saved = extras.clone();
        if let Some(mode) = hq_dial_mode(def.as_ref()) {
            saved.dial_mode = mode;
        }
        conn.execute(
            "UPDATE batches SET dial_mode = ?2, caller = ?3, cool_down = ?4, queue_timeout = ?5,
                    routing = ?6, answer_mode = ?7, pacing = ?8, abandon_cap = ?9, hold_music = ?10
             WHERE batch_id = ?1",
            params![
                batch_id,
                saved.dial_mode.as_str(),
                saved.caller,
                saved.cool_down,
                saved.queue_timeout,
                saved.routing,
                saved.answer_mode,
                saved.pacing,
                saved.abandon_cap_percent,
                saved.hold_music
            ],
        )
        .map_err(DbError::from)?;
        Ok(saved)
    }

    /// Picks the agents (user ids) who work a task's queue (S1); empty means every agent.
    pub fn set_task_agents(&self, batch_id: u64, agents: &[u64]) -> Result<(), TaskSettingsError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(DbError::from)?;
        let exists: Option<u64> = tx
            .query_row("SELECT batch_id FROM batches WHERE batch_id = ?1", [batch_id], |row| row.get(0))
            .optional()
            .map_err(DbError::from)?;
        if exists.is_none() {
            return Err(TaskSettingsError::NoSuchBatch(batch_id));
        }
        for agent in agents {
            let role: Option<String> = tx
                .query_row("SELECT role FROM users WHERE user_id = ?1", [agent], |row| row.get(0))
                .optional()
                .map_err(DbError::from)?;
            if role.as_deref() != Some("agent") {
                return Err(TaskSettingsError::Invalid(format!("account {agent} is not an agent of this site")));
            }
        }
        tx.execute("DELETE FROM task_agents WHERE batch_id = ?1", [batch_id]).map_err(DbError::from)?;
        for agent in agents {
            tx.execute(
                "INSERT OR IGNORE INTO task_agents (batch_id, user_id) VALUES (?1, ?2)",
                params![batch_id, agent],
            )
            .map_err(DbError::from)?;
        }
        tx.commit().map_err(DbError::from)?;
        Ok(())
    }

    /// Whether `user_id` works the task (task agents empty means everyone does).
    pub fn works_task(&self, batch_id: u64, user_id: u64) -> Result<bool, DbError> {
        let conn = self.lock();
        let agents = task_agents_in(&conn, batch_id)?;
        Ok(agents.is_empty() || agents.contains(&user_id))
    }
}

fn task_agents_in(conn: &Connection, batch_id: u64) -> Result<Vec<u64>, DbError> {
    let mut statement = conn.prepare("SELECT user_id FROM task_agents WHERE batch_id = ?1 ORDER BY user_id")?;
    let agents = statement.query_map([batch_id], |row| row.get(0))?.collect::<Result<Vec<u64>, _>>()?;
    Ok(agents)
}

fn task_settings_in(conn: &Connection, batch_id: u64) -> Result<Option<TaskSettings>, DbError> {
    // The stored dial mode is read as text and settled below, where HQ's binding wins.
    let found: Option<(Option<u64>, String, TaskExtras)> = conn
        .query_row(
            "SELECT project_id, dial_mode, caller, cool_down, queue_timeout, routing, answer_mode,
                    pacing, abandon_cap, hold_music
             FROM batches WHERE batch_id = ?1",
            [batch_id],
            |row| {
                let extras = TaskExtras {
                    dial_mode: SiteDialMode::Predictive,
                    caller: row.get(2)?,
                    cool_down: row.get(3)?,
                    queue_timeout: row.get(4)?,
                    routing: row.get(5)?,
                    answer_mode: row.get(6)?,
                    pacing: row.get(7)?,
                    abandon_cap_percent: row.get(8)?,
                    hold_music: row.get(9)?,
                };
                Ok((row.get(0)?, row.get(1)?, extras))
            },
        )
        .optional()?;
    let Some((project_id, stored_mode, mut extras)) = found else {
        return Ok(None);
    };
    let def = load_project(conn, project_id.unwrap_or_default())?;
    extras.dial_mode = hq_dial_mode(def.as_ref())
        .or_else(|| SiteDialMode::parse(&stored_mode))
        .unwrap_or(SiteDialMode::Predictive);
    Ok(Some(TaskSettings {
        batch_id,
        project_id,
        extras,
        bound: bound_of(def.as_ref()),
        agents: task_agents_in(conn, batch_id)?,
    }))
}

// ---------------------------------------------------------------------------------------
// Attribution (S3, S4)
// ---------------------------------------------------------------------------------------

/// One site attribution rule: field = value(s) → agent (username).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SiteRule {
    /// `(field, values)`: the row's field must hold one of the values. `phone` is the number.
    pub conditions: Vec<(String, Vec<String>)>,
    /// `true`: every condition must hold (同时满足); `false` (default): any one (任意满足).
    #[serde(default)]
    pub all_match: bool,
    /// The agent's username the row goes to.
    pub agent: String,
}

/// What an allocation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct AllocationReport {
    /// Rows given to an agent.
    pub attributed: u64,
    /// Rows no valid rule matched (they stay for anyone).
    pub not_found: u64,
}

/// Why rules could not be saved or applied.
#[derive(Debug, thiserror::Error)]
pub enum AttributionError {
    #[error("batch {0} is unknown at this site")]
    NoSuchBatch(u64),
    /// A rule is malformed; the message names the rule by its position (from 1).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The agent a row belongs to under `rules`: the first *valid* rule (its agent is one of
/// `agents`) that matches wins, as the manual's tie rule says; within one condition any of
/// its values matches; across conditions, any or all as the rule says.
pub fn attribute<'a>(
    rules: &'a [SiteRule],
    phone: &str,
    fields: &[(String, String)],
    agents: &[String],
) -> Option<&'a str> {
    let value_of = |field: &str| -> Option<&str> {
        if field == "phone" {
            return Some(phone);
        }
        fields.iter().find(|(key, _)| key == field).map(|(_, value)| value.trim())
    };
    let holds = |(field, values): &(String, Vec<String>)| {
        value_of(field).is_some_and(|value| values.iter().any(|wanted| wanted.trim() == value))
    };
    rules
        .iter()
        .filter(|rule| agents.contains(&rule.agent) && !rule.conditions.is_empty())
        .find(|rule| if rule.all_match { rule.conditions.iter().all(holds) } else { rule.conditions.iter().any(holds) })
        .map(|rule| rule.agent.as_str())
}

pub(super) fn apply_hq_rules(tx: &Transaction<'_>, rules: &AttributionRules) -> Result<(), DbError> {
    let site_rules: Vec<SiteRule> = rules
        .rules
        .iter()
        .map(|rule| SiteRule {
            conditions: rule.conditions.iter().map(|c| (c.field.clone(), c.values.clone())).collect(),
            all_match: rule.all_match,
            agent: rule.agent.clone(),
        })
        .collect();
    let json = serde_json::to_string(&site_rules).map_err(|e| corrupt("attribution rules", e))?;
    tx.execute(
        "INSERT INTO hq_rules (project_id, version, rules) VALUES (?1, ?2, ?3)
         ON CONFLICT (project_id) DO UPDATE SET version = excluded.version, rules = excluded.rules
         WHERE excluded.version > hq_rules.version",
        params![rules.project_id, rules.version as i64, json],
    )?;
    Ok(())
}

/// Gives the undialed, unowned rows of a batch that just arrived to their agents by HQ's
/// attribution rules of its project, when HQ sent some and the site has none of its own (a
/// site's own rules win, and its admin applies them with [`Store::allocate`]). Rows no
/// valid rule matches stay for anyone.
pub(super) fn allocate_by_hq_rules(tx: &Transaction<'_>, batch_id: u64) -> Result<u64, DbError> {
    let Some(Some(project_id)) = tx
        .query_row("SELECT project_id FROM batches WHERE batch_id = ?1", [batch_id], |row| row.get::<_, Option<u64>>(0))
        .optional()?
    else {
        return Ok(0);
    };
    let site_has_rules: bool =
        tx.query_row("SELECT EXISTS (SELECT 1 FROM site_rules WHERE project_id = ?1)", [project_id], |row| row.get(0))?;
    let hq: Option<String> = tx
        .query_row("SELECT rules FROM hq_rules WHERE project_id = ?1", [project_id], |row| row.get(0))
        .optional()?;
    let Some(json) = hq.filter(|_| !site_has_rules) else { return Ok(0) };
    let rules: Vec<SiteRule> = serde_json::from_str(&json).map_err(|e| corrupt("HQ attribution rules", e))?;
    if rules.is_empty() {
        return Ok(0);
    }
    let agents: Vec<String> = {
        let mut statement = tx.prepare_cached("SELECT username FROM users WHERE role = 'agent'")?;
        statement.query_map([], |row| row.get(0))?.collect::<Result<_, _>>()?
    };
    let rows: Vec<(u32, u32, String, Vec<u8>)> = {
        let mut statement = tx.prepare_cached(
            "SELECT chunk_idx, row_idx, phone, fields FROM batch_rows
             WHERE batch_id = ?1 AND status = 'new' AND owner IS NULL",
        )?;
        statement
            .query_map([batch_id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))?
            .collect::<Result<_, _>>()?
    };
    let mut given = 0;
    for (chunk_idx, row_idx, phone, fields) in rows {
        let fields: Vec<(String, String)> = postcard::from_bytes(&fields).map_err(|e| corrupt("customer row", e))?;
        if let Some(owner) = attribute(&rules, &phone, &fields, &agents) {
            tx.execute(
                "UPDATE batch_rows SET owner = ?4 WHERE batch_id = ?1 AND chunk_idx = ?2 AND row_idx = ?3",
                params![batch_id, chunk_idx, row_idx, owner],
            )?;
            given += 1;
        }
    }
    if given > 0 {
        tracing::info!(batch_id, project_id, rows = given, "rows given to agents by HQ's attribution rules");
    }
    Ok(given)
}

impl Store {
    /// Replaces the site's attribution rules of a project, in order.
    pub fn set_site_rules(&self, project_id: u64, rules: &[SiteRule]) -> Result<(), AttributionError> {
        for (idx, rule) in rules.iter().enumerate() {
            if rule.conditions.is_empty() {
                return Err(AttributionError::Invalid(format!("rule {}: add at least one field = value", idx + 1)));
            }
            for (field, values) in &rule.conditions {
                if field.trim().is_empty() || values.iter().all(|value| value.trim().is_empty()) {
                    return Err(AttributionError::Invalid(format!(
                        "rule {}: field \"{field}\" needs a name and at least one value",
                        idx + 1
                    )));
                }
            }
            if rule.agent.trim().is_empty() {
                return Err(AttributionError::Invalid(format!("rule {}: choose the agent", idx + 1)));
            }
        }
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(DbError::from)?;
        tx.execute("DELETE FROM site_rules WHERE project_id = ?1", [project_id]).map_err(DbError::from)?;
        for (idx, rule) in rules.iter().enumerate() {
            let conditions = serde_json::to_string(&rule.conditions).map_err(|e| corrupt("rule", e))?;
            tx.execute(
                "INSERT INTO site_rules (project_id, position, all_match, conditions, agent)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![project_id, idx as u32, rule.all_match, conditions, rule.agent.trim()],
            )
            .map_err(DbError::from)?;
        }
        tx.commit().map_err(DbError::from)?;
        Ok(())
    }

    /// The site's rules of a project, or HQ's when the site has none.
    pub fn site_rules(&self, project_id: u64) -> Result<Vec<SiteRule>, DbError> {
        let conn = self.lock();
        rules_in(&conn, project_id)
    }

    /// Applies the rules to the undialed rows of a batch (S4): each becomes owned by the
    /// rule's agent, or unowned when no valid rule matches.
    pub fn allocate(&self, batch_id: u64) -> Result<AllocationReport, AttributionError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(DbError::from)?;
        let project_id: Option<Option<u64>> = tx
            .query_row("SELECT project_id FROM batches WHERE batch_id = ?1", [batch_id], |row| row.get(0))
            .optional()
            .map_err(DbError::from)?;
        let Some(project_id) = project_id else { return Err(AttributionError::NoSuchBatch(batch_id)) };
        let rules = rules_in(&tx, project_id.unwrap_or_default())?;
        let agents: Vec<String> = {
            let mut statement = tx.prepare("SELECT username FROM users WHERE role = 'agent'").map_err(DbError::from)?;
            statement.query_map([], |row| row.get(0)).map_err(DbError::from)?.collect::<Result<_, _>>().map_err(DbError::from)?
        };
        let rows: Vec<(u32, u32, String, Vec<u8>)> = {
            let mut statement = tx
                .prepare(
                    "SELECT chunk_idx, row_idx, phone, fields FROM batch_rows
                     WHERE batch_id = ?1 AND status = 'new'",
                )
                .map_err(DbError::from)?;
            statement
                .query_map([batch_id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
                .map_err(DbError::from)?
                .collect::<Result<_, _>>()
                .map_err(DbError::from)?
        };
        let mut report = AllocationReport { attributed: 0, not_found: 0 };
        for (chunk_idx, row_idx, phone, fields) in rows {
            let fields: Vec<(String, String)> =
                postcard::from_bytes(&fields).map_err(|e| corrupt("customer row", e))?;
            let owner = attribute(&rules, &phone, &fields, &agents);
            match owner {
                Some(_) => report.attributed += 1,
                None => report.not_found += 1,
            }
            tx.execute(
                "UPDATE batch_rows SET owner = ?4 WHERE batch_id = ?1 AND chunk_idx = ?2 AND row_idx = ?3",
                params![batch_id, chunk_idx, row_idx, owner],
            )
            .map_err(DbError::from)?;
        }
        tx.commit().map_err(DbError::from)?;
        Ok(report)
    }
}

fn rules_in(conn: &Connection, project_id: u64) -> Result<Vec<SiteRule>, DbError> {
    let mut statement = conn.prepare(
        "SELECT all_match, conditions, agent FROM site_rules WHERE project_id = ?1 ORDER BY position",
    )?;
    let mut rows = statement.query([project_id])?;
    let mut rules = Vec::new();
    while let Some(row) = rows.next()? {
        let conditions: String = row.get(1)?;
        rules.push(SiteRule {
            all_match: row.get(0)?,
            conditions: serde_json::from_str(&conditions).map_err(|e| corrupt("attribution rule", e))?,
            agent: row.get(2)?,
        });
    }
    if !rules.is_empty() {
        return Ok(rules);
    }
    let hq: Option<String> = conn
        .query_row("SELECT rules FROM hq_rules WHERE project_id = ?1", [project_id], |row| row.get(0))
        .optional()?;
    match hq {
        Some(json) => serde_json::from_str(&json).map_err(|e| corrupt("HQ attribution rules", e)),
        None => Ok(Vec::new()),
    }
}

// ---------------------------------------------------------------------------------------
// Viewers, masking and permissions
// ---------------------------------------------------------------------------------------

/// Who is reading: decides masking. Built by the web layer from the session, never from
/// the request's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    pub username: String,
    /// Whether the account's role may see numbers whose middle digits the project hides.
    pub unmask: bool,
}

impl Viewer {
    /// The phone as this viewer may see it.
    pub fn phone(&self, def: Option<&ProjectDef>, phone: &str) -> String {
        // Without the project's definition the store cannot know it is unmasked: mask.
        let hide = def.is_none_or(|def| def.hide_middle_digits);
        if hide && !self.unmask { mask_phone(phone) } else { phone.to_string() }
    }
}

/// The customer fields anyone at the site may see: hidden fields never leave the store.
pub fn visible_fields(def: Option<&ProjectDef>, values: &[(String, String)]) -> Vec<PopupField> {
    let Some(def) = def else { return Vec::new() };
    def.customer_fields
        .iter()
        .filter(|field| !field.hidden)
        .map(|field| PopupField {
            key: field.key.clone(),
            title: field.title.clone(),
            value: values.iter().find(|(key, _)| *key == field.key).map(|(_, v)| v.clone()).unwrap_or_default(),
        })
        .collect()
}

/// A permission module a site role may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Module {
    /// Site admin: tasks, their parameters and agents, starting and stopping.
    Tasks,
    /// Site admin: extensions and their credentials.
    Extensions,
    /// Site admin: roles and accounts.
    Accounts,
    /// Site admin: attribution rules and allocation.
    Attribution,
    /// Site admin: project data (customers, business data, callbacks).
    Data,
    /// Site admin: exports of results and recordings.
    Export,
    /// Site admin: queue monitoring.
    Monitor,
    /// Sees numbers whose middle digits the project hides.
    FullNumbers,
    /// Agent: own call records and playing their recordings.
    Records,
    /// Agent: downloading own recordings.
    Download,
    /// Agent: own customers.
    Customers,
    /// Agent: callbacks.
    Callbacks,
}

impl Module {
    pub const ADMIN: [Module; 8] = [
        Module::Tasks,
        Module::Extensions,
        Module::Accounts,
        Module::Attribution,
        Module::Data,
        Module::Export,
        Module::Monitor,
        Module::FullNumbers,
    ];
    pub const AGENT: [Module; 4] = [Module::Records, Module::Download, Module::Customers, Module::Callbacks];

    pub fn as_str(self) -> &'static str {
        match self {
            Module::Tasks => "tasks",
            Module::Extensions => "extensions",
            Module::Accounts => "accounts",
            Module::Attribution => "attribution",
            Module::Data => "data",
            Module::Export => "export",
            Module::Monitor => "monitor",
            Module::FullNumbers => "full_numbers",
            Module::Records => "records",
            Module::Download => "download",
            Module::Customers => "customers",
            Module::Callbacks => "callbacks",
        }
    }

    pub fn parse(name: &str) -> Option<Module> {
        Module::ADMIN.into_iter().chain(Module::AGENT).find(|module| module.as_str() == name)
    }
}

/// A site role: a named set of modules.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct SiteRole {
    pub role_id: u64,
    pub name: String,
    pub modules: Vec<Module>,
}

/// Why a role could not be created or given.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error("role name \"{0}\" is already taken")]
    Taken(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Store {
    /// Creates a site role.
    pub fn create_role(&self, name: &str, modules: &[Module]) -> Result<u64, RoleError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 32 {
            return Err(RoleError::Invalid("role name must be 1 to 32 characters".to_string()));
        }
        let names: Vec<&str> = modules.iter().map(|module| module.as_str()).collect();
        let conn = self.lock();
        match conn.execute("INSERT INTO site_roles (name, modules) VALUES (?1, ?2)", params![name, names.join(",")]) {
            Ok(_) => Ok(conn.last_insert_rowid() as u64),
            Err(rusqlite::Error::SqliteFailure(error, _)) if error.code == rusqlite::ErrorCode::ConstraintViolation => {
                Err(RoleError::Taken(name.to_string()))
            }
            Err(error) => Err(DbError::from(error).into()),
        }
    }

    /// Every site role.
    pub fn roles(&self) -> Result<Vec<SiteRole>, DbError> {
        let conn = self.lock();
        let mut statement = conn.prepare("SELECT role_id, name, modules FROM site_roles ORDER BY role_id")?;
        let roles = statement
            .query_map([], |row| {
                let modules: String = row.get(2)?;
                Ok(SiteRole {
                    role_id: row.get(0)?,
                    name: row.get(1)?,
                    modules: modules.split(',').filter_map(Module::parse).collect(),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(roles)
    }

    /// Gives an account a role (`None`: the default modules of its kind).
    pub fn assign_role(&self, user_id: u64, role_id: Option<u64>) -> Result<(), RoleError> {
        let conn = self.lock();
        if let Some(role_id) = role_id {
            let exists: Option<u64> = conn
                .query_row("SELECT role_id FROM site_roles WHERE role_id = ?1", [role_id], |row| row.get(0))
                .optional()
                .map_err(DbError::from)?;
            if exists.is_none() {
                return Err(RoleError::Invalid(format!("role {role_id} does not exist")));
            }
        }
        let changed = conn
            .execute("UPDATE users SET site_role = ?2 WHERE user_id = ?1", params![user_id, role_id])
            .map_err(DbError::from)?;
        if changed == 0 {
            return Err(RoleError::Invalid(format!("account {user_id} does not exist")));
        }
        Ok(())
    }

    /// The modules an account holds: its role's (within its kind), or the kind's defaults.
    /// The built-in site admin sees masked numbers like everyone else; only a role granted
    /// "full_numbers" sees them whole.
    pub fn modules_of(&self, user_id: u64) -> Result<Vec<Module>, DbError> {
        let conn = self.lock();
        let found: Option<(String, Option<String>)> = conn
            .query_row(
                "SELECT u.role, r.modules FROM users u LEFT JOIN site_roles r ON r.role_id = u.site_role
                 WHERE u.user_id = ?1",
                [user_id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let Some((kind, role_modules)) = found else { return Ok(Vec::new()) };
        let allowed: &[Module] = if kind == "admin" { &Module::ADMIN } else { &Module::AGENT };
        Ok(match role_modules {
            Some(list) => list.split(',').filter_map(Module::parse).filter(|m| allowed.contains(m)).collect(),
            None => allowed.iter().copied().filter(|module| *module != Module::FullNumbers).collect(),
        })
    }

    /// The role an account holds, if any.
    pub fn role_of(&self, user_id: u64) -> Result<Option<u64>, DbError> {
        let conn = self.lock();
        let role: Option<Option<u64>> = conn
            .query_row("SELECT site_role FROM users WHERE user_id = ?1", [user_id], |row| row.get(0))
            .optional()?;
        Ok(role.flatten())
    }
}

// ---------------------------------------------------------------------------------------
// Agents' desk settings (A1)
// ---------------------------------------------------------------------------------------

/// An agent's extension settings (分机设置).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AgentSettings {
    /// The line their one-click and callback calls go out on; empty = the task's.
    pub caller: String,
    /// "answer" (pop on connect) or "ring" (pop while ringing; the number then always shows
    /// only its first three and last four digits).
    pub popup_timing: String,
    /// The popup page; each project has one ("default").
    pub popup_page: String,
}

impl Default for AgentSettings {
    fn default() -> AgentSettings {
        AgentSettings { caller: String::new(), popup_timing: "answer".into(), popup_page: "default".into() }
    }
}

impl Store {
    /// An agent's desk settings (defaults until saved).
    pub fn agent_settings(&self, user_id: u64) -> Result<AgentSettings, DbError> {
        let conn = self.lock();
        agent_settings_in(&conn, user_id)
    }

    /// Saves an agent's desk settings.
    pub fn set_agent_settings(&self, user_id: u64, settings: &AgentSettings) -> Result<(), TaskSettingsError> {
        if !["answer", "ring"].contains(&settings.popup_timing.as_str()) {
            return Err(TaskSettingsError::Invalid(format!(
                "popup timing \"{}\" is unknown; use answer or ring",
                settings.popup_timing
            )));
        }
        if settings.popup_page != "default" {
            return Err(TaskSettingsError::Invalid(format!(
                "popup page \"{}\" is unknown; each project has one page, \"default\"",
                settings.popup_page
            )));
        }
        if !settings.caller.is_empty() && !self.lines().iter().any(|line| line.name == settings.caller) {
            return Err(TaskSettingsError::Invalid(format!(
                "caller \"{}\" is not one of the site's lines",
                settings.caller
            )));
        }
        self.lock()
            .execute(
                "INSERT INTO agent_settings (user_id, caller, popup_timing, popup_page) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (user_id) DO UPDATE SET caller = excluded.caller,
                    popup_timing = excluded.popup_timing, popup_page = excluded.popup_page",
                params![user_id, settings.caller, settings.popup_timing, settings.popup_page],
            )
            .map_err(DbError::from)?;
        Ok(())
    }
}

fn agent_settings_in(conn: &Connection, user_id: u64) -> Result<AgentSettings, DbError> {
    let found = conn
        .query_row(
            "SELECT caller, popup_timing, popup_page FROM agent_settings WHERE user_id = ?1",
            [user_id],
            |row| Ok(AgentSettings { caller: row.get(0)?, popup_timing: row.get(1)?, popup_page: row.get(2)? }),
        )
        .optional()?;
    Ok(found.unwrap_or_default())
}

/// Whether the agent (by username) gets the popup while ringing in `project_id`: HQ's
/// project setting when HQ set one, otherwise the agent's own choice.
pub(super) fn pops_on_ring(conn: &Connection, agent: &str, project_id: Option<u64>) -> Result<bool, DbError> {
    if let Some(project_id) = project_id {
        let hq: Option<Option<bool>> = conn
            .query_row("SELECT popup_on_ring FROM project_run WHERE project_id = ?1", [project_id], |row| row.get(0))
            .optional()?;
        if let Some(Some(hq)) = hq {
            return Ok(hq);
        }
    }
    let timing: Option<String> = conn
        .query_row(
            "SELECT s.popup_timing FROM agent_settings s JOIN users u ON u.user_id = s.user_id
             WHERE u.username = ?1",
            [agent],
            |row| row.get(0),
        )
        .optional()?;
    Ok(timing.as_deref() == Some("ring"))
}

/// The row's values with the agents' edits laid over HQ's.
pub(super) fn row_values(conn: &Connection, batch_id: u64, row_id: u64, blob: &[u8]) -> Result<Vec<(String, String)>, DbError> {
    let mut values: Vec<(String, String)> = postcard::from_bytes(blob).map_err(|e| corrupt("customer row", e))?;
    let mut statement = conn.prepare("SELECT field, value FROM customer_edits WHERE batch_id = ?1 AND row_id = ?2")?;
    let edits = statement
        .query_map(params![batch_id, row_id], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    for (field, value) in edits {
        match values.iter_mut().find(|(key, _)| *key == field) {
            Some(slot) => slot.1 = value,
            None => values.push((field, value)),
        }
    }
    Ok(values)
}

// ---------------------------------------------------------------------------------------
// My projects, one-click dialing (A2, A5)
// ---------------------------------------------------------------------------------------

/// A project as an agent's "my projects" lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct MyProject {
    pub project_id: u64,
    pub name: String,
    pub dial_mode: SiteDialMode,
    /// "running" when one of its tasks that this agent works is started, else "paused".
    pub status: &'static str,
    /// When its first batch was imported at HQ (unix seconds).
    pub created_at: i64,
    /// Undialed numbers owned by this agent.
    pub my_numbers: u64,
}

/// A number taken for an agent's own call (one-click, callback or call back now).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualClaim {
    pub claimed: ClaimedNumber,
    /// The line to dial on (empty: any).
    pub caller: String,
    pub ring_seconds: u32,
    pub auto_answer: bool,
    /// What the agent's desk may show while it rings (always first three, last four).
    pub ringing_phone: String,
}

/// Why an agent's own call could not be placed.
#[derive(Debug, thiserror::Error)]
pub enum ManualDialError {
    /// Nothing left to dial in that project for this agent.
    #[error("no number is left to dial in project {0} for you")]
    NothingLeft(u64),
    /// The project has no started one-click task this agent works.
    #[error("project {0} has no started one-click task you work; ask the site admin to start it")]
    NotOneClick(u64),
    /// The callback or call is not this agent's, or not in a state to dial.
    #[error("{0}")]
    NotAllowed(String),
    /// The agent already has a call, or is in a state that takes none.
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Store {
    /// The projects of tasks this agent works, with their one-click state and owned numbers.
    pub fn my_projects(&self, user_id: u64, username: &str) -> Result<Vec<MyProject>, DbError> {
        let conn = self.lock();
        let mut statement = conn.prepare(
            "SELECT b.batch_id, b.project_id, b.running, b.verified,
                    COALESCE(b.control_priority, b.manifest_priority, 2), b.imported_at
             FROM batches b WHERE b.project_id IS NOT NULL ORDER BY b.imported_at, b.batch_id",
        )?;
        type BatchRow = (u64, u64, bool, bool, u8, Option<i64>);
        let batches: Vec<BatchRow> = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?)))?
            .collect::<Result<_, _>>()?;
        let mut projects: Vec<MyProject> = Vec::new();
        for (batch_id, project_id, running, verified, priority, imported_at) in batches {
            let agents = task_agents_in(&conn, batch_id)?;
            if !agents.is_empty() && !agents.contains(&user_id) {
                continue;
            }
            let Some(settings) = task_settings_in(&conn, batch_id)? else { continue };
            let def = load_project(&conn, project_id)?;
            let mine: u64 = conn.query_row(
                "SELECT COUNT(*) FROM batch_rows WHERE batch_id = ?1 AND owner = ?2 AND status = 'new'",
                params![batch_id, username],
                |row| row.get(0),
            )?;
            let live = running && verified && priority >= 2;
            match projects.iter_mut().find(|project| project.project_id == project_id) {
                Some(project) => {
                    project.my_numbers += mine;
                    if live {
                        project.status = "running";
                        project.dial_mode = settings.extras.dial_mode;
                    }
                }
                None => projects.push(MyProject {
                    project_id,
                    name: def.map(|def| def.name).unwrap_or_else(|| format!("project {project_id}")),
                    dial_mode: settings.extras.dial_mode,
                    status: if live { "running" } else { "paused" },
                    created_at: imported_at.unwrap_or_default(),
                    my_numbers: mine,
                }),
            }
        }
        Ok(projects)
    }

    /// Takes the next number of a one-click project for an agent: numbers the agent owns
    /// first, then by batch priority, then import order (A5); numbers owned by another
    /// agent are never taken. The attempt is written as "dialing", kind one_click.
    pub fn claim_one_click(&self, project_id: u64, user_id: u64, username: &str) -> Result<ManualClaim, ManualDialError> {
        self.claim_one_click_at(project_id, user_id, username, now_unix())
    }

    /// [`Store::claim_one_click`] as if the clock read `now` (unix seconds): HQ's calling
    /// windows are judged at that time.
    pub fn claim_one_click_at(&self, project_id: u64, user_id: u64, username: &str, now: i64) -> Result<ManualClaim, ManualDialError> {
        let minute = super::hq::china_minute(now);
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(DbError::from)?;
        let batches: Vec<u64> = {
            let mut statement = tx
                .prepare(
                    "SELECT batch_id FROM batches
                     WHERE project_id = ?1 AND running = 1 AND verified = 1 AND dial_mode = 'one_click'
                       AND COALESCE(control_priority, manifest_priority, 2) >= 2",
                )
                .map_err(DbError::from)?;
            statement
                .query_map([project_id], |row| row.get(0))
                .map_err(DbError::from)?
                .collect::<Result<_, _>>()
                .map_err(DbError::from)?
        };
        let mut mine = Vec::new();
        for batch_id in batches {
            let agents = task_agents_in(&tx, batch_id)?;
            if agents.is_empty() || agents.contains(&user_id) {
                mine.push(batch_id);
            }
        }
        if mine.is_empty() {
            return Err(ManualDialError::NotOneClick(project_id));
        }
        let list = mine.iter().map(|id| id.to_string()).collect::<Vec<_>>().join(",");
        // The ids are integers from the store, so building the IN list is safe.
        let sql = format!(
            "SELECT r.batch_id, r.chunk_idx, r.row_idx, r.row_id, r.phone
             FROM batch_rows r JOIN batches b ON b.batch_id = r.batch_id
             WHERE r.batch_id IN ({list}) AND r.status = 'new' AND (r.owner IS NULL OR r.owner = ?1)
               AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.phone = r.phone AND a.state = 'dialing')
               {gates}
             ORDER BY (r.owner IS NOT NULL) DESC,
                      COALESCE(b.control_priority, b.manifest_priority) DESC,
                      b.imported_at, b.batch_id, r.chunk_idx, r.row_idx
             LIMIT 1",
            gates = super::hq::HQ_GATES
        );
        let next: Option<(u64, u32, u32, u64, String)> = tx
            .query_row(&sql, params![username, minute], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)))
            .optional()
            .map_err(DbError::from)?;
        let Some((batch_id, chunk_idx, row_idx, row_id, phone)) = next else {
            if let Some(reason) = super::hq::hold_reason(&tx, project_id, minute)? {
                return Err(ManualDialError::NotAllowed(reason));
            }
            return Err(ManualDialError::NothingLeft(project_id));
        };
        tx.execute(
            "UPDATE batch_rows SET status = 'dialing' WHERE batch_id = ?1 AND chunk_idx = ?2 AND row_idx = ?3",
            params![batch_id, chunk_idx, row_idx],
        )
        .map_err(DbError::from)?;
        let claim = insert_manual_attempt(&tx, user_id, username, batch_id, chunk_idx, row_idx, row_id, &phone, "one_click", None)?;
        tx.commit().map_err(DbError::from)?;
        Ok(claim)
    }

    /// Writes the attempt of a call back now (from the popup): the same customer as
    /// `attempt_id`, which must have been the agent's. A done callback records it.
    pub fn claim_call_back_now(&self, attempt_id: u64, user_id: u64, username: &str) -> Result<ManualClaim, ManualDialError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(DbError::from)?;
        let found: Option<(u64, u32, u32, u64, String, Option<String>)> = tx
            .query_row(
                "SELECT batch_id, chunk_idx, row_idx, row_id, phone, agent FROM attempts WHERE attempt_id = ?1",
                [attempt_id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?)),
            )
            .optional()
            .map_err(DbError::from)?;
        let Some((batch_id, chunk_idx, row_idx, row_id, phone, agent)) = found else {
            return Err(ManualDialError::NotAllowed(format!("call {attempt_id} does not exist")));
        };
        if agent.as_deref() != Some(username) {
            return Err(ManualDialError::NotAllowed(format!("call {attempt_id} was not yours; you can only call back your own customers")));
        }
        busy_check(&tx, &phone)?;
        let now = now_unix();
        tx.execute(
            "INSERT INTO callbacks (batch_id, chunk_idx, row_idx, row_id, phone, agent, created_by, title, note,
                                    due_at, state, created_at, done_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, '当下回访', '', ?7, 'done', ?7, ?7)",
            params![batch_id, chunk_idx, row_idx, row_id, phone, username, now],
        )
        .map_err(DbError::from)?;
        let callback_id = tx.last_insert_rowid() as u64;
        push_callback_event(&tx, callback_id)?;
        let claim = insert_manual_attempt(&tx, user_id, username, batch_id, chunk_idx, row_idx, row_id, &phone, "callback", Some(callback_id))?;
        tx.commit().map_err(DbError::from)?;
        self.notify.notify_one();
        Ok(claim)
    }

    /// Writes the attempt of a scheduled callback being executed and marks the callback
    /// done (actual time now), with its outbox entry, in one transaction.
    pub fn claim_callback(&self, callback_id: u64, user_id: u64, username: &str) -> Result<ManualClaim, ManualDialError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(DbError::from)?;
        let found: Option<(u64, u32, u32, u64, String, String, String)> = tx
            .query_row(
                "SELECT batch_id, chunk_idx, row_idx, row_id, phone, agent, state FROM callbacks WHERE callback_id = ?1",
                [callback_id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?)),
            )
            .optional()
            .map_err(DbError::from)?;
        let Some((batch_id, chunk_idx, row_idx, row_id, phone, agent, state)) = found else {
            return Err(ManualDialError::NotAllowed(format!("callback {callback_id} does not exist")));
        };
        if agent != username {
            return Err(ManualDialError::NotAllowed(format!("callback {callback_id} is assigned to another agent")));
        }
        if state == "done" || state == "cancelled" {
            return Err(ManualDialError::NotAllowed(format!("callback {callback_id} is already {state}")));
        }
        busy_check(&tx, &phone)?;
        tx.execute(
            "UPDATE callbacks SET state = 'done', done_at = ?2 WHERE callback_id = ?1",
            params![callback_id, now_unix()],
        )
        .map_err(DbError::from)?;
        push_callback_event(&tx, callback_id)?;
        let claim = insert_manual_attempt(&tx, user_id, username, batch_id, chunk_idx, row_idx, row_id, &phone, "callback", Some(callback_id))?;
        tx.commit().map_err(DbError::from)?;
        self.notify.notify_one();
        Ok(claim)
    }
}

fn busy_check(tx: &Transaction<'_>, phone: &str) -> Result<(), ManualDialError> {
    // HQ's black list holds for an agent's own calls too, even while the link is down.
    let listed: Option<bool> = tx
        .query_row("SELECT listed FROM blacklist WHERE phone = ?1", [phone.trim()], |row| row.get(0))
        .optional()
        .map_err(DbError::from)?;
    if listed == Some(true) {
        return Err(ManualDialError::NotAllowed("this number is on HQ's black list and cannot be dialed".into()));
    }
    let dialing: Option<u64> = tx
        .query_row("SELECT attempt_id FROM attempts WHERE phone = ?1 AND state = 'dialing'", [phone], |row| row.get(0))
        .optional()
        .map_err(DbError::from)?;
    if dialing.is_some() {
        return Err(ManualDialError::Busy("this customer is on another call right now; try again in a moment".into()));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn insert_manual_attempt(
    tx: &Transaction<'_>,
    user_id: u64,
    username: &str,
    batch_id: u64,
    chunk_idx: u32,
    row_idx: u32,
    row_id: u64,
    phone: &str,
    kind: &str,
    callback_id: Option<u64>,
) -> Result<ManualClaim, DbError> {
    // The agent is written at once: an agent's own call can only ever go to them.
    tx.execute(
        "INSERT INTO attempts (batch_id, chunk_idx, row_idx, row_id, phone, state, started_at, agent, kind, callback_id)
         VALUES (?1, ?2, ?3, ?4, ?5, 'dialing', ?6, ?7, ?8, ?9)",
        params![batch_id, chunk_idx, row_idx, row_id, phone, now_unix(), username, kind, callback_id],
    )?;
    let attempt_id = tx.last_insert_rowid() as u64;
    let (ring_seconds, answer_mode, task_caller): (u32, String, String) = tx.query_row(
        "SELECT ring_seconds, answer_mode, caller FROM batches WHERE batch_id = ?1",
        [batch_id],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )?;
    let settings = agent_settings_in(tx, user_id)?;
    Ok(ManualClaim {
        claimed: ClaimedNumber { attempt_id, batch_id, row_id, phone: phone.to_string() },
        caller: if settings.caller.is_empty() { task_caller } else { settings.caller },
        ring_seconds,
        auto_answer: answer_mode != "ring",
        ringing_phone: mask_phone(phone),
    })
}

// ---------------------------------------------------------------------------------------
// Callbacks (A7, S10)
// ---------------------------------------------------------------------------------------

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
}

fn callback_state(state: &str) -> CallbackState {
    match state {
        "done" => CallbackState::Done,
        "cancelled" => CallbackState::Cancelled,
        _ => CallbackState::Scheduled,
    }
}

fn push_callback_event(tx: &Transaction<'_>, callback_id: u64) -> Result<(), DbError> {
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

fn check_callback_text(title: &str, note: &str) -> Result<(), CallbackError> {
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
        check_callback_text(title, note)?;
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(DbError::from)?;
        let found: Option<(u64, u32, u32, u64, String, Option<String>)> = tx
            .query_row(
                "SELECT batch_id, chunk_idx, row_idx, row_id, phone, agent FROM attempts WHERE attempt_id = ?1",
                [attempt_id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?)),
            )
            .optional()
            .map_err(DbError::from)?;
        let Some((batch_id, chunk_idx, row_idx, row_id, phone, owner)) = found else {
            return Err(CallbackError::NotFound(format!("call {attempt_id} does not exist")));
        };
        if owner.as_deref() != Some(agent) {
            return Err(CallbackError::NotAllowed(format!("call {attempt_id} was not yours; schedule callbacks of your own calls")));
        }
        let callback_id = insert_callback(&tx, (batch_id, chunk_idx, row_idx, row_id, &phone), agent, agent, title, due_at, note)?;
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
            "SELECT callback_id, agent FROM callbacks WHERE state = 'waiting' AND due_at <= ?1 ORDER BY due_at, callback_id",
        )?;
        let due = statement
            .query_map([now], |row| Ok(DueCallback { callback_id: row.get(0)?, agent: row.get(1)? }))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(due)
    }

    /// Callbacks, newest first: an agent's own (`agent`), or all of a project for the admin.
    pub fn callbacks(&self, viewer: &Viewer, agent: Option<&str>, project_id: Option<u64>, state: Option<&str>) -> Result<Vec<CallbackView>, DbError> {
        let conn = self.lock();
        let mut statement = conn.prepare(
            "SELECT c.callback_id, c.title, c.phone, c.state, c.created_by, c.created_at, c.agent, c.due_at,
                    c.done_at, c.note, b.project_id
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
            });
        }
        Ok(list)
    }
}

fn insert_callback(
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

/// Project definitions read once per listing.
#[derive(Default)]
struct DefCache {
    defs: HashMap<u64, Option<ProjectDef>>,
}

impl DefCache {
    fn get(&mut self, conn: &Connection, project_id: Option<u64>) -> Result<Option<&ProjectDef>, DbError> {
        let project_id = project_id.unwrap_or_default();
        if let std::collections::hash_map::Entry::Vacant(slot) = self.defs.entry(project_id) {
            slot.insert(load_project(conn, project_id)?);
        }
        Ok(self.defs.get(&project_id).and_then(Option::as_ref))
    }
}

// ---------------------------------------------------------------------------------------
// Call records, business data, customers (A8, A9, S10)
// ---------------------------------------------------------------------------------------

/// Filters of the call-record and business-data lists. `None` is "any".
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct CallFilter {
    pub agent: Option<String>,
    pub project_id: Option<u64>,
    pub batch_id: Option<u64>,
    pub outcome: Option<String>,
    /// Trailing digits of the number. A viewer who sees masked numbers may only give the
    /// last four (more would let them test guesses of the hidden digits).
    pub phone_tail: Option<String>,
    /// Started at or after (unix seconds).
    pub from: Option<i64>,
    /// Started before (unix seconds).
    pub to: Option<i64>,
    /// Only calls with a saved business record.
    #[serde(default)]
    pub with_record: bool,
}

/// One call as the records pages show it, already masked for its viewer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct CallRecordView {
    pub attempt_id: u64,
    /// predictive, one_click or callback.
    pub kind: String,
    pub batch_id: u64,
    pub row_id: u64,
    pub project_id: Option<u64>,
    pub project: String,
    pub phone: String,
    pub started_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub outcome: Option<String>,
    pub hangup_side: Option<String>,
    pub agent: Option<String>,
    pub talk_seconds: u32,
    pub has_recording: bool,
    pub customer: Vec<PopupField>,
    /// Business-record values by field (visible fields only), with titles.
    pub record: Vec<PopupField>,
    pub record_saved_at: Option<i64>,
}

/// A customer row as the data pages show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct CustomerView {
    pub batch_id: u64,
    pub row_id: u64,
    pub project_id: Option<u64>,
    pub project: String,
    pub phone: String,
    pub status: String,
    /// On HQ's black list: never dialed here, whatever its status says.
    pub hq_black: bool,
    pub owner: Option<String>,
    pub fields: Vec<PopupField>,
    /// The fields the agent may edit (not hidden, not read-only).
    pub editable: Vec<String>,
}

/// Why a customer edit was refused.
#[derive(Debug, thiserror::Error)]
pub enum EditCustomerError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    NotAllowed(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Store {
    /// Calls matching `filter`, newest first, at most `limit`, masked for `viewer`.
    pub fn call_records(&self, viewer: &Viewer, filter: &CallFilter, limit: u32) -> Result<Vec<CallRecordView>, DbError> {
        let conn = self.lock();
        let tail: Option<String> = filter.phone_tail.as_ref().map(|tail| {
            let digits: String = tail.chars().filter(char::is_ascii_alphanumeric).collect();
            if viewer.unmask {
                digits
            } else {
                let skip = digits.chars().count().saturating_sub(4);
                digits.chars().skip(skip).collect()
            }
        });
        let mut statement = conn.prepare(
            "SELECT a.attempt_id, a.kind, a.batch_id, a.row_id, b.project_id, a.phone, a.started_at, a.answered_at,
                    a.ended_at, a.outcome, a.hangup_side, a.agent, a.talk_seconds, a.recording_path,
                    r.fields, br.record_values, br.saved_at
             FROM attempts a
             JOIN batches b ON b.batch_id = a.batch_id
             LEFT JOIN batch_rows r ON r.batch_id = a.batch_id AND r.chunk_idx = a.chunk_idx AND r.row_idx = a.row_idx
             LEFT JOIN business_records br ON br.attempt_id = a.attempt_id
             WHERE (?1 IS NULL OR a.agent = ?1) AND (?2 IS NULL OR b.project_id = ?2)
               AND (?3 IS NULL OR a.batch_id = ?3) AND (?4 IS NULL OR a.outcome = ?4)
               AND (?5 IS NULL OR a.phone LIKE '%' || ?5) AND (?6 IS NULL OR a.started_at >= ?6)
               AND (?7 IS NULL OR a.started_at < ?7) AND (?8 = 0 OR br.attempt_id IS NOT NULL)
             ORDER BY a.attempt_id DESC LIMIT ?9",
        )?;
        let mut rows = statement.query(params![
            filter.agent,
            filter.project_id,
            filter.batch_id,
            filter.outcome,
            tail.filter(|tail| !tail.is_empty()),
            filter.from,
            filter.to,
            filter.with_record,
            limit
        ])?;
        let mut defs = DefCache::default();
        let mut list = Vec::new();
        while let Some(row) = rows.next()? {
            let batch_id: u64 = row.get(2)?;
            let row_id: u64 = row.get(3)?;
            let project_id: Option<u64> = row.get(4)?;
            let phone: String = row.get(5)?;
            let fields_blob: Option<Vec<u8>> = row.get(14)?;
            let record_json: Option<String> = row.get(15)?;
            let recording: Option<String> = row.get(13)?;
            let values = match &fields_blob {
                Some(blob) => row_values(&conn, batch_id, row_id, blob)?,
                None => Vec::new(),
            };
            let def = defs.get(&conn, project_id)?;
            let record_values: Vec<(String, String)> = match record_json {
                Some(json) => serde_json::from_str(&json).map_err(|e| corrupt("business record", e))?,
                None => Vec::new(),
            };
            let record = match def {
                Some(def) => def
                    .record_fields
                    .iter()
                    .filter(|field| !field.hidden)
                    .map(|field| PopupField {
                        key: field.key.clone(),
                        title: field.title.clone(),
                        value: record_values.iter().find(|(k, _)| *k == field.key).map(|(_, v)| v.clone()).unwrap_or_default(),
                    })
                    .collect(),
                None => Vec::new(),
            };
            list.push(CallRecordView {
                attempt_id: row.get(0)?,
                kind: row.get(1)?,
                batch_id,
                row_id,
                project_id,
                project: def.map(|d| d.name.clone()).unwrap_or_default(),
                phone: viewer.phone(def, &phone),
                started_at: row.get(6)?,
                answered_at: row.get(7)?,
                ended_at: row.get(8)?,
                outcome: row.get(9)?,
                hangup_side: row.get(10)?,
                agent: row.get(11)?,
                talk_seconds: row.get(12)?,
                has_recording: recording.is_some(),
                customer: visible_fields(def, &values),
                record,
                record_saved_at: row.get(16)?,
            });
        }
        Ok(list)
    }

    /// The recording file of a call and the agent who took it.
    pub fn recording_of(&self, attempt_id: u64) -> Result<Option<(std::path::PathBuf, Option<String>)>, DbError> {
        let conn = self.lock();
        let found: Option<(Option<String>, Option<String>)> = conn
            .query_row("SELECT recording_path, agent FROM attempts WHERE attempt_id = ?1", [attempt_id], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        Ok(found.and_then(|(path, agent)| path.map(|path| (std::path::PathBuf::from(path), agent))))
    }

    /// Customer rows: an agent's own (`owner_or_agent`: rows they own or calls they took),
    /// or a project's for the admin, filtered by status and phone tail; masked for `viewer`.
    pub fn customers(&self, viewer: &Viewer, owner_or_agent: Option<&str>, project_id: Option<u64>, status: Option<&str>, limit: u32) -> Result<Vec<CustomerView>, DbError> {
        let conn = self.lock();
        let mut statement = conn.prepare(
            "SELECT r.batch_id, r.row_id, b.project_id, r.phone, r.status, r.owner, r.fields,
                    EXISTS (SELECT 1 FROM blacklist bl WHERE bl.phone = r.phone AND bl.listed = 1)
             FROM batch_rows r JOIN batches b ON b.batch_id = r.batch_id
             WHERE (?1 IS NULL OR r.owner = ?1 OR EXISTS (SELECT 1 FROM attempts a WHERE a.batch_id = r.batch_id
                        AND a.chunk_idx = r.chunk_idx AND a.row_idx = r.row_idx AND a.agent = ?1))
               AND (?2 IS NULL OR b.project_id = ?2) AND (?3 IS NULL OR r.status = ?3)
             ORDER BY r.batch_id, r.chunk_idx, r.row_idx LIMIT ?4",
        )?;
        let mut rows = statement.query(params![owner_or_agent, project_id, status, limit])?;
        let mut defs = DefCache::default();
        let mut list = Vec::new();
        while let Some(row) = rows.next()? {
            let batch_id: u64 = row.get(0)?;
            let row_id: u64 = row.get(1)?;
            let project_id: Option<u64> = row.get(2)?;
            let phone: String = row.get(3)?;
            let blob: Vec<u8> = row.get(6)?;
            let values = row_values(&conn, batch_id, row_id, &blob)?;
            let def = defs.get(&conn, project_id)?;
            list.push(CustomerView {
                batch_id,
                row_id,
                project_id,
                project: def.map(|d| d.name.clone()).unwrap_or_default(),
                phone: viewer.phone(def, &phone),
                status: row.get(4)?,
                hq_black: row.get(7)?,
                owner: row.get(5)?,
                fields: visible_fields(def, &values),
                editable: def
                    .map(|d| d.customer_fields.iter().filter(|f| !f.hidden && !f.read_only).map(|f| f.key.clone()).collect())
                    .unwrap_or_default(),
            });
        }
        Ok(list)
    }

    /// An agent edits their own customer's editable fields; the change goes up as a
    /// [`CustomerEdit`] in the same transaction.
    pub fn edit_customer(&self, batch_id: u64, row_id: u64, agent: &str, changes: &[(String, String)]) -> Result<CustomerEdit, EditCustomerError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(DbError::from)?;
        let found: Option<(Option<String>, Option<u64>, bool)> = tx
            .query_row(
                "SELECT r.owner, b.project_id, EXISTS (SELECT 1 FROM attempts a WHERE a.batch_id = r.batch_id
                        AND a.chunk_idx = r.chunk_idx AND a.row_idx = r.row_idx AND a.agent = ?3)
                 FROM batch_rows r JOIN batches b ON b.batch_id = r.batch_id
                 WHERE r.batch_id = ?1 AND r.row_id = ?2",
                params![batch_id, row_id, agent],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()
            .map_err(DbError::from)?;
        let Some((owner, project_id, talked)) = found else {
            return Err(EditCustomerError::NotFound(format!("customer {row_id} is not in batch {batch_id}")));
        };
        if owner.as_deref() != Some(agent) && !talked {
            return Err(EditCustomerError::NotAllowed(format!("customer {row_id} is not one of yours")));
        }
        let def = load_project(&tx, project_id.unwrap_or_default())?;
        let Some(def) = def else {
            return Err(EditCustomerError::Invalid("the project's definition has not arrived from HQ".into()));
        };
        for (key, value) in changes {
            let Some(field) = def.customer_fields.iter().find(|f| f.key == *key && !f.hidden && !f.read_only) else {
                return Err(EditCustomerError::Invalid(format!("field \"{key}\" is not an editable customer field")));
            };
            if field.required && value.trim().is_empty() {
                return Err(EditCustomerError::Invalid(format!("field \"{}\" is required", field.title)));
            }
            if value.chars().count() > 2000 {
                return Err(EditCustomerError::Invalid(format!("field \"{}\" is longer than 2000 characters", field.title)));
            }
        }
        let now = now_unix();
        for (key, value) in changes {
            tx.execute(
                "INSERT INTO customer_edits (batch_id, row_id, field, value, agent, edited_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (batch_id, row_id, field) DO UPDATE SET value = excluded.value, agent = excluded.agent,
                    edited_at = excluded.edited_at",
                params![batch_id, row_id, key, value.trim(), agent, now],
            )
            .map_err(DbError::from)?;
        }
        // The edit's id is the outbox sequence number its entry is about to take: unique
        // on the site for the store's epoch, and nothing else inserts in between.
        let edit_id: u64 = tx
            .query_row(
                "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0) + 1",
                [],
                |row| row.get(0),
            )
            .map_err(DbError::from)?;
        let edit = CustomerEdit {
            edit_id,
            batch_id,
            row_id,
            agent: agent.to_string(),
            edited_at: now,
            changes: changes.iter().map(|(k, v)| (k.clone(), v.trim().to_string())).collect(),
        };
        push_outbox(&tx, &UpEvent::CustomerEdit(edit.clone()))?;
        tx.commit().map_err(DbError::from)?;
        self.notify.notify_one();
        Ok(edit)
    }

    /// Projects the site knows, `(project_id, name)`.
    pub fn projects(&self) -> Result<Vec<(u64, String)>, DbError> {
        let conn = self.lock();
        let mut statement = conn.prepare("SELECT project_id, def FROM projects ORDER BY project_id")?;
        let mut rows = statement.query([])?;
        let mut list = Vec::new();
        while let Some(row) = rows.next()? {
            let blob: Vec<u8> = row.get(1)?;
            let def: ProjectDef = postcard::from_bytes(&blob).map_err(|e| corrupt("project definition", e))?;
            list.push((row.get(0)?, def.name));
        }
        Ok(list)
    }

    /// One project's definition.
    pub fn project(&self, project_id: u64) -> Result<Option<ProjectDef>, DbError> {
        let conn = self.lock();
        load_project(&conn, project_id)
    }

    /// Who took a call, if anyone.
    pub fn attempt_agent(&self, attempt_id: u64) -> Result<Option<String>, DbError> {
        let conn = self.lock();
        let agent: Option<Option<String>> = conn
            .query_row("SELECT agent FROM attempts WHERE attempt_id = ?1", [attempt_id], |row| row.get(0))
            .optional()?;
        Ok(agent.flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(conditions: &[(&str, &[&str])], all_match: bool, agent: &str) -> SiteRule {
        SiteRule {
            conditions: conditions
                .iter()
                .map(|(field, values)| (field.to_string(), values.iter().map(|v| v.to_string()).collect()))
                .collect(),
            all_match,
            agent: agent.to_string(),
        }
    }

    fn row(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn manual_worked_example_for_max_concurrency() {
        // 主叫的固话数量 20，执行任务分机数 5，预测比例 1:3 → 15; 1:5 → 20.
        assert_eq!(suggested_max_concurrency(20, 5, 3), 15);
        assert_eq!(suggested_max_concurrency(20, 5, 5), 20);
        assert_eq!(suggested_max_concurrency(20, 0, 3), 1);
    }

    #[test]
    fn any_match_is_the_default_and_one_condition_is_enough() {
        let rules = vec![rule(&[("seat", &["1001"]), ("area", &["北区"])], false, "a1")];
        let agents = vec!["a1".to_string()];
        assert_eq!(attribute(&rules, "1", &row(&[("seat", "1001"), ("area", "南区")]), &agents), Some("a1"));
        assert_eq!(attribute(&rules, "1", &row(&[("seat", "9"), ("area", "北区")]), &agents), Some("a1"));
        assert_eq!(attribute(&rules, "1", &row(&[("seat", "9"), ("area", "南区")]), &agents), None);
    }

    #[test]
    fn all_match_needs_every_condition() {
        let rules = vec![rule(&[("seat", &["1001"]), ("area", &["北区"])], true, "a1")];
        let agents = vec!["a1".to_string()];
        assert_eq!(attribute(&rules, "1", &row(&[("seat", "1001"), ("area", "南区")]), &agents), None);
        assert_eq!(attribute(&rules, "1", &row(&[("seat", "1001"), ("area", "北区")]), &agents), Some("a1"));
    }

    #[test]
    fn several_values_of_one_field_any_matches() {
        let rules = vec![rule(&[("level", &["A", "B"])], true, "a1")];
        let agents = vec!["a1".to_string()];
        assert_eq!(attribute(&rules, "1", &row(&[("level", "B")]), &agents), Some("a1"));
        assert_eq!(attribute(&rules, "1", &row(&[("level", "C")]), &agents), None);
    }

    #[test]
    fn same_value_to_several_agents_first_valid_rule_wins() {
        let rules = vec![
            rule(&[("seat", &["1001"])], false, "gone"),
            rule(&[("seat", &["1001"])], false, "a2"),
            rule(&[("seat", &["1001"])], false, "a3"),
        ];
        // "gone" is not an agent of the site: its rule is not valid, so a2's wins.
        let agents = vec!["a2".to_string(), "a3".to_string()];
        assert_eq!(attribute(&rules, "1", &row(&[("seat", "1001")]), &agents), Some("a2"));
    }

    #[test]
    fn phone_is_a_field_for_rules() {
        let rules = vec![rule(&[("phone", &["13800000001"])], false, "a1")];
        assert_eq!(attribute(&rules, "13800000001", &[], &["a1".to_string()]), Some("a1"));
    }

    #[test]
    fn viewer_masks_unless_allowed() {
        let masked = Viewer { username: "x".into(), unmask: false };
        let full = Viewer { username: "x".into(), unmask: true };
        assert_eq!(masked.phone(None, "13800138000"), "138****8000");
        assert_eq!(full.phone(None, "13800138000"), "13800138000");
    }
}
