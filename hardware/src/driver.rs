//! The SIP driver: one tokio task owning the SIP socket, every call leg and the registrar.
//!
//! - [`crate::Telephony`] sends [`Command`]s into the inbox; the task applies them, sends SIP,
//!   and reports [`LineEvent`]s.
//! - Datagrams are parsed with `sip-core`; garbage is logged with its source and dropped.
//! - Every outgoing INVITE is a [`Leg`] keyed by its SIP Call-ID. A leg belongs to a call
//!   (customer or agent side) until the call ends; then it lingers for 32 s, detached, so
//!   late responses are still ACKed and late BYEs answered.
//! - A 50 ms tick drives retransmissions (RFC 3261 timers A/B/E/F), ring timeouts and
//!   registration expiry.
//! - Each call's media runs in its own task ([`crate::media`]); the driver only tells it where
//!   to send and when to bridge, hold or finish.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sip_core::auth::{self, Authorization, Challenge, Credentials, NonceCheck, NonceIssuer};
use sip_core::sdp::{self, Codec, SessionDescription, TELEPHONE_EVENT_PT};
use sip_core::transaction::{
    RetransmitTimer, TRANSACTION_TIMEOUT, TimerAction, new_branch, new_call_id, new_tag,
};
use sip_core::{Message, Method, NameAddr, ParseError, Request, Response, SipUri};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::media::{self, MediaCommand, MediaHandle};
use crate::tcp::{self, TcpEvent};
use crate::{
    CallId, DialRequest, ExtensionConfig, HangupSide, LineEvent, LockoutPolicy, Outcome,
    SipTransport, TrunkConfig, TrunkOptions, TrunkStatus,
};

/// The registrar's digest realm.
const REALM: &str = "outpost";
/// Registrar nonces are good for this long; older ones get `stale=true`.
const NONCE_MAX_AGE_SECS: u64 = 300;
/// Longest registration granted; phones asking for more are told this.
const MAX_REGISTRATION_SECS: u32 = 3600;
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

