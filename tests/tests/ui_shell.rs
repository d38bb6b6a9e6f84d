//! The consoles' app shell in a real browser at 1366×768: the confirmations before
//! irreversible or wide actions (Cancel keeps the state, Confirm acts), the one-click pause's
//! question carrying the server's counts, and the side navigation that shows a restricted
//! role only its modules while the server still refuses the others.
//!
//! The confirmation flow runs in Chromium and again in Firefox ESR (geckodriver), the
//! consoles' second browser, through the same harness.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, ensure};
use fantoccini::Locator;
use serde_json::{Value, json};
use tests::{Browser, Engine, RunningHub, free_udp_port, wait_until};

mod site_support;

const WAIT: Duration = Duration::from_secs(20);

use tests::JsonApi as Api;

/// Imports a two-number call list into `project`; the file's id.
async fn import(api: &Api, project: i64, dir: &Path, name: &str, phones: [&str; 2]) -> anyhow::Result<i64> {
    let path = dir.join(name);
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.write_string(0, 0, "手机号码")?;
    for (row, phone) in phones.iter().enumerate() {
        sheet.write_string(u32::try_from(row)? + 1, 0, *phone)?;
    }
    workbook.save(&path)?;
    let part = reqwest::multipart::Part::bytes(std::fs::read(&path)?).file_name(name.to_string());
    let form = reqwest::multipart::Form::new().part("file", part);
    let response = api.http.post(format!("{}/api/projects/{project}/files", api.base)).multipart(form).send().await?;
    ensure!(response.status().is_success(), "importing {name}: {}", response.text().await?);
    let report: Value = response.json().await?;
    report["file_id"].as_i64().context("file id")
}

fn id(value: &Value) -> anyhow::Result<i64> {
    value["id"].as_i64().with_context(|| format!("no id in {value}"))
}

async fn browser_login(browser: &Browser, url: &str, username: &str, password: &str) -> anyhow::Result<()> {
    browser.goto(&format!("{url}/login")).await?;
    browser.wait_for("input[name=username]", WAIT).await?.send_keys(username).await?;
    browser.wait_for("input[name=password]", WAIT).await?.send_keys(password).await?;
    browser.wait_for("form button", WAIT).await?.click().await?;
    wait_until(WAIT, || async { browser.client().current_url().await.is_ok_and(|u| !u.path().starts_with("/login")) })
        .await
        .with_context(|| format!("{username} is logged in"))?;
    Ok(())
}

/// A batch's line of the task list (`None` once deleted).
async fn batch(api: &Api, id: i64) -> anyhow::Result<Option<Value>> {
    let list = api.get("/api/batches").await?;
    Ok(list.as_array().context("batch list")?.iter().find(|b| b["id"] == json!(id)).cloned())
}

async fn priority(api: &Api, id: i64) -> anyhow::Result<i64> {
    batch(api, id).await?.and_then(|b| b["priority"].as_i64()).with_context(|| format!("batch {id}'s priority"))
}

/// Waits for the confirmation modal and returns its question.
async fn modal_text(browser: &Browser) -> anyhow::Result<String> {
    Ok(browser.wait_for(".modal-back .modal p", WAIT).await?.text().await?)
}

/// Answers the open modal (`yes` confirms, `no` cancels) and waits for it to close.
async fn answer(browser: &Browser, which: &str) -> anyhow::Result<()> {
    browser.wait_for(&format!(".modal [data-answer={which}]"), WAIT).await?.click().await?;
    wait_until(WAIT, || async { browser.client().find(Locator::Css(".modal-back")).await.is_err() })
        .await
        .context("the modal closes")?;
    Ok(())
}

/// Types `value` into the priority field of batch `id`'s row and submits it.
async fn set_priority(browser: &Browser, id: i64, value: &str) -> anyhow::Result<()> {
    let input = browser.wait_for(&format!("#batch-{id} .priority-form input[name=priority]"), WAIT).await?;
    input.clear().await?;
    input.send_keys(value).await?;
    browser.wait_for(&format!("#batch-{id} .priority-form button"), WAIT).await?.click().await?;
    Ok(())
}

/// Two categories, one project each, one file each, one batch each at its own site.
struct Setup {
    cat_a: i64,
    project_a: i64,
    batch_a: i64,
    batch_b: i64,
    file_a: i64,
}

