//! The JSON API of the site's working day: task settings and agents, attribution and
//! allocation, roles, project data with exports, queue monitoring (site admin); desk
//! settings, my projects and one-click dial, callbacks, call records with recordings,
//! customers (agent).
//!
//! Every handler builds its [`Viewer`] from the session and checks the account's modules
//! before reading anything; masking is done by the store's views, so what is serialised
//! here is already what the account may see.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tower::ServiceExt;
use utoipa::{IntoParams, ToSchema};

use super::guard::{AgentOrAdmin, Need, need};
use super::limits::{self, ApiJson, ApiPath, ApiQuery, Check, Limits};
use super::{AdminUser, AgentUser, ApiError, AppState, ErrorBody, SignedIn};
use crate::control::{DriverMsg, ManualStarted, ManualTarget};
use crate::desk::AgentLive;
use crate::store::{
    AgentSettings, AllocationReport, AnnouncementView, AttributionError, CallFilter, CallRecordView, CallbackError,
    CallbackView, CustomerView, EditCustomerError, Line, Module, MyProject, RoleError, SiteDialMode, SiteRole, SiteRule,
    TaskExtras, TaskSettings, TaskSettingsError, VoiceFileView, suggested_max_concurrency,
};

/// Refuses with 403 unless `module` is among `modules`.
pub(super) fn require(modules: &[Module], module: Module) -> Result<(), ApiError> {
    if modules.contains(&module) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("your role does not include \"{}\"; ask the site admin", module.as_str()),
        ))
    }
}

fn settings_error(error: TaskSettingsError) -> ApiError {
    match error {
        TaskSettingsError::NoSuchBatch(batch_id) => {
            ApiError::new(StatusCode::NOT_FOUND, format!("batch {batch_id} is unknown at this site"))
        }
        TaskSettingsError::Invalid(message) => ApiError::bad_request(message),
        TaskSettingsError::Db(error) => error.into(),
    }
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
    Ok(Json(TaskDetail {
        batch_id,
        settings,
        lines,
        task_agents: n_agents,
        suggested_max_concurrency: lines.map(|lines| suggested_max_concurrency(lines, n_agents, ratio)),
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

/// The extras part of a start request, when the form carries a dial mode.
pub(super) fn extras_of(value: &Value) -> Result<Option<ExtrasForm>, ApiError> {
    if value.get("dial_mode").is_none() {
        return Ok(None);
    }
    serde_json::from_value(value.clone()).map(Some).map_err(ApiError::bad_request)
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

// ---- site admin: roles and staff ----

fn role_error(error: RoleError) -> ApiError {
    match error {
        RoleError::Taken(name) => ApiError::new(StatusCode::CONFLICT, format!("role name \"{name}\" is already taken")),
        RoleError::Invalid(message) => ApiError::bad_request(message),
        RoleError::Db(error) => error.into(),
    }
}

/// `GET /api/roles` (site admin).
#[utoipa::path(get, path = "/api/roles", tag = "site admin",
    responses((status = 200, description = "The site's roles with their modules", body = Vec<SiteRole>)))]
pub async fn list_roles(_: AdminUser<need::Accounts>, State(state): State<AppState>) -> Result<Json<Vec<SiteRole>>, ApiError> {
    Ok(Json(state.store.roles()?))
}

#[derive(Deserialize, ToSchema)]
pub struct RoleForm {
    name: String,
    modules: Vec<String>,
}

/// A created role.
#[derive(Serialize, ToSchema)]
pub struct RoleCreated {
    role_id: u64,
}

/// `POST /api/roles {name, modules: [...]}` (site admin).
#[utoipa::path(post, path = "/api/roles", tag = "site admin", request_body = RoleForm,
    responses((status = 201, description = "Created", body = RoleCreated),
              (status = 409, description = "The role name is taken", body = ErrorBody)))]
pub async fn create_role(
    _: AdminUser<need::Accounts>,
    State(state): State<AppState>,
    ApiJson(form): ApiJson<RoleForm>,
) -> Result<Response, ApiError> {
    let mut chosen = Vec::new();
    for name in &form.modules {
        match Module::parse(name) {
            Some(module) => chosen.push(module),
            None => return Err(ApiError::bad_request(format!("module \"{name}\" is unknown"))),
        }
    }
    let role_id = state.store.create_role(&form.name, &chosen).map_err(role_error)?;
    Ok((StatusCode::CREATED, Json(RoleCreated { role_id })).into_response())
}

#[derive(Deserialize, ToSchema)]
pub struct AssignForm {
    role_id: Option<u64>,
}

/// An account's role as given.
#[derive(Serialize, ToSchema)]
pub struct RoleAssigned {
    user_id: u64,
    /// None: the defaults of the account's kind.
    role_id: Option<u64>,
}

/// `POST /api/accounts/{user_id}/role {role_id}` (site admin; null: the kind's defaults).
#[utoipa::path(post, path = "/api/accounts/{user_id}/role", tag = "site admin", request_body = AssignForm, params(("user_id" = u64, Path)),
    responses((status = 200, description = "The account's role", body = RoleAssigned)))]
