//! The monitoring wall (职场监控管理) through the real hub (`hq_hub::start`: SQLite store,
//! console, QUIC link with mutual TLS) and real enrolled boxes (`sync_link::client`), whose
//! site store hands the link the snapshot the test sets, as the appliance's does.
//!
//! - A change at a site reaches an open wall's stream within 2 s; a scoped sub-admin's
//!   stream, page and JSON hold only its own site; a role without the module gets 403.
//! - A box going away turns its card offline, with its last known state and its age.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sync_link::client::{self, LinkStatus, SiteIdentity};
use sync_link::{LinkTuning, SiteStore, StoreResult};
use sync_protocol::{DownEntry, LiveAgent, LiveAgentState, SiteAlarm, SiteLive, UpEntry};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use common::TestHub;

mod common;

/// A logged-in console client.
struct Console {
    http: reqwest::Client,
    base: String,
}

impl Console {
    async fn login(base: &str, username: &str, password: &str) -> Result<Console> {
        let console = Console { http: common::cookie_client(Duration::from_secs(60))?, base: base.to_owned() };
        let response = console.http.post(format!("{base}/api/login")).json(&json!({ "username": username, "password": password })).send().await?;
        ensure!(response.status() == StatusCode::OK, "login as {username}: {}", response.status());
        Ok(console)
    }

    async fn ok(&self, path: &str, body: Value) -> Result<Value> {
        let response = self.http.post(format!("{}{path}", self.base)).json(&body).send().await?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        ensure!(status == StatusCode::OK, "POST {path}: {status} {answer}");
        Ok(answer)
    }

    async fn get(&self, path: &str) -> Result<(StatusCode, String)> {
        let response = self.http.get(format!("{}{path}", self.base)).send().await?;
        Ok((response.status(), response.text().await?))
    }

    /// Opens the wall's event stream.
    async fn stream(&self, path: &str) -> Result<Events> {
        let response = self.http.get(format!("{}{path}", self.base)).send().await?;
        ensure!(response.status() == StatusCode::OK, "GET {path}: {}", response.status());
        Ok(Events { response, buffer: String::new() })
    }
}

/// A wall's server-sent events, read as they come.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    /// The next `cards` event's patches, or `None` if none came within `wait`.
    async fn next(&mut self, wait: Duration) -> Result<Option<Vec<Value>>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let data: String = event.lines().filter_map(|line| line.strip_prefix("data:")).map(str::trim_start).collect();
                if event.lines().any(|line| line == "event: cards") {
                    let value: Value = serde_json::from_str(&data).with_context(|| format!("event data {data}"))?;
                    return Ok(Some(value["items"].as_array().cloned().unwrap_or_default()));
                }
                continue; // a keep-alive comment
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => return Ok(None),
                Ok(chunk) => match chunk? {
                    Some(bytes) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                    None => bail!("the stream ended"),
                },
            }
        }
    }

    /// Waits (at most `wait`) for a patch of `target` whose HTML contains every one of
    /// `needles`; returns it and how long it took.
    async fn wait_for(&mut self, target: &str, needles: &[&str], wait: Duration) -> Result<(String, Duration)> {
        let started = Instant::now();
        while let Some(left) = wait.checked_sub(started.elapsed()) {
            let Some(items) = self.next(left).await? else { break };
            for item in items {
                let html = item["html"].as_str().unwrap_or_default();
                if item["target"] == target && needles.iter().all(|needle| html.contains(needle)) {
                    return Ok((html.to_owned(), started.elapsed()));
                }
            }
        }
        bail!("no patch of {target} with {needles:?} within {wait:?}")
    }
}

/// A box's store: the snapshot the test sets, nothing else to send.
struct WallBox {
    live: Mutex<SiteLive>,
    notify: Arc<Notify>,
}

impl SiteStore for WallBox {
    fn sync_position(&self) -> StoreResult<(u64, u64)> {
        Ok((1, 0))
    }
    fn outbox_after(&self, _after_seq: u64, _limit: usize) -> StoreResult<Vec<UpEntry>> {
        Ok(Vec::new())
    }
    fn outbox_acked(&self, _epoch: u64, _seq: u64) -> StoreResult<()> {
        Ok(())
    }
    fn apply_down(&self, _entry: &DownEntry) -> StoreResult<()> {
        Ok(())
    }
    fn outbox_notify(&self) -> Arc<Notify> {
        self.notify.clone()
    }
    fn site_live(&self) -> StoreResult<Option<SiteLive>> {
        Ok(Some(self.live.lock().unwrap().clone()))
    }
}

