//! The tricky workbooks of `tests/fixtures/` (written by `examples/import-fixtures.rs`),
//! each uploaded through the hub's real upload route (HTTP, in-process on 127.0.0.1:0, a
//! real SQLite store): what was stored, what was refused and why (row, column, value, in
//! English and Chinese), which sheet the report names, the truncation warning, and the
//! project's dial-token length as a setting that rules the import.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::{json, Value};

use hq_hub::store::Store;
use common::TestHub;

mod common;

type Harness = TestHub<reqwest::Client>;

impl Harness {
    async fn start() -> Result<Harness> {
        let h = TestHub::launch().await?.with(common::cookie_client(Duration::from_secs(20))?);
        let (status, body) = h.send(reqwest::Method::POST, "/api/login", Some(json!({ "username": "admin", "password": h.password }))).await?;
        assert_eq!(status, StatusCode::OK, "login: {body}");
        Ok(h)
    }

    fn store(&self) -> &Store {
        &self.hub().store
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<(StatusCode, Value)> {
        common::send(&self.admin, &self.base, method, path, body).await
    }

    async fn page(&self, path: &str) -> Result<String> {
        let response = self.admin.get(format!("{}{path}", self.base)).send().await?;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        Ok(response.text().await?)
    }

    /// A sub-project of category "套餐类" with these customer fields `(key, title)`.
    async fn project(&self, name: &str, phone_mode: &str, fields: &[(&str, &str)]) -> Result<i64> {
        let category = match self.send(reqwest::Method::POST, "/api/categories", Some(json!({ "name": "套餐类" }))).await? {
            (StatusCode::OK, body) => body["id"].as_i64().context("category id")?,
            // Already there: categories are unique by name.
            _ => 1,
        };
        let fields: Vec<Value> = fields.iter().map(|(key, title)| json!({ "key": key, "title": title, "kind": "text" })).collect();
        let (status, body) = self
            .send(
                reqwest::Method::POST,
                "/api/projects",
                Some(json!({ "category_id": category, "name": name, "phone_mode": phone_mode, "customer_fields": fields })),
            )
            .await?;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["id"].as_i64().context("project id")
    }

    /// Uploads fixture `name` to `project` as the console's upload does; answers the report.
    async fn upload(&self, project: i64, name: &str) -> Result<Value> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let form = Form::new().part("file", Part::bytes(bytes).file_name(name.to_string()));
        let response = self.admin.post(format!("{}/api/projects/{project}/files", self.base)).multipart(form).send().await?;
        let status = response.status();
        let report: Value = response.json().await?;
        assert_eq!(status, StatusCode::OK, "{name}: {report}");
        Ok(report)
    }

    /// The stored rows of the report's file: `phone [fields…]`, one a line.
    fn stored(&self, report: &Value) -> Result<String> {
        let file = report["file_id"].as_i64().context("file id")?;
        let rows = self.store().file_rows(file)?;
        Ok(rows.iter().map(|r| format!("{} {} {:?}\n", r.row_number, r.phone, r.fields.iter().collect::<Vec<_>>())).collect())
    }
}

