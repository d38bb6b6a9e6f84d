//! The JSON API. Routes and shapes are a contract with the demo's simulated agents and the
//! end-to-end tests: change them only together.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::guard::need;
use super::i18n::Lang;
use super::limits::{self, ApiJson, ApiPath, Check, Limits};
use super::{AdminUser, AgentUser, ApiError, AppState, ErrorBody, Public, SignedIn, cookie, cookie_header};
use crate::control::{DriverMsg, LineStatus, LinkView};
use crate::desk::{AgentLive, AgentState};
use crate::store::{
    CreateExtensionError, CreateUserError, Role, SaveRecordError, StartTaskError, TaskParams,
};

/// `POST /api/login`.
#[derive(Deserialize, ToSchema)]
pub struct LoginForm {
    /// At most 32 characters.
    username: String,
    /// At most 128 characters.
    password: String,
}

impl Limits for LoginForm {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        check.text("username", &self.username, limits::USERNAME)?;
        check.text("password", &self.password, limits::PASSWORD)
    }
}

/// The account a login opened a session for.
#[derive(Serialize, ToSchema)]
pub struct LoginReply {
    username: String,
    name: String,
    /// `admin` (site admin or staff) or `agent`.
    role: String,
}

/// `POST /api/login {username, password}`: sets the session cookie. The session is kept in
/// the store, so it outlives a restart of the box, and ends after the idle time.
#[utoipa::path(post, path = "/api/login", tag = "session", request_body = LoginForm,
    responses((status = 200, description = "Logged in; the `sid` cookie is set", body = LoginReply),
              (status = 401, description = "Wrong username or password", body = ErrorBody),
              (status = 429, description = "Too many failed logins from this address; wait `Retry-After` seconds", body = ErrorBody)))]
pub async fn login(
    _: Public,
    State(state): State<AppState>,
    lang: Lang,
    axum::Extension(throttle): axum::Extension<std::sync::Arc<web_guard::SharedThrottle>>,
    web_guard::ClientAddr(source): web_guard::ClientAddr,
    ApiJson(form): ApiJson<LoginForm>,
) -> Result<Response, ApiError> {
    // Throttled per (account, source address) and per source address: a guesser waits
    // (429 with Retry-After, the password unchecked), an agent at another desk does not.
    if let Err(wait) = throttle.attempt(&form.username, source) {
        let message = match lang {
            Lang::Zh => wait.zh(),
            Lang::En => wait.to_string(),
        };
        let mut refused = ApiError::new(StatusCode::TOO_MANY_REQUESTS, message).into_response();
        refused.headers_mut().insert(axum::http::header::RETRY_AFTER, wait.seconds().into());
        return Ok(refused);
    }
    let username = form.username.clone();
    let store = state.store.clone();
    // argon2 takes tens of milliseconds on purpose: keep it off the async workers.
    let user = tokio::task::spawn_blocking(move || store.verify_login(&form.username, &form.password))
        .await
        .map_err(ApiError::internal)??;
    let Some(user) = user else {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, lang.errors().wrong_login));
    };
    throttle.succeeded(&username, source);
    let token = state.store.open_session(user.user_id, state.now())?;
    let role = match user.role {
        Role::Admin => "admin",
        Role::Agent => "agent",
    };
    let body = Json(LoginReply { username: user.username, name: user.name, role: role.to_string() });
    let cookie = format!("sid={token}; HttpOnly; SameSite=Strict; Path=/");
    Ok(([(header::SET_COOKIE, cookie)], body).into_response())
}

/// `{"ok": true}`.
#[derive(Serialize, ToSchema)]
pub struct OkReply {
    ok: bool,
}

/// `POST /api/logout`: ends the session (an agent is signed out too).
#[utoipa::path(post, path = "/api/logout", tag = "session",
    responses((status = 200, description = "Logged out; the cookie is cleared", body = OkReply)))]
