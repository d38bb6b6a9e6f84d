//! Simulated SIP carriers and phones on real UDP sockets: the one tokio driver of
//! [`sip_core::peer`], used by the demo (`demo::carrier`, `demo::phone`), the capacity
//! benchmark (`hardware/examples/sip_bench.rs`) and the popup latency example
//! (`appliance/examples/popup_latency.rs`).
//!
//! Why a crate of its own: its users sit at three levels of the workspace. `hardware`'s
//! benchmark cannot use a driver kept in `demo` (the demo depends on `hardware` and
//! `appliance`, and `hardware` depends on nothing above it), so the driver lives here, over
//! `sip-core` alone, where each of them can reach it.
//!
//! - [`PeerSocket::bind`] binds the peer's SIP socket (port 0 picks one; read it with
//!   [`PeerSocket::local_addr`]) and [`PeerSocket::run`] drives a [`sip_core::peer::Peer`]
//!   on it until the shutdown token is cancelled; a phone then unregisters.
//! - Each call the peer answers gets its own RTP socket on the peer's address, bound when the
//!   peer asks for one ([`PeerEvent::AnswerDue`]); its port goes into the SDP answer.
//! - [`Hooks`] is what a user adds: a call's audio ([`Hooks::media`]; by default the socket
//!   is held and drained until the call ends, sending nothing) and a look at every event
//!   with the instant it was handled ([`Hooks::event`]). [`Silent`] and [`OnEvent`] are the
//!   ready-made ones.
//!
//! A datagram that is not SIP is logged and dropped; a failed send is logged, and the
//! peer's own resends (or the other side's) make up for it, as on a real network.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use sip_core::peer::Peer;
use sip_core::sdp::Codec;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use sip_core::peer::{CallBehaviour, PeerConfig, PeerEvent, RegisterConfig};

/// An answered call's audio, handed to [`Hooks::media`].
#[derive(Debug)]
pub struct MediaCall {
    pub call_id: String,
    /// The user part of the call's Request-URI (the number dialled).
    pub number: String,
    /// The RTP socket named in the SDP answer.
    pub socket: UdpSocket,
    /// Where the other side wants RTP, and in which codec.
    pub remote: SocketAddr,
    pub codec: Codec,
    /// Cancelled when the call ends or the peer stops.
    pub stop: CancellationToken,
}

/// What a user of a simulated peer adds to it.
pub trait Hooks: Send + Sync + 'static {
    /// Plays an answered call's audio until `call.stop` is cancelled. The default sends
    /// nothing and holds the socket, draining what arrives, so the other side's RTP finds
    /// a live port.
    fn media(&self, call: MediaCall) {
        tokio::spawn(hold_silent(call));
    }

    /// Sees every event of the peer, at the instant it was handled (an answer's event comes
    /// after its 200 has been sent).
    fn event(&self, _at: Instant, _event: &PeerEvent) {}
}

/// Silent calls, no look at events.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Hooks for Silent {}

/// Silent calls, and every event handed to the function.
pub struct OnEvent<F>(pub F);

impl<F> Hooks for OnEvent<F>
where
    F: Fn(Instant, &PeerEvent) + Send + Sync + 'static,
{
    fn event(&self, at: Instant, event: &PeerEvent) {
        (self.0)(at, event);
    }
}

