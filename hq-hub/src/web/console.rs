//! The console's JSON API beyond the walking skeleton: project set-up (definition, sites,
//! admins, attribution), background imports with progress, file downloads and the bad-rows
//! sheet, the data filter, batch control, accounts and roles, black / white lists.
//!
//! Every handler takes its guard ([`Admin`], [`Module`] or [`Caller`]); the route table
//! decides the 403 for a module the role lacks, and the handler answers 404 for anything
//! outside the caller's data permission (as if it did not exist).
//!
//! Each handler carries its `#[utoipa::path]`; see [`super::openapi`].

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::api::{read_upload, FileBytes, IdReply, NameBody, UploadForm};
use super::extract::{ApiJson, ApiMultipart, ApiPath};
use super::guard::{AccountsAccounts, AccountsGroups, AccountsRoles, CtiLists, DataBatches, DataFiles, DataSettings};
use super::{blocking, limits, Admin, ApiError, AppState, Caller, ErrorBody, Module};
use crate::import::{import_xlsx, parse_xlsx_with, ImportFileError, ParseOptions};
use crate::store::{
    AccessError, AccountView, AttributionError, AttributionRule, BatchControlError, BatchNumber, FilterError, FilterOutcome,
    FilterSettings, Group, ListError, ListKind, ListedNumber, NewAccount, OneClickAction, Project, ProjectAccessError,
    ProjectAdmin, ProjectEdit, Role, Scope, Store, MODULES,
};

/// The xlsx content type of downloads.
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

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

/// A permission module of the module tree, with its names.
#[derive(Serialize, ToSchema)]
pub struct ModuleInfo {
    /// The key roles list (e.g. `data.files`).
    pub key: &'static str,
    pub zh: &'static str,
    pub en: &'static str,
}

/// `GET /api/modules`: the permission module tree roles choose from.
#[utoipa::path(get, path = "/api/modules", tag = "accounts",
    responses((status = 200, description = "Every module", body = Vec<ModuleInfo>)))]
pub async fn list_modules(_caller: Caller) -> Json<Vec<ModuleInfo>> {
    Json(MODULES.iter().map(|&(key, zh, en)| ModuleInfo { key, zh, en }).collect())
}

/// A new role: its name and the module keys it grants.
#[derive(Deserialize, ToSchema)]
pub struct RoleBody {
    /// At most 100 characters.
    name: String,
    /// Keys from `GET /api/modules`.
    #[serde(default)]
    modules: Vec<String>,
}

/// `POST /api/roles` (admin).
#[utoipa::path(post, path = "/api/roles", tag = "accounts", request_body = RoleBody,
    responses((status = 200, description = "Created", body = IdReply),
              (status = 400, description = "The name is empty or too long, or a module key is unknown", body = ErrorBody),
              (status = 409, description = "A role of that name exists", body = ErrorBody)))]
pub async fn create_role(State(state): State<AppState>, _admin: Admin, ApiJson(body): ApiJson<RoleBody>) -> Result<Json<IdReply>, ApiError> {
    limits::name(&body.name)?;
    let id = blocking(&state, move |store| store.create_role(&body.name, &body.modules)).await??;
    Ok(Json(IdReply { id }))
}

/// `GET /api/roles`.
#[utoipa::path(get, path = "/api/roles", tag = "accounts",
    responses((status = 200, description = "Every role with its modules", body = Vec<Role>)))]
pub async fn list_roles(State(state): State<AppState>, _caller: Module<AccountsRoles>) -> Result<Json<Vec<Role>>, ApiError> {
    Ok(Json(blocking(&state, |store| store.list_roles()).await??))
}

/// `POST /api/groups` (admin): a group (department).
#[utoipa::path(post, path = "/api/groups", tag = "accounts", request_body = NameBody,
    responses((status = 200, description = "Created", body = IdReply),
              (status = 400, description = "The name is empty or too long", body = ErrorBody),
              (status = 409, description = "A group of that name exists", body = ErrorBody)))]
