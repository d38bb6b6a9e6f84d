//! The desk's growing lists over real HTTP: 外呼通话记录 and 客户管理 page by keyset (50 a
//! page, a "next page" link that carries the last row's key and the filters) and filter by
//! a day span; a malformed day is refused by its label, in Chinese. The site admin's
//! callback grace page; a manual dial refused in the UI's language.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, ensure};
use appliance::ApplianceConfig;
use appliance::store::{AgentSettings, AttemptEnd, Line, Role};
use serde_json::json;
use sync_link::SiteStore;
use sync_protocol::Outcome;
use tokio_util::sync::CancellationToken;

use common::*;

/// The text after each `marker` of a page (a row key or a phone), and its next page link.
fn rows_and_next(html: &str, marker: &str) -> (Vec<String>, Option<String>) {
    let rows = html
        .match_indices(marker)
        .map(|(at, _)| html[at + marker.len()..].split('"').next().unwrap_or_default().to_string())
        .collect();
    let next = html
        .split("<a class=\"next\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(|href| href.replace("&amp;", "&").replace("&#38;", "&"));
    (rows, next)
}

#[tokio::test]
async fn records_and_customers_page_by_key_and_filter_by_day() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let admin_password = appliance::init_admin(dir.path(), "siteadmin")?;
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let config = ApplianceConfig {
        data_dir: dir.path().to_path_buf(),
        http_bind: SocketAddr::new(localhost, 0),
        sip_bind: SocketAddr::new(localhost, 0),
        public_ip: localhost,
        rtp_ports: (33600, 33699),
        trunks: Vec::new(),
        hold_audio: None,
        telephony: Default::default(),
        web: Default::default(),
        stop_grace: Duration::from_secs(30),
        recordings: Default::default(),
        panel: Default::default(),
        inbound_queue: Duration::from_secs(60),
    };
    let shutdown = CancellationToken::new();
    let site = appliance::start(config, shutdown.clone()).await?;
    let store = &site.store;
    // 60 customers, each called once by agent1 (a typed number: the quickest real attempt).
    for entry in entries(1, batch_events(7, &rows(7, 60), 20, 50, 1_700_000_000)) {
        store.apply_down(&entry)?;
    }
    store.set_lines(vec![Line { name: "02150001111".into(), channels: 4 }]);
    store.create_extension("1001", "secret-pass")?;
    let agent = store.create_user("agent1", "agent-pass", Role::Agent, "坐席", Some("1001"))?;
    store.set_agent_settings(agent, &AgentSettings { caller: "02150001111".into(), popup_timing: "answer".into(), popup_page: "default".into() })?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    for row in rows(7, 60) {
        let claim = store.claim_typed_number(None, &row.phone, agent, "agent1", now).context("typed number")?;
        let end = AttemptEnd { outcome: Outcome::Busy, hangup_side: None, ended_at: now, recording_path: None, recording_sha256: None };
        store.finish_attempt(claim.claimed.attempt_id, &end)?;
    }
    let url = format!("http://{}", site.http_addr);
    let client = reqwest::Client::builder().cookie_store(true).timeout(Duration::from_secs(10)).build()?;
    let login = client.post(format!("{url}/api/login")).json(&json!({"username": "agent1", "password": "agent-pass"})).send().await?;
    ensure!(login.status().is_success(), "login");
    let page = |path: String| {
        let client = client.clone();
        async move { client.get(path).send().await?.text().await.map_err(anyhow::Error::from) }
    };

    // 外呼通话记录: 50, then the 10 older ones, no call twice; the filter rides along.
    let first = page(format!("{url}/desk/records?outcome=busy")).await?;
    let (ids, next) = rows_and_next(&first, "<tr data-attempt=\"");
    assert_eq!(ids.len(), 50);
    let next = next.context("a next page link")?;
    assert!(next.contains("outcome=busy") && next.contains(&format!("before={}", ids[49])), "{next}");
    let second = page(format!("{url}{next}")).await?;
    let (older, none) = rows_and_next(&second, "<tr data-attempt=\"");
    assert_eq!(older.len(), 10);
    assert!(none.is_none(), "the last page has no next link");
    assert!(older.iter().all(|id| !ids.contains(id)), "no call on two pages");
    assert!(second.contains("class=\"first\""), "a way back to the first page");
    // Days in China time: today holds every call, tomorrow none.
    let today = time::OffsetDateTime::from_unix_timestamp(now + 8 * 3600)?.date();
    let tomorrow = today.next_day().context("date")?;
    let (today_ids, _) = rows_and_next(&page(format!("{url}/desk/records?from={today}&to={today}")).await?, "<tr data-attempt=\"");
    assert_eq!(today_ids.len(), 50);
    let (later, _) = rows_and_next(&page(format!("{url}/desk/records?from={tomorrow}")).await?, "<tr data-attempt=\"");
    assert!(later.is_empty());
    let refused = client.get(format!("{url}/desk/records?from=2026-13-01")).send().await?;
    assert_eq!(refused.status(), reqwest::StatusCode::BAD_REQUEST);
    let text = refused.text().await?;
    assert!(text.contains("“开始日期”须为日期"), "{text}");

    // 客户管理: the agent's 60 customers, 50 then 10; by the batch's import day.
    let first = page(format!("{url}/desk/customers")).await?;
    let (phones, next) = rows_and_next(&first, "<td class=\"phone\">");
    assert_eq!(phones.len(), 50);
    let next = next.context("a next page link")?;
    let (rest, none) = rows_and_next(&page(format!("{url}{next}")).await?, "<td class=\"phone\">");
    assert_eq!(rest.len(), 10);
    assert!(none.is_none());
    // Batch 7 was imported 2023-11-14 22:13 UTC, 2023-11-15 in China.
    let (that_day, _) = rows_and_next(&page(format!("{url}/desk/customers?from=2023-11-15&to=2023-11-15")).await?, "<td class=\"phone\">");
    assert_eq!(that_day.len(), 50);
    let (day_before, _) = rows_and_next(&page(format!("{url}/desk/customers?to=2023-11-14")).await?, "<td class=\"phone\">");
    assert!(day_before.is_empty(), "imported the next day, China time");

    // A manual dial's refusal in the UI's language: Chinese by default, English on the switch.
    let refuse = || {
        let client = client.clone();
        let url = url.clone();
        async move {
            let response = client.post(format!("{url}/api/agent/dial")).json(&json!({"phone": "13800130700"})).send().await?;
            anyhow::Ok((response.status(), response.json::<serde_json::Value>().await?))
        }
    };
    let (status, zh) = refuse().await?;
    assert_eq!((status, zh["error"].as_str()), (reqwest::StatusCode::CONFLICT, Some("请先签入（可回接或不可回接）再外呼")));
    client.get(format!("{url}/lang/en")).send().await?;
    let (_, en) = refuse().await?;
    assert_eq!(en["error"].as_str(), Some("Sign in (available or one-click only) before dialing"));
    client.get(format!("{url}/lang/zh")).send().await?;
    let bad = client.post(format!("{url}/api/agent/dial")).json(&json!({"phone": "12ab"})).send().await?;
    assert_eq!(bad.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.json::<serde_json::Value>().await?["error"], "客户号码须为 3 至 20 位数字");

    // The site admin's callback grace: its page, and a value out of range refused in Chinese.
    let admin = reqwest::Client::builder().cookie_store(true).timeout(Duration::from_secs(10)).build()?;
    let login = admin.post(format!("{url}/api/login")).json(&json!({"username": "siteadmin", "password": admin_password})).send().await?;
    ensure!(login.status().is_success(), "admin login");
    let settings = admin.get(format!("{url}/admin/callback-settings")).send().await?.text().await?;
    assert!(settings.contains("回访宽限（分钟）") && settings.contains("name=\"minutes\"") && settings.contains("value=\"10\""), "{settings}");
    let refused = admin.post(format!("{url}/api/desk/callback-grace")).json(&json!({"minutes": 2000})).send().await?;
    assert_eq!(refused.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text().await?.contains("回访宽限须为 0 至 1440 分钟"));
    assert_eq!(store.callback_grace_minutes()?, 10);
    shutdown.cancel();
    Ok(())
}
