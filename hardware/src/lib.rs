//! The telephony lines the appliance drives, behind one narrow interface.
//!
//! The appliance sees only this crate's own types: [`Telephony`] to act (dial a customer,
//! offer an answered call to an agent extension, play hold audio, hang up) and
//! [`LineEvent`] to learn what happened. No SIP type crosses this boundary; SIP lives in
//! `sip-core` (sans-IO) and in this crate's private driver.
//!
//! Data flow:
//! - [`Telephony::start`] binds the SIP socket and returns the handle and an event receiver.
//! - [`Telephony::dial`] sends an INVITE with an SDP offer (PCMU, PCMA, telephone-event) to
//!   a trunk; a ring timeout sends CANCEL. The outcome arrives as [`LineEvent::Ended`].
//! - When the customer answers ([`LineEvent::Answered`]), the appliance's call control
//!   decides to queue (hold audio) or to [`Telephony::bridge`] to a registered extension.
//! - Bridged calls relay RTP both ways and are recorded to a two-channel WAV file; the
//!   recording's path, size, duration and hash come with [`LineEvent::Ended`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// The appliance's handle on its lines. Cheap to clone.
#[derive(Clone)]
pub struct Telephony {
    // The driver's command inbox; private so no SIP type leaks.
    _private: (),
}

/// Everything the lines need to start.
#[derive(Debug, Clone)]
pub struct TelephonyConfig {
    /// Where the SIP socket binds (UDP; TCP on the same port).
    pub sip_bind: SocketAddr,
    /// Address written into SDP and Via/Contact (the LAN address phones and trunks reach).
    pub public_ip: IpAddr,
    /// RTP ports are taken from this range, two per leg.
    pub rtp_ports: (u16, u16),
    pub trunks: Vec<TrunkConfig>,
    pub extensions: Vec<ExtensionConfig>,
    /// Where call recordings are written.
    pub recordings_dir: PathBuf,
    /// G.711 µ-law WAV (8 kHz mono) played to answered calls waiting for an agent.
    pub hold_audio: Option<PathBuf>,
}

/// A SIP trunk toward a carrier (or an FXO gateway, which is a trunk with one channel per port).
#[derive(Debug, Clone)]
pub struct TrunkConfig {
    pub name: String,
    /// Where INVITEs are sent.
    pub address: SocketAddr,
    /// Domain used in the Request-URI and To.
    pub domain: String,
    /// Digest credentials, if the carrier challenges.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Most calls at once on this trunk.
    pub channels: u32,
}

/// An agent's phone account.
#[derive(Debug, Clone)]
pub struct ExtensionConfig {
    pub extension: String,
    pub password: String,
}

/// The appliance's own id for a call (one customer leg plus, once bridged, an agent leg).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

/// A request to ring a customer.
#[derive(Debug, Clone)]
pub struct DialRequest {
    pub call: CallId,
    pub trunk: String,
    /// Number (or carrier dial token) placed in the Request-URI user part.
    pub number: String,
    pub caller_id: String,
    /// Ring this long, then CANCEL ([`Outcome::NoAnswer`]).
    pub ring_timeout: Duration,
}

/// How a finished call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered and bridged to an agent.
    Answered,
    /// 486 / 600.
    Busy,
    /// Ring timeout reached; CANCEL sent (487 received).
    NoAnswer,
    /// 603 and other explicit refusals.
    Rejected,
    /// Anything else; the SIP status (or 0 for a transport failure / timeout).
    Failed { status: u16 },
    /// Answered but never bridged to an agent before the customer or the queue gave up.
    Abandoned,
}

/// Who hung up first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangupSide {
    Customer,
    Agent,
    System,
}

/// A finished recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    pub path: PathBuf,
    pub bytes: u64,
    pub duration_ms: u64,
    /// SHA-256 of the WAV file, hex.
    pub sha256: String,
}

/// What the lines report to the appliance.
#[derive(Debug, Clone)]
pub enum LineEvent {
    /// 180 / 183 from the customer side.
    Ringing { call: CallId },
    /// 200 OK from the customer side; the customer is on the line, hearing nothing yet.
    Answered { call: CallId },
    /// The agent's phone is ringing for this call.
    AgentRinging { call: CallId, extension: String },
    /// The agent answered; customer and agent now hear each other and recording runs.
    Bridged { call: CallId, extension: String },
    /// The agent's phone did not take the call (busy, declined, timeout, unregistered).
    /// The customer leg stays up; the appliance may offer the call to another agent.
    AgentMissed { call: CallId, extension: String },
    /// The whole call is over.
    Ended {
        call: CallId,
        outcome: Outcome,
        hangup_side: Option<HangupSide>,
        recording: Option<Recording>,
    },
    /// An extension registered (or refreshed) from this contact.
    ExtensionRegistered { extension: String, contact: SocketAddr },
    /// An extension's registration expired or was removed.
    ExtensionUnregistered { extension: String },
}

/// Why [`Telephony::start`] failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The SIP port could not be bound.
    #[error("cannot bind SIP on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    /// The recordings directory cannot be created or written.
    #[error("recordings directory {path}: {source}")]
    Recordings { path: PathBuf, source: std::io::Error },
}
