//! The site's web UI and JSON API (axum), served on the LAN.
//!
//! - `registry` lists every route with its guard; [`router`] builds the router from it.
//!   Routes are cut by who uses them, as the guards are: [`admin`] (site admins and staff,
//!   [`AdminUser`]: pages, then the tasks, accounts and data APIs), [`desk`] (agents,
//!   [`AgentUser`]: pages and API), [`shared`] (any signed-in account: status,
//!   announcements, recordings, and the shapes both APIs use) and [`session`] (anyone:
//!   login and logout, the home redirect, the language switch, the embedded assets).
//!   [`page`] is what every server-rendered page is built from.
//! - Who may call a route is decided in one place, [`guard`]: every handler's first
//!   argument is a guard extractor (account kind and permission modules), and the registry
//!   takes no handler without one ([`routes`]).
//! - Sessions are random tokens in an `HttpOnly; SameSite=Strict` cookie, kept hashed in
//!   the store so that a restart does not sign anyone out, and ended after the configured
//!   idle time (8 hours by default).
//! - JSON bodies and queries go through [`limits::ApiJson`] and [`limits::ApiQuery`]: a
//!   malformed request and an over-long text are refused with the JSON error, in the UI's
//!   language; the document of the JSON API is [`openapi`].

pub mod admin;
pub mod desk;
pub mod export;
pub mod guard;
pub mod health;
pub mod i18n;
pub mod limits;
pub mod messages;
pub mod openapi;
pub mod page;
pub mod routes;
pub mod session;
pub mod shared;
pub mod shell;

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Serialize;
use tokio::sync::watch;

use crate::desk::Desk;
use crate::driver::inbox::DriverHandle;
use crate::store::Store;
use crate::sync::LinkView;

pub use guard::{AdminUser, AgentOrAdmin, AgentUser, MaybeSignedIn, Public, SignedIn};

/// Everything a handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub desk: Arc<Desk>,
    pub driver: DriverHandle,
    pub link: watch::Receiver<LinkView>,
    /// The front panel's latest rendering, for the status page.
    pub panel: Arc<crate::panel::PanelImage>,
    /// Seconds without a request after which a session ends.
    session_idle: i64,
    /// The wall clock in unix seconds; sessions' idle time is measured with it.
    clock: fn() -> i64,
}

impl AppState {
    pub fn new(
        store: Arc<Store>,
        desk: Arc<Desk>,
        driver: DriverHandle,
        link: watch::Receiver<LinkView>,
    ) -> AppState {
        let session_idle = crate::config::WebOptions::default().session_idle.as_secs() as i64;
        let panel = Arc::default();
        AppState { store, desk, driver, link, panel, session_idle, clock: crate::store::now_unix }
    }

    /// The same state showing `panel` on the status page.
    pub fn with_panel(mut self, panel: Arc<crate::panel::PanelImage>) -> AppState {
        self.panel = panel;
        self
    }

    /// The same state with sessions ending after `idle` without a request.
    pub fn with_session_idle(mut self, idle: std::time::Duration) -> AppState {
        self.session_idle = idle.as_secs().max(1) as i64;
        self
    }

    /// The time sessions are stamped with.
    pub(crate) fn now(&self) -> i64 {
        (self.clock)()
    }
}

