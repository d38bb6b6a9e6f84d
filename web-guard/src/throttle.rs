//! Login throttling: exponential back-off that slows a guesser without locking anyone out.
//!
//! Two counters, both keyed on the source address, never on the account alone:
//! - **(account, source)**: the strict one. After [`ThrottleConfig::pair_free`] attempts
//!   from one address at one account, each further attempt must wait twice as long as the
//!   one before (from [`ThrottleConfig::base`] up to [`ThrottleConfig::max`]). A correct
//!   password clears it.
//! - **source**: a looser one over every account tried from an address, against one
//!   address spraying many accounts.
//!
//! An attacker elsewhere therefore slows only their own address: the real user, from their
//! own desk, logs in as usual. IPv6 sources count per /64 (one host usually holds a whole
//! /64); IPv4-mapped IPv6 counts as the IPv4 address.
//!
//! Attempts are counted when they start ([`LoginThrottle::attempt`]), not when they fail, so
//! a burst of parallel requests cannot all slip through before the first failure is
//! recorded; a success gives the attempt back. Sans-IO: every call takes the time, so tests
//! drive it with simulated time and servers pass [`Instant::now`].

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How hard the throttle is.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleConfig {
    /// Attempts at one account from one source before waiting starts.
    pub pair_free: u32,
    /// Attempts at any accounts from one source before waiting starts (looser: a shared
    /// office address has many users who mistype).
    pub source_free: u32,
    /// The first wait.
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
    /// A counter quiet this long starts again from zero.
    pub forget_after: Duration,
    /// Counters kept at most (per kind); beyond this, quiet ones are dropped first.
    pub max_entries: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            pair_free: 5,
            source_free: 30,
            base: Duration::from_secs(1),
            max: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(60 * 60),
            max_entries: 100_000,
        }
    }
}

/// How long to wait before the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait(pub Duration);

impl Wait {
    /// Whole seconds, rounded up (for `Retry-After`).
    pub fn seconds(&self) -> u64 {
        self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0)
    }

    /// The message in Chinese.
    pub fn zh(&self) -> String {
        format!("登录失败次数过多，请 {} 秒后再试", self.seconds())
    }
}

impl std::fmt::Display for Wait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "too many failed logins from this address: try again in {} s", self.seconds())
    }
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    attempts: u32,
    last: Instant,
}

/// Where attempts come from, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Source(IpAddr);

impl Source {
    fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    Source(IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0)))
                }
            },
            v4 => Source(v4),
        }
    }
}

/// The throttle's state (single-threaded; [`SharedThrottle`] wraps it for a server).
#[derive(Debug)]
pub struct LoginThrottle {
    config: ThrottleConfig,
    pairs: HashMap<(String, Source), Counter>,
    sources: HashMap<Source, Counter>,
}

impl LoginThrottle {
    pub fn new(config: ThrottleConfig) -> LoginThrottle {
        LoginThrottle { config, pairs: HashMap::new(), sources: HashMap::new() }
    }

    /// Starts a login attempt at `account` from `source`: refused with how long to wait,
    /// or counted (as a failure until [`LoginThrottle::succeeded`] says otherwise).
    pub fn attempt(&mut self, account: &str, source: IpAddr, now: Instant) -> Result<(), Wait> {
        let config = self.config;
        let pair_key = (account_key(account), Source::of(source));
        let source_key = Source::of(source);
        let pair = live(self.pairs.get(&pair_key), &config, now);
        let from_source = live(self.sources.get(&source_key), &config, now);
        let waits = [wait(pair, config.pair_free, &config, now), wait(from_source, config.source_free, &config, now)];
        if let Some(longest) = waits.into_iter().flatten().max() {
            return Err(Wait(longest));
        }
        self.prune(now);
        let bump = |c: Option<Counter>| Counter { attempts: c.map_or(0, |c| c.attempts).saturating_add(1), last: now };
        self.pairs.insert(pair_key, bump(pair));
        self.sources.insert(source_key, bump(from_source));
        Ok(())
    }

