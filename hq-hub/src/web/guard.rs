//! Who may call each route, decided in one place.
//!
//! - The router is built only through [`Registry`]: every `route(method, path, access,
//!   handler)` names an [`Access`] rule, the registry records it ([`routes`] lists them for
//!   tests and docs) and wraps the handler in the guard that enforces it. A route cannot be
//!   added without saying who may call it.
//! - The guard runs before any of the handler's extractors: no session → 401 JSON under
//!   `/api`, a redirect to the login page otherwise; a role without the module, or a
//!   sub-admin on an admin route → 403 (JSON, or a message page in the caller's language).
//!   It computes the caller's [`Scope`] once and hands it on as a [`Caller`].
//! - Handlers take the evidence as an extractor: [`Admin`], [`Module<M>`] (one marker type
//!   per permission module) or [`Caller`] (any logged-in account). Each checks that the
//!   route was registered with the rule it stands for, so a handler that needs `Admin` on a
//!   route registered more loosely fails loudly (500) instead of opening a hole; the route
//!   enumeration test calls every route as an admin and catches that.
//! - The data scope inside a module (which sites' and projects' rows) is the handler's
//!   business, through `caller.scope`: rows outside it are filtered out or answer 404 as if
//!   they did not exist.

use std::marker::PhantomData;
use std::ops::Deref;

use axum::extract::{FromRequestParts, Request, State};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{on, MethodFilter};
use axum::Router;

use super::{account_from, blocking, cookie, ApiError, AppState, Lang, Tr};
use crate::store::{Account, Scope};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, logged in or not (login, static files, the language switch).
    Public,
    /// Any logged-in account; the handler filters rows through the caller's scope.
    LoggedIn,
    /// Accounts whose role grants this permission module (admins hold every module).
    Module(&'static str),
    /// Accounts whose role grants at least one of these modules.
    AnyModule(&'static [&'static str]),
    /// Admin accounts only.
    Admin,
}

impl Access {
    /// The rule for one permission module, from its marker type.
    pub const fn module<M: Permission>() -> Access {
        Access::Module(M::KEY)
    }

    /// Whether `scope` passes this rule (a logged-in caller).
    pub(super) fn allows(self, scope: &Scope) -> bool {
        match self {
            Access::Public | Access::LoggedIn => true,
            Access::Module(key) => scope.has_module(key),
            Access::AnyModule(keys) => keys.iter().any(|key| scope.has_module(key)),
            Access::Admin => scope.is_admin(),
        }
    }
}

/// A permission module of the module tree, as a type a handler can ask for.
pub trait Permission: Send + Sync + 'static {
    /// The module's key in [`crate::store::MODULES`].
    const KEY: &'static str;
}

