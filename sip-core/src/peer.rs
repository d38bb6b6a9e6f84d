//! Simulated SIP peers, sans-IO: the carrier and the agents' phones that the demo, the
//! benchmarks and the latency example put at the far ends of the box's lines.
//!
//! A [`Peer`] is a UAS for calls and, given a [`RegisterConfig`], a phone that registers its
//! extension. Per new INVITE it draws a plan from [`CallBehaviour`]:
//! - answer: optional 100 Trying and 180 Ringing, then after the ring time a 200 with a
//!   G.711 SDP answer to the offer; after the talk time (if any) it hangs up with BYE;
//! - busy: 486 Busy Here;
//! - otherwise it rings until the other side sends CANCEL, then 200 and 487.
//!
//! Retransmitted INVITEs get the last response again; a non-2xx final is resent every T1,
//! six times, until it is ACKed. BYE is answered 200, OPTIONS 200, anything else 501. An
//! offer with no usable audio is refused with 488.
//!
//! The registration sends REGISTER, answers one 401 digest challenge per request, refreshes
//! at half the granted expiry, retries after [`RegisterConfig::retry`] while refused or
//! unanswered, and [`Peer::close`] unregisters (Expires: 0).
//!
//! Driven like the rest of the codebase: [`Peer::handle`] with each received message and
//! the current time, [`Peer::handle_timeout`] when [`Peer::poll_timeout`] is due, then drain
//! [`Peer::poll_transmit`] and [`Peer::poll_event`]. RTP is the driver's: when a call is to
//! be answered the peer asks for a port with [`PeerEvent::AnswerDue`], and the driver binds
//! one and calls [`Peer::answer`] (or [`Peer::decline`]). Tags, branches, Call-IDs, the plan
//! of each call and ring and talk times come from a generator seeded by the caller, so a test
//! replays exactly.

mod registration;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use crate::sdp::{self, AudioPath, Codec, SessionDescription};
use crate::transaction::{BRANCH_COOKIE, T1, TRANSACTION_TIMEOUT};
use crate::{Message, Method, NameAddr, Request, Response};

pub use registration::RegisterConfig;
use registration::Registration;

/// How many times a non-2xx final is resent while unacknowledged.
const FINAL_RESENDS: u32 = 6;
/// How long a call is kept after a BYE, to answer its retransmissions.
const LINGER_AFTER_BYE: Duration = Duration::from_secs(5);

/// How a peer treats the calls offered to it.
#[derive(Debug, Clone, PartialEq)]
pub struct CallBehaviour {
    /// Send 100 Trying at once on a new INVITE.
    pub trying: bool,
    /// Send 180 Ringing (with Contact) on a call that is not refused busy.
    pub ringing: bool,
    /// Share of calls answered, 0.0..=1.0.
    pub answer_share: f64,
    /// Of the calls not answered, the share refused with 486 Busy Here; the others ring
    /// until cancelled.
    pub busy_share: f64,
    /// Ring time before answering, drawn uniformly from this range; zero answers in the
    /// same step as the INVITE.
    pub ring: (Duration, Duration),
    /// Talk time before this peer hangs up, drawn uniformly from this range; `None` leaves
    /// the hang-up to the other side.
    pub talk: Option<(Duration, Duration)>,
}

impl CallBehaviour {
    /// Answers every call with 200 in the same step as its INVITE (no 100, no 180) and never
    /// hangs up first: the benchmarks' peers, whose figures time the 200.
    pub fn at_once() -> CallBehaviour {
        CallBehaviour {
            trying: false,
            ringing: false,
            answer_share: 1.0,
            busy_share: 0.0,
            ring: (Duration::ZERO, Duration::ZERO),
            talk: None,
        }
    }
}

/// What a peer is.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerConfig {
    /// The user part of its Contact; a phone's extension, also its digest user name.
    pub user: String,
    pub calls: CallBehaviour,
    /// Register `user` with a registrar (a phone); `None` for a carrier.
    pub register: Option<RegisterConfig>,
}

