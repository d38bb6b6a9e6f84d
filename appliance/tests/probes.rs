//! The box's probes over real HTTP against a running appliance on a real SQLite store:
//! `/healthz`, `/readyz` (and its 503 when the SIP socket could not be bound) and the
//! OpenMetrics page, whose figures follow what happens on the box.

use std::path::Path;

use anyhow::Context;
use appliance::ApplianceConfig;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn config(dir: &Path) -> ApplianceConfig {
    ApplianceConfig { trunks: Vec::new(), ..ApplianceConfig::on_loopback(dir, "127.0.0.1:9".parse().expect("addr"), 1) }
}

async fn get(url: String) -> anyhow::Result<(reqwest::StatusCode, String, String)> {
    let response = reqwest::get(&url).await?;
    let status = response.status();
    let kind = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    Ok((status, kind, response.text().await?))
}

/// The value of one sample line `name` (with its labels) in an OpenMetrics page.
fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn health_readiness_and_metrics_of_a_running_box() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let password = appliance::init_admin(dir.path(), "siteadmin")?;
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let site = appliance::start(config(dir.path()), shutdown.clone()).await?;
    let url = format!("http://{}", site.http_addr);

    let (status, _, body) = get(format!("{url}/healthz")).await?;
    assert_eq!((status.as_u16(), body.as_str()), (200, "ok\n"));
    let (status, _, body) = get(format!("{url}/readyz")).await?;
    assert_eq!(status.as_u16(), 200, "{body}");
    let ready: Value = serde_json::from_str(&body)?;
    assert_eq!(ready, json!({"ready": true, "store": "ok", "sip": "bound", "link": "not_enrolled", "problems": []}));

    let (status, kind, page) = get(format!("{url}/metrics")).await?;
    assert_eq!(status.as_u16(), 200);
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    assert_eq!(sample(&page, "outpost_store_up"), Some(1.0), "{page}");
    assert_eq!(sample(&page, "outpost_outbox_entries"), Some(0.0), "{page}");
    assert_eq!(sample(&page, "outpost_link_up"), Some(0.0), "{page}");
    assert_eq!(sample(&page, "outpost_extensions_registered"), Some(0.0), "{page}");
    assert_eq!(sample(&page, "outpost_agents{state=\"available\"}"), Some(0.0), "{page}");
    assert!(sample(&page, "outpost_disk_free_bytes").is_some_and(|bytes| bytes > 0.0), "{page}");
    assert!(page.ends_with("# EOF\n"));

    // An agent signs in and goes 可回接: the figures follow.
    let client = reqwest::Client::builder().cookie_store(true).build()?;
    let admin = reqwest::Client::builder().cookie_store(true).build()?;
    let login = |client: &reqwest::Client, user: &str, pass: &str| {
        client.post(format!("{url}/api/login")).json(&json!({"username": user, "password": pass})).send()
    };
    login(&admin, "siteadmin", &password).await?.error_for_status()?;
    admin.post(format!("{url}/api/extensions")).json(&json!({"extension": "1001", "password": "secret-pass"})).send().await?.error_for_status()?;
    admin
        .post(format!("{url}/api/agents"))
        .json(&json!({"username": "agent1", "password": "agent-pass", "extension": "1001"}))
        .send()
        .await?
        .error_for_status()?;
    login(&client, "agent1", "agent-pass").await?.error_for_status()?;
    client.post(format!("{url}/api/agent/state")).json(&json!({"state": "available"})).send().await?.error_for_status()?;
    let (_, _, page) = get(format!("{url}/metrics")).await?;
    assert_eq!(sample(&page, "outpost_agents{state=\"available\"}"), Some(1.0), "{page}");

    // A second box whose SIP port is taken runs its web, but is not ready.
    let other = tempfile::tempdir()?;
    let taken = ApplianceConfig { sip_bind: site.sip_addr, ..config(other.path()) };
    let second = appliance::start(taken, shutdown.clone()).await.context("the web starts without lines")?;
    let (status, _, body) = get(format!("http://{}/readyz", second.http_addr)).await?;
    assert_eq!(status.as_u16(), 503, "{body}");
    let ready: Value = serde_json::from_str(&body)?;
    assert_eq!((ready["ready"].as_bool(), ready["sip"].as_str()), (Some(false), Some("not_bound")), "{ready}");
    assert!(ready["problems"][0].as_str().is_some_and(|p| p.starts_with("sip: ")), "{ready}");
    let (status, _, _) = get(format!("http://{}/healthz", second.http_addr)).await?;
    assert_eq!(status.as_u16(), 200);
    Ok(())
}
