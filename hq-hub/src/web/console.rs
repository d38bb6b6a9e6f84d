//! The console's JSON API beyond the walking skeleton: project set-up (definition, sites,
//! admins, attribution), background imports with progress, file downloads and the bad-rows
//! sheet, the data filter, batch control, accounts and roles, black / white lists.
//!
//! Every handler takes its guard ([`Admin`], [`Module`] or [`Caller`]); the route table
//! decides the 403 for a module the role lacks, and the handler answers 404 for anything
//! outside the caller's data permission (as if it did not exist).

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Multipart, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::api::read_upload;
use super::guard::{AccountsAccounts, AccountsGroups, AccountsRoles, CtiLists, DataBatches, DataFiles, DataSettings};
use super::{blocking, limits, Admin, ApiError, AppState, Caller, Module};
use crate::import::{import_xlsx, parse_xlsx_with, ImportFileError, ParseOptions};
use crate::store::{
    AccessError, AttributionError, AttributionRule, BatchControlError, FilterError, FilterSettings, ListError, ListKind,
    NewAccount, OneClickAction, ProjectAccessError, ProjectAdmin, ProjectEdit, Scope, Store, MODULES,
};

impl From<AccessError> for ApiError {
    fn from(err: AccessError) -> Self {
        match err {
            AccessError::Duplicate { .. } => ApiError::new(StatusCode::CONFLICT, err.to_string()),
            AccessError::UnknownRole(_) | AccessError::UnknownGroup(_) | AccessError::UnknownSite(_) => ApiError::not_found(err.to_string()),
            AccessError::Hash(_) => ApiError::internal(err),
            AccessError::Db(e) => e.into(),
            _ => ApiError::bad_request(err.to_string()),
        }
    }
}

impl From<ProjectAccessError> for ApiError {
    fn from(err: ProjectAccessError) -> Self {
        match err {
            ProjectAccessError::UnknownProject(_) | ProjectAccessError::UnknownSite(_) | ProjectAccessError::UnknownAccount(_) => {
                ApiError::not_found(err.to_string())
            }
            ProjectAccessError::Encode(_) => ApiError::internal(err),
            ProjectAccessError::Db(e) => e.into(),
            _ => ApiError::bad_request(err.to_string()),
        }
    }
}

impl From<AttributionError> for ApiError {
    fn from(err: AttributionError) -> Self {
        match err {
            AttributionError::UnknownProject(_) => ApiError::not_found(err.to_string()),
            AttributionError::Encode(_) => ApiError::internal(err),
            AttributionError::Db(e) => e.into(),
            _ => ApiError::bad_request(err.to_string()),
        }
    }
}

impl From<BatchControlError> for ApiError {
    fn from(err: BatchControlError) -> Self {
        match err {
            BatchControlError::UnknownBatch(_) | BatchControlError::UnknownCategory(_) => ApiError::not_found(err.to_string()),
            BatchControlError::Priority(_) => ApiError::bad_request(err.to_string()),
            BatchControlError::Ended(_) => ApiError::new(StatusCode::CONFLICT, err.to_string()),
            BatchControlError::Encode(_) => ApiError::internal(err),
            BatchControlError::Db(e) => e.into(),
        }
    }
}

impl From<FilterError> for ApiError {
    fn from(err: FilterError) -> Self {
        match err {
            FilterError::UnknownFile(_) | FilterError::UnknownProject(_) => ApiError::not_found(err.to_string()),
            FilterError::Write(_) | FilterError::Save(_) => ApiError::internal(err),
            FilterError::Db(e) => e.into(),
            _ => ApiError::bad_request(err.to_string()),
        }
    }
}

impl From<ListError> for ApiError {
    fn from(err: ListError) -> Self {
        match err {
            ListError::BadNumber { .. } => ApiError::bad_request(err.to_string()),
            ListError::Db(e) => e.into(),
        }
    }
}

/// A visible project, or 404.
fn visible_project(scope: &Scope, id: i64) -> Result<(), ApiError> {
    if scope.project(id) { Ok(()) } else { Err(ApiError::not_found(format!("sub-project {id} does not exist"))) }
}

// ---- accounts, roles, groups ----

pub async fn list_modules(_caller: Caller) -> Json<Value> {
    Json(Value::Array(MODULES.iter().map(|(key, zh, en)| json!({ "key": key, "zh": zh, "en": en })).collect()))
}

