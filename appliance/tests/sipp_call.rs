//! The whole site path against real SIP peers: SIPp plays the carrier and the agent's phone.
//!
//! The site admin starts a task over the API; the dialer places a real INVITE to the
//! carrier; the answered call is put through to the agent's registered extension; the popup
//! reaches the agent's event stream; the attempt (with its recording's hash) and then the
//! saved business record land in the outbox. A busy carrier is classified busy.
//! Scenarios: `tests/sipp/` at the workspace root. Every wait is bounded.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use appliance::{Appliance, ApplianceConfig};
use serde_json::{Value, json};
use sync_link::SiteStore;
use sync_protocol::{CallAttempt, Outcome, UpEvent};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use common::*;

const EXTENSION: &str = "1001";
const SIP_PASSWORD: &str = "s3cret-1001";

#[path = "../../tests/src/ports.rs"]
mod ports;
use ports::free_udp_port;

fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/sipp").join(name)
}

/// One SIPp process running one scenario once; killed on drop.
struct Sipp {
    name: String,
    child: Child,
    log_dir: PathBuf,
}

impl Sipp {
    fn start(name: &str, scenario: &str, port: u16, extra: &[String], log_dir: &Path) -> anyhow::Result<Sipp> {
        let mut command = Command::new("/usr/bin/sipp");
        command
            .arg("-sf")
            .arg(scenario_path(scenario))
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-mi", "127.0.0.1"])
            .args(["-mp", &free_udp_port().to_string()])
            .args(["-m", "1", "-timeout", "30s", "-timeout_error", "-nostdin", "-trace_err", "-trace_msg"])
            .arg("-error_file")
            .arg(log_dir.join(format!("{name}.errors")))
            .arg("-message_file")
            .arg(log_dir.join(format!("{name}.messages")))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(log_dir.join(format!("{name}.out")))?)
            .stderr(std::fs::File::create(log_dir.join(format!("{name}.stderr")))?)
            .kill_on_drop(true);
        let child = command.spawn().context("start /usr/bin/sipp (Debian package sip-tester)")?;
        Ok(Sipp { name: name.to_string(), child, log_dir: log_dir.to_path_buf() })
    }

    fn logs(&self) -> String {
        let mut text = String::new();
        for suffix in ["errors", "stderr", "messages"] {
            let path = self.log_dir.join(format!("{}.{suffix}", self.name));
            if let Ok(content) = std::fs::read_to_string(&path) {
                let tail: String = content.chars().rev().take(3000).collect::<Vec<_>>().into_iter().rev().collect();
                text.push_str(&format!("--- {} ---\n{tail}\n", path.display()));
            }
        }
        text
    }

    async fn finish(mut self, timeout: Duration) -> anyhow::Result<()> {
        let status = match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => status?,
            Err(_) => bail!("sipp {} still running after {timeout:?}\n{}", self.name, self.logs()),
        };
        if !status.success() {
            bail!("sipp {} failed ({status})\n{}", self.name, self.logs());
        }
        Ok(())
    }
}

struct Site {
    url: String,
    appliance: Appliance,
    admin: reqwest::Client,
    agent: reqwest::Client,
    shutdown: CancellationToken,
    dir: tempfile::TempDir,
}

impl Drop for Site {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().cookie_store(true).timeout(Duration::from_secs(60)).build()?)
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> anyhow::Result<Value> {
    let response = client.post(&url).json(&body).send().await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("POST {url}: {status} {body}");
    }
    Ok(body)
}

/// An appliance with one trunk to `carrier_port`, an admin, and agent1 on extension 1001,
/// holding a verified batch 77 of `n_rows` numbers.
async fn start_site(carrier_port: u16, n_rows: u64) -> anyhow::Result<Site> {
    start_site_with(carrier_port, n_rows, |_| {}).await
}

