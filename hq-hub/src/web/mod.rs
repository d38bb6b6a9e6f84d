//! The HQ console over HTTP: server-rendered pages (askama, Simplified Chinese by default)
//! and a JSON API under `/api` sharing the same session cookie.
//!
//! - Who may call each route is decided in one place ([`guard`]): the route table names an
//!   access rule per route and the guard enforces it before the handler runs; handlers take
//!   the evidence as an extractor ([`Admin`], [`Module`], [`Caller`]).
//! - The session cookie is `HttpOnly; SameSite=Lax`; on top, a state-changing request with a
//!   foreign `Origin` is refused and every answer carries the security headers
//!   ([`web_guard`]); logins are throttled per (account, source address).
//! - Every store call runs in `spawn_blocking` ([`blocking`]).
//! - Errors leave as `{"error": "..."}` ([`ErrorBody`]) with a 4xx naming what to fix, or as
//!   a message page. Under `/api` that holds for axum's own rejections too: handlers read
//!   bodies and paths through [`extract`]'s wrappers, and [`json_errors`] turns whatever else
//!   answers an error in plain text (a wrong method, an unknown route) into the JSON error.
//! - The stylesheet is compiled into the binary: the console works with no internet.

mod across;
mod api;
mod calls;
mod calls_files;
mod console;
mod edit;
mod account_edit;
mod edit_words;
mod paging;
mod extract;
pub mod guard;
mod health;
mod home;
mod i18n;
mod limits;
mod messages;
mod notices;
pub mod openapi;
mod pages;
mod site_pages;
mod pools;
mod report_run;
mod report_xlsx;
mod reports;
mod report_api;
mod pause;
mod setup;
pub mod shell;
mod wall;
mod wall_view;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{DefaultBodyLimit, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};

use crate::store::{Account, Store};
use guard::{refuse, Registry};
pub use guard::{routes, Access, Admin, Caller, Module, RouteInfo};
pub use i18n::{Lang, Tr};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "hq_session";

/// Largest accepted upload (an xlsx of a few hundred thousand rows fits).
const MAX_UPLOAD_BYTES: usize = 64 * 1024 * 1024;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    /// Background imports the console polls for progress.
    pub jobs: Arc<Mutex<HashMap<u64, console::ImportJob>>>,
    /// Asks online sites to upload a recording before its turn.
    pub recordings: sync_link::server::RecordingRequests,
    /// Failed logins per (account, source address) and per source address.
    pub throttle: Arc<web_guard::SharedThrottle>,
    /// Cancelled when the hub stops: open event streams end, so the graceful shutdown
    /// does not wait for walls left open.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl AppState {
    pub fn new(store: Arc<Store>, recordings: sync_link::server::RecordingRequests) -> AppState {
        AppState {
            store,
            jobs: Arc::new(Mutex::new(HashMap::new())),
            recordings,
            throttle: Arc::default(),
            shutdown: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// Event streams end when `shutdown` is cancelled.
    pub fn with_shutdown(mut self, shutdown: tokio_util::sync::CancellationToken) -> AppState {
        self.shutdown = shutdown;
        self
    }
}

/// The console's routes, each behind the guard of its access rule ([`guard`]), then the
/// Origin check and the security headers on every answer ([`protect`]).
pub fn router(state: AppState) -> Router {
    let (routes, _) = register(Registry::new(Some(state.clone()))).into_parts();
    routes
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(protect))
        .with_state(state)
}

