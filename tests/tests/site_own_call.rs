//! An agent's own (one-click) call through the real appliance.
//!
//! Toward a carrier that plays early media (183 with SDP and audio, the answer three seconds
//! later):
//! - the agent's phone (SIPp, µ-law only) is rung at the dial and hears the network's audio
//!   while the customer still rings;
//! - the popup (the agent pops on answer, the default) comes only with the customer's answer;
//! - the attempt's answered time is the customer's answer, not the agent's pick-up, so the
//!   talk time leaves out the ringing.
//!
//! While the agent's phone is not registered, a dial is refused with that reason and no
//! number is taken. When the phone refuses the call (busy), the customer's ringing is
//! cancelled, the desk in Chromium says why, and the agent can dial again at once.

mod site_support;

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use tests::{Browser, Sipp, free_udp_port, wait_for_some};

use site_support::*;

/// Reads the agent's event stream (`/api/agent/events`, server-sent events) and passes on
/// each event's name with when it arrived. Ends with the stream or after `limit`.
fn desk_events(response: reqwest::Response, limit: Duration) -> mpsc::UnboundedReceiver<(String, Instant)> {
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut response = response;
        let mut pending = String::new();
        let deadline = tokio::time::Instant::now() + limit;
        while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline, response.chunk()).await {
            pending.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = pending.find('\n') {
                let line: String = pending.drain(..=end).collect();
                if let Some(name) = line.trim_end().strip_prefix("event:") {
                    let _ = sender.send((name.trim().to_string(), Instant::now()));
                }
            }
        }
    });
    receiver
}

