//! The console's HTML pages (askama templates under `templates/`), plain forms; the little
//! script they use lives in `static/console.js` (the CSP allows no inline script). View structs hold display-ready strings: masking and formatting happen here and
//! in the store, never in a template.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Form, Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use web_guard::ClientAddr;

use super::api::{import_upload, read_upload};
use super::guard::{DataBatches, DataBusiness, DataFiles};
use super::{
    blocking, cookie, limits, session_cookie, with_rate, Admin, ApiError, AppState, Module, PageLang, PageUser, Tr,
    SESSION_COOKIE,
};
use crate::store::{
    BatchSummary, Category, DispatchKind, DispatchRequest, ExclusivePart, FieldSpec, FieldSpecKind, FileSummary, ImportReport,
    NewProject, PhoneMode, Project,
};

/// How many empty field rows the create-project form offers per list.
const FORM_FIELD_ROWS: usize = 4;

/// How many exclusive batches the dispatch form offers.
const EXCLUSIVE_ROWS: usize = 5;

pub(super) fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(err) => ApiError::internal(err).into_response(),
    }
}

/// A page that reports a failure (or a one-off result) with a link back.
#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    tr: Tr,
    user: String,
    title: String,
    message: String,
    back: String,
}

pub(super) fn message(tr: Tr, user: &str, title: &str, message: impl Into<String>, back: &str) -> Response {
    // Handlers and stores may word a refusal in English only: the catalogue says it in the
    // page's language.
    let message = super::messages::localize(tr, &message.into());
    render(&MessagePage { tr, user: user.to_string(), title: title.to_string(), message, back: back.to_string() })
}

/// "X n does not exist" in the page's language (also what a sub-admin sees for anything
/// outside its scope, so that it learns nothing about it).
fn missing(tr: Tr, zh: &str, en: &str, id: i64) -> String {
    if tr.is_en() { format!("{en} {id} does not exist") } else { format!("{zh} {id} 不存在") }
}

/// A refused form: the reason on a message page with status 400.
pub(super) fn failed(user: &PageUser, text: String, back: &str) -> Response {
    failed_with(user, StatusCode::BAD_REQUEST, text, back)
}

/// A failure on a message page with its status (404 for what the caller may not see).
fn failed_with(user: &PageUser, status: StatusCode, text: String, back: &str) -> Response {
    let mut page = message(user.tr, &user.account.username, user.tr.text().common_failed, text, back);
    *page.status_mut() = status;
    page
}

/// Turns a failed action into a message page; a success passes through.
#[allow(clippy::result_large_err)] // the error is the page to send, built once per request
pub(super) fn or_message<T>(result: Result<T, ApiError>, user: &PageUser, back: &str) -> Result<T, Response> {
    result.map_err(|err| {
        if err.status.is_server_error() {
            err.into_response()
        } else {
            failed_with(user, err.status, err.message, back)
        }
    })
}

pub async fn set_lang(Path(code): Path<String>, headers: HeaderMap) -> Response {
    let value = if code == "en" { "en" } else { "zh" };
    // Only a same-site path is followed back, never an absolute URL from the header.
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.find("://").map(|i| &r[i + 3..]))
        .and_then(|rest| rest.find('/').map(|i| rest[i..].to_string()))
        .unwrap_or_else(|| "/".to_string());
    ([(header::SET_COOKIE, format!("lang={value}; Path=/; Max-Age=31536000; SameSite=Lax"))], Redirect::to(&back))
        .into_response()
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    tr: Tr,
    user: String,
    error: String,
}

pub async fn login_page(PageLang(tr): PageLang) -> Response {
    render(&LoginPage { tr, user: String::new(), error: String::new() })
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
}


