//! The hub's side of the link: one QUIC endpoint serving enrollment and sync.
//!
//! - [`bind`] opens the UDP socket with the TLS configuration built from the hub's CA.
//! - [`Server::run`] accepts connections until cancelled; each runs in its own task:
//!   - on `ENROLL_ALPN`: read the appliance's request, let the store find the code its
//!     proof matches and issue `site-<id>` if the code is pending and the site has no box
//!     (`HubStore::enroll_site`), answer with both certificates and the hub's own proof, or
//!     with the store's reason (expired, used, replaced, site taken);
//!   - on `SYNC_ALPN`: read the site id from the verified client certificate, check that
//!     certificate is the site's current identity (`HubStore::site_allowed`), then pump
//!     frames between one bidirectional stream, a [`HubSession`] and the [`HubStore`]. The
//!     identity is checked again whenever the store wakes the link, so a box HQ retires
//!     is cut off while connected.
//!
//!   Once the session is accepted, every further stream the site opens is a recording
//!   upload ([`crate::blob`]), and the hub offers the site its voice files on streams of
//!   its own.
//! - Store calls block (SQLite), so each runs on `spawn_blocking`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sync_protocol::enroll::{self, CodeKey, EnrollRequest, EnrollResponse};
use sync_protocol::session::{HubEvent, HubSession, SessionConfig, SessionError, close_code};
use sync_protocol::{
    BlobKind, ENROLL_ALPN, Frame, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, SYNC_ALPN, SiteId, alpn_version,
};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::blob::{self, BlobCheck, BlobSink, SendOutcome};
use crate::ca::{HubCa, site_of_cert};
use crate::wire::{FrameStream, WireError};
use crate::{HubStore, LinkError, LinkTuning, StoreError, StoreResult, cert_sha256};

const SOFTWARE: &str = concat!("outpost-hub/", env!("CARGO_PKG_VERSION"));
const ENROLL_TIMEOUT: Duration = Duration::from_secs(30);

pub struct ServerConfig {
    pub bind: SocketAddr,
    pub ca: Arc<HubCa>,
}

/// A bound, not yet running, sync server.
pub struct Server {
    endpoint: quinn::Endpoint,
    ca: Arc<HubCa>,
    requests: RecordingRequests,
    accept: Arc<dyn Fn(quinn::Incoming, Arc<HubCa>, CancellationToken) + Send + Sync>,
}

/// The live session of each online site: its registration id and its request channel.
type OnlineSites = HashMap<SiteId, (u64, mpsc::UnboundedSender<[u8; 32]>)>;

/// Asks online sites for a recording before its turn (the console's "fetch now").
#[derive(Clone, Default)]
pub struct RecordingRequests {
    online: Arc<Mutex<OnlineSites>>,
    next_session: Arc<AtomicU64>,
}

impl std::fmt::Debug for RecordingRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingRequests").finish_non_exhaustive()
    }
}

impl RecordingRequests {
    /// Ask `site` to upload the recording `sha256` now. `false` if the site is not online:
    /// the recording then arrives in its turn once the site reconnects.
    pub fn request(&self, site: SiteId, sha256: [u8; 32]) -> bool {
        let Ok(online) = self.online.lock() else { return false };
        online.get(&site).is_some_and(|(_, sender)| sender.send(sha256).is_ok())
    }

    fn register(&self, site: SiteId) -> (u64, mpsc::UnboundedReceiver<[u8; 32]>) {
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = mpsc::unbounded_channel();
        if let Ok(mut online) = self.online.lock() {
            online.insert(site, (id, sender));
        }
        (id, receiver)
    }

    fn unregister(&self, site: SiteId, id: u64) {
        if let Ok(mut online) = self.online.lock()
            && online.get(&site).is_some_and(|(current, _)| *current == id)
        {
            online.remove(&site);
        }
    }
}

/// Open the hub's endpoint. Nothing is accepted until [`Server::run`].
pub async fn bind<S: HubStore>(config: ServerConfig, store: Arc<S>) -> Result<Server, LinkError> {
    bind_tuned(config, store, LinkTuning::default()).await
}

