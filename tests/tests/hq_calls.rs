//! HQ finds a real call and plays it (职场通话记录, 录音管理), through every real part.
//!
//! - HQ dispatches the demo list to an enrolled site; the appliance dials SIPp playing the
//!   carrier, bridges the answered call to SIPp playing the agent's phone and records it;
//!   a simulated agent desk (the desk's JSON and SSE API) saves the business result.
//! - In headless Chromium, the HQ admin searches by the number's last four digits, sees the
//!   masked number with its business record, opens the call and plays its recording: the
//!   page fetches it from the site if HQ does not hold it yet, the seek bar works (range
//!   requests) and the audio element reaches its end.
//! - The filtered list's export opens with calamine: words, not keys, China time, one row.
//! - A sub-admin of another site finds nothing and gets 404 on the call's direct URLs.
//! - Screenshot of the search at 1366×768 (`hub-calls.png`).

mod site_support;

use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, ensure};
use calamine::{Reader, Xlsx};
use demo::setup::{Api, dispatch_demo_list, enroll_site};
use serde_json::{Value, json};
use tests::{Browser, Sipp, free_udp_port, wait_for_some, wait_until};
use tokio_util::sync::CancellationToken;

const EXTENSION: &str = "8001";
const SIP_PASSWORD: &str = "phone-secret-8001";
const AGENT_PASSWORD: &str = "agent-secret-1";
const SUB_PASSWORD: &str = "chengdu-secret-1";

async fn browser_login(browser: &Browser, url: &str, username: &str, password: &str) -> anyhow::Result<()> {
    browser.goto(&format!("{url}/login")).await?;
    browser.wait_for("input[name=username]", Duration::from_secs(10)).await?.send_keys(username).await?;
    browser.wait_for("input[name=password]", Duration::from_secs(5)).await?.send_keys(password).await?;
    browser.wait_for("form[action=\"/login\"] button", Duration::from_secs(5)).await?.click().await?;
    wait_until(Duration::from_secs(10), || async {
        browser.client().current_url().await.is_ok_and(|current| !current.path().starts_with("/login"))
    })
    .await
    .with_context(|| format!("{username} is logged in"))?;
    Ok(())
}

