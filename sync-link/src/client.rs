//! The appliance's side of the link: enrollment, the site identity on disk, and the
//! reconnecting sync loop.
//!
//! - [`enroll`] runs once per box: fresh key, CSR and code-keyed proof over an
//!   `ENROLL_ALPN` connection; the verified answer is written to the identity directory
//!   (`site.key` 0600, `site.crt`, `ca.crt`, `site.json`).
//! - [`run`] keeps the box connected: it dials the hub with mutual TLS, pumps frames
//!   between one stream, a [`SiteSession`] and the [`SiteStore`], reports [`LinkStatus`],
//!   and reconnects with capped exponential backoff until shut down.
//! - While online it uploads pending recordings on streams of their own under the cap HQ
//!   set, at once for one HQ asks for, receives the voice files the hub offers, and sends
//!   the live figures whenever they change.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rcgen::{CertificateParams, DnType, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};
use sync_protocol::enroll::{self, EnrollRequest, EnrollResponse};
use sync_protocol::session::{SessionConfig, SessionError, SiteEvent, SiteSession, SiteStart, close_code};
use sync_protocol::{
    BlobKind, DownEntry, DownEvent, Frame, LinkSettings, LiveFigures, PROTOCOL_VERSION, SYNC_ALPN, SiteId, SiteLive,
    alpn_version,
};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::blob::{self, BlobCheck, BlobRef, BlobSink, RateCap, SendOutcome};
use crate::ca::{cert_from_pem, cert_to_pem, fingerprint_of, site_of_cert, write_private, write_public};
use crate::server::sleep_until;
use crate::wire::{FrameStream, WireError};
use crate::{HUB_SERVER_NAME, LinkTuning, SiteStore, StoreError, StoreResult};

const SOFTWARE: &str = concat!("outpost-appliance/", env!("CARGO_PKG_VERSION"));
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the link looks at the live figures; a change reaches HQ well within 2 s.
const LIVE_FIGURES_EVERY: Duration = Duration::from_millis(500);

/// A wall snapshot is sent again after this long even if nothing changed, so HQ sees the
/// site's figures are current.
pub const SITE_LIVE_REFRESH: Duration = Duration::from_secs(15);

/// What the live-figures task hands the pump.
enum Live {
    Figures(LiveFigures),
    Site(SiteLive),
}
/// How often the uploader looks for recordings when nothing woke it.
const RECORDINGS_RECHECK: Duration = Duration::from_secs(10);

/// Who this appliance is and where its hub is, as enrollment left it on disk.
#[derive(Clone)]
pub struct SiteIdentity {
    pub site_id: SiteId,
    /// The hub's address, `host:port`.
    pub hub: String,
    key_der: Vec<u8>,
    cert: CertificateDer<'static>,
    ca_cert: CertificateDer<'static>,
}

impl std::fmt::Debug for SiteIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteIdentity")
            .field("site_id", &self.site_id)
            .field("hub", &self.hub)
            .field("ca", &fingerprint_of(&self.ca_cert))
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct SiteJson {
    site_id: SiteId,
    hub: String,
}

/// Why the identity directory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A file is missing or unreadable.
    #[error("{path}: {source}; enroll this appliance first (`enroll --hub HOST:PORT --code CODE`)")]
    Io { path: PathBuf, source: std::io::Error },
    /// A file does not hold what it should.
    #[error("{path}: {detail}; re-enroll this appliance")]
    Corrupt { path: PathBuf, detail: String },
}

/// Why enrollment failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The hub's address does not resolve.
    #[error("cannot resolve the hub address {hub:?}: {detail}; give it as host:port")]
    Resolve { hub: String, detail: String },
    /// No QUIC connection to the hub.
    #[error("cannot reach the hub at {hub}: {detail}; check the address, the port and the firewall (UDP)")]
    Connect { hub: String, detail: String },
    /// The hub refused; the reason comes from the hub.
    #[error("the hub refused enrollment: {reason}")]
    Refused { reason: String },
    /// The answer did not prove knowledge of the code: this is not the hub that issued it.
    #[error(
        "the peer at {hub} did not prove it issued this code; possibly an interception. Nothing was saved; check the address with HQ"
    )]
    HubNotProven { hub: String },
    /// The exchange broke off or made no sense.
    #[error("enrollment exchange with {hub} failed: {detail}")]
    Protocol { hub: String, detail: String },
    /// Key or request generation failed.
    #[error("cannot generate the appliance key: {0}")]
    Key(#[from] rcgen::Error),
    /// The identity could not be written.
    #[error("{path}: {source}; check the identity directory is writable")]
    Io { path: PathBuf, source: std::io::Error },
}

