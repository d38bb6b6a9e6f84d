//! The HQ console over HTTP: server-rendered pages (askama, Simplified Chinese by default)
//! and a JSON API under `/api` sharing the same session cookie.
//!
//! - Auth is an extractor ([`ApiUser`] answers 401 JSON, [`PageUser`] redirects to the login
//!   page); the session cookie is `HttpOnly; SameSite=Lax`, so other sites cannot post forms
//!   with it.
//! - Every store call runs in `spawn_blocking` ([`blocking`]).
//! - Errors leave as `{"error": "..."}` with a 4xx naming what to fix, or as a message page.
//! - The stylesheet is compiled into the binary: the console works with no internet.

mod api;
mod console;
mod i18n;
mod notices;
mod openapi;
mod pages;
mod setup;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};

use crate::store::{Account, Scope, Store};
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
}

impl AppState {
    pub fn new(store: Arc<Store>, recordings: sync_link::server::RecordingRequests) -> AppState {
        AppState { store, jobs: Arc::new(Mutex::new(HashMap::new())), recordings }
    }
}

/// The console's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/batches") }))
        .route("/static/style.css", get(style_css))
        .route("/static/console.js", get(console_js))
        .route("/lang/{code}", get(pages::set_lang))
        .route("/login", get(pages::login_page).post(pages::login_submit))
        .route("/logout", post(pages::logout))
        .route("/sites", get(pages::sites_page).post(pages::create_site))
        .route("/sites/{id}/code", post(pages::site_code))
        .route("/projects", get(pages::projects_page).post(pages::create_project))
        .route("/categories", post(pages::create_category))
        .route("/projects/{id}", get(pages::project_page))
        .route("/projects/{id}/files", post(pages::upload_file))
        .route("/files", get(pages::files_page))
        .route("/files/{id}", get(pages::file_page))
        .route("/files/{id}/dispatch", post(pages::dispatch_file))
        .route("/batches", get(pages::batches_page))
        .route("/batches/{id}/records", get(pages::records_page))
        .route("/lists", get(setup::lists_page))
        .route("/accounts", get(setup::accounts_page))
        .route("/voice", get(notices::voice_page))
        .route("/announcements", get(notices::announcements_page))
        .route("/api/login", post(api::login))
        .route("/api/logout", post(api::logout))
        .route("/api/sites", get(api::list_sites).post(api::create_site))
        .route("/api/sites/{id}/enrollment-code", post(api::enrollment_code))
        .route("/api/categories", get(api::list_categories).post(api::create_category))
        .route("/api/projects", get(api::list_projects).post(api::create_project))
        .route("/api/projects/{id}/files", post(api::upload_file))
        .route("/api/files", get(api::list_files))
        .route("/api/files/{id}", get(api::get_file))
        .route("/api/files/{id}/dispatch", post(api::dispatch))
        .route("/api/batches", get(api::list_batches))
        .route("/api/batches/{id}/records", get(api::batch_records))
        .route("/api/alarms", get(api::list_alarms))
        .route("/api/sites/{id}/recordings/{sha256}", get(api::download_recording))
        .route("/api/sites/{id}/recordings/{sha256}/fetch", post(api::fetch_recording))
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/modules", get(console::list_modules))
        .route("/api/roles", get(console::list_roles).post(console::create_role))
        .route("/api/groups", get(console::list_groups).post(console::create_group))
        .route("/api/accounts", get(console::list_accounts).post(console::create_account))
        .route("/api/projects/{id}", get(console::get_project).put(console::update_project))
        .route("/api/projects/{id}/sites", put(console::set_project_sites))
        .route("/api/projects/{id}/admins", get(console::get_project_admins).put(console::set_project_admins))
        .route("/api/projects/{id}/attribution", get(console::get_attribution).put(console::set_attribution))
        .route("/api/projects/{id}/imports", post(console::start_import))
        .route("/api/imports/{job}", get(console::import_progress))
        .route("/api/files/{id}/bad-rows.xlsx", get(console::bad_rows_sheet))
        .route("/api/files/{id}/download", get(console::download_file))
        .route("/api/files/{id}/delete", post(console::delete_file))
        .route("/api/files/{id}/remark", post(console::set_remark))
        .route("/api/files/{id}/filter", post(console::filter_file))
        .route("/api/filter-settings", get(console::filter_settings))
        .route("/api/batches/{id}/priority", post(console::set_priority))
        .route("/api/batches/{id}/delete", post(console::delete_batch))
        .route("/api/batches/{id}/numbers", get(console::batch_numbers))
        .route("/api/one-click", post(console::one_click))
        .route("/api/lists/{list}", get(console::list_numbers).post(console::add_numbers))
        .route("/api/lists/remove", post(console::remove_number))
        .route("/api/lists/{list}/import", post(setup::import_list))
        .route("/api/projects/{id}/settings", put(setup::put_settings))
        .route("/api/link-settings", get(setup::get_link_settings).put(setup::put_link_settings))
        .route("/api/voice-files", get(notices::list_voice_files).post(notices::upload_voice_file))
        .route("/api/voice-files/{id}/delete", post(notices::delete_voice_file))
        .route("/api/announcements", get(notices::list_announcements).post(notices::post_announcement))
        .route("/api/announcements/{id}", post(notices::edit_announcement))
        .route("/api/announcements/{id}/withdraw", post(notices::withdraw_announcement))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
        .with_state(state)
}