pub async fn logout(signed: SignedIn, State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = cookie(cookie_header(&headers), "sid") {
        state.store.close_session(token)?;
    }
    let user = signed.user;
    if let (Role::Agent, Some(extension)) = (user.role, user.extension.clone()) {
        let agent = AgentLive {
            agent_id: user.user_id,
            username: user.username,
            extension,
            state: AgentState::SignedOut,
        };
        state.desk.set_state(agent.clone());
        state.driver.send(DriverMsg::AgentState { agent });
    }
    let expired = "sid=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0";
    Ok(([(header::SET_COOKIE, expired)], Json(OkReply { ok: true })).into_response())
}

/// `POST /api/extensions`.
#[derive(Deserialize, ToSchema)]
pub struct ExtensionForm {
    /// 2 to 8 digits.
    extension: String,
    /// The phone's SIP password, 6 to 128 characters.
    password: String,
}

impl Limits for ExtensionForm {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        check.required("extension", &self.extension, 8)?;
        check.text("password", &self.password, limits::PASSWORD)
    }
}

/// An extension.
#[derive(Serialize, ToSchema)]
pub struct ExtensionReply {
    extension: String,
    /// Whether its phone is registered now (absent in the creation's answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    registered: Option<bool>,
}

/// `POST /api/extensions {extension, password}` (site admin, extensions).
#[utoipa::path(post, path = "/api/extensions", tag = "site admin", request_body = ExtensionForm,
    responses((status = 201, description = "Created", body = ExtensionReply),
              (status = 409, description = "The extension exists", body = ErrorBody)))]
pub async fn create_extension(
    _: AdminUser<need::Extensions>,
    State(state): State<AppState>,
    ApiJson(form): ApiJson<ExtensionForm>,
) -> Result<Response, ApiError> {
    match state.store.create_extension(&form.extension, &form.password) {
        Ok(()) => {}
        Err(CreateExtensionError::Taken(extension)) => {
            return Err(ApiError::new(StatusCode::CONFLICT, format!("extension {extension} already exists")));
        }
        Err(CreateExtensionError::Db(error)) => return Err(error.into()),
        Err(error) => return Err(ApiError::bad_request(error)),
    }
    state.driver.send(DriverMsg::ExtensionsChanged);
    let reply = ExtensionReply { extension: form.extension.trim().to_string(), registered: None };
    Ok((StatusCode::CREATED, Json(reply)).into_response())
}

/// `GET /api/extensions` (site admin, extensions): extensions and whether their phones are
/// registered.
#[utoipa::path(get, path = "/api/extensions", tag = "site admin",
    responses((status = 200, description = "Every extension", body = Vec<ExtensionReply>)))]
pub async fn list_extensions(_: AdminUser<need::Extensions>, State(state): State<AppState>) -> Result<Json<Vec<ExtensionReply>>, ApiError> {
    let registered = state.driver.status().await.registered_extensions;
    let list = state
        .store
        .extensions()?
        .into_iter()
        .map(|ext| ExtensionReply { registered: Some(registered.contains(&ext.extension)), extension: ext.extension })
        .collect();
    Ok(Json(list))
}

/// `POST /api/agents`.
#[derive(Deserialize, ToSchema)]
pub struct AgentForm {
    /// At most 32 characters, unique on the site.
    username: String,
    /// 6 to 128 characters.
    password: String,
    /// At most 64 characters; the username when empty.
    #[serde(default)]
    name: String,
    /// An extension created beforehand.
    extension: String,
}

impl Limits for AgentForm {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        check.required("username", &self.username, limits::USERNAME)?;
        check.text("password", &self.password, limits::PASSWORD)?;
        check.text("name", &self.name, limits::NAME)?;
        check.required("extension", &self.extension, 8)
    }
}

/// A created agent account.
#[derive(Serialize, ToSchema)]
pub struct AgentCreated {
    agent_id: u64,
}

/// `POST /api/agents {username, password, name, extension}` (site admin, accounts).
#[utoipa::path(post, path = "/api/agents", tag = "site admin", request_body = AgentForm,
    responses((status = 201, description = "Created", body = AgentCreated),
              (status = 409, description = "The username is taken", body = ErrorBody)))]
