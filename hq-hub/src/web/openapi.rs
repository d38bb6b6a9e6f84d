//! The OpenAPI document of the JSON API, served at `/api/openapi.json`.
//!
//! Operations come from the handlers' `#[utoipa::path]` attributes and schemas from the
//! request and response types' `ToSchema` derives (store types included), so a field added
//! to a type is in the document. The errors every operation can answer are added here from
//! the route table ([`super::guard::Registry`]): 401 for a route that needs a session, 403 for
//! one that needs a module or an admin and for every state-changing route (a foreign
//! `Origin` is refused), 400 / 415 / 422 for a JSON body (what [`super::extract::ApiJson`]
//! answers), 400 / 413 for an upload, 400 for a malformed path parameter, and 500; all of
//! them with the one error shape, [`ErrorBody`]. The route test checks that the document
//! lists exactly the table's `/api` routes.

use axum::http::Method;
use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::OpenApi;

use super::guard::{routes, Access};
use super::{across, api, calls, calls_files, console, notices, report_api, setup, wall, ErrorBody, SESSION_COOKIE};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Outpost HQ hub API",
        description = "Every console action. Log in with `POST /api/login`; the session cookie `hq_session` \
            authenticates the rest. Every error, including a malformed body, a wrong method or an unknown \
            route, is `{\"error\": \"...\"}` with a 4xx (5xx for the hub's own failures)."
    ),
    paths(
        document,
        api::login, api::logout,
        api::list_sites, api::create_site, api::enrollment_code, api::retire_site, api::list_alarms,
        api::list_categories, api::create_category, api::list_projects, api::create_project,
        api::upload_file, api::list_files, api::get_file, api::dispatch,
        api::list_batches, api::batch_records, api::fetch_recording, api::download_recording,
        console::list_modules, console::list_roles, console::create_role, console::list_groups, console::create_group,
        console::list_accounts, console::create_account,
        console::get_project, console::update_project, console::set_project_sites,
        console::get_project_admins, console::set_project_admins, console::get_attribution, console::set_attribution,
        console::start_import, console::import_progress, console::bad_rows_sheet, console::download_file,
        console::delete_file, console::set_remark, console::filter_settings, console::filter_file,
        console::set_priority, console::delete_batch, console::batch_numbers, console::one_click,
        console::list_numbers, console::add_numbers, console::remove_number,
        setup::import_list, setup::put_settings, setup::get_link_settings, setup::put_link_settings, setup::put_recording_retention,
        notices::list_voice_files, notices::upload_voice_file, notices::delete_voice_file,
        notices::list_announcements, notices::post_announcement, notices::edit_announcement,
        notices::withdraw_announcement,
        across::customer_data, across::export_customers, across::business_data, across::export_records, across::set_filterable,
        report_api::list_reports, report_api::create_report, report_api::get_report, report_api::update_report,
        report_api::delete_report, report_api::preview_unsaved, report_api::preview_report,
        wall::wall_json, wall::site_json, wall::wall_events,
        calls::search, calls::get_call, calls_files::export_xlsx, calls_files::recordings_zip, calls_files::recording,
        calls_files::fetch,
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "session", description = "Logging in and out"),
        (name = "sites", description = "Sites (职场管理), enrollment codes, the link's alarms"),
        (name = "projects", description = "Categories and sub-projects: definition, parameters, sites, admins, attribution"),
        (name = "files", description = "Imports, files, the data filter and dispatch (文件管理)"),
        (name = "batches", description = "The task list and batch control (下发任务管理)"),
        (name = "recordings", description = "Recordings held at the sites"),
        (name = "accounts", description = "Modules, roles, groups and sub-admin accounts (账号权限管理)"),
        (name = "lists", description = "Black and white lists (黑白名单设置)"),
        (name = "voice", description = "The voice library (语音库)"),
        (name = "reports", description = "Report definitions and previews (数据报表管理)"),
        (name = "notices", description = "Announcements (公告管理)"),
        (name = "data", description = "A project's customer data and business records across its sites (客户资料, 业务资料)"),
        (name = "monitor", description = "The monitoring wall (职场监控管理): every site live, one site's agents and tasks, the live stream"),
        (name = "calls", description = "Call records and their recordings (职场通话记录, 录音管理)"),
    )
)]
struct ApiDoc;

fn error(description: &str) -> RefOr<utoipa::openapi::Response> {
    let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
    RefOr::T(ResponseBuilder::new().description(description).content("application/json", content).build())
}

/// The whole document: the handlers' operations plus the errors the route table implies.
pub fn api_document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(<super::reports::ReportsDoc as OpenApi>::openapi());
    doc.merge(<super::edit::EditDoc as OpenApi>::openapi());
    doc.merge(<super::pools::PoolDoc as OpenApi>::openapi());
    doc.merge(<super::account_edit::AccountEditDoc as OpenApi>::openapi());
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "session",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            SESSION_COOKIE,
            "The session cookie set by POST /api/login",
        ))),
    );
    for route in routes().into_iter().filter(|route| web_guard::is_api(route.path)) {
        let Some(item) = doc.paths.paths.get_mut(route.path) else { continue };
        let operation = match route.method {
            Method::GET => item.get.as_mut(),
            Method::POST => item.post.as_mut(),
            Method::PUT => item.put.as_mut(),
            Method::DELETE => item.delete.as_mut(),
            _ => None,
        };
        let Some(operation) = operation else { continue };
        let has_params = operation.parameters.as_ref().is_some_and(|params| !params.is_empty());
        let body_types: Vec<String> = operation
            .request_body
            .as_ref()
            .map(|body| body.content.keys().cloned().collect())
            .unwrap_or_default();
        let responses = &mut operation.responses.responses;
        let mut add = |code: &str, description: &str| {
            responses.entry(code.to_string()).or_insert_with(|| error(description));
        };
        if route.access != Access::Public {
            add("401", "Not logged in, or the session expired");
            operation.security = Some(vec![SecurityRequirement::new("session", Vec::<String>::new())]);
        }
        let guarded = matches!(route.access, Access::Module(_) | Access::AnyModule(_) | Access::Admin);
        let changes = route.method != Method::GET;
        match (guarded, changes) {
            (true, true) => add("403", "The caller's role lacks the route's module (or it is not an admin), or the request came from another site's page (foreign `Origin`)"),
            (true, false) => add("403", "The caller's role lacks the route's module, or it is not an admin"),
            (false, true) => add("403", "The request came from another site's page (foreign `Origin`)"),
            (false, false) => {}
        }
        if body_types.iter().any(|kind| kind == "application/json") {
            add("400", "The body is not valid JSON, or a field is not valid (named in the message)");
            add("415", "The body is not declared as JSON (`Content-Type: application/json`)");
            add("422", "The body's fields are missing or of the wrong type (named in the message)");
        }
        if body_types.iter().any(|kind| kind == "multipart/form-data") {
            add("400", "The upload is not a multipart/form-data form, or holds no file");
            add("413", "The upload is larger than the hub accepts");
        }
        if has_params {
            add("400", "A path parameter is malformed (e.g. an id that is not a number)");
        }
        add("500", "The hub failed (its log says why)");
    }
    doc
}

/// `GET /api/openapi.json` (anyone): this document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "session",
    responses((status = 200, description = "This document", body = Object)))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(api_document())
}
