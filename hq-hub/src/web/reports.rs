//! The report console (数据报表管理, H14-H17), guarded by the module `reports`:
//!
//! - `/reports`: the categories and sub-projects the caller sees, with the way into each
//!   report below.
//! - `/reports/projects/{id}`: a sub-project's reports: the builder (添加报表 / 数据编辑: title,
//!   tags, conditions, statistic and ratio columns under their headers) and the preview
//!   (统计预览) with the manual's filters, a table and a chart beside it, and the export.
//! - `/reports/projects/{id}/board`: the project leaderboard (项目榜单), one line per team,
//!   ranked by the report's first column.
//! - `/reports/categories/{id}`: the project report (项目报表) over one category's
//!   sub-projects; `/reports/overall`: the comprehensive report (综合项目报表) over chosen
//!   sub-projects of any category; `/reports/running`: the projects with calls today /
//!   yesterday / in 7 days / in a month (在执行项目), each with its figures and report.
//!
//! Every figure comes from `POST /api/reports/run` (the export from `POST
//! /api/reports/export`), which runs the engine through the caller's data scope
//! ([`report_run`]): a sub-admin's table, chart and sheet hold only its projects at its sites.
//! Pages carry their settings as JSON in `data-` attributes; `/static/reports.js` draws them
//! (no inline script: the CSP forbids it).

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use reports::{ReportDef, Statistic, Tag, TimeFilter};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use super::api::FileBytes;
use super::extract::{ApiJson, ApiPath};
use super::guard::{Access, Registry, Reports};
use super::pages::{message, render};
use super::report_run::{self, ReportView, RunInput, RunRequest};
use super::report_xlsx::report_xlsx;
use super::{blocking, ApiError, AppState, Module, Tr};
use crate::store::{now_unix, Project};

/// The console's report routes, all behind the module 数据报表管理.
pub(super) fn routes(r: Registry) -> Registry {
    let reports = Access::module::<Reports>();
    r.get("/static/reports.js", Access::Public, reports_js)
        .get("/reports", reports, index_page)
        .get("/reports/projects/{id}", reports, project_page)
        .get("/reports/projects/{id}/board", reports, board_page)
        .get("/reports/categories/{id}", reports, category_page)
        .get("/reports/overall", reports, overall_page)
        .get("/reports/running", reports, running_page)
        .post("/api/reports/run", reports, run_report)
        .post("/api/reports/export", reports, export_report)
        .get("/api/reports/projects/{id}/choices", reports, choices)
}

/// The report routes' part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(run_report, export_report, choices))]
pub struct ReportsDoc;

async fn reports_js() -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("../../static/reports.js"))
}

// ---- JSON ----

/// `POST /api/reports/run`: a report's table and chart, through the caller's scope.
#[utoipa::path(post, path = "/api/reports/run", tag = "reports", request_body = RunRequest,
    responses((status = 200, description = "The report in words", body = ReportView),
              (status = 400, description = "The definition or a filter is refused; the message names the field", body = super::ErrorBody),
              (status = 404, description = "A project the caller does not see", body = super::ErrorBody)))]
pub async fn run_report(
    State(state): State<AppState>,
    caller: Module<Reports>,
    ApiJson(request): ApiJson<RunRequest>,
) -> Result<Json<ReportView>, ApiError> {
    let (tr, scope) = (caller.tr, caller.scope.clone());
    let view = blocking(&state, move |store| {
        report_run::run(store, &RunInput { tr, scope: &scope, request: &request, now: now_unix() })
    })
    .await??;
    Ok(Json(view))
}

/// `POST /api/reports/export`: the same report as an `.xlsx` with a native chart.
#[utoipa::path(post, path = "/api/reports/export", tag = "reports", request_body = RunRequest,
    responses((status = 200, description = "The workbook", body = FileBytes,
               content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
              (status = 400, description = "The definition or a filter is refused; the message names the field", body = super::ErrorBody),
              (status = 404, description = "A project the caller does not see", body = super::ErrorBody)))]
