//! The telephony lines the appliance drives, behind one narrow interface.
//!
//! The appliance sees only this crate's own types: [`Telephony`] to act (dial a customer,
//! offer a call to an agent extension, play hold audio, hang up) and
//! [`LineEvent`] to learn what happened. No SIP type crosses this boundary; SIP lives in
//! `sip-core` (sans-IO) and in this crate's private driver.
//!
//! Data flow:
//! - [`Telephony::start`] binds the SIP socket and returns the handle and an event receiver.
//! - [`Telephony::dial`] sends an INVITE with an SDP offer (PCMU, PCMA, telephone-event) to
//!   a trunk; a ring timeout sends CANCEL. The outcome arrives as [`LineEvent::Ended`].
//! - When the customer answers ([`LineEvent::Answered`]), the appliance's call control
//!   decides to queue (hold audio) or to [`Telephony::bridge`] to a registered extension.
//!   An agent's own call is bridged while it still rings, so the agent hears the carrier's
//!   early media (183 with SDP), re-encoded if the phone chose the other G.711 law.
//! - Bridged calls relay RTP both ways and are recorded to a two-channel A-law WAV file
//!   (unless [`Telephony::pause_recording`] holds recording off); the
//!   recording's path, size, duration and hash come with [`LineEvent::Ended`].
//! - [`Telephony::set_extensions`] provisions agent phones; only those may REGISTER (digest,
//!   realm `outpost`); repeated failed logins lock the source address out
//!   ([`LockoutPolicy`]).
//! - Inbound calls: an INVITE from a trunk's own address to one of the numbers that trunk
//!   delivers ([`TrunkOptions::dids`]) is answered and reported as [`LineEvent::Incoming`]
//!   then [`LineEvent::Answered`]; the appliance queues or bridges it like an answered
//!   outbound call. Every other INVITE (another number, phones, strangers) gets 403. An
//!   inbound call is only ever bridged to a registered extension, never dialed out again,
//!   so there is no toll-fraud path.
//! - [`Telephony::start_with`] adds per-trunk [`TrunkOptions`]: SIP over TCP, an outbound
//!   proxy, REGISTER with refresh, OPTIONS health checks ([`Telephony::trunk_status`]),
//!   failover on 5xx / no answer / dead trunk, and a dial pattern. Digest toward carriers
//!   answers 401 and 407, MD5 and SHA-256 (SHA-256 preferred when offered).
//! - [`fxo`]: FXO gateways as one single-channel trunk per port, from TOML profiles, and
//!   the technician's [`line_test`].
//! - One attempt per number at a time across the site: a second dial of a number that is
//!   still in a call ends at once as `Failed { status: 0 }`.
//!
//! Inside: one driver task owns the SIP sockets (UDP, and TCP connections on the same port)
//! and all call legs; each call's media (RTP relay with SSRC/sequence/timestamp rewriting,
//! hold audio, recording streamed to disk) runs in its own task. SIP parsing, SDP and digest
//! come from the sans-IO `sip-core` crate. `docs/sip-outcomes.md` maps SIP responses to
//! outcomes.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod driver;
pub mod fxo;
pub mod g711;
mod hold;
pub use hold::{HoldAudio, HoldAudioError, ulaw_wav};
mod media;
pub mod quality;
mod recording;
mod tcp;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::driver::{Command, Driver, DriverSetup, Shared};
pub use crate::fxo::{FxoProfile, LineTestReport, ProfileError, line_test, line_test_with};

/// The appliance's handle on its lines. Cheap to clone; the driver stops (hanging up every
/// call) when the last clone is dropped.
#[derive(Clone)]
pub struct Telephony {
    // The driver's command inbox; private so no SIP type leaks.
    commands: mpsc::UnboundedSender<Command>,
    local_sip: SocketAddr,
    shared: Arc<Shared>,
}

impl Telephony {
    /// Binds the SIP socket, prepares the recordings directory and hold audio, and starts the
    /// driver. Events arrive on the returned receiver.
    pub async fn start(
        config: TelephonyConfig,
    ) -> Result<(Telephony, mpsc::UnboundedReceiver<LineEvent>), StartError> {
        Telephony::start_with(config, TelephonyOptions::default()).await
    }

