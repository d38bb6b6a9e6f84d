//! Unit tests of the core: the manual's fixed-ratio behaviour, progressive pacing,
//! routing, queue timeouts and abandon accounting, driven event by event.

use std::time::Duration;

use crate::{Action, AgentId, CallKey, Dialer, PacingConfig, PacingMode, Time};

fn secs(seconds: f64) -> Time {
    Duration::from_secs_f64(seconds)
}

fn config(mode: PacingMode, max_concurrency: u32) -> PacingConfig {
    PacingConfig {
        mode,
        max_concurrency,
        cool_down: Duration::from_secs(3),
        queue_timeout: Duration::from_secs(35),
        abandon_threshold: Duration::from_secs(2),
    }
}

fn drain(dialer: &mut Dialer, now: Time) -> Vec<Action> {
    let mut actions = Vec::new();
    while let Some(action) = dialer.poll_action(now) {
        actions.push(action);
        assert!(actions.len() < 10_000, "poll_action never settles");
    }
    actions
}

fn dials(actions: &[Action]) -> Vec<CallKey> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Dial { call } => Some(*call),
            _ => None,
        })
        .collect()
}

fn routes(actions: &[Action]) -> Vec<(CallKey, AgentId)> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Route { call, agent } => Some((*call, *agent)),
            _ => None,
        })
        .collect()
}

fn with_agents(config: PacingConfig, agents: &[AgentId]) -> Dialer {
    let mut dialer = Dialer::new(config, secs(0.0));
    for &agent in agents {
        dialer.agent_available(secs(0.0), agent);
    }
    dialer
}

#[test]
fn manual_example_ratio_1_to_3_with_5_agents_keeps_15_calls() {
    // 主叫的固话数量 20，执行任务分机数 5，预测比例 1:3，则最大并发为 15
    let mut dialer = with_agents(
        config(PacingMode::FixedRatio { ratio: 3 }, 20),
        &[1, 2, 3, 4, 5],
    );
    let actions = drain(&mut dialer, secs(0.0));
    assert_eq!(dials(&actions).len(), 15);
    assert_eq!(dialer.stats().in_progress, 15);
}

#[test]
fn manual_example_ratio_1_to_5_with_5_agents_is_capped_at_20_lines() {
    // 预测比例 1:5，则最大并发仅可选择 20
    let mut dialer = with_agents(
        config(PacingMode::FixedRatio { ratio: 5 }, 20),
        &[1, 2, 3, 4, 5],
    );
    let actions = drain(&mut dialer, secs(0.0));
    assert_eq!(dials(&actions).len(), 20);
}

#[test]
fn fixed_ratio_dials_for_idle_agents_only_and_tops_up_after_failures() {
    let mut dialer = with_agents(config(PacingMode::FixedRatio { ratio: 3 }, 100), &[1, 2]);
    let first = dials(&drain(&mut dialer, secs(0.0)));
    assert_eq!(first.len(), 6);
    // One answers and is bridged to agent 1: one idle agent left, so 3 unconnected calls.
    dialer.call_answered(secs(5.0), first[0]);
    let routed = routes(&drain(&mut dialer, secs(5.0)));
    assert_eq!(routed, vec![(first[0], 1)]);
    dialer.call_bridged(secs(5.5), first[0], 1);
    assert!(
        dials(&drain(&mut dialer, secs(5.5))).is_empty(),
        "5 unconnected > 3: no dial"
    );
    // Three more fail: 2 unconnected left, one dial tops up to 3.
    for &call in &first[1..4] {
        dialer.call_failed(secs(10.0), call);
    }
    assert_eq!(dials(&drain(&mut dialer, secs(10.0))).len(), 1);
    let stats = dialer.stats();
    assert_eq!((stats.ringing, stats.talking, stats.in_progress), (3, 1, 4));
}

