//! Call records at HQ through the real hub (`hq_hub::start`: SQLite store, console API, QUIC
//! link with mutual TLS) and a real box link (`sync_link::client`): the box calls the rows
//! HQ dispatched and reports each call with its recording's hash; it uploads a recording
//! only when HQ asks for it, so what the test sees is the on-demand fetch and nothing else.
//!
//! - Found by the last four digits and exactly; the call carries the site's hash and says
//!   HQ does not hold it; playing it then is a 404 naming the fetch.
//! - Fetch: `requested`, then held, byte for byte; played with range requests (206 with
//!   `Content-Range`, a suffix range, 416 outside the file), downloaded as an attachment.
//! - The box goes offline: fetching its other recording says `site_offline`.
//! - A sub-admin of another site finds nothing and gets 404 on the direct URLs; a role
//!   without 录音管理 gets 403 on the recording.
//!
//! The box's store is a small in-memory one: what is under test is the hub and the link.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use reqwest::header::{ACCEPT_RANGES, CONTENT_DISPOSITION, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Digest;
use sync_link::blob::{BlobRef, OpenBlob};
use sync_link::client::{self, LinkStatus};
use sync_link::{LinkTuning, SiteStore, StoreResult};
use sync_protocol::{AttemptKind, CallAttempt, DownEntry, DownEvent, HangupSide, Outcome, UpEntry, UpEvent};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use common::TestHub;

mod common;

/// A logged-in console client.
struct Console {
    http: reqwest::Client,
    base: String,
}

impl Console {
    async fn login(base: &str, username: &str, password: &str) -> Result<Console> {
        let console = Console { http: common::cookie_client(Duration::from_secs(20))?, base: base.to_owned() };
        let response = console.http.post(format!("{base}/api/login")).json(&json!({ "username": username, "password": password })).send().await?;
        ensure!(response.status() == StatusCode::OK, "login as {username}: {}", response.status());
        Ok(console)
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<(StatusCode, Value)> {
        common::send(&self.http, &self.base, method, path, body).await
    }

    async fn ok(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let (status, answer) = self.send(method.clone(), path, body).await?;
        ensure!(status == StatusCode::OK, "{method} {path}: {status} {answer}");
        Ok(answer)
    }

    async fn get(&self, path: &str, headers: &[(reqwest::header::HeaderName, &str)]) -> Result<reqwest::Response> {
        let mut request = self.http.get(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(name, *value);
        }
        Ok(request.send().await?)
    }
}

/// The box's store: applies the down log; for each row of a batch that arrives it reports
/// one call with a recording of its own; it lists no recording as pending, so one reaches
/// HQ only when HQ asks for it.
#[derive(Default)]
struct BoxStore {
    applied: Mutex<u64>,
    outbox: Mutex<Vec<UpEntry>>,
    recordings: Mutex<HashMap<[u8; 32], Vec<u8>>>,
    notify: Arc<Notify>,
}

/// A recording's bytes for call `n` (a WAV header and distinct bytes).
fn wav(n: u64) -> Vec<u8> {
    let mut bytes = b"RIFF\x00\x00\x00\x00WAVEfmt ".to_vec();
    bytes.extend((0..4000u32).map(|i| ((i as u64 * 31 + n * 7) % 251) as u8));
    bytes
}

impl SiteStore for BoxStore {
    fn sync_position(&self) -> StoreResult<(u64, u64)> {
        Ok((1, *self.applied.lock().unwrap()))
    }
    fn outbox_after(&self, after_seq: u64, limit: usize) -> StoreResult<Vec<UpEntry>> {
        Ok(self.outbox.lock().unwrap().iter().filter(|e| e.seq > after_seq).take(limit).cloned().collect())
    }
    fn outbox_acked(&self, _epoch: u64, _seq: u64) -> StoreResult<()> {
        Ok(())
    }
    fn apply_down(&self, entry: &DownEntry) -> StoreResult<()> {
        let mut applied = self.applied.lock().unwrap();
        if entry.seq <= *applied {
            return Ok(());
        }
        *applied = entry.seq;
        if let DownEvent::BatchChunk(chunk) = &entry.event {
            let mut outbox = self.outbox.lock().unwrap();
            for row in &chunk.rows {
                let n = outbox.len() as u64 + 1;
                let bytes = wav(n);
                let sha: [u8; 32] = sha2::Sha256::digest(&bytes).into();
                self.recordings.lock().unwrap().insert(sha, bytes);
                let started_at = 1_764_558_000 + n as i64 * 60;
                outbox.push(UpEntry {
                    epoch: 1,
                    seq: n,
                    event: UpEvent::CallAttempt(CallAttempt {
                        attempt_id: n,
                        batch_id: chunk.batch_id,
                        row_id: row.row_id,
                        started_at,
                        answered_at: Some(started_at + 4),
                        ended_at: started_at + 40,
                        outcome: Outcome::Connected,
                        hangup_side: Some(HangupSide::Customer),
                        agent: Some("agent1".into()),
                        talk_seconds: 36,
                        recording_sha256: Some(hex::encode(sha)),
                        kind: AttemptKind::Predictive,
                    }),
                });
            }
            self.notify.notify_one();
        }
        Ok(())
    }
    fn outbox_notify(&self) -> Arc<Notify> {
        self.notify.clone()
    }
    fn open_recording(&self, sha256: &[u8; 32]) -> StoreResult<Option<OpenBlob>> {
        Ok(self.recordings.lock().unwrap().get(sha256).map(|bytes| OpenBlob {
            size: bytes.len() as u64,
            reader: Box::new(std::io::Cursor::new(bytes.clone())),
        }))
    }
    fn pending_recordings(&self, _limit: usize) -> StoreResult<Vec<BlobRef>> {
        Ok(Vec::new())
    }
}

fn sheet(phones: &[&str]) -> Result<Vec<u8>> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.write(0, 0, "手机号码")?;
    for (i, phone) in phones.iter().enumerate() {
        sheet.write(i as u32 + 1, 0, *phone)?;
    }
    Ok(workbook.save_to_buffer()?)
}