pub async fn create_group(State(state): State<AppState>, _admin: Admin, ApiJson(body): ApiJson<NameBody>) -> Result<Json<IdReply>, ApiError> {
    limits::name(&body.name)?;
    let id = blocking(&state, move |store| store.create_group(&body.name)).await??;
    Ok(Json(IdReply { id }))
}

/// `GET /api/groups`.
#[utoipa::path(get, path = "/api/groups", tag = "accounts",
    responses((status = 200, description = "Every group", body = Vec<Group>)))]
pub async fn list_groups(State(state): State<AppState>, _caller: Module<AccountsGroups>) -> Result<Json<Vec<Group>>, ApiError> {
    Ok(Json(blocking(&state, |store| store.list_groups()).await??))
}

/// `POST /api/accounts` (admin): a sub-admin account with its role, group and data scope.
#[utoipa::path(post, path = "/api/accounts", tag = "accounts", request_body = NewAccount,
    responses((status = 200, description = "Created", body = IdReply),
              (status = 400, description = "A field is not valid (named in the message)", body = ErrorBody),
              (status = 404, description = "No such role, group or site", body = ErrorBody),
              (status = 409, description = "The username is taken", body = ErrorBody)))]
pub async fn create_account(State(state): State<AppState>, _admin: Admin, ApiJson(body): ApiJson<NewAccount>) -> Result<Json<IdReply>, ApiError> {
    limits::account(&body)?;
    let id = blocking(&state, move |store| store.create_account(&body)).await??;
    Ok(Json(IdReply { id }))
}

/// `GET /api/accounts`: a sub-admin sees only accounts whose data scope lies inside its own.
#[utoipa::path(get, path = "/api/accounts", tag = "accounts",
    responses((status = 200, description = "Accounts", body = Vec<AccountView>)))]
pub async fn list_accounts(State(state): State<AppState>, caller: Module<AccountsAccounts>) -> Result<Json<Vec<AccountView>>, ApiError> {
    let scope = &caller.scope;
    let mut accounts = blocking(&state, |store| store.list_accounts()).await??;
    // A sub-admin sees only accounts whose data scope lies inside its own.
    if !scope.is_admin() {
        accounts.retain(|a| a.site_ids.as_ref().is_some_and(|sites| sites.iter().all(|s| scope.site(*s))));
    }
    Ok(Json(accounts))
}

// ---- projects ----

/// `GET /api/projects/{id}`: one sub-project's definition (participating sites limited to
/// the caller's).
#[utoipa::path(get, path = "/api/projects/{id}", tag = "projects",
    params(("id" = i64, Path, description = "The sub-project")),
    responses((status = 200, description = "The definition", body = Project),
              (status = 404, description = "No such sub-project (or not the caller's)", body = ErrorBody)))]
pub async fn get_project(State(state): State<AppState>, Caller { scope, .. }: Caller, ApiPath(id): ApiPath<i64>) -> Result<Json<Project>, ApiError> {
    visible_project(&scope, id)?;
    let mut project = blocking(&state, move |store| store.project(id))
        .await??
        .ok_or_else(|| ApiError::not_found(format!("sub-project {id} does not exist")))?;
    project.site_ids.retain(|s| scope.site(*s));
    Ok(Json(project))
}

/// A new version of a sub-project's definition and the sites it was sent to.
#[derive(Serialize, ToSchema)]
pub struct VersionReply {
    pub id: i64,
    pub version: i64,
    /// Participating sites the new version goes down to.
    pub sent_to_sites: Vec<i64>,
}

/// `PUT /api/projects/{id}`: replaces the definition; a new version goes to every
/// participating site.
#[utoipa::path(put, path = "/api/projects/{id}", tag = "projects", request_body = ProjectEdit,
    params(("id" = i64, Path, description = "The sub-project")),
    responses((status = 200, description = "Replaced", body = VersionReply),
              (status = 400, description = "A name, field or setting is not valid (named in the message)", body = ErrorBody),
              (status = 404, description = "No such sub-project (or not the caller's)", body = ErrorBody),
              (status = 409, description = "Another sub-project of the category has that name", body = ErrorBody)))]
