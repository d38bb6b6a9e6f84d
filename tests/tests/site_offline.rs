//! A site's working day with the HQ link cut, through the real hub: the appliance enrolled
//! over QUIC with mutual TLS through a UDP relay the test controls, a batch dispatched from
//! HQ's console API, then the cable cut (every datagram dropped).
//!
//! While HQ is unreachable, the agent keeps taking predictive calls (real SIP to a SIPp
//! carrier, a SIPp phone as the agent's extension), saves a business record for every call
//! and schedules callbacks; HQ sees none of it. When the cable is back, HQ receives every
//! attempt, record and callback exactly once (checked in HQ's own SQLite file), its console
//! shows the figures, and the site's outbox drains.

mod site_support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, ensure};
use demo::setup::{Api, dispatch_demo_list, enroll_site};
use serde_json::{Value, json};
use sync_link::SiteStore;
use sync_protocol::UpEvent;
use tests::{Sipp, UdpRelay, free_udp_port, wait_for_some, wait_until};
use tokio_util::sync::CancellationToken;

const EXTENSION: &str = "8101";
const SIP_PASSWORD: &str = "phone-secret-8101";
const AGENT: &str = "offline-agent";
const AGENT_PASSWORD: &str = "agent-secret-8101";
const CALLS: u64 = 4;

async fn link_state(site: &Api) -> Option<String> {
    let status: Value = site.get("/api/status").await.ok()?;
    status["link"]["state"].as_str().map(str::to_string)
}

