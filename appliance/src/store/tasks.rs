//! Tasks: the batches HQ sent, as the site admin runs them. Their status and counts, starting
//! and stopping with the predictive parameters (ratio, max concurrency, ring time, bounded by
//! what HQ binds and by the caller's lines), the further task settings and the task's agents.

use rusqlite::{Connection, OptionalExtension, params};
use sync_protocol::{DialMode, ProjectDef};

use super::{DbError, Store, corrupt, load_project};

/// Why a task could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartTaskError {
    /// No batch with that id was received from HQ.
    #[error("batch {0} is unknown at this site")]
    NoSuchBatch(u64),
    /// The batch's rows are not all here, or did not match the manifest.
    #[error("batch {batch_id} is not dialable yet: {reason}")]
    NotReady { batch_id: u64, reason: String },
    /// HQ ended the batch (priority 0); it can never be started again.
    #[error("batch {0} was ended by HQ and cannot be started")]
    Ended(u64),
    /// The batch's project definition has not arrived.
    #[error("batch {batch_id}: project {project_id} has not arrived from HQ yet")]
    NoProject { batch_id: u64, project_id: u64 },
    /// A parameter is out of range.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The site's parameters for running a task (a batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskParams {
    /// Calls per available agent, 1..=10.
    pub ratio: u32,
    pub max_concurrency: u32,
    pub ring_seconds: u32,
}

/// One task (a batch received from HQ) as the site admin sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSummary {
    pub batch_id: u64,
    pub name: String,
    /// The project (its task at the site) the batch is dialed under, once known.
    pub project_id: Option<u64>,
    pub project: String,
    /// The batch's priority as the dialer reads it (HQ's, 1 held, 0 ended).
    pub priority: u8,
    /// When HQ imported it: equal priority, the earlier import is dialed first.
    pub imported_at: i64,
    pub numbers: u64,
    pub dialed: u64,
    pub connected: u64,
    pub status: TaskStatus,
    pub params: TaskParams,
    /// Why the batch is not dialable, when it is not.
    pub problem: Option<String>,
}

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    /// Rows still arriving, or the manifest did not check out.
    Receiving,
    /// Dialable, not started at this site (未启动).
    NotStarted,
    /// Started at this site and not paused by HQ.
    Running,
    /// HQ set priority 1.
    Paused,
    /// HQ set priority 0.
    Ended,
}

impl TaskStatus {
    /// The stable name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Receiving => "receiving",
            TaskStatus::NotStarted => "not_started",
            TaskStatus::Running => "running",
            TaskStatus::Paused => "paused",
            TaskStatus::Ended => "ended",
        }
    }
}