/// As [`start_site`], with the configuration changed by `adjust` before the box starts.
async fn start_site_with(carrier_port: u16, n_rows: u64, adjust: impl FnOnce(&mut ApplianceConfig)) -> anyhow::Result<Site> {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("appliance=debug,hardware=info").try_init();
    let dir = tempfile::tempdir()?;
    let admin_password = appliance::init_admin(dir.path(), "siteadmin")?;
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut config = ApplianceConfig::on_loopback(dir.path(), SocketAddr::new(localhost, carrier_port), 4);
    adjust(&mut config);
    let shutdown = CancellationToken::new();
    let appliance = appliance::start(config, shutdown.clone()).await?;
    let url = format!("http://{}", appliance.http_addr);
    for entry in entries(1, batch_events(77, &rows(77, n_rows), 10, 50, 1)) {
        appliance.store.apply_down(&entry)?;
    }
    let admin = client()?;
    post(&admin, format!("{url}/api/login"), json!({"username": "siteadmin", "password": admin_password})).await?;
    post(&admin, format!("{url}/api/extensions"), json!({"extension": EXTENSION, "password": SIP_PASSWORD})).await?;
    post(
        &admin,
        format!("{url}/api/agents"),
        json!({"username": "agent1", "password": "agent-pass", "name": "小王", "extension": EXTENSION}),
    )
    .await?;
    let agent = client()?;
    post(&agent, format!("{url}/api/login"), json!({"username": "agent1", "password": "agent-pass"})).await?;
    Ok(Site { url, appliance, admin, agent, shutdown, dir })
}

