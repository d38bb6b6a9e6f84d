//! The site's own reports (S6-S9) with the HQ link cut, in a real browser: a box enrolled
//! at the real hub over QUIC through a UDP relay the test controls, a batch of three numbers
//! dispatched from HQ's console, then the cable cut. Real SIPp calls follow: the carrier
//! answers two (the agent's SIPp phone takes both) and is busy for the third; the agent
//! saves one record "成功办理" and one "无意向". HQ's report definitions for the project are
//! put into the site's down log as the link would bring them (`hq_report_defs` proves the
//! real path, from HQ's API over the link).
//!
//! The site admin then reads, in headless Chromium, 统计报表, 项目任务统计, 项目任务批次,
//! 项目任务报表 and 项目任务榜单; every figure is checked against the site's own SQLite file
//! (the raw attempts), each chart is drawn, the leaderboard's export is opened with calamine
//! and matches the page, and a staff account without the full-numbers module sees the
//! numbers masked. Screenshots (1366×768) go to `tests::screenshot_dir()`.

mod site_support;

use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, ensure};
use calamine::{Data, Reader, Xlsx};
use demo::setup::{Api, dispatch_demo_list, enroll_site};
use serde_json::{Value, json};
use sync_link::SiteStore;
use sync_protocol::{DownEntry, DownEvent, ReportDefinition};
use tests::{Browser, Sipp, UdpRelay, free_udp_port, wait_for_some, wait_until};
use tokio_util::sync::CancellationToken;

const EXTENSION: &str = "8201";
const SIP_PASSWORD: &str = "phone-secret-8201";
const AGENT: &str = "report-agent";
const AGENT_PASSWORD: &str = "agent-secret-8201";

/// The raw truth of the site's file: `(dials, answered, connected, agent-side hang-ups,
/// agent talk seconds)`.
fn raw_figures(db: &std::path::Path) -> anyhow::Result<(i64, i64, i64, i64, i64)> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    Ok(conn.query_row(
        "SELECT COUNT(*),
                SUM(outcome IN ('connected', 'abandoned', 'agent_missed')),
                SUM(outcome = 'connected'),
                SUM(COALESCE(hangup_side, '') = 'agent'),
                SUM(CASE WHEN agent = ?1 THEN talk_seconds ELSE 0 END)
         FROM attempts WHERE state = 'done'",
        [AGENT],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?)
}

