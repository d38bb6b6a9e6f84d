//! What people read in both consoles, enumerated from the route tables rather than listed
//! page by page:
//!
//! - `no_page_or_export_shows_a_raw_key`: every GET page of the hub's and the site's route
//!   tables, opened in Chinese by an admin over seeded data (files, batches, calls of every
//!   outcome, business records, callbacks), and every export (xlsx) opened with calamine,
//!   must not show a key as a word: a status, outcome, kind, field type, module or mode as
//!   the code spells it (`no_answer`, `single_choice`, `one_click`, `data.batches`). The keys
//!   come from the enums' own serde names (and the outcome enum's variant names the stores
//!   write in snake case), so a variant added later is checked without touching this test.
//! - `every_list_says_what_to_do_when_empty`: on an empty install, every page of both route
//!   tables whose list (a table with a header row) has no row shows an empty state
//!   (`.empty`): a sentence, in Chinese and in English.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde::Serialize;
use serde_json::{Value, json};
use sync_link::HubStore as _;
use tests::{RunningHub, free_udp_port};

mod site_support;

const WAIT: Duration = Duration::from_secs(30);

/// `NoAnswer` → `no_answer`, the way the stores write an outcome.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn serde_name(value: impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(name)) => name,
        other => panic!("a unit variant serialises as a string: {other:?}"),
    }
}

/// Every key a page could leak, from the enums that define them.
fn raw_keys() -> BTreeSet<String> {
    use appliance::desk::AgentState;
    use appliance::store::{CallbackScope, Module, SiteDialMode};
    use hq_hub::store::{DialModeSetting, Direction, FieldSpecKind, ListKind, OneClickAction, PhoneMode, PopupTiming, ProjectStatus};
    let mut keys = BTreeSet::new();
    let kinds = [FieldSpecKind::Text, FieldSpecKind::SingleChoice, FieldSpecKind::Number, FieldSpecKind::Date, FieldSpecKind::MultipleChoice];
    keys.extend(kinds.map(serde_name));
    keys.extend([DialModeSetting::Predictive, DialModeSetting::OneClick].map(serde_name));
    keys.extend([PopupTiming::OnAnswer, PopupTiming::OnRing].map(serde_name));
    keys.extend([ProjectStatus::Running, ProjectStatus::Paused].map(serde_name));
    keys.extend([PhoneMode::Number, PhoneMode::Token].map(serde_name));
    keys.extend([ListKind::Black, ListKind::White].map(serde_name));
    keys.extend([OneClickAction::Start, OneClickAction::Pause].map(serde_name));
    keys.extend([Direction::Outbound, Direction::Inbound].map(serde_name));
    keys.extend(hq_hub::store::MODULES.iter().map(|(key, _, _)| key.to_string()));
    let states = [AgentState::SignedOut, AgentState::Available, AgentState::OneClickOnly, AgentState::Break, AgentState::Away];
    keys.extend(states.map(serde_name));
    keys.extend([SiteDialMode::Predictive, SiteDialMode::OneClick].map(serde_name));
    keys.extend([CallbackScope::Agent, CallbackScope::Task].map(serde_name));
    let modules = [
        Module::Tasks,
        Module::Extensions,
        Module::Accounts,
        Module::Attribution,
        Module::Data,
        Module::Export,
        Module::Monitor,
        Module::FullNumbers,
        Module::Records,
        Module::Download,
        Module::Customers,
        Module::Callbacks,
    ];
    keys.extend(modules.map(serde_name));
    use sync_protocol::Outcome as O;
    let outcomes = [O::Connected, O::Busy, O::NoAnswer, O::Rejected, O::Failed, O::Abandoned, O::AgentMissed];
    keys.extend(outcomes.map(|o| snake(&serde_name(o))));
    keys.extend([sync_protocol::HangupSide::Customer, sync_protocol::HangupSide::Agent, sync_protocol::HangupSide::System].map(|s| snake(&serde_name(s))));
    // The row and callback states the site's tables hold as text (no enum of their own).
    keys.extend(["new", "dialing", "done", "waiting", "cancelled"].map(String::from));
    keys
}

/// The text a person sees on a page: `<main>` less scripts, styles, templates and tags.
fn visible(html: &str) -> String {
    let body = match (html.find("<main"), html.rfind("</main>")) {
        (Some(start), Some(end)) if start < end => &html[start..end],
        _ => html,
    };
    let mut text = String::new();
    let mut rest = body;
    while let Some(open) = rest.find('<') {
        text.push_str(&rest[..open]);
        text.push(' ');
        let tail = &rest[open..];
        let skipped = ["script", "style", "template", "textarea"].iter().find_map(|tag| {
            tail.strip_prefix(&format!("<{tag}")).and_then(|_| tail.find(&format!("</{tag}>")).map(|end| end + tag.len() + 3))
        });
        let close = skipped.or_else(|| tail.find('>').map(|end| end + 1)).unwrap_or(tail.len());
        rest = &tail[close..];
    }
    text.push_str(rest);
    text.replace("&amp;", "&").replace("&nbsp;", " ")
}