pub async fn assign_role(
    AdminUser { user, .. }: AdminUser<need::Accounts>,
    State(state): State<AppState>,
    ApiPath(user_id): ApiPath<u64>,
    ApiJson(form): ApiJson<AssignForm>,
) -> Result<Json<RoleAssigned>, ApiError> {
    if user_id == user.user_id {
        return Err(ApiError::bad_request("you cannot change your own role; ask another site admin"));
    }
    state.store.assign_role(user_id, form.role_id).map_err(role_error)?;
    Ok(Json(RoleAssigned { user_id, role_id: form.role_id }))
}

/// A created staff account.
#[derive(Serialize, ToSchema)]
pub struct StaffCreated {
    user_id: u64,
}

#[derive(Deserialize, ToSchema)]
pub struct StaffForm {
    username: String,
    password: String,
    #[serde(default)]
    name: String,
    role_id: Option<u64>,
}

/// `POST /api/staff {username, password, name, role_id}` (site admin): a site staff
/// account (线管, 值班长, ...) whose role decides what it may do.
#[utoipa::path(post, path = "/api/staff", tag = "site admin", request_body = StaffForm,
    responses((status = 201, description = "Created", body = StaffCreated),
              (status = 409, description = "The username is taken", body = ErrorBody)))]
pub async fn create_staff(
    _: AdminUser<need::Accounts>,
    State(state): State<AppState>,
    ApiJson(form): ApiJson<StaffForm>,
) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let created = tokio::task::spawn_blocking(move || {
        let name = if form.name.trim().is_empty() { form.username.clone() } else { form.name.clone() };
        let user_id = store.create_user(&form.username, &form.password, crate::store::Role::Admin, &name, None)?;
        Ok::<_, anyhow::Error>((user_id, form.role_id))
    })
    .await
    .map_err(ApiError::internal)?;
    let (user_id, role_id) = created.map_err(|error| match error.downcast::<crate::store::CreateUserError>() {
        Ok(crate::store::CreateUserError::Taken(name)) => {
            ApiError::new(StatusCode::CONFLICT, format!("username \"{name}\" is already taken"))
        }
        Ok(other) => ApiError::bad_request(other),
        Err(other) => ApiError::internal(other),
    })?;
    state.store.assign_role(user_id, role_id).map_err(role_error)?;
    Ok((StatusCode::CREATED, Json(StaffCreated { user_id })).into_response())
}

// ---- site admin: project data ----

/// Query of the project-data lists (S10).
#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DataQuery {
    project_id: Option<u64>,
    batch_id: Option<u64>,
    agent: Option<String>,
    outcome: Option<String>,
    phone_tail: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
    status: Option<String>,
    state: Option<String>,
}

fn blank_none(value: &Option<String>) -> Option<String> {
    value.as_ref().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

impl DataQuery {
    fn filter(&self, with_record: bool) -> CallFilter {
        CallFilter {
            agent: blank_none(&self.agent),
            project_id: self.project_id,
            batch_id: self.batch_id,
            outcome: blank_none(&self.outcome),
            phone_tail: blank_none(&self.phone_tail),
            from: self.from,
            to: self.to,
            with_record,
        }
    }
}

/// `GET /api/data/customers?project_id&status` (site admin).
#[utoipa::path(get, path = "/api/data/customers", tag = "site admin", params(DataQuery),
    responses((status = 200, description = "Customers, numbers masked for the account", body = Vec<CustomerView>)))]
pub async fn data_customers(
    AdminUser { viewer, .. }: AdminUser<need::Data>,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<DataQuery>,
) -> Result<Json<Vec<CustomerView>>, ApiError> {
    let status = blank_none(&query.status);
    Ok(Json(state.store.customers(&viewer, None, query.project_id, status.as_deref(), 1000)?))
}

