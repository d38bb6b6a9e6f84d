//! The sans-IO sync session: the site's and the hub's state machines for one connection.
//!
//! Neither machine does I/O or touches a store. The driver (sync-link) feeds them and
//! carries out what they ask:
//!
//! - [`SiteSession::handle_frame`] / [`HubSession::handle_frame`] take a received [`Frame`]
//!   and the current time;
//! - `poll_transmit()` yields frames to send, `poll_event()` yields work for the driver
//!   (fetch entries from a store, apply an entry, record an acknowledgement, or the session
//!   closed and why), `poll_timeout()` / `handle_timeout()` drive the hello deadline;
//! - the driver reports store results back: `outbox_fetched`, `down_committed`, `accept`,
//!   `up_committed`, `down_fetched`, and the "log grew" nudges `outbox_changed` /
//!   `down_changed`.
//!
//! Both directions share one shape. The owner of a log ships entries in sequence order with
//! at most `window` unacknowledged ([`Outgoing`]); the receiver delivers them to its store in
//! order exactly once per session, parks early arrivals, ignores duplicates, and acknowledges
//! cumulatively what the store has *committed* ([`Incoming`]). Sequence numbers are
//! consecutive from 1 in each log (the site's per-epoch outbox, the hub's per-site down log),
//! so a hole is a store fault that closes the session with [`SessionError::LogGap`] instead
//! of stalling silently.
//!
//! Versions: the site's hello speaks the version TLS negotiated (the newest both offered,
//! [`crate::sync_alpns`]); the hub serves any from [`MIN_PROTOCOL_VERSION`] to
//! [`PROTOCOL_VERSION`] and answers in the site's. A down entry whose event is newer than the
//! site's version ([`DownEvent::since`]) is not sent: the site gets
//! [`DownEvent::held_back_stand_in`] at its seq (its cursor needs every seq) and the driver
//! keeps the entry ([`HubEvent::HeldBack`]) to append it again once the site is upgraded.
//! A site whose hub is older stops its outbox before the first entry the hub cannot read
//! ([`SiteEvent::HubTooOld`]): upgrade the hub first.

use std::collections::VecDeque;

mod window;
use window::{Incoming, Outgoing};
use std::time::{Duration, Instant};

use crate::framing::FrameError;
use crate::messages::{
    ClientHello, DownEntry, DownEvent, Frame, LiveFigures, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, ServerHello, SiteId,
    SiteLive, UpEntry,
};

/// QUIC application close codes used by the link, so both ends' logs agree on why.
pub mod close_code {
    /// Orderly close (shutdown, or the peer went away).
    pub const NORMAL: u32 = 0;
    /// The hub refused the session (version, identity, disabled site, bad enrollment code).
    pub const REFUSED: u32 = 1;
    /// The peer broke the protocol (unexpected or undecodable frame, bad ack).
    pub const PROTOCOL: u32 = 2;
    /// An outbox entry conflicts with what HQ holds: raised as an alarm, never merged.
    pub const CONFLICT: u32 = 3;
    /// A store call failed or a log has a hole; retried after a reconnect.
    pub const STORE: u32 = 4;
}

/// Tuning of a session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Most entries sent and not yet acknowledged, per direction.
    pub window: u64,
    /// How long the hub waits for the site's hello, and the site for the hub's answer.
    pub hello_timeout: Duration,
    /// How far past its position a receiver parks early entries before calling the peer
    /// broken. A correct sender never gets further ahead than its window.
    pub max_ahead: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig { window: 64, hello_timeout: Duration::from_secs(10), max_ahead: 4096 }
    }
}

/// Which log an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log {
    /// The site's outbox (entries going up).
    Up,
    /// The hub's per-site down log.
    Down,
}

