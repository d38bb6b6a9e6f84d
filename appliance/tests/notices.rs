//! HQ's voice library and announcements at the site: applied from the down log in version
//! order, voice bytes received through the link's blob calls (resumable, hash-checked), a
//! task's hold music chosen from the library and refused when it is not there.

mod common;

use appliance::store::{Store, TaskExtras, TaskSettingsError};
use sha2::Digest as _;
use sync_link::SiteStore;
use sync_link::blob::BlobCheck;
use sync_protocol::{Announcement, DownEntry, DownEvent, VoiceFile, VoiceKind};

use common::*;

fn voice(voice_id: u64, version: u64, name: &str, bytes: &[u8], deleted: bool) -> DownEvent {
    DownEvent::VoiceFile(VoiceFile {
        voice_id,
        version,
        name: name.into(),
        kind: VoiceKind::HoldMusic,
        sha256: sha2::Sha256::digest(bytes).into(),
        size: bytes.len() as u64,
        deleted,
    })
}

fn notice(announcement_id: u64, version: u64, title: &str, expires_at: Option<i64>, withdrawn: bool) -> DownEvent {
    DownEvent::Announcement(Announcement {
        announcement_id,
        version,
        title: title.into(),
        body: format!("{title}：请各职场注意"),
        published_at: 1_700_000_000 + announcement_id as i64,
        expires_at,
        withdrawn,
    })
}

/// A µ-law WAV of `n` samples of `byte`: recognisable on the wire, unchanged by the codec.
fn ulaw_wav(byte: u8, n: usize) -> Vec<u8> {
    hardware::ulaw_wav(&vec![byte; n])
}

fn apply(store: &Store, first_seq: u64, events: Vec<DownEvent>) {
    let entries: Vec<DownEntry> = entries(first_seq, events);
    store.apply_down_batch(&entries).expect("down entries apply");
}

#[test]
fn announcements_follow_versions_withdrawals_and_expiry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("store");
    let now = 1_800_000_000;
    apply(
        &store,
        1,
        vec![
            notice(1, 1, "五一排班", None, false),
            notice(2, 1, "旧通知", Some(now - 1), false),
            notice(3, 1, "撤回的通知", None, false),
            notice(1, 3, "五一排班（更新）", None, false),
            // An older version arriving late changes nothing.
            notice(1, 2, "五一排班（旧版）", None, false),
            notice(3, 2, "撤回的通知", None, true),
        ],
    );
    let shown = store.announcements(now).expect("announcements");
    let titles: Vec<&str> = shown.iter().map(|notice| notice.title.as_str()).collect();
    assert_eq!(titles, ["五一排班（更新）"], "expired and withdrawn notices are hidden");
    assert_eq!(store.announcements(now - 10).expect("earlier").len(), 2, "before it expired, notice 2 showed");
}

#[test]
fn voice_bytes_arrive_resumably_and_a_task_chooses_hold_music_from_the_library() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("store");
    let batch = batch_events(5, &rows(5, 3), 10, 50, 1);
    let mut events = vec![DownEvent::Project(project(1))];
    events.extend(batch);
    let wav = ulaw_wav(0x2a, 1600);
    events.push(voice(9, 1, "轻音乐", &wav, false));
    apply(&store, 1, events);
    let sha: [u8; 32] = sha2::Sha256::digest(&wav).into();

    // Listed before its bytes arrive, but not playable yet.
    let library = store.voice_files().expect("library");
    assert_eq!(library.len(), 1);
    assert_eq!((library[0].name.as_str(), library[0].kind, library[0].held), ("轻音乐", "hold_music", false));
    assert!(store.hold_music_file(9).expect("lookup").is_none());

    // The bytes come in two pieces, as after a cut link; a wrong copy is refused.
    assert_eq!(store.voice_held(&sha).expect("held"), 0);
    store.voice_append(&sha, 0, &wav[..500]).expect("first piece");
    assert_eq!(store.voice_held(&sha).expect("held"), 500);
    store.voice_append(&sha, 500, &wav[500..]).expect("rest");
    assert_eq!(store.voice_finish(&sha).expect("finish"), BlobCheck::Accepted);
    let (path, _) = store.hold_music_file(9).expect("lookup").expect("playable now");
    assert_eq!(std::fs::read(&path).expect("read"), wav);
    assert!(store.voice_files().expect("library")[0].held);
    hardware::HoldAudio::load(&path).expect("the file decodes as hold audio");

    let other: [u8; 32] = sha2::Sha256::digest(b"other").into();
    store.voice_append(&other, 0, b"not the promised bytes").expect("append");
    assert!(matches!(store.voice_finish(&other).expect("finish"), BlobCheck::Rejected { .. }));

    // The task chooses it; an unknown id is refused with the fix in the message.
    let chosen = TaskExtras { hold_music: Some(9), ..TaskExtras::default() };
    store.set_task_extras(5, &chosen).expect("hold music from the library");
    assert_eq!(store.task_settings(5).expect("settings").expect("task").extras.hold_music, Some(9));
    let unknown = TaskExtras { hold_music: Some(77), ..TaskExtras::default() };
    match store.set_task_extras(5, &unknown) {
        Err(TaskSettingsError::Invalid(message)) => assert!(message.contains("语音库"), "{message}"),
        other => panic!("an unknown voice file must be refused: {other:?}"),
    }

    // HQ deletes the file: it leaves the list and stops playing (the box's hold audio again).
    apply(&store, 100, vec![voice(9, 2, "轻音乐", &wav, true)]);
    assert!(store.voice_files().expect("library").is_empty());
    assert!(store.hold_music_file(9).expect("lookup").is_none());
}
