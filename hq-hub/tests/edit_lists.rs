//! The console's growing lists over HTTP against a real hub and SQLite file: 文件管理,
//! 下发任务管理 and a batch's 业务记录 come 50 rows a page by keyset, the next-page link
//! keeps the date filter, a bad date is named on the page in Chinese, and a sub-admin of
//! another site pages through none of this site's rows.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use reqwest::multipart::{Form, Part};
use reqwest::Method;
use rust_xlsxwriter::Workbook;
use serde_json::{json, Value};
use sync_link::HubStore;
use sync_protocol::{AttemptKind, BusinessRecord, CallAttempt, Outcome, UpEntry, UpEvent};

use common::{cookie_client, send, TestHub};

mod common;

fn sheet(phone: &str) -> Vec<u8> {
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.write(0, 0, "手机号码").expect("header");
    sheet.write(1, 0, phone).expect("cell");
    workbook.save_to_buffer().expect("workbook")
}

async fn login(base: &str, username: &str, password: &str) -> Result<reqwest::Client> {
    let http = cookie_client(Duration::from_secs(30))?;
    let (status, answer) = send(&http, base, Method::POST, "/api/login", Some(json!({"username": username, "password": password}))).await?;
    ensure!(status.is_success(), "login {username}: {answer}");
    Ok(http)
}

async fn call(http: &reqwest::Client, base: &str, method: Method, path: &str, body: Value) -> Result<Value> {
    let (status, answer) = send(http, base, method.clone(), path, Some(body)).await?;
    ensure!(status.is_success(), "{method} {path}: {status} {answer}");
    Ok(answer)
}

async fn page(http: &reqwest::Client, base: &str, path: &str) -> Result<String> {
    let response = http.get(format!("{base}{path}")).send().await?;
    ensure!(response.status().is_success(), "GET {path}: {}", response.status());
    Ok(response.text().await?)
}

/// The href of the element with `id`, unescaped.
fn link(html: &str, id: &str) -> Option<String> {
    let at = html.find(&format!("id=\"{id}\""))?;
    let start = html[..at].rfind("href=\"")? + 6;
    let end = start + html[start..].find('"')?;
    Some(html[start..end].replace("&amp;", "&").replace("&#38;", "&"))
}

