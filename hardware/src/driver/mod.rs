//! The SIP driver: one tokio task owning the SIP socket, every call leg and the registrar.
//!
//! - [`crate::Telephony`] sends [`Command`]s into the inbox; the task applies them, sends SIP,
//!   and reports [`LineEvent`]s.
//! - Datagrams are parsed with `sip-core`; garbage is logged with its source and dropped.
//! - Every outgoing INVITE is a [`Leg`] keyed by its SIP Call-ID. A leg belongs to a call
//!   (customer or agent side) until the call ends; then it lingers for 32 s, detached, so
//!   late responses are still ACKed and late BYEs answered.
//! - Each leg's INVITE, CANCEL and BYE are `sip-core` transaction machines
//!   ([`sip_core::transaction`]); every request we answer goes through one
//!   `ServerTransactions` table. The driver only pumps them: datagrams in, what they queue
//!   out, and a 50 ms tick for their timers (RFC 3261 A to K), ring timeouts and
//!   registration expiry.
//! - Parts: [`calls`] (call stages and bridging), [`legs`] (per-leg SIP), [`trunks`]
//!   (choice, failover, health checks, the box's REGISTER), [`registrar`] (agents' phones).
//! - Identifiers come from OS randomness passed into `sip-core`, which draws none itself.
//! - Each call's media runs in its own task ([`crate::media`]); the driver only tells it where
//!   to send and when to bridge, hold or finish.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sip_core::auth::{Credentials, NonceIssuer, best_challenge};
use sip_core::sdp::Codec;
use sip_core::transaction::{
    ClientInvite, ClientNonInvite, RetransmitTimer, ServerEvent, ServerTransactions, branch_from,
    call_id_from, tag_from,
};
use sip_core::{Message, ParseError};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::media::{MediaCommand, MediaHandle};
use crate::tcp::{self, TcpEvent};
use crate::{
    CallId, DialRequest, ExtensionConfig, LineEvent, LockoutPolicy, SipTransport, TrunkConfig,
    TrunkOptions, TrunkStatus,
};

mod calls;
mod inbound;
mod legs;
mod registrar;
mod trunks;

/// Tick of the driver's timers.
const TICK: Duration = Duration::from_millis(50);

/// What the handle asks the driver to do.
pub(crate) enum Command {
    Dial(DialRequest),
    Bridge {
        call: CallId,
        extension: String,
        ring_timeout: Duration,
        auto_answer: bool,
    },
    /// Hold audio toward a waiting customer: the given audio, or the box's configured one.
    Hold(CallId, Option<crate::HoldAudio>),
    Hangup(CallId),
    SetExtensions(Vec<ExtensionConfig>),
}

/// State the handle reads synchronously.
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) registered: Mutex<BTreeMap<String, SocketAddr>>,
    pub(crate) trunks: Mutex<BTreeMap<String, TrunkStatus>>,
    /// Set while the disk is under the box's floor: calls bridged then are not recorded.
    pub(crate) recording_paused: std::sync::atomic::AtomicBool,
}

/// Everything the driver needs, from [`crate::Telephony::start`].
pub(crate) struct DriverSetup {
    pub(crate) socket: UdpSocket,
    pub(crate) tcp_listener: Option<TcpListener>,
    pub(crate) trunk_options: HashMap<String, TrunkOptions>,
    pub(crate) lockout: LockoutPolicy,
    pub(crate) media_timeout: Duration,
    pub(crate) local: SocketAddr,
    pub(crate) rtp_bind_ip: IpAddr,
    pub(crate) rtp_ports: (u16, u16),
    pub(crate) trunks: Vec<TrunkConfig>,
    pub(crate) extensions: Vec<ExtensionConfig>,
    pub(crate) recordings_dir: PathBuf,
    pub(crate) hold_audio: Arc<Vec<i16>>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) events: mpsc::UnboundedSender<LineEvent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Customer,
    Agent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegState {
    /// INVITE sent, nothing heard yet.
    Calling,
    /// A provisional response arrived.
    Proceeding,
    /// 2xx received and ACKed.
    Confirmed,
    /// CANCEL sent; waiting for the INVITE's final response.
    Cancelling,
    /// Over (final response, BYE sent or received).
    Terminated,
}