/// The route table: the only place routes are added, each with who may call it.
fn register(r: Registry) -> Registry {
    let r = reports::routes(r);
    use guard::{
        AccountsAccounts as Accounts, AccountsGroups as Groups, AccountsRoles as Roles, CtiLists as Lists,
        CtiVoice as Voice, DataBatches as Batches, DataBusiness as Business, DataFiles as Files,
        DataRecordings as Recordings, DataSettings as Settings, Notices,
    };
    use Access::{Admin, LoggedIn, Public};
    let files = Access::module::<Files>();
    let batches = Access::module::<Batches>();
    let settings = Access::module::<Settings>();
    let lists = Access::module::<Lists>();
    let voice = Access::module::<Voice>();
    let notices = Access::module::<Notices>();
    let r = across::routes(r);
    let r = report_api::routes(r);
    let r = wall::routes(home::routes(r));
    let r = calls::routes(r);
    let r = pools::routes(edit::routes(account_edit::routes(r)));
    let r = health::routes(r);
    r.get("/static/style.css", Public, style_css)
        .get("/static/ui.css", Public, ui_css)
        .get("/static/ui.js", Public, ui_js)
        .get("/static/console.js", Public, console_js)
        .get("/static/echarts.min.js", Public, echarts_js)
        .get("/lang/{code}", Public, pages::set_lang)
        .get("/login", Public, pages::login_page)
        .post("/login", Public, pages::login_submit)
        .post("/logout", Public, pages::logout)
        .get("/sites", LoggedIn, site_pages::sites_page)
        .post("/sites", Admin, site_pages::create_site)
        .post("/sites/{id}/code", Admin, site_pages::site_code)
        .post("/sites/{id}/retire", Admin, site_pages::retire_site)
        .get("/projects", LoggedIn, pages::projects_page)
        .post("/projects", Admin, pages::create_project)
        .post("/categories", Admin, pages::create_category)
        .get("/projects/{id}", LoggedIn, pages::project_page)
        .post("/projects/{id}/files", files, pages::upload_file)
        .get("/files", files, pages::files_page)
        .get("/files/{id}", files, pages::file_page)
        .post("/files/{id}/dispatch", files, pages::dispatch_file)
        .get("/batches", batches, pages::batches_page)
        .get("/batches/{id}/records", Access::module::<Business>(), pages::records_page)
        .get("/lists", lists, setup::lists_page)
        .get("/accounts", Access::AnyModule(guard::ACCOUNT_MODULES), setup::accounts_page)
        .get("/voice", voice, notices::voice_page)
        .get("/announcements", notices, notices::announcements_page)
        .post("/api/login", Public, api::login)
        .post("/api/logout", Public, api::logout)
        .get("/api/sites", LoggedIn, api::list_sites)
        .post("/api/sites", Admin, api::create_site)
        .post("/api/sites/{id}/enrollment-code", Admin, api::enrollment_code)
        .post("/api/sites/{id}/retire", Admin, api::retire_site)
        .put("/api/sites/{id}/recording-retention", Admin, setup::put_recording_retention)
        .get("/api/categories", LoggedIn, api::list_categories)
        .post("/api/categories", Admin, api::create_category)
        .get("/api/projects", LoggedIn, api::list_projects)
        .post("/api/projects", Admin, api::create_project)
        .post("/api/projects/{id}/files", files, api::upload_file)
        .get("/api/files", files, api::list_files)
        .get("/api/files/{id}", files, api::get_file)
        .post("/api/files/{id}/dispatch", files, api::dispatch)
        .get("/api/batches", batches, api::list_batches)
        .get("/api/batches/{id}/records", Access::module::<Business>(), api::batch_records)
        .get("/api/alarms", LoggedIn, api::list_alarms)
        .get("/api/sites/{id}/recordings/{sha256}", Access::module::<Recordings>(), api::download_recording)
        .post("/api/sites/{id}/recordings/{sha256}/fetch", Access::module::<Recordings>(), api::fetch_recording)
        .get("/api/openapi.json", Public, openapi::document)
        .get("/api/modules", LoggedIn, console::list_modules)
        .get("/api/roles", Access::module::<Roles>(), console::list_roles)
        .post("/api/roles", Admin, console::create_role)
        .get("/api/groups", Access::module::<Groups>(), console::list_groups)
        .post("/api/groups", Admin, console::create_group)
        .get("/api/accounts", Access::module::<Accounts>(), console::list_accounts)
        .post("/api/accounts", Admin, console::create_account)
        .get("/api/projects/{id}", LoggedIn, console::get_project)
        .put("/api/projects/{id}", settings, console::update_project)
        .put("/api/projects/{id}/sites", Admin, console::set_project_sites)
        .get("/api/projects/{id}/admins", LoggedIn, console::get_project_admins)
        .put("/api/projects/{id}/admins", Admin, console::set_project_admins)
        .get("/api/projects/{id}/attribution", LoggedIn, console::get_attribution)
        .put("/api/projects/{id}/attribution", Admin, console::set_attribution)
        .post("/api/projects/{id}/imports", files, console::start_import)
        .get("/api/imports/{job}", files, console::import_progress)
        .get("/api/files/{id}/bad-rows.xlsx", files, console::bad_rows_sheet)
        .get("/api/files/{id}/download", files, console::download_file)
        .post("/api/files/{id}/delete", files, console::delete_file)
        .post("/api/files/{id}/remark", files, console::set_remark)
        .post("/api/files/{id}/filter", files, console::filter_file)
        .get("/api/filter-settings", files, console::filter_settings)
        .post("/api/batches/{id}/priority", batches, console::set_priority)
        .post("/api/batches/{id}/delete", batches, console::delete_batch)
        .get("/api/batches/{id}/numbers", batches, console::batch_numbers)
        .post("/api/one-click", batches, console::one_click)
        .get("/api/lists/{list}", lists, console::list_numbers)
        .post("/api/lists/{list}", lists, console::add_numbers)
        .post("/api/lists/remove", lists, console::remove_number)
        .post("/api/lists/{list}/import", lists, setup::import_list)
        .put("/api/projects/{id}/settings", settings, setup::put_settings)
        .get("/api/link-settings", Admin, setup::get_link_settings)
        .put("/api/link-settings", Admin, setup::put_link_settings)
        .get("/api/voice-files", voice, notices::list_voice_files)
        .post("/api/voice-files", voice, notices::upload_voice_file)
        .post("/api/voice-files/{id}/delete", voice, notices::delete_voice_file)
        .get("/api/announcements", notices, notices::list_announcements)
        .post("/api/announcements", notices, notices::post_announcement)
        .post("/api/announcements/{id}", notices, notices::edit_announcement)
        .post("/api/announcements/{id}/withdraw", notices, notices::withdraw_announcement)
}

