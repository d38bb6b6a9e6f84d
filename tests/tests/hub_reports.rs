//! HQ's report console (数据报表管理, H14-H17) in a real hub and a real headless Chromium, over
//! attempts two sites sent up the real QUIC link (each site's outbox filled as a day offline
//! leaves it, then the box connects and HQ commits the entries).
//!
//! - `an_admin_builds_previews_and_exports_a_report`: the admin builds a report with tags, a
//!   condition on a business field, statistics and a ratio column (six tags are refused next to
//!   the tags in Chinese first); previews it with each time filter — the table's figures are
//!   held against a count made here from the attempts sent —; exports it and the workbook read
//!   with calamine holds the preview's table. Then the leaderboard (项目榜单), the project
//!   report (项目报表), the comprehensive report (综合项目报表) and the running projects (在执行
//!   项目) under each time filter. Screenshots `hub-report-*.png` at 1366×768.
//! - The same test logs in as a sub-admin of one site: its preview, leaderboard and export
//!   hold only its site, and the other project is not offered.

mod sync_support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use calamine::{Data, Reader, Xlsx};
use serde_json::{Value, json};
use sync_link::client::{self, LinkStatus};
use sync_protocol::{BusinessRecord, CallAttempt, DownEvent, HangupSide, Outcome, UpEvent};
use tests::{Browser, RunningHub, wait_for_some, wait_until};
use tokio_util::sync::CancellationToken;

use sync_support::fill_outbox;

const WAIT: Duration = Duration::from_secs(30);
const SITE_A: &str = "杭州一号职场";
const SITE_B: &str = "成都二号职场";
const PROJECT: &str = "分期推荐";
const OTHER: &str = "流量包";

/// A JSON API client with its own session.
struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn login(base: &str, username: &str, password: &str) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder().cookie_store(true).timeout(WAIT).build()?;
        let api = Api { base: base.to_string(), http };
        api.send(reqwest::Method::POST, "/api/login", Some(json!({ "username": username, "password": password }))).await?;
        Ok(api)
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        ensure!(status.is_success(), "{method} {path}: {status}: {text}");
        serde_json::from_str(&text).with_context(|| format!("{path}: not JSON: {text}"))
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn bytes(&self, path: &str, body: &Value) -> anyhow::Result<Vec<u8>> {
        let response = self.http.post(format!("{}{path}", self.base)).json(body).send().await?;
        ensure!(response.status().is_success(), "{path}: {}", response.status());
        Ok(response.bytes().await?.to_vec())
    }
}

/// One attempt a site sent: when, whether answered, the record's result.
#[derive(Debug, Clone)]
struct Sent {
    site: u64,
    started_at: i64,
    answered: bool,
    result: Option<&'static str>,
}

fn xlsx(phones: &[String]) -> anyhow::Result<Vec<u8>> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.write(0, 0, "手机号码")?;
    for (i, phone) in phones.iter().enumerate() {
        sheet.write(i as u32 + 1, 0, phone.as_str())?;
    }
    Ok(workbook.save_to_buffer()?)
}

/// Imports `n` numbers into `project` and dispatches them to `site`: the rows' (batch, row).
async fn dispatch(hub: &RunningHub, api: &Api, project: u64, site: u64, first_phone: u64, n: u64) -> anyhow::Result<Vec<(u64, u64)>> {
    let phones: Vec<String> = (0..n).map(|i| (first_phone + i).to_string()).collect();
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(xlsx(&phones)?).file_name("名单.xlsx"));
    let response = api.http.post(format!("{}/api/projects/{project}/files", api.base)).multipart(form).send().await?;
    let file = response.json::<Value>().await?["file_id"].as_u64().context("file id")?;
    let out = api.post(&format!("/api/files/{file}/dispatch"), json!({ "name": format!("批次{file}"), "priority": 5, "site_ids": [site] })).await?;
    let batch = out["batch_ids"][0].as_u64().context("batch id")?;
    let mut rows = Vec::new();
    for entry in hub.hub().store.down_log(site as i64, 0, 10_000)? {
        if let DownEvent::BatchChunk(chunk) = entry.event
            && chunk.batch_id == batch
        {
            rows.extend(chunk.rows.iter().map(|r| (batch, r.row_id)));
        }
    }
    Ok(rows)
}