/// [`bind`] with other timers (tests shorten them).
pub async fn bind_tuned<S: HubStore>(
    config: ServerConfig,
    store: Arc<S>,
    tuning: LinkTuning,
) -> Result<Server, LinkError> {
    let server_config = crate::tls::server_config(&config.ca, &tuning).map_err(LinkError::Tls)?;
    let endpoint = quinn::Endpoint::server(server_config, config.bind)
        .map_err(|source| LinkError::Bind { addr: config.bind, source })?;
    let requests = RecordingRequests::default();
    let requests_for_accept = requests.clone();
    let accept = Arc::new(move |incoming: quinn::Incoming, ca: Arc<HubCa>, shutdown: CancellationToken| {
        let store = store.clone();
        let requests = requests_for_accept.clone();
        tokio::spawn(async move { handle_connection(incoming, ca, store, requests, shutdown).await });
    });
    Ok(Server { endpoint, ca: config.ca, requests, accept })
}

impl Server {
    /// The handle that asks online sites for recordings out of turn; take it before
    /// [`Server::run`] consumes the server.
    pub fn recording_requests(&self) -> RecordingRequests {
        self.requests.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        // A bound endpoint always has a local address; fall back to unspecified if the
        // OS cannot say (it only fails for a closed socket).
        self.endpoint.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Accept sites until `shutdown`, then close every connection and wait for them.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(addr = %self.local_addr(), ca = %self.ca.fingerprint(), "sync link listening");
        loop {
            tokio::select! {
                incoming = self.endpoint.accept() => {
                    let Some(incoming) = incoming else { break };
                    (self.accept)(incoming, self.ca.clone(), shutdown.child_token());
                }
                _ = shutdown.cancelled() => break,
            }
        }
        shutdown.cancel();
        self.endpoint.close(close_code::NORMAL.into(), b"hub shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(5), self.endpoint.wait_idle()).await;
        tracing::info!("sync link stopped");
    }
}

async fn blocking<S: HubStore, T: Send + 'static>(
    store: &Arc<S>,
    call: impl FnOnce(&S) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || call(&store)).await {
        Ok(result) => result,
        Err(join) => Err(StoreError::Other(format!("store call panicked: {join}"))),
    }
}

async fn handle_connection<S: HubStore>(
    incoming: quinn::Incoming,
    ca: Arc<HubCa>,
    store: Arc<S>,
    requests: RecordingRequests,
    shutdown: CancellationToken,
) {
    let remote = incoming.remote_address();
    let connection = match incoming.await {
        Ok(connection) => connection,
        Err(error) => {
            tracing::warn!(
                %remote,
                %error,
                "handshake failed; this hub speaks {} (down to version {MIN_PROTOCOL_VERSION}) and {} and accepts only certificates of its own CA",
                String::from_utf8_lossy(SYNC_ALPN),
                String::from_utf8_lossy(ENROLL_ALPN),
            );
            return;
        }
    };
    let alpn = connection
        .handshake_data()
        .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|data| data.protocol);
    match alpn.as_deref() {
        Some(protocol) if protocol == ENROLL_ALPN => enroll_site(connection, ca, store).await,
        Some(protocol) if alpn_version(protocol).is_some() => sync_site(connection, store, requests, shutdown).await,
        other => {
            tracing::warn!(%remote, alpn = ?other.map(String::from_utf8_lossy), "connection without a known ALPN");
            connection.close(close_code::PROTOCOL.into(), b"unknown ALPN");
        }
    }
}

fn refuse_enrollment(reason: String) -> EnrollResponse {
    EnrollResponse::Refused { reason }
}

async fn enroll_site<S: HubStore>(connection: quinn::Connection, ca: Arc<HubCa>, store: Arc<S>) {
    let remote = connection.remote_address();
    let outcome = tokio::time::timeout(ENROLL_TIMEOUT, enroll_exchange(&connection, &ca, &store)).await;
    match outcome {
        Ok(Ok(Some(site))) => {
            tracing::info!(%remote, site, "site enrolled");
            // Let the appliance read the answer and close; it closes first when done.
            let _ = tokio::time::timeout(Duration::from_secs(5), connection.closed()).await;
        }
        Ok(Ok(None)) => {
            let _ = tokio::time::timeout(Duration::from_secs(5), connection.closed()).await;
        }
        Ok(Err(error)) => {
            tracing::warn!(%remote, %error, "enrollment failed");
            connection.close(close_code::PROTOCOL.into(), b"enrollment failed");
        }
        Err(_) => {
            tracing::warn!(%remote, "enrollment timed out");
            connection.close(close_code::PROTOCOL.into(), b"enrollment timed out");
        }
    }
}

