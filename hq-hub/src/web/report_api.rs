//! The report builder's JSON API (数据报表管理, H14): a sub-project's report definitions
//! (list, create, read, edit, delete) and the preview (统计预览) of a saved or an unsaved
//! definition with the manual's filters: sub-projects (default the current one), data source
//! (dispatching accounts), teams, and the time filter.
//!
//! Every route needs the `reports` module; a sub-admin sees only the sub-projects it
//! administers (others answer 404) and its previews count only its sites of each.
//! Refusals of a definition name the field, in the caller's language.

use axum::extract::State;
use axum::Json;
use reports::{Filter, Lang as DefLang, ReportDef, ReportTable, TimeFilter};
use serde::Deserialize;
use utoipa::ToSchema;

use super::api::{EmptyReply, IdReply};
use super::extract::{ApiJson, ApiPath};
use super::guard::{Access, Registry, Reports};
use super::i18n::Lang;
use super::{blocking, ApiError, AppState, Caller, ErrorBody, Module};
use crate::store::{now_unix, ReportDefError, StoredReport};

/// The routes of this module, each guarded by the `reports` module.
pub(super) fn routes(r: Registry) -> Registry {
    let reports = Access::module::<Reports>();
    r.get("/api/projects/{id}/reports", reports, list_reports)
        .post("/api/projects/{id}/reports", reports, create_report)
        .post("/api/projects/{id}/reports/preview", reports, preview_unsaved)
        .get("/api/projects/{id}/reports/{report}", reports, get_report)
        .put("/api/projects/{id}/reports/{report}", reports, update_report)
        .post("/api/projects/{id}/reports/{report}/delete", reports, delete_report)
        .post("/api/projects/{id}/reports/{report}/preview", reports, preview_report)
}

fn visible(caller: &Caller, project: i64) -> Result<(), ApiError> {
    if caller.scope.project(project) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("sub-project {project} does not exist")))
    }
}

fn def_error(caller: &Caller, err: ReportDefError) -> ApiError {
    match err {
        ReportDefError::UnknownProject(_) | ReportDefError::UnknownReport(_) => ApiError::not_found(err.to_string()),
        ReportDefError::Invalid(e) => {
            let lang = if caller.tr.lang == Lang::En { DefLang::En } else { DefLang::Zh };
            ApiError::bad_request(e.message(lang))
        }
        other => ApiError::internal(other),
    }
}

/// `GET /api/projects/{id}/reports`: the sub-project's report definitions.
#[utoipa::path(get, path = "/api/projects/{id}/reports", tag = "reports",
    params(("id" = i64, Path, description = "The sub-project")),
    responses((status = 200, description = "The definitions, oldest first", body = Vec<StoredReport>),
              (status = 404, description = "No such sub-project (or not the caller's)", body = ErrorBody)))]
pub async fn list_reports(
    State(state): State<AppState>,
    caller: Module<Reports>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<StoredReport>>, ApiError> {
    visible(&caller, id)?;
    Ok(Json(blocking(&state, move |store| store.report_definitions(id)).await??))
}

/// `POST /api/projects/{id}/reports`: adds a definition; it goes down to the sub-project's sites.
#[utoipa::path(post, path = "/api/projects/{id}/reports", tag = "reports", request_body = ReportDef,
    params(("id" = i64, Path, description = "The sub-project")),
    responses((status = 200, description = "Saved", body = IdReply),
              (status = 400, description = "The definition is not valid (the field is named)", body = ErrorBody),
              (status = 404, description = "No such sub-project (or not the caller's)", body = ErrorBody)))]
pub async fn create_report(
    State(state): State<AppState>,
    caller: Module<Reports>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(def): ApiJson<ReportDef>,
) -> Result<Json<IdReply>, ApiError> {
    visible(&caller, id)?;
    let by = caller.account.username.clone();
    let saved = blocking(&state, move |store| store.create_report_definition(id, &def, &by)).await?;
    Ok(Json(IdReply { id: saved.map_err(|e| def_error(&caller, e))? }))
}

/// `GET /api/projects/{id}/reports/{report}`: one definition.
#[utoipa::path(get, path = "/api/projects/{id}/reports/{report}", tag = "reports",
    params(("id" = i64, Path, description = "The sub-project"), ("report" = i64, Path, description = "The definition")),
    responses((status = 200, description = "The definition", body = StoredReport),
              (status = 404, description = "No such sub-project or definition", body = ErrorBody)))]
pub async fn get_report(
    State(state): State<AppState>,
    caller: Module<Reports>,
    ApiPath((id, report)): ApiPath<(i64, i64)>,
) -> Result<Json<StoredReport>, ApiError> {
    visible(&caller, id)?;
    let found = blocking(&state, move |store| store.report_definition(id, report)).await??;
    found.map(Json).ok_or_else(|| ApiError::not_found(format!("report {report} does not exist in this sub-project")))
}

/// `PUT /api/projects/{id}/reports/{report}`: replaces a definition (数据编辑).
#[utoipa::path(put, path = "/api/projects/{id}/reports/{report}", tag = "reports", request_body = ReportDef,
    params(("id" = i64, Path, description = "The sub-project"), ("report" = i64, Path, description = "The definition")),
    responses((status = 200, description = "Saved", body = EmptyReply),
              (status = 400, description = "The definition is not valid (the field is named)", body = ErrorBody),
              (status = 404, description = "No such sub-project or definition", body = ErrorBody)))]
