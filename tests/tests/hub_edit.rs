//! Edit after create at HQ, clicked through a real headless Chromium at 1366×768, against a
//! real hub with a real box enrolled over QUIC with mutual TLS:
//!
//! - 查看号码 is a page, not JSON: 50 numbers a page, masked while the project hides the
//!   middle four digits, a next page, a search by the last four digits, and an empty state
//!   when searching the hidden digits.
//! - The sub-project editor: rename, reorder, retitle and make a field read-only, delete a
//!   field (the warning names the project's 60 customer rows; cancel keeps it, confirm
//!   deletes it), add a required single-choice business field, change the script and stop
//!   hiding digits, and keep 推荐套餐 out of the lists (列表显示). The new version reaches the
//!   site through the link (nothing is written to a down log by hand): 查看号码 shows whole
//!   numbers from then on, and the site admin's customer list (paged 50 + 10, an empty day
//!   span showing the empty state) drops the 推荐套餐 column it showed before.
//! - A role's modules edited, a sub-admin's password reset and the account disabled: its
//!   session ends, the login page says it is disabled; enabled again, the new password works.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, ensure};
use demo::setup::{Api, dispatch_demo_list, enroll_site};
use fantoccini::Locator;
use serde_json::{Value, json};
use tests::{Browser, free_udp_port, wait_for_some, wait_until};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

async fn login(browser: &Browser, base: &str, username: &str, password: &str) -> anyhow::Result<()> {
    browser.goto(&format!("{base}/login")).await?;
    browser.wait_for("input[name=username]", WAIT).await?.send_keys(username).await?;
    browser.wait_for("input[name=password]", WAIT).await?.send_keys(password).await?;
    browser.wait_for("form button", WAIT).await?.click().await?;
    Ok(())
}

async fn wait_for_path(browser: &Browser, path: &str) -> anyhow::Result<()> {
    wait_until(WAIT, || async { browser.client().current_url().await.is_ok_and(|u| u.path() == path) })
        .await
        .with_context(|| format!("the browser reaches {path}"))
}

async fn click(browser: &Browser, css: &str) -> anyhow::Result<()> {
    browser.wait_for(css, WAIT).await?.click().await.with_context(|| format!("clicking {css}"))?;
    Ok(())
}

async fn count(browser: &Browser, css: &str) -> anyhow::Result<usize> {
    Ok(browser.client().find_all(Locator::Css(css)).await?.len())
}

/// Waits for the console's confirmation modal and returns its question.
async fn dialog(browser: &Browser) -> anyhow::Result<String> {
    let question = browser.wait_for(".modal-back .modal p", WAIT).await.context("a confirmation dialog opens")?;
    Ok(question.text().await?)
}

/// Answers the open modal: `yes` confirms, `no` cancels; waits for it to close.
async fn answer(browser: &Browser, which: &str) -> anyhow::Result<()> {
    click(browser, &format!(".modal [data-answer={which}]")).await?;
    wait_until(WAIT, || async { browser.client().find(Locator::Css(".modal-back")).await.is_err() })
        .await
        .context("the modal closes")
}

async fn replace_text(browser: &Browser, css: &str, text: &str) -> anyhow::Result<()> {
    let input = browser.wait_for(css, WAIT).await?;
    input.clear().await?;
    input.send_keys(text).await?;
    Ok(())
}

/// The cells of the numbers table's rows.
async fn number_rows(browser: &Browser) -> anyhow::Result<Vec<String>> {
    let mut phones = Vec::new();
    for cell in browser.client().find_all(Locator::Css("#numbers tbody td.phone")).await? {
        phones.push(cell.text().await?);
    }
    Ok(phones)
}

