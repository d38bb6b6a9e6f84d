//! The monitoring wall (职场监控管理, module `site.monitor`): a page with every site the
//! viewer may see, a page per site (its agents and running tasks), the same as JSON, and
//! an SSE stream that keeps both pages current.
//!
//! - The stream sends server-rendered HTML (in the viewer's language, escaped by askama)
//!   for each site that changed, so the page's script only swaps elements: the wording
//!   stays in the typed `Text`, and the JSON, the pages and the stream read one view
//!   ([`super::wall_view`]).
//! - Changes are coalesced for [`COALESCE`] before rendering: a site sending several
//!   snapshots in a burst costs one render per open wall.
//! - Every [`REFRESH`], offline sites (or the one site of a site's page) are sent again
//!   (their ages grow) and the session is checked: a stream outlives neither its session
//!   nor the hub; changes of sites outside the viewer's scope wake it but send nothing.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use super::extract::ApiPath;
use super::guard::{Registry, SiteMonitor};
use super::pages::render;
use super::wall_view::{self, SiteCard, SiteDetail};
use super::{blocking, cookie, Access, ApiError, AppState, Module, Tr, SESSION_COOKIE};
use crate::store::{now_unix, Scope, WallSite};

/// How long a stream gathers changes before it renders them.
const COALESCE: Duration = Duration::from_millis(100);

/// How often offline sites' ages are sent again and the session is checked.
const REFRESH: Duration = Duration::from_secs(20);

/// The wall's routes, all behind the module.
pub(super) fn routes(r: Registry) -> Registry {
    let monitor = Access::module::<SiteMonitor>();
    r.get("/monitor", monitor, wall_page)
        .get("/monitor/sites/{id}", monitor, site_page)
        .get("/api/monitor", monitor, wall_json)
        .get("/api/monitor/sites/{id}", monitor, site_json)
        .get("/api/monitor/events", monitor, wall_events)
}

#[derive(Template)]
#[template(path = "wall.html")]
struct WallPage {
    tr: Tr,
    user: String,
    cards: Vec<SiteCard>,
}

#[derive(Template)]
#[template(path = "wall_site.html")]
struct WallSitePage {
    tr: Tr,
    user: String,
    detail: SiteDetail,
}

#[derive(Template)]
#[template(path = "wall_card.html")]
struct CardHtml<'a> {
    tr: Tr,
    card: &'a SiteCard,
}

#[derive(Template)]
#[template(path = "wall_detail.html")]
struct DetailHtml<'a> {
    tr: Tr,
    detail: &'a SiteDetail,
}

async fn sites_in_scope(state: &AppState, scope: &Scope) -> Result<Vec<WallSite>, ApiError> {
    let scope = scope.clone();
    Ok(blocking(state, move |store| store.wall_sites(&scope)).await??)
}

/// One site, or 404 as if it did not exist when the viewer may not see it.
async fn site_in_scope(state: &AppState, scope: &Scope, id: i64, tr: Tr) -> Result<WallSite, ApiError> {
    let scope = scope.clone();
    blocking(state, move |store| store.wall_site(&scope, id))
        .await??
        .ok_or_else(|| ApiError::not_found(if tr.is_en() { format!("site {id} does not exist") } else { format!("职场 {id} 不存在") }))
}

/// `GET /monitor`: every site in scope.
pub async fn wall_page(State(state): State<AppState>, Module(user, _): Module<SiteMonitor>) -> Result<Response, ApiError> {
    let sites = sites_in_scope(&state, &user.scope).await?;
    let now = now_unix();
    let cards = sites.iter().map(|site| wall_view::card(user.tr, site, now)).collect();
    Ok(render(&WallPage { tr: user.tr, user: user.account.username.clone(), cards }))
}

