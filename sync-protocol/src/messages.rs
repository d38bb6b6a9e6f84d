//! Message types carried by the link, in both directions.
//!
//! Every enum here is `#[non_exhaustive]`: a newer peer may add variants, and an older one
//! must answer an unknown variant with a clear error, not a crash. Postcard encodes enum
//! variants by index, so variants are only ever appended, never reordered or removed; the
//! golden byte vectors in the tests pin that.

use serde::{Deserialize, Serialize};

/// ALPN of the sync link. The trailing number is [`PROTOCOL_VERSION`]; a peer offering a
/// different one fails the TLS handshake with `no_application_protocol`, and both sides log
/// which versions were on offer.
pub const SYNC_ALPN: &[u8] = b"outpost-sync/1";

/// ALPN of the enrollment exchange (no client certificate yet; proven by the one-time code).
pub const ENROLL_ALPN: &[u8] = b"outpost-enroll/1";

/// Version of the messages in this module. Bumped whenever a change is not purely additive.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest frame either side accepts, in bytes. A batch chunk is sized well below this.
pub const MAX_FRAME_LEN: usize = 4 * 1024 * 1024;

/// Identity of a site as HQ knows it (also the subject of its certificate: `site-<id>`).
pub type SiteId = u64;

/// One frame on the sync stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Frame {
    /// First frame from the appliance after the TLS handshake.
    ClientHello(ClientHello),
    /// The hub's answer to the hello: accepted, with where the hub stands.
    ServerHello(ServerHello),
    /// The hub refuses the session; the reason is meant for the technician's log.
    Refused { reason: String },
    /// One outbox entry going up.
    Up(UpEntry),
    /// Cumulative acknowledgement of the site's outbox: everything up to and including
    /// `(epoch, seq)` is committed at HQ.
    UpAck { epoch: u64, seq: u64 },
    /// One entry of the hub's per-site down log.
    Down(DownEntry),
    /// Cumulative acknowledgement of the down log: the site committed everything up to `seq`.
    DownAck { seq: u64 },
    /// Keeps an idle link honest; answered with nothing.
    Ping,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientHello {
    pub protocol_version: u32,
    pub site_id: SiteId,
    /// The appliance's store epoch: a fresh store (or one restored from a backup) starts a
    /// new epoch, so HQ can tell a reused sequence number from a replay.
    pub epoch: u64,
    /// The last down-log entry the site has committed.
    pub down_applied: u64,
    pub software: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerHello {
    pub protocol_version: u32,
    /// The highest outbox entry of this epoch HQ has committed, if any.
    pub up_committed: Option<u64>,
    pub software: String,
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

/// Things a site owns and reports to HQ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum UpEvent {
    /// One dial attempt finished (whatever its outcome).
    CallAttempt(CallAttempt),
    /// An agent saved (or re-saved) the business record of a call.
    BusinessRecord(BusinessRecord),
}

/// Things HQ owns and sends to a site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DownEvent {
    /// Create or replace a sub-project's definition (fields, popup, script, parameters).
    Project(ProjectDef),
    /// Rows of a batch. Not dialable until its [`DownEvent::BatchManifest`] checks out.
    BatchChunk(BatchChunk),
    /// The end of a batch: the count and hash the site must find before dialing it.
    BatchManifest(BatchManifest),
    /// A control change on a batch (priority 0 = ended, 1 = paused, 2..=100 = running).
    BatchControl(BatchControl),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectDef {
    pub project_id: u64,
    pub category: String,
    pub name: String,
    /// The script (话术) shown to agents in the popup.
    pub script: String,
    pub hide_middle_digits: bool,
    pub customer_fields: Vec<FieldDef>,
    pub record_fields: Vec<FieldDef>,
    pub params: ProjectParams,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDef {
    /// Variable name, unique in its list (`[a-z][a-z0-9_]*`).
    pub key: String,
    /// Title shown to people.
    pub title: String,
    pub kind: FieldKind,
    pub required: bool,
    pub read_only: bool,
    pub hidden: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum FieldKind {
    Text,
    /// Single choice; the options in their display order.
    SingleChoice(Vec<String>),
}

/// Parameters HQ may bind. `None` means HQ left it to each site.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProjectParams {
    pub dial_mode: Option<DialMode>,
    pub ring_seconds: Option<u32>,
    /// Predictive ratio, calls per available agent (1..=10).
    pub ratio: Option<u32>,
    pub max_concurrency: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DialMode {
    Predictive,
    OneClick,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchChunk {
    pub batch_id: u64,
    /// Index of this chunk, from 0; a re-sent chunk replaces the earlier copy.
    pub chunk_idx: u32,
    pub rows: Vec<CustomerRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerRow {
    /// HQ's id of the row, unique across all batches.
    pub row_id: u64,
    /// A dialable number, or a carrier's encrypted dial token dialed as-is.
    pub phone: String,
    /// Custom customer field values, by field key, in the project's field order.
    pub fields: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchManifest {
    pub batch_id: u64,
    pub project_id: u64,
    pub name: String,
    pub priority: u8,
    /// When HQ imported the batch (unix seconds): equal priorities dial oldest first.
    pub imported_at: i64,
    pub n_rows: u64,
    pub n_chunks: u32,
    /// [`rows_hash`] over every row of every chunk, in chunk then row order.
    pub rows_hash: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchControl {
    pub batch_id: u64,
    /// Per-batch version: a site applies a control change only if it is newer than the last.
    pub version: u64,
    pub priority: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallAttempt {
    /// The site's own id of the attempt; unique per site.
    pub attempt_id: u64,
    pub batch_id: u64,
    pub row_id: u64,
    pub started_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: i64,
    pub outcome: Outcome,
    pub hangup_side: Option<HangupSide>,
    pub agent: Option<String>,
    pub talk_seconds: u32,
    /// SHA-256 of the recording's WAV, if the call was recorded.
    pub recording_sha256: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Outcome {
    /// Customer answered and an agent talked to them.
    Connected,
    Busy,
    NoAnswer,
    Rejected,
    Failed,
    /// Customer answered but no agent took the call in time.
    Abandoned,
    /// The agent's phone was offered the call and did not take it.
    AgentMissed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HangupSide {
    Customer,
    Agent,
    System,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusinessRecord {
    pub attempt_id: u64,
    pub batch_id: u64,
    pub row_id: u64,
    pub agent: String,
    pub saved_at: i64,
    /// Values by business-record field key.
    pub values: Vec<(String, String)>,
}

/// The hash a [`BatchManifest`] carries: SHA-256 over each row's id, phone and field values,
/// length-prefixed so that no two different row lists hash alike.
pub fn rows_hash<'a>(rows: impl IntoIterator<Item = &'a CustomerRow>) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let mut put = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    for row in rows {
        put(&row.row_id.to_le_bytes());
        put(row.phone.as_bytes());
        for (key, value) in &row.fields {
            put(key.as_bytes());
            put(value.as_bytes());
        }
    }
    hasher.finalize().into()
}