struct PendingRequest {
    branch: String,
    bytes: Vec<u8>,
    timer: RetransmitTimer,
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
    invite: Request,
    invite_timer: Option<RetransmitTimer>,
    state: LegState,
    /// Ring timeout while ringing; the give-up time for the final response while cancelling.
    deadline: Instant,
    linger_until: Option<Instant>,
    credentials: Option<Credentials>,
    auth_attempted: bool,
    ack: Option<Vec<u8>>,
    /// Given up before any provisional response: the CANCEL goes out with the first 1xx
    /// (RFC 3261 9.1), since a CANCEL that overtakes its INVITE is answered 481 and the
    /// customer's phone would ring on with nobody to stop it.
    cancel_pending: bool,
    /// Our BYE was challenged once and answered with credentials; a second challenge ends it.
    bye_auth_attempted: bool,
    local_sdp: Vec<u8>,
    extra_headers: Vec<(String, String)>,
    pending: Vec<PendingRequest>,
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

struct CachedResponse {
    bytes: Vec<u8>,
    expires_at: Instant,
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

/// The challenge to answer: SHA-256 when the server offers it, else the first usable one.
fn best_challenge(response: &Response, header: &str) -> Option<Result<Challenge, auth::AuthError>> {
    let mut parsed: Vec<Result<Challenge, auth::AuthError>> = response
        .headers
        .get_all(header)
        .map(Challenge::parse)
        .collect();
    if let Some(idx) = parsed.iter().position(|challenge| {
        challenge
            .as_ref()
            .is_ok_and(|challenge| challenge.algorithm == auth::Algorithm::Sha256)
    }) {
        return Some(parsed.swap_remove(idx));
    }
    if let Some(idx) = parsed.iter().position(Result::is_ok) {
        return Some(parsed.swap_remove(idx));
    }
    parsed.into_iter().next()
}

/// Where an SDP offer wants audio sent; `None` for hold by `c=0.0.0.0` or port 0.
fn offer_remote(offer: &SessionDescription) -> Option<SocketAddr> {
    let audio = offer.audio()?;
    let ip = audio.connection.or(offer.connection)?;
    if ip.is_unspecified() || audio.port == 0 {
        return None;
    }
    Some(SocketAddr::new(ip, audio.port))
}

/// Whether a re-INVITE's offer puts the call on hold: `sendonly`, `inactive`, or the old
/// RFC 2543 style `c=0.0.0.0`.
fn holds(offer: &[u8]) -> bool {
    let offer = String::from_utf8_lossy(offer);
    offer.lines().map(str::trim).any(|line| {
        line == "a=sendonly" || line == "a=inactive" || line.starts_with("c=IN IP4 0.0.0.0")
    })
}

/// Our answer to a re-INVITE: the same media as before with the direction mirrored
/// (`sendonly` answered `recvonly`, `inactive` or `c=0.0.0.0` answered `inactive`).
fn reinvite_answer(local_sdp: &[u8], offer: &[u8]) -> Vec<u8> {
    let offer = String::from_utf8_lossy(offer);
    let has = |attribute: &str| offer.lines().any(|line| line.trim() == attribute);
    let held_by_address = offer
        .lines()
        .any(|line| line.trim().starts_with("c=IN IP4 0.0.0.0"));
    let direction = if has("a=inactive") || held_by_address {
        "a=inactive"
    } else if has("a=sendonly") {
        "a=recvonly"
    } else if has("a=recvonly") {
        "a=sendonly"
    } else {
        "a=sendrecv"
    };
    let local = String::from_utf8_lossy(local_sdp);
    let mut answer = String::new();
    for line in local.lines() {
        let line = line.trim_end();
        if matches!(
            line,
            "a=sendrecv" | "a=sendonly" | "a=recvonly" | "a=inactive"
        ) {
            continue;
        }
        answer.push_str(line);
        answer.push_str("\r\n");
    }
    answer.push_str(direction);
    answer.push_str("\r\n");
    answer.into_bytes()
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
    responses: HashMap<String, CachedResponse>,
    nonces: NonceIssuer,
    events: mpsc::UnboundedSender<LineEvent>,
    recordings_dir: PathBuf,
    hold_audio: Arc<Vec<i16>>,
    media_timeout: Duration,
    /// Calls whose media task found the customer silent past `media_timeout`.
    dead_media: mpsc::UnboundedSender<CallId>,
    dead_media_inbox: Option<mpsc::UnboundedReceiver<CallId>>,
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
            responses: HashMap::new(),
            nonces: NonceIssuer::new(),
            events: setup.events,
            recordings_dir: setup.recordings_dir,
            hold_audio: setup.hold_audio,
            media_timeout: setup.media_timeout,
            dead_media,
            dead_media_inbox: Some(dead_media_inbox),
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

    // ---- commands -------------------------------------------------------------------------

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
                Some(call) if call.stage == Stage::Answered => {
                    call.media.send(MediaCommand::Hold(audio.map(|audio| audio.0)))
                }
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

    fn dial(&mut self, request: DialRequest) {
        let call_id = request.call;
        if self.calls.contains_key(&call_id) {
            warn!(
                call = call_id.0,
                "dial ignored: the call id is already in use"
            );
            return;
        }
        let failed = |driver: &Driver, status: u16| {
            driver.emit(LineEvent::Ended {
                call: call_id,
                outcome: Outcome::Failed { status },
                hangup_side: None,
                recording: None,
            });
        };
        // T9: one attempt per number at a time across the site, whichever trunk and task.
        let number = normalized_number(&request.number);
        if self
            .calls
            .values()
            .any(|call| normalized_number(&call.request.number) == number)
        {
            warn!(call = call_id.0, number = %request.number, "dial refused: this number already has a call in progress");
            failed(self, 0);
            return;
        }
        if !self.trunks.contains_key(&request.trunk) {
            warn!(call = call_id.0, trunk = %request.trunk, "dial failed: no trunk by that name is configured");
            failed(self, 0);
            return;
        }
        let trunk = match self.pick_trunk(&request.trunk, &[]) {
            Ok(trunk) => trunk,
            Err(status) => {
                warn!(call = call_id.0, trunk = %request.trunk, "dial refused: every channel of the trunk (and its failover trunks) is busy");
                failed(self, status);
                return;
            }
        };
        let (rtp_socket, rtp_port) = match self.rtp_ports.bind(self.rtp_bind_ip) {
            Ok(bound) => bound,
            Err(error) => {
                warn!(call = call_id.0, %error, "dial failed: no RTP port");
                failed(self, 0);
                return;
            }
        };
        let now = Instant::now();
        let offer = sdp::build_offer(self.local.ip(), rtp_port, u64::from(rand::random::<u32>()));
        let media = media::spawn(
            call_id,
            rtp_socket,
            self.hold_audio.clone(),
            self.media_timeout,
            self.dead_media.clone(),
        );
        let ring_deadline = now + request.ring_timeout;
        let sip_call_id =
            self.start_customer_leg(call_id, &trunk, &request, &offer, ring_deadline, now);
        info!(call = call_id.0, trunk = %trunk.name, number = %request.number, "dialing");
        self.calls.insert(
            call_id,
            Call {
                trunk: trunk.name.clone(),
                request,
                tried: vec![trunk.name],
                offer,
                ring_deadline,
                customer: sip_call_id,
                agent: None,
                stage: Stage::Dialing,
                answered: false,
                ringing_reported: false,
                codec: None,
                media,
            },
        );
        self.publish_trunks();
    }

    fn trunk_options(&self, name: &str) -> TrunkOptions {
        self.trunk_options.get(name).cloned().unwrap_or_default()
    }

    fn active_calls_on(&self, trunk: &str) -> usize {
        self.calls
            .values()
            .filter(|call| call.trunk == trunk)
            .count()
    }

    /// The trunk to use: `first`, else its failover trunks in order; untried, with a free
    /// channel, alive preferred. `Err(503)` when none has a free channel.
    fn pick_trunk(&self, first: &str, tried: &[String]) -> Result<TrunkConfig, u16> {
        let mut candidates = vec![first.to_string()];
        candidates.extend(self.trunk_options(first).failover);
        let usable: Vec<&TrunkConfig> = candidates
            .iter()
            .filter(|name| !tried.contains(name))
            .filter_map(|name| self.trunks.get(name))
            .filter(|trunk| self.active_calls_on(&trunk.name) < trunk.channels as usize)
            .collect();
        let alive = usable.iter().find(|trunk| {
            self.trunk_states
                .get(&trunk.name)
                .is_none_or(|state| state.alive)
        });
        alive
            .or(usable.first())
            .map(|trunk| (*trunk).clone())
            .ok_or(503)
    }

    /// Where requests for `trunk` go: its outbound proxy, else the trunk itself.
    fn trunk_destination(&self, trunk: &TrunkConfig) -> SocketAddr {
        self.trunk_options(&trunk.name)
            .outbound_proxy
            .unwrap_or(trunk.address)
    }

    /// Sends the INVITE toward `trunk` and records the leg; returns its SIP Call-ID.
    fn start_customer_leg(
        &mut self,
        call_id: CallId,
        trunk: &TrunkConfig,
        request: &DialRequest,
        offer: &[u8],
        ring_deadline: Instant,
        now: Instant,
    ) -> String {
        let sip_call_id = new_call_id(&self.local.ip().to_string());
        let credentials = match (&trunk.username, &trunk.password) {
            (Some(username), Some(password)) => Some(Credentials {
                username: username.clone(),
                password: password.clone(),
            }),
            _ => None,
        };
        let options = self.trunk_options(&trunk.name);
        let dialed = match &options.dial_pattern {
            Some(pattern) => pattern.replace("{number}", &request.number),
            None => request.number.clone(),
        };
        let mut extra_headers = Vec::new();
        if let Some(proxy) = options.outbound_proxy {
            let transport = match options.transport {
                SipTransport::Udp => "",
                SipTransport::Tcp => ";transport=tcp",
            };
            extra_headers.push(("Route".to_string(), format!("<sip:{proxy};lr{transport}>")));
        }
        let mut leg = Leg {
            owner: Some((call_id, Side::Customer)),
            sip_call_id: sip_call_id.clone(),
            peer: self.trunk_destination(trunk),
            request_uri: format!("sip:{dialed}@{}", trunk.domain),
            remote_target: None,
            from: format!(
                "<sip:{}@{}>;tag={}",
                request.caller_id,
                trunk.domain,
                new_tag()
            ),
            to: format!("<sip:{dialed}@{}>", trunk.domain),
            remote_tag: None,
            cseq: 1,
            invite: Request::new(Method::Invite, ""),
            invite_timer: None,
            state: LegState::Calling,
            deadline: ring_deadline,
            linger_until: None,
            credentials,
            auth_attempted: false,
            ack: None,
            cancel_pending: false,
            bye_auth_attempted: false,
            local_sdp: offer.to_vec(),
            extra_headers,
            pending: Vec::new(),
        };
        self.send_invite(&mut leg, None, now);
        self.legs.insert(sip_call_id.clone(), leg);
        sip_call_id
    }

    /// After the carrier failed the call with `status`: dials the next failover trunk.
    /// Returns false when there is none left (the caller then ends the call).
    fn try_failover(&mut self, call_id: CallId, status: u16) -> bool {
        let Some(call) = self.calls.get(&call_id) else {
            return false;
        };
        if call.answered {
            return false;
        }
        let first = call.request.trunk.clone();
        let tried = call.tried.clone();
        let Ok(trunk) = self.pick_trunk(&first, &tried) else {
            return false;
        };
        let now = Instant::now();
        let (request, offer, ring_deadline) =
            (call.request.clone(), call.offer.clone(), call.ring_deadline);
        if ring_deadline <= now {
            return false;
        }
        info!(call = call_id.0, status, from = %tried.join(","), to = %trunk.name, "failing over to the next trunk");
        let sip_call_id =
            self.start_customer_leg(call_id, &trunk, &request, &offer, ring_deadline, now);
        if let Some(call) = self.calls.get_mut(&call_id) {
            // The failed trunk's early media (if any) is gone with it.
            call.media.send(MediaCommand::NewCustomerLeg);
            call.codec = None;
            call.customer = sip_call_id;
            call.trunk = trunk.name.clone();
            call.tried.push(trunk.name);
        }
        self.publish_trunks();
        true
    }

    fn set_trunk_alive(&mut self, name: &str, alive: bool) {
        if let Some(state) = self.trunk_states.get_mut(name)
            && state.alive != alive
        {
            state.alive = alive;
            if alive {
                info!(trunk = %name, "trunk answers again; marked alive");
            } else {
                warn!(trunk = %name, "trunk does not answer; marked dead");
            }
            self.publish_trunks();
        }
    }

    fn trunk_by_peer(&self, peer: SocketAddr) -> Option<String> {
        self.trunks
            .values()
            .find(|trunk| trunk.address == peer || self.trunk_destination(trunk) == peer)
            .map(|trunk| trunk.name.clone())
    }

    fn publish_trunks(&self) {
        let snapshot: BTreeMap<String, TrunkStatus> = self
            .trunks
            .values()
            .map(|trunk| {
                let state = self.trunk_states.get(&trunk.name);
                let status = TrunkStatus {
                    name: trunk.name.clone(),
                    alive: state.is_none_or(|state| state.alive),
                    registered: state
                        .and_then(|state| state.registration.as_ref())
                        .map(|registration| registration.registered),
                    active_calls: self.active_calls_on(&trunk.name) as u32,
                };
                (trunk.name.clone(), status)
            })
            .collect();
        *self
            .shared
            .trunks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = snapshot;
    }

    fn bridge(
        &mut self,
        call_id: CallId,
        extension: String,
        ring_timeout: Duration,
        auto_answer: bool,
    ) {
        let missed = |driver: &Driver, reason: &str| {
            warn!(call = call_id.0, %extension, reason, "bridge refused");
            driver.emit(LineEvent::AgentMissed {
                call: call_id,
                extension: extension.clone(),
            });
        };
        let Some(call) = self.calls.get(&call_id) else {
            missed(self, "no such call");
            return;
        };
        if call.agent.is_some() {
            missed(self, "an agent is already being rung or talking on this call");
            return;
        }
        // The customer's codec first (no re-encoding), the other law as well: a call bridged
        // while ringing may not know the customer's codec yet, and the relay re-encodes.
        let codecs = match call.codec {
            Some(Codec::Pcma) => [Codec::Pcma, Codec::Pcmu],
            _ => [Codec::Pcmu, Codec::Pcma],
        };
        let Some(registration) = self.registrations.get(&extension) else {
            missed(self, "the extension is not registered");
            return;
        };
        let (contact_uri, target) = (registration.contact_uri.clone(), registration.target);
        let (rtp_socket, rtp_port) = match self.rtp_ports.bind(self.rtp_bind_ip) {
            Ok(bound) => bound,
            Err(error) => {
                missed(self, &error.to_string());
                return;
            }
        };
        let mut extra_headers = Vec::new();
        if auto_answer {
            // Phones differ in which hint they honour: Call-Info (Snom, Yealink, Grandstream,
            // baresip) and Alert-Info (Polycom, Cisco SPA); sending both covers the field.
            extra_headers.push((
                "Call-Info".to_string(),
                format!("<sip:{}>;answer-after=0", self.local.ip()),
            ));
            extra_headers.push((
                "Alert-Info".to_string(),
                format!("<sip:{}>;info=alert-autoanswer;delay=0", self.local.ip()),
            ));
        }
        let sip_call_id = new_call_id(&self.local.ip().to_string());
        let now = Instant::now();
        let mut leg = Leg {
            owner: Some((call_id, Side::Agent)),
            sip_call_id: sip_call_id.clone(),
            peer: target,
            request_uri: contact_uri,
            remote_target: None,
            from: format!("\"Outpost\" <sip:outpost@{}>;tag={}", self.local, new_tag()),
            to: format!("<sip:{extension}@{}>", self.local.ip()),
            remote_tag: None,
            cseq: 1,
            invite: Request::new(Method::Invite, ""),
            invite_timer: None,
            state: LegState::Calling,
            deadline: now + ring_timeout,
            linger_until: None,
            credentials: None,
            auth_attempted: false,
            ack: None,
            cancel_pending: false,
            bye_auth_attempted: false,
            local_sdp: sdp::build_audio(
                self.local.ip(),
                rtp_port,
                &codecs,
                Some(TELEPHONE_EVENT_PT),
                u64::from(rand::random::<u32>()),
            ),
            extra_headers,
            pending: Vec::new(),
        };
        self.send_invite(&mut leg, None, now);
        info!(call = call_id.0, %extension, %target, "ringing agent");
        self.legs.insert(sip_call_id.clone(), leg);
        if let Some(call) = self.calls.get_mut(&call_id) {
            call.agent = Some(AgentLeg {
                sip_call_id,
                extension,
                socket: Some(rtp_socket),
                ringing_reported: false,
            });
        }
    }

    fn hang_up(&mut self, call_id: CallId) {
        let Some(call) = self.calls.get(&call_id) else {
            debug!(
                call = call_id.0,
                "hangup ignored: no such call (already ended)"
            );
            return;
        };
        let outcome = match call.stage {
            Stage::Dialing => Outcome::NoAnswer,
            Stage::Answered => Outcome::Abandoned,
            Stage::Bridged { .. } if call.answered => Outcome::Answered,
            Stage::Bridged { .. } => Outcome::NoAnswer,
        };
        self.end_call(call_id, outcome, Some(HangupSide::System));
    }

    fn set_extensions(&mut self, extensions: Vec<ExtensionConfig>) {
        self.extensions = extensions
            .into_iter()
            .map(|ext| (ext.extension, ext.password))
            .collect();
        let removed: Vec<String> = self
            .registrations
            .keys()
            .filter(|extension| !self.extensions.contains_key(*extension))
            .cloned()
            .collect();
        for extension in removed {
            info!(%extension, "extension no longer provisioned; registration dropped");
            self.unregister(&extension);
        }
    }

    // ---- building requests --------------------------------------------------------------------

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

    /// Sends (or re-sends with new CSeq/credentials) the leg's INVITE and arms timer A/B.
    fn send_invite(&self, leg: &mut Leg, authorization: Option<(&str, String)>, now: Instant) {
        let mut invite = Request::new(Method::Invite, leg.request_uri.clone())
            .with_header("Via", self.via(leg.peer, &new_branch()))
            .with_header("Max-Forwards", "70")
            .with_header("From", leg.from.clone())
            .with_header("To", leg.to.clone())
            .with_header("Call-ID", leg.sip_call_id.clone())
            .with_header("CSeq", format!("{} INVITE", leg.cseq))
            .with_header("Contact", self.contact(leg.peer))
            .with_header("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO")
            .with_header("User-Agent", "Outpost");
        for (name, value) in &leg.extra_headers {
            invite.headers.push(name.clone(), value.clone());
        }
        if let Some((name, value)) = authorization {
            invite.headers.push(name, value);
        }
        invite.headers.push("Content-Type", "application/sdp");
        invite.body = leg.local_sdp.clone();
        self.send_to(&invite.to_bytes(), leg.peer);
        leg.invite = invite;
        leg.invite_timer = Some(RetransmitTimer::new(now, true));
    }

    fn to_with_remote_tag(leg: &Leg) -> String {
        match &leg.remote_tag {
            Some(tag) => format!("{};tag={tag}", leg.to),
            None => leg.to.clone(),
        }
    }

    fn send_ack_for_2xx(&self, leg: &mut Leg) {
        let ack = Request::new(
            Method::Ack,
            leg.remote_target
                .clone()
                .unwrap_or_else(|| leg.request_uri.clone()),
        )
        .with_header("Via", self.via(leg.peer, &new_branch()))
        .with_header("Max-Forwards", "70")
        .with_header("From", leg.from.clone())
        .with_header("To", Self::to_with_remote_tag(leg))
        .with_header("Call-ID", leg.sip_call_id.clone())
        .with_header("CSeq", format!("{} ACK", leg.cseq));
        let bytes = ack.to_bytes();
        self.send_to(&bytes, leg.peer);
        leg.ack = Some(bytes);
    }

    /// The hop-by-hop ACK for a non-2xx final response: same branch as the INVITE, the
    /// response's To (RFC 3261 section 17.1.1.3). Built from the response itself so
    /// retransmitted finals of older INVITEs (before digest) are ACKed correctly too.
    fn send_ack_for_failure(&self, leg: &Leg, response: &Response) {
        let mut ack = Request::new(Method::Ack, leg.request_uri.clone());
        if let Some(via) = response.headers.get("Via") {
            ack.headers.push("Via", via);
        }
        ack.headers.push("Max-Forwards", "70");
        if let Some(route) = leg.invite.headers.get("Route") {
            ack.headers.push("Route", route);
        }
        ack.headers.push("From", leg.from.clone());
        ack.headers
            .push("To", response.headers.get("To").unwrap_or_default());
        ack.headers.push("Call-ID", leg.sip_call_id.clone());
        let cseq_number = response.cseq().map(|cseq| cseq.number).unwrap_or(leg.cseq);
        ack.headers.push("CSeq", format!("{cseq_number} ACK"));
        self.send_to(&ack.to_bytes(), leg.peer);
    }

    fn send_non_invite(&self, leg: &mut Leg, request: Request, now: Instant) {
        let branch = request
            .top_via()
            .and_then(|via| via.branch().map(str::to_string))
            .unwrap_or_default();
        let bytes = request.to_bytes();
        self.send_to(&bytes, leg.peer);
        leg.pending.push(PendingRequest {
            branch,
            bytes,
            timer: RetransmitTimer::new(now, false),
        });
    }

    fn send_cancel(&self, leg: &mut Leg, now: Instant) {
        let mut cancel = Request::new(Method::Cancel, leg.invite.uri.clone());
        // CANCEL must match the INVITE's transaction: same Via (branch), From, To, Call-ID, CSeq number.
        if let Some(via) = leg.invite.headers.get("Via") {
            cancel.headers.push("Via", via);
        }
        cancel.headers.push("Max-Forwards", "70");
        if let Some(route) = leg.invite.headers.get("Route") {
            cancel.headers.push("Route", route);
        }
        cancel.headers.push("From", leg.from.clone());
        cancel.headers.push("To", leg.to.clone());
        cancel.headers.push("Call-ID", leg.sip_call_id.clone());
        cancel.headers.push("CSeq", format!("{} CANCEL", leg.cseq));
        self.send_non_invite(leg, cancel, now);
        leg.state = LegState::Cancelling;
        leg.deadline = now + TRANSACTION_TIMEOUT;
    }

    /// ACKs a 2xx from a second fork of our INVITE (To-tag `tag`, a dialog of its own) and
    /// ends that dialog with BYE, retransmitted like any BYE of the leg (RFC 3261 13.2.2.4):
    /// otherwise that device keeps resending its answer and stays connected, maybe billed.
    fn hang_up_fork(&self, leg: &mut Leg, response: &Response, tag: &str, now: Instant) {
        let target = response
            .headers
            .get("Contact")
            .and_then(|contact| NameAddr::parse(contact).ok())
            .map(|contact| contact.uri)
            .unwrap_or_else(|| leg.request_uri.clone());
        let invite_cseq = response.cseq().map(|cseq| cseq.number).unwrap_or(leg.cseq);
        let to = format!("{};tag={tag}", leg.to);
        let request = |method: Method, cseq: u32| {
            Request::new(method.clone(), target.clone())
                .with_header("Via", self.via(leg.peer, &new_branch()))
                .with_header("Max-Forwards", "70")
                .with_header("From", leg.from.clone())
                .with_header("To", to.clone())
                .with_header("Call-ID", leg.sip_call_id.clone())
                .with_header("CSeq", format!("{cseq} {method}"))
        };
        let ack = request(Method::Ack, invite_cseq);
        let bye = request(Method::Bye, invite_cseq.wrapping_add(1));
        info!(sip_call_id = %leg.sip_call_id, %tag, "a second fork answered; hanging it up");
        self.send_to(&ack.to_bytes(), leg.peer);
        self.send_non_invite(leg, bye, now);
    }

    /// A carrier that challenges BYE (401/407) gets it again with digest credentials, once:
    /// otherwise the customer leg would stay up, and billed, after we hung up.
    fn answer_bye_challenge(&mut self, sip_call_id: &str, response: &Response) {
        let Some(mut leg) = self.legs.remove(sip_call_id) else {
            return;
        };
        let (challenge_header, answer_header) = if response.status == 401 {
            ("WWW-Authenticate", "Authorization")
        } else {
            ("Proxy-Authenticate", "Proxy-Authorization")
        };
        match (best_challenge(response, challenge_header), leg.credentials.clone()) {
            (Some(Ok(challenge)), Some(credentials)) => {
                leg.bye_auth_attempted = true;
                let uri = leg
                    .remote_target
                    .clone()
                    .unwrap_or_else(|| leg.request_uri.clone());
                let value = challenge.answer(&credentials, "BYE", &uri, &new_tag(), 1);
                self.send_bye_with(&mut leg, Some((answer_header, value)), Instant::now());
            }
            (Some(Err(error)), _) => warn!(%error, "cannot answer the challenge to our BYE"),
            (None, _) => warn!(status = response.status, "BYE challenged without a {challenge_header} header"),
            (_, None) => warn!(status = response.status, "BYE challenged, but the trunk has no credentials"),
        }
        self.legs.insert(sip_call_id.to_string(), leg);
    }

    fn send_bye(&self, leg: &mut Leg, now: Instant) {
        self.send_bye_with(leg, None, now);
    }

    fn send_bye_with(&self, leg: &mut Leg, authorization: Option<(&str, String)>, now: Instant) {
        leg.cseq += 1;
        let mut bye = Request::new(
            Method::Bye,
            leg.remote_target
                .clone()
                .unwrap_or_else(|| leg.request_uri.clone()),
        )
        .with_header("Via", self.via(leg.peer, &new_branch()))
        .with_header("Max-Forwards", "70")
        .with_header("From", leg.from.clone())
        .with_header("To", Self::to_with_remote_tag(leg))
        .with_header("Call-ID", leg.sip_call_id.clone())
        .with_header("CSeq", format!("{} BYE", leg.cseq))
        .with_header("User-Agent", "Outpost");
        if let Some((name, value)) = authorization {
            bye = bye.with_header(name, value);
        }
        self.send_non_invite(leg, bye, now);
        leg.state = LegState::Terminated;
    }

    /// Ends a leg from our side in whatever way its state calls for, and detaches it.
    fn release_leg(&mut self, sip_call_id: &str, now: Instant) {
        let Some(mut leg) = self.legs.remove(sip_call_id) else {
            return;
        };
        match leg.state {
            LegState::Calling => {
                leg.cancel_pending = true;
                leg.state = LegState::Cancelling;
            }
            LegState::Proceeding => self.send_cancel(&mut leg, now),
            LegState::Confirmed => self.send_bye(&mut leg, now),
            LegState::Cancelling | LegState::Terminated => {}
        }
        leg.owner = None;
        leg.linger_until = Some(now + TRANSACTION_TIMEOUT);
        self.legs.insert(sip_call_id.to_string(), leg);
    }

    // ---- call endings -------------------------------------------------------------------------

    /// Releases every leg of the call, finishes its media and reports [`LineEvent::Ended`]
    /// once the recording (if any) is written.
    fn end_call(&mut self, call_id: CallId, outcome: Outcome, hangup_side: Option<HangupSide>) {
        let Some(call) = self.calls.remove(&call_id) else {
            return;
        };
        let now = Instant::now();
        self.release_leg(&call.customer, now);
        if let Some(agent) = &call.agent {
            self.release_leg(&agent.sip_call_id, now);
        }
        // The recording has been streamed since the bridge; `Some` keeps it.
        let recording_path =
            matches!(call.stage, Stage::Bridged { .. }).then(|| self.recordings_dir.clone());
        let (reply, recording) = oneshot::channel();
        call.media.send(MediaCommand::Finish {
            recording_path,
            reply,
        });
        info!(call = call_id.0, ?outcome, ?hangup_side, "call ended");
        self.publish_trunks();
        let events = self.events.clone();
        tokio::spawn(async move {
            let recording = recording.await.ok().flatten();
            let _ = events.send(LineEvent::Ended {
                call: call_id,
                outcome,
                hangup_side,
                recording,
            });
        });
    }

    /// The agent leg did not become a bridge: tell the appliance and keep the customer.
    fn agent_missed(&mut self, call_id: CallId) {
        let Some(call) = self.calls.get_mut(&call_id) else {
            return;
        };
        let Some(agent) = call.agent.take() else {
            return;
        };
        let now = Instant::now();
        self.release_leg(&agent.sip_call_id, now);
        info!(call = call_id.0, extension = %agent.extension, "agent missed the call");
        self.emit(LineEvent::AgentMissed {
            call: call_id,
            extension: agent.extension,
        });
    }

    // ---- incoming packets ---------------------------------------------------------------------

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

    fn on_response(&mut self, response: Response, source: SocketAddr) {
        let Ok(cseq) = response.cseq() else { return };
        let sip_call_id = response.call_id().to_string();
        if (cseq.method == Method::Options || cseq.method == Method::Register)
            && self.on_trunk_response(&response, &cseq.method)
        {
            return;
        }
        if cseq.method == Method::Invite
            && response.status < 200
            && let Some(leg) = self.legs.get(&sip_call_id)
            && leg.owner.is_some_and(|(_, side)| side == Side::Customer)
            && let Some(trunk) = self.trunk_by_peer(leg.peer)
        {
            self.set_trunk_alive(&trunk, true);
        }
        let Some(leg) = self.legs.get_mut(&sip_call_id) else {
            debug!(%source, status = response.status, "response for no known call dropped");
            return;
        };
        if cseq.method != Method::Invite {
            if response.status >= 200 {
                let branch = response
                    .top_via()
                    .and_then(|via| via.branch().map(str::to_string));
                let before = leg.pending.len();
                leg.pending
                    .retain(|pending| Some(&pending.branch) != branch.as_ref());
                let ours = leg.pending.len() < before;
                if ours
                    && cseq.method == Method::Bye
                    && matches!(response.status, 401 | 407)
                    && !leg.bye_auth_attempted
                {
                    self.answer_bye_challenge(&sip_call_id, &response);
                }
            }
            return;
        }
        if cseq.number != leg.cseq {
            // A retransmitted final answer to an INVITE we already replaced (after a digest challenge).
            if response.status >= 300 {
                let leg = &self.legs[&sip_call_id];
                self.send_ack_for_failure(leg, &response);
            }
            return;
        }
        leg.invite_timer = None;
        match response.status {
            100..=199 => self.on_provisional(&sip_call_id, &response),
            200..=299 => self.on_invite_success(&sip_call_id, &response),
            _ => self.on_invite_failure(&sip_call_id, &response),
        }
    }

    fn on_provisional(&mut self, sip_call_id: &str, response: &Response) {
        let Some(mut leg) = self.legs.remove(sip_call_id) else {
            return;
        };
        if leg.state == LegState::Calling {
            leg.state = LegState::Proceeding;
        }
        if leg.cancel_pending {
            leg.cancel_pending = false;
            self.send_cancel(&mut leg, Instant::now());
        }
        let leg = self.legs.entry(sip_call_id.to_string()).or_insert(leg);
        if !matches!(response.status, 180 | 183) {
            return;
        }
        let Some((call_id, side)) = leg.owner else {
            return;
        };
        let Some(call) = self.calls.get_mut(&call_id) else {
            return;
        };
        if side == Side::Customer && call.answered {
            // A provisional response overtaken by the answer (reordered, or from another
            // fork): the answer's media stands.
        } else if side == Side::Customer && !response.body.is_empty() {
            // Early media: the network's ringback or announcement. Relayed to an agent already
            // bridged (an agent's own call) and recorded; a waiting customer hears nothing of it.
            match SessionDescription::parse(&response.body)
                .and_then(|answer| answer.audio_path(&[Codec::Pcmu, Codec::Pcma]))
            {
                // `c=0.0.0.0` or port 0: media announced but none will flow.
                Ok(path) if path.remote.ip().is_unspecified() || path.remote.port() == 0 => {
                    call.media.send(MediaCommand::Ringing);
                }
                Ok(path) => {
                    debug!(call = call_id.0, codec = ?path.codec, remote = %path.remote, "early media");
                    call.codec = Some(path.codec);
                    call.media.send(MediaCommand::CustomerMedia {
                        remote: path.remote,
                        codec: path.codec,
                    });
                }
                Err(error) => {
                    debug!(call = call_id.0, %error, "provisional response with unusable SDP; no early media");
                    call.media.send(MediaCommand::Ringing);
                }
            }
        } else if side == Side::Customer {
            // Ringing with no audio from the network: an agent on the call hears our ringback.
            call.media.send(MediaCommand::Ringing);
        }
        let event = match side {
            Side::Customer if !call.ringing_reported => {
                call.ringing_reported = true;
                LineEvent::Ringing { call: call_id }
            }
            Side::Agent => match call.agent.as_mut() {
                Some(agent) if !agent.ringing_reported => {
                    agent.ringing_reported = true;
                    LineEvent::AgentRinging {
                        call: call_id,
                        extension: agent.extension.clone(),
                    }
                }
                _ => return,
            },
            Side::Customer => return,
        };
        self.emit(event);
    }

    fn on_invite_success(&mut self, sip_call_id: &str, response: &Response) {
        let Some(mut leg) = self.legs.remove(sip_call_id) else {
            return;
        };
        let now = Instant::now();
        if leg.ack.is_some() {
            let tag = response
                .headers
                .get("To")
                .and_then(|to| NameAddr::parse(to).ok())
                .and_then(|to| to.tag().map(str::to_string));
            match tag {
                // Another fork answered too (a second dialog): the call keeps the first.
                Some(tag) if Some(&tag) != leg.remote_tag.as_ref() => {
                    self.hang_up_fork(&mut leg, response, &tag, now)
                }
                // 2xx retransmission: our ACK was lost.
                _ => {
                    if let Some(ack) = &leg.ack {
                        self.send_to(ack, leg.peer);
                    }
                }
            }
            self.legs.insert(sip_call_id.to_string(), leg);
            return;
        }
        leg.remote_tag = response
            .headers
            .get("To")
            .and_then(|to| NameAddr::parse(to).ok())
            .and_then(|to| to.tag().map(str::to_string));
        leg.remote_target = response
            .headers
            .get("Contact")
            .and_then(|contact| NameAddr::parse(contact).ok())
            .map(|contact| contact.uri);
        self.send_ack_for_2xx(&mut leg);
        let was_cancelling = leg.state == LegState::Cancelling;
        leg.state = LegState::Confirmed;
        let owner = leg.owner;
        let answer = SessionDescription::parse(&response.body);
        self.legs.insert(sip_call_id.to_string(), leg);

        let Some((call_id, side)) = owner.filter(|_| !was_cancelling) else {
            match owner {
                // The answer crossed our CANCEL at the ring timeout: no 487 will come, so the
                // call ends here, unanswered, and the answer gets BYE.
                Some((call_id, Side::Customer)) => {
                    self.end_call(call_id, Outcome::NoAnswer, Some(HangupSide::System))
                }
                // Answered after we gave up on it: hang up the answer right away.
                _ => self.release_leg(sip_call_id, now),
            }
            return;
        };
        match side {
            Side::Customer => {
                let path = answer.and_then(|answer| answer.audio_path(&[Codec::Pcmu, Codec::Pcma]));
                match path {
                    Ok(path) => {
                        if let Some(call) = self.calls.get_mut(&call_id) {
                            call.codec = Some(path.codec);
                            call.answered = true;
                            // Bridged already when the agent took their own call while it rang.
                            if call.stage == Stage::Dialing {
                                call.stage = Stage::Answered;
                            }
                            call.media.send(MediaCommand::CustomerMedia {
                                remote: path.remote,
                                codec: path.codec,
                            });
                            call.media.send(MediaCommand::Answered);
                        }
                        info!(call = call_id.0, codec = ?path.codec, remote = %path.remote, "customer answered");
                        self.emit(LineEvent::Answered { call: call_id });
                    }
                    Err(error) => {
                        warn!(call = call_id.0, %error, "customer answered with unusable SDP; hanging up");
                        self.end_call(
                            call_id,
                            Outcome::Failed { status: 488 },
                            Some(HangupSide::System),
                        );
                    }
                }
            }
            Side::Agent => {
                let path = answer.and_then(|answer| answer.audio_path(&[Codec::Pcmu, Codec::Pcma]));
                match path {
                    Ok(path) => {
                        let Some(call) = self.calls.get_mut(&call_id) else {
                            return;
                        };
                        let Some(agent) = call.agent.as_mut() else {
                            return;
                        };
                        let Some(agent_socket) = agent.socket.take() else {
                            return;
                        };
                        let extension = agent.extension.clone();
                        call.media.send(MediaCommand::Bridge {
                            agent_socket,
                            agent_remote: path.remote,
                            agent_codec: path.codec,
                            recording_path: self.recordings_dir.join(format!(
                                "call-{}-{}.wav",
                                call_id.0,
                                unix_millis()
                            )),
                        });
                        call.stage = Stage::Bridged {
                            extension: extension.clone(),
                        };
                        info!(call = call_id.0, %extension, "bridged");
                        self.emit(LineEvent::Bridged {
                            call: call_id,
                            extension,
                        });
                    }
                    Err(error) => {
                        warn!(call = call_id.0, %error, "agent answered with unusable SDP");
                        self.agent_missed(call_id);
                    }
                }
            }
        }
    }

    fn on_invite_failure(&mut self, sip_call_id: &str, response: &Response) {
        if let Some(leg) = self.legs.get(sip_call_id)
            && leg.owner.is_some_and(|(_, side)| side == Side::Customer)
            && let Some(trunk) = self.trunk_by_peer(leg.peer)
        {
            // Any answer, even a refusal, shows the trunk is up.
            self.set_trunk_alive(&trunk, true);
        }
        let Some(mut leg) = self.legs.remove(sip_call_id) else {
            return;
        };
        self.send_ack_for_failure(&leg, response);
        if leg.state == LegState::Terminated || leg.state == LegState::Confirmed {
            self.legs.insert(sip_call_id.to_string(), leg);
            return;
        }
        let now = Instant::now();
        if matches!(response.status, 401 | 407)
            && leg.state != LegState::Cancelling
            && !leg.auth_attempted
            && let Some(credentials) = leg.credentials.clone()
        {
            let (challenge_header, answer_header) = if response.status == 401 {
                ("WWW-Authenticate", "Authorization")
            } else {
                ("Proxy-Authenticate", "Proxy-Authorization")
            };
            match best_challenge(response, challenge_header) {
                Some(Ok(challenge)) => {
                    leg.auth_attempted = true;
                    leg.cseq += 1;
                    let value =
                        challenge.answer(&credentials, "INVITE", &leg.request_uri, &new_tag(), 1);
                    self.send_invite(&mut leg, Some((answer_header, value)), now);
                    leg.state = LegState::Calling;
                    self.legs.insert(sip_call_id.to_string(), leg);
                    return;
                }
                Some(Err(error)) => warn!(%error, "cannot answer the carrier's digest challenge"),
                None => warn!(
                    status = response.status,
                    "challenge without a {challenge_header} header"
                ),
            }
        }
        let was_cancelling = leg.state == LegState::Cancelling;
        leg.state = LegState::Terminated;
        let owner = leg.owner.take();
        leg.linger_until = Some(now + TRANSACTION_TIMEOUT);
        self.legs.insert(sip_call_id.to_string(), leg);
        match owner {
            None => {}
            Some((call_id, Side::Customer))
                if matches!(response.status, 500 | 502 | 503 | 504)
                    && !was_cancelling
                    && self.try_failover(call_id, response.status) => {}
            Some((call_id, Side::Customer)) => {
                let outcome = match response.status {
                    486 | 600 => Outcome::Busy,
                    603 => Outcome::Rejected,
                    408 | 480 => Outcome::NoAnswer,
                    487 if was_cancelling => Outcome::NoAnswer,
                    status => Outcome::Failed { status },
                };
                let hangup_side =
                    (outcome == Outcome::NoAnswer && was_cancelling).then_some(HangupSide::System);
                self.end_call(call_id, outcome, hangup_side);
            }
            Some((call_id, Side::Agent)) => {
                info!(
                    call = call_id.0,
                    status = response.status,
                    "agent leg refused"
                );
                self.agent_missed(call_id);
            }
        }
    }

    fn on_request(&mut self, request: Request, source: SocketAddr) {
        let branch = request
            .top_via()
            .and_then(|via| via.branch().map(str::to_string))
            .unwrap_or_default();
        let cache_key = format!("{branch}|{}|{}", request.method, request.call_id());
        if request.method != Method::Ack
            && let Some(cached) = self.responses.get(&cache_key)
        {
            // A retransmitted request: repeat our answer instead of acting twice.
            self.send_to(&cached.bytes, source);
            return;
        }
        let in_dialog = self.legs.contains_key(request.call_id());
        let response = match request.method {
            Method::Register => Some(self.on_register(&request, source)),
            _ if in_dialog => self.on_in_dialog(&request, source),
            Method::Ack => None,
            Method::Invite => {
                warn!(%source, uri = %request.uri, "refusing an inbound INVITE: this box places calls only (no open relay)");
                Some(Response::to_request(
                    &request,
                    403,
                    "Forbidden",
                    Some(&new_tag()),
                ))
            }
            Method::Options => Some(
                Response::to_request(&request, 200, "OK", Some(&new_tag()))
                    .with_header("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REGISTER"),
            ),
            _ => Some(Response::to_request(
                &request,
                481,
                "Call/Transaction Does Not Exist",
                None,
            )),
        };
        if let Some(response) = response {
            let bytes = response.to_bytes();
            self.send_to(&bytes, source);
            self.responses.insert(
                cache_key,
                CachedResponse {
                    bytes,
                    expires_at: Instant::now() + TRANSACTION_TIMEOUT,
                },
            );
        }
    }

    fn on_in_dialog(&mut self, request: &Request, source: SocketAddr) -> Option<Response> {
        let sip_call_id = request.call_id().to_string();
        let leg = self.legs.get_mut(&sip_call_id)?;
        let from_tag = request
            .headers
            .get("From")
            .and_then(|from| NameAddr::parse(from).ok())
            .and_then(|from| from.tag().map(str::to_string));
        if request.method != Method::Ack && leg.remote_tag.is_some() && from_tag != leg.remote_tag {
            warn!(%source, method = %request.method, "in-dialog request with a foreign From tag refused");
            return Some(Response::to_request(
                request,
                481,
                "Call/Transaction Does Not Exist",
                None,
            ));
        }
        match request.method {
            Method::Ack => None,
            Method::Bye => {
                let owner = leg.owner.take();
                leg.state = LegState::Terminated;
                leg.linger_until = Some(Instant::now() + TRANSACTION_TIMEOUT);
                let response = Response::to_request(request, 200, "OK", None);
                if let Some((call_id, side)) = owner {
                    self.on_remote_bye(call_id, side);
                }
                Some(response)
            }
            Method::Invite => {
                // A re-INVITE: hold or resume by that party, a session refresh, or moved
                // media. The other leg's SIP is untouched; while held it hears hold audio.
                let owner = leg.owner;
                let answer = reinvite_answer(&leg.local_sdp, &request.body);
                let held = holds(&request.body);
                let moved = SessionDescription::parse(&request.body)
                    .ok()
                    .and_then(|offer| offer_remote(&offer));
                let mut response = Response::to_request(request, 200, "OK", None)
                    .with_header("Contact", self.contact(source))
                    .with_header("Content-Type", "application/sdp");
                response.body = answer;
                if let Some((call_id, side)) = owner
                    && let Some(call) = self.calls.get(&call_id)
                    && matches!(call.stage, Stage::Bridged { .. })
                {
                    info!(call = call_id.0, ?side, held, "re-INVITE: hold state");
                    call.media.send(MediaCommand::PeerHold { agent_side: side == Side::Agent, held });
                }
                if let (Some((call_id, side)), Some(remote)) = (owner, moved)
                    && let Some(call) = self.calls.get(&call_id)
                {
                    info!(call = call_id.0, ?side, %remote, "re-INVITE: media target updated");
                    call.media.send(MediaCommand::Retarget {
                        agent_side: side == Side::Agent,
                        remote,
                    });
                }
                Some(response)
            }
            Method::Options | Method::Info | Method::Update | Method::Notify => {
                Some(Response::to_request(request, 200, "OK", None))
            }
            Method::Cancel => Some(Response::to_request(
                request,
                481,
                "Call/Transaction Does Not Exist",
                None,
            )),
            _ => Some(Response::to_request(request, 501, "Not Implemented", None)),
        }
    }

    fn on_remote_bye(&mut self, call_id: CallId, side: Side) {
        let Some(call) = self.calls.get(&call_id) else {
            return;
        };
        match (side, &call.stage) {
            (Side::Customer, Stage::Bridged { .. }) => {
                self.end_call(call_id, Outcome::Answered, Some(HangupSide::Customer))
            }
            (Side::Customer, _) => {
                self.end_call(call_id, Outcome::Abandoned, Some(HangupSide::Customer))
            }
            (Side::Agent, Stage::Bridged { .. }) if call.answered => {
                self.end_call(call_id, Outcome::Answered, Some(HangupSide::Agent))
            }
            // The agent gave up their own call while it still rang.
            (Side::Agent, Stage::Bridged { .. }) => {
                self.end_call(call_id, Outcome::NoAnswer, Some(HangupSide::Agent))
            }
            (Side::Agent, _) => self.agent_missed(call_id),
        }
    }

    // ---- registrar ----------------------------------------------------------------------------

    fn challenge(&self, request: &Request, stale: bool) -> Response {
        let nonce = self.nonces.issue(unix_secs());
        Response::to_request(request, 401, "Unauthorized", Some(&new_tag())).with_header(
            "WWW-Authenticate",
            auth::challenge_header(REALM, &nonce, auth::Algorithm::Md5, stale),
        )
    }

    fn on_register(&mut self, request: &Request, source: SocketAddr) -> Response {
        let to_user = request
            .headers
            .get("To")
            .and_then(|to| NameAddr::parse(to).ok())
            .and_then(|to| SipUri::parse(&to.uri).ok())
            .and_then(|uri| uri.user);
        let Some(extension) = to_user else {
            warn!(%source, "REGISTER without a user in To refused");
            return Response::to_request(
                request,
                400,
                "Bad Request (To has no extension)",
                Some(&new_tag()),
            );
        };
        let now = Instant::now();
        if let Some(failures) = self.auth_failures.get(&source.ip())
            && failures.locked_until.is_some_and(|until| until > now)
        {
            warn!(%source, %extension, "REGISTER refused: this address is locked out after repeated failed logins");
            return Response::to_request(request, 403, "Forbidden (locked out)", Some(&new_tag()));
        }
        let Some(authorization) = request.headers.get("Authorization") else {
            return self.challenge(request, false);
        };
        let authorization = match Authorization::parse(authorization) {
            Ok(authorization) => authorization,
            Err(error) => {
                warn!(%source, %extension, %error, "REGISTER with an unusable Authorization header");
                return self.challenge(request, false);
            }
        };
        match self
            .nonces
            .check(&authorization.nonce, unix_secs(), NONCE_MAX_AGE_SECS)
        {
            NonceCheck::Valid => {}
            NonceCheck::Stale => return self.challenge(request, true),
            NonceCheck::Invalid => return self.challenge(request, false),
        }
        // Unknown extensions and wrong passwords get the same answer, so the registrar does
        // not reveal which extensions exist.
        let verified = self.extensions.get(&extension).is_some_and(|password| {
            authorization.username == extension
                && authorization.realm == REALM
                && authorization.verify("REGISTER", password)
        });
        if !verified {
            warn!(%source, %extension, "REGISTER refused: unknown extension or wrong password");
            self.note_auth_failure(source.ip(), now);
            return Response::to_request(request, 403, "Forbidden", Some(&new_tag()));
        }
        self.auth_failures.remove(&source.ip());

        let contacts: Vec<&str> = request
            .headers
            .get_all("Contact")
            .flat_map(sip_core::message::split_top_level_commas)
            .collect();
        let header_expires = request
            .headers
            .get("Expires")
            .and_then(|value| value.trim().parse::<u32>().ok());
        let ok = Response::to_request(request, 200, "OK", Some(&new_tag()));
        if contacts.first() == Some(&"*") {
            self.unregister(&extension);
            return ok;
        }
        let Some(contact) = contacts
            .first()
            .and_then(|contact| NameAddr::parse(contact).ok())
        else {
            // A query: report the current binding.
            return match self.registrations.get(&extension) {
                Some(registration) => {
                    let remaining = registration
                        .expires_at
                        .saturating_duration_since(Instant::now())
                        .as_secs();
                    ok.with_header(
                        "Contact",
                        format!("<{}>;expires={remaining}", registration.contact_uri),
                    )
                }
                None => ok,
            };
        };
        let expires = contact
            .param("expires")
            .and_then(|value| value.parse::<u32>().ok())
            .or(header_expires)
            .unwrap_or(MAX_REGISTRATION_SECS)
            .min(MAX_REGISTRATION_SECS);
        if expires == 0 {
            // Only the binding it names goes: an agent's old phone signing off must not
            // unregister the phone the extension moved to.
            let names_current = self
                .registrations
                .get(&extension)
                .is_some_and(|registration| registration.contact_uri == contact.uri);
            if names_current {
                self.unregister(&extension);
            } else {
                debug!(%extension, contact = %contact.uri, "unregister of a binding no longer held; current one kept");
            }
            return ok;
        }
        // Route to the Contact when it names an address; otherwise (a hostname) to where the
        // REGISTER came from.
        let target = SipUri::parse(&contact.uri)
            .ok()
            .and_then(|uri| uri.socket_addr())
            .unwrap_or(source);
        self.registrations.insert(
            extension.clone(),
            Registration {
                contact_uri: contact.uri.clone(),
                target,
                expires_at: Instant::now() + Duration::from_secs(u64::from(expires)),
            },
        );
        self.publish_registrations();
        info!(%extension, %target, expires, "extension registered");
        self.emit(LineEvent::ExtensionRegistered {
            extension,
            contact: target,
        });
        ok.with_header("Contact", format!("<{}>;expires={expires}", contact.uri))
    }

    fn note_auth_failure(&mut self, ip: IpAddr, now: Instant) {
        let policy = self.lockout;
        let failures = self.auth_failures.entry(ip).or_insert(AuthFailures {
            count: 0,
            window_start: now,
            locked_until: None,
        });
        if now.duration_since(failures.window_start) > policy.window {
            failures.count = 0;
            failures.window_start = now;
        }
        failures.count += 1;
        if failures.count >= policy.max_failures {
            warn!(%ip, failures = failures.count, lockout_secs = policy.lockout.as_secs(), "too many failed registrar logins; locking the address out");
            failures.locked_until = Some(now + policy.lockout);
            failures.count = 0;
            failures.window_start = now;
        }
    }

    fn unregister(&mut self, extension: &str) {
        if self.registrations.remove(extension).is_some() {
            self.publish_registrations();
            info!(%extension, "extension unregistered");
            self.emit(LineEvent::ExtensionUnregistered {
                extension: extension.to_string(),
            });
        }
    }

    fn publish_registrations(&self) {
        let snapshot: BTreeMap<String, SocketAddr> = self
            .registrations
            .iter()
            .map(|(extension, registration)| (extension.clone(), registration.target))
            .collect();
        // A poisoned lock only means another thread panicked mid-read; the map is still whole.
        *self
            .shared
            .registered
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = snapshot;
    }

    // ---- timers -------------------------------------------------------------------------------

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
        self.responses.retain(|_, cached| cached.expires_at > now);
    }

