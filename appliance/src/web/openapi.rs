//! The OpenAPI document of the site's JSON API, served at `/api/openapi.json`.
//!
//! Operations come from the handlers' `#[utoipa::path]` attributes and schemas from the
//! request and response types' `ToSchema` derives. The errors every operation can answer
//! are added here from the route registry: 401 and 403 from the route's guard, 400 / 415 /
//! 422 for a JSON body (what [`super::limits::ApiJson`] answers), 400 for a bad path or
//! query parameter, and 500; all of them with the one error shape, [`ErrorBody`].

use axum::Json;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

use super::guard::{Access, Public};
use super::routes::route_table;
use super::{ErrorBody, admin, desk, session, shared};

#[derive(OpenApi)]
#[openapi(
    info(title = "Outpost site appliance API", description = "The JSON API of the site box: site admin, agent desk, sessions. \
        Every error is `{\"error\": \"...\"}` in the UI's language (the `lang` cookie: `zh` default, `en`)."),
    paths(
        document,
        session::login, session::logout,
        shared::status, shared::announcements, shared::recording,
        admin::tasks_api::list_tasks, admin::tasks_api::start_task, admin::tasks_api::stop_task,
        admin::tasks_api::lines, admin::tasks_api::task_detail, admin::tasks_api::save_task_settings,
        admin::tasks_api::save_task_agents, admin::tasks_api::save_task_priority, admin::tasks_api::allocate, admin::tasks_api::get_rules,
        admin::tasks_api::save_rules, admin::tasks_api::monitor_events, admin::tasks_api::voice_files,
        admin::accounts_api::list_extensions, admin::accounts_api::create_extension,
        admin::accounts_api::list_agents, admin::accounts_api::create_agent, admin::accounts_api::list_roles,
        admin::accounts_api::create_role, admin::accounts_api::assign_role, admin::accounts_api::create_staff,
        admin::account_edits::update_role, admin::account_edits::set_disabled, admin::account_edits::reset_password,
        admin::data_api::data_customers, admin::data_api::data_records, admin::data_api::export_records,
        admin::data_api::export_recordings, admin::data_api::data_callbacks, admin::data_api::add_callback,
        desk::api::set_agent_state, desk::api::agent_events, desk::api::save_record,
        desk::api::get_agent_settings, desk::api::save_agent_settings, desk::api::my_projects,
        desk::api::one_click, desk::api::my_numbers, desk::api::my_callbacks, desk::api::my_records,
        desk::api::my_customers, desk::api::edit_customer, desk::api::call_back_now,
        desk::api::schedule_callback, desk::api::arm_callback, desk::api::dial_callback,
        desk::work_api::manual_dial, desk::work_api::edit_callback, desk::work_api::get_grace, desk::work_api::set_grace,
        desk::work_api::get_default_form, desk::work_api::set_default_form,
    ),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

fn error(description: &str) -> RefOr<utoipa::openapi::Response> {
    let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
    RefOr::T(ResponseBuilder::new().description(description).content("application/json", content).build())
}

/// The whole document.
pub fn document_value() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "session",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            "sid",
            "The session cookie set by POST /api/login",
        ))),
    );
    for route in route_table().into_iter().filter(|route| route.path.starts_with("/api/")) {
        let Some(item) = doc.paths.paths.get_mut(route.path) else { continue };
        let operation = match route.method {
            "GET" => item.get.as_mut(),
            "POST" => item.post.as_mut(),
            _ => None,
        };
        let Some(operation) = operation else { continue };
        let responses = &mut operation.responses.responses;
        let mut add = |code: &str, description: &str| {
            responses.entry(code.to_string()).or_insert_with(|| error(description));
        };
        if route.access != Access::Public {
            add("401", "Not logged in, or the session expired");
            add("403", "The account is of the wrong kind, or its role lacks a module this route needs");
            operation.security = Some(vec![SecurityRequirement::new("session", Vec::<String>::new())]);
        }
        if operation.request_body.is_some() {
            add("400", "The body is not valid JSON, or a text field is over its length limit (named in the message)");
            add("415", "The body is not declared as JSON");
            add("422", "The body's fields are missing or of the wrong type");
        } else if operation.parameters.as_ref().is_some_and(|params| !params.is_empty()) {
            add("400", "A path or query parameter is malformed or over its length limit");
        }
        add("500", "The site's store failed");
    }
    doc
}

/// `GET /api/openapi.json` (anyone): this document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "session",
    responses((status = 200, description = "This document", body = Object)))]
pub async fn document(_: Public) -> Json<utoipa::openapi::OpenApi> {
    Json(document_value())
}
