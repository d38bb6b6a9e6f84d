//! The abandon cap with two tasks sharing agents, end to end (issue 16): the real appliance
//! paces real SIP calls for two projects' tasks that share six agents (SIPp phones, the
//! demo's simulated desks) toward a SIPp carrier that answers 30 % of the calls after a
//! short ring; an answered customer stays 1 s and hangs up, so a customer left in the queue
//! hangs up unserved (an abandon) and a short run has enough answered calls to judge a rate.
//! The agents' after-call work (1.5-2.5 s) is longer than a customer waits, so an agent
//! freed by a call that ends does not rescue every customer dialed too many. Both tasks start
//! progressive for 15 s (never more calls than free agents), then pace adaptively under a
//! 3 % abandon cap, keeping what their pacing learned.
//!
//! Why the progressive start: an adaptive task that starts cold paces its first wave on its
//! priors (a 25 % answer rate, rings of 5-25 s), and on these brisk calls that wave's surplus
//! was abandoned in both runs that started cold (2 of the first ~15 answered calls each
//! time), which on 80 answered calls is most of a 3 % cap. Over a day (`dialer` sim) the
//! first wave is noise; in a 45-second run it is the result.
//!
//! What it proves, in two phases on the same site:
//! 1. **Under the cap.** At every sample of the site's own cap check (`Store::site_live_now`,
//!    what HQ's wall and the site's alarm use: today's abandoned over answered calls, against
//!    the strictest running task's cap) the cap is the tasks' [`CAP_PERCENT`]; after the run
//!    the site's abandons (that figure, and `/metrics`) over at least [`MIN_ANSWERED`]
//!    answered calls are within [`allowance`] of the cap (a soak: at or under the cap, and
//!    the alarm off at its end).
//!    Cross-checked from outside: the carrier answered exactly
//!    the calls the site counts as answered, and the answered customers no agent's phone ever
//!    rang for (a lower bound of the abandons, seen by the carrier and the phones) are within
//!    the site's count.
//! 2. **The same set-up breaks the cap without the cap logic.** The same tasks, agents and
//!    carrier, paced at a fixed 1:[`CONTROL_RATIO`] (the manual's mode, which ignores the cap),
//!    abandon more than 3 % of their answered calls, by the site's count and by the outside
//!    lower bound, and the site's cap alarm goes on (after a soak's first phase the day's
//!    many calls keep the day under the cap, and the alarm off). So the first phase's
//!    assertion is one that fails when pacing ignores the cap: a check of the set-up, run
//!    every time.
//!
//! The default run is about 90 s. A longer first phase (a soak) is the same test with
//! `OUTPOST_SOAK_SECS=600`; its figures are in `docs/benchmarks.md` (dialer pacing).

mod site_support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use sync_link::SiteStore;
use sync_protocol::{CallAttempt, Outcome, SiteAlarm};

use site_support::*;
use tests::{Sipp, SippResult, free_udp_port, wait_until};

const FIRST: u64 = 88;
const SECOND: u64 = 89;
const AGENTS: [(&str, &str); 6] =
    [("1001", "cap-a"), ("1002", "cap-b"), ("1003", "cap-c"), ("1004", "cap-d"), ("1005", "cap-e"), ("1006", "cap-f")];
/// The tasks' abandon cap (the manual's default, the regulators' figure).
const CAP_PERCENT: f64 = 3.0;
/// Calls at once per task under the cap, and in the control.
const MAX_CONCURRENCY: u64 = 10;
const CONTROL_CONCURRENCY: u64 = 15;
/// The capped phase, unless `OUTPOST_SOAK_SECS` says otherwise.
const RUN: Duration = Duration::from_secs(45);
/// The capped phase's progressive start.
const WARM_UP: Duration = Duration::from_secs(15);
/// The control phase.
const CONTROL: Duration = Duration::from_secs(12);
/// The control's fixed ratio, the manual's highest: at a 30 % answer rate about three
/// answered calls for every agent who is free.
const CONTROL_RATIO: u64 = 10;
/// Too few answered calls judge no rate.
const MIN_ANSWERED: usize = 60;
/// The phones register for 120 s; a longer run registers them again this often.
const REREGISTER: Duration = Duration::from_secs(60);

fn capped_run() -> Duration {
    std::env::var("OUTPOST_SOAK_SECS")
        .ok()
        .and_then(|secs| secs.parse::<u64>().ok())
        .map_or(RUN, Duration::from_secs)
}

