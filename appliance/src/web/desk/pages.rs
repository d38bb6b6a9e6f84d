//! The agent desk's server-rendered pages: the desk itself (state buttons, the agent's
//! projects, the popup), desk settings, call records, callbacks, customers and "my numbers".
//! Each takes [`AgentUser`]; every list comes from the store's masked views for the agent's
//! own viewer, so a page can only show what the agent may see.

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use sync_protocol::FieldKind;

use crate::store::{CallFilter, CallRecordView, CallbackView, CustomerPage, CustomerView, Module, PopupField};
use crate::web::guard::need;
use crate::web::i18n::Text;
use crate::web::limits::ApiQuery;
use crate::web::page::{Choice, Nav, ProjectQuery, choices, fail, lang, render, state_label, work};
use crate::web::{AgentUser, ApiError, AppState};

use super::lists::{DeskListQuery, Listed, PAGE, Pager};
use super::words::{DeskWords, desk_words};

struct ProjectRow {
    project_id: u64,
    name: String,
    one_click: bool,
    running: bool,
    created_at: i64,
    my_numbers: u64,
}

struct StateButton {
    state: &'static str,
    label: &'static str,
}

#[derive(Template)]
#[template(path = "desk.html")]
struct DeskPage {
    t: &'static Text,
    dw: &'static DeskWords,
    nav: Nav,
    projects: Vec<ProjectRow>,
    extension: String,
    current_state: &'static str,
    current_label: &'static str,
    buttons: Vec<StateButton>,
}

