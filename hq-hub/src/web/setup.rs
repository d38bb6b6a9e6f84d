//! Console pages for HQ's set-up work beyond projects and files: black / white lists
//! (黑白名单设置: add, remove, import an xlsx), accounts and permissions (账号权限管理: roles
//! from the module tree, groups, sub-admin accounts with their data scope), and the JSON
//! endpoints only these pages need (project parameters on their own, list imports, the
//! link settings every site is sent).
//!
//! The pages post to the same JSON API scripts use (through `console.js`); nothing here
//! changes data except through those endpoints.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa::ToSchema;

use super::api::{read_upload, UploadForm};
use super::console::VersionReply;
use super::extract::{ApiJson, ApiMultipart, ApiPath};
use super::pages::render;
use super::guard::{Admin, CtiLists, DataSettings};
use super::{blocking, format_time, ApiError, AppState, ErrorBody, Module, PageUser, Tr};
use crate::import::read_phone_list;
use crate::store::{BadRow, HqLinkSettings, LinkSettingsError, ListKind, ProjectEdit, ProjectSettings, RetentionError, MODULES};

// ---- JSON ----

/// The parameters form: the parameters sites get, and the dial-token length the import
/// checks (HQ's alone).
#[derive(serde::Deserialize, ToSchema)]
pub struct SettingsBody {
    #[serde(flatten)]
    settings: ProjectSettings,
    /// For a sub-project of dial tokens (`phone_mode` `token`): the exact length in hex
    /// digits every token of its files must have; absent = unchanged.
    #[serde(default)]
    token_length: Option<usize>,
}

/// Sets only a sub-project's parameters (项目参数); the fields and popup stay as they are.
/// A new version of the definition goes down to every participating site.
#[utoipa::path(put, path = "/api/projects/{id}/settings", tag = "projects", request_body = SettingsBody,
    params(("id" = i64, Path, description = "The sub-project")),
    responses((status = 200, description = "Saved; a new version went to the sites", body = VersionReply),
              (status = 400, description = "A parameter or the token length is out of range (named in the message)", body = ErrorBody),
              (status = 404, description = "No such sub-project (or not the caller's)", body = ErrorBody)))]
pub async fn put_settings(
    State(state): State<AppState>,
    caller: Module<DataSettings>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(SettingsBody { settings, token_length }): ApiJson<SettingsBody>,
) -> Result<Json<VersionReply>, ApiError> {
    if !caller.scope.project(id) {
        return Err(ApiError::not_found(format!("sub-project {id} does not exist")));
    }
    let (version, sites) = blocking(&state, move |store| -> Result<_, ApiError> {
        let project = store.project(id)?.ok_or_else(|| ApiError::not_found(format!("sub-project {id} does not exist")))?;
        // Checked before anything is saved, so a bad length changes nothing.
        if let Some(length) = token_length {
            crate::store::check_token_length(length)?;
        }
        let edit = ProjectEdit {
            name: project.name,
            script: project.script,
            hide_middle_digits: project.hide_middle_digits,
            customer_fields: project.customer_fields,
            record_fields: project.record_fields,
            settings,
            phone_mode: project.phone_mode,
        };
        let sites = store.update_project(id, &edit)?;
        if let Some(length) = token_length {
            store.set_project_token_length(id, length)?;
        }
        let version = store.project(id)?.map(|p| p.version).unwrap_or_default();
        Ok((version, sites))
    })
    .await??;
    Ok(Json(VersionReply { id, version, sent_to_sites: sites }))
}

/// What a list import answers.
#[derive(serde::Serialize, ToSchema)]
pub struct ListImportReply {
    /// Numbers newly listed.
    pub added: usize,
    /// Cells that are not dialable numbers, and repeats.
    pub bad: Vec<BadRow>,
    /// The counts as the console shows them.
    pub message: String,
}

impl From<LinkSettingsError> for ApiError {
    fn from(err: LinkSettingsError) -> Self {
        match err {
            LinkSettingsError::CapTooLow(_) => ApiError::bad_request(err.to_string()),
            LinkSettingsError::Encode(_) => ApiError::internal(err),
            LinkSettingsError::Db(e) => e.into(),
        }
    }
}

/// `GET /api/link-settings` (admin): the link settings every site is sent.
#[utoipa::path(get, path = "/api/link-settings", tag = "sites",
    responses((status = 200, description = "The current settings", body = HqLinkSettings)))]
pub async fn get_link_settings(State(state): State<AppState>, _admin: Admin) -> Result<Json<HqLinkSettings>, ApiError> {
    Ok(Json(blocking(&state, |store| store.link_settings()).await??))
}