#[test]
fn progressive_keeps_one_call_per_idle_agent() {
    let mut dialer = with_agents(config(PacingMode::Progressive, 100), &[1, 2, 3]);
    let calls = dials(&drain(&mut dialer, secs(0.0)));
    assert_eq!(calls.len(), 3);
    dialer.call_failed(secs(30.0), calls[0]);
    assert_eq!(dials(&drain(&mut dialer, secs(30.0))).len(), 1);
    dialer.agent_unavailable(secs(31.0), 3);
    dialer.call_failed(secs(32.0), calls[1]);
    assert!(
        dials(&drain(&mut dialer, secs(32.0))).is_empty(),
        "2 ringing for 2 agents"
    );
}

#[test]
fn each_dial_gets_a_fresh_key() {
    let mut dialer = with_agents(
        config(PacingMode::FixedRatio { ratio: 10 }, 100),
        &[1, 2, 3],
    );
    let mut seen = std::collections::BTreeSet::new();
    for round in 0..5 {
        let now = secs(round as f64 * 40.0);
        for call in dials(&drain(&mut dialer, now)) {
            assert!(seen.insert(call), "key {call} reused");
            dialer.call_failed(now, call);
        }
    }
    assert!(seen.len() >= 150);
}

#[test]
fn routes_to_the_longest_idle_agent_and_respects_cool_down() {
    let mut dialer = Dialer::new(config(PacingMode::Progressive, 100), secs(0.0));
    dialer.agent_available(secs(0.0), 7);
    dialer.agent_available(secs(1.0), 3);
    dialer.agent_available(secs(2.0), 5);
    let calls = dials(&drain(&mut dialer, secs(2.0)));
    dialer.call_answered(secs(10.0), calls[0]);
    assert_eq!(routes(&drain(&mut dialer, secs(10.0))), vec![(calls[0], 7)]);
    dialer.call_bridged(secs(10.2), calls[0], 7);
    dialer.call_answered(secs(11.0), calls[1]);
    assert_eq!(routes(&drain(&mut dialer, secs(11.0))), vec![(calls[1], 3)]);
    dialer.call_bridged(secs(11.2), calls[1], 3);

    // Agent 7 hangs up at 20 s: cool-down to 23 s, so the next call goes to 5 even
    // though 7 has now been "idle" longer by the clock.
    dialer.call_ended(secs(20.0), calls[0]);
    dialer.call_answered(secs(21.0), calls[2]);
    let actions = drain(&mut dialer, secs(21.0));
    assert_eq!(routes(&actions), vec![(calls[2], 5)]);
    dialer.call_bridged(secs(21.1), calls[2], 5);

    // Another answered call (dialed for 7, who counts as idle in cool-down) must wait for
    // 7's cool-down.
    let more = dials(&actions);
    assert_eq!(more.len(), 1);
    let waiting = more[0];
    dialer.call_answered(secs(21.5), waiting);
    assert!(routes(&drain(&mut dialer, secs(21.5))).is_empty());
    assert_eq!(dialer.poll_timeout(), Some(secs(23.0)));
    assert_eq!(routes(&drain(&mut dialer, secs(23.0))), vec![(waiting, 7)]);
}

#[test]
fn never_routes_to_an_unavailable_agent() {
    let mut dialer = with_agents(config(PacingMode::FixedRatio { ratio: 2 }, 100), &[1, 2]);
    let calls = dials(&drain(&mut dialer, secs(0.0)));
    dialer.agent_unavailable(secs(1.0), 1);
    dialer.agent_unavailable(secs(1.0), 2);
    dialer.call_answered(secs(5.0), calls[0]);
    assert!(routes(&drain(&mut dialer, secs(5.0))).is_empty());
    assert!(
        dials(&drain(&mut dialer, secs(5.0))).is_empty(),
        "no agents, no dials"
    );
    dialer.agent_available(secs(6.0), 2);
    assert_eq!(routes(&drain(&mut dialer, secs(6.0))), vec![(calls[0], 2)]);
}