struct RunningBox {
    store: Arc<WallBox>,
    status: watch::Receiver<LinkStatus>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl RunningBox {
    async fn start(identity: SiteIdentity) -> Result<RunningBox> {
        let store = Arc::new(WallBox { live: Mutex::new(snapshot(&[])), notify: Arc::default() });
        let (status_tx, mut status) = watch::channel(LinkStatus::Connecting);
        let shutdown = CancellationToken::new();
        let tuning = LinkTuning { initial_backoff: Duration::from_millis(200), max_backoff: Duration::from_secs(1), ..LinkTuning::default() };
        let task = tokio::spawn(client::run_tuned(identity, store.clone(), status_tx, shutdown.clone(), tuning));
        tokio::time::timeout(Duration::from_secs(15), status.wait_for(|s| matches!(s, LinkStatus::Online { .. })))
            .await
            .context("the box did not come online")??;
        Ok(RunningBox { store, status, shutdown, task })
    }

    fn set(&self, agents: &[(&str, LiveAgentState)]) {
        *self.store.live.lock().unwrap() = snapshot(agents);
    }

    async fn stop(self) -> Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task).await??;
        let _ = self.status;
        Ok(())
    }
}

fn snapshot(agents: &[(&str, LiveAgentState)]) -> SiteLive {
    let talking = agents.iter().filter(|(_, state)| *state == LiveAgentState::Talking).count() as u32;
    let ringing = agents.iter().filter(|(_, state)| *state == LiveAgentState::Ringing).count() as u32;
    SiteLive {
        taken_at_ms: 1,
        agents: agents
            .iter()
            .map(|(name, state)| LiveAgent { username: (*name).into(), extension: "801".into(), state: *state, since_ms: 1_700_000_000_000 })
            .collect(),
        calls_ringing: ringing,
        calls_talking: talking,
        lines_in_use: ringing + talking,
        lines_available: 30,
        dials_today: 40,
        connected_today: 10,
        answered_today: 12,
        abandoned_today: 1,
        abandon_cap_percent: 3.0,
        outbox_backlog: 2,
        alarms: vec![SiteAlarm::TrunkUnregistered { trunk: "电信一号".into() }],
        ..SiteLive::default()
    }
}

type Harness = TestHub<Console>;

async fn enrolled_box(h: &Harness, site: i64, name: &str) -> Result<RunningBox> {
    let code = h.admin.ok(&format!("/api/sites/{site}/enrollment-code"), json!({})).await?;
    let code = code["code"].as_str().context("a code")?;
    let identity = client::enroll(&h.hub().sync_addr.to_string(), code, &h.dir().join(name)).await?;
    RunningBox::start(identity).await
}

