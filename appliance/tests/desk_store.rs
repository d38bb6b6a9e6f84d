//! The desk's store rules: a number the agent types (坐席手动外呼) keeps to the caller of the
//! desk settings, the agent's projects, the black list, the calling windows and "one call
//! per number", goes up as a manual attempt and leaves the task's row alone; callbacks are
//! edited (重新编辑), scoped to the agent or the task, and handed to the task; migration 11
//! on a store of the release before it. That the driver hands an absent agent's callback
//! over after the grace and another agent's phone takes it is proven with real SIP in
//! `tests/tests/site_desk_pages.rs`.

mod common;

use appliance::store::{
    AttemptEnd, CallbackEdit, CallbackScope, Line, ManualDialError, Role, Store, TypedDialError, Viewer,
};
use sync_link::SiteStore;
use sync_protocol::{AttemptKind, CallingWindow, DownEvent, Outcome, PhoneListChange, PhoneListKind, ProjectSettings, UpEvent};

use common::*;

/// 2026-11-24 10:30 China time (02:30 UTC).
const MORNING: i64 = 1_795_487_400;

fn apply(store: &Store, first_seq: u64, events: Vec<DownEvent>) -> u64 {
    let entries = entries(first_seq, events);
    let next = entries.last().map(|entry| entry.seq + 1).unwrap_or(first_seq);
    for entry in &entries {
        store.apply_down(entry).expect("apply");
    }
    next
}

/// A store with batch 7 (two customers), agents 1 and 2 on extensions 1001 and 1002.
fn site() -> (tempfile::TempDir, Store, u64, u64, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    store.set_lines(vec![Line { name: "02150001111".into(), channels: 4 }]);
    let next = apply(&store, 1, batch_events(7, &rows(7, 2), 2, 50, 1));
    store.create_extension("1001", "secret-pass").expect("extension");
    store.create_extension("1002", "secret-pass").expect("extension");
    let agent1 = store.create_user("agent1", "agent-pass", Role::Agent, "坐席一", Some("1001")).expect("agent");
    let agent2 = store.create_user("agent2", "agent-pass", Role::Agent, "坐席二", Some("1002")).expect("agent");
    (dir, store, next, agent1, agent2)
}

fn choose_caller(store: &Store, user_id: u64) {
    let settings = appliance::store::AgentSettings {
        caller: "02150001111".into(),
        popup_timing: "answer".into(),
        popup_page: "default".into(),
    };
    store.set_agent_settings(user_id, &settings).expect("settings");
}

fn finish(store: &Store, attempt_id: u64) -> sync_protocol::CallAttempt {
    let end = AttemptEnd { outcome: Outcome::NoAnswer, hangup_side: None, ended_at: MORNING + 30, recording_path: None, recording_sha256: None };
    store.finish_attempt(attempt_id, &end).expect("finish")
}

fn new_rows(store: &Store) -> usize {
    let viewer = Viewer { username: "siteadmin".into(), unmask: true };
    store.customers(&viewer, None, None, Some("new"), 100).expect("customers").len()
}