    /// OPTIONS health checks and REGISTER refreshes toward trunks.
    fn tick_trunks(&mut self, now: Instant) {
        self.auth_failures.retain(|_, failures| {
            failures.locked_until.is_some_and(|until| until > now)
                || now.duration_since(failures.window_start) <= self.lockout.window
        });
        let names: Vec<String> = self.trunk_states.keys().cloned().collect();
        for name in names {
            let Some(trunk) = self.trunks.get(&name).cloned() else {
                continue;
            };
            let options = self.trunk_options(&name);
            let destination = self.trunk_destination(&trunk);
            if let Some(interval) = options.health_check
                && let Some(state) = self.trunk_states.get(&name)
                && state.next_check.is_some_and(|at| at <= now)
            {
                if state.options_pending.is_some() {
                    self.set_trunk_alive(&name, false);
                }
                let call_id = new_call_id(&self.local.ip().to_string());
                let mut options_request =
                    Request::new(Method::Options, format!("sip:{}", trunk.domain))
                        .with_header("Via", self.via(destination, &new_branch()))
                        .with_header("Max-Forwards", "70")
                        .with_header(
                            "From",
                            format!("<sip:outpost@{}>;tag={}", trunk.domain, new_tag()),
                        )
                        .with_header("To", format!("<sip:{}>", trunk.domain))
                        .with_header("Call-ID", call_id.clone())
                        .with_header("CSeq", "1 OPTIONS")
                        .with_header("Contact", self.contact(destination))
                        .with_header("User-Agent", "Outpost");
                if let Some(proxy) = options.outbound_proxy {
                    options_request
                        .headers
                        .push("Route", format!("<sip:{proxy};lr>"));
                }
                self.send_to(&options_request.to_bytes(), destination);
                if let Some(state) = self.trunk_states.get_mut(&name) {
                    state.options_pending = Some(call_id);
                    state.next_check = Some(now + interval);
                }
            }
            self.tick_trunk_registration(&trunk, &options, destination, now);
        }
    }

