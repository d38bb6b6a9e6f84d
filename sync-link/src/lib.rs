//! The sync link's driver: QUIC (quinn) with mutual TLS (rustls), the hub's certificate
//! authority, and site enrollment.
//!
//! - The hub owns a CA ([`ca::HubCa`]) created on first start. A site is enrolled with a
//!   one-time code; it receives a certificate whose subject names its site id, and from then
//!   on every connection presents it. The hub's store keeps that certificate's SHA-256 as
//!   the site's identity: one box holds a site until HQ retires it.
//! - [`server::bind`] / [`server::Server::run`] accept sites, checks the certificate chain and the site id, then
//!   pumps frames between the connection and a [`HubStore`].
//! - [`client::run`] keeps one appliance connected, reconnecting with backoff, and pumps
//!   frames between the connection and a [`SiteStore`].
//! - Recordings (site to hub) and voice files (hub to site) travel apart from the rows, each
//!   on a QUIC stream of its own, addressed by SHA-256 and resumed from what the receiver
//!   already holds ([`blob`]). Recording uploads respect the cap HQ sets in
//!   [`sync_protocol::LinkSettings`]; HQ can ask for one out of turn
//!   ([`server::RecordingRequests`]).
//! - Live figures go up as a latest-value frame, not through the outbox.
//! - With the `test-utils` feature (tests, benchmarks and examples only; the hub and the
//!   box never enable it): `relay::UdpRelay` sits between a site and the hub to drop,
//!   delay or cut datagrams, the fault injection of the partition and crash tests; `bench`
//!   is the batch-down benchmark harness.
//!
//! The stores are the only place state lives: this crate commits nothing itself, and it
//! acknowledges an entry only after the store's call that commits it has returned.
//!
//! Log sequence numbers are consecutive from 1: the site's outbox within each epoch, and
//! the hub's down log per site. A hole closes the session with a store error (see
//! `sync_protocol::session`), because the receiver could never move past it.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::time::Duration;

use sync_protocol::enroll::CodeKey;
use sync_protocol::{DownEntry, LiveFigures, LinkSettings, SiteId, SiteLive, UpEntry};

use crate::blob::{BlobCheck, BlobRef, OpenBlob};

#[cfg(feature = "test-utils")]
pub mod bench;
pub mod blob;
pub mod ca;
pub mod client;
#[cfg(feature = "test-utils")]
pub mod relay;
#[cfg(feature = "test-utils")]
pub mod old_peer;
pub mod server;
mod tls;
mod wire;

/// Timers of the link. The defaults suit a WAN; tests shorten them to see a partition
/// end a connection within seconds.
#[derive(Debug, Clone)]
pub struct LinkTuning {
    /// QUIC keep-alive interval; well inside `idle_timeout`.
    pub keep_alive: Duration,
    /// A connection that hears nothing for this long is dead.
    pub idle_timeout: Duration,
    /// The appliance's first wait before reconnecting; doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// How long the appliance waits for the hub to answer a handshake.
    pub connect_timeout: Duration,
}