/// `POST /login`: throttled like `POST /api/login`; a throttled attempt gets the login page
/// again saying how long to wait, without checking the password.
pub async fn login_submit(
    State(state): State<AppState>,
    PageLang(tr): PageLang,
    ClientAddr(source): ClientAddr,
    Form(form): Form<LoginForm>,
) -> Response {
    let page_error = |error: String| render(&LoginPage { tr, user: String::new(), error });
    if let Err(too_long) = limits::login(&form.username, &form.password) {
        return page_error(too_long.text(tr));
    }
    if let Err(wait) = state.throttle.attempt(&form.username, source) {
        let mut page = page_error(if tr.is_en() { wait.to_string() } else { wait.zh() });
        *page.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        page.headers_mut().insert(header::RETRY_AFTER, wait.seconds().into());
        return page;
    }
    let username = form.username.clone();
    match blocking(&state, move |store| store.login(&form.username, &form.password)).await {
        Ok(Ok((token, _))) => {
            state.throttle.succeeded(&username, source);
            ([(header::SET_COOKIE, session_cookie(&token))], Redirect::to("/")).into_response()
        }
        Ok(Err(crate::store::LoginError::BadCredentials)) => {
            let error = if tr.is_en() { "Wrong username or password." } else { "账号或密码错误。" };
            render(&LoginPage { tr, user: String::new(), error: error.to_string() })
        }
        Ok(Err(crate::store::LoginError::Disabled)) => {
            let error = if tr.is_en() { "This account is disabled: ask an admin to enable it." } else { "该账号已停用：请联系管理员启用。" };
            render(&LoginPage { tr, user: String::new(), error: error.to_string() })
        }
        Ok(Err(err)) => ApiError::internal(err).into_response(),
        Err(err) => err.into_response(),
    }
}

pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let token = cookie(&headers, SESSION_COOKIE).map(str::to_string);
    if let Some(token) = token
        && let Err(err) = blocking(&state, move |store| store.logout(&token)).await
    {
        return err.into_response();
    }
    ([(header::SET_COOKIE, format!("{SESSION_COOKIE}=; Path=/; Max-Age=0"))], Redirect::to("/login")).into_response()
}

#[derive(Deserialize)]
pub struct NameForm {
    pub(super) name: String,
}

struct ProjectRow {
    archived: bool,
    id: i64,
    category: String,
    name: String,
    n_customer_fields: usize,
    n_record_fields: usize,
    hide: bool,
}

#[derive(Template)]
#[template(path = "projects.html")]
struct ProjectsPage {
    tr: Tr,
    user: String,
    categories: Vec<Category>,
    projects: Vec<ProjectRow>,
    field_rows: Vec<usize>,
    field_lists: [FieldList; 2],
    /// (id, "category / name") of sub-projects usable as templates.
    templates: Vec<(i64, String)>,
    is_admin: bool,
}

/// One of the two field tables of the create-project form.
struct FieldList {
    /// Form-name prefix: `cf` customer fields, `rf` business-record fields.
    prefix: &'static str,
    customer: bool,
}

pub async fn projects_page(State(state): State<AppState>, user: PageUser) -> Response {
    let loaded = blocking(&state, |store| -> Result<_, crate::store::DbError> {
        Ok((store.list_categories()?, (store.list_projects()?, store.archived_projects()?)))
    })
    .await;
    let (categories, (projects, archived)) = match loaded {
        Ok(Ok(pair)) => pair,
        Ok(Err(err)) => return ApiError::from(err).into_response(),
        Err(err) => return err.into_response(),
    };
    let templates: Vec<(i64, String)> = projects.iter().filter(|p| user.scope.project(p.id)).map(|p| (p.id, format!("{} / {}", p.category_name, p.name))).collect();
    // Archived projects come last, marked (归档: out of the working list, not deleted).
    let mut projects: Vec<ProjectRow> = projects
        .into_iter()
        .filter(|p| user.scope.project(p.id))
        .map(|p| ProjectRow {
            archived: archived.contains(&p.id),
            id: p.id,
            category: p.category_name,
            name: p.name,
            n_customer_fields: p.customer_fields.len(),
            n_record_fields: p.record_fields.len(),
            hide: p.hide_middle_digits,
        })
        .collect();
    projects.sort_by_key(|p| p.archived);
    render(&ProjectsPage {
        tr: user.tr,
        user: user.account.username,
        categories,
        projects,
        field_rows: (0..FORM_FIELD_ROWS).collect(),
        field_lists: [FieldList { prefix: "cf", customer: true }, FieldList { prefix: "rf", customer: false }],
        templates,
        is_admin: user.scope.is_admin(),
    })
}

