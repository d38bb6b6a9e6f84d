//! The full local demo: an HQ hub, one enrolled site appliance, a simulated carrier and
//! simulated agents, all on loopback, seeded with a demo project and batch.
//!
//! - [`run`] starts the hub, creates (or finds) the demo's HQ admin, site, project and batch
//!   through the hub's JSON API, enrolls the appliance with a one-time code, starts it with a
//!   trunk toward the simulated carrier ([`carrier`]), provisions agents and their
//!   extensions, starts a simulated phone ([`phone`]) and a simulated desk ([`agent`]) per
//!   agent, and starts the task.
//! - Every part talks real protocols: SIP and RTP over UDP, QUIC with mutual TLS between hub
//!   and appliance, HTTP and SSE for the desks. Nothing is shared in memory between them.
//! - Logins are generated on the first run and kept in `credentials.json` in the data
//!   directory (mode 0600), so a second run on the same directory resumes the same demo.

pub mod agent;
pub mod carrier;
mod peer;
pub mod phone;
pub mod setup;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::setup::Api;

/// Ports and sizes of a demo run.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub data_dir: PathBuf,
    pub hub_http: SocketAddr,
    pub hub_sync: SocketAddr,
    pub site_http: SocketAddr,
    pub site_sip: SocketAddr,
    pub carrier_sip: SocketAddr,
    /// First RTP port of the appliance (it takes 2,000 from there).
    pub rtp_base: u16,
    pub n_agents: u32,
    pub n_rows: u32,
    /// Share of calls the carrier answers (0.0-1.0).
    pub answer_share: f64,
    /// Predictive ratio and max concurrency of the demo task.
    pub ratio: u32,
    pub max_concurrency: u32,
}

impl DemoConfig {
    pub fn on_loopback(data_dir: PathBuf) -> DemoConfig {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        DemoConfig {
            data_dir,
            hub_http: SocketAddr::new(lo, 8080),
            hub_sync: SocketAddr::new(lo, 4433),
            site_http: SocketAddr::new(lo, 8090),
            site_sip: SocketAddr::new(lo, 5060),
            carrier_sip: SocketAddr::new(lo, 5070),
            rtp_base: 30000,
            n_agents: 3,
            n_rows: 300,
            answer_share: 0.5,
            ratio: 2,
            max_concurrency: 6,
        }
    }
}

impl DemoConfig {
    /// Moves every listening port up by `offset`.
    pub fn offset_ports(&mut self, offset: u16) -> anyhow::Result<()> {
        let shift = |addr: &mut SocketAddr| -> anyhow::Result<()> {
            let port = addr
                .port()
                .checked_add(offset)
                .context("--port-offset pushes a port past 65535")?;
            addr.set_port(port);
            Ok(())
        };
        shift(&mut self.hub_http)?;
        shift(&mut self.hub_sync)?;
        shift(&mut self.site_http)?;
        shift(&mut self.site_sip)?;
        shift(&mut self.carrier_sip)?;
        self.rtp_base = self
            .rtp_base
            .checked_add(offset)
            .filter(|base| base.checked_add(2000).is_some())
            .context("--port-offset pushes the RTP range past 65535")?;
        Ok(())
    }
}

/// Logins generated on the first run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub hq_admin: Login,
    pub site_admin: Login,
    /// The agents run by the demo itself.
    pub sim_agents: Vec<AgentLogin>,
    /// One more agent, for a person in a browser.
    pub browser_agent: AgentLogin,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Login {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentLogin {
    pub username: String,
    pub password: String,
    pub extension: String,
    pub sip_password: String,
}

/// A running demo.
pub struct Demo {
    pub hub_url: String,
    pub site_url: String,
    pub credentials: Credentials,
    pub batch_id: u64,
    tasks: JoinSet<()>,
    hub: hq_hub::Hub,
    site: appliance::Appliance,
}

impl Demo {
    /// Waits until every part has stopped (after the shutdown token is cancelled).
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
        self.site.wait().await;
        self.hub.wait().await;
    }
}