impl Default for LinkTuning {
    fn default() -> Self {
        LinkTuning {
            keep_alive: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(20),
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Name the hub's server certificate carries; the appliance checks it whatever address
/// it dials, since sites reach HQ by IP, NAT or DNS alike.
pub const HUB_SERVER_NAME: &str = "outpost-hub";

/// Why the hub's server could not start.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The UDP socket could not be bound (port in use, no permission).
    #[error("cannot bind the sync link on {addr}: {source}; pick a free port or stop the other process")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    /// The TLS configuration could not be built from the hub's CA.
    #[error("cannot build the link's TLS configuration: {0}")]
    Tls(String),
}

/// What the appliance's store offers the link.
pub trait SiteStore: Send + Sync + 'static {
    /// The store's epoch and the last down-log entry it committed.
    fn sync_position(&self) -> StoreResult<(u64, u64)>;
    /// Outbox entries after `after_seq` of the current epoch, oldest first, at most `limit`.
    fn outbox_after(&self, after_seq: u64, limit: usize) -> StoreResult<Vec<UpEntry>>;
    /// HQ committed everything up to `seq` of `epoch`: the store may drop those entries.
    fn outbox_acked(&self, epoch: u64, seq: u64) -> StoreResult<()>;
    /// HQ accepted the hello and holds the outbox of `epoch` up to `up_committed`; called
    /// before any acknowledgement or fetch of the session. A store restored from a backup
    /// finds here that HQ holds entries it no longer has, and renumbers what it wrote since
    /// the restore after them. Nothing to do by default.
    fn hub_position(&self, _epoch: u64, _up_committed: Option<u64>) -> StoreResult<()> {
        Ok(())
    }
    /// Apply one down-log entry and record `entry.seq` as applied, in one transaction.
    /// Applying an entry at or below the recorded position must change nothing.
    fn apply_down(&self, entry: &DownEntry) -> StoreResult<()>;
    /// Apply consecutive down-log entries (in seq order) and record the last as applied,
    /// committing them before returning. The same as [`SiteStore::apply_down`] on each in
    /// turn, which is what the default does; a store should commit the whole run in one
    /// transaction, since a batch of a million rows arrives as hundreds of chunks and one
    /// disk sync each is most of the time it takes. Entries at or below the recorded
    /// position change nothing. On an error, entries before the failing one may have been
    /// committed: they are not acknowledged, and applying them again is a no-op.
    fn apply_down_batch(&self, entries: &[DownEntry]) -> StoreResult<()> {
        entries.iter().try_for_each(|entry| self.apply_down(entry))
    }
    /// Wakes the link when the outbox has something new (polled after each notification).
    /// The link also looks for new recordings to upload when it fires.
    fn outbox_notify(&self) -> std::sync::Arc<tokio::sync::Notify>;

    /// Recordings HQ does not have yet, oldest first, at most `limit`. The default has
    /// none, so a store without recordings uploads nothing.
    fn pending_recordings(&self, limit: usize) -> StoreResult<Vec<BlobRef>> {
        let _ = limit;
        Ok(Vec::new())
    }
    /// Open a recording by its SHA-256 for reading; `None` if the store no longer has it.
    fn open_recording(&self, sha256: &[u8; 32]) -> StoreResult<Option<OpenBlob>> {
        let _ = sha256;
        Ok(None)
    }
    /// HQ holds this recording and checked its hash: stop offering it.
    fn recording_uploaded(&self, sha256: &[u8; 32]) -> StoreResult<()> {
        let _ = sha256;
        Ok(())
    }
    /// The last [`LinkSettings`] applied from the down log (they survive a restart; the
    /// link also picks up new ones as it applies them). The default has none: no cap.
    fn link_settings(&self) -> StoreResult<Option<LinkSettings>> {
        Ok(None)
    }
    /// The site's live figures now; the link sends them whenever they change (it looks
    /// every 500 ms). The default has none and sends nothing.
    fn live_figures(&self) -> StoreResult<Option<LiveFigures>> {
        Ok(None)
    }
    /// The site as HQ's monitoring wall shows it, now; read and sent like
    /// [`SiteStore::live_figures`] (on change, and again every [`client::SITE_LIVE_REFRESH`]
    /// even if unchanged). The default has none and sends nothing.
    fn site_live(&self) -> StoreResult<Option<SiteLive>> {
        Ok(None)
    }
    /// Bytes of the voice file `sha256` the store already holds (its full size once
    /// complete). The default holds nothing.
    fn voice_held(&self, sha256: &[u8; 32]) -> StoreResult<u64> {
        let _ = sha256;
        Ok(0)
    }
    /// Append `bytes` at `offset` (always what [`SiteStore::voice_held`] reported) to the
    /// partial voice file.
    fn voice_append(&self, sha256: &[u8; 32], offset: u64, bytes: &[u8]) -> StoreResult<()> {
        let _ = (sha256, offset, bytes);
        Err(StoreError::Other("this site store does not implement SiteStore::voice_append".to_owned()))
    }
    /// All bytes arrived: check the SHA-256 of the whole; keep it only if it matches, and
    /// discard the partial file if not.
    fn voice_finish(&self, sha256: &[u8; 32]) -> StoreResult<BlobCheck> {
        let _ = sha256;
        Err(StoreError::Other("this site store does not implement SiteStore::voice_finish".to_owned()))
    }
}

/// A certificate the hub issued, as the enrollment closure of [`HubStore::enroll_site`]
/// returns it.
pub type IssuedCert = Vec<u8>;

/// SHA-256 of a certificate's DER: how the hub's store names a box's identity.
pub fn cert_sha256(der: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(der).into()
}

/// Why the hub will not enroll a box; the text is what the technician reads on the box.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrollRefusal {
    /// No code the hub issued matches.
    #[error("the enrollment code is unknown: type it as HQ showed it, or ask HQ for a new code")]
    UnknownCode,
    /// The code's lifetime ran out before it was used.
    #[error("the enrollment code expired; ask HQ for a new code")]
    Expired,
    /// The code already enrolled a box (or a failed enrollment used it up).
    #[error("the enrollment code was already used; a code works once: ask HQ for a new code")]
    AlreadyUsed,
    /// HQ issued a newer code for the same site, which revoked this one.
    #[error("the enrollment code was replaced by a newer one; use the newest code HQ issued for this site")]
    Replaced,
    /// The site already has a box; only one holds a site at a time.
    #[error(
        "site {site} already has an enrolled box (certificate {fingerprint}); HQ must retire that box on the console before another one can enroll"
    )]
    SiteTaken { site: SiteId, fingerprint: String },
    /// The hub could not issue the certificate (the code is not used up).
    #[error("the hub cannot issue a certificate: {0}")]
    Issue(String),
}

