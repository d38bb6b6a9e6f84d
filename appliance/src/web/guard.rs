//! Who may call each route, decided in one place.
//!
//! Every handler's first argument is a guard: an extractor that finds the session's account
//! and refuses the request before the handler runs unless the account is of the right kind
//! (site admin or agent) and its role holds the route's permission modules (S11). The
//! route registry ([`super::routes`]) only accepts handlers whose first argument is a
//! [`Guard`], and records the guard's [`Access`] beside the route, so a route cannot be
//! added without saying who may call it, and the routes test reads the rules from there.
//!
//! - [`Public`]: anyone (login page, assets, language switch, the login call itself).
//! - [`MaybeSignedIn`]: anyone; the handler learns who, if anybody, is signed in.
//! - [`SignedIn`]: any account.
//! - [`AdminUser<N>`]: a site admin or staff account whose role holds every module of `N`.
//! - [`AgentUser<N>`]: an agent (with an extension) whose role holds every module of `N`.
//! - [`AgentOrAdmin<A, D>`]: an agent holding `A` or a staff account holding `D`.
//!
//! Sessions live in the store (hashed, see `store::sessions`) and end after the configured
//! idle time. Pages are refused with a redirect to the login page (no session) or a 403
//! page; `/api/` routes with the JSON error, in the UI's language either way.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};

use super::i18n::Lang;
use super::{ApiError, AppState, cookie, cookie_header};
use crate::store::{Module, Role, User, Viewer};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not.
    Public,
    /// Any signed-in account.
    SignedIn,
    /// A site admin or staff account whose role holds every listed module.
    Admin(&'static [Module]),
    /// An agent whose role holds every listed module.
    Agent(&'static [Module]),
    /// An agent holding the `agent` modules, or a staff account holding the `admin` ones.
    AgentOrAdmin { agent: &'static [Module], admin: &'static [Module] },
}

impl Access {
    /// Whether an account of kind `role` (none: no session) holding `modules` may call.
    pub fn admits(&self, role: Option<Role>, modules: &[Module]) -> bool {
        let holds = |needed: &[Module]| needed.iter().all(|module| modules.contains(module));
        match (self, role) {
            (Access::Public, _) => true,
            (_, None) => false,
            (Access::SignedIn, Some(_)) => true,
            (Access::Admin(needed), Some(Role::Admin)) => holds(needed),
            (Access::Agent(needed), Some(Role::Agent)) => holds(needed),
            (Access::AgentOrAdmin { agent, .. }, Some(Role::Agent)) => holds(agent),
            (Access::AgentOrAdmin { admin, .. }, Some(Role::Admin)) => holds(admin),
            _ => false,
        }
    }
}

/// An extractor that decides whether the request may reach its handler.
pub trait Guard: FromRequestParts<AppState, Rejection = AuthRejection> + Send + 'static {
    /// Who it lets through.
    const ACCESS: Access;
}

/// The permission modules a route needs, as a type so that the guard carries them.
pub trait Need: Send + Sync + 'static {
    const MODULES: &'static [Module];
}

/// The sets of modules routes need.
pub mod need {
    use super::Need;
    use crate::store::Module;