/// Waits until the outbox holds an entry `pick` accepts.
async fn outbox_entry<T>(site: &Site, timeout: Duration, pick: impl Fn(&UpEvent) -> Option<T>) -> anyhow::Result<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        for entry in site.appliance.store.outbox_after(0, 100)? {
            if let Some(found) = pick(&entry.event) {
                return Ok(found);
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!("outbox after {timeout:?}: {:?}", site.appliance.store.outbox_after(0, 100)?);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn attempt(event: &UpEvent) -> Option<CallAttempt> {
    event.call_attempt().cloned()
}

async fn next_popup(response: &mut reqwest::Response, buffer: &mut String, timeout: Duration) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(start) = buffer.find("event: popup\n")
            && let Some(end) = buffer[start..].find("\n\n")
        {
            let block = buffer[start..start + end].to_string();
            buffer.drain(..start + end + 2);
            let data: String = block.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim_start).collect();
            return Ok(serde_json::from_str(&data)?);
        }
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .context("no popup in time")??
            .context("event stream closed")?;
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn answered_call_reaches_the_agent_phone_and_popup_and_goes_up() -> anyhow::Result<()> {
    let carrier_port = free_udp_port();
    let site = start_site(carrier_port, 1).await?;
    let logs = site.dir.path().to_path_buf();

    // The agent's phone: one SIPp answers on agent_port, another registers that contact.
    let agent_port = free_udp_port();
    let phone = Sipp::start("agent", "agent_answer.xml", agent_port, &[], &logs)?;
    let register_args: Vec<String> = vec![
        site.appliance.sip_addr.to_string(),
        "-s".into(),
        EXTENSION.into(),
        "-au".into(),
        EXTENSION.into(),
        "-ap".into(),
        SIP_PASSWORD.into(),
        "-key".into(),
        "contact_port".into(),
        agent_port.to_string(),
    ];
    Sipp::start("register", "agent_register.xml", free_udp_port(), &register_args, &logs)?
        .finish(Duration::from_secs(15))
        .await?;
    let status: Value = site.admin.get(format!("{}/api/status", site.url)).send().await?.json().await?;
    assert_eq!(status["lines"]["registered_extensions"], json!([EXTENSION]), "{status}");

    let carrier = Sipp::start("carrier", "carrier_answer.xml", carrier_port, &["-d".into(), "3000".into()], &logs)?;

    // The agent goes 可回接 and opens the desk's event stream; the admin starts the task.
    post(&site.agent, format!("{}/api/agent/state", site.url), json!({"state": "available"})).await?;
    let mut events = site.agent.get(format!("{}/api/agent/events", site.url)).send().await?;
    let started = post(
        &site.admin,
        format!("{}/api/tasks/77/start", site.url),
        json!({"ratio": 1, "max_concurrency": 1, "ring_seconds": 20}),
    )
    .await?;
    assert_eq!(started["status"], "running");

    let mut buffer = String::new();
    let popup = next_popup(&mut events, &mut buffer, Duration::from_secs(20)).await?;
    assert_eq!(popup["phone"], "138****7700", "{popup}");
    assert_eq!(popup["fields"][0]["value"], "客户0");

    let attempt = outbox_entry(&site, Duration::from_secs(20), attempt).await?;
    assert_eq!(attempt.outcome, Outcome::Connected, "{attempt:?}");
    assert_eq!(attempt.agent.as_deref(), Some("agent1"));
    assert_eq!(attempt.row_id, 77_000);
    assert!(attempt.answered_at.is_some());
    // HQ's reports get the agent's extension and the ring time with it.
    let detail = outbox_entry(&site, Duration::from_secs(1), |event| match event {
        UpEvent::CallAttemptDetail(detail) => Some(detail.clone()),
        _ => None,
    })
    .await?;
    assert_eq!(detail.extension, EXTENSION);
    let answered = attempt.answered_at.unwrap_or_default();
    assert_eq!(i64::from(detail.ring_seconds), answered - attempt.started_at);
    let sha = attempt.recording_sha256.clone().context("a connected call is recorded")?;
    let recordings: Vec<_> = std::fs::read_dir(site.dir.path().join("recordings"))?.collect::<Result<_, _>>()?;
    assert_eq!(recordings.len(), 1, "{recordings:?}");
    use sha2::Digest as _;
    assert_eq!(hex::encode(sha2::Sha256::digest(std::fs::read(recordings[0].path())?)), sha);

    let attempt_id = popup["attempt_id"].as_u64().context("attempt id")?;
    assert_eq!(attempt_id, attempt.attempt_id);
    post(
        &site.agent,
        format!("{}/api/attempts/{attempt_id}/record", site.url),
        json!({"values": {"result": "成功", "note": "客户同意办理"}}),
    )
    .await?;
    let record = outbox_entry(&site, Duration::from_secs(2), |event| match event {
        UpEvent::BusinessRecord(record) => Some(record.clone()),
        _ => None,
    })
    .await?;
    assert_eq!((record.attempt_id, record.row_id, record.agent.as_str()), (attempt_id, 77_000, "agent1"));

    let tasks: Value = site.admin.get(format!("{}/api/tasks", site.url)).send().await?.json().await?;
    assert_eq!((tasks[0]["dialed"].as_u64(), tasks[0]["connected"].as_u64()), (Some(1), Some(1)), "{tasks}");
    carrier.finish(Duration::from_secs(15)).await?;
    phone.finish(Duration::from_secs(15)).await
}

#[tokio::test]
async fn busy_customer_is_classified_busy() -> anyhow::Result<()> {
    let carrier_port = free_udp_port();
    let site = start_site(carrier_port, 1).await?;
    let carrier = Sipp::start("carrier", "carrier_busy.xml", carrier_port, &[], site.dir.path())?;
    // Pacing dials only for available agents; this one has no phone and takes no call.
    post(&site.agent, format!("{}/api/agent/state", site.url), json!({"state": "available"})).await?;
    post(&site.admin, format!("{}/api/tasks/77/start", site.url), json!({"ratio": 1, "max_concurrency": 1})).await?;
    let attempt = outbox_entry(&site, Duration::from_secs(15), attempt).await?;
    assert_eq!((attempt.outcome, attempt.agent, attempt.talk_seconds), (Outcome::Busy, None, 0));
    assert!(attempt.recording_sha256.is_none());
    let tasks: Value = site.admin.get(format!("{}/api/tasks", site.url)).send().await?.json().await?;
    assert_eq!((tasks[0]["dialed"].as_u64(), tasks[0]["connected"].as_u64()), (Some(1), Some(0)), "{tasks}");
    carrier.finish(Duration::from_secs(10)).await
}

#[tokio::test]
async fn a_trunk_answering_503_fails_over_to_the_next_as_appliance_toml_says() -> anyhow::Result<()> {
    let (primary_port, backup_port) = (free_udp_port(), free_udp_port());
    let dir = tempfile::tempdir()?;
    // The trunks as a technician writes them in appliance.toml, read by the box's own parser.
    let toml = format!(
        "[[trunks]]\nname = \"primary\"\naddress = \"127.0.0.1:{primary_port}\"\nchannels = 4\nfailover = [\"backup\"]\n\n\
         [[trunks]]\nname = \"backup\"\naddress = \"127.0.0.1:{backup_port}\"\nchannels = 4\nhealth_check_seconds = 30\n"
    );
    let parsed = ApplianceConfig::parse(dir.path(), Path::new("appliance.toml"), &toml)?;
    let site = start_site_with(primary_port, 1, |config| {
        config.trunks = parsed.trunks;
        config.telephony = parsed.telephony;
    })
    .await?;
    let primary = Sipp::start("primary", "carrier_503.xml", primary_port, &[], site.dir.path())?;
    let backup = Sipp::start("backup", "carrier_busy.xml", backup_port, &[], site.dir.path())?;
    post(&site.agent, format!("{}/api/agent/state", site.url), json!({"state": "available"})).await?;
    post(&site.admin, format!("{}/api/tasks/77/start", site.url), json!({"ratio": 1, "max_concurrency": 1})).await?;
    // The backup's answer (busy) is the call's outcome: the 503 only moved the call on.
    let attempt = outbox_entry(&site, Duration::from_secs(20), attempt).await?;
    assert_eq!(attempt.outcome, Outcome::Busy, "{attempt:?}");
    primary.finish(Duration::from_secs(10)).await?;
    backup.finish(Duration::from_secs(10)).await?;
    let status: Value = site.admin.get(format!("{}/api/status", site.url)).send().await?.json().await?;
    let trunks: Vec<&str> = status["lines"]["trunks"]
        .as_array()
        .context("the status lists the trunks")?
        .iter()
        .filter_map(|trunk| trunk["name"].as_str())
        .collect();
    assert_eq!(trunks, ["primary", "backup"], "{status}");
    Ok(())
}

/// Registers agent1's phone (a SIPp UAS on its own port) and returns the answering SIPp.
async fn agent_phone(site: &Site, scenario: &str) -> anyhow::Result<Sipp> {
    let logs = site.dir.path().to_path_buf();
    let agent_port = free_udp_port();
    let phone = Sipp::start("agent", scenario, agent_port, &[], &logs)?;
    let register_args: Vec<String> = vec![
        site.appliance.sip_addr.to_string(),
        "-s".into(),
        EXTENSION.into(),
        "-au".into(),
        EXTENSION.into(),
        "-ap".into(),
        SIP_PASSWORD.into(),
        "-key".into(),
        "contact_port".into(),
        agent_port.to_string(),
    ];
    Sipp::start("register", "agent_register.xml", free_udp_port(), &register_args, &logs)?
        .finish(Duration::from_secs(15))
        .await?;
    Ok(phone)
}

/// The agent goes 可回接, the task starts, and the call is put through: returns once the
/// agent's popup arrived (the customer answered and the agent's phone is being bridged).
async fn call_in_progress(site: &Site) -> anyhow::Result<reqwest::Response> {
    post(&site.agent, format!("{}/api/agent/state", site.url), json!({"state": "available"})).await?;
    let mut events = site.agent.get(format!("{}/api/agent/events", site.url)).send().await?;
    post(&site.admin, format!("{}/api/tasks/77/start", site.url), json!({"ratio": 1, "max_concurrency": 1, "ring_seconds": 20}))
        .await?;
    next_popup(&mut events, &mut String::new(), Duration::from_secs(20)).await?;
    Ok(events)
}

/// A WAV file whose RIFF and data sizes agree with its length (a recording closed, not cut).
fn assert_closed_wav(path: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(path)?;
    anyhow::ensure!(bytes.len() > 44 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WAVE", "not a WAV: {path:?}");
    let riff = u32::from_le_bytes(bytes[4..8].try_into()?) as usize;
    anyhow::ensure!(riff == bytes.len() - 8, "RIFF size {riff} for a file of {} bytes", bytes.len());
    let data_at = bytes.windows(4).position(|w| w == b"data").context("a data chunk")?;
    let data = u32::from_le_bytes(bytes[data_at + 4..data_at + 8].try_into()?) as usize;
    anyhow::ensure!(data_at + 8 + data == bytes.len(), "data size {data} at {data_at} for {} bytes", bytes.len());
    anyhow::ensure!(data > 8000, "under a second of audio: {data} bytes");
    Ok(())
}

/// A stop (what SIGTERM does) during a call: no new dial, the call goes on for the grace,
/// then the box hangs up both legs itself; the recording is closed with a valid header and
/// the attempt is written as connected (nothing for the next start to repair).
#[tokio::test]
async fn a_stop_lets_the_call_run_for_the_grace_then_hangs_up_and_closes_the_recording() -> anyhow::Result<()> {
    let carrier_port = free_udp_port();
    let mut site = start_site_with(carrier_port, 3, |config| config.stop_grace = Duration::from_secs(3)).await?;
    let phone = agent_phone(&site, "agent_answer.xml").await?;
    let carrier = Sipp::start("carrier", "carrier_answer_wait.xml", carrier_port, &[], &site.dir.path().to_path_buf())?;
    let _events = call_in_progress(&site).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let stopped = std::time::Instant::now();
    site.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), site.appliance.wait()).await.context("the box did not stop")?;
    let took = stopped.elapsed();
    assert!(took >= Duration::from_secs(3), "stopped after {took:?}: the call did not get its grace");
    assert!(took < Duration::from_secs(10), "stopped after {took:?}");
    // Both SIPp peers got the box's BYE and answered it (they fail on anything else).
    carrier.finish(Duration::from_secs(10)).await?;
    phone.finish(Duration::from_secs(10)).await?;

    let store = &site.appliance.store;
    let entries = store.outbox_after(0, 100)?;
    let attempts: Vec<CallAttempt> = entries.iter().filter_map(|entry| attempt(&entry.event)).collect();
    assert_eq!(attempts.len(), 1, "one call only, none dialed after the stop: {attempts:?}");
    assert_eq!(attempts[0].outcome, Outcome::Connected, "{attempts:?}");
    assert!(attempts[0].recording_sha256.is_some());
    let recordings: Vec<_> = std::fs::read_dir(site.dir.path().join("recordings"))?.collect::<Result<_, _>>()?;
    assert_eq!(recordings.len(), 1, "{recordings:?}");
    assert_closed_wav(&recordings[0].path())?;
    assert_eq!(store.recover_interrupted()?, 0, "an attempt was left open");
    Ok(())
}

