//! The site store: outbox written with the change, idempotent down log, manifest checks,
//! dialing order, durability across a reopen.

mod common;

use appliance::store::{AttemptEnd, Role, SaveRecordError, StartTaskError, Store, TaskParams, TaskStatus};
use sync_link::SiteStore;
use sync_protocol::{BatchChunk, BatchControl, DownEntry, DownEvent, HangupSide, Outcome, UpEvent};

use common::*;

const PARAMS: TaskParams = TaskParams { ratio: 2, max_concurrency: 4, ring_seconds: 35 };

fn load_batch(store: &Store, first_seq: u64, batch_id: u64, n_rows: u64, priority: u8, imported_at: i64) -> u64 {
    let rows = rows(batch_id, n_rows);
    let entries = entries(first_seq, batch_events(batch_id, &rows, 2, priority, imported_at));
    let last = entries.last().map(|entry| entry.seq).unwrap_or(first_seq);
    for entry in &entries {
        store.apply_down(entry).expect("apply");
    }
    last
}

fn connected_end(at: i64) -> AttemptEnd {
    AttemptEnd {
        outcome: Outcome::Connected,
        hangup_side: Some(HangupSide::Customer),
        ended_at: at,
        recording_path: None,
        recording_sha256: Some("ab".repeat(32)),
    }
}

#[test]
fn finished_attempt_and_record_go_to_the_outbox_with_the_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    load_batch(&store, 1, 10, 3, 50, 1_700_000_000);
    store.start_task(10, PARAMS).expect("start");

    let claimed = store.claim_next_number(10).expect("claim").expect("a number");
    assert_eq!(store.outbox_len().expect("len"), 0, "dialing alone reports nothing yet");
    store.mark_answered(claimed.attempt_id, 1_700_000_100).expect("answered");
    store.mark_bridged(claimed.attempt_id, "agent1").expect("bridged");
    let attempt = store.finish_attempt(claimed.attempt_id, &connected_end(1_700_000_160)).expect("finish");
    assert_eq!(attempt.talk_seconds, 60);
    assert_eq!(attempt.agent.as_deref(), Some("agent1"));

    // A duplicate end event changes nothing and queues nothing.
    store.finish_attempt(claimed.attempt_id, &connected_end(1_700_000_999)).expect("again");

    let outbox = store.outbox_after(0, 100).expect("outbox");
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].epoch, store.epoch());
    assert_eq!(outbox[0].event.call_attempt(), Some(&attempt));
    let UpEvent::CallAttemptDetail(detail) = &outbox[0].event else { panic!("{:?}", outbox[0].event) };
    // What HQ's reports need besides the attempt: the phone rang until it was answered.
    let answered = attempt.answered_at.expect("answered");
    assert_eq!(i64::from(detail.ring_seconds), (answered - attempt.started_at).max(0));
    assert_eq!(detail.queue_seconds, 0);

    // A record that fails the form writes neither the record nor an outbox entry.
    let missing = store.save_record(claimed.attempt_id, "agent1", &[("note".into(), "hi".into())]);
    assert!(matches!(missing, Err(SaveRecordError::Invalid(ref m)) if m.contains("result")), "{missing:?}");
    let bad_option = store.save_record(claimed.attempt_id, "agent1", &[("result".into(), "也许".into())]);
    assert!(matches!(bad_option, Err(SaveRecordError::Invalid(_))), "{bad_option:?}");
    let not_yours = store.save_record(claimed.attempt_id, "agent2", &[("result".into(), "成功".into())]);
    assert!(matches!(not_yours, Err(SaveRecordError::NotYours(_))), "{not_yours:?}");
    assert_eq!(store.outbox_len().expect("len"), 1);
    assert_eq!(store.unsaved_attempts("agent1").expect("unsaved"), vec![claimed.attempt_id]);

    let record = store
        .save_record(claimed.attempt_id, "agent1", &[("result".into(), "成功".into()), ("note".into(), " 回访 ".into())])
        .expect("save");
    assert_eq!(record.values, vec![("result".to_string(), "成功".to_string()), ("note".to_string(), "回访".to_string())]);
    let outbox = store.outbox_after(outbox[0].seq, 100).expect("outbox");
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].event, UpEvent::BusinessRecord(record));
    assert!(store.unsaved_attempts("agent1").expect("unsaved").is_empty());

    // Acknowledged entries go; a foreign epoch's acknowledgement drops nothing.
    store.outbox_acked(store.epoch().wrapping_add(1), u64::MAX >> 1).expect("foreign ack");
    assert_eq!(store.outbox_len().expect("len"), 2);
    store.outbox_acked(store.epoch(), outbox[0].seq - 1).expect("ack");
    assert_eq!(store.outbox_after(0, 100).expect("outbox").len(), 1);
}