/// Starts batch `batch_id` in one-click mode, one call at a time, 30 s of ringing.
async fn start_one_click_task(site: &Site, batch_id: u64) -> anyhow::Result<()> {
    post(
        &site.admin,
        format!("{}/api/tasks/{batch_id}/start", site.url),
        json!({"ratio": 1, "max_concurrency": 1, "ring_seconds": 30, "dial_mode": "one_click", "caller": "02150001111"}),
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_click_agent_hears_early_media_and_the_popup_waits_for_the_answer() -> anyhow::Result<()> {
    let carrier_port = free_udp_port();
    let site = start_site_with_agent(carrier_port, 34, 1).await?;
    let phone_rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let phone = agent_phone_with(
        site.appliance.sip_addr,
        EXTENSION,
        SIP_PASSWORD,
        Sipp::scenario("agent_answer_pcmu.xml")
            .calls(1)
            .arg("-key")
            .arg("rtp_port")
            .arg(phone_rtp.local_addr()?.port().to_string())
            .timeout(Duration::from_secs(60)),
    )
    .await?;
    let carrier = Sipp::scenario("carrier_early_media.xml")
        .local_port(carrier_port)
        .calls(1)
        .media_on_loopback()
        .timeout(Duration::from_secs(60))
        .spawn()?;
    start_one_click_task(&site, 34).await?;

    let agent = reqwest::Client::builder().cookie_store(true).build()?;
    post(&agent, format!("{}/api/login", site.url), json!({"username": "agent1", "password": AGENT_PASSWORD})).await?;
    post(&agent, format!("{}/api/agent/state", site.url), json!({"state": "one_click_only"})).await?;
    let stream = agent.get(format!("{}/api/agent/events", site.url)).send().await?.error_for_status()?;
    let mut events = desk_events(stream, Duration::from_secs(60));
    let started = post(&agent, format!("{}/api/agent/projects/7/dial", site.url), json!({})).await?;
    let attempt_id = started["attempt_id"].as_u64().with_context(|| format!("the dial starts an attempt: {started}"))?;

    // The phone hears the carrier's announcement (A-law, re-encoded for this µ-law phone)
    // while the customer rings.
    let mut buffer = vec![0u8; 2048];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut packets = 0;
    let heard_at = loop {
        let (n_bytes, _) = tokio::time::timeout_at(deadline, phone_rtp.recv_from(&mut buffer))
            .await
            .with_context(|| format!("the phone heard no audible early media in 10 s ({packets} packets)"))??;
        packets += 1;
        let Ok(reader) = rtp_rs::RtpReader::new(&buffer[..n_bytes]) else { continue };
        let loud = reader.payload_type() == 0
            && reader.payload().iter().any(|byte| hardware::g711::ulaw_to_linear(*byte).unsigned_abs() > 1000);
        if loud {
            break Instant::now();
        }
    };
    let mut before = Vec::new();
    while let Ok((name, _)) = events.try_recv() {
        before.push(name);
    }
    assert!(before.iter().any(|name| name == "ringing"), "the desk shows the call ringing: {before:?}");
    assert!(!before.iter().any(|name| name == "popup"), "no popup before the answer: {before:?}");

    // The answer brings the popup.
    let popup_at = wait_for_some(Duration::from_secs(10), || {
        let found = std::iter::from_fn(|| events.try_recv().ok()).find(|(name, _)| name == "popup");
        async move { found.map(|(_, at)| at) }
    })
    .await
    .context("the popup comes with the customer's answer")?;
    assert!(
        popup_at.duration_since(heard_at) > Duration::from_millis(500),
        "the popup came {:?} after the early media, not with it",
        popup_at.duration_since(heard_at)
    );

    // The customer hangs up after four seconds of talk.
    carrier.wait(Duration::from_secs(30)).await.ensure_success().context("the carrier's call completes")?;
    phone.wait(Duration::from_secs(30)).await.ensure_success().context("the phone's call completes")?;
    let record = wait_for_some(Duration::from_secs(10), || async {
        let records: Value = agent.get(format!("{}/api/agent/records", site.url)).send().await.ok()?.json().await.ok()?;
        records
            .as_array()?
            .iter()
            .find(|record| record["attempt_id"].as_u64() == Some(attempt_id) && !record["ended_at"].is_null())
            .cloned()
    })
    .await
    .context("the call is in the agent's records")?;
    assert_eq!(record["outcome"], "connected", "{record}");
    assert_eq!(record["kind"], "one_click", "{record}");
    let started_at = record["started_at"].as_i64().context("started_at")?;
    let answered_at = record["answered_at"].as_i64().context("answered_at")?;
    assert!(answered_at - started_at >= 2, "answered at the customer's answer, about 3 s after the dial: {record}");
    let talk = record["talk_seconds"].as_u64().context("talk_seconds")?;
    assert!((3..=6).contains(&talk), "about 4 s of talk, without the ringing: {record}");
    assert_eq!(record["has_recording"], true, "{record}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_that_refuses_the_agents_own_call_is_explained_and_frees_the_agent() -> anyhow::Result<()> {
    let carrier_port = free_udp_port();
    let site = start_site_with_agent(carrier_port, 35, 2).await?;
    start_one_click_task(&site, 35).await?;
    // Before the phone registers, a dial is refused with the reason, and no customer rings.
    let agent = reqwest::Client::builder().cookie_store(true).build()?;
    post(&agent, format!("{}/api/login", site.url), json!({"username": "agent1", "password": AGENT_PASSWORD})).await?;
    post(&agent, format!("{}/api/agent/state", site.url), json!({"state": "one_click_only"})).await?;
    let refused = agent.post(format!("{}/api/agent/projects/7/dial", site.url)).json(&json!({})).send().await?;
    let status = refused.status();
    let body = refused.text().await?;
    assert!(status.is_client_error() && body.contains("not registered"), "{status} {body}");
    let records: Value = agent.get(format!("{}/api/agent/records", site.url)).send().await?.json().await?;
    assert_eq!(records, json!([]), "no number was taken");

    let phone = agent_phone_with(
        site.appliance.sip_addr,
        EXTENSION,
        SIP_PASSWORD,
        Sipp::scenario("agent_busy.xml").calls(1).timeout(Duration::from_secs(60)),
    )
    .await?;
    // The customer rings until the box cancels.
    let carrier = Sipp::scenario("carrier_noanswer.xml")
        .local_port(carrier_port)
        .calls(1)
        .timeout(Duration::from_secs(60))
        .spawn()?;

    let browser = Browser::start().await?;
    login(&browser, &site.url, "agent1", AGENT_PASSWORD).await?;
    browser.goto(&format!("{}/desk", site.url)).await?;
    set_state(&browser, "one_click_only").await?;
    browser.wait_for("button.one-click", Duration::from_secs(5)).await?.click().await?;
    let reason = browser.wait_for("#call-result:not([hidden])", Duration::from_secs(15)).await?.text().await?;
    assert!(reason.contains("话机没有接起"), "the desk says the phone did not take the call: {reason}");
    browser.screenshot(screenshots().join("site-desk-phone-missed.png")).await?;
    carrier.wait(Duration::from_secs(20)).await.ensure_success().context("the customer's ringing is cancelled")?;
    phone.wait(Duration::from_secs(20)).await.ensure_success().context("the phone refused with 486")?;

    // The call is over and recorded as not connected; the agent is free to dial again.
    let records: Value = agent.get(format!("{}/api/agent/records", site.url)).send().await?.json().await?;
    let first = records.as_array().and_then(|records| records.first()).with_context(|| format!("one record: {records}"))?;
    assert!(first["answered_at"].is_null() && first["outcome"] != "connected", "{first}");
    browser.wait_for("button.one-click", Duration::from_secs(5)).await?.click().await?;
    let calling = browser.wait_for("#calling:not([hidden])", Duration::from_secs(10)).await?.text().await?;
    assert!(calling.contains("****"), "the second dial goes out: {calling}");
    assert!(browser.wait_for("#dial-error:not([hidden])", Duration::from_millis(500)).await.is_err(), "no dial error");
    browser.close().await?;
    Ok(())
}
