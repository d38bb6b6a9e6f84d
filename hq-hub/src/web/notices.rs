//! The voice library (语音库, module `cti.voice`) and announcements (公告管理, module
//! `notices`): their JSON API and console pages.
//!
//! - Only roles that include the module may use them; admins hold every module, so by
//!   default they are admin-only.
//! - Every change goes through the store, which writes it and every enrolled site's down-log
//!   entry in one transaction; nothing here talks to the sites.
//! - Times typed in the console (an announcement's expiry) are China Standard Time, like
//!   every time the console shows.

use askama::Template;
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::IntoDeserializer;
use serde::{Deserialize, Serialize};
use sync_protocol::VoiceKind;
use utoipa::ToSchema;

use super::extract::{ApiJson, ApiMultipart, ApiPath};
use super::pages::render;
use super::guard::{CtiVoice, Notices};
use super::{blocking, format_time, ApiError, AppState, ErrorBody, Module, PageUser, Tr};
use crate::store::{
    AnnouncementError, AnnouncementText, AnnouncementView, VoiceDeleteError, VoiceFileView, VoiceUpload,
    VoiceUploadError,
};

impl From<VoiceUploadError> for ApiError {
    fn from(err: VoiceUploadError) -> Self {
        match err {
            VoiceUploadError::EmptyName | VoiceUploadError::NameTooLong(_) | VoiceUploadError::UnknownKind(_) => {
                ApiError::bad_request(err.to_string())
            }
            VoiceUploadError::Duplicate(_) => ApiError::new(StatusCode::CONFLICT, err.to_string()),
            VoiceUploadError::TooLarge { .. } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, err.to_string()),
            VoiceUploadError::BadAudio { .. } => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, err.to_string()),
            VoiceUploadError::Blob(_) | VoiceUploadError::Encode(_) => ApiError::internal(err),
            VoiceUploadError::Db(e) => e.into(),
        }
    }
}

impl From<VoiceDeleteError> for ApiError {
    fn from(err: VoiceDeleteError) -> Self {
        match err {
            VoiceDeleteError::Unknown(_) => ApiError::not_found(err.to_string()),
            VoiceDeleteError::AlreadyDeleted(_) => ApiError::new(StatusCode::CONFLICT, err.to_string()),
            VoiceDeleteError::Encode(_) => ApiError::internal(err),
            VoiceDeleteError::Db(e) => e.into(),
        }
    }
}

impl From<AnnouncementError> for ApiError {
    fn from(err: AnnouncementError) -> Self {
        match err {
            AnnouncementError::EmptyTitle
            | AnnouncementError::TitleTooLong(_)
            | AnnouncementError::BodyTooLong(_)
            | AnnouncementError::ExpiresTooEarly => ApiError::bad_request(err.to_string()),
            AnnouncementError::Unknown(_) => ApiError::not_found(err.to_string()),
            AnnouncementError::Withdrawn(_) => ApiError::new(StatusCode::CONFLICT, err.to_string()),
            AnnouncementError::Encode(_) => ApiError::internal(err),
            AnnouncementError::Db(e) => e.into(),
        }
    }
}

// ---- JSON: voice library ----

/// The voice library.
#[derive(Serialize, ToSchema)]
pub struct VoiceFilesReply {
    pub voice_files: Vec<VoiceFileView>,
}

/// `GET /api/voice-files`: the library (not deleted), newest first.
#[utoipa::path(get, path = "/api/voice-files", tag = "voice",
    responses((status = 200, description = "The library", body = VoiceFilesReply)))]
pub async fn list_voice_files(State(state): State<AppState>, _caller: Module<CtiVoice>) -> Result<Json<VoiceFilesReply>, ApiError> {
    let voice_files = blocking(&state, |store| store.list_voice_files(false)).await??;
    Ok(Json(VoiceFilesReply { voice_files }))
}

/// A voice file's kind, as the upload form names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VoiceKindName {
    /// 等待音乐: a task may play it while a customer waits for an agent.
    HoldMusic,
    /// 提示音
    Prompt,
}