pub async fn export_report(
    State(state): State<AppState>,
    caller: Module<Reports>,
    ApiJson(request): ApiJson<RunRequest>,
) -> Result<FileBytes, ApiError> {
    let (tr, scope) = (caller.tr, caller.scope.clone());
    let now = now_unix();
    let view = blocking(&state, move |store| report_run::run(store, &RunInput { tr, scope: &scope, request: &request, now })).await??;
    let bytes = report_xlsx(tr, &view, now).map_err(ApiError::internal)?;
    let file_name = format!("{}.xlsx", view.title.replace(['/', '\\', '"', ':'], "_"));
    Ok(FileBytes { content_type: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", file_name, bytes })
}

/// A site a filter offers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SiteChoice {
    pub id: i64,
    pub name: String,
}

/// A single-choice business field a condition or a count may use.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldChoice {
    pub key: String,
    pub title: String,
    pub options: Vec<String>,
}

/// What the preview's filters and the builder offer for a sub-project, in the caller's scope.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Choices {
    /// 数据来源: accounts whose batches were dialed in the last year.
    pub accounts: Vec<String>,
    /// 外呼团队: team names seen in the last year.
    pub teams: Vec<String>,
    /// 外呼职场: the participating sites the caller sees.
    pub sites: Vec<SiteChoice>,
    /// The business record's single-choice fields.
    pub fields: Vec<FieldChoice>,
}

/// `GET /api/reports/projects/{id}/choices`: the filters' and the builder's choices.
#[utoipa::path(get, path = "/api/reports/projects/{id}/choices", tag = "reports",
    params(("id" = i64, Path, description = "Sub-project id")),
    responses((status = 200, description = "The choices", body = Choices),
              (status = 404, description = "No such sub-project, or not in the caller's scope", body = super::ErrorBody)))]
pub async fn choices(State(state): State<AppState>, caller: Module<Reports>, ApiPath(id): ApiPath<i64>) -> Result<Json<Choices>, ApiError> {
    let (tr, scope) = (caller.tr, caller.scope.clone());
    let answer = blocking(&state, move |store| -> Result<Choices, ApiError> {
        let project = store.project(id)?.filter(|p| scope.project(p.id)).ok_or_else(|| unknown_project(tr, id))?;
        let now = now_unix();
        let accounts = report_run::choices(store, tr, &scope, &[id], Tag::Account, now)?;
        let teams = report_run::choices(store, tr, &scope, &[id], Tag::Team, now)?;
        let sites = store
            .list_sites()?
            .into_iter()
            .filter(|s| project.site_ids.contains(&s.id) && scope.project_site(id, s.id))
            .map(|s| SiteChoice { id: s.id, name: s.name })
            .collect();
        Ok(Choices { accounts, teams, sites, fields: single_choice_fields(&project) })
    })
    .await??;
    Ok(Json(answer))
}

fn unknown_project(tr: Tr, id: i64) -> ApiError {
    ApiError::not_found(super::extract::text(tr, &format!("sub-project {id} does not exist"), &format!("子项目 {id} 不存在")))
}

fn single_choice_fields(project: &Project) -> Vec<FieldChoice> {
    project
        .record_fields
        .iter()
        .filter(|f| f.kind == crate::store::FieldSpecKind::SingleChoice)
        .map(|f| FieldChoice { key: f.key.clone(), title: f.title.clone(), options: f.options.clone() })
        .collect()
}

// ---- pages ----

/// A sub-project as the pages list it.
struct ProjectLine {
    id: i64,
    name: String,
}

struct CategoryLine {
    id: i64,
    name: String,
    projects: Vec<ProjectLine>,
}

/// The projects `caller` sees, by category (categories without one are left out).
fn visible(projects: Vec<Project>, caller: &Module<Reports>) -> Vec<CategoryLine> {
    let mut out: Vec<CategoryLine> = Vec::new();
    for p in projects.into_iter().filter(|p| caller.scope.project(p.id)) {
        if out.last().is_none_or(|c| c.id != p.category_id) {
            out.push(CategoryLine { id: p.category_id, name: p.category_name.clone(), projects: Vec::new() });
        }
        if let Some(last) = out.last_mut() {
            last.projects.push(ProjectLine { id: p.id, name: p.name });
        }
    }
    out
}