/// `GET /monitor/sites/{id}`: one site's agents and running tasks.
pub async fn site_page(
    State(state): State<AppState>,
    Module(user, _): Module<SiteMonitor>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    let site = site_in_scope(&state, &user.scope, id, user.tr).await;
    let site = match site {
        Ok(site) => site,
        Err(error) => {
            let mut page = super::pages::message(user.tr, &user.account.username, user.tr.text().common_failed, error.message, "/monitor");
            *page.status_mut() = error.status;
            return Ok(page);
        }
    };
    let detail = wall_view::detail(user.tr, &site, now_unix());
    Ok(render(&WallSitePage { tr: user.tr, user: user.account.username.clone(), detail }))
}

/// `GET /api/monitor`: every site in scope, as the wall shows it.
#[utoipa::path(get, path = "/api/monitor", tag = "monitor",
    responses((status = 200, description = "Every site the caller may see, with its live figures or last known state", body = Vec<SiteCard>)))]
pub async fn wall_json(State(state): State<AppState>, Module(user, _): Module<SiteMonitor>) -> Result<Json<Vec<SiteCard>>, ApiError> {
    let sites = sites_in_scope(&state, &user.scope).await?;
    let now = now_unix();
    Ok(Json(sites.iter().map(|site| wall_view::card(user.tr, site, now)).collect()))
}

/// `GET /api/monitor/sites/{id}`: one site with its agents and running tasks.
#[utoipa::path(get, path = "/api/monitor/sites/{id}", tag = "monitor",
    params(("id" = i64, Path, description = "Site id")),
    responses((status = 200, description = "The site's card, its agents with their state and since when, its running tasks", body = SiteDetail),
              (status = 404, description = "No such site in the caller's scope", body = super::ErrorBody)))]
pub async fn site_json(
    State(state): State<AppState>,
    Module(user, _): Module<SiteMonitor>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<SiteDetail>, ApiError> {
    let site = site_in_scope(&state, &user.scope, id, user.tr).await?;
    Ok(Json(wall_view::detail(user.tr, &site, now_unix())))
}

/// Which stream: the whole wall, or one site's page.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct EventsQuery {
    /// One site's page (its card, agents and tasks) instead of the whole wall.
    site: Option<i64>,
}

/// One element the page replaces (or, on the wall, adds).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WallPatch {
    /// The id of the element to replace: `site-<id>` or `site-detail`.
    pub target: String,
    pub html: String,
}

/// `GET /api/monitor/events`: `cards` events, each `{"items": [WallPatch]}`, first with
/// everything the page shows, then with what changed.
#[utoipa::path(get, path = "/api/monitor/events", tag = "monitor", params(EventsQuery),
    responses((status = 200, description = "Server-sent events named `cards`, each {\"items\": [WallPatch]} (the first holds every site in scope)", content_type = "text/event-stream", body = WallPatch),
              (status = 404, description = "`site` names no site in the caller's scope", body = super::ErrorBody)))]
