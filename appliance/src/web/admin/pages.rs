//! The site admin's server-rendered pages: the tasks and one task's parameters and agents,
//! extensions, agents, the status page, attribution, project data and roles. Each takes
//! [`AdminUser`] with the module it shows; every list comes from the store's masked views
//! for the session's own viewer, so a page can only show what its account may see.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::store::{
    Line, Module, ProjectTaskView, Role, SiteRule, TaskStatus,
    suggested_max_concurrency,
};
use crate::web::guard::need;
use crate::web::i18n::Text;
use crate::web::limits::ApiQuery;
use crate::web::page::{Choice, Nav, ProjectQuery, choices, fail, lang, module_word, render, state_label, work};
use crate::web::{AdminUser, ApiError, AppState};

/// One batch inside its project's task, in dial order.
struct BatchLine {
    batch_id: u64,
    name: String,
    priority: u8,
    numbers: u64,
    dialed: u64,
    connected: u64,
    status_label: &'static str,
    problem: String,
}

/// One project's task on 下发任务管理.
struct TaskRow {
    project_id: u64,
    project: String,
    priority: u32,
    priority_set: bool,
    numbers: u64,
    dialed: u64,
    connected: u64,
    status_label: &'static str,
    running: bool,
    can_start: bool,
    can_stop: bool,
    lead_batch: u64,
    ratio: u32,
    max_concurrency: u32,
    ring_seconds: u32,
    /// Abandon rate today and over 30 days, as "2.4 %" or "-" when nothing was answered.
    abandon_today: String,
    abandon_30_days: String,
    batches: Vec<BatchLine>,
}

fn percent(rate: Option<f64>) -> String {
    rate.map(|rate| format!("{:.1} %", rate * 100.0)).unwrap_or_else(|| "-".to_string())
}

fn status_word(t: &Text, status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Receiving => t.st_receiving,
        TaskStatus::NotStarted => t.st_not_started,
        TaskStatus::Running => t.st_running,
        TaskStatus::Paused => t.st_paused,
        TaskStatus::Ended => t.st_ended,
    }
}

