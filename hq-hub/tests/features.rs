//! The console's rules through the JSON API, in-process on 127.0.0.1:0: project templates and
//! versions down the link, two-step sites/admins, exclusive and auto dispatch with the
//! blacklist, priority control and one-click, the data filter over synced history, the
//! bad-rows sheet, background import progress, sub-admin scoping per route, OpenAPI.

use std::time::Duration;

use anyhow::Result;
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use rust_xlsxwriter::Workbook;
use serde_json::{json, Value};
use sync_link::HubStore;
use sync_protocol::{CallAttempt, DownEvent, Outcome, UpEntry, UpEvent};

use common::TestHub;

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(base: &str) -> Result<Client> {
        Ok(Client { http: common::cookie_client(Duration::from_secs(20))?, base: base.to_string() })
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<(StatusCode, Value)> {
        common::send(&self.http, &self.base, method, path, body).await
    }

    async fn post(&self, path: &str, body: Value) -> Result<(StatusCode, Value)> {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> Result<(StatusCode, Value)> {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Result<(StatusCode, Value)> {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn ok(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let (status, value) = self.send(method.clone(), path, body).await?;
        assert_eq!(status, StatusCode::OK, "{method} {path}: {value}");
        Ok(value)
    }

    async fn upload(&self, path: &str, name: &str, bytes: Vec<u8>) -> Result<(StatusCode, Value)> {
        let form = Form::new().part("file", Part::bytes(bytes).file_name(name.to_string()));
        let response = self.http.post(format!("{}{path}", self.base)).multipart(form).send().await?;
        let status = response.status();
        Ok((status, response.json().await?))
    }
}

mod common;

type Harness = TestHub<Client>;

impl Harness {
    async fn start() -> Result<Harness> {
        let hq = TestHub::launch().await?;
        let admin = Client::new(&hq.base)?;
        admin.ok(reqwest::Method::POST, "/api/login", Some(json!({ "username": "admin", "password": hq.password }))).await?;
        Ok(hq.with(admin))
    }

    fn down(&self, site: i64) -> Result<Vec<DownEvent>> {
        Ok(self.hub().store.down_log(site, 0, 10_000)?.into_iter().map(|e| e.event).collect())
    }
}

fn workbook(rows: &[Vec<String>]) -> Vec<u8> {
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            if !cell.is_empty() {
                sheet.write(r as u32, c as u16, cell.as_str()).expect("write cell");
            }
        }
    }
    workbook.save_to_buffer().expect("save workbook")
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

fn id(value: &Value) -> i64 {
    value["id"].as_i64().unwrap_or_default()
}

/// Two sites, a category, a project with an attribution field, participating sites.
async fn setup(h: &Harness) -> Result<(i64, i64, i64, i64)> {
    let a = &h.admin;
    let s1 = id(&a.post("/api/sites", json!({ "name": "一职场" })).await?.1);
    let s2 = id(&a.post("/api/sites", json!({ "name": "二职场" })).await?.1);
    let category = id(&a.post("/api/categories", json!({ "name": "套餐类" })).await?.1);
    let (status, project) = a
        .post(
            "/api/projects",
            json!({
                "category_id": category, "name": "家庭套餐", "script": "您好", "hide_middle_digits": true,
                "customer_fields": [
                    { "key": "name", "title": "姓名", "kind": "text", "required": true },
                    { "key": "team", "title": "指定团队", "kind": "text" },
                    { "key": "amount", "title": "金额", "kind": "number" },
                    { "key": "due", "title": "到期日", "kind": "date", "hidden": true },
                    { "key": "tags", "title": "标签", "kind": "multiple_choice", "options": ["宽带", "手机"] }
                ],
                "record_fields": [{ "key": "result", "title": "营销结果", "kind": "single_choice", "options": ["成功", "失败"], "default": "失败" }],
                "settings": { "dial_mode": "one_click", "popup_timing": "on_ring", "ring_seconds": 38, "calling_windows": [{ "start": "09:00", "end": "12:00" }] }
            }),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{project}");
    let project = id(&project);
    a.ok(reqwest::Method::PUT, &format!("/api/projects/{project}/sites"), Some(json!({ "site_ids": [s1, s2] }))).await?;
    Ok((s1, s2, category, project))
}

#[tokio::test]
async fn project_templates_parameters_and_versions() -> Result<()> {
    let h = Harness::start().await?;
    let a = &h.admin;
    let (s1, _s2, category, project) = setup(&h).await?;

    // Parameters are checked: predictive pops on answer; ring 0 means "site decides".
    let (status, err) = a
        .post("/api/projects", json!({ "category_id": category, "name": "坏参数", "settings": { "dial_mode": "predictive", "popup_timing": "on_ring" } }))
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(err["error"].as_str().unwrap_or_default().contains("predictive dialing pops on answer"), "{err}");
    let (status, err) = a.post("/api/projects", json!({ "category_id": category, "name": "坏窗口", "settings": { "calling_windows": [{ "start": "12:00", "end": "09:00" }] } })).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    let (status, err) = a
        .post("/api/projects", json!({ "category_id": category, "name": "坏字段", "customer_fields": [{ "key": "x", "title": "X", "kind": "text", "required": true, "hidden": true }] }))
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(err["error"].as_str().unwrap_or_default().contains("both required and hidden"), "{err}");

    // A template clones fields and popup from the same category only.
    let clone = id(&a.ok(reqwest::Method::POST, "/api/projects", Some(json!({ "category_id": category, "name": "家庭套餐二期", "template_id": project }))).await?);
    let cloned = a.ok(reqwest::Method::GET, &format!("/api/projects/{clone}"), None).await?;
    let original = a.ok(reqwest::Method::GET, &format!("/api/projects/{project}"), None).await?;
    assert_eq!(cloned["customer_fields"], original["customer_fields"]);
    assert_eq!(cloned["record_fields"], original["record_fields"]);
    assert_eq!(cloned["script"], "您好");
    assert_eq!(cloned["template_id"], project);
    let other = id(&a.post("/api/categories", json!({ "name": "宽带类" })).await?.1);
    let (status, _) = a.post("/api/projects", json!({ "category_id": other, "name": "跨分类", "template_id": project })).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a template must be in the same category");

    // Participating sites were sent version 1; an edit sends version 2 with the flags.
    let versions = |events: Vec<DownEvent>| -> Vec<u64> {
        events.into_iter().filter_map(|e| match e { DownEvent::Project(p) if p.project_id == project as u64 => Some(p.version), _ => None }).collect()
    };
    assert_eq!(versions(h.down(s1)?), vec![1]);
    let mut edit = original.clone();
    edit["script"] = json!("您好，新话术");
    let answer = a.ok(reqwest::Method::PUT, &format!("/api/projects/{project}"), Some(edit)).await?;
    assert_eq!(answer["version"], 2);
    assert_eq!(versions(h.down(s1)?), vec![1, 2]);
    let Some(DownEvent::Project(def)) = h.down(s1)?.into_iter().rev().find(|e| matches!(e, DownEvent::Project(_))) else { panic!("no project def") };
    assert_eq!(def.script, "您好，新话术");
    assert_eq!(def.params.ring_seconds, Some(38));
    assert!(def.customer_fields.iter().any(|f| f.key == "due" && f.hidden));
    assert!(def.customer_fields.iter().any(|f| f.key == "name" && f.required));
    h.stop().await
}

#[tokio::test]
async fn import_report_sheet_progress_and_tokens() -> Result<()> {
    let h = Harness::start().await?;
    let a = &h.admin;
    let (_, _, category, project) = setup(&h).await?;
    let mut rows = vec![row(&["\u{feff}手机号码", "姓名", "金额", "到期日", "标签"])];
    rows.push(row(&["13800138000", "张三", "12.5", "2024-05-31", "宽带;手机"]));
    rows.push(row(&["1380013", "李四", "x", "", ""]));
    rows.push(row(&["13900139000", "王五", "3", "31/05/2024", "电视"]));
    rows.push(row(&["13800138000", "重复", "", "", ""]));
    let (status, report) = a.upload(&format!("/api/projects/{project}/files"), "名单.xlsx", workbook(&rows)).await?;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["n_good"], 1);
    let bad = report["bad"].as_array().cloned().unwrap_or_default();
    let reasons: Vec<String> = bad.iter().map(|b| format!("{} {} {}", b["row"], b["column"].as_str().unwrap_or(""), b["reason"].as_str().unwrap_or(""))).collect();
    assert!(reasons.iter().any(|r| r.starts_with("3 金额") && r.contains("not a number")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.starts_with("4 到期日") && r.contains("not a date")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.starts_with("4 标签") && r.contains("not one of the options")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.starts_with("5 ") && r.contains("repeats row 2")), "{reasons:?}");
    assert!(report["header_warnings"].to_string().contains("special"), "{report}");
    let team = report["columns"].as_array().and_then(|c| c.iter().find(|c| c["field_key"] == "team")).cloned().unwrap_or_default();
    assert!(team["reason_zh"].as_str().unwrap_or_default().contains("文本格式"), "{team}");

    // The bad-rows sheet has one line per bad row with row, column and reason.
    let file = report["file_id"].as_i64().unwrap_or_default();
    let response = a.http.get(format!("{}/api/files/{file}/bad-rows.xlsx", h.base)).send().await?;
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.bytes().await?;
    use calamine::Reader;
    let mut sheet: calamine::Xlsx<_> = calamine::Xlsx::new(std::io::Cursor::new(bytes.to_vec()))?;
    let range = sheet.worksheet_range_at(0).expect("a sheet")?;
    assert_eq!(range.height(), bad.len() + 1);
    assert_eq!(range.get((1, 0)).map(|c| c.to_string()), Some(bad[0]["row"].to_string()));

    // Background import: the job reports progress and ends with the file.
    let (status, job) = a.upload(&format!("/api/projects/{project}/imports"), "大文件.xlsx", workbook(&rows)).await?;
    assert_eq!(status, StatusCode::OK, "{job}");
    let job_id = job["job_id"].as_u64().unwrap_or_default();
    let mut last = Value::Null;
    for _ in 0..100 {
        last = a.ok(reqwest::Method::GET, &format!("/api/imports/{job_id}"), None).await?;
        if last["state"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last["state"], "done", "{last}");
    assert_eq!(last["rows_done"], last["rows_total"]);
    let (status, _) = a.upload(&format!("/api/projects/{project}/imports"), "名单.xls", b"x".to_vec()).await?;
    assert_eq!(status, StatusCode::OK, "the job starts; it fails with the reason");

    // Encrypted dial tokens: hex strings taken as-is, numbers refused.
    let token_project = id(&a.ok(reqwest::Method::POST, "/api/projects", Some(json!({ "category_id": category, "name": "加密号码", "phone_mode": "token" }))).await?);
    let rows = vec![row(&["号码"]), row(&["a207a92e2b93892f5f4c"]), row(&["13800138000"])];
    let (_, report) = a.upload(&format!("/api/projects/{token_project}/files"), "加密.xlsx", workbook(&rows)).await?;
    assert_eq!(report["n_good"], 1, "{report}");
    assert!(report["bad"][0]["reason"].as_str().unwrap_or_default().contains("encrypted dial token"), "{report}");
    h.stop().await
}

async fn import_numbers(h: &Harness, project: i64, phones: &[&str], teams: &[&str]) -> Result<i64> {
    let mut rows = vec![row(&["手机号码", "姓名", "指定团队"])];
    for (phone, team) in phones.iter().zip(teams.iter().cycle()) {
        rows.push(row(&[phone, "客户", team]));
    }
    let (status, report) = h.admin.upload(&format!("/api/projects/{project}/files"), "名单.xlsx", workbook(&rows)).await?;
    assert_eq!(status, StatusCode::OK, "{report}");
    Ok(report["file_id"].as_i64().unwrap_or_default())
}

#[tokio::test]
async fn dispatch_kinds_blacklist_and_batch_control() -> Result<()> {
    let h = Harness::start().await?;
    let a = &h.admin;
    let (s1, s2, category, project) = setup(&h).await?;
    let phones = ["13800000001", "13800000002", "13800000003", "13800000004", "13800000005"];
    let file = import_numbers(&h, project, &phones, &["A", "B", "C"]).await?;
    a.ok(reqwest::Method::POST, "/api/lists/black", Some(json!({ "phones": ["138 0000 0005"], "note": "投诉" }))).await?;

    // Exclusive: two batches with counts; the blacklisted number is removed with its reason.
    let (status, err) = a
        .post(&format!("/api/files/{file}/dispatch"), json!({ "kind": "exclusive", "priority": 5, "parts": [{ "name": "甲", "count": 3, "site_id": s1 }, { "name": "乙", "count": 2, "site_id": s2 }] }))
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "5 asked, 4 left after the blacklist: {err}");
    let out = a
        .ok(reqwest::Method::POST, &format!("/api/files/{file}/dispatch"), Some(json!({ "kind": "exclusive", "priority": 5, "parts": [{ "name": "甲", "count": 3, "site_id": s1 }, { "name": "乙", "count": 1, "site_id": s2 }] })))
        .await?;
    assert_eq!(out["batch_ids"].as_array().map(Vec::len), Some(2));
    assert_eq!(out["removed"][0]["phone"], "13800000005");
    assert!(out["removed"][0]["reason"].as_str().unwrap_or_default().contains("blacklist (投诉)"), "{out}");
    let batches = a.ok(reqwest::Method::GET, "/api/batches", None).await?;
    let named: Vec<(String, i64)> = batches.as_array().unwrap_or(&vec![]).iter().map(|b| (b["name"].as_str().unwrap_or("").to_string(), b["numbers"].as_i64().unwrap_or(0))).collect();
    assert!(named.contains(&("甲".to_string(), 3)) && named.contains(&("乙".to_string(), 1)), "{named:?}");
    let no_black = |site| -> Result<bool> {
        Ok(h.down(site)?.iter().all(|e| !matches!(e, DownEvent::BatchChunk(c) if c.rows.iter().any(|r| r.phone == "13800000005"))))
    };
    assert!(no_black(s1)? && no_black(s2)?);

    // Update existing data: a second shared dispatch to s1 skips numbers live there.
    let out = a.ok(reqwest::Method::POST, &format!("/api/files/{file}/dispatch"), Some(json!({ "name": "再下发", "priority": 5, "site_ids": [s2] }))).await?;
    assert_eq!(out["removed"].as_array().map(Vec::len), Some(2), "blacklist + the one live at s2: {out}");

    // Auto batches follow the attribution rules.
    a.ok(reqwest::Method::PUT, &format!("/api/projects/{project}/attribution"), Some(json!({ "rules": [
        { "field_key": "team", "value": "A", "site_id": s1, "agent": "8001" }, { "field_key": "team", "value": "B", "site_id": s2 } ] }))).await?;
    let file2 = import_numbers(&h, project, &["13900000001", "13900000002", "13900000003"], &["A", "B", "Z"]).await?;
    let out = a.ok(reqwest::Method::POST, &format!("/api/files/{file2}/dispatch"), Some(json!({ "kind": "auto", "name": "自动", "priority": 9 }))).await?;
    assert_eq!((out["attributed"].as_u64(), out["not_found"].as_u64()), (Some(2), Some(1)), "{out}");
    assert!(h.down(s1)?.iter().any(|e| matches!(e, DownEvent::BatchChunk(c) if c.rows.iter().any(|r| r.phone == "13900000001" && r.fields.contains(&("seat".into(), "8001".into()))))));

    // Priority: versioned BatchControl down the link; 0 ends for ever.
    let batch = out["batch_ids"][0].as_i64().unwrap_or_default();
    let controls = |site| -> Result<Vec<(u64, u64, u8)>> {
        Ok(h.down(site)?.into_iter().filter_map(|e| match e { DownEvent::BatchControl(c) => Some((c.batch_id, c.version, c.priority)), _ => None }).collect())
    };
    let (status, _) = a.post(&format!("/api/batches/{batch}/priority"), json!({ "priority": 101 })).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    a.ok(reqwest::Method::POST, &format!("/api/batches/{batch}/priority"), Some(json!({ "priority": 1 }))).await?;
    a.ok(reqwest::Method::POST, &format!("/api/batches/{batch}/priority"), Some(json!({ "priority": 50 }))).await?;
    assert_eq!(controls(s1)?, vec![(batch as u64, 2, 1), (batch as u64, 3, 50)]);

    // One-click pause of the category pauses every running batch; start restores priorities.
    let paused = a.ok(reqwest::Method::POST, "/api/one-click", Some(json!({ "action": "pause", "category_id": category }))).await?;
    assert!(paused["changed"].as_u64().unwrap_or(0) >= 4, "{paused}");
    let all = a.ok(reqwest::Method::GET, "/api/batches", None).await?;
    assert!(all.as_array().unwrap_or(&vec![]).iter().all(|b| b["priority"] == 1), "{all}");
    a.ok(reqwest::Method::POST, "/api/one-click", Some(json!({ "action": "start" }))).await?;
    let all = a.ok(reqwest::Method::GET, "/api/batches", None).await?;
    assert!(all.as_array().unwrap_or(&vec![]).iter().any(|b| b["id"] == batch && b["priority"] == 50), "{all}");

    a.ok(reqwest::Method::POST, &format!("/api/batches/{batch}/priority"), Some(json!({ "priority": 0 }))).await?;
    let (status, err) = a.post(&format!("/api/batches/{batch}/priority"), json!({ "priority": 10 })).await?;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    let numbers = a.ok(reqwest::Method::GET, &format!("/api/batches/{batch}/numbers"), None).await?;
    assert_eq!(numbers[0]["phone"], "139****0001", "masked: {numbers}");
    a.ok(reqwest::Method::POST, &format!("/api/batches/{batch}/delete"), None).await?;
    let all = a.ok(reqwest::Method::GET, "/api/batches", None).await?;
    assert!(all.as_array().unwrap_or(&vec![]).iter().all(|b| b["id"] != batch));
    h.stop().await
}

#[tokio::test]
async fn filter_over_synced_history() -> Result<()> {
    let h = Harness::start().await?;
    let a = &h.admin;
    let (s1, _, _, project) = setup(&h).await?;
    let file = import_numbers(&h, project, &["13700000001", "13700000002", "13700000003"], &["A"]).await?;
    let out = a.ok(reqwest::Method::POST, &format!("/api/files/{file}/dispatch"), Some(json!({ "name": "首呼", "priority": 5, "site_ids": [s1] }))).await?;
    let batch = out["batch_ids"][0].as_u64().unwrap_or_default();
    let rows: Vec<_> = h.down(s1)?.into_iter().filter_map(|e| match e { DownEvent::BatchChunk(c) => Some(c.rows), _ => None }).flatten().collect();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // 13700000001 dialed twice, never answered; 13700000002 answered once; 13700000003 only
    // called back and dialed by hand (answered both times), which are not task dials (H11).
    use sync_protocol::AttemptKind;
    let attempts = [
        (0usize, false, AttemptKind::Predictive),
        (0, false, AttemptKind::OneClick),
        (1, true, AttemptKind::Predictive),
        (2, true, AttemptKind::Callback),
        (2, true, AttemptKind::Manual),
    ];
    for (seq, (row_idx, answered, kind)) in attempts.iter().enumerate() {
        let entry = UpEntry {
            epoch: 1,
            seq: seq as u64 + 1,
            event: UpEvent::CallAttempt(CallAttempt {
                attempt_id: seq as u64 + 1, batch_id: batch, row_id: rows[*row_idx].row_id, started_at: now - 60, answered_at: answered.then_some(now - 50),
                ended_at: now - 10, outcome: if *answered { Outcome::Connected } else { Outcome::NoAnswer }, hangup_side: None, agent: None, talk_seconds: 0, recording_sha256: None, kind: *kind,
            }),
        };
        h.hub().store.apply_up(s1 as u64, &entry)?;
    }
    let (status, _) = a.post(&format!("/api/files/{file}/filter"), json!({ "valid_days": 31 })).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "at most 30 days");
    let out = a.ok(reqwest::Method::POST, &format!("/api/files/{file}/filter"), Some(json!({ "scope": "mine", "valid_days": 7, "condition": "called", "repeat_count": 2 }))).await?;
    assert_eq!((out["kept"].as_u64(), out["removed"].as_u64()), (Some(2), Some(1)), "{out}");
    assert!(out["file_name"].as_str().unwrap_or_default().starts_with("【过滤结果】名单.xlsx_"), "{out}");
    let result = a.ok(reqwest::Method::GET, &format!("/api/files/{}", out["file_id"]), None).await?;
    assert_eq!(result["file"]["source"], "system");
    assert_eq!(result["report"]["bad"][0]["row"], 2);
    assert!(result["report"]["bad"][0]["reason"].as_str().unwrap_or_default().contains("called 2 times"), "{result}");
    let out = a.ok(reqwest::Method::POST, &format!("/api/files/{file}/filter"), Some(json!({ "valid_days": 7, "condition": "not_connected" }))).await?;
    assert_eq!(out["removed"], 1);
    let out = a.ok(reqwest::Method::POST, &format!("/api/files/{file}/filter"), Some(json!({ "valid_days": 7, "condition": "connected" }))).await?;
    assert_eq!(out["removed"], 1, "the answered callback and manual dial do not count: {out}");
    let out = a.ok(reqwest::Method::POST, &format!("/api/files/{file}/filter"), Some(json!({ "valid_days": 7, "condition": "not_called" }))).await?;
    assert_eq!(out["removed"], 1, "13700000003 was never dialed by its task: {out}");
    let result = a.ok(reqwest::Method::GET, &format!("/api/files/{}", out["file_id"]), None).await?;
    assert_eq!(result["report"]["bad"][0]["row"], 4, "{result}");
    // The last settings are remembered per account.
    let settings = a.ok(reqwest::Method::GET, "/api/filter-settings", None).await?;
    assert_eq!(settings["condition"], "not_called");
    h.stop().await
}

#[tokio::test]
async fn sub_admin_sees_only_its_scope_on_every_route() -> Result<()> {
    let h = Harness::start().await?;
    let a = &h.admin;
    let (s1, s2, _, project) = setup(&h).await?;
    let category = id(&a.post("/api/categories", json!({ "name": "其他" })).await?.1);
    let hidden_project = id(&a.ok(reqwest::Method::POST, "/api/projects", Some(json!({ "category_id": category, "name": "看不见" }))).await?);
    a.ok(reqwest::Method::PUT, &format!("/api/projects/{hidden_project}/sites"), Some(json!({ "site_ids": [s1, s2] }))).await?;
    let role = id(&a.ok(reqwest::Method::POST, "/api/roles", Some(json!({ "name": "数据管理", "modules": ["data.files", "data.batches", "data.business", "data.settings"] }))).await?);
    let (status, _) = a.post("/api/roles", json!({ "name": "坏", "modules": ["nope"] })).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let sub = id(&a.ok(reqwest::Method::POST, "/api/accounts", Some(json!({ "username": "sub1", "password": "sub-secret-1", "role_id": role, "site_ids": [s1] }))).await?);
    // Step 2 limited to the account's data permission.
    let (status, err) = a.put(&format!("/api/projects/{project}/admins"), json!({ "admins": [{ "account_id": sub, "site_ids": [s1, s2] }] })).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(err["error"].as_str().unwrap_or_default().contains("不在此账号的数据权限内"), "{err}");
    a.ok(reqwest::Method::PUT, &format!("/api/projects/{project}/admins"), Some(json!({ "admins": [{ "account_id": sub, "site_ids": [s1] }] }))).await?;

    let file = import_numbers(&h, project, &["13600000001", "13600000002"], &["A"]).await?;
    let hidden_file = import_numbers(&h, hidden_project, &["13600000003"], &["A"]).await?;
    let out = a.ok(reqwest::Method::POST, &format!("/api/files/{file}/dispatch"), Some(json!({ "name": "共享", "priority": 5, "site_ids": [s1, s2] }))).await?;
    let (b1, b2) = (out["batch_ids"][0].as_i64().unwrap_or(0), out["batch_ids"][1].as_i64().unwrap_or(0));

    let sub_client = Client::new(&h.base)?;
    sub_client.ok(reqwest::Method::POST, "/api/login", Some(json!({ "username": "sub1", "password": "sub-secret-1" }))).await?;
    let ids = |v: &Value| -> Vec<i64> { v.as_array().unwrap_or(&vec![]).iter().map(id).collect() };
    assert_eq!(ids(&sub_client.ok(reqwest::Method::GET, "/api/sites", None).await?), vec![s1]);
    assert_eq!(ids(&sub_client.ok(reqwest::Method::GET, "/api/projects", None).await?), vec![project]);
    assert_eq!(ids(&sub_client.ok(reqwest::Method::GET, "/api/files", None).await?), vec![file]);
    assert_eq!(ids(&sub_client.ok(reqwest::Method::GET, "/api/batches", None).await?), vec![b1]);
    assert_eq!(sub_client.ok(reqwest::Method::GET, &format!("/api/projects/{project}"), None).await?["site_ids"], json!([s1]));
    for path in [
        format!("/api/projects/{hidden_project}"),
        format!("/api/projects/{hidden_project}/admins"),
        format!("/api/projects/{hidden_project}/attribution"),
        format!("/api/files/{hidden_file}"),
        format!("/api/files/{hidden_file}/download"),
        format!("/api/files/{hidden_file}/bad-rows.xlsx"),
        format!("/api/batches/{b2}/records"),
        format!("/api/batches/{b2}/numbers"),
    ] {
        let (status, _) = sub_client.get(&path).await?;
        assert_eq!(status, StatusCode::NOT_FOUND, "GET {path} must not exist for the sub-admin");
    }
    for (path, body) in [
        (format!("/api/batches/{b2}/priority"), json!({ "priority": 9 })),
        (format!("/api/batches/{b2}/delete"), json!({})),
        (format!("/api/files/{hidden_file}/filter"), json!({ "valid_days": 7 })),
        (format!("/api/files/{hidden_file}/dispatch"), json!({ "name": "x", "priority": 5, "site_ids": [s1] })),
        (format!("/api/files/{hidden_file}/delete"), json!({})),
    ] {
        let (status, _) = sub_client.post(&path, body).await?;
        assert_eq!(status, StatusCode::NOT_FOUND, "POST {path} must not exist for the sub-admin");
    }
    let (status, _) = sub_client.post(&format!("/api/files/{file}/dispatch"), json!({ "name": "越权", "priority": 5, "site_ids": [s2] })).await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "dispatch to a site outside the scope");
    for (path, body) in [("/api/sites", json!({ "name": "x" })), ("/api/categories", json!({ "name": "x" })), ("/api/roles", json!({ "name": "x" }))] {
        let (status, _) = sub_client.post(path, body).await?;
        assert_eq!(status, StatusCode::FORBIDDEN, "POST {path} is for admins");
    }
    let (status, _) = sub_client.get("/api/lists/black").await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "the role lacks cti.lists");
    // One-click by the sub-admin touches only its own batch.
    let changed = sub_client.ok(reqwest::Method::POST, "/api/one-click", Some(json!({ "action": "pause" }))).await?;
    assert_eq!(changed["changed"], 1);
    // Pages are filtered too.
    let page = sub_client.http.get(format!("{}/batches", h.base)).send().await?.text().await?;
    assert!(page.contains(&format!("batch-{b1}")) && !page.contains(&format!("batch-{b2}")));
    let page = sub_client.http.get(format!("{}/projects", h.base)).send().await?.text().await?;
    assert!(!page.contains("看不见"));
    h.stop().await
}

#[tokio::test]
async fn openapi_document_lists_every_route() -> Result<()> {
    let h = Harness::start().await?;
    let doc = Client::new(&h.base)?.ok(reqwest::Method::GET, "/api/openapi.json", None).await?;
    assert_eq!(doc["openapi"], "3.1.0");
    for path in ["/api/login", "/api/projects/{id}/imports", "/api/files/{id}/filter", "/api/one-click", "/api/batches/{id}/priority", "/api/lists/{list}"] {
        assert!(doc["paths"][path].is_object(), "{path} is described");
    }
    h.stop().await
}
