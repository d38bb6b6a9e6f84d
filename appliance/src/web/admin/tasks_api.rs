//! The site admin's JSON API for dialing: the tasks HQ sent (start and stop, parameters,
//! agents), the site's lines, attribution rules and allocation, the queue monitor's stream
//! and HQ's voice library. Routes and shapes are a contract with the demo's simulated agents
//! and the end-to-end tests: change them only together.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::driver::inbox::DriverMsg;
use crate::store::{
    AllocationReport, AttributionError, Line, SiteDialMode, SiteRule, StartTaskError, TaskExtras, TaskParams, TaskSettings,
    VoiceFileView, suggested_max_concurrency,
};
use crate::web::guard::need;
use crate::web::limits::{self, ApiJson, ApiPath, Check, Limits};
use crate::web::shared::settings_error;
use crate::web::{AdminUser, ApiError, AppState, ErrorBody};

/// A task as `GET /api/tasks` lists it: its figures, status, parameters and abandon rates.
#[derive(Serialize, ToSchema)]
pub struct TaskRow {
    /// Abandoned over answered calls today (China time); none when nothing was answered.
    abandon_rate_today: Option<f64>,
    /// The same over the last 30 days.
    abandon_rate_30_days: Option<f64>,
    batch_id: u64,
    name: String,
    project: String,
    numbers: u64,
    dialed: u64,
    connected: u64,
    /// `receiving`, `not_started`, `running`, `paused` (by HQ) or `ended` (by HQ).
    status: String,
    ratio: u32,
    max_concurrency: u32,
    ring_seconds: u32,
    /// Why the batch is not dialable, when it is not.
    problem: Option<String>,
}

/// `GET /api/tasks` (site admin, tasks).
#[utoipa::path(get, path = "/api/tasks", tag = "site admin",
    responses((status = 200, description = "Every batch HQ sent: its figures, status, parameters and abandon rates", body = Vec<TaskRow>)))]
pub async fn list_tasks(_: AdminUser<need::Tasks>, State(state): State<AppState>) -> Result<Json<Vec<TaskRow>>, ApiError> {
    let now = crate::store::now_unix();
    let list = state
        .store
        .tasks()?
        .into_iter()
        .map(|task| {
            // Shown beside the figures so a site admin sees a task drifting over its cap.
            let abandon = state.store.abandon_rates(task.batch_id, now).ok();
            TaskRow {
                abandon_rate_today: abandon.and_then(|rates| rates.today),
                abandon_rate_30_days: abandon.and_then(|rates| rates.last_30_days),
                batch_id: task.batch_id,
                name: task.name,
                project: task.project,
                numbers: task.numbers,
                dialed: task.dialed,
                connected: task.connected,
                status: task.status.as_str().to_string(),
                ratio: task.params.ratio,
                max_concurrency: task.params.max_concurrency,
                ring_seconds: task.params.ring_seconds,
                problem: task.problem,
            }
        })
        .collect();
    Ok(Json(list))
}

/// `POST /api/tasks/{batch_id}/start`: the dial parameters, and optionally the task's
/// other settings (the fields of [`ExtrasForm`]; without `dial_mode`, those sent change the
/// task's current settings and the rest stay).
#[derive(Deserialize, ToSchema)]
pub struct StartForm {
    /// Predictive ratio 1:n.
    ratio: u32,
    max_concurrency: u32,
    /// Ring duration, seconds (35 when absent).
    #[serde(default = "default_ring_seconds")]
    ring_seconds: u32,
}

/// The start request as sent: [`StartForm`] plus optional task settings.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct StartBody(Value);

impl Limits for StartBody {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        // Only the extras carry text; they are checked when present, with or without a
        // dial mode (one sent alone is laid over the task's, [`over_current_settings`]).
        let mut body = self.0.clone();
        if let Value::Object(fields) = &mut body
            && !fields.contains_key("dial_mode")
            && EXTRA_KEYS.iter().any(|key| fields.contains_key(*key))
        {
            fields.insert("dial_mode".into(), Value::from("predictive"));
        }
        match extras_of(&body) {
            Ok(Some(extras)) => extras.check(check),
            _ => Ok(()),
        }
    }
}

/// A task's status and effective parameters.
#[derive(Serialize, ToSchema)]
pub struct StartReply {
    batch_id: u64,
    /// `running`.
    status: String,
    ratio: u32,
    max_concurrency: u32,
    ring_seconds: u32,
}

