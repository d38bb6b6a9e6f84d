//! The JSON API (`/api/...`): what the demo and the end-to-end tests drive the hub with.
//! Same session cookie as the pages; errors are `{"error": "..."}` with a 4xx.

use axum::extract::{Multipart, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use web_guard::ClientAddr;

use super::guard::{DataBatches, DataBusiness, DataFiles, DataRecordings};
use super::{blocking, cookie, limits, session_cookie, Admin, ApiError, AppState, Caller, Module, SESSION_COOKIE};
use crate::import::{import_xlsx, ImportError, ImportFileError, ParseOptions};
use crate::store::{
    CreateCategoryError, CreateProjectError, CreateSiteError, DispatchError, DispatchKind, DispatchRequest,
    EnrollmentCodeError, ImportReport, LoginError, NewProject, RetireError, SaveImportError,
};

impl From<LoginError> for ApiError {
    fn from(err: LoginError) -> Self {
        match err {
            LoginError::BadCredentials => ApiError::new(StatusCode::UNAUTHORIZED, err.to_string()),
            LoginError::Db(e) => e.into(),
        }
    }
}

impl From<CreateSiteError> for ApiError {
    fn from(err: CreateSiteError) -> Self {
        match err {
            CreateSiteError::EmptyName => ApiError::bad_request(err.to_string()),
            CreateSiteError::Duplicate(_) => ApiError::new(StatusCode::CONFLICT, err.to_string()),
            CreateSiteError::Db(e) => e.into(),
        }
    }
}

impl From<EnrollmentCodeError> for ApiError {
    fn from(err: EnrollmentCodeError) -> Self {
        match err {
            EnrollmentCodeError::UnknownSite(_) => ApiError::not_found(err.to_string()),
            EnrollmentCodeError::Db(e) => e.into(),
        }
    }
}

impl From<RetireError> for ApiError {
    fn from(err: RetireError) -> Self {
        match err {
            RetireError::UnknownSite(_) => ApiError::not_found(err.to_string()),
            RetireError::NoBox(_) => ApiError::new(StatusCode::CONFLICT, err.to_string()),
            RetireError::Db(e) => e.into(),
        }
    }
}

impl From<CreateCategoryError> for ApiError {
    fn from(err: CreateCategoryError) -> Self {
        match err {
            CreateCategoryError::EmptyName => ApiError::bad_request(err.to_string()),
            CreateCategoryError::Duplicate(_) => ApiError::new(StatusCode::CONFLICT, err.to_string()),
            CreateCategoryError::Db(e) => e.into(),
        }
    }
}

impl From<CreateProjectError> for ApiError {
    fn from(err: CreateProjectError) -> Self {
        match err {
            CreateProjectError::UnknownCategory(_) | CreateProjectError::UnknownProject(_) => ApiError::not_found(err.to_string()),
            CreateProjectError::Duplicate(_) => ApiError::new(StatusCode::CONFLICT, err.to_string()),
            CreateProjectError::EmptyName
            | CreateProjectError::InvalidField { .. }
            | CreateProjectError::BadTemplate(_)
            | CreateProjectError::InvalidSetting { .. } => ApiError::bad_request(err.to_string()),
            CreateProjectError::Db(e) => e.into(),
        }
    }
}

impl From<ImportError> for ApiError {
    fn from(err: ImportError) -> Self {
        match err {
            ImportError::NotXlsx { .. } => ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, err.to_string()),
            _ => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, err.to_string()),
        }
    }
}

impl From<SaveImportError> for ApiError {
    fn from(err: SaveImportError) -> Self {
        match err {
            SaveImportError::UnknownProject(_) => ApiError::not_found(err.to_string()),
            SaveImportError::Io { .. } => ApiError::internal(err),
            SaveImportError::Db(e) => e.into(),
        }
    }
}

impl From<DispatchError> for ApiError {
    fn from(err: DispatchError) -> Self {
        match err {
            DispatchError::UnknownFile(_) | DispatchError::UnknownSite(_) => ApiError::not_found(err.to_string()),
            DispatchError::OutsideScope(_) => ApiError::new(StatusCode::FORBIDDEN, err.to_string()),
            DispatchError::EmptyName
            | DispatchError::Priority(_)
            | DispatchError::NoSites
            | DispatchError::NoRows(_)
            | DispatchError::NotParticipating(_)
            | DispatchError::TooManyRows { .. }
            | DispatchError::BadPart { .. }
            | DispatchError::NoRules
            | DispatchError::NothingLeft => ApiError::bad_request(err.to_string()),
            DispatchError::Encode(_) => ApiError::internal(err),
            DispatchError::Db(e) => e.into(),
        }
    }
}

#[derive(Deserialize)]
pub struct LoginBody {
    username: String,
    password: String,
}

