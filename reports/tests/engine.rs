//! The engine on a real SQLite file: redelivery, late records, late data, rollbacks and the
//! cubes' rebuild, each checked against the brute-force oracle and against known figures.

mod common;

use common::{fact, open, write_attempt, write_record};
use reports::oracle::run_brute_force;
use reports::{
    record_attempt, Column, Condition, CubeSpec, DayRange, Engine, Filter, KeyPart, Outcome, Pending, ReportDef,
    Statistic, Subject, Tag, Value, Zone,
};

/// 2026-12-07 00:00 China time (2026-12-06 16:00 UTC).
const DAY_START: i64 = 1_796_601_600 - 8 * 3600;

fn def(tags: Vec<Tag>) -> ReportDef {
    ReportDef {
        name: "t".to_owned(),
        tags,
        conditions: vec![],
        columns: vec![
            Column { header: "外呼数".into(), statistic: Statistic::Dials, divide_by: None },
            Column {
                header: "成功".into(),
                statistic: Statistic::FieldValue { key: "result".into(), value: "成功".into() },
                divide_by: None,
            },
            Column { header: "接通率".into(), statistic: Statistic::ExtensionConnected, divide_by: Some(Statistic::Dials) },
        ],
    }
}

fn month(zone: &Zone) -> Filter {
    let day = zone.local_day(DAY_START + 3600);
    Filter { projects: None, sites: None, accounts: None, teams: None, days: DayRange { first: day - 29, last: day } }
}

fn counts(table: &reports::ReportTable) -> Vec<(Vec<KeyPart>, Vec<Value>)> {
    table.rows.iter().map(|r| (r.keys.clone(), r.values.clone())).collect()
}

#[test]
fn a_redelivered_attempt_counts_once_and_a_late_record_moves_it() {
    let (_dir, mut conn) = open();
    let engine = Engine::new(Zone::china());
    let zone = engine.zone().clone();
    let f = fact(1, 7, DAY_START + 9 * 3600);
    write_attempt(&mut conn, &engine, &f).unwrap();
    write_attempt(&mut conn, &engine, &f).unwrap();
    let report = def(vec![Tag::Site]);
    let table = engine.run(&conn, &report, &month(&zone)).unwrap();
    assert_eq!(table.total, vec![Value::Count(1), Value::Count(0), Value::Ratio(Some(1.0))]);
    // The record saved after the attempt: the attempt now counts as a success.
    write_record(&mut conn, &engine, 1, 7, &[("result", "成功")]).unwrap();
    let table = engine.run(&conn, &report, &month(&zone)).unwrap();
    assert_eq!(table.total[1], Value::Count(1));
    // Re-saved as a failure: the success is taken back.
    write_record(&mut conn, &engine, 1, 7, &[("result", "失败")]).unwrap();
    let table = engine.run(&conn, &report, &month(&zone)).unwrap();
    assert_eq!(table.total[1], Value::Count(0));
    assert_eq!(table, run_brute_force(&conn, &zone, &report, &month(&zone)).unwrap());
}

#[test]
fn a_record_before_its_attempt_waits_for_it() {
    let (_dir, mut conn) = open();
    let engine = Engine::new(Zone::china());
    write_record(&mut conn, &engine, 1, 8, &[("result", "成功")]).unwrap();
    let report = def(vec![]);
    let filter = month(engine.zone());
    assert!(engine.run(&conn, &report, &filter).unwrap().rows.is_empty());
    write_attempt(&mut conn, &engine, &fact(1, 8, DAY_START + 10 * 3600)).unwrap();
    let table = engine.run(&conn, &report, &filter).unwrap();
    assert_eq!(table.rows.len(), 1);
    assert_eq!(table.total[1], Value::Count(1));
}

#[test]
fn late_data_lands_in_the_hour_the_call_started() {
    let (_dir, mut conn) = open();
    let engine = Engine::new(Zone::china());
    // Started at 23:30 China time the day before, synced "now": counted at hour 23.
    let mut f = fact(1, 9, DAY_START - 1800);
    f.outcome = Outcome::NotAnswered;
    write_attempt(&mut conn, &engine, &f).unwrap();
    let table = engine.run(&conn, &def(vec![Tag::Day, Tag::Hour]), &month(engine.zone())).unwrap();
    let (y, m, d) = reports::civil_from_days(engine.zone().local_day(DAY_START) - 1);
    assert_eq!(table.rows[0].keys, vec![KeyPart::Text(format!("{y:04}-{m:02}-{d:02}")), KeyPart::Int(23)]);
    assert_eq!(table.rows[0].values[2], Value::Ratio(Some(0.0)));
}