    /// [`Telephony::start`] with the optional trunk behaviour (transport, outbound proxy,
    /// REGISTER, OPTIONS health check, failover) and the registrar's lockout policy.
    pub async fn start_with(
        config: TelephonyConfig,
        options: TelephonyOptions,
    ) -> Result<(Telephony, mpsc::UnboundedReceiver<LineEvent>), StartError> {
        for name in options.trunks.keys() {
            if !config.trunks.iter().any(|trunk| &trunk.name == name) {
                return Err(StartError::UnknownTrunk { name: name.clone() });
            }
        }
        std::fs::create_dir_all(&config.recordings_dir).map_err(|source| {
            StartError::Recordings {
                path: config.recordings_dir.clone(),
                source,
            }
        })?;
        // SIP over TCP listens on the same port as UDP (phones and carriers that prefer TCP).
        // With port 0 the system picks a free UDP port whose TCP twin may be taken: another
        // pick then, a few times, rather than failing the start.
        let mut picks = if config.sip_bind.port() == 0 { 8 } else { 1 };
        let (socket, bound, tcp_listener) = loop {
            picks -= 1;
            let socket = bind_sip_udp(config.sip_bind).map_err(|source| StartError::Bind {
                addr: config.sip_bind,
                source,
            })?;
            let bound = socket.local_addr().map_err(|source| StartError::Bind {
                addr: config.sip_bind,
                source,
            })?;
            let tcp_addr = SocketAddr::new(config.sip_bind.ip(), bound.port());
            match tokio::net::TcpListener::bind(tcp_addr).await {
                Ok(listener) => break (socket, bound, listener),
                Err(source) if picks == 0 || source.kind() != std::io::ErrorKind::AddrInUse => {
                    return Err(StartError::Bind {
                        addr: tcp_addr,
                        source,
                    });
                }
                Err(_) => continue,
            }
        };
        let local_sip = SocketAddr::new(config.public_ip, bound.port());
        let hold_audio = Arc::new(hold::load(config.hold_audio.as_deref()));
        let shared = Arc::new(Shared::default());
        let (commands, inbox) = mpsc::unbounded_channel();
        let (events, event_receiver) = mpsc::unbounded_channel();
        let driver = Driver::new(DriverSetup {
            socket,
            tcp_listener: Some(tcp_listener),
            local: local_sip,
            rtp_bind_ip: config.sip_bind.ip(),
            rtp_ports: config.rtp_ports,
            trunks: config.trunks,
            trunk_options: options.trunks,
            lockout: options.lockout,
            media_timeout: options.media_timeout,
            extensions: config.extensions,
            recordings_dir: config.recordings_dir,
            hold_audio,
            shared: shared.clone(),
            events,
        });
        tokio::spawn(driver.run(inbox));
        Ok((
            Telephony {
                commands,
                local_sip,
                shared,
            },
            event_receiver,
        ))
    }

    /// The SIP address peers reach (public IP, bound port).
    pub fn local_sip_addr(&self) -> SocketAddr {
        self.local_sip
    }

    fn send(&self, command: Command) {
        if self.commands.send(command).is_err() {
            tracing::warn!("telephony driver has stopped; command dropped");
        }
    }

    /// Rings a customer through a trunk (INVITE; CANCEL after the ring timeout).
    pub fn dial(&self, request: DialRequest) {
        self.send(Command::Dial(request));
    }

    /// Offers the call to a registered extension; when the phone answers the legs are bridged
    /// and recorded. `auto_answer` adds the Call-Info/Alert-Info hints phones use to pick up by
    /// themselves.
    ///
    /// Usually the customer has answered already (a predictive call). An agent's own call is
    /// offered while the customer still rings: the agent then hears the ringback or the
    /// network's announcement (early media, 183 with SDP), [`LineEvent::Bridged`] comes before
    /// [`LineEvent::Answered`], and a customer who never answers ends the call with its
    /// unanswered outcome (the agent's phone gets BYE).
    pub fn bridge(&self, call: CallId, extension: &str, ring_timeout: Duration, auto_answer: bool) {
        self.send(Command::Bridge {
            call,
            extension: extension.to_string(),
            ring_timeout,
            auto_answer,
        });
    }