macro_rules! permissions {
    ($($(#[$doc:meta])* $name:ident = $key:literal;)*) => {
        $(
            $(#[$doc])*
            pub struct $name;
            impl Permission for $name {
                const KEY: &'static str = $key;
            }
        )*
        /// Every module key a marker type stands for (checked against the module tree).
        #[cfg(test)]
        const MARKER_KEYS: &[&str] = &[$($key),*];
    };
}

permissions! {
    /// 黑白名单设置.
    CtiLists = "cti.lists";
    /// 语音库.
    CtiVoice = "cti.voice";
    /// 账号管理.
    AccountsAccounts = "accounts.accounts";
    /// 角色管理.
    AccountsRoles = "accounts.roles";
    /// 分组部门.
    AccountsGroups = "accounts.groups";
    /// 业务资料 (a batch's business records).
    DataBusiness = "data.business";
    /// 系统设置 (a project's definition and parameters).
    DataSettings = "data.settings";
    /// 下发任务管理.
    DataBatches = "data.batches";
    /// 文件管理 (imports, files, the data filter, dispatch).
    DataFiles = "data.files";
    /// 录音管理.
    DataRecordings = "data.recordings";
    /// 公告管理.
    Notices = "notices";
    /// 客户资料 (a project's customer data across its sites).
    DataCustomer = "data.customer";
    /// 职场业务数据 (a project's business records across its sites, as 业务资料 opens them).
    SiteBusiness = "site.business";
    /// 数据报表管理 (report definitions and their previews).
    Reports = "reports";
    /// 职场监控管理 (the monitoring wall).
    SiteMonitor = "site.monitor";
    /// 职场通话记录 (every synced call of the caller's sites).
    SiteCalls = "site.calls";
}

/// The account modules, any of which opens the accounts page.
pub const ACCOUNT_MODULES: &[&str] = &[AccountsAccounts::KEY, AccountsRoles::KEY, AccountsGroups::KEY];

/// One registered route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: Method,
    /// The axum path pattern, e.g. `/api/files/{id}`.
    pub path: &'static str,
    pub access: Access,
}

/// Builds the router and its table of access rules together.
pub struct Registry {
    /// `None` when only the table is wanted ([`routes`]).
    state: Option<AppState>,
    router: Router<AppState>,
    table: Vec<RouteInfo>,
}

impl Registry {
    pub(super) fn new(state: Option<AppState>) -> Registry {
        Registry { state, router: Router::new(), table: Vec::new() }
    }

    /// Adds `method path` for callers `access` allows.
    pub fn route<H, T>(mut self, method: Method, path: &'static str, access: Access, handler: H) -> Registry
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        assert!(
            !self.table.iter().any(|r| r.method == method && r.path == path),
            "{method} {path} is registered twice"
        );
        if let Some(state) = &self.state {
            let filter = MethodFilter::try_from(method.clone()).unwrap_or_else(|_| panic!("{method} cannot be routed"));
            let guarded = on(filter, handler).route_layer(middleware::from_fn_with_state(
                state.clone(),
                move |State(state): State<AppState>, request: Request, next: Next| guard(state, access, request, next),
            ));
            self.router = std::mem::take(&mut self.router).route(path, guarded);
        }
        self.table.push(RouteInfo { method, path, access });
        self
    }

    pub fn get<H, T>(self, path: &'static str, access: Access, handler: H) -> Registry
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.route(Method::GET, path, access, handler)
    }

    pub fn post<H, T>(self, path: &'static str, access: Access, handler: H) -> Registry
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.route(Method::POST, path, access, handler)
    }

    pub fn put<H, T>(self, path: &'static str, access: Access, handler: H) -> Registry
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.route(Method::PUT, path, access, handler)
    }

    pub(super) fn into_parts(self) -> (Router<AppState>, Vec<RouteInfo>) {
        (self.router, self.table)
    }
}

/// Every route of the console with its access rule, as the router is built.
pub fn routes() -> Vec<RouteInfo> {
    super::register(Registry::new(None)).into_parts().1
}

/// The caller's language, from the `lang` cookie (Chinese unless it says `en`).
pub(super) fn request_tr(headers: &axum::http::HeaderMap) -> Tr {
    Tr { lang: Lang::from_cookie(cookie(headers, "lang")) }
}

/// A refusal: JSON under `/api`, otherwise a redirect (401) or a message page (403).
pub(super) fn refuse(status: StatusCode, api: bool, tr: Tr, user: &str, en: String, zh: String) -> Response {
    if api {
        return ApiError::new(status, if tr.is_en() { en } else { zh }).into_response();
    }
    if status == StatusCode::UNAUTHORIZED {
        return Redirect::to("/login").into_response();
    }
    let text = if tr.is_en() { en } else { zh };
    let mut page = super::pages::message(tr, user, tr.text().common_failed, text, "/");
    *page.status_mut() = status;
    page
}

/// The guard every registered route runs before its handler.
async fn guard(state: AppState, access: Access, mut request: Request, next: Next) -> Response {
    if access == Access::Public {
        return next.run(request).await;
    }
    let api = web_guard::is_api(request.uri().path());
    let tr = request_tr(request.headers());
    let account = match account_from(request.headers(), &state).await {
        Ok(Some(account)) => account,
        Ok(None) => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                api,
                tr,
                "",
                "not logged in: POST /api/login first".into(),
                "未登录，请先登录".into(),
            )
        }
        Err(err) => return err.into_response(),
    };
    let lookup = account.clone();
    let scope = match blocking(&state, move |store| store.scope(&lookup)).await {
        Ok(Ok(scope)) => scope,
        Ok(Err(err)) => return ApiError::from(err).into_response(),
        Err(err) => return err.into_response(),
    };
    // The side navigation of this request (see `shell`): the pages this scope may open.
    let page = super::shell::Page::new(&scope, request.uri().path());
    if !access.allows(&scope) {
        let (en, zh) = match access {
            Access::Admin => ("only an admin account may do this".to_string(), "只有管理员账号可以执行此操作".to_string()),
            Access::Module(key) => (
                format!("your role does not include the module {key:?}: ask an admin to add it"),
                format!("{}（{}）", tr_zh_no_module(), module_name_zh(key)),
            ),
            _ => ("your role does not include this module: ask an admin to add it".to_string(), tr_zh_no_module().to_string()),
        };
        return super::shell::PAGE.sync_scope(page, || refuse(StatusCode::FORBIDDEN, api, tr, &account.username, en, zh));
    }
    request.extensions_mut().insert(Caller { account, scope, tr, access });
    super::shell::PAGE.scope(page, next.run(request)).await
}

