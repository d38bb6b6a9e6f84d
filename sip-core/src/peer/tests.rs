//! The simulated peers against a scripted box, in simulated time: every step's messages
//! (parsed back from their bytes), events and next timeout, pinned by expect tables.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use expect_test::{Expect, expect};

use super::*;
use crate::auth::{Algorithm, Authorization, challenge_header};

const BOX: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5060);
const PEER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5070);
const PASSWORD: &str = "s3cret";

/// One thing happening to the peer.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// The clock moves to this many ms after the start; due timers run.
    At(u64),
    /// The box offers call `n` (Call-ID `call-n`) with a G.711 offer.
    Invite(u32),
    /// The box offers call `n` with a video-only offer.
    InviteNoAudio(u32),
    Ack(u32),
    Cancel(u32),
    Bye(u32),
    Options,
    Message,
    /// The driver answers call `n` with this RTP port.
    Answer(u32, u16),
    Decline(u32),
    /// The registrar answers the last REGISTER: 401 with a challenge, 200 granting 120 s,
    /// anything else as it is.
    Registrar(u16),
    Close,
}

fn box_request(method: Method, n: u32, cseq: u32) -> Request {
    Request::new(method.clone(), "sip:13800138000@127.0.0.1:5070")
        .with_header(
            "Via",
            format!("SIP/2.0/UDP {BOX};branch=z9hG4bKbox{n}c{cseq}"),
        )
        .with_header("From", format!("<sip:02155550000@127.0.0.1>;tag=box{n}"))
        .with_header("To", "<sip:13800138000@127.0.0.1>")
        .with_header("Call-ID", format!("call-{n}"))
        .with_header("CSeq", format!("{cseq} {method}"))
        .with_header("Contact", format!("<sip:outpost@{BOX}>"))
}

fn invite(n: u32, audio: bool) -> Request {
    let mut invite =
        box_request(Method::Invite, n, 1).with_header("Content-Type", "application/sdp");
    invite.body = if audio {
        sdp::build_offer(BOX.ip(), 30_000 + 2 * n as u16, 1)
    } else {
        b"v=0\r\nc=IN IP4 127.0.0.1\r\nm=video 30000 RTP/AVP 96\r\n".to_vec()
    };
    invite
}

fn registrar_answer(register: &Request, status: u16) -> Response {
    let response = Response::to_request(register, status, "Reason", Some("reg"));
    match status {
        401 => response.with_header(
            "WWW-Authenticate",
            challenge_header("outpost", "nonce1", Algorithm::Md5, false),
        ),
        200 => response.with_header("Contact", format!("<sip:8001@{PEER}>;expires=120")),
        _ => response,
    }
}

/// How a message looks in a table: start line, CSeq and what matters for its kind.
fn render(message: &Message) -> String {
    let headers = message.headers();
    let cseq = headers.get("CSeq").unwrap_or_default();
    let to_tagged = headers
        .get("To")
        .and_then(|to| NameAddr::parse(to).ok())
        .is_some_and(|to| to.tag().is_some());
    match message {
        Message::Response(response) => {
            let mut line = format!("{} {} [{cseq}]", response.status, response.reason);
            if to_tagged {
                line.push_str(" tagged");
            }
            if let Some(contact) = headers.get("Contact") {
                let _ = write!(line, " contact {contact}");
            }
            if let Ok(answer) = SessionDescription::parse(&response.body)
                && let Ok(path) = answer.audio_path(&[Codec::Pcmu, Codec::Pcma])
            {
                let _ = write!(line, " sdp {} {:?}", path.remote, path.codec);
            }
            line
        }
        Message::Request(request) => {
            let mut line = format!("{} {} [{cseq}]", request.method, request.uri);
            if request.method == Method::Register {
                let expires = headers.get("Expires").unwrap_or_default();
                let _ = write!(line, " expires {expires}");
                if let Some(value) = headers.get("Authorization") {
                    let verifies = Authorization::parse(value)
                        .is_ok_and(|answer| answer.verify("REGISTER", PASSWORD));
                    let _ = write!(line, " digest verifies: {verifies}");
                }
            }
            if request.method == Method::Bye {
                let from = headers.get("From").unwrap_or_default();
                let to = headers.get("To").unwrap_or_default();
                let _ = write!(line, " from {from} to {to}");
            }
            line
        }
    }
}