/// A stopped task.
#[derive(Serialize, ToSchema)]
pub struct StopReply {
    batch_id: u64,
    /// `not_started`.
    status: String,
}

fn default_ring_seconds() -> u32 {
    35
}

/// `POST /api/tasks/{batch_id}/start {ratio, max_concurrency, ring_seconds}` (site admin,
/// tasks).
#[utoipa::path(post, path = "/api/tasks/{batch_id}/start", tag = "site admin", request_body = StartForm,
    params(("batch_id" = u64, Path, description = "The batch HQ dispatched")),
    responses((status = 200, description = "Running, with the parameters in force (HQ's bound values win)", body = StartReply),
              (status = 404, description = "No such batch at this site", body = ErrorBody),
              (status = 409, description = "Not dialable yet, ended by HQ, or its project is missing", body = ErrorBody)))]
pub async fn start_task(
    _: AdminUser<need::Tasks>,
    State(state): State<AppState>,
    ApiPath(batch_id): ApiPath<u64>,
    ApiJson(StartBody(body)): ApiJson<StartBody>,
) -> Result<Json<StartReply>, ApiError> {
    let form: StartForm = read_value(&body, StatusCode::UNPROCESSABLE_ENTITY)?;
    // The form may carry the other task parameters too (S2); they are saved first.
    let body = over_current_settings(&state, batch_id, body)?;
    start_extras(&state, batch_id, extras_of(&body)?)?;
    let params = TaskParams {
        ratio: form.ratio,
        max_concurrency: form.max_concurrency,
        ring_seconds: form.ring_seconds,
    };
    let effective = match state.store.start_task(batch_id, params) {
        Ok(effective) => effective,
        Err(StartTaskError::NoSuchBatch(_)) => {
            return Err(ApiError::new(StatusCode::NOT_FOUND, format!("batch {batch_id} is unknown at this site")));
        }
        Err(StartTaskError::Db(error)) => return Err(error.into()),
        Err(error @ (StartTaskError::NotReady { .. } | StartTaskError::Ended(_) | StartTaskError::NoProject { .. })) => {
            return Err(ApiError::new(StatusCode::CONFLICT, error.to_string()));
        }
        Err(error) => return Err(ApiError::bad_request(error)),
    };
    state.driver.send(DriverMsg::TasksChanged);
    Ok(Json(StartReply {
        batch_id,
        status: "running".into(),
        ratio: effective.ratio,
        max_concurrency: effective.max_concurrency,
        ring_seconds: effective.ring_seconds,
    }))
}

/// `POST /api/tasks/{batch_id}/stop` (site admin, tasks).
#[utoipa::path(post, path = "/api/tasks/{batch_id}/stop", tag = "site admin",
    params(("batch_id" = u64, Path, description = "The batch")),
    responses((status = 200, description = "Stopped", body = StopReply),
              (status = 404, description = "No such batch at this site", body = ErrorBody)))]
pub async fn stop_task(
    _: AdminUser<need::Tasks>,
    State(state): State<AppState>,
    ApiPath(batch_id): ApiPath<u64>,
) -> Result<Json<StopReply>, ApiError> {
    if !state.store.stop_task(batch_id)? {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("batch {batch_id} is unknown at this site")));
    }
    state.driver.send(DriverMsg::TasksChanged);
    Ok(Json(StopReply { batch_id, status: "not_started".into() }))
}

// ---- site admin: tasks ----

/// `GET /api/lines` (site admin): the site's lines for the caller choice.
#[utoipa::path(get, path = "/api/lines", tag = "site admin",
    responses((status = 200, description = "The site's lines (trunks) with their channels", body = Vec<Line>)))]
pub async fn lines(_: AdminUser<need::Tasks>, State(state): State<AppState>) -> Json<Vec<Line>> {
    Json(state.store.lines())
}

/// `GET /api/tasks/{batch_id}`.
#[derive(Serialize, ToSchema)]
pub struct TaskDetail {
    batch_id: u64,
    settings: TaskSettings,
    /// Channels of the task's caller line (all lines when it has none); none when the site
    /// has no lines.
    lines: Option<u32>,
    /// How many agents work the task (every agent of the site when none are chosen).
    task_agents: u32,
    /// The largest useful max concurrency; none when the site has no lines.
    suggested_max_concurrency: Option<u32>,
    ratio: u32,
    max_concurrency: Option<u32>,
    ring_seconds: Option<u32>,
}

