//! The media task of one call: RTP relay between the legs, hold audio, and recording.
//!
//! - The driver spawns it when it dials, handing over the customer leg's RTP socket.
//! - [`MediaCommand::CustomerMedia`] tells it where the customer's RTP goes and in which
//!   codec: from a 183's SDP (early media: ringback or a carrier announcement) and again from
//!   the 200 OK; [`MediaCommand::Hold`] starts hold audio toward the customer.
//! - [`MediaCommand::Bridge`] hands over the agent leg's socket: from then on packets are
//!   forwarded both ways and both directions are recorded. An agent bridged while the
//!   customer still rings (an agent's own call) hears the early media. Payloads pass
//!   unchanged when both legs speak the same G.711 law and are re-encoded by table when not
//!   (the agent's phone may have chosen before the carrier answered).
//! - [`MediaCommand::Ringing`]: the customer rings without early media (a bare 180). An
//!   agent already on the call hears a ringback tone made here (450 Hz, 1 s on, 4 s off, as
//!   Chinese networks play it) until the network's own audio or the answer comes, instead of
//!   wondering whether the line is dead.
//! - [`MediaCommand::PeerHold`]: while one bridged party holds, the other hears hold audio
//!   (from the same stream rewriter, so its phone sees one continuous stream).
//! - [`MediaCommand::Finish`] completes the recording (streamed to disk since the bridge), replies with it,
//!   and ends the task, closing the sockets.
//!
//! Toward each peer the box sends one continuous RTP stream whatever its source (hold audio,
//! then the agent): [`StreamRewriter`] keeps one SSRC and continues sequence numbers and
//! timestamps across a switch of source, setting the marker bit, so phones and carriers do
//! not drop the new source's packets as out of order. RFC 4733 telephone-event packets pass
//! through the same way (payload untouched, timestamps shifted with the stream).
//!
//! Remote addresses latch to where packets actually come from, but only from the IP the SDP
//! named, so a peer behind a port-rewriting NAT still hears audio while strangers cannot
//! inject into the call.

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};
use sip_core::sdp::Codec;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::g711;
use crate::quality::{CallQuality, ReceiveStats};
use crate::recording::{Channel, Recorder};
use crate::{CallId, Recording};

/// What the driver asks of a call's media.
pub(crate) enum MediaCommand {
    /// The customer's media address and codec, from a 183 with SDP or the 200 OK.
    CustomerMedia {
        remote: SocketAddr,
        codec: Codec,
    },
    /// The customer's phone rings and the network sends no audio of its own.
    Ringing,
    /// The customer answered: from now on a customer silent past the media timeout (and not
    /// holding the call) is reported dead.
    Answered,
    /// The call failed over to another trunk: the old leg's media address and ringing are
    /// forgotten until the new leg says its own.
    NewCustomerLeg,
    /// Start hold audio toward the customer: this audio, or the call's default.
    Hold(Option<Arc<Vec<i16>>>),
    /// A bridged party put the call on hold (re-INVITE `sendonly`, `inactive` or
    /// `c=0.0.0.0`) or took it off: the other party hears hold audio meanwhile, not silence.
    PeerHold {
        agent_side: bool,
        held: bool,
    },
    /// A re-INVITE moved a peer's media (new address or port).
    Retarget {
        agent_side: bool,
        remote: SocketAddr,
    },
    Bridge {
        agent_socket: UdpSocket,
        agent_remote: SocketAddr,
        agent_codec: Codec,
        /// Where the recording is streamed from now on; `None` records nothing (the box's
        /// disk is under its floor).
        recording_path: Option<PathBuf>,
    },
    /// The call is over: the recording kept (or discarded) and both legs' figures told.
    Finish {
        recording_path: Option<PathBuf>,
        reply: oneshot::Sender<(Option<Recording>, CallQuality)>,
    },
}

/// The driver's handle on a media task.
pub(crate) struct MediaHandle {
    commands: mpsc::UnboundedSender<MediaCommand>,
}

impl MediaHandle {
    pub(crate) fn send(&self, command: MediaCommand) {
        // A closed inbox means the task already finished; there is nothing left to control.
        let _ = self.commands.send(command);
    }
}

