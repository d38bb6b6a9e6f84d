//! The site's reports (S6-S9), from the site's own store with or without HQ: 统计报表 over
//! every project, 项目任务批次 (each number's attempts, paginated), 项目任务统计 (per batch
//! and the manual's daily table), 项目任务报表 (HQ's definitions, read-only) and 项目任务榜单
//! (per agent, with its `.xlsx` export). Every figure but the per-number detail (a page of
//! one batch's attempts) comes from the report engine's aggregates, never the raw attempts.
//!
//! Each report shows an ECharts chart beside its table: the page carries the chart's data
//! in a `data-chart` attribute and `/assets/reports.js` draws it (no inline script). Numbers
//! only appear in the per-number detail, masked by the session's [`Viewer`]. The box is one
//! site, so a site admin sees only it.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use reports::{Column, Condition, DayRange, Filter, KeyPart, ReportDef, ReportTable, Statistic, Subject, Tag, TimeFilter, Value};
use serde::{Deserialize, Serialize};

use super::report_text::ReportText;
use crate::store::Viewer;
use crate::web::guard::need;
use crate::web::i18n::{Lang, Text};
use crate::web::limits::{self, ApiQuery, Check, Limits};
use crate::web::page::{Choice, Nav, render, work};
use crate::web::routes::Registry;
use crate::web::{AdminUser, ApiError, AppState, Public, cookie_header};

/// The report pages, their export and their script.
pub(in crate::web) fn routes(r: Registry) -> Registry {
    r.get("/admin/reports", stats)
        .get("/admin/reports/batches", batches)
        .get("/admin/reports/tasks", tasks)
        .get("/admin/reports/hq", hq)
        .get("/admin/reports/agents", agents)
        .get("/admin/reports/agents.xlsx", agents_xlsx)
        .get("/assets/reports.js", script)
}

const SCRIPT: &str = include_str!("../../../assets/reports.js");
/// Rows of the per-number detail per page.
const PER_PAGE: u32 = 50;

/// `GET /assets/reports.js`: draws the report pages' charts.
pub async fn script(_: Public) -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], SCRIPT)
        .into_response()
}

/// The report pages' query: project, batch, time filter (today / yesterday / last7 / month
/// / custom with `from` and `to`, `YYYY-MM-DD`) and page.
#[derive(Deserialize, Default, Clone)]
pub struct ReportQuery {
    project_id: Option<u64>,
    batch_id: Option<u64>,
    time: Option<String>,
    from: Option<String>,
    to: Option<String>,
    page: Option<u32>,
}

impl Limits for ReportQuery {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        check.id("project_id", self.project_id.unwrap_or_default())?;
        check.id("batch_id", self.batch_id.unwrap_or_default())?;
        check.opt("time", self.time.as_deref(), limits::KEY)?;
        check.opt("from", self.from.as_deref(), limits::KEY)?;
        check.opt("to", self.to.as_deref(), limits::KEY)
    }
}

impl ReportQuery {
    fn time_key(&self) -> &str {
        match self.time.as_deref() {
            Some(key @ ("yesterday" | "last7" | "month" | "custom")) => key,
            _ => "today",
        }
    }

    fn time_filter(&self) -> TimeFilter {
        match self.time_key() {
            "yesterday" => TimeFilter::Yesterday,
            "last7" => TimeFilter::Last7Days,
            "month" => TimeFilter::LastMonth,
            "custom" => TimeFilter::Custom { from: self.from.clone().unwrap_or_default(), to: self.to.clone().unwrap_or_default() },
            _ => TimeFilter::Today,
        }
    }
}

/// One table of a page with the chart drawn beside it.
pub struct Section {
    pub id: String,
    pub title: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub total: Vec<String>,
    /// The chart's data as JSON (see `assets/reports.js`); empty for no chart.
    pub chart: String,
}

#[derive(Serialize)]
struct Series {
    name: String,
    data: Vec<f64>,
}

#[derive(Serialize)]
struct Chart {
    kind: &'static str,
    categories: Vec<String>,
    series: Vec<Series>,
}

fn chart_json(kind: &'static str, categories: Vec<String>, series: Vec<(String, Vec<f64>)>) -> String {
    let series = series.into_iter().map(|(name, data)| Series { name, data }).collect();
    serde_json::to_string(&Chart { kind, categories, series }).unwrap_or_default()
}

struct Pager {
    page: u32,
    pages: u32,
    total: u64,
    prev: String,
    next: String,
}

