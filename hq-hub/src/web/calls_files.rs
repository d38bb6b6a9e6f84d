//! The files of the call records: a call's recording (played with HTTP range requests so
//! the browser's seek bar works, or downloaded), asking the site for it on demand, the
//! filtered list as `.xlsx` and the filtered recordings as a streamed zip.
//!
//! - A recording is addressed by its call, never by a hash the client brings: the hash is
//!   the one the site sent with the call, and the file is the one HQ verified against it.
//! - Asking the site goes over the link's "want recording" frame (`RecordingRequests`,
//!   `Frame::WantRecording`): the site uploads that recording next on a stream of its own.
//!   An offline site is said to be offline; the recording then comes in its turn.
//! - Exports read the list page by page through the same keyset search as the page, so
//!   memory stays flat; the zip is written on a blocking thread into a channel the response
//!   body streams from.

use std::io::Write;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rust_xlsxwriter::{Format, Workbook};
use serde::Deserialize;
use tower::ServiceExt;

use super::api::{FetchReply, FileBytes, RecordingState};
use super::calls::{call_row, visible_call, Filter};
use super::extract::{text, ApiPath};
use super::guard::{DataRecordings, SiteCalls};
use super::{blocking, format_time, ApiError, AppState, ErrorBody, Module, Tr};
use crate::store::{CallQuery, CallView, RecordingFetch, Scope, MAX_CALL_PAGE};

/// Excel's last row: a longer list is refused with a word to narrow the filter.
const MAX_XLSX_ROWS: usize = 1_048_575;

/// At most this many recordings in one zip.
const MAX_ZIP_FILES: usize = 10_000;

/// `?download=1` asks for the file as an attachment.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadParam {
    /// `1`: save the file instead of playing it.
    #[serde(default)]
    pub download: Option<String>,
}

fn not_held(tr: Tr) -> ApiError {
    ApiError::not_found(text(
        tr,
        "HQ does not hold this call's recording yet: ask the site for it with POST …/recording/fetch",
        "总控尚未收到该通话的录音：请先从职场取回（POST …/recording/fetch）",
    ))
}

fn not_recorded(tr: Tr) -> ApiError {
    ApiError::not_found(text(tr, "this call was not recorded", "该通话没有录音"))
}

/// `GET /api/sites/{id}/calls/{attempt}/recording`: the call's WAV, with range requests
/// (206 for `Range: bytes=…`), inline unless `?download=1`.
#[utoipa::path(get, path = "/api/sites/{id}/calls/{attempt}/recording", tag = "calls",
    params(("id" = i64, Path, description = "The site"), ("attempt" = i64, Path, description = "The site's id of the call"), DownloadParam),
    responses((status = 200, description = "The recording", body = FileBytes, content_type = "audio/wav"),
              (status = 206, description = "The requested byte range of the recording", body = FileBytes, content_type = "audio/wav"),
              (status = 404, description = "No such call, it was not recorded, or HQ does not hold the recording yet", body = ErrorBody),
              (status = 416, description = "The range lies outside the recording", body = ErrorBody)))]
pub async fn recording(
    State(state): State<AppState>,
    caller: Module<DataRecordings>,
    ApiPath((site, attempt)): ApiPath<(i64, i64)>,
    Query(param): Query<DownloadParam>,
    request: Request,
) -> Result<Response, ApiError> {
    let tr = caller.tr;
    let call = visible_call(&state, tr, caller.scope.clone(), site, attempt).await?;
    let sha = call.recording.ok_or_else(|| not_recorded(tr))?.sha256;
    let lookup = sha.clone();
    let path = blocking(&state, move |store| store.recording_path(site, &lookup))
        .await?
        .map_err(|err| ApiError::internal(format!("call {site}/{attempt}: {err}")))?
        .ok_or_else(|| not_held(tr))?;
    // tower-http answers Range, If-Range and HEAD as RFC 9110 says; only the type and the
    // name are ours (the file is named by its hash, without an extension).
    let served = tower_http::services::ServeFile::new(path).oneshot(request).await.map_err(ApiError::internal)?;
    let mut response = served.map(Body::new);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    let name = format!("call-{site}-{attempt}.wav");
    let disposition = if param.download.as_deref() == Some("1") { "attachment" } else { "inline" };
    if let Ok(value) = HeaderValue::from_str(&format!("{disposition}; filename=\"{name}\"")) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, value);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=3600"));
    Ok(response)
}

/// `POST /api/sites/{id}/calls/{attempt}/recording/fetch`: HQ holds the call's recording
/// (`held`), or the online site was asked to upload it now (`requested`: poll the call until
/// its recording is `held`), or the site is offline and the recording comes once it
/// reconnects (`site_offline`).
#[utoipa::path(post, path = "/api/sites/{id}/calls/{attempt}/recording/fetch", tag = "calls",
    params(("id" = i64, Path, description = "The site"), ("attempt" = i64, Path, description = "The site's id of the call")),
    responses((status = 200, description = "Where the recording is", body = FetchReply),
              (status = 404, description = "No such call, or it was not recorded", body = ErrorBody)))]
