//! The wire as release 2 spoke it (protocol version 2), frozen.
//!
//! The enums a release grows ([`Frame`], [`UpEvent`], [`DownEvent`]) are copied here as
//! they were at version 2 and never change again; their payloads are the current types,
//! which the house rule already freezes (a type on the wire is never changed, only new ones
//! added). Tests speak through these types to act as a site or hub of the previous release,
//! and `tests/golden_v2.rs` pins their bytes, so an edit to the current enums that would
//! break an old peer shows up as a diff against the checked-in fixture.

use serde::{Deserialize, Serialize};

use crate::messages::{
    Announcement, AttributionRules, BatchChunk, BatchControl, BatchManifest, BlackListChange, BusinessRecord,
    CallAttempt, CallAttemptDetail, Callback, ClientHello, ControlApplied, CustomerEdit, AgentStateChange, LinkSettings,
    LiveFigures, OneClickControl, PhoneListChange, ProjectControl, ProjectDef, ProjectSettings, ReportDefinition,
    ServerHello, SiteLive, VoiceFile,
};

/// The protocol version of this module.
pub const VERSION: u32 = 2;

/// The ALPN a site or hub of version 2 offers.
pub const SYNC_ALPN: &[u8] = b"outpost-sync/2";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Frame {
    ClientHello(ClientHello),
    ServerHello(ServerHello),
    Refused { reason: String },
    Up(UpEntry),
    UpAck { epoch: u64, seq: u64 },
    Down(DownEntry),
    DownAck { seq: u64 },
    Ping,
    LiveFigures(LiveFigures),
    WantRecording { sha256: [u8; 32] },
    SiteLive(SiteLive),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpEntry {
    pub epoch: u64,
    pub seq: u64,
    pub event: UpEvent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DownEntry {
    pub seq: u64,
    pub event: DownEvent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UpEvent {
    CallAttempt(CallAttempt),
    BusinessRecord(BusinessRecord),
    CustomerEdit(CustomerEdit),
    Callback(Callback),
    AgentState(AgentStateChange),
    ControlApplied(ControlApplied),
    CallAttemptDetail(CallAttemptDetail),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DownEvent {
    Project(ProjectDef),
    BatchChunk(BatchChunk),
    BatchManifest(BatchManifest),
    BatchControl(BatchControl),
    ProjectControl(ProjectControl),
    OneClick(OneClickControl),
    BlackList(BlackListChange),
    Announcement(Announcement),
    AttributionRules(AttributionRules),
    VoiceFile(VoiceFile),
    LinkSettings(LinkSettings),
    ProjectSettings(ProjectSettings),
    PhoneList(PhoneListChange),
    ReportDefinitions { project_id: u64, version: u64, defs: Vec<ReportDefinition> },
}
