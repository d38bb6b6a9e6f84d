//! The web UI and JSON API, in-process over real HTTP: logins, roles, agent states, the
//! popup over server-sent events, and a saved record reaching the outbox.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use appliance::{Appliance, ApplianceConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sync_link::SiteStore;
use sync_protocol::UpEvent;
use tokio_util::sync::CancellationToken;

use common::*;

struct Site {
    url: String,
    appliance: Appliance,
    admin_password: String,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Site {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start_site(rtp_base: u16) -> anyhow::Result<Site> {
    let dir = tempfile::tempdir()?;
    let admin_password = appliance::init_admin(dir.path(), "siteadmin")?;
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let config = ApplianceConfig {
        data_dir: dir.path().to_path_buf(),
        http_bind: SocketAddr::new(localhost, 0),
        sip_bind: SocketAddr::new(localhost, 0),
        public_ip: localhost,
        rtp_ports: (rtp_base, rtp_base + 99),
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
    Ok(Site { url: format!("http://{}", appliance.http_addr), appliance, admin_password, shutdown, _dir: dir })
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> anyhow::Result<(StatusCode, Value)> {
    let response = client.post(url).json(&body).send().await?;
    let status = response.status();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, body))
}

async fn login(site: &Site, username: &str, password: &str) -> anyhow::Result<reqwest::Client> {
    let client = client();
    let (status, body) =
        post(&client, format!("{}/api/login", site.url), json!({"username": username, "password": password})).await?;
    if status != StatusCode::OK {
        bail!("login of {username} failed: {status} {body}");
    }
    Ok(client)
}

/// Admin plus two agents on extensions 8001 and 8002.
async fn staffed_site(rtp_base: u16) -> anyhow::Result<(Site, reqwest::Client, reqwest::Client, reqwest::Client)> {
    let site = start_site(rtp_base).await?;
    let admin = login(&site, "siteadmin", &site.admin_password).await?;
    for (extension, username) in [("8001", "agent1"), ("8002", "agent2")] {
        let (status, body) = post(
            &admin,
            format!("{}/api/extensions", site.url),
            json!({"extension": extension, "password": "sip-secret"}),
        )
        .await?;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = post(
            &admin,
            format!("{}/api/agents", site.url),
            json!({"username": username, "password": "agent-pass", "name": username, "extension": extension}),
        )
        .await?;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let agent1 = login(&site, "agent1", "agent-pass").await?;
    let agent2 = login(&site, "agent2", "agent-pass").await?;
    Ok((site, admin, agent1, agent2))
}

#[tokio::test]
async fn logins_and_role_refusals() -> anyhow::Result<()> {
    let (site, admin, agent1, _agent2) = staffed_site(32000).await?;
    let anonymous = client();

    let (status, body) = post(
        &anonymous,
        format!("{}/api/login", site.url),
        json!({"username": "siteadmin", "password": "wrong-password"}),
    )
    .await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // No session: the API answers 401, pages go to the login page.
    assert_eq!(anonymous.get(format!("{}/api/tasks", site.url)).send().await?.status(), StatusCode::UNAUTHORIZED);
    let page = anonymous.get(format!("{}/desk", site.url)).send().await?;
    assert_eq!(page.url().path(), "/login");
    assert!(page.text().await?.contains("登录"));

    // An agent reaches no admin route.
    let (status, _) =
        post(&agent1, format!("{}/api/extensions", site.url), json!({"extension": "8009", "password": "whatever1"}))
            .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = post(
        &agent1,
        format!("{}/api/agents", site.url),
        json!({"username": "x", "password": "whatever1", "name": "x", "extension": "8001"}),
    )
    .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(agent1.get(format!("{}/api/tasks", site.url)).send().await?.status(), StatusCode::FORBIDDEN);
    let (status, _) = post(&agent1, format!("{}/api/tasks/1/start", site.url), json!({"ratio": 2, "max_concurrency": 2})).await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(agent1.get(format!("{}/admin/tasks", site.url)).send().await?.status(), StatusCode::FORBIDDEN);

    // The admin has no agent desk.
    let (status, _) = post(&admin, format!("{}/api/agent/state", site.url), json!({"state": "available"})).await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(admin.get(format!("{}/desk", site.url)).send().await?.status(), StatusCode::FORBIDDEN);

    // Form errors name the problem.
    let (status, body) =
        post(&admin, format!("{}/api/extensions", site.url), json!({"extension": "8001", "password": "sip-secret"})).await?;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = post(
        &admin,
        format!("{}/api/agents", site.url),
        json!({"username": "agent3", "password": "agent-pass", "name": "", "extension": "9999"}),
    )
    .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap_or_default().contains("9999"), "{body}");
    let (status, body) =
        post(&admin, format!("{}/api/tasks/424242/start", site.url), json!({"ratio": 2, "max_concurrency": 2})).await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    Ok(())
}

#[tokio::test]
async fn agent_states_show_in_the_status() -> anyhow::Result<()> {
    let (site, admin, agent1, agent2) = staffed_site(32200).await?;
    let (status, body) = post(&agent1, format!("{}/api/agent/state", site.url), json!({"state": "available"})).await?;
    assert_eq!((status, body["state"].as_str()), (StatusCode::OK, Some("available")));
    let (status, _) = post(&agent2, format!("{}/api/agent/state", site.url), json!({"state": "break"})).await?;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = post(&agent2, format!("{}/api/agent/state", site.url), json!({"state": "lunch"})).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap_or_default().contains("lunch"), "{body}");

    let status: Value = admin.get(format!("{}/api/status", site.url)).send().await?.json().await?;
    assert_eq!(status["agents"]["available"], 1, "{status}");
    assert_eq!(status["agents"]["break"], 1, "{status}");
    assert_eq!(status["link"]["state"], "not_enrolled", "{status}");
    assert_eq!(status["outbox"], 0);
    assert!(status["lines"]["problem"].as_str().unwrap_or_default().contains("trunk"), "{status}");

    let agents: Value = admin.get(format!("{}/api/agents", site.url)).send().await?.json().await?;
    let states: Vec<&str> = agents.as_array().context("list")?.iter().filter_map(|a| a["state"].as_str()).collect();
    assert_eq!(states, vec!["available", "break"]);
    Ok(())
}

/// Reads the event stream until a `popup` event arrives.
async fn next_popup(response: &mut reqwest::Response, buffer: &mut String, timeout: Duration) -> anyhow::Result<Value> {
    loop {
        if let Some(start) = buffer.find("event: popup\n") {
            let rest = &buffer[start..];
            if let Some(end) = rest.find("\n\n") {
                let block = rest[..end].to_string();
                buffer.drain(..start + end + 2);
                let data: String = block
                    .lines()
                    .filter_map(|line| line.strip_prefix("data:"))
                    .map(|data| data.trim_start())
                    .collect();
                return Ok(serde_json::from_str(&data)?);
            }
        }
        let chunk = tokio::time::timeout(timeout, response.chunk())
            .await
            .context("no popup in time")??
            .context("event stream closed")?;
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn popup_reaches_only_its_agent_and_the_saved_record_goes_to_the_outbox() -> anyhow::Result<()> {
    let (site, admin, agent1, agent2) = staffed_site(32400).await?;
    let store = site.appliance.store.clone();
    let rows = rows(90, 2);
    for entry in entries(1, batch_events(90, &rows, 2, 50, 1)) {
        store.apply_down(&entry)?;
    }
    let tasks: Value = admin.get(format!("{}/api/tasks", site.url)).send().await?.json().await?;
    assert_eq!(tasks[0]["batch_id"], 90, "{tasks}");
    assert_eq!((tasks[0]["numbers"].as_u64(), tasks[0]["status"].as_str()), (Some(2), Some("not_started")));
    assert_eq!(tasks[0]["project"], "家庭套餐 v1");

    // Task settings sent with the start but without a dial mode are applied, not dropped;
    // the rest stay as they were.
    let url = format!("{}/api/tasks/90/start", site.url);
    let start = json!({"ratio": 1, "max_concurrency": 1, "queue_timeout": 50, "cool_down": 7});
    let (status, reply) = post(&admin, url.clone(), start).await?;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let detail: Value = admin.get(format!("{}/api/tasks/90", site.url)).send().await?.json().await?;
    let extras = &detail["settings"]["extras"];
    assert_eq!((extras["queue_timeout"].as_u64(), extras["cool_down"].as_u64()), (Some(50), Some(7)), "{detail}");
    assert_eq!((extras["dial_mode"].as_str(), extras["caller"].as_str()), (Some("predictive"), Some("")), "{detail}");
    // A caller line this site does not have is refused by name, not ignored.
    let (status, reply) = post(&admin, url.clone(), json!({"ratio": 1, "max_concurrency": 1, "caller": "line-9"})).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert!(reply.to_string().contains("line-9"), "the caller is named: {reply}");
    let (status, reply) = post(&admin, url, json!({"ratio": 1, "max_concurrency": 1, "queue_timeout": "long"})).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert!(reply.to_string().contains("queue_timeout") || reply.to_string().contains("排队"), "the field is named: {reply}");
    admin.post(format!("{}/api/tasks/90/stop", site.url)).send().await?;

    // A call put through to agent1 (the lines' part is covered by the SIP test).
    let claimed = store.claim_next_number(90)?.context("a number")?;
    store.mark_bridged(claimed.attempt_id, "agent1")?;

    let mut events = agent1.get(format!("{}/api/agent/events", site.url)).send().await?;
    assert_eq!(events.status(), StatusCode::OK);
    let mut buffer = String::new();
    let popup = next_popup(&mut events, &mut buffer, Duration::from_secs(5)).await?;
    assert_eq!(popup["attempt_id"], claimed.attempt_id);
    assert_eq!(popup["phone"], "138****9000", "the project hides the middle digits");
    assert_eq!(popup["fields"], json!([{"key": "name", "title": "姓名", "value": "客户0"}]));
    assert_eq!(popup["script"], "您好，这里是客服中心。");
    assert_eq!(popup["record_fields"][0]["kind"], "single_choice");
    assert_eq!(popup["record_fields"][0]["required"], true);

    // agent2's stream carries no popup of agent1's.
    let mut other = agent2.get(format!("{}/api/agent/events", site.url)).send().await?;
    let mut other_buffer = String::new();
    assert!(next_popup(&mut other, &mut other_buffer, Duration::from_millis(1500)).await.is_err(), "agent2 must not see agent1's popup");

    let record_url = format!("{}/api/attempts/{}/record", site.url, claimed.attempt_id);
    let (status, _) = post(&agent2, record_url.clone(), json!({"values": {"result": "成功"}})).await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = post(&admin, record_url.clone(), json!({"values": {"result": "成功"}})).await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = post(&agent1, record_url.clone(), json!({"values": {"note": "没说完"}})).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"].as_str().unwrap_or_default().contains("办理结果"), "{body}");
    assert_eq!(store.outbox_len()?, 0);

    let (status, body) = post(&agent1, record_url, json!({"values": {"result": "成功", "note": "已办理"}})).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let outbox = store.outbox_after(0, 10)?;
    assert_eq!(outbox.len(), 1);
    let UpEvent::BusinessRecord(record) = &outbox[0].event else { bail!("expected a business record: {outbox:?}") };
    assert_eq!(record.attempt_id, claimed.attempt_id);
    assert_eq!(record.agent, "agent1");
    assert_eq!(record.values, vec![("result".into(), "成功".into()), ("note".into(), "已办理".into())]);

    // Saved: a reconnecting desk gets no popup for it again.
    let mut again = agent1.get(format!("{}/api/agent/events", site.url)).send().await?;
    let mut again_buffer = String::new();
    assert!(next_popup(&mut again, &mut again_buffer, Duration::from_millis(1500)).await.is_err());
    Ok(())
}

#[tokio::test]
async fn pages_render_in_chinese_and_english() -> anyhow::Result<()> {
    let (site, admin, agent1, _agent2) = staffed_site(32600).await?;
    let store = site.appliance.store.clone();
    for entry in entries(1, batch_events(91, &rows(91, 1), 1, 50, 1)) {
        store.apply_down(&entry)?;
    }
    let tasks = admin.get(format!("{}/admin/tasks", site.url)).send().await?.text().await?;
    assert!(tasks.contains("下发任务管理") && tasks.contains("批次91") && tasks.contains("启动任务"), "{tasks}");
    let desk = agent1.get(format!("{}/desk", site.url)).send().await?.text().await?;
    assert!(desk.contains("可回接") && desk.contains("不可回接") && desk.contains("小休") && desk.contains("离开"));
    assert!(desk.contains("/assets/app.js"));

    // The language switch is a cookie; it survives to the next page.
    let switched = admin
        .get(format!("{}/lang/en", site.url))
        .header("Referer", format!("{}/admin/extensions", site.url))
        .send()
        .await?;
    assert_eq!(switched.url().path(), "/admin/extensions");
    let page = switched.text().await?;
    assert!(page.contains("Extensions") && page.contains("8001"), "{page}");
    let js = admin.get(format!("{}/assets/app.js", site.url)).send().await?;
    assert_eq!(js.headers()["content-type"], "text/javascript; charset=utf-8");
    Ok(())
}
