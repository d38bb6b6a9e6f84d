//! VICIdial's ADAPT_AVERAGE pacing, rebuilt from the published description of
//! `bin/AST_VDadapt.pl` (VICIdial 2.4 to 2.14), as the benchmark's baseline:
//!
//! - every second a sample of agents ready, agents active (ready or in a call) and
//!   answered calls waiting; every 15 s the dial level is recomputed from 15-sample
//!   rolling averages: `differential = avg_ready - avg_waiting + dl_diff_target`,
//!   `level = level x (1 + intensity x differential / avg_active)`, clamped to
//!   `[1.0, maximum_level]`;
//! - every 60 s: if the last minute had over 20 answered calls and over 50 % of them
//!   dropped, the level halves; with over 50 answered today and today's drop rate above the
//!   target, ADAPT_AVERAGE halves it;
//! - below `minimum_agents` active agents the level is 1.0;
//! - the dialer keeps `active agents x level` calls in progress ([`Dialer::set_lines_target`]).
//!
//! "Dropped" is the core's abandoned count (answered, no agent within 2 s), the same rule
//! our own pacer is judged by.

use std::time::Duration;

use crate::{Dialer, DialerStats, Time};

/// ADAPT_AVERAGE's settings, with VICIdial's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptAverageConfig {
    /// `adaptive_maximum_level` (VICIdial default 3.0).
    pub maximum_level: f64,
    /// Step factor when raising the level (`adaptive_intensity` above 0 raises it; 1.0 is
    /// the neutral setting).
    pub intensity_up: f64,
    /// Step factor when lowering the level.
    pub intensity_down: f64,
    /// `adaptive_dl_diff_target`: -1 aims for one spare agent, +1 for one waiting call.
    pub dl_diff_target: f64,
    /// `adaptive_dropped_percentage` as a fraction (3 % = 0.03).
    pub drop_target: f64,
    /// Below this many active agents the level is 1.0.
    pub minimum_agents: u32,
}

impl Default for AdaptAverageConfig {
    fn default() -> Self {
        AdaptAverageConfig {
            maximum_level: 3.0,
            intensity_up: 1.0,
            intensity_down: 1.0,
            dl_diff_target: 0.0,
            drop_target: 0.03,
            minimum_agents: 1,
        }
    }
}

const SAMPLE_EVERY: Duration = Duration::from_secs(1);
const SAMPLES: usize = 15;
const LEVEL_EVERY: Duration = Duration::from_secs(15);
const DROP_CHECK_EVERY: Duration = Duration::from_secs(60);

/// The ADAPT_AVERAGE controller. Call [`AdaptAverage::tick`] at least once a second.
#[derive(Debug, Clone)]
pub struct AdaptAverage {
    config: AdaptAverageConfig,
    level: f64,
    samples: std::collections::VecDeque<(f64, f64, f64)>,
    next_sample: Time,
    next_level: Time,
    next_drop_check: Time,
    /// Answered and abandoned counts at the last drop check (for "the last minute").
    answered_at_check: u64,
    abandoned_at_check: u64,
    /// Counts at the start of the day ("since midnight"): the day is the simulator's run.
    answered_at_midnight: u64,
    abandoned_at_midnight: u64,
}

impl AdaptAverage {
    pub fn new(config: AdaptAverageConfig, now: Time) -> AdaptAverage {
        AdaptAverage {
            config,
            level: 1.0,
            samples: std::collections::VecDeque::with_capacity(SAMPLES + 1),
            next_sample: now,
            next_level: now + LEVEL_EVERY,
            next_drop_check: now + DROP_CHECK_EVERY,
            answered_at_check: 0,
            abandoned_at_check: 0,
            answered_at_midnight: 0,
            abandoned_at_midnight: 0,
        }
    }

    pub fn level(&self) -> f64 {
        self.level
    }

    /// When the controller next wants to run.
    pub fn next_tick(&self) -> Time {
        self.next_sample
            .min(self.next_level)
            .min(self.next_drop_check)
    }