pub async fn create_agent(
    _: AdminUser<need::Accounts>,
    State(state): State<AppState>,
    ApiJson(form): ApiJson<AgentForm>,
) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let created = tokio::task::spawn_blocking(move || {
        let name = if form.name.trim().is_empty() { form.username.clone() } else { form.name.clone() };
        store.create_user(&form.username, &form.password, Role::Agent, &name, Some(form.extension.trim()))
    })
    .await
    .map_err(ApiError::internal)?;
    match created {
        Ok(agent_id) => Ok((StatusCode::CREATED, Json(AgentCreated { agent_id })).into_response()),
        Err(CreateUserError::Taken(username)) => {
            Err(ApiError::new(StatusCode::CONFLICT, format!("username \"{username}\" is already taken")))
        }
        Err(CreateUserError::Db(error)) => Err(error.into()),
        Err(error) => Err(ApiError::bad_request(error)),
    }
}

/// An agent account with its live state.
#[derive(Serialize, ToSchema)]
pub struct AgentRow {
    agent_id: u64,
    username: String,
    name: String,
    extension: Option<String>,
    /// `signed_out`, `available`, `one_click_only`, `break` or `away`.
    state: String,
}

/// `GET /api/agents` (site admin, accounts): accounts with their live states.
#[utoipa::path(get, path = "/api/agents", tag = "site admin",
    responses((status = 200, description = "Every agent account", body = Vec<AgentRow>)))]
pub async fn list_agents(_: AdminUser<need::Accounts>, State(state): State<AppState>) -> Result<Json<Vec<AgentRow>>, ApiError> {
    let list = state
        .store
        .users()?
        .into_iter()
        .filter(|user| user.role == Role::Agent)
        .map(|user| AgentRow {
            state: state.desk.state(user.user_id).as_str().to_string(),
            agent_id: user.user_id,
            username: user.username,
            name: user.name,
            extension: user.extension,
        })
        .collect();
    Ok(Json(list))
}

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
/// other settings (the fields of [`super::work_api::ExtrasForm`], when `dial_mode` is given).
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
        // Only the extras carry text; they are checked when present.
        match super::work_api::extras_of(&self.0) {
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
    let form: StartForm = serde_json::from_value(body.clone())
        .map_err(|error| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, error.to_string()))?;
    // The form may carry the other task parameters too (S2); they are saved first.
    super::work_api::start_extras(&state, batch_id, super::work_api::extras_of(&body)?)?;
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

/// `POST /api/agent/state`.
#[derive(Deserialize, ToSchema)]
pub struct StateForm {
    /// `available`, `one_click_only`, `break`, `away` or `signed_out`.
    state: String,
}

impl Limits for StateForm {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        check.text("state", &self.state, limits::KEY)
    }
}

/// The agent's state now.
#[derive(Serialize, ToSchema)]
pub struct StateReply {
    state: String,
}

/// `POST /api/agent/state {state}` (agent, their own state only).
#[utoipa::path(post, path = "/api/agent/state", tag = "agent", request_body = StateForm,
    responses((status = 200, description = "The new state", body = StateReply)))]
pub async fn set_agent_state(
    agent: AgentUser,
    State(state): State<AppState>,
    ApiJson(form): ApiJson<StateForm>,
) -> Result<Json<StateReply>, ApiError> {
    let Some(new_state) = AgentState::parse(&form.state) else {
        return Err(ApiError::bad_request(format!(
            "state \"{}\" is unknown; use one of available, one_click_only, break, away, signed_out",
            form.state
        )));
    };
    let live = AgentLive {
        agent_id: agent.user.user_id,
        username: agent.user.username.clone(),
        extension: agent.extension.clone(),
        state: new_state,
    };
    state.desk.set_state(live.clone());
    state.driver.send(DriverMsg::AgentState { agent: live });
    Ok(Json(StateReply { state: new_state.as_str().to_string() }))
}

/// How often an open desk stream checks its session. The check writes `last_seen` only
/// when it is a minute old (as any request does), so this costs no disk flushes; it is
/// short so that a session ended elsewhere (logout) closes its stream soon.
const STREAM_SESSION_CHECK: Duration = Duration::from_secs(15);

/// The session an open desk stream keeps alive: an agent who only watches the desk (no
/// clicks for hours while calls come in) is working, not idle.
struct StreamSession {
    store: std::sync::Arc<crate::store::Store>,
    token: String,
    idle: i64,
    clock: fn() -> i64,
}

