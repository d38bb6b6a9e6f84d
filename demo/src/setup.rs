//! Seeding the demo through the products' own JSON APIs, as HQ staff and a site admin would.
//!
//! Everything here goes over HTTP to the running hub and appliance: the demo proves the
//! same path a person's browser takes, and a rerun on the same data directory finds what
//! the first run created instead of creating it twice.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use rand::Rng;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// A logged-in JSON API client (the session cookie is kept).
pub struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    pub async fn login(base: &str, username: &str, password: &str) -> anyhow::Result<Api> {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .timeout(Duration::from_secs(60))
            .build()?;
        let api = Api {
            base: base.trim_end_matches('/').to_string(),
            client,
        };
        api.post::<Value>(
            "/api/login",
            &json!({"username": username, "password": password}),
        )
        .await
        .with_context(|| format!("logging in to {base} as {username}"))?;
        Ok(api)
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await?;
        decode(path, response).await
    }

    /// A download: the body's bytes, or an error naming the status and the server's message.
    pub async fn get_bytes(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let response = self.client.get(format!("{}{path}", self.base)).send().await?;
        let status = response.status();
        if !status.is_success() {
            bail!("{path}: {status}: {}", response.text().await.unwrap_or_default());
        }
        Ok(response.bytes().await?.to_vec())
    }

    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> anyhow::Result<T> {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await?;
        decode(path, response).await
    }

    pub async fn put<T: DeserializeOwned>(&self, path: &str, body: &Value) -> anyhow::Result<T> {
        let response = self.client.put(format!("{}{path}", self.base)).json(body).send().await?;
        decode(path, response).await
    }

    pub async fn upload<T: DeserializeOwned>(&self, path: &str, file: &Path) -> anyhow::Result<T> {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        self.upload_bytes(
            path,
            &name,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            bytes,
            &[],
        )
        .await
    }

    /// A multipart POST of `bytes` as the field `file`, with text `fields` beside it.
    pub async fn upload_bytes<T: DeserializeOwned>(
        &self,
        path: &str,
        file_name: &str,
        mime: &str,
        bytes: Vec<u8>,
        fields: &[(&str, &str)],
    ) -> anyhow::Result<T> {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(file_name.to_string())
            .mime_str(mime)?;
        let mut form = reqwest::multipart::Form::new().part("file", part);
        for (name, value) in fields {
            form = form.text(name.to_string(), value.to_string());
        }
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .multipart(form)
            .send()
            .await?;
        decode(path, response).await
    }
}

/// The demo's hold music: a soft four-note chime (C5 E5 G5 E5, each fading out), then a
/// rest, twelve seconds in all, as a µ-law WAV the voice library takes.
pub fn demo_hold_music() -> Vec<u8> {
    let notes = [523.25f64, 659.25, 783.99, 659.25];
    let mut samples = Vec::with_capacity(12 * 8000);
    for round in 0..2 {
        for (idx, hz) in notes.iter().enumerate() {
            let octave = if round == 1 && idx == 3 { 0.5 } else { 1.0 };
            for n in 0..6000 {
                let t = n as f64 / 8000.0;
                let envelope = (-3.0 * t).exp();
                samples.push((2600.0 * envelope * (std::f64::consts::TAU * hz * octave * t).sin()) as i16);
            }
        }
        samples.extend(std::iter::repeat_n(0i16, 24_000));
    }
    let encoded: Vec<u8> = samples.iter().map(|sample| hardware::g711::linear_to_ulaw(*sample)).collect();
    hardware::ulaw_wav(&encoded)
}

async fn decode<T: DeserializeOwned>(path: &str, response: reqwest::Response) -> anyhow::Result<T> {
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("{path}: {status}: {text}");
    }
    // Endpoints that answer with no body decode as JSON null.
    let text = if text.trim().is_empty() {
        "null"
    } else {
        text.as_str()
    };
    serde_json::from_str(text).with_context(|| format!("{path}: unexpected answer {text}"))
}

