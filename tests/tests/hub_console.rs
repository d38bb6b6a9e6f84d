//! The HQ console in a real headless Chromium: the flows HQ staff use all day, clicked
//! through the pages as a person would, with screenshots (in `tests::screenshot_dir()`; the pages' kept copies are the tour, `docs/screenshots/tour/`).
//!
//! - `console_main_flows`: log in; add a category and a sub-project with customer and
//!   business-record fields; set up a second sub-project from it as a template (the fields
//!   are cloned); import a sheet with bad rows (progress bar, report on the page, the
//!   bad-rows sheet downloadable); filter it; dispatch exclusive batches; change a batch's
//!   priority; one-click pause.
//! - `sub_admin_pages_show_only_its_scope`: a sub-admin limited to one site and one project
//!   logs in; none of its pages names a site, project, file or batch outside that scope.
//!
//! The hub runs in-process on 127.0.0.1:0; set-up that is not the flow under test (sites,
//! participating sites, accounts) goes through the JSON API, as a script of HQ's would.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, ensure};
use fantoccini::Locator;
use serde_json::{Value, json};
use tests::{Browser, RunningHub, wait_for_some, wait_until};

/// Generous for a cold, shared 2-core machine; every wait is bounded by it.
const WAIT: Duration = Duration::from_secs(20);

use tests::JsonApi as Api;

fn id(value: &Value) -> anyhow::Result<i64> {
    value["id"].as_i64().with_context(|| format!("no id in {value}"))
}

/// Where a console screenshot goes (see [`tests::screenshot_dir`]).
fn screenshot_path(name: &str) -> PathBuf {
    tests::screenshot_dir().join(name)
}

/// Logs in through the login page and waits until the browser has left it.
async fn browser_login(browser: &Browser, url: &str, username: &str, password: &str) -> anyhow::Result<()> {
    browser.goto(&format!("{url}/login")).await?;
    browser.wait_for("input[name=username]", WAIT).await?.send_keys(username).await?;
    browser.wait_for("input[name=password]", WAIT).await?.send_keys(password).await?;
    browser.wait_for("form button", WAIT).await?.click().await?;
    wait_until(WAIT, || async {
        match browser.client().current_url().await {
            Ok(current) => !current.path().starts_with("/login"),
            Err(_) => false,
        }
    })
    .await
    .with_context(|| format!("{username} is logged in and leaves the login page"))?;
    Ok(())
}

/// Waits until the browser's path matches `pattern` (`*` matches one path segment) and
/// returns the path.
async fn wait_for_path(browser: &Browser, prefix: &str) -> anyhow::Result<String> {
    wait_for_some(WAIT, || async {
        let url = browser.client().current_url().await.ok()?;
        url.path().starts_with(prefix).then(|| url.path().to_string())
    })
    .await
    .with_context(|| format!("the browser reaches a page under {prefix}"))
}

/// The number at the end of a path such as `/projects/12`.
fn trailing_id(path: &str) -> anyhow::Result<i64> {
    path.rsplit('/').next().and_then(|s| s.parse().ok()).with_context(|| format!("no id at the end of {path}"))
}

/// The visible text of the page's `<main>`.
async fn main_text(browser: &Browser) -> anyhow::Result<String> {
    Ok(browser.wait_for("main", WAIT).await?.text().await?)
}

