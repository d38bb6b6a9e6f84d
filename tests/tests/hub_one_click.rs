//! HQ's 下发任务管理 → 一键启停 for one category, clicked in a real Chromium at 1366×768
//! through the task list: the category's batches pause (priority 1) and the other
//! category's do not, and the page shows no error. The page's `<select>` gives the category
//! id as text; the hub takes it as the id (it once answered "Unprocessable Entity").

use std::time::Duration;

use anyhow::{Context, ensure};
use demo::setup::{Api, demo_project};
use fantoccini::Locator;
use serde_json::{Value, json};

use tests::{Browser, RunningHub, wait_until};

const WAIT: Duration = Duration::from_secs(20);

/// A category with one sub-project whose 3 numbers are dispatched to `site` at priority 50;
/// answers the category's id and the batch's.
async fn category_with_batch(api: &Api, hub: &RunningHub, name: &str, site: u64, first_phone: u32) -> anyhow::Result<(u64, u64)> {
    let category: Value = api.post("/api/categories", &json!({ "name": name })).await?;
    let category = category["id"].as_u64().context("category id")?;
    let mut project = demo_project(category);
    project["name"] = json!(format!("{name}项目"));
    let project: Value = api.post("/api/projects", &project).await?;
    let project = project["id"].as_u64().context("project id")?;
    let _: Value = api.put(&format!("/api/projects/{project}/sites"), &json!({ "site_ids": [site] })).await?;
    let sheet = hub.dir.path().join(format!("{name}.xlsx"));
    // Different numbers per category: a number already dispatched would be left out.
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let page = workbook.add_worksheet();
    page.write_string(0, 0, "手机号码")?;
    for row in 1..=3u32 {
        page.write_string(row, 0, format!("139{:08}", first_phone + row))?;
    }
    workbook.save(&sheet)?;
    let import: Value = api.upload(&format!("/api/projects/{project}/files"), &sheet).await?;
    let file = import["file_id"].as_u64().context("file id")?;
    let out: Value = api.post(&format!("/api/files/{file}/dispatch"), &json!({ "name": format!("{name}批次"), "priority": 50, "site_ids": [site] })).await?;
    let batch = out["batch_ids"][0].as_u64().context("batch id")?;
    Ok((category, batch))
}

async fn priority_of(api: &Api, batch: u64) -> Option<i64> {
    let batches: Value = api.get("/api/batches").await.ok()?;
    batches.as_array()?.iter().find(|b| b["id"] == json!(batch)).and_then(|b| b["priority"].as_i64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_click_pauses_only_the_chosen_category() -> anyhow::Result<()> {
    let hub = RunningHub::start().await?;
    let api = Api::login(&hub.url, "admin", &hub.password).await?;
    let site: Value = api.post("/api/sites", &json!({ "name": "一号职场" })).await?;
    let site = site["id"].as_u64().context("site id")?;
    let (chosen, paused) = category_with_batch(&api, &hub, "套餐类", site, 0).await?;
    let (_, untouched) = category_with_batch(&api, &hub, "宽带类", site, 100).await?;

    let browser = Browser::start().await?;
    browser.client().set_window_size(1366, 768).await?;
    browser.goto(&format!("{}/login", hub.url)).await?;
    browser.wait_for("input[name=username]", WAIT).await?.send_keys("admin").await?;
    browser.wait_for("input[name=password]", WAIT).await?.send_keys(&hub.password).await?;
    browser.wait_for("form button", WAIT).await?.click().await?;
    wait_until(WAIT, || async { browser.client().current_url().await.is_ok_and(|u| !u.path().starts_with("/login")) })
        .await
        .context("logged in")?;
    browser.goto(&format!("{}/batches", hub.url)).await?;
    browser.wait_for("#one-click select[name=category_id]", WAIT).await?.select_by_value(&chosen.to_string()).await?;
    browser.wait_for("#one-click select[name=action]", WAIT).await?.select_by_value("pause").await?;
    browser.wait_for("#one-click button", WAIT).await?.click().await?;
    // The pause asks first (the console's modal, worded with the counts); confirm it.
    let question = browser.wait_for(".modal-back .modal p", WAIT).await?.text().await?;
    ensure!(question.contains('1'), "the question counts the category's batches: {question}");
    browser.wait_for(".modal [data-answer=yes]", WAIT).await?.click().await?;
    wait_until(WAIT, || async { priority_of(&api, paused).await == Some(1) }).await.with_context(|| {
        format!("the chosen category's batch {paused} is paused")
    })?;
    ensure!(priority_of(&api, untouched).await == Some(50), "the other category's batch keeps priority 50");
    let errors = browser.client().find_all(Locator::Css("#one-click .result.error")).await?;
    for error in errors {
        let text = error.text().await?;
        ensure!(text.trim().is_empty(), "the page shows an error: {text}");
    }
    browser.close().await?;
    hub.stop().await
}