#[test]
fn down_entries_apply_once_with_the_cursor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let rows = rows(20, 5);
    let entries = entries(1, batch_events(20, &rows, 2, 50, 1));
    for entry in &entries {
        store.apply_down(entry).expect("apply");
    }
    let (_, applied) = store.sync_position().expect("position");
    assert_eq!(applied, entries.len() as u64);
    store.start_task(20, PARAMS).expect("start");
    let first = store.claim_next_number(20).expect("claim").expect("number");

    // Replaying the whole log (a reconnect that re-sends) changes nothing: same row count,
    // and the number already taken stays taken.
    for entry in &entries {
        store.apply_down(entry).expect("replay");
    }
    // Even an old entry with different content is ignored: the cursor decides.
    let stale = DownEntry {
        seq: 2,
        event: DownEvent::BatchChunk(BatchChunk { batch_id: 20, chunk_idx: 0, rows: Vec::new() }),
    };
    store.apply_down(&stale).expect("stale");
    let task = store.tasks().expect("tasks").into_iter().find(|t| t.batch_id == 20).expect("task");
    assert_eq!(task.numbers, 5);
    assert_eq!(task.dialed, 1);
    assert_eq!(task.status, TaskStatus::Running);
    let second = store.claim_next_number(20).expect("claim").expect("number");
    assert_ne!(first.row_id, second.row_id);
    assert_eq!(store.sync_position().expect("position").1, entries.len() as u64);
}

#[test]
fn a_batch_whose_hash_does_not_match_is_not_dialable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let rows = rows(30, 4);
    let mut events = batch_events(30, &rows, 2, 50, 1);
    // Corrupt one row of the first chunk in transit.
    if let DownEvent::BatchChunk(chunk) = &mut events[1] {
        chunk.rows[0].phone = "13900000000".into();
    }
    for entry in entries(1, events) {
        store.apply_down(&entry).expect("apply");
    }
    let task = store.tasks().expect("tasks").into_iter().find(|t| t.batch_id == 30).expect("task");
    assert_eq!(task.status, TaskStatus::Receiving);
    assert!(task.problem.as_deref().unwrap_or_default().contains("hash"), "{task:?}");
    let refused = store.start_task(30, PARAMS);
    assert!(matches!(refused, Err(StartTaskError::NotReady { .. })), "{refused:?}");
    assert_eq!(store.claim_next_number(30).expect("claim"), None);

    // HQ re-sends the chunk correctly: the batch checks out.
    let resent = DownEntry {
        seq: 100,
        event: DownEvent::BatchChunk(BatchChunk { batch_id: 30, chunk_idx: 0, rows: rows[..2].to_vec() }),
    };
    store.apply_down(&resent).expect("resend");
    let task = store.tasks().expect("tasks").into_iter().find(|t| t.batch_id == 30).expect("task");
    assert_eq!(task.status, TaskStatus::NotStarted, "{task:?}");
    store.start_task(30, PARAMS).expect("start");
    assert!(store.claim_next_number(30).expect("claim").is_some());
}

#[test]
fn a_manifest_with_missing_rows_waits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let rows = rows(31, 4);
    let mut events = batch_events(31, &rows, 2, 50, 1);
    events.remove(2); // the second chunk never arrived
    for entry in entries(1, events) {
        store.apply_down(&entry).expect("apply");
    }
    let task = store.tasks().expect("tasks").into_iter().find(|t| t.batch_id == 31).expect("task");
    assert_eq!(task.status, TaskStatus::Receiving);
    assert!(task.problem.as_deref().unwrap_or_default().contains("4 rows"), "{task:?}");
}

#[test]
fn batch_control_applies_by_version_and_pauses_or_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let seq = load_batch(&store, 1, 40, 2, 50, 1);
    store.start_task(40, PARAMS).expect("start");
    let control = |seq, version, priority| DownEntry {
        seq,
        event: DownEvent::BatchControl(BatchControl { batch_id: 40, version, priority }),
    };
    store.apply_down(&control(seq + 1, 2, 1)).expect("pause");
    let status = |store: &Store| store.tasks().expect("tasks")[0].status;
    assert_eq!(status(&store), TaskStatus::Paused);
    assert!(store.dialable_tasks().expect("dialable").is_empty());
    assert_eq!(store.claim_next_number(40).expect("claim"), None);
    // An older version arriving late is ignored.
    store.apply_down(&control(seq + 2, 1, 80)).expect("stale");
    assert_eq!(status(&store), TaskStatus::Paused);
    store.apply_down(&control(seq + 3, 3, 60)).expect("resume");
    assert_eq!(status(&store), TaskStatus::Running);
    store.apply_down(&control(seq + 4, 4, 0)).expect("end");
    assert_eq!(status(&store), TaskStatus::Ended);
    assert!(matches!(store.start_task(40, PARAMS), Err(StartTaskError::Ended(40))));
}

