//! Popup latency benchmark: from the carrier's 200 OK reaching the appliance to the popup
//! event arriving at the agent's server-sent-event client, at N concurrent calls.
//!
//! The appliance runs in its own tokio runtime (its own threads) exactly as `appliance::start`
//! runs it in production: SQLite store, dialer driver, SIP lines, web server. Around it, on
//! loopback, this program plays:
//! - the carrier (`sip-peers`' simulated peer): answers every INVITE at once with 200 OK (the
//!   instant it has sent the 200 is the start of the measurement; on loopback it reaches the
//!   box within microseconds) and hangs up with BYE after the talk time;
//! - N agent phones (the same peers): digest REGISTER as their extension, answer every
//!   INVITE at once;
//! - N agent desks: logged in over HTTP, 可回接, each reading `GET /api/agent/events`; the
//!   instant a `popup` event's bytes arrive is the end of the measurement. Each desk then
//!   saves the (empty) business record, which ends its after-call work, so the dialer calls
//!   again for the next round.
//!
//! The predictive task runs at ratio 1:1 with max concurrency N, so each round puts N calls
//! through at once. Numbers are unmasked in this project so a popup can be matched to the
//! call that caused it.
//!
//! ```sh
//! cargo run --release -p appliance --example popup_latency -- --calls 10,100 --rounds 5
//! ```

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use appliance::ApplianceConfig;
use appliance::store::{Role, Store};
use serde_json::{Value, json};
use sip_peers::{CallBehaviour, OnEvent, PeerConfig, PeerEvent, PeerSocket, RegisterConfig};
use sync_protocol::{BatchChunk, BatchManifest, CustomerRow, DownEntry, DownEvent, FieldDef, FieldKind, ProjectDef, rows_hash};
use tokio_util::sync::CancellationToken;

const SIP_PASSWORD: &str = "bench-secret";
const AGENT_PASSWORD: &str = "bench-agent";
const TALK: Duration = Duration::from_millis(800);

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_string())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let levels: Vec<u32> = arg(&args, "--calls", "10,100")
        .split(',')
        .map(|n| n.trim().parse().with_context(|| format!("--calls: {n:?} is not a number")))
        .collect::<Result<_, _>>()?;
    let rounds: u32 = arg(&args, "--rounds", "5").parse().context("--rounds")?;
    println!("popup latency: carrier 200 OK sent -> popup event received by the agent's SSE client");
    for n_calls in levels {
        let mut samples = run(n_calls, rounds).await?;
        samples.sort();
        let pick = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
        println!(
            "{n_calls:>4} concurrent calls: {:>4} popups  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
            samples.len(),
            pick(0.50).as_secs_f64() * 1e3,
            pick(0.99).as_secs_f64() * 1e3,
            samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        );
    }
    Ok(())
}

fn project() -> ProjectDef {
    ProjectDef {
        project_id: 1,
        category: "bench".into(),
        name: "popup latency".into(),
        script: "您好".into(),
        hide_middle_digits: false,
        customer_fields: vec![FieldDef {
            key: "name".into(),
            title: "姓名".into(),
            kind: FieldKind::Text,
            required: false,
            read_only: false,
            hidden: false,
        }],
        record_fields: Vec::new(),
        params: Default::default(),
        version: 1,
    }
}

fn free_udp_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The box's store before it starts: N extensions and agents (so the lines know them), the
/// project and a batch with rows enough for every round.
fn seed_store(dir: &Path, n_calls: u32, rounds: u32) -> anyhow::Result<()> {
    let n_rows = u64::from(n_calls * (rounds + 2));
    // Extensions and agents exist before the box starts, so the lines know them.
    let store = Store::open(dir)?;
    for idx in 0..n_calls {
        let extension = format!("{}", 2000 + idx);
        store.create_extension(&extension, SIP_PASSWORD)?;
        store.create_user(&format!("a{idx}"), AGENT_PASSWORD, Role::Agent, "bench", Some(&extension))?;
    }
    let rows: Vec<CustomerRow> = (0..n_rows)
        .map(|i| CustomerRow { row_id: i + 1, phone: format!("1390{:07}", i), fields: vec![("name".into(), format!("c{i}"))] })
        .collect();
    let events = vec![
        DownEvent::Project(project()),
        DownEvent::BatchChunk(BatchChunk { batch_id: 1, chunk_idx: 0, rows: rows.clone() }),
        DownEvent::BatchManifest(BatchManifest {
            batch_id: 1,
            project_id: 1,
            name: "bench".into(),
            priority: 50,
            imported_at: 1,
            n_rows,
            n_chunks: 1,
            rows_hash: rows_hash(&rows),
        }),
    ];
    for (idx, event) in events.into_iter().enumerate() {
        store.apply_down_entry(&DownEntry { seq: idx as u64 + 1, event })?;
    }
    Ok(())
}

