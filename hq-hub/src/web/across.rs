//! A project's data across its sites (H26): the pages 客户资料 (`/data/customers`) and
//! 业务资料 (`/data/records`, also opened by 职场业务数据), their JSON pages and `.xlsx`
//! exports, and the switch of which fields are filters (筛选条件, H6).
//!
//! The filters travel in the query string, the same for the page, the JSON and the export,
//! so a page's "export" link exports exactly what it shows (every page of it): `project`,
//! `site`, `batch`, `agent`, `phone`, `from` / `to` (a date or `YYYY-MM-DDTHH:MM`, China
//! time; `to` as a date includes that day), `f.<field key>` per filterable field, `after`
//! (the previous page's `next`) and `limit`. Scope, masking and hidden fields are the
//! store's (`store::across`); this module reads the query, words it and renders it.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::api::FileBytes;
use super::extract::{text, ApiJson, ApiPath};
use super::guard::{Access, DataBusiness, DataCustomer, DataSettings, Module, Permission, Registry, SiteBusiness};
use super::pages::{message, render};
use super::{blocking, format_time, ApiError, AppState, Caller, ErrorBody, Tr};
use crate::across_export::{customers_xlsx, records_xlsx, ExportError, ExportWords};
use crate::store::{AcrossError, AcrossQuery, BusinessData, CustomerData, DataColumn, Project, Scope};

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// 业务资料 and 职场业务数据 both open the business records.
pub const BUSINESS_MODULES: &[&str] = &[DataBusiness::KEY, SiteBusiness::KEY];

/// Rows a console page shows.
const PAGE_ROWS: u32 = 50;

/// This module's routes (one line in the shared route table calls it).
pub(super) fn routes(r: Registry) -> Registry {
    let customers = Access::module::<DataCustomer>();
    let business = Access::AnyModule(BUSINESS_MODULES);
    r.get("/data/customers", customers, customers_page)
        .get("/data/records", business, records_page)
        .get("/api/projects/{id}/customer-data", customers, customer_data)
        .get("/api/projects/{id}/customer-data/export", customers, export_customers)
        .get("/api/projects/{id}/business-data", business, business_data)
        .get("/api/projects/{id}/business-data/export", business, export_records)
        .put("/api/projects/{id}/filterable", Access::module::<DataSettings>(), set_filterable)
}

/// The query string as pairs (a filter field may be any key, so no fixed struct).
type Pairs = Vec<(String, String)>;

/// A refusal in the caller's language.
fn refusal(tr: Tr, status: StatusCode, en: impl AsRef<str>, zh: impl AsRef<str>) -> ApiError {
    ApiError::new(status, text(tr, en.as_ref(), zh.as_ref()))
}

fn across_error(tr: Tr, err: AcrossError) -> ApiError {
    let status = match err {
        AcrossError::UnknownProject(_) => StatusCode::NOT_FOUND,
        AcrossError::Db(db) => return ApiError::from(db),
        _ => StatusCode::BAD_REQUEST,
    };
    refusal(tr, status, err.to_string(), err.zh())
}

fn export_error(tr: Tr, err: ExportError) -> ApiError {
    match err {
        ExportError::Query(err) => across_error(tr, err),
        ExportError::Xlsx(err) => ApiError::internal(err),
    }
}

/// Unix seconds of `value` read as China time: `YYYY-MM-DD` (midnight; with `end`, the
/// next midnight, so the day is included) or `YYYY-MM-DDTHH:MM`.
fn china_instant(value: &str, end: bool) -> Option<i64> {
    let offset = time::UtcOffset::from_hms(8, 0, 0).ok()?;
    let value = value.trim();
    if let Ok(date) = time::Date::parse(value, time::macros::format_description!("[year]-[month]-[day]")) {
        let day = if end { date.next_day()? } else { date };
        return Some(day.midnight().assume_offset(offset).unix_timestamp());
    }
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let at = time::PrimitiveDateTime::parse(value, format).or_else(|_| time::PrimitiveDateTime::parse(&value.replacen(' ', "T", 1), format)).ok()?;
    Some(at.assume_offset(offset).unix_timestamp())
}