impl VoiceKindName {
    /// The kind a form field names (surrounding blanks ignored); an unknown one is the
    /// store's error, which names it.
    fn parse(key: &str) -> Result<Self, VoiceUploadError> {
        let key = key.trim();
        Self::deserialize(key.into_deserializer()).map_err(|_: serde::de::value::Error| VoiceUploadError::UnknownKind(key.to_string()))
    }
}

impl From<VoiceKindName> for VoiceKind {
    fn from(kind: VoiceKindName) -> Self {
        match kind {
            VoiceKindName::HoldMusic => VoiceKind::HoldMusic,
            VoiceKindName::Prompt => VoiceKind::Prompt,
        }
    }
}

/// The upload form of a voice file, as read and checked.
#[derive(ToSchema)]
pub struct VoiceUploadForm {
    /// The name sites show; the file's name (less its extension) if empty. At most 100
    /// characters.
    name: Option<String>,
    kind: VoiceKindName,
    /// The uploaded file's own name (from its part's header).
    #[schema(ignore)]
    file_name: String,
    /// A WAV file: mono 8000 Hz, G.711 µ-law / A-law or 16-bit PCM.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// A voice file after a change.
#[derive(Serialize, ToSchema)]
pub struct VoiceFileReply {
    pub voice_file: VoiceFileView,
    /// What was done, in Chinese and English.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Reads a voice upload: a file that is there and not empty, a known kind.
async fn read_voice_form(mut multipart: Multipart) -> Result<VoiceUploadForm, ApiError> {
    let (mut name, mut kind, mut file) = (None, None, None);
    let broken = |e: axum::extract::multipart::MultipartError| {
        ApiError::bad_request(format!(
            "the upload is not a valid multipart form ({e}): send fields \"name\", \"kind\" and the WAV in \"file\""
        ))
    };
    while let Some(field) = multipart.next_field().await.map_err(broken)? {
        match field.name() {
            Some("file") => {
                let file_name = field.file_name().unwrap_or("upload.wav").to_string();
                let bytes = field.bytes().await.map_err(broken)?;
                file = Some((file_name, bytes.to_vec()));
            }
            Some(key @ ("name" | "kind")) => {
                let key = key.to_string();
                let text = field.text().await.map_err(broken)?;
                if key == "name" {
                    name = Some(text);
                } else {
                    kind = Some(text);
                }
            }
            _ => {}
        }
    }
    let Some((file_name, file)) = file else {
        return Err(ApiError::bad_request("no file in the upload: send the WAV in a multipart field named \"file\""));
    };
    if file.is_empty() {
        return Err(ApiError::bad_request(format!("{file_name:?} is empty: choose the WAV file to upload")));
    }
    let kind = VoiceKindName::parse(kind.as_deref().unwrap_or_default())?;
    Ok(VoiceUploadForm { name, kind, file_name, file })
}

/// `POST /api/voice-files` (multipart: `name`, `kind` = `hold_music` | `prompt`, `file`):
/// checks the WAV, keeps it and sends it to every enrolled site.
#[utoipa::path(post, path = "/api/voice-files", tag = "voice",
    request_body(content = inline(VoiceUploadForm), content_type = "multipart/form-data"),
    responses((status = 200, description = "Kept and sent to every site", body = VoiceFileReply),
              (status = 400, description = "No file, an empty file, or a bad name or kind", body = ErrorBody),
              (status = 409, description = "A voice file of that name exists", body = ErrorBody),
              (status = 413, description = "The file is too large", body = ErrorBody),
              (status = 422, description = "The file is not a WAV the sites can play (why is in the message)", body = ErrorBody)))]
pub async fn upload_voice_file(
    State(state): State<AppState>,
    caller: Module<CtiVoice>,
    ApiMultipart(multipart): ApiMultipart,
) -> Result<Json<VoiceFileReply>, ApiError> {
    let VoiceUploadForm { name, kind, file_name, file: bytes } = read_voice_form(multipart).await?;
    let kind = VoiceKind::from(kind);
    // Without a name, the file's own name (less its extension) is the name sites see.
    let name = match name.filter(|n| !n.trim().is_empty()) {
        Some(name) => name,
        None => file_name.rsplit_once('.').map_or(file_name.as_str(), |(stem, _)| stem).to_string(),
    };
    let uploaded_by = caller.account.username.clone();
    let view = blocking(&state, move |store| {
        store.upload_voice_file(&VoiceUpload { name: &name, kind, file_name: &file_name, bytes: &bytes, uploaded_by: &uploaded_by })
    })
    .await??;
    let message = format!("已上传“{}”，已下发到各职场 / uploaded {:?} and sent to every site", view.name, view.name);
    Ok(Json(VoiceFileReply { voice_file: view, message: Some(message) }))
}