/// A JavaScript value of the page.
async fn js(browser: &Browser, script: &str) -> anyhow::Result<Value> {
    Ok(browser.client().execute(script, vec![]).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hq_finds_a_real_call_by_its_last_four_digits_plays_it_and_exports_it() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("info,quinn=warn,rustls=warn").try_init();
    let dir = tempfile::tempdir()?;
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let (hub, hq_password) = tests::start_hub(&dir.path().join("hub"), shutdown.clone()).await?;
    let hub_url = format!("http://{}", hub.http_addr);
    let hq = Api::login(&hub_url, "admin", &hq_password).await?;

    // HQ: the enrolled site 杭州职场 gets the demo list (one number, 13800130001, its middle
    // digits hidden); 成都职场 takes part in the same project with a sub-admin of its own.
    let site_dir = dir.path().join("site");
    let site_id = enroll_site(&hq, "杭州职场", &site_dir, hub.sync_addr).await?;
    dispatch_demo_list(&hq, "套餐类", &dir.path().join("名单.xlsx"), 1, "十二月批次", site_id).await?;
    let other: Value = hq.post("/api/sites", &json!({"name": "成都职场"})).await?;
    let other_id = other["id"].as_u64().context("site id")?;
    let projects: Value = hq.get("/api/projects").await?;
    let project_id = projects[0]["id"].as_u64().context("project id")?;
    put(&hq_url_client(&hub_url, "admin", &hq_password).await?, &hub_url, &format!("/api/projects/{project_id}/sites"), json!({"site_ids": [site_id, other_id]})).await?;
    let role: Value = hq.post("/api/roles", &json!({"name": "通话与录音", "modules": ["site.calls", "data.recordings"]})).await?;
    let account: Value = hq
        .post("/api/accounts", &json!({"username": "chengdu", "password": SUB_PASSWORD, "role_id": role["id"], "site_ids": [other_id]}))
        .await?;
    put(
        &hq_url_client(&hub_url, "admin", &hq_password).await?,
        &hub_url,
        &format!("/api/projects/{project_id}/admins"),
        json!({"admins": [{"account_id": account["id"], "site_ids": [other_id]}]}),
    )
    .await?;

    // The site: an extension, an agent, the phone and the carrier; the agent's desk saves a
    // result after each popup.
    let carrier_port = free_udp_port();
    let site_password = appliance::init_admin(&site_dir, "siteadmin")?;
    let site = appliance::start(
        appliance::ApplianceConfig::on_loopback(&site_dir, SocketAddr::new(localhost, carrier_port), 4),
        shutdown.clone(),
    )
    .await?;
    let site_url = format!("http://{}", site.http_addr);
    let site_admin = Api::login(&site_url, "siteadmin", &site_password).await?;
    site_admin.post::<Value>("/api/extensions", &json!({"extension": EXTENSION, "password": SIP_PASSWORD})).await?;
    site_admin
        .post::<Value>("/api/agents", &json!({"username": "agent1", "password": AGENT_PASSWORD, "name": "小李", "extension": EXTENSION}))
        .await?;
    let phone = site_support::agent_phone_for(site.sip_addr, EXTENSION, SIP_PASSWORD, 1).await?;
    let carrier = Sipp::scenario("carrier_answer.xml")
        .local_port(carrier_port)
        .calls(1)
        .media_on_loopback()
        .arg("-d")
        .arg("5000")
        .timeout(Duration::from_secs(90))
        .spawn()?;
    let agent = demo::agent::AgentConfig {
        appliance_url: site_url.clone(),
        username: "agent1".into(),
        password: AGENT_PASSWORD.into(),
        wrap_up: (Duration::from_millis(500), Duration::from_secs(1)),
    };
    tokio::spawn(demo::agent::run_agent(agent, shutdown.clone()));
    let batch_id = wait_for_some(Duration::from_secs(30), || async {
        let tasks: Vec<Value> = site_admin.get("/api/tasks").await.ok()?;
        tasks.first().and_then(|task| task["batch_id"].as_u64())
    })
    .await
    .context("the batch reaches the site")?;
    // The desk goes 可回接 once logged in; give it a moment before the dial.
    tokio::time::sleep(Duration::from_secs(1)).await;
    site_admin
        .post::<Value>(&format!("/api/tasks/{batch_id}/start"), &json!({"ratio": 1, "max_concurrency": 1, "ring_seconds": 20}))
        .await?;

    // The call, its record and its hash reach HQ.
    let call = wait_for_some(Duration::from_secs(90), || async {
        let page: Value = hq.get("/api/calls?phone=0001").await.ok()?;
        let call = page["calls"].get(0)?.clone();
        (call["outcome"] == "connected" && call["record"].is_object() && call["recording"].is_object()).then_some(call)
    })
    .await
    .context("HQ has the connected call with its record and recording hash")?;
    carrier.wait(Duration::from_secs(30)).await.ensure_success().context("carrier scenario")?;
    phone.wait(Duration::from_secs(30)).await.ensure_success().context("agent phone scenario")?;
    ensure!(call["phone"] == "138****0001", "masked as the project says: {call}");
    // The extension filter finds it by the agent's phone and nothing by another.
    let by_extension: Value = hq.get(&format!("/api/calls?extension={EXTENSION}")).await?;
    ensure!(by_extension["calls"].as_array().is_some_and(|c| c.len() == 1), "{by_extension}");
    let other: Value = hq.get("/api/calls?extension=8999").await?;
    ensure!(other["calls"].as_array().is_some_and(|c| c.is_empty()), "{other}");
    let attempt = call["attempt_id"].as_i64().context("attempt")?;
    let result = call["record"]["values"][0]["value"].as_str().context("the saved result")?.to_owned();

    // In the browser: search by the last four digits.
    let browser = Browser::start().await?;
    browser.client().set_window_size(1366, 768).await?;
    browser_login(&browser, &hub_url, "admin", &hq_password).await?;
    browser.goto(&format!("{hub_url}/calls")).await?;
    browser.wait_for("#calls-filter input[name=phone]", Duration::from_secs(10)).await?.send_keys("0001").await?;
    browser.wait_for("#calls-filter button[type=submit]", Duration::from_secs(5)).await?.click().await?;
    // The unfiltered list already shows the call: read the rows only once the filtered page has loaded.
    wait_until(Duration::from_secs(10), || async {
        browser.client().current_url().await.is_ok_and(|url| url.as_str().contains("phone=0001"))
            && browser.wait_for("#calls tr.call", Duration::from_millis(300)).await.is_ok()
    })
    .await
    .context("the filtered list loads")?;
    let text = browser.wait_for("#calls tr.call", Duration::from_secs(10)).await?.text().await?;
    ensure!(text.contains("138****0001") && text.contains("杭州职场") && text.contains(&result) && text.contains("接通"), "{text}");
    let rows = browser.client().find_all(fantoccini::Locator::Css("#calls tr.call")).await?;
    ensure!(rows.len() == 1, "one call ends in 0001: {}", rows.len());
    browser.screenshot(tests::screenshot_dir().join("hub-calls.png")).await?;
    let export_href = browser.wait_for("#export-xlsx", Duration::from_secs(2)).await?.attr("href").await?.context("export link")?;
    ensure!(export_href.contains("phone=0001"), "the export is the list on screen: {export_href}");

    // The call's page: its record, and its recording played to the end.
    browser.wait_for("#calls tr.call td.phone a", Duration::from_secs(2)).await?.click().await?;
    let record = browser.wait_for("#record", Duration::from_secs(10)).await?.text().await?;
    ensure!(record.contains("本次业务结果") && record.contains(&result), "{record}");
    wait_until(Duration::from_secs(60), || async {
        browser.wait_for("#recording[data-state=held]", Duration::from_millis(300)).await.is_ok()
    })
    .await
    .context("the recording is held at HQ (fetched from the site if need be)")?;
    wait_until(Duration::from_secs(20), || async {
        js(&browser, "return document.querySelector('#recording audio').readyState;").await.ok().and_then(|v| v.as_i64()).is_some_and(|s| s >= 1)
    })
    .await
    .context("the audio element loads the recording's metadata")?;
    let duration = js(&browser, "return document.querySelector('#recording audio').duration;").await?.as_f64().context("duration")?;
    ensure!(duration > 2.0, "a call of about five seconds: {duration}");
    // Seeking needs range requests: Chromium marks a resource without them unseekable.
    let seekable = js(&browser, "const a = document.querySelector('#recording audio'); return a.seekable.length ? a.seekable.end(0) : 0;").await?;
    ensure!(seekable.as_f64().is_some_and(|end| end > duration - 0.5), "the whole recording is seekable: {seekable}");
    js(&browser, "const a = document.querySelector('#recording audio'); a.muted = true; a.currentTime = 1.0; a.playbackRate = 2.0; a.play(); return null;").await?;
    wait_until(Duration::from_secs(30), || async {
        js(&browser, "return document.querySelector('#recording audio').ended;").await.ok() == Some(json!(true))
    })
    .await
    .context("the audio element plays to the end")?;
    let position = js(&browser, "return document.querySelector('#recording audio').currentTime;").await?.as_f64().context("position")?;
    ensure!((position - duration).abs() < 0.3, "ended at the end: {position} of {duration}");

    // The export: the one call, in words and China time.
    let bytes = hq.get_bytes(&export_href).await?;
    let mut workbook: Xlsx<_> = Xlsx::new(Cursor::new(bytes))?;
    let sheet = workbook.worksheet_range_at(0).context("a sheet")??;
    let rows: Vec<Vec<String>> = sheet.rows().map(|row| row.iter().map(|cell| cell.to_string()).collect()).collect();
    ensure!(rows.len() == 2, "header and one call: {rows:?}");
    ensure!(rows[0][0] == "开始时间" && rows[0][4] == "电话号码" && rows[0][6] == "分机" && rows[0][9] == "呼叫结果", "{:?}", rows[0]);
    let started = call["started_at"].as_i64().context("started")?;
    ensure!(rows[1][0] == hq_hub::format_time(started) && rows[1][1] == "杭州职场", "{:?}", rows[1]);
    // The extension the agent's phone registered as, which the site sent with the call.
    ensure!(call["extension"] == json!(EXTENSION) && rows[1][6] == EXTENSION, "{:?} / {call}", rows[1]);
    ensure!(rows[1][4] == "138****0001" && rows[1][9] == "接通" && rows[1][15].contains(&result), "{:?}", rows[1]);
    let zip = hq.get_bytes(&export_href.replace("/api/calls/export.xlsx", "/api/calls/recordings.zip")).await?;
    let wav_name = format!("_{site_id}-{attempt}.wav");
    ensure!(
        zip.starts_with(b"PK\x03\x04") && zip.windows(wav_name.len()).any(|w| w == wav_name.as_bytes()),
        "the zip holds the call's WAV"
    );

    // A sub-admin of the other site finds nothing, and the call's URLs are not there for it.
    browser.client().delete_all_cookies().await?;
    browser_login(&browser, &hub_url, "chengdu", SUB_PASSWORD).await?;
    browser.goto(&format!("{hub_url}/calls?phone=0001")).await?;
    browser.wait_for("#calls-none", Duration::from_secs(10)).await.context("the other site's sub-admin finds nothing")?;
    let chengdu = reqwest::Client::builder().cookie_store(true).build()?;
    let login = chengdu.post(format!("{hub_url}/api/login")).json(&json!({"username": "chengdu", "password": SUB_PASSWORD})).send().await?;
    ensure!(login.status().is_success());
    for path in [
        format!("/calls/{site_id}/{attempt}"),
        format!("/api/sites/{site_id}/calls/{attempt}"),
        format!("/api/sites/{site_id}/calls/{attempt}/recording"),
    ] {
        let status = chengdu.get(format!("{hub_url}{path}")).send().await?.status();
        ensure!(status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::FORBIDDEN, "{path}: {status}");
    }
    let status = chengdu
        .post(format!("{hub_url}/api/sites/{site_id}/calls/{attempt}/recording/fetch"))
        .json(&json!({}))
        .send()
        .await?
        .status();
    ensure!(status == reqwest::StatusCode::NOT_FOUND, "fetch: {status}");
    let listed: Value = chengdu.get(format!("{hub_url}/api/calls")).send().await?.json().await?;
    ensure!(listed["calls"] == json!([]), "{listed}");
    browser.close().await?;
    Ok(())
}

/// A logged-in plain client (for the PUT routes `Api` has no method for).
async fn hq_url_client(hub_url: &str, username: &str, password: &str) -> anyhow::Result<reqwest::Client> {
    let client = reqwest::Client::builder().cookie_store(true).build()?;
    let login = client.post(format!("{hub_url}/api/login")).json(&json!({"username": username, "password": password})).send().await?;
    ensure!(login.status().is_success(), "login {username}");
    Ok(client)
}

async fn put(client: &reqwest::Client, hub_url: &str, path: &str, body: Value) -> anyhow::Result<()> {
    let response = client.put(format!("{hub_url}{path}")).json(&body).send().await?;
    ensure!(response.status().is_success(), "PUT {path}: {} {}", response.status(), response.text().await.unwrap_or_default());
    Ok(())
}