#[derive(Deserialize)]
pub struct RoleBody {
    name: String,
    #[serde(default)]
    modules: Vec<String>,
}

pub async fn create_role(State(state): State<AppState>, _admin: Admin, Json(body): Json<RoleBody>) -> Result<Json<Value>, ApiError> {
    limits::name(&body.name)?;
    let id = blocking(&state, move |store| store.create_role(&body.name, &body.modules)).await??;
    Ok(Json(json!({ "id": id })))
}

pub async fn list_roles(State(state): State<AppState>, _caller: Module<AccountsRoles>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(blocking(&state, |store| store.list_roles()).await??)))
}

#[derive(Deserialize)]
pub struct NameBody {
    name: String,
}

pub async fn create_group(State(state): State<AppState>, _admin: Admin, Json(body): Json<NameBody>) -> Result<Json<Value>, ApiError> {
    limits::name(&body.name)?;
    let id = blocking(&state, move |store| store.create_group(&body.name)).await??;
    Ok(Json(json!({ "id": id })))
}

pub async fn list_groups(State(state): State<AppState>, _caller: Module<AccountsGroups>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(blocking(&state, |store| store.list_groups()).await??)))
}

pub async fn create_account(State(state): State<AppState>, _admin: Admin, Json(body): Json<NewAccount>) -> Result<Json<Value>, ApiError> {
    limits::account(&body)?;
    let id = blocking(&state, move |store| store.create_account(&body)).await??;
    Ok(Json(json!({ "id": id })))
}

pub async fn list_accounts(State(state): State<AppState>, caller: Module<AccountsAccounts>) -> Result<Json<Value>, ApiError> {
    let scope = &caller.scope;
    let mut accounts = blocking(&state, |store| store.list_accounts()).await??;
    // A sub-admin sees only accounts whose data scope lies inside its own.
    if !scope.is_admin() {
        accounts.retain(|a| a.site_ids.as_ref().is_some_and(|sites| sites.iter().all(|s| scope.site(*s))));
    }
    Ok(Json(json!(accounts)))
}

// ---- projects ----

pub async fn get_project(State(state): State<AppState>, Caller { scope, .. }: Caller, Path(id): Path<i64>) -> Result<Json<Value>, ApiError> {
    visible_project(&scope, id)?;
    let mut project = blocking(&state, move |store| store.project(id))
        .await??
        .ok_or_else(|| ApiError::not_found(format!("sub-project {id} does not exist")))?;
    project.site_ids.retain(|s| scope.site(*s));
    Ok(Json(json!(project)))
}

pub async fn update_project(
    State(state): State<AppState>,
    caller: Module<DataSettings>,
    Path(id): Path<i64>,
    Json(body): Json<ProjectEdit>,
) -> Result<Json<Value>, ApiError> {
    visible_project(&caller.scope, id)?;
    limits::project_edit(&body)?;
    let sites = blocking(&state, move |store| store.update_project(id, &body)).await??;
    let version = blocking(&state, move |store| store.project(id)).await??.map(|p| p.version).unwrap_or_default();
    Ok(Json(json!({ "id": id, "version": version, "sent_to_sites": sites })))
}

#[derive(Deserialize)]
pub struct SitesBody {
    site_ids: Vec<i64>,
}

pub async fn set_project_sites(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<i64>,
    Json(body): Json<SitesBody>,
) -> Result<Json<Value>, ApiError> {
    blocking(&state, move |store| store.set_project_sites(id, &body.site_ids)).await??;
    Ok(Json(json!({ "id": id })))
}

pub async fn get_project_admins(State(state): State<AppState>, Caller { scope, .. }: Caller, Path(id): Path<i64>) -> Result<Json<Value>, ApiError> {
    visible_project(&scope, id)?;
    let mut admins = blocking(&state, move |store| store.project_admins(id)).await??;
    if !scope.is_admin() {
        admins.retain(|a| a.account_id == scope.account.id);
    }
    Ok(Json(json!(admins)))
}

#[derive(Deserialize)]
pub struct AdminsBody {
    admins: Vec<ProjectAdmin>,
}

pub async fn set_project_admins(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<i64>,
    Json(body): Json<AdminsBody>,
) -> Result<Json<Value>, ApiError> {
    blocking(&state, move |store| store.set_project_admins(id, &body.admins)).await??;
    Ok(Json(json!({ "id": id })))
}