    /// Plays hold audio to an answered customer who is waiting for an agent.
    pub fn hold(&self, call: CallId) {
        self.send(Command::Hold(call, None));
    }

    /// As [`Telephony::hold`], playing `audio` (a task's hold music) instead of the box's
    /// configured hold audio.
    pub fn hold_with(&self, call: CallId, audio: HoldAudio) {
        self.send(Command::Hold(call, Some(audio)));
    }

    /// Ends the call from the system side (CANCEL or BYE on every leg).
    pub fn hangup(&self, call: CallId) {
        self.send(Command::Hangup(call));
    }

    /// Replaces the provisioned extensions; registrations of removed ones are dropped.
    pub fn set_extensions(&self, extensions: Vec<ExtensionConfig>) {
        self.send(Command::SetExtensions(extensions));
    }

    /// Each trunk's health (OPTIONS), registration and calls in progress, sorted by name.
    pub fn trunk_status(&self) -> Vec<TrunkStatus> {
        let trunks = self
            .shared
            .trunks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        trunks.values().cloned().collect()
    }

    /// Stops recording calls bridged from now on (`true`), or records them again (`false`).
    /// The box pauses recording when its disk falls under the floor, rather than let a full
    /// disk fail the store; calls already being recorded finish their recordings.
    pub fn pause_recording(&self, paused: bool) {
        self.shared
            .recording_paused
            .store(paused, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether recording is paused ([`Telephony::pause_recording`]).
    pub fn recording_paused(&self) -> bool {
        self.shared
            .recording_paused
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Extensions registered right now, sorted.
    pub fn registered_extensions(&self) -> Vec<String> {
        let registered = self
            .shared
            .registered
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        registered.keys().cloned().collect()
    }
}

/// Binds the SIP UDP socket with large kernel buffers: a burst of REGISTERs after a power cut
/// or hundreds of call set-ups must not overflow the default ~200 KiB and be dropped.
fn bind_sip_udp(addr: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // The kernel caps these at net.core.{r,w}mem_max; asking for more is harmless.
    let _ = socket.set_recv_buffer_size(4 << 20);
    let _ = socket.set_send_buffer_size(4 << 20);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    tokio::net::UdpSocket::from_std(socket.into())
}

/// Everything the lines need to start.
#[derive(Debug, Clone)]
pub struct TelephonyConfig {
    /// Where the SIP socket binds (UDP; TCP on the same port).
    pub sip_bind: SocketAddr,
    /// Address written into SDP and Via/Contact (the LAN address phones and trunks reach).
    pub public_ip: IpAddr,
    /// RTP ports are taken from this range (even ports; the odd one above is left for RTCP).
    /// `(0, 0)` lets the kernel choose, for tests.
    pub rtp_ports: (u16, u16),
    pub trunks: Vec<TrunkConfig>,
    pub extensions: Vec<ExtensionConfig>,
    /// Where call recordings are written.
    pub recordings_dir: PathBuf,
    /// G.711 µ-law WAV (8 kHz mono) played to answered calls waiting for an agent.
    pub hold_audio: Option<PathBuf>,
}

/// A SIP trunk toward a carrier (or an FXO gateway, which is a trunk with one channel per port).
#[derive(Debug, Clone)]
pub struct TrunkConfig {
    pub name: String,
    /// Where INVITEs are sent.
    pub address: SocketAddr,
    /// Domain used in the Request-URI and To.
    pub domain: String,
    /// Digest credentials, if the carrier challenges.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Most calls at once on this trunk.
    pub channels: u32,
}

impl TelephonyConfig {
    /// Lines on 127.0.0.1 for the tests, the examples and the loopback appliance
    /// (`ApplianceConfig::on_loopback`): an ephemeral SIP port, RTP ports chosen by the
    /// kernel, recordings under `dir/recordings`, and no trunk, extension or hold audio yet
    /// (add them with struct update syntax). The one place a loopback box's lines are spelled.
    pub fn on_loopback(dir: &Path) -> TelephonyConfig {
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        TelephonyConfig {
            sip_bind: SocketAddr::new(localhost, 0),
            public_ip: localhost,
            rtp_ports: (0, 0),
            trunks: Vec::new(),
            extensions: Vec::new(),
            recordings_dir: dir.join("recordings"),
            hold_audio: None,
        }
    }
}

impl TrunkConfig {
    /// A trunk named `name` of `channels` lines toward a carrier on 127.0.0.1:`port` (domain
    /// `127.0.0.1`, no credentials): the simulated or SIPp carrier of the tests and examples.
    pub fn on_loopback(name: &str, port: u16, channels: u32) -> TrunkConfig {
        TrunkConfig {
            name: name.into(),
            address: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            domain: "127.0.0.1".into(),
            username: None,
            password: None,
            channels,
        }
    }
}

/// How SIP travels to a trunk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SipTransport {
    /// One datagram per message (the default; what most carriers and FXO gateways speak).
    #[default]
    Udp,
    /// A TCP connection opened by the box, messages framed by Content-Length (RFC 3261 18.3).
    Tcp,
}

/// REGISTER toward a trunk, for carriers that route inbound-capable accounts by registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkRegistration {
    /// The account (user part of To/From/Contact); digest uses the trunk's credentials.
    pub user: String,
    /// Expiry asked for; the box refreshes at half of what the carrier grants.
    pub expires: Duration,
}

/// Optional behaviour of one trunk, beside its [`TrunkConfig`].
#[derive(Debug, Clone, Default)]
pub struct TrunkOptions {
    pub transport: SipTransport,
    /// Every request goes here (with a loose `Route`) instead of straight to the trunk.
    pub outbound_proxy: Option<SocketAddr>,
    pub register: Option<TrunkRegistration>,
    /// Send OPTIONS this often; a trunk that does not answer one before the next is due is
    /// marked dead and skipped while a failover trunk is alive.
    pub health_check: Option<Duration>,
    /// Trunks tried in order when this one answers 500/502/503/504, does not answer at all,
    /// is dead, or has no free channel.
    pub failover: Vec<String>,
    /// Request-URI user part with `{number}` replaced (FXO gateways that pick the port from a
    /// dial-plan prefix, carriers wanting a tech prefix); `None` sends the number as is.
    pub dial_pattern: Option<String>,
    /// The numbers (DIDs) this trunk's carrier delivers calls to: an INVITE from the trunk's
    /// address for one of them is answered and reported as [`LineEvent::Incoming`]. Empty
    /// (the default): the trunk's INVITEs are refused like any other.
    pub dids: Vec<String>,
}

/// Registrar protection against password guessing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// This many failed digest answers from one IP address within `window` ...
    pub max_failures: u32,
    pub window: Duration,
    /// ... lock that address out (every REGISTER answered 403) for this long.
    pub lockout: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> LockoutPolicy {
        LockoutPolicy {
            max_failures: 5,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(300),
        }
    }
}

