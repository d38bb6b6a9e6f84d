//! The site admin's JSON API for project data (S10): customers, business records and
//! callbacks as lists, the business results as a workbook and the recordings as a zip, and
//! callbacks the admin adds for an agent. Every list is the store's masked view for the
//! session's own viewer, so what is serialised here is already what the account may see.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::store::{CallRecordView, CallbackView, CustomerView};
use crate::web::guard::need;
use crate::web::limits::{self, ApiJson, ApiQuery, Check, Limits};
use crate::web::shared::{CallbackReply, DataQuery, blank_none, callback_error};
use crate::web::{AdminUser, ApiError, AppState, ErrorBody};

/// `GET /api/data/customers?project_id&status` (site admin).
#[utoipa::path(get, path = "/api/data/customers", tag = "site admin", params(DataQuery),
    responses((status = 200, description = "Customers, numbers masked for the account", body = Vec<CustomerView>)))]
pub async fn data_customers(
    AdminUser { viewer, .. }: AdminUser<need::Data>,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<DataQuery>,
) -> Result<Json<Vec<CustomerView>>, ApiError> {
    let status = blank_none(&query.status);
    Ok(Json(state.store.customers(&viewer, None, query.project_id, status.as_deref(), 1000)?))
}

/// `GET /api/data/records?...` (site admin): business data (calls with a saved record).
#[utoipa::path(get, path = "/api/data/records", tag = "site admin", params(DataQuery),
    responses((status = 200, description = "Calls with a saved business record, numbers masked for the account", body = Vec<CallRecordView>)))]
pub async fn data_records(
    AdminUser { viewer, .. }: AdminUser<need::Data>,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<DataQuery>,
) -> Result<Json<Vec<CallRecordView>>, ApiError> {
    Ok(Json(state.store.call_records(&viewer, &query.filter(true), 1000)?))
}

/// `GET /api/data/records.xlsx?...` (site admin, export): the business results.
#[utoipa::path(get, path = "/api/data/records.xlsx", tag = "site admin", params(DataQuery),
    responses((status = 200, description = "The business results as a workbook", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = Vec<u8>)))]
pub async fn export_records(
    AdminUser { viewer, .. }: AdminUser<need::DataExport>,
    lang: crate::web::i18n::Lang,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<DataQuery>,
) -> Result<Response, ApiError> {
    let records = state.store.call_records(&viewer, &query.filter(true), 100_000)?;
    let zone = state.store.report_engine().zone().clone();
    let bytes = crate::web::export::records_xlsx(&records, &zone, lang).map_err(ApiError::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"business-records.xlsx\""),
        ],
        bytes,
    )
        .into_response())
}

/// `GET /api/data/recordings.zip?...` (site admin, export): the recordings of the calls
/// that match, named by call id and the number as the admin may see it.
#[utoipa::path(get, path = "/api/data/recordings.zip", tag = "site admin", params(DataQuery),
    responses((status = 200, description = "The recordings as a zip of WAV files", content_type = "application/zip", body = Vec<u8>)))]
pub async fn export_recordings(
    AdminUser { viewer, .. }: AdminUser<need::DataExport>,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<DataQuery>,
) -> Result<Response, ApiError> {
    let records = state.store.call_records(&viewer, &query.filter(false), 10_000)?;
    let mut files = Vec::new();
    for record in records.iter().filter(|record| record.has_recording) {
        if let Some((path, _)) = state.store.recording_of(record.attempt_id)? {
            files.push((format!("{}_{}.wav", record.attempt_id, record.phone.replace('*', "x")), path));
        }
    }
    let bytes = tokio::task::spawn_blocking(move || crate::web::export::recordings_zip(&files))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok((
        [(header::CONTENT_TYPE, "application/zip"), (header::CONTENT_DISPOSITION, "attachment; filename=\"recordings.zip\"")],
        bytes,
    )
        .into_response())
}

/// `GET /api/data/callbacks?project_id&state` (site admin).
#[utoipa::path(get, path = "/api/data/callbacks", tag = "site admin", params(DataQuery),
    responses((status = 200, description = "Callbacks, numbers masked for the account", body = Vec<CallbackView>)))]
pub async fn data_callbacks(
    AdminUser { viewer, .. }: AdminUser<need::Data>,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<DataQuery>,
) -> Result<Json<Vec<CallbackView>>, ApiError> {
    let cb_state = blank_none(&query.state);
    Ok(Json(state.store.callbacks(&viewer, blank_none(&query.agent).as_deref(), query.project_id, cb_state.as_deref())?))
}

#[derive(Deserialize, ToSchema)]
pub struct AddCallbackForm {
    batch_id: u64,
    row_id: u64,
    agent: String,
    title: String,
    #[serde(default)]
    note: String,
    due_at: i64,
}

/// `POST /api/data/callbacks {batch_id, row_id, agent, title, note, due_at}` (site admin).
#[utoipa::path(post, path = "/api/data/callbacks", tag = "site admin", request_body = AddCallbackForm,
    responses((status = 201, description = "Created", body = CallbackReply),
              (status = 403, description = "The agent may not take this customer", body = ErrorBody),
              (status = 404, description = "No such customer or agent", body = ErrorBody)))]
pub async fn add_callback(
    AdminUser { user, .. }: AdminUser<need::Data>,
    State(state): State<AppState>,
    ApiJson(form): ApiJson<AddCallbackForm>,
) -> Result<Response, ApiError> {
    let callback_id = state
        .store
        .add_callback(form.batch_id, form.row_id, form.agent.trim(), &user.username, &form.title, form.due_at, &form.note)
        .map_err(callback_error)?;
    Ok((StatusCode::CREATED, Json(CallbackReply { callback_id, state: None })).into_response())
}

// ---- length limits of every request ----

impl Limits for AddCallbackForm {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        check.id("batch_id", self.batch_id)?;
        check.id("row_id", self.row_id)?;
        check.text("agent", &self.agent, limits::USERNAME)?;
        check.required("title", &self.title, limits::TITLE)?;
        check.text("note", &self.note, limits::NOTE)
    }
}