/// `POST /api/login`: throttled per (account, source address) and per source address; a
/// throttled attempt answers 429 with `Retry-After` without checking the password.
pub async fn login(State(state): State<AppState>, ClientAddr(source): ClientAddr, Json(body): Json<LoginBody>) -> Result<Response, ApiError> {
    limits::login(&body.username, &body.password)?;
    if let Err(wait) = state.throttle.attempt(&body.username, source) {
        return Ok(web_guard::throttled_json(wait));
    }
    let username = body.username.clone();
    let (token, account) = blocking(&state, move |store| store.login(&body.username, &body.password)).await??;
    state.throttle.succeeded(&username, source);
    Ok((
        [(header::SET_COOKIE, session_cookie(&token))],
        Json(json!({ "id": account.id, "username": account.username })),
    )
        .into_response())
}

pub async fn logout(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = cookie(&headers, SESSION_COOKIE).map(str::to_string) {
        blocking(&state, move |store| store.logout(&token)).await??;
    }
    Ok(([(header::SET_COOKIE, format!("{SESSION_COOKIE}=; Path=/; Max-Age=0"))], Json(json!({}))).into_response())
}

#[derive(Deserialize)]
pub struct NameBody {
    name: String,
}

pub async fn create_site(State(state): State<AppState>, _admin: Admin, Json(body): Json<NameBody>) -> Result<Json<Value>, ApiError> {
    limits::name(&body.name)?;
    let id = blocking(&state, move |store| store.create_site(&body.name)).await??;
    Ok(Json(json!({ "id": id })))
}

pub async fn list_sites(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let mut sites = blocking(&state, |store| store.list_sites()).await??;
    sites.retain(|s| caller.scope.site(s.id));
    Ok(Json(json!(sites)))
}

pub async fn enrollment_code(State(state): State<AppState>, admin: Admin, Path(id): Path<i64>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(mint_code(&state, &admin, id).await?)))
}

/// Mints a site's enrollment code: the one check both the API and the sites page make.
pub async fn mint_code(state: &AppState, admin: &Admin, id: i64) -> Result<crate::store::EnrollmentCode, ApiError> {
    if !admin.scope.site(id) {
        return Err(ApiError::not_found(format!("site {id} does not exist")));
    }
    Ok(blocking(state, move |store| store.create_enrollment_code(id)).await??)
}

/// Retires the box holding a site: its certificate no longer opens the link (a live
/// connection is closed) and another box may enroll with a new code.
pub async fn retire_site(State(state): State<AppState>, admin: Admin, Path(id): Path<i64>) -> Result<Json<Value>, ApiError> {
    let by = admin.account.username.clone();
    let retired = blocking(&state, move |store| store.retire_site_box(id, &by)).await??;
    Ok(Json(json!(retired)))
}

pub async fn create_category(State(state): State<AppState>, _admin: Admin, Json(body): Json<NameBody>) -> Result<Json<Value>, ApiError> {
    limits::name(&body.name)?;
    let id = blocking(&state, move |store| store.create_category(&body.name)).await??;
    Ok(Json(json!({ "id": id })))
}

pub async fn list_categories(State(state): State<AppState>, _caller: Caller) -> Result<Json<Value>, ApiError> {
    let categories = blocking(&state, |store| store.list_categories()).await??;
    Ok(Json(json!(categories)))
}

pub async fn create_project(State(state): State<AppState>, _admin: Admin, Json(body): Json<NewProject>) -> Result<Json<Value>, ApiError> {
    limits::project(&body)?;
    let id = blocking(&state, move |store| store.create_project(&body)).await??;
    Ok(Json(json!({ "id": id })))
}

pub async fn list_projects(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let mut projects = blocking(&state, |store| store.list_projects()).await??;
    projects.retain(|p| caller.scope.project(p.id));
    Ok(Json(json!(projects)))
}

/// The uploaded file's name and bytes from a multipart form's `file` field.
pub async fn read_upload(mut multipart: Multipart) -> Result<(String, Vec<u8>), ApiError> {
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("the upload is not a valid multipart form ({e}): send the file in a field named \"file\"")))?
    {
        if field.name() != Some("file") {
            continue;
        }
        let file_name = field.file_name().unwrap_or("upload.xlsx").to_string();
        let bytes = field
            .bytes()
            .await
            .map_err(|e| ApiError::bad_request(format!("the upload of {file_name:?} broke off ({e}): upload it again")))?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request(format!("{file_name:?} is empty: choose the xlsx file to import")));
        }
        return Ok((file_name, bytes.to_vec()));
    }
    Err(ApiError::bad_request("no file in the upload: send the xlsx in a multipart field named \"file\""))
}