/// Customer-field and business-record definitions of the demo project.
pub fn demo_project(category_id: u64) -> Value {
    json!({
        "category_id": category_id,
        "name": "5G畅享套餐升级",
        "script": "您好，我是中国电信客服代表。您当前的套餐可以免费升级为5G畅享套餐，月费不变，流量增加20GB。请问您是否有兴趣了解一下？",
        "hide_middle_digits": true,
        "customer_fields": [
            {"key": "name", "title": "客户姓名", "kind": "text", "options": []},
            {"key": "plan", "title": "推荐套餐", "kind": "text", "options": []}
        ],
        "record_fields": [
            {"key": "result", "title": "本次业务结果", "kind": "single_choice",
             "options": ["成功办理", "有意向", "无意向", "预约回访"], "required": true}
        ]
    })
}

/// Writes the demo call list: `n_rows` mobile numbers in the carrier's test range with a
/// name and a recommended plan, the way an HQ operator's spreadsheet looks.
pub fn write_demo_sheet(path: &Path, n_rows: u32) -> anyhow::Result<()> {
    let surnames = ["张", "王", "李", "赵", "陈", "刘", "杨", "黄", "周", "吴"];
    let given = ["伟", "芳", "娜", "敏", "静", "强", "磊", "洋", "艳", "军"];
    let plans = ["5G畅享129元", "5G畅享169元", "融合宽带199元", "流量包30元"];
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.write_string(0, 0, "手机号码")?;
    sheet.write_string(0, 1, "客户姓名")?;
    sheet.write_string(0, 2, "推荐套餐")?;
    let mut rng = rand::rng();
    for row in 1..=n_rows {
        let phone = format!("1380013{:04}", row);
        let name = format!(
            "{}{}",
            surnames[rng.random_range(0..surnames.len())],
            given[rng.random_range(0..given.len())]
        );
        sheet.write_string(row, 0, &phone)?;
        sheet.write_string(row, 1, &name)?;
        sheet.write_string(row, 2, plans[rng.random_range(0..plans.len())])?;
    }
    workbook
        .save(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// HQ's console creates the site `name` and its one-time code, and the box at `site_dir`
/// enrolls with it at `hub_sync` (the hub's sync address, or a path to it); the site's id.
pub async fn enroll_site(hq: &Api, name: &str, site_dir: &Path, hub_sync: SocketAddr) -> anyhow::Result<u64> {
    let site: Value = hq.post("/api/sites", &json!({"name": name})).await?;
    let site_id = site["id"].as_u64().context("the new site has no id")?;
    let code: Value = hq.post(&format!("/api/sites/{site_id}/enrollment-code"), &json!({})).await?;
    let code = code["code"].as_str().context("no enrollment code in the answer")?;
    appliance::enroll(site_dir, &hub_sync.to_string(), code).await.context("enrolling the box")?;
    Ok(site_id)
}

/// HQ's day one for a site: a category `category`, the demo project in it, a call list of
/// `n_rows` written to `sheet` and imported (every row must be good), dispatched to
/// `site_id` as a shared batch named `batch`.
pub async fn dispatch_demo_list(
    hq: &Api,
    category: &str,
    sheet: &Path,
    n_rows: u32,
    batch: &str,
    site_id: u64,
) -> anyhow::Result<()> {
    let category: Value = hq.post("/api/categories", &json!({"name": category})).await?;
    let category_id = category["id"].as_u64().context("the category has no id")?;
    let project: Value = hq.post("/api/projects", &demo_project(category_id)).await?;
    let project_id = project["id"].as_u64().context("the project has no id")?;
    write_demo_sheet(sheet, n_rows)?;
    let import: Value = hq.upload(&format!("/api/projects/{project_id}/files"), sheet).await?;
    if import["n_good"] != json!(n_rows) {
        bail!("the demo list should import whole: {import}");
    }
    let file_id = import["file_id"].as_u64().context("the import has no file id")?;
    hq.post::<Value>(
        &format!("/api/files/{file_id}/dispatch"),
        &json!({"name": batch, "priority": 50, "site_ids": [site_id]}),
    )
    .await?;
    Ok(())
}

