//! A simulated carrier: a real SIP UAS on loopback that the appliance's trunk dials.
//!
//! Built on `sip-core` and one tokio UDP socket. For each INVITE it decides at random:
//! - answer (share [`CarrierConfig::answer_share`]): 100 and 180, then 200 with an SDP
//!   answer after a random ring; it then sends G.711 audio (a tone with a little noise, 20 ms
//!   packets) and hangs up with BYE after a random talk time, unless the appliance hangs up
//!   first;
//! - busy (share [`CarrierConfig::busy_share`] of the rest): 486 Busy Here;
//! - otherwise ring (180) until the appliance sends CANCEL, then 200 + 487.
//!
//! Retransmitted INVITEs get the last response again; every final response is expected to be
//! ACKed, and the carrier resends non-2xx finals a few times until it is. Run it with
//! [`run_carrier`]; point a trunk at [`CarrierConfig::bind`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use rand::Rng as _;
use sip_core::sdp::Codec;
use sip_core::transaction::{new_branch, new_tag};
use sip_core::{Message, Method, NameAddr, Request, Response};
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How the simulated carrier behaves.
#[derive(Debug, Clone)]
pub struct CarrierConfig {
    /// Where the carrier listens; the appliance's trunk `address` must be this.
    pub bind: SocketAddr,
    /// Share of INVITEs answered, 0.0..=1.0.
    pub answer_share: f64,
    /// Of the INVITEs not answered, the share refused with 486 Busy Here; the others ring
    /// until the appliance cancels.
    pub busy_share: f64,
    /// Ring time before answering, drawn uniformly from this range.
    pub ring: (Duration, Duration),
    /// Talk time before the carrier hangs up, drawn uniformly from this range.
    pub talk: (Duration, Duration),
    /// Frequency of the customer's "voice" tone.
    pub tone_hz: f64,
}

impl Default for CarrierConfig {
    fn default() -> Self {
        CarrierConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 5080)),
            answer_share: 0.6,
            busy_share: 0.5,
            ring: (Duration::from_secs(2), Duration::from_secs(8)),
            talk: (Duration::from_secs(10), Duration::from_secs(40)),
            tone_hz: 330.0,
        }
    }
}

fn random_between(range: (Duration, Duration)) -> Duration {
    let (low, high) = if range.0 <= range.1 {
        range
    } else {
        (range.1, range.0)
    };
    if low == high {
        return low;
    }
    rand::rng().random_range(low..=high)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Answer,
    Busy,
    RingForever,
}

struct CarrierCall {
    invite: Request,
    source: SocketAddr,
    to_tag: String,
    plan: Plan,
    answer_at: Option<Instant>,
    hangup_at: Option<Instant>,
    last_response: Vec<u8>,
    /// A final non-2xx response waiting for its ACK: (bytes, resend at, resends left).
    unacked: Option<(Vec<u8>, Instant, u32)>,
    media_stop: Option<CancellationToken>,
    done_at: Option<Instant>,
}

/// Runs the carrier until `shutdown` is cancelled.
pub async fn run_carrier(config: CarrierConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let socket = UdpSocket::bind(config.bind)
        .await
        .with_context(|| format!("carrier cannot bind SIP on {}", config.bind))?;
    let local = socket.local_addr()?;
    info!(%local, "simulated carrier listening");
    let mut calls: HashMap<String, CarrierCall> = HashMap::new();
    let mut buffer = vec![0u8; 65_536];
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                for call in calls.values() {
                    if let Some(stop) = &call.media_stop {
                        stop.cancel();
                    }
                }
                return Ok(());
            }
            received = socket.recv_from(&mut buffer) => {
                let Ok((n_bytes, source)) = received else { continue };
                match sip_core::parse(&buffer[..n_bytes]) {
                    Ok(Message::Request(request)) => on_request(&socket, local, &config, &mut calls, request, source),
                    Ok(Message::Response(response)) => debug!(status = response.status, "carrier got a response"),
                    Err(error) => warn!(%source, %error, "carrier ignored a bad packet"),
                }
            }
            _ = tick.tick() => on_tick(&socket, local, &config, &mut calls).await,
        }
    }
}

fn send(socket: &UdpSocket, bytes: &[u8], destination: SocketAddr) {
    crate::peer::send(socket, bytes, destination, "carrier");
}