    /// The attempt succeeded: the (account, source) counter starts again and the source
    /// gets this attempt back.
    pub fn succeeded(&mut self, account: &str, source: IpAddr) {
        let source = Source::of(source);
        self.pairs.remove(&(account_key(account), source));
        if let Some(counter) = self.sources.get_mut(&source) {
            counter.attempts = counter.attempts.saturating_sub(1);
        }
    }

    /// Drops quiet counters once there are too many.
    fn prune(&mut self, now: Instant) {
        let forget = self.config.forget_after;
        if self.pairs.len() >= self.config.max_entries {
            self.pairs.retain(|_, c| now.saturating_duration_since(c.last) < forget);
            if self.pairs.len() >= self.config.max_entries {
                // Still full of live counters: an attack on very many accounts. The source
                // counters still hold each address back.
                self.pairs.clear();
            }
        }
        if self.sources.len() >= self.config.max_entries {
            self.sources.retain(|_, c| now.saturating_duration_since(c.last) < forget);
        }
    }
}

/// Account names compare as the login form would: trimmed, case-insensitive.
fn account_key(account: &str) -> String {
    account.trim().to_lowercase()
}

/// A counter unless it has been quiet long enough to forget.
fn live(counter: Option<&Counter>, config: &ThrottleConfig, now: Instant) -> Option<Counter> {
    counter.copied().filter(|c| now.saturating_duration_since(c.last) < config.forget_after)
}

/// How long a counter still holds attempts back.
fn wait(counter: Option<Counter>, free: u32, config: &ThrottleConfig, now: Instant) -> Option<Duration> {
    let counter = counter?;
    if counter.attempts < free {
        return None;
    }
    let doublings = (counter.attempts - free).min(30);
    let backoff = config.base.saturating_mul(1u32 << doublings).min(config.max);
    let until = counter.last + backoff;
    (until > now).then(|| until - now)
}

/// A [`LoginThrottle`] shared by a server's handlers.
#[derive(Debug)]
pub struct SharedThrottle(Mutex<LoginThrottle>);

impl Default for SharedThrottle {
    fn default() -> Self {
        SharedThrottle::new(ThrottleConfig::default())
    }
}

impl SharedThrottle {
    pub fn new(config: ThrottleConfig) -> SharedThrottle {
        SharedThrottle(Mutex::new(LoginThrottle::new(config)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LoginThrottle> {
        // Counters stay consistent between calls; a panic elsewhere does not corrupt them.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// [`LoginThrottle::attempt`] now.
    pub fn attempt(&self, account: &str, source: IpAddr) -> Result<(), Wait> {
        self.lock().attempt(account, source, Instant::now())
    }

    /// [`LoginThrottle::succeeded`].
    pub fn succeeded(&self, account: &str, source: IpAddr) {
        self.lock().succeeded(account, source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ATTACKER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 9));
    const DESK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 2, 3));

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(ThrottleConfig::default())
    }

    /// `n` failed attempts at `account` from `source`, one every `gap`; returns the time
    /// after the last one and how many were refused.
    fn hammer(t: &mut LoginThrottle, account: &str, source: IpAddr, n: u32, start: Instant, gap: Duration) -> (Instant, u32) {
        let mut now = start;
        let mut refused = 0;
        for _ in 0..n {
            if t.attempt(account, source, now).is_err() {
                refused += 1;
            }
            now += gap;
        }
        (now, refused)
    }

    #[test]
    fn a_burst_waits_twice_as_long_each_time_up_to_the_cap() {
        let mut t = throttle();
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(t.attempt("alice", ATTACKER, t0), Ok(()));
        }
        assert_eq!(t.attempt("alice", ATTACKER, t0), Err(Wait(Duration::from_secs(1))));
        assert_eq!(t.attempt("ALICE ", ATTACKER, t0), Err(Wait(Duration::from_secs(1))), "names compare like the form");
        // Each allowed attempt doubles the next wait.
        let mut now = t0;
        for expect in [1u64, 2, 4, 8, 16] {
            now += Duration::from_secs(expect);
            assert_eq!(t.attempt("alice", ATTACKER, now - Duration::from_millis(1)), Err(Wait(Duration::from_millis(1))));
            assert_eq!(t.attempt("alice", ATTACKER, now), Ok(()), "after waiting {expect} s");
        }
        assert_eq!(t.attempt("alice", ATTACKER, now), Err(Wait(Duration::from_secs(32))));
        // Capped at 15 minutes however long it goes on.
        for _ in 0..20 {
            let Err(Wait(w)) = t.attempt("alice", ATTACKER, now) else { panic!("refused while waiting") };
            assert!(w <= Duration::from_secs(900));
            now += w;
            assert_eq!(t.attempt("alice", ATTACKER, now), Ok(()));
        }
        assert_eq!(t.attempt("alice", ATTACKER, now), Err(Wait(Duration::from_secs(900))));
    }

