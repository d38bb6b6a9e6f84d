//! The two halves of a log inside a session: the sender's window of unacknowledged entries
//! and the receiver's in-order, exactly-once delivery with cumulative acknowledgements.

use std::collections::BTreeMap;

use super::{Log, SessionError};

/// The sending half of a log: what was sent, what was acknowledged, whether to fetch more.
#[derive(Debug)]
pub(super) struct Outgoing {
    pub(super) log: Log,
    pub(super) acked: u64,
    pub(super) sent: u64,
    pub(super) window: u64,
    /// A fetch was requested and its result has not come back.
    pub(super) fetch_limit: Option<u64>,
    /// The store may hold entries after `sent`.
    pub(super) more_available: bool,
    /// The store signalled growth while a fetch was out: its result may be stale.
    pub(super) changed_during_fetch: bool,
}

impl Outgoing {
    pub(super) fn new(log: Log, start: u64, window: u64) -> Self {
        Outgoing {
            log,
            acked: start,
            sent: start,
            window: window.max(1),
            fetch_limit: None,
            more_available: true,
            changed_during_fetch: false,
        }
    }

    /// `(after_seq, limit)` of the next store fetch, if one is due.
    pub(super) fn want_fetch(&mut self) -> Option<(u64, usize)> {
        let in_flight = self.sent - self.acked;
        if self.fetch_limit.is_some() || !self.more_available || in_flight >= self.window {
            return None;
        }
        let limit = self.window - in_flight;
        self.fetch_limit = Some(limit);
        self.changed_during_fetch = false;
        Some((self.sent, usize::try_from(limit).unwrap_or(usize::MAX)))
    }

    /// Record fetched seqs (already checked for order by the caller through `next_seq`).
    pub(super) fn fetched(&mut self, seqs: &[u64]) -> Result<(), SessionError> {
        let limit = self.fetch_limit.take().unwrap_or(0);
        for &seq in seqs {
            if seq != self.sent + 1 {
                return Err(SessionError::LogGap { log: self.log, expected: self.sent + 1, found: seq });
            }
            self.sent = seq;
        }
        self.more_available = seqs.len() as u64 >= limit || self.changed_during_fetch;
        Ok(())
    }

    pub(super) fn changed(&mut self) {
        self.more_available = true;
        if self.fetch_limit.is_some() {
            self.changed_during_fetch = true;
        }
    }

    /// A cumulative ack: the new position if it moved.
    pub(super) fn ack(&mut self, seq: u64) -> Result<Option<u64>, SessionError> {
        if seq > self.sent {
            return Err(SessionError::AckBeyondSent { log: self.log, acked: seq, sent: self.sent });
        }
        if seq <= self.acked {
            return Ok(None);
        }
        self.acked = seq;
        Ok(Some(seq))
    }
}

/// The receiving half of a log: delivers in order once, acknowledges what is committed.
#[derive(Debug)]
pub(super) struct Incoming<T> {
    pub(super) log: Log,
    pub(super) delivered: u64,
    pub(super) committed: u64,
    pub(super) ahead: BTreeMap<u64, T>,
    pub(super) max_ahead: u64,
    pub(super) ack_due: bool,
}

impl<T> Incoming<T> {
    pub(super) fn new(log: Log, start: u64, max_ahead: u64) -> Self {
        Incoming { log, delivered: start, committed: start, ahead: BTreeMap::new(), max_ahead, ack_due: false }
    }

    /// Take an arriving entry; returns the entries now deliverable, in order.
    pub(super) fn receive(&mut self, seq: u64, item: T) -> Result<Vec<T>, SessionError> {
        if seq <= self.delivered {
            // A duplicate: the sender may be behind on acks, so repeat the position.
            if self.committed > 0 {
                self.ack_due = true;
            }
            return Ok(Vec::new());
        }
        if seq - self.delivered > self.max_ahead {
            return Err(SessionError::TooFarAhead { log: self.log, seq, position: self.delivered });
        }
        self.ahead.insert(seq, item);
        let mut ready = Vec::new();
        while let Some(next) = self.ahead.remove(&(self.delivered + 1)) {
            self.delivered += 1;
            ready.push(next);
        }
        Ok(ready)
    }

    pub(super) fn committed(&mut self, seq: u64) -> Result<(), SessionError> {
        if seq > self.delivered {
            return Err(SessionError::CommitBeyondDelivered { log: self.log, seq, delivered: self.delivered });
        }
        if seq > self.committed {
            self.committed = seq;
            self.ack_due = true;
        }
        Ok(())
    }

    pub(super) fn poll_ack(&mut self) -> Option<u64> {
        if !self.ack_due {
            return None;
        }
        self.ack_due = false;
        Some(self.committed)
    }
}
