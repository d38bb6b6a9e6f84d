//! Adaptive pacing: dial one more call only if, at every horizon over the next minute,
//! the calls expected to be answered by then (queued now, plus ringing ones, plus this
//! one) stay below the agents expected to be free by then, with a safety margin in
//! standard deviations.
//!
//! - Demand: each ringing call answers within `t` with a probability from the estimated
//!   answer rate and the ring-time distributions, given how long it has rung already.
//! - Supply: each talking agent is free within `t` with a probability from the talk-time
//!   distribution given how long they have talked, plus after-call work; an agent in
//!   after-call work from that distribution; an idle one once their cool-down is over.
//! - The margin is steered by outcomes, a stochastic-approximation loop: each abandoned
//!   call raises it, each call bridged in time lowers it a little, so that on average the
//!   abandon rate settles at [`TARGET_SHARE`] of the cap. If today's or the rolling
//!   30 days' rate is over the cap, the margin jumps at once (the dialer slows at once).

use crate::{AgentCall, Dialer, PacingMode, Phase, Time};

/// The margin a fresh dialer starts with.
pub(crate) const INITIAL_SAFETY: f64 = 1.0;
/// The abandon rate aimed for, as a share of the cap: the gap absorbs the noise of a day.
pub(crate) const TARGET_SHARE: f64 = 0.75;
/// How much one abandoned call raises the margin.
const STEP_UP: f64 = 0.12;
const SAFETY_MIN: f64 = -1.5;
const SAFETY_MAX: f64 = 4.0;
/// The least margin while over the cap: about one call in a thousand would wait.
const OVER_CAP_SAFETY: f64 = 3.0;
/// Horizons (seconds) at which supply must cover demand; the last is past most rings.
const HORIZONS: [f64; 9] = [0.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0];

pub(crate) fn feedback(dialer: &mut Dialer, abandoned: bool) {
    let PacingMode::Adaptive { abandon_cap } = dialer.config.mode else {
        return;
    };
    let target = (abandon_cap * TARGET_SHARE).clamp(0.0005, 0.5);
    // Up by STEP_UP per abandon, down by STEP_UP x target/(1-target) per good call: the
    // two balance exactly when the abandon rate equals the target.
    let step = if abandoned {
        STEP_UP
    } else {
        -STEP_UP * target / (1.0 - target)
    };
    dialer.safety = (dialer.safety + step).clamp(SAFETY_MIN, SAFETY_MAX);
}

pub(crate) fn wants_dial(dialer: &Dialer, now: Time, abandon_cap: f64) -> bool {
    let mut safety = dialer.safety;
    if dialer.over_cap(abandon_cap) {
        safety = safety.max(OVER_CAP_SAFETY);
    }
    let answer_probability = dialer.answer_rate.estimate();
    // The typical after-call span; the median, since agents back from a break that began
    // in wrap-up put a few very long samples in the window.
    let post_call = dialer.after_call.quantile(0.5);

    let mut demand_mean = [0.0; HORIZONS.len()];
    let mut demand_var = [0.0; HORIZONS.len()];
    let mut supply_mean = [0.0; HORIZONS.len()];
    let mut supply_var = [0.0; HORIZONS.len()];

    for state in dialer.calls.values() {
        match state.phase {
            Phase::Queued => {
                for mean in &mut demand_mean {
                    *mean += 1.0;
                }
            }
            Phase::Ringing => {
                let rang = now.saturating_sub(state.dialed_at).as_secs_f64();
                let alive_answer = answer_probability * dialer.ring_to_answer.survival(rang);
                let alive_fail = (1.0 - answer_probability) * dialer.ring_to_failure.survival(rang);
                let alive = alive_answer + alive_fail;
                if alive < 1e-12 {
                    continue;
                }
                for (index, horizon) in HORIZONS.iter().enumerate() {
                    let answers = answer_probability
                        * (dialer.ring_to_answer.survival(rang)
                            - dialer.ring_to_answer.survival(rang + horizon))
                        / alive;
                    demand_mean[index] += answers;
                    demand_var[index] += answers * (1.0 - answers);
                }
            }
            // An offered or talking call already has its agent.
            Phase::Offered(_) | Phase::Talking(_) => {}
        }
    }

    for state in dialer.agents.values() {
        for (index, horizon) in HORIZONS.iter().enumerate() {
            let free = match state.call {
                AgentCall::Offered(_) => 0.0,
                AgentCall::Talking { since, .. } => {
                    let talked = now.saturating_sub(since).as_secs_f64();
                    dialer.talk.ends_within(talked, horizon - post_call, true)
                }
                AgentCall::None if state.available => {
                    if state.cool_until <= now + Time::from_secs_f64(*horizon) {
                        1.0
                    } else {
                        0.0
                    }
                }
                AgentCall::None => match state.wrapping_since {
                    Some(ended) => {
                        let wrapped = now.saturating_sub(ended).as_secs_f64();
                        dialer.after_call.ends_within(wrapped, *horizon, false)
                    }
                    None => 0.0,
                },
            };
            supply_mean[index] += free;
            supply_var[index] += free * (1.0 - free);
        }
    }

    for (index, horizon) in HORIZONS.iter().enumerate() {
        let new_answers = answer_probability * (1.0 - dialer.ring_to_answer.survival(*horizon));
        let spread =
            (demand_var[index] + supply_var[index] + new_answers * (1.0 - new_answers)).sqrt();
        if demand_mean[index] + new_answers + safety * spread > supply_mean[index] {
            return false;
        }
    }
    true
}