#[test]
fn queued_call_is_dropped_at_queue_timeout_and_counts_abandoned() {
    let mut dialer = with_agents(config(PacingMode::FixedRatio { ratio: 2 }, 100), &[1]);
    let calls = dials(&drain(&mut dialer, secs(0.0)));
    dialer.call_answered(secs(5.0), calls[0]);
    assert_eq!(routes(&drain(&mut dialer, secs(5.0))), vec![(calls[0], 1)]);
    dialer.call_bridged(secs(5.5), calls[0], 1);
    dialer.call_answered(secs(6.0), calls[1]);
    drain(&mut dialer, secs(6.0));
    assert_eq!(
        dialer.poll_timeout(),
        Some(secs(8.0)),
        "the 2 s abandon mark comes first"
    );
    drain(&mut dialer, secs(8.5));
    assert_eq!(dialer.stats().abandoned, 1, "counted once past 2 s");
    assert_eq!(dialer.poll_timeout(), Some(secs(41.0)));
    let actions = drain(&mut dialer, secs(41.0));
    assert!(actions.contains(&Action::Drop { call: calls[1] }));
    let stats = dialer.stats();
    assert_eq!((stats.dropped, stats.abandoned, stats.answered), (1, 1, 2));
    assert!((stats.abandon_rate - 0.5).abs() < 1e-9);
    // The driver's late hang-up report for the dropped call changes nothing.
    dialer.call_ended(secs(41.2), calls[1]);
    assert_eq!(dialer.stats().abandoned, 1);
}

#[test]
fn late_bridge_counts_abandoned_and_in_time_bridge_does_not() {
    let mut dialer = with_agents(config(PacingMode::FixedRatio { ratio: 2 }, 100), &[1, 2]);
    let calls = dials(&drain(&mut dialer, secs(0.0)));
    dialer.call_answered(secs(5.0), calls[0]);
    dialer.call_answered(secs(5.0), calls[1]);
    let routed = routes(&drain(&mut dialer, secs(5.0)));
    assert_eq!(routed.len(), 2);
    dialer.call_bridged(secs(6.9), routed[0].0, routed[0].1);
    dialer.call_bridged(secs(7.5), routed[1].0, routed[1].1);
    let stats = dialer.stats();
    assert_eq!((stats.answered, stats.bridged, stats.abandoned), (2, 2, 1));
    assert_eq!(stats.agents_busy, 2);
}

#[test]
fn missed_call_goes_back_to_the_front_and_the_agent_is_made_unavailable() {
    let mut dialer = with_agents(config(PacingMode::FixedRatio { ratio: 3 }, 100), &[1, 2]);
    let calls = dials(&drain(&mut dialer, secs(0.0)));
    dialer.call_answered(secs(3.0), calls[0]);
    assert_eq!(routes(&drain(&mut dialer, secs(3.0))), vec![(calls[0], 1)]);
    dialer.call_bridged(secs(3.1), calls[0], 1);
    dialer.call_answered(secs(4.0), calls[1]);
    assert_eq!(routes(&drain(&mut dialer, secs(4.0))), vec![(calls[1], 2)]);
    dialer.call_answered(secs(4.5), calls[2]);
    dialer.call_agent_missed(secs(5.0), calls[1], 2);
    assert_eq!(dialer.stats().queued, 2);
    // Agent 1 finishes; after the cool-down the missed call (front) goes to 1, not 2.
    dialer.call_ended(secs(10.0), calls[0]);
    let routed = routes(&drain(&mut dialer, secs(13.0)));
    assert_eq!(routed, vec![(calls[1], 1)]);
    assert_eq!(dialer.stats().agents_available, 1);
}

#[test]
fn no_number_backs_off_then_dials_again() {
    let mut dialer = with_agents(config(PacingMode::Progressive, 100), &[1, 2]);
    let calls = dials(&drain(&mut dialer, secs(0.0)));
    assert_eq!(calls.len(), 2);
    dialer.call_no_number(secs(0.1), calls[0]);
    dialer.call_no_number(secs(0.1), calls[1]);
    assert!(dials(&drain(&mut dialer, secs(1.0))).is_empty());
    assert_eq!(dialer.poll_timeout(), Some(secs(5.1)));
    assert_eq!(dials(&drain(&mut dialer, secs(5.1))).len(), 2);
    let stats = dialer.stats();
    assert_eq!((stats.dialed, stats.no_number), (2, 2));
}