fn tr_zh_no_module() -> &'static str {
    Tr { lang: Lang::Zh }.text().common_no_module
}

fn module_name_zh(key: &str) -> &'static str {
    crate::store::MODULES.iter().find(|(k, _, _)| *k == key).map(|(_, zh, _)| *zh).unwrap_or("")
}

/// A logged-in caller that passed the route's guard: the account, what it may see, and its
/// UI language. Any guarded route's handler may take it.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account: Account,
    /// What the account may see; every list, page and download filters through it.
    pub scope: Scope,
    pub tr: Tr,
    /// The rule the route was registered with.
    pub access: Access,
}

/// A handler asked for a guard its route was not registered with: a bug in the route table.
fn misregistered(parts: &Parts, wanted: &str) -> Response {
    let registered = parts.extensions.get::<Caller>().map(|c| format!("{:?}", c.access)).unwrap_or_else(|| "Public".into());
    ApiError::internal(format!("{} is registered as {registered} but its handler needs {wanted}", parts.uri.path()))
        .into_response()
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| misregistered(parts, "a logged-in caller"))
    }
}

/// An admin caller, on a route registered [`Access::Admin`].
#[derive(Debug, Clone)]
pub struct Admin(pub Caller);

impl Deref for Admin {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.access != Access::Admin || !caller.scope.is_admin() {
            return Err(misregistered(parts, "Admin"));
        }
        Ok(Admin(caller))
    }
}

/// A caller whose role grants module `M`, on a route registered `Access::module::<M>()`.
pub struct Module<M: Permission>(pub Caller, pub PhantomData<M>);

impl<M: Permission> Deref for Module<M> {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.0
    }
}

impl<M: Permission, S: Send + Sync> FromRequestParts<S> for Module<M> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.access != Access::Module(M::KEY) || !caller.scope.has_module(M::KEY) {
            return Err(misregistered(parts, &format!("Module({:?})", M::KEY)));
        }
        Ok(Module(caller, PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_marker_is_a_module_of_the_tree_and_every_route_is_registered_once() {
        for key in MARKER_KEYS {
            assert!(crate::store::MODULES.iter().any(|(k, _, _)| k == key), "{key} is not in MODULES");
        }
        let table = routes();
        assert!(table.len() > 60, "{} routes", table.len());
        for route in &table {
            if let Access::Module(key) = route.access {
                assert!(MARKER_KEYS.contains(&key), "{} {} names {key}", route.method, route.path);
            }
        }
        // Everything that changes data needs a session, except logging in and out.
        for route in table.iter().filter(|r| r.method != Method::GET && r.access == Access::Public) {
            assert!(route.path.ends_with("login") || route.path.ends_with("logout"), "{} {} is public", route.method, route.path);
        }
    }
}
