//! HQ's voice library and announcements reach the site and are used there, through the real
//! hub and the real QUIC link: HQ uploads a hold-music WAV (语音库) and posts an announcement
//! (公告) in its JSON API; the appliance receives the file's bytes and the notice; the site
//! admin picks the file as the task's hold music (等待音乐); a customer answered while no
//! agent can take the call hears exactly that file on the RTP stream a SIPp carrier reads.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, ensure};
use demo::setup::{Api, dispatch_demo_list, enroll_site};
use serde_json::{Value, json};
use tests::{Sipp, free_udp_port, wait_for_some};
use tokio_util::sync::CancellationToken;

/// A µ-law WAV of `n` samples of `byte`: recognisable on the wire, unchanged by the codec.
fn ulaw_wav(byte: u8, n: usize) -> Vec<u8> {
    hardware::ulaw_wav(&vec![byte; n])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hq_hold_music_plays_to_a_waiting_customer_and_hq_notices_show_at_the_site() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info,quinn=warn,rustls=warn")
        .try_init();
    let dir = tempfile::tempdir()?;
    let (hub_dir, site_dir) = (dir.path().join("hub"), dir.path().join("site"));
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();

    let (hub, hq_password) = tests::start_hub(&hub_dir, shutdown.clone()).await?;
    let hub_url = format!("http://{}", hub.http_addr);
    let hq = Api::login(&hub_url, "admin", &hq_password).await?;
    let site_id = enroll_site(&hq, "等待音乐职场", &site_dir, hub.sync_addr).await?;
    dispatch_demo_list(&hq, "宽带类", &dir.path().join("名单.xlsx"), 1, "等待音乐批次", site_id).await?;

    // HQ's voice library and a notice, through the same API the console pages use.
    let hq_client = reqwest::Client::builder().cookie_store(true).timeout(Duration::from_secs(30)).build()?;
    let login = hq_client.post(format!("{hub_url}/api/login")).json(&json!({"username": "admin", "password": hq_password})).send().await?;
    ensure!(login.status().is_success(), "HQ login: {}", login.status());
    let wav = ulaw_wav(0x55, 8000);
    let form = reqwest::multipart::Form::new()
        .text("name", "春节等待音乐")
        .text("kind", "hold_music")
        .part("file", reqwest::multipart::Part::bytes(wav.clone()).file_name("spring.wav").mime_str("audio/wav")?);
    let uploaded = hq_client.post(format!("{hub_url}/api/voice-files")).multipart(form).send().await?;
    ensure!(uploaded.status().is_success(), "voice upload: {} {}", uploaded.status(), uploaded.text().await?);
    hq.post::<Value>("/api/announcements", &json!({"title": "春节排班通知", "body": "初一至初三每天只开早班。"})).await?;

    let carrier_port = free_udp_port();
    let site_password = appliance::init_admin(&site_dir, "siteadmin")?;
    let appliance = appliance::start(
        appliance::ApplianceConfig::on_loopback(&site_dir, SocketAddr::new(localhost, carrier_port), 2),
        shutdown.clone(),
    )
    .await?;
    let site_url = format!("http://{}", appliance.http_addr);
    let site_admin = Api::login(&site_url, "siteadmin", &site_password).await?;

    // The file's bytes and the notice arrive over the link.
    let voice_id = wait_for_some(Duration::from_secs(30), || async {
        let files: Vec<Value> = site_admin.get("/api/voice-files").await.ok()?;
        let file = files.into_iter().find(|file| file["name"] == "春节等待音乐")?;
        (file["held"] == json!(true)).then(|| file["voice_id"].as_u64()).flatten()
    })
    .await
    .context("HQ's hold music reaches the site, bytes and all")?;
    let notices = wait_for_some(Duration::from_secs(30), || async {
        let notices: Vec<Value> = site_admin.get("/api/announcements").await.ok()?;
        (!notices.is_empty()).then_some(notices)
    })
    .await
    .context("HQ's announcement reaches the site")?;
    ensure!(notices[0]["title"] == "春节排班通知" && notices[0]["body"] == "初一至初三每天只开早班。", "{notices:?}");
    let batch_id = wait_for_some(Duration::from_secs(30), || async {
        let tasks: Vec<Value> = site_admin.get("/api/tasks").await.ok()?;
        tasks.first().and_then(|task| task["batch_id"].as_u64())
    })
    .await
    .context("the batch reaches the site")?;

    // An agent who is 可回接 but whose phone is not registered: the dialer dials for them, the
    // call cannot be put through, and the answered customer waits in the queue.
    site_admin.post::<Value>("/api/extensions", &json!({"extension": "8201", "password": "phone-8201"})).await?;
    site_admin
        .post::<Value>("/api/agents", &json!({"username": "waiting-agent", "password": "agent-8201", "name": "小孙", "extension": "8201"}))
        .await?;
    let agent = Api::login(&site_url, "waiting-agent", "agent-8201").await?;
    agent.post::<Value>("/api/agent/state", &json!({"state": "available"})).await?;

    let customer_rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let carrier = Sipp::scenario("carrier_answer_listen.xml")
        .local_port(carrier_port)
        .calls(1)
        .media_on_loopback()
        .arg("-key")
        .arg("rtp_port")
        .arg(customer_rtp.local_addr()?.port().to_string())
        .timeout(Duration::from_secs(90))
        .spawn()?;
    site_admin
        .post::<Value>(
            &format!("/api/tasks/{batch_id}/start"),
            &json!({"ratio": 1, "max_concurrency": 1, "ring_seconds": 20, "dial_mode": "predictive",
                    "queue_timeout": 20, "hold_music": voice_id}),
        )
        .await?;
    let detail: Value = site_admin.get(&format!("/api/tasks/{batch_id}")).await?;
    ensure!(detail.to_string().contains(&format!("\"hold_music\":{voice_id}")), "the task keeps its hold music: {detail}");

    // What the customer hears: 20 ms packets of the file's own bytes.
    let mut buffer = vec![0u8; 2048];
    let mut heard = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while heard < 10 {
        let (n_bytes, _) = tokio::time::timeout_at(deadline, customer_rtp.recv_from(&mut buffer))
            .await
            .context("the waiting customer hears the task's hold music")??;
        let Ok(packet) = rtp_rs::RtpReader::new(&buffer[..n_bytes]) else { continue };
        if packet.payload().len() == 160 && packet.payload().iter().all(|byte| *byte == 0x55) {
            heard += 1;
        }
    }
    site_admin.post::<Value>(&format!("/api/tasks/{batch_id}/stop"), &json!({})).await?;
    drop(carrier);
    Ok(())
}
