//! The site admin's JSON API for accounts: extensions (the phones' SIP credentials), agent
//! accounts with their live states, roles, and staff accounts whose role decides what they
//! may do.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::driver::inbox::DriverMsg;
use crate::store::{CreateExtensionError, CreateUserError, Module, Role, RoleError, SiteRole};
use crate::web::guard::need;
use crate::web::limits::{self, ApiJson, ApiPath, Check, Limits};
use crate::web::{AdminUser, ApiError, AppState, ErrorBody};

/// `POST /api/extensions`.
#[derive(Deserialize, ToSchema)]
pub struct ExtensionForm {
    /// 2 to 8 digits.
    extension: String,
    /// The phone's SIP password, 6 to 128 characters.
    password: String,
}

impl Limits for ExtensionForm {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        check.required("extension", &self.extension, 8)?;
        check.text("password", &self.password, limits::PASSWORD)
    }
}

/// An extension.
#[derive(Serialize, ToSchema)]
pub struct ExtensionReply {
    extension: String,
    /// Whether its phone is registered now (absent in the creation's answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    registered: Option<bool>,
}

/// `POST /api/extensions {extension, password}` (site admin, extensions).
#[utoipa::path(post, path = "/api/extensions", tag = "site admin", request_body = ExtensionForm,
    responses((status = 201, description = "Created", body = ExtensionReply),
              (status = 409, description = "The extension exists", body = ErrorBody)))]
pub async fn create_extension(
    _: AdminUser<need::Extensions>,
    State(state): State<AppState>,
    ApiJson(form): ApiJson<ExtensionForm>,
) -> Result<Response, ApiError> {
    match state.store.create_extension(&form.extension, &form.password) {
        Ok(()) => {}
        Err(CreateExtensionError::Taken(extension)) => {
            return Err(ApiError::new(StatusCode::CONFLICT, format!("extension {extension} already exists")));
        }
        Err(CreateExtensionError::Db(error)) => return Err(error.into()),
        Err(error) => return Err(ApiError::bad_request(error)),
    }
    state.driver.send(DriverMsg::ExtensionsChanged);
    let reply = ExtensionReply { extension: form.extension.trim().to_string(), registered: None };
    Ok((StatusCode::CREATED, Json(reply)).into_response())
}

/// `GET /api/extensions` (site admin, extensions): extensions and whether their phones are
/// registered.
#[utoipa::path(get, path = "/api/extensions", tag = "site admin",
    responses((status = 200, description = "Every extension", body = Vec<ExtensionReply>)))]
pub async fn list_extensions(_: AdminUser<need::Extensions>, State(state): State<AppState>) -> Result<Json<Vec<ExtensionReply>>, ApiError> {
    let registered = state.driver.status().await.registered_extensions;
    let list = state
        .store
        .extensions()?
        .into_iter()
        .map(|ext| ExtensionReply { registered: Some(registered.contains(&ext.extension)), extension: ext.extension })
        .collect();
    Ok(Json(list))
}

/// `POST /api/agents`.
#[derive(Deserialize, ToSchema)]
pub struct AgentForm {
    /// At most 32 characters, unique on the site.
    username: String,
    /// 6 to 128 characters.
    password: String,
    /// At most 64 characters; the username when empty.
    #[serde(default)]
    name: String,
    /// An extension created beforehand.
    extension: String,
}

impl Limits for AgentForm {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        check.required("username", &self.username, limits::USERNAME)?;
        check.text("password", &self.password, limits::PASSWORD)?;
        check.text("name", &self.name, limits::NAME)?;
        check.required("extension", &self.extension, 8)
    }
}

/// A created agent account.
#[derive(Serialize, ToSchema)]
pub struct AgentCreated {
    agent_id: u64,
}

/// `POST /api/agents {username, password, name, extension}` (site admin, accounts).
#[utoipa::path(post, path = "/api/agents", tag = "site admin", request_body = AgentForm,
    responses((status = 201, description = "Created", body = AgentCreated),
              (status = 409, description = "The username is taken", body = ErrorBody)))]
