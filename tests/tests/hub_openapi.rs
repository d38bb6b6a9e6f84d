//! Schemathesis (PyPI) against the hub's OpenAPI document: every operation the document
//! lists is called with generated inputs, logged in as the admin; no answer may be a server
//! error (5xx), and every answer's status, content type and body must be what the document
//! says for that operation (the document is derived from the handlers' types).
//!
//! The tool lives in a virtualenv under `target/schemathesis-venv`, made on first use with
//! `python3 -m venv` and `pip install schemathesis`; without PyPI the test fails and says so.
//! The run is bounded: few examples per operation, a timeout per request and for the whole
//! run, and `/api/logout` is left out (it would end the session the run uses).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

/// The whole schemathesis run; it normally takes about a minute.
const RUN_TIMEOUT: Duration = Duration::from_secs(420);
/// Installing schemathesis into a fresh virtualenv.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

fn venv_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is `target/tmp`; the venv sits beside it.
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("schemathesis-venv")
}

/// The schemathesis executable, installing it first if needed.
async fn schemathesis() -> anyhow::Result<PathBuf> {
    let venv = venv_dir();
    let exe = venv.join("bin").join("schemathesis");
    if exe.exists() {
        return Ok(exe);
    }
    let made = Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg(&venv)
        .status()
        .await
        .context("cannot run python3 to make a virtualenv: install python3 and python3-venv")?;
    ensure!(made.success(), "python3 -m venv {} failed: install Debian's python3-venv", venv.display());
    let pip = venv.join("bin").join("pip");
    let install = tokio::time::timeout(
        INSTALL_TIMEOUT,
        Command::new(&pip).args(["install", "--quiet", "schemathesis"]).stdin(Stdio::null()).output(),
    )
    .await;
    let output = match install {
        Ok(output) => output.context("cannot run pip in the virtualenv")?,
        Err(_) => bail!("pip install schemathesis took more than {INSTALL_TIMEOUT:?}: is PyPI reachable?"),
    };
    if !output.status.success() {
        // A half-made venv would be taken as ready next time.
        let _ = std::fs::remove_dir_all(&venv);
        bail!(
            "pip install schemathesis failed (is PyPI reachable from this machine?):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    ensure!(exe.exists(), "pip installed schemathesis but {} is missing", exe.display());
    Ok(exe)
}

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
    let exe = schemathesis().await?;
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

    let report = dir.path().join("schemathesis.ndjson");
    let run = Command::new(&exe)
        .arg("run")
        .arg(format!("{base}/api/openapi.json"))
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"])
        .args(["--max-examples", "15"])
        .args(["--request-timeout", "15"])
        .args(["--workers", "1"])
        .args(["--exclude-path", "/api/logout"])
        .args(["--seed", "20261124"])
        .arg("-H")
        .arg(format!("Cookie: {cookie}"))
        .arg("--report-ndjson-path")
        .arg(&report)
        .arg("--continue-on-failure")
        // Its cache folder (.schemathesis) goes to the temporary directory, not the repository.
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(RUN_TIMEOUT, run).await {
        Ok(output) => output.context("cannot run schemathesis")?,
        Err(_) => bail!("schemathesis did not finish within {RUN_TIMEOUT:?}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Shown with --nocapture: which operations ran and how many cases each.
    eprintln!("{stdout}");
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), hub.wait()).await;
    ensure!(
        output.status.success(),
        "schemathesis found failures (exit {:?}):\n{stdout}\n{stderr}",
        output.status.code()
    );
    // It must really have exercised the API, not stopped at the schema.
    ensure!(stdout.contains("passed") && !stdout.contains("Server error"), "schemathesis output:\n{stdout}");
    Ok(())
}
