//! Batch-down benchmark with the appliance's real SQLite store (`synchronous=FULL`): a
//! batch of customer rows from the hub to the site over the real link, committed, against
//! the same bytes over a bare quinn stream in the same run (the ceiling).
//!
//! The default run is small (20,000 rows) so the suite stays quick; it still checks that the
//! batch arrived whole and became dialable. The figure for `docs/benchmarks.md`:
//!
//! ```text
//! OUTPOST_BENCH_ROWS=1000000 cargo test --release -p tests --test sync_bench_down -- --nocapture
//! ```
//!
//! Goal: at least 200,000 rows/s end to end.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use sync_link::bench::{BatchDownConfig, batch_down};

fn rows() -> Result<u64> {
    match std::env::var("OUTPOST_BENCH_ROWS") {
        Ok(text) => text.replace('_', "").parse().with_context(|| format!("OUTPOST_BENCH_ROWS={text:?}")),
        Err(_) => Ok(20_000),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_down_into_the_appliance_store() -> Result<()> {
    // RUST_LOG=sync_link=debug shows each down commit (entries, time taken).
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned());
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter(filter).try_init();
    let dir = tempfile::tempdir()?;
    let config = BatchDownConfig { rows: rows()?, fields: 10, rows_per_chunk: 2_000, timeout: Duration::from_secs(900) };
    let site_dir = dir.path().join("site");
    let store = Arc::new(appliance::store::Store::open(&site_dir)?);
    let rows = config.rows;
    let report = batch_down(store.clone(), config, dir.path()).await?;
    println!("batch down into the appliance store (SQLite, synchronous=FULL):\n{report}");

    // The batch is there, whole and dialable (its manifest's count and hash checked out).
    let conn = rusqlite::Connection::open(site_dir.join("site.db"))?;
    let (verified, n): (i64, i64) = conn.query_row(
        "SELECT verified, (SELECT COUNT(*) FROM batch_rows WHERE batch_id = 1) FROM batches WHERE batch_id = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    ensure!(verified == 1 && n as u64 == rows, "batch verified={verified}, {n} of {rows} rows stored");
    Ok(())
}
