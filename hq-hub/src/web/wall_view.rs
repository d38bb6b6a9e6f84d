//! What the monitoring wall shows of a site, display-ready in the viewer's language: built
//! from the store's [`WallSite`] here, so the templates, the JSON and the stream's events
//! all say the same thing.
//!
//! A site whose link is down is never shown as live: its card carries `live = false`, the
//! page greys it, and its state line says since when it is offline ("离线 12 分钟").

use serde::Serialize;
use sync_protocol::{LiveAgentState, SiteAlarm, SiteLive};

use super::{format_time, Tr};
use crate::store::WallSite;

/// The agent states in the order the wall lists them.
const STATE_ORDER: [LiveAgentState; 7] = [
    LiveAgentState::Available,
    LiveAgentState::OneClickOnly,
    LiveAgentState::Break,
    LiveAgentState::Away,
    LiveAgentState::Ringing,
    LiveAgentState::Talking,
    LiveAgentState::WrapUp,
];

/// Agents of one state on a card.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StateGroup {
    /// `available`, `one_click_only`, `break`, `away`, `ringing`, `talking`, `wrap_up`.
    pub state: &'static str,
    pub label: &'static str,
    pub count: usize,
    pub names: Vec<String>,
}

/// One site's card on the wall.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SiteCard {
    pub site_id: i64,
    pub name: String,
    /// The link is up and the figures are current.
    pub live: bool,
    /// "在线" or "离线 12 分钟" (or "从未连接"), in the viewer's language.
    pub link_text: String,
    /// Since when the link has been in its state (unix seconds).
    pub link_since: Option<i64>,
    /// When the hub received the figures shown (unix milliseconds); none if never.
    pub received_at_ms: Option<i64>,
    /// Whether any figures were ever received.
    pub has_figures: bool,
    /// "截至 2026-12-07 19:20:01" for a site's last known state.
    pub as_of: String,
    pub agents_online: usize,
    pub agent_states: Vec<StateGroup>,
    pub calls_ringing: u32,
    pub calls_queued: u32,
    pub longest_queued_s: u32,
    pub calls_talking: u32,
    pub lines_in_use: u32,
    pub lines_available: u32,
    pub dials_today: u64,
    pub connected_today: u64,
    /// Percentages as shown ("12.5%", "—" without calls).
    pub connect_rate_today: String,
    pub abandon_rate_today: String,
    pub abandon_rate_30_days: String,
    pub abandon_cap: String,
    pub outbox_backlog: u64,
    /// What needs attention, in the viewer's language (link down included).
    pub alarms: Vec<String>,
}

/// An agent on the site's own page.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AgentRow {
    pub username: String,
    pub extension: String,
    pub state: &'static str,
    pub label: &'static str,
    /// Since when, as China time, and how long ago ("3 分 05 秒").
    pub since: String,
    pub for_text: String,
}

/// A running task on the site's own page.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TaskRow {
    pub batch_id: u64,
    pub name: String,
    pub remaining: u64,
}

/// One site in full: its card, its agents and its running tasks.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SiteDetail {
    pub card: SiteCard,
    pub agents: Vec<AgentRow>,
    pub tasks: Vec<TaskRow>,
}

pub(super) fn state_key(state: LiveAgentState) -> &'static str {
    match state {
        LiveAgentState::Available => "available",
        LiveAgentState::OneClickOnly => "one_click_only",
        LiveAgentState::Break => "break",
        LiveAgentState::Away => "away",
        LiveAgentState::Ringing => "ringing",
        LiveAgentState::Talking => "talking",
        LiveAgentState::WrapUp => "wrap_up",
        _ => "unknown",
    }
}

fn state_label(tr: Tr, state: LiveAgentState) -> &'static str {
    let t = tr.text();
    match state {
        LiveAgentState::Available => t.wall_state_available,
        LiveAgentState::OneClickOnly => t.wall_state_one_click,
        LiveAgentState::Break => t.wall_state_break,
        LiveAgentState::Away => t.wall_state_away,
        LiveAgentState::Ringing => t.wall_state_ringing,
        LiveAgentState::Talking => t.wall_state_talking,
        LiveAgentState::WrapUp => t.wall_state_wrap_up,
        _ => t.wall_state_unknown,
    }
}

/// `part / whole` as a percentage with one decimal, "—" when nothing was counted.
pub(super) fn percent(part: u64, whole: u64) -> String {
    if whole == 0 { "—".to_string() } else { format!("{:.1}%", part as f64 * 100.0 / whole as f64) }
}