/// `SELECT COUNT(*), COUNT(DISTINCT key)` over a table of HQ's own store file.
fn hub_counts(db: &std::path::Path, table: &str, key: &str) -> anyhow::Result<(i64, i64)> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    Ok(conn.query_row(&format!("SELECT COUNT(*), COUNT(DISTINCT {key}) FROM {table}"), [], |row| {
        Ok((row.get(0)?, row.get(1)?))
    })?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_work_through_a_cut_link_and_hq_gets_everything_once() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info,quinn=warn,rustls=warn")
        .try_init();
    let dir = tempfile::tempdir()?;
    let hub_dir = dir.path().join("hub");
    let site_dir = dir.path().join("site");
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();

    let (hub, hq_password) = tests::start_hub(&hub_dir, shutdown.clone()).await?;
    let hq = Api::login(&format!("http://{}", hub.http_addr), "admin", &hq_password).await?;

    // The box knows HQ only by the relay's address: cutting the relay is cutting the cable.
    let relay = UdpRelay::start(hub.sync_addr).await?;
    let site_id = enroll_site(&hq, "断网职场", &site_dir, relay.addr).await?;
    dispatch_demo_list(&hq, "流量类", &dir.path().join("断网名单.xlsx"), CALLS as u32, "断网批次", site_id).await?;

    let carrier_port = free_udp_port();
    let site_password = appliance::init_admin(&site_dir, "siteadmin")?;
    let appliance = appliance::start(
        appliance::ApplianceConfig::on_loopback(&site_dir, SocketAddr::new(localhost, carrier_port), 2),
        shutdown.clone(),
    )
    .await?;
    let site_url = format!("http://{}", appliance.http_addr);
    let site_admin = Api::login(&site_url, "siteadmin", &site_password).await?;
    site_admin.post::<Value>("/api/extensions", &json!({"extension": EXTENSION, "password": SIP_PASSWORD})).await?;
    site_admin
        .post::<Value>(
            "/api/agents",
            &json!({"username": AGENT, "password": AGENT_PASSWORD, "name": "小赵", "extension": EXTENSION}),
        )
        .await?;

    let batch_id = wait_for_some(Duration::from_secs(30), || async {
        let tasks: Vec<Value> = site_admin.get("/api/tasks").await.ok()?;
        tasks.first().and_then(|task| task["batch_id"].as_u64())
    })
    .await
    .context("the dispatched batch reaches the appliance over the link")?;

    // The cable is cut; both ends notice through the link's idle timeout.
    relay.partitioned.store(true, Ordering::SeqCst);
    wait_until(Duration::from_secs(60), || async { link_state(&site_admin).await.as_deref() == Some("offline") })
        .await
        .context("the site shows the HQ link offline once the cable is cut")?;

    // The day goes on: the agent's phone registers, the agent goes 可回接, the admin starts
    // the task, the carrier answers every call, the agent saves every record.
    let phone = site_support::agent_phone_for(appliance.sip_addr, EXTENSION, SIP_PASSWORD, CALLS as u32)
        .await
        .context("the SIPp phone registers while HQ is unreachable")?;
    let carrier = Sipp::scenario("carrier_answer.xml")
        .local_port(carrier_port)
        .calls(CALLS as u32)
        .media_on_loopback()
        .arg("-d")
        .arg("4000")
        .timeout(Duration::from_secs(120))
        .spawn()?;
    let desk = CancellationToken::new();
    let agent = tokio::spawn(demo::agent::run_agent(
        demo::agent::AgentConfig {
            appliance_url: site_url.clone(),
            username: AGENT.into(),
            password: AGENT_PASSWORD.into(),
            wrap_up: (Duration::from_millis(300), Duration::from_millis(600)),
        },
        desk.clone(),
    ));
    site_admin
        .post::<Value>(&format!("/api/tasks/{batch_id}/start"), &json!({"ratio": 1, "max_concurrency": 1, "ring_seconds": 20, "dial_mode": "predictive", "cool_down": 0}))
        .await?;

    let attempt_ids = wait_for_some(Duration::from_secs(90), || async {
        let outbox = appliance.store.outbox_after(0, 10_000).ok()?;
        let attempts: Vec<u64> = outbox
            .iter()
            .filter_map(|entry| entry.event.call_attempt().filter(|a| a.answered_at.is_some()).map(|a| a.attempt_id))
            .collect();
        let records = outbox.iter().filter(|entry| matches!(entry.event, UpEvent::BusinessRecord(_))).count();
        (attempts.len() as u64 == CALLS && records as u64 == CALLS).then_some(attempts)
    })
    .await
    .context("offline, every call is answered, put through and its record saved")?;
    desk.cancel();
    agent.await??;

    // Two callbacks scheduled by the agent, still offline.
    let agent_api = Api::login(&site_url, AGENT, AGENT_PASSWORD).await?;
    for attempt_id in &attempt_ids[..2] {
        agent_api
            .post::<Value>(
                &format!("/api/attempts/{attempt_id}/callbacks"),
                &json!({"title": "回访", "note": "客户要求晚上再打", "due_at": 1_900_000_000}),
            )
            .await?;
    }
    // Offline, or trying again (connecting): never online while the cable is cut.
    let state = link_state(&site_admin).await;
    ensure!(matches!(state.as_deref(), Some("offline" | "connecting")), "the link stayed cut throughout: {state:?}");
    let batches: Vec<Value> = hq.get("/api/batches").await?;
    ensure!(batches[0]["dialed"] == json!(0), "nothing crossed the cut cable: {batches:?}");
    let status: Value = site_admin.get("/api/status").await?;
    let backlog = status["outbox"].as_u64().context("the status shows the unsynced backlog")?;
    ensure!(backlog >= 2 * CALLS + 2, "attempts, records and callbacks wait in the outbox: {status}");

    // The cable is back: HQ gets it all, once.
    relay.partitioned.store(false, Ordering::SeqCst);
    wait_for_some(Duration::from_secs(90), || async {
        let batches: Vec<Value> = hq.get("/api/batches").await.ok()?;
        let batch = batches.first()?;
        (batch["dialed"] == json!(CALLS) && batch["connected"] == json!(CALLS)).then_some(())
    })
    .await
    .context("HQ shows every call dialed while offline")?;
    wait_until(Duration::from_secs(60), || async {
        site_admin.get::<Value>("/api/status").await.is_ok_and(|status| status["outbox"] == json!(0))
    })
    .await
    .context("the site's outbox drains once HQ acknowledges")?;
    ensure!(link_state(&site_admin).await.as_deref() == Some("online"), "the link is back online");

    let db = hub_dir.join("hub.sqlite3");
    ensure!(hub_counts(&db, "call_attempts", "attempt_id")? == (CALLS as i64, CALLS as i64), "attempts at HQ");
    ensure!(hub_counts(&db, "business_records", "attempt_id")? == (CALLS as i64, CALLS as i64), "records at HQ");
    ensure!(hub_counts(&db, "site_callbacks", "callback_id")? == (2, 2), "callbacks at HQ");
    let hq_batch = batches[0]["id"].as_u64().context("batch id")?;
    let records: Vec<Value> = hq.get(&format!("/api/batches/{hq_batch}/records")).await?;
    ensure!(records.len() as u64 == CALLS, "the console lists every record: {records:?}");
    ensure!(records.iter().all(|record| record["agent"] == AGENT), "{records:?}");

    carrier.wait(Duration::from_secs(30)).await.ensure_success().context("carrier scenario")?;
    phone.wait(Duration::from_secs(30)).await.ensure_success().context("agent phone scenario")?;
    Ok(())
}