impl StreamSession {
    /// Marks the session used; false once it has ended (logged out, or idle past the limit).
    async fn still_open(&self) -> bool {
        let store = self.store.clone();
        let (token, now, idle) = (self.token.clone(), (self.clock)(), self.idle);
        match tokio::task::spawn_blocking(move || store.session_user(&token, now, idle)).await {
            Ok(Ok(user)) => user.is_some(),
            // A store hiccup does not cut an agent's desk; the next check tries again.
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot check the session of a desk stream");
                true
            }
            Err(error) => {
                tracing::warn!(%error, "the session check of a desk stream failed");
                true
            }
        }
    }
}

/// `GET /api/agent/events` (agent): server-sent events. First every popup the agent has
/// not saved yet (so a reloaded page shows them again), then each new one as it comes.
/// While the stream is open it keeps the agent's session alive; it ends when the session
/// does.
#[utoipa::path(get, path = "/api/agent/events", tag = "agent",
    responses((status = 200, description = "Server-sent events: `state`, then `popup` for each unsaved and each new call put through. \
        The open stream counts as activity of the session; it ends when the session is ended", content_type = "text/event-stream", body = String)))]
pub async fn agent_events(
    agent: AgentUser,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // Subscribe before reading the backlog, so a popup pushed in between is not lost (at
    // worst it comes twice, and the page ignores a popup it already shows).
    let receiver = state.desk.subscribe(agent.user.user_id);
    let mut backlog = Vec::new();
    for attempt_id in state.store.unsaved_attempts(&agent.user.username)? {
        if let Some(popup) = state.store.popup(attempt_id)? {
            backlog.push(popup);
        }
    }
    let state_event = json!({"state": state.desk.state(agent.user.user_id).as_str()});
    let first: Vec<Event> = std::iter::once(Event::default().event("state").data(state_event.to_string()))
        .chain(backlog.iter().map(popup_event))
        .collect();
    // The guard found the session by this cookie, so it is there.
    let token = cookie(cookie_header(&headers), "sid").unwrap_or_default().to_string();
    let session = StreamSession { store: state.store.clone(), token, idle: state.session_idle, clock: state.clock };
    let mut checks = tokio::time::interval_at(tokio::time::Instant::now() + STREAM_SESSION_CHECK, STREAM_SESSION_CHECK);
    checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let live = futures::stream::unfold((receiver, checks, session), |(mut receiver, mut checks, session)| async move {
        loop {
            tokio::select! {
                event = receiver.recv() => {
                    let event = event?;
                    let sse = Event::default().event(event.name()).data(event.data());
                    return Some((Ok(sse), (receiver, checks, session)));
                }
                _ = checks.tick() => {
                    if !session.still_open().await {
                        return None;
                    }
                }
            }
        }
    });
    let stream = futures::StreamExt::chain(futures::stream::iter(first.into_iter().map(Ok)), live);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn popup_event(popup: &crate::store::Popup) -> Event {
    let data = serde_json::to_string(popup).unwrap_or_else(|_| "{}".to_string());
    Event::default().event("popup").data(data)
}

/// `POST /api/attempts/{attempt_id}/record`.
#[derive(Deserialize, ToSchema)]
pub struct RecordForm {
    /// The project's record fields by key: text (at most 1000 characters) or a choice.
    #[schema(value_type = BTreeMap<String, String>)]
    values: BTreeMap<String, Value>,
}

impl Limits for RecordForm {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        check.items("values", self.values.len(), limits::ITEMS)?;
        for (key, value) in &self.values {
            check.text("values", key, limits::KEY)?;
            if let Value::String(text) = value {
                check.text(key, text, limits::VALUE)?;
            }
        }
        Ok(())
    }
}

/// A saved business record.
#[derive(Serialize, ToSchema)]
pub struct RecordReply {
    attempt_id: u64,
    saved_at: i64,
    values: BTreeMap<String, String>,
}