/// One SIP message of a SIPp `-trace_msg` log: sent or received, its first line, Call-ID
/// and CSeq.
struct Traced {
    sent: bool,
    first: String,
    call_id: String,
    cseq: String,
}

fn traced(log: &str) -> Vec<Traced> {
    let mut messages = Vec::new();
    for block in log.split("-----------------------------------------------") {
        let mut lines = block.lines().map(str::trim);
        let Some(direction) = lines.find(|line| line.contains("message sent") || line.contains("message received")) else {
            continue;
        };
        let sent = direction.contains("message sent");
        let Some(first) = lines.find(|line| !line.is_empty()) else { continue };
        let (mut call_id, mut cseq) = (String::new(), String::new());
        for line in lines.take_while(|line| !line.is_empty()) {
            if let Some(value) = line.strip_prefix("Call-ID:").or_else(|| line.strip_prefix("i:")) {
                call_id = value.trim().to_string();
            } else if let Some(value) = line.strip_prefix("CSeq:") {
                cseq = value.trim().to_string();
            }
        }
        messages.push(Traced { sent, first: first.to_string(), call_id, cseq });
    }
    messages
}

/// The Call-IDs of the INVITEs a SIPp peer received.
fn invites(log: &str) -> HashSet<String> {
    traced(log).into_iter().filter(|m| !m.sent && m.first.starts_with("INVITE ")).map(|m| m.call_id).collect()
}

/// The Call-IDs of the calls a SIPp peer answered (a 200 to an INVITE it sent).
fn answers(log: &str) -> HashSet<String> {
    traced(log)
        .into_iter()
        .filter(|m| m.sent && m.first.starts_with("SIP/2.0 200") && m.cseq.ends_with("INVITE"))
        .map(|m| m.call_id)
        .collect()
}

/// Asks SIPp to stop softly (SIGUSR1: no new call, exit once its calls are over), so its
/// message log is complete, and collects it.
async fn soft_quit(sipp: Sipp) -> anyhow::Result<String> {
    let pid = sipp.id().context("SIPp has a process id")?;
    // SAFETY: a plain signal to a child process this test started and still owns.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGUSR1) };
    let result: SippResult = sipp.wait(Duration::from_secs(20)).await;
    ensure!(!result.timed_out, "SIPp did not stop when asked: {result}");
    result.messages.context("SIPp kept its message log")
}

/// The carrier, the phones and the ports they answer on, for one phase.
struct Peers {
    carrier: Sipp,
    phones: Vec<Sipp>,
}

