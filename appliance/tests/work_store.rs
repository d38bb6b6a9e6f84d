//! The site's working day at the store level: task parameters against the caller's lines
//! (the manual's worked example), HQ-bound values, task agents, attribution and allocation,
//! one-click order, callbacks, masking of every view, and the outbox keeping everything
//! while the HQ link is down.

mod common;

use appliance::store::{
    AttemptEnd, CallFilter, Line, ManualDialError, Role, SiteDialMode, SiteRule, StartTaskError, Store, TaskExtras,
    TaskParams, Viewer, suggested_max_concurrency,
};
use sync_link::SiteStore;
use sync_protocol::{AttemptKind, CallbackState, DialMode, DownEntry, DownEvent, HangupSide, Outcome, UpEvent};

use common::*;

fn load(store: &Store, first_seq: u64, batch_id: u64, n_rows: u64, priority: u8, imported_at: i64) -> u64 {
    let rows = rows(batch_id, n_rows);
    let entries = entries(first_seq, batch_events(batch_id, &rows, 2, priority, imported_at));
    let next = entries.last().map(|entry| entry.seq + 1).unwrap_or(first_seq);
    for entry in &entries {
        store.apply_down(entry).expect("apply");
    }
    next
}

fn agents(store: &Store, n: usize) -> Vec<u64> {
    (0..n)
        .map(|idx| {
            let extension = format!("10{:02}", idx + 1);
            store.create_extension(&extension, "secret-pass").expect("extension");
            store.create_user(&format!("agent{}", idx + 1), "agent-pass", Role::Agent, "坐席", Some(&extension)).expect("agent")
        })
        .collect()
}

fn one_click() -> TaskExtras {
    TaskExtras { dial_mode: SiteDialMode::OneClick, ..TaskExtras::default() }
}

const MASKED_VIEWER: fn() -> Viewer = || Viewer { username: "siteadmin".into(), unmask: false };

#[test]
fn max_concurrency_never_above_the_callers_lines_as_in_the_manual() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    store.set_lines(vec![Line { name: "02150001111".into(), channels: 20 }, Line { name: "spare".into(), channels: 4 }]);
    load(&store, 1, 10, 4, 50, 1);
    let five = agents(&store, 5);
    store.set_task_agents(10, &five).expect("task agents");
    let extras = TaskExtras { caller: "02150001111".into(), ..TaskExtras::default() };
    store.set_task_extras(10, &extras).expect("extras");

    // 20 lines, 5 agents: 1:3 gives 15, 1:5 gives 20 (not 25).
    assert_eq!(suggested_max_concurrency(20, 5, 3), 15);
    assert_eq!(suggested_max_concurrency(20, 5, 5), 20);
    let too_many = store.start_task(10, TaskParams { ratio: 5, max_concurrency: 25, ring_seconds: 35 });
    match too_many {
        Err(StartTaskError::Invalid(message)) => {
            assert!(message.contains("above the 20 lines of caller 02150001111"), "{message}")
        }
        other => panic!("25 on a 20-line caller must be refused: {other:?}"),
    }
    let started = store.start_task(10, TaskParams { ratio: 3, max_concurrency: 15, ring_seconds: 35 }).expect("15 fits");
    assert_eq!(started.max_concurrency, 15);
    store.start_task(10, TaskParams { ratio: 5, max_concurrency: 20, ring_seconds: 35 }).expect("20 fits");

    // A caller that is not one of the site's lines is refused, naming the lines.
    let unknown = TaskExtras { caller: "999".into(), ..TaskExtras::default() };
    let error = store.set_task_extras(10, &unknown).expect_err("unknown caller").to_string();
    assert!(error.contains("02150001111, spare"), "{error}");
    let bad_cool_down = TaskExtras { cool_down: 61, ..TaskExtras::default() };
    assert!(store.set_task_extras(10, &bad_cool_down).is_err());
    let bad_answer = TaskExtras { answer_mode: "maybe".into(), ..TaskExtras::default() };
    assert!(store.set_task_extras(10, &bad_answer).is_err());
}

