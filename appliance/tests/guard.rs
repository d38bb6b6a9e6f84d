//! The web server's guard, sessions, limits and API document, over real HTTP against a
//! running appliance on a real SQLite store:
//!
//! - every route of the router's registry (not a hand-kept list) is called with no session,
//!   as an agent, as an account of the right kind whose role lacks the route's modules, and
//!   as the site admin; each answer must match the rule this test expects for the route,
//!   and a route the test has no rule for fails it;
//! - every state-changing route of the registry, sent from another site's page (`Origin:
//!   http://evil.example`) or from no page (`Origin: null`) with the session of an account
//!   allowed to call it, is refused and changes nothing in the site's database;
//! - no JSON answer an agent can get holds a number the project masks;
//! - sessions survive a restart over the same data directory and end when idle;
//! - over-long text is refused naming the field and the limit, in Chinese or English;
//! - the OpenAPI document lists every `/api` route, and malformed bodies get the JSON error;
//! - every JSON answer of a `GET /api` route (from the registry) matches the schema the
//!   document gives it, field for field, and no answer is documented as a generic object;
//! - an agent's open desk stream keeps their session alive, and ends with the session.

mod common;
mod schema;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use appliance::store::{AttemptEnd, Module, Role};
use appliance::web::guard::Access;
use appliance::web::routes::route_table;
use appliance::{Appliance, ApplianceConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sync_link::SiteStore;
use sync_protocol::Outcome;
use tokio_util::sync::CancellationToken;

use common::*;

const FULL_PHONE: &str = "13800137700";
const MASKED_PHONE: &str = "138****7700";

struct Site {
    url: String,
    appliance: Appliance,
    shutdown: CancellationToken,
    admin_password: String,
    dir: tempfile::TempDir,
    /// Stops the appliance when the site goes out of scope.
    _stop: tokio_util::sync::DropGuard,
}

fn config(dir: &Path) -> ApplianceConfig {
    ApplianceConfig { trunks: Vec::new(), ..ApplianceConfig::on_loopback(dir, "127.0.0.1:9".parse().expect("addr"), 1) }
}

async fn start(dir: tempfile::TempDir, admin_password: String) -> anyhow::Result<Site> {
    let shutdown = CancellationToken::new();
    let appliance = appliance::start(config(dir.path()), shutdown.clone()).await?;
    let url = format!("http://{}", appliance.http_addr);
    Ok(Site { url, appliance, _stop: shutdown.clone().drop_guard(), shutdown, admin_password, dir })
}

fn client() -> reqwest::Client {
    // No cookie store: each request carries the session the test gives it.
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// A fresh session of `username`, as the cookie header value.
fn session(site: &Site, username: &str) -> anyhow::Result<String> {
    let user = site.appliance.store.users()?.into_iter().find(|u| u.username == username).context(username.to_string())?;
    Ok(format!("sid={}", site.appliance.store.open_session(user.user_id, appliance::store::now_unix())?))
}

async fn call(site: &Site, method: &str, path: &str, cookie: Option<&str>, body: Option<&Value>) -> anyhow::Result<(StatusCode, String)> {
    call_from(site, method, path, cookie, body, None).await
}

/// [`call`] as a browser sends it from the page of `origin` (`Origin` header).
async fn call_from(
    site: &Site,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: Option<&Value>,
    origin: Option<&str>,
) -> anyhow::Result<(StatusCode, String)> {
    let url = format!("{}{path}", site.url);
    let mut request = match method {
        "GET" => client().get(&url),
        "POST" => client().post(&url),
        other => bail!("method {other}"),
    };
    if let Some(cookie) = cookie {
        request = request.header("Cookie", cookie);
    }
    if let Some(origin) = origin {
        request = request.header("Origin", origin);
    }
    if method == "POST" {
        request = request.json(body.unwrap_or(&json!({})));
    }
    let response = request.send().await.with_context(|| format!("{method} {path}"))?;
    let status = response.status();
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let is_stream = response.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    // An event stream never ends: its status is all this test needs.
    let text = if is_stream { String::new() } else { response.text().await.unwrap_or_default() };
    Ok((status, if location.is_empty() { text } else { format!("location: {location}") }))
}

async fn post_ok(site: &Site, cookie: &str, path: &str, body: Value) -> anyhow::Result<Value> {
    let (status, text) = call(site, "POST", path, Some(cookie), Some(&body)).await?;
    ensure!(status.is_success(), "POST {path}: {status} {text}");
    Ok(serde_json::from_str(&text)?)
}

/// A site with its admin, agents agent1 (who took a recorded call of 13800137700) and
/// agent2, a staff account and an agent whose roles hold no module.
async fn staffed_site() -> anyhow::Result<(Site, u64)> {
    let dir = tempfile::tempdir()?;
    let admin_password = appliance::init_admin(dir.path(), "siteadmin")?;
    let site = start(dir, admin_password).await?;
    for entry in entries(1, batch_events(77, &rows(77, 1), 10, 50, 1)) {
        site.appliance.store.apply_down(&entry)?;
    }
    let admin = session(&site, "siteadmin")?;
    for (extension, username) in [("1001", "agent1"), ("1002", "agent2"), ("1003", "bareagent")] {
        post_ok(&site, &admin, "/api/extensions", json!({"extension": extension, "password": "secret-pass"})).await?;
        post_ok(&site, &admin, "/api/agents", json!({"username": username, "password": "agent-pass", "extension": extension})).await?;
    }
    let empty = post_ok(&site, &admin, "/api/roles", json!({"name": "无权限", "modules": []})).await?;
    post_ok(&site, &admin, "/api/staff", json!({"username": "barestaff", "password": "staff-pass", "role_id": empty["role_id"]})).await?;
    let bare_agent = site.appliance.store.users()?.into_iter().find(|u| u.username == "bareagent").context("bareagent")?;
    post_ok(&site, &admin, &format!("/api/accounts/{}/role", bare_agent.user_id), json!({"role_id": empty["role_id"]})).await?;
    post_ok(&site, &admin, "/api/tasks/77/start", json!({"ratio": 1, "max_concurrency": 1})).await?;

    let store = &site.appliance.store;
    let claimed = store.claim_next_number(77)?.context("a number")?;
    store.mark_answered(claimed.attempt_id, 100)?;
    store.mark_bridged(claimed.attempt_id, "agent1")?;
    let wav = site.dir.path().join("recordings").join("call.wav");
    std::fs::create_dir_all(wav.parent().context("parent")?)?;
    std::fs::write(&wav, vec![7u8; 2000])?;
    store.finish_attempt(
        claimed.attempt_id,
        &AttemptEnd {
            outcome: Outcome::Connected,
            hangup_side: None,
            ended_at: 160,
            recording_path: Some(wav),
            recording_sha256: Some("ab".repeat(32)),
        },
    )?;
    let agent = session(&site, "agent1")?;
    let attempt = claimed.attempt_id;
    post_ok(&site, &agent, &format!("/api/attempts/{attempt}/record"), json!({"values": {"result": "成功"}})).await?;
    post_ok(&site, &agent, &format!("/api/attempts/{attempt}/callbacks"), json!({"title": "回访", "due_at": 4_000_000_000i64})).await?;
    Ok((site, attempt))
}

/// Who may call each route, as this test expects it, with a request that exercises it.
struct Expect {
    access: Access,
    path: String,
    body: Option<Value>,
}

fn expectations(attempt: u64, callback: u64, unique: &str) -> BTreeMap<(&'static str, &'static str), Expect> {
    use Access::*;
    const TASKS: &[Module] = &[Module::Tasks];
    const EXTENSIONS: &[Module] = &[Module::Extensions];
    const ACCOUNTS: &[Module] = &[Module::Accounts];
    const ATTRIBUTION: &[Module] = &[Module::Attribution];
    const DATA: &[Module] = &[Module::Data];
    const EXPORT: &[Module] = &[Module::Data, Module::Export];
    const MONITOR: &[Module] = &[Module::Monitor];
    const RECORDS: &[Module] = &[Module::Records];
    const CUSTOMERS: &[Module] = &[Module::Customers];
    const CALLBACKS: &[Module] = &[Module::Callbacks];
    let rows: Vec<(&'static str, &'static str, Access, String, Option<Value>)> = vec![
        ("GET", "/", Public, "/".into(), None),
        ("GET", "/login", Public, "/login".into(), None),
        ("GET", "/lang/{code}", Public, "/lang/en".into(), None),
        ("GET", "/assets/app.css", Public, "/assets/app.css".into(), None),
        ("GET", "/assets/app.js", Public, "/assets/app.js".into(), None),
        ("GET", "/assets/ui.css", Public, "/assets/ui.css".into(), None),
        ("GET", "/assets/ui.js", Public, "/assets/ui.js".into(), None),
        ("GET", "/assets/echarts.min.js", Public, "/assets/echarts.min.js".into(), None),
        ("GET", "/assets/reports.js", Public, "/assets/reports.js".into(), None),
        ("GET", "/api/openapi.json", Public, "/api/openapi.json".into(), None),
        ("GET", "/healthz", Public, "/healthz".into(), None),
        ("GET", "/readyz", Public, "/readyz".into(), None),
        ("GET", "/metrics", Public, "/metrics".into(), None),
        ("POST", "/api/login", Public, "/api/login".into(), Some(json!({"username": "nobody", "password": "x"}))),
        ("POST", "/api/logout", SignedIn, "/api/logout".into(), None),
        ("GET", "/api/status", SignedIn, "/api/status".into(), None),
        ("GET", "/api/announcements", SignedIn, "/api/announcements".into(), None),
        ("GET", "/admin/tasks", Admin(TASKS), "/admin/tasks".into(), None),
        ("GET", "/admin/tasks/{batch_id}", Admin(TASKS), "/admin/tasks/77".into(), None),
        ("GET", "/admin/project-tasks/{project_id}", Admin(TASKS), "/admin/project-tasks/7".into(), None),
        ("GET", "/api/tasks", Admin(TASKS), "/api/tasks".into(), None),
        ("GET", "/api/tasks/{batch_id}", Admin(TASKS), "/api/tasks/77".into(), None),
        ("POST", "/api/tasks/{batch_id}/start", Admin(TASKS), "/api/tasks/77/start".into(), Some(json!({"ratio": 1, "max_concurrency": 1}))),
        ("POST", "/api/tasks/{batch_id}/stop", Admin(TASKS), "/api/tasks/77/stop".into(), None),
        ("POST", "/api/tasks/{batch_id}/settings", Admin(TASKS), "/api/tasks/77/settings".into(), Some(json!({"dial_mode": "predictive"}))),
        ("POST", "/api/tasks/{batch_id}/agents", Admin(TASKS), "/api/tasks/77/agents".into(), Some(json!({"agents": []}))),
        ("POST", "/api/tasks/{batch_id}/priority", Admin(TASKS), "/api/tasks/77/priority".into(), Some(json!({"priority": 5}))),
        ("GET", "/api/lines", Admin(TASKS), "/api/lines".into(), None),
        ("GET", "/api/voice-files", Admin(TASKS), "/api/voice-files".into(), None),
        ("GET", "/admin/extensions", Admin(EXTENSIONS), "/admin/extensions".into(), None),
        ("GET", "/api/extensions", Admin(EXTENSIONS), "/api/extensions".into(), None),
        ("POST", "/api/extensions", Admin(EXTENSIONS), "/api/extensions".into(), Some(json!({"extension": "1009", "password": "secret-pass"}))),
        ("GET", "/admin/agents", Admin(ACCOUNTS), "/admin/agents".into(), None),
        ("GET", "/api/agents", Admin(ACCOUNTS), "/api/agents".into(), None),
        ("POST", "/api/agents", Admin(ACCOUNTS), "/api/agents".into(), Some(json!({"username": format!("a{unique}"), "password": "agent-pass", "extension": "1001"}))),
        ("GET", "/admin/roles", Admin(ACCOUNTS), "/admin/roles".into(), None),
        ("GET", "/api/roles", Admin(ACCOUNTS), "/api/roles".into(), None),
        ("POST", "/api/roles", Admin(ACCOUNTS), "/api/roles".into(), Some(json!({"name": format!("r{unique}"), "modules": ["data"]}))),
        ("POST", "/api/accounts/{user_id}/role", Admin(ACCOUNTS), "/api/accounts/2/role".into(), Some(json!({"role_id": null}))),
        ("POST", "/api/roles/{role_id}", Admin(ACCOUNTS), "/api/roles/999".into(), Some(json!({"name": "不存在", "modules": []}))),
        ("POST", "/api/accounts/{user_id}/disabled", Admin(ACCOUNTS), "/api/accounts/999/disabled".into(), Some(json!({"disabled": true}))),
        ("POST", "/api/accounts/{user_id}/password", Admin(ACCOUNTS), "/api/accounts/999/password".into(), None),
        ("POST", "/api/staff", Admin(ACCOUNTS), "/api/staff".into(), Some(json!({"username": format!("s{unique}"), "password": "staff-pass", "role_id": null}))),
        ("GET", "/admin/attribution", Admin(ATTRIBUTION), "/admin/attribution".into(), None),
        ("GET", "/api/projects/{project_id}/rules", Admin(ATTRIBUTION), "/api/projects/7/rules".into(), None),
        ("POST", "/api/projects/{project_id}/rules", Admin(ATTRIBUTION), "/api/projects/7/rules".into(), Some(json!({"rules": []}))),
        ("POST", "/api/tasks/{batch_id}/allocate", Admin(ATTRIBUTION), "/api/tasks/77/allocate".into(), None),
        ("GET", "/admin/data", Admin(DATA), "/admin/data?tab=business".into(), None),
        ("GET", "/api/data/customers", Admin(DATA), "/api/data/customers".into(), None),
        ("GET", "/api/data/records", Admin(DATA), "/api/data/records".into(), None),
        ("GET", "/api/data/callbacks", Admin(DATA), "/api/data/callbacks".into(), None),
        ("POST", "/api/data/callbacks", Admin(DATA), "/api/data/callbacks".into(), Some(json!({"batch_id": 77, "row_id": 77000, "agent": "agent1", "title": "t", "due_at": 4_000_000_000i64}))),
        ("GET", "/api/data/records.xlsx", Admin(EXPORT), "/api/data/records.xlsx".into(), None),
        ("GET", "/api/data/recordings.zip", Admin(EXPORT), "/api/data/recordings.zip".into(), None),
        ("GET", "/admin/reports", Admin(DATA), "/admin/reports?time=last7".into(), None),
        ("GET", "/admin/reports/batches", Admin(DATA), "/admin/reports/batches".into(), None),
        ("GET", "/admin/reports/tasks", Admin(DATA), "/admin/reports/tasks".into(), None),
        ("GET", "/admin/reports/hq", Admin(DATA), "/admin/reports/hq".into(), None),
        ("GET", "/admin/reports/agents", Admin(DATA), "/admin/reports/agents".into(), None),
        ("GET", "/admin/reports/agents.xlsx", Admin(EXPORT), "/admin/reports/agents.xlsx".into(), None),
        ("GET", "/admin/status", Admin(MONITOR), "/admin/status".into(), None),
        ("GET", "/admin/status/panel.png", Admin(MONITOR), "/admin/status/panel.png".into(), None),
        ("GET", "/api/monitor/events", Admin(MONITOR), "/api/monitor/events".into(), None),
        ("GET", "/desk", Agent(&[]), "/desk".into(), None),
        ("GET", "/desk/settings", Agent(&[]), "/desk/settings".into(), None),
        ("GET", "/desk/numbers", Agent(&[]), "/desk/numbers".into(), None),
        ("POST", "/api/agent/state", Agent(&[]), "/api/agent/state".into(), Some(json!({"state": "break"}))),
        ("GET", "/api/agent/events", Agent(&[]), "/api/agent/events".into(), None),
        ("POST", "/api/attempts/{attempt_id}/record", Agent(&[]), format!("/api/attempts/{attempt}/record"), Some(json!({"values": {"result": "成功"}}))),
        ("GET", "/api/agent/settings", Agent(&[]), "/api/agent/settings".into(), None),
        ("POST", "/api/agent/settings", Agent(&[]), "/api/agent/settings".into(), Some(json!({"caller": "", "popup_timing": "answer", "popup_page": "default"}))),
        ("GET", "/api/agent/projects", Agent(&[]), "/api/agent/projects".into(), None),
        ("POST", "/api/agent/projects/{project_id}/dial", Agent(&[]), "/api/agent/projects/7/dial".into(), None),
        ("GET", "/api/agent/numbers", Agent(&[]), "/api/agent/numbers".into(), None),
        ("POST", "/api/attempts/{attempt_id}/call-back-now", Agent(&[]), format!("/api/attempts/{attempt}/call-back-now"), None),
        ("GET", "/desk/records", Agent(RECORDS), "/desk/records".into(), None),
        ("GET", "/api/agent/records", Agent(RECORDS), "/api/agent/records".into(), None),
        ("GET", "/desk/customers", Agent(CUSTOMERS), "/desk/customers".into(), None),
        ("GET", "/api/agent/customers", Agent(CUSTOMERS), "/api/agent/customers".into(), None),
        ("POST", "/api/customers/{batch_id}/{row_id}", Agent(CUSTOMERS), "/api/customers/77/77000".into(), Some(json!({"values": {"name": "王先生"}}))),
        ("GET", "/desk/callbacks", Agent(CALLBACKS), "/desk/callbacks".into(), None),
        ("GET", "/api/agent/callbacks", Agent(CALLBACKS), "/api/agent/callbacks".into(), None),
        ("POST", "/api/attempts/{attempt_id}/callbacks", Agent(CALLBACKS), format!("/api/attempts/{attempt}/callbacks"), Some(json!({"title": "再联系", "due_at": 4_000_000_000i64}))),
        ("POST", "/api/callbacks/{callback_id}/arm", Agent(CALLBACKS), format!("/api/callbacks/{callback}/arm"), None),
        ("POST", "/api/callbacks/{callback_id}/dial", Agent(CALLBACKS), format!("/api/callbacks/{callback}/dial"), None),
        ("GET", "/assets/desk.js", Public, "/assets/desk.js".into(), None),
        ("GET", "/assets/desk.css", Public, "/assets/desk.css".into(), None),
        ("POST", "/api/agent/dial", Agent(&[]), "/api/agent/dial".into(), Some(json!({"phone": "13900000000"}))),
        ("POST", "/api/callbacks/{callback_id}/edit", Agent(CALLBACKS), format!("/api/callbacks/{callback}/edit"), Some(json!({"title": "改时间", "due_at": 4_000_000_000i64, "scope": "task"}))),
        ("GET", "/admin/callback-settings", Admin(TASKS), "/admin/callback-settings".into(), None),
        ("GET", "/api/desk/callback-grace", Admin(TASKS), "/api/desk/callback-grace".into(), None),
        ("POST", "/api/desk/callback-grace", Admin(TASKS), "/api/desk/callback-grace".into(), Some(json!({"minutes": 5}))),
        ("GET", "/api/desk/default-form", Admin(TASKS), "/api/desk/default-form".into(), None),
        ("POST", "/api/desk/default-form", Admin(TASKS), "/api/desk/default-form".into(), Some(json!({"record_fields": [{"label": "备注", "kind": "text"}]}))),
        ("GET", "/api/attempts/{attempt_id}/recording", AgentOrAdmin { agent: RECORDS, admin: DATA }, format!("/api/attempts/{attempt}/recording"), None),
    ];
    rows.into_iter().map(|(method, route, access, path, body)| ((method, route), Expect { access, path, body })).collect()
}

/// Who calls: a label, the username (none: no session), its kind and its modules.
type Caller<'a> = (&'a str, Option<&'a str>, Option<Role>, &'a [Module]);

/// This test's own reading of a rule: may an account of `role` with `modules` call?
fn expected_allowed(access: Access, role: Option<Role>, modules: &[Module]) -> bool {
    let holds = |needed: &[Module]| needed.iter().all(|m| modules.contains(m));
    match (access, role) {
        (Access::Public, _) => true,
        (_, None) => false,
        (Access::SignedIn, _) => true,
        (Access::Admin(needed), Some(Role::Admin)) => holds(needed),
        (Access::Agent(needed), Some(Role::Agent)) => holds(needed),
        (Access::AgentOrAdmin { agent, .. }, Some(Role::Agent)) => holds(agent),
        (Access::AgentOrAdmin { admin, .. }, Some(Role::Admin)) => holds(admin),
        _ => false,
    }
}

/// Whether an answer is the guard's refusal (not a handler's own 401, 403 or 404).
fn refused(path: &str, status: StatusCode, body: &str) -> bool {
    let api = path.starts_with("/api/");
    match status {
        StatusCode::UNAUTHORIZED => api && body.contains("未登录"),
        // `/` sends everyone where they belong, the login page for no session.
        StatusCode::SEE_OTHER => !api && path != "/" && body.contains("location: /login"),
        StatusCode::FORBIDDEN => body.contains("权限模块") || body.contains("此功能需要"),
        _ => false,
    }
}

#[tokio::test]
async fn every_route_admits_exactly_whom_its_rule_names() -> anyhow::Result<()> {
    let (site, attempt) = staffed_site().await?;
    let store = &site.appliance.store;
    let callback = store.callbacks(&appliance::store::Viewer { username: "agent1".into(), unmask: false }, Some("agent1"), None, None)?
        .first()
        .context("a callback")?
        .callback_id;
    let table = route_table();
    ensure!(table.len() > 60, "the registry lists {} routes", table.len());
    let mut expected = expectations(attempt, callback, "1");
    let mut failures = Vec::new();
    let admin_modules = store.modules_of(store.users()?.iter().find(|u| u.username == "siteadmin").context("admin")?.user_id)?;
    let agent_modules = store.modules_of(store.users()?.iter().find(|u| u.username == "agent1").context("agent1")?.user_id)?;
    ensure!(!admin_modules.contains(&Module::FullNumbers) && agent_modules.contains(&Module::Callbacks));
    for route in &table {
        let Some(expect) = expected.remove(&(route.method, route.path)) else {
            failures.push(format!("{} {}: the test has no expectation for this route", route.method, route.path));
            continue;
        };
        if route.access != expect.access {
            failures.push(format!("{} {}: guarded as {:?}, expected {:?}", route.method, route.path, route.access, expect.access));
        }
        // The account of the right kind without the modules: bare staff for admin routes,
        // the bare agent otherwise.
        let bare = match expect.access {
            Access::Admin(_) => ("barestaff", Some(Role::Admin)),
            _ => ("bareagent", Some(Role::Agent)),
        };
        let callers: [Caller; 4] = [
            ("no session", None, None, &[]),
            ("agent", Some("agent1"), Some(Role::Agent), &agent_modules),
            ("bare", Some(bare.0), bare.1, &[]),
            ("admin", Some("siteadmin"), Some(Role::Admin), &admin_modules),
        ];
        for (who, username, role, modules) in callers {
            let cookie = match username {
                Some(username) => Some(session(&site, username)?),
                None => None,
            };
            let (status, body) = call(&site, route.method, &expect.path, cookie.as_deref(), expect.body.as_ref()).await?;
            let allowed = expected_allowed(expect.access, role, modules);
            let was_refused = refused(&expect.path, status, &body);
            if allowed == was_refused {
                failures.push(format!(
                    "{} {} as {who}: expected {}, got {status} {}",
                    route.method,
                    expect.path,
                    if allowed { "through" } else { "refused" },
                    body.chars().take(160).collect::<String>()
                ));
            }
            if status.is_server_error() {
                failures.push(format!("{} {} as {who}: {status} {body}", route.method, expect.path));
            }
        }
    }
    for (method, path) in expected.keys() {
        failures.push(format!("{method} {path}: expected by the test but not in the registry"));
    }
    ensure!(failures.is_empty(), "{} problems:\n{}", failures.len(), failures.join("\n"));
    Ok(())
}

#[tokio::test]
async fn no_json_answer_to_an_agent_holds_a_masked_number() -> anyhow::Result<()> {
    let (site, attempt) = staffed_site().await?;
    let agent = session(&site, "agent1")?;
    let mut seen_masked = 0;
    let mut checked = Vec::new();
    for route in route_table() {
        if route.method != "GET" || !route.path.starts_with("/api/") || !route.access.admits(Some(Role::Agent), &Module::AGENT) {
            continue;
        }
        let path = route.path.replace("{attempt_id}", &attempt.to_string());
        let response = client().get(format!("{}{path}", site.url)).header("Cookie", &agent).send().await?;
        let json = response.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        if !json {
            continue;
        }
        let body = response.text().await?;
        ensure!(!body.contains(FULL_PHONE), "{path} gave an agent the full number: {body}");
        ensure!(!body.contains("internal_code") && !body.contains("\"X0\""), "{path} gave an agent a hidden field: {body}");
        seen_masked += body.matches(MASKED_PHONE).count();
        checked.push(path);
    }
    ensure!(checked.iter().any(|p| p == "/api/agent/records") && checked.iter().any(|p| p == "/api/agent/callbacks"), "{checked:?}");
    ensure!(seen_masked >= 2, "the agent's records and callbacks show the masked number; checked {checked:?}");
    Ok(())
}

/// The value of the `sid` cookie a login sets.
async fn login_cookie(url: &str, username: &str, password: &str) -> anyhow::Result<String> {
    let response = client().post(format!("{url}/api/login")).json(&json!({"username": username, "password": password})).send().await?;
    ensure!(response.status() == StatusCode::OK, "login: {}", response.status());
    let set = response.headers().get("set-cookie").context("set-cookie")?.to_str()?.to_string();
    Ok(set.split(';').next().context("cookie")?.to_string())
}

#[tokio::test]
async fn sessions_survive_a_restart_and_end_when_idle() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let password = appliance::init_admin(dir.path(), "siteadmin")?;
    let site = start(dir, password.clone()).await?;
    let cookie = login_cookie(&site.url, "siteadmin", &password).await?;
    let (status, _) = call(&site, "GET", "/api/tasks", Some(&cookie), None).await?;
    assert_eq!(status, StatusCode::OK);
    // The token is stored only as its hash.
    let token = cookie.trim_start_matches("sid=").to_string();
    let db = rusqlite::Connection::open(site.dir.path().join("site.db"))?;
    let stored: Vec<String> = db.prepare("SELECT token_hash FROM web_sessions")?.query_map([], |row| row.get(0))?.collect::<Result<_, _>>()?;
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], token);

    // Restart over the same data directory: the same cookie still works.
    let Site { mut appliance, shutdown, dir, _stop, .. } = site;
    drop(_stop);
    shutdown.cancel();
    appliance.wait().await;
    let site = start(dir, password).await?;
    let (status, body) = call(&site, "GET", "/api/tasks", Some(&cookie), None).await?;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Seven hours idle: still in. Past eight: refused, and the session is gone.
    let now = appliance::store::now_unix();
    db.execute("UPDATE web_sessions SET last_seen = ?1", [now - 7 * 3600])?;
    let (status, _) = call(&site, "GET", "/api/tasks", Some(&cookie), None).await?;
    assert_eq!(status, StatusCode::OK);
    db.execute("UPDATE web_sessions SET last_seen = ?1", [now - 8 * 3600 - 5])?;
    let (status, body) = call(&site, "GET", "/api/tasks", Some(&cookie), None).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("登录已过期"), "{body}");
    let (status, body) = call(&site, "GET", "/admin/tasks", Some(&cookie), None).await?;
    assert_eq!((status, body.as_str()), (StatusCode::SEE_OTHER, "location: /login"));
    let left: i64 = db.query_row("SELECT COUNT(*) FROM web_sessions", [], |row| row.get(0))?;
    assert_eq!(left, 0);

    // Logging out ends a session for good.
    let cookie = login_cookie(&site.url, "siteadmin", &site.admin_password).await?;
    let (status, _) = call(&site, "POST", "/api/logout", Some(&cookie), None).await?;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&site, "GET", "/api/tasks", Some(&cookie), None).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test]
