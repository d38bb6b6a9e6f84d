//! Message types carried by the link, in both directions.
//!
//! Every enum here is `#[non_exhaustive]`: a newer peer may add variants, and an older one
//! must answer an unknown variant with a clear error, not a crash. Postcard encodes enum
//! variants by index, so variants are only ever appended, never reordered or removed; the
//! golden byte vectors in the tests pin that.

use serde::{Deserialize, Serialize};
pub use crate::leases::{LeaseGrant, LeaseRecall, LeaseRequest, LeaseReturn};
pub use crate::quality::{CallQualityReport, LegQualityFigures};

/// ALPN of the sync link at this build's [`PROTOCOL_VERSION`]. Both ends offer every
/// version they speak, newest first ([`crate::sync_alpns`]); TLS picks the newest both share, and
/// the hello then speaks that version ([`crate::alpn_version`]). A peer sharing none fails the TLS
/// handshake with `no_application_protocol`, and both sides log which versions were on offer.
pub const SYNC_ALPN: &[u8] = b"outpost-sync/4";

/// ALPN of the enrollment exchange (no client certificate yet; proven by the one-time code).
/// Version 2: the proofs are keyed by a key derived from the code (`enroll::CodeKey`), which
/// is all the hub keeps; a box of version 1 fails the handshake instead of a proof.
pub const ENROLL_ALPN: &[u8] = b"outpost-enroll/2";

/// Version of the messages in this module: bumped by the first release that appends a variant
/// to [`Frame`], [`UpEvent`] or [`DownEvent`] (each variant names its version in `since()`).
///
/// - 2: [`CallAttempt::kind`] (postcard is not self-describing, so a new field changes the
///   encoding of every attempt); [`DownEvent::PhoneList`] appended. Frozen in [`crate::v2`].
/// - 3: rolling upgrades: a hub serves sites of 2 and 3, a site talks to a hub of 2 or 3
///   ([`MIN_PROTOCOL_VERSION`]); [`DownEvent::SiteProfile`] and the other variants whose
///   `since()` is 3.
/// - 4: [`UpEvent::CallQuality`], a call's audio quality per leg; a site holds it back from
///   a hub of 2 or 3 until the hub is upgraded.
pub const PROTOCOL_VERSION: u32 = 4;

/// The oldest protocol version this build still speaks: a hub of this build serves sites
/// from it up, holding back what they cannot read; a site of this build talks to a hub of it.
pub const MIN_PROTOCOL_VERSION: u32 = 2;

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
    /// The site's live figures as of now (site to hub). Not an outbox entry: only the
    /// latest value matters, so a lost one is simply replaced by the next.
    LiveFigures(LiveFigures),
    /// HQ wants this recording (by SHA-256) before its turn in the upload queue (hub to
    /// site); the site starts it on its own stream at once.
    WantRecording { sha256: [u8; 32] },
    /// What HQ's monitoring wall shows of the site as of now (site to hub): every agent
    /// with its state, the calls and lines, today's figures and the alarms. Latest-value
    /// data like [`Frame::LiveFigures`]: sent whenever it changes, a lost one is replaced.
    SiteLive(SiteLive),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientHello {
    pub protocol_version: u32,
    pub site_id: SiteId,
    /// The appliance's store epoch: a fresh store starts a new epoch, so HQ can tell a reused
    /// sequence number from a replay. A store restored from a backup keeps its epoch and
    /// finds its place from the server hello (`sync_link::SiteStore::hub_position`).
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
    /// An agent edited a customer's data (the editable fields of a row).
    CustomerEdit(CustomerEdit),
    /// A callback was scheduled, done or cancelled.
    Callback(Callback),
    /// An agent's state changed (logged in, ready, talking, after-call work, break...).
    AgentState(AgentStateChange),
    /// What the site actually did about a control change from HQ.
    ControlApplied(ControlApplied),
    /// One dial attempt finished, with what HQ's reports need besides the attempt itself
    /// (extension, team, ring / queue / IVR seconds). A site of this version sends it in
    /// place of [`UpEvent::CallAttempt`]; HQ stores the attempt the same way.
    CallAttemptDetail(CallAttemptDetail),
    /// The site holds few numbers of a shared batch's pool and asks HQ for another lease.
    LeaseRequest(LeaseRequest),
    /// What the site did with a lease (or, recalled, with a batch's rows): the numbers it
    /// dialed and those it gives back; it dials none of the latter again.
    LeaseReturn(LeaseReturn),
    /// A call's audio quality as the box measured it (loss, jitter, MOS per leg), sent
    /// beside its attempt (protocol 4).
    CallQuality(CallQualityReport),
}