impl Store {
    /// Every batch the site has heard of, newest import first.
    pub fn tasks(&self) -> Result<Vec<TaskSummary>, DbError> {
        let conn = self.lock();
        let mut statement = conn.prepare(
            "SELECT b.batch_id, b.name, b.project_id, b.verified, b.verify_error,
                    b.control_priority, b.manifest_priority, b.running,
                    b.ratio, b.max_concurrency, b.ring_seconds,
                    (SELECT COUNT(*) FROM batch_rows r WHERE r.batch_id = b.batch_id),
                    (SELECT COUNT(*) FROM batch_rows r WHERE r.batch_id = b.batch_id AND r.status <> 'new'),
                    (SELECT COUNT(*) FROM attempts a WHERE a.batch_id = b.batch_id AND a.outcome = 'connected'),
                    p.def,
                    (SELECT CASE WHEN pr.hq_state = 'running' AND pr.settings_running = 0 THEN 'paused'
                                 ELSE pr.hq_state END
                     FROM project_run pr WHERE pr.project_id = b.project_id),
                    EXISTS (SELECT 1 FROM one_click oc WHERE oc.start = 0
                            AND (oc.scope = 'site' OR oc.scope = 'project:' || b.project_id
                                 OR oc.scope = 'batch:' || b.batch_id)),
                    b.imported_at
             FROM batches b LEFT JOIN projects p ON p.project_id = b.project_id
             ORDER BY b.imported_at DESC, b.batch_id DESC",
        )?;
        let mut rows = statement.query([])?;
        let mut tasks = Vec::new();
        while let Some(row) = rows.next()? {
            let batch_id: u64 = row.get(0)?;
            let name: Option<String> = row.get(1)?;
            let verified: bool = row.get(3)?;
            let verify_error: Option<String> = row.get(4)?;
            let control_priority: Option<u8> = row.get(5)?;
            let manifest_priority: Option<u8> = row.get(6)?;
            let running: bool = row.get(7)?;
            let def: Option<Vec<u8>> = row.get(14)?;
            let def = match def {
                Some(bytes) => {
                    Some(postcard::from_bytes::<ProjectDef>(&bytes).map_err(|e| corrupt("project definition", e))?)
                }
                None => None,
            };
            let project = def.as_ref().map(|def| def.name.clone()).unwrap_or_default();
            // HQ's project state and one-click stops hold the batch as a batch control does.
            let hq_state: Option<String> = row.get(15)?;
            let stopped: bool = row.get(16)?;
            let priority = match (control_priority.or(manifest_priority).unwrap_or(2), hq_state.as_deref()) {
                (_, Some("ended")) => 0,
                (0, _) => 0,
                (_, Some("paused")) => 1,
                (_, _) if stopped => 1,
                (priority, _) => priority,
            };
            let status = if priority == 0 {
                TaskStatus::Ended
            } else if !verified {
                TaskStatus::Receiving
            } else if priority == 1 {
                TaskStatus::Paused
            } else if running {
                TaskStatus::Running
            } else {
                TaskStatus::NotStarted
            };
            let problem = if verified {
                None
            } else {
                Some(verify_error.unwrap_or_else(|| "waiting for the batch manifest".to_string()))
            };
            tasks.push(TaskSummary {
                batch_id,
                name: name.unwrap_or_else(|| format!("batch {batch_id}")),
                project_id: row.get(2)?,
                project,
                priority,
                imported_at: row.get::<_, Option<i64>>(17)?.unwrap_or_default(),
                numbers: row.get(11)?,
                dialed: row.get(12)?,
                connected: row.get(13)?,
                status,
                // What HQ locked is shown as it binds, before the task starts as after.
                params: hq_bound_params(
                    def.as_ref(),
                    TaskParams { ratio: row.get(8)?, max_concurrency: row.get(9)?, ring_seconds: row.get(10)? },
                ),
                problem,
            });
        }
        Ok(tasks)
    }