/// The body of `PUT /api/link-settings`; an absent or null cap is no cap.
#[derive(serde::Deserialize, utoipa::ToSchema)]
pub struct LinkSettingsBody {
    #[serde(default)]
    recording_upload_bytes_per_sec: Option<u64>,
}

/// `PUT /api/link-settings` (admin): sets the link settings; a new version goes down to every
/// enrolled site.
#[utoipa::path(put, path = "/api/link-settings", tag = "sites", request_body = LinkSettingsBody,
    responses((status = 200, description = "The new settings", body = HqLinkSettings),
              (status = 400, description = "The cap is below the least the link can work with", body = ErrorBody)))]
pub async fn put_link_settings(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(body): ApiJson<LinkSettingsBody>,
) -> Result<Json<HqLinkSettings>, ApiError> {
    let by = admin.account.username.clone();
    let cap = body.recording_upload_bytes_per_sec;
    Ok(Json(blocking(&state, move |store| store.set_link_settings(cap, &by)).await??))
}

impl From<RetentionError> for ApiError {
    fn from(err: RetentionError) -> Self {
        match err {
            RetentionError::UnknownSite(_) => ApiError::not_found(err.to_string()),
            RetentionError::OutOfRange(_) => ApiError::bad_request(err.to_string()),
            RetentionError::Encode(_) => ApiError::internal(err),
            RetentionError::Db(e) => e.into(),
        }
    }
}

/// The body of `PUT /api/sites/{id}/recording-retention`; absent or null keeps recordings
/// for ever.
#[derive(serde::Deserialize, utoipa::ToSchema)]
pub struct RetentionBody {
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3650)]
    recording_retention_days: Option<u32>,
}

/// The retention a site was sent.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RetentionReply {
    pub site_id: i64,
    /// Rises with every change.
    pub version: u64,
    pub recording_retention_days: Option<u32>,
}

/// `PUT /api/sites/{id}/recording-retention` (admin): how many days the site keeps its
/// recordings; goes down the site's link. The site deletes only recordings HQ holds.
#[utoipa::path(put, path = "/api/sites/{id}/recording-retention", tag = "sites", request_body = RetentionBody,
    params(("id" = i64, Path, description = "The site")),
    responses((status = 200, description = "The retention sent", body = RetentionReply),
              (status = 400, description = "Days out of range", body = ErrorBody),
              (status = 404, description = "No such site", body = ErrorBody)))]
pub async fn put_recording_retention(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<RetentionBody>,
) -> Result<Json<RetentionReply>, ApiError> {
    let days = body.recording_retention_days;
    let version = blocking(&state, move |store| store.set_recording_retention(id, days)).await??;
    Ok(Json(RetentionReply { site_id: id, version, recording_retention_days: days }))
}

/// Adds the numbers of an uploaded xlsx to the black or white list; answers with how many
/// were added and every cell that was not a number.
#[utoipa::path(post, path = "/api/lists/{list}/import", tag = "lists",
    params(("list" = ListKind, Path, description = "`black` or `white`")),
    request_body(content = inline(UploadForm), content_type = "multipart/form-data"),
    responses((status = 200, description = "Imported", body = ListImportReply),
              (status = 400, description = "No file in the upload, or it is empty", body = ErrorBody),
              (status = 404, description = "No such list", body = ErrorBody),
              (status = 422, description = "The file is not a readable xlsx", body = ErrorBody)))]
pub async fn import_list(
    State(state): State<AppState>,
    caller: Module<CtiLists>,
    ApiPath(list): ApiPath<String>,
    ApiMultipart(multipart): ApiMultipart,
) -> Result<Json<ListImportReply>, ApiError> {
    let kind = super::console::list_kind(&list)?;
    let UploadForm { file_name, file: bytes } = read_upload(multipart).await?;
    let creator = caller.account.username.clone();
    let note = format!("导入：{file_name}");
    let (added, bad) = blocking(&state, move |store| -> Result<_, ApiError> {
        let sheet = read_phone_list(&file_name, &bytes).map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
        let added = store.add_to_list(kind, &sheet.phones, &note, &creator)?;
        Ok((added, sheet.bad))
    })
    .await??;
    let message = format!("已导入 {added} 个号码，错误行 {} 行 / added {added}, bad rows {}", bad.len(), bad.len());
    Ok(Json(ListImportReply { added, bad, message }))
}

// ---- pages ----

struct ListedRow {
    phone: String,
    note: String,
    creator: String,
    time: String,
}

struct ListView {
    key: &'static str,
    title: &'static str,
    rows: Vec<ListedRow>,
}

#[derive(Template)]
#[template(path = "lists.html")]
struct ListsPage {
    tr: Tr,
    user: String,
    lists: Vec<ListView>,
}

