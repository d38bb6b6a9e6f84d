//! HQ's reports end to end on the hub in-process (real SQLite store, JSON API through
//! reqwest): definitions are checked against the sub-project's fields and go down to its
//! sites as one versioned event, templates clone them, attempts and records synced up (with
//! and without the site's detail, redelivered, late) land in the buckets of the hour the call
//! started, a sub-admin's preview counts only its sites, and the backfill of a store that
//! predates the engine counts what was synced before. Each answer is also held against the
//! engine's brute-force oracle over the raw facts.

use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use rust_xlsxwriter::Workbook;
use serde_json::{json, Value};
use sync_link::HubStore;
use sync_protocol::{
    AttemptKind, BusinessRecord, CallAttempt, CallAttemptDetail, DownEvent, HangupSide, Outcome, UpEntry, UpEvent,
};

use common::{send, TestHub};

mod common;

type Harness = TestHub<reqwest::Client>;

/// 2026-11-10 10:00 China time.
fn nov_10_10h() -> i64 {
    reports::days_from_civil(2026, 11, 10) * 86_400 + 2 * 3600
}

const NOVEMBER: &str = r#"{ "kind": "custom", "from": "2026-11-01", "to": "2026-11-30" }"#;

impl Harness {
    async fn call(&self, method: Method, path: &str, body: Value) -> Result<(StatusCode, Value)> {
        let body = if body.is_null() { None } else { Some(body) };
        send(&self.admin, &self.base, method, path, body).await
    }

    async fn ok(&self, method: Method, path: &str, body: Value) -> Result<Value> {
        let (status, answer) = self.call(method.clone(), path, body).await?;
        anyhow::ensure!(status == StatusCode::OK, "{method} {path}: {status} {answer}");
        Ok(answer)
    }
}

struct World {
    h: Harness,
    sites: [i64; 2],
    project: i64,
    category: i64,
    batch: i64,
}

fn sheet() -> Result<Vec<u8>> {
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    for (i, row) in [["手机号码", "姓名"], ["13800138001", "张三"], ["13800138002", "李四"]].iter().enumerate() {
        for (j, cell) in row.iter().enumerate() {
            sheet.write(i as u32, j as u16, *cell)?;
        }
    }
    Ok(workbook.save_to_buffer()?)
}

async fn world() -> Result<World> {
    let hq = TestHub::launch().await?;
    let h = hq.with(common::cookie_client(Duration::from_secs(20))?);
    let password = h.password.clone();
    h.ok(Method::POST, "/api/login", json!({ "username": "admin", "password": password })).await?;
    let s1 = h.ok(Method::POST, "/api/sites", json!({ "name": "杭州职场" })).await?["id"].as_i64().context("site")?;
    let s2 = h.ok(Method::POST, "/api/sites", json!({ "name": "成都职场" })).await?["id"].as_i64().context("site")?;
    let category = h.ok(Method::POST, "/api/categories", json!({ "name": "信用卡" })).await?["id"].as_i64().context("category")?;
    let project = h
        .ok(
            Method::POST,
            "/api/projects",
            json!({
                "category_id": category, "name": "分期推荐", "script": "您好", "hide_middle_digits": true,
                "customer_fields": [{ "key": "name", "title": "姓名", "kind": "text" }],
                "record_fields": [
                    { "key": "result", "title": "本次业务结果", "kind": "single_choice", "options": ["成功", "失败"] },
                    { "key": "note", "title": "备注", "kind": "text" }
                ]
            }),
        )
        .await?["id"]
        .as_i64()
        .context("project")?;
    h.ok(Method::PUT, &format!("/api/projects/{project}/sites"), json!({ "site_ids": [s1, s2] })).await?;
    let form = Form::new().part("file", Part::bytes(sheet()?).file_name("名单.xlsx"));
    let upload = h.admin.post(format!("{}/api/projects/{project}/files", h.base)).multipart(form).send().await?;
    let file = upload.json::<Value>().await?["file_id"].as_i64().context("file")?;
    let out = h.ok(Method::POST, &format!("/api/files/{file}/dispatch"), json!({ "name": "十一月", "priority": 5, "site_ids": [s1] })).await?;
    let batch = out["batch_ids"][0].as_i64().context("batch")?;
    Ok(World { h, sites: [s1, s2], project, category, batch })
}