/// Starts the media task for `call` owning the customer leg's RTP socket.
pub(crate) fn spawn(
    call: CallId,
    customer_socket: UdpSocket,
    hold_audio: Arc<Vec<i16>>,
    media_timeout: Duration,
    dead: mpsc::UnboundedSender<CallId>,
) -> MediaHandle {
    let (commands, inbox) = mpsc::unbounded_channel();
    let watch = Silence { timeout: media_timeout, dead };
    tokio::spawn(run(call, customer_socket, hold_audio, watch, inbox));
    MediaHandle { commands }
}

/// How long an answered customer may send nothing, and whom to tell then.
struct Silence {
    timeout: Duration,
    dead: mpsc::UnboundedSender<CallId>,
}

async fn recv_optional(
    socket: Option<&UdpSocket>,
    buffer: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match socket {
        Some(socket) => socket.recv_from(buffer).await,
        None => std::future::pending().await,
    }
}

struct HoldState {
    position: usize,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
    first: bool,
}

impl HoldState {
    /// A stream of its own from the start of its audio (random SSRC, sequence and timestamp).
    fn new() -> HoldState {
        HoldState {
            position: 0,
            sequence: rand::random(),
            timestamp: rand::random(),
            ssrc: rand::random(),
            first: true,
        }
    }
}

async fn run(
    call: CallId,
    customer_socket: UdpSocket,
    hold_audio: Arc<Vec<i16>>,
    silence: Silence,
    mut inbox: mpsc::UnboundedReceiver<MediaCommand>,
) {
    let mut media = CallMedia::new(call, customer_socket, hold_audio, silence);
    let mut silence_check = tokio::time::interval(Duration::from_secs(1));
    silence_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut hold_tick = tokio::time::interval(Duration::from_millis(20));
    hold_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut customer_buffer = vec![0u8; 2048];
    let mut agent_buffer = vec![0u8; 2048];

    loop {
        tokio::select! {
            command = inbox.recv() => match command {
                None => return,
                Some(command) => {
                    if media.on_command(command).await.is_break() {
                        return;
                    }
                }
            },
            received = media.customer_socket.recv_from(&mut customer_buffer) => {
                let Ok((n_bytes, source)) = received else { continue };
                media.on_customer_packet(&customer_buffer[..n_bytes], source);
            },
            received = recv_optional(media.agent.as_ref().map(|(socket, _)| socket), &mut agent_buffer) => {
                let Ok((n_bytes, source)) = received else { continue };
                media.on_agent_packet(&agent_buffer[..n_bytes], source);
            },
            _ = silence_check.tick(), if media.customer_heard.is_some() && !media.customer_holds => {
                media.check_silence();
            },
            _ = hold_tick.tick(), if media.hold_audio_due() => media.send_hold_audio(),
        }
    }
}

/// Everything one call's media task knows between two events.
struct CallMedia {
    call: CallId,
    customer_socket: UdpSocket,
    hold_audio: Arc<Vec<i16>>,
    silence: Silence,
    // Since the answer: when the customer last sent RTP (or the call was answered, or taken
    // off hold); `None` before the answer or once reported.
    customer_heard: Option<Instant>,
    customer_remote: Option<SocketAddr>,
    codec: Codec,
    agent_codec: Codec,
    holding: bool,
    hold: HoldState,
    agent: Option<(UdpSocket, SocketAddr)>,
    // A bare 180 came: an agent on the call hears the ringback tone while the customer's
    // media is unknown (no early media, no answer yet).
    ringing: bool,
    ringback: HoldState,
    // Bridged parties holding the other: the agent holds the customer, the customer holds the agent.
    agent_holds: bool,
    customer_holds: bool,
    hold_toward_agent: HoldState,
    toward_customer: StreamRewriter,
    toward_agent: StreamRewriter,
    recorder: Option<Recorder>,
    forward: Vec<u8>,
    // What each leg's RTP looked like on arrival (loss, jitter), timed from `origin`.
    origin: Instant,
    customer_rx: ReceiveStats,
    agent_rx: ReceiveStats,
}