pub async fn wall_events(
    State(state): State<AppState>,
    Module(user, _): Module<SiteMonitor>,
    headers: HeaderMap,
    Query(query): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    // Subscribe before the first read, so a change in between is sent (at worst twice).
    let changes = state.store.wall_changes();
    if let Some(id) = query.site {
        site_in_scope(&state, &user.scope, id, user.tr).await?;
    }
    let token = cookie(&headers, SESSION_COOKIE).unwrap_or_default().to_string();
    let stopping = state.shutdown.clone().cancelled_owned();
    let stream = WallStream { state, scope: user.scope.clone(), tr: user.tr, site: query.site, token };
    Ok(Sse::new(stream.run(changes).take_until(stopping)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}

struct WallStream {
    state: AppState,
    scope: Scope,
    tr: Tr,
    /// `Some`: one site's page.
    site: Option<i64>,
    token: String,
}

impl WallStream {
    fn run(self, changes: tokio::sync::broadcast::Receiver<i64>) -> impl Stream<Item = Result<Event, Infallible>> {
        let mut refresh = tokio::time::interval_at(tokio::time::Instant::now() + REFRESH, REFRESH);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // `None` in the set's place: everything (the first event, and after lagging).
        futures::stream::unfold((self, changes, refresh, true), |(this, mut changes, mut refresh, first)| async move {
            // The first event holds everything; later ones only what changed, and only
            // when some of it renders (a site's page ignores the wall's other sites).
            let items = loop {
                let wanted = if first { None } else { this.next_changes(&mut changes, &mut refresh).await? };
                let items = this.patches(wanted).await;
                if first || !items.is_empty() {
                    break items;
                }
            };
            let data = serde_json::json!({ "items": items }).to_string();
            Some((Ok(Event::default().event("cards").data(data)), (this, changes, refresh, false)))
        })
    }

    /// Waits for a change the viewer may see (or the refresh tick) and gathers the rest of
    /// its burst: the sites to render, `None` for all. `None` overall ends the stream
    /// (the hub is stopping, or the session is over).
    async fn next_changes(
        &self,
        changes: &mut tokio::sync::broadcast::Receiver<i64>,
        refresh: &mut tokio::time::Interval,
    ) -> Option<Option<BTreeSet<i64>>> {
        let mine = |id: i64| self.scope.site(id) && self.site.is_none_or(|only| only == id);
        let mut wanted: Option<BTreeSet<i64>> = Some(BTreeSet::new());
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(id) if mine(id) => { wanted.get_or_insert_default().insert(id); break; }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => { wanted = None; break; }
                    Err(RecvError::Closed) => return None,
                },
                _ = refresh.tick() => {
                    if !self.session_alive().await {
                        return None;
                    }
                    // Ages grow: offline sites' cards, and a site page's "for how long".
                    wanted = Some(match self.site {
                        Some(id) => BTreeSet::from([id]),
                        None => self.offline_sites().await,
                    });
                    break;
                }
            }
        }
        let deadline = tokio::time::sleep(COALESCE);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(id) if mine(id) => { if let Some(set) = wanted.as_mut() { set.insert(id); } }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => wanted = None,
                    Err(RecvError::Closed) => return None,
                },
                _ = &mut deadline => break,
            }
        }
        Some(wanted)
    }

    async fn session_alive(&self) -> bool {
        let token = self.token.clone();
        matches!(blocking(&self.state, move |store| store.session_account(&token)).await, Ok(Ok(Some(_))))
    }

    async fn offline_sites(&self) -> BTreeSet<i64> {
        match sites_in_scope(&self.state, &self.scope).await {
            Ok(sites) => sites.iter().filter(|site| !site.online).map(|site| site.id).collect(),
            Err(_) => BTreeSet::new(),
        }
    }

    /// The elements to replace: `wanted` sites (all when `None`) that the viewer may see.
    async fn patches(&self, wanted: Option<BTreeSet<i64>>) -> Vec<WallPatch> {
        let now = now_unix();
        if let Some(id) = self.site {
            if wanted.as_ref().is_some_and(|set| !set.contains(&id)) {
                return Vec::new();
            }
            let Ok(site) = site_in_scope(&self.state, &self.scope, id, self.tr).await else { return Vec::new() };
            let detail = wall_view::detail(self.tr, &site, now);
            let html = DetailHtml { tr: self.tr, detail: &detail }.render().unwrap_or_default();
            return vec![WallPatch { target: "site-detail".to_string(), html }];
        }
        let sites = match wanted {
            None => sites_in_scope(&self.state, &self.scope).await.unwrap_or_default(),
            Some(set) => {
                let scope = self.scope.clone();
                let found = blocking(&self.state, move |store| {
                    set.into_iter().filter_map(|id| store.wall_site(&scope, id).ok().flatten()).collect::<Vec<_>>()
                })
                .await;
                found.unwrap_or_default()
            }
        };
        sites
            .iter()
            .map(|site| {
                let card = wall_view::card(self.tr, site, now);
                let html = CardHtml { tr: self.tr, card: &card }.render().unwrap_or_default();
                WallPatch { target: format!("site-{}", site.id), html }
            })
            .collect()
    }
}