impl std::fmt::Display for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Log::Up => f.write_str("site outbox"),
            Log::Down => f.write_str("hub down log"),
        }
    }
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The peers speak different protocol versions; upgrade the older one.
    #[error(
        "protocol version mismatch: this side speaks {ours}, the peer {theirs}; upgrade the older of hub and appliance"
    )]
    VersionMismatch { ours: u32, theirs: u32 },
    /// The hello names a different site than the certificate the connection presented.
    #[error(
        "hello claims site {hello} but the certificate belongs to site {certificate}; re-enroll the appliance"
    )]
    SiteMismatch { certificate: SiteId, hello: SiteId },
    /// The hub refused the session; `reason` comes from the hub.
    #[error("hub refused the session: {reason}")]
    Refused { reason: String },
    /// No hello within the configured time.
    #[error("no hello within {0:?}; the peer is not speaking the sync protocol")]
    HelloTimeout(Duration),
    /// A frame that has no place in the session's current state.
    #[error("unexpected {frame} frame while {state}")]
    UnexpectedFrame { frame: &'static str, state: &'static str },
    /// An entry or acknowledgement for another epoch than the session's.
    #[error("{log} entry of epoch {got} in a session of epoch {expected}")]
    WrongEpoch { log: Log, expected: u64, got: u64 },
    /// The peer acknowledged an entry never sent to it.
    #[error("{log}: peer acknowledged seq {acked} but only {sent} was sent")]
    AckBeyondSent { log: Log, acked: u64, sent: u64 },
    /// The sending store skipped a sequence number (pruned too early, or restored from an
    /// old backup); the receiver could never catch up past the hole.
    #[error("{log} has a hole: expected seq {expected}, the store returned {found}")]
    LogGap { log: Log, expected: u64, found: u64 },
    /// The peer sent an entry far beyond anything it could have in flight.
    #[error("{log}: peer sent seq {seq} while this side is at {position}")]
    TooFarAhead { log: Log, seq: u64, position: u64 },
    /// The driver reported a commit for an entry the session never delivered (a driver bug).
    #[error("{log}: store committed seq {seq} but only {delivered} was delivered")]
    CommitBeyondDelivered { log: Log, seq: u64, delivered: u64 },
    /// The peer's bytes are not a valid frame (truncated, oversized, unknown kind,
    /// malformed). The stream cannot be trusted past it, so the session ends.
    #[error("bad frame from the peer: {0}")]
    BadFrame(FrameError),
}

impl SessionError {
    /// The QUIC application close code for this error ([`close_code`]).
    pub fn close_code(&self) -> u32 {
        match self {
            SessionError::VersionMismatch { .. }
            | SessionError::SiteMismatch { .. }
            | SessionError::Refused { .. } => close_code::REFUSED,
            SessionError::LogGap { .. } => close_code::STORE,
            SessionError::HelloTimeout(_)
            | SessionError::UnexpectedFrame { .. }
            | SessionError::WrongEpoch { .. }
            | SessionError::AckBeyondSent { .. }
            | SessionError::TooFarAhead { .. }
            | SessionError::CommitBeyondDelivered { .. }
            | SessionError::BadFrame(_) => close_code::PROTOCOL,
        }
    }
}

/// A short name of a frame's kind, for logs.
pub fn frame_kind(frame: &Frame) -> &'static str {
    match frame {
        Frame::ClientHello(_) => "ClientHello",
        Frame::ServerHello(_) => "ServerHello",
        Frame::Refused { .. } => "Refused",
        Frame::Up(_) => "Up",
        Frame::UpAck { .. } => "UpAck",
        Frame::Down(_) => "Down",
        Frame::DownAck { .. } => "DownAck",
        Frame::Ping => "Ping",
        Frame::LiveFigures(_) => "LiveFigures",
        Frame::WantRecording { .. } => "WantRecording",
        Frame::SiteLive(_) => "SiteLive",
    }
}

/// What a [`SiteSession`] asks of its driver.
#[derive(Debug, Clone, PartialEq)]
pub enum SiteEvent {
    /// The hub accepted the hello.
    Established { up_committed: Option<u64> },
    /// Read outbox entries after `after_seq` (at most `limit`) and hand them to
    /// [`SiteSession::outbox_fetched`].
    FetchOutbox { after_seq: u64, limit: usize },
    /// Apply this down entry and report [`SiteSession::down_committed`] once committed.
    ApplyDown(DownEntry),
    /// HQ committed the outbox up to `seq` of `epoch`; the store may drop those entries.
    UpAcked { epoch: u64, seq: u64 },
    /// HQ wants this recording before its turn: upload it now.
    RecordingWanted { sha256: [u8; 32] },
    /// The hub speaks an older protocol than the outbox entry `seq` needs: the outbox stops
    /// before it for this connection (nothing is skipped or reordered) until the hub is
    /// upgraded. Entries before it still go up.
    HubTooOld { seq: u64, needs: u32, hub: u32 },
    /// The session is over; send what `poll_transmit` still yields, then close with
    /// [`SessionError::close_code`].
    Closed(SessionError),
}

