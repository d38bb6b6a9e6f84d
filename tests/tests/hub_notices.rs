//! HQ's voice library (语音库) and announcements (公告管理), from the console to the sites'
//! down logs, in a real hub and a real headless Chromium; and the task list at 1280 px.
//!
//! - `voice_files_and_announcements_reach_every_site`: a site enrolls over the real sync
//!   link; in the browser HQ uploads a WAV (and is told how to convert an MP3), posts an
//!   announcement and edits it; both pages list them (screenshots `hub-voice.png`,
//!   `hub-announcements.png`) and the enrolled site's down log carries every version. A site
//!   enrolled afterwards finds the current file and announcement in its down log; deleting
//!   and withdrawing reach both sites. A sub-admin needs the role's module for each.
//! - `task_list_fits_a_1280_px_window`: the batches page with a dispatched batch has no
//!   horizontal scroll at 1280×800 (screenshot `hub-batches-1280.png`).

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use sync_protocol::{Announcement, DownEvent, VoiceFile, VoiceKind};
use tests::{Browser, RunningHub, wait_for_some, wait_until};

/// Generous for a cold, shared 2-core machine; every wait is bounded by it.
const WAIT: Duration = Duration::from_secs(20);

/// Creates a site and enrolls it over the sync link, as a technician's box does.
async fn enrolled_site(hub: &RunningHub, api: &Api, name: &str, identity_dir: &std::path::Path) -> anyhow::Result<i64> {
    let site = api.post("/api/sites", json!({ "name": name })).await?;
    let id = site["id"].as_i64().context("site id")?;
    let code = api.post(&format!("/api/sites/{id}/enrollment-code"), json!({})).await?;
    let code = code["code"].as_str().context("enrollment code")?.to_string();
    let addr = hub.hub().sync_addr.to_string();
    tokio::time::timeout(WAIT, sync_link::client::enroll(&addr, &code, identity_dir)).await??;
    Ok(id)
}

/// The voice files and announcements in `site`'s down log, in log order.
async fn sent_to(hub: &RunningHub, site: i64) -> anyhow::Result<(Vec<VoiceFile>, Vec<Announcement>)> {
    let store = hub.hub().store.clone();
    let log = tokio::task::spawn_blocking(move || store.down_log(site, 0, 10_000)).await??;
    let mut voices = Vec::new();
    let mut notices = Vec::new();
    for entry in log {
        match entry.event {
            DownEvent::VoiceFile(voice) => voices.push(voice),
            DownEvent::Announcement(notice) => notices.push(notice),
            _ => {}
        }
    }
    Ok((voices, notices))
}

/// A JSON API client with the session cookie.
struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn login(base: &str, password: &str) -> anyhow::Result<Api> {
        Api::login_as(base, "admin", password).await
    }

    async fn login_as(base: &str, username: &str, password: &str) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder().cookie_store(true).timeout(WAIT).build()?;
        let api = Api { base: base.to_string(), http };
        api.post("/api/login", json!({ "username": username, "password": password })).await?;
        Ok(api)
    }

    async fn answer(response: reqwest::Response, what: &str) -> anyhow::Result<Value> {
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{what}: {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("{what}: not JSON: {text}"))
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        Api::answer(self.http.get(format!("{}{path}", self.base)).send().await?, path).await
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        Api::answer(self.http.post(format!("{}{path}", self.base)).json(&body).send().await?, path).await
    }
}

/// A G.711 µ-law WAV, mono 8000 Hz, of `samples` samples (a 400 Hz tone).
fn ulaw_wav(samples: usize) -> Vec<u8> {
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(36 + samples as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&7u16.to_le_bytes()); // µ-law
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&8000u32.to_le_bytes());
    out.extend_from_slice(&8000u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&8u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(samples as u32).to_le_bytes());
    // A square-ish 400 Hz tone in µ-law code words (0xFF is silence).
    out.extend((0..samples).map(|i| if (i / 10) % 2 == 0 { 0x9F } else { 0x1F }));
    out
}

