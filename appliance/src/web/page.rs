//! What every server-rendered page is built from: the texts in the session's language, the
//! header's menu (`Nav`), rendering a template (askama, under `appliance/templates/`),
//! `<select>` options ([`Choice`]) and the query the list pages share ([`ProjectQuery`]).
//!
//! Pages carry no data the session may not see: the admin pages need
//! [`AdminUser`](super::AdminUser), the desk needs [`AgentUser`](super::AgentUser), and
//! popups only ever reach the desk through the agent's own event stream.

use askama::Template;
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::i18n::{Lang, Text, WorkText};
use super::limits::{self, Check, Limits};
use super::{ApiError, cookie_header};
use crate::desk::AgentState;

pub(super) fn lang(headers: &HeaderMap) -> &'static Text {
    Lang::from_cookie_header(cookie_header(headers)).text()
}

pub(super) fn work(headers: &HeaderMap) -> &'static WorkText {
    Lang::from_cookie_header(cookie_header(headers)).work()
}

pub(super) fn render(template: impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => super::ApiError::internal(error).into_response(),
    }
}

/// Which menu the page header shows.
pub(super) struct Nav {
    pub(super) admin: bool,
    pub(super) signed_in: bool,
    pub(super) active: &'static str,
    pub(super) who: String,
    pub(super) w: &'static WorkText,
}

impl Nav {
    pub(super) fn none(w: &'static WorkText) -> Nav {
        Nav { admin: false, signed_in: false, active: "", who: String::new(), w }
    }

    pub(super) fn admin(active: &'static str, who: &str, w: &'static WorkText) -> Nav {
        Nav { admin: true, signed_in: true, active, who: who.to_string(), w }
    }

    pub(super) fn desk(active: &'static str, who: &str, w: &'static WorkText) -> Nav {
        Nav { admin: false, signed_in: true, active, who: who.to_string(), w }
    }
}

pub(super) fn state_label(t: &'static Text, state: AgentState) -> &'static str {
    match state {
        AgentState::SignedOut => t.state_signed_out,
        AgentState::Available => t.state_available,
        AgentState::OneClickOnly => t.state_one_click,
        AgentState::Break => t.state_break,
        AgentState::Away => t.state_away,
    }
}

/// A permission module in words (任务管理), never its key (`tasks`).
pub(super) fn module_word(module: crate::store::Module, t: &Text) -> &'static str {
    use crate::store::Module as M;
    let (zh, en) = match module {
        M::Tasks => ("任务管理", "Tasks"),
        M::Extensions => ("分机管理", "Extensions"),
        M::Accounts => ("账号权限", "Accounts"),
        M::Attribution => ("归属分配", "Attribution"),
        M::Data => ("项目数据资料", "Project data"),
        M::Export => ("数据导出", "Export"),
        M::Monitor => ("队列监控", "Queue monitor"),
        M::FullNumbers => ("查看完整号码", "Full numbers"),
        M::Records => ("外呼通话记录", "Call records"),
        M::Download => ("录音下载", "Recording download"),
        M::Customers => ("客户管理", "Customers"),
        M::Callbacks => ("回访管理", "Callbacks"),
    };
    if t.html_lang.starts_with("zh") { zh } else { en }
}

pub(super) fn fail(error: ApiError) -> Response {
    error.into_response()
}

/// A `<select>` option.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

pub(super) fn choices(options: &[(&str, &str)], current: &str) -> Vec<Choice> {
    options
        .iter()
        .map(|(value, label)| Choice { value: value.to_string(), label: label.to_string(), selected: *value == current })
        .collect()
}

#[derive(Deserialize, Default)]
pub struct ProjectQuery {
    pub(super) project_id: Option<u64>,
    pub(super) tab: Option<String>,
    pub(super) agent: Option<String>,
    pub(super) outcome: Option<String>,
    pub(super) phone_tail: Option<String>,
    pub(super) status: Option<String>,
    pub(super) state: Option<String>,
    /// First day, `YYYY-MM-DD` (China time), of a growing list.
    pub(super) from: Option<String>,
    /// Last day, included.
    pub(super) to: Option<String>,
    /// Business records: the last attempt of the page before.
    pub(super) before: Option<u64>,
    /// Customers: the last row of the page before.
    pub(super) after_batch: Option<u64>,
    pub(super) after_row: Option<u64>,
}

impl Limits for ProjectQuery {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        check.opt("tab", self.tab.as_deref(), limits::KEY)?;
        check.opt("agent", self.agent.as_deref(), limits::USERNAME)?;
        check.opt("outcome", self.outcome.as_deref(), limits::KEY)?;
        check.opt("phone_tail", self.phone_tail.as_deref(), limits::KEY)?;
        check.opt("status", self.status.as_deref(), limits::KEY)?;
        check.opt("state", self.state.as_deref(), limits::KEY)?;
        check.opt("from", self.from.as_deref(), limits::KEY)?;
        check.opt("to", self.to.as_deref(), limits::KEY)?;
        check.opt_id("before", self.before)?;
        check.opt_id("after_batch", self.after_batch)?;
        check.opt_id("after_row", self.after_row)
    }
}
