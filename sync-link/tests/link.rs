//! The link end to end over real QUIC on 127.0.0.1: enrollment, sync both ways, refusals,
//! and resuming after the hub restarts. The stores are in-memory with the real contract
//! (idempotent apply, commit before return).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sync_link::ca::HubCa;
use sync_link::client::{self, LinkStatus, SiteIdentity};
use sync_link::server::{self, ServerConfig};
use sync_link::{EnrollRefusal, HubStore, IssuedCert, SiteStore, StoreError, StoreResult};
use sync_protocol::enroll::CodeKey;
use sync_protocol::framing::{FrameDecoder, encode_frame};
use sync_protocol::*;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct TestHub {
    codes: Mutex<HashMap<String, SiteId>>,
    /// The certificate (SHA-256) each enrolled site's box holds.
    identities: Mutex<HashMap<SiteId, [u8; 32]>>,
    disabled: Mutex<HashSet<SiteId>>,
    up: Mutex<BTreeMap<(SiteId, u64, u64), UpEntry>>,
    up_apply_calls: Mutex<u64>,
    down_log: Mutex<Vec<DownEntry>>,
    down_acked: Mutex<u64>,
    notify: Arc<Notify>,
    link_events: Mutex<Vec<(SiteId, bool)>>,
}

impl TestHub {
    fn with_code(code: &str, site: SiteId) -> Arc<Self> {
        let hub = TestHub::default();
        hub.codes.lock().unwrap().insert(code.to_owned(), site);
        Arc::new(hub)
    }

    fn push_down(&self, n: u64) {
        let mut log = self.down_log.lock().unwrap();
        for _ in 0..n {
            let seq = log.len() as u64 + 1;
            log.push(DownEntry {
                seq,
                event: DownEvent::BatchControl(BatchControl { batch_id: seq, version: 1, priority: 50 }),
            });
        }
        drop(log);
        self.notify.notify_waiters();
    }
}

impl HubStore for TestHub {
    fn site_allowed(&self, site: SiteId, cert_sha256: &[u8; 32]) -> StoreResult<bool> {
        let current = self.identities.lock().unwrap().get(&site) == Some(cert_sha256);
        Ok(current && !self.disabled.lock().unwrap().contains(&site))
    }
    fn up_committed(&self, site: SiteId, epoch: u64) -> StoreResult<Option<u64>> {
        let up = self.up.lock().unwrap();
        Ok(up.keys().filter(|(s, e, _)| *s == site && *e == epoch).map(|(_, _, seq)| *seq).max())
    }
    fn apply_up(&self, site: SiteId, entry: &UpEntry) -> StoreResult<()> {
        *self.up_apply_calls.lock().unwrap() += 1;
        let mut up = self.up.lock().unwrap();
        match up.get(&(site, entry.epoch, entry.seq)) {
            Some(existing) if existing == entry => Ok(()),
            Some(_) => Err(StoreError::Conflict { epoch: entry.epoch, seq: entry.seq }),
            None => {
                up.insert((site, entry.epoch, entry.seq), entry.clone());
                Ok(())
            }
        }
    }
    fn down_after(&self, _site: SiteId, after_seq: u64, limit: usize) -> StoreResult<Vec<DownEntry>> {
        let log = self.down_log.lock().unwrap();
        Ok(log.iter().filter(|e| e.seq > after_seq).take(limit).cloned().collect())
    }
    fn down_acked(&self, _site: SiteId, seq: u64) -> StoreResult<()> {
        let mut acked = self.down_acked.lock().unwrap();
        *acked = (*acked).max(seq);
        Ok(())
    }
    fn down_notify(&self, _site: SiteId) -> Arc<Notify> {
        self.notify.clone()
    }
    fn link_state(&self, site: SiteId, online: bool) {
        self.link_events.lock().unwrap().push((site, online));
    }
    fn enroll_site(
        &self,
        proof_matches: &dyn Fn(&CodeKey) -> bool,
        issue: &dyn Fn(SiteId) -> Result<IssuedCert, String>,
    ) -> StoreResult<Result<(SiteId, IssuedCert), EnrollRefusal>> {
        let mut codes = self.codes.lock().unwrap();
        let Some(code) = codes.keys().find(|code| proof_matches(&CodeKey::from_code(code))).cloned() else {
            return Ok(Err(EnrollRefusal::UnknownCode));
        };
        let site = codes.remove(&code).unwrap();
        let cert = match issue(site) {
            Ok(cert) => cert,
            Err(error) => return Ok(Err(EnrollRefusal::Issue(error))),
        };
        self.identities.lock().unwrap().insert(site, sync_link::cert_sha256(&cert));
        Ok(Ok((site, cert)))
    }
}

