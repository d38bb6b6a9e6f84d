//! Call records at HQ (职场通话记录) and their recordings (录音管理): the search page, a
//! call's page, and their JSON twins under `/api/calls` and `/api/sites/{id}/calls/…`.
//!
//! - Filters arrive as a query string ([`Filter`]) in the same form for the page, the JSON
//!   API and both exports, so an export is exactly the list on screen. Each bad value is
//!   refused naming the field, in the caller's language.
//! - Pages are keyset-paged by the store: "next page" carries the last call's key, never an
//!   offset; there is no page of every row.
//! - The list and a call are guarded by 职场通话记录 (`site.calls`), recordings (play,
//!   download, fetch from the site, the zip) by 录音管理 (`data.recordings`); the data scope
//!   is applied by the store, which answers a call outside it as missing (404).
//! - Masking, hidden fields and the recording's hash come from the store; nothing here
//!   decides what a viewer may see.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::{text, ApiPath};
use super::guard::{Access, DataRecordings, Permission, Registry, SiteCalls};
use super::pages::{message, render};
use super::{blocking, calls_files, format_time, ApiError, AppState, ErrorBody, Module, Tr};
use crate::store::{CallCursor, CallQuery, CallView, Direction, PhoneMatch, Scope, MAX_CALL_PAGE};

/// The page size when the query names none.
const DEFAULT_PAGE: u32 = 50;

/// The routes of this module (one line in the shared route table).
pub(super) fn routes(r: Registry) -> Registry {
    let calls = Access::module::<SiteCalls>();
    let recordings = Access::module::<DataRecordings>();
    r.get("/calls", calls, calls_page)
        .get("/calls/{site}/{attempt}", calls, call_page)
        .get("/static/calls.js", Access::Public, calls_js)
        .get("/api/calls", calls, search)
        .get("/api/calls/export.xlsx", calls, calls_files::export_xlsx)
        .get("/api/calls/recordings.zip", recordings, calls_files::recordings_zip)
        .get("/api/sites/{id}/calls/{attempt}", calls, get_call)
        .get("/api/sites/{id}/calls/{attempt}/recording", recordings, calls_files::recording)
        .post("/api/sites/{id}/calls/{attempt}/recording/fetch", recordings, calls_files::fetch)
}

async fn calls_js() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("../../static/calls.js"))
}

/// The filter as typed, echoed back into the form and into the links of the page.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Filter {
    /// Started at or after: `YYYY-MM-DD` or `YYYY-MM-DD HH:MM`, China time.
    #[serde(default)]
    pub from: String,
    /// Started before: a day (its whole day included) or `YYYY-MM-DD HH:MM`, China time.
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub site: String,
    #[serde(default)]
    pub project: String,
    #[serde(default)]
    pub batch: String,
    /// The agent's account at the site.
    #[serde(default)]
    pub agent: String,
    /// The agent's extension.
    #[serde(default)]
    pub extension: String,
    /// `outbound` or `inbound`.
    #[serde(default)]
    pub direction: String,
    /// `connected`, `busy`, `no_answer`, `rejected`, `failed`, `abandoned`, `agent_missed`.
    #[serde(default)]
    pub outcome: String,
    /// `customer`, `agent` or `system`.
    #[serde(default)]
    pub hangup: String,
    /// Talk time at least, seconds.
    #[serde(default)]
    pub talk_min: String,
    /// Talk time at most, seconds.
    #[serde(default)]
    pub talk_max: String,
    /// A business-record field's key; with `result_value`, the value it must hold.
    #[serde(default)]
    pub result_key: String,
    #[serde(default)]
    pub result_value: String,
    /// A whole number, or its last four digits.
    #[serde(default)]
    pub phone: String,
    /// The `next` of the previous page.
    #[serde(default)]
    pub after: String,
    /// Page size, 1 to 200 (50 if empty).
    #[serde(default)]
    pub limit: String,
}

pub(super) const OUTCOMES: &[&str] = &["connected", "busy", "no_answer", "rejected", "failed", "abandoned", "agent_missed"];
const HANGUPS: &[&str] = &["customer", "agent", "system"];

/// "field: reason" in the caller's language.
fn bad(tr: Tr, field: &str, en: &str, zh: &str) -> String {
    // The field by its label on the page (开始时间), not its variable (`from`).
    let label = |zh: bool| super::messages::CATALOG.label(field, zh).unwrap_or(field);
    text(tr, &format!("{}: {en}", label(false)), &format!("“{}”{zh}", label(true)))
}