/// What the driver must know or do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// A new call was offered; `number` is the user part of its Request-URI.
    Offered { call_id: String, number: String },
    /// A call is to be answered now: bind an RTP socket and call [`Peer::answer`] with its
    /// port, or [`Peer::decline`].
    AnswerDue { call_id: String },
    /// The 200 went out: audio should flow from the call's RTP socket to `remote`.
    Answered {
        call_id: String,
        number: String,
        remote: SocketAddr,
        codec: Codec,
    },
    /// An answered call is over (either side hung up): stop its audio.
    Ended { call_id: String },
    /// The registrar accepted the registration for `granted`.
    Registered { granted: Duration },
    /// The registrar refused (or challenged twice); the peer retries later.
    RegisterRefused { status: u16 },
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub destination: SocketAddr,
    pub message: Message,
}

impl Transmit {
    /// The datagram's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        match &self.message {
            Message::Request(request) => request.to_bytes(),
            Message::Response(response) => response.to_bytes(),
        }
    }
}

/// Messages and events waiting to be polled.
#[derive(Debug, Default)]
struct Outbox {
    transmits: VecDeque<Transmit>,
    events: VecDeque<PeerEvent>,
}

impl Outbox {
    fn request(&mut self, destination: SocketAddr, request: Request) {
        self.transmits.push_back(Transmit {
            destination,
            message: Message::Request(request),
        });
    }