pub async fn create_category(State(state): State<AppState>, Admin(user): Admin, Form(form): Form<NameForm>) -> Response {
    if let Err(too_long) = limits::name(&form.name) {
        return failed(&user, too_long.text(user.tr), "/projects");
    }
    let result = blocking(&state, move |store| store.create_category(&form.name).map_err(ApiError::from)).await;
    match or_message(result.and_then(|r| r), &user, "/projects") {
        Ok(_) => Redirect::to("/projects").into_response(),
        Err(page) => page,
    }
}

/// Reads the `prefix_key_N`, `prefix_title_N`, `prefix_kind_N`, `prefix_options_N` rows of
/// the create-project form; rows with neither key nor title are skipped.
fn fields_from_form(form: &HashMap<String, String>, prefix: &str) -> Vec<FieldSpec> {
    let get = |name: &str, idx: usize| form.get(&format!("{prefix}_{name}_{idx}")).map(|v| v.trim().to_string()).unwrap_or_default();
    let mut fields = Vec::new();
    for idx in 0..FORM_FIELD_ROWS {
        let key = get("key", idx);
        let title = get("title", idx);
        if key.is_empty() && title.is_empty() {
            continue;
        }
        let kind = match get("kind", idx).as_str() {
            "single_choice" => FieldSpecKind::SingleChoice,
            "multiple_choice" => FieldSpecKind::MultipleChoice,
            "number" => FieldSpecKind::Number,
            "date" => FieldSpecKind::Date,
            _ => FieldSpecKind::Text,
        };
        let options = get("options", idx).lines().map(str::to_string).collect();
        let mut field = FieldSpec { key, title, kind, options, ..FieldSpec::text("", "") };
        field.default = get("default", idx);
        match get("mode", idx).as_str() {
            "required" => field.required = true,
            "read_only" => field.read_only = true,
            "hidden" => field.hidden = true,
            _ => {}
        }
        field.filterable = form.contains_key(&format!("{prefix}_filterable_{idx}"));
        fields.push(field);
    }
    fields
}

pub async fn create_project(State(state): State<AppState>, Admin(user): Admin, Form(form): Form<HashMap<String, String>>) -> Response {
    let category_id = form.get("category_id").and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let new = NewProject {
        category_id,
        name: form.get("name").cloned().unwrap_or_default(),
        script: form.get("script").cloned().unwrap_or_default(),
        hide_middle_digits: form.contains_key("hide_middle_digits"),
        customer_fields: fields_from_form(&form, "cf"),
        record_fields: fields_from_form(&form, "rf"),
        template_id: form.get("template_id").and_then(|v| v.parse().ok()),
        settings: Default::default(),
        phone_mode: if form.get("phone_mode").map(String::as_str) == Some("token") { PhoneMode::Token } else { PhoneMode::Number },
    };
    if let Err(too_long) = limits::project(&new) {
        return failed(&user, too_long.text(user.tr), "/projects");
    }
    let result = blocking(&state, move |store| store.create_project(&new).map_err(ApiError::from)).await;
    match or_message(result.and_then(|r| r), &user, "/projects") {
        Ok(id) => Redirect::to(&format!("/projects/{id}")).into_response(),
        Err(page) => page,
    }
}

struct FileRow {
    id: i64,
    file_name: String,
    project_name: String,
    source: String,
    status: String,
    time: String,
    creator: String,
    n_rows: i64,
    n_good: i64,
    remark: String,
    /// Made by the hub (a filter result): its "bad rows" are the rows filtered out.
    system: bool,
}