#[tokio::test]
async fn the_wall_shows_each_change_within_two_seconds_in_scope_and_a_lost_site_offline() -> Result<()> {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let hq = TestHub::launch().await?;
    let admin = Console::login(&hq.base, "admin", &hq.password).await?;
    let h = hq.with(admin);
    let a = h.admin.ok("/api/sites", json!({ "name": "杭州监控职场" })).await?["id"].as_i64().context("id")?;
    let b = h.admin.ok("/api/sites", json!({ "name": "成都监控职场" })).await?["id"].as_i64().context("id")?;
    let watch_role = h.admin.ok("/api/roles", json!({ "name": "监控", "modules": ["site.monitor"] })).await?["id"].clone();
    let files_role = h.admin.ok("/api/roles", json!({ "name": "文件", "modules": ["data.files"] })).await?["id"].clone();
    for (name, role) in [("hz_watch", &watch_role), ("hz_files", &files_role)] {
        h.admin.ok("/api/accounts", json!({ "username": name, "password": "sub-secret-1", "role_id": role, "site_ids": [a] })).await?;
    }
    let scoped = Console::login(&h.base, "hz_watch", "sub-secret-1").await?;
    let nomod = Console::login(&h.base, "hz_files", "sub-secret-1").await?;
    for path in ["/monitor", "/api/monitor", "/api/monitor/events", &format!("/monitor/sites/{a}"), &format!("/api/monitor/sites/{a}")] {
        assert_eq!(nomod.get(path).await?.0, StatusCode::FORBIDDEN, "{path} without the module");
    }

    let box_a = enrolled_box(&h, a, "box-a").await?;
    let box_b = enrolled_box(&h, b, "box-b").await?;
    let mut wall = h.admin.stream("/api/monitor/events").await?;
    let mut scoped_wall = scoped.stream("/api/monitor/events").await?;
    let mut scoped_site = scoped.stream(&format!("/api/monitor/events?site={a}")).await?;
    let first = scoped_wall.next(Duration::from_secs(5)).await?.context("the first event")?;
    let targets: Vec<&str> = first.iter().filter_map(|item| item["target"].as_str()).collect();
    assert_eq!(targets, [format!("site-{a}")], "a scoped wall starts with its own site only");

    // An agent's phone rings at site A, then the agent talks: each shows within 2 s.
    box_a.set(&[("张三", LiveAgentState::Ringing), ("李四", LiveAgentState::Available)]);
    let (html, took) = wall.wait_for(&format!("site-{a}"), &["振铃 1", "张三", "可回接 1", "李四", "中继未注册 电信一号"], Duration::from_secs(5)).await?;
    assert!(took < Duration::from_secs(2), "ringing reached the wall after {took:?}");
    assert!(html.contains("在线") && !html.contains("stale"), "{html}");
    box_a.set(&[("张三", LiveAgentState::Talking), ("李四", LiveAgentState::Available)]);
    let (_, took) = wall.wait_for(&format!("site-{a}"), &["通话 1", "张三"], Duration::from_secs(5)).await?;
    assert!(took < Duration::from_secs(2), "talking reached the wall after {took:?}");
    scoped_wall.wait_for(&format!("site-{a}"), &["通话 1", "张三"], Duration::from_secs(5)).await?;
    scoped_site.wait_for("site-detail", &["data-agent=\"张三\" data-state=\"talking\""], Duration::from_secs(5)).await?;

    // Site B changes: the admin sees it, the sub-admin of A never does.
    box_b.set(&[("王五", LiveAgentState::Break)]);
    wall.wait_for(&format!("site-{b}"), &["小休 1", "王五"], Duration::from_secs(5)).await?;
    while let Some(items) = scoped_wall.next(Duration::from_secs(1)).await? {
        for item in items {
            ensure!(item["target"] == format!("site-{a}"), "a scoped wall got another site: {item}");
        }
    }
    let (status, text) = scoped.get("/api/monitor").await?;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("杭州监控职场") && !text.contains("成都监控职场") && !text.contains("王五"), "{text}");
    let (status, page) = scoped.get("/monitor").await?;
    assert!(status == StatusCode::OK && page.contains("张三") && !page.contains("成都监控职场"), "{page}");
    for path in [format!("/monitor/sites/{b}"), format!("/api/monitor/sites/{b}"), format!("/api/monitor/events?site={b}")] {
        assert_eq!(scoped.get(&path).await?.0, StatusCode::NOT_FOUND, "{path} of another site");
    }

    // Site A's box goes away: its card turns offline, keeps its last known state, says how long.
    box_a.stop().await?;
    let (html, _) = wall.wait_for(&format!("site-{a}"), &["离线 不到 1 分钟", "stale", "张三", "截至"], Duration::from_secs(10)).await?;
    assert!(html.contains("链路中断"), "the link-down alarm: {html}");
    let (_, detail) = h.admin.get(&format!("/api/monitor/sites/{a}")).await?;
    let detail: Value = serde_json::from_str(&detail)?;
    assert_eq!(detail["card"]["live"], false, "{detail}");
    assert_eq!(detail["agents"][0]["username"], "张三", "the last known state stays: {detail}");
    assert_eq!(detail["card"]["link_text"], "离线 不到 1 分钟");
    // The English switch: the same card in the other language.
    h.admin.get("/lang/en").await?;
    let english: Value = serde_json::from_str(&h.admin.get(&format!("/api/monitor/sites/{a}")).await?.1)?;
    assert_eq!(english["card"]["link_text"], "offline for less than a minute", "{english}");
    assert_eq!(english["agents"][0]["label"], "Talking", "{english}");
    let page = h.admin.get("/monitor").await?.1;
    assert!(page.contains("Site monitoring") && page.contains("Link down for less than a minute"), "{page}");

    box_b.stop().await?;
    h.stop().await
}
