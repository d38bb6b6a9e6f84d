//! A shared batch as one pool (issue 17) through the real path: a real hub, two appliances
//! enrolled over QUIC with mutual TLS (the second through a UDP relay the test cuts), a SIPp
//! carrier per site recording every number it is asked to ring, a SIPp phone and the demo's
//! agent at each desk. The test acts only as HQ's admin on the hub's API and as each site's
//! admin on its appliance's API; leases, returns and recalls travel the link.
//!
//! - Forty numbers shared by two sites, the second cut from HQ once it holds its first lease:
//!   the cut site dials only what it was leased, the other asks for more and gets the rest,
//!   and after the heal HQ holds one attempt per number, each number rung once in all.
//! - A lease's expiry over the link (a second scenario): twenty numbers whose leases last
//!   60 s (set on the dispatch). The cut site dials part of its lease and stops; its lease
//!   expires while it is away, and HQ keeps those numbers leased to it meanwhile, so the
//!   other site, dialing the rest of the pool, is never given them. Healed, the site's
//!   return gives back exactly what it did not dial, the other site is leased and dials
//!   that, and every number is dialed once.
//! - Twenty more: HQ recovers the first site's batch (批次数据回收), the site gives its
//!   numbers back before dialing any; HQ forces back the cut site's leases (flagged as away);
//!   healed, the site returns what it held, asks again, is leased the whole pool and dials
//!   it: every number rung once across both runs.

mod site_support;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, ensure};
use demo::setup::{Api, enroll_site};
use serde_json::{Value, json};
use site_support::enrolled::{Desk, EnrolledSite, import_and_dispatch};
use site_support::pool_checks::{attempts_per_number, hub_db, invited, leased_phones, pool};
use tests::{Sipp, UdpRelay, wait_for_some, wait_until};
use tokio_util::sync::CancellationToken;

const EXTENSION: &str = "8601";
const SIP_PASSWORD: &str = "phone-secret-8601";
const AGENT: &str = "pool-agent";
const AGENT_PASSWORD: &str = "agent-secret-8601";
const WAIT: Duration = Duration::from_secs(90);

/// One box: running, its admin signed in, an agent with a registered phone.
struct Site {
    appliance: appliance::Appliance,
    url: String,
    admin: Api,
    carrier_port: u16,
    _phone: Sipp,
}

impl Site {
    async fn start(dir: &Path, shutdown: &CancellationToken) -> anyhow::Result<Site> {
        let desk = Desk { extension: EXTENSION, sip_password: SIP_PASSWORD, agent: AGENT, agent_password: AGENT_PASSWORD, name: "小池" };
        let site = EnrolledSite::start(dir, shutdown, 2, &desk, 1).await?;
        Ok(Site { appliance: site.appliance, url: site.url, admin: site.admin, carrier_port: site.carrier_port, _phone: site.phone })
    }

    /// The site's batch named `name`, once it has arrived.
    async fn batch(&self, name: &str) -> anyhow::Result<u64> {
        wait_for_some(WAIT, || async {
            let tasks: Vec<Value> = self.admin.get("/api/tasks").await.ok()?;
            tasks.iter().find(|t| t["name"] == json!(name) && t["status"] != json!("receiving")).and_then(|t| t["batch_id"].as_u64())
        })
        .await
        .with_context(|| format!("batch {name} reaches the site"))
    }

    /// Undialed numbers the site holds under open leases of `batch`.
    fn held(&self, batch: u64) -> u64 {
        self.appliance.store.open_leases(batch).map(|l| l.iter().map(|(_, held, _)| held).sum()).unwrap_or(0)
    }

    async fn start_task(&self, batch: u64) -> anyhow::Result<()> {
        let body = json!({"ratio": 1, "max_concurrency": 2, "ring_seconds": 5, "dial_mode": "predictive", "cool_down": 0});
        self.admin.post::<Value>(&format!("/api/tasks/{batch}/start"), &body).await?;
        Ok(())
    }

