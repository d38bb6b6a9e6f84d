//! HQ's controls reach the site through the real path and hold there: the real hub, the
//! appliance enrolled over QUIC with mutual TLS (through a UDP relay the test can cut), a
//! SIPp carrier that sees every dial, SIPp as the agent's phone and the demo's simulated
//! agent at the desk. The test acts only as an HQ admin on the hub's JSON API and as the
//! site's own staff on the appliance's; it never writes a down event itself.
//!
//! - One-click pause at HQ: the site dials nothing of the project, not even a batch HQ
//!   dispatched after the pause, and the site's own start does not lift it; one-click start
//!   at HQ and every number is dialed.
//! - Project status paused at HQ while the site is offline: once the link is back and the
//!   site has applied it, nothing of the project is dialed; running again at HQ and it is.
//! - Attribution rules saved at HQ: an auto batch's rows belong to the named agent at the
//!   site; the next save replaces the list (a rule naming another agent, then none at all).
//! - Link settings set at HQ reach every site's store, a site enrolled later included.

mod site_support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, ensure};
use demo::setup::{Api, dispatch_demo_list, enroll_site};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sync_link::SiteStore;
use sync_protocol::LinkSettings;
use tests::{Sipp, UdpRelay, free_udp_port, wait_for_some, wait_until};
use tokio_util::sync::CancellationToken;

const AGENT_PASSWORD: &str = "agent-secret-8301";
/// How long a held site is watched for a dial that must not come: the driver looks at its
/// tasks every 2 s and backs off 1 s after finding no number, so several rounds fit.
const HOLD: Duration = Duration::from_secs(8);

fn localhost() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

fn logging() {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("info,quinn=warn,rustls=warn").try_init();
}

/// An HQ admin's session for the `PUT` routes the demo client has no method for; answers
/// the status and the JSON body, so a refusal can be checked too.
struct HqPut {
    base: String,
    client: reqwest::Client,
}

/// A hub on loopback with its admin logged in twice: the harness's `Api` (GET / POST) and
/// [`HqPut`] for the PUT routes.
async fn start_hq(data_dir: &std::path::Path, shutdown: &CancellationToken) -> anyhow::Result<(hq_hub::Hub, Api, HqPut)> {
    let (hub, password) = tests::start_hub(data_dir, shutdown.clone()).await?;
    let url = format!("http://{}", hub.http_addr);
    let api = Api::login(&url, "admin", &password).await?;
    let put = HqPut::login(&url, &password).await?;
    Ok((hub, api, put))
}

impl HqPut {
    async fn login(base: &str, password: &str) -> anyhow::Result<HqPut> {
        let client = reqwest::Client::builder().cookie_store(true).timeout(Duration::from_secs(30)).build()?;
        let answer = client.post(format!("{base}/api/login")).json(&json!({"username": "admin", "password": password})).send().await?;
        ensure!(answer.status().is_success(), "HQ login: {}", answer.status());
        Ok(HqPut { base: base.to_string(), client })
    }

    async fn put(&self, path: &str, body: &Value) -> anyhow::Result<(StatusCode, Value)> {
        let answer = self.client.put(format!("{}{path}", self.base)).json(body).send().await?;
        let status = answer.status();
        let text = answer.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    async fn put_ok(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let (status, answer) = self.put(path, body).await?;
        ensure!(status.is_success(), "PUT {path}: {status}: {answer}");
        Ok(answer)
    }
}

/// A call list in the demo project's layout: `(phone, name, plan)` rows.
fn write_sheet(path: &Path, rows: &[(&str, &str, &str)]) -> anyhow::Result<()> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    for (col, title) in ["手机号码", "客户姓名", "推荐套餐"].iter().enumerate() {
        sheet.write_string(0, col as u16, *title)?;
    }
    for (idx, (phone, name, plan)) in rows.iter().enumerate() {
        let row = idx as u32 + 1;
        sheet.write_string(row, 0, *phone)?;
        sheet.write_string(row, 1, *name)?;
        sheet.write_string(row, 2, *plan)?;
    }
    workbook.save(path)?;
    Ok(())
}

