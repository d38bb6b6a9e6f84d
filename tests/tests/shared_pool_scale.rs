//! A shared batch at scale (issue 17): 10,000 numbers dispatched as one pool to three real
//! appliances enrolled over QUIC with mutual TLS, one of them behind a UDP relay that is cut
//! once it holds its first lease and stays cut while the others dial the pool dry. Each
//! site's SIPp carrier answers every call at once with 486 busy (a dial attempt all the same),
//! so the run is as fast as the boxes dial; each carrier records every number it is asked
//! to ring.
//!
//! After the heal, from HQ's store: every number has exactly one attempt across the three
//! sites' batches, the pool is all dialed and counts none twice; the cut site dialed only
//! numbers HQ had leased it; and the carriers rang each number once in all.
//!
//! The benchmark (`docs/benchmarks.md`) is the second test: the three boxes all on the link
//! dial one pool; it samples each box every 100 ms while HQ still has numbers to lease (a box
//! with no number to dial and no call placed is waiting for a lease), and counts the lease
//! traffic: the grants in HQ's down logs (frames and their encoded bytes), the requests and
//! returns HQ applied (frames). 3,000 numbers by default, `OUTPOST_POOL_BENCH_NUMBERS`
//! sets another size. Run alone (both print their figures):
//!
//! ```text
//! cargo test -p tests --test shared_pool_scale -- --nocapture --test-threads 1
//! ```

mod site_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use demo::setup::{Api, enroll_site};
use serde_json::{Value, json};
use site_support::enrolled::{Desk, EnrolledSite, import_and_dispatch};
use site_support::pool_checks::{attempts_per_number, hub_db, invited, pool};
use tests::{Sipp, UdpRelay, wait_for_some, wait_until};
use tokio_util::sync::CancellationToken;

const NUMBERS: usize = 10_000;
/// The cut site's first lease: all it may dial while away.
const FIRST_BLOCK: u64 = 500;
const LINES: u32 = 30;
const AGENT_PASSWORD: &str = "agent-secret-8701";
const WAIT: Duration = Duration::from_secs(240);

/// One box of the three: enrolled, its agent, its batch of the pool, its carrier.
struct Box3 {
    dir: std::path::PathBuf,
    site: EnrolledSite,
    agent: String,
    batch: u64,
    carrier: Option<Sipp>,
}

impl Box3 {
    async fn start(dir: &Path, shutdown: &CancellationToken, n: usize) -> anyhow::Result<Box3> {
        let (extension, sip_password, agent) = (format!("870{n}"), format!("phone-secret-870{n}"), format!("scale-agent-{n}"));
        let desk = Desk { extension: &extension, sip_password: &sip_password, agent: &agent, agent_password: AGENT_PASSWORD, name: "小量" };
        let site = EnrolledSite::start(dir, shutdown, LINES, &desk, 1).await?;
        Ok(Box3 { dir: dir.to_path_buf(), site, agent, batch: 0, carrier: None })
    }

    async fn arrived(&mut self, name: &str) -> anyhow::Result<()> {
        let admin = &self.site.admin;
        self.batch = wait_for_some(WAIT, || async {
            let tasks: Vec<Value> = admin.get("/api/tasks").await.ok()?;
            tasks.iter().find(|t| t["name"] == json!(name) && t["status"] != json!("receiving")).and_then(|t| t["batch_id"].as_u64())
        })
        .await
        .with_context(|| format!("batch {name} reaches the site"))?;
        Ok(())
    }

    fn held(&self) -> u64 {
        self.site.appliance.store.open_leases(self.batch).map(|l| l.iter().map(|(_, held, _)| held).sum()).unwrap_or(0)
    }

