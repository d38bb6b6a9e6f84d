//! The real stack through a UDP proxy the test controls: the hub's real store
//! (`hq_hub::store::Store`, set up over the console API) and the appliance's real store
//! (`appliance::store::Store`) in-process, linked by the real QUIC link through a relay that
//! drops and delays datagrams and can cut the path entirely.
//!
//! Both sides keep writing throughout (the site: finished call attempts and callbacks, each
//! with its outbox entry; HQ: priority changes of the batch, each a down-log entry), through
//! 10 % loss with 15 ms delay, then a full partition long enough for both ends to declare
//! the connection dead, then the heal. The checker then finds every site entry at HQ once
//! with the site's content, and the site on HQ's latest control version.

mod sync_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use appliance::store::{AttemptEnd, Role};
use sync_link::LinkTuning;
use sync_link::client::{self, LinkStatus};
use sync_link::server::{self, ServerConfig};
use sync_protocol::{HangupSide, Outcome};
use tokio_util::sync::CancellationToken;

use tests::UdpRelay as Relay;

use sync_support::{LOCALHOST, check_converged, check_invariants, hub_db, site_db, sync_state};

/// Site-side writes: `n` finished attempts and `n / 2` callbacks, each committed with its
/// outbox entry by the appliance store's own API.
async fn site_writes(site: Arc<appliance::store::Store>, batch_id: u64, n: u32) -> Result<u32> {
    tokio::task::spawn_blocking(move || -> Result<u32> {
        let mut written = 0;
        for i in 0..n {
            let Some(claimed) = site.claim_next_number(batch_id)? else { break };
            site.finish_attempt(
                claimed.attempt_id,
                &AttemptEnd {
                    outcome: if i % 3 == 0 { Outcome::Busy } else { Outcome::NoAnswer },
                    hangup_side: Some(HangupSide::System),
                    ended_at: 1_900_000_000 + i64::from(i),
                    recording_path: None,
                    recording_sha256: None,
                },
            )?;
            written += 1;
            if i % 2 == 0 {
                site.add_callback(batch_id, claimed.row_id, "agent1", "siteadmin", "回访", 1_900_100_000, "代理测试")?;
                written += 1;
            }
        }
        Ok(written)
    })
    .await?
}

/// HQ-side writes: `n` priority changes of the batch (each a down-log entry).
async fn hub_writes(hub: Arc<hq_hub::store::Store>, scope: Arc<hq_hub::store::Scope>, batch_id: i64, n: u32) -> Result<()> {
    tokio::task::spawn_blocking(move || -> Result<()> {
        for i in 0..n {
            hub.set_priority(batch_id, 2 + i64::from(i % 90), &scope)?;
        }
        Ok(())
    })
    .await?
}

async fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> Result<bool>) -> Result<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if condition()? {
            return Ok(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("timed out after {limit:?} waiting until {what}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_stores_converge_through_loss_delay_and_a_partition() -> Result<()> {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("warn").try_init();
    let dir = tempfile::tempdir()?;
    let hub_dir = dir.path().join("hub");
    let site_dir = dir.path().join("site");
    let setup = sync_support::set_up_hub_in_process(&hub_dir, 200, dir.path()).await?;

    // Short timers so the partition kills the connection within the test's time.
    let tuning = LinkTuning {
        keep_alive: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(1500),
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(500),
        connect_timeout: Duration::from_secs(2),
    };
    let hub = Arc::new(hq_hub::store::Store::open(&hub_dir)?);
    let (_, admin) = hub.login("admin", &setup.admin_password)?;
    let scope = Arc::new(hq_hub::store::Scope::all(admin));
    let ca = Arc::new(sync_link::ca::HubCa::load_or_create(&hub_dir.join("ca"))?);
    let server =
        server::bind_tuned(ServerConfig { bind: SocketAddr::new(LOCALHOST, 0), ca }, hub.clone(), tuning.clone()).await?;
    let hub_addr = server.local_addr();
    let hub_shutdown = CancellationToken::new();
    let hub_task = tokio::spawn(server.run(hub_shutdown.clone()));
    let mut identity = client::enroll(&hub_addr.to_string(), &setup.code, &site_dir.join("identity")).await?;

    let relay = Relay::start(hub_addr).await?;
    relay.loss_percent.store(10, Ordering::SeqCst);
    relay.delay_ms.store(15, Ordering::SeqCst);
    identity.hub = relay.addr.to_string();

    let site = Arc::new(appliance::store::Store::open(&site_dir)?);
    site.create_extension("8001", "phone-8001")?;
    site.create_user("agent1", "agent-pass-1", Role::Agent, "坐席一", Some("8001"))?;
    let (status_tx, mut status) = tokio::sync::watch::channel(LinkStatus::Connecting);
    let site_shutdown = CancellationToken::new();
    let site_task = tokio::spawn(client::run_tuned(identity, site.clone(), status_tx, site_shutdown.clone(), tuning));

    let (hub_file, site_file) = (hub_db(&hub_dir), site_db(&site_dir));
    let site_id = setup.site_id;
    wait_until("the batch reaches the site through the lossy relay and checks out", Duration::from_secs(30), || {
        let conn = sync_support::read_only(&site_file)?;
        let verified: Option<i64> = conn
            .query_row("SELECT verified FROM batches WHERE batch_id = ?1", [setup.batch_id as i64], |r| r.get(0))
            .ok();
        Ok(verified == Some(1))
    })
    .await?;

    // Lossy: both sides write.
    let mut written = site_writes(site.clone(), setup.batch_id, 40).await?;
    ensure!(written == 60, "the site wrote {written} entries, not 60");
    hub_writes(hub.clone(), scope.clone(), setup.batch_id as i64, 20).await?;
    let mut controls = 20;
    wait_until("some site entries cross the lossy relay", Duration::from_secs(30), || {
        Ok(sync_state(&hub_file, &site_file, site_id)?.hub_applied >= 20)
    })
    .await?;

    // Full partition, long enough for both ends to declare the connection dead; both keep
    // writing meanwhile.
    relay.partitioned.store(true, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| matches!(s, LinkStatus::Offline { .. })))
        .await
        .context("the site notices the partition")??;
    let before = sync_state(&hub_file, &site_file, site_id)?;
    written += site_writes(site.clone(), setup.batch_id, 40).await?;
    hub_writes(hub.clone(), scope.clone(), setup.batch_id as i64, 15).await?;
    controls += 15;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let during = sync_state(&hub_file, &site_file, site_id)?;
    check_invariants(&during)?;
    ensure!(during.hub_applied == before.hub_applied, "nothing crosses a partition: {before:?} then {during:?}");
    ensure!(during.site_down_applied == before.site_down_applied, "nothing comes down a partition: {during:?}");

    // Heal, still lossy and slow: everything converges.
    relay.partitioned.store(false, Ordering::SeqCst);
    let healed = wait_until("everything converges after the partition heals", Duration::from_secs(60), || {
        let state = sync_state(&hub_file, &site_file, site_id)?;
        check_invariants(&state)?;
        Ok(state.converged())
    })
    .await?;
    let state = check_converged(&hub_file, &site_file, site_id)?;
    // Besides its own writes, the site reports each of HQ's control changes it applied
    // (`ControlApplied`), one outbox entry per change.
    ensure!(
        state.site_committed == u64::from(written + controls),
        "the site wrote {written} entries and applied {controls} controls: {state:?}"
    );
    ensure!(relay.dropped.load(Ordering::Relaxed) > 0, "the relay did drop datagrams");
    println!("converged {healed:?} after the heal: {state:?}");

    site_shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), site_task).await??;
    relay.task.abort();
    hub_shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), hub_task).await??;
    Ok(())
}
