//! Blobs and latest values on the hub's side of the link: recordings received from sites,
//! voice files sent to them, and each site's live figures.
//!
//! - Recordings live under `<data>/recordings/site-<id>/<sha256>` ([`BlobDir`]): a partial
//!   upload is `<sha256>.part` until its hash checks out, so a broken link resumes where it
//!   stopped and a damaged copy is never kept. Each site has its own directory, so a site can
//!   only ever add to (or resume) its own recordings. A verified one is also listed in
//!   `site_recordings` for the console.
//! - HQ can ask an online site for a recording before its turn ([`Store::request_recording`]).
//! - Voice files live under `<data>/voice/<sha256>`; a site is told about one through its
//!   down log ([`Store::send_voice_file`]) and the link then pushes the bytes.
//! - Live figures are a latest value per site (`site_live_figures`), replaced on each update.

use std::path::PathBuf;

use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use sync_link::blob::{BlobCheck, BlobDir, BlobRef, OpenBlob};
use sync_link::server::RecordingRequests;
use sync_link::StoreResult;
use sync_protocol::{DownEvent, LiveFigures, SiteId, VoiceFile};

use super::down::append_down;
use super::link::{other, site_key};
use super::{now_unix, DbError, Store};

/// The latest live figures a site sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveFiguresView {
    pub site_id: i64,
    /// When HQ received them (unix seconds); the site's own time is in `figures.taken_at_ms`.
    pub received_at: i64,
    pub figures: LiveFigures,
}

/// What asking for a recording came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordingFetch {
    /// HQ already holds it, verified, at this path.
    Held(PathBuf),
    /// The site is online and was asked to upload it now; poll [`Store::recording_path`].
    Requested,
    /// The site is offline; the recording comes in its turn once the site reconnects.
    SiteOffline,
}

/// Why a recording request could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RecordingRequestError {
    /// The hash is not 64 hex digits.
    #[error("\"{0}\" is not a recording hash: expected 64 hex digits (SHA-256)")]
    BadHash(String),
    /// Reading the recordings directory failed.
    #[error("cannot read the recordings directory: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a voice file could not be stored or announced.