async fn over_long_text_is_refused_with_the_field_and_its_limit() -> anyhow::Result<()> {
    let (site, attempt) = staffed_site().await?;
    let agent = session(&site, "agent1")?;
    let admin = session(&site, "siteadmin")?;
    let english = format!("{agent}; lang=en");
    let long_note = "很".repeat(1001);
    let cases: Vec<(&str, String, Value, &str, &str)> = vec![
        (agent.as_str(), format!("/api/attempts/{attempt}/callbacks"), json!({"title": "t", "note": long_note, "due_at": 4_000_000_000i64}), "note", "1000"),
        (agent.as_str(), format!("/api/attempts/{attempt}/callbacks"), json!({"title": "标".repeat(101), "due_at": 4_000_000_000i64}), "title", "100"),
        (agent.as_str(), format!("/api/attempts/{attempt}/record"), json!({"values": {"note": "x".repeat(1001)}}), "note", "1000"),
        (agent.as_str(), "/api/customers/77/77000".into(), json!({"values": {"name": "名".repeat(1001)}}), "name", "1000"),
        (admin.as_str(), "/api/agents".into(), json!({"username": "u".repeat(33), "password": "agent-pass", "extension": "1001"}), "username", "32"),
        (admin.as_str(), "/api/agents".into(), json!({"username": "newone", "password": "agent-pass", "name": "名".repeat(65), "extension": "1001"}), "name", "64"),
        (admin.as_str(), "/api/roles".into(), json!({"name": "角".repeat(33), "modules": []}), "name", "32"),
        (admin.as_str(), "/api/staff".into(), json!({"username": "lead2", "password": "p".repeat(129)}), "password", "128"),
        (admin.as_str(), "/api/data/callbacks".into(), json!({"batch_id": 77, "row_id": 77000, "agent": "agent1", "title": "t", "note": "n".repeat(1001), "due_at": 1}), "note", "1000"),
        (admin.as_str(), "/api/projects/7/rules".into(), json!({"rules": [{"conditions": [["name", ["v".repeat(1001)]]], "agent": "agent1"}]}), "name", "1000"),
    ];
    for (cookie, path, body, field, limit) in cases {
        let (status, text) = call(&site, "POST", &path, Some(cookie), Some(&body)).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {text}");
        let error: Value = serde_json::from_str(&text)?;
        let message = error["error"].as_str().context("error")?;
        // The field by its label on the page.
        let label = appliance::web::messages::CATALOG.label(field, true).unwrap_or(field);
        assert!(message.contains(&format!("“{label}”过长")) && message.contains(&format!("最多 {limit} 个字符")), "{path}: {message}");
    }
    let (status, text) = call(&site, "POST", &format!("/api/attempts/{attempt}/callbacks"), Some(&english), Some(&json!({"title": "t", "note": "n".repeat(1200), "due_at": 1}))).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error: Value = serde_json::from_str(&text)?;
    assert_eq!(error["error"], "field \"Note\" is too long: at most 1000 characters (got 1200)");
    // A query too: the data filter's agent name.
    let (status, text) = call(&site, "GET", &format!("/api/data/records?agent={}", "a".repeat(40)), Some(&admin), None).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("“坐席”过长"), "{text}");
    // At the limit is fine.
    let (status, text) = call(&site, "POST", &format!("/api/attempts/{attempt}/callbacks"), Some(&agent), Some(&json!({"title": "t", "note": "很".repeat(1000), "due_at": 4_000_000_000i64}))).await?;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    Ok(())
}