fn int(tr: Tr, field: &str, value: &str) -> Result<Option<i64>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    value.parse::<i64>().map(Some).map_err(|_| bad(tr, field, &format!("{value:?} is not a whole number"), &format!("“{value}”不是整数")))
}

/// A China-time moment: `YYYY-MM-DD`, `YYYY-MM-DD HH:MM` (or with `T`, or seconds). A day
/// alone is its midnight, or the next midnight when it ends a range (`end_of_day`).
fn china_time(tr: Tr, field: &str, value: &str, end_of_day: bool) -> Result<Option<i64>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let refuse = || bad(tr, field, &format!("{value:?} is not a time: use YYYY-MM-DD or YYYY-MM-DD HH:MM"), &format!("“{value}”不是时间：请填写 YYYY-MM-DD 或 YYYY-MM-DD HH:MM"));
    let (day, clock) = match value.split_once([' ', 'T']) {
        Some((day, clock)) => (day, Some(clock.trim())),
        None => (value, None),
    };
    let mut parts = day.split('-').map(|p| p.parse::<i32>().ok());
    let (Some(Some(year)), Some(Some(month)), Some(Some(dom)), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(refuse());
    };
    let month = u8::try_from(month).ok().and_then(|m| time::Month::try_from(m).ok()).ok_or_else(refuse)?;
    let date = time::Date::from_calendar_date(year, month, u8::try_from(dom).map_err(|_| refuse())?).map_err(|_| refuse())?;
    let (hour, minute, second) = match clock {
        None => (0, 0, 0),
        Some(clock) => {
            let nums: Vec<Option<u8>> = clock.split(':').map(|p| p.parse().ok()).collect();
            match nums.as_slice() {
                [Some(h), Some(m)] => (*h, *m, 0),
                [Some(h), Some(m), Some(s)] => (*h, *m, *s),
                _ => return Err(refuse()),
            }
        }
    };
    let at = time::Time::from_hms(hour, minute, second).map_err(|_| refuse())?;
    let offset = time::UtcOffset::from_hms(8, 0, 0).map_err(|_| refuse())?;
    let mut unix = time::PrimitiveDateTime::new(date, at).assume_offset(offset).unix_timestamp();
    if clock.is_none() && end_of_day {
        unix += 86_400;
    }
    Ok(Some(unix))
}

fn one_of(tr: Tr, field: &str, value: &str, allowed: &[&str]) -> Result<Option<String>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if allowed.contains(&value) {
        return Ok(Some(value.to_string()));
    }
    let list = allowed.join(", ");
    Err(bad(tr, field, &format!("{value:?} is not one of {list}"), &format!("“{value}”不是可选值（{list}）")))
}

/// The number searched: four digits are the last four, anything longer a whole number.
fn phone(tr: Tr, value: &str) -> Result<Option<PhoneMatch>, String> {
    let digits: String = value.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    if digits.is_empty() {
        return Ok(None);
    }
    if digits.len() == 4 && digits.chars().all(|c| c.is_ascii_digit()) {
        return Ok(Some(PhoneMatch::LastFour(digits)));
    }
    match crate::phone::normalize(&digits) {
        Ok(number) => Ok(Some(PhoneMatch::Exact(number))),
        Err(_) => Err(bad(
            tr,
            "phone",
            &format!("{value:?} is neither a whole number nor its last four digits"),
            &format!("“{value}”既不是完整号码也不是后四位"),
        )),
    }
}

