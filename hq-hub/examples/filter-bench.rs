//! Data-filter benchmark (外呼数据过滤, manual 1.2.1.9): a hub store holding `--attempts`
//! call attempts (default 30,000,000) spread evenly over the last 30 days, then one filter
//! run of a `--numbers`-row file (default 1,000,000) with the manual's settings: all HQ
//! accounts, all projects, valid days 30, condition "called", repeat count 2.
//!
//! The history is written straight into the store's SQLite file with SQL in large
//! transactions (not through the sync link): `--attempts / 3` batch rows (each number dialed
//! three times over the month, a third of the attempts answered) in 30 daily batches. Half of
//! the file's numbers are in that history, half are not, so the filter removes about half.
//!
//! `cargo run --release -p hq-hub --example filter-bench -- [--attempts N] [--numbers N]
//! [--dir PATH]` prints the generation time, then the filter's wall time (reading the file's
//! rows as the console does, and `filter::run_filter`: history tally, result workbook, result file
//! stored) and the peak RSS. With `--dir`, a store generated earlier with the same counts is
//! reused. `--spread` filters instead a file whose numbers are spread over every batch (the
//! worst case: the whole window is read). `--insert-cost N [--recent] [--without-row-index]` instead
//! times applying N more attempts through the sync link's store call, with or without the
//! filter's row index (without: version 4's indexes, and migration 5's rebuilt afterwards).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{ensure, Context};
use rusqlite::{params, Connection};

use hq_hub::store::{
    FieldSpec, FilterCondition, FilterScope, FilterSettings, GoodRow, ImportReport, NewProject, PhoneMode, ProjectSettings, Scope, Store,
};

const DAY: i64 = 86_400;
const BATCHES: i64 = 30;

/// Peak resident set size of this process, MB (Linux `VmHWM`).
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// The `i`-th number of the history (distinct mobiles 130…).
fn phone(i: i64) -> String {
    (13_000_000_000 + i).to_string()
}

fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Batches, batch rows and attempts, straight into the store's database.
fn generate(db: &std::path::Path, site: i64, project: i64, file: i64, attempts: i64) -> anyhow::Result<()> {
    let rows = attempts / 3;
    let mut conn = Connection::open(db)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.pragma_update(None, "cache_size", -262_144)?; // 256 MB
    let now = now_unix();
    let start = now - 30 * DAY + 60;
    {
        let tx = conn.transaction()?;
        for b in 1..=BATCHES {
            tx.execute(
                "INSERT INTO batches (id, file_id, project_id, site_id, name, priority, n_rows, created_at, creator)
                 VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, 'admin')",
                params![b, file, project, site, format!("第{b}批"), rows / BATCHES, start + (b - 1) * DAY],
            )?;
        }
        tx.commit()?;
    }
    // A row's batch: rows are split into BATCHES equal runs.
    let per_batch = (rows + BATCHES - 1) / BATCHES;
    let chunk = 2_000_000i64;
    let mut from = 0;
    while from < rows {
        let to = (from + chunk).min(rows);
        let tx = conn.transaction()?;
        tx.execute(
            "WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?2)
             INSERT INTO batch_rows (id, batch_id, import_row_id, phone)
             SELECT i + 1, 1 + i / ?3, 1, CAST(13000000000 + i AS TEXT) FROM n",
            params![from, to, per_batch],
        )?;
        tx.commit()?;
        from = to;
    }
    // Attempt a dials row a % rows, at evenly spaced times over the 30 days; every third
    // attempt is answered.
    let span = 30 * DAY - 120;
    let mut from = 0;
    while from < attempts {
        let to = (from + chunk).min(attempts);
        let tx = conn.transaction()?;
        tx.execute(
            "WITH RECURSIVE n(a) AS (SELECT ?1 UNION ALL SELECT a + 1 FROM n WHERE a + 1 < ?2)
             INSERT INTO call_attempts (site_id, attempt_id, batch_id, row_id, started_at, answered_at, ended_at,
                                        outcome, hangup_side, agent, talk_seconds, recording_sha256)
             SELECT ?3, a + 1, 1 + (a % ?4) / ?5, (a % ?4) + 1, ?6 + a * ?7 / ?8,
                    CASE WHEN a % 3 = 0 THEN ?6 + a * ?7 / ?8 + 8 END, ?6 + a * ?7 / ?8 + 40,
                    CASE WHEN a % 3 = 0 THEN 'answered' ELSE 'no_answer' END,
                    CASE WHEN a % 3 = 0 THEN 'customer' END, CASE WHEN a % 3 = 0 THEN '8001' END,
                    CASE WHEN a % 3 = 0 THEN 32 ELSE 0 END, NULL
             FROM n",
            params![from, to, site, rows, per_batch, start, span, attempts],
        )?;
        tx.commit()?;
        from = to;
        eprint!("\r{to} attempts");
    }
    eprintln!();
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")?;
    Ok(())
}