/// `GET /api/tasks/{batch_id}` (site admin): a task's settings, what HQ bound, its agents,
/// the caller's line count and the largest useful max concurrency.
#[utoipa::path(get, path = "/api/tasks/{batch_id}", tag = "site admin", params(("batch_id" = u64, Path)),
    responses((status = 200, description = "Settings, HQ-bound values, agents, the caller's lines and the suggested max concurrency", body = TaskDetail),
              (status = 404, description = "No such batch at this site", body = ErrorBody)))]
pub async fn task_detail(
    _: AdminUser<need::Tasks>,
    State(state): State<AppState>,
    ApiPath(batch_id): ApiPath<u64>,
) -> Result<Json<TaskDetail>, ApiError> {
    let Some(settings) = state.store.task_settings(batch_id)? else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("batch {batch_id} is unknown at this site")));
    };
    let task = state.store.tasks()?.into_iter().find(|task| task.batch_id == batch_id);
    let lines = state.store.caller_channels(&settings.extras.caller);
    let n_agents = if settings.agents.is_empty() {
        state.store.users()?.iter().filter(|user| user.role == crate::store::Role::Agent).count() as u32
    } else {
        settings.agents.len() as u32
    };
    let ratio = task.as_ref().map(|task| task.params.ratio).unwrap_or(1);
    let bound_max = settings.bound.max_concurrency;
    Ok(Json(TaskDetail {
        batch_id,
        settings,
        lines,
        task_agents: n_agents,
        // A max concurrency HQ locked is the only value to suggest.
        suggested_max_concurrency: match (bound_max, task.as_ref()) {
            (true, Some(task)) => Some(task.params.max_concurrency),
            _ => lines.map(|lines| suggested_max_concurrency(lines, n_agents, ratio)),
        },
        ratio,
        max_concurrency: task.as_ref().map(|task| task.params.max_concurrency),
        ring_seconds: task.as_ref().map(|task| task.params.ring_seconds),
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct ExtrasForm {
    dial_mode: String,
    #[serde(default)]
    caller: String,
    #[serde(default = "default_cool_down")]
    cool_down: u32,
    #[serde(default = "default_queue_timeout")]
    queue_timeout: u32,
    #[serde(default = "default_routing")]
    routing: String,
    #[serde(default = "default_answer_mode")]
    answer_mode: String,
    #[serde(default = "default_pacing")]
    pacing: String,
    #[serde(default = "default_abandon_cap")]
    abandon_cap_percent: f64,
    /// A voice file id from HQ's library, or none (the box's own hold audio).
    #[serde(default)]
    hold_music: Option<u64>,
}

fn default_pacing() -> String {
    "fixed".into()
}
fn default_abandon_cap() -> f64 {
    3.0
}

fn default_cool_down() -> u32 {
    3
}
fn default_queue_timeout() -> u32 {
    35
}
fn default_routing() -> String {
    "longest_idle".into()
}
fn default_answer_mode() -> String {
    "auto".into()
}

impl ExtrasForm {
    fn extras(&self) -> Result<TaskExtras, ApiError> {
        let Some(dial_mode) = SiteDialMode::parse(&self.dial_mode) else {
            return Err(ApiError::bad_request(format!(
                "dial mode \"{}\" is unknown; use predictive or one_click",
                self.dial_mode
            )));
        };
        Ok(TaskExtras {
            dial_mode,
            caller: self.caller.trim().to_string(),
            cool_down: self.cool_down,
            queue_timeout: self.queue_timeout,
            routing: self.routing.clone(),
            answer_mode: self.answer_mode.clone(),
            pacing: self.pacing.clone(),
            abandon_cap_percent: self.abandon_cap_percent,
            hold_music: self.hold_music,
        })
    }
}

/// `POST /api/tasks/{batch_id}/settings {dial_mode, caller, cool_down, queue_timeout,
/// routing, answer_mode, pacing, abandon_cap_percent, hold_music}` (site admin).
#[utoipa::path(post, path = "/api/tasks/{batch_id}/settings", tag = "site admin", request_body = ExtrasForm, params(("batch_id" = u64, Path)),
    responses((status = 200, description = "The settings saved", body = TaskExtras),
              (status = 404, description = "No such batch at this site", body = ErrorBody)))]
pub async fn save_task_settings(
    _: AdminUser<need::Tasks>,
    State(state): State<AppState>,
    ApiPath(batch_id): ApiPath<u64>,
    ApiJson(form): ApiJson<ExtrasForm>,
) -> Result<Json<TaskExtras>, ApiError> {
    let saved = state.store.set_task_extras(batch_id, &form.extras()?).map_err(settings_error)?;
    state.driver.send(DriverMsg::TasksChanged);
    Ok(Json(saved))
}

/// Applies the optional extras of a start request before the task starts.
pub(super) fn start_extras(state: &AppState, batch_id: u64, form: Option<ExtrasForm>) -> Result<(), ApiError> {
    if let Some(form) = form {
        state.store.set_task_extras(batch_id, &form.extras()?).map_err(settings_error)?;
    }
    Ok(())
}

/// The task settings a start request may carry besides its dial parameters.
const EXTRA_KEYS: [&str; 8] =
    ["caller", "cool_down", "queue_timeout", "routing", "answer_mode", "pacing", "abandon_cap_percent", "hold_music"];

/// A start request carrying some task settings but no `dial_mode`: the settings it names are
/// laid over the task's current ones (dial mode included), so a caller line or a queue
/// timeout sent alone is applied rather than silently dropped. Any other body is unchanged.
fn over_current_settings(state: &AppState, batch_id: u64, body: Value) -> Result<Value, ApiError> {
    let Value::Object(sent) = &body else { return Ok(body) };
    if sent.contains_key("dial_mode") || !EXTRA_KEYS.iter().any(|key| sent.contains_key(*key)) {
        return Ok(body);
    }
    let Some(settings) = state.store.task_settings(batch_id)? else { return Ok(body) };
    let current = settings.extras;
    let mut merged = serde_json::json!({
        "dial_mode": current.dial_mode.as_str(),
        "caller": current.caller,
        "cool_down": current.cool_down,
        "queue_timeout": current.queue_timeout,
        "routing": current.routing,
        "answer_mode": current.answer_mode,
        "pacing": current.pacing,
        "abandon_cap_percent": current.abandon_cap_percent,
        "hold_music": current.hold_music,
    });
    if let Value::Object(merged) = &mut merged {
        merged.extend(sent.iter().map(|(key, value)| (key.clone(), value.clone())));
    }
    Ok(merged)
}

/// The extras part of a start request, when the form carries a dial mode.
pub(super) fn extras_of(value: &Value) -> Result<Option<ExtrasForm>, ApiError> {
    if value.get("dial_mode").is_none() {
        return Ok(None);
    }
    read_value(value, StatusCode::BAD_REQUEST).map(Some)
}

/// `value` read as `T`; a field that does not read is refused by its path (`ratio: invalid
/// type…`), which the web's catalogue names by the field's label.
fn read_value<T: serde::de::DeserializeOwned>(value: &Value, status: StatusCode) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value.clone()).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let message = if path == "." { inner.to_string() } else { format!("{path}: {inner}") };
        ApiError::new(status, message)
    })
}

