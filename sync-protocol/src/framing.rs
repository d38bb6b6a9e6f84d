//! Length-prefixed postcard frames: how [`Frame`]s and other wire messages become bytes.
//!
//! A frame on the wire is a `u32` little-endian length followed by that many bytes of
//! postcard. The length is capped at [`MAX_FRAME_LEN`] so that a hostile or confused peer
//! cannot make the other side buffer without bound.
//!
//! - [`encode_frame`] / [`encode_message`] turn a value into one framed byte vector.
//! - [`FrameDecoder`] accepts bytes as they arrive (any split) and yields whole values or a
//!   [`FrameError`]. It never panics on input; the proptests in this module feed it random
//!   bytes to hold it to that.
//!
//! After [`FrameError::Oversized`] the stream has lost its framing and the decoder stays
//! poisoned. After [`FrameError::UnknownVariant`] or [`FrameError::Malformed`] the bad frame
//! has been consumed (its length was sound), so a caller could go on; the link closes
//! instead, because skipping an entry would leave a hole in a sequence.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::messages::{Frame, MAX_FRAME_LEN};

/// Bytes in the length prefix.
pub const LEN_PREFIX: usize = 4;

/// Why a value could not be framed.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The encoded value is larger than [`MAX_FRAME_LEN`]; the sender must split it
    /// (batch chunks are sized well below the cap for this reason).
    #[error("frame of {len} bytes exceeds the {max}-byte limit; send smaller chunks")]
    Oversized { len: usize, max: usize },
    /// postcard could not serialize the value (a bug in a `Serialize` impl, not input).
    #[error("could not encode frame: {0}")]
    Postcard(#[from] postcard::Error),
}

/// Why received bytes are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame: {have} of {need} bytes received")]
    Truncated { have: usize, need: usize },
    /// The length prefix announces more than [`MAX_FRAME_LEN`] bytes: the peer is broken or
    /// hostile, and the stream cannot be resynchronised.
    #[error("peer announced a {len}-byte frame, over the {max}-byte limit")]
    Oversized { len: usize, max: usize },
    /// The frame names a message kind this build does not know: the peer runs newer
    /// software. Upgrade this side.
    #[error("peer sent a message kind this version does not know ({detail}); upgrade this side")]
    UnknownVariant { detail: String },
    /// The frame's bytes do not decode as the expected message.
    #[error("malformed frame: {detail}")]
    Malformed { detail: String },
}

/// Encode a [`Frame`] with its length prefix.
pub fn encode_frame(frame: &Frame) -> Result<Vec<u8>, EncodeError> {
    encode_message(frame)
}

/// Encode any wire message (for instance an enrollment message) with its length prefix.
pub fn encode_message<T: Serialize>(message: &T) -> Result<Vec<u8>, EncodeError> {
    // Reserve the prefix first and patch it in afterwards, so the body is written once.
    let mut out = vec![0u8; LEN_PREFIX];
    let mut out = postcard::to_extend(message, std::mem::take(&mut out))?;
    let body_len = out.len() - LEN_PREFIX;
    if body_len > MAX_FRAME_LEN {
        return Err(EncodeError::Oversized { len: body_len, max: MAX_FRAME_LEN });
    }
    // MAX_FRAME_LEN fits in u32, checked just above.
    let prefix = (body_len as u32).to_le_bytes();
    out[..LEN_PREFIX].copy_from_slice(&prefix);
    Ok(out)
}

/// Decode one frame body (without its prefix) as `T`.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    match postcard::take_from_bytes::<T>(body) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(FrameError::Malformed {
            detail: format!("{} unexpected trailing bytes", rest.len()),
        }),
        // serde's derived enum visitor reports an out-of-range variant index as a custom
        // error, and postcard maps indices above u32 to `DeserializeBadEnum`.
        Err(postcard::Error::SerdeDeCustom) | Err(postcard::Error::DeserializeBadEnum) => {
            Err(FrameError::UnknownVariant { detail: "unknown enum variant".to_owned() })
        }
        Err(other) => Err(FrameError::Malformed { detail: other.to_string() }),
    }
}