/// The raw keys among `text`'s words.
fn leaked(text: &str, keys: &BTreeSet<String>) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .map(|word| word.trim_matches('.'))
        .filter(|word| keys.contains(*word))
        .map(str::to_string)
        .collect()
}

/// Every string cell of every sheet of a workbook.
fn workbook_text(bytes: Vec<u8>) -> Result<String> {
    use calamine::Reader as _;
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(bytes))?;
    let mut text = String::new();
    for name in book.sheet_names() {
        let range = book.worksheet_range(&name)?;
        for row in range.rows() {
            for cell in row {
                text.push_str(&cell.to_string());
                text.push('\n');
            }
        }
    }
    Ok(text)
}

/// A client that sends `lang` and the session `username` logged in with.
async fn client(base: &str, lang: &str, login: Option<(&str, &str)>) -> Result<reqwest::Client> {
    let build = |cookie: String| -> Result<reqwest::Client> {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::COOKIE, cookie.parse()?);
        Ok(reqwest::Client::builder().default_headers(headers).timeout(WAIT).build()?)
    };
    let mut cookie = format!("lang={lang}");
    if let Some((username, password)) = login {
        let answer = build(cookie.clone())?.post(format!("{base}/api/login")).json(&json!({"username": username, "password": password})).send().await?;
        ensure!(answer.status().is_success(), "login {username}: {}", answer.status());
        for set in answer.headers().get_all(reqwest::header::SET_COOKIE) {
            cookie.push_str("; ");
            cookie.push_str(set.to_str()?.split(';').next().unwrap_or_default());
        }
    }
    build(cookie)
}