/// What a [`HubSession`] asks of its driver.
#[derive(Debug, Clone, PartialEq)]
pub enum HubEvent {
    /// A well-formed hello for the certificate's site: check the site is allowed, look up
    /// what HQ holds of its outbox, then call [`HubSession::accept`] or [`HubSession::refuse`].
    Hello { site_id: SiteId, epoch: u64, down_applied: u64, software: String },
    /// Read down-log entries after `after_seq` (at most `limit`) and hand them to
    /// [`HubSession::down_fetched`].
    FetchDown { after_seq: u64, limit: usize },
    /// Apply this outbox entry and report [`HubSession::up_committed`] once committed.
    ApplyUp(UpEntry),
    /// The site committed the down log up to `seq`.
    DownAcked { seq: u64 },
    /// The site's latest live figures (replace whatever was shown before).
    LiveFigures(LiveFigures),
    /// The site's latest wall snapshot (replace whatever was shown before).
    SiteLive(Box<SiteLive>),
    /// The site speaks a protocol too old for this down entry's event: the site receives
    /// [`DownEvent::held_back_stand_in`] at its seq instead. The driver records the entry
    /// durably (to append it to the site's down log again once the site speaks a version
    /// that reads it) before it next sends what `poll_transmit` yields, which holds the
    /// stand-in: the event comes before the frame in every drain.
    HeldBack(DownEntry),
    /// The session is over; send what `poll_transmit` still yields, then close with
    /// [`SessionError::close_code`].
    Closed(SessionError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitingHello,
    AwaitingAccept,
    Established,
    Closed,
}

impl Phase {
    fn describe(self) -> &'static str {
        match self {
            Phase::AwaitingHello => "waiting for the hello",
            Phase::AwaitingAccept => "checking the hello",
            Phase::Established => "established",
            Phase::Closed => "closed",
        }
    }
}

/// Where the site's store stands when a connection starts.
#[derive(Debug, Clone)]
pub struct SiteStart {
    pub site_id: SiteId,
    pub epoch: u64,
    pub down_applied: u64,
    pub software: String,
}

/// The appliance's side of one connection.
#[derive(Debug)]
pub struct SiteSession {
    config: SessionConfig,
    /// The protocol version this connection speaks (the hello's).
    version: u32,
    /// The outbox reached an entry the hub cannot read: nothing more goes up this session.
    up_blocked: bool,
    epoch: u64,
    phase: Phase,
    hello_deadline: Option<Instant>,
    up: Option<Outgoing>,
    down: Incoming<DownEntry>,
    transmits: VecDeque<Frame>,
    /// The newest live figures not yet sent; a newer snapshot replaces an unsent one.
    live: Option<LiveFigures>,
    /// The newest wall snapshot not yet sent, likewise.
    site_live: Option<Box<SiteLive>>,
    events: VecDeque<SiteEvent>,
    error: Option<SessionError>,
}

impl SiteSession {
    /// A new session speaking [`PROTOCOL_VERSION`]; its first transmit is the [`ClientHello`].
    pub fn new(now: Instant, start: SiteStart, config: SessionConfig) -> Self {
        Self::speaking(now, start, config, PROTOCOL_VERSION)
    }