/// Parses and stores an upload for `project_id`; the import report on success.
pub async fn import_upload(
    state: &AppState,
    project_id: i64,
    creator: String,
    file_name: String,
    bytes: Vec<u8>,
) -> Result<Result<(i64, ImportReport), ImportError>, ApiError> {
    blocking(state, move |store| -> Result<Result<(i64, ImportReport), ImportError>, ApiError> {
        let project = store
            .project(project_id)?
            .ok_or_else(|| ApiError::not_found(format!("sub-project {project_id} does not exist: choose an existing sub-project")))?;
        match import_xlsx(store, &project, &file_name, &bytes, &creator, &ParseOptions::default()) {
            Ok(done) => Ok(Ok(done)),
            Err(ImportFileError::Parse(err)) => Ok(Err(err)),
            Err(ImportFileError::Save(err)) => Err(err.into()),
        }
    })
    .await?
}

pub fn report_json(file_id: i64, report: &ImportReport) -> Value {
    let bad: Vec<Value> =
        report.bad.iter().map(|b| json!({ "row": b.row, "column": b.column, "reason": b.reason })).collect();
    json!({
        "file_id": file_id,
        "n_rows": report.n_rows,
        "n_good": report.n_good,
        "bad": bad,
        "phone_column": report.phone_column,
        "unmatched_fields": report.unmatched_fields,
        "columns": report.columns,
        "trailing_empty_rows": report.trailing_empty_rows,
        "header_warnings": report.header_warnings,
        "sheet": report.sheet,
        "warnings": report.warnings,
    })
}

pub async fn upload_file(
    State(state): State<AppState>,
    caller: Module<DataFiles>,
    Path(project_id): Path<i64>,
    multipart: Multipart,
) -> Result<Json<Value>, ApiError> {
    if !caller.scope.project(project_id) {
        return Err(ApiError::not_found(format!("sub-project {project_id} does not exist: choose an existing sub-project")));
    }
    let (file_name, bytes) = read_upload(multipart).await?;
    let (file_id, report) = import_upload(&state, project_id, caller.account.username.clone(), file_name, bytes).await??;
    Ok(Json(report_json(file_id, &report)))
}

pub async fn list_files(State(state): State<AppState>, caller: Module<DataFiles>) -> Result<Json<Value>, ApiError> {
    let mut files = blocking(&state, |store| store.list_files(None)).await??;
    files.retain(|f| caller.scope.project(f.project_id));
    Ok(Json(json!(files)))
}

pub async fn get_file(State(state): State<AppState>, caller: Module<DataFiles>, Path(id): Path<i64>) -> Result<Json<Value>, ApiError> {
    let (summary, report) = blocking(&state, move |store| store.file(id))
        .await??
        .filter(|(f, _)| caller.scope.project(f.project_id))
        .ok_or_else(|| ApiError::not_found(format!("file {id} does not exist")))?;
    Ok(Json(json!({ "file": summary, "report": report_json(id, &report) })))
}

fn yes() -> bool {
    true
}

/// `kind`: `shared` (default, with `site_ids`), `exclusive` (with `parts`) or `auto`.
#[derive(Deserialize)]
pub struct DispatchBody {
    #[serde(default)]
    name: String,
    priority: i64,
    #[serde(default)]
    site_ids: Vec<i64>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    parts: Vec<crate::store::ExclusivePart>,
    #[serde(default = "yes")]
    update_existing: bool,
    #[serde(default)]
    description: String,
}

pub async fn dispatch(
    State(state): State<AppState>,
    caller: Module<DataFiles>,
    Path(file_id): Path<i64>,
    Json(body): Json<DispatchBody>,
) -> Result<Json<Value>, ApiError> {
    limits::dispatch(&body.name, &body.description, &body.parts)?;
    let scope = caller.scope.clone();
    let kind = match body.kind.as_deref().unwrap_or("shared") {
        "shared" => DispatchKind::Shared,
        "exclusive" => DispatchKind::Exclusive(body.parts),
        "auto" => DispatchKind::Auto,
        other => return Err(ApiError::bad_request(format!("kind {other:?} is not known: use shared, exclusive or auto"))),
    };
    let request = DispatchRequest {
        file_id,
        name: body.name,
        priority: body.priority,
        site_ids: body.site_ids,
        creator: scope.account.username.clone(),
        kind,
        update_existing: body.update_existing,
        description: body.description,
    };
    let outcome = blocking(&state, move |store| store.dispatch(&request, &scope)).await??;
    Ok(Json(json!({
        "batch_ids": outcome.batch_ids,
        "removed": outcome.removed,
        "attributed": outcome.attributed,
        "not_found": outcome.not_found,
        "message": format!("归属数量：{}；未找到归属数量：{}", outcome.attributed, outcome.not_found),
    })))
}