/// The enrollment exchange; `Some(site)` when a certificate was issued.
async fn enroll_exchange<S: HubStore>(
    connection: &quinn::Connection,
    ca: &Arc<HubCa>,
    store: &Arc<S>,
) -> Result<Option<SiteId>, String> {
    let mut binding = [0u8; enroll::CHANNEL_BINDING_LEN];
    connection
        .export_keying_material(&mut binding, enroll::CHANNEL_BINDING_LABEL, b"")
        .map_err(|_| "cannot derive the channel binding".to_owned())?;
    let (send, recv) = connection.accept_bi().await.map_err(|error| error.to_string())?;
    let mut stream = FrameStream::new(send, recv);
    let request = stream
        .recv::<EnrollRequest>()
        .await
        .map_err(|error| error.to_string())?
        .ok_or("the appliance closed the stream before its request")?;
    let EnrollRequest::Csr { protocol_version, csr_der, proof } = request else {
        let reason = "unknown enrollment request; upgrade the hub".to_owned();
        stream.send(&refuse_enrollment(reason.clone())).await.map_err(|error| error.to_string())?;
        stream.finish();
        return Err(reason);
    };
    if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&protocol_version) {
        let reason = format!(
            "protocol version mismatch: the hub speaks {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION}, the appliance {protocol_version}; upgrade the older one"
        );
        stream.send(&refuse_enrollment(reason.clone())).await.map_err(|error| error.to_string())?;
        stream.finish();
        return Err(reason);
    }
    let matched_key: Arc<Mutex<Option<CodeKey>>> = Arc::new(Mutex::new(None));
    let enrolled = {
        let matched_key = matched_key.clone();
        let csr_der = csr_der.clone();
        let ca = ca.clone();
        blocking(store, move |store| {
            store.enroll_site(
                &|key| {
                    let matches = enroll::verify_request_proof(key, &binding, &csr_der, &proof);
                    if matches && let Ok(mut slot) = matched_key.lock() {
                        *slot = Some(*key);
                    }
                    matches
                },
                &|site| ca.issue_site_cert(site, &csr_der).map(|cert| cert.to_vec()).map_err(|error| error.to_string()),
            )
        })
        .await
    };
    let key = matched_key.lock().ok().and_then(|slot| *slot);
    let (site, site_cert, key) = match (enrolled, key) {
        (Ok(Ok((site, cert))), Some(key)) => (site, cert, key),
        (Ok(Ok((site, _))), None) => {
            // A store that issued without asking the proof: never answer without proving.
            let reason = format!("the hub's store enrolled site {site} without checking the code; nothing was issued");
            stream.send(&refuse_enrollment(reason.clone())).await.map_err(|error| error.to_string())?;
            stream.finish();
            return Err(reason);
        }
        (Ok(Err(refusal)), _) => {
            tracing::warn!(remote = %connection.remote_address(), %refusal, "enrollment refused");
            stream.send(&refuse_enrollment(refusal.to_string())).await.map_err(|error| error.to_string())?;
            stream.finish();
            return Ok(None);
        }
        (Err(error), _) => {
            let reason = format!("the hub could not check the code: {error}");
            stream.send(&refuse_enrollment(reason.clone())).await.map_err(|error| error.to_string())?;
            stream.finish();
            return Err(reason);
        }
    };
    let ca_der = ca.ca_cert_der().to_vec();
    let answer = enroll::response_proof(&key, &binding, &ca_der, &site_cert);
    let response = EnrollResponse::Issued { site_id: site, site_cert_der: site_cert, ca_cert_der: ca_der, proof: answer };
    stream.send(&response).await.map_err(|error| error.to_string())?;
    stream.finish();
    Ok(Some(site))
}

