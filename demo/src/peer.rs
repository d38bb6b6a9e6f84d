//! What the simulated carrier and the simulated phones share: their audio, a tone with a
//! little noise as G.711 RTP every 20 ms, played by `sip-peers` on each answered call.

use std::time::Duration;

use rand::Rng as _;
use sip_core::sdp::Codec;
use sip_peers::{Hooks, MediaCall};

/// A peer whose answered calls carry a tone of `hz` (the customer's or the agent's "voice").
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tone {
    pub hz: f64,
}

impl Hooks for Tone {
    fn media(&self, call: MediaCall) {
        tokio::spawn(send_audio(call, self.hz));
    }
}

/// Sends the tone until the call's `stop`; drains whatever the other side sends so the
/// socket buffer never fills.
async fn send_audio(call: MediaCall, tone_hz: f64) {
    let MediaCall {
        socket,
        remote,
        codec,
        stop,
        ..
    } = call;
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
