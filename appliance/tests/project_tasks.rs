//! A task is the project's at the site (S1, S2, S5): started once through any of its
//! batches, it dials every batch of the project, those HQ dispatches later included, by
//! priority then import; priority 1 holds one batch only, 0 ends it for ever; numbers the
//! attribution gave to an agent are taken only for that agent (S4).

mod common;

use appliance::store::{Role, SiteRule, Store, TaskParams, TaskStatus};
use sync_link::SiteStore;
use sync_protocol::{BatchControl, DownEntry, DownEvent};

use common::*;

const PARAMS: TaskParams = TaskParams { ratio: 2, max_concurrency: 4, ring_seconds: 35 };

/// Applies a project's batch (`n_rows` rows) from `seq`; returns the next free seq.
fn dispatch(store: &Store, seq: u64, batch_id: u64, n_rows: u64, priority: u8, imported_at: i64) -> u64 {
    let entries = entries(seq, batch_events(batch_id, &rows(batch_id, n_rows), 2, priority, imported_at));
    for entry in &entries {
        store.apply_down(entry).expect("apply");
    }
    entries.last().map(|entry| entry.seq + 1).unwrap_or(seq)
}

/// Two agents, a1 and a2, with extensions 8001 and 8002; returns a1's user id.
fn two_agents(store: &Store) -> u64 {
    store.create_extension("8001", "secret1").expect("extension");
    store.create_extension("8002", "secret2").expect("extension");
    let a1 = store.create_user("a1", "password1", Role::Agent, "小王", Some("8001")).expect("agent");
    store.create_user("a2", "password2", Role::Agent, "小李", Some("8002")).expect("agent");
    a1
}

fn batches_of(claims: &[appliance::store::ClaimedNumber]) -> Vec<u64> {
    claims.iter().map(|claim| claim.batch_id).collect()
}

#[test]
fn a_task_started_once_dials_batches_dispatched_later_by_priority_then_import() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let mut seq = dispatch(&store, 1, 10, 2, 50, 1_000);
    store.start_task(10, PARAMS).expect("start the project's task through its first batch");
    store.set_task_agents(10, &[]).expect("everyone");
    // Three batches arrive later; nobody touches the task again.
    seq = dispatch(&store, seq, 11, 2, 50, 3_000);
    seq = dispatch(&store, seq, 12, 2, 80, 4_000);
    let _ = dispatch(&store, seq, 13, 2, 50, 2_000);
    assert_eq!(store.dialable_tasks().expect("dialable"), vec![(PROJECT_ID, PARAMS)], "one task, the project's");
    let statuses: Vec<(u64, TaskStatus)> =
        store.tasks().expect("tasks").into_iter().map(|task| (task.batch_id, task.status)).collect();
    assert!(statuses.iter().all(|(_, status)| *status == TaskStatus::Running), "{statuses:?}");

    let claims = store.claim_next_numbers_for_task(PROJECT_ID, 8, &[]).expect("claim");
    assert_eq!(
        batches_of(&claims),
        vec![12, 12, 10, 10, 13, 13, 11, 11],
        "priority 80 first, then the 50s by import: 1 000, 2 000, 3 000"
    );
    assert!(store.claim_next_numbers_for_task(PROJECT_ID, 1, &[]).expect("claim").is_empty());
}

#[test]
fn priority_1_holds_one_batch_and_0_ends_it_for_ever() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let mut seq = dispatch(&store, 1, 20, 2, 50, 1_000);
    seq = dispatch(&store, seq, 21, 2, 50, 2_000);
    store.start_task(21, PARAMS).expect("start");
    let control = |seq, batch_id, version, priority| DownEntry {
        seq,
        event: DownEvent::BatchControl(BatchControl { batch_id, version, priority }),
    };
    store.apply_down(&control(seq, 20, 2, 1)).expect("pause batch 20");
    let status_of = |batch_id| {
        store.tasks().expect("tasks").into_iter().find(|task| task.batch_id == batch_id).expect("task").status
    };
    assert_eq!(status_of(20), TaskStatus::Paused);
    assert_eq!(status_of(21), TaskStatus::Running, "the other batch of the task dials on");
    assert_eq!(store.dialable_tasks().expect("dialable").len(), 1);
    let claims = store.claim_next_numbers_for_task(PROJECT_ID, 4, &[]).expect("claim");
    assert_eq!(batches_of(&claims), vec![21, 21], "the paused batch is skipped");

    // Back to 60: dialed again, ahead of the rest by its priority.
    store.apply_down(&control(seq + 1, 20, 3, 60)).expect("resume");
    assert_eq!(status_of(20), TaskStatus::Running);
    let claims = store.claim_next_numbers_for_task(PROJECT_ID, 1, &[]).expect("claim");
    assert_eq!(batches_of(&claims), vec![20]);
    store.apply_down(&control(seq + 2, 20, 4, 0)).expect("end");
    assert_eq!(status_of(20), TaskStatus::Ended);
    assert!(store.claim_next_numbers_for_task(PROJECT_ID, 4, &[]).expect("claim").is_empty(), "ended for ever");
    // Stopping the task through either batch stops the project's task.
    assert!(store.stop_task(21).expect("stop"));
    assert!(store.dialable_tasks().expect("dialable").is_empty());
    assert_eq!(status_of(21), TaskStatus::NotStarted);
}