struct TestSite {
    epoch: u64,
    next_seq: Mutex<u64>,
    outbox: Mutex<BTreeMap<u64, UpEntry>>,
    down_applied: Mutex<u64>,
    applied: Mutex<Vec<DownEntry>>,
    notify: Arc<Notify>,
}

impl TestSite {
    fn new(epoch: u64) -> Arc<Self> {
        Arc::new(TestSite {
            epoch,
            next_seq: Mutex::new(0),
            outbox: Mutex::new(BTreeMap::new()),
            down_applied: Mutex::new(0),
            applied: Mutex::new(Vec::new()),
            notify: Arc::new(Notify::new()),
        })
    }

    fn write(&self, n: u64) {
        for _ in 0..n {
            let mut next = self.next_seq.lock().unwrap();
            *next += 1;
            let seq = *next;
            self.outbox.lock().unwrap().insert(seq, up_entry(self.epoch, seq));
        }
        self.notify.notify_waiters();
    }
}

fn up_entry(epoch: u64, seq: u64) -> UpEntry {
    UpEntry {
        epoch,
        seq,
        event: UpEvent::CallAttempt(CallAttempt {
            attempt_id: seq,
            batch_id: 1,
            row_id: seq,
            started_at: 1_700_000_000,
            answered_at: None,
            ended_at: 1_700_000_030,
            outcome: Outcome::NoAnswer,
            hangup_side: None,
            agent: None,
            talk_seconds: 0,
            recording_sha256: None,
            kind: sync_protocol::AttemptKind::Predictive,
        }),
    }
}

impl SiteStore for TestSite {
    fn sync_position(&self) -> StoreResult<(u64, u64)> {
        Ok((self.epoch, *self.down_applied.lock().unwrap()))
    }
    fn outbox_after(&self, after_seq: u64, limit: usize) -> StoreResult<Vec<UpEntry>> {
        let outbox = self.outbox.lock().unwrap();
        Ok(outbox.range(after_seq + 1..).take(limit).map(|(_, e)| e.clone()).collect())
    }
    fn outbox_acked(&self, epoch: u64, seq: u64) -> StoreResult<()> {
        assert_eq!(epoch, self.epoch);
        self.outbox.lock().unwrap().retain(|s, _| *s > seq);
        Ok(())
    }
    fn apply_down(&self, entry: &DownEntry) -> StoreResult<()> {
        let mut position = self.down_applied.lock().unwrap();
        if entry.seq > *position {
            *position = entry.seq;
            self.applied.lock().unwrap().push(entry.clone());
        }
        Ok(())
    }
    fn outbox_notify(&self) -> Arc<Notify> {
        self.notify.clone()
    }
}

fn init_logs() {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
}

async fn start_hub(
    ca: Arc<HubCa>,
    store: Arc<TestHub>,
    bind: SocketAddr,
) -> Result<(SocketAddr, CancellationToken, tokio::task::JoinHandle<()>)> {
    let server = server::bind(ServerConfig { bind, ca }, store).await?;
    let addr = server.local_addr();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(shutdown.clone()));
    Ok((addr, shutdown, task))
}

async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) -> Result<()> {
    for _ in 0..200 {
        if condition() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("timed out waiting until {what}")
}

struct RunningSite {
    status: watch::Receiver<LinkStatus>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn run_site(identity: SiteIdentity, store: Arc<TestSite>) -> RunningSite {
    let (status_tx, status) = watch::channel(LinkStatus::Connecting);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(client::run(identity, store, status_tx, shutdown.clone()));
    RunningSite { status, shutdown, task }
}

impl RunningSite {
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task).await.expect("client stops").expect("no panic");
    }
}

