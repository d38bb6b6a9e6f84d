//! The site's reports at the store level (S6-S9), on a real SQLite file: each finished
//! attempt and saved record reaches the report engine in its own write transaction, a
//! redelivered end or a re-saved record never counts twice, a store from before the reports
//! is filled once when it opens, and HQ's report definitions keep the newest version.

mod common;

use appliance::store::{AttemptEnd, Role, Store, TaskParams};
use reports::{Column, Filter, ReportDef, ReportTable, Statistic, Tag, TimeFilter, Value, Zone};
use sync_link::SiteStore;
use sync_protocol::{DownEntry, DownEvent, HangupSide, Outcome, ReportDefinition};

use common::*;

fn load(store: &Store) {
    for entry in entries(1, batch_events(10, &rows(10, 4), 2, 50, 1)) {
        store.apply_down(&entry).expect("apply");
    }
    store.create_extension("1001", "secret-pass").expect("extension");
    store.create_user("agent1", "agent-pass", Role::Agent, "小王", Some("1001")).expect("agent");
    store.start_task(10, TaskParams { ratio: 1, max_concurrency: 4, ring_seconds: 35 }).expect("start");
}

fn column(header: &str, statistic: Statistic) -> Column {
    Column { header: header.into(), statistic, divide_by: None }
}

fn success() -> Statistic {
    Statistic::FieldValue { key: "result".into(), value: "成功".into() }
}

fn def() -> ReportDef {
    ReportDef {
        name: "坐席榜单".into(),
        tags: vec![Tag::Agent],
        conditions: vec![],
        columns: vec![
            column("外呼数", Statistic::Dials),
            column("外呼接通数", Statistic::DialConnected),
            column("分机接通数", Statistic::ExtensionConnected),
            column("队列放弃数", Statistic::QueueAbandon),
            column("成功", success()),
            column("失败", Statistic::FieldValue { key: "result".into(), value: "失败".into() }),
            column("通话时长", Statistic::TalkSeconds),
            Column { header: "接通率".into(), statistic: Statistic::DialConnected, divide_by: Some(Statistic::Dials) },
        ],
    }
}

fn today(store: &Store) -> ReportTable {
    let days = TimeFilter::Today.resolve(appliance::store::now_unix(), &Zone::china()).expect("today");
    let filter = Filter { projects: Some(vec![PROJECT_ID as i64]), sites: None, accounts: None, teams: None, days };
    store.run_report(&def(), &filter).expect("report")
}

fn counts(table: &ReportTable) -> Vec<i64> {
    table.total.iter().filter_map(|v| if let Value::Count(n) = v { Some(*n) } else { None }).collect()
}

/// Three calls: one put through to agent1 (30 s of talk), one left in the queue, one busy.
fn three_calls(store: &Store) -> Vec<u64> {
    let claimed = store.claim_next_numbers(10, 3).expect("claim");
    let now = appliance::store::now_unix();
    let end = |outcome, ended_at, side| AttemptEnd {
        outcome,
        hangup_side: Some(side),
        ended_at,
        recording_path: None,
        recording_sha256: None,
    };
    store.mark_answered_and_bridged(claimed[0].attempt_id, now, "agent1").expect("bridged");
    store.finish_attempt(claimed[0].attempt_id, &end(Outcome::Connected, now + 30, HangupSide::Customer)).expect("end");
    store.mark_answered(claimed[1].attempt_id, now).expect("answered");
    store.finish_attempt(claimed[1].attempt_id, &end(Outcome::Abandoned, now + 8, HangupSide::Customer)).expect("end");
    store.finish_attempt(claimed[2].attempt_id, &end(Outcome::Busy, now, HangupSide::System)).expect("end");
    claimed.iter().map(|c| c.attempt_id).collect()
}