fn file_rows(tr: Tr, files: Vec<FileSummary>) -> Vec<FileRow> {
    files
        .into_iter()
        .map(|f| FileRow {
            system: f.source != "upload",
            id: f.id,
            source: if f.source == "upload" { tr.text().files_source_upload } else { tr.text().files_source_system }.to_string(),
            status: if f.status == "done" { tr.text().files_status_done } else { tr.text().files_status_unprocessed }.to_string(),
            time: super::shell::minute(f.created_at),
            file_name: f.file_name,
            project_name: f.project_name,
            creator: f.creator,
            n_rows: f.n_rows,
            n_good: f.n_good,
            remark: f.remark,
        })
        .collect()
}

struct FieldRow {
    title: String,
    key: String,
    kind: String,
    options: String,
    filterable: bool,
    listed: bool,
}

#[derive(Template)]
#[template(path = "project.html")]
struct ProjectPage {
    tr: Tr,
    user: String,
    project: Project,
    customer_fields: Vec<FieldRow>,
    record_fields: Vec<FieldRow>,
    files: Vec<FileRow>,
    setup: Option<ProjectSetup>,
    /// The role may mark filterable fields (系统设置).
    can_set_filters: bool,
}

/// The set-up forms of a project page (admins only): parameters, participating sites,
/// project admins (step 2, once sites take part) and attribution rules.
struct ProjectSetup {
    settings: SettingsView,
    /// Every site, with whether it takes part.
    sites: Vec<(i64, String, bool)>,
    /// Participating sites only (for rules).
    participating: Vec<(i64, String)>,
    /// Sub-admin accounts: (account id, username, [(site id, name, is admin of it here)])
    /// offering only participating sites inside the account's data permission.
    admins: Vec<(i64, String, Vec<(i64, String, bool)>)>,
    /// `(key, title)` of the customer fields rules may match.
    rule_fields: Vec<(String, String)>,
    /// Existing rules then empty rows: (field key, value, site id, agent).
    rules: Vec<(String, String, i64, String)>,
    /// The length of the project's dial tokens.
    token_length: usize,
}

/// Project parameters as the form shows them ("" = left to each site).
struct SettingsView {
    dial_mode: &'static str,
    popup_timing: &'static str,
    status: &'static str,
    ring_seconds: String,
    ratio: String,
    max_concurrency: String,
    windows: String,
}

fn settings_view(s: &crate::store::ProjectSettings) -> SettingsView {
    use crate::store::{DialModeSetting, PopupTiming, ProjectStatus};
    let number = |v: Option<u32>| v.map(|n| n.to_string()).unwrap_or_default();
    SettingsView {
        dial_mode: match s.dial_mode {
            Some(DialModeSetting::Predictive) => "predictive",
            Some(DialModeSetting::OneClick) => "one_click",
            None => "",
        },
        popup_timing: match s.popup_timing {
            Some(PopupTiming::OnAnswer) => "on_answer",
            Some(PopupTiming::OnRing) => "on_ring",
            None => "",
        },
        status: match s.status {
            Some(ProjectStatus::Running) => "running",
            Some(ProjectStatus::Paused) => "paused",
            None => "",
        },
        ring_seconds: number(s.ring_seconds),
        ratio: number(s.ratio),
        max_concurrency: number(s.max_concurrency),
        windows: s.calling_windows.iter().map(|w| format!("{}-{}", w.start, w.end)).collect::<Vec<_>>().join("\n"),
    }
}

/// How many empty attribution rows the form offers below the existing rules.
const EMPTY_RULE_ROWS: usize = 3;

fn field_rows(tr: Tr, fields: &[FieldSpec]) -> Vec<FieldRow> {
    fields
        .iter()
        .map(|f| FieldRow {
            title: f.title.clone(),
            key: f.key.clone(),
            kind: match f.kind {
                FieldSpecKind::Text => tr.text().projects_kind_text,
                FieldSpecKind::SingleChoice => tr.text().projects_kind_choice,
                FieldSpecKind::MultipleChoice => tr.text().projects_kind_multi,
                FieldSpecKind::Number => tr.text().projects_kind_number,
                FieldSpecKind::Date => tr.text().projects_kind_date,
            }
            .to_string(),
            options: f.options.join(" / "),
            filterable: f.filterable,
            listed: f.listed,
        })
        .collect()
}

