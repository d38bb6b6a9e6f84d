//! Edit after create (H2, H6-H8) and 查看号码: the sub-project editor (name, customer and
//! business-record fields, the popup page), archiving, and a batch's numbers as a paged,
//! masked, searchable page.
//!
//! - The editor is module `data.settings` (系统设置) on a project the caller sees; archiving
//!   is for admins, like creating a project.
//! - A definition saved here goes through `Store::edit_definition`, which sends the new
//!   version down the link to every site of the project in the same transaction.
//! - 查看号码 is module `data.batches`; numbers are masked by the store when the project hides
//!   the middle four digits (as on every HQ page), and the search cannot reveal them.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::calls::outcome_word;
use super::console::VersionReply;
use super::extract::{ApiJson, ApiPath};
use super::guard::{Access, DataBatches, DataSettings, Registry};
use super::pages::render;
use super::{blocking, limits, Admin, ApiError, AppState, ErrorBody, Module, PageUser, Tr};
use crate::store::{DefinitionEdit, FieldSpec, FieldSpecKind, NumberPage, ProjectEdit, Scope};

/// This module's routes (one line in the shared route table).
pub(super) fn routes(r: Registry) -> Registry {
    let settings = Access::module::<DataSettings>();
    let batches = Access::module::<DataBatches>();
    r.get("/static/edit.js", Access::Public, edit_js)
        .get("/projects/{id}/edit", settings, project_edit_page)
        .put("/api/projects/{id}/definition", settings, put_definition)
        .post("/api/projects/{id}/archive", Access::Admin, archive)
        .get("/batches/{id}/numbers", batches, numbers_page)
        .get("/api/batches/{id}/number-page", batches, number_page)
}

/// The OpenAPI operations of this module, merged into the document.
#[derive(OpenApi)]
#[openapi(paths(put_definition, archive, number_page))]
pub struct EditDoc;

async fn edit_js() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("../../static/edit.js"))
}

fn no_project(tr: Tr, id: i64) -> ApiError {
    ApiError::not_found(super::extract::text(tr, &format!("sub-project {id} does not exist"), &format!("子项目 {id} 不存在")))
}

fn visible_project(scope: &Scope, tr: Tr, id: i64) -> Result<(), ApiError> {
    if scope.project(id) { Ok(()) } else { Err(no_project(tr, id)) }
}

/// `PUT /api/projects/{id}/definition`: the name, fields and popup page, parameters kept; a
/// new version goes to every site of the project.
#[utoipa::path(put, path = "/api/projects/{id}/definition", tag = "projects", request_body = DefinitionEdit,
    params(("id" = i64, Path, description = "The sub-project")),
    responses((status = 200, description = "Saved and sent", body = VersionReply),
              (status = 400, description = "A name or field is not valid (named in the message)", body = ErrorBody),
              (status = 404, description = "No such sub-project (or not the caller's)", body = ErrorBody),
              (status = 409, description = "Another sub-project of the category has that name", body = ErrorBody)))]
pub async fn put_definition(
    State(state): State<AppState>,
    caller: Module<DataSettings>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<DefinitionEdit>,
) -> Result<Json<VersionReply>, ApiError> {
    visible_project(&caller.scope, caller.tr, id)?;
    let check = ProjectEdit {
        name: body.name.clone(),
        script: body.script.clone(),
        hide_middle_digits: body.hide_middle_digits,
        customer_fields: body.customer_fields.clone(),
        record_fields: body.record_fields.clone(),
        settings: Default::default(),
        phone_mode: Default::default(),
    };
    limits::project_edit(&check)?;
    let sites = blocking(&state, move |store| store.edit_definition(id, &body)).await??;
    let version = blocking(&state, move |store| store.project(id)).await??.map(|p| p.version).unwrap_or_default();
    Ok(Json(VersionReply { id, version, sent_to_sites: sites }))
}

/// Archive or bring back.
#[derive(Deserialize, ToSchema)]
pub struct ArchiveBody {
    archived: bool,
}

/// Whether a sub-project is archived now.
#[derive(Serialize, ToSchema)]
pub struct ArchiveReply {
    pub id: i64,
    pub archived: bool,
}

/// `POST /api/projects/{id}/archive` (admin): archives a sub-project (归档) or brings it back.
#[utoipa::path(post, path = "/api/projects/{id}/archive", tag = "projects", request_body = ArchiveBody,
    params(("id" = i64, Path, description = "The sub-project")),
    responses((status = 200, description = "Done", body = ArchiveReply),
              (status = 404, description = "No such sub-project", body = ErrorBody)))]
pub async fn archive(State(state): State<AppState>, caller: Admin, ApiPath(id): ApiPath<i64>, ApiJson(body): ApiJson<ArchiveBody>) -> Result<Json<ArchiveReply>, ApiError> {
    let archived = body.archived;
    if !blocking(&state, move |store| store.set_project_archived(id, archived)).await?? {
        return Err(no_project(caller.tr, id));
    }
    Ok(Json(ArchiveReply { id, archived }))
}

