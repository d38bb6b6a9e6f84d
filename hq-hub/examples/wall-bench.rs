//! Monitoring-wall benchmark (职场监控管理): freshness from an agent's state change at a site
//! to the HQ wall's server-sent event, and the hub's CPU while it serves open walls.
//!
//! One process, two runtimes: the hub (`hq_hub::start`: SQLite store, console, QUIC link
//! with mutual TLS) on threads named `hub`, and on threads named `sim` the `--sites`
//! simulated sites (each enrolled with a real one-time code, then `sync_link::client`
//! over loopback QUIC, its site store handing the link a [`SiteLive`] of `--agents` agents)
//! and `--walls` logged-in walls reading `/api/monitor/events`.
//!
//! Every agent changes state about `--changes-per-agent-per-minute` times a minute (at
//! random moments). A change stamps its site's snapshot with a sequence number (carried in
//! `outbox_backlog`, which the card shows as `data-figure="backlog"`); a wall's event
//! carrying sequence N of a site delivers every change of that site up to N. Freshness is
//! the time from the change to its delivery, per wall. The hub's CPU is the user + system
//! time of the `hub` threads over the measured window (`/proc/self/task/*/stat`).
//!
//! `cargo run --release -p hq-hub --example wall-bench -- [--sites 100] [--agents 100]
//! [--walls 20] [--seconds 60] [--changes-per-agent-per-minute 2]`

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use clap::Parser;
use rand::{Rng, SeedableRng};
use sync_link::client::{self, LinkStatus};
use sync_link::{LinkTuning, SiteStore, StoreResult};
use sync_protocol::{DownEntry, LiveAgent, LiveAgentState, SiteLive, UpEntry};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use hq_hub::HubConfig;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 100)]
    sites: usize,
    #[arg(long, default_value_t = 100)]
    agents: usize,
    #[arg(long, default_value_t = 20)]
    walls: usize,
    /// Length of the measured window.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    #[arg(long, default_value_t = 2.0)]
    changes_per_agent_per_minute: f64,
}

const STATES: [LiveAgentState; 5] =
    [LiveAgentState::Available, LiveAgentState::Ringing, LiveAgentState::Talking, LiveAgentState::WrapUp, LiveAgentState::Break];

/// A simulated site's store: its snapshot, and when each of its changes was made.
struct SimSite {
    live: Mutex<SiteLive>,
    notify: Arc<Notify>,
}

impl SiteStore for SimSite {
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
        Ok(Some(self.live.lock().unwrap_or_else(|p| p.into_inner()).clone()))
    }
}

/// When each change was made: site id → sequence → instant.
type Changes = Arc<Mutex<HashMap<i64, BTreeMap<u64, Instant>>>>;

fn snapshot(site: i64, agents: usize) -> SiteLive {
    SiteLive {
        taken_at_ms: 1,
        agents: (0..agents)
            .map(|i| LiveAgent {
                username: format!("s{site}a{i:03}"),
                extension: format!("{}", 8000 + i),
                state: LiveAgentState::Available,
                since_ms: 1_700_000_000_000,
            })
            .collect(),
        lines_available: 60,
        abandon_cap_percent: 3.0,
        ..SiteLive::default()
    }
}

/// `user + system` clock ticks of this process's threads whose name starts with `prefix`.
fn thread_ticks(prefix: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("stat")).ok())
        .filter_map(|stat| {
            let (name, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
            let fields: Vec<&str> = rest.split(' ').collect();
            // After the name: state is field 3, utime 14 and stime 15 of the whole line.
            let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
            name.starts_with(prefix).then_some(ticks)
        })
        .sum()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let hub_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("hub").enable_all().build()?;
    let sim_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("sim").enable_all().build()?;
    let password = hq_hub::init_admin(dir.path(), "admin")?;
    let shutdown = CancellationToken::new();
    let config = HubConfig { data_dir: dir.path().to_path_buf(), http_bind: "127.0.0.1:0".parse()?, sync_bind: "127.0.0.1:0".parse()?, time_zone: Default::default() };
    let hub = hub_rt.block_on(hq_hub::start(config, shutdown.clone()))?;
    let base = format!("http://{}", hub.http_addr);
    println!("hub up at {base}; enrolling {} sites of {} agents", args.sites, args.agents);
    let result = sim_rt.block_on(run(&args, &hub, &base, &password, dir.path()));
    shutdown.cancel();
    hub_rt.block_on(hub.wait());
    result
}

