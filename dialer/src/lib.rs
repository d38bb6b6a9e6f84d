//! The dialer's core: how many calls to place now, and which answered call goes to which
//! agent. A sans-IO state machine: it is told the time, agent state changes and call
//! events, and answers with [`Action`]s. The appliance's tokio task only carries events in
//! and actions out; the simulator in [`sim`] drives the same core with simulated time.
//!
//! Driving it:
//! - feed events with `agent_*`, `call_*` methods, each taking `now`;
//! - drain [`Dialer::poll_action`] until it returns `None`;
//! - wake again at [`Dialer::poll_timeout`] (queue timeouts, cool-downs, pacing ticks).
//!
//! Key types: [`Dialer`] (the state machine), [`PacingConfig`] (the manual's task
//! parameters), [`DialerStats`] (what a wallboard shows). Modules: [`sim`] (a deterministic
//! discrete-event site simulator), [`vicidial`] (VICIdial's ADAPT_AVERAGE, as a baseline the
//! simulator can run), [`erlang`] (the Erlang C reference the benchmark prints).
//!
//! # Pacing, as the manual defines it
//!
//! The manual (2.2.1.2) says predictive dialing "looks at the number of idle extensions in
//! the queue and dials at a ratio", the ratio being "idle extensions to concurrent calls".
//! Its worked example (20 lines, 5 agents, 1:3 gives 15 concurrent; 1:5 gives 20) is taken
//! with all 5 agents idle. So [`PacingMode::FixedRatio`] keeps
//!
//! `calls not yet with an agent (ringing + queued) <= ratio x idle agents`
//!
//! where an idle agent is signed in as 可回接 and has no call (an agent in cool-down counts:
//! the cool-down is seconds, a dial takes longer than that to be answered), and in addition
//! `calls in progress (ringing + queued + offered + talking) <= max_concurrency`, since every
//! one of those holds a trunk line. Put differently: target in progress =
//! `min(max_concurrency, talking + ratio x idle agents)`. Counting busy agents in the ratio
//! instead would keep dialing for agents who are talking, which is exactly the "数据空跑"
//! (numbers burnt with nobody to take them) the manual warns about.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

mod adaptive;
pub mod arbiter;
pub mod erlang;
mod estimate;
pub mod shared_sim;
pub mod sim;
#[cfg(test)]
mod tests;
pub mod vicidial;

use estimate::{AnswerRate, Distribution};

/// Time as seen by the core: elapsed since an arbitrary origin chosen by the driver.
pub type Time = Duration;

/// An agent, by the appliance's id for it.
pub type AgentId = u64;

/// A call the core asked to place, by the id the core gave it in [`Action::Dial`].
pub type CallKey = u64;

