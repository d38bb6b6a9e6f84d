//! Customers calling the site back (呼入), through every real part: a real hub and a real
//! appliance enrolled to it over QUIC with mutual TLS, SIPp as the carrier on two trunks
//! (each delivering calls to its own number, its DID) and as the agent's phone, and the
//! agent's desk in headless Chromium.
//!
//! - HQ dispatches two customers; the agent calls both (outbound, saved in the desk).
//! - (a) The first customer calls the number that rang them: the call goes to the agent who
//!   last talked to them, whose phone answers, and the desk's popup is marked 呼入 with the
//!   customer's data.
//! - (b) While that call goes on, the second customer (whose last agent is the same, busy)
//!   calls the other trunk's number: the call waits in the queue (the monitor shows it
//!   queued, unanswered by anyone), and at the queue timeout the box hangs up and leaves a
//!   callback for the task.
//! - (c) The trunk asking for a number that is none of its DIDs is refused (403);
//!   (d) so is a toll-fraud INVITE through the trunk's address for an international number,
//!   and the site's DID called from an address that is not the trunk's. No call is created.
//! - (e) Both inbound attempts reach HQ over the link as 呼入, the answered one with the
//!   agent's business record, and HQ's call search (API and page) lists them as inbound.
//! - The answered call's audio quality (loss, jitter, MOS) is kept for both legs at the site.

mod site_support;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, ensure};
use demo::setup::{Api, dispatch_demo_list, enroll_site};
use serde_json::{Value, json};
use tests::{Browser, Sipp, free_udp_port, wait_for_some, wait_until};
use tokio_util::sync::CancellationToken;

use site_support::{login, set_state};

const EXTENSION: &str = "8201";
const SIP_PASSWORD: &str = "phone-secret-8201";
const AGENT: &str = "agent1";
const AGENT_PASSWORD: &str = "agent-secret-8201";
/// The two trunks, named by their numbers; each delivers calls to its own number.
const TRUNK_A: &str = "02150001111";
const TRUNK_B: &str = "02150002222";
/// The demo list's numbers (`demo::setup::write_demo_sheet`).
const CUSTOMER_1: &str = "13800130001";
const CUSTOMER_2: &str = "13800130002";
/// How long a customer's call waits for an agent (the task's queue and the site's).
const QUEUE_SECONDS: u64 = 6;
/// The title of the callback a missed inbound call leaves (`appliance::driver::inbound`).
const MISSED_CALL_TITLE: &str = "呼入未接 / missed inbound call";

/// Picks the business result and saves; waits for the popup to close.
async fn save_popup(browser: &Browser, result: &str) -> anyhow::Result<()> {
    browser
        .wait_for(&format!("#popup form.record select[name=result] option[value='{result}']"), Duration::from_secs(5))
        .await?
        .click()
        .await?;
    browser.wait_for("#popup .popup-actions button[type=submit]", Duration::from_secs(2)).await?.click().await?;
    wait_until(Duration::from_secs(10), || async { browser.wait_for("#popup[hidden]", Duration::from_millis(200)).await.is_ok() })
        .await
        .context("the popup closes once the record is saved")
}

/// The popup's masked number and its customer facts (the `dl` the desk shows beside the script).
async fn popup_facts(browser: &Browser) -> anyhow::Result<(String, String)> {
    let phone = browser.wait_for("#popup:not([hidden]) dd.phone", Duration::from_secs(40)).await?.text().await?;
    let facts = browser.wait_for("#popup dl.facts", Duration::from_secs(2)).await?.text().await?;
    Ok((phone, facts))
}

/// The calls on the site's lines, as the monitor reads them.
async fn live_calls(site: &Api) -> Vec<Value> {
    let status: Value = site.get("/api/status").await.unwrap_or(Value::Null);
    status["lines"]["calls"].as_array().cloned().unwrap_or_default()
}

