//! The site's 归属分配 form in a real Chromium at 1366×768: a rule the site refuses (a value
//! made only of separators) is reported next to the form in Chinese, and the next, valid
//! rule is saved without reloading the page first: the refused rule does not stay behind in
//! the page to make every later save fail.

use std::time::Duration;

use anyhow::{Context, ensure};

use tests::{Browser, free_udp_port, wait_for_some, wait_until};

mod site_support;

use site_support::*;

const WAIT: Duration = Duration::from_secs(10);

async fn text(browser: &Browser, css: &str) -> anyhow::Result<String> {
    Ok(browser.wait_for(css, WAIT).await?.text().await?)
}

/// Types `values` into the add-rule form, picks `agent` and submits.
async fn add_rule(browser: &Browser, values: &str, agent: &str) -> anyhow::Result<()> {
    browser.wait_for("form.add-rule select[name=field]", WAIT).await?.select_by_value("name").await?;
    let input = browser.wait_for("form.add-rule input[name=values]", WAIT).await?;
    input.clear().await?;
    input.send_keys(values).await?;
    browser.wait_for("form.add-rule select[name=agent]", WAIT).await?.select_by_value(agent).await?;
    browser.wait_for("form.add-rule button[type=submit]", WAIT).await?.click().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_rule_does_not_block_the_next_one() -> anyhow::Result<()> {
    let site = start_site_with_agent(free_udp_port(), 41, 3).await?;
    let url = site.url.clone();
    let browser = Browser::start().await?;
    browser.client().set_window_size(1366, 768).await?;
    login(&browser, &url, "siteadmin", &site.admin_password).await?;
    browser.goto(&format!("{url}/admin/attribution")).await?;

    // "，" passes the input's `required` but holds no value: the site refuses the rule.
    add_rule(&browser, "，", "agent1").await?;
    let error = wait_for_some(WAIT, || async {
        let shown = browser.wait_for("form.add-rule .form-error", Duration::from_secs(1)).await.ok()?;
        let visible = shown.is_displayed().await.ok()?;
        let message = shown.text().await.ok()?;
        (visible && !message.is_empty()).then_some(message)
    })
    .await
    .context("the refusal is shown next to the form")?;
    ensure!(error.contains("规则 1") && error.contains("客户姓名"), "the refusal names the rule and the field by its label, in Chinese: {error}");
    ensure!(site.appliance.store.site_rules(7)?.is_empty(), "nothing was saved");

    // Without reloading, a valid rule is saved and listed.
    add_rule(&browser, "客户1，客户2", "agent1").await?;
    wait_until(WAIT, || async { site.appliance.store.site_rules(7).is_ok_and(|rules| rules.len() == 1) })
        .await
        .context("the valid rule alone is saved")?;
    let rules = site.appliance.store.site_rules(7)?;
    ensure!(rules[0].conditions == vec![("name".to_string(), vec!["客户1".to_string(), "客户2".to_string()])], "{rules:?}");
    wait_until(WAIT, || async { text(&browser, "#rules table").await.is_ok_and(|t| t.contains("agent1") && t.contains("客户1")) })
        .await
        .context("the saved rule is listed after the page reloads")?;

    browser.close().await?;
    Ok(())
}
