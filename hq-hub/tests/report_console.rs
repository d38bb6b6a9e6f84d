//! The report console (数据报表管理) over attempts that came up the sync path
//! (`HubStore::apply_up`, what the link calls for each site's entries): the preview's figures
//! per site, day and hour under every time filter, held against a count made here from the
//! attempts sent; a ratio and a business-field count; the validation errors naming their
//! field in Chinese and English; the .xlsx export read back with calamine; and a sub-admin's
//! scope in the preview, the leaderboard, the export, the choices and every page.
//!
//! The hub runs in-process on 127.0.0.1:0 with its real SQLite store.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use calamine::{Data, Reader, Xlsx};
use reqwest::StatusCode;
use rust_xlsxwriter::Workbook;
use serde_json::{json, Value};
use sync_link::HubStore;
use sync_protocol::{BusinessRecord, CallAttempt, DownEvent, HangupSide, Outcome, UpEntry, UpEvent};

use common::TestHub;

mod common;

type Harness = TestHub<reqwest::Client>;

const SITE_A: &str = "杭州一号职场";
const SITE_B: &str = "成都二号职场";

/// One attempt sent up: which site, when, how it ended, the record's result.
#[derive(Clone, Debug)]
struct Sent {
    site: i64,
    started_at: i64,
    outcome: Outcome,
    result: Option<&'static str>,
}

struct World {
    site_a: i64,
    site_b: i64,
    category: i64,
    project: i64,
    other_project: i64,
    sent: Vec<Sent>,
    now: i64,
}

fn workbook(phones: &[&str]) -> Vec<u8> {
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.write(0, 0, "手机号码").expect("header");
    for (i, phone) in phones.iter().enumerate() {
        sheet.write(i as u32 + 1, 0, *phone).expect("cell");
    }
    workbook.save_to_buffer().expect("workbook")
}

async fn call(h: &Harness, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<(StatusCode, Value)> {
    common::send(&h.admin, &h.base, method, path, body).await
}

async fn ok(h: &Harness, method: reqwest::Method, path: &str, body: Value) -> Result<Value> {
    let (status, answer) = call(h, method.clone(), path, Some(body)).await?;
    ensure!(status.is_success(), "{method} {path}: {status} {answer}");
    Ok(answer)
}

/// Imports `phones` into `project` and dispatches them to `site`; the rows' (batch, row) ids.
async fn dispatch(h: &Harness, project: i64, site: i64, phones: &[&str]) -> Result<Vec<(u64, u64)>> {
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(workbook(phones)).file_name("名单.xlsx"));
    let response = h.admin.post(format!("{}/api/projects/{project}/files", h.base)).multipart(form).send().await?;
    let file = response.json::<Value>().await?["file_id"].as_i64().context("file id")?;
    let out = ok(h, reqwest::Method::POST, &format!("/api/files/{file}/dispatch"), json!({ "name": format!("批次{file}"), "priority": 5, "site_ids": [site] })).await?;
    let batch = out["batch_ids"][0].as_u64().context("batch id")?;
    let mut rows = Vec::new();
    for entry in h.hub().store.down_log(site, 0, 1000)? {
        if let DownEvent::BatchChunk(chunk) = entry.event
            && chunk.batch_id == batch
        {
            rows.extend(chunk.rows.iter().map(|r| (batch, r.row_id)));
        }
    }
    Ok(rows)
}