fn on_request(
    socket: &UdpSocket,
    local: SocketAddr,
    config: &CarrierConfig,
    calls: &mut HashMap<String, CarrierCall>,
    request: Request,
    source: SocketAddr,
) {
    let call_id = request.call_id().to_string();
    match request.method {
        Method::Invite => {
            if let Some(call) = calls.get(&call_id) {
                send(socket, &call.last_response, source);
                return;
            }
            let roll: f64 = rand::rng().random();
            let plan = if roll < config.answer_share {
                Plan::Answer
            } else if rand::rng().random::<f64>() < config.busy_share {
                Plan::Busy
            } else {
                Plan::RingForever
            };
            let to_tag = new_tag();
            send(
                socket,
                &Response::to_request(&request, 100, "Trying", None).to_bytes(),
                source,
            );
            let mut call = CarrierCall {
                invite: request,
                source,
                to_tag,
                plan,
                answer_at: None,
                hangup_at: None,
                last_response: Vec::new(),
                unacked: None,
                media_stop: None,
                done_at: None,
            };
            if plan == Plan::Busy {
                let busy = Response::to_request(&call.invite, 486, "Busy Here", Some(&call.to_tag))
                    .to_bytes();
                send(socket, &busy, source);
                call.unacked = Some((busy.clone(), Instant::now() + Duration::from_millis(500), 6));
                call.last_response = busy;
                call.done_at = Some(Instant::now() + Duration::from_secs(32));
            } else {
                let ringing =
                    Response::to_request(&call.invite, 180, "Ringing", Some(&call.to_tag))
                        .with_header("Contact", format!("<sip:carrier@{local}>"))
                        .to_bytes();
                send(socket, &ringing, source);
                call.last_response = ringing;
                if plan == Plan::Answer {
                    call.answer_at = Some(Instant::now() + random_between(config.ring));
                }
            }
            debug!(%call_id, ?plan, "carrier received a call");
            calls.insert(call_id, call);
        }
        Method::Ack => {
            if let Some(call) = calls.get_mut(&call_id) {
                call.unacked = None;
            }
        }
        Method::Cancel => {
            send(
                socket,
                &Response::to_request(&request, 200, "OK", None).to_bytes(),
                source,
            );
            if let Some(call) = calls.get_mut(&call_id)
                && (call.answer_at.is_some() || call.plan == Plan::RingForever)
            {
                call.answer_at = None;
                let terminated = Response::to_request(
                    &call.invite,
                    487,
                    "Request Terminated",
                    Some(&call.to_tag),
                )
                .to_bytes();
                send(socket, &terminated, call.source);
                call.unacked = Some((
                    terminated.clone(),
                    Instant::now() + Duration::from_millis(500),
                    6,
                ));
                call.last_response = terminated;
                call.done_at = Some(Instant::now() + Duration::from_secs(32));
            }
        }
        Method::Bye => {
            send(
                socket,
                &Response::to_request(&request, 200, "OK", None).to_bytes(),
                source,
            );
            if let Some(call) = calls.get_mut(&call_id) {
                call.hangup_at = None;
                if let Some(stop) = call.media_stop.take() {
                    stop.cancel();
                }
                call.done_at = Some(Instant::now() + Duration::from_secs(5));
            }
        }
        Method::Options => send(
            socket,
            &Response::to_request(&request, 200, "OK", Some(&new_tag())).to_bytes(),
            source,
        ),
        _ => send(
            socket,
            &Response::to_request(&request, 501, "Not Implemented", None).to_bytes(),
            source,
        ),
    }
}