#[test]
fn hq_bound_values_win_over_the_sites() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let mut next = load(&store, 1, 10, 2, 50, 1);
    let mut bound = project(2);
    bound.params.ratio = Some(4);
    bound.params.ring_seconds = Some(40);
    bound.params.dial_mode = Some(DialMode::OneClick);
    store.apply_down(&DownEntry { seq: next, event: DownEvent::Project(bound) }).expect("project v2");
    next += 1;
    let _ = next;
    let effective = store.start_task(10, TaskParams { ratio: 2, max_concurrency: 3, ring_seconds: 20 }).expect("start");
    assert_eq!((effective.ratio, effective.ring_seconds, effective.max_concurrency), (4, 40, 3));
    // The site asks for predictive; HQ said one-click, and one-click it stays.
    let saved = store.set_task_extras(10, &TaskExtras::default()).expect("extras");
    assert_eq!(saved.dial_mode, SiteDialMode::OneClick);
    let settings = store.task_settings(10).expect("read").expect("exists");
    assert!(settings.bound.ratio && settings.bound.ring_seconds && settings.bound.dial_mode);
    assert!(!settings.bound.max_concurrency);
    // A one-click task is not handed to the predictive cores.
    assert!(store.dialable_tasks().expect("dialable").is_empty());
}

#[test]
fn task_agents_limit_who_works_a_task() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    load(&store, 1, 10, 2, 50, 1);
    let ids = agents(&store, 3);
    assert!(store.works_task(10, ids[2]).expect("works"), "no task agents means everyone");
    store.set_task_agents(10, &ids[..2]).expect("set");
    assert!(store.works_task(10, ids[0]).expect("works"));
    assert!(!store.works_task(10, ids[2]).expect("works"));
    let admin = store.create_user("boss", "boss-pass", Role::Admin, "boss", None).expect("admin");
    assert!(store.set_task_agents(10, &[admin]).is_err(), "only agents work a queue");
}

