//! Online estimates the adaptive pacer needs: the answer probability of a dial, and the
//! distributions of ring time (to answer, to failure), talk time and after-call time.
//!
//! Each distribution is a sliding window of recent samples kept as a histogram, so a
//! survival probability `P(X > x)` is one lookup. A window, rather than all history, lets
//! the estimates follow the day: answer rates and talk times drift (morning lists, lunch,
//! evening), and the pacer must see today's numbers, not last week's.

use std::collections::VecDeque;

/// A sliding-window histogram of durations in seconds.
#[derive(Debug, Clone)]
pub(crate) struct Distribution {
    window: VecDeque<f64>,
    window_len: usize,
    bin_width: f64,
    counts: Vec<u32>,
    /// `cumulative[i]` = samples in bins `0..i`; rebuilt on every insert (bins are few).
    cumulative: Vec<u32>,
}

impl Distribution {
    /// `bins` bins of `bin_width` seconds; longer samples fall in the last bin.
    /// `prior` seeds the window so the pacer has an opinion before the first real sample;
    /// real samples push the prior out.
    pub(crate) fn new(bin_width: f64, bins: usize, window_len: usize, prior: &[f64]) -> Self {
        let mut distribution = Distribution {
            window: VecDeque::with_capacity(window_len + 1),
            window_len,
            bin_width,
            counts: vec![0; bins],
            cumulative: vec![0; bins + 1],
        };
        for &sample in prior {
            distribution.push_without_rebuild(sample);
        }
        distribution.rebuild();
        distribution
    }

    fn bin_of(&self, seconds: f64) -> usize {
        let bin = (seconds.max(0.0) / self.bin_width) as usize;
        bin.min(self.counts.len() - 1)
    }

    fn push_without_rebuild(&mut self, seconds: f64) {
        let bin = self.bin_of(seconds);
        self.counts[bin] += 1;
        self.window.push_back(seconds);
        if self.window.len() > self.window_len
            && let Some(oldest) = self.window.pop_front()
        {
            let old_bin = self.bin_of(oldest);
            self.counts[old_bin] -= 1;
        }
    }

    fn rebuild(&mut self) {
        let mut running = 0;
        for (bin, count) in self.counts.iter().enumerate() {
            self.cumulative[bin] = running;
            running += count;
        }
        let last = self.counts.len();
        self.cumulative[last] = running;
    }

    pub(crate) fn push(&mut self, seconds: f64) {
        self.push_without_rebuild(seconds);
        self.rebuild();
    }

    pub(crate) fn mean(&self) -> f64 {
        if self.window.is_empty() {
            return 0.0;
        }
        self.window.iter().sum::<f64>() / self.window.len() as f64
    }

    /// The `share` quantile (0.5 = median), to a bin's width.
    pub(crate) fn quantile(&self, share: f64) -> f64 {
        let total = self.cumulative[self.counts.len()];
        if total == 0 {
            return 0.0;
        }
        let wanted = share.clamp(0.0, 1.0) * f64::from(total);
        for bin in 0..self.counts.len() {
            if f64::from(self.cumulative[bin + 1]) >= wanted {
                return (bin as f64 + 0.5) * self.bin_width;
            }
        }
        self.counts.len() as f64 * self.bin_width
    }

    /// `P(X > seconds)`, linear within a bin.
    pub(crate) fn survival(&self, seconds: f64) -> f64 {
        let total = self.cumulative[self.counts.len()];
        if total == 0 {
            return 0.0;
        }
        if seconds <= 0.0 {
            return 1.0;
        }
        let position = seconds / self.bin_width;
        let bin = position as usize;
        if bin >= self.counts.len() {
            return 0.0;
        }
        let within = position - bin as f64;
        let at_or_below = self.cumulative[bin] as f64 + within * self.counts[bin] as f64;
        (1.0 - at_or_below / total as f64).clamp(0.0, 1.0)
    }

    /// `P(X <= elapsed + horizon | X > elapsed)`: the chance something that has lasted
    /// `elapsed` seconds is over within `horizon` more. Past the window's longest sample
    /// there is no data: with `tail`, an exponential tail with the window's mean stands in
    /// (a long talk does end); without, the answer is 0 (an agent away far longer than
    /// any after-call work ever seen is on a break, not about to return).
    pub(crate) fn ends_within(&self, elapsed: f64, horizon: f64, tail: bool) -> f64 {
        if horizon <= 0.0 {
            return 0.0;
        }
        let alive = self.survival(elapsed);
        if alive < 1e-6 {
            if !tail {
                return 0.0;
            }
            let mean = self.mean().max(1.0);
            return 1.0 - (-horizon / mean).exp();
        }
        ((alive - self.survival(elapsed + horizon)) / alive).clamp(0.0, 1.0)
    }
}

/// The share of recent dials that were answered.
#[derive(Debug, Clone)]
pub(crate) struct AnswerRate {
    window: VecDeque<bool>,
    window_len: usize,
    answered: usize,
}

impl AnswerRate {
    pub(crate) fn new(window_len: usize) -> Self {
        AnswerRate {
            window: VecDeque::with_capacity(window_len + 1),
            window_len,
            answered: 0,
        }
    }

    pub(crate) fn push(&mut self, answered: bool) {
        self.window.push_back(answered);
        if answered {
            self.answered += 1;
        }
        if self.window.len() > self.window_len
            && let Some(true) = self.window.pop_front()
        {
            self.answered -= 1;
        }
    }

    /// A Beta(1, 3) prior (25 %) that a handful of outcomes overrides; with no data the
    /// pacer should neither flood nor starve.
    pub(crate) fn estimate(&self) -> f64 {
        (self.answered as f64 + 1.0) / (self.window.len() as f64 + 4.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survival_of_uniform_samples() {
        let samples: Vec<f64> = (0..100).map(|i| i as f64 + 0.5).collect();
        let distribution = Distribution::new(1.0, 200, 1000, &samples);
        assert!((distribution.survival(50.0) - 0.5).abs() < 0.01);
        assert_eq!(distribution.survival(0.0), 1.0);
        assert_eq!(distribution.survival(150.0), 0.0);
        // Lasted 50 s, uniform on 0..100: half of what is left ends in the next 25 s.
        assert!((distribution.ends_within(50.0, 25.0, true) - 0.5).abs() < 0.02);
    }

    #[test]
    fn window_forgets_old_samples() {
        let mut distribution = Distribution::new(1.0, 100, 10, &[90.0; 10]);
        assert!(distribution.survival(50.0) > 0.99);
        for _ in 0..10 {
            distribution.push(10.5);
        }
        assert!(distribution.survival(50.0) < 0.01);
        assert!((distribution.quantile(0.5) - 10.5).abs() < 1e-9);
        // Past every sample: a talk gets an exponential tail, an absence gets nothing.
        assert!(distribution.ends_within(60.0, 10.0, true) > 0.5);
        assert_eq!(distribution.ends_within(60.0, 10.0, false), 0.0);
        assert!((distribution.mean() - 10.5).abs() < 1e-9);
    }

    #[test]
    fn answer_rate_follows_outcomes() {
        let mut rate = AnswerRate::new(100);
        assert!((rate.estimate() - 0.25).abs() < 1e-9);
        for i in 0..200 {
            rate.push(i % 10 == 0);
        }
        assert!((rate.estimate() - 0.1).abs() < 0.02);
    }
}