    macro_rules! needs {
        ($($(#[$doc:meta])* $name:ident = [$($module:ident),*];)*) => {
            $(
                $(#[$doc])*
                pub struct $name;
                impl Need for $name {
                    const MODULES: &'static [Module] = &[$(Module::$module),*];
                }
            )*
        };
    }

    needs! {
        /// No module: the account's kind is enough.
        Nothing = [];
        Tasks = [Tasks];
        Extensions = [Extensions];
        Accounts = [Accounts];
        Attribution = [Attribution];
        Data = [Data];
        /// Exports read project data and need the export module besides.
        DataExport = [Data, Export];
        Monitor = [Monitor];
        Records = [Records];
        Customers = [Customers];
        Callbacks = [Callbacks];
    }
}

/// Why a request was refused before its handler.
#[derive(Debug)]
pub enum AuthRejection {
    /// No session, or it expired.
    NotLoggedIn { api: bool, lang: Lang },
    /// The account is of the wrong kind (`needed` is "admin" or "agent").
    WrongKind { api: bool, lang: Lang, needed: Role },
    /// The account's role lacks `module`.
    MissingModule { api: bool, lang: Lang, module: Module },
    /// The store failed.
    Internal(ApiError),
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let (api, lang, status, message) = match self {
            AuthRejection::Internal(error) => return error.into_response(),
            AuthRejection::NotLoggedIn { api: false, .. } => return Redirect::to("/login").into_response(),
            AuthRejection::NotLoggedIn { api, lang } => {
                let message = match lang {
                    Lang::Zh => "未登录或登录已过期：请先登录".to_string(),
                    Lang::En => "not logged in, or the session expired: POST /api/login first".to_string(),
                };
                (api, lang, StatusCode::UNAUTHORIZED, message)
            }
            AuthRejection::WrongKind { api, lang, needed } => {
                let message = match (lang, needed) {
                    (Lang::Zh, Role::Admin) => "此功能需要职场管理员账号".to_string(),
                    (Lang::Zh, Role::Agent) => "此功能需要坐席账号".to_string(),
                    (Lang::En, Role::Admin) => "this needs a site admin account".to_string(),
                    (Lang::En, Role::Agent) => "this needs an agent account".to_string(),
                };
                (api, lang, StatusCode::FORBIDDEN, message)
            }
            AuthRejection::MissingModule { api, lang, module } => {
                let message = match lang {
                    Lang::Zh => format!("您的角色不包含权限模块“{}”，请联系职场管理员", module.as_str()),
                    Lang::En => format!("your role does not include \"{}\"; ask the site admin", module.as_str()),
                };
                (api, lang, StatusCode::FORBIDDEN, message)
            }
        };
        if api {
            ApiError::new(status, message).into_response()
        } else {
            let title = match lang {
                Lang::Zh => "无权访问",
                Lang::En => "Not allowed",
            };
            (status, [(axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{} {title}: {message}", status.as_u16()))
                .into_response()
        }
    }
}

/// The request's facts every guard needs.
fn context(parts: &Parts) -> (bool, Lang) {
    let api = parts.uri.path().starts_with("/api/");
    (api, Lang::from_cookie_header(cookie_header(&parts.headers)))
}

/// The session's account, if the request carries a live session.
async fn session(parts: &Parts, state: &AppState) -> Result<Option<User>, AuthRejection> {
    let Some(token) = cookie(cookie_header(&parts.headers), "sid") else { return Ok(None) };
    let token = token.to_string();
    let store = state.store.clone();
    let idle = state.session_idle;
    let now = (state.clock)();
    let found = tokio::task::spawn_blocking(move || {
        let Some(user_id) = store.session_user(&token, now, idle)? else { return Ok(None) };
        store.user(user_id)
    })
    .await
    .map_err(|error| AuthRejection::Internal(ApiError::internal(error)))?;
    found.map_err(|error| AuthRejection::Internal(error.into()))
}

/// The signed-in account with its modules, or the refusal.
async fn signed_in(parts: &Parts, state: &AppState) -> Result<SignedIn, AuthRejection> {
    let (api, lang) = context(parts);
    let user = session(parts, state).await?.ok_or(AuthRejection::NotLoggedIn { api, lang })?;
    let modules = state.store.modules_of(user.user_id).map_err(|error| AuthRejection::Internal(error.into()))?;
    let viewer = Viewer { username: user.username.clone(), unmask: modules.contains(&Module::FullNumbers) };
    super::shell::note(user.role, &modules);
    Ok(SignedIn { user, viewer, modules })
}

/// Refuses unless `signed` is of kind `role` and holds every module of `needed`.
fn check(parts: &Parts, signed: &SignedIn, role: Role, needed: &[Module]) -> Result<(), AuthRejection> {
    let (api, lang) = context(parts);
    if signed.user.role != role {
        return Err(AuthRejection::WrongKind { api, lang, needed: role });
    }
    match needed.iter().find(|module| !signed.modules.contains(module)) {
        Some(module) => Err(AuthRejection::MissingModule { api, lang, module: *module }),
        None => Ok(()),
    }
}

/// Anyone.
pub struct Public;

impl FromRequestParts<AppState> for Public {
    type Rejection = AuthRejection;

    async fn from_request_parts(_: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Public)
    }
}

impl Guard for Public {
    const ACCESS: Access = Access::Public;
}

/// Anyone; with the account when a session is live.
pub struct MaybeSignedIn(pub Option<User>);

impl FromRequestParts<AppState> for MaybeSignedIn {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(MaybeSignedIn(session(parts, state).await?))
    }
}

impl Guard for MaybeSignedIn {
    const ACCESS: Access = Access::Public;
}

/// Any signed-in account, with its modules and the viewer its reads are masked for.
pub struct SignedIn {
    pub user: User,
    pub viewer: Viewer,
    pub modules: Vec<Module>,
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        signed_in(parts, state).await
    }
}

impl Guard for SignedIn {
    const ACCESS: Access = Access::SignedIn;
}

/// A site admin or staff account whose role holds the modules of `N`.
pub struct AdminUser<N: Need = need::Nothing> {
    pub user: User,
    pub viewer: Viewer,
    pub modules: Vec<Module>,
    need: PhantomData<N>,
}

impl<N: Need> FromRequestParts<AppState> for AdminUser<N> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let signed = signed_in(parts, state).await?;
        check(parts, &signed, Role::Admin, N::MODULES)?;
        Ok(AdminUser { user: signed.user, viewer: signed.viewer, modules: signed.modules, need: PhantomData })
    }
}