/// `GET /api/data/records?...` (site admin): business data (calls with a saved record).
#[utoipa::path(get, path = "/api/data/records", tag = "site admin", params(DataQuery),
    responses((status = 200, description = "Calls with a saved business record, numbers masked for the account", body = Vec<CallRecordView>)))]
pub async fn data_records(
    AdminUser { viewer, .. }: AdminUser<need::Data>,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<DataQuery>,
) -> Result<Json<Vec<CallRecordView>>, ApiError> {
    Ok(Json(state.store.call_records(&viewer, &query.filter(true), 1000)?))
}

/// `GET /api/data/records.xlsx?...` (site admin, export): the business results.
#[utoipa::path(get, path = "/api/data/records.xlsx", tag = "site admin", params(DataQuery),
    responses((status = 200, description = "The business results as a workbook", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = Vec<u8>)))]
pub async fn export_records(
    AdminUser { viewer, .. }: AdminUser<need::DataExport>,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<DataQuery>,
) -> Result<Response, ApiError> {
    let records = state.store.call_records(&viewer, &query.filter(true), 100_000)?;
    let bytes = super::export::records_xlsx(&records).map_err(ApiError::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"business-records.xlsx\""),
        ],
        bytes,
    )
        .into_response())
}

/// `GET /api/data/recordings.zip?...` (site admin, export): the recordings of the calls
/// that match, named by call id and the number as the admin may see it.
#[utoipa::path(get, path = "/api/data/recordings.zip", tag = "site admin", params(DataQuery),
    responses((status = 200, description = "The recordings as a zip of WAV files", content_type = "application/zip", body = Vec<u8>)))]
pub async fn export_recordings(
    AdminUser { viewer, .. }: AdminUser<need::DataExport>,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<DataQuery>,
) -> Result<Response, ApiError> {
    let records = state.store.call_records(&viewer, &query.filter(false), 10_000)?;
    let mut files = Vec::new();
    for record in records.iter().filter(|record| record.has_recording) {
        if let Some((path, _)) = state.store.recording_of(record.attempt_id)? {
            files.push((format!("{}_{}.wav", record.attempt_id, record.phone.replace('*', "x")), path));
        }
    }
    let bytes = tokio::task::spawn_blocking(move || super::export::recordings_zip(&files))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok((
        [(header::CONTENT_TYPE, "application/zip"), (header::CONTENT_DISPOSITION, "attachment; filename=\"recordings.zip\"")],
        bytes,
    )
        .into_response())
}

/// `GET /api/data/callbacks?project_id&state` (site admin).
#[utoipa::path(get, path = "/api/data/callbacks", tag = "site admin", params(DataQuery),
    responses((status = 200, description = "Callbacks, numbers masked for the account", body = Vec<CallbackView>)))]
pub async fn data_callbacks(
    AdminUser { viewer, .. }: AdminUser<need::Data>,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<DataQuery>,
) -> Result<Json<Vec<CallbackView>>, ApiError> {
    let cb_state = blank_none(&query.state);
    Ok(Json(state.store.callbacks(&viewer, blank_none(&query.agent).as_deref(), query.project_id, cb_state.as_deref())?))
}

/// A callback created or moved on.
#[derive(Serialize, ToSchema)]
pub struct CallbackReply {
    callback_id: u64,
    /// `new` or `waiting`; absent in the site admin's creation answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct AddCallbackForm {
    batch_id: u64,
    row_id: u64,
    agent: String,
    title: String,
    #[serde(default)]
    note: String,
    due_at: i64,
}

fn callback_error(error: CallbackError) -> ApiError {
    match error {
        CallbackError::NotFound(message) => ApiError::new(StatusCode::NOT_FOUND, message),
        CallbackError::NotAllowed(message) => ApiError::new(StatusCode::FORBIDDEN, message),
        CallbackError::Invalid(message) => ApiError::bad_request(message),
        CallbackError::Db(error) => error.into(),
    }
}

/// `POST /api/data/callbacks {batch_id, row_id, agent, title, note, due_at}` (site admin).
#[utoipa::path(post, path = "/api/data/callbacks", tag = "site admin", request_body = AddCallbackForm,
    responses((status = 201, description = "Created", body = CallbackReply),
              (status = 403, description = "The agent may not take this customer", body = ErrorBody),
              (status = 404, description = "No such customer or agent", body = ErrorBody)))]