/// One outgoing INVITE dialog.
struct Leg {
    owner: Option<(CallId, Side)>,
    sip_call_id: String,
    peer: SocketAddr,
    request_uri: String,
    remote_target: Option<String>,
    from: String,
    to: String,
    remote_tag: Option<String>,
    cseq: u32,
    /// The leg's INVITE transactions, the current one last: an earlier one (answered with a
    /// digest challenge) lingers to ACK retransmissions of its answer.
    invites: Vec<ClientInvite>,
    state: LegState,
    /// Ring timeout while ringing; the give-up time for the final response while cancelling.
    deadline: Instant,
    linger_until: Option<Instant>,
    credentials: Option<Credentials>,
    auth_attempted: bool,
    /// Given up before any provisional response: the INVITE transaction sends the CANCEL
    /// with the first 1xx (RFC 3261 9.1), and the give-up clock starts then.
    cancel_pending: bool,
    /// Our BYE was challenged once and answered with credentials; a second challenge ends it.
    bye_auth_attempted: bool,
    local_sdp: Vec<u8>,
    extra_headers: Vec<(String, String)>,
    /// The leg's BYEs (ours, and those ending a second fork's answer).
    requests: Vec<ClientNonInvite>,
}

struct AgentLeg {
    sip_call_id: String,
    extension: String,
    socket: Option<UdpSocket>,
    ringing_reported: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    Dialing,
    Answered,
    Bridged { extension: String },
}

struct Call {
    trunk: String,
    /// What was asked, kept to re-dial on a failover trunk.
    request: DialRequest,
    /// Trunks already tried for this call, in order.
    tried: Vec<String>,
    /// The customer-side SDP offer (same RTP port whichever trunk carries the call).
    offer: Vec<u8>,
    /// When the ring timeout ends, whichever trunk is ringing.
    ring_deadline: Instant,
    customer: String,
    agent: Option<AgentLeg>,
    stage: Stage,
    /// The customer's 2xx came. Apart from `stage`: an agent's own call is bridged while the
    /// customer still rings, so the agent hears the early media.
    answered: bool,
    ringing_reported: bool,
    codec: Option<Codec>,
    media: MediaHandle,
}

struct Registration {
    contact_uri: String,
    target: SocketAddr,
    expires_at: Instant,
}

/// Health, registration and bookkeeping of one trunk.
struct TrunkState {
    alive: bool,
    /// The Call-ID of the OPTIONS still unanswered, if any.
    options_pending: Option<String>,
    next_check: Option<Instant>,
    registration: Option<TrunkRegState>,
}

/// The box's own registration at a trunk.
struct TrunkRegState {
    user: String,
    expires: Duration,
    call_id: String,
    from_tag: String,
    cseq: u32,
    registered: bool,
    auth_attempted: bool,
    next_at: Instant,
    /// The REGISTER in flight and its retransmission timer.
    in_flight: Option<(Vec<u8>, RetransmitTimer)>,
}

/// Failed registrar logins from one address.
struct AuthFailures {
    count: u32,
    window_start: Instant,
    locked_until: Option<Instant>,
}

/// Hands out RTP ports from the configured range (even ports, as RTP convention wants).
struct PortPool {
    low: u16,
    high: u16,
    next: u16,
}

impl PortPool {
    fn new((low, high): (u16, u16)) -> PortPool {
        let low = low.saturating_add(low % 2);
        PortPool {
            low,
            high,
            next: low,
        }
    }

    fn bind(&mut self, ip: IpAddr) -> std::io::Result<(UdpSocket, u16)> {
        let bind_std = |port: u16| -> std::io::Result<UdpSocket> {
            let socket = std::net::UdpSocket::bind((ip, port))?;
            socket.set_nonblocking(true)?;
            UdpSocket::from_std(socket)
        };
        if self.low == 0 || self.high < self.low {
            // No range configured: let the kernel pick (tests and development).
            let socket = bind_std(0)?;
            let port = socket.local_addr()?.port();
            return Ok((socket, port));
        }
        let n_slots = u32::from((self.high - self.low) / 2) + 1;
        for _ in 0..n_slots {
            let port = self.next;
            self.next = if port.saturating_add(2) > self.high {
                self.low
            } else {
                port + 2
            };
            if let Ok(socket) = bind_std(port) {
                return Ok((socket, port));
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!(
                "no free RTP port in {}..={}; widen rtp_ports",
                self.low, self.high
            ),
        ))
    }
}