async fn numbers_page(browser: &Browser, base: &str, batch: i64, project: &Value) -> anyhow::Result<()> {
    ensure!(project["hide_middle_digits"] == json!(true), "the demo project hides the middle digits");
    browser.goto(&format!("{base}/batches")).await?;
    click(browser, &format!("#batch-{batch} a[href='/batches/{batch}/numbers']")).await?;
    wait_for_path(browser, &format!("/batches/{batch}/numbers")).await?;
    browser.wait_for("#numbers tbody td.phone", WAIT).await?;
    let first = number_rows(browser).await?;
    ensure!(first.len() == 50, "50 numbers a page: {}", first.len());
    ensure!(first[0] == "138****0001", "masked: {:?}", first[0]);
    ensure!(first.iter().all(|p| p.contains("****")), "every number masked");
    let main = browser.wait_for("main", WAIT).await?.text().await?;
    ensure!(!main.contains('{') && !main.contains("\"phone\""), "no JSON on the page");
    browser.screenshot(tests::screenshot_dir().join("hub-numbers.png")).await?;
    click(browser, "#next-page").await?;
    wait_until(WAIT, || async { number_rows(browser).await.is_ok_and(|rows| rows.len() == 10) }).await.context("the second page holds the last 10")?;
    ensure!(number_rows(browser).await?[0] == "138****0051", "the second page starts after the first");
    ensure!(count(browser, "#next-page").await? == 0, "no page after the last");

    replace_text(browser, "#number-search input[name=q]", "0042").await?;
    click(browser, "#number-search button").await?;
    wait_until(WAIT, || async { number_rows(browser).await.is_ok_and(|rows| rows == ["138****0042"]) }).await.context("the last four digits find the number")?;
    replace_text(browser, "#number-search input[name=q]", "80013").await?;
    click(browser, "#number-search button").await?;
    // "80013" runs through the hidden digits of every number: not searchable.
    let empty = browser.wait_for("#numbers td.empty", WAIT).await?.text().await?;
    ensure!(empty.contains("没有符合条件的号码"), "the empty state says what to do: {empty}");
    Ok(())
}

/// The editor flow; returns nothing, HQ's API is checked by the caller.
async fn edit_project(browser: &Browser, base: &str, project: u64) -> anyhow::Result<()> {
    browser.goto(&format!("{base}/projects/{project}")).await?;
    click(browser, "#edit-project").await?;
    wait_for_path(browser, &format!("/projects/{project}/edit")).await?;
    let usage = browser.wait_for("#usage", WAIT).await?.text().await?;
    ensure!(usage.contains("60 行客户资料"), "the editor says how much data there is: {usage}");
    replace_text(browser, "#definition input[name=name]", "5G畅享套餐升级二期").await?;
    // 推荐套餐 moves above 客户姓名, is retitled and made read-only.
    click(browser, "#customer_fields tbody tr:nth-child(2) button[data-move='-1']").await?;
    replace_text(browser, "#customer_fields tbody tr:nth-child(1) input[name=title]", "推荐套餐名称").await?;
    click(browser, "#customer_fields tbody tr:nth-child(1) input[name=read_only]").await?;
    // ... and kept out of the lists' columns (列表显示).
    click(browser, "#customer_fields tbody tr:nth-child(1) input[name=listed]").await?;
    // Deleting 客户姓名 warns with the count; cancel keeps it, confirm deletes it.
    click(browser, "#customer_fields tbody tr:nth-child(2) button[data-remove]").await?;
    let warning = dialog(browser).await?;
    ensure!(warning.contains("60 行客户资料"), "the warning names the rows: {warning}");
    answer(browser, "no").await?;
    ensure!(count(browser, "#customer_fields tbody tr").await? == 2, "cancel keeps the field");
    click(browser, "#customer_fields tbody tr:nth-child(2) button[data-remove]").await?;
    dialog(browser).await?;
    answer(browser, "yes").await?;
    ensure!(count(browser, "#customer_fields tbody tr").await? == 1, "confirm deletes it");
    // A new business field: 意向等级, single choice 高 / 低, required.
    let before = count(browser, "#record_fields tbody tr").await?;
    click(browser, "#record_fields button[data-add]").await?;
    let new_row = format!("#record_fields tbody tr:nth-child({})", before + 1);
    replace_text(browser, &format!("{new_row} input[name=title]"), "意向等级").await?;
    click(browser, &format!("{new_row} select[name=kind] option[value=single_choice]")).await?;
    replace_text(browser, &format!("{new_row} textarea[name=options]"), "高\n低").await?;
    click(browser, &format!("{new_row} input[name=required]")).await?;
    // The popup page.
    replace_text(browser, "#definition textarea[name=script]", "您好，这里是二期话术。").await?;
    click(browser, "#definition input[name=hide_middle_digits]").await?;
    browser.screenshot(tests::screenshot_dir().join("hub-project-edit.png")).await?;
    click(browser, "#definition > button").await?;
    browser.wait_for("#saved", WAIT).await.context("the editor reloads with 已保存")?;
    let name = browser.wait_for("#definition input[name=name]", WAIT).await?.prop("value").await?.unwrap_or_default();
    ensure!(name == "5G畅享套餐升级二期", "the page shows the new name: {name}");
    Ok(())
}