    async fn stop_task(&self, batch: u64) -> anyhow::Result<()> {
        self.admin.post::<Value>(&format!("/api/tasks/{batch}/stop"), &json!({})).await?;
        Ok(())
    }

    fn agent(&self, desk: CancellationToken) -> tokio::task::JoinHandle<anyhow::Result<()>> {
        let config = demo::agent::AgentConfig {
            appliance_url: self.url.clone(),
            username: AGENT.into(),
            password: AGENT_PASSWORD.into(),
            wrap_up: (Duration::from_millis(100), Duration::from_millis(200)),
        };
        tokio::spawn(demo::agent::run_agent(config, desk))
    }

    /// A busy carrier for `calls` numbers, recording each INVITE.
    fn carrier(&self, calls: u32) -> anyhow::Result<Sipp> {
        Sipp::scenario("carrier_busy.xml").local_port(self.carrier_port).calls(calls).trace_messages().timeout(Duration::from_secs(120)).spawn()
    }

    async fn link(&self) -> String {
        let status: Option<Value> = self.admin.get("/api/status").await.ok();
        status.and_then(|s| s["link"]["state"].as_str().map(str::to_string)).unwrap_or_default()
    }
}

/// Imports `phones` into the project and dispatches them as one shared batch to `sites`.
async fn dispatch(hq: &Api, dir: &Path, project_id: u64, name: &str, phones: &[String], sites: &[u64]) -> anyhow::Result<()> {
    import_and_dispatch(hq, dir, project_id, name, phones, json!({"priority": 50, "site_ids": sites})).await?;
    Ok(())
}

/// HQ with two boxes enrolled: `near` on the link directly, `far` through a relay the test
/// cuts; a sub-project both take part in.
struct TwoSites {
    _dir: tempfile::TempDir,
    hub_dir: std::path::PathBuf,
    shutdown: CancellationToken,
    _hub: hq_hub::Hub,
    hq: Api,
    relay: UdpRelay,
    near_id: u64,
    far_id: u64,
    project_id: u64,
    near: Site,
    far: Site,
}

impl TwoSites {
    async fn start() -> anyhow::Result<TwoSites> {
        let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("info,quinn=warn,rustls=warn").try_init();
        let dir = tempfile::tempdir()?;
        let hub_dir = dir.path().join("hub");
        let shutdown = CancellationToken::new();
        let (hub, hq_password) = tests::start_hub(&hub_dir, shutdown.clone()).await?;
        let hq = Api::login(&format!("http://{}", hub.http_addr), "admin", &hq_password).await?;
        let relay = UdpRelay::start(hub.sync_addr).await?;
        let near_id = enroll_site(&hq, "近职场", &dir.path().join("near"), hub.sync_addr).await?;
        let far_id = enroll_site(&hq, "远职场", &dir.path().join("far"), relay.addr).await?;
        let category: Value = hq.post("/api/categories", &json!({"name": "共享类"})).await?;
        let project: Value = hq.post("/api/projects", &demo::setup::demo_project(category["id"].as_u64().context("category")?)).await?;
        let project_id = project["id"].as_u64().context("project")?;
        let near = Site::start(&dir.path().join("near"), &shutdown).await?;
        let far = Site::start(&dir.path().join("far"), &shutdown).await?;
        Ok(TwoSites { _dir: dir, hub_dir, shutdown, _hub: hub, hq, relay, near_id, far_id, project_id, near, far })
    }

    /// Cuts the far site from HQ (`true`) or heals it.
    async fn cut_far(&self, cut: bool) -> anyhow::Result<()> {
        self.relay.partitioned.store(cut, Ordering::SeqCst);
        if cut {
            wait_until(WAIT, || async { self.far.link().await == "offline" }).await.context("the far site sees the cut")?;
        }
        Ok(())
    }
}