pub async fn update_report(
    State(state): State<AppState>,
    caller: Module<Reports>,
    ApiPath((id, report)): ApiPath<(i64, i64)>,
    ApiJson(def): ApiJson<ReportDef>,
) -> Result<Json<EmptyReply>, ApiError> {
    visible(&caller, id)?;
    let saved = blocking(&state, move |store| store.update_report_definition(id, report, &def)).await?;
    saved.map_err(|e| def_error(&caller, e))?;
    Ok(Json(EmptyReply {}))
}

/// `POST /api/projects/{id}/reports/{report}/delete`: removes a definition.
#[utoipa::path(post, path = "/api/projects/{id}/reports/{report}/delete", tag = "reports",
    params(("id" = i64, Path, description = "The sub-project"), ("report" = i64, Path, description = "The definition")),
    responses((status = 200, description = "Removed", body = EmptyReply),
              (status = 404, description = "No such sub-project or definition", body = ErrorBody)))]
pub async fn delete_report(
    State(state): State<AppState>,
    caller: Module<Reports>,
    ApiPath((id, report)): ApiPath<(i64, i64)>,
) -> Result<Json<EmptyReply>, ApiError> {
    visible(&caller, id)?;
    let removed = blocking(&state, move |store| store.delete_report_definition(id, report)).await?;
    removed.map_err(|e| def_error(&caller, e))?;
    Ok(Json(EmptyReply {}))
}

/// The preview's filters (统计预览).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct PreviewFilter {
    /// The sub-projects counted; default the one in the path. Each must be the caller's.
    #[serde(default)]
    pub projects: Option<Vec<i64>>,
    /// Data source: the dispatching accounts; default all.
    #[serde(default)]
    pub accounts: Option<Vec<String>>,
    /// Teams (外呼团队) by name; default all.
    #[serde(default)]
    pub teams: Option<Vec<String>>,
    pub time: TimeFilter,
}

/// A preview of a definition not saved yet.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct UnsavedPreview {
    pub definition: ReportDef,
    pub filter: PreviewFilter,
}

/// The engine's filter for `caller`: its sub-projects and, for a sub-admin, only the sites
/// it sees in every one of them (never a site it may not see).
fn engine_filter(caller: &Caller, project: i64, body: &PreviewFilter, zone: &reports::Zone) -> Result<Filter, ApiError> {
    let projects = body.projects.clone().unwrap_or_else(|| vec![project]);
    if projects.is_empty() {
        return Err(ApiError::bad_request("projects: pick at least one sub-project"));
    }
    let mut sites: Option<Vec<i64>> = None;
    for &p in &projects {
        visible(caller, p)?;
        if let Some(seen) = caller.scope.report_sites(p) {
            sites = Some(match sites {
                None => seen,
                Some(prev) => prev.into_iter().filter(|s| seen.contains(s)).collect(),
            });
        }
    }
    let days = body.time.resolve(now_unix(), zone).map_err(|e| {
        ApiError::bad_request(if caller.tr.lang == Lang::En { e.to_string() } else { e.message_zh() })
    })?;
    Ok(Filter { projects: Some(projects), sites, accounts: body.accounts.clone(), teams: body.teams.clone(), days })
}

async fn preview(state: AppState, caller: Caller, project: i64, def: ReportDef, body: PreviewFilter) -> Result<ReportTable, ApiError> {
    visible(&caller, project)?;
    def.validate().map_err(|e| def_error(&caller, ReportDefError::Invalid(e)))?;
    blocking(&state, move |store| {
        let filter = engine_filter(&caller, project, &body, store.report_zone())?;
        store.run_report(&def, &filter).map_err(ApiError::from)
    })
    .await?
}

/// `POST /api/projects/{id}/reports/preview`: previews a definition before it is saved.
#[utoipa::path(post, path = "/api/projects/{id}/reports/preview", tag = "reports", request_body = UnsavedPreview,
    params(("id" = i64, Path, description = "The sub-project")),
    responses((status = 200, description = "The report", body = ReportTable),
              (status = 400, description = "The definition or a filter is not valid", body = ErrorBody),
              (status = 404, description = "No such sub-project (or not the caller's)", body = ErrorBody)))]
pub async fn preview_unsaved(
    State(state): State<AppState>,
    caller: Module<Reports>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<UnsavedPreview>,
) -> Result<Json<ReportTable>, ApiError> {
    Ok(Json(preview(state, caller.0, id, body.definition, body.filter).await?))
}

/// `POST /api/projects/{id}/reports/{report}/preview`: a saved definition's report (统计预览).
#[utoipa::path(post, path = "/api/projects/{id}/reports/{report}/preview", tag = "reports", request_body = PreviewFilter,
    params(("id" = i64, Path, description = "The sub-project"), ("report" = i64, Path, description = "The definition")),
    responses((status = 200, description = "The report", body = ReportTable),
              (status = 400, description = "A filter is not valid", body = ErrorBody),
              (status = 404, description = "No such sub-project or definition", body = ErrorBody)))]
pub async fn preview_report(
    State(state): State<AppState>,
    caller: Module<Reports>,
    ApiPath((id, report)): ApiPath<(i64, i64)>,
    ApiJson(body): ApiJson<PreviewFilter>,
) -> Result<Json<ReportTable>, ApiError> {
    visible(&caller, id)?;
    let found = blocking(&state, move |store| store.report_definition(id, report)).await??;
    let stored = found.ok_or_else(|| ApiError::not_found(format!("report {report} does not exist in this sub-project")))?;
    Ok(Json(preview(state, caller.0, id, stored.definition, body).await?))
}
