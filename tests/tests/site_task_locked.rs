//! Issue 15's bug on the site's task page, in Chromium at 1366×768: values HQ locked for
//! the project (ratio 1:2, max concurrency 10, ring time 40 s, marked 总控设定，不可修改) are
//! shown as HQ set them before the task starts, not as the site's defaults (1 / 1 / 35); the
//! suggested max concurrency is the locked value, and the form starts the task with them
//! (the max-concurrency field accepts 10 although the caller has 4 lines: HQ answers for it).

mod site_support;

use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::Value;
use sync_protocol::{DownEntry, DownEvent};

use site_support::*;
use tests::{Browser, free_udp_port, wait_until};

const BATCH: u64 = 43;

async fn value_of(browser: &Browser, css: &str) -> anyhow::Result<String> {
    let input = browser.wait_for(css, Duration::from_secs(5)).await?;
    Ok(input.prop("value").await?.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_page_shows_hqs_locked_values_before_the_task_starts() -> anyhow::Result<()> {
    let site = start_site(free_udp_port(), BATCH, 2).await?;
    let mut locked = project();
    locked.version = 2;
    locked.params.ratio = Some(2);
    locked.params.max_concurrency = Some(10);
    locked.params.ring_seconds = Some(40);
    let seq = site.appliance.store.down_applied()? + 1;
    site.appliance.store.apply_down_entry(&DownEntry { seq, event: DownEvent::Project(locked) })?;

    let browser = Browser::start().await?;
    browser.client().set_window_size(1366, 768).await?;
    login(&browser, &site.url, "siteadmin", &site.admin_password).await?;
    browser.goto(&format!("{}/admin/tasks/{BATCH}", site.url)).await?;
    let form = "#task-params form";
    ensure!(value_of(&browser, &format!("{form} [name=ratio]")).await? == "2", "HQ's ratio, not the site's 1");
    ensure!(value_of(&browser, &format!("{form} [name=max_concurrency]")).await? == "10", "HQ's max concurrency, not 1");
    ensure!(value_of(&browser, &format!("{form} [name=ring_seconds]")).await? == "40", "HQ's ring time, not 35");
    let bound = browser.wait_for("#task-params", Duration::from_secs(5)).await?.text().await?;
    ensure!(bound.matches("总控设定，不可修改").count() >= 3, "the three locked fields say so: {bound}");
    let suggested = browser.wait_for("#suggested", Duration::from_secs(5)).await?.text().await?;
    ensure!(suggested == "10", "the suggestion is the locked value: {suggested}");
    browser.screenshot(screenshots().join("site-task-hq-locked.png")).await?;

    // Starting takes the locked values as they are shown.
    browser.wait_for("#start-task", Duration::from_secs(5)).await?.click().await?;
    wait_until(Duration::from_secs(10), || async {
        let Ok(response) = site.admin.get(format!("{}/api/tasks", site.url)).send().await else { return false };
        let Ok(tasks) = response.json::<Value>().await else { return false };
        tasks[0]["status"] == "running"
    })
    .await
    .context("the form starts the task with the locked values")?;
    let tasks: Value = site.admin.get(format!("{}/api/tasks", site.url)).send().await?.json().await?;
    ensure!(
        (tasks[0]["ratio"].as_u64(), tasks[0]["max_concurrency"].as_u64(), tasks[0]["ring_seconds"].as_u64())
            == (Some(2), Some(10), Some(40)),
        "{tasks}"
    );
    browser.close().await?;
    Ok(())
}
