//! A project's data across sites over HTTP (客户资料, 业务资料 / 职场业务数据): two sites'
//! records applied as the sync link applies them, then what each caller gets from the JSON
//! pages, the exports (read back with calamine) and the pages — the admin, a sub-admin of one
//! site, a role with every other module, a role with 职场业务数据 only — in Chinese and
//! English. The hub runs in-process with its real SQLite store.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sync_link::HubStore;
use sync_protocol::{BusinessRecord, DownEvent, UpEntry, UpEvent};

use common::{cookie_client, send, TestHub};

mod common;

struct Caller {
    http: reqwest::Client,
    base: String,
}

impl Caller {
    async fn login(base: &str, username: &str, password: &str) -> Result<Caller> {
        let http = cookie_client(Duration::from_secs(30))?;
        let (status, answer) = send(&http, base, Method::POST, "/api/login", Some(json!({ "username": username, "password": password }))).await?;
        ensure!(status == StatusCode::OK, "login {username}: {status} {answer}");
        Ok(Caller { http, base: base.to_string() })
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<(StatusCode, Value)> {
        send(&self.http, &self.base, method, path, body).await
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        let (status, answer) = self.call(method.clone(), path, body).await?;
        ensure!(status.is_success(), "{method} {path}: {status} {answer}");
        Ok(answer)
    }

    /// GET in UI language `lang` (`zh` or `en`, switched as the console's link does): status,
    /// text and bytes.
    async fn get_in(&self, path: &str, lang: &str) -> Result<(StatusCode, String, Vec<u8>)> {
        self.http.get(format!("{}/lang/{lang}", self.base)).send().await?;
        let response = self.http.get(format!("{}{path}", self.base)).send().await?;
        let status = response.status();
        let bytes = response.bytes().await?.to_vec();
        Ok((status, String::from_utf8_lossy(&bytes).to_string(), bytes))
    }
}

fn sheet(phones: &[&str]) -> Vec<u8> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    for (col, title) in ["手机号码", "姓名", "身份证"].iter().enumerate() {
        sheet.write(0, col as u16, *title).expect("header");
    }
    for (i, phone) in phones.iter().enumerate() {
        sheet.write(i as u32 + 1, 0, *phone).expect("cell");
        sheet.write(i as u32 + 1, 1, format!("客户{i}")).expect("cell");
        sheet.write(i as u32 + 1, 2, format!("33010{i}")).expect("cell");
    }
    workbook.save_to_buffer().expect("workbook")
}

fn xlsx_rows(bytes: &[u8]) -> Result<Vec<Vec<String>>> {
    use calamine::Reader;
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(bytes.to_vec()))?;
    let range = book.worksheet_range_at(0).context("a sheet")??;
    Ok(range.rows().map(|r| r.iter().map(|c| c.to_string()).collect()).collect())
}