/// One field as the editor shows it.
struct FieldRow {
    key: String,
    title: String,
    kind: &'static str,
    options: String,
    default: String,
    required: bool,
    read_only: bool,
    hidden: bool,
    filterable: bool,
    listed: bool,
}

fn kind_key(kind: FieldSpecKind) -> &'static str {
    match kind {
        FieldSpecKind::Text => "text",
        FieldSpecKind::SingleChoice => "single_choice",
        FieldSpecKind::MultipleChoice => "multiple_choice",
        FieldSpecKind::Number => "number",
        FieldSpecKind::Date => "date",
    }
}

fn field_row(f: &FieldSpec) -> FieldRow {
    FieldRow {
        key: f.key.clone(),
        title: f.title.clone(),
        kind: kind_key(f.kind),
        options: f.options.join("\n"),
        default: f.default.clone(),
        required: f.required,
        read_only: f.read_only,
        hidden: f.hidden,
        filterable: f.filterable,
        listed: f.listed,
    }
}

/// One list of fields: its rows and what deleting one of them concerns.
struct FieldList {
    list: &'static str,
    heading: &'static str,
    count: i64,
    warning: &'static str,
    /// The rows, then one blank row (the `<template>` a new field is cloned from).
    rows: Vec<FieldRow>,
}

#[derive(Template)]
#[template(path = "project_edit.html")]
struct ProjectEditPage {
    tr: Tr,
    user: String,
    id: i64,
    category: String,
    name: String,
    script: String,
    hide_middle_digits: bool,
    lists: Vec<FieldList>,
    kinds: Vec<(&'static str, &'static str)>,
    rows: i64,
    records: i64,
    archived: bool,
    is_admin: bool,
    saved: bool,
}

#[derive(Deserialize, Default)]
pub struct EditQuery {
    #[serde(default)]
    saved: Option<String>,
}

/// `GET /projects/{id}/edit`: the editor.
pub async fn project_edit_page(State(state): State<AppState>, caller: Module<DataSettings>, ApiPath(id): ApiPath<i64>, Query(query): Query<EditQuery>) -> Response {
    let user: &PageUser = &caller;
    let loaded = blocking(&state, move |store| -> Result<_, crate::store::DbError> {
        Ok((store.project(id)?, store.project_usage(id)?, store.project_archived_at(id)?))
    })
    .await;
    let (project, usage, archived) = match loaded {
        Ok(Ok((Some(project), usage, archived))) if user.scope.project(project.id) => (project, usage, archived),
        Ok(Ok(_)) => return no_project(user.tr, id).into_response(),
        Ok(Err(err)) => return ApiError::from(err).into_response(),
        Err(err) => return err.into_response(),
    };
    let e = user.tr.edit();
    let list = |list, heading, count, warning, fields: &[FieldSpec]| {
        let mut rows: Vec<FieldRow> = fields.iter().map(field_row).collect();
        rows.push(field_row(&FieldSpec::text("", "")));
        FieldList { list, heading, count, warning, rows }
    };
    let page = ProjectEditPage {
        tr: user.tr,
        user: user.account.username.clone(),
        id,
        category: project.category_name.clone(),
        name: project.name.clone(),
        script: project.script.clone(),
        hide_middle_digits: project.hide_middle_digits,
        lists: vec![
            list("customer_fields", e.edit_customer_fields, usage.rows, e.edit_delete_rows_warning, &project.customer_fields),
            list("record_fields", e.edit_record_fields, usage.records, e.edit_delete_records_warning, &project.record_fields),
        ],
        kinds: vec![
            ("text", e.edit_kind_text),
            ("single_choice", e.edit_kind_single),
            ("multiple_choice", e.edit_kind_multiple),
            ("number", e.edit_kind_number),
            ("date", e.edit_kind_date),
        ],
        rows: usage.rows,
        records: usage.records,
        archived: archived.is_some(),
        is_admin: user.scope.is_admin(),
        saved: query.saved.is_some(),
    };
    render(&page)
}

/// The search and cursor of 查看号码.
#[derive(Deserialize, Default, ToSchema)]
pub struct NumbersFilter {
    /// A number, part of one, or (masked) its last digits.
    #[serde(default)]
    q: Option<String>,
    /// The row id the page starts after.
    #[serde(default)]
    after: Option<String>,
}

impl NumbersFilter {
    fn after(&self) -> Option<i64> {
        self.after.as_deref().and_then(|a| a.trim().parse().ok())
    }
}

/// `GET /api/batches/{id}/number-page`: one page of a batch's numbers (50), masked when the
/// project hides the middle four digits; `next_after` is the next page's cursor.
#[utoipa::path(get, path = "/api/batches/{id}/number-page", tag = "batches",
    params(("id" = i64, Path, description = "The batch"),
           ("q" = Option<String>, Query, description = "A number, part of one, or (masked) its last four digits"),
           ("after" = Option<i64>, Query, description = "The row id the page starts after")),
    responses((status = 200, description = "One page", body = NumberPage),
              (status = 404, description = "No such batch (or not the caller's)", body = ErrorBody)))]