    fn tick_trunk_registration(
        &mut self,
        trunk: &TrunkConfig,
        options: &TrunkOptions,
        destination: SocketAddr,
        now: Instant,
    ) {
        let reliable = self.is_tcp(destination);
        let Some(mut registration) = self
            .trunk_states
            .get_mut(&trunk.name)
            .and_then(|state| state.registration.take())
        else {
            return;
        };
        let mut gave_up = false;
        if let Some((bytes, timer)) = registration.in_flight.as_mut() {
            match timer.poll(now) {
                TimerAction::Retransmit if !reliable => self.send_to(bytes, destination),
                TimerAction::Retransmit | TimerAction::WaitUntil(_) => {}
                TimerAction::GiveUp => gave_up = true,
            }
        }
        if gave_up {
            warn!(trunk = %trunk.name, "no answer to REGISTER within 32 s; retrying in 30 s");
            registration.in_flight = None;
            registration.registered = false;
            registration.next_at = now + Duration::from_secs(30);
        }
        if registration.in_flight.is_none() && registration.next_at <= now {
            registration.auth_attempted = false;
            self.send_trunk_register(trunk, options, destination, &mut registration, None, now);
        }
        if let Some(state) = self.trunk_states.get_mut(&trunk.name) {
            state.registration = Some(registration);
        }
        self.publish_trunks();
    }

