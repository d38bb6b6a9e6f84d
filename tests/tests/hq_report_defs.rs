//! HQ's report definitions through the real path (H14 → S8): a real hub, two boxes enrolled
//! over QUIC with mutual TLS (the project's through a UDP relay the test can cut), HQ's admin
//! saving and editing a definition with the console's JSON API, real SIPp calls at the site,
//! and the site admin's 项目任务报表 read in headless Chromium.
//!
//! Nothing here writes a down event by hand: the definition is made at HQ and reaches the
//! site (or not) through the link.
//!
//! - The definition (a statistic, a business-field value count and a ratio, each with its
//!   own header) reaches the project's site; its page shows exactly HQ's headers, and after
//!   real calls (two put through to the agent, one busy) the figures of the site's own file.
//! - HQ renames a header and adds a column: the site shows the new version, same figures.
//! - With the cable cut after that, the page still shows HQ's columns and the figures.
//! - A second box, enrolled and linked but not in the project, never receives them; it is
//!   sent another sub-project's definitions, saved before it joined, when it joins that one.

mod site_support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, ensure};
use demo::setup::{Api, demo_project, dispatch_demo_list, enroll_site};
use serde_json::{Value, json};
use sync_protocol::DownEvent;
use tests::{Browser, Sipp, UdpRelay, free_udp_port, wait_for_some, wait_until};
use tokio_util::sync::CancellationToken;

const EXTENSION: &str = "8301";
const SIP_PASSWORD: &str = "phone-secret-8301";
const AGENT: &str = "defs-agent";
const AGENT_PASSWORD: &str = "agent-secret-8301";

/// The raw truth of the site's file: `(dials, customer answered, records "成功办理")`.
fn raw_figures(db: &Path) -> anyhow::Result<(i64, i64, i64)> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let (dials, answered) = conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(outcome IN ('connected', 'abandoned', 'agent_missed')), 0)
         FROM attempts WHERE state = 'done'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let success = conn.query_row(
        // The values are stored as `[key, value]` pairs.
        "SELECT COUNT(*) FROM business_records AS b, json_each(b.record_values) AS pair
         WHERE json_extract(pair.value, '$[0]') = 'result' AND json_extract(pair.value, '$[1]') = '成功办理'",
        [],
        |r| r.get(0),
    )?;
    Ok((dials, answered, success))
}

fn pct(n: i64, of: i64) -> String {
    if of == 0 { "-".into() } else { format!("{:.2}%", n as f64 * 100.0 / of as f64) }
}

/// HQ's first version: dials, the count of "成功办理" and their ratio, headers HQ chose.
fn first_version() -> Value {
    json!({
        "name": "成交日报",
        "tags": ["day"],
        "columns": [
            {"header": "拨打总量", "statistic": {"kind": "dials"}},
            {"header": "办成单数", "statistic": {"kind": "field_value", "key": "result", "value": "成功办理"}},
            {"header": "办成率", "statistic": {"kind": "field_value", "key": "result", "value": "成功办理"},
             "divide_by": {"kind": "dials"}}
        ]
    })
}

/// HQ's edit: the dials' header renamed, customer-connected added.
fn second_version() -> Value {
    json!({
        "name": "成交日报",
        "tags": ["day"],
        "columns": [
            {"header": "外呼总数", "statistic": {"kind": "dials"}},
            {"header": "办成单数", "statistic": {"kind": "field_value", "key": "result", "value": "成功办理"}},
            {"header": "办成率", "statistic": {"kind": "field_value", "key": "result", "value": "成功办理"},
             "divide_by": {"kind": "dials"}},
            {"header": "客户接听数", "statistic": {"kind": "customer_connected"}}
        ]
    })
}

/// Reads 项目任务报表 of `project_id` (today) in the browser: its headers and body rows.
async fn hq_report(browser: &Browser, url: &str, project_id: u64) -> anyhow::Result<(Vec<String>, Vec<Vec<String>>)> {
    browser.goto(&format!("{url}/admin/reports/hq?time=today&project_id={project_id}")).await?;
    let headers = site_support::table_headers(browser, "#hq-0 table").await?;
    let rows = site_support::table(browser, "#hq-0 table", false).await?;
    Ok((headers, rows))
}