/// The site admin's 项目数据资料 → customers, in the same browser (the site's session cookie
/// is its own): the columns shown and whether `plan_shown`; 60 rows come as 50 then 10; a
/// day span with no import shows the empty state.
async fn site_customers(browser: &Browser, site: &str, project: u64, plan_shown: bool) -> anyhow::Result<()> {
    browser.goto(&format!("{site}/admin/data?project_id={project}&tab=customers")).await?;
    browser.wait_for("#customers thead", WAIT).await?;
    let rows = || async { count(browser, "#customers tbody tr").await };
    ensure!(rows().await? == 50, "50 customers a page: {}", rows().await?);
    let head = browser.wait_for("#customers thead", WAIT).await?.text().await?;
    let body = browser.wait_for("#customers tbody", WAIT).await?.text().await?;
    let plan = head.contains("推荐套餐") || body.contains("5G畅享") || body.contains("流量包");
    ensure!(plan == plan_shown, "推荐套餐 shown in the list: {plan}, expected {plan_shown}: {head}");
    click(browser, "#data-pager a.next").await?;
    wait_until(WAIT, || async { rows().await.is_ok_and(|n| n == 10) }).await.context("the second page holds the last 10")?;
    ensure!(count(browser, "#data-pager a.next").await? == 0, "no page after the last");
    browser.wait_for("#data-pager a.first", WAIT).await.context("a link back to the first page")?;
    // A day span with no import: nothing listed, and the page says so.
    browser
        .client()
        .execute("const i = document.querySelector('form input[name=from]'); i.value = '2099-01-01'; i.form.submit();", vec![])
        .await?;
    let empty = browser.wait_for("p.empty", WAIT).await?.text().await?;
    ensure!(rows().await? == 0 && !empty.is_empty(), "an empty span shows the empty state: {empty}");
    Ok(())
}

async fn site_login(browser: &Browser, site: &str, password: &str) -> anyhow::Result<()> {
    browser.goto(&format!("{site}/login")).await?;
    browser.wait_for("input[name=username]", WAIT).await?.send_keys("siteadmin").await?;
    browser.wait_for("input[name=password]", WAIT).await?.send_keys(password).await?;
    click(browser, "button[type=submit]").await?;
    wait_until(WAIT, || async { browser.client().current_url().await.is_ok_and(|u| !u.path().starts_with("/login")) })
        .await
        .context("the site admin is signed in")
}

/// 归属设置's "add a row" past the blank rows, then archiving (asked first) and its mark.
async fn rules_and_archive(browser: &Browser, base: &str, hq: &Api, project: u64) -> anyhow::Result<()> {
    // 归属设置 is a tab of the project page; the link names it.
    browser.goto(&format!("{base}/projects/{project}#tab-attribution")).await?;
    let blank = count(browser, "#attribution tbody tr[data-row]").await?;
    for _ in 0..blank {
        click(browser, "#attribution button[data-add-rule]").await?;
    }
    ensure!(count(browser, "#attribution tbody tr[data-row]").await? == blank * 2, "each click adds a row");
    let last = format!("#attribution tbody tr[data-row]:nth-of-type({})", blank * 2);
    replace_text(browser, &format!("{last} input[name=value]"), "5G畅享129元").await?;
    click(browser, "#attribution > button").await?;
    let rules = wait_for_some(WAIT, || async {
        let rules: Value = hq.get(&format!("/api/projects/{project}/attribution")).await.ok()?;
        let list = rules.get("rules").cloned().unwrap_or(rules);
        list.as_array().filter(|l| !l.is_empty()).cloned()
    })
    .await
    .context("the rule typed in an added row is saved")?;
    ensure!(rules.len() == 1 && rules[0]["value"] == json!("5G畅享129元"), "{rules:?}");
    // The form reloads with the saved rule in its first row.
    wait_until(WAIT, || async {
        match browser.client().find(Locator::Css("#attribution tbody tr[data-row] input[name=value]")).await {
            Ok(e) => e.prop("value").await.ok().flatten().is_some_and(|v| v == "5G畅享129元"),
            Err(_) => false,
        }
    })
    .await
    .context("the page reloads with the rule")?;

    browser.goto(&format!("{base}/projects/{project}/edit")).await?;
    click(browser, "#archive button").await?;
    ensure!(dialog(browser).await?.contains("归档"), "archiving asks first");
    answer(browser, "yes").await?;
    browser.wait_for("#archived-tag", WAIT).await.context("the editor shows 已归档")?;
    browser.goto(&format!("{base}/projects")).await?;
    let row = browser.wait_for(&format!("#project-{project}"), WAIT).await?.text().await?;
    ensure!(row.contains("已归档"), "the project list marks it: {row}");
    Ok(())
}