impl UpEvent {
    /// The attempt of a [`UpEvent::CallAttempt`] or a [`UpEvent::CallAttemptDetail`].
    pub fn call_attempt(&self) -> Option<&CallAttempt> {
        match self {
            UpEvent::CallAttempt(attempt) => Some(attempt),
            UpEvent::CallAttemptDetail(detail) => Some(&detail.attempt),
            _ => None,
        }
    }
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
    /// Pause, run or end a whole sub-project, with a per-project version.
    ProjectControl(ProjectControl),
    /// HQ's one-click start/stop over a scope (the whole site, a project or a batch).
    OneClick(OneClickControl),
    /// Add a number to, or remove it from, the black list, versioned per number.
    BlackList(BlackListChange),
    /// Post, edit or withdraw a notice for the site's staff.
    Announcement(Announcement),
    /// The attribution rules of a sub-project (which agent a row belongs to).
    AttributionRules(AttributionRules),
    /// A voice file (hold music, prompt). Only its hash travels in the log; the content
    /// follows on its own stream, like a recording.
    VoiceFile(VoiceFile),
    /// Link settings HQ sets for the site, such as the recording upload cap.
    LinkSettings(LinkSettings),
    /// The project parameters [`ProjectParams`] has no room for: popup timing, project
    /// status and calling windows. Sent after every [`DownEvent::Project`] of the same
    /// version; `None` / empty means HQ left it to the site.
    ProjectSettings(ProjectSettings),
    /// Put a number (or dial token) on HQ's black or white list, or take it off both,
    /// versioned per number across both lists: moving a number from the black list to the
    /// white one is one change, so it is un-blacklisted by the same entry. Supersedes
    /// [`DownEvent::BlackList`], which a hub of this version no longer sends.
    PhoneList(PhoneListChange),
    /// A sub-project's report definitions (数据报表管理), the whole list under a per-project
    /// version, so the site computes HQ's columns (项目任务报表) from its own store.
    ReportDefinitions { project_id: u64, version: u64, defs: Vec<ReportDefinition> },
    /// HQ's name of the site (protocol 3), for the box's status page and front panel,
    /// versioned: a site keeps the newest.
    SiteProfile(SiteProfile),
    /// How many days the site keeps its recordings (HQ sets it per site). The site deletes
    /// a recording only after HQ has received it, whatever the retention.
    RecordingRetention(RecordingRetention),
    /// A block of a shared batch's pool leased to this site: rows it alone may dial.
    LeaseGrant(LeaseGrant),
    /// HQ takes back the undialed rest of a lease, or of every lease of a batch at the site
    /// (batch recovery, 批次数据回收, or HQ's forced reclaim): the site stops dialing those
    /// numbers and answers with a [`UpEvent::LeaseReturn`].
    LeaseRecall(LeaseRecall),
    /// Which of a sub-project's fields its lists show as columns (列表显示). Sent after
    /// every [`DownEvent::Project`] of the same version; a site that never had one shows
    /// every field (the rule before this event existed).
    ListColumns(ListColumns),
}

/// What HQ calls the site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteProfile {
    /// Rises with every change; a site keeps the newest it has seen.
    pub version: u64,
    pub name: String,
}

/// A site's recording retention, replaced as a whole under a per-site version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingRetention {
    /// Rises on every change.
    pub version: u64,
    /// Recordings older than this many days are deleted at the site once HQ holds them;
    /// `None` keeps them for ever.
    pub days: Option<u32>,
}

/// The fields HQ keeps out of a sub-project's list columns (列表显示 unticked); the popup
/// and the edit forms still show them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListColumns {
    pub project_id: u64,
    /// The [`ProjectDef::version`] these belong to; apply only if not older than the last applied.
    pub version: u64,
    /// Keys of customer fields left out of lists.
    pub unlisted_customer: Vec<String>,
    /// Keys of business-record fields left out of lists.
    pub unlisted_record: Vec<String>,
}

/// Which of HQ's lists a number is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PhoneListKind {
    /// Never dialed, by any path, at any site.
    Black,
    /// Never removed by HQ's data filter; dialed as usual.
    White,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhoneListChange {
    /// The number as HQ normalised it, or a carrier dial token (upper-case hex).
    pub phone: String,
    /// Per-number version, rising with every change of the number on either list: a site
    /// keeps the newest it has seen.
    pub version: u64,
    /// The list the number is on now; `None` when it was taken off.
    pub list: Option<PhoneListKind>,
    pub note: String,
}