    /// Nothing to dial: no undialed number held and no call placed.
    fn idle(&self) -> bool {
        let dialing = rusqlite::Connection::open_with_flags(self.dir.join("site.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|db| db.query_row("SELECT COUNT(*) FROM attempts WHERE state = 'dialing'", [], |r| r.get::<_, i64>(0)));
        self.held() == 0 && dialing.is_ok_and(|n| n == 0)
    }

    /// Its carrier (busy at once, every INVITE traced), its agent at the desk, its task
    /// running at up to ten calls for the free agent, as many as its lines take.
    async fn dial(&mut self, desk: &CancellationToken) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
        let carrier = Sipp::scenario("carrier_busy.xml")
            .local_port(self.site.carrier_port)
            .calls(NUMBERS as u32)
            .trace_messages()
            .timeout(Duration::from_secs(900))
            .spawn()?;
        self.carrier = Some(carrier);
        let config = demo::agent::AgentConfig {
            appliance_url: self.site.url.clone(),
            username: self.agent.clone(),
            password: AGENT_PASSWORD.into(),
            wrap_up: (Duration::from_millis(50), Duration::from_millis(100)),
        };
        let agent = tokio::spawn(demo::agent::run_agent(config, desk.clone()));
        let body = json!({"ratio": 10, "max_concurrency": LINES, "ring_seconds": 5, "dial_mode": "predictive", "cool_down": 0});
        self.site.admin.post::<Value>(&format!("/api/tasks/{}/start", self.batch), &body).await?;
        Ok(agent)
    }

    /// What its carrier rang (the carrier is stopped).
    async fn rung(&mut self) -> Vec<String> {
        match self.carrier.take() {
            Some(carrier) => invited(&carrier.wait(Duration::from_secs(3)).await),
            None => Vec::new(),
        }
    }
}

/// HQ with three boxes enrolled (the third through a relay the test may cut), `phones`
/// imported and dispatched as one shared batch `name` to the three, each box holding its
/// first lease of `FIRST_BLOCK` numbers.
async fn three_sites(dir: &Path, shutdown: &CancellationToken, phones: &[String], name: &str) -> anyhow::Result<(hq_hub::Hub, Api, UdpRelay, Vec<Box3>)> {
    let (hub, hq_password) = tests::start_hub(&dir.join("hub"), shutdown.clone()).await?;
    let hq = Api::login(&format!("http://{}", hub.http_addr), "admin", &hq_password).await?;
    let relay = UdpRelay::start(hub.sync_addr).await?;
    let mut ids = Vec::new();
    for (n, site) in ["甲职场", "乙职场", "丙职场"].into_iter().enumerate() {
        let via = if n == 2 { relay.addr } else { hub.sync_addr };
        ids.push(enroll_site(&hq, site, &dir.join(format!("site{n}")), via).await?);
    }
    let category: Value = hq.post("/api/categories", &json!({"name": "规模类"})).await?;
    let project: Value = hq.post("/api/projects", &demo::setup::demo_project(category["id"].as_u64().context("category")?)).await?;
    let project_id = project["id"].as_u64().context("project")?;
    let mut boxes = Vec::new();
    for n in 0..3 {
        boxes.push(Box3::start(&dir.join(format!("site{n}")), shutdown, n).await?);
    }
    let lease = json!({"priority": 50, "site_ids": ids, "min_block": FIRST_BLOCK, "lease_hours": 0.2});
    import_and_dispatch(&hq, dir, project_id, name, phones, lease).await?;
    for site in &mut boxes {
        site.arrived(name).await?;
    }
    wait_until(WAIT, || async { boxes.iter().all(|b| b.held() == FIRST_BLOCK) }).await.context("each site holds its first lease")?;
    Ok((hub, hq, relay, boxes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_numbers_are_dialed_once_across_three_sites_one_cut_off_throughout() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("warn,quinn=warn,rustls=warn").try_init();
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let hub_dir = dir.path().join("hub");
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let phones: Vec<String> = (0..NUMBERS).map(|n| format!("1393{n:07}")).collect();
    let (_hub, hq, relay, mut boxes) = three_sites(dir.path(), &shutdown, &phones, "万号共享").await?;
    let cut_batch = boxes[2].batch;

    // The third site is cut from HQ for the whole run; all three dial.
    relay.partitioned.store(true, Ordering::SeqCst);
    let admin = &boxes[2].site.admin;
    wait_until(WAIT, || async {
        let status: Option<Value> = admin.get("/api/status").await.ok();
        status.is_some_and(|s| s["link"]["state"] == json!("offline"))
    })
    .await
    .context("the cut site sees the cut")?;
    let set_up = started.elapsed();
    let desk = CancellationToken::new();
    let mut agents = Vec::new();
    for site in &mut boxes {
        agents.push(site.dial(&desk).await?);
    }
    let dialing = Instant::now();
    let online = [boxes[0].batch, boxes[1].batch];
    wait_until(Duration::from_secs(600), || async {
        pool(&hq, online[0]).await.is_ok_and(|v| v["pooled"] == json!(0) && v["leased"] == json!(FIRST_BLOCK))
    })
    .await
    .context("the two sites on the link dial the pool dry but for the cut site's lease")?;
    let cut = &boxes[2];
    wait_until(WAIT, || async { cut.held() == 0 }).await.context("the cut site dials its lease")?;
    let dialed_in = dialing.elapsed();

    // Healed: the cut site's attempts reach HQ.
    relay.partitioned.store(false, Ordering::SeqCst);
    let all: Vec<u64> = boxes.iter().map(|b| b.batch).collect();
    wait_until(WAIT, || async { attempts_per_number(&hub_dir, &all).is_ok_and(|c| c.len() == NUMBERS) })
        .await
        .context("every number's attempt reaches HQ")?;
    let synced_in = dialing.elapsed();
    desk.cancel();
    for agent in agents {
        agent.await??;
    }
    let counts = attempts_per_number(&hub_dir, &all)?;
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    ensure!(twice.is_empty(), "each number dialed once: {twice:?}");
    let view = pool(&hq, all[0]).await?;
    ensure!(view["dialed"] == json!(NUMBERS) && view["pooled"] == json!(0) && view["leased"] == json!(0), "{view}");
    let sites = view["sites"].as_array().context("sites")?;
    ensure!(sites.iter().all(|s| s["dialed_twice"] == json!(0)), "none counted twice: {view}");
    // 号码总数 on the batch list: the three sites' batches count each number once between them.
    let listed: Vec<Value> = hq.get("/api/batches").await?;
    let numbers: i64 = listed.iter().filter(|b| all.contains(&b["id"].as_u64().unwrap_or(0))).filter_map(|b| b["numbers"].as_i64()).sum();
    ensure!(numbers == NUMBERS as i64, "the batch list counts {numbers} numbers for the pool of {NUMBERS}");

    // The carriers: each number rung once in all, the cut site only what HQ leased it.
    let mut rung = Vec::new();
    for site in &mut boxes {
        rung.push(site.rung().await);
    }
    let cut_leased: BTreeSet<String> = {
        let db = hub_db(&hub_dir)?;
        let mut statement = db.prepare("SELECT phone FROM batch_rows WHERE batch_id = ?1")?;
        statement.query_map([cut_batch], |r| r.get(0))?.collect::<Result<_, _>>()?
    };
    ensure!(rung[2].len() as u64 == FIRST_BLOCK, "the cut site dialed its lease: {} numbers", rung[2].len());
    ensure!(rung[2].iter().all(|p| cut_leased.contains(p)), "the cut site dialed only numbers it held leases for");
    let mut all_rung: Vec<String> = rung.concat();
    all_rung.sort();
    ensure!(all_rung == phones, "the carriers rang each number once ({} rings)", all_rung.len());
    eprintln!(
        "shared pool at scale: set-up {:.1} s, dialed in {:.1} s, every attempt at HQ after {:.1} s, sites {:?} numbers, total {:.1} s",
        set_up.as_secs_f64(),
        dialed_in.as_secs_f64(),
        synced_in.as_secs_f64(),
        rung.iter().map(Vec::len).collect::<Vec<_>>(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_sites_on_the_link_dial_one_pool_with_the_lease_traffic_measured() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("warn,quinn=warn,rustls=warn").try_init();
    let n: usize = std::env::var("OUTPOST_POOL_BENCH_NUMBERS").ok().and_then(|v| v.parse().ok()).unwrap_or(3_000);
    let dir = tempfile::tempdir()?;
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let phones: Vec<String> = (0..n).map(|i| format!("1394{i:07}")).collect();
    let (hub, hq, _relay, mut boxes) = three_sites(dir.path(), &shutdown, &phones, "测速共享").await?;
    let desk = CancellationToken::new();
    let mut agents = Vec::new();
    for site in &mut boxes {
        agents.push(site.dial(&desk).await?);
    }
    let dialing = Instant::now();
    let (mut samples, mut waiting) = (0u64, [0u64; 3]);
    while dialing.elapsed() < Duration::from_secs(600) {
        let view = pool(&hq, boxes[0].batch).await?;
        if view["pooled"] == json!(0) {
            break;
        }
        samples += 1;
        for (i, site) in boxes.iter().enumerate() {
            waiting[i] += u64::from(site.idle());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pool_leased_in = dialing.elapsed();
    let all: Vec<u64> = boxes.iter().map(|b| b.batch).collect();
    let hub_dir = dir.path().join("hub");
    wait_until(Duration::from_secs(600), || async { attempts_per_number(&hub_dir, &all).is_ok_and(|c| c.len() == n) })
        .await
        .context("every number's attempt reaches HQ")?;
    let dialed_in = dialing.elapsed();
    desk.cancel();
    for agent in agents {
        agent.await??;
    }
    let counts = attempts_per_number(&hub_dir, &all)?;
    ensure!(counts.values().all(|&c| c == 1), "each number dialed once");
    let (mut rung, mut per_site) = (Vec::new(), Vec::new());
    for site in &mut boxes {
        let calls = site.rung().await;
        per_site.push(calls.len());
        rung.extend(calls);
    }
    rung.sort();
    ensure!(rung == phones, "the carriers rang each number once");

    // The lease traffic, from HQ's store: grants and recalls down (each a frame of its own,
    // encoded as the link sends it), requests and returns up.
    let db = hub_db(&hub_dir)?;
    let list = all.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let sites: Vec<i64> = db.prepare(&format!("SELECT site_id FROM batches WHERE id IN ({list})"))?.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    let (mut down_frames, mut down_bytes) = (0u64, 0u64);
    for site in sites {
        for entry in hub.store.down_log(site, 0, 1_000_000)? {
            if matches!(entry.event, sync_protocol::DownEvent::LeaseGrant(_) | sync_protocol::DownEvent::LeaseRecall(_)) {
                let frame = sync_protocol::Frame::Down(sync_protocol::DownEntry { seq: entry.seq, event: entry.event });
                down_frames += 1;
                down_bytes += sync_protocol::framing::encode_frame(&frame)?.len() as u64;
            }
        }
    }
    let requests: i64 = db.query_row(&format!("SELECT COALESCE(SUM(lease_request), 0) FROM batches WHERE id IN ({list})"), [], |r| r.get(0))?;
    let returns: i64 = db.query_row(&format!("SELECT COUNT(*) FROM leases WHERE batch_id IN ({list}) AND state = 'closed'"), [], |r| r.get(0))?;
    let per_k = |x: f64| x * 1000.0 / n as f64;
    eprintln!(
        "pool bench: {n} numbers, pool leased out in {:.1} s, all dialed and at HQ in {:.1} s ({:.0} calls/s); \
         samples {samples}, waiting for a lease {:?} samples per site ({:.2} % of site-samples); \
         per 1,000 calls: {:.1} grant frames down ({:.0} bytes), {:.1} request and {:.1} return frames up; sites dialed {:?}",
        pool_leased_in.as_secs_f64(),
        dialed_in.as_secs_f64(),
        n as f64 / dialed_in.as_secs_f64(),
        waiting,
        100.0 * waiting.iter().sum::<u64>() as f64 / (3 * samples.max(1)) as f64,
        per_k(down_frames as f64),
        per_k(down_bytes as f64),
        per_k(requests as f64),
        per_k(returns as f64),
        per_site,
    );
    Ok(())
}