/// A stop while a call is about to end by itself: the box waits for it (not the whole grace)
/// and stops as soon as it is over.
#[tokio::test]
async fn a_stop_waits_for_a_call_that_ends_within_the_grace() -> anyhow::Result<()> {
    let carrier_port = free_udp_port();
    let mut site = start_site_with(carrier_port, 3, |config| config.stop_grace = Duration::from_secs(40)).await?;
    let phone = agent_phone(&site, "agent_answer.xml").await?;
    let logs = site.dir.path().to_path_buf();
    let carrier = Sipp::start("carrier", "carrier_answer.xml", carrier_port, &["-d".into(), "4000".into()], &logs)?;
    let _events = call_in_progress(&site).await?;

    let stopped = std::time::Instant::now();
    site.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), site.appliance.wait()).await.context("the box did not stop")?;
    let took = stopped.elapsed();
    assert!(took < Duration::from_secs(15), "stopped after {took:?}, not when the call ended");
    carrier.finish(Duration::from_secs(10)).await?;
    phone.finish(Duration::from_secs(10)).await?;
    let attempts: Vec<CallAttempt> =
        site.appliance.store.outbox_after(0, 100)?.iter().filter_map(|entry| attempt(&entry.event)).collect();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0].outcome, Outcome::Connected, "the customer hung up: {attempts:?}");
    let recordings: Vec<_> = std::fs::read_dir(site.dir.path().join("recordings"))?.collect::<Result<_, _>>()?;
    assert_closed_wav(&recordings[0].path())?;
    Ok(())
}

