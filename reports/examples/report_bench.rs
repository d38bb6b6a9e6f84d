//! The report benchmark (not a test): a generated month of attempts, answered by the engine
//! and by DuckDB over the same raw attempts in Parquet, side by side.
//!
//! ```text
//! cargo run --release -p reports --example report_bench -- \
//!     --sites 1 --agents 100 --days 30 --per-agent-day 800 --dir /tmp/rb --python .../bin/python
//! ```
//!
//! It writes the attempts as CSV (DuckDB turns them into Parquet) and their cells into a
//! fresh SQLite file with the engine's schema, exactly the cells `record_attempt` would
//! write (the write path's own cost is measured on the first attempts through
//! `record_attempt`), loads the engine from it as a store does at start, then runs each
//! report `--runs` times (p50 / p95) and DuckDB the same query `--duck-runs` times. Each
//! report's row count and first column's total must be equal on both sides.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use reports::{
    record_attempt, AttemptFact, CellKey, Column, Condition, DayRange, Direction, Engine, Filter, HangupSide,
    Measures, Outcome, Pending, ReportDef, Statistic, Subject, Tag, Value, Zone, N_MEASURES, SCHEMA,
};
use rusqlite::{params, Connection};

struct Args {
    sites: i64,
    agents: i64,
    days: i64,
    per_agent_day: i64,
    dir: PathBuf,
    runs: usize,
    duck_runs: usize,
    python: Option<String>,
    write_sample: usize,
    /// Reuse the cells and the Parquet of an earlier run in `dir`.
    reuse: bool,
}

