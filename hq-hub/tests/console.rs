//! The hub in-process on 127.0.0.1:0, driven through its JSON API and pages with reqwest:
//! login, projects, xlsx import (good, bad rows, corrupted), dispatch into the down log, and
//! results coming back through the sync store showing up in the task list.

use std::time::Duration;

use anyhow::Result;
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use rust_xlsxwriter::Workbook;
use serde_json::{json, Value};
use sync_link::HubStore;
use sync_protocol::{BusinessRecord, CallAttempt, DownEvent, HangupSide, Outcome, UpEntry, UpEvent};

use common::TestHub;

mod common;

type Harness = TestHub<reqwest::Client>;

impl Harness {
    async fn start() -> Result<Harness> {
        let hq = TestHub::launch().await?;
        assert_ne!(hq.hub().sync_addr.port(), 0, "the sync link is bound");
        assert!(!hq.hub().ca_fingerprint.is_empty());
        let client = common::cookie_client(Duration::from_secs(20))?;
        Ok(hq.with(client))
    }

    async fn post(&self, path: &str, body: Value) -> Result<(StatusCode, Value)> {
        let response = self.admin.post(format!("{}{path}", self.base)).json(&body).send().await?;
        let status = response.status();
        Ok((status, response.json().await?))
    }

    async fn get(&self, path: &str) -> Result<(StatusCode, Value)> {
        let response = self.admin.get(format!("{}{path}", self.base)).send().await?;
        let status = response.status();
        Ok((status, response.json().await?))
    }

    async fn page(&self, path: &str) -> Result<String> {
        let response = self.admin.get(format!("{}{path}", self.base)).send().await?;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        Ok(response.text().await?)
    }

    async fn upload(&self, project_id: i64, file_name: &str, bytes: Vec<u8>) -> Result<(StatusCode, Value)> {
        let form = Form::new().part("file", Part::bytes(bytes).file_name(file_name.to_string()));
        let response =
            self.admin.post(format!("{}/api/projects/{project_id}/files", self.base)).multipart(form).send().await?;
        let status = response.status();
        Ok((status, response.json().await?))
    }
}

fn workbook(rows: &[&[&str]]) -> Vec<u8> {
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    for (row_idx, row) in rows.iter().enumerate() {
        for (col_idx, cell) in row.iter().enumerate() {
            if !cell.is_empty() {
                sheet.write(row_idx as u32, col_idx as u16, *cell).expect("write cell");
            }
        }
    }
    workbook.save_to_buffer().expect("save workbook")
}

