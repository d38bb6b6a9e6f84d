//! Call-records search benchmark (职场通话记录, H23): a hub store holding `--attempts` calls
//! (default 30,000,000) over the last 30 days at 10 sites, then filtered searches through
//! `Store::search_calls` (what `GET /api/calls` and the page call): the first page and the
//! nine pages after it, 50 calls a page, each filter repeated with varied values; p50, p95
//! and the worst of each.
//!
//! The history is written straight into the store's SQLite file with SQL in large
//! transactions (not through the sync link), with the call indexes dropped and then built
//! again as migration 11 builds them: 10 sites × 30 daily batches, `--attempts / 3` batch
//! rows (each number dialed three times), a third of the calls connected (with an agent, a
//! talk time and a recording hash), 1 in 20 inbound, 1 in 31 abandoned, 1 in 30 with a
//! business record (`result` = 成功 or 失败).
//!
//! `cargo run --release -p hq-hub --example calls-bench -- [--attempts N] [--dir PATH]
//! [--rounds N]`. With `--dir`, a store generated earlier with the same count is reused.
//! `--insert-cost N` instead times applying N more calls through the sync link's store call
//! (runs of 256, rows of the newest batches), with migration 11's five indexes and then
//! without them (dropped, timed, and built again).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use rusqlite::{params, Connection};

use hq_hub::store::{
    Account, CallQuery, Direction, FieldSpec, FieldSpecKind, NewAccount, NewProject, PhoneMatch, ProjectAdmin, ProjectSettings, Scope,
    Store,
};

const DAY: i64 = 86_400;
const SITES: i64 = 10;
const DAYS: i64 = 30;
const PAGE: u32 = 50;
const NEXT_PAGES: usize = 9;

fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Sites, the project and a sub-admin of site 3 through the store; answers the project.
fn seed_store(store: &Store) -> anyhow::Result<i64> {
    let sites: Vec<i64> = (1..=SITES).map(|n| store.create_site(&format!("职场{n}"))).collect::<Result<_, _>>()?;
    let category = store.create_category("套餐类")?;
    let project = store.create_project(&NewProject {
        category_id: category,
        name: "流量包".into(),
        template_id: None,
        script: String::new(),
        hide_middle_digits: true,
        customer_fields: vec![],
        record_fields: vec![FieldSpec::new("result", "结果", FieldSpecKind::SingleChoice, &["成功", "失败"])],
        settings: ProjectSettings::default(),
        phone_mode: Default::default(),
    })?;
    store.set_project_sites(project, &sites)?;
    let role = store.create_role("通话", &["site.calls".to_string()])?;
    let account = store.create_account(&NewAccount {
        username: "site3".into(),
        password: "site3-secret".into(),
        role_id: role,
        group_id: None,
        site_ids: vec![sites[2]],
    })?;
    store.set_project_admins(project, &[ProjectAdmin { account_id: account, site_ids: vec![sites[2]] }])?;
    Ok(project)
}

