//! What every signed-in account uses, whichever its kind: the site's status, HQ's
//! announcements and a call's recording; and what the admin and desk APIs share: the query
//! of the data lists ([`DataQuery`]), a callback's answer, and the answers to the store's
//! refusals.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use tower::ServiceExt;
use utoipa::{IntoParams, ToSchema};

use super::guard::{AgentOrAdmin, need};
use super::limits::{self, ApiPath, ApiQuery, Check, Limits};
use super::{ApiError, AppState, ErrorBody, SignedIn};
use crate::desk::AgentState;
use crate::driver::inbox::LineStatus;
use crate::store::{AnnouncementView, CallFilter, CallbackError, Module, Role, TaskSettingsError};
use crate::sync::LinkView;

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

/// `GET /api/announcements` (any account): HQ's notices in force, newest first.
#[utoipa::path(get, path = "/api/announcements", tag = "session",
    responses((status = 200, description = "HQ's notices in force, newest first", body = Vec<AnnouncementView>)))]
pub async fn announcements(
    _: SignedIn,
    State(state): State<AppState>,
) -> Result<Json<Vec<AnnouncementView>>, ApiError> {
    Ok(Json(state.store.announcements(crate::store::now_unix())?))
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

/// Refuses with 403 unless `module` is among `modules`.
fn require(modules: &[Module], module: Module) -> Result<(), ApiError> {
    if modules.contains(&module) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("your role does not include \"{}\"; ask the site admin", module.as_str()),
        ))
    }
}

pub(super) fn settings_error(error: TaskSettingsError) -> ApiError {
    match error {
        TaskSettingsError::NoSuchBatch(batch_id) => {
            ApiError::new(StatusCode::NOT_FOUND, format!("batch {batch_id} is unknown at this site"))
        }
        TaskSettingsError::Invalid(message) => ApiError::bad_request(message),
        TaskSettingsError::Db(error) => error.into(),
    }
}

/// Query of the project-data lists (S10).
#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DataQuery {
    pub(super) project_id: Option<u64>,
    pub(super) batch_id: Option<u64>,
    pub(super) agent: Option<String>,
    pub(super) outcome: Option<String>,
    pub(super) phone_tail: Option<String>,
    pub(super) from: Option<i64>,
    pub(super) to: Option<i64>,
    pub(super) status: Option<String>,
    pub(super) state: Option<String>,
}

pub(super) fn blank_none(value: &Option<String>) -> Option<String> {
    value.as_ref().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

impl DataQuery {
    pub(super) fn filter(&self, with_record: bool) -> CallFilter {
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

/// A callback created or moved on.
#[derive(Serialize, ToSchema)]
pub struct CallbackReply {
    pub(super) callback_id: u64,
    /// `new` or `waiting`; absent in the site admin's creation answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) state: Option<String>,
}

pub(super) fn callback_error(error: CallbackError) -> ApiError {
    match error {
        CallbackError::NotFound(message) => ApiError::new(StatusCode::NOT_FOUND, message),
        CallbackError::NotAllowed(message) => ApiError::new(StatusCode::FORBIDDEN, message),
        CallbackError::Invalid(message) => ApiError::bad_request(message),
        CallbackError::Db(error) => error.into(),
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

impl Limits for RecordingQuery {
    fn check(&self, _: &mut Check) -> Result<(), ApiError> {
        Ok(())
    }
}
