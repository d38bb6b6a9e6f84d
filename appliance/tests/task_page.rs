//! The site admin's task page with values HQ locked (issue 15): before the task starts, the
//! page shows HQ's ratio, max concurrency and ring time as locked, not the site's defaults,
//! and the suggested max concurrency does not contradict the locked value. In-process over
//! real HTTP, against the page and its JSON.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::bail;
use appliance::ApplianceConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sync_link::SiteStore;
use sync_protocol::{DownEntry, DownEvent};
use tokio_util::sync::CancellationToken;

use common::*;

/// The value of the `<input name=..>` in `html`.
fn input_value(html: &str, name: &str) -> Option<String> {
    let start = html.find(&format!("name=\"{name}\""))?;
    let tag_start = html[..start].rfind('<')?;
    let tag_end = start + html[start..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let value = tag.split("value=\"").nth(1)?;
    Some(value[..value.find('"')?].to_string())
}

#[tokio::test]
async fn locked_values_show_as_hq_set_them_before_the_task_starts() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let admin_password = appliance::init_admin(dir.path(), "siteadmin")?;
    // A site with a 4-line trunk: the site's own suggestion would be at most 4.
    let carrier = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9);
    let config = ApplianceConfig::on_loopback(dir.path(), carrier, 4);
    let shutdown = CancellationToken::new();
    let site = appliance::start(config, shutdown.clone()).await?;
    let _stop = shutdown.clone().drop_guard();
    let url = format!("http://{}", site.http_addr);
    let admin = reqwest::Client::builder().cookie_store(true).timeout(Duration::from_secs(10)).build()?;
    let login = admin.post(format!("{url}/api/login")).json(&json!({"username": "siteadmin", "password": admin_password})).send().await?;
    if login.status() != StatusCode::OK {
        bail!("login: {}", login.status());
    }

    // HQ locks 1:2, 10 concurrent calls and 40 s of ringing for the project.
    let mut locked = project(2);
    locked.params.ratio = Some(2);
    locked.params.max_concurrency = Some(10);
    locked.params.ring_seconds = Some(40);
    let mut events = batch_events(95, &rows(95, 2), 2, 50, 1);
    events.push(DownEvent::Project(locked));
    for entry in entries(1, events) {
        site.store.apply_down(&DownEntry { seq: entry.seq, event: entry.event })?;
    }

    let page = admin.get(format!("{url}/admin/tasks/95")).send().await?.text().await?;
    assert_eq!(input_value(&page, "ratio").as_deref(), Some("2"), "HQ's ratio, not the site's 1");
    assert_eq!(input_value(&page, "max_concurrency").as_deref(), Some("10"), "HQ's max concurrency, not 1");
    assert_eq!(input_value(&page, "ring_seconds").as_deref(), Some("40"), "HQ's ring time, not 35");
    let suggested = page.split("id=\"suggested\">").nth(1).and_then(|rest| rest.split('<').next()).unwrap_or_default();
    assert_eq!(suggested, "10", "the suggestion is the locked value, not one contradicting it");
    let max_tag = page.split("name=\"max_concurrency\"").nth(1).unwrap_or_default();
    let max_attr = max_tag.split("max=\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap_or_default();
    assert!(max_attr.parse::<u32>().is_ok_and(|max| max >= 10), "the form must accept the locked 10: max={max_attr}");

    let detail: Value = admin.get(format!("{url}/api/tasks/95")).send().await?.json().await?;
    assert_eq!((detail["ratio"].as_u64(), detail["max_concurrency"].as_u64(), detail["ring_seconds"].as_u64()), (Some(2), Some(10), Some(40)), "{detail}");
    assert_eq!(detail["suggested_max_concurrency"].as_u64(), Some(10), "{detail}");
    let tasks: Value = admin.get(format!("{url}/api/tasks")).send().await?.json().await?;
    assert_eq!(tasks[0]["ratio"].as_u64(), Some(2), "{tasks}");
    Ok(())
}