#[test]
fn allocation_follows_the_rules_and_one_click_takes_owned_numbers_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    // Batch 20 (priority 50, imported earlier) and batch 21 (priority 80, imported later).
    let next = load(&store, 1, 20, 4, 50, 100);
    load(&store, next, 21, 2, 80, 200);
    let ids = agents(&store, 2);
    // 客户1 and 客户3 go to agent1; 客户2 to agent2 (the first valid rule for 客户2 names an
    // account that does not exist, so it does not count).
    let rules = vec![
        SiteRule { conditions: vec![("name".into(), vec!["客户1".into(), "客户3".into()])], all_match: false, agent: "agent1".into() },
        SiteRule { conditions: vec![("name".into(), vec!["客户2".into()])], all_match: false, agent: "nobody".into() },
        SiteRule { conditions: vec![("name".into(), vec!["客户2".into()])], all_match: false, agent: "agent2".into() },
    ];
    store.set_site_rules(PROJECT_ID, &rules).expect("rules");
    let report = store.allocate(20).expect("allocate");
    assert_eq!((report.attributed, report.not_found), (3, 1));

    for batch in [20, 21] {
        store.set_task_extras(batch, &one_click()).expect("one-click");
        store.start_task(batch, TaskParams { ratio: 1, max_concurrency: 2, ring_seconds: 30 }).expect("start");
    }
    let projects = store.my_projects(ids[0], "agent1").expect("projects");
    assert_eq!(projects.len(), 1);
    assert_eq!((projects[0].my_numbers, projects[0].status, projects[0].dial_mode), (2, "running", SiteDialMode::OneClick));

    // agent1: owned numbers first (客户1 then 客户3 of batch 20), then the higher priority
    // batch 21 in row order, then unowned rows of batch 20 (客户0); never agent2's 客户2.
    let mut order = Vec::new();
    loop {
        match store.claim_one_click(PROJECT_ID, ids[0], "agent1") {
            Ok(claim) => {
                order.push(claim.claimed.row_id);
                assert_eq!(claim.ringing_phone.chars().filter(|c| *c == '*').count(), 4, "{}", claim.ringing_phone);
                let attempt = store
                    .finish_attempt(
                        claim.claimed.attempt_id,
                        &AttemptEnd { outcome: Outcome::NoAnswer, hangup_side: None, ended_at: 1, recording_path: None, recording_sha256: None },
                    )
                    .expect("finish");
                assert_eq!(attempt.kind, AttemptKind::OneClick, "a one-click task's dial");
            }
            Err(ManualDialError::NothingLeft(_)) => break,
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(order, vec![20_001, 20_003, 21_000, 21_001, 20_000]);
    let left = store.claim_one_click(PROJECT_ID, ids[1], "agent2").expect("agent2's own");
    assert_eq!(left.claimed.row_id, 20_002);
}

#[test]
fn callbacks_are_scheduled_armed_executed_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    load(&store, 1, 30, 2, 50, 1);
    let ids = agents(&store, 2);
    store.start_task(30, TaskParams { ratio: 1, max_concurrency: 1, ring_seconds: 30 }).expect("start");
    let claimed = store.claim_next_number(30).expect("claim").expect("a number");
    store.mark_bridged(claimed.attempt_id, "agent1").expect("bridged");
    store
        .finish_attempt(
            claimed.attempt_id,
            &AttemptEnd { outcome: Outcome::Connected, hangup_side: Some(HangupSide::Customer), ended_at: 5, recording_path: None, recording_sha256: None },
        )
        .expect("finish");

    assert!(store.schedule_callback(claimed.attempt_id, "agent2", "不是我的", 100, "").is_err(), "only the agent's own calls");
    assert!(store.schedule_callback(claimed.attempt_id, "agent1", " ", 100, "").is_err(), "a title is needed");
    let callback_id = store.schedule_callback(claimed.attempt_id, "agent1", "下午17点外呼", 1_000, "客户要求下午").expect("schedule");
    let listed = store.callbacks(&MASKED_VIEWER(), Some("agent1"), None, None).expect("list");
    assert_eq!((listed[0].state.as_str(), listed[0].phone.as_str()), ("new", "138****3000"));

    assert!(store.due_callbacks(2_000).expect("due").is_empty(), "a new callback waits for 定时执行");
    assert!(store.arm_callback(callback_id, "agent2").is_err());
    store.arm_callback(callback_id, "agent1").expect("arm");
    assert!(store.due_callbacks(999).expect("due").is_empty(), "not before its time");
    let due = store.due_callbacks(1_000).expect("due");
    assert_eq!((due[0].callback_id, due[0].agent.as_str()), (callback_id, "agent1"));

    let claim = store.claim_callback(callback_id, ids[0], "agent1").expect("execute");
    assert_eq!(claim.claimed.row_id, 30_000);
    let listed = store.callbacks(&MASKED_VIEWER(), Some("agent1"), None, Some("done")).expect("list");
    assert_eq!(listed.len(), 1);
    assert!(listed[0].done_at.is_some());
    assert!(store.claim_callback(callback_id, ids[0], "agent1").is_err(), "a done callback is not dialed twice");

    let states: Vec<CallbackState> = store
        .outbox_after(0, 100)
        .expect("outbox")
        .into_iter()
        .filter_map(|entry| match entry.event {
            UpEvent::Callback(callback) => Some(callback.state),
            _ => None,
        })
        .collect();
    assert_eq!(states, vec![CallbackState::Scheduled, CallbackState::Done]);

    // Each attempt goes up with the path that dialed it: HQ's filter counts only task dials.
    let end = AttemptEnd { outcome: Outcome::NoAnswer, hangup_side: None, ended_at: 1_001, recording_path: None, recording_sha256: None };
    let callback_attempt = store.finish_attempt(claim.claimed.attempt_id, &end).expect("finish");
    assert_eq!(callback_attempt.kind, AttemptKind::Callback);
    let kinds: Vec<AttemptKind> = store
        .outbox_after(0, 100)
        .expect("outbox")
        .into_iter()
        .filter_map(|entry| entry.event.call_attempt().map(|attempt| attempt.kind))
        .collect();
    assert_eq!(kinds, vec![AttemptKind::Predictive, AttemptKind::Callback]);
}

