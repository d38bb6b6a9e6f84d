//! The desk's newer API, registered by [`routes`] with one line of the shared router:
//! 坐席手动外呼 (a number the agent types), 重新编辑 of a callback (time, text and who may
//! take it), the site admin's callback grace period, and the desk's own script and style.
//! Refusals are in the UI's language ([`DeskWords`]) and name the field by its label.

use askama::Template;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::words::{DeskWords, desk_words};
use crate::desk::{AgentLive, AgentState};
use crate::driver::TypedRefusal;
use crate::driver::inbox::ManualStarted;
use crate::store::{CallbackEdit, CallbackError, CallbackScope, DefaultFormError, FormField};
use crate::web::guard::{Public, need};
use crate::web::limits::{self, ApiJson, ApiPath, Check, Limits};
use crate::web::routes::Registry;
use crate::web::i18n::Text;
use crate::web::page::{Nav, fail, lang, render, work};
use crate::web::{AdminUser, AgentUser, ApiError, AppState, ErrorBody};

const DESK_JS: &str = include_str!("../../../assets/desk.js");
const DESK_CSS: &str = include_str!("../../../assets/desk.css");

/// The desk's routes (one `merge` line in the shared router).
pub(crate) fn routes(registry: Registry) -> Registry {
    registry
        .get("/assets/desk.js", desk_js)
        .get("/assets/desk.css", desk_css)
        .post("/api/agent/dial", manual_dial)
        .post("/api/callbacks/{callback_id}/edit", edit_callback)
        .get("/admin/callback-settings", grace_page)
        .get("/api/desk/callback-grace", get_grace)
        .post("/api/desk/callback-grace", set_grace)
        .get("/api/desk/default-form", get_default_form)
        .post("/api/desk/default-form", set_default_form)
}

/// `GET /assets/desk.js`: the desk's script (popup on every desk page, call bar, dialing).
pub async fn desk_js(_: Public) -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], DESK_JS).into_response()
}

/// `GET /assets/desk.css`: the desk's layout (call bar, the popup at 1366×768).
pub async fn desk_css(_: Public) -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], DESK_CSS).into_response()
}

/// A callback as the popup's save and 重新编辑 send it.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CallbackForm {
    title: String,
    #[serde(default)]
    note: String,
    /// Planned time, unix seconds.
    due_at: Option<i64>,
    /// `agent` (this agent only, the default) or `task` (anyone in the task).
    #[serde(default)]
    scope: Option<String>,
}

impl Limits for CallbackForm {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        check.text("title", &self.title, limits::TITLE)?;
        check.text("note", &self.note, limits::NOTE)?;
        check.opt("scope", self.scope.as_deref(), limits::KEY)
    }
}

impl CallbackForm {
    /// Checks the form against `now` and words the first problem in the UI's language.
    pub(super) fn checked(&self, w: &DeskWords, now: i64) -> Result<CallbackEdit, ApiError> {
        let unprocessable = |message: &str| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message);
        let title = self.title.trim();
        if title.is_empty() || title.chars().count() > 60 {
            return Err(unprocessable(w.err_title));
        }
        let Some(due_at) = self.due_at else { return Err(unprocessable(w.err_due)) };
        if due_at <= now {
            return Err(unprocessable(w.err_due_past));
        }
        let scope = match self.scope.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => CallbackScope::Agent,
            Some(text) => CallbackScope::parse(text).ok_or_else(|| unprocessable(w.err_scope))?,
        };
        Ok(CallbackEdit { title: title.to_string(), due_at, note: self.note.trim().to_string(), scope })
    }
}

/// A callback changed.
#[derive(Serialize, ToSchema)]
pub struct CallbackEdited {
    callback_id: u64,
    due_at: i64,
    scope: CallbackScope,
}

/// `POST /api/callbacks/{callback_id}/edit {title, due_at, note, scope}` (agent, 重新编辑).
#[utoipa::path(post, path = "/api/callbacks/{callback_id}/edit", tag = "agent", request_body = CallbackForm, params(("callback_id" = u64, Path)),
    responses((status = 200, description = "Changed; an armed callback stays armed at its new time", body = CallbackEdited),
              (status = 403, description = "Another agent's callback", body = ErrorBody),
              (status = 404, description = "No such callback", body = ErrorBody),
              (status = 422, description = "A field is missing or wrong, or the callback is closed", body = ErrorBody)))]