    fn send_trunk_register(
        &self,
        trunk: &TrunkConfig,
        options: &TrunkOptions,
        destination: SocketAddr,
        registration: &mut TrunkRegState,
        authorization: Option<(&str, String)>,
        now: Instant,
    ) {
        registration.cseq += 1;
        let mut register = Request::new(Method::Register, format!("sip:{}", trunk.domain))
            .with_header("Via", self.via(destination, &new_branch()))
            .with_header("Max-Forwards", "70")
            .with_header(
                "From",
                format!(
                    "<sip:{}@{}>;tag={}",
                    registration.user, trunk.domain, registration.from_tag
                ),
            )
            .with_header(
                "To",
                format!("<sip:{}@{}>", registration.user, trunk.domain),
            )
            .with_header("Call-ID", registration.call_id.clone())
            .with_header("CSeq", format!("{} REGISTER", registration.cseq))
            .with_header(
                "Contact",
                if self.is_tcp(destination) {
                    format!("<sip:{}@{};transport=tcp>", registration.user, self.local)
                } else {
                    format!("<sip:{}@{}>", registration.user, self.local)
                },
            )
            .with_header("Expires", registration.expires.as_secs().to_string())
            .with_header("User-Agent", "Outpost");
        if let Some(proxy) = options.outbound_proxy {
            register.headers.push("Route", format!("<sip:{proxy};lr>"));
        }
        if let Some((name, value)) = authorization {
            register.headers.push(name, value);
        }
        let bytes = register.to_bytes();
        self.send_to(&bytes, destination);
        registration.in_flight = Some((bytes, RetransmitTimer::new(now, false)));
    }