/// Two sites, a project at both (a hidden customer field, a hidden record field, numbers
/// masked), a batch at each, and one business record per customer synced up.
async fn world(h: &TestHub, admin: &Caller) -> Result<(i64, i64, i64)> {
    let hz = admin.ok(Method::POST, "/api/sites", Some(json!({ "name": "杭州职场" }))).await?["id"].as_i64().context("site")?;
    let cd = admin.ok(Method::POST, "/api/sites", Some(json!({ "name": "成都职场" }))).await?["id"].as_i64().context("site")?;
    let category = admin.ok(Method::POST, "/api/categories", Some(json!({ "name": "信用卡" }))).await?["id"].as_i64().context("category")?;
    let project = admin
        .ok(Method::POST, "/api/projects", Some(json!({
            "category_id": category, "name": "分期推荐", "hide_middle_digits": true,
            "customer_fields": [{ "key": "name", "title": "姓名", "kind": "text", "filterable": true },
                                { "key": "idno", "title": "身份证", "kind": "text", "hidden": true, "filterable": true }],
            "record_fields": [{ "key": "result", "title": "营销结果", "kind": "single_choice", "options": ["成功", "失败"], "filterable": true },
                              { "key": "score", "title": "内部评分", "kind": "number", "hidden": true }]
        })))
        .await?["id"]
        .as_i64()
        .context("project")?;
    admin.ok(Method::PUT, &format!("/api/projects/{project}/sites"), Some(json!({ "site_ids": [hz, cd] }))).await?;
    for (site, phones) in [(hz, ["13800000001", "13800000002"]), (cd, ["13900000003", "13900000004"])] {
        let form = Form::new().part("file", Part::bytes(sheet(&phones)).file_name("名单.xlsx"));
        let report: Value = admin.http.post(format!("{}/api/projects/{project}/files", admin.base)).multipart(form).send().await?.json().await?;
        let file = report["file_id"].as_i64().context("file")?;
        let out = admin.ok(Method::POST, &format!("/api/files/{file}/dispatch"), Some(json!({ "name": format!("批次{site}"), "priority": 5, "site_ids": [site] }))).await?;
        let batch = out["batch_ids"][0].as_u64().context("batch")?;
        let rows: Vec<u64> = h.hub().store.down_log(site, 0, 10_000)?.into_iter()
            .filter_map(|e| match e.event { DownEvent::BatchChunk(c) => Some(c.rows.into_iter().map(|r| r.row_id)), _ => None })
            .flatten()
            .collect();
        for (n, row) in rows.iter().enumerate() {
            let record = BusinessRecord {
                attempt_id: n as u64 + 1, batch_id: batch, row_id: *row, agent: format!("agent{site}"), saved_at: 1_700_000_000 + n as i64,
                values: vec![("result".into(), if n == 0 { "成功" } else { "失败" }.into()), ("score".into(), "7".into())],
            };
            HubStore::apply_up(h.hub().store.as_ref(), site as u64, &UpEntry { epoch: 1, seq: n as u64 + 1, event: UpEvent::BusinessRecord(record) })?;
        }
    }
    Ok((hz, cd, project))
}