async fn hold_silent(call: MediaCall) {
    let mut drain = vec![0u8; 2048];
    loop {
        tokio::select! {
            _ = call.stop.cancelled() => return,
            received = call.socket.recv_from(&mut drain) => {
                if received.is_err() {
                    // An ICMP error surfacing on the socket; the call goes on.
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        }
    }
}

/// A simulated peer's SIP socket.
#[derive(Debug)]
pub struct PeerSocket {
    socket: UdpSocket,
}

impl PeerSocket {
    pub async fn bind(addr: SocketAddr) -> io::Result<PeerSocket> {
        Ok(PeerSocket {
            socket: UdpSocket::bind(addr).await?,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Drives a peer described by `config` on this socket until `shutdown` is cancelled; a
    /// phone then unregisters and every call's audio stops.
    pub async fn run(
        self,
        config: PeerConfig,
        hooks: Arc<dyn Hooks>,
        shutdown: CancellationToken,
    ) -> io::Result<()> {
        let local = self.socket.local_addr()?;
        let who = config.user.clone();
        let mut driver = Driver {
            socket: self.socket,
            local,
            who,
            peer: Peer::new(config, local, rand::random(), Instant::now()),
            hooks,
            media: HashMap::new(),
        };
        let mut buffer = vec![0u8; 65_536];
        loop {
            driver.flush().await;
            let timeout = driver.peer.poll_timeout();
            let due = async {
                match timeout {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => {
                    for stop in driver.media.values() {
                        stop.cancel();
                    }
                    driver.peer.close();
                    driver.flush().await;
                    return Ok(());
                }
                received = driver.socket.recv_from(&mut buffer) => {
                    let Ok((n_bytes, source)) = received else { continue };
                    match sip_core::parse(&buffer[..n_bytes]) {
                        Ok(message) => driver.peer.handle(Instant::now(), source, message),
                        Err(error) => warn!(who = %driver.who, %source, %error, "simulated peer ignored a bad packet"),
                    }
                }
                _ = due => driver.peer.handle_timeout(Instant::now()),
            }
        }
    }
}

/// Binds `bind` and runs the peer on it (see [`PeerSocket::run`]).
pub async fn run(
    config: PeerConfig,
    bind: SocketAddr,
    hooks: Arc<dyn Hooks>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    PeerSocket::bind(bind)
        .await?
        .run(config, hooks, shutdown)
        .await
}

struct Driver {
    socket: UdpSocket,
    local: SocketAddr,
    who: String,
    peer: Peer,
    hooks: Arc<dyn Hooks>,
    /// Stops the audio of each answered call, by Call-ID.
    media: HashMap<String, CancellationToken>,
}

impl Driver {
    /// Sends what the peer has to send and acts on what it says, until it has nothing more.
    async fn flush(&mut self) {
        // An RTP socket between the peer asking for it and the answer naming it.
        let mut bound: HashMap<String, UdpSocket> = HashMap::new();
        loop {
            while let Some(transmit) = self.peer.poll_transmit() {
                if let Err(error) = self
                    .socket
                    .send_to(&transmit.to_bytes(), transmit.destination)
                    .await
                {
                    warn!(who = %self.who, destination = %transmit.destination, %error, "simulated peer send failed");
                }
            }
            let Some(event) = self.peer.poll_event() else {
                return;
            };
            self.hooks.event(Instant::now(), &event);
            match event {
                PeerEvent::AnswerDue { call_id } => {
                    match UdpSocket::bind((self.local.ip(), 0)).await {
                        Ok(rtp) => {
                            let port = rtp.local_addr().map(|addr| addr.port()).unwrap_or(0);
                            bound.insert(call_id.clone(), rtp);
                            self.peer.answer(Instant::now(), &call_id, port);
                        }
                        Err(error) => {
                            warn!(who = %self.who, %error, "simulated peer has no RTP socket; declining with 488");
                            self.peer.decline(Instant::now(), &call_id);
                        }
                    }
                }
                PeerEvent::Answered {
                    call_id,
                    number,
                    remote,
                    codec,
                } => {
                    let Some(socket) = bound.remove(&call_id) else {
                        continue;
                    };
                    let stop = CancellationToken::new();
                    self.media.insert(call_id.clone(), stop.clone());
                    self.hooks.media(MediaCall {
                        call_id,
                        number,
                        socket,
                        remote,
                        codec,
                        stop,
                    });
                }
                PeerEvent::Ended { call_id } => {
                    if let Some(stop) = self.media.remove(&call_id) {
                        stop.cancel();
                    }
                }
                PeerEvent::Offered { call_id, number } => {
                    debug!(who = %self.who, %call_id, %number, "simulated peer offered a call");
                }
                PeerEvent::Registered { granted } => {
                    info!(who = %self.who, granted = granted.as_secs(), "simulated phone registered");
                }
                PeerEvent::RegisterRefused { status } => {
                    warn!(who = %self.who, status, "simulated phone's registration refused; retrying");
                }
            }
        }
    }
}
