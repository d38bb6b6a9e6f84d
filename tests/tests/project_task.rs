//! A site works by project (issue 16, S1/S5): the site admin starts the project's task once,
//! through its first batch, and the batches HQ dispatches into the project later are dialed
//! under it without anyone touching the site, higher priority first, equal priority the
//! earlier import first; HQ setting one batch to priority 1 holds that batch only.
//!
//! The site admin works in headless Chromium at 1366×768 on 下发任务管理: a batch's old task
//! page leads to its project's task page, where the task is started once and its priority
//! between tasks set; the task list shows the project's batches inside it in dial order.
//!
//! The real path: the real hub, the appliance enrolled over QUIC with mutual TLS, a SIPp
//! carrier, SIPp as the agent's phone and the demo's simulated agent at the desk. The test
//! acts only as an HQ admin on the hub's API and as the site's admin in the browser; the
//! order is the site's outbox as HQ received it (each finished attempt, in the order the
//! calls were made, since the task places one call at a time).

mod site_support;

use std::time::Duration;

use anyhow::{Context, ensure};
use demo::setup::{Api, dispatch_demo_list, enroll_site};
use serde_json::{Value, json};
use site_support::enrolled::{Desk, EnrolledSite, import_and_dispatch};
use tests::{Browser, Sipp, wait_for_some};
use tokio_util::sync::CancellationToken;

const EXTENSION: &str = "8401";
const SIP_PASSWORD: &str = "phone-secret-8401";
const AGENT: &str = "project-agent";
const AGENT_PASSWORD: &str = "agent-secret-8401";

/// The site's tasks: `(batch_id, name, status, dialed)`.
async fn site_tasks(site_admin: &Api) -> anyhow::Result<Vec<(u64, String, String, u64)>> {
    let tasks: Vec<Value> = site_admin.get("/api/tasks").await?;
    Ok(tasks
        .iter()
        .filter_map(|t| {
            Some((t["batch_id"].as_u64()?, t["name"].as_str()?.to_string(), t["status"].as_str()?.to_string(), t["dialed"].as_u64()?))
        })
        .collect())
}