    /// Handles a response to a trunk OPTIONS or REGISTER; false if it is not one of ours.
    fn on_trunk_response(&mut self, response: &Response, method: &Method) -> bool {
        let call_id = response.call_id();
        let names: Vec<String> = self.trunk_states.keys().cloned().collect();
        for name in names {
            let Some(state) = self.trunk_states.get_mut(&name) else {
                continue;
            };
            if *method == Method::Options && state.options_pending.as_deref() == Some(call_id) {
                state.options_pending = None;
                // Any answer (even 404 or 405) proves the trunk is reachable.
                self.set_trunk_alive(&name, true);
                return true;
            }
            let is_ours = state
                .registration
                .as_ref()
                .is_some_and(|registration| registration.call_id == call_id);
            if *method != Method::Register || !is_ours {
                continue;
            }
            if response.status < 200 {
                return true;
            }
            let Some(mut registration) = state.registration.take() else {
                return true;
            };
            let Some(trunk) = self.trunks.get(&name).cloned() else {
                return true;
            };
            let options = self.trunk_options(&name);
            let destination = self.trunk_destination(&trunk);
            let now = Instant::now();
            let current = response
                .cseq()
                .is_ok_and(|cseq| cseq.number == registration.cseq);
            if current {
                registration.in_flight = None;
                match response.status {
                    200..=299 => {
                        // Our own binding's expiry (the carrier lists every binding of the
                        // account), never more than we asked for: a registrar may shorten it
                        // only, and a huge value must not push the refresh past the end of time.
                        let ours = self.local.to_string();
                        let granted = response
                            .headers
                            .get_all("Contact")
                            .flat_map(sip_core::message::split_top_level_commas)
                            .filter_map(|contact| NameAddr::parse(contact).ok())
                            .filter(|contact| contact.uri.contains(&ours))
                            .find_map(|contact| {
                                contact
                                    .param("expires")
                                    .and_then(|value| value.parse::<u64>().ok())
                            })
                            .or_else(|| {
                                response
                                    .headers
                                    .get("Expires")
                                    .and_then(|value| value.trim().parse().ok())
                            })
                            .unwrap_or(registration.expires.as_secs())
                            .min(registration.expires.as_secs())
                            .max(2);
                        if !registration.registered {
                            info!(trunk = %name, granted, "registered at the trunk");
                        }
                        registration.registered = true;
                        registration.next_at = now + Duration::from_secs(granted) / 2;
                    }
                    401 | 407 if !registration.auth_attempted => {
                        let (challenge_header, answer_header) = if response.status == 401 {
                            ("WWW-Authenticate", "Authorization")
                        } else {
                            ("Proxy-Authenticate", "Proxy-Authorization")
                        };
                        match (
                            best_challenge(response, challenge_header),
                            &trunk.username,
                            &trunk.password,
                        ) {
                            (Some(Ok(challenge)), Some(username), Some(password)) => {
                                registration.auth_attempted = true;
                                let credentials = Credentials {
                                    username: username.clone(),
                                    password: password.clone(),
                                };
                                let value = challenge.answer(
                                    &credentials,
                                    "REGISTER",
                                    &format!("sip:{}", trunk.domain),
                                    &new_tag(),
                                    1,
                                );
                                self.send_trunk_register(
                                    &trunk,
                                    &options,
                                    destination,
                                    &mut registration,
                                    Some((answer_header, value)),
                                    now,
                                );
                            }
                            _ => {
                                warn!(trunk = %name, status = response.status, "the trunk asks for credentials the configuration does not have (or a challenge we cannot answer); retrying in 60 s");
                                registration.registered = false;
                                registration.next_at = now + Duration::from_secs(60);
                            }
                        }
                    }
                    status => {
                        warn!(trunk = %name, status, "the trunk refused REGISTER; retrying in 60 s");
                        registration.registered = false;
                        registration.next_at = now + Duration::from_secs(60);
                    }
                }
            }
            if let Some(state) = self.trunk_states.get_mut(&name) {
                state.registration = Some(registration);
            }
            self.publish_trunks();
            return true;
        }
        false
    }