#[tokio::test]
async fn the_api_document_lists_every_api_route_and_errors_are_json() -> anyhow::Result<()> {
    let (site, _) = staffed_site().await?;
    let (status, text) = call(&site, "GET", "/api/openapi.json", None, None).await?;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_str(&text)?;
    let mut missing = Vec::new();
    for route in route_table().into_iter().filter(|r| r.path.starts_with("/api/")) {
        let operation = &doc["paths"][route.path][route.method.to_lowercase()];
        if operation.is_null() {
            missing.push(format!("{} {}", route.method, route.path));
            continue;
        }
        if route.access != Access::Public {
            for code in ["401", "403"] {
                ensure!(!operation["responses"][code].is_null(), "{} {} documents no {code}", route.method, route.path);
            }
        }
        if !operation["requestBody"].is_null() {
            for code in ["400", "415", "422"] {
                let response = &operation["responses"][code];
                ensure!(
                    response["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/ErrorBody",
                    "{} {}: {code} is not the JSON error: {response}",
                    route.method,
                    route.path
                );
            }
        }
    }
    ensure!(missing.is_empty(), "the document lacks {missing:?}");
    let schemas = &doc["components"]["schemas"];
    for (schema, field) in [("ScheduleForm", "note"), ("AgentForm", "extension"), ("ExtrasForm", "abandon_cap_percent"), ("ErrorBody", "error")] {
        ensure!(!schemas[schema]["properties"][field].is_null(), "{schema}.{field} is not documented");
    }

    // Framework rejections leave as the JSON error, in the UI's language.
    let admin = session(&site, "siteadmin")?;
    let url = format!("{}/api/roles", site.url);
    let cases = [
        ("application/json", "{\"name\": ", StatusCode::BAD_REQUEST, "不是有效的 JSON"),
        ("text/plain", "{}", StatusCode::UNSUPPORTED_MEDIA_TYPE, "须为 JSON"),
        ("application/json", "{\"name\": 5}", StatusCode::UNPROCESSABLE_ENTITY, "应为文字"),
    ];
    for (content_type, body, expected, words) in cases {
        let response = client().post(&url).header("Cookie", &admin).header("Content-Type", content_type).body(body).send().await?;
        assert_eq!(response.status(), expected, "{body}");
        assert!(response.headers()["content-type"].to_str()?.starts_with("application/json"));
        let error: Value = response.json().await?;
        assert!(error["error"].as_str().is_some_and(|e| e.contains(words)), "{body}: {error}");
    }
    let english = format!("{admin}; lang=en");
    let response = client().post(&url).header("Cookie", &english).header("Content-Type", "application/json").body("[").send().await?;
    let error: Value = response.json().await?;
    assert!(error["error"].as_str().is_some_and(|e| e.starts_with("the body is not valid JSON")), "{error}");
    // A bad path parameter, a wrong method and an unknown route: JSON too.
    for (method, path, expected) in [
        ("GET", "/api/tasks/not-a-number", StatusCode::BAD_REQUEST),
        ("GET", "/api/staff", StatusCode::METHOD_NOT_ALLOWED),
        ("GET", "/api/no-such-thing", StatusCode::NOT_FOUND),
    ] {
        let (status, text) = call(&site, method, path, Some(&admin), None).await?;
        assert_eq!(status, expected, "{path}: {text}");
        let error: Value = serde_json::from_str(&text).with_context(|| format!("{path}: {text}"))?;
        assert!(error["error"].is_string(), "{path}: {text}");
    }
    // Ids past what the store's integers hold: refused naming the field, not a store failure.
    let huge = 9_223_372_036_854_775_808u64;
    for (method, path, body, field) in [
        ("GET", format!("/api/tasks/{huge}"), None, "batch_id"),
        ("GET", format!("/api/data/records?project_id={huge}"), None, "project_id"),
        ("POST", "/api/accounts/2/role".to_string(), Some(json!({"role_id": huge})), "role_id"),
        ("POST", "/api/tasks/77/agents".to_string(), Some(json!({"agents": [huge]})), "agents"),
    ] {
        let (status, text) = call(&site, method, &path, Some(&admin), body.as_ref()).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {text}");
        let error: Value = serde_json::from_str(&text)?;
        let label = appliance::web::messages::CATALOG.label(field, true).unwrap_or(field);
        assert_eq!(error["error"], format!("字段“{label}”的数值过大：最大 9223372036854775807"), "{path}");
    }
    Ok(())
}

/// The value each path parameter takes on the staffed site.
fn fill(path: &str, ids: &[(&str, u64)]) -> anyhow::Result<String> {
    let mut filled = path.to_string();
    for (name, id) in ids {
        filled = filled.replace(&format!("{{{name}}}"), &id.to_string());
    }
    ensure!(!filled.contains('{'), "{path}: the test has no value for a parameter of this route");
    Ok(filled)
}

#[tokio::test]
async fn every_api_answer_matches_its_documented_schema() -> anyhow::Result<()> {
    let (site, attempt) = staffed_site().await?;
    let store = &site.appliance.store;
    // Something in every list: a line, HQ's library and a notice, a rule.
    store.set_lines(vec![appliance::store::Line { name: "主线".into(), channels: 4 }]);
    let library = vec![
        sync_protocol::DownEvent::VoiceFile(sync_protocol::VoiceFile {
            voice_id: 3,
            version: 1,
            name: "等待音乐".into(),
            kind: sync_protocol::VoiceKind::HoldMusic,
            sha256: [7; 32],
            size: 1600,
            deleted: false,
        }),
        sync_protocol::DownEvent::Announcement(sync_protocol::Announcement {
            announcement_id: 1,
            version: 1,
            title: "五一排班".into(),
            body: "请各职场注意".into(),
            published_at: 1_700_000_000,
            expires_at: None,
            withdrawn: false,
        }),
    ];
    let mut events = library;
    // A second batch, one of whose numbers the rules give agent1 ("my numbers").
    events.extend(batch_events(78, &rows(78, 2), 10, 50, 2));
    for entry in entries(4, events) {
        store.apply_down(&entry)?;
    }
    let admin = session(&site, "siteadmin")?;
    let agent = session(&site, "agent1")?;
    post_ok(&site, &admin, "/api/projects/7/rules", json!({"rules": [{"conditions": [["phone", ["13800137800"]]], "agent": "agent1"}]})).await?;
    let allocated = post_ok(&site, &admin, "/api/tasks/78/allocate", json!({})).await?;
    ensure!(allocated["attributed"] == 1, "{allocated}");
    let callback = store
        .callbacks(&appliance::store::Viewer { username: "agent1".into(), unmask: false }, Some("agent1"), None, None)?
        .first()
        .context("a callback")?
        .callback_id;
    let agent_id = store.users()?.into_iter().find(|u| u.username == "agent1").context("agent1")?.user_id;
    let ids = [("batch_id", 77), ("project_id", 7), ("attempt_id", attempt), ("callback_id", callback), ("user_id", agent_id), ("row_id", 77000)];

    let (status, text) = call(&site, "GET", "/api/openapi.json", None, None).await?;
    ensure!(status == StatusCode::OK, "{status}");
    let doc: Value = serde_json::from_str(&text)?;
    let schemas = &doc["components"]["schemas"];
    let mut failures = Vec::new();

    // No JSON answer is documented as a bare object: each names its fields.
    for (path, item) in doc["paths"].as_object().context("paths")? {
        for (method, operation) in item.as_object().context("path item")? {
            for (code, response) in operation["responses"].as_object().into_iter().flatten() {
                let schema = &response["content"]["application/json"]["schema"];
                if !schema.is_null() && path != "/api/openapi.json" && schema::is_free_form(schema, schemas) {
                    failures.push(format!("{method} {path} {code}: documented as a generic object: {schema}"));
                }
            }
        }
    }

    // Each GET route of the registry, called as the account it is for.
    let admin_modules = Module::ADMIN.into_iter().filter(|m| *m != Module::FullNumbers).collect::<Vec<_>>();
    let mut checked = Vec::new();
    for route in route_table().into_iter().filter(|r| r.method == "GET" && r.path.starts_with("/api/")) {
        let cookie = if route.access.admits(Some(Role::Admin), &admin_modules) {
            admin.as_str()
        } else if route.access.admits(Some(Role::Agent), &Module::AGENT) {
            agent.as_str()
        } else {
            failures.push(format!("GET {}: neither the admin nor agent1 may call it", route.path));
            continue;
        };
        let path = fill(route.path, &ids)?;
        let response = client().get(format!("{}{path}", site.url)).header("Cookie", cookie).send().await?;
        let status = response.status();
        let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let operation = &doc["paths"][route.path]["get"];
        let documented = &operation["responses"][status.as_str()];
        if documented.is_null() {
            failures.push(format!("GET {path}: answered {status}, which the document does not list"));
            continue;
        }
        if !status.is_success() {
            failures.push(format!("GET {path}: {status} {}", response.text().await.unwrap_or_default()));
            continue;
        }
        let media = content_type.split(';').next().unwrap_or("").trim().to_string();
        if documented["content"][&media].is_null() {
            failures.push(format!("GET {path}: answered {media}, the document says {}", documented["content"]));
            continue;
        }
        if media != "application/json" {
            // Streams, workbooks, archives and recordings: the media type is what is documented.
            continue;
        }
        let body: Value = response.json().await.with_context(|| format!("GET {path}"))?;
        if body.as_array().is_some_and(Vec::is_empty) {
            failures.push(format!("GET {path}: an empty list proves nothing; the test's site should give it rows"));
        }
        let problems = schema::violations(&body, &documented["content"]["application/json"]["schema"], schemas);
        if !problems.is_empty() {
            failures.push(format!("GET {path}: the answer does not match the document:\n  {}\n  {body}", problems.join("\n  ")));
        }
        checked.push(path);
    }
    ensure!(failures.is_empty(), "{} problems:\n{}", failures.len(), failures.join("\n"));
    for expected in ["/api/tasks/77", "/api/data/records", "/api/status", "/api/roles", "/api/agent/records", "/api/agent/settings"] {
        ensure!(checked.iter().any(|path| path == expected), "{expected} was not checked: {checked:?}");
    }
    Ok(())
}

/// Every row of every table of the site's database, as text: what a refused request must
/// leave as it was (sessions included, so a refused request did not even touch one).
fn database_rows(db: &rusqlite::Connection) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut out = BTreeMap::new();
    for table in tables {
        let mut statement = db.prepare(&format!("SELECT * FROM \"{table}\""))?;
        let columns = statement.column_count();
        let mut rows: Vec<String> = statement
            .query_map([], |row| {
                (0..columns).map(|i| row.get::<_, rusqlite::types::Value>(i).map(|v| format!("{v:?}"))).collect::<Result<Vec<_>, _>>()
            })?
            .map(|row| row.map(|cells| cells.join(" | ")))
            .collect::<Result<_, _>>()?;
        rows.sort();
        out.insert(table, rows);
    }
    Ok(out)
}