impl Filter {
    /// The store's query, or the first bad field's message in the caller's language.
    pub fn query(&self, tr: Tr) -> Result<CallQuery, String> {
        let direction = match one_of(tr, "direction", &self.direction, &["outbound", "inbound"])?.as_deref() {
            Some("inbound") => Some(Direction::Inbound),
            Some(_) => Some(Direction::Outbound),
            None => None,
        };
        let result = match (self.result_key.trim(), self.result_value.trim()) {
            ("", "") => None,
            ("", _) => return Err(bad(tr, "result_key", "name the field whose value to match", "请填写要匹配的字段变量名")),
            (key, value) => Some((key.to_string(), value.to_string())),
        };
        let after = match self.after.trim() {
            "" => None,
            token => Some(CallCursor::parse(token).ok_or_else(|| bad(tr, "after", "not a page cursor: use the `next` of the previous page", "无效：请使用页面上的“下一页”翻页"))?),
        };
        let limit = match int(tr, "limit", &self.limit)? {
            None => DEFAULT_PAGE,
            Some(n) if (1..=i64::from(MAX_CALL_PAGE)).contains(&n) => n as u32,
            Some(n) => return Err(bad(tr, "limit", &format!("{n} is outside 1 to {MAX_CALL_PAGE}"), &format!("{n} 不在 1 到 {MAX_CALL_PAGE} 之间"))),
        };
        let talk_min = int(tr, "talk_min", &self.talk_min)?;
        let talk_max = int(tr, "talk_max", &self.talk_max)?;
        if let (Some(min), Some(max)) = (talk_min, talk_max)
            && min > max
        {
            return Err(bad(tr, "talk_max", &format!("{max} is below the minimum {min}"), &format!("{max} 小于最短 {min}")));
        }
        Ok(CallQuery {
            from: china_time(tr, "from", &self.from, false)?,
            to: china_time(tr, "to", &self.to, true)?,
            site_id: int(tr, "site", &self.site)?,
            project_id: int(tr, "project", &self.project)?,
            batch_id: int(tr, "batch", &self.batch)?,
            agent: Some(self.agent.trim().to_string()).filter(|a| !a.is_empty()),
            extension: Some(self.extension.trim().to_string()).filter(|e| !e.is_empty()),
            direction,
            outcome: one_of(tr, "outcome", &self.outcome, OUTCOMES)?,
            hangup: one_of(tr, "hangup", &self.hangup, HANGUPS)?,
            talk_min,
            talk_max,
            result,
            phone: phone(tr, &self.phone)?,
            after,
            limit,
        })
    }

    /// The filter as a query string (without the page position), for links.
    pub fn query_string(&self) -> String {
        let pairs = [
            ("from", &self.from),
            ("to", &self.to),
            ("site", &self.site),
            ("project", &self.project),
            ("batch", &self.batch),
            ("agent", &self.agent),
            ("extension", &self.extension),
            ("direction", &self.direction),
            ("outcome", &self.outcome),
            ("hangup", &self.hangup),
            ("talk_min", &self.talk_min),
            ("talk_max", &self.talk_max),
            ("result_key", &self.result_key),
            ("result_value", &self.result_value),
            ("phone", &self.phone),
            ("limit", &self.limit),
        ];
        pairs
            .iter()
            .filter(|(_, value)| !value.trim().is_empty())
            .map(|(key, value)| format!("{key}={}", encode(value)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// A page of calls.
#[derive(Serialize, ToSchema)]
pub struct CallsReply {
    pub calls: Vec<CallView>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Runs a search for `scope`; a bad filter is a 400 in the caller's language.
pub(super) async fn run_search(state: &AppState, filter: &Filter, tr: Tr, scope: Scope) -> Result<crate::store::CallPage, ApiError> {
    let query = filter.query(tr).map_err(ApiError::bad_request)?;
    Ok(blocking(state, move |store| store.search_calls(&query, &scope)).await??)
}

/// `GET /api/calls`: one page of the calls the filter finds, newest first.
#[utoipa::path(get, path = "/api/calls", tag = "calls", params(Filter),
    responses((status = 200, description = "A page of calls, newest first", body = CallsReply),
              (status = 400, description = "A filter value is not valid (named in the message)", body = ErrorBody)))]
pub async fn search(State(state): State<AppState>, caller: Module<SiteCalls>, Query(filter): Query<Filter>) -> Result<Json<CallsReply>, ApiError> {
    let page = run_search(&state, &filter, caller.tr, caller.scope.clone()).await?;
    Ok(Json(CallsReply { calls: page.calls, next: page.next.map(|c| c.token()) }))
}

/// One call the caller may see, or 404 in its language.
pub(super) async fn visible_call(state: &AppState, tr: Tr, scope: Scope, site: i64, attempt: i64) -> Result<CallView, ApiError> {
    let found = blocking(state, move |store| store.call(site, attempt, &scope)).await??;
    found.ok_or_else(|| ApiError::not_found(text(tr, &format!("call {site}/{attempt} does not exist"), &format!("通话 {site}/{attempt} 不存在"))))
}

/// `GET /api/sites/{id}/calls/{attempt}`: one call with its business record and recording.
#[utoipa::path(get, path = "/api/sites/{id}/calls/{attempt}", tag = "calls",
    params(("id" = i64, Path, description = "The site"), ("attempt" = i64, Path, description = "The site's id of the call")),
    responses((status = 200, description = "The call", body = CallView),
              (status = 404, description = "No such call (or not the caller's)", body = ErrorBody)))]
pub async fn get_call(State(state): State<AppState>, caller: Module<SiteCalls>, ApiPath((site, attempt)): ApiPath<(i64, i64)>) -> Result<Json<CallView>, ApiError> {
    Ok(Json(visible_call(&state, caller.tr, caller.scope.clone(), site, attempt).await?))
}

/// Words for stored keys.
pub(super) fn outcome_word(tr: Tr, key: &str) -> &'static str {
    let t = tr.text();
    match key {
        "connected" => t.out_connected,
        "busy" => t.out_busy,
        "no_answer" => t.out_no_answer,
        "rejected" => t.out_rejected,
        "failed" => t.out_failed,
        "abandoned" => t.out_abandoned,
        "agent_missed" => t.out_agent_missed,
        _ => t.out_unknown,
    }
}

