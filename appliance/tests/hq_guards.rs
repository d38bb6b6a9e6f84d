//! HQ's guards that must hold while the link is down: the black list's versions (that a
//! listed number is never dialed is tested end to end in `tests/tests/hq_black_list.rs`),
//! calling windows and
//! HQ's pause in the project settings, project and one-click controls (each reported up
//! with what the site actually did), plus the link's recordings, settings and figures.
//!
//! These drive the site's store with down entries written here, so they are unit tests of
//! the apply functions (versions, what is reported, what the task list shows), named
//! `unit_…` where they feed HQ's controls by hand. That HQ's one-click, project status,
//! attribution rules and link settings actually reach a site and hold there is proven
//! through the real hub, link and SIPp carrier in `tests/tests/hq_controls.rs`.

mod common;

use std::io::Read;

use appliance::store::{AttemptEnd, ManualDialError, Role, SiteDialMode, Store, TaskExtras, TaskParams};
use sync_link::SiteStore;
use sync_protocol::{
    BlackListChange, CallingWindow, ControlScope, ControlTarget, DownEntry, DownEvent, LinkSettings, OneClickControl,
    Outcome, PhoneListChange, PhoneListKind, ProjectControl, ProjectSettings, RunState, UpEvent,
};

use common::*;

const PARAMS: TaskParams = TaskParams { ratio: 1, max_concurrency: 4, ring_seconds: 35 };

/// 2026-11-24 10:30 China time (02:30 UTC).
const MORNING: i64 = 1_795_487_400;

/// Applies `events` from `first_seq`; returns the next free seq.
fn apply(store: &Store, first_seq: u64, events: Vec<DownEvent>) -> u64 {
    let entries = entries(first_seq, events);
    let next = entries.last().map(|entry| entry.seq + 1).unwrap_or(first_seq);
    for entry in &entries {
        store.apply_down(entry).expect("apply");
    }
    next
}

fn load(store: &Store, first_seq: u64, batch_id: u64, n_rows: u64) -> u64 {
    apply(store, first_seq, batch_events(batch_id, &rows(batch_id, n_rows), 2, 50, 1))
}

fn no_answer(store: &Store, attempt_id: u64) {
    let end = AttemptEnd { outcome: Outcome::NoAnswer, hangup_side: None, ended_at: 1, recording_path: None, recording_sha256: None };
    store.finish_attempt(attempt_id, &end).expect("finish");
}

fn listed(phone: &str, version: u64, listed: bool) -> DownEvent {
    DownEvent::BlackList(BlackListChange { phone: phone.into(), version, listed, note: "客户投诉".into() })
}

fn list_change(phone: &str, version: u64, list: Option<PhoneListKind>) -> DownEvent {
    DownEvent::PhoneList(PhoneListChange { phone: phone.into(), version, list, note: "客户投诉".into() })
}

fn controls_applied(store: &Store) -> Vec<sync_protocol::ControlApplied> {
    store
        .outbox_after(0, 1000)
        .expect("outbox")
        .into_iter()
        .filter_map(|entry| match entry.event {
            UpEvent::ControlApplied(applied) => Some(applied),
            _ => None,
        })
        .collect()
}

#[test]
fn china_minute_is_utc_plus_eight() {
    assert_eq!(appliance::store::china_minute(MORNING), 10 * 60 + 30);
    assert_eq!(appliance::store::china_minute(0), 8 * 60);
    assert_eq!(appliance::store::china_minute(16 * 3600), 0);
}