/// Runs `steps` against a peer seeded with 7 and prints what it sent and said.
fn check(config: PeerConfig, steps: &[Step], expect: Expect) {
    let start = Instant::now();
    let mut now = start;
    let mut peer = Peer::new(config, PEER, 7, now);
    let mut last_register: Option<Request> = None;
    let mut out = String::new();
    for step in steps {
        let _ = writeln!(out, "{step:?}");
        let from_box =
            |request: Request| crate::parse(&request.to_bytes()).expect("the box's request parses");
        match *step {
            Step::At(ms) => {
                now = start + Duration::from_millis(ms);
                peer.handle_timeout(now);
            }
            Step::Invite(n) => peer.handle(now, BOX, from_box(invite(n, true))),
            Step::InviteNoAudio(n) => peer.handle(now, BOX, from_box(invite(n, false))),
            Step::Ack(n) => peer.handle(now, BOX, from_box(box_request(Method::Ack, n, 1))),
            Step::Cancel(n) => peer.handle(now, BOX, from_box(box_request(Method::Cancel, n, 1))),
            Step::Bye(n) => peer.handle(now, BOX, from_box(box_request(Method::Bye, n, 2))),
            Step::Options => peer.handle(now, BOX, from_box(box_request(Method::Options, 0, 1))),
            Step::Message => {
                let message = box_request(Method::Other("MESSAGE".into()), 0, 1);
                peer.handle(now, BOX, from_box(message));
            }
            Step::Answer(n, port) => peer.answer(now, &format!("call-{n}"), port),
            Step::Decline(n) => peer.decline(now, &format!("call-{n}")),
            Step::Registrar(status) => {
                let register = last_register.as_ref().expect("a REGISTER went out");
                let response = registrar_answer(register, status).to_bytes();
                peer.handle(
                    now,
                    BOX,
                    crate::parse(&response).expect("the answer parses"),
                );
            }
            Step::Close => peer.close(),
        }
        while let Some(transmit) = peer.poll_transmit() {
            let message = crate::parse(&transmit.to_bytes()).expect("what the peer sends parses");
            if let Message::Request(request) = &message
                && request.method == Method::Register
            {
                last_register = Some(request.clone());
            }
            let _ = writeln!(out, "  -> {} {}", transmit.destination, render(&message));
        }
        while let Some(event) = peer.poll_event() {
            let _ = writeln!(out, "  event {event:?}");
        }
        if let Some(at) = peer.poll_timeout() {
            let _ = writeln!(out, "  next +{} ms", at.duration_since(start).as_millis());
        }
    }
    expect.assert_eq(&out);
}

fn carrier(calls: CallBehaviour) -> PeerConfig {
    PeerConfig {
        user: "carrier".into(),
        calls,
        register: None,
    }
}

fn rings_then_talks() -> CallBehaviour {
    CallBehaviour {
        trying: true,
        ringing: true,
        ring: (Duration::from_secs(2), Duration::from_secs(2)),
        talk: Some((Duration::from_secs(10), Duration::from_secs(10))),
        ..CallBehaviour::at_once()
    }
}