/// The site a verified sync connection belongs to, from its certificate, and the
/// certificate's SHA-256 (the identity the store checks).
fn peer_site(connection: &quinn::Connection) -> Option<(SiteId, [u8; 32])> {
    let identity = connection.peer_identity()?;
    let chain = identity.downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>().ok()?;
    let leaf = chain.first()?;
    Some((site_of_cert(leaf)?, cert_sha256(leaf)))
}

/// What a box whose certificate is not (or no longer) its site's identity is told.
fn not_allowed_reason(site: SiteId) -> String {
    format!(
        "site {site} is disabled, not enrolled, or this box's certificate was retired at HQ; enable the site, or enroll this box again with a new code"
    )
}

async fn sync_site<S: HubStore>(
    connection: quinn::Connection,
    store: Arc<S>,
    requests: RecordingRequests,
    shutdown: CancellationToken,
) {
    let remote = connection.remote_address();
    let Some((site, cert)) = peer_site(&connection) else {
        tracing::warn!(%remote, "sync connection without a site certificate refused; enroll the appliance first");
        connection.close(close_code::REFUSED.into(), b"no site certificate; enroll first");
        return;
    };
    let session = HubSession::new(Instant::now(), site, SOFTWARE.to_owned(), SessionConfig::default());
    let (online, outcome) = pump(&connection, session, cert, &store, &requests, &shutdown).await;
    if online {
        let store_for_state = store.clone();
        let _ = tokio::task::spawn_blocking(move || store_for_state.link_state(site, false)).await;
    }
    let (code, reason) = match &outcome {
        Outcome::Closed(error) => {
            tracing::warn!(%remote, site, %error, "sync session refused or broken");
            (error.close_code(), error.to_string())
        }
        Outcome::Conflict(error) => {
            tracing::error!(%remote, site, %error, "ALARM: outbox conflict; the site may run from an old backup, nothing was merged");
            (close_code::CONFLICT, error.to_string())
        }
        Outcome::Store(error) => {
            tracing::error!(%remote, site, %error, "store failed during sync; the site will retry");
            (close_code::STORE, error.to_string())
        }
        Outcome::Transport(error) => {
            tracing::info!(%remote, site, %error, "site disconnected");
            (close_code::NORMAL, error.clone())
        }
        Outcome::Shutdown => (close_code::NORMAL, "hub shutting down".to_owned()),
    };
    let mut reason = reason.into_bytes();
    reason.truncate(200);
    connection.close(code.into(), &reason);
}

enum Outcome {
    Closed(SessionError),
    Conflict(StoreError),
    Store(StoreError),
    Transport(String),
    Shutdown,
}

/// The hub's end of recording streams: one site's recordings in the hub store.
struct HubRecordings<S> {
    store: Arc<S>,
    site: SiteId,
}

impl<S: HubStore> BlobSink for HubRecordings<S> {
    fn accepts(&self, kind: BlobKind) -> bool {
        kind == BlobKind::Recording
    }
    fn held(&self, sha256: &[u8; 32]) -> StoreResult<u64> {
        self.store.recording_held(self.site, sha256)
    }
    fn append(&self, sha256: &[u8; 32], offset: u64, bytes: &[u8]) -> StoreResult<()> {
        self.store.recording_append(self.site, sha256, offset, bytes)
    }
    fn finish(&self, sha256: &[u8; 32]) -> StoreResult<BlobCheck> {
        self.store.recording_finish(self.site, sha256)
    }
}

/// Offer the site every voice file it should hold: on connect, and again whenever its down
/// log grows (a new voice file is announced there).
async fn push_voice_files<S: HubStore>(
    connection: quinn::Connection,
    store: Arc<S>,
    site: SiteId,
    down_changed: Arc<Notify>,
) {
    // Not the store's own Notify: a store may wake one waiter per change, and that waiter must
    // be the frame pump, or a down entry would sit unsent. The pump passes each wake-up on.
    let notify = down_changed;
    let mut settled: HashSet<[u8; 32]> = HashSet::new();
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let files = match blocking(&store, move |store| store.voice_files_for(site)).await {
            Ok(files) => files,
            Err(error) => {
                tracing::warn!(site, %error, "cannot list voice files; retrying when the down log grows");
                Vec::new()
            }
        };
        for file in files {
            if settled.contains(&file.sha256) {
                continue;
            }
            let store = store.clone();
            let sha = file.sha256;
            let open = move || store.open_voice(&sha);
            match blob::send_blob(&connection, BlobKind::Voice, file, open, None).await {
                Ok(SendOutcome::Accepted { sent }) => {
                    tracing::info!(site, sha = %hex::encode(sha), sent, "voice file at the site");
                    settled.insert(sha);
                }
                Ok(SendOutcome::Rejected { reason }) => {
                    tracing::warn!(site, sha = %hex::encode(sha), reason, "site refused a voice file");
                    settled.insert(sha);
                }
                Err(error) => {
                    tracing::info!(site, sha = %hex::encode(sha), %error, "voice file transfer stopped");
                    if connection.close_reason().is_some() {
                        return;
                    }
                }
            }
        }
        notified.await;
    }
}

