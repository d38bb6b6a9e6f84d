//! The store's side of the sync link: [`sync_link::HubStore`] for [`Store`].
//!
//! - Up: each outbox entry is applied in one transaction together with its
//!   `(site, epoch, seq)` key and a hash of its content; a replay with the same content is a
//!   no-op, a replay with different content is refused as a conflict and raises an alarm.
//! - Down: the per-site log written by dispatch, read back in seq order.
//! - Enrollment codes are consumed here; link up/down is recorded for monitoring.

use std::sync::Arc;

use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use sync_link::{HubStore, StoreError, StoreResult};
use sync_protocol::{DownEntry, DownEvent, HangupSide, Outcome, SiteId, UpEntry, UpEvent};
use tokio::sync::Notify;

use super::{now_unix, sha256_hex, DbError, Store};

/// An alarm raised by the link (e.g. a conflicting replay).
#[derive(Debug, Clone, Serialize)]
pub struct AlarmView {
    pub id: i64,
    pub site_id: Option<i64>,
    pub kind: String,
    pub message: String,
    pub created_at: i64,
}

/// One decoded entry of a site's down log.
#[derive(Debug, Clone, PartialEq)]
pub struct DownLogEntry {
    pub seq: u64,
    pub event: DownEvent,
}

fn other(e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(e.to_string())
}

fn site_key(site: SiteId) -> StoreResult<i64> {
    i64::try_from(site).map_err(|_| StoreError::Other(format!("site id {site} is out of range")))
}

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Connected => "connected",
        Outcome::Busy => "busy",
        Outcome::NoAnswer => "no_answer",
        Outcome::Rejected => "rejected",
        Outcome::Failed => "failed",
        Outcome::Abandoned => "abandoned",
        Outcome::AgentMissed => "agent_missed",
        // A newer protocol's outcome: kept, under a name that says it is not understood yet.
        _ => "unknown",
    }
}

fn hangup_name(side: HangupSide) -> &'static str {
    match side {
        HangupSide::Customer => "customer",
        HangupSide::Agent => "agent",
        HangupSide::System => "system",
    }
}