/// `POST /api/voice-files/{id}/delete`: a deleted version goes to every site.
#[utoipa::path(post, path = "/api/voice-files/{id}/delete", tag = "voice",
    params(("id" = i64, Path, description = "The voice file")),
    responses((status = 200, description = "Deleted; sites stop using it", body = VoiceFileReply),
              (status = 404, description = "No such voice file", body = ErrorBody),
              (status = 409, description = "Deleted already", body = ErrorBody)))]
pub async fn delete_voice_file(
    State(state): State<AppState>,
    _caller: Module<CtiVoice>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<VoiceFileReply>, ApiError> {
    let view = blocking(&state, move |store| store.delete_voice_file(id)).await??;
    Ok(Json(VoiceFileReply { voice_file: view, message: None }))
}

// ---- JSON: announcements ----

/// An expiry as the API takes it: unix seconds, or `YYYY-MM-DD HH:MM[:SS]` (also with a `T`,
/// as a browser's date-time field sends it) in China Standard Time, or empty for none.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Expiry {
    Unix(i64),
    Text(String),
}

/// Parses `YYYY-MM-DD[ T]HH:MM[:SS]` as China Standard Time.
fn parse_console_time(text: &str) -> Option<i64> {
    let (date, clock) = text.trim().split_once(['T', ' '])?;
    let mut date_parts = date.split('-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (date_parts.next()??, date_parts.next()??, date_parts.next()??);
    let mut clock_parts = clock.split(':').map(|p| p.parse::<u8>().ok());
    let (hour, minute) = (clock_parts.next()??, clock_parts.next()??);
    let second = clock_parts.next().unwrap_or(Some(0))?;
    if date_parts.next().is_some() || clock_parts.next().is_some() {
        return None;
    }
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()?;
    let clock = time::Time::from_hms(hour, minute, second).ok()?;
    let offset = time::UtcOffset::from_hms(8, 0, 0).ok()?;
    Some(time::PrimitiveDateTime::new(date, clock).assume_offset(offset).unix_timestamp())
}

impl Expiry {
    fn unix(expiry: Option<Expiry>) -> Result<Option<i64>, ApiError> {
        match expiry {
            None => Ok(None),
            Some(Expiry::Unix(at)) => Ok(Some(at)),
            Some(Expiry::Text(text)) if text.trim().is_empty() => Ok(None),
            Some(Expiry::Text(text)) => parse_console_time(&text).map(Some).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "expires_at {text:?} is not a time: give unix seconds or \"YYYY-MM-DD HH:MM\" (China Standard Time)"
                ))
            }),
        }
    }
}

/// The body of posting or editing an announcement.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AnnouncementBody {
    /// Required; at most 200 characters.
    pub title: String,
    /// At most 20 000 characters.
    #[serde(default)]
    pub body: String,
    /// `None` (or empty): shown until withdrawn.
    #[serde(default)]
    pub expires_at: Option<Expiry>,
}

/// Every announcement.
#[derive(Serialize, ToSchema)]
pub struct AnnouncementsReply {
    pub announcements: Vec<AnnouncementView>,
}

/// An announcement after a change.
#[derive(Serialize, ToSchema)]
pub struct AnnouncementReply {
    pub announcement: AnnouncementView,
    /// What was done, in Chinese and English.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `GET /api/announcements`: every announcement, newest first, withdrawn and expired marked.
#[utoipa::path(get, path = "/api/announcements", tag = "notices",
    responses((status = 200, description = "Every announcement", body = AnnouncementsReply)))]
