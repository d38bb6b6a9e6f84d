//! What the shared pool's scenarios read to judge a run: the numbers a SIPp carrier was asked
//! to ring, HQ's attempts per number and leased phones from its SQLite file, and the pool as
//! HQ's API shows it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use demo::setup::Api;
use serde_json::Value;
use tests::SippResult;

/// The numbers a carrier was asked to ring, one per call: a retransmitted INVITE (same
/// Call-ID, the box resending it while a loaded carrier had not yet answered) is one call.
pub fn invited(result: &SippResult) -> Vec<String> {
    let messages = result.messages.clone().unwrap_or_default();
    let mut calls = BTreeSet::new();
    let mut phone: Option<String> = None;
    for line in messages.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("INVITE sip:") {
            phone = rest.split(['@', ';', ' ']).next().map(str::to_string);
        } else if let Some(call_id) = line.strip_prefix("Call-ID:").or_else(|| line.strip_prefix("i:")) {
            if let Some(phone) = phone.take() {
                calls.insert((call_id.trim().to_string(), phone));
            }
        }
    }
    calls.into_iter().map(|(_, phone)| phone).collect()
}

/// HQ's database in `dir`, read-only.
pub fn hub_db(dir: &Path) -> anyhow::Result<rusqlite::Connection> {
    Ok(rusqlite::Connection::open_with_flags(dir.join("hub.sqlite3"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?)
}

/// HQ's attempts per number over a pool's batches (every site's batch of it).
pub fn attempts_per_number(dir: &Path, batch_ids: &[u64]) -> anyhow::Result<BTreeMap<String, u64>> {
    let db = hub_db(dir)?;
    let list = batch_ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let mut statement = db.prepare(&format!(
        "SELECT br.phone, COUNT(*) FROM call_attempts a JOIN batch_rows br ON br.id = a.row_id AND br.batch_id = a.batch_id
         WHERE a.batch_id IN ({list}) GROUP BY br.phone"
    ))?;
    let counts = statement.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))?.collect::<Result<_, _>>()?;
    Ok(counts)
}

/// The phones HQ leased to a site's batch.
pub fn leased_phones(dir: &Path, batch: u64) -> anyhow::Result<Vec<String>> {
    let db = hub_db(dir)?;
    let mut statement = db.prepare("SELECT phone FROM batch_rows WHERE batch_id = ?1")?;
    let phones = statement.query_map([batch], |r| r.get(0))?.collect::<Result<_, _>>()?;
    Ok(phones)
}

/// The pool of a site's batch, as HQ's API shows it.
pub async fn pool(hq: &Api, batch: u64) -> anyhow::Result<Value> {
    hq.get(&format!("/api/batches/{batch}/pool")).await
}