/// One level: N agents, `rounds` × N calls; returns each popup's latency.
async fn run(n_calls: u32, rounds: u32) -> anyhow::Result<Vec<Duration>> {
    let dir = tempfile::tempdir()?;
    let admin_password = appliance::init_admin(dir.path(), "admin")?;
    seed_store(dir.path(), n_calls, rounds)?;

    // The appliance in its own runtime, as in production.
    let carrier_port = free_udp_port()?;
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut config = ApplianceConfig::on_loopback(dir.path(), SocketAddr::new(localhost, carrier_port), n_calls);
    config.trunks[0].name = "bench".into();
    let shutdown = CancellationToken::new();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let box_shutdown = shutdown.clone();
    let box_thread = std::thread::spawn(move || -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        runtime.block_on(async move {
            let mut running = appliance::start(config, box_shutdown.clone()).await?;
            let _ = ready_tx.send((running.http_addr, running.sip_addr));
            box_shutdown.cancelled().await;
            running.wait().await;
            Ok(())
        })
    });
    let (http_addr, box_sip) = ready_rx.recv_timeout(Duration::from_secs(30)).context("the appliance did not start")?;
    let url = format!("http://{http_addr}");

    let answered: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let popups: Arc<Mutex<Vec<(String, Instant, String)>>> = Arc::default();
    tokio::spawn(carrier(carrier_port, answered.clone()));
    let offered: Arc<Mutex<HashMap<String, Vec<Instant>>>> = Arc::default();
    for idx in 0..n_calls {
        tokio::spawn(phone(box_sip, format!("{}", 2000 + idx), offered.clone()));
    }

    // The desks.
    let mut desks = Vec::new();
    for idx in 0..n_calls {
        let client = reqwest::Client::builder().cookie_store(true).build()?;
        post(&client, format!("{url}/api/login"), json!({"username": format!("a{idx}"), "password": AGENT_PASSWORD})).await?;
        let events = client.get(format!("{url}/api/agent/events")).send().await?;
        post(&client, format!("{url}/api/agent/state"), json!({"state": "available"})).await?;
        desks.push(tokio::spawn(desk(client, url.clone(), events, popups.clone(), format!("{}", 2000 + idx))));
    }
    // Every phone registered before dialing starts.
    let admin = reqwest::Client::builder().cookie_store(true).build()?;
    post(&admin, format!("{url}/api/login"), json!({"username": "admin", "password": admin_password})).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status: Value = admin.get(format!("{url}/api/status")).send().await?.json().await?;
        let registered = status["lines"]["registered_extensions"].as_array().map(Vec::len).unwrap_or(0);
        if registered == n_calls as usize {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {registered} of {n_calls} phones registered");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    post(
        &admin,
        format!("{url}/api/tasks/1/start"),
        json!({"ratio": 1, "max_concurrency": n_calls, "ring_seconds": 30, "dial_mode": "predictive", "cool_down": 0}),
    )
    .await?;

    let wanted = (n_calls * rounds) as usize;
    let deadline = Instant::now() + Duration::from_secs(60 + u64::from(rounds) * 10);
    while popups.lock().map(|p| p.len()).unwrap_or(0) < wanted {
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    for desk in desks {
        desk.abort();
    }
    let _ = tokio::task::spawn_blocking(move || box_thread.join()).await;

    let answered = answered.lock().map(|a| a.clone()).unwrap_or_default();
    let popups = popups.lock().map(|p| p.clone()).unwrap_or_default();
    let offered = offered.lock().map(|o| o.clone()).unwrap_or_default();
    let mut samples = Vec::new();
    // Where the time goes: 200 OK → the agent's phone offered the call, and the phone's
    // INVITE → the popup (answer, bridge, popup, SSE). The nth popup of a desk belongs to
    // the nth call its phone was offered.
    let (mut to_phone, mut to_popup) = (Vec::new(), Vec::new());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (phone, at, extension) in popups.iter().take(wanted) {
        let Some(sent) = answered.get(phone) else { bail!("popup for {phone}, which the carrier never answered") };
        samples.push(at.saturating_duration_since(*sent));
        let nth = seen.entry(extension.clone()).or_insert(0);
        if let Some(invite) = offered.get(extension).and_then(|list| list.get(*nth)) {
            to_phone.push(invite.saturating_duration_since(*sent));
            to_popup.push(at.saturating_duration_since(*invite));
        }
        *nth += 1;
    }
    for (name, mut list) in [("200 OK -> phone offered", to_phone), ("phone offered -> popup", to_popup)] {
        list.sort();
        if let (Some(mid), Some(last)) = (list.get(list.len() / 2), list.get(list.len() * 99 / 100)) {
            println!("      {name:<24} p50 {:>7.2} ms  p99 {:>7.2} ms", mid.as_secs_f64() * 1e3, last.as_secs_f64() * 1e3);
        }
    }
    if samples.len() < wanted {
        bail!("only {} of {wanted} popups arrived at {n_calls} concurrent calls", samples.len());
    }
    Ok(samples)
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> anyhow::Result<Value> {
    let response = client.post(&url).json(&body).send().await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("POST {url}: {status} {body}");
    }
    Ok(body)
}

