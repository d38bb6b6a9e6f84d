//! One number travels from an HQ spreadsheet to an agent and back, through every real part.
//!
//! - HQ (in-process hub, driven over its JSON API) sets up a project, imports an `.xlsx` and
//!   dispatches it to a site enrolled with a one-time code over QUIC with mutual TLS.
//! - The appliance (in-process) receives the batch over the link; the site admin starts the
//!   task; the dialer places a real INVITE to SIPp playing the carrier.
//! - SIPp plays the agent's phone (REGISTER with digest, then auto-answer); the answered
//!   call is bridged to it and recorded.
//! - Headless Chromium logs in as the agent, goes 可回接, sees the popup arrive over SSE with
//!   the customer's fields and the script, and saves the business result.
//! - HQ shows the batch's dialed / connected counts and the saved record.
//!
//! Then bad input at each edge (a corrupted `.xlsx`, a certificate from another CA, garbage
//! on the SIP port) gets a clear error and leaves the running system and its data intact.

mod site_support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use demo::setup::{Api, dispatch_demo_list, enroll_site};
use serde_json::{Value, json};
use tests::{Browser, Sipp, free_udp_port, wait_for_some, wait_until};
use tokio_util::sync::CancellationToken;

const EXTENSION: &str = "8001";
const SIP_PASSWORD: &str = "phone-secret-8001";
const AGENT_PASSWORD: &str = "agent-secret-1";

