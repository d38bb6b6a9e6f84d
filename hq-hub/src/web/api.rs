//! The JSON API (`/api/...`): what the demo and the end-to-end tests drive the hub with.
//! Same session cookie as the pages; errors are `{"error": "..."}` with a 4xx.
//!
//! Every handler answers a typed reply (its `ToSchema` is the OpenAPI document's schema)
//! and carries its `#[utoipa::path]`; the 401 / 403 of its access rule and the 400 / 415 /
//! 422 of its body are added to the document from the route table ([`super::openapi`]).

use axum::extract::{Multipart, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use web_guard::ClientAddr;

use super::extract::{ApiJson, ApiMultipart, ApiPath};
use super::guard::{DataBatches, DataBusiness, DataFiles, DataRecordings};
use super::{blocking, cookie, limits, session_cookie, Admin, ApiError, AppState, Caller, ErrorBody, Module, SESSION_COOKIE};
use crate::import::{import_xlsx, ImportError, ImportFileError, ParseOptions};
use crate::store::{
    AlarmView, BadRow, Category, ColumnMatch, CreateCategoryError, CreateProjectError, CreateSiteError, DispatchError, DispatchKind,
    DispatchRequest, EnrollmentCode, EnrollmentCodeError, ExclusivePart, FileSummary, ImportReport, LoginError, NewProject,
    Project, RemovedRow, RetireError, RetiredBox, SaveImportError, Site,
};

/// A created or changed thing's id.
#[derive(Serialize, ToSchema)]
pub struct IdReply {
    pub id: i64,
}

/// An answer with nothing to say beyond its status.
#[derive(Serialize, ToSchema)]
pub struct EmptyReply {}

/// An xlsx workbook or a WAV recording, as a download: its bytes with their type and the
/// name the browser saves them under. The document shows only the bytes (the type and name
/// travel in headers), hence the hand-written schema.
pub struct FileBytes {
    pub content_type: &'static str,
    /// The saved file's name; non-ASCII names survive in the RFC 5987 form.
    pub file_name: String,
    pub bytes: Vec<u8>,
}

impl utoipa::PartialSchema for FileBytes {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .description(Some("An xlsx workbook or a WAV recording, as a download."))
            .into()
    }
}

impl ToSchema for FileBytes {}

impl IntoResponse for FileBytes {
    fn into_response(self) -> Response {
        // The plain `filename` is for clients that ignore `filename*`: the name itself when
        // it is plain ASCII, else a stand-in of the same extension.
        let plain = if self.file_name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
            self.file_name.clone()
        } else {
            let extension = self.file_name.rsplit_once('.').map_or("bin", |(_, ext)| ext);
            format!("download.{extension}")
        };
        let encoded: String = self
            .file_name
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() || b"-_.".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        (
            [
                (header::CONTENT_TYPE, self.content_type.to_string()),
                (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{plain}\"; filename*=UTF-8''{encoded}")),
            ],
            self.bytes,
        )
            .into_response()
    }
}

