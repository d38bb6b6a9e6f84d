//! A shared batch's pool (共享批次号码池) at HQ: per site what it holds, dialed and gave
//! back, each open lease's age, a site away with leases flagged with the forced reclaim and
//! its warning, batch recovery (批次数据回收) of a site's batch or one lease, and the lease
//! settings. Module `data.batches`, like the batch list it is opened from.

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::extract::{ApiJson, ApiPath};
use super::guard::{Access, DataBatches, Registry};
use super::pages::render;
use super::{blocking, ApiError, AppState, ErrorBody, Module, Tr};
use crate::store::{PoolError, PoolSettings, PoolView, Scope, Store};

/// This module's routes (one line in the shared route table).
pub(super) fn routes(r: Registry) -> Registry {
    let batches = Access::module::<DataBatches>();
    r.get("/batches/{id}/pool", batches, pool_page)
        .get("/api/batches/{id}/pool", batches, get_pool)
        .put("/api/batches/{id}/pool/settings", batches, put_settings)
        .post("/api/batches/{id}/recover", batches, recover)
        .post("/api/batches/{id}/reclaim", batches, reclaim)
        .post("/api/batches/{id}/redispatch", batches, redispatch)
}

/// The dispatch form's lease fields (数据下发, shared batches): an empty one takes the pool's
/// default; one that is not a number fails the range check, which names it.
pub(super) fn lease_from_form(form: &std::collections::HashMap<String, String>) -> PoolSettings {
    let defaults = PoolSettings::default();
    let field = |name: &str| form.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    PoolSettings {
        lease_hours: field("lease_hours").map_or(defaults.lease_hours, |v| v.parse().unwrap_or(f64::NAN)),
        lease_lifetime_s: field("lease_lifetime_s").map_or(defaults.lease_lifetime_s, |v| v.parse().unwrap_or(-1)),
        min_block: field("min_block").map_or(defaults.min_block, |v| v.parse().unwrap_or(-1)),
    }
}

/// The OpenAPI operations of this module, merged into the document.
#[derive(OpenApi)]
#[openapi(paths(get_pool, put_settings, recover, reclaim, redispatch))]
pub struct PoolDoc;

impl From<PoolError> for ApiError {
    fn from(err: PoolError) -> Self {
        match err {
            PoolError::NotPooled(_) | PoolError::NoLease(_) | PoolError::UnknownSite(_) => ApiError::not_found(err.to_string()),
            PoolError::NothingPooled(_) => ApiError::new(axum::http::StatusCode::CONFLICT, err.to_string()),
            PoolError::LeaseHours(_) | PoolError::LeaseLifetime(_) | PoolError::MinBlock(_) => ApiError::bad_request(err.to_string()),
            PoolError::Encode(_) => ApiError::internal(err),
            PoolError::Db(e) => e.into(),
        }
    }
}

/// The pool of a batch the caller sees, with only the sites the caller sees.
fn visible_pool(store: &Store, scope: &Scope, batch_id: i64) -> Result<PoolView, ApiError> {
    let missing = || ApiError::from(PoolError::NotPooled(batch_id));
    let batch = store.batch(batch_id)?.filter(|b| scope.project_site(b.project_id, b.site_id)).ok_or_else(missing)?;
    let pool_id = batch.pool_id.ok_or_else(missing)?;
    let mut view = store.pool_view(pool_id)?.ok_or_else(missing)?;
    view.sites.retain(|s| scope.project_site(batch.project_id, s.site_id));
    Ok(view)
}

/// `GET /api/batches/{id}/pool`: the pool of a site's shared batch, per site.
#[utoipa::path(get, path = "/api/batches/{id}/pool", tag = "batches",
    params(("id" = i64, Path, description = "A site's batch of the shared batch")),
    responses((status = 200, description = "The pool", body = PoolView),
              (status = 404, description = "Not a shared batch (or not the caller's)", body = ErrorBody)))]
pub async fn get_pool(State(state): State<AppState>, caller: Module<DataBatches>, ApiPath(id): ApiPath<i64>) -> Result<Json<PoolView>, ApiError> {
    let scope = caller.scope.clone();
    Ok(Json(blocking(&state, move |store| visible_pool(store, &scope, id)).await??))
}