#[test]
fn task_settings_and_agents_belong_to_the_project_and_reach_new_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let seq = dispatch(&store, 1, 30, 2, 50, 1_000);
    let agent = two_agents(&store);
    store.set_task_agents(30, &[agent]).expect("agents");
    let mut extras = store.task_settings(30).expect("read").expect("exists").extras;
    extras.cool_down = 7;
    extras.pacing = "adaptive".into();
    store.set_task_extras(30, &extras).expect("extras");
    store.start_task(30, TaskParams { ratio: 3, max_concurrency: 5, ring_seconds: 40 }).expect("start");
    dispatch(&store, seq, 31, 2, 50, 2_000);
    let later = store.task_settings(31).expect("read").expect("exists");
    assert_eq!((later.extras.cool_down, later.extras.pacing.as_str()), (7, "adaptive"));
    assert_eq!(later.agents, vec![agent], "the project's agents work the new batch");
    assert!(store.works_task(31, agent).expect("works"));
    let task = store.tasks().expect("tasks").into_iter().find(|task| task.batch_id == 31).expect("task");
    assert_eq!(task.params, TaskParams { ratio: 3, max_concurrency: 5, ring_seconds: 40 });
    assert_eq!(store.project_task_settings(PROJECT_ID).expect("read").expect("exists").extras.cool_down, 7);
}

#[test]
fn an_owned_number_is_taken_only_for_its_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    dispatch(&store, 1, 40, 3, 50, 1_000);
    two_agents(&store);
    // The first row (name 客户0) goes to a1 by the site's attribution rule.
    let rule = SiteRule { conditions: vec![("name".into(), vec!["客户0".into()])], all_match: false, agent: "a1".into() };
    store.set_site_rules(PROJECT_ID, &[rule]).expect("rules");
    store.allocate(40).expect("allocate");
    store.start_task(40, PARAMS).expect("start");
    let others = store.claim_next_numbers_for_task(PROJECT_ID, 5, &["a2".to_string()]).expect("claim");
    assert_eq!(others.iter().map(|c| c.row_id).collect::<Vec<_>>(), vec![40_001, 40_002], "a1's number waits");
    assert!(others.iter().all(|claim| claim.owner.is_none()));
    let owned = store.claim_next_numbers_for_task(PROJECT_ID, 5, &["a1".to_string()]).expect("claim");
    assert_eq!(owned.len(), 1);
    assert_eq!((owned[0].row_id, owned[0].owner.as_deref()), (40_000, Some("a1")));
}

#[test]
fn a_one_click_task_hands_out_the_projects_batches_by_priority_then_import() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let mut seq = dispatch(&store, 1, 50, 1, 50, 1_000);
    let agent = two_agents(&store);
    let mut extras = store.task_settings(50).expect("read").expect("exists").extras;
    extras.dial_mode = appliance::store::SiteDialMode::OneClick;
    store.set_task_extras(50, &extras).expect("one-click");
    store.start_task(50, PARAMS).expect("start");
    seq = dispatch(&store, seq, 51, 1, 70, 3_000);
    dispatch(&store, seq, 52, 1, 50, 2_000);
    assert!(store.dialable_tasks().expect("dialable").is_empty(), "a one-click task has no pacing core");
    let order: Vec<u64> =
        (0..3).map(|_| store.claim_one_click(PROJECT_ID, agent, "a1").expect("a number").claimed.batch_id).collect();
    assert_eq!(order, vec![51, 50, 52], "priority 70, then the 50s by import");
}

/// 下发任务管理: one task per project, its batches inside in dial order, and the priority
/// between tasks the site admin sets (else the highest of its batches), which the arbiter
/// reads for a running task.
#[test]
fn the_task_list_shows_a_project_once_with_its_batches_in_dial_order_and_its_priority() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let seq = dispatch(&store, 1, 51, 2, 50, 100);
    let seq = dispatch(&store, seq, 52, 2, 80, 300);
    let seq = dispatch(&store, seq, 53, 2, 50, 200);
    store.apply_down(&DownEntry { seq, event: DownEvent::BatchControl(BatchControl { batch_id: 51, version: 1, priority: 1 }) }).expect("hold");
    let list = store.project_task_list().expect("list");
    assert_eq!(list.len(), 1, "one task for the project: {list:?}");
    let order: Vec<u64> = list[0].batches.iter().map(|batch| batch.batch_id).collect();
    assert_eq!(order, vec![52, 53, 51], "80 first, then 50, the held batch last");
    assert_eq!((list[0].priority, list[0].priority_set, list[0].status), (80, false, TaskStatus::NotStarted));

    store.start_task(53, PARAMS).expect("start");
    assert_eq!(store.dialable_task_priorities().expect("priorities").get(&PROJECT_ID), Some(&80), "from its batches");
    let task = store.project_task_of_batch(51).expect("task").expect("its project's");
    store.set_task_priority(task.project_id, Some(5)).expect("set");
    assert_eq!(store.dialable_task_priorities().expect("priorities").get(&PROJECT_ID), Some(&5), "the site admin's");
    let list = store.project_task_list().expect("list");
    assert_eq!((list[0].priority, list[0].priority_set, list[0].status), (5, true, TaskStatus::Running));
    store.set_task_priority(task.project_id, None).expect("unset");
    assert_eq!(store.dialable_task_priorities().expect("priorities").get(&PROJECT_ID), Some(&80));
}