pub async fn update_project(
    State(state): State<AppState>,
    caller: Module<DataSettings>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<ProjectEdit>,
) -> Result<Json<VersionReply>, ApiError> {
    visible_project(&caller.scope, id)?;
    limits::project_edit(&body)?;
    let sites = blocking(&state, move |store| store.update_project(id, &body)).await??;
    let version = blocking(&state, move |store| store.project(id)).await??.map(|p| p.version).unwrap_or_default();
    Ok(Json(VersionReply { id, version, sent_to_sites: sites }))
}

/// Step 1: the participating sites.
#[derive(Deserialize, ToSchema)]
pub struct SitesBody {
    site_ids: Vec<i64>,
}

/// `PUT /api/projects/{id}/sites` (admin): the participating sites (参与职场).
#[utoipa::path(put, path = "/api/projects/{id}/sites", tag = "projects", request_body = SitesBody,
    params(("id" = i64, Path, description = "The sub-project")),
    responses((status = 200, description = "Saved", body = IdReply),
              (status = 400, description = "The list is not valid (why is in the message)", body = ErrorBody),
              (status = 404, description = "No such sub-project or site", body = ErrorBody)))]
pub async fn set_project_sites(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<SitesBody>,
) -> Result<Json<IdReply>, ApiError> {
    blocking(&state, move |store| store.set_project_sites(id, &body.site_ids)).await??;
    Ok(Json(IdReply { id }))
}

/// `GET /api/projects/{id}/admins`: the project admins (a sub-admin sees only itself).
#[utoipa::path(get, path = "/api/projects/{id}/admins", tag = "projects",
    params(("id" = i64, Path, description = "The sub-project")),
    responses((status = 200, description = "Project admins with their sites", body = Vec<ProjectAdmin>),
              (status = 404, description = "No such sub-project (or not the caller's)", body = ErrorBody)))]
pub async fn get_project_admins(State(state): State<AppState>, Caller { scope, .. }: Caller, ApiPath(id): ApiPath<i64>) -> Result<Json<Vec<ProjectAdmin>>, ApiError> {
    visible_project(&scope, id)?;
    let mut admins = blocking(&state, move |store| store.project_admins(id)).await??;
    if !scope.is_admin() {
        admins.retain(|a| a.account_id == scope.account.id);
    }
    Ok(Json(admins))
}

/// Step 2: the project admins, each with the participating sites it manages.
#[derive(Deserialize, ToSchema)]
pub struct AdminsBody {
    admins: Vec<ProjectAdmin>,
}

/// `PUT /api/projects/{id}/admins` (admin).
#[utoipa::path(put, path = "/api/projects/{id}/admins", tag = "projects", request_body = AdminsBody,
    params(("id" = i64, Path, description = "The sub-project")),
    responses((status = 200, description = "Saved", body = IdReply),
              (status = 400, description = "An admin's sites are not participating (named in the message)", body = ErrorBody),
              (status = 404, description = "No such sub-project, account or site", body = ErrorBody)))]
pub async fn set_project_admins(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<AdminsBody>,
) -> Result<Json<IdReply>, ApiError> {
    blocking(&state, move |store| store.set_project_admins(id, &body.admins)).await??;
    Ok(Json(IdReply { id }))
}

/// `GET /api/projects/{id}/attribution`: the attribution rules (归属设置) at the caller's sites.
#[utoipa::path(get, path = "/api/projects/{id}/attribution", tag = "projects",
    params(("id" = i64, Path, description = "The sub-project")),
    responses((status = 200, description = "The rules", body = Vec<AttributionRule>),
              (status = 404, description = "No such sub-project (or not the caller's)", body = ErrorBody)))]
