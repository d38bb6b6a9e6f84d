//! The store's side of the sync link: [`sync_link::HubStore`] for [`Store`].
//!
//! - Up: each outbox entry is applied once (`sync_up`); a replay with different content is
//!   refused as a conflict and raises an alarm (listed here).
//! - Down: the per-site log (`down`), read back in seq order.
//! - Recordings, voice files and live figures are `recordings`'; enrollment and the site
//!   identity check are `sites'` (all called from here); link up/down is recorded for
//!   monitoring.
//! - The helpers the link's modules share: [`other`], [`site_key`], [`epoch_column`].

use std::sync::Arc;

use rusqlite::params;
use serde::Serialize;
use sync_link::{EnrollRefusal, HubStore, IssuedCert, StoreError, StoreResult};
use sync_protocol::enroll::CodeKey;
use sync_protocol::{DownEntry, SiteId, UpEntry};
use tokio::sync::Notify;

use super::{DbError, Store};

/// An alarm raised by the link (e.g. a conflicting replay).
#[derive(Debug, Clone, Serialize)]
#[derive(utoipa::ToSchema)]
pub struct AlarmView {
    pub id: i64,
    pub site_id: Option<i64>,
    pub kind: String,
    pub message: String,
    pub created_at: i64,
}

/// Any failure, as the link reports it to the sync server.
pub(super) fn other(e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(e.to_string())
}

/// A site id as the store keys it.
pub(super) fn site_key(site: SiteId) -> StoreResult<i64> {
    i64::try_from(site).map_err(|_| StoreError::Other(format!("site id {site} is out of range")))
}

impl Store {
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
    fn site_allowed(&self, site: SiteId, cert_sha256: &[u8; 32]) -> StoreResult<bool> {
        let Ok(site) = i64::try_from(site) else { return Ok(false) };
        self.site_identity_allowed(site, cert_sha256).map_err(other)
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
        self.apply_up_entries(site, std::slice::from_ref(entry))
    }

    fn apply_up_batch(&self, site: SiteId, entries: &[UpEntry]) -> StoreResult<()> {
        let site = site_key(site)?;
        self.apply_up_entries(site, entries)
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

    fn down_held_back(&self, site: SiteId, entry: &DownEntry) -> StoreResult<()> {
        self.hold_back_down(site_key(site)?, entry).map_err(other)
    }

    fn site_speaks(&self, site: SiteId, version: u32, down_applied: u64) -> StoreResult<()> {
        self.release_held_down(site_key(site)?, version, down_applied).map_err(other)
    }

    fn down_notify(&self, site: SiteId) -> Arc<Notify> {
        self.down_notify_for(site)
    }

    fn link_state(&self, site: SiteId, online: bool) {
        let Ok(site_id) = i64::try_from(site) else { return };
        if let Err(e) = self.set_link_state(site_id, online) {
            tracing::warn!(site, online, error = %e, "could not record the link state");
        }
        if let Err(e) = self.wall_link_changed(site_id, online) {
            tracing::warn!(site, online, error = %e, "could not keep the wall's last snapshot");
        }
    }

    fn enroll_site(
        &self,
        proof_matches: &dyn Fn(&CodeKey) -> bool,
        issue: &dyn Fn(SiteId) -> Result<IssuedCert, String>,
    ) -> StoreResult<Result<(SiteId, IssuedCert), EnrollRefusal>> {
        let enrolled = self.enroll_box(proof_matches, &|site| issue(site as u64)).map_err(other)?;
        Ok(enrolled.map(|(site, cert)| (site as u64, cert)))
    }

    fn recording_held(&self, site: SiteId, sha256: &[u8; 32]) -> StoreResult<u64> {
        self.recording_held_bytes(site, sha256)
    }

    fn recording_append(&self, site: SiteId, sha256: &[u8; 32], offset: u64, bytes: &[u8]) -> StoreResult<()> {
        self.recording_append_bytes(site, sha256, offset, bytes)
    }

    fn recording_finish(&self, site: SiteId, sha256: &[u8; 32]) -> StoreResult<sync_link::blob::BlobCheck> {
        self.recording_check(site, sha256)
    }

    fn live_figures(&self, site: SiteId, figures: sync_protocol::LiveFigures) {
        if let Err(error) = self.store_live_figures(site, &figures) {
            // Latest-value data: the next snapshot replaces this one anyway.
            tracing::warn!(site, %error, "could not keep the live figures");
        }
    }

    fn site_live(&self, site: SiteId, live: sync_protocol::SiteLive) {
        let Ok(site_id) = i64::try_from(site) else { return };
        if let Err(error) = self.keep_site_live(site_id, live) {
            // Latest-value data: the next snapshot replaces this one anyway.
            tracing::warn!(site, %error, "could not keep the wall snapshot");
        }
    }

    fn voice_files_for(&self, site: SiteId) -> StoreResult<Vec<sync_link::blob::BlobRef>> {
        self.voice_files_of(site)
    }

    fn open_voice(&self, sha256: &[u8; 32]) -> StoreResult<Option<sync_link::blob::OpenBlob>> {
        self.open_voice_blob(sha256)
    }
}

/// The epoch as SQLite stores it. An epoch is a random `u64` chosen by the site, so half of
/// them do not fit an `INTEGER` (a signed 64-bit value); the bits are kept as they are (two's
/// complement), which preserves equality, the only thing the key needs.
pub(super) fn epoch_column(epoch: u64) -> i64 {
    i64::from_ne_bytes(epoch.to_ne_bytes())
}

#[cfg(test)]
mod tests {
    use sync_protocol::{BusinessRecord, CallAttempt, DownEvent, HangupSide, Outcome, UpEvent};

