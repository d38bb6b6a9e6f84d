//! Shared parts of the sync scenarios (`sync_*.rs`): a hub set up over its real console API,
//! a site outbox filled with a simulated day, and the checker that reads both SQLite files.
//!
//! The checker opens the hub's `hub.sqlite3` and the appliance's `site.db` read-only (WAL
//! readers do not disturb a running writer) and asserts the link's promise:
//! - nothing lost: HQ holds every outbox entry the site committed in its epoch, seq 1..=N;
//! - nothing doubled: exactly N entries, and each site-owned row exactly once at HQ with the
//!   content the site has;
//! - the down direction: the site applied HQ's whole down log, and each batch's control
//!   version at the site is HQ's latest.

#![allow(dead_code)] // each scenario uses its own part of the support

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use demo::setup::{Api, demo_project, write_demo_sheet};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde_json::{Value, json};
use sync_protocol::UpEvent;

pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// What [`set_up_hub`] created at HQ.
#[derive(Debug, Clone)]
pub struct HubSetup {
    pub site_id: u64,
    pub code: String,
    pub batch_id: u64,
    pub admin_password: String,
}

/// Log in to a running hub's console and create a site, its one-time code, a project and
/// a batch of `rows` customers dispatched to the site.
pub async fn set_up_hub_over_api(hub_url: &str, admin_password: &str, rows: u32, work: &Path) -> Result<HubSetup> {
    let hq = Api::login(hub_url, "admin", admin_password).await?;
    let site: Value = hq.post("/api/sites", &json!({"name": "同步测试职场"})).await?;
    let site_id = site["id"].as_u64().context("site id")?;
    let code: Value = hq.post(&format!("/api/sites/{site_id}/enrollment-code"), &json!({})).await?;
    let code = code["code"].as_str().context("code")?.to_owned();
    let category: Value = hq.post("/api/categories", &json!({"name": "同步类"})).await?;
    let project: Value =
        hq.post("/api/projects", &demo_project(category["id"].as_u64().context("category")?)).await?;
    let project_id = project["id"].as_u64().context("project id")?;
    let sheet = work.join("名单.xlsx");
    write_demo_sheet(&sheet, rows)?;
    let import: Value = hq.upload(&format!("/api/projects/{project_id}/files"), &sheet).await?;
    ensure!(import["n_good"] == json!(rows), "import report: {import}");
    let file_id = import["file_id"].as_u64().context("file id")?;
    let dispatched: Value = hq
        .post(
            &format!("/api/files/{file_id}/dispatch"),
            &json!({"name": "同步批次", "priority": 50, "site_ids": [site_id]}),
        )
        .await?;
    let batch_id = find_batch_id(&dispatched).with_context(|| format!("batch id in {dispatched}"))?;
    Ok(HubSetup { site_id, code, batch_id, admin_password: admin_password.to_owned() })
}

fn find_batch_id(value: &Value) -> Option<u64> {
    if let Some(id) = value.get("batch_id").and_then(Value::as_u64) {
        return Some(id);
    }
    if let Some(ids) = value.get("batch_ids").and_then(Value::as_array) {
        return ids.first().and_then(Value::as_u64);
    }
    if let Some(batches) = value.get("batches").and_then(Value::as_array) {
        return batches.first().and_then(|b| b.get("id").or(b.get("batch_id"))).and_then(Value::as_u64);
    }
    None
}

/// Start the hub in-process on loopback, set it up over its API, stop it again: what a
/// scenario that then drives the hub's store directly starts from.
pub async fn set_up_hub_in_process(hub_dir: &Path, rows: u32, work: &Path) -> Result<HubSetup> {
    let password = hq_hub::init_admin(hub_dir, "admin")?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let hub = hq_hub::start(
        hq_hub::HubConfig {
            data_dir: hub_dir.to_path_buf(),
            http_bind: SocketAddr::new(LOCALHOST, 0),
            sync_bind: SocketAddr::new(LOCALHOST, 0),
            time_zone: Default::default(),
        },
        shutdown.clone(),
    )
    .await?;
    let setup = set_up_hub_over_api(&format!("http://{}", hub.http_addr), &password, rows, work).await;
    shutdown.cancel();
    hub.wait().await;
    setup
}