pub async fn fetch(State(state): State<AppState>, caller: Module<DataRecordings>, ApiPath((site, attempt)): ApiPath<(i64, i64)>) -> Result<Json<FetchReply>, ApiError> {
    let tr = caller.tr;
    let call = visible_call(&state, tr, caller.scope.clone(), site, attempt).await?;
    let sha = call.recording.ok_or_else(|| not_recorded(tr))?.sha256;
    let requests = state.recordings.clone();
    let fetched = blocking(&state, move |store| store.request_recording(&requests, site, &sha))
        .await?
        .map_err(|err| ApiError::internal(format!("call {site}/{attempt}: {err}")))?;
    let state = match fetched {
        RecordingFetch::Held(_) => RecordingState::Held,
        RecordingFetch::Requested => RecordingState::Requested,
        RecordingFetch::SiteOffline => RecordingState::SiteOffline,
    };
    Ok(Json(FetchReply { state }))
}

/// Every call of `query` for `scope`, page by page, to `each`; stops early (answering
/// `false`) when `each` says so.
fn each_call(store: &crate::store::Store, query: &CallQuery, scope: &Scope, mut each: impl FnMut(&CallView) -> bool) -> Result<bool, crate::store::DbError> {
    let mut query = CallQuery { limit: MAX_CALL_PAGE, after: None, ..query.clone() };
    loop {
        let page = store.search_calls(&query, scope)?;
        for call in &page.calls {
            if !each(call) {
                return Ok(false);
            }
        }
        match page.next {
            Some(next) => query.after = Some(next),
            None => return Ok(true),
        }
    }
}

/// The export's columns, in the caller's language.
fn headers(tr: Tr) -> [&'static str; 17] {
    let t = tr.text();
    [
        t.calls_started, t.calls_site, t.calls_project, t.calls_batch, t.calls_phone, t.calls_agent, t.calls_extension, t.calls_direction, t.calls_kind,
        t.calls_outcome, t.calls_hangup, t.calls_answered, t.calls_ended, t.calls_talk, t.calls_recording, t.calls_record, t.calls_attempt,
    ]
}

/// The calls as one sheet: words, not keys; China time.
fn calls_xlsx(tr: Tr, store: &crate::store::Store, query: &CallQuery, scope: &Scope) -> Result<Result<Vec<u8>, String>, ApiError> {
    let mut workbook = Workbook::new();
    workbook.set_tempdir(std::env::temp_dir()).map_err(ApiError::internal)?;
    let bold = Format::new().set_bold();
    let sheet = workbook.add_worksheet_with_constant_memory();
    for (col, title) in headers(tr).iter().enumerate() {
        sheet.write_with_format(0, col as u16, *title, &bold).map_err(ApiError::internal)?;
    }
    let mut line = 0usize;
    let mut failure = None;
    let complete = each_call(store, query, scope, |call| {
        line += 1;
        if line > MAX_XLSX_ROWS {
            return false;
        }
        let row = call_row(tr, call);
        let record = row.record.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join("; ");
        let site = if row.site.is_empty() { call.site_id.to_string() } else { row.site.clone() };
        let cells: [String; 17] = [
            row.started, site, row.project, row.batch, row.phone, row.agent, row.extension, row.direction.into(), row.kind.into(), row.outcome.into(),
            row.hangup.into(), row.answered, row.ended, row.talk.to_string(), row.recording.into(), record,
            format!("{}/{}", call.site_id, call.attempt_id),
        ];
        for (col, cell) in cells.iter().enumerate() {
            if let Err(err) = sheet.write(line as u32, col as u16, cell.as_str()) {
                failure = Some(err);
                return false;
            }
        }
        true
    })?;
    if let Some(err) = failure {
        return Err(ApiError::internal(err));
    }
    if !complete {
        return Ok(Err(text(
            tr,
            &format!("more than {MAX_XLSX_ROWS} calls match, more than a sheet holds: narrow the filter (e.g. the time range)"),
            &format!("符合条件的通话超过 {MAX_XLSX_ROWS} 条，超出一张表的上限：请缩小查询条件（如时间范围）"),
        )));
    }
    sheet.set_column_width(0, 20).map_err(ApiError::internal)?;
    sheet.set_column_width(14, 40).map_err(ApiError::internal)?;
    Ok(Ok(workbook.save_to_buffer().map_err(ApiError::internal)?))
}

/// `GET /api/calls/export.xlsx`: every call the filter finds (all pages), as a workbook.
#[utoipa::path(get, path = "/api/calls/export.xlsx", tag = "calls", params(Filter),
    responses((status = 200, description = "The calls as a workbook", body = FileBytes,
               content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
              (status = 400, description = "A filter value is not valid, or more calls match than a sheet holds", body = ErrorBody)))]
