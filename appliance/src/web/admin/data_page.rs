//! 项目数据资料 (S10): one sub-project's customers, business records, callbacks and HQ's
//! lists. The customers and the business records grow with every import and call, so they
//! come a page at a time by keyset (the desk's [`Pager`]) with a day span, never as one read
//! of the first few hundred rows.

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use sync_protocol::ProjectDef;

use crate::store::{CallFilter, CallRecordView, CallbackView, CustomerPage, CustomerView, HqListedView, Module, Role};
use crate::web::desk::lists::{DeskListQuery, Listed, PAGE, Pager, encode};
use crate::web::desk::words::{DeskWords, desk_words};
use crate::web::guard::need;
use crate::web::i18n::{Text, WorkText};
use crate::web::limits::ApiQuery;
use crate::web::page::{Choice, Nav, ProjectQuery, choices, fail, lang, render, work};
use crate::web::{AdminUser, ApiError, AppState};

use super::pages::project_choices;

#[derive(Template)]
#[template(path = "admin_data.html")]
struct DataPage {
    t: &'static Text,
    dw: &'static DeskWords,
    nav: Nav,
    projects: Vec<Choice>,
    project_id: u64,
    tab: String,
    query_string: String,
    agent: String,
    outcomes: Vec<Choice>,
    statuses: Vec<Choice>,
    phone_tail: String,
    from: String,
    to: String,
    pager: Option<Pager>,
    customers: Vec<CustomerView>,
    records: Vec<CallRecordView>,
    callbacks: Vec<CallbackView>,
    hq_lists: Vec<HqListedView>,
    columns: Vec<String>,
    record_columns: Vec<String>,
    agents: Vec<Choice>,
    can_export: bool,
}

/// The exports' query (the list's filters, the days as unix seconds) and the page links'
/// filters (the days as typed; the cursor is added per page).
fn links(query: &ProjectQuery, project_id: u64, tab: &str, from: Option<i64>, to: Option<i64>) -> (String, String) {
    let blank = |value: &Option<String>| value.clone().filter(|v| !v.trim().is_empty());
    let mut exports = format!("project_id={project_id}");
    let mut list = format!("project_id={project_id}&tab={tab}");
    for (key, value) in [("agent", &query.agent), ("outcome", &query.outcome), ("phone_tail", &query.phone_tail)] {
        if let Some(value) = blank(value) {
            exports.push_str(&format!("&{key}={}", encode(&value)));
        }
    }
    for (key, at) in [("from", from), ("to", to)] {
        if let Some(at) = at {
            exports.push_str(&format!("&{key}={at}"));
        }
    }
    let kept = [
        ("agent", &query.agent),
        ("outcome", &query.outcome),
        ("phone_tail", &query.phone_tail),
        ("status", &query.status),
        ("from", &query.from),
        ("to", &query.to),
    ];
    for (key, value) in kept {
        if let Some(value) = blank(value) {
            list.push_str(&format!("&{key}={}", encode(&value)));
        }
    }
    (exports, list)
}

/// The outcome and row-status choices of the filters, as words.
fn filter_choices(query: &ProjectQuery, w: &WorkText) -> (Vec<Choice>, Vec<Choice>) {
    let outcomes = choices(
        &[
            ("connected", w.out_connected),
            ("busy", w.out_busy),
            ("no_answer", w.out_no_answer),
            ("rejected", w.out_rejected),
            ("failed", w.out_failed),
            ("abandoned", w.out_abandoned),
            ("agent_missed", w.out_agent_missed),
        ],
        query.outcome.as_deref().unwrap_or(""),
    );
    let statuses = choices(&[("new", w.st_new), ("dialing", w.st_dialing), ("done", w.st_done)], query.status.as_deref().unwrap_or(""));
    (outcomes, statuses)
}