#[derive(Template)]
#[template(path = "reports.html")]
struct IndexPage {
    tr: Tr,
    user: String,
    categories: Vec<CategoryLine>,
}

/// `GET /reports`: 数据报表管理, the project category list.
pub async fn index_page(State(state): State<AppState>, caller: Module<Reports>) -> Response {
    match blocking(&state, |store| store.list_projects()).await {
        Ok(Ok(projects)) => {
            let categories = visible(projects, &caller);
            render(&IndexPage { tr: caller.tr, user: caller.account.username.clone(), categories })
        }
        Ok(Err(err)) => ApiError::from(err).into_response(),
        Err(err) => err.into_response(),
    }
}

/// What the script needs to draw a report page, as JSON in `data-config`.
#[derive(Serialize)]
struct PageConfig {
    /// `builder`, `board`, `multi` or `running`.
    mode: &'static str,
    /// The page's own sub-project (builder and board), for the choices and the defaults.
    project: Option<i64>,
    /// The sub-projects the page offers, `[id, "分类 / 名称"]`.
    projects: Vec<(i64, String)>,
    /// Chosen at first.
    selected: Vec<i64>,
    /// The report the page runs (the builder's starting point; empty name = a new one).
    def: ReportDef,
    /// Rank the rows by the first column (项目榜单).
    rank: bool,
    catalog: Catalog,
    words: JsWords,
}

/// The words the script writes itself.
#[derive(Serialize)]
struct JsWords {
    edit: &'static str,
    preview: &'static str,
    delete: &'static str,
    saved: &'static str,
    none: &'static str,
    no_reports: &'static str,
    total: &'static str,
}

fn js_words(tr: Tr) -> JsWords {
    let t = tr.text();
    JsWords {
        edit: t.reports_edit,
        preview: t.reports_preview,
        delete: t.reports_delete,
        saved: t.reports_saved_ok,
        none: t.common_none,
        no_reports: t.reports_empty,
        total: t.reports_total,
    }
}

/// The builder's choices: tags and statistics with their names.
#[derive(Serialize)]
struct Catalog {
    tags: Vec<(Tag, &'static str)>,
    statistics: Vec<(Statistic, String)>,
}

fn catalog(tr: Tr) -> Catalog {
    Catalog {
        tags: report_run::TAGS.iter().map(|t| (*t, report_run::tag_name(tr, *t))).collect(),
        statistics: reports::MEASURES.iter().map(|s| (s.clone(), report_run::statistic_name(tr, s))).collect(),
    }
}

#[derive(Template)]
#[template(path = "report_page.html")]
struct ReportPage {
    tr: Tr,
    user: String,
    title: String,
    /// `builder` shows the editor; `running` has no project, account or team filter.
    mode: &'static str,
    back: String,
    config: String,
    /// `(key, name)` of each tag.
    tags: Vec<(String, String)>,
    /// `(key, name)` of each condition subject: the dimensions, then `field:KEY` per
    /// single-choice business field.
    subjects: Vec<(String, String)>,
    /// `(key, name)` of each statistic: the plain ones, then `field_value:KEY:VALUE` per
    /// option of each single-choice business field (本次业务结果-成功).
    statistics: Vec<(String, String)>,
    /// `(id, label, chosen at first)`.
    projects: Vec<(i64, String, bool)>,
    /// `(key, name)` of the time filters (the custom range is in the template).
    times: Vec<(String, String)>,
}

/// The serde name of a unit variant (`last7_days`, `hangup_side`).
fn key_of<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Object(map)) => map.get("kind").and_then(|k| k.as_str()).unwrap_or_default().to_string(),
        _ => String::new(),
    }
}