pub async fn add_callback(
    AdminUser { user, .. }: AdminUser<need::Data>,
    State(state): State<AppState>,
    ApiJson(form): ApiJson<AddCallbackForm>,
) -> Result<Response, ApiError> {
    let callback_id = state
        .store
        .add_callback(form.batch_id, form.row_id, form.agent.trim(), &user.username, &form.title, form.due_at, &form.note)
        .map_err(callback_error)?;
    Ok((StatusCode::CREATED, Json(CallbackReply { callback_id, state: None })).into_response())
}

// ---- site admin: queue monitoring ----

/// `GET /api/monitor/events` (site admin): a server-sent `monitor` event each second with
/// agents by state, each agent, and every call on the lines (numbers masked).
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
    })
}

// ---- agent desk ----

/// An agent's settings with the lines they can choose from.
#[derive(Serialize, ToSchema)]
pub struct AgentSettingsReply {
    settings: AgentSettings,
    lines: Vec<Line>,
}

/// `GET /api/agent/settings` (agent).
#[utoipa::path(get, path = "/api/agent/settings", tag = "agent",
    responses((status = 200, description = "The agent's settings and the site's lines", body = AgentSettingsReply)))]
pub async fn get_agent_settings(agent: AgentUser, State(state): State<AppState>) -> Result<Json<AgentSettingsReply>, ApiError> {
    Ok(Json(AgentSettingsReply { settings: state.store.agent_settings(agent.user.user_id)?, lines: state.store.lines() }))
}

/// `POST /api/agent/settings {caller, popup_timing, popup_page}` (agent, A1).
#[utoipa::path(post, path = "/api/agent/settings", tag = "agent", request_body = AgentSettings,
    responses((status = 200, description = "The settings saved", body = AgentSettings)))]
pub async fn save_agent_settings(
    agent: AgentUser,
    State(state): State<AppState>,
    ApiJson(settings): ApiJson<AgentSettings>,
) -> Result<Json<AgentSettings>, ApiError> {
    state.store.set_agent_settings(agent.user.user_id, &settings).map_err(settings_error)?;
    Ok(Json(settings))
}

/// `GET /api/agent/projects` (agent, A2).
#[utoipa::path(get, path = "/api/agent/projects", tag = "agent",
    responses((status = 200, description = "The agent's projects", body = Vec<MyProject>)))]
pub async fn my_projects(agent: AgentUser, State(state): State<AppState>) -> Result<Json<Vec<MyProject>>, ApiError> {
    Ok(Json(state.store.my_projects(agent.user.user_id, &agent.user.username)?))
}

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NumbersQuery {
    project_id: Option<u64>,
}

/// `GET /api/agent/numbers?project_id` (agent): "my numbers", the undialed numbers the
/// agent owns.
#[utoipa::path(get, path = "/api/agent/numbers", tag = "agent", params(NumbersQuery),
    responses((status = 200, description = "The undialed numbers the agent owns, masked", body = Vec<CustomerView>)))]
pub async fn my_numbers(
    agent: AgentUser,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<NumbersQuery>,
) -> Result<Json<Vec<CustomerView>>, ApiError> {
    let viewer = agent.viewer.clone();
    let owned = state
        .store
        .customers(&viewer, Some(&agent.user.username), query.project_id, Some("new"), 1000)?
        .into_iter()
        .filter(|customer| customer.owner.as_deref() == Some(agent.user.username.as_str()))
        .collect();
    Ok(Json(owned))
}

fn live_agent<N: Need>(state: &AppState, agent: &AgentUser<N>) -> AgentLive {
    AgentLive {
        agent_id: agent.user.user_id,
        username: agent.user.username.clone(),
        extension: agent.extension.clone(),
        state: state.desk.state(agent.user.user_id),
    }
}

async fn manual<N: Need>(state: &AppState, agent: &AgentUser<N>, target: ManualTarget) -> Result<Json<ManualStarted>, ApiError> {
    match state.driver.manual_dial(live_agent(state, agent), target).await {
        Ok(started) => Ok(Json(started)),
        Err(reason) => Err(ApiError::new(StatusCode::CONFLICT, reason)),
    }
}