/// Batches, batch rows, calls and records, straight into the store's database.
fn generate(db: &std::path::Path, project: i64, attempts: i64) -> anyhow::Result<()> {
    let rows = attempts / 3;
    let batches = SITES * DAYS;
    let per_batch = (rows + batches - 1) / batches;
    let mut conn = Connection::open(db)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.pragma_update(None, "cache_size", -524_288)?; // 512 MB
    let start = now_unix() - DAYS * DAY + 60;
    let started = Instant::now();
    conn.execute_batch(
        "DROP INDEX calls_time; DROP INDEX calls_site_time; DROP INDEX calls_last4_time; DROP INDEX calls_agent_time;
         DROP INDEX calls_batch_time; DROP INDEX call_attempts_batch_row;",
    )?;
    {
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO files (id, project_id, file_name, stored_path, source, status, created_at, creator, n_rows, n_good, report)
             VALUES (1, ?1, 'bench.xlsx', '', 'upload', 'done', 0, 'admin', 0, 0, '{}')",
            [project],
        )?;
        tx.execute("INSERT INTO import_rows (id, file_id, row_number, phone, fields) VALUES (1, 1, 2, '13000000000', '[]')", [])?;
        for b in 1..=batches {
            tx.execute(
                "INSERT INTO batches (id, file_id, project_id, site_id, name, priority, n_rows, created_at, creator)
                 VALUES (?1, 1, ?2, ?3, ?4, 1, ?5, ?6, 'admin')",
                params![b, project, 1 + (b - 1) % SITES, format!("第{b}批"), per_batch, start + (b - 1) / SITES * DAY],
            )?;
        }
        tx.commit()?;
    }
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
    eprintln!("{rows} batch rows in {:.1} s", started.elapsed().as_secs_f64());
    let span = DAYS * DAY - 120;
    let mut from = 0;
    while from < attempts {
        let to = (from + chunk).min(attempts);
        let tx = conn.transaction()?;
        // Call a dials row a % rows at an evenly spaced time; its site is its batch's.
        tx.execute(
            "WITH RECURSIVE n(a) AS (SELECT ?1 UNION ALL SELECT a + 1 FROM n WHERE a + 1 < ?2),
             c(a, r, b, t) AS (SELECT a, a % ?3, 1 + (a % ?3) / ?4, ?5 + a * ?6 / ?7 FROM n)
             INSERT INTO call_attempts (site_id, attempt_id, batch_id, row_id, started_at, answered_at, ended_at,
                                        outcome, hangup_side, agent, talk_seconds, recording_sha256, kind, phone_last4)
             SELECT 1 + (b - 1) % ?8, a + 1, b, r + 1, t,
                    CASE WHEN a % 3 = 0 THEN t + 8 END, t + 40,
                    CASE WHEN a % 31 = 0 THEN 'abandoned' WHEN a % 3 = 0 THEN 'connected' WHEN a % 7 = 0 THEN 'busy' ELSE 'no_answer' END,
                    CASE WHEN a % 3 = 0 THEN (CASE WHEN a % 2 = 0 THEN 'customer' ELSE 'agent' END) END,
                    CASE WHEN a % 3 = 0 THEN 'agent' || ((1 + (b - 1) % ?8) * 100 + a % 40) END,
                    CASE WHEN a % 3 = 0 THEN (a * 7919) % 300 ELSE 0 END,
                    CASE WHEN a % 3 = 0 THEN printf('%064x', a) END,
                    CASE WHEN a % 20 = 0 THEN 'inbound' ELSE 'predictive' END,
                    printf('%04d', (13000000000 + r) % 10000)
             FROM c",
            params![from, to, rows, per_batch, start, span, attempts, SITES],
        )?;
        tx.execute(
            "WITH RECURSIVE n(a) AS (SELECT ?1 UNION ALL SELECT a + 30 FROM n WHERE a + 30 < ?2)
             INSERT INTO business_records (site_id, attempt_id, batch_id, row_id, agent, saved_at, record)
             SELECT 1 + ((a % ?3) / ?4) % ?5, a + 1, 1 + (a % ?3) / ?4, a % ?3 + 1, 'agent', ?6 + a * ?7 / ?8 + 60,
                    CASE WHEN a % 60 = 0 THEN '[[\"result\",\"成功\"]]' ELSE '[[\"result\",\"失败\"]]' END
             FROM n",
            params![(from + 29) / 30 * 30, to, rows, per_batch, SITES, start, span, attempts],
        )?;
        tx.commit()?;
        from = to;
        eprint!("\r{to} calls, {:.0} s", started.elapsed().as_secs_f64());
    }
    eprintln!();
    let indexing = Instant::now();
    conn.execute_batch(
        "CREATE INDEX call_attempts_batch_row ON call_attempts(batch_id, row_id, started_at, site_id, answered_at, kind);
         CREATE INDEX calls_time ON call_attempts(started_at, site_id, attempt_id);
         CREATE INDEX calls_site_time ON call_attempts(site_id, started_at, attempt_id);
         CREATE INDEX calls_last4_time ON call_attempts(phone_last4, started_at, site_id, attempt_id);
         CREATE INDEX calls_agent_time ON call_attempts(agent, started_at, site_id, attempt_id);
         CREATE INDEX calls_batch_time ON call_attempts(batch_id, started_at, site_id, attempt_id);",
    )?;
    eprintln!("indexes in {:.1} s; generated in {:.1} s", indexing.elapsed().as_secs_f64(), started.elapsed().as_secs_f64());
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")?;
    Ok(())
}

/// Milliseconds of the `p`-th percentile.
fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