/// `PUT /api/batches/{id}/pool/settings`: the lease settings of the batch's pool.
#[utoipa::path(put, path = "/api/batches/{id}/pool/settings", tag = "batches", request_body = PoolSettings,
    params(("id" = i64, Path, description = "A site's batch of the shared batch")),
    responses((status = 200, description = "Saved", body = PoolView),
              (status = 400, description = "Out of range", body = ErrorBody),
              (status = 404, description = "Not a shared batch (or not the caller's)", body = ErrorBody)))]
pub async fn put_settings(State(state): State<AppState>, caller: Module<DataBatches>, ApiPath(id): ApiPath<i64>, ApiJson(body): ApiJson<PoolSettings>) -> Result<Json<PoolView>, ApiError> {
    let scope = caller.scope.clone();
    Ok(Json(
        blocking(&state, move |store| {
            let view = visible_pool(store, &scope, id)?;
            store.set_pool_settings(view.pool_id, body)?;
            visible_pool(store, &scope, id)
        })
        .await??,
    ))
}

/// What to recover: one lease, or every lease of the site's batch.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RecoverBody {
    #[serde(default)]
    pub lease_id: Option<i64>,
}

/// `POST /api/batches/{id}/recover`: batch recovery (批次数据回收) of the site's undialed
/// numbers of this batch (or of one lease). They return to the pool with the site's answer;
/// an exclusive or auto batch gets a pool of its own for them.
#[utoipa::path(post, path = "/api/batches/{id}/recover", tag = "batches", request_body = RecoverBody,
    params(("id" = i64, Path, description = "A site's batch")),
    responses((status = 200, description = "Asked of the site", body = PoolView),
              (status = 404, description = "No such batch of the caller's, or the lease is not open", body = ErrorBody)))]
pub async fn recover(State(state): State<AppState>, caller: Module<DataBatches>, ApiPath(id): ApiPath<i64>, ApiJson(body): ApiJson<RecoverBody>) -> Result<Json<PoolView>, ApiError> {
    let scope = caller.scope.clone();
    Ok(Json(
        blocking(&state, move |store| {
            let batch = store.batch(id)?.filter(|b| scope.project_site(b.project_id, b.site_id));
            batch.ok_or_else(|| ApiError::from(PoolError::NotPooled(id)))?;
            store.recover_batch(id, body.lease_id)?;
            visible_pool(store, &scope, id)
        })
        .await??,
    ))
}

/// What a forced reclaim did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReclaimReply {
    /// Numbers put back in the pool without the site's word.
    pub returned: i64,
}

/// `POST /api/batches/{id}/reclaim`: HQ's forced reclaim of a site that stays away. The
/// numbers go back to the pool now; any the site dialed offline may be dialed twice.
#[utoipa::path(post, path = "/api/batches/{id}/reclaim", tag = "batches",
    params(("id" = i64, Path, description = "A site's batch of the shared batch")),
    responses((status = 200, description = "Forced back", body = ReclaimReply),
              (status = 404, description = "Not a shared batch (or not the caller's)", body = ErrorBody)))]
pub async fn reclaim(State(state): State<AppState>, caller: Module<DataBatches>, ApiPath(id): ApiPath<i64>) -> Result<Json<ReclaimReply>, ApiError> {
    let scope = caller.scope.clone();
    let returned = blocking(&state, move |store| -> Result<i64, ApiError> {
        visible_pool(store, &scope, id)?;
        Ok(store.force_reclaim(id)?)
    })
    .await??;
    Ok(Json(ReclaimReply { returned }))
}

/// A lease's age in words.
fn age(tr: Tr, seconds: i64) -> String {
    let words = tr.edit();
    if seconds >= 3600 {
        format!("{:.1} {}", seconds as f64 / 3600.0, words.pool_age_hours)
    } else {
        format!("{} {}", (seconds / 60).max(0), words.pool_age_minutes)
    }
}

