//! The site's roles and accounts changed after creation (module 账号管理): a role's name and
//! modules, an account disabled or enabled, a new random password shown once. A site admin
//! cannot disable or reset itself (another admin must), so the box keeps an admin who can
//! sign in.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::store::{Module, RoleError};
use crate::web::guard::need;
use crate::web::limits::{self, ApiJson, ApiPath, Check, Limits};
use crate::web::routes::Registry;
use crate::web::{AdminUser, ApiError, AppState, ErrorBody};

/// This module's routes (one line in the shared registry).
pub(crate) fn routes(r: Registry) -> Registry {
    r.post("/api/roles/{role_id}", update_role)
        .post("/api/accounts/{user_id}/disabled", set_disabled)
        .post("/api/accounts/{user_id}/password", reset_password)
}

#[derive(Deserialize, ToSchema)]
pub struct RoleEdit {
    name: String,
    #[serde(default)]
    modules: Vec<String>,
}

impl Limits for RoleEdit {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        // The store keeps role names to 32 characters.
        check.required("name", &self.name, 32)?;
        check.items("modules", self.modules.len(), limits::ITEMS)?;
        self.modules.iter().try_for_each(|module| check.text("modules", module, limits::KEY))
    }
}

/// What an account change answers, with a sentence for the page.
#[derive(Serialize, ToSchema)]
pub struct AccountChanged {
    user_id: u64,
    message: String,
}

/// `what` is the English noun (`account`, `role`); the catalogue says it in Chinese.
fn unknown(what: &str, id: u64) -> ApiError {
    ApiError::new(axum::http::StatusCode::NOT_FOUND, format!("{what} {id} does not exist"))
}

/// `POST /api/roles/{role_id} {name, modules}` (site admin): renames a role and replaces its
/// modules.
#[utoipa::path(post, path = "/api/roles/{role_id}", tag = "site admin", request_body = RoleEdit, params(("role_id" = u64, Path)),
    responses((status = 200, description = "Saved", body = AccountChanged),
              (status = 400, description = "An empty name or an unknown module", body = ErrorBody),
              (status = 404, description = "No such role", body = ErrorBody),
              (status = 409, description = "Another role has the name", body = ErrorBody)))]
pub async fn update_role(
    _: AdminUser<need::Accounts>,
    State(state): State<AppState>,
    ApiPath(role_id): ApiPath<u64>,
    ApiJson(form): ApiJson<RoleEdit>,
) -> Result<Json<AccountChanged>, ApiError> {
    let mut chosen = Vec::new();
    for name in &form.modules {
        match Module::parse(name) {
            Some(module) => chosen.push(module),
            None => return Err(ApiError::bad_request(format!("permission module \"{name}\" does not exist"))),
        }
    }
    match state.store.update_role(role_id, &form.name, &chosen) {
        Ok(true) => Ok(Json(AccountChanged { user_id: role_id, message: "已保存".to_string() })),
        Ok(false) => Err(unknown("role", role_id)),
        Err(RoleError::Taken(name)) => Err(ApiError::new(axum::http::StatusCode::CONFLICT, format!("角色名称“{name}”已被使用：请换一个名称"))),
        Err(RoleError::Invalid(_)) => Err(ApiError::bad_request("角色名称须为 1 到 32 个字")),
        Err(RoleError::Db(error)) => Err(error.into()),
    }
}

#[derive(Deserialize, ToSchema)]
pub struct DisabledForm {
    disabled: bool,
}

impl Limits for DisabledForm {
    fn check(&self, _: &mut Check) -> Result<(), ApiError> {
        Ok(())
    }
}

/// `POST /api/accounts/{user_id}/disabled {disabled}` (site admin): disables an account (its
/// sessions end, it cannot sign in) or enables it again.
#[utoipa::path(post, path = "/api/accounts/{user_id}/disabled", tag = "site admin", request_body = DisabledForm, params(("user_id" = u64, Path)),
    responses((status = 200, description = "Done", body = AccountChanged),
              (status = 400, description = "The caller's own account", body = ErrorBody),
              (status = 404, description = "No such account", body = ErrorBody)))]
pub async fn set_disabled(
    AdminUser { user, .. }: AdminUser<need::Accounts>,
    State(state): State<AppState>,
    ApiPath(user_id): ApiPath<u64>,
    ApiJson(form): ApiJson<DisabledForm>,
) -> Result<Json<AccountChanged>, ApiError> {
    if user_id == user.user_id {
        return Err(ApiError::bad_request("you cannot disable your own account; ask another site admin"));
    }
    if !state.store.set_user_disabled(user_id, form.disabled)? {
        return Err(unknown("account", user_id));
    }
    Ok(Json(AccountChanged { user_id, message: if form.disabled { "已停用" } else { "正常" }.to_string() }))
}

/// A new password, shown once.
#[derive(Serialize, ToSchema)]
pub struct PasswordReset {
    user_id: u64,
    password: String,
    message: String,
}

/// `POST /api/accounts/{user_id}/password` (site admin): a new random password; the
/// account's sessions end.
#[utoipa::path(post, path = "/api/accounts/{user_id}/password", tag = "site admin", params(("user_id" = u64, Path)),
    responses((status = 200, description = "The new password (shown once)", body = PasswordReset),
              (status = 400, description = "The caller's own account", body = ErrorBody),
              (status = 404, description = "No such account", body = ErrorBody)))]
pub async fn reset_password(
    AdminUser { user, .. }: AdminUser<need::Accounts>,
    State(state): State<AppState>,
    ApiPath(user_id): ApiPath<u64>,
) -> Result<Json<PasswordReset>, ApiError> {
    if user_id == user.user_id {
        return Err(ApiError::bad_request("you cannot reset your own password here; ask another site admin"));
    }
    let Some(password) = state.store.reset_user_password(user_id)? else {
        return Err(unknown("account", user_id));
    };
    Ok(Json(PasswordReset { user_id, message: format!("新密码（只显示这一次）：{password}"), password }))
}

/// The words of the account-edit controls on 角色管理, per language (kept with this module
/// so its words travel with it).
pub struct EditWords {
    pub edit: &'static str,
    pub active: &'static str,
    pub disabled: &'static str,
    pub disable: &'static str,
    pub enable: &'static str,
    pub disable_confirm: &'static str,
    pub reset: &'static str,
    pub reset_confirm: &'static str,
}

static ZH: EditWords = EditWords {
    edit: "编辑",
    active: "正常",
    disabled: "已停用",
    disable: "停用账号",
    enable: "启用账号",
    disable_confirm: "停用后该账号立即退出且不能再登录。确定停用？",
    reset: "重置密码",
    reset_confirm: "重置后旧密码立即失效。确定重置？",
};

static EN: EditWords = EditWords {
    edit: "Edit",
    active: "Active",
    disabled: "Disabled",
    disable: "Disable account",
    enable: "Enable account",
    disable_confirm: "The account is signed out at once and cannot sign in. Disable it?",
    reset: "Reset password",
    reset_confirm: "The old password stops working at once. Reset it?",
};

/// The controls' words in the language of the request's cookie.
pub fn words(headers: &axum::http::HeaderMap) -> &'static EditWords {
    match crate::web::i18n::Lang::from_cookie_header(crate::web::cookie_header(headers)) {
        crate::web::i18n::Lang::En => &EN,
        _ => &ZH,
    }
}
