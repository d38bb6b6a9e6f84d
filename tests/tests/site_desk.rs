//! The agent's working day in a real browser against the real appliance, with SIPp as the
//! carrier and as the agent's phone: a predictive call pops, is saved, and its recording
//! plays in the browser; a one-click call pops while ringing (number masked), a callback is
//! scheduled in the popup's save, armed in the callback list and comes back to the agent at its
//! time. Screenshots of the desk pages go to
//! `tests::screenshot_dir()` (the pages' kept copies are the tour, `docs/screenshots/tour/`).

use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

use tests::{Browser, free_udp_port, wait_for_some, wait_until};

mod site_support;

use site_support::*;

/// [`start_site`] with extension 1001 and agent1 on it, as the desk scenarios need.
/// Picks the business result and saves; waits for the popup to close.
async fn save_popup(browser: &Browser, result: &str) -> anyhow::Result<()> {
    browser
        .wait_for(&format!("#popup form.record select[name=result] option[value='{result}']"), Duration::from_secs(5))
        .await?
        .click()
        .await?;
    browser.wait_for("#popup .popup-actions button[type=submit]", Duration::from_secs(2)).await?.click().await?;
    wait_until(Duration::from_secs(10), || async { browser.wait_for("#popup[hidden]", Duration::from_millis(200)).await.is_ok() })
        .await
        .context("the popup closes once the record is saved")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictive_call_pops_is_saved_and_its_recording_plays_in_the_browser() -> anyhow::Result<()> {
    let carrier_port = free_udp_port();
    let site = start_site_with_agent(carrier_port, 31, 1).await?;
    let phone = agent_phone(site.appliance.sip_addr, 1).await?;
    let carrier = carrier(carrier_port, 1, 3000)?;

    let browser = Browser::start().await?;
    login(&browser, &site.url, "agent1", AGENT_PASSWORD).await?;
    browser.goto(&format!("{}/desk", site.url)).await?;
    // The popup closes only when saved: the page offers no close button at all.
    set_state(&browser, "available").await?;
    post(&site.admin, format!("{}/api/tasks/31/start", site.url), json!({"ratio": 1, "max_concurrency": 1, "ring_seconds": 20}))
        .await?;

    let script = browser.wait_for("#popup:not([hidden]) pre.script", Duration::from_secs(40)).await?;
    assert!(script.text().await?.contains("家庭套餐"));
    let shown = browser.wait_for("#popup dd.phone", Duration::from_secs(2)).await?.text().await?;
    assert_eq!(shown, "139****0310");
    let body = browser.wait_for("#popup .popup-body", Duration::from_secs(2)).await?.text().await?;
    assert!(body.contains("客户0") && body.contains("融合128元"), "{body}");
    assert!(!body.contains("SECRET0") && !body.contains("内部编码"), "a hidden field reached the page: {body}");
    browser.screenshot(screenshots().join("site-desk-popup.png")).await?;
    // Saving without the required result is refused by the form; the popup stays.
    browser.wait_for("#popup .popup-actions button[type=submit]", Duration::from_secs(2)).await?.click().await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(browser.wait_for("#popup:not([hidden])", Duration::from_secs(1)).await.is_ok(), "the popup cannot close unsaved");
    save_popup(&browser, "成功").await?;

    carrier.wait(Duration::from_secs(40)).await.ensure_success().context("carrier")?;
    phone.wait(Duration::from_secs(40)).await.ensure_success().context("agent phone")?;

    // Call records: the recording plays in the browser (fetched with range requests).
    let attempt_id = wait_for_some(Duration::from_secs(15), || async {
        let records = site.appliance.store.call_records(
            &appliance::store::Viewer { username: "agent1".into(), unmask: false },
            &appliance::store::CallFilter { agent: Some("agent1".into()), ..Default::default() },
            5,
        );
        records.ok()?.into_iter().find(|r| r.has_recording).map(|r| r.attempt_id)
    })
    .await
    .context("the call's recording is stored")?;
    browser.goto(&format!("{}/desk/records", site.url)).await?;
    browser.wait_for(&format!("tr[data-attempt='{attempt_id}'] audio.recording"), Duration::from_secs(10)).await?;
    // Browsers play media only after the person interacted with the page: a click does.
    browser.wait_for(&format!("tr[data-attempt='{attempt_id}'] td.phone"), Duration::from_secs(2)).await?.click().await?;
    let played = browser
        .client()
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const audio = document.querySelector('audio.recording');
             audio.muted = true;
             audio.play()
               .then(() => setTimeout(() => done({time: audio.currentTime, duration: audio.duration}), 1200))
               .catch((error) => done({error: String(error)}));",
            vec![],
        )
        .await?;
    assert!(played["error"].is_null(), "the browser cannot play the recording: {played}");
    assert!(played["duration"].as_f64().unwrap_or(0.0) > 1.0, "{played}");
    assert!(played["time"].as_f64().unwrap_or(0.0) > 0.0, "playback did not advance: {played}");
    let row = browser.wait_for(&format!("tr[data-attempt='{attempt_id}']"), Duration::from_secs(2)).await?.text().await?;
    assert!(row.contains("139****0310") && row.contains("成功"), "{row}");
    browser.screenshot(screenshots().join("site-desk-records.png")).await?;
    browser.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_click_pops_while_ringing_and_a_scheduled_callback_comes_back_at_its_time() -> anyhow::Result<()> {
    let carrier_port = free_udp_port();
    let site = start_site_with_agent(carrier_port, 32, 2).await?;
    let phone = agent_phone(site.appliance.sip_addr, 2).await?;
    let carrier = carrier(carrier_port, 2, 2500)?;
    post(
        &site.admin,
        format!("{}/api/tasks/32/start", site.url),
        json!({"ratio": 1, "max_concurrency": 2, "ring_seconds": 30, "dial_mode": "one_click", "caller": "02150001111"}),
    )
    .await?;

    let browser = Browser::start().await?;
    login(&browser, &site.url, "agent1", AGENT_PASSWORD).await?;
    // A1: pop on ring.
    browser.goto(&format!("{}/desk/settings", site.url)).await?;
    browser.wait_for("select[name=popup_timing] option[value=ring]", Duration::from_secs(5)).await?.click().await?;
    browser.wait_for("#settings button[type=submit]", Duration::from_secs(2)).await?.click().await?;
    wait_until(Duration::from_secs(5), || async {
        site.appliance.store.agent_settings(2).map(|s| s.popup_timing == "ring").unwrap_or(false)
    })
    .await
    .context("the desk settings are saved")?;
    browser.screenshot(screenshots().join("site-desk-settings.png")).await?;

    // A2/A3/A5: 不可回接, my projects, one-click dial.
    browser.goto(&format!("{}/desk", site.url)).await?;
    set_state(&browser, "one_click_only").await?;
    browser.screenshot(screenshots().join("site-desk.png")).await?;
    browser.wait_for("button.one-click", Duration::from_secs(5)).await?.click().await?;
    let calling = browser.wait_for("#calling:not([hidden])", Duration::from_secs(10)).await?.text().await?;
    assert!(calling.contains("139****0320"), "{calling}");
    let shown = browser.wait_for("#popup:not([hidden]) dd.phone", Duration::from_secs(20)).await?.text().await?;
    assert_eq!(shown, "139****0320", "the ringing popup shows first three and last four digits");

    // A7: schedule a callback in the popup's one save, a few seconds ahead (browser local time).
    browser.wait_for("#popup input[name=cb_title]", Duration::from_secs(2)).await?.send_keys("下午回访").await?;
    browser
        .client()
        .execute(
            "const d = new Date(Date.now() + 8000); const p = (n) => String(n).padStart(2, '0');
             document.querySelector('#popup input[name=cb_due]').value =
               d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + 'T' + p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds());",
            vec![],
        )
        .await?;
    browser.wait_for("#popup input[name=cb_note]", Duration::from_secs(2)).await?.send_keys("客户在开会").await?;
    save_popup(&browser, "再联系").await?;

    // The callback list: new → 定时执行 → waiting.
    browser.goto(&format!("{}/desk/callbacks", site.url)).await?;
    let row = browser.wait_for("tr[data-callback][data-state=new]", Duration::from_secs(5)).await?;
    let text = row.text().await?;
    assert!(text.contains("下午回访") && text.contains("139****0320") && text.contains("新建未执行"), "{text}");
    browser.wait_for("tr[data-callback] button.arm", Duration::from_secs(2)).await?.click().await?;
    browser.wait_for("tr[data-callback][data-state=waiting]", Duration::from_secs(5)).await?;
    browser.screenshot(screenshots().join("site-desk-callbacks.png")).await?;

    // At its time the system calls the customer again and the popup comes back.
    browser.goto(&format!("{}/desk", site.url)).await?;
    let shown = browser.wait_for("#popup:not([hidden]) dd.phone", Duration::from_secs(40)).await?.text().await?;
    assert_eq!(shown, "139****0320");
    save_popup(&browser, "成功").await?;
    carrier.wait(Duration::from_secs(40)).await.ensure_success().context("carrier took both calls")?;
    phone.wait(Duration::from_secs(40)).await.ensure_success().context("the phone took both calls")?;

    browser.goto(&format!("{}/desk/callbacks", site.url)).await?;
    let done = browser.wait_for("tr[data-callback][data-state=done]", Duration::from_secs(5)).await?.text().await?;
    assert!(done.contains("完成"), "{done}");
    let records: Value = {
        let agent = reqwest::Client::builder().cookie_store(true).build()?;
        post(&agent, format!("{}/api/login", site.url), json!({"username": "agent1", "password": AGENT_PASSWORD})).await?;
        agent.get(format!("{}/api/agent/records", site.url)).send().await?.json().await?
    };
    let kinds: Vec<&str> = records.as_array().context("list")?.iter().filter_map(|r| r["kind"].as_str()).collect();
    assert_eq!(kinds, vec!["callback", "one_click"], "{records}");
    browser.close().await?;
    Ok(())
}
