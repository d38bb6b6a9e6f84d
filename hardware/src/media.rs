//! The media task of one call: RTP relay between the legs, hold audio, and recording.
//!
//! - The driver spawns it when it dials, handing over the customer leg's RTP socket.
//! - [`MediaCommand::CustomerAnswered`] tells it where the customer's RTP goes and in which
//!   codec; [`MediaCommand::Hold`] starts hold audio toward the customer.
//! - [`MediaCommand::Bridge`] hands over the agent leg's socket: from then on packets are
//!   forwarded unchanged both ways (same payload type, both legs negotiated the same codec)
//!   and both directions are recorded.
//! - [`MediaCommand::Finish`] writes the recording (if the call was bridged), replies with it,
//!   and ends the task, closing the sockets.
//!
//! Remote addresses latch to where packets actually come from, but only from the IP the SDP
//! named, so a peer behind a port-rewriting NAT still hears audio while strangers cannot
//! inject into the call.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};
use sip_core::sdp::Codec;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::g711;
use crate::recording::{Channel, Recorder};
use crate::{CallId, Recording};

/// What the driver asks of a call's media.
pub(crate) enum MediaCommand {
    CustomerAnswered {
        remote: SocketAddr,
        codec: Codec,
    },
    Hold,
    Bridge {
        agent_socket: UdpSocket,
        agent_remote: SocketAddr,
    },
    Finish {
        recording_path: Option<PathBuf>,
        reply: oneshot::Sender<Option<Recording>>,
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
) -> MediaHandle {
    let (commands, inbox) = mpsc::unbounded_channel();
    tokio::spawn(run(call, customer_socket, hold_audio, inbox));
    MediaHandle { commands }
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

async fn run(
    call: CallId,
    customer_socket: UdpSocket,
    hold_audio: Arc<Vec<i16>>,
    mut inbox: mpsc::UnboundedReceiver<MediaCommand>,
) {
    let mut customer_remote: Option<SocketAddr> = None;
    let mut codec = Codec::Pcmu;
    let mut holding = false;
    let mut hold = HoldState {
        position: 0,
        sequence: rand::random(),
        timestamp: rand::random(),
        ssrc: rand::random(),
        first: true,
    };
    let mut agent: Option<(UdpSocket, SocketAddr)> = None;
    let mut recorder: Option<Recorder> = None;
    let mut hold_tick = tokio::time::interval(Duration::from_millis(20));
    hold_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut customer_buffer = vec![0u8; 2048];
    let mut agent_buffer = vec![0u8; 2048];

    loop {
        tokio::select! {
            command = inbox.recv() => match command {
                None => return,
                Some(MediaCommand::CustomerAnswered { remote, codec: negotiated }) => {
                    customer_remote = Some(remote);
                    codec = negotiated;
                }
                Some(MediaCommand::Hold) => holding = agent.is_none(),
                Some(MediaCommand::Bridge { agent_socket, agent_remote }) => {
                    holding = false;
                    agent = Some((agent_socket, agent_remote));
                    recorder = Some(Recorder::new(Instant::now()));
                }
                Some(MediaCommand::Finish { recording_path, reply }) => {
                    let recording = match (recorder.take(), recording_path) {
                        (Some(recorder), Some(path)) => {
                            match tokio::task::spawn_blocking(move || recorder.finish(&path)).await {
                                Ok(Ok(recording)) => Some(recording),
                                Ok(Err(error)) => {
                                    warn!(call = call.0, %error, "recording lost");
                                    None
                                }
                                Err(error) => {
                                    warn!(call = call.0, %error, "recording task failed");
                                    None
                                }
                            }
                        }
                        _ => None,
                    };
                    let _ = reply.send(recording);
                    return;
                }
            },
            received = customer_socket.recv_from(&mut customer_buffer) => {
                let Ok((n_bytes, source)) = received else { continue };
                let packet = &customer_buffer[..n_bytes];
                let Ok(reader) = RtpReader::new(packet) else {
                    debug!(call = call.0, %source, "non-RTP packet on the customer media port dropped");
                    continue;
                };
                latch(&mut customer_remote, source);
                if let Some((agent_socket, agent_remote)) = &agent {
                    let _ = agent_socket.try_send_to(packet, *agent_remote);
                    if let Some(recorder) = recorder.as_mut() {
                        recorder.push(Channel::Customer, Instant::now(), reader.ssrc(), reader.timestamp(), reader.payload_type(), reader.payload());
                    }
                }
            },
            received = recv_optional(agent.as_ref().map(|(socket, _)| socket), &mut agent_buffer) => {
                let Ok((n_bytes, source)) = received else { continue };
                let packet = &agent_buffer[..n_bytes];
                let Ok(reader) = RtpReader::new(packet) else {
                    debug!(call = call.0, %source, "non-RTP packet on the agent media port dropped");
                    continue;
                };
                if let Some((_, agent_remote)) = agent.as_mut() {
                    let mut remote = Some(*agent_remote);
                    latch(&mut remote, source);
                    if let Some(remote) = remote {
                        *agent_remote = remote;
                    }
                }
                if let Some(remote) = customer_remote {
                    let _ = customer_socket.try_send_to(packet, remote);
                }
                if let Some(recorder) = recorder.as_mut() {
                    recorder.push(Channel::Agent, Instant::now(), reader.ssrc(), reader.timestamp(), reader.payload_type(), reader.payload());
                }
            },
            _ = hold_tick.tick(), if holding && agent.is_none() && customer_remote.is_some() => {
                if let Some(remote) = customer_remote
                    && let Some(packet) = next_hold_packet(&mut hold, &hold_audio, codec) {
                        let _ = customer_socket.try_send_to(&packet, remote);
                    }
            },
        }
    }
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
