//! What HQ publishes to every site at once: the voice library (语音库: hold music and
//! prompts a task can choose, e.g. its 等待音乐) and announcements (公告管理: notices the sites'
//! staff see).
//!
//! - Each voice file and announcement has a per-item version; every change (upload, delete,
//!   post, edit, withdraw) is a new version, written to its table and appended to the down
//!   log of every enrolled site in one transaction, so the tables and the logs never
//!   disagree. A site that enrolls later gets the current state when it enrolls
//!   ([`seed_enrolled_site`], called in the enrollment transaction).
//! - Voice bytes are kept by [`Store::store_voice_blob`] under `<data>/voice/<sha256>` before
//!   the transaction; the link pushes them to each site that its down log names them to.
//! - An upload must be a WAV the sites' telephony plays without converting: RIFF/WAVE, mono,
//!   8000 Hz, G.711 µ-law or A-law at 8 bits or 16-bit PCM, at least 20 ms. Anything else is
//!   refused with the `sox` command that converts it, instead of failing later at a site.

use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;
use sync_protocol::{Announcement, DownEvent, VoiceFile, VoiceKind};

use super::batches::append_down;
use super::link::VoiceFileError;
use super::{now_unix, DbError, Store};

/// Largest voice file accepted: 16-bit PCM at 8000 Hz is 16 kB a second, so this is about
/// 17 minutes of hold music (an hour in G.711).
pub const MAX_VOICE_BYTES: usize = 16 * 1024 * 1024;
/// Shortest playable voice file, in milliseconds (one 20 ms RTP packet).
pub const MIN_VOICE_MS: u64 = 20;
/// Longest voice file name, in characters.
pub const MAX_VOICE_NAME_CHARS: usize = 100;
/// Longest announcement title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest announcement body, in characters.
pub const MAX_BODY_CHARS: usize = 20_000;

/// The `sox` command that turns anything into what the sites play (G.711 µ-law, mono 8 kHz).
const CONVERT_HINT: &str = "convert it with `sox in.mp3 -r 8000 -c 1 -e u-law out.wav`";

/// Why uploaded bytes are not a WAV the sites can play. Every message ends with the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    /// No `RIFF....WAVE` header (an MP3, an M4A, a renamed file).
    #[error("not a WAV file (no RIFF/WAVE header); {CONVERT_HINT}")]
    NotWav,
    /// The file ends before a `fmt ` chunk, or the chunk is too short.
    #[error("the WAV file has no complete \"fmt \" chunk (truncated or damaged); {CONVERT_HINT}")]
    NoFormat,
    /// The file has no `data` chunk after its `fmt ` chunk.
    #[error("the WAV file has no audio (no \"data\" chunk after \"fmt \"); {CONVERT_HINT}")]
    NoData,
    /// Not mono 8000 Hz.
    #[error("the WAV file is {channels} channel(s) at {rate} Hz; the sites play mono 8000 Hz: {CONVERT_HINT}")]
    Layout { channels: u16, rate: u32 },
    /// An encoding the sites do not decode (MP3 in WAV, 8-bit PCM, float, extensible, ...).
    #[error(
        "the WAV file is encoded as format {tag} with {bits} bits per sample; the sites play G.711 µ-law (7) or \
         A-law (6) at 8 bits, or 16-bit PCM (1): {CONVERT_HINT}"
    )]
    Encoding { tag: u16, bits: u16 },
    /// Shorter than [`MIN_VOICE_MS`].
    #[error("the WAV file holds only {ms} ms of audio; upload at least {MIN_VOICE_MS} ms")]
    TooShort { ms: u64 },
}

/// What a valid voice file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavInfo {
    /// 7 µ-law, 6 A-law, 1 PCM.
    pub format_tag: u16,
    pub samples: u64,
    pub duration_ms: u64,
}