/// The Origin check (a state-changing request from another site's page is refused) and
/// the security headers, on every answer including refusals.
async fn protect(request: Request, next: Next) -> Response {
    let host = web_guard::request_host(&request);
    let checked = web_guard::check_origin(request.method(), request.headers().get(header::ORIGIN), host.as_deref());
    let mut response = match checked {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            let tr = guard::request_tr(request.headers());
            let api = web_guard::is_api(request.uri().path());
            refuse(StatusCode::FORBIDDEN, api, tr, "", refusal.to_string(), refusal.zh().to_string())
        }
    };
    web_guard::add_security_headers(response.headers_mut());
    response
}

/// An unknown path: the JSON error under `/api`, a plain 404 elsewhere.
async fn not_found(request: Request) -> Response {
    if !web_guard::is_api(request.uri().path()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let tr = guard::request_tr(request.headers());
    let path = request.uri().path().to_string();
    ApiError::not_found(extract::text(tr, &format!("no API route {path}: see /api/openapi.json"), &format!("没有接口 {path}：见 /api/openapi.json"))).into_response()
}

/// Makes every error under `/api` the documented JSON error, whatever produced it: axum
/// answers a wrong method (405) and a few of its own rejections in plain text or with no
/// body at all. A page route's plain-text rejection (a form field that does not parse)
/// becomes a message page; and every error's message is put in the caller's language
/// ([`messages`]), whichever handler or store worded it.
async fn json_errors(request: Request, next: Next) -> Response {
    let api = web_guard::is_api(request.uri().path());
    let tr = guard::request_tr(request.headers());
    let response = match web_guard::plain_api_error(api, next.run(request).await).await {
        Ok((status, detail)) => return ApiError::new(status, extract::framework(tr, status, &detail)).into_response(),
        Err(response) => response,
    };
    let response = match web_guard::plain_page_error(api, response).await {
        Ok((status, detail)) => {
            let text = if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
                extract::text(tr, "send this form from its page", "请从页面上的表单提交")
            } else {
                extract::framework(tr, status, &detail)
            };
            let mut page = pages::message(tr, "", tr.text().common_failed, text, "/");
            *page.status_mut() = status;
            return page;
        }
        Err(response) => response,
    };
    web_guard::localize_json_error(response, |message| messages::localize(tr, message)).await
}

async fn style_css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../../static/style.css"))
}

async fn console_js() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("../../static/console.js"))
}

/// The look both consoles share (`ui/ui.css` at the repository root, behind the vendored date
/// picker's sheet, `vendor/flatpickr`; the site box serves the same at `/assets/ui.css`).
async fn ui_css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        concat!(include_str!("../../../vendor/flatpickr/flatpickr.min.css"), "\n", include_str!("../../../ui/ui.css")),
    )
}

