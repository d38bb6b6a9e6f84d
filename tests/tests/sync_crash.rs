//! Crash tests: the real `hq-hub` and `appliance` binaries, killed with SIGKILL at random
//! points while they sync, then restarted; the checker finds nothing lost and nothing
//! doubled.
//!
//! - The test builds both binaries once (`cargo build -p hq-hub -p appliance --bin ...`,
//!   with the `CARGO` cargo runs it under) and runs them from the same target directory.
//! - HQ is set up over its console API: a site with a one-time code, a project and a batch
//!   dispatched to the site. The appliance enrolls with the code through its own CLI.
//! - Each iteration: the site admin keeps adding callbacks through the appliance's HTTP API
//!   (each one a site-owned row plus an outbox entry in one transaction) and HQ keeps
//!   changing the batch's priority (a down-log entry each); after a random pause one of the
//!   hub, the appliance or both is killed with SIGKILL, then started again. In between, the
//!   checker reads both SQLite files read-only and asserts the invariants that hold at every
//!   moment (HQ never holds more than the site committed, never a seq twice or a hole, the
//!   site never dropped an entry HQ had not committed) and that every callback whose
//!   creation was answered `201` is in the site's store (durable before acknowledged).
//! - At the end both run undisturbed until the link converges; the checker then asserts
//!   every outbox entry of the site's epoch is at HQ exactly once, every callback row is at
//!   HQ once with the site's content, every answered callback is among them, and the site
//!   applied HQ's latest control version.
//!
//! Iterations: 5 by default (well under two minutes). The long run does 100:
//!
//! ```text
//! OUTPOST_CRASH_ITERATIONS=100 cargo test -p tests --test sync_crash -- --nocapture
//! ```
//!
//! `OUTPOST_CRASH_SEED=N` replays a run (the seed is printed at the start).

mod sync_support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use demo::setup::Api;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tests::{free_tcp_port, free_udp_port};

use sync_support::{HubSetup, check_converged, check_invariants, hub_db, read_only, site_db, sync_state};

const ROWS: u32 = 50;
const AGENT: &str = "agent1";

/// Where cargo put the binaries: the test executable lives in `<target>/debug/deps/`.
fn bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let deps = exe.parent().context("test executable without a directory")?;
    Ok(deps.parent().context("deps without a parent")?.to_path_buf())
}

/// Build both binaries once (a no-op when they are fresh).
fn build_binaries() -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("workspace root")?;
    let status = Command::new(cargo)
        .current_dir(workspace)
        // The same targets and features `cargo test --workspace` builds, so inside the suite
        // this finds everything fresh instead of rebuilding every dependency with another
        // feature set (minutes on a 2-core machine).
        .args(["build", "--workspace", "--bins", "--tests"])
        .status()
        .context("running cargo build for the hq-hub and appliance binaries")?;
    ensure!(status.success(), "cargo build of the binaries failed: {status}");
    let dir = bin_dir()?;
    for name in ["hq-hub", "appliance"] {
        ensure!(dir.join(name).is_file(), "{} was not built", dir.join(name).display());
    }
    Ok(dir)
}

