//! Adaptive pacing end to end: the real dialer core, inside the real appliance, paces real SIP
//! calls to a SIPp carrier that answers 30 % of them after a random ring, with three agents
//! on SIPp phones whose desks (the demo's simulated agents, over the same JSON API and event
//! stream as the browser) save a business result for every popup.
//!
//! What it proves on the wire, not in simulation: with a low answer rate the adaptive mode
//! keeps more calls ringing than there are free agents (progressive never does), never more
//! than the task's max concurrency; every INVITE the carrier saw is one attempt in the
//! outbox; every answered call was either put through to an agent or counted abandoned, and
//! the abandon figures the site reports are the ones the outbox holds.

mod site_support;

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use sync_link::SiteStore;
use sync_protocol::{CallAttempt, Outcome};
use tokio_util::sync::CancellationToken;

use site_support::*;
use tests::{Sipp, free_udp_port, wait_until};

const BATCH: u64 = 88;
const MAX_CONCURRENCY: u64 = 10;
const AGENTS: [(&str, &str); 3] = [("1001", "pace-a"), ("1002", "pace-b"), ("1003", "pace-c")];
/// How long the task runs before it is stopped.
const RUN: Duration = Duration::from_secs(45);

/// One second of the live monitor, as the admin page sees it.
#[derive(Debug, Clone, Copy)]
struct Sample {
    ringing: u64,
    /// Ringing, queued, offered to an agent's phone, or talking.
    in_progress: u64,
    free_agents: u64,
}

fn sample(snapshot: &Value) -> Sample {
    let count = |key: &str| snapshot[key].as_u64().unwrap_or(0);
    let free_agents = snapshot["agent_list"]
        .as_array()
        .map(|agents| {
            agents
                .iter()
                .filter(|agent| agent["state"] == "available" && agent["on_call"] == false)
                .count() as u64
        })
        .unwrap_or(0);
    Sample {
        ringing: count("ringing"),
        in_progress: count("ringing") + count("queued") + count("offered") + count("talking"),
        free_agents,
    }
}