pub async fn list_announcements(State(state): State<AppState>, _caller: Module<Notices>) -> Result<Json<AnnouncementsReply>, ApiError> {
    let announcements = blocking(&state, |store| store.list_announcements()).await??;
    Ok(Json(AnnouncementsReply { announcements }))
}

/// `POST /api/announcements`: posts one to every enrolled site.
#[utoipa::path(post, path = "/api/announcements", tag = "notices", request_body = AnnouncementBody,
    responses((status = 200, description = "Posted", body = AnnouncementReply),
              (status = 400, description = "The title is empty, a text is too long, or the expiry is not a later time", body = ErrorBody)))]
pub async fn post_announcement(
    State(state): State<AppState>,
    caller: Module<Notices>,
    ApiJson(body): ApiJson<AnnouncementBody>,
) -> Result<Json<AnnouncementReply>, ApiError> {
    let expires_at = Expiry::unix(body.expires_at)?;
    let by = caller.account.username.clone();
    let view = blocking(&state, move |store| {
        store.post_announcement(&AnnouncementText { title: &body.title, body: &body.body, expires_at }, &by)
    })
    .await??;
    Ok(Json(AnnouncementReply { announcement: view, message: Some("已发布 / posted".into()) }))
}

/// `POST /api/announcements/{id}`: replaces the title, text and expiry (a new version).
#[utoipa::path(post, path = "/api/announcements/{id}", tag = "notices", request_body = AnnouncementBody,
    params(("id" = i64, Path, description = "The announcement")),
    responses((status = 200, description = "Updated", body = AnnouncementReply),
              (status = 400, description = "The title is empty, a text is too long, or the expiry is not a later time", body = ErrorBody),
              (status = 404, description = "No such announcement", body = ErrorBody),
              (status = 409, description = "It was withdrawn", body = ErrorBody)))]
pub async fn edit_announcement(
    State(state): State<AppState>,
    _caller: Module<Notices>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<AnnouncementBody>,
) -> Result<Json<AnnouncementReply>, ApiError> {
    let expires_at = Expiry::unix(body.expires_at)?;
    let view = blocking(&state, move |store| {
        store.edit_announcement(id, &AnnouncementText { title: &body.title, body: &body.body, expires_at })
    })
    .await??;
    Ok(Json(AnnouncementReply { announcement: view, message: Some("已更新 / updated".into()) }))
}

/// `POST /api/announcements/{id}/withdraw`: sites stop showing it.
#[utoipa::path(post, path = "/api/announcements/{id}/withdraw", tag = "notices",
    params(("id" = i64, Path, description = "The announcement")),
    responses((status = 200, description = "Withdrawn", body = AnnouncementReply),
              (status = 404, description = "No such announcement", body = ErrorBody),
              (status = 409, description = "Withdrawn already", body = ErrorBody)))]
pub async fn withdraw_announcement(
    State(state): State<AppState>,
    _caller: Module<Notices>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<AnnouncementReply>, ApiError> {
    let view = blocking(&state, move |store| store.withdraw_announcement(id)).await??;
    Ok(Json(AnnouncementReply { announcement: view, message: None }))
}

// ---- pages ----

struct VoiceRow {
    id: i64,
    name: String,
    kind: &'static str,
    size: String,
    seconds: String,
    uploaded_at: String,
    uploaded_by: String,
}

#[derive(Template)]
#[template(path = "voice.html")]
struct VoicePage {
    tr: Tr,
    user: String,
    rows: Vec<VoiceRow>,
}

/// Bytes as the console shows sizes: `512 B`, `12.3 KB`, `1.5 MB`.
fn size_text(bytes: i64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KB", b as f64 / 1024.0),
        b => format!("{:.1} MB", b as f64 / (1024.0 * 1024.0)),
    }
}

fn voice_row(tr: Tr, view: VoiceFileView) -> VoiceRow {
    VoiceRow {
        id: view.id,
        kind: if view.kind == "hold_music" { tr.text().voice_hold_music } else { tr.text().voice_prompt },
        size: size_text(view.size),
        seconds: format!("{:.1}", view.duration_ms as f64 / 1000.0),
        uploaded_at: super::shell::minute(view.uploaded_at),
        uploaded_by: view.uploaded_by,
        name: view.name,
    }
}