/// A multipart upload with one file.
#[derive(ToSchema)]
pub struct UploadForm {
    /// The uploaded file's own name (from its part's header).
    #[schema(ignore)]
    pub file_name: String,
    /// The xlsx file.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

impl From<LoginError> for ApiError {
    fn from(err: LoginError) -> Self {
        match err {
            LoginError::BadCredentials => ApiError::new(StatusCode::UNAUTHORIZED, err.to_string()),
            LoginError::Disabled => ApiError::new(StatusCode::FORBIDDEN, err.to_string()),
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
            | DispatchError::NothingLeft { .. }
            | DispatchError::Lease(_) => ApiError::bad_request(err.to_string()),
            DispatchError::Archived(_) => ApiError::new(StatusCode::CONFLICT, err.to_string()),
            DispatchError::Encode(_) => ApiError::internal(err),
            DispatchError::Db(e) => e.into(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct LoginBody {
    username: String,
    password: String,
}

/// The logged-in account.
#[derive(Serialize, ToSchema)]
pub struct LoginReply {
    pub id: i64,
    pub username: String,
}

/// `POST /api/login`: throttled per (account, source address) and per source address; a
/// throttled attempt answers 429 with `Retry-After` without checking the password.
#[utoipa::path(post, path = "/api/login", tag = "session", request_body = LoginBody,
    responses((status = 200, description = "Logged in; the `hq_session` cookie is set", body = LoginReply),
              (status = 401, description = "Wrong username or password", body = ErrorBody),
              (status = 429, description = "Too many failed logins from this address for this account; wait `Retry-After` seconds", body = ErrorBody)))]
pub async fn login(State(state): State<AppState>, ClientAddr(source): ClientAddr, ApiJson(body): ApiJson<LoginBody>) -> Result<Response, ApiError> {
    limits::login(&body.username, &body.password)?;
    if let Err(wait) = state.throttle.attempt(&body.username, source) {
        return Ok(web_guard::throttled_json(wait));
    }
    let username = body.username.clone();
    let (token, account) = blocking(&state, move |store| store.login(&body.username, &body.password)).await??;
    state.throttle.succeeded(&username, source);
    Ok((
        [(header::SET_COOKIE, session_cookie(&token))],
        Json(LoginReply { id: account.id, username: account.username }),
    )
        .into_response())
}

/// `POST /api/logout`: ends the session, if there is one.
#[utoipa::path(post, path = "/api/logout", tag = "session",
    responses((status = 200, description = "Logged out; the cookie is cleared", body = EmptyReply)))]
pub async fn logout(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = cookie(&headers, SESSION_COOKIE).map(str::to_string) {
        blocking(&state, move |store| store.logout(&token)).await??;
    }
    Ok(([(header::SET_COOKIE, format!("{SESSION_COOKIE}=; Path=/; Max-Age=0"))], Json(EmptyReply {})).into_response())
}

/// A name (site, category, group).
#[derive(Deserialize, ToSchema)]
pub struct NameBody {
    /// At most 100 characters.
    pub name: String,
}

/// `POST /api/sites` (admin): a new site, not yet enrolled.
#[utoipa::path(post, path = "/api/sites", tag = "sites", request_body = NameBody,
    responses((status = 200, description = "Created", body = IdReply),
              (status = 400, description = "The name is empty or too long", body = ErrorBody),
              (status = 409, description = "A site of that name exists", body = ErrorBody)))]
pub async fn create_site(State(state): State<AppState>, _admin: Admin, ApiJson(body): ApiJson<NameBody>) -> Result<Json<IdReply>, ApiError> {
    limits::name(&body.name)?;
    let id = blocking(&state, move |store| store.create_site(&body.name)).await??;
    Ok(Json(IdReply { id }))
}

/// `GET /api/sites`: the sites in the caller's data scope, with their link state.
#[utoipa::path(get, path = "/api/sites", tag = "sites",
    responses((status = 200, description = "Sites in the caller's data scope", body = Vec<Site>)))]
pub async fn list_sites(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<Site>>, ApiError> {
    let mut sites = blocking(&state, |store| store.list_sites()).await??;
    sites.retain(|s| caller.scope.site(s.id));
    Ok(Json(sites))
}

/// `POST /api/sites/{id}/enrollment-code` (admin): a one-time code a technician enters on
/// the site's box; shown only now.
#[utoipa::path(post, path = "/api/sites/{id}/enrollment-code", tag = "sites",
    params(("id" = i64, Path, description = "The site")),
    responses((status = 200, description = "The code and when it expires (unix seconds)", body = EnrollmentCode),
              (status = 404, description = "No such site", body = ErrorBody)))]
pub async fn enrollment_code(State(state): State<AppState>, admin: Admin, ApiPath(id): ApiPath<i64>) -> Result<Json<EnrollmentCode>, ApiError> {
    Ok(Json(mint_code(&state, &admin, id).await?))
}

/// Mints a site's enrollment code: the one check both the API and the sites page make.
pub async fn mint_code(state: &AppState, admin: &Admin, id: i64) -> Result<EnrollmentCode, ApiError> {
    if !admin.scope.site(id) {
        return Err(ApiError::not_found(format!("site {id} does not exist")));
    }
    Ok(blocking(state, move |store| store.create_enrollment_code(id)).await??)
}

/// `POST /api/sites/{id}/retire` (admin): retires the box holding a site. Its certificate
/// no longer opens the link (a live connection is closed) and another box may enroll with a
/// new code.
#[utoipa::path(post, path = "/api/sites/{id}/retire", tag = "sites", params(("id" = i64, Path, description = "The site")),
    responses((status = 200, description = "The identity retired", body = RetiredBox),
              (status = 404, description = "No such site", body = ErrorBody),
              (status = 409, description = "No box holds the site", body = ErrorBody)))]