pub async fn project_page(State(state): State<AppState>, user: PageUser, Path(id): Path<i64>) -> Response {
    let is_admin = user.scope.is_admin();
    let loaded = blocking(&state, move |store| -> Result<_, crate::store::DbError> {
        let extra = if is_admin {
            Some((store.list_sites()?, store.list_accounts()?, store.project_admins(id)?, store.attribution_rules(id)?, store.project_token_length(id)?))
        } else {
            None
        };
        Ok((store.project(id)?, store.list_files(Some(id))?, extra))
    })
    .await;
    let (project, files, extra) = match loaded {
        Ok(Ok((Some(project), files, extra))) if user.scope.project(project.id) => (project, files, extra),
        Ok(Ok(_)) => {
            return failed_with(&user, StatusCode::NOT_FOUND, missing(user.tr, "子项目", "sub-project", id), "/projects")
        }
        Ok(Err(err)) => return ApiError::from(err).into_response(),
        Err(err) => return err.into_response(),
    };
    let setup = extra.map(|(sites, accounts, admins, rules, token_length)| {
        let participating: Vec<(i64, String)> =
            sites.iter().filter(|s| project.site_ids.contains(&s.id)).map(|s| (s.id, s.name.clone())).collect();
        let admins = accounts
            .into_iter()
            .filter(|a| !a.is_admin)
            .map(|a| {
                let current = admins.iter().find(|x| x.account_id == a.id).map(|x| x.site_ids.clone()).unwrap_or_default();
                let offered = participating
                    .iter()
                    .filter(|(site, _)| a.site_ids.as_ref().is_none_or(|scope| scope.contains(site)))
                    .map(|(site, name)| (*site, name.clone(), current.contains(site)))
                    .collect();
                (a.id, a.username, offered)
            })
            .collect();
        let mut rule_rows: Vec<(String, String, i64, String)> = rules.into_iter().map(|r| (r.field_key, r.value, r.site_id, r.agent)).collect();
        rule_rows.extend((0..EMPTY_RULE_ROWS).map(|_| (String::new(), String::new(), 0, String::new())));
        ProjectSetup {
            settings: settings_view(&project.settings),
            sites: sites.iter().map(|s| (s.id, s.name.clone(), project.site_ids.contains(&s.id))).collect(),
            participating,
            admins,
            rule_fields: project.customer_fields.iter().map(|f| (f.key.clone(), f.title.clone())).collect(),
            rules: rule_rows,
            token_length: token_length.unwrap_or(crate::store::DEFAULT_TOKEN_LENGTH),
        }
    });
    render(&ProjectPage {
        tr: user.tr,
        customer_fields: field_rows(user.tr, &project.customer_fields),
        record_fields: field_rows(user.tr, &project.record_fields),
        files: file_rows(user.tr, files),
        can_set_filters: user.scope.has_module(<super::guard::DataSettings as super::guard::Permission>::KEY),
        user: user.account.username,
        project,
        setup,
    })
}

pub async fn upload_file(State(state): State<AppState>, Module(user, _): Module<DataFiles>, Path(project_id): Path<i64>, multipart: Multipart) -> Response {
    let back = format!("/projects/{project_id}");
    if !user.scope.project(project_id) {
        return failed_with(&user, StatusCode::NOT_FOUND, missing(user.tr, "子项目", "sub-project", project_id), "/projects");
    }
    let upload = match or_message(read_upload(multipart).await, &user, &back) {
        Ok(upload) => upload,
        Err(page) => return page,
    };
    match import_upload(&state, project_id, user.account.username.clone(), upload.file_name, upload.file).await {
        Ok(Ok((file_id, _))) => Redirect::to(&format!("/files/{file_id}")).into_response(),
        Ok(Err(err)) => {
            let text = if user.tr.is_en() { err.to_string() } else { err.zh() };
            message(user.tr, &user.account.username, user.tr.text().common_failed, text, &back)
        }
        Err(err) => or_message::<()>(Err(err), &user, &back).err().unwrap_or_else(|| Redirect::to(&back).into_response()),
    }
}