impl CallMedia {
    fn new(
        call: CallId,
        customer_socket: UdpSocket,
        hold_audio: Arc<Vec<i16>>,
        silence: Silence,
    ) -> CallMedia {
        CallMedia {
            call,
            customer_socket,
            hold_audio,
            silence,
            customer_heard: None,
            customer_remote: None,
            codec: Codec::Pcmu,
            agent_codec: Codec::Pcmu,
            holding: false,
            hold: HoldState::new(),
            agent: None,
            ringing: false,
            ringback: HoldState::new(),
            agent_holds: false,
            customer_holds: false,
            hold_toward_agent: HoldState::new(),
            toward_customer: StreamRewriter::new(rand::random()),
            toward_agent: StreamRewriter::new(rand::random()),
            recorder: None,
            forward: vec![0u8; 2048],
            origin: Instant::now(),
            customer_rx: ReceiveStats::default(),
            agent_rx: ReceiveStats::default(),
        }
    }

    /// Applies one command of the driver; `Break` once the task is finished.
    async fn on_command(&mut self, command: MediaCommand) -> ControlFlow<()> {
        match command {
            MediaCommand::CustomerMedia { remote, codec: negotiated } => {
                self.customer_remote = Some(remote);
                self.codec = negotiated;
            }
            MediaCommand::Ringing => self.ringing = true,
            MediaCommand::Answered => self.customer_heard = Some(Instant::now()),
            MediaCommand::NewCustomerLeg => {
                self.customer_remote = None;
                self.ringing = false;
            }
            MediaCommand::Hold(audio) => {
                if let Some(audio) = audio {
                    self.hold_audio = audio;
                    self.hold.position = 0;
                }
                self.holding = self.agent.is_none();
            }
            MediaCommand::PeerHold { agent_side: true, held } => {
                self.agent_holds = held && self.agent.is_some();
            }
            MediaCommand::PeerHold { agent_side: false, held } => {
                self.customer_holds = held && self.agent.is_some();
                // A held call is silent by design; the clock restarts on resume.
                if self.customer_heard.is_some() {
                    self.customer_heard = Some(Instant::now());
                }
            }
            MediaCommand::Retarget { agent_side: false, remote } => {
                self.customer_remote = Some(remote);
            }
            MediaCommand::Retarget { agent_side: true, remote } => {
                if let Some((_, agent_remote)) = self.agent.as_mut() {
                    *agent_remote = remote;
                }
            }
            MediaCommand::Bridge { agent_socket, agent_remote, agent_codec, recording_path } => {
                self.holding = false;
                self.agent_codec = agent_codec;
                self.agent = Some((agent_socket, agent_remote));
                self.recorder = match recording_path.map(|path| Recorder::create(&path, Instant::now())) {
                    None => None,
                    Some(Ok(recorder)) => Some(recorder),
                    Some(Err(error)) => {
                        warn!(call = self.call.0, %error, "call not recorded");
                        None
                    }
                };
            }
            MediaCommand::Finish { recording_path, reply } => {
                let recording = self.finish_recording(recording_path).await;
                // No RTCP round trip is measured yet: the delay term counts the jitter
                // buffer and packetisation only, as on a LAN.
                let quality = CallQuality { customer: self.customer_rx.quality(0.0), agent: self.agent_rx.quality(0.0) };
                let _ = reply.send((recording, quality));
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }

    /// Completes the recording when the driver wants one kept, discards it otherwise.
    async fn finish_recording(&mut self, recording_path: Option<PathBuf>) -> Option<Recording> {
        match (self.recorder.take(), recording_path) {
            (Some(recorder), Some(_)) => {
                match tokio::task::spawn_blocking(move || recorder.finish()).await {
                    Ok(Ok(recording)) => Some(recording),
                    Ok(Err(error)) => {
                        warn!(call = self.call.0, %error, "recording lost");
                        None
                    }
                    Err(error) => {
                        warn!(call = self.call.0, %error, "recording task failed");
                        None
                    }
                }
            }
            (Some(recorder), None) => {
                recorder.discard();
                None
            }
            (None, _) => None,
        }
    }

    /// A datagram from the customer: forwarded to the bridged agent (unless the customer
    /// holds) and recorded.
    fn on_customer_packet(&mut self, packet: &[u8], source: SocketAddr) {
        let call = self.call;
        let Ok(reader) = RtpReader::new(packet) else {
            debug!(call = call.0, %source, "non-RTP packet on the customer media port dropped");
            return;
        };
        let arrival = self.origin.elapsed().as_secs_f64();
        self.customer_rx.packet(reader.sequence_number().into(), reader.timestamp(), reader.ssrc(), arrival);
        latch(&mut self.customer_remote, source);
        if self.customer_heard.is_some() {
            self.customer_heard = Some(Instant::now());
        }
        if let Some((agent_socket, agent_remote)) = &self.agent {
            if !self.customer_holds {
                let out = &mut self.forward[..packet.len()];
                out.copy_from_slice(packet);
                recode(out, &reader, self.agent_codec);
                self.toward_agent.rewrite(out, Instant::now());
                let _ = agent_socket.try_send_to(out, *agent_remote);
            }
            if let Some(active) = self.recorder.as_mut()
                && let Err(error) = active.push(Channel::Customer, Instant::now(), reader.ssrc(), reader.timestamp(), reader.payload_type(), reader.payload()) {
                warn!(call = call.0, %error, "recording stopped");
                self.recorder = None;
            }
        }
    }

    /// A datagram from the agent: forwarded to the customer (unless the agent holds) and
    /// recorded.
    fn on_agent_packet(&mut self, packet: &[u8], source: SocketAddr) {
        let call = self.call;
        let Ok(reader) = RtpReader::new(packet) else {
            debug!(call = call.0, %source, "non-RTP packet on the agent media port dropped");
            return;
        };
        let arrival = self.origin.elapsed().as_secs_f64();
        self.agent_rx.packet(reader.sequence_number().into(), reader.timestamp(), reader.ssrc(), arrival);
        if let Some((_, agent_remote)) = self.agent.as_mut() {
            let mut remote = Some(*agent_remote);
            latch(&mut remote, source);
            if let Some(remote) = remote {
                *agent_remote = remote;
            }
        }
        if let Some(remote) = self.customer_remote.filter(|_| !self.agent_holds) {
            let out = &mut self.forward[..packet.len()];
            out.copy_from_slice(packet);
            recode(out, &reader, self.codec);
            self.toward_customer.rewrite(out, Instant::now());
            let _ = self.customer_socket.try_send_to(out, remote);
        }
        if let Some(active) = self.recorder.as_mut()
            && let Err(error) = active.push(Channel::Agent, Instant::now(), reader.ssrc(), reader.timestamp(), reader.payload_type(), reader.payload()) {
            warn!(call = call.0, %error, "recording stopped");
            self.recorder = None;
        }
    }

    /// Reports an answered customer silent past the media timeout, once.
    fn check_silence(&mut self) {
        if self.customer_heard.is_some_and(|heard| heard.elapsed() >= self.silence.timeout) {
            self.customer_heard = None;
            let _ = self.silence.dead.send(self.call);
        }
    }

    /// Whether someone should hear audio made here: hold audio toward the customer (held
    /// before the bridge, or by the agent), hold audio or ringback toward the agent.
    fn hold_audio_due(&self) -> bool {
        ((self.holding && self.agent.is_none() || self.agent_holds) && self.customer_remote.is_some())
            || ((self.customer_holds || self.ringing && self.customer_remote.is_none()) && self.agent.is_some())
    }

    /// Sends the next 20 ms of made-here audio to whoever is due it.
    fn send_hold_audio(&mut self) {
        if (self.holding && self.agent.is_none() || self.agent_holds)
            && let Some(remote) = self.customer_remote
            && let Some(mut packet) = next_hold_packet(&mut self.hold, &self.hold_audio, self.codec) {
                self.toward_customer.rewrite(&mut packet, Instant::now());
                let _ = self.customer_socket.try_send_to(&packet, remote);
            }
        if let Some((agent_socket, agent_remote)) = &self.agent {
            let packet = if self.customer_holds {
                next_hold_packet(&mut self.hold_toward_agent, &self.hold_audio, self.agent_codec)
            } else if self.ringing && self.customer_remote.is_none() {
                next_hold_packet(&mut self.ringback, &RINGBACK, self.agent_codec)
            } else {
                None
            };
            if let Some(mut packet) = packet {
                self.toward_agent.rewrite(&mut packet, Instant::now());
                let _ = agent_socket.try_send_to(&packet, *agent_remote);
            }
        }
    }
}

/// Five seconds of ringback at 8 kHz: 450 Hz for one second, then four of silence, looped.
static RINGBACK: std::sync::LazyLock<Vec<i16>> = std::sync::LazyLock::new(|| {
    (0..40_000)
        .map(|idx| {
            if idx < 8_000 {
                let phase = 2.0 * std::f32::consts::PI * 450.0 * idx as f32 / 8_000.0;
                (phase.sin() * 8_000.0) as i16
            } else {
                0
            }
        })
        .collect()
});

/// One outgoing RTP stream made of packets from changing sources.
pub(crate) struct StreamRewriter {
    ssrc: u32,
    /// Last sequence number and timestamp sent, and when.
    last: Option<(u16, u32, Instant)>,
    /// The current source's SSRC and the offsets mapping its numbering onto ours.
    source: Option<(u32, u16, u32)>,
}

impl StreamRewriter {
    pub(crate) fn new(ssrc: u32) -> StreamRewriter {
        StreamRewriter {
            ssrc,
            last: None,
            source: None,
        }
    }

    /// Rewrites SSRC, sequence number and timestamp of `packet` in place (RFC 3550 fixed
    /// header: sequence at bytes 2-3, timestamp 4-7, SSRC 8-11). Too-short packets are left.
    pub(crate) fn rewrite(&mut self, packet: &mut [u8], now: Instant) {
        if packet.len() < 12 {
            return;
        }
        let in_seq = u16::from_be_bytes([packet[2], packet[3]]);
        let in_ts = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let in_ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
        let switched = self.source.is_none_or(|(ssrc, _, _)| ssrc != in_ssrc);
        if switched {
            // Continue right after what was last sent; the timestamp advances by the wall
            // time since then (at least one 20 ms packet), so the receiver's jitter buffer
            // sees a continuous clock.
            let (seq, ts) = match self.last {
                Some((seq, ts, at)) => {
                    let elapsed = now.duration_since(at).as_millis().min(60_000) as u32 * 8;
                    (seq.wrapping_add(1), ts.wrapping_add(elapsed.max(160)))
                }
                None => (in_seq, in_ts),
            };
            self.source = Some((in_ssrc, seq.wrapping_sub(in_seq), ts.wrapping_sub(in_ts)));
            if self.last.is_some() {
                packet[1] |= 0x80; // marker: a new talkspurt starts here
            }
        }
        let (_, seq_offset, ts_offset) = self.source.unwrap_or((in_ssrc, 0, 0));
        let seq = in_seq.wrapping_add(seq_offset);
        let ts = in_ts.wrapping_add(ts_offset);
        packet[2..4].copy_from_slice(&seq.to_be_bytes());
        packet[4..8].copy_from_slice(&ts.to_be_bytes());
        packet[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        let newer = self
            .last
            .is_none_or(|(last_seq, _, _)| (seq.wrapping_sub(last_seq) as i16) > 0);
        if newer {
            self.last = Some((seq, ts, now));
        }
    }
}

/// Re-encodes a copied G.711 packet into the receiver's law `to` (payload and payload type)
/// when it came in the other one, leaving telephone-event and same-law packets alone. Decided
/// by each packet's own payload type, not by what was negotiated: a phone offered both laws
/// may switch between them. `reader` reads the original, which has the same layout as `out`.
fn recode(out: &mut [u8], reader: &RtpReader<'_>, to: Codec) {
    let convert: fn(&mut [u8]) = match (reader.payload_type(), to) {
        (0, Codec::Pcma) => g711::ulaw_to_alaw,
        (8, Codec::Pcmu) => g711::alaw_to_ulaw,
        _ => return,
    };
    let start = reader.payload_offset();
    let Some(payload) = out.get_mut(start..start + reader.payload().len()) else {
        return;
    };
    convert(payload);
    out[1] = (out[1] & 0x80) | to.payload_type();
}

/// Follows a peer's RTP source port, but only from the IP its SDP named.
fn latch(remote: &mut Option<SocketAddr>, source: SocketAddr) {
    if let Some(current) = remote
        && current.ip() == source.ip()
        && current.port() != source.port()
    {
        *current = source;
    }
}

fn next_hold_packet(hold: &mut HoldState, audio: &[i16], codec: Codec) -> Option<Vec<u8>> {
    if audio.is_empty() {
        return None;
    }
    let mut payload = [0u8; 160];
    for byte in payload.iter_mut() {
        let sample = audio[hold.position % audio.len()];
        hold.position = (hold.position + 1) % audio.len();
        *byte = match codec {
            Codec::Pcmu => g711::linear_to_ulaw(sample),
            Codec::Pcma => g711::linear_to_alaw(sample),
        };
    }
    let packet = RtpPacketBuilder::new()
        .payload_type(codec.payload_type())
        .sequence(Seq::from(hold.sequence))
        .timestamp(hold.timestamp)
        .ssrc(hold.ssrc)
        .marked(hold.first)
        .payload(&payload)
        .build()
        .ok();
    hold.first = false;
    hold.sequence = hold.sequence.wrapping_add(1);
    hold.timestamp = hold.timestamp.wrapping_add(160);
    packet
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn packet(seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
        RtpPacketBuilder::new()
            .payload_type(0)
            .sequence(Seq::from(seq))
            .timestamp(ts)
            .ssrc(ssrc)
            .payload(&[0xffu8; 160])
            .build()
            .expect("rtp")
    }

    #[test]
    fn recode_turns_alaw_into_ulaw_and_leaves_events_alone() {
        let samples: Vec<i16> = (0..160).map(|idx| ((idx as f32 / 5.0).sin() * 12_000.0) as i16).collect();
        let alaw: Vec<u8> = samples.iter().map(|sample| g711::linear_to_alaw(*sample)).collect();
        let original = RtpPacketBuilder::new()
            .payload_type(8)
            .marked(true)
            .sequence(Seq::from(7))
            .timestamp(160)
            .ssrc(1)
            .payload(&alaw)
            .build()
            .expect("rtp");
        let mut out = original.clone();
        recode(&mut out, &RtpReader::new(&original).expect("rtp"), Codec::Pcmu);
        let reader = RtpReader::new(&out).expect("rtp");
        assert_eq!(reader.payload_type(), 0);
        assert!(reader.mark(), "the marker bit survives");
        for (sample, byte) in samples.iter().zip(reader.payload()) {
            let decoded = g711::ulaw_to_linear(*byte);
            let tolerance = (i32::from(*sample).abs() / 16).max(32);
            assert!((i32::from(decoded) - i32::from(*sample)).abs() <= tolerance, "{sample} -> {decoded}");
        }
        // An RFC 4733 event passes untouched.
        let event = RtpPacketBuilder::new()
            .payload_type(101)
            .sequence(Seq::from(8))
            .timestamp(320)
            .ssrc(1)
            .payload(&[1, 0x8a, 0, 160])
            .build()
            .expect("rtp");
        let mut out = event.clone();
        recode(&mut out, &RtpReader::new(&event).expect("rtp"), Codec::Pcmu);
        assert_eq!(out, event);
        // A packet already in the receiver's law passes untouched.
        let mut out = original.clone();
        recode(&mut out, &RtpReader::new(&original).expect("rtp"), Codec::Pcma);
        assert_eq!(out, original);
    }

    #[test]
    fn a_source_switch_keeps_one_continuous_stream() {
        let start = Instant::now();
        let mut rewriter = StreamRewriter::new(0xabcd);
        let mut sent = Vec::new();
        // Hold audio: three packets from one SSRC.
        for idx in 0..3u16 {
            let mut hold = packet(1000 + idx, 50_000 + u32::from(idx) * 160, 7);
            rewriter.rewrite(
                &mut hold,
                start + Duration::from_millis(20 * u64::from(idx)),
            );
            sent.push(hold);
        }
        // Then the agent, with unrelated numbering, 20 ms after the last hold packet.
        for idx in 0..2u16 {
            let mut agent = packet(60_000 + idx, 9_000_000 + u32::from(idx) * 160, 99);
            rewriter.rewrite(
                &mut agent,
                start + Duration::from_millis(60 + 20 * u64::from(idx)),
            );
            sent.push(agent);
        }
        let readers: Vec<RtpReader<'_>> = sent
            .iter()
            .map(|bytes| RtpReader::new(bytes).expect("rtp"))
            .collect();
        for pair in readers.windows(2) {
            assert_eq!(pair[1].ssrc(), 0xabcd);
            assert_eq!(
                u16::from(pair[1].sequence_number()),
                u16::from(pair[0].sequence_number()).wrapping_add(1)
            );
            assert_eq!(pair[1].timestamp().wrapping_sub(pair[0].timestamp()), 160);
        }
        assert!(!readers[2].mark());
        assert!(readers[3].mark(), "the switch starts a talkspurt");
        assert!(!readers[4].mark());
    }
}
