//! The property test: random histories (redeliveries, changed facts, records before and
//! after their attempts, late data across days and zones with summer time) and random report
//! definitions; the engine's answer, from cubes of several grains and after a rebuild, must
//! equal the brute-force answer over the raw facts.

mod common;

use common::{open, open_keyed, write_attempt, write_record};
use proptest::prelude::*;
use reports::dims::{ACCOUNT, COMBO, HANGUP, PROJECT};
use reports::oracle::run_brute_force;
use reports::{
    AttemptFact, Column, Condition, CubeSpec, DayRange, Direction, Engine, Filter, HangupSide, Outcome, ReportDef,
    Pending, Statistic, Subject, Tag, Zone,
};

/// 2026-03-01 00:00 UTC: the range crosses Europe's and America's summer-time change.
const BASE: i64 = 1_772_323_200;
const DAYS: i64 = 40;

#[derive(Debug, Clone)]
enum Op {
    Attempt(AttemptFact),
    Record { site: i64, attempt: i64, values: Vec<(String, String)> },
}

/// Mostly `value`, sometimes any of `range`.
fn often<T>(value: T, range: impl Strategy<Value = T> + 'static) -> BoxedStrategy<T>
where
    T: Clone + std::fmt::Debug + 'static,
{
    prop_oneof![3 => Just(value), 1 => range].boxed()
}

/// Seconds after [`BASE`]: mostly a few days and hours, so attempts share cells, including
/// the days summer time starts in America (Mar 8) and Europe (Mar 29) and the day edges.
fn start_strategy() -> impl Strategy<Value = i64> {
    prop_oneof![
        6 => (proptest::sample::select(vec![0_i64, 28]), proptest::sample::select(vec![1_i64, 9]), 0_i64..3600)
            .prop_map(|(d, h, s)| d * 86_400 + h * 3600 + s),
        2 => (proptest::sample::select(vec![0_i64, 1, 7, 28, 35]), proptest::sample::select(vec![0_i64, 1, 2, 7, 9, 16, 23]), 0_i64..3600)
            .prop_map(|(d, h, s)| d * 86_400 + h * 3600 + s),
        1 => 0..DAYS * 86_400,
    ]
}

/// An attempt: mostly one of four agent profiles (agent, team and extension together, the
/// last without agent) and batches whose account follows, so attempts share cells; now and
/// then a mixed one.
fn fact_strategy() -> impl Strategy<Value = AttemptFact> {
    (
        (often(1_i64, 1_i64..=2), often(1_i64, 1_i64..=3), 0_i64..24, often(0_usize, 0_usize..4), proptest::option::weighted(0.1, (0_usize..3, 0_usize..2))),
        (often(10_i64, 10_i64..=12), any::<bool>(), proptest::bool::weighted(0.2), often(1_u8, 0_u8..4), 0_u8..7),
        (0_u32..30, 0_u32..20, 0_u32..300, 0_u32..40, start_strategy()),
    )
        .prop_map(|((project, site, attempt, who, mixed), (batch, odd_account, inbound, hangup, outcome), secs)| {
            let (team, extension) = match mixed {
                Some((team, ext)) => (["A组", "B组", ""][team], ["801", "802"][ext]),
                None => (["A组", "A组", "B组", ""][who], ["801", "802", "803", ""][who]),
            };
            let account = if batch == 11 || (odd_account && batch == 12) { "sub1" } else { "hq" };
            AttemptFact {
                project,
                site,
                attempt,
                team: team.to_owned(),
                agent: ["8001", "8002", "8003", ""][who].to_owned(),
                extension: extension.to_owned(),
                batch,
                account: account.to_owned(),
                direction: if inbound { Direction::Inbound } else { Direction::Outbound },
                hangup: [None, Some(HangupSide::Customer), Some(HangupSide::Agent), Some(HangupSide::System)]
                    [usize::from(hangup)],
                outcome: [
                    Outcome::NotAnswered,
                    Outcome::Connected,
                    Outcome::QueueAbandoned,
                    Outcome::IvrAbandoned,
                    Outcome::ExtensionRejected,
                    Outcome::ExtensionMissed,
                    Outcome::AnsweredNoAgent,
                ][usize::from(outcome)],
                ring_seconds: secs.0,
                queue_seconds: secs.1,
                talk_seconds: secs.2,
                ivr_seconds: secs.3,
                started_at: BASE + secs.4,
                values: None,
            }
        })
}

fn values_strategy() -> impl Strategy<Value = Vec<(String, String)>> {
    (0_usize..4, often(0, 0_usize..3)).prop_map(|(result, level)| {
        let mut v = Vec::new();
        if result > 0 {
            v.push(("result".to_owned(), ["", "成功", "失败", "再联系"][result].to_owned()));
        }
        if level > 0 {
            v.push(("level".to_owned(), ["", "高", "低"][level].to_owned()));
        }
        v
    })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (fact_strategy(), proptest::option::of(values_strategy()))
            .prop_map(|(mut f, values)| { f.values = values; Op::Attempt(f) }),
        1 => (1_i64..=3, 0_i64..24, values_strategy())
            .prop_map(|(site, attempt, values)| Op::Record { site, attempt, values }),
    ]
}

