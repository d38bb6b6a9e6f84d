//! Batch recovery (批次数据回收) of an exclusive batch (issue 17) through the real path: a
//! real hub, two appliances enrolled over QUIC with mutual TLS, a SIPp carrier per site
//! recording every number it is asked to ring, a SIPp phone and the demo's agent at each
//! desk. The test acts as HQ's admin on the hub's API and as each site's admin on its
//! appliance's API; the recall and the site's return travel the link.
//!
//! Twenty numbers dispatched to the first site alone. It dials some of them, one at a time at
//! a carrier that never answers; HQ recovers the batch while the task still runs. The site's
//! return, read from HQ's store, gives back exactly the numbers its carrier was not asked to
//! ring, and the site rings none after. HQ dispatches the remainder to the second site, which
//! rings each of them: every number rung once in all, one attempt each at HQ.

mod site_support;

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, ensure};
use demo::setup::{Api, enroll_site};
use serde_json::{Value, json};
use site_support::enrolled::{Desk, EnrolledSite, import_and_dispatch};
use site_support::pool_checks::{attempts_per_number, hub_db, invited};
use tests::{Sipp, wait_for_some, wait_until};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(90);

struct Site {
    site: EnrolledSite,
    agent: &'static str,
    password: &'static str,
}

impl Site {
    async fn start(dir: &std::path::Path, shutdown: &CancellationToken, extension: &'static str, agent: &'static str) -> anyhow::Result<Site> {
        let password = "agent-secret-8701";
        let desk = Desk { extension, sip_password: "phone-secret-8701", agent, agent_password: password, name: "回收" };
        Ok(Site { site: EnrolledSite::start(dir, shutdown, 2, &desk, 1).await?, agent, password })
    }

    async fn batch(&self, name: &str) -> anyhow::Result<u64> {
        wait_for_some(WAIT, || async {
            let tasks: Vec<Value> = self.site.admin.get("/api/tasks").await.ok()?;
            tasks.iter().find(|t| t["name"] == json!(name) && t["status"] != json!("receiving")).and_then(|t| t["batch_id"].as_u64())
        })
        .await
        .with_context(|| format!("batch {name} reaches the site"))
    }

    fn agent(&self, desk: CancellationToken) -> tokio::task::JoinHandle<anyhow::Result<()>> {
        let config = demo::agent::AgentConfig {
            appliance_url: self.site.url.clone(),
            username: self.agent.into(),
            password: self.password.into(),
            wrap_up: (Duration::from_millis(100), Duration::from_millis(200)),
        };
        tokio::spawn(demo::agent::run_agent(config, desk))
    }

    async fn start_task(&self, batch: u64, max_concurrency: u32) -> anyhow::Result<()> {
        let body = json!({"ratio": 1, "max_concurrency": max_concurrency, "ring_seconds": 5, "dial_mode": "predictive", "cool_down": 0});
        self.site.admin.post::<Value>(&format!("/api/tasks/{batch}/start"), &body).await?;
        Ok(())
    }
}