fn attempt(id: u64, batch: i64, started_at: i64, outcome: Outcome, agent: Option<&str>) -> CallAttempt {
    let answered = outcome != Outcome::NoAnswer;
    CallAttempt {
        attempt_id: id,
        batch_id: batch as u64,
        row_id: id,
        started_at,
        answered_at: answered.then_some(started_at + 6),
        ended_at: started_at + 66,
        outcome,
        hangup_side: Some(HangupSide::Customer),
        agent: agent.map(str::to_owned),
        talk_seconds: if outcome == Outcome::Connected { 60 } else { 0 },
        recording_sha256: None,
        kind: AttemptKind::Predictive,
    }
}

fn detail(attempt: CallAttempt, extension: &str) -> UpEvent {
    UpEvent::CallAttemptDetail(CallAttemptDetail {
        attempt,
        team: "A组".into(),
        extension: extension.into(),
        ring_seconds: 6,
        queue_seconds: 2,
        ivr_seconds: 0,
    })
}

fn record(id: u64, batch: i64, result: &str, saved_at: i64) -> UpEvent {
    UpEvent::BusinessRecord(BusinessRecord {
        attempt_id: id,
        batch_id: batch as u64,
        row_id: id,
        agent: "8001".into(),
        saved_at,
        values: vec![("result".into(), result.into()), ("note".into(), "自由文本".into())],
    })
}

fn up(w: &World, site: i64, seq: u64, event: UpEvent) -> Result<()> {
    w.h.hub().store.apply_up(site as u64, &UpEntry { epoch: 1, seq, event })?;
    Ok(())
}

fn agent_report() -> Value {
    json!({
        "name": "坐席日报", "tags": ["agent"],
        "columns": [
            { "header": "外呼数", "statistic": { "kind": "dials" } },
            { "header": "分机接通数", "statistic": { "kind": "extension_connected" } },
            { "header": "本次业务结果-成功", "statistic": { "kind": "field_value", "key": "result", "value": "成功" } },
            { "header": "成功率", "statistic": { "kind": "field_value", "key": "result", "value": "成功" }, "divide_by": { "kind": "dials" } },
            { "header": "通话时长", "statistic": { "kind": "talk_seconds" } }
        ]
    })
}