/// `POST /api/agent/projects/{project_id}/dial` (agent, A5): one-click dial.
#[utoipa::path(post, path = "/api/agent/projects/{project_id}/dial", tag = "agent", params(("project_id" = u64, Path)),
    responses((status = 200, description = "The call placed", body = ManualStarted),
              (status = 409, description = "Nothing to dial, no free line, or the agent is busy", body = ErrorBody)))]
pub async fn one_click(
    agent: AgentUser,
    State(state): State<AppState>,
    ApiPath(project_id): ApiPath<u64>,
) -> Result<Json<ManualStarted>, ApiError> {
    manual(&state, &agent, ManualTarget::OneClick { project_id }).await
}

/// `POST /api/attempts/{attempt_id}/call-back-now` (agent, A7 当下回访).
#[utoipa::path(post, path = "/api/attempts/{attempt_id}/call-back-now", tag = "agent", params(("attempt_id" = u64, Path)),
    responses((status = 200, description = "The call placed", body = ManualStarted),
              (status = 409, description = "The call cannot be dialed now", body = ErrorBody)))]
pub async fn call_back_now(
    agent: AgentUser,
    State(state): State<AppState>,
    ApiPath(attempt_id): ApiPath<u64>,
) -> Result<Json<ManualStarted>, ApiError> {
    manual(&state, &agent, ManualTarget::CallBackNow { attempt_id }).await
}

/// `POST /api/callbacks/{callback_id}/dial` (agent): call a callback from the list now.
#[utoipa::path(post, path = "/api/callbacks/{callback_id}/dial", tag = "agent", params(("callback_id" = u64, Path)),
    responses((status = 200, description = "The call placed", body = ManualStarted),
              (status = 409, description = "The callback cannot be dialed now", body = ErrorBody)))]
pub async fn dial_callback(
    agent: AgentUser<need::Callbacks>,
    State(state): State<AppState>,
    ApiPath(callback_id): ApiPath<u64>,
) -> Result<Json<ManualStarted>, ApiError> {
    manual(&state, &agent, ManualTarget::Callback { callback_id }).await
}

#[derive(Deserialize, ToSchema)]
pub struct ScheduleForm {
    title: String,
    #[serde(default)]
    note: String,
    /// Planned time, unix seconds.
    due_at: i64,
}

/// `POST /api/attempts/{attempt_id}/callbacks {title, due_at, note}` (agent): schedules a
/// callback of that call's customer (state new).
#[utoipa::path(post, path = "/api/attempts/{attempt_id}/callbacks", tag = "agent", request_body = ScheduleForm, params(("attempt_id" = u64, Path)),
    responses((status = 201, description = "Created", body = CallbackReply),
              (status = 403, description = "Not the agent's call", body = ErrorBody),
              (status = 404, description = "No such call", body = ErrorBody)))]
pub async fn schedule_callback(
    agent: AgentUser<need::Callbacks>,
    State(state): State<AppState>,
    ApiPath(attempt_id): ApiPath<u64>,
    ApiJson(form): ApiJson<ScheduleForm>,
) -> Result<Response, ApiError> {
    let callback_id = state
        .store
        .schedule_callback(attempt_id, &agent.user.username, &form.title, form.due_at, &form.note)
        .map_err(callback_error)?;
    Ok((StatusCode::CREATED, Json(CallbackReply { callback_id, state: Some("new".into()) })).into_response())
}

/// `POST /api/callbacks/{callback_id}/arm` (agent, 定时执行): new → waiting.
#[utoipa::path(post, path = "/api/callbacks/{callback_id}/arm", tag = "agent", params(("callback_id" = u64, Path)),
    responses((status = 200, description = "Waiting", body = CallbackReply),
              (status = 403, description = "Not the agent's callback", body = ErrorBody),
              (status = 404, description = "No such callback", body = ErrorBody)))]
pub async fn arm_callback(
    agent: AgentUser<need::Callbacks>,
    State(state): State<AppState>,
    ApiPath(callback_id): ApiPath<u64>,
) -> Result<Json<CallbackReply>, ApiError> {
    state.store.arm_callback(callback_id, &agent.user.username).map_err(callback_error)?;
    Ok(Json(CallbackReply { callback_id, state: Some("waiting".into()) }))
}

/// `GET /api/agent/callbacks?state` (agent): the agent's callback list.
#[utoipa::path(get, path = "/api/agent/callbacks", tag = "agent", params(DataQuery),
    responses((status = 200, description = "The agent's callbacks, masked", body = Vec<CallbackView>)))]