/// Role edit, password reset, disable and enable, all on the pages.
async fn accounts(browser: &Browser, base: &str, hq: &Api, site_id: u64) -> anyhow::Result<()> {
    let role: Value = hq.post("/api/roles", &json!({"name": "质检", "modules": ["data.batches"]})).await?;
    let role = role["id"].as_i64().context("role id")?;
    let account: Value = hq
        .post("/api/accounts", &json!({"username": "zhangsan", "password": "zhangsan-123", "role_id": role, "site_ids": [site_id]}))
        .await?;
    let account = account["id"].as_i64().context("account id")?;
    let zhang = Api::login(base, "zhangsan", "zhangsan-123").await?;
    zhang.get::<Value>("/api/batches").await.context("zhangsan works before")?;

    browser.goto(&format!("{base}/accounts")).await?;
    click(browser, &format!("#role-{role} a")).await?;
    wait_for_path(browser, &format!("/roles/{role}/edit")).await?;
    click(browser, "#role-form input[value=reports]").await?;
    click(browser, "#role-form > button").await?;
    wait_until(WAIT, || async {
        matches!(browser.wait_for("#role-form .result", WAIT).await, Ok(e) if e.text().await.is_ok_and(|t| t == "已保存"))
    })
    .await
    .context("the role is saved")?;
    let roles: Vec<Value> = hq.get("/api/roles").await?;
    let modules = roles.iter().find(|r| r["id"] == json!(role)).map(|r| r["modules"].clone()).unwrap_or_default();
    ensure!(modules == json!(["data.batches", "reports"]), "the role's modules: {modules}");

    browser.goto(&format!("{base}/accounts")).await?;
    click(browser, &format!("#account-{account} a")).await?;
    wait_for_path(browser, &format!("/accounts/{account}/edit")).await?;
    click(browser, "#account-password button").await?;
    ensure!(dialog(browser).await?.contains("旧密码"), "the reset asks first");
    answer(browser, "yes").await?;
    let shown = wait_for_some(WAIT, || async {
        let text = browser.wait_for("#account-password .result", WAIT).await.ok()?.text().await.ok()?;
        text.contains("新密码").then_some(text)
    })
    .await
    .context("the new password is shown once")?;
    let password = shown.rsplit(' ').next().unwrap_or_default().to_string();
    ensure!(password.len() >= 12, "a random password: {shown}");

    click(browser, "#account-disable button").await?;
    ensure!(dialog(browser).await?.contains("停用"), "disabling asks first");
    answer(browser, "yes").await?;
    wait_until(WAIT, || async {
        matches!(browser.wait_for("#account-status", WAIT).await, Ok(e) if e.text().await.is_ok_and(|t| t == "已停用"))
    })
    .await
    .context("the page shows 已停用")?;
    browser.screenshot(tests::screenshot_dir().join("hub-account-edit.png")).await?;
    ensure!(zhang.get::<Value>("/api/batches").await.is_err(), "the disabled account's session ended");
    ensure!(Api::login(base, "zhangsan", &password).await.is_err(), "a disabled account cannot log in");

    // Enabled again (no confirmation needed), the new password works and the old does not.
    click(browser, "#account-disable button").await?;
    wait_until(WAIT, || async {
        matches!(browser.wait_for("#account-status", WAIT).await, Ok(e) if e.text().await.is_ok_and(|t| t == "正常"))
    })
    .await
    .context("the page shows 正常")?;
    Api::login(base, "zhangsan", &password).await.context("the new password works")?;
    ensure!(Api::login(base, "zhangsan", "zhangsan-123").await.is_err(), "the old password does not");

    // Disabled once more, the login page says why.
    hq.post::<Value>(&format!("/api/accounts/{account}/disabled"), &json!({"disabled": true})).await?;
    browser.client().delete_all_cookies().await?;
    login(browser, base, "zhangsan", &password).await?;
    // The login page answers in place; read it once it has (an element read before may be gone).
    wait_for_some(WAIT, || async {
        let main = browser.client().find(Locator::Css("main")).await.ok()?.text().await.ok()?;
        main.contains("该账号已停用").then_some(())
    })
    .await
    .context("the login page says the account is disabled")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_after_create_in_chromium_reaches_the_site_over_the_link() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("info,quinn=warn,rustls=warn").try_init();
    let dir = tempfile::tempdir()?;
    let (hub_dir, site_dir) = (dir.path().join("hub"), dir.path().join("site"));
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let (hub, hq_password) = tests::start_hub(&hub_dir, shutdown.clone()).await?;
    let base = format!("http://{}", hub.http_addr);
    let hq = Api::login(&base, "admin", &hq_password).await?;
    let site_id = enroll_site(&hq, "编辑职场", &site_dir, hub.sync_addr).await?;
    dispatch_demo_list(&hq, "流量类", &dir.path().join("名单.xlsx"), 60, "编辑批次", site_id).await?;
    let projects: Vec<Value> = hq.get("/api/projects").await?;
    let project_id = projects[0]["id"].as_u64().context("the demo project")?;
    let batches: Vec<Value> = hq.get("/api/batches").await?;
    let batch = batches[0]["id"].as_i64().context("the batch")?;
    let site_password = appliance::init_admin(&site_dir, "siteadmin")?;
    let box_config = appliance::ApplianceConfig::on_loopback(&site_dir, SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), free_udp_port()), 1);
    let appliance = appliance::start(box_config, shutdown.clone()).await?;
    let first = wait_for_some(Duration::from_secs(60), || async { appliance.store.project(project_id).ok().flatten() })
        .await
        .context("the site has the project")?;

    wait_until(Duration::from_secs(60), || async {
        appliance.store.customers(&appliance::store::Viewer { username: "t".into(), unmask: false }, None, Some(project_id), None, 100).is_ok_and(|c| c.len() == 60)
    })
    .await
    .context("the site has the 60 rows")?;

    let browser = Browser::start().await?;
    browser.client().set_window_size(1366, 768).await?;
    let site = format!("http://{}", appliance.http_addr);
    site_login(&browser, &site, &site_password).await?;
    site_customers(&browser, &site, project_id, true).await?;
    login(&browser, &base, "admin", &hq_password).await?;
    wait_until(WAIT, || async { browser.client().current_url().await.is_ok_and(|u| u.path() == "/") }).await.context("logged in")?;

    numbers_page(&browser, &base, batch, &projects[0]).await?;
    edit_project(&browser, &base, project_id).await?;

    // HQ holds the edit.
    let project: Value = hq.get(&format!("/api/projects/{project_id}")).await?;
    ensure!(project["name"] == json!("5G畅享套餐升级二期"), "{}", project["name"]);
    let customer = project["customer_fields"].as_array().context("customer fields")?;
    ensure!(customer.len() == 1 && customer[0]["key"] == json!("plan"), "only 推荐套餐 is left: {customer:?}");
    ensure!(customer[0]["title"] == json!("推荐套餐名称") && customer[0]["read_only"] == json!(true), "{customer:?}");
    ensure!(customer[0]["listed"] == json!(false), "kept out of the lists: {customer:?}");
    let record = project["record_fields"].as_array().context("record fields")?;
    let level = record.last().context("a record field")?;
    ensure!(level["title"] == json!("意向等级") && level["key"] == json!("field_1"), "{level}");
    ensure!(level["kind"] == json!("single_choice") && level["options"] == json!(["高", "低"]) && level["required"] == json!(true), "{level}");
    ensure!(project["script"] == json!("您好，这里是二期话术。") && project["hide_middle_digits"] == json!(false), "{project}");

    // The site gets the new version over the link.
    let sent = wait_for_some(Duration::from_secs(60), || async {
        appliance.store.project(project_id).ok().flatten().filter(|def| def.version > first.version)
    })
    .await
    .context("the edit reaches the site over the link")?;
    ensure!(sent.name == "5G畅享套餐升级二期" && sent.script == "您好，这里是二期话术。" && !sent.hide_middle_digits, "{sent:?}");
    let titles: Vec<&str> = sent.customer_fields.iter().map(|f| f.title.as_str()).collect();
    ensure!(titles == ["推荐套餐名称"] && sent.customer_fields[0].read_only, "{titles:?}");
    ensure!(sent.record_fields.iter().any(|f| f.title == "意向等级" && f.required), "{:?}", sent.record_fields);

    // The site's list leaves the unlisted field out once HQ's choice arrives over the link.
    wait_until(Duration::from_secs(60), || async { appliance.store.unlisted_fields(project_id).is_ok_and(|u| u.customer.contains("plan")) })
        .await
        .context("列表显示 reaches the site over the link")?;
    site_customers(&browser, &site, project_id, false).await?;

    // Numbers are whole now that the project no longer hides them.
    browser.goto(&format!("{base}/batches/{batch}/numbers")).await?;
    browser.wait_for("#numbers tbody td.phone", WAIT).await?;
    ensure!(number_rows(&browser).await?[0] == "13800130001", "unmasked after the edit");

    rules_and_archive(&browser, &base, &hq, project_id).await?;
    accounts(&browser, &base, &hq, site_id).await?;
    browser.close().await?;
    Ok(())
}