/// Real calls at the site: the carrier answers two (the agent's phone takes both, the agent
/// saves "成功办理" then "无意向") and is busy for the third.
async fn make_calls(appliance: &appliance::Appliance, db: &Path, url: &str, admin: &Api, carrier_port: u16) -> anyhow::Result<()> {
    let phone = site_support::agent_phone_for(appliance.sip_addr, EXTENSION, SIP_PASSWORD, 2).await?;
    let carrier = site_support::carrier(carrier_port, 2, 3000)?;
    let agent = Api::login(url, AGENT, AGENT_PASSWORD).await?;
    agent.post::<Value>("/api/agent/state", &json!({"state": "available"})).await?;
    let batch_id = wait_for_some(Duration::from_secs(30), || async {
        let tasks: Vec<Value> = admin.get("/api/tasks").await.ok()?;
        tasks.first().and_then(|task| task["batch_id"].as_u64())
    })
    .await
    .context("the dispatched batch reaches the site")?;
    admin
        .post::<Value>(
            &format!("/api/tasks/{batch_id}/start"),
            &json!({"ratio": 1, "max_concurrency": 1, "ring_seconds": 20, "dial_mode": "predictive", "cool_down": 3}),
        )
        .await?;
    for result in ["成功办理", "无意向"] {
        let attempt = wait_for_some(Duration::from_secs(60), || async {
            appliance.store.unsaved_attempts(AGENT).ok()?.first().copied()
        })
        .await
        .with_context(|| format!("a call reaches the agent before {result}"))?;
        agent.post::<Value>(&format!("/api/attempts/{attempt}/record"), &json!({"values": {"result": result}})).await?;
    }
    carrier.wait(Duration::from_secs(90)).await.ensure_success().context("the carrier answers two calls")?;
    let busy = Sipp::scenario("carrier_busy.xml").local_port(carrier_port).calls(1).timeout(Duration::from_secs(60)).spawn()?;
    phone.wait(Duration::from_secs(30)).await.ensure_success().context("the agent's phone takes both")?;
    wait_until(Duration::from_secs(60), || async { raw_figures(db).is_ok_and(|f| f.0 == 3) })
        .await
        .context("the third number is dialed")?;
    let _ = busy.wait(Duration::from_secs(10)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hq_report_definitions_reach_only_the_projects_site_and_stay_with_the_link_cut() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("info,quinn=warn,rustls=warn").try_init();
    let dir = tempfile::tempdir()?;
    let (hub_dir, site_dir, other_dir) = (dir.path().join("hub"), dir.path().join("site"), dir.path().join("other"));
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();

    let (hub, hq_password) = tests::start_hub(&hub_dir, shutdown.clone()).await?;
    let hq = Api::login(&format!("http://{}", hub.http_addr), "admin", &hq_password).await?;
    let relay = UdpRelay::start(hub.sync_addr).await?;
    let site_id = enroll_site(&hq, "定义职场", &site_dir, relay.addr).await?;
    let other_id = enroll_site(&hq, "旁观职场", &other_dir, hub.sync_addr).await?;
    dispatch_demo_list(&hq, "流量类", &dir.path().join("定义名单.xlsx"), 3, "定义批次", site_id).await?;
    let projects: Vec<Value> = hq.get("/api/projects").await?;
    let project_id = projects.first().and_then(|p| p["id"].as_u64()).context("HQ has the demo project")?;

    let carrier_port = free_udp_port();
    let admin_password = appliance::init_admin(&site_dir, "siteadmin")?;
    let appliance = appliance::start(
        appliance::ApplianceConfig::on_loopback(&site_dir, SocketAddr::new(localhost, carrier_port), 2),
        shutdown.clone(),
    )
    .await?;
    let other = appliance::start(
        appliance::ApplianceConfig::on_loopback(&other_dir, SocketAddr::new(localhost, free_udp_port()), 1),
        shutdown.clone(),
    )
    .await?;
    let url = format!("http://{}", appliance.http_addr);
    let admin = Api::login(&url, "siteadmin", &admin_password).await?;
    admin.post::<Value>("/api/extensions", &json!({"extension": EXTENSION, "password": SIP_PASSWORD})).await?;
    admin
        .post::<Value>("/api/agents", &json!({"username": AGENT, "password": AGENT_PASSWORD, "name": "小吴", "extension": EXTENSION}))
        .await?;

    // HQ's admin saves the definition; the project's site gets version 1 over the link.
    let saved: Value = hq.post(&format!("/api/projects/{project_id}/reports"), &first_version()).await?;
    let report_id = saved["id"].as_u64().context("the saved definition's id")?;
    let version = wait_for_some(Duration::from_secs(60), || async {
        appliance.store.report_definitions(project_id).ok().flatten().map(|(v, _)| v)
    })
    .await
    .context("the site receives HQ's definition over the link")?;

    let db = site_dir.join("site.db");
    make_calls(&appliance, &db, &url, &admin, carrier_port).await?;
    let (dials, answered, success) = raw_figures(&db)?;
    ensure!((dials, success) == (3, 1), "three dials, one success: {:?}", (dials, answered, success));
    let today = reports::day_text(reports::Zone::china().local_day(appliance::store::now_unix()));

    let browser = Browser::start().await?;
    browser.client().set_window_size(1366, 768).await?;
    site_support::login(&browser, &url, "siteadmin", &admin_password).await?;
    let (headers, rows) = hq_report(&browser, &url, project_id).await?;
    ensure!(headers[1..] == ["拨打总量", "办成单数", "办成率"], "HQ's headers, exactly: {headers:?}");
    let first_row = vec![today.clone(), dials.to_string(), success.to_string(), pct(success, dials)];
    ensure!(rows == vec![first_row], "HQ's columns over the site's calls: {rows:?}");
    let note = browser.wait_for("#report-note", Duration::from_secs(5)).await?.text().await?;
    ensure!(note.contains(&format!("（版本 {version}）")), "the page names the version {version}: {note}");

    // HQ edits it: the site shows the new version.
    hq.put::<Value>(&format!("/api/projects/{project_id}/reports/{report_id}"), &second_version()).await?;
    wait_until(Duration::from_secs(60), || async {
        appliance.store.report_definitions(project_id).ok().flatten().is_some_and(|(v, _)| v > version)
    })
    .await
    .context("the site receives HQ's edit over the link")?;
    let (headers, rows) = hq_report(&browser, &url, project_id).await?;
    let expected_headers = ["外呼总数", "办成单数", "办成率", "客户接听数"];
    ensure!(headers[1..] == expected_headers, "the edited headers: {headers:?}");
    let second_row = vec![today.clone(), dials.to_string(), success.to_string(), pct(success, dials), answered.to_string()];
    ensure!(rows == vec![second_row.clone()], "the edited columns: {rows:?}");
    site_support::chart_drawn(&browser, "hq-0").await?;

    // The cable is cut: HQ's columns stay.
    relay.partitioned.store(true, Ordering::SeqCst);
    wait_until(Duration::from_secs(60), || async {
        admin.get::<Value>("/api/status").await.is_ok_and(|s| s["link"]["state"] == json!("offline"))
    })
    .await
    .context("the site shows the HQ link offline")?;
    let (headers, rows) = hq_report(&browser, &url, project_id).await?;
    ensure!(headers[1..] == expected_headers && rows == vec![second_row], "with the link cut: {headers:?} {rows:?}");
    browser.screenshot(tests::screenshot_dir().join("site-reports-hq-definitions.png")).await?;
    // In English too, the note names the version in English punctuation.
    let (edited, _) = appliance.store.report_definitions(project_id)?.context("kept with the link cut")?;
    browser.goto(&format!("{url}/lang/en")).await?;
    let (headers, _) = hq_report(&browser, &url, project_id).await?;
    ensure!(headers[1..] == expected_headers, "HQ's headers are HQ's words in any language: {headers:?}");
    let note = browser.wait_for("#report-note", Duration::from_secs(5)).await?.text().await?;
    ensure!(note.ends_with(&format!("(version {edited})")), "the English note: {note}");
    browser.close().await?;

    // The other box can receive definitions: a second sub-project gets one before any site
    // takes part, then the other box joins it and is sent that project with its definitions.
    let category_id = projects[0]["category_id"].as_u64().context("the demo project's category")?;
    let mut second = demo_project(category_id);
    second["name"] = json!("宽带续约回访");
    let second: Value = hq.post("/api/projects", &second).await?;
    let second_id = second["id"].as_u64().context("the second project's id")?;
    hq.post::<Value>(&format!("/api/projects/{second_id}/reports"), &first_version()).await?;
    hq.put::<Value>(&format!("/api/projects/{second_id}/sites"), &json!({"site_ids": [other_id]})).await?;
    let (_, seeded) = wait_for_some(Duration::from_secs(60), || async { other.store.report_definitions(second_id).ok().flatten() })
        .await
        .context("a site joining a sub-project is sent its definitions")?;
    ensure!(seeded.len() == 1 && seeded[0].name == "成交日报", "the second project's definitions: {seeded:?}");
    // It has applied everything HQ logged for it after the edit (the log is applied in
    // order), and holds nothing of the first project.
    let other_log = hub.store.down_log(other_id as i64, 0, 10_000)?;
    ensure!(
        !other_log.iter().any(|e| matches!(e.event, DownEvent::ReportDefinitions { project_id: p, .. } if p == project_id)),
        "HQ queued none of the first project's definitions for the other site"
    );
    let hq_logged = hub.store.down_log(site_id as i64, 0, 10_000)?;
    ensure!(
        hq_logged.iter().filter(|e| matches!(e.event, DownEvent::ReportDefinitions { .. })).count() == 2,
        "HQ queued both versions for the project's site"
    );
    ensure!(other.store.report_definitions(project_id)?.is_none(), "the other site never receives the definitions");
    Ok(())
}
