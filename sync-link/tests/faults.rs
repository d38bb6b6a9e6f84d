//! The link under faults, over real QUIC on 127.0.0.1: recordings broken off and resumed
//! under HQ's cap, a recording fetched out of turn, voice files and live figures, a
//! partition through a UDP relay the test controls, and bad frames from a peer.
//!
//! The stores are in memory with the real contract (idempotent apply, commit before
//! return); blobs are real files in a temporary directory through [`BlobDir`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sync_link::blob::{BlobCheck, BlobDir, BlobRef, OpenBlob};
use sync_link::ca::HubCa;
use sync_link::client::{self, LinkStatus, SiteIdentity};
use sync_link::relay::UdpRelay as Relay;
use sync_link::server::{self, RecordingRequests, ServerConfig};
use sync_link::{EnrollRefusal, HubStore, IssuedCert, LinkTuning, SiteStore, StoreError, StoreResult};
use sync_protocol::enroll::CodeKey;
use sync_protocol::framing::encode_frame;
use sync_protocol::*;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

fn io(error: std::io::Error) -> StoreError {
    StoreError::Other(error.to_string())
}

/// `(when, sha, offset, len)` of one append.
type Append = (Instant, [u8; 32], u64, usize);

struct Hub {
    codes: Mutex<Vec<(String, SiteId)>>,
    up: Mutex<BTreeMap<(u64, u64), UpEntry>>,
    down_log: Mutex<Vec<DownEntry>>,
    down_acked: AtomicU64,
    notify: Arc<Notify>,
    recordings: BlobDir,
    /// `(when, sha, offset, len)` of every append, to see resumption and pacing.
    appends: Mutex<Vec<Append>>,
    voices: BlobDir,
    voice_list: Mutex<Vec<BlobRef>>,
    live: Mutex<Option<(Instant, LiveFigures)>>,
}

impl Hub {
    fn new(dir: &Path, code: &str, site: SiteId) -> Result<Arc<Self>> {
        Ok(Arc::new(Hub {
            codes: Mutex::new(vec![(code.to_owned(), site)]),
            up: Mutex::default(),
            down_log: Mutex::default(),
            down_acked: AtomicU64::new(0),
            notify: Arc::new(Notify::new()),
            recordings: BlobDir::new(dir.join("hub-recordings"))?,
            appends: Mutex::default(),
            voices: BlobDir::new(dir.join("hub-voices"))?,
            voice_list: Mutex::default(),
            live: Mutex::default(),
        }))
    }

    fn push(&self, event: DownEvent) {
        let mut log = self.down_log.lock().unwrap();
        let seq = log.len() as u64 + 1;
        log.push(DownEntry { seq, event });
        drop(log);
        self.notify.notify_waiters();
    }

    fn push_controls(&self, n: u64) {
        for _ in 0..n {
            let seq = self.down_log.lock().unwrap().len() as u64 + 1;
            self.push(DownEvent::BatchControl(BatchControl { batch_id: seq % 3, version: seq, priority: 50 }));
        }
    }
}