#[derive(Template)]
#[template(path = "admin_reports.html")]
struct ReportsPage {
    t: &'static Text,
    r: &'static ReportText,
    nav: Nav,
    view: &'static str,
    title: &'static str,
    projects: Vec<Choice>,
    batches: Vec<Choice>,
    times: Vec<Choice>,
    from: String,
    to: String,
    /// The page's own query string (links to the other views keep the filters).
    query: String,
    error: String,
    note: String,
    sections: Vec<Section>,
    pager: Option<Pager>,
    export: String,
}

/// What every view needs: the words, the engine's zone, the chosen project and days.
pub(super) struct Ctx {
    pub r: &'static ReportText,
    pub zone: reports::Zone,
    pub days: DayRange,
    pub project_id: Option<u64>,
    pub batch_id: Option<u64>,
    pub projects: Vec<(u64, String)>,
    pub batches: Vec<(u64, String, u64)>,
}

impl Ctx {
    pub(super) fn filter(&self, all_projects: bool) -> Filter {
        let projects = if all_projects { None } else { Some(vec![self.project_id.unwrap_or_default() as i64]) };
        Filter { projects, sites: None, accounts: None, teams: None, days: self.days }
    }

    /// The chosen batch as a condition, when one is chosen.
    pub(super) fn batch_conditions(&self) -> Vec<Condition> {
        self.batch_id
            .map(|b| Condition { subject: Subject::Batch, values: vec![b.to_string()], negate: false })
            .into_iter()
            .collect()
    }

    fn project_name(&self, id: i64) -> String {
        self.projects.iter().find(|(p, _)| *p as i64 == id).map(|(_, n)| n.clone()).unwrap_or_else(|| id.to_string())
    }

    fn batch_name(&self, id: i64) -> String {
        self.batches.iter().find(|(b, _, _)| *b as i64 == id).map(|(_, n, _)| n.clone()).unwrap_or_else(|| id.to_string())
    }

    /// A row key in words.
    pub(super) fn key_text(&self, tag: Tag, part: &KeyPart) -> String {
        let r = self.r;
        match (tag, part) {
            (Tag::Project, KeyPart::Int(id)) => self.project_name(*id),
            (Tag::Batch, KeyPart::Int(id)) => self.batch_name(*id),
            (Tag::Site, _) => r.this_site.to_string(),
            (Tag::Team, KeyPart::SiteText { text, .. }) if text.is_empty() => r.this_site.to_string(),
            (Tag::Agent | Tag::Extension, KeyPart::SiteText { text, .. }) if text.is_empty() => r.no_agent.to_string(),
            (Tag::Hour, KeyPart::Int(h)) => format!("{h:02}:00"),
            (Tag::Weekday, KeyPart::Int(d)) => r.weekday(*d),
            (Tag::HangupSide, KeyPart::Text(side)) => match side.as_str() {
                "customer" => r.side_customer,
                "agent" => r.side_agent,
                "system" => r.side_system,
                _ => r.side_none,
            }
            .to_string(),
            (Tag::Direction, KeyPart::Text(d)) => if d == "inbound" { r.inbound } else { r.outbound }.to_string(),
            (_, KeyPart::Int(n)) => n.to_string(),
            (_, KeyPart::Text(text)) => text.clone(),
            (_, KeyPart::SiteText { text, .. }) => text.clone(),
        }
    }

    /// A tag's column header.
    pub(super) fn tag_header(&self, tag: Tag) -> String {
        let r = self.r;
        let zh = r.today == "今日";
        match tag {
            Tag::Project => r.project,
            Tag::Batch => r.batch,
            Tag::Agent => r.agent_account,
            _ => return tag_words(tag, zh).to_string(),
        }
        .to_string()
    }
}

fn tag_words(tag: Tag, zh: bool) -> &'static str {
    let (c, e) = match tag {
        Tag::Site => ("外呼职场", "Site"),
        Tag::Team => ("外呼团队", "Team"),
        Tag::Extension => ("分机", "Extension"),
        Tag::Account => ("数据来源", "Data source"),
        Tag::HangupSide => ("挂断位置", "Hang-up side"),
        Tag::Direction => ("通话方式", "Direction"),
        Tag::Hour => ("时段-时", "Hour"),
        Tag::Weekday => ("时段-周", "Weekday"),
        Tag::Month => ("时段-月", "Month"),
        Tag::Day => ("日期", "Day"),
        _ => ("", ""),
    };
    if zh { c } else { e }
}