fn le_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Checks that `bytes` are a WAV the sites' telephony can play (the formats
/// `hardware::HoldAudio::from_wav` decodes) and says how long it is.
pub fn check_wav(bytes: &[u8]) -> Result<WavInfo, WavError> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::NotWav);
    }
    let mut offset = 12usize;
    let mut format: Option<(u16, u16, u32, u16)> = None;
    while offset.saturating_add(8) <= bytes.len() {
        let id = &bytes[offset..offset + 4];
        let size = le_u32(bytes, offset + 4) as usize;
        let body_start = offset + 8;
        // A streamed WAV may claim more (or 0xFFFFFFFF) than it holds: take what is there.
        let body = &bytes[body_start..body_start.saturating_add(size).min(bytes.len())];
        if id == b"fmt " {
            if body.len() < 16 {
                return Err(WavError::NoFormat);
            }
            format = Some((le_u16(body, 0), le_u16(body, 2), le_u32(body, 4), le_u16(body, 14)));
        } else if id == b"data" {
            let (tag, channels, rate, bits) = format.ok_or(WavError::NoFormat)?;
            if channels != 1 || rate != 8000 {
                return Err(WavError::Layout { channels, rate });
            }
            let bytes_per_sample: u64 = match (tag, bits) {
                (6 | 7, 8) => 1,
                (1, 16) => 2,
                _ => return Err(WavError::Encoding { tag, bits }),
            };
            let samples = body.len() as u64 / bytes_per_sample;
            let duration_ms = samples * 1000 / 8000;
            if duration_ms < MIN_VOICE_MS {
                return Err(WavError::TooShort { ms: duration_ms });
            }
            return Ok(WavInfo { format_tag: tag, samples, duration_ms });
        }
        // Chunks are padded to even sizes.
        offset = body_start.saturating_add(size).saturating_add(size % 2);
    }
    Err(if format.is_some() { WavError::NoData } else { WavError::NoFormat })
}

/// The console's and API's name of a voice kind.
pub fn voice_kind_key(kind: VoiceKind) -> &'static str {
    match kind {
        VoiceKind::HoldMusic => "hold_music",
        _ => "prompt",
    }
}

/// A voice kind from its key (`hold_music` 等待音乐, `prompt` 提示音).
pub fn parse_voice_kind(key: &str) -> Result<VoiceKind, VoiceUploadError> {
    match key.trim() {
        "hold_music" => Ok(VoiceKind::HoldMusic),
        "prompt" => Ok(VoiceKind::Prompt),
        other => Err(VoiceUploadError::UnknownKind(other.to_string())),
    }
}

/// A voice file as the console lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VoiceFileView {
    pub id: i64,
    pub name: String,
    /// `hold_music` or `prompt`.
    pub kind: &'static str,
    pub sha256: String,
    pub size: i64,
    pub duration_ms: i64,
    pub version: i64,
    pub deleted: bool,
    pub uploaded_at: i64,
    pub uploaded_by: String,
}

/// An uploaded voice file, before it is checked.
#[derive(Debug, Clone)]
pub struct VoiceUpload<'a> {
    /// The name shown to sites (e.g. in a task's 等待音乐 choice).
    pub name: &'a str,
    pub kind: VoiceKind,
    /// The uploaded file's own name, for messages.
    pub file_name: &'a str,
    pub bytes: &'a [u8],
    pub uploaded_by: &'a str,
}