#[test]
fn numbers_come_by_priority_then_import_then_row_order_one_attempt_per_number() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let seq = load_batch(&store, 1, 50, 3, 50, 1_000);
    store.start_task(50, PARAMS).expect("start");
    let order: Vec<u64> = (0..3)
        .map(|_| store.claim_next_number(50).expect("claim").expect("number").row_id)
        .collect();
    assert_eq!(order, vec![50_000, 50_001, 50_002]);
    assert_eq!(store.claim_next_number(50).expect("claim"), None, "each row is dialed once");

    // A second batch holding a number that is being dialed right now: that row waits.
    let mut shared = rows(51, 2);
    shared[0].phone = rows(50, 1)[0].phone.clone();
    for entry in entries(seq + 1, batch_events(51, &shared, 2, 50, 2_000)) {
        store.apply_down(&entry).expect("apply");
    }
    store.start_task(51, PARAMS).expect("start");
    let next = store.claim_next_number(51).expect("claim").expect("number");
    assert_eq!(next.row_id, 51_001, "the number in progress elsewhere is skipped");
    assert_eq!(store.claim_next_number(51).expect("claim"), None);
    store.finish_attempt(1, &connected_end(1_100)).expect("finish");
    assert_eq!(store.claim_next_number(51).expect("claim").expect("number").row_id, 51_000);
}

#[test]
fn popup_masks_the_number_and_leaves_out_hidden_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    load_batch(&store, 1, 60, 1, 50, 1);
    store.start_task(60, PARAMS).expect("start");
    let claimed = store.claim_next_number(60).expect("claim").expect("number");
    let popup = store.popup(claimed.attempt_id).expect("popup").expect("exists");
    assert_eq!(claimed.phone, "13800136000");
    assert_eq!(popup.phone, "138****6000");
    assert_eq!(popup.fields.len(), 1);
    assert_eq!((popup.fields[0].title.as_str(), popup.fields[0].value.as_str()), ("姓名", "客户0"));
    assert_eq!(popup.record_fields[0].kind, "single_choice");
    assert_eq!(popup.record_fields[0].options, vec!["成功".to_string(), "失败".to_string()]);
    assert!(popup.record_fields[0].required);
}

#[test]
fn a_popup_without_its_project_definition_fails_closed() {
    // The batch arrived but its project definition has not (or no longer decodes): the
    // store cannot know the number is unmasked or which fields are hidden, so it shows
    // neither the number nor any field, as every other view does without a definition.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let rows = rows(61, 1);
    let events: Vec<DownEvent> = batch_events(61, &rows, 2, 50, 1)
        .into_iter()
        .filter(|event| !matches!(event, DownEvent::Project(_)))
        .collect();
    for entry in entries(1, events) {
        store.apply_down(&entry).expect("apply");
    }
    let claimed = store.claim_next_number(61).expect("claim").expect("number");
    assert_eq!(claimed.phone, "13800136100");
    let popup = store.popup_for(claimed.attempt_id, Some("agent1")).expect("popup").expect("exists");
    assert_eq!(popup.phone, "138****6100", "the number is masked");
    assert!(popup.fields.is_empty(), "no field is shown, the hidden one least of all: {:?}", popup.fields);
    assert!(popup.record_fields.is_empty() && popup.script.is_empty(), "{popup:?}");
}