/// Reads the query string into a search of project `project` (the path's, or `project=`).
fn read_query(tr: Tr, pairs: &Pairs, project: Option<i64>) -> Result<AcrossQuery, ApiError> {
    let mut query = AcrossQuery { project_id: project.unwrap_or_default(), limit: PAGE_ROWS, ..AcrossQuery::default() };
    // Fields by their labels on the page (开始时间), not their variables (`from`).
    let label = |name: &str, zh: bool| super::messages::CATALOG.label(name, zh).unwrap_or(name).to_string();
    let number = |name: &str, value: &str| -> Result<i64, ApiError> {
        value.trim().parse().map_err(|_| {
            refusal(tr, StatusCode::BAD_REQUEST, format!("{}: {value:?} is not a number", label(name, false)), format!("“{}”：“{value}”不是数字", label(name, true)))
        })
    };
    let instant = |name: &str, value: &str, end: bool| -> Result<i64, ApiError> {
        china_instant(value, end).ok_or_else(|| {
            refusal(
                tr,
                StatusCode::BAD_REQUEST,
                format!("{}: {value:?} is not a time: write 2024-05-31 or 2024-05-31T09:30 (China time)", label(name, false)),
                format!("“{}”：“{value}”不是时间：请写成 2024-05-31 或 2024-05-31T09:30（北京时间）", label(name, true)),
            )
        })
    };
    for (name, value) in pairs {
        if value.trim().is_empty() {
            continue;
        }
        match name.as_str() {
            "project" if project.is_none() => query.project_id = number(name, value)?,
            "project" => {}
            "site" => query.site_id = Some(number(name, value)?),
            "batch" => query.batch_id = Some(number(name, value)?),
            "agent" => query.agent = Some(value.trim().to_string()),
            "phone" => query.phone = Some(value.trim().to_string()),
            "from" => query.from = Some(instant(name, value, false)?),
            "to" => query.to = Some(instant(name, value, true)?),
            "after" => query.after = Some(value.clone()),
            "limit" => query.limit = u32::try_from(number(name, value)?).unwrap_or(0).clamp(1, crate::store::MAX_PAGE_ROWS),
            _ => match name.strip_prefix("f.") {
                Some(key) => query.fields.push((key.to_string(), value.clone())),
                None => {
                    return Err(refusal(
                        tr,
                        StatusCode::BAD_REQUEST,
                        format!("unknown parameter {name:?}: use project, site, batch, agent, phone, from, to, f.<field key>, after or limit"),
                        format!("未知参数“{name}”：可用 project、site、batch、agent、phone、from、to、f.<字段变量名>、after、limit"),
                    ))
                }
            },
        }
    }
    Ok(query)
}

/// The export's fixed headers in the caller's language.
fn export_words(tr: Tr) -> ExportWords {
    let t = tr.text();
    ExportWords {
        sheet_customers: t.across_customers_title,
        sheet_records: t.across_records_title,
        site: t.across_site,
        batch: t.across_batch_name,
        phone: t.across_phone,
        agent: t.across_agent,
        dispatched_at: t.across_dispatched_at,
        last_edited_at: t.across_last_edited_at,
        last_edited_by: t.across_last_edited_by,
        saved_by: t.records_agent,
        saved_at: t.records_saved_at,
        truncated: t.across_truncated,
    }
}

/// A page of customer data.
#[derive(Serialize, ToSchema)]
pub struct CustomerPage {
    /// The fields the caller sees, in the project's order (hidden ones withheld from sub-admins).
    pub columns: Vec<DataColumn>,
    pub rows: Vec<CustomerData>,
    /// Pass as `after` for the next page; `null` on the last.
    pub next: Option<String>,
}

