//! The appliance store's side of a batch download, without the link: how fast
//! `apply_down_batch` commits batch chunks (SQLite, `synchronous=FULL`, one transaction per
//! store call) and then checks the manifest. Separates the store's cost from the link's in
//! `tests/sync_bench_down`.
//!
//! ```text
//! cargo run --release -p appliance --example store_apply_bench -- 200000 [ENTRIES_PER_CALL]
//! ```
//!
//! `ENTRIES_PER_CALL` is how many chunks go to one store call (default 32; 1 is the
//! one-entry-per-call apply the link did before it batched, 64 the link's window).

use std::time::Instant;

use anyhow::{Context, Result};
use appliance::store::Store;
use sync_link::SiteStore;
use sync_protocol::{BatchChunk, BatchManifest, CustomerRow, DownEntry, DownEvent, rows_hash};

const ROWS_PER_CHUNK: usize = 2_000;
const FIELDS: usize = 10;

fn main() -> Result<()> {
    let n_rows: usize = match std::env::args().nth(1) {
        Some(text) => text.replace('_', "").parse().with_context(|| format!("row count {text:?} is not a number"))?,
        None => 200_000,
    };
    let per_call: usize = match std::env::args().nth(2) {
        Some(text) => text.parse().with_context(|| format!("entries per call {text:?} is not a number"))?,
        None => 32,
    };
    anyhow::ensure!(per_call > 0, "entries per call must be at least 1");
    let rows: Vec<CustomerRow> = (0..n_rows)
        .map(|i| CustomerRow {
            row_id: i as u64 + 1,
            phone: format!("138{:08}", i),
            fields: (0..FIELDS).map(|f| (format!("field_{f}"), format!("value {f} of row {i}"))).collect(),
        })
        .collect();
    let chunks: Vec<DownEntry> = rows
        .chunks(ROWS_PER_CHUNK)
        .enumerate()
        .map(|(idx, chunk)| DownEntry {
            seq: idx as u64 + 1,
            event: DownEvent::BatchChunk(BatchChunk { batch_id: 1, chunk_idx: idx as u32, rows: chunk.to_vec() }),
        })
        .collect();
    let manifest = DownEntry {
        seq: chunks.len() as u64 + 1,
        event: DownEvent::BatchManifest(BatchManifest {
            batch_id: 1,
            project_id: 1,
            name: "bench".into(),
            priority: 50,
            imported_at: 0,
            n_rows: n_rows as u64,
            n_chunks: chunks.len() as u32,
            rows_hash: rows_hash(&rows),
        }),
    };
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let started = Instant::now();
    for run in chunks.chunks(per_call) {
        store.apply_down_batch(run)?;
    }
    let chunks_took = started.elapsed();
    let verify_started = Instant::now();
    store.apply_down(&manifest)?;
    let verify_took = verify_started.elapsed();
    let total = started.elapsed().as_secs_f64();
    println!(
        "{n_rows} rows in {} chunks of {ROWS_PER_CHUNK}, {FIELDS} fields each, {per_call} chunks per store call",
        chunks.len()
    );
    println!("chunks applied:   {:.3} s  {:.0} rows/s", chunks_took.as_secs_f64(), n_rows as f64 / chunks_took.as_secs_f64());
    println!("manifest checked: {:.3} s", verify_took.as_secs_f64());
    println!("total:            {total:.3} s  {:.0} rows/s", n_rows as f64 / total);
    let dialable = store.tasks()?.first().map(|task| task.problem.is_none()).unwrap_or(false);
    anyhow::ensure!(dialable, "the batch did not check out against its manifest");
    Ok(())
}