#[test]
fn everything_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (epoch, attempt_id) = {
        let store = Store::open(dir.path()).expect("open");
        load_batch(&store, 1, 70, 2, 50, 1);
        store.start_task(70, PARAMS).expect("start");
        store.create_extension("8001", "secret1").expect("extension");
        store.create_user("agent1", "password1", Role::Agent, "小王", Some("8001")).expect("agent");
        let claimed = store.claim_next_number(70).expect("claim").expect("number");
        store.mark_bridged(claimed.attempt_id, "agent1").expect("bridged");
        store.finish_attempt(claimed.attempt_id, &connected_end(10)).expect("finish");
        // A second call is in progress when the power goes.
        store.claim_next_number(70).expect("claim").expect("number");
        (store.epoch(), claimed.attempt_id)
    };
    let store = Store::open(dir.path()).expect("reopen");
    assert_eq!(store.epoch(), epoch, "the epoch is drawn once");
    assert_eq!(store.outbox_len().expect("len"), 1);
    assert_eq!(store.sync_position().expect("position").1, 3, "project, one chunk, manifest");
    assert!(store.verify_login("agent1", "password1").expect("login").is_some());
    assert!(store.verify_login("agent1", "wrong-password").expect("login").is_none());
    // The task is the project's (S1), started through batch 70.
    assert_eq!(store.dialable_tasks().expect("dialable"), vec![(PROJECT_ID, PARAMS)]);
    assert_eq!(store.unsaved_attempts("agent1").expect("unsaved"), vec![attempt_id]);
    // The interrupted call is closed as failed and reported; its number is not stuck.
    assert_eq!(store.recover_interrupted().expect("recover"), 1);
    assert_eq!(store.outbox_len().expect("len"), 2);
    let outbox = store.outbox_after(0, 10).expect("outbox");
    assert!(outbox[1].event.call_attempt().is_some_and(|a| a.outcome == Outcome::Failed));
    let task = &store.tasks().expect("tasks")[0];
    assert_eq!((task.numbers, task.dialed, task.connected), (2, 2, 1));
    // A brand-new store draws a different epoch.
    let other = tempfile::tempdir().expect("tempdir");
    assert_ne!(Store::open(other.path()).expect("open").epoch(), epoch);
}

#[test]
fn accounts_and_extensions_are_validated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    assert!(store.create_extension("80a1", "secret1").is_err());
    assert!(store.create_extension("8001", "123").is_err());
    store.create_extension("8001", "secret1").expect("extension");
    assert!(store.create_extension("8001", "secret1").is_err(), "duplicate");
    let no_extension = store.create_user("agent1", "password1", Role::Agent, "x", Some("9999"));
    assert!(no_extension.expect_err("missing extension").to_string().contains("9999"));
    store.create_user("agent1", "password1", Role::Agent, "x", Some("8001")).expect("agent");
    let taken = store.create_user("agent1", "password2", Role::Agent, "y", Some("8001"));
    assert!(taken.expect_err("taken").to_string().contains("taken"));
}

#[test]
fn a_calls_quality_is_kept_per_leg_and_survives_a_reopen() {
    use hardware::quality::{CallQuality, LegQuality};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    load_batch(&store, 1, 60, 2, 50, 1_700_000_000);
    store.start_task(60, PARAMS).expect("start");
    let first = store.claim_next_number(60).expect("claim").expect("a number");
    let second = store.claim_next_number(60).expect("claim").expect("a number");
    let customer = LegQuality { loss_percent: 5.0, jitter_ms: 1.5, mos: 3.9, received: 380 };
    store
        .record_call_quality(first.attempt_id, &CallQuality { customer: Some(customer), agent: None })
        .expect("quality");
    // A call with no media on either leg (never answered) leaves no row.
    store.record_call_quality(second.attempt_id, &CallQuality::default()).expect("no quality");
    // The figures go up to HQ with the row (protocol 4), the second call's not at all.
    let up: Vec<UpEvent> = store.outbox_after(0, 100).expect("outbox").into_iter().map(|entry| entry.event).collect();
    let report = sync_protocol::CallQualityReport {
        attempt_id: first.attempt_id,
        customer: Some(sync_protocol::LegQualityFigures { loss_percent: 5.0, jitter_ms: 1.5, mos: 3.9 }),
        agent: None,
    };
    assert_eq!(up, vec![UpEvent::CallQuality(report)]);
    drop(store);

    let store = Store::open(dir.path()).expect("reopen");
    let kept = store.call_quality(first.attempt_id).expect("read").expect("kept");
    let leg = kept.customer.expect("the customer leg");
    assert_eq!((leg.loss_percent, leg.jitter_ms, leg.mos), (5.0, 1.5, 3.9));
    assert_eq!(kept.agent, None, "the agent sent nothing");
    assert_eq!(store.call_quality(second.attempt_id).expect("read"), None);

    // The monitor's poor calls: 5 % lost is poor whatever the MOS; a clean call is not.
    let clean = LegQuality { loss_percent: 0.0, jitter_ms: 0.4, mos: 4.4, received: 500 };
    store.record_call_quality(second.attempt_id, &CallQuality { customer: Some(clean), agent: Some(clean) }).expect("quality");
    let poor = store.poor_quality_calls(20).expect("poor calls");
    assert_eq!(poor.len(), 1, "{poor:?}");
    assert_eq!((poor[0].attempt_id, poor[0].customer, poor[0].agent_leg), (first.attempt_id, Some((5.0, 3.9)), None));
    assert!(poor[0].phone.contains("****"), "masked: {}", poor[0].phone);
}