async fn set_up(hub: &RunningHub, api: &Api) -> anyhow::Result<Setup> {
    let site_a = id(&api.post("/api/sites", json!({ "name": "一号职场" })).await?)?;
    let site_b = id(&api.post("/api/sites", json!({ "name": "二号职场" })).await?)?;
    let cat_a = id(&api.post("/api/categories", json!({ "name": "宽带" })).await?)?;
    let cat_b = id(&api.post("/api/categories", json!({ "name": "信用卡" })).await?)?;
    let project_a = id(&api.post("/api/projects", json!({ "category_id": cat_a, "name": "宽带续约" })).await?)?;
    let project_b = id(&api.post("/api/projects", json!({ "category_id": cat_b, "name": "分期推荐" })).await?)?;
    api.send(reqwest::Method::PUT, &format!("/api/projects/{project_a}/sites"), json!({ "site_ids": [site_a] })).await?;
    api.send(reqwest::Method::PUT, &format!("/api/projects/{project_b}/sites"), json!({ "site_ids": [site_b] })).await?;
    let file_a = import(&api, project_a, hub.dir.path(), "宽带名单.xlsx", ["13800138001", "13800138002"]).await?;
    let file_b = import(&api, project_b, hub.dir.path(), "分期名单.xlsx", ["13900139001", "13900139002"]).await?;
    for (file, name, site) in [(file_a, "宽带一批", site_a), (file_b, "分期一批", site_b)] {
        api.post(&format!("/api/files/{file}/dispatch"), json!({ "name": name, "priority": 5, "site_ids": [site] })).await?;
    }
    let list = api.get("/api/batches").await?;
    let find = |name: &str| {
        list.as_array().and_then(|l| l.iter().find(|b| b["name"] == json!(name))).and_then(|b| b["id"].as_i64())
    };
    Ok(Setup {
        cat_a,
        project_a,
        batch_a: find("宽带一批").context("batch 宽带一批")?,
        batch_b: find("分期一批").context("batch 分期一批")?,
        file_a,
    })
}