async fn run(args: &Args, hub: &hq_hub::Hub, base: &str, password: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let changes: Changes = Arc::default();
    let mut sites = Vec::new();
    for i in 0..args.sites {
        let store = hub.store.clone();
        let (site, code) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let site = store.create_site(&format!("职场{i:03}"))?;
            Ok((site, store.create_enrollment_code(site)?.code))
        })
        .await??;
        let identity = client::enroll(&hub.sync_addr.to_string(), &code, &dir.join(format!("box-{site}"))).await?;
        let sim = Arc::new(SimSite { live: Mutex::new(snapshot(site, args.agents)), notify: Arc::default() });
        let (status_tx, mut status) = watch::channel(LinkStatus::Connecting);
        tokio::spawn(client::run_tuned(identity, sim.clone(), status_tx, stop.clone(), LinkTuning::default()));
        tokio::time::timeout(Duration::from_secs(30), status.wait_for(|s| matches!(s, LinkStatus::Online { .. })))
            .await
            .context("a site did not come online")??;
        sites.push((site, sim));
    }
    println!("{} sites online; opening {} walls", sites.len(), args.walls);
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for _ in 0..args.walls {
        let wall = Wall::open(base, password).await?;
        tokio::spawn(wall.read(changes.clone(), latencies.clone(), measuring.clone()));
    }
    // Let every wall take its first event and the links settle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    tokio::spawn(change_states(sites.clone(), changes.clone(), args.changes_per_agent_per_minute, args.agents, stop.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;

    measuring.store(true, std::sync::atomic::Ordering::SeqCst);
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    let (hub_before, all_before, started) = (thread_ticks("hub"), thread_ticks(""), Instant::now());
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let (hub_after, all_after, elapsed) = (thread_ticks("hub"), thread_ticks(""), started.elapsed().as_secs_f64());
    measuring.store(false, std::sync::atomic::Ordering::SeqCst);
    stop.cancel();

    let made: usize = changes.lock().unwrap_or_else(|p| p.into_inner()).values().map(BTreeMap::len).sum();
    let mut sorted = latencies.lock().unwrap_or_else(|p| p.into_inner()).clone();
    ensure!(!sorted.is_empty(), "no change reached any wall");
    sorted.sort_by(f64::total_cmp);
    let hub_cpu = (hub_after - hub_before) as f64 / ticks_per_sec / elapsed * 100.0;
    let all_cpu = (all_after - all_before) as f64 / ticks_per_sec / elapsed * 100.0;
    println!("sites {} × agents {}, walls {}, {:.0} s measured", args.sites, args.agents, args.walls, elapsed);
    println!("changes made {:.0}/s; deliveries measured {} (per wall, each change once per wall)", args.changes_per_agent_per_minute * (args.sites * args.agents) as f64 / 60.0, sorted.len());
    println!(
        "freshness change → wall event: p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(&sorted, 0.50),
        percentile(&sorted, 0.95),
        percentile(&sorted, 0.99),
        sorted[sorted.len() - 1]
    );
    println!("hub threads CPU {hub_cpu:.0}% of one core; whole process (hub, sites, walls) {all_cpu:.0}%; changes made in all {made}");
    Ok(())
}

/// Changes agents' states at random moments, `rate` per agent per minute.
async fn change_states(sites: Vec<(i64, Arc<SimSite>)>, changes: Changes, rate: f64, agents: usize, stop: CancellationToken) {
    let per_tick = rate * (sites.len() * agents) as f64 / 60.0 / 100.0; // 10 ms ticks
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut owed = 0.0;
    let mut rng = rand::rngs::StdRng::from_rng(&mut rand::rng());
    while !stop.is_cancelled() {
        tick.tick().await;
        owed += per_tick;
        while owed >= 1.0 {
            owed -= 1.0;
            let (site, sim) = &sites[rng.random_range(0..sites.len())];
            let agent = rng.random_range(0..agents);
            let mut live = sim.live.lock().unwrap_or_else(|p| p.into_inner());
            let next = STATES[rng.random_range(0..STATES.len())];
            live.agents[agent].state = next;
            live.outbox_backlog += 1;
            let seq = live.outbox_backlog;
            changes.lock().unwrap_or_else(|p| p.into_inner()).entry(*site).or_default().insert(seq, Instant::now());
        }
    }
}

struct Wall {
    response: reqwest::Response,
}

impl Wall {
    async fn open(base: &str, password: &str) -> anyhow::Result<Wall> {
        let http = reqwest::Client::builder().cookie_store(true).build()?;
        let login = http.post(format!("{base}/api/login")).json(&serde_json::json!({ "username": "admin", "password": password })).send().await?;
        ensure!(login.status().is_success(), "login: {}", login.status());
        let response = http.get(format!("{base}/api/monitor/events")).send().await?;
        ensure!(response.status().is_success(), "events: {}", response.status());
        Ok(Wall { response })
    }

    /// Reads events; each card's sequence delivers that site's changes up to it.
    async fn read(mut self, changes: Changes, latencies: Arc<Mutex<Vec<f64>>>, measuring: Arc<std::sync::atomic::AtomicBool>) {
        let mut buffer = String::new();
        let mut seen: HashMap<i64, u64> = HashMap::new();
        while let Ok(Some(chunk)) = self.response.chunk().await {
            let now = Instant::now();
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                for (site, seq) in cards(&event) {
                    let last = seen.insert(site, seq).unwrap_or(0);
                    if seq <= last || !measuring.load(std::sync::atomic::Ordering::Relaxed) {
                        continue;
                    }
                    let made = changes.lock().unwrap_or_else(|p| p.into_inner());
                    let Some(times) = made.get(&site) else { continue };
                    let mut out = latencies.lock().unwrap_or_else(|p| p.into_inner());
                    out.extend(times.range(last + 1..=seq).map(|(_, at)| now.duration_since(*at).as_secs_f64() * 1000.0));
                }
            }
        }
    }
}

/// `(site id, sequence)` of every card in an event.
fn cards(event: &str) -> Vec<(i64, u64)> {
    let Some(data) = event.lines().find_map(|line| line.strip_prefix("data: ")) else { return Vec::new() };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(data) else { return Vec::new() };
    let mut out = Vec::new();
    for item in value["items"].as_array().into_iter().flatten() {
        let Some(site) = item["target"].as_str().and_then(|t| t.strip_prefix("site-")).and_then(|id| id.parse().ok()) else { continue };
        let html = item["html"].as_str().unwrap_or_default();
        let Some(at) = html.find("data-figure=\"backlog\">") else { continue };
        let digits: String = html[at + 22..].chars().take_while(char::is_ascii_digit).collect();
        if let Ok(seq) = digits.parse() {
            out.push((site, seq));
        }
    }
    out
}
