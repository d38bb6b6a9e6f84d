//! Signing in and out, and what a browser needs before it is anyone: the login page and its
//! JSON login, the home redirect (where a session belongs), the language switch and the
//! embedded assets.
//!
//! A login sets a random session token in an `HttpOnly; SameSite=Strict` cookie; the store
//! keeps it hashed, so a restart signs no one out. Failed logins are throttled per
//! (account, source address) and per source address.

use askama::Template;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::i18n::{Lang, Text};
use super::limits::{self, ApiJson, Check, Limits};
use super::page::{Nav, lang, render, work};
use super::{ApiError, AppState, ErrorBody, MaybeSignedIn, Public, SignedIn, cookie, cookie_header};
use crate::desk::{AgentLive, AgentState};
use crate::driver::inbox::DriverMsg;
use crate::store::Role;

const APP_CSS: &str = include_str!("../../assets/app.css");
const APP_JS: &str = include_str!("../../assets/app.js");
/// The look and behaviour both consoles share, one file each at the repository root (the hub
/// serves the same files at `/static/ui.css` and `/static/ui.js`), each behind the vendored
/// date picker they build on (`vendor/flatpickr`).
const UI_CSS: &str = concat!(include_str!("../../../vendor/flatpickr/flatpickr.min.css"), "\n", include_str!("../../../ui/ui.css"));
const UI_JS: &str = concat!(
    include_str!("../../../vendor/flatpickr/flatpickr.min.js"),
    ";\n",
    include_str!("../../../vendor/flatpickr/zh.js"),
    ";\n",
    include_str!("../../../ui/ui.js")
);
const ECHARTS_JS: &str = include_str!("../../../vendor/echarts/echarts.common.min.js");

/// `GET /`: where a session belongs.
pub async fn home(MaybeSignedIn(user): MaybeSignedIn, State(state): State<AppState>) -> Redirect {
    use crate::store::Module;
    match user {
        Some(user) if user.role == Role::Admin => {
            // Staff land on the first page their role opens (a 值班长 with monitor and data
            // has no task pages).
            let modules = state.store.modules_of(user.user_id).unwrap_or_default();
            let pages = [
                (Module::Tasks, "/admin/tasks"),
                (Module::Monitor, "/admin/status"),
                (Module::Data, "/admin/data"),
                (Module::Attribution, "/admin/attribution"),
                (Module::Accounts, "/admin/roles"),
                (Module::Extensions, "/admin/extensions"),
            ];
            let page = pages.iter().find(|(module, _)| modules.contains(module)).map_or("/admin/tasks", |(_, page)| *page);
            Redirect::to(page)
        }
        Some(_) => Redirect::to("/desk"),
        None => Redirect::to("/login"),
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    t: &'static Text,
    nav: Nav,
}

/// `GET /login`.
pub async fn login_page(_: Public, headers: HeaderMap) -> Response {
    render(LoginPage { t: lang(&headers), nav: Nav::none(work(&headers)) })
}

/// `GET /lang/{code}`: remembers the language and goes back.
pub async fn switch_lang(_: Public, Path(code): Path<String>, headers: HeaderMap) -> Response {
    let code = if code == "en" { "en" } else { "zh" };
    // Only a local path is followed back, so the switch cannot redirect off the box.
    let back = headers
        .get(header::REFERER)
        .and_then(|value| value.to_str().ok())
        .and_then(|referer| referer.find("://").map(|idx| &referer[idx + 3..]))
        .and_then(|rest| rest.find('/').map(|idx| rest[idx..].to_string()))
        .filter(|path| path.starts_with('/') && !path.starts_with("//"))
        .unwrap_or_else(|| "/".to_string());
    let cookie = format!("lang={code}; Path=/; Max-Age=31536000; SameSite=Lax");
    ([(header::SET_COOKIE, cookie)], Redirect::to(&back)).into_response()
}

/// `GET /assets/app.css`.
pub async fn css(_: Public) -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], APP_CSS)
        .into_response()
}

/// `GET /assets/app.js`.
pub async fn js(_: Public) -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")],
        APP_JS,
    )
        .into_response()
}

/// `GET /assets/ui.css`.
pub async fn ui_css(_: Public) -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], UI_CSS).into_response()
}

/// `GET /assets/ui.js`.
pub async fn ui_js(_: Public) -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], UI_JS).into_response()
}

/// `GET /assets/echarts.min.js`: Apache ECharts, vendored (see `vendor/echarts`), for the
/// report charts; served from the box because a site's LAN may have no internet.
pub async fn echarts(_: Public) -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "max-age=86400")],
        ECHARTS_JS,
    )
        .into_response()
}

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
