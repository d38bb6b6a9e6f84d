//! Every route of the console, taken from the hub's own route table (not a hand-kept
//! list), called as: no session, a sub-admin whose role has no module, a sub-admin of
//! another site, a sub-admin of the data's own site, and the admin. Also: a foreign
//! `Origin` is refused on every state-changing route, every page carries the security
//! headers, logins are throttled per (account, address), and over-long fields are refused
//! with their limit.
//!
//! The hub runs in-process on 127.0.0.1:0 with its real SQLite store; clients are reqwest.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use reqwest::header::{HeaderMap, CONTENT_SECURITY_POLICY, LOCATION, ORIGIN, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS};
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use rust_xlsxwriter::Workbook;
use serde_json::{json, Value};

use hq_hub::Access;
use common::TestHub;

mod common;

type Harness = TestHub;

/// What a request sends.
#[derive(Clone)]
enum Body {
    None,
    Json(Value),
    Form(Vec<(String, String)>),
    /// Multipart: text fields and an xlsx in `file`.
    Upload(Vec<(String, String)>),
}

/// An answer: status, headers, text.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(base: &str, local: Option<IpAddr>) -> Result<Client> {
        let mut builder = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30));
        if let Some(ip) = local {
            builder = builder.local_address(ip);
        }
        Ok(Client { http: builder.build()?, base: base.to_string() })
    }

    async fn login(base: &str, username: &str, password: &str) -> Result<Client> {
        let client = Client::new(base, None)?;
        let answer = client.send(&Method::POST, "/api/login", &Body::Json(json!({ "username": username, "password": password })), None).await?;
        ensure!(answer.status == StatusCode::OK, "login {username}: {} {}", answer.status, answer.text);
        Ok(client)
    }

    async fn send(&self, method: &Method, path: &str, body: &Body, origin: Option<&str>) -> Result<Answer> {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        request = match body {
            Body::None => request,
            Body::Json(value) => request.json(value),
            Body::Form(pairs) => request.form(pairs),
            Body::Upload(fields) => {
                let mut form = Form::new().part("file", Part::bytes(sheet(&["13700000009"])).file_name("名单.xlsx"));
                for (key, value) in fields {
                    form = form.text(key.clone(), value.clone());
                }
                request.multipart(form)
            }
        };
        let mut response = request.send().await.with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let headers = response.headers().clone();
        let stream = headers.get("content-type").is_some_and(|t| t.to_str().unwrap_or("").starts_with("text/event-stream"));
        if !stream {
            return Ok(Answer { status, headers, text: response.text().await? });
        }
        // An event stream never ends: its first event (everything the wall shows) is the answer.
        let mut text = String::new();
        while !text.contains("\n\n") {
            match tokio::time::timeout(Duration::from_secs(10), response.chunk()).await {
                Ok(Ok(Some(bytes))) => text.push_str(&String::from_utf8_lossy(&bytes)),
                _ => bail!("{method} {path}: no first event within 10 s: {text}"),
            }
        }
        Ok(Answer { status, headers, text })
    }

    async fn json(&self, method: Method, path: &str, body: Value) -> Result<Value> {
        let answer = self.send(&method, path, &Body::Json(body), None).await?;
        ensure!(answer.status.is_success(), "{method} {path}: {} {}", answer.status, answer.text);
        Ok(serde_json::from_str(&answer.text)?)
    }
}

/// An xlsx call list with these phones.
fn sheet(phones: &[&str]) -> Vec<u8> {
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.write(0, 0, "手机号码").expect("header");
    sheet.write(0, 1, "姓名").expect("header");
    for (i, phone) in phones.iter().enumerate() {
        sheet.write(i as u32 + 1, 0, *phone).expect("cell");
        sheet.write(i as u32 + 1, 1, "客户").expect("cell");
    }
    workbook.save_to_buffer().expect("workbook")
}

fn id(value: &Value) -> i64 {
    value["id"].as_i64().unwrap_or_default()
}

