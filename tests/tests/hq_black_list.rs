//! HQ's black list through the real path: a real hub, an appliance enrolled over QUIC with
//! mutual TLS (through a UDP relay the test can cut), HQ's admin changing the list with the
//! console's JSON API, and a SIPp carrier that must never be asked for a listed number.
//!
//! Nothing here writes a down event by hand: every list change is made at HQ and reaches the
//! site (or not) through the link.
//!
//! - A number blacklisted at HQ while its batch is being dialed is never dialed; the other
//!   numbers are; the site's data page says why it stays; an agent's callback of it and a
//!   one-click call that would take it are refused. HQ stores each attempt with its kind.
//! - A number blacklisted at HQ while the site is offline is never dialed once the site is
//!   back and has applied the change.
//! - A number blacklisted before dispatch never reaches the site; a site enrolled after the
//!   number was listed is sent the list when it enrolls.

mod site_support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, ensure};
use appliance::store::{CustomerView, Viewer};
use demo::setup::{Api, dispatch_demo_list, enroll_site};
use serde_json::{Value, json};
use tests::{Sipp, SippResult, UdpRelay, free_udp_port, wait_for_some, wait_until};
use tokio_util::sync::CancellationToken;

const EXTENSION: &str = "8201";
const SIP_PASSWORD: &str = "phone-secret-8201";
const AGENT: &str = "black-list-agent";
const AGENT_PASSWORD: &str = "agent-secret-8201";

/// The demo list's numbers: row `n` (from 1) holds `1380013000n`.
fn demo_phone(row: u32) -> String {
    format!("1380013{row:04}")
}

fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info,quinn=warn,rustls=warn")
        .try_init();
}

/// A hub, and a box enrolled with it through a relay (cut with `relay.partitioned`).
struct Scene {
    hq: Api,
    hub_dir: PathBuf,
    site_dir: PathBuf,
    relay: UdpRelay,
    site_id: u64,
    shutdown: CancellationToken,
    _hub: hq_hub::Hub,
    _dir: tempfile::TempDir,
}

impl Scene {
    async fn start(site_name: &str) -> anyhow::Result<Scene> {
        let dir = tempfile::tempdir()?;
        let hub_dir = dir.path().join("hub");
        let site_dir = dir.path().join("site");
        let shutdown = CancellationToken::new();
        let (hub, hq_password) = tests::start_hub(&hub_dir, shutdown.clone()).await?;
        let hq = Api::login(&format!("http://{}", hub.http_addr), "admin", &hq_password).await?;
        let relay = UdpRelay::start(hub.sync_addr).await?;
        let site_id = enroll_site(&hq, site_name, &site_dir, relay.addr).await?;
        Ok(Scene { hq, hub_dir, site_dir, relay, site_id, shutdown, _hub: hub, _dir: dir })
    }

    /// Dispatches the demo list of `rows` numbers to the site as one shared batch.
    async fn dispatch(&self, rows: u32, name: &str) -> anyhow::Result<()> {
        let sheet = self.hub_dir.join(format!("{name}.xlsx"));
        dispatch_demo_list(&self.hq, "流量类", &sheet, rows, name, self.site_id).await
    }

    /// HQ's admin blacklists `phone` with the console's JSON API.
    async fn blacklist(&self, phone: &str) -> anyhow::Result<()> {
        let added: Value = self.hq.post("/api/lists/black", &json!({"phones": [phone], "note": "客户投诉"})).await?;
        ensure!(added["added"] == json!(1), "HQ listed the number: {added}");
        Ok(())
    }

    async fn project_id(&self) -> anyhow::Result<u64> {
        let projects: Vec<Value> = self.hq.get("/api/projects").await?;
        projects.first().and_then(|project| project["id"].as_u64()).context("HQ has the demo project")
    }