/// The state of the link, for the panel and the admin UI.
#[derive(Clone, Debug)]
pub enum LinkStatus {
    Connecting,
    Online { since: SystemTime },
    Offline { since: SystemTime, reason: String },
}

impl SiteIdentity {
    /// Read the identity [`enroll`] wrote to `dir`.
    pub fn load(dir: &Path) -> Result<SiteIdentity, IdentityError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| IdentityError::Io { path, source })
        };
        let corrupt = |name: &str, detail: String| IdentityError::Corrupt { path: dir.join(name), detail };
        let json: SiteJson =
            serde_json::from_str(&read("site.json")?).map_err(|error| corrupt("site.json", error.to_string()))?;
        let key_pem = read("site.key")?;
        let key = KeyPair::from_pem(&key_pem).map_err(|error| corrupt("site.key", error.to_string()))?;
        let cert = cert_from_pem(&read("site.crt")?).map_err(|detail| corrupt("site.crt", detail))?;
        let ca_cert = cert_from_pem(&read("ca.crt")?).map_err(|detail| corrupt("ca.crt", detail))?;
        match site_of_cert(&cert) {
            Some(site) if site == json.site_id => {}
            other => {
                return Err(corrupt(
                    "site.crt",
                    format!("names site {other:?} but site.json says {}", json.site_id),
                ));
            }
        }
        Ok(SiteIdentity { site_id: json.site_id, hub: json.hub, key_der: key.serialize_der(), cert, ca_cert })
    }

    /// SHA-256 of this box's certificate, as colon-separated hex pairs: what the hub's
    /// console shows (shortened) for the box holding the site.
    pub fn cert_fingerprint(&self) -> String {
        fingerprint_of(&self.cert)
    }

    /// The sync client configuration of this identity offering exactly `alpns`.
    #[cfg(feature = "test-utils")]
    pub(crate) fn client_config_offering(&self, alpns: Vec<Vec<u8>>) -> Result<quinn::ClientConfig, String> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        crate::tls::sync_client_config_offering(self.ca_cert.clone(), vec![self.cert.clone()], key, &LinkTuning::default(), alpns)
    }

    pub(crate) fn client_config(&self, tuning: &LinkTuning) -> Result<quinn::ClientConfig, String> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        crate::tls::sync_client_config(self.ca_cert.clone(), vec![self.cert.clone()], key, tuning)
    }
}

async fn resolve(hub: &str) -> Result<SocketAddr, String> {
    let mut addrs = tokio::net::lookup_host(hub).await.map_err(|error| error.to_string())?;
    addrs.next().ok_or_else(|| "no address".to_owned())
}

fn client_endpoint(remote: SocketAddr) -> std::io::Result<quinn::Endpoint> {
    let local: SocketAddr = if remote.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }
        .parse()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    quinn::Endpoint::client(local)
}