    /// A new session speaking `version`, the one the connection negotiated
    /// ([`crate::alpn_version`] of the TLS ALPN): a hub of an older release is spoken to in
    /// its version. Clamped to the versions this build speaks.
    pub fn speaking(now: Instant, start: SiteStart, config: SessionConfig, version: u32) -> Self {
        let version = version.clamp(MIN_PROTOCOL_VERSION, PROTOCOL_VERSION);
        let mut transmits = VecDeque::new();
        transmits.push_back(Frame::ClientHello(ClientHello {
            protocol_version: version,
            site_id: start.site_id,
            epoch: start.epoch,
            down_applied: start.down_applied,
            software: start.software,
        }));
        SiteSession {
            hello_deadline: Some(now + config.hello_timeout),
            down: Incoming::new(Log::Down, start.down_applied, config.max_ahead),
            config,
            version,
            up_blocked: false,
            epoch: start.epoch,
            phase: Phase::AwaitingHello,
            up: None,
            transmits,
            live: None,
            site_live: None,
            events: VecDeque::new(),
            error: None,
        }
    }

    pub fn handle_frame(&mut self, _now: Instant, frame: Frame) {
        if self.phase == Phase::Closed {
            return;
        }
        if let Err(error) = self.on_frame(frame) {
            self.fail(error);
        }
        self.pump();
    }

    fn on_frame(&mut self, frame: Frame) -> Result<(), SessionError> {
        match (self.phase, frame) {
            (_, Frame::Ping) => Ok(()),
            (_, Frame::Refused { reason }) => Err(SessionError::Refused { reason }),
            (Phase::AwaitingHello, Frame::ServerHello(hello)) => self.on_server_hello(hello),
            (Phase::Established, Frame::UpAck { epoch, seq }) => {
                if epoch != self.epoch {
                    return Err(SessionError::WrongEpoch { log: Log::Up, expected: self.epoch, got: epoch });
                }
                let Some(up) = self.up.as_mut() else {
                    return Err(SessionError::UnexpectedFrame { frame: "UpAck", state: "established" });
                };
                if let Some(acked) = up.ack(seq)? {
                    self.events.push_back(SiteEvent::UpAcked { epoch, seq: acked });
                }
                Ok(())
            }
            (Phase::Established, Frame::Down(entry)) => {
                for ready in self.down.receive(entry.seq, entry)? {
                    self.events.push_back(SiteEvent::ApplyDown(ready));
                }
                Ok(())
            }
            (Phase::Established, Frame::WantRecording { sha256 }) => {
                self.events.push_back(SiteEvent::RecordingWanted { sha256 });
                Ok(())
            }
            (phase, other) => {
                Err(SessionError::UnexpectedFrame { frame: frame_kind(&other), state: phase.describe() })
            }
        }
    }

    fn on_server_hello(&mut self, hello: ServerHello) -> Result<(), SessionError> {
        if hello.protocol_version != self.version {
            return Err(SessionError::VersionMismatch { ours: self.version, theirs: hello.protocol_version });
        }
        self.phase = Phase::Established;
        self.hello_deadline = None;
        self.up = Some(Outgoing::new(Log::Up, hello.up_committed.unwrap_or(0), self.config.window));
        self.events.push_back(SiteEvent::Established { up_committed: hello.up_committed });
        if let Some(seq) = hello.up_committed {
            // The ack of a previous connection may have been lost with it.
            self.events.push_back(SiteEvent::UpAcked { epoch: self.epoch, seq });
        }
        Ok(())
    }

    /// The outbox entries a [`SiteEvent::FetchOutbox`] asked for.
    pub fn outbox_fetched(&mut self, _now: Instant, entries: Vec<UpEntry>) {
        if self.phase != Phase::Established {
            return;
        }
        if let Some(wrong) = entries.iter().find(|entry| entry.epoch != self.epoch) {
            let error = SessionError::WrongEpoch { log: Log::Up, expected: self.epoch, got: wrong.epoch };
            self.fail(error);
            return;
        }
        let mut entries = entries;
        // An entry the hub cannot read stops the outbox here: skipping it would lose it and
        // sending it would break the hub's decoder, so the rest waits for the hub's upgrade.
        let blocked_at = entries.iter().position(|entry| entry.event.since() > self.version);
        let blocked = blocked_at.map(|at| (entries[at].seq, entries[at].event.since()));
        if let Some(at) = blocked_at {
            entries.truncate(at);
        }
        let seqs: Vec<u64> = entries.iter().map(|entry| entry.seq).collect();
        let Some(up) = self.up.as_mut() else { return };
        if let Err(error) = up.fetched(&seqs) {
            self.fail(error);
            return;
        }
        self.transmits.extend(entries.into_iter().map(Frame::Up));
        if let Some((seq, needs)) = blocked {
            self.up_blocked = true;
            self.events.push_back(SiteEvent::HubTooOld { seq, needs, hub: self.version });
        }
        self.pump();
    }