/// What the hub's store offers the link.
pub trait HubStore: Send + Sync + 'static {
    /// Whether the box presenting the certificate with SHA-256 `cert_sha256` may hold
    /// `site`'s link: the site is enrolled, not disabled, and that certificate is its
    /// current identity (not one HQ retired). Asked at each hello, and again whenever
    /// [`HubStore::down_notify`] fires, so a store that retires an identity wakes it to
    /// close the retired box's live connection.
    fn site_allowed(&self, site: SiteId, cert_sha256: &[u8; 32]) -> StoreResult<bool>;
    /// The highest outbox seq of `epoch` committed for this site, if any.
    fn up_committed(&self, site: SiteId, epoch: u64) -> StoreResult<Option<u64>>;
    /// Apply one outbox entry idempotently (unique on `(site, epoch, seq)`), committing it
    /// before returning. An entry already applied with the same content is a no-op; one
    /// already applied with *different* content is [`StoreError::Conflict`].
    fn apply_up(&self, site: SiteId, entry: &UpEntry) -> StoreResult<()>;
    /// Apply consecutive outbox entries (in seq order), committing them before returning.
    /// The same as [`HubStore::apply_up`] on each in turn, which is what the default does;
    /// a store should commit the whole run in one transaction, since a site catching up
    /// after days offline sends tens of thousands of entries and one disk sync each would
    /// take minutes. On an error, entries before the failing one may have been committed:
    /// they are not acknowledged, and applying them again is a no-op.
    fn apply_up_batch(&self, site: SiteId, entries: &[UpEntry]) -> StoreResult<()> {
        entries.iter().try_for_each(|entry| self.apply_up(site, entry))
    }
    /// Down-log entries for `site` after `after_seq`, oldest first, at most `limit`.
    fn down_after(&self, site: SiteId, after_seq: u64, limit: usize) -> StoreResult<Vec<DownEntry>>;
    /// The site committed everything up to `seq`.
    fn down_acked(&self, site: SiteId, seq: u64) -> StoreResult<()>;
    /// `entry` was not sent to `site`, whose protocol version is older than the entry's
    /// event (it got `DownEvent::held_back_stand_in` at that seq): keep the event, committed
    /// before returning, to append it again once the site speaks a version that reads it
    /// ([`HubStore::site_speaks`]), and show at HQ that the site needs an upgrade. The
    /// default refuses, so a store that cannot keep it never loses an event silently.
    fn down_held_back(&self, site: SiteId, entry: &DownEntry) -> StoreResult<()> {
        Err(StoreError::Other(format!(
            "site {site} is too old for down entry {} and this hub store cannot hold it back; upgrade the site",
            entry.seq
        )))
    }
    /// `site`'s hello speaks protocol `version` and has applied the down log up to
    /// `down_applied` (asked before the session starts): append to its down log, in their
    /// order, the events held back from it at seqs up to `down_applied` that `version` reads,
    /// and forget them (and those after `down_applied`, which this session sends from the
    /// log itself). Nothing is held back by default.
    fn site_speaks(&self, _site: SiteId, _version: u32, _down_applied: u64) -> StoreResult<()> {
        Ok(())
    }
    /// Wakes the link for `site` when its down log grows, or its identity changes.
    fn down_notify(&self, site: SiteId) -> std::sync::Arc<tokio::sync::Notify>;
    /// The site's link came up or went down (for monitoring).
    fn link_state(&self, site: SiteId, online: bool);

    /// Enroll a box: find the code whose [`CodeKey`] `proof_matches` (the appliance never
    /// sends its code, only an HMAC keyed by the key; see `sync_protocol::enroll`), and if
    /// it is pending and its site has no box, call `issue(site)` for the certificate,
    /// record the certificate's SHA-256 as the site's identity and use the code up, all or
    /// nothing. Otherwise say why not: the store keeps the keys of used, expired and
    /// replaced codes so that a technician learns which it was.
    fn enroll_site(
        &self,
        proof_matches: &dyn Fn(&CodeKey) -> bool,
        issue: &dyn Fn(SiteId) -> Result<IssuedCert, String>,
    ) -> StoreResult<Result<(SiteId, IssuedCert), EnrollRefusal>>;

    /// Bytes of `site`'s recording `sha256` HQ already holds (its full size once complete).
    /// Uploads resume from here. The default holds nothing.
    fn recording_held(&self, site: SiteId, sha256: &[u8; 32]) -> StoreResult<u64> {
        let _ = (site, sha256);
        Ok(0)
    }
    /// Append `bytes` at `offset` (always what [`HubStore::recording_held`] reported) to
    /// the partial recording.
    fn recording_append(&self, site: SiteId, sha256: &[u8; 32], offset: u64, bytes: &[u8]) -> StoreResult<()> {
        let _ = (site, sha256, offset, bytes);
        Err(StoreError::Other("this hub store does not implement HubStore::recording_append".to_owned()))
    }
    /// All bytes arrived: check the SHA-256 of the whole and keep it only if it matches
    /// (discarding the partial file if not). [`blob::BlobDir`] does all three.
    fn recording_finish(&self, site: SiteId, sha256: &[u8; 32]) -> StoreResult<BlobCheck> {
        let _ = (site, sha256);
        Err(StoreError::Other("this hub store does not implement HubStore::recording_finish".to_owned()))
    }
    /// The site's latest live figures arrived (keep only the latest; not durable).
    fn live_figures(&self, site: SiteId, figures: LiveFigures) {
        let _ = (site, figures);
    }
    /// The site's latest wall snapshot arrived (keep only the latest).
    fn site_live(&self, site: SiteId, live: SiteLive) {
        let _ = (site, live);
    }
    /// Voice files `site` should hold (those its down log names and not deleted). The link
    /// offers each on connect and when the down log grows; the site answers how much it
    /// has, so a complete file costs one round trip. The default has none.
    fn voice_files_for(&self, site: SiteId) -> StoreResult<Vec<BlobRef>> {
        let _ = site;
        Ok(Vec::new())
    }
    /// Open a voice file by its SHA-256; `None` if HQ no longer has it.
    fn open_voice(&self, sha256: &[u8; 32]) -> StoreResult<Option<OpenBlob>> {
        let _ = sha256;
        Ok(None)
    }
}

/// Errors a store reports to the link.
mod store_error {
    /// A store call's failure.
    #[derive(Debug, thiserror::Error)]
    pub enum StoreError {
        /// The same `(site, epoch, seq)` arrived with different content: the site was
        /// probably restored from an old backup. Raised as an alarm, never merged.
        #[error("outbox entry {epoch}/{seq} conflicts with what HQ already holds")]
        Conflict { epoch: u64, seq: u64 },
        /// Anything else (disk, SQLite); the link closes and retries later.
        #[error("{0}")]
        Other(String),
    }
    pub type StoreResult<T> = std::result::Result<T, StoreError>;
}
pub use store_error::{StoreError, StoreResult};