/// Enroll this appliance with `code` at `hub` (`host:port`) and save its identity in
/// `identity_dir` (created if missing).
pub async fn enroll(hub: &str, code: &str, identity_dir: &Path) -> Result<SiteIdentity, EnrollError> {
    let hub_owned = hub.to_owned();
    let connect_error = |detail: String| EnrollError::Connect { hub: hub_owned.clone(), detail };
    let protocol = |detail: String| EnrollError::Protocol { hub: hub.to_owned(), detail };
    let remote = resolve(hub).await.map_err(|detail| EnrollError::Resolve { hub: hub.to_owned(), detail })?;

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "outpost-appliance");
    let csr = params.serialize_request(&key)?;
    let csr_der = csr.der().to_vec();

    let mut endpoint = client_endpoint(remote).map_err(|error| connect_error(error.to_string()))?;
    endpoint.set_default_client_config(crate::tls::enroll_client_config().map_err(&connect_error)?);
    let connecting = endpoint.connect(remote, HUB_SERVER_NAME).map_err(|error| connect_error(error.to_string()))?;
    let connection = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| connect_error("timed out".to_owned()))?
        .map_err(|error| connect_error(error.to_string()))?;

    let mut binding = [0u8; enroll::CHANNEL_BINDING_LEN];
    connection
        .export_keying_material(&mut binding, enroll::CHANNEL_BINDING_LABEL, b"")
        .map_err(|_| protocol("cannot derive the channel binding".to_owned()))?;
    let code_key = enroll::CodeKey::from_code(code);
    let proof = enroll::request_proof(&code_key, &binding, &csr_der);

    let exchange = async {
        let (send, recv) = connection.open_bi().await.map_err(|error| protocol(error.to_string()))?;
        let mut stream = FrameStream::new(send, recv);
        let request = EnrollRequest::Csr { protocol_version: PROTOCOL_VERSION, csr_der: csr_der.clone(), proof };
        stream.send(&request).await.map_err(|error| protocol(error.to_string()))?;
        stream.finish();
        stream
            .recv::<EnrollResponse>()
            .await
            .map_err(|error| protocol(error.to_string()))?
            .ok_or_else(|| protocol("the hub closed without an answer".to_owned()))
    };
    let response = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .map_err(|_| protocol("no answer within 30 s".to_owned()))??;
    connection.close(close_code::NORMAL.into(), b"enrolled");
    endpoint.wait_idle().await;

    let (site_id, site_cert_der, ca_cert_der, answer) = match response {
        EnrollResponse::Issued { site_id, site_cert_der, ca_cert_der, proof } => {
            (site_id, site_cert_der, ca_cert_der, proof)
        }
        EnrollResponse::Refused { reason } => return Err(EnrollError::Refused { reason }),
        other => return Err(protocol(format!("unexpected answer {other:?}; upgrade this appliance"))),
    };
    if !enroll::verify_response_proof(&code_key, &binding, &ca_cert_der, &site_cert_der, &answer) {
        return Err(EnrollError::HubNotProven { hub: hub.to_owned() });
    }
    check_issued(&key, site_id, &site_cert_der, &ca_cert_der).map_err(protocol)?;

    std::fs::create_dir_all(identity_dir)
        .map_err(|source| EnrollError::Io { path: identity_dir.to_owned(), source })?;
    let write = |name: &str, contents: &[u8], private: bool| {
        let path = identity_dir.join(name);
        let result = if private { write_private(&path, contents) } else { write_public(&path, contents) };
        result.map_err(|source| EnrollError::Io { path, source })
    };
    write("site.key", key.serialize_pem().as_bytes(), true)?;
    write("site.crt", cert_to_pem(&site_cert_der).as_bytes(), false)?;
    write("ca.crt", cert_to_pem(&ca_cert_der).as_bytes(), false)?;
    let json = serde_json::to_vec_pretty(&SiteJson { site_id, hub: hub.to_owned() })
        .map_err(|error| protocol(error.to_string()))?;
    // site.json last: its presence means the identity is complete.
    write("site.json", &json, false)?;
    tracing::info!(
        site = site_id,
        hub,
        ca = %fingerprint_of(&ca_cert_der),
        certificate = %fingerprint_of(&site_cert_der),
        "appliance enrolled"
    );
    SiteIdentity::load(identity_dir).map_err(|error| protocol(error.to_string()))
}

/// The issued certificate is for our key, names the site, and is signed by the CA.
fn check_issued(key: &KeyPair, site: SiteId, site_der: &[u8], ca_der: &[u8]) -> Result<(), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(site_der).map_err(|error| format!("bad certificate: {error}"))?;
    let (_, ca) = x509_parser::parse_x509_certificate(ca_der).map_err(|error| format!("bad CA certificate: {error}"))?;
    cert.verify_signature(Some(ca.public_key())).map_err(|_| "the certificate is not signed by the CA".to_owned())?;
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err("the certificate is for another key".to_owned());
    }
    if site_of_cert(site_der) != Some(site) {
        return Err(format!("the certificate does not name site-{site}"));
    }
    Ok(())
}

/// Keep the site connected until `shutdown`, reporting the link's state on `status`.
pub async fn run<S: SiteStore>(
    identity: SiteIdentity,
    store: Arc<S>,
    status: tokio::sync::watch::Sender<LinkStatus>,
    shutdown: CancellationToken,
) {
    run_tuned(identity, store, status, shutdown, LinkTuning::default()).await
}