/// How the core paces.
#[derive(Debug, Clone, PartialEq)]
pub enum PacingMode {
    /// The manual's mode: `ratio` calls in progress per available agent, capped by
    /// `max_concurrency`.
    FixedRatio { ratio: u32 },
    /// One call per free agent.
    Progressive,
    /// Estimates answer probability, ring and talk time online; keeps agents busy while
    /// holding the abandon rate under `abandon_cap` (0.03 = 3 %).
    Adaptive { abandon_cap: f64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct PacingConfig {
    pub mode: PacingMode,
    /// Most calls in progress (ringing, queued or talking) at once.
    pub max_concurrency: u32,
    /// An agent gets no new call until this long after their last one ended.
    pub cool_down: Duration,
    /// An answered call waiting longer than this is dropped (abandoned).
    pub queue_timeout: Duration,
    /// An answered call not connected to an agent within this is counted abandoned (2 s).
    pub abandon_threshold: Duration,
}

/// What the core wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Place a new call; the driver picks the number and reports back with `call`.
    Dial { call: CallKey },
    /// Offer an answered call to an agent.
    Route { call: CallKey, agent: AgentId },
    /// Give up on a queued call (queue timeout).
    Drop { call: CallKey },
}

impl Default for PacingConfig {
    /// The manual's advice (2.2.1.2): cool-down 3-5 s, queue timeout 35-40 s; the
    /// regulators' 2 s abandon rule; adaptive pacing under a 3 % cap.
    fn default() -> Self {
        PacingConfig {
            mode: PacingMode::Adaptive { abandon_cap: 0.03 },
            max_concurrency: 30,
            cool_down: Duration::from_secs(3),
            queue_timeout: Duration::from_secs(35),
            abandon_threshold: Duration::from_secs(2),
        }
    }
}

/// A snapshot of the core's counters, for wallboards, logs and the simulator.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DialerStats {
    /// Dialed and not yet answered.
    pub ringing: u32,
    /// Answered and waiting for an agent.
    pub queued: u32,
    /// Routed to an agent whose phone has not picked up yet.
    pub offered: u32,
    /// Bridged to an agent.
    pub talking: u32,
    /// `ringing + queued + offered + talking`: the trunk lines in use.
    pub in_progress: u32,
    /// Dial actions issued (numbers the driver actually had count; see `no_number`).
    pub dialed: u64,
    /// Dials the driver reported it had no number for.
    pub no_number: u64,
    /// Customers who answered.
    pub answered: u64,
    /// Dials that ended before an answer.
    pub failed: u64,
    /// Answered calls bridged to an agent (in time or late).
    pub bridged: u64,
    /// Answered calls not bridged within `abandon_threshold` (the regulators' rule),
    /// including those dropped or hung up before any agent.
    pub abandoned: u64,
    /// Queued calls the core dropped at `queue_timeout`.
    pub dropped: u64,
    /// `abandoned / answered` since this core started.
    pub abandon_rate: f64,
    /// `abandoned / answered` for the current day (24 h spans of [`Time`]).
    pub abandon_rate_today: f64,
    /// `abandoned / answered` over the current day and the 29 before it.
    pub abandon_rate_30_days: f64,
    /// Agents signed in as 可回接, idle or on a call.
    pub agents_available: u32,
    /// Agents a call could be routed to right now (available, no call, cool-down over).
    pub agents_free: u32,
    /// Agents with a call offered or bridged.
    pub agents_busy: u32,
    /// The adaptive pacer's current estimate of the answer probability of a dial.
    pub estimated_answer_rate: f64,
}

/// Where a call is in its life.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Ringing,
    Queued,
    Offered(AgentId),
    Talking(AgentId),
}

#[derive(Debug, Clone)]
struct CallState {
    dialed_at: Time,
    answered_at: Option<Time>,
    phase: Phase,
    /// Already counted as abandoned (so it is counted once).
    abandoned: bool,
    /// A number owned by one agent (S4): only this agent may take the call.
    for_agent: Option<AgentId>,
}

/// What an agent is doing, as far as calls go.
#[derive(Debug, Clone, Copy, PartialEq)]
enum AgentCall {
    None,
    Offered(CallKey),
    Talking { call: CallKey, since: Time },
}

#[derive(Debug, Clone)]
struct AgentState {
    /// Signed in as 可回接 (the manual's status for predictive calls).
    available: bool,
    call: AgentCall,
    /// Idle since (the longest-idle rule's key); for an agent after a call, the end of
    /// their cool-down.
    idle_since: Time,
    /// No call is routed to this agent before this instant.
    cool_until: Time,
    /// When their last call ended, while they are in after-call work (unavailable right
    /// after a call): the pacer expects them back soon, unlike an agent on a break.
    wrapping_since: Option<Time>,
}

/// Answered and abandoned calls of one day, for the per-day and 30-day abandon rates.
#[derive(Debug, Clone, Copy)]
struct DayTally {
    day: u64,
    answered: u64,
    abandoned: u64,
}

/// How long the core waits before dialing again after the driver said it had no number.
const NO_NUMBER_BACKOFF: Duration = Duration::from_secs(5);
/// How often the adaptive pacer reconsiders when nothing else happens: its view changes
/// with time alone (calls ring longer, talks age).
const ADAPTIVE_TICK: Duration = Duration::from_millis(500);
/// Days in the rolling abandon-rate window.
const ROLLING_DAYS: u64 = 30;
/// The cap is judged only once this many answered calls are in a window, so one early
/// abandon does not stop the floor (VICIdial uses 50 as well).
const MIN_ANSWERED_FOR_CAP: u64 = 50;

/// The dialer core for one task: pacing, queue, routing, abandon accounting.
#[derive(Debug, Clone)]
pub struct Dialer {
    config: PacingConfig,
    now: Time,
    next_call: CallKey,
    calls: BTreeMap<CallKey, CallState>,
    /// Answered calls waiting for an agent, front first.
    queue: VecDeque<CallKey>,
    agents: BTreeMap<AgentId, AgentState>,
    no_number_until: Time,
    /// Set by an outside pacing policy (the VICIdial baseline): calls in progress to keep.
    lines_target: Option<u32>,
    counters: DialerStats,
    days: VecDeque<DayTally>,
    // Adaptive pacing's online estimates and its safety margin.
    answer_rate: AnswerRate,
    ring_to_answer: Distribution,
    ring_to_failure: Distribution,
    talk: Distribution,
    after_call: Distribution,
    /// Standard deviations of headroom the adaptive pacer keeps; steered by outcomes.
    safety: f64,
}

