//! Server-rendered pages (askama templates under `appliance/templates/`) and the embedded
//! assets. Pages carry no data the session may not see: the admin pages need
//! [`AdminUser`], the desk needs [`AgentUser`], and popups only ever reach the desk through
//! the agent's own event stream.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::i18n::{Lang, Text, WorkText};
use super::guard::need;
use super::{AdminUser, AgentUser, AppState, MaybeSignedIn, Public, cookie_header};
use crate::desk::AgentState;
use crate::store::{Role, TaskStatus};

const APP_CSS: &str = include_str!("../../assets/app.css");
const APP_JS: &str = include_str!("../../assets/app.js");

pub(super) fn lang(headers: &HeaderMap) -> &'static Text {
    Lang::from_cookie_header(cookie_header(headers)).text()
}

pub(super) fn render(template: impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => super::ApiError::internal(error).into_response(),
    }
}

/// `GET /`: where a session belongs.
pub async fn home(MaybeSignedIn(user): MaybeSignedIn, State(state): State<AppState>) -> Redirect {
    use crate::store::Module;
    match user {
        Some(user) if user.role == Role::Admin => {
            // Staff land on the first page their role opens (a 值班长 with monitor and data
            // has no task pages).
            let modules = state.store.modules_of(user.user_id).unwrap_or_default();
            let pages = [
                (Module::Tasks, "/admin/tasks"),
                (Module::Monitor, "/admin/status"),
                (Module::Data, "/admin/data"),
                (Module::Attribution, "/admin/attribution"),
                (Module::Accounts, "/admin/roles"),
                (Module::Extensions, "/admin/extensions"),
            ];
            let page = pages.iter().find(|(module, _)| modules.contains(module)).map_or("/admin/tasks", |(_, page)| *page);
            Redirect::to(page)
        }
        Some(_) => Redirect::to("/desk"),
        None => Redirect::to("/login"),
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    t: &'static Text,
    nav: Nav,
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
    fn none(w: &'static WorkText) -> Nav {
        Nav { admin: false, signed_in: false, active: "", who: String::new(), w }
    }

    pub(super) fn admin(active: &'static str, who: &str, w: &'static WorkText) -> Nav {
        Nav { admin: true, signed_in: true, active, who: who.to_string(), w }
    }

    pub(super) fn desk(active: &'static str, who: &str, w: &'static WorkText) -> Nav {
        Nav { admin: false, signed_in: true, active, who: who.to_string(), w }
    }
}

pub(super) fn work(headers: &HeaderMap) -> &'static WorkText {
    Lang::from_cookie_header(cookie_header(headers)).work()
}

/// `GET /login`.
pub async fn login(_: Public, headers: HeaderMap) -> Response {
    render(LoginPage { t: lang(&headers), nav: Nav::none(work(&headers)) })
}

/// `GET /lang/{code}`: remembers the language and goes back.
pub async fn switch_lang(_: Public, Path(code): Path<String>, headers: HeaderMap) -> Response {
    let code = if code == "en" { "en" } else { "zh" };
    // Only a local path is followed back, so the switch cannot redirect off the box.
    let back = headers
        .get(header::REFERER)
        .and_then(|value| value.to_str().ok())
        .and_then(|referer| referer.find("://").map(|idx| &referer[idx + 3..]))
        .and_then(|rest| rest.find('/').map(|idx| rest[idx..].to_string()))
        .filter(|path| path.starts_with('/') && !path.starts_with("//"))
        .unwrap_or_else(|| "/".to_string());
    let cookie = format!("lang={code}; Path=/; Max-Age=31536000; SameSite=Lax");
    ([(header::SET_COOKIE, cookie)], Redirect::to(&back)).into_response()
}

struct TaskRow {
    batch_id: u64,
    name: String,
    project: String,
    numbers: u64,
    dialed: u64,
    connected: u64,
    status_label: &'static str,
    can_start: bool,
    can_stop: bool,
    ratio: u32,
    max_concurrency: u32,
    ring_seconds: u32,
    problem: String,
    /// Abandon rate today and over 30 days, as "2.4 %" or "-" when nothing was answered.
    abandon_today: String,
    abandon_30_days: String,
}

fn percent(rate: Option<f64>) -> String {
    rate.map(|rate| format!("{:.1} %", rate * 100.0)).unwrap_or_else(|| "-".to_string())
}

#[derive(Template)]
#[template(path = "admin_tasks.html")]
struct TasksPage {
    t: &'static Text,
    nav: Nav,
    tasks: Vec<TaskRow>,
}