/// [`run`] with other timers (tests shorten them).
pub async fn run_tuned<S: SiteStore>(
    identity: SiteIdentity,
    store: Arc<S>,
    status: tokio::sync::watch::Sender<LinkStatus>,
    shutdown: CancellationToken,
    tuning: LinkTuning,
) {
    let mut backoff = tuning.initial_backoff;
    let mut endpoint: Option<quinn::Endpoint> = None;
    // One cap for the appliance's lifetime: it spans reconnects, and settings applied from
    // the down log update it at once.
    let cap = RateCap::default();
    while !shutdown.is_cancelled() {
        status.send_replace(LinkStatus::Connecting);
        let attempt = connect_and_pump(&identity, &store, &status, &shutdown, &mut endpoint, &tuning, &cap).await;
        let reason = match attempt {
            Attempt::Shutdown => break,
            Attempt::Ended { was_online, reason } => {
                if was_online {
                    backoff = tuning.initial_backoff;
                }
                reason
            }
        };
        let since = match &*status.borrow() {
            LinkStatus::Offline { since, .. } => *since,
            _ => SystemTime::now(),
        };
        status.send_replace(LinkStatus::Offline { since, reason });
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.cancelled() => break,
        }
        backoff = (backoff * 2).min(tuning.max_backoff);
    }
    if let Some(endpoint) = endpoint {
        endpoint.close(close_code::NORMAL.into(), b"appliance shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
    }
    let since = SystemTime::now();
    status.send_replace(LinkStatus::Offline { since, reason: "shut down".to_owned() });
}

enum Attempt {
    Shutdown,
    Ended { was_online: bool, reason: String },
}

async fn blocking<S: SiteStore, T: Send + 'static>(
    store: &Arc<S>,
    call: impl FnOnce(&S) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || call(&store)).await {
        Ok(result) => result,
        Err(join) => Err(StoreError::Other(format!("store call panicked: {join}"))),
    }
}

fn ended(was_online: bool, reason: impl Into<String>) -> Attempt {
    Attempt::Ended { was_online, reason: reason.into() }
}

async fn connect_and_pump<S: SiteStore>(
    identity: &SiteIdentity,
    store: &Arc<S>,
    status: &tokio::sync::watch::Sender<LinkStatus>,
    shutdown: &CancellationToken,
    endpoint_slot: &mut Option<quinn::Endpoint>,
    tuning: &LinkTuning,
    cap: &RateCap,
) -> Attempt {
    let remote = match resolve(&identity.hub).await {
        Ok(remote) => remote,
        Err(detail) => return ended(false, format!("cannot resolve {}: {detail}", identity.hub)),
    };
    if endpoint_slot.is_none() {
        let config = match identity.client_config(tuning) {
            Ok(config) => config,
            Err(detail) => return ended(false, detail),
        };
        match client_endpoint(remote) {
            Ok(mut endpoint) => {
                endpoint.set_default_client_config(config);
                *endpoint_slot = Some(endpoint);
            }
            Err(error) => return ended(false, format!("cannot open a UDP socket: {error}")),
        }
    }
    let Some(endpoint) = endpoint_slot.as_ref() else { return ended(false, "no endpoint") };
    let connecting = match endpoint.connect(remote, HUB_SERVER_NAME) {
        Ok(connecting) => connecting,
        Err(error) => return ended(false, format!("cannot connect to {remote}: {error}")),
    };
    let connect_timeout = tuning.connect_timeout;
    let connection = tokio::select! {
        connected = tokio::time::timeout(connect_timeout, connecting) => match connected {
            Ok(Ok(connection)) => connection,
            Ok(Err(error)) => {
                let reason = format!(
                    "handshake with {remote} failed: {error}; the appliance speaks {} and trusts only the CA it enrolled with",
                    String::from_utf8_lossy(SYNC_ALPN)
                );
                tracing::warn!("{reason}");
                return ended(false, reason);
            }
            Err(_) => return ended(false, format!("no answer from {remote} within {connect_timeout:?}")),
        },
        _ = shutdown.cancelled() => return Attempt::Shutdown,
    };
    let (epoch, down_applied) = match blocking(store, |store| store.sync_position()).await {
        Ok(position) => position,
        Err(error) => {
            connection.close(close_code::STORE.into(), b"site store failed");
            return ended(false, format!("site store: {error}"));
        }
    };
    match blocking(store, |store| store.link_settings()).await {
        Ok(settings) => cap.set(settings.and_then(|settings| settings.recording_upload_bytes_per_sec)),
        Err(error) => tracing::warn!(%error, "cannot read the link settings; keeping the current upload cap"),
    }
    // The newest version both ends speak, as TLS negotiated it: a hub of the previous
    // release is spoken to in its version.
    let version = connection
        .handshake_data()
        .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|data| data.protocol)
        .and_then(|alpn| alpn_version(&alpn))
        .unwrap_or(PROTOCOL_VERSION);
    let session = SiteSession::speaking(
        Instant::now(),
        SiteStart { site_id: identity.site_id, epoch, down_applied, software: SOFTWARE.to_owned() },
        SessionConfig::default(),
        version,
    );
    let (was_online, outcome) = pump(&connection, session, store, status, shutdown, cap).await;
    let (code, reason) = match outcome {
        Err(PumpEnd::Shutdown) => {
            connection.close(close_code::NORMAL.into(), b"appliance shutting down");
            return Attempt::Shutdown;
        }
        Err(PumpEnd::Session(error)) => {
            tracing::warn!(site = identity.site_id, %error, "sync session ended");
            (error.close_code(), error.to_string())
        }
        Err(PumpEnd::Store(error)) => {
            tracing::error!(site = identity.site_id, %error, "site store failed during sync");
            (close_code::STORE, format!("site store: {error}"))
        }
        Err(PumpEnd::Transport(reason)) | Ok(reason) => {
            tracing::info!(site = identity.site_id, reason, "link down");
            (close_code::NORMAL, reason)
        }
    };
    connection.close(code.into(), b"");
    ended(was_online, reason)
}

