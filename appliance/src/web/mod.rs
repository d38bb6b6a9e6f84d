//! The site's web UI and JSON API (axum), served on the LAN.
//!
//! - [`router`] builds every route: server-rendered pages ([`pages`]) for the site admin and
//!   the agent desk, the JSON API ([`api`]) that those pages' small script, the demo's
//!   simulated agents and the end-to-end tests call, and the embedded assets.
//! - Sessions are random tokens in an `HttpOnly; SameSite=Strict` cookie, held in memory
//!   (a restart signs everyone out, as agents' states are reset too).
//! - Permissions are checked here, on the server: [`AdminUser`] and [`AgentUser`] are
//!   extractors that refuse the wrong role before a handler runs, and handlers only ever
//!   look up the session's own agent.

pub mod api;
pub mod export;
pub mod i18n;
pub mod pages;
pub mod work_api;
pub mod work_pages;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::watch;

use crate::control::{DriverHandle, LinkView};
use crate::desk::Desk;
use crate::store::{Role, Store, User};

/// Everything a handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub desk: Arc<Desk>,
    pub driver: DriverHandle,
    pub link: watch::Receiver<LinkView>,
    sessions: Arc<Mutex<HashMap<String, u64>>>,
}

impl AppState {
    pub fn new(
        store: Arc<Store>,
        desk: Arc<Desk>,
        driver: DriverHandle,
        link: watch::Receiver<LinkView>,
    ) -> AppState {
        AppState { store, desk, driver, link, sessions: Arc::default() }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        // One insert or remove per use: a poisoned map is still consistent.
        self.sessions.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Opens a session for `user_id`; returns the cookie value.
    fn open_session(&self, user_id: u64) -> String {
        let token = hex::encode(rand::random::<[u8; 32]>());
        self.sessions().insert(token.clone(), user_id);
        token
    }

    fn close_session(&self, token: &str) {
        self.sessions().remove(token);
    }

    fn session_user(&self, token: &str) -> Option<u64> {
        self.sessions().get(token).copied()
    }
}

/// Builds the router; `state` is shared by every handler.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::home))
        .route("/login", get(pages::login))
        .route("/admin/tasks", get(pages::admin_tasks))
        .route("/admin/extensions", get(pages::admin_extensions))
        .route("/admin/agents", get(pages::admin_agents))
        .route("/admin/status", get(pages::admin_status))
        .route("/desk", get(pages::desk))
        .route("/lang/{code}", get(pages::switch_lang))
        .route("/assets/app.css", get(pages::css))
        .route("/assets/app.js", get(pages::js))
        .route("/api/login", post(api::login))
        .route("/api/logout", post(api::logout))
        .route("/api/extensions", get(api::list_extensions).post(api::create_extension))
        .route("/api/agents", get(api::list_agents).post(api::create_agent))
        .route("/api/tasks", get(api::list_tasks))
        .route("/api/tasks/{batch_id}/start", post(api::start_task))
        .route("/api/tasks/{batch_id}/stop", post(api::stop_task))
        .route("/api/agent/state", post(api::set_agent_state))
        .route("/api/agent/events", get(api::agent_events))
        .route("/api/attempts/{attempt_id}/record", post(api::save_record))
        .route("/api/status", get(api::status))
        .route("/admin/tasks/{batch_id}", get(work_pages::admin_task))
        .route("/admin/attribution", get(work_pages::admin_attribution))
        .route("/admin/data", get(work_pages::admin_data))
        .route("/admin/roles", get(work_pages::admin_roles))
        .route("/desk/settings", get(work_pages::desk_settings))
        .route("/desk/records", get(work_pages::desk_records))
        .route("/desk/callbacks", get(work_pages::desk_callbacks))
        .route("/desk/customers", get(work_pages::desk_customers))
        .route("/desk/numbers", get(work_pages::desk_numbers))
        .route("/api/lines", get(work_api::lines))
        .route("/api/tasks/{batch_id}", get(work_api::task_detail))
        .route("/api/tasks/{batch_id}/settings", post(work_api::save_task_settings))
        .route("/api/tasks/{batch_id}/agents", post(work_api::save_task_agents))
        .route("/api/tasks/{batch_id}/allocate", post(work_api::allocate))
        .route("/api/projects/{project_id}/rules", get(work_api::get_rules).post(work_api::save_rules))
        .route("/api/roles", get(work_api::list_roles).post(work_api::create_role))
        .route("/api/accounts/{user_id}/role", post(work_api::assign_role))
        .route("/api/staff", post(work_api::create_staff))
        .route("/api/data/customers", get(work_api::data_customers))
        .route("/api/data/records", get(work_api::data_records))
        .route("/api/data/records.xlsx", get(work_api::export_records))
        .route("/api/data/recordings.zip", get(work_api::export_recordings))
        .route("/api/data/callbacks", get(work_api::data_callbacks).post(work_api::add_callback))
        .route("/api/monitor/events", get(work_api::monitor_events))
        .route("/api/announcements", get(work_api::announcements))
        .route("/api/voice-files", get(work_api::voice_files))
        .route("/api/agent/settings", get(work_api::get_agent_settings).post(work_api::save_agent_settings))
        .route("/api/agent/projects", get(work_api::my_projects))
        .route("/api/agent/projects/{project_id}/dial", post(work_api::one_click))
        .route("/api/agent/numbers", get(work_api::my_numbers))
        .route("/api/agent/callbacks", get(work_api::my_callbacks))
        .route("/api/agent/records", get(work_api::my_records))
        .route("/api/agent/customers", get(work_api::my_customers))
        .route("/api/customers/{batch_id}/{row_id}", post(work_api::edit_customer))
        .route("/api/attempts/{attempt_id}/call-back-now", post(work_api::call_back_now))
        .route("/api/attempts/{attempt_id}/callbacks", post(work_api::schedule_callback))
        .route("/api/attempts/{attempt_id}/recording", get(work_api::recording))
        .route("/api/callbacks/{callback_id}/arm", post(work_api::arm_callback))
        .route("/api/callbacks/{callback_id}/dial", post(work_api::dial_callback))
        .with_state(state)
        // Failed logins per (account, source address) and per source address.
        .layer(axum::Extension(Arc::new(web_guard::SharedThrottle::default())))
        // A foreign Origin is refused on state-changing requests; security headers on all.
        .layer(axum::middleware::from_fn(web_guard::protect))
}