// That a listed number is never dialed (predictive, one-click, callback) is proven through
// the real path, HQ's API to the SIPp carrier, in `tests/tests/hq_black_list.rs`. Here only
// the apply function's version logic is checked, on the store alone.
#[test]
fn list_changes_apply_by_version_per_number_whatever_their_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let viewer = appliance::store::Viewer { username: "admin".into(), unmask: true };
    let phone = "13800138000";
    let mut next = apply(&store, 1, vec![list_change(phone, 2, Some(PhoneListKind::Black))]);
    // An older removal arriving later changes nothing: the number stays listed.
    next = apply(&store, next, vec![list_change(phone, 1, None)]);
    assert!(store.is_blacklisted(phone).expect("read"));
    // A newer move to the white list takes it off the black list.
    next = apply(&store, next, vec![list_change(phone, 3, Some(PhoneListKind::White))]);
    assert!(!store.is_blacklisted(phone).expect("read"));
    let lists = store.hq_lists(&viewer).expect("lists");
    assert_eq!(lists.iter().map(|entry| (entry.phone.as_str(), entry.list, entry.version)).collect::<Vec<_>>(), vec![(phone, "white", 3)]);
    // The protocol-1 black list event lands in the same table, under the same versions.
    next = apply(&store, next, vec![listed(phone, 3, true)]);
    assert!(!store.is_blacklisted(phone).expect("read"), "version 3 was applied already");
    next = apply(&store, next, vec![listed(phone, 4, true)]);
    assert!(store.is_blacklisted(phone).expect("read"));
    apply(&store, next, vec![list_change(phone, 5, None)]);
    assert!(!store.is_blacklisted(phone).expect("read"));
    assert!(store.hq_lists(&viewer).expect("lists").is_empty(), "taken off both lists");
}

#[test]
fn one_click_outside_the_calling_window_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let next = load(&store, 1, 7, 2);
    let window = CallingWindow { start_minute: 9 * 60, end_minute: 12 * 60 };
    let settings = ProjectSettings { project_id: PROJECT_ID, version: 1, calling_windows: vec![window], ..ProjectSettings::default() };
    apply(&store, next, vec![DownEvent::ProjectSettings(settings)]);
    store.create_extension("1001", "secret-pass").expect("extension");
    let agent = store.create_user("agent1", "agent-pass", Role::Agent, "坐席", Some("1001")).expect("agent");
    store
        .set_task_extras(7, &TaskExtras { dial_mode: SiteDialMode::OneClick, ..TaskExtras::default() })
        .expect("one-click");
    store.start_task(7, PARAMS).expect("start");
    let evening = MORNING + 9 * 3600; // 19:30 China time
    match store.claim_one_click_at(PROJECT_ID, agent, "agent1", evening) {
        Err(ManualDialError::NotAllowed(reason)) => {
            assert!(reason.contains("19:30") && reason.contains("09:00-12:00"), "{reason}")
        }
        other => panic!("dialed outside the window: {other:?}"),
    }
    let claim = store.claim_one_click_at(PROJECT_ID, agent, "agent1", MORNING).expect("inside the window");
    assert_eq!(claim.claimed.batch_id, 7);
}

#[test]
fn unit_calling_windows_in_china_time_and_the_settings_pause_apply_by_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let mut next = load(&store, 1, 3, 4);
    let settings = |version: u64, running: Option<bool>| {
        DownEvent::ProjectSettings(ProjectSettings {
            project_id: PROJECT_ID,
            version,
            popup_on_ring: Some(true),
            running,
            // 09:00-12:00 and 14:00-18:00 China time.
            calling_windows: vec![
                CallingWindow { start_minute: 9 * 60, end_minute: 12 * 60 },
                CallingWindow { start_minute: 14 * 60, end_minute: 18 * 60 },
            ],
        })
    };
    next = apply(&store, next, vec![settings(1, None)]);
    assert_eq!(store.hq_popup_on_ring(PROJECT_ID).expect("popup"), Some(true));
    store.start_task(3, PARAMS).expect("start");

    let at = |hour: i64, minute: i64| MORNING - (10 * 60 + 30) * 60 + (hour * 60 + minute) * 60;
    for (hour, minute) in [(8, 59), (12, 0), (13, 59), (18, 0), (23, 0)] {
        let claimed = store.claim_next_numbers_at(3, 1, at(hour, minute)).expect("claim");
        assert!(claimed.is_empty(), "took a number at {hour}:{minute:02} China time");
    }
    let first = store.claim_next_numbers_at(3, 1, at(9, 0)).expect("claim");
    assert_eq!(first.len(), 1, "09:00 is inside the window");
    let second = store.claim_next_numbers_at(3, 1, at(17, 59)).expect("claim");
    assert_eq!(second.len(), 1, "17:59 is inside the window");

    // HQ pauses the project: nothing is taken, even inside a window.
    next = apply(&store, next, vec![settings(2, Some(false))]);
    assert!(store.claim_next_numbers_at(3, 1, at(10, 0)).expect("claim").is_empty());
    // Older settings arriving late change nothing.
    next = apply(&store, next, vec![settings(1, Some(true))]);
    assert!(store.claim_next_numbers_at(3, 1, at(10, 0)).expect("claim").is_empty());
    // HQ runs it again, and drops the windows: any time will do.
    let mut open = settings(3, Some(true));
    if let DownEvent::ProjectSettings(settings) = &mut open {
        settings.calling_windows.clear();
    }
    apply(&store, next, vec![open]);
    assert_eq!(store.claim_next_numbers_at(3, 1, at(23, 0)).expect("claim").len(), 1);
}

