//! Transaction helpers: identifiers and the UDP retransmission timers of RFC 3261 section 17.
//!
//! Everything here is a pure function of its inputs (time is passed in), so the driver decides
//! when to sleep and tests can step time by hand.

use std::time::{Duration, Instant};

use rand::Rng as _;

/// RFC 3261 T1: round-trip estimate.
pub const T1: Duration = Duration::from_millis(500);
/// RFC 3261 T2: cap on non-INVITE retransmission intervals.
pub const T2: Duration = Duration::from_secs(4);
/// Timer B / F: a client transaction gives up after 64 * T1.
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(32);

/// The RFC 3261 magic cookie every branch starts with.
pub const BRANCH_COOKIE: &str = "z9hG4bK";

fn random_hex(n_bytes: usize) -> String {
    let mut rng = rand::rng();
    let bytes: Vec<u8> = (0..n_bytes).map(|_| rng.random()).collect();
    hex::encode(bytes)
}

/// A fresh Via branch (unique per transaction, with the magic cookie).
pub fn new_branch() -> String {
    format!("{BRANCH_COOKIE}{}", random_hex(10))
}

/// A fresh From/To tag.
pub fn new_tag() -> String {
    random_hex(6)
}

/// A fresh Call-ID, qualified by `host` to stay unique across boxes.
pub fn new_call_id(host: &str) -> String {
    format!("{}@{host}", random_hex(12))
}

/// What a client transaction's retransmission timer says to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerAction {
    /// Nothing until this instant.
    WaitUntil(Instant),
    /// Send the request again now (the timer has already moved on).
    Retransmit,
    /// No response within 64 * T1: the transaction failed (report a timeout, status 408).
    GiveUp,
}

/// Timer A/B (INVITE) or E/F (non-INVITE) for one client transaction over UDP.
#[derive(Debug, Clone)]
pub struct RetransmitTimer {
    invite: bool,
    started: Instant,
    next_at: Instant,
    interval: Duration,
}

impl RetransmitTimer {
    /// Starts the timer when the request is first sent at `now`.
    pub fn new(now: Instant, invite: bool) -> RetransmitTimer {
        RetransmitTimer {
            invite,
            started: now,
            next_at: now + T1,
            interval: T1,
        }
    }

    /// The interval after `n_sent` transmissions: INVITE doubles without cap (A), non-INVITE
    /// doubles up to T2 (E).
    pub fn interval_after(invite: bool, n_sent: u32) -> Duration {
        let doubled = T1.saturating_mul(1u32 << n_sent.saturating_sub(1).min(16));
        if invite { doubled } else { doubled.min(T2) }
    }

    /// Advances the timer to `now` and says what to do.
    pub fn poll(&mut self, now: Instant) -> TimerAction {
        if now.duration_since(self.started) >= TRANSACTION_TIMEOUT {
            return TimerAction::GiveUp;
        }
        if now < self.next_at {
            return TimerAction::WaitUntil(self.next_at);
        }
        self.interval = if self.invite {
            self.interval * 2
        } else {
            (self.interval * 2).min(T2)
        };
        self.next_at = now + self.interval;
        TimerAction::Retransmit
    }
}