#[tokio::test]
async fn each_caller_gets_its_sites_masked_and_without_hidden_fields() -> Result<()> {
    let h = TestHub::launch().await?;
    let admin = Caller::login(&h.base, "admin", &h.password).await?;
    let (hz, _cd, project) = world(&h, &admin).await?;
    let modules: Vec<String> = admin.ok(Method::GET, "/api/modules", None).await?.as_array().context("modules")?.iter().filter_map(|m| m["key"].as_str().map(String::from)).collect();
    let ours = ["data.customer", "data.business", "site.business"];
    let others: Vec<&String> = modules.iter().filter(|m| !ours.contains(&m.as_str())).collect();
    let role = |name: &str, modules: Value| json!({ "name": name, "modules": modules });
    let every = admin.ok(Method::POST, "/api/roles", Some(role("全部", json!(modules)))).await?["id"].clone();
    let without = admin.ok(Method::POST, "/api/roles", Some(role("无资料", json!(others)))).await?["id"].clone();
    let site_data = admin.ok(Method::POST, "/api/roles", Some(role("职场业务数据", json!(["site.business"])))).await?["id"].clone();
    let mut ids = Vec::new();
    for (name, role) in [("hz_admin", &every), ("no_data", &without), ("site_data", &site_data)] {
        let account = json!({ "username": name, "password": "sub-secret-1", "role_id": role, "site_ids": [hz] });
        ids.push(admin.ok(Method::POST, "/api/accounts", Some(account)).await?["id"].clone());
    }
    let admins: Vec<Value> = ids.iter().map(|id| json!({ "account_id": id, "site_ids": [hz] })).collect();
    admin.ok(Method::PUT, &format!("/api/projects/{project}/admins"), Some(json!({ "admins": admins }))).await?;

    // The admin: both sites, hidden fields, masked numbers, a filter across both sites.
    let all = admin.ok(Method::GET, &format!("/api/projects/{project}/business-data?f.result=%E5%A4%B1%E8%B4%A5"), None).await?;
    let rows = all["rows"].as_array().context("rows")?;
    ensure!(rows.len() == 2 && rows.iter().map(|r| r["site_name"].clone()).collect::<Vec<_>>() == [json!("成都职场"), json!("杭州职场")], "{all}");
    ensure!(rows.iter().all(|r| r["phone"].as_str().is_some_and(|p| p.contains("****"))), "{all}");
    ensure!(all["columns"].as_array().is_some_and(|c| c.len() == 2), "the admin sees 内部评分: {all}");

    // The sub-admin of 杭州: its site only, no hidden field anywhere, not even as a filter.
    let hz_admin = Caller::login(&h.base, "hz_admin", "sub-secret-1").await?;
    let mine = hz_admin.ok(Method::GET, &format!("/api/projects/{project}/business-data"), None).await?;
    ensure!(mine["rows"].as_array().is_some_and(|r| r.len() == 2 && r.iter().all(|r| r["site_name"] == "杭州职场")), "{mine}");
    ensure!(!mine.to_string().contains("score") && !mine.to_string().contains("内部评分"), "a hidden field left the hub: {mine}");
    let customers = hz_admin.ok(Method::GET, &format!("/api/projects/{project}/customer-data"), None).await?;
    ensure!(customers["rows"].as_array().is_some_and(|r| r.len() == 2) && !customers.to_string().contains("33010"), "{customers}");
    ensure!(customers.to_string().contains("138****0001") && !customers.to_string().contains("13800000001"), "{customers}");
    let (status, text, _) = hz_admin.get_in(&format!("/api/projects/{project}/customer-data?f.idno=330100"), "zh").await?;
    ensure!(status == StatusCode::BAD_REQUEST && text.contains("不是本子项目的筛选条件"), "{status} {text}");
    let (status, text, _) = hz_admin.get_in(&format!("/api/projects/{project}/customer-data?f.idno=330100"), "en").await?;
    ensure!(status == StatusCode::BAD_REQUEST && text.contains("is not a filter of this sub-project"), "{status} {text}");
    let (status, _, bytes) = hz_admin.get_in(&format!("/api/projects/{project}/business-data/export"), "zh").await?;
    ensure!(status == StatusCode::OK, "{status}");
    let sheet = xlsx_rows(&bytes)?;
    ensure!(sheet[0] == ["职场", "批次", "电话号码", "提交人", "提交时间", "营销结果"], "{:?}", sheet[0]);
    ensure!(sheet.len() == 3 && sheet[1..].iter().all(|r| r[0] == "杭州职场" && r[2].contains("****")), "{sheet:?}");
    let (_, _, bytes) = hz_admin.get_in(&format!("/api/projects/{project}/customer-data/export"), "en").await?;
    let sheet = xlsx_rows(&bytes)?;
    ensure!(sheet[0] == ["Site", "Batch", "Phone", "Agent", "Dispatched at", "Last edited", "Last edited by", "姓名"], "{:?}", sheet[0]);
    let (status, page, _) = hz_admin.get_in(&format!("/data/records?project={project}&f.result=%E6%88%90%E5%8A%9F"), "zh").await?;
    ensure!(status == StatusCode::OK && page.contains("杭州职场") && !page.contains("成都职场") && !page.contains("内部评分"), "{status} {page}");

    let (status, page, _) = hz_admin.get_in(&format!("/data/customers?project={project}"), "en").await?;
    ensure!(status == StatusCode::OK && page.contains("Customer data") && page.contains("Dispatched at") && page.contains("138****0002"), "{status} {page}");
    let (status, page, _) = hz_admin.get_in("/data/records?project=x", "en").await?;
    ensure!(status == StatusCode::BAD_REQUEST && page.contains("project: &#34;x&#34; is not a number"), "{status} {page}");

    // Every other module but not these: refused, in the caller's language.
    let no_data = Caller::login(&h.base, "no_data", "sub-secret-1").await?;
    for path in ["customer-data", "customer-data/export", "business-data", "business-data/export"] {
        let (status, text, _) = no_data.get_in(&format!("/api/projects/{project}/{path}"), "zh").await?;
        ensure!(status == StatusCode::FORBIDDEN, "{path}: {status} {text}");
    }
    let (status, text, _) = no_data.get_in(&format!("/data/customers?project={project}"), "zh").await?;
    ensure!(status == StatusCode::FORBIDDEN && text.contains("客户资料"), "{status} {text}");
    let (status, text, _) = no_data.get_in(&format!("/api/projects/{project}/business-data"), "en").await?;
    ensure!(status == StatusCode::FORBIDDEN && text.contains("your role does not include"), "{status} {text}");
    // 职场业务数据 alone opens the business records, not the customer data.
    let site_data = Caller::login(&h.base, "site_data", "sub-secret-1").await?;
    ensure!(site_data.call(Method::GET, &format!("/api/projects/{project}/business-data"), None).await?.0 == StatusCode::OK);
    ensure!(site_data.call(Method::GET, &format!("/api/projects/{project}/customer-data"), None).await?.0 == StatusCode::FORBIDDEN);
    let (status, text, _) = admin.get_in(&format!("/api/projects/{project}/business-data?from=yesterday"), "zh").await?;
    ensure!(status == StatusCode::BAD_REQUEST && text.contains("不是时间"), "{status} {text}");
    h.stop().await
}