fn args() -> Args {
    let mut a = Args {
        sites: 1,
        agents: 100,
        days: 30,
        per_agent_day: 800,
        dir: std::env::temp_dir().join("report_bench"),
        runs: 30,
        duck_runs: 5,
        python: None,
        write_sample: 200_000,
        reuse: false,
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    for pair in raw.chunks(2) {
        let value = pair.get(1).cloned().unwrap_or_default();
        let num = || value.parse::<i64>().unwrap_or_else(|_| panic!("{}: not a number: {value}", pair[0]));
        match pair[0].as_str() {
            "--sites" => a.sites = num(),
            "--agents" => a.agents = num(),
            "--days" => a.days = num(),
            "--per-agent-day" => a.per_agent_day = num(),
            "--dir" => a.dir = PathBuf::from(&value),
            "--runs" => a.runs = num() as usize,
            "--duck-runs" => a.duck_runs = num() as usize,
            "--python" => a.python = Some(value.clone()),
            "--write-sample" => a.write_sample = num() as usize,
            "--reuse" => a.reuse = value == "yes",
            other => panic!("unknown option {other}"),
        }
    }
    a
}

/// SplitMix64: the same history from the same arguments.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 2026-11-01 00:00 China time.
fn month_start() -> i64 {
    reports::days_from_civil(2026, 11, 1) * 86_400 - 8 * 3600
}

const RESULTS: [&str; 3] = ["成功", "失败", "再联系"];

/// Attempt `i` of agent `agent` of site `site` on day `day`, and its record's result.
fn attempt(site: i64, agent: i64, day: i64, i: i64) -> (AttemptFact, &'static str) {
    let r = mix(((site * 1_000 + agent) * 100 + day) as u64 * 1_000_003 + i as u64);
    let pick = |shift: u32, n: u64| (r >> shift) % n;
    let outcome = match pick(0, 100) {
        0..55 => Outcome::NotAnswered,
        55..85 => Outcome::Connected,
        85..90 => Outcome::QueueAbandoned,
        90..93 => Outcome::ExtensionMissed,
        93..95 => Outcome::ExtensionRejected,
        _ => Outcome::AnsweredNoAgent,
    };
    let hangup = match outcome {
        Outcome::NotAnswered => None,
        Outcome::Connected => Some(if pick(8, 3) == 0 { HangupSide::Agent } else { HangupSide::Customer }),
        Outcome::QueueAbandoned => Some(HangupSide::Customer),
        _ => Some(HangupSide::System),
    };
    let result = if outcome == Outcome::Connected { RESULTS[pick(12, 3) as usize] } else { "" };
    // An agent works one task a day; the task belongs to one of five sub-projects and was
    // dispatched by one of three HQ accounts.
    let batch = site * 100 + (agent + day) % 3;
    let talk = if outcome == Outcome::Connected { 20 + pick(16, 300) as u32 } else { 0 };
    let fact = AttemptFact {
        project: 1 + batch % 5,
        site,
        attempt: (agent * 100 + day) * 100_000 + i,
        team: format!("{}组", agent % 4 + 1),
        agent: format!("{}", 8000 + agent),
        extension: format!("{}", 800 + agent),
        batch,
        account: ["hq", "sub1", "sub2"][(batch % 3) as usize].to_owned(),
        direction: if pick(24, 20) == 0 { Direction::Inbound } else { Direction::Outbound },
        hangup,
        outcome,
        ring_seconds: 3 + pick(32, 30) as u32,
        queue_seconds: if outcome == Outcome::QueueAbandoned { 5 + pick(40, 20) as u32 } else { 0 },
        talk_seconds: talk,
        ivr_seconds: 0,
        // Working hours 09:00-19:00 China time.
        started_at: month_start() + day * 86_400 + 9 * 3600 + pick(44, 36_000) as i64,
        values: None,
    };
    (fact, result)
}

fn combo(result: &str) -> String {
    if result.is_empty() { "[]".to_owned() } else { reports::canonical_combo(&[("result".to_owned(), result.to_owned())]) }
}

/// Generates the history: CSV for DuckDB, cells into SQLite. Returns the attempt count.
fn generate(a: &Args, conn: &mut Connection) -> anyhow::Result<u64> {
    let mut csv = match &a.python {
        Some(_) => Some(BufWriter::with_capacity(1 << 22, std::fs::File::create(a.dir.join("attempts.csv"))?)),
        None => None,
    };
    if let Some(csv) = csv.as_mut() {
        writeln!(csv, "project,site,team,agent,extension,batch,account,direction,hangup,outcome,ring,queue,talk,ivr,started_at,result")?;
    }
    let tx = conn.transaction()?;
    let mut n = 0_u64;
    {
        let mut insert = tx.prepare(
            "INSERT INTO report_cells VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
        )?;
        for site in 1..=a.sites {
            for agent in 0..a.agents {
                for day in 0..a.days {
                    let mut cells: HashMap<(i64, CellKey), Measures> = HashMap::new();
                    for i in 0..a.per_agent_day {
                        let (fact, result) = attempt(site, agent, day, i);
                        n += 1;
                        if let Some(csv) = csv.as_mut() {
                            writeln!(
                                csv,
                                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                                fact.project, fact.site, fact.team, fact.agent, fact.extension, fact.batch, fact.account,
                                fact.direction.code(), reports_hangup(fact.hangup), fact.outcome.code(), fact.ring_seconds,
                                fact.queue_seconds, fact.talk_seconds, fact.ivr_seconds, fact.started_at, result
                            )?;
                        }
                        let key = CellKey {
                            project: fact.project,
                            site: fact.site,
                            team: fact.team.clone(),
                            agent: fact.agent.clone(),
                            extension: fact.extension.clone(),
                            batch: fact.batch,
                            account: fact.account.clone(),
                            direction: fact.direction.code(),
                            hangup: reports_hangup(fact.hangup),
                            combo: combo(result),
                        };
                        let sums = cells.entry((fact.started_at.div_euclid(3600), key)).or_insert([0; N_MEASURES]);
                        for (s, m) in sums.iter_mut().zip(fact.measures()) {
                            *s += m;
                        }
                    }
                    for ((hour, key), m) in cells {
                        insert.execute(params![
                            hour, key.encode(), m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9], m[10], m[11], m[12],
                            m[13], m[14], m[15]
                        ])?;
                    }
                }
            }
            eprintln!("site {site}: {n} attempts so far");
        }
    }
    tx.execute("UPDATE report_meta SET value = 1 WHERE key = 'version'", [])?;
    tx.commit()?;
    if let Some(mut csv) = csv {
        csv.flush()?;
    }
    Ok(n)
}