#[test]
fn unit_project_and_one_click_controls_apply_by_version_and_report_what_was_done() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let mut next = load(&store, 1, 4, 6);
    store.start_task(4, PARAMS).expect("start");
    // Offline: two numbers dialed, one still ringing, before HQ's pause arrives.
    let claimed = store.claim_next_numbers(4, 2).expect("claim");
    no_answer(&store, claimed[0].attempt_id);

    let pause = |version| DownEvent::ProjectControl(ProjectControl { project_id: PROJECT_ID, version, state: RunState::Paused });
    next = apply(&store, next, vec![pause(5)]);
    assert!(store.claim_next_numbers(4, 1).expect("claim").is_empty(), "paused by HQ");
    let reports = controls_applied(&store);
    assert_eq!(reports.len(), 1);
    let report = &reports[0];
    assert_eq!(report.target, ControlTarget::Project(PROJECT_ID));
    assert_eq!((report.version, report.applied), (5, true));
    assert_eq!(report.dialed_before_applied, 2, "both dials came before HQ was heard from");
    assert_eq!(report.calls_in_progress, 1, "the ringing call finishes; none start");

    // An older run arriving later is skipped, and says so.
    let run = |version| DownEvent::ProjectControl(ProjectControl { project_id: PROJECT_ID, version, state: RunState::Running });
    next = apply(&store, next, vec![run(4)]);
    assert!(store.claim_next_numbers(4, 1).expect("claim").is_empty(), "still paused");
    let last = controls_applied(&store).pop().expect("report");
    assert_eq!((last.version, last.applied), (4, false));
    next = apply(&store, next, vec![run(6)]);
    let resumed = store.claim_next_numbers(4, 1).expect("claim");
    assert_eq!(resumed.len(), 1, "running again");
    no_answer(&store, resumed[0].attempt_id);

    // One-click stop of the batch, then a start of the whole site lifts it.
    let one_click = |scope, version, start| DownEvent::OneClick(OneClickControl { scope, version, start });
    next = apply(&store, next, vec![one_click(ControlScope::Batch(4), 1, false)]);
    assert!(store.claim_next_numbers(4, 1).expect("claim").is_empty(), "stopped by one-click");
    let stop = controls_applied(&store).pop().expect("report");
    assert_eq!((stop.target, stop.version, stop.applied), (ControlTarget::OneClick(ControlScope::Batch(4)), 1, true));
    store.stop_task(4).expect("site stops the task");
    next = apply(&store, next, vec![one_click(ControlScope::Site, 1, true)]);
    assert_eq!(store.claim_next_numbers(4, 1).expect("claim").len(), 1, "site-wide start runs the batch again");
    // A replayed entry (same seq) changes nothing and reports nothing more.
    let before = controls_applied(&store).len();
    store
        .apply_down(&DownEntry { seq: next - 1, event: one_click(ControlScope::Site, 1, true) })
        .expect("replay");
    assert_eq!(controls_applied(&store).len(), before);

    // Ended is for good.
    let end = DownEvent::ProjectControl(ProjectControl { project_id: PROJECT_ID, version: 7, state: RunState::Ended });
    next = apply(&store, next, vec![end, run(8)]);
    let _ = next;
    assert!(store.claim_next_numbers(4, 1).expect("claim").is_empty(), "an ended project never dials again");
}