/// The front panel as the status page serves it, decoded: grey levels, one per pixel.
async fn panel_pixels(site: &Site) -> anyhow::Result<Vec<u8>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let response = site.admin.get(format!("{}/admin/status/panel.png", site.url)).send().await?;
        if response.status().is_success() {
            anyhow::ensure!(response.headers()["content-type"] == "image/png", "{:?}", response.headers());
            let bytes = response.bytes().await?;
            let mut reader = png::Decoder::new(std::io::Cursor::new(bytes.to_vec())).read_info()?;
            let mut pixels = vec![0; reader.output_buffer_size().context("image size")?];
            let info = reader.next_frame(&mut pixels)?;
            anyhow::ensure!((info.width, info.height) == (384, 192), "{info:?}");
            pixels.truncate(info.buffer_size());
            return Ok(pixels);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("no panel image: {}", response.status());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A box whose disk is under its floor goes on taking calls without recording them, and says
/// so: the wall's alarm, the status page's monitor; its front panel (the status page's PNG,
/// redrawn each second from the running box) changes as an agent signs in and a call runs.
#[tokio::test]
async fn under_the_disk_floor_calls_go_on_unrecorded_with_an_alarm_and_the_panel_follows() -> anyhow::Result<()> {
    let carrier_port = free_udp_port();
    let site = start_site_with(carrier_port, 3, |config| config.recordings.floor_bytes = u64::MAX).await?;
    let idle = panel_pixels(&site).await?;
    assert!(idle.iter().any(|level| *level > 0x80), "the panel shows something");

    let live = site.appliance.store.site_live_now()?;
    assert!(
        live.alarms.iter().any(|alarm| matches!(alarm, sync_protocol::SiteAlarm::RecordingStopped { floor_bytes: u64::MAX, .. })),
        "{:?}",
        live.alarms
    );
    let mut monitor = site.admin.get(format!("{}/api/monitor/events", site.url)).send().await?;
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), monitor.chunk()).await??.context("monitor closed")?;
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let data: String = text.lines().filter_map(|line| line.strip_prefix("data:")).collect();
    let snapshot: Value = serde_json::from_str(data.trim())?;
    assert_eq!(snapshot["recording_stopped"]["floor_mb"], json!(u64::MAX >> 20), "{snapshot}");
    drop(monitor);
    let page = site.admin.get(format!("{}/admin/status", site.url)).send().await?.text().await?;
    assert!(page.contains("永久保留") && page.contains("/admin/status/panel.png"), "retention and panel on the status page: {page}");

    let phone = agent_phone(&site, "agent_answer.xml").await?;
    let logs = site.dir.path().to_path_buf();
    let carrier = Sipp::start("carrier", "carrier_answer.xml", carrier_port, &["-d".into(), "3000".into()], &logs)?;
    let _events = call_in_progress(&site).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while panel_pixels(&site).await? == idle {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "the panel did not change with an agent and a call");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    carrier.finish(Duration::from_secs(20)).await?;
    phone.finish(Duration::from_secs(10)).await?;
    let attempt = outbox_entry(&site, Duration::from_secs(10), attempt).await?;
    assert_eq!(attempt.outcome, Outcome::Connected, "{attempt:?}");
    assert_eq!(attempt.recording_sha256, None, "recorded under the floor");
    let recordings: Vec<_> = std::fs::read_dir(site.dir.path().join("recordings"))?.collect::<Result<_, _>>()?;
    assert!(recordings.is_empty(), "{recordings:?}");
    Ok(())
}