pub async fn edit_callback(
    agent: AgentUser<need::Callbacks>,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(callback_id): ApiPath<u64>,
    ApiJson(form): ApiJson<CallbackForm>,
) -> Result<Json<CallbackEdited>, ApiError> {
    let w = desk_words(&headers);
    let edit = form.checked(w, (state.clock)())?;
    match state.store.edit_callback(callback_id, &agent.user.username, &edit) {
        Ok(()) => Ok(Json(CallbackEdited { callback_id, due_at: edit.due_at, scope: edit.scope })),
        Err(error) => Err(callback_refusal(w, error)),
    }
}

/// A store refusal of a callback change, in the UI's language.
pub(super) fn callback_refusal(w: &DeskWords, error: CallbackError) -> ApiError {
    match error {
        CallbackError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, w.err_callback_missing),
        CallbackError::NotAllowed(_) => ApiError::new(StatusCode::FORBIDDEN, w.err_callback_not_yours),
        CallbackError::Invalid(message) if message.contains("title") || message.contains("note") => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, w.err_title)
        }
        CallbackError::Invalid(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, w.err_callback_closed),
        CallbackError::Db(error) => error.into(),
    }
}

/// `POST /api/agent/dial`.
#[derive(Deserialize, ToSchema)]
pub struct DialForm {
    /// The customer's number, digits (spaces and dashes are dropped).
    phone: String,
    /// Only this project's customers (default: all the agent's projects).
    #[serde(default)]
    project_id: Option<u64>,
}

impl Limits for DialForm {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        check.text("phone", &self.phone, limits::KEY)?;
        check.opt_id("project_id", self.project_id)
    }
}

/// `POST /api/agent/dial {phone, project_id?}` (agent, 坐席手动外呼): dials any number on the
/// line of the desk settings (a customer of the agent's projects as that customer, any other
/// under the agent's project); a manual attempt, not a task dial.
#[utoipa::path(post, path = "/api/agent/dial", tag = "agent", request_body = DialForm,
    responses((status = 200, description = "The call placed", body = ManualStarted),
              (status = 409, description = "Not dialed: not signed in, on a call, phone not registered, no caller chosen, \
                  black-listed, outside the calling windows, the number on another call", body = ErrorBody),
              (status = 422, description = "Not a number, or a project whose task the agent does not work", body = ErrorBody)))]
pub async fn manual_dial(
    agent: AgentUser,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(form): ApiJson<DialForm>,
) -> Result<Json<ManualStarted>, ApiError> {
    let w = desk_words(&headers);
    let phone: String = form.phone.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if !(3..=20).contains(&phone.len()) || !phone.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, w.err_phone));
    }
    let live = AgentLive {
        agent_id: agent.user.user_id,
        username: agent.user.username.clone(),
        extension: agent.extension.clone(),
        state: state.desk.state(agent.user.user_id),
    };
    if !matches!(live.state, AgentState::Available | AgentState::OneClickOnly) {
        return Err(ApiError::new(StatusCode::CONFLICT, w.err_not_signed_in));
    }
    match state.driver.typed_dial(live, form.project_id, phone).await {
        Ok(started) => Ok(Json(started)),
        Err(refusal) => Err(dial_refusal(w, refusal)),
    }
}

fn dial_refusal(w: &DeskWords, refusal: TypedRefusal) -> ApiError {
    let conflict = |message: String| ApiError::new(StatusCode::CONFLICT, message);
    match refusal {
        TypedRefusal::NotSignedIn => conflict(w.err_not_signed_in.into()),
        TypedRefusal::OnCall => conflict(w.err_on_call.into()),
        TypedRefusal::PhoneUnregistered(extension) => conflict(w.err_phone_unregistered.replace("{ext}", &extension)),
        TypedRefusal::NoCaller => conflict(w.err_no_caller.into()),
        TypedRefusal::NotYours => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, w.err_not_yours),
        TypedRefusal::BlackListed => conflict(w.err_black_listed.into()),
        TypedRefusal::OutsideWindows { now, windows } => {
            conflict(w.err_outside_windows.replace("{now}", &now).replace("{windows}", &windows))
        }
        TypedRefusal::BusyNumber => conflict(w.err_busy_number.into()),
        TypedRefusal::LinesDown(problem) => {
            tracing::warn!(%problem, "manual dial refused: lines down");
            conflict(w.err_lines_down.into())
        }
    }
}

