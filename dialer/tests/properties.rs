//! Property tests of the core under arbitrary event sequences: it never has more calls in
//! progress than `max_concurrency`, and never routes to an agent who is unavailable, busy
//! or still in cool-down.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;

use dialer::{Action, AgentId, CallKey, Dialer, PacingConfig, PacingMode, Time};

#[derive(Debug, Clone)]
enum Step {
    Wait(u64),
    Available(AgentId),
    Unavailable(AgentId),
    Answer(usize),
    Fail(usize),
    NoNumber(usize),
    Bridge(usize),
    Miss(usize),
    End(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1u64..20_000).prop_map(Step::Wait),
        (0u64..6).prop_map(Step::Available),
        (0u64..6).prop_map(Step::Unavailable),
        any::<usize>().prop_map(Step::Answer),
        any::<usize>().prop_map(Step::Fail),
        any::<usize>().prop_map(Step::NoNumber),
        any::<usize>().prop_map(Step::Bridge),
        any::<usize>().prop_map(Step::Miss),
        any::<usize>().prop_map(Step::End),
    ]
}

fn mode() -> impl Strategy<Value = PacingMode> {
    prop_oneof![
        (0u32..11).prop_map(|ratio| PacingMode::FixedRatio { ratio }),
        Just(PacingMode::Progressive),
        (0.005f64..0.2).prop_map(|abandon_cap| PacingMode::Adaptive { abandon_cap }),
    ]
}

fn pick<T: Copy>(items: &[T], index: usize) -> Option<T> {
    if items.is_empty() {
        None
    } else {
        Some(items[index % items.len()])
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn never_over_max_concurrency_and_never_routes_to_an_unavailable_agent(
        mode in mode(),
        max_concurrency in 0u32..25,
        cool_down_ms in 0u64..6000,
        steps in proptest::collection::vec(step(), 1..300),
    ) {
        let config = PacingConfig {
            mode,
            max_concurrency,
            cool_down: Duration::from_millis(cool_down_ms),
            queue_timeout: Duration::from_secs(35),
            abandon_threshold: Duration::from_secs(2),
        };
        let mut dialer = Dialer::new(config, Time::ZERO);
        let mut now = Time::ZERO;
        // The test's own model of the floor.
        let mut available: BTreeSet<AgentId> = BTreeSet::new();
        let mut busy: BTreeMap<AgentId, CallKey> = BTreeMap::new();
        let mut cool_until: BTreeMap<AgentId, Time> = BTreeMap::new();
        let mut ringing: Vec<CallKey> = Vec::new();
        let mut offered: Vec<(CallKey, AgentId)> = Vec::new();
        let mut talking: Vec<(CallKey, AgentId)> = Vec::new();

        for step in steps {
            match step {
                Step::Wait(ms) => now += Duration::from_millis(ms),
                Step::Available(agent) => { dialer.agent_available(now, agent); available.insert(agent); }
                Step::Unavailable(agent) => { dialer.agent_unavailable(now, agent); available.remove(&agent); }
                Step::Answer(index) => if let Some(call) = pick(&ringing, index) {
                    ringing.retain(|&c| c != call);
                    dialer.call_answered(now, call);
                },
                Step::Fail(index) => if let Some(call) = pick(&ringing, index) {
                    ringing.retain(|&c| c != call);
                    dialer.call_failed(now, call);
                },
                Step::NoNumber(index) => if let Some(call) = pick(&ringing, index) {
                    ringing.retain(|&c| c != call);
                    dialer.call_no_number(now, call);
                },
                Step::Bridge(index) => if let Some((call, agent)) = pick(&offered, index) {
                    offered.retain(|&(c, _)| c != call);
                    talking.push((call, agent));
                    dialer.call_bridged(now, call, agent);
                },
                Step::Miss(index) => if let Some((call, agent)) = pick(&offered, index) {
                    offered.retain(|&(c, _)| c != call);
                    busy.remove(&agent);
                    available.remove(&agent);
                    dialer.call_agent_missed(now, call, agent);
                },
                Step::End(index) => if let Some((call, agent)) = pick(&talking, index) {
                    talking.retain(|&(c, _)| c != call);
                    busy.remove(&agent);
                    cool_until.insert(agent, now + Duration::from_millis(cool_down_ms));
                    dialer.call_ended(now, call);
                },
            }
            while let Some(action) = dialer.poll_action(now) {
                match action {
                    Action::Dial { call } => ringing.push(call),
                    Action::Route { call, agent } => {
                        prop_assert!(available.contains(&agent), "routed {call} to unavailable agent {agent}");
                        prop_assert!(!busy.contains_key(&agent), "routed {call} to busy agent {agent}");
                        prop_assert!(cool_until.get(&agent).is_none_or(|&until| until <= now),
                            "routed {call} to agent {agent} in cool-down");
                        busy.insert(agent, call);
                        offered.push((call, agent));
                    }
                    Action::Drop { call } => {
                        prop_assert!(!offered.iter().any(|&(c, _)| c == call));
                    }
                }
                let stats = dialer.stats();
                prop_assert!(stats.in_progress <= max_concurrency,
                    "{} calls in progress over max {}", stats.in_progress, max_concurrency);
            }
            if let Some(timeout) = dialer.poll_timeout() {
                prop_assert!(timeout >= now || dialer.poll_action(now).is_none(),
                    "a past timeout must have nothing left to do");
            }
        }
    }
}