/// A call list as HQ receives it: a header row, good rows, and the bad rows the manual
/// lists (letters in the number, too short, duplicate, empty phone), then trailing blanks.
fn write_call_list(path: &Path) -> anyhow::Result<()> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.write_string(0, 0, "手机号码")?;
    sheet.write_string(0, 1, "客户姓名")?;
    let rows: &[(&str, &str)] = &[
        ("13800138001", "张伟"),
        ("138-0013-8002", "王芳"),
        ("+86 13800138003", "李娜"),
        ("1380013800x", "赵敏"),
        ("12345", "陈静"),
        ("13800138001", "刘强"),
        ("", "杨磊"),
        ("13800138004", "黄洋"),
        ("13800138005", "周艳"),
        ("13800138006", "吴军"),
    ];
    for (idx, (phone, name)) in rows.iter().enumerate() {
        let row = idx as u32 + 1;
        if !phone.is_empty() {
            sheet.write_string(row, 0, *phone)?;
        }
        sheet.write_string(row, 1, *name)?;
    }
    // An Excel number such as 1.3800138007E10 is a phone too.
    sheet.write_number(11, 0, 13800138007.0)?;
    sheet.write_string(11, 1, "郑洁")?;
    workbook.save(path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Fills the first row of the create-project form's field table `prefix` (`cf` or `rf`).
async fn fill_field(browser: &Browser, prefix: &str, title: &str, key: &str, kind: &str, options: &str) -> anyhow::Result<()> {
    browser.wait_for(&format!("#new-project input[name={prefix}_title_0]"), WAIT).await?.send_keys(title).await?;
    browser.wait_for(&format!("#new-project input[name={prefix}_key_0]"), WAIT).await?.send_keys(key).await?;
    browser.wait_for(&format!("#new-project select[name={prefix}_kind_0]"), WAIT).await?.select_by_value(kind).await?;
    if !options.is_empty() {
        browser.wait_for(&format!("#new-project textarea[name={prefix}_options_0]"), WAIT).await?.send_keys(options).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_main_flows() -> anyhow::Result<()> {
    let hub = RunningHub::start().await?;
    let api = Api::login(&hub.url, "admin", &hub.password, WAIT).await?;
    let site_a = id(&api.post("/api/sites", json!({ "name": "一号职场" })).await?)?;
    let site_b = id(&api.post("/api/sites", json!({ "name": "二号职场" })).await?)?;

    let browser = Browser::start().await?;
    browser_login(&browser, &hub.url, "admin", &hub.password).await?;

    // A category (add only) and a sub-project with its fields, through the forms.
    browser.goto(&format!("{}/projects", hub.url)).await?;
    browser.wait_for("form[action='/categories'] input[name=name]", WAIT).await?.send_keys("套餐类").await?;
    browser.wait_for("form[action='/categories'] button", WAIT).await?.click().await?;
    browser.wait_for("#new-project", WAIT).await?;
    browser.wait_for("#new-project input[name=name]", WAIT).await?.send_keys("5G升级").await?;
    browser
        .wait_for("#new-project textarea[name=script]", WAIT)
        .await?
        .send_keys("您好，我是客服代表，您的套餐可以免费升级。")
        .await?;
    fill_field(&browser, "cf", "客户姓名", "name", "text", "").await?;
    fill_field(&browser, "rf", "本次业务结果", "result", "single_choice", "成功办理\n有意向\n无意向").await?;
    browser.wait_for("#new-project > button", WAIT).await?.click().await?;
    let first_path = wait_for_path(&browser, "/projects/").await?;
    let first_project = trailing_id(&first_path)?;
    let text = main_text(&browser).await?;
    ensure!(text.contains("客户姓名") && text.contains("成功办理 / 有意向 / 无意向"), "the new project's fields: {text}");

    // The second sub-project from the first as a template: fields, popup and script cloned.
    browser.goto(&format!("{}/projects", hub.url)).await?;
    browser.wait_for("#new-project input[name=name]", WAIT).await?.send_keys("5G升级（二期）").await?;
    browser
        .wait_for("#new-project select[name=template_id]", WAIT)
        .await?
        .select_by_value(&first_project.to_string())
        .await?;
    browser.screenshot(screenshot_path("hub-projects.png")).await?;
    browser.wait_for("#new-project > button", WAIT).await?.click().await?;
    wait_until(WAIT, || async {
        browser.client().current_url().await.is_ok_and(|u| u.path().starts_with("/projects/") && u.path() != first_path)
    })
    .await
    .context("the templated project opens")?;
    let text = main_text(&browser).await?;
    ensure!(text.contains("5G升级（二期）"), "the templated project's page: {text}");
    ensure!(text.contains("客户姓名") && text.contains("本次业务结果"), "the template's fields are cloned: {text}");
    // The script is on the page's 话术说明 tab.
    browser.wait_for(".tabbar button[data-tab-for=tab-script]", WAIT).await?.click().await?;
    let text = main_text(&browser).await?;
    ensure!(text.contains("您好，我是客服代表"), "the template's script is cloned: {text}");

    // Step 1 of the manual's two-step order: participating sites.
    api.put(&format!("/api/projects/{first_project}/sites"), json!({ "site_ids": [site_a, site_b] })).await?;
    // One number on the white list: the filter below never removes it.
    api.post("/api/lists/white", json!({ "phones": ["13800138006"], "note": "VIP" })).await?;

    // Import a sheet with bad rows: progress, then the report page.
    let sheet = hub.dir.path().join("五月名单.xlsx");
    write_call_list(&sheet)?;
    // The import form is on the project page's 文件管理 tab.
    browser.goto(&format!("{}/projects/{first_project}#tab-files", hub.url)).await?;
    browser
        .wait_for("#upload input[type=file]", WAIT)
        .await?
        .send_keys(&sheet.display().to_string())
        .await?;
    browser.wait_for("#upload button", WAIT).await?.click().await?;
    let file_path = wait_for_path(&browser, "/files/").await?;
    let file_id = trailing_id(&file_path)?;
    let n_good = browser.wait_for("#n-good", WAIT).await?.text().await?;
    let n_bad = browser.wait_for("#n-bad", WAIT).await?.text().await?;
    ensure!(n_good == "7" && n_bad == "4", "good / bad rows: {n_good} / {n_bad}");
    let bad_table = browser.wait_for("#bad-table", WAIT).await?.text().await?;
    for expected in ["5", "6", "7", "8", "重复"] {
        ensure!(bad_table.contains(expected), "the bad-rows table names {expected:?}: {bad_table}");
    }
    browser.screenshot(screenshot_path("hub-import-report.png")).await?;

    // The bad-rows sheet downloads as an xlsx named after the file.
    let href = browser.wait_for("#bad-rows", WAIT).await?.attr("href").await?.context("the download link has an href")?;
    let download: Value = browser
        .client()
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch(arguments[0]).then(async (r) => {
               const bytes = new Uint8Array(await r.arrayBuffer());
               done({ status: r.status, type: r.headers.get('content-type'),
                      disposition: r.headers.get('content-disposition'), magic: [bytes[0], bytes[1]], size: bytes.length });
             }).catch((e) => done({ error: String(e) }));",
            vec![json!(href)],
        )
        .await?;
    ensure!(download["status"] == 200, "bad-rows download: {download}");
    ensure!(download["type"].as_str().is_some_and(|t| t.contains("spreadsheetml")), "bad-rows type: {download}");
    ensure!(download["magic"] == json!([80, 75]), "the bad-rows sheet is a zip (xlsx): {download}");
    ensure!(
        download["disposition"].as_str().is_some_and(|d| d.contains("%E9%94%99%E8%AF%AF%E8%A1%8C")),
        "the bad-rows sheet is named …_错误行.xlsx: {download}"
    );

    // Filter: "not called in 7 days" removes every number nobody dialed, except the white-listed one.
    browser.wait_for("[data-tab-for=tab-filter]", WAIT).await?.click().await?;
    browser.wait_for("#filter select[name=condition]", WAIT).await?.select_by_value("not_called").await?;
    let days = browser.wait_for("#filter input[name=valid_days]", WAIT).await?;
    days.clear().await?;
    days.send_keys("7").await?;
    browser.wait_for("#filter button", WAIT).await?.click().await?;
    wait_until(WAIT, || async { browser.client().current_url().await.is_ok_and(|u| u.path() != file_path) })
        .await
        .context("the filter result file opens")?;
    let title = browser.wait_for("main h1", WAIT).await?.text().await?;
    ensure!(title.starts_with("【过滤结果】五月名单.xlsx"), "the filter result's name: {title}");
    ensure!(browser.wait_for("#n-good", WAIT).await?.text().await? == "1", "only the white-listed number is kept");
    let removed = browser.wait_for("#bad-table", WAIT).await?.text().await?;
    ensure!(removed.contains("近 7 天未呼"), "each removed row's reason: {removed}");
    browser.screenshot(screenshot_path("hub-filter-result.png")).await?;

    // Dispatch the imported file as two exclusive batches, one per site. The form shows
    // only the exclusive section; asking too many rows is refused next to the button with
    // the typed names kept; the answer says how many rows stay in the file.
    browser.goto(&format!("{}/files/{file_id}", hub.url)).await?;
    browser.wait_for("[data-tab-for=tab-report]", WAIT).await?.click().await?;
    let n_good: u64 = browser.wait_for("#n-good", WAIT).await?.text().await?.parse()?;
    browser.wait_for("[data-tab-for=tab-dispatch]", WAIT).await?.click().await?;
    ensure!(browser.wait_for("#dispatch-shared", WAIT).await?.is_displayed().await?, "the shared section shows first");
    ensure!(!browser.wait_for("#dispatch-exclusive", WAIT).await?.is_displayed().await?, "the exclusive section is hidden");
    // A shared batch's lease settings come with it, in Chinese; one out of range is refused
    // naming its field.
    let lease = browser.wait_for("#dispatch-lease", WAIT).await?;
    let words = lease.text().await?;
    ensure!(lease.is_displayed().await? && ["租约设置", "每次租出（小时外呼量）", "租约有效期（秒）", "每次最少租出号码数"].iter().all(|w| words.contains(w)), "{words}");
    let hours = browser.wait_for("#dispatch input[name=lease_hours]", WAIT).await?.prop("value").await?;
    ensure!(hours.as_deref() == Some("2"), "the default lease: two hours of dialing, {hours:?}");
    let body = json!({"name": "租约", "priority": 5, "site_ids": [site_a, site_b], "lease_lifetime_s": 30});
    let refused = api.post(&format!("/api/files/{file_id}/dispatch"), body).await.err().map(|e| e.to_string()).unwrap_or_default();
    ensure!(refused.contains("400") && refused.contains("租约有效期 30 秒超出范围"), "{refused}");
    browser.wait_for("#dispatch select[name=kind]", WAIT).await?.select_by_value("exclusive").await?;
    ensure!(!browser.wait_for("#dispatch-shared", WAIT).await?.is_displayed().await?, "only the chosen kind's section shows");
    browser.wait_for("#dispatch input[name=part_count_0]", WAIT).await?.send_keys("400").await?;
    browser.wait_for("#dispatch > button", WAIT).await?.click().await?;
    wait_until(WAIT, || async {
        match browser.client().find(Locator::Css("#dispatch .result.error")).await {
            Ok(e) => e.text().await.is_ok_and(|t| t.contains("400")),
            Err(_) => false,
        }
    })
    .await
    .context("too many rows are refused next to the button")?;
    let kept = browser.wait_for("#dispatch input[name=part_name_1]", WAIT).await?.prop("value").await?.unwrap_or_default();
    ensure!(kept == "五月名单-2", "the typed batch names stay: {kept}");
    let count = browser.wait_for("#dispatch input[name=part_count_0]", WAIT).await?;
    count.clear().await?;
    count.send_keys("4").await?;
    browser.wait_for("#dispatch select[name=part_site_0]", WAIT).await?.select_by_value(&site_a.to_string()).await?;
    browser.wait_for("#dispatch input[name=part_count_1]", WAIT).await?.send_keys("2").await?;
    browser.wait_for("#dispatch select[name=part_site_1]", WAIT).await?.select_by_value(&site_b.to_string()).await?;
    let left = browser.wait_for("#dispatch-left", WAIT).await?.text().await?;
    ensure!(left.contains(&format!("剩余 {} 行", n_good - 6)), "the rows left as counts are typed: {left}");
    browser.screenshot(screenshot_path("hub-dispatch.png")).await?;
    browser.wait_for("#dispatch > button", WAIT).await?.click().await?;
    let done = wait_for_some(WAIT, || async {
        let e = browser.client().find(Locator::Css("#dispatch .result.ok")).await.ok()?;
        e.text().await.ok().filter(|t| !t.is_empty())
    })
    .await
    .context("the dispatch reports what it did")?;
    ensure!(done.contains("已下发 2 个批次") && done.contains(&format!("剩余 {} 行未下发", n_good - 6)), "leftover rows reported: {done}");
    browser.wait_for("#dispatch-done a", WAIT).await?.click().await?;
    wait_for_path(&browser, "/batches").await?;
    let rows = browser.client().find_all(Locator::Css("#batches tbody tr[id^=batch-]")).await?;
    ensure!(rows.len() == 2, "two exclusive batches in the task list, found {}", rows.len());
    let listed = api.get("/api/batches").await?;
    let batches = listed.as_array().context("batch list")?;
    let counts: Vec<(i64, i64)> =
        batches.iter().map(|b| (b["site_id"].as_i64().unwrap_or(0), b["numbers"].as_i64().unwrap_or(0))).collect();
    ensure!(counts.contains(&(site_a, 4)) && counts.contains(&(site_b, 2)), "batch sizes per site: {listed}");
    let batch_id = batches.iter().find(|b| b["site_id"] == json!(site_a)).and_then(|b| b["id"].as_i64()).context("batch id")?;
    let names = browser.wait_for("#batches", WAIT).await?.text().await?;
    ensure!(names.contains("五月名单-1") && names.contains("五月名单-2"), "the batches keep the names typed: {names}");

    // Change one batch's priority on the task list.
    let input = browser.wait_for(&format!("#batch-{batch_id} .priority-form input[name=priority]"), WAIT).await?;
    input.clear().await?;
    input.send_keys("80").await?;
    browser.wait_for(&format!("#batch-{batch_id} .priority-form button"), WAIT).await?.click().await?;
    let priority = wait_for_some(WAIT, || async {
        let cell = browser.client().find(Locator::Css(&format!("#batch-{batch_id} input[name=priority]"))).await.ok()?;
        let value = cell.prop("value").await.ok()??;
        (value == "80").then_some(value)
    })
    .await
    .context("the task list shows the new priority after reload")?;
    ensure!(priority == "80");
    let stored = api.get("/api/batches").await?;
    ensure!(
        stored.as_array().into_iter().flatten().any(|b| b["id"] == json!(batch_id) && b["priority"] == json!(80)),
        "priority 80 stored: {stored}"
    );

    // One-click pause for every project: each live batch goes to priority 1.
    browser.wait_for("#one-click select[name=action]", WAIT).await?.select_by_value("pause").await?;
    browser.wait_for("#one-click button", WAIT).await?.click().await?;
    // A pause asks first, naming what it stops.
    browser.wait_for(".modal [data-answer=yes]", WAIT).await?.click().await?;
    wait_until(WAIT, || async {
        match api.get("/api/batches").await {
            Ok(list) => list.as_array().is_some_and(|all| all.iter().all(|b| b["priority"] == json!(1))),
            Err(_) => false,
        }
    })
    .await
    .context("one-click pause sets every batch to priority 1")?;
    browser.wait_for("#batches", WAIT).await?;
    browser.screenshot(screenshot_path("hub-batches.png")).await?;

    browser.close().await?;
    hub.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_admin_pages_show_only_its_scope() -> anyhow::Result<()> {
    let hub = RunningHub::start().await?;
    let api = Api::login(&hub.url, "admin", &hub.password, WAIT).await?;
    let mine = id(&api.post("/api/sites", json!({ "name": "杭州职场" })).await?)?;
    let other = id(&api.post("/api/sites", json!({ "name": "成都职场" })).await?)?;
    let category = id(&api.post("/api/categories", json!({ "name": "信用卡" })).await?)?;
    let visible = id(&api.post("/api/projects", json!({ "category_id": category, "name": "分期推荐" })).await?)?;
    let hidden = id(&api.post("/api/projects", json!({ "category_id": category, "name": "额度提升" })).await?)?;
    for project in [visible, hidden] {
        api.put(&format!("/api/projects/{project}/sites"), json!({ "site_ids": [mine, other] })).await?;
    }
    let role = id(&api
        .post("/api/roles", json!({ "name": "数据专员", "modules": ["data.files", "data.batches", "data.business", "data.settings"] }))
        .await?)?;
    let sub = id(&api
        .post("/api/accounts", json!({ "username": "hz_admin", "password": "hz-secret-1", "role_id": role, "site_ids": [mine] }))
        .await?)?;
    api.put(&format!("/api/projects/{visible}/admins"), json!({ "admins": [{ "account_id": sub, "site_ids": [mine] }] })).await?;

    // Files in both projects, batches at both sites.
    let sheet = hub.dir.path().join("名单.xlsx");
    write_call_list(&sheet)?;
    let mut file_ids = Vec::new();
    for (project, name) in [(visible, "杭州可见名单.xlsx"), (hidden, "外部名单.xlsx")] {
        let bytes = std::fs::read(&sheet)?;
        let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(bytes).file_name(name));
        let response = api.http.post(format!("{}/api/projects/{project}/files", hub.url)).multipart(form).send().await?;
        ensure!(response.status().is_success(), "importing {name}: {}", response.text().await?);
        let report: Value = response.json().await?;
        file_ids.push(report["file_id"].as_i64().context("file id")?);
    }
    api.post(&format!("/api/files/{}/dispatch", file_ids[0]), json!({ "name": "杭州批次", "priority": 5, "site_ids": [mine] })).await?;
    api.post(&format!("/api/files/{}/dispatch", file_ids[0]), json!({ "name": "成都批次", "priority": 5, "site_ids": [other] })).await?;
    api.post(&format!("/api/files/{}/dispatch", file_ids[1]), json!({ "name": "外部批次", "priority": 5, "site_ids": [mine] })).await?;

    let browser = Browser::start().await?;
    browser_login(&browser, &hub.url, "hz_admin", "hz-secret-1").await?;
    let out_of_scope = ["成都职场", "额度提升", "外部名单", "成都批次", "外部批次"];
    for (page, must_show) in [
        ("/sites", "杭州职场"),
        ("/projects", "分期推荐"),
        ("/files", "杭州可见名单"),
        ("/batches", "杭州批次"),
        (&*format!("/files/{}", file_ids[0]), "杭州可见名单"),
    ] {
        browser.goto(&format!("{}{page}", hub.url)).await?;
        let text = main_text(&browser).await?;
        ensure!(text.contains(must_show), "{page} shows {must_show}: {text}");
        for name in out_of_scope {
            ensure!(!text.contains(name), "{page} must not show {name}: {text}");
        }
        // Option lists (dispatch sites, templates) are part of the page too.
        let html = browser.wait_for("main", WAIT).await?.html(true).await?;
        for name in out_of_scope {
            ensure!(!html.contains(name), "{page}'s markup must not hold {name}");
        }
        if page == "/batches" {
            browser.screenshot(screenshot_path("hub-subadmin-batches.png")).await?;
        }
    }
    // A page of an out-of-scope file or project answers as if it did not exist.
    for page in [format!("/files/{}", file_ids[1]), format!("/projects/{hidden}")] {
        browser.goto(&format!("{}{page}", hub.url)).await?;
        let text = main_text(&browser).await?;
        ensure!(text.contains("不存在") && !text.contains("外部名单"), "{page}: {text}");
    }
    browser.close().await?;
    hub.stop().await
}

/// Opens a page afresh on one of its tabs (`#tab-…`; the project page splits its forms into
/// tabs): through a blank page, so that a change of fragment alone is not a same-page jump.
async fn open_tab(browser: &Browser, url: &str, tab: &str) -> anyhow::Result<()> {
    browser.goto("about:blank").await?;
    browser.goto(&format!("{url}#{tab}")).await?;
    browser.wait_for(&format!(".tabbar button[data-tab-for={tab}][aria-selected=true]"), WAIT).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_setup_pages_lists_accounts_project_parameters() -> anyhow::Result<()> {
    let hub = RunningHub::start().await?;
    let api = Api::login(&hub.url, "admin", &hub.password, WAIT).await?;
    let site_a = id(&api.post("/api/sites", json!({ "name": "一号职场" })).await?)?;
    let site_b = id(&api.post("/api/sites", json!({ "name": "二号职场" })).await?)?;
    let category = id(&api.post("/api/categories", json!({ "name": "宽带" })).await?)?;
    let project = id(&api
        .post(
            "/api/projects",
            json!({ "category_id": category, "name": "宽带续约", "customer_fields": [{ "key": "team", "title": "指定团队", "kind": "text", "options": [] }] }),
        )
        .await?)?;

    let browser = Browser::start().await?;
    browser_login(&browser, &hub.url, "admin", &hub.password).await?;

    // Black list: two numbers typed in, then an xlsx with a header, a bad cell and a repeat.
    browser.goto(&format!("{}/lists", hub.url)).await?;
    browser.wait_for("#add-black textarea[name=phones]", WAIT).await?.send_keys("13900139001\n139-0013-9002").await?;
    browser.wait_for("#add-black input[name=note]", WAIT).await?.send_keys("投诉").await?;
    browser.wait_for("#add-black button", WAIT).await?.click().await?;
    wait_until(WAIT, || async {
        browser.client().find_all(Locator::Css("#black-list td.phone")).await.is_ok_and(|cells| cells.len() == 2)
    })
    .await
    .context("two typed numbers on the black list")?;
    let sheet = hub.dir.path().join("黑名单.xlsx");
    {
        let mut workbook = rust_xlsxwriter::Workbook::new();
        let ws = workbook.add_worksheet();
        ws.write_string(0, 0, "电话")?;
        ws.write_number(1, 0, 13900139003.0)?;
        ws.write_string(2, 0, "139 0013 9004")?;
        ws.write_string(3, 0, "12x")?;
        ws.write_string(4, 0, "13900139003")?;
        workbook.save(&sheet)?;
    }
    browser.wait_for("#import-black input[type=file]", WAIT).await?.send_keys(&sheet.display().to_string()).await?;
    browser.wait_for("#import-black button", WAIT).await?.click().await?;
    let bad = wait_for_some(WAIT, || async {
        let items = browser.client().find_all(Locator::Css("#import-black ul.bad li")).await.ok()?;
        let mut texts = Vec::new();
        for item in items {
            texts.push(item.text().await.ok()?);
        }
        (texts.len() == 2).then_some(texts)
    })
    .await
    .context("the import names its two bad rows")?;
    ensure!(bad[0].starts_with("4 电话") && bad[1].contains("重复"), "bad rows of the list import: {bad:?}");
    let listed = api.get("/api/lists/black").await?;
    let phones: Vec<&str> = listed.as_array().into_iter().flatten().filter_map(|n| n["phone"].as_str()).collect();
    ensure!(phones.len() == 4 && phones.contains(&"13900139003") && phones.contains(&"13900139004"), "black list: {listed}");
    browser.goto(&format!("{}/lists", hub.url)).await?;
    browser.wait_for("#black-list", WAIT).await?;
    browser.screenshot(screenshot_path("hub-lists.png")).await?;
    // Remove one through its row's button.
    browser.wait_for("#black-list tbody tr:first-child button.danger", WAIT).await?.click().await?;
    wait_until(WAIT, || async {
        api.get("/api/lists/black").await.is_ok_and(|l| l.as_array().is_some_and(|a| a.len() == 3))
    })
    .await
    .context("the removed number leaves the black list")?;
    // The page reloads itself after the removal; opening the next page before that reload
    // has landed would race it. Exactly three rows shows the reloaded list.
    browser.wait_for("#black-list tbody tr:nth-child(3):last-child", WAIT).await?;

    // Accounts: a role from the module tree, a group, a sub-admin limited to site A.
    browser.goto(&format!("{}/accounts", hub.url)).await?;
    browser.wait_for("#new-role input[name=name]", WAIT).await?.send_keys("数据专员").await?;
    for module in ["data.files", "data.batches", "data.settings"] {
        browser.wait_for(&format!("#new-role input[value='{module}']"), WAIT).await?.click().await?;
    }
    browser.wait_for("#new-role button", WAIT).await?.click().await?;
    let roles = wait_for_some(WAIT, || async {
        let text = browser.client().find(Locator::Css("#roles")).await.ok()?.text().await.ok()?;
        text.contains("数据专员").then_some(text)
    })
    .await
    .context("the new role is listed")?;
    ensure!(roles.contains("文件管理") && roles.contains("下发任务管理"), "the role's modules in Chinese: {roles}");
    browser.wait_for("#new-group input[name=name]", WAIT).await?.send_keys("华东区").await?;
    browser.wait_for("#new-group button", WAIT).await?.click().await?;
    wait_until(WAIT, || async {
        match browser.client().find(Locator::Css("#groups")).await {
            Ok(list) => list.text().await.is_ok_and(|t| t.contains("华东区")),
            Err(_) => false,
        }
    })
    .await
    .context("the new group is listed")?;
    browser.wait_for("#new-account input[name=username]", WAIT).await?.send_keys("hd_admin").await?;
    browser.wait_for("#new-account input[name=password]", WAIT).await?.send_keys("hd-secret-1").await?;
    browser.wait_for("#new-account select[name=role_id]", WAIT).await?.select_by_label("数据专员").await?;
    browser.wait_for("#new-account select[name=group_id]", WAIT).await?.select_by_label("华东区").await?;
    browser.wait_for(&format!("#new-account input[name=site_ids][value='{site_a}']"), WAIT).await?.click().await?;
    browser.wait_for("#new-account button", WAIT).await?.click().await?;
    let accounts = wait_for_some(WAIT, || async {
        let text = browser.client().find(Locator::Css("#accounts")).await.ok()?.text().await.ok()?;
        text.contains("hd_admin").then_some(text)
    })
    .await
    .context("the new account is listed")?;
    ensure!(accounts.contains("数据专员") && accounts.contains("华东区") && accounts.contains("一号职场"), "{accounts}");
    browser.screenshot(screenshot_path("hub-accounts.png")).await?;
    let sub = api
        .get("/api/accounts")
        .await?
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["username"] == "hd_admin")
        .cloned()
        .context("hd_admin through the API")?;
    ensure!(sub["site_ids"] == json!([site_a]), "the account's data scope: {sub}");
    let sub_id = id(&sub)?;

    // Project parameters, bound by HQ.
    let project_page = format!("{}/projects/{project}", hub.url);
    open_tab(&browser, &project_page, "tab-params").await?;
    browser.wait_for("#settings select[name=dial_mode]", WAIT).await?.select_by_value("one_click").await?;
    browser.wait_for("#settings select[name=popup_timing]", WAIT).await?.select_by_value("on_ring").await?;
    browser.wait_for("#settings input[name=ring_seconds]", WAIT).await?.send_keys("35").await?;
    browser.wait_for("#settings textarea[name=calling_windows]", WAIT).await?.send_keys("09:00-12:00\n14:00-18:00").await?;
    browser.wait_for("#settings > button", WAIT).await?.click().await?;
    let settings = wait_for_some(WAIT, || async {
        let project = api.get(&format!("/api/projects/{project}")).await.ok()?;
        (project["settings"]["ring_seconds"] == json!(35)).then(|| project["settings"].clone())
    })
    .await
    .context("the parameters are stored")?;
    ensure!(settings["dial_mode"] == "one_click" && settings["popup_timing"] == "on_ring", "{settings}");
    ensure!(
        settings["calling_windows"] == json!([{ "start": "09:00", "end": "12:00" }, { "start": "14:00", "end": "18:00" }]),
        "{settings}"
    );

    // Two steps: participating sites first; only then the project admins. (Saving the
    // parameters reloads the page; load it afresh so no element is the old page's.)
    open_tab(&browser, &project_page, "tab-sites").await?;
    ensure!(browser.wait_for("#admins-first", WAIT).await.is_ok(), "admins wait for the participating sites");
    for site in [site_a, site_b] {
        browser.wait_for(&format!("#project-sites input[value='{site}']"), WAIT).await?.click().await?;
    }
    browser.wait_for("#project-sites > button", WAIT).await?.click().await?;
    browser.wait_for("#project-admins", WAIT).await.context("the admins form appears after step 1")?;
    browser.wait_for(".tabbar button[data-tab-for=tab-admins]", WAIT).await?.click().await?;
    ensure!(api.get(&format!("/api/projects/{project}")).await?["site_ids"] == json!([site_a, site_b]), "participating sites");
    // The sub-admin is offered only site A (its data permission).
    let offered = browser.client().find_all(Locator::Css("#project-admins input[name=site_ids]")).await?;
    ensure!(offered.len() == 1, "one site offered to hd_admin, found {}", offered.len());
    offered[0].click().await?;
    browser.wait_for("#project-admins > button", WAIT).await?.click().await?;
    wait_until(WAIT, || async {
        api.get(&format!("/api/projects/{project}/admins")).await.is_ok_and(|a| a == json!([{ "account_id": sub_id, "site_ids": [site_a] }]))
    })
    .await
    .context("hd_admin administers the project at site A")?;

    // Attribution: team "A组" goes to site B. Saving the admins reloads the page once the
    // save is answered; load it afresh so no element below belongs to the page going away.
    open_tab(&browser, &project_page, "tab-attribution").await?;
    browser.wait_for("#attribution", WAIT).await?;
    let value = browser.wait_for("#attribution tr[data-row] input[name=value]", WAIT).await?;
    value.send_keys("A组").await?;
    browser
        .wait_for("#attribution tr[data-row] select[name=site_id]", WAIT)
        .await?
        .select_by_value(&site_b.to_string())
        .await?;
    browser.wait_for("#attribution > button", WAIT).await?.click().await?;
    wait_until(WAIT, || async {
        api.get(&format!("/api/projects/{project}/attribution")).await.is_ok_and(|rules| {
            rules == json!([{ "field_key": "team", "value": "A组", "site_id": site_b, "agent": "" }])
        })
    })
    .await
    .context("the attribution rule is stored")?;
    open_tab(&browser, &project_page, "tab-params").await?;
    browser.screenshot(screenshot_path("hub-project-setup.png")).await?;
    open_tab(&browser, &project_page, "tab-admins").await?;
    browser.screenshot(screenshot_path("hub-project-admins.png")).await?;

    browser.close().await?;
    hub.stop().await
}
