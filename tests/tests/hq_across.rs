//! HQ's data across sites (业务资料, H26) in a real hub and a real headless Chromium, with
//! the records coming from two sites over the real sync link (QUIC, mutual TLS): each site
//! is an appliance store enrolled with a one-time code whose outbox holds the business
//! records its agents saved, as a day's work leaves it.
//!
//! - `an_admin_filters_business_records_across_two_sites_and_exports_them`: in the browser
//!   the admin marks 营销结果 filterable (筛选条件) on the project page, opens 业务资料,
//!   picks the project, filters 营销结果 = 成功 and sees exactly the 成功 records of both
//!   sites (numbers masked); the export link of that page downloads a workbook holding the
//!   same rows in words (checked with calamine); 客户资料 lists both sites' customers with
//!   the agent who called each. Screenshots `hub-business-records.png`,
//!   `hub-project-filterable.png` and `hub-customer-data.png` at 1366×768.

mod sync_support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use sync_link::client::{self, LinkStatus};
use sync_protocol::{AttemptKind, BusinessRecord, CallAttempt, DownEvent, Outcome, UpEvent};
use tests::{Browser, RunningHub, wait_for_some, wait_until};
use tokio_util::sync::CancellationToken;

use sync_support::fill_outbox;

/// Generous for a cold, shared 2-core machine; every wait is bounded by it.
const WAIT: Duration = Duration::from_secs(30);

/// A JSON API client with the session cookie.
struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn login(base: &str, password: &str) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder().cookie_store(true).timeout(WAIT).build()?;
        let api = Api { base: base.to_string(), http };
        api.send(reqwest::Method::POST, "/api/login", Some(json!({ "username": "admin", "password": password }))).await?;
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
        if !status.is_success() {
            bail!("{method} {path}: {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("{path}: not JSON: {text}"))
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn upload(&self, path: &str, bytes: Vec<u8>) -> anyhow::Result<Value> {
        let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(bytes).file_name("名单.xlsx"));
        let response = self.http.post(format!("{}{path}", self.base)).multipart(form).send().await?;
        let status = response.status();
        let text = response.text().await?;
        ensure!(status.is_success(), "upload {path}: {status}: {text}");
        Ok(serde_json::from_str(&text)?)
    }
}

fn call_list(phones: &[&str]) -> anyhow::Result<Vec<u8>> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.write_string(0, 0, "手机号码")?;
    sheet.write_string(0, 1, "客户姓名")?;
    for (idx, phone) in phones.iter().enumerate() {
        sheet.write_string(idx as u32 + 1, 0, *phone)?;
        sheet.write_string(idx as u32 + 1, 1, format!("客户{}", &phone[7..]))?;
    }
    Ok(workbook.save_to_buffer()?)
}