pub async fn get_attribution(State(state): State<AppState>, Caller { scope, .. }: Caller, ApiPath(id): ApiPath<i64>) -> Result<Json<Vec<AttributionRule>>, ApiError> {
    visible_project(&scope, id)?;
    let mut rules = blocking(&state, move |store| store.attribution_rules(id)).await??;
    rules.retain(|r| scope.project_site(id, r.site_id));
    Ok(Json(rules))
}

#[derive(Deserialize)]
#[derive(ToSchema)]
pub struct RulesBody {
    rules: Vec<AttributionRule>,
}

/// The attribution rules as saved: their new version goes down to the participating sites.
#[derive(Serialize, ToSchema)]
pub struct RulesReply {
    pub id: i64,
    pub version: u64,
}

/// `PUT /api/projects/{id}/attribution` (admin): replaces the attribution rules.
#[utoipa::path(put, path = "/api/projects/{id}/attribution", tag = "projects", request_body = RulesBody,
    params(("id" = i64, Path, description = "The sub-project")),
    responses((status = 200, description = "Saved, and the rules' new version", body = RulesReply),
              (status = 400, description = "A rule is not valid (named in the message)", body = ErrorBody),
              (status = 404, description = "No such sub-project", body = ErrorBody)))]
pub async fn set_attribution(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<RulesBody>,
) -> Result<Json<RulesReply>, ApiError> {
    limits::rules(&body.rules)?;
    let version = blocking(&state, move |store| store.set_attribution_rules(id, &body.rules)).await??;
    Ok(Json(RulesReply { id, version }))
}

// ---- background imports ----

/// A background import's state, as the page polls it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportJob {
    /// `running`, `done` or `failed`.
    #[schema(value_type = String, pattern = "^(running|done|failed)$")]
    pub state: &'static str,
    pub rows_done: u64,
    pub rows_total: u64,
    pub file_id: Option<i64>,
    pub error: Option<String>,
    pub error_zh: Option<String>,
    /// Who started it (only they may poll it).
    #[serde(skip)]
    #[schema(ignore)]
    pub account_id: i64,
}

static NEXT_JOB: AtomicU64 = AtomicU64::new(1);

fn set_job(state: &AppState, id: u64, update: impl FnOnce(&mut ImportJob)) {
    let mut jobs = state.jobs.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(job) = jobs.get_mut(&id) {
        update(job);
    }
}

/// A background import's job, to poll.
#[derive(Serialize, ToSchema)]
pub struct JobReply {
    pub job_id: u64,
}

/// Starts importing an upload in the background; answers at once with the job id to poll
/// at `GET /api/imports/{job}`.
#[utoipa::path(post, path = "/api/projects/{id}/imports", tag = "files",
    params(("id" = i64, Path, description = "The sub-project")),
    request_body(content = inline(UploadForm), content_type = "multipart/form-data"),
    responses((status = 200, description = "Started", body = JobReply),
              (status = 400, description = "No file in the upload, or it is empty", body = ErrorBody),
              (status = 404, description = "No such sub-project (or not the caller's)", body = ErrorBody),
              (status = 409, description = "The sub-project is archived: it takes no new upload", body = ErrorBody)))]
pub async fn start_import(
    State(state): State<AppState>,
    Module(Caller { scope, .. }, _): Module<DataFiles>,
    ApiPath(project_id): ApiPath<i64>,
    ApiMultipart(multipart): ApiMultipart,
) -> Result<Json<JobReply>, ApiError> {
    visible_project(&scope, project_id)?;
    let UploadForm { file_name, file: bytes } = read_upload(multipart).await?;
    let project = blocking(&state, move |store| {
        super::api::refuse_archived(store, project_id)?;
        Ok::<_, ApiError>(store.project(project_id)?)
    })
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
    Ok(Json(JobReply { job_id: id }))
}

/// `GET /api/imports/{job}`: a background import's progress (only its starter and admins).
#[utoipa::path(get, path = "/api/imports/{job}", tag = "files",
    params(("job" = u64, Path, description = "The job from POST /api/projects/{id}/imports")),
    responses((status = 200, description = "Its state and progress", body = ImportJob),
              (status = 404, description = "No such job (or not the caller's)", body = ErrorBody)))]