impl HubStore for Hub {
    fn site_allowed(&self, _site: SiteId, _cert_sha256: &[u8; 32]) -> StoreResult<bool> {
        // One box per hub here: the faults under test are the network's, not identities.
        Ok(true)
    }
    fn up_committed(&self, _site: SiteId, epoch: u64) -> StoreResult<Option<u64>> {
        Ok(self.up.lock().unwrap().keys().filter(|(e, _)| *e == epoch).map(|(_, seq)| *seq).max())
    }
    fn apply_up(&self, _site: SiteId, entry: &UpEntry) -> StoreResult<()> {
        let mut up = self.up.lock().unwrap();
        match up.get(&(entry.epoch, entry.seq)) {
            Some(existing) if existing == entry => Ok(()),
            Some(_) => Err(StoreError::Conflict { epoch: entry.epoch, seq: entry.seq }),
            None => {
                up.insert((entry.epoch, entry.seq), entry.clone());
                Ok(())
            }
        }
    }
    fn down_after(&self, _site: SiteId, after_seq: u64, limit: usize) -> StoreResult<Vec<DownEntry>> {
        Ok(self.down_log.lock().unwrap().iter().filter(|e| e.seq > after_seq).take(limit).cloned().collect())
    }
    fn down_acked(&self, _site: SiteId, seq: u64) -> StoreResult<()> {
        self.down_acked.fetch_max(seq, Ordering::SeqCst);
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
        let mut codes = self.codes.lock().unwrap();
        let Some(index) = codes.iter().position(|(code, _)| proof_matches(&CodeKey::from_code(code))) else {
            return Ok(Err(EnrollRefusal::UnknownCode));
        };
        let site = codes.remove(index).1;
        Ok(issue(site).map(|cert| (site, cert)).map_err(EnrollRefusal::Issue))
    }
    fn recording_held(&self, _site: SiteId, sha256: &[u8; 32]) -> StoreResult<u64> {
        self.recordings.held(sha256).map_err(io)
    }
    fn recording_append(&self, _site: SiteId, sha256: &[u8; 32], offset: u64, bytes: &[u8]) -> StoreResult<()> {
        self.appends.lock().unwrap().push((Instant::now(), *sha256, offset, bytes.len()));
        self.recordings.append(sha256, offset, bytes).map_err(io)
    }
    fn recording_finish(&self, _site: SiteId, sha256: &[u8; 32]) -> StoreResult<BlobCheck> {
        self.recordings.finish(sha256).map_err(io)
    }
    fn live_figures(&self, _site: SiteId, figures: LiveFigures) {
        *self.live.lock().unwrap() = Some((Instant::now(), figures));
    }
    fn voice_files_for(&self, _site: SiteId) -> StoreResult<Vec<BlobRef>> {
        Ok(self.voice_list.lock().unwrap().clone())
    }
    fn open_voice(&self, sha256: &[u8; 32]) -> StoreResult<Option<OpenBlob>> {
        self.voices.open(sha256).map_err(io)
    }
}

struct Site {
    epoch: u64,
    next_seq: Mutex<u64>,
    outbox: Mutex<BTreeMap<u64, UpEntry>>,
    committed: Mutex<Vec<UpEntry>>,
    down_applied: Mutex<u64>,
    applied: Mutex<Vec<u64>>,
    notify: Arc<Notify>,
    settings: Mutex<Option<LinkSettings>>,
    recordings: BlobDir,
    pending: Mutex<Vec<BlobRef>>,
    voices: BlobDir,
    live: Mutex<Option<LiveFigures>>,
}

impl Site {
    fn new(dir: &Path, epoch: u64) -> Result<Arc<Self>> {
        Ok(Arc::new(Site {
            epoch,
            next_seq: Mutex::new(0),
            outbox: Mutex::default(),
            committed: Mutex::default(),
            down_applied: Mutex::new(0),
            applied: Mutex::default(),
            notify: Arc::new(Notify::new()),
            settings: Mutex::default(),
            recordings: BlobDir::new(dir.join("site-recordings"))?,
            pending: Mutex::default(),
            voices: BlobDir::new(dir.join("site-voices"))?,
            live: Mutex::default(),
        }))
    }

    fn write(&self, n: u64) {
        for _ in 0..n {
            let mut next = self.next_seq.lock().unwrap();
            *next += 1;
            let entry = UpEntry {
                epoch: self.epoch,
                seq: *next,
                event: UpEvent::AgentState(AgentStateChange {
                    agent: "1001".into(),
                    state: AgentState::Ready,
                    at: *next as i64,
                }),
            };
            self.outbox.lock().unwrap().insert(entry.seq, entry.clone());
            self.committed.lock().unwrap().push(entry);
        }
        self.notify.notify_waiters();
    }

    fn record(&self, bytes: &[u8]) -> Result<BlobRef> {
        let blob = self.recordings.put(bytes)?;
        self.pending.lock().unwrap().push(blob);
        self.notify.notify_waiters();
        Ok(blob)
    }
}