/// Applies `n` new attempts (on random rows of the history, or with `--recent` on the rows
/// of the two newest batches in order, as a day of dialing reports them) through
/// the sync link's store call, in runs of 256 entries, and prints the rate: the cost of the
/// filter's row index to the hub's intake. `without_index` puts schema version 4's indexes
/// in place first, and migration 5's back afterwards (printing how long that takes).
fn insert_cost(store: &Store, dir: &std::path::Path, attempts: i64, n: u64, without_index: bool, recent: bool) -> anyhow::Result<()> {
    use sync_link::HubStore;
    use sync_protocol::{CallAttempt, Outcome, UpEntry, UpEvent};
    if without_index {
        // The indexes of schema version 4 in place of migration 5's.
        let conn = Connection::open(dir.join("hub.sqlite3"))?;
        conn.execute_batch(
            "DROP INDEX IF EXISTS call_attempts_batch_row; CREATE INDEX IF NOT EXISTS call_attempts_batch ON call_attempts(batch_id);
             DROP INDEX IF EXISTS batch_rows_phone_batch; CREATE INDEX IF NOT EXISTS batch_rows_phone ON batch_rows(phone);",
        )?;
    }
    let rows = (attempts / 3) as u64;
    let per_batch = rows.div_ceil(BATCHES as u64);
    let stamp = now_unix() as u64;
    let now = now_unix();
    let mut state = stamp | 1;
    let mut next = || {
        // xorshift: row ids scattered over the history like a day of many batches.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let started = Instant::now();
    let mut seq = 0u64;
    while seq < n {
        let run: Vec<UpEntry> = (seq..(seq + 256).min(n))
            .map(|k| {
                let row = if recent {
                    // The two newest batches, dialed in row order, alternately.
                    (BATCHES as u64 - 1 - k % 2) * per_batch + (k / 2) % per_batch
                } else {
                    next() % rows
                };
                UpEntry {
                    epoch: stamp,
                    seq: k + 1,
                    event: UpEvent::CallAttempt(CallAttempt {
                        attempt_id: 1_000_000_000_000 + stamp % 1_000_000 * 10_000_000 + k,
                        batch_id: 1 + row / per_batch,
                        row_id: row + 1,
                        started_at: now - 100,
                        answered_at: None,
                        ended_at: now - 60,
                        outcome: Outcome::NoAnswer,
                        hangup_side: None,
                        agent: None,
                        talk_seconds: 0,
                        recording_sha256: None,
                        kind: sync_protocol::AttemptKind::Predictive,
                    }),
                }
            })
            .collect();
        seq += run.len() as u64;
        store.apply_up_batch(1, &run).map_err(|e| anyhow::anyhow!("applying attempts: {e}"))?;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "applied {n} attempts ({}) in runs of 256, {}: {seconds:.2} s, {:.0} attempts/s",
        if recent { "rows of the two newest batches in order" } else { "random rows of the month" },
        if without_index { "version 4 indexes" } else { "version 5 indexes (the filter's)" },
        n as f64 / seconds
    );
    if without_index {
        // Back to version 5: what migration 5 costs a store of this size.
        let conn = Connection::open(dir.join("hub.sqlite3"))?;
        let started = Instant::now();
        conn.execute_batch(
            "BEGIN;
             CREATE INDEX call_attempts_batch_row ON call_attempts(batch_id, row_id, started_at, site_id, answered_at);
             DROP INDEX call_attempts_batch;
             CREATE INDEX batch_rows_phone_batch ON batch_rows(phone, batch_id);
             DROP INDEX batch_rows_phone;
             COMMIT;",
        )?;
        println!("migration 5's indexes rebuilt in {:.1} s", started.elapsed().as_secs_f64());
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    // `RUST_LOG=hq_hub=debug` prints the filter's phases with their elapsed seconds.
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).with_writer(std::io::stderr).init();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let attempts: i64 = value("--attempts").map(|v| v.parse()).transpose()?.unwrap_or(30_000_000);
    let numbers: i64 = value("--numbers").map(|v| v.parse()).transpose()?.unwrap_or(1_000_000);
    let temp = tempfile::tempdir()?;
    let dir = value("--dir").map(PathBuf::from).unwrap_or_else(|| temp.path().to_path_buf());
    let marker = dir.join(format!("bench-{attempts}-{numbers}"));
    let reuse = marker.exists();
    let opening = Instant::now();
    let store = Store::open(&dir)?;
    if reuse {
        // Includes any schema migration the store had not had yet (an index over the history).
        println!("opened the store in {:.1} s", opening.elapsed().as_secs_f64());
    }
    let (file_id, password) = if reuse {
        let text = std::fs::read_to_string(&marker)?;
        let (f, password) = text.trim().split_once(' ').context("marker holds the file id and the admin password")?;
        println!("reusing the store in {} ({attempts} attempts)", dir.display());
        (f.parse::<i64>()?, password.to_string())
    } else {
        ensure!(!dir.join("bench-done").exists(), "{} holds a store generated with other counts: use another --dir", dir.display());
        let site = store.create_site("一号职场")?;
        let category = store.create_category("套餐类")?;
        let project_id = store.create_project(&NewProject {
            category_id: category,
            name: "过滤基准".into(),
            template_id: None,
            script: String::new(),
            hide_middle_digits: true,
            customer_fields: vec![FieldSpec::text("name", "客户姓名")],
            record_fields: Vec::new(),
            settings: ProjectSettings::default(),
            phone_mode: PhoneMode::Number,
        })?;
        store.set_project_sites(project_id, &[site])?;
        let password = store.init_admin("admin")?;
        // The file to filter: half its numbers are in the history (the last ones dialed),
        // half never were.
        let history_rows = attempts / 3;
        let first = history_rows - numbers / 2;
        let rows: Vec<GoodRow> = (0..numbers)
            .map(|k| GoodRow { row_number: k as u32 + 2, phone: phone(first + k), fields: [format!("客户{k}")].into_iter().collect() })
            .collect();
        let report = ImportReport { n_rows: numbers as u64, n_good: numbers as u64, phone_column: "手机号码".into(), ..ImportReport::default() };
        let file_id = store.save_import(project_id, "名单.xlsx", b"PK\x03\x04", "admin", &rows, &report)?;
        drop(rows);
        let started = Instant::now();
        generate(&dir.join("hub.sqlite3"), site, project_id, file_id, attempts)?;
        println!(
            "generated {attempts} attempts on {} batch rows in {BATCHES} batches over 30 days in {:.1} s",
            history_rows,
            started.elapsed().as_secs_f64()
        );
        std::fs::write(&marker, format!("{file_id} {password}"))?;
        std::fs::write(dir.join("bench-done"), "")?;
        (file_id, password)
    };
    if let Some(n) = value("--insert-cost").map(|v| v.parse::<u64>()).transpose()? {
        let recent = args.iter().any(|a| a == "--recent");
        return insert_cost(&store, &dir, attempts, n, args.iter().any(|a| a == "--without-row-index"), recent);
    }
    let (_, account) = store.login("admin", &password)?;
    let project_id = store.file(file_id)?.context("the file to filter")?.0.project_id;
    // `--spread`: the worst case, the file's numbers spread over every batch of the month
    // (every 20th number of the history, plus as many never dialed), stored as another file.
    let file_id = if args.iter().any(|a| a == "--spread") {
        let history_rows = attempts / 3;
        let step = (history_rows / (numbers / 2).max(1)).max(1);
        let rows: Vec<GoodRow> = (0..numbers)
            .map(|k| {
                let index = if k % 2 == 0 { (k / 2) * step } else { history_rows + k };
                GoodRow { row_number: k as u32 + 2, phone: phone(index), fields: [format!("客户{k}")].into_iter().collect() }
            })
            .collect();
        let report = ImportReport { n_rows: numbers as u64, n_good: numbers as u64, phone_column: "手机号码".into(), ..ImportReport::default() };
        println!("file numbers spread over all {BATCHES} batches (every {step}th number of the history)");
        store.save_import(project_id, "分散名单.xlsx", b"PK\x03\x04", "admin", &rows, &report)?
    } else {
        file_id
    };
    let scope = Scope::all(account);
    let settings =
        FilterSettings { scope: FilterScope::All, project_ids: Vec::new(), valid_days: 30, condition: FilterCondition::Called, repeat_count: 2 };

    let started = Instant::now();
    let rows = store.file_rows(file_id)?;
    let read_s = started.elapsed().as_secs_f64();
    let outcome = hq_hub::filter::run_filter(&store, file_id, &rows, "手机号码", &settings, &scope)?;
    let total_s = started.elapsed().as_secs_f64();
    println!(
        "filter of {} numbers against {attempts} attempts (30 days, called ≥ 2): {total_s:.2} s \
         (file rows {read_s:.2} s, run_filter {:.2} s), kept {}, removed {}, peak RSS {:.0} MB",
        rows.len(),
        total_s - read_s,
        outcome.kept,
        outcome.removed,
        peak_rss_mb()
    );
    // For the breakdown: the result workbook alone (run_filter writes the same one).
    let project = store.project(project_id)?.context("the bench project")?;
    let kept: Vec<GoodRow> = rows.iter().skip(rows.len() / 2).cloned().collect();
    let started = Instant::now();
    let workbook = hq_hub::export::filter_result_xlsx(&project, "手机号码", &kept, &[])?;
    println!(
        "  of which the result workbook ({} kept rows, {:.1} MB) takes about {:.2} s",
        kept.len(),
        workbook.len() as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