impl Dialer {
    pub fn new(config: PacingConfig, now: Time) -> Dialer {
        Dialer {
            config,
            now,
            next_call: 1,
            calls: BTreeMap::new(),
            queue: VecDeque::new(),
            agents: BTreeMap::new(),
            no_number_until: now,
            lines_target: None,
            counters: DialerStats::default(),
            days: VecDeque::new(),
            answer_rate: AnswerRate::new(400),
            // Priors, pushed out by real samples: rings answered within ~5-25 s, failures
            // either quick (busy, rejected) or at a ring timeout, talks of a minute or
            // three, after-call work of a few seconds.
            ring_to_answer: Distribution::new(
                0.5,
                240,
                300,
                &[5.0, 8.0, 10.0, 12.0, 15.0, 20.0, 25.0],
            ),
            ring_to_failure: Distribution::new(0.5, 240, 300, &[3.0, 6.0, 30.0, 35.0, 35.0, 40.0]),
            talk: Distribution::new(
                2.0,
                900,
                300,
                &[40.0, 70.0, 100.0, 120.0, 150.0, 200.0, 300.0],
            ),
            after_call: Distribution::new(0.5, 600, 300, &[3.0, 5.0, 8.0, 10.0, 12.0, 15.0]),
            safety: adaptive::INITIAL_SAFETY,
        }
    }

    /// Takes new task parameters; calls in progress carry on. Also ends a no-number
    /// back-off, since new parameters usually come with numbers to dial.
    pub fn set_config(&mut self, config: PacingConfig, now: Time) {
        self.now = now;
        self.config = config;
        self.no_number_until = now;
    }

    pub fn config(&self) -> &PacingConfig {
        &self.config
    }

    /// Lets an outside pacing policy (the VICIdial baseline in [`sim`]) set the calls in
    /// progress to keep, instead of the configured mode; `None` hands pacing back.
    /// `max_concurrency` still caps it. Routing and accounting are unchanged.
    pub fn set_lines_target(&mut self, now: Time, lines: Option<u32>) {
        self.now = now;
        self.lines_target = lines;
    }

    /// The driver has numbers again after a [`Dialer::call_no_number`]: end the back-off.
    pub fn numbers_available(&mut self, now: Time) {
        self.now = now;
        self.no_number_until = now;
    }

    /// Whether the agent has a call offered or bridged (a desk asks before a break).
    pub fn agent_has_call(&self, agent: AgentId) -> bool {
        self.agents
            .get(&agent)
            .is_some_and(|state| state.call != AgentCall::None)
    }

    /// The agent signed in as 可回接 and is free (or went back to 可回接).
    pub fn agent_available(&mut self, now: Time, agent: AgentId) {
        self.now = now;
        let state = self.agents.entry(agent).or_insert(AgentState {
            available: false,
            call: AgentCall::None,
            idle_since: now,
            cool_until: now,
            wrapping_since: None,
        });
        if state.available {
            return;
        }
        state.available = true;
        if let Some(ended) = state.wrapping_since.take() {
            // Back from after-call work: that span (or the cool-down, if longer) is what
            // the pacer expects of the next agent finishing a call.
            let back_at = now.max(state.cool_until);
            self.after_call.push((back_at - ended).as_secs_f64());
            state.idle_since = back_at;
        } else if state.call == AgentCall::None {
            state.idle_since = now.max(state.cool_until);
        }
    }

    /// The agent signed out, took a break (小休), left (离开) or switched to one-click
    /// (不可回接). A call already offered or bridged carries on. If this comes within the
    /// agent's cool-down, or while they are still talking, the pacer takes it for
    /// after-call work and expects them back soon; a driver whose agents do after-call
    /// work should report this before [`Dialer::call_ended`].
    pub fn agent_unavailable(&mut self, now: Time, agent: AgentId) {
        self.now = now;
        let Some(state) = self.agents.get_mut(&agent) else {
            return;
        };
        if !state.available {
            return;
        }
        state.available = false;
        let in_cool_down = state.call == AgentCall::None && now < state.cool_until;
        state.wrapping_since = if in_cool_down {
            // The cool-down started when their call ended.
            Some(state.cool_until.saturating_sub(self.config.cool_down))
        } else {
            None
        };
        if matches!(state.call, AgentCall::Talking { .. }) {
            // Marked now; the wrap-up clock starts when the call ends.
            state.wrapping_since = Some(now);
        }
    }

