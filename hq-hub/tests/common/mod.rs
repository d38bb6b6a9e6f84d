//! The hub as every integration test of this crate runs it: in-process on 127.0.0.1:0 (the
//! console and the sync link), over a fresh data directory whose first admin is `admin`, and
//! stopped cleanly at the end. Each test file picks the client it talks to the hub with
//! (`TestHub<ItsClient>`, usually aliased `Harness`) and adds the requests it needs as
//! inherent methods there; only the starting, stopping, the cookie client and the plain JSON
//! request are shared.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use reqwest::StatusCode;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use hq_hub::{Hub, HubConfig};

/// A running hub, its data directory and the test's client.
pub struct TestHub<C = ()> {
    hub: Option<Hub>,
    shutdown: CancellationToken,
    /// Held so the data directory outlives the hub.
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:<port>`, the console's address.
    pub base: String,
    /// The first admin's generated password.
    // Not every test file logs in with it.
    #[allow(dead_code)]
    pub password: String,
    /// What the test talks to the hub with (`()` until `with`).
    // `guard` makes its clients per test and never reads this.
    #[allow(dead_code)]
    pub admin: C,
}

impl TestHub {
    /// Starts the hub; a hub that is not up within 20 s fails the test.
    pub async fn launch() -> Result<TestHub> {
        let dir = tempfile::tempdir()?;
        let password = hq_hub::init_admin(dir.path(), "admin")?;
        let shutdown = CancellationToken::new();
        let config = HubConfig { data_dir: dir.path().to_path_buf(), http_bind: "127.0.0.1:0".parse()?, sync_bind: "127.0.0.1:0".parse()?, time_zone: Default::default() };
        let hub = tokio::time::timeout(Duration::from_secs(20), hq_hub::start(config, shutdown.clone())).await??;
        let base = format!("http://{}", hub.http_addr);
        Ok(TestHub { hub: Some(hub), shutdown, dir, base, password, admin: () })
    }
}

// Each test file uses only some of these; the rest would warn per file.
#[allow(dead_code)]
impl<C> TestHub<C> {
    /// The same hub with the test's client.
    pub fn with<D>(self, admin: D) -> TestHub<D> {
        TestHub { hub: self.hub, shutdown: self.shutdown, dir: self.dir, base: self.base, password: self.password, admin }
    }

    pub fn hub(&self) -> &Hub {
        self.hub.as_ref().expect("hub running")
    }

    /// The hub's data directory (also a scratch place for the test).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Cancels the hub and waits (at most 10 s) until it has stopped.
    pub async fn stop(mut self) -> Result<()> {
        self.shutdown.cancel();
        if let Some(hub) = self.hub.take() {
            tokio::time::timeout(Duration::from_secs(10), hub.wait()).await?;
        }
        Ok(())
    }
}

/// A client with its own cookie jar (so a login sticks), giving up after `timeout`.
#[allow(dead_code)]
pub fn cookie_client(timeout: Duration) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder().cookie_store(true).timeout(timeout).build()?)
}

/// `method path` with an optional JSON body: the status and the answer, JSON if it parses,
/// else its text as a JSON string (so a test can show what came back either way).
#[allow(dead_code)]
pub async fn send(http: &reqwest::Client, base: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<(StatusCode, Value)> {
    let mut request = http.request(method, format!("{base}{path}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status();
    let text = response.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
}