enum PumpEnd {
    Shutdown,
    Session(SessionError),
    Store(StoreError),
    Transport(String),
}

/// The site's end of voice-file streams.
struct SiteVoices<S> {
    store: Arc<S>,
}

impl<S: SiteStore> BlobSink for SiteVoices<S> {
    fn accepts(&self, kind: BlobKind) -> bool {
        kind == BlobKind::Voice
    }
    fn held(&self, sha256: &[u8; 32]) -> StoreResult<u64> {
        self.store.voice_held(sha256)
    }
    fn append(&self, sha256: &[u8; 32], offset: u64, bytes: &[u8]) -> StoreResult<()> {
        self.store.voice_append(sha256, offset, bytes)
    }
    fn finish(&self, sha256: &[u8; 32]) -> StoreResult<BlobCheck> {
        self.store.voice_finish(sha256)
    }
}

/// Upload one recording; `Err` carries why it did not get through.
async fn upload_recording<S: SiteStore>(
    connection: &quinn::Connection,
    store: &Arc<S>,
    recording: BlobRef,
    cap: &RateCap,
) -> Result<(), String> {
    let sha = recording.sha256;
    let opener = store.clone();
    let outcome = blob::send_blob(connection, BlobKind::Recording, recording, move || opener.open_recording(&sha), Some(cap))
        .await
        .map_err(|error| error.to_string())?;
    match outcome {
        SendOutcome::Accepted { sent } => {
            tracing::info!(sha = %hex::encode(sha), size = recording.size, sent, "recording uploaded");
            blocking(store, move |store| store.recording_uploaded(&sha)).await.map_err(|error| error.to_string())
        }
        SendOutcome::Rejected { reason } => Err(format!("HQ refused it: {reason}")),
    }
}