/// HQ's phones of `batch`'s pool in `state` (`pooled`: given back; `dialed`).
fn pool_phones(dir: &std::path::Path, batch: u64, state: &str) -> anyhow::Result<BTreeSet<String>> {
    let db = hub_db(dir)?;
    let mut statement = db.prepare(
        "SELECT pn.phone FROM pool_numbers pn JOIN batches b ON b.pool_id = pn.pool_id WHERE b.id = ?1 AND pn.state = ?2",
    )?;
    let phones = statement.query_map(rusqlite::params![batch, state], |r| r.get(0))?.collect::<Result<_, _>>()?;
    Ok(phones)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exclusive_batch_recovered_mid_dialing_gives_back_exactly_its_undialed_numbers_dialed_once_after_redispatch() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("info,quinn=warn,rustls=warn").try_init();
    let dir = tempfile::tempdir()?;
    let hub_dir = dir.path().join("hub");
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    let (hub, hq_password) = tests::start_hub(&hub_dir, shutdown.clone()).await?;
    let hq = Api::login(&format!("http://{}", hub.http_addr), "admin", &hq_password).await?;
    let first_id = enroll_site(&hq, "甲职场", &dir.path().join("first"), hub.sync_addr).await?;
    let second_id = enroll_site(&hq, "乙职场", &dir.path().join("second"), hub.sync_addr).await?;
    let category: Value = hq.post("/api/categories", &json!({"name": "回收类"})).await?;
    let project: Value = hq.post("/api/projects", &demo::setup::demo_project(category["id"].as_u64().context("category")?)).await?;
    let project_id = project["id"].as_u64().context("project")?;
    let first = Site::start(&dir.path().join("first"), &shutdown, "8701", "first-agent").await?;
    let second = Site::start(&dir.path().join("second"), &shutdown, "8702", "second-agent").await?;

    let phones: Vec<String> = (0..20).map(|n| format!("1393000{n:04}")).collect();
    let exclusive = json!({"kind": "exclusive", "priority": 50, "parts": [{"name": "独享回收", "count": 20, "site_id": first_id}]});
    import_and_dispatch(&hq, &hub_dir, project_id, "独享回收", &phones, exclusive).await?;
    let batch = first.batch("独享回收").await?;

    // The first site dials one number at a time, each ringing out for 5 s; HQ recovers the
    // batch once a few attempts have reached it, the task still running.
    let carrier = Sipp::scenario("carrier_noanswer.xml").local_port(first.site.carrier_port).calls(20).trace_messages().timeout(Duration::from_secs(180)).spawn()?;
    let desk = CancellationToken::new();
    let first_agent = first.agent(desk.clone());
    first.start_task(batch, 1).await?;
    wait_until(WAIT, || async { attempts_per_number(&hub_dir, &[batch]).is_ok_and(|c| c.len() >= 3) }).await.context("the first site dials")?;
    hq.post::<Value>(&format!("/api/batches/{batch}/recover"), &json!({})).await?;
    wait_until(WAIT, || async {
        hub_db(&hub_dir)
            .and_then(|db| Ok(db.query_row("SELECT state FROM leases WHERE batch_id = ?1", [batch], |r| r.get::<_, String>(0))?))
            .is_ok_and(|state| state == "closed")
    })
    .await
    .context("the site's return reaches HQ")?;
    // The task keeps running a while: the site has nothing left to ring.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let first_rung: BTreeSet<String> = invited(&carrier.wait(Duration::from_secs(2)).await).into_iter().collect();
    let returned = pool_phones(&hub_dir, batch, "pooled")?;
    let dialed = pool_phones(&hub_dir, batch, "dialed")?;
    let all: BTreeSet<String> = phones.iter().cloned().collect();
    ensure!(!first_rung.is_empty() && first_rung.len() < 20, "the first site rang part of its batch: {first_rung:?}");
    ensure!(dialed == first_rung, "HQ counts dialed what the carrier rang: {dialed:?} vs {first_rung:?}");
    ensure!(returned == all.difference(&first_rung).cloned().collect::<BTreeSet<_>>(), "given back exactly the undialed numbers: {returned:?}");
    let (n_dialed, n_returned): (usize, usize) =
        hub_db(&hub_dir)?.query_row("SELECT dialed, returned FROM leases WHERE batch_id = ?1", [batch], |r| Ok((r.get(0)?, r.get(1)?)))?;
    ensure!((n_dialed, n_returned) == (first_rung.len(), 20 - first_rung.len()), "the return's counts: {n_dialed} dialed, {n_returned} returned");
    let view: Value = hq.get(&format!("/api/batches/{batch}/pool")).await?;
    ensure!(view["pooled"] == json!(returned.len()) && view["sites"][0]["recalled"] == json!(true), "{view}");

    // The remainder again, to the second site: it rings each given-back number once.
    let again: Value = hq.post(&format!("/api/batches/{batch}/redispatch"), &json!({"site_id": second_id})).await?;
    let second_batch = again["batch_id"].as_u64().context("the new batch")?;
    ensure!(second.batch("独享回收").await? == second_batch, "the second site gets the new batch");
    let second_carrier = Sipp::scenario("carrier_busy.xml").local_port(second.site.carrier_port).calls(returned.len() as u32).trace_messages().timeout(Duration::from_secs(120)).spawn()?;
    let second_agent = second.agent(desk.clone());
    second.start_task(second_batch, 2).await?;
    let second_rung: Vec<String> = invited(&second_carrier.wait(Duration::from_secs(120)).await);
    wait_until(WAIT, || async { attempts_per_number(&hub_dir, &[batch, second_batch]).is_ok_and(|c| c.len() == 20) })
        .await
        .context("every number's attempt reaches HQ")?;
    desk.cancel();
    first_agent.await??;
    second_agent.await??;
    ensure!(second_rung.iter().cloned().collect::<BTreeSet<_>>() == returned && second_rung.len() == returned.len(), "the second site rang the remainder once: {second_rung:?}");
    let counts = attempts_per_number(&hub_dir, &[batch, second_batch])?;
    ensure!(counts.values().all(|&n| n == 1), "each number dialed once: {counts:?}");
    let view: Value = hq.get(&format!("/api/batches/{batch}/pool")).await?;
    ensure!(view["dialed"] == json!(20) && view["pooled"] == json!(0), "{view}");
    drop(hub);
    Ok(())
}
