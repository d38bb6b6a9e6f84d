//! A box restored from a backup taken an hour of calls ago, against the real hub over the
//! real link (QUIC with mutual TLS, both real SQLite stores).
//!
//! The box syncs its morning calls, is backed up while it runs (`appliance::backup`, SQLite's
//! online backup), makes an hour of calls that HQ receives (through the store, as the dialer
//! writes them) and gets a change from HQ; then its disk "dies" and the backup is restored.
//! Before it reconnects it makes a few calls of its own. Once online again:
//! - HQ detected the rollback (the `site_rollback` alarm: the hello's down position is
//!   behind what the site had acknowledged) and sent the down log after it again;
//! - nothing HQ had is lost or overwritten: every attempt of the lost hour is still there
//!   as it was, and the new calls were numbered past them (no `up_conflict` alarm: no
//!   outbox seq came twice with other content);
//! - nothing is applied twice: HQ's entries of the epoch are 1..=N without a hole or a
//!   double, and hold every attempt once.

mod sync_support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use appliance::store::{AttemptEnd, Store as SiteStore};
use sync_link::HubStore;
use sync_link::client::{self, LinkStatus};
use sync_link::server::{self, ServerConfig};
use sync_protocol::Outcome;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use sync_support::{LOCALHOST, hub_db, read_only, set_up_hub_in_process, site_db};

/// Dials `n` numbers of the batch and ends them, one a minute from `from` (unix seconds).
fn make_calls(site: &SiteStore, batch_id: u64, n: usize, from: i64) -> Result<Vec<u64>> {
    let claimed = site.claim_next_numbers_at(batch_id, n, from)?;
    ensure!(claimed.len() == n, "only {} numbers to dial", claimed.len());
    for (i, call) in claimed.iter().enumerate() {
        let outcome = if i % 3 == 0 { Outcome::Busy } else { Outcome::NoAnswer };
        let end = AttemptEnd { outcome, hangup_side: None, ended_at: from + 60 * i as i64 + 30, recording_path: None, recording_sha256: None };
        site.finish_attempt(call.attempt_id, &end)?;
    }
    Ok(claimed.iter().map(|c| c.attempt_id).collect())
}

async fn wait_for(what: &str, mut done: impl FnMut() -> Result<bool>) -> Result<()> {
    for _ in 0..300 {
        if done()? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{what} within 30 s")
}

struct Link {
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

fn connect(site_dir: &Path, site: Arc<SiteStore>) -> Result<Link> {
    let identity = client::SiteIdentity::load(&appliance::sync::identity_dir(site_dir))?;
    let (status, _) = tokio::sync::watch::channel(LinkStatus::Connecting);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(client::run(identity, site, status, shutdown.clone()));
    Ok(Link { shutdown, task })
}

impl Link {
    async fn stop(self) -> Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task).await.context("the link stops")??;
        Ok(())
    }
}