#[test]
fn a_rolled_back_write_leaves_no_trace() {
    let (_dir, mut conn) = open();
    let engine = Engine::new(Zone::china());
    write_attempt(&mut conn, &engine, &fact(1, 1, DAY_START + 3600)).unwrap();
    {
        let tx = conn.transaction().unwrap();
        let mut pending = Pending::default();
        record_attempt(&tx, &fact(1, 2, DAY_START + 3600), &mut pending).unwrap();
        // Dropped: rolled back, and its deltas never applied.
    }
    let table = engine.run(&conn, &def(vec![]), &month(engine.zone())).unwrap();
    assert_eq!(table.total[0], Value::Count(1));
}

#[test]
fn a_write_the_engine_missed_is_seen_through_the_version() {
    let (_dir, mut conn) = open();
    let engine = Engine::new(Zone::china());
    write_attempt(&mut conn, &engine, &fact(1, 1, DAY_START + 3600)).unwrap();
    let filter = month(engine.zone());
    assert_eq!(engine.run(&conn, &def(vec![]), &filter).unwrap().total[0], Value::Count(1));
    // Another writer (a bulk backfill) did not tell this engine.
    let other = Engine::new(Zone::china());
    write_attempt(&mut conn, &other, &fact(1, 2, DAY_START + 7200)).unwrap();
    assert_eq!(engine.run(&conn, &def(vec![]), &filter).unwrap().total[0], Value::Count(2));
}

#[test]
fn conditions_and_the_filter_scope_narrow_the_rows() {
    let (_dir, mut conn) = open();
    let engine = Engine::with_cubes(Zone::china(), vec![CubeSpec::without(&[reports::dims::AGENT], false)]);
    for (i, (site, team)) in [(1, "A组"), (1, "B组"), (2, "A组")].iter().enumerate() {
        let mut f = fact(*site, i as i64, DAY_START + 3600 * (i as i64 + 1));
        f.team = (*team).to_owned();
        write_attempt(&mut conn, &engine, &f).unwrap();
    }
    let zone = engine.zone().clone();
    let mut report = def(vec![Tag::Team]);
    report.conditions.push(Condition { subject: Subject::Team, values: vec!["A组".into()], negate: false });
    let table = engine.run(&conn, &report, &month(&zone)).unwrap();
    let keys: Vec<_> = table.rows.iter().map(|r| r.keys[0].clone()).collect();
    assert_eq!(
        keys,
        vec![KeyPart::SiteText { site: 1, text: "A组".into() }, KeyPart::SiteText { site: 2, text: "A组".into() }]
    );
    let scoped = Filter { sites: Some(vec![2]), ..month(&zone) };
    let table = engine.run(&conn, &report, &scoped).unwrap();
    assert_eq!(counts(&table), counts(&run_brute_force(&conn, &zone, &report, &scoped).unwrap()));
    assert_eq!(table.rows.len(), 1);
}

#[test]
fn a_field_value_counts_every_attempt_of_a_cell() {
    let (_dir, mut conn) = open();
    let engine = Engine::new(Zone::china());
    for attempt in 1..=3 {
        write_attempt(&mut conn, &engine, &fact(1, attempt, DAY_START + 9 * 3600 + attempt)).unwrap();
        write_record(&mut conn, &engine, 1, attempt, &[("result", "成功")]).unwrap();
    }
    let table = engine.run(&conn, &def(vec![Tag::Team]), &month(engine.zone())).unwrap();
    assert_eq!(table.rows[0].values[..2], [Value::Count(3), Value::Count(3)]);
}

#[test]
fn one_transaction_of_many_writes_is_one_version_and_one_hand_over() {
    let (_dir, mut conn) = open();
    let engine = Engine::new(Zone::china());
    let filter = month(engine.zone());
    assert_eq!(engine.run(&conn, &def(vec![]), &filter).unwrap().rows.len(), 0);
    let tx = conn.transaction().unwrap();
    let mut pending = Pending::default();
    for attempt in 1..=3 {
        record_attempt(&tx, &fact(1, attempt, DAY_START + 3600 * attempt), &mut pending).unwrap();
    }
    reports::record_business(&tx, 1, 2, &[("result".into(), "成功".into())], &mut pending).unwrap();
    tx.commit().unwrap();
    assert_eq!(reports::version(&conn).unwrap(), 1);
    engine.apply(pending);
    let table = engine.run(&conn, &def(vec![Tag::Hour]), &filter).unwrap();
    assert_eq!(table.total[..2], [Value::Count(3), Value::Count(1)]);
    assert_eq!(table, run_brute_force(&conn, engine.zone(), &def(vec![Tag::Hour]), &filter).unwrap());
}