/// A read-only connection to a SQLite file another process (or task) is writing.
pub fn read_only(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_context(|| format!("opening {} read-only", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

/// Put `events` in a fresh appliance store's outbox in one transaction, as a day offline
/// leaves it (the appliance commits each with its change; the checker only counts them).
pub fn fill_outbox(site_dir: &Path, events: impl IntoIterator<Item = UpEvent>) -> Result<u64> {
    drop(appliance::store::Store::open(site_dir)?);
    let mut conn = Connection::open(site_dir.join("site.db"))?;
    let tx = conn.transaction()?;
    let mut n = 0u64;
    {
        let mut insert = tx.prepare("INSERT INTO outbox (payload) VALUES (?1)")?;
        for event in events {
            insert.execute([postcard::to_stdvec(&event)?])?;
            n += 1;
        }
    }
    tx.commit()?;
    Ok(n)
}

/// Where both stores stand, as the checker read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncState {
    /// Outbox entries the site ever committed in its epoch (the outbox's last seq).
    pub site_committed: u64,
    /// Entries still in the site's outbox (not yet acknowledged).
    pub site_unacked: u64,
    /// `COUNT(*)` and `MAX(seq)` of what HQ applied for this site and epoch.
    pub hub_applied: u64,
    pub hub_max_seq: u64,
    /// The site's down position and the length of HQ's down log for it.
    pub site_down_applied: u64,
    pub hub_down_len: u64,
}

impl SyncState {
    pub fn converged(&self) -> bool {
        self.site_unacked == 0
            && self.hub_applied == self.site_committed
            && self.site_down_applied == self.hub_down_len
    }
}

/// The epoch and outbox position of a site store.
fn site_position(site: &Connection) -> Result<(i64, u64, u64, u64)> {
    let (epoch, down_applied): (i64, i64) =
        site.query_row("SELECT epoch, down_applied FROM sync_state WHERE id = 1", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let committed: Option<i64> = site
        .query_row("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'", [], |r| r.get(0))
        .optional()?;
    let unacked: i64 = site.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))?;
    Ok((epoch, committed.unwrap_or(0) as u64, unacked as u64, down_applied as u64))
}

/// Read where both stores stand (the "nothing lost, nothing doubled" counts included).
pub fn sync_state(hub_db: &Path, site_db: &Path, site_id: u64) -> Result<SyncState> {
    let site = read_only(site_db)?;
    let hub = read_only(hub_db)?;
    let (epoch, site_committed, site_unacked, site_down_applied) = site_position(&site)?;
    let (hub_applied, hub_max_seq): (i64, Option<i64>) = hub.query_row(
        "SELECT COUNT(*), MAX(seq) FROM up_applied WHERE site_id = ?1 AND epoch = ?2",
        rusqlite::params![site_id as i64, epoch],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let hub_down_len: Option<i64> =
        hub.query_row("SELECT MAX(seq) FROM down_log WHERE site_id = ?1", [site_id as i64], |r| r.get(0))?;
    Ok(SyncState {
        site_committed,
        site_unacked,
        hub_applied: hub_applied as u64,
        hub_max_seq: hub_max_seq.unwrap_or(0) as u64,
        site_down_applied,
        hub_down_len: hub_down_len.unwrap_or(0) as u64,
    })
}

/// Checks that hold at every moment, converged or not: HQ never holds more than the site
/// committed, never a seq twice, never a hole below its highest seq.
pub fn check_invariants(state: &SyncState) -> Result<()> {
    ensure!(state.hub_applied <= state.site_committed, "HQ holds more entries than the site committed: {state:?}");
    ensure!(state.hub_applied == state.hub_max_seq, "HQ's applied entries have a hole or a double: {state:?}");
    ensure!(
        state.site_committed - state.site_unacked <= state.hub_applied,
        "the site dropped entries HQ has not committed: {state:?}"
    );
    ensure!(state.site_down_applied <= state.hub_down_len, "the site applied down entries HQ never wrote: {state:?}");
    Ok(())
}

fn rows(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<Vec<String>>> {
    let mut stmt = conn.prepare(sql)?;
    let n = stmt.column_count();
    let mut out = Vec::new();
    let mut query = stmt.query(params)?;
    while let Some(row) = query.next()? {
        let mut values = Vec::with_capacity(n);
        for i in 0..n {
            let value: rusqlite::types::Value = row.get(i)?;
            values.push(match value {
                rusqlite::types::Value::Null => "NULL".to_owned(),
                rusqlite::types::Value::Integer(v) => v.to_string(),
                rusqlite::types::Value::Real(v) => v.to_string(),
                rusqlite::types::Value::Text(v) => v,
                rusqlite::types::Value::Blob(v) => format!("{v:?}"),
            });
        }
        out.push(values);
    }
    Ok(out)
}

/// The full check after convergence: counts, and each site-owned row at HQ exactly once
/// with the site's content.
pub fn check_converged(hub_db: &Path, site_db: &Path, site_id: u64) -> Result<SyncState> {
    let state = sync_state(hub_db, site_db, site_id)?;
    check_invariants(&state)?;
    ensure!(state.converged(), "not converged: {state:?}");
    let site = read_only(site_db)?;
    let hub = read_only(hub_db)?;
    let (epoch, ..) = site_position(&site)?;
    let site_key = site_id as i64;

    // Finished attempts: each once, same outcome and times.
    let site_attempts = rows(
        &site,
        "SELECT attempt_id, batch_id, row_id, started_at, ended_at, outcome FROM attempts
         WHERE state = 'done' ORDER BY attempt_id",
        [],
    )?;
    let hub_attempts = rows(
        &hub,
        "SELECT attempt_id, batch_id, row_id, started_at, ended_at, outcome FROM call_attempts
         WHERE site_id = ?1 ORDER BY attempt_id",
        [site_key],
    )?;
    ensure!(
        site_attempts == hub_attempts,
        "call attempts differ: site has {}, HQ {}",
        site_attempts.len(),
        hub_attempts.len()
    );

    // Callbacks: each once, in the site's latest state.
    let site_callbacks = rows(
        &site,
        "SELECT callback_id, batch_id, row_id, agent, due_at FROM callbacks ORDER BY callback_id",
        [],
    )?;
    let hub_callbacks = rows(
        &hub,
        "SELECT callback_id, batch_id, row_id, agent, due_at FROM site_callbacks
         WHERE site_id = ?1 AND epoch = ?2 ORDER BY callback_id",
        rusqlite::params![site_key, epoch],
    )?;
    ensure!(
        site_callbacks == hub_callbacks,
        "callbacks differ: site has {}, HQ {}",
        site_callbacks.len(),
        hub_callbacks.len()
    );

    // Down: every batch's control version at the site is HQ's latest.
    let hub_controls: BTreeMap<String, String> =
        rows(&hub, "SELECT id, control_version FROM batches WHERE site_id = ?1", [site_key])?
            .into_iter()
            .map(|row| (row[0].clone(), row[1].clone()))
            .collect();
    let site_controls: BTreeMap<String, String> = rows(
        &site,
        "SELECT batch_id, COALESCE(control_version, 1) FROM batches",
        [],
    )?
    .into_iter()
    .map(|row| (row[0].clone(), row[1].clone()))
    .collect();
    ensure!(hub_controls == site_controls, "control versions differ: HQ {hub_controls:?}, site {site_controls:?}");
    Ok(state)
}

/// `hub.sqlite3` and `site.db` under their data directories.
pub fn hub_db(hub_dir: &Path) -> PathBuf {
    hub_dir.join("hub.sqlite3")
}

pub fn site_db(site_dir: &Path) -> PathBuf {
    site_dir.join("site.db")
}
