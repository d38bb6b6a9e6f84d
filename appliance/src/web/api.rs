//! The JSON API. Routes and shapes are a contract with the demo's simulated agents and the
//! end-to-end tests: change them only together.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AdminUser, AgentUser, ApiError, AppState, CurrentUser, cookie, cookie_header};
use crate::control::DriverMsg;
use crate::desk::{AgentLive, AgentState};
use crate::store::{
    CreateExtensionError, CreateUserError, Role, SaveRecordError, StartTaskError, TaskParams,
};

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
}

/// `POST /api/login {username, password}`: sets the session cookie.
pub async fn login(
    State(state): State<AppState>,
    axum::Extension(throttle): axum::Extension<std::sync::Arc<web_guard::SharedThrottle>>,
    web_guard::ClientAddr(source): web_guard::ClientAddr,
    Json(form): Json<LoginForm>,
) -> Result<Response, ApiError> {
    // Throttled per (account, source address) and per source address: a guesser waits
    // (429 with Retry-After, the password unchecked), an agent at another desk does not.
    if let Err(wait) = throttle.attempt(&form.username, source) {
        return Ok(web_guard::throttled_json(wait));
    }
    let username = form.username.clone();
    let store = state.store.clone();
    // argon2 takes tens of milliseconds on purpose: keep it off the async workers.
    let user = tokio::task::spawn_blocking(move || store.verify_login(&form.username, &form.password))
        .await
        .map_err(ApiError::internal)??;
    let Some(user) = user else {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "wrong username or password"));
    };
    throttle.succeeded(&username, source);
    let token = state.open_session(user.user_id);
    let role = match user.role {
        Role::Admin => "admin",
        Role::Agent => "agent",
    };
    let body = Json(json!({"username": user.username, "name": user.name, "role": role}));
    let cookie = format!("sid={token}; HttpOnly; SameSite=Strict; Path=/");
    Ok(([(header::SET_COOKIE, cookie)], body).into_response())
}

/// `POST /api/logout`: ends the session (an agent is signed out too).
pub async fn logout(State(state): State<AppState>, headers: HeaderMap, CurrentUser(user): CurrentUser) -> Response {
    if let Some(token) = cookie(cookie_header(&headers), "sid") {
        state.close_session(token);
    }
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
    ([(header::SET_COOKIE, expired)], Json(json!({"ok": true}))).into_response()
}

#[derive(Deserialize)]
pub struct ExtensionForm {
    extension: String,
    password: String,
}

/// `POST /api/extensions {extension, password}` (site admin).
pub async fn create_extension(
    State(state): State<AppState>,
    AdminUser(_): AdminUser,
    Json(form): Json<ExtensionForm>,
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
    Ok((StatusCode::CREATED, Json(json!({"extension": form.extension.trim()}))).into_response())
}

/// `GET /api/extensions` (site admin): extensions and whether their phones are registered.
pub async fn list_extensions(State(state): State<AppState>, AdminUser(_): AdminUser) -> Result<Json<Value>, ApiError> {
    let registered = state.driver.status().await.registered_extensions;
    let list: Vec<Value> = state
        .store
        .extensions()?
        .into_iter()
        .map(|ext| json!({"extension": ext.extension, "registered": registered.contains(&ext.extension)}))
        .collect();
    Ok(Json(Value::Array(list)))
}

#[derive(Deserialize)]
pub struct AgentForm {
    username: String,
    password: String,
    #[serde(default)]
    name: String,
    extension: String,
}

/// `POST /api/agents {username, password, name, extension}` (site admin).
pub async fn create_agent(
    State(state): State<AppState>,
    AdminUser(_): AdminUser,
    Json(form): Json<AgentForm>,
) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let created = tokio::task::spawn_blocking(move || {
        let name = if form.name.trim().is_empty() { form.username.clone() } else { form.name.clone() };
        store.create_user(&form.username, &form.password, Role::Agent, &name, Some(form.extension.trim()))
    })
    .await
    .map_err(ApiError::internal)?;
    match created {
        Ok(agent_id) => Ok((StatusCode::CREATED, Json(json!({"agent_id": agent_id}))).into_response()),
        Err(CreateUserError::Taken(username)) => {
            Err(ApiError::new(StatusCode::CONFLICT, format!("username \"{username}\" is already taken")))
        }
        Err(CreateUserError::Db(error)) => Err(error.into()),
        Err(error) => Err(ApiError::bad_request(error)),
    }
}

/// `GET /api/agents` (site admin): accounts with their live states.
pub async fn list_agents(State(state): State<AppState>, AdminUser(_): AdminUser) -> Result<Json<Value>, ApiError> {
    let list: Vec<Value> = state
        .store
        .users()?
        .into_iter()
        .filter(|user| user.role == Role::Agent)
        .map(|user| {
            json!({
                "agent_id": user.user_id,
                "username": user.username,
                "name": user.name,
                "extension": user.extension,
                "state": state.desk.state(user.user_id).as_str(),
            })
        })
        .collect();
    Ok(Json(Value::Array(list)))
}

