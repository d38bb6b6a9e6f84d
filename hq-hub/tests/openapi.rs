//! The JSON API says what it does, against a hub running in-process on 127.0.0.1:0 with its
//! real SQLite store:
//!
//! - the OpenAPI document lists exactly the route table's `/api` routes with their methods
//!   (no more, no less), each with the errors its access rule implies, all in the one error
//!   shape, and the fields the console relies on (data scope, phone mode, dispatch kinds,
//!   token length, …);
//! - every GET `/api` route of the table, called as the admin on a seeded hub, answers what
//!   the document's schema for that answer says, with objects closed: a field a handler
//!   sends that its type's schema does not list fails the test; so do the state-changing
//!   routes whose answers the console's script shows (enrollment code, attribution, one-click,
//!   list edits and imports);
//! - malformed bodies (bad JSON, not JSON, wrong shape), a bad path id, a wrong method, an
//!   unknown `/api` route and a broken upload each get the JSON error, in the caller's
//!   language.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use reqwest::header::CONTENT_TYPE;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use rust_xlsxwriter::Workbook;
use serde_json::{json, Map, Value};
use sync_link::HubStore;
use sync_protocol::{AttemptKind, BusinessRecord, CallAttempt, DownEvent, Outcome, UpEntry, UpEvent};

use hq_hub::Access;
use common::TestHub;

mod common;

/// Logged in as the admin.
struct Admin {
    /// Holds the session (cookie store).
    http: reqwest::Client,
    /// The admin's session cookie, `hq_session=…`.
    session: String,
}

type Harness = TestHub<Admin>;

impl Harness {
    async fn start() -> Result<Harness> {
        let hq = TestHub::launch().await?;
        let http = common::cookie_client(Duration::from_secs(30))?;
        let login = http.post(format!("{}/api/login", hq.base)).json(&json!({ "username": "admin", "password": hq.password })).send().await?;
        ensure!(login.status() == StatusCode::OK, "login: {}", login.status());
        let session = login
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.split(';').next().filter(|pair| pair.starts_with("hq_session=")))
            .context("the login sets hq_session")?
            .to_string();
        Ok(hq.with(Admin { http, session }))
    }

    async fn json(&self, method: Method, path: &str, body: Value) -> Result<Value> {
        let response = self.admin.http.request(method.clone(), format!("{}{path}", self.base)).json(&body).send().await?;
        let status = response.status();
        let text = response.text().await?;
        ensure!(status == StatusCode::OK, "{method} {path}: {status} {text}");
        Ok(serde_json::from_str(&text)?)
    }

    async fn upload(&self, path: &str, form: Form) -> Result<Value> {
        let response = self.admin.http.post(format!("{}{path}", self.base)).multipart(form).send().await?;
        let status = response.status();
        let text = response.text().await?;
        ensure!(status == StatusCode::OK, "POST {path}: {status} {text}");
        Ok(serde_json::from_str(&text)?)
    }
}

fn workbook(rows: &[&[&str]]) -> Vec<u8> {
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            sheet.write(r as u32, c as u16, *cell).expect("cell");
        }
    }
    workbook.save_to_buffer().expect("workbook")
}

/// A G.711 µ-law WAV, mono 8000 Hz, of `samples` samples.
fn ulaw_wav(samples: usize) -> Vec<u8> {
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(36 + samples as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&7u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&8000u32.to_le_bytes());
    out.extend_from_slice(&8000u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&8u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(samples as u32).to_le_bytes());
    out.extend((0..samples).map(|i| if (i / 10) % 2 == 0 { 0x9F } else { 0x1F }));
    out
}

/// The document as JSON, the way `/api/openapi.json` serves it.
fn document() -> Result<Value> {
    Ok(serde_json::to_value(hq_hub::api_document())?)
}

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