/// A tiny deterministic generator (the same values every run).
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// Times `rounds` searches of `make(round)`: the first page, then up to nine next pages.
fn measure(store: &Store, scope: &Scope, name: &str, rounds: usize, mut make: impl FnMut(usize) -> CallQuery) -> anyhow::Result<()> {
    let mut first = Vec::new();
    let mut next = Vec::new();
    let mut found = 0usize;
    for round in 0..rounds {
        let mut query = CallQuery { limit: PAGE, ..make(round) };
        let started = Instant::now();
        let mut page = store.search_calls(&query, scope)?;
        first.push(started.elapsed());
        found += page.calls.len();
        for _ in 0..NEXT_PAGES {
            let Some(cursor) = page.next else { break };
            query.after = Some(cursor);
            let started = Instant::now();
            page = store.search_calls(&query, scope)?;
            next.push(started.elapsed());
            found += page.calls.len();
        }
    }
    first.sort();
    next.sort();
    println!(
        "| {name} | {:.1} / **{:.1}** / {:.1} | {:.1} / **{:.1}** / {:.1} | {} | {:.1} |",
        percentile(&first, 0.5),
        percentile(&first, 0.95),
        percentile(&first, 1.0),
        percentile(&next, 0.5),
        percentile(&next, 0.95),
        percentile(&next, 1.0),
        next.len(),
        found as f64 / rounds as f64,
    );
    Ok(())
}