/// `GET /desk`: the agent desk.
pub async fn desk(agent: AgentUser, State(state): State<AppState>, headers: HeaderMap) -> Response {
    let t = lang(&headers);
    let current = state.desk.state(agent.user.user_id);
    // 签入 puts the agent in 不可回接: signed in, but taking no predictive call until they
    // choose 可回接, as the manual's desk does.
    let buttons = vec![
        StateButton { state: "one_click_only", label: t.sign_in },
        StateButton { state: "available", label: t.state_available },
        StateButton { state: "one_click_only", label: t.state_one_click },
        StateButton { state: "break", label: t.state_break },
        StateButton { state: "away", label: t.state_away },
        StateButton { state: "signed_out", label: t.sign_out },
    ];
    let projects = match state.store.my_projects(agent.user.user_id, &agent.user.username) {
        Ok(projects) => projects,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let projects = projects
        .into_iter()
        .map(|project| ProjectRow {
            project_id: project.project_id,
            name: project.name,
            one_click: project.dial_mode == crate::store::SiteDialMode::OneClick,
            running: project.status == "running",
            created_at: project.created_at,
            my_numbers: project.my_numbers,
        })
        .collect();
    render(DeskPage {
        t,
        dw: desk_words(&headers),
        projects,
        nav: Nav::desk("desk", &agent.user.username, work(&headers)),
        extension: agent.extension,
        current_state: current.as_str(),
        current_label: state_label(t, current),
        buttons,
    })
}

#[derive(Template)]
#[template(path = "desk_settings.html")]
struct SettingsPage {
    t: &'static Text,
    dw: &'static DeskWords,
    nav: Nav,
    callers: Vec<Choice>,
    timings: Vec<Choice>,
    pages: Vec<Choice>,
}

/// `GET /desk/settings` (A1).
pub async fn desk_settings(agent: AgentUser, State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (t, w) = (lang(&headers), work(&headers));
    let settings = match state.store.agent_settings(agent.user.user_id) {
        Ok(settings) => settings,
        Err(error) => return fail(error.into()),
    };
    let mut callers = vec![Choice { value: String::new(), label: w.any_line.to_string(), selected: settings.caller.is_empty() }];
    callers.extend(state.store.lines().into_iter().map(|line| Choice {
        selected: line.name == settings.caller,
        label: line.name.clone(),
        value: line.name,
    }));
    render(SettingsPage {
        t,
        dw: desk_words(&headers),
        nav: Nav::desk("settings", &agent.user.username, w),
        callers,
        timings: choices(&[("answer", w.timing_answer), ("ring", w.timing_ring)], &settings.popup_timing),
        pages: choices(&[("default", w.page_default)], &settings.popup_page),
    })
}

/// A business-record field of the edit form, with its current value.
struct EditField {
    key: String,
    title: String,
    options: Vec<String>,
    required: bool,
    value: String,
}

struct RecordRow {
    view: CallRecordView,
    fields: Vec<EditField>,
}

#[derive(Template)]
#[template(path = "desk_records.html")]
struct RecordsPage {
    t: &'static Text,
    dw: &'static DeskWords,
    nav: Nav,
    records: Vec<RecordRow>,
    outcomes: Vec<Choice>,
    phone_tail: String,
    from: String,
    to: String,
    pager: Pager,
    can_download: bool,
}

/// `GET /desk/records?outcome&phone_tail&from&to&before` (A8): own calls, playback,
/// download, edit; a day span and keyset pages of [`PAGE`].
pub async fn desk_records(
    agent: AgentUser<need::Records>,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<DeskListQuery>,
    headers: HeaderMap,
) -> Response {
    let (t, w, dw) = (lang(&headers), work(&headers), desk_words(&headers));
    let page = (|| -> Result<RecordsPage, ApiError> {
        let viewer = agent.viewer.clone();
        let blank = |value: &Option<String>| value.clone().filter(|v| !v.trim().is_empty());
        let (from, to) = query.span(dw)?;
        let filter = CallFilter {
            agent: Some(agent.user.username.clone()),
            outcome: blank(&query.outcome),
            phone_tail: blank(&query.phone_tail),
            from,
            to,
            ..CallFilter::default()
        };
        let mut views = state.store.call_records_before(&viewer, &filter, query.before, PAGE + 1)?;
        let more = views.len() > PAGE as usize;
        views.truncate(PAGE as usize);
        let cursor = views.last().filter(|_| more).map(|last| format!("before={}", last.attempt_id));
        let pager = Pager::new("/desk/records", &query, query.before.is_none(), cursor);
        let mut rows = Vec::new();
        let mut defs = std::collections::HashMap::new();
        let mut listed = Listed::new(&state.store);
        for mut view in views {
            let project_id = view.project_id.unwrap_or_default();
            if let std::collections::hash_map::Entry::Vacant(slot) = defs.entry(project_id) {
                slot.insert(state.store.project(project_id)?);
            }
            let fields = defs
                .get(&project_id)
                .and_then(Option::as_ref)
                .map(|def| {
                    def.record_fields
                        .iter()
                        .filter(|f| !f.hidden && !f.read_only)
                        .map(|f| EditField {
                            key: f.key.clone(),
                            title: f.title.clone(),
                            options: match &f.kind {
                                FieldKind::SingleChoice(options) => options.clone(),
                                _ => Vec::new(),
                            },
                            required: f.required,
                            value: view.record.iter().find(|v| v.key == f.key).map(|v| v.value.clone()).unwrap_or_default(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            // The edit form keeps every editable field; the list shows the listed ones.
            view.record = listed.record(view.project_id, &view.record)?;
            rows.push(RecordRow { view, fields });
        }
        Ok(RecordsPage {
            t,
            dw: desk_words(&headers),
            nav: Nav::desk("records", &agent.user.username, w),
            records: rows,
            outcomes: choices(
                &[
                    ("connected", w.out_connected),
                    ("busy", w.out_busy),
                    ("no_answer", w.out_no_answer),
                    ("rejected", w.out_rejected),
                    ("failed", w.out_failed),
                    ("abandoned", w.out_abandoned),
                ],
                query.outcome.as_deref().unwrap_or(""),
            ),
            phone_tail: query.phone_tail.clone().unwrap_or_default(),
            from: query.from.clone().unwrap_or_default(),
            to: query.to.clone().unwrap_or_default(),
            pager,
            can_download: agent.modules.contains(&Module::Download),
        })
    })();
    match page {
        Ok(page) => render(page),
        Err(error) => fail(error),
    }
}

#[derive(Template)]
#[template(path = "desk_callbacks.html")]
struct CallbacksPage {
    t: &'static Text,
    dw: &'static DeskWords,
    nav: Nav,
    callbacks: Vec<CallbackView>,
}

/// `GET /desk/callbacks` (A7): the callback list with 定时执行 and 拨打.
pub async fn desk_callbacks(agent: AgentUser<need::Callbacks>, State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (t, w) = (lang(&headers), work(&headers));
    let page = (|| -> Result<CallbacksPage, ApiError> {
        let viewer = agent.viewer.clone();
        Ok(CallbacksPage {
            t,
            dw: desk_words(&headers),
            nav: Nav::desk("callbacks", &agent.user.username, w),
            callbacks: state.store.callbacks(&viewer, Some(&agent.user.username), None, None)?,
        })
    })();
    match page {
        Ok(page) => render(page),
        Err(error) => fail(error),
    }
}

/// A customer with the fields its project's lists show (the edit form has them all).
struct CustomerRow {
    c: CustomerView,
    shown: Vec<PopupField>,
}

fn customer_rows(state: &AppState, customers: Vec<CustomerView>) -> Result<Vec<CustomerRow>, ApiError> {
    let mut listed = Listed::new(&state.store);
    customers
        .into_iter()
        .map(|c| -> Result<CustomerRow, ApiError> { Ok(CustomerRow { shown: listed.customer(c.project_id, &c.fields)?, c }) })
        .collect()
}

#[derive(Template)]
#[template(path = "desk_customers.html")]
struct CustomersPage {
    t: &'static Text,
    dw: &'static DeskWords,
    nav: Nav,
    customers: Vec<CustomerRow>,
    title: &'static str,
    editable: bool,
    /// The list's filters and pager (客户管理 only; "my numbers" shows one list).
    paged: Option<(String, String, Pager)>,
}

/// `GET /desk/customers?from&to&after_batch&after_row` (A9): the agent's own customers,
/// editable fields; batches imported in a day span, keyset pages of [`PAGE`].
pub async fn desk_customers(
    agent: AgentUser<need::Customers>,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<DeskListQuery>,
    headers: HeaderMap,
) -> Response {
    let (t, w, dw) = (lang(&headers), work(&headers), desk_words(&headers));
    let page = (|| -> Result<CustomersPage, ApiError> {
        let viewer = agent.viewer.clone();
        let (imported_from, imported_to) = query.span(dw)?;
        let after = query.after_batch.zip(query.after_row);
        let keys = CustomerPage { after, imported_from, imported_to };
        let mut customers = state.store.customers_page(&viewer, Some(&agent.user.username), None, None, &keys, PAGE + 1)?;
        let more = customers.len() > PAGE as usize;
        customers.truncate(PAGE as usize);
        let cursor = customers.last().filter(|_| more).map(|c| format!("after_batch={}&after_row={}", c.batch_id, c.row_id));
        let pager = Pager::new("/desk/customers", &query, after.is_none(), cursor);
        Ok(CustomersPage {
            t,
            dw,
            nav: Nav::desk("customers", &agent.user.username, w),
            customers: customer_rows(&state, customers)?,
            title: w.nav_customers,
            editable: true,
            paged: Some((query.from.clone().unwrap_or_default(), query.to.clone().unwrap_or_default(), pager)),
        })
    })();
    match page {
        Ok(page) => render(page),
        Err(error) => fail(error),
    }
}

/// `GET /desk/numbers?project_id` (A2 我的号码): the undialed numbers the agent owns.
pub async fn desk_numbers(
    agent: AgentUser,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ProjectQuery>,
    headers: HeaderMap,
) -> Response {
    let (t, w) = (lang(&headers), work(&headers));
    let page = (|| -> Result<CustomersPage, ApiError> {
        let viewer = agent.viewer.clone();
        let customers = state
            .store
            .customers(&viewer, Some(&agent.user.username), query.project_id, Some("new"), 1000)?
            .into_iter()
            .filter(|c| c.owner.as_deref() == Some(agent.user.username.as_str()))
            .collect();
        let customers = customer_rows(&state, customers)?;
        Ok(CustomersPage { t, dw: desk_words(&headers), nav: Nav::desk("desk", &agent.user.username, w), customers, title: w.my_numbers, editable: false, paged: None })
    })();
    match page {
        Ok(page) => render(page),
        Err(error) => fail(error),
    }
}