async fn style_css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../../static/style.css"))
}

async fn console_js() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("../../static/console.js"))
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
        (self.status, Json(serde_json::json!({ "error": self.message }))).into_response()
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

async fn account_from(parts: &Parts, state: &AppState) -> Result<Option<Account>, ApiError> {
    let Some(token) = cookie(&parts.headers, SESSION_COOKIE).map(str::to_string) else {
        return Ok(None);
    };
    Ok(blocking(state, move |store| store.session_account(&token)).await??)
}

/// A logged-in caller of the JSON API.
pub struct ApiUser(pub Account);

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match account_from(parts, state).await? {
            Some(account) => Ok(ApiUser(account)),
            None => Err(ApiError::new(StatusCode::UNAUTHORIZED, "not logged in: POST /api/login first")),
        }
    }
}

/// A logged-in caller of the JSON API with what it may see.
pub struct ApiScope(pub Scope);

impl FromRequestParts<AppState> for ApiScope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let ApiUser(account) = ApiUser::from_request_parts(parts, state).await?;
        Ok(ApiScope(blocking(state, move |store| store.scope(&account)).await??))
    }
}

impl ApiScope {
    /// Refuses with 403 unless the account's role grants `module`.
    pub fn require(&self, module: &str) -> Result<(), ApiError> {
        if self.0.has_module(module) {
            Ok(())
        } else {
            Err(ApiError::new(StatusCode::FORBIDDEN, format!("your role does not include the module {module:?}: ask an admin to add it")))
        }
    }

    /// Refuses with 403 unless the account is an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.0.is_admin() {
            Ok(())
        } else {
            Err(ApiError::new(StatusCode::FORBIDDEN, "only an admin account may do this"))
        }
    }
}

/// The UI language of a request, from its `lang` cookie.
pub struct PageLang(pub Tr);

impl<S: Send + Sync> FromRequestParts<S> for PageLang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(PageLang(Tr { lang: Lang::from_cookie(cookie(&parts.headers, "lang")) }))
    }
}

/// A logged-in user of the console pages, with their language.
pub struct PageUser {
    pub account: Account,
    pub tr: Tr,
    /// What the account may see; every page filters through it.
    pub scope: Scope,
}

impl FromRequestParts<AppState> for PageUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let tr = Tr { lang: Lang::from_cookie(cookie(&parts.headers, "lang")) };
        match account_from(parts, state).await {
            Ok(Some(account)) => {
                let lookup = account.clone();
                match blocking(state, move |store| store.scope(&lookup)).await {
                    Ok(Ok(scope)) => Ok(PageUser { account, tr, scope }),
                    Ok(Err(err)) => Err(ApiError::from(err).into_response()),
                    Err(err) => Err(err.into_response()),
                }
            }
            Ok(None) => Err(Redirect::to("/login").into_response()),
            Err(err) => Err(err.into_response()),
        }
    }
}

/// Unix seconds as China Standard Time (the console's users are in UTC+8).
pub fn format_time(unix: i64) -> String {
    let offset = time::UtcOffset::from_hms(8, 0, 0).unwrap_or(time::UtcOffset::UTC);
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