/// Project parameters beyond [`ProjectParams`] (弹屏时机, 项目状态, 定时外呼).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProjectSettings {
    pub project_id: u64,
    /// The [`ProjectDef::version`] these settings belong to; apply only if not older than
    /// the last applied.
    pub version: u64,
    /// `Some(true)`: popup on ring (number shown as first three and last four digits until
    /// answered); `Some(false)`: popup on answer; `None`: the site decides.
    pub popup_on_ring: Option<bool>,
    /// `Some(true)`: HQ set the project running; `Some(false)`: paused; `None`: the site decides.
    pub running: Option<bool>,
    /// Daily windows in which numbers may be taken, China time; empty = no limit from HQ.
    pub calling_windows: Vec<CallingWindow>,
}

/// A daily calling window in minutes after midnight, China time; `start_minute <
/// end_minute`, both `0..=1440`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallingWindow {
    pub start_minute: u16,
    pub end_minute: u16,
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

/// A phone number with its middle four digits hidden (隐藏电话号码中间四位), the one masking
/// rule of HQ and the site alike, used wherever [`ProjectDef::hide_middle_digits`] (or a
/// popup on ring) hides a number.
///
/// The four characters before the last four become `****`; everything before them stays.
/// A mobile (11 digits) shows its first three and last four, the manual's 前三后四:
/// `138****8000`. A landline with its area code keeps the area code and the last four:
/// `0755****6789`, `010****5678`; the area code names only a city, and every number has the
/// same four digits hidden, never fewer. A number shorter than 11 characters is not a
/// Chinese mobile or landline with area code, and is hidden entirely, so that a short number
/// never shows most of itself.
pub fn mask_middle_digits(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() < 11 {
        return "*".repeat(chars.len());
    }
    let hide_from = chars.len() - 8;
    let mut masked: String = chars[..hide_from].iter().collect();
    masked.push_str("****");
    masked.extend(&chars[chars.len() - 4..]);
    masked
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
    /// A number (integer or decimal), checked at HQ on import.
    Number,
    /// A date, `YYYY-MM-DD`.
    Date,
    /// Multiple choice; the options in their display order. A value holds the chosen
    /// options separated by `;` (HQ also accepts `；` `,` `，` on import).
    MultipleChoice(Vec<String>),
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

/// A finished attempt and the facts reports group and count it by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallAttemptDetail {
    pub attempt: CallAttempt,
    /// The agent's team at the site; empty when none.
    pub team: String,
    /// The agent's extension; empty when no agent took part.
    pub extension: String,
    /// Seconds the customer's phone rang (to the answer, or to the end if unanswered).
    pub ring_seconds: u32,
    /// Seconds an answered customer waited for an agent.
    pub queue_seconds: u32,
    /// Seconds the customer spent in the IVR.
    pub ivr_seconds: u32,
}

/// One report definition as it travels down: the definition itself is the `reports`
/// crate's JSON, opaque here, so the wire format does not change with a new statistic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportDefinition {
    /// HQ's id of the definition.
    pub id: u64,
    pub name: String,
    /// `reports::ReportDef` as JSON.
    pub definition: String,
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
    /// Which path dialed it: HQ's data filter counts only project-task dials.
    pub kind: AttemptKind,
}

/// The path that placed a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AttemptKind {
    /// The task's predictive (or progressive / adaptive) dialer.
    Predictive,
    /// An agent's one-click call in a one-click task (the task's own dial).
    OneClick,
    /// A callback, scheduled or "call back now" from the popup.
    Callback,
    /// A number an agent dialed by hand.
    Manual,
    /// A call the customer placed to the site.
    Inbound,
    /// A call placed by an IVR campaign.
    Ivr,
}