/// The confirmation modal, toasts, tabs and date fields both consoles share (`ui/ui.js`),
/// behind the date picker it builds on (`vendor/flatpickr`, with its Chinese words).
async fn ui_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        concat!(
            include_str!("../../../vendor/flatpickr/flatpickr.min.js"),
            ";\n",
            include_str!("../../../vendor/flatpickr/zh.js"),
            ";\n",
            include_str!("../../../ui/ui.js")
        ),
    )
}

/// Apache ECharts, vendored (see `vendor/echarts`): the console's charts, with no CDN.
async fn echarts_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "max-age=86400")],
        include_str!("../../../vendor/echarts/echarts.common.min.js"),
    )
}

/// The one error shape of the JSON API: every 4xx and 5xx under `/api` is this.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong and how to fix it; names the field or row at fault.
    #[schema(example = "name: at most 100 characters (got 153)")]
    pub error: String,
    /// Only on 429 (a throttled login): seconds to wait, as `Retry-After` says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
}

/// An error leaving the API: a status and a message saying what to fix.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// A failure that is the hub's fault: logged in full, reported without internals.
    pub fn internal(err: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %err, "request failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error in the hub; see its log")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: self.message, retry_after_seconds: None })).into_response()
    }
}

impl From<crate::store::DbError> for ApiError {
    fn from(err: crate::store::DbError) -> Self {
        ApiError::internal(err)
    }
}

/// Runs a blocking store call off the async runtime.
pub async fn blocking<T, F>(state: &AppState, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Store) -> T + Send + 'static,
{
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || work(&store)).await.map_err(ApiError::internal)
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// `Set-Cookie` value for a fresh session.
pub fn session_cookie(token: &str) -> String {
    format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age=43200")
}

async fn account_from(headers: &HeaderMap, state: &AppState) -> Result<Option<Account>, ApiError> {
    let Some(token) = cookie(headers, SESSION_COOKIE).map(str::to_string) else {
        return Ok(None);
    };
    Ok(blocking(state, move |store| store.session_account(&token)).await??)
}

/// The UI language of a request, from its `lang` cookie.
pub struct PageLang(pub Tr);

impl<S: Send + Sync> FromRequestParts<S> for PageLang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(PageLang(guard::request_tr(&parts.headers)))
    }
}

/// A logged-in user of the console pages: the guard's [`Caller`].
pub type PageUser = Caller;

/// The zone every time the console shows or exports is in: the hub's configured
/// `time_zone`. Process-wide because times are formatted in views and sheets that have no
/// store at hand; a process runs one hub. Unset (a view built outside a running hub), China
/// time.
static DISPLAY_ZONE: std::sync::OnceLock<::reports::Zone> = std::sync::OnceLock::new();

/// Sets the zone of [`format_time`]; the first hub of the process decides it.
pub fn set_display_zone(zone: ::reports::Zone) {
    let _ = DISPLAY_ZONE.set(zone);
}

/// Unix seconds as local time in the hub's zone (China time unless configured otherwise).
pub fn format_time(unix: i64) -> String {
    let offset = DISPLAY_ZONE.get().map_or(8 * 3600, |zone| zone.offset_at(unix));
    let offset = time::UtcOffset::from_whole_seconds(offset as i32).unwrap_or(time::UtcOffset::UTC);
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(at) => {
            let at = at.to_offset(offset);
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                at.year(),
                u8::from(at.month()),
                at.day(),
                at.hour(),
                at.minute(),
                at.second()
            )
        }
        Err(_) => unix.to_string(),
    }
}

/// `n (12.50%)` as the task list shows counts with their rate.
pub fn with_rate(count: i64, of: i64) -> String {
    if of <= 0 {
        format!("{count} (0.00%)")
    } else {
        format!("{count} ({:.2}%)", count as f64 * 100.0 / of as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting() {
        assert_eq!(format_time(0), "1970-01-01 08:00:00");
        assert_eq!(with_rate(1, 8), "1 (12.50%)");
        assert_eq!(with_rate(0, 0), "0 (0.00%)");
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "a=1; lang=en; hq_session=abc".parse().unwrap());
        assert_eq!(cookie(&headers, "lang"), Some("en"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "missing"), None);
    }
}