#[test]
fn attempts_and_records_reach_the_reports_once_whatever_is_redelivered_or_resaved() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    load(&store);
    assert_eq!(counts(&today(&store)), vec![0; 7], "no call yet");
    let ids = three_calls(&store);
    // dials, dial connected, extension connected, queue abandon, 成功, 失败, talk seconds.
    assert_eq!(counts(&today(&store)), vec![3, 2, 1, 1, 0, 0, 30]);
    let record = |value: &str| store.save_record(ids[0], "agent1", &[("result".into(), value.into()), ("note".into(), "x".into())]);
    record("成功").expect("save");
    let table = today(&store);
    assert_eq!(counts(&table), vec![3, 2, 1, 1, 1, 0, 30]);
    let agent_row = table.rows.iter().find(|r| format!("{:?}", r.keys).contains("agent1")).expect("agent1's row");
    assert_eq!(agent_row.values[0], Value::Count(1), "agent1 took one call");

    // The end of a call redelivered by the driver, and the same record saved again.
    let again = AttemptEnd {
        outcome: Outcome::Connected,
        hangup_side: Some(HangupSide::Customer),
        ended_at: appliance::store::now_unix() + 30,
        recording_path: None,
        recording_sha256: None,
    };
    store.finish_attempt(ids[0], &again).expect("redelivered end");
    record("成功").expect("save again");
    assert_eq!(counts(&today(&store)), vec![3, 2, 1, 1, 1, 0, 30], "nothing counts twice");
    // A changed record moves the call from 成功 to 失败; a refused one changes nothing.
    record("失败").expect("re-save");
    assert_eq!(counts(&today(&store)), vec![3, 2, 1, 1, 0, 1, 30]);
    assert!(record("也许").is_err(), "not an option of the field");
    assert_eq!(counts(&today(&store)), vec![3, 2, 1, 1, 0, 1, 30], "a refused record is not counted");

    // The cells were written with the calls: a fresh engine over the file agrees.
    drop(store);
    let reopened = Store::open(dir.path()).expect("reopen");
    assert_eq!(counts(&today(&reopened)), vec![3, 2, 1, 1, 0, 1, 30]);
}

#[test]
fn a_store_from_before_the_reports_is_filled_once_when_it_opens() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path()).expect("open");
        load(&store);
        let ids = three_calls(&store);
        store.save_record(ids[0], "agent1", &[("result".into(), "成功".into())]).expect("save");
    }
    // Take the report tables away as a build before them would have left the file.
    let conn = rusqlite::Connection::open(dir.path().join("site.db")).expect("sqlite");
    conn.execute_batch(
        "DROP TABLE report_facts; DROP TABLE report_cells; DROP TABLE report_meta; DROP TABLE report_defs;
         DROP INDEX attempts_batch_row;
         ALTER TABLE callbacks DROP COLUMN scope; ALTER TABLE callbacks DROP COLUMN handed_over_at;
         DROP TABLE desk_settings;
         DROP TRIGGER batch_joins_project; DROP TABLE project_tasks; DROP TABLE project_task_agents;
         ALTER TABLE users DROP COLUMN disabled;
         DROP TABLE site_profile; ALTER TABLE sync_state DROP COLUMN restored_outbox_seq;
         DROP TABLE recording_retention;
         DROP TABLE leases; DROP TABLE pool_batches;
         DROP TABLE list_columns; DROP TABLE unlisted_fields;
         DROP TABLE call_quality;
         PRAGMA user_version = 8;",
    )
    .expect("downgrade");
    drop(conn);
    let store = Store::open(dir.path()).expect("upgrade");
    assert_eq!(counts(&today(&store)), vec![3, 2, 1, 1, 1, 0, 30], "the old calls and record are counted");
    drop(store);
    let store = Store::open(dir.path()).expect("open again");
    assert_eq!(counts(&today(&store)), vec![3, 2, 1, 1, 1, 0, 30], "and only once");
}

fn definitions(seq: u64, version: u64, json: String) -> DownEntry {
    let defs = vec![ReportDefinition { id: 1, name: "榜单".into(), definition: json }];
    DownEntry { seq, event: DownEvent::ReportDefinitions { project_id: PROJECT_ID, version, defs } }
}

fn named(name: &str) -> String {
    let mut def = def();
    def.name = name.into();
    serde_json::to_string(&def).expect("json")
}

#[test]
fn hq_report_definitions_keep_the_newest_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    assert_eq!(store.report_definitions(PROJECT_ID).expect("read"), None);
    store.apply_down(&definitions(1, 2, named("第二版"))).expect("v2");
    // An older version arriving late, and v2 redelivered under its own seq: v2 stays.
    store.apply_down(&definitions(2, 1, named("第一版"))).expect("v1");
    store.apply_down(&definitions(1, 2, named("重发"))).expect("redelivered");
    let (version, defs) = store.report_definitions(PROJECT_ID).expect("read").expect("kept");
    assert_eq!((version, defs[0].name.as_str()), (2, "第二版"));
    store.apply_down(&definitions(3, 3, named("第三版"))).expect("v3");
    // Definitions this build cannot read are skipped and the link moves on.
    store.apply_down(&definitions(4, 4, "{\"nonsense\": 1}".into())).expect("unreadable");
    assert_eq!(store.down_applied().expect("cursor"), 4);
    let (version, defs) = store.report_definitions(PROJECT_ID).expect("read").expect("kept");
    assert_eq!((version, defs[0].name.as_str()), (3, "第三版"));
}