pub async fn create_agent(
    _: AdminUser<need::Accounts>,
    State(state): State<AppState>,
    ApiJson(form): ApiJson<AgentForm>,
) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let created = tokio::task::spawn_blocking(move || {
        let name = if form.name.trim().is_empty() { form.username.clone() } else { form.name.clone() };
        store.create_user(&form.username, &form.password, Role::Agent, &name, Some(form.extension.trim()))
    })
    .await
    .map_err(ApiError::internal)?;
    match created {
        Ok(agent_id) => Ok((StatusCode::CREATED, Json(AgentCreated { agent_id })).into_response()),
        Err(CreateUserError::Taken(username)) => {
            Err(ApiError::new(StatusCode::CONFLICT, format!("username \"{username}\" is already taken")))
        }
        Err(CreateUserError::Db(error)) => Err(error.into()),
        Err(error) => Err(ApiError::bad_request(error)),
    }
}

/// An agent account with its live state.
#[derive(Serialize, ToSchema)]
pub struct AgentRow {
    agent_id: u64,
    username: String,
    name: String,
    extension: Option<String>,
    /// `signed_out`, `available`, `one_click_only`, `break` or `away`.
    state: String,
}

/// `GET /api/agents` (site admin, accounts): accounts with their live states.
#[utoipa::path(get, path = "/api/agents", tag = "site admin",
    responses((status = 200, description = "Every agent account", body = Vec<AgentRow>)))]
pub async fn list_agents(_: AdminUser<need::Accounts>, State(state): State<AppState>) -> Result<Json<Vec<AgentRow>>, ApiError> {
    let list = state
        .store
        .users()?
        .into_iter()
        .filter(|user| user.role == Role::Agent)
        .map(|user| AgentRow {
            state: state.desk.state(user.user_id).as_str().to_string(),
            agent_id: user.user_id,
            username: user.username,
            name: user.name,
            extension: user.extension,
        })
        .collect();
    Ok(Json(list))
}

// ---- site admin: roles and staff ----

fn role_error(error: RoleError) -> ApiError {
    match error {
        RoleError::Taken(name) => ApiError::new(StatusCode::CONFLICT, format!("role name \"{name}\" is already taken")),
        RoleError::Invalid(message) => ApiError::bad_request(message),
        RoleError::Db(error) => error.into(),
    }
}

/// `GET /api/roles` (site admin).
#[utoipa::path(get, path = "/api/roles", tag = "site admin",
    responses((status = 200, description = "The site's roles with their modules", body = Vec<SiteRole>)))]
pub async fn list_roles(_: AdminUser<need::Accounts>, State(state): State<AppState>) -> Result<Json<Vec<SiteRole>>, ApiError> {
    Ok(Json(state.store.roles()?))
}

#[derive(Deserialize, ToSchema)]
pub struct RoleForm {
    name: String,
    modules: Vec<String>,
}

/// A created role.
#[derive(Serialize, ToSchema)]
pub struct RoleCreated {
    role_id: u64,
}

/// `POST /api/roles {name, modules: [...]}` (site admin).
#[utoipa::path(post, path = "/api/roles", tag = "site admin", request_body = RoleForm,
    responses((status = 201, description = "Created", body = RoleCreated),
              (status = 409, description = "The role name is taken", body = ErrorBody)))]
pub async fn create_role(
    _: AdminUser<need::Accounts>,
    State(state): State<AppState>,
    ApiJson(form): ApiJson<RoleForm>,
) -> Result<Response, ApiError> {
    let mut chosen = Vec::new();
    for name in &form.modules {
        match Module::parse(name) {
            Some(module) => chosen.push(module),
            None => return Err(ApiError::bad_request(format!("module \"{name}\" is unknown"))),
        }
    }
    let role_id = state.store.create_role(&form.name, &chosen).map_err(role_error)?;
    Ok((StatusCode::CREATED, Json(RoleCreated { role_id })).into_response())
}