/// The site admin's callback grace period.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct GraceForm {
    /// Minutes a due callback waits for its absent agent before it goes to the task (0-1440).
    minutes: u32,
}

impl Limits for GraceForm {
    fn check(&self, _check: &mut Check) -> Result<(), ApiError> {
        Ok(())
    }
}

/// `GET /api/desk/callback-grace` (site admin, tasks).
#[utoipa::path(get, path = "/api/desk/callback-grace", tag = "tasks",
    responses((status = 200, description = "The grace period", body = GraceForm)))]
pub async fn get_grace(_admin: AdminUser<need::Tasks>, State(state): State<AppState>) -> Result<Json<GraceForm>, ApiError> {
    Ok(Json(GraceForm { minutes: state.store.callback_grace_minutes()? }))
}

/// `POST /api/desk/callback-grace {minutes}` (site admin, tasks).
#[utoipa::path(post, path = "/api/desk/callback-grace", tag = "tasks", request_body = GraceForm,
    responses((status = 200, description = "Saved", body = GraceForm),
              (status = 422, description = "Out of range", body = ErrorBody)))]
pub async fn set_grace(
    _admin: AdminUser<need::Tasks>,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(form): ApiJson<GraceForm>,
) -> Result<Json<GraceForm>, ApiError> {
    if !state.store.set_callback_grace_minutes(form.minutes)? {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, desk_words(&headers).err_grace));
    }
    Ok(Json(form))
}

/// The business-record form of calls under no project (batch 0), in order.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct DefaultFormBody {
    record_fields: Vec<FormField>,
}

impl Limits for DefaultFormBody {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        for field in &self.record_fields {
            check.text("label", &field.label, limits::NAME)?;
            for option in &field.options {
                check.text("options", option, limits::NAME)?;
            }
        }
        Ok(())
    }
}

/// `GET /api/desk/default-form` (site admin, tasks).
#[utoipa::path(get, path = "/api/desk/default-form", tag = "tasks",
    responses((status = 200, description = "The form of calls under no project", body = DefaultFormBody)))]
pub async fn get_default_form(_admin: AdminUser<need::Tasks>, State(state): State<AppState>) -> Result<Json<DefaultFormBody>, ApiError> {
    Ok(Json(DefaultFormBody { record_fields: state.store.default_form()? }))
}

/// `POST /api/desk/default-form {record_fields: [{label, kind, options, required}]}` (site admin,
/// tasks): the business-record form of calls under no project, in the order given.
#[utoipa::path(post, path = "/api/desk/default-form", tag = "tasks", request_body = DefaultFormBody,
    responses((status = 200, description = "Saved", body = DefaultFormBody),
              (status = 422, description = "A field is refused (named by its place and label)", body = ErrorBody)))]
pub async fn set_default_form(
    _admin: AdminUser<need::Tasks>,
    State(state): State<AppState>,
    ApiJson(form): ApiJson<DefaultFormBody>,
) -> Result<Json<DefaultFormBody>, ApiError> {
    match state.store.set_default_form(&form.record_fields) {
        Ok(record_fields) => Ok(Json(DefaultFormBody { record_fields })),
        Err(DefaultFormError::Db(error)) => Err(error.into()),
        Err(refused) => Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, refused.to_string())),
    }
}

#[derive(Template)]
#[template(path = "desk_admin.html")]
struct GracePage {
    t: &'static Text,
    dw: &'static DeskWords,
    nav: Nav,
    minutes: u32,
    /// The form of calls under no project, as JSON for the editor.
    form: String,
}

/// `GET /admin/callback-settings` (site admin, tasks): the callback grace period and the
/// form of calls under no project.
pub async fn grace_page(admin: AdminUser<need::Tasks>, State(state): State<AppState>, headers: HeaderMap) -> Response {
    match (state.store.callback_grace_minutes(), state.store.default_form()) {
        (Ok(minutes), Ok(fields)) => render(GracePage {
            t: lang(&headers),
            dw: desk_words(&headers),
            nav: Nav::admin("callback-settings", &admin.user.username, work(&headers)),
            minutes,
            form: serde_json::to_string(&fields).unwrap_or_else(|_| "[]".into()),
        }),
        (Err(error), _) | (_, Err(error)) => fail(error.into()),
    }
}
