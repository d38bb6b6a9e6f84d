//! The site's 角色管理 after creation, in headless Chromium at 1366×768 against a real box:
//! a role's modules edited on the page, an agent disabled (its session ends, it cannot sign
//! in) and enabled again, and a new password shown once.

mod site_support;

use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use site_support::*;
use tests::{Browser, free_udp_port, wait_for_some, wait_until};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_site_admin_edits_a_role_and_disables_an_agent() -> anyhow::Result<()> {
    let site = start_site_with_agent(free_udp_port(), 1, 2).await?;
    let url = site.url.clone();
    let role = post(&site.admin, format!("{url}/api/roles"), json!({"name": "线管", "modules": ["data"]})).await?;
    let role = role["role_id"].as_u64().context("role id")?;
    let agents: Value = site.admin.get(format!("{url}/api/agents")).send().await?.json().await?;
    let agent = agents[0]["agent_id"].as_u64().context("the agent")?;
    let agent_client = reqwest::Client::builder().cookie_store(true).timeout(WAIT).build()?;
    post(&agent_client, format!("{url}/api/login"), json!({"username": "agent1", "password": AGENT_PASSWORD})).await?;
    ensure!(agent_client.get(format!("{url}/api/status")).send().await?.status().is_success(), "the agent works before");

    let browser = Browser::start().await?;
    browser.client().set_window_size(1366, 768).await?;
    login(&browser, &url, "siteadmin", &site.admin_password).await?;
    browser.goto(&format!("{url}/admin/roles")).await?;
    browser.wait_for(&format!("#role-{role} summary"), WAIT).await?.click().await?;
    browser.wait_for(&format!("#role-{role} form.role-edit input[value=tasks]"), WAIT).await?.click().await?;
    browser.wait_for(&format!("#role-{role} form.role-edit button"), WAIT).await?.click().await?;
    wait_for_some(WAIT, || async {
        let roles: Value = site.admin.get(format!("{url}/api/roles")).send().await.ok()?.json().await.ok()?;
        let edited = roles.as_array()?.iter().find(|r| r["role_id"] == json!(role))?.clone();
        (edited["modules"] == json!(["tasks", "data"]) || edited["modules"] == json!(["data", "tasks"])).then_some(())
    })
    .await
    .context("the role's modules are saved from the page")?;

    let disable = format!("form.account-disable[data-api='/api/accounts/{agent}/disabled']");
    // The role's save reloads the page; start the next step from a page that has loaded.
    browser.goto(&format!("{url}/admin/roles")).await?;
    // Disabling asks first: Cancel keeps the account, Confirm disables it.
    browser.wait_for(&format!("{disable} button"), WAIT).await?.click().await?;
    browser.wait_for(".modal [data-answer=no]", WAIT).await?.click().await?;
    wait_until(WAIT, || async { browser.client().find(fantoccini::Locator::Css(".modal-back")).await.is_err() })
        .await
        .context("the question closes")?;
    let status = browser.wait_for(&format!("{disable} .account-status"), WAIT).await?.text().await?;
    ensure!(status == "正常", "cancelled, the account stays active: {status}");
    browser.wait_for(&format!("{disable} button"), WAIT).await?.click().await?;
    browser.wait_for(".modal [data-answer=yes]", WAIT).await?.click().await?;
    wait_until(WAIT, || async {
        match browser.client().find(fantoccini::Locator::Css(&format!("{disable} .account-status"))).await {
            Ok(e) => e.text().await.is_ok_and(|t| t == "已停用"),
            Err(_) => false,
        }
    })
    .await
    .context("the page shows 已停用")?;
    browser.screenshot(screenshots().join("site-roles-edit.png")).await?;
    ensure!(agent_client.get(format!("{url}/api/status")).send().await?.status() == 401, "the agent's session ended");
    let again = reqwest::Client::builder().cookie_store(true).timeout(WAIT).build()?;
    ensure!(post(&again, format!("{url}/api/login"), json!({"username": "agent1", "password": AGENT_PASSWORD})).await.is_err(), "no sign-in while disabled");

    browser.wait_for(&format!("{disable} button"), WAIT).await?.click().await?;
    wait_until(WAIT, || async {
        match browser.client().find(fantoccini::Locator::Css(&format!("{disable} .account-status"))).await {
            Ok(e) => e.text().await.is_ok_and(|t| t == "正常"),
            Err(_) => false,
        }
    })
    .await
    .context("enabled again")?;
    let reset = format!("form.account-password[data-api='/api/accounts/{agent}/password']");
    browser.wait_for(&format!("{reset} button"), WAIT).await?.click().await?;
    browser.wait_for(".modal [data-answer=yes]", WAIT).await?.click().await?;
    let shown = wait_for_some(WAIT, || async {
        let text = browser.client().find(fantoccini::Locator::Css(&format!("{reset} .form-result"))).await.ok()?.text().await.ok()?;
        text.contains("新密码").then_some(text)
    })
    .await
    .context("the new password is shown")?;
    let password = shown.rsplit('：').next().unwrap_or_default().trim().to_string();
    post(&again, format!("{url}/api/login"), json!({"username": "agent1", "password": password})).await.context("the new password works")?;
    browser.close().await?;
    Ok(())
}
