//! What HQ publishes to the whole site: the voice library (语音库: hold music and prompts)
//! and announcements (公告) for the site's staff.
//!
//! - Voice files ([`DownEvent::VoiceFile`], versioned per file): the down log carries only the
//!   name, kind, size and SHA-256; the bytes follow on a blob stream of their own into
//!   `<data>/voice/<sha256>` (a partial file is `<sha256>.part` until its hash checks out, so
//!   a cut link resumes and a damaged copy is never played). A task's hold music (等待音乐)
//!   names a voice file; until its bytes are here, or after HQ deletes it, callers hear the
//!   box's own hold audio.
//! - Announcements ([`DownEvent::Announcement`], versioned per notice): an edit replaces
//!   the text, a withdrawal hides it; expired ones are not shown.
//!
//! [`DownEvent::VoiceFile`]: sync_protocol::DownEvent::VoiceFile
//! [`DownEvent::Announcement`]: sync_protocol::DownEvent::Announcement

use std::path::PathBuf;

use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;
use sync_link::blob::{BlobCheck, BlobDir};
use sync_protocol::{Announcement, VoiceFile, VoiceKind};

use super::{DbError, Store, hex_of};

/// A voice file as the site's pages list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct VoiceFileView {
    pub voice_id: u64,
    pub name: String,
    /// `hold_music`, `prompt`, or `other` (a kind a newer hub sent).
    pub kind: &'static str,
    pub size: u64,
    /// The bytes have arrived and checked out: it can be played.
    pub held: bool,
}

/// An announcement as the site's staff see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AnnouncementView {
    pub announcement_id: u64,
    pub title: String,
    pub body: String,
    pub published_at: i64,
    pub expires_at: Option<i64>,
}

fn kind_name(kind: &VoiceKind) -> &'static str {
    match kind {
        VoiceKind::HoldMusic => "hold_music",
        VoiceKind::Prompt => "prompt",
        // A kind a newer hub knows: never offered as hold music.
        _ => "other",
    }
}

/// Applies a voice file change unless an equal or newer version is already held.
pub(super) fn apply_voice_file(tx: &Transaction<'_>, voice: &VoiceFile) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO voice_files (voice_id, version, name, kind, sha256, size, deleted)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (voice_id) DO UPDATE SET version = excluded.version, name = excluded.name,
             kind = excluded.kind, sha256 = excluded.sha256, size = excluded.size, deleted = excluded.deleted
         WHERE excluded.version > voice_files.version",
        params![
            voice.voice_id,
            voice.version,
            voice.name,
            kind_name(&voice.kind),
            hex_of(&voice.sha256),
            voice.size,
            voice.deleted
        ],
    )?;
    Ok(())
}

/// Applies an announcement unless an equal or newer version is already held.
pub(super) fn apply_announcement(tx: &Transaction<'_>, notice: &Announcement) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO announcements (announcement_id, version, title, body, published_at, expires_at, withdrawn)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (announcement_id) DO UPDATE SET version = excluded.version, title = excluded.title,
             body = excluded.body, published_at = excluded.published_at, expires_at = excluded.expires_at,
             withdrawn = excluded.withdrawn
         WHERE excluded.version > announcements.version",
        params![
            notice.announcement_id,
            notice.version,
            notice.title,
            notice.body,
            notice.published_at,
            notice.expires_at,
            notice.withdrawn
        ],
    )?;
    Ok(())
}

impl Store {
    /// Where voice files' bytes live: `<data>/voice`.
    pub(super) fn voice_dir(&self) -> std::io::Result<BlobDir> {
        let data_dir = self.path.parent().map(PathBuf::from).unwrap_or_default();
        BlobDir::new(data_dir.join("voice"))
    }

