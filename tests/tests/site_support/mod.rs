//! What the site's browser scenarios share: an appliance with one trunk toward a SIPp
//! carrier and a verified batch from "HQ", SIPp as the agent's phone and as the carrier, and
//! logging in through the login page.

// Each scenario binary uses a different part of this module.
#![allow(dead_code)]

pub mod enrolled;
pub mod pool_checks;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use appliance::{Appliance, ApplianceConfig};
use serde_json::{Value, json};
use sync_protocol::{
    BatchChunk, BatchManifest, CustomerRow, DownEntry, DownEvent, FieldDef, FieldKind, ProjectDef, ProjectParams,
    rows_hash,
};
use tokio_util::sync::CancellationToken;

use tests::{Browser, Sipp, free_udp_port, wait_for_some, wait_until};

pub const EXTENSION: &str = "1001";
pub const SIP_PASSWORD: &str = "sip-secret-1001";
pub const AGENT_PASSWORD: &str = "agent-pass";

pub struct Site {
    pub url: String,
    pub appliance: Appliance,
    /// Logged in as the site admin, for requests a page would never send.
    pub admin: reqwest::Client,
    pub admin_password: String,
    pub shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Site {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn screenshots() -> PathBuf {
    tests::screenshot_dir()
}

pub fn field(key: &str, title: &str, kind: FieldKind, required: bool, hidden: bool) -> FieldDef {
    FieldDef { key: key.into(), title: title.into(), kind, required, read_only: false, hidden }
}

pub fn project() -> ProjectDef {
    ProjectDef {
        project_id: 7,
        category: "套餐类".into(),
        name: "家庭套餐回访".into(),
        script: "您好，这里是客服中心，耽误您一分钟介绍家庭套餐。".into(),
        hide_middle_digits: true,
        customer_fields: vec![
            field("name", "客户姓名", FieldKind::Text, false, false),
            field("plan", "推荐套餐", FieldKind::Text, false, false),
            field("internal_code", "内部编码", FieldKind::Text, false, true),
        ],
        record_fields: vec![
            field("result", "办理结果", FieldKind::SingleChoice(vec!["成功".into(), "失败".into(), "再联系".into()]), true, false),
            field("note", "备注", FieldKind::Text, false, false),
        ],
        params: ProjectParams::default(),
        version: 1,
    }
}

/// Project 8 and its batch `batch_id` of `n` customers, after [`down_log`]'s three entries:
/// a second task for the tests of tasks sharing agents.
pub fn second_project(batch_id: u64, n: u64) -> Vec<DownEntry> {
    let mut def = project();
    def.project_id = 8;
    def.name = "宽带续约回访".into();
    let rows: Vec<CustomerRow> = (0..n)
        .map(|i| CustomerRow {
            row_id: batch_id * 100_000 + i,
            phone: format!("137{i:08}"),
            fields: vec![("name".into(), format!("客户{i}")), ("plan".into(), "宽带".into())],
        })
        .collect();
    let events = vec![
        DownEvent::Project(def),
        DownEvent::BatchChunk(BatchChunk { batch_id, chunk_idx: 0, rows: rows.clone() }),
        DownEvent::BatchManifest(BatchManifest {
            batch_id,
            project_id: 8,
            name: format!("批次{batch_id}"),
            priority: 50,
            imported_at: 1_700_000_100,
            n_rows: n,
            n_chunks: 1,
            rows_hash: rows_hash(&rows),
        }),
    ];
    events.into_iter().enumerate().map(|(idx, event)| DownEntry { seq: idx as u64 + 4, event }).collect()
}

/// Project 7 and batch `batch_id` of `n` customers, as HQ's down log would bring them.
pub fn down_log(batch_id: u64, n: u64) -> Vec<DownEntry> {
    let rows: Vec<CustomerRow> = (0..n)
        .map(|i| CustomerRow {
            row_id: batch_id * 1000 + i,
            phone: format!("1390000{:04}", batch_id * 10 + i),
            fields: vec![
                ("name".into(), format!("客户{i}")),
                ("plan".into(), "融合128元".into()),
                ("internal_code".into(), format!("SECRET{i}")),
            ],
        })
        .collect();
    let events = vec![
        DownEvent::Project(project()),
        DownEvent::BatchChunk(BatchChunk { batch_id, chunk_idx: 0, rows: rows.clone() }),
        DownEvent::BatchManifest(BatchManifest {
            batch_id,
            project_id: 7,
            name: format!("批次{batch_id}"),
            priority: 50,
            imported_at: 1_700_000_000,
            n_rows: n,
            n_chunks: 1,
            rows_hash: rows_hash(&rows),
        }),
    ];
    events.into_iter().enumerate().map(|(idx, event)| DownEntry { seq: idx as u64 + 1, event }).collect()
}

pub async fn post(client: &reqwest::Client, url: String, body: Value) -> anyhow::Result<Value> {
    let response = client.post(&url).json(&body).send().await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("POST {url}: {status} {body}");
    }
    Ok(body)
}

pub async fn start_site(carrier_port: u16, batch_id: u64, n_rows: u64) -> anyhow::Result<Site> {
    start_site_with_channels(carrier_port, batch_id, n_rows, 4).await
}

/// As [`start_site`], with a trunk of `channels` lines (the most calls at once).
pub async fn start_site_with_channels(carrier_port: u16, batch_id: u64, n_rows: u64, channels: u32) -> anyhow::Result<Site> {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("appliance=info,hardware=warn").try_init();
    let dir = tempfile::tempdir()?;
    let admin_password = appliance::init_admin(dir.path(), "siteadmin")?;
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut config = ApplianceConfig::on_loopback(dir.path(), SocketAddr::new(localhost, carrier_port), channels);
    // Named by its number: tasks choose the trunk by caller number.
    config.trunks[0].name = "02150001111".into();
    let shutdown = CancellationToken::new();
    let appliance = appliance::start(config, shutdown.clone()).await?;
    for entry in down_log(batch_id, n_rows) {
        appliance.store.apply_down_entry(&entry)?;
    }
    let url = format!("http://{}", appliance.http_addr);
    let admin = reqwest::Client::builder().cookie_store(true).timeout(Duration::from_secs(20)).build()?;
    post(&admin, format!("{url}/api/login"), json!({"username": "siteadmin", "password": admin_password})).await?;
    Ok(Site { url, appliance, admin, admin_password, shutdown, _dir: dir })
}

/// [`start_site`] with extension 1001 provisioned and agent `agent1` (小王) on it.
pub async fn start_site_with_agent(carrier_port: u16, batch_id: u64, n_rows: u64) -> anyhow::Result<Site> {
    let site = start_site(carrier_port, batch_id, n_rows).await?;
    let url = &site.url;
    post(&site.admin, format!("{url}/api/extensions"), json!({"extension": EXTENSION, "password": SIP_PASSWORD})).await?;
    post(
        &site.admin,
        format!("{url}/api/agents"),
        json!({"username": "agent1", "password": AGENT_PASSWORD, "name": "小王", "extension": EXTENSION}),
    )
    .await?;
    Ok(site)
}

/// SIPp as the agent's phone, answering `calls` calls: one process answers, one registers.
pub async fn agent_phone(site_sip: SocketAddr, calls: u32) -> anyhow::Result<Sipp> {
    agent_phone_for(site_sip, EXTENSION, SIP_PASSWORD, calls).await
}

/// SIPp as the phone of `extension`: one process answers `calls` calls, one registers it.
pub async fn agent_phone_for(site_sip: SocketAddr, extension: &str, password: &str, calls: u32) -> anyhow::Result<Sipp> {
    agent_phone_with(site_sip, extension, password, Sipp::scenario("agent_answer.xml").calls(calls)).await
}

/// The phone of `extension` answering with `answering` (a scenario with its own options);
/// a second SIPp process registers it.
pub async fn agent_phone_with(
    site_sip: SocketAddr,
    extension: &str,
    password: &str,
    answering: tests::SippBuilder,
) -> anyhow::Result<Sipp> {
    let answer_port = free_udp_port();
    let phone = answering
        .local_port(answer_port)
        .media_on_loopback()
        .timeout(Duration::from_secs(150))
        .spawn()?;
    register_phone(site_sip, extension, password, answer_port).await?;
    Ok(phone)
}

/// Registers extension `extension` with its contact on `answer_port` (where a SIPp phone
/// answers); the binding lasts 120 s, so a longer run registers again.
pub async fn register_phone(site_sip: SocketAddr, extension: &str, password: &str, answer_port: u16) -> anyhow::Result<()> {
    Sipp::scenario("agent_register.xml")
        .local_port(free_udp_port())
        .remote(site_sip)
        .service(extension)
        .auth(extension, password)
        .arg("-key")
        .arg("contact_port")
        .arg(answer_port.to_string())
        .calls(1)
        .timeout(Duration::from_secs(15))
        .spawn()?
        .wait(Duration::from_secs(20))
        .await
        .ensure_success()
        .with_context(|| format!("the SIPp phone registers as extension {extension}"))?;
    Ok(())
}

/// SIPp as the carrier: answers `calls` calls and hangs each up after `talk_ms`.
pub fn carrier(port: u16, calls: u32, talk_ms: u32) -> anyhow::Result<Sipp> {
    carrier_with("carrier_answer.xml", port, calls, talk_ms)
}

/// [`carrier`] playing another scenario (one that rings before it answers, say).
pub fn carrier_with(scenario: &str, port: u16, calls: u32, talk_ms: u32) -> anyhow::Result<Sipp> {
    Sipp::scenario(scenario)
        .local_port(port)
        .calls(calls)
        .media_on_loopback()
        .arg("-d")
        .arg(talk_ms.to_string())
        .timeout(Duration::from_secs(150))
        .spawn()
}

/// Clicks the desk's state button `state` and waits until the desk shows it.
pub async fn set_state(browser: &Browser, state: &str) -> anyhow::Result<()> {
    browser.wait_for(&format!("button.state[data-state={state}]"), Duration::from_secs(10)).await?.click().await?;
    wait_for_some(Duration::from_secs(10), || async {
        let desk = browser.wait_for("#desk", Duration::from_secs(1)).await.ok()?;
        (desk.attr("data-state").await.ok()?? == state).then_some(())
    })
    .await
    .with_context(|| format!("the desk shows {state}"))
}

pub async fn login(browser: &Browser, url: &str, username: &str, password: &str) -> anyhow::Result<()> {
    browser.goto(&format!("{url}/login")).await?;
    browser.wait_for("input[name=username]", Duration::from_secs(10)).await?.send_keys(username).await?;
    browser.wait_for("input[name=password]", Duration::from_secs(5)).await?.send_keys(password).await?;
    browser.wait_for("button[type=submit]", Duration::from_secs(5)).await?.click().await?;
    wait_until(Duration::from_secs(10), || async {
        browser.client().current_url().await.map(|u| !u.path().starts_with("/login")).unwrap_or(false)
    })
    .await
    .context("login leaves the login page")?;
    Ok(())
}

/// The cells of a table's body rows (and its footer's as a last row when `foot`).
pub async fn table(browser: &Browser, css: &str, foot: bool) -> anyhow::Result<Vec<Vec<String>>> {
    browser.wait_for(css, Duration::from_secs(10)).await?;
    let rows = if foot { "tbody tr, tfoot tr" } else { "tbody tr" };
    let script = format!(
        "const t = document.querySelector({css:?});
         return [...t.querySelectorAll({rows:?})].map((tr) => [...tr.cells].map((c) => c.textContent.trim()));"
    );
    let value = browser.client().execute(&script, vec![]).await?;
    Ok(serde_json::from_value(value)?)
}

/// Waits until the ECharts chart of section `#section` is drawn.
pub async fn chart_drawn(browser: &Browser, section: &str) -> anyhow::Result<()> {
    wait_until(Duration::from_secs(10), || async {
        let drawn = browser
            .client()
            .execute(&format!("const c = document.querySelector('#{section} .chart'); return !!c && c.dataset.drawn === '1' && !!c.querySelector('canvas');"), vec![])
            .await;
        drawn.is_ok_and(|v| v == json!(true))
    })
    .await
    .with_context(|| format!("the chart of #{section} is drawn"))
}

/// The header cells of a table (`thead th`), as the page prints them.
pub async fn table_headers(browser: &Browser, css: &str) -> anyhow::Result<Vec<String>> {
    browser.wait_for(css, Duration::from_secs(10)).await?;
    let script = format!(
        "const t = document.querySelector({css:?});
         return [...t.querySelectorAll('thead th')].map((c) => c.textContent.trim());"
    );
    let value = browser.client().execute(&script, vec![]).await?;
    Ok(serde_json::from_value(value)?)
}

/// The demo's simulated desks signed in for `usernames` (after-call work drawn from
/// `wrap_up`), once the site sees all of them registered on their phones. Cancel the token
/// and join the set to end them.
pub async fn desks_on_registered_phones(
    site: &Site,
    usernames: &[&str],
    wrap_up: (Duration, Duration),
) -> anyhow::Result<(CancellationToken, tokio::task::JoinSet<anyhow::Result<()>>)> {
    let desks = CancellationToken::new();
    let mut desk_tasks = tokio::task::JoinSet::new();
    for username in usernames {
        let config = demo::agent::AgentConfig {
            appliance_url: site.url.clone(),
            username: (*username).into(),
            password: AGENT_PASSWORD.into(),
            wrap_up,
        };
        desk_tasks.spawn(demo::agent::run_agent(config, desks.clone()));
    }
    let status_url = format!("{}/api/status", site.url);
    wait_until(Duration::from_secs(15), || async {
        let Ok(response) = site.admin.get(&status_url).send().await else { return false };
        let Ok(status) = response.json::<Value>().await else { return false };
        status["lines"]["registered_extensions"].as_array().is_some_and(|list| list.len() == usernames.len())
    })
    .await
    .with_context(|| format!("the {} phones are registered", usernames.len()))?;
    Ok((desks, desk_tasks))
}