/// Why a voice file upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum VoiceUploadError {
    /// No name was given.
    #[error("the voice file's name is empty: type a name the sites will see")]
    EmptyName,
    /// The name is longer than [`MAX_VOICE_NAME_CHARS`].
    #[error("the voice file's name has {0} characters: use at most {MAX_VOICE_NAME_CHARS}")]
    NameTooLong(usize),
    /// The kind is not `hold_music` or `prompt`.
    #[error("voice kind {0:?} is unknown: use \"hold_music\" (等待音乐) or \"prompt\" (提示音)")]
    UnknownKind(String),
    /// Another voice file (not deleted) has this name.
    #[error("a voice file named {0:?} already exists: choose another name or delete the old one first")]
    Duplicate(String),
    /// The upload is larger than [`MAX_VOICE_BYTES`].
    #[error("{file_name:?} is {size} bytes: voice files may be at most {MAX_VOICE_BYTES} bytes; shorten it or use G.711 (`sox in.wav -r 8000 -c 1 -e u-law out.wav`)")]
    TooLarge { file_name: String, size: usize },
    /// The bytes are not a playable WAV.
    #[error("{file_name:?}: {source}")]
    BadAudio { file_name: String, source: WavError },
    /// Keeping the bytes failed.
    #[error(transparent)]
    Blob(#[from] VoiceFileError),
    /// A down-log event could not be encoded.
    #[error("cannot encode the down-log entry: {0}")]
    Encode(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for VoiceUploadError {
    fn from(e: rusqlite::Error) -> Self {
        VoiceUploadError::Db(DbError(e))
    }
}

/// Why a voice file could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum VoiceDeleteError {
    /// No voice file has this id.
    #[error("voice file {0} does not exist: pick one from GET /api/voice-files")]
    Unknown(i64),
    /// It was deleted before.
    #[error("voice file {0} is already deleted")]
    AlreadyDeleted(i64),
    /// A down-log event could not be encoded.
    #[error("cannot encode the down-log entry: {0}")]
    Encode(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for VoiceDeleteError {
    fn from(e: rusqlite::Error) -> Self {
        VoiceDeleteError::Db(DbError(e))
    }
}

/// An announcement as the console lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnnouncementView {
    pub id: i64,
    pub version: i64,
    pub title: String,
    pub body: String,
    pub published_at: i64,
    pub expires_at: Option<i64>,
    pub withdrawn: bool,
    /// Past its `expires_at` (sites no longer show it).
    pub expired: bool,
    pub created_by: String,
}

/// The text of an announcement to post or the new text of one to edit.
#[derive(Debug, Clone)]
pub struct AnnouncementText<'a> {
    pub title: &'a str,
    pub body: &'a str,
    /// Unix seconds; `None` = shown until withdrawn.
    pub expires_at: Option<i64>,
}

/// Why an announcement could not be posted, edited or withdrawn.
#[derive(Debug, thiserror::Error)]
pub enum AnnouncementError {
    /// The title is empty.
    #[error("the announcement's title is empty: type a title")]
    EmptyTitle,
    /// The title is longer than [`MAX_TITLE_CHARS`].
    #[error("the title has {0} characters: use at most {MAX_TITLE_CHARS}")]
    TitleTooLong(usize),
    /// The body is longer than [`MAX_BODY_CHARS`].
    #[error("the text has {0} characters: use at most {MAX_BODY_CHARS}")]
    BodyTooLong(usize),
    /// The expiry is not after the publication time.
    #[error("the expiry time is not after the publication time: choose a later expiry, or none")]
    ExpiresTooEarly,
    /// No announcement has this id.
    #[error("announcement {0} does not exist: pick one from GET /api/announcements")]
    Unknown(i64),
    /// It was withdrawn; a withdrawn announcement is not edited or withdrawn again.
    #[error("announcement {0} was withdrawn: post a new one instead")]
    Withdrawn(i64),
    /// A down-log event could not be encoded.
    #[error("cannot encode the down-log entry: {0}")]
    Encode(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for AnnouncementError {
    fn from(e: rusqlite::Error) -> Self {
        AnnouncementError::Db(DbError(e))
    }
}

fn sha_from_hex(text: &str) -> rusqlite::Result<[u8; 32]> {
    hex::decode(text)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| rusqlite::Error::InvalidColumnType(0, "sha256".into(), rusqlite::types::Type::Text))
}

const VOICE_SELECT: &str =
    "SELECT id, name, kind, sha256, size, duration_ms, version, deleted, uploaded_at, uploaded_by FROM voice_files";

fn voice_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<VoiceFileView> {
    let kind: String = r.get(2)?;
    Ok(VoiceFileView {
        id: r.get(0)?,
        name: r.get(1)?,
        kind: if kind == "hold_music" { "hold_music" } else { "prompt" },
        sha256: r.get(3)?,
        size: r.get(4)?,
        duration_ms: r.get(5)?,
        version: r.get(6)?,
        deleted: r.get(7)?,
        uploaded_at: r.get(8)?,
        uploaded_by: r.get(9)?,
    })
}

fn voice_wire(view: &VoiceFileView) -> rusqlite::Result<VoiceFile> {
    Ok(VoiceFile {
        voice_id: view.id as u64,
        version: view.version as u64,
        name: view.name.clone(),
        kind: if view.kind == "hold_music" { VoiceKind::HoldMusic } else { VoiceKind::Prompt },
        sha256: sha_from_hex(&view.sha256)?,
        size: view.size as u64,
        deleted: view.deleted,
    })
}

const ANNOUNCEMENT_SELECT: &str =
    "SELECT id, version, title, body, published_at, expires_at, withdrawn, created_by FROM announcements";

fn announcement_from_row(r: &rusqlite::Row<'_>, now: i64) -> rusqlite::Result<AnnouncementView> {
    let expires_at: Option<i64> = r.get(5)?;
    Ok(AnnouncementView {
        id: r.get(0)?,
        version: r.get(1)?,
        title: r.get(2)?,
        body: r.get(3)?,
        published_at: r.get(4)?,
        expires_at,
        withdrawn: r.get(6)?,
        expired: expires_at.is_some_and(|at| at <= now),
        created_by: r.get(7)?,
    })
}

fn announcement_wire(view: &AnnouncementView) -> Announcement {
    Announcement {
        announcement_id: view.id as u64,
        version: view.version as u64,
        title: view.title.clone(),
        body: view.body.clone(),
        published_at: view.published_at,
        expires_at: view.expires_at,
        withdrawn: view.withdrawn,
    }
}

/// The sites that receive published changes now: every enrolled one (a site enrolled later
/// is seeded when it enrolls).
fn enrolled_sites(tx: &Transaction<'_>) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = tx.prepare("SELECT id FROM sites WHERE enrolled_at IS NOT NULL ORDER BY id")?;
    let ids = stmt.query_map([], |r| r.get(0))?.collect();
    ids
}

/// Appends `event` to every enrolled site's down log; the sites to wake after the commit.
fn publish(tx: &Transaction<'_>, event: &DownEvent) -> Result<Vec<i64>, String> {
    let sites = enrolled_sites(tx).map_err(|e| e.to_string())?;
    for &site in &sites {
        append_down(tx, site, event).map_err(|e| e.to_string())?;
    }
    Ok(sites)
}

/// Sends a newly enrolled site the current voice library and the live announcements. Runs
/// in the enrollment transaction, so no change published meanwhile can be missed or doubled.
pub(super) fn seed_enrolled_site(tx: &Transaction<'_>, site_id: i64) -> rusqlite::Result<()> {
    let encode = |e: super::DispatchError| rusqlite::Error::ToSqlConversionFailure(Box::new(e));
    let voices = {
        let mut stmt = tx.prepare(&format!("{VOICE_SELECT} WHERE deleted = 0 ORDER BY id"))?;
        let rows = stmt.query_map([], voice_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        rows
    };
    for voice in &voices {
        append_down(tx, site_id, &DownEvent::VoiceFile(voice_wire(voice)?)).map_err(encode)?;
    }
    let now = now_unix();
    let live = {
        let mut stmt = tx.prepare(&format!(
            "{ANNOUNCEMENT_SELECT} WHERE withdrawn = 0 AND (expires_at IS NULL OR expires_at > ?1) ORDER BY id"
        ))?;
        let rows = stmt.query_map([now], |r| announcement_from_row(r, now))?.collect::<rusqlite::Result<Vec<_>>>()?;
        rows
    };
    for notice in &live {
        append_down(tx, site_id, &DownEvent::Announcement(announcement_wire(notice))).map_err(encode)?;
    }
    Ok(())
}

fn check_text(text: &AnnouncementText<'_>, published_at: i64) -> Result<(String, String), AnnouncementError> {
    let title = text.title.trim();
    if title.is_empty() {
        return Err(AnnouncementError::EmptyTitle);
    }
    let title_chars = title.chars().count();
    if title_chars > MAX_TITLE_CHARS {
        return Err(AnnouncementError::TitleTooLong(title_chars));
    }
    let body = text.body.trim();
    let body_chars = body.chars().count();
    if body_chars > MAX_BODY_CHARS {
        return Err(AnnouncementError::BodyTooLong(body_chars));
    }
    if text.expires_at.is_some_and(|at| at <= published_at) {
        return Err(AnnouncementError::ExpiresTooEarly);
    }
    Ok((title.to_string(), body.to_string()))
}

impl Store {
    fn wake_sites(&self, sites: &[i64]) {
        for &site in sites {
            self.down_notify_for(site as u64).notify_waiters();
        }
    }

    /// Checks and keeps an uploaded voice file and publishes it (version 1) to every
    /// enrolled site.
    pub fn upload_voice_file(&self, upload: &VoiceUpload<'_>) -> Result<VoiceFileView, VoiceUploadError> {
        let name = upload.name.trim();
        if name.is_empty() {
            return Err(VoiceUploadError::EmptyName);
        }
        let chars = name.chars().count();
        if chars > MAX_VOICE_NAME_CHARS {
            return Err(VoiceUploadError::NameTooLong(chars));
        }
        if upload.bytes.len() > MAX_VOICE_BYTES {
            return Err(VoiceUploadError::TooLarge { file_name: upload.file_name.to_string(), size: upload.bytes.len() });
        }
        let info = check_wav(upload.bytes)
            .map_err(|source| VoiceUploadError::BadAudio { file_name: upload.file_name.to_string(), source })?;
        // The bytes are kept first: a site told about the file must be able to fetch it. If
        // the transaction then fails, the blob stays unreferenced (and is reused if the same
        // bytes are uploaded again).
        let blob = self.store_voice_blob(upload.bytes)?;
        let (view, sites) = {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let taken: Option<i64> = tx
                .query_row("SELECT id FROM voice_files WHERE name = ?1 AND deleted = 0", [name], |r| r.get(0))
                .optional()?;
            if taken.is_some() {
                return Err(VoiceUploadError::Duplicate(name.to_string()));
            }
            tx.execute(
                "INSERT INTO voice_files (name, kind, sha256, size, duration_ms, version, deleted, uploaded_at, uploaded_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, 1, 0, ?6, ?7)",
                params![
                    name,
                    voice_kind_key(upload.kind),
                    hex::encode(blob.sha256),
                    blob.size as i64,
                    info.duration_ms as i64,
                    now_unix(),
                    upload.uploaded_by
                ],
            )?;
            let id = tx.last_insert_rowid();
            let view = tx.query_row(&format!("{VOICE_SELECT} WHERE id = ?1"), [id], voice_from_row)?;
            let sites = publish(&tx, &DownEvent::VoiceFile(voice_wire(&view)?)).map_err(VoiceUploadError::Encode)?;
            tx.commit()?;
            (view, sites)
        };
        self.wake_sites(&sites);
        Ok(view)
    }

    /// The voice library, newest first; deleted files only with `include_deleted`.
    pub fn list_voice_files(&self, include_deleted: bool) -> Result<Vec<VoiceFileView>, DbError> {
        let conn = self.conn();
        let filter = if include_deleted { "" } else { " WHERE deleted = 0" };
        let mut stmt = conn.prepare(&format!("{VOICE_SELECT}{filter} ORDER BY id DESC"))?;
        let rows = stmt.query_map([], voice_from_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// One voice file (deleted ones too).
    pub fn voice_file(&self, id: i64) -> Result<Option<VoiceFileView>, DbError> {
        Ok(self.conn().query_row(&format!("{VOICE_SELECT} WHERE id = ?1"), [id], voice_from_row).optional()?)
    }

    /// Deletes a voice file: a new version with `deleted`, sent to every enrolled site (which
    /// stops using it). The bytes stay at HQ: another voice file may have the same content.
    pub fn delete_voice_file(&self, id: i64) -> Result<VoiceFileView, VoiceDeleteError> {
        let (view, sites) = {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let found = tx.query_row(&format!("{VOICE_SELECT} WHERE id = ?1"), [id], voice_from_row).optional()?;
            let Some(current) = found else { return Err(VoiceDeleteError::Unknown(id)) };
            if current.deleted {
                return Err(VoiceDeleteError::AlreadyDeleted(id));
            }
            tx.execute("UPDATE voice_files SET deleted = 1, version = version + 1 WHERE id = ?1", [id])?;
            let view = tx.query_row(&format!("{VOICE_SELECT} WHERE id = ?1"), [id], voice_from_row)?;
            let sites = publish(&tx, &DownEvent::VoiceFile(voice_wire(&view)?)).map_err(VoiceDeleteError::Encode)?;
            tx.commit()?;
            (view, sites)
        };
        self.wake_sites(&sites);
        Ok(view)
    }

    /// Posts an announcement (version 1, published now) to every enrolled site.
    pub fn post_announcement(&self, text: &AnnouncementText<'_>, created_by: &str) -> Result<AnnouncementView, AnnouncementError> {
        let now = now_unix();
        let (title, body) = check_text(text, now)?;
        let (view, sites) = {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO announcements (version, title, body, published_at, expires_at, withdrawn, created_by)
                 VALUES (1, ?1, ?2, ?3, ?4, 0, ?5)",
                params![title, body, now, text.expires_at, created_by],
            )?;
            let id = tx.last_insert_rowid();
            let view = tx.query_row(&format!("{ANNOUNCEMENT_SELECT} WHERE id = ?1"), [id], |r| announcement_from_row(r, now))?;
            let sites = publish(&tx, &DownEvent::Announcement(announcement_wire(&view))).map_err(AnnouncementError::Encode)?;
            tx.commit()?;
            (view, sites)
        };
        self.wake_sites(&sites);
        Ok(view)
    }

    /// Replaces an announcement's text and expiry (a new version; its publication time stays).
    pub fn edit_announcement(&self, id: i64, text: &AnnouncementText<'_>) -> Result<AnnouncementView, AnnouncementError> {
        self.change_announcement(id, |tx, current| {
            let (title, body) = check_text(text, current.published_at)?;
            tx.execute(
                "UPDATE announcements SET title = ?1, body = ?2, expires_at = ?3, version = version + 1 WHERE id = ?4",
                params![title, body, text.expires_at, id],
            )?;
            Ok(())
        })
    }

    /// Withdraws an announcement: a new version with `withdrawn`; sites stop showing it.
    pub fn withdraw_announcement(&self, id: i64) -> Result<AnnouncementView, AnnouncementError> {
        self.change_announcement(id, |tx, _| {
            tx.execute("UPDATE announcements SET withdrawn = 1, version = version + 1 WHERE id = ?1", [id])?;
            Ok(())
        })
    }

    /// One new version of announcement `id` (not withdrawn), made by `change` and published,
    /// in one transaction.
    fn change_announcement(
        &self,
        id: i64,
        change: impl FnOnce(&Transaction<'_>, &AnnouncementView) -> Result<(), AnnouncementError>,
    ) -> Result<AnnouncementView, AnnouncementError> {
        let now = now_unix();
        let (view, sites) = {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let select = format!("{ANNOUNCEMENT_SELECT} WHERE id = ?1");
            let found = tx.query_row(&select, [id], |r| announcement_from_row(r, now)).optional()?;
            let Some(current) = found else { return Err(AnnouncementError::Unknown(id)) };
            if current.withdrawn {
                return Err(AnnouncementError::Withdrawn(id));
            }
            change(&tx, &current)?;
            let view = tx.query_row(&select, [id], |r| announcement_from_row(r, now))?;
            let sites = publish(&tx, &DownEvent::Announcement(announcement_wire(&view))).map_err(AnnouncementError::Encode)?;
            tx.commit()?;
            (view, sites)
        };
        self.wake_sites(&sites);
        Ok(view)
    }

    /// Every announcement, newest first (withdrawn and expired ones too, marked).
    pub fn list_announcements(&self) -> Result<Vec<AnnouncementView>, DbError> {
        let now = now_unix();
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("{ANNOUNCEMENT_SELECT} ORDER BY id DESC"))?;
        let rows = stmt.query_map([], |r| announcement_from_row(r, now))?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// One announcement.
    pub fn announcement(&self, id: i64) -> Result<Option<AnnouncementView>, DbError> {
        let now = now_unix();
        Ok(self
            .conn()
            .query_row(&format!("{ANNOUNCEMENT_SELECT} WHERE id = ?1"), [id], |r| announcement_from_row(r, now))
            .optional()?)
    }
}