pub async fn lists_page(State(state): State<AppState>, user: PageUser) -> Response {
    let loaded = blocking(&state, |store| -> Result<_, crate::store::DbError> {
        Ok((store.list_numbers(ListKind::Black)?, store.list_numbers(ListKind::White)?))
    })
    .await;
    let (black, white) = match loaded {
        Ok(Ok(pair)) => pair,
        Ok(Err(err)) => return ApiError::from(err).into_response(),
        Err(err) => return err.into_response(),
    };
    let rows = |numbers: Vec<crate::store::ListedNumber>| {
        numbers
            .into_iter()
            .map(|n| ListedRow { phone: n.phone, note: n.note, creator: n.creator, time: format_time(n.created_at) })
            .collect()
    };
    let lists = vec![
        ListView { key: "black", title: user.tr.text().lists_black, rows: rows(black) },
        ListView { key: "white", title: user.tr.text().lists_white, rows: rows(white) },
    ];
    render(&ListsPage { tr: user.tr, user: user.account.username, lists })
}

struct ModuleOption {
    key: &'static str,
    label: &'static str,
}

struct RoleRow {
    id: i64,
    name: String,
    modules: String,
}

struct AccountRow {
    id: i64,
    is_admin: bool,
    disabled: bool,
    username: String,
    role: String,
    group: String,
    sites: String,
    created: String,
}

struct Choice {
    id: i64,
    name: String,
}

#[derive(Template)]
#[template(path = "accounts.html")]
struct AccountsPage {
    tr: Tr,
    user: String,
    is_admin: bool,
    modules: Vec<ModuleOption>,
    roles: Vec<RoleRow>,
    role_choices: Vec<Choice>,
    groups: Vec<Choice>,
    accounts: Vec<AccountRow>,
    sites: Vec<Choice>,
}

pub async fn accounts_page(State(state): State<AppState>, user: PageUser) -> Response {
    let scope = &user.scope;
    let loaded = blocking(&state, |store| -> Result<_, crate::store::DbError> {
        Ok((store.list_roles()?, store.list_groups()?, store.list_accounts()?, store.list_sites()?))
    })
    .await;
    let (roles, groups, mut accounts, mut sites) = match loaded {
        Ok(Ok(found)) => found,
        Ok(Err(err)) => return ApiError::from(err).into_response(),
        Err(err) => return err.into_response(),
    };
    // As in the JSON API: a sub-admin sees sites and accounts inside its own scope only.
    sites.retain(|s| scope.site(s.id));
    if !scope.is_admin() {
        accounts.retain(|a| a.site_ids.as_ref().is_some_and(|ids| ids.iter().all(|s| scope.site(*s))));
    }
    let site_names: BTreeMap<i64, String> = sites.iter().map(|s| (s.id, s.name.clone())).collect();
    let en = user.tr.is_en();
    let module_label = |key: &str| -> String {
        MODULES.iter().find(|(k, _, _)| *k == key).map(|(_, zh, e)| if en { *e } else { *zh }).unwrap_or(key).to_string()
    };
    let all_sites = if en { "all sites" } else { "全部职场" };
    let page = AccountsPage {
        tr: user.tr,
        is_admin: scope.is_admin(),
        modules: MODULES.iter().map(|(key, zh, e)| ModuleOption { key, label: if en { e } else { zh } }).collect(),
        roles: if scope.has_module("accounts.roles") {
            roles.iter().map(|r| RoleRow { id: r.id, name: r.name.clone(), modules: r.modules.iter().map(|m| module_label(m)).collect::<Vec<_>>().join("；") }).collect()
        } else {
            Vec::new()
        },
        role_choices: roles.iter().map(|r| Choice { id: r.id, name: r.name.clone() }).collect(),
        groups: groups.iter().map(|g| Choice { id: g.id, name: g.name.clone() }).collect(),
        accounts: accounts
            .into_iter()
            .map(|a| AccountRow {
                id: a.id,
                is_admin: a.is_admin,
                disabled: a.disabled,
                role: if a.is_admin { user.tr.text().accounts_admin.to_string() } else { a.role_name.unwrap_or_default() },
                group: a.group_name.unwrap_or_default(),
                sites: match a.site_ids {
                    None => all_sites.to_string(),
                    Some(ids) => ids.iter().filter_map(|s| site_names.get(s).cloned()).collect::<Vec<_>>().join("、"),
                },
                created: format_time(a.created_at),
                username: a.username,
            })
            .collect(),
        sites: sites.into_iter().map(|s| Choice { id: s.id, name: s.name }).collect(),
        user: user.account.username,
    };
    render(&page)
}
