//! 坐席手动外呼 outside any project, seen at HQ (issue 16, A11): an agent who works no task
//! types a number on the desk (in headless Chromium) and calls it; the call runs under no
//! project (batch 0) with the site's default note form. Through the real link (the real hub,
//! the appliance enrolled over QUIC with mutual TLS, SIPp as the carrier and as the agent's
//! phone) HQ's call records show it as a manual attempt with its business record, and HQ's
//! data filter (外呼数据过滤) does not count it against the number: the typed number is one
//! of HQ's own list, dispatched to the site into a task the agent does not work, and a
//! filter of that list on "called" (已呼) keeps it.
//!
//! Before the call the site admin edits that default form on 回访设置 in Chromium (a single
//! choice added, an unnamed field refused naming it, a field deleted, the order changed);
//! the popup shows the edited form and HQ shows the record titled by it.

mod site_support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, ensure};
use demo::setup::{Api, demo_project, enroll_site, write_demo_sheet};
use serde_json::{Value, json};
use tests::{Browser, free_udp_port, wait_for_some, wait_until};
use tokio_util::sync::CancellationToken;

const EXTENSION: &str = "8501";
const SIP_PASSWORD: &str = "phone-secret-8501";
const AGENT: &str = "solo-agent";
const OTHER: &str = "team-agent";
const AGENT_PASSWORD: &str = "agent-secret-8501";
/// The second number of the demo list (`write_demo_sheet`).
const TYPED: &str = "13800130002";
const NOTE: &str = "客户说打错了";