pub(super) fn hangup_word(tr: Tr, key: Option<&str>) -> &'static str {
    let t = tr.text();
    match key {
        Some("customer") => t.hangup_customer,
        Some("agent") => t.hangup_agent,
        Some("system") => t.hangup_system,
        _ => "",
    }
}

pub(super) fn kind_word(tr: Tr, key: &str) -> &'static str {
    let t = tr.text();
    match key {
        "predictive" => t.kind_predictive,
        "one_click" => t.kind_one_click,
        "callback" => t.kind_callback,
        "manual" => t.kind_manual,
        "inbound" => t.kind_inbound,
        "ivr" => t.kind_ivr,
        _ => t.kind_unknown,
    }
}

pub(super) fn direction_word(tr: Tr, direction: Direction) -> &'static str {
    match direction {
        Direction::Outbound => tr.text().dir_outbound,
        Direction::Inbound => tr.text().dir_inbound,
    }
}

/// A call as the pages show it: display-ready strings.
pub(super) struct CallRow {
    pub link: String,
    pub site: String,
    pub site_offline: bool,
    pub project: String,
    pub batch: String,
    pub phone: String,
    pub agent: String,
    pub extension: String,
    pub direction: &'static str,
    pub kind: &'static str,
    pub outcome: &'static str,
    pub hangup: &'static str,
    pub started: String,
    pub answered: String,
    pub ended: String,
    pub talk: i64,
    pub recording: &'static str,
    pub record: Vec<(String, String)>,
    /// Each measured leg's figures, display-ready.
    pub quality: Vec<QualityRow>,
    /// The MOS of each measured leg, customer's first (`4.31 / 4.40`).
    pub mos: String,
    /// MOS under 3.6 or more than 3 % lost on a leg.
    pub poor: bool,
}

/// One leg of a call's quality as the detail page shows it.
pub(super) struct QualityRow {
    pub leg: &'static str,
    pub loss: String,
    pub jitter: String,
    pub mos: String,
}

fn quality_rows(tr: Tr, call: &CallView) -> Vec<QualityRow> {
    let Some(quality) = call.quality else { return Vec::new() };
    [(tr.text().calls_quality_customer, quality.customer), (tr.text().calls_quality_agent, quality.agent)]
        .into_iter()
        .filter_map(|(leg, figures)| {
            figures.map(|f| QualityRow {
                leg,
                loss: format!("{:.1} %", f.loss_percent),
                jitter: format!("{:.1} ms", f.jitter_ms),
                mos: format!("{:.2}", f.mos),
            })
        })
        .collect()
}

pub(super) fn call_row(tr: Tr, call: &CallView) -> CallRow {
    CallRow {
        link: format!("/calls/{}/{}", call.site_id, call.attempt_id),
        site: call.site_name.clone(),
        site_offline: !call.site_online,
        project: call.project_name.clone().unwrap_or_default(),
        batch: match &call.batch_name {
            Some(name) => format!("{name} ({})", call.batch_id),
            None => call.batch_id.to_string(),
        },
        phone: call.phone.clone(),
        agent: call.agent.clone().unwrap_or_default(),
        extension: call.extension.clone().unwrap_or_default(),
        direction: direction_word(tr, call.direction),
        kind: kind_word(tr, &call.kind),
        outcome: outcome_word(tr, &call.outcome),
        hangup: hangup_word(tr, call.hangup_side.as_deref()),
        started: format_time(call.started_at),
        answered: call.answered_at.map(format_time).unwrap_or_default(),
        ended: format_time(call.ended_at),
        talk: call.talk_seconds,
        recording: match &call.recording {
            Some(r) if r.held => tr.text().calls_held,
            Some(_) => tr.text().calls_not_held,
            None => "",
        },
        record: call.record.iter().flat_map(|r| r.values.iter().map(|v| (v.title.clone(), v.value.clone()))).collect(),
        quality: quality_rows(tr, call),
        mos: call
            .quality
            .map(|q| [q.customer, q.agent].into_iter().flatten().map(|l| format!("{:.2}", l.mos)).collect::<Vec<_>>().join(" / "))
            .unwrap_or_default(),
        poor: call.quality.is_some_and(|q| q.is_poor()),
    }
}