/// Options beyond [`TelephonyConfig`], for [`Telephony::start_with`].
#[derive(Debug, Clone)]
pub struct TelephonyOptions {
    /// By trunk name; trunks without an entry use the defaults (UDP, no proxy, no REGISTER,
    /// no health check, no failover).
    pub trunks: HashMap<String, TrunkOptions>,
    pub lockout: LockoutPolicy,
    /// An answered call whose customer sends no RTP for this long (and has not put the call
    /// on hold) is hung up as dead: a BYE lost in the carrier's network must not hold a
    /// channel and an agent for ever. Default 60 s.
    pub media_timeout: Duration,
}

impl Default for TelephonyOptions {
    fn default() -> TelephonyOptions {
        TelephonyOptions {
            trunks: HashMap::new(),
            lockout: LockoutPolicy::default(),
            media_timeout: Duration::from_secs(60),
        }
    }
}

/// A trunk as the driver sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkStatus {
    pub name: String,
    /// False once a health check went unanswered (or an INVITE timed out), until it answers.
    pub alive: bool,
    /// `None` when the trunk does not register.
    pub registered: Option<bool>,
    pub active_calls: u32,
}

/// An agent's phone account.
#[derive(Debug, Clone)]
pub struct ExtensionConfig {
    pub extension: String,
    pub password: String,
}