/// Pump frames until the session ends; returns whether the site came online.
async fn pump<S: HubStore>(
    connection: &quinn::Connection,
    mut session: HubSession,
    cert: [u8; 32],
    store: &Arc<S>,
    requests: &RecordingRequests,
    shutdown: &CancellationToken,
) -> (bool, Outcome) {
    let site = session.site_id();
    // Blob tasks end with the connection; the guard also stops them if the pump returns
    // while the connection lingers.
    let mut side_tasks = tokio::task::JoinSet::new();
    let (registration, mut wanted) = requests.register(site);
    let outcome = pump_frames(connection, &mut session, cert, store, shutdown, &mut side_tasks, &mut wanted).await;
    requests.unregister(site, registration);
    side_tasks.abort_all();
    outcome
}

async fn pump_frames<S: HubStore>(
    connection: &quinn::Connection,
    session: &mut HubSession,
    cert: [u8; 32],
    store: &Arc<S>,
    shutdown: &CancellationToken,
    side_tasks: &mut tokio::task::JoinSet<()>,
    wanted: &mut mpsc::UnboundedReceiver<[u8; 32]>,
) -> (bool, Outcome) {
    let site = session.site_id();
    let mut stream = match accept_sync_stream(connection, shutdown).await {
        Ok(stream) => stream,
        Err(outcome) => return (false, outcome),
    };
    let notify = store.down_notify(site);
    let mut notified = Box::pin(notify.notified());
    notified.as_mut().enable();
    let mut link = SiteLink {
        connection,
        session,
        cert,
        store,
        side_tasks,
        site,
        online: false,
        voices_wake: Arc::new(Notify::new()),
        pending_up: Vec::new(),
    };
    loop {
        while let Some(event) = link.session.poll_event() {
            if let Err(outcome) = link.on_event(event, &mut stream).await {
                return (link.online, outcome);
            }
        }
        if let Err(outcome) = link.commit_up().await {
            return (link.online, outcome);
        }
        while let Some(frame) = link.session.poll_transmit() {
            if let Err(error) = stream.send::<Frame>(&frame).await {
                return (link.online, Outcome::Transport(error.to_string()));
            }
        }
        let deadline = link.session.poll_timeout();
        tokio::select! {
            received = stream.recv::<Frame>() => {
                if let Err(outcome) = link.take_frames(&mut stream, received) {
                    return (link.online, outcome);
                }
            }
            Some(sha256) = wanted.recv() => link.session.want_recording(sha256),
            _ = &mut notified => {
                notified = Box::pin(notify.notified());
                notified.as_mut().enable();
                if let Err(outcome) = link.on_down_changed().await {
                    return (link.online, outcome);
                }
            }
            _ = sleep_until(deadline) => link.session.handle_timeout(Instant::now()),
            _ = shutdown.cancelled() => return (link.online, Outcome::Shutdown),
        }
    }
}

/// Waits for the site to open its sync stream, at most the hello timeout.
async fn accept_sync_stream(
    connection: &quinn::Connection,
    shutdown: &CancellationToken,
) -> Result<FrameStream, Outcome> {
    let accepted = tokio::select! {
        accepted = connection.accept_bi() => accepted,
        _ = tokio::time::sleep(SessionConfig::default().hello_timeout) => {
            return Err(Outcome::Closed(SessionError::HelloTimeout(SessionConfig::default().hello_timeout)));
        }
        _ = shutdown.cancelled() => return Err(Outcome::Shutdown),
    };
    match accepted {
        Ok((send, recv)) => Ok(FrameStream::new(send, recv)),
        Err(error) => Err(Outcome::Transport(error.to_string())),
    }
}