/// How long, in minutes, hours and days ("12 分钟", "3 小时 5 分钟", "2 天 4 小时").
pub(super) fn age_text(tr: Tr, seconds: i64) -> String {
    let minutes = seconds.max(0) / 60;
    let (days, hours, minutes) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    let t = tr.text();
    if days > 0 {
        format!("{days} {} {hours} {}", t.wall_days, t.wall_hours)
    } else if hours > 0 {
        format!("{hours} {} {minutes} {}", t.wall_hours, t.wall_minutes)
    } else if minutes > 0 {
        format!("{minutes} {}", t.wall_minutes)
    } else {
        t.wall_under_a_minute.to_string()
    }
}

/// The card of `site` for a viewer in `tr`'s language, at `now` (unix seconds).
pub fn card(tr: Tr, site: &WallSite, now: i64) -> SiteCard {
    let t = tr.text();
    let empty = SiteLive::default();
    let live = site.live.as_deref().unwrap_or(&empty);
    let link_text = match (site.online, site.link_since) {
        (true, _) => t.wall_online.to_string(),
        (false, Some(since)) => format!("{} {}", t.wall_offline, age_text(tr, now - since)),
        (false, None) => t.wall_never_connected.to_string(),
    };
    let mut alarms = Vec::new();
    if !site.online && site.link_since.is_some() {
        alarms.push(format!("{} {}", t.wall_alarm_link_down, age_text(tr, now - site.link_since.unwrap_or(now))));
    }
    if site.needs_upgrade {
        alarms.push(t.sites_needs_upgrade.to_string());
    }
    alarms.extend(live.alarms.iter().map(|alarm| alarm_text(tr, alarm)));
    SiteCard {
        site_id: site.id,
        name: site.name.clone(),
        live: site.online && site.live.is_some(),
        link_text,
        link_since: site.link_since,
        received_at_ms: site.received_at_ms,
        has_figures: site.live.is_some(),
        as_of: site.received_at_ms.map(|ms| format!("{} {}", t.wall_as_of, format_time(ms / 1000))).unwrap_or_default(),
        agents_online: live.agents.len(),
        agent_states: STATE_ORDER
            .iter()
            .map(|&state| {
                let names: Vec<String> =
                    live.agents.iter().filter(|agent| agent.state == state).map(|agent| agent.username.clone()).collect();
                StateGroup { state: state_key(state), label: state_label(tr, state), count: names.len(), names }
            })
            .collect(),
        calls_ringing: live.calls_ringing,
        calls_queued: live.calls_queued,
        longest_queued_s: live.longest_queued_s,
        calls_talking: live.calls_talking,
        lines_in_use: live.lines_in_use,
        lines_available: live.lines_available,
        dials_today: live.dials_today,
        connected_today: live.connected_today,
        connect_rate_today: percent(live.connected_today, live.dials_today),
        abandon_rate_today: percent(live.abandoned_today, live.answered_today),
        abandon_rate_30_days: percent(live.abandoned_30_days, live.answered_30_days),
        abandon_cap: format!("{:.1}%", live.abandon_cap_percent),
        outbox_backlog: live.outbox_backlog,
        alarms,
    }
}

fn alarm_text(tr: Tr, alarm: &SiteAlarm) -> String {
    let t = tr.text();
    match alarm {
        SiteAlarm::TrunkDown { trunk } => format!("{} {trunk}", t.wall_alarm_trunk_down),
        SiteAlarm::TrunkUnregistered { trunk } => format!("{} {trunk}", t.wall_alarm_trunk_unregistered),
        SiteAlarm::AbandonOverCap { rate_percent, cap_percent } => {
            format!("{} {rate_percent:.1}% > {cap_percent:.1}%", t.wall_alarm_abandon)
        }
        SiteAlarm::DiskLow { free_bytes, total_bytes } => {
            format!("{} {:.1} / {:.1} GB", t.wall_alarm_disk, *free_bytes as f64 / 1e9, *total_bytes as f64 / 1e9)
        }
        SiteAlarm::RecordingStopped { free_bytes, floor_bytes } => format!(
            "{} {:.1} / {:.1} GB",
            t.wall_alarm_recording_stopped,
            *free_bytes as f64 / 1e9,
            *floor_bytes as f64 / 1e9
        ),
        _ => t.wall_alarm_other.to_string(),
    }
}