#[test]
fn a_carrier_rings_answers_talks_and_hangs_up() {
    check(
        carrier(rings_then_talks()),
        &[
            Step::Invite(1),
            Step::Invite(1),
            Step::At(2000),
            Step::Answer(1, 40_000),
            Step::Ack(1),
            Step::At(12_000),
            Step::At(17_000),
        ],
        expect![[r#"
            Invite(1)
              -> 127.0.0.1:5060 100 Trying [1 INVITE]
              -> 127.0.0.1:5060 180 Ringing [1 INVITE] tagged contact <sip:carrier@127.0.0.1:5070>
              event Offered { call_id: "call-1", number: "13800138000" }
              next +2000 ms
            Invite(1)
              -> 127.0.0.1:5060 180 Ringing [1 INVITE] tagged contact <sip:carrier@127.0.0.1:5070>
              next +2000 ms
            At(2000)
              event AnswerDue { call_id: "call-1" }
            Answer(1, 40000)
              -> 127.0.0.1:5060 200 OK [1 INVITE] tagged contact <sip:carrier@127.0.0.1:5070> sdp 127.0.0.1:40000 Pcmu
              event Answered { call_id: "call-1", number: "13800138000", remote: 127.0.0.1:30002, codec: Pcmu }
              next +12000 ms
            Ack(1)
              next +12000 ms
            At(12000)
              -> 127.0.0.1:5060 BYE sip:outpost@127.0.0.1:5060 [2 BYE] from <sip:13800138000@127.0.0.1>;tag=86e8cd469905 to <sip:02155550000@127.0.0.1>;tag=box1
              event Ended { call_id: "call-1" }
              next +17000 ms
            At(17000)
        "#]],
    );
}

#[test]
fn a_busy_carrier_resends_486_until_acked() {
    let busy = CallBehaviour {
        answer_share: 0.0,
        busy_share: 1.0,
        ..rings_then_talks()
    };
    check(
        carrier(busy),
        &[
            Step::Invite(1),
            Step::At(500),
            Step::At(1000),
            Step::Ack(1),
            Step::At(1500),
            Step::Invite(1),
            Step::At(32_000),
        ],
        expect![[r#"
            Invite(1)
              -> 127.0.0.1:5060 100 Trying [1 INVITE]
              -> 127.0.0.1:5060 486 Busy Here [1 INVITE] tagged
              event Offered { call_id: "call-1", number: "13800138000" }
              next +500 ms
            At(500)
              -> 127.0.0.1:5060 486 Busy Here [1 INVITE] tagged
              next +1000 ms
            At(1000)
              -> 127.0.0.1:5060 486 Busy Here [1 INVITE] tagged
              next +1500 ms
            Ack(1)
              next +32000 ms
            At(1500)
              next +32000 ms
            Invite(1)
              -> 127.0.0.1:5060 486 Busy Here [1 INVITE] tagged
              next +32000 ms
            At(32000)
        "#]],
    );
}

#[test]
fn an_unanswered_call_rings_until_cancelled() {
    let no_answer = CallBehaviour {
        answer_share: 0.0,
        busy_share: 0.0,
        ..rings_then_talks()
    };
    check(
        carrier(no_answer),
        &[
            Step::Invite(1),
            Step::At(60_000),
            Step::Cancel(1),
            Step::Cancel(1),
            Step::Ack(1),
            Step::At(61_000),
        ],
        expect![[r#"
            Invite(1)
              -> 127.0.0.1:5060 100 Trying [1 INVITE]
              -> 127.0.0.1:5060 180 Ringing [1 INVITE] tagged contact <sip:carrier@127.0.0.1:5070>
              event Offered { call_id: "call-1", number: "13800138000" }
            At(60000)
            Cancel(1)
              -> 127.0.0.1:5060 200 OK [1 CANCEL]
              -> 127.0.0.1:5060 487 Request Terminated [1 INVITE] tagged
              next +60500 ms
            Cancel(1)
              -> 127.0.0.1:5060 200 OK [1 CANCEL]
              next +60500 ms
            Ack(1)
              next +92000 ms
            At(61000)
              next +92000 ms
        "#]],
    );
}

#[test]
fn at_once_answers_in_the_invites_step_and_waits_for_the_box_to_hang_up() {
    check(
        carrier(CallBehaviour::at_once()),
        &[
            Step::Invite(1),
            Step::Answer(1, 40_000),
            Step::Invite(1),
            Step::Bye(1),
            Step::Bye(1),
            Step::At(5000),
        ],
        expect![[r#"
            Invite(1)
              event Offered { call_id: "call-1", number: "13800138000" }
              event AnswerDue { call_id: "call-1" }
            Answer(1, 40000)
              -> 127.0.0.1:5060 200 OK [1 INVITE] tagged contact <sip:carrier@127.0.0.1:5070> sdp 127.0.0.1:40000 Pcmu
              event Answered { call_id: "call-1", number: "13800138000", remote: 127.0.0.1:30002, codec: Pcmu }
            Invite(1)
              -> 127.0.0.1:5060 200 OK [1 INVITE] tagged contact <sip:carrier@127.0.0.1:5070> sdp 127.0.0.1:40000 Pcmu
            Bye(1)
              -> 127.0.0.1:5060 200 OK [2 BYE]
              event Ended { call_id: "call-1" }
              next +5000 ms
            Bye(1)
              -> 127.0.0.1:5060 200 OK [2 BYE]
              next +5000 ms
            At(5000)
        "#]],
    );
}

#[test]
fn unusable_offers_and_unbound_sockets_are_refused_with_488() {
    check(
        carrier(CallBehaviour::at_once()),
        &[
            Step::InviteNoAudio(1),
            Step::Invite(2),
            Step::Decline(2),
            Step::Answer(2, 40_000),
            Step::Cancel(2),
        ],
        expect![[r#"
            InviteNoAudio(1)
              -> 127.0.0.1:5060 488 Not Acceptable Here [1 INVITE] tagged
              event Offered { call_id: "call-1", number: "13800138000" }
              next +500 ms
            Invite(2)
              event Offered { call_id: "call-2", number: "13800138000" }
              event AnswerDue { call_id: "call-2" }
              next +500 ms
            Decline(2)
              -> 127.0.0.1:5060 488 Not Acceptable Here [1 INVITE] tagged
              next +500 ms
            Answer(2, 40000)
              next +500 ms
            Cancel(2)
              -> 127.0.0.1:5060 200 OK [1 CANCEL]
              next +500 ms
        "#]],
    );
}

#[test]
fn a_bye_while_ringing_ends_the_call_without_an_answer() {
    check(
        carrier(rings_then_talks()),
        &[
            Step::Invite(1),
            Step::Bye(1),
            Step::At(2000),
            Step::Options,
            Step::Message,
        ],
        expect![[r#"
            Invite(1)
              -> 127.0.0.1:5060 100 Trying [1 INVITE]
              -> 127.0.0.1:5060 180 Ringing [1 INVITE] tagged contact <sip:carrier@127.0.0.1:5070>
              event Offered { call_id: "call-1", number: "13800138000" }
              next +2000 ms
            Bye(1)
              -> 127.0.0.1:5060 200 OK [2 BYE]
              next +5000 ms
            At(2000)
              next +5000 ms
            Options
              -> 127.0.0.1:5060 200 OK [1 OPTIONS] tagged
              next +5000 ms
            Message
              -> 127.0.0.1:5060 501 Not Implemented [1 MESSAGE]
              next +5000 ms
        "#]],
    );
}

fn phone() -> PeerConfig {
    PeerConfig {
        user: "8001".into(),
        calls: CallBehaviour {
            ringing: true,
            ring: (Duration::from_millis(500), Duration::from_millis(500)),
            ..CallBehaviour::at_once()
        },
        register: Some(RegisterConfig {
            registrar: BOX,
            password: PASSWORD.into(),
            expires: Duration::from_secs(300),
            retry: Duration::from_secs(10),
        }),
    }
}

#[test]
fn a_phone_registers_with_digest_refreshes_and_unregisters() {
    check(
        phone(),
        &[
            Step::At(0),
            Step::Registrar(401),
            Step::Registrar(200),
            Step::At(60_000),
            Step::Registrar(401),
            Step::Registrar(401),
            Step::At(70_000),
            Step::Registrar(403),
            Step::At(80_000),
            Step::Close,
        ],
        expect![[r#"
            At(0)
              -> 127.0.0.1:5060 REGISTER sip:127.0.0.1:5060 [1 REGISTER] expires 300
              next +10000 ms
            Registrar(401)
              -> 127.0.0.1:5060 REGISTER sip:127.0.0.1:5060 [2 REGISTER] expires 300 digest verifies: true
              next +10000 ms
            Registrar(200)
              event Registered { granted: 120s }
              next +60000 ms
            At(60000)
              -> 127.0.0.1:5060 REGISTER sip:127.0.0.1:5060 [3 REGISTER] expires 300
              next +70000 ms
            Registrar(401)
              -> 127.0.0.1:5060 REGISTER sip:127.0.0.1:5060 [4 REGISTER] expires 300 digest verifies: true
              next +70000 ms
            Registrar(401)
              event RegisterRefused { status: 401 }
              next +70000 ms
            At(70000)
              -> 127.0.0.1:5060 REGISTER sip:127.0.0.1:5060 [5 REGISTER] expires 300
              next +80000 ms
            Registrar(403)
              event RegisterRefused { status: 403 }
              next +80000 ms
            At(80000)
              -> 127.0.0.1:5060 REGISTER sip:127.0.0.1:5060 [6 REGISTER] expires 300
              next +90000 ms
            Close
              -> 127.0.0.1:5060 REGISTER sip:127.0.0.1:5060 [7 REGISTER] expires 0
              next +90000 ms
        "#]],
    );
}

#[test]
fn a_phone_answers_after_its_ring_and_a_cancel_before_it_stops_the_call() {
    check(
        phone(),
        &[
            Step::Invite(1),
            Step::At(400),
            Step::Cancel(1),
            Step::Ack(1),
            Step::Invite(2),
            Step::At(900),
            Step::Answer(2, 40_002),
            Step::Bye(2),
        ],
        expect![[r#"
            Invite(1)
              -> 127.0.0.1:5060 180 Ringing [1 INVITE] tagged contact <sip:8001@127.0.0.1:5070>
              event Offered { call_id: "call-1", number: "13800138000" }
              next +0 ms
            At(400)
              -> 127.0.0.1:5060 REGISTER sip:127.0.0.1:5060 [1 REGISTER] expires 300
              next +500 ms
            Cancel(1)
              -> 127.0.0.1:5060 200 OK [1 CANCEL]
              -> 127.0.0.1:5060 487 Request Terminated [1 INVITE] tagged
              next +900 ms
            Ack(1)
              next +10400 ms
            Invite(2)
              -> 127.0.0.1:5060 180 Ringing [1 INVITE] tagged contact <sip:8001@127.0.0.1:5070>
              event Offered { call_id: "call-2", number: "13800138000" }
              next +900 ms
            At(900)
              event AnswerDue { call_id: "call-2" }
              next +10400 ms
            Answer(2, 40002)
              -> 127.0.0.1:5060 200 OK [1 INVITE] tagged contact <sip:8001@127.0.0.1:5070> sdp 127.0.0.1:40002 Pcmu
              event Answered { call_id: "call-2", number: "13800138000", remote: 127.0.0.1:30004, codec: Pcmu }
              next +10400 ms
            Bye(2)
              -> 127.0.0.1:5060 200 OK [2 BYE]
              event Ended { call_id: "call-2" }
              next +5900 ms
        "#]],
    );
}

#[test]
fn plans_are_drawn_in_the_configured_shares() {
    let behaviour = CallBehaviour {
        answer_share: 0.6,
        busy_share: 0.5,
        ..CallBehaviour::at_once()
    };
    let now = Instant::now();
    let mut peer = Peer::new(carrier(behaviour), PEER, 11, now);
    let (mut answered, mut busy, mut ringing) = (0, 0, 0);
    for n in 0..2000 {
        peer.handle(now, BOX, Message::Request(invite(n, true)));
        let mut sent = Vec::new();
        while let Some(transmit) = peer.poll_transmit() {
            sent.push(transmit.message);
        }
        let events: Vec<PeerEvent> = std::iter::from_fn(|| peer.poll_event()).collect();
        match (sent.as_slice(), events.as_slice()) {
            (_, [PeerEvent::Offered { .. }, PeerEvent::AnswerDue { .. }]) => answered += 1,
            ([Message::Response(refusal)], [PeerEvent::Offered { .. }])
                if refusal.status == 486 =>
            {
                busy += 1
            }
            ([], [PeerEvent::Offered { .. }]) => ringing += 1,
            other => panic!("unexpected step: {other:?}"),
        }
    }
    // 60 % answered, then half of the other 40 % busy; 2,000 draws stay well within 5 points.
    assert!((1100..=1300).contains(&answered), "answered {answered}");
    assert!((300..=500).contains(&busy), "busy {busy}");
    assert!((300..=500).contains(&ringing), "ringing {ringing}");
}
