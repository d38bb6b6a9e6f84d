//! Golden vectors of protocol version 2: one known value of every `Frame`, `UpEvent` and
//! `DownEvent` variant of the frozen `v2` types, encoded and compared with the checked-in
//! bytes (`golden/v2_frames.txt`), and read back by this build's types byte for byte: what a
//! site or hub of the previous release sends, this one reads, and the other way round.

use expect_test::expect_file;
use sync_protocol::framing::{encode_frame, encode_message, FrameDecoder};
use sync_protocol::v2;
use sync_protocol::*;

fn project() -> ProjectDef {
    ProjectDef {
        project_id: 7,
        category: "保险".into(),
        name: "p".into(),
        script: "hi".into(),
        hide_middle_digits: true,
        customer_fields: vec![FieldDef {
            key: "name".into(),
            title: "姓名".into(),
            kind: FieldKind::SingleChoice(vec!["a".into()]),
            required: true,
            read_only: false,
            hidden: false,
        }],
        record_fields: vec![],
        params: ProjectParams { dial_mode: Some(DialMode::OneClick), ring_seconds: Some(30), ratio: Some(2), max_concurrency: None },
        version: 3,
    }
}

fn attempt() -> CallAttempt {
    CallAttempt {
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
        recording_sha256: Some("ab".into()),
        kind: AttemptKind::OneClick,
    }
}

/// Every up event of version 2.
fn up_events() -> Vec<(&'static str, v2::UpEvent)> {
    vec![
        ("up.call_attempt", v2::UpEvent::CallAttempt(attempt())),
        (
            "up.business_record",
            v2::UpEvent::BusinessRecord(BusinessRecord {
                attempt_id: 9,
                batch_id: 8,
                row_id: 7,
                agent: "1001".into(),
                saved_at: 200,
                values: vec![("intent".into(), "yes".into())],
            }),
        ),
        (
            "up.customer_edit",
            v2::UpEvent::CustomerEdit(CustomerEdit {
                edit_id: 1,
                batch_id: 8,
                row_id: 7,
                agent: "1001".into(),
                edited_at: 100,
                changes: vec![("name".into(), "李四".into())],
            }),
        ),
        (
            "up.callback",
            v2::UpEvent::Callback(Callback {
                callback_id: 2,
                batch_id: 8,
                row_id: 7,
                agent: None,
                due_at: 200,
                note: "n".into(),
                state: CallbackState::Done,
                changed_at: 100,
            }),
        ),
        ("up.agent_state", v2::UpEvent::AgentState(AgentStateChange { agent: "1001".into(), state: AgentState::WrapUp, at: 100 })),
        (
            "up.control_applied",
            v2::UpEvent::ControlApplied(ControlApplied {
                target: ControlTarget::OneClick(ControlScope::Batch(5)),
                version: 2,
                applied_at: 100,
                dialed_before_applied: 3,
                calls_in_progress: 1,
                applied: true,
            }),
        ),
        (
            "up.call_attempt_detail",
            v2::UpEvent::CallAttemptDetail(CallAttemptDetail {
                attempt: attempt(),
                team: "A".into(),
                extension: "801".into(),
                ring_seconds: 5,
                queue_seconds: 2,
                ivr_seconds: 0,
            }),
        ),
    ]
}