#[test]
fn unit_recordings_are_offered_until_hq_holds_them_and_link_settings_apply_by_version_across_a_reopen() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().expect("tempdir");
    let recording = dir.path().join("call.wav");
    let bytes = b"RIFF....WAVEfmt recording bytes".to_vec();
    std::fs::write(&recording, &bytes).expect("write recording");
    let sha: [u8; 32] = Sha256::digest(&bytes).into();
    let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
    {
        let store = Store::open(&dir.path().join("site")).expect("open");
        let next = load(&store, 1, 5, 2);
        store.start_task(5, PARAMS).expect("start");
        let claimed = store.claim_next_numbers(5, 1).expect("claim");
        assert!(store.pending_recordings(10).expect("pending").is_empty(), "nothing recorded yet");
        let end = AttemptEnd {
            outcome: Outcome::Connected,
            hangup_side: None,
            ended_at: 2,
            recording_path: Some(recording.clone()),
            recording_sha256: Some(hex.clone()),
        };
        store.finish_attempt(claimed[0].attempt_id, &end).expect("finish");
        let pending = store.pending_recordings(10).expect("pending");
        assert_eq!(pending, vec![sync_link::blob::BlobRef { sha256: sha, size: bytes.len() as u64 }]);
        let mut opened = store.open_recording(&sha).expect("open").expect("present");
        let mut read = Vec::new();
        opened.reader.read_to_end(&mut read).expect("read");
        assert_eq!((opened.size, read), (bytes.len() as u64, bytes.clone()));
        assert!(store.open_recording(&[7; 32]).expect("open").is_none());

        assert_eq!(store.link_settings().expect("settings"), None);
        let settings = LinkSettings { version: 2, recording_upload_bytes_per_sec: Some(64_000) };
        let older = LinkSettings { version: 1, recording_upload_bytes_per_sec: None };
        apply(&store, next, vec![DownEvent::LinkSettings(settings), DownEvent::LinkSettings(older)]);
        store.recording_uploaded(&sha).expect("uploaded");
        assert!(store.pending_recordings(10).expect("pending").is_empty());

        let counts = appliance::store::AgentCounts { logged_in: 3, ready: 1, talking: 1, wrap_up: 0, on_break: 1 };
        store.set_agent_counts(counts);
        let figures = store.live_figures().expect("figures").expect("some");
        assert_eq!((figures.calls_dialing, figures.calls_today, figures.connected_today), (0, 1, 1));
        assert_eq!((figures.agents_logged_in, figures.agents_ready, figures.agents_talking, figures.agents_on_break), (3, 1, 1, 1));
        assert_eq!(figures.batches_remaining, vec![(5, 1)]);
    }
    let store = Store::open(&dir.path().join("site")).expect("reopen");
    assert_eq!(
        store.link_settings().expect("settings"),
        Some(LinkSettings { version: 2, recording_upload_bytes_per_sec: Some(64_000) })
    );
    assert!(store.pending_recordings(10).expect("pending").is_empty(), "uploaded stays uploaded");
}

