//! A deterministic discrete-event simulator of one site's working day, driving the real
//! [`Dialer`] with simulated time: a site admin tries settings on it, the benchmark
//! compares pacing policies with it, and tests hold the pacer to its promises with it.
//!
//! - Agents sign in over the first minutes, take two short breaks and a lunch, and sign
//!   out at the end of the day; an agent due a break finishes their call and wrap-up first.
//! - Each dial is answered with a probability that may drift through the day; answered
//!   calls ring a lognormal time, unanswered ones fail fast (busy, rejected) or at the ring
//!   timeout.
//! - Answered calls queue in the core; a customer left waiting hangs up after an
//!   exponential patience; agents auto-answer after a short pick-up delay, rarely miss one.
//! - Talk time is lognormal (mean 120 s), wrap-up about 10 s, during which the agent is
//!   unavailable (as on a desk: 话后处理).
//!
//! One seeded generator and a (time, sequence) ordered event queue make a run a pure
//! function of its [`SimConfig`]: the same seed gives the same [`SimReport`].

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::vicidial::{AdaptAverage, AdaptAverageConfig};
use crate::{Action, AgentId, CallKey, Dialer, DialerStats, PacingConfig, Time};

/// How likely a dial is answered, over the day.
#[derive(Debug, Clone, PartialEq)]
pub enum AnswerCurve {
    Constant(f64),
    /// Piecewise linear through `(hours since the day began, probability)` points.
    Drifting(Vec<(f64, f64)>),
}

impl AnswerCurve {
    /// A day whose list answers 15 % in the morning, 35 % late morning, 20 % over lunch,
    /// and climbs to 40 % in the evening.
    pub fn drifting_day() -> AnswerCurve {
        AnswerCurve::Drifting(vec![
            (0.0, 0.15),
            (2.0, 0.35),
            (3.5, 0.20),
            (5.0, 0.30),
            (8.0, 0.40),
        ])
    }

    pub fn at(&self, hours: f64) -> f64 {
        match self {
            AnswerCurve::Constant(probability) => *probability,
            AnswerCurve::Drifting(points) => {
                let Some(first) = points.first() else {
                    return 0.0;
                };
                if hours <= first.0 {
                    return first.1;
                }
                for pair in points.windows(2) {
                    let ((h0, p0), (h1, p1)) = (pair[0], pair[1]);
                    if hours <= h1 {
                        let share = if h1 > h0 {
                            (hours - h0) / (h1 - h0)
                        } else {
                            1.0
                        };
                        return p0 + share * (p1 - p0);
                    }
                }
                points.last().map_or(0.0, |last| last.1)
            }
        }
    }
}

/// Which pacing runs the floor.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    /// The core's own modes, as configured.
    Core,
    /// VICIdial's ADAPT_AVERAGE drives the line target; the core still queues and routes.
    VicidialAdaptAverage(AdaptAverageConfig),
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    pub seed: u64,
    pub agents: u32,
    /// Length of the working day.
    pub day: Duration,
    pub answer: AnswerCurve,
    /// Median time to answer, for calls that are answered.
    pub ring_to_answer_median: Duration,
    /// The driver hangs up an unanswered call after this (the manual advises 35-40 s).
    pub ring_timeout: Duration,
    /// Of the unanswered dials, the share that fail within seconds (busy, rejected, empty
    /// number) instead of ringing out.
    pub quick_failure_share: f64,
    pub talk_mean: Duration,
    /// Sigma of the talk time's underlying normal (0.6 gives a long right tail).
    pub talk_sigma: f64,
    pub wrap_up_mean: Duration,
    /// Auto-answer delay between a route and the bridge.
    pub pick_up: Duration,
    /// Chance an agent misses an offered call (then sits out a minute).
    pub agent_miss_probability: f64,
    /// Mean time a queued customer waits, after the first 3 s, before hanging up.
    pub customer_patience_mean: Duration,
    /// Agents take breaks and lunch.
    pub breaks: bool,
    pub pacing: PacingConfig,
    pub policy: Policy,
}