impl SiteStore for Site {
    fn sync_position(&self) -> StoreResult<(u64, u64)> {
        Ok((self.epoch, *self.down_applied.lock().unwrap()))
    }
    fn outbox_after(&self, after_seq: u64, limit: usize) -> StoreResult<Vec<UpEntry>> {
        Ok(self.outbox.lock().unwrap().range(after_seq + 1..).take(limit).map(|(_, e)| e.clone()).collect())
    }
    fn outbox_acked(&self, _epoch: u64, seq: u64) -> StoreResult<()> {
        self.outbox.lock().unwrap().retain(|s, _| *s > seq);
        Ok(())
    }
    fn apply_down(&self, entry: &DownEntry) -> StoreResult<()> {
        let mut position = self.down_applied.lock().unwrap();
        if entry.seq > *position {
            *position = entry.seq;
            self.applied.lock().unwrap().push(entry.seq);
            if let DownEvent::LinkSettings(settings) = &entry.event {
                *self.settings.lock().unwrap() = Some(settings.clone());
            }
        }
        Ok(())
    }
    fn outbox_notify(&self) -> Arc<Notify> {
        self.notify.clone()
    }
    fn pending_recordings(&self, limit: usize) -> StoreResult<Vec<BlobRef>> {
        Ok(self.pending.lock().unwrap().iter().take(limit).copied().collect())
    }
    fn open_recording(&self, sha256: &[u8; 32]) -> StoreResult<Option<OpenBlob>> {
        self.recordings.open(sha256).map_err(io)
    }
    fn recording_uploaded(&self, sha256: &[u8; 32]) -> StoreResult<()> {
        self.pending.lock().unwrap().retain(|blob| &blob.sha256 != sha256);
        Ok(())
    }
    fn link_settings(&self) -> StoreResult<Option<LinkSettings>> {
        Ok(self.settings.lock().unwrap().clone())
    }
    fn live_figures(&self) -> StoreResult<Option<LiveFigures>> {
        Ok(self.live.lock().unwrap().clone())
    }
    fn voice_held(&self, sha256: &[u8; 32]) -> StoreResult<u64> {
        self.voices.held(sha256).map_err(io)
    }
    fn voice_append(&self, sha256: &[u8; 32], offset: u64, bytes: &[u8]) -> StoreResult<()> {
        self.voices.append(sha256, offset, bytes).map_err(io)
    }
    fn voice_finish(&self, sha256: &[u8; 32]) -> StoreResult<BlobCheck> {
        self.voices.finish(sha256).map_err(io)
    }
}

/// Bytes that do not compress or repeat, so a wrong offset shows up in the hash.
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

struct HubRun {
    addr: SocketAddr,
    requests: RecordingRequests,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn start_hub(ca: Arc<HubCa>, hub: Arc<Hub>, bind: SocketAddr, tuning: LinkTuning) -> Result<HubRun> {
    let server = server::bind_tuned(ServerConfig { bind, ca }, hub, tuning).await?;
    let addr = server.local_addr();
    let requests = server.recording_requests();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(shutdown.clone()));
    Ok(HubRun { addr, requests, shutdown, task })
}

impl HubRun {
    async fn stop(self) -> Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task).await??;
        Ok(())
    }
}

struct SiteRun {
    status: watch::Receiver<LinkStatus>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn run_site(identity: SiteIdentity, site: Arc<Site>, tuning: LinkTuning) -> SiteRun {
    let (status_tx, status) = watch::channel(LinkStatus::Connecting);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(client::run_tuned(identity, site, status_tx, shutdown.clone(), tuning));
    SiteRun { status, shutdown, task }
}

impl SiteRun {
    async fn stop(self) -> Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task).await??;
        Ok(())
    }
}

