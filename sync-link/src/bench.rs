//! The batch-down benchmark harness: how fast a batch goes from the hub to a site store
//! over the real link, against the same bytes over a bare quinn stream (the ceiling).
//! Compiled only with the `test-utils` feature.
//!
//! [`batch_down`] takes the site store as a parameter, so the same harness measures the
//! in-memory [`MemorySiteStore`] (what `link-bench` runs) and the appliance's SQLite store
//! (committed with `synchronous=FULL`). The hub side is a store that generates the batch on
//! the fly ([`BenchHub`]), so its cost is row generation, not a database. Both runs go over
//! loopback QUIC with the link's own TLS and transport settings.
//!
//! The link run is the full path: enrollment is done first (not timed), then the clock
//! starts when the appliance's link starts and stops when the site store reports the
//! manifest's entry applied. The bare run writes the pre-encoded frames of the same entries
//! on one stream and stops when the receiver has read them all.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sync_protocol::enroll::CodeKey;
use sync_protocol::framing::encode_frame;
use sync_protocol::{BatchChunk, BatchManifest, CustomerRow, DownEntry, DownEvent, Frame, SiteId, UpEntry};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::ca::HubCa;
use crate::client::{self, LinkStatus};
use crate::server::{self, ServerConfig};
use crate::{EnrollRefusal, HubStore, IssuedCert, SiteStore, StoreError, StoreResult};

const BENCH_SITE: SiteId = 1;
const BENCH_CODE: &str = "BENCH-CODE";
const BATCH_ID: u64 = 1;

/// What to push.
#[derive(Debug, Clone)]
pub struct BatchDownConfig {
    pub rows: u64,
    /// Custom customer fields per row.
    pub fields: usize,
    pub rows_per_chunk: u64,
    /// Give up after this long.
    pub timeout: Duration,
}

impl Default for BatchDownConfig {
    fn default() -> Self {
        BatchDownConfig { rows: 1_000_000, fields: 10, rows_per_chunk: 2_000, timeout: Duration::from_secs(600) }
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct BatchDownReport {
    pub rows: u64,
    /// Bytes of the framed down entries (chunks and manifest), identical in both runs.
    pub bytes: u64,
    /// Hub to site store, committed, over the link.
    pub link: Duration,
    /// The same bytes over a bare quinn stream.
    pub bare: Duration,
}

impl BatchDownReport {
    pub fn link_rows_per_sec(&self) -> f64 {
        self.rows as f64 / self.link.as_secs_f64()
    }
    pub fn bare_rows_per_sec(&self) -> f64 {
        self.rows as f64 / self.bare.as_secs_f64()
    }
    /// Link throughput as a fraction of the bare stream's.
    pub fn ratio(&self) -> f64 {
        self.bare.as_secs_f64() / self.link.as_secs_f64()
    }
}

impl std::fmt::Display for BatchDownReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = self.bytes as f64 / (1024.0 * 1024.0);
        writeln!(f, "rows: {}  bytes on the wire (frames): {:.1} MiB", self.rows, mib)?;
        writeln!(
            f,
            "link (hub store -> site store, committed): {:>8.3} s  {:>10.0} rows/s  {:>7.1} MiB/s",
            self.link.as_secs_f64(),
            self.link_rows_per_sec(),
            mib / self.link.as_secs_f64()
        )?;
        writeln!(
            f,
            "bare quinn stream, same bytes (ceiling):   {:>8.3} s  {:>10.0} rows/s  {:>7.1} MiB/s",
            self.bare.as_secs_f64(),
            self.bare_rows_per_sec(),
            mib / self.bare.as_secs_f64()
        )?;
        write!(f, "ratio link/bare: {:.2}", self.ratio())
    }
}