#[test]
fn customer_hanging_up_in_queue_is_abandoned_and_agent_returns_after_cool_down() {
    let mut dialer = with_agents(config(PacingMode::Progressive, 100), &[1]);
    let calls = dials(&drain(&mut dialer, secs(0.0)));
    dialer.call_answered(secs(4.0), calls[0]);
    drain(&mut dialer, secs(4.0));
    dialer.call_bridged(secs(4.2), calls[0], 1);
    assert!(
        dials(&drain(&mut dialer, secs(4.2))).is_empty(),
        "the only agent is talking"
    );
    dialer.call_ended(secs(60.0), calls[0]);
    let stats = dialer.stats();
    assert_eq!(
        (stats.agents_free, stats.agents_available, stats.talking),
        (0, 1, 0)
    );
    // Progressive counts an agent in cool-down as idle: the dial rings longer than 3 s.
    let next = dials(&drain(&mut dialer, secs(60.0)));
    assert_eq!(next.len(), 1);
    assert_eq!(dialer.stats().agents_free, 0);
    drain(&mut dialer, secs(63.0));
    assert_eq!(dialer.stats().agents_free, 1);
    dialer.call_answered(secs(64.0), next[0]);
    dialer.call_ended(secs(64.5), next[0]);
    assert_eq!(
        dialer.stats().abandoned,
        1,
        "hung up before any agent took it"
    );
}

#[test]
fn adaptive_slows_down_at_once_when_today_is_over_the_cap() {
    let adaptive = config(PacingMode::Adaptive { abandon_cap: 0.03 }, 1000);
    // Two identical floors of 40 talking agents with long talks under way; one has had a
    // day of 60 answered calls with 6 abandoned (10 %), the other none abandoned.
    let floor = |abandon: bool| {
        let mut dialer = Dialer::new(adaptive.clone(), secs(0.0));
        let mut agent = 0;
        for round in 0..60 {
            let now = secs(round as f64 * 10.0);
            dialer.agent_available(now, 1000 + round);
            let call = dials(&drain(&mut dialer, now)).first().copied();
            let Some(call) = call else { continue };
            dialer.call_answered(now, call);
            if abandon && round % 10 == 0 {
                dialer.call_ended(now + secs(5.0), call);
            } else {
                for action in drain(&mut dialer, now) {
                    if let Action::Route { call, agent: to } = action {
                        dialer.call_bridged(now, call, to);
                        dialer.call_ended(now + secs(1.0), call);
                    }
                }
            }
            agent += 1;
        }
        assert_eq!(agent, 60);
        dialer
    };
    let now = secs(700.0);
    let mut calm = floor(false);
    let mut over = floor(true);
    assert!(over.stats().abandon_rate_today > 0.03);
    assert!(calm.stats().abandon_rate_today < 0.03);
    let calm_dials = dials(&drain(&mut calm, now)).len();
    let over_dials = dials(&drain(&mut over, now)).len();
    assert!(
        over_dials < calm_dials,
        "over the cap {over_dials} dials, under it {calm_dials}"
    );
}

/// S4: a call dialed for a number an agent owns goes to that agent only; while it waits for
/// them no other call is routed to them, and the other agents take the other calls.
#[test]
fn a_reserved_call_goes_only_to_its_agent_and_waits_for_them() {
    let mut dialer = with_agents(config(PacingMode::FixedRatio { ratio: 1 }, 10), &[1, 2]);
    let placed = dials(&drain(&mut dialer, secs(0.0)));
    assert_eq!(placed.len(), 2);
    let (owned, other) = (placed[0], placed[1]);
    dialer.reserve_call(secs(0.0), owned, 2);
    // Agent 2 is busy elsewhere: the owned call answered first must not go to agent 1.
    dialer.agent_unavailable(secs(0.5), 2);
    dialer.call_answered(secs(1.0), owned);
    dialer.call_answered(secs(1.5), other);
    let actions = drain(&mut dialer, secs(1.5));
    assert_eq!(routes(&actions), vec![(other, 1)], "agent 1 takes the unowned call, not the owned one");
    dialer.agent_available(secs(2.0), 2);
    let actions = drain(&mut dialer, secs(2.0));
    assert_eq!(routes(&actions), vec![(owned, 2)], "the owned call waited for its agent");
}