#[derive(Template)]
#[template(path = "files.html")]
struct FilesPage {
    tr: Tr,
    user: String,
    files: Vec<FileRow>,
    pager: super::paging::Pager,
}

/// 文件管理: the caller's files, newest first, a page at a time, filtered by import date.
pub async fn files_page(State(state): State<AppState>, Module(user, _): Module<DataFiles>, Query(query): Query<super::paging::ListQuery>) -> Response {
    let (scope, tr, q) = (user.scope.clone(), user.tr, query.clone());
    let loaded = blocking(&state, move |store| {
        let (window, error) = q.window(tr, store.utc_offset_secs());
        store.files_page(None, &window, &scope).map(|page| (page, error))
    })
    .await;
    match loaded {
        Ok(Ok((page, error))) => {
            let pager = query.pager("/files", error, page.next.map(|id| id.to_string()));
            render(&FilesPage { tr: user.tr, files: file_rows(user.tr, page.items), user: user.account.username, pager })
        }
        Ok(Err(err)) => ApiError::from(err).into_response(),
        Err(err) => err.into_response(),
    }
}

struct BadRowView {
    row: u32,
    column: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "file.html")]
struct FilePage {
    tr: Tr,
    user: String,
    file: FileRow,
    report: ImportReport,
    bad: Vec<BadRowView>,
    sites: Vec<super::site_pages::SiteRow>,
    default_name: String,
    part_rows: Vec<usize>,
    filter: crate::store::FilterSettings,
}

pub async fn file_page(State(state): State<AppState>, Module(user, _): Module<DataFiles>, Path(id): Path<i64>) -> Response {
    let loaded = blocking(&state, move |store| -> Result<_, crate::store::DbError> { Ok((store.file(id)?, store.list_sites()?)) }).await;
    let ((summary, report), mut sites) = match loaded {
        Ok(Ok((Some(file), sites))) if user.scope.project(file.0.project_id) => (file, sites),
        Ok(Ok(_)) => {
            return failed_with(&user, StatusCode::NOT_FOUND, missing(user.tr, "文件", "file", id), "/files")
        }
        Ok(Err(err)) => return ApiError::from(err).into_response(),
        Err(err) => return err.into_response(),
    };
    let bad = report
        .bad
        .iter()
        .map(|b| BadRowView {
            row: b.row,
            column: b.column.clone(),
            reason: if user.tr.is_en() { b.reason.clone() } else { b.reason_zh.clone() },
        })
        .collect();
    sites.retain(|s| user.scope.project_site(summary.project_id, s.id));
    let default_name = summary.file_name.trim_end_matches(".xlsx").trim_end_matches(".XLSX").to_string();
    let file = file_rows(user.tr, vec![summary]).remove(0);
    let account_id = user.account.id;
    let filter = match blocking(&state, move |store| store.filter_settings(account_id)).await {
        Ok(Ok(settings)) => settings,
        Ok(Err(err)) => return ApiError::from(err).into_response(),
        Err(err) => return err.into_response(),
    };
    render(&FilePage {
        tr: user.tr,
        user: user.account.username,
        file,
        report,
        bad,
        sites: super::site_pages::site_rows(sites),
        default_name,
        part_rows: (0..EXCLUSIVE_ROWS).collect(),
        filter,
    })
}