pub(super) fn count(value: &Value) -> i64 {
    match value {
        Value::Count(n) => *n,
        Value::Ratio(_) => 0,
    }
}

pub(super) fn cell(value: &Value) -> String {
    match value {
        Value::Count(n) => n.to_string(),
        Value::Ratio(Some(ratio)) => format!("{:.2}%", ratio * 100.0),
        Value::Ratio(None) => "-".to_string(),
    }
}

/// `n (rate%)` as the manual's tables show it; `n (0.00%)` when nothing was dialed.
pub(super) fn with_rate(n: i64, of: i64) -> String {
    let rate = if of == 0 { 0.0 } else { n as f64 * 100.0 / of as f64 };
    format!("{n} ({rate:.2}%)")
}

pub(super) fn column(header: &str, statistic: Statistic) -> Column {
    Column { header: header.to_string(), statistic, divide_by: None }
}

pub(super) fn ratio(header: &str, statistic: Statistic, divide_by: Statistic) -> Column {
    Column { header: header.to_string(), statistic, divide_by: Some(divide_by) }
}

/// A report's answer as a section: tag columns then the definition's; the chart plots the
/// columns `plotted` (count columns) per row, as a line when the first tag is a time.
pub(super) fn table_section(ctx: &Ctx, id: &str, def: &ReportDef, table: &ReportTable, plotted: &[usize]) -> Section {
    let mut headers: Vec<String> = table.tags.iter().map(|t| ctx.tag_header(*t)).collect();
    headers.extend(table.headers.iter().cloned());
    let label = |keys: &[KeyPart]| {
        keys.iter().zip(&table.tags).map(|(k, t)| ctx.key_text(*t, k)).collect::<Vec<_>>().join(" / ")
    };
    let rows: Vec<Vec<String>> = table
        .rows
        .iter()
        .map(|row| {
            let mut cells: Vec<String> = row.keys.iter().zip(&table.tags).map(|(k, t)| ctx.key_text(*t, k)).collect();
            cells.extend(row.values.iter().map(cell));
            cells
        })
        .collect();
    let mut total = vec![ctx.r.total.to_string()];
    total.resize(table.tags.len().max(1), String::new());
    if table.tags.is_empty() {
        total.clear();
    }
    total.extend(table.total.iter().map(cell));
    let timeline = matches!(table.tags.first(), Some(Tag::Day | Tag::Hour | Tag::Month | Tag::Weekday));
    let series = plotted
        .iter()
        .filter(|i| **i < table.headers.len())
        .map(|i| (table.headers[*i].clone(), table.rows.iter().map(|r| count(&r.values[*i]) as f64).collect()))
        .collect();
    let categories = table.rows.iter().map(|r| label(&r.keys)).collect();
    let chart = if table.tags.is_empty() { String::new() } else { chart_json(if timeline { "line" } else { "bar" }, categories, series) };
    Section { id: id.to_string(), title: def.name.clone(), headers, rows, total, chart }
}

fn run(state: &AppState, def: &ReportDef, filter: &Filter) -> Result<ReportTable, ApiError> {
    Ok(state.store.run_report(def, filter)?)
}

/// S6: every project of the site, by project and by day.
fn stats_sections(state: &AppState, ctx: &Ctx) -> Result<Vec<Section>, ApiError> {
    let r = ctx.r;
    let columns = vec![
        column(r.dials, Statistic::Dials),
        column(r.dial_connected, Statistic::DialConnected),
        ratio(r.connect_rate, Statistic::DialConnected, Statistic::Dials),
        column(r.ext_connected, Statistic::ExtensionConnected),
        ratio(r.ext_rate, Statistic::ExtensionConnected, Statistic::Dials),
        column(r.agents_reached, Statistic::AgentsReached),
        column(r.talk_seconds, Statistic::TalkSeconds),
    ];
    let mut sections = Vec::new();
    for (id, name, tag) in [("by-project", r.by_project, Tag::Project), ("by-day", r.by_day, Tag::Day)] {
        let def = ReportDef { name: name.to_string(), tags: vec![tag], conditions: vec![], columns: columns.clone() };
        let table = run(state, &def, &ctx.filter(true))?;
        sections.push(table_section(ctx, id, &def, &table, &[0, 1, 3]));
    }
    Ok(sections)
}