/// The site's day as up events: `(row, seconds ago, answered, result)`.
fn events(rows: &[(u64, u64)], plan: &[(usize, i64, bool, Option<&'static str>)], now: i64) -> Vec<UpEvent> {
    let mut out = Vec::new();
    for (i, (row, ago, answered, result)) in plan.iter().enumerate() {
        let (batch_id, row_id) = rows[*row];
        let started_at = now - ago;
        out.push(UpEvent::CallAttempt(CallAttempt {
            attempt_id: 1 + i as u64,
            batch_id,
            row_id,
            started_at,
            answered_at: answered.then_some(started_at + 6),
            ended_at: started_at + 70,
            outcome: if *answered { Outcome::Connected } else { Outcome::NoAnswer },
            hangup_side: Some(if i % 2 == 0 { HangupSide::Customer } else { HangupSide::Agent }),
            agent: answered.then(|| "8001".to_string()),
            talk_seconds: if *answered { 50 } else { 0 },
            recording_sha256: None,
            kind: sync_protocol::AttemptKind::Predictive,
        }));
        if let Some(value) = result {
            out.push(UpEvent::BusinessRecord(BusinessRecord {
                attempt_id: 1 + i as u64,
                batch_id,
                row_id,
                agent: "8001".into(),
                saved_at: started_at + 80,
                values: vec![("result".into(), (*value).into())],
            }));
        }
    }
    out
}

/// Creates and enrolls a site, fills its outbox with `events` and runs its link until HQ
/// committed every entry; the link is then stopped.
async fn sync_site(hub: &RunningHub, site: u64, code: &str, dir: &Path, events: Vec<UpEvent>) -> anyhow::Result<()> {
    let identity = client::enroll(&hub.hub().sync_addr.to_string(), code, &dir.join("identity")).await?;
    let total = fill_outbox(dir, events)?;
    let store = Arc::new(appliance::store::Store::open(dir)?);
    let epoch = store.epoch();
    let (status_tx, _status) = tokio::sync::watch::channel(LinkStatus::Connecting);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(client::run(identity, store, status_tx, shutdown.clone()));
    let hub_store = hub.hub().store.clone();
    wait_until(WAIT, || {
        let hub_store = hub_store.clone();
        async move {
            use sync_link::HubStore;
            hub_store.up_committed(site, epoch).ok().flatten().unwrap_or(0) >= total
        }
    })
    .await
    .context("HQ commits the site's entries")?;
    shutdown.cancel();
    tokio::time::timeout(WAIT, task).await.context("the site's link stops")??;
    Ok(())
}

struct World {
    project: u64,
    other: u64,
    category: u64,
    site_a: u64,
    sent: Vec<Sent>,
    now: i64,
}

/// Two sites with a project (and B a second one), 40 days of attempts through the link, and
/// the sub-admin `mine` of site A.
async fn world(hub: &RunningHub, api: &Api, dir: &Path) -> anyhow::Result<World> {
    let id = |v: Value| v["id"].as_u64().context("id");
    let site_a = id(api.post("/api/sites", json!({ "name": SITE_A })).await?)?;
    let site_b = id(api.post("/api/sites", json!({ "name": SITE_B })).await?)?;
    let category = id(api.post("/api/categories", json!({ "name": "信用卡" })).await?)?;
    let fields = json!([{ "key": "result", "title": "本次业务结果", "kind": "single_choice", "options": ["成功", "失败"] }]);
    let project = id(api.post("/api/projects", json!({ "category_id": category, "name": PROJECT, "record_fields": fields })).await?)?;
    let other = id(api.post("/api/projects", json!({ "category_id": category, "name": OTHER })).await?)?;
    api.send(reqwest::Method::PUT, &format!("/api/projects/{project}/sites"), Some(json!({ "site_ids": [site_a, site_b] }))).await?;
    api.send(reqwest::Method::PUT, &format!("/api/projects/{other}/sites"), Some(json!({ "site_ids": [site_b] }))).await?;
    let rows_a = dispatch(hub, api, project, site_a, 13_800_000_001, 6).await?;
    let mut rows_b = dispatch(hub, api, project, site_b, 13_900_000_001, 4).await?;
    rows_b.extend(dispatch(hub, api, other, site_b, 13_700_000_001, 2).await?);
    let now = hq_hub::store::now_unix();
    let (h, d) = (3_600, 86_400);
    let plan_a = [(0, 100, true, Some("成功")), (1, 200, false, None), (2, 2 * h, true, Some("失败")), (3, 3 * h, true, Some("成功")),
        (4, d + 60, true, Some("成功")), (5, d + 120, false, None), (0, 4 * d, true, None), (1, 12 * d, true, Some("成功")), (2, 45 * d, true, Some("成功"))];
    let plan_b = [(0, 300, true, Some("成功")), (1, 400, false, None), (2, d + 500, true, Some("失败")), (3, 6 * d, true, Some("成功")), (4, 500, true, None), (5, 2 * d, true, None)];
    let mut sent = Vec::new();
    for (site, plan) in [(site_a, &plan_a[..]), (site_b, &plan_b[..])] {
        for (row, ago, answered, result) in plan {
            // Rows 4 and 5 of site B are the other project's.
            if site == site_a || *row < 4 {
                sent.push(Sent { site, started_at: now - ago, answered: *answered, result: *result });
            }
        }
    }
    for (site, rows, plan, name) in [(site_a, &rows_a, &plan_a[..], "a"), (site_b, &rows_b, &plan_b[..], "b")] {
        let code = api.post(&format!("/api/sites/{site}/enrollment-code"), json!({})).await?["code"].as_str().context("code")?.to_string();
        sync_site(hub, site, &code, &dir.join(name), events(rows, plan, now)).await?;
    }
    let role = api.post("/api/roles", json!({ "name": "报表", "modules": ["reports"] })).await?["id"].clone();
    let mine = api.post("/api/accounts", json!({ "username": "mine", "password": "sub-secret-1", "role_id": role, "site_ids": [site_a] })).await?["id"].clone();
    api.send(reqwest::Method::PUT, &format!("/api/projects/{project}/admins"), Some(json!({ "admins": [{ "account_id": mine, "site_ids": [site_a] }] }))).await?;
    Ok(World { project, other, category, site_a, sent, now })
}

fn china_day(unix: i64) -> i64 {
    (unix + 8 * 3600).div_euclid(86_400)
}

/// Days since 1970-01-01 as `YYYY-MM-DD` (H. Hinnant's civil-from-days).
fn day_text(day: i64) -> String {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

async fn browser_login(browser: &Browser, url: &str, username: &str, password: &str) -> anyhow::Result<()> {
    browser.goto(&format!("{url}/login")).await?;
    browser.wait_for("input[name=username]", WAIT).await?.send_keys(username).await?;
    browser.wait_for("input[name=password]", WAIT).await?.send_keys(password).await?;
    browser.wait_for("form button", WAIT).await?.click().await?;
    wait_until(WAIT, || async { browser.client().current_url().await.map(|u| !u.path().starts_with("/login")).unwrap_or(false) })
        .await
        .context("logged in")?;
    Ok(())
}

/// The text of `css` (empty when absent).
async fn text_of(browser: &Browser, css: &str) -> String {
    match browser.client().find(fantoccini::Locator::Css(css)).await {
        Ok(element) => element.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

async fn attr(browser: &Browser, css: &str, name: &str) -> anyhow::Result<String> {
    Ok(browser.wait_for(css, WAIT).await?.attr(name).await?.unwrap_or_default())
}

/// Clicks `button` and waits until the page has drawn one more report; the table's cells.
async fn run_and_read(browser: &Browser, button: &str) -> anyhow::Result<Vec<Vec<String>>> {
    let before: u64 = attr(browser, "#report-page", "data-ran").await?.parse().unwrap_or(0);
    browser.wait_for(button, WAIT).await?.click().await?;
    let drawn = wait_for_some(WAIT, || async {
        let now: u64 = attr(browser, "#report-page", "data-ran").await.ok()?.parse().ok()?;
        (now > before).then_some(())
    })
    .await;
    if drawn.is_err() {
        bail!("the report is not drawn again; the page says {:?}", text_of(browser, "#run-result").await);
    }
    table(browser).await
}

/// Waits for the first drawing of a report page; its cells.
async fn first_table(browser: &Browser) -> anyhow::Result<Vec<Vec<String>>> {
    let drawn = wait_for_some(WAIT, || async { attr(browser, "#report-page", "data-ran").await.ok().filter(|r| !r.is_empty()) }).await;
    if drawn.is_err() {
        bail!("the report is not drawn; the page says {:?}", text_of(browser, "#run-result").await);
    }
    table(browser).await
}

/// The result table's header and rows as text.
async fn table(browser: &Browser) -> anyhow::Result<Vec<Vec<String>>> {
    let mut out = Vec::new();
    for row in browser.client().find_all(fantoccini::Locator::Css("#report-result tr")).await? {
        let mut cells = Vec::new();
        for cell in row.find_all(fantoccini::Locator::Css("th, td")).await? {
            cells.push(cell.text().await?);
        }
        out.push(cells);
    }
    Ok(out)
}

/// The xlsx's table from its header row (row 4) on, numbers as the page writes them.
fn sheet_table(bytes: Vec<u8>, ratio_cols: &[usize]) -> anyhow::Result<Vec<Vec<String>>> {
    let mut book: Xlsx<_> = Xlsx::new(std::io::Cursor::new(bytes))?;
    let range = book.worksheet_range_at(0).context("a sheet")??;
    let mut out = Vec::new();
    for row in range.rows().skip(3) {
        let cells = row
            .iter()
            .enumerate()
            .map(|(i, c)| match c {
                Data::Float(f) if ratio_cols.contains(&i) => format!("{:.2}%", f * 100.0),
                Data::Float(f) => format!("{}", f.round() as i64),
                Data::Int(n) => n.to_string(),
                Data::String(s) => s.clone(),
                Data::Empty => String::new(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>();
        out.push(cells);
    }
    Ok(out)
}

/// `(dials, successes among the kept)` of the attempts in `days` passing `keep`.
fn count(sent: &[Sent], days: (i64, i64), keep: impl Fn(&Sent) -> bool) -> (usize, usize, usize) {
    let rows: Vec<&Sent> = sent.iter().filter(|s| (days.0..=days.1).contains(&china_day(s.started_at)) && keep(s)).collect();
    (rows.len(), rows.iter().filter(|s| s.answered).count(), rows.iter().filter(|s| s.result == Some("成功")).count())
}

async fn set_size(browser: &Browser) -> anyhow::Result<()> {
    browser.client().set_window_size(1366, 768).await?;
    Ok(())
}

async fn click(browser: &Browser, css: &str) -> anyhow::Result<()> {
    browser.wait_for(css, WAIT).await?.click().await?;
    Ok(())
}

/// The builder: six tags refused next to the tags; then tags, a condition on the business
/// field, a field count and a ratio column, saved.
async fn build_report(browser: &Browser) -> anyhow::Result<()> {
    let name = browser.wait_for("#report-editor input[name=name]", WAIT).await?;
    name.clear().await?;
    name.send_keys("分期推荐-职场成功率").await?;
    for tag in ["site", "team", "agent", "hour", "day", "month"] {
        let boxed = browser.wait_for(&format!("#tags input[value={tag}]"), WAIT).await?;
        if !boxed.is_selected().await? {
            boxed.click().await?;
        }
    }
    click(browser, "#report-save").await?;
    let error = wait_for_some(WAIT, || async { Some(text_of(browser, "[data-error-for=tags]").await).filter(|t| !t.is_empty()) }).await?;
    ensure!(error == "标签：最多 5 项（现有 6 项）", "the tags' error: {error}");
    // Keep 外呼职场 and 挂断位置 only.
    for tag in ["team", "agent", "hour", "day", "month"] {
        click(browser, &format!("#tags input[value={tag}]")).await?;
    }
    click(browser, "#tags input[value=hangup_side]").await?;
    // Condition: not 本次业务结果 = 失败.
    click(browser, "#add-condition").await?;
    browser.wait_for("#conditions .report-row select[name=subject]", WAIT).await?.select_by_value("field:result").await?;
    browser.wait_for("#conditions .report-row input[name=values]", WAIT).await?.send_keys("失败").await?;
    click(browser, "#conditions .report-row input[name=negate]").await?;
    // 本次业务结果-成功 and 成功率 = 成功 ÷ 外呼接通数.
    click(browser, "#add-column").await?;
    let rows = browser.client().find_all(fantoccini::Locator::Css("#columns .report-row")).await?;
    let last = rows.last().context("a column row")?;
    last.find(fantoccini::Locator::Css("select[name=statistic]")).await?.select_by_value("field_value:result:成功").await?;
    last.find(fantoccini::Locator::Css("input[name=header]")).await?.send_keys("本次业务结果-成功").await?;
    click(browser, "#add-ratio").await?;
    let rows = browser.client().find_all(fantoccini::Locator::Css("#columns .report-row")).await?;
    let last = rows.last().context("a ratio row")?;
    last.find(fantoccini::Locator::Css("select[name=statistic]")).await?.select_by_value("field_value:result:成功").await?;
    last.find(fantoccini::Locator::Css("select[name=divide_by]")).await?.select_by_value("dial_connected").await?;
    last.find(fantoccini::Locator::Css("input[name=header]")).await?.send_keys("成功率").await?;
    click(browser, "#report-save").await?;
    let saved = wait_for_some(WAIT, || async { Some(text_of(browser, "#save-result").await).filter(|t| !t.is_empty()) }).await?;
    ensure!(saved == "已保存", "saving: {saved}; tags: {}", text_of(browser, "[data-error-for=tags]").await);
    Ok(())
}

/// The expected total row of the built report under `days`: 外呼数, 外呼接通数, 接通率,
/// 分机接通数, 通话时长, 本次业务结果-成功, 成功率 — without the attempts recorded 失败.
fn expected_total(w: &World, days: (i64, i64), site: Option<u64>) -> Vec<String> {
    let keep = |s: &Sent| s.result != Some("失败") && site.is_none_or(|x| s.site == x);
    let (dials, connected, success) = count(&w.sent, days, keep);
    let pct = |a: usize, b: usize| if b == 0 { "-".to_string() } else { format!("{:.2}%", a as f64 * 100.0 / b as f64) };
    vec![dials.to_string(), connected.to_string(), pct(connected, dials), connected.to_string(), (connected * 50).to_string(), success.to_string(), pct(success, connected)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_builds_previews_and_exports_a_report() -> anyhow::Result<()> {
    let hub = RunningHub::start().await?;
    let api = Api::login(&hub.url, "admin", &hub.password).await?;
    let work = tempfile::tempdir()?;
    let w = world(&hub, &api, work.path()).await?;
    let shots = tests::screenshot_dir();

    let browser = Browser::start().await?;
    set_size(&browser).await?;
    browser_login(&browser, &hub.url, "admin", &hub.password).await?;
    browser.goto(&format!("{}/reports", hub.url)).await?;
    browser.wait_for("#report-projects", WAIT).await?;
    browser.screenshot(shots.join("hub-report-index.png")).await?;
    browser.goto(&format!("{}/reports/projects/{}", hub.url, w.project)).await?;
    first_table(&browser).await?;
    build_report(&browser).await?;
    browser.client().execute("window.scrollTo(0, 0);", vec![]).await?;

    let today = china_day(w.now);
    let from = day_text(today - 44);
    let times = [("today", (today, today)), ("yesterday", (today - 1, today - 1)), ("last_7_days", (today - 6, today)), ("last_month", (today - 29, today)), ("custom", (today - 44, today))];
    for (kind, days) in times {
        click(&browser, &format!("#report-filters input[name=time][value={kind}]")).await?;
        if kind == "custom" {
            // The date inputs take the browser's locale order; set their values directly.
            let script = format!("document.querySelector('#report-filters [name=from]').value='{from}';document.querySelector('#report-filters [name=to]').value='{}';", day_text(today));
            browser.client().execute(&script, vec![]).await?;
        }
        let cells = run_and_read(&browser, "#report-run").await?;
        ensure!(cells[0] == ["外呼职场", "挂断位置", "外呼数", "外呼接通数", "接通率", "分机接通数", "通话时长(秒)", "本次业务结果-成功", "成功率"], "{kind}: {:?}", cells[0]);
        let total = cells.last().context("a total row")?;
        ensure!(total[0] == "合计" && total[2..] == expected_total(&w, days, None)[..], "{kind}: total {total:?}");
        if kind == "last_month" {
            browser.client().execute("window.scrollTo(0, 0);", vec![]).await?;
            browser.screenshot(shots.join("hub-report-editor.png")).await?;
            browser.client().execute("document.getElementById('report-filters').scrollIntoView();", vec![]).await?;
            browser.screenshot(shots.join("hub-report-preview.png")).await?;
            // Export: the same request the page sent, read back with calamine.
            click(&browser, "#report-export").await?;
            wait_until(WAIT, || async { attr(&browser, "#report-page", "data-exported").await.is_ok_and(|e| e == "1") }).await.context("exported")?;
            let request: Value = serde_json::from_str(&attr(&browser, "#report-page", "data-request").await?)?;
            let sheet = sheet_table(api.bytes("/api/reports/export", &request).await?, &[4, 8])?;
            ensure!(sheet == cells, "the export differs from the preview:\n{sheet:?}\n{cells:?}");
        }
    }
    boards_and_multi_reports(&browser, &hub, &w).await?;
    browser.close().await?;
    sub_admin_sees_its_site(&hub, &w).await?;
    hub.stop().await
}

/// 项目榜单, 项目报表, 综合项目报表 and 在执行项目.
async fn boards_and_multi_reports(browser: &Browser, hub: &RunningHub, w: &World) -> anyhow::Result<()> {
    let shots = tests::screenshot_dir();
    let today = china_day(w.now);
    browser.goto(&format!("{}/reports/projects/{}/board", hub.url, w.project)).await?;
    first_table(browser).await?;
    click(browser, "#report-filters input[name=time][value=last_month]").await?;
    let cells = run_and_read(browser, "#report-run").await?;
    ensure!(cells[0][0] == "名次" && cells[1][0] == "1" && cells[2][0] == "2", "ranked: {cells:?}");
    let first: usize = cells[1][2].parse()?;
    let second: usize = cells[2][2].parse()?;
    ensure!(first >= second, "highest first: {cells:?}");
    browser.screenshot(shots.join("hub-report-board.png")).await?;

    browser.goto(&format!("{}/reports/categories/{}", hub.url, w.category)).await?;
    first_table(browser).await?;
    click(browser, "#report-filters input[name=time][value=last_month]").await?;
    let cells = run_and_read(browser, "#report-run").await?;
    let names: Vec<&str> = cells[1..cells.len() - 1].iter().map(|r| r[0].as_str()).collect();
    ensure!(names == [PROJECT, OTHER], "one line per sub-project: {cells:?}");
    browser.screenshot(shots.join("hub-report-category.png")).await?;

    browser.goto(&format!("{}/reports/overall", hub.url)).await?;
    first_table(browser).await?;
    // Only the first project chosen.
    browser.client().execute(&format!("for (const o of document.querySelectorAll('#report-filters [name=projects] option')) o.selected = o.value === '{}';", w.project), vec![]).await?;
    click(browser, "#report-filters input[name=time][value=last_month]").await?;
    let cells = run_and_read(browser, "#report-run").await?;
    ensure!(cells.len() == 3 && cells[1][0] == PROJECT, "{cells:?}");
    let (dials, _, _) = count(&w.sent, (today - 29, today), |_| true);
    ensure!(cells[1][1] == dials.to_string(), "dials of the month: {cells:?}");
    browser.screenshot(shots.join("hub-report-overall.png")).await?;

    browser.goto(&format!("{}/reports/running", hub.url)).await?;
    first_table(browser).await?;
    for (kind, days) in [("today", (today, today)), ("yesterday", (today - 1, today - 1)), ("last_7_days", (today - 6, today)), ("last_month", (today - 29, today))] {
        click(browser, &format!("#report-filters input[name=time][value={kind}]")).await?;
        let cells = run_and_read(browser, "#report-run").await?;
        let (dials, _, _) = count(&w.sent, days, |_| true);
        let row = cells.iter().find(|r| r[0] == PROJECT);
        match row {
            Some(row) => ensure!(row[1] == dials.to_string(), "{kind}: {cells:?}"),
            None => ensure!(dials == 0, "{kind}: {PROJECT} ran but is not listed: {cells:?}"),
        }
        if kind == "today" {
            browser.screenshot(shots.join("hub-report-running.png")).await?;
        }
    }
    Ok(())
}

/// The sub-admin of site A: its preview, leaderboard and export hold site A only.
async fn sub_admin_sees_its_site(hub: &RunningHub, w: &World) -> anyhow::Result<()> {
    let browser = Browser::start().await?;
    set_size(&browser).await?;
    browser_login(&browser, &hub.url, "mine", "sub-secret-1").await?;
    browser.goto(&format!("{}/reports/projects/{}", hub.url, w.project)).await?;
    first_table(&browser).await?;
    click(&browser, "#report-filters input[name=time][value=last_month]").await?;
    let cells = run_and_read(&browser, "#report-run").await?;
    let today = china_day(w.now);
    let sites: Vec<&str> = cells[1..cells.len() - 1].iter().map(|r| r[0].split(" · ").next().unwrap_or("")).collect();
    ensure!(!sites.is_empty() && sites.iter().all(|s| *s == SITE_A), "only site A: {cells:?}");
    let (dials, _, _) = count(&w.sent, (today - 29, today), |s| s.site == w.site_a);
    let total = cells.last().context("total")?;
    ensure!(total[total.len() - 5] == dials.to_string(), "site A's dials {dials}: {total:?}");
    let text = text_of(&browser, "#report-filters").await;
    ensure!(!text.contains(SITE_B), "the filters offer only its site: {text}");
    browser.client().execute("document.getElementById('report-filters').scrollIntoView();", vec![]).await?;
    browser.screenshot(tests::screenshot_dir().join("hub-report-subadmin.png")).await?;
    let request: Value = serde_json::from_str(&attr(&browser, "#report-page", "data-request").await?)?;
    let api = Api::login(&hub.url, "mine", "sub-secret-1").await?;
    let sheet = sheet_table(api.bytes("/api/reports/export", &request).await?, &[])?;
    ensure!(!sheet.iter().flatten().any(|c| c.contains(SITE_B)), "no site B in its export: {sheet:?}");
    browser.goto(&format!("{}/reports/overall", hub.url)).await?;
    first_table(&browser).await?;
    let options = text_of(&browser, "#report-filters [name=projects]").await;
    ensure!(options.contains(PROJECT) && !options.contains(OTHER), "only its projects: {options}");
    browser.goto(&format!("{}/reports/projects/{}/board", hub.url, w.other)).await?;
    let body = text_of(&browser, "main").await;
    if !body.contains("不存在") {
        bail!("another project's leaderboard must not open: {body}");
    }
    browser.close().await?;
    Ok(())
}