/// The tables whose rows differ between two [`database_rows`].
fn changed_tables(before: &BTreeMap<String, Vec<String>>, after: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let names: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    names.into_iter().filter(|name| before.get(*name) != after.get(*name)).cloned().collect()
}

#[tokio::test]
async fn foreign_origins_are_refused_on_every_state_changing_route() -> anyhow::Result<()> {
    let (site, attempt) = staffed_site().await?;
    let store = &site.appliance.store;
    let callback = store
        .callbacks(&appliance::store::Viewer { username: "agent1".into(), unmask: false }, Some("agent1"), None, None)?
        .first()
        .context("a callback")?
        .callback_id;
    let mut expected = expectations(attempt, callback, "9");
    // The right password: a login let through would open a session, which the database shows.
    if let Some(login) = expected.get_mut(&("POST", "/api/login")) {
        login.body = Some(json!({"username": "siteadmin", "password": site.admin_password}));
    }
    let mut changing: Vec<_> = route_table().into_iter().filter(|r| r.method != "GET").collect();
    // The logout last: one let through would end the admin's session, and with it what the
    // later admin routes could show had they been let through too.
    changing.sort_by_key(|route| route.path == "/api/logout");
    ensure!(changing.len() > 20, "the registry lists {} state-changing routes", changing.len());
    let admin = session(&site, "siteadmin")?;
    let agent = session(&site, "agent1")?;
    // What the desk and the monitor show lives partly in memory (agent states): read it through
    // the API before the database is read, so that these reads are not the difference.
    let (status, status_before) = call(&site, "GET", "/api/status", Some(&admin), None).await?;
    ensure!(status == StatusCode::OK, "{status} {status_before}");
    let (_, settings_before) = call(&site, "GET", "/api/agent/settings", Some(&agent), None).await?;
    let db = rusqlite::Connection::open(site.dir.path().join("site.db"))?;
    let before = database_rows(&db)?;

    let mut failures = Vec::new();
    for route in &changing {
        let Some(expect) = expected.get(&(route.method, route.path)) else {
            failures.push(format!("{} {}: the test has no request for this route", route.method, route.path));
            continue;
        };
        // An account the route admits, so that only the origin can refuse it.
        let cookie = match route.access {
            Access::Agent(_) => &agent,
            Access::Public | Access::SignedIn | Access::Admin(_) | Access::AgentOrAdmin { .. } => &admin,
        };
        for origin in ["http://evil.example", "null"] {
            let (status, body) = call_from(&site, route.method, &expect.path, Some(cookie), expect.body.as_ref(), Some(origin)).await?;
            let error: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let refused = status == StatusCode::FORBIDDEN && error["error"].as_str().is_some_and(|e| e.starts_with("refused"));
            if !refused {
                failures.push(format!("{} {} from {origin}: {status} {}", route.method, expect.path, body.chars().take(160).collect::<String>()));
            }
        }
    }
    let after = database_rows(&db)?;
    let changed = changed_tables(&before, &after);
    ensure!(failures.is_empty(), "{} problems:\n{}", failures.len(), failures.join("\n"));
    ensure!(changed.is_empty(), "refused requests changed {changed:?}");
    let (status, status_after) = call(&site, "GET", "/api/status", Some(&admin), None).await?;
    ensure!(status == StatusCode::OK, "the admin is still signed in (the refused logout did nothing): {status}");
    ensure!(status_after == status_before, "agent states changed:\n{status_before}\n{status_after}");
    let (_, settings_after) = call(&site, "GET", "/api/agent/settings", Some(&agent), None).await?;
    ensure!(settings_after == settings_before, "{settings_before} became {settings_after}");

    // The comparison sees a change: the site's own page may make one.
    let before = database_rows(&db)?;
    let (status, body) =
        call_from(&site, "POST", "/api/extensions", Some(&admin), Some(&json!({"extension": "1009", "password": "secret-pass"})), Some(&site.url)).await?;
    ensure!(status.is_success(), "same origin: {status} {body}");
    ensure!(changed_tables(&before, &database_rows(&db)?) == ["extensions"], "the same-origin request shows in the extensions table");
    Ok(())
}