/// S8: HQ's definitions of the project, computed here; read-only.
fn hq_sections(state: &AppState, ctx: &Ctx) -> Result<(Vec<Section>, String), ApiError> {
    let Some((version, defs)) = state.store.report_definitions(ctx.project_id.unwrap_or_default())? else {
        return Ok((Vec::new(), ctx.r.no_defs.to_string()));
    };
    let mut sections = Vec::new();
    for (i, def) in defs.iter().enumerate() {
        let table = run(state, def, &ctx.filter(false))?;
        let counts: Vec<usize> =
            def.columns.iter().enumerate().filter(|(_, c)| c.divide_by.is_none()).map(|(i, _)| i).take(3).collect();
        sections.push(table_section(ctx, &format!("hq-{i}"), def, &table, &counts));
    }
    Ok((sections, format!("{}{version}{}", ctx.r.hq_note, ctx.r.hq_note_end)))
}

/// The view's words, sections, note and pager.
type Built = (Vec<Section>, String, Option<Pager>);

async fn show(
    view: &'static str,
    admin: (crate::store::User, Viewer),
    state: AppState,
    query: ReportQuery,
    headers: HeaderMap,
) -> Response {
    let lang = Lang::from_cookie_header(cookie_header(&headers));
    let (t, r) = (lang.text(), ReportText::of(lang));
    let (user, viewer) = admin;
    let mut ctx = match context(&state, &query, r) {
        Ok(ctx) => ctx,
        Err(error) => return error.into_response(),
    };
    let resolved = query.time_filter().resolve(crate::store::now_unix(), &ctx.zone);
    let (built, error) = match resolved {
        Err(error) => (Ok((Vec::new(), String::new(), None)), if lang == Lang::Zh { error.message_zh() } else { error.to_string() }),
        Ok(days) => {
            ctx.days = days;
            (build(view, &state, &ctx, &viewer, &query), String::new())
        }
    };
    let (sections, note, pager) = match built {
        Ok(built) => built,
        Err(error) => return error.into_response(),
    };
    let page = ReportsPage {
        t,
        r,
        nav: Nav::admin("reports", &user.username, work(&headers)),
        view,
        title: view_title(r, view),
        projects: ctx.projects.iter().map(|(id, n)| choice(*id, n, ctx.project_id)).collect(),
        batches: ctx.batches.iter().map(|(id, n, _)| choice(*id, n, ctx.batch_id)).collect(),
        times: time_choices(r, query.time_key()),
        from: query.from.clone().unwrap_or_default(),
        to: query.to.clone().unwrap_or_default(),
        query: query_string(&query, None),
        export: format!("/admin/reports/agents.xlsx?{}", query_string(&query, None)),
        error,
        note,
        sections,
        pager,
    };
    let failed = !page.error.is_empty();
    let mut response = render(page);
    if failed {
        *response.status_mut() = StatusCode::BAD_REQUEST;
    }
    response
}

