//! The OpenAPI 3.0 document of the JSON API, served at `/api/openapi.json`. Built from one
//! table ([`OPERATIONS`]) that lists every console action: its method, path, summary and
//! body, so that tools (schemathesis, client generators) can drive the hub like the console.

use axum::Json;
use serde_json::{json, Map, Value};

/// What an operation's request body is.
#[derive(Clone, Copy)]
enum Body {
    None,
    /// A JSON object with these required properties `(name, type)`.
    Json(&'static [(&'static str, &'static str)]),
    /// `multipart/form-data` with one `file` field.
    Upload,
    /// `multipart/form-data` with a `file` field and these required text fields `(name, type)`.
    UploadWith(&'static [(&'static str, &'static str)]),
}

/// `(method, path, summary, body, answers with an xlsx)`.
const OPERATIONS: &[(&str, &str, &str, Body, bool)] = &[
    ("post", "/api/login", "Log in; sets the session cookie", Body::Json(&[("username", "string"), ("password", "string")]), false),
    ("post", "/api/logout", "Log out", Body::None, false),
    ("get", "/api/sites", "Sites in the caller's data scope", Body::None, false),
    ("post", "/api/sites", "Create a site (admin)", Body::Json(&[("name", "string")]), false),
    ("post", "/api/sites/{id}/enrollment-code", "Issue a one-time enrollment code, replacing the site's older ones (admin)", Body::None, false),
    ("post", "/api/sites/{id}/retire", "Retire the box holding a site: its certificate is refused from now on (admin)", Body::None, false),
    ("get", "/api/categories", "Project categories", Body::None, false),
    ("post", "/api/categories", "Add a category (add only)", Body::Json(&[("name", "string")]), false),
    ("get", "/api/projects", "Sub-projects the caller may see", Body::None, false),
    ("post", "/api/projects", "Create a sub-project, optionally from a template", Body::Json(&[("category_id", "integer"), ("name", "string")]), false),
    ("get", "/api/projects/{id}", "One sub-project's definition", Body::None, false),
    ("put", "/api/projects/{id}", "Replace a definition (new version sent to sites)", Body::Json(&[("name", "string")]), false),
    ("put", "/api/projects/{id}/sites", "Step 1: participating sites", Body::Json(&[("site_ids", "array")]), false),
    ("get", "/api/projects/{id}/admins", "Project admins", Body::None, false),
    ("put", "/api/projects/{id}/admins", "Step 2: project admins with their sites", Body::Json(&[("admins", "array")]), false),
    ("get", "/api/projects/{id}/attribution", "Attribution rules", Body::None, false),
    ("put", "/api/projects/{id}/attribution", "Replace attribution rules", Body::Json(&[("rules", "array")]), false),
    ("post", "/api/projects/{id}/files", "Import an xlsx (waits for the report)", Body::Upload, false),
    ("post", "/api/projects/{id}/imports", "Import an xlsx in the background (poll the job)", Body::Upload, false),
    ("get", "/api/imports/{id}", "Progress of a background import", Body::None, false),
    ("get", "/api/files", "Files the caller may see", Body::None, false),
    ("get", "/api/files/{id}", "One file with its import report", Body::None, false),
    ("get", "/api/files/{id}/download", "Download the stored file", Body::None, true),
    ("get", "/api/files/{id}/bad-rows.xlsx", "Bad rows (row, column, reason) as xlsx", Body::None, true),
    ("post", "/api/files/{id}/delete", "Delete a file", Body::None, false),
    ("post", "/api/files/{id}/remark", "Set a file's remark", Body::Json(&[("remark", "string")]), false),
    ("post", "/api/files/{id}/filter", "Data filter: makes a 【过滤结果】 file", Body::Json(&[("valid_days", "integer")]), false),
    ("get", "/api/filter-settings", "The caller's last filter settings", Body::None, false),
    ("post", "/api/files/{id}/dispatch", "Dispatch shared, exclusive or auto batches", Body::Json(&[("priority", "integer")]), false),
    ("get", "/api/batches", "The task list with live figures", Body::None, false),
    ("get", "/api/batches/{id}/records", "A batch's business records", Body::None, false),
    ("get", "/api/batches/{id}/numbers", "A batch's numbers", Body::None, false),
    ("post", "/api/batches/{id}/priority", "Change priority (0 ends, 1 pauses)", Body::Json(&[("priority", "integer")]), false),
    ("post", "/api/batches/{id}/delete", "Delete (end) a batch", Body::None, false),
    ("post", "/api/one-click", "One-click start / pause, all projects or one category", Body::Json(&[("action", "string")]), false),
    ("get", "/api/modules", "The permission module tree", Body::None, false),
    ("get", "/api/roles", "Roles", Body::None, false),
    ("post", "/api/roles", "Create a role", Body::Json(&[("name", "string"), ("modules", "array")]), false),
    ("get", "/api/groups", "Groups", Body::None, false),
    ("post", "/api/groups", "Create a group", Body::Json(&[("name", "string")]), false),
    ("get", "/api/accounts", "Accounts", Body::None, false),
    ("post", "/api/accounts", "Create a sub-admin account", Body::Json(&[("username", "string"), ("password", "string"), ("role_id", "integer")]), false),
    ("get", "/api/lists/{list}", "A black or white list", Body::None, false),
    ("post", "/api/lists/{list}", "Add numbers to a list", Body::Json(&[("phones", "array")]), false),
    ("post", "/api/lists/remove", "Take a number off the lists", Body::Json(&[("phone", "string")]), false),
    ("post", "/api/lists/{list}/import", "Add the numbers of an xlsx to a list", Body::Upload, false),
    ("put", "/api/projects/{id}/settings", "Set only the project parameters (new version sent to sites)", Body::Json(&[]), false),
    ("get", "/api/link-settings", "The link settings every site is sent (admin)", Body::None, false),
    ("put", "/api/link-settings", "Set the recording upload cap (bytes/s, null = none) for every site (admin)", Body::Json(&[]), false),
    ("get", "/api/alarms", "Alarms", Body::None, false),
    ("get", "/api/sites/{id}/recordings/{sha256}", "A site's recording, if HQ holds it (audio/wav)", Body::None, false),
    ("post", "/api/sites/{id}/recordings/{sha256}/fetch", "Ask the site for a recording before its turn", Body::None, false),
    ("get", "/api/voice-files", "The voice library (语音库)", Body::None, false),
    ("post", "/api/voice-files", "Upload a WAV (mono 8000 Hz, G.711 or 16-bit PCM) to every site", Body::UploadWith(&[("name", "string"), ("kind", "voice_kind")]), false),
    ("post", "/api/voice-files/{id}/delete", "Delete a voice file (sites stop using it)", Body::None, false),
    ("get", "/api/announcements", "Announcements (公告管理)", Body::None, false),
    ("post", "/api/announcements", "Post an announcement to every site", Body::Json(&[("title", "string"), ("body", "string")]), false),
    ("post", "/api/announcements/{id}", "Edit an announcement (a new version)", Body::Json(&[("title", "string"), ("body", "string")]), false),
    ("post", "/api/announcements/{id}/withdraw", "Withdraw an announcement", Body::None, false),
];

fn schema(kind: &str) -> Value {
    match kind {
        "array" => json!({ "type": "array", "items": {} }),
        "voice_kind" => json!({ "type": "string", "enum": ["hold_music", "prompt"] }),
        other => json!({ "type": other }),
    }
}

/// Builds the document.
pub fn build() -> Value {
    let mut paths = Map::new();
    for (method, path, summary, body, xlsx) in OPERATIONS {
        let mut parameters = Vec::new();
        if path.contains("{id}") {
            parameters.push(json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "integer", "format": "int64" }, "example": 1 }));
        }
        if path.contains("{sha256}") {
            parameters.push(json!({ "name": "sha256", "in": "path", "required": true, "schema": { "type": "string", "pattern": "^[0-9a-f]{64}$" } }));
        }
        if path.contains("{list}") {
            parameters.push(json!({ "name": "list", "in": "path", "required": true, "schema": { "type": "string", "enum": ["black", "white"] } }));
        }
        let ok = if *xlsx {
            json!({ "description": "an xlsx workbook", "content": { "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": { "schema": { "type": "string", "format": "binary" } } } })
        } else {
            json!({ "description": "success", "content": { "application/json": { "schema": {} } } })
        };
        let error = json!({ "description": "what to fix", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
        let mut operation = json!({
            "summary": summary,
            "operationId": format!("{method}{}", path.replace(['/', '{', '}', '-', '.'], "_")),
            "parameters": parameters,
            "responses": { "200": ok, "400": error, "401": error, "403": error, "404": error, "409": error, "415": error, "422": error, "429": error },
        });
        match body {
            Body::None => {}
            Body::Json(required) => {
                let properties: Map<String, Value> = required.iter().map(|(name, kind)| (name.to_string(), schema(kind))).collect();
                let names: Vec<&str> = required.iter().map(|(name, _)| *name).collect();
                let mut object = json!({ "type": "object", "properties": properties });
                // JSON Schema (draft 4, which OpenAPI 3.0 uses) wants at least one name here.
                if !names.is_empty() {
                    object["required"] = json!(names);
                }
                operation["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": object } } });
            }
            Body::Upload => {
                operation["requestBody"] = json!({ "required": true, "content": { "multipart/form-data": { "schema": {
                    "type": "object", "required": ["file"], "properties": { "file": { "type": "string", "format": "binary" } } } } } });
            }
            Body::UploadWith(fields) => {
                let mut properties: Map<String, Value> = fields.iter().map(|(name, kind)| (name.to_string(), schema(kind))).collect();
                properties.insert("file".to_string(), json!({ "type": "string", "format": "binary" }));
                let mut names: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
                names.push("file");
                operation["requestBody"] = json!({ "required": true, "content": { "multipart/form-data": { "schema": {
                    "type": "object", "required": names, "properties": properties } } } });
            }
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = operation;
    }
    json!({
        "openapi": "3.0.3",
        "info": { "title": "Outpost HQ hub API", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Every console action. Log in with POST /api/login; the session cookie hq_session authenticates the rest." },
        "paths": paths,
        "components": {
            "schemas": { "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "string" } } } },
            "securitySchemes": { "session": { "type": "apiKey", "in": "cookie", "name": "hq_session" } },
        },
        "security": [{ "session": [] }],
    })
}

pub async fn document() -> Json<Value> {
    Json(build())
}