    use super::*;
    use crate::store::{RecordingFetch, RecordingRequestError, VoiceFileError};

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
            kind: sync_protocol::AttemptKind::Predictive,
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
        let cert = sync_link::cert_sha256(b"box");
        assert!(!store.site_allowed(site as u64, &cert).unwrap());
        let code = store.create_enrollment_code(site).unwrap();
        let key = CodeKey::from_code(&code.code);
        let enrolled = store.enroll_site(&|candidate| *candidate == key, &|_| Ok(b"box".to_vec())).unwrap();
        assert_eq!(enrolled, Ok((site as u64, b"box".to_vec())));
        let again = store.enroll_site(&|candidate| *candidate == key, &|_| Ok(b"box 2".to_vec())).unwrap();
        assert_eq!(again, Err(EnrollRefusal::AlreadyUsed));
        assert!(store.site_allowed(site as u64, &cert).unwrap());
        assert!(!store.site_allowed(site as u64, &sync_link::cert_sha256(b"box 2")).unwrap());
        store.link_state(site as u64, true);
        assert!(store.list_sites().unwrap()[0].online);
        store.link_state(site as u64, false);
        assert!(!store.list_sites().unwrap()[0].online);
        store.down_acked(site as u64, 5).unwrap();
        store.down_acked(site as u64, 3).unwrap();
        assert_eq!(store.list_sites().unwrap()[0].down_acked, 5);
    }

    fn new_events(site_seq_base: u64) -> Vec<UpEntry> {
        use sync_protocol::{
            AgentState, AgentStateChange, Callback, CallbackState, ControlApplied, ControlScope, ControlTarget,
            CustomerEdit,
        };
        let events = vec![
            UpEvent::CustomerEdit(CustomerEdit {
                edit_id: 1,
                batch_id: 3,
                row_id: 30,
                agent: "8001".into(),
                edited_at: 200,
                changes: vec![("address".into(), "北京市".into())],
            }),
            UpEvent::Callback(Callback {
                callback_id: 5,
                batch_id: 3,
                row_id: 30,
                agent: Some("8001".into()),
                due_at: 900,
                note: "下午再打".into(),
                state: CallbackState::Scheduled,
                changed_at: 210,
            }),
            UpEvent::AgentState(AgentStateChange { agent: "8001".into(), state: AgentState::Ready, at: 220 }),
            UpEvent::AgentState(AgentStateChange {
                agent: "8001".into(),
                state: AgentState::Break("午饭".into()),
                at: 230,
            }),
            UpEvent::ControlApplied(ControlApplied {
                target: ControlTarget::OneClick(ControlScope::Batch(3)),
                version: 4,
                applied_at: 240,
                dialed_before_applied: 17,
                calls_in_progress: 2,
                applied: true,
            }),
            UpEvent::Callback(Callback {
                callback_id: 5,
                batch_id: 3,
                row_id: 30,
                agent: Some("8001".into()),
                due_at: 900,
                note: "下午再打".into(),
                state: CallbackState::Done,
                changed_at: 250,
            }),
        ];
        events
            .into_iter()
            .enumerate()
            .map(|(i, event)| UpEntry { epoch: 9, seq: site_seq_base + i as u64 + 1, event })
            .collect()
    }

