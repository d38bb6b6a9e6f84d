//! The agent desk beyond its first page, against the real appliance with SIPp as the carrier
//! and as the agents' phones, in headless Chromium at 1366×768:
//!
//! - an agent who is 可回接 and reads 客户管理 gets the popup there (it used to reach only
//!   the desk page), with the call state, a running timer and a chime; the popup fits the
//!   screen with its callback section; a callback is scheduled in the same save as the
//!   record, a wrong time is refused next to the save button in Chinese, and the callback is
//!   rescheduled (重新编辑) on the callback list;
//! - 坐席手动外呼: a typed number that is not a number is refused next to the dial button;
//!   any number (here one that is no customer of the agent's) is dialed with the desk
//!   settings' caller number, pops an empty customer card with the project's record form,
//!   and is saved as a manual attempt;
//! - a due callback of an absent agent waits out the site admin's grace, then goes to another
//!   agent of the task, whose phone rings.

use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::{Value, json};

use tests::{Browser, free_udp_port, wait_for_some, wait_until};

mod site_support;

use site_support::*;

/// Chromium at the size the issue names.
async fn browser_1366() -> anyhow::Result<Browser> {
    let browser = Browser::start().await?;
    browser.client().set_window_size(1366, 768).await?;
    Ok(browser)
}

/// Counts `alert()` calls on the current page (none may happen on the desk).
async fn trap_alerts(browser: &Browser) -> anyhow::Result<()> {
    browser.client().execute("window.__alerts = 0; window.alert = () => { window.__alerts += 1; };", vec![]).await?;
    Ok(())
}

async fn alerts(browser: &Browser) -> anyhow::Result<u64> {
    Ok(browser.client().execute("return window.__alerts;", vec![]).await?.as_u64().unwrap_or(u64::MAX))
}

async fn text(browser: &Browser, css: &str) -> anyhow::Result<String> {
    Ok(browser.wait_for(css, Duration::from_secs(5)).await?.text().await?)
}

/// Sets a `datetime-local` input to `seconds` from now, in the browser's zone.
async fn set_due(browser: &Browser, css: &str, seconds: i64) -> anyhow::Result<()> {
    let script = format!(
        "const d = new Date(Date.now() + {ms}); const p = (n) => String(n).padStart(2, '0');
         document.querySelector({css:?}).value =
           d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + 'T' + p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds());",
        ms = seconds * 1000
    );
    browser.client().execute(&script, vec![]).await?;
    Ok(())
}

async fn agent_client(url: &str, username: &str) -> anyhow::Result<reqwest::Client> {
    let client = reqwest::Client::builder().cookie_store(true).timeout(Duration::from_secs(20)).build()?;
    post(&client, format!("{url}/api/login"), json!({"username": username, "password": AGENT_PASSWORD})).await?;
    Ok(client)
}

