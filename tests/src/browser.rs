//! A real headless browser for the web UI scenarios: Debian's Chromium driven through
//! chromedriver, or Debian's Firefox ESR driven through geckodriver, with fantoccini.
//!
//! [`Browser::start`] starts the browser `OUTPOST_BROWSER` names (`firefox`, or Chromium by
//! default); [`Browser::start_with`] takes the [`Engine`] explicitly. It runs the driver
//! (`chromedriver --port=N` / `geckodriver --port N`) in its own process group, waits for it
//! to listen, and opens a session with a fresh profile in a temporary folder, the window at
//! 1366×768 (the consoles' target screen). [`Browser::close`] ends the session (chromedriver then quits Chromium); dropping a
//! [`Browser`] without closing kills chromedriver's whole process group, Chromium included,
//! so a panicking test leaves no browser behind.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, anyhow};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::ports::free_tcp_port;
use crate::tail;
use crate::wait::wait_for_some;

/// Debian's `chromium` package.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's `chromium-driver` package.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Debian's `firefox-esr` package.
pub const FIREFOX: &str = "/usr/bin/firefox-esr";

/// The consoles' target screen.
pub const WINDOW: (u32, u32) = (1366, 768);

/// Which browser a [`Browser`] drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Chromium,
    Firefox,
}

impl Engine {
    /// The engine `OUTPOST_BROWSER` names (`firefox`; anything else, or unset, is Chromium).
    pub fn from_env() -> Engine {
        match std::env::var("OUTPOST_BROWSER").as_deref() {
            Ok("firefox") => Engine::Firefox,
            _ => Engine::Chromium,
        }
    }

    /// The WebDriver program: chromedriver from Debian, geckodriver from the PATH or from
    /// `cargo install geckodriver` (~/.cargo/bin).
    fn driver(self) -> PathBuf {
        match self {
            Engine::Chromium => PathBuf::from(CHROMEDRIVER),
            Engine::Firefox => {
                let on_path = std::env::var_os("PATH")
                    .into_iter()
                    .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
                    .map(|dir| dir.join("geckodriver"))
                    .find(|candidate| candidate.is_file());
                let cargo_bin = std::env::var_os("HOME")
                    .map(|home| PathBuf::from(home).join(".cargo/bin/geckodriver"));
                on_path.or(cargo_bin).unwrap_or_else(|| PathBuf::from("geckodriver"))
            }
        }
    }
}

/// How long chromedriver and Chromium get to come up; the first start on a cold machine
/// is the slow one.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A headless Chromium session. Cheap to use from one test; not shared between tests.
pub struct Browser {
    client: Client,
    engine: Engine,
    chromedriver: Child,
    profile_dir: TempDir,
    port: u16,
}

impl Browser {
    /// Starts the browser `OUTPOST_BROWSER` names (Chromium unless it says `firefox`).
    pub async fn start() -> anyhow::Result<Browser> {
        Browser::start_with(Engine::from_env()).await
    }