pub async fn my_callbacks(
    agent: AgentUser<need::Callbacks>,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<DataQuery>,
) -> Result<Json<Vec<CallbackView>>, ApiError> {
    let viewer = agent.viewer.clone();
    let cb_state = blank_none(&query.state);
    Ok(Json(state.store.callbacks(&viewer, Some(&agent.user.username), None, cb_state.as_deref())?))
}

/// `GET /api/agent/records?...` (agent, A8): the agent's own calls.
#[utoipa::path(get, path = "/api/agent/records", tag = "agent", params(DataQuery),
    responses((status = 200, description = "The agent's own calls, masked", body = Vec<CallRecordView>)))]
pub async fn my_records(
    agent: AgentUser<need::Records>,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<DataQuery>,
) -> Result<Json<Vec<CallRecordView>>, ApiError> {
    let viewer = agent.viewer.clone();
    let mut filter = query.filter(false);
    // An agent's records are their own, whatever the query asks.
    filter.agent = Some(agent.user.username.clone());
    Ok(Json(state.store.call_records(&viewer, &filter, 500)?))
}

/// `GET /api/agent/customers?project_id` (agent, A9).
#[utoipa::path(get, path = "/api/agent/customers", tag = "agent", params(DataQuery),
    responses((status = 200, description = "The agent's customers, masked", body = Vec<CustomerView>)))]
pub async fn my_customers(
    agent: AgentUser<need::Customers>,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<DataQuery>,
) -> Result<Json<Vec<CustomerView>>, ApiError> {
    let viewer = agent.viewer.clone();
    Ok(Json(state.store.customers(&viewer, Some(&agent.user.username), query.project_id, None, 1000)?))
}

#[derive(Deserialize, ToSchema)]
pub struct EditForm {
    values: BTreeMap<String, String>,
}

/// A customer edit as recorded (it goes up to HQ).
#[derive(Serialize, ToSchema)]
pub struct CustomerEdited {
    edit_id: u64,
    /// How many fields changed.
    changes: u64,
}

/// `POST /api/customers/{batch_id}/{row_id} {values}` (agent, A9): edits the agent's own
/// customer's editable fields.
#[utoipa::path(post, path = "/api/customers/{batch_id}/{row_id}", tag = "agent", request_body = EditForm, params(("batch_id" = u64, Path), ("row_id" = u64, Path)),
    responses((status = 200, description = "The edit recorded", body = CustomerEdited),
              (status = 403, description = "Not the agent's customer or a read-only field", body = ErrorBody),
              (status = 404, description = "No such customer", body = ErrorBody),
              (status = 422, description = "A value the field does not take", body = ErrorBody)))]
pub async fn edit_customer(
    agent: AgentUser<need::Customers>,
    State(state): State<AppState>,
    ApiPath((batch_id, row_id)): ApiPath<(u64, u64)>,
    ApiJson(form): ApiJson<EditForm>,
) -> Result<Json<CustomerEdited>, ApiError> {
    let changes: Vec<(String, String)> = form.values.into_iter().collect();
    match state.store.edit_customer(batch_id, row_id, &agent.user.username, &changes) {
        Ok(edit) => Ok(Json(CustomerEdited { edit_id: edit.edit_id, changes: edit.changes.len() as u64 })),
        Err(EditCustomerError::NotFound(message)) => Err(ApiError::new(StatusCode::NOT_FOUND, message)),
        Err(EditCustomerError::NotAllowed(message)) => Err(ApiError::new(StatusCode::FORBIDDEN, message)),
        Err(EditCustomerError::Invalid(message)) => Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)),
        Err(EditCustomerError::Db(error)) => Err(error.into()),
    }
}

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecordingQuery {
    /// 1: as an attachment, to download.
    #[serde(default)]
    #[param(minimum = 0, maximum = 1)]
    download: Option<u8>,
}

/// `GET /api/attempts/{attempt_id}/recording[?download=1]`: the call's WAV, with HTTP range
/// requests for the browser's player. An agent gets only calls they took (and downloads only
/// with "download"); staff need "data" (and "export" to download).
#[utoipa::path(get, path = "/api/attempts/{attempt_id}/recording", tag = "agent", params(("attempt_id" = u64, Path), RecordingQuery),
    responses((status = 200, description = "The WAV; answers Range requests (206)", content_type = "audio/wav", body = Vec<u8>),
              (status = 404, description = "No recording, or not the agent's call", body = ErrorBody)))]