fn callbacks_of(site: &Site, agent: &str) -> Vec<appliance::store::CallbackView> {
    let viewer = appliance::store::Viewer { username: agent.into(), unmask: false };
    site.appliance.store.callbacks(&viewer, Some(agent), None, None).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_popup_reaches_an_available_agent_on_the_customers_page_and_a_callback_is_rescheduled() -> anyhow::Result<()> {
    let carrier_port = free_udp_port();
    let site = start_site_with_agent(carrier_port, 41, 1).await?;
    let phone = agent_phone(site.appliance.sip_addr, 1).await?;
    let carrier = carrier(carrier_port, 1, 6000)?;

    let browser = browser_1366().await?;
    login(&browser, &site.url, "agent1", AGENT_PASSWORD).await?;
    browser.goto(&format!("{}/desk", site.url)).await?;
    set_state(&browser, "available").await?;
    // The agent leaves the desk page for 客户管理; the stream there says who they are.
    browser.goto(&format!("{}/desk/customers", site.url)).await?;
    // Any click on a page readies its sound (browsers allow audio only after one).
    browser.wait_for("table#customers", Duration::from_secs(10)).await?.click().await?;
    trap_alerts(&browser).await?;
    post(&site.admin, format!("{}/api/tasks/41/start", site.url), json!({"ratio": 1, "max_concurrency": 1, "ring_seconds": 20}))
        .await?;

    let shown = browser.wait_for("#popup:not([hidden]) dd.phone", Duration::from_secs(40)).await?.text().await?;
    assert_eq!(shown, "139****0410", "the popup reaches the agent on 客户管理");
    assert_eq!(text(&browser, "#bar-agent-state").await?, "可回接", "the call bar shows the agent's state");
    assert_eq!(text(&browser, "#call-state").await?, "通话中");
    wait_until(Duration::from_secs(5), || async { text(&browser, "#call-timer").await.is_ok_and(|t| t != "00:00") })
        .await
        .context("the call timer runs")?;
    let sound = wait_for_some(Duration::from_secs(5), || async {
        let sound = browser
            .client()
            .execute("return {chimes: Number(document.body.dataset.chimes || 0), audio: document.body.dataset.audio || ''};", vec![])
            .await
            .ok()?;
        (sound["chimes"].as_u64().unwrap_or(0) >= 1).then_some(sound)
    })
    .await
    .context("the popup chimes")?;
    assert_eq!(sound["audio"], "running", "the chime played on a running audio context: {sound}");
    // At 1366×768 the business record, the callback section and the save button are all on
    // screen, without scrolling.
    let layout = browser
        .client()
        .execute(
            "const box = (css) => document.querySelector(css).getBoundingClientRect();
             return {height: window.innerHeight, width: window.innerWidth,
                     schedule: box('#popup fieldset.schedule').bottom, save: box('#popup .popup-actions button').bottom,
                     now: box('#popup button.call-back-now').bottom, top: box('#popup fieldset.schedule').top};",
            vec![],
        )
        .await?;
    let height = layout["height"].as_f64().unwrap_or(0.0);
    ensure!(layout["width"].as_f64().unwrap_or(0.0) >= 1300.0, "the window is 1366 wide: {layout}");
    for key in ["schedule", "save", "now"] {
        let bottom = layout[key].as_f64().unwrap_or(f64::MAX);
        ensure!(bottom > 0.0 && bottom <= height, "{key} is off screen at 1366×768: {layout}");
    }
    browser.screenshot(screenshots().join("site-desk-popup-1366.png")).await?;

    // One save: the record and a callback. A time in the past is refused next to the button.
    browser.wait_for("#popup form.record select[name=result] option[value='再联系']", Duration::from_secs(2)).await?.click().await?;
    browser.wait_for("#popup input[name=cb_title]", Duration::from_secs(2)).await?.send_keys("明天回访").await?;
    set_due(&browser, "#popup input[name=cb_due]", -3600).await?;
    browser.wait_for("#popup option[value=task]", Duration::from_secs(2)).await?.click().await?;
    browser.wait_for("#popup .popup-actions button", Duration::from_secs(2)).await?.click().await?;
    let refused = browser.wait_for("#popup .popup-actions .form-error:not([hidden])", Duration::from_secs(5)).await?.text().await?;
    assert_eq!(refused, "计划回访时间须晚于现在");
    assert!(site.appliance.store.unsaved_attempts("agent1")?.len() == 1, "nothing saved with a refused callback");
    set_due(&browser, "#popup input[name=cb_due]", 86_400).await?;
    browser.wait_for("#popup .popup-actions button", Duration::from_secs(2)).await?.click().await?;
    wait_until(Duration::from_secs(10), || async { browser.wait_for("#popup[hidden]", Duration::from_millis(200)).await.is_ok() })
        .await
        .context("the popup closes once saved")?;
    assert_eq!(alerts(&browser).await?, 0, "no alert() on the desk");
    let scheduled = callbacks_of(&site, "agent1");
    ensure!(scheduled.len() == 1, "{scheduled:?}");
    assert_eq!((scheduled[0].title.as_str(), scheduled[0].scope.as_str(), scheduled[0].state.as_str()), ("明天回访", "task", "new"));
    assert!(site.appliance.store.unsaved_attempts("agent1")?.is_empty(), "the record is saved");
    carrier.wait(Duration::from_secs(40)).await.ensure_success().context("carrier")?;
    phone.wait(Duration::from_secs(40)).await.ensure_success().context("agent phone")?;

    // 重新编辑 on the callback list: new title, two days ahead, this agent only.
    let callback_id = scheduled[0].callback_id;
    let old_due = scheduled[0].due_at;
    browser.goto(&format!("{}/desk/callbacks", site.url)).await?;
    let row = format!("tr[data-callback='{callback_id}']");
    browser.wait_for(&format!("{row} details.cb-edit summary"), Duration::from_secs(5)).await?.click().await?;
    let title = browser.wait_for(&format!("{row} form.edit-callback input[name=title]"), Duration::from_secs(2)).await?;
    title.clear().await?;
    title.send_keys("后天上午回访").await?;
    set_due(&browser, &format!("{row} form.edit-callback input[name=due_at]"), 2 * 86_400).await?;
    browser.wait_for(&format!("{row} form.edit-callback option[value=agent]"), Duration::from_secs(2)).await?.click().await?;
    browser.screenshot(screenshots().join("site-desk-callback-edit.png")).await?;
    browser.wait_for(&format!("{row} form.edit-callback button[type=submit]"), Duration::from_secs(2)).await?.click().await?;
    wait_until(Duration::from_secs(10), || async {
        browser.wait_for(&format!("{row} td.cb-title"), Duration::from_millis(300)).await.ok().is_some()
            && text(&browser, &format!("{row} td.cb-title")).await.is_ok_and(|t| t == "后天上午回访")
    })
    .await
    .context("the list shows the rescheduled callback")?;
    let edited = callbacks_of(&site, "agent1");
    assert_eq!((edited[0].scope.as_str(), edited[0].state.as_str()), ("agent", "new"));
    let moved = edited[0].due_at - old_due;
    assert!((86_300..=86_500).contains(&moved), "moved by a day: {moved}");
    browser.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_dials_a_typed_number_and_it_is_recorded_as_a_manual_attempt() -> anyhow::Result<()> {
    let carrier_port = free_udp_port();
    let site = start_site_with_agent(carrier_port, 42, 2).await?;
    let phone = agent_phone(site.appliance.sip_addr, 1).await?;
    let carrier = carrier(carrier_port, 1, 3000)?;

    let browser = browser_1366().await?;
    login(&browser, &site.url, "agent1", AGENT_PASSWORD).await?;
    // Manual 3.2.1.1: the caller number comes from the extension (desk) settings.
    browser.goto(&format!("{}/desk/settings", site.url)).await?;
    browser.wait_for("select[name=caller] option[value='02150001111']", Duration::from_secs(5)).await?.click().await?;
    browser.wait_for("#settings button[type=submit]", Duration::from_secs(2)).await?.click().await?;
    wait_until(Duration::from_secs(5), || async {
        site.appliance.store.agent_settings(2).map(|s| s.caller == "02150001111").unwrap_or(false)
    })
    .await
    .context("the caller number is saved")?;
    browser.goto(&format!("{}/desk", site.url)).await?;
    set_state(&browser, "one_click_only").await?;
    trap_alerts(&browser).await?;

    // Not a number: refused next to the dial button, in Chinese.
    let input = browser.wait_for("#manual-dial-form input[name=phone]", Duration::from_secs(5)).await?;
    input.send_keys("12").await?;
    browser.wait_for("#manual-dial-form button[type=submit]", Duration::from_secs(2)).await?.click().await?;
    let refused = browser.wait_for("#manual-dial-error:not([hidden])", Duration::from_secs(5)).await?.text().await?;
    assert_eq!(refused, "客户号码须为 3 至 20 位数字");

    // Any number (manual 3.2.1.1), here none of the project's customers: dialed under the
    // agent's project, an empty customer card with the project's record form.
    input.clear().await?;
    input.send_keys("139 1111 2222").await?;
    browser.wait_for("#manual-dial-form button[type=submit]", Duration::from_secs(2)).await?.click().await?;
    let calling = browser.wait_for("#calling:not([hidden])", Duration::from_secs(10)).await?.text().await?;
    assert!(calling.contains("139****2222"), "{calling}");
    let shown = browser.wait_for("#popup:not([hidden]) dd.phone", Duration::from_secs(30)).await?.text().await?;
    assert_eq!(shown, "139****2222");
    let filled = browser
        .client()
        .execute("return [...document.querySelectorAll('#popup dd:not(.phone)')].filter(d => d.textContent.trim()).length;", vec![])
        .await?;
    assert_eq!(filled.as_u64(), Some(0), "an empty customer card");
    browser.screenshot(screenshots().join("site-desk-manual-dial.png")).await?;
    browser.wait_for("#popup form.record select[name=result] option[value='成功']", Duration::from_secs(2)).await?.click().await?;
    browser.wait_for("#popup .popup-actions button", Duration::from_secs(2)).await?.click().await?;
    wait_until(Duration::from_secs(10), || async { browser.wait_for("#popup[hidden]", Duration::from_millis(200)).await.is_ok() })
        .await
        .context("the popup closes once saved")?;
    assert_eq!(alerts(&browser).await?, 0, "no alert() on the desk");
    carrier.wait(Duration::from_secs(40)).await.ensure_success().context("carrier")?;
    phone.wait(Duration::from_secs(40)).await.ensure_success().context("agent phone")?;

    // A manual attempt with its record, marked so in what goes up to HQ; the task's row is
    // still there to dial.
    let agent = agent_client(&site.url, "agent1").await?;
    let records: Value = wait_for_some(Duration::from_secs(15), || async {
        let records: Value = agent.get(format!("{}/api/agent/records", site.url)).send().await.ok()?.json().await.ok()?;
        let done = records.as_array()?.iter().any(|r| r["outcome"] == "connected" && r["record"].as_array().is_some_and(|v| !v.is_empty()));
        done.then_some(records)
    })
    .await
    .context("the call is recorded with its business record")?;
    let kinds: Vec<&str> = records.as_array().context("list")?.iter().filter_map(|r| r["kind"].as_str()).collect();
    assert_eq!(kinds, vec!["manual"], "{records}");
    let outbox = sync_link::SiteStore::outbox_after(&*site.appliance.store, 0, 10_000)?;
    let up: Vec<sync_protocol::AttemptKind> = outbox
        .into_iter()
        .filter_map(|entry| match entry.event {
            sync_protocol::UpEvent::CallAttemptDetail(detail) => Some(detail.attempt.kind),
            _ => None,
        })
        .collect();
    assert_eq!(up, vec![sync_protocol::AttemptKind::Manual]);
    let everyone = appliance::store::Viewer { username: "siteadmin".into(), unmask: true };
    let dialed: Vec<String> =
        site.appliance.store.call_records(&everyone, &Default::default(), 10)?.into_iter().map(|r| r.phone).collect();
    assert_eq!(dialed, vec!["13911112222".to_string()], "the typed number was dialed");
    let viewer = appliance::store::Viewer { username: "siteadmin".into(), unmask: true };
    let new_rows = site.appliance.store.customers(&viewer, None, None, Some("new"), 10)?;
    assert_eq!(new_rows.len(), 2, "a manual dial leaves the task's numbers alone");
    browser.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_callback_of_an_absent_agent_goes_to_the_task_after_the_grace() -> anyhow::Result<()> {
    let carrier_port = free_udp_port();
    let site = start_site_with_agent(carrier_port, 43, 1).await?;
    let url = site.url.clone();
    post(&site.admin, format!("{url}/api/extensions"), json!({"extension": "1002", "password": "sip-secret-1002"})).await?;
    post(&site.admin, format!("{url}/api/agents"), json!({"username": "agent2", "password": AGENT_PASSWORD, "name": "小李", "extension": "1002"}))
        .await?;
    let phone2 = agent_phone_for(site.appliance.sip_addr, "1002", "sip-secret-1002", 1).await?;
    let carrier = carrier(carrier_port, 1, 2000)?;

    // agent1's callback is due now; agent1 is not signed in.
    post(&site.admin, format!("{url}/api/desk/callback-grace"), json!({"minutes": 1})).await?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    let created = post(
        &site.admin,
        format!("{url}/api/data/callbacks"),
        json!({"batch_id": 43, "row_id": 43000, "agent": "agent1", "title": "约好回电", "due_at": now - 5}),
    )
    .await?;
    let callback_id = created["callback_id"].as_u64().context("callback id")?;
    let agent1 = agent_client(&url, "agent1").await?;
    post(&agent1, format!("{url}/api/callbacks/{callback_id}/arm"), json!({})).await?;
    let agent2 = agent_client(&url, "agent2").await?;
    post(&agent2, format!("{url}/api/agent/state"), json!({"state": "one_click_only"})).await?;

    // Within the grace the callback waits for its own agent.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let waiting = callbacks_of(&site, "agent1");
    assert_eq!((waiting[0].state.as_str(), waiting[0].scope.as_str(), waiting[0].handed_over_at), ("waiting", "agent", None));

    // The grace over (the admin sets none), the task's free agent gets it on their phone.
    post(&site.admin, format!("{url}/api/desk/callback-grace"), json!({"minutes": 0})).await?;
    let taken = wait_for_some(Duration::from_secs(20), || async {
        callbacks_of(&site, "agent2").into_iter().find(|cb| cb.callback_id == callback_id && cb.state == "done")
    })
    .await
    .context("agent2 takes the handed-over callback")?;
    assert_eq!(taken.scope, "task");
    assert!(taken.handed_over_at.is_some());
    carrier.wait(Duration::from_secs(40)).await.ensure_success().context("carrier")?;
    phone2.wait(Duration::from_secs(40)).await.ensure_success().context("agent2's phone took the callback")?;
    let records: Value = agent2.get(format!("{url}/api/agent/records")).send().await?.json().await?;
    let kinds: Vec<&str> = records.as_array().context("list")?.iter().filter_map(|r| r["kind"].as_str()).collect();
    assert_eq!(kinds, vec!["callback"], "{records}");
    Ok(())
}