/// One site at work: created at HQ, its call list dispatched to it, its box enrolled with a
/// one-time code and its agents' calls and records in its outbox; answers the link's task.
struct Site {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn site_at_work(hub: &RunningHub, api: &Api, project: i64, name: &str, phones: &[&str], results: &[&str], dir: &Path) -> anyhow::Result<Site> {
    let site = api.post("/api/sites", json!({ "name": name })).await?["id"].as_i64().context("site id")?;
    let sites: Vec<i64> = api.send(reqwest::Method::GET, &format!("/api/projects/{project}"), None).await?["site_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_i64)
        .chain([site])
        .collect();
    api.send(reqwest::Method::PUT, &format!("/api/projects/{project}/sites"), Some(json!({ "site_ids": sites }))).await?;
    let import = api.upload(&format!("/api/projects/{project}/files"), call_list(phones)?).await?;
    let file = import["file_id"].as_i64().context("file id")?;
    let batch = api.post(&format!("/api/files/{file}/dispatch"), json!({ "name": format!("{name}批次"), "priority": 5, "site_ids": [site] })).await?["batch_ids"][0]
        .as_u64()
        .context("batch id")?;
    let store = hub.hub().store.clone();
    let rows: Vec<u64> = tokio::task::spawn_blocking(move || store.down_log(site, 0, 10_000))
        .await??
        .into_iter()
        .filter_map(|e| match e.event {
            DownEvent::BatchChunk(chunk) => Some(chunk.rows.into_iter().map(|r| r.row_id)),
            _ => None,
        })
        .flatten()
        .collect();
    ensure!(rows.len() == results.len(), "{name}: {} rows went down", rows.len());

    // The day's work at the site: an answered call and its record per customer.
    let agent = format!("{}", 8000 + site);
    let mut events = Vec::new();
    for (n, (row, result)) in rows.iter().zip(results).enumerate() {
        let at = 1_764_547_200 + site * 1000 + n as i64 * 60; // 2025-12-01, China morning
        events.push(UpEvent::CallAttempt(CallAttempt {
            attempt_id: n as u64 + 1, batch_id: batch, row_id: *row, started_at: at, answered_at: Some(at + 5), ended_at: at + 50,
            outcome: Outcome::Connected, hangup_side: None, agent: Some(agent.clone()), talk_seconds: 45, recording_sha256: None,
            kind: AttemptKind::Predictive,
        }));
        events.push(UpEvent::BusinessRecord(BusinessRecord {
            attempt_id: n as u64 + 1, batch_id: batch, row_id: *row, agent: agent.clone(), saved_at: at + 55,
            values: vec![("result".into(), result.to_string()), ("note".into(), format!("{name}第{}通", n + 1))],
        }));
    }
    let site_dir = dir.join(format!("site-{site}"));
    fill_outbox(&site_dir, events)?;
    let code = api.post(&format!("/api/sites/{site}/enrollment-code"), json!({})).await?["code"].as_str().context("code")?.to_string();
    let identity = tokio::time::timeout(WAIT, client::enroll(&hub.hub().sync_addr.to_string(), &code, &site_dir.join("identity"))).await??;
    let store = Arc::new(appliance::store::Store::open(&site_dir)?);
    let (status, _) = tokio::sync::watch::channel(LinkStatus::Connecting);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(client::run(identity, store, status, shutdown.clone()));
    Ok(Site { shutdown, task })
}

/// The texts of every cell of `#across-rows`'s body, row by row.
async fn table_rows(browser: &Browser) -> anyhow::Result<Vec<Vec<String>>> {
    let rows = browser
        .client()
        .execute(
            "return Array.from(document.querySelectorAll('#across-rows tbody tr.data-row')).map(tr => Array.from(tr.cells).map(td => td.textContent.trim()));",
            vec![],
        )
        .await?;
    Ok(serde_json::from_value(rows)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_filters_business_records_across_two_sites_and_exports_them() -> anyhow::Result<()> {
    let hub = RunningHub::start().await?;
    let api = Api::login(&hub.url, &hub.password).await?;
    let category = api.post("/api/categories", json!({ "name": "宽带套餐类" })).await?;
    let project = api
        .post("/api/projects", json!({
            "category_id": category["id"], "name": "宽带升级回访", "hide_middle_digits": true,
            "customer_fields": [{ "key": "name", "title": "客户姓名", "kind": "text" }],
            "record_fields": [{ "key": "result", "title": "营销结果", "kind": "single_choice", "options": ["成功", "失败", "再联系"] },
                              { "key": "note", "title": "备注", "kind": "text" }]
        }))
        .await?["id"]
        .as_i64()
        .context("project id")?;
    let work = hub.dir.path().join("sites");
    let hz = site_at_work(&hub, &api, project, "杭州一号职场", &["13800000001", "13800000002", "13800000003"], &["成功", "失败", "成功"], &work).await?;
    let cd = site_at_work(&hub, &api, project, "成都二号职场", &["13900000004", "13900000005", "13900000006"], &["失败", "成功", "再联系"], &work).await?;
    // Both sites' records reach HQ over the link.
    let all = format!("/api/projects/{project}/business-data");
    wait_until(WAIT, || async { api.send(reqwest::Method::GET, &all, None).await.is_ok_and(|page| page["rows"].as_array().is_some_and(|r| r.len() == 6)) })
        .await
        .context("six records from two sites at HQ")?;

    let browser = Browser::start().await?;
    browser.client().set_window_size(1366, 768).await?;
    browser.goto(&format!("{}/login", hub.url)).await?;
    browser.wait_for("input[name=username]", WAIT).await?.send_keys("admin").await?;
    browser.wait_for("input[name=password]", WAIT).await?.send_keys(&hub.password).await?;
    browser.wait_for("form button", WAIT).await?.click().await?;
    wait_until(WAIT, || async { browser.client().current_url().await.is_ok_and(|u| !u.path().starts_with("/login")) }).await.context("logged in")?;

    // 营销结果 becomes a filter on the project page.
    browser.goto(&format!("{}/projects/{project}", hub.url)).await?;
    browser.wait_for("#filterable input[name=record][value=result]", WAIT).await?.click().await?;
    browser.wait_for("#filterable button", WAIT).await?.click().await?;
    wait_until(WAIT, || async {
        api.send(reqwest::Method::GET, &format!("/api/projects/{project}"), None)
            .await
            .is_ok_and(|p| p["record_fields"][0]["filterable"] == true && p["record_fields"][1]["filterable"] == false)
    })
    .await
    .context("the flag is saved")?;
    browser.wait_for("#filterable input[name=record][value=result]:checked", WAIT).await?;
    browser.screenshot(tests::screenshot_dir().join("hub-project-filterable.png")).await?;

    // 业务资料: pick the project, filter 营销结果 = 成功.
    browser.goto(&format!("{}/data/records", hub.url)).await?;
    browser.wait_for(&format!("#across-project select[name=project] option[value='{project}']"), WAIT).await?.click().await?;
    browser.wait_for("#across-project button", WAIT).await?.click().await?;
    browser.wait_for("#across-filters select[name='f.result'] option[value='成功']", WAIT).await?.click().await?;
    browser.wait_for("#across-search", WAIT).await?.click().await?;
    let rows = wait_for_some(WAIT, || async {
        let url = browser.client().current_url().await.ok()?;
        let rows = table_rows(&browser).await.ok()?;
        (url.query().is_some_and(|q| q.contains("f.result=")) && !rows.is_empty()).then_some(rows)
    })
    .await
    .context("the filtered list")?;
    browser.screenshot(tests::screenshot_dir().join("hub-business-records.png")).await?;
    // Site, batch, phone, agent, time, 营销结果, 备注.
    let sites: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    ensure!(rows.len() == 3, "three 成功 records: {rows:?}");
    ensure!(sites.contains(&"杭州一号职场") && sites.contains(&"成都二号职场"), "both sites: {rows:?}");
    ensure!(rows.iter().all(|r| r[5] == "成功" && r[2].contains("****")), "成功 only, numbers masked: {rows:?}");

    // The page's export link exports the same rows.
    let href = browser.wait_for("#across-export", WAIT).await?.attr("href").await?.context("export link")?;
    ensure!(href.contains("f.result=") && href.starts_with(&format!("/api/projects/{project}/business-data/export")), "{href}");
    let response = api.http.get(format!("{}{href}", hub.url)).send().await?;
    ensure!(response.status().is_success(), "export: {}", response.status());
    let bytes = response.bytes().await?.to_vec();
    use calamine::Reader;
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(bytes))?;
    let range = book.worksheet_range_at(0).context("a sheet")??;
    let sheet: Vec<Vec<String>> = range.rows().map(|r| r.iter().map(|c| c.to_string()).collect()).collect();
    ensure!(sheet[0] == ["职场", "批次", "电话号码", "提交人", "提交时间", "营销结果", "备注"], "{:?}", sheet[0]);
    ensure!(sheet.len() == 4 && sheet[1..].iter().all(|r| r[5] == "成功"), "{sheet:?}");
    let mut exported: Vec<&str> = sheet[1..].iter().map(|r| r[6].as_str()).collect();
    let mut shown: Vec<&str> = rows.iter().map(|r| r[6].as_str()).collect();
    exported.sort_unstable();
    shown.sort_unstable();
    ensure!(exported == shown && exported == ["成都二号职场第2通", "杭州一号职场第1通", "杭州一号职场第3通"], "{exported:?} / {shown:?}");
    ensure!(sheet[1..].iter().all(|r| r[4].starts_with("2025-12-01 ")), "China time: {sheet:?}");

    // 客户资料 of the same project: both sites' customers, masked, with who has each.
    browser.goto(&format!("{}/data/customers?project={project}", hub.url)).await?;
    let customers = wait_for_some(WAIT, || async { table_rows(&browser).await.ok().filter(|rows| !rows.is_empty()) }).await.context("the customer list")?;
    browser.screenshot(tests::screenshot_dir().join("hub-customer-data.png")).await?;
    // Site, batch, phone, agent, dispatched at, last edited, 客户姓名.
    ensure!(customers.len() == 6, "six customers: {customers:?}");
    ensure!(customers.iter().filter(|r| r[0] == "成都二号职场").count() == 3 && customers.iter().filter(|r| r[0] == "杭州一号职场").count() == 3, "{customers:?}");
    ensure!(customers.iter().all(|r| r[2].contains("****") && r[3].starts_with("800") && r[6].starts_with("客户")), "{customers:?}");

    browser.close().await?;
    for site in [hz, cd] {
        site.shutdown.cancel();
        tokio::time::timeout(WAIT, site.task).await.context("the site's link stops")??;
    }
    hub.stop().await
}