pub async fn import_progress(State(state): State<AppState>, Module(Caller { scope, .. }, _): Module<DataFiles>, ApiPath(job): ApiPath<u64>) -> Result<Json<ImportJob>, ApiError> {
    let jobs = state.jobs.lock().unwrap_or_else(|p| p.into_inner());
    match jobs.get(&job) {
        Some(found) if found.account_id == scope.account.id || scope.is_admin() => Ok(Json(found.clone())),
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

fn xlsx_file(file_name: String, bytes: Vec<u8>) -> FileBytes {
    FileBytes { content_type: XLSX, file_name, bytes }
}

/// The bad rows of an import as an xlsx (行号 / 列 / 原因).
#[utoipa::path(get, path = "/api/files/{id}/bad-rows.xlsx", tag = "files",
    params(("id" = i64, Path, description = "The file")),
    responses((status = 200, description = "The bad rows as a workbook", body = FileBytes, content_type = XLSX),
              (status = 404, description = "No such file (or not the caller's)", body = ErrorBody)))]
pub async fn bad_rows_sheet(State(state): State<AppState>, Module(Caller { scope, tr, .. }, _): Module<DataFiles>, ApiPath(id): ApiPath<i64>) -> Result<FileBytes, ApiError> {
    let (summary, report) = blocking(&state, move |store| visible_file(store, &scope, id)).await??;
    let bytes = crate::export::bad_rows_xlsx(&report.bad, tr.lang == crate::web::Lang::En).map_err(ApiError::internal)?;
    let name = format!("{}_错误行.xlsx", summary.file_name.trim_end_matches(".xlsx"));
    Ok(xlsx_file(name, bytes))
}

/// The stored file (for a filter result: kept rows and the removal reasons).
#[utoipa::path(get, path = "/api/files/{id}/download", tag = "files",
    params(("id" = i64, Path, description = "The file")),
    responses((status = 200, description = "The stored workbook", body = FileBytes, content_type = XLSX),
              (status = 404, description = "No such file (or not the caller's)", body = ErrorBody)))]
pub async fn download_file(State(state): State<AppState>, Module(Caller { scope, .. }, _): Module<DataFiles>, ApiPath(id): ApiPath<i64>) -> Result<FileBytes, ApiError> {
    let (summary, bytes) = blocking(&state, move |store| -> Result<_, ApiError> {
        let (summary, _) = visible_file(store, &scope, id)?;
        let project = store.project(summary.project_id)?.ok_or_else(|| ApiError::not_found(format!("file {id} does not exist")))?;
        if scope.every_project_site(project.id, &project.site_ids) {
            let bytes = store.file_bytes(id).map_err(ApiError::internal)?.ok_or_else(|| ApiError::not_found(format!("file {id} does not exist")))?;
            return Ok((summary, bytes));
        }
        // An account that sees only some of the project's sites gets only the rows
        // dispatched there, masked as the project says: never another site's customers.
        let own_sites: Vec<i64> = project.site_ids.iter().copied().filter(|&site| scope.project_site(project.id, site)).collect();
        let mut rows = store.file_rows_dispatched_to(id, &own_sites)?;
        if project.hide_middle_digits {
            for row in &mut rows {
                row.phone = crate::phone::mask_middle(&row.phone);
            }
        }
        let bytes = crate::export::rows_xlsx(&project, "电话号码", &rows).map_err(ApiError::internal)?;
        Ok((summary, bytes))
    })
    .await??;
    let name = if summary.file_name.to_lowercase().ends_with(".xlsx") { summary.file_name } else { format!("{}.xlsx", summary.file_name) };
    Ok(xlsx_file(name, bytes))
}

/// Something deleted (a file) or ended (a batch).
#[derive(Serialize, ToSchema)]
pub struct DeletedReply {
    pub id: i64,
    pub deleted: bool,
}