#[test]
fn views_mask_numbers_and_leave_out_hidden_fields_unless_the_role_allows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    load(&store, 1, 40, 1, 50, 1);
    agents(&store, 1);
    store.start_task(40, TaskParams { ratio: 1, max_concurrency: 1, ring_seconds: 30 }).expect("start");
    let claimed = store.claim_next_number(40).expect("claim").expect("number");
    store.mark_bridged(claimed.attempt_id, "agent1").expect("bridged");
    store
        .finish_attempt(
            claimed.attempt_id,
            &AttemptEnd { outcome: Outcome::Connected, hangup_side: None, ended_at: 9, recording_path: None, recording_sha256: None },
        )
        .expect("finish");
    store.save_record(claimed.attempt_id, "agent1", &[("result".into(), "成功".into())]).expect("save");
    store.schedule_callback(claimed.attempt_id, "agent1", "回访", 50, "").expect("callback");
    let full_phone = claimed.phone.clone();

    let masked = MASKED_VIEWER();
    let text = format!(
        "{:?}{:?}{:?}",
        store.call_records(&masked, &CallFilter::default(), 10).expect("records"),
        store.customers(&masked, None, None, None, 10).expect("customers"),
        store.callbacks(&masked, None, None, None).expect("callbacks"),
    );
    assert!(!text.contains(&full_phone), "a masked viewer saw {full_phone}: {text}");
    assert!(!text.contains("X0") && !text.contains("internal_code"), "a hidden field left the store: {text}");
    assert!(text.contains("138****4000"), "{text}");
    // More than the last four digits in the filter is cut to four for a masked viewer.
    let guess = CallFilter { phone_tail: Some("99994000".into()), ..CallFilter::default() };
    assert_eq!(store.call_records(&masked, &guess, 10).expect("records").len(), 1);

    let full = Viewer { username: "lead".into(), unmask: true };
    let text = format!("{:?}", store.call_records(&full, &CallFilter::default(), 10).expect("records"));
    assert!(text.contains(&full_phone), "a full_numbers role sees the number: {text}");
    assert!(!text.contains("X0"), "hidden fields stay hidden for every site role: {text}");
}