pub async fn recording(
    AgentOrAdmin { user, modules, .. }: AgentOrAdmin<need::Records, need::Data>,
    State(state): State<AppState>,
    ApiPath(attempt_id): ApiPath<u64>,
    ApiQuery(query): ApiQuery<RecordingQuery>,
    request: Request,
) -> Result<Response, ApiError> {
    let download = query.download == Some(1);
    let Some((path, agent)) = state.store.recording_of(attempt_id)? else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("call {attempt_id} has no recording")));
    };
    match user.role {
        crate::store::Role::Agent => {
            if download {
                require(&modules, Module::Download)?;
            }
            if agent.as_deref() != Some(user.username.as_str()) {
                // The same answer as a call without a recording: no oracle for others' calls.
                return Err(ApiError::new(StatusCode::NOT_FOUND, format!("call {attempt_id} has no recording")));
            }
        }
        crate::store::Role::Admin => {
            if download {
                require(&modules, Module::Export)?;
            }
        }
    }
    // tower-http's ServeFile answers Range requests (206, Content-Range) and HEAD.
    let mut response = tower_http::services::ServeFile::new(&path)
        .oneshot(request)
        .await
        .map_err(ApiError::internal)?
        .map(Body::new);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("audio/wav"));
    if download
        && let Ok(value) = header::HeaderValue::from_str(&format!("attachment; filename=\"call-{attempt_id}.wav\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

// ---- HQ's announcements and voice library ----

/// `GET /api/announcements` (any account): HQ's notices in force, newest first.
#[utoipa::path(get, path = "/api/announcements", tag = "session",
    responses((status = 200, description = "HQ's notices in force, newest first", body = Vec<AnnouncementView>)))]
pub async fn announcements(
    _: SignedIn,
    State(state): State<AppState>,
) -> Result<Json<Vec<AnnouncementView>>, ApiError> {
    Ok(Json(state.store.announcements(crate::store::now_unix())?))
}

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

impl Limits for RoleForm {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        // The store keeps role names to 32 characters.
        check.required("name", &self.name, 32)?;
        check.items("modules", self.modules.len(), limits::ITEMS)?;
        self.modules.iter().try_for_each(|module| check.text("modules", module, limits::KEY))
    }
}

impl Limits for AssignForm {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        check.opt_id("role_id", self.role_id)
    }
}

impl Limits for StaffForm {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        check.required("username", &self.username, limits::USERNAME)?;
        check.text("password", &self.password, limits::PASSWORD)?;
        check.text("name", &self.name, limits::NAME)?;
        check.opt_id("role_id", self.role_id)
    }
}

impl Limits for DataQuery {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        check.opt_id("project_id", self.project_id)?;
        check.opt_id("batch_id", self.batch_id)?;
        check.opt("agent", self.agent.as_deref(), limits::USERNAME)?;
        check.opt("outcome", self.outcome.as_deref(), limits::KEY)?;
        check.opt("phone_tail", self.phone_tail.as_deref(), limits::KEY)?;
        check.opt("status", self.status.as_deref(), limits::KEY)?;
        check.opt("state", self.state.as_deref(), limits::KEY)
    }
}

impl Limits for AddCallbackForm {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        check.id("batch_id", self.batch_id)?;
        check.id("row_id", self.row_id)?;
        check.text("agent", &self.agent, limits::USERNAME)?;
        check.required("title", &self.title, limits::TITLE)?;
        check.text("note", &self.note, limits::NOTE)
    }
}

impl Limits for AgentSettings {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        check.text("caller", &self.caller, limits::NAME)?;
        check.text("popup_timing", &self.popup_timing, limits::KEY)?;
        check.text("popup_page", &self.popup_page, limits::KEY)
    }
}

impl Limits for NumbersQuery {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        check.opt_id("project_id", self.project_id)
    }
}

impl Limits for ScheduleForm {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        check.required("title", &self.title, limits::TITLE)?;
        check.text("note", &self.note, limits::NOTE)
    }
}

impl Limits for EditForm {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        check.items("values", self.values.len(), limits::ITEMS)?;
        for (key, value) in &self.values {
            check.text("values", key, limits::KEY)?;
            check.text(key, value, limits::VALUE)?;
        }
        Ok(())
    }
}

impl Limits for RecordingQuery {
    fn check(&self, _: &mut Check) -> Result<(), ApiError> {
        Ok(())
    }
}