pub async fn retire_site(State(state): State<AppState>, admin: Admin, ApiPath(id): ApiPath<i64>) -> Result<Json<RetiredBox>, ApiError> {
    let by = admin.account.username.clone();
    Ok(Json(blocking(&state, move |store| store.retire_site_box(id, &by)).await??))
}

/// `POST /api/categories` (admin): a project category (categories are only added).
#[utoipa::path(post, path = "/api/categories", tag = "projects", request_body = NameBody,
    responses((status = 200, description = "Created", body = IdReply),
              (status = 400, description = "The name is empty or too long", body = ErrorBody),
              (status = 409, description = "A category of that name exists", body = ErrorBody)))]
pub async fn create_category(State(state): State<AppState>, _admin: Admin, ApiJson(body): ApiJson<NameBody>) -> Result<Json<IdReply>, ApiError> {
    limits::name(&body.name)?;
    let id = blocking(&state, move |store| store.create_category(&body.name)).await??;
    Ok(Json(IdReply { id }))
}

/// `GET /api/categories`: every project category.
#[utoipa::path(get, path = "/api/categories", tag = "projects",
    responses((status = 200, description = "Every category", body = Vec<Category>)))]
pub async fn list_categories(State(state): State<AppState>, _caller: Caller) -> Result<Json<Vec<Category>>, ApiError> {
    let categories = blocking(&state, |store| store.list_categories()).await??;
    Ok(Json(categories))
}

/// `POST /api/projects` (admin): a sub-project, optionally cloned from a template of the
/// same category.
#[utoipa::path(post, path = "/api/projects", tag = "projects", request_body = NewProject,
    responses((status = 200, description = "Created", body = IdReply),
              (status = 400, description = "A name, field or setting is not valid (named in the message)", body = ErrorBody),
              (status = 404, description = "No such category or template", body = ErrorBody),
              (status = 409, description = "A sub-project of that name exists in the category", body = ErrorBody)))]
pub async fn create_project(State(state): State<AppState>, _admin: Admin, ApiJson(body): ApiJson<NewProject>) -> Result<Json<IdReply>, ApiError> {
    limits::project(&body)?;
    let id = blocking(&state, move |store| store.create_project(&body)).await??;
    Ok(Json(IdReply { id }))
}

/// `GET /api/projects`: the sub-projects the caller may see.
#[utoipa::path(get, path = "/api/projects", tag = "projects",
    responses((status = 200, description = "Sub-projects in the caller's data scope", body = Vec<Project>)))]
pub async fn list_projects(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<Project>>, ApiError> {
    let mut projects = blocking(&state, |store| store.list_projects()).await??;
    projects.retain(|p| caller.scope.project(p.id));
    Ok(Json(projects))
}

/// The uploaded file's name and bytes from a multipart form's `file` field.
pub async fn read_upload(mut multipart: Multipart) -> Result<UploadForm, ApiError> {
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
        return Ok(UploadForm { file_name, file: bytes.to_vec() });
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
        refuse_archived(store, project_id)?;
        match import_xlsx(store, &project, &file_name, &bytes, &creator, &ParseOptions::default()) {
            Ok(done) => Ok(Ok(done)),
            Err(ImportFileError::Parse(err)) => Ok(Err(err)),
            Err(ImportFileError::Save(err)) => Err(err.into()),
        }
    })
    .await?
}

/// An archived sub-project takes no new uploads until it is brought back.
pub(super) fn refuse_archived(store: &crate::store::Store, project_id: i64) -> Result<(), ApiError> {
    match store.project_archived_at(project_id)? {
        Some(_) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("sub-project {project_id} is archived: bring it back (取消归档) before uploading to it"),
        )),
        None => Ok(()),
    }
}

/// A row the import refused.
#[derive(Serialize, ToSchema)]
pub struct RefusedRow {
    /// The spreadsheet's row number (1 is the header row).
    pub row: u32,
    /// The column's header text.
    pub column: String,
    /// What is wrong and how to fix it.
    pub reason: String,
}

