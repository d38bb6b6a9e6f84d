//! The site admin's working day in a real browser against the real appliance, with SIPp as
//! the carrier and the agent's phone: extensions and agent accounts, roles, task agents and
//! parameters (max concurrency refused above the caller's lines; hold music from HQ's voice
//! library), HQ's notice on every page, starting the task,
//! attribution rules and allocation, the live queue monitor during a real call (updating
//! without a reload), and project data with its export. Screenshots of the admin pages go
//! to `tests::screenshot_dir()` (the pages' kept copies are the tour, `docs/screenshots/tour/`).

use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use sync_link::SiteStore;
use sync_protocol::{Announcement, DownEntry, DownEvent, VoiceFile, VoiceKind};

use tests::{Browser, free_udp_port, wait_until};

mod site_support;

use site_support::*;



/// Fills the inputs of the form matched by `form` (name → value) and submits it.
async fn fill_and_submit(browser: &Browser, form: &str, values: &[(&str, &str)]) -> anyhow::Result<()> {
    for (name, value) in values {
        let input = browser.wait_for(&format!("{form} [name={name}]"), Duration::from_secs(5)).await?;
        if input.tag_name().await? == "select" {
            input.select_by_value(value).await?;
        } else {
            input.clear().await?;
            input.send_keys(value).await?;
        }
    }
    browser.wait_for(&format!("{form} button[type=submit]"), Duration::from_secs(2)).await?.click().await?;
    Ok(())
}