#[derive(Deserialize, ToSchema)]
pub struct AssignForm {
    role_id: Option<u64>,
}

/// An account's role as given.
#[derive(Serialize, ToSchema)]
pub struct RoleAssigned {
    user_id: u64,
    /// None: the defaults of the account's kind.
    role_id: Option<u64>,
}

/// `POST /api/accounts/{user_id}/role {role_id}` (site admin; null: the kind's defaults).
#[utoipa::path(post, path = "/api/accounts/{user_id}/role", tag = "site admin", request_body = AssignForm, params(("user_id" = u64, Path)),
    responses((status = 200, description = "The account's role", body = RoleAssigned)))]
pub async fn assign_role(
    AdminUser { user, .. }: AdminUser<need::Accounts>,
    State(state): State<AppState>,
    ApiPath(user_id): ApiPath<u64>,
    ApiJson(form): ApiJson<AssignForm>,
) -> Result<Json<RoleAssigned>, ApiError> {
    if user_id == user.user_id {
        return Err(ApiError::bad_request("you cannot change your own role; ask another site admin"));
    }
    state.store.assign_role(user_id, form.role_id).map_err(role_error)?;
    Ok(Json(RoleAssigned { user_id, role_id: form.role_id }))
}

/// A created staff account.
#[derive(Serialize, ToSchema)]
pub struct StaffCreated {
    user_id: u64,
}

#[derive(Deserialize, ToSchema)]
pub struct StaffForm {
    username: String,
    password: String,
    #[serde(default)]
    name: String,
    role_id: Option<u64>,
}

/// `POST /api/staff {username, password, name, role_id}` (site admin): a site staff
/// account (线管, 值班长, ...) whose role decides what it may do.
#[utoipa::path(post, path = "/api/staff", tag = "site admin", request_body = StaffForm,
    responses((status = 201, description = "Created", body = StaffCreated),
              (status = 409, description = "The username is taken", body = ErrorBody)))]
pub async fn create_staff(
    _: AdminUser<need::Accounts>,
    State(state): State<AppState>,
    ApiJson(form): ApiJson<StaffForm>,
) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let created = tokio::task::spawn_blocking(move || {
        let name = if form.name.trim().is_empty() { form.username.clone() } else { form.name.clone() };
        let user_id = store.create_user(&form.username, &form.password, crate::store::Role::Admin, &name, None)?;
        Ok::<_, anyhow::Error>((user_id, form.role_id))
    })
    .await
    .map_err(ApiError::internal)?;
    let (user_id, role_id) = created.map_err(|error| match error.downcast::<crate::store::CreateUserError>() {
        Ok(crate::store::CreateUserError::Taken(name)) => {
            ApiError::new(StatusCode::CONFLICT, format!("username \"{name}\" is already taken"))
        }
        Ok(other) => ApiError::bad_request(other),
        Err(other) => ApiError::internal(other),
    })?;
    state.store.assign_role(user_id, role_id).map_err(role_error)?;
    Ok((StatusCode::CREATED, Json(StaffCreated { user_id })).into_response())
}

// ---- length limits of every request ----

impl Limits for RoleForm {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        // The store keeps role names to 32 characters.
        check.required("name", &self.name, 32)?;
        check.items("modules", self.modules.len(), limits::ITEMS)?;
        self.modules.iter().try_for_each(|module| check.text("modules", module, limits::KEY))
    }
}

impl Limits for AssignForm {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        check.opt_id("role_id", self.role_id)
    }
}

impl Limits for StaffForm {
    fn check(&self, check: &mut Check) -> Result<(), ApiError> {
        check.required("username", &self.username, limits::USERNAME)?;
        check.text("password", &self.password, limits::PASSWORD)?;
        check.text("name", &self.name, limits::NAME)?;
        check.opt_id("role_id", self.role_id)
    }
}