fn reports_hangup(side: Option<HangupSide>) -> u8 {
    match side {
        None => 0,
        Some(HangupSide::Customer) => 1,
        Some(HangupSide::Agent) => 2,
        Some(HangupSide::System) => 3,
    }
}

fn col(header: &str, statistic: Statistic) -> Column {
    Column { header: header.to_owned(), statistic, divide_by: None }
}

fn success() -> Statistic {
    Statistic::FieldValue { key: "result".to_owned(), value: "成功".to_owned() }
}

/// The reports and the same query in DuckDB's SQL (`t` = the attempts).
fn queries() -> Vec<(&'static str, ReportDef, &'static str)> {
    let def = |tags: Vec<Tag>, conditions: Vec<Condition>, columns: Vec<Column>| ReportDef {
        name: "bench".to_owned(),
        tags,
        conditions,
        columns,
    };
    vec![
        (
            "team: dials, connected, rate",
            def(vec![Tag::Team], vec![], vec![
                col("外呼数", Statistic::Dials),
                col("外呼接通数", Statistic::DialConnected),
                Column { header: "接通率".into(), statistic: Statistic::DialConnected, divide_by: Some(Statistic::Dials) },
            ]),
            "SELECT site, team, count(*) FILTER (direction = 0), count(*) FILTER (direction = 0 AND outcome <> 0) FROM t GROUP BY ALL",
        ),
        (
            "site x day: dials, ext connected, talk",
            def(vec![Tag::Site, Tag::Day], vec![], vec![
                col("外呼数", Statistic::Dials),
                col("分机接通数", Statistic::ExtensionConnected),
                col("通话时长", Statistic::TalkSeconds),
            ]),
            "SELECT site, (started_at + 28800) // 86400 AS d, count(*) FILTER (direction = 0), count(*) FILTER (outcome = 1), sum(talk) FROM t GROUP BY ALL",
        ),
        (
            "agent: dials, success, success rate",
            def(vec![Tag::Agent], vec![], vec![
                col("外呼数", Statistic::Dials),
                col("成功", success()),
                Column { header: "成功率".into(), statistic: success(), divide_by: Some(Statistic::Dials) },
            ]),
            "SELECT site, agent, count(*) FILTER (direction = 0), count(*) FILTER (result = '成功') FROM t GROUP BY ALL",
        ),
        (
            "hour x hang-up side: attempts, customer connected",
            def(vec![Tag::Hour, Tag::HangupSide], vec![], vec![
                col("呼叫数", Statistic::Attempts),
                col("客户接通数", Statistic::CustomerConnected),
            ]),
            "SELECT ((started_at + 28800) // 3600) % 24 AS h, hangup, count(*), count(*) FILTER (outcome <> 0) FROM t GROUP BY ALL",
        ),
        (
            "batch x account x direction: dials, inbound, talk",
            def(vec![Tag::Batch, Tag::Account, Tag::Direction], vec![], vec![
                col("外呼数", Statistic::Dials),
                col("呼入数", Statistic::Inbound),
                col("通话时长", Statistic::TalkSeconds),
            ]),
            "SELECT batch, account, direction, count(*) FILTER (direction = 0), count(*) FILTER (direction = 1), sum(talk) FROM t GROUP BY ALL",
        ),
        (
            "agent x hour: dials, ext connected",
            def(vec![Tag::Agent, Tag::Hour], vec![], vec![
                col("外呼数", Statistic::Dials),
                col("分机接通数", Statistic::ExtensionConnected),
            ]),
            "SELECT site, agent, ((started_at + 28800) // 3600) % 24 AS h, count(*) FILTER (direction = 0), count(*) FILTER (outcome = 1) FROM t GROUP BY ALL",
        ),
        (
            "site x weekday where result = success: attempts, talk",
            def(vec![Tag::Site, Tag::Weekday], vec![Condition {
                subject: Subject::Field { key: "result".to_owned() },
                values: vec!["成功".to_owned()],
                negate: false,
            }], vec![col("成功数", Statistic::Attempts), col("通话时长", Statistic::TalkSeconds)]),
            "SELECT site, (((started_at + 28800) // 86400) + 3) % 7 + 1 AS w, count(*), sum(talk) FROM t WHERE result = '成功' GROUP BY ALL",
        ),
        (
            "extension x month: dials, agents reached",
            def(vec![Tag::Extension, Tag::Month], vec![], vec![
                col("外呼数", Statistic::Dials),
                col("接入坐席数", Statistic::AgentsReached),
            ]),
            "SELECT site, extension, strftime(to_timestamp(started_at + 28800), '%Y-%m') AS m, count(*) FILTER (direction = 0), count(*) FILTER (outcome IN (1, 4, 5)) FROM t GROUP BY ALL",
        ),
    ]
}