struct LeaseLine {
    id: i64,
    rows: i64,
    age: String,
    recalling: bool,
}

struct SiteLine {
    batch_id: i64,
    name: String,
    online: bool,
    leased: i64,
    dialed: i64,
    returned: i64,
    twice: i64,
    recalled: bool,
    flagged: bool,
    leases: Vec<LeaseLine>,
}

#[derive(Template)]
#[template(path = "pool.html")]
struct PoolPage {
    tr: Tr,
    user: String,
    batch: i64,
    pool: PoolView,
    sites: Vec<SiteLine>,
    /// Sites the remainder may be dispatched to: `(id, name)`.
    targets: Vec<(i64, String)>,
}

/// `GET /batches/{id}/pool`: the pool as a page.
pub async fn pool_page(State(state): State<AppState>, caller: Module<DataBatches>, ApiPath(id): ApiPath<i64>) -> Response {
    let scope = caller.scope.clone();
    let found = blocking(&state, move |store| -> Result<_, ApiError> {
        let pool = visible_pool(store, &scope, id)?;
        let project = store.batch(id)?.map(|b| b.project_id).unwrap_or_default();
        let targets = store.list_sites()?.into_iter().filter(|s| scope.project_site(project, s.id)).map(|s| (s.id, s.name)).collect();
        Ok((pool, targets))
    });
    let (pool, targets): (PoolView, Vec<(i64, String)>) = match found.await {
        Ok(Ok(found)) => found,
        Ok(Err(err)) | Err(err) => return err.into_response(),
    };
    let tr = caller.tr;
    let sites = pool
        .sites
        .iter()
        .map(|s| SiteLine {
            batch_id: s.batch_id,
            name: s.site_name.clone(),
            online: s.online,
            leased: s.leased,
            dialed: s.dialed,
            returned: s.returned,
            twice: s.dialed_twice,
            recalled: s.recalled,
            flagged: s.flagged,
            leases: s
                .leases
                .iter()
                .map(|l| LeaseLine { id: l.lease_id, rows: l.n_rows, age: age(tr, l.age_s), recalling: l.state == "recalling" })
                .collect(),
        })
        .collect();
    render(&PoolPage { tr, user: caller.account.username.clone(), batch: id, pool, sites, targets })
}

/// Where to dispatch a recovered remainder again.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RedispatchBody {
    pub site_id: i64,
}

/// What a dispatch of the remainder made.
#[derive(Debug, Serialize, ToSchema)]
pub struct RedispatchReply {
    /// The new batch, at the chosen site, leasing from the pool.
    pub batch_id: i64,
}

/// `POST /api/batches/{id}/redispatch`: dispatches the numbers the batch's pool holds (what
/// recovery brought back) again, as a new batch of the chosen site.
#[utoipa::path(post, path = "/api/batches/{id}/redispatch", tag = "batches", request_body = RedispatchBody,
    params(("id" = i64, Path, description = "A recovered batch (or a site's batch of a shared batch)")),
    responses((status = 200, description = "Dispatched", body = RedispatchReply),
              (status = 404, description = "No such batch or site of the caller's", body = ErrorBody),
              (status = 409, description = "Nothing left in the pool", body = ErrorBody)))]
pub async fn redispatch(State(state): State<AppState>, caller: Module<DataBatches>, ApiPath(id): ApiPath<i64>, ApiJson(body): ApiJson<RedispatchBody>) -> Result<Json<RedispatchReply>, ApiError> {
    let scope = caller.scope.clone();
    let creator = caller.account.username.clone();
    let batch_id = blocking(&state, move |store| -> Result<i64, ApiError> {
        let view = visible_pool(store, &scope, id)?;
        let project = store.batch(id)?.map(|b| b.project_id).unwrap_or_default();
        if !scope.project_site(project, body.site_id) {
            return Err(PoolError::UnknownSite(body.site_id).into());
        }
        Ok(store.redispatch_remainder(id, body.site_id, &creator).inspect(|_| tracing::info!(pool = view.pool_id, "remainder dispatched"))?)
    })
    .await??;
    Ok(Json(RedispatchReply { batch_id }))
}