#[tokio::test]
async fn growing_lists_page_by_keyset_with_date_filters_and_scope() -> Result<()> {
    let h = TestHub::launch().await?;
    let base = h.base.clone();
    let admin = login(&base, "admin", &h.password).await?;
    let site = call(&admin, &base, Method::POST, "/api/sites", json!({"name": "杭州职场"})).await?["id"].as_i64().context("site")?;
    let other = call(&admin, &base, Method::POST, "/api/sites", json!({"name": "成都职场"})).await?["id"].as_i64().context("site")?;
    let category = call(&admin, &base, Method::POST, "/api/categories", json!({"name": "信用卡"})).await?["id"].as_i64().context("category")?;
    let project = json!({"category_id": category, "name": "分期", "record_fields": [{"key": "result", "title": "结果", "kind": "text"}]});
    let project = call(&admin, &base, Method::POST, "/api/projects", project).await?["id"].as_i64().context("project")?;
    call(&admin, &base, Method::PUT, &format!("/api/projects/{project}/sites"), json!({"site_ids": [site, other]})).await?;

    // 51 files, each dispatched once: 51 batches.
    let mut batches = Vec::new();
    for n in 0..51 {
        let form = Form::new().part("file", Part::bytes(sheet(&format!("1390000{n:04}"))).file_name(format!("名单{n}.xlsx")));
        let response = admin.post(format!("{base}/api/projects/{project}/files")).multipart(form).send().await?;
        ensure!(response.status().is_success(), "upload {n}: {}", response.status());
        let file = response.json::<Value>().await?["file_id"].as_i64().context("file id")?;
        let out = call(&admin, &base, Method::POST, &format!("/api/files/{file}/dispatch"), json!({"name": format!("批次{n}"), "priority": 5, "site_ids": [site]})).await?;
        batches.push(out["batch_ids"][0].as_i64().context("batch id")?);
    }

    for (path, marker) in [("/files", "<a href=\"/files/"), ("/batches", "<tr id=\"batch-")] {
        let first = page(&admin, &base, path).await?;
        ensure!(first.matches(marker).count() == 50, "{path}: 50 rows on page 1, got {}", first.matches(marker).count());
        let next = link(&first, "next-page").with_context(|| format!("{path} has a next page"))?;
        let second = page(&admin, &base, &next).await?;
        ensure!(second.matches(marker).count() == 1, "{path}: the 51st row on page 2 ({next})");
        ensure!(link(&second, "next-page").is_none() && link(&second, "first-page").is_some(), "{path}: page 2 is the last");
        // Nothing was made in 2099; a bad date is named in Chinese.
        let future = page(&admin, &base, &format!("{path}?from=2099-01-01&to=2099-12-31")).await?;
        ensure!(future.matches(marker).count() == 0, "{path}: the date filter");
        let bad = page(&admin, &base, &format!("{path}?from=12%2F07")).await?;
        ensure!(bad.contains("开始日期“12/07”无效：请写成 2026-12-07 的格式"), "{path}: the bad date is named");
    }
    // Today's filter keeps every row and travels with the next-page link.
    let today = time::OffsetDateTime::now_utc().to_offset(time::UtcOffset::from_hms(8, 0, 0)?).date().to_string();
    let filtered = page(&admin, &base, &format!("/batches?from={today}&to={today}")).await?;
    let next = link(&filtered, "next-page").context("today's batches have a next page")?;
    ensure!(next.contains(&format!("from={today}&to={today}")), "the next page keeps the dates: {next}");

    // 55 records on the first batch: 50 then 5, newest first.
    let store = &h.hub().store;
    let batch = batches[0];
    for seq in 1..=55u64 {
        let attempt = CallAttempt {
            attempt_id: seq, batch_id: batch as u64, row_id: 1, started_at: 1_800_000_000 + seq as i64 * 60, answered_at: None,
            ended_at: 1_800_000_030 + seq as i64 * 60, outcome: Outcome::Connected, hangup_side: None, agent: Some("8001".into()),
            talk_seconds: 20, recording_sha256: None, kind: AttemptKind::Predictive,
        };
        store.apply_up(site as u64, &UpEntry { epoch: 1, seq: seq * 2, event: UpEvent::CallAttempt(attempt) })?;
        let values = vec![("result".to_string(), format!("第{seq}条"))];
        let record = BusinessRecord { attempt_id: seq, batch_id: batch as u64, row_id: 1, agent: "8001".into(), saved_at: 1_800_000_040 + seq as i64 * 60, values };
        store.apply_up(site as u64, &UpEntry { epoch: 1, seq: seq * 2 + 1, event: UpEvent::BusinessRecord(record) })?;
    }
    let records = page(&admin, &base, &format!("/batches/{batch}/records")).await?;
    ensure!(records.contains("第55条") && !records.contains("第5条<"), "newest first, 50 a page");
    let next = link(&records, "next-page").context("the records have a next page")?;
    let rest = page(&admin, &base, &next).await?;
    ensure!(rest.contains("第5条<") && rest.contains("第1条<") && !rest.contains("第6条<"), "page 2 holds the oldest 5");

    // A sub-admin of the other site sees none of these batches, on any page.
    let role = call(&admin, &base, Method::POST, "/api/roles", json!({"name": "任务", "modules": ["data.batches", "data.files"]})).await?["id"].clone();
    let account = json!({"username": "chengdu", "password": "chengdu-123", "role_id": role, "site_ids": [other]});
    let chengdu = call(&admin, &base, Method::POST, "/api/accounts", account).await?["id"].as_i64().context("account")?;
    let admins = json!({"admins": [{"account_id": chengdu, "site_ids": [other]}]});
    call(&admin, &base, Method::PUT, &format!("/api/projects/{project}/admins"), admins).await?;
    let sub = login(&base, "chengdu", "chengdu-123").await?;
    let theirs = page(&sub, &base, "/batches").await?;
    ensure!(theirs.matches("<tr id=\"batch-").count() == 0 && link(&theirs, "next-page").is_none(), "another site's batches stay hidden");
    h.stop().await
}

