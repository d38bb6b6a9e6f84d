//! Batch-down benchmark: N rows of customer data from hub to site over the real link,
//! against the same bytes over a bare quinn stream on loopback (the ceiling).
//!
//! ```text
//! cargo run --release -p sync-link --example link-bench -- --rows 1000000
//! ```
//!
//! Options: `--rows N` (1,000,000), `--fields N` (10), `--rows-per-chunk N` (2,000).
//! The site store here is the in-memory `sync_link::bench::MemorySiteStore`; the
//! appliance's SQLite store plugs into `sync_link::bench::batch_down` the same way.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use sync_link::bench::{BatchDownConfig, MemorySiteStore, batch_down};

fn parse_args() -> Result<BatchDownConfig> {
    let mut config = BatchDownConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = |name: &str| -> Result<u64> {
            let text = args.next().with_context(|| format!("{name} needs a number"))?;
            text.replace('_', "").parse().with_context(|| format!("{name} {text:?} is not a whole number"))
        };
        match flag.as_str() {
            "--rows" => config.rows = value("--rows")?,
            "--fields" => config.fields = usize::try_from(value("--fields")?)?,
            "--rows-per-chunk" => config.rows_per_chunk = value("--rows-per-chunk")?.max(1),
            "-h" | "--help" => {
                println!("link-bench [--rows N] [--fields N] [--rows-per-chunk N]");
                std::process::exit(0);
            }
            other => bail!("unknown option {other:?}; try --help"),
        }
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> Result<()> {
    let config = parse_args()?;
    let _ = tracing_subscriber::fmt().with_env_filter(
        std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
    ).try_init();
    let work = tempfile::tempdir()?;
    println!(
        "batch down: {} rows x {} fields, {} rows per chunk; site store: in memory",
        config.rows, config.fields, config.rows_per_chunk
    );
    let store = Arc::new(MemorySiteStore::new());
    let report = batch_down(store.clone(), config, work.path()).await?;
    if store.dialable() != vec![1] {
        bail!("the batch's manifest did not check out at the site");
    }
    println!("{report}");
    Ok(())
}