pub async fn list_batches(State(state): State<AppState>, caller: Module<DataBatches>) -> Result<Json<Value>, ApiError> {
    let scope = caller.scope.clone();
    let batches = blocking(&state, move |store| store.list_batches_scoped(&scope)).await??;
    let out: Vec<Value> = batches
        .iter()
        .map(|b| {
            json!({
                "id": b.id,
                "name": b.name,
                "project_id": b.project_id,
                "site_id": b.site_id,
                "site_name": b.site_name,
                "numbers": b.numbers,
                "dialed": b.dialed,
                "connected": b.connected,
                "not_connected": b.not_connected(),
                "agent_missed": b.agent_missed,
                "abandoned": b.abandoned,
                // Abandoned over answered calls, as regulators count it; null before any answer.
                "abandon_rate": (b.connected > 0).then(|| b.abandoned as f64 / b.connected as f64),
                "agent_connected": b.agent_connected,
                "priority": b.priority,
                "creator": b.creator,
                "created_at": b.created_at,
                "project_name": b.project_name,
                "description": b.description,
                "kind": b.kind,
                "ended": b.ended,
            })
        })
        .collect();
    Ok(Json(Value::Array(out)))
}

pub async fn batch_records(State(state): State<AppState>, caller: Module<DataBusiness>, Path(id): Path<i64>) -> Result<Json<Value>, ApiError> {
    let scope = &caller.scope;
    let (batch, records) = blocking(&state, move |store| -> Result<_, crate::store::DbError> {
        Ok((store.batch(id)?, store.batch_records(id)?))
    })
    .await??;
    if !batch.is_some_and(|b| scope.project_site(b.project_id, b.site_id)) {
        return Err(ApiError::not_found(format!("batch {id} does not exist")));
    }
    let out: Vec<Value> = records
        .iter()
        .map(|r| {
            let values: serde_json::Map<String, Value> =
                r.values.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
            json!({
                "attempt_id": r.attempt_id,
                "site_id": r.site_id,
                "row_id": r.row_id,
                "phone": r.phone,
                "agent": r.agent,
                "saved_at": r.saved_at,
                "values": values,
            })
        })
        .collect();
    Ok(Json(Value::Array(out)))
}

/// `POST /api/sites/{id}/recordings/{sha256}/fetch`: HQ holds it (`held`), or the online
/// site was asked to upload it now (`requested`), or the site is offline and the recording
/// comes in its turn once it reconnects (`site_offline`).
pub async fn fetch_recording(
    State(state): State<AppState>,
    caller: Module<DataRecordings>,
    Path((site_id, sha256)): Path<(i64, String)>,
) -> Result<Json<Value>, ApiError> {
    if !caller.scope.site(site_id) {
        return Err(ApiError::not_found(format!("site {site_id} does not exist")));
    }
    let requests = state.recordings.clone();
    let fetched = blocking(&state, move |store| store.request_recording(&requests, site_id, &sha256))
        .await?
        .map_err(recording_error)?;
    let answer = match fetched {
        crate::store::RecordingFetch::Held(_) => "held",
        crate::store::RecordingFetch::Requested => "requested",
        crate::store::RecordingFetch::SiteOffline => "site_offline",
    };
    Ok(Json(json!({ "state": answer })))
}

/// `GET /api/sites/{id}/recordings/{sha256}`: the WAV file, once HQ holds it.
pub async fn download_recording(
    State(state): State<AppState>,
    caller: Module<DataRecordings>,
    Path((site_id, sha256)): Path<(i64, String)>,
) -> Result<axum::response::Response, ApiError> {
    if !caller.scope.site(site_id) {
        return Err(ApiError::not_found(format!("site {site_id} does not exist")));
    }
    let name = format!("{sha256}.wav");
    let path = blocking(&state, move |store| store.recording_path(site_id, &sha256)).await?.map_err(recording_error)?;
    let Some(path) = path else {
        return Err(ApiError::not_found(format!(
            "HQ does not hold recording {name} yet; ask the site for it with POST …/fetch"
        )));
    };
    let bytes = tokio::fs::read(&path).await.map_err(ApiError::internal)?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "audio/wav".to_owned()),
            (axum::http::header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        bytes,
    )
        .into_response())
}

fn recording_error(error: crate::store::RecordingRequestError) -> ApiError {
    match error {
        crate::store::RecordingRequestError::BadHash(_) => ApiError::bad_request(error.to_string()),
        crate::store::RecordingRequestError::Io(_) => ApiError::internal(error),
    }
}

pub async fn list_alarms(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let scope = &caller.scope;
    let mut alarms = blocking(&state, |store| store.list_alarms()).await??;
    alarms.retain(|a| a.site_id.is_none_or(|site| scope.site(site)) && (scope.is_admin() || a.site_id.is_some()));
    Ok(Json(json!(alarms)))
}