/// Upload pending recordings one after another, oldest first, and any HQ asks for at once
/// on a stream of its own. A recording that fails is left for the next connection, so a
/// bad file never blocks the rest.
async fn upload_recordings<S: SiteStore>(
    connection: quinn::Connection,
    store: Arc<S>,
    cap: RateCap,
    mut wanted: mpsc::UnboundedReceiver<[u8; 32]>,
    outbox_changed: Arc<Notify>,
) {
    let in_flight: Arc<Mutex<HashSet<[u8; 32]>>> = Arc::default();
    let claim = |in_flight: &Arc<Mutex<HashSet<[u8; 32]>>>, sha: [u8; 32]| {
        in_flight.lock().map(|mut set| set.insert(sha)).unwrap_or(false)
    };
    let release = |in_flight: &Arc<Mutex<HashSet<[u8; 32]>>>, sha: &[u8; 32]| {
        if let Ok(mut set) = in_flight.lock() {
            set.remove(sha);
        }
    };
    let queue = async {
        // Not the store's own Notify: the store wakes one waiter per change, and that waiter
        // must be the frame pump, or an outbox entry would sit unsent until the next change.
        // The pump passes each wake-up on here.
        let notify = outbox_changed;
        let mut skipped: HashSet<[u8; 32]> = HashSet::new();
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let pending = match blocking(&store, |store| store.pending_recordings(16)).await {
                Ok(pending) => pending,
                Err(error) => {
                    tracing::warn!(%error, "cannot list pending recordings");
                    Vec::new()
                }
            };
            let mut progressed = false;
            for recording in pending {
                if skipped.contains(&recording.sha256) || !claim(&in_flight, recording.sha256) {
                    continue;
                }
                let result = upload_recording(&connection, &store, recording, &cap).await;
                release(&in_flight, &recording.sha256);
                match result {
                    Ok(()) => progressed = true,
                    Err(reason) => {
                        if connection.close_reason().is_some() {
                            return;
                        }
                        tracing::warn!(sha = %hex::encode(recording.sha256), reason, "recording not uploaded; retried after the next reconnect");
                        skipped.insert(recording.sha256);
                    }
                }
            }
            if !progressed {
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep(RECORDINGS_RECHECK) => {}
                }
            }
        }
    };
    let on_demand = async {
        let mut uploads = tokio::task::JoinSet::new();
        while let Some(sha) = wanted.recv().await {
            if !claim(&in_flight, sha) {
                // Already on its way.
                continue;
            }
            let (connection, store, cap, in_flight) = (connection.clone(), store.clone(), cap.clone(), in_flight.clone());
            uploads.spawn(async move {
                let opened = blocking(&store, move |store| store.open_recording(&sha)).await;
                let result = match opened {
                    Ok(Some(opened)) => {
                        let recording = BlobRef { sha256: sha, size: opened.size };
                        let outcome = blob::send_blob(
                            &connection,
                            BlobKind::Recording,
                            recording,
                            move || Ok(Some(opened)),
                            Some(&cap),
                        )
                        .await;
                        match outcome {
                            Ok(SendOutcome::Accepted { sent }) => {
                                tracing::info!(sha = %hex::encode(sha), sent, "recording HQ asked for uploaded");
                                blocking(&store, move |store| store.recording_uploaded(&sha)).await.map_err(|e| e.to_string())
                            }
                            Ok(SendOutcome::Rejected { reason }) => Err(format!("HQ refused it: {reason}")),
                            Err(error) => Err(error.to_string()),
                        }
                    }
                    Ok(None) => Err("this appliance does not have it".to_owned()),
                    Err(error) => Err(error.to_string()),
                };
                if let Ok(mut set) = in_flight.lock() {
                    set.remove(&sha);
                }
                if let Err(reason) = result {
                    tracing::warn!(sha = %hex::encode(sha), reason, "HQ asked for a recording that could not be sent");
                }
            });
            while uploads.try_join_next().is_some() {}
        }
    };
    tokio::join!(queue, on_demand);
}

/// One run of down entries being committed by [`SiteStore::apply_down_batch`] on a
/// blocking thread. The session hears of the run (and acknowledges it) only once the call
/// returned, so nothing is acknowledged before it is durable. If the pump ends first, the
/// call still runs to its end; what it committed is applied again as a no-op next time.
struct DownCommit {
    task: tokio::task::JoinHandle<Result<(u64, Option<LinkSettings>), StoreError>>,
}

impl DownCommit {
    /// Start committing everything in `pending` (taking it), if there is anything.
    fn start<S: SiteStore>(store: &Arc<S>, pending: &mut Vec<DownEntry>) -> Option<DownCommit> {
        let last = pending.last()?.seq;
        let entries = std::mem::take(pending);
        // The last link settings of the run take effect once it is committed.
        let settings = entries.iter().rev().find_map(|entry| match &entry.event {
            DownEvent::LinkSettings(settings) => Some(settings.clone()),
            _ => None,
        });
        let store = store.clone();
        let task = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            store.apply_down_batch(&entries)?;
            tracing::debug!(entries = entries.len(), last, took = ?started.elapsed(), "down entries committed");
            Ok((last, settings))
        });
        Some(DownCommit { task })
    }

    /// The run's last seq and link settings once committed; pending forever if no run is
    /// out (for `select!`).
    async fn finished(commit: &mut Option<DownCommit>) -> Result<(u64, Option<LinkSettings>), StoreError> {
        match commit {
            Some(commit) => match (&mut commit.task).await {
                Ok(result) => result,
                Err(join) => Err(StoreError::Other(format!("store call panicked: {join}"))),
            },
            None => std::future::pending().await,
        }
    }
}

