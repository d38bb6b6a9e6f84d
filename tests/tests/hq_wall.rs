//! HQ's monitoring wall (职场监控管理) and home page (首页) in headless Chromium, fed by a real
//! enrolled appliance over the QUIC link (through a UDP relay the test can cut) with real SIP:
//! a SIPp carrier that rings 4 s, answers, talks and hangs up, a SIPp phone as the agent's
//! extension, and the agent's desk over its JSON and SSE API.
//!
//! The wall shows the call ringing, the agent talking and the call ending, each without a
//! reload; the home page counts the call; when the cable is cut, the wall turns the site
//! grey with how long it has been offline, keeping its last known state. Screenshots of the
//! wall and the home page at 1366×768.

mod site_support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use demo::setup::{Api, dispatch_demo_list, enroll_site};
use fantoccini::Locator;
use serde_json::{Value, json};
use tests::{Browser, UdpRelay, free_udp_port, wait_for_some};
use tokio_util::sync::CancellationToken;

const EXTENSION: &str = "8201";
const SIP_PASSWORD: &str = "phone-secret-8201";
const AGENT: &str = "wall-agent";
const AGENT_PASSWORD: &str = "agent-secret-8201";
const SITE: &str = "杭州监控职场";

/// Sizes the window so that the page itself (what a screenshot holds) is 1366×768.
async fn viewport_1366_by_768(browser: &Browser) -> anyhow::Result<()> {
    browser.client().set_window_size(1366, 768).await?;
    let inner = browser.client().execute("return [window.innerWidth, window.innerHeight];", vec![]).await?;
    let (width, height) = (inner[0].as_u64().unwrap_or(1366) as u32, inner[1].as_u64().unwrap_or(768) as u32);
    browser.client().set_window_size(1366 + 1366 - width, 768 + 768 - height).await?;
    Ok(())
}

/// Logs in to the HQ console as its admin through the login page.
async fn hq_login(browser: &Browser, url: &str, password: &str) -> anyhow::Result<()> {
    browser.goto(&format!("{url}/login")).await?;
    browser.wait_for("input[name=username]", Duration::from_secs(10)).await?.send_keys("admin").await?;
    browser.wait_for("input[name=password]", Duration::from_secs(5)).await?.send_keys(password).await?;
    browser.wait_for("form button", Duration::from_secs(5)).await?.click().await?;
    wait_for_some(Duration::from_secs(10), || async {
        let url = browser.client().current_url().await.ok()?;
        (!url.path().starts_with("/login")).then_some(())
    })
    .await
    .context("the admin is logged in")?;
    Ok(())
}

/// The site's card on the wall, as text, with its classes.
async fn card(browser: &Browser, site_id: u64) -> Option<(String, String)> {
    let card = browser.client().find(Locator::Css(&format!("#site-{site_id}"))).await.ok()?;
    Some((card.text().await.ok()?, card.attr("class").await.ok()??))
}

/// A figure of the card (`data-figure` = `name`).
async fn figure(browser: &Browser, site_id: u64, name: &str) -> Option<String> {
    let element = browser.client().find(Locator::Css(&format!("#site-{site_id} [data-figure={name}]"))).await.ok()?;
    element.text().await.ok()
}

