//! What an operator's monitoring reads without signing in: `/healthz` (the process answers),
//! `/readyz` (the store answers and the SIP socket is bound; the HQ link is reported but a
//! box offline from HQ is still ready, since it works offline) and `/metrics` (OpenMetrics
//! for Prometheus). None of them shows a number, a name or anything a login would protect:
//! counts only.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use web_guard::probe::{Scrape, disk_free_bytes};

use super::{AppState, Public};
use crate::desk::AgentState;
use crate::sync::LinkView;

/// `GET /healthz`: the process is up and serving.
pub async fn healthz(_: Public) -> &'static str {
    "ok\n"
}

#[derive(Serialize)]
struct Ready {
    ready: bool,
    store: &'static str,
    sip: &'static str,
    link: &'static str,
    problems: Vec<String>,
}

fn link_name(link: &LinkView) -> &'static str {
    match link {
        LinkView::NotEnrolled => "not_enrolled",
        LinkView::Connecting => "connecting",
        LinkView::Online { .. } => "online",
        LinkView::Offline { .. } => "offline",
    }
}

/// `GET /readyz`: 200 when the box can take calls, else 503 with what is wrong.
pub async fn readyz(_: Public, State(state): State<AppState>) -> Response {
    let mut problems = Vec::new();
    let store = match state.store.health_figures(crate::store::now_unix()) {
        Ok(_) => "ok",
        Err(error) => {
            problems.push(format!("store: {error}"));
            "failed"
        }
    };
    let sip = if state.driver.lines_running() {
        "bound"
    } else {
        problems.push(format!("sip: {}", state.driver.status().await.problem.unwrap_or_default()));
        "not_bound"
    };
    let link = link_name(&state.link.borrow());
    let ready = problems.is_empty();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(Ready { ready, store, sip, link, problems })).into_response()
}

/// `GET /metrics`: the box's live figures for Prometheus.
pub async fn metrics(_: Public, State(state): State<AppState>) -> Response {
    let now = crate::store::now_unix();
    let lines = state.driver.status().await;
    let mut scrape = Scrape::default();
    scrape.gauges(
        "trunk_up",
        "1 while the trunk or FXO line answers its health checks",
        lines.trunks.iter().map(|t| (vec![("trunk", t.name.clone())], f64::from(u8::from(t.alive)))),
    );
    scrape.gauges(
        "trunk_registered",
        "1 while the trunk is registered with its carrier (trunks that register only)",
        lines
            .trunks
            .iter()
            .filter_map(|t| t.registered.map(|on| (vec![("trunk", t.name.clone())], f64::from(u8::from(on))))),
    );
    scrape.gauges(
        "trunk_calls",
        "Calls in use on the trunk",
        lines.trunks.iter().map(|t| (vec![("trunk", t.name.clone())], f64::from(t.active_calls))),
    );
    scrape.gauges(
        "trunk_channels",
        "Channels the trunk is configured with",
        lines.trunks.iter().map(|t| (vec![("trunk", t.name.clone())], f64::from(t.channels))),
    );
    scrape.gauge("extensions_registered", "Extensions whose phones are registered", lines.registered_extensions.len() as f64);
    let counts = state.desk.counts();
    scrape.gauges(
        "agents",
        "Signed-in agents by work state",
        AgentState::ALL
            .into_iter()
            .map(|s| (vec![("state", s.as_str().to_string())], counts.get(&s).copied().unwrap_or(0) as f64)),
    );
    scrape.gauges(
        "calls",
        "Calls on the lines by state",
        [("ringing", lines.ringing), ("queued", lines.queued), ("offered", lines.offered), ("talking", lines.talking)]
            .into_iter()
            .map(|(s, n)| (vec![("state", s.to_string())], f64::from(n))),
    );
    scrape.gauge("queue_length", "Answered calls waiting for an agent", f64::from(lines.queued));
    let oldest = lines.calls.iter().filter(|c| c.state == "queued").map(|c| c.seconds).max().unwrap_or(0);
    scrape.gauge("queue_oldest_call_seconds", "Seconds since the longest-waiting queued call was dialed", oldest as f64);
    scrape.gauge("tasks_running", "Tasks the dialer is dialing", lines.running_tasks.len() as f64);
    let link = state.link.borrow().clone();
    scrape.gauge("link_up", "1 while the HQ link is online", f64::from(u8::from(matches!(link, LinkView::Online { .. }))));
    if let LinkView::Offline { since, .. } = link {
        scrape.gauge("link_offline_seconds", "Seconds since the HQ link went down", (now - since).max(0) as f64);
    }
    match state.store.health_figures(now) {
        Ok(figures) => {
            scrape.gauge("store_up", "1 while the store answers", 1.0);
            scrape.gauge("outbox_entries", "Entries written for HQ and not yet acknowledged", figures.outbox as f64);
            scrape.gauge("recordings_pending", "Recordings HQ has not received", figures.recordings_pending as f64);
            let rate = |answered: u64, abandoned: u64| if answered == 0 { 0.0 } else { abandoned as f64 / answered as f64 };
            scrape.gauges(
                "abandon_rate",
                "Answered calls not put through to an agent within 2 s, over answered calls",
                [
                    ("today", rate(figures.answered_today, figures.abandoned_today)),
                    ("30d", rate(figures.answered_30_days, figures.abandoned_30_days)),
                ]
                .into_iter()
                .map(|(window, value)| (vec![("window", window.to_string())], value)),
            );
        }
        Err(error) => {
            tracing::warn!(%error, "metrics: the store did not answer");
            scrape.gauge("store_up", "1 while the store answers", 0.0);
        }
    }
    if let Some(free) = disk_free_bytes(state.store.path().parent().unwrap_or(std::path::Path::new("."))) {
        scrape.gauge("disk_free_bytes", "Free bytes on the data directory's file system", free as f64);
    }
    scrape.into_response()
}

/// The probes' routes (anyone, like the login page).
pub(super) fn routes(registry: super::routes::Registry) -> super::routes::Registry {
    registry.get("/healthz", healthz).get("/readyz", readyz).get("/metrics", metrics)
}
