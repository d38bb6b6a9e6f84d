//! The route registry: the only way routes reach the router.
//!
//! [`Registry::get`] and [`Registry::post`] accept a handler only if its first argument is
//! a [`Guard`] (the compiler checks it through [`GuardFirst`]), and record the guard's
//! [`Access`] with the method and path. [`route_table`] lists them, so the routes test and
//! the OpenAPI document work from the router's real routes, not from a list kept by hand.

use std::collections::BTreeMap;

use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodFilter, MethodRouter, on};

use super::AppState;
use super::guard::{Access, Guard};

/// One route: its method, its path (axum's syntax, `{param}`) and who may call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
}

/// Implemented by every function whose first argument is the guard `G`; `Args` are the
/// others. Only such functions can be registered.
pub trait GuardFirst<G, Args> {}

macro_rules! guard_first {
    ($($arg:ident),*) => {
        impl<F, Fut, G, $($arg,)*> GuardFirst<G, ($($arg,)*)> for F
        where
            F: FnOnce(G, $($arg,)*) -> Fut,
            G: Guard,
        {
        }
    };
}

guard_first!();
guard_first!(T1);
guard_first!(T1, T2);
guard_first!(T1, T2, T3);
guard_first!(T1, T2, T3, T4);
guard_first!(T1, T2, T3, T4, T5);
guard_first!(T1, T2, T3, T4, T5, T6);

/// Routes being registered.
#[derive(Default)]
pub struct Registry {
    table: Vec<RouteInfo>,
    methods: BTreeMap<&'static str, MethodRouter<AppState>>,
}

impl Registry {
    fn add<H, T, G, A>(mut self, method: &'static str, filter: MethodFilter, path: &'static str, handler: H) -> Registry
    where
        H: Handler<T, AppState> + GuardFirst<G, A>,
        T: 'static,
        G: Guard,
    {
        assert!(
            !self.table.iter().any(|route| route.method == method && route.path == path),
            "{method} {path} is registered twice"
        );
        self.table.push(RouteInfo { method, path, access: G::ACCESS });
        let router = match self.methods.remove(path) {
            Some(existing) => existing.on(filter, handler),
            None => on(filter, handler),
        };
        self.methods.insert(path, router);
        self
    }

    /// Registers `GET path` (HEAD is answered by the same handler).
    /// Adds a module's own routes (`module::routes`), keeping the table one chain.
    pub fn merge_with(self, routes: impl FnOnce(Registry) -> Registry) -> Registry {
        routes(self)
    }

    pub fn get<H, T, G, A>(self, path: &'static str, handler: H) -> Registry
    where
        H: Handler<T, AppState> + GuardFirst<G, A>,
        T: 'static,
        G: Guard,
    {
        self.add("GET", MethodFilter::GET, path, handler)
    }

    /// Registers `POST path`.
    pub fn post<H, T, G, A>(self, path: &'static str, handler: H) -> Registry
    where
        H: Handler<T, AppState> + GuardFirst<G, A>,
        T: 'static,
        G: Guard,
    {
        self.add("POST", MethodFilter::POST, path, handler)
    }

    /// The routes a module registers itself (`registry.merge(module::routes)`), so the
    /// shared list grows by one line per module.
    pub fn merge(self, routes: impl FnOnce(Registry) -> Registry) -> Registry {
        routes(self)
    }

    /// The routes registered so far.
    pub fn table(&self) -> &[RouteInfo] {
        &self.table
    }

    /// The router of every registered route.
    pub fn into_router(self) -> Router<AppState> {
        self.methods.into_iter().fold(Router::new(), |router, (path, methods)| router.route(path, methods))
    }
}

/// Every route of the appliance's router, with its access rule.
pub fn route_table() -> Vec<RouteInfo> {
    super::registry().table().to_vec()
}