pub async fn dispatch_file(
    State(state): State<AppState>,
    Module(user, _): Module<DataFiles>,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let back = format!("/files/{id}");
    let site_ids: Vec<i64> = form.keys().filter_map(|k| k.strip_prefix("site_")).filter_map(|v| v.parse().ok()).collect();
    // Exclusive parts come as part_name_N / part_count_N / part_site_N.
    let mut parts = Vec::new();
    for idx in 0..EXCLUSIVE_ROWS {
        let get = |name: &str| form.get(&format!("part_{name}_{idx}")).map(|v| v.trim().to_string()).unwrap_or_default();
        let (name, count, site) = (get("name"), get("count"), get("site"));
        if count.is_empty() {
            continue;
        }
        parts.push(ExclusivePart { name, count: count.parse().unwrap_or(0), site_id: site.parse().unwrap_or(0) });
    }
    let kind = match form.get("kind").map(String::as_str) {
        Some("exclusive") => DispatchKind::Exclusive(parts),
        Some("auto") => DispatchKind::Auto,
        _ => DispatchKind::Shared,
    };
    let request = DispatchRequest {
        file_id: id,
        name: form.get("name").cloned().unwrap_or_default(),
        priority: form.get("priority").and_then(|p| p.trim().parse().ok()).unwrap_or(-1),
        site_ids,
        creator: user.account.username.clone(),
        kind,
        update_existing: form.contains_key("update_existing"),
        description: form.get("description").cloned().unwrap_or_default(),
    };
    let parts: &[ExclusivePart] = match &request.kind {
        DispatchKind::Exclusive(parts) => parts,
        _ => &[],
    };
    if let Err(too_long) = limits::dispatch(&request.name, &request.description, parts) {
        return failed(&user, too_long.text(user.tr), &back);
    }
    let scope = user.scope.clone();
    let auto = matches!(request.kind, DispatchKind::Auto);
    let tr = user.tr;
    let lease = super::pools::lease_from_form(&form);
    let result =
        blocking(&state, move |store| store.dispatch_with_lease(&request, &scope, lease).map_err(|e| super::edit::dispatch_refused(tr, e))).await;
    match or_message(result.and_then(|r| r), &user, &back) {
        Ok(outcome) if auto || !outcome.removed.is_empty() || outcome.leftover > 0 => {
            let mut text = super::edit::dispatch_summary(user.tr, &outcome);
            for row in &outcome.removed {
                let reason = if user.tr.is_en() { &row.reason } else { &row.reason_zh };
                text.push_str(&format!("\n{} {}: {reason}", row.row, row.phone));
            }
            message(user.tr, &user.account.username, user.tr.text().dispatch_done, text, "/batches")
        }
        Ok(_) => Redirect::to("/batches").into_response(),
        Err(page) => page,
    }
}

struct BatchRow {
    id: i64,
    description: String,
    ended: bool,
    name: String,
    project_name: String,
    numbers: i64,
    dialed: i64,
    connected: String,
    not_connected: String,
    agent_missed: String,
    abandoned: String,
    agent_connected: String,
    creator: String,
    site: String,
    priority: i64,
    pooled: bool,
}

fn batch_row(b: &BatchSummary) -> BatchRow {
    BatchRow {
        id: b.id,
        description: b.description.clone(),
        ended: b.ended,
        name: b.name.clone(),
        project_name: b.project_name.clone(),
        numbers: b.numbers,
        dialed: b.dialed,
        connected: with_rate(b.connected, b.dialed),
        not_connected: with_rate(b.not_connected(), b.dialed),
        agent_missed: with_rate(b.agent_missed, b.dialed),
        abandoned: with_rate(b.abandoned, b.connected),
        agent_connected: with_rate(b.agent_connected, b.dialed),
        creator: b.creator.clone(),
        site: b.site_name.clone(),
        priority: b.priority,
        pooled: b.pool_id.is_some(),
    }
}

#[derive(Template)]
#[template(path = "batches.html")]
struct BatchesPage {
    tr: Tr,
    user: String,
    batches: Vec<BatchRow>,
    categories: Vec<Category>,
    /// What a one-click pause would stop, for its confirmation.
    pause: super::pause::PausePrompts,
    pager: super::paging::Pager,
}