#[test]
fn with_the_link_down_the_outbox_keeps_every_kind_of_event_until_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    load(&store, 1, 50, 2, 50, 1);
    let ids = agents(&store, 1);
    store.set_task_extras(50, &one_click()).expect("one-click");
    store.start_task(50, TaskParams { ratio: 1, max_concurrency: 1, ring_seconds: 30 }).expect("start");
    // No link at all: a one-click call, its record, a callback and a customer edit.
    let claim = store.claim_one_click(PROJECT_ID, ids[0], "agent1").expect("claim");
    store.mark_answered(claim.claimed.attempt_id, 10).expect("answered");
    store
        .finish_attempt(
            claim.claimed.attempt_id,
            &AttemptEnd { outcome: Outcome::Connected, hangup_side: None, ended_at: 20, recording_path: None, recording_sha256: None },
        )
        .expect("finish");
    store.save_record(claim.claimed.attempt_id, "agent1", &[("result".into(), "失败".into())]).expect("save");
    store.schedule_callback(claim.claimed.attempt_id, "agent1", "明天再打", 100, "").expect("callback");
    store.edit_customer(50, claim.claimed.row_id, "agent1", &[("name".into(), "王先生".into())]).expect("edit");
    assert!(store.edit_customer(50, claim.claimed.row_id, "agent1", &[("internal_code".into(), "Z".into())]).is_err());
    drop(store);

    // Reopened (a power cut), everything is still waiting for HQ, in order, numbered.
    let store = Store::open(dir.path()).expect("reopen");
    let outbox = store.outbox_after(0, 100).expect("outbox");
    let kinds: Vec<&str> = outbox
        .iter()
        .map(|entry| match &entry.event {
            UpEvent::CallAttemptDetail(_) => "attempt",
            UpEvent::BusinessRecord(_) => "record",
            UpEvent::Callback(_) => "callback",
            UpEvent::CustomerEdit(_) => "edit",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, vec!["attempt", "record", "callback", "edit"]);
    let seqs: Vec<u64> = outbox.iter().map(|entry| entry.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    if let UpEvent::CustomerEdit(edit) = &outbox[3].event {
        assert_eq!(edit.edit_id, 4, "an edit is numbered by its outbox entry");
    }
    // The popup shows the edited value.
    let popup = store.popup(claim.claimed.attempt_id).expect("popup").expect("exists");
    assert_eq!(popup.fields[0].value, "王先生");
    // HQ acknowledges up to 2 on reconnection: the rest stays.
    store.outbox_acked(store.epoch(), 2).expect("ack");
    assert_eq!(store.outbox_after(0, 100).expect("outbox").len(), 2);
}

#[test]
fn pacing_choice_is_kept_and_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    load(&store, 1, 10, 4, 50, 1);
    assert_eq!(
        store.task_settings(10).expect("settings").expect("task").extras.pacing,
        "fixed",
        "the manual's mode by default"
    );
    let adaptive = TaskExtras { pacing: "adaptive".into(), abandon_cap_percent: 2.5, ..TaskExtras::default() };
    store.set_task_extras(10, &adaptive).expect("adaptive pacing");
    let saved = store.task_settings(10).expect("settings").expect("task").extras;
    assert_eq!((saved.pacing.as_str(), saved.abandon_cap_percent), ("adaptive", 2.5));
    let unknown = TaskExtras { pacing: "turbo".into(), ..TaskExtras::default() };
    let error = store.set_task_extras(10, &unknown).expect_err("unknown pacing").to_string();
    assert!(error.contains("fixed, progressive or adaptive"), "{error}");
    let no_cap = TaskExtras { pacing: "adaptive".into(), abandon_cap_percent: 0.0, ..TaskExtras::default() };
    assert!(store.set_task_extras(10, &no_cap).is_err(), "a cap of 0 % would never dial");
}

#[test]
fn abandon_rate_counts_answered_calls_not_put_through() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    load(&store, 1, 10, 4, 50, 1);
    store.start_task(10, TaskParams { ratio: 1, max_concurrency: 4, ring_seconds: 35 }).expect("start");
    let claimed = store.claim_next_numbers(10, 3).expect("claim");
    assert_eq!(claimed.len(), 3);
    let now = appliance::store::now_unix();
    let end = |attempt_id: u64, outcome: Outcome| {
        let end =
            AttemptEnd { outcome, hangup_side: None, ended_at: now, recording_path: None, recording_sha256: None };
        store.finish_attempt(attempt_id, &end).expect("finish");
    };
    // One answered and put through, one answered and dropped, one busy (never answered).
    store.mark_answered(claimed[0].attempt_id, now).expect("answered");
    end(claimed[0].attempt_id, Outcome::Connected);
    store.mark_answered(claimed[1].attempt_id, now).expect("answered");
    end(claimed[1].attempt_id, Outcome::Abandoned);
    end(claimed[2].attempt_id, Outcome::Busy);
    let rates = store.abandon_rates(10, now).expect("rates");
    assert_eq!((rates.today, rates.last_30_days), (Some(0.5), Some(0.5)));
    assert_eq!(store.abandon_rates(11, now).expect("rates").today, None, "nothing answered, no rate");
}