/// A choice of a filter's select.
pub(super) struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

fn choices(current: &str, options: impl IntoIterator<Item = (String, String)>) -> Vec<Choice> {
    options.into_iter().map(|(value, label)| Choice { selected: value == current.trim(), value, label }).collect()
}

#[derive(Template)]
#[template(path = "calls.html")]
struct CallsPage {
    tr: Tr,
    user: String,
    filter: Filter,
    sites: Vec<Choice>,
    projects: Vec<Choice>,
    directions: Vec<Choice>,
    outcomes: Vec<Choice>,
    hangups: Vec<Choice>,
    error: String,
    calls: Vec<CallRow>,
    first_link: String,
    next_link: String,
    export_xlsx: String,
    export_zip: String,
    can_recordings: bool,
}

/// `GET /calls`: the search form and one page of calls.
pub async fn calls_page(State(state): State<AppState>, caller: Module<SiteCalls>, Query(filter): Query<Filter>) -> Response {
    let tr = caller.tr;
    let scope = caller.scope.clone();
    let lists = blocking(&state, move |store| -> Result<_, crate::store::DbError> {
        let sites: Vec<_> = store.list_sites()?.into_iter().filter(|s| scope.site(s.id)).map(|s| (s.id.to_string(), s.name)).collect();
        let projects: Vec<_> =
            store.list_projects()?.into_iter().filter(|p| scope.project(p.id)).map(|p| (p.id.to_string(), format!("{} / {}", p.category_name, p.name))).collect();
        Ok((sites, projects))
    })
    .await;
    let (sites, projects) = match lists {
        Ok(Ok(lists)) => lists,
        Ok(Err(err)) => return ApiError::from(err).into_response(),
        Err(err) => return err.into_response(),
    };
    let (calls, next, error) = match run_search(&state, &filter, tr, caller.scope.clone()).await {
        Ok(page) => (page.calls, page.next, String::new()),
        Err(err) if err.status == StatusCode::BAD_REQUEST => (Vec::new(), None, err.message),
        Err(err) => return err.into_response(),
    };
    let base = filter.query_string();
    let join = |extra: String| if base.is_empty() { extra } else if extra.is_empty() { base.clone() } else { format!("{base}&{extra}") };
    let t = tr.text();
    let page = CallsPage {
        tr,
        user: caller.account.username.clone(),
        sites: choices(&filter.site, sites),
        projects: choices(&filter.project, projects),
        directions: choices(&filter.direction, [("outbound", t.dir_outbound), ("inbound", t.dir_inbound)].map(|(k, w)| (k.to_string(), w.to_string()))),
        outcomes: choices(&filter.outcome, OUTCOMES.iter().map(|k| (k.to_string(), outcome_word(tr, k).to_string()))),
        hangups: choices(&filter.hangup, HANGUPS.iter().map(|k| (k.to_string(), hangup_word(tr, Some(k)).to_string()))),
        error,
        calls: calls.iter().map(|call| call_row(tr, call)).collect(),
        first_link: format!("/calls?{}", join(String::new())),
        next_link: next.map(|cursor| format!("/calls?{}", join(format!("after={}", cursor.token())))).unwrap_or_default(),
        export_xlsx: format!("/api/calls/export.xlsx?{}", join(String::new())),
        export_zip: format!("/api/calls/recordings.zip?{}", join(String::new())),
        can_recordings: caller.scope.has_module(DataRecordings::KEY),
        filter,
    };
    render(&page)
}

