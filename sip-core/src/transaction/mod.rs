//! Transactions (RFC 3261 section 17) as sans-IO state machines, the identifiers they need,
//! and the UDP retransmission timers.
//!
//! - [`ClientInvite`]: one INVITE we sent, with its CANCEL (held back until the first
//!   provisional response), its ACKs (hop-by-hop for a non-2xx final, the dialog's for a 2xx,
//!   again for every retransmitted final and for a second fork's 2xx) and timers A, B and D.
//! - [`ClientNonInvite`]: a BYE, CANCEL, OPTIONS or REGISTER we sent: timers E, F and K.
//! - [`ServerTransactions`]: every request we answer, by branch: retransmitted requests get
//!   the same answer again, a final answer to an INVITE is retransmitted until its ACK comes
//!   (timers G, H and I; RFC 3261 13.3.1.4 for a 2xx), non-INVITE answers are kept for
//!   timer J.
//!
//! Each is driven like `sync-protocol`'s session: `handle_*(now, ..)` with what arrived,
//! `poll_transmit()` for what to send, `poll_timeout()` / `handle_timeout(now)` for the
//! timers, `poll_event()` for what the owner must act on. No clock is read and no randomness
//! drawn here: the time is passed in, and fresh identifiers come from the [`RngCore`] the
//! caller hands over (the driver gives OS randomness, tests a seeded generator).
//!
//! Over a reliable transport (TCP) nothing is retransmitted and the absorbing states
//! (timers D, I, J, K) last zero time, as the RFC says; timers B, F and H still apply.

mod client;
mod server;

use std::time::{Duration, Instant};

use rand::RngCore;

pub use client::{ClientEvent, ClientInvite, ClientNonInvite};
pub use server::{ServerEvent, ServerTransactions, Verdict};

/// RFC 3261 T1: round-trip estimate.
pub const T1: Duration = Duration::from_millis(500);
/// RFC 3261 T2: cap on non-INVITE retransmission intervals.
pub const T2: Duration = Duration::from_secs(4);
/// RFC 3261 T4: how long a message can live in the network (timers I and K).
pub const T4: Duration = Duration::from_secs(5);
/// Timer B / F / H: a transaction gives up after 64 * T1.
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(32);
/// Timer D: how long a completed INVITE client transaction over UDP keeps ACKing
/// retransmissions of its final response.
pub const TIMER_D: Duration = Duration::from_secs(32);

/// The RFC 3261 magic cookie every branch starts with.
pub const BRANCH_COOKIE: &str = "z9hG4bK";

fn random_hex<R: RngCore + ?Sized>(rng: &mut R, n_bytes: usize) -> String {
    let mut bytes = vec![0u8; n_bytes];
    rng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A fresh Via branch (unique per transaction, with the magic cookie).
pub fn branch_from<R: RngCore + ?Sized>(rng: &mut R) -> String {
    format!("{BRANCH_COOKIE}{}", random_hex(rng, 10))
}

/// A fresh From/To tag (also used as a digest cnonce).
pub fn tag_from<R: RngCore + ?Sized>(rng: &mut R) -> String {
    random_hex(rng, 6)
}

/// A fresh Call-ID, qualified by `host` to stay unique across boxes.
pub fn call_id_from<R: RngCore + ?Sized>(rng: &mut R, host: &str) -> String {
    format!("{}@{host}", random_hex(rng, 12))
}

/// `via` (one Via header value) with its branch parameter replaced by `branch`, or added.
pub fn via_with_branch(via: &str, branch: &str) -> String {
    let mut parts: Vec<String> = via.split(';').map(str::to_string).collect();
    let mut replaced = false;
    for part in parts.iter_mut().skip(1) {
        let name = part.split('=').next().unwrap_or_default().trim();
        if name.eq_ignore_ascii_case("branch") {
            *part = format!("branch={branch}");
            replaced = true;
        }
    }
    if !replaced {
        parts.insert(1.min(parts.len()), format!("branch={branch}"));
    }
    parts.join(";")
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

/// A retransmission schedule: due at `next`, then after `interval` doubled each time, capped
/// at `cap` (timer A has no cap; E and G cap at T2).
#[derive(Debug, Clone)]
struct Backoff {
    next: Instant,
    interval: Duration,
    cap: Option<Duration>,
}

impl Backoff {
    fn new(now: Instant, cap: Option<Duration>) -> Backoff {
        Backoff {
            next: now + T1,
            interval: T1,
            cap,
        }
    }

    /// True (and the schedule moves on) when a retransmission is due at `now`.
    fn fire(&mut self, now: Instant) -> bool {
        if now < self.next {
            return false;
        }
        let doubled = self.interval.saturating_mul(2);
        self.interval = self.cap.map_or(doubled, |cap| doubled.min(cap));
        self.next += self.interval;
        // A driver that slept past several deadlines sends once, not a burst.
        if self.next <= now {
            self.next = now + self.interval;
        }
        true
    }
}

/// The earlier of two optional instants.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