/// An import's report (导入报告) with the stored file's id.
#[derive(Serialize, ToSchema)]
pub struct ImportReply {
    pub file_id: i64,
    /// Data rows in the sheet (trailing empty rows not counted).
    pub n_rows: u64,
    /// Rows kept.
    pub n_good: u64,
    pub bad: Vec<RefusedRow>,
    /// The header of the column used for phone numbers.
    pub phone_column: String,
    /// Titles of customer fields no column matched (left empty).
    pub unmatched_fields: Vec<String>,
    /// Field-by-field column matching (数据匹配).
    pub columns: Vec<ColumnMatch>,
    /// Empty rows at the end of the sheet that were ignored.
    pub trailing_empty_rows: u64,
    /// Header cells that were not text or held special characters, and how they were read.
    pub header_warnings: Vec<String>,
    /// The sheet the rows were read from.
    pub sheet: String,
    /// Kept rows whose values were changed to be stored, with why.
    pub warnings: Vec<BadRow>,
}

impl ImportReply {
    pub fn new(file_id: i64, report: ImportReport) -> ImportReply {
        // Exhaustive, so that a field added to the report is a compile error here until the
        // reply (and so the API document) says what becomes of it.
        let ImportReport { n_rows, n_good, bad, phone_column, unmatched_fields, columns, trailing_empty_rows, header_warnings, sheet, warnings } =
            report;
        ImportReply {
            file_id,
            n_rows,
            n_good,
            bad: bad.into_iter().map(|b| RefusedRow { row: b.row, column: b.column, reason: b.reason }).collect(),
            phone_column,
            unmatched_fields,
            columns,
            trailing_empty_rows,
            header_warnings,
            sheet,
            warnings,
        }
    }
}

/// `POST /api/projects/{id}/files` (multipart, `file`): imports an xlsx and waits for the
/// report (good rows kept, every bad row with its reason).
#[utoipa::path(post, path = "/api/projects/{id}/files", tag = "files",
    params(("id" = i64, Path, description = "The sub-project")),
    request_body(content = inline(UploadForm), content_type = "multipart/form-data"),
    responses((status = 200, description = "Imported: the report", body = ImportReply),
              (status = 400, description = "No file in the upload, or it is empty", body = ErrorBody),
              (status = 404, description = "No such sub-project (or not the caller's)", body = ErrorBody),
              (status = 409, description = "The sub-project is archived: it takes no new upload", body = ErrorBody),
              (status = 415, description = "The file is not an xlsx workbook", body = ErrorBody),
              (status = 422, description = "The workbook cannot be read as a call list (why is in the message)", body = ErrorBody)))]
pub async fn upload_file(
    State(state): State<AppState>,
    caller: Module<DataFiles>,
    ApiPath(project_id): ApiPath<i64>,
    ApiMultipart(multipart): ApiMultipart,
) -> Result<Json<ImportReply>, ApiError> {
    if !caller.scope.project(project_id) {
        return Err(ApiError::not_found(format!("sub-project {project_id} does not exist: choose an existing sub-project")));
    }
    let upload = read_upload(multipart).await?;
    let (file_id, report) = import_upload(&state, project_id, caller.account.username.clone(), upload.file_name, upload.file).await??;
    Ok(Json(ImportReply::new(file_id, report)))
}

/// `GET /api/files`: the files of the sub-projects the caller may see.
#[utoipa::path(get, path = "/api/files", tag = "files",
    responses((status = 200, description = "Files in the caller's data scope", body = Vec<FileSummary>)))]
pub async fn list_files(State(state): State<AppState>, caller: Module<DataFiles>) -> Result<Json<Vec<FileSummary>>, ApiError> {
    let mut files = blocking(&state, |store| store.list_files(None)).await??;
    files.retain(|f| caller.scope.project(f.project_id));
    Ok(Json(files))
}

/// A file with its import report.
#[derive(Serialize, ToSchema)]
pub struct FileReply {
    pub file: FileSummary,
    pub report: ImportReply,
}

/// `GET /api/files/{id}`: one file with its import report.
#[utoipa::path(get, path = "/api/files/{id}", tag = "files",
    params(("id" = i64, Path, description = "The file")),
    responses((status = 200, description = "The file and its report", body = FileReply),
              (status = 404, description = "No such file (or not the caller's)", body = ErrorBody)))]
pub async fn get_file(State(state): State<AppState>, caller: Module<DataFiles>, ApiPath(id): ApiPath<i64>) -> Result<Json<FileReply>, ApiError> {
    let (summary, report) = blocking(&state, move |store| store.file(id))
        .await??
        .filter(|(f, _)| caller.scope.project(f.project_id))
        .ok_or_else(|| ApiError::not_found(format!("file {id} does not exist")))?;
    Ok(Json(FileReply { file: summary, report: ImportReply::new(id, report) }))
}