/// `POST /api/files/{id}/delete`.
#[utoipa::path(post, path = "/api/files/{id}/delete", tag = "files",
    params(("id" = i64, Path, description = "The file")),
    responses((status = 200, description = "Deleted", body = DeletedReply),
              (status = 404, description = "No such file (or not the caller's)", body = ErrorBody)))]
pub async fn delete_file(State(state): State<AppState>, Module(Caller { scope, .. }, _): Module<DataFiles>, ApiPath(id): ApiPath<i64>) -> Result<Json<DeletedReply>, ApiError> {
    blocking(&state, move |store| -> Result<(), ApiError> {
        visible_file(store, &scope, id)?;
        store.delete_file(id)?;
        Ok(())
    })
    .await??;
    Ok(Json(DeletedReply { id, deleted: true }))
}

/// A file's remark (备注).
#[derive(Deserialize, ToSchema)]
pub struct RemarkBody {
    /// At most 200 characters.
    remark: String,
}

/// `POST /api/files/{id}/remark`.
#[utoipa::path(post, path = "/api/files/{id}/remark", tag = "files", request_body = RemarkBody,
    params(("id" = i64, Path, description = "The file")),
    responses((status = 200, description = "Saved", body = IdReply),
              (status = 400, description = "The remark is too long", body = ErrorBody),
              (status = 404, description = "No such file (or not the caller's)", body = ErrorBody)))]
pub async fn set_remark(
    State(state): State<AppState>,
    Module(Caller { scope, .. }, _): Module<DataFiles>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<RemarkBody>,
) -> Result<Json<IdReply>, ApiError> {
    limits::remark(&body.remark)?;
    blocking(&state, move |store| -> Result<(), ApiError> {
        visible_file(store, &scope, id)?;
        store.set_file_remark(id, &body.remark)?;
        Ok(())
    })
    .await??;
    Ok(Json(IdReply { id }))
}

// ---- data filter ----

/// `GET /api/filter-settings`: the caller's last filter settings (or the defaults).
#[utoipa::path(get, path = "/api/filter-settings", tag = "files",
    responses((status = 200, description = "The settings", body = FilterSettings)))]
pub async fn filter_settings(State(state): State<AppState>, Module(Caller { scope, .. }, _): Module<DataFiles>) -> Result<Json<FilterSettings>, ApiError> {
    let id = scope.account.id;
    Ok(Json(blocking(&state, move |store| store.filter_settings(id)).await??))
}

/// The filter's settings plus the phone column (1-based; absent = auto-detected).
#[derive(Deserialize, ToSchema)]
pub struct FilterBody {
    #[serde(flatten)]
    settings: FilterSettings,
    #[serde(default)]
    #[schema(minimum = 1)]
    phone_column: Option<usize>,
}

/// `POST /api/files/{id}/filter`: the data filter (数据过滤) over the synced call history;
/// makes a 【过滤结果】 file of the rows kept.
#[utoipa::path(post, path = "/api/files/{id}/filter", tag = "files", request_body = FilterBody,
    params(("id" = i64, Path, description = "The file")),
    responses((status = 200, description = "The new file and its counts", body = FilterOutcome),
              (status = 400, description = "A setting is out of range (named in the message)", body = ErrorBody),
              (status = 404, description = "No such file or sub-project (or not the caller's)", body = ErrorBody),
              (status = 422, description = "The stored workbook cannot be read with the chosen phone column", body = ErrorBody)))]
pub async fn filter_file(
    State(state): State<AppState>,
    Module(Caller { scope, .. }, _): Module<DataFiles>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<FilterBody>,
) -> Result<Json<FilterOutcome>, ApiError> {
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
    Ok(Json(outcome))
}

// ---- batches ----

/// A batch's new priority.
#[derive(Deserialize, ToSchema)]
pub struct PriorityBody {
    /// 0 ends the batch for ever, 1 pauses it, 2..=100 runs it (higher first).
    #[schema(minimum = 0, maximum = 100)]
    priority: i64,
}