/// Every down event of version 2.
fn down_events() -> Vec<(&'static str, v2::DownEvent)> {
    let row = CustomerRow { row_id: 1, phone: "13800138000".into(), fields: vec![("name".into(), "张三".into())] };
    vec![
        ("down.project", v2::DownEvent::Project(project())),
        ("down.batch_chunk", v2::DownEvent::BatchChunk(BatchChunk { batch_id: 5, chunk_idx: 0, rows: vec![row.clone()] })),
        (
            "down.batch_manifest",
            v2::DownEvent::BatchManifest(BatchManifest {
                batch_id: 5,
                project_id: 7,
                name: "b".into(),
                priority: 50,
                imported_at: 1_700_000_000,
                n_rows: 1,
                n_chunks: 1,
                rows_hash: rows_hash([&row]),
            }),
        ),
        ("down.batch_control", v2::DownEvent::BatchControl(BatchControl { batch_id: 5, version: 2, priority: 1 })),
        (
            "down.project_control",
            v2::DownEvent::ProjectControl(ProjectControl { project_id: 7, version: 3, state: RunState::Ended }),
        ),
        (
            "down.one_click",
            v2::DownEvent::OneClick(OneClickControl { scope: ControlScope::Project(7), version: 1, start: true }),
        ),
        (
            "down.black_list",
            v2::DownEvent::BlackList(BlackListChange { phone: "13800138000".into(), version: 2, listed: true, note: "投诉".into() }),
        ),
        (
            "down.announcement",
            v2::DownEvent::Announcement(Announcement {
                announcement_id: 3,
                version: 1,
                title: "通知".into(),
                body: "b".into(),
                published_at: 1_700_000_000,
                expires_at: Some(1_700_086_400),
                withdrawn: false,
            }),
        ),
        (
            "down.attribution_rules",
            v2::DownEvent::AttributionRules(AttributionRules {
                project_id: 7,
                version: 2,
                rules: vec![AttributionRule {
                    conditions: vec![AttributionCondition { field: "city".into(), values: vec!["a".into()] }],
                    all_match: true,
                    agent: "1001".into(),
                }],
            }),
        ),
        (
            "down.voice_file",
            v2::DownEvent::VoiceFile(VoiceFile {
                voice_id: 2,
                version: 1,
                name: "hold".into(),
                kind: VoiceKind::Prompt,
                sha256: [0x11; 32],
                size: 4096,
                deleted: false,
            }),
        ),
        ("down.link_settings", v2::DownEvent::LinkSettings(LinkSettings { version: 4, recording_upload_bytes_per_sec: None })),
        (
            "down.project_settings",
            v2::DownEvent::ProjectSettings(ProjectSettings {
                project_id: 7,
                version: 3,
                popup_on_ring: Some(true),
                running: None,
                calling_windows: vec![CallingWindow { start_minute: 540, end_minute: 720 }],
            }),
        ),
        (
            "down.phone_list",
            v2::DownEvent::PhoneList(PhoneListChange {
                phone: "13800138000".into(),
                version: 4,
                list: Some(PhoneListKind::Black),
                note: "".into(),
            }),
        ),
        (
            "down.report_definitions",
            v2::DownEvent::ReportDefinitions {
                project_id: 7,
                version: 1,
                defs: vec![ReportDefinition { id: 1, name: "r".into(), definition: "{}".into() }],
            },
        ),
    ]
}

/// Every frame of version 2, the entries carrying every event.
fn frames() -> Vec<(String, v2::Frame)> {
    let mut frames: Vec<(String, v2::Frame)> = vec![
        (
            "frame.client_hello".into(),
            v2::Frame::ClientHello(ClientHello { protocol_version: 2, site_id: 42, epoch: 3, down_applied: 300, software: "a".into() }),
        ),
        ("frame.server_hello".into(), v2::Frame::ServerHello(ServerHello { protocol_version: 2, up_committed: Some(5), software: "h".into() })),
        ("frame.refused".into(), v2::Frame::Refused { reason: "no".into() }),
        ("frame.up_ack".into(), v2::Frame::UpAck { epoch: 2, seq: 129 }),
        ("frame.down_ack".into(), v2::Frame::DownAck { seq: 1 }),
        ("frame.ping".into(), v2::Frame::Ping),
        (
            "frame.live_figures".into(),
            v2::Frame::LiveFigures(LiveFigures { taken_at_ms: 1, agents_logged_in: 2, batches_remaining: vec![(5, 9)], ..LiveFigures::default() }),
        ),
        ("frame.want_recording".into(), v2::Frame::WantRecording { sha256: [0xcd; 32] }),
        (
            "frame.site_live".into(),
            v2::Frame::SiteLive(SiteLive {
                taken_at_ms: 1,
                agents: vec![LiveAgent { username: "a1".into(), extension: "801".into(), state: LiveAgentState::Away, since_ms: 0 }],
                lines_available: 30,
                abandon_cap_percent: 3.0,
                tasks: vec![LiveTask { batch_id: 5, name: "T".into(), remaining: 10 }],
                alarms: vec![SiteAlarm::AbandonOverCap { rate_percent: 5.0, cap_percent: 3.0 }],
                ..SiteLive::default()
            }),
        ),
    ];
    for (seq, (name, event)) in (1..).zip(up_events()) {
        frames.push((format!("frame.up.{name}"), v2::Frame::Up(v2::UpEntry { epoch: 1, seq, event })));
    }
    for (seq, (name, event)) in (1..).zip(down_events()) {
        frames.push((format!("frame.down.{name}"), v2::Frame::Down(v2::DownEntry { seq, event })));
    }
    frames
}