/// Every confirmation of the hub's task list and file list: Cancel keeps, Confirm acts.
async fn confirmations(engine: Engine) -> anyhow::Result<()> {
    let hub = RunningHub::start().await?;
    let api = Api::login(&hub.url, "admin", &hub.password, WAIT).await?;
    let s = set_up(&hub, &api).await?;
    let browser = Browser::start_with(engine).await?;
    browser_login(&browser, &hub.url, "admin", &hub.password).await?;
    let batches = format!("{}/batches", hub.url);

    // One-click pause of one category: the question counts its batches and sites.
    browser.goto(&batches).await?;
    browser.wait_for("#one-click select[name=category_id]", WAIT).await?.select_by_value(&s.cat_a.to_string()).await?;
    browser.wait_for("#one-click select[name=action]", WAIT).await?.select_by_value("pause").await?;
    browser.wait_for("#one-click button", WAIT).await?.click().await?;
    let question = modal_text(&browser).await?;
    ensure!(question.contains("1 个批次") && question.contains("1 个职场"), "the category pause's question: {question}");
    answer(&browser, "no").await?;
    ensure!(priority(&api, s.batch_a).await? == 5, "Cancel keeps the batch running");
    // All projects: both batches at two sites.
    browser.wait_for("#one-click select[name=category_id]", WAIT).await?.select_by_value("").await?;
    browser.wait_for("#one-click button", WAIT).await?.click().await?;
    let question = modal_text(&browser).await?;
    ensure!(question.contains("2 个批次") && question.contains("2 个职场"), "the pause-all question: {question}");
    answer(&browser, "no").await?;
    // Confirm the category's pause: only its batch pauses.
    browser.wait_for("#one-click select[name=category_id]", WAIT).await?.select_by_value(&s.cat_a.to_string()).await?;
    browser.wait_for("#one-click button", WAIT).await?.click().await?;
    modal_text(&browser).await?;
    answer(&browser, "yes").await?;
    wait_until(WAIT, || async { priority(&api, s.batch_a).await.is_ok_and(|p| p == 1) })
        .await
        .context("Confirm pauses the category's batch")?;
    ensure!(priority(&api, s.batch_b).await? == 5, "the other category's batch keeps running");
    // Starting asks nothing.
    browser.goto(&batches).await?;
    browser.wait_for("#one-click select[name=action]", WAIT).await?.select_by_value("start").await?;
    browser.wait_for("#one-click button", WAIT).await?.click().await?;
    wait_until(WAIT, || async { priority(&api, s.batch_a).await.is_ok_and(|p| p == 5) })
        .await
        .context("one-click start acts without a question")?;

    // Priority 0 ends a batch for ever: asked; another priority is not.
    browser.goto(&batches).await?;
    set_priority(&browser, s.batch_b, "0").await?;
    let question = modal_text(&browser).await?;
    ensure!(question.contains("永久结束"), "priority 0's question: {question}");
    answer(&browser, "no").await?;
    ensure!(priority(&api, s.batch_b).await? == 5, "Cancel keeps the batch's priority");
    ensure!(batch(&api, s.batch_b).await?.is_some_and(|b| b["ended"] == json!(false)), "Cancel leaves the batch open");
    set_priority(&browser, s.batch_b, "7").await?;
    wait_until(WAIT, || async { priority(&api, s.batch_b).await.is_ok_and(|p| p == 7) })
        .await
        .context("a priority other than 0 is saved without a question")?;
    browser.wait_for(".toast", WAIT).await.context("a saved change shows a toast")?;
    set_priority(&browser, s.batch_b, "0").await?;
    modal_text(&browser).await?;
    answer(&browser, "yes").await?;
    wait_until(WAIT, || async { batch(&api, s.batch_b).await.is_ok_and(|b| b.is_some_and(|b| b["ended"] == json!(true))) })
        .await
        .context("Confirm ends the batch")?;

    // Deleting a batch.
    browser.goto(&batches).await?;
    let delete = format!("#batch-{} form[data-api$='/delete'] button", s.batch_a);
    browser.wait_for(&delete, WAIT).await?.click().await?;
    ensure!(modal_text(&browser).await?.contains("宽带一批"), "the delete question names the batch");
    answer(&browser, "no").await?;
    ensure!(batch(&api, s.batch_a).await?.is_some(), "Cancel keeps the batch");
    browser.wait_for(&delete, WAIT).await?.click().await?;
    modal_text(&browser).await?;
    answer(&browser, "yes").await?;
    wait_until(WAIT, || async { batch(&api, s.batch_a).await.is_ok_and(|b| b.is_none()) })
        .await
        .context("Confirm deletes the batch")?;

    // Deleting a file.
    browser.goto(&format!("{}/files", hub.url)).await?;
    let delete = format!("#files form[data-api='/api/files/{}/delete'] button", s.file_a);
    browser.wait_for(&delete, WAIT).await?.click().await?;
    ensure!(modal_text(&browser).await?.contains("宽带名单"), "the delete question names the file");
    answer(&browser, "no").await?;
    ensure!(api.status(&format!("/api/files/{}", s.file_a)).await? == 200, "Cancel keeps the file");
    browser.wait_for(&delete, WAIT).await?.click().await?;
    modal_text(&browser).await?;
    answer(&browser, "yes").await?;
    wait_until(WAIT, || async { api.status(&format!("/api/files/{}", s.file_a)).await.is_ok_and(|code| code == 404) })
        .await
        .context("Confirm deletes the file")?;

    browser.close().await?;
    hub.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_confirmations_in_chromium() -> anyhow::Result<()> {
    confirmations(Engine::Chromium).await
}

/// The same console flow in Firefox ESR (geckodriver).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_confirmations_in_firefox() -> anyhow::Result<()> {
    confirmations(Engine::Firefox).await
}

/// A role holding only 文件管理 sees only what it may open in the side navigation; the pages
/// and API it lacks still answer 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_nav_shows_only_the_roles_modules() -> anyhow::Result<()> {
    let hub = RunningHub::start().await?;
    let api = Api::login(&hub.url, "admin", &hub.password, WAIT).await?;
    let role = id(&api.post("/api/roles", json!({ "name": "文件专员", "modules": ["data.files"] })).await?)?;
    api.post("/api/accounts", json!({ "username": "files_clerk", "password": "files-secret-1", "role_id": role })).await?;
    let browser = Browser::start().await?;
    browser_login(&browser, &hub.url, "files_clerk", "files-secret-1").await?;
    browser.goto(&format!("{}/files", hub.url)).await?;
    let mut shown = Vec::new();
    for link in browser.client().find_all(Locator::Css("#side-nav a.item")).await? {
        shown.push(link.attr("href").await?.unwrap_or_default());
    }
    for open in ["/", "/projects", "/files", "/sites"] {
        ensure!(shown.iter().any(|h| h == open), "{open} is in the menu: {shown:?}");
    }
    let lacking = ["/batches", "/accounts", "/voice", "/lists", "/monitor", "/calls", "/reports", "/announcements", "/data/customers", "/data/records"];
    for path in lacking {
        ensure!(!shown.iter().any(|h| h == path), "{path} must not be in the menu: {shown:?}");
    }
    let active = browser.wait_for("#side-nav a.item.active", WAIT).await?.attr("href").await?;
    ensure!(active.as_deref() == Some("/files"), "the page's item is marked: {active:?}");
    let crumbs = browser.wait_for(".topbar .crumbs", WAIT).await?.text().await?;
    ensure!(crumbs.contains("综合管理后台") && crumbs.contains("文件管理"), "breadcrumbs: {crumbs}");
    // The server refuses what the menu hides.
    let clerk = Api::login(&hub.url, "files_clerk", "files-secret-1", WAIT).await?;
    for path in ["/batches", "/accounts", "/api/batches", "/voice"] {
        ensure!(clerk.status(path).await? == 403, "{path} is refused to the clerk");
    }
    browser.close().await?;
    hub.stop().await
}