async fn wait_for(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) -> Result<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if condition() {
            return Ok(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("timed out after {limit:?} waiting until {what}")
}

fn init_logs() {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
}

const LOCAL: &str = "127.0.0.1:0";
const SITE: SiteId = 5;

/// A hub with a CA and an enrolled site identity, ready to run.
async fn enrolled(dir: &Path, tuning: LinkTuning) -> Result<(Arc<HubCa>, Arc<Hub>, HubRun, SiteIdentity)> {
    let ca = Arc::new(HubCa::load_or_create(&dir.join("ca"))?);
    let hub = Hub::new(dir, "CODE-1", SITE)?;
    let run = start_hub(ca.clone(), hub.clone(), LOCAL.parse()?, tuning).await?;
    let identity = client::enroll(&run.addr.to_string(), "CODE-1", &dir.join("identity")).await?;
    Ok((ca, hub, run, identity))
}

#[tokio::test]
async fn recording_resumes_after_a_break_under_the_cap() -> Result<()> {
    init_logs();
    let dir = tempfile::tempdir()?;
    let (ca, hub, hub_run, identity) = enrolled(dir.path(), LinkTuning::default()).await?;
    const CAP: u64 = 256 * 1024;
    hub.push(DownEvent::LinkSettings(LinkSettings { version: 1, recording_upload_bytes_per_sec: Some(CAP) }));
    let site = Site::new(dir.path(), 1)?;
    let bytes = content(800 * 1024, 42);
    let recording = site.record(&bytes)?;
    let addr = hub_run.addr;
    let site_run = run_site(identity, site.clone(), LinkTuning::default());

    // Let about half go, then take the hub away mid-transfer.
    let sha = recording.sha256;
    wait_for("half the recording is at HQ", Duration::from_secs(10), || {
        hub.recordings.held(&sha).unwrap_or(0) >= 350 * 1024
    })
    .await?;
    hub_run.stop().await?;
    let held_at_break = hub.recordings.held(&sha)?;
    assert!(held_at_break > 0 && held_at_break < recording.size, "broken mid-transfer: {held_at_break}");
    assert!(!hub.recordings.has(&sha));

    // The cap held while it ran: bytes after the first chunk over the time they took.
    {
        let appends = hub.appends.lock().unwrap();
        let (first_at, ..) = appends[0];
        let (last_at, ..) = *appends.last().unwrap();
        let after_first: usize = appends[1..].iter().map(|(_, _, _, len)| len).sum();
        let rate = after_first as f64 / (last_at - first_at).as_secs_f64();
        assert!(rate <= CAP as f64 * 1.15, "upload ran at {rate:.0} B/s over a cap of {CAP}");
        assert!(rate >= CAP as f64 * 0.6, "upload ran at {rate:.0} B/s, far under the cap of {CAP}");
    }
    let appends_before = hub.appends.lock().unwrap().len();

    // Same hub back on the same address: the upload resumes where it broke off.
    let hub_run = start_hub(ca, hub.clone(), addr, LinkTuning::default()).await?;
    wait_for("the recording is complete at HQ", Duration::from_secs(20), || hub.recordings.has(&sha)).await?;
    let resumed_at = hub.appends.lock().unwrap()[appends_before].2;
    assert_eq!(resumed_at, held_at_break, "the second stream starts at what HQ held, not at 0");
    let stored = std::fs::read(hub.recordings.path_of(&sha))?;
    assert_eq!(sync_link::blob::sha256_of(&stored[..])?, sha, "the resumed transfer ends with the right hash");
    assert_eq!(stored, bytes);
    wait_for("the site stops offering it", Duration::from_secs(5), || site.pending.lock().unwrap().is_empty()).await?;

    site_run.stop().await?;
    hub_run.stop().await?;
    Ok(())
}

#[tokio::test]
async fn hq_fetches_a_recording_out_of_turn() -> Result<()> {
    init_logs();
    let dir = tempfile::tempdir()?;
    let (_ca, hub, hub_run, identity) = enrolled(dir.path(), LinkTuning::default()).await?;
    hub.push(DownEvent::LinkSettings(LinkSettings { version: 1, recording_upload_bytes_per_sec: Some(128 * 1024) }));
    let site = Site::new(dir.path(), 1)?;
    let long = site.record(&content(2 * 1024 * 1024, 1))?;
    let wanted = site.record(&content(48 * 1024, 2))?;
    assert!(!hub_run.requests.request(SITE, wanted.sha256), "an offline site cannot be asked");
    let site_run = run_site(identity, site.clone(), LinkTuning::default());

    wait_for("the long recording is under way", Duration::from_secs(10), || {
        hub.recordings.held(&long.sha256).unwrap_or(0) > 0
    })
    .await?;
    assert!(hub_run.requests.request(SITE, wanted.sha256), "the site is online");
    let took = wait_for("the wanted recording is at HQ", Duration::from_secs(5), || {
        hub.recordings.has(&wanted.sha256)
    })
    .await?;
    assert!(!hub.recordings.has(&long.sha256), "it overtook the long one (in {took:?})");
    assert_eq!(sync_link::blob::sha256_of(std::fs::File::open(hub.recordings.path_of(&wanted.sha256))?)?, wanted.sha256);

    site_run.stop().await?;
    hub_run.stop().await?;
    Ok(())
}

#[tokio::test]
async fn voice_files_go_down_and_live_figures_come_up_within_two_seconds() -> Result<()> {
    init_logs();
    let dir = tempfile::tempdir()?;
    let (_ca, hub, hub_run, identity) = enrolled(dir.path(), LinkTuning::default()).await?;
    let voice_bytes = content(300 * 1024, 7);
    let voice = hub.voices.put(&voice_bytes)?;
    hub.voice_list.lock().unwrap().push(voice);
    let site = Site::new(dir.path(), 1)?;
    *site.live.lock().unwrap() = Some(LiveFigures { agents_ready: 3, taken_at_ms: 1, ..LiveFigures::default() });
    let site_run = run_site(identity, site.clone(), LinkTuning::default());

    wait_for("the voice file is at the site", Duration::from_secs(10), || site.voices.has(&voice.sha256)).await?;
    assert_eq!(std::fs::read(site.voices.path_of(&voice.sha256))?, voice_bytes);
    wait_for("first figures at HQ", Duration::from_secs(10), || hub.live.lock().unwrap().is_some()).await?;

    // A voice file added later is offered when the down log grows.
    let later = hub.voices.put(&content(10 * 1024, 8))?;
    hub.voice_list.lock().unwrap().push(later);
    hub.push(DownEvent::VoiceFile(VoiceFile {
        voice_id: 2,
        version: 1,
        name: "prompt".into(),
        kind: VoiceKind::Prompt,
        sha256: later.sha256,
        size: later.size,
        deleted: false,
    }));
    wait_for("the later voice file is at the site", Duration::from_secs(10), || site.voices.has(&later.sha256)).await?;

    for round in 0..3u32 {
        let changed = Instant::now();
        *site.live.lock().unwrap() =
            Some(LiveFigures { agents_ready: 10 + round, calls_queued: round, ..LiveFigures::default() });
        let took = wait_for("changed figures at HQ", Duration::from_secs(5), || {
            hub.live.lock().unwrap().as_ref().is_some_and(|(_, f)| f.agents_ready == 10 + round)
        })
        .await?;
        let (arrived, _) = hub.live.lock().unwrap().clone().context("figures")?;
        assert!(arrived - changed < Duration::from_secs(2), "round {round}: figures took {took:?}");
    }

    site_run.stop().await?;
    hub_run.stop().await?;
    Ok(())
}

#[tokio::test]
async fn converges_through_loss_delay_and_a_partition() -> Result<()> {
    init_logs();
    let dir = tempfile::tempdir()?;
    // Short timers so the partition kills the connection within the test's time.
    let tuning = LinkTuning {
        keep_alive: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(1500),
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(500),
        connect_timeout: Duration::from_secs(2),
    };
    let (_ca, hub, hub_run, mut identity) = enrolled(dir.path(), tuning.clone()).await?;
    let relay = Relay::start(hub_run.addr).await?;
    relay.loss_percent.store(10, Ordering::SeqCst);
    relay.delay_ms.store(15, Ordering::SeqCst);
    identity.hub = relay.addr.to_string();

    let site = Site::new(dir.path(), 4)?;
    site.write(300);
    hub.push_controls(60);
    let mut site_run = run_site(identity, site.clone(), tuning);
    wait_for("some entries got through the lossy relay", Duration::from_secs(20), || {
        hub.up.lock().unwrap().len() >= 50
    })
    .await?;

    // Full partition, long enough for both ends to declare the connection dead; both
    // sides keep writing meanwhile.
    relay.partitioned.store(true, Ordering::SeqCst);
    tokio::time::timeout(
        Duration::from_secs(10),
        site_run.status.wait_for(|status| matches!(status, LinkStatus::Offline { .. })),
    )
    .await
    .context("the site notices the partition")??;
    site.write(200);
    hub.push_controls(40);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let up_during = hub.up.lock().unwrap().len();
    assert!(up_during < 500, "nothing new crosses a partition");

    relay.partitioned.store(false, Ordering::SeqCst);
    wait_for("everything converges after the partition heals", Duration::from_secs(40), || {
        site.outbox.lock().unwrap().is_empty() && hub.down_acked.load(Ordering::SeqCst) == 100
    })
    .await?;
    assert!(relay.dropped.load(Ordering::Relaxed) > 0, "the relay did drop datagrams");

    // The checker: every committed site entry at HQ exactly once with its content, and
    // every down entry applied once, in order.
    let committed = site.committed.lock().unwrap().clone();
    let up = hub.up.lock().unwrap().clone();
    assert_eq!(up.len(), committed.len());
    for entry in &committed {
        assert_eq!(up.get(&(entry.epoch, entry.seq)), Some(entry));
    }
    assert_eq!(*site.applied.lock().unwrap(), (1..=100).collect::<Vec<u64>>());

    site_run.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), &mut site_run.task).await??;
    relay.task.abort();
    hub_run.stop().await?;
    Ok(())
}