/// A route's path with its parameters filled by `fill`; `None` when one cannot be.
fn path_of(pattern: &str, fill: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        let close = open + rest[open..].find('}')?;
        out.push_str(&rest[..open]);
        out.push_str(&fill(&rest[open + 1..close])?);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// What a walk read: pages and workbooks, and what each leaked or lacked.
#[derive(Default)]
struct Walk {
    pages: Vec<(String, String)>,
    workbooks: Vec<(String, String)>,
}

/// Opens every GET route of `routes` that is a page or an export (JSON, assets, event
/// streams and probes are not for people to read).
async fn walk(http: &reqwest::Client, base: &str, routes: &[String], fill: &dyn Fn(&str) -> Option<String>) -> Result<Walk> {
    let mut walk = Walk::default();
    for pattern in routes {
        let export = pattern.ends_with(".xlsx") || pattern.ends_with("/export");
        let skip = ["/static/", "/assets/", "/lang/", "/healthz", "/readyz", "/metrics", "/events", "/login", "recording"];
        if (pattern.starts_with("/api/") && !export) || skip.iter().any(|s| pattern.contains(s)) {
            continue;
        }
        let Some(path) = path_of(pattern, fill) else { continue };
        let response = http.get(format!("{base}{path}")).send().await.with_context(|| format!("GET {path}"))?;
        if !response.status().is_success() {
            continue;
        }
        let kind = response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let bytes = response.bytes().await?.to_vec();
        if kind.contains("spreadsheetml") {
            walk.workbooks.push((path, workbook_text(bytes)?));
        } else if kind.contains("text/html") {
            walk.pages.push((path, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    Ok(walk)
}

/// The hub with two sites, a project with a field of every type, a file with a bad row,
/// a batch, and a call of every outcome with a business record, as the link brings them.
async fn seeded_hub(hub: &RunningHub, http: &reqwest::Client) -> Result<()> {
    let base = &hub.url;
    let post = |path: String, body: Value| async move {
        let answer = http.post(format!("{base}{path}")).json(&body).send().await?;
        let (status, value) = (answer.status(), answer.json::<Value>().await.unwrap_or(Value::Null));
        ensure!(status.is_success(), "POST {path}: {status} {value}");
        anyhow::Ok(value)
    };
    let site = post("/api/sites".into(), json!({"name": "杭州职场"})).await?["id"].as_i64().context("site")?;
    let category = post("/api/categories".into(), json!({"name": "信用卡"})).await?["id"].as_i64().context("category")?;
    let fields = json!([
        {"key": "name", "title": "客户姓名", "kind": "text"},
        {"key": "age", "title": "年龄", "kind": "number", "filterable": true},
        {"key": "since", "title": "开户日期", "kind": "date"},
        {"key": "level", "title": "等级", "kind": "single_choice", "options": ["金卡", "银卡"], "filterable": true},
        {"key": "tags", "title": "标签", "kind": "multiple_choice", "options": ["分期", "理财"]}
    ]);
    let project = json!({"category_id": category, "name": "分期推荐", "customer_fields": fields,
        "record_fields": [{"key": "result", "title": "结果", "kind": "single_choice", "options": ["成功", "失败"]}],
        "settings": {"dial_mode": "one_click", "popup_timing": "on_ring", "status": "running"}});
    let project = post("/api/projects".into(), project).await?["id"].as_i64().context("project")?;
    let put = http.put(format!("{base}/api/projects/{project}/sites")).json(&json!({"site_ids": [site]})).send().await?;
    ensure!(put.status().is_success(), "sites: {}", put.status());
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (col, title) in ["手机号码", "客户姓名", "年龄", "开户日期", "等级", "标签"].iter().enumerate() {
        sheet.write_string(0, col as u16, *title)?;
    }
    for (row, cells) in [["13800138001", "张三", "30", "2020-01-02", "金卡", "分期"], ["13800138002", "李四", "不是数字", "2020-01-02", "银卡", "理财"]].iter().enumerate() {
        for (col, cell) in cells.iter().enumerate() {
            sheet.write_string(row as u32 + 1, col as u16, *cell)?;
        }
    }
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(book.save_to_buffer()?).file_name("名单.xlsx"));
    let answer = http.post(format!("{base}/api/projects/{project}/files")).multipart(form).send().await?;
    ensure!(answer.status().is_success(), "upload: {}", answer.status());
    let file = answer.json::<Value>().await?["file_id"].as_i64().context("file")?;
    let batch = post(format!("/api/files/{file}/dispatch"), json!({"name": "一批", "priority": 5, "site_ids": [site]})).await?["batch_ids"][0]
        .as_u64()
        .context("batch")?;
    post("/api/lists/black".into(), json!({"phones": ["13900000001"], "note": "投诉"})).await?;
    use sync_protocol::{AttemptKind, BusinessRecord, CallAttempt, HangupSide, Outcome, UpEntry, UpEvent};
    let store = &hub.hub().store;
    let outcomes = [Outcome::Connected, Outcome::Busy, Outcome::NoAnswer, Outcome::Rejected, Outcome::Failed, Outcome::Abandoned, Outcome::AgentMissed];
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    for (n, outcome) in outcomes.into_iter().enumerate() {
        let seq = n as u64 + 1;
        let attempt = CallAttempt {
            attempt_id: seq, batch_id: batch, row_id: 1, started_at: now - 600 + n as i64, answered_at: Some(now - 590), ended_at: now - 500,
            outcome, hangup_side: Some(HangupSide::Customer), agent: Some("8001".into()), talk_seconds: 20, recording_sha256: None,
            kind: AttemptKind::Predictive,
        };
        store.apply_up(site as u64, &UpEntry { epoch: 1, seq: seq * 2, event: UpEvent::CallAttempt(attempt) })?;
        let record = BusinessRecord { attempt_id: seq, batch_id: batch, row_id: 1, agent: "8001".into(), saved_at: now - 400, values: vec![("result".into(), "成功".into())] };
        store.apply_up(site as u64, &UpEntry { epoch: 1, seq: seq * 2 + 1, event: UpEvent::BusinessRecord(record) })?;
    }
    Ok(())
}

/// The site with its batch, a call of every outcome (each with a record), and a callback.
fn seeded_site(site: &site_support::Site) -> Result<()> {
    use appliance::store::{AgentSettings, AttemptEnd};
    let store = &site.appliance.store;
    let agent = store.users()?.into_iter().find(|u| u.username == "agent1").context("agent1")?;
    store.set_agent_settings(agent.user_id, &AgentSettings { caller: "02150001111".into(), popup_timing: "answer".into(), popup_page: "default".into() })?;
    use sync_protocol::Outcome as O;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    for (n, outcome) in [O::Connected, O::Busy, O::NoAnswer, O::Rejected, O::Failed, O::Abandoned, O::AgentMissed].into_iter().enumerate() {
        let claim = store.claim_typed_number(Some(7), &format!("1380013{:04}", 700 + n), agent.user_id, "agent1", now)?;
        let end = AttemptEnd { outcome, hangup_side: None, ended_at: now + 30, recording_path: None, recording_sha256: None };
        store.finish_attempt(claim.claimed.attempt_id, &end)?;
        store.save_record(claim.claimed.attempt_id, "agent1", &[("result".into(), "成功".into())])?;
        if n == 0 {
            store.schedule_callback(claim.claimed.attempt_id, "agent1", "回访", now + 3600, "")?;
        }
    }
    Ok(())
}

fn judge(walk: &Walk, keys: &BTreeSet<String>, failures: &mut Vec<String>) {
    for (path, html) in &walk.pages {
        let words = leaked(&visible(html), keys);
        if !words.is_empty() {
            failures.push(format!("page {path}: {words:?}"));
        }
    }
    for (path, text) in &walk.workbooks {
        let words = leaked(text, keys);
        if !words.is_empty() {
            failures.push(format!("export {path}: {words:?}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_page_or_export_shows_a_raw_key() -> Result<()> {
    let keys = raw_keys();
    ensure!(keys.contains("no_answer") && keys.contains("single_choice") && keys.contains("data.batches"), "{keys:?}");
    let mut failures = Vec::new();

    let hub = RunningHub::start().await?;
    let admin = client(&hub.url, "zh", Some(("admin", &hub.password))).await?;
    seeded_hub(&hub, &admin).await?;
    let routes: Vec<String> = hq_hub::routes().into_iter().filter(|r| r.method == "GET").map(|r| r.path.to_string()).collect();
    let fill = |name: &str| match name {
        "id" | "site" | "attempt" => Some("1".to_string()),
        "list" => Some("black".to_string()),
        _ => None,
    };
    let hub_walk = walk(&admin, &hub.url, &routes, &fill).await?;
    ensure!(hub_walk.pages.len() >= 25 && hub_walk.workbooks.len() >= 4, "the hub walk read {} pages, {} workbooks", hub_walk.pages.len(), hub_walk.workbooks.len());
    judge(&hub_walk, &keys, &mut failures);

    let site = site_support::start_site_with_agent(free_udp_port(), 41, 3).await?;
    seeded_site(&site)?;
    let http = client(&site.url, "zh", Some(("siteadmin", &site.admin_password))).await?;
    let routes: Vec<String> = appliance::web::routes::route_table().into_iter().filter(|r| r.method == "GET").map(|r| r.path.to_string()).collect();
    let fill = |name: &str| match name {
        "batch_id" => Some("41".to_string()),
        "project_id" => Some("7".to_string()),
        _ => None,
    };
    let mut site_walk = walk(&http, &site.url, &routes, &fill).await?;
    // The admin's other tabs and the agent's own pages.
    for tab in ["business", "callbacks", "lists"] {
        let path = format!("/admin/data?project_id=7&tab={tab}");
        site_walk.pages.push((path.clone(), http.get(format!("{}{path}", site.url)).send().await?.text().await?));
    }
    let agent = client(&site.url, "zh", Some(("agent1", site_support::AGENT_PASSWORD))).await?;
    let agent_walk = walk(&agent, &site.url, &routes, &fill).await?;
    site_walk.pages.extend(agent_walk.pages.into_iter().filter(|(path, _)| path.starts_with("/desk")));
    let records = http.get(format!("{}/api/data/records.xlsx?project_id=7", site.url)).send().await?.bytes().await?.to_vec();
    site_walk.workbooks.push(("/api/data/records.xlsx?project_id=7".into(), workbook_text(records)?));
    ensure!(site_walk.pages.len() >= 20 && site_walk.workbooks.len() >= 2, "the site walk read {} pages, {} workbooks", site_walk.pages.len(), site_walk.workbooks.len());
    judge(&site_walk, &keys, &mut failures);
    ensure!(failures.is_empty(), "{} raw keys shown:\n{}", failures.len(), failures.join("\n"));
    hub.stop().await
}

/// The site's box with its admin and nothing else: no project, batch, agent or call.
async fn empty_site() -> Result<(String, String, tempfile::TempDir, tokio_util::sync::CancellationToken, appliance::Appliance)> {
    let dir = tempfile::tempdir()?;
    let password = appliance::init_admin(dir.path(), "siteadmin")?;
    let config = appliance::ApplianceConfig::on_loopback(dir.path(), SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), free_udp_port()), 1);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let box_ = appliance::start(config, shutdown.clone()).await?;
    Ok((format!("http://{}", box_.http_addr), password, dir, shutdown, box_))
}

/// The text of the first element of `html` whose class list has `empty`.
fn empty_state(html: &str) -> Option<String> {
    let mut rest = html;
    while let Some(at) = rest.find("class=\"") {
        let classes = &rest[at + 7..];
        let close = classes.find('"')?;
        if classes[..close].split(' ').any(|c| c == "empty") {
            let start = classes.find('>')? + 1;
            let end = start + classes[start..].find('<').unwrap_or(classes.len() - start);
            return Some(classes[start..end].trim().to_string());
        }
        rest = &classes[close..];
    }
    None
}

/// A page's lists (tables with a header row, not a form's layout table) that have no row
/// and no empty state saying so, by id; and how many lists the page has.
fn bare_lists(html: &str, lang: &str) -> (Vec<String>, usize) {
    let (mut bare, mut lists) = (Vec::new(), 0);
    let main = html.find("<main").map_or(html, |at| &html[at..]);
    let mut rest = main;
    while let Some(at) = rest.find("<table") {
        let table = &rest[at..];
        let end = table.find("</table>").map_or(table.len(), |e| e + 8);
        let (table_html, after) = (&table[..end], &table[end..]);
        rest = after;
        let open_tag = &table_html[..table_html.find('>').unwrap_or(0)];
        if open_tag.contains("class=\"form") || !table_html.contains("<thead") {
            continue;
        }
        lists += 1;
        let body = table_html.find("</thead>").map(|b| &table_html[b..]).unwrap_or_default();
        // A row of one cell across the table is a placeholder ("暂无数据"), not data.
        let data_rows = body.split("<tr").skip(1).filter(|row| !(row.contains("colspan") && row.matches("<td").count() == 1)).count();
        if data_rows > 0 {
            continue;
        }
        let inside = empty_state(table_html);
        // The empty state is a row of the table, or follows it before the next table.
        let until = after.find("<table").or_else(|| after.find("</main>")).unwrap_or(after.len());
        let state = inside.or_else(|| empty_state(&after[..until])).unwrap_or_default();
        let said = match lang {
            "zh" => web_guard::messages::has_cjk(&state) && state.chars().count() >= 8,
            _ => state.split_whitespace().count() >= 4,
        };
        if !said {
            let id = open_tag.split("id=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or("(no id)");
            bare.push(format!("{id}: {state:?}"));
        }
    }
    (bare, lists)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_list_says_what_to_do_when_empty() -> Result<()> {
    let hub = RunningHub::start().await?;
    let (site_url, site_password, _dir, shutdown, _box) = empty_site().await?;
    let _stop = shutdown.drop_guard();
    let hub_routes: Vec<String> = hq_hub::routes().into_iter().filter(|r| r.method == "GET").map(|r| r.path.to_string()).collect();
    let site_routes: Vec<String> =
        appliance::web::routes::route_table().into_iter().filter(|r| r.method == "GET").map(|r| r.path.to_string()).collect();
    let no_param = |_: &str| None;
    // An agent on the box, so the desk's lists are walked too.
    let site_admin = client(&site_url, "zh", Some(("siteadmin", &site_password))).await?;
    site_support::post(&site_admin, format!("{site_url}/api/extensions"), json!({"extension": "1001", "password": "sip-secret-1001"})).await?;
    let agent = json!({"username": "agent1", "password": site_support::AGENT_PASSWORD, "name": "小王", "extension": "1001"});
    site_support::post(&site_admin, format!("{site_url}/api/agents"), agent).await?;
    let mut failures = Vec::new();
    let mut lists = 0;
    for lang in ["zh", "en"] {
        let admin = client(&hub.url, lang, Some(("admin", &hub.password))).await?;
        let site = client(&site_url, lang, Some(("siteadmin", &site_password))).await?;
        let mut pages = walk(&admin, &hub.url, &hub_routes, &no_param).await?.pages;
        pages.extend(walk(&site, &site_url, &site_routes, &no_param).await?.pages);
        let agent = client(&site_url, lang, Some(("agent1", site_support::AGENT_PASSWORD))).await?;
        let desk = walk(&agent, &site_url, &site_routes, &no_param).await?.pages;
        pages.extend(desk.into_iter().filter(|(path, _)| path.starts_with("/desk")));
        for tab in ["business", "callbacks", "lists"] {
            let path = format!("/admin/data?tab={tab}");
            pages.push((path.clone(), site.get(format!("{site_url}{path}")).send().await?.text().await?));
        }
        for (path, html) in &pages {
            let (bare, found) = bare_lists(html, lang);
            lists += found;
            failures.extend(bare.into_iter().map(|bare| format!("{lang} {path} {bare}")));
        }
    }
    ensure!(lists >= 20, "only {lists} lists were found on the empty install");
    ensure!(failures.is_empty(), "{} empty lists say nothing:\n{}", failures.len(), failures.join("\n"));
    hub.stop().await
}