fn page(caller: &Module<Reports>, title: String, back: &str, config: PageConfig, fields: &[FieldChoice]) -> Response {
    let tr = caller.tr;
    let t = tr.text();
    let tags: Vec<(String, String)> = config.catalog.tags.iter().map(|(tag, name)| (key_of(tag), name.to_string())).collect();
    let mut subjects: Vec<(String, String)> = tags.iter().filter(|(k, _)| !matches!(k.as_str(), "day" | "month")).cloned().collect();
    subjects.extend(fields.iter().map(|f| (format!("field:{}", f.key), format!("{}：{}", t.reports_field, f.title))));
    let mut statistics: Vec<(String, String)> = config.catalog.statistics.iter().map(|(s, name)| (key_of(s), name.clone())).collect();
    for f in fields {
        statistics.extend(f.options.iter().map(|o| (format!("field_value:{}:{o}", f.key), format!("{}-{o}", f.title))));
    }
    let times = [
        (TimeFilter::Today, t.reports_t_today),
        (TimeFilter::Yesterday, t.reports_t_yesterday),
        (TimeFilter::Last7Days, t.reports_t_7days),
        (TimeFilter::LastMonth, t.reports_t_month),
    ]
    .iter()
    .map(|(k, name)| (key_of(k), name.to_string()))
    .collect();
    let projects = config.projects.iter().map(|(id, label)| (*id, label.clone(), config.selected.contains(id))).collect();
    let mode = config.mode;
    let config = serde_json::to_string(&config).unwrap_or_default();
    let user = caller.account.username.clone();
    render(&ReportPage { tr, user, title, mode, back: back.to_string(), config, tags, subjects, statistics, projects, times })
}

fn not_found_page(caller: &Module<Reports>, id: i64) -> Response {
    let text = if caller.tr.is_en() { format!("sub-project {id} does not exist") } else { format!("子项目 {id} 不存在") };
    let mut page = message(caller.tr, &caller.account.username, caller.tr.text().common_failed, text, "/reports");
    *page.status_mut() = StatusCode::NOT_FOUND;
    page
}

fn label(p: &Project) -> (i64, String) {
    (p.id, format!("{} / {}", p.category_name, p.name))
}

/// The visible projects and the one asked for, or the page to answer instead.
async fn with_project(state: &AppState, caller: &Module<Reports>, id: i64) -> Result<(Vec<Project>, Project), Response> {
    let projects = match blocking(state, |store| store.list_projects()).await {
        Ok(Ok(projects)) => projects.into_iter().filter(|p| caller.scope.project(p.id)).collect::<Vec<_>>(),
        Ok(Err(err)) => return Err(ApiError::from(err).into_response()),
        Err(err) => return Err(err.into_response()),
    };
    match projects.iter().find(|p| p.id == id).cloned() {
        Some(project) => Ok((projects, project)),
        None => Err(not_found_page(caller, id)),
    }
}

/// A new report's starting point: 统计-综合话务报表【项目】 by team with the standard columns.
fn starting_def(tr: Tr, project: &Project, tags: Vec<Tag>) -> ReportDef {
    let name = format!("{}【{}】", tr.text().reports_default_name, project.name);
    ReportDef { name, tags, conditions: vec![], columns: report_run::standard_columns(tr) }
}

/// `GET /reports/projects/{id}`: the builder and the preview of one sub-project.
pub async fn project_page(State(state): State<AppState>, caller: Module<Reports>, ApiPath(id): ApiPath<i64>) -> Response {
    let (projects, project) = match with_project(&state, &caller, id).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let tr = caller.tr;
    let config = PageConfig {
        mode: "builder",
        project: Some(id),
        projects: projects.iter().map(label).collect(),
        selected: vec![id],
        def: starting_def(tr, &project, vec![Tag::Team]),
        rank: false,
        catalog: catalog(tr),
        words: js_words(tr),
    };
    page(&caller, format!("{} · {}", tr.text().reports_title, project.name), "/reports", config, &single_choice_fields(&project))
}

