//! Enrollment and the box that holds a site, through the real hub (`hq_hub::start`: SQLite
//! store, console API, QUIC link with mutual TLS) and real boxes (`sync_link::client`:
//! key, CSR, code proof, certificate on disk, the reconnecting sync loop).
//!
//! - The rogue-box test: a sub-admin cannot mint a code or retire a box; a second box for an
//!   enrolled site is refused.
//! - Codes: used once, expired (a one-second lifetime), replaced by a newer one.
//! - Retiring the box holding a site cuts its live link, keeps it out, and lets a new box in,
//!   which then receives the site's down log.
//!
//! The boxes' site store is a small in-memory one: what is under test is the hub and the
//! link, and the store only records what reached the box.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sync_link::client::{self, EnrollError, LinkStatus, SiteIdentity};
use sync_link::{LinkTuning, SiteStore, StoreResult};
use sync_protocol::{DownEntry, DownEvent, UpEntry};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use common::TestHub;

/// A logged-in console client (its own cookie jar).
struct Console {
    http: reqwest::Client,
    base: String,
}

impl Console {
    async fn login(base: &str, username: &str, password: &str) -> Result<Console> {
        let console = Console { http: common::cookie_client(Duration::from_secs(20))?, base: base.to_owned() };
        let (status, body) = console.post("/api/login", json!({ "username": username, "password": password })).await?;
        anyhow::ensure!(status == StatusCode::OK, "login as {username}: {status} {body}");
        Ok(console)
    }

    async fn post(&self, path: &str, body: Value) -> Result<(StatusCode, Value)> {
        let response = self.http.post(format!("{}{path}", self.base)).json(&body).send().await?;
        let status = response.status();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    async fn ok(&self, path: &str, body: Value) -> Result<Value> {
        let (status, answer) = self.post(path, body).await?;
        anyhow::ensure!(status == StatusCode::OK, "POST {path}: {status} {answer}");
        Ok(answer)
    }

    /// A form post as the browser sends it (following the redirect): status and body.
    async fn form(&self, path: &str) -> Result<(StatusCode, String)> {
        let response = self.http.post(format!("{}{path}", self.base)).form(&[("confirm", "1")]).send().await?;
        let status = response.status();
        Ok((status, response.text().await?))
    }

    async fn page(&self, path: &str) -> Result<String> {
        let response = self.http.get(format!("{}{path}", self.base)).send().await?;
        anyhow::ensure!(response.status() == StatusCode::OK, "GET {path}: {}", response.status());
        Ok(response.text().await?)
    }

    async fn site(&self, id: i64) -> Result<Value> {
        let response = self.http.get(format!("{}/api/sites", self.base)).send().await?;
        let sites: Value = response.json().await?;
        sites
            .as_array()
            .and_then(|sites| sites.iter().find(|s| s["id"] == id).cloned())
            .with_context(|| format!("site {id} not listed: {sites}"))
    }

    async fn mint(&self, site: i64) -> Result<String> {
        let code = self.ok(&format!("/api/sites/{site}/enrollment-code"), json!({})).await?;
        Ok(code["code"].as_str().context("a code")?.to_owned())
    }
}

mod common;

type Harness = TestHub<Console>;

impl Harness {
    async fn start() -> Result<Harness> {
        let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
        let hq = TestHub::launch().await?;
        let admin = Console::login(&hq.base, "admin", &hq.password).await?;
        Ok(hq.with(admin))
    }

    fn sync_addr(&self) -> String {
        self.hub().sync_addr.to_string()
    }

    async fn site(&self, name: &str) -> Result<i64> {
        let site = self.admin.ok("/api/sites", json!({ "name": name })).await?;
        site["id"].as_i64().context("site id")
    }

