//! Rolling upgrades over the real link: this hub (protocol 3) serving a box of the previous
//! release, which speaks only `outpost-sync/2` and the frozen `sync_protocol::v2` types
//! through the real QUIC connection and framing (`sync_link::old_peer`).
//!
//! The old box connects and is served in its version; it gets every down entry it can read,
//! and in place of the one it cannot (HQ's name of the site, `DownEvent::SiteProfile`, new
//! in 3) a stand-in at the same seq, so its cursor stays contiguous; HQ lists the site as
//! needing an upgrade; its up entries are applied. Then the box is "upgraded" (the current
//! client on the same identity and position): the held event arrives, and the mark goes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;
use sync_link::client::{self, LinkStatus};
use sync_link::old_peer::OldPeer;
use sync_link::{LinkTuning, SiteStore, StoreResult};
use sync_protocol::{v2, AgentState, AgentStateChange, ClientHello, DownEntry, DownEvent, UpEntry};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

mod common;

/// The upgraded box's store: it starts where the old box left off and keeps what arrives.
struct UpgradedBox {
    position: u64,
    applied: Mutex<Vec<DownEntry>>,
    notify: Arc<Notify>,
}

impl SiteStore for UpgradedBox {
    fn sync_position(&self) -> StoreResult<(u64, u64)> {
        let applied = self.applied.lock().unwrap();
        Ok((7, applied.last().map_or(self.position, |entry| entry.seq)))
    }
    fn outbox_after(&self, _after_seq: u64, _limit: usize) -> StoreResult<Vec<UpEntry>> {
        Ok(Vec::new())
    }
    fn outbox_acked(&self, _epoch: u64, _seq: u64) -> StoreResult<()> {
        Ok(())
    }
    fn apply_down(&self, entry: &DownEntry) -> StoreResult<()> {
        self.applied.lock().unwrap().push(entry.clone());
        Ok(())
    }
    fn outbox_notify(&self) -> Arc<Notify> {
        self.notify.clone()
    }
}

async fn next(old: &mut OldPeer) -> Result<v2::Frame> {
    tokio::time::timeout(Duration::from_secs(10), old.recv::<v2::Frame>())
        .await
        .context("no frame from the hub within 10 s")?
        .map_err(anyhow::Error::msg)?
        .context("the hub finished the stream")
}