fn tag_strategy() -> impl Strategy<Value = Vec<Tag>> {
    let all = vec![
        Tag::Project, Tag::Site, Tag::Team, Tag::Extension, Tag::Agent, Tag::Batch, Tag::Account,
        Tag::HangupSide, Tag::Direction, Tag::Hour, Tag::Weekday, Tag::Day, Tag::Month,
    ];
    proptest::sample::subsequence(all, 0..=5).prop_shuffle()
}

fn statistic_strategy() -> impl Strategy<Value = Statistic> {
    prop_oneof![
        3 => proptest::sample::select(reports::MEASURES.to_vec()),
        2 => (proptest::sample::select(vec!["result", "result", "level"]), proptest::sample::select(vec!["成功", "失败", "高"]))
            .prop_map(|(k, v)| Statistic::FieldValue { key: k.to_owned(), value: v.to_owned() }),
    ]
}

fn condition_strategy() -> impl Strategy<Value = Condition> {
    let subject_values = prop_oneof![
        Just((Subject::Site, vec!["1", "3"])),
        Just((Subject::Team, vec!["A组"])),
        Just((Subject::Agent, vec!["8001", ""])),
        Just((Subject::Batch, vec!["11"])),
        Just((Subject::Account, vec!["hq"])),
        Just((Subject::HangupSide, vec!["customer", "none"])),
        Just((Subject::Direction, vec!["outbound"])),
        Just((Subject::Hour, vec!["9", "10", "11", "23"])),
        Just((Subject::Weekday, vec!["1", "7"])),
        Just((Subject::Field { key: "result".to_owned() }, vec!["成功", ""])),
        Just((Subject::Field { key: "level".to_owned() }, vec!["高"])),
    ];
    (subject_values, any::<bool>()).prop_map(|((subject, values), negate)| Condition {
        subject,
        values: values.into_iter().map(str::to_owned).collect(),
        negate,
    })
}

fn def_strategy() -> impl Strategy<Value = ReportDef> {
    (
        tag_strategy(),
        proptest::collection::vec(condition_strategy(), 0..=2),
        proptest::collection::vec((statistic_strategy(), proptest::option::of(statistic_strategy())), 1..4),
    )
        .prop_map(|(tags, conditions, columns)| ReportDef {
            name: "r".to_owned(),
            tags,
            conditions,
            columns: columns
                .into_iter()
                .enumerate()
                .map(|(i, (statistic, divide_by))| Column { header: format!("c{i}"), statistic, divide_by })
                .collect(),
        })
}

fn filter_strategy() -> impl Strategy<Value = Filter> {
    (
        proptest::option::weighted(0.2, proptest::sample::subsequence(vec![1_i64, 2], 1..=2)),
        proptest::option::weighted(0.2, proptest::sample::subsequence(vec![1_i64, 2, 3], 1..=3)),
        proptest::option::weighted(0.2, Just(vec!["sub1".to_owned()])),
        proptest::option::weighted(0.2, Just(vec!["B组".to_owned(), "".to_owned()])),
        prop_oneof![1 => Just((-1_i64, DAYS)), 1 => (-2_i64..DAYS, 0_i64..DAYS)],
    )
        .prop_map(|(projects, sites, accounts, teams, (first, len))| {
            let first = BASE / 86_400 + first;
            Filter { projects, sites, accounts, teams, days: DayRange { first, last: first + len } }
        })
}