async fn setup_project(h: &Harness) -> Result<(i64, i64)> {
    let (status, site) = h.post("/api/sites", json!({ "name": "深圳一职场" })).await?;
    assert_eq!(status, StatusCode::OK, "{site}");
    let (status, category) = h.post("/api/categories", json!({ "name": "流量类" })).await?;
    assert_eq!(status, StatusCode::OK, "{category}");
    let (status, again) = h.post("/api/categories", json!({ "name": "流量类" })).await?;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(again["error"].as_str().unwrap_or_default().contains("已有名为"), "{again}");
    let (status, project) = h
        .post(
            "/api/projects",
            json!({
                "category_id": category["id"],
                "name": "流量保加定向流量",
                "script": "您好，这里是客服中心……",
                "hide_middle_digits": true,
                "customer_fields": [
                    { "key": "name", "title": "姓名", "kind": "text", "options": [] },
                    { "key": "level", "title": "客户等级", "kind": "single_choice", "options": ["A", "B"] }
                ],
                "record_fields": [
                    { "key": "result", "title": "营销结果", "kind": "single_choice", "options": ["成功", "失败", "再考虑"] }
                ]
            }),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{project}");
    Ok((site["id"].as_i64().unwrap_or_default(), project["id"].as_i64().unwrap_or_default()))
}

#[tokio::test]
async fn login_import_dispatch_and_results() -> Result<()> {
    let h = Harness::start().await?;

    let (status, body) = h.get("/api/sites").await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "未登录，请先登录");
    let (status, body) = h.post("/api/login", json!({ "username": "admin", "password": "nope" })).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "账号或密码错误");
    let (status, _) = h.post("/api/login", json!({ "username": "admin", "password": h.password })).await?;
    assert_eq!(status, StatusCode::OK);

    let (site_id, project_id) = setup_project(&h).await?;

    // A project with a broken field is refused with what to fix.
    let (status, body) = h
        .post(
            "/api/projects",
            json!({ "category_id": 1, "name": "坏", "record_fields": [{ "key": "r", "title": "结果", "kind": "single_choice", "options": [] }] }),
        )
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"],
        "业务记录字段第 1 项：单项选择 \"结果\" 没有选项：请每行填写一个选项"
    );

    // A good file.
    let good = workbook(&[
        &["手机号码", "姓名", "客户等级"],
        &["13800138000", "张三", "A"],
        &["+86 139-0013-9000", "李四", "B"],
        &["010-62345678", "王五", ""],
    ]);
    let (status, report) = h.upload(project_id, "名单.xlsx", good).await?;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["n_rows"], 3);
    assert_eq!(report["n_good"], 3);
    assert_eq!(report["bad"], json!([]));
    let good_file = report["file_id"].as_i64().unwrap_or_default();

    // A file with bad rows: each reported exactly, the good ones kept.
    let mixed = workbook(&[
        &["姓名", "电话", "客户等级"],
        &["赵六", "13700137000", "A"],
        &["钱七", "13x", "A"],
        &["孙八", "", "B"],
        &["周九", "137 0013 7000", "B"],
        &["吴十", "13600136000", "C"],
        &["郑一", "13500135000", ""],
    ]);
    let (status, report) = h.upload(project_id, "mixed.xlsx", mixed).await?;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["n_rows"], 6);
    assert_eq!(report["n_good"], 2);
    assert_eq!(
        report["bad"],
        json!([
            { "row": 3, "column": "电话", "reason": "\"13x\" contains characters that are not digits: keep only the number" },
            { "row": 4, "column": "电话", "reason": "phone is empty: fill in the number or delete the row" },
            { "row": 5, "column": "电话", "reason": "13700137000 repeats row 2: the number is imported once, delete this row" },
            { "row": 6, "column": "客户等级", "reason": "\"C\" is not one of the options (A / B): use one of them" }
        ])
    );

    // A corrupted file and a non-xlsx file: clear errors, nothing stored.
    let before = h.hub().store.count_files_and_rows()?;
    let (status, body) = h.upload(project_id, "broken.xlsx", b"PK\x03\x04 this is not really a workbook".to_vec()).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let message = body["error"].as_str().unwrap_or_default();
    assert!(message.starts_with("\"broken.xlsx\" 无法作为 xlsx 工作簿读取"), "{message}");
    assert!(message.ends_with("请用 Excel 或 WPS 打开后重新另存为 .xlsx"), "{message}");
    let (status, body) = h.upload(project_id, "old.xls", b"\xD0\xCF\x11\xE0".to_vec()).await?;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert_eq!(h.hub().store.count_files_and_rows()?, before);
    assert_eq!(before, (2, 5));

    // Dispatch errors say what to fix.
    let (status, body) = h.post(&format!("/api/files/{good_file}/dispatch"), json!({ "name": "b", "priority": 5, "site_ids": [] })).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "未选择职场：请至少选择一个下发职场");
    let (status, body) = h.post(&format!("/api/files/{good_file}/dispatch"), json!({ "name": "b", "priority": 101, "site_ids": [site_id] })).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "优先级 101 超出范围：请填 1（暂停）到 100（最高）");

    // Dispatch: project definition and its settings, chunk(s), manifest whose hash matches the rows.
    let (status, body) = h
        .post(&format!("/api/files/{good_file}/dispatch"), json!({ "name": "十月第一批", "priority": 5, "site_ids": [site_id] }))
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let batch_id = body["batch_ids"][0].as_i64().unwrap_or_default();
    let log = h.hub().store.down_log(site_id, 0, 100)?;
    assert_eq!(log.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
    let DownEvent::Project(project) = &log[0].event else { panic!("first entry is {:?}", log[0].event) };
    assert_eq!(project.customer_fields.len(), 2);
    assert!(project.hide_middle_digits);
    let DownEvent::ProjectSettings(settings) = &log[1].event else { panic!("second entry is {:?}", log[1].event) };
    assert_eq!(settings.version, project.version);
    let DownEvent::ListColumns(columns) = &log[2].event else { panic!("third entry is {:?}", log[2].event) };
    assert!(columns.unlisted_customer.is_empty() && columns.unlisted_record.is_empty(), "every field is listed by default: {columns:?}");
    let DownEvent::BatchChunk(chunk) = &log[3].event else { panic!("fourth entry is {:?}", log[3].event) };
    let DownEvent::BatchManifest(manifest) = &log[4].event else { panic!("fifth entry is {:?}", log[4].event) };
    assert_eq!(chunk.batch_id, batch_id as u64);
    assert_eq!(manifest.n_rows, 3);
    assert_eq!(manifest.n_chunks, 1);
    assert_eq!(manifest.priority, 5);
    assert_eq!(manifest.rows_hash, sync_protocol::rows_hash(&chunk.rows));
    let phones: Vec<&str> = chunk.rows.iter().map(|r| r.phone.as_str()).collect();
    assert_eq!(phones, vec!["13800138000", "13900139000", "01062345678"]);
    assert_eq!(chunk.rows[0].fields, vec![("name".to_string(), "张三".to_string()), ("level".to_string(), "A".to_string())]);
    // The link's view of the same log.
    let via_link = h.hub().store.down_after(site_id as u64, 1, 10)?;
    assert_eq!(via_link.len(), 4);

    // A second batch of the same project does not resend the project.
    let mixed_file = good_file + 1;
    let (status, body) = h
        .post(&format!("/api/files/{mixed_file}/dispatch"), json!({ "name": "补充", "priority": 10, "site_ids": [site_id] }))
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let log = h.hub().store.down_log(site_id, 5, 100)?;
    assert!(matches!(log[0].event, DownEvent::BatchChunk(_)), "{:?}", log[0].event);
    let DownEvent::BatchChunk(second_chunk) = &log[0].event else { unreachable!() };
    assert!(second_chunk.rows.iter().all(|r| !chunk.rows.iter().any(|c| c.row_id == r.row_id)), "row ids are hub-wide unique");

    // The site reports an attempt and a business record through the sync store.
    let row = &chunk.rows[0];
    let attempt = UpEntry {
        epoch: 1,
        seq: 1,
        event: UpEvent::CallAttempt(CallAttempt {
            attempt_id: 501,
            batch_id: batch_id as u64,
            row_id: row.row_id,
            started_at: 1_700_000_000,
            answered_at: Some(1_700_000_008),
            ended_at: 1_700_000_090,
            outcome: Outcome::Connected,
            hangup_side: Some(HangupSide::Customer),
            agent: Some("8001".into()),
            talk_seconds: 82,
            recording_sha256: None,
            kind: sync_protocol::AttemptKind::Predictive,
        }),
    };
    let record = UpEntry {
        epoch: 1,
        seq: 2,
        event: UpEvent::BusinessRecord(BusinessRecord {
            attempt_id: 501,
            batch_id: batch_id as u64,
            row_id: row.row_id,
            agent: "8001".into(),
            saved_at: 1_700_000_100,
            values: vec![("result".into(), "成功".into())],
        }),
    };
    h.hub().store.apply_up(site_id as u64, &attempt)?;
    h.hub().store.apply_up(site_id as u64, &record)?;
    h.hub().store.apply_up(site_id as u64, &record)?;

    let (_, batches) = h.get("/api/batches").await?;
    let line = batches.as_array().and_then(|b| b.iter().find(|b| b["id"] == batch_id)).cloned().unwrap_or_default();
    assert_eq!(line["numbers"], 3);
    assert_eq!(line["dialed"], 1);
    assert_eq!(line["connected"], 1);
    assert_eq!(line["agent_connected"], 1);
    assert_eq!((line["abandoned"].clone(), line["abandon_rate"].clone()), (json!(0), json!(0.0)));
    assert_eq!(line["site_id"], site_id);
    assert_eq!(line["priority"], 5);

    // An answered call no agent took counts in the abandon rate (abandoned ÷ answered).
    let dropped = UpEntry {
        epoch: 1,
        seq: 3,
        event: UpEvent::CallAttempt(CallAttempt {
            attempt_id: 502,
            batch_id: batch_id as u64,
            row_id: chunk.rows[1].row_id,
            started_at: 1_700_000_200,
            answered_at: Some(1_700_000_205),
            ended_at: 1_700_000_240,
            outcome: Outcome::Abandoned,
            hangup_side: Some(HangupSide::Customer),
            agent: None,
            talk_seconds: 0,
            recording_sha256: None,
            kind: sync_protocol::AttemptKind::Predictive,
        }),
    };
    h.hub().store.apply_up(site_id as u64, &dropped)?;
    let (_, batches) = h.get("/api/batches").await?;
    let line = batches.as_array().and_then(|b| b.iter().find(|b| b["id"] == batch_id)).cloned().unwrap_or_default();
    assert_eq!((line["dialed"].clone(), line["connected"].clone(), line["abandoned"].clone()), (json!(2), json!(2), json!(1)));
    assert_eq!(line["abandon_rate"], json!(0.5));

    let (status, records) = h.get(&format!("/api/batches/{batch_id}/records")).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        records,
        json!([{ "attempt_id": 501, "site_id": site_id, "row_id": row.row_id, "phone": "138****8000",
                 "agent": "8001", "saved_at": 1_700_000_100, "values": { "result": "成功" } }])
    );

    // The pages: Chinese by default, masked on the server, English on request.
    let page = h.page("/batches").await?;
    assert!(page.contains("下发任务管理") && page.contains("坐席接通量 (率)") && page.contains("放弃量 (率)") && page.contains("1 (50.00%)"), "{page}");
    let page = h.page(&format!("/batches/{batch_id}/records")).await?;
    assert!(page.contains("138****8000") && page.contains("营销结果") && page.contains("成功"));
    assert!(!page.contains("13800138000"), "the full number must not leave the server");
    let page = h.page(&format!("/files/{mixed_file}")).await?;
    assert!(page.contains("与第 2 行重复"), "bad rows are explained in Chinese");
    // The switch goes back to where the browser came from; without a referrer, home.
    let page = h.page("/lang/en").await?;
    assert!(page.contains("Today at a glance") && page.contains("Dials and connects per hour today"), "{page}");
    let page = h.page("/batches").await?;
    assert!(page.contains("Batches") && page.contains("Agent connected (rate)"), "{page}");

    h.stop().await
}