/// A batch's priority as set, and the control version sent to its site.
#[derive(Serialize, ToSchema)]
pub struct PriorityReply {
    pub id: i64,
    pub priority: i64,
    pub version: u64,
}

/// `POST /api/batches/{id}/priority`.
#[utoipa::path(post, path = "/api/batches/{id}/priority", tag = "batches", request_body = PriorityBody,
    params(("id" = i64, Path, description = "The batch")),
    responses((status = 200, description = "Set, and sent to the site", body = PriorityReply),
              (status = 400, description = "The priority is out of 0..=100", body = ErrorBody),
              (status = 404, description = "No such batch (or not the caller's)", body = ErrorBody),
              (status = 409, description = "The batch has ended", body = ErrorBody)))]
pub async fn set_priority(State(state): State<AppState>, Module(Caller { scope, .. }, _): Module<DataBatches>, ApiPath(id): ApiPath<i64>, ApiJson(body): ApiJson<PriorityBody>) -> Result<Json<PriorityReply>, ApiError> {
    let version = blocking(&state, move |store| store.set_priority(id, body.priority, &scope)).await??;
    Ok(Json(PriorityReply { id, priority: body.priority, version }))
}

/// `POST /api/batches/{id}/delete`: ends the batch (priority 0) at its site.
#[utoipa::path(post, path = "/api/batches/{id}/delete", tag = "batches",
    params(("id" = i64, Path, description = "The batch")),
    responses((status = 200, description = "Ended", body = DeletedReply),
              (status = 404, description = "No such batch (or not the caller's)", body = ErrorBody),
              (status = 409, description = "The batch has ended already", body = ErrorBody)))]
pub async fn delete_batch(State(state): State<AppState>, Module(Caller { scope, .. }, _): Module<DataBatches>, ApiPath(id): ApiPath<i64>) -> Result<Json<DeletedReply>, ApiError> {
    blocking(&state, move |store| store.delete_batch(id, &scope)).await??;
    Ok(Json(DeletedReply { id, deleted: true }))
}

/// `GET /api/batches/{id}/numbers`: the batch's numbers (查看号码) and how they went.
#[utoipa::path(get, path = "/api/batches/{id}/numbers", tag = "batches",
    params(("id" = i64, Path, description = "The batch")),
    responses((status = 200, description = "The numbers", body = Vec<BatchNumber>),
              (status = 404, description = "No such batch (or not the caller's)", body = ErrorBody)))]
pub async fn batch_numbers(State(state): State<AppState>, Module(Caller { scope, .. }, _): Module<DataBatches>, ApiPath(id): ApiPath<i64>) -> Result<Json<Vec<BatchNumber>>, ApiError> {
    Ok(Json(blocking(&state, move |store| store.batch_numbers(id, &scope)).await??))
}

/// What `POST /api/one-click` answers: how many batches changed.
#[derive(Serialize, ToSchema)]
pub struct ChangedReply {
    pub changed: u64,
}

#[derive(Deserialize)]
#[derive(ToSchema)]
pub struct OneClickBody {
    action: OneClickAction,
    /// The category, or none for every project. A `<select>` gives its value as text, so
    /// `"3"` is read as 3 and `""` as none.
    #[serde(default, deserialize_with = "category_id")]
    #[schema(value_type = Option<i64>)]
    category_id: Option<i64>,
}

/// A category id as a number, as its digits in a string, or none (`null`, `""`).
fn category_id<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Number(i64),
        Text(String),
    }
    match Option::<Id>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Id::Number(id)) => Ok(Some(id)),
        Some(Id::Text(text)) if text.trim().is_empty() => Ok(None),
        Some(Id::Text(text)) => text.trim().parse().map(Some).map_err(|_| {
            serde::de::Error::invalid_value(serde::de::Unexpected::Str(&text), &"i64")
        }),
    }
}

/// `POST /api/one-click`: starts or pauses every batch in the caller's scope, or a category's.
#[utoipa::path(post, path = "/api/one-click", tag = "batches", request_body = OneClickBody,
    responses((status = 200, description = "Done", body = ChangedReply),
              (status = 404, description = "No such category", body = ErrorBody)))]
