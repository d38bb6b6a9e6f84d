//! A simulated carrier: a real SIP UAS on loopback that the appliance's trunk dials.
//!
//! It is `sip_core::peer`'s peer driven by `sip-peers`, with the carrier's behaviour: for
//! each INVITE it decides at random
//! - answer (share [`CarrierConfig::answer_share`]): 100 and 180, then 200 with an SDP
//!   answer after a random ring; it then sends G.711 audio (a tone with a little noise, 20 ms
//!   packets) and hangs up with BYE after a random talk time, unless the appliance hangs up
//!   first;
//! - busy (share [`CarrierConfig::busy_share`] of the rest): 486 Busy Here;
//! - otherwise ring (180) until the appliance sends CANCEL, then 200 + 487.
//!
//! Retransmitted INVITEs get the last response again; non-2xx finals are resent until ACKed.
//! Run it with [`run_carrier`]; point a trunk at [`CarrierConfig::bind`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sip_peers::{CallBehaviour, PeerConfig, PeerSocket};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::peer::Tone;

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

impl CarrierConfig {
    /// The peer this carrier is.
    pub fn peer(&self) -> PeerConfig {
        PeerConfig {
            user: "carrier".into(),
            calls: CallBehaviour {
                trying: true,
                ringing: true,
                answer_share: self.answer_share,
                busy_share: self.busy_share,
                ring: self.ring,
                talk: Some(self.talk),
            },
            register: None,
        }
    }
}

/// Runs the carrier until `shutdown` is cancelled.
pub async fn run_carrier(config: CarrierConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let socket = PeerSocket::bind(config.bind)
        .await
        .with_context(|| format!("carrier cannot bind SIP on {}", config.bind))?;
    info!(local = %socket.local_addr()?, "simulated carrier listening");
    let tone = Arc::new(Tone { hz: config.tone_hz });
    socket.run(config.peer(), tone, shutdown).await?;
    Ok(())
}
