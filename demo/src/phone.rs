//! A simulated agent phone: a real SIP UA on loopback that registers with the appliance.
//!
//! It is `sip_core::peer`'s peer driven by `sip-peers`, with a phone's behaviour:
//! - REGISTERs its extension with the appliance, answering the 401 digest challenge, and
//!   refreshes at half the granted expiry (retrying every 10 s while refused or unanswered);
//! - auto-answers INVITEs: 180, then after [`PhoneConfig::answer_delay`] 200 with an SDP
//!   answer, and sends G.711 audio (a tone with a little noise, 20 ms packets) while the call
//!   lasts;
//! - answers BYE with 200 and stops the audio; a CANCEL while ringing gets 200 + 487;
//! - on shutdown unregisters (Expires: 0).
//!
//! Run it with [`run_phone`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sip_peers::{CallBehaviour, PeerConfig, PeerSocket, RegisterConfig};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::peer::Tone;

/// How long a phone waits for its REGISTER to be accepted before sending it again.
const REGISTER_RETRY: Duration = Duration::from_secs(10);

/// How the simulated phone behaves.
#[derive(Debug, Clone)]
pub struct PhoneConfig {
    /// The appliance's SIP address (`Telephony::local_sip_addr`).
    pub registrar: SocketAddr,
    /// The phone's own SIP socket; port 0 picks a free one.
    pub bind: SocketAddr,
    /// The extension (also the digest user name).
    pub extension: String,
    pub password: String,
    /// Registration lifetime asked for.
    pub register_expires: Duration,
    /// Ringing time before the phone picks up by itself.
    pub answer_delay: Duration,
    /// Frequency of the agent's "voice" tone.
    pub tone_hz: f64,
}

impl PhoneConfig {
    /// A phone for `extension` registering with `registrar`, with quick defaults for the demo.
    pub fn new(registrar: SocketAddr, extension: &str, password: &str) -> PhoneConfig {
        PhoneConfig {
            registrar,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            extension: extension.to_string(),
            password: password.to_string(),
            register_expires: Duration::from_secs(300),
            answer_delay: Duration::from_millis(500),
            tone_hz: 520.0,
        }
    }

    /// The peer this phone is.
    pub fn peer(&self) -> PeerConfig {
        PeerConfig {
            user: self.extension.clone(),
            calls: CallBehaviour {
                ringing: true,
                ring: (self.answer_delay, self.answer_delay),
                ..CallBehaviour::at_once()
            },
            register: Some(RegisterConfig {
                registrar: self.registrar,
                password: self.password.clone(),
                expires: self.register_expires,
                retry: REGISTER_RETRY,
            }),
        }
    }
}

/// Runs the phone until `shutdown` is cancelled.
pub async fn run_phone(config: PhoneConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let socket = PeerSocket::bind(config.bind)
        .await
        .with_context(|| format!("phone {} cannot bind {}", config.extension, config.bind))?;
    info!(extension = %config.extension, local = %socket.local_addr()?, "simulated phone started");
    let tone = Arc::new(Tone { hz: config.tone_hz });
    socket.run(config.peer(), tone, shutdown).await?;
    Ok(())
}