const LOCAL: &str = "127.0.0.1:0";

#[tokio::test]
async fn enroll_then_sync_both_ways() -> Result<()> {
    init_logs();
    let dirs = tempfile::tempdir()?;
    let ca = Arc::new(HubCa::load_or_create(&dirs.path().join("ca"))?);
    let hub = TestHub::with_code("ABCD-2345", 5);
    hub.push_down(12);
    let (addr, hub_shutdown, hub_task) = start_hub(ca.clone(), hub.clone(), LOCAL.parse()?).await?;

    let identity_dir = dirs.path().join("identity");
    // The technician types the code with different spacing and case.
    let identity = client::enroll(&addr.to_string(), "abcd 2345", &identity_dir).await?;
    assert_eq!(identity.site_id, 5);
    assert_eq!(identity.hub, addr.to_string());
    for file in ["site.key", "site.crt", "ca.crt", "site.json"] {
        assert!(identity_dir.join(file).exists(), "{file} written");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(identity_dir.join("site.key"))?.permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(std::fs::read_to_string(identity_dir.join("ca.crt"))?, ca.ca_cert_pem());
    assert!(hub.codes.lock().unwrap().is_empty(), "the code is used up");

    let site = TestSite::new(1);
    site.write(150);
    let running = run_site(SiteIdentity::load(&identity_dir)?, site.clone());
    wait_for("all up entries are acknowledged", || site.outbox.lock().unwrap().is_empty()).await?;
    wait_for("all down entries are acknowledged", || *hub.down_acked.lock().unwrap() == 12).await?;
    assert!(matches!(*running.status.borrow(), LinkStatus::Online { .. }));

    // Entries written while connected flow without a reconnect, in both directions.
    site.write(7);
    hub.push_down(3);
    wait_for("new up entries arrive", || hub.up.lock().unwrap().len() == 157).await?;
    wait_for("new down entries are acknowledged", || *hub.down_acked.lock().unwrap() == 15).await?;
    wait_for("the outbox empties", || site.outbox.lock().unwrap().is_empty()).await?;

    let up = hub.up.lock().unwrap().clone();
    let seqs: Vec<u64> = up.keys().map(|(site, epoch, seq)| {
        assert_eq!((*site, *epoch), (5, 1));
        *seq
    }).collect();
    assert_eq!(seqs, (1..=157).collect::<Vec<_>>());
    assert_eq!(*hub.up_apply_calls.lock().unwrap(), 157, "each entry applied exactly once");
    let applied: Vec<u64> = site.applied.lock().unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(applied, (1..=15).collect::<Vec<_>>());
    assert_eq!(hub.link_events.lock().unwrap().as_slice(), &[(5, true)]);

    running.stop().await;
    wait_for("the hub sees the site go", || hub.link_events.lock().unwrap().len() == 2).await?;
    hub_shutdown.cancel();
    hub_task.await?;
    Ok(())
}

#[tokio::test]
async fn used_or_unknown_codes_are_refused() -> Result<()> {
    init_logs();
    let dirs = tempfile::tempdir()?;
    let ca = Arc::new(HubCa::load_or_create(&dirs.path().join("ca"))?);
    let hub = TestHub::with_code("GOOD1", 9);
    let (addr, hub_shutdown, hub_task) = start_hub(ca, hub.clone(), LOCAL.parse()?).await?;

    let unknown = client::enroll(&addr.to_string(), "WRONG", &dirs.path().join("a")).await;
    let Err(client::EnrollError::Refused { reason }) = unknown else { bail!("unknown code accepted: {unknown:?}") };
    assert!(reason.contains("code is unknown"), "{reason}");
    assert!(!dirs.path().join("a").join("site.json").exists());

    client::enroll(&addr.to_string(), "GOOD1", &dirs.path().join("b")).await?;
    let reused = client::enroll(&addr.to_string(), "GOOD1", &dirs.path().join("c")).await;
    assert!(matches!(reused, Err(client::EnrollError::Refused { .. })), "{reused:?}");

    hub_shutdown.cancel();
    hub_task.await?;
    Ok(())
}

/// A raw sync client: the test controls the certificate it presents and the frames it sends.
async fn raw_sync_connection(
    addr: SocketAddr,
    trust_ca_pem: &str,
    identity_dir: &Path,
) -> Result<(quinn::Endpoint, quinn::Connection)> {
    raw_connection(addr, trust_ca_pem, identity_dir, SYNC_ALPN).await
}

async fn raw_connection(
    addr: SocketAddr,
    trust_ca_pem: &str,
    identity_dir: &Path,
    alpn: &[u8],
) -> Result<(quinn::Endpoint, quinn::Connection)> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(trust_ca_pem.as_bytes())?)?;
    let cert = CertificateDer::from_pem_file(identity_dir.join("site.crt"))?;
    let key = PrivateKeyDer::from_pem_file(identity_dir.join("site.key"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![cert], key)?;
    tls.alpn_protocols = vec![alpn.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let connection = endpoint.connect(addr, "outpost-hub")?.await?;
    Ok((endpoint, connection))
}

#[tokio::test]
async fn certificate_of_another_ca_is_refused_at_the_handshake() -> Result<()> {
    init_logs();
    let dirs = tempfile::tempdir()?;
    let ca_a = Arc::new(HubCa::load_or_create(&dirs.path().join("ca-a"))?);
    let ca_b = Arc::new(HubCa::load_or_create(&dirs.path().join("ca-b"))?);
    let hub_a = Arc::new(TestHub::default());
    let hub_b = TestHub::with_code("CODE-B", 3);
    let (addr_a, shutdown_a, task_a) = start_hub(ca_a.clone(), hub_a.clone(), LOCAL.parse()?).await?;
    let (addr_b, shutdown_b, task_b) = start_hub(ca_b, hub_b, LOCAL.parse()?).await?;
    let identity_dir = dirs.path().join("identity");
    client::enroll(&addr_b.to_string(), "CODE-B", &identity_dir).await?;

    // Trusting hub A's server but presenting B's site certificate: A's verifier rejects it.
    let attempt = async {
        let (_endpoint, connection) = raw_sync_connection(addr_a, &ca_a.ca_cert_pem(), &identity_dir).await?;
        let (mut send, mut recv) = connection.open_bi().await?;
        let hello = Frame::ClientHello(ClientHello {
            protocol_version: PROTOCOL_VERSION,
            site_id: 3,
            epoch: 1,
            down_applied: 0,
            software: "test".into(),
        });
        send.write_all(&encode_frame(&hello)?).await?;
        let mut buf = [0u8; 64];
        recv.read(&mut buf).await?;
        anyhow::Ok(())
    };
    let outcome = tokio::time::timeout(Duration::from_secs(10), attempt).await.context("refusal in time")?;
    let error = outcome.expect_err("hub A must not accept a certificate of CA B");
    assert!(format!("{error:#}").contains("certificate") || format!("{error:#}").contains("closed"), "{error:#}");
    assert!(hub_a.link_events.lock().unwrap().is_empty());

    // And the real client, whose ca.crt is B's, refuses hub A's server certificate.
    let mut identity = SiteIdentity::load(&identity_dir)?;
    identity.hub = addr_a.to_string();
    let running = run_site(identity, TestSite::new(1));
    let mut status = running.status.clone();
    tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| matches!(s, LinkStatus::Offline { .. })))
        .await??;
    let LinkStatus::Offline { reason, .. } = status.borrow().clone() else { unreachable!() };
    assert!(reason.contains("handshake"), "{reason}");
    running.stop().await;
    assert!(hub_a.link_events.lock().unwrap().is_empty());

    shutdown_a.cancel();
    shutdown_b.cancel();
    task_a.await?;
    task_b.await?;
    Ok(())
}