/// The numbers dialed, whole, from the site's file.
fn raw_phones(db: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut statement = conn.prepare("SELECT phone FROM attempts")?;
    let phones = statement.query_map([], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
    Ok(phones)
}

fn rate(n: i64, of: i64) -> String {
    format!("{n} ({:.2}%)", if of == 0 { 0.0 } else { n as f64 * 100.0 / of as f64 })
}

fn pct(n: i64, of: i64) -> String {
    if of == 0 { "-".into() } else { format!("{:.2}%", n as f64 * 100.0 / of as f64) }
}

/// The leaderboard's export, as text per cell (numbers as the page prints them).
/// Rates are the columns whose header ends in 率.
fn xlsx_rows(bytes: Vec<u8>) -> anyhow::Result<Vec<Vec<String>>> {
    let mut book: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(bytes))?;
    let sheet = book.worksheet_range("项目任务榜单")?;
    let header = sheet.rows().find(|r| r.first().is_some_and(|c| c.to_string() == "#")).map(|r| r.to_vec()).unwrap_or_default();
    let is_rate = |col: usize| header.get(col).is_some_and(|h| h.to_string().ends_with('率'));
    Ok(sheet
        .rows()
        .map(|row| {
            row.iter()
                .enumerate()
                .map(|(col, cell)| match cell {
                    Data::Float(f) if is_rate(col) => format!("{:.2}%", f * 100.0),
                    Data::Float(f) => format!("{f}"),
                    Data::Int(i) => i.to_string(),
                    Data::String(s) => s.clone(),
                    Data::Empty => String::new(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_reports_add_up_the_real_calls_with_the_hq_link_cut() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("info,quinn=warn,rustls=warn").try_init();
    let dir = tempfile::tempdir()?;
    let (hub_dir, site_dir) = (dir.path().join("hub"), dir.path().join("site"));
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();

    let (hub, hq_password) = tests::start_hub(&hub_dir, shutdown.clone()).await?;
    let hq = Api::login(&format!("http://{}", hub.http_addr), "admin", &hq_password).await?;
    let relay = UdpRelay::start(hub.sync_addr).await?;
    let site_id = enroll_site(&hq, "报表职场", &site_dir, relay.addr).await?;
    dispatch_demo_list(&hq, "流量类", &dir.path().join("报表名单.xlsx"), 3, "报表批次", site_id).await?;
    let carrier_port = free_udp_port();
    let admin_password = appliance::init_admin(&site_dir, "siteadmin")?;
    let appliance = appliance::start(
        appliance::ApplianceConfig::on_loopback(&site_dir, SocketAddr::new(localhost, carrier_port), 2),
        shutdown.clone(),
    )
    .await?;
    let url = format!("http://{}", appliance.http_addr);
    let admin = Api::login(&url, "siteadmin", &admin_password).await?;
    admin.post::<Value>("/api/extensions", &json!({"extension": EXTENSION, "password": SIP_PASSWORD})).await?;
    admin
        .post::<Value>("/api/agents", &json!({"username": AGENT, "password": AGENT_PASSWORD, "name": "小周", "extension": EXTENSION}))
        .await?;
    let role: Value = admin.post("/api/roles", &json!({"name": "报表员", "modules": ["data"]})).await?;
    admin
        .post::<Value>("/api/staff", &json!({"username": "reader", "password": "reader-pass-1", "role_id": role["role_id"]}))
        .await?;
    let role: Value = admin.post("/api/roles", &json!({"name": "号码全显", "modules": ["data", "full_numbers"]})).await?;
    admin
        .post::<Value>("/api/staff", &json!({"username": "fullreader", "password": "reader-pass-2", "role_id": role["role_id"]}))
        .await?;
    let batch_id = wait_for_some(Duration::from_secs(30), || async {
        let tasks: Vec<Value> = admin.get("/api/tasks").await.ok()?;
        tasks.first().and_then(|task| task["batch_id"].as_u64())
    })
    .await
    .context("the dispatched batch reaches the site")?;

    // The cable is cut.
    relay.partitioned.store(true, Ordering::SeqCst);
    wait_until(Duration::from_secs(60), || async {
        admin.get::<Value>("/api/status").await.is_ok_and(|s| s["link"]["state"] == json!("offline"))
    })
    .await
    .context("the site shows the HQ link offline")?;

    // Two answered calls put through to the agent, then a busy number.
    let phone = site_support::agent_phone_for(appliance.sip_addr, EXTENSION, SIP_PASSWORD, 2).await?;
    let carrier = site_support::carrier(carrier_port, 2, 3000)?;
    let agent = Api::login(&url, AGENT, AGENT_PASSWORD).await?;
    agent.post::<Value>("/api/agent/state", &json!({"state": "available"})).await?;
    admin
        .post::<Value>(
            &format!("/api/tasks/{batch_id}/start"),
            &json!({"ratio": 1, "max_concurrency": 1, "ring_seconds": 20, "dial_mode": "predictive", "cool_down": 3}),
        )
        .await?;
    // The agent saves each call's record (which ends the wrap-up, so the next call comes).
    let mut recorded = Vec::new();
    for result in ["成功办理", "无意向"] {
        let attempt = wait_for_some(Duration::from_secs(60), || async {
            appliance.store.unsaved_attempts(AGENT).ok()?.first().copied()
        })
        .await
        .with_context(|| format!("a call reaches the agent before {result}"))?;
        agent.post::<Value>(&format!("/api/attempts/{attempt}/record"), &json!({"values": {"result": result}})).await?;
        recorded.push(attempt);
    }
    carrier.wait(Duration::from_secs(90)).await.ensure_success().context("the carrier answers two calls")?;
    let busy = Sipp::scenario("carrier_busy.xml").local_port(carrier_port).calls(1).timeout(Duration::from_secs(60)).spawn()?;
    phone.wait(Duration::from_secs(30)).await.ensure_success().context("the agent's phone takes both")?;
    let db = site_dir.join("site.db");
    wait_until(Duration::from_secs(60), || async { raw_figures(&db).is_ok_and(|f| f.0 == 3) })
        .await
        .context("the third number is dialed")?;
    let _ = busy.wait(Duration::from_secs(10)).await;
    let (dials, answered, connected, agent_hangups, talk) = raw_figures(&db)?;
    ensure!((dials, connected) == (3, 2), "three dials, two put through: {:?}", raw_figures(&db)?);
    ensure!(recorded.len() == 2 && recorded[0] != recorded[1], "two calls recorded: {recorded:?}");

    // HQ's report definitions for the project, as the down log brings them.
    let (project_id, project_name) = appliance.store.projects()?.first().cloned().context("the project")?;
    let def = json!({
        "name": "每日成交",
        "tags": ["day"],
        "columns": [
            {"header": "外呼数", "statistic": {"kind": "dials"}},
            {"header": "客户接通数", "statistic": {"kind": "customer_connected"}},
            {"header": "接通率", "statistic": {"kind": "customer_connected"}, "divide_by": {"kind": "dials"}},
            {"header": "成功办理", "statistic": {"kind": "field_value", "key": "result", "value": "成功办理"}}
        ]
    });
    let defs = vec![ReportDefinition { id: 1, name: "每日成交".into(), definition: def.to_string() }];
    let seq = appliance.store.down_applied()? + 1;
    appliance.store.apply_down_batch(&[DownEntry {
        seq,
        event: DownEvent::ReportDefinitions { project_id, version: 1, defs },
    }])?;
    let state = admin.get::<Value>("/api/status").await?["link"]["state"].clone();
    ensure!(state == json!("offline") || state == json!("connecting"), "still cut: {state}");

    let browser = Browser::start().await?;
    browser.client().set_window_size(1366, 768).await?;
    site_support::login(&browser, &url, "siteadmin", &admin_password).await?;
    let shots = tests::screenshot_dir();

    // S6 统计报表: the project's row and the day's.
    browser.goto(&format!("{url}/admin/reports?time=today")).await?;
    let rows = site_support::table(&browser, "#by-project table", false).await?;
    let expected = vec![project_name.clone(), "3".into(), answered.to_string(), pct(answered, 3), connected.to_string(), pct(connected, 3), connected.to_string(), talk.to_string()];
    ensure!(rows == vec![expected], "统计报表 by project: {rows:?}");
    site_support::chart_drawn(&browser, "by-project").await?;
    site_support::chart_drawn(&browser, "by-day").await?;
    browser.screenshot(shots.join("site-reports-statistics.png")).await?;

    // S7 项目任务统计: per batch and the daily table (总计 first).
    browser.goto(&format!("{url}/admin/reports/tasks?time=last7")).await?;
    let by_batch = site_support::table(&browser, "#by-batch table", false).await?;
    ensure!(by_batch.len() == 1, "{by_batch:?}");
    ensure!(
        by_batch[0][1..] == [
            "3".to_string(), "3".into(), rate(answered, 3), rate(3 - answered, 3), rate(agent_hangups, 3), rate(0, 3), rate(0, 3)
        ],
        "外呼任务统计: {by_batch:?}"
    );
    let daily = site_support::table(&browser, "#by-day table", false).await?;
    let day_row = |label: &str| vec![label.to_string(), "3".into(), rate(answered, 3), rate(connected, 3), rate(0, 3), rate(0, 3), rate(agent_hangups, 3)];
    let today = reports::day_text(reports::Zone::china().local_day(appliance::store::now_unix()));
    ensure!(daily == vec![day_row("总计"), day_row(&today)], "每日统计: {daily:?}");
    site_support::chart_drawn(&browser, "by-day").await?;
    browser.screenshot(shots.join("site-reports-task-statistics.png")).await?;

    // S7 项目任务批次: each number's attempt; the project hides the middle digits.
    browser.goto(&format!("{url}/admin/reports/batches?batch_id={batch_id}")).await?;
    let numbers = site_support::table(&browser, "#numbers table", false).await?;
    let phones = raw_phones(&db)?;
    ensure!(numbers.len() == 3 && numbers.iter().all(|r| r[1].contains("****")), "{numbers:?}");
    ensure!(numbers.iter().all(|r| phones.iter().any(|p| p[..3] == r[1][..3] && p[7..] == r[1][7..])), "{numbers:?} {phones:?}");
    ensure!(numbers.iter().filter(|r| r[4] == "接通" && r[5] == AGENT).count() == 2, "{numbers:?}");
    browser.screenshot(shots.join("site-reports-batches.png")).await?;

    // S8 项目任务报表: HQ's columns, computed here.
    browser.goto(&format!("{url}/admin/reports/hq?time=today")).await?;
    let hq_rows = site_support::table(&browser, "#hq-0 table", false).await?;
    ensure!(hq_rows == vec![vec![today.clone(), "3".into(), answered.to_string(), pct(answered, 3), "1".into()]], "项目任务报表: {hq_rows:?}");
    site_support::chart_drawn(&browser, "hq-0").await?;
    browser.screenshot(shots.join("site-reports-task-report.png")).await?;

    // S9 项目任务榜单 and its export.
    browser.goto(&format!("{url}/admin/reports/agents?time=month")).await?;
    let board = site_support::table(&browser, "#leaderboard table", true).await?;
    let agent_row = vec![
        "1".to_string(), AGENT.into(), "2".into(), "2".into(), "2".into(), "100.00%".into(), "1".into(), "50.00%".into(), "2".into(), talk.to_string(),
    ];
    ensure!(board.first() == Some(&agent_row), "the agent leads the board: {board:?}");
    ensure!(
        board.len() == 3 && board[1][1..5] == ["（未接入坐席）".to_string(), "1".into(), "1".into(), "0".into()],
        "the busy number has no agent: {board:?}"
    );
    site_support::chart_drawn(&browser, "leaderboard").await?;
    browser.screenshot(shots.join("site-reports-leaderboard.png")).await?;
    let href = browser.wait_for("#export-xlsx", Duration::from_secs(5)).await?.attr("href").await?.context("export link")?;
    let exported = xlsx_rows(admin.get_bytes(&href).await?)?;
    let header_at = exported.iter().position(|r| r.first().is_some_and(|c| c == "#")).context("the export's header row")?;
    ensure!(exported[header_at][3..5] == ["外呼数".to_string(), "外呼接通数".into()], "words, not keys: {:?}", exported[header_at]);
    ensure!(exported[header_at + 1..] == board[..], "the export matches the page: {exported:?} vs {board:?}");
    ensure!(exported[1][0].contains("北京时间"), "China time: {:?}", exported[1]);

    // A custom range over a year is refused naming the field, in Chinese, then in English.
    browser.goto(&format!("{url}/admin/reports?time=custom&from=2025-01-01&to=2026-12-31")).await?;
    let refused = browser.wait_for("#report-error", Duration::from_secs(5)).await?.text().await?;
    ensure!(refused.contains("to：时间段最多 366 天"), "{refused}");
    browser.goto(&format!("{url}/lang/en")).await?;
    browser.goto(&format!("{url}/admin/reports?time=custom&from=2025-01-01&to=2026-12-31")).await?;
    let refused = browser.wait_for("#report-error", Duration::from_secs(5)).await?.text().await?;
    ensure!(refused.contains("to: a range covers at most 366 days"), "{refused}");
    browser.goto(&format!("{url}/admin/reports/agents?time=month")).await?;
    let english = browser.wait_for("#leaderboard thead", Duration::from_secs(5)).await?.text().await?;
    ensure!(english.contains("Dials") && english.contains("Agent account"), "{english}");
    let english_board = site_support::table(&browser, "#leaderboard table", true).await?;
    ensure!(english_board[0] == board[0] && english_board[1][1] == "(no agent)", "the same figures in English: {english_board:?}");
    ensure!(english_board[2][0] == "Total" && english_board[2][2..] == board[2][2..], "{english_board:?}");

    // Only a role with the full-numbers module sees them whole.
    let detail = format!("/admin/reports/batches?batch_id={batch_id}");
    let reader = Api::login(&url, "reader", "reader-pass-1").await?;
    let page = String::from_utf8(reader.get_bytes(&detail).await?)?;
    ensure!(page.contains("****") && !phones.iter().any(|p| page.contains(p.as_str())), "masked for the reader");
    let full = Api::login(&url, "fullreader", "reader-pass-2").await?;
    let page = String::from_utf8(full.get_bytes(&detail).await?)?;
    ensure!(phones.iter().all(|p| page.contains(p.as_str())), "whole for the full-numbers role");
    browser.close().await?;
    Ok(())
}