/// Applies `n` calls through the link's store call; calls per second.
fn apply_calls(store: &Store, attempts: i64, n: u64, first_id: u64) -> anyhow::Result<f64> {
    use sync_link::HubStore;
    use sync_protocol::{AttemptKind, CallAttempt, Outcome, UpEntry, UpEvent};
    let rows = (attempts / 3) as u64;
    let per_batch = rows.div_ceil((SITES * DAYS) as u64);
    let now = now_unix();
    let started = Instant::now();
    let mut k = 0u64;
    while k < n {
        // The newest day's batch of site 1, in row order, as a day of dialing reports them.
        let batch = (SITES * DAYS - SITES + 1) as u64;
        let run: Vec<UpEntry> = (k..(k + 256).min(n))
            .map(|i| UpEntry {
                epoch: first_id,
                seq: i + 1,
                event: UpEvent::CallAttempt(CallAttempt {
                    attempt_id: first_id + i,
                    batch_id: batch,
                    row_id: (batch - 1) * per_batch + i % per_batch + 1,
                    started_at: now - 100,
                    answered_at: Some(now - 92),
                    ended_at: now - 60,
                    outcome: Outcome::Connected,
                    hangup_side: None,
                    agent: Some(format!("agent{}", 100 + i % 40)),
                    talk_seconds: 32,
                    recording_sha256: Some(format!("{:064x}", first_id + i)),
                    kind: AttemptKind::Predictive,
                }),
            })
            .collect();
        k += run.len() as u64;
        store.apply_up_batch(1, &run).map_err(|e| anyhow::anyhow!("applying calls: {e}"))?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// The intake cost of migration 11's indexes.
fn insert_cost(dir: &std::path::Path, attempts: i64, n: u64) -> anyhow::Result<()> {
    let stamp = now_unix() as u64 * 1000;
    let with = apply_calls(&Store::open(dir)?, attempts, n, stamp)?;
    println!("with migration 11's indexes: {with:.0} calls/s ({n} calls in runs of 256)");
    let conn = Connection::open(dir.join("hub.sqlite3"))?;
    conn.execute_batch(
        "DROP INDEX calls_time; DROP INDEX calls_site_time; DROP INDEX calls_last4_time; DROP INDEX calls_agent_time;
         DROP INDEX calls_batch_time; CREATE INDEX call_attempts_started ON call_attempts(started_at);",
    )?;
    let without = apply_calls(&Store::open(dir)?, attempts, n, stamp + n)?;
    println!("without them (version 10's started_at index): {without:.0} calls/s");
    let started = Instant::now();
    conn.execute_batch(
        "DROP INDEX call_attempts_started;
         CREATE INDEX calls_time ON call_attempts(started_at, site_id, attempt_id);
         CREATE INDEX calls_site_time ON call_attempts(site_id, started_at, attempt_id);
         CREATE INDEX calls_last4_time ON call_attempts(phone_last4, started_at, site_id, attempt_id);
         CREATE INDEX calls_agent_time ON call_attempts(agent, started_at, site_id, attempt_id);
         CREATE INDEX calls_batch_time ON call_attempts(batch_id, started_at, site_id, attempt_id);",
    )?;
    println!("indexes built again in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut attempts: i64 = 30_000_000;
    let mut dir: Option<PathBuf> = None;
    let mut rounds = 40usize;
    let mut insert: Option<u64> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--attempts" => attempts = args.next().context("--attempts N")?.parse()?,
            "--dir" => dir = Some(PathBuf::from(args.next().context("--dir PATH")?)),
            "--rounds" => rounds = args.next().context("--rounds N")?.parse()?,
            "--insert-cost" => insert = Some(args.next().context("--insert-cost N")?.parse()?),
            other => anyhow::bail!("unknown argument {other}: use --attempts N, --dir PATH, --rounds N, --insert-cost N"),
        }
    }
    let temp;
    let dir = match dir {
        Some(dir) => dir,
        None => {
            temp = tempfile::tempdir_in("target")?;
            temp.path().to_path_buf()
        }
    };
    let fresh = !dir.join("hub.sqlite3").exists();
    let project = {
        let store = Store::open(&dir)?;
        if fresh { seed_store(&store)? } else { 1 }
    };
    if fresh {
        generate(&dir.join("hub.sqlite3"), project, attempts)?;
    }
    if let Some(n) = insert {
        return insert_cost(&dir, attempts, n);
    }
    let store = Store::open(&dir)?;
    let admin = Scope::all(Account { id: 1, username: "admin".into(), is_admin: true });
    let site3 = store.scope(&Account { id: 1, username: "site3".into(), is_admin: false })?;
    let size = std::fs::metadata(dir.join("hub.sqlite3"))?.len();
    println!("{attempts} calls, store {:.1} GB; 50 a page; first page p50 / p95 / max ms, next pages p50 / p95 / max ms", size as f64 / 1e9);
    println!();
    println!("| filter | first page (ms) | next pages (ms) | next pages timed | calls per round |");
    println!("|---|---|---|---|---|");
    let now = now_unix();
    let month = now - DAYS * DAY;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let rows = attempts / 3;
    measure(&store, &admin, "none (the month, newest first)", rounds, |_| CallQuery::default())?;
    measure(&store, &admin, "one day (a random day of the month)", rounds, |_| {
        let day = month + rng.next(DAYS as u64 - 1) as i64 * DAY;
        CallQuery { from: Some(day), to: Some(day + DAY), ..CallQuery::default() }
    })?;
    let mut rng = Rng(7);
    measure(&store, &admin, "a site", rounds, |_| CallQuery { site_id: Some(1 + rng.next(SITES as u64) as i64), ..CallQuery::default() })?;
    measure(&store, &site3, "a sub-admin of one site (its scope only)", rounds, |_| CallQuery::default())?;
    let mut rng = Rng(11);
    measure(&store, &admin, "last four digits (random)", rounds, |_| {
        CallQuery { phone: Some(PhoneMatch::LastFour(format!("{:04}", rng.next(10_000)))), ..CallQuery::default() }
    })?;
    let mut rng = Rng(13);
    measure(&store, &admin, "a whole number (random row)", rounds, |_| {
        CallQuery { phone: Some(PhoneMatch::Exact((13_000_000_000 + rng.next(rows as u64) as i64).to_string())), ..CallQuery::default() }
    })?;
    let mut rng = Rng(17);
    measure(&store, &admin, "an agent", rounds, |_| {
        let site = 1 + rng.next(SITES as u64) as i64;
        CallQuery { agent: Some(format!("agent{}", site * 100 + rng.next(40) as i64)), ..CallQuery::default() }
    })?;
    let mut rng = Rng(19);
    measure(&store, &admin, "a batch", rounds, |_| CallQuery { batch_id: Some(1 + rng.next((SITES * DAYS) as u64) as i64), ..CallQuery::default() })?;
    let mut rng = Rng(23);
    measure(&store, &admin, "a site, abandoned (1 in 31)", rounds, |_| {
        CallQuery { site_id: Some(1 + rng.next(SITES as u64) as i64), outcome: Some("abandoned".into()), ..CallQuery::default() }
    })?;
    let mut rng = Rng(29);
    measure(&store, &admin, "a site, inbound, talk ≥ 60 s", rounds, |_| CallQuery {
        site_id: Some(1 + rng.next(SITES as u64) as i64),
        direction: Some(Direction::Inbound),
        talk_min: Some(60),
        ..CallQuery::default()
    })?;
    measure(&store, &admin, "business result 成功 (1 in 60)", rounds, |_| {
        CallQuery { result: Some(("result".into(), "成功".into())), ..CallQuery::default() }
    })?;
    let mut rng = Rng(31);
    measure(&store, &admin, "customer hung up, a week, talk 100-200 s", rounds, |_| {
        let from = month + rng.next(DAYS as u64 - 7) as i64 * DAY;
        CallQuery { from: Some(from), to: Some(from + 7 * DAY), hangup: Some("customer".into()), talk_min: Some(100), talk_max: Some(200), ..CallQuery::default() }
    })?;
    ensure!(rows > 0);
    Ok(())
}