impl<N: Need> Guard for AdminUser<N> {
    const ACCESS: Access = Access::Admin(N::MODULES);
}

/// An agent, with their extension, whose role holds the modules of `N`.
pub struct AgentUser<N: Need = need::Nothing> {
    pub user: User,
    pub extension: String,
    pub viewer: Viewer,
    pub modules: Vec<Module>,
    need: PhantomData<N>,
}

impl<N: Need> FromRequestParts<AppState> for AgentUser<N> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let signed = signed_in(parts, state).await?;
        check(parts, &signed, Role::Agent, N::MODULES)?;
        let Some(extension) = signed.user.extension.clone() else {
            // An agent account always has one; an account without is not usable at a desk.
            let (api, lang) = context(parts);
            return Err(AuthRejection::WrongKind { api, lang, needed: Role::Agent });
        };
        Ok(AgentUser { user: signed.user, extension, viewer: signed.viewer, modules: signed.modules, need: PhantomData })
    }
}

impl<N: Need> Guard for AgentUser<N> {
    const ACCESS: Access = Access::Agent(N::MODULES);
}

/// An agent holding the modules of `A`, or a staff account holding those of `D`.
pub struct AgentOrAdmin<A: Need, D: Need> {
    pub user: User,
    pub viewer: Viewer,
    pub modules: Vec<Module>,
    need: PhantomData<(A, D)>,
}

impl<A: Need, D: Need> FromRequestParts<AppState> for AgentOrAdmin<A, D> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let signed = signed_in(parts, state).await?;
        let needed = match signed.user.role {
            Role::Agent => A::MODULES,
            Role::Admin => D::MODULES,
        };
        check(parts, &signed, signed.user.role, needed)?;
        Ok(AgentOrAdmin { user: signed.user, viewer: signed.viewer, modules: signed.modules, need: PhantomData })
    }
}

impl<A: Need, D: Need> Guard for AgentOrAdmin<A, D> {
    const ACCESS: Access = Access::AgentOrAdmin { agent: A::MODULES, admin: D::MODULES };
}
