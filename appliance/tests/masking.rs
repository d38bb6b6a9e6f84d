//! Masking and permissions enforced by the server, route by route: a masked number and a
//! hidden field never leave the appliance in any page, JSON, server-sent event, export or
//! download for an account whose role may not see them; a role granted "full_numbers" does
//! see the number (so the checks can fail). Also: recordings answer HTTP range requests,
//! and an agent never gets another agent's recording; with no HQ link the desk's work
//! waits in the outbox.

mod common;

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use appliance::store::{AttemptEnd, Role};
use appliance::{Appliance, ApplianceConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sync_link::SiteStore;
use sync_protocol::{Outcome, UpEvent};
use tokio_util::sync::CancellationToken;

use common::*;

/// The number of the only customer, and the value of its hidden field.
const FULL_PHONE: &str = "13800137700";
const MASKED_PHONE: &str = "138****7700";
const HIDDEN_VALUE: &str = "X0";

struct Site {
    url: String,
    appliance: Appliance,
    admin: reqwest::Client,
    agent: reqwest::Client,
    shutdown: CancellationToken,
    dir: tempfile::TempDir,
}

impl Drop for Site {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).timeout(Duration::from_secs(10)).build().expect("client")
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> anyhow::Result<(StatusCode, Value)> {
    let response = client.post(&url).json(&body).send().await?;
    let status = response.status();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

async fn post_ok(client: &reqwest::Client, url: String, body: Value) -> anyhow::Result<Value> {
    let (status, body) = post(client, url.clone(), body).await?;
    if !status.is_success() {
        bail!("POST {url}: {status} {body}");
    }
    Ok(body)
}

async fn text(client: &reqwest::Client, url: String) -> anyhow::Result<(StatusCode, String)> {
    let response = client.get(&url).send().await.with_context(|| format!("GET {url}"))?;
    let status = response.status();
    Ok((status, response.text().await?))
}

/// Reads a server-sent event stream until `needle` appears or `timeout` passes.
async fn read_events(client: &reqwest::Client, url: String, needle: &str, timeout: Duration) -> anyhow::Result<String> {
    let mut response = client.get(&url).send().await?;
    if !response.status().is_success() {
        bail!("GET {url}: {}", response.status());
    }
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while !seen.contains(needle) {
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            _ => bail!("{url}: no {needle:?} within {timeout:?}; got {seen}"),
        }
    }
    Ok(seen)
}

/// A site with one agent, one bridged and recorded call of customer 13800137700.
async fn site_with_a_call() -> anyhow::Result<(Site, u64)> {
    let dir = tempfile::tempdir()?;
    let admin_password = appliance::init_admin(dir.path(), "siteadmin")?;
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let config = ApplianceConfig {
        data_dir: dir.path().to_path_buf(),
        http_bind: SocketAddr::new(localhost, 0),
        sip_bind: SocketAddr::new(localhost, 0),
        public_ip: localhost,
        rtp_ports: (0, 0),
        trunks: Vec::new(),
        hold_audio: None,
        telephony: Default::default(),
        web: Default::default(),
        stop_grace: std::time::Duration::from_secs(30),
        recordings: Default::default(),
        panel: Default::default(),
        inbound_queue: std::time::Duration::from_secs(60),
    };
    let shutdown = CancellationToken::new();
    let appliance = appliance::start(config, shutdown.clone()).await?;
    let url = format!("http://{}", appliance.http_addr);
    for entry in entries(1, batch_events(77, &rows(77, 1), 10, 50, 1)) {
        appliance.store.apply_down(&entry)?;
    }
    let admin = client();
    post_ok(&admin, format!("{url}/api/login"), json!({"username": "siteadmin", "password": admin_password})).await?;
    post_ok(&admin, format!("{url}/api/extensions"), json!({"extension": "1001", "password": "secret-1001"})).await?;
    post_ok(&admin, format!("{url}/api/extensions"), json!({"extension": "1002", "password": "secret-1002"})).await?;
    for (username, extension) in [("agent1", "1001"), ("agent2", "1002")] {
        post_ok(
            &admin,
            format!("{url}/api/agents"),
            json!({"username": username, "password": "agent-pass", "extension": extension}),
        )
        .await?;
    }
    post_ok(&admin, format!("{url}/api/tasks/77/start"), json!({"ratio": 1, "max_concurrency": 1})).await?;
    let agent = client();
    post_ok(&agent, format!("{url}/api/login"), json!({"username": "agent1", "password": "agent-pass"})).await?;

    // The call itself is written through the store as the dialer driver would (no SIP here;
    // the SIPp tests cover the lines).
    let store = &appliance.store;
    let claimed = store.claim_next_number(77)?.context("a number")?;
    store.mark_answered(claimed.attempt_id, 100)?;
    store.mark_bridged(claimed.attempt_id, "agent1")?;
    let wav = dir.path().join("recordings").join("call.wav");
    std::fs::create_dir_all(wav.parent().context("parent")?)?;
    let bytes: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&wav, &bytes)?;
    store.finish_attempt(
        claimed.attempt_id,
        &AttemptEnd {
            outcome: Outcome::Connected,
            hangup_side: None,
            ended_at: 160,
            recording_path: Some(wav),
            recording_sha256: Some("ab".repeat(32)),
        },
    )?;
    Ok((Site { url, appliance, admin, agent, shutdown, dir }, claimed.attempt_id))
}