async fn page_text(browser: &Browser, css: &str) -> anyhow::Result<String> {
    Ok(browser.wait_for(css, Duration::from_secs(5)).await?.text().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_admin_sets_up_agents_and_a_task_and_watches_the_call_live() -> anyhow::Result<()> {
    let carrier_port = free_udp_port();
    let site = start_site(carrier_port, 41, 3).await?;
    let url = site.url.clone();
    // HQ's voice library and a notice, as the link brings them: the entries, then the bytes.
    let music = hardware::ulaw_wav(&[0x55; 3200]);
    let sha: [u8; 32] = {
        use sha2::Digest as _;
        sha2::Sha256::digest(&music).into()
    };
    let next_seq = site.appliance.store.down_applied()? + 1;
    site.appliance.store.apply_down_batch(&[
        DownEntry {
            seq: next_seq,
            event: DownEvent::VoiceFile(VoiceFile {
                voice_id: 3,
                version: 1,
                name: "轻柔等待音乐".into(),
                kind: VoiceKind::HoldMusic,
                sha256: sha,
                size: music.len() as u64,
                deleted: false,
            }),
        },
        DownEntry {
            seq: next_seq + 1,
            event: DownEvent::Announcement(Announcement {
                announcement_id: 1,
                version: 1,
                title: "总部通知：本周六全天开班".into(),
                body: "请各职场周六 9:00 前完成签入，午间轮休。".into(),
                published_at: 1_795_000_000,
                expires_at: None,
                withdrawn: false,
            }),
        },
    ])?;
    site.appliance.store.voice_append(&sha, 0, &music)?;
    site.appliance.store.voice_finish(&sha)?;
    let browser = Browser::start().await?;
    login(&browser, &url, "siteadmin", &site.admin_password).await?;

    // S12: an extension with its credentials; S11: the agent account on it; a second agent.
    browser.goto(&format!("{url}/admin/extensions")).await?;
    fill_and_submit(&browser, "form[data-api='/api/extensions']", &[("extension", EXTENSION), ("password", SIP_PASSWORD)]).await?;
    wait_until(Duration::from_secs(5), || async { page_text(&browser, "table.grid").await.is_ok_and(|t| t.contains(EXTENSION)) })
        .await
        .context("the extension is listed")?;
    fill_and_submit(&browser, "form[data-api='/api/extensions']", &[("extension", "1002"), ("password", "sip-secret-1002")]).await?;
    wait_until(Duration::from_secs(5), || async { page_text(&browser, "table.grid").await.is_ok_and(|t| t.contains("1002")) })
        .await
        .context("the second extension is listed")?;
    browser.screenshot(screenshots().join("site-admin-extensions.png")).await?;
    browser.goto(&format!("{url}/admin/agents")).await?;
    for (username, name, extension) in [("agent1", "小王", EXTENSION), ("agent2", "小李", "1002")] {
        fill_and_submit(
            &browser,
            "form[data-api='/api/agents']",
            &[("username", username), ("name", name), ("password", AGENT_PASSWORD), ("extension", extension)],
        )
        .await?;
        wait_until(Duration::from_secs(5), || async { page_text(&browser, "table.grid").await.is_ok_and(|t| t.contains(username)) })
            .await
            .with_context(|| format!("{username} is listed"))?;
    }
    browser.screenshot(screenshots().join("site-admin-agents.png")).await?;

    // S11: a role (值班长: monitor and data) and a staff account holding it.
    browser.goto(&format!("{url}/admin/roles")).await?;
    browser.wait_for("form[data-api='/api/roles'] input[name=name]", Duration::from_secs(5)).await?.send_keys("值班长").await?;
    for module in ["monitor", "data"] {
        browser.wait_for(&format!("form[data-api='/api/roles'] input[value={module}]"), Duration::from_secs(2)).await?.click().await?;
    }
    browser.wait_for("form[data-api='/api/roles'] button[type=submit]", Duration::from_secs(2)).await?.click().await?;
    wait_until(Duration::from_secs(5), || async { page_text(&browser, "main").await.is_ok_and(|t| t.contains("值班长") && t.contains("项目数据资料、队列监控")) })
        .await
        .context("the role is listed with its modules")?;
    browser.screenshot(screenshots().join("site-admin-roles.png")).await?;

    // S1 + S2 + S5: task agents, parameters checked against the caller's 4 lines, start.
    browser.goto(&format!("{url}/admin/tasks")).await?;
    browser.screenshot(screenshots().join("site-admin-tasks.png")).await?;
    browser.goto(&format!("{url}/admin/tasks/41")).await?;
    // The page's tabs: 任务参数 first, 任务坐席 second.
    browser.wait_for("[data-tab-for=tab-agents]", Duration::from_secs(5)).await?.click().await?;
    browser.wait_for("#task-agents input[value='2']", Duration::from_secs(5)).await?.click().await?;
    browser.wait_for("#task-agents button[type=submit]", Duration::from_secs(2)).await?.click().await?;
    wait_until(Duration::from_secs(5), || async { site.appliance.store.works_task(41, 3).is_ok_and(|works| !works) })
        .await
        .context("only agent1 works the task")?;
    // The form reloads the page once saved; load it afresh rather than race that reload (an
    // element found on the old page goes stale under the test's hands).
    browser.goto(&format!("{url}/admin/tasks/41")).await?;
    browser.wait_for("#task-agents input[value='2']:checked", Duration::from_secs(5)).await?;
    browser.wait_for("[data-tab-for=tab-params]", Duration::from_secs(5)).await?.click().await?;
    let form = "#task-params form";
    fill_and_submit(&browser, form, &[("caller", "02150001111"), ("ratio", "2"), ("max_concurrency", "5")]).await?;
    // The page caps the field at the caller's line count, and the server refuses it anyway.
    browser.wait_for("#task-params input[name=max_concurrency]:invalid", Duration::from_secs(5)).await?;
    let crafted = site
        .admin
        .post(format!("{url}/api/tasks/41/start"))
        .json(&json!({"ratio": 2, "max_concurrency": 5, "dial_mode": "predictive", "caller": "02150001111"}))
        .send()
        .await?;
    assert_eq!(crafted.status(), reqwest::StatusCode::BAD_REQUEST);
    let refused = crafted.text().await?;
    assert!(refused.contains("above the 4 lines of caller 02150001111"), "{refused}");
    // The suggested value for the stored parameters: 1 task agent at 1:1 on 4 lines is 1.
    assert_eq!(page_text(&browser, "#suggested").await?, "1");
    let notice = page_text(&browser, "#announcements").await?;
    assert!(notice.contains("本周六全天开班"), "HQ's notice shows on the admin pages: {notice}");
    fill_and_submit(
        &browser,
        form,
        &[("max_concurrency", "2"), ("cool_down", "4"), ("queue_timeout", "38"), ("hold_music", "3")],
    )
    .await?;
    wait_until(Duration::from_secs(5), || async { page_text(&browser, "h1").await.is_ok_and(|t| t.contains("外呼中")) })
        .await
        .context("the task runs")?;
    let settings = site.appliance.store.task_settings(41)?.context("settings")?;
    assert_eq!((settings.extras.caller.as_str(), settings.extras.cool_down, settings.extras.queue_timeout), ("02150001111", 4, 38));
    assert_eq!(settings.extras.hold_music, Some(3), "the task plays HQ's hold music to waiting callers");
    browser.screenshot(screenshots().join("site-admin-task.png")).await?;

    // S3 + S4: a rule and the allocation of the batch.
    browser.goto(&format!("{url}/admin/attribution")).await?;
    fill_and_submit(&browser, "form.add-rule", &[("field", "name"), ("values", "客户1，客户2"), ("agent", "agent2")]).await?;
    wait_until(Duration::from_secs(5), || async { page_text(&browser, "#rules table").await.is_ok_and(|t| t.contains("agent2")) })
        .await
        .context("the rule is listed")?;
    browser.wait_for("button.allocate[data-batch='41']", Duration::from_secs(2)).await?.click().await?;
    wait_until(Duration::from_secs(5), || async {
        page_text(&browser, ".allocation").await.is_ok_and(|t| t == "归属数量：2；未找到归属数量：1")
    })
    .await
    .context("the allocation reports attributed and not found")?;
    browser.screenshot(screenshots().join("site-admin-attribution.png")).await?;

    // S13: the monitor updates by itself while agent1 takes a real call.
    browser.goto(&format!("{url}/admin/status")).await?;
    browser.client().execute("window.__noReload = 'still here';", vec![]).await?;
    let phone = agent_phone(site.appliance.sip_addr, 1).await?;
    let carrier = carrier(carrier_port, 1, 5000)?;
    let agent = reqwest::Client::builder().cookie_store(true).build()?;
    post(&agent, format!("{url}/api/login"), json!({"username": "agent1", "password": AGENT_PASSWORD})).await?;
    post(&agent, format!("{url}/api/agent/state"), json!({"state": "available"})).await?;
    wait_until(Duration::from_secs(30), || async {
        page_text(&browser, "tbody[data-field=calls]").await.is_ok_and(|t| t.contains("通话中") && t.contains("139****"))
    })
    .await
    .context("the monitor shows the call talking")?;
    let agents = page_text(&browser, "tbody[data-field=agents]").await?;
    assert!(agents.contains("agent1") && agents.contains("可回接"), "{agents}");
    browser.screenshot(screenshots().join("site-admin-monitor.png")).await?;
    let marker = browser.client().execute("return window.__noReload;", vec![]).await?;
    assert_eq!(marker, json!("still here"), "the monitor page was never reloaded");
    carrier.wait(Duration::from_secs(30)).await.ensure_success().context("carrier")?;
    phone.wait(Duration::from_secs(30)).await.ensure_success().context("agent phone")?;
    wait_until(Duration::from_secs(10), || async {
        // At 1:2 a second number may be ringing meanwhile; the talking call must be gone.
        page_text(&browser, "tbody[data-field=calls]").await.is_ok_and(|t| !t.contains("通话中"))
    })
    .await
    .context("the call leaves the monitor when it ends")?;

    // S10: the business data and its export.
    let attempt_id = *site.appliance.store.unsaved_attempts("agent1")?.first().context("agent1's call")?;
    post(&agent, format!("{url}/api/attempts/{attempt_id}/record"), json!({"values": {"result": "成功", "note": "老客户"}})).await?;
    browser.goto(&format!("{url}/admin/data?tab=business")).await?;
    let business = page_text(&browser, "#business").await?;
    assert!(business.contains("成功") && business.contains("139****0410") && business.contains("agent1"), "{business}");
    let export = browser
        .client()
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch(document.getElementById('export-xlsx').href)
               .then((r) => r.arrayBuffer().then((b) => done({status: r.status, type: r.headers.get('content-type'), size: b.byteLength})))
               .catch((e) => done({error: String(e)}));",
            vec![],
        )
        .await?;
    assert_eq!(export["status"], 200, "{export}");
    assert!(export["type"].as_str().unwrap_or("").contains("spreadsheetml"), "{export}");
    browser.screenshot(screenshots().join("site-admin-data.png")).await?;
    browser.goto(&format!("{url}/admin/data?tab=customers")).await?;
    let customers = page_text(&browser, "#customers").await?;
    assert!(customers.contains("agent2") && !customers.contains("SECRET"), "{customers}");
    browser.close().await?;
    Ok(())
}