/// The hrefs of the side navigation on the current page.
async fn menu(browser: &Browser) -> anyhow::Result<Vec<String>> {
    browser.wait_for("#side-nav", WAIT).await?;
    let mut shown = Vec::new();
    for link in browser.client().find_all(Locator::Css("#side-nav a.item")).await? {
        shown.push(link.attr("href").await?.unwrap_or_default());
    }
    Ok(shown)
}

/// The site box: stopping a task asks first (Cancel keeps it running, Confirm stops it); the
/// admin's menu holds the admin pages and no desk page, the agent's the reverse, and the
/// server refuses the agent an admin page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_stop_task_confirmation_and_menus() -> anyhow::Result<()> {
    let site = site_support::start_site_with_agent(free_udp_port(), 41, 3).await?;
    let url = site.url.clone();
    site_support::post(
        &site.admin,
        format!("{url}/api/tasks/41/start"),
        json!({"ratio": 1, "max_concurrency": 1, "dial_mode": "predictive", "caller": "02150001111"}),
    )
    .await?;
    let browser = Browser::start().await?;
    site_support::login(&browser, &url, "siteadmin", &site.admin_password).await?;
    let shown = menu(&browser).await?;
    ensure!(shown.iter().any(|h| h == "/admin/tasks") && shown.iter().any(|h| h == "/admin/roles"), "admin menu: {shown:?}");
    ensure!(!shown.iter().any(|h| h.starts_with("/desk")), "no desk page in the admin's menu: {shown:?}");

    let task = format!("{url}/admin/tasks/41");
    let running = || async {
        browser.goto(&task).await.ok()?;
        Some(browser.wait_for("h1", WAIT).await.ok()?.text().await.ok()?.contains("外呼中"))
    };
    ensure!(running().await == Some(true), "the task runs");
    let stop = "button[data-post='/api/tasks/41/stop']";
    browser.wait_for(stop, WAIT).await?.click().await?;
    ensure!(modal_text(&browser).await?.contains("停止"), "the stop question");
    answer(&browser, "no").await?;
    ensure!(running().await == Some(true), "Cancel keeps the task running");
    browser.wait_for(stop, WAIT).await?.click().await?;
    modal_text(&browser).await?;
    answer(&browser, "yes").await?;
    wait_until(WAIT, || async { running().await == Some(false) }).await.context("Confirm stops the task")?;

    // The agent: desk pages only, and an admin page is refused.
    browser.client().delete_all_cookies().await?;
    site_support::login(&browser, &url, "agent1", site_support::AGENT_PASSWORD).await?;
    let shown = menu(&browser).await?;
    ensure!(shown.iter().any(|h| h == "/desk"), "agent menu: {shown:?}");
    ensure!(!shown.iter().any(|h| h.starts_with("/admin")), "no admin page in the agent's menu: {shown:?}");
    let agent = reqwest::Client::builder().cookie_store(true).timeout(WAIT).build()?;
    site_support::post(&agent, format!("{url}/api/login"), json!({"username": "agent1", "password": site_support::AGENT_PASSWORD})).await?;
    let refused = agent.get(format!("{url}/admin/tasks")).send().await?.status();
    ensure!(refused == reqwest::StatusCode::FORBIDDEN, "the agent is refused /admin/tasks: {refused}");
    browser.close().await?;
    Ok(())
}