    #[test]
    fn new_up_events_land_once_in_their_tables() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let site = store.create_site("C").unwrap();
        let entries = new_events(0);
        store.apply_up_batch(site as u64, &entries).unwrap();
        // The whole run again, and a part of it one by one: nothing changes.
        store.apply_up_batch(site as u64, &entries).unwrap();
        for entry in &entries[2..4] {
            store.apply_up(site as u64, entry).unwrap();
        }
        assert_eq!(store.up_committed(site as u64, 9).unwrap(), Some(6));

        let edits = store.customer_edits(Some(site), 10).unwrap();
        assert_eq!(edits.len(), 1);
        assert_eq!(edits[0].changes, vec![("address".to_owned(), "北京市".to_owned())]);
        let callbacks = store.site_callbacks(None, 10).unwrap();
        assert_eq!(callbacks.len(), 1, "a later entry about the same callback replaces it");
        assert_eq!(callbacks[0].state, "done");
        let states = store.agent_states(site).unwrap();
        assert_eq!(states.len(), 1);
        assert_eq!((states[0].state.as_str(), states[0].break_reason.as_deref()), ("break", Some("午饭")));
        let n_states: i64 =
            store.conn().query_row("SELECT COUNT(*) FROM site_agent_states", [], |r| r.get(0)).unwrap();
        assert_eq!(n_states, 2, "each state change is kept once");
        let reports = store.control_reports(Some(site), 10).unwrap();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].target, "one_click:batch:3");
        assert_eq!((reports[0].dialed_before_applied, reports[0].calls_in_progress), (17, 2));
    }

    #[test]
    fn a_conflict_in_a_run_keeps_what_came_before_and_raises_an_alarm() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let site = store.create_site("D").unwrap() as u64;
        store.apply_up(site, &UpEntry { epoch: 9, seq: 1, event: attempt(1, Outcome::Busy) }).unwrap();
        let run = vec![
            UpEntry { epoch: 9, seq: 2, event: attempt(2, Outcome::Busy) },
            // A restored backup: seq 1 again, different content.
            UpEntry { epoch: 9, seq: 1, event: attempt(3, Outcome::Connected) },
            UpEntry { epoch: 9, seq: 3, event: attempt(4, Outcome::Busy) },
        ];
        match store.apply_up_batch(site, &run) {
            Err(StoreError::Conflict { epoch: 9, seq: 1 }) => {}
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(store.up_committed(site, 9).unwrap(), Some(2));
        let ids: Vec<i64> = {
            let conn = store.conn();
            let mut stmt = conn.prepare("SELECT attempt_id FROM call_attempts ORDER BY attempt_id").unwrap();
            stmt.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
        };
        assert_eq!(ids, vec![1, 2], "nothing after the conflict is applied");
        assert_eq!(store.list_alarms().unwrap()[0].kind, "up_conflict");
    }

    #[test]
    fn recordings_resume_check_their_hash_and_stay_per_site() {
        use sha2::{Digest, Sha256};
        use sync_link::blob::BlobCheck;
        use sync_link::server::RecordingRequests;

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = store.create_site("E").unwrap();
        let b = store.create_site("F").unwrap();
        let bytes: Vec<u8> = (0..50_000u32).map(|i| (i % 241) as u8).collect();
        let sha: [u8; 32] = Sha256::digest(&bytes).into();
        let hex_sha = hex::encode(sha);

        assert_eq!(store.recording_held(a as u64, &sha).unwrap(), 0);
        store.recording_append(a as u64, &sha, 0, &bytes[..20_000]).unwrap();
        assert_eq!(store.recording_held(a as u64, &sha).unwrap(), 20_000, "a broken upload resumes here");
        assert_eq!(store.recording_held(b as u64, &sha).unwrap(), 0, "another site sees nothing of it");
        store.recording_append(a as u64, &sha, 20_000, &bytes[20_000..]).unwrap();
        assert_eq!(store.recording_finish(a as u64, &sha).unwrap(), BlobCheck::Accepted);
        let path = store.recording_path(a, &hex_sha).unwrap().expect("held");
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        assert_eq!(store.recording_path(b, &hex_sha).unwrap(), None);
        let listed: i64 =
            store.conn().query_row("SELECT COUNT(*) FROM site_recordings WHERE site_id = ?1", [a], |r| r.get(0)).unwrap();
        assert_eq!(listed, 1);

        // Bytes that do not hash to the name are discarded.
        store.recording_append(b as u64, &sha, 0, b"not the recording").unwrap();
        assert!(matches!(store.recording_finish(b as u64, &sha).unwrap(), BlobCheck::Rejected { .. }));
        assert_eq!(store.recording_held(b as u64, &sha).unwrap(), 0);

        // "Fetch now": held, offline, or a bad hash.
        let requests = RecordingRequests::default();
        assert_eq!(store.request_recording(&requests, a, &hex_sha).unwrap(), RecordingFetch::Held(path));
        assert_eq!(store.request_recording(&requests, b, &hex_sha).unwrap(), RecordingFetch::SiteOffline);
        assert!(matches!(
            store.request_recording(&requests, a, "12zz"),
            Err(RecordingRequestError::BadHash(_))
        ));
    }

    #[test]
    fn live_figures_keep_the_latest_per_site() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let site = store.create_site("G").unwrap();
        let figures = |at: i64, talking: u32| sync_protocol::LiveFigures {
            taken_at_ms: at,
            agents_talking: talking,
            ..Default::default()
        };
        HubStore::live_figures(&store, site as u64, figures(1_000, 3));
        HubStore::live_figures(&store, site as u64, figures(2_000, 5));
        // A late, older snapshot does not replace a newer one.
        HubStore::live_figures(&store, site as u64, figures(1_500, 4));
        let view = store.live_figures_of(site).unwrap().expect("figures");
        assert_eq!(view.figures.agents_talking, 5);
        assert_eq!(store.live_figures_all().unwrap().len(), 1);
    }

    #[test]
    fn voice_files_follow_the_down_log() {
        use std::io::Read;
        use sync_protocol::{VoiceFile, VoiceKind};

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let site = store.create_site("H").unwrap();
        let blob = store.store_voice_blob(b"RIFF hold music").unwrap();
        let voice = VoiceFile {
            voice_id: 1,
            version: 1,
            name: "等待音乐".into(),
            kind: VoiceKind::HoldMusic,
            sha256: blob.sha256,
            size: blob.size,
            deleted: false,
        };
        let missing = VoiceFile { sha256: [1; 32], ..voice.clone() };
        assert!(matches!(store.send_voice_file(&[site], &missing), Err(VoiceFileError::NotStored(_))));
        assert!(matches!(store.send_voice_file(&[999], &voice), Err(VoiceFileError::UnknownSite(999))));
        store.send_voice_file(&[site], &voice).unwrap();
        assert_eq!(store.voice_files_for(site as u64).unwrap(), vec![blob]);
        let mut opened = store.open_voice(&blob.sha256).unwrap().expect("stored");
        let mut content = Vec::new();
        opened.reader.read_to_end(&mut content).unwrap();
        assert_eq!(content, b"RIFF hold music");
        assert!(store.down_after(site as u64, 0, 10).unwrap().iter().any(|e| matches!(e.event, DownEvent::VoiceFile(_))));

        store.send_voice_file(&[site], &VoiceFile { version: 2, deleted: true, ..voice }).unwrap();
        assert!(store.voice_files_for(site as u64).unwrap().is_empty(), "a deleted voice file is no longer offered");
    }
}