    /// The protocol version this session speaks.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The store epoch the hello announced.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The outbox grew (the store's notify fired).
    pub fn outbox_changed(&mut self) {
        if let Some(up) = self.up.as_mut() {
            up.changed();
        }
        self.pump();
    }

    /// Send these live figures as soon as the sync stream is free. Only the latest counts:
    /// a snapshot still waiting is replaced. Dropped before the hub accepted the hello.
    pub fn send_live_figures(&mut self, figures: LiveFigures) {
        if self.phase == Phase::Established {
            self.live = Some(figures);
        }
    }

    /// Send this wall snapshot as soon as the sync stream is free; like
    /// [`SiteSession::send_live_figures`], only the latest counts.
    pub fn send_site_live(&mut self, mut live: SiteLive) {
        if self.phase == Phase::Established {
            // A version-2 hub cannot decode an alarm kind added after it: leave those out
            // rather than have it close the session over the whole snapshot.
            let version = self.version;
            live.alarms.retain(|alarm| alarm.since() <= version);
            self.site_live = Some(Box::new(live));
        }
    }

    /// Whether the hub has accepted the session (entries and figures flow).
    pub fn is_established(&self) -> bool {
        self.phase == Phase::Established
    }

    /// The driver could not decode the peer's bytes: close as a protocol error.
    pub fn bad_frame(&mut self, error: FrameError) {
        self.fail(SessionError::BadFrame(error));
    }