/// The site's page: its card, every agent with since when, its running tasks.
pub fn detail(tr: Tr, site: &WallSite, now: i64) -> SiteDetail {
    let card = card(tr, site, now);
    let (agents, tasks) = match site.live.as_deref() {
        Some(live) => (
            live.agents
                .iter()
                .map(|agent| AgentRow {
                    username: agent.username.clone(),
                    extension: agent.extension.clone(),
                    state: state_key(agent.state),
                    label: state_label(tr, agent.state),
                    since: format_time(agent.since_ms / 1000),
                    for_text: age_text(tr, now - agent.since_ms / 1000),
                })
                .collect(),
            live.tasks
                .iter()
                .map(|task| TaskRow { batch_id: task.batch_id, name: task.name.clone(), remaining: task.remaining })
                .collect(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    SiteDetail { card, agents, tasks }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sync_protocol::LiveAgent;

    use super::*;
    use crate::web::Lang;

    fn site(online: bool, link_since: Option<i64>) -> WallSite {
        let agent = |name: &str, state| LiveAgent { username: name.into(), extension: "8".into(), state, since_ms: 1_000_000 };
        WallSite {
            id: 3,
            name: "杭州".into(),
            online,
            link_since,
            live: Some(Arc::new(SiteLive {
                agents: vec![agent("a1", LiveAgentState::Talking), agent("a2", LiveAgentState::Available), agent("a3", LiveAgentState::Talking)],
                dials_today: 200,
                connected_today: 50,
                answered_today: 60,
                abandoned_today: 3,
                abandon_cap_percent: 3.0,
                alarms: vec![SiteAlarm::TrunkDown { trunk: "电信1".into() }],
                ..SiteLive::default()
            })),
            received_at_ms: Some(1_000_000),
            needs_upgrade: false,
        }
    }

    #[test]
    fn a_live_card_counts_agents_by_state_and_computes_the_rates() {
        let zh = Tr { lang: Lang::Zh };
        let card = card(zh, &site(true, Some(0)), 2_000);
        assert!(card.live);
        assert_eq!(card.link_text, "在线");
        let talking = card.agent_states.iter().find(|g| g.state == "talking").unwrap();
        assert_eq!((talking.count, talking.names.clone()), (2, vec!["a1".to_string(), "a3".to_string()]));
        assert_eq!(card.connect_rate_today, "25.0%");
        assert_eq!(card.abandon_rate_today, "5.0%");
        assert_eq!(card.abandon_rate_30_days, "—");
        assert_eq!(card.alarms, vec!["中继故障 电信1".to_string()]);
        let stopped = SiteAlarm::RecordingStopped { free_bytes: 300_000_000, floor_bytes: 500_000_000 };
        assert_eq!(alarm_text(zh, &stopped), "磁盘低于下限，已停止录音 剩余 0.3 / 0.5 GB");
        assert_eq!(alarm_text(Tr { lang: Lang::En }, &stopped), "Recording stopped, disk under the floor, free: 0.3 / 0.5 GB");
    }

    #[test]
    fn an_offline_card_is_never_live_and_says_how_long() {
        let now = 10_000;
        let zh = card(Tr { lang: Lang::Zh }, &site(false, Some(now - 12 * 60 - 5)), now);
        assert!(!zh.live, "an offline site's last known state is not live");
        assert_eq!(zh.link_text, "离线 12 分钟");
        assert_eq!(zh.alarms[0], "链路中断 12 分钟");
        let en = card(Tr { lang: Lang::En }, &site(false, Some(now - 3 * 3600 - 5 * 60)), now);
        assert_eq!(en.link_text, "offline for 3 h 5 min");
        assert_eq!(age_text(Tr { lang: Lang::En }, 20), "less than a minute");
        assert_eq!(age_text(Tr { lang: Lang::Zh }, 2 * 86_400 + 4 * 3600), "2 天 4 小时");
        let never = card(Tr { lang: Lang::Zh }, &WallSite { live: None, ..site(false, None) }, now);
        assert_eq!(never.link_text, "从未连接");
        assert!(never.alarms.is_empty() && !never.has_figures);
    }

    #[test]
    fn a_site_held_back_for_its_version_says_so_on_its_card() {
        let held = WallSite { needs_upgrade: true, ..site(true, Some(1)) };
        assert!(card(Tr { lang: Lang::Zh }, &held, 10).alarms.contains(&"职场需升级".to_string()));
        assert!(card(Tr { lang: Lang::En }, &held, 10).alarms.contains(&"site needs upgrade".to_string()));
        assert!(!card(Tr { lang: Lang::Zh }, &site(true, Some(1)), 10).alarms.iter().any(|alarm| alarm.contains("升级")));
    }
}