/// A page of business records.
#[derive(Serialize, ToSchema)]
pub struct BusinessPage {
    pub columns: Vec<DataColumn>,
    pub rows: Vec<BusinessData>,
    pub next: Option<String>,
}

/// `GET /api/projects/{id}/customer-data`: one page of the project's customer data.
#[utoipa::path(get, path = "/api/projects/{id}/customer-data", tag = "data",
    params(("id" = i64, Path, description = "The sub-project"),
           ("site" = Option<i64>, Query, description = "One site"), ("batch" = Option<i64>, Query, description = "One batch"),
           ("agent" = Option<String>, Query, description = "Who has the row (its latest call's agent, else its latest editor)"),
           ("phone" = Option<String>, Query, description = "The full number"),
           ("from" = Option<String>, Query, description = "Dispatched from: 2024-05-31 or 2024-05-31T09:30, China time"),
           ("to" = Option<String>, Query, description = "Dispatched before (a date includes that day)"),
           ("after" = Option<String>, Query, description = "The previous page's `next`"),
           ("limit" = Option<u32>, Query, description = "Rows per page, 1-500 (50)")),
    responses((status = 200, description = "One page; a filterable field filters as `f.<key>=value`", body = CustomerPage),
              (status = 400, description = "A filter is not valid (named in the message)", body = ErrorBody),
              (status = 404, description = "No such sub-project (or not the caller's)", body = ErrorBody)))]
pub async fn customer_data(
    State(state): State<AppState>,
    caller: Module<DataCustomer>,
    ApiPath(id): ApiPath<i64>,
    Query(pairs): Query<Pairs>,
) -> Result<Json<CustomerPage>, ApiError> {
    let tr = caller.tr;
    let query = read_query(tr, &pairs, Some(id))?;
    let scope = caller.0.scope;
    let page = blocking(&state, move |store| store.customer_data(&scope, &query)).await?.map_err(|e| across_error(tr, e))?;
    Ok(Json(CustomerPage { columns: page.columns, rows: page.rows, next: page.next }))
}

/// `GET /api/projects/{id}/business-data`: one page of the project's business records.
#[utoipa::path(get, path = "/api/projects/{id}/business-data", tag = "data",
    params(("id" = i64, Path, description = "The sub-project"),
           ("site" = Option<i64>, Query, description = "One site"), ("batch" = Option<i64>, Query, description = "One batch"),
           ("agent" = Option<String>, Query, description = "Who saved the record"),
           ("phone" = Option<String>, Query, description = "The full number"),
           ("from" = Option<String>, Query, description = "Saved from: 2024-05-31 or 2024-05-31T09:30, China time"),
           ("to" = Option<String>, Query, description = "Saved before (a date includes that day)"),
           ("after" = Option<String>, Query, description = "The previous page's `next`"),
           ("limit" = Option<u32>, Query, description = "Rows per page, 1-500 (50)")),
    responses((status = 200, description = "One page; a filterable field filters as `f.<key>=value`", body = BusinessPage),
              (status = 400, description = "A filter is not valid (named in the message)", body = ErrorBody),
              (status = 404, description = "No such sub-project (or not the caller's)", body = ErrorBody)))]
pub async fn business_data(State(state): State<AppState>, caller: Caller, ApiPath(id): ApiPath<i64>, Query(pairs): Query<Pairs>) -> Result<Json<BusinessPage>, ApiError> {
    let tr = caller.tr;
    let query = read_query(tr, &pairs, Some(id))?;
    let scope = caller.scope;
    let page = blocking(&state, move |store| store.business_data(&scope, &query)).await?.map_err(|e| across_error(tr, e))?;
    Ok(Json(BusinessPage { columns: page.columns, rows: page.rows, next: page.next }))
}

/// The export's file name: `客户资料_<project>.xlsx` in the caller's words.
fn export_name(what: &str, project: i64) -> String {
    format!("{what}_{project}.xlsx")
}