fn yes() -> bool {
    true
}

/// How a file is dispatched.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DispatchKindName {
    /// The chosen sites (`site_ids`) dial the rows between them, each number once: two
    /// sites or more draw from one pool in leases (the `lease_…` fields).
    #[default]
    Shared,
    /// Each of `parts` is its own batch of the next `count` rows for one site.
    Exclusive,
    /// Rows are routed to sites by the sub-project's attribution rules.
    Auto,
}

/// A dispatch (下发): `kind` `shared` (default, with `site_ids`), `exclusive` (with
/// `parts`) or `auto`.
#[derive(Deserialize, ToSchema)]
pub struct DispatchBody {
    /// The batch's name (required; at most 100 characters).
    #[serde(default)]
    name: String,
    /// 2..=100 runs (higher first), 1 starts paused.
    priority: i64,
    #[serde(default)]
    site_ids: Vec<i64>,
    #[serde(default)]
    kind: Option<DispatchKindName>,
    #[serde(default)]
    parts: Vec<ExclusivePart>,
    /// 更新已有数据: a number already live in a batch of this sub-project at a site is not
    /// sent there again (default true).
    #[serde(default = "yes")]
    update_existing: bool,
    /// At most 500 characters.
    #[serde(default)]
    description: String,
    /// A shared batch's pool: each lease holds this many hours of the site's dialing
    /// (0.1 to 72, default 2).
    #[serde(default)]
    lease_hours: Option<f64>,
    /// Seconds a lease lasts before the site gives back what it did not dial (60 to
    /// 2,592,000, default 86,400).
    #[serde(default)]
    lease_lifetime_s: Option<i64>,
    /// The smallest lease, in numbers (1 to 2,000, default 200).
    #[serde(default)]
    min_block: Option<i64>,
}

/// What a dispatch did.
#[derive(Serialize, ToSchema)]
pub struct DispatchReply {
    pub batch_ids: Vec<i64>,
    /// Rows of the file no batch took (exclusive counts short of the file, auto rows no rule
    /// matched): still in the file.
    pub leftover: u64,
    /// Rows removed (blacklisted) or not sent (already live at the site), with why.
    pub removed: Vec<RemovedRow>,
    /// Auto batches: rows a rule routed (归属数量).
    pub attributed: u64,
    /// Auto batches: rows no rule matched (未找到归属数量).
    pub not_found: u64,
    /// The two counts as the console shows them.
    pub message: String,
}

/// `POST /api/files/{id}/dispatch`: makes the file's batches and sends them to the sites.
#[utoipa::path(post, path = "/api/files/{id}/dispatch", tag = "files", request_body = DispatchBody,
    params(("id" = i64, Path, description = "The file")),
    responses((status = 200, description = "Dispatched", body = DispatchReply),
              (status = 400, description = "Something to fix before dispatching (named in the message)", body = ErrorBody),
              (status = 403, description = "A chosen site is outside the caller's data scope", body = ErrorBody),
              (status = 404, description = "No such file or site", body = ErrorBody),
              (status = 409, description = "The file's sub-project is archived: it takes no new batch", body = ErrorBody)))]