pub async fn one_click(State(state): State<AppState>, Module(Caller { scope, .. }, _): Module<DataBatches>, ApiJson(body): ApiJson<OneClickBody>) -> Result<Json<ChangedReply>, ApiError> {
    let changed = blocking(&state, move |store| store.one_click(body.action, body.category_id, &scope)).await??;
    Ok(Json(ChangedReply { changed }))
}

// ---- black / white lists ----

pub(super) fn list_kind(text: &str) -> Result<ListKind, ApiError> {
    match text {
        "black" => Ok(ListKind::Black),
        "white" => Ok(ListKind::White),
        other => Err(ApiError::not_found(format!("list {other:?} does not exist: use black or white"))),
    }
}

/// `GET /api/lists/{list}`: the black or white list.
#[utoipa::path(get, path = "/api/lists/{list}", tag = "lists",
    params(("list" = ListKind, Path, description = "`black` or `white`")),
    responses((status = 200, description = "The listed numbers", body = Vec<ListedNumber>),
              (status = 404, description = "No such list", body = ErrorBody)))]
pub async fn list_numbers(State(state): State<AppState>, _caller: Module<CtiLists>, ApiPath(list): ApiPath<String>) -> Result<Json<Vec<ListedNumber>>, ApiError> {
    let kind = list_kind(&list)?;
    Ok(Json(blocking(&state, move |store| store.list_numbers(kind)).await??))
}

/// What adding numbers to a list answers.
#[derive(Serialize, ToSchema)]
pub struct AddedReply {
    /// Numbers newly listed.
    pub added: usize,
}

#[derive(Deserialize)]
#[derive(ToSchema)]
pub struct NumbersBody {
    /// One number per element; a single element may also hold several lines.
    phones: Vec<String>,
    #[serde(default)]
    note: String,
}

/// `POST /api/lists/{list}`: adds numbers to the list.
#[utoipa::path(post, path = "/api/lists/{list}", tag = "lists", request_body = NumbersBody,
    params(("list" = ListKind, Path, description = "`black` or `white`")),
    responses((status = 200, description = "Added", body = AddedReply),
              (status = 400, description = "A number cannot be read (named in the message), or the note is too long", body = ErrorBody),
              (status = 404, description = "No such list", body = ErrorBody)))]
pub async fn add_numbers(
    State(state): State<AppState>,
    caller: Module<CtiLists>,
    ApiPath(list): ApiPath<String>,
    ApiJson(body): ApiJson<NumbersBody>,
) -> Result<Json<AddedReply>, ApiError> {
    let kind = list_kind(&list)?;
    limits::note(&body.note)?;
    let creator = caller.account.username.clone();
    let phones: Vec<String> = body.phones.iter().flat_map(|p| p.lines()).map(str::to_string).collect();
    let added = blocking(&state, move |store| store.add_to_list(kind, &phones, &body.note, &creator)).await??;
    Ok(Json(AddedReply { added }))
}

/// What taking a number off the lists answers.
#[derive(Serialize, ToSchema)]
pub struct RemovedReply {
    /// Whether the number was listed.
    pub removed: bool,
}

#[derive(Deserialize)]
#[derive(ToSchema)]
pub struct PhoneBody {
    phone: String,
}

/// `POST /api/lists/remove`: takes a number off both lists.
#[utoipa::path(post, path = "/api/lists/remove", tag = "lists", request_body = PhoneBody,
    responses((status = 200, description = "Done", body = RemovedReply),
              (status = 400, description = "The number cannot be read", body = ErrorBody)))]
pub async fn remove_number(State(state): State<AppState>, _caller: Module<CtiLists>, ApiJson(body): ApiJson<PhoneBody>) -> Result<Json<RemovedReply>, ApiError> {
    let removed = blocking(&state, move |store| store.remove_from_lists(&body.phone)).await??;
    Ok(Json(RemovedReply { removed }))
}
