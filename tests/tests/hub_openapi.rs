//! Schemathesis (PyPI) against the hub's OpenAPI document: every operation the document
//! lists is called with generated inputs, logged in as the admin; no answer may be a server
//! error (5xx), and every answer's status, content type and body must be what the document
//! says for that operation (the document is derived from the handlers' types).
//!
//! The tool and the bounded run are the harness's ([`tests::schemathesis`]); `/api/logout`
//! is left out (it would end the session the run uses), and so is the wall's event stream
//! (it never ends).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use tests::SchemathesisRun;

/// A small xlsx call list so that file, batch and filter operations have something real.
fn call_list() -> anyhow::Result<Vec<u8>> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.write_string(0, 0, "手机号码")?;
    sheet.write_string(0, 1, "客户姓名")?;
    for row in 1..=5u32 {
        sheet.write_string(row, 0, format!("1380013800{row}"))?;
        sheet.write_string(row, 1, format!("客户{row}"))?;
    }
    Ok(workbook.save_to_buffer()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error() -> anyhow::Result<()> {
    let exe = tests::schemathesis(Path::new(env!("CARGO_TARGET_TMPDIR"))).await?;
    let dir = tempfile::tempdir()?;
    let shutdown = CancellationToken::new();
    let (hub, password) = tests::start_hub(dir.path(), shutdown.clone()).await?;
    let base = format!("http://{}", hub.http_addr);

    // Log in (the cookie goes to schemathesis) and give ids 1 something to point at.
    let http = reqwest::Client::builder().cookie_store(true).timeout(Duration::from_secs(20)).build()?;
    let login = http.post(format!("{base}/api/login")).json(&json!({ "username": "admin", "password": password })).send().await?;
    ensure!(login.status().is_success(), "login: {}", login.status());
    let cookie = login
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.split(';').next().filter(|pair| pair.starts_with("hq_session=")))
        .context("the login sets hq_session")?
        .to_string();
    let post = |path: &str, body: Value| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move {
            let response = http.post(url).json(&body).send().await?;
            ensure!(response.status().is_success(), "seeding: {}", response.status());
            Ok::<Value, anyhow::Error>(response.json().await?)
        }
    };
    let site = post("/api/sites", json!({ "name": "一号职场" })).await?;
    let category = post("/api/categories", json!({ "name": "套餐类" })).await?;
    let project = post("/api/projects", json!({ "category_id": category["id"], "name": "升级" })).await?;
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(call_list()?).file_name("名单.xlsx"));
    let file: Value = http.post(format!("{base}/api/projects/{}/files", project["id"])).multipart(form).send().await?.json().await?;
    post(&format!("/api/files/{}/dispatch", file["file_id"]), json!({ "name": "批次", "priority": 5, "site_ids": [site["id"]] })).await?;

    let run = SchemathesisRun {
        document: format!("{base}/api/openapi.json"),
        cookie: &cookie,
        checks: "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        // `/api/monitor/events` is an endless event stream (its first event is checked
        // against the document by `hq-hub/tests/openapi.rs`).
        exclude_paths: &["/api/logout", "/api/monitor/events"],
        workdir: dir.path(),
    };
    let outcome = run.run(&exe).await?;
    // Shown with --nocapture: which operations ran and how many cases each.
    eprintln!("{}", outcome.stdout);
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), hub.wait()).await;
    outcome.ensure_clean()?;
    Ok(())
}