impl Drop for TwoSites {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_batch_is_dialed_once_across_two_sites_one_of_them_offline_then_recovered_and_reclaimed() -> anyhow::Result<()> {
    let two = TwoSites::start().await?;
    let TwoSites { hub_dir, hq, relay, near_id, far_id, project_id, near, far, .. } = &two;
    let (hub_dir, hq, relay, near, far) = (hub_dir.as_path(), hq, relay, near, far);
    let (near_id, far_id, project_id) = (*near_id, *far_id, *project_id);

    // Forty numbers for both sites: each is leased a first block (a quarter of the pool),
    // the rest stays at HQ for whoever asks first.
    let first: Vec<String> = (0..40).map(|n| format!("1392000{n:04}")).collect();
    dispatch(hq, hub_dir, project_id, "共享首批", &first, &[near_id, far_id]).await?;
    let (near_batch, far_batch) = (near.batch("共享首批").await?, far.batch("共享首批").await?);
    wait_until(WAIT, || async { near.held(near_batch) == 10 && far.held(far_batch) == 10 }).await.context("each site holds its first lease")?;
    let view = pool(hq, near_batch).await?;
    ensure!(view["pooled"] == json!(20) && view["leased"] == json!(20), "{view}");
    ensure!(
        near.appliance.store.customers(&appliance::store::Viewer { username: "t".into(), unmask: true }, None, None, None, 100)?.is_empty(),
        "a pooled batch's numbers are not shown at the site before they are dialed"
    );

    // The far site is cut from HQ, then both dial.
    relay.partitioned.store(true, Ordering::SeqCst);
    wait_until(WAIT, || async { far.link().await == "offline" }).await.context("the far site sees the cut")?;
    let (near_carrier, far_carrier) = (near.carrier(30)?, far.carrier(10)?);
    let desk = CancellationToken::new();
    let agents = [near.agent(desk.clone()), far.agent(desk.clone())];
    near.start_task(near_batch).await?;
    far.start_task(far_batch).await?;
    let (near_rung, far_rung) = (invited(&near_carrier.wait(Duration::from_secs(120)).await), invited(&far_carrier.wait(Duration::from_secs(120)).await));
    ensure!(near_rung.len() == 30 && far_rung.len() == 10, "near rang {near_rung:?}, far rang {far_rung:?}");
    let far_leased = leased_phones(hub_dir, far_batch)?;
    ensure!(far_rung.iter().all(|p| far_leased.contains(p)), "the cut site dialed only what it held: {far_rung:?} of {far_leased:?}");
    near.stop_task(near_batch).await?;
    far.stop_task(far_batch).await?;
    desk.cancel();
    for agent in agents {
        agent.await??;
    }

    // Healed: HQ holds one attempt per number, and every number was rung once in all.
    relay.partitioned.store(false, Ordering::SeqCst);
    wait_until(WAIT, || async { attempts_per_number(hub_dir, &[near_batch, far_batch]).is_ok_and(|c| c.len() == 40) })
        .await
        .context("every attempt reaches HQ")?;
    let counts = attempts_per_number(hub_dir, &[near_batch, far_batch])?;
    ensure!(counts.values().all(|&n| n == 1), "each number dialed once: {counts:?}");
    let mut rung: Vec<String> = near_rung.iter().chain(&far_rung).cloned().collect();
    rung.sort();
    ensure!(rung == first, "the carriers rang each number once: {rung:?}");
    wait_until(WAIT, || async { pool(hq, near_batch).await.is_ok_and(|v| v["dialed"] == json!(40)) }).await.context("HQ's pool is all dialed")?;