/// Incremental decoder: push bytes as they arrive, pull whole messages out.
#[derive(Debug)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
    /// Set after an oversized prefix: nothing after it can be trusted.
    poisoned: Option<FrameError>,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    pub fn new() -> Self {
        FrameDecoder { buffer: Vec::new(), poisoned: None }
    }

    /// Append received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.poisoned.is_none() {
            self.buffer.extend_from_slice(bytes);
        }
    }

    /// The next whole [`Frame`], `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        self.next_message::<Frame>()
    }

    /// The next whole message of type `T`, `Ok(None)` if more bytes are needed.
    pub fn next_message<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        if let Some(error) = &self.poisoned {
            return Err(error.clone());
        }
        let Some(prefix) = self.buffer.get(..LEN_PREFIX) else {
            return Ok(None);
        };
        let mut prefix_bytes = [0u8; LEN_PREFIX];
        prefix_bytes.copy_from_slice(prefix);
        let body_len = u32::from_le_bytes(prefix_bytes) as usize;
        if body_len > MAX_FRAME_LEN {
            let error = FrameError::Oversized { len: body_len, max: MAX_FRAME_LEN };
            self.poisoned = Some(error.clone());
            self.buffer = Vec::new();
            return Err(error);
        }
        let frame_end = LEN_PREFIX + body_len;
        if self.buffer.len() < frame_end {
            return Ok(None);
        }
        let result = decode_body::<T>(&self.buffer[LEN_PREFIX..frame_end]);
        self.buffer.drain(..frame_end);
        result.map(Some)
    }

    /// Bytes held that do not yet make a whole frame.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Take the bytes held that are not part of a decoded frame. A stream that switches
    /// from frames to raw bytes (a blob stream after its offer) uses this so that no byte
    /// the decoder already read is lost.
    pub fn take_buffered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buffer)
    }

    /// The stream ended: an error if it ended inside a frame.
    pub fn finish(&self) -> Result<(), FrameError> {
        if let Some(error) = &self.poisoned {
            return Err(error.clone());
        }
        if self.buffer.is_empty() {
            return Ok(());
        }
        let need = match self.buffer.get(..LEN_PREFIX) {
            Some(prefix) => {
                let mut prefix_bytes = [0u8; LEN_PREFIX];
                prefix_bytes.copy_from_slice(prefix);
                LEN_PREFIX + u32::from_le_bytes(prefix_bytes) as usize
            }
            None => LEN_PREFIX,
        };
        Err(FrameError::Truncated { have: self.buffer.len(), need })
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};
    use proptest::prelude::*;

    use super::*;
    use crate::messages::*;

    fn check(frame: Frame, expected: Expect) {
        let bytes = encode_frame(&frame).unwrap();
        expected.assert_eq(&hex::encode(&bytes));
        let mut decoder = FrameDecoder::new();
        decoder.push(&bytes);
        assert_eq!(decoder.next_frame().unwrap(), Some(frame));
        decoder.finish().unwrap();
    }

    fn sample_project() -> ProjectDef {
        ProjectDef {
            project_id: 7,
            category: "保险".into(),
            name: "p".into(),
            script: "hi".into(),
            hide_middle_digits: true,
            customer_fields: vec![FieldDef {
                key: "name".into(),
                title: "姓名".into(),
                kind: FieldKind::Text,
                required: true,
                read_only: false,
                hidden: false,
            }],
            record_fields: vec![FieldDef {
                key: "intent".into(),
                title: "意向".into(),
                kind: FieldKind::SingleChoice(vec!["yes".into(), "no".into()]),
                required: false,
                read_only: false,
                hidden: false,
            }],
            params: ProjectParams {
                dial_mode: Some(DialMode::Predictive),
                ring_seconds: Some(30),
                ratio: None,
                max_concurrency: Some(4),
            },
            version: 3,
        }
    }

    // Golden vectors: postcard encodes enum variants by index and integers as varints, so
    // a reordered variant or a changed field type shows up here before it reaches a site.
    #[test]
    fn golden_control_frames() {
        check(
            Frame::ClientHello(ClientHello {
                protocol_version: 1,
                site_id: 42,
                epoch: 3,
                down_applied: 300,
                software: "a".into(),
            }),
            expect!["0800000000012a03ac020161"],
        );
        check(
            Frame::ServerHello(ServerHello {
                protocol_version: 1,
                up_committed: Some(5),
                software: "h".into(),
            }),
            expect!["06000000010101050168"],
        );
        check(Frame::Refused { reason: "no".into() }, expect!["0400000002026e6f"]);
        check(Frame::UpAck { epoch: 2, seq: 129 }, expect!["0400000004028101"]);
        check(Frame::DownAck { seq: 1 }, expect!["020000000601"]);
        check(Frame::Ping, expect!["0100000007"]);
    }

    #[test]
    fn golden_up_frames() {
        check(
            Frame::Up(UpEntry {
                epoch: 1,
                seq: 2,
                event: UpEvent::CallAttempt(CallAttempt {
                    attempt_id: 9,
                    batch_id: 8,
                    row_id: 7,
                    started_at: 100,
                    answered_at: Some(105),
                    ended_at: 160,
                    outcome: Outcome::Connected,
                    hangup_side: Some(HangupSide::Agent),
                    agent: Some("1001".into()),
                    talk_seconds: 55,
                    recording_sha256: None,
                    kind: AttemptKind::Predictive,
                }),
            }),
            expect!["1a00000003010200090807c80101d201c002000101010431303031370000"],
        );
        check(
            Frame::Up(UpEntry {
                epoch: 1,
                seq: 3,
                event: UpEvent::BusinessRecord(BusinessRecord {
                    attempt_id: 9,
                    batch_id: 8,
                    row_id: 7,
                    agent: "1001".into(),
                    saved_at: -1,
                    values: vec![("intent".into(), "yes".into())],
                }),
            }),
            expect!["19000000030103010908070431303031010106696e74656e7403796573"],
        );
    }

    #[test]
    fn golden_down_frames() {
        check(Frame::Down(DownEntry { seq: 1, event: DownEvent::Project(sample_project()) }), expect!["450000000501000706e4bf9de999a901700268690101046e616d6506e5a793e5908d000100000106696e74656e7406e6848fe59091010203796573026e6f0000000100011e00010403"]);
        check(
            Frame::Down(DownEntry {
                seq: 2,
                event: DownEvent::BatchChunk(BatchChunk {
                    batch_id: 5,
                    chunk_idx: 0,
                    rows: vec![CustomerRow {
                        row_id: 1,
                        phone: "13800138000".into(),
                        fields: vec![("name".into(), "张三".into())],
                    }],
                }),
            }),
            expect!["20000000050201050001010b313338303031333830303001046e616d6506e5bca0e4b889"],
        );
        check(
            Frame::Down(DownEntry {
                seq: 3,
                event: DownEvent::BatchManifest(BatchManifest {
                    batch_id: 5,
                    project_id: 7,
                    name: "b".into(),
                    priority: 50,
                    imported_at: 1_700_000_000,
                    n_rows: 1,
                    n_chunks: 1,
                    rows_hash: [0xab; 32],
                }),
            }),
            expect!["2f000000050302050701623280c49fd50c0101abababababababababababababababababababababababababababababababab"],
        );
        check(
            Frame::Down(DownEntry {
                seq: 4,
                event: DownEvent::BatchControl(BatchControl { batch_id: 5, version: 2, priority: 0 }),
            }),
            expect!["06000000050403050200"],
        );
    }

    fn down(seq: u64, event: DownEvent) -> Frame {
        Frame::Down(DownEntry { seq, event })
    }

    fn up(seq: u64, event: UpEvent) -> Frame {
        Frame::Up(UpEntry { epoch: 1, seq, event })
    }

    // Appended in the second round of the link; the indices continue the lists above.
    #[test]
    fn golden_control_down_frames() {
        check(
            down(5, DownEvent::ProjectControl(ProjectControl { project_id: 7, version: 3, state: RunState::Paused })),
            expect!["06000000050504070301"],
        );
        check(
            down(6, DownEvent::OneClick(OneClickControl { scope: ControlScope::Site, version: 1, start: false })),
            expect!["06000000050605000100"],
        );
        check(
            down(7, DownEvent::OneClick(OneClickControl { scope: ControlScope::Batch(5), version: 2, start: true })),
            expect!["0700000005070502050201"],
        );
        check(
            down(
                8,
                DownEvent::BlackList(BlackListChange {
                    phone: "13800138000".into(),
                    version: 2,
                    listed: true,
                    note: "投诉".into(),
                }),
            ),
            expect!["180000000508060b3133383030313338303030020106e68a95e8af89"],
        );
        check(
            down(
                9,
                DownEvent::LinkSettings(LinkSettings { version: 4, recording_upload_bytes_per_sec: Some(131_072) }),
            ),
            expect!["0800000005090a0401808008"],
        );
    }

    #[test]
    fn golden_content_down_frames() {
        check(
            down(
                10,
                DownEvent::Announcement(Announcement {
                    announcement_id: 3,
                    version: 1,
                    title: "通知".into(),
                    body: "b".into(),
                    published_at: 1_700_000_000,
                    expires_at: None,
                    withdrawn: false,
                }),
            ),
            expect!["15000000050a07030106e9809ae79fa5016280c49fd50c0000"],
        );
        check(
            down(
                11,
                DownEvent::AttributionRules(AttributionRules {
                    project_id: 7,
                    version: 2,
                    rules: vec![AttributionRule {
                        conditions: vec![AttributionCondition { field: "city".into(), values: vec!["a".into(), "b".into()] }],
                        all_match: false,
                        agent: "1001".into(),
                    }],
                }),
            ),
            expect!["17000000050b080702010104636974790201610162000431303031"],
        );
        check(
            down(
                12,
                DownEvent::VoiceFile(VoiceFile {
                    voice_id: 2,
                    version: 1,
                    name: "hold".into(),
                    kind: VoiceKind::HoldMusic,
                    sha256: [0x11; 32],
                    size: 4096,
                    deleted: false,
                }),
            ),
            expect!["2e000000050c09020104686f6c64001111111111111111111111111111111111111111111111111111111111111111802000"],
        );
    }

    #[test]
    fn golden_new_up_frames() {
        check(
            up(
                4,
                UpEvent::CustomerEdit(CustomerEdit {
                    edit_id: 1,
                    batch_id: 8,
                    row_id: 7,
                    agent: "1001".into(),
                    edited_at: 100,
                    changes: vec![("name".into(), "李四".into())],
                }),
            ),
            expect!["1b000000030104020108070431303031c80101046e616d6506e69d8ee59b9b"],
        );
        check(
            up(
                5,
                UpEvent::Callback(Callback {
                    callback_id: 2,
                    batch_id: 8,
                    row_id: 7,
                    agent: Some("1001".into()),
                    due_at: 200,
                    note: "n".into(),
                    state: CallbackState::Scheduled,
                    changed_at: 100,
                }),
            ),
            expect!["14000000030105030208070104313030319003016e00c801"],
        );
        check(
            up(6, UpEvent::AgentState(AgentStateChange { agent: "1001".into(), state: AgentState::Break("饭".into()), at: 100 })),
            expect!["100000000301060404313030310503e9a5adc801"],
        );
        check(
            up(
                7,
                UpEvent::ControlApplied(ControlApplied {
                    target: ControlTarget::Batch(5),
                    version: 2,
                    applied_at: 100,
                    dialed_before_applied: 37,
                    calls_in_progress: 3,
                    applied: true,
                }),
            ),
            expect!["0c00000003010705000502c801250301"],
        );
        check(
            up(
                8,
                UpEvent::ControlApplied(ControlApplied {
                    target: ControlTarget::OneClick(ControlScope::Project(7)),
                    version: 1,
                    applied_at: 100,
                    dialed_before_applied: 0,
                    calls_in_progress: 0,
                    applied: false,
                }),
            ),
            expect!["0d0000000301080502010701c801000000"],
        );
    }

    // Protocol version 2: an attempt carries its kind (a field, so not additive: the
    // version and ALPN went to 2), and the per-number black / white list change.
    #[test]
    fn golden_version_2_frames() {
        check(
            up(
                9,
                UpEvent::CallAttempt(CallAttempt {
                    attempt_id: 10,
                    batch_id: 8,
                    row_id: 7,
                    started_at: 100,
                    answered_at: None,
                    ended_at: 130,
                    outcome: Outcome::NoAnswer,
                    hangup_side: None,
                    agent: Some("1001".into()),
                    talk_seconds: 0,
                    recording_sha256: None,
                    kind: AttemptKind::Callback,
                }),
            ),
            expect!["17000000030109000a0807c8010084020200010431303031000002"],
        );
        check(
            down(
                13,
                DownEvent::PhoneList(PhoneListChange {
                    phone: "A207A92E2B93892F5F4C".into(),
                    version: 3,
                    list: Some(PhoneListKind::White),
                    note: "".into(),
                }),
            ),
            expect!["1c000000050d0c14413230374139324532423933383932463546344303010100"],
        );
        check(
            down(14, DownEvent::PhoneList(PhoneListChange { phone: "13800138000".into(), version: 4, list: None, note: "".into() })),
            expect!["12000000050e0c0b3133383030313338303030040000"],
        );
    }

    #[test]
    fn golden_live_figures_and_recording_request() {
        check(
            Frame::LiveFigures(LiveFigures {
                taken_at_ms: 1_700_000_000_000,
                agents_logged_in: 10,
                agents_ready: 4,
                agents_talking: 5,
                agents_wrap_up: 1,
                agents_on_break: 0,
                calls_dialing: 12,
                calls_queued: 1,
                calls_today: 300,
                connected_today: 90,
                batches_remaining: vec![(5, 1000)],
            }),
            expect!["150000000880a0abfef9620a040501000c01ac025a0105e807"],
        );
        check(Frame::WantRecording { sha256: [0xcd; 32] }, expect!["2100000009cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"]);
    }

    /// The wall's snapshot is appended as frame variant 10; what an agent's state and an
    /// alarm encode to is pinned with it.
    #[test]
    fn golden_site_live() {
        check(
            Frame::SiteLive(SiteLive {
                taken_at_ms: 1_700_000_000_000,
                agents: vec![LiveAgent {
                    username: "a1".into(),
                    extension: "801".into(),
                    state: LiveAgentState::Talking,
                    since_ms: 1_699_999_990_000,
                }],
                calls_ringing: 2,
                calls_queued: 1,
                longest_queued_s: 4,
                calls_talking: 1,
                lines_in_use: 4,
                lines_available: 30,
                dials_today: 300,
                connected_today: 90,
                answered_today: 95,
                abandoned_today: 5,
                answered_30_days: 2000,
                abandoned_30_days: 40,
                abandon_cap_percent: 3.0,
                outbox_backlog: 7,
                tasks: vec![LiveTask { batch_id: 5, name: "T".into(), remaining: 1000 }],
                alarms: vec![
                    SiteAlarm::TrunkDown { trunk: "t1".into() },
                    SiteAlarm::DiskLow { free_bytes: 1, total_bytes: 2 },
                ],
            }),
            expect!["3b0000000a80a0abfef962010261310338303105e083aafef96202010401041eac025a5f05d00f2800000000000008400701050154e8070200027431030102"],
        );
    }

    // Appended after version 2's frames: a site's recording retention and the alarm of a box
    // that stopped recording for want of disk.
    #[test]
    fn golden_recording_retention_and_alarm() {
        check(
            down(15, DownEvent::RecordingRetention(RecordingRetention { version: 2, days: Some(90) })),
            expect!["06000000050f0f02015a"],
        );
        check(down(16, DownEvent::RecordingRetention(RecordingRetention { version: 3, days: None })), expect!["0500000005100f0300"]);
        let live = SiteLive {
            taken_at_ms: 1,
            agents: Vec::new(),
            calls_ringing: 0,
            calls_queued: 0,
            longest_queued_s: 0,
            calls_talking: 0,
            lines_in_use: 0,
            lines_available: 0,
            dials_today: 0,
            connected_today: 0,
            answered_today: 0,
            abandoned_today: 0,
            answered_30_days: 0,
            abandoned_30_days: 0,
            abandon_cap_percent: 3.0,
            outbox_backlog: 0,
            tasks: Vec::new(),
            alarms: vec![SiteAlarm::RecordingStopped { free_bytes: 1000, floor_bytes: 2000 }],
        };
        check(Frame::SiteLive(live), expect!["1f0000000a0200000000000000000000000000000000000000084000000104e807d00f"]);
    }

    // Shared batches' leases (appended variants: older frames keep their bytes).
    #[test]
    fn golden_lease_frames() {
        let row = CustomerRow { row_id: 9, phone: "13800138000".into(), fields: vec![] };
        check(
            down(
                30,
                DownEvent::LeaseGrant(LeaseGrant {
                    batch_id: 5,
                    lease_id: 2,
                    request_id: 1,
                    granted_at: 100,
                    expires_at: 200,
                    refill_below: 3,
                    rows: vec![row],
                }),
            ),
            expect!["1a000000051e10050201c80190030301090b313338303031333830303000"],
        );
        check(down(31, DownEvent::LeaseRecall(LeaseRecall { recall_id: 4, batch_id: 5, lease_id: Some(2) })), expect!["07000000051f1104050102"]);
        check(
            up(9, UpEvent::LeaseRequest(LeaseRequest { batch_id: 5, request_id: 1, held: 3, dials_last_hour: 40, asked_at: 100 })),
            expect!["0a0000000301090705010328c801"],
        );
        check(
            up(
                10,
                UpEvent::LeaseReturn(LeaseReturn {
                    batch_id: 5,
                    lease_id: 2,
                    recall_id: None,
                    dialed: vec![9],
                    returned: vec![10, 11],
                    returned_at: 300,
                }),
            ),
            expect!["0e00000003010a080502000109020a0bd804"],
        );
        check(
            up(
                11,
                UpEvent::CallQuality(CallQualityReport {
                    attempt_id: 7,
                    customer: Some(LegQualityFigures { loss_percent: 5.0, jitter_ms: 2.5, mos: 3.5 }),
                    agent: None,
                }),
            ),
            expect!["1300000003010b0907010000a040000020400000604000"],
        );
    }

    #[test]
    fn golden_blob_messages() {
        let check_blob = |message: BlobMessage, expected: Expect| {
            let bytes = encode_message(&message).unwrap();
            expected.assert_eq(&hex::encode(&bytes));
            let mut decoder = FrameDecoder::new();
            decoder.push(&bytes);
            assert_eq!(decoder.next_message::<BlobMessage>().unwrap(), Some(message));
        };
        check_blob(
            BlobMessage::Offer { kind: BlobKind::Recording, sha256: [0x01; 32], size: 70_000 },
            expect!["2500000000000101010101010101010101010101010101010101010101010101010101010101f0a204"],
        );
        check_blob(BlobMessage::Resume { offset: 65_536 }, expect!["0400000001808004"]);
        check_blob(BlobMessage::Done { accepted: false, reason: "hash".into() }, expect!["0700000002000468617368"]);
    }

    #[test]
    fn split_anywhere_decodes_the_same() {
        let frames = vec![
            Frame::Ping,
            Frame::DownAck { seq: 77 },
            Frame::Refused { reason: "site 3 is disabled".into() },
        ];
        let mut bytes = Vec::new();
        for frame in &frames {
            bytes.extend(encode_frame(frame).unwrap());
        }
        for split in 0..=bytes.len() {
            let mut decoder = FrameDecoder::new();
            let mut got = Vec::new();
            for piece in [&bytes[..split], &bytes[split..]] {
                decoder.push(piece);
                while let Some(frame) = decoder.next_frame().unwrap() {
                    got.push(frame);
                }
            }
            assert_eq!(got, frames, "split at {split}");
            decoder.finish().unwrap();
        }
    }

    #[test]
    fn truncated_stream_is_reported() {
        let bytes = encode_frame(&Frame::DownAck { seq: 1 }).unwrap();
        let mut decoder = FrameDecoder::new();
        decoder.push(&bytes[..bytes.len() - 1]);
        assert_eq!(decoder.next_frame(), Ok(None));
        assert_eq!(
            decoder.finish(),
            Err(FrameError::Truncated { have: bytes.len() - 1, need: bytes.len() })
        );
        let mut short_prefix = FrameDecoder::new();
        short_prefix.push(&[1, 0]);
        assert_eq!(short_prefix.finish(), Err(FrameError::Truncated { have: 2, need: 4 }));
    }

    #[test]
    fn oversized_prefix_poisons_the_decoder() {
        let mut decoder = FrameDecoder::new();
        let len = (MAX_FRAME_LEN as u32 + 1).to_le_bytes();
        decoder.push(&len);
        let expected = FrameError::Oversized { len: MAX_FRAME_LEN + 1, max: MAX_FRAME_LEN };
        assert_eq!(decoder.next_frame(), Err(expected.clone()));
        decoder.push(&encode_frame(&Frame::Ping).unwrap());
        assert_eq!(decoder.next_frame(), Err(expected));
    }

    #[test]
    fn oversized_value_is_not_encoded() {
        let frame = Frame::Refused { reason: "x".repeat(MAX_FRAME_LEN + 1) };
        assert!(matches!(encode_frame(&frame), Err(EncodeError::Oversized { .. })));
    }

    #[test]
    fn unknown_variant_is_reported_and_consumed() {
        // Variant index 200 does not exist in this version's `Frame`.
        let mut decoder = FrameDecoder::new();
        decoder.push(&[2, 0, 0, 0, 0xc8, 0x01]);
        decoder.push(&encode_frame(&Frame::Ping).unwrap());
        assert!(matches!(decoder.next_frame(), Err(FrameError::UnknownVariant { .. })));
        assert_eq!(decoder.next_frame(), Ok(Some(Frame::Ping)));
    }

    #[test]
    fn malformed_body_is_reported() {
        // `DownAck` with a varint that never terminates, then trailing garbage after a Ping.
        let mut decoder = FrameDecoder::new();
        decoder.push(&[3, 0, 0, 0, 6, 0xff, 0xff]);
        assert!(matches!(decoder.next_frame(), Err(FrameError::Malformed { .. })));
        decoder.push(&[2, 0, 0, 0, 7, 0]);
        assert!(matches!(decoder.next_frame(), Err(FrameError::Malformed { .. })));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16)) {
            let mut decoder = FrameDecoder::new();
            for chunk in &chunks {
                decoder.push(chunk);
                // Drain until the decoder needs more bytes or reports an error it keeps
                // reporting (a poisoned stream); either way, no panic.
                for _ in 0..64 {
                    match decoder.next_frame() {
                        Ok(Some(_)) => continue,
                        Ok(None) => break,
                        Err(FrameError::Oversized { .. }) => break,
                        Err(_) => continue,
                    }
                }
            }
            let _ = decoder.finish();
        }

        #[test]
        fn random_bodies_behind_a_valid_prefix_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut decoder = FrameDecoder::new();
            decoder.push(&(body.len() as u32).to_le_bytes());
            decoder.push(&body);
            let outcome = decoder.next_frame();
            prop_assert!(!matches!(outcome, Ok(None)), "a whole frame must decode or fail");
            prop_assert_eq!(decoder.buffered(), 0);
        }
    }
}