pub async fn get_attribution(State(state): State<AppState>, Caller { scope, .. }: Caller, Path(id): Path<i64>) -> Result<Json<Value>, ApiError> {
    visible_project(&scope, id)?;
    let mut rules = blocking(&state, move |store| store.attribution_rules(id)).await??;
    rules.retain(|r| scope.project_site(id, r.site_id));
    Ok(Json(json!(rules)))
}

#[derive(Deserialize)]
pub struct RulesBody {
    rules: Vec<AttributionRule>,
}

pub async fn set_attribution(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<i64>,
    Json(body): Json<RulesBody>,
) -> Result<Json<Value>, ApiError> {
    limits::rules(&body.rules)?;
    let version = blocking(&state, move |store| store.set_attribution_rules(id, &body.rules)).await??;
    Ok(Json(json!({ "id": id, "version": version })))
}

// ---- background imports ----

/// A background import's state, as the page polls it.
#[derive(Debug, Clone, Serialize)]
pub struct ImportJob {
    /// `running`, `done` or `failed`.
    pub state: &'static str,
    pub rows_done: u64,
    pub rows_total: u64,
    pub file_id: Option<i64>,
    pub error: Option<String>,
    pub error_zh: Option<String>,
    /// Who started it (only they may poll it).
    #[serde(skip)]
    pub account_id: i64,
}

static NEXT_JOB: AtomicU64 = AtomicU64::new(1);

fn set_job(state: &AppState, id: u64, update: impl FnOnce(&mut ImportJob)) {
    let mut jobs = state.jobs.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(job) = jobs.get_mut(&id) {
        update(job);
    }
}

/// Starts importing an upload in the background; answers at once with the job id to poll
/// at `GET /api/imports/{job}`.
pub async fn start_import(
    State(state): State<AppState>,
    Module(Caller { scope, .. }, _): Module<DataFiles>,
    Path(project_id): Path<i64>,
    multipart: Multipart,
) -> Result<Json<Value>, ApiError> {
    visible_project(&scope, project_id)?;
    let (file_name, bytes) = read_upload(multipart).await?;
    let project = blocking(&state, move |store| store.project(project_id))
        .await??
        .ok_or_else(|| ApiError::not_found(format!("sub-project {project_id} does not exist")))?;
    let id = NEXT_JOB.fetch_add(1, Ordering::Relaxed);
    {
        let mut jobs = state.jobs.lock().unwrap_or_else(|p| p.into_inner());
        // Finished jobs older than the newest 200 are forgotten.
        if jobs.len() > 200 {
            let mut done: Vec<u64> = jobs.iter().filter(|(_, j)| j.state != "running").map(|(k, _)| *k).collect();
            done.sort_unstable();
            for key in done.iter().take(jobs.len() - 200) {
                jobs.remove(key);
            }
        }
        jobs.insert(id, ImportJob { state: "running", rows_done: 0, rows_total: 0, file_id: None, error: None, error_zh: None, account_id: scope.account.id });
    }
    let worker_state = state.clone();
    let creator = scope.account.username.clone();
    tokio::task::spawn_blocking(move || {
        let progress_state = worker_state.clone();
        let progress = move |done: u64, total: u64| set_job(&progress_state, id, |j| {
            j.rows_done = done;
            j.rows_total = total;
        });
        let options = ParseOptions { phone_column: None, progress: Some(&progress), ..ParseOptions::default() };
        let result = import_xlsx(&worker_state.store, &project, &file_name, &bytes, &creator, &options)
            .map_err(|e: ImportFileError| (e.to_string(), e.zh()));
        set_job(&worker_state, id, |j| match result {
            Ok((file_id, _)) => {
                j.state = "done";
                j.file_id = Some(file_id);
                j.rows_done = j.rows_total;
            }
            Err((en, zh)) => {
                j.state = "failed";
                j.error = Some(en);
                j.error_zh = Some(zh);
            }
        });
    });
    Ok(Json(json!({ "job_id": id })))
}

pub async fn import_progress(State(state): State<AppState>, Module(Caller { scope, .. }, _): Module<DataFiles>, Path(job): Path<u64>) -> Result<Json<Value>, ApiError> {
    let jobs = state.jobs.lock().unwrap_or_else(|p| p.into_inner());
    match jobs.get(&job) {
        Some(found) if found.account_id == scope.account.id || scope.is_admin() => Ok(Json(json!(found))),
        _ => Err(ApiError::not_found(format!("import {job} does not exist"))),
    }
}

// ---- files ----