#[tokio::test]
async fn disabled_site_is_refused() -> Result<()> {
    init_logs();
    let dirs = tempfile::tempdir()?;
    let ca = Arc::new(HubCa::load_or_create(&dirs.path().join("ca"))?);
    let hub = TestHub::with_code("C0DE", 4);
    hub.push_down(2);
    let (addr, hub_shutdown, hub_task) = start_hub(ca, hub.clone(), LOCAL.parse()?).await?;
    let identity = client::enroll(&addr.to_string(), "C0DE", &dirs.path().join("id")).await?;
    hub.disabled.lock().unwrap().insert(4);

    let site = TestSite::new(1);
    site.write(3);
    let running = run_site(identity, site.clone());
    let mut status = running.status.clone();
    tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| matches!(s, LinkStatus::Offline { .. })))
        .await??;
    let LinkStatus::Offline { reason, .. } = status.borrow().clone() else { unreachable!() };
    assert!(reason.contains("site 4 is disabled"), "{reason}");
    running.stop().await;
    assert!(hub.up.lock().unwrap().is_empty());
    assert!(site.applied.lock().unwrap().is_empty());
    assert!(hub.link_events.lock().unwrap().is_empty(), "a refused site never counts as online");

    hub_shutdown.cancel();
    hub_task.await?;
    Ok(())
}