    // Twenty more, neither task running. HQ recovers the near site's batch: the site gives
    // back its block before dialing any of it.
    let second: Vec<String> = (0..20).map(|n| format!("1392100{n:04}")).collect();
    dispatch(hq, hub_dir, project_id, "共享次批", &second, &[near_id, far_id]).await?;
    let (near_second, far_second) = (near.batch("共享次批").await?, far.batch("共享次批").await?);
    wait_until(WAIT, || async { near.held(near_second) == 5 && far.held(far_second) == 5 }).await.context("first leases of the second batch")?;
    hq.post::<Value>(&format!("/api/batches/{near_second}/recover"), &json!({})).await?;
    wait_until(WAIT, || async {
        pool(hq, near_second).await.is_ok_and(|v| v["pooled"] == json!(15) && v["sites"][0]["returned"] == json!(5) && v["sites"][0]["recalled"] == json!(true))
    })
    .await
    .context("the near site gives its block back")?;
    ensure!(near.held(near_second) == 0, "the near site holds none of it");

    // The far site is cut again and stays away: HQ flags it and forces its lease back.
    relay.partitioned.store(true, Ordering::SeqCst);
    wait_until(WAIT, || async { pool(hq, far_second).await.is_ok_and(|v| v["sites"][1]["flagged"] == json!(true)) })
        .await
        .context("HQ flags the site away with a lease")?;
    let reclaimed: Value = hq.post(&format!("/api/batches/{far_second}/reclaim"), &json!({})).await?;
    ensure!(reclaimed["returned"] == json!(5), "{reclaimed}");
    ensure!(pool(hq, far_second).await?["pooled"] == json!(20), "the whole batch is back in the pool");