#[derive(Deserialize, ToSchema)]
pub struct AgentsForm {
    agents: Vec<u64>,
}

/// A task's agents as saved.
#[derive(Serialize, ToSchema)]
pub struct TaskAgents {
    batch_id: u64,
    /// User ids; empty means every agent of the site.
    agents: Vec<u64>,
}

/// `POST /api/tasks/{batch_id}/agents {agents: [agent_id]}` (site admin): the task's agents.
#[utoipa::path(post, path = "/api/tasks/{batch_id}/agents", tag = "site admin", request_body = AgentsForm, params(("batch_id" = u64, Path)),
    responses((status = 200, description = "The task's agents", body = TaskAgents),
              (status = 404, description = "No such batch at this site", body = ErrorBody)))]
pub async fn save_task_agents(
    _: AdminUser<need::Tasks>,
    State(state): State<AppState>,
    ApiPath(batch_id): ApiPath<u64>,
    ApiJson(form): ApiJson<AgentsForm>,
) -> Result<Json<TaskAgents>, ApiError> {
    state.store.set_task_agents(batch_id, &form.agents).map_err(settings_error)?;
    state.driver.send(DriverMsg::TasksChanged);
    Ok(Json(TaskAgents { batch_id, agents: form.agents }))
}

/// `POST /api/tasks/{batch_id}/priority {priority}`: the task's priority between the
/// site's tasks; `null` follows its batches again.
#[derive(Deserialize, ToSchema)]
pub struct PriorityForm {
    /// 2 (lowest) to 100, or null.
    priority: Option<u32>,
}