    /// The agent is unavailable and will not come back to this task soon (the site-wide
    /// arbiter gave them to another task): unlike [`Dialer::agent_unavailable`] the pacer
    /// stops expecting them back from after-call work.
    pub fn agent_left(&mut self, now: Time, agent: AgentId) {
        self.now = now;
        if let Some(state) = self.agents.get_mut(&agent) {
            state.available = false;
            state.wrapping_since = None;
        }
    }

    /// The driver had no number for that [`Action::Dial`]; the core stops dialing for a
    /// few seconds (or until [`Dialer::numbers_available`] / [`Dialer::set_config`]).
    pub fn call_no_number(&mut self, now: Time, call: CallKey) {
        self.now = now;
        if let Some(state) = self.calls.get(&call)
            && state.phase == Phase::Ringing
        {
            self.calls.remove(&call);
            self.counters.dialed = self.counters.dialed.saturating_sub(1);
            self.counters.no_number += 1;
            self.no_number_until = now + NO_NUMBER_BACKOFF;
        }
    }

    /// The number the driver dialed for `call` belongs to `agent` (the attribution gave it
    /// to them, S4): the call is routed to that agent only, and it waits for them; no other
    /// queued call is routed to them while it waits. The driver dials such a number only
    /// while its agent is free, so the wait is short.
    pub fn reserve_call(&mut self, now: Time, call: CallKey, agent: AgentId) {
        self.now = now;
        if let Some(state) = self.calls.get_mut(&call) {
            state.for_agent = Some(agent);
        }
    }

    /// The customer answered: the call joins the back of the queue.
    pub fn call_answered(&mut self, now: Time, call: CallKey) {
        self.now = now;
        let Some(state) = self.calls.get_mut(&call) else {
            return;
        };
        if state.phase != Phase::Ringing {
            return;
        }
        state.phase = Phase::Queued;
        state.answered_at = Some(now);
        let rang = now.saturating_sub(state.dialed_at).as_secs_f64();
        self.queue.push_back(call);
        self.counters.answered += 1;
        self.day_tally(now).answered += 1;
        self.answer_rate.push(true);
        self.ring_to_answer.push(rang);
    }

    /// The call ended before an answer: busy, no answer, rejected, failed. (After an
    /// answer this is the same as [`Dialer::call_ended`].)
    pub fn call_failed(&mut self, now: Time, call: CallKey) {
        self.now = now;
        let Some(state) = self.calls.get(&call) else {
            return;
        };
        if state.phase != Phase::Ringing {
            self.call_ended(now, call);
            return;
        }
        let rang = now.saturating_sub(state.dialed_at).as_secs_f64();
        self.calls.remove(&call);
        self.counters.failed += 1;
        self.answer_rate.push(false);
        self.ring_to_failure.push(rang);
    }

    /// The agent picked up: customer and agent are talking. A bridge later than
    /// `abandon_threshold` after the answer still counts the call abandoned.
    pub fn call_bridged(&mut self, now: Time, call: CallKey, agent: AgentId) {
        self.now = now;
        let Some(state) = self.calls.get_mut(&call) else {
            return;
        };
        let previous_agent = match state.phase {
            Phase::Queued => None,
            Phase::Offered(offered_to) => Some(offered_to),
            Phase::Ringing | Phase::Talking(_) => return,
        };
        state.phase = Phase::Talking(agent);
        let answered_at = state.answered_at.unwrap_or(now);
        let late = now.saturating_sub(answered_at) > self.config.abandon_threshold;
        let newly_abandoned = late && !state.abandoned;
        let in_time = !late && !state.abandoned;
        if newly_abandoned {
            state.abandoned = true;
        }
        self.queue.retain(|&queued| queued != call);
        if let Some(offered_to) = previous_agent.filter(|&offered_to| offered_to != agent)
            && let Some(other) = self.agents.get_mut(&offered_to)
            && other.call == AgentCall::Offered(call)
        {
            other.call = AgentCall::None;
        }
        let state = self.agents.entry(agent).or_insert(AgentState {
            available: false,
            call: AgentCall::None,
            idle_since: now,
            cool_until: now,
            wrapping_since: None,
        });
        state.call = AgentCall::Talking { call, since: now };
        state.wrapping_since = None;
        self.counters.bridged += 1;
        if newly_abandoned {
            self.count_abandoned(now);
        }
        if in_time {
            adaptive::feedback(self, false);
        }
    }