/// Opens every page of `pages` in Chinese, then in English, each shot as `{prefix}-{name}-{lang}.png`
/// (in `docs/screenshots/tour/` when `UPDATE_SCREENSHOTS=1`). A page that fails to render
/// (no `<main>`, or an error status page) fails the tour.
async fn tour(browser: &Browser, base: &str, prefix: &str, pages: &[(&str, String)]) -> anyhow::Result<()> {
    let dir = tests::screenshot_dir().join("tour");
    for lang in ["zh", "en"] {
        browser.goto(&format!("{base}/lang/{lang}")).await?;
        for (name, path) in pages {
            // Through a blank page: a tab fragment alone would not load the page afresh.
            browser.goto("about:blank").await?;
            browser.goto(&format!("{base}{path}")).await?;
            let main = browser.wait_for("main", WAIT).await.with_context(|| format!("{path} in {lang}"))?;
            let text = main.text().await?;
            ensure!(!text.contains("Internal Server Error") && !text.trim().is_empty(), "{path} in {lang}: {text}");
            // Let charts and event streams draw before the shot.
            tokio::time::sleep(Duration::from_millis(300)).await;
            browser.screenshot(dir.join(format!("{prefix}-{name}-{lang}.png"))).await?;
        }
    }
    Ok(())
}

/// A batch of `project` shared by every site of `sites`: one pool leased to them, for the pool's page.
async fn shared_batch(hub: &RunningHub, api: &Api, project: i64, sites: &[i64]) -> anyhow::Result<i64> {
    api.send(reqwest::Method::PUT, &format!("/api/projects/{project}/sites"), json!({ "site_ids": sites })).await?;
    let file = import(api, project, hub.dir.path(), "宽带共享名单.xlsx", ["13800138011", "13800138012"]).await?;
    api.post(&format!("/api/files/{file}/dispatch"), json!({ "name": "宽带共享批", "priority": 5, "site_ids": sites })).await?;
    let list = api.get("/api/batches").await?;
    list.as_array()
        .and_then(|batches| batches.iter().find(|batch| batch["name"] == json!("宽带共享批")))
        .and_then(|batch| batch["id"].as_i64())
        .context("the shared batch")
}

/// Screenshots of every page of the hub console, in both languages, at 1366×768.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tour_of_the_hub_console() -> anyhow::Result<()> {
    let hub = RunningHub::start().await?;
    let api = Api::login(&hub.url, "admin", &hub.password, WAIT).await?;
    let s = set_up(&hub, &api).await?;
    let project = s.project_a;
    let sites = api.get("/api/sites").await?;
    let site_ids: Vec<i64> = sites.as_array().context("sites")?.iter().filter_map(|site| site["id"].as_i64()).collect();
    let site = *site_ids.first().context("a site")?;
    let pool = shared_batch(&hub, &api, project, &site_ids).await?;
    let browser = Browser::start().await?;
    browser.goto(&format!("{}/lang/zh", hub.url)).await?;
    tour(&browser, &hub.url, "hub", &[("login", "/login".to_string())]).await?;
    browser_login(&browser, &hub.url, "admin", &hub.password).await?;
    let pages: Vec<(&str, String)> = vec![
        ("home", "/".into()),
        ("lists", "/lists".into()),
        ("voice", "/voice".into()),
        ("projects", "/projects".into()),
        ("project-fields", format!("/projects/{project}#tab-fields")),
        ("project-params", format!("/projects/{project}#tab-params")),
        ("project-attribution", format!("/projects/{project}#tab-attribution")),
        ("project-files", format!("/projects/{project}#tab-files")),
        ("files", "/files".into()),
        ("file", format!("/files/{}", s.file_a)),
        ("batches", "/batches".into()),
        ("batch-records", format!("/batches/{}/records", s.batch_a)),
        ("batch-pool", format!("/batches/{pool}/pool")),
        ("customer-data", "/data/customers".into()),
        ("business-data", "/data/records".into()),
        ("reports", "/reports".into()),
        ("report-project", format!("/reports/projects/{project}")),
        ("sites", "/sites".into()),
        ("monitor", "/monitor".into()),
        ("monitor-site", format!("/monitor/sites/{site}")),
        ("calls", "/calls".into()),
        ("announcements", "/announcements".into()),
        ("accounts", "/accounts".into()),
    ];
    tour(&browser, &hub.url, "hub", &pages).await?;
    browser.close().await?;
    hub.stop().await
}