/// A log sink the test reads back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

async fn raw_connection(addr: SocketAddr, ca_pem: &str, identity_dir: &Path) -> Result<(quinn::Endpoint, quinn::Connection)> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes())?)?;
    let cert = CertificateDer::from_pem_file(identity_dir.join("site.crt"))?;
    let key = PrivateKeyDer::from_pem_file(identity_dir.join("site.key"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![cert], key)?;
    tls.alpn_protocols = vec![SYNC_ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut endpoint = quinn::Endpoint::client(LOCAL.parse()?)?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let connection = endpoint.connect(addr, sync_link::HUB_SERVER_NAME)?.await?;
    Ok((endpoint, connection))
}

#[tokio::test]
async fn bad_frames_close_the_connection_with_a_code_and_a_log_line() -> Result<()> {
    // The test's runtime is single-threaded, so the hub's tasks log on this thread.
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt().with_writer(captured.clone()).with_ansi(false).finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let dir = tempfile::tempdir()?;
    let (ca, hub, hub_run, _identity) = enrolled(dir.path(), LinkTuning::default()).await?;

    let hello = encode_frame(&Frame::ClientHello(ClientHello {
        protocol_version: PROTOCOL_VERSION,
        site_id: SITE,
        epoch: 1,
        down_applied: 0,
        software: "raw".into(),
    }))?;
    let mut wrong_version = hello.clone();
    // The hello's body starts with the variant index (0), then the version varint (1).
    wrong_version[5] = 9;
    let cases: Vec<(&str, Vec<u8>, bool, u32, &str)> = vec![
        // name, bytes, finish the stream after them, expected code, expected reason
        ("truncated", hello[..hello.len() - 3].to_vec(), true, session::close_code::PROTOCOL, "stream ended inside a frame"),
        ("oversized", ((MAX_FRAME_LEN as u32) + 1).to_le_bytes().to_vec(), false, session::close_code::PROTOCOL, "over the"),
        ("unknown message", vec![2, 0, 0, 0, 0xc8, 0x01], false, session::close_code::PROTOCOL, "does not know"),
        ("wrong version", wrong_version, false, session::close_code::REFUSED, "protocol version mismatch"),
    ];
    for (name, bytes, finish, code, reason) in cases {
        let log_before = captured.0.lock().unwrap().len();
        let (_endpoint, connection) = raw_connection(hub_run.addr, &ca.ca_cert_pem(), &dir.path().join("identity")).await?;
        let (mut send, _recv) = connection.open_bi().await?;
        send.write_all(&bytes).await?;
        if finish {
            send.finish()?;
        }
        let closed = tokio::time::timeout(Duration::from_secs(10), connection.closed())
            .await
            .with_context(|| format!("{name}: the hub closes the connection"))?;
        let quinn::ConnectionError::ApplicationClosed(close) = closed else { bail!("{name}: unexpected close {closed:?}") };
        assert_eq!(close.error_code, code.into(), "{name}");
        let text = String::from_utf8_lossy(&close.reason).into_owned();
        assert!(text.contains(reason), "{name}: close reason {text:?} lacks {reason:?}");
        let log = String::from_utf8_lossy(&captured.0.lock().unwrap()[log_before..]).into_owned();
        assert!(log.contains("WARN") && log.contains(reason), "{name}: no log line naming it in {log}");
    }
    assert!(hub.up.lock().unwrap().is_empty());
    hub_run.stop().await?;
    Ok(())
}