impl Store {
    /// Applies one up entry; see [`HubStore::apply_up`].
    fn apply_up_entry(&self, site: i64, entry: &UpEntry) -> StoreResult<()> {
        let epoch = epoch_column(entry.epoch);
        let seq = i64::try_from(entry.seq).map_err(other)?;
        let content = serde_json::to_vec(&entry.event).map_err(other)?;
        let content_hash = sha256_hex(&content);
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(other)?;
        let existing: Option<String> = tx
            .query_row(
                "SELECT content_hash FROM up_applied WHERE site_id = ?1 AND epoch = ?2 AND seq = ?3",
                params![site, epoch, seq],
                |r| r.get(0),
            )
            .optional()
            .map_err(other)?;
        match existing {
            Some(hash) if hash == content_hash => return Ok(()),
            Some(_) => {
                tx.execute(
                    "INSERT INTO alarms (site_id, kind, message, created_at) VALUES (?1, 'up_conflict', ?2, ?3)",
                    params![
                        site,
                        format!(
                            "site {site} sent outbox entry {}/{} again with different content; \
                             the site may have been restored from an old backup. The first version is kept.",
                            entry.epoch, entry.seq
                        ),
                        now_unix()
                    ],
                )
                .map_err(other)?;
                tx.commit().map_err(other)?;
                return Err(StoreError::Conflict { epoch: entry.epoch, seq: entry.seq });
            }
            None => {}
        }
        match &entry.event {
            UpEvent::CallAttempt(attempt) => {
                tx.execute(
                    "INSERT INTO call_attempts (site_id, attempt_id, batch_id, row_id, started_at, answered_at, ended_at,
                         outcome, hangup_side, agent, talk_seconds, recording_sha256)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                     ON CONFLICT (site_id, attempt_id) DO UPDATE SET
                         batch_id = excluded.batch_id, row_id = excluded.row_id, started_at = excluded.started_at,
                         answered_at = excluded.answered_at, ended_at = excluded.ended_at, outcome = excluded.outcome,
                         hangup_side = excluded.hangup_side, agent = excluded.agent,
                         talk_seconds = excluded.talk_seconds, recording_sha256 = excluded.recording_sha256",
                    params![
                        site,
                        attempt.attempt_id as i64,
                        attempt.batch_id as i64,
                        attempt.row_id as i64,
                        attempt.started_at,
                        attempt.answered_at,
                        attempt.ended_at,
                        outcome_name(attempt.outcome),
                        attempt.hangup_side.map(hangup_name),
                        attempt.agent,
                        attempt.talk_seconds,
                        attempt.recording_sha256,
                    ],
                )
                .map_err(other)?;
            }
            UpEvent::BusinessRecord(record) => {
                let values = serde_json::to_string(&record.values).map_err(other)?;
                // A re-save replaces the record: the site owns it and sends the latest.
                tx.execute(
                    "INSERT INTO business_records (site_id, attempt_id, batch_id, row_id, agent, saved_at, record)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (site_id, attempt_id) DO UPDATE SET
                         batch_id = excluded.batch_id, row_id = excluded.row_id, agent = excluded.agent,
                         saved_at = excluded.saved_at, record = excluded.record
                     WHERE excluded.saved_at >= business_records.saved_at",
                    params![
                        site,
                        record.attempt_id as i64,
                        record.batch_id as i64,
                        record.row_id as i64,
                        record.agent,
                        record.saved_at,
                        values
                    ],
                )
                .map_err(other)?;
            }
            unknown => {
                // Not acknowledged: the site keeps it until a hub that understands it runs.
                return Err(StoreError::Other(format!(
                    "outbox entry {}/{} carries an event this hub does not know ({unknown:?}); upgrade hq-hub",
                    entry.epoch, entry.seq
                )));
            }
        }
        tx.execute(
            "INSERT INTO up_applied (site_id, epoch, seq, content_hash, applied_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![site, epoch, seq, content_hash, now_unix()],
        )
        .map_err(other)?;
        tx.commit().map_err(other)?;
        Ok(())
    }

    /// A site's down log after `after_seq`, oldest first, at most `limit` entries.
    pub fn down_log(&self, site: i64, after_seq: u64, limit: usize) -> Result<Vec<DownLogEntry>, DbError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT seq, event FROM down_log WHERE site_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3")?;
        let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let entries = stmt
            .query_map(params![site, after, limit], |r| {
                let seq: i64 = r.get(0)?;
                let json: String = r.get(1)?;
                let event: DownEvent = serde_json::from_str(&json).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
                })?;
                Ok(DownLogEntry { seq: seq as u64, event })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(entries)
    }

    /// Alarms, newest first.
    pub fn list_alarms(&self) -> Result<Vec<AlarmView>, DbError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT id, site_id, kind, message, created_at FROM alarms ORDER BY id DESC LIMIT 200")?;
        let rows = stmt
            .query_map([], |r| {
                Ok(AlarmView {
                    id: r.get(0)?,
                    site_id: r.get(1)?,
                    kind: r.get(2)?,
                    message: r.get(3)?,
                    created_at: r.get(4)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

impl HubStore for Store {
    fn site_allowed(&self, site: SiteId) -> StoreResult<bool> {
        let Ok(site) = i64::try_from(site) else { return Ok(false) };
        self.site_may_connect(site).map_err(other)
    }

    fn up_committed(&self, site: SiteId, epoch: u64) -> StoreResult<Option<u64>> {
        let site = site_key(site)?;
        let epoch = epoch_column(epoch);
        let max: Option<i64> = self
            .conn()
            .query_row(
                "SELECT MAX(seq) FROM up_applied WHERE site_id = ?1 AND epoch = ?2",
                params![site, epoch],
                |r| r.get(0),
            )
            .map_err(other)?;
        Ok(max.map(|seq| seq as u64))
    }

    fn apply_up(&self, site: SiteId, entry: &UpEntry) -> StoreResult<()> {
        let site = site_key(site)?;
        self.apply_up_entry(site, entry)
    }

    fn down_after(&self, site: SiteId, after_seq: u64, limit: usize) -> StoreResult<Vec<DownEntry>> {
        let site = site_key(site)?;
        let entries = self.down_log(site, after_seq, limit).map_err(other)?;
        Ok(entries.into_iter().map(|e| DownEntry { seq: e.seq, event: e.event }).collect())
    }

    fn down_acked(&self, site: SiteId, seq: u64) -> StoreResult<()> {
        let site = site_key(site)?;
        let seq = i64::try_from(seq).map_err(other)?;
        self.conn()
            .execute("UPDATE sites SET down_acked = MAX(down_acked, ?1) WHERE id = ?2", params![seq, site])
            .map_err(other)?;
        Ok(())
    }

    fn down_notify(&self, site: SiteId) -> Arc<Notify> {
        self.down_notify_for(site)
    }

    fn link_state(&self, site: SiteId, online: bool) {
        let Ok(site_id) = i64::try_from(site) else { return };
        if let Err(e) = self.set_link_state(site_id, online) {
            tracing::warn!(site, online, error = %e, "could not record the link state");
        }
    }

    fn redeem_enrollment_code(&self, code: &str) -> StoreResult<Option<SiteId>> {
        let site = self.redeem_code(code).map_err(other)?;
        Ok(site.map(|id| id as u64))
    }

    fn redeem_enrollment_proof(&self, proof_matches: &dyn Fn(&str) -> bool) -> StoreResult<Option<SiteId>> {
        let site = self.redeem_code_by_proof(proof_matches).map_err(other)?;
        Ok(site.map(|id| id as u64))
    }
}

/// The epoch as SQLite stores it. An epoch is a random `u64` chosen by the site, so half of
/// them do not fit an `INTEGER` (a signed 64-bit value); the bits are kept as they are (two's
/// complement), which preserves equality, the only thing the key needs.
fn epoch_column(epoch: u64) -> i64 {
    i64::from_ne_bytes(epoch.to_ne_bytes())
}

#[cfg(test)]
mod tests {
    use sync_protocol::{BusinessRecord, CallAttempt};

    use super::*;

    fn attempt(attempt_id: u64, outcome: Outcome) -> UpEvent {
        UpEvent::CallAttempt(CallAttempt {
            attempt_id,
            batch_id: 1,
            row_id: 1,
            started_at: 100,
            answered_at: Some(105),
            ended_at: 160,
            outcome,
            hangup_side: Some(HangupSide::Customer),
            agent: Some("8001".into()),
            talk_seconds: 55,
            recording_sha256: None,
        })
    }

    #[test]
    fn apply_up_is_idempotent_and_detects_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let site = store.create_site("A").unwrap() as u64;
        assert_eq!(store.up_committed(site, 7).unwrap(), None);

        let first = UpEntry { epoch: 7, seq: 1, event: attempt(11, Outcome::Connected) };
        store.apply_up(site, &first).unwrap();
        store.apply_up(site, &first).unwrap();
        let record = UpEntry {
            epoch: 7,
            seq: 2,
            event: UpEvent::BusinessRecord(BusinessRecord {
                attempt_id: 11,
                batch_id: 1,
                row_id: 1,
                agent: "8001".into(),
                saved_at: 170,
                values: vec![("result".into(), "成功".into())],
            }),
        };
        store.apply_up(site, &record).unwrap();
        assert_eq!(store.up_committed(site, 7).unwrap(), Some(2));
        let n_attempts: i64 = store.conn().query_row("SELECT COUNT(*) FROM call_attempts", [], |r| r.get(0)).unwrap();
        assert_eq!(n_attempts, 1);

        let conflicting = UpEntry { epoch: 7, seq: 1, event: attempt(11, Outcome::Busy) };
        match store.apply_up(site, &conflicting) {
            Err(StoreError::Conflict { epoch: 7, seq: 1 }) => {}
            other => panic!("expected a conflict, got {other:?}"),
        }
        let outcome: String = store.conn().query_row("SELECT outcome FROM call_attempts", [], |r| r.get(0)).unwrap();
        assert_eq!(outcome, "connected", "the first version is kept");
        let alarms = store.list_alarms().unwrap();
        assert_eq!(alarms.len(), 1);
        assert_eq!(alarms[0].kind, "up_conflict");

        // An epoch above i64::MAX (half of all random epochs) is stored and found again.
        let high = UpEntry { epoch: u64::MAX - 3, seq: 1, event: attempt(13, Outcome::Busy) };
        store.apply_up(site, &high).unwrap();
        store.apply_up(site, &high).unwrap();
        assert_eq!(store.up_committed(site, u64::MAX - 3).unwrap(), Some(1));
        // Same seq in a new epoch (a fresh store at the site) is a different entry.
        store.apply_up(site, &UpEntry { epoch: 8, seq: 1, event: attempt(12, Outcome::NoAnswer) }).unwrap();
        assert_eq!(store.up_committed(site, 8).unwrap(), Some(1));
    }

    #[test]
    fn link_state_and_enrollment_through_the_trait() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let site = store.create_site("B").unwrap();
        assert!(!store.site_allowed(site as u64).unwrap());
        let code = store.create_enrollment_code(site).unwrap();
        assert_eq!(store.redeem_enrollment_code(&code.code).unwrap(), Some(site as u64));
        assert_eq!(store.redeem_enrollment_code(&code.code).unwrap(), None);
        assert!(store.site_allowed(site as u64).unwrap());
        store.link_state(site as u64, true);
        assert!(store.list_sites().unwrap()[0].online);
        store.link_state(site as u64, false);
        assert!(!store.list_sites().unwrap()[0].online);
        store.down_acked(site as u64, 5).unwrap();
        store.down_acked(site as u64, 3).unwrap();
        assert_eq!(store.list_sites().unwrap()[0].down_acked, 5);
    }
}