#[derive(Debug, thiserror::Error)]
pub enum VoiceFileError {
    /// Writing the file under the hub's data directory failed.
    #[error("cannot store the voice file: {0}; check the disk under the hub's data directory")]
    Io(#[from] std::io::Error),
    /// The announced hash or size does not match a stored voice file.
    #[error("voice file {0} is not stored at HQ (or its size differs); store its bytes first")]
    NotStored(String),
    /// A chosen site does not exist.
    #[error("site {0} does not exist: choose an existing site")]
    UnknownSite(i64),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for VoiceFileError {
    fn from(e: rusqlite::Error) -> Self {
        VoiceFileError::Db(DbError(e))
    }
}

fn parse_sha(text: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(text.trim()).ok()?;
    bytes.try_into().ok()
}

impl Store {
    /// The hub's data directory (the parent of `files/`).
    fn data_dir(&self) -> PathBuf {
        self.files_dir().parent().map(PathBuf::from).unwrap_or_else(|| self.files_dir().to_path_buf())
    }

    /// `site`'s recordings directory (created on first use).
    fn recordings_of(&self, site: SiteId) -> std::io::Result<BlobDir> {
        BlobDir::new(self.data_dir().join("recordings").join(format!("site-{site}")))
    }

    fn voice_dir(&self) -> std::io::Result<BlobDir> {
        BlobDir::new(self.data_dir().join("voice"))
    }

    pub(super) fn recording_held_bytes(&self, site: SiteId, sha256: &[u8; 32]) -> StoreResult<u64> {
        self.recordings_of(site).and_then(|dir| dir.held(sha256)).map_err(other)
    }

    pub(super) fn recording_append_bytes(
        &self,
        site: SiteId,
        sha256: &[u8; 32],
        offset: u64,
        bytes: &[u8],
    ) -> StoreResult<()> {
        self.recordings_of(site).and_then(|dir| dir.append(sha256, offset, bytes)).map_err(other)
    }

    pub(super) fn recording_check(&self, site: SiteId, sha256: &[u8; 32]) -> StoreResult<BlobCheck> {
        let dir = self.recordings_of(site).map_err(other)?;
        let check = dir.finish(sha256).map_err(other)?;
        if check == BlobCheck::Accepted {
            let size = dir.held(sha256).map_err(other)?;
            let site = site_key(site)?;
            self.conn()
                .execute(
                    "INSERT INTO site_recordings (site_id, sha256, size, received_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (site_id, sha256) DO NOTHING",
                    params![site, hex::encode(sha256), i64::try_from(size).map_err(other)?, now_unix()],
                )
                .map_err(other)?;
        }
        Ok(check)
    }

    /// Where HQ keeps `site_id`'s verified recording `sha256_hex`, if it holds it.
    pub fn recording_path(&self, site_id: i64, sha256_hex: &str) -> Result<Option<PathBuf>, RecordingRequestError> {
        let sha = parse_sha(sha256_hex).ok_or_else(|| RecordingRequestError::BadHash(sha256_hex.to_owned()))?;
        let Ok(site) = u64::try_from(site_id) else { return Ok(None) };
        let dir = self.recordings_of(site)?;
        Ok(dir.has(&sha).then(|| dir.path_of(&sha)))
    }

    /// The console's "fetch now": if HQ holds the recording, where; otherwise ask the site
    /// (through the sync server's `requests` handle) to upload it before its turn.
    pub fn request_recording(
        &self,
        requests: &RecordingRequests,
        site_id: i64,
        sha256_hex: &str,
    ) -> Result<RecordingFetch, RecordingRequestError> {
        if let Some(path) = self.recording_path(site_id, sha256_hex)? {
            return Ok(RecordingFetch::Held(path));
        }
        let sha = parse_sha(sha256_hex).ok_or_else(|| RecordingRequestError::BadHash(sha256_hex.to_owned()))?;
        let Ok(site) = u64::try_from(site_id) else { return Ok(RecordingFetch::SiteOffline) };
        Ok(if requests.request(site, sha) { RecordingFetch::Requested } else { RecordingFetch::SiteOffline })
    }

    pub(super) fn store_live_figures(&self, site: SiteId, figures: &LiveFigures) -> Result<(), String> {
        let site = i64::try_from(site).map_err(|e| e.to_string())?;
        let json = serde_json::to_string(figures).map_err(|e| e.to_string())?;
        self.conn()
            .execute(
                "INSERT INTO site_live_figures (site_id, taken_at_ms, received_at, figures) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (site_id) DO UPDATE SET taken_at_ms = excluded.taken_at_ms,
                     received_at = excluded.received_at, figures = excluded.figures
                 WHERE excluded.taken_at_ms >= site_live_figures.taken_at_ms",
                params![site, figures.taken_at_ms, now_unix(), json],
            )
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Every site's latest live figures, by site.
    pub fn live_figures_all(&self) -> Result<Vec<LiveFiguresView>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT site_id, received_at, figures FROM site_live_figures ORDER BY site_id")?;
        let rows = stmt
            .query_map([], |r| {
                let json: String = r.get(2)?;
                let figures = serde_json::from_str(&json).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
                })?;
                Ok(LiveFiguresView { site_id: r.get(0)?, received_at: r.get(1)?, figures })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// One site's latest live figures, if it ever sent any.
    pub fn live_figures_of(&self, site_id: i64) -> Result<Option<LiveFiguresView>, DbError> {
        Ok(self.live_figures_all()?.into_iter().find(|view| view.site_id == site_id))
    }

    /// Keep a voice file's bytes at HQ (idempotent: the same bytes are stored once).
    pub fn store_voice_blob(&self, bytes: &[u8]) -> Result<BlobRef, VoiceFileError> {
        Ok(self.voice_dir()?.put(bytes)?)
    }

    /// Tell each of `site_ids` about `voice` (stored first with [`Store::store_voice_blob`])
    /// through its down log; the link then pushes the bytes to each site.
    pub fn send_voice_file(&self, site_ids: &[i64], voice: &VoiceFile) -> Result<(), VoiceFileError> {
        let dir = self.voice_dir()?;
        if !voice.deleted && dir.held(&voice.sha256)? != voice.size {
            return Err(VoiceFileError::NotStored(hex::encode(voice.sha256)));
        }
        {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            for &site in site_ids {
                let exists: Option<i64> =
                    tx.query_row("SELECT id FROM sites WHERE id = ?1", [site], |r| r.get(0)).optional()?;
                if exists.is_none() {
                    return Err(VoiceFileError::UnknownSite(site));
                }
                append_down(&tx, site, &DownEvent::VoiceFile(voice.clone()))
                    .map_err(|e| VoiceFileError::Io(std::io::Error::other(e.to_string())))?;
            }
            tx.commit()?;
        }
        for &site in site_ids {
            self.down_notify_for(site as u64).notify_one();
        }
        Ok(())
    }

    /// Voice files `site` should hold: the newest version of each voice its down log names,
    /// unless deleted.
    pub(super) fn voice_files_of(&self, site: SiteId) -> StoreResult<Vec<BlobRef>> {
        let site = site_key(site)?;
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT event FROM down_log WHERE site_id = ?1 AND event LIKE '{\"VoiceFile\"%' ORDER BY seq")
            .map_err(other)?;
        let events = stmt
            .query_map([site], |r| r.get::<_, String>(0))
            .map_err(other)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(other)?;
        let mut latest: std::collections::BTreeMap<u64, VoiceFile> = std::collections::BTreeMap::new();
        for json in events {
            if let Ok(DownEvent::VoiceFile(voice)) = serde_json::from_str::<DownEvent>(&json) {
                let newer = latest.get(&voice.voice_id).is_none_or(|held| voice.version > held.version);
                if newer {
                    latest.insert(voice.voice_id, voice);
                }
            }
        }
        Ok(latest
            .into_values()
            .filter(|voice| !voice.deleted)
            .map(|voice| BlobRef { sha256: voice.sha256, size: voice.size })
            .collect())
    }

    pub(super) fn open_voice_blob(&self, sha256: &[u8; 32]) -> StoreResult<Option<OpenBlob>> {
        self.voice_dir().and_then(|dir| dir.open(sha256)).map_err(other)
    }
}