    fn hub_db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(self.hub_dir.join("hub.sqlite3"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("the hub's store file opens")
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The box of a scene, running, with its admin, an agent and the agent's registered phone.
struct Site {
    appliance: appliance::Appliance,
    url: String,
    admin: Api,
    carrier_port: u16,
    _phone: Sipp,
}

async fn start_site(scene: &Scene) -> anyhow::Result<Site> {
    let carrier_port = free_udp_port();
    let admin_password = appliance::init_admin(&scene.site_dir, "siteadmin")?;
    let appliance = appliance::start(
        appliance::ApplianceConfig::on_loopback(
            &scene.site_dir,
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), carrier_port),
            2,
        ),
        scene.shutdown.clone(),
    )
    .await?;
    let url = format!("http://{}", appliance.http_addr);
    let admin = Api::login(&url, "siteadmin", &admin_password).await?;
    admin.post::<Value>("/api/extensions", &json!({"extension": EXTENSION, "password": SIP_PASSWORD})).await?;
    admin
        .post::<Value>(
            "/api/agents",
            &json!({"username": AGENT, "password": AGENT_PASSWORD, "name": "小钱", "extension": EXTENSION}),
        )
        .await?;
    // The phone answers whatever rings it (one call at most); registered, the agent is free.
    let phone = site_support::agent_phone_for(appliance.sip_addr, EXTENSION, SIP_PASSWORD, 1).await?;
    Ok(Site { appliance, url, admin, carrier_port, _phone: phone })
}

impl Site {
    async fn batch_id(&self) -> anyhow::Result<u64> {
        Ok(wait_for_some(Duration::from_secs(30), || async {
            let tasks: Vec<Value> = self.admin.get("/api/tasks").await.ok()?;
            tasks.first().and_then(|task| task["batch_id"].as_u64())
        })
        .await
        .context("the dispatched batch reaches the appliance over the link")?)
    }

    /// Every customer row the site's store holds, numbers whole.
    fn customers(&self) -> anyhow::Result<Vec<CustomerView>> {
        let viewer = Viewer { username: "test".into(), unmask: true };
        Ok(self.appliance.store.customers(&viewer, None, None, None, 10_000)?)
    }

    /// The numbers the site has dialed (a row leaves "new" when it is taken for a call).
    fn dialed(&self) -> anyhow::Result<Vec<String>> {
        Ok(self.customers()?.into_iter().filter(|row| row.status != "new").map(|row| row.phone).collect())
    }

    async fn wait_applied(&self, phone: &str) -> anyhow::Result<()> {
        wait_until(Duration::from_secs(60), || async { self.appliance.store.is_blacklisted(phone).unwrap_or(false) })
            .await
            .with_context(|| format!("the site applies HQ's listing of {phone} it got over the link"))?;
        Ok(())
    }

    /// Starts the batch's task: one call at a time, no cool-down, this mode and ring time.
    async fn start_task(&self, batch_id: u64, dial_mode: &str, ring_seconds: u32) -> anyhow::Result<()> {
        self.admin
            .post::<Value>(
                &format!("/api/tasks/{batch_id}/start"),
                &json!({"ratio": 1, "max_concurrency": 1, "ring_seconds": ring_seconds, "dial_mode": dial_mode, "cool_down": 0}),
            )
            .await?;
        Ok(())
    }