async fn wait_for<T, F: std::future::Future<Output = Result<Option<T>>>>(what: &str, mut check: impl FnMut() -> F) -> Result<T> {
    for _ in 0..200 {
        if let Some(found) = check().await? {
            return Ok(found);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("timed out waiting until {what}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_hq_lacks_is_fetched_from_the_site_and_played_with_ranges() -> Result<()> {
    use reqwest::Method;
    let _ = tracing_subscriber::fmt().with_env_filter("info,quinn=warn").with_test_writer().try_init();
    let h = TestHub::launch().await?;
    let admin = Console::login(&h.base, "admin", &h.password).await?;

    // HQ: two sites, a project at both that does not hide digits, two numbers dispatched to
    // the first site; a box enrolled for it.
    let site = admin.ok(Method::POST, "/api/sites", Some(json!({ "name": "杭州职场" }))).await?["id"].as_i64().context("site")?;
    let other_site = admin.ok(Method::POST, "/api/sites", Some(json!({ "name": "成都职场" }))).await?["id"].as_i64().context("site")?;
    let category = admin.ok(Method::POST, "/api/categories", Some(json!({ "name": "套餐类" }))).await?["id"].clone();
    let project = admin
        .ok(Method::POST, "/api/projects", Some(json!({ "category_id": category, "name": "流量包", "hide_middle_digits": false })))
        .await?["id"]
        .as_i64()
        .context("project")?;
    admin.ok(Method::PUT, &format!("/api/projects/{project}/sites"), Some(json!({ "site_ids": [site, other_site] }))).await?;
    let form = Form::new().part("file", Part::bytes(sheet(&["13812345678", "13987654321"])?).file_name("名单.xlsx"));
    let response = admin.http.post(format!("{}/api/projects/{project}/files", h.base)).multipart(form).send().await?;
    let file = response.json::<Value>().await?["file_id"].as_i64().context("file")?;
    admin.ok(Method::POST, &format!("/api/files/{file}/dispatch"), Some(json!({ "name": "十二月批次", "priority": 5, "site_ids": [site] }))).await?;
    let code = admin.ok(Method::POST, &format!("/api/sites/{site}/enrollment-code"), None).await?["code"].as_str().context("code")?.to_owned();
    let identity = client::enroll(&h.hub().sync_addr.to_string(), &code, &h.dir().join("box")).await?;
    let store = Arc::new(BoxStore::default());
    let (status_tx, mut status) = watch::channel(LinkStatus::Connecting);
    let shutdown = CancellationToken::new();
    let tuning = LinkTuning { initial_backoff: Duration::from_millis(200), max_backoff: Duration::from_secs(1), ..LinkTuning::default() };
    let link = tokio::spawn(client::run_tuned(identity, store.clone(), status_tx, shutdown.clone(), tuning));
    tokio::time::timeout(Duration::from_secs(15), status.wait_for(|s| matches!(s, LinkStatus::Online { .. }))).await??;

    // Both calls reach HQ; found by the last four digits and by the whole number.
    let calls = wait_for("both calls reach HQ", || async {
        let page = admin.ok(Method::GET, "/api/calls", None).await?;
        Ok(page["calls"].as_array().filter(|calls| calls.len() == 2).cloned())
    })
    .await?;
    let by_four = admin.ok(Method::GET, "/api/calls?phone=5678", None).await?;
    ensure!(by_four["calls"].as_array().map(Vec::len) == Some(1), "{by_four}");
    let call = &by_four["calls"][0];
    ensure!(call["phone"] == "13812345678" && call["site_name"] == "杭州职场" && call["batch_name"] == "十二月批次", "{call}");
    let whole = admin.ok(Method::GET, "/api/calls?phone=139-8765-4321", None).await?;
    ensure!(whole["calls"].as_array().map(Vec::len) == Some(1) && whole["calls"][0]["phone"] == "13987654321", "{whole}");
    let attempt = call["attempt_id"].as_i64().context("attempt")?;
    let expected_wav = wav(attempt as u64);
    let sha = hex::encode(sha2::Sha256::digest(&expected_wav));
    ensure!(call["recording"] == json!({ "sha256": sha, "held": false }), "the site's hash, not held yet: {call}");
    ensure!(calls.iter().all(|c| c["recording"]["held"] == false));

    // Not held: playing says so and names the fetch.
    let audio = format!("/api/sites/{site}/calls/{attempt}/recording");
    let response = admin.get(&audio, &[]).await?;
    ensure!(response.status() == StatusCode::NOT_FOUND);
    let error: Value = response.json().await?;
    ensure!(error["error"].as_str().is_some_and(|e| e.contains("尚未收到") && e.contains("fetch")), "{error}");

    // Fetch: the site is asked and uploads it; HQ holds the site's bytes.
    let fetched = admin.ok(Method::POST, &format!("{audio}/fetch"), Some(json!({}))).await?;
    ensure!(fetched["state"] == "requested", "{fetched}");
    wait_for("HQ holds the fetched recording", || async {
        let call = admin.ok(Method::GET, &format!("/api/sites/{site}/calls/{attempt}"), None).await?;
        Ok((call["recording"]["held"] == true).then_some(()))
    })
    .await?;
    let other_attempt = calls.iter().filter_map(|c| c["attempt_id"].as_i64()).find(|a| *a != attempt).context("the other call")?;
    let other_call = admin.ok(Method::GET, &format!("/api/sites/{site}/calls/{other_attempt}"), None).await?;
    ensure!(other_call["recording"]["held"] == false, "only the asked-for recording came: {other_call}");

    let response = admin.get(&audio, &[]).await?;
    ensure!(response.status() == StatusCode::OK);
    ensure!(response.headers()[CONTENT_TYPE] == "audio/wav" && response.headers()[ACCEPT_RANGES] == "bytes", "{:?}", response.headers());
    ensure!(response.bytes().await?.as_ref() == expected_wav.as_slice(), "HQ plays the site's recording byte for byte");
    let len = expected_wav.len();
    let response = admin.get(&audio, &[(RANGE, "bytes=100-1099")]).await?;
    ensure!(response.status() == StatusCode::PARTIAL_CONTENT, "{}", response.status());
    ensure!(response.headers()[CONTENT_RANGE] == format!("bytes 100-1099/{len}").as_str(), "{:?}", response.headers());
    ensure!(response.bytes().await?.as_ref() == &expected_wav[100..1100]);
    let response = admin.get(&audio, &[(RANGE, "bytes=-16")]).await?;
    ensure!(response.status() == StatusCode::PARTIAL_CONTENT);
    ensure!(response.bytes().await?.as_ref() == &expected_wav[len - 16..], "a suffix range is the file's end");
    let response = admin.get(&audio, &[(RANGE, &format!("bytes={}-", len + 10))]).await?;
    ensure!(response.status() == StatusCode::RANGE_NOT_SATISFIABLE, "{}", response.status());
    let response = admin.get(&format!("{audio}?download=1"), &[]).await?;
    ensure!(response.headers()[CONTENT_DISPOSITION].to_str()?.starts_with("attachment"), "{:?}", response.headers());
    let fetched = admin.ok(Method::POST, &format!("{audio}/fetch"), Some(json!({}))).await?;
    ensure!(fetched["state"] == "held", "{fetched}");

    // The box goes offline: its other recording cannot come now, and HQ says so.
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), link).await??;
    wait_for("HQ sees the site offline", || async {
        let sites = admin.ok(Method::GET, "/api/sites", None).await?;
        Ok(sites.as_array().and_then(|s| s.iter().find(|s| s["id"] == site)).filter(|s| s["online"] == false).map(|_| ()))
    })
    .await?;
    let fetched = admin.ok(Method::POST, &format!("/api/sites/{site}/calls/{other_attempt}/recording/fetch"), Some(json!({}))).await?;
    ensure!(fetched["state"] == "site_offline", "{fetched}");

    // A sub-admin of the other site finds nothing and cannot reach the call; a role without
    // 录音管理 cannot play it.
    let calls_only = admin.ok(Method::POST, "/api/roles", Some(json!({ "name": "通话", "modules": ["site.calls"] }))).await?["id"].clone();
    for (name, scope) in [("chengdu", other_site), ("hangzhou", site)] {
        let account = admin
            .ok(Method::POST, "/api/accounts", Some(json!({ "username": name, "password": "sub-secret-1", "role_id": calls_only, "site_ids": [scope] })))
            .await?["id"]
            .clone();
        admin.ok(Method::PUT, &format!("/api/projects/{project}/admins"), Some(json!({ "admins": [{ "account_id": account, "site_ids": [scope] }] }))).await?;
    }
    let chengdu = Console::login(&h.base, "chengdu", "sub-secret-1").await?;
    let found = chengdu.ok(Method::GET, "/api/calls?phone=5678", None).await?;
    ensure!(found["calls"] == json!([]), "{found}");
    let (status, _) = chengdu.send(Method::GET, &format!("/api/sites/{site}/calls/{attempt}"), None).await?;
    ensure!(status == StatusCode::NOT_FOUND, "{status}");
    let page = chengdu.get(&format!("/calls/{site}/{attempt}"), &[]).await?;
    ensure!(page.status() == StatusCode::NOT_FOUND, "{}", page.status());
    let (status, _) = chengdu.send(Method::GET, &audio, None).await?;
    ensure!(status == StatusCode::FORBIDDEN, "no 录音管理: {status}");
    let hangzhou = Console::login(&h.base, "hangzhou", "sub-secret-1").await?;
    let own = hangzhou.ok(Method::GET, "/api/calls?phone=5678", None).await?;
    ensure!(own["calls"].as_array().map(Vec::len) == Some(1), "its own site's call: {own}");
    h.stop().await
}