#[test]
fn hq_popup_timing_overrides_the_agents_choice_only_when_hq_set_it() {
    use appliance::store::AgentSettings;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let next = load(&store, 1, 6, 1);
    store.create_extension("1001", "secret-pass").expect("extension");
    let agent = store.create_user("agent1", "agent-pass", Role::Agent, "坐席", Some("1001")).expect("agent");
    let ring = AgentSettings { popup_timing: "ring".into(), ..AgentSettings::default() };
    store.set_agent_settings(agent, &ring).expect("settings");
    assert!(store.pops_on_ring_for(6, agent).expect("timing"), "the agent's choice while HQ left it to the site");

    let settings = |version, popup_on_ring| {
        DownEvent::ProjectSettings(ProjectSettings { project_id: PROJECT_ID, version, popup_on_ring, ..ProjectSettings::default() })
    };
    let next = apply(&store, next, vec![settings(1, Some(false))]);
    assert!(!store.pops_on_ring_for(6, agent).expect("timing"), "HQ bound popup on answer");
    let next = apply(&store, next, vec![settings(2, None)]);
    assert!(store.pops_on_ring_for(6, agent).expect("timing"), "HQ handed it back to the site");
    store.set_agent_settings(agent, &AgentSettings::default()).expect("settings");
    apply(&store, next, vec![settings(3, Some(true))]);
    assert!(store.pops_on_ring_for(6, agent).expect("timing"), "HQ bound popup on ring");
}

#[test]
fn batch_controls_are_reported_with_what_was_done() {
    use sync_protocol::BatchControl;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let mut next = load(&store, 1, 8, 3);
    store.start_task(8, PARAMS).expect("start");
    let claimed = store.claim_next_numbers(8, 1).expect("claim");
    assert_eq!(claimed.len(), 1);
    let control = |version, priority| DownEvent::BatchControl(BatchControl { batch_id: 8, version, priority });
    next = apply(&store, next, vec![control(3, 1)]);
    apply(&store, next, vec![control(2, 80)]);
    let reports = controls_applied(&store);
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0].target, ControlTarget::Batch(8));
    assert_eq!((reports[0].version, reports[0].applied, reports[0].calls_in_progress), (3, true, 1));
    assert_eq!(reports[0].dialed_before_applied, 1);
    assert_eq!((reports[1].version, reports[1].applied), (2, false), "the older version was skipped");
    assert!(store.claim_next_numbers(8, 1).expect("claim").is_empty(), "still paused");
}

#[test]
fn unit_the_task_list_shows_hq_pauses_stops_and_ends() {
    use appliance::store::TaskStatus;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let mut next = load(&store, 1, 9, 2);
    store.start_task(9, PARAMS).expect("start");
    let status = |store: &Store| store.tasks().expect("tasks")[0].status;
    assert_eq!(status(&store), TaskStatus::Running);
    let project = |version, state| DownEvent::ProjectControl(ProjectControl { project_id: PROJECT_ID, version, state });
    next = apply(&store, next, vec![project(1, RunState::Paused)]);
    assert_eq!(status(&store), TaskStatus::Paused);
    next = apply(&store, next, vec![project(2, RunState::Running)]);
    assert_eq!(status(&store), TaskStatus::Running);
    next = apply(&store, next, vec![DownEvent::OneClick(OneClickControl { scope: ControlScope::Site, version: 1, start: false })]);
    assert_eq!(status(&store), TaskStatus::Paused);
    apply(&store, next, vec![project(3, RunState::Ended)]);
    assert_eq!(status(&store), TaskStatus::Ended);
}