struct Running {
    hub: hq_hub::Hub,
    site: appliance::Appliance,
    hq: Api,
    site_admin: Api,
    site_url: String,
    shutdown: CancellationToken,
    dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start_everything(carrier_port: u16) -> anyhow::Result<Running> {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info,quinn=warn,rustls=warn")
        .try_init();
    let dir = tempfile::tempdir()?;
    let hub_dir = dir.path().join("hub");
    let site_dir = dir.path().join("site");
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let shutdown = CancellationToken::new();

    let (hub, hq_password) = tests::start_hub(&hub_dir, shutdown.clone()).await?;
    let hub_url = format!("http://{}", hub.http_addr);
    let hq = Api::login(&hub_url, "admin", &hq_password).await?;

    // HQ: a site and its one-time code; the box enrolls with it. Then a category, a
    // sub-project with two customer fields and a single-choice record field, and a one-row
    // call list, dispatched as a shared batch.
    let site_id = enroll_site(&hq, "测试职场", &site_dir, hub.sync_addr).await?;
    dispatch_demo_list(&hq, "套餐类", &dir.path().join("名单.xlsx"), 1, "端到端批次", site_id).await?;

    let site_password = appliance::init_admin(&site_dir, "siteadmin")?;
    let site = appliance::start(
        appliance::ApplianceConfig::on_loopback(&site_dir, SocketAddr::new(localhost, carrier_port), 4),
        shutdown.clone(),
    )
    .await?;
    let site_url = format!("http://{}", site.http_addr);
    let site_admin = Api::login(&site_url, "siteadmin", &site_password).await?;
    site_admin
        .post::<Value>("/api/extensions", &json!({"extension": EXTENSION, "password": SIP_PASSWORD}))
        .await?;
    site_admin
        .post::<Value>(
            "/api/agents",
            &json!({"username": "agent1", "password": AGENT_PASSWORD, "name": "小李", "extension": EXTENSION}),
        )
        .await?;
    Ok(Running { hub, site, hq, site_admin, site_url, shutdown, dir })
}

async fn browser_login(browser: &Browser, url: &str, username: &str, password: &str) -> anyhow::Result<()> {
    browser.goto(&format!("{url}/login")).await?;
    browser.wait_for("input[name=username]", Duration::from_secs(10)).await?.send_keys(username).await?;
    browser.wait_for("input[name=password]", Duration::from_secs(5)).await?.send_keys(password).await?;
    browser.wait_for("button[type=submit]", Duration::from_secs(5)).await?.click().await?;
    // The login form posts with fetch and then navigates; wait for that to finish.
    wait_until(Duration::from_secs(10), || async {
        match browser.client().current_url().await {
            Ok(current) => !current.path().starts_with("/login"),
            Err(_) => false,
        }
    })
    .await
    .with_context(|| format!("{username} is logged in and leaves the login page"))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_travels_from_the_hq_sheet_to_the_agent_and_back() -> anyhow::Result<()> {
    let carrier_port = free_udp_port();
    let running = start_everything(carrier_port).await?;
    let phone = site_support::agent_phone_for(running.site.sip_addr, EXTENSION, SIP_PASSWORD, 1).await?;
    let carrier = Sipp::scenario("carrier_answer.xml")
        .local_port(carrier_port)
        .calls(1)
        .media_on_loopback()
        .arg("-d")
        .arg("6000")
        .timeout(Duration::from_secs(90))
        .spawn()?;

    // The batch arrives over the link and is verified against its manifest.
    let batch_id = wait_for_some(Duration::from_secs(30), || async {
        let tasks: Vec<Value> = running.site_admin.get("/api/tasks").await.ok()?;
        tasks.first().and_then(|task| task["batch_id"].as_u64())
    })
    .await
    .context("the dispatched batch reaches the appliance over the link")?;

    // The agent, in a real browser, signs in and goes 可回接.
    let browser = Browser::start().await?;
    browser_login(&browser, &running.site_url, "agent1", AGENT_PASSWORD).await?;
    browser.goto(&format!("{}/desk", running.site_url)).await?;
    browser
        .wait_for("button.state[data-state=available]", Duration::from_secs(10))
        .await?
        .click()
        .await?;
    wait_for_some(Duration::from_secs(10), || async {
        let desk = browser.wait_for("#desk", Duration::from_secs(1)).await.ok()?;
        (desk.attr("data-state").await.ok()?? == "available").then_some(())
    })
    .await
    .context("the desk shows 可回接 after the click")?;

    running
        .site_admin
        .post::<Value>(
            &format!("/api/tasks/{batch_id}/start"),
            &json!({"ratio": 1, "max_concurrency": 1, "ring_seconds": 20}),
        )
        .await?;

    // The popup arrives without a reload, masked on the server, with fields and script.
    let script = browser.wait_for("#popup:not([hidden]) pre.script", Duration::from_secs(40)).await?;
    assert!(script.text().await?.contains("5G畅享套餐"), "the project's script is shown");
    let phone_shown = browser.wait_for("#popup dd.phone", Duration::from_secs(2)).await?.text().await?;
    assert_eq!(phone_shown, "138****0001", "the number is masked as the project asks");
    let body = browser.wait_for("#popup .popup-body", Duration::from_secs(2)).await?.text().await?;
    assert!(body.contains("推荐套餐") && body.contains("客户姓名"), "customer fields shown: {body}");
    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("walking-skeleton");
    browser.screenshot(screenshots.join("popup.png")).await?;

    // The agent picks the business result and saves; the popup closes only then.
    browser
        .wait_for("#popup form.record select[name=result] option[value='有意向']", Duration::from_secs(2))
        .await?
        .click()
        .await?;
    browser.wait_for("#popup form.record button[type=submit]", Duration::from_secs(2)).await?.click().await?;
    wait_until(Duration::from_secs(10), || async {
        browser.wait_for("#popup[hidden]", Duration::from_millis(200)).await.is_ok()
    })
    .await
    .context("the popup closes once the record is saved")?;
    browser.screenshot(screenshots.join("desk-after-save.png")).await?;

    // HQ sees the attempt and the record, once.
    let hq_batch_id = wait_for_some(Duration::from_secs(30), || async {
        let batches: Vec<Value> = running.hq.get("/api/batches").await.ok()?;
        let batch = batches.into_iter().next()?;
        (batch["dialed"] == json!(1) && batch["connected"] == json!(1) && batch["agent_connected"] == json!(1))
            .then(|| batch["id"].as_u64())
            .flatten()
    })
    .await
    .context("HQ shows dialed 1 / connected 1")?;
    let records = wait_for_some(Duration::from_secs(30), || async {
        let records: Vec<Value> = running.hq.get(&format!("/api/batches/{hq_batch_id}/records")).await.ok()?;
        (!records.is_empty()).then_some(records)
    })
    .await
    .context("HQ shows the saved business record")?;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["values"]["result"], "有意向");
    assert_eq!(records[0]["agent"], "agent1");
    assert_eq!(records[0]["phone"], "138****0001");

    // The call's recording follows the rows on a stream of its own, addressed by its hash;
    // HQ asks for it now and gets the site's WAV byte for byte.
    let site_recordings = running.dir.path().join("site").join("recordings");
    let wav = std::fs::read_dir(&site_recordings)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "wav"))
        .context("the site recorded the call")?;
    let wav_bytes = std::fs::read(&wav)?;
    let sha = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&wav_bytes))
    };
    let site_id = records[0]["site_id"].as_u64().context("site id")?;
    let fetched: Value = running.hq.post(&format!("/api/sites/{site_id}/recordings/{sha}/fetch"), &json!({})).await?;
    assert!(fetched["state"] == "held" || fetched["state"] == "requested", "{fetched}");
    let held = wait_for_some(Duration::from_secs(30), || async {
        running.hq.get_bytes(&format!("/api/sites/{site_id}/recordings/{sha}")).await.ok()
    })
    .await
    .context("HQ holds the call's recording")?;
    assert!(held == wav_bytes, "HQ's copy of the recording is the site's");

    carrier.wait(Duration::from_secs(30)).await.ensure_success().context("carrier scenario")?;
    phone.wait(Duration::from_secs(30)).await.ensure_success().context("agent phone scenario")?;
    browser.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_at_every_edge_is_refused_and_nothing_is_lost() -> anyhow::Result<()> {
    let carrier_port = free_udp_port();
    let running = start_everything(carrier_port).await?;
    let batch_before: Vec<Value> = running.hq.get("/api/batches").await?;
    let tasks_before = wait_for_some(Duration::from_secs(30), || async {
        let tasks: Vec<Value> = running.site_admin.get("/api/tasks").await.ok()?;
        (!tasks.is_empty()).then_some(tasks)
    })
    .await?;

    // A corrupted .xlsx: a clear error, and HQ's files and batches are unchanged.
    let projects: Value = running.hq.get("/api/projects").await?;
    let project_id = projects[0]["id"].as_u64().context("project id")?;
    let broken = running.dir.path().join("坏文件.xlsx");
    std::fs::write(&broken, b"PK\x03\x04 this is not a workbook")?;
    let error = running
        .hq
        .upload::<Value>(&format!("/api/projects/{project_id}/files"), &broken)
        .await
        .expect_err("a corrupted workbook is refused");
    let message = format!("{error:#}");
    assert!(message.contains("422"), "refused as unprocessable: {message}");
    assert_eq!(running.hq.get::<Vec<Value>>("/api/batches").await?, batch_before);

    // A box holding a certificate from another hub's CA is refused at the handshake and
    // says why; the enrolled site stays online.
    let reason = stranger_is_refused(running.dir.path(), running.hub.sync_addr).await?;
    assert!(!reason.is_empty(), "the refused box gives a reason");
    let sites: Vec<Value> = running.hq.get("/api/sites").await?;
    assert_eq!(sites.len(), 1, "no site appeared from the stranger: {sites:?}");
    assert_eq!(sites[0]["online"], json!(true), "{sites:?}");

    // Garbage on the SIP port: logged and dropped; a phone still registers afterwards.
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    for garbage in [&b"\x00\x01\x02garbage"[..], b"INVITE\r\n\r\n", b"SIP/2.0 999\r\nVia: ;;;\r\n\r\n"] {
        socket.send_to(garbage, running.site.sip_addr).await?;
    }
    let phone = site_support::agent_phone_for(running.site.sip_addr, EXTENSION, SIP_PASSWORD, 1).await?;
    drop(phone);
    let tasks_after: Vec<Value> = running.site_admin.get("/api/tasks").await?;
    assert_eq!(tasks_after, tasks_before, "the site's data is intact");
    Ok(())
}