#[tokio::test]
async fn sites_and_enrollment_codes() -> Result<()> {
    let h = Harness::start().await?;
    h.post("/api/login", json!({ "username": "admin", "password": h.password })).await?;
    let (_, site) = h.post("/api/sites", json!({ "name": "成都职场" })).await?;
    let site_id = site["id"].as_i64().unwrap_or_default();
    let (status, body) = h.post("/api/sites", json!({ "name": "  " })).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "职场名称为空：请填写职场名称");
    let (status, code) = h.post(&format!("/api/sites/{site_id}/enrollment-code"), json!({})).await?;
    assert_eq!(status, StatusCode::OK, "{code}");
    let text = code["code"].as_str().unwrap_or_default().to_string();
    assert_eq!(text.len(), 14, "{text}");
    assert!(code["expires_at"].as_i64().unwrap_or_default() > 0);
    let (status, _) = h.post("/api/sites/999/enrollment-code", json!({})).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, sites) = h.get("/api/sites").await?;
    assert_eq!(sites[0]["online"], false);
    assert_eq!(sites[0]["enrolled"], false);
    assert_eq!(h.hub().store.redeem_code(&text, b"box certificate")?, site_id);
    let again = h.hub().store.redeem_code(&text, b"another box");
    assert!(again.is_err_and(|e| e.to_string().contains("already used")), "a code works once");
    h.hub().store.link_state(site_id as u64, true);
    let (_, sites) = h.get("/api/sites").await?;
    assert_eq!(sites[0]["online"], true);
    assert_eq!(sites[0]["enrolled"], true);
    let page = h.page("/sites").await?;
    assert!(page.contains("成都职场") && page.contains("在线"), "{page}");

    assert!(hq_hub::init_admin(h.dir(), "second").is_err(), "only the first admin is created this way");
    h.stop().await
}