/// `GET /voice`: 语音库.
pub async fn voice_page(State(state): State<AppState>, user: PageUser) -> Response {
    let files = match blocking(&state, |store| store.list_voice_files(false)).await {
        Ok(Ok(files)) => files,
        Ok(Err(err)) => return ApiError::from(err).into_response(),
        Err(err) => return err.into_response(),
    };
    let tr = user.tr;
    render(&VoicePage { tr, user: user.account.username, rows: files.into_iter().map(|f| voice_row(tr, f)).collect() })
}

struct NoticeRow {
    id: i64,
    version: i64,
    title: String,
    body: String,
    published_at: String,
    /// For the list: a time or "不过期".
    expires_text: String,
    /// For the edit form's date-time field: `YYYY-MM-DDTHH:MM` or empty.
    expires_input: String,
    /// `live`, `expired` or `withdrawn` (a CSS class too).
    state: &'static str,
    state_text: &'static str,
    created_by: String,
}

#[derive(Template)]
#[template(path = "announcements.html")]
struct NoticesPage {
    tr: Tr,
    user: String,
    rows: Vec<NoticeRow>,
}

fn notice_row(tr: Tr, view: AnnouncementView) -> NoticeRow {
    let (state, state_text) = if view.withdrawn {
        ("withdrawn", tr.text().notices_withdrawn)
    } else if view.expired {
        ("expired", tr.text().notices_expired)
    } else {
        ("live", tr.text().notices_live)
    };
    NoticeRow {
        id: view.id,
        version: view.version,
        published_at: super::shell::minute(view.published_at),
        expires_text: view.expires_at.map_or_else(|| tr.text().notices_no_expiry.to_string(), super::shell::minute),
        // format_time gives "YYYY-MM-DD HH:MM:SS"; the field takes "YYYY-MM-DDTHH:MM".
        expires_input: view.expires_at.map(|at| format_time(at).replacen(' ', "T", 1).chars().take(16).collect()).unwrap_or_default(),
        state,
        state_text,
        created_by: view.created_by,
        title: view.title,
        body: view.body,
    }
}

/// `GET /announcements`: 公告管理.
pub async fn announcements_page(State(state): State<AppState>, user: PageUser) -> Response {
    let notices = match blocking(&state, |store| store.list_announcements()).await {
        Ok(Ok(notices)) => notices,
        Ok(Err(err)) => return ApiError::from(err).into_response(),
        Err(err) => return err.into_response(),
    };
    let tr = user.tr;
    render(&NoticesPage { tr, user: user.account.username, rows: notices.into_iter().map(|n| notice_row(tr, n)).collect() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_times_are_china_standard_time() {
        assert_eq!(parse_console_time("1970-01-01T08:00"), Some(0));
        assert_eq!(parse_console_time("2026-11-24 20:30:15"), Some(1_795_523_415));
        assert_eq!(format_time(1_795_523_415), "2026-11-24 20:30:15");
        for bad in ["", "2026-11-24", "2026-13-01 10:00", "2026-11-24 25:00", "tomorrow 10:00", "2026-11-24 10:00:00:00"] {
            assert_eq!(parse_console_time(bad), None, "{bad}");
        }
        assert!(matches!(Expiry::unix(Some(Expiry::Text(" ".into()))), Ok(None)));
        assert!(matches!(Expiry::unix(Some(Expiry::Unix(5))), Ok(Some(5))));
        assert!(Expiry::unix(Some(Expiry::Text("next week".into()))).is_err());
        assert_eq!(size_text(512), "512 B");
        assert_eq!(size_text(16_044), "15.7 KB");
    }

    /// The form's kinds are the store's: every key the store knows reads as the same kind.
    #[test]
    fn form_kinds_are_the_stores() {
        for key in ["hold_music", " prompt ", "music", "", "HoldMusic"] {
            let form = VoiceKindName::parse(key).map(VoiceKind::from).map_err(|e| e.to_string());
            let store = crate::store::parse_voice_kind(key).map_err(|e| e.to_string());
            assert_eq!(form, store, "{key:?}");
        }
    }
}