/// The report's refused rows, one a line: `row column: reason`.
fn refused(report: &Value) -> String {
    report["bad"]
        .as_array()
        .map(|bad| {
            bad.iter()
                .map(|b| format!("{} {}: {}\n", b["row"], b["column"].as_str().unwrap_or_default(), b["reason"].as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn scientific_text_and_long_numbers_are_refused_never_stored() -> Result<()> {
    let h = Harness::start().await?;
    let project = h.project("证件核验", "number", &[("name", "姓名"), ("id_number", "证件号")]).await?;
    let report = h.upload(project, "scientific-text.xlsx").await?;
    assert_eq!((report["n_rows"].as_u64(), report["n_good"].as_u64()), (Some(6), Some(2)), "{report}");
    // The good rows are stored as typed; 13900100000 (from 1.39001E+10) is nowhere.
    assert_eq!(h.stored(&report)?, "2 13800138000 [\"张三\", \"110101199001011234\"]\n7 13500135000 [\"孙八\", \"110101199001015678\"]\n");
    let refused = refused(&report);
    let expected = [
        "3 手机号码: \"1.39001E+10\" is in scientific notation: precision lost in Excel",
        "4 证件号: \"1.10101E+17\" is in scientific notation: precision lost in Excel",
        "5 证件号: the number 110101199001011230 has more than 15 significant digits: precision lost in Excel",
        "6 手机号码: the number 13600136000.5 is not a whole number",
    ];
    for line in expected {
        assert!(refused.lines().any(|l| l.starts_with(line)), "{line:?} not in:\n{refused}");
    }
    assert_eq!(refused.lines().count(), 4, "{refused}");
    let phones: Vec<String> = h.store().file_rows(report["file_id"].as_i64().unwrap_or_default())?.into_iter().map(|r| r.phone).collect();
    assert!(!phones.iter().any(|p| p == "13900100000" || p == "13900139000"), "{phones:?}");

    // The console's file page gives the reasons in Chinese by default.
    let page = h.page(&format!("/files/{}", report["file_id"])).await?;
    assert!(page.contains("“1.39001E+10”是科学计数法：Excel 已丢失精度"), "{page}");
    assert!(page.contains("数字 110101199001011230 超过 15 位有效数字"), "{page}");
    h.stop().await
}

#[tokio::test]
async fn dial_tokens_are_exactly_the_projects_length() -> Result<()> {
    let h = Harness::start().await?;
    let project = h.project("流量保加定向流量", "token", &[("county", "归属县市"), ("plan", "套餐名称")]).await?;
    assert_eq!(h.store().project_token_length(project)?, Some(20), "the manual's tokens are 20 hex digits");
    let report = h.upload(project, "token-twenty-digits.xlsx").await?;
    assert_eq!(
        h.stored(&report)?,
        "2 A207A92E2B93892F5F4C [\"301\", \"神州行创业卡2011版2型\"]\n\
         6 4490871F819F2684D41F [\"302\", \"神州行家园卡11版3号\"]\n\
         7 D387AFC9826293E0368F [\"305\", \"神州行家园卡11版3号\"]\n"
    );
    let bad = refused(&report);
    for line in [
        "3 电话号: the number 98765432109876540000 has more than 15 significant digits: precision lost in Excel",
        "4 电话号: \"9.87654E+19\" is in scientific notation: precision lost in Excel",
        "5 电话号: \"F84C0F0BD048800BC62\" is not an encrypted dial token: this project's tokens are exactly 20 hex digits",
    ] {
        assert!(bad.lines().any(|l| l.starts_with(line)), "{line:?} not in:\n{bad}");
    }
    assert_eq!(bad.lines().count(), 3, "{bad}");
    assert!(!h.stored(&report)?.contains("98765432109876540000"));

    // The length is a project setting, edited with the parameters: at 19 the short token
    // is taken and the 20-digit ones are not.
    let (status, body) = h.send(reqwest::Method::PUT, &format!("/api/projects/{project}/settings"), Some(json!({ "token_length": 7 }))).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("“加密号码位数”：7 超出范围"), "{body}");
    assert_eq!(h.store().project_token_length(project)?, Some(20), "a refused length changes nothing");
    let (status, body) = h.send(reqwest::Method::PUT, &format!("/api/projects/{project}/settings"), Some(json!({ "token_length": 19 }))).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(h.store().project_token_length(project)?, Some(19));
    let page = h.page(&format!("/projects/{project}")).await?;
    assert!(page.contains(r#"name="token_length" type="number" min="8" max="64" value="19""#), "the settings form shows the length");
    let report = h.upload(project, "token-twenty-digits.xlsx").await?;
    assert_eq!(h.stored(&report)?, "5 F84C0F0BD048800BC62 [\"302\", \"神州行家园卡11版3号\"]\n");
    assert!(refused(&report).contains("2 电话号: \"A207A92E2B93892F5F4C\" is not an encrypted dial token: this project's tokens are exactly 19 hex digits"));
    h.stop().await
}

#[tokio::test]
async fn a_leading_apostrophe_is_dropped() -> Result<()> {
    let h = Harness::start().await?;
    let project = h.project("老客户回访", "number", &[("name", "姓名"), ("code", "客户编号")]).await?;
    let report = h.upload(project, "apostrophe.xlsx").await?;
    assert_eq!(refused(&report), "", "{report}");
    assert_eq!(h.stored(&report)?, "2 13800138000 [\"张三\", \"00123\"]\n3 13900139000 [\"李四\", \"00456\"]\n");
    h.stop().await
}

#[tokio::test]
async fn title_rows_above_the_header_are_skipped() -> Result<()> {
    let h = Harness::start().await?;
    let project = h.project("五月名单", "number", &[("name", "姓名"), ("code", "客户编号")]).await?;
    let report = h.upload(project, "title-row.xlsx").await?;
    assert_eq!(report["phone_column"], "手机号码", "{report}");
    assert_eq!(refused(&report), "", "{report}");
    assert_eq!(h.stored(&report)?, "5 13800138000 [\"张三\", \"A001\"]\n6 13900139000 [\"李四\", \"A002\"]\n");
    let warnings = report["header_warnings"].to_string();
    assert!(warnings.contains("row 1 \\\"2024年5月 客户电话名单\\\" is above the header row and was skipped"), "{warnings}");
    assert!(warnings.contains("row 2 \\\"导出时间：2024-05-31 10:00\\\" is above the header row"), "{warnings}");
    h.stop().await
}

#[tokio::test]
async fn data_on_a_later_sheet_is_found_and_the_sheet_named() -> Result<()> {
    let h = Harness::start().await?;
    let project = h.project("分表名单", "number", &[("name", "姓名")]).await?;
    let report = h.upload(project, "data-on-later-sheet.xlsx").await?;
    assert_eq!(report["sheet"], "客户名单", "{report}");
    assert_eq!(h.stored(&report)?, "2 13800138000 [\"张三\"]\n3 13900139000 [\"李四\"]\n");
    assert!(report["header_warnings"].to_string().contains("sheet \\\"Sheet1\\\", \\\"说明\\\" has no data or no phone column"), "{report}");
    let page = h.page(&format!("/files/{}", report["file_id"])).await?;
    assert!(page.contains(r#"<dt>读取的工作表</dt><dd id="sheet">客户名单</dd>"#), "{page}");
    h.stop().await
}

#[tokio::test]
async fn an_over_long_cell_is_cut_with_a_warning_and_the_row_kept() -> Result<()> {
    let h = Harness::start().await?;
    let project = h.project("投诉回访", "number", &[("name", "姓名"), ("note", "备注")]).await?;
    let report = h.upload(project, "over-long-cell.xlsx").await?;
    assert_eq!((report["n_good"].as_u64(), refused(&report)), (Some(2), String::new()), "{report}");
    let rows = h.store().file_rows(report["file_id"].as_i64().unwrap_or_default())?;
    let note = rows[0].fields.get(1).unwrap_or_default();
    assert_eq!(note.chars().count(), 1000);
    assert_eq!(note, "客户反映".repeat(250));
    assert_eq!(rows[1].fields.get(1), Some("老客户"));
    let warnings = report["warnings"].as_array().cloned().unwrap_or_default();
    assert_eq!(warnings.len(), 1, "{report}");
    assert_eq!(warnings[0]["row"], 2);
    assert_eq!(warnings[0]["column"], "备注");
    assert_eq!(warnings[0]["reason"], "the value has 1500 characters, more than the 1000 a field holds: it was cut to its first 1000");
    let page = h.page(&format!("/files/{}", report["file_id"])).await?;
    assert!(page.contains("内容有 1500 个字符，超过字段上限 1000：已截断为前 1000 个字符"), "{page}");
    h.stop().await
}

/// The length is stored with the project (its own column) and survives a restart.
#[test]
fn the_token_length_is_stored_with_the_project() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let project = {
        let store = Store::open(dir.path())?;
        let category = store.create_category("套餐类")?;
        let new: hq_hub::store::NewProject = serde_json::from_value(json!({ "category_id": category, "name": "加密", "phone_mode": "token" }))?;
        let project = store.create_project(&new)?;
        store.set_project_token_length(project, 32)?;
        assert!(store.set_project_token_length(project, 65).is_err());
        assert!(store.set_project_token_length(project + 1, 20).is_err(), "no such project");
        project
    };
    let store = Store::open(dir.path())?;
    assert_eq!(store.project_token_length(project)?, Some(32));
    assert_eq!(store.project_token_length(project + 1)?, None);
    Ok(())
}