/// `POST /api/attempts/{attempt_id}/record {values: {key: value}}` (the agent who took it).
#[utoipa::path(post, path = "/api/attempts/{attempt_id}/record", tag = "agent", request_body = RecordForm,
    params(("attempt_id" = u64, Path, description = "The call")),
    responses((status = 200, description = "Saved; queued for HQ", body = RecordReply),
              (status = 403, description = "The call was not put through to this agent", body = ErrorBody),
              (status = 404, description = "No such call", body = ErrorBody),
              (status = 422, description = "A required field is missing or a choice is not offered", body = ErrorBody)))]
pub async fn save_record(
    agent: AgentUser,
    State(state): State<AppState>,
    ApiPath(attempt_id): ApiPath<u64>,
    ApiJson(form): ApiJson<RecordForm>,
) -> Result<Json<RecordReply>, ApiError> {
    let mut values = Vec::new();
    for (key, value) in form.values {
        let text = match value {
            Value::String(text) => text,
            Value::Null => String::new(),
            Value::Number(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
            other => {
                return Err(ApiError::bad_request(format!(
                    "field \"{key}\": {other} is not a text or choice value"
                )));
            }
        };
        values.push((key, text));
    }
    // The save flushes to disk: off the async workers, which also carry every desk's events.
    let store = state.store.clone();
    let username = agent.user.username.clone();
    let saved = tokio::task::spawn_blocking(move || store.save_record(attempt_id, &username, &values))
        .await
        .map_err(ApiError::internal)?;
    let record = match saved {
        Ok(record) => record,
        Err(SaveRecordError::NoSuchAttempt(_)) => {
            return Err(ApiError::new(StatusCode::NOT_FOUND, format!("call {attempt_id} does not exist")));
        }
        Err(SaveRecordError::NotYours(_)) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("call {attempt_id} was not put through to you; you can only save your own calls"),
            ));
        }
        Err(SaveRecordError::Db(error)) => return Err(error.into()),
        Err(error) => return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, error.to_string())),
    };
    state.driver.send(DriverMsg::RecordSaved { agent_id: agent.user.user_id, attempt_id });
    Ok(Json(RecordReply { attempt_id, saved_at: record.saved_at, values: record.values.into_iter().collect() }))
}

/// One agent as the status answer lists it for monitors.
#[derive(Serialize, ToSchema)]
pub struct AgentBrief {
    username: String,
    extension: String,
    /// As in [`AgentRow::state`].
    state: String,
}

/// `GET /api/status`.
#[derive(Serialize, ToSchema)]
pub struct StatusReply {
    link: LinkView,
    lines: LineStatus,
    /// How many agents are in each state (`available`, `one_click_only`, `break`, `away`,
    /// `signed_out`).
    agents: BTreeMap<String, u32>,
    /// Changes waiting to go up to HQ.
    outbox: u64,
    /// Every agent with its state: only for site admins with the monitor module.
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_list: Option<Vec<AgentBrief>>,
}

/// `GET /api/status`: the HQ link, the lines, agents by state, the unsynced backlog.
/// Site admins with the monitor module see every agent; others see the same figures (no
/// names).
#[utoipa::path(get, path = "/api/status", tag = "session",
    responses((status = 200, description = "`link`, `lines`, `agents` (counts by state), `outbox`; `agent_list` for monitors", body = StatusReply)))]
pub async fn status(signed: SignedIn, State(state): State<AppState>) -> Result<Json<StatusReply>, ApiError> {
    let SignedIn { user, modules, .. } = signed;
    let link = state.link.borrow().clone();
    let lines = state.driver.status().await;
    let counts = state.desk.counts();
    let agents = AgentState::ALL
        .into_iter()
        .map(|agent_state| (agent_state.as_str().to_string(), counts.get(&agent_state).copied().unwrap_or(0) as u32))
        .collect();
    let monitor = user.role == Role::Admin && modules.contains(&crate::store::Module::Monitor);
    let agent_list = monitor.then(|| {
        state
            .desk
            .agents()
            .into_iter()
            .map(|agent| AgentBrief { username: agent.username, extension: agent.extension, state: agent.state.as_str().to_string() })
            .collect()
    });
    Ok(Json(StatusReply { link, lines, agents, outbox: state.store.outbox_len()?, agent_list }))
}