fn spawn_peers(carrier_port: u16, phone_ports: &[u16], length: Duration) -> anyhow::Result<Peers> {
    let timeout = length + Duration::from_secs(120);
    let carrier = Sipp::scenario("carrier_brisk.xml")
        .local_port(carrier_port)
        .calls(1_000_000)
        .media_on_loopback()
        .trace_messages()
        .timeout(timeout)
        .spawn()?;
    let phones = phone_ports
        .iter()
        .map(|port| {
            Sipp::scenario("agent_answer.xml")
                .calls(1_000_000)
                .local_port(*port)
                .media_on_loopback()
                .trace_messages()
                .timeout(timeout)
                .spawn()
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Peers { carrier, phones })
}

async fn register_all(site_sip: SocketAddr, phone_ports: &[u16]) -> anyhow::Result<()> {
    for ((extension, _), port) in AGENTS.iter().zip(phone_ports) {
        register_phone(site_sip, extension, &format!("sip-{extension}"), *port).await?;
    }
    Ok(())
}

/// What one phase saw.
struct Phase {
    /// Samples of the site's cap check while both tasks ran.
    samples: usize,
    /// Samples whose cap check raised the abandon alarm.
    alarms: usize,
    /// Whether the last sample, at the end of the phase, had the alarm, and today's
    /// `(answered, abandoned)` it judged.
    alarm_at_end: bool,
    today_at_end: (u64, u64),
    /// Caps the check used while both tasks ran.
    caps: Vec<f64>,
    carrier_invites: HashSet<String>,
    carrier_answers: HashSet<String>,
    /// Calls put through to the agents' phones.
    phone_invites: usize,
}

/// Runs both tasks through `stages` (each: the start parameters, then how long; a running
/// task takes new parameters and keeps what its pacing learned), sampling the site's cap
/// check every 250 ms; then stops them, waits for the lines to empty and collects what the
/// peers saw.
async fn run_phase(site: &Site, peers: Peers, phone_ports: &[u16], stages: &[(Value, Duration)]) -> anyhow::Result<Phase> {
    let (mut samples, mut alarms, mut alarm_at_end, mut today_at_end, mut caps) = (0, 0, false, (0, 0), Vec::new());
    let mut registered = tokio::time::Instant::now();
    for (params, length) in stages {
        for batch in [FIRST, SECOND] {
            let started = post(&site.admin, format!("{}/api/tasks/{batch}/start", site.url), params.clone()).await?;
            ensure!(started["status"] == "running" && started["ratio"] == params["ratio"], "{started}");
        }
        let started = tokio::time::Instant::now();
        while started.elapsed() < *length {
            let live = site.appliance.store.site_live_now()?;
            if live.tasks.len() == 2 {
                samples += 1;
                caps.push(live.abandon_cap_percent);
                alarm_at_end = live.alarms.iter().any(|alarm| matches!(alarm, SiteAlarm::AbandonOverCap { .. }));
                today_at_end = (live.answered_today, live.abandoned_today);
                if alarm_at_end {
                    alarms += 1;
                }
            }
            if registered.elapsed() >= REREGISTER {
                register_all(site.appliance.sip_addr, phone_ports).await?;
                registered = tokio::time::Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    for batch in [FIRST, SECOND] {
        post(&site.admin, format!("{}/api/tasks/{batch}/stop", site.url), json!({})).await?;
    }
    let status_url = format!("{}/api/status", site.url);
    wait_until(Duration::from_secs(30), || async {
        let Ok(response) = site.admin.get(&status_url).send().await else { return false };
        let Ok(status) = response.json::<Value>().await else { return false };
        ["ringing", "queued", "offered", "talking"].iter().all(|key| status["lines"][key].as_u64() == Some(0))
    })
    .await
    .context("every call has ended after the tasks were stopped")?;
    let carrier_log = soft_quit(peers.carrier).await?;
    let mut phone_invites = 0;
    for phone in peers.phones {
        phone_invites += invites(&soft_quit(phone).await?).len();
    }
    Ok(Phase {
        samples,
        alarms,
        alarm_at_end,
        today_at_end,
        caps,
        carrier_invites: invites(&carrier_log),
        carrier_answers: answers(&carrier_log),
        phone_invites,
    })
}

/// Every finished attempt in the outbox, once it holds `expected` of them after `after`.
async fn attempts_after(site: &Site, after: u64, expected: usize) -> anyhow::Result<Vec<CallAttempt>> {
    let read = || -> anyhow::Result<Vec<CallAttempt>> {
        Ok(site
            .appliance
            .store
            .outbox_after(0, 1_000_000)?
            .into_iter()
            .filter_map(|entry| entry.event.call_attempt().cloned())
            .filter(|attempt| attempt.attempt_id > after)
            .collect())
    };
    let _ = wait_until(Duration::from_secs(15), || async { read().is_ok_and(|list| list.len() >= expected) }).await;
    read()
}

/// `(answered, abandoned)` among the attempts.
fn answered_abandoned(attempts: &[CallAttempt]) -> (usize, usize) {
    let answered: Vec<&CallAttempt> = attempts.iter().filter(|a| a.answered_at.is_some()).collect();
    (answered.len(), answered.iter().filter(|a| a.outcome == Outcome::Abandoned).count())
}

/// Today's abandon rate as the site's `/metrics` says it.
async fn metrics_rate_today(site: &Site) -> anyhow::Result<f64> {
    let text = reqwest::get(format!("{}/metrics", site.url)).await?.text().await?;
    let line = text
        .lines()
        .find(|line| line.contains("abandon_rate{") && line.contains("window=\"today\""))
        .with_context(|| format!("no abandon rate in /metrics: {text}"))?;
    Ok(line.split_whitespace().last().context("a value")?.parse()?)
}

/// The answered customers no agent's phone rang for, over the answered: abandons as the
/// carrier and the phones saw them (a lower bound: a late bridge is an abandon too).
fn outside_rate(phase: &Phase) -> f64 {
    let answered = phase.carrier_answers.len();
    answered.saturating_sub(phase.phone_invites) as f64 / answered.max(1) as f64
}

/// The capped phase's figures as the site computes them for its cap, as `/metrics` and the
/// outbox hold them, and as the carrier and the phones saw them: all agree, and the rate is
/// under the cap.
async fn judge_capped(site: &Site, first: &Phase, in_first: &[CallAttempt], run: Duration) -> anyhow::Result<()> {
    let (answered, abandoned) = answered_abandoned(in_first);
    let live = site.appliance.store.site_live_now()?;
    let site_rate = live.abandoned_today as f64 / live.answered_today.max(1) as f64;
    let metrics_rate = metrics_rate_today(site).await?;
    eprintln!(
        "capped {run:?}: {} samples, {} with the alarm, caps {:?}; {} attempts, {answered} answered, {abandoned} abandoned; \
         site {}/{} = {:.2} %, /metrics {:.2} %; carrier {} INVITEs, {} answered; agents' phones {} calls; outside {:.2} %",
        first.samples,
        first.alarms,
        first.caps.iter().copied().fold((f64::MAX, f64::MIN), |(lo, hi), cap| (lo.min(cap), hi.max(cap))),
        in_first.len(),
        live.abandoned_today,
        live.answered_today,
        site_rate * 100.0,
        metrics_rate * 100.0,
        first.carrier_invites.len(),
        first.carrier_answers.len(),
        first.phone_invites,
        outside_rate(first) * 100.0,
    );
    ensure!(first.samples >= 20, "both tasks ran: {} samples", first.samples);
    ensure!(first.caps.iter().all(|cap| *cap == CAP_PERCENT), "the site checked against {:?}", first.caps);
    ensure!(in_first.iter().any(|a| a.batch_id == FIRST) && in_first.iter().any(|a| a.batch_id == SECOND), "both tasks dialed");
    ensure!(first.carrier_invites.len() == in_first.len(), "carrier INVITEs {} vs attempts {}", first.carrier_invites.len(), in_first.len());
    ensure!(
        first.carrier_answers.len() == answered && live.answered_today as usize == answered,
        "answered: carrier {}, outbox {answered}, site {}",
        first.carrier_answers.len(),
        live.answered_today
    );
    ensure!(answered >= MIN_ANSWERED, "{answered} answered calls judge no rate");
    ensure!(live.abandoned_today as usize == abandoned && (metrics_rate - site_rate).abs() < 1e-9, "the site's figures agree");
    ensure!(outside_rate(first) <= site_rate, "the carrier and phones saw more abandons than the site counts");
    if run > RUN {
        // A soak's rate is held to the cap itself, and the site's alarm (today's running
        // rate) is off at its end. The site's check has no floor of answered calls: an early
        // abandon may light it for a while (counted above).
        ensure!(!first.alarm_at_end, "the site's abandon alarm is on at the end of the run");
        ensure!(
            site_rate * 100.0 <= CAP_PERCENT,
            "the site's abandon rate {:.2} % is over the {CAP_PERCENT} % cap",
            site_rate * 100.0
        );
    } else {
        ensure!(
            abandoned as f64 <= allowance(answered),
            "{abandoned} abandoned of {answered} answered is beyond what pacing under the {CAP_PERCENT} % cap shows ({:.1})",
            allowance(answered)
        );
    }
    Ok(())
}

/// The most abandons in `answered` calls that pacing keeping the cap shows in the default
/// run: the cap's expected count plus two standard deviations of a binomial count. Over the
/// run's ~100 answered calls one abandon is a point, and pacing that aims just under the cap
/// crosses it by chance now and then (3 of 103, 2.91 %, lit the alarm at a run's end); the
/// control, which ignores the cap, abandons 12-38 %, far beyond this. A soak's ~1,200 answered
/// calls are held to the cap itself.
fn allowance(answered: usize) -> f64 {
    let (n, p) = (answered as f64, CAP_PERCENT / 100.0);
    n * p + 2.0 * (n * p * (1.0 - p)).sqrt()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tasks_sharing_agents_stay_under_the_abandon_cap_and_would_not_without_it() -> anyhow::Result<()> {
    let run = capped_run();
    // About 6 dials a second across both tasks in the capped phase, up to 30 in the control.
    let rows = (WARM_UP + run).as_secs() * 6 + CONTROL.as_secs() * 30;
    let carrier_port = free_udp_port();
    let site = start_site_with_channels(carrier_port, FIRST, rows, 2 * CONTROL_CONCURRENCY as u32).await?;
    for entry in second_project(SECOND, rows) {
        site.appliance.store.apply_down_entry(&entry)?;
    }
    let phone_ports: Vec<u16> = AGENTS.iter().map(|_| free_udp_port()).collect();
    for (extension, username) in AGENTS {
        post(&site.admin, format!("{}/api/extensions", site.url), json!({"extension": extension, "password": format!("sip-{extension}")}))
            .await?;
        post(
            &site.admin,
            format!("{}/api/agents", site.url),
            json!({"username": username, "password": AGENT_PASSWORD, "name": username, "extension": extension}),
        )
        .await?;
    }
    let peers = spawn_peers(carrier_port, &phone_ports, WARM_UP + run)?;
    register_all(site.appliance.sip_addr, &phone_ports).await?;
    let usernames: Vec<&str> = AGENTS.iter().map(|(_, username)| *username).collect();
    let (desks, mut desk_tasks) = desks_on_registered_phones(&site, &usernames, (Duration::from_millis(1500), Duration::from_millis(2500))).await?;

    // Phase 1: adaptive pacing under the cap.
    let capped = json!({"ratio": 1, "max_concurrency": MAX_CONCURRENCY, "ring_seconds": 20, "dial_mode": "predictive",
                        "pacing": "adaptive", "abandon_cap_percent": CAP_PERCENT, "cool_down": 0, "queue_timeout": 5});
    // The tasks start progressive (never more calls than free agents: no abandon) for
    // [`WARM_UP`], as a site admin starts a new list, and go adaptive once their pacing has
    // learned the list's answer rate and call lengths.
    let progressive = json!({"ratio": 1, "max_concurrency": MAX_CONCURRENCY, "ring_seconds": 20, "dial_mode": "predictive",
                             "pacing": "progressive", "abandon_cap_percent": CAP_PERCENT, "cool_down": 0, "queue_timeout": 5});
    let first = run_phase(&site, peers, &phone_ports, &[(progressive, WARM_UP), (capped, run)]).await?;
    let in_first = attempts_after(&site, 0, first.carrier_invites.len()).await?;
    let boundary = in_first.iter().map(|a| a.attempt_id).max().unwrap_or(0);
    judge_capped(&site, &first, &in_first, run).await?;

    // Phase 2, the control: the same set-up at a fixed ratio, which ignores the cap.
    let peers = spawn_peers(carrier_port, &phone_ports, CONTROL)?;
    register_all(site.appliance.sip_addr, &phone_ports).await?;
    let fixed = json!({"ratio": CONTROL_RATIO, "max_concurrency": CONTROL_CONCURRENCY, "ring_seconds": 20, "dial_mode": "predictive",
                       "pacing": "fixed", "abandon_cap_percent": CAP_PERCENT, "cool_down": 0, "queue_timeout": 5});
    let control = run_phase(&site, peers, &phone_ports, &[(fixed, CONTROL)]).await?;
    let in_control = attempts_after(&site, boundary, control.carrier_invites.len()).await?;
    let (answered, abandoned) = answered_abandoned(&in_control);
    let rate = abandoned as f64 / answered.max(1) as f64;
    eprintln!(
        "control 1:{CONTROL_RATIO} {CONTROL:?}: {} samples, {} with the alarm; {} attempts, {answered} answered, {abandoned} abandoned \
         ({:.2} %); carrier {} answered; agents' phones {} calls; outside {:.2} %",
        control.samples,
        control.alarms,
        in_control.len(),
        rate * 100.0,
        control.carrier_answers.len(),
        control.phone_invites,
        outside_rate(&control) * 100.0,
    );
    ensure!(control.carrier_invites.len() == in_control.len(), "control: carrier INVITEs vs attempts");
    ensure!(control.carrier_answers.len() == answered, "control: carrier answers {} vs {answered}", control.carrier_answers.len());
    ensure!(
        rate * 100.0 > CAP_PERCENT && outside_rate(&control) * 100.0 > CAP_PERCENT,
        "without the cap logic the set-up should break the cap: {:.2} % (outside {:.2} %)",
        rate * 100.0,
        outside_rate(&control) * 100.0
    );
    // The site's alarm judges the whole day: on at the end of the control exactly when the
    // day's rate (the capped phase's calls too; a soak's many keep it under) is over the cap.
    let (day_answered, day_abandoned) = control.today_at_end;
    let day_over = day_abandoned as f64 * 100.0 / day_answered.max(1) as f64 > CAP_PERCENT;
    ensure!(
        control.alarm_at_end == day_over,
        "the site's alarm is {} with {day_abandoned} of {day_answered} abandoned today",
        if control.alarm_at_end { "on" } else { "off" }
    );
    ensure!(run > RUN || day_over, "the control's abandons put the day over the cap");

    desks.cancel();
    while let Some(result) = desk_tasks.join_next().await {
        result??;
    }
    Ok(())
}