/// `GET /api/projects/{id}/customer-data/export`: every row the filters find, as `.xlsx`.
#[utoipa::path(get, path = "/api/projects/{id}/customer-data/export", tag = "data",
    params(("id" = i64, Path, description = "The sub-project")),
    responses((status = 200, description = "The filtered customer data (the same query string as the JSON page)", body = FileBytes, content_type = XLSX),
              (status = 400, description = "A filter is not valid (named in the message)", body = ErrorBody),
              (status = 404, description = "No such sub-project (or not the caller's)", body = ErrorBody)))]
pub async fn export_customers(State(state): State<AppState>, caller: Module<DataCustomer>, ApiPath(id): ApiPath<i64>, Query(pairs): Query<Pairs>) -> Result<FileBytes, ApiError> {
    let tr = caller.tr;
    let query = read_query(tr, &pairs, Some(id))?;
    let scope = caller.0.scope;
    let words = export_words(tr);
    let bytes = blocking(&state, move |store| customers_xlsx(store, &scope, &query, &words)).await?.map_err(|e| export_error(tr, e))?;
    Ok(FileBytes { content_type: XLSX, file_name: export_name(tr.text().across_customers_title, id), bytes })
}

/// `GET /api/projects/{id}/business-data/export`: every record the filters find, as `.xlsx`.
#[utoipa::path(get, path = "/api/projects/{id}/business-data/export", tag = "data",
    params(("id" = i64, Path, description = "The sub-project")),
    responses((status = 200, description = "The filtered business records (the same query string as the JSON page)", body = FileBytes, content_type = XLSX),
              (status = 400, description = "A filter is not valid (named in the message)", body = ErrorBody),
              (status = 404, description = "No such sub-project (or not the caller's)", body = ErrorBody)))]
pub async fn export_records(State(state): State<AppState>, caller: Caller, ApiPath(id): ApiPath<i64>, Query(pairs): Query<Pairs>) -> Result<FileBytes, ApiError> {
    let tr = caller.tr;
    let query = read_query(tr, &pairs, Some(id))?;
    let scope = caller.scope;
    let words = export_words(tr);
    let bytes = blocking(&state, move |store| records_xlsx(store, &scope, &query, &words)).await?.map_err(|e| export_error(tr, e))?;
    Ok(FileBytes { content_type: XLSX, file_name: export_name(tr.text().across_records_title, id), bytes })
}

/// Which fields of each list are filters; every field not named is not.
#[derive(Deserialize, ToSchema)]
pub struct FilterableBody {
    /// Customer field keys.
    #[serde(default)]
    pub customer: Vec<String>,
    /// Business-record field keys.
    #[serde(default)]
    pub record: Vec<String>,
}

/// `PUT /api/projects/{id}/filterable`: marks the filterable fields (筛选条件). HQ-side
/// only, so no new definition goes to the sites.
#[utoipa::path(put, path = "/api/projects/{id}/filterable", tag = "projects", request_body = FilterableBody,
    params(("id" = i64, Path, description = "The sub-project")),
    responses((status = 200, description = "Saved; the sub-project as it is now", body = Project),
              (status = 400, description = "A key is not a field of the sub-project", body = ErrorBody),
              (status = 404, description = "No such sub-project (or not the caller's)", body = ErrorBody)))]
pub async fn set_filterable(
    State(state): State<AppState>,
    caller: Module<DataSettings>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<FilterableBody>,
) -> Result<Json<Project>, ApiError> {
    let tr = caller.tr;
    if !caller.scope.project(id) {
        return Err(across_error(tr, AcrossError::UnknownProject(id)));
    }
    let saved = blocking(&state, move |store| {
        store.set_filterable_fields(id, &body.customer, &body.record)?;
        Ok::<_, AcrossError>(store.project(id)?)
    })
    .await?
    .map_err(|e| across_error(tr, e))?;
    saved.map(Json).ok_or_else(|| across_error(tr, AcrossError::UnknownProject(id)))
}