/// What a sub-admin of another site must get from a route inside its module.
#[derive(Clone, Debug)]
enum Scoped {
    /// The row belongs to the other site: 403 or 404 (its own site's sub-admin reads it).
    Hidden,
    /// Like `Hidden`, but not readable by the own site's sub-admin either (a recording HQ
    /// does not hold; an import the admin started, which only its starter may poll).
    HiddenAbsent,
    /// A list: answered, without this marker (which the data's own sub-admin does see).
    Filtered(&'static str),
    /// The answer must contain this text (e.g. a one-click that changed nothing).
    Shows(&'static str),
    /// No site's data (global lists, the caller's own settings): answered like anyone's.
    Global,
}

/// The test's own statement of one route: who may call it, a concrete request, and what
/// another site's sub-admin gets.
struct Expect {
    access: Access,
    path: String,
    body: Body,
    scoped: Scoped,
}

/// The fixture every route is called against.
struct World {
    site: i64,
    other_site: i64,
    category: i64,
    project: i64,
    file: i64,
    batch: i64,
    job: u64,
    edit: Value,
    mine_account: i64,
    nomod_account: i64,
    /// A call at `site` of the batch, with a recording HQ holds.
    attempt: i64,
    /// An account and a role no caller of the test uses, for the edit routes.
    spare_account: i64,
    spare_role: i64,
}

const SITE_NAME: &str = "杭州一号职场";
const PROJECT_NAME: &str = "信用卡分期推荐";
const FILE_NAME: &str = "杭州名单甲";
const BATCH_NAME: &str = "杭州批次甲";

fn expectations(w: &World) -> BTreeMap<(Method, &'static str), Expect> {
    use Access::{Admin, LoggedIn, Public};
    use Scoped::{Filtered, Global, Hidden, HiddenAbsent, Shows};
    let files = Access::Module("data.files");
    let batches = Access::Module("data.batches");
    let settings = Access::Module("data.settings");
    let lists = Access::Module("cti.lists");
    let voice = Access::Module("cti.voice");
    let notices = Access::Module("notices");
    // 客户资料; 业务资料 or 职场业务数据.
    let customers = Access::Module("data.customer");
    let business = Access::AnyModule(&["data.business", "site.business"]);
    let reports = Access::Module("reports");
    let report_def = json!({ "name": "综合话务报表", "tags": ["team"], "columns": [{ "header": "外呼数", "statistic": { "kind": "dials" } }] });
    let preview = json!({ "time": { "kind": "last_7_days" } });
    let monitor = Access::Module("site.monitor");
    let calls = Access::Module("site.calls");
    let recordings = Access::Module("data.recordings");
    let (site, project, file, batch, job) = (w.site, w.project, w.file, w.batch, w.job);
    let json = |v: Value| Body::Json(v);
    let form = |pairs: &[(&str, String)]| Body::Form(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect());
    let sha = "0".repeat(64);
    let report = json!({
        "def": { "name": "接口报表", "tags": ["team"], "columns": [{ "header": "外呼数", "statistic": { "kind": "dials" } }] },
        "projects": [project], "time": { "kind": "today" },
    });
    let rows: Vec<(Method, &'static str, Access, String, Body, Scoped)> = vec![
        (Method::GET, "/", LoggedIn, "/".into(), Body::None, Global),
        (Method::GET, "/static/style.css", Public, "/static/style.css".into(), Body::None, Global),
        (Method::GET, "/static/console.js", Public, "/static/console.js".into(), Body::None, Global),
        (Method::GET, "/static/ui.css", Public, "/static/ui.css".into(), Body::None, Global),
        (Method::GET, "/static/ui.js", Public, "/static/ui.js".into(), Body::None, Global),
        (Method::GET, "/static/echarts.min.js", Public, "/static/echarts.min.js".into(), Body::None, Global),
        (Method::GET, "/healthz", Public, "/healthz".into(), Body::None, Global),
        (Method::GET, "/readyz", Public, "/readyz".into(), Body::None, Global),
        (Method::GET, "/metrics", Public, "/metrics".into(), Body::None, Global),
        (Method::GET, "/lang/{code}", Public, "/lang/en".into(), Body::None, Global),
        (Method::GET, "/login", Public, "/login".into(), Body::None, Global),
        (Method::POST, "/login", Public, "/login".into(), form(&[("username", "nobody".into()), ("password", "x".into())]), Global),
        (Method::POST, "/logout", Public, "/logout".into(), Body::None, Global),
        (Method::GET, "/sites", LoggedIn, "/sites".into(), Body::None, Filtered(SITE_NAME)),
        (Method::POST, "/sites", Admin, "/sites".into(), form(&[("name", "新职场页".into())]), Global),
        (Method::POST, "/sites/{id}/code", Admin, format!("/sites/{site}/code"), Body::None, Hidden),
        (Method::POST, "/sites/{id}/retire", Admin, format!("/sites/{site}/retire"), Body::None, Hidden),
        (Method::GET, "/projects", LoggedIn, "/projects".into(), Body::None, Filtered(PROJECT_NAME)),
        (Method::POST, "/projects", Admin, "/projects".into(), form(&[("category_id", w.category.to_string()), ("name", "页建项目".into())]), Global),
        (Method::POST, "/categories", Admin, "/categories".into(), form(&[("name", "页建分类".into())]), Global),
        (Method::GET, "/projects/{id}", LoggedIn, format!("/projects/{project}"), Body::None, Hidden),
        (Method::POST, "/projects/{id}/files", files, format!("/projects/{project}/files"), Body::Upload(vec![]), Hidden),
        (Method::GET, "/files", files, "/files".into(), Body::None, Filtered(FILE_NAME)),
        (Method::GET, "/files/{id}", files, format!("/files/{file}"), Body::None, Hidden),
        (Method::POST, "/files/{id}/dispatch", files, format!("/files/{file}/dispatch"), form(&[("name", "页面下发".into()), ("priority", "5".into()), (&format!("site_{site}"), "on".into())]), Hidden),
        (Method::GET, "/batches", batches, "/batches".into(), Body::None, Filtered(BATCH_NAME)),
        (Method::GET, "/batches/{id}/records", Access::Module("data.business"), format!("/batches/{batch}/records"), Body::None, Hidden),
        (Method::GET, "/lists", lists, "/lists".into(), Body::None, Global),
        (Method::GET, "/accounts", Access::AnyModule(&["accounts.accounts", "accounts.roles", "accounts.groups"]), "/accounts".into(), Body::None, Global),
        (Method::GET, "/voice", voice, "/voice".into(), Body::None, Global),
        (Method::GET, "/announcements", notices, "/announcements".into(), Body::None, Global),
        (Method::GET, "/monitor", monitor, "/monitor".into(), Body::None, Filtered(SITE_NAME)),
        (Method::GET, "/monitor/sites/{id}", monitor, format!("/monitor/sites/{site}"), Body::None, Hidden),
        (Method::GET, "/api/monitor", monitor, "/api/monitor".into(), Body::None, Filtered(SITE_NAME)),
        (Method::GET, "/api/monitor/sites/{id}", monitor, format!("/api/monitor/sites/{site}"), Body::None, Hidden),
        (Method::GET, "/api/monitor/events", monitor, "/api/monitor/events".into(), Body::None, Filtered(SITE_NAME)),
        (Method::POST, "/api/login", Public, "/api/login".into(), json(json!({ "username": "nobody", "password": "x" })), Global),
        (Method::POST, "/api/logout", Public, "/api/logout".into(), Body::None, Global),
        (Method::GET, "/api/sites", LoggedIn, "/api/sites".into(), Body::None, Filtered(SITE_NAME)),
        (Method::POST, "/api/sites", Admin, "/api/sites".into(), json(json!({ "name": "接口职场" })), Global),
        (Method::POST, "/api/sites/{id}/enrollment-code", Admin, format!("/api/sites/{site}/enrollment-code"), Body::None, Hidden),
        (Method::POST, "/api/sites/{id}/retire", Admin, format!("/api/sites/{site}/retire"), Body::None, Hidden),
        (Method::PUT, "/api/sites/{id}/recording-retention", Admin, format!("/api/sites/{site}/recording-retention"), json(json!({ "recording_retention_days": 90 })), Hidden),
        (Method::GET, "/api/categories", LoggedIn, "/api/categories".into(), Body::None, Global),
        (Method::POST, "/api/categories", Admin, "/api/categories".into(), json(json!({ "name": "接口分类" })), Global),
        (Method::GET, "/api/projects", LoggedIn, "/api/projects".into(), Body::None, Filtered(PROJECT_NAME)),
        (Method::POST, "/api/projects", Admin, "/api/projects".into(), json(json!({ "category_id": w.category, "name": "接口项目" })), Global),
        (Method::POST, "/api/projects/{id}/files", files, format!("/api/projects/{project}/files"), Body::Upload(vec![]), Hidden),
        (Method::GET, "/api/files", files, "/api/files".into(), Body::None, Filtered(FILE_NAME)),
        (Method::GET, "/api/files/{id}", files, format!("/api/files/{file}"), Body::None, Hidden),
        (Method::POST, "/api/files/{id}/dispatch", files, format!("/api/files/{file}/dispatch"), json(json!({ "name": "接口下发", "priority": 5, "site_ids": [site] })), Hidden),
        (Method::GET, "/api/batches", batches, "/api/batches".into(), Body::None, Filtered(BATCH_NAME)),
        (Method::GET, "/api/batches/{id}/records", Access::Module("data.business"), format!("/api/batches/{batch}/records"), Body::None, Hidden),
        (Method::GET, "/api/alarms", LoggedIn, "/api/alarms".into(), Body::None, Global),
        (Method::GET, "/api/sites/{id}/recordings/{sha256}", Access::Module("data.recordings"), format!("/api/sites/{site}/recordings/{sha}"), Body::None, HiddenAbsent),
        (Method::POST, "/api/sites/{id}/recordings/{sha256}/fetch", Access::Module("data.recordings"), format!("/api/sites/{site}/recordings/{sha}/fetch"), Body::None, Hidden),
        (Method::GET, "/api/openapi.json", Public, "/api/openapi.json".into(), Body::None, Global),
        (Method::GET, "/api/modules", LoggedIn, "/api/modules".into(), Body::None, Global),
        (Method::GET, "/api/roles", Access::Module("accounts.roles"), "/api/roles".into(), Body::None, Global),
        (Method::POST, "/api/roles", Admin, "/api/roles".into(), json(json!({ "name": "接口角色", "modules": [] })), Global),
        (Method::GET, "/api/groups", Access::Module("accounts.groups"), "/api/groups".into(), Body::None, Global),
        (Method::POST, "/api/groups", Admin, "/api/groups".into(), json(json!({ "name": "接口分组" })), Global),
        (Method::GET, "/api/accounts", Access::Module("accounts.accounts"), "/api/accounts".into(), Body::None, Global),
        (Method::POST, "/api/accounts", Admin, "/api/accounts".into(), json(json!({ "username": "api_made", "password": "api-made-123", "role_id": 1 })), Global),
        (Method::GET, "/api/projects/{id}", LoggedIn, format!("/api/projects/{project}"), Body::None, Hidden),
        (Method::PUT, "/api/projects/{id}", settings, format!("/api/projects/{project}"), json(w.edit.clone()), Hidden),
        (Method::PUT, "/api/projects/{id}/sites", Admin, format!("/api/projects/{project}/sites"), json(json!({ "site_ids": [site, w.other_site] })), Hidden),
        (Method::GET, "/api/projects/{id}/admins", LoggedIn, format!("/api/projects/{project}/admins"), Body::None, Hidden),
        (Method::PUT, "/api/projects/{id}/admins", Admin, format!("/api/projects/{project}/admins"), json(json!({ "admins": [{ "account_id": w.mine_account, "site_ids": [site] }, { "account_id": w.nomod_account, "site_ids": [site] }] })), Hidden),
        (Method::GET, "/api/projects/{id}/attribution", LoggedIn, format!("/api/projects/{project}/attribution"), Body::None, Hidden),
        (Method::PUT, "/api/projects/{id}/attribution", Admin, format!("/api/projects/{project}/attribution"), json(json!({ "rules": [] })), Hidden),
        (Method::POST, "/api/projects/{id}/imports", files, format!("/api/projects/{project}/imports"), Body::Upload(vec![]), Hidden),
        (Method::GET, "/api/imports/{job}", files, format!("/api/imports/{job}"), Body::None, HiddenAbsent),
        (Method::GET, "/api/files/{id}/bad-rows.xlsx", files, format!("/api/files/{file}/bad-rows.xlsx"), Body::None, Hidden),
        (Method::GET, "/api/files/{id}/download", files, format!("/api/files/{file}/download"), Body::None, Hidden),
        (Method::POST, "/api/files/{id}/delete", files, format!("/api/files/{file}/delete"), Body::None, Hidden),
        (Method::POST, "/api/files/{id}/remark", files, format!("/api/files/{file}/remark"), json(json!({ "remark": "备注" })), Hidden),
        (Method::POST, "/api/files/{id}/filter", files, format!("/api/files/{file}/filter"), json(json!({ "valid_days": 7 })), Hidden),
        (Method::GET, "/api/filter-settings", files, "/api/filter-settings".into(), Body::None, Global),
        (Method::POST, "/api/batches/{id}/priority", batches, format!("/api/batches/{batch}/priority"), json(json!({ "priority": 6 })), Hidden),
        (Method::POST, "/api/batches/{id}/delete", batches, format!("/api/batches/{batch}/delete"), Body::None, Hidden),
        (Method::GET, "/api/batches/{id}/numbers", batches, format!("/api/batches/{batch}/numbers"), Body::None, Hidden),
        // The world's batch goes to one site, so it is no pool: every caller the module admits
        // gets 404 (the pool's own behaviour is `shared_pool`'s); the guard still answers first.
        (Method::GET, "/api/batches/{id}/pool", batches, format!("/api/batches/{batch}/pool"), Body::None, HiddenAbsent),
        (Method::PUT, "/api/batches/{id}/pool/settings", batches, format!("/api/batches/{batch}/pool/settings"), json(json!({ "lease_hours": 2.0, "lease_lifetime_s": 86400, "min_block": 200 })), HiddenAbsent),
        // A lease the batch does not have (the whole batch would be recovered, which
        // `exclusive_recovery` tests): 404 to every caller.
        (Method::POST, "/api/batches/{id}/recover", batches, format!("/api/batches/{batch}/recover"), json(json!({ "lease_id": 999999 })), HiddenAbsent),
        (Method::POST, "/api/batches/{id}/reclaim", batches, format!("/api/batches/{batch}/reclaim"), Body::None, HiddenAbsent),
        (Method::POST, "/api/batches/{id}/redispatch", batches, format!("/api/batches/{batch}/redispatch"), json(json!({ "site_id": 1 })), HiddenAbsent),
        (Method::GET, "/batches/{id}/pool", batches, format!("/batches/{batch}/pool"), Body::None, HiddenAbsent),
        (Method::POST, "/api/one-click", batches, "/api/one-click".into(), json(json!({ "action": "pause" })), Shows("\"changed\":0")),
        (Method::GET, "/api/lists/{list}", lists, "/api/lists/black".into(), Body::None, Global),
        (Method::POST, "/api/lists/{list}", lists, "/api/lists/black".into(), json(json!({ "phones": ["13900000001"] })), Global),
        (Method::POST, "/api/lists/remove", lists, "/api/lists/remove".into(), json(json!({ "phone": "13900000001" })), Global),
        (Method::POST, "/api/lists/{list}/import", lists, "/api/lists/black/import".into(), Body::Upload(vec![]), Global),
        (Method::PUT, "/api/projects/{id}/settings", settings, format!("/api/projects/{project}/settings"), json(json!({})), Hidden),
        (Method::GET, "/api/link-settings", Admin, "/api/link-settings".into(), Body::None, Global),
        (Method::PUT, "/api/link-settings", Admin, "/api/link-settings".into(), json(json!({ "recording_upload_bytes_per_sec": 64000 })), Global),
        (Method::GET, "/api/voice-files", voice, "/api/voice-files".into(), Body::None, Global),
        (Method::POST, "/api/voice-files", voice, "/api/voice-files".into(), Body::Upload(vec![("name".into(), "等待音乐".into()), ("kind".into(), "hold_music".into())]), Global),
        (Method::POST, "/api/voice-files/{id}/delete", voice, "/api/voice-files/999/delete".into(), Body::None, Global),
        (Method::GET, "/api/announcements", notices, "/api/announcements".into(), Body::None, Global),
        (Method::POST, "/api/announcements", notices, "/api/announcements".into(), json(json!({ "title": "通知", "body": "" })), Global),
        (Method::POST, "/api/announcements/{id}", notices, "/api/announcements/999".into(), json(json!({ "title": "通知", "body": "" })), Global),
        (Method::POST, "/api/announcements/{id}/withdraw", notices, "/api/announcements/999/withdraw".into(), Body::None, Global),
        (Method::GET, "/data/customers", customers, format!("/data/customers?project={project}"), Body::None, Hidden),
        (Method::GET, "/data/records", business, format!("/data/records?project={project}&f.x="), Body::None, Hidden),
        (Method::GET, "/api/projects/{id}/customer-data", customers, format!("/api/projects/{project}/customer-data?site={site}"), Body::None, Hidden),
        (Method::GET, "/api/projects/{id}/customer-data/export", customers, format!("/api/projects/{project}/customer-data/export"), Body::None, Hidden),
        (Method::GET, "/api/projects/{id}/business-data", business, format!("/api/projects/{project}/business-data?limit=5"), Body::None, Hidden),
        (Method::GET, "/api/projects/{id}/business-data/export", business, format!("/api/projects/{project}/business-data/export"), Body::None, Hidden),
        (Method::PUT, "/api/projects/{id}/filterable", settings, format!("/api/projects/{project}/filterable"), json(json!({ "customer": [], "record": [] })), Hidden),
        (Method::GET, "/static/reports.js", Public, "/static/reports.js".into(), Body::None, Global),
        (Method::GET, "/reports", reports, "/reports".into(), Body::None, Filtered(PROJECT_NAME)),
        (Method::GET, "/reports/projects/{id}", reports, format!("/reports/projects/{project}"), Body::None, Hidden),
        (Method::GET, "/reports/projects/{id}/board", reports, format!("/reports/projects/{project}/board"), Body::None, Hidden),
        (Method::GET, "/reports/categories/{id}", reports, format!("/reports/categories/{}", w.category), Body::None, Filtered(PROJECT_NAME)),
        (Method::GET, "/reports/overall", reports, "/reports/overall".into(), Body::None, Filtered(PROJECT_NAME)),
        (Method::GET, "/reports/running", reports, "/reports/running".into(), Body::None, Filtered(PROJECT_NAME)),
        (Method::POST, "/api/reports/run", reports, "/api/reports/run".into(), json(report.clone()), Hidden),
        (Method::POST, "/api/reports/export", reports, "/api/reports/export".into(), json(report.clone()), Hidden),
        (Method::GET, "/api/reports/projects/{id}/choices", reports, format!("/api/reports/projects/{project}/choices"), Body::None, Hidden),
        (Method::GET, "/api/projects/{id}/reports", reports.clone(), format!("/api/projects/{project}/reports"), Body::None, Hidden),
        (Method::POST, "/api/projects/{id}/reports", reports.clone(), format!("/api/projects/{project}/reports"), json(report_def.clone()), Hidden),
        (Method::POST, "/api/projects/{id}/reports/preview", reports.clone(), format!("/api/projects/{project}/reports/preview"), json(json!({ "definition": report_def.clone(), "filter": preview.clone() })), Hidden),
        (Method::GET, "/api/projects/{id}/reports/{report}", reports.clone(), format!("/api/projects/{project}/reports/999"), Body::None, HiddenAbsent),
        (Method::PUT, "/api/projects/{id}/reports/{report}", reports.clone(), format!("/api/projects/{project}/reports/999"), json(report_def.clone()), HiddenAbsent),
        (Method::POST, "/api/projects/{id}/reports/{report}/delete", reports.clone(), format!("/api/projects/{project}/reports/999/delete"), Body::None, HiddenAbsent),
        (Method::POST, "/api/projects/{id}/reports/{report}/preview", reports, format!("/api/projects/{project}/reports/999/preview"), json(preview), HiddenAbsent),
        // Call records: the list shows the call's batch to its own site only; the exports
        // are answered to any holder of the module, filtered by its scope (checked in the
        // end-to-end test, which opens them).
        (Method::GET, "/calls", calls, "/calls".into(), Body::None, Filtered(BATCH_NAME)),
        (Method::GET, "/calls/{site}/{attempt}", calls, format!("/calls/{site}/{}", w.attempt), Body::None, Hidden),
        (Method::GET, "/static/calls.js", Public, "/static/calls.js".into(), Body::None, Global),
        (Method::GET, "/api/calls", calls, "/api/calls".into(), Body::None, Filtered(BATCH_NAME)),
        (Method::GET, "/api/calls/export.xlsx", calls, "/api/calls/export.xlsx".into(), Body::None, Global),
        (Method::GET, "/api/calls/recordings.zip", recordings, "/api/calls/recordings.zip".into(), Body::None, Global),
        (Method::GET, "/api/sites/{id}/calls/{attempt}", calls, format!("/api/sites/{site}/calls/{}", w.attempt), Body::None, Hidden),
        (Method::GET, "/api/sites/{id}/calls/{attempt}/recording", recordings, format!("/api/sites/{site}/calls/{}/recording", w.attempt), Body::None, Hidden),
        (Method::POST, "/api/sites/{id}/calls/{attempt}/recording/fetch", recordings, format!("/api/sites/{site}/calls/{}/recording/fetch", w.attempt), Body::None, Hidden),
        // Edit after create (`web::edit`, `web::account_edit`).
        (Method::GET, "/static/edit.js", Public, "/static/edit.js".into(), Body::None, Global),
        (Method::GET, "/projects/{id}/edit", settings, format!("/projects/{project}/edit"), Body::None, Hidden),
        (Method::PUT, "/api/projects/{id}/definition", settings, format!("/api/projects/{project}/definition"), json(json!({ "name": PROJECT_NAME, "script": "编辑话术" })), Hidden),
        (Method::POST, "/api/projects/{id}/archive", Admin, format!("/api/projects/{project}/archive"), json(json!({ "archived": false })), Hidden),
        (Method::GET, "/batches/{id}/numbers", batches, format!("/batches/{batch}/numbers?q=0001"), Body::None, Hidden),
        (Method::GET, "/api/batches/{id}/number-page", batches, format!("/api/batches/{batch}/number-page"), Body::None, Hidden),
        (Method::GET, "/accounts/{id}/edit", Admin, format!("/accounts/{}/edit", w.spare_account), Body::None, Global),
        (Method::GET, "/roles/{id}/edit", Admin, format!("/roles/{}/edit", w.spare_role), Body::None, Global),
        (Method::PUT, "/api/accounts/{id}", Admin, format!("/api/accounts/{}", w.spare_account), json(json!({ "role_id": w.spare_role, "site_ids": [site] })), Global),
        (Method::POST, "/api/accounts/{id}/disabled", Admin, format!("/api/accounts/{}/disabled", w.spare_account), json(json!({ "disabled": true })), Global),
        (Method::POST, "/api/accounts/{id}/password", Admin, format!("/api/accounts/{}/password", w.spare_account), Body::None, Global),
        (Method::PUT, "/api/roles/{id}", Admin, format!("/api/roles/{}", w.spare_role), json(json!({ "name": "备用角色", "modules": ["reports"] })), Global),
    ];
    let mut map = BTreeMap::new();
    for (method, pattern, access, path, body, scoped) in rows {
        let duplicate = map.insert((method.clone(), pattern), Expect { access, path, body, scoped });
        assert!(duplicate.is_none(), "{method} {pattern} is listed twice in the test");
    }
    map
}

/// Two sites; a project at both with a file and a batch at `site`; sub-admins.
async fn world(h: &Harness, admin: &Client) -> Result<World> {
    let site = id(&admin.json(Method::POST, "/api/sites", json!({ "name": SITE_NAME })).await?);
    let other_site = id(&admin.json(Method::POST, "/api/sites", json!({ "name": "成都二号职场" })).await?);
    let category = id(&admin.json(Method::POST, "/api/categories", json!({ "name": "信用卡" })).await?);
    let project = id(&admin.json(Method::POST, "/api/projects", json!({ "category_id": category, "name": PROJECT_NAME })).await?);
    admin.json(Method::PUT, &format!("/api/projects/{project}/sites"), json!({ "site_ids": [site, other_site] })).await?;
    let form = Form::new().part("file", Part::bytes(sheet(&["13800000001", "13800000002"])).file_name(format!("{FILE_NAME}.xlsx")));
    let response = admin.http.post(format!("{}/api/projects/{project}/files", h.base)).multipart(form).send().await?;
    ensure!(response.status().is_success(), "import: {}", response.status());
    let file = response.json::<Value>().await?["file_id"].as_i64().context("file id")?;
    let out = admin.json(Method::POST, &format!("/api/files/{file}/dispatch"), json!({ "name": BATCH_NAME, "priority": 5, "site_ids": [site] })).await?;
    let batch = out["batch_ids"][0].as_i64().context("batch id")?;
    let form = Form::new().part("file", Part::bytes(sheet(&["13800000003"])).file_name("后台.xlsx"));
    let response = admin.http.post(format!("{}/api/projects/{project}/imports", h.base)).multipart(form).send().await?;
    let job = response.json::<Value>().await?["job_id"].as_u64().context("job id")?;

    let modules: Vec<Value> = admin.json(Method::GET, "/api/modules", json!(null)).await?.as_array().cloned().unwrap_or_default();
    let every: Vec<Value> = modules.iter().map(|m| m["key"].clone()).collect();
    let all = id(&admin.json(Method::POST, "/api/roles", json!({ "name": "全模块", "modules": every })).await?);
    let none = id(&admin.json(Method::POST, "/api/roles", json!({ "name": "无模块", "modules": [] })).await?);
    let account = |name: &str, role: i64, scope: i64| json!({ "username": name, "password": "sub-secret-1", "role_id": role, "site_ids": [scope] });
    let mine_account = id(&admin.json(Method::POST, "/api/accounts", account("mine", all, site)).await?);
    let nomod_account = id(&admin.json(Method::POST, "/api/accounts", account("nomod", none, site)).await?);
    let other_account = id(&admin.json(Method::POST, "/api/accounts", account("other", all, other_site)).await?);
    // `mine` and `nomod` administer the project at its site; `other` administers another
    // project at its own site, so it has projects but not this one.
    admin
        .json(Method::PUT, &format!("/api/projects/{project}/admins"), json!({ "admins": [{ "account_id": mine_account, "site_ids": [site] }, { "account_id": nomod_account, "site_ids": [site] }] }))
        .await?;
    let elsewhere = id(&admin.json(Method::POST, "/api/projects", json!({ "category_id": category, "name": "成都项目" })).await?);
    admin.json(Method::PUT, &format!("/api/projects/{elsewhere}/sites"), json!({ "site_ids": [other_site] })).await?;
    admin.json(Method::PUT, &format!("/api/projects/{elsewhere}/admins"), json!({ "admins": [{ "account_id": other_account, "site_ids": [other_site] }] })).await?;

    let current = admin.json(Method::GET, &format!("/api/projects/{project}"), json!(null)).await?;
    let edit = json!({
        "name": current["name"], "script": "新话术", "hide_middle_digits": current["hide_middle_digits"],
        "customer_fields": current["customer_fields"], "record_fields": current["record_fields"],
        "settings": current["settings"], "phone_mode": current["phone_mode"],
    });
    let attempt = seed_call(h, site, batch)?;
    let spare_role = id(&admin.json(Method::POST, "/api/roles", json!({ "name": "备用角色", "modules": [] })).await?);
    let spare_account = id(&admin.json(Method::POST, "/api/accounts", account("spare", spare_role, site)).await?);
    Ok(World { site, other_site, category, project, file, batch, job, edit, mine_account, nomod_account, attempt, spare_account, spare_role })
}

/// A call the site placed from the batch, stored as the link stores it, with its recording.
fn seed_call(h: &Harness, site: i64, batch: i64) -> Result<i64> {
    use sync_link::HubStore;
    use sync_protocol::{AttemptKind, CallAttempt, DownEvent, Outcome, UpEntry, UpEvent};
    let store = &h.hub().store;
    let row = store
        .down_log(site, 0, 10_000)?
        .into_iter()
        .find_map(|e| match e.event {
            DownEvent::BatchChunk(chunk) => chunk.rows.first().map(|r| r.row_id),
            _ => None,
        })
        .context("a row went down")?;
    let wav = b"RIFF\x24\x00\x00\x00WAVEfmt a recording stand-in".to_vec();
    let sha: [u8; 32] = {
        use sha2::Digest;
        sha2::Sha256::digest(&wav).into()
    };
    let hub_store: &dyn HubStore = store.as_ref();
    hub_store.recording_append(site as u64, &sha, 0, &wav)?;
    hub_store.recording_finish(site as u64, &sha)?;
    let attempt = CallAttempt {
        attempt_id: 1, batch_id: batch as u64, row_id: row, started_at: 1_700_000_000, answered_at: Some(1_700_000_005),
        ended_at: 1_700_000_060, outcome: Outcome::Connected, hangup_side: None, agent: Some("8001".into()), talk_seconds: 55,
        recording_sha256: Some(sha.iter().map(|b| format!("{b:02x}")).collect()), kind: AttemptKind::Predictive,
    };
    store.apply_up(site as u64, &UpEntry { epoch: 1, seq: 1, event: UpEvent::CallAttempt(attempt) })?;
    Ok(1)
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

#[tokio::test]
async fn every_route_is_guarded_as_its_rule_says() -> Result<()> {
    let h = Harness::launch().await?;
    let admin = Client::login(&h.base, "admin", &h.password).await?;
    let w = world(&h, &admin).await?;
    let expect = expectations(&w);
    let table = hq_hub::routes();

    // The test knows every route, and the table's rule is the one the test expects.
    let mut failures = Vec::new();
    for route in &table {
        match expect.get(&(route.method.clone(), route.path)) {
            None => failures.push(format!("{} {} has no expectation in this test: add one", route.method, route.path)),
            Some(e) if e.access != route.access => {
                failures.push(format!("{} {} is registered {:?}, the test expects {:?}", route.method, route.path, route.access, e.access))
            }
            Some(_) => {}
        }
    }
    for (method, pattern) in expect.keys() {
        if !table.iter().any(|r| r.method == *method && r.path == *pattern) {
            failures.push(format!("{method} {pattern} is expected but not routed"));
        }
    }
    if !failures.is_empty() {
        bail!("route table and test disagree:\n{}", failures.join("\n"));
    }

    let anonymous = Client::new(&h.base, None)?;
    let nomod = Client::login(&h.base, "nomod", "sub-secret-1").await?;
    let other = Client::login(&h.base, "other", "sub-secret-1").await?;
    let mine = Client::login(&h.base, "mine", "sub-secret-1").await?;
    // Reads first, then changes, so that a deletion does not hide what a later read checks.
    let mut order: Vec<_> = table.iter().filter(|r| r.access != Access::Public).collect();
    order.sort_by_key(|r| r.method != Method::GET);
    let mut checked = 0;
    for (who, client) in [("no session", &anonymous), ("no module", &nomod), ("other site", &other), ("own site", &mine), ("admin", &admin)] {
        for route in &order {
            let e = &expect[&(route.method.clone(), route.path)];
            let answer = client.send(&route.method, &e.path, &e.body, None).await?;
            let what = format!("{who}: {} {} → {} {}", route.method, e.path, answer.status, answer.text.chars().take(200).collect::<String>());
            ensure!(!answer.status.is_server_error(), "{what}");
            let forbidden = answer.status == StatusCode::FORBIDDEN;
            let logged_out = answer.status == StatusCode::UNAUTHORIZED
                || (answer.status == StatusCode::SEE_OTHER && answer.headers.get(LOCATION).is_some_and(|l| l == "/login"));
            ensure!(who == "no session" || !logged_out, "{what}: a session was not recognised");
            match who {
                "no session" => {
                    let expected = if is_api(&e.path) { answer.status == StatusCode::UNAUTHORIZED } else { logged_out };
                    ensure!(expected, "{what}: 401 (API) or a redirect to /login (page) expected");
                }
                "no module" => match e.access {
                    Access::LoggedIn => ensure!(!forbidden, "{what}: any logged-in account may call it"),
                    _ => ensure!(forbidden, "{what}: a role without the module must get 403"),
                },
                "other site" => match (&e.access, &e.scoped) {
                    (Access::Admin, _) => ensure!(forbidden, "{what}: admins only"),
                    (_, Scoped::Hidden | Scoped::HiddenAbsent) => ensure!(
                        matches!(answer.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
                        "{what}: another site's row must answer 403 or 404"
                    ),
                    (_, Scoped::Filtered(marker)) => {
                        ensure!(answer.status.is_success() && !answer.text.contains(marker), "{what}: must be answered without {marker}")
                    }
                    (_, Scoped::Shows(text)) => ensure!(answer.status.is_success() && answer.text.contains(text), "{what}: must show {text}"),
                    (_, Scoped::Global) => ensure!(!forbidden, "{what}: the module is granted"),
                },
                "own site" => match (&e.access, &e.scoped) {
                    (Access::Admin, _) => ensure!(forbidden, "{what}: admins only"),
                    (_, Scoped::Filtered(marker)) => {
                        ensure!(answer.status.is_success() && answer.text.contains(marker), "{what}: its own site's {marker} must show")
                    }
                    (_, Scoped::Hidden) if route.method == Method::GET => {
                        ensure!(answer.status.is_success(), "{what}: its own site's row must be readable")
                    }
                    _ => ensure!(!forbidden, "{what}: its own data"),
                },
                _ => ensure!(!forbidden, "{what}: the admin may call every route"),
            }
            checked += 1;
        }
    }
    ensure!(checked == order.len() * 5);

    // Public routes answer without a session.
    for route in table.iter().filter(|r| r.access == Access::Public && r.method == Method::GET) {
        let e = &expect[&(route.method.clone(), route.path)];
        let answer = anonymous.send(&route.method, &e.path, &e.body, None).await?;
        ensure!(answer.status.is_success() || answer.status.is_redirection(), "public {} → {}", e.path, answer.status);
    }
    h.stop().await
}

#[tokio::test]
async fn foreign_origins_are_refused_on_every_state_changing_route() -> Result<()> {
    let h = Harness::launch().await?;
    let admin = Client::login(&h.base, "admin", &h.password).await?;
    let w = world(&h, &admin).await?;
    let expect = expectations(&w);
    let sites_before = admin.json(Method::GET, "/api/sites", json!(null)).await?;
    let own_origin = h.base.clone();
    let changing: Vec<_> = hq_hub::routes().into_iter().filter(|r| r.method != Method::GET).collect();
    ensure!(changing.len() > 30, "{} state-changing routes", changing.len());
    for route in &changing {
        let e = expect.get(&(route.method.clone(), route.path)).with_context(|| format!("{} {} not in the test", route.method, route.path))?;
        for origin in ["http://evil.example", "null", "http://127.0.0.1:1"] {
            let answer = admin.send(&route.method, &e.path, &e.body, Some(origin)).await?;
            ensure!(answer.status == StatusCode::FORBIDDEN, "{} {} from {origin}: {}", route.method, e.path, answer.status);
            let json = answer.headers.get("content-type").is_some_and(|t| t.to_str().unwrap_or("").contains("json"));
            ensure!(json == is_api(&e.path), "{} {}: JSON for the API, a page otherwise", route.method, e.path);
            if !json {
                ensure!(answer.text.contains("其他网站") || answer.text.contains("无来源"), "the page says why in Chinese: {}", answer.text);
            }
        }
    }
    ensure!(admin.json(Method::GET, "/api/sites", json!(null)).await? == sites_before, "nothing was created");
    // The console's own origin passes.
    let made = admin.send(&Method::POST, "/api/sites", &Body::Json(json!({ "name": "同源职场" })), Some(&own_origin)).await?;
    ensure!(made.status == StatusCode::OK, "same origin: {} {}", made.status, made.text);
    h.stop().await
}

fn security_headers(what: &str, headers: &HeaderMap) -> Result<()> {
    let csp = headers.get(CONTENT_SECURITY_POLICY).and_then(|v| v.to_str().ok()).unwrap_or_default();
    ensure!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"), "{what}: CSP {csp:?}");
    ensure!(headers.get(X_CONTENT_TYPE_OPTIONS).is_some_and(|v| v == "nosniff"), "{what}: nosniff");
    ensure!(headers.get(REFERRER_POLICY).is_some(), "{what}: Referrer-Policy");
    Ok(())
}

#[tokio::test]
async fn every_page_has_the_security_headers_and_no_inline_script() -> Result<()> {
    let h = Harness::launch().await?;
    let admin = Client::login(&h.base, "admin", &h.password).await?;
    let w = world(&h, &admin).await?;
    let expect = expectations(&w);
    let anonymous = Client::new(&h.base, None)?;
    for route in hq_hub::routes().iter().filter(|r| r.method == Method::GET) {
        let e = &expect[&(route.method.clone(), route.path)];
        for (who, client) in [("admin", &admin), ("no session", &anonymous)] {
            let answer = client.send(&route.method, &e.path, &e.body, None).await?;
            security_headers(&format!("{who} GET {}", e.path), &answer.headers)?;
            let html = answer.headers.get("content-type").is_some_and(|t| t.to_str().unwrap_or("").starts_with("text/html"));
            if html {
                let lower = answer.text.to_lowercase();
                ensure!(!lower.contains("<script>") && !lower.contains(" onclick=") && !lower.contains(" onchange=") && !lower.contains(" onsubmit="), "{}: inline script", e.path);
            }
        }
    }
    let missing = anonymous.send(&Method::GET, "/no-such-page", &Body::None, None).await?;
    security_headers("a 404", &missing.headers)?;
    h.stop().await
}

#[tokio::test]
async fn a_burst_of_bad_logins_is_slowed_but_the_real_user_gets_in_from_elsewhere() -> Result<()> {
    let h = Harness::launch().await?;
    // The attacker speaks from 127.0.0.2 (the whole of 127/8 is this host); the admin from
    // 127.0.0.1.
    let attacker = Client::new(&h.base, Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))))?;
    let mut refused = 0;
    let mut wrong = 0;
    for i in 0..12 {
        let answer = attacker.send(&Method::POST, "/api/login", &Body::Json(json!({ "username": "admin", "password": format!("guess-{i}") })), None).await?;
        match answer.status {
            StatusCode::UNAUTHORIZED => wrong += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                refused += 1;
                let wait: u64 = answer.headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
                ensure!(wait >= 1, "Retry-After says how long: {:?}", answer.headers.get("retry-after"));
            }
            other => bail!("attempt {i}: {other} {}", answer.text),
        }
    }
    ensure!(wrong == 5 && refused == 7, "five guesses, then held back: {wrong} checked, {refused} refused");
    // Even the right password is held back from the attacker's address while it waits.
    let answer = attacker.send(&Method::POST, "/api/login", &Body::Json(json!({ "username": "admin", "password": h.password })), None).await?;
    ensure!(answer.status == StatusCode::TOO_MANY_REQUESTS, "{}", answer.status);
    // The page login from there says so, in Chinese.
    let page = attacker.send(&Method::POST, "/login", &Body::Form(vec![("username".into(), "admin".into()), ("password".into(), "x".into())]), None).await?;
    ensure!(page.status == StatusCode::TOO_MANY_REQUESTS && page.text.contains("登录失败次数过多"), "{} {}", page.status, page.text);
    // The admin at their own desk logs in at once.
    let admin = Client::login(&h.base, "admin", &h.password).await?;
    admin.json(Method::GET, "/api/sites", json!(null)).await?;
    // An unknown user is refused like a wrong password.
    let answer = admin.send(&Method::POST, "/api/login", &Body::Json(json!({ "username": "nobody", "password": "x" })), None).await?;
    ensure!(answer.status == StatusCode::UNAUTHORIZED && answer.text.contains("账号或密码错误"), "{}", answer.text);
    h.stop().await
}