    /// Enrolls a box with `code` into its own identity directory.
    async fn enroll(&self, name: &str, code: &str) -> Result<SiteIdentity, EnrollError> {
        client::enroll(&self.sync_addr(), code, &self.dir().join(name)).await
    }
}

/// The reason of a refused enrollment, or a failure if the box was enrolled.
fn refusal(result: Result<SiteIdentity, EnrollError>) -> Result<String> {
    match result {
        Err(EnrollError::Refused { reason }) => Ok(reason),
        Err(other) => bail!("enrollment failed otherwise: {other}"),
        Ok(identity) => bail!("enrolled a box that should have been refused: {identity:?}"),
    }
}

/// A box's own store: nothing to send, and the down entries it applied.
#[derive(Default)]
struct BoxStore {
    applied: Mutex<Vec<DownEntry>>,
    notify: Arc<Notify>,
}

impl SiteStore for BoxStore {
    fn sync_position(&self) -> StoreResult<(u64, u64)> {
        Ok((1, self.applied.lock().unwrap().last().map_or(0, |entry| entry.seq)))
    }
    fn outbox_after(&self, _after_seq: u64, _limit: usize) -> StoreResult<Vec<UpEntry>> {
        Ok(Vec::new())
    }
    fn outbox_acked(&self, _epoch: u64, _seq: u64) -> StoreResult<()> {
        Ok(())
    }
    fn apply_down(&self, entry: &DownEntry) -> StoreResult<()> {
        let mut applied = self.applied.lock().unwrap();
        if applied.last().is_none_or(|last| entry.seq > last.seq) {
            applied.push(entry.clone());
        }
        Ok(())
    }
    fn outbox_notify(&self) -> Arc<Notify> {
        self.notify.clone()
    }
}

/// A box keeping its link up in the background.
struct RunningBox {
    store: Arc<BoxStore>,
    status: watch::Receiver<LinkStatus>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn run_box(identity: SiteIdentity) -> RunningBox {
    let store = Arc::new(BoxStore::default());
    let (status_tx, status) = watch::channel(LinkStatus::Connecting);
    let shutdown = CancellationToken::new();
    // Short backoff: a refused box tries again within a second, so "stays out" is observed.
    let tuning = LinkTuning { initial_backoff: Duration::from_millis(200), max_backoff: Duration::from_secs(1), ..LinkTuning::default() };
    let task = tokio::spawn(client::run_tuned(identity, store.clone(), status_tx, shutdown.clone(), tuning));
    RunningBox { store, status, shutdown, task }
}

impl RunningBox {
    async fn wait_online(&mut self) -> Result<()> {
        tokio::time::timeout(Duration::from_secs(15), self.status.wait_for(|s| matches!(s, LinkStatus::Online { .. })))
            .await
            .context("the box did not come online")??;
        Ok(())
    }

    /// Waits until the box is offline for a reason containing `needle`.
    async fn wait_offline_because(&mut self, needle: &str) -> Result<String> {
        let needle = needle.to_owned();
        let mut status = self.status.clone();
        let waited = tokio::time::timeout(
            Duration::from_secs(15),
            status.wait_for(|s| matches!(s, LinkStatus::Offline { reason, .. } if reason.contains(&needle))),
        )
        .await;
        let Ok(seen) = waited else { bail!("the box was not cut off ({:?})", *self.status.borrow()) };
        let LinkStatus::Offline { reason, .. } = seen?.clone() else { unreachable!() };
        Ok(reason)
    }

    async fn stop(self) -> Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task).await??;
        Ok(())
    }
}