fn assert_clean(route: &str, body: &str) {
    assert!(!body.contains(FULL_PHONE), "{route} leaked the full number: {body}");
    assert!(!body.contains("internal_code"), "{route} leaked a hidden field's key: {body}");
    assert!(!body.contains(&format!(">{HIDDEN_VALUE}<")) && !body.contains(&format!("\"{HIDDEN_VALUE}\"")), "{route} leaked a hidden value: {body}");
}

#[tokio::test]
async fn no_route_leaks_a_masked_number_or_a_hidden_field() -> anyhow::Result<()> {
    let (site, attempt_id) = site_with_a_call().await?;
    let url = site.url.clone();

    // The popup comes back on the agent's event stream while the record is unsaved.
    let events = read_events(&site.agent, format!("{url}/api/agent/events"), "event: popup", Duration::from_secs(5)).await?;
    assert!(events.contains(MASKED_PHONE), "{events}");
    assert_clean("SSE /api/agent/events", &events);

    post_ok(&site.agent, format!("{url}/api/attempts/{attempt_id}/record"), json!({"values": {"result": "成功"}})).await?;
    post_ok(
        &site.agent,
        format!("{url}/api/attempts/{attempt_id}/callbacks"),
        json!({"title": "下午回访", "due_at": 4_000_000_000i64, "note": "客户要求"}),
    )
    .await?;
    post_ok(&site.agent, format!("{url}/api/customers/77/77000"), json!({"values": {"name": "王先生"}})).await?;

    let agent_routes = [
        "/desk",
        "/desk/records",
        "/desk/callbacks",
        "/desk/customers",
        "/desk/numbers?project_id=7",
        "/desk/settings",
        "/api/agent/records",
        "/api/agent/customers",
        "/api/agent/callbacks",
        "/api/agent/numbers",
        "/api/agent/projects",
        "/api/status",
    ];
    for route in agent_routes {
        let (status, body) = text(&site.agent, format!("{url}{route}")).await?;
        assert_eq!(status, StatusCode::OK, "agent {route}: {body}");
        assert_clean(&format!("agent {route}"), &body);
    }
    let (_, records) = text(&site.agent, format!("{url}/api/agent/records")).await?;
    assert!(records.contains(MASKED_PHONE) && records.contains("王先生"), "{records}");

    let admin_routes = [
        "/admin/tasks",
        "/admin/tasks/77",
        "/admin/project-tasks/7",
        "/admin/attribution",
        "/admin/data?tab=customers",
        "/admin/data?tab=business",
        "/admin/data?tab=callbacks",
        "/admin/status",
        "/api/tasks",
        "/api/tasks/77",
        "/api/data/customers",
        "/api/data/records",
        "/api/data/callbacks",
        "/api/status",
    ];
    for route in admin_routes {
        let (status, body) = text(&site.admin, format!("{url}{route}")).await?;
        assert_eq!(status, StatusCode::OK, "admin {route}: {body}");
        assert_clean(&format!("admin {route}"), &body);
    }
    let (_, business) = text(&site.admin, format!("{url}/api/data/records")).await?;
    assert!(business.contains(MASKED_PHONE) && business.contains("成功"), "{business}");
    let monitor = read_events(&site.admin, format!("{url}/api/monitor/events"), "event: monitor", Duration::from_secs(5)).await?;
    assert_clean("SSE /api/monitor/events", &monitor);

    // The xlsx export, cell by cell.
    let xlsx = site.admin.get(format!("{url}/api/data/records.xlsx")).send().await?;
    assert_eq!(xlsx.status(), StatusCode::OK);
    let bytes = xlsx.bytes().await?;
    let mut workbook: calamine::Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes.to_vec()))?;
    let range = calamine::Reader::worksheet_range(&mut workbook, "业务资料")?;
    let cells: Vec<String> = range.cells().map(|(_, _, cell)| cell.to_string()).collect();
    assert!(cells.contains(&MASKED_PHONE.to_string()) && cells.contains(&"成功".to_string()), "{cells:?}");
    assert_clean("xlsx export", &cells.join("|"));
    // Outcomes in words and times in the site's report zone, as the pages show them.
    assert!(cells.contains(&"接通".to_string()), "the outcome in words: {cells:?}");
    assert!(!cells.iter().any(|c| c == "connected" || c.ends_with("UTC")), "no stored key, no UTC: {cells:?}");

    // The recordings export: names carry the masked number only.
    let zip = site.admin.get(format!("{url}/api/data/recordings.zip")).send().await?.bytes().await?;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip.to_vec()))?;
    let name = archive.by_index(0)?.name().to_string();
    assert_eq!(name, format!("{attempt_id}_138xxxx7700.wav"));
    let mut content = Vec::new();
    archive.by_index(0)?.read_to_end(&mut content)?;
    assert_eq!(content.len(), 10_000);

    // A staff role with full_numbers sees the number; hidden fields stay hidden.
    let (_, role) = post(
        &site.admin,
        format!("{url}/api/roles"),
        json!({"name": "值班长", "modules": ["data", "export", "full_numbers"]}),
    )
    .await?;
    let role_id = role["role_id"].as_u64().context("role id")?;
    post_ok(&site.admin, format!("{url}/api/staff"), json!({"username": "lead", "password": "lead-pass", "role_id": role_id})).await?;
    let lead = client();
    post_ok(&lead, format!("{url}/api/login"), json!({"username": "lead", "password": "lead-pass"})).await?;
    let (_, unmasked) = text(&lead, format!("{url}/api/data/records")).await?;
    assert!(unmasked.contains(FULL_PHONE), "{unmasked}");
    assert!(!unmasked.contains("internal_code"), "{unmasked}");
    // ... and nothing outside its modules.
    let (status, _) = text(&lead, format!("{url}/api/tasks/77")).await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = text(&lead, format!("{url}/admin/roles")).await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    Ok(())
}