/// A task's priority as saved.
#[derive(Serialize, ToSchema)]
pub struct TaskPriority {
    project_id: u64,
    /// Set by the site admin, or null (the highest of its batches counts).
    priority: Option<u32>,
}

/// `POST /api/tasks/{batch_id}/priority` (site admin): sets the priority of the batch's
/// project's task, the arbiter's first key when tasks share agents.
#[utoipa::path(post, path = "/api/tasks/{batch_id}/priority", tag = "site admin", request_body = PriorityForm, params(("batch_id" = u64, Path)),
    responses((status = 200, description = "The task's priority", body = TaskPriority),
              (status = 404, description = "No such batch at this site, or it has no project yet", body = ErrorBody),
              (status = 422, description = "Not within 2 to 100", body = ErrorBody)))]
pub async fn save_task_priority(
    _: AdminUser<need::Tasks>,
    State(state): State<AppState>,
    ApiPath(batch_id): ApiPath<u64>,
    ApiJson(form): ApiJson<PriorityForm>,
) -> Result<Json<TaskPriority>, ApiError> {
    if form.priority.is_some_and(|priority| !(2..=100).contains(&priority)) {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "the task priority must be 2 to 100"));
    }
    let Some(task) = state.store.project_task_of_batch(batch_id)? else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("batch {batch_id} is unknown at this site")));
    };
    state.store.set_task_priority(task.project_id, form.priority)?;
    state.driver.send(DriverMsg::TasksChanged);
    Ok(Json(TaskPriority { project_id: task.project_id, priority: form.priority }))
}

// ---- site admin: attribution ----

fn attribution_error(error: AttributionError) -> ApiError {
    match error {
        AttributionError::NoSuchBatch(batch_id) => {
            ApiError::new(StatusCode::NOT_FOUND, format!("batch {batch_id} is unknown at this site"))
        }
        AttributionError::Invalid(message) => ApiError::bad_request(message),
        AttributionError::Db(error) => error.into(),
    }
}

/// `GET /api/projects/{project_id}/rules` (site admin).
#[utoipa::path(get, path = "/api/projects/{project_id}/rules", tag = "site admin", params(("project_id" = u64, Path)),
    responses((status = 200, description = "The site's attribution rules, in order", body = Vec<SiteRule>)))]
pub async fn get_rules(
    _: AdminUser<need::Attribution>,
    State(state): State<AppState>,
    ApiPath(project_id): ApiPath<u64>,
) -> Result<Json<Vec<SiteRule>>, ApiError> {
    Ok(Json(state.store.site_rules(project_id)?))
}

#[derive(Deserialize, ToSchema)]
pub struct RulesForm {
    rules: Vec<SiteRule>,
}

/// Rules saved.
#[derive(Serialize, ToSchema)]
pub struct RulesSaved {
    project_id: u64,
    /// How many rules the project now has at this site.
    rules: u64,
}

/// `POST /api/projects/{project_id}/rules {rules: [{conditions: [[field, [values]]],
/// all_match, agent}]}` (site admin): replaces the site's rules, in order.
#[utoipa::path(post, path = "/api/projects/{project_id}/rules", tag = "site admin", request_body = RulesForm, params(("project_id" = u64, Path)),
    responses((status = 200, description = "How many rules were saved", body = RulesSaved)))]
pub async fn save_rules(
    _: AdminUser<need::Attribution>,
    State(state): State<AppState>,
    ApiPath(project_id): ApiPath<u64>,
    ApiJson(form): ApiJson<RulesForm>,
) -> Result<Json<RulesSaved>, ApiError> {
    state.store.set_site_rules(project_id, &form.rules).map_err(attribution_error)?;
    Ok(Json(RulesSaved { project_id, rules: form.rules.len() as u64 }))
}

/// `POST /api/tasks/{batch_id}/allocate` (site admin): applies the rules (S4).
#[utoipa::path(post, path = "/api/tasks/{batch_id}/allocate", tag = "site admin", params(("batch_id" = u64, Path)),
    responses((status = 200, description = "Rows attributed and not found", body = AllocationReport),
              (status = 404, description = "No such batch at this site", body = ErrorBody)))]
pub async fn allocate(
    _: AdminUser<need::Attribution>,
    State(state): State<AppState>,
    ApiPath(batch_id): ApiPath<u64>,
) -> Result<Json<AllocationReport>, ApiError> {
    Ok(Json(state.store.allocate(batch_id).map_err(attribution_error)?))
}

