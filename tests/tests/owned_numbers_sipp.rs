//! Owned numbers (S4) in a predictive task, end to end: a number the site's attribution gave
//! to one agent is dialed only while that agent is free for the task, and its call goes to
//! that agent only; the other agent at the desk never gets it. Real appliance, SIPp carrier,
//! SIPp phones, the demo's simulated desks; the site admin works through the HTTP API.

mod site_support;

use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::json;
use sync_link::SiteStore;
use sync_protocol::CallAttempt;
use tokio_util::sync::CancellationToken;

use site_support::*;
use tests::{Sipp, free_udp_port, wait_for_some};

const BATCH: u64 = 77;
const OWNER: (&str, &str) = ("1001", "own-a");
const OTHER: (&str, &str) = ("1002", "own-b");

fn attempts(site: &Site) -> anyhow::Result<Vec<CallAttempt>> {
    Ok(site
        .appliance
        .store
        .outbox_after(0, 10_000)?
        .into_iter()
        .filter_map(|entry| entry.event.call_attempt().cloned())
        .collect())
}

fn desk(site: &Site, username: &str, stop: &CancellationToken) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::spawn(demo::agent::run_agent(
        demo::agent::AgentConfig {
            appliance_url: site.url.clone(),
            username: username.into(),
            password: AGENT_PASSWORD.into(),
            wrap_up: (Duration::from_millis(100), Duration::from_millis(300)),
        },
        stop.clone(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owned_number_waits_for_its_agent_and_goes_to_them_only() -> anyhow::Result<()> {
    let carrier_port = free_udp_port();
    let site = start_site_with_channels(carrier_port, BATCH, 4, 4).await?;
    let mut phones = Vec::new();
    for (extension, username) in [OWNER, OTHER] {
        let password = format!("sip-{extension}");
        post(&site.admin, format!("{}/api/extensions", site.url), json!({"extension": extension, "password": password}))
            .await?;
        post(
            &site.admin,
            format!("{}/api/agents", site.url),
            json!({"username": username, "password": AGENT_PASSWORD, "name": username, "extension": extension}),
        )
        .await?;
        phones.push(agent_phone_for(site.appliance.sip_addr, extension, &password, 10).await?);
    }
    // The site's attribution: 客户0 (row 77000) belongs to own-a.
    post(
        &site.admin,
        format!("{}/api/projects/7/rules", site.url),
        json!({"rules": [{"conditions": [["name", ["客户0"]]], "all_match": false, "agent": OWNER.1}]}),
    )
    .await?;
    post(&site.admin, format!("{}/api/tasks/{BATCH}/allocate", site.url), json!({})).await?;
    let _carrier = Sipp::scenario("carrier_answer.xml")
        .local_port(carrier_port)
        .calls(4)
        .media_on_loopback()
        .arg("-d")
        .arg("600")
        .timeout(Duration::from_secs(150))
        .spawn()?;

    // Only own-b is at the desk; the predictive task runs.
    let stop = CancellationToken::new();
    let other_desk = desk(&site, OTHER.1, &stop);
    post(
        &site.admin,
        format!("{}/api/tasks/{BATCH}/start", site.url),
        json!({"ratio": 1, "max_concurrency": 2, "ring_seconds": 20, "dial_mode": "predictive", "cool_down": 0}),
    )
    .await?;
    let first_three = wait_for_some(Duration::from_secs(60), || async {
        let done = attempts(&site).ok()?;
        (done.len() >= 3).then_some(done)
    })
    .await
    .context("the three numbers nobody owns are dialed for own-b")?;
    ensure!(
        first_three.iter().all(|attempt| attempt.row_id != BATCH * 1000 && attempt.agent.as_deref() == Some(OTHER.1)),
        "{first_three:?}"
    );
    // own-a's number waits while own-a is away, though own-b is free.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let still = attempts(&site)?;
    ensure!(still.len() == 3, "the owned number was dialed without its agent: {still:?}");

    // own-a comes to the desk: their number is dialed, and put through to them.
    let owner_desk = desk(&site, OWNER.1, &stop);
    let all = wait_for_some(Duration::from_secs(60), || async {
        let done = attempts(&site).ok()?;
        (done.len() >= 4).then_some(done)
    })
    .await
    .context("the owned number is dialed once its agent is free")?;
    let owned = all.iter().find(|attempt| attempt.row_id == BATCH * 1000).context("the owned row's attempt")?;
    ensure!(owned.agent.as_deref() == Some(OWNER.1), "the owned number went to {:?}: {all:?}", owned.agent);
    stop.cancel();
    other_desk.await??;
    owner_desk.await??;
    drop(phones);
    Ok(())
}