/// `GET /api/tasks` (site admin).
pub async fn list_tasks(State(state): State<AppState>, AdminUser(_): AdminUser) -> Result<Json<Value>, ApiError> {
    let now = crate::store::now_unix();
    let list: Vec<Value> = state
        .store
        .tasks()?
        .into_iter()
        .map(|task| {
            // Shown beside the figures so a site admin sees a task drifting over its cap.
            let abandon = state.store.abandon_rates(task.batch_id, now).ok();
            json!({
                "abandon_rate_today": abandon.and_then(|rates| rates.today),
                "abandon_rate_30_days": abandon.and_then(|rates| rates.last_30_days),
                "batch_id": task.batch_id,
                "name": task.name,
                "project": task.project,
                "numbers": task.numbers,
                "dialed": task.dialed,
                "connected": task.connected,
                "status": task.status.as_str(),
                "ratio": task.params.ratio,
                "max_concurrency": task.params.max_concurrency,
                "ring_seconds": task.params.ring_seconds,
                "problem": task.problem,
            })
        })
        .collect();
    Ok(Json(Value::Array(list)))
}

#[derive(Deserialize)]
pub struct StartForm {
    ratio: u32,
    max_concurrency: u32,
    #[serde(default = "default_ring_seconds")]
    ring_seconds: u32,
}

fn default_ring_seconds() -> u32 {
    35
}

/// `POST /api/tasks/{batch_id}/start {ratio, max_concurrency, ring_seconds}` (site admin).
pub async fn start_task(
    State(state): State<AppState>,
    AdminUser(_): AdminUser,
    Path(batch_id): Path<u64>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let form: StartForm = serde_json::from_value(body.clone()).map_err(ApiError::bad_request)?;
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
    Ok(Json(json!({
        "batch_id": batch_id,
        "status": "running",
        "ratio": effective.ratio,
        "max_concurrency": effective.max_concurrency,
        "ring_seconds": effective.ring_seconds,
    })))
}

/// `POST /api/tasks/{batch_id}/stop` (site admin).
pub async fn stop_task(
    State(state): State<AppState>,
    AdminUser(_): AdminUser,
    Path(batch_id): Path<u64>,
) -> Result<Json<Value>, ApiError> {
    if !state.store.stop_task(batch_id)? {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("batch {batch_id} is unknown at this site")));
    }
    state.driver.send(DriverMsg::TasksChanged);
    Ok(Json(json!({"batch_id": batch_id, "status": "not_started"})))
}

#[derive(Deserialize)]
pub struct StateForm {
    state: String,
}

/// `POST /api/agent/state {state}` (agent, their own state only).
pub async fn set_agent_state(
    State(state): State<AppState>,
    agent: AgentUser,
    Json(form): Json<StateForm>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({"state": new_state.as_str()})))
}

/// `GET /api/agent/events` (agent): server-sent events. First every popup the agent has
/// not saved yet (so a reloaded page shows them again), then each new one as it comes.
pub async fn agent_events(
    State(state): State<AppState>,
    agent: AgentUser,
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
    let live = futures::stream::unfold(receiver, |mut receiver| async move {
        let event = receiver.recv().await?;
        Some((Ok(Event::default().event(event.name()).data(event.data())), receiver))
    });
    let stream = futures::StreamExt::chain(futures::stream::iter(first.into_iter().map(Ok)), live);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn popup_event(popup: &crate::store::Popup) -> Event {
    let data = serde_json::to_string(popup).unwrap_or_else(|_| "{}".to_string());
    Event::default().event("popup").data(data)
}

#[derive(Deserialize)]
pub struct RecordForm {
    values: BTreeMap<String, Value>,
}

/// `POST /api/attempts/{attempt_id}/record {values: {key: value}}` (the agent who took it).
pub async fn save_record(
    State(state): State<AppState>,
    agent: AgentUser,
    Path(attempt_id): Path<u64>,
    Json(form): Json<RecordForm>,
) -> Result<Json<Value>, ApiError> {
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
    let values: serde_json::Map<String, Value> =
        record.values.into_iter().map(|(key, value)| (key, Value::String(value))).collect();
    Ok(Json(json!({"attempt_id": attempt_id, "saved_at": record.saved_at, "values": values})))
}

/// `GET /api/status`: the HQ link, the lines, agents by state, the unsynced backlog.
/// Site admins see every agent; an agent sees the same figures (no names).
pub async fn status(State(state): State<AppState>, CurrentUser(user): CurrentUser) -> Result<Json<Value>, ApiError> {
    let link = state.link.borrow().clone();
    let lines = state.driver.status().await;
    let counts = state.desk.counts();
    let mut by_state = serde_json::Map::new();
    for agent_state in AgentState::ALL {
        let count = counts.get(&agent_state).copied().unwrap_or(0);
        by_state.insert(agent_state.as_str().to_string(), json!(count));
    }
    let mut body = json!({
        "link": link,
        "lines": lines,
        "agents": by_state,
        "outbox": state.store.outbox_len()?,
    });
    if user.role == Role::Admin {
        let agents: Vec<Value> = state
            .desk
            .agents()
            .into_iter()
            .map(|agent| json!({"username": agent.username, "extension": agent.extension, "state": agent.state.as_str()}))
            .collect();
        body["agent_list"] = Value::Array(agents);
    }
    Ok(Json(body))
}