async fn browser_login(browser: &Browser, url: &str, password: &str) -> anyhow::Result<()> {
    browser.goto(&format!("{url}/login")).await?;
    browser.wait_for("input[name=username]", WAIT).await?.send_keys("admin").await?;
    browser.wait_for("input[name=password]", WAIT).await?.send_keys(password).await?;
    browser.wait_for("form button", WAIT).await?.click().await?;
    wait_until(WAIT, || async {
        browser.client().current_url().await.map(|u| !u.path().starts_with("/login")).unwrap_or(false)
    })
    .await
    .context("the admin logs in")?;
    Ok(())
}

/// The text of `css`, or empty if it is not on the page.
async fn text_of(browser: &Browser, css: &str) -> String {
    match browser.client().find(fantoccini::Locator::Css(css)).await {
        Ok(element) => element.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Waits until `css`'s text contains `needle`; the text.
async fn wait_for_text(browser: &Browser, css: &str, needle: &str) -> anyhow::Result<String> {
    let found = wait_for_some(WAIT, || async {
        let text = text_of(browser, css).await;
        text.contains(needle).then_some(text)
    })
    .await;
    match found {
        Ok(text) => Ok(text),
        Err(_) => bail!("{css} does not show {needle:?}; it shows {:?}", text_of(browser, css).await),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voice_files_and_announcements_reach_every_site() -> anyhow::Result<()> {
    let hub = RunningHub::start().await?;
    let api = Api::login(&hub.url, &hub.password).await?;
    let work = tempfile::tempdir()?;
    let first = enrolled_site(&hub, &api, "一号职场", &work.path().join("first")).await?;

    let wav = work.path().join("等待音乐.wav");
    std::fs::write(&wav, ulaw_wav(24_000))?;
    let mp3 = work.path().join("song.mp3");
    std::fs::write(&mp3, b"ID3\x04\x00\x00\x00\x00\x00\x00 not a wav")?;

    let browser = Browser::start().await?;
    browser_login(&browser, &hub.url, &hub.password).await?;

    // 语音库: an MP3 is refused with the command that converts it; the WAV is listed.
    browser.goto(&format!("{}/voice", hub.url)).await?;
    browser.wait_for("#voice-upload input[name=name]", WAIT).await?.send_keys("欢迎等待音乐").await?;
    browser.wait_for("#voice-upload select[name=kind]", WAIT).await?.select_by_value("hold_music").await?;
    let file = browser.wait_for("#voice-upload input[type=file]", WAIT).await?;
    file.send_keys(&mp3.to_string_lossy()).await?;
    browser.wait_for("#voice-upload button", WAIT).await?.click().await?;
    let refused = wait_for_text(&browser, "#voice-upload .result", "sox").await?;
    ensure!(refused.contains("song.mp3") && refused.contains("-r 8000 -c 1 -e u-law"), "the refusal says what to do: {refused}");
    file.clear().await?;
    file.send_keys(&wav.to_string_lossy()).await?;
    browser.wait_for("#voice-upload button", WAIT).await?.click().await?;
    let listed = wait_for_text(&browser, "#voice-files tbody", "欢迎等待音乐").await?;
    ensure!(listed.contains("等待音乐") && listed.contains("3.0") && listed.contains("admin"), "the list row: {listed}");
    browser.screenshot(tests::screenshot_dir().join("hub-voice.png")).await?;

    // 公告管理: post, then edit through the row's form.
    browser.goto(&format!("{}/announcements", hub.url)).await?;
    browser.wait_for("#notice-post input[name=title]", WAIT).await?.send_keys("系统维护通知").await?;
    browser.wait_for("#notice-post textarea[name=body]", WAIT).await?.send_keys("今晚 22:00-23:00 总控维护，职场外呼不受影响。").await?;
    browser.wait_for("#notice-post button", WAIT).await?.click().await?;
    wait_for_text(&browser, "#announcements tbody", "系统维护通知").await?;
    browser.wait_for("#announcements tr[data-notice] details summary", WAIT).await?.click().await?;
    let title = browser.wait_for("#announcements tr[data-notice] details input[name=title]", WAIT).await?;
    title.clear().await?;
    title.send_keys("系统维护通知（改期）").await?;
    browser.wait_for("#announcements tr[data-notice] details button", WAIT).await?.click().await?;
    let row = wait_for_text(&browser, "#announcements tbody", "系统维护通知（改期）").await?;
    ensure!(row.contains("生效中") && row.contains("不过期"), "the announcement row: {row}");
    browser.screenshot(tests::screenshot_dir().join("hub-announcements.png")).await?;
    browser.close().await?;

    // The API lists the same.
    let voices = api.get("/api/voice-files").await?;
    let voice = &voices["voice_files"][0];
    ensure!(voice["name"] == "欢迎等待音乐" && voice["kind"] == "hold_music" && voice["duration_ms"] == 3000, "{voices}");
    let notices = api.get("/api/announcements").await?;
    let notice = &notices["announcements"][0];
    ensure!(notice["title"] == "系统维护通知（改期）" && notice["version"] == 2, "{notices}");
    let (voice_id, notice_id) = (voice["id"].as_u64().context("voice id")?, notice["id"].as_u64().context("notice id")?);

    // The enrolled site was sent the file and both versions of the announcement.
    let (voices, notices) = sent_to(&hub, first).await?;
    ensure!(voices.len() == 1, "{voices:?}");
    ensure!(voices[0].voice_id == voice_id && voices[0].name == "欢迎等待音乐" && voices[0].kind == VoiceKind::HoldMusic);
    ensure!(voices[0].size == 44 + 24_000 && !voices[0].deleted, "{voices:?}");
    let versions: Vec<(u64, &str)> = notices.iter().map(|n| (n.version, n.title.as_str())).collect();
    ensure!(versions == [(1, "系统维护通知"), (2, "系统维护通知（改期）")], "{versions:?}");
    ensure!(notices.iter().all(|n| n.announcement_id == notice_id && !n.withdrawn), "{notices:?}");

    // A site enrolled now finds the current state in its down log.
    let second = enrolled_site(&hub, &api, "二号职场", &work.path().join("second")).await?;
    let (voices, notices) = sent_to(&hub, second).await?;
    ensure!(voices.len() == 1 && voices[0].voice_id == voice_id && voices[0].version == 1, "{voices:?}");
    ensure!(notices.len() == 1 && notices[0].version == 2 && notices[0].title == "系统维护通知（改期）", "{notices:?}");

    // Deleting and withdrawing reach both sites as new versions.
    api.post(&format!("/api/voice-files/{voice_id}/delete"), json!({})).await?;
    api.post(&format!("/api/announcements/{notice_id}/withdraw"), json!({})).await?;
    for site in [first, second] {
        let (voices, notices) = sent_to(&hub, site).await?;
        let last_voice = voices.last().context("a voice file")?;
        ensure!(last_voice.deleted && last_voice.version == 2, "site {site}: {voices:?}");
        let last_notice = notices.last().context("an announcement")?;
        ensure!(last_notice.withdrawn && last_notice.version == 3, "site {site}: {notices:?}");
    }
    ensure!(api.get("/api/voice-files").await?["voice_files"].as_array().is_some_and(|v| v.is_empty()));
    // A second withdraw is refused, not repeated.
    let again = api.http.post(format!("{}/api/announcements/{notice_id}/withdraw", api.base)).send().await?;
    ensure!(again.status() == reqwest::StatusCode::CONFLICT, "withdrawing twice: {}", again.status());

    // Admin-only by default: a sub-admin whose role lacks the two modules is refused; one
    // whose role has 公告管理 may post.
    let plain = api.post("/api/roles", json!({ "name": "数据管理", "modules": ["data.files"] })).await?;
    let notices_role = api.post("/api/roles", json!({ "name": "公告员", "modules": ["notices"] })).await?;
    for (username, role) in [("clerk", &plain), ("notifier", &notices_role)] {
        api.post("/api/accounts", json!({ "username": username, "password": "password-123", "role_id": role["id"] })).await?;
    }
    let clerk = Api::login_as(&hub.url, "clerk", "password-123").await?;
    for path in ["/api/voice-files", "/api/announcements"] {
        let refused = clerk.http.get(format!("{}{path}", clerk.base)).send().await?;
        ensure!(refused.status() == reqwest::StatusCode::FORBIDDEN, "GET {path} as clerk: {}", refused.status());
    }
    let refused = clerk.http.post(format!("{}/api/announcements", clerk.base)).json(&json!({ "title": "x", "body": "" })).send().await?;
    ensure!(refused.status() == reqwest::StatusCode::FORBIDDEN, "posting as clerk: {}", refused.status());
    let notifier = Api::login_as(&hub.url, "notifier", "password-123").await?;
    notifier.post("/api/announcements", json!({ "title": "班前会通知", "body": "", "expires_at": "2099-01-01 09:00" })).await?;
    let refused = notifier.http.get(format!("{}/api/voice-files", notifier.base)).send().await?;
    ensure!(refused.status() == reqwest::StatusCode::FORBIDDEN, "GET /api/voice-files as notifier: {}", refused.status());
    let (_, notices) = sent_to(&hub, first).await?;
    let last = notices.last().context("the sub-admin's announcement")?;
    ensure!(last.title == "班前会通知" && last.expires_at == Some(4_070_912_400), "{last:?}");
    hub.stop().await
}

/// A small xlsx call list.
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
async fn task_list_fits_a_1280_px_window() -> anyhow::Result<()> {
    let hub = RunningHub::start().await?;
    let api = Api::login(&hub.url, &hub.password).await?;
    let site = api.post("/api/sites", json!({ "name": "深圳一号职场" })).await?;
    let category = api.post("/api/categories", json!({ "name": "宽带套餐类" })).await?;
    let project = api.post("/api/projects", json!({ "category_id": category["id"], "name": "宽带升级回访项目" })).await?;
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(call_list()?).file_name("名单.xlsx"));
    let response = api.http.post(format!("{}/api/projects/{}/files", hub.url, project["id"])).multipart(form).send().await?;
    let file = Api::answer(response, "import").await?;
    api.post(
        &format!("/api/files/{}/dispatch", file["file_id"]),
        json!({ "name": "十一月第一批宽带升级", "priority": 5, "site_ids": [site["id"]], "description": "老客户回访，优先拨打近三个月未联系的号码" }),
    )
    .await?;

    let browser = Browser::start().await?;
    browser.client().set_window_size(1280, 800).await?;
    browser_login(&browser, &hub.url, &hub.password).await?;
    browser.goto(&format!("{}/batches", hub.url)).await?;
    wait_for_text(&browser, "#batches tbody", "十一月第一批宽带升级").await?;
    let widths = browser
        .client()
        .execute(
            "const t = document.getElementById('batches');
             return [document.documentElement.scrollWidth, document.documentElement.clientWidth, Math.ceil(t.getBoundingClientRect().right)];",
            vec![],
        )
        .await?;
    browser.screenshot(tests::screenshot_dir().join("hub-batches-1280.png")).await?;
    browser.close().await?;
    let widths: Vec<i64> = serde_json::from_value(widths)?;
    let (page, viewport, table_right) = (widths[0], widths[1], widths[2]);
    ensure!(viewport <= 1280, "the window is 1280 px wide, the viewport {viewport}");
    ensure!(page <= viewport && table_right <= viewport, "the task list overflows a 1280 px window: page {page}, table ends at {table_right}, viewport {viewport}");
    hub.stop().await
}