#[tokio::test]
async fn a_box_of_the_previous_release_is_served_in_its_version() -> Result<()> {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let hq = common::TestHub::launch().await?;
    let store = hq.hub().store.clone();
    let site = store.create_site("北京一号")?;
    let code = store.create_enrollment_code(site)?.code;
    let sync_addr = hq.hub().sync_addr;
    let identity = client::enroll(&sync_addr.to_string(), &code, &hq.dir().join("box")).await?;
    // A change every version reads, after the enrollment's seed (which holds the profile).
    store.set_link_settings(Some(65_536), "admin")?;
    let logged = store.down_log(site, 0, 100)?;
    let last = logged.last().context("a down log")?.seq;
    let held_seq = logged.iter().find(|e| matches!(e.event, DownEvent::SiteProfile(_))).context("the profile")?.seq;

    // The old box: only `outpost-sync/2`, only the frozen types.
    let mut old = OldPeer::connect(&identity, sync_addr, v2::SYNC_ALPN).await.map_err(anyhow::Error::msg)?;
    assert_eq!(old.alpn().as_deref(), Some(v2::SYNC_ALPN));
    let hello = ClientHello { protocol_version: 2, site_id: site as u64, epoch: 7, down_applied: 0, software: "appliance 2".into() };
    old.send(&v2::Frame::ClientHello(hello)).await.map_err(anyhow::Error::msg)?;
    let v2::Frame::ServerHello(answer) = next(&mut old).await? else { bail!("no server hello") };
    assert_eq!(answer.protocol_version, 2, "the hub answers in the box's version");

    // Every seq arrives, in order, each readable by the old box.
    let mut received = Vec::new();
    while received.len() < last as usize {
        match next(&mut old).await? {
            v2::Frame::Down(entry) => received.push(entry),
            v2::Frame::UpAck { .. } => {}
            other => bail!("unexpected {other:?}"),
        }
    }
    assert_eq!(received.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=last).collect::<Vec<_>>());
    for entry in &received {
        if entry.seq == held_seq {
            let v2::DownEvent::ReportDefinitions { project_id: 0, version: 0, defs } = &entry.event else {
                bail!("seq {held_seq} should be the stand-in, got {:?}", entry.event)
            };
            assert!(defs.is_empty());
        }
    }
    assert!(
        received.iter().any(|e| matches!(&e.event, v2::DownEvent::LinkSettings(s) if s.recording_upload_bytes_per_sec == Some(65_536))),
        "the change a version 2 box reads arrives as itself"
    );
    old.send(&v2::Frame::DownAck { seq: last }).await.map_err(anyhow::Error::msg)?;

    // Its up entries are applied and acknowledged.
    let state = AgentStateChange { agent: "8001".into(), state: AgentState::Ready, at: 1_700_000_000 };
    old.send(&v2::Frame::Up(v2::UpEntry { epoch: 7, seq: 1, event: v2::UpEvent::AgentState(state) })).await.map_err(anyhow::Error::msg)?;
    loop {
        match next(&mut old).await? {
            v2::Frame::UpAck { epoch: 7, seq: 1 } => break,
            v2::Frame::UpAck { .. } | v2::Frame::Ping => {}
            other => bail!("unexpected {other:?}"),
        }
    }

    // HQ shows the site needs an upgrade, on the list and the sites page.
    let listed = store.list_sites()?.into_iter().find(|s| s.id == site).context("listed")?;
    assert!(listed.needs_upgrade && listed.protocol_version == Some(2), "{listed:?}");
    let http = common::cookie_client(Duration::from_secs(20))?;
    let (status, _) = common::send(&http, &hq.base, reqwest::Method::POST, "/api/login", Some(json!({"username": "admin", "password": hq.password}))).await?;
    assert!(status.is_success());
    let page = http.get(format!("{}/sites", hq.base)).send().await?.text().await?;
    assert!(page.contains("职场需升级"), "the sites page marks the site");
    assert!(monitor_card(&http, &hq.base, site).await?.contains("职场需升级"), "the monitor's card marks the site");
    old.close();

    // The box is upgraded: the held event arrives after what it already applied.
    let upgraded = Arc::new(UpgradedBox { position: last, applied: Mutex::new(Vec::new()), notify: Arc::new(Notify::new()) });
    let (status_tx, _status): (_, watch::Receiver<LinkStatus>) = watch::channel(LinkStatus::Connecting);
    let shutdown = CancellationToken::new();
    let tuning = LinkTuning { initial_backoff: Duration::from_millis(200), max_backoff: Duration::from_secs(1), ..LinkTuning::default() };
    let task = tokio::spawn(client::run_tuned(identity, upgraded.clone(), status_tx, shutdown.clone(), tuning));
    let mut profile = None;
    for _ in 0..150 {
        profile = upgraded.applied.lock().unwrap().iter().find_map(|e| match &e.event {
            DownEvent::SiteProfile(p) => Some((e.seq, p.name.clone())),
            _ => None,
        });
        if profile.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (seq, name) = profile.context("the held profile never reached the upgraded box")?;
    assert!(seq > last, "sent again after the box's position, not in place of a seq it applied");
    assert_eq!(name, "北京一号");
    let listed = store.list_sites()?.into_iter().find(|s| s.id == site).context("listed")?;
    assert!(!listed.needs_upgrade && listed.protocol_version == Some(sync_protocol::PROTOCOL_VERSION), "{listed:?}");
    assert!(!monitor_card(&http, &hq.base, site).await?.contains("职场需升级"), "the mark leaves the card with the upgrade");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task).await??;
    hq.stop().await
}

/// The alarms of `site`'s card on the monitoring wall, as the wall's JSON twin gives them.
async fn monitor_card(http: &reqwest::Client, base: &str, site: i64) -> anyhow::Result<String> {
    let wall: serde_json::Value = http.get(format!("{base}/api/monitor")).send().await?.error_for_status()?.json().await?;
    let cards = wall["sites"].as_array().or(wall.as_array()).context("the wall's cards")?;
    let card = cards.iter().find(|card| card["site_id"] == json!(site)).context("the site's card")?;
    Ok(card["alarms"].to_string())
}