#[tokio::test]
async fn filterable_flags_are_set_in_the_console_and_listed_with_the_project() -> Result<()> {
    let h = TestHub::launch().await?;
    let admin = Caller::login(&h.base, "admin", &h.password).await?;
    let (_, _, project) = world(&h, &admin).await?;
    let saved = admin.ok(Method::PUT, &format!("/api/projects/{project}/filterable"), Some(json!({ "customer": ["idno"], "record": [] }))).await?;
    let flags = |list: &str| -> Vec<(String, bool)> {
        saved[list].as_array().into_iter().flatten().map(|f| (f["key"].as_str().unwrap_or("").to_string(), f["filterable"] == true)).collect()
    };
    ensure!(flags("customer_fields") == [("name".into(), false), ("idno".into(), true)], "{saved}");
    ensure!(flags("record_fields") == [("result".into(), false), ("score".into(), false)], "{saved}");
    let (status, text, _) = admin.get_in(&format!("/api/projects/{project}/business-data?f.result=%E6%88%90%E5%8A%9F"), "zh").await?;
    ensure!(status == StatusCode::BAD_REQUEST && text.contains("result"), "no longer a filter: {status} {text}");
    let (status, answer) = admin.call(Method::PUT, &format!("/api/projects/{project}/filterable"), Some(json!({ "customer": ["nope"] }))).await?;
    ensure!(status == StatusCode::BAD_REQUEST && answer.to_string().contains("nope"), "{status} {answer}");
    let (_, page, _) = admin.get_in(&format!("/projects/{project}"), "zh").await?;
    ensure!(page.contains("id=\"filterable\"") && page.contains("筛选条件"), "the project page offers the switch");

    // The create form sets the flag per field; a sub-project cloned from it keeps it.
    let category = saved["category_id"].as_i64().context("category")?.to_string();
    let form = [
        ("category_id", category.as_str()), ("name", "表单项目"),
        ("cf_title_0", "套餐"), ("cf_key_0", "plan"), ("cf_kind_0", "text"), ("cf_filterable_0", "on"),
        ("cf_title_1", "地址"), ("cf_key_1", "addr"), ("cf_kind_1", "text"),
        ("rf_title_0", "结果"), ("rf_key_0", "result"), ("rf_kind_0", "single_choice"), ("rf_options_0", "成功\n失败"), ("rf_filterable_0", "on"),
    ];
    let response = admin.http.post(format!("{}/projects", h.base)).form(&form).send().await?;
    ensure!(response.status().is_success(), "create form: {}", response.status());
    let made = admin.ok(Method::GET, "/api/projects", None).await?.as_array().context("projects")?.iter().find(|p| p["name"] == "表单项目").cloned().context("created")?;
    let flags: Vec<(Value, Value)> = made["customer_fields"].as_array().into_iter().flatten().chain(made["record_fields"].as_array().into_iter().flatten())
        .map(|f| (f["key"].clone(), f["filterable"].clone()))
        .collect();
    ensure!(flags == [(json!("plan"), json!(true)), (json!("addr"), json!(false)), (json!("result"), json!(true))], "{made}");
    let clone = admin.ok(Method::POST, "/api/projects", Some(json!({ "category_id": saved["category_id"], "name": "克隆项目", "template_id": made["id"] }))).await?["id"].clone();
    let clone = admin.ok(Method::GET, &format!("/api/projects/{clone}"), None).await?;
    ensure!(clone["customer_fields"][0]["filterable"] == true && clone["record_fields"][0]["filterable"] == true, "{clone}");
    h.stop().await
}