/// The engine's answer must be the brute force over the raw facts in the hub's file.
fn check_oracle(w: &World, report: &Value, table: &Value, sites: Option<Vec<i64>>) -> Result<()> {
    let conn = rusqlite::Connection::open(w.h.dir().join("hub.sqlite3"))?;
    let def: reports::ReportDef = serde_json::from_value(report.clone())?;
    let days = reports::DayRange {
        first: reports::days_from_civil(2026, 11, 1),
        last: reports::days_from_civil(2026, 11, 30),
    };
    let filter = reports::Filter { projects: Some(vec![w.project]), sites, accounts: None, teams: None, days };
    let want = reports::oracle::run_brute_force(&conn, &reports::Zone::china(), &def, &filter)?;
    anyhow::ensure!(serde_json::to_value(&want)? == *table, "oracle {}\nengine {table}", serde_json::to_value(&want)?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_count_synced_calls_once_in_the_hour_they_happened() -> Result<()> {
    let w = world().await?;
    let (h, [s1, s2], project, batch) = (&w.h, w.sites, w.project, w.batch);
    let id = h.ok(Method::POST, &format!("/api/projects/{project}/reports"), agent_report()).await?["id"].as_i64().context("id")?;

    // The definitions went down to both sites, under version 1.
    for site in [s1, s2] {
        let log = h.hub().store.down_log(site, 0, 1000)?;
        let defs = log.iter().find_map(|e| match &e.event {
            DownEvent::ReportDefinitions { project_id, version, defs } if *project_id == project as u64 => Some((*version, defs.clone())),
            _ => None,
        });
        let (version, defs) = defs.context("no ReportDefinitions went down")?;
        assert_eq!((version, defs.len(), defs[0].id), (1, 1, id as u64));
        let def: reports::ReportDef = serde_json::from_str(&defs[0].definition)?;
        assert_eq!(def.columns[2].header, "本次业务结果-成功");
    }

    let t = nov_10_10h();
    up(&w, s1, 1, detail(attempt(1, batch, t, Outcome::Connected, Some("8001")), "801"))?;
    up(&w, s1, 2, UpEvent::CallAttempt(attempt(2, batch, t + 600, Outcome::NoAnswer, None)))?;
    // The same attempt again under a new outbox entry (a restored site): counted once.
    up(&w, s1, 3, detail(attempt(1, batch, t, Outcome::Connected, Some("8001")), "801"))?;
    // Its record, saved after the attempt, then re-saved: the latest counts.
    up(&w, s1, 4, record(1, batch, "失败", t + 100))?;
    up(&w, s1, 5, record(1, batch, "成功", t + 200))?;
    // An older save arriving late changes nothing.
    up(&w, s1, 6, record(1, batch, "失败", t + 150))?;
    // A day-old call of the other site arrives last: it lands on November 9th, 23:xx.
    up(&w, s2, 1, detail(attempt(1, batch, t - 11 * 3600 + 1800, Outcome::Connected, Some("9001")), "901"))?;
    // A record saved before its call ended arrives first; the call comes as a plain attempt
    // unanswered, then again with the site's detail as connected: it counts once, as the
    // latest says, with the record's values.
    up(&w, s2, 2, record(2, batch, "成功", t + 50))?;
    up(&w, s2, 3, UpEvent::CallAttempt(attempt(2, batch, t, Outcome::NoAnswer, None)))?;
    up(&w, s2, 4, detail(attempt(2, batch, t, Outcome::Connected, Some("9001")), "901"))?;

    let filter: Value = serde_json::from_str(&format!(r#"{{ "time": {NOVEMBER} }}"#))?;
    let table = h.ok(Method::POST, &format!("/api/projects/{project}/reports/{id}/preview"), filter.clone()).await?;
    assert_eq!(table["headers"], json!(["外呼数", "分机接通数", "本次业务结果-成功", "成功率", "通话时长"]));
    assert_eq!(
        table["rows"],
        json!([
            { "keys": [{ "site": s1, "text": "" }], "values": [1, 0, 0, 0.0, 0] },
            { "keys": [{ "site": s1, "text": "8001" }], "values": [1, 1, 1, 1.0, 60] },
            { "keys": [{ "site": s2, "text": "9001" }], "values": [2, 2, 1, 0.5, 120] }
        ])
    );
    assert_eq!(table["total"], json!([4, 3, 2, 0.5, 180]));
    check_oracle(&w, &agent_report(), &table, None)?;

    // By day and hour: the late call is in its own hour, not in the hour it arrived.
    let by_hour = json!({ "name": "时段", "tags": ["day", "hour"], "columns": [{ "header": "外呼数", "statistic": { "kind": "dials" } }] });
    let body = json!({ "definition": by_hour, "filter": filter });
    let table = h.ok(Method::POST, &format!("/api/projects/{project}/reports/preview"), body).await?;
    assert_eq!(
        table["rows"],
        json!([{ "keys": ["2026-11-09", 23], "values": [1] }, { "keys": ["2026-11-10", 10], "values": [3] }])
    );
    check_oracle(&w, &by_hour, &table, None)?;

    // Extension and queue seconds come from the site's detail.
    let detail_report = json!({ "name": "分机", "tags": ["extension"], "columns": [
        { "header": "排队秒数", "statistic": { "kind": "queue_seconds" } },
        { "header": "振铃秒数", "statistic": { "kind": "ring_seconds" } }] });
    let body = json!({ "definition": detail_report, "filter": { "time": serde_json::from_str::<Value>(NOVEMBER)? } });
    let table = h.ok(Method::POST, &format!("/api/projects/{project}/reports/preview"), body).await?;
    assert_eq!(
        table["rows"],
        json!([
            { "keys": [{ "site": s1, "text": "" }], "values": [0, 66] },
            { "keys": [{ "site": s1, "text": "801" }], "values": [2, 6] },
            { "keys": [{ "site": s2, "text": "901" }], "values": [4, 12] }
        ])
    );
    w.h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_are_checked_cloned_by_templates_and_scoped() -> Result<()> {
    let w = world().await?;
    let (h, [s1, s2], project, batch) = (&w.h, w.sites, w.project, w.batch);
    // A text field cannot be counted: the error names the field, in Chinese by default.
    let mut bad = agent_report();
    bad["columns"][2]["statistic"]["key"] = json!("note");
    let (status, answer) = h.call(Method::POST, &format!("/api/projects/{project}/reports"), bad.clone()).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "数值第 3 项的统计项的业务字段：“note”不是有效的取值");
    bad["tags"] = json!(["site", "team", "agent", "hour", "day", "month"]);
    let (_, answer) = h.call(Method::POST, &format!("/api/projects/{project}/reports"), bad).await?;
    assert_eq!(answer["error"], "标签：最多 5 项（现有 6 项）");
    let (status, _) = h.call(Method::POST, "/api/projects/99999/reports", agent_report()).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let id = h.ok(Method::POST, &format!("/api/projects/{project}/reports"), agent_report()).await?["id"].as_i64().context("id")?;
    let mut edited = agent_report();
    edited["name"] = json!("坐席日报（新）");
    h.ok(Method::PUT, &format!("/api/projects/{project}/reports/{id}"), edited).await?;
    let listed = h.ok(Method::GET, &format!("/api/projects/{project}/reports"), Value::Null).await?;
    assert_eq!(listed[0]["name"], "坐席日报（新）");
    let versions: Vec<u64> = h
        .hub()
        .store
        .down_log(s1, 0, 1000)?
        .iter()
        .filter_map(|e| match &e.event {
            DownEvent::ReportDefinitions { version, .. } => Some(*version),
            _ => None,
        })
        .collect();
    assert_eq!(versions, vec![1, 2]);

    // A sub-project made from the template has the same reports.
    let copy = h
        .ok(Method::POST, "/api/projects", json!({ "category_id": w.category, "name": "分期推荐二期", "script": "", "hide_middle_digits": true,
                     "customer_fields": [], "record_fields": [], "template_id": project }))
        .await?["id"]
        .as_i64()
        .context("copy")?;
    let cloned = h.ok(Method::GET, &format!("/api/projects/{copy}/reports"), Value::Null).await?;
    assert_eq!((cloned[0]["name"].clone(), cloned[0]["definition"].clone()), (listed[0]["name"].clone(), listed[0]["definition"].clone()));

    // Calls at both sites; a sub-admin of the first sees only the first's.
    let t = nov_10_10h();
    up(&w, s1, 1, detail(attempt(1, batch, t, Outcome::Connected, Some("8001")), "801"))?;
    up(&w, s2, 1, detail(attempt(1, batch, t, Outcome::Connected, Some("9001")), "901"))?;
    let role = h.ok(Method::POST, "/api/roles", json!({ "name": "报表员", "modules": ["reports"] })).await?["id"].clone();
    let account = h
        .ok(Method::POST, "/api/accounts", json!({ "username": "hz_reports", "password": "hz-reports-1", "role_id": role, "site_ids": [s1] }))
        .await?["id"]
        .clone();
    h.ok(Method::PUT, &format!("/api/projects/{project}/admins"), json!({ "admins": [{ "account_id": account, "site_ids": [s1] }] })).await?;
    let sub = common::cookie_client(Duration::from_secs(20))?;
    let (status, _) = send(&sub, &h.base, Method::POST, "/api/login", Some(json!({ "username": "hz_reports", "password": "hz-reports-1" }))).await?;
    assert_eq!(status, StatusCode::OK);
    let filter: Value = serde_json::from_str(&format!(r#"{{ "time": {NOVEMBER} }}"#))?;
    let path = format!("/api/projects/{project}/reports/{id}/preview");
    let (status, mine) = send(&sub, &h.base, Method::POST, &path, Some(filter.clone())).await?;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(mine["rows"].as_array().map(Vec::len), Some(1), "{mine}");
    assert_eq!(mine["rows"][0]["keys"], json!([{ "site": s1, "text": "8001" }]));
    check_oracle(&w, &agent_report(), &mine, Some(vec![s1]))?;
    let all = h.ok(Method::POST, &path, filter).await?;
    assert_eq!(all["rows"].as_array().map(Vec::len), Some(2));
    // The template's copy is not the sub-admin's: 404.
    let (status, _) = send(&sub, &h.base, Method::GET, &format!("/api/projects/{copy}/reports"), None).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);

    h.ok(Method::POST, &format!("/api/projects/{project}/reports/{id}/delete"), Value::Null).await?;
    let (status, _) = h.call(Method::GET, &format!("/api/projects/{project}/reports/{id}"), Value::Null).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    w.h.stop().await
}

#[test]
fn the_backfill_counts_what_was_synced_before_the_engine() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = hq_hub::store::Store::open(dir.path())?;
    let t = nov_10_10h();
    for (seq, outcome) in [(1, Outcome::Connected), (2, Outcome::NoAnswer), (3, Outcome::Abandoned)] {
        let event = UpEvent::CallAttempt(attempt(seq, 0, t + seq as i64 * 60, outcome, Some("8001")));
        store.apply_up(7, &UpEntry { epoch: 1, seq, event })?;
    }
    let def: reports::ReportDef = serde_json::from_value(json!({ "name": "r", "tags": ["hangup_side"], "columns": [
        { "header": "外呼数", "statistic": { "kind": "dials" } },
        { "header": "客户接通数", "statistic": { "kind": "customer_connected" } },
        { "header": "队列放弃数", "statistic": { "kind": "queue_abandon" } }] }))?;
    let days = reports::DayRange { first: reports::days_from_civil(2026, 11, 10), last: reports::days_from_civil(2026, 11, 10) };
    let filter = reports::Filter { projects: None, sites: None, accounts: None, teams: None, days };
    let before = store.run_report(&def, &filter)?;
    assert_eq!(before.total, vec![reports::Value::Count(3), reports::Value::Count(2), reports::Value::Count(1)]);
    drop(store);
    // As a store that synced these before the engine existed: the calls' report columns
    // empty, no cells, the flag.
    let conn = rusqlite::Connection::open(dir.path().join("hub.sqlite3"))?;
    conn.execute_batch(
        "UPDATE call_attempts SET report_project = 0, report_account = '', ring_s = 0;
         UPDATE business_records SET report_combo = '[]'; DELETE FROM report_cells;
         INSERT INTO report_meta (key, value) VALUES ('hub_backfill_pending', 1);",
    )?;
    drop(conn);
    let store = hq_hub::store::Store::open(dir.path())?;
    assert_eq!(store.run_report(&def, &filter)?, before);
    drop(store);
    // Reopened again: not counted twice.
    let store = hq_hub::store::Store::open(dir.path())?;
    assert_eq!(store.run_report(&def, &filter)?, before);
    Ok(())
}