/// SIPp sending one INVITE that must get 403, from `local_port` to the box.
async fn refused(local_port: u16, number: &str, sip: SocketAddr, what: &str) -> anyhow::Result<()> {
    Sipp::scenario("carrier_inbound_refused.xml")
        .local_port(local_port)
        .remote(sip)
        .service(number)
        .arg("-key")
        .arg("caller")
        .arg(CUSTOMER_1)
        .media_on_loopback()
        .calls(1)
        .timeout(Duration::from_secs(15))
        .spawn()?
        .wait(Duration::from_secs(20))
        .await
        .ensure_success()
        .with_context(|| format!("{what}: refused with 403"))
}

/// The hub, the site enrolled to it with two trunks and agent1 on extension 8201, and the
/// two customers' batch at the site.
struct World {
    hub_url: String,
    hq_password: String,
    hq: Api,
    appliance: appliance::Appliance,
    site_url: String,
    site: Api,
    port_a: u16,
    port_b: u16,
    batch_id: u64,
    _hub: hq_hub::Hub,
    _stop: tokio_util::sync::DropGuard,
    _dir: tempfile::TempDir,
}

async fn start_world() -> anyhow::Result<World> {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("info,quinn=warn,rustls=warn").try_init();
    let dir = tempfile::tempdir()?;
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone().drop_guard();
    let (hub, hq_password) = tests::start_hub(&dir.path().join("hub"), shutdown.clone()).await?;
    let hub_url = format!("http://{}", hub.http_addr);
    let hq = Api::login(&hub_url, "admin", &hq_password).await?;
    let site_dir = dir.path().join("site");
    let site_id = enroll_site(&hq, "杭州职场", &site_dir, hub.sync_addr).await?;
    dispatch_demo_list(&hq, "套餐类", &dir.path().join("名单.xlsx"), 2, "回访批次", site_id).await?;

    // The box: two trunks, each delivering calls to its own number.
    let (port_a, port_b) = (free_udp_port(), free_udp_port());
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut config = appliance::ApplianceConfig::on_loopback(&site_dir, SocketAddr::new(localhost, port_a), 2);
    config.trunks[0].name = TRUNK_A.into();
    config.trunks.push(hardware::TrunkConfig::on_loopback(TRUNK_B, port_b, 2));
    config.telephony.trunks = HashMap::from([
        (TRUNK_A.to_string(), hardware::TrunkOptions { dids: vec![TRUNK_A.into()], ..Default::default() }),
        (TRUNK_B.to_string(), hardware::TrunkOptions { dids: vec![TRUNK_B.into()], ..Default::default() }),
    ]);
    config.inbound_queue = Duration::from_secs(QUEUE_SECONDS);
    let site_password = appliance::init_admin(&site_dir, "siteadmin")?;
    let appliance = appliance::start(config, shutdown.clone()).await?;
    let site_url = format!("http://{}", appliance.http_addr);
    let site = Api::login(&site_url, "siteadmin", &site_password).await?;
    site.post::<Value>("/api/extensions", &json!({"extension": EXTENSION, "password": SIP_PASSWORD})).await?;
    site.post::<Value>("/api/agents", &json!({"username": AGENT, "password": AGENT_PASSWORD, "name": "小陈", "extension": EXTENSION}))
        .await?;
    let batch_id = wait_for_some(Duration::from_secs(30), || async {
        let tasks: Vec<Value> = site.get("/api/tasks").await.ok()?;
        tasks.first().and_then(|task| task["batch_id"].as_u64())
    })
    .await
    .context("the batch reaches the site over the link")?;
    Ok(World { hub_url, hq_password, hq, appliance, site_url, site, port_a, port_b, batch_id, _hub: hub, _stop: stop, _dir: dir })
}