    fn tick_leg(&mut self, sip_call_id: &str, now: Instant) {
        let Some(mut leg) = self.legs.remove(sip_call_id) else {
            return;
        };
        // Retransmit BYE/CANCEL until answered (timer E), give up at timer F.
        let peer = leg.peer;
        let reliable = self.is_tcp(peer);
        leg.pending
            .retain_mut(|pending| match pending.timer.poll(now) {
                TimerAction::Retransmit => {
                    if !reliable {
                        let _ = self.socket.try_send_to(&pending.bytes, peer);
                    }
                    true
                }
                TimerAction::WaitUntil(_) => true,
                TimerAction::GiveUp => false,
            });
        let mut invite_gave_up = false;
        if let Some(timer) = leg.invite_timer.as_mut() {
            match timer.poll(now) {
                TimerAction::Retransmit if !reliable => {
                    self.send_to(&leg.invite.to_bytes(), leg.peer)
                }
                TimerAction::Retransmit => {}
                TimerAction::WaitUntil(_) => {}
                TimerAction::GiveUp => invite_gave_up = true,
            }
        }
        if invite_gave_up {
            leg.invite_timer = None;
            leg.state = LegState::Terminated;
            let owner = leg.owner.take();
            leg.linger_until = Some(now);
            self.legs.insert(sip_call_id.to_string(), leg);
            match owner {
                Some((call_id, Side::Customer)) => {
                    warn!(call = call_id.0, "no response from the trunk within 32 s");
                    if let Some(trunk) = self.trunk_by_peer(peer) {
                        self.set_trunk_alive(&trunk, false);
                    }
                    if !self.try_failover(call_id, 0) {
                        self.end_call(call_id, Outcome::Failed { status: 0 }, None);
                    }
                }
                Some((call_id, Side::Agent)) => self.agent_missed(call_id),
                None => {}
            }
            return;
        }
        let owner = leg.owner;
        let deadline_passed = now >= leg.deadline;
        let state = leg.state;
        if let Some(linger_until) = leg.linger_until
            && now >= linger_until
            && leg.pending.is_empty()
        {
            return; // dropped: nothing more can arrive that needs an answer
        }
        self.legs.insert(sip_call_id.to_string(), leg);
        let Some((call_id, side)) = owner else { return };
        if !deadline_passed {
            return;
        }
        match (state, side) {
            (LegState::Calling, Side::Customer) => {
                warn!(
                    call = call_id.0,
                    "ring timeout without any response from the trunk"
                );
                self.end_call(call_id, Outcome::Failed { status: 0 }, None);
            }
            (LegState::Proceeding, Side::Customer) => {
                if let Some(leg) = self.legs.remove(sip_call_id) {
                    let mut leg = leg;
                    info!(call = call_id.0, "ring timeout; cancelling");
                    self.send_cancel(&mut leg, now);
                    self.legs.insert(sip_call_id.to_string(), leg);
                }
            }
            (LegState::Cancelling, Side::Customer) => {
                warn!(
                    call = call_id.0,
                    "no final response to our CANCEL; giving up on the call"
                );
                self.end_call(call_id, Outcome::NoAnswer, Some(HangupSide::System));
            }
            (LegState::Calling | LegState::Proceeding, Side::Agent) => {
                info!(call = call_id.0, "agent ring timeout");
                self.agent_missed(call_id);
            }
            _ => {}
        }
    }
}