impl SimConfig {
    /// An 8-hour day of `agents` agents under `pacing`, with the distributions.
    pub fn day(seed: u64, agents: u32, answer: AnswerCurve, pacing: PacingConfig) -> SimConfig {
        SimConfig {
            seed,
            agents,
            day: Duration::from_secs(8 * 3600),
            answer,
            ring_to_answer_median: Duration::from_secs(9),
            ring_timeout: Duration::from_secs(35),
            quick_failure_share: 0.35,
            talk_mean: Duration::from_secs(120),
            talk_sigma: 0.6,
            wrap_up_mean: Duration::from_secs(10),
            pick_up: Duration::from_millis(500),
            agent_miss_probability: 0.002,
            customer_patience_mean: Duration::from_secs(15),
            breaks: true,
            pacing,
            policy: Policy::Core,
        }
    }
}

/// What a simulated day measured. Abandons are counted by the simulator itself (answered,
/// no agent within 2 s), not taken from the core's counters.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SimReport {
    pub dials: u64,
    pub answered: u64,
    pub abandoned: u64,
    /// `abandoned / answered`.
    pub abandon_rate: f64,
    pub talk_seconds: f64,
    /// Agent-seconds signed in as 可回接 (idle, offered or talking; not on a break, not in
    /// wrap-up).
    pub available_seconds: f64,
    /// `talk_seconds / available_seconds`.
    pub occupancy: f64,
    pub dials_per_agent_hour: f64,
    /// Talk minutes per available agent-hour (the figure Samuelson quotes).
    pub talk_minutes_per_agent_hour: f64,
    /// The most calls in progress at once.
    pub peak_in_progress: u32,
    /// The core's own counters at the end of the day.
    pub dialer: DialerStats,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    SignIn(AgentId),
    BreakDue(AgentId),
    /// A break or sign-out still pending this long after it was due is taken from idle.
    LeaveAnyway(AgentId),
    BreakOver(AgentId),
    SignOut(AgentId),
    Answer(CallKey),
    Fail(CallKey),
    CustomerGivesUp(CallKey),
    PickUp(CallKey, AgentId),
    MissTimeout(CallKey, AgentId),
    BackFromMiss(AgentId),
    TalkOver(CallKey, AgentId),
    WrapUpOver(AgentId),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Desk {
    SignedOut,
    Available,
    WrapUp,
    OnBreak,
    SittingOut,
}

#[derive(Debug, Clone)]
struct SimAgent {
    desk: Desk,
    break_due: bool,
    signed_out_for_good: bool,
    available_since: Option<Time>,
}

#[derive(Debug, Clone, Copy)]
struct SimCall {
    answered_at: Option<Time>,
    bridged_at: Option<Time>,
    bridged: bool,
    over: bool,
}

struct World {
    config: SimConfig,
    rng: StdRng,
    now: Time,
    sequence: u64,
    events: BinaryHeap<Reverse<(Time, u64, Event)>>,
    dialer: Dialer,
    agents: BTreeMap<AgentId, SimAgent>,
    calls: BTreeMap<CallKey, SimCall>,
    report: SimReport,
}

/// Runs one simulated day.
pub fn run(config: &SimConfig) -> SimReport {
    let mut world = World {
        config: config.clone(),
        rng: StdRng::seed_from_u64(config.seed),
        now: Time::ZERO,
        sequence: 0,
        events: BinaryHeap::new(),
        dialer: Dialer::new(config.pacing.clone(), Time::ZERO),
        agents: BTreeMap::new(),
        calls: BTreeMap::new(),
        report: SimReport::default(),
    };
    world.plan_agents();
    let mut vicidial = match &config.policy {
        Policy::Core => None,
        Policy::VicidialAdaptAverage(adapt) => Some(AdaptAverage::new(adapt.clone(), Time::ZERO)),
    };
    let end = config.day;
    loop {
        let next_event = world.events.peek().map(|Reverse((at, _, _))| *at);
        let mut next = next_event;
        for candidate in [
            world.dialer.poll_timeout(),
            vicidial.as_ref().map(AdaptAverage::next_tick),
        ]
        .into_iter()
        .flatten()
        {
            next = Some(next.map_or(candidate, |current| current.min(candidate)));
        }
        let Some(next) = next else { break };
        if next >= end {
            break;
        }
        world.now = world.now.max(next);
        if next_event == Some(next)
            && let Some(Reverse((_, _, event))) = world.events.pop()
        {
            world.handle(event);
        }
        if let Some(adapt) = vicidial.as_mut()
            && adapt.next_tick() <= world.now
        {
            adapt.tick(world.now, &mut world.dialer);
        }
        world.drain_actions();
    }
    world.finish(end)
}