#[tokio::test]
async fn reconnect_after_hub_restart_resumes_without_duplicates() -> Result<()> {
    init_logs();
    let dirs = tempfile::tempdir()?;
    let ca_dir = dirs.path().join("ca");
    let ca = Arc::new(HubCa::load_or_create(&ca_dir)?);
    let hub = TestHub::with_code("R1", 8);
    hub.push_down(5);
    let (addr, hub_shutdown, hub_task) = start_hub(ca, hub.clone(), LOCAL.parse()?).await?;
    let identity = client::enroll(&addr.to_string(), "R1", &dirs.path().join("id")).await?;

    let site = TestSite::new(2);
    site.write(40);
    let running = run_site(identity, site.clone());
    wait_for("first round synced", || {
        site.outbox.lock().unwrap().is_empty() && *hub.down_acked.lock().unwrap() == 5
    })
    .await?;

    // The hub goes down; the site keeps working offline.
    hub_shutdown.cancel();
    hub_task.await?;
    let mut status = running.status.clone();
    tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| matches!(s, LinkStatus::Offline { .. })))
        .await??;
    site.write(25);
    hub.push_down(4);

    // Same CA (reloaded from disk), same address: the site comes back by itself.
    let ca = Arc::new(HubCa::load_or_create(&ca_dir)?);
    let (_, hub_shutdown, hub_task) = start_hub(ca, hub.clone(), addr).await?;
    wait_for("second round synced", || {
        site.outbox.lock().unwrap().is_empty() && *hub.down_acked.lock().unwrap() == 9
    })
    .await?;

    let seqs: Vec<u64> = hub.up.lock().unwrap().keys().map(|(_, _, seq)| *seq).collect();
    assert_eq!(seqs, (1..=65).collect::<Vec<_>>());
    assert_eq!(*hub.up_apply_calls.lock().unwrap(), 65, "nothing sent twice");
    let applied: Vec<u64> = site.applied.lock().unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(applied, (1..=9).collect::<Vec<_>>());
    let events = hub.link_events.lock().unwrap().clone();
    assert_eq!(events.first(), Some(&(8, true)));
    assert_eq!(events.last(), Some(&(8, true)));
    assert!(events.contains(&(8, false)));

    running.stop().await;
    hub_shutdown.cancel();
    hub_task.await?;
    Ok(())
}

