//! Roles and sub-admin accounts changed after creation (账号权限管理): a role's name and
//! modules, an account's role, group and data scope, disabling, a new password. Admin only,
//! like creating them; the store refuses to edit or disable an admin account.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::extract::{ApiJson, ApiPath};
use super::guard::{Access, Registry};
use super::pages::render;
use super::{blocking, Admin, ApiError, AppState, ErrorBody, Tr};
use crate::store::{AccountEdit, AccountEditError, MODULES};

/// This module's routes (one line in the shared route table).
pub(super) fn routes(r: Registry) -> Registry {
    r.get("/accounts/{id}/edit", Access::Admin, account_page)
        .get("/roles/{id}/edit", Access::Admin, role_page)
        .put("/api/accounts/{id}", Access::Admin, put_account)
        .post("/api/accounts/{id}/disabled", Access::Admin, set_disabled)
        .post("/api/accounts/{id}/password", Access::Admin, reset_password)
        .put("/api/roles/{id}", Access::Admin, put_role)
}

/// The OpenAPI operations of this module, merged into the document.
#[derive(OpenApi)]
#[openapi(paths(put_account, set_disabled, reset_password, put_role))]
pub struct AccountEditDoc;

/// The store's refusal in the caller's language.
fn refused(tr: Tr, err: AccountEditError) -> ApiError {
    let message = if tr.is_en() { err.to_string() } else { err.zh() };
    match err {
        AccountEditError::UnknownAccount(_) | AccountEditError::UnknownRole(_) => ApiError::not_found(message),
        AccountEditError::Duplicate(_) => ApiError::new(StatusCode::CONFLICT, message),
        AccountEditError::Hash(_) | AccountEditError::Db(_) => ApiError::internal(message),
        _ => ApiError::bad_request(message),
    }
}

/// What an account change answers.
#[derive(Serialize, ToSchema)]
pub struct AccountChanged {
    pub id: i64,
    /// A sentence for the console, in the caller's language.
    pub message: String,
}

/// `PUT /api/accounts/{id}` (admin): a sub-admin's role, group and data scope.
#[utoipa::path(put, path = "/api/accounts/{id}", tag = "accounts", request_body = AccountEdit,
    params(("id" = i64, Path, description = "The account")),
    responses((status = 200, description = "Saved", body = AccountChanged),
              (status = 400, description = "An admin account, or an unknown group or site (named)", body = ErrorBody),
              (status = 404, description = "No such account or role", body = ErrorBody)))]
pub async fn put_account(State(state): State<AppState>, caller: Admin, ApiPath(id): ApiPath<i64>, ApiJson(body): ApiJson<AccountEdit>) -> Result<Json<AccountChanged>, ApiError> {
    let tr = caller.tr;
    blocking(&state, move |store| store.edit_account(id, &body)).await?.map_err(|e| refused(tr, e))?;
    Ok(Json(AccountChanged { id, message: tr.edit().account_saved.to_string() }))
}

#[derive(Deserialize, ToSchema)]
pub struct DisabledBody {
    disabled: bool,
}

/// `POST /api/accounts/{id}/disabled` (admin): disables a sub-admin (its sessions end) or
/// enables it again.
#[utoipa::path(post, path = "/api/accounts/{id}/disabled", tag = "accounts", request_body = DisabledBody,
    params(("id" = i64, Path, description = "The account")),
    responses((status = 200, description = "Done", body = AccountChanged),
              (status = 400, description = "An admin account", body = ErrorBody),
              (status = 404, description = "No such account", body = ErrorBody)))]
pub async fn set_disabled(State(state): State<AppState>, caller: Admin, ApiPath(id): ApiPath<i64>, ApiJson(body): ApiJson<DisabledBody>) -> Result<Json<AccountChanged>, ApiError> {
    let tr = caller.tr;
    let disabled = body.disabled;
    blocking(&state, move |store| store.set_account_disabled(id, disabled)).await?.map_err(|e| refused(tr, e))?;
    let e = tr.edit();
    Ok(Json(AccountChanged { id, message: (if disabled { e.account_disabled } else { e.account_active }).to_string() }))
}

/// A new password, shown once.
#[derive(Serialize, ToSchema)]
pub struct PasswordReply {
    pub id: i64,
    pub password: String,
    /// The password in a sentence for the console.
    pub message: String,
}

/// `POST /api/accounts/{id}/password` (admin): a new random password for a sub-admin; its
/// sessions end.
#[utoipa::path(post, path = "/api/accounts/{id}/password", tag = "accounts",
    params(("id" = i64, Path, description = "The account")),
    responses((status = 200, description = "The new password (shown once)", body = PasswordReply),
              (status = 400, description = "An admin account", body = ErrorBody),
              (status = 404, description = "No such account", body = ErrorBody)))]