/// Every route, each with the guard that decides who may call it.
pub(crate) fn registry() -> routes::Registry {
    routes::Registry::default()
        // Anyone: signing in and out, the language, the assets, the API document.
        .get("/", session::home)
        .get("/login", session::login_page)
        .get("/lang/{code}", session::switch_lang)
        .get("/assets/app.css", session::css)
        .get("/assets/app.js", session::js)
        .get("/assets/ui.css", session::ui_css)
        .get("/assets/ui.js", session::ui_js)
        .get("/assets/echarts.min.js", session::echarts)
        .get("/api/openapi.json", openapi::document)
        .post("/api/login", session::login)
        .post("/api/logout", session::logout)
        .merge(health::routes)
        // Any signed-in account.
        .get("/api/status", shared::status)
        .get("/api/announcements", shared::announcements)
        .get("/api/attempts/{attempt_id}/recording", shared::recording)
        // The site admin: pages, then the API.
        .get("/admin/tasks", admin::pages::admin_tasks)
        .get("/admin/extensions", admin::pages::admin_extensions)
        .get("/admin/agents", admin::pages::admin_agents)
        .get("/admin/status", admin::pages::admin_status)
        .get("/admin/status/panel.png", admin::pages::admin_panel_png)
        .get("/admin/tasks/{batch_id}", admin::pages::admin_task)
        .get("/admin/project-tasks/{project_id}", admin::pages::admin_project_task)
        .get("/admin/attribution", admin::pages::admin_attribution)
        .get("/admin/data", admin::data_page::admin_data)
        .get("/admin/roles", admin::pages::admin_roles)
        .get("/api/tasks", admin::tasks_api::list_tasks)
        .post("/api/tasks/{batch_id}/start", admin::tasks_api::start_task)
        .post("/api/tasks/{batch_id}/stop", admin::tasks_api::stop_task)
        .get("/api/lines", admin::tasks_api::lines)
        .get("/api/tasks/{batch_id}", admin::tasks_api::task_detail)
        .post("/api/tasks/{batch_id}/settings", admin::tasks_api::save_task_settings)
        .post("/api/tasks/{batch_id}/agents", admin::tasks_api::save_task_agents)
        .post("/api/tasks/{batch_id}/priority", admin::tasks_api::save_task_priority)
        .post("/api/tasks/{batch_id}/allocate", admin::tasks_api::allocate)
        .get("/api/projects/{project_id}/rules", admin::tasks_api::get_rules)
        .post("/api/projects/{project_id}/rules", admin::tasks_api::save_rules)
        .get("/api/monitor/events", admin::tasks_api::monitor_events)
        .get("/api/voice-files", admin::tasks_api::voice_files)
        .get("/api/extensions", admin::accounts_api::list_extensions)
        .post("/api/extensions", admin::accounts_api::create_extension)
        .get("/api/agents", admin::accounts_api::list_agents)
        .post("/api/agents", admin::accounts_api::create_agent)
        .get("/api/roles", admin::accounts_api::list_roles)
        .post("/api/roles", admin::accounts_api::create_role)
        .post("/api/accounts/{user_id}/role", admin::accounts_api::assign_role)
        .post("/api/staff", admin::accounts_api::create_staff)
        .merge_with(admin::account_edits::routes)
        .get("/api/data/customers", admin::data_api::data_customers)
        .get("/api/data/records", admin::data_api::data_records)
        .get("/api/data/records.xlsx", admin::data_api::export_records)
        .get("/api/data/recordings.zip", admin::data_api::export_recordings)
        .get("/api/data/callbacks", admin::data_api::data_callbacks)
        .post("/api/data/callbacks", admin::data_api::add_callback)
        .merge(admin::reports::routes)
        // The agent desk: pages, then the API.
        .get("/desk", desk::pages::desk)
        .get("/desk/settings", desk::pages::desk_settings)
        .get("/desk/records", desk::pages::desk_records)
        .get("/desk/callbacks", desk::pages::desk_callbacks)
        .get("/desk/customers", desk::pages::desk_customers)
        .get("/desk/numbers", desk::pages::desk_numbers)
        .post("/api/agent/state", desk::api::set_agent_state)
        .get("/api/agent/events", desk::api::agent_events)
        .post("/api/attempts/{attempt_id}/record", desk::api::save_record)
        .get("/api/agent/settings", desk::api::get_agent_settings)
        .post("/api/agent/settings", desk::api::save_agent_settings)
        .get("/api/agent/projects", desk::api::my_projects)
        .post("/api/agent/projects/{project_id}/dial", desk::api::one_click)
        .get("/api/agent/numbers", desk::api::my_numbers)
        .get("/api/agent/callbacks", desk::api::my_callbacks)
        .get("/api/agent/records", desk::api::my_records)
        .get("/api/agent/customers", desk::api::my_customers)
        .post("/api/customers/{batch_id}/{row_id}", desk::api::edit_customer)
        .post("/api/attempts/{attempt_id}/call-back-now", desk::api::call_back_now)
        .post("/api/attempts/{attempt_id}/callbacks", desk::api::schedule_callback)
        .post("/api/callbacks/{callback_id}/arm", desk::api::arm_callback)
        .post("/api/callbacks/{callback_id}/dial", desk::api::dial_callback)
        .merge(desk::routes)
}

/// Builds the router; `state` is shared by every handler.
pub fn router(state: AppState) -> Router {
    registry()
        .into_router()
        .fallback(not_found)
        .layer(axum::middleware::from_fn(json_errors))
        // The slot the guards fill with the account's modules, for the page's menu.
        .layer(axum::middleware::from_fn(shell::scope))
        .with_state(state)
        // Failed logins per (account, source address) and per source address.
        .layer(axum::Extension(Arc::new(web_guard::SharedThrottle::default())))
        // A foreign Origin is refused on state-changing requests; security headers on all.
        .layer(axum::middleware::from_fn(web_guard::protect))
}

/// An unknown path: the JSON error under `/api/`, a plain 404 elsewhere.
async fn not_found(_: guard::Public, headers: HeaderMap) -> Response {
    let lang = i18n::Lang::from_cookie_header(cookie_header(&headers));
    ApiError::new(StatusCode::NOT_FOUND, lang.errors().no_such_route).into_response()
}

/// Makes every error under `/api/` the documented JSON error, whatever produced it: axum's
/// own rejections (a bad path or query parameter, a wrong method) answer in plain text. A
/// page's plain-text rejection (an id in its path that does not parse) becomes the same
/// JSON error the pages answer with; and every error's message is put in the caller's
/// language ([`messages`]), whichever handler or store worded it.
async fn json_errors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let lang = i18n::Lang::from_cookie_header(cookie_header(request.headers()));
    let response = match web_guard::plain_api_error(api, next.run(request).await).await {
        Ok((status, detail)) => return ApiError::new(status, lang.errors().framework(status, &detail)).into_response(),
        Err(response) => response,
    };
    let response = match web_guard::plain_page_error(api, response).await {
        Ok((status, detail)) => return ApiError::new(status, lang.errors().framework(status, &detail)).into_response(),
        Err(response) => response,
    };
    web_guard::localize_json_error(response, |message| messages::localize(lang, message)).await
}

/// The value of cookie `name` in a `Cookie` header.
pub(crate) fn cookie<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

pub(crate) fn cookie_header(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::COOKIE).and_then(|value| value.to_str().ok())
}

/// The JSON body of every error the API answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong and how to fix it, in the UI's language; names the field when one
    /// is at fault.
    #[schema(example = "字段“note”过长：最多 1000 个字符（当前 1200 个）")]
    pub error: String,
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
        (self.status, Json(ErrorBody { error: self.message })).into_response()
    }
}

impl From<crate::store::DbError> for ApiError {
    fn from(error: crate::store::DbError) -> ApiError {
        ApiError::internal(error)
    }
}