pub async fn export_xlsx(State(state): State<AppState>, caller: Module<SiteCalls>, Query(filter): Query<Filter>) -> Result<FileBytes, ApiError> {
    let tr = caller.tr;
    let query = filter.query(tr).map_err(ApiError::bad_request)?;
    let scope = caller.scope.clone();
    let bytes = blocking(&state, move |store| calls_xlsx(tr, store, &query, &scope)).await??.map_err(ApiError::bad_request)?;
    let name = if tr.is_en() { "calls.xlsx" } else { "通话记录.xlsx" };
    Ok(FileBytes { content_type: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", file_name: name.into(), bytes })
}

/// A `Write` that hands what it is given to the response body, chunk by chunk.
struct ChannelWriter(tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.blocking_send(Ok(buf.to_vec())).map_err(|_| std::io::Error::other("the client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes the zip of `query`'s recordings into `out`: each recording HQ holds as
/// `<started, China time>_<site>-<call>.wav`, and a note naming those it does not hold yet.
fn write_zip(tr: Tr, store: &crate::store::Store, query: &CallQuery, scope: &Scope, out: ChannelWriter) -> Result<(), String> {
    let mut zip = zip::ZipWriter::new_stream(std::io::BufWriter::with_capacity(256 * 1024, out));
    // WAV barely compresses; storing keeps the zip as fast as the disk.
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored).large_file(false);
    let mut missing = Vec::new();
    let mut written = 0usize;
    let mut failure = None;
    let complete = each_call(store, query, scope, |call| {
        let Some(recording) = &call.recording else { return true };
        let path = match store.recording_path(call.site_id, &recording.sha256) {
            Ok(Some(path)) if recording.held => path,
            _ => {
                missing.push(format!("{} {}/{}", format_time(call.started_at), call.site_id, call.attempt_id));
                return true;
            }
        };
        if written == MAX_ZIP_FILES {
            return false;
        }
        let stamp = format_time(call.started_at).replace([' ', ':'], "").replace('-', "");
        let name = format!("{stamp}_{}-{}.wav", call.site_id, call.attempt_id);
        let copied = zip
            .start_file(name, options)
            .map_err(|e| e.to_string())
            .and_then(|()| std::fs::File::open(&path).map_err(|e| e.to_string()))
            .and_then(|mut file| std::io::copy(&mut file, &mut zip).map_err(|e| e.to_string()));
        if let Err(err) = copied {
            failure = Some(err);
            return false;
        }
        written += 1;
        true
    })
    .map_err(|e| e.to_string())?;
    if let Some(err) = failure {
        return Err(err);
    }
    let mut note = String::new();
    if !complete {
        note.push_str(&text(tr, &format!("Only the first {MAX_ZIP_FILES} recordings are in this zip: narrow the filter for the rest.\n"), &format!("本压缩包只含前 {MAX_ZIP_FILES} 个录音，其余请缩小查询条件后再导出。\n")));
    }
    if !missing.is_empty() {
        note.push_str(&text(tr, "Recordings HQ does not hold yet (fetch them from the site on the call's page):\n", "总控尚未收到的录音（可在通话详情页从职场取回）：\n"));
        note.push_str(&missing.join("\n"));
    }
    if !note.is_empty() {
        let name = if tr.is_en() { "not-included.txt" } else { "未包含的录音.txt" };
        zip.start_file(name, options).map_err(|e| e.to_string())?;
        zip.write_all(note.as_bytes()).map_err(|e| e.to_string())?;
    }
    let mut out = zip.finish().map_err(|e| e.to_string())?.into_inner();
    out.flush().map_err(|e| e.to_string())
}

/// `GET /api/calls/recordings.zip`: the recordings of every call the filter finds, as a
/// zip streamed while it is written.
#[utoipa::path(get, path = "/api/calls/recordings.zip", tag = "calls", params(Filter),
    responses((status = 200, description = "The recordings HQ holds, and a note naming those it does not", body = FileBytes, content_type = "application/zip"),
              (status = 400, description = "A filter value is not valid (named in the message)", body = ErrorBody)))]
pub async fn recordings_zip(State(state): State<AppState>, caller: Module<DataRecordings>, Query(filter): Query<Filter>) -> Result<Response, ApiError> {
    let tr = caller.tr;
    let query = filter.query(tr).map_err(ApiError::bad_request)?;
    // A module check of its own: the zip lists calls, which 录音管理 alone does not show.
    if !caller.scope.has_module(<SiteCalls as super::guard::Permission>::KEY) {
        return Err(ApiError::new(axum::http::StatusCode::FORBIDDEN, text(tr, "your role lacks the call records module (职场通话记录)", "当前角色没有职场通话记录模块")));
    }
    let scope = caller.scope.clone();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(8);
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        let failed = tx.clone();
        if let Err(err) = write_zip(tr, &store, &query, &scope, ChannelWriter(tx)) {
            // The status is gone by now; a broken body is how the client learns of it.
            tracing::warn!(error = %err, "recordings zip failed");
            let _ = failed.blocking_send(Err(std::io::Error::other(err)));
        }
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let name = if tr.is_en() { "recordings.zip" } else { "录音.zip" };
    let encoded: String = name.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_.".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect();
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"recordings.zip\"; filename*=UTF-8''{encoded}")),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