/// The value of cookie `name` in a `Cookie` header.
pub(crate) fn cookie<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

fn cookie_header(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::COOKIE).and_then(|value| value.to_str().ok())
}

/// An error answered to the client: a status and a message that names the problem.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }

    pub fn bad_request(message: impl ToString) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message.to_string())
    }

    pub fn internal(error: impl std::fmt::Display) -> ApiError {
        tracing::error!(%error, "request failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("internal error: {error}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({ "error": self.message }))).into_response()
    }
}

impl From<crate::store::DbError> for ApiError {
    fn from(error: crate::store::DbError) -> ApiError {
        ApiError::internal(error)
    }
}

/// Why a request has no usable session. Pages redirect to the login page; the API answers
/// 401 (no session) or 403 (wrong role) in JSON.
#[derive(Debug)]
pub enum AuthRejection {
    NotLoggedIn { api: bool },
    Forbidden { api: bool, needed: &'static str },
    Internal(String),
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        match self {
            AuthRejection::NotLoggedIn { api: true } => {
                ApiError::new(StatusCode::UNAUTHORIZED, "not logged in: POST /api/login first")
                    .into_response()
            }
            AuthRejection::NotLoggedIn { api: false } => Redirect::to("/login").into_response(),
            AuthRejection::Forbidden { api: true, needed } => {
                ApiError::new(StatusCode::FORBIDDEN, format!("this needs a {needed} account"))
                    .into_response()
            }
            AuthRejection::Forbidden { api: false, needed } => {
                (StatusCode::FORBIDDEN, format!("403: this page needs a {needed} account"))
                    .into_response()
            }
            AuthRejection::Internal(message) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message).into_response()
            }
        }
    }
}

/// Any logged-in account.
pub struct CurrentUser(pub User);

impl<S> FromRequestParts<S> for CurrentUser
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let api = parts.uri.path().starts_with("/api/");
        let token = cookie(cookie_header(&parts.headers), "sid")
            .ok_or(AuthRejection::NotLoggedIn { api })?;
        let user_id = state.session_user(token).ok_or(AuthRejection::NotLoggedIn { api })?;
        match state.store.user(user_id) {
            Ok(Some(user)) => Ok(CurrentUser(user)),
            Ok(None) => Err(AuthRejection::NotLoggedIn { api }),
            Err(error) => Err(AuthRejection::Internal(error.to_string())),
        }
    }
}

/// A logged-in site admin.
pub struct AdminUser(pub User);

impl<S> FromRequestParts<S> for AdminUser
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, state).await?;
        if user.role != Role::Admin {
            let api = parts.uri.path().starts_with("/api/");
            return Err(AuthRejection::Forbidden { api, needed: "site admin" });
        }
        Ok(AdminUser(user))
    }
}

/// A logged-in agent, with their extension.
pub struct AgentUser {
    pub user: User,
    pub extension: String,
}

impl<S> FromRequestParts<S> for AgentUser
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, state).await?;
        let api = parts.uri.path().starts_with("/api/");
        match (&user.role, user.extension.clone()) {
            (Role::Agent, Some(extension)) => Ok(AgentUser { user, extension }),
            _ => Err(AuthRejection::Forbidden { api, needed: "agent" }),
        }
    }
}