/// Enrolls a box with a second, unrelated hub, then points that box at `hub_sync`. Returns
/// the reason the box's link status gives once the running hub has refused it.
async fn stranger_is_refused(dir: &Path, hub_sync: SocketAddr) -> anyhow::Result<String> {
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let shutdown = CancellationToken::new();
    let stranger_dir = dir.join("stranger-hub");
    let (stranger, password) = tests::start_hub(&stranger_dir, shutdown.clone()).await?;
    let api = Api::login(&format!("http://{}", stranger.http_addr), "admin", &password).await?;
    let site: Value = api.post("/api/sites", &json!({"name": "陌生职场"})).await?;
    let code: Value = api.post(&format!("/api/sites/{}/enrollment-code", site["id"]), &json!({})).await?;
    let box_dir = dir.join("stranger-box");
    appliance::enroll(&box_dir, &stranger.sync_addr.to_string(), code["code"].as_str().context("code")?).await?;
    shutdown.cancel();
    stranger.wait().await;

    // The same identity files, now aimed at the running hub.
    let site_json = box_dir.join("identity").join("site.json");
    let mut identity: Value = serde_json::from_slice(&std::fs::read(&site_json)?)?;
    identity["hub"] = json!(hub_sync.to_string());
    std::fs::write(&site_json, serde_json::to_vec(&identity)?)?;

    let box_shutdown = CancellationToken::new();
    let admin_password = appliance::init_admin(&box_dir, "siteadmin")?;
    let mut stranger_box = appliance::start(
        appliance::ApplianceConfig {
            data_dir: box_dir,
            http_bind: SocketAddr::new(localhost, 0),
            sip_bind: SocketAddr::new(localhost, 0),
            public_ip: localhost,
            rtp_ports: (0, 0),
            trunks: vec![],
            hold_audio: None,
            telephony: Default::default(),
            web: Default::default(),
            stop_grace: std::time::Duration::from_secs(30),
            recordings: Default::default(),
            panel: Default::default(),
            inbound_queue: std::time::Duration::from_secs(60),
        },
        box_shutdown.clone(),
    )
    .await?;
    let box_api = Api::login(&format!("http://{}", stranger_box.http_addr), "siteadmin", &admin_password).await?;
    let reason = wait_for_some(Duration::from_secs(20), || async {
        let status: Value = box_api.get("/api/status").await.ok()?;
        (status["link"]["state"] == "offline").then(|| status["link"]["reason"].as_str().map(str::to_string)).flatten()
    })
    .await
    .context("the stranger box reports its link refused")?;
    box_shutdown.cancel();
    stranger_box.wait().await;
    Ok(reason)
}