fn view_title(r: &'static ReportText, view: &str) -> &'static str {
    match view {
        "batches" => r.batches,
        "tasks" => r.tasks,
        "hq" => r.hq,
        "agents" => r.agents,
        _ => r.stats,
    }
}

fn choice(id: u64, name: &str, chosen: Option<u64>) -> Choice {
    Choice { value: id.to_string(), label: format!("{id} · {name}"), selected: Some(id) == chosen }
}

fn time_choices(r: &'static ReportText, current: &str) -> Vec<Choice> {
    [("today", r.today), ("yesterday", r.yesterday), ("last7", r.last7), ("month", r.month), ("custom", r.custom)]
        .iter()
        .map(|(value, label)| Choice { value: value.to_string(), label: label.to_string(), selected: *value == current })
        .collect()
}

/// The filters as a query string (`page` replaced when given).
fn query_string(query: &ReportQuery, page: Option<u32>) -> String {
    let mut parts = Vec::new();
    let mut push = |key: &str, value: String| parts.push(format!("{key}={}", percent(&value)));
    if let Some(id) = query.project_id {
        push("project_id", id.to_string());
    }
    if let Some(id) = query.batch_id {
        push("batch_id", id.to_string());
    }
    push("time", query.time_key().to_string());
    if query.time_key() == "custom" {
        push("from", query.from.clone().unwrap_or_default());
        push("to", query.to.clone().unwrap_or_default());
    }
    if let Some(page) = page {
        push("page", page.to_string());
    }
    parts.join("&")
}

/// Percent-encodes everything but unreserved characters (dates and ids pass unchanged).
fn percent(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The project (default the first), its batches and the chosen batch (one of them).
fn context(state: &AppState, query: &ReportQuery, r: &'static ReportText) -> Result<Ctx, ApiError> {
    let projects = state.store.projects()?;
    let project_id = query.project_id.filter(|p| projects.iter().any(|(id, _)| id == p)).or_else(|| projects.first().map(|(id, _)| *id));
    let batches = match project_id {
        Some(project) => state.store.project_batches(project)?,
        None => Vec::new(),
    };
    let batch_id = query.batch_id.filter(|b| batches.iter().any(|(id, _, _)| id == b));
    let zone = state.store.report_engine().zone().clone();
    Ok(Ctx { r, zone, days: DayRange { first: 0, last: 0 }, project_id, batch_id, projects, batches })
}

fn build(view: &str, state: &AppState, ctx: &Ctx, viewer: &Viewer, query: &ReportQuery) -> Result<Built, ApiError> {
    Ok(match view {
        "stats" => (stats_sections(state, ctx)?, String::new(), None),
        "tasks" => (super::report_views::task_sections(state, ctx)?, String::new(), None),
        "hq" => {
            let (sections, note) = hq_sections(state, ctx)?;
            (sections, note, None)
        }
        "agents" => (vec![super::report_views::agent_section(state, ctx)?], String::new(), None),
        _ => {
            let page = query.page.unwrap_or(1).max(1);
            let (section, total) = super::report_views::batch_detail(state, ctx, viewer, page, PER_PAGE)?;
            let pages = total.div_ceil(u64::from(PER_PAGE)).max(1) as u32;
            let pager = Pager {
                page,
                pages,
                total,
                prev: if page > 1 { format!("?{}", query_string(query, Some(page - 1))) } else { String::new() },
                next: if page < pages { format!("?{}", query_string(query, Some(page + 1))) } else { String::new() },
            };
            let note = if ctx.batches.is_empty() { ctx.r.no_batch.to_string() } else { String::new() };
            (section.into_iter().collect(), note, Some(pager))
        }
    })
}

/// `GET /admin/reports`: 统计报表 (S6).
pub async fn stats(
    AdminUser { user, viewer, .. }: AdminUser<need::Data>,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ReportQuery>,
    headers: HeaderMap,
) -> Response {
    show("stats", (user, viewer), state, query, headers).await
}

/// `GET /admin/reports/batches`: 项目任务批次 (S7), each number's attempts, paginated.
pub async fn batches(
    AdminUser { user, viewer, .. }: AdminUser<need::Data>,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ReportQuery>,
    headers: HeaderMap,
) -> Response {
    show("batches", (user, viewer), state, query, headers).await
}

/// `GET /admin/reports/tasks`: 项目任务统计 (S7), per batch and per day.
pub async fn tasks(
    AdminUser { user, viewer, .. }: AdminUser<need::Data>,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ReportQuery>,
    headers: HeaderMap,
) -> Response {
    show("tasks", (user, viewer), state, query, headers).await
}

/// `GET /admin/reports/hq`: 项目任务报表 (S8), HQ's columns, read-only.
pub async fn hq(
    AdminUser { user, viewer, .. }: AdminUser<need::Data>,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ReportQuery>,
    headers: HeaderMap,
) -> Response {
    show("hq", (user, viewer), state, query, headers).await
}

/// `GET /admin/reports/agents`: 项目任务榜单 (S9).
pub async fn agents(
    AdminUser { user, viewer, .. }: AdminUser<need::Data>,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ReportQuery>,
    headers: HeaderMap,
) -> Response {
    show("agents", (user, viewer), state, query, headers).await
}

/// `GET /admin/reports/agents.xlsx`: the leaderboard as a workbook (export module).
pub async fn agents_xlsx(
    _: AdminUser<need::DataExport>,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ReportQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let lang = Lang::from_cookie_header(cookie_header(&headers));
    let r = ReportText::of(lang);
    let mut ctx = context(&state, &query, r)?;
    ctx.days = query.time_filter().resolve(crate::store::now_unix(), &ctx.zone).map_err(|error| {
        ApiError::bad_request(if lang == Lang::Zh { error.message_zh() } else { error.to_string() })
    })?;
    let section = super::report_views::agent_section(&state, &ctx)?;
    let bytes = super::report_views::section_xlsx(&ctx, &section).map_err(ApiError::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"agent-leaderboard.xlsx\""),
        ],
        bytes,
    )
        .into_response())
}