    /// The agent did not pick up: the call goes back to the front of the queue and the
    /// agent is made unavailable until they say otherwise.
    pub fn call_agent_missed(&mut self, now: Time, call: CallKey, agent: AgentId) {
        self.now = now;
        if let Some(state) = self.agents.get_mut(&agent) {
            if state.call == AgentCall::Offered(call) {
                state.call = AgentCall::None;
            }
            state.available = false;
            state.wrapping_since = None;
        }
        if let Some(state) = self.calls.get_mut(&call)
            && state.phase == Phase::Offered(agent)
        {
            state.phase = Phase::Queued;
            self.queue.push_front(call);
        }
    }

    /// The call is over, whatever its phase. A talking agent starts their cool-down and
    /// then takes calls again (if still available); a call that never reached an agent
    /// counts abandoned.
    pub fn call_ended(&mut self, now: Time, call: CallKey) {
        self.now = now;
        let Some(state) = self.calls.get(&call) else {
            return;
        };
        match state.phase {
            Phase::Ringing => self.call_failed(now, call),
            Phase::Queued | Phase::Offered(_) => {
                if let Phase::Offered(agent) = state.phase
                    && let Some(agent_state) = self.agents.get_mut(&agent)
                    && agent_state.call == AgentCall::Offered(call)
                {
                    agent_state.call = AgentCall::None;
                }
                self.remove_unconnected(now, call);
            }
            Phase::Talking(agent) => {
                self.calls.remove(&call);
                let cool_down = self.config.cool_down;
                if let Some(agent_state) = self.agents.get_mut(&agent)
                    && let AgentCall::Talking {
                        call: talking,
                        since,
                    } = agent_state.call
                    && talking == call
                {
                    self.talk.push(now.saturating_sub(since).as_secs_f64());
                    agent_state.call = AgentCall::None;
                    agent_state.cool_until = now + cool_down;
                    agent_state.idle_since = now + cool_down;
                    if agent_state.available {
                        agent_state.wrapping_since = None;
                        self.after_call.push(cool_down.as_secs_f64());
                    } else {
                        agent_state.wrapping_since = Some(now);
                    }
                }
            }
        }
    }

    /// The next thing to do, or `None` until the next event or [`Dialer::poll_timeout`].
    pub fn poll_action(&mut self, now: Time) -> Option<Action> {
        self.now = now;
        self.mark_late_as_abandoned(now);

        // Queue timeout: the oldest answered call first.
        let timed_out = self.queue.iter().copied().find(|call| {
            self.calls
                .get(call)
                .and_then(|state| state.answered_at)
                .is_some_and(|answered_at| answered_at + self.config.queue_timeout <= now)
        });
        if let Some(call) = timed_out {
            self.counters.dropped += 1;
            self.remove_unconnected(now, call);
            return Some(Action::Drop { call });
        }

        // Routing: the front of the queue to the longest-idle free agent; a call reserved
        // for its number's owner goes to them only (and they take no other call meanwhile).
        if let Some((position, call, agent)) = self.next_route(now) {
            self.queue.remove(position);
            if let Some(state) = self.calls.get_mut(&call) {
                state.phase = Phase::Offered(agent);
            }
            if let Some(state) = self.agents.get_mut(&agent) {
                state.call = AgentCall::Offered(call);
            }
            return Some(Action::Route { call, agent });
        }

        if self.wants_dial(now) {
            let call = self.next_call;
            self.next_call += 1;
            self.calls.insert(
                call,
                CallState {
                    dialed_at: now,
                    answered_at: None,
                    phase: Phase::Ringing,
                    abandoned: false,
                    for_agent: None,
                },
            );
            self.counters.dialed += 1;
            return Some(Action::Dial { call });
        }
        None
    }