/// The day's outbound calls on trunk A: the agent talks to both customers and saves each
/// popup. Returns the facts customer 1's popup showed.
async fn outbound_day(world: &World, browser: &Browser) -> anyhow::Result<String> {
    let carrier = site_support::carrier(world.port_a, 2, 3000)?;
    world
        .site
        .post::<Value>(
            &format!("/api/tasks/{}/start", world.batch_id),
            &json!({
                "ratio": 1, "max_concurrency": 1, "ring_seconds": 20,
                "dial_mode": "predictive", "caller": TRUNK_A, "cool_down": 0, "queue_timeout": QUEUE_SECONDS,
            }),
        )
        .await?;
    let mut facts_of = HashMap::new();
    for _ in 0..2 {
        let (phone_shown, facts) = popup_facts(browser).await.context("an outbound call pops")?;
        ensure!(browser.wait_for("#popup .popup-inbound", Duration::from_millis(300)).await.is_err(), "an outbound popup is not marked 呼入");
        facts_of.insert(phone_shown, facts);
        save_popup(browser, "有意向").await?;
    }
    carrier.wait(Duration::from_secs(40)).await.ensure_success().context("the carrier took both outbound calls")?;
    ensure!(facts_of.contains_key("138****0002"), "customer 2 was called: {facts_of:?}");
    wait_until(Duration::from_secs(15), || async { live_calls(&world.site).await.is_empty() })
        .await
        .context("the outbound calls are over")?;
    facts_of.remove("138****0001").with_context(|| format!("customer 1 was called: {facts_of:?}"))
}

/// (b) Customer 2, whose last agent is busy on customer 1's call, calls trunk B's number:
/// the call waits in the queue, is hung up at the queue timeout and leaves a callback.
async fn queued_while_the_agent_talks(world: &World) -> anyhow::Result<()> {
    let listen = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let inbound_b = Sipp::scenario("carrier_inbound_wait.xml")
        .local_port(world.port_b)
        .remote(world.appliance.sip_addr)
        .service(TRUNK_B)
        .arg("-key")
        .arg("caller")
        .arg(CUSTOMER_2)
        .arg("-key")
        .arg("rtp_port")
        .arg(listen.local_addr()?.port().to_string())
        .media_on_loopback()
        .calls(1)
        .timeout(Duration::from_secs(60))
        .spawn()?;
    let queued = wait_for_some(Duration::from_secs(10), || async {
        live_calls(&world.site).await.into_iter().find(|call| call["kind"] == "inbound" && call["state"] == "queued")
    })
    .await
    .context("customer 2's call waits in the queue while the agent talks")?;
    ensure!(queued["phone"] == "138****0002" && queued["agent"].is_null(), "{queued}");
    inbound_b
        .wait(Duration::from_secs(QUEUE_SECONDS + 20))
        .await
        .ensure_success()
        .context("the box hangs customer 2 up at the queue timeout")?;
    let calls = live_calls(&world.site).await;
    ensure!(
        calls.iter().any(|call| call["kind"] == "inbound" && call["state"] == "talking"),
        "customer 1 was still talking when customer 2's queue time ran out: {calls:?}"
    );
    let admin = appliance::store::Viewer { username: "siteadmin".into(), unmask: true };
    let callback = wait_for_some(Duration::from_secs(10), || async {
        let list = world.appliance.store.callbacks(&admin, None, None, None).ok()?;
        list.into_iter().find(|callback| callback.title == MISSED_CALL_TITLE)
    })
    .await
    .context("the missed call leaves a callback")?;
    ensure!(
        callback.phone == CUSTOMER_2 && callback.agent == AGENT && callback.scope == "task" && callback.state == "new",
        "the callback of customer 2 for the task, on the last agent's list: {callback:?}"
    );
    Ok(())
}

/// (c) and (d): what is not the trunk's call to one of its numbers is refused.
async fn refusals(world: &World) -> anyhow::Result<()> {
    let sip = world.appliance.sip_addr;
    refused(world.port_a, "02150009999", sip, "the trunk asking for a number that is not a DID").await?;
    refused(world.port_a, "0085212345678", sip, "a toll-fraud INVITE through the trunk's address").await?;
    refused(free_udp_port(), TRUNK_A, sip, "the DID called from an address that is not a trunk").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls = live_calls(&world.site).await;
    ensure!(calls.is_empty(), "a refused INVITE made no call: {calls:?}");
    Ok(())
}

