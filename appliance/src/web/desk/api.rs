//! The agent desk's JSON API: the agent's state, the event stream that carries popups,
//! saving a call's business record, desk settings, the agent's projects and numbers,
//! one-click dialing and calling back, callbacks, call records and customers. Every handler
//! acts for the session's own agent: an agent changes only their own state, calls,
//! callbacks and customers, and reads them through their own viewer, masked.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use crate::desk::{AgentLive, AgentState};
use crate::driver::inbox::{DriverMsg, ManualStarted, ManualTarget};
use crate::store::{AgentSettings, CallRecordView, CallbackView, CustomerView, EditCustomerError, Line, MyProject, SaveRecordError};
use crate::web::guard::{Need, need};
use crate::web::limits::{self, ApiJson, ApiPath, ApiQuery, Check, Limits};
use crate::web::shared::{CallbackReply, DataQuery, blank_none, callback_error, settings_error};
use crate::web::{AgentUser, ApiError, AppState, ErrorBody, cookie, cookie_header};

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
    /// A callback scheduled in the same save (the popup's one action), if any.
    #[serde(default)]
    callback: Option<super::work_api::CallbackForm>,
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
        match &self.callback {
            Some(callback) => callback.check(check),
            None => Ok(()),
        }
    }
}

/// A saved business record.
#[derive(Serialize, ToSchema)]
pub struct RecordReply {
    attempt_id: u64,
    saved_at: i64,
    values: BTreeMap<String, String>,
    /// The callback scheduled with it, if one was asked for.
    callback_id: Option<u64>,
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
    headers: HeaderMap,
    ApiPath(attempt_id): ApiPath<u64>,
    ApiJson(form): ApiJson<RecordForm>,
) -> Result<Json<RecordReply>, ApiError> {
    // The callback is checked before anything is saved, so a refused callback leaves the
    // record unsaved and the agent corrects both in one go.
    let words = super::words::desk_words(&headers);
    let callback = match &form.callback {
        Some(callback) => Some(callback.checked(words, (state.clock)())?),
        None => None,
    };
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
    let callback_id = match callback {
        Some(edit) => Some(
            state
                .store
                .schedule_callback_for(attempt_id, &agent.user.username, &edit.title, edit.due_at, &edit.note, edit.scope)
                .map_err(|error| super::work_api::callback_refusal(words, error))?,
        ),
        None => None,
    };
    state.desk.saved(agent.user.user_id, attempt_id);
    state.driver.send(DriverMsg::RecordSaved { agent_id: agent.user.user_id, attempt_id });
    Ok(Json(RecordReply { attempt_id, saved_at: record.saved_at, values: record.values.into_iter().collect(), callback_id }))
}

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

// ---- length limits of every request ----

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