    /// The site admin starts a task with these parameters. HQ-bound parameters of the
    /// project override the site's values.
    pub fn start_task(&self, batch_id: u64, params: TaskParams) -> Result<TaskParams, StartTaskError> {
        if !(1..=10).contains(&params.ratio) {
            return Err(StartTaskError::Invalid(format!(
                "predictive ratio 1:{} is out of range; choose 1:1 to 1:10",
                params.ratio
            )));
        }
        if !(1..=1000).contains(&params.max_concurrency) {
            return Err(StartTaskError::Invalid(format!(
                "max concurrency {} is out of range; choose 1 to 1000",
                params.max_concurrency
            )));
        }
        if !(5..=120).contains(&params.ring_seconds) {
            return Err(StartTaskError::Invalid(format!(
                "ring duration {} s is out of range; choose 5 to 120 (advice: 35-40)",
                params.ring_seconds
            )));
        }
        let conn = self.lock();
        // (project, verified, why not, HQ's control priority, the manifest's priority)
        type BatchGate = (Option<u64>, bool, Option<String>, Option<u8>, Option<u8>);
        let found: Option<BatchGate> = conn
            .query_row(
                "SELECT project_id, verified, verify_error, control_priority, manifest_priority
                 FROM batches WHERE batch_id = ?1",
                [batch_id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)),
            )
            .optional()
            .map_err(DbError::from)?;
        let Some((project_id, verified, verify_error, control, manifest)) = found else {
            return Err(StartTaskError::NoSuchBatch(batch_id));
        };
        if control.or(manifest) == Some(0) {
            return Err(StartTaskError::Ended(batch_id));
        }
        if !verified {
            return Err(StartTaskError::NotReady {
                batch_id,
                reason: verify_error.unwrap_or_else(|| "waiting for the batch manifest".into()),
            });
        }
        let project_id = project_id.unwrap_or_default();
        let def = load_project(&conn, project_id)?
            .ok_or(StartTaskError::NoProject { batch_id, project_id })?;
        let effective = hq_bound_params(Some(&def), params);
        let caller: String =
            conn.query_row("SELECT caller FROM batches WHERE batch_id = ?1", [batch_id], |row| row.get(0)).map_err(DbError::from)?;
        // S2: max concurrency never above the caller's line count, or numbers are burnt on
        // calls no line can carry (数据空跑). A value HQ bound is HQ's to answer for.
        if def.params.max_concurrency.is_none()
            && let Some(channels) = self.caller_channels(&caller)
            && effective.max_concurrency > channels
        {
            let which = if caller.is_empty() { "the site's lines".to_string() } else { format!("caller {caller}") };
            return Err(StartTaskError::Invalid(format!(
                "max concurrency {} is above the {channels} lines of {which}; choose at most {channels}",
                effective.max_concurrency
            )));
        }
        // The batch names its project's task (S1): every batch of the project, those HQ
        // dispatches later included, is dialed under it.
        ensure_project_task(&conn, project_id)?;
        conn.execute(
            "UPDATE project_tasks SET running = 1, ratio = ?2, max_concurrency = ?3, ring_seconds = ?4
             WHERE project_id = ?1",
            params![project_id, effective.ratio, effective.max_concurrency, effective.ring_seconds],
        )
        .map_err(DbError::from)?;
        Ok(effective)
    }

    /// The site admin stops the task of the batch's project (every batch of it). Returns
    /// whether the batch exists.
    pub fn stop_task(&self, batch_id: u64) -> Result<bool, DbError> {
        let conn = self.lock();
        let project: Option<Option<u64>> = conn
            .query_row("SELECT project_id FROM batches WHERE batch_id = ?1", [batch_id], |row| row.get(0))
            .optional()?;
        let Some(project) = project else { return Ok(false) };
        match project {
            Some(project_id) => {
                conn.execute("UPDATE project_tasks SET running = 0 WHERE project_id = ?1", [project_id])?;
            }
            // A batch whose project has not arrived has no task; it cannot be running.
            None => {
                conn.execute("UPDATE batches SET running = 0 WHERE batch_id = ?1", [batch_id])?;
            }
        }
        Ok(true)
    }

    /// Tasks (by project id) that should be dialing predictively now: started here, with at
    /// least one verified batch HQ has not paused or ended. One pacing loop per task draws
    /// from all its batches ([`Store::claim_next_numbers_for_task`]).
    pub fn dialable_tasks(&self) -> Result<Vec<(u64, TaskParams)>, DbError> {
        let conn = self.lock();
        let mut statement = conn.prepare(
            "SELECT t.project_id, t.ratio, t.max_concurrency, t.ring_seconds FROM project_tasks t
             WHERE t.running = 1 AND t.dial_mode = 'predictive'
               AND EXISTS (SELECT 1 FROM batches b WHERE b.project_id = t.project_id AND b.verified = 1
                           AND COALESCE(b.control_priority, b.manifest_priority, 2) >= 2)
             ORDER BY t.project_id",
        )?;
        let tasks = statement
            .query_map([], |row| {
                Ok((
                    row.get(0)?,
                    TaskParams {
                        ratio: row.get(1)?,
                        max_concurrency: row.get(2)?,
                        ring_seconds: row.get(3)?,
                    },
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(tasks)
    }
}

impl Store {
    /// Priority between the site's tasks, by project (the arbiter's first key: "by task
    /// priority, then the longest waiting"): the one the site admin set on the task page,
    /// else the highest of its dialable batches.
    pub fn dialable_task_priorities(&self) -> Result<std::collections::BTreeMap<u64, u32>, DbError> {
        let conn = self.lock();
        let mut statement = conn.prepare(
            "SELECT t.project_id, COALESCE(t.priority, MAX(COALESCE(b.control_priority, b.manifest_priority, 2)))
             FROM project_tasks t JOIN batches b ON b.project_id = t.project_id
             WHERE t.running = 1 AND b.verified = 1
               AND COALESCE(b.control_priority, b.manifest_priority, 2) >= 2
             GROUP BY t.project_id",
        )?;
        let priorities = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(priorities)
    }
}

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

/// The parameters a task runs with: a value HQ sets binds every site (H5); a value it
/// leaves unset is the site's own.
pub(super) fn hq_bound_params(def: Option<&ProjectDef>, site: TaskParams) -> TaskParams {
    let Some(def) = def else { return site };
    TaskParams {
        ratio: def.params.ratio.unwrap_or(site.ratio).clamp(1, 10),
        max_concurrency: def.params.max_concurrency.unwrap_or(site.max_concurrency).max(1),
        ring_seconds: match def.params.ring_seconds {
            Some(seconds) if seconds > 0 => seconds,
            _ => site.ring_seconds,
        },
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

    /// The settings of a project's task (read through its newest batch, whose columns
    /// mirror the task's); `None` when the project has no batch here.
    pub fn project_task_settings(&self, project_id: u64) -> Result<Option<TaskSettings>, DbError> {
        let conn = self.lock();
        let batch: Option<u64> = conn
            .query_row(
                "SELECT batch_id FROM batches WHERE project_id = ?1 ORDER BY imported_at DESC, batch_id DESC LIMIT 1",
                [project_id],
                |row| row.get(0),
            )
            .optional()?;
        match batch {
            Some(batch_id) => task_settings_in(&conn, batch_id),
            None => Ok(None),
        }
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
        let Some(project_id) = current.project_id else {
            return Err(TaskSettingsError::Invalid(format!(
                "batch {batch_id}: its project has not arrived from HQ yet; its task cannot be set"
            )));
        };
        ensure_project_task(&conn, project_id)?;
        conn.execute(
            "UPDATE project_tasks SET dial_mode = ?2, caller = ?3, cool_down = ?4, queue_timeout = ?5,
                    routing = ?6, answer_mode = ?7, pacing = ?8, abandon_cap = ?9, hold_music = ?10
             WHERE project_id = ?1",
            params![
                project_id,
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
        let project: Option<Option<u64>> = tx
            .query_row("SELECT project_id FROM batches WHERE batch_id = ?1", [batch_id], |row| row.get(0))
            .optional()
            .map_err(DbError::from)?;
        let Some(project) = project else {
            return Err(TaskSettingsError::NoSuchBatch(batch_id));
        };
        let Some(project_id) = project else {
            return Err(TaskSettingsError::Invalid(format!(
                "batch {batch_id}: its project has not arrived from HQ yet; its task cannot be set"
            )));
        };
        for agent in agents {
            let role: Option<String> = tx
                .query_row("SELECT role FROM users WHERE user_id = ?1", [agent], |row| row.get(0))
                .optional()
                .map_err(DbError::from)?;
            if role.as_deref() != Some("agent") {
                return Err(TaskSettingsError::Invalid(format!("account {agent} is not an agent of this site")));
            }
        }
        // The project's task's agents; the triggers copy them to each batch's mirror.
        ensure_project_task(&tx, project_id)?;
        tx.execute("DELETE FROM project_task_agents WHERE project_id = ?1", [project_id]).map_err(DbError::from)?;
        for agent in agents {
            tx.execute(
                "INSERT OR IGNORE INTO project_task_agents (project_id, user_id) VALUES (?1, ?2)",
                params![project_id, agent],
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

/// Creates the project's task with the site's defaults if it has none yet.
pub(super) fn ensure_project_task(conn: &Connection, project_id: u64) -> Result<(), DbError> {
    conn.execute("INSERT OR IGNORE INTO project_tasks (project_id) VALUES (?1)", [project_id])?;
    Ok(())
}

pub(super) fn task_agents_in(conn: &Connection, batch_id: u64) -> Result<Vec<u64>, DbError> {
    let mut statement = conn.prepare("SELECT user_id FROM task_agents WHERE batch_id = ?1 ORDER BY user_id")?;
    let agents = statement.query_map([batch_id], |row| row.get(0))?.collect::<Result<Vec<u64>, _>>()?;
    Ok(agents)
}

pub(super) fn task_settings_in(conn: &Connection, batch_id: u64) -> Result<Option<TaskSettings>, DbError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_worked_example_for_max_concurrency() {
        // 主叫的固话数量 20，执行任务分机数 5，预测比例 1:3 → 15; 1:5 → 20.
        assert_eq!(suggested_max_concurrency(20, 5, 3), 15);
        assert_eq!(suggested_max_concurrency(20, 5, 5), 20);
        assert_eq!(suggested_max_concurrency(20, 0, 3), 1);
    }
}
