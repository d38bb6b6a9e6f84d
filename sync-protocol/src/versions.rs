//! Protocol versions: which sync versions this build speaks ([`sync_alpns`],
//! [`alpn_version`]) and which version introduced each message ([`Frame::since`],
//! [`UpEvent::since`], [`DownEvent::since`]), so a session never sends a peer what its
//! version cannot decode. The `since()` matches are exhaustive on purpose: a variant appended
//! to one of the enums does not compile until it names its version here.

use crate::messages::{DownEvent, Frame, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, SiteAlarm, UpEvent};

/// The ALPN of each sync protocol version, `outpost-sync/<version>`.
const SYNC_ALPN_PREFIX: &str = "outpost-sync/";

/// The sync ALPNs this build speaks, newest first: [`PROTOCOL_VERSION`] down to
/// [`MIN_PROTOCOL_VERSION`].
pub fn sync_alpns() -> Vec<Vec<u8>> {
    (MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).rev().map(|version| format!("{SYNC_ALPN_PREFIX}{version}").into_bytes()).collect()
}

/// The protocol version a negotiated sync ALPN names, if this build speaks it.
pub fn alpn_version(alpn: &[u8]) -> Option<u32> {
    let version: u32 = std::str::from_utf8(alpn).ok()?.strip_prefix(SYNC_ALPN_PREFIX)?.parse().ok()?;
    (MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&version).then_some(version)
}

impl Frame {
    /// The protocol version that introduced this frame kind. Exhaustive on purpose: a new
    /// variant does not compile until it names its version. A session never sends a frame
    /// newer than the version it negotiated.
    pub fn since(&self) -> u32 {
        match self {
            Frame::ClientHello(_)
            | Frame::ServerHello(_)
            | Frame::Refused { .. }
            | Frame::Up(_)
            | Frame::UpAck { .. }
            | Frame::Down(_)
            | Frame::DownAck { .. }
            | Frame::Ping
            | Frame::LiveFigures(_)
            | Frame::WantRecording { .. }
            | Frame::SiteLive(_) => 2,
        }
    }

    /// The version a peer needs to read this frame: the frame's own, or its entry's event's.
    pub fn needs_version(&self) -> u32 {
        match self {
            Frame::Up(entry) => self.since().max(entry.event.since()),
            Frame::Down(entry) => self.since().max(entry.event.since()),
            other => other.since(),
        }
    }
}

impl UpEvent {
    /// The protocol version that introduced this variant: a hub older than it cannot read it.
    /// Exhaustive on purpose: a new variant does not compile until it names its version.
    pub fn since(&self) -> u32 {
        match self {
            UpEvent::CallAttempt(_)
            | UpEvent::BusinessRecord(_)
            | UpEvent::CustomerEdit(_)
            | UpEvent::Callback(_)
            | UpEvent::AgentState(_)
            | UpEvent::ControlApplied(_)
            | UpEvent::CallAttemptDetail(_) => 2,
            UpEvent::LeaseRequest(_) | UpEvent::LeaseReturn(_) => 3,
            UpEvent::CallQuality(_) => 4,
        }
    }
}

impl DownEvent {
    /// The protocol version that introduced this variant: a site older than it cannot decode
    /// it, so the hub holds it back from that site ([`crate::session::HubSession`]).
    /// Exhaustive on purpose: a new variant does not compile until it names its version.
    pub fn since(&self) -> u32 {
        match self {
            DownEvent::Project(_)
            | DownEvent::BatchChunk(_)
            | DownEvent::BatchManifest(_)
            | DownEvent::BatchControl(_)
            | DownEvent::ProjectControl(_)
            | DownEvent::OneClick(_)
            | DownEvent::BlackList(_)
            | DownEvent::Announcement(_)
            | DownEvent::AttributionRules(_)
            | DownEvent::VoiceFile(_)
            | DownEvent::LinkSettings(_)
            | DownEvent::ProjectSettings(_)
            | DownEvent::PhoneList(_)
            | DownEvent::ReportDefinitions { .. } => 2,
            DownEvent::SiteProfile(_)
            | DownEvent::RecordingRetention(_)
            | DownEvent::LeaseGrant(_)
            | DownEvent::LeaseRecall(_)
            | DownEvent::ListColumns(_) => 3,
        }
    }

    /// What a site too old for an entry's event receives at its seq instead: an event every
    /// version reads and applies as a no-op, so the site's down cursor stays contiguous.
    /// Report definitions of project 0 (no project has id 0) at version 0: a site stores an
    /// empty list for that project once, and never shows or uses it.
    pub fn held_back_stand_in() -> DownEvent {
        DownEvent::ReportDefinitions { project_id: 0, version: 0, defs: Vec::new() }
    }
}

impl SiteAlarm {
    /// The protocol version that introduced this alarm kind: a snapshot sent to an older hub
    /// leaves it out ([`crate::session::SiteSession::send_site_live`]). Exhaustive on purpose.
    pub fn since(&self) -> u32 {
        match self {
            SiteAlarm::TrunkDown { .. }
            | SiteAlarm::TrunkUnregistered { .. }
            | SiteAlarm::AbandonOverCap { .. }
            | SiteAlarm::DiskLow { .. } => 2,
            SiteAlarm::RecordingStopped { .. } => 3,
        }
    }
}