/// An archived sub-project takes no new upload (either way in: the form's import job or the
/// plain upload) and no new dispatch of a file it already had; the refusal says why, in
/// Chinese by default and in English for an English console; brought back, it takes both.
#[tokio::test]
async fn an_archived_sub_project_refuses_uploads_and_dispatches() -> Result<()> {
    let h = TestHub::launch().await?;
    let base = h.base.clone();
    let admin = login(&base, "admin", &h.password).await?;
    let site = call(&admin, &base, Method::POST, "/api/sites", json!({"name": "杭州职场"})).await?["id"].as_i64().context("site")?;
    let category = call(&admin, &base, Method::POST, "/api/categories", json!({"name": "信用卡"})).await?["id"].as_i64().context("category")?;
    let project = call(&admin, &base, Method::POST, "/api/projects", json!({"category_id": category, "name": "分期"})).await?["id"].as_i64().context("project")?;
    call(&admin, &base, Method::PUT, &format!("/api/projects/{project}/sites"), json!({"site_ids": [site]})).await?;
    let upload = |path: String| {
        let (admin, base) = (admin.clone(), base.clone());
        async move {
            let form = Form::new().part("file", Part::bytes(sheet("13900001234")).file_name("名单.xlsx"));
            let response = admin.post(format!("{base}{path}")).multipart(form).send().await?;
            Ok::<_, anyhow::Error>((response.status(), response.json::<Value>().await?))
        }
    };
    let (status, answer) = upload(format!("/api/projects/{project}/files")).await?;
    ensure!(status.is_success(), "upload before archiving: {status} {answer}");
    let file = answer["file_id"].as_i64().context("file id")?;

    call(&admin, &base, Method::POST, &format!("/api/projects/{project}/archive"), json!({"archived": true})).await?;
    for path in [format!("/api/projects/{project}/files"), format!("/api/projects/{project}/imports")] {
        let (status, answer) = upload(path.clone()).await?;
        ensure!(status == reqwest::StatusCode::CONFLICT, "{path} on an archived sub-project: {status} {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        ensure!(error.contains("已归档") && error.contains("取消归档"), "{path}: the refusal in Chinese: {error}");
    }
    let dispatch = json!({"name": "批次一", "priority": 5, "site_ids": [site]});
    let (status, answer) = send(&admin, &base, Method::POST, &format!("/api/files/{file}/dispatch"), Some(dispatch.clone())).await?;
    ensure!(status == reqwest::StatusCode::CONFLICT, "dispatch into an archived sub-project: {status} {answer}");
    ensure!(answer["error"].as_str().unwrap_or_default().contains("不能再下发"), "the dispatch refusal in Chinese: {answer}");
    let english = login(&base, "admin", &h.password).await?;
    english.get(format!("{base}/lang/en")).send().await?;
    let (_, answer) = send(&english, &base, Method::POST, &format!("/api/files/{file}/dispatch"), Some(dispatch.clone())).await?;
    ensure!(answer["error"].as_str().unwrap_or_default().contains("is archived"), "the refusal in English: {answer}");
    // The form's dispatch page says it too, on the page, not as a bare status.
    let site_key = format!("site_{site}");
    let form = [("name", "批次一"), ("priority", "5"), (site_key.as_str(), "on")];
    let html = admin.post(format!("{base}/files/{file}/dispatch")).form(&form).send().await?.text().await?;
    ensure!(html.contains("已归档"), "the dispatch form's answer names the archive");

    call(&admin, &base, Method::POST, &format!("/api/projects/{project}/archive"), json!({"archived": false})).await?;
    call(&admin, &base, Method::POST, &format!("/api/files/{file}/dispatch"), dispatch).await?;
    let (status, answer) = upload(format!("/api/projects/{project}/files")).await?;
    ensure!(status.is_success(), "upload once brought back: {status} {answer}");
    h.stop().await
}