/// HQ's attempts of the site, as rows of text.
fn hq_attempts(hub_dir: &Path, site_id: u64) -> Result<Vec<(u64, String)>> {
    let conn = read_only(&hub_db(hub_dir))?;
    let mut stmt = conn.prepare(
        "SELECT attempt_id, batch_id || '/' || row_id || '/' || started_at || '/' || ended_at || '/' || outcome
         FROM call_attempts WHERE site_id = ?1 ORDER BY attempt_id",
    )?;
    let rows = stmt.query_map([site_id as i64], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))?.collect::<Result<_, _>>()?;
    Ok(rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_restored_from_an_hour_old_backup_converges_with_hq() -> Result<()> {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("warn").try_init();
    let dir = tempfile::tempdir()?;
    let (hub_dir, site_dir, backup_dir) = (dir.path().join("hub"), dir.path().join("site"), dir.path().join("backup"));
    let setup = set_up_hub_in_process(&hub_dir, 120, dir.path()).await?;
    let hub = Arc::new(hq_hub::store::Store::open(&hub_dir)?);
    let ca = Arc::new(sync_link::ca::HubCa::load_or_create(&hub_dir.join("ca"))?);
    let server = server::bind(ServerConfig { bind: SocketAddr::new(LOCALHOST, 0), ca }, hub.clone()).await?;
    let addr = server.local_addr();
    let hub_shutdown = CancellationToken::new();
    let hub_task = tokio::spawn(server.run(hub_shutdown.clone()));
    client::enroll(&addr.to_string(), &setup.code, &appliance::sync::identity_dir(&site_dir)).await?;

    let site = Arc::new(SiteStore::open(&site_dir)?);
    let epoch = site.epoch();
    let link = connect(&site_dir, site.clone())?;
    let synced = |site: &SiteStore| -> Result<bool> {
        let committed = hub.up_committed(setup.site_id, epoch)?.unwrap_or(0);
        let down_len = hub.down_log(setup.site_id as i64, 0, 100_000)?.last().map_or(0, |e| e.seq);
        Ok(site.outbox_len()? == 0 && committed > 0 && site.down_applied()? == down_len)
    };
    let site_conn = read_only(&site_db(&site_dir))?;
    wait_for("the batch reaches the box", || {
        let verified: Option<i64> = site_conn
            .query_row("SELECT verified FROM batches WHERE batch_id = ?1", [setup.batch_id as i64], |r| r.get(0))
            .ok();
        Ok(verified == Some(1))
    })
    .await?;
    drop(site_conn);
    let morning = appliance::store::now_unix();
    make_calls(&site, setup.batch_id, 10, morning)?;
    wait_for("the morning at HQ", || synced(&site)).await?;

    // Backed up while the box runs; then an hour of calls and a change from HQ.
    let backed_up = appliance::backup::backup(&site_dir, &backup_dir)?;
    make_calls(&site, setup.batch_id, 60, morning + 600)?;
    hub.set_link_settings(Some(262_144), "admin")?;
    wait_for("the hour at HQ", || synced(&site)).await?;
    let before = hq_attempts(&hub_dir, setup.site_id)?;
    let held_before = hub.up_committed(setup.site_id, epoch)?.unwrap_or(0) as i64;
    ensure!(before.len() == 70, "HQ holds {} attempts", before.len());
    link.stop().await?;
    drop(site);

    // The disk dies; the box comes back from the backup and calls before reconnecting.
    let restored = appliance::backup::restore(&backup_dir, &site_dir)?;
    ensure!(restored.outbox_seq == backed_up.outbox_seq && restored.identity);
    let site = Arc::new(SiteStore::open(&site_dir)?);
    ensure!(site.epoch() == epoch, "the restored store keeps its epoch");
    let offline = make_calls(&site, setup.batch_id, 5, morning + 4_200)?;
    ensure!(offline.iter().all(|&id| id > appliance::store::ID_GAP as u64), "new attempts numbered past the lost hour: {offline:?}");
    let link = connect(&site_dir, site.clone())?;
    wait_for("the restored box converges", || synced(&site)).await?;
    link.stop().await?;

    let alarms = hub.list_alarms()?;
    ensure!(alarms.iter().any(|a| a.kind == "site_rollback" && a.site_id == Some(setup.site_id as i64)), "{alarms:?}");
    ensure!(!alarms.iter().any(|a| a.kind == "up_conflict"), "{alarms:?}");
    let after = hq_attempts(&hub_dir, setup.site_id)?;
    let kept: Vec<_> = after.iter().filter(|(id, _)| *id < appliance::store::ID_GAP as u64).cloned().collect();
    ensure!(kept == before, "HQ's attempts of the lost hour changed");
    let new: Vec<u64> = after.iter().map(|(id, _)| *id).filter(|id| *id > appliance::store::ID_GAP as u64).collect();
    ensure!(new == offline, "HQ holds {new:?} of the calls made after the restore, the box made {offline:?}");
    let hub_conn = read_only(&hub_db(&hub_dir))?;
    let (count, max): (i64, i64) = hub_conn.query_row(
        "SELECT COUNT(*), MAX(seq) FROM up_applied WHERE site_id = ?1 AND epoch = ?2",
        rusqlite::params![setup.site_id as i64, epoch as i64],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    ensure!(count == max && count == held_before + 5, "HQ applied {count} entries up to seq {max}, held {held_before} before");
    // The change HQ made after the backup reached the restored box again.
    let settings = site.stored_link_settings()?.context("link settings")?;
    ensure!(settings.recording_upload_bytes_per_sec == Some(262_144), "{settings:?}");

    hub_shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), hub_task).await.context("hub link stops")??;
    Ok(())
}