    #[test]
    fn an_attacker_cannot_lock_the_real_user_out_from_elsewhere() {
        let mut t = throttle();
        let t0 = Instant::now();
        let (now, refused) = hammer(&mut t, "alice", ATTACKER, 200, t0, Duration::from_millis(100));
        assert!(refused > 150, "the attacker is slowed: {refused} of 200 refused");
        assert_eq!(t.attempt("alice", DESK, now), Ok(()), "alice at her desk is not held back");
        t.succeeded("alice", DESK);
        // Nor by many attackers together.
        for host in 1..=50u8 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, host));
            hammer(&mut t, "alice", ip, 20, now, Duration::ZERO);
        }
        assert_eq!(t.attempt("alice", DESK, now), Ok(()));
    }

    #[test]
    fn one_source_spraying_many_accounts_is_slowed_too() {
        let mut t = throttle();
        let t0 = Instant::now();
        for i in 0..30 {
            assert_eq!(t.attempt(&format!("user{i}"), ATTACKER, t0), Ok(()));
        }
        assert!(t.attempt("user99", ATTACKER, t0).is_err(), "the 31st account from one address waits");
        assert_eq!(t.attempt("user99", DESK, t0), Ok(()), "another address does not");
        // An IPv6 attacker cannot escape by changing the low 64 bits.
        let mut t = throttle();
        for i in 0..40u16 {
            let ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, i));
            let _ = t.attempt(&format!("user{i}"), ip, t0);
        }
        assert!(t.attempt("x", IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 9, 9, 9, 9)), t0).is_err());
    }

    #[test]
    fn success_starts_again_and_quiet_counters_are_forgotten() {
        let mut t = throttle();
        let t0 = Instant::now();
        for _ in 0..4 {
            t.attempt("bob", DESK, t0).unwrap();
        }
        t.attempt("bob", DESK, t0).unwrap();
        t.succeeded("bob", DESK);
        for _ in 0..5 {
            assert_eq!(t.attempt("bob", DESK, t0), Ok(()), "a correct password clears the count");
        }
        assert!(t.attempt("bob", DESK, t0).is_err());
        let later = t0 + Duration::from_secs(3601);
        for _ in 0..5 {
            assert_eq!(t.attempt("bob", DESK, later), Ok(()), "an hour later it starts again");
        }
    }

    #[test]
    fn parallel_attempts_are_counted_before_they_fail() {
        let mut t = throttle();
        let t0 = Instant::now();
        // Twenty requests arrive before any answer: only the free five go through.
        let allowed = (0..20).filter(|_| t.attempt("carol", ATTACKER, t0).is_ok()).count();
        assert_eq!(allowed, 5);
    }

    #[test]
    fn the_counters_stay_bounded() {
        let config = ThrottleConfig { max_entries: 100, ..ThrottleConfig::default() };
        let mut t = LoginThrottle::new(config);
        let t0 = Instant::now();
        for i in 0..1000u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let _ = t.attempt(&format!("u{i}"), ip, t0 + Duration::from_secs(u64::from(i) * 10));
        }
        assert!(t.pairs.len() <= 100 && t.sources.len() <= 1000);
        assert_eq!(Wait(Duration::from_millis(1500)).seconds(), 2);
    }
}