    /// Starts the driver of `engine` and its headless browser with a fresh profile.
    pub async fn start_with(engine: Engine) -> anyhow::Result<Browser> {
        // fantoccini's HTTP client is built on rustls even for plain http:// and rustls
        // needs a process-wide crypto provider; an Err means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let profile_dir = tempfile::Builder::new()
            .prefix("chromium-profile-")
            .tempdir()
            .context("cannot create a temporary Chromium profile folder")?;
        let port = free_tcp_port();
        let log_path = profile_dir.path().join("driver.log");
        let driver = engine.driver();
        let mut command = Command::new(&driver);
        command.stdin(Stdio::null());
        match engine {
            Engine::Chromium => {
                command
                    .arg(format!("--port={port}"))
                    .arg(format!("--log-path={}", log_path.display()))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
            }
            Engine::Firefox => {
                // geckodriver logs to its standard output.
                let log_file = std::fs::File::create(&log_path).context("cannot create the driver's log")?;
                let copy = log_file.try_clone().context("cannot share the driver's log")?;
                command.arg("--port").arg(port.to_string()).stdout(Stdio::from(log_file)).stderr(Stdio::from(copy));
            }
        }
        let mut chromedriver = command
            // Its own process group, so Drop can kill chromedriver and Chromium together.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start {}; install it with scripts/install-test-deps.sh \
                     (Debian packages chromium, chromium-driver and firefox-esr; geckodriver \
                     through cargo install)",
                    driver.display()
                )
            })?;

        let capabilities = match engine {
            Engine::Chromium => chromium_capabilities(profile_dir.path()),
            Engine::Firefox => firefox_capabilities(),
        };
        let webdriver_url = format!("http://127.0.0.1:{port}");
        // chromedriver takes a moment to listen; connecting is the readiness probe. Each
        // attempt's error is kept so a final failure says what went wrong.
        let last_error = RefCell::new(String::from("chromedriver never answered"));
        let connected = wait_for_some(START_TIMEOUT, || {
            let capabilities = capabilities.clone();
            let webdriver_url = webdriver_url.clone();
            let last_error = &last_error;
            async move {
                let builder = ClientBuilder::rustls();
                let mut builder = match builder {
                    Ok(builder) => builder,
                    Err(error) => {
                        *last_error.borrow_mut() =
                            format!("cannot set up the WebDriver HTTP client: {error}");
                        return None;
                    }
                };
                match builder
                    .capabilities(capabilities)
                    .connect(&webdriver_url)
                    .await
                {
                    Ok(client) => Some(client),
                    Err(error) => {
                        *last_error.borrow_mut() = error.to_string();
                        None
                    }
                }
            }
        })
        .await;
        let client = match connected {
            Ok(client) => client,
            Err(timed_out) => {
                let exited = chromedriver.try_wait().ok().flatten();
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                kill_process_group(&chromedriver);
                return Err(anyhow!(
                    "no Chromium session from chromedriver on port {port} ({timed_out}); last \
                     error: {}; chromedriver exit: {exited:?}; log tail:\n{}",
                    last_error.borrow(),
                    tail(&log, 3000)
                ));
            }
        };
        // Both engines at the same size (Chromium's flag already says so; Firefox needs asking).
        if engine == Engine::Firefox {
            client.set_window_size(WINDOW.0, WINDOW.1).await.context("cannot size the Firefox window")?;
        }
        Ok(Browser {
            client,
            engine,
            chromedriver,
            profile_dir,
            port,
        })
    }

    /// The fantoccini client, for anything the helpers here do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Which browser this is.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The port chromedriver listens on.
    pub fn webdriver_port(&self) -> u16 {
        self.port
    }

    /// chromedriver's process id, which is also the id of the process group that holds
    /// Chromium; `None` once closed.
    pub fn chromedriver_pid(&self) -> Option<u32> {
        self.chromedriver.id()
    }

    /// The Chromium profile folder (removed when the browser is dropped).
    pub fn profile_dir(&self) -> &Path {
        self.profile_dir.path()
    }

    /// Opens `url` and waits for the page load to finish.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("browser cannot open {url}"))
    }

    /// Waits at most `timeout` for an element matching the CSS selector `css` to exist.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> anyhow::Result<Element> {
        let found = wait_for_some(timeout, || async move {
            self.client.find(Locator::Css(css)).await.ok()
        })
        .await;
        match found {
            Ok(element) => Ok(element),
            Err(timed_out) => {
                let url = match self.client.current_url().await {
                    Ok(url) => url.to_string(),
                    Err(error) => format!("(unknown: {error})"),
                };
                Err(anyhow!("no element matches `{css}` on {url}: {timed_out}"))
            }
        }
    }

    /// Saves a PNG screenshot of the visible page to `path` (parent folders are created).
    pub async fn screenshot(&self, path: impl AsRef<Path>) -> anyhow::Result<PathBuf> {
        let path = path.as_ref();
        let png = self
            .client
            .screenshot()
            .await
            .context("browser cannot take a screenshot")?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(path, png)
            .with_context(|| format!("cannot write screenshot {}", path.display()))?;
        Ok(path.to_path_buf())
    }

    /// Ends the session (chromedriver quits Chromium), then stops chromedriver.
    pub async fn close(mut self) -> anyhow::Result<()> {
        let closed = self
            .client
            .clone()
            .close()
            .await
            .context("cannot end the browser session");
        kill_process_group(&self.chromedriver);
        let _ = self.chromedriver.wait().await;
        closed
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Killing only chromedriver would orphan Chromium (it is chromedriver's child and
        // does not notice its parent dying), so the whole group goes. After close() the
        // group is already gone and this does nothing.
        kill_process_group(&self.chromedriver);
    }
}

/// The session request: Debian's Chromium, headless, with nothing that calls home.
fn chromium_capabilities(profile_dir: &Path) -> serde_json::Map<String, serde_json::Value> {
    let args = [
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-quic".to_owned(),
        "--no-first-run".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        // A fixed window size keeps screenshots comparable between runs.
        format!("--window-size={},{}", WINDOW.0, WINDOW.1),
        format!("--user-data-dir={}", profile_dir.display()),
    ];
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
    });
    match capabilities {
        serde_json::Value::Object(map) => map,
        // json!({...}) always builds an object.
        _ => serde_json::Map::new(),
    }
}

/// The session request: Debian's Firefox ESR, headless (geckodriver makes a fresh profile).
fn firefox_capabilities() -> serde_json::Map<String, serde_json::Value> {
    let capabilities = json!({
        "browserName": "firefox",
        "moz:firefoxOptions": {
            "binary": FIREFOX,
            "args": ["-headless"],
            // Nothing that calls home, and no first-run pages.
            "prefs": {
                "app.update.enabled": false,
                "browser.shell.checkDefaultBrowser": false,
                "datareporting.policy.dataSubmissionEnabled": false,
                "toolkit.telemetry.enabled": false,
                "intl.accept_languages": "zh-CN, zh, en"
            }
        },
    });
    match capabilities {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// Sends SIGKILL to the process group led by `child` (if it is still running).
fn kill_process_group(child: &Child) {
    let Some(pid) = child.id() else {
        // Already reaped: the group leader is gone and its id may be reused.
        return;
    };
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) with a negative pid signals the process group we created with
    // process_group(0) at spawn time; it touches no memory of ours.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}