// ---- site admin: queue monitoring ----

/// `GET /api/monitor/events` (site admin): a server-sent `monitor` event each second with
/// agents by state, each agent, every call on the lines and the latest calls of poor audio
/// quality (numbers masked).
#[utoipa::path(get, path = "/api/monitor/events", tag = "site admin",
    responses((status = 200, description = "Server-sent `monitor` events, one a second", content_type = "text/event-stream", body = String)))]
pub async fn monitor_events(
    _: AdminUser<need::Monitor>,
    State(state): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let stream = futures::stream::unfold((state, true), |(state, first)| async move {
        if !first {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let snapshot = monitor_snapshot(&state).await;
        Some((Ok(Event::default().event("monitor").data(snapshot.to_string())), (state, false)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

async fn monitor_snapshot(state: &AppState) -> Value {
    let lines = state.driver.status().await;
    let link = state.link.borrow().clone();
    let counts = state.desk.counts();
    let mut by_state = serde_json::Map::new();
    for agent_state in crate::desk::AgentState::ALL {
        by_state.insert(agent_state.as_str().to_string(), json!(counts.get(&agent_state).copied().unwrap_or(0)));
    }
    let on_call: Vec<String> = lines.calls.iter().filter_map(|call| call.agent.clone()).collect();
    let agents: Vec<Value> = state
        .desk
        .agents()
        .into_iter()
        .map(|agent| {
            json!({"username": agent.username, "extension": agent.extension, "state": agent.state.as_str(),
                   "on_call": on_call.contains(&agent.username)})
        })
        .collect();
    json!({
        "link": link,
        "agents": by_state,
        "agent_list": agents,
        "ringing": lines.ringing,
        "queued": lines.queued,
        "offered": lines.offered,
        "talking": lines.talking,
        "calls": lines.calls,
        "trunks": lines.trunks,
        "registered": lines.registered_extensions,
        "problem": lines.problem,
        "outbox": state.store.outbox_len().unwrap_or(0),
        // Recent calls with a poor leg (MOS under 3.6 or over 3 % lost).
        "poor_calls": state.store.poor_quality_calls(20).unwrap_or_default(),
        "recording_stopped": state.store.recording_stopped().map(|(free, floor)| json!({"free_mb": free >> 20, "floor_mb": floor >> 20})),
    })
}

// ---- HQ's voice library ----

/// `GET /api/voice-files` (site admin): HQ's voice library, and whether each file's bytes
/// have arrived (hold music plays only then).
#[utoipa::path(get, path = "/api/voice-files", tag = "site admin",
    responses((status = 200, description = "HQ's voice library and whether each file has arrived", body = Vec<VoiceFileView>)))]
pub async fn voice_files(_: AdminUser<need::Tasks>, State(state): State<AppState>) -> Result<Json<Vec<VoiceFileView>>, ApiError> {
    Ok(Json(state.store.voice_files()?))
}

// ---- length limits of every request ----

impl Limits for ExtrasForm {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        check.text("dial_mode", &self.dial_mode, limits::KEY)?;
        check.text("caller", &self.caller, limits::NAME)?;
        check.text("routing", &self.routing, limits::KEY)?;
        check.text("answer_mode", &self.answer_mode, limits::KEY)?;
        check.text("pacing", &self.pacing, limits::KEY)?;
        check.opt_id("hold_music", self.hold_music)
    }
}

impl Limits for PriorityForm {
    fn check(&self, _: &mut Check) -> Result<(), ApiError> {
        Ok(())
    }
}

impl Limits for AgentsForm {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        check.items("agents", self.agents.len(), limits::ITEMS)?;
        self.agents.iter().try_for_each(|agent| check.id("agents", *agent))
    }
}

impl Limits for RulesForm {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        check.items("rules", self.rules.len(), limits::ITEMS)?;
        for rule in &self.rules {
            check.text("agent", &rule.agent, limits::USERNAME)?;
            check.items("conditions", rule.conditions.len(), limits::ITEMS)?;
            for (field, values) in &rule.conditions {
                check.text("conditions", field, limits::KEY)?;
                check.items(field, values.len(), limits::ITEMS)?;
                for value in values {
                    check.text(field, value, limits::VALUE)?;
                }
            }
        }
        Ok(())
    }
}