/// `GET /reports/projects/{id}/board`: 项目榜单, the participating teams ranked.
pub async fn board_page(State(state): State<AppState>, caller: Module<Reports>, ApiPath(id): ApiPath<i64>) -> Response {
    let (projects, project) = match with_project(&state, &caller, id).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let tr = caller.tr;
    // The manual: a leaderboard needs the project's report first (需先操作指定项目“添加报表”);
    // its columns and conditions, one line per team. Without one, the standard columns.
    let saved = match blocking(&state, move |store| store.report_definitions(id)).await {
        Ok(Ok(saved)) => saved,
        Ok(Err(err)) => return ApiError::from(err).into_response(),
        Err(err) => return err.into_response(),
    };
    let mut def = match saved.into_iter().next() {
        Some(stored) => stored.definition,
        None => starting_def(tr, &project, vec![]),
    };
    def.tags = vec![Tag::Team];
    def.name = format!("{}【{}】", tr.text().reports_board, project.name);
    let config = PageConfig {
        mode: "board",
        project: Some(id),
        projects: projects.iter().filter(|p| p.id == id).map(label).collect(),
        selected: vec![id],
        def,
        rank: true,
        catalog: catalog(tr),
        words: js_words(tr),
    };
    page(&caller, format!("{} · {}", tr.text().reports_board, project.name), "/reports", config, &[])
}

fn multi_def(tr: Tr, name: String) -> ReportDef {
    ReportDef { name, tags: vec![Tag::Project], conditions: vec![], columns: report_run::standard_columns(tr) }
}

fn multi_page(caller: &Module<Reports>, mode: &'static str, title: String, projects: Vec<Project>, selected: Vec<i64>) -> Response {
    let tr = caller.tr;
    let config = PageConfig {
        mode,
        project: None,
        projects: projects.iter().map(label).collect(),
        selected,
        def: multi_def(tr, title.clone()),
        rank: false,
        catalog: catalog(tr),
        words: js_words(tr),
    };
    page(caller, title, "/reports", config, &[])
}

/// `GET /reports/categories/{id}`: 项目报表 over one category's sub-projects.
pub async fn category_page(State(state): State<AppState>, caller: Module<Reports>, ApiPath(id): ApiPath<i64>) -> Response {
    let projects = match blocking(&state, |store| store.list_projects()).await {
        Ok(Ok(p)) => p.into_iter().filter(|p| p.category_id == id && caller.scope.project(p.id)).collect::<Vec<_>>(),
        Ok(Err(err)) => return ApiError::from(err).into_response(),
        Err(err) => return err.into_response(),
    };
    let Some(first) = projects.first() else {
        let text = if caller.tr.is_en() { format!("category {id} has no sub-project you see") } else { format!("分类 {id} 下没有您可查看的子项目") };
        let mut page = message(caller.tr, &caller.account.username, caller.tr.text().common_failed, text, "/reports");
        *page.status_mut() = StatusCode::NOT_FOUND;
        return page;
    };
    let title = format!("{}【{}】", caller.tr.text().reports_category_report, first.category_name);
    let selected = projects.iter().map(|p| p.id).collect();
    multi_page(&caller, "multi", title, projects, selected)
}

/// `GET /reports/overall`: 综合项目报表 over chosen sub-projects of any category.
pub async fn overall_page(State(state): State<AppState>, caller: Module<Reports>) -> Response {
    let projects = match blocking(&state, |store| store.list_projects()).await {
        Ok(Ok(p)) => p.into_iter().filter(|p| caller.scope.project(p.id)).collect::<Vec<_>>(),
        Ok(Err(err)) => return ApiError::from(err).into_response(),
        Err(err) => return err.into_response(),
    };
    let selected = projects.iter().map(|p| p.id).collect();
    multi_page(&caller, "multi", caller.tr.text().reports_overall.to_string(), projects, selected)
}

/// `GET /reports/running`: 在执行项目, the projects with calls in the chosen time.
pub async fn running_page(State(state): State<AppState>, caller: Module<Reports>) -> Response {
    let projects = match blocking(&state, |store| store.list_projects()).await {
        Ok(Ok(p)) => p.into_iter().filter(|p| caller.scope.project(p.id)).collect::<Vec<_>>(),
        Ok(Err(err)) => return ApiError::from(err).into_response(),
        Err(err) => return err.into_response(),
    };
    let selected = projects.iter().map(|p| p.id).collect();
    multi_page(&caller, "running", caller.tr.text().reports_running.to_string(), projects, selected)
}