    /// When to call [`Dialer::poll_action`] again if no event comes first.
    pub fn poll_timeout(&self) -> Option<Time> {
        let mut earliest: Option<Time> = None;
        let mut consider = |at: Time| {
            earliest = Some(earliest.map_or(at, |current: Time| current.min(at)));
        };
        for call in &self.queue {
            if let Some(answered_at) = self.calls.get(call).and_then(|state| state.answered_at) {
                consider(answered_at + self.config.queue_timeout);
            }
        }
        for state in self.calls.values() {
            if let (Some(answered_at), false, false) = (
                state.answered_at,
                state.abandoned,
                matches!(state.phase, Phase::Talking(_)),
            ) {
                consider(answered_at + self.config.abandon_threshold);
            }
        }
        if !self.queue.is_empty() {
            for state in self.agents.values() {
                if state.available && state.call == AgentCall::None && state.cool_until > self.now {
                    consider(state.cool_until);
                }
            }
        }
        let has_agents = self.agents.values().any(|state| state.available);
        if has_agents && self.no_number_until > self.now {
            consider(self.no_number_until);
        }
        let below_max = (self.calls.len() as u64) < u64::from(self.config.max_concurrency);
        if has_agents
            && below_max
            && self.lines_target.is_none()
            && matches!(self.config.mode, PacingMode::Adaptive { .. })
        {
            consider(self.now.max(self.no_number_until) + ADAPTIVE_TICK);
        }
        earliest
    }

    /// Agents this core counts as idle for pacing (available, no call; in cool-down too).
    pub fn idle_agents(&self) -> u32 {
        self.agents.values().filter(|state| state.available && state.call == AgentCall::None).count() as u32
    }

    /// Idle agents the calls this core has placed still need: the calls not yet with an
    /// agent at the pacing rate (`ceil(unconnected / ratio)`, one per call progressive, the
    /// expected answers adaptive), and at least one per answered call waiting. A core that
    /// holds fewer idle agents than this dialed for agents it no longer holds (one took a
    /// call, or went to after-call work): the arbiter gives it the next ready agent before
    /// any other task may dial for them, so the site's calls in flight stay within the
    /// ratio of its agents.
    pub fn agents_needed(&self) -> u32 {
        let (mut ringing, mut queued) = (0u64, 0u64);
        for state in self.calls.values() {
            match state.phase {
                Phase::Ringing => ringing += 1,
                Phase::Queued => queued += 1,
                Phase::Offered(_) | Phase::Talking(_) => {}
            }
        }
        let unconnected = ringing + queued;
        let at_rate = match (self.lines_target, &self.config.mode) {
            (None, PacingMode::FixedRatio { ratio }) => unconnected.div_ceil(u64::from((*ratio).max(1))),
            (None, PacingMode::Progressive) => unconnected,
            _ => queued + (ringing as f64 * self.answer_rate.estimate()).ceil() as u64,
        };
        at_rate.max(queued).min(u64::from(u32::MAX)) as u32
    }

    pub fn stats(&self) -> DialerStats {
        let mut stats = self.counters;
        for state in self.calls.values() {
            match state.phase {
                Phase::Ringing => stats.ringing += 1,
                Phase::Queued => stats.queued += 1,
                Phase::Offered(_) => stats.offered += 1,
                Phase::Talking(_) => stats.talking += 1,
            }
        }
        stats.in_progress = self.calls.len() as u32;
        for state in self.agents.values() {
            if state.available {
                stats.agents_available += 1;
            }
            if state.call != AgentCall::None {
                stats.agents_busy += 1;
            } else if state.available && state.cool_until <= self.now {
                stats.agents_free += 1;
            }
        }
        stats.abandon_rate = ratio(stats.abandoned, stats.answered);
        let today = self.now.as_secs() / 86_400;
        let (mut answered_30, mut abandoned_30) = (0, 0);
        for tally in &self.days {
            if tally.day + ROLLING_DAYS > today {
                answered_30 += tally.answered;
                abandoned_30 += tally.abandoned;
            }
            if tally.day == today {
                stats.abandon_rate_today = ratio(tally.abandoned, tally.answered);
            }
        }
        stats.abandon_rate_30_days = ratio(abandoned_30, answered_30);
        stats.estimated_answer_rate = self.answer_rate.estimate();
        stats
    }