/// Waits until the card satisfies `check`; the error names what the card showed last.
async fn wait_card(browser: &Browser, site_id: u64, what: &str, wait: Duration, check: impl Fn(&str, &str) -> bool) -> anyhow::Result<String> {
    let shown = wait_for_some(wait, || async {
        let (text, class) = card(browser, site_id).await?;
        check(&text, &class).then_some(text)
    })
    .await;
    match shown {
        Ok(text) => Ok(text),
        Err(_) => anyhow::bail!("the wall never showed {what}; it shows {:?}", card(browser, site_id).await),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_shows_a_real_call_ringing_talking_and_ending_and_the_site_going_offline() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("info,quinn=warn,rustls=warn").try_init();
    let dir = tempfile::tempdir()?;
    let site_dir = dir.path().join("site");
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();

    let (hub, hq_password) = tests::start_hub(&dir.path().join("hub"), shutdown.clone()).await?;
    let hq_url = format!("http://{}", hub.http_addr);
    let hq = Api::login(&hq_url, "admin", &hq_password).await?;
    let relay = UdpRelay::start(hub.sync_addr).await?;
    let site_id = enroll_site(&hq, SITE, &site_dir, relay.addr).await?;
    // A second site HQ has set up whose box is not installed yet.
    hq.post::<Value>("/api/sites", &json!({ "name": "成都二号职场" })).await?;
    dispatch_demo_list(&hq, "监控类", &dir.path().join("监控名单.xlsx"), 1, "监控批次", site_id).await?;
    let projects: Vec<Value> = hq.get("/api/projects").await?;
    let project_id = projects[0]["id"].as_u64().context("project id")?;
    hq.put::<Value>(&format!("/api/projects/{project_id}/settings"), &json!({ "status": "running" })).await?;

    let carrier_port = free_udp_port();
    let site_password = appliance::init_admin(&site_dir, "siteadmin")?;
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let appliance = appliance::start(
        appliance::ApplianceConfig::on_loopback(&site_dir, SocketAddr::new(localhost, carrier_port), 2),
        shutdown.clone(),
    )
    .await?;
    let site_url = format!("http://{}", appliance.http_addr);
    let site_admin = Api::login(&site_url, "siteadmin", &site_password).await?;
    site_admin.post::<Value>("/api/extensions", &json!({"extension": EXTENSION, "password": SIP_PASSWORD})).await?;
    site_admin
        .post::<Value>("/api/agents", &json!({"username": AGENT, "password": AGENT_PASSWORD, "name": "小钱", "extension": EXTENSION}))
        .await?;
    let batch_id = wait_for_some(Duration::from_secs(30), || async {
        let tasks: Vec<Value> = site_admin.get("/api/tasks").await.ok()?;
        tasks.first().and_then(|task| task["batch_id"].as_u64())
    })
    .await
    .context("the dispatched batch reaches the appliance over the link")?;

    // HQ opens the wall before anything happens at the site.
    let browser = Browser::start().await?;
    viewport_1366_by_768(&browser).await?;
    hq_login(&browser, &hq_url, &hq_password).await?;
    browser.goto(&format!("{hq_url}/monitor")).await?;
    wait_card(&browser, site_id, "the site online", Duration::from_secs(20), |text, _| text.contains("在线")).await?;

    // The agent's phone registers, the agent goes 可回接, the task starts: the carrier rings.
    let phone = site_support::agent_phone_for(appliance.sip_addr, EXTENSION, SIP_PASSWORD, 1).await?;
    let carrier = site_support::carrier_with("carrier_ring_answer.xml", carrier_port, 1, 3000)?;
    let desk = CancellationToken::new();
    let agent = tokio::spawn(demo::agent::run_agent(
        demo::agent::AgentConfig {
            appliance_url: site_url.clone(),
            username: AGENT.into(),
            password: AGENT_PASSWORD.into(),
            wrap_up: (Duration::from_millis(1500), Duration::from_millis(2000)),
        },
        desk.clone(),
    ));
    wait_card(&browser, site_id, "the agent available", Duration::from_secs(20), |text, _| text.contains("可回接 1") && text.contains(AGENT))
        .await?;
    site_admin
        .post::<Value>(
            &format!("/api/tasks/{batch_id}/start"),
            &json!({"ratio": 1, "max_concurrency": 1, "ring_seconds": 20, "dial_mode": "predictive", "cool_down": 0}),
        )
        .await?;

    wait_for_some(Duration::from_secs(20), || async { (figure(&browser, site_id, "ringing").await? == "1").then_some(()) })
        .await
        .context("the wall shows the call ringing")?;
    wait_card(&browser, site_id, "the agent talking", Duration::from_secs(20), |text, _| text.contains("通话 1") && text.contains(AGENT))
        .await?;
    browser.screenshot(site_support::screenshots().join("hq-wall.png")).await?;
    // The carrier hangs up after 3 s of talk: the call has ended, counted as dialed and
    // connected, the agent in after-call work or back to 可回接.
    wait_for_some(Duration::from_secs(30), || async {
        let ended = figure(&browser, site_id, "talking").await? == "0"
            && figure(&browser, site_id, "dials").await? == "1"
            && figure(&browser, site_id, "connected").await? == "1";
        ended.then_some(())
    })
    .await
    .context("the wall shows the call ended and counted")?;
    let text = card(&browser, site_id).await.context("the card")?.0;
    anyhow::ensure!(text.contains("话后处理 1") || text.contains("可回接 1"), "after the call: {text}");

    // A site's page: its agent with since when, its running task.
    browser.goto(&format!("{hq_url}/monitor/sites/{site_id}")).await?;
    let row = browser.wait_for(&format!("#agents tr[data-agent=\"{AGENT}\"]"), Duration::from_secs(10)).await?;
    anyhow::ensure!(row.text().await?.contains(EXTENSION), "the agent's row names the extension");
    browser.wait_for("#tasks", Duration::from_secs(5)).await?;

    // The home page counts the call and draws the chart.
    browser.goto(&format!("{hq_url}/")).await?;
    browser.wait_for("#hourly-chart[data-drawn=true] canvas", Duration::from_secs(10)).await?;
    let dials = browser.wait_for("[data-total=dials]", Duration::from_secs(5)).await?.text().await?;
    anyhow::ensure!(dials == "1", "the home page counts today's dial: {dials}");
    let projects = browser.wait_for("#running-projects", Duration::from_secs(5)).await?.text().await?;
    anyhow::ensure!(projects.contains("监控类"), "the running project is listed: {projects}");
    browser.screenshot(site_support::screenshots().join("hq-home.png")).await?;

    desk.cancel();
    agent.await??;
    carrier.wait(Duration::from_secs(30)).await.ensure_success().context("carrier scenario")?;
    phone.wait(Duration::from_secs(30)).await.ensure_success().context("agent phone scenario")?;

    // The cable is cut: the wall greys the site, says since when, keeps its last state.
    browser.goto(&format!("{hq_url}/monitor")).await?;
    wait_card(&browser, site_id, "the site live", Duration::from_secs(10), |_, class| !class.contains("stale")).await?;
    relay.partitioned.store(true, Ordering::SeqCst);
    let text = wait_card(&browser, site_id, "the site offline", Duration::from_secs(60), |text, class| {
        class.contains("stale") && text.contains("离线 不到 1 分钟")
    })
    .await?;
    anyhow::ensure!(text.contains("链路中断") && text.contains("截至") && text.contains(AGENT), "the last known state: {text}");
    browser.goto(&format!("{hq_url}/")).await?;
    let attention = browser.wait_for("#attention", Duration::from_secs(5)).await?.text().await?;
    anyhow::ensure!(attention.contains(SITE) && attention.contains("链路中断"), "the home page lists the offline site: {attention}");
    browser.goto(&format!("{hq_url}/monitor")).await?;
    wait_card(&browser, site_id, "the site offline", Duration::from_secs(10), |_, class| class.contains("stale")).await?;
    browser.screenshot(site_support::screenshots().join("hq-wall-offline.png")).await?;
    browser.close().await?;
    Ok(())
}