/// Run a provisioning command and return its standard output.
fn run_once(program: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new(program).args(args).env("RUST_LOG", "warn").output()?;
    ensure!(
        output.status.success(),
        "{} {args:?} failed: {}",
        program.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A child process killed (SIGKILL) when dropped; its log lines go to a file.
struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    fn spawn(name: &'static str, program: &Path, args: &[String], log: &Path) -> Result<Proc> {
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        let child = Command::new(program)
            .args(args)
            .env("RUST_LOG", "info,quinn=warn,rustls=warn")
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        Ok(Proc { name, child })
    }

    /// SIGKILL, no goodbye.
    fn kill(mut self) -> Result<()> {
        self.child.kill().with_context(|| format!("killing {}", self.name))?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything about the two programs the test restarts.
struct World {
    bins: PathBuf,
    hub_dir: PathBuf,
    site_dir: PathBuf,
    hub_http: SocketAddr,
    hub_sync: SocketAddr,
    site_http: SocketAddr,
    hub_password: String,
    site_password: String,
    logs: PathBuf,
}

impl World {
    fn start_hub(&self) -> Result<Proc> {
        Proc::spawn(
            "hq-hub",
            &self.bins.join("hq-hub"),
            &[
                "serve".into(),
                "--data".into(),
                self.hub_dir.display().to_string(),
                "--http".into(),
                self.hub_http.to_string(),
                "--sync".into(),
                self.hub_sync.to_string(),
            ],
            &self.logs.join("hub.log"),
        )
    }

    fn start_site(&self) -> Result<Proc> {
        Proc::spawn(
            "appliance",
            &self.bins.join("appliance"),
            &["run".into(), "--data".into(), self.site_dir.display().to_string()],
            &self.logs.join("site.log"),
        )
    }

    async fn hub_api(&self) -> Result<Api> {
        login(&format!("http://{}", self.hub_http), "admin", &self.hub_password)
            .await
            .with_context(|| format!("hub log:\n{}", self.log_tail("hub.log")))
    }

    async fn site_api(&self) -> Result<Api> {
        login(&format!("http://{}", self.site_http), "siteadmin", &self.site_password)
            .await
            .with_context(|| format!("appliance log:\n{}", self.log_tail("site.log")))
    }

    /// The last lines of a program's log, for a failure message.
    fn log_tail(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.logs.join(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

/// Log in, retrying while the program starts (bounded).
async fn login(base: &str, user: &str, password: &str) -> Result<Api> {
    let started = Instant::now();
    loop {
        match Api::login(base, user, password).await {
            Ok(api) => return Ok(api),
            Err(error) if started.elapsed() < Duration::from_secs(30) => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => return Err(error.context(format!("{base} did not come up within 30 s"))),
        }
    }
}

/// What the writers saw answered.
#[derive(Default)]
struct Answered {
    callbacks: BTreeSet<u64>,
    priorities: u64,
}

/// Keep adding callbacks at the site and changing the batch's priority at HQ until
/// `stop`; failures (the peer was just killed) are expected and skipped.
async fn write_until(
    site: Api,
    hub: Api,
    setup: HubSetup,
    row_ids: Vec<u64>,
    answered: Arc<Mutex<Answered>>,
    stop: tokio_util::sync::CancellationToken,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut n = 0u64;
    while !stop.is_cancelled() {
        n += 1;
        let row_id = row_ids[rng.random_range(0..row_ids.len())];
        let body = json!({
            "batch_id": setup.batch_id,
            "row_id": row_id,
            "agent": AGENT,
            "title": format!("回访 {n}"),
            "note": "崩溃测试",
            "due_at": 1_900_000_000 + n as i64,
        });
        if let Ok(created) = site.post::<Value>("/api/data/callbacks", &body).await
            && let Some(id) = created["callback_id"].as_u64()
        {
            answered.lock().unwrap_or_else(|p| p.into_inner()).callbacks.insert(id);
        }
        if n.is_multiple_of(4) {
            let priority = rng.random_range(2..=100);
            let path = format!("/api/batches/{}/priority", setup.batch_id);
            if hub.post::<Value>(&path, &json!({"priority": priority})).await.is_ok() {
                answered.lock().unwrap_or_else(|p| p.into_inner()).priorities += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..15))).await;
    }
}

/// Every callback the site's API answered is in the site's store.
fn check_answered_durable(site_db: &Path, answered: &Answered) -> Result<()> {
    let conn = read_only(site_db)?;
    let mut stmt = conn.prepare("SELECT callback_id FROM callbacks")?;
    let stored: BTreeSet<u64> = stmt.query_map([], |r| r.get::<_, i64>(0))?.map(|id| id.map(|id| id as u64)).collect::<Result<_, _>>()?;
    let missing: Vec<&u64> = answered.callbacks.difference(&stored).collect();
    ensure!(missing.is_empty(), "callbacks answered 201 but not in the site's store: {missing:?}");
    Ok(())
}

fn iterations() -> Result<u32> {
    match std::env::var("OUTPOST_CRASH_ITERATIONS") {
        Ok(text) => text.parse().with_context(|| format!("OUTPOST_CRASH_ITERATIONS={text:?} is not a whole number")),
        Err(_) => Ok(5),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_restarted_during_sync_nothing_lost_nothing_doubled() -> Result<()> {
    let bins = tokio::task::spawn_blocking(build_binaries).await??;
    let iterations = iterations()?;
    let seed: u64 = match std::env::var("OUTPOST_CRASH_SEED") {
        Ok(text) => text.parse().context("OUTPOST_CRASH_SEED")?,
        Err(_) => rand::random(),
    };
    println!("crash test: {iterations} iterations, seed {seed} (OUTPOST_CRASH_SEED={seed} replays it)");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir()?;
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs)?;
    let hub_dir = dir.path().join("hub");
    let site_dir = dir.path().join("site");
    std::fs::create_dir_all(&site_dir)?;

    let hub_init = run_once(&bins.join("hq-hub"), &["init-admin", "--data", &hub_dir.display().to_string()])?;
    let hub_password = hub_init
        .lines()
        .find_map(|line| line.trim().strip_prefix("password: "))
        .with_context(|| format!("no password in {hub_init:?}"))?
        .to_owned();
    let world = World {
        bins: bins.clone(),
        hub_dir: hub_dir.clone(),
        site_dir: site_dir.clone(),
        hub_http: SocketAddr::new(sync_support::LOCALHOST, free_tcp_port()),
        hub_sync: SocketAddr::new(sync_support::LOCALHOST, free_udp_port()),
        site_http: SocketAddr::new(sync_support::LOCALHOST, free_tcp_port()),
        hub_password: hub_password.clone(),
        site_password: String::new(),
        logs: logs.clone(),
    };
    // No calls are placed here; the range only has to be valid and out of other tests' way.
    let rtp_base: u16 = rng.random_range(15_000..25_000) * 2;
    std::fs::write(
        site_dir.join("appliance.toml"),
        format!(
            "http_bind = \"{}\"\nsip_bind = \"127.0.0.1:{}\"\npublic_ip = \"127.0.0.1\"\nrtp_ports = [{}, {}]\n",
            world.site_http,
            free_udp_port(),
            rtp_base,
            rtp_base + 7
        ),
    )?;

    let mut hub = Some(world.start_hub()?);
    let setup = {
        let hub_url = format!("http://{}", world.hub_http);
        login(&hub_url, "admin", &hub_password).await?;
        sync_support::set_up_hub_over_api(&hub_url, &hub_password, ROWS, dir.path()).await?
    };
    run_once(
        &bins.join("appliance"),
        &["enroll", "--hub", &world.hub_sync.to_string(), "--code", &setup.code, "--data", &site_dir.display().to_string()],
    )?;
    let site_init =
        run_once(&bins.join("appliance"), &["init-admin", "--data", &site_dir.display().to_string(), "--username", "siteadmin"])?;
    let site_password = site_init
        .lines()
        .find_map(|line| line.split("one-time password: ").nth(1))
        .with_context(|| format!("no password in {site_init:?}"))?
        .trim()
        .to_owned();
    let world = World { site_password, ..world };
    let mut site = Some(world.start_site()?);

    // The site's agent, then wait for the batch to arrive and check out.
    let site_api = world.site_api().await?;
    site_api.post::<Value>("/api/extensions", &json!({"extension": "8001", "password": "phone-8001"})).await?;
    site_api
        .post::<Value>("/api/agents", &json!({"username": AGENT, "password": "agent-pass-1", "name": "坐席一", "extension": "8001"}))
        .await?;
    let started = Instant::now();
    let row_ids: Vec<u64> = loop {
        let conn = read_only(&site_db(&site_dir))?;
        let verified: Option<i64> = conn
            .query_row("SELECT verified FROM batches WHERE batch_id = ?1", [setup.batch_id as i64], |r| r.get(0))
            .ok();
        if verified == Some(1) {
            let mut stmt = conn.prepare("SELECT row_id FROM batch_rows WHERE batch_id = ?1")?;
            break stmt.query_map([setup.batch_id as i64], |r| r.get::<_, i64>(0))?.map(|r| r.map(|v| v as u64)).collect::<Result<_, _>>()?;
        }
        ensure!(started.elapsed() < Duration::from_secs(30), "the batch did not reach the site within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    ensure!(row_ids.len() == ROWS as usize, "the site holds {} rows", row_ids.len());

    let answered = Arc::new(Mutex::new(Answered::default()));
    let hub_db = hub_db(&hub_dir);
    let site_db = site_db(&site_dir);
    let mut kills = (0u32, 0u32);
    for iteration in 1..=iterations {
        let stop = tokio_util::sync::CancellationToken::new();
        let writer = tokio::spawn(write_until(
            world.site_api().await?,
            world.hub_api().await?,
            setup.clone(),
            row_ids.clone(),
            answered.clone(),
            stop.clone(),
            rng.random(),
        ));
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..1500))).await;
        // Kill the hub, the appliance or both, at whatever point they are.
        let victim = rng.random_range(0..3);
        if victim != 1 {
            hub.take().context("hub running")?.kill()?;
            kills.0 += 1;
        }
        if victim != 0 {
            site.take().context("site running")?.kill()?;
            kills.1 += 1;
        }
        stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(70), writer).await.context("the writer stops")?;
        {
            let answered = answered.lock().unwrap_or_else(|p| p.into_inner());
            let state = sync_state(&hub_db, &site_db, setup.site_id)?;
            check_invariants(&state).with_context(|| format!("iteration {iteration}, after the kill"))?;
            check_answered_durable(&site_db, &answered).with_context(|| format!("iteration {iteration}"))?;
        }
        // Down for a moment: the survivor keeps running (and retrying) meanwhile.
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..500))).await;
        if hub.is_none() {
            hub = Some(world.start_hub()?);
        }
        if site.is_none() {
            site = Some(world.start_site()?);
        }
        let state = sync_state(&hub_db, &site_db, setup.site_id)?;
        check_invariants(&state).with_context(|| format!("iteration {iteration}, after the restart"))?;
        println!("iteration {iteration}: {state:?}");
    }

    // Undisturbed: the link must converge.
    world.hub_api().await?;
    world.site_api().await?;
    let started = Instant::now();
    let state = loop {
        let state = sync_state(&hub_db, &site_db, setup.site_id)?;
        check_invariants(&state)?;
        if state.converged() {
            break state;
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("no convergence within 60 s after the last restart: {state:?}; logs in {}", logs.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let checked = check_converged(&hub_db, &site_db, setup.site_id)?;
    let answered = answered.lock().unwrap_or_else(|p| p.into_inner());
    check_answered_durable(&site_db, &answered)?;
    {
        // Every answered callback is at HQ, once.
        let conn = read_only(&hub_db)?;
        let mut stmt = conn.prepare("SELECT callback_id FROM site_callbacks WHERE site_id = ?1")?;
        let at_hq: Vec<u64> =
            stmt.query_map([setup.site_id as i64], |r| r.get::<_, i64>(0))?.map(|r| r.map(|v| v as u64)).collect::<Result<_, _>>()?;
        let unique: BTreeSet<u64> = at_hq.iter().copied().collect();
        ensure!(unique.len() == at_hq.len(), "a callback is at HQ twice");
        let missing: Vec<&u64> = answered.callbacks.difference(&unique).collect();
        ensure!(missing.is_empty(), "answered callbacks missing at HQ: {missing:?}");
    }
    ensure!(checked.site_committed > 0 && !answered.callbacks.is_empty(), "the writers wrote nothing: {checked:?}");
    println!(
        "converged after {iterations} iterations ({} hub kills, {} appliance kills): {} outbox entries at HQ once, \
         {} callbacks answered, {} priority changes answered; {state:?}",
        kills.0,
        kills.1,
        checked.hub_applied,
        answered.callbacks.len(),
        answered.priorities
    );
    drop(hub);
    drop(site);
    Ok(())
}