/// Why a benchmark run failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Setting up the hub, the CA or the enrollment failed.
    #[error("setup: {0}")]
    Setup(String),
    /// The site store failed or reported a wrong position.
    #[error("site store: {0}")]
    Store(#[from] StoreError),
    /// The run did not finish in time.
    #[error("{what} did not finish within {timeout:?}")]
    Timeout { what: &'static str, timeout: Duration },
    /// The bare stream failed.
    #[error("bare quinn stream: {0}")]
    Bare(String),
}

/// The batch as deterministic chunks: chunk `i` is the same whenever it is generated.
#[derive(Debug, Clone)]
pub struct BatchGenerator {
    config: BatchDownConfig,
    keys: Vec<String>,
}

impl BatchGenerator {
    pub fn new(config: BatchDownConfig) -> Self {
        let keys = (0..config.fields).map(|k| format!("f{k}")).collect();
        BatchGenerator { config, keys }
    }

    pub fn n_chunks(&self) -> u64 {
        self.config.rows.div_ceil(self.config.rows_per_chunk.max(1))
    }

    /// The down log: chunks at seq 1..=n, the manifest after them.
    pub fn last_seq(&self) -> u64 {
        self.n_chunks() + 1
    }

    pub fn chunk(&self, chunk_idx: u64) -> BatchChunk {
        let per = self.config.rows_per_chunk.max(1);
        let first = chunk_idx * per;
        let last = (first + per).min(self.config.rows);
        let rows = (first..last)
            .map(|index| {
                let row_id = index + 1;
                CustomerRow {
                    row_id,
                    phone: format!("138{row_id:08}"),
                    fields: self.keys.iter().map(|key| (key.clone(), format!("value-{key}-{row_id}"))).collect(),
                }
            })
            .collect();
        BatchChunk { batch_id: BATCH_ID, chunk_idx: u32::try_from(chunk_idx).unwrap_or(u32::MAX), rows }
    }

    /// The manifest, hashing every row (run once, before timing).
    pub fn manifest(&self) -> BatchManifest {
        let chunks: Vec<BatchChunk> = (0..self.n_chunks()).map(|i| self.chunk(i)).collect();
        BatchManifest {
            batch_id: BATCH_ID,
            project_id: 1,
            name: "bench".into(),
            priority: 50,
            imported_at: 1_700_000_000,
            n_rows: self.config.rows,
            n_chunks: u32::try_from(self.n_chunks()).unwrap_or(u32::MAX),
            rows_hash: sync_protocol::rows_hash(chunks.iter().flat_map(|chunk| chunk.rows.iter())),
        }
    }

    fn entry(&self, seq: u64, manifest: &BatchManifest) -> DownEntry {
        if seq <= self.n_chunks() {
            DownEntry { seq, event: DownEvent::BatchChunk(self.chunk(seq - 1)) }
        } else {
            DownEntry { seq, event: DownEvent::BatchManifest(manifest.clone()) }
        }
    }
}

/// The hub's side of the benchmark: serves the generated batch as one site's down log.
pub struct BenchHub {
    generator: BatchGenerator,
    manifest: BatchManifest,
    code: Mutex<Option<String>>,
    notify: Arc<Notify>,
    acked: AtomicU64,
}

impl BenchHub {
    pub fn new(generator: BatchGenerator) -> Self {
        let manifest = generator.manifest();
        BenchHub {
            generator,
            manifest,
            code: Mutex::new(Some(BENCH_CODE.to_owned())),
            notify: Arc::new(Notify::new()),
            acked: AtomicU64::new(0),
        }
    }
}

impl HubStore for BenchHub {
    fn site_allowed(&self, site: SiteId, _cert_sha256: &[u8; 32]) -> StoreResult<bool> {
        // One box, enrolled once per run: the site is the only check the bench needs.
        Ok(site == BENCH_SITE)
    }
    fn up_committed(&self, _site: SiteId, _epoch: u64) -> StoreResult<Option<u64>> {
        Ok(None)
    }
    fn apply_up(&self, _site: SiteId, _entry: &UpEntry) -> StoreResult<()> {
        Ok(())
    }
    fn down_after(&self, _site: SiteId, after_seq: u64, limit: usize) -> StoreResult<Vec<DownEntry>> {
        let end = self.generator.last_seq().min(after_seq.saturating_add(limit as u64));
        Ok((after_seq + 1..=end).map(|seq| self.generator.entry(seq, &self.manifest)).collect())
    }
    fn down_acked(&self, _site: SiteId, seq: u64) -> StoreResult<()> {
        self.acked.fetch_max(seq, Ordering::Relaxed);
        Ok(())
    }
    fn down_notify(&self, _site: SiteId) -> Arc<Notify> {
        self.notify.clone()
    }
    fn link_state(&self, _site: SiteId, _online: bool) {}
    fn enroll_site(
        &self,
        proof_matches: &dyn Fn(&CodeKey) -> bool,
        issue: &dyn Fn(SiteId) -> Result<IssuedCert, String>,
    ) -> StoreResult<Result<(SiteId, IssuedCert), EnrollRefusal>> {
        let mut slot = self.code.lock().map_err(|_| StoreError::Other("code lock poisoned".into()))?;
        if !slot.as_deref().is_some_and(|code| proof_matches(&CodeKey::from_code(code))) {
            return Ok(Err(EnrollRefusal::UnknownCode));
        }
        *slot = None;
        Ok(issue(BENCH_SITE).map(|cert| (BENCH_SITE, cert)).map_err(EnrollRefusal::Issue))
    }
}

/// A site store that keeps the batch in memory: what the link costs without a database.
/// It checks what a real store checks (order, chunk count, row count, rows hash) so a
/// broken transfer cannot pass as a fast one.
#[derive(Default)]
pub struct MemorySiteStore {
    state: Mutex<MemoryState>,
    notify: Arc<Notify>,
}

#[derive(Default)]
struct MemoryState {
    applied: u64,
    /// Per batch: chunk index to the chunk's rows hash and row count.
    chunks: HashMap<u64, Vec<(u64, [u8; 32])>>,
    dialable: Vec<u64>,
}

impl MemorySiteStore {
    pub fn new() -> Self {
        MemorySiteStore::default()
    }

    /// Batches whose manifest checked out.
    pub fn dialable(&self) -> Vec<u64> {
        self.state.lock().map(|state| state.dialable.clone()).unwrap_or_default()
    }
}

impl SiteStore for MemorySiteStore {
    fn sync_position(&self) -> StoreResult<(u64, u64)> {
        let state = self.state.lock().map_err(|_| StoreError::Other("state lock poisoned".into()))?;
        Ok((1, state.applied))
    }
    fn outbox_after(&self, _after_seq: u64, _limit: usize) -> StoreResult<Vec<UpEntry>> {
        Ok(Vec::new())
    }
    fn outbox_acked(&self, _epoch: u64, _seq: u64) -> StoreResult<()> {
        Ok(())
    }
    fn apply_down(&self, entry: &DownEntry) -> StoreResult<()> {
        let mut state = self.state.lock().map_err(|_| StoreError::Other("state lock poisoned".into()))?;
        if entry.seq <= state.applied {
            return Ok(());
        }
        match &entry.event {
            DownEvent::BatchChunk(chunk) => {
                let hash = sync_protocol::rows_hash(&chunk.rows);
                state.chunks.entry(chunk.batch_id).or_default().push((chunk.rows.len() as u64, hash));
            }
            DownEvent::BatchManifest(manifest) => {
                // The manifest hashes all rows at once; the per-chunk hashes prove each chunk
                // arrived intact, and the counts prove none is missing.
                let chunks = state.chunks.get(&manifest.batch_id).map(Vec::as_slice).unwrap_or(&[]);
                let rows: u64 = chunks.iter().map(|(n, _)| n).sum();
                if chunks.len() as u64 != u64::from(manifest.n_chunks) || rows != manifest.n_rows {
                    return Err(StoreError::Other(format!(
                        "batch {}: {} chunks / {rows} rows arrived, the manifest says {} / {}",
                        manifest.batch_id,
                        chunks.len(),
                        manifest.n_chunks,
                        manifest.n_rows
                    )));
                }
                state.dialable.push(manifest.batch_id);
            }
            _ => {}
        }
        state.applied = entry.seq;
        Ok(())
    }
    fn outbox_notify(&self) -> Arc<Notify> {
        self.notify.clone()
    }
}

fn setup(error: impl std::fmt::Display) -> BenchError {
    BenchError::Setup(error.to_string())
}

/// Run the benchmark against `site_store`, which must start empty (nothing applied).
/// `work_dir` holds the throwaway CA and appliance identity.
pub async fn batch_down<S: SiteStore>(
    site_store: Arc<S>,
    config: BatchDownConfig,
    work_dir: &Path,
) -> Result<BatchDownReport, BenchError> {
    let timeout = config.timeout;
    let generator = BatchGenerator::new(config.clone());
    let (_, applied) = site_store.sync_position()?;
    if applied != 0 {
        return Err(BenchError::Setup(format!("the site store has already applied down entry {applied}; give it an empty store")));
    }
    let hub = Arc::new(BenchHub::new(generator.clone()));
    let frames: Vec<Vec<u8>> = (1..=generator.last_seq())
        .map(|seq| encode_frame(&Frame::Down(generator.entry(seq, &hub.manifest))))
        .collect::<Result<_, _>>()
        .map_err(setup)?;
    let bytes: u64 = frames.iter().map(|frame| frame.len() as u64).sum();

    let ca = Arc::new(HubCa::load_or_create(&work_dir.join("ca")).map_err(setup)?);
    let server = server::bind(ServerConfig { bind: ([127, 0, 0, 1], 0).into(), ca: ca.clone() }, hub.clone())
        .await
        .map_err(setup)?;
    let addr = server.local_addr();
    let shutdown = CancellationToken::new();
    let server_task = tokio::spawn(server.run(shutdown.clone()));
    let identity = client::enroll(&addr.to_string(), BENCH_CODE, &work_dir.join("identity")).await.map_err(setup)?;

    // The link: from starting the appliance's link to the manifest committed.
    let (status_tx, _status) = tokio::sync::watch::channel(LinkStatus::Connecting);
    let client_shutdown = CancellationToken::new();
    let started = Instant::now();
    let client_task =
        tokio::spawn(client::run(identity.clone(), site_store.clone(), status_tx, client_shutdown.clone()));
    let last = generator.last_seq();
    let waited = tokio::time::timeout(timeout, async {
        loop {
            let store = site_store.clone();
            let position = tokio::task::spawn_blocking(move || store.sync_position())
                .await
                .map_err(|join| StoreError::Other(join.to_string()))??;
            if position.1 >= last {
                return Ok::<_, StoreError>(());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let link = started.elapsed();
    client_shutdown.cancel();
    let _ = client_task.await;
    shutdown.cancel();
    let _ = server_task.await;
    match waited {
        Ok(result) => result?,
        Err(_) => return Err(BenchError::Timeout { what: "the link run", timeout }),
    }

    let bare = tokio::time::timeout(timeout, bare_stream(&ca, &identity, frames, bytes))
        .await
        .map_err(|_| BenchError::Timeout { what: "the bare stream run", timeout })??;
    Ok(BatchDownReport { rows: config.rows, bytes, link, bare })
}

/// The same frames over one bare stream between endpoints with the link's TLS and
/// transport settings: the receiver reads to the end and answers one byte.
async fn bare_stream(
    ca: &HubCa,
    identity: &client::SiteIdentity,
    frames: Vec<Vec<u8>>,
    bytes: u64,
) -> Result<Duration, BenchError> {
    let bare = |error: &dyn std::fmt::Display| BenchError::Bare(error.to_string());
    let tuning = crate::LinkTuning::default();
    let server_config = crate::tls::server_config(ca, &tuning).map_err(|e| bare(&e))?;
    let server = quinn::Endpoint::server(server_config, ([127, 0, 0, 1], 0).into()).map_err(|e| bare(&e))?;
    let addr = server.local_addr().map_err(|e| bare(&e))?;
    let receiver = tokio::spawn(async move {
        let incoming = server.accept().await.ok_or("no connection")?;
        let connection = incoming.await.map_err(|e| e.to_string())?;
        let (mut send, mut recv) = connection.accept_bi().await.map_err(|e| e.to_string())?;
        let mut got = 0u64;
        let mut buffer = vec![0u8; 256 * 1024];
        while let Some(n) = recv.read(&mut buffer).await.map_err(|e| e.to_string())? {
            got += n as u64;
        }
        send.write_all(&[1]).await.map_err(|e| e.to_string())?;
        let _ = send.finish();
        let _ = connection.closed().await;
        server.wait_idle().await;
        Ok::<u64, String>(got)
    });
    let client_config = identity.client_config(&tuning).map_err(|e| bare(&e))?;
    let mut endpoint = quinn::Endpoint::client(([127, 0, 0, 1], 0).into()).map_err(|e| bare(&e))?;
    endpoint.set_default_client_config(client_config);
    let connection = endpoint
        .connect(addr, crate::HUB_SERVER_NAME)
        .map_err(|e| bare(&e))?
        .await
        .map_err(|e| bare(&e))?;
    let started = Instant::now();
    let (mut send, mut recv) = connection.open_bi().await.map_err(|e| bare(&e))?;
    for frame in &frames {
        send.write_all(frame).await.map_err(|e| bare(&e))?;
    }
    send.finish().map_err(|e| bare(&e))?;
    let mut answer = [0u8; 1];
    recv.read_exact(&mut answer).await.map_err(|e| bare(&e))?;
    let elapsed = started.elapsed();
    connection.close(0u32.into(), b"done");
    let got = receiver.await.map_err(|e| bare(&e))?.map_err(|e| bare(&e))?;
    if got != bytes {
        return Err(BenchError::Bare(format!("receiver read {got} of {bytes} bytes")));
    }
    endpoint.wait_idle().await;
    Ok(elapsed)
}