/// The distinct Call-IDs of the INVITEs SIPp received, from its message trace.
fn invites_received(trace: &str) -> HashSet<String> {
    let mut calls = HashSet::new();
    for message in trace.split("message received") {
        let mut lines = message.lines().map(str::trim).skip_while(|line| line.is_empty() || line.starts_with('['));
        if !lines.next().is_some_and(|first| first.starts_with("INVITE ")) {
            continue;
        }
        if let Some(call_id) = lines.find_map(|line| line.strip_prefix("Call-ID:")) {
            calls.insert(call_id.trim().to_string());
        }
    }
    calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_pacing_overdials_for_free_agents_and_accounts_for_every_answered_call() -> anyhow::Result<()> {
    let carrier_port = free_udp_port();
    let site = start_site_with_channels(carrier_port, BATCH, 400, MAX_CONCURRENCY as u32).await?;

    let mut phones = Vec::new();
    for (extension, username) in AGENTS {
        let password = format!("sip-{extension}");
        post(&site.admin, format!("{}/api/extensions", site.url), json!({"extension": extension, "password": password}))
            .await?;
        post(
            &site.admin,
            format!("{}/api/agents", site.url),
            json!({"username": username, "password": AGENT_PASSWORD, "name": username, "extension": extension}),
        )
        .await?;
        phones.push(agent_phone_for(site.appliance.sip_addr, extension, &password, 200).await?);
    }
    let desks = CancellationToken::new();
    let mut desk_tasks = tokio::task::JoinSet::new();
    for (_, username) in AGENTS {
        let config = demo::agent::AgentConfig {
            appliance_url: site.url.clone(),
            username: username.into(),
            password: AGENT_PASSWORD.into(),
            wrap_up: (Duration::from_millis(200), Duration::from_millis(800)),
        };
        desk_tasks.spawn(demo::agent::run_agent(config, desks.clone()));
    }
    let monitor_url = format!("{}/api/monitor/events", site.url);
    wait_until(Duration::from_secs(15), || async {
        let Ok(mut events) = site.admin.get(&monitor_url).send().await else { return false };
        let Ok(Some(chunk)) = events.chunk().await else { return false };
        let text = String::from_utf8_lossy(&chunk);
        text.lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
            .any(|snapshot| sample(&snapshot).free_agents == AGENTS.len() as u64)
    })
    .await
    .context("the three simulated agents are 可回接 with their phones registered")?;

    let carrier = Sipp::scenario("carrier_mixed.xml")
        .local_port(carrier_port)
        .calls(100_000)
        .media_on_loopback()
        .trace_messages()
        .timeout(RUN + Duration::from_secs(90))
        .spawn()?;

    let started = post(
        &site.admin,
        format!("{}/api/tasks/{BATCH}/start", site.url),
        json!({"ratio": 1, "max_concurrency": MAX_CONCURRENCY, "ring_seconds": 20,
               "dial_mode": "predictive", "pacing": "adaptive", "abandon_cap_percent": 3.0}),
    )
    .await?;
    ensure!(started["status"] == "running", "{started}");

    // The monitor's own stream, once a second, for the whole run; its own session, since the
    // admin client's requests time out sooner than the run lasts.
    let watcher = reqwest::Client::builder().cookie_store(true).build()?;
    post(&watcher, format!("{}/api/login", site.url), json!({"username": "siteadmin", "password": site.admin_password}))
        .await?;
    let mut samples = Vec::new();
    let mut events = watcher.get(&monitor_url).send().await?;
    let mut parser = demo::agent::SseParser::default();
    let run_until = tokio::time::Instant::now() + RUN;
    while let Ok(chunk) = tokio::time::timeout_at(run_until, events.chunk()).await {
        let chunk = chunk?.context("the monitor stream closed")?;
        for (event, data) in parser.push(&chunk) {
            if event == "monitor" {
                samples.push(sample(&serde_json::from_str(&data)?));
            }
        }
    }
    drop(events);
    post(&site.admin, format!("{}/api/tasks/{BATCH}/stop", site.url), json!({})).await?;

    // Let every call in flight end (rings under 2.5 s, talks 4 s, agents' wrap-up) before
    // anything is counted.
    let status_url = format!("{}/api/status", site.url);
    wait_until(Duration::from_secs(30), || async {
        let Ok(response) = site.admin.get(&status_url).send().await else { return false };
        let Ok(status) = response.json::<Value>().await else { return false };
        let lines = &status["lines"];
        ["ringing", "queued", "offered", "talking"].iter().all(|key| lines[key].as_u64() == Some(0))
    })
    .await
    .context("every call has ended after the task was stopped")?;
    desks.cancel();
    while let Some(result) = desk_tasks.join_next().await {
        result??;
    }

    let peak = samples.iter().map(|s| s.in_progress).max().unwrap_or(0);
    // One call per agent is all progressive dialing ever has in progress; more is pacing
    // dialing ahead of the agents it expects to be free.
    let agents = AGENTS.len() as u64;
    let ahead = samples.iter().filter(|s| s.in_progress > agents).count();
    let rings_over_free = samples.iter().filter(|s| s.free_agents > 0 && s.ringing > s.free_agents).count();
    eprintln!(
        "{} monitor samples; peak calls in progress {peak}; {ahead} seconds with more calls than agents, \
         {rings_over_free} with more rings than free agents",
        samples.len()
    );
    ensure!(samples.len() >= 30, "too few monitor samples: {samples:?}");
    ensure!(peak <= MAX_CONCURRENCY, "more calls than the max concurrency {MAX_CONCURRENCY}: {samples:?}");
    ensure!(
        ahead >= 3 && rings_over_free >= 1,
        "adaptive pacing at a 30 % answer rate should dial ahead of its {agents} agents: {samples:?}"
    );

    let attempts: Vec<CallAttempt> = site
        .appliance
        .store
        .outbox_after(0, 100_000)?
        .into_iter()
        .filter_map(|entry| entry.event.call_attempt().cloned())
        .filter(|attempt| attempt.batch_id == BATCH)
        .collect();
    let trace = std::fs::read_to_string(carrier.work_dir().join("messages.log")).unwrap_or_default();
    let invites = invites_received(&trace);
    ensure!(attempts.len() >= 20, "only {} attempts in {RUN:?}", attempts.len());
    ensure!(
        invites.len() == attempts.len(),
        "the carrier saw {} calls, the outbox holds {} attempts",
        invites.len(),
        attempts.len()
    );
    let answered: Vec<&CallAttempt> = attempts.iter().filter(|attempt| attempt.answered_at.is_some()).collect();
    let connected = answered.iter().filter(|attempt| attempt.outcome == Outcome::Connected).count();
    let abandoned = answered.iter().filter(|attempt| attempt.outcome == Outcome::Abandoned).count();
    let missed = answered.iter().filter(|attempt| attempt.outcome == Outcome::AgentMissed).count();
    eprintln!(
        "{} attempts, {} answered: {connected} connected, {abandoned} abandoned, {missed} agent missed",
        attempts.len(),
        answered.len()
    );
    ensure!(connected > 0, "no answered call reached an agent: {attempts:?}");
    ensure!(
        connected + abandoned + missed == answered.len(),
        "an answered call is neither connected, abandoned nor missed: {answered:?}"
    );
    for attempt in &attempts {
        if attempt.outcome == Outcome::Connected {
            ensure!(attempt.agent.is_some() && attempt.recording_sha256.is_some(), "{attempt:?}");
        }
    }

    // The site's own figures are the outbox's.
    let tasks: Value = site.admin.get(format!("{}/api/tasks", site.url)).send().await?.json().await?;
    let task = tasks
        .as_array()
        .and_then(|tasks| tasks.iter().find(|task| task["batch_id"] == BATCH))
        .context("the task is listed")?;
    ensure!(task["dialed"].as_u64() == Some(attempts.len() as u64), "{task}");
    let expected_rate = abandoned as f64 / answered.len() as f64;
    let reported = task["abandon_rate_today"].as_f64().context("today's abandon rate is shown")?;
    ensure!((reported - expected_rate).abs() < 1e-9, "site shows {reported}, the outbox says {expected_rate}: {task}");

    drop(carrier);
    drop(phones);
    Ok(())
}