#[tokio::test]
async fn over_long_fields_are_refused_with_their_limit() -> Result<()> {
    let h = Harness::launch().await?;
    let admin = Client::login(&h.base, "admin", &h.password).await?;
    let w = world(&h, &admin).await?;
    let long = |n: usize| "长".repeat(n);
    let cases: Vec<(Method, String, Body, &str)> = vec![
        (Method::POST, "/api/sites".into(), Body::Json(json!({ "name": long(153) })), "Name: at most 100 characters (got 153)"),
        (Method::POST, "/sites".into(), Body::Form(vec![("name".into(), long(153))]), "名称最多 100 个字符（现为 153 个）"),
        (Method::POST, "/categories".into(), Body::Form(vec![("name".into(), long(101))]), "名称最多 100 个字符（现为 101 个）"),
        (Method::POST, "/api/roles".into(), Body::Json(json!({ "name": long(120), "modules": [] })), "Name: at most 100 characters (got 120)"),
        (Method::POST, "/api/groups".into(), Body::Json(json!({ "name": long(120) })), "Name: at most 100 characters (got 120)"),
        (
            Method::POST,
            "/api/projects".into(),
            Body::Json(json!({ "category_id": w.category, "name": "话术过长", "script": long(20_001) })),
            "Script: at most 20000 characters (got 20001)",
        ),
        (
            Method::POST,
            "/api/projects".into(),
            Body::Json(json!({ "category_id": w.category, "name": "标题过长", "customer_fields": [{ "key": "k", "title": long(101), "kind": "text" }] })),
            "customer field 1 title: at most 100 characters (got 101)",
        ),
        (
            Method::POST,
            "/projects".into(),
            Body::Form(vec![("category_id".into(), w.category.to_string()), ("name".into(), "x".into()), ("cf_key_0".into(), "k".into()), ("cf_title_0".into(), long(101))]),
            "客户字段第 1 项的标题最多 100 个字符（现为 101 个）",
        ),
        (
            Method::POST,
            format!("/api/files/{}/dispatch", w.file),
            Body::Json(json!({ "name": "x", "priority": 5, "site_ids": [w.site], "description": long(501) })),
            "Description: at most 500 characters (got 501)",
        ),
        (
            Method::POST,
            format!("/files/{}/dispatch", w.file),
            Body::Form(vec![("name".into(), long(101)), ("priority".into(), "5".into()), (format!("site_{}", w.site), "on".into())]),
            "任务名称最多 100 个字符（现为 101 个）",
        ),
        (Method::POST, format!("/api/files/{}/remark", w.file), Body::Json(json!({ "remark": long(201) })), "Remark: at most 200 characters (got 201)"),
        (Method::POST, "/api/lists/black".into(), Body::Json(json!({ "phones": ["13900000002"], "note": long(201) })), "Note: at most 200 characters (got 201)"),
        (
            Method::POST,
            "/api/accounts".into(),
            Body::Json(json!({ "username": "x".repeat(65), "password": "long-enough-1", "role_id": 1 })),
            "Username: at most 64 characters (got 65)",
        ),
        (Method::POST, "/api/login".into(), Body::Json(json!({ "username": "admin", "password": "p".repeat(129) })), "Password: at most 128 characters (got 129)"),
        (
            Method::PUT,
            format!("/api/projects/{}/attribution", w.project),
            Body::Json(json!({ "rules": [{ "field_key": "name", "value": long(201), "site_id": w.site, "agent": "" }] })),
            "rule 1 value: at most 200 characters (got 201)",
        ),
    ];
    for (method, path, body, message) in cases {
        // The API's cases read in English, naming fields as the English page does; the
        // pages' in Chinese.
        let lang = if is_api(&path) { "/lang/en" } else { "/lang/zh" };
        admin.send(&Method::GET, lang, &Body::None, None).await?;
        let answer = admin.send(&method, &path, &body, None).await?;
        ensure!(answer.status == StatusCode::BAD_REQUEST, "{method} {path}: {} {}", answer.status, answer.text);
        ensure!(answer.text.contains(message), "{method} {path}: {message:?} not in {}", answer.text);
    }
    h.stop().await
}