pub async fn dispatch(
    State(state): State<AppState>,
    caller: Module<DataFiles>,
    ApiPath(file_id): ApiPath<i64>,
    ApiJson(body): ApiJson<DispatchBody>,
) -> Result<Json<DispatchReply>, ApiError> {
    limits::dispatch(&body.name, &body.description, &body.parts)?;
    let scope = caller.scope.clone();
    let kind = match body.kind.unwrap_or_default() {
        DispatchKindName::Shared => DispatchKind::Shared,
        DispatchKindName::Exclusive => DispatchKind::Exclusive(body.parts),
        DispatchKindName::Auto => DispatchKind::Auto,
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
    let defaults = crate::store::PoolSettings::default();
    let lease = crate::store::PoolSettings {
        lease_hours: body.lease_hours.unwrap_or(defaults.lease_hours),
        lease_lifetime_s: body.lease_lifetime_s.unwrap_or(defaults.lease_lifetime_s),
        min_block: body.min_block.unwrap_or(defaults.min_block),
    };
    let tr = caller.tr;
    let outcome =
        blocking(&state, move |store| store.dispatch_with_lease(&request, &scope, lease)).await?.map_err(|e| super::edit::dispatch_refused(tr, e))?;
    Ok(Json(DispatchReply {
        message: super::edit::dispatch_summary(tr, &outcome),
        leftover: outcome.leftover,
        batch_ids: outcome.batch_ids,
        removed: outcome.removed,
        attributed: outcome.attributed,
        not_found: outcome.not_found,
    }))
}

/// One line of the task list (下发任务管理) with its live figures.
#[derive(Serialize, ToSchema)]
pub struct BatchRow {
    pub id: i64,
    pub name: String,
    pub project_id: i64,
    pub project_name: String,
    pub site_id: i64,
    pub site_name: String,
    /// 号码总数
    pub numbers: i64,
    /// 呼出量: attempts reported.
    pub dialed: i64,
    /// 接通量: attempts the customer answered.
    pub connected: i64,
    /// 未接量: dialed but not answered.
    pub not_connected: i64,
    /// 坐席未接量
    pub agent_missed: i64,
    /// 放弃量: answered calls no agent took within 2 s.
    pub abandoned: i64,
    /// Abandoned over answered calls, as regulators count it; null before any answer.
    pub abandon_rate: Option<f64>,
    /// 坐席接通量
    pub agent_connected: i64,
    /// 0 ended, 1 paused, 2..=100 running (higher first).
    pub priority: i64,
    pub creator: String,
    pub created_at: i64,
    pub description: String,
    /// `shared`, `exclusive` or `auto`.
    pub kind: String,
    /// Ended for ever (priority 0).
    pub ended: bool,
}

/// `GET /api/batches`: the task list in the caller's data scope.
#[utoipa::path(get, path = "/api/batches", tag = "batches",
    responses((status = 200, description = "Batches with their live figures", body = Vec<BatchRow>)))]
pub async fn list_batches(State(state): State<AppState>, caller: Module<DataBatches>) -> Result<Json<Vec<BatchRow>>, ApiError> {
    let scope = caller.scope.clone();
    let batches = blocking(&state, move |store| store.list_batches_scoped(&scope)).await??;
    let out = batches
        .into_iter()
        .map(|b| BatchRow {
            not_connected: b.not_connected(),
            abandon_rate: (b.connected > 0).then(|| b.abandoned as f64 / b.connected as f64),
            id: b.id,
            name: b.name,
            project_id: b.project_id,
            project_name: b.project_name,
            site_id: b.site_id,
            site_name: b.site_name,
            numbers: b.numbers,
            dialed: b.dialed,
            connected: b.connected,
            agent_missed: b.agent_missed,
            abandoned: b.abandoned,
            agent_connected: b.agent_connected,
            priority: b.priority,
            creator: b.creator,
            created_at: b.created_at,
            description: b.description,
            kind: b.kind,
            ended: b.ended,
        })
        .collect();
    Ok(Json(out))
}

/// A business record a site saved (phone masked if the sub-project hides digits).
#[derive(Serialize, ToSchema)]
pub struct RecordRow {
    pub attempt_id: i64,
    pub site_id: i64,
    pub row_id: i64,
    pub phone: String,
    pub agent: String,
    pub saved_at: i64,
    /// The record's fields by key.
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub values: serde_json::Map<String, Value>,
}

/// `GET /api/batches/{id}/records`: the business records of a batch.
#[utoipa::path(get, path = "/api/batches/{id}/records", tag = "batches",
    params(("id" = i64, Path, description = "The batch")),
    responses((status = 200, description = "The batch's records", body = Vec<RecordRow>),
              (status = 404, description = "No such batch (or not the caller's)", body = ErrorBody)))]
pub async fn batch_records(State(state): State<AppState>, caller: Module<DataBusiness>, ApiPath(id): ApiPath<i64>) -> Result<Json<Vec<RecordRow>>, ApiError> {
    let scope = &caller.scope;
    let (batch, records) = blocking(&state, move |store| -> Result<_, crate::store::DbError> {
        Ok((store.batch(id)?, store.batch_records(id)?))
    })
    .await??;
    if !batch.is_some_and(|b| scope.project_site(b.project_id, b.site_id)) {
        return Err(ApiError::not_found(format!("batch {id} does not exist")));
    }
    let out = records
        .into_iter()
        .map(|r| RecordRow {
            values: r.values.into_iter().map(|(k, v)| (k, Value::String(v))).collect(),
            attempt_id: r.attempt_id,
            site_id: r.site_id,
            row_id: r.row_id,
            phone: r.phone,
            agent: r.agent,
            saved_at: r.saved_at,
        })
        .collect();
    Ok(Json(out))
}

