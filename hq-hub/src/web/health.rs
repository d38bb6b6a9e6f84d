//! What an operator's monitoring reads without signing in: `/healthz` (the process answers),
//! `/readyz` (the store answers; the sync link's socket is bound before the hub serves at
//! all) and `/metrics` (OpenMetrics for Prometheus: sites and their links, down-log backlog,
//! imports running, free disk). Counts and site names only, nothing a login protects.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use web_guard::probe::{Scrape, disk_free_bytes};

use super::AppState;
use super::guard::{Access, Registry};

/// The probes' routes (anyone, like the login page).
pub(super) fn routes(r: Registry) -> Registry {
    r.get("/healthz", Access::Public, healthz).get("/readyz", Access::Public, readyz).get("/metrics", Access::Public, metrics)
}

/// `GET /healthz`: the process is up and serving.
async fn healthz() -> &'static str {
    "ok\n"
}

#[derive(Serialize)]
struct Ready {
    ready: bool,
    store: &'static str,
    sites_online: usize,
    problems: Vec<String>,
}

/// `GET /readyz`: 200 when the store answers, else 503 with why.
async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.site_health() {
        Ok(sites) => {
            let sites_online = sites.iter().filter(|site| site.online).count();
            (StatusCode::OK, Json(Ready { ready: true, store: "ok", sites_online, problems: Vec::new() })).into_response()
        }
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Ready { ready: false, store: "failed", sites_online: 0, problems: vec![format!("store: {error}")] }),
        )
            .into_response(),
    }
}

/// `GET /metrics`: the hub's figures for Prometheus.
async fn metrics(State(state): State<AppState>) -> Response {
    let mut scrape = Scrape::default();
    match state.store.site_health() {
        Ok(sites) => {
            scrape.gauge("store_up", "1 while the store answers", 1.0);
            scrape.gauge("sites", "Sites HQ knows", sites.len() as f64);
            scrape.gauge("sites_enrolled", "Sites a box holds", sites.iter().filter(|s| s.enrolled).count() as f64);
            scrape.gauge("sites_online", "Sites whose link is up", sites.iter().filter(|s| s.online).count() as f64);
            scrape.gauges(
                "site_link_up",
                "1 while the site's link is up",
                sites.iter().filter(|s| s.enrolled).map(|s| (vec![("site", s.name.clone())], f64::from(u8::from(s.online)))),
            );
            scrape.gauges(
                "site_down_backlog",
                "Down-log entries written for the site and not acknowledged by it",
                sites.iter().map(|s| (vec![("site", s.name.clone())], s.down_backlog as f64)),
            );
        }
        Err(error) => {
            tracing::warn!(%error, "metrics: the store did not answer");
            scrape.gauge("store_up", "1 while the store answers", 0.0);
        }
    }
    let imports = state.jobs.lock().unwrap_or_else(|p| p.into_inner()).values().filter(|job| job.state == "running").count();
    scrape.gauge("imports_running", "Excel imports in progress", imports as f64);
    if let Some(free) = disk_free_bytes(state.store.files_dir()) {
        scrape.gauge("disk_free_bytes", "Free bytes on the data directory's file system", free as f64);
    }
    scrape.into_response()
}