/// Starts every part and seeds the demo; returns once the task is dialing.
pub async fn run(config: DemoConfig, shutdown: CancellationToken) -> anyhow::Result<Demo> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "creating the demo data directory {}",
            config.data_dir.display()
        )
    })?;
    let hub_dir = config.data_dir.join("hub");
    let site_dir = config.data_dir.join("site");
    let credentials_path = config.data_dir.join("credentials.json");
    let first_run = !credentials_path.exists();
    let credentials = credentials(&config, &hub_dir, &site_dir, &credentials_path, first_run)?;

    let hub = hq_hub::start(
        hq_hub::HubConfig {
            data_dir: hub_dir,
            http_bind: config.hub_http,
            sync_bind: config.hub_sync,
            time_zone: Default::default(),
        },
        shutdown.clone(),
    )
    .await
    .context("starting the hub")?;
    let hub_url = format!("http://{}", hub.http_addr);
    let hq = Api::login(
        &hub_url,
        &credentials.hq_admin.username,
        &credentials.hq_admin.password,
    )
    .await?;

    if first_run {
        seed_hq(&hq, &config, &site_dir, hub.sync_addr).await?;
    }

    let mut tasks = JoinSet::new();
    tasks.spawn(log_errors(
        "carrier",
        carrier::run_carrier(
            carrier::CarrierConfig {
                bind: config.carrier_sip,
                answer_share: config.answer_share,
                ..carrier::CarrierConfig::default()
            },
            shutdown.clone(),
        ),
    ));

    let site = start_site(&config, site_dir, &shutdown).await?;
    let site_url = format!("http://{}", site.http_addr);
    let site_api = Api::login(
        &site_url,
        &credentials.site_admin.username,
        &credentials.site_admin.password,
    )
    .await?;

    let all_agents: Vec<&AgentLogin> = credentials
        .sim_agents
        .iter()
        .chain(std::iter::once(&credentials.browser_agent))
        .collect();
    if first_run {
        register_agents(&site_api, &all_agents).await?;
    }
    spawn_people(&mut tasks, &credentials, &all_agents, site.sip_addr, &site_url, &shutdown);
    let batch_id = start_demo_task(&site_api, &config).await?;

    Ok(Demo {
        hub_url,
        site_url,
        credentials,
        batch_id,
        tasks,
        hub,
        site,
    })
}

/// The demo's logins: made (and the hub's and the site's first admins created) on the first
/// run and kept in `credentials.json`, read back on later runs.
fn credentials(
    config: &DemoConfig,
    hub_dir: &std::path::Path,
    site_dir: &std::path::Path,
    credentials_path: &std::path::Path,
    first_run: bool,
) -> anyhow::Result<Credentials> {
    let credentials = if first_run {
        let credentials = Credentials {
            hq_admin: Login {
                username: "admin".into(),
                password: hq_hub::init_admin(hub_dir, "admin")?,
            },
            site_admin: Login {
                username: "siteadmin".into(),
                password: appliance::init_admin(site_dir, "siteadmin")?,
            },
            sim_agents: (1..=config.n_agents)
                .map(|i| AgentLogin {
                    username: format!("agent{i}"),
                    password: random_secret(12),
                    extension: format!("{}", 8000 + i),
                    sip_password: random_secret(16),
                })
                .collect(),
            browser_agent: AgentLogin {
                username: "agent-web".into(),
                password: random_secret(12),
                extension: "8099".into(),
                sip_password: random_secret(16),
            },
        };
        write_private(credentials_path, &serde_json::to_vec_pretty(&credentials)?)?;
        credentials
    } else {
        let bytes = std::fs::read(&credentials_path)?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("reading {}", credentials_path.display()))?
    };

    Ok(credentials)
}

/// The appliance on the demo's loopback addresses, its one trunk the simulated carrier.
async fn start_site(
    config: &DemoConfig,
    site_dir: std::path::PathBuf,
    shutdown: &CancellationToken,
) -> anyhow::Result<appliance::Appliance> {
    appliance::start(
        appliance::ApplianceConfig {
            data_dir: site_dir,
            http_bind: config.site_http,
            sip_bind: config.site_sip,
            public_ip: config.site_sip.ip(),
            rtp_ports: (config.rtp_base, config.rtp_base + 1999),
            trunks: vec![hardware::TrunkConfig {
                name: "demo-carrier".into(),
                address: config.carrier_sip,
                domain: "carrier.demo".into(),
                username: None,
                password: None,
                channels: 30,
            }],
            hold_audio: None,
            telephony: Default::default(),
            web: Default::default(),
            stop_grace: std::time::Duration::from_secs(30),
            recordings: Default::default(),
            panel: Default::default(),
            inbound_queue: std::time::Duration::from_secs(60),
        },
        shutdown.clone(),
    )
    .await
    .context("starting the appliance")
}

/// Each agent's extension and account at the site (first run only).
async fn register_agents(site_api: &Api, all_agents: &[&AgentLogin]) -> anyhow::Result<()> {
    {
        for agent in all_agents {
            site_api
                .post::<Value>(
                    "/api/extensions",
                    &json!({"extension": agent.extension, "password": agent.sip_password}),
                )
                .await?;
            site_api
                .post::<Value>(
                    "/api/agents",
                    &json!({"username": agent.username, "password": agent.password,
                            "name": agent.username, "extension": agent.extension}),
                )
                .await?;
        }
    }

    Ok(())
}

