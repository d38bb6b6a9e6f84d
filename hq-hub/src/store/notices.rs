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

use super::down::{append_down, publish_to_enrolled};
use super::recordings::VoiceFileError;
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
#[derive(utoipa::ToSchema)]
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
#[derive(utoipa::ToSchema)]
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

/// Appends `event` to every enrolled site's down log; the sites to wake after the commit.
fn publish(tx: &Transaction<'_>, event: &DownEvent) -> Result<Vec<i64>, String> {
    publish_to_enrolled(tx, event).map_err(|e| e.to_string())
}

/// Sends a newly enrolled site the current voice library and the live announcements. Runs
/// in the enrollment transaction, so no change published meanwhile can be missed or doubled.
pub(super) fn seed_enrolled_site(tx: &Transaction<'_>, site_id: i64) -> rusqlite::Result<()> {
    let voices = {
        let mut stmt = tx.prepare(&format!("{VOICE_SELECT} WHERE deleted = 0 ORDER BY id"))?;
        stmt.query_map([], voice_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?
    };
    for voice in &voices {
        append_down(tx, site_id, &DownEvent::VoiceFile(voice_wire(voice)?))?;
    }
    let now = now_unix();
    let live = {
        let mut stmt = tx.prepare(&format!(
            "{ANNOUNCEMENT_SELECT} WHERE withdrawn = 0 AND (expires_at IS NULL OR expires_at > ?1) ORDER BY id"
        ))?;
        stmt.query_map([now], |r| announcement_from_row(r, now))?.collect::<rusqlite::Result<Vec<_>>>()?
    };
    for notice in &live {
        append_down(tx, site_id, &DownEvent::Announcement(announcement_wire(notice)))?;
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
            self.down_notify_for(site as u64).notify_one();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A WAV of `samples` samples: format `tag`, `bits` per sample, `channels` at `rate`.
    pub(crate) fn wav(tag: u16, bits: u16, channels: u16, rate: u32, samples: usize) -> Vec<u8> {
        let block = channels * bits / 8;
        let data_len = samples * block as usize;
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&(36 + data_len as u32).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&channels.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * block as u32).to_le_bytes());
        out.extend_from_slice(&block.to_le_bytes());
        out.extend_from_slice(&bits.to_le_bytes());
        // A LIST chunk of odd size before the data, as sox and Audacity write: it is skipped.
        out.extend_from_slice(b"LIST");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(b"abc\0");
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(data_len as u32).to_le_bytes());
        out.extend((0..data_len).map(|i| (i % 251) as u8));
        out
    }

    fn enrolled_site(store: &Store, name: &str) -> i64 {
        let site = store.create_site(name).unwrap();
        let code = store.create_enrollment_code(site).unwrap();
        assert_eq!(store.redeem_code(&code.code, name.as_bytes()).unwrap(), site);
        site
    }

    fn voices_in_log(store: &Store, site: i64) -> Vec<VoiceFile> {
        store
            .down_log(site, 0, 1000)
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.event {
                DownEvent::VoiceFile(v) => Some(v),
                _ => None,
            })
            .collect()
    }

    fn notices_in_log(store: &Store, site: i64) -> Vec<Announcement> {
        store
            .down_log(site, 0, 1000)
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.event {
                DownEvent::Announcement(a) => Some(a),
                _ => None,
            })
            .collect()
    }

    fn upload<'a>(name: &'a str, bytes: &'a [u8]) -> VoiceUpload<'a> {
        VoiceUpload { name, kind: VoiceKind::HoldMusic, file_name: "hold.wav", bytes, uploaded_by: "admin" }
    }

    #[test]
    fn only_wavs_the_sites_play_are_accepted() {
        let ulaw = check_wav(&wav(7, 8, 1, 8000, 8000)).unwrap();
        assert_eq!((ulaw.format_tag, ulaw.samples, ulaw.duration_ms), (7, 8000, 1000));
        assert_eq!(check_wav(&wav(6, 8, 1, 8000, 160)).unwrap().duration_ms, 20);
        assert_eq!(check_wav(&wav(1, 16, 1, 8000, 4000)).unwrap().duration_ms, 500);

        assert_eq!(check_wav(b"ID3\x03\x00 an mp3"), Err(WavError::NotWav));
        assert_eq!(check_wav(&wav(1, 16, 2, 44100, 100)), Err(WavError::Layout { channels: 2, rate: 44100 }));
        assert_eq!(check_wav(&wav(1, 16, 1, 16000, 100)), Err(WavError::Layout { channels: 1, rate: 16000 }));
        assert_eq!(check_wav(&wav(1, 8, 1, 8000, 800)), Err(WavError::Encoding { tag: 1, bits: 8 }));
        assert_eq!(check_wav(&wav(3, 32, 1, 8000, 800)), Err(WavError::Encoding { tag: 3, bits: 32 }));
        assert_eq!(check_wav(&wav(7, 8, 1, 8000, 159)), Err(WavError::TooShort { ms: 19 }));
        // Header only, and a fmt chunk cut short.
        assert_eq!(check_wav(b"RIFF\0\0\0\0WAVE"), Err(WavError::NoFormat));
        assert_eq!(check_wav(b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x07\0"), Err(WavError::NoFormat));
        let mut no_data = wav(7, 8, 1, 8000, 160);
        no_data.truncate(44 + 12 - 8);
        assert_eq!(check_wav(&no_data), Err(WavError::NoData));
        // A chunk claiming more than the file holds does not read past the end.
        let mut huge = wav(7, 8, 1, 8000, 400);
        let at = huge.windows(4).position(|w| w == b"data").unwrap();
        huge[at + 4..at + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(check_wav(&huge).unwrap().samples, 400);

        // The message names the fix.
        let text = WavError::Layout { channels: 2, rate: 44100 }.to_string();
        assert!(text.contains("sox in.mp3 -r 8000 -c 1 -e u-law out.wav"), "{text}");
    }

    #[test]
    fn uploads_are_checked_and_reach_every_enrolled_site() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let one = enrolled_site(&store, "一号职场");
        let two = enrolled_site(&store, "二号职场");
        let pending = store.create_site("未接入职场").unwrap();

        let mp3 = b"ID3 not a wav".to_vec();
        let err = store.upload_voice_file(&VoiceUpload { file_name: "song.mp3", ..upload("歌", &mp3) }).unwrap_err();
        assert!(matches!(err, VoiceUploadError::BadAudio { source: WavError::NotWav, .. }), "{err}");
        assert!(err.to_string().starts_with("\"song.mp3\": not a WAV file"), "{err}");
        let bytes = wav(7, 8, 1, 8000, 16000);
        assert!(matches!(store.upload_voice_file(&upload("  ", &bytes)), Err(VoiceUploadError::EmptyName)));
        let long = "长".repeat(MAX_VOICE_NAME_CHARS + 1);
        assert!(matches!(store.upload_voice_file(&upload(&long, &bytes)), Err(VoiceUploadError::NameTooLong(101))));
        assert!(matches!(parse_voice_kind("music"), Err(VoiceUploadError::UnknownKind(_))));
        assert_eq!(parse_voice_kind(" prompt ").unwrap(), VoiceKind::Prompt);
        assert!(store.list_voice_files(true).unwrap().is_empty(), "nothing kept from refused uploads");

        let view = store.upload_voice_file(&upload(" 等待音乐 ", &bytes)).unwrap();
        assert_eq!((view.name.as_str(), view.kind, view.version, view.duration_ms, view.size), ("等待音乐", "hold_music", 1, 2000, bytes.len() as i64));
        assert!(matches!(store.upload_voice_file(&upload("等待音乐", &bytes)), Err(VoiceUploadError::Duplicate(_))));
        for site in [one, two] {
            let sent = voices_in_log(&store, site);
            assert_eq!(sent.len(), 1);
            assert_eq!((sent[0].voice_id, sent[0].version, sent[0].deleted), (view.id as u64, 1, false));
            assert_eq!(hex::encode(sent[0].sha256), view.sha256);
            assert_eq!(sent[0].kind, VoiceKind::HoldMusic);
        }
        assert!(voices_in_log(&store, pending).is_empty(), "a site not yet enrolled is sent nothing yet");
        // The link offers the bytes to the sites.
        use sync_link::HubStore;
        assert_eq!(store.voice_files_for(one as u64).unwrap().len(), 1);

        let deleted = store.delete_voice_file(view.id).unwrap();
        assert_eq!((deleted.version, deleted.deleted), (2, true));
        assert!(matches!(store.delete_voice_file(view.id), Err(VoiceDeleteError::AlreadyDeleted(_))));
        assert!(matches!(store.delete_voice_file(999), Err(VoiceDeleteError::Unknown(999))));
        for site in [one, two] {
            let sent = voices_in_log(&store, site);
            assert_eq!(sent.iter().map(|v| (v.version, v.deleted)).collect::<Vec<_>>(), vec![(1, false), (2, true)]);
        }
        assert!(store.voice_files_for(one as u64).unwrap().is_empty());
        assert!(store.list_voice_files(false).unwrap().is_empty());
        assert_eq!(store.list_voice_files(true).unwrap().len(), 1);
        // A deleted file's name is free again.
        store.upload_voice_file(&upload("等待音乐", &bytes)).unwrap();
    }

    #[test]
    fn announcements_get_versions_and_reach_every_enrolled_site() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let one = enrolled_site(&store, "一号职场");
        let two = enrolled_site(&store, "二号职场");
        let text = |title: &'static str, expires_at| AnnouncementText { title, body: "今晚 20:00 系统维护", expires_at };

        assert!(matches!(store.post_announcement(&text(" ", None), "admin"), Err(AnnouncementError::EmptyTitle)));
        assert!(matches!(store.post_announcement(&text("维护", Some(1)), "admin"), Err(AnnouncementError::ExpiresTooEarly)));
        let long = "x".repeat(MAX_BODY_CHARS + 1);
        let too_long = AnnouncementText { title: "t", body: &long, expires_at: None };
        assert!(matches!(store.post_announcement(&too_long, "admin"), Err(AnnouncementError::BodyTooLong(_))));

        let posted = store.post_announcement(&text("系统维护通知", None), "admin").unwrap();
        assert_eq!((posted.version, posted.withdrawn, posted.created_by.as_str()), (1, false, "admin"));
        let later = now_unix() + 3600;
        let edited = store.edit_announcement(posted.id, &text("系统维护通知（更新）", Some(later))).unwrap();
        assert_eq!((edited.version, edited.published_at, edited.expires_at), (2, posted.published_at, Some(later)));
        let withdrawn = store.withdraw_announcement(posted.id).unwrap();
        assert_eq!((withdrawn.version, withdrawn.withdrawn), (3, true));
        assert!(matches!(store.withdraw_announcement(posted.id), Err(AnnouncementError::Withdrawn(_))));
        assert!(matches!(store.edit_announcement(posted.id, &text("x", None)), Err(AnnouncementError::Withdrawn(_))));
        assert!(matches!(store.edit_announcement(77, &text("x", None)), Err(AnnouncementError::Unknown(77))));
        for site in [one, two] {
            let sent = notices_in_log(&store, site);
            let seen: Vec<_> = sent.iter().map(|a| (a.version, a.title.as_str(), a.withdrawn)).collect();
            assert_eq!(seen, vec![(1, "系统维护通知", false), (2, "系统维护通知（更新）", false), (3, "系统维护通知（更新）", true)]);
        }
        assert_eq!(store.list_announcements().unwrap(), vec![withdrawn]);
    }

    #[test]
    fn a_site_enrolled_later_gets_the_current_library_and_live_announcements() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        enrolled_site(&store, "一号职场");
        let bytes = wav(6, 8, 1, 8000, 800);
        let kept = store.upload_voice_file(&VoiceUpload { kind: VoiceKind::Prompt, ..upload("提示音", &bytes) }).unwrap();
        let gone = store.upload_voice_file(&upload("旧音乐", &wav(1, 16, 1, 8000, 800))).unwrap();
        store.delete_voice_file(gone.id).unwrap();
        let live = store.post_announcement(&AnnouncementText { title: "欢迎", body: "", expires_at: None }, "admin").unwrap();
        let live = store.edit_announcement(live.id, &AnnouncementText { title: "欢迎加入", body: "", expires_at: None }).unwrap();
        let old = store.post_announcement(&AnnouncementText { title: "旧公告", body: "", expires_at: None }, "admin").unwrap();
        store.withdraw_announcement(old.id).unwrap();
        // An announcement that has expired by the time the site enrolls is not sent.
        let expiring = store
            .post_announcement(&AnnouncementText { title: "已过期", body: "", expires_at: Some(now_unix() + 60) }, "admin")
            .unwrap();
        store.conn().execute("UPDATE announcements SET expires_at = 1 WHERE id = ?1", [expiring.id]).unwrap();

        let late = store.create_site("新职场").unwrap();
        assert!(store.down_log(late, 0, 100).unwrap().is_empty());
        let code = store.create_enrollment_code(late).unwrap();
        store.redeem_code(&code.code, b"first box").unwrap();
        let voices = voices_in_log(&store, late);
        assert_eq!(voices.iter().map(|v| (v.voice_id, v.version, v.name.as_str(), v.kind)).collect::<Vec<_>>(), vec![(
            kept.id as u64,
            1,
            "提示音",
            VoiceKind::Prompt
        )]);
        let notices = notices_in_log(&store, late);
        assert_eq!(notices.iter().map(|a| (a.announcement_id, a.version, a.title.as_str())).collect::<Vec<_>>(), vec![(
            live.id as u64,
            2,
            "欢迎加入"
        )]);
        // Enrolling again (a replaced box) does not send them twice.
        store.retire_site_box(late, "admin").unwrap();
        let again = store.create_enrollment_code(late).unwrap();
        store.redeem_code(&again.code, b"second box").unwrap();
        assert_eq!(voices_in_log(&store, late).len(), 1);
        assert_eq!(notices_in_log(&store, late).len(), 1);
        // From now on the site is sent changes like the others.
        store.withdraw_announcement(live.id).unwrap();
        assert_eq!(notices_in_log(&store, late).last().map(|a| a.withdrawn), Some(true));
    }
}