/// The appliance's own id for a call (one customer leg plus, once bridged, an agent leg).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

/// A request to ring a customer.
#[derive(Debug, Clone)]
pub struct DialRequest {
    pub call: CallId,
    pub trunk: String,
    /// Number (or carrier dial token) placed in the Request-URI user part.
    pub number: String,
    pub caller_id: String,
    /// Ring this long, then CANCEL ([`Outcome::NoAnswer`]).
    pub ring_timeout: Duration,
}

/// How a finished call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered and bridged to an agent.
    Answered,
    /// 486 / 600.
    Busy,
    /// Never answered: ring timeout reached and CANCEL sent (487 received, or the answer
    /// crossed the CANCEL and got BYE), 408 / 480, or the call given up while ringing by the
    /// system or by the agent on their own call.
    NoAnswer,
    /// 603 and other explicit refusals.
    Rejected,
    /// Anything else; the SIP status (or 0 for a transport failure / timeout).
    Failed { status: u16 },
    /// Answered but never bridged to an agent before the customer or the queue gave up.
    Abandoned,
}

/// Who hung up first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangupSide {
    Customer,
    Agent,
    System,
}

/// A finished recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    pub path: PathBuf,
    pub bytes: u64,
    pub duration_ms: u64,
    /// SHA-256 of the WAV file, hex.
    pub sha256: String,
}

/// What the lines report to the appliance.
#[derive(Debug, Clone)]
pub enum LineEvent {
    /// 180 / 183 from the customer side.
    Ringing { call: CallId },
    /// 200 OK from the customer side; the customer is on the line, hearing nothing yet.
    Answered { call: CallId },
    /// The agent's phone is ringing for this call.
    AgentRinging { call: CallId, extension: String },
    /// The agent answered; customer and agent now hear each other and recording runs. Before
    /// [`LineEvent::Answered`] when the agent was offered the call while it rang: the agent
    /// hears the early media until the customer answers.
    Bridged { call: CallId, extension: String },
    /// The agent's phone did not take the call (busy, declined, timeout, unregistered).
    /// The customer leg stays up; the appliance may offer the call to another agent.
    AgentMissed { call: CallId, extension: String },
    /// The whole call is over.
    Ended {
        call: CallId,
        outcome: Outcome,
        hangup_side: Option<HangupSide>,
        recording: Option<Recording>,
        /// What the box received on each leg (loss, jitter, estimated MOS); both `None`
        /// for a call that never had media (refused before any answer, failed at once).
        quality: quality::CallQuality,
    },
    /// A trunk delivered a call to one of its numbers (`did`) and the box answered it; an
    /// [`LineEvent::Answered`] follows. `caller` is the calling number (digits of the From
    /// user part; empty when the carrier withheld it). The call's id has its top bit set.
    Incoming {
        call: CallId,
        trunk: String,
        did: String,
        caller: String,
    },
    /// An extension registered (or refreshed) from this contact.
    ExtensionRegistered {
        extension: String,
        contact: SocketAddr,
    },
    /// An extension's registration expired or was removed.
    ExtensionUnregistered { extension: String },
}

/// Why [`Telephony::start`] failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The SIP port could not be bound.
    #[error("cannot bind SIP on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// [`TelephonyOptions::trunks`] names a trunk the configuration does not have.
    #[error("options given for trunk {name:?}, which is not configured; fix the trunk name")]
    UnknownTrunk { name: String },
    /// The recordings directory cannot be created or written.
    #[error("recordings directory {path}: {source}")]
    Recordings {
        path: PathBuf,
        source: std::io::Error,
    },
}