/// Read the live figures and the wall snapshot every [`LIVE_FIGURES_EVERY`] while the
/// session is up, and hand them to the pump whenever they changed (the snapshot also every
/// [`SITE_LIVE_REFRESH`]).
async fn watch_live_figures<S: SiteStore>(store: Arc<S>, live: mpsc::Sender<Live>) {
    let mut tick = tokio::time::interval(LIVE_FIGURES_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last: Option<LiveFigures> = None;
    let mut last_site: Option<(SiteLive, Instant)> = None;
    loop {
        tick.tick().await;
        match blocking(&store, |store| store.live_figures()).await {
            Ok(Some(now)) => {
                let key = figures_key(&now);
                if last.as_ref() != Some(&key) {
                    if live.send(Live::Figures(now)).await.is_err() {
                        return; // the session ended
                    }
                    last = Some(key);
                }
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "cannot read the live figures"),
        }
        match blocking(&store, |store| store.site_live()).await {
            Ok(Some(now)) => {
                let key = SiteLive { taken_at_ms: 0, ..now.clone() };
                let due = last_site
                    .as_ref()
                    .is_none_or(|(sent, at)| *sent != key || at.elapsed() >= SITE_LIVE_REFRESH);
                if due {
                    if live.send(Live::Site(now)).await.is_err() {
                        return;
                    }
                    last_site = Some((key, Instant::now()));
                }
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "cannot read the wall snapshot"),
        }
    }
}

/// The figures without their timestamp: what decides whether they changed.
fn figures_key(figures: &LiveFigures) -> LiveFigures {
    LiveFigures { taken_at_ms: 0, ..figures.clone() }
}

async fn pump<S: SiteStore>(
    connection: &quinn::Connection,
    mut session: SiteSession,
    store: &Arc<S>,
    status: &tokio::sync::watch::Sender<LinkStatus>,
    shutdown: &CancellationToken,
    cap: &RateCap,
) -> (bool, Result<String, PumpEnd>) {
    let session_epoch = session.epoch();
    // Blob and figure tasks live as long as this session.
    let mut side_tasks = tokio::task::JoinSet::new();
    let (wanted_tx, wanted_rx) = mpsc::unbounded_channel();
    let mut wanted_rx = Some(wanted_rx);
    // Live figures are read by a task of their own: a store call awaited in the pump would
    // wait behind a long down commit, and the pump would stop reading frames meanwhile.
    let (figures_tx, mut figures_rx) = mpsc::channel::<Live>(1);
    let mut online = false;
    let mut stream = match connection.open_bi().await {
        Ok((send, recv)) => FrameStream::new(send, recv),
        Err(error) => return (false, Err(PumpEnd::Transport(error.to_string()))),
    };
    let notify = store.outbox_notify();
    let mut notified = Box::pin(notify.notified());
    notified.as_mut().enable();
    let recordings_wake = Arc::new(Notify::new());
    // Down entries the session delivered and no store call has taken yet, and the store
    // call committing the previous run. While one run commits, the pump goes on reading
    // and decoding frames into the next, so the disk and the network overlap.
    let mut pending_down: Vec<DownEntry> = Vec::new();
    let mut committing: Option<DownCommit> = None;
    loop {
        while let Some(event) = session.poll_event() {
            match event {
                SiteEvent::Established { up_committed } => {
                    let epoch = session_epoch;
                    if let Err(error) = blocking(store, move |store| store.hub_position(epoch, up_committed)).await {
                        return (online, Err(PumpEnd::Store(error)));
                    }
                    tracing::info!(?up_committed, "link online");
                    online = true;
                    status.send_replace(LinkStatus::Online { since: SystemTime::now() });
                    if let Some(wanted_rx) = wanted_rx.take() {
                        side_tasks.spawn(upload_recordings(
                            connection.clone(),
                            store.clone(),
                            cap.clone(),
                            wanted_rx,
                            recordings_wake.clone(),
                        ));
                    }
                    let voices = Arc::new(SiteVoices { store: store.clone() });
                    side_tasks.spawn(blob::serve_blob_streams(connection.clone(), voices, "hub".to_owned()));
                    side_tasks.spawn(watch_live_figures(store.clone(), figures_tx.clone()));
                }
                SiteEvent::RecordingWanted { sha256 } => {
                    tracing::info!(sha = %hex::encode(sha256), "HQ asks for a recording now");
                    let _ = wanted_tx.send(sha256);
                }
                SiteEvent::FetchOutbox { after_seq, limit } => {
                    match blocking(store, move |store| store.outbox_after(after_seq, limit)).await {
                        Ok(entries) => session.outbox_fetched(Instant::now(), entries),
                        Err(error) => return (online, Err(PumpEnd::Store(error))),
                    }
                }
                SiteEvent::ApplyDown(entry) => {
                    // Gathered and committed as one run (see `DownCommit`).
                    pending_down.push(entry);
                }
                SiteEvent::UpAcked { epoch, seq } => {
                    if let Err(error) = blocking(store, move |store| store.outbox_acked(epoch, seq)).await {
                        return (online, Err(PumpEnd::Store(error)));
                    }
                }
                SiteEvent::HubTooOld { seq, needs, hub } => {
                    tracing::warn!(seq, needs, hub, "HQ's hub speaks an older protocol than outbox entry {seq} needs; it waits until the hub is upgraded");
                }
                SiteEvent::Closed(error) => return (online, Err(PumpEnd::Session(error))),
            }
        }
        if committing.is_none() {
            committing = DownCommit::start(store, &mut pending_down);
        }
        while let Some(frame) = session.poll_transmit() {
            if let Err(error) = stream.send::<Frame>(&frame).await {
                return (online, Err(PumpEnd::Transport(error.to_string())));
            }
        }
        let deadline = session.poll_timeout();
        tokio::select! {
            finished = DownCommit::finished(&mut committing) => {
                committing = None;
                if let Err(end) = down_committed(&mut session, cap, finished) {
                    return (online, Err(end));
                }
            }
            received = stream.recv::<Frame>() => {
                if let Some(end) = frame_received(&mut session, connection, received) {
                    return (online, end);
                }
            }
            _ = &mut notified => {
                notified = Box::pin(notify.notified());
                notified.as_mut().enable();
                session.outbox_changed();
                recordings_wake.notify_one();
            }
            _ = sleep_until(deadline) => session.handle_timeout(Instant::now()),
            Some(live) = figures_rx.recv() => match live {
                Live::Figures(figures) => session.send_live_figures(figures),
                Live::Site(site) => session.send_site_live(site),
            },
            _ = shutdown.cancelled() => return (online, Err(PumpEnd::Shutdown)),
        }
    }
}

/// A run of down entries is in the store: the session may acknowledge it, and link settings
/// from HQ in it take effect.
fn down_committed(
    session: &mut SiteSession,
    cap: &RateCap,
    finished: Result<(u64, Option<LinkSettings>), StoreError>,
) -> Result<(), PumpEnd> {
    let (last, settings) = finished.map_err(PumpEnd::Store)?;
    session.down_committed(last);
    if let Some(settings) = settings {
        tracing::info!(cap = ?settings.recording_upload_bytes_per_sec, "recording upload cap set by HQ");
        cap.set(settings.recording_upload_bytes_per_sec);
    }
    Ok(())
}

/// Hands the session what the hub sent; `Some` ends the session with that result.
fn frame_received(
    session: &mut SiteSession,
    connection: &quinn::Connection,
    received: Result<Option<Frame>, WireError>,
) -> Option<Result<String, PumpEnd>> {
    match received {
        Ok(Some(frame)) => session.handle_frame(Instant::now(), frame),
        Ok(None) => return Some(Ok("the hub finished the stream".to_owned())),
        Err(WireError::Frame(frame_error)) => {
            tracing::warn!(%frame_error, "undecodable frame from the hub; closing the connection");
            session.bad_frame(frame_error);
        }
        Err(error) => {
            // A close from the hub carries its reason; prefer it to the read error.
            let reason = match connection.close_reason() {
                Some(close) => close.to_string(),
                None => error.to_string(),
            };
            return Some(Err(PumpEnd::Transport(reason)));
        }
    }
    None
}
