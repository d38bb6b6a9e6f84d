//! The appliance's side of the link: enrollment, the site identity on disk, and the
//! reconnecting sync loop.
//!
//! - [`enroll`] runs once per box: fresh key, CSR and code-keyed proof over an
//!   `ENROLL_ALPN` connection; the verified answer is written to the identity directory
//!   (`site.key` 0600, `site.crt`, `ca.crt`, `site.json`).
//! - [`run`] keeps the box connected: it dials the hub with mutual TLS, pumps frames
//!   between one stream, a [`SiteSession`] and the [`SiteStore`], reports [`LinkStatus`],
//!   and reconnects with capped exponential backoff until shut down.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rcgen::{CertificateParams, DnType, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};
use sync_protocol::enroll::{self, EnrollRequest, EnrollResponse};
use sync_protocol::session::{SessionConfig, SessionError, SiteEvent, SiteSession, SiteStart, close_code};
use sync_protocol::{Frame, PROTOCOL_VERSION, SYNC_ALPN, SiteId};
use tokio_util::sync::CancellationToken;

use crate::ca::{cert_from_pem, cert_to_pem, fingerprint_of, site_of_cert, write_private, write_public};
use crate::server::sleep_until;
use crate::wire::FrameStream;
use crate::{HUB_SERVER_NAME, SiteStore, StoreError};

const SOFTWARE: &str = concat!("outpost-appliance/", env!("CARGO_PKG_VERSION"));
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

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

    fn client_config(&self) -> Result<quinn::ClientConfig, String> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        crate::tls::sync_client_config(self.ca_cert.clone(), vec![self.cert.clone()], key)
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
    let proof = enroll::request_proof(code, &binding, &csr_der);

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
    if !enroll::verify_response_proof(code, &binding, &ca_cert_der, &site_cert_der, &answer) {
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
    tracing::info!(site = site_id, hub, ca = %fingerprint_of(&ca_cert_der), "appliance enrolled");
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
    let mut backoff = INITIAL_BACKOFF;
    let mut endpoint: Option<quinn::Endpoint> = None;
    while !shutdown.is_cancelled() {
        status.send_replace(LinkStatus::Connecting);
        let attempt = connect_and_pump(&identity, &store, &status, &shutdown, &mut endpoint).await;
        let reason = match attempt {
            Attempt::Shutdown => break,
            Attempt::Ended { was_online, reason } => {
                if was_online {
                    backoff = INITIAL_BACKOFF;
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
        backoff = (backoff * 2).min(MAX_BACKOFF);
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
) -> Attempt {
    let remote = match resolve(&identity.hub).await {
        Ok(remote) => remote,
        Err(detail) => return ended(false, format!("cannot resolve {}: {detail}", identity.hub)),
    };
    if endpoint_slot.is_none() {
        let config = match identity.client_config() {
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
    let connection = tokio::select! {
        connected = tokio::time::timeout(CONNECT_TIMEOUT, connecting) => match connected {
            Ok(Ok(connection)) => connection,
            Ok(Err(error)) => {
                let reason = format!(
                    "handshake with {remote} failed: {error}; the appliance speaks {} and trusts only the CA it enrolled with",
                    String::from_utf8_lossy(SYNC_ALPN)
                );
                tracing::warn!("{reason}");
                return ended(false, reason);
            }
            Err(_) => return ended(false, format!("no answer from {remote} within {CONNECT_TIMEOUT:?}")),
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
    let session = SiteSession::new(
        Instant::now(),
        SiteStart { site_id: identity.site_id, epoch, down_applied, software: SOFTWARE.to_owned() },
        SessionConfig::default(),
    );
    let (was_online, outcome) = pump(&connection, session, store, status, shutdown).await;
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

async fn pump<S: SiteStore>(
    connection: &quinn::Connection,
    mut session: SiteSession,
    store: &Arc<S>,
    status: &tokio::sync::watch::Sender<LinkStatus>,
    shutdown: &CancellationToken,
) -> (bool, Result<String, PumpEnd>) {
    let mut online = false;
    let mut stream = match connection.open_bi().await {
        Ok((send, recv)) => FrameStream::new(send, recv),
        Err(error) => return (false, Err(PumpEnd::Transport(error.to_string()))),
    };
    let notify = store.outbox_notify();
    let mut notified = Box::pin(notify.notified());
    notified.as_mut().enable();
    loop {
        while let Some(event) = session.poll_event() {
            match event {
                SiteEvent::Established { up_committed } => {
                    tracing::info!(?up_committed, "link online");
                    online = true;
                    status.send_replace(LinkStatus::Online { since: SystemTime::now() });
                }
                SiteEvent::FetchOutbox { after_seq, limit } => {
                    match blocking(store, move |store| store.outbox_after(after_seq, limit)).await {
                        Ok(entries) => session.outbox_fetched(Instant::now(), entries),
                        Err(error) => return (online, Err(PumpEnd::Store(error))),
                    }
                }
                SiteEvent::ApplyDown(entry) => {
                    let seq = entry.seq;
                    match blocking(store, move |store| store.apply_down(&entry)).await {
                        Ok(()) => session.down_committed(seq),
                        Err(error) => return (online, Err(PumpEnd::Store(error))),
                    }
                }
                SiteEvent::UpAcked { epoch, seq } => {
                    if let Err(error) = blocking(store, move |store| store.outbox_acked(epoch, seq)).await {
                        return (online, Err(PumpEnd::Store(error)));
                    }
                }
                SiteEvent::Closed(error) => return (online, Err(PumpEnd::Session(error))),
            }
        }
        while let Some(frame) = session.poll_transmit() {
            if let Err(error) = stream.send::<Frame>(&frame).await {
                return (online, Err(PumpEnd::Transport(error.to_string())));
            }
        }
        let deadline = session.poll_timeout();
        tokio::select! {
            received = stream.recv::<Frame>() => match received {
                Ok(Some(frame)) => session.handle_frame(Instant::now(), frame),
                Ok(None) => return (online, Ok("the hub finished the stream".to_owned())),
                Err(error) => {
                    // A close from the hub carries its reason; prefer it to the read error.
                    let reason = match connection.close_reason() {
                        Some(close) => close.to_string(),
                        None => error.to_string(),
                    };
                    return (online, Err(PumpEnd::Transport(reason)));
                }
            },
            _ = &mut notified => {
                notified = Box::pin(notify.notified());
                notified.as_mut().enable();
                session.outbox_changed();
            }
            _ = sleep_until(deadline) => session.handle_timeout(Instant::now()),
            _ = shutdown.cancelled() => return (online, Err(PumpEnd::Shutdown)),
        }
    }
}