impl AttemptKind {
    /// Whether the attempt is a project-task dial (what HQ's data filter counts, H11).
    pub fn is_task_dial(self) -> bool {
        matches!(self, AttemptKind::Predictive | AttemptKind::OneClick)
    }
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

/// Run state of a project, or the target of a one-click control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RunState {
    Running,
    Paused,
    /// Finished for good: nothing more is dialed.
    Ended,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectControl {
    pub project_id: u64,
    /// Per-project version: applied only if newer than the last one applied.
    pub version: u64,
    pub state: RunState,
}

/// What a one-click control covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ControlScope {
    /// Everything the site dials.
    Site,
    Project(u64),
    Batch(u64),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OneClickControl {
    pub scope: ControlScope,
    /// Per-scope version: applied only if newer than the last one applied to that scope.
    pub version: u64,
    /// `true` starts dialing in the scope, `false` stops it.
    pub start: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlackListChange {
    /// The number as HQ normalised it.
    pub phone: String,
    /// Per-number version: a site keeps the newest add or remove it has seen.
    pub version: u64,
    /// `true` adds the number (never dialed), `false` removes it.
    pub listed: bool,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Announcement {
    pub announcement_id: u64,
    /// Per-announcement version: an edit replaces the earlier text.
    pub version: u64,
    pub title: String,
    pub body: String,
    pub published_at: i64,
    pub expires_at: Option<i64>,
    /// Withdrawn notices disappear from the site's screens.
    pub withdrawn: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributionRules {
    pub project_id: u64,
    /// Per-project version of the whole rule list, which is replaced as one.
    pub version: u64,
    /// Rules in order: the first valid rule that matches wins.
    pub rules: Vec<AttributionRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributionRule {
    /// Conditions: a row's field must hold one of the values.
    pub conditions: Vec<AttributionCondition>,
    /// `true`: every condition must hold ("all match"); `false`: any one ("any match").
    pub all_match: bool,
    /// The agent (extension) the row goes to.
    pub agent: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributionCondition {
    pub field: String,
    /// Any of these values matches.
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum VoiceKind {
    HoldMusic,
    Prompt,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoiceFile {
    pub voice_id: u64,
    /// Per-file version: a replaced file gets a new hash and a higher version.
    pub version: u64,
    pub name: String,
    pub kind: VoiceKind,
    /// SHA-256 of the content, which travels on a blob stream ([`BlobKind::Voice`]).
    pub sha256: [u8; 32],
    pub size: u64,
    /// Deleted at HQ: the site stops using it.
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkSettings {
    /// Version of the settings, replaced as a whole.
    pub version: u64,
    /// Most bytes per second the site spends uploading recordings; `None` is no cap.
    pub recording_upload_bytes_per_sec: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerEdit {
    /// The site's own id of the edit; unique per site.
    pub edit_id: u64,
    pub batch_id: u64,
    pub row_id: u64,
    pub agent: String,
    pub edited_at: i64,
    /// New values by customer field key (only the fields that changed).
    pub changes: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CallbackState {
    Scheduled,
    Done,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Callback {
    /// The site's own id of the callback; a later entry with the same id replaces it.
    pub callback_id: u64,
    pub batch_id: u64,
    pub row_id: u64,
    /// The agent who should call back; `None` for anyone in the project.
    pub agent: Option<String>,
    pub due_at: i64,
    pub note: String,
    pub state: CallbackState,
    pub changed_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AgentState {
    LoggedOut,
    /// Logged in and ready for a call.
    Ready,
    Ringing,
    Talking,
    /// After-call work (filling the business record).
    WrapUp,
    /// On a break; the reason as the agent chose it.
    Break(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStateChange {
    pub agent: String,
    pub state: AgentState,
    pub at: i64,
}

/// Which control change a [`ControlApplied`] reports on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ControlTarget {
    Batch(u64),
    Project(u64),
    OneClick(ControlScope),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlApplied {
    pub target: ControlTarget,
    /// The version the site applied.
    pub version: u64,
    /// When the site applied it.
    pub applied_at: i64,
    /// Numbers of the target dialed since HQ made the change and before it arrived (for
    /// a pause made while the site was offline: what was dialed anyway).
    pub dialed_before_applied: u64,
    /// Calls in progress when it was applied; they finish, none start.
    pub calls_in_progress: u32,
    /// `false` if the site skipped it because it had already applied a newer version.
    pub applied: bool,
}

/// A small snapshot of what is happening at the site, for HQ's wallboard.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveFigures {
    /// When the site took the snapshot (unix milliseconds).
    pub taken_at_ms: i64,
    pub agents_logged_in: u32,
    pub agents_ready: u32,
    pub agents_talking: u32,
    pub agents_wrap_up: u32,
    pub agents_on_break: u32,
    pub calls_dialing: u32,
    pub calls_queued: u32,
    pub calls_today: u64,
    pub connected_today: u64,
    /// Per running batch: `(batch_id, rows left to dial)`.
    pub batches_remaining: Vec<(u64, u64)>,
}

/// The site as HQ's monitoring wall shows it (职场监控管理), taken at `taken_at_ms`.
/// Counts travel rather than rates, so HQ can add sites up and compute the rates itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SiteLive {
    /// When the site took the snapshot (unix milliseconds).
    pub taken_at_ms: i64,
    /// Every signed-in agent, in username order.
    pub agents: Vec<LiveAgent>,
    /// Calls dialing a customer who has not answered yet.
    pub calls_ringing: u32,
    /// Answered calls waiting for an agent.
    pub calls_queued: u32,
    /// How long the longest-waiting queued call has waited, in seconds.
    pub longest_queued_s: u32,
    /// Calls bridged to an agent.
    pub calls_talking: u32,
    /// Lines carrying a call, of the channels the site's trunks offer.
    pub lines_in_use: u32,
    pub lines_available: u32,
    /// Today (China time) so far: numbers dialed, calls connected, calls answered by the
    /// customer and, of those, abandoned before an agent took them.
    pub dials_today: u64,
    pub connected_today: u64,
    pub answered_today: u64,
    pub abandoned_today: u64,
    /// The same answered / abandoned counts over the last 30 days.
    pub answered_30_days: u64,
    pub abandoned_30_days: u64,
    /// The strictest abandon-rate cap of the running tasks, in percent (the default cap
    /// when none runs).
    pub abandon_cap_percent: f64,
    /// Outbox entries HQ has not acknowledged yet.
    pub outbox_backlog: u64,
    /// Running tasks and the numbers each has left to dial.
    pub tasks: Vec<LiveTask>,
    pub alarms: Vec<SiteAlarm>,
}

/// One agent on the wall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveAgent {
    pub username: String,
    pub extension: String,
    pub state: LiveAgentState,
    /// Since when the agent has been in `state` (unix milliseconds).
    pub since_ms: i64,
}

/// An agent's state as the wall shows it: the desk's own states, overlaid by the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum LiveAgentState {
    /// 可回接: ready for predictive calls.
    Available,
    /// 不可回接: signed in, one-click calls only.
    OneClickOnly,
    /// 小休.
    Break,
    /// 离开.
    Away,
    /// A call is being offered to the agent's phone.
    Ringing,
    Talking,
    /// The call ended and its business record is not saved yet.
    WrapUp,
}

/// A running task on the wall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveTask {
    pub batch_id: u64,
    pub name: String,
    /// Numbers not dialed yet.
    pub remaining: u64,
}

/// Something at the site needing attention. (The link being down is HQ's own alarm: a
/// site cannot report it.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SiteAlarm {
    /// The trunk does not answer its health check.
    TrunkDown { trunk: String },
    /// The trunk's registration at the carrier failed.
    TrunkUnregistered { trunk: String },
    /// Today's abandon rate is over the cap (both in percent).
    AbandonOverCap { rate_percent: f64, cap_percent: f64 },
    /// The data disk is nearly full.
    DiskLow { free_bytes: u64, total_bytes: u64 },
    /// The data disk is under the box's floor: new calls are not recorded (calls go on).
    RecordingStopped { free_bytes: u64, floor_bytes: u64 },
}

/// What a blob stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum BlobKind {
    /// A call recording, site to hub.
    Recording,
    /// A voice file, hub to site.
    Voice,
}

/// The framed messages of a blob stream (a QUIC bidirectional stream of its own, apart
/// from the sync stream). The sender opens it with [`BlobMessage::Offer`]; the receiver
/// answers [`BlobMessage::Resume`] with how many bytes it already holds; the sender then
/// writes the raw bytes from that offset to the end and finishes its half; the receiver
/// checks the SHA-256 of the whole and answers [`BlobMessage::Done`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum BlobMessage {
    Offer { kind: BlobKind, sha256: [u8; 32], size: u64 },
    /// Send from `offset`; equal to the size means the receiver already has it all.
    Resume { offset: u64 },
    /// The outcome: `accepted` once the hash checked out and the blob is stored.
    Done { accepted: bool, reason: String },
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

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn check(input: &str, expect: Expect) {
        expect.assert_eq(&mask_middle_digits(input));
    }

    #[test]
    fn masking_hides_the_four_digits_before_the_last_four() {
        // Mobiles: first three and last four (manual 1.2.1.6 and the popup on ring).
        check("13800138000", expect!["138****8000"]);
        check("19912345678", expect!["199****5678"]);
        // Landlines with their area code: the area code stays, four digits are hidden.
        check("075523456789", expect!["0755****6789"]);
        check("01062345678", expect!["010****5678"]);
        check("02187654321", expect!["021****4321"]);
        check("05712345678", expect!["057****5678"]);
        // Longer text (a number with its country code) keeps its head.
        check("+8613800138000", expect!["+86138****8000"]);
        // Shorter than a mobile or a landline with area code: hidden entirely.
        check("1380013800", expect!["**********"]);
        check("23456789", expect!["********"]);
        check("10086", expect!["*****"]);
        check("", expect![""]);
    }
}
