//! README command 1, in the test suite: the full local demo (hub, one enrolled appliance, the
//! simulated carrier, simulated agents and phones, the demo project) starts on free loopback
//! ports, its logins work, calls connect, agents save results, HQ shows them, and the task
//! plays the hold music HQ uploaded.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use demo::setup::Api;
use serde_json::Value;
use tests::{free_tcp_port, free_udp_port, wait_for_some};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_end_to_end_and_hq_sees_its_results() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("warn").try_init();
    let dir = tempfile::tempdir()?;
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut config = demo::DemoConfig::on_loopback(dir.path().to_path_buf());
    config.hub_http = SocketAddr::new(lo, free_tcp_port());
    config.hub_sync = SocketAddr::new(lo, free_udp_port());
    config.site_http = SocketAddr::new(lo, free_tcp_port());
    config.site_sip = SocketAddr::new(lo, free_udp_port());
    config.carrier_sip = SocketAddr::new(lo, free_udp_port());
    // A range of its own, away from the other scenarios' ephemeral ports.
    config.rtp_base = 41_000 + (std::process::id() % 40) as u16 * 100;
    config.n_rows = 40;
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let running = demo::run(config, shutdown.clone()).await.context("the demo starts")?;

    let logins = &running.credentials;
    let hq = Api::login(&running.hub_url, &logins.hq_admin.username, &logins.hq_admin.password).await?;
    let site = Api::login(&running.site_url, &logins.site_admin.username, &logins.site_admin.password).await?;
    Api::login(&running.site_url, &logins.browser_agent.username, &logins.browser_agent.password)
        .await
        .context("the printed agent login works")?;

    let task: Value = site.get(&format!("/api/tasks/{}", running.batch_id)).await?;
    assert!(task.to_string().contains("\"hold_music\":1"), "the demo task plays HQ's hold music: {task}");
    let notices: Vec<Value> = site.get("/api/announcements").await?;
    assert!(!notices.is_empty(), "HQ's demo notice is at the site");

    let (connected, records) = wait_for_some(Duration::from_secs(120), || async {
        let batches: Vec<Value> = hq.get("/api/batches").await.ok()?;
        let batch = batches.first()?;
        let connected = batch["agent_connected"].as_u64()?;
        let records: Vec<Value> = hq.get(&format!("/api/batches/{}/records", batch["id"].as_u64()?)).await.ok()?;
        (connected >= 2 && records.len() >= 2).then_some((connected, records.len()))
    })
    .await
    .context("HQ shows the demo's connected calls and saved records")?;
    eprintln!("demo: HQ shows {connected} calls put through to agents and {records} business records");
    Ok(())
}