/// Two sites, a project at both, attempts over 40 days sent up through the sync store, and
/// a sub-admin `mine` of site A with the reports module.
async fn world() -> Result<(Harness, World)> {
    let hq = TestHub::launch().await?;
    let h = hq.with(common::cookie_client(Duration::from_secs(30))?);
    ok(&h, reqwest::Method::POST, "/api/login", json!({ "username": "admin", "password": h.password })).await?;
    let site_a = ok(&h, reqwest::Method::POST, "/api/sites", json!({ "name": SITE_A })).await?["id"].as_i64().context("id")?;
    let site_b = ok(&h, reqwest::Method::POST, "/api/sites", json!({ "name": SITE_B })).await?["id"].as_i64().context("id")?;
    let category = ok(&h, reqwest::Method::POST, "/api/categories", json!({ "name": "信用卡" })).await?["id"].as_i64().context("id")?;
    let fields = json!([{ "key": "result", "title": "本次业务结果", "kind": "single_choice", "options": ["成功", "失败"] }]);
    let project = ok(&h, reqwest::Method::POST, "/api/projects", json!({ "category_id": category, "name": "分期推荐", "record_fields": fields }))
        .await?["id"]
        .as_i64()
        .context("id")?;
    let other_project = ok(&h, reqwest::Method::POST, "/api/projects", json!({ "category_id": category, "name": "成都项目" })).await?["id"]
        .as_i64()
        .context("id")?;
    ok(&h, reqwest::Method::PUT, &format!("/api/projects/{project}/sites"), json!({ "site_ids": [site_a, site_b] })).await?;
    ok(&h, reqwest::Method::PUT, &format!("/api/projects/{other_project}/sites"), json!({ "site_ids": [site_b] })).await?;
    let rows_a = dispatch(&h, project, site_a, &["13800000001", "13800000002", "13800000003", "13800000004"]).await?;
    let rows_b = dispatch(&h, project, site_b, &["13900000001", "13900000002", "13900000003"]).await?;
    let rows_other = dispatch(&h, other_project, site_b, &["13700000001"]).await?;

    let now = hq_hub::store::now_unix();
    let day = 86_400;
    type Plan = (i64, (u64, u64), i64, Outcome, Option<&'static str>);
    let plan: Vec<Plan> = vec![
        (site_a, rows_a[0], now - 120, Outcome::Connected, Some("成功")),
        (site_a, rows_a[1], now - 300, Outcome::NoAnswer, None),
        (site_a, rows_a[2], now - 3_700, Outcome::Connected, Some("失败")),
        (site_a, rows_a[3], now - day, Outcome::Connected, Some("成功")),
        (site_a, rows_a[0], now - 3 * day, Outcome::Busy, None),
        (site_a, rows_a[1], now - 20 * day, Outcome::Connected, Some("成功")),
        (site_a, rows_a[2], now - 40 * day, Outcome::Connected, Some("成功")),
        (site_b, rows_b[0], now - 200, Outcome::Abandoned, None),
        (site_b, rows_b[1], now - 400, Outcome::Connected, Some("成功")),
        (site_b, rows_b[2], now - day - 60, Outcome::NoAnswer, None),
        (site_b, rows_b[0], now - 5 * day, Outcome::Connected, Some("失败")),
        (site_b, rows_other[0], now - 100, Outcome::Connected, None),
    ];
    let mut sent = Vec::new();
    let mut seq: BTreeMap<i64, u64> = BTreeMap::new();
    for (i, (site, (batch, row), started_at, outcome, result)) in plan.into_iter().enumerate() {
        let attempt_id = 1000 + i as u64;
        let answered = !matches!(outcome, Outcome::NoAnswer | Outcome::Busy);
        let attempt = CallAttempt {
            attempt_id,
            batch_id: batch,
            row_id: row,
            started_at,
            answered_at: answered.then_some(started_at + 8),
            ended_at: started_at + 60,
            outcome,
            hangup_side: Some(HangupSide::Customer),
            agent: (outcome == Outcome::Connected).then(|| "8001".to_string()),
            talk_seconds: if outcome == Outcome::Connected { 45 } else { 0 },
            recording_sha256: None,
            kind: sync_protocol::AttemptKind::Predictive,
        };
        let next = seq.entry(site).or_insert(0);
        *next += 1;
        h.hub().store.apply_up(site as u64, &UpEntry { epoch: 1, seq: *next, event: UpEvent::CallAttempt(attempt) })?;
        if let Some(value) = result {
            *next += 1;
            let record = BusinessRecord { attempt_id, batch_id: batch, row_id: row, agent: "8001".into(), saved_at: started_at + 70, values: vec![("result".into(), value.into())] };
            h.hub().store.apply_up(site as u64, &UpEntry { epoch: 1, seq: *next, event: UpEvent::BusinessRecord(record) })?;
        }
        if (batch, row) != rows_other[0] {
            sent.push(Sent { site, started_at, outcome, result });
        }
    }
    // `mine` sees the project at site A only; `other` administers only the other project.
    let modules = json!(["reports"]);
    let role = ok(&h, reqwest::Method::POST, "/api/roles", json!({ "name": "报表", "modules": modules })).await?["id"].clone();
    let mine = ok(&h, reqwest::Method::POST, "/api/accounts", json!({ "username": "mine", "password": "sub-secret-1", "role_id": role, "site_ids": [site_a] })).await?["id"].clone();
    ok(&h, reqwest::Method::PUT, &format!("/api/projects/{project}/admins"), json!({ "admins": [{ "account_id": mine, "site_ids": [site_a] }] })).await?;
    Ok((h, World { site_a, site_b, category, project, other_project, sent, now }))
}

/// The China-time day of unix seconds.
fn china_day(unix: i64) -> i64 {
    (unix + 8 * 3600).div_euclid(86_400)
}

/// The preview's definition: by site, dials, connected, a ratio and 本次业务结果-成功.
fn def(tags: &[&str]) -> Value {
    json!({
        "name": "统计-综合话务报表",
        "tags": tags,
        "conditions": [],
        "columns": [
            { "header": "外呼数", "statistic": { "kind": "dials" } },
            { "header": "外呼接通数", "statistic": { "kind": "dial_connected" } },
            { "header": "接通率", "statistic": { "kind": "dial_connected" }, "divide_by": { "kind": "dials" } },
            { "header": "本次业务结果-成功", "statistic": { "kind": "field_value", "key": "result", "value": "成功" } },
        ],
    })
}

/// `[dials, connected, rate, successes]` of the attempts in `days` passing `keep`.
fn expected(sent: &[Sent], days: (i64, i64), keep: impl Fn(&Sent) -> bool) -> Vec<Value> {
    let rows: Vec<&Sent> = sent.iter().filter(|s| (days.0..=days.1).contains(&china_day(s.started_at)) && keep(s)).collect();
    let dials = rows.len() as f64;
    let connected = rows.iter().filter(|s| !matches!(s.outcome, Outcome::NoAnswer | Outcome::Busy)).count() as f64;
    let success = rows.iter().filter(|s| s.result == Some("成功")).count() as f64;
    let rate = if dials > 0.0 { json!(connected / dials) } else { Value::Null };
    vec![json!(dials), json!(connected), rate, json!(success)]
}

fn run_body(w: &World, tags: &[&str], time: Value) -> Value {
    json!({ "def": def(tags), "projects": [w.project], "time": time })
}

#[tokio::test]
async fn the_preview_counts_each_site_under_every_time_filter() -> Result<()> {
    let (h, w) = world().await?;
    let today = china_day(w.now);
    let filters = [
        (json!({ "kind": "today" }), (today, today)),
        (json!({ "kind": "yesterday" }), (today - 1, today - 1)),
        (json!({ "kind": "last_7_days" }), (today - 6, today)),
        (json!({ "kind": "last_month" }), (today - 29, today)),
        (json!({ "kind": "custom", "from": "2000-01-01", "to": "2000-12-31" }), (0, 0)),
    ];
    for (time, days) in filters {
        let view = ok(&h, reqwest::Method::POST, "/api/reports/run", run_body(&w, &["site"], time.clone())).await?;
        assert_eq!(view["headers"], json!(["外呼职场", "外呼数", "外呼接通数", "接通率", "本次业务结果-成功"]), "{time}");
        let days = if time["kind"] == "custom" { (1, 0) } else { days };
        let mut want_rows = Vec::new();
        for (site, name) in [(w.site_a, SITE_A), (w.site_b, SITE_B)] {
            let values = expected(&w.sent, days, |s| s.site == site);
            if values[0] != json!(0.0) {
                want_rows.push(json!({ "labels": [name], "values": values }));
            }
        }
        assert_eq!(view["rows"], json!(want_rows), "{time}");
        assert_eq!(view["total"]["values"], json!(expected(&w.sent, days, |_| true)), "{time}");
        assert_eq!(view["chart"]["kind"], "bar");
    }
    // A year back catches the 40-day-old call; by day, one line point per day with calls.
    let from = reports::day_text(today - 365);
    let to = reports::day_text(today);
    let view = ok(&h, reqwest::Method::POST, "/api/reports/run", run_body(&w, &["day"], json!({ "kind": "custom", "from": from, "to": to }))).await?;
    let days: std::collections::BTreeSet<i64> = w.sent.iter().map(|s| china_day(s.started_at)).collect();
    let labels: Vec<Value> = view["rows"].as_array().context("rows")?.iter().map(|r| r["labels"][0].clone()).collect();
    assert_eq!(labels, days.iter().map(|d| json!(reports::day_text(*d))).collect::<Vec<_>>());
    assert_eq!(view["chart"]["kind"], "line");
    assert_eq!(view["total"]["values"], json!(expected(&w.sent, (today - 365, today), |_| true)));
    // 数据来源: the dispatching account; an account that dispatched nothing counts nothing.
    let mut body = run_body(&w, &["site"], json!({ "kind": "last_month" }));
    body["accounts"] = json!(["admin"]);
    let view = ok(&h, reqwest::Method::POST, "/api/reports/run", body.clone()).await?;
    assert_eq!(view["total"]["values"], json!(expected(&w.sent, (today - 29, today), |_| true)));
    body["accounts"] = json!(["nobody"]);
    let view = ok(&h, reqwest::Method::POST, "/api/reports/run", body).await?;
    assert_eq!((view["rows"].clone(), view["total"]["values"][0].clone()), (json!([]), json!(0.0)));
    // A condition on the business field: only the successes' sites.
    let mut body = run_body(&w, &["site"], json!({ "kind": "last_month" }));
    body["def"]["conditions"] = json!([{ "subject": { "kind": "field", "key": "result" }, "values": ["成功"] }]);
    let view = ok(&h, reqwest::Method::POST, "/api/reports/run", body).await?;
    let want = expected(&w.sent, (today - 29, today), |s| s.result == Some("成功"));
    assert_eq!(view["total"]["values"], json!(want));
    h.stop().await
}

#[tokio::test]
async fn bad_definitions_and_ranges_name_the_field_in_the_callers_language() -> Result<()> {
    let (h, w) = world().await?;
    let post = |body: Value| call(&h, reqwest::Method::POST, "/api/reports/run", Some(body));
    let (status, answer) = post(run_body(&w, &["site", "team", "agent", "hour", "day", "month"], json!({ "kind": "today" }))).await?;
    assert_eq!((status, answer["error"].clone()), (StatusCode::BAD_REQUEST, json!("标签：最多 5 项（现有 6 项）")));
    let mut body = run_body(&w, &["site"], json!({ "kind": "today" }));
    body["def"]["columns"][1]["header"] = json!("外呼数");
    let (status, answer) = post(body).await?;
    assert_eq!((status, answer["error"].clone()), (StatusCode::BAD_REQUEST, json!("数值第 2 项的表头名称：重复")));
    let (status, answer) = post(run_body(&w, &["site"], json!({ "kind": "custom", "from": "2025-01-01", "to": "2026-06-30" }))).await?;
    assert_eq!((status, answer["error"].clone()), (StatusCode::BAD_REQUEST, json!("to：时间段最多 366 天（现有 546 天）")));
    let (status, answer) = post(run_body(&w, &["site"], json!({ "kind": "custom", "from": "2026-02-30", "to": "2026-03-01" }))).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"].as_str().unwrap_or_default().starts_with("from："), "{answer}");
    let mut body = run_body(&w, &["site"], json!({ "kind": "today" }));
    body["projects"] = json!([]);
    let (status, answer) = post(body).await?;
    assert_eq!((status, answer["error"].clone()), (StatusCode::BAD_REQUEST, json!("projects：请至少选择一个项目")));
    // English after the switch.
    h.admin.get(format!("{}/lang/en", h.base)).send().await?;
    let (status, answer) = post(run_body(&w, &["site", "team", "agent", "hour", "day", "month"], json!({ "kind": "today" }))).await?;
    assert_eq!((status, answer["error"].clone()), (StatusCode::BAD_REQUEST, json!("Tags: at most 5 (got 6)")));
    let (_, answer) = post(run_body(&w, &["site"], json!({ "kind": "custom", "from": "2026-03-01", "to": "2026-02-01" }))).await?;
    assert_eq!(answer["error"], "To: the range ends before it starts");
    h.stop().await
}

/// Every cell of the first sheet as text (numbers as Rust prints them).
fn sheet_cells(bytes: Vec<u8>) -> Result<Vec<Vec<String>>> {
    let mut book: Xlsx<_> = Xlsx::new(std::io::Cursor::new(bytes))?;
    let range = book.worksheet_range_at(0).context("a sheet")??;
    Ok(range
        .rows()
        .map(|row| {
            row.iter()
                .map(|c| match c {
                    Data::Float(f) => f.to_string(),
                    Data::Int(i) => i.to_string(),
                    Data::String(s) => s.clone(),
                    Data::Empty => String::new(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect())
}

/// The view's header, rows and total as the sheet holds them from its header row on.
fn view_cells(view: &Value) -> Vec<Vec<String>> {
    let mut out = vec![view["headers"].as_array().into_iter().flatten().map(|h| h.as_str().unwrap_or_default().to_string()).collect()];
    let rows = view["rows"].as_array().cloned().unwrap_or_default();
    for row in rows.iter().chain(std::iter::once(&view["total"])) {
        let mut line: Vec<String> = row["labels"].as_array().into_iter().flatten().map(|l| l.as_str().unwrap_or_default().to_string()).collect();
        line.resize(view["tag_count"].as_u64().unwrap_or(0) as usize, String::new());
        line.extend(row["values"].as_array().into_iter().flatten().map(|v| v.as_f64().map(|f| f.to_string()).unwrap_or_default()));
        out.push(line);
    }
    out
}

#[tokio::test]
async fn the_export_holds_the_preview_and_a_native_chart() -> Result<()> {
    let (h, w) = world().await?;
    let body = run_body(&w, &["site", "hangup_side"], json!({ "kind": "last_month" }));
    let view = ok(&h, reqwest::Method::POST, "/api/reports/run", body.clone()).await?;
    let response = h.admin.post(format!("{}/api/reports/export", h.base)).json(&body).send().await?;
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.bytes().await?.to_vec();
    // The chart is a part of the package (its name is stored plainly in the zip directory).
    assert!(bytes.windows(20).any(|w| w == b"xl/charts/chart1.xml"), "no native chart in the workbook");
    let cells = sheet_cells(bytes)?;
    assert_eq!(cells[0][0], "统计-综合话务报表");
    assert!(cells[1][0].contains("时间筛选") && cells[1][0].contains(view["range"].as_str().unwrap_or("?")), "{:?}", cells[1]);
    let table: Vec<Vec<String>> = cells[3..].iter().map(|r| r[..view["headers"].as_array().map_or(0, Vec::len)].to_vec()).collect();
    assert_eq!(table, view_cells(&view));
    assert!(table.iter().any(|r| r[1] == "客户挂断"), "words, not keys: {table:?}");
    h.stop().await
}

#[tokio::test]
async fn a_sub_admin_sees_only_its_sites_and_projects_in_every_report() -> Result<()> {
    let (h, w) = world().await?;
    let mine = common::cookie_client(Duration::from_secs(30))?;
    let (status, _) = common::send(&mine, &h.base, reqwest::Method::POST, "/api/login", Some(json!({ "username": "mine", "password": "sub-secret-1" }))).await?;
    assert_eq!(status, StatusCode::OK);
    let today = china_day(w.now);
    let month = (today - 29, today);
    let only_a = expected(&w.sent, month, |s| s.site == w.site_a);
    // Preview: site A's row only, and the total is A's.
    let body = run_body(&w, &["site"], json!({ "kind": "last_month" }));
    let (status, view) = common::send(&mine, &h.base, reqwest::Method::POST, "/api/reports/run", Some(body.clone())).await?;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["rows"], json!([{ "labels": [SITE_A], "values": only_a }]));
    assert_eq!(view["total"]["values"], json!(only_a));
    // Asking for site B changes nothing: its scope wins.
    let mut b = body.clone();
    b["sites"] = json!([w.site_b]);
    let (_, view) = common::send(&mine, &h.base, reqwest::Method::POST, "/api/reports/run", Some(b)).await?;
    assert_eq!(view["rows"], json!([]));
    // The leaderboard: ranked, A only.
    let mut board = body.clone();
    board["rank"] = json!(true);
    let (_, view) = common::send(&mine, &h.base, reqwest::Method::POST, "/api/reports/run", Some(board.clone())).await?;
    assert_eq!(view["headers"][0], "名次");
    assert_eq!(view["rows"], json!([{ "labels": ["1", SITE_A], "values": only_a }]));
    // 在执行项目 / 项目报表: one line per project, its figures at A only.
    let mut per_project = body.clone();
    per_project["def"]["tags"] = json!(["project"]);
    let (_, view) = common::send(&mine, &h.base, reqwest::Method::POST, "/api/reports/run", Some(per_project)).await?;
    assert_eq!(view["rows"], json!([{ "labels": ["分期推荐"], "values": only_a, "project": w.project }]));
    // The export: A's figures, B's name nowhere.
    let response = mine.post(format!("{}/api/reports/export", h.base)).json(&board).send().await?;
    assert_eq!(response.status(), StatusCode::OK);
    let cells = sheet_cells(response.bytes().await?.to_vec())?;
    assert!(cells.iter().flatten().any(|c| c == SITE_A) && !cells.iter().flatten().any(|c| c.contains(SITE_B)), "{cells:?}");
    // The comprehensive report with a project it does not see: refused as unknown.
    let mut both = body.clone();
    both["projects"] = json!([w.project, w.other_project]);
    let (status, answer) = common::send(&mine, &h.base, reqwest::Method::POST, "/api/reports/run", Some(both)).await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    // Choices: its own site only.
    let (_, choices) = common::send(&mine, &h.base, reqwest::Method::GET, &format!("/api/reports/projects/{}/choices", w.project), None).await?;
    assert_eq!(choices["sites"], json!([{ "id": w.site_a, "name": SITE_A }]));
    assert_eq!(choices["fields"][0]["options"], json!(["成功", "失败"]));
    // Pages: its project, not the other one.
    for path in ["/reports".to_string(), "/reports/overall".into(), "/reports/running".into(), format!("/reports/categories/{}", w.category)] {
        let text = mine.get(format!("{}{path}", h.base)).send().await?.text().await?;
        assert!(text.contains("分期推荐") && !text.contains("成都项目"), "{path}: {text}");
    }
    let status = mine.get(format!("{}/reports/projects/{}/board", h.base, w.other_project)).send().await?.status();
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The admin sees both sites in the same report.
    let (_, view) = call(&h, reqwest::Method::POST, "/api/reports/run", Some(body)).await?;
    assert_eq!(view["rows"].as_array().map(Vec::len), Some(2));
    h.stop().await
}

#[tokio::test]
async fn every_report_page_renders_in_both_languages() -> Result<()> {
    let (h, w) = world().await?;
    let pages = [
        ("/reports".to_string(), "数据报表管理", "Reports"),
        (format!("/reports/projects/{}", w.project), "数据编辑", "Edit"),
        (format!("/reports/projects/{}/board", w.project), "项目榜单", "Leaderboard"),
        (format!("/reports/categories/{}", w.category), "项目报表", "Project report"),
        ("/reports/overall".to_string(), "综合项目报表", "Comprehensive report"),
        ("/reports/running".to_string(), "在执行项目", "Running projects"),
    ];
    for (path, zh, _) in &pages {
        let response = h.admin.get(format!("{}{path}", h.base)).send().await?;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let text = response.text().await?;
        assert!(text.contains(zh), "{path}");
        let scripted = text.contains("/static/reports.js") && text.contains("/static/echarts.min.js");
        assert_eq!(scripted, path != "/reports", "{path}: the report pages load the chart library and their script");
        assert!(!text.contains("<script>"), "{path}: no inline script");
    }
    h.admin.get(format!("{}/lang/en", h.base)).send().await?;
    for (path, _, en) in &pages {
        let text = h.admin.get(format!("{}{path}", h.base)).send().await?.text().await?;
        assert!(text.contains(en), "{path} in English");
    }
    let status = h.admin.get(format!("{}/reports/projects/999", h.base)).send().await?.status();
    assert_eq!(status, StatusCode::NOT_FOUND);
    let _ = w.site_b;
    h.stop().await
}