    /// Samples the floor, updates the level when due, and sets the dialer's line target.
    pub fn tick(&mut self, now: Time, dialer: &mut Dialer) {
        let stats = dialer.stats();
        while now >= self.next_sample {
            self.sample(&stats);
            self.next_sample += SAMPLE_EVERY;
        }
        while now >= self.next_level {
            self.update_level();
            self.next_level += LEVEL_EVERY;
        }
        while now >= self.next_drop_check {
            self.check_drops(&stats);
            self.next_drop_check += DROP_CHECK_EVERY;
        }
        let active = stats.agents_available;
        let level = if active < self.config.minimum_agents {
            1.0
        } else {
            self.level
        };
        let lines = (f64::from(active) * level).round() as u32;
        dialer.set_lines_target(now, Some(lines));
    }

    fn sample(&mut self, stats: &DialerStats) {
        self.samples.push_back((
            f64::from(stats.agents_free),
            f64::from(stats.queued),
            f64::from(stats.agents_available),
        ));
        if self.samples.len() > SAMPLES {
            self.samples.pop_front();
        }
    }

    fn update_level(&mut self) {
        if self.samples.is_empty() {
            return;
        }
        let count = self.samples.len() as f64;
        let (mut ready, mut waiting, mut active) = (0.0, 0.0, 0.0);
        for &(sample_ready, sample_waiting, sample_active) in &self.samples {
            ready += sample_ready;
            waiting += sample_waiting;
            active += sample_active;
        }
        let (ready, waiting, active) = (ready / count, waiting / count, active / count);
        if active < 0.5 {
            return;
        }
        let differential = ready - waiting + self.config.dl_diff_target;
        let intensity = if differential >= 0.0 {
            self.config.intensity_up
        } else {
            self.config.intensity_down
        };
        self.level *= 1.0 + intensity * differential / active;
        self.level = self.level.clamp(1.0, self.config.maximum_level);
    }

    fn check_drops(&mut self, stats: &DialerStats) {
        let minute_answered = stats.answered - self.answered_at_check;
        let minute_dropped = stats.abandoned - self.abandoned_at_check;
        self.answered_at_check = stats.answered;
        self.abandoned_at_check = stats.abandoned;
        if minute_answered > 20 && minute_dropped * 2 > minute_answered {
            self.level = (self.level / 2.0).max(1.0);
        }
        let today_answered = stats.answered - self.answered_at_midnight;
        let today_dropped = stats.abandoned - self.abandoned_at_midnight;
        if today_answered > 50
            && today_dropped as f64 / today_answered as f64 > self.config.drop_target
        {
            // ADAPT_AVERAGE: halve (HARD_LIMIT would set 1.0, TAPERED would scale by the
            // shift time left).
            self.level = (self.level / 2.0).max(1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PacingConfig, PacingMode};

    fn dialer_with_free_agents(count: u64) -> Dialer {
        let config = PacingConfig {
            mode: PacingMode::Progressive,
            max_concurrency: 1000,
            ..PacingConfig::default()
        };
        let mut dialer = Dialer::new(config, Time::ZERO);
        for agent in 0..count {
            dialer.agent_available(Time::ZERO, agent);
        }
        dialer
    }

    #[test]
    fn idle_agents_raise_the_level_up_to_the_maximum() {
        let mut dialer = dialer_with_free_agents(10);
        let mut adapt = AdaptAverage::new(AdaptAverageConfig::default(), Time::ZERO);
        adapt.tick(Time::ZERO, &mut dialer);
        assert_eq!(adapt.level(), 1.0);
        // All 10 ready, none waiting: differential 10 over 10 active doubles the level.
        adapt.tick(Time::from_secs(15), &mut dialer);
        assert!((adapt.level() - 2.0).abs() < 1e-9, "{}", adapt.level());
        adapt.tick(Time::from_secs(30), &mut dialer);
        assert_eq!(adapt.level(), 3.0);
        let mut dials = 0;
        while let Some(crate::Action::Dial { .. }) = dialer.poll_action(Time::from_secs(30)) {
            dials += 1;
        }
        assert_eq!(dials, 30, "10 active agents x level 3");
    }
}