/// (e) HQ gets both inbound attempts as 呼入, the answered one with its record; its call
/// search lists them, in the API and on the page.
async fn hq_lists_both_inbound(world: &World, browser: &Browser) -> anyhow::Result<()> {
    let hq = &world.hq;
    let inbound = wait_for_some(Duration::from_secs(60), || async {
        let page: Value = hq.get("/api/calls?direction=inbound").await.ok()?;
        let calls = page["calls"].as_array()?.clone();
        let with_quality = calls.iter().any(|call| call["record"].is_object() && call["quality"].is_object());
        (calls.len() == 2 && with_quality).then_some(calls)
    })
    .await
    .context("HQ lists both inbound calls, one with its record and its audio quality")?;
    let answered = inbound.iter().find(|call| call["phone"] == "138****0001").context("customer 1's call at HQ")?;
    ensure!(
        answered["direction"] == "inbound" && answered["kind"] == "inbound" && answered["outcome"] == "connected" && answered["agent"] == AGENT,
        "{answered}"
    );
    ensure!(answered["record"].to_string().contains("成功办理"), "{answered}");
    // The figures the site measured came up the link (protocol 4): both legs, loopback.
    for leg in ["customer", "agent"] {
        let figures = &answered["quality"][leg];
        let (loss, mos) = (figures["loss_percent"].as_f64(), figures["mos"].as_f64());
        ensure!(
            loss.is_some_and(|l| l < 2.0) && mos.is_some_and(|m| m > 3.8) && figures["jitter_ms"].is_f64(),
            "the {leg} leg's quality at HQ: {answered}"
        );
    }
    let missed = inbound.iter().find(|call| call["phone"] == "138****0002").context("customer 2's call at HQ")?;
    ensure!(missed["direction"] == "inbound" && missed["outcome"] != "connected", "{missed}");
    let outbound: Value = hq.get("/api/calls?direction=outbound").await?;
    ensure!(outbound["calls"].as_array().is_some_and(|calls| calls.len() == 2), "the two outbound calls stay outbound: {outbound}");

    // In the browser: the inbound filter, each row saying 呼入.
    let hub_url = &world.hub_url;
    browser.client().delete_all_cookies().await?;
    browser.goto(&format!("{hub_url}/login")).await?;
    browser.wait_for("input[name=username]", Duration::from_secs(10)).await?.send_keys("admin").await?;
    browser.wait_for("input[name=password]", Duration::from_secs(5)).await?.send_keys(&world.hq_password).await?;
    browser.wait_for("form[action=\"/login\"] button", Duration::from_secs(5)).await?.click().await?;
    wait_until(Duration::from_secs(10), || async {
        browser.client().current_url().await.is_ok_and(|current| !current.path().starts_with("/login"))
    })
    .await
    .context("HQ's admin is logged in")?;
    browser.goto(&format!("{hub_url}/calls?direction=inbound")).await?;
    browser.wait_for("#calls tr.call", Duration::from_secs(10)).await?;
    let rows = browser.client().find_all(fantoccini::Locator::Css("#calls tr.call")).await?;
    ensure!(rows.len() == 2, "two inbound calls: {}", rows.len());
    for row in rows {
        let text = row.text().await?;
        ensure!(text.contains("呼入") && text.contains("杭州职场"), "{text}");
    }
    // The answered call's page shows its quality per leg, labelled in Chinese.
    let detail = format!("{hub_url}/calls/{}/{}", answered["site_id"], answered["attempt_id"]);
    browser.goto(&detail).await?;
    let table = browser.wait_for("#quality", Duration::from_secs(10)).await?.text().await?;
    for word in ["丢包率", "抖动", "MOS 评分", "客户侧", "坐席侧"] {
        ensure!(table.contains(word), "the quality table names {word}: {table}");
    }
    let legs = browser.client().find_all(fantoccini::Locator::Css("#quality tr.leg")).await?;
    ensure!(legs.len() == 2, "both legs on the page: {table}");
    let mos = answered["quality"]["customer"]["mos"].as_f64().unwrap_or_default();
    ensure!(table.contains(&format!("{mos:.2}")), "the customer leg's MOS {mos:.2} on the page: {table}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_call_back_reach_their_agent_or_the_queue_and_hq_sees_it_inbound() -> anyhow::Result<()> {
    let world = start_world().await?;
    let sip = world.appliance.sip_addr;
    // The phone takes the two outbound calls and the first customer's call back.
    let phone = site_support::agent_phone_for(sip, EXTENSION, SIP_PASSWORD, 3).await?;
    let browser = Browser::start().await?;
    login(&browser, &world.site_url, AGENT, AGENT_PASSWORD).await?;
    browser.goto(&format!("{}/desk", world.site_url)).await?;
    set_state(&browser, "available").await?;
    let facts_1 = outbound_day(&world, &browser).await?;

    // (a) Customer 1 calls the number that rang them: straight to their last agent.
    let inbound_a = Sipp::scenario("carrier_inbound.xml")
        .local_port(world.port_a)
        .remote(sip)
        .service(TRUNK_A)
        .arg("-key")
        .arg("caller")
        .arg(CUSTOMER_1)
        .arg("-d")
        .arg("25000")
        .media_on_loopback()
        .calls(1)
        .timeout(Duration::from_secs(60))
        .spawn()?;
    let (phone_shown, facts) = popup_facts(&browser).await.context("customer 1's call back pops at the desk")?;
    let mark = browser.wait_for("#popup:not([hidden]) .popup-inbound", Duration::from_secs(2)).await?.text().await?;
    ensure!(mark == "呼入", "the popup is marked inbound: {mark:?}");
    ensure!(phone_shown == "138****0001" && facts == facts_1, "the customer's own data: {phone_shown} {facts:?} / {facts_1:?}");
    let script = browser.wait_for("#popup pre.script", Duration::from_secs(2)).await?.text().await?;
    ensure!(script.contains("5G畅享套餐"), "the project's script: {script}");
    browser.screenshot(site_support::screenshots().join("site-desk-inbound.png")).await?;
    let talking = wait_for_some(Duration::from_secs(10), || async {
        live_calls(&world.site).await.into_iter().find(|call| call["kind"] == "inbound" && call["state"] == "talking")
    })
    .await
    .context("the monitor shows customer 1's call talking")?;
    ensure!(talking["agent"] == AGENT, "{talking}");

    queued_while_the_agent_talks(&world).await?;

    // Customer 1 hangs up; the agent saves the call's record.
    inbound_a.wait(Duration::from_secs(40)).await.ensure_success().context("customer 1's call")?;
    // The call's audio quality on both legs is kept with it: loopback loses nothing.
    let attempt_a = talking["attempt_id"].as_u64().context("the talking call's attempt")?;
    let quality = wait_for_some(Duration::from_secs(10), || async { world.appliance.store.call_quality(attempt_a).ok().flatten() })
        .await
        .context("the call's quality is stored")?;
    for (leg, figures) in [("customer", quality.customer), ("agent", quality.agent)] {
        let figures = figures.with_context(|| format!("the {leg} leg's figures: {quality:?}"))?;
        ensure!(figures.loss_percent < 2.0 && figures.mos > 3.8, "the {leg} leg on loopback: {figures:?}");
    }
    save_popup(&browser, "成功办理").await?;
    phone.wait(Duration::from_secs(30)).await.ensure_success().context("the agent's phone took three calls")?;

    refusals(&world).await?;
    hq_lists_both_inbound(&world, &browser).await?;
    browser.close().await?;
    Ok(())
}