    // Healed: the far site returns what it held (none dialed), asks again and is leased the
    // pool, which it dials; nothing of it is dialed twice.
    let far_carrier = far.carrier(20)?;
    relay.partitioned.store(false, Ordering::SeqCst);
    wait_until(WAIT, || async { far.held(far_second) == 20 }).await.context("the healed site is leased the whole pool")?;
    let desk = CancellationToken::new();
    let agent = far.agent(desk.clone());
    far.start_task(far_second).await?;
    let far_rung = invited(&far_carrier.wait(Duration::from_secs(120)).await);
    desk.cancel();
    agent.await??;
    let mut rung = far_rung.clone();
    rung.sort();
    ensure!(rung == second, "the far site rang the second batch once: {far_rung:?}");
    wait_until(WAIT, || async { attempts_per_number(hub_dir, &[near_second, far_second]).is_ok_and(|c| c.len() == 20) })
        .await
        .context("the second batch's attempts reach HQ")?;
    ensure!(attempts_per_number(hub_dir, &[near_second, far_second])?.values().all(|&n| n == 1), "each number dialed once");
    let view = pool(hq, far_second).await?;
    ensure!(view["dialed"] == json!(20) && view["sites"][1]["dialed_twice"] == json!(0), "{view}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_back_after_its_lease_expired_hands_back_what_it_did_not_dial() -> anyhow::Result<()> {
    let two = TwoSites::start().await?;
    let (hq, hub_dir, near, far) = (&two.hq, two.hub_dir.as_path(), &two.near, &two.far);
    let phones: Vec<String> = (0..20).map(|n| format!("1392200{n:04}")).collect();
    let lease = json!({"priority": 50, "site_ids": [two.near_id, two.far_id], "lease_lifetime_s": 60, "min_block": 5, "lease_hours": 0.1});
    import_and_dispatch(hq, hub_dir, two.project_id, "限时批", &phones, lease).await?;
    let (near_batch, far_batch) = (near.batch("限时批").await?, far.batch("限时批").await?);
    wait_until(WAIT, || async { near.held(near_batch) == 5 && far.held(far_batch) == 5 }).await.context("each site holds a first lease of 5")?;
    let far_lease = far.appliance.store.open_leases(far_batch)?[0];
    ensure!(far_lease.2 - hq_hub::store::now_unix() <= 60, "the dispatch's lifetime: {far_lease:?}");

    // Cut off, the far site dials part of its lease and stops: one call at a time, each
    // ringing out for 5 s at a carrier that never answers, stopped once the first is placed.
    two.cut_far(true).await?;
    let far_carrier = Sipp::scenario("carrier_noanswer.xml").local_port(far.carrier_port).calls(5).trace_messages().timeout(Duration::from_secs(120)).spawn()?;
    let desk = CancellationToken::new();
    let far_agent = far.agent(desk.clone());
    let one_at_a_time = json!({"ratio": 1, "max_concurrency": 1, "ring_seconds": 5, "dial_mode": "predictive", "cool_down": 0});
    far.admin.post::<Value>(&format!("/api/tasks/{far_batch}/start"), &one_at_a_time).await?;
    wait_until(WAIT, || async { far.held(far_batch) <= 4 }).await.context("the far site dials some of its lease")?;
    far.stop_task(far_batch).await?;
    // Whatever was ringing ends; then the lease expires at the site, still offline.
    wait_until(WAIT, || async { far.appliance.store.open_leases(far_batch).is_ok_and(|l| l.is_empty()) })
        .await
        .context("the lease expires at the cut site")?;
    let far_offline = invited(&far_carrier.wait(Duration::from_secs(2)).await);
    ensure!((1..5).contains(&far_offline.len()), "the far site dialed part of its lease: {far_offline:?}");

    // Meanwhile the near site dials the rest of the pool; HQ never leases it the far site's
    // numbers, expired or not, while the far site has not said what it dialed.
    let far_leased = leased_phones(hub_dir, far_batch)?;
    let near_carrier = near.carrier(20)?;
    let near_agent = near.agent(desk.clone());
    near.start_task(near_batch).await?;
    wait_until(WAIT, || async { pool(hq, near_batch).await.is_ok_and(|v| v["pooled"] == json!(0) && v["sites"][0]["leased"] == json!(0)) })
        .await
        .context("the near site dials all it can get")?;
    let near_leased: std::collections::BTreeSet<String> = leased_phones(hub_dir, near_batch)?.into_iter().collect();
    ensure!(near_leased.len() == 15 && near_leased.iter().all(|p| !far_leased.contains(p)), "none of the far site's lease went to the near site while it was away");
    ensure!(pool(hq, far_batch).await?["sites"][1]["leased"] == json!(5), "HQ holds the expired lease for the far site until it answers");

    // Healed: the return gives back exactly the undialed numbers, which go back to the pool
    // and are dialed (by whichever site asks first); nothing is dialed twice.
    let far_carrier = far.carrier(20)?;
    far.start_task(far_batch).await?;
    two.cut_far(false).await?;
    wait_until(WAIT, || async { attempts_per_number(hub_dir, &[near_batch, far_batch]).is_ok_and(|c| c.len() == 20) })
        .await
        .context("every number is dialed in the end")?;
    let (near_rung, far_online) = (invited(&near_carrier.wait(Duration::from_secs(3)).await), invited(&far_carrier.wait(Duration::from_secs(3)).await));
    desk.cancel();
    far_agent.await??;
    near_agent.await??;
    let counts = attempts_per_number(hub_dir, &[near_batch, far_batch])?;
    ensure!(counts.values().all(|&n| n == 1), "each number dialed once: {counts:?}");
    let mut rung: Vec<String> = near_rung.iter().chain(&far_offline).chain(&far_online).cloned().collect();
    rung.sort();
    ensure!(rung == phones, "the carriers rang each number once: near {near_rung:?}, far {far_offline:?} then {far_online:?}");
    let returned: (u64, u64, u64) = hub_db(hub_dir)?.query_row("SELECT dialed, returned, dialed_twice FROM leases WHERE id = ?1", [far_lease.0], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?;
    ensure!(
        returned == (far_offline.len() as u64, 5 - far_offline.len() as u64, 0),
        "the expired lease's return: dialed {}, gave back the rest: {returned:?}",
        far_offline.len()
    );
    Ok(())
}