async fn on_tick(
    socket: &UdpSocket,
    local: SocketAddr,
    config: &CarrierConfig,
    calls: &mut HashMap<String, CarrierCall>,
) {
    let now = Instant::now();
    let mut finished = Vec::new();
    for (call_id, call) in calls.iter_mut() {
        if let Some((bytes, resend_at, resends_left)) = call.unacked.as_mut()
            && now >= *resend_at
            && *resends_left > 0
        {
            send(socket, bytes, call.source);
            *resend_at = now + Duration::from_millis(500);
            *resends_left -= 1;
        }
        if call.answer_at.is_some_and(|answer_at| now >= answer_at) {
            call.answer_at = None;
            match answer(socket, local, config, call).await {
                Ok(()) => call.hangup_at = Some(now + random_between(config.talk)),
                Err(error) => {
                    warn!(%call_id, %error, "carrier cannot answer; refusing with 488");
                    let refusal = Response::to_request(
                        &call.invite,
                        488,
                        "Not Acceptable Here",
                        Some(&call.to_tag),
                    )
                    .to_bytes();
                    send(socket, &refusal, call.source);
                    call.last_response = refusal;
                    call.done_at = Some(now + Duration::from_secs(32));
                }
            }
        }
        if call.hangup_at.is_some_and(|hangup_at| now >= hangup_at) {
            call.hangup_at = None;
            if let Some(stop) = call.media_stop.take() {
                stop.cancel();
            }
            send(socket, &bye_for(call, local).to_bytes(), call.source);
            call.done_at = Some(now + Duration::from_secs(5));
        }
        if call.done_at.is_some_and(|done_at| now >= done_at) {
            finished.push(call_id.clone());
        }
    }
    for call_id in finished {
        calls.remove(&call_id);
    }
}

async fn answer(
    socket: &UdpSocket,
    local: SocketAddr,
    config: &CarrierConfig,
    call: &mut CarrierCall,
) -> anyhow::Result<()> {
    let (bytes, stop) = crate::peer::answer_with_tone(
        socket,
        local,
        &call.invite,
        &call.to_tag,
        call.source,
        "carrier",
        config.tone_hz,
    )
    .await?;
    call.last_response = bytes;
    call.media_stop = Some(stop);
    Ok(())
}

/// The carrier's BYE: it is the callee, so From/To swap relative to the INVITE.
fn bye_for(call: &CarrierCall, local: SocketAddr) -> Request {
    let invite = &call.invite;
    let target = invite
        .headers
        .get("Contact")
        .and_then(|contact| NameAddr::parse(contact).ok())
        .map(|contact| contact.uri)
        .unwrap_or_else(|| format!("sip:{}", call.source));
    let cseq = invite.cseq().map(|cseq| cseq.number).unwrap_or(1) + 1;
    Request::new(Method::Bye, target)
        .with_header(
            "Via",
            format!("SIP/2.0/UDP {local};branch={}", new_branch()),
        )
        .with_header("Max-Forwards", "70")
        .with_header(
            "From",
            format!(
                "{};tag={}",
                invite.headers.get("To").unwrap_or_default(),
                call.to_tag
            ),
        )
        .with_header("To", invite.headers.get("From").unwrap_or_default())
        .with_header("Call-ID", invite.call_id())
        .with_header("CSeq", format!("{cseq} BYE"))
}

/// Sends a tone with a little noise as G.711 RTP every 20 ms until `stop`; drains whatever
/// the other side sends so the socket buffer never fills.
pub(crate) async fn send_audio(
    socket: UdpSocket,
    remote: SocketAddr,
    codec: Codec,
    tone_hz: f64,
    stop: CancellationToken,
) {
    let ssrc: u32 = rand::random();
    let mut sequence: u16 = rand::random();
    let mut timestamp: u32 = rand::random();
    let mut sample_idx: u64 = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut drain = vec![0u8; 2048];
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = socket.recv_from(&mut drain) => {}
            _ = tick.tick() => {
                let mut packet = Vec::with_capacity(172);
                packet.extend_from_slice(&[0x80, codec.payload_type()]);
                packet.extend_from_slice(&sequence.to_be_bytes());
                packet.extend_from_slice(&timestamp.to_be_bytes());
                packet.extend_from_slice(&ssrc.to_be_bytes());
                let mut rng = rand::rng();
                for _ in 0..160 {
                    let phase = sample_idx as f64 * tone_hz * std::f64::consts::TAU / 8000.0;
                    let noise: f64 = rng.random_range(-300.0..300.0);
                    let sample = (phase.sin() * 6000.0 + noise) as i16;
                    packet.push(match codec {
                        Codec::Pcmu => hardware::g711::linear_to_ulaw(sample),
                        Codec::Pcma => hardware::g711::linear_to_alaw(sample),
                    });
                    sample_idx += 1;
                }
                let _ = socket.try_send_to(&packet, remote);
                sequence = sequence.wrapping_add(1);
                timestamp = timestamp.wrapping_add(160);
            }
        }
    }
}