fn percentile(times: &mut [f64], p: f64) -> f64 {
    times.sort_by(|a, b| a.total_cmp(b));
    let i = ((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1;
    times[i]
}

/// The write path: `record_attempt` for `n` attempts in transactions of 500 (a sync-up batch).
fn measure_writes(a: &Args, n: usize) -> anyhow::Result<f64> {
    let path = a.dir.join("writes.sqlite3");
    let _ = std::fs::remove_file(&path);
    let mut conn = Connection::open(&path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.execute_batch(SCHEMA)?;
    let engine = Engine::hub(Zone::china());
    let started = Instant::now();
    let mut done = 0;
    'all: for agent in 0..a.agents {
        for day in 0..a.days {
            let tx = conn.transaction()?;
            let mut pending = Pending::default();
            for i in 0..a.per_agent_day.min(500) {
                let (mut fact, result) = attempt(1, agent, day, i);
                fact.values = Some(if result.is_empty() { vec![] } else { vec![("result".to_owned(), result.to_owned())] });
                record_attempt(&tx, &fact, &mut pending)?;
                done += 1;
            }
            tx.commit()?;
            engine.apply(pending);
            if done >= n {
                break 'all;
            }
        }
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / done as f64)
}

fn main() -> anyhow::Result<()> {
    let a = args();
    std::fs::create_dir_all(&a.dir)?;
    let db = a.dir.join("cells.sqlite3");
    if !a.reuse {
        let _ = std::fs::remove_file(&db);
    }
    let mut conn = Connection::open(&db)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let t = Instant::now();
    let n = if a.reuse {
        conn.query_row("SELECT sum(m0) FROM report_cells", [], |r| r.get::<_, i64>(0))? as u64
    } else {
        conn.execute_batch(SCHEMA)?;
        generate(&a, &mut conn)?
    };
    let cells: i64 = conn.query_row("SELECT count(*) FROM report_cells", [], |r| r.get(0))?;
    println!("history: {} sites x {} agents x {} days, {n} attempts, {cells} cells, generated in {:.1} s", a.sites, a.agents, a.days, t.elapsed().as_secs_f64());

    let engine = if a.sites > 1 { Engine::hub(Zone::china()) } else { Engine::site(Zone::china()) };
    let t = Instant::now();
    engine.refresh(&conn)?;
    println!("engine loaded from report_cells in {:.1} s; cubes (cells): {:?}", t.elapsed().as_secs_f64(),
        engine.cube_sizes(&conn)?.iter().map(|(s, c)| (format!("{:03x}{}", s.dims, if s.hourly { "h" } else { "d" }), *c)).collect::<Vec<_>>());

    let first = reports::days_from_civil(2026, 11, 1);
    let filter = Filter { projects: None, sites: None, accounts: None, teams: None, days: DayRange { first, last: first + a.days - 1 } };
    let mut ours = Vec::new();
    for (name, def, _) in queries() {
        let mut times = Vec::new();
        let mut table = engine.answer(&def, &filter);
        for _ in 0..a.runs {
            let t = Instant::now();
            table = engine.answer(&def, &filter);
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let first_total = match table.total.first() {
            Some(Value::Count(c)) => *c,
            _ => -1,
        };
        let (p50, p95) = (percentile(&mut times, 0.5), percentile(&mut times, 0.95));
        println!("ours   {name:55} rows {:7} total {first_total:10} p50 {p50:8.2} ms p95 {p95:8.2} ms", table.rows.len());
        ours.push((name, table.rows.len(), first_total, p95));
    }

    if let Some(python) = &a.python {
        duck(&a, python, &ours)?;
    }
    if a.write_sample > 0 {
        let us = measure_writes(&a, a.write_sample)?;
        println!("write path: record_attempt + apply, {us:.1} µs per attempt ({} attempts, batches of 500)", a.write_sample);
    }
    Ok(())
}

/// Runs the DuckDB side in Python: CSV to Parquet once, then each query over the Parquet.
fn duck(a: &Args, python: &str, ours: &[(&str, usize, i64, f64)]) -> anyhow::Result<()> {
    let sql: Vec<&str> = queries().iter().map(|(_, _, sql)| *sql).collect();
    let script = format!(
        r#"
import duckdb, json, time, math, sys
dir = {dir:?}
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
t = time.time()
import os
if not os.path.exists(f"{{dir}}/attempts.parquet"): con.execute(f"COPY (SELECT * FROM read_csv('{{dir}}/attempts.csv', header=true, columns={{{{'project':'BIGINT','site':'BIGINT','team':'VARCHAR','agent':'VARCHAR','extension':'VARCHAR','batch':'BIGINT','account':'VARCHAR','direction':'TINYINT','hangup':'TINYINT','outcome':'TINYINT','ring':'INTEGER','queue':'INTEGER','talk':'INTEGER','ivr':'INTEGER','started_at':'BIGINT','result':'VARCHAR'}}}})) TO '{{dir}}/attempts.parquet' (FORMAT parquet)")
print(f"parquet written in {{time.time()-t:.1f}} s", file=sys.stderr)
con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{{dir}}/attempts.parquet')")
out = []
for q in json.loads(sys.argv[1]):
    rows = con.execute(q).fetchall()
    times = []
    for _ in range({runs}):
        t = time.perf_counter(); rows = con.execute(q).fetchall(); times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    p95 = times[max(0, math.ceil(len(times) * 0.95) - 1)]
    out.append({{"rows": len(rows), "p50": times[len(times)//2], "p95": p95, "firsts": [sum((r[i] or 0) for r in rows) if isinstance(rows[0][i], (int, float)) else None for i in range(len(rows[0]))] if rows else []}})
print(json.dumps(out))
"#,
        dir = a.dir.display().to_string(),
        runs = a.duck_runs,
    );
    let output = std::process::Command::new(python).arg("-c").arg(&script).arg(serde_json::to_string(&sql)?).output()?;
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let answers: Vec<serde_json::Value> = serde_json::from_str(stdout.lines().last().unwrap_or("[]"))?;
    for ((name, rows, total, p95), duck) in ours.iter().zip(&answers) {
        let duck_rows = duck["rows"].as_u64().unwrap_or(0) as usize;
        let sums: Vec<i64> = duck["firsts"].as_array().map(|v| v.iter().filter_map(|x| x.as_f64()).map(|x| x as i64).collect()).unwrap_or_default();
        let same = duck_rows == *rows && sums.contains(total);
        let duck_p95 = duck["p95"].as_f64().unwrap_or(f64::NAN);
        println!(
            "duckdb {name:55} rows {duck_rows:7} p50 {:8.2} ms p95 {duck_p95:8.2} ms | ours/duckdb {:.3} | same answer: {same}",
            duck["p50"].as_f64().unwrap_or(f64::NAN),
            p95 / duck_p95
        );
    }
    Ok(())
}