#[derive(Template)]
#[template(path = "call.html")]
struct CallPage {
    tr: Tr,
    user: String,
    title: String,
    call: CallRow,
    has_record: bool,
    record_by: String,
    /// `none` (not recorded), `held`, `missing` (HQ does not hold it yet).
    recording_state: &'static str,
    can_recordings: bool,
    audio_src: String,
    download: String,
    fetch_url: String,
    call_url: String,
}

/// `GET /calls/{site}/{attempt}`: one call with its business record and its recording.
pub async fn call_page(State(state): State<AppState>, caller: Module<SiteCalls>, Path((site, attempt)): Path<(i64, i64)>) -> Response {
    let tr = caller.tr;
    let call = match visible_call(&state, tr, caller.scope.clone(), site, attempt).await {
        Ok(call) => call,
        Err(err) if err.status.is_server_error() => return err.into_response(),
        Err(err) => {
            let mut page = message(tr, &caller.account.username, tr.text().common_failed, err.message, "/calls");
            *page.status_mut() = err.status;
            return page;
        }
    };
    let recording_state = match &call.recording {
        None => "none",
        Some(r) if r.held => "held",
        Some(_) => "missing",
    };
    let api = format!("/api/sites/{site}/calls/{attempt}");
    let page = CallPage {
        tr,
        user: caller.account.username.clone(),
        title: format!("{} {site}/{attempt}", tr.text().calls_detail),
        has_record: call.record.is_some(),
        record_by: call.record.as_ref().map(|r| format!("{} · {}", r.agent, format_time(r.saved_at))).unwrap_or_default(),
        call: call_row(tr, &call),
        recording_state,
        can_recordings: caller.scope.has_module(DataRecordings::KEY),
        audio_src: format!("{api}/recording"),
        download: format!("{api}/recording?download=1"),
        fetch_url: format!("{api}/recording/fetch"),
        call_url: api,
    };
    render(&page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::Lang;

    #[test]
    fn filters_parse_or_name_the_bad_field_in_the_callers_language() {
        let zh = Tr { lang: Lang::Zh };
        let en = Tr { lang: Lang::En };
        let filter = Filter { from: "2026-12-01".into(), to: "2026-12-01 08:30".into(), phone: "1234".into(), talk_min: "5".into(), ..Filter::default() };
        let query = filter.query(zh).unwrap();
        // 2026-12-01 00:00 China time is 2026-11-30 16:00 UTC.
        assert_eq!(query.from, Some(1_796_054_400));
        assert_eq!(query.to, Some(1_796_054_400 + 8 * 3600 + 30 * 60));
        assert_eq!(query.phone, Some(PhoneMatch::LastFour("1234".into())));
        assert_eq!(query.limit, DEFAULT_PAGE);
        let whole = Filter { to: "2026-12-01".into(), phone: "138-0013-8000".into(), ..Filter::default() }.query(zh).unwrap();
        assert_eq!(whole.to, Some(1_796_054_400 + 86_400), "a day alone ends the range with the whole day");
        assert_eq!(whole.phone, Some(PhoneMatch::Exact("13800138000".into())));
        for (filter, field) in [
            (Filter { from: "12/01/2026".into(), ..Filter::default() }, "from"),
            (Filter { site: "x".into(), ..Filter::default() }, "site"),
            (Filter { outcome: "sideways".into(), ..Filter::default() }, "outcome"),
            (Filter { phone: "12".into(), ..Filter::default() }, "phone"),
            (Filter { limit: "500".into(), ..Filter::default() }, "limit"),
            (Filter { talk_min: "9".into(), talk_max: "3".into(), ..Filter::default() }, "talk_max"),
            (Filter { result_value: "成功".into(), ..Filter::default() }, "result_key"),
            (Filter { after: "7".into(), ..Filter::default() }, "after"),
        ] {
            let zh_error = filter.query(zh).unwrap_err();
            let en_error = filter.query(en).unwrap_err();
            // Named by the page's label, never the variable.
            let label = |zh: bool| super::super::messages::CATALOG.label(field, zh).unwrap_or_else(|| panic!("{field} has no label"));
            assert!(zh_error.starts_with(&format!("“{}”", label(true))), "{zh_error}");
            assert!(en_error.starts_with(&format!("{}: ", label(false))), "{en_error}");
            assert_ne!(zh_error, en_error);
        }
        let echoed = Filter { phone: "8000".into(), agent: "小李 1".into(), ..Filter::default() };
        assert_eq!(echoed.query_string(), "agent=%E5%B0%8F%E6%9D%8E%201&phone=8000");
    }
}