async fn wait_until<F: std::future::Future<Output = Result<bool>>>(what: &str, mut check: impl FnMut() -> F) -> Result<()> {
    for _ in 0..150 {
        if check().await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("timed out waiting until {what}")
}

/// A sub-admin whose role has one module (files) and one site.
async fn sub_admin(h: &Harness, site: i64) -> Result<Console> {
    let role = h.admin.ok("/api/roles", json!({ "name": "文件管理", "modules": ["data.files"] })).await?;
    h.admin
        .ok(
            "/api/accounts",
            json!({ "username": "sub1", "password": "sub-secret-1", "role_id": role["id"], "site_ids": [site] }),
        )
        .await?;
    Console::login(&h.base, "sub1", "sub-secret-1").await
}

#[tokio::test]
async fn rogue_box_sub_admin_cannot_mint_and_a_second_box_is_refused() -> Result<()> {
    let h = Harness::start().await?;
    let own = h.site("北京职场").await?;
    let other = h.site("上海职场").await?;
    let sub = sub_admin(&h, own).await?;

    // Neither for another site nor for its own: minting and retiring are HQ admins' work.
    for site in [other, own] {
        let (status, body) = sub.post(&format!("/api/sites/{site}/enrollment-code"), json!({})).await?;
        assert_eq!(status, StatusCode::FORBIDDEN, "sub-admin minted a code for site {site}: {body}");
        assert!(body["error"].as_str().unwrap_or_default().contains("管理员"), "{body}");
        let (status, body) = sub.post(&format!("/api/sites/{site}/retire"), json!({})).await?;
        assert_eq!(status, StatusCode::FORBIDDEN, "sub-admin retired site {site}'s box: {body}");
    }

    // The admin enrolls the real box of the other site.
    let code = h.admin.mint(other).await?;
    let first = h.enroll("box-1", &code).await?;
    assert_eq!(first.site_id, other as u64);
    let mut running = run_box(first.clone());
    running.wait_online().await?;

    // The form route of retire is guarded too, and did nothing.
    let (status, _) = sub.form(&format!("/sites/{other}/retire")).await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(h.admin.site(other).await?["enrolled"], true);

    // A second box, even with a valid fresh code, is refused while the first holds the site.
    let fresh = h.admin.mint(other).await?;
    let reason = refusal(h.enroll("rogue", &fresh).await)?;
    assert!(reason.contains(&format!("site {other} already has an enrolled box")), "{reason}");
    assert!(reason.contains(&first.cert_fingerprint()), "the refusal names the holding box: {reason}");
    assert!(!h.dir().join("rogue").join("site.json").exists(), "nothing saved on the refused box");
    // The first box was not disturbed, and still holds the site.
    assert!(matches!(*running.status.borrow(), LinkStatus::Online { .. }));
    let listed = h.admin.site(other).await?;
    assert_eq!(listed["box_certificate"].as_str(), Some(first.cert_fingerprint().as_str()), "{listed}");

    running.stop().await?;
    h.stop().await
}

#[tokio::test]
async fn used_expired_and_replaced_codes_are_refused_with_their_reason() -> Result<()> {
    let h = Harness::start().await?;
    let used_site = h.site("一号职场").await?;
    let code = h.admin.mint(used_site).await?;
    h.enroll("first", &code).await?;
    let reason = refusal(h.enroll("again", &code).await)?;
    assert!(reason.contains("already used"), "{reason}");

    // A newer code for a site revokes the older one, and only that site's.
    let site = h.site("二号职场").await?;
    let bystander = h.site("三号职场").await?;
    let older = h.admin.mint(site).await?;
    let bystander_code = h.admin.mint(bystander).await?;
    let newer = h.admin.mint(site).await?;
    let reason = refusal(h.enroll("older", &older).await)?;
    assert!(reason.contains("replaced by a newer one"), "{reason}");
    let enrolled = h.enroll("newer", &newer).await?;
    assert_eq!(enrolled.site_id, site as u64);
    assert_eq!(h.enroll("bystander", &bystander_code).await?.site_id, bystander as u64);

    // A code outlives its lifetime: one second here (the `serve` option sets it).
    let late = h.site("四号职场").await?;
    h.hub().store.set_enrollment_code_ttl(Duration::from_secs(1));
    let minted = h.admin.ok(&format!("/api/sites/{late}/enrollment-code"), json!({})).await?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let expires_at = minted["expires_at"].as_i64().context("expires_at")?;
    assert!((now..=now + 1).contains(&expires_at), "lifetime of one second: {minted}");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let reason = refusal(h.enroll("late", minted["code"].as_str().context("code")?).await)?;
    assert!(reason.contains("code expired"), "{reason}");
    assert_eq!(h.admin.site(late).await?["enrolled"], false);

    // Unknown codes are told apart from the rest.
    let reason = refusal(h.enroll("typo", "ZZZZ-ZZZZ-ZZZZ").await)?;
    assert!(reason.contains("code is unknown"), "{reason}");
    h.stop().await
}

#[tokio::test]
async fn retiring_a_box_cuts_its_link_and_lets_a_new_box_enroll() -> Result<()> {
    let h = Harness::start().await?;
    // Something in the site's down log, for the boxes to receive.
    h.admin.ok("/api/announcements", json!({ "title": "欢迎", "body": "新职场" })).await?;
    let site = h.site("广州职场").await?;
    let code = h.admin.mint(site).await?;
    let old = h.enroll("old", &code).await?;
    let mut old_box = run_box(old.clone());
    old_box.wait_online().await?;
    wait_until("the hub shows the site online", || async { Ok(h.admin.site(site).await?["online"] == true) }).await?;
    let received = |running: &RunningBox| {
        running.store.applied.lock().unwrap().iter().any(|e| matches!(&e.event, DownEvent::Announcement(a) if a.title == "欢迎"))
    };
    wait_until("the old box has the announcement", || async { Ok(received(&old_box)) }).await?;

    // The console shows which box holds the site, in Chinese and in English.
    let short: String = old.cert_fingerprint().split(':').take(6).collect::<Vec<_>>().join(":");
    let page = h.admin.page("/sites").await?;
    assert!(page.contains("已接入") && page.contains(&short) && page.contains("退役") && page.contains("确认退役"), "{page}");
    h.admin.page("/lang/en").await?;
    let page = h.admin.page("/sites").await?;
    assert!(page.contains("Enrolled") && page.contains(&short) && page.contains("Retire"), "{page}");

    // HQ retires it (the form route, as the console's confirmation button posts it).
    let (status, page) = h.admin.form(&format!("/sites/{site}/retire")).await?;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Not enrolled") && !page.contains(&short), "back on the sites page, the box gone: {page}");
    let reason = old_box.wait_offline_because("retired").await?;
    assert!(reason.contains("hub refused the session"), "{reason}");
    wait_until("the hub shows the site offline", || async { Ok(h.admin.site(site).await?["online"] == false) }).await?;
    let listed = h.admin.site(site).await?;
    assert_eq!(listed["enrolled"], false, "{listed}");
    assert!(listed["box_certificate"].is_null(), "{listed}");
    let page = h.admin.page("/sites").await?;
    assert!(page.contains("Not enrolled") && page.contains("last seen") && !page.contains(&short), "{page}");
    // Retiring again: nothing to retire.
    let (status, body) = h.admin.post(&format!("/api/sites/{site}/retire"), json!({})).await?;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // The old box keeps trying and stays out: each hello is refused.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(matches!(&*old_box.status.borrow(), LinkStatus::Offline { reason, .. } if reason.contains("retired")));
    assert_eq!(h.admin.site(site).await?["online"], false);

    // A new box enrolls for the site and receives its down log from the start.
    let new = h.enroll("new", &h.admin.mint(site).await?).await?;
    assert_ne!(new.cert_fingerprint(), old.cert_fingerprint());
    let mut new_box = run_box(new.clone());
    new_box.wait_online().await?;
    wait_until("the new box has the announcement", || async { Ok(received(&new_box)) }).await?;
    let listed = h.admin.site(site).await?;
    assert_eq!(listed["enrolled"], true);
    assert_eq!(listed["box_certificate"].as_str(), Some(new.cert_fingerprint().as_str()), "{listed}");
    // ...while the old one is still refused.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(matches!(&*old_box.status.borrow(), LinkStatus::Offline { reason, .. } if reason.contains("retired")));
    assert!(matches!(*new_box.status.borrow(), LinkStatus::Online { .. }), "the old box's attempts do not disturb the new one");

    // Through the API as well: the new box is cut off the same way.
    let retired = h.admin.ok(&format!("/api/sites/{site}/retire"), json!({})).await?;
    assert_eq!(retired["certificate"].as_str(), Some(new.cert_fingerprint().as_str()), "{retired}");
    new_box.wait_offline_because("retired").await?;

    old_box.stop().await?;
    new_box.stop().await?;
    h.stop().await
}

/// The form route a sub-admin used to mint a code for another site: refused for every site,
/// its own included, as the JSON twin is (minting is an admin's act).
#[tokio::test]
async fn sub_admin_cannot_mint_a_code_through_the_form_route() -> Result<()> {
    let h = Harness::start().await?;
    let own = h.site("北京职场").await?;
    let other = h.site("上海职场").await?;
    let sub = sub_admin(&h, own).await?;
    for site in [other, own] {
        let (status, body) = sub.form(&format!("/sites/{site}/code")).await?;
        assert_eq!(status, StatusCode::FORBIDDEN, "form route minted for site {site}: {body}");
        assert!(!body.contains("一次性接入码"), "a code was shown: {body}");
    }
    h.stop().await
}

/// The value of one sample line `name` (with its labels) in an OpenMetrics page.
fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The hub's probes without a login: `/healthz`, `/readyz`, and `/metrics` following a real
/// box's link (QUIC with mutual TLS) up and down, and the down log it has not taken yet.
#[tokio::test]
async fn probes_follow_a_box_online_and_offline() -> Result<()> {
    let h = Harness::start().await?;
    let anonymous = reqwest::Client::new();
    let get = |path: &str| anonymous.get(format!("{}{path}", h.base)).send();
    let health = get("/healthz").await?;
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.text().await?, "ok\n");
    let ready = get("/readyz").await?;
    assert_eq!(ready.status(), StatusCode::OK);
    let ready: Value = ready.json().await?;
    assert_eq!(ready, json!({"ready": true, "store": "ok", "sites_online": 0, "problems": []}));

    let site = h.site("杭州职场").await?;
    let code = h.admin.mint(site).await?;
    let mut running = run_box(h.enroll("box", &code).await?);
    running.wait_online().await?;
    wait_until("the hub shows the site online", || async { Ok(h.admin.site(site).await?["online"] == true) }).await?;
    let metrics = get("/metrics").await?;
    let kind = metrics.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    let page = metrics.text().await?;
    assert_eq!(sample(&page, "outpost_sites_online"), Some(1.0), "{page}");
    assert_eq!(sample(&page, "outpost_site_link_up{site=\"杭州职场\"}"), Some(1.0), "{page}");
    assert_eq!(sample(&page, "outpost_imports_running"), Some(0.0), "{page}");
    assert!(sample(&page, "outpost_disk_free_bytes").is_some_and(|bytes| bytes > 0.0), "{page}");

    // Offline, HQ writes for the site: the backlog grows by what the box has not taken.
    running.stop().await?;
    wait_until("the hub shows the site offline", || async { Ok(h.admin.site(site).await?["online"] == false) }).await?;
    let before = sample(&get("/metrics").await?.text().await?, "outpost_site_down_backlog{site=\"杭州职场\"}").context("backlog")?;
    h.admin.ok("/api/announcements", json!({ "title": "停机通知", "body": "今晚维护" })).await?;
    let page = get("/metrics").await?.text().await?;
    assert_eq!(sample(&page, "outpost_site_link_up{site=\"杭州职场\"}"), Some(0.0), "{page}");
    assert_eq!(sample(&page, "outpost_sites_online"), Some(0.0), "{page}");
    assert_eq!(sample(&page, "outpost_site_down_backlog{site=\"杭州职场\"}"), Some(before + 1.0), "{page}");
    Ok(())
}