/// Where a recording is.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordingState {
    /// HQ holds it: download it now.
    Held,
    /// The online site was asked to upload it now.
    Requested,
    /// The site is offline; the recording comes in its turn once it reconnects.
    SiteOffline,
}

/// The answer to asking for a recording.
#[derive(Serialize, ToSchema)]
pub struct FetchReply {
    pub state: RecordingState,
}

/// `POST /api/sites/{id}/recordings/{sha256}/fetch`: HQ holds it (`held`), or the online
/// site was asked to upload it now (`requested`), or the site is offline and the recording
/// comes in its turn once it reconnects (`site_offline`).
#[utoipa::path(post, path = "/api/sites/{id}/recordings/{sha256}/fetch", tag = "recordings",
    params(("id" = i64, Path, description = "The site"),
           ("sha256" = String, Path, description = "The recording's SHA-256, 64 lowercase hex digits", pattern = "^[0-9a-f]{64}$")),
    responses((status = 200, description = "Where the recording is", body = FetchReply),
              (status = 400, description = "The hash is not 64 hex digits", body = ErrorBody),
              (status = 404, description = "No such site (or not the caller's)", body = ErrorBody)))]
pub async fn fetch_recording(
    State(state): State<AppState>,
    caller: Module<DataRecordings>,
    ApiPath((site_id, sha256)): ApiPath<(i64, String)>,
) -> Result<Json<FetchReply>, ApiError> {
    if !caller.scope.site(site_id) {
        return Err(ApiError::not_found(format!("site {site_id} does not exist")));
    }
    let requests = state.recordings.clone();
    let fetched = blocking(&state, move |store| store.request_recording(&requests, site_id, &sha256))
        .await?
        .map_err(recording_error)?;
    let state = match fetched {
        crate::store::RecordingFetch::Held(_) => RecordingState::Held,
        crate::store::RecordingFetch::Requested => RecordingState::Requested,
        crate::store::RecordingFetch::SiteOffline => RecordingState::SiteOffline,
    };
    Ok(Json(FetchReply { state }))
}

/// `GET /api/sites/{id}/recordings/{sha256}`: the WAV file, once HQ holds it.
#[utoipa::path(get, path = "/api/sites/{id}/recordings/{sha256}", tag = "recordings",
    params(("id" = i64, Path, description = "The site"),
           ("sha256" = String, Path, description = "The recording's SHA-256, 64 lowercase hex digits", pattern = "^[0-9a-f]{64}$")),
    responses((status = 200, description = "The recording", body = FileBytes, content_type = "audio/wav"),
              (status = 400, description = "The hash is not 64 hex digits", body = ErrorBody),
              (status = 404, description = "No such site, or HQ does not hold the recording yet (ask with POST …/fetch)", body = ErrorBody)))]
pub async fn download_recording(
    State(state): State<AppState>,
    caller: Module<DataRecordings>,
    ApiPath((site_id, sha256)): ApiPath<(i64, String)>,
) -> Result<FileBytes, ApiError> {
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
    Ok(FileBytes { content_type: "audio/wav", file_name: name, bytes })
}

fn recording_error(error: crate::store::RecordingRequestError) -> ApiError {
    match error {
        crate::store::RecordingRequestError::BadHash(_) => ApiError::bad_request(error.to_string()),
        crate::store::RecordingRequestError::Io(_) => ApiError::internal(error),
    }
}

/// `GET /api/alarms`: alarms the link raised, for the caller's sites (hub-wide ones to admins).
#[utoipa::path(get, path = "/api/alarms", tag = "sites",
    responses((status = 200, description = "Alarms, newest first", body = Vec<AlarmView>)))]
pub async fn list_alarms(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<AlarmView>>, ApiError> {
    let scope = &caller.scope;
    let mut alarms = blocking(&state, |store| store.list_alarms()).await??;
    alarms.retain(|a| a.site_id.is_none_or(|site| scope.site(site)) && (scope.is_admin() || a.site_id.is_some()));
    Ok(Json(alarms))
}
