//! The home page (首页, `/`): today at a glance for the viewer's scope — totals, a chart of
//! dials and connects per hour (ECharts, drawn by `console.js` from the page's data
//! attributes), running projects, and the sites needing attention (offline, alarms).
//!
//! Today and its hours are counted in the hub's display zone (China time unless `serve
//! --time-zone` says otherwise: `Store::utc_offset_secs`).

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::guard::Registry;
use super::pages::render;
use super::wall_view::{self, percent, SiteCard};
use super::{blocking, Access, ApiError, AppState, PageUser, Tr};
use crate::store::{now_unix, DbError, HourCounts, ProjectStatus};

pub(super) fn routes(r: Registry) -> Registry {
    r.get("/", Access::LoggedIn, home)
}

struct Totals {
    dials: u64,
    connected: u64,
    connect_rate: String,
    abandon_rate: String,
    agents_online: usize,
    sites_online: usize,
    sites: usize,
}

/// The chart's series as comma-separated numbers, for `data-` attributes.
struct Chart {
    hours: String,
    dials: String,
    connects: String,
}

struct RunningProject {
    id: i64,
    name: String,
    category: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    tr: Tr,
    user: String,
    today: String,
    zone: String,
    totals: Totals,
    chart: Chart,
    projects: Vec<RunningProject>,
    attention: Vec<SiteCard>,
}

fn zone_name(offset_secs: i32) -> String {
    let hours = offset_secs / 3600;
    let minutes = (offset_secs.abs() % 3600) / 60;
    if minutes == 0 { format!("UTC{hours:+}") } else { format!("UTC{hours:+}:{minutes:02}") }
}

fn chart(hours: &[HourCounts; 24]) -> Chart {
    let join = |f: &dyn Fn(&HourCounts) -> u64| hours.iter().map(|h| f(h).to_string()).collect::<Vec<_>>().join(",");
    Chart {
        hours: (0..24).map(|h| format!("{h:02}")).collect::<Vec<_>>().join(","),
        dials: join(&|h| h.dials),
        connects: join(&|h| h.connected),
    }
}

/// `GET /`: the home page.
pub async fn home(State(state): State<AppState>, user: PageUser) -> Result<Response, ApiError> {
    let scope = user.scope.clone();
    let offset = state.store.utc_offset_secs();
    let now = now_unix();
    let (sites, hours, projects) = blocking(&state, move |store| -> Result<_, DbError> {
        let projects: Vec<RunningProject> = store
            .list_projects()?
            .into_iter()
            .filter(|p| scope.project(p.id) && p.settings.status == Some(ProjectStatus::Running))
            .map(|p| RunningProject { id: p.id, name: p.name, category: p.category_name })
            .collect();
        Ok((store.wall_sites(&scope)?, store.today_by_hour(&scope, now, offset)?, projects))
    })
    .await??;
    let sum = |f: fn(&HourCounts) -> u64| hours.iter().map(f).sum::<u64>();
    let (dials, connected, answered, abandoned) = (sum(|h| h.dials), sum(|h| h.connected), sum(|h| h.answered), sum(|h| h.abandoned));
    let totals = Totals {
        dials,
        connected,
        connect_rate: percent(connected, dials),
        abandon_rate: percent(abandoned, answered),
        agents_online: sites.iter().filter(|s| s.online).filter_map(|s| s.live.as_ref()).map(|l| l.agents.len()).sum(),
        sites_online: sites.iter().filter(|s| s.online).count(),
        sites: sites.len(),
    };
    let attention =
        sites.iter().map(|site| wall_view::card(user.tr, site, now)).filter(|card| !card.alarms.is_empty()).collect();
    let local = time::OffsetDateTime::from_unix_timestamp(now + i64::from(offset)).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Ok(render(&HomePage {
        tr: user.tr,
        user: user.account.username.clone(),
        today: format!("{:04}-{:02}-{:02}", local.year(), u8::from(local.month()), local.day()),
        zone: zone_name(offset),
        totals,
        chart: chart(&hours),
        projects,
        attention,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_and_chart_series() {
        assert_eq!(zone_name(8 * 3600), "UTC+8");
        assert_eq!(zone_name(-(5 * 3600 + 1800)), "UTC-5:30");
        let mut hours = [HourCounts::default(); 24];
        hours[9] = HourCounts { dials: 7, connected: 2, answered: 2, abandoned: 0 };
        let chart = chart(&hours);
        assert!(chart.hours.starts_with("00,01,") && chart.hours.ends_with(",23"));
        assert_eq!(chart.dials.split(',').nth(9), Some("7"));
        assert_eq!(chart.connects.split(',').filter(|v| *v != "0").count(), 1);
    }
}