/// The stored `last_seen` of the session of cookie `sid=...`.
fn last_seen(db: &rusqlite::Connection, cookie: &str) -> anyhow::Result<Option<i64>> {
    use rusqlite::OptionalExtension;
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(cookie.trim_start_matches("sid=").as_bytes()));
    Ok(db.query_row("SELECT last_seen FROM web_sessions WHERE token_hash = ?1", [hash], |row| row.get(0)).optional()?)
}

#[tokio::test]
async fn an_open_desk_stream_keeps_its_session_alive() -> anyhow::Result<()> {
    let (site, _) = staffed_site().await?;
    let watcher = login_cookie(&site.url, "agent1", "agent-pass").await?;
    let other = login_cookie(&site.url, "agent2", "agent-pass").await?;
    // No overall timeout: the stream stays open for the whole test.
    let streaming = reqwest::Client::builder().build()?;
    let mut stream = streaming.get(format!("{}/api/agent/events", site.url)).header("Cookie", &watcher).send().await?;
    ensure!(stream.status() == StatusCode::OK, "{}", stream.status());
    let first = tokio::time::timeout(Duration::from_secs(10), stream.chunk()).await??.context("the stream's first event")?;
    ensure!(String::from_utf8_lossy(&first).contains("event: state"), "{first:?}");

    // Both sessions as if nearly eight hours had passed without a request: agent1 has only
    // watched the desk since, agent2 has closed it.
    let db = rusqlite::Connection::open(site.dir.path().join("site.db"))?;
    let stale = appliance::store::now_unix() - 8 * 3600 + 40;
    db.execute("UPDATE web_sessions SET last_seen = ?1", [stale])?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
    loop {
        let seen = last_seen(&db, &watcher)?.context("agent1's session is gone")?;
        if seen > stale {
            break;
        }
        ensure!(tokio::time::Instant::now() < deadline, "the open stream did not mark the session used within 25 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    ensure!(last_seen(&db, &other)? == Some(stale), "agent2's session has no stream and must stay as it was");
    let seen = last_seen(&db, &watcher)?.context("session")?;
    ensure!(appliance::store::now_unix() - seen < 60, "the stream stamps the present, not {seen}");
    // The mark is real activity: well past what would have been the end, agent1 is still in.
    db.execute("UPDATE web_sessions SET last_seen = last_seen - 7 * 3600", [])?;
    let (status, body) = call(&site, "GET", "/api/agent/settings", Some(&watcher), None).await?;
    ensure!(status == StatusCode::OK, "{status} {body}");
    let (status, _) = call(&site, "GET", "/api/agent/settings", Some(&other), None).await?;
    ensure!(status == StatusCode::UNAUTHORIZED, "agent2's idle session must have ended: {status}");

    // Logging out elsewhere ends the session, and the stream with it.
    let (status, _) = call(&site, "POST", "/api/logout", Some(&watcher), None).await?;
    ensure!(status == StatusCode::OK);
    let ended = tokio::time::timeout(Duration::from_secs(25), async {
        loop {
            match stream.chunk().await {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return,
            }
        }
    })
    .await;
    ensure!(ended.is_ok(), "the desk stream stayed open 25 s after its session ended");
    Ok(())
}