// ---- pages ----

/// One filter input of the page.
struct FilterInput {
    key: String,
    title: String,
    value: String,
    /// `(option, selected)`; empty for a typed value.
    options: Vec<(String, bool)>,
}

/// What the page shows once a project is chosen.
struct DataView {
    project_id: i64,
    /// `(id, name, selected)`.
    sites: Vec<(i64, String, bool)>,
    batch: String,
    agent: String,
    phone: String,
    from: String,
    to: String,
    filters: Vec<FilterInput>,
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    export: String,
    first: Option<String>,
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "across.html")]
struct AcrossPage {
    tr: Tr,
    user: String,
    title: &'static str,
    action: &'static str,
    /// `(id, "category / name", selected)`.
    projects: Vec<(i64, String, bool)>,
    view: Option<DataView>,
}

/// Percent-encodes a query value (everything but the unreserved characters).
fn encode(value: &str) -> String {
    value.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// The query string of `pairs` without `after` (and without empty values).
fn query_string(pairs: &Pairs, skip_project: bool) -> String {
    pairs
        .iter()
        .filter(|(k, v)| k != "after" && !v.is_empty() && !(skip_project && k == "project"))
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn value_of<'a>(pairs: &'a Pairs, name: &str) -> &'a str {
    pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("")
}

/// The filter form's field inputs: the filterable fields the viewer sees.
fn filter_inputs(columns: &[DataColumn], pairs: &Pairs) -> Vec<FilterInput> {
    columns
        .iter()
        .filter(|c| c.filterable)
        .map(|c| {
            let value = value_of(pairs, &format!("f.{}", c.key)).to_string();
            let options = c.options.iter().map(|o| (o.clone(), *o == value)).collect();
            FilterInput { key: c.key.clone(), title: c.title.clone(), value, options }
        })
        .collect()
}

/// The items of `values` (one per column) whose column is shown in lists (列表显示).
fn listed<'a, T: 'a>(columns: &'a [DataColumn], values: impl IntoIterator<Item = T> + 'a) -> impl Iterator<Item = T> + 'a {
    columns.iter().zip(values).filter(|(c, _)| c.listed).map(|(_, v)| v)
}

/// Which of the two pages.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Customers,
    Records,
}

/// Loads and words one page of either kind for `caller`.
async fn data_page(state: AppState, caller: Caller, pairs: Pairs, kind: Kind) -> Response {
    let tr = caller.tr;
    let t = tr.text();
    let (title, action, api) = match kind {
        Kind::Customers => (t.across_customers_title, "/data/customers", "customer-data"),
        Kind::Records => (t.across_records_title, "/data/records", "business-data"),
    };
    let user = caller.account.username.clone();
    let failed = |status: StatusCode, message_text: String| {
        let mut page = message(tr, &user, t.common_failed, message_text, action);
        *page.status_mut() = status;
        page
    };
    let query = match read_query(tr, &pairs, None) {
        Ok(query) => query,
        Err(err) => return failed(err.status, err.message),
    };
    let scope: Scope = caller.scope.clone();
    let chosen = (query.project_id != 0).then_some(query.project_id);
    let loaded = blocking(&state, move |store| -> Result<_, AcrossError> {
        let projects: Vec<Project> = store.list_projects()?.into_iter().filter(|p| scope.project(p.id)).collect();
        let Some(project_id) = chosen else { return Ok((projects, None)) };
        let sites = store.across_sites(&scope, project_id)?;
        let table = match kind {
            Kind::Customers => Table::Customers(store.customer_data(&scope, &query)?),
            Kind::Records => Table::Records(store.business_data(&scope, &query)?),
        };
        Ok((projects, Some((sites, table))))
    })
    .await;
    let (projects, found) = match loaded {
        Ok(Ok(found)) => found,
        Ok(Err(AcrossError::Db(err))) => return ApiError::from(err).into_response(),
        Ok(Err(err)) => {
            let api_err = across_error(tr, err);
            return failed(api_err.status, api_err.message);
        }
        Err(err) => return err.into_response(),
    };
    let projects = projects.iter().map(|p| (p.id, format!("{} / {}", p.category_name, p.name), Some(p.id) == chosen)).collect();
    let view = match (chosen, found) {
        (Some(project_id), Some((sites, table))) => {
            let site = value_of(&pairs, "site").to_string();
            let (headers, rows, columns, next) = table.words(tr);
            let base = format!("{action}?project={project_id}&{}", query_string(&pairs, true));
            Some(DataView {
                project_id,
                sites: sites.into_iter().map(|(id, name)| (id, name, id.to_string() == site)).collect(),
                batch: value_of(&pairs, "batch").to_string(),
                agent: value_of(&pairs, "agent").to_string(),
                phone: value_of(&pairs, "phone").to_string(),
                from: value_of(&pairs, "from").to_string(),
                to: value_of(&pairs, "to").to_string(),
                filters: filter_inputs(&columns, &pairs),
                headers,
                rows,
                export: format!("/api/projects/{project_id}/{api}/export?{}", query_string(&pairs, true)),
                first: pairs.iter().any(|(k, _)| k == "after").then(|| base.clone()),
                next: next.map(|cursor| format!("{base}&after={}", encode(&cursor))),
            })
        }
        _ => None,
    };
    render(&AcrossPage { tr, user, title, action, projects, view })
}