    fn response(&mut self, destination: SocketAddr, response: Response) {
        self.transmits.push_back(Transmit {
            destination,
            message: Message::Response(response),
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Ringing; answered at `answer_at`, or never (until cancelled).
    Ringing { answer_at: Option<Instant> },
    /// Waiting for the driver's [`Peer::answer`] or [`Peer::decline`].
    AnswerDue,
    /// Answered; this side hangs up at `hangup_at`, if ever.
    Talking { hangup_at: Option<Instant> },
    /// Refused, cancelled or hung up; kept to answer retransmissions.
    Over,
}

/// A non-2xx final waiting for its ACK.
#[derive(Debug, Clone, Copy)]
struct Resend {
    at: Instant,
    left: u32,
}

#[derive(Debug)]
struct Call {
    invite: Request,
    source: SocketAddr,
    to_tag: String,
    stage: Stage,
    last_response: Option<Response>,
    resend: Option<Resend>,
    forget_at: Option<Instant>,
}

impl Call {
    fn number(&self) -> String {
        request_user(&self.invite.uri)
    }

    /// A response to the INVITE carrying this side's tag, kept for retransmitted INVITEs.
    fn respond(&mut self, out: &mut Outbox, response: Response) {
        self.last_response = Some(response.clone());
        out.response(self.source, response);
    }

    /// Ends the call with a non-2xx final, resent until ACKed.
    fn refuse(&mut self, out: &mut Outbox, now: Instant, status: u16, reason: &str) {
        let response = Response::to_request(&self.invite, status, reason, Some(&self.to_tag));
        self.respond(out, response);
        self.stage = Stage::Over;
        self.resend = Some(Resend {
            at: now + T1,
            left: FINAL_RESENDS,
        });
        self.forget_at = Some(now + TRANSACTION_TIMEOUT);
    }

    /// The ring is over: ask the driver for an RTP port, or refuse an offer with no usable
    /// audio before a socket is bound for it.
    fn answer_due(&mut self, out: &mut Outbox, now: Instant, call_id: &str) {
        if offer_path(&self.invite).is_ok() {
            self.stage = Stage::AnswerDue;
            out.events.push_back(PeerEvent::AnswerDue {
                call_id: call_id.to_string(),
            });
        } else {
            self.refuse(out, now, 488, "Not Acceptable Here");
        }
    }

    /// This side's BYE: it is the callee, so From and To swap relative to the INVITE.
    fn bye(&self, local: SocketAddr, branch: &str) -> Request {
        let invite = &self.invite;
        let target = invite
            .headers
            .get("Contact")
            .and_then(|contact| NameAddr::parse(contact).ok())
            .map(|contact| contact.uri)
            .unwrap_or_else(|| format!("sip:{}", self.source));
        let cseq = invite.cseq().map(|cseq| cseq.number).unwrap_or(1) + 1;
        let to = invite.headers.get("To").unwrap_or_default();
        Request::new(Method::Bye, target)
            .with_header("Via", format!("SIP/2.0/UDP {local};branch={branch}"))
            .with_header("Max-Forwards", "70")
            .with_header("From", format!("{to};tag={}", self.to_tag))
            .with_header("To", invite.headers.get("From").unwrap_or_default())
            .with_header("Call-ID", invite.call_id())
            .with_header("CSeq", format!("{cseq} BYE"))
    }

    fn next_deadline(&self) -> Option<Instant> {
        let stage_at = match self.stage {
            Stage::Ringing { answer_at } => answer_at,
            Stage::Talking { hangup_at } => hangup_at,
            Stage::AnswerDue | Stage::Over => None,
        };
        [
            stage_at,
            self.resend.map(|resend| resend.at),
            self.forget_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Answer,
    Busy,
    RingForever,
}

/// A simulated carrier or phone (see the module doc).
#[derive(Debug)]
pub struct Peer {
    config: PeerConfig,
    local: SocketAddr,
    rng: StdRng,
    /// By Call-ID; ordered so that what falls due at one instant goes out in a fixed order.
    calls: BTreeMap<String, Call>,
    registration: Option<Registration>,
    out: Outbox,
}

impl Peer {
    /// A peer whose SIP socket is `local`, started at `now`; `seed` seeds every random
    /// choice it makes. A phone registers at the first [`Peer::handle_timeout`].
    pub fn new(config: PeerConfig, local: SocketAddr, seed: u64, now: Instant) -> Peer {
        let mut rng = StdRng::seed_from_u64(seed);
        let registration = config
            .register
            .clone()
            .map(|register| Registration::new(register, &config.user, local, &mut rng, now));
        Peer {
            config,
            local,
            rng,
            calls: BTreeMap::new(),
            registration,
            out: Outbox::default(),
        }
    }

    /// Takes one message received from `source` at `now`.
    pub fn handle(&mut self, now: Instant, source: SocketAddr, message: Message) {
        match message {
            Message::Request(request) => self.handle_request(now, source, request),
            Message::Response(response) => {
                let is_register = response
                    .cseq()
                    .is_ok_and(|cseq| cseq.method == Method::Register);
                if let (true, Some(registration)) = (is_register, self.registration.as_mut()) {
                    registration.handle_response(now, &response, &mut self.rng, &mut self.out);
                }
                // Responses to this side's BYE need nothing: it does not resend BYE.
            }
        }
    }

    /// Answers the call `call_id` (after [`PeerEvent::AnswerDue`]) with 200 and an SDP answer
    /// naming `rtp_port` on this peer's address. A call cancelled meanwhile is left alone.
    pub fn answer(&mut self, now: Instant, call_id: &str, rtp_port: u16) {
        let session_id = u64::from(self.rng.random::<u32>());
        let hangup_at = self
            .config
            .calls
            .talk
            .map(|talk| now + random_between(&mut self.rng, talk));
        let contact = self.contact();
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        if call.stage != Stage::AnswerDue {
            return;
        }
        let Ok(path) = offer_path(&call.invite) else {
            call.refuse(&mut self.out, now, 488, "Not Acceptable Here");
            return;
        };
        let mut ok = Response::to_request(&call.invite, 200, "OK", Some(&call.to_tag))
            .with_header("Contact", contact)
            .with_header("Content-Type", "application/sdp");
        ok.body = sdp::build_audio(
            self.local.ip(),
            rtp_port,
            &[path.codec],
            path.telephone_event,
            session_id,
        );
        call.respond(&mut self.out, ok);
        call.stage = Stage::Talking { hangup_at };
        self.out.events.push_back(PeerEvent::Answered {
            call_id: call_id.to_string(),
            number: call.number(),
            remote: path.remote,
            codec: path.codec,
        });
    }

    /// Refuses the call `call_id` (after [`PeerEvent::AnswerDue`]) with 488: the driver has
    /// no RTP socket for it.
    pub fn decline(&mut self, now: Instant, call_id: &str) {
        if let Some(call) = self.calls.get_mut(call_id)
            && call.stage == Stage::AnswerDue
        {
            call.refuse(&mut self.out, now, 488, "Not Acceptable Here");
        }
    }

    /// When [`Peer::handle_timeout`] has something to do next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let calls = self.calls.values().filter_map(Call::next_deadline);
        let registration = self.registration.as_ref().map(Registration::next_at);
        calls.chain(registration).min()
    }

    /// Does what is due at `now`: resends, answers, hang-ups, registrations, forgetting.
    pub fn handle_timeout(&mut self, now: Instant) {
        for (call_id, call) in self.calls.iter_mut() {
            if let Some(resend) = call.resend.as_mut()
                && now >= resend.at
            {
                if let Some(response) = call.last_response.clone() {
                    self.out.response(call.source, response);
                }
                resend.at = now + T1;
                resend.left -= 1;
                if resend.left == 0 {
                    call.resend = None;
                }
            }
            match call.stage {
                Stage::Ringing {
                    answer_at: Some(answer_at),
                } if now >= answer_at => call.answer_due(&mut self.out, now, call_id),
                Stage::Talking {
                    hangup_at: Some(hangup_at),
                } if now >= hangup_at => {
                    let branch = format!("{BRANCH_COOKIE}{}", hex_id(&mut self.rng, 10));
                    self.out.request(call.source, call.bye(self.local, &branch));
                    self.out.events.push_back(PeerEvent::Ended {
                        call_id: call_id.clone(),
                    });
                    call.stage = Stage::Over;
                    call.forget_at = Some(now + LINGER_AFTER_BYE);
                }
                _ => {}
            }
        }
        self.calls
            .retain(|_, call| call.forget_at.is_none_or(|forget_at| now < forget_at));
        if let Some(registration) = self.registration.as_mut() {
            registration.handle_timeout(now, &mut self.rng, &mut self.out);
        }
    }

    /// Unregisters a phone (Expires: 0); the driver stops every call's audio itself.
    pub fn close(&mut self) {
        if let Some(registration) = self.registration.as_mut() {
            registration.unregister(&mut self.rng, &mut self.out);
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.transmits.pop_front()
    }

    /// The next thing the driver must know or do.
    pub fn poll_event(&mut self) -> Option<PeerEvent> {
        self.out.events.pop_front()
    }

    fn contact(&self) -> String {
        format!("<sip:{}@{}>", self.config.user, self.local)
    }

    fn handle_request(&mut self, now: Instant, source: SocketAddr, request: Request) {
        let call_id = request.call_id().to_string();
        match request.method {
            Method::Invite => self.on_invite(now, source, request),
            Method::Ack => {
                if let Some(call) = self.calls.get_mut(&call_id) {
                    call.resend = None;
                }
            }
            Method::Cancel => {
                let ok = Response::to_request(&request, 200, "OK", None);
                self.out.response(source, ok);
                if let Some(call) = self.calls.get_mut(&call_id)
                    && matches!(call.stage, Stage::Ringing { .. } | Stage::AnswerDue)
                {
                    call.refuse(&mut self.out, now, 487, "Request Terminated");
                }
            }
            Method::Bye => {
                let ok = Response::to_request(&request, 200, "OK", None);
                self.out.response(source, ok);
                if let Some(call) = self.calls.get_mut(&call_id) {
                    if matches!(call.stage, Stage::Talking { .. }) {
                        self.out.events.push_back(PeerEvent::Ended { call_id });
                    }
                    call.stage = Stage::Over;
                    call.forget_at = Some(now + LINGER_AFTER_BYE);
                }
            }
            Method::Options => {
                let tag = hex_id(&mut self.rng, 6);
                let ok = Response::to_request(&request, 200, "OK", Some(&tag));
                self.out.response(source, ok);
            }
            _ => {
                let refusal = Response::to_request(&request, 501, "Not Implemented", None);
                self.out.response(source, refusal);
            }
        }
    }

    fn on_invite(&mut self, now: Instant, source: SocketAddr, invite: Request) {
        let call_id = invite.call_id().to_string();
        if let Some(call) = self.calls.get(&call_id) {
            if let Some(last) = call.last_response.clone() {
                self.out.response(source, last);
            }
            return;
        }
        let behaviour = &self.config.calls;
        let plan = if self.rng.random::<f64>() < behaviour.answer_share {
            Plan::Answer
        } else if self.rng.random::<f64>() < behaviour.busy_share {
            Plan::Busy
        } else {
            Plan::RingForever
        };
        let ring = random_between(&mut self.rng, behaviour.ring);
        let (trying, ringing) = (behaviour.trying, behaviour.ringing);
        let mut call = Call {
            source,
            to_tag: hex_id(&mut self.rng, 6),
            stage: Stage::Ringing { answer_at: None },
            last_response: None,
            resend: None,
            forget_at: None,
            invite,
        };
        self.out.events.push_back(PeerEvent::Offered {
            call_id: call_id.clone(),
            number: call.number(),
        });
        if trying {
            let response = Response::to_request(&call.invite, 100, "Trying", None);
            call.respond(&mut self.out, response);
        }
        if plan == Plan::Busy {
            call.refuse(&mut self.out, now, 486, "Busy Here");
        } else {
            if ringing {
                let response =
                    Response::to_request(&call.invite, 180, "Ringing", Some(&call.to_tag))
                        .with_header("Contact", self.contact());
                call.respond(&mut self.out, response);
            }
            if plan == Plan::Answer {
                if ring.is_zero() {
                    call.answer_due(&mut self.out, now, &call_id);
                } else {
                    call.stage = Stage::Ringing {
                        answer_at: Some(now + ring),
                    };
                }
            }
        }
        self.calls.insert(call_id, call);
    }
}

/// Where and how to send audio for an INVITE's offer, if it has usable audio.
fn offer_path(invite: &Request) -> Result<AudioPath, sdp::SdpError> {
    SessionDescription::parse(&invite.body)?.audio_path(&[Codec::Pcmu, Codec::Pcma])
}

/// The user part of a SIP URI (`sip:13800138000@host` -> `13800138000`).
fn request_user(uri: &str) -> String {
    let rest = uri
        .strip_prefix("sips:")
        .or_else(|| uri.strip_prefix("sip:"))
        .unwrap_or(uri);
    match rest.split_once('@') {
        Some((user, _)) => user.to_string(),
        None => String::new(),
    }
}

/// `n_bytes` random bytes in hex: tags, branches, Call-IDs, cnonces.
fn hex_id(rng: &mut StdRng, n_bytes: usize) -> String {
    let bytes: Vec<u8> = (0..n_bytes).map(|_| rng.random()).collect();
    hex::encode(bytes)
}

/// A duration drawn uniformly from `range` (either order).
fn random_between(rng: &mut StdRng, range: (Duration, Duration)) -> Duration {
    let (low, high) = if range.0 <= range.1 {
        range
    } else {
        (range.1, range.0)
    };
    if low == high {
        return low;
    }
    rng.random_range(low..=high)
}