/// A visible file's summary and report, or 404.
fn visible_file(store: &Store, scope: &Scope, id: i64) -> Result<(crate::store::FileSummary, crate::store::ImportReport), ApiError> {
    store
        .file(id)?
        .filter(|(f, _)| scope.project(f.project_id))
        .ok_or_else(|| ApiError::not_found(format!("file {id} does not exist")))
}

fn xlsx_response(name: &str, bytes: Vec<u8>) -> Response {
    // RFC 5987 form so that Chinese names survive.
    let encoded: String = name
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    (
        [
            (header::CONTENT_TYPE, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"download.xlsx\"; filename*=UTF-8''{encoded}")),
        ],
        bytes,
    )
        .into_response()
}

/// The bad rows of an import as an xlsx (行号 / 列 / 原因).
pub async fn bad_rows_sheet(State(state): State<AppState>, Module(Caller { scope, .. }, _): Module<DataFiles>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    let (summary, report) = blocking(&state, move |store| visible_file(store, &scope, id)).await??;
    let bytes = crate::export::bad_rows_xlsx(&report.bad).map_err(ApiError::internal)?;
    let name = format!("{}_错误行.xlsx", summary.file_name.trim_end_matches(".xlsx"));
    Ok(xlsx_response(&name, bytes))
}

/// The stored file (for a filter result: kept rows and the removal reasons).
pub async fn download_file(State(state): State<AppState>, Module(Caller { scope, .. }, _): Module<DataFiles>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    let (summary, bytes) = blocking(&state, move |store| -> Result<_, ApiError> {
        let (summary, _) = visible_file(store, &scope, id)?;
        let bytes = store.file_bytes(id).map_err(ApiError::internal)?.ok_or_else(|| ApiError::not_found(format!("file {id} does not exist")))?;
        Ok((summary, bytes))
    })
    .await??;
    let name = if summary.file_name.to_lowercase().ends_with(".xlsx") { summary.file_name } else { format!("{}.xlsx", summary.file_name) };
    Ok(xlsx_response(&name, bytes))
}

pub async fn delete_file(State(state): State<AppState>, Module(Caller { scope, .. }, _): Module<DataFiles>, Path(id): Path<i64>) -> Result<Json<Value>, ApiError> {
    blocking(&state, move |store| -> Result<(), ApiError> {
        visible_file(store, &scope, id)?;
        store.delete_file(id)?;
        Ok(())
    })
    .await??;
    Ok(Json(json!({ "id": id, "deleted": true })))
}

#[derive(Deserialize)]
pub struct RemarkBody {
    remark: String,
}

pub async fn set_remark(
    State(state): State<AppState>,
    Module(Caller { scope, .. }, _): Module<DataFiles>,
    Path(id): Path<i64>,
    Json(body): Json<RemarkBody>,
) -> Result<Json<Value>, ApiError> {
    limits::remark(&body.remark)?;
    blocking(&state, move |store| -> Result<(), ApiError> {
        visible_file(store, &scope, id)?;
        store.set_file_remark(id, &body.remark)?;
        Ok(())
    })
    .await??;
    Ok(Json(json!({ "id": id })))
}

// ---- data filter ----

pub async fn filter_settings(State(state): State<AppState>, Module(Caller { scope, .. }, _): Module<DataFiles>) -> Result<Json<Value>, ApiError> {
    let id = scope.account.id;
    Ok(Json(json!(blocking(&state, move |store| store.filter_settings(id)).await??)))
}

/// The filter's settings plus the phone column (1-based; absent = auto-detected).
#[derive(Deserialize)]
pub struct FilterBody {
    #[serde(flatten)]
    settings: FilterSettings,
    #[serde(default)]
    phone_column: Option<usize>,
}