/// Imports `rows` into `project_id` at HQ and dispatches them with `dispatch` (the body's
/// `name`, `priority`, `kind`, ...); answers the dispatch outcome.
async fn import_and_dispatch(hq: &Api, project_id: u64, sheet: &Path, rows: &[(&str, &str, &str)], dispatch: Value) -> anyhow::Result<Value> {
    write_sheet(sheet, rows)?;
    let import: Value = hq.upload(&format!("/api/projects/{project_id}/files"), sheet).await?;
    ensure!(import["n_good"] == json!(rows.len()), "every row imports: {import}");
    let file_id = import["file_id"].as_u64().context("the import has no file id")?;
    hq.post(&format!("/api/files/{file_id}/dispatch"), &dispatch).await
}

/// The category and sub-project `dispatch_demo_list` just created (the newest of each).
async fn newest_project(hq: &Api) -> anyhow::Result<(u64, u64)> {
    let projects: Vec<Value> = hq.get("/api/projects").await?;
    let project = projects.iter().max_by_key(|p| p["id"].as_u64()).context("a project exists")?;
    Ok((project["category_id"].as_u64().context("category id")?, project["id"].as_u64().context("project id")?))
}

/// The site's task list by batch id: `(status, dialed)`.
async fn site_tasks(site_admin: &Api) -> anyhow::Result<Vec<(u64, String, u64)>> {
    let tasks: Vec<Value> = site_admin.get("/api/tasks").await?;
    Ok(tasks
        .iter()
        .filter_map(|t| Some((t["batch_id"].as_u64()?, t["status"].as_str()?.to_string(), t["dialed"].as_u64()?)))
        .collect())
}

async fn task_status(site_admin: &Api, batch_id: u64) -> Option<String> {
    site_tasks(site_admin).await.ok()?.into_iter().find(|(id, _, _)| *id == batch_id).map(|(_, status, _)| status)
}