    /// The store committed the down log up to `seq`.
    pub fn down_committed(&mut self, seq: u64) {
        if self.phase == Phase::Closed {
            return;
        }
        if let Err(error) = self.down.committed(seq) {
            self.fail(error);
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.hello_deadline
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(deadline) = self.hello_deadline
            && now >= deadline
            && self.phase == Phase::AwaitingHello
        {
            self.fail(SessionError::HelloTimeout(self.config.hello_timeout));
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Frame> {
        if let Some(frame) = self.transmits.pop_front() {
            return Some(frame);
        }
        if self.phase == Phase::Closed {
            return None;
        }
        if let Some(seq) = self.down.poll_ack() {
            return Some(Frame::DownAck { seq });
        }
        if let Some(figures) = self.live.take() {
            return Some(Frame::LiveFigures(figures));
        }
        self.site_live.take().map(|live| Frame::SiteLive(*live))
    }

    pub fn poll_event(&mut self) -> Option<SiteEvent> {
        self.events.pop_front()
    }

    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Why the session closed, if it did.
    pub fn error(&self) -> Option<&SessionError> {
        self.error.as_ref()
    }

    fn pump(&mut self) {
        if self.phase != Phase::Established || self.up_blocked {
            return;
        }
        if let Some(up) = self.up.as_mut()
            && let Some((after_seq, limit)) = up.want_fetch()
        {
            self.events.push_back(SiteEvent::FetchOutbox { after_seq, limit });
        }
    }

    fn fail(&mut self, error: SessionError) {
        if self.phase == Phase::Closed {
            return;
        }
        self.phase = Phase::Closed;
        self.hello_deadline = None;
        self.transmits.clear();
        self.events.push_back(SiteEvent::Closed(error.clone()));
        self.error = Some(error);
    }
}

/// The hub's side of one connection, for the site named by the peer's certificate.
#[derive(Debug)]
pub struct HubSession {
    config: SessionConfig,
    certificate_site: SiteId,
    software: String,
    phase: Phase,
    epoch: u64,
    /// The protocol version the site's hello spoke; the session answers and sends in it.
    peer_version: u32,
    hello_deadline: Option<Instant>,
    down_start: u64,
    up: Option<Incoming<UpEntry>>,
    down: Option<Outgoing>,
    transmits: VecDeque<Frame>,
    events: VecDeque<HubEvent>,
    error: Option<SessionError>,
}

impl HubSession {
    /// A new session for a connection whose certificate names `certificate_site`.
    pub fn new(now: Instant, certificate_site: SiteId, software: String, config: SessionConfig) -> Self {
        HubSession {
            hello_deadline: Some(now + config.hello_timeout),
            config,
            certificate_site,
            software,
            phase: Phase::AwaitingHello,
            epoch: 0,
            peer_version: PROTOCOL_VERSION,
            down_start: 0,
            up: None,
            down: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            error: None,
        }
    }

    /// The site this session is for (from its certificate).
    pub fn site_id(&self) -> SiteId {
        self.certificate_site
    }

    /// The epoch the site announced (0 before the hello).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The protocol version the site speaks ([`PROTOCOL_VERSION`] before the hello): any
    /// from [`MIN_PROTOCOL_VERSION`] up is served.
    pub fn peer_version(&self) -> u32 {
        self.peer_version
    }

    pub fn handle_frame(&mut self, _now: Instant, frame: Frame) {
        if self.phase == Phase::Closed {
            return;
        }
        match self.on_frame(frame) {
            Ok(()) => {}
            // A bad hello is answered in words before the close, so that the technician
            // reading the appliance's log learns what to fix.
            Err(error @ (SessionError::VersionMismatch { .. } | SessionError::SiteMismatch { .. })) => {
                self.refuse_with(error)
            }
            Err(error) => self.fail(error),
        }
        self.pump();
    }

    fn on_frame(&mut self, frame: Frame) -> Result<(), SessionError> {
        match (self.phase, frame) {
            (_, Frame::Ping) => Ok(()),
            (Phase::AwaitingHello, Frame::ClientHello(hello)) => {
                if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&hello.protocol_version) {
                    return Err(SessionError::VersionMismatch {
                        ours: PROTOCOL_VERSION,
                        theirs: hello.protocol_version,
                    });
                }
                if hello.site_id != self.certificate_site {
                    return Err(SessionError::SiteMismatch {
                        certificate: self.certificate_site,
                        hello: hello.site_id,
                    });
                }
                self.phase = Phase::AwaitingAccept;
                self.hello_deadline = None;
                self.peer_version = hello.protocol_version;
                self.epoch = hello.epoch;
                self.down_start = hello.down_applied;
                self.events.push_back(HubEvent::Hello {
                    site_id: hello.site_id,
                    epoch: hello.epoch,
                    down_applied: hello.down_applied,
                    software: hello.software,
                });
                Ok(())
            }
            (Phase::Established, Frame::Up(entry)) => {
                if entry.epoch != self.epoch {
                    return Err(SessionError::WrongEpoch { log: Log::Up, expected: self.epoch, got: entry.epoch });
                }
                let Some(up) = self.up.as_mut() else {
                    return Err(SessionError::UnexpectedFrame { frame: "Up", state: "established" });
                };
                for ready in up.receive(entry.seq, entry)? {
                    self.events.push_back(HubEvent::ApplyUp(ready));
                }
                Ok(())
            }
            (Phase::Established, Frame::LiveFigures(figures)) => {
                self.events.push_back(HubEvent::LiveFigures(figures));
                Ok(())
            }
            (Phase::Established, Frame::SiteLive(live)) => {
                self.events.push_back(HubEvent::SiteLive(Box::new(live)));
                Ok(())
            }
            (Phase::Established, Frame::DownAck { seq }) => {
                let Some(down) = self.down.as_mut() else {
                    return Err(SessionError::UnexpectedFrame { frame: "DownAck", state: "established" });
                };
                if let Some(acked) = down.ack(seq)? {
                    self.events.push_back(HubEvent::DownAcked { seq: acked });
                }
                Ok(())
            }
            (phase, other) => {
                Err(SessionError::UnexpectedFrame { frame: frame_kind(&other), state: phase.describe() })
            }
        }
    }

    /// The site may connect; `up_committed` is what HQ holds of its outbox in this epoch.
    pub fn accept(&mut self, _now: Instant, up_committed: Option<u64>) {
        if self.phase != Phase::AwaitingAccept {
            return;
        }
        self.phase = Phase::Established;
        self.transmits.push_back(Frame::ServerHello(ServerHello {
            protocol_version: self.peer_version,
            up_committed,
            software: self.software.clone(),
        }));
        self.up = Some(Incoming::new(Log::Up, up_committed.unwrap_or(0), self.config.max_ahead));
        self.down = Some(Outgoing::new(Log::Down, self.down_start, self.config.window));
        if self.down_start > 0 {
            // The site's ack may have been lost with the previous connection; its hello
            // says where it stands, which is as good as an ack.
            self.events.push_back(HubEvent::DownAcked { seq: self.down_start });
        }
        self.pump();
    }

    /// The site may not connect (disabled, unknown): tell it why, then close.
    pub fn refuse(&mut self, _now: Instant, reason: String) {
        self.refuse_with(SessionError::Refused { reason });
    }

    fn refuse_with(&mut self, error: SessionError) {
        if self.phase == Phase::Closed {
            return;
        }
        let reason = error.to_string();
        self.fail(error);
        self.transmits.push_back(Frame::Refused { reason });
    }

    /// The down-log entries a [`HubEvent::FetchDown`] asked for.
    pub fn down_fetched(&mut self, _now: Instant, entries: Vec<DownEntry>) {
        if self.phase != Phase::Established {
            return;
        }
        let seqs: Vec<u64> = entries.iter().map(|entry| entry.seq).collect();
        let Some(down) = self.down.as_mut() else { return };
        if let Err(error) = down.fetched(&seqs) {
            self.fail(error);
            return;
        }
        for entry in entries {
            if entry.event.since() > self.peer_version {
                // The site's Incoming needs every seq: it gets one it applies as a no-op.
                let seq = entry.seq;
                self.events.push_back(HubEvent::HeldBack(entry));
                self.transmits.push_back(Frame::Down(DownEntry { seq, event: DownEvent::held_back_stand_in() }));
            } else {
                self.transmits.push_back(Frame::Down(entry));
            }
        }
        self.pump();
    }

    /// Ask the site for this recording before its turn.
    pub fn want_recording(&mut self, sha256: [u8; 32]) {
        if self.phase == Phase::Established {
            self.transmits.push_back(Frame::WantRecording { sha256 });
        }
    }

    /// The driver could not decode the peer's bytes: close as a protocol error.
    pub fn bad_frame(&mut self, error: FrameError) {
        self.fail(SessionError::BadFrame(error));
    }

    /// The site's down log grew.
    pub fn down_changed(&mut self) {
        if let Some(down) = self.down.as_mut() {
            down.changed();
        }
        self.pump();
    }

    /// The store committed the site's outbox up to `seq`.
    pub fn up_committed(&mut self, seq: u64) {
        if self.phase == Phase::Closed {
            return;
        }
        let Some(up) = self.up.as_mut() else { return };
        if let Err(error) = up.committed(seq) {
            self.fail(error);
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.hello_deadline
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(deadline) = self.hello_deadline
            && now >= deadline
            && self.phase == Phase::AwaitingHello
        {
            self.fail(SessionError::HelloTimeout(self.config.hello_timeout));
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Frame> {
        if let Some(frame) = self.transmits.pop_front() {
            return Some(frame);
        }
        if self.phase == Phase::Closed {
            return None;
        }
        let epoch = self.epoch;
        let up = self.up.as_mut()?;
        up.poll_ack().map(|seq| Frame::UpAck { epoch, seq })
    }

    pub fn poll_event(&mut self) -> Option<HubEvent> {
        self.events.pop_front()
    }

    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Why the session closed, if it did.
    pub fn error(&self) -> Option<&SessionError> {
        self.error.as_ref()
    }

    fn pump(&mut self) {
        if self.phase != Phase::Established {
            return;
        }
        if let Some(down) = self.down.as_mut()
            && let Some((after_seq, limit)) = down.want_fetch()
        {
            self.events.push_back(HubEvent::FetchDown { after_seq, limit });
        }
    }

    fn fail(&mut self, error: SessionError) {
        if self.phase == Phase::Closed {
            return;
        }
        self.phase = Phase::Closed;
        self.hello_deadline = None;
        self.transmits.clear();
        self.events.push_back(HubEvent::Closed(error.clone()));
        self.error = Some(error);
    }
}