    async fn start_agent(&self, desk: CancellationToken) -> tokio::task::JoinHandle<anyhow::Result<()>> {
        tokio::spawn(demo::agent::run_agent(
            demo::agent::AgentConfig {
                appliance_url: self.url.clone(),
                username: AGENT.into(),
                password: AGENT_PASSWORD.into(),
                wrap_up: (Duration::from_millis(200), Duration::from_millis(400)),
            },
            desk,
        ))
    }
}

/// The carrier's Request-URIs: the numbers it was asked to ring.
fn invited_numbers(result: &SippResult) -> Vec<String> {
    let messages = result.messages.clone().unwrap_or_default();
    messages
        .lines()
        .filter_map(|line| line.trim().strip_prefix("INVITE sip:"))
        .filter_map(|rest| rest.split(['@', ';', ' ']).next())
        .map(str::to_string)
        .collect()
}

fn hub_attempt_kinds(db: &rusqlite::Connection) -> anyhow::Result<Vec<String>> {
    let mut statement = db.prepare("SELECT kind FROM call_attempts ORDER BY attempt_id")?;
    let kinds = statement.query_map([], |row| row.get(0))?.collect::<Result<_, _>>()?;
    Ok(kinds)
}

async fn page(api: &Api, path: &str) -> anyhow::Result<String> {
    Ok(String::from_utf8(api.get_bytes(path).await?)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_blacklisted_at_hq_while_its_batch_is_dialed_is_never_dialed() -> anyhow::Result<()> {
    logs();
    let scene = Scene::start("黑名单职场").await?;
    scene.dispatch(5, "黑名单批次").await?;
    let site = start_site(&scene).await?;
    let batch_id = site.batch_id().await?;
    let banned = demo_phone(5);

    // The carrier rings every number until the box gives up (5 s each, one at a time), so
    // the last number's turn comes well after HQ's change has had time to arrive.
    let carrier = Sipp::scenario("carrier_noanswer.xml")
        .local_port(site.carrier_port)
        .calls(5)
        .trace_messages()
        .timeout(Duration::from_secs(60))
        .spawn()?;
    let desk = CancellationToken::new();
    let agent = site.start_agent(desk.clone()).await;
    site.start_task(batch_id, "predictive", 5).await?;
    wait_until(Duration::from_secs(30), || async {
        site.customers().is_ok_and(|rows| rows.iter().any(|row| row.status != "new"))
    })
    .await
    .context("the task starts dialing")?;

    // HQ blacklists the batch's last number while the batch is being dialed.
    scene.blacklist(&banned).await?;
    site.wait_applied(&banned).await?;
    ensure!(
        site.customers()?.iter().any(|row| row.phone == banned && row.status == "new"),
        "the change arrived before the number's turn: {:?}",
        site.customers()?
    );

    // The other four are dialed; then nothing more, even after another ring's time.
    wait_until(Duration::from_secs(60), || async { site.customers().is_ok_and(|rows| rows.iter().filter(|row| row.status == "done").count() == 4) })
        .await
        .context("the four other numbers are dialed")?;
    tokio::time::sleep(Duration::from_secs(7)).await;
    ensure!(site.dialed()?.len() == 4, "no fifth attempt: {:?}", site.dialed()?);
    let banned_row = site.customers()?.into_iter().find(|row| row.phone == banned).context("the banned row stays")?;
    ensure!(banned_row.status == "new" && banned_row.hq_black, "{banned_row:?}");

    // The agent's own calls refuse it too: a callback of the customer, and a one-click task
    // whose only number left is the listed one.
    let agent_api = Api::login(&site.url, AGENT, AGENT_PASSWORD).await?;
    let callback: Value = site
        .admin
        .post(
            "/api/data/callbacks",
            &json!({"batch_id": batch_id, "row_id": banned_row.row_id, "agent": AGENT, "title": "回访", "due_at": 1_900_000_000}),
        )
        .await?;
    let callback_id = callback["callback_id"].as_u64().context("callback id")?;
    let refused = agent_api.post::<Value>(&format!("/api/callbacks/{callback_id}/dial"), &json!({})).await;
    let reason = format!("{:#}", refused.expect_err("a callback of a blacklisted number is refused"));
    ensure!(reason.contains("black list"), "{reason}");
    site.admin.post::<Value>(&format!("/api/tasks/{batch_id}/stop"), &json!({})).await?;
    site.start_task(batch_id, "one_click", 5).await?;
    let project_id = scene.project_id().await?;
    let refused = agent_api.post::<Value>(&format!("/api/agent/projects/{project_id}/dial"), &json!({})).await;
    let reason = format!("{:#}", refused.expect_err("one-click finds nothing to dial"));
    ensure!(reason.contains("已没有可供您拨打的号码"), "{reason}");
    desk.cancel();
    agent.await??;

    let result = carrier.wait(Duration::from_secs(70)).await;
    let invited = invited_numbers(&result);
    ensure!(!invited.contains(&banned), "the carrier was asked for the blacklisted number: {invited:?}");
    let mut others: Vec<String> = (1..=4).map(demo_phone).collect();
    let mut seen = invited.clone();
    seen.sort();
    seen.dedup();
    others.sort();
    ensure!(seen == others, "the carrier rang the four other numbers: {invited:?}\n{result}");
    ensure!(site.dialed()?.len() == 4, "no attempt of the listed number: {:?}", site.dialed()?);

    // The site admin's data page says why the number stays, in both languages, and shows
    // HQ's list read-only.
    let customers = page(&site.admin, &format!("/admin/data?project_id={project_id}&tab=customers")).await?;
    ensure!(customers.matches("总控黑名单").count() == 1, "one row marked 总控黑名单");
    let lists = page(&site.admin, &format!("/admin/data?project_id={project_id}&tab=lists")).await?;
    ensure!(lists.contains("总控黑名单") && lists.contains("客户投诉"), "the HQ list tab shows the entry");
    page(&site.admin, "/lang/en").await?;
    let english = page(&site.admin, &format!("/admin/data?project_id={project_id}&tab=customers")).await?;
    ensure!(english.contains("HQ black list"), "the English page marks it too");

    // HQ holds the four attempts, each as a predictive dial of its task.
    let db = scene.hub_db();
    wait_until(Duration::from_secs(30), || async { hub_attempt_kinds(&db).is_ok_and(|kinds| kinds.len() == 4) })
        .await
        .context("the attempts reach HQ")?;
    ensure!(hub_attempt_kinds(&db)?.iter().all(|kind| kind == "predictive"), "{:?}", hub_attempt_kinds(&db)?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_blacklisted_while_the_site_is_offline_is_never_dialed_once_it_is_back() -> anyhow::Result<()> {
    logs();
    let scene = Scene::start("断网黑名单职场").await?;
    scene.dispatch(4, "断网批次").await?;
    let site = start_site(&scene).await?;
    let batch_id = site.batch_id().await?;
    let banned = demo_phone(2);

    // The cable is cut; HQ blacklists a number of the batch meanwhile.
    scene.relay.partitioned.store(true, Ordering::SeqCst);
    wait_until(Duration::from_secs(60), || async {
        let status: Option<Value> = site.admin.get("/api/status").await.ok();
        status.is_some_and(|status| status["link"]["state"] == json!("offline"))
    })
    .await
    .context("the site sees the link cut")?;
    scene.blacklist(&banned).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    ensure!(!site.appliance.store.is_blacklisted(&banned)?, "nothing crosses a cut cable");

    // The cable is back: the change arrives and is applied before the task is started.
    scene.relay.partitioned.store(false, Ordering::SeqCst);
    site.wait_applied(&banned).await?;

    let carrier = Sipp::scenario("carrier_busy.xml")
        .local_port(site.carrier_port)
        .calls(4)
        .trace_messages()
        .timeout(Duration::from_secs(30))
        .spawn()?;
    let desk = CancellationToken::new();
    let agent = site.start_agent(desk.clone()).await;
    site.start_task(batch_id, "predictive", 10).await?;
    wait_until(Duration::from_secs(60), || async { site.customers().is_ok_and(|rows| rows.iter().filter(|row| row.status == "done").count() == 3) })
        .await
        .context("the three other numbers are dialed")?;
    let result = carrier.wait(Duration::from_secs(40)).await;
    desk.cancel();
    agent.await??;

    let invited = invited_numbers(&result);
    ensure!(!invited.contains(&banned), "the carrier was asked for the number HQ listed offline: {invited:?}");
    ensure!(invited.len() == 3, "three numbers rung, each once: {invited:?}\n{result}");
    ensure!(site.dialed()?.len() == 3, "no attempt of the listed number: {:?}", site.dialed()?);
    ensure!(
        site.customers()?.iter().any(|row| row.phone == banned && row.status == "new" && row.hq_black),
        "{:?}",
        site.customers()?
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_blacklisted_before_dispatch_never_reaches_the_site() -> anyhow::Result<()> {
    logs();
    let scene = Scene::start("先拉黑职场").await?;
    let banned = demo_phone(3);
    scene.blacklist(&banned).await?;
    // Listed as a carrier dial token too (the manual's 20 hex digits), lower case as typed.
    let token: Value =
        scene.hq.post("/api/lists/white", &json!({"phones": ["a207a92e2b93892f5f4c"], "note": "加密号码"})).await?;
    ensure!(token["added"] == json!(1), "{token}");
    scene.dispatch(4, "先拉黑批次").await?;

    // A second box enrolls after the listing: it is sent the lists when it enrolls.
    let late_dir = scene.site_dir.with_file_name("late-site");
    enroll_site(&scene.hq, "后注册职场", &late_dir, scene.relay.addr).await?;

    let site = start_site(&scene).await?;
    site.batch_id().await?;
    site.wait_applied(&banned).await?;
    let rows = site.customers()?;
    ensure!(rows.len() == 3, "three of the four rows reach the site: {rows:?}");
    ensure!(rows.iter().all(|row| row.phone != banned), "the listed number is not in the site's store: {rows:?}");
    let viewer = Viewer { username: "test".into(), unmask: true };
    let lists = site.appliance.store.hq_lists(&viewer)?;
    ensure!(
        lists.iter().any(|entry| entry.phone == "A207A92E2B93892F5F4C" && entry.list == "white"),
        "the token reaches the site on the white list: {lists:?}"
    );

    let late = late_site_lists(&late_dir, &scene.shutdown).await?;
    ensure!(late.contains(&(banned.clone(), "black")), "{late:?}");
    ensure!(late.contains(&("A207A92E2B93892F5F4C".to_string(), "white")), "{late:?}");
    Ok(())
}

/// Runs the box at `dir` until it holds HQ's lists; what it holds.
async fn late_site_lists(dir: &Path, shutdown: &CancellationToken) -> anyhow::Result<Vec<(String, &'static str)>> {
    let late = appliance::start(
        appliance::ApplianceConfig::on_loopback(dir, SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), free_udp_port()), 1),
        shutdown.child_token(),
    )
    .await?;
    let viewer = Viewer { username: "test".into(), unmask: true };
    let lists = wait_for_some(Duration::from_secs(60), || async {
        let lists = late.store.hq_lists(&viewer).ok()?;
        (lists.len() == 2).then_some(lists)
    })
    .await
    .context("the late site is seeded with HQ's lists at enrollment")?;
    Ok(lists.into_iter().map(|entry| (entry.phone, entry.list)).collect())
}