/// 下发任务管理: the caller's batches, newest first, a page at a time, filtered by date; the
/// one-click pause's question counts all of them, not the page.
pub async fn batches_page(State(state): State<AppState>, Module(user, _): Module<DataBatches>, Query(query): Query<super::paging::ListQuery>) -> Response {
    let (scope, tr, q) = (user.scope.clone(), user.tr, query.clone());
    let loaded = blocking(&state, move |store| -> Result<_, crate::store::DbError> {
        let (window, error) = q.window(tr, store.utc_offset_secs());
        let all = store.list_batches_scoped(&scope)?;
        Ok((store.batches_page(&window, &scope)?, all, store.list_categories()?, store.list_projects()?, error))
    })
    .await;
    match loaded {
        Ok(Ok((page, all, categories, projects, error))) => render(&BatchesPage {
            tr: user.tr,
            user: user.account.username,
            pause: super::pause::PausePrompts::new(user.tr, &all, &projects, &categories),
            batches: page.items.iter().map(batch_row).collect(),
            categories,
            pager: query.pager("/batches", error, page.next.map(|id| id.to_string())),
        }),
        Ok(Err(err)) => ApiError::from(err).into_response(),
        Err(err) => err.into_response(),
    }
}

struct RecordRow {
    attempt_id: i64,
    phone: String,
    agent: String,
    saved_at: String,
    values: Vec<String>,
}

#[derive(Template)]
#[template(path = "records.html")]
struct RecordsPage {
    tr: Tr,
    user: String,
    batch: BatchRow,
    columns: Vec<String>,
    records: Vec<RecordRow>,
    pager: super::paging::Pager,
}

/// 业务记录 of a batch, newest first, a page at a time, filtered by the day saved.
pub async fn records_page(
    State(state): State<AppState>,
    Module(user, _): Module<DataBusiness>,
    Path(id): Path<i64>,
    Query(query): Query<super::paging::ListQuery>,
) -> Response {
    let (tr, q) = (user.tr, query.clone());
    let loaded = blocking(&state, move |store| -> Result<_, crate::store::DbError> {
        let Some(batch) = store.batch(id)? else { return Ok(None) };
        let project = store.project(batch.project_id)?;
        let (mut window, error) = q.record_window(tr, store.utc_offset_secs());
        window.limit += 1;
        Ok(Some((batch, project, (store.batch_records_window(id, &window)?, error))))
    })
    .await;
    let (batch, project, (mut records, error)) = match loaded {
        Ok(Ok(Some(found))) if user.scope.project_site(found.0.project_id, found.0.site_id) => found,
        Ok(Ok(_)) => {
            return failed_with(&user, StatusCode::NOT_FOUND, missing(user.tr, "批次", "batch", id), "/batches")
        }
        Ok(Err(err)) => return ApiError::from(err).into_response(),
        Err(err) => return err.into_response(),
    };
    let next = if records.len() > super::paging::PAGE_ROWS {
        records.truncate(super::paging::PAGE_ROWS);
        records.last().map(|r| format!("{}.{}", r.saved_at, r.attempt_id))
    } else {
        None
    };
    let pager = query.pager(&format!("/batches/{id}/records"), error, next);
    let record_fields = project.map(|p| p.record_fields).unwrap_or_default();
    let columns = record_fields.iter().map(|f| f.title.clone()).collect();
    let records = records
        .into_iter()
        .map(|r| RecordRow {
            attempt_id: r.attempt_id,
            values: record_fields
                .iter()
                .map(|f| r.values.iter().find(|(k, _)| *k == f.key).map(|(_, v)| v.clone()).unwrap_or_default())
                .collect(),
            phone: r.phone,
            agent: r.agent,
            saved_at: super::shell::minute(r.saved_at),
        })
        .collect();
    render(&RecordsPage { tr: user.tr, user: user.account.username, batch: batch_row(&batch), columns, records, pager })
}
