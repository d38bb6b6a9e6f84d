//! Catch-up benchmark: a 100-agent site offline for a simulated day reconnects.
//!
//! The appliance's real store holds the day's outbox (40,000 call attempts, 10,000 business
//! records, 2,000 callbacks; recordings travel apart and are not part of this figure); the
//! hub's real store receives it over the real link on loopback. The clock runs from starting
//! the appliance's link until HQ has committed the last entry. Then the checker counts
//! every row at HQ once and the site's outbox emptied by the acknowledgements.
//!
//! Goal: under 10 s. The figure is printed, not asserted: on a shared machine a timed
//! assertion measures the neighbours; `docs/benchmarks.md` records the release figure. The
//! test itself asserts what must always hold: every entry at HQ once, the outbox drained.
//!
//! ```text
//! cargo test --release -p tests --test sync_catchup -- --nocapture
//! ```

mod sync_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use sync_link::HubStore;
use sync_link::client::{self, LinkStatus};
use sync_link::server::{self, ServerConfig};
use sync_protocol::{
    BusinessRecord, CallAttempt, Callback, CallbackState, HangupSide, Outcome, UpEvent,
};
use tokio_util::sync::CancellationToken;

use sync_support::{LOCALHOST, fill_outbox, hub_db, read_only, site_db, sync_state};

const ATTEMPTS: u64 = 40_000;
const RECORDS: u64 = 10_000;
const CALLBACKS: u64 = 2_000;
const AGENTS: u64 = 100;

/// The day's outbox in the order the site wrote it: every fourth attempt is answered and
/// followed by its business record, every twentieth of those schedules a callback.
fn a_day() -> Vec<UpEvent> {
    let day_start = 1_767_225_600; // a working day's 08:00, in unix seconds
    let mut events = Vec::with_capacity((ATTEMPTS + RECORDS + CALLBACKS) as usize);
    let mut records = 0;
    let mut callbacks = 0;
    for attempt_id in 1..=ATTEMPTS {
        let started_at = day_start + (attempt_id as i64 * 36_000 / ATTEMPTS as i64);
        let agent = format!("{}", 8001 + attempt_id % AGENTS);
        let answered = attempt_id % 4 == 0;
        events.push(UpEvent::CallAttempt(CallAttempt {
            attempt_id,
            batch_id: 1 + attempt_id % 3,
            row_id: attempt_id,
            started_at,
            answered_at: answered.then_some(started_at + 8),
            ended_at: started_at + if answered { 95 } else { 30 },
            outcome: if answered { Outcome::Connected } else { Outcome::NoAnswer },
            hangup_side: Some(HangupSide::Customer),
            agent: answered.then(|| agent.clone()),
            talk_seconds: if answered { 87 } else { 0 },
            recording_sha256: answered.then(|| format!("{attempt_id:064x}")),
            kind: sync_protocol::AttemptKind::Predictive,
        }));
        if answered && records < RECORDS {
            records += 1;
            events.push(UpEvent::BusinessRecord(BusinessRecord {
                attempt_id,
                batch_id: 1 + attempt_id % 3,
                row_id: attempt_id,
                agent: agent.clone(),
                saved_at: started_at + 120,
                values: vec![
                    ("result".into(), "有意向".into()),
                    ("remark".into(), format!("客户询问套餐 {attempt_id} 的资费，约下周再联系")),
                ],
            }));
            if records % 5 == 0 && callbacks < CALLBACKS {
                callbacks += 1;
                events.push(UpEvent::Callback(Callback {
                    callback_id: callbacks,
                    batch_id: 1 + attempt_id % 3,
                    row_id: attempt_id,
                    agent: Some(agent),
                    due_at: started_at + 86_400,
                    note: "明天上午回访".into(),
                    state: CallbackState::Scheduled,
                    changed_at: started_at + 125,
                }));
            }
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_offline_catches_up() -> Result<()> {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("warn").try_init();
    let dir = tempfile::tempdir()?;
    let hub_dir = dir.path().join("hub");
    let site_dir = dir.path().join("site");

    let events = a_day();
    ensure!(events.len() as u64 == ATTEMPTS + RECORDS + CALLBACKS, "the day has {} events", events.len());
    let total = fill_outbox(&site_dir, events)?;

    let hub = Arc::new(hq_hub::store::Store::open(&hub_dir)?);
    let site_id = hub.create_site("一天离线的职场")?;
    let code = hub.create_enrollment_code(site_id)?.code;
    let ca = Arc::new(sync_link::ca::HubCa::load_or_create(&hub_dir.join("ca"))?);
    let server = server::bind(ServerConfig { bind: SocketAddr::new(LOCALHOST, 0), ca }, hub.clone()).await?;
    let addr = server.local_addr();
    let hub_shutdown = CancellationToken::new();
    let hub_task = tokio::spawn(server.run(hub_shutdown.clone()));
    let identity = client::enroll(&addr.to_string(), &code, &site_dir.join("identity")).await?;

    let site = Arc::new(appliance::store::Store::open(&site_dir)?);
    let epoch = site.epoch();
    let (status_tx, _status) = tokio::sync::watch::channel(LinkStatus::Connecting);
    let site_shutdown = CancellationToken::new();
    let started = Instant::now();
    let site_task = tokio::spawn(client::run(identity, site.clone(), status_tx, site_shutdown.clone()));
    let limit = Duration::from_secs(120);
    loop {
        let store = hub.clone();
        let committed =
            tokio::task::spawn_blocking(move || store.up_committed(site_id as u64, epoch)).await??.unwrap_or(0);
        if committed >= total {
            break;
        }
        ensure!(started.elapsed() < limit, "HQ had {committed} of {total} entries after {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let caught_up = started.elapsed();
    println!(
        "catch-up: {total} entries ({ATTEMPTS} attempts, {RECORDS} records, {CALLBACKS} callbacks) at HQ in {:.2} s ({:.0} entries/s)",
        caught_up.as_secs_f64(),
        total as f64 / caught_up.as_secs_f64()
    );

    // The site drops its outbox once HQ's acknowledgement arrives.
    let drained = Instant::now();
    while site.outbox_len()? > 0 {
        ensure!(drained.elapsed() < Duration::from_secs(10), "the site still holds {} entries", site.outbox_len()?);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    site_shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), site_task).await.context("site link stops")??;
    hub_shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), hub_task).await.context("hub link stops")??;

    // The checker: every entry once, every row once.
    let state = sync_state(&hub_db(&hub_dir), &site_db(&site_dir), site_id as u64)?;
    sync_support::check_invariants(&state)?;
    ensure!(state.hub_applied == total && state.site_unacked == 0, "{state:?}");
    let hub_conn = read_only(&hub_db(&hub_dir))?;
    let count = |sql: &str| -> Result<u64> { Ok(hub_conn.query_row(sql, [site_id], |r| r.get::<_, i64>(0))? as u64) };
    ensure!(count("SELECT COUNT(*) FROM call_attempts WHERE site_id = ?1")? == ATTEMPTS);
    ensure!(count("SELECT COUNT(*) FROM business_records WHERE site_id = ?1")? == RECORDS);
    ensure!(count("SELECT COUNT(*) FROM site_callbacks WHERE site_id = ?1")? == CALLBACKS);
    Ok(())
}