#[test]
fn unit_hq_status_handed_back_to_the_site_lifts_a_settings_pause_but_not_a_control_pause() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let mut next = load(&store, 1, 12, 4);
    store.start_task(12, PARAMS).expect("start");
    let settings = |version, running| {
        DownEvent::ProjectSettings(ProjectSettings { project_id: PROJECT_ID, version, running, ..ProjectSettings::default() })
    };
    next = apply(&store, next, vec![settings(1, Some(false))]);
    assert!(store.claim_next_numbers(12, 1).expect("claim").is_empty(), "paused in HQ's settings");
    // HQ leaves the status to the site again (项目状态 unset): the pause is gone.
    next = apply(&store, next, vec![settings(2, None)]);
    assert_eq!(store.claim_next_numbers(12, 1).expect("claim").len(), 1, "the site decides again");

    // A project control's pause is HQ's own word: new settings without a status keep it.
    let pause = DownEvent::ProjectControl(ProjectControl { project_id: PROJECT_ID, version: 1, state: RunState::Paused });
    next = apply(&store, next, vec![pause, settings(3, None)]);
    assert!(store.claim_next_numbers(12, 1).expect("claim").is_empty(), "the control's pause holds");
    let run = DownEvent::ProjectControl(ProjectControl { project_id: PROJECT_ID, version: 2, state: RunState::Running });
    // Running by control, paused by settings: still held until both let it go.
    next = apply(&store, next, vec![run, settings(4, Some(false))]);
    assert!(store.claim_next_numbers(12, 1).expect("claim").is_empty(), "the settings' pause holds");
    apply(&store, next, vec![settings(5, Some(true))]);
    assert_eq!(store.claim_next_numbers(12, 1).expect("claim").len(), 1);
}

/// HQ's retention (down the link, by version) deletes recordings oldest first, and never one
/// HQ has not received: real files in a real store.
#[test]
fn unit_recordings_past_the_retention_are_deleted_oldest_first_once_hq_holds_them() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("site")).expect("open");
    let next = load(&store, 1, 5, 4);
    store.start_task(5, PARAMS).expect("start");
    let claimed = store.claim_next_numbers(5, 4).expect("claim");
    let now = MORNING;
    // Ended 40, 35, 31 and 1 days ago; HQ holds all but the one of 35 days ago.
    let mut files = Vec::new();
    for (claim, days_ago) in claimed.iter().zip([40, 35, 31, 1]) {
        let path = dir.path().join(format!("call-{}.wav", claim.attempt_id));
        let bytes = format!("RIFF recording {days_ago}").into_bytes();
        std::fs::write(&path, &bytes).expect("write recording");
        let sha: [u8; 32] = Sha256::digest(&bytes).into();
        let end = AttemptEnd {
            outcome: Outcome::Connected,
            hangup_side: None,
            ended_at: now - days_ago * 86_400,
            recording_path: Some(path.clone()),
            recording_sha256: Some(sha.iter().map(|b| format!("{b:02x}")).collect()),
        };
        store.finish_attempt(claim.attempt_id, &end).expect("finish");
        if days_ago != 35 {
            store.recording_uploaded(&sha).expect("uploaded");
        }
        files.push((claim.attempt_id, path, sha));
    }
    assert_eq!(store.delete_expired_recordings(now).expect("pass"), Default::default(), "no retention: kept for ever");

    let retention = |version, days| DownEvent::RecordingRetention(sync_protocol::RecordingRetention { version, days });
    apply(&store, next, vec![retention(2, Some(30)), retention(1, None)]);
    assert_eq!(store.recording_retention_days().expect("days"), Some(30), "the older version changes nothing");

    let pass = store.delete_expired_recordings(now).expect("pass");
    assert_eq!(pass.deleted, vec![files[0].0, files[2].0], "oldest first, and not the one HQ lacks");
    assert!(pass.bytes_freed > 0);
    assert!(!files[0].1.exists() && !files[2].1.exists());
    assert!(files[1].1.exists() && files[3].1.exists());
    assert!(store.open_recording(&files[0].2).expect("open").is_none(), "nothing left to offer");
    let pending = store.pending_recordings(10).expect("pending");
    assert_eq!(pending.iter().map(|blob| blob.sha256).collect::<Vec<_>>(), vec![files[1].2], "still going up to HQ");

    // Once HQ holds it, the next pass deletes it too; the recent one stays.
    store.recording_uploaded(&files[1].2).expect("uploaded");
    assert_eq!(store.delete_expired_recordings(now).expect("pass").deleted, vec![files[1].0]);
    assert!(!files[1].1.exists() && files[3].1.exists());
}