/// The site's batch id of the batch named `name`, once it has arrived whole.
async fn arrived(site_admin: &Api, name: &str) -> anyhow::Result<u64> {
    wait_for_some(Duration::from_secs(60), || async {
        let tasks = site_tasks(site_admin).await.ok()?;
        tasks.into_iter().find(|(_, n, status, _)| n == name && status != "receiving").map(|(id, _, _, _)| id)
    })
    .await
    .with_context(|| format!("batch {name} reaches the site over the link"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_started_once_dials_the_batches_dispatched_later_by_priority_and_priority_1_holds_one() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("info,quinn=warn,rustls=warn").try_init();
    let dir = tempfile::tempdir()?;
    let site_dir = dir.path().join("site");
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let (hub, hq_password) = tests::start_hub(&dir.path().join("hub"), shutdown.clone()).await?;
    let hq = Api::login(&format!("http://{}", hub.http_addr), "admin", &hq_password).await?;
    let site_id = enroll_site(&hq, "项目职场", &site_dir, hub.sync_addr).await?;
    dispatch_demo_list(&hq, "项目类", &dir.path().join("首批.xlsx"), 2, "首批", site_id).await?;
    let projects: Vec<Value> = hq.get("/api/projects").await?;
    let project_id = projects.iter().filter_map(|p| p["id"].as_u64()).max().context("a project")?;

    // The site: one trunk toward the SIPp carrier, the agent's SIPp phone registered.
    let desk = Desk { extension: EXTENSION, sip_password: SIP_PASSWORD, agent: AGENT, agent_password: AGENT_PASSWORD, name: "小项" };
    let EnrolledSite { appliance: _appliance, url, admin, admin_password: site_password, carrier_port, phone: _phone } =
        EnrolledSite::start(&site_dir, &shutdown, 2, &desk, 20).await?;
    let carrier = Sipp::scenario("carrier_answer.xml")
        .local_port(carrier_port)
        .calls(6)
        .media_on_loopback()
        .arg("-d")
        .arg("600")
        .timeout(Duration::from_secs(240))
        .spawn()?;

    // The site admin starts the project's task once, on its task page (the first batch's
    // old page leads there); one call at a time, so the outbox holds the calls in the order
    // they were made. No agent is at the desk yet: nothing is dialed until every batch is here.
    let first = arrived(&admin, "首批").await?;
    let browser = Browser::start().await?;
    browser.client().set_window_size(1366, 768).await?;
    site_support::login(&browser, &url, "siteadmin", &site_password).await?;
    browser.goto(&format!("{url}/admin/tasks/{first}")).await?;
    browser.wait_for("#task-params", Duration::from_secs(10)).await?;
    let page = browser.client().current_url().await?;
    ensure!(page.path().starts_with("/admin/project-tasks/"), "a batch's page is its project's task: {page}");
    for (name, value) in [("ratio", "1"), ("max_concurrency", "1"), ("ring_seconds", "20"), ("cool_down", "0")] {
        let input = browser.wait_for(&format!("#task-params input[name={name}]"), Duration::from_secs(2)).await?;
        input.clear().await?;
        input.send_keys(value).await?;
    }
    browser.wait_for("#start-task", Duration::from_secs(2)).await?.click().await?;
    wait_for_some(Duration::from_secs(10), || async {
        site_tasks(&admin).await.ok()?.iter().any(|(id, _, status, _)| *id == first && status == "running").then_some(())
    })
    .await
    .context("the task starts from its page")?;
    // The start reloads the page: wait for the reloaded one before typing into it, or the
    // field found may be the old page's.
    browser.wait_for("h1 .tag.running", Duration::from_secs(10)).await.context("the page reloads with the task running")?;
    // Its priority between the site's tasks (the arbiter's first key).
    browser.wait_for("#task-priority input[name=priority]", Duration::from_secs(10)).await?.send_keys("60").await?;
    browser.wait_for("#task-priority button[type=submit]", Duration::from_secs(2)).await?.click().await?;
    wait_for_some(Duration::from_secs(10), || async {
        let shown = browser.wait_for("#task-priority input[name=priority]", Duration::from_millis(500)).await.ok()?;
        (shown.prop("value").await.ok()?? == "60").then_some(())
    })
    .await
    .context("the task priority is saved")?;

    // HQ dispatches three more batches into the project, later imports each.
    let mut later = Vec::new();
    for (idx, (name, priority)) in [("次批", 50), ("急批", 80), ("末批", 50)].into_iter().enumerate() {
        let phones: Vec<String> = (0..2).map(|row| format!("1391000{:02}{:02}", idx, row)).collect();
        import_and_dispatch(&hq, dir.path(), project_id, name, &phones, json!({"priority": priority, "site_ids": [site_id]})).await?;
        later.push(arrived(&admin, name).await?);
        // Imports a second apart: the import time orders equal priorities.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let (second, urgent, last) = (later[0], later[1], later[2]);
    // 下发任务管理: one task for the project, its batches inside it in dial order.
    browser.goto(&format!("{url}/admin/tasks")).await?;
    browser.wait_for("#project-tasks tr.task-batch", Duration::from_secs(10)).await?;
    let tasks_shown = browser.client().execute("return document.querySelectorAll('#project-tasks tr.project-task').length;", vec![]).await?;
    ensure!(tasks_shown.as_u64() == Some(1), "one task for the project: {tasks_shown}");
    let order = browser
        .client()
        .execute("return [...document.querySelectorAll('#project-tasks tr.task-batch')].map(r => Number(r.dataset.batch));", vec![])
        .await?;
    ensure!(order == json!([urgent, first, second, last]), "急批 (80), then 首批, 次批, 末批 by import: {order}");
    browser.screenshot(site_support::screenshots().join("site-project-tasks.png")).await?;
    let tasks = site_tasks(&admin).await?;
    ensure!(
        tasks.iter().all(|(_, _, status, dialed)| status == "running" && *dialed == 0),
        "every batch of the started project runs, none touched at the site: {tasks:?}"
    );

    // HQ holds the second batch (priority 1): that batch only.
    hq.post::<Value>(&format!("/api/batches/{second}/priority"), &json!({"priority": 1})).await?;
    wait_for_some(Duration::from_secs(30), || async {
        let tasks = site_tasks(&admin).await.ok()?;
        tasks.iter().find(|(id, _, status, _)| *id == second && status == "paused").map(|_| ())
    })
    .await
    .context("HQ's priority 1 reaches the site")?;

    // The agent comes to the desk: the project's task dials.
    let desk = CancellationToken::new();
    let agent = tokio::spawn(demo::agent::run_agent(
        demo::agent::AgentConfig {
            appliance_url: url.clone(),
            username: AGENT.into(),
            password: AGENT_PASSWORD.into(),
            wrap_up: (Duration::from_millis(100), Duration::from_millis(300)),
        },
        desk.clone(),
    ));
    // The site's outbox, as HQ received it (acknowledged entries leave the site's outbox):
    // one attempt per call, in the site's order.
    let hub_db = dir.path().join("hub").join("hub.sqlite3");
    let attempts = wait_for_some(Duration::from_secs(120), || async {
        let conn = rusqlite::Connection::open_with_flags(&hub_db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
        let mut statement = conn.prepare("SELECT batch_id FROM call_attempts ORDER BY attempt_id").ok()?;
        let attempts: Vec<u64> = statement.query_map([], |row| row.get(0)).ok()?.collect::<Result<_, _>>().ok()?;
        (attempts.len() >= 6).then_some(attempts)
    })
    .await
    .context("the six numbers of the batches not held are dialed")?;
    ensure!(
        attempts == vec![urgent, urgent, first, first, last, last],
        "priority 80 first, then the 50s by import (首批, 末批); the held 次批 not at all: {attempts:?} \
         (首批 {first}, 次批 {second}, 急批 {urgent}, 末批 {last})"
    );
    // The held batch stays held while the rest is done.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let tasks = site_tasks(&admin).await?;
    let held = tasks.iter().find(|(id, _, _, _)| *id == second).context("the held batch")?;
    ensure!(held.2 == "paused" && held.3 == 0, "priority 1 held the batch: {tasks:?}");
    browser.goto(&format!("{url}/admin/project-tasks/{}", page.path().rsplit('/').next().unwrap_or_default())).await?;
    let order = wait_for_some(Duration::from_secs(10), || async {
        browser.wait_for("#task-batches tr.task-batch", Duration::from_millis(500)).await.ok()?;
        browser
            .client()
            .execute("return [...document.querySelectorAll('#task-batches tr.task-batch')].map(r => Number(r.dataset.batch));", vec![])
            .await
            .ok()
    })
    .await
    .context("the task page lists its batches")?;
    ensure!(order == json!([urgent, first, last, second]), "the held batch last on the task page: {order}");
    browser.screenshot(site_support::screenshots().join("site-project-task.png")).await?;
    browser.close().await?;
    let carrier = carrier.wait(Duration::from_secs(60)).await;
    carrier.ensure_success().context("carrier scenario")?;
    ensure!(carrier.successful_calls() == Some(6), "the carrier saw six calls: {:?}", carrier.successful_calls());
    desk.cancel();
    agent.await??;
    Ok(())
}