/// The site admin's form editor in Chromium: adds 来电原因 (single choice 咨询 / 投诉,
/// required), is refused an unnamed field (named by its place, in Chinese), deletes it,
/// moves 来电原因 above the note and saves.
async fn edit_default_form(url: &str, password: &str) -> anyhow::Result<()> {
    let browser = Browser::start().await?;
    browser.client().set_window_size(1366, 768).await?;
    site_support::login(&browser, url, "siteadmin", password).await?;
    browser.goto(&format!("{url}/admin/callback-settings")).await?;
    let row = |n: usize, css: &str| format!("#default-form-editor li.form-field:nth-child({n}) {css}");
    let label = browser.wait_for(&row(1, "input[name=label]"), Duration::from_secs(10)).await?;
    ensure!(label.prop("value").await?.as_deref() == Some("备注"), "the built-in note is shown first");
    let add = browser.wait_for("#default-form-editor button.add-field", Duration::from_secs(2)).await?;
    add.click().await?;
    browser.wait_for(&row(2, "input[name=label]"), Duration::from_secs(2)).await?.send_keys("来电原因").await?;
    browser.wait_for(&row(2, "select[name=kind] option[value=single_choice]"), Duration::from_secs(2)).await?.click().await?;
    browser.wait_for(&row(2, "input[name=options]"), Duration::from_secs(2)).await?.send_keys("咨询，投诉").await?;
    browser.wait_for(&row(2, "input[name=required]"), Duration::from_secs(2)).await?.click().await?;
    add.click().await?;
    browser.wait_for("#default-form-editor button[type=submit]", Duration::from_secs(2)).await?.click().await?;
    let refused = browser.wait_for("#default-form-editor .form-error:not([hidden])", Duration::from_secs(5)).await?.text().await?;
    ensure!(refused == "第 3 个字段：字段名称须为 1 到 30 个字符", "the unnamed field is named by its place: {refused}");
    browser.wait_for(&row(3, "button.remove"), Duration::from_secs(2)).await?.click().await?;
    browser.wait_for(&row(2, "button.move-up"), Duration::from_secs(2)).await?.click().await?;
    browser.wait_for("#default-form-editor button[type=submit]", Duration::from_secs(2)).await?.click().await?;
    // Saved, the page shows the form again as stored.
    wait_for_some(Duration::from_secs(10), || async {
        let first = browser.wait_for(&row(1, "input[name=label]"), Duration::from_millis(500)).await.ok()?;
        let rows = browser.client().execute("return document.querySelectorAll('#default-form-editor li.form-field').length;", vec![]).await.ok()?;
        (first.prop("value").await.ok()?.as_deref() == Some("来电原因") && rows == json!(2)).then_some(())
    })
    .await
    .context("the saved form is shown, 来电原因 first")?;
    browser.screenshot(site_support::screenshots().join("site-default-form.png")).await?;
    browser.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_call_outside_any_project_reaches_hq_as_a_manual_attempt_the_filter_does_not_count() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("info,quinn=warn,rustls=warn").try_init();
    let dir = tempfile::tempdir()?;
    let site_dir = dir.path().join("site");
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let (hub, hq_password) = tests::start_hub(&dir.path().join("hub"), shutdown.clone()).await?;
    let hq = Api::login(&format!("http://{}", hub.http_addr), "admin", &hq_password).await?;
    let site_id = enroll_site(&hq, "手动职场", &site_dir, hub.sync_addr).await?;
    let category: Value = hq.post("/api/categories", &json!({"name": "手动类"})).await?;
    let project: Value = hq.post("/api/projects", &demo_project(category["id"].as_u64().context("category id")?)).await?;
    let project_id = project["id"].as_u64().context("project id")?;
    let sheet = dir.path().join("名单.xlsx");
    write_demo_sheet(&sheet, 2)?;
    let import: Value = hq.upload(&format!("/api/projects/{project_id}/files"), &sheet).await?;
    let file_id = import["file_id"].as_u64().context("file id")?;
    hq.post::<Value>(&format!("/api/files/{file_id}/dispatch"), &json!({"name": "名单", "priority": 50, "site_ids": [site_id]}))
        .await?;

    // The site: a line named by its number toward the SIPp carrier; the agent's phone.
    let carrier_port = free_udp_port();
    let site_password = appliance::init_admin(&site_dir, "siteadmin")?;
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut config = appliance::ApplianceConfig::on_loopback(&site_dir, SocketAddr::new(localhost, carrier_port), 2);
    config.trunks[0].name = "02150001111".into();
    let site = appliance::start(config, shutdown.clone()).await?;
    let url = format!("http://{}", site.http_addr);
    let admin = Api::login(&url, "siteadmin", &site_password).await?;
    admin.post::<Value>("/api/extensions", &json!({"extension": EXTENSION, "password": SIP_PASSWORD})).await?;
    admin.post::<Value>("/api/extensions", &json!({"extension": "8502", "password": "phone-secret-8502"})).await?;
    let solo: Value = admin
        .post("/api/agents", &json!({"username": AGENT, "password": AGENT_PASSWORD, "name": "小孤", "extension": EXTENSION}))
        .await?;
    let solo_id = solo["agent_id"].as_u64().context("agent id")?;
    let other: Value =
        admin.post("/api/agents", &json!({"username": OTHER, "password": AGENT_PASSWORD, "name": "小组", "extension": "8502"})).await?;
    let other_id = other["agent_id"].as_u64().context("agent id")?;
    // The batch arrives; its project's task is worked by the other agent only.
    let batch = wait_for_some(Duration::from_secs(60), || async {
        let tasks: Vec<Value> = admin.get("/api/tasks").await.ok()?;
        tasks.iter().find(|t| t["name"] == "名单" && t["status"] != "receiving").and_then(|t| t["batch_id"].as_u64())
    })
    .await
    .context("the list reaches the site over the link")?;
    admin.post::<Value>(&format!("/api/tasks/{batch}/agents"), &json!({"agents": [other_id]})).await?;
    let phone = site_support::agent_phone_for(site.sip_addr, EXTENSION, SIP_PASSWORD, 1).await?;
    let carrier = site_support::carrier(carrier_port, 1, 3000)?;

    // The site admin edits the form of calls under no project (回访设置): a field added,
    // a bad one refused naming it, one deleted, the new one moved first.
    edit_default_form(&url, &site_password).await?;
    let form = site.store.default_form()?;
    ensure!(
        form.iter().map(|f| (f.label.as_str(), f.kind.as_str(), f.required)).collect::<Vec<_>>()
            == [("来电原因", "single_choice", true), ("备注", "text", false)]
            && form[0].options == ["咨询", "投诉"],
        "the edited form is saved in the order shown: {form:?}"
    );

    // At the desk: the caller number from the desk settings, then the typed number.
    let browser = Browser::start().await?;
    browser.client().set_window_size(1366, 768).await?;
    site_support::login(&browser, &url, AGENT, AGENT_PASSWORD).await?;
    browser.goto(&format!("{url}/desk/settings")).await?;
    browser.wait_for("select[name=caller] option[value='02150001111']", Duration::from_secs(5)).await?.click().await?;
    browser.wait_for("#settings button[type=submit]", Duration::from_secs(2)).await?.click().await?;
    wait_until(Duration::from_secs(5), || async { site.store.agent_settings(solo_id).is_ok_and(|s| s.caller == "02150001111") })
        .await
        .context("the caller number is saved")?;
    browser.goto(&format!("{url}/desk")).await?;
    site_support::set_state(&browser, "one_click_only").await?;
    let input = browser.wait_for("#manual-dial-form input[name=phone]", Duration::from_secs(5)).await?;
    input.send_keys(TYPED).await?;
    browser.wait_for("#manual-dial-form button[type=submit]", Duration::from_secs(2)).await?.click().await?;
    // Under no project: an empty card and the site's form as the site admin left it.
    browser.wait_for("#popup:not([hidden]) dd.phone", Duration::from_secs(30)).await?;
    let names = browser
        .client()
        .execute("return [...document.querySelectorAll('#popup form.record [data-record]')].map(f => f.name);", vec![])
        .await?;
    ensure!(names == json!(["来电原因", "备注"]), "the edited form, in its order: {names}");
    browser.wait_for("#popup form.record select[name='来电原因'] option[value='投诉']", Duration::from_secs(5)).await?.click().await?;
    browser.wait_for("#popup form.record textarea[name='备注']", Duration::from_secs(5)).await?.send_keys(NOTE).await?;
    browser.wait_for("#popup .popup-actions button", Duration::from_secs(2)).await?.click().await?;
    wait_until(Duration::from_secs(10), || async { browser.wait_for("#popup[hidden]", Duration::from_millis(200)).await.is_ok() })
        .await
        .context("the popup closes once saved")?;
    carrier.wait(Duration::from_secs(40)).await.ensure_success().context("carrier")?;
    phone.wait(Duration::from_secs(40)).await.ensure_success().context("agent phone")?;

    // HQ's call records: a manual attempt under no project, with its note.
    let call = wait_for_some(Duration::from_secs(60), || async {
        let reply: Value = hq.get(&format!("/api/calls?agent={AGENT}")).await.ok()?;
        let call = reply["calls"].as_array()?.first()?.clone();
        call["record"].is_object().then_some(call)
    })
    .await
    .context("the call and its record reach HQ")?;
    ensure!(
        call["kind"] == "manual" && call["batch_id"] == 0 && call["project_id"].is_null() && call["outcome"] == "connected",
        "a manual attempt under no project: {call}"
    );
    ensure!(call["site_id"] == site_id && call["direction"] == "outbound", "{call}");
    ensure!(
        call["record"]["values"]
            == json!([{"key": "来电原因", "title": "来电原因", "value": "投诉"}, {"key": "备注", "title": "备注", "value": NOTE}])
            && call["record"]["agent"] == AGENT,
        "its business record, titled as the agent saw it: {call}"
    );
    let one: Value = hq.get(&format!("/api/sites/{site_id}/calls/{}", call["attempt_id"])).await?;
    ensure!(one["record"] == call["record"], "the call's own page has the record: {one}");
    let manual: Value = hq.get("/api/calls?direction=outbound").await?;
    ensure!(manual["calls"].as_array().map(Vec::len) == Some(1), "one call at HQ: {manual}");

    // HQ's filter: the list's numbers were never dialed by a task; the manual call of one of
    // them does not count, so "called" (已呼) keeps both.
    let filtered: Value =
        hq.post(&format!("/api/files/{file_id}/filter"), &json!({"valid_days": 7, "condition": "called", "repeat_count": 1})).await?;
    ensure!(filtered["kept"] == 2 && filtered["removed"] == 0, "the manual call is not counted by the filter: {filtered}");
    browser.close().await?;
    Ok(())
}