/// Screenshots of every page of the site box, admin's and agent's, in both languages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tour_of_the_site_box() -> anyhow::Result<()> {
    let site = site_support::start_site_with_agent(free_udp_port(), 41, 3).await?;
    let url = site.url.clone();
    let browser = Browser::start().await?;
    tour(&browser, &url, "site", &[("login", "/login".to_string())]).await?;
    site_support::login(&browser, &url, "siteadmin", &site.admin_password).await?;
    let admin: Vec<(&str, String)> = [
        ("tasks", "/admin/tasks"),
        ("task", "/admin/tasks/41"),
        ("extensions", "/admin/extensions"),
        ("agents", "/admin/agents"),
        ("attribution", "/admin/attribution"),
        ("data", "/admin/data"),
        ("reports", "/admin/reports"),
        ("roles", "/admin/roles"),
        ("status", "/admin/status"),
    ]
    .into_iter()
    .map(|(name, path)| (name, path.to_string()))
    .collect();
    tour(&browser, &url, "site-admin", &admin).await?;
    browser.client().delete_all_cookies().await?;
    site_support::login(&browser, &url, "agent1", site_support::AGENT_PASSWORD).await?;
    let desk: Vec<(&str, String)> = [
        ("desk", "/desk"),
        ("settings", "/desk/settings"),
        ("records", "/desk/records"),
        ("callbacks", "/desk/callbacks"),
        ("customers", "/desk/customers"),
    ]
    .into_iter()
    .map(|(name, path)| (name, path.to_string()))
    .collect();
    tour(&browser, &url, "site-desk", &desk).await?;
    browser.close().await?;
    Ok(())
}

/// The weekday names of the calendar that is open (its text, whatever its fade-in's opacity).
async fn open_calendar_weekdays(browser: &Browser) -> anyhow::Result<String> {
    browser.wait_for(".flatpickr-calendar.open .flatpickr-weekdaycontainer", WAIT).await?;
    let script = "return document.querySelector('.flatpickr-calendar.open .flatpickr-weekdaycontainer').textContent;";
    Ok(browser.client().execute(script, vec![]).await?.as_str().unwrap_or_default().to_string())
}

/// Every date and date-time field shows and takes the consoles' one format (2099-01-01 09:00)
/// with a calendar in the page's language, whatever the browser's locale: typed into the
/// announcement form, it is what the hub stores; a list's date filter is the same picker.
async fn date_fields(engine: Engine) -> anyhow::Result<()> {
    let hub = RunningHub::start().await?;
    let api = Api::login(&hub.url, "admin", &hub.password, WAIT).await?;
    let browser = Browser::start_with(engine).await?;
    browser.goto(&format!("{}/lang/zh", hub.url)).await?;
    browser_login(&browser, &hub.url, "admin", &hub.password).await?;
    browser.goto(&format!("{}/announcements", hub.url)).await?;
    let shown = browser.wait_for("#notice-post input[name=expires_at] + input", WAIT).await?;
    shown.click().await?;
    let weekdays = open_calendar_weekdays(&browser).await?;
    ensure!(weekdays.contains("周一"), "the calendar speaks Chinese: {weekdays}");
    // Typed, then Tab to the next field, as a clerk does.
    shown.send_keys("2099-01-01 09:00\u{E004}").await?;
    browser.client().find(Locator::Css("#notice-post input[name=title]")).await?.send_keys("班前会").await?;
    let sent = browser.client().execute("return document.querySelector('#notice-post input[name=expires_at]').value;", vec![]).await?;
    ensure!(sent == json!("2099-01-01T09:00"), "the form sends the native format: {sent}");
    ensure!(shown.prop("value").await?.as_deref() == Some("2099-01-01 09:00"), "the field shows the console's format");
    browser.client().find(Locator::Css("#notice-post button")).await?.click().await?;
    wait_until(WAIT, || async {
        api.get("/api/announcements").await.is_ok_and(|list| list["announcements"][0]["expires_at"] == json!(4_070_912_400_i64))
    })
    .await
    .context("the announcement expires at 2099-01-01 09:00 China time")?;
    browser.goto(&format!("{}/lang/en", hub.url)).await?;
    browser.goto(&format!("{}/batches", hub.url)).await?;
    let from = browser.wait_for("input[name=from]", WAIT).await?;
    from.click().await?;
    let weekdays = open_calendar_weekdays(&browser).await?;
    ensure!(weekdays.contains("Mon"), "the calendar speaks English on an English page: {weekdays}");
    from.send_keys("2026-12-01\u{E004}").await?;
    ensure!(from.prop("value").await?.as_deref() == Some("2026-12-01"), "a date filter shows and sends one format");
    browser.close().await?;
    hub.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_fields_in_chromium() -> anyhow::Result<()> {
    date_fields(Engine::Chromium).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_fields_in_firefox() -> anyhow::Result<()> {
    date_fields(Engine::Firefox).await
}