fn batch_lines(t: &Text, task: &ProjectTaskView) -> Vec<BatchLine> {
    task.batches
        .iter()
        .map(|batch| BatchLine {
            batch_id: batch.batch_id,
            name: batch.name.clone(),
            priority: batch.priority,
            numbers: batch.numbers,
            dialed: batch.dialed,
            connected: batch.connected,
            status_label: status_word(t, batch.status),
            problem: batch.problem.clone().unwrap_or_default(),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "admin_tasks.html")]
struct TasksPage {
    t: &'static Text,
    nav: Nav,
    tasks: Vec<TaskRow>,
}

/// `GET /admin/tasks` (下发任务管理): one task per project, its batches inside in dial order.
pub async fn admin_tasks(AdminUser { user, .. }: AdminUser<need::Tasks>, State(state): State<AppState>, headers: HeaderMap) -> Response {
    let t = lang(&headers);
    let tasks = match state.store.project_task_list() {
        Ok(tasks) => tasks,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let now = crate::store::now_unix();
    let tasks = tasks
        .into_iter()
        .filter_map(|task| {
            let lead_batch = task.lead_batch()?;
            let rates = state.store.task_abandon_rates(task.project_id, now).ok();
            Some(TaskRow {
                abandon_today: percent(rates.and_then(|rates| rates.today)),
                abandon_30_days: percent(rates.and_then(|rates| rates.last_30_days)),
                project_id: task.project_id,
                project: task.project.clone(),
                priority: task.priority,
                priority_set: task.priority_set,
                numbers: task.numbers(),
                dialed: task.dialed(),
                connected: task.connected(),
                status_label: status_word(t, task.status),
                running: task.status == TaskStatus::Running,
                can_start: task.status == TaskStatus::NotStarted,
                can_stop: task.status == TaskStatus::Running,
                lead_batch,
                ratio: task.batches[0].params.ratio,
                max_concurrency: task.batches[0].params.max_concurrency,
                ring_seconds: task.batches[0].params.ring_seconds,
                batches: batch_lines(t, &task),
            })
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
        Err(error) => return ApiError::from(error).into_response(),
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

/// `GET /admin/agents`.
pub async fn admin_agents(AdminUser { user, .. }: AdminUser<need::Accounts>, State(state): State<AppState>, headers: HeaderMap) -> Response {
    let t = lang(&headers);
    let (users, extensions) = match (state.store.users(), state.store.extensions()) {
        (Ok(users), Ok(extensions)) => (users, extensions),
        (Err(error), _) | (_, Err(error)) => return ApiError::from(error).into_response(),
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
    /// How long recordings are kept, in words.
    retention: String,
}

/// `GET /admin/status`: filled and refreshed by the page's script from `/api/status`.
pub async fn admin_status(
    AdminUser { user, .. }: AdminUser<need::Monitor>,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Response {
    let w = work(&headers);
    let retention = match state.store.recording_retention_days() {
        Ok(Some(days)) => w.retention_days.replace("{days}", &days.to_string()),
        Ok(None) => w.retention_forever.to_string(),
        Err(error) => return fail(ApiError::from(error)),
    };
    render(StatusPage { t: lang(&headers), nav: Nav::admin("status", &user.username, w), retention })
}

/// `GET /admin/status/panel.png`: the front panel as it is drawn now (refreshed each second).
pub async fn admin_panel_png(_: AdminUser<need::Monitor>, State(state): State<AppState>) -> Response {
    let png = state.panel.png();
    if png.is_empty() {
        return ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "the front panel is not drawn yet; reload in a second")
            .into_response();
    }
    ([(axum::http::header::CONTENT_TYPE, "image/png"), (axum::http::header::CACHE_CONTROL, "no-store")], png).into_response()
}

// ---- admin: one task's parameters and agents ----

struct AgentTick {
    agent_id: u64,
    label: String,
    ticked: bool,
}

#[derive(Template)]
#[template(path = "admin_task.html")]
struct TaskPage {
    t: &'static Text,
    nav: Nav,
    /// The batch the task's forms act through (any batch acts on its project's task).
    batch_id: u64,
    project: String,
    status: &'static str,
    running: bool,
    priority: String,
    priority_auto: u32,
    batches: Vec<BatchLine>,
    agents: Vec<AgentTick>,
    modes: Vec<Choice>,
    mode_bound: bool,
    callers: Vec<Choice>,
    ratio: u32,
    ratio_bound: bool,
    max_concurrency: u32,
    max_bound: bool,
    ring_seconds: u32,
    ring_bound: bool,
    cool_down: u32,
    queue_timeout: u32,
    routings: Vec<Choice>,
    answers: Vec<Choice>,
    pacings: Vec<Choice>,
    abandon_cap: f64,
    hold_musics: Vec<Choice>,
    caller_lines: String,
    suggested: String,
    max_limit: u32,
}

/// `GET /admin/tasks/{batch_id}`: a batch has no task page of its own; it goes to its
/// project's task.
pub async fn admin_task(
    _: AdminUser<need::Tasks>,
    State(state): State<AppState>,
    Path(batch_id): Path<u64>,
) -> Response {
    match state.store.project_task_of_batch(batch_id) {
        Ok(Some(task)) => axum::response::Redirect::to(&format!("/admin/project-tasks/{}", task.project_id)).into_response(),
        Ok(None) => fail(ApiError::new(axum::http::StatusCode::NOT_FOUND, format!("batch {batch_id} is unknown at this site"))),
        Err(error) => fail(error.into()),
    }
}

/// `GET /admin/project-tasks/{project_id}` (下发任务管理, one task): the project's task
/// agents (S1), parameters (S2), start (S5), its priority between tasks, and its batches in
/// dial order.
pub async fn admin_project_task(
    AdminUser { user, .. }: AdminUser<need::Tasks>,
    State(state): State<AppState>,
    Path(project_id): Path<u64>,
    headers: HeaderMap,
) -> Response {
    let (t, w) = (lang(&headers), work(&headers));
    let page = (|| -> Result<TaskPage, ApiError> {
        let unknown = || ApiError::new(axum::http::StatusCode::NOT_FOUND, format!("project {project_id} has no task at this site"));
        let view = state.store.project_task_list()?.into_iter().find(|task| task.project_id == project_id).ok_or_else(unknown)?;
        let task = view.batches.first().cloned().ok_or_else(unknown)?;
        let batch_id = task.batch_id;
        let settings = state.store.task_settings(batch_id)?.ok_or_else(unknown)?;
        let users = state.store.users()?;
        let agents: Vec<AgentTick> = users
            .iter()
            .filter(|user| user.role == Role::Agent)
            .map(|user| AgentTick {
                agent_id: user.user_id,
                label: format!("{} ({})", user.name, user.extension.clone().unwrap_or_default()),
                ticked: settings.agents.contains(&user.user_id),
            })
            .collect();
        let n_agents = if settings.agents.is_empty() { agents.len() } else { settings.agents.len() } as u32;
        let lines: Vec<Line> = state.store.lines();
        let mut callers = vec![Choice { value: String::new(), label: w.any_line.to_string(), selected: settings.extras.caller.is_empty() }];
        callers.extend(lines.iter().map(|line| Choice {
            value: line.name.clone(),
            label: format!("{} ({} {})", line.name, line.channels, w.lines),
            selected: line.name == settings.extras.caller,
        }));
        let caller_lines = state.store.caller_channels(&settings.extras.caller);
        let mut hold_musics =
            vec![Choice { value: String::new(), label: w.hold_music_none.to_string(), selected: settings.extras.hold_music.is_none() }];
        hold_musics.extend(state.store.voice_files()?.into_iter().filter(|voice| voice.kind == "hold_music").map(|voice| Choice {
            value: voice.voice_id.to_string(),
            label: if voice.held { voice.name.clone() } else { format!("{} ({})", voice.name, w.hold_music_pending) },
            selected: settings.extras.hold_music == Some(voice.voice_id),
        }));
        Ok(TaskPage {
            t,
            nav: Nav::admin("tasks", &user.username, w),
            batch_id,
            project: view.project.clone(),
            status: status_word(t, view.status),
            running: view.status == TaskStatus::Running,
            priority: if view.priority_set { view.priority.to_string() } else { String::new() },
            priority_auto: view.priority,
            batches: batch_lines(t, &view),
            agents,
            modes: choices(
                &[("predictive", w.mode_predictive), ("one_click", w.mode_one_click)],
                settings.extras.dial_mode.as_str(),
            ),
            mode_bound: settings.bound.dial_mode,
            callers,
            ratio: task.params.ratio,
            ratio_bound: settings.bound.ratio,
            max_concurrency: task.params.max_concurrency,
            max_bound: settings.bound.max_concurrency,
            ring_seconds: task.params.ring_seconds,
            ring_bound: settings.bound.ring_seconds,
            cool_down: settings.extras.cool_down,
            queue_timeout: settings.extras.queue_timeout,
            routings: choices(&[("longest_idle", w.routing_longest_idle)], &settings.extras.routing),
            answers: choices(&[("auto", w.answer_auto), ("ring", w.answer_ring)], &settings.extras.answer_mode),
            pacings: choices(
                &[("fixed", w.pacing_fixed), ("progressive", w.pacing_progressive), ("adaptive", w.pacing_adaptive)],
                &settings.extras.pacing,
            ),
            abandon_cap: settings.extras.abandon_cap_percent,
            hold_musics,
            caller_lines: caller_lines.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
            // A max concurrency HQ locked is the only value there is to suggest, and the
            // field must accept it even above the caller's lines (HQ answers for it).
            suggested: if settings.bound.max_concurrency {
                task.params.max_concurrency.to_string()
            } else {
                caller_lines
                    .map(|lines| suggested_max_concurrency(lines, n_agents, task.params.ratio).to_string())
                    .unwrap_or_else(|| "-".into())
            },
            max_limit: if settings.bound.max_concurrency {
                task.params.max_concurrency.max(caller_lines.unwrap_or(1000))
            } else {
                caller_lines.unwrap_or(1000)
            },
        })
    })();
    match page {
        Ok(page) => render(page),
        Err(error) => fail(error),
    }
}

// ---- admin: attribution ----

struct RuleRow {
    text: String,
    agent: String,
}

struct BatchRow {
    batch_id: u64,
    name: String,
}

#[derive(Template)]
#[template(path = "admin_attribution.html")]
struct AttributionPage {
    t: &'static Text,
    nav: Nav,
    projects: Vec<Choice>,
    project_id: u64,
    rules_json: String,
    rules: Vec<RuleRow>,
    fields: Vec<Choice>,
    agents: Vec<Choice>,
    batches: Vec<BatchRow>,
}

pub(super) fn project_choices(state: &AppState, current: Option<u64>) -> Result<(Vec<Choice>, Option<u64>), ApiError> {
    let projects = state.store.projects()?;
    let chosen = current.or_else(|| projects.first().map(|(id, _)| *id));
    Ok((
        projects
            .into_iter()
            .map(|(id, name)| Choice { value: id.to_string(), label: format!("{id} · {name}"), selected: Some(id) == chosen })
            .collect(),
        chosen,
    ))
}

/// `GET /admin/attribution?project_id`: the site's rules (S3) and allocation (S4).
pub async fn admin_attribution(
    AdminUser { user, .. }: AdminUser<need::Attribution>,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ProjectQuery>,
    headers: HeaderMap,
) -> Response {
    let (t, w) = (lang(&headers), work(&headers));
    let page = (|| -> Result<AttributionPage, ApiError> {
        let (projects, chosen) = project_choices(&state, query.project_id)?;
        let project_id = chosen.unwrap_or_default();
        let rules: Vec<SiteRule> = state.store.site_rules(project_id)?;
        let def = state.store.project(project_id)?;
        // Fields by their titles on the page, never their variables.
        let mut fields = vec![Choice { value: "phone".into(), label: t.phone.into(), selected: false }];
        if let Some(def) = &def {
            fields.extend(def.customer_fields.iter().filter(|f| !f.hidden).map(|f| Choice {
                value: f.key.clone(),
                label: f.title.clone(),
                selected: false,
            }));
        }
        let agents = state
            .store
            .users()?
            .into_iter()
            .filter(|u| u.role == Role::Agent)
            .map(|u| Choice { label: format!("{} ({})", u.username, u.extension.clone().unwrap_or_default()), value: u.username, selected: false })
            .collect();
        let batches = state
            .store
            .tasks()?
            .into_iter()
            .filter(|task| state.store.task_settings(task.batch_id).ok().flatten().and_then(|s| s.project_id) == Some(project_id))
            .map(|task| BatchRow { batch_id: task.batch_id, name: task.name })
            .collect();
        Ok(AttributionPage {
            t,
            nav: Nav::admin("attribution", &user.username, w),
            projects,
            project_id,
            rules_json: serde_json::to_string(&rules).unwrap_or_else(|_| "[]".into()),
            rules: rules
                .iter()
                .map(|rule| RuleRow {
                    text: rule
                        .conditions
                        .iter()
                        .map(|(field, values)| {
                            let title = fields.iter().find(|c| c.value == *field).map_or(field.as_str(), |c| c.label.as_str());
                            format!("{title} = {}", values.join(" / "))
                        })
                        .collect::<Vec<_>>()
                        .join(if rule.all_match { " 且 " } else { " 或 " }),
                    agent: rule.agent.clone(),
                })
                .collect(),
            fields,
            agents,
            batches,
        })
    })();
    match page {
        Ok(page) => render(page),
        Err(error) => fail(error),
    }
}

// ---- admin: roles ----

struct AccountRow {
    user_id: u64,
    username: String,
    kind: &'static str,
    roles: Vec<Choice>,
    disabled: bool,
}

struct ModuleTick {
    name: &'static str,
    label: &'static str,
}

/// A role with its modules in words, and their keys for the role editor's ticks.
struct RoleView {
    role_id: u64,
    name: String,
    modules: String,
    keys: Vec<&'static str>,
}

impl ModuleTick {
    /// Whether `role` has this module (the role editor's ticks).
    fn in_role(&self, role: &RoleView) -> bool {
        role.keys.contains(&self.name)
    }
}

#[derive(Template)]
#[template(path = "admin_roles.html")]
struct RolesPage {
    t: &'static Text,
    nav: Nav,
    roles: Vec<RoleView>,
    modules: Vec<ModuleTick>,
    accounts: Vec<AccountRow>,
    role_choices: Vec<Choice>,
    e: &'static super::account_edits::EditWords,
}

/// `GET /admin/roles` (S11): roles, staff accounts, applying roles to accounts.
pub async fn admin_roles(AdminUser { user, .. }: AdminUser<need::Accounts>, State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (t, w) = (lang(&headers), work(&headers));
    let page = (|| -> Result<RolesPage, ApiError> {
        let roles = state.store.roles()?;
        let mut accounts = Vec::new();
        for account in state.store.users()? {
            if account.user_id == user.user_id {
                continue;
            }
            let current = state.store.role_of(account.user_id)?;
            let mut list = vec![Choice { value: String::new(), label: w.default_role.to_string(), selected: current.is_none() }];
            list.extend(roles.iter().map(|role| Choice {
                value: role.role_id.to_string(),
                label: role.name.clone(),
                selected: current == Some(role.role_id),
            }));
            accounts.push(AccountRow {
                disabled: state.store.user_disabled(account.user_id)?.unwrap_or(false),
                user_id: account.user_id,
                username: account.username,
                kind: if account.role == Role::Admin { w.kind_admin } else { w.kind_agent },
                roles: list,
            });
        }
        let mut role_choices = vec![Choice { value: String::new(), label: w.default_role.to_string(), selected: true }];
        role_choices.extend(roles.iter().map(|r| Choice { value: r.role_id.to_string(), label: r.name.clone(), selected: false }));
        let roles = roles
            .into_iter()
            .map(|role| RoleView {
                role_id: role.role_id,
                modules: role.modules.iter().map(|m| module_word(*m, t)).collect::<Vec<_>>().join("、"),
                keys: role.modules.iter().map(|m| m.as_str()).collect(),
                name: role.name,
            })
            .collect();
        Ok(RolesPage {
            t,
            nav: Nav::admin("roles", &user.username, w),
            roles,
            modules: Module::ADMIN.iter().chain(Module::AGENT.iter()).map(|m| ModuleTick { name: m.as_str(), label: module_word(*m, t) }).collect(),
            accounts,
            role_choices,
            e: super::account_edits::words(&headers),
        })
    })();
    match page {
        Ok(page) => render(page),
        Err(error) => fail(error),
    }
}