    /// The voice library HQ sent, deleted files left out, by name.
    pub fn voice_files(&self) -> Result<Vec<VoiceFileView>, DbError> {
        let rows: Vec<(u64, String, String, String, u64)> = {
            let conn = self.lock();
            let mut statement = conn.prepare(
                "SELECT voice_id, name, kind, sha256, size FROM voice_files WHERE NOT deleted ORDER BY name, voice_id",
            )?;
            statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)))?
                .collect::<Result<_, _>>()?
        };
        let dir = self.voice_dir().ok();
        Ok(rows
            .into_iter()
            .map(|(voice_id, name, kind, sha256, size)| VoiceFileView {
                voice_id,
                name,
                kind: match kind.as_str() {
                    "hold_music" => "hold_music",
                    "prompt" => "prompt",
                    _ => "other",
                },
                size,
                held: dir.as_ref().zip(sha_of(&sha256)).is_some_and(|(dir, sha)| dir.has(&sha)),
            })
            .collect())
    }

    /// The file to play for hold music `voice_id`, once its bytes are here; `None` when it
    /// is unknown, deleted, a prompt, or still on its way.
    pub fn hold_music_file(&self, voice_id: u64) -> Result<Option<(PathBuf, String)>, DbError> {
        let sha: Option<String> = self
            .lock()
            .query_row(
                "SELECT sha256 FROM voice_files WHERE voice_id = ?1 AND NOT deleted AND kind = 'hold_music'",
                [voice_id],
                |row| row.get(0),
            )
            .optional()?;
        let Some(sha) = sha.and_then(|hex| sha_of(&hex).map(|sha| (sha, hex))) else {
            return Ok(None);
        };
        let Ok(dir) = self.voice_dir() else { return Ok(None) };
        Ok(dir.has(&sha.0).then(|| (dir.path_of(&sha.0), sha.1)))
    }

    /// Whether `voice_id` is hold music HQ sent and has not deleted (a task may choose it).
    pub fn is_hold_music(&self, voice_id: u64) -> Result<bool, DbError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT 1 FROM voice_files WHERE voice_id = ?1 AND NOT deleted AND kind = 'hold_music'",
                [voice_id],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Announcements to show at `now` (unix seconds): not withdrawn, not expired, newest first.
    pub fn announcements(&self, now: i64) -> Result<Vec<AnnouncementView>, DbError> {
        let conn = self.lock();
        let mut statement = conn.prepare(
            "SELECT announcement_id, title, body, published_at, expires_at FROM announcements
             WHERE NOT withdrawn AND (expires_at IS NULL OR expires_at > ?1)
             ORDER BY published_at DESC, announcement_id DESC",
        )?;
        let views = statement
            .query_map([now], |row| {
                Ok(AnnouncementView {
                    announcement_id: row.get(0)?,
                    title: row.get(1)?,
                    body: row.get(2)?,
                    published_at: row.get(3)?,
                    expires_at: row.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(views)
    }

    /// Where the voice file of SHA-256 `hex` lies, once its bytes are here and checked.
    pub(super) fn held_voice(&self, hex: &str) -> Option<PathBuf> {
        let sha = sha_of(hex)?;
        let dir = self.voice_dir().ok()?;
        dir.has(&sha).then(|| dir.path_of(&sha))
    }

    /// Bytes of voice file `sha256` held so far (its full size once complete).
    pub(super) fn voice_held_bytes(&self, sha256: &[u8; 32]) -> std::io::Result<u64> {
        self.voice_dir()?.held(sha256)
    }

    pub(super) fn voice_append_bytes(&self, sha256: &[u8; 32], offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        self.voice_dir()?.append(sha256, offset, bytes)
    }

    pub(super) fn voice_finish_bytes(&self, sha256: &[u8; 32]) -> std::io::Result<BlobCheck> {
        let check = self.voice_dir()?.finish(sha256)?;
        tracing::info!(sha = %hex_of(sha256), ?check, "voice file received");
        Ok(check)
    }
}

fn sha_of(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(hex).ok()?;
    bytes.try_into().ok()
}