/// `GET /admin/tasks`: batches from HQ, start/stop with parameters.
pub async fn admin_tasks(AdminUser { user, .. }: AdminUser<need::Tasks>, State(state): State<AppState>, headers: HeaderMap) -> Response {
    let t = lang(&headers);
    let tasks = match state.store.tasks() {
        Ok(tasks) => tasks,
        Err(error) => return super::ApiError::from(error).into_response(),
    };
    let now = crate::store::now_unix();
    let tasks = tasks
        .into_iter()
        .map(|task| TaskRow {
            abandon_today: percent(state.store.abandon_rates(task.batch_id, now).ok().and_then(|rates| rates.today)),
            abandon_30_days: percent(
                state.store.abandon_rates(task.batch_id, now).ok().and_then(|rates| rates.last_30_days),
            ),
            batch_id: task.batch_id,
            name: task.name,
            project: task.project,
            numbers: task.numbers,
            dialed: task.dialed,
            connected: task.connected,
            status_label: match task.status {
                TaskStatus::Receiving => t.st_receiving,
                TaskStatus::NotStarted => t.st_not_started,
                TaskStatus::Running => t.st_running,
                TaskStatus::Paused => t.st_paused,
                TaskStatus::Ended => t.st_ended,
            },
            can_start: matches!(task.status, TaskStatus::NotStarted | TaskStatus::Running),
            can_stop: task.status == TaskStatus::Running,
            ratio: task.params.ratio,
            max_concurrency: task.params.max_concurrency,
            ring_seconds: task.params.ring_seconds,
            problem: task.problem.unwrap_or_default(),
        })
        .collect();
    render(TasksPage { t, nav: Nav::admin("tasks", &user.username, work(&headers)), tasks })
}

struct ExtensionRow {
    extension: String,
    registered: bool,
}

#[derive(Template)]
#[template(path = "admin_extensions.html")]
struct ExtensionsPage {
    t: &'static Text,
    nav: Nav,
    extensions: Vec<ExtensionRow>,
}

/// `GET /admin/extensions`.
pub async fn admin_extensions(
    AdminUser { user, .. }: AdminUser<need::Extensions>,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Response {
    let registered = state.driver.status().await.registered_extensions;
    let extensions = match state.store.extensions() {
        Ok(list) => list,
        Err(error) => return super::ApiError::from(error).into_response(),
    };
    let extensions = extensions
        .into_iter()
        .map(|ext| ExtensionRow { registered: registered.contains(&ext.extension), extension: ext.extension })
        .collect();
    render(ExtensionsPage { t: lang(&headers), nav: Nav::admin("extensions", &user.username, work(&headers)), extensions })
}

struct AgentRow {
    username: String,
    name: String,
    extension: String,
    state_label: &'static str,
}

#[derive(Template)]
#[template(path = "admin_agents.html")]
struct AgentsPage {
    t: &'static Text,
    nav: Nav,
    agents: Vec<AgentRow>,
    extensions: Vec<String>,
}

fn state_label(t: &'static Text, state: AgentState) -> &'static str {
    match state {
        AgentState::SignedOut => t.state_signed_out,
        AgentState::Available => t.state_available,
        AgentState::OneClickOnly => t.state_one_click,
        AgentState::Break => t.state_break,
        AgentState::Away => t.state_away,
    }
}

/// `GET /admin/agents`.
pub async fn admin_agents(AdminUser { user, .. }: AdminUser<need::Accounts>, State(state): State<AppState>, headers: HeaderMap) -> Response {
    let t = lang(&headers);
    let (users, extensions) = match (state.store.users(), state.store.extensions()) {
        (Ok(users), Ok(extensions)) => (users, extensions),
        (Err(error), _) | (_, Err(error)) => return super::ApiError::from(error).into_response(),
    };
    let agents = users
        .into_iter()
        .filter(|user| user.role == Role::Agent)
        .map(|agent| AgentRow {
            state_label: state_label(t, state.desk.state(agent.user_id)),
            username: agent.username,
            name: agent.name,
            extension: agent.extension.unwrap_or_default(),
        })
        .collect();
    let extensions = extensions.into_iter().map(|ext| ext.extension).collect();
    render(AgentsPage { t, nav: Nav::admin("agents", &user.username, work(&headers)), agents, extensions })
}

#[derive(Template)]
#[template(path = "admin_status.html")]
struct StatusPage {
    t: &'static Text,
    nav: Nav,
}

/// `GET /admin/status`: filled and refreshed by the page's script from `/api/status`.
pub async fn admin_status(AdminUser { user, .. }: AdminUser<need::Monitor>, headers: HeaderMap) -> Response {
    render(StatusPage { t: lang(&headers), nav: Nav::admin("status", &user.username, work(&headers)) })
}

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
        Err(error) => return super::ApiError::from(error).into_response(),
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
        projects,
        nav: Nav::desk("desk", &agent.user.username, work(&headers)),
        extension: agent.extension,
        current_state: current.as_str(),
        current_label: state_label(t, current),
        buttons,
    })
}

/// `GET /assets/app.css`.
pub async fn css(_: Public) -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], APP_CSS)
        .into_response()
}

/// `GET /assets/app.js`.
pub async fn js(_: Public) -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")],
        APP_JS,
    )
        .into_response()
}