/// HQ's cubes and one more, so every grain is exercised.
fn cubes() -> Vec<CubeSpec> {
    let mut cubes = reports::hub_cubes();
    cubes.push(CubeSpec::without(&[COMBO, HANGUP, ACCOUNT, PROJECT], false));
    cubes
}

/// Every stored cell, in key order.
fn cells(conn: &rusqlite::Connection) -> Vec<(i64, String, i64, i64, i64)> {
    let mut stmt = conn.prepare("SELECT utc_hour, cell, m0, m1, m15 FROM report_cells ORDER BY utc_hour, cell").unwrap();
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))).unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

/// `ops` in one transaction with a buffered [`Pending`], flushed before the commit.
fn write_buffered(conn: &mut rusqlite::Connection, engine: &Engine, ops: &[Op]) -> Result<(), reports::ReportError> {
    let tx = conn.transaction()?;
    let mut pending = Pending::buffered();
    for op in ops {
        match op {
            Op::Attempt(fact) => reports::record_attempt(&tx, fact, &mut pending)?,
            Op::Record { site, attempt, values } => reports::record_business(&tx, *site, *attempt, values, &mut pending)?,
        }
    }
    reports::flush(&tx, &mut pending)?;
    tx.commit()?;
    engine.apply(pending);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn the_engine_answers_as_the_brute_force_over_raw_facts(
        ops in proptest::collection::vec(op_strategy(), 1..100),
        queries in proptest::collection::vec((def_strategy(), filter_strategy()), 1..6),
        zone in proptest::sample::select(vec!["Asia/Shanghai", "Europe/Berlin", "America/New_York", "UTC"]),
        run in 1..12_usize,
    ) {
        let zone = Zone::new(zone).unwrap();
        let (_dir, mut conn) = open();
        let live = Engine::with_cubes(zone.clone(), cubes());
        // Loaded before the writes: it must follow every commit's deltas.
        live.run(&conn, &queries[0].0, &queries[0].1).unwrap();
        for op in &ops {
            match op {
                Op::Attempt(fact) => write_attempt(&mut conn, &live, fact).unwrap(),
                Op::Record { site, attempt, values } => {
                    let values: Vec<(&str, &str)> = values.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    write_record(&mut conn, &live, *site, *attempt, &values).unwrap();
                }
            }
        }
        // The same history again as a sync-up writes it: runs of `run` operations, each in
        // one transaction whose cell changes are summed and written at its end, into facts
        // keyed as the hub keeps them.
        let (_dir2, mut conn2) = open_keyed();
        let buffered = Engine::with_cubes(zone.clone(), cubes());
        buffered.run(&conn2, &queries[0].0, &queries[0].1).unwrap();
        for chunk in ops.chunks(run) {
            write_buffered(&mut conn2, &buffered, chunk).unwrap();
        }
        // The same cells, row for row: none left empty, none written twice.
        prop_assert_eq!(cells(&conn2), cells(&conn));
        let rebuilt = Engine::with_cubes(zone.clone(), cubes());
        let finest = Engine::new(zone.clone());
        for (def, filter) in &queries {
            let want = run_brute_force(&conn, &zone, def, filter).unwrap();
            prop_assert_eq!(&live.run(&conn, def, filter).unwrap(), &want);
            prop_assert_eq!(&rebuilt.run(&conn, def, filter).unwrap(), &want);
            prop_assert_eq!(&buffered.run(&conn2, def, filter).unwrap(), &want);
            prop_assert_eq!(&run_brute_force(&conn2, &zone, def, filter).unwrap(), &want);
            // Groups in a hash map rather than a dense array.
            let dense = reports::set_dense_group_limit(0);
            let hashed = finest.run(&conn, def, filter).unwrap();
            reports::set_dense_group_limit(dense);
            prop_assert_eq!(&hashed, &want);
        }
    }
}