/// A page's rows of either kind.
enum Table {
    Customers(crate::store::DataPage<CustomerData>),
    Records(crate::store::DataPage<BusinessData>),
}

impl Table {
    /// Headers, rows as display strings, the field columns, and the next cursor.
    fn words(self, tr: Tr) -> (Vec<String>, Vec<Vec<String>>, Vec<DataColumn>, Option<String>) {
        let t = tr.text();
        match self {
            Table::Customers(page) => {
                let fixed = [t.across_site, t.across_batch_name, t.across_phone, t.across_agent, t.across_dispatched_at, t.across_last_edited_at];
                let headers = fixed.iter().map(|s| s.to_string()).chain(listed(&page.columns, page.columns.iter().map(|c| c.title.clone()))).collect();
                let rows = page
                    .rows
                    .into_iter()
                    .map(|r| {
                        let edited = r.last_edited_at.map(format_time).map(|at| format!("{at} {}", r.last_edited_by.unwrap_or_default())).unwrap_or_default();
                        [r.site_name, r.batch_name, r.phone, r.agent.unwrap_or_default(), format_time(r.dispatched_at), edited]
                            .into_iter()
                            .chain(listed(&page.columns, r.values.into_iter().map(|v| v.value)))
                            .collect()
                    })
                    .collect();
                (headers, rows, page.columns, page.next)
            }
            Table::Records(page) => {
                let fixed = [t.across_site, t.across_batch_name, t.across_phone, t.records_agent, t.records_saved_at];
                let headers = fixed.iter().map(|s| s.to_string()).chain(listed(&page.columns, page.columns.iter().map(|c| c.title.clone()))).collect();
                let rows = page
                    .rows
                    .into_iter()
                    .map(|r| {
                        [r.site_name, r.batch_name, r.phone, r.agent, format_time(r.saved_at)]
                            .into_iter()
                            .chain(listed(&page.columns, r.values.into_iter().map(|v| v.value)))
                            .collect()
                    })
                    .collect();
                (headers, rows, page.columns, page.next)
            }
        }
    }
}

pub async fn customers_page(State(state): State<AppState>, caller: Module<DataCustomer>, Query(pairs): Query<Pairs>) -> Response {
    data_page(state, caller.0, pairs, Kind::Customers).await
}

pub async fn records_page(State(state): State<AppState>, caller: Caller, Query(pairs): Query<Pairs>) -> Response {
    data_page(state, caller, pairs, Kind::Records).await
}