#[test]
fn a_typed_number_keeps_to_the_guards_and_goes_up_as_a_manual_attempt() {
    let (_dir, store, next, agent1, agent2) = site();
    let phone = "13800130700";
    // Manual 3.2.1.1: no caller chosen in the desk settings, no manual dial.
    assert!(matches!(store.claim_typed_number(None, phone, agent1, "agent1", MORNING), Err(TypedDialError::NoCaller)));
    choose_caller(&store, agent1);
    // Any number: one that is no customer is dialed under the agent's project, with an
    // empty customer card and the project's record form.
    let other = store.claim_typed_number(None, "13911112222", agent1, "agent1", MORNING).expect("any number");
    assert_eq!(other.claimed.batch_id, 7);
    let popup = store.popup_for(other.claimed.attempt_id, Some("agent1")).expect("popup").expect("a popup");
    assert!(popup.fields.iter().all(|field| field.value.is_empty()), "an empty customer card: {popup:?}");
    assert!(popup.record_fields.iter().any(|field| field.key == "result"), "the project's form: {popup:?}");
    assert_eq!(finish(&store, other.claimed.attempt_id).kind, AttemptKind::Manual);
    // An agent in no task: under no project, with the site's default form (a note).
    store.set_task_agents(7, &[agent2]).expect("task agents");
    assert!(
        matches!(store.claim_typed_number(Some(PROJECT_ID), phone, agent1, "agent1", MORNING), Err(TypedDialError::NotYours)),
        "a project whose task the agent does not work"
    );
    let loose = store.claim_typed_number(None, "13911112223", agent1, "agent1", MORNING).expect("no project");
    assert_eq!(loose.claimed.batch_id, 0);
    let popup = store.popup_for(loose.claimed.attempt_id, Some("agent1")).expect("popup").expect("a popup");
    let keys: Vec<&str> = popup.record_fields.iter().map(|field| field.key.as_str()).collect();
    assert_eq!((popup.fields.len(), keys), (0, vec!["备注"]), "no project: no customer field, the default form");
    store.save_record(loose.claimed.attempt_id, "agent1", &[("备注".into(), "打错了".into())]).expect("saved");
    assert_eq!(finish(&store, loose.claimed.attempt_id).kind, AttemptKind::Manual);
    store.set_task_agents(7, &[agent1, agent2]).expect("task agents");
    assert!(matches!(store.claim_typed_number(Some(99), phone, agent1, "agent1", MORNING), Err(TypedDialError::NotYours)), "another project");

    // HQ's calling windows, in China time.
    let window = CallingWindow { start_minute: 9 * 60, end_minute: 12 * 60 };
    let settings = ProjectSettings { project_id: PROJECT_ID, version: 1, calling_windows: vec![window], ..ProjectSettings::default() };
    let next = apply(&store, next, vec![DownEvent::ProjectSettings(settings)]);
    match store.claim_typed_number(None, phone, agent1, "agent1", MORNING + 9 * 3600) {
        Err(TypedDialError::OutsideWindows { now, windows }) => assert_eq!((now.as_str(), windows.as_str()), ("19:30", "09:00-12:00")),
        other => panic!("dialed outside the window: {other:?}"),
    }
    // HQ's black list.
    let black = DownEvent::PhoneList(PhoneListChange { phone: phone.into(), version: 1, list: Some(PhoneListKind::Black), note: "投诉".into() });
    let next = apply(&store, next, vec![black]);
    assert!(matches!(store.claim_typed_number(None, phone, agent1, "agent1", MORNING), Err(TypedDialError::BlackListed)));
    let off = DownEvent::PhoneList(PhoneListChange { phone: phone.into(), version: 2, list: None, note: String::new() });
    apply(&store, next, vec![off]);

    let before = new_rows(&store);
    let claim = store.claim_typed_number(None, phone, agent1, "agent1", MORNING).expect("dialable");
    assert_eq!((claim.caller.as_str(), claim.claimed.batch_id, claim.ringing_phone.as_str()), ("02150001111", 7, "138****0700"));
    // One call per number at a time, whoever dials.
    choose_caller(&store, agent2);
    assert!(matches!(store.claim_typed_number(None, phone, agent2, "agent2", MORNING), Err(TypedDialError::BusyNumber)));
    let attempt = finish(&store, claim.claimed.attempt_id);
    assert_eq!(attempt.kind, AttemptKind::Manual);
    assert!(!attempt.kind.is_task_dial(), "HQ's data filter does not count it");
    assert_eq!(new_rows(&store), before, "the task may still dial the row");
    let up: Vec<AttemptKind> = store
        .outbox_after(0, 1000)
        .expect("outbox")
        .into_iter()
        .filter_map(|entry| match entry.event {
            UpEvent::CallAttemptDetail(detail) if detail.attempt.attempt_id == claim.claimed.attempt_id => Some(detail.attempt.kind),
            _ => None,
        })
        .collect();
    assert_eq!(up, vec![AttemptKind::Manual], "what syncs up is marked manual");
}