#[test]
fn version_2_frames_keep_their_bytes_and_this_build_reads_them() {
    let mut listing = String::new();
    for (name, frame) in frames() {
        let bytes = encode_message(&frame).unwrap();
        listing.push_str(&format!("{name} {}\n", hex::encode(&bytes)));
        // This build reads the old bytes as the same frame and writes them back unchanged.
        let mut decoder = FrameDecoder::new();
        decoder.push(&bytes);
        let current: Frame = decoder.next_frame().unwrap().unwrap_or_else(|| panic!("{name}: no frame"));
        assert_eq!(encode_frame(&current).unwrap(), bytes, "{name}: this build writes other bytes");
        assert_eq!(current.needs_version(), 2, "{name}: a version 2 frame must not need a newer peer");
        // And the old build reads them back.
        let mut old = FrameDecoder::new();
        old.push(&bytes);
        assert_eq!(old.next_message::<v2::Frame>().unwrap(), Some(frame), "{name}");
    }
    expect_file!["golden/v2_frames.txt"].assert_eq(&listing);
}

/// Every variant is listed: the counts are those of the frozen enums (11 frames, 7 up and
/// 14 down events), so a v2 variant dropped from the lists above fails here.
#[test]
fn the_lists_cover_every_version_2_variant() {
    assert_eq!(up_events().len(), 7);
    assert_eq!(down_events().len(), 14);
    let kinds: std::collections::BTreeSet<&'static str> = frames()
        .iter()
        .map(|(_, frame)| {
            let bytes = encode_message(frame).unwrap();
            let mut decoder = FrameDecoder::new();
            decoder.push(&bytes);
            sync_protocol::session::frame_kind(&decoder.next_frame().unwrap().unwrap())
        })
        .collect();
    assert_eq!(kinds.len(), 11, "{kinds:?}");
}

/// What a version 3 hub puts in place of an event a version 2 site cannot read is itself a
/// version 2 event.
#[test]
fn the_held_back_stand_in_is_readable_by_version_2() {
    let stand_in = DownEvent::held_back_stand_in();
    assert_eq!(stand_in.since(), 2);
    let bytes = encode_message(&Frame::Down(DownEntry { seq: 4, event: stand_in })).unwrap();
    let mut old = FrameDecoder::new();
    old.push(&bytes);
    assert!(matches!(old.next_message::<v2::Frame>().unwrap(), Some(v2::Frame::Down(v2::DownEntry { seq: 4, .. }))));
    let profile = DownEvent::SiteProfile(SiteProfile { version: 1, name: "北京".into() });
    assert!(profile.since() > v2::VERSION);
    assert_eq!(alpn_version(v2::SYNC_ALPN), Some(2));
    assert_eq!(sync_alpns().first().map(Vec::as_slice), Some(SYNC_ALPN));
}