#[test]
fn the_document_lists_exactly_the_api_routes_with_their_errors() -> Result<()> {
    let doc = document()?;
    let table: Vec<_> = hq_hub::routes().into_iter().filter(|r| r.path.starts_with("/api/")).collect();
    let routed: BTreeSet<(String, String)> = table.iter().map(|r| (r.method.as_str().to_string(), r.path.to_string())).collect();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().context("paths")? {
        for method in METHODS {
            if item.get(method).is_some() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    ensure!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routed but not documented (add #[utoipa::path] and list it in web::openapi): {undocumented:?}; \
         documented but not routed: {unrouted:?}"
    );
    ensure!(routed.len() > 50, "only {} API routes", routed.len());

    let error_ref = json!("#/components/schemas/ErrorBody");
    for route in &table {
        let name = format!("{} {}", route.method, route.path);
        let operation = &doc["paths"][route.path][route.method.as_str().to_lowercase()];
        let responses = operation["responses"].as_object().with_context(|| format!("{name}: no responses"))?;
        ensure!(responses.keys().any(|code| code.starts_with('2')), "{name}: no success answer");
        // Every error answer is the one JSON error shape.
        for (code, response) in responses.iter().filter(|(code, _)| !code.starts_with('2')) {
            ensure!(response["content"]["application/json"]["schema"]["$ref"] == error_ref, "{name}: {code} is not the JSON error: {response}");
        }
        let has = |code: &str| responses.contains_key(code);
        if route.access != Access::Public {
            ensure!(has("401"), "{name}: needs a session but documents no 401");
            ensure!(operation["security"].is_array(), "{name}: names no security scheme");
        } else {
            ensure!(!has("401") || route.path == "/api/login", "{name}: public but documents 401");
        }
        if matches!(route.access, Access::Module(_) | Access::AnyModule(_) | Access::Admin) || route.method != Method::GET {
            ensure!(has("403"), "{name}: documents no 403");
        }
        let body = &operation["requestBody"]["content"];
        if body.get("application/json").is_some() {
            for code in ["400", "415", "422"] {
                ensure!(has(code), "{name}: takes JSON but documents no {code}");
            }
        }
        if body.get("multipart/form-data").is_some() {
            ensure!(has("400") && has("413"), "{name}: takes an upload but documents no 400 / 413");
        }
        if route.path.contains('{') {
            ensure!(operation["parameters"].as_array().is_some_and(|p| !p.is_empty()), "{name}: path parameters undocumented");
            ensure!(has("400"), "{name}: a malformed path parameter's 400 is undocumented");
        }
        ensure!(has("500"), "{name}: documents no 500");
    }
    ensure!(doc["paths"]["/api/login"]["post"]["responses"]["429"].is_object(), "the login throttle's 429 is undocumented");

    // The fields the console relies on are in the schemas, with their values.
    let schemas = &doc["components"]["schemas"];
    let props = |schema: &str, field: &str| schemas[schema]["properties"][field].clone();
    ensure!(props("NewAccount", "site_ids")["type"] == "array", "the data scope: {}", schemas["NewAccount"]);
    ensure!(props("AccountView", "site_ids").is_object(), "an account's data scope");
    ensure!(schemas["PhoneMode"]["enum"] == json!(["number", "token"]), "phone mode: {}", schemas["PhoneMode"]);
    ensure!(props("NewProject", "phone_mode").is_object() && props("Project", "phone_mode").is_object(), "phone mode fields");
    ensure!(schemas["DispatchKindName"]["enum"] == json!(["shared", "exclusive", "auto"]), "dispatch kinds: {}", schemas["DispatchKindName"]);
    for field in ["kind", "parts", "site_ids", "update_existing", "description", "priority", "name"] {
        ensure!(props("DispatchBody", field).is_object(), "DispatchBody.{field}");
    }
    let settings = serde_json::to_string(&schemas["SettingsBody"])?;
    ensure!(settings.contains("token_length") && settings.contains("ProjectSettings"), "SettingsBody: {settings}");
    for field in ["dial_mode", "popup_timing", "status", "ring_seconds", "ratio", "max_concurrency", "calling_windows"] {
        ensure!(props("ProjectSettings", field).is_object(), "ProjectSettings.{field}");
    }
    ensure!(schemas["FilterScope"]["enum"] == json!(["mine", "all"]), "filter scope: {}", schemas["FilterScope"]);
    ensure!(schemas["FieldSpecKind"]["enum"].as_array().is_some_and(|kinds| kinds.len() == 5), "field kinds");
    ensure!(schemas["ErrorBody"]["required"] == json!(["error"]), "the error shape: {}", schemas["ErrorBody"]);
    Ok(())
}

/// `schema` with every `$ref` replaced by what it names, `allOf` members merged into one
/// object, and every object that lists its properties closed to others: a field the
/// answer holds that the document does not name is then an error.
fn closed(schema: &Value, doc: &Value, depth: usize) -> Result<Value> {
    ensure!(depth < 40, "the schema nests too deeply (a recursive type?)");
    let Some(object) = schema.as_object() else { return Ok(schema.clone()) };
    if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
        let name = reference.strip_prefix("#/components/schemas/").with_context(|| format!("reference {reference}"))?;
        let target = doc["components"]["schemas"].get(name).with_context(|| format!("{reference} is not in the document"))?;
        return closed(target, doc, depth + 1);
    }
    let mut out = Map::new();
    for (key, value) in object {
        let value = match key.as_str() {
            "properties" => {
                let mut properties = Map::new();
                for (name, property) in value.as_object().context("properties")? {
                    properties.insert(name.clone(), closed(property, doc, depth + 1)?);
                }
                Value::Object(properties)
            }
            "items" | "additionalProperties" | "not" => closed(value, doc, depth + 1)?,
            "oneOf" | "anyOf" | "prefixItems" => {
                Value::Array(value.as_array().context(key.clone())?.iter().map(|v| closed(v, doc, depth + 1)).collect::<Result<_>>()?)
            }
            "allOf" => continue,
            _ => value.clone(),
        };
        out.insert(key.clone(), value);
    }
    if let Some(members) = object.get("allOf").and_then(Value::as_array) {
        // Merged rather than kept: a closed member would refuse its siblings' fields.
        let mut properties = out.remove("properties").and_then(|p| p.as_object().cloned()).unwrap_or_default();
        let mut required: Vec<Value> = out.remove("required").and_then(|r| r.as_array().cloned()).unwrap_or_default();
        for member in members {
            let member = closed(member, doc, depth + 1)?;
            if let Some(more) = member["properties"].as_object() {
                properties.extend(more.clone());
            }
            if let Some(more) = member["required"].as_array() {
                required.extend(more.iter().cloned());
            }
        }
        out.insert("type".into(), json!("object"));
        out.insert("properties".into(), Value::Object(properties));
        out.insert("required".into(), Value::Array(required));
        out.remove("additionalProperties");
    }
    if out.contains_key("properties") && !out.contains_key("additionalProperties") {
        out.insert("additionalProperties".into(), json!(false));
    }
    Ok(Value::Object(out))
}

/// Checks `instance` against the document's schema for `method path`'s `status` answer in
/// `content_type`.
fn conforms(doc: &Value, method: &str, path: &str, status: StatusCode, content_type: &str, instance: &Value) -> Result<()> {
    let response = &doc["paths"][path][method.to_lowercase()]["responses"][status.as_str()];
    ensure!(response.is_object(), "{method} {path} answered {status}, which the document does not list");
    let schema = response["content"][content_type]["schema"].clone();
    ensure!(!schema.is_null(), "{method} {path}: the document has no {content_type} schema for {status}: {response}");
    let schema = closed(&schema, doc, 0)?;
    let validator = jsonschema::draft202012::new(&schema).map_err(|e| anyhow::anyhow!("{method} {path}: bad schema: {e}"))?;
    let errors: Vec<String> = validator.iter_errors(instance).map(|e| format!("at {}: {e}", e.instance_path())).collect();
    ensure!(errors.is_empty(), "{method} {path} ({status}) does not match the document:\n{}\nanswer: {instance}", errors.join("\n"));
    Ok(())
}

/// A report grouped by team and hour, with a business-result count and a ratio.
fn report_definition() -> Value {
    json!({
        "name": "综合话务报表", "tags": ["team", "hour"],
        "conditions": [{ "subject": { "kind": "direction" }, "values": ["outbound"] }],
        "columns": [
            { "header": "外呼数", "statistic": { "kind": "dials" } },
            { "header": "成功", "statistic": { "kind": "field_value", "key": "result", "value": "成功" } },
            { "header": "接通率", "statistic": { "kind": "dial_connected" }, "divide_by": { "kind": "dials" } }
        ]
    })
}

/// The ids the GET routes are called with.
struct Seeded {
    site: i64,
    project: i64,
    file: i64,
    batch: i64,
    /// A shared batch dispatched to two sites: one pool, for the pool's routes.
    pooled: i64,
    job: u64,
    recording: String,
    report: i64,
}

/// Something in every list a GET route answers: sites, a sub-project with every kind of
/// field and its parameters, admins, attribution, an import with a bad row, a dispatched
/// batch with a call and a business record synced up from the site, an alarm, a
/// background import, a filter run, a listed number, a voice file, an announcement and a
/// recording HQ holds.
async fn seed(h: &Harness) -> Result<Seeded> {
    let site = h.json(Method::POST, "/api/sites", json!({ "name": "杭州一号职场" })).await?["id"].as_i64().context("site")?;
    let category = h.json(Method::POST, "/api/categories", json!({ "name": "信用卡" })).await?["id"].as_i64().context("category")?;
    let project = h
        .json(
            Method::POST,
            "/api/projects",
            json!({
                "category_id": category, "name": "分期推荐", "script": "您好", "hide_middle_digits": true,
                "customer_fields": [
                    { "key": "name", "title": "姓名", "kind": "text", "required": true },
                    { "key": "team", "title": "团队", "kind": "single_choice", "options": ["A", "B"] },
                    { "key": "due", "title": "到期日", "kind": "date", "hidden": true }
                ],
                "record_fields": [{ "key": "result", "title": "结果", "kind": "single_choice", "options": ["成功", "失败"], "default": "失败" }],
                "settings": { "dial_mode": "predictive", "popup_timing": "on_answer", "status": "running", "ring_seconds": 35, "ratio": 2,
                              "max_concurrency": 10, "calling_windows": [{ "start": "09:00", "end": "12:00" }] },
                "phone_mode": "number"
            }),
        )
        .await?["id"]
        .as_i64()
        .context("project")?;
    h.json(Method::PUT, &format!("/api/projects/{project}/sites"), json!({ "site_ids": [site] })).await?;
    let modules: Vec<Value> = h.json(Method::GET, "/api/modules", Value::Null).await?.as_array().context("modules")?.iter().map(|m| m["key"].clone()).collect();
    let role = h.json(Method::POST, "/api/roles", json!({ "name": "全模块", "modules": modules })).await?["id"].clone();
    let group = h.json(Method::POST, "/api/groups", json!({ "name": "一组" })).await?["id"].clone();
    let account = h
        .json(Method::POST, "/api/accounts", json!({ "username": "hz_admin", "password": "hz-secret-1", "role_id": role, "group_id": group, "site_ids": [site] }))
        .await?["id"]
        .clone();
    h.json(Method::PUT, &format!("/api/projects/{project}/admins"), json!({ "admins": [{ "account_id": account, "site_ids": [site] }] })).await?;
    h.json(Method::PUT, &format!("/api/projects/{project}/attribution"), json!({ "rules": [{ "field_key": "team", "value": "A", "site_id": site, "agent": "8001" }] })).await?;

    let sheet = workbook(&[&["手机号码", "姓名", "团队", "到期日"], &["13800138001", "张三", "A", "2030-01-31"], &["13800138002", "李四", "C", "2030-02-28"], &["13800138003", "王五", "B", "2030-03-31"]]);
    let form = Form::new().part("file", Part::bytes(sheet.clone()).file_name("名单.xlsx"));
    let report = h.upload(&format!("/api/projects/{project}/files"), form).await?;
    ensure!(report["bad"].as_array().is_some_and(|bad| !bad.is_empty()), "a bad row: {report}");
    let file = report["file_id"].as_i64().context("file")?;
    let out = h.json(Method::POST, &format!("/api/files/{file}/dispatch"), json!({ "name": "批次甲", "priority": 5, "site_ids": [site] })).await?;
    let batch = out["batch_ids"][0].as_i64().context("batch")?;

    // The site calls a number and saves a record; then it sends the record again with
    // other content, which raises an alarm.
    let rows: Vec<_> = h
        .hub()
        .store
        .down_log(site, 0, 10_000)?
        .into_iter()
        .filter_map(|e| match e.event {
            DownEvent::BatchChunk(chunk) => Some(chunk.rows),
            _ => None,
        })
        .flatten()
        .collect();
    let row = rows.first().context("a row went down")?.row_id;
    // A recording the site uploaded, as the link stores it; the call names it.
    let wav = ulaw_wav(800);
    let sha: [u8; 32] = sha2_of(&wav);
    let store: &dyn HubStore = h.hub().store.as_ref();
    store.recording_append(site as u64, &sha, 0, &wav)?;
    store.recording_finish(site as u64, &sha)?;
    let recording = hex(&sha);
    let attempt = UpEvent::CallAttempt(CallAttempt {
        attempt_id: 1, batch_id: batch as u64, row_id: row, started_at: 1_700_000_000, answered_at: Some(1_700_000_008),
        ended_at: 1_700_000_090, outcome: Outcome::Connected, hangup_side: None, agent: Some("8001".into()), talk_seconds: 82,
        recording_sha256: Some(recording.clone()), kind: AttemptKind::Predictive,
    });
    let record = |result: &str| UpEvent::BusinessRecord(BusinessRecord {
        attempt_id: 1, batch_id: batch as u64, row_id: row, agent: "8001".into(), saved_at: 1_700_000_100, values: vec![("result".into(), result.into())],
    });
    h.hub().store.apply_up(site as u64, &UpEntry { epoch: 1, seq: 1, event: attempt })?;
    h.hub().store.apply_up(site as u64, &UpEntry { epoch: 1, seq: 2, event: record("成功") })?;
    ensure!(h.hub().store.apply_up(site as u64, &UpEntry { epoch: 1, seq: 2, event: record("失败") }).is_err(), "a conflicting re-send is refused");

    // The site is online and its wall snapshot came: an agent, a running task, an alarm.
    store.link_state(site as u64, true);
    store.site_live(
        site as u64,
        sync_protocol::SiteLive {
            agents: vec![sync_protocol::LiveAgent {
                username: "8001".into(),
                extension: "801".into(),
                state: sync_protocol::LiveAgentState::Talking,
                since_ms: 1_700_000_000_000,
            }],
            calls_talking: 1,
            tasks: vec![sync_protocol::LiveTask { batch_id: 1, name: "五月批次".into(), remaining: 9 }],
            alarms: vec![sync_protocol::SiteAlarm::DiskLow { free_bytes: 1, total_bytes: 2 }],
            ..sync_protocol::SiteLive::default()
        },
    );

    let form = Form::new().part("file", Part::bytes(sheet).file_name("后台.xlsx"));
    let job = h.upload(&format!("/api/projects/{project}/imports"), form).await?["job_id"].as_u64().context("job")?;
    for _ in 0..100 {
        if h.json(Method::GET, &format!("/api/imports/{job}"), Value::Null).await?["state"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h.json(Method::POST, &format!("/api/files/{file}/filter"), json!({ "scope": "mine", "valid_days": 7, "condition": "called" })).await?;
    h.json(Method::POST, "/api/lists/black", json!({ "phones": ["13900139000"], "note": "投诉" })).await?;
    let form = Form::new().text("name", "等待音乐").text("kind", "hold_music").part("file", Part::bytes(ulaw_wav(4000)).file_name("hold.wav"));
    h.upload("/api/voice-files", form).await?;
    h.json(Method::POST, "/api/announcements", json!({ "title": "通知", "body": "今晚维护", "expires_at": "2099-01-01 08:00" })).await?;
    let report = h.json(Method::POST, &format!("/api/projects/{project}/reports"), report_definition()).await?["id"].as_i64().context("report")?;
    // A second site and a batch shared by both: one pool leased in blocks.
    let second = h.json(Method::POST, "/api/sites", json!({ "name": "杭州二号职场" })).await?["id"].as_i64().context("second site")?;
    h.json(Method::PUT, &format!("/api/projects/{project}/sites"), json!({ "site_ids": [site, second] })).await?;
    let sheet = workbook(&[&["手机号码", "姓名", "团队", "到期日"], &["13700137001", "赵六", "A", "2030-01-31"], &["13700137002", "钱七", "B", "2030-02-28"]]);
    let form = Form::new().part("file", Part::bytes(sheet).file_name("共享.xlsx"));
    let shared_file = h.upload(&format!("/api/projects/{project}/files"), form).await?["file_id"].as_i64().context("shared file")?;
    let out = h.json(Method::POST, &format!("/api/files/{shared_file}/dispatch"), json!({ "name": "共享批", "priority": 5, "site_ids": [site, second] })).await?;
    let pooled = out["batch_ids"][0].as_i64().context("pooled batch")?;
    Ok(Seeded { site, project, file, batch, pooled, job, recording, report })
}

fn sha2_of(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `pattern` with its parameters filled from `seeded`.
fn concrete(pattern: &str, seeded: &Seeded) -> Result<String> {
    let mut out = Vec::new();
    let parts: Vec<&str> = pattern.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) else {
            out.push(part.to_string());
            continue;
        };
        let owner = parts.get(i.wrapping_sub(1)).copied().unwrap_or_default();
        let value = match (owner, name) {
            ("sites", "id") => seeded.site.to_string(),
            ("projects", "id") => seeded.project.to_string(),
            ("files", "id") => seeded.file.to_string(),
            ("batches", "id") if pattern.contains("/pool") => seeded.pooled.to_string(),
            ("batches", "id") => seeded.batch.to_string(),
            ("imports", "job") => seeded.job.to_string(),
            ("lists", "list") => "black".to_string(),
            ("recordings", "sha256") => seeded.recording.clone(),
            ("reports", "report") => seeded.report.to_string(),
            ("calls", "attempt") => "1".to_string(),
            _ => bail!("{pattern}: the test has no value for {{{name}}} after /{owner}/: add one to `concrete`"),
        };
        out.push(value);
    }
    Ok(out.join("/"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_get_route_answers_as_the_document_says() -> Result<()> {
    let h = Harness::start().await?;
    let seeded = seed(&h).await?;
    let doc = document()?;
    // The served document is this one.
    let served: Value = h.admin.http.get(format!("{}/api/openapi.json", h.base)).send().await?.json().await?;
    ensure!(served == doc, "the served document differs from hq_hub::api_document()");

    let mut checked = 0;
    for route in hq_hub::routes().into_iter().filter(|r| r.path.starts_with("/api/") && r.method == Method::GET) {
        let path = concrete(route.path, &seeded)?;
        let mut response = h.admin.http.get(format!("{}{path}", h.base)).send().await?;
        let status = response.status();
        let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        if content_type.starts_with("text/event-stream") {
            // A stream never ends: its first event must hold patches as the document names them.
            let mut text = String::new();
            while !text.contains("\n\n") {
                let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), response.chunk()).await??;
                text.push_str(&String::from_utf8_lossy(&chunk.context("the stream ended")?));
            }
            let data: String = text.lines().filter_map(|line| line.strip_prefix("data: ")).collect();
            let event: Value = serde_json::from_str(&data)?;
            let items = event["items"].as_array().context("items")?;
            ensure!(!items.is_empty(), "GET {path}: an empty first event");
            for item in items {
                conforms(&doc, "GET", route.path, status, "text/event-stream", item)?;
            }
            checked += 1;
            continue;
        }
        let bytes = response.bytes().await?;
        ensure!(status == StatusCode::OK, "GET {path}: {status} {}", String::from_utf8_lossy(&bytes));
        let documented = &doc["paths"][route.path]["get"]["responses"]["200"]["content"];
        let media = content_type.split(';').next().unwrap_or_default().trim().to_string();
        ensure!(documented.get(&media).is_some(), "GET {path} answered {media}, the document says {documented}");
        if media != "application/json" {
            ensure!(!bytes.is_empty(), "GET {path}: an empty download");
            checked += 1;
            continue;
        }
        let answer: Value = serde_json::from_slice(&bytes)?;
        if route.path != "/api/openapi.json" {
            // An empty list would check nothing of its items.
            let empty = answer.as_array().is_some_and(Vec::is_empty)
                || answer.as_object().is_some_and(|o| o.values().any(|v| v.as_array().is_some_and(Vec::is_empty)) && o.len() == 1);
            ensure!(!empty, "GET {path} answered an empty list; seed something for it: {answer}");
        }
        conforms(&doc, "GET", route.path, status, "application/json", &answer)?;
        checked += 1;
    }
    ensure!(checked >= 25, "only {checked} GET routes checked");

    // The checker does catch a field the document does not name.
    let mut sites: Value = h.admin.http.get(format!("{}/api/sites", h.base)).send().await?.json().await?;
    sites[0]["undocumented"] = json!(1);
    ensure!(conforms(&doc, "GET", "/api/sites", StatusCode::OK, "application/json", &sites).is_err(), "an extra field passed");
    // And error answers match the error schema.
    let response = h.admin.http.get(format!("{}/api/files/999999", h.base)).send().await?;
    ensure!(response.status() == StatusCode::NOT_FOUND);
    let error: Value = response.json().await?;
    conforms(&doc, "GET", "/api/files/{id}", StatusCode::NOT_FOUND, "application/json", &error)?;
    h.stop().await
}

/// Checks a state-changing call's `200` answer against the document and returns it.
async fn documented_answer(h: &Harness, doc: &Value, method: Method, pattern: &str, path: &str, body: Value) -> Result<Value> {
    let answer = h.json(method.clone(), path, body).await?;
    conforms(doc, method.as_str(), pattern, StatusCode::OK, "application/json", &answer)?;
    Ok(answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changing_routes_answer_as_the_document_says() -> Result<()> {
    let h = Harness::start().await?;
    let seeded = seed(&h).await?;
    let doc = document()?;
    let (site, project) = (seeded.site, seeded.project);

    let code = documented_answer(&h, &doc, Method::POST, "/api/sites/{id}/enrollment-code", &format!("/api/sites/{site}/enrollment-code"), Value::Null).await?;
    ensure!(code["code"].as_str().is_some_and(|c| !c.is_empty()) && code["expires_at"].as_i64().is_some(), "{code}");
    let rules = json!({ "rules": [{ "field_key": "team", "value": "B", "site_id": site }] });
    let saved = documented_answer(&h, &doc, Method::PUT, "/api/projects/{id}/attribution", &format!("/api/projects/{project}/attribution"), rules).await?;
    ensure!(saved["id"] == json!(project) && saved["version"] == json!(2), "the seed saved version 1, this is 2: {saved}");
    let paused = documented_answer(&h, &doc, Method::POST, "/api/one-click", "/api/one-click", json!({ "action": "pause" })).await?;
    ensure!(paused["changed"] == json!(3), "the seeded batch and the shared batch at each of its two sites paused: {paused}");
    let added = documented_answer(&h, &doc, Method::POST, "/api/lists/{list}", "/api/lists/white", json!({ "phones": ["13700137000\n13700137001"], "note": "VIP" })).await?;
    ensure!(added["added"] == json!(2), "{added}");
    let removed = documented_answer(&h, &doc, Method::POST, "/api/lists/remove", "/api/lists/remove", json!({ "phone": "13700137001" })).await?;
    ensure!(removed["removed"] == json!(true), "{removed}");

    let sheet = workbook(&[&["手机号码"], &["13600136000"], &["不是号码"]]);
    let form = Form::new().part("file", Part::bytes(sheet).file_name("黑名单.xlsx"));
    let imported = h.upload("/api/lists/black/import", form).await?;
    conforms(&doc, "POST", "/api/lists/{list}/import", StatusCode::OK, "application/json", &imported)?;
    ensure!(imported["added"] == json!(1) && imported["bad"].as_array().is_some_and(|bad| bad.len() == 1), "{imported}");
    ensure!(imported["message"].as_str().is_some_and(|m| m.contains("已导入 1 个号码")), "the console shows the message: {imported}");

    // A report's preview, over the month the seeded call (2023-11-14) is in.
    let filter = json!({ "time": { "kind": "custom", "from": "2023-11-01", "to": "2023-11-30" } });
    let report = seeded.report;
    let table = documented_answer(&h, &doc, Method::POST, "/api/projects/{id}/reports/{report}/preview", &format!("/api/projects/{project}/reports/{report}/preview"), filter).await?;
    ensure!(table["headers"] == json!(["外呼数", "成功", "接通率"]) && table["total"] == json!([1, 1, 1.0]), "{table}");
    ensure!(table["rows"][0]["keys"] == json!([{ "site": site, "text": "" }, 6]), "team none, 06:00 China time: {table}");

    // The checker holds these schemas closed too.
    let mut extra = paused.clone();
    extra["undocumented"] = json!(1);
    ensure!(conforms(&doc, "POST", "/api/one-click", StatusCode::OK, "application/json", &extra).is_err(), "an extra field passed");
    h.stop().await
}

/// One raw request and its JSON error.
async fn raw(h: &Harness, method: Method, path: &str, content_type: Option<&str>, body: &str, lang: Option<&str>) -> Result<(StatusCode, String)> {
    let cookie = match lang {
        Some(lang) => format!("{}; lang={lang}", h.admin.session),
        None => h.admin.session.clone(),
    };
    let mut request = reqwest::Client::new().request(method.clone(), format!("{}{path}", h.base)).header("Cookie", cookie).body(body.to_string());
    if let Some(content_type) = content_type {
        request = request.header(CONTENT_TYPE, content_type);
    }
    let response = request.send().await?;
    let status = response.status();
    let kind = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let text = response.text().await?;
    ensure!(kind.starts_with("application/json"), "{method} {path}: {status} answered {kind:?}: {text}");
    let error: Value = serde_json::from_str(&text).with_context(|| format!("{method} {path}: {text}"))?;
    let keys: Vec<&String> = error.as_object().map(|o| o.keys().collect()).unwrap_or_default();
    ensure!(keys == ["error"], "{method} {path}: not the error shape: {text}");
    Ok((status, error["error"].as_str().unwrap_or_default().to_string()))
}

/// `(method, pattern, path, content type, body, status, words of the message)`.
type Case<'a> = (Method, &'a str, &'a str, Option<&'a str>, &'a str, StatusCode, &'a str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_the_json_error() -> Result<()> {
    let h = Harness::start().await?;
    let doc = document()?;
    let json = Some("application/json");
    let cases: Vec<Case> = vec![
        (Method::POST, "/api/sites", "/api/sites", json, "{\"name\": ", StatusCode::BAD_REQUEST, "不是有效的 JSON"),
        (Method::POST, "/api/sites", "/api/sites", Some("text/plain"), "{\"name\": \"x\"}", StatusCode::UNSUPPORTED_MEDIA_TYPE, "须为 JSON"),
        (Method::POST, "/api/sites", "/api/sites", None, "{\"name\": \"x\"}", StatusCode::UNSUPPORTED_MEDIA_TYPE, "须为 JSON"),
        (Method::POST, "/api/sites", "/api/sites", json, "{\"name\": 5}", StatusCode::UNPROCESSABLE_ENTITY, "“名称”应为文字"),
        (Method::POST, "/api/files/{id}/dispatch", "/api/files/1/dispatch", json, "{\"priority\": 5, \"kind\": \"sideways\"}", StatusCode::UNPROCESSABLE_ENTITY, "sideways"),
        (Method::PUT, "/api/projects/{id}/settings", "/api/projects/1/settings", json, "{\"token_length\": \"long\"}", StatusCode::UNPROCESSABLE_ENTITY, "“加密号码位数”"),
        (Method::GET, "/api/files/{id}", "/api/files/not-a-number", None, "", StatusCode::BAD_REQUEST, "路径中的编号"),
        (Method::POST, "/api/batches/{id}/priority", "/api/batches/x/priority", json, "{\"priority\": 5}", StatusCode::BAD_REQUEST, "路径中的编号"),
        (Method::POST, "/api/projects/{id}/files", "/api/projects/1/files", json, "{}", StatusCode::BAD_REQUEST, "上传内容中没有文件"),
        (Method::POST, "/api/one-click", "/api/one-click", json, "{", StatusCode::BAD_REQUEST, "不是有效的 JSON"),
        (Method::POST, "/api/one-click", "/api/one-click", json, "{\"action\": \"jump\"}", StatusCode::UNPROCESSABLE_ENTITY, "jump"),
        (Method::GET, "/api/projects/{id}/attribution", "/api/projects/x/attribution", None, "", StatusCode::BAD_REQUEST, "路径中的编号"),
        (Method::PUT, "/api/projects/{id}/attribution", "/api/projects/1/attribution", json, "{\"rules\": 5}", StatusCode::UNPROCESSABLE_ENTITY, "“归属设置”"),
        (Method::POST, "/api/sites/{id}/enrollment-code", "/api/sites/x/enrollment-code", None, "", StatusCode::BAD_REQUEST, "路径中的编号"),
        (Method::POST, "/api/lists/{list}", "/api/lists/black", Some("text/plain"), "13800138000", StatusCode::UNSUPPORTED_MEDIA_TYPE, "须为 JSON"),
        (Method::POST, "/api/lists/remove", "/api/lists/remove", json, "{}", StatusCode::UNPROCESSABLE_ENTITY, "请填写“号码”"),
        (Method::POST, "/api/lists/{list}/import", "/api/lists/black/import", json, "{}", StatusCode::BAD_REQUEST, "上传内容中没有文件"),
    ];
    for (method, pattern, path, content_type, body, expected, words) in cases {
        let (status, message) = raw(&h, method.clone(), path, content_type, body, None).await?;
        ensure!(status == expected && message.contains(words), "{method} {path} {body:?}: {status} {message:?}, expected {expected} with {words:?}");
        // The document lists that answer for the operation.
        let documented = &doc["paths"][pattern][method.as_str().to_lowercase()]["responses"][status.as_str()];
        ensure!(documented.is_object(), "{method} {pattern}: {status} is not documented");
    }
    // In English with the switch.
    let (_, message) = raw(&h, Method::POST, "/api/sites", json, "[", Some("en")).await?;
    ensure!(message.starts_with("the body is not valid JSON"), "{message}");
    // A wrong method and an unknown route under /api: the same JSON error.
    let (status, _) = raw(&h, Method::DELETE, "/api/sites", None, "", None).await?;
    ensure!(status == StatusCode::METHOD_NOT_ALLOWED, "{status}");
    let (status, message) = raw(&h, Method::GET, "/api/no-such-thing", None, "", Some("en")).await?;
    ensure!(status == StatusCode::NOT_FOUND && message.contains("/api/no-such-thing"), "{status} {message}");
    // A broken multipart body.
    let (status, message) = raw(&h, Method::POST, "/api/projects/1/files", Some("multipart/form-data; boundary=XYZ"), "--XYZ\r\nbroken", None).await?;
    ensure!(status == StatusCode::BAD_REQUEST, "{status} {message}");
    // Refusals too: no session.
    let anonymous = reqwest::Client::new();
    let response = anonymous.get(format!("{}/api/files", h.base)).send().await?;
    ensure!(response.status() == StatusCode::UNAUTHORIZED);
    let error: Value = response.json().await?;
    ensure!(error["error"].is_string(), "{error}");
    // Pages keep their own 404.
    let response = anonymous.get(format!("{}/no-such-page", h.base)).send().await?;
    ensure!(response.status() == StatusCode::NOT_FOUND);
    h.stop().await
}