    /// Whether the abandon rate of today or of the rolling 30 days is over `cap`.
    fn over_cap(&self, cap: f64) -> bool {
        let today = self.now.as_secs() / 86_400;
        let (mut answered_30, mut abandoned_30) = (0, 0);
        for tally in &self.days {
            if tally.day + ROLLING_DAYS > today {
                answered_30 += tally.answered;
                abandoned_30 += tally.abandoned;
            }
            if tally.day == today
                && tally.answered >= MIN_ANSWERED_FOR_CAP
                && ratio(tally.abandoned, tally.answered) > cap
            {
                return true;
            }
        }
        answered_30 >= MIN_ANSWERED_FOR_CAP && ratio(abandoned_30, answered_30) > cap
    }

    fn wants_dial(&self, now: Time) -> bool {
        if now < self.no_number_until {
            return false;
        }
        let in_progress = self.calls.len() as u64;
        let max = u64::from(self.config.max_concurrency);
        if let Some(lines) = self.lines_target {
            return in_progress < max.min(u64::from(lines));
        }
        if in_progress >= max {
            return false;
        }
        let unconnected = self
            .calls
            .values()
            .filter(|state| matches!(state.phase, Phase::Ringing | Phase::Queued))
            .count() as u64;
        let idle = self
            .agents
            .values()
            .filter(|state| state.available && state.call == AgentCall::None)
            .count() as u64;
        match self.config.mode {
            PacingMode::FixedRatio { ratio } => unconnected < u64::from(ratio) * idle,
            PacingMode::Progressive => unconnected < idle,
            PacingMode::Adaptive { abandon_cap } => adaptive::wants_dial(self, now, abandon_cap),
        }
    }

    /// The first queued call that can go to an agent now, its place in the queue and the
    /// agent.
    fn next_route(&self, now: Time) -> Option<(usize, CallKey, AgentId)> {
        let reserved: Vec<AgentId> = self
            .queue
            .iter()
            .filter_map(|call| self.calls.get(call).and_then(|state| state.for_agent))
            .collect();
        let free = |id: &AgentId| {
            self.agents.get(id).is_some_and(|state| {
                state.available && state.call == AgentCall::None && state.cool_until <= now
            })
        };
        self.queue.iter().enumerate().find_map(|(position, &call)| {
            let owner = self.calls.get(&call).and_then(|state| state.for_agent);
            let agent = match owner {
                Some(owner) => free(&owner).then_some(owner),
                None => self.longest_idle_free_agent(now, &reserved),
            };
            agent.map(|agent| (position, call, agent))
        })
    }

    fn longest_idle_free_agent(&self, now: Time, except: &[AgentId]) -> Option<AgentId> {
        self.agents
            .iter()
            .filter(|(id, state)| {
                state.available
                    && state.call == AgentCall::None
                    && state.cool_until <= now
                    && !except.contains(id)
            })
            .min_by_key(|(id, state)| (state.idle_since, **id))
            .map(|(id, _)| *id)
    }

    /// Counts answered calls still without an agent past `abandon_threshold`.
    fn mark_late_as_abandoned(&mut self, now: Time) {
        let threshold = self.config.abandon_threshold;
        let mut newly = 0;
        for state in self.calls.values_mut() {
            if state.abandoned || matches!(state.phase, Phase::Talking(_) | Phase::Ringing) {
                continue;
            }
            if state
                .answered_at
                .is_some_and(|answered_at| answered_at + threshold <= now)
            {
                state.abandoned = true;
                newly += 1;
            }
        }
        for _ in 0..newly {
            self.count_abandoned(now);
        }
    }

    /// Forgets a call that was answered and never bridged (dropped or hung up).
    fn remove_unconnected(&mut self, now: Time, call: CallKey) {
        self.queue.retain(|&queued| queued != call);
        if let Some(state) = self.calls.remove(&call)
            && !state.abandoned
            && state.answered_at.is_some()
        {
            self.count_abandoned(now);
        }
    }

    fn count_abandoned(&mut self, now: Time) {
        self.counters.abandoned += 1;
        self.day_tally(now).abandoned += 1;
        adaptive::feedback(self, true);
    }

    fn day_tally(&mut self, now: Time) -> &mut DayTally {
        let today = now.as_secs() / 86_400;
        if self.days.back().is_none_or(|tally| tally.day != today) {
            self.days.push_back(DayTally {
                day: today,
                answered: 0,
                abandoned: 0,
            });
        }
        while self
            .days
            .front()
            .is_some_and(|tally| tally.day + ROLLING_DAYS <= today)
        {
            self.days.pop_front();
        }
        // The push above leaves today's tally last.
        let last = self.days.len() - 1;
        &mut self.days[last]
    }
}

fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}