#[test]
fn an_inbound_call_finds_its_customer_and_last_agent_and_leaves_the_row_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    load(&store, 1, 40, 2, 50, 1);
    agents(&store, 1);
    store.start_task(40, TaskParams { ratio: 1, max_concurrency: 1, ring_seconds: 30 }).expect("start");
    let talked = store.claim_next_number(40).expect("claim").expect("a number");
    store.mark_bridged(talked.attempt_id, "agent1").expect("bridged");
    let connected = AttemptEnd { outcome: Outcome::Connected, hangup_side: Some(HangupSide::Customer), ended_at: 5, recording_path: None, recording_sha256: None };
    store.finish_attempt(talked.attempt_id, &connected).expect("finish");

    // The customer calls back: their batch, project and the agent who talked to them; the
    // popup is marked inbound and shows their data.
    let back = store.claim_inbound(&talked.phone, 10).expect("inbound");
    assert_eq!((back.batch_id, back.last_agent.as_deref()), (40, Some("agent1")));
    assert!(back.project_id.is_some());
    let popup = store.popup(back.attempt_id).expect("popup").expect("built");
    assert!(popup.inbound && !popup.fields.is_empty() && !popup.script.is_empty(), "{popup:?}");
    // Nobody took it: a callback for the task, on agent1's list, not armed.
    let callback = store.inbound_callback(back.attempt_id, Some("agent1"), "呼入未接").expect("callback").expect("known customer");
    let listed = store.callbacks(&MASKED_VIEWER(), Some("agent1"), None, None).expect("list");
    assert_eq!((listed[0].callback_id, listed[0].scope.as_str(), listed[0].state.as_str()), (callback, "task", "new"));
    let abandoned = AttemptEnd { outcome: Outcome::Abandoned, hangup_side: Some(HangupSide::System), ended_at: 20, recording_path: None, recording_sha256: None };
    assert_eq!(store.finish_attempt(back.attempt_id, &abandoned).expect("finish").kind, AttemptKind::Inbound);

    // A customer the site never called: no last agent, and the row stays dialable.
    let other = rows(40, 2).into_iter().find(|row| row.phone != talked.phone).expect("second row");
    let first_call = store.claim_inbound(&other.phone, 30).expect("inbound");
    assert_eq!((first_call.batch_id, first_call.last_agent), (40, None));
    store.finish_attempt(first_call.attempt_id, &connected).expect("finish");
    let next = store.claim_next_number(40).expect("claim").expect("the row is still to dial");
    assert_eq!(next.phone, other.phone);

    // A stranger: no customer, an empty popup, no callback; it goes up as inbound all the same.
    let stranger = store.claim_inbound("13999999999", 40).expect("inbound");
    assert_eq!((stranger.batch_id, stranger.project_id, stranger.last_agent), (0, None, None));
    let popup = store.popup(stranger.attempt_id).expect("popup").expect("built");
    // No project: the site-wide default record form (a note), as for a typed number outside any task.
    let keys: Vec<&str> = popup.record_fields.iter().map(|field| field.key.as_str()).collect();
    assert!(popup.inbound && popup.fields.is_empty() && popup.script.is_empty() && keys == ["备注"], "{popup:?}");
    assert_eq!(store.inbound_callback(stranger.attempt_id, None, "呼入未接").expect("callback"), None);
    store.mark_bridged(stranger.attempt_id, "agent1").expect("bridged");
    store.save_record(stranger.attempt_id, "agent1", &[]).expect("an empty record closes the stranger's popup");
    store.finish_attempt(stranger.attempt_id, &abandoned).expect("finish");
    let inbound: Vec<(u64, AttemptKind)> = store
        .outbox_after(0, 100)
        .expect("outbox")
        .into_iter()
        .filter_map(|entry| entry.event.call_attempt().map(|attempt| (attempt.batch_id, attempt.kind)))
        .filter(|(_, kind)| *kind == AttemptKind::Inbound)
        .collect();
    assert_eq!(inbound, vec![(40, AttemptKind::Inbound), (40, AttemptKind::Inbound), (0, AttemptKind::Inbound)]);
}