pub async fn reset_password(State(state): State<AppState>, caller: Admin, ApiPath(id): ApiPath<i64>) -> Result<Json<PasswordReply>, ApiError> {
    let tr = caller.tr;
    let password = blocking(&state, move |store| store.reset_password(id)).await?.map_err(|e| refused(tr, e))?;
    let message = format!("{} {password}", tr.edit().account_new_password);
    Ok(Json(PasswordReply { id, password, message }))
}

#[derive(Deserialize, ToSchema)]
pub struct RoleBody {
    name: String,
    #[serde(default)]
    modules: Vec<String>,
}

/// `PUT /api/roles/{id}` (admin): a role's name and modules.
#[utoipa::path(put, path = "/api/roles/{id}", tag = "accounts", request_body = RoleBody,
    params(("id" = i64, Path, description = "The role")),
    responses((status = 200, description = "Saved", body = AccountChanged),
              (status = 400, description = "An empty name or an unknown module", body = ErrorBody),
              (status = 404, description = "No such role", body = ErrorBody),
              (status = 409, description = "Another role has that name", body = ErrorBody)))]
pub async fn put_role(State(state): State<AppState>, caller: Admin, ApiPath(id): ApiPath<i64>, ApiJson(body): ApiJson<RoleBody>) -> Result<Json<AccountChanged>, ApiError> {
    let tr = caller.tr;
    super::limits::name(&body.name)?;
    blocking(&state, move |store| store.update_role(id, &body.name, &body.modules)).await?.map_err(|e| refused(tr, e))?;
    Ok(Json(AccountChanged { id, message: tr.edit().account_saved.to_string() }))
}

/// A choice in a list: id, name, chosen.
struct Choice {
    id: i64,
    name: String,
    chosen: bool,
}

#[derive(Template)]
#[template(path = "account_edit.html")]
struct AccountPage {
    tr: Tr,
    user: String,
    id: i64,
    username: String,
    is_admin: bool,
    disabled: bool,
    roles: Vec<Choice>,
    groups: Vec<Choice>,
    sites: Vec<Choice>,
}

/// `GET /accounts/{id}/edit` (admin).
pub async fn account_page(State(state): State<AppState>, caller: Admin, ApiPath(id): ApiPath<i64>) -> Response {
    let loaded = blocking(&state, |store| -> Result<_, crate::store::DbError> {
        Ok((store.list_accounts()?, store.list_roles()?, store.list_groups()?, store.list_sites()?))
    })
    .await;
    let (accounts, roles, groups, sites) = match loaded {
        Ok(Ok(found)) => found,
        Ok(Err(err)) => return ApiError::from(err).into_response(),
        Err(err) => return err.into_response(),
    };
    let Some(account) = accounts.into_iter().find(|a| a.id == id) else {
        return refused(caller.tr, AccountEditError::UnknownAccount(id)).into_response();
    };
    let scope = account.site_ids.clone().unwrap_or_default();
    render(&AccountPage {
        tr: caller.tr,
        user: caller.account.username.clone(),
        id,
        username: account.username,
        is_admin: account.is_admin,
        disabled: account.disabled,
        roles: roles.into_iter().map(|r| Choice { chosen: account.role_id == Some(r.id), id: r.id, name: r.name }).collect(),
        groups: groups.into_iter().map(|g| Choice { chosen: account.group_id == Some(g.id), id: g.id, name: g.name }).collect(),
        sites: sites.into_iter().map(|s| Choice { chosen: scope.contains(&s.id), id: s.id, name: s.name }).collect(),
    })
}

struct ModuleChoice {
    key: &'static str,
    label: &'static str,
    chosen: bool,
}

#[derive(Template)]
#[template(path = "role_edit.html")]
struct RolePage {
    tr: Tr,
    user: String,
    id: i64,
    name: String,
    modules: Vec<ModuleChoice>,
}

/// `GET /roles/{id}/edit` (admin).
pub async fn role_page(State(state): State<AppState>, caller: Admin, ApiPath(id): ApiPath<i64>) -> Response {
    let roles = match blocking(&state, |store| store.list_roles()).await {
        Ok(Ok(roles)) => roles,
        Ok(Err(err)) => return ApiError::from(err).into_response(),
        Err(err) => return err.into_response(),
    };
    let Some(role) = roles.into_iter().find(|r| r.id == id) else {
        return refused(caller.tr, AccountEditError::UnknownRole(id)).into_response();
    };
    let en = caller.tr.is_en();
    render(&RolePage {
        tr: caller.tr,
        user: caller.account.username.clone(),
        id,
        modules: MODULES
            .iter()
            .map(|(key, zh, e)| ModuleChoice { key, label: if en { e } else { zh }, chosen: role.modules.iter().any(|m| m == key) })
            .collect(),
        name: role.name,
    })
}