pub async fn filter_file(
    State(state): State<AppState>,
    Module(Caller { scope, .. }, _): Module<DataFiles>,
    Path(id): Path<i64>,
    Json(body): Json<FilterBody>,
) -> Result<Json<Value>, ApiError> {
    if body.phone_column == Some(0) {
        return Err(ApiError::bad_request("phone_column counts from 1 (column A = 1)"));
    }
    let outcome = blocking(&state, move |store| -> Result<_, ApiError> {
        let (summary, report) = visible_file(store, &scope, id)?;
        let (rows, phone_header) = match body.phone_column {
            None => (store.file_rows(id)?, report.phone_column),
            Some(column) => {
                // Re-read the stored sheet with the chosen phone column.
                let project = store.project(summary.project_id)?.ok_or_else(|| ApiError::not_found("the file's sub-project is gone"))?;
                let bytes = store.file_bytes(id).map_err(ApiError::internal)?.ok_or_else(|| ApiError::not_found(format!("file {id} does not exist")))?;
                let name = if summary.file_name.to_lowercase().ends_with(".xlsx") { summary.file_name.clone() } else { format!("{}.xlsx", summary.file_name) };
                let options = ParseOptions { phone_column: Some(column - 1), progress: None, token_length: store.project_token_length(project.id)? };
                let parsed = parse_xlsx_with(&name, &bytes, &project, &options).map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
                (parsed.rows, parsed.report.phone_column)
            }
        };
        Ok(crate::filter::run_filter(store, id, &rows, &phone_header, &body.settings, &scope)?)
    })
    .await??;
    Ok(Json(json!(outcome)))
}

// ---- batches ----

#[derive(Deserialize)]
pub struct PriorityBody {
    priority: i64,
}

pub async fn set_priority(State(state): State<AppState>, Module(Caller { scope, .. }, _): Module<DataBatches>, Path(id): Path<i64>, Json(body): Json<PriorityBody>) -> Result<Json<Value>, ApiError> {
    let version = blocking(&state, move |store| store.set_priority(id, body.priority, &scope)).await??;
    Ok(Json(json!({ "id": id, "priority": body.priority, "version": version })))
}

pub async fn delete_batch(State(state): State<AppState>, Module(Caller { scope, .. }, _): Module<DataBatches>, Path(id): Path<i64>) -> Result<Json<Value>, ApiError> {
    blocking(&state, move |store| store.delete_batch(id, &scope)).await??;
    Ok(Json(json!({ "id": id, "deleted": true })))
}

pub async fn batch_numbers(State(state): State<AppState>, Module(Caller { scope, .. }, _): Module<DataBatches>, Path(id): Path<i64>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(blocking(&state, move |store| store.batch_numbers(id, &scope)).await??)))
}

#[derive(Deserialize)]
pub struct OneClickBody {
    action: OneClickAction,
    #[serde(default)]
    category_id: Option<i64>,
}

pub async fn one_click(State(state): State<AppState>, Module(Caller { scope, .. }, _): Module<DataBatches>, Json(body): Json<OneClickBody>) -> Result<Json<Value>, ApiError> {
    let changed = blocking(&state, move |store| store.one_click(body.action, body.category_id, &scope)).await??;
    Ok(Json(json!({ "changed": changed })))
}

// ---- black / white lists ----

pub(super) fn list_kind(text: &str) -> Result<ListKind, ApiError> {
    match text {
        "black" => Ok(ListKind::Black),
        "white" => Ok(ListKind::White),
        other => Err(ApiError::not_found(format!("list {other:?} does not exist: use black or white"))),
    }
}

pub async fn list_numbers(State(state): State<AppState>, _caller: Module<CtiLists>, Path(list): Path<String>) -> Result<Json<Value>, ApiError> {
    let kind = list_kind(&list)?;
    Ok(Json(json!(blocking(&state, move |store| store.list_numbers(kind)).await??)))
}

#[derive(Deserialize)]
pub struct NumbersBody {
    /// One number per element; a single element may also hold several lines.
    phones: Vec<String>,
    #[serde(default)]
    note: String,
}

pub async fn add_numbers(
    State(state): State<AppState>,
    caller: Module<CtiLists>,
    Path(list): Path<String>,
    Json(body): Json<NumbersBody>,
) -> Result<Json<Value>, ApiError> {
    let kind = list_kind(&list)?;
    limits::note(&body.note)?;
    let creator = caller.account.username.clone();
    let phones: Vec<String> = body.phones.iter().flat_map(|p| p.lines()).map(str::to_string).collect();
    let added = blocking(&state, move |store| store.add_to_list(kind, &phones, &body.note, &creator)).await??;
    Ok(Json(json!({ "added": added })))
}

#[derive(Deserialize)]
pub struct PhoneBody {
    phone: String,
}

pub async fn remove_number(State(state): State<AppState>, _caller: Module<CtiLists>, Json(body): Json<PhoneBody>) -> Result<Json<Value>, ApiError> {
    let removed = blocking(&state, move |store| store.remove_from_lists(&body.phone)).await??;
    Ok(Json(json!({ "removed": removed })))
}