/// A fresh Via branch from OS randomness (sip-core draws none itself).
fn new_branch() -> String {
    branch_from(&mut rand::rng())
}

/// A fresh From/To tag (or digest cnonce) from OS randomness.
fn new_tag() -> String {
    tag_from(&mut rand::rng())
}

/// A fresh Call-ID from OS randomness.
fn new_call_id(host: &str) -> String {
    call_id_from(&mut rand::rng(), host)
}

/// The digits of a number (and `*`/`#`), so `138-0013-8000` and `13800138000` are one number.
fn normalized_number(number: &str) -> String {
    number
        .chars()
        .filter(|ch| ch.is_ascii_digit() || *ch == '*' || *ch == '#')
        .collect()
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

fn unix_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or(0)
}

async fn accept_optional(
    listener: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

async fn recv_optional_call(inbox: Option<&mut mpsc::UnboundedReceiver<CallId>>) -> Option<CallId> {
    match inbox {
        Some(inbox) => inbox.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv_tcp(inbox: Option<&mut mpsc::UnboundedReceiver<TcpEvent>>) -> Option<TcpEvent> {
    match inbox {
        Some(inbox) => inbox.recv().await,
        None => std::future::pending().await,
    }
}

pub(crate) struct Driver {
    socket: UdpSocket,
    tcp_listener: Option<TcpListener>,
    /// Open TCP connections by peer address; the sender queues bytes to the connection task.
    tcp_connections: Mutex<HashMap<SocketAddr, mpsc::UnboundedSender<Vec<u8>>>>,
    /// Destinations reached over TCP (TCP trunks and their proxies).
    tcp_destinations: HashSet<SocketAddr>,
    tcp_events: mpsc::UnboundedSender<TcpEvent>,
    tcp_inbox: Option<mpsc::UnboundedReceiver<TcpEvent>>,
    trunk_options: HashMap<String, TrunkOptions>,
    trunk_states: HashMap<String, TrunkState>,
    lockout: LockoutPolicy,
    auth_failures: HashMap<IpAddr, AuthFailures>,
    local: SocketAddr,
    rtp_bind_ip: IpAddr,
    rtp_ports: PortPool,
    trunks: HashMap<String, TrunkConfig>,
    extensions: HashMap<String, String>,
    registrations: HashMap<String, Registration>,
    shared: Arc<Shared>,
    calls: HashMap<CallId, Call>,
    legs: HashMap<String, Leg>,
    /// Every request we answer, so retransmissions get the same answer and final answers
    /// to INVITEs are repeated until ACKed.
    server: ServerTransactions<SocketAddr>,
    nonces: NonceIssuer,
    events: mpsc::UnboundedSender<LineEvent>,
    recordings_dir: PathBuf,
    hold_audio: Arc<Vec<i16>>,
    media_timeout: Duration,
    /// Calls whose media task found the customer silent past `media_timeout`.
    dead_media: mpsc::UnboundedSender<CallId>,
    dead_media_inbox: Option<mpsc::UnboundedReceiver<CallId>>,
    /// Inbound calls answered so far (their ids, see `inbound`).
    next_inbound: u64,
}

impl Driver {
    pub(crate) fn new(setup: DriverSetup) -> Driver {
        let now = Instant::now();
        let (tcp_events, tcp_inbox) = mpsc::unbounded_channel();
        let (dead_media, dead_media_inbox) = mpsc::unbounded_channel();
        let mut tcp_destinations = HashSet::new();
        let mut trunk_states = HashMap::new();
        for trunk in &setup.trunks {
            let options = setup
                .trunk_options
                .get(&trunk.name)
                .cloned()
                .unwrap_or_default();
            if options.transport == SipTransport::Tcp {
                tcp_destinations.insert(options.outbound_proxy.unwrap_or(trunk.address));
            }
            trunk_states.insert(
                trunk.name.clone(),
                TrunkState {
                    alive: true,
                    options_pending: None,
                    next_check: options.health_check.map(|_| now),
                    registration: options.register.map(|register| TrunkRegState {
                        user: register.user,
                        expires: register.expires,
                        call_id: new_call_id(&setup.local.ip().to_string()),
                        from_tag: new_tag(),
                        cseq: 0,
                        registered: false,
                        auth_attempted: false,
                        next_at: now,
                        in_flight: None,
                    }),
                },
            );
        }
        Driver {
            socket: setup.socket,
            tcp_listener: setup.tcp_listener,
            tcp_connections: Mutex::new(HashMap::new()),
            tcp_destinations,
            tcp_events,
            tcp_inbox: Some(tcp_inbox),
            trunk_options: setup.trunk_options,
            trunk_states,
            lockout: setup.lockout,
            auth_failures: HashMap::new(),
            local: setup.local,
            rtp_bind_ip: setup.rtp_bind_ip,
            rtp_ports: PortPool::new(setup.rtp_ports),
            trunks: setup
                .trunks
                .into_iter()
                .map(|trunk| (trunk.name.clone(), trunk))
                .collect(),
            extensions: setup
                .extensions
                .into_iter()
                .map(|ext| (ext.extension, ext.password))
                .collect(),
            registrations: HashMap::new(),
            shared: setup.shared,
            calls: HashMap::new(),
            legs: HashMap::new(),
            server: ServerTransactions::new(),
            nonces: NonceIssuer::from_rng(&mut rand::rng()),
            events: setup.events,
            recordings_dir: setup.recordings_dir,
            hold_audio: setup.hold_audio,
            media_timeout: setup.media_timeout,
            dead_media,
            dead_media_inbox: Some(dead_media_inbox),
            next_inbound: 0,
        }
    }

    /// Runs until every [`crate::Telephony`] handle is dropped.
    pub(crate) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buffer = vec![0u8; 65_536];
        let mut tcp_inbox = self.tcp_inbox.take();
        let mut dead_media_inbox = self.dead_media_inbox.take();
        let listener = self.tcp_listener.take();
        self.publish_trunks();
        loop {
            tokio::select! {
                accepted = accept_optional(listener.as_ref()) => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let (sender, outgoing) = mpsc::unbounded_channel();
                        self.lock_tcp().insert(peer, sender);
                        tokio::spawn(tcp::run_connection(stream, peer, outgoing, self.tcp_events.clone()));
                    }
                    Err(error) => debug!(%error, "SIP TCP accept failed"),
                },
                event = recv_tcp(tcp_inbox.as_mut()) => match event {
                    Some(TcpEvent::Message { peer, bytes }) => self.on_packet(&bytes, peer),
                    Some(TcpEvent::Closed { peer }) => {
                        // A send may have opened a new connection to the same peer since this
                        // one ended: only the ended one's sender (its receiver dropped) goes.
                        let mut connections = self.lock_tcp();
                        if connections.get(&peer).is_some_and(|sender| sender.is_closed()) {
                            connections.remove(&peer);
                        }
                    }
                    None => tcp_inbox = None,
                },
                Some(call_id) = recv_optional_call(dead_media_inbox.as_mut()) => {
                    warn!(call = call_id.0, timeout = ?self.media_timeout, "no RTP from the customer; hanging up a dead call");
                    self.hang_up(call_id);
                },
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => {
                        self.shut_down();
                        return;
                    }
                },
                received = self.socket.recv_from(&mut buffer) => match received {
                    Ok((n_bytes, source)) => {
                        let packet = buffer[..n_bytes].to_vec();
                        self.on_packet(&packet, source);
                    }
                    // ICMP port-unreachable from an earlier send can surface here; not fatal.
                    Err(error) => debug!(%error, "SIP socket receive error"),
                },
                _ = tick.tick() => self.on_tick(Instant::now()),
            }
        }
    }

    fn emit(&self, event: LineEvent) {
        // The appliance may have stopped listening during shutdown; events are then moot.
        let _ = self.events.send(event);
    }

    fn lock_tcp(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, mpsc::UnboundedSender<Vec<u8>>>> {
        // Only this task takes the lock; poisoning cannot leave the map half-written.
        self.tcp_connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn is_tcp(&self, destination: SocketAddr) -> bool {
        self.tcp_destinations.contains(&destination) || self.lock_tcp().contains_key(&destination)
    }

    fn send_to(&self, bytes: &[u8], destination: SocketAddr) {
        if self.is_tcp(destination) {
            let mut connections = self.lock_tcp();
            let sent = connections
                .get(&destination)
                .is_some_and(|sender| sender.send(bytes.to_vec()).is_ok());
            if !sent {
                let (sender, outgoing) = mpsc::unbounded_channel();
                let _ = sender.send(bytes.to_vec());
                connections.insert(destination, sender);
                tokio::spawn(tcp::connect(destination, outgoing, self.tcp_events.clone()));
            }
            return;
        }
        if let Err(error) = self.socket.try_send_to(bytes, destination) {
            warn!(%destination, %error, "SIP send failed");
        }
    }

    fn shut_down(&mut self) {
        let call_ids: Vec<CallId> = self.calls.keys().copied().collect();
        for call_id in call_ids {
            self.hang_up(call_id);
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Dial(request) => self.dial(request),
            Command::Bridge {
                call,
                extension,
                ring_timeout,
                auto_answer,
            } => self.bridge(call, extension, ring_timeout, auto_answer),
            Command::Hold(call_id, audio) => match self.calls.get(&call_id) {
                Some(call) if call.stage == Stage::Answered => call
                    .media
                    .send(MediaCommand::Hold(audio.map(|audio| audio.0))),
                Some(_) => warn!(
                    call = call_id.0,
                    "hold ignored: the call is not answered and waiting"
                ),
                None => warn!(call = call_id.0, "hold ignored: no such call"),
            },
            Command::Hangup(call_id) => self.hang_up(call_id),
            Command::SetExtensions(extensions) => self.set_extensions(extensions),
        }
    }

    fn via(&self, destination: SocketAddr, branch: &str) -> String {
        let transport = if self.is_tcp(destination) {
            "TCP"
        } else {
            "UDP"
        };
        format!("SIP/2.0/{transport} {};branch={branch};rport", self.local)
    }

    fn contact(&self, destination: SocketAddr) -> String {
        if self.is_tcp(destination) {
            format!("<sip:outpost@{};transport=tcp>", self.local)
        } else {
            format!("<sip:outpost@{}>", self.local)
        }
    }

    fn on_packet(&mut self, bytes: &[u8], source: SocketAddr) {
        match sip_core::parse(bytes) {
            Ok(Message::Request(request)) => self.on_request(request, source),
            Ok(Message::Response(response)) => self.on_response(response, source),
            Err(ParseError::Empty) => {}
            Err(reason) => {
                warn!(%source, %reason, n_bytes = bytes.len(), "ignoring a packet on the SIP port that is not valid SIP")
            }
        }
    }

    fn on_tick(&mut self, now: Instant) {
        self.tick_trunks(now);
        let sip_call_ids: Vec<String> = self.legs.keys().cloned().collect();
        for sip_call_id in sip_call_ids {
            self.tick_leg(&sip_call_id, now);
        }
        let expired: Vec<String> = self
            .registrations
            .iter()
            .filter(|(_, registration)| registration.expires_at <= now)
            .map(|(extension, _)| extension.clone())
            .collect();
        for extension in expired {
            self.unregister(&extension);
        }
        self.server.handle_timeout(now);
        self.flush_server();
        while let Some(event) = self.server.poll_event() {
            match event {
                ServerEvent::AckTimedOut { call_id, status } => {
                    debug!(sip_call_id = %call_id, status, "our answer to an INVITE was never ACKed");
                }
            }
        }
    }
}