/// The simulated people: a phone on every extension, a desk for every simulated agent.
fn spawn_people(
    tasks: &mut JoinSet<()>,
    credentials: &Credentials,
    all_agents: &[&AgentLogin],
    site_sip: std::net::SocketAddr,
    site_url: &str,
    shutdown: &CancellationToken,
) {
    // Every extension gets a phone, the browser agent's too: a person watching popups in the
    // browser needs no softphone of their own.
    for (idx, agent) in all_agents.iter().enumerate() {
        let mut phone_config =
            phone::PhoneConfig::new(site_sip, &agent.extension, &agent.sip_password);
        // Tones a little apart so a listener can tell the agents apart in recordings.
        phone_config.tone_hz = 440.0 + 40.0 * idx as f64;
        tasks.spawn(log_errors(
            "phone",
            phone::run_phone(phone_config, shutdown.clone()),
        ));
    }
    for agent in &credentials.sim_agents {
        let agent_config = agent::AgentConfig {
            appliance_url: site_url.to_string(),
            username: agent.username.clone(),
            password: agent.password.clone(),
            wrap_up: (Duration::from_secs(1), Duration::from_secs(4)),
        };
        tasks.spawn(log_errors(
            "agent",
            agent::run_agent(agent_config, shutdown.clone()),
        ));
    }

}

/// Waits for the dispatched batch (and the hold music) to reach the site and starts its task.
async fn start_demo_task(site_api: &Api, config: &DemoConfig) -> anyhow::Result<u64> {
    let batch_id = wait_for_batch(&site_api, Duration::from_secs(60)).await?;
    let hold_music = wait_for_hold_music(&site_api, Duration::from_secs(20)).await;
    if hold_music.is_none() {
        tracing::warn!("the demo hold music has not reached the site; waiting callers hear the box's tone");
    }
    site_api
        .post::<Value>(
            &format!("/api/tasks/{batch_id}/start"),
            &json!({"ratio": config.ratio, "max_concurrency": config.max_concurrency, "ring_seconds": 30,
                    "dial_mode": "predictive", "hold_music": hold_music}),
        )
        .await
        .context("starting the demo task")?;

    Ok(batch_id)
}

/// HQ's part: site, enrollment, project, call list, dispatch.
async fn seed_hq(
    hq: &Api,
    config: &DemoConfig,
    site_dir: &Path,
    hub_sync: SocketAddr,
) -> anyhow::Result<()> {
    let site_id = setup::enroll_site(hq, "福州演示职场", site_dir, hub_sync)
        .await
        .context("enrolling the demo appliance")?;
    let sheet = config.data_dir.join("演示外呼名单.xlsx");
    setup::dispatch_demo_list(hq, "套餐类", &sheet, config.n_rows, "演示批次", site_id).await?;

    // The voice library's hold music and a notice for the site's staff.
    hq.upload_bytes::<Value>(
        "/api/voice-files",
        "chime.wav",
        "audio/wav",
        setup::demo_hold_music(),
        &[("name", DEMO_HOLD_MUSIC), ("kind", "hold_music")],
    )
    .await
    .context("uploading the demo hold music")?;
    hq.post::<Value>(
        "/api/announcements",
        &json!({"title": "演示公告：本周套餐升级活动", "body": "5G畅享套餐升级本周末截止，请优先拨打意向客户。"}),
    )
    .await?;
    Ok(())
}

/// The name of the hold music the demo uploads to HQ's voice library and its task plays.
const DEMO_HOLD_MUSIC: &str = "演示等待音乐";

/// The demo hold music's id at the site once its bytes have arrived, if they do in `limit`.
async fn wait_for_hold_music(site: &Api, limit: Duration) -> Option<u64> {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if let Ok(files) = site.get::<Vec<Value>>("/api/voice-files").await
            && let Some(file) = files.iter().find(|file| file["name"] == DEMO_HOLD_MUSIC && file["held"] == json!(true))
        {
            return file["voice_id"].as_u64();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

async fn wait_for_batch(site: &Api, limit: Duration) -> anyhow::Result<u64> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let tasks: Vec<Value> = site.get("/api/tasks").await?;
        if let Some(batch_id) = tasks.first().and_then(|task| task["batch_id"].as_u64()) {
            return Ok(batch_id);
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "the demo batch did not reach the appliance within {limit:?}: is the sync link up? (see the log above)"
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn log_errors(
    what: &'static str,
    task: impl std::future::Future<Output = anyhow::Result<()>>,
) {
    if let Err(error) = task.await {
        tracing::error!("{what} stopped: {error:#}");
    }
}

fn random_secret(len: usize) -> String {
    use rand::Rng;
    // Letters and digits a person can type without confusion (no 0/O, 1/l/I).
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)?;
    Ok(())
}