#[tokio::test]
async fn hello_with_another_protocol_version_gets_a_clear_refusal() -> Result<()> {
    init_logs();
    let dirs = tempfile::tempdir()?;
    let ca = Arc::new(HubCa::load_or_create(&dirs.path().join("ca"))?);
    let hub = TestHub::with_code("V", 6);
    let (addr, hub_shutdown, hub_task) = start_hub(ca.clone(), hub.clone(), LOCAL.parse()?).await?;
    let identity_dir = dirs.path().join("id");
    client::enroll(&addr.to_string(), "V", &identity_dir).await?;

    let (_endpoint, connection) = raw_sync_connection(addr, &ca.ca_cert_pem(), &identity_dir).await?;
    let (mut send, mut recv) = connection.open_bi().await?;
    let hello = Frame::ClientHello(ClientHello {
        protocol_version: PROTOCOL_VERSION + 1,
        site_id: 6,
        epoch: 1,
        down_applied: 0,
        software: "from the future".into(),
    });
    send.write_all(&encode_frame(&hello)?).await?;
    let mut decoder = FrameDecoder::new();
    let mut buf = [0u8; 1024];
    let frame = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(frame) = decoder.next_frame()? {
                return anyhow::Ok(frame);
            }
            let n = recv.read(&mut buf).await?.context("stream ended without an answer")?;
            decoder.push(&buf[..n]);
        }
    })
    .await??;
    let Frame::Refused { reason } = frame else { bail!("expected Refused, got {frame:?}") };
    assert!(reason.contains("protocol version mismatch"), "{reason}");
    assert!(reason.contains(&(PROTOCOL_VERSION + 1).to_string()), "{reason}");
    let closed = tokio::time::timeout(Duration::from_secs(10), connection.closed()).await?;
    let quinn::ConnectionError::ApplicationClosed(close) = closed else { bail!("unexpected close {closed:?}") };
    assert_eq!(close.error_code, session::close_code::REFUSED.into());
    assert!(hub.link_events.lock().unwrap().is_empty());

    hub_shutdown.cancel();
    hub_task.await?;
    Ok(())
}

#[tokio::test]
async fn another_alpn_version_fails_the_handshake_clearly() -> Result<()> {
    init_logs();
    let dirs = tempfile::tempdir()?;
    let ca = Arc::new(HubCa::load_or_create(&dirs.path().join("ca"))?);
    let hub = TestHub::with_code("A", 2);
    let (addr, hub_shutdown, hub_task) = start_hub(ca.clone(), hub.clone(), LOCAL.parse()?).await?;
    let identity_dir = dirs.path().join("id");
    client::enroll(&addr.to_string(), "A", &identity_dir).await?;

    let attempt = tokio::time::timeout(
        Duration::from_secs(10),
        raw_connection(addr, &ca.ca_cert_pem(), &identity_dir, b"outpost-sync/1"),
    )
    .await?;
    let error = attempt.expect_err("a hub speaking outpost-sync/2 must refuse the older outpost-sync/1");
    let text = format!("{error:#}");
    assert!(text.contains("no_application_protocol") || text.contains("120"), "{text}");
    assert!(hub.link_events.lock().unwrap().is_empty());

    hub_shutdown.cancel();
    hub_task.await?;
    Ok(())
}

#[tokio::test]
async fn batch_down_bench_harness_delivers_a_checked_batch() -> Result<()> {
    use sync_link::bench::{BatchDownConfig, MemorySiteStore, batch_down};
    let dirs = tempfile::tempdir()?;
    let store = Arc::new(MemorySiteStore::new());
    let config = BatchDownConfig { rows: 5_001, fields: 10, rows_per_chunk: 1_000, timeout: Duration::from_secs(60) };
    let report = batch_down(store.clone(), config, dirs.path()).await?;
    assert_eq!(store.dialable(), vec![1], "the manifest's counts checked out at the site");
    assert_eq!(store.sync_position()?.1, 7, "six chunks and the manifest applied");
    assert_eq!(report.rows, 5_001);
    assert!(report.bytes > 5_001 * 10 * 10, "ten fields of ten bytes or more per row");
    assert!(report.link_rows_per_sec() > 0.0 && report.bare_rows_per_sec() > 0.0);
    // A store that has applied entries already is refused rather than measured wrong.
    let again = batch_down(store, BatchDownConfig { rows: 10, ..BatchDownConfig::default() }, dirs.path()).await;
    assert!(again.is_err());
    Ok(())
}