impl World {
    fn at(&mut self, after: Duration, event: Event) {
        self.sequence += 1;
        self.events
            .push(Reverse((self.now + after, self.sequence, event)));
    }

    fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.rng.random::<f64>()
    }

    fn exponential(&mut self, mean: f64) -> f64 {
        let u: f64 = 1.0 - self.rng.random::<f64>();
        -mean * u.ln()
    }

    /// Lognormal with the given median and sigma (Box-Muller for the normal).
    fn lognormal_median(&mut self, median: f64, sigma: f64) -> f64 {
        let u1: f64 = 1.0 - self.rng.random::<f64>();
        let u2: f64 = self.rng.random::<f64>();
        let normal = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        median * (sigma * normal).exp()
    }

    fn plan_agents(&mut self) {
        let day_hours = self.config.day.as_secs_f64() / 3600.0;
        for agent in 0..u64::from(self.config.agents) {
            self.agents.insert(
                agent,
                SimAgent {
                    desk: Desk::SignedOut,
                    break_due: false,
                    signed_out_for_good: false,
                    available_since: None,
                },
            );
            let sign_in = self.uniform(0.0, 600.0);
            self.at(Duration::from_secs_f64(sign_in), Event::SignIn(agent));
            if self.config.breaks {
                // Morning break, lunch, afternoon break, at staggered times.
                for hour in [2.0, 4.0, 6.0] {
                    if hour < day_hours {
                        let due = (hour + self.uniform(-0.5, 0.5)) * 3600.0;
                        self.at(Duration::from_secs_f64(due), Event::BreakDue(agent));
                    }
                }
            }
            let sign_out = self.config.day.as_secs_f64() - self.uniform(0.0, 300.0);
            self.at(Duration::from_secs_f64(sign_out), Event::SignOut(agent));
        }
    }

    fn set_desk(&mut self, agent: AgentId, desk: Desk) {
        let now = self.now;
        let Some(state) = self.agents.get_mut(&agent) else {
            return;
        };
        let was_available = state.desk == Desk::Available;
        state.desk = desk;
        if was_available && desk != Desk::Available {
            if let Some(since) = state.available_since.take() {
                self.report.available_seconds += (now - since).as_secs_f64();
            }
            self.dialer.agent_unavailable(now, agent);
        } else if !was_available && desk == Desk::Available {
            state.available_since = Some(now);
            self.dialer.agent_available(now, agent);
        }
    }

    /// The agent is between calls and off wrap-up: take the break if one is due.
    fn back_to_desk(&mut self, agent: AgentId) {
        let Some(state) = self.agents.get(&agent) else {
            return;
        };
        if state.signed_out_for_good {
            self.set_desk(agent, Desk::SignedOut);
        } else if state.break_due {
            if let Some(state) = self.agents.get_mut(&agent) {
                state.break_due = false;
            }
            self.set_desk(agent, Desk::OnBreak);
            // 15-minute breaks, a 45-minute lunch, give or take.
            let minutes =
                if self.now.as_secs_f64() > 3.0 * 3600.0 && self.now.as_secs_f64() < 5.0 * 3600.0 {
                    self.uniform(35.0, 55.0)
                } else {
                    self.uniform(10.0, 20.0)
                };
            self.at(
                Duration::from_secs_f64(minutes * 60.0),
                Event::BreakOver(agent),
            );
        } else {
            self.set_desk(agent, Desk::Available);
        }
    }

    fn handle(&mut self, event: Event) {
        let now = self.now;
        match event {
            Event::SignIn(agent) => self.set_desk(agent, Desk::Available),
            // Agents leave for a break, or sign out, at the end of a call's wrap-up (they
            // set 小休 while wrapping up); one who gets no call for two minutes leaves anyway.
            Event::BreakDue(agent) => {
                if let Some(state) = self.agents.get_mut(&agent) {
                    state.break_due = true;
                }
                self.at(Duration::from_secs(120), Event::LeaveAnyway(agent));
            }
            Event::SignOut(agent) => self.on_sign_out(agent),
            Event::LeaveAnyway(agent) => self.on_leave_anyway(agent),
            Event::BreakOver(agent) => self.back_to_desk(agent),
            Event::Answer(call) => self.on_answer(call),
            Event::Fail(call) => {
                if let Some(state) = self.calls.get_mut(&call) {
                    state.over = true;
                    self.dialer.call_failed(now, call);
                }
            }
            Event::CustomerGivesUp(call) => {
                if let Some(state) = self.calls.get_mut(&call)
                    && !state.bridged
                    && !state.over
                {
                    state.over = true;
                    self.dialer.call_ended(now, call);
                }
            }
            Event::PickUp(call, agent) => self.on_pick_up(call, agent),
            Event::MissTimeout(call, agent) => self.on_miss_timeout(call, agent),
            Event::BackFromMiss(agent) => {
                if self.agents.get(&agent).map(|state| state.desk) == Some(Desk::SittingOut) {
                    self.back_to_desk(agent);
                }
            }
            Event::TalkOver(call, agent) => self.on_talk_over(call, agent),
            Event::WrapUpOver(agent) => self.back_to_desk(agent),
        }
    }

    /// The agent signs out for the day: at once when away from the desk, else after the
    /// current call's wrap-up (or two idle minutes).
    fn on_sign_out(&mut self, agent: AgentId) {
        if let Some(state) = self.agents.get_mut(&agent) {
            state.signed_out_for_good = true;
        }
        let desk = self.agents.get(&agent).map(|state| state.desk);
        if desk == Some(Desk::OnBreak) || desk == Some(Desk::SittingOut) {
            self.set_desk(agent, Desk::SignedOut);
        } else {
            self.at(Duration::from_secs(120), Event::LeaveAnyway(agent));
        }
    }

    /// Two minutes without a call: an agent due a break or sign-out leaves anyway.
    fn on_leave_anyway(&mut self, agent: AgentId) {
        let desk = self.agents.get(&agent).map(|state| state.desk);
        let pending = self
            .agents
            .get(&agent)
            .is_some_and(|state| state.break_due || state.signed_out_for_good);
        if pending && desk == Some(Desk::Available) && !self.dialer.agent_has_call(agent) {
            self.back_to_desk(agent);
        }
    }

    /// The customer answers and starts waiting for an agent.
    fn on_answer(&mut self, call: CallKey) {
        let now = self.now;
        if let Some(state) = self.calls.get_mut(&call) {
            state.answered_at = Some(now);
            self.report.answered += 1;
            self.dialer.call_answered(now, call);
            // Nobody hangs up in the first seconds of "hello?"; after that, waiting
            // customers give up at random.
            let patience = 3.0 + self.exponential(self.config.customer_patience_mean.as_secs_f64());
            self.at(
                Duration::from_secs_f64(patience),
                Event::CustomerGivesUp(call),
            );
        }
    }

    /// The routed agent picks up: bridged if the customer is still there, then talk.
    fn on_pick_up(&mut self, call: CallKey, agent: AgentId) {
        let now = self.now;
        let live = self
            .calls
            .get(&call)
            .is_some_and(|state| !state.over && !state.bridged);
        if live && self.dialer.agent_has_call(agent) {
            if let Some(state) = self.calls.get_mut(&call) {
                state.bridged = true;
                state.bridged_at = Some(now);
                if let Some(answered_at) = state.answered_at
                    && now - answered_at > Duration::from_secs(2)
                {
                    self.report.abandoned += 1;
                }
            }
            self.dialer.call_bridged(now, call, agent);
            let talk = self.lognormal_median(
                self.config.talk_mean.as_secs_f64() * (-self.config.talk_sigma.powi(2) / 2.0).exp(),
                self.config.talk_sigma,
            );
            self.at(Duration::from_secs_f64(talk), Event::TalkOver(call, agent));
        }
    }

    /// The routed agent did not pick up in time.
    fn on_miss_timeout(&mut self, call: CallKey, agent: AgentId) {
        let now = self.now;
        let live = self
            .calls
            .get(&call)
            .is_some_and(|state| !state.over && !state.bridged);
        if live {
            self.dialer.call_agent_missed(now, call, agent);
        }
        // The desk shows the agent away; they come back after a minute.
        if let Some(state) = self.agents.get_mut(&agent)
            && state.desk == Desk::Available
        {
            if let Some(since) = state.available_since.take() {
                self.report.available_seconds += (now - since).as_secs_f64();
            }
            state.desk = Desk::SittingOut;
        }
        if !live {
            self.dialer.agent_unavailable(now, agent);
        }
        self.at(Duration::from_secs(60), Event::BackFromMiss(agent));
    }

    /// The conversation ends; the agent wraps up.
    fn on_talk_over(&mut self, call: CallKey, agent: AgentId) {
        let now = self.now;
        if let Some(state) = self.calls.get_mut(&call) {
            state.over = true;
            if let Some(bridged_at) = state.bridged_at {
                self.report.talk_seconds += (now - bridged_at).as_secs_f64();
            }
        }
        // Wrap-up (话后处理) first, so the core knows the agent comes back soon.
        self.set_desk(agent, Desk::WrapUp);
        self.dialer.call_ended(now, call);
        let wrap = self.exponential(self.config.wrap_up_mean.as_secs_f64() * 0.5)
            + self.config.wrap_up_mean.as_secs_f64() * 0.5;
        self.at(Duration::from_secs_f64(wrap), Event::WrapUpOver(agent));
    }

    fn drain_actions(&mut self) {
        let now = self.now;
        while let Some(action) = self.dialer.poll_action(now) {
            match action {
                Action::Dial { call } => self.dial(call),
                Action::Route { call, agent } => {
                    if self.rng.random::<f64>() < self.config.agent_miss_probability {
                        self.at(Duration::from_secs(10), Event::MissTimeout(call, agent));
                    } else {
                        self.at(self.config.pick_up, Event::PickUp(call, agent));
                    }
                }
                Action::Drop { call } => {
                    if let Some(state) = self.calls.get_mut(&call) {
                        state.over = true;
                    }
                }
            }
        }
        let in_progress = self.dialer.stats().in_progress;
        self.report.peak_in_progress = self.report.peak_in_progress.max(in_progress);
    }

    fn dial(&mut self, call: CallKey) {
        self.report.dials += 1;
        self.calls.insert(
            call,
            SimCall {
                answered_at: None,
                bridged_at: None,
                bridged: false,
                over: false,
            },
        );
        let hours = self.now.as_secs_f64() / 3600.0;
        let answer_probability = self.config.answer.at(hours);
        let timeout = self.config.ring_timeout.as_secs_f64();
        let answers = self.rng.random::<f64>() < answer_probability;
        let ring = self.lognormal_median(self.config.ring_to_answer_median.as_secs_f64(), 0.5);
        if answers && ring < timeout {
            self.at(Duration::from_secs_f64(ring), Event::Answer(call));
        } else if self.rng.random::<f64>() < self.config.quick_failure_share {
            let quick = self.uniform(1.0, 8.0);
            self.at(Duration::from_secs_f64(quick), Event::Fail(call));
        } else {
            self.at(self.config.ring_timeout, Event::Fail(call));
        }
    }

    fn finish(mut self, end: Time) -> SimReport {
        self.now = end;
        for state in self.agents.values_mut() {
            if let Some(since) = state.available_since.take() {
                self.report.available_seconds += (end - since).as_secs_f64();
            }
        }
        // Calls still unbridged at the end of the day: count those past the 2 s mark.
        for state in self.calls.values() {
            if let (Some(answered_at), false) = (state.answered_at, state.bridged)
                && (end - answered_at > Duration::from_secs(2) || state.over)
            {
                self.report.abandoned += 1;
            }
        }
        for state in self.calls.values() {
            if let (Some(bridged_at), false) = (state.bridged_at, state.over) {
                self.report.talk_seconds += (end - bridged_at).as_secs_f64();
            }
        }
        let mut report = self.report;
        report.abandon_rate = if report.answered == 0 {
            0.0
        } else {
            report.abandoned as f64 / report.answered as f64
        };
        report.occupancy = if report.available_seconds > 0.0 {
            report.talk_seconds / report.available_seconds
        } else {
            0.0
        };
        let agent_hours = report.available_seconds / 3600.0;
        if agent_hours > 0.0 {
            report.dials_per_agent_hour = report.dials as f64 / agent_hours;
            report.talk_minutes_per_agent_hour = report.talk_seconds / 60.0 / agent_hours;
        }
        report.dialer = self.dialer.stats();
        report
    }
}