/// One site's link while its sync stream is open: the session and what the pump keeps
/// between turns.
struct SiteLink<'a, S: HubStore> {
    connection: &'a quinn::Connection,
    session: &'a mut HubSession,
    cert: [u8; 32],
    store: &'a Arc<S>,
    side_tasks: &'a mut tokio::task::JoinSet<()>,
    site: SiteId,
    online: bool,
    voices_wake: Arc<Notify>,
    // Outbox entries delivered by the session and not yet handed to the store.
    pending_up: Vec<sync_protocol::UpEntry>,
}

impl<S: HubStore> SiteLink<'_, S> {
    async fn commit_up(&mut self) -> Result<(), Outcome> {
        commit_up(self.store, self.site, self.session, &mut self.pending_up).await
    }

    /// Acts on one event of the session; `Err` ends the link with that outcome.
    async fn on_event(&mut self, event: HubEvent, stream: &mut FrameStream) -> Result<(), Outcome> {
        if !matches!(event, HubEvent::ApplyUp(_)) {
            self.commit_up().await?;
        }
        let (store, site) = (self.store, self.site);
        match event {
            HubEvent::Hello { site_id, epoch, software, down_applied } => {
                self.on_hello(site_id, epoch, down_applied, software).await?;
            }
            HubEvent::FetchDown { after_seq, limit } => {
                match blocking(store, move |store| store.down_after(site, after_seq, limit)).await {
                    Ok(entries) => self.session.down_fetched(Instant::now(), entries),
                    Err(error) => return Err(Outcome::Store(error)),
                }
            }
            HubEvent::ApplyUp(entry) => {
                // Gathered and committed as one run, before any later event.
                self.pending_up.push(entry);
            }
            HubEvent::HeldBack(entry) => {
                // Recorded before the stand-in leaves: the pump drains events first.
                let version = self.session.peer_version();
                tracing::info!(site, seq = entry.seq, needs = entry.event.since(), version, "down entry held back until the site is upgraded");
                if let Err(error) = blocking(store, move |store| store.down_held_back(site, &entry)).await {
                    return Err(Outcome::Store(error));
                }
            }
            HubEvent::DownAcked { seq } => {
                if let Err(error) = blocking(store, move |store| store.down_acked(site, seq)).await {
                    return Err(Outcome::Store(error));
                }
            }
            HubEvent::LiveFigures(figures) => {
                let store = store.clone();
                // Latest-value data: nothing waits on it, and a failure loses one snapshot.
                let _ = tokio::task::spawn_blocking(move || store.live_figures(site, figures)).await;
            }
            HubEvent::SiteLive(live) => {
                let store = store.clone();
                let _ = tokio::task::spawn_blocking(move || store.site_live(site, *live)).await;
            }
            HubEvent::Closed(error) => {
                // Send the Refused frame (if any) before closing.
                while let Some(frame) = self.session.poll_transmit() {
                    let _ = stream.send(&frame).await;
                }
                stream.finish();
                // Give the frame a moment to leave before the close discards it.
                let _ = tokio::time::timeout(Duration::from_millis(500), stream_drained(self.connection)).await;
                return Err(Outcome::Closed(error));
            }
        }
        Ok(())
    }

    /// The site's hello: refused unless its certificate may hold the site; otherwise the
    /// site is online and its blob streams and voice pushes start.
    async fn on_hello(&mut self, site_id: SiteId, epoch: u64, down_applied: u64, software: String) -> Result<(), Outcome> {
        let (store, site, cert) = (self.store, self.site, self.cert);
        match blocking(store, move |store| store.site_allowed(site_id, &cert)).await {
            Ok(true) => {}
            Ok(false) => {
                self.session.refuse(Instant::now(), not_allowed_reason(site_id));
                return Ok(());
            }
            Err(error) => return Err(Outcome::Store(error)),
        }
        // Entries held back from this site while it was older go down again now if it reads
        // them, appended before the session fetches its first entries.
        let version = self.session.peer_version();
        if let Err(error) = blocking(store, move |store| store.site_speaks(site_id, version, down_applied)).await {
            return Err(Outcome::Store(error));
        }
        match blocking(store, move |store| store.up_committed(site_id, epoch)).await {
            Ok(committed) => self.session.accept(Instant::now(), committed),
            Err(error) => return Err(Outcome::Store(error)),
        }
        tracing::info!(site, epoch, software, version, "site online");
        self.online = true;
        let connection = self.connection;
        let sink = Arc::new(HubRecordings { store: store.clone(), site });
        self.side_tasks.spawn(blob::serve_blob_streams(connection.clone(), sink, format!("site {site}")));
        self.side_tasks.spawn(push_voice_files(connection.clone(), store.clone(), site, self.voices_wake.clone()));
        let store_for_state = store.clone();
        let _ = tokio::task::spawn_blocking(move || store_for_state.link_state(site_id, true)).await;
        Ok(())
    }

    /// Hands the session the frame just received and every one already arrived after it.
    fn take_frames(
        &mut self,
        stream: &mut FrameStream,
        mut received: Result<Option<Frame>, WireError>,
    ) -> Result<(), Outcome> {
        let site = self.site;
        // Take every frame that has already arrived before going back to the store,
        // so a site catching up has its entries committed many to a transaction.
        for _ in 0..MAX_FRAMES_PER_TURN {
            match received {
                Ok(Some(frame)) => self.session.handle_frame(Instant::now(), frame),
                Ok(None) => return Err(Outcome::Transport("the site finished the stream".to_owned())),
                Err(WireError::Frame(frame_error)) => {
                    tracing::warn!(site, %frame_error, "undecodable frame from the site; closing the connection");
                    self.session.bad_frame(frame_error);
                    break;
                }
                Err(error) => return Err(Outcome::Transport(error.to_string())),
            }
            match ready_now(stream.recv::<Frame>()) {
                Some(next) => received = next,
                None => break,
            }
        }
        Ok(())
    }

    /// The site's down log (or its standing at HQ) changed.
    async fn on_down_changed(&mut self) -> Result<(), Outcome> {
        let (store, site, cert) = (self.store, self.site, self.cert);
        // The store also wakes the link when HQ retires or disables the site: a box
        // that may no longer hold the site is cut off now, not at its next hello.
        if self.online {
            match blocking(store, move |store| store.site_allowed(site, &cert)).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(site, "the site's identity was retired or the site disabled; closing its link");
                    self.session.refuse(Instant::now(), not_allowed_reason(site));
                    return Ok(());
                }
                Err(error) => return Err(Outcome::Store(error)),
            }
        }
        self.session.down_changed();
        self.voices_wake.notify_one();
        Ok(())
    }
}