pub async fn number_page(State(state): State<AppState>, caller: Module<DataBatches>, ApiPath(id): ApiPath<i64>, Query(filter): Query<NumbersFilter>) -> Result<Json<NumberPage>, ApiError> {
    let scope = caller.scope.clone();
    let q = filter.q.clone().unwrap_or_default();
    let after = filter.after();
    Ok(Json(blocking(&state, move |store| store.batch_number_page(id, &scope, &q, after)).await??))
}

struct NumberRow {
    row: i64,
    phone: String,
    attempts: i64,
    last: String,
}

#[derive(Template)]
#[template(path = "numbers.html")]
struct NumbersPage {
    tr: Tr,
    user: String,
    batch: i64,
    q: String,
    masked: bool,
    numbers: Vec<NumberRow>,
    next: Option<String>,
    paged: bool,
}

/// `GET /batches/{id}/numbers`: 查看号码 as a page.
pub async fn numbers_page(State(state): State<AppState>, caller: Module<DataBatches>, ApiPath(id): ApiPath<i64>, Query(filter): Query<NumbersFilter>) -> Response {
    let scope = caller.scope.clone();
    let q = filter.q.clone().unwrap_or_default().trim().to_string();
    let after = filter.after();
    let search = q.clone();
    let page = match blocking(&state, move |store| store.batch_number_page(id, &scope, &search, after)).await {
        Ok(Ok(page)) => page,
        Ok(Err(err)) => return ApiError::from(err).into_response(),
        Err(err) => return err.into_response(),
    };
    let tr = caller.tr;
    let query = |after: i64| {
        let q: String = url_escape(&q);
        if q.is_empty() { format!("?after={after}") } else { format!("?q={q}&after={after}") }
    };
    render(&NumbersPage {
        tr,
        user: caller.account.username.clone(),
        batch: id,
        masked: page.masked,
        numbers: page
            .numbers
            .iter()
            .map(|n| NumberRow {
                row: n.row_id,
                phone: n.phone.clone(),
                attempts: n.attempts,
                last: match &n.last_outcome {
                    Some(key) => outcome_word(tr, key).to_string(),
                    None => tr.edit().numbers_never.to_string(),
                },
            })
            .collect(),
        next: page.next_after.map(query),
        paged: after.is_some(),
        q,
    })
}

/// Percent-encodes a search term for the next page's link.
fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// A refused dispatch in the caller's language; "nothing left" says why, in numbers.
pub(super) fn dispatch_refused(tr: Tr, err: crate::store::DispatchError) -> ApiError {
    match err {
        crate::store::DispatchError::NothingLeft { blacklisted, live } => ApiError::bad_request(super::extract::text(
            tr,
            &err.to_string(),
            &format!(
                "剔除后没有可下发的号码：{blacklisted} 个在黑名单中，{live} 个已在本子项目该职场的批次中（如需再次下发，请取消勾选“更新已有数据”）"
            ),
        )),
        other => other.into(),
    }
}

/// What a dispatch did, as a sentence: batches made, rows removed, rows left in the file.
pub(super) fn dispatch_summary(tr: Tr, outcome: &crate::store::DispatchOutcome) -> String {
    let (batches, removed, left) = (outcome.batch_ids.len(), outcome.removed.len(), outcome.leftover);
    let mut text = if tr.is_en() {
        format!("{batches} batch(es) dispatched; {removed} row(s) removed; {left} row(s) left in the file")
    } else {
        format!("已下发 {batches} 个批次；剔除 {removed} 行；文件中剩余 {left} 行未下发")
    };
    if outcome.attributed > 0 || outcome.not_found > 0 {
        text.push_str(&if tr.is_en() {
            format!("; attributed: {}; not found: {}", outcome.attributed, outcome.not_found)
        } else {
            format!("；归属数量：{}；未找到归属数量：{}", outcome.attributed, outcome.not_found)
        });
    }
    text
}

#[cfg(test)]
mod tests {
    use super::super::i18n::Lang;
    use super::*;
    use crate::store::DispatchError;

    /// "Nothing left" says why in numbers, in Chinese by default and in English on request.
    #[test]
    fn nothing_left_is_explained_in_the_callers_language() {
        let zh = dispatch_refused(Tr { lang: Lang::Zh }, DispatchError::NothingLeft { blacklisted: 2, live: 118 });
        let zh = zh.message;
        assert!(zh.contains("2 个在黑名单中") && zh.contains("118 个已在本子项目该职场的批次中") && zh.contains("更新已有数据"), "{zh}");
        let en = dispatch_refused(Tr { lang: Lang::En }, DispatchError::NothingLeft { blacklisted: 2, live: 118 });
        let en = en.message;
        assert!(en.contains("2 on the black list") && en.contains("118 already"), "{en}");
    }
}