/// `GET /admin/data?project_id&tab=customers|business|callbacks|lists&from&to&...` (S10).
pub async fn admin_data(
    AdminUser { user, viewer, modules, .. }: AdminUser<need::Data>,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ProjectQuery>,
    headers: HeaderMap,
) -> Response {
    let (t, w, dw) = (lang(&headers), work(&headers), desk_words(&headers));
    let page = (|| -> Result<DataPage, ApiError> {
        let (projects, chosen) = project_choices(&state, query.project_id)?;
        let project_id = chosen.unwrap_or_default();
        let tab = match query.tab.as_deref() {
            Some("business") => "business",
            Some("callbacks") => "callbacks",
            Some("lists") => "lists",
            _ => "customers",
        }
        .to_string();
        let blank = |value: &Option<String>| value.clone().filter(|v| !v.trim().is_empty());
        let days = DeskListQuery { from: query.from.clone(), to: query.to.clone(), ..DeskListQuery::default() };
        let (from, to) = days.span(dw)?;
        let def: Option<ProjectDef> = state.store.project(project_id)?;
        // Columns and cells: the fields HQ lists (列表显示), hidden ones never.
        let mut listed = Listed::new(&state.store);
        let columns = match &def {
            Some(d) => listed.columns(project_id, &d.customer_fields, false)?,
            None => Vec::new(),
        };
        let record_columns = match &def {
            Some(d) => listed.columns(project_id, &d.record_fields, true)?,
            None => Vec::new(),
        };
        let (query_string, list_filters) = links(&query, project_id, &tab, from, to);
        let (mut customers, mut records, mut callbacks, mut hq_lists, mut pager) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), None);
        match tab.as_str() {
            "customers" => {
                let after = query.after_batch.zip(query.after_row);
                let keys = CustomerPage { after, imported_from: from, imported_to: to };
                customers = state.store.customers_page(&viewer, None, Some(project_id), blank(&query.status).as_deref(), &keys, PAGE + 1)?;
                let more = customers.len() > PAGE as usize;
                customers.truncate(PAGE as usize);
                for c in &mut customers {
                    c.fields = listed.customer(c.project_id, &c.fields)?;
                }
                let cursor = customers.last().filter(|_| more).map(|c| format!("after_batch={}&after_row={}", c.batch_id, c.row_id));
                pager = Some(Pager::with_filters("/admin/data", &list_filters, after.is_none(), cursor));
            }
            "business" => {
                let filter = CallFilter {
                    agent: blank(&query.agent),
                    project_id: Some(project_id),
                    outcome: blank(&query.outcome),
                    phone_tail: blank(&query.phone_tail),
                    with_record: true,
                    from,
                    to,
                    ..CallFilter::default()
                };
                records = state.store.call_records_before(&viewer, &filter, query.before, PAGE + 1)?;
                let more = records.len() > PAGE as usize;
                records.truncate(PAGE as usize);
                for r in &mut records {
                    r.record = listed.record(r.project_id, &r.record)?;
                }
                let cursor = records.last().filter(|_| more).map(|r| format!("before={}", r.attempt_id));
                pager = Some(Pager::with_filters("/admin/data", &list_filters, query.before.is_none(), cursor));
            }
            "lists" => hq_lists = state.store.hq_lists(&viewer)?,
            _ => {
                callbacks = state.store.callbacks(&viewer, blank(&query.agent).as_deref(), Some(project_id), blank(&query.state).as_deref())?;
            }
        }
        let agents = state
            .store
            .users()?
            .into_iter()
            .filter(|u| u.role == Role::Agent)
            .map(|u| Choice { label: u.username.clone(), value: u.username, selected: false })
            .collect();
        let (outcomes, statuses) = filter_choices(&query, w);
        Ok(DataPage {
            t,
            dw,
            nav: Nav::admin("data", &user.username, w),
            projects,
            project_id,
            tab,
            query_string,
            agent: query.agent.clone().unwrap_or_default(),
            outcomes,
            statuses,
            phone_tail: query.phone_tail.clone().unwrap_or_default(),
            from: query.from.clone().unwrap_or_default(),
            to: query.to.clone().unwrap_or_default(),
            pager,
            customers,
            records,
            callbacks,
            hq_lists,
            columns,
            record_columns,
            agents,
            can_export: modules.contains(&Module::Export),
        })
    })();
    match page {
        Ok(page) => render(page),
        Err(error) => fail(error),
    }
}