/// Most frames taken off the sync stream before the pump goes back to the store: bounds
/// the run committed in one transaction (the site's window bounds it too).
const MAX_FRAMES_PER_TURN: usize = 1024;

/// The future's output if it is ready without waiting. Only for cancel-safe futures
/// ([`FrameStream::recv`] is: bytes already read stay in its decoder).
fn ready_now<F: std::future::Future>(future: F) -> Option<F::Output> {
    let future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.poll(&mut context) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}

/// Commit the outbox entries gathered so far as one run, then tell the session.
async fn commit_up<S: HubStore>(
    store: &Arc<S>,
    site: SiteId,
    session: &mut HubSession,
    pending: &mut Vec<sync_protocol::UpEntry>,
) -> Result<(), Outcome> {
    let Some(last) = pending.last().map(|entry| entry.seq) else { return Ok(()) };
    let entries = std::mem::take(pending);
    match blocking(store, move |store| store.apply_up_batch(site, &entries)).await {
        Ok(()) => {
            session.up_committed(last);
            Ok(())
        }
        Err(error @ StoreError::Conflict { .. }) => Err(Outcome::Conflict(error)),
        Err(error) => Err(Outcome::Store(error)),
    }
}

/// Waits until the peer closes or a short while passes: lets a final frame reach the site.
async fn stream_drained(connection: &quinn::Connection) {
    connection.closed().await;
}

pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await,
        None => std::future::pending().await,
    }
}