/// The attempts HQ holds from the site (each one an INVITE the carrier got, reported up the
/// link): `(batch, row, outcome, answered)`, read from HQ's own store file.
fn hq_attempts(hub_db: &Path) -> anyhow::Result<Vec<(u64, u64, String, bool)>> {
    let conn = rusqlite::Connection::open_with_flags(hub_db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut stmt = conn.prepare("SELECT batch_id, row_id, outcome, answered_at IS NOT NULL FROM call_attempts ORDER BY attempt_id")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// A site box at work: enrolled (at `hub_sync`, the hub or a relay in front of it), one
/// trunk toward the SIPp carrier, an agent on a SIPp phone whose desk (the demo's simulated
/// agent) takes every call and saves its record.
struct WorkingSite {
    appliance: appliance::Appliance,
    hub_db: std::path::PathBuf,
    admin: Api,
    carrier: Sipp,
    phone: Sipp,
    desk: CancellationToken,
    agent: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl WorkingSite {
    /// Starts the box at `site_dir` (already enrolled with the hub whose store file is
    /// `hub_db`); the carrier answers `calls` calls.
    async fn start(site_dir: &Path, hub_db: &Path, calls: u32, shutdown: CancellationToken) -> anyhow::Result<WorkingSite> {
        const EXTENSION: &str = "8301";
        const SIP_PASSWORD: &str = "phone-secret-8301";
        const AGENT: &str = "controls-agent";
        let carrier_port = free_udp_port();
        let site_password = appliance::init_admin(site_dir, "siteadmin")?;
        let appliance = appliance::start(
            appliance::ApplianceConfig::on_loopback(site_dir, SocketAddr::new(localhost(), carrier_port), 2),
            shutdown,
        )
        .await?;
        let url = format!("http://{}", appliance.http_addr);
        let admin = Api::login(&url, "siteadmin", &site_password).await?;
        admin.post::<Value>("/api/extensions", &json!({"extension": EXTENSION, "password": SIP_PASSWORD})).await?;
        admin
            .post::<Value>(
                "/api/agents",
                &json!({"username": AGENT, "password": AGENT_PASSWORD, "name": "小钱", "extension": EXTENSION}),
            )
            .await?;
        let phone = site_support::agent_phone_for(appliance.sip_addr, EXTENSION, SIP_PASSWORD, calls)
            .await
            .context("the agent's SIPp phone registers")?;
        let carrier = Sipp::scenario("carrier_answer.xml")
            .local_port(carrier_port)
            .calls(calls)
            .media_on_loopback()
            .arg("-d")
            .arg("800")
            .timeout(Duration::from_secs(240))
            .spawn()?;
        let desk = CancellationToken::new();
        let agent = tokio::spawn(demo::agent::run_agent(
            demo::agent::AgentConfig {
                appliance_url: url.clone(),
                username: AGENT.into(),
                password: AGENT_PASSWORD.into(),
                wrap_up: (Duration::from_millis(200), Duration::from_millis(400)),
            },
            desk.clone(),
        ));
        Ok(WorkingSite { appliance, hub_db: hub_db.to_path_buf(), admin, carrier, phone, desk, agent })
    }

    /// The site admin starts the task, as the site would to dial it.
    async fn start_task(&self, batch_id: u64) -> anyhow::Result<()> {
        self.admin
            .post::<Value>(
                &format!("/api/tasks/{batch_id}/start"),
                &json!({"ratio": 1, "max_concurrency": 1, "ring_seconds": 20, "dial_mode": "predictive", "cool_down": 0}),
            )
            .await?;
        Ok(())
    }

    /// Watches the held site for [`HOLD`]: no number taken, no attempt written.
    async fn dials_nothing(&self, what: &str) -> anyhow::Result<()> {
        let until = tokio::time::Instant::now() + HOLD;
        while tokio::time::Instant::now() < until {
            let tasks = site_tasks(&self.admin).await?;
            ensure!(tasks.iter().all(|(_, _, dialed)| *dialed == 0), "{what}: the site took a number: {tasks:?}");
            let attempts = hq_attempts(&self.hub_db)?;
            ensure!(attempts.is_empty(), "{what}: the site dialed: {attempts:?}");
            ensure!(self.appliance.store.figures_now()?.calls_dialing == 0, "{what}: a call is ringing");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(())
    }

    /// Waits until `n` calls were dialed and ended (put through to the agent, or abandoned
    /// when two tasks' answers came at once for the one agent), each number once, and checks
    /// the carrier saw exactly `n` calls.
    async fn finishes(self, n: usize) -> anyhow::Result<Vec<(u64, u64, String, bool)>> {
        let attempts = wait_for_some(Duration::from_secs(120), || async {
            let attempts = hq_attempts(&self.hub_db).ok()?;
            (attempts.len() >= n).then_some(attempts)
        })
        .await
        .with_context(|| format!("every one of the {n} numbers is dialed once HQ lets the site, and HQ hears of it"))?;
        let rows: std::collections::BTreeSet<(u64, u64)> = attempts.iter().map(|(batch, row, _, _)| (*batch, *row)).collect();
        ensure!(attempts.len() == n && rows.len() == n, "each number dialed once: {attempts:?}");
        ensure!(attempts.iter().all(|(_, _, outcome, answered)| *answered || outcome == "abandoned"), "{attempts:?}");
        let carrier = self.carrier.wait(Duration::from_secs(60)).await;
        carrier.ensure_success().context("carrier scenario")?;
        ensure!(carrier.successful_calls() == Some(n as u64), "the carrier saw {n} calls: {:?}", carrier.successful_calls());
        self.desk.cancel();
        self.agent.await??;
        // The phone answers what reached it; how many did depends on when answers came.
        drop(self.phone);
        Ok(attempts)
    }
}

/// Waits until the site lists `n` tasks, all received whole; their batch ids, oldest first.
async fn site_batches(site_admin: &Api, n: usize) -> anyhow::Result<Vec<u64>> {
    wait_for_some(Duration::from_secs(60), || async {
        let tasks = site_tasks(site_admin).await.ok()?;
        let mut ids: Vec<u64> = tasks.iter().filter(|(_, status, _)| status != "receiving").map(|(id, _, _)| *id).collect();
        ids.sort_unstable();
        (ids.len() == n).then_some(ids)
    })
    .await
    .with_context(|| format!("{n} batches reach the site over the link"))
}

async fn wait_status(site_admin: &Api, batch_id: u64, status: &str, why: &str) -> anyhow::Result<()> {
    let waited =
        wait_until(Duration::from_secs(60), || async { task_status(site_admin, batch_id).await.as_deref() == Some(status) }).await;
    if waited.is_err() {
        let tasks = site_tasks(site_admin).await.unwrap_or_default();
        return waited.with_context(|| format!("{why}: site task {batch_id} shows {status}; the site's tasks: {tasks:?}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_click_pause_at_hq_holds_every_batch_of_the_project_until_hq_starts_it() -> anyhow::Result<()> {
    logging();
    let dir = tempfile::tempdir()?;
    let site_dir = dir.path().join("site");
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let (hub, hq_password) = tests::start_hub(&dir.path().join("hub"), shutdown.clone()).await?;
    let hq = Api::login(&format!("http://{}", hub.http_addr), "admin", &hq_password).await?;

    let site_id = enroll_site(&hq, "一键职场", &site_dir, hub.sync_addr).await?;
    dispatch_demo_list(&hq, "一键类", &dir.path().join("第一批.xlsx"), 2, "一键第一批", site_id).await?;
    let (category_id, project_id) = newest_project(&hq).await?;
    let site = WorkingSite::start(&site_dir, &dir.path().join("hub").join("hub.sqlite3"), 4, shutdown.clone()).await?;
    let first = site_batches(&site.admin, 1).await?[0];

    // HQ pauses the category (the console sends the category id as a number).
    let paused: Value = hq.post("/api/one-click", &json!({"action": "pause", "category_id": category_id})).await?;
    ensure!(paused["changed"] == json!(1), "the one batch HQ had was paused: {paused}");
    wait_status(&site.admin, first, "paused", "HQ's one-click pause reaches the site").await?;

    // A batch dispatched after the pause is held too.
    let second_rows = [("13900138101", "孙丽", "5G畅享169元"), ("13900138102", "周强", "流量包30元")];
    import_and_dispatch(
        &hq,
        project_id,
        &dir.path().join("第二批.xlsx"),
        &second_rows,
        json!({"name": "一键第二批", "priority": 60, "site_ids": [site_id]}),
    )
    .await?;
    let batches = site_batches(&site.admin, 2).await?;
    let second = batches[1];
    ensure!(batches[0] == first, "{batches:?}");
    wait_status(&site.admin, second, "paused", "a batch dispatched after the pause arrives held").await?;

    // The site cannot undo HQ's pause: it starts both tasks, and nothing is dialed.
    site.start_task(first).await?;
    site.start_task(second).await?;
    site.dials_nothing("one-click paused at HQ, started at the site").await?;
    ensure!(task_status(&site.admin, second).await.as_deref() == Some("paused"), "still held");

    // HQ starts the category again: every number of both batches is dialed.
    let started: Value = hq.post("/api/one-click", &json!({"action": "start", "category_id": category_id})).await?;
    ensure!(started["changed"] == json!(1), "the paused batch got its priority back: {started}");
    let attempts = site.finishes(4).await?;
    let mut batches_dialed: Vec<u64> = attempts.iter().map(|(batch, _, _, _)| *batch).collect();
    batches_dialed.sort_unstable();
    ensure!(batches_dialed == vec![first, first, second, second], "{batches_dialed:?}");

    // HQ hears what the site did with each one-click (the site's ControlApplied reports).
    let db = dir.path().join("hub").join("hub.sqlite3");
    let reports = wait_for_some(Duration::from_secs(30), || async {
        let conn = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
        let n: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM site_control_reports WHERE site_id = ?1 AND target = ?2 AND applied = 1",
                rusqlite::params![site_id, format!("one_click:project:{project_id}")],
                |r| r.get(0),
            )
            .ok()?;
        (n >= 2).then_some(n)
    })
    .await
    .context("the site reports the one-click pause and start it applied")?;
    ensure!(reports == 2, "one report per press: {reports}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_paused_at_hq_while_the_site_is_offline_is_not_dialed_once_the_site_is_back() -> anyhow::Result<()> {
    logging();
    let dir = tempfile::tempdir()?;
    let site_dir = dir.path().join("site");
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let (hub, hq, hq_put) = start_hq(&dir.path().join("hub"), &shutdown).await?;

    // The box knows HQ only through the relay: cutting the relay is cutting the cable.
    let relay = UdpRelay::start(hub.sync_addr).await?;
    let site_id = enroll_site(&hq, "暂停职场", &site_dir, relay.addr).await?;
    dispatch_demo_list(&hq, "暂停类", &dir.path().join("暂停名单.xlsx"), 2, "暂停批次", site_id).await?;
    let (_, project_id) = newest_project(&hq).await?;
    let site = WorkingSite::start(&site_dir, &dir.path().join("hub").join("hub.sqlite3"), 2, shutdown.clone()).await?;
    let batch = site_batches(&site.admin, 1).await?[0];
    ensure!(task_status(&site.admin, batch).await.as_deref() == Some("not_started"), "dialable before HQ pauses");

    relay.partitioned.store(true, Ordering::SeqCst);
    wait_until(Duration::from_secs(60), || async {
        let status: Option<Value> = site.admin.get("/api/status").await.ok();
        status.is_some_and(|s| s["link"]["state"] == "offline")
    })
    .await
    .context("the site sees the HQ link offline once the cable is cut")?;

    // HQ pauses the project (项目状态: 暂停) while the site cannot hear it.
    let answer = hq_put.put_ok(&format!("/api/projects/{project_id}/settings"), &json!({"status": "paused"})).await?;
    ensure!(answer["sent_to_sites"] == json!([site_id]), "the new settings go into the site's down log: {answer}");
    ensure!(task_status(&site.admin, batch).await.as_deref() == Some("not_started"), "nothing crossed the cut cable");

    relay.partitioned.store(false, Ordering::SeqCst);
    wait_status(&site.admin, batch, "paused", "once back, the site applies HQ's pause").await?;
    site.start_task(batch).await?;
    site.dials_nothing("paused at HQ while offline, started at the site").await?;

    // HQ runs the project again: the site dials it.
    hq_put.put_ok(&format!("/api/projects/{project_id}/settings"), &json!({"status": "running"})).await?;
    let attempts = site.finishes(2).await?;
    ensure!(attempts.iter().all(|(id, _, _, _)| *id == batch), "{attempts:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribution_rules_saved_at_hq_give_an_auto_batchs_rows_to_the_named_agent_at_the_site() -> anyhow::Result<()> {
    logging();
    let dir = tempfile::tempdir()?;
    let site_dir = dir.path().join("site");
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let (hub, hq, hq_put) = start_hq(&dir.path().join("hub"), &shutdown).await?;

    let site_id = enroll_site(&hq, "归属职场", &site_dir, hub.sync_addr).await?;
    let site_password = appliance::init_admin(&site_dir, "siteadmin")?;
    let appliance = appliance::start(
        appliance::ApplianceConfig::on_loopback(&site_dir, SocketAddr::new(localhost(), free_udp_port()), 2),
        shutdown.clone(),
    )
    .await?;
    let site_url = format!("http://{}", appliance.http_addr);
    let site_admin = Api::login(&site_url, "siteadmin", &site_password).await?;
    for (extension, agent) in [("8401", "owner-a"), ("8402", "owner-b")] {
        site_admin.post::<Value>("/api/extensions", &json!({"extension": extension, "password": format!("sip-{extension}")})).await?;
        site_admin
            .post::<Value>(
                "/api/agents",
                &json!({"username": agent, "password": AGENT_PASSWORD, "name": agent, "extension": extension}),
            )
            .await?;
    }

    // HQ: the project, its site, and the rules (归属设置): 融合宽带 rows to owner-a at this
    // site; 5G rows to this site with no agent named.
    let category: Value = hq.post("/api/categories", &json!({"name": "归属类"})).await?;
    let project: Value = hq.post("/api/projects", &demo::setup::demo_project(category["id"].as_u64().context("id")?)).await?;
    let project_id = project["id"].as_u64().context("project id")?;
    hq_put.put_ok(&format!("/api/projects/{project_id}/sites"), &json!({"site_ids": [site_id]})).await?;
    let rules = |agent: &str| {
        json!({"rules": [
            {"field_key": "plan", "value": "融合宽带199元", "site_id": site_id, "agent": agent},
            {"field_key": "plan", "value": "5G畅享129元", "site_id": site_id, "agent": ""}
        ]})
    };
    let saved = hq_put.put_ok(&format!("/api/projects/{project_id}/attribution"), &rules("owner-a")).await?;
    ensure!(saved["version"] == json!(1), "{saved}");

    // The site shows HQ's rule as the one it follows (it has none of its own).
    let site_rules_path = format!("/api/projects/{project_id}/rules");
    let shown = wait_for_some(Duration::from_secs(30), || async {
        let rules: Value = site_admin.get(&site_rules_path).await.ok()?;
        (rules.as_array().is_some_and(|r| !r.is_empty())).then_some(rules)
    })
    .await
    .context("HQ's attribution rules reach the site")?;
    ensure!(
        shown == json!([{"conditions": [["plan", ["融合宽带199元"]]], "all_match": false, "agent": "owner-a"}]),
        "the site's list is its own rules only, with an agent: {shown}"
    );

    let first_rows = [
        ("13700137001", "钱一", "融合宽带199元"),
        ("13700137002", "钱二", "5G畅享129元"),
        ("13700137003", "钱三", "融合宽带199元"),
        ("13700137004", "钱四", "流量包30元"),
    ];
    let outcome = import_and_dispatch(
        &hq,
        project_id,
        &dir.path().join("归属一.xlsx"),
        &first_rows,
        json!({"name": "自动批次一", "priority": 50, "kind": "auto"}),
    )
    .await?;
    ensure!(outcome["attributed"] == json!(3) && outcome["not_found"] == json!(1), "{outcome}");

    let owners = |customers: &Value| -> Vec<(String, Option<String>)> {
        let mut list: Vec<(String, Option<String>)> = customers
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| (c["fields"].to_string(), c["owner"].as_str().map(str::to_string)))
            .collect();
        list.sort();
        list
    };
    let customers = wait_for_some(Duration::from_secs(60), || async {
        let customers: Value = site_admin.get(&format!("/api/data/customers?project_id={project_id}")).await.ok()?;
        (customers.as_array().map(Vec::len) == Some(3)).then_some(customers)
    })
    .await
    .context("the auto batch reaches the site")?;
    let owned: Vec<Option<String>> = owners(&customers).into_iter().map(|(_, owner)| owner).collect();
    ensure!(
        owned.iter().filter(|o| o.as_deref() == Some("owner-a")).count() == 2 && owned.iter().filter(|o| o.is_none()).count() == 1,
        "the two 融合宽带 rows belong to owner-a, the 5G row to nobody: {customers}"
    );
    let agent_a = Api::login(&site_url, "owner-a", AGENT_PASSWORD).await?;
    let mine: Vec<Value> = agent_a.get("/api/agent/numbers").await?;
    ensure!(mine.len() == 2, "owner-a's 我的号码 lists the two rows: {mine:?}");

    // A new save replaces the list: the next auto batch's 融合宽带 rows go to owner-b.
    let saved = hq_put.put_ok(&format!("/api/projects/{project_id}/attribution"), &rules("owner-b")).await?;
    ensure!(saved["version"] == json!(2), "{saved}");
    let second_rows = [("13700137011", "孙一", "融合宽带199元"), ("13700137012", "孙二", "5G畅享129元")];
    import_and_dispatch(
        &hq,
        project_id,
        &dir.path().join("归属二.xlsx"),
        &second_rows,
        json!({"name": "自动批次二", "priority": 50, "kind": "auto"}),
    )
    .await?;
    wait_until(Duration::from_secs(60), || async {
        let Ok(customers) = site_admin.get::<Value>(&format!("/api/data/customers?project_id={project_id}")).await else {
            return false;
        };
        let owned: Vec<Option<String>> = owners(&customers).into_iter().map(|(_, owner)| owner).collect();
        owned.len() == 5
            && owned.iter().filter(|o| o.as_deref() == Some("owner-a")).count() == 2
            && owned.iter().filter(|o| o.as_deref() == Some("owner-b")).count() == 1
            && owned.iter().filter(|o| o.is_none()).count() == 2
    })
    .await
    .context("the second auto batch's 融合宽带 row belongs to owner-b, the first batch's rows stay owner-a's")?;
    let agent_b = Api::login(&site_url, "owner-b", AGENT_PASSWORD).await?;
    let mine: Vec<Value> = agent_b.get("/api/agent/numbers").await?;
    ensure!(mine.len() == 1, "owner-b's 我的号码: {mine:?}");

    // Emptying the list at HQ is a new version too: the site follows no rule any more.
    let saved = hq_put.put_ok(&format!("/api/projects/{project_id}/attribution"), &json!({"rules": []})).await?;
    ensure!(saved["version"] == json!(3), "{saved}");
    wait_until(Duration::from_secs(30), || async {
        site_admin.get::<Value>(&site_rules_path).await.is_ok_and(|rules| rules == json!([]))
    })
    .await
    .context("the emptied list reaches the site")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_settings_set_at_hq_reach_every_site_including_one_enrolled_later_and_retention_its_own_site() -> anyhow::Result<()> {
    logging();
    let dir = tempfile::tempdir()?;
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let (hub, hq, hq_put) = start_hq(&dir.path().join("hub"), &shutdown).await?;

    let start_site = |name: &'static str| {
        let site_dir = dir.path().join(name);
        let hq = &hq;
        let shutdown = shutdown.clone();
        let sync = hub.sync_addr;
        async move {
            enroll_site(hq, name, &site_dir, sync).await?;
            appliance::start(
                appliance::ApplianceConfig::on_loopback(&site_dir, SocketAddr::new(localhost(), free_udp_port()), 2),
                shutdown,
            )
            .await
        }
    };
    let early = start_site("早职场").await?;
    ensure!(early.store.link_settings()?.is_none(), "HQ set nothing yet");

    let (status, refused) = hq_put.put("/api/link-settings", &json!({"recording_upload_bytes_per_sec": 100})).await?;
    ensure!(status == StatusCode::BAD_REQUEST, "{status}: {refused}");
    ensure!(refused.to_string().contains("录音上传限速"), "the error names the field by its label: {refused}");

    let set = hq_put.put_ok("/api/link-settings", &json!({"recording_upload_bytes_per_sec": 64000})).await?;
    ensure!(set == json!({"version": 1, "recording_upload_bytes_per_sec": 64000}), "{set}");
    let capped = LinkSettings { version: 1, recording_upload_bytes_per_sec: Some(64_000) };
    wait_until(Duration::from_secs(30), || async { early.store.link_settings().ok().flatten().as_ref() == Some(&capped) })
        .await
        .context("the cap reaches the enrolled site's store")?;

    // A site's recording retention (录音保留天数) goes down that site's link only.
    let sites: Value = hq.get("/api/sites").await?;
    let early_id = sites.as_array().into_iter().flatten().find(|site| site["name"] == "早职场").context("the early site")?["id"].clone();
    let retention_path = format!("/api/sites/{early_id}/recording-retention");
    let (status, refused) = hq_put.put(&retention_path, &json!({"recording_retention_days": 0})).await?;
    ensure!(status == StatusCode::BAD_REQUEST && refused.to_string().contains("录音保留天数"), "{status}: {refused}");
    let kept = hq_put.put_ok(&retention_path, &json!({"recording_retention_days": 30})).await?;
    ensure!(kept["version"] == 1 && kept["recording_retention_days"] == 30, "{kept}");
    wait_until(Duration::from_secs(30), || async { early.store.recording_retention_days().ok().flatten() == Some(30) })
        .await
        .context("the retention reaches the site's store")?;

    // The sites page (职场) shows the cap in the admin's link-settings form.
    let page = String::from_utf8(hq.get_bytes("/sites").await?)?;
    ensure!(
        page.contains(r#"name="recording_upload_bytes_per_sec" type="number" min="8000" step="1000" value="64000""#),
        "the sites page shows the cap: {page}"
    );
    ensure!(page.contains(r#"name="recording_retention_days" type="number" min="1" max="3650" value="30""#), "and the retention: {page}");

    let late = start_site("晚职场").await?;
    wait_until(Duration::from_secs(30), || async { late.store.link_settings().ok().flatten().as_ref() == Some(&capped) })
        .await
        .context("a site enrolled after the change is sent the current settings")?;

    let cleared = hq_put.put_ok("/api/link-settings", &json!({"recording_upload_bytes_per_sec": null})).await?;
    ensure!(cleared == json!({"version": 2, "recording_upload_bytes_per_sec": null}), "{cleared}");
    let shown: Value = hq.get("/api/link-settings").await?;
    ensure!(shown == cleared, "{shown}");
    let uncapped = LinkSettings { version: 2, recording_upload_bytes_per_sec: None };
    for site in [&early, &late] {
        wait_until(Duration::from_secs(30), || async { site.store.link_settings().ok().flatten().as_ref() == Some(&uncapped) })
            .await
            .context("lifting the cap reaches every site")?;
    }
    ensure!(late.store.recording_retention_days()?.is_none(), "the other site's retention is its own");
    Ok(())
}