#[tokio::test]
async fn recordings_play_with_ranges_and_only_for_their_agent() -> anyhow::Result<()> {
    let (site, attempt_id) = site_with_a_call().await?;
    let url = format!("{}/api/attempts/{attempt_id}/recording", site.url);
    let whole = site.agent.get(&url).send().await?;
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.headers()["content-type"], "audio/wav");
    assert_eq!(whole.bytes().await?.len(), 10_000);

    let part = site.agent.get(&url).header("Range", "bytes=100-199").send().await?;
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.headers()["content-range"], "bytes 100-199/10000");
    let bytes = part.bytes().await?;
    assert_eq!(bytes.len(), 100);
    assert_eq!(bytes[0], 100, "byte 100 of the file holds 100 % 251");

    let download = site.agent.get(format!("{url}?download=1")).send().await?;
    assert_eq!(download.status(), StatusCode::OK);
    assert!(download.headers()["content-disposition"].to_str()?.starts_with("attachment"));

    // Another agent gets the same answer as for a call without a recording.
    let other = client();
    post_ok(&other, format!("{}/api/login", site.url), json!({"username": "agent2", "password": "agent-pass"})).await?;
    assert_eq!(other.get(&url).send().await?.status(), StatusCode::NOT_FOUND);

    // A role without "download" may play but not download.
    let (_, role) = post(&site.admin, format!("{}/api/roles", site.url), json!({"name": "试听", "modules": ["records"]})).await?;
    let agent1_id = site.appliance.store.users()?.into_iter().find(|u| u.username == "agent1").context("agent1")?.user_id;
    post_ok(&site.admin, format!("{}/api/accounts/{agent1_id}/role", site.url), json!({"role_id": role["role_id"]})).await?;
    assert_eq!(site.agent.get(&url).send().await?.status(), StatusCode::OK);
    assert_eq!(site.agent.get(format!("{url}?download=1")).send().await?.status(), StatusCode::FORBIDDEN);
    let (status, _) = text(&site.agent, format!("{}/api/agent/callbacks", site.url)).await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "the role has no callbacks module");
    assert_eq!(site.appliance.store.users()?.iter().filter(|u| u.role == Role::Agent).count(), 2);
    Ok(())
}

#[tokio::test]
async fn without_hq_the_desk_keeps_working_and_the_outbox_keeps_it() -> anyhow::Result<()> {
    // This box was never enrolled: exactly the state of a site whose HQ link is down.
    let (site, attempt_id) = site_with_a_call().await?;
    let url = site.url.clone();
    let (_, status) = text(&site.admin, format!("{url}/api/status")).await?;
    assert!(status.contains("not_enrolled"), "{status}");
    post_ok(&site.agent, format!("{url}/api/attempts/{attempt_id}/record"), json!({"values": {"result": "失败", "note": "再联系"}})).await?;
    post_ok(&site.agent, format!("{url}/api/attempts/{attempt_id}/callbacks"), json!({"title": "改天", "due_at": 4_000_000_000i64})).await?;
    let status: Value = site.admin.get(format!("{url}/api/status")).send().await?.json().await?;
    assert_eq!(status["outbox"], 3, "{status}");
    let kinds: Vec<String> = site
        .appliance
        .store
        .outbox_after(0, 10)?
        .into_iter()
        .map(|entry| match entry.event {
            UpEvent::CallAttemptDetail(_) => "attempt".to_string(),
            UpEvent::BusinessRecord(record) => format!("record:{}", record.values.len()),
            UpEvent::Callback(callback) => format!("callback:{}", callback.row_id),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, vec!["attempt", "record:2", "callback:77000"]);
    drop(site.dir.path().to_path_buf());
    Ok(())
}