#[test]
fn a_callback_is_edited_by_its_agent_and_a_handed_over_one_taken_by_the_task() {
    let (_dir, store, _next, agent1, agent2) = site();
    choose_caller(&store, agent1);
    store.set_task_agents(7, &[agent1, agent2]).expect("task agents");
    let claim = store.claim_typed_number(None, "13800130701", agent1, "agent1", MORNING).expect("dial");
    finish(&store, claim.claimed.attempt_id);
    let callback_id = store
        .schedule_callback_for(claim.claimed.attempt_id, "agent1", "下午回访", MORNING + 3600, "", CallbackScope::Agent)
        .expect("schedule");

    // 重新编辑: only by its agent, and not once it is done.
    let edit = CallbackEdit { title: "改到明天".into(), due_at: MORNING + 86_400, note: "客户出差".into(), scope: CallbackScope::Agent };
    assert!(store.edit_callback(callback_id, "agent2", &edit).is_err(), "another agent's callback");
    store.edit_callback(callback_id, "agent1", &edit).expect("edit");
    let viewer = Viewer { username: "agent1".into(), unmask: false };
    let listed = store.callbacks(&viewer, Some("agent1"), None, None).expect("list");
    assert_eq!((listed[0].title.as_str(), listed[0].due_at, listed[0].note.as_str()), ("改到明天", MORNING + 86_400, "客户出差"));
    let ups: Vec<i64> = store
        .outbox_after(0, 1000)
        .expect("outbox")
        .into_iter()
        .filter_map(|entry| match entry.event {
            UpEvent::Callback(callback) if callback.callback_id == callback_id => Some(callback.due_at),
            _ => None,
        })
        .collect();
    assert_eq!(ups, vec![MORNING + 3600, MORNING + 86_400], "the reschedule goes up");

    // "This agent only": another agent of the task cannot take it, until it is handed over.
    store.arm_callback(callback_id, "agent1").expect("arm");
    let due = store.due_callbacks(MORNING + 86_400).expect("due");
    assert_eq!((due[0].scope.as_str(), due[0].batch_id), ("agent", 7));
    assert!(matches!(store.claim_callback(callback_id, agent2, "agent2"), Err(ManualDialError::NotAllowed(_))));
    assert!(store.hand_over_callback(callback_id, MORNING + 90_000).expect("hand over"));
    assert!(!store.hand_over_callback(callback_id, MORNING + 90_001).expect("again"), "handed over once");
    assert_eq!(store.callback_takers(7).expect("takers"), vec![agent1, agent2]);
    let taken = store.claim_callback(callback_id, agent2, "agent2").expect("the task takes it");
    assert_eq!(taken.claimed.phone, "13800130701");
    let viewer2 = Viewer { username: "agent2".into(), unmask: false };
    let mine = store.callbacks(&viewer2, Some("agent2"), None, None).expect("list");
    assert_eq!((mine[0].state.as_str(), mine[0].scope.as_str(), mine[0].handed_over_at), ("done", "task", Some(MORNING + 90_000)));
    assert!(store.edit_callback(callback_id, "agent2", &edit).is_err(), "a done callback is not edited");

    // The site admin's grace period.
    assert_eq!(store.callback_grace_minutes().expect("grace"), 10);
    assert!(store.set_callback_grace_minutes(0).expect("set"));
    assert!(!store.set_callback_grace_minutes(1441).expect("set"), "at most a day");
    assert_eq!(store.callback_grace_minutes().expect("grace"), 0);
}

#[test]
fn a_store_from_before_callback_scopes_keeps_its_callbacks_as_the_agents_own() {
    let (dir, store, _next, agent1, _agent2) = site();
    choose_caller(&store, agent1);
    let claim = store.claim_typed_number(None, "13800130700", agent1, "agent1", MORNING).expect("dial");
    finish(&store, claim.claimed.attempt_id);
    let callback_id = store.schedule_callback(claim.claimed.attempt_id, "agent1", "回访", MORNING + 60, "").expect("schedule");
    drop(store);
    // The file as the release before migration 11 left it.
    let conn = rusqlite::Connection::open(dir.path().join("site.db")).expect("sqlite");
    conn.execute_batch(
        "ALTER TABLE callbacks DROP COLUMN scope; ALTER TABLE callbacks DROP COLUMN handed_over_at;
         DROP TABLE desk_settings;
         DROP TRIGGER batch_joins_project; DROP TABLE project_tasks; DROP TABLE project_task_agents;
         ALTER TABLE users DROP COLUMN disabled;
         DROP TABLE site_profile; ALTER TABLE sync_state DROP COLUMN restored_outbox_seq;
         DROP TABLE recording_retention;
         DROP TABLE leases; DROP TABLE pool_batches;
         DROP TABLE list_columns; DROP TABLE unlisted_fields;
         DROP TABLE call_quality;
         PRAGMA user_version = 10;",
    )
    .expect("downgrade");
    drop(conn);
    let store = Store::open(dir.path()).expect("upgrade");
    let viewer = Viewer { username: "agent1".into(), unmask: false };
    let listed = store.callbacks(&viewer, Some("agent1"), None, None).expect("list");
    assert_eq!((listed[0].callback_id, listed[0].scope.as_str(), listed[0].handed_over_at), (callback_id, "agent", None));
    assert_eq!(store.callback_grace_minutes().expect("grace"), 10);
}