/// An agent's desk: reads popups, notes when each arrived, saves its record.
async fn desk(
    client: reqwest::Client,
    url: String,
    mut events: reqwest::Response,
    popups: Arc<Mutex<Vec<(String, Instant, String)>>>,
    extension: String,
) {
    let mut buffer = String::new();
    while let Ok(Some(chunk)) = events.chunk().await {
        let arrived = Instant::now();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            if !block.starts_with("event: popup") {
                continue;
            }
            let data: String = block.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim_start).collect();
            let Ok(popup) = serde_json::from_str::<Value>(&data) else { continue };
            let phone = popup["phone"].as_str().unwrap_or_default().to_string();
            if let Ok(mut list) = popups.lock() {
                list.push((phone, arrived, extension.clone()));
            }
            let attempt_id = popup["attempt_id"].as_u64().unwrap_or_default();
            let _ = post(&client, format!("{url}/api/attempts/{attempt_id}/record"), json!({"values": {}})).await;
        }
    }
}

/// The carrier: 200 OK at once (noting the instant it went out, per number; a retransmitted
/// INVITE keeps the first), BYE after the talk time.
async fn carrier(port: u16, answered: Arc<Mutex<HashMap<String, Instant>>>) -> anyhow::Result<()> {
    let socket = PeerSocket::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let peer = PeerConfig {
        user: "carrier".into(),
        calls: CallBehaviour { talk: Some((TALK, TALK)), ..CallBehaviour::at_once() },
        register: None,
    };
    let hooks = OnEvent(move |at: Instant, event: &PeerEvent| {
        if let PeerEvent::Answered { number, .. } = event
            && let Ok(mut map) = answered.lock()
        {
            map.entry(number.clone()).or_insert(at);
        }
    });
    socket.run(peer, Arc::new(hooks), CancellationToken::new()).await?;
    Ok(())
}

/// An agent's phone: registers with digest, answers every call at once (noting the instant
/// each was offered).
async fn phone(box_sip: SocketAddr, extension: String, offered: Arc<Mutex<HashMap<String, Vec<Instant>>>>) -> anyhow::Result<()> {
    let socket = PeerSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let peer = PeerConfig {
        user: extension.clone(),
        calls: CallBehaviour::at_once(),
        register: Some(RegisterConfig {
            registrar: box_sip,
            password: SIP_PASSWORD.into(),
            expires: Duration::from_secs(3600),
            retry: Duration::from_secs(1),
        }),
    };
    let hooks = OnEvent(move |at: Instant, event: &PeerEvent| {
        if let PeerEvent::Offered { .. } = event
            && let Ok(mut map) = offered.lock()
        {
            map.entry(extension.clone()).or_default().push(at);
        }
    });
    socket.run(peer, Arc::new(hooks), CancellationToken::new()).await?;
    Ok(())
}