/// The phones of a downloaded workbook's first sheet (below the header row).
fn downloaded_phones(bytes: Vec<u8>) -> Result<Vec<String>> {
    use calamine::{Reader, Xlsx};
    let mut workbook: Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes))?;
    let range = workbook.worksheet_range_at(0).context("a sheet")??;
    Ok(range.rows().skip(1).map(|row| row[0].to_string()).collect())
}

async fn download(client: &Client, file: i64) -> Result<Vec<u8>> {
    let response = client.http.get(format!("{}/api/files/{file}/download", client.base)).send().await?;
    ensure!(response.status() == StatusCode::OK, "download {file}: {}", response.status());
    Ok(response.bytes().await?.to_vec())
}

/// A sub-admin who sees the project at one of its sites downloads only the rows dispatched
/// to that site: not another site's customers, not rows never dispatched. The admin gets the
/// file as uploaded.
#[tokio::test]
async fn a_file_download_holds_only_rows_of_the_callers_sites() -> Result<()> {
    let h = Harness::launch().await?;
    let admin = Client::login(&h.base, "admin", &h.password).await?;
    let w = world(&h, &admin).await?;
    let upload = |phones: &'static [&'static str], name: &'static str| {
        let admin = admin.clone();
        let base = h.base.clone();
        async move {
            let form = Form::new().part("file", Part::bytes(sheet(phones)).file_name(name));
            let response = admin.http.post(format!("{base}/api/projects/{}/files", w.project)).multipart(form).send().await?;
            ensure!(response.status().is_success(), "import: {}", response.status());
            response.json::<Value>().await?["file_id"].as_i64().context("file id")
        }
    };
    let elsewhere = upload(&["13900000011", "13900000012"], "成都名单.xlsx").await?;
    admin.json(Method::POST, &format!("/api/files/{elsewhere}/dispatch"), json!({ "name": "成都批次", "priority": 5, "site_ids": [w.other_site] })).await?;
    let undispatched = upload(&["13900000021"], "未下发.xlsx").await?;

    let mine = Client::login(&h.base, "mine", "sub-secret-1").await?;
    assert_eq!(downloaded_phones(download(&mine, w.file).await?)?, ["13800000001", "13800000002"]);
    assert!(downloaded_phones(download(&mine, elsewhere).await?)?.is_empty(), "another site's rows were handed out");
    assert!(downloaded_phones(download(&mine, undispatched).await?)?.is_empty(), "rows dispatched nowhere were handed out");
    assert_eq!(downloaded_phones(download(&admin, elsewhere).await?)?, ["13900000011", "13900000012"]);
    h.stop().await
}
