//! The site box's web security, in-process over real HTTP: a burst of bad logins from one
//! address is held back while the admin at another address logs in; a state-changing
//! request from another site's page is refused; every answer carries the security headers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::ensure;
use appliance::ApplianceConfig;
use reqwest::StatusCode;
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn client(local: IpAddr) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().cookie_store(true).local_address(local).timeout(Duration::from_secs(10)).build()?)
}

#[tokio::test]
async fn logins_are_throttled_per_address_and_foreign_posts_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let password = appliance::init_admin(dir.path(), "siteadmin")?;
    // No carrier is called here; the trunk address only has to parse.
    let config = ApplianceConfig::on_loopback(dir.path(), SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9), 1);
    let shutdown = CancellationToken::new();
    let site = appliance::start(config, shutdown.clone()).await?;
    let url = format!("http://{}", site.http_addr);

    // 127.0.0.2 guesses the admin's password.
    let attacker = client(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))?;
    let mut statuses = Vec::new();
    for i in 0..8 {
        let response = attacker.post(format!("{url}/api/login")).json(&json!({ "username": "siteadmin", "password": format!("guess{i}") })).send().await?;
        statuses.push(response.status());
    }
    let checked = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    let held = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    ensure!(checked == 5 && held == 3, "five guesses checked, then held back: {statuses:?}");
    let right = attacker.post(format!("{url}/api/login")).json(&json!({ "username": "siteadmin", "password": password })).send().await?;
    ensure!(right.status() == StatusCode::TOO_MANY_REQUESTS, "held back even with the right password: {}", right.status());
    ensure!(right.headers().contains_key("retry-after"));

    // The admin at 127.0.0.1 is not.
    let admin = client(IpAddr::V4(Ipv4Addr::LOCALHOST))?;
    let login = admin.post(format!("{url}/api/login")).json(&json!({ "username": "siteadmin", "password": password })).send().await?;
    ensure!(login.status() == StatusCode::OK, "the admin logs in: {}", login.status());
    let unknown = admin.post(format!("{url}/api/login")).json(&json!({ "username": "nobody", "password": "x" })).send().await?;
    ensure!(unknown.status() == StatusCode::UNAUTHORIZED, "unknown user: {}", unknown.status());

    // A foreign page cannot change anything with the admin's cookie; the site's own can.
    for origin in ["http://evil.example", "null"] {
        let refused = admin.post(format!("{url}/api/extensions")).header("origin", origin).json(&json!({ "extension": "8001", "password": "pw-8001-x" })).send().await?;
        ensure!(refused.status() == StatusCode::FORBIDDEN, "from {origin}: {}", refused.status());
        let body: serde_json::Value = refused.json().await?;
        ensure!(body["error"].as_str().is_some_and(|e| e.contains("refused")), "{body}");
    }
    let extensions: serde_json::Value = admin.get(format!("{url}/api/extensions")).send().await?.json().await?;
    ensure!(extensions.as_array().is_some_and(|e| e.is_empty()), "nothing was created: {extensions}");
    let own = admin.post(format!("{url}/api/extensions")).header("origin", url.clone()).json(&json!({ "extension": "8001", "password": "pw-8001-x" })).send().await?;
    ensure!(own.status().is_success(), "same origin: {} {}", own.status(), own.text().await?);

    // Security headers on pages, the API and the script.
    for path in ["/login", "/admin/data", "/api/status", "/assets/app.js", "/no-such-page"] {
        let response = admin.get(format!("{url}{path}")).send().await?;
        let csp = response.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        ensure!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{path}: {csp:?}");
        ensure!(response.headers().get("x-content-type-options").is_some_and(|v| v == "nosniff"), "{path}: nosniff");
        let text = response.text().await?;
        ensure!(!text.contains("onchange=") && !text.contains("<script>"), "{path}: inline script");
    }
    shutdown.cancel();
    Ok(())
}
