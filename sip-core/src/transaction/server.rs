//! Server transactions: every request we answer, kept by branch so a retransmitted request
//! gets the same answer again and a final answer to an INVITE is retransmitted until its ACK.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use super::{Backoff, T2, T4, TRANSACTION_TIMEOUT, earliest};
use crate::message::{Method, Request, Response};

/// What an arriving request is, as far as transactions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A new request: the owner decides the answer and hands it to
    /// [`ServerTransactions::respond`].
    New,
    /// A retransmission of a request already answered: the answer is queued again and the
    /// owner does nothing.
    Retransmission,
    /// An ACK. Whether it confirmed one of our final answers or not, the owner may still
    /// look at it (it may carry the dialog's SDP answer).
    Ack,
}

/// What the server transactions tell their owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// Timer H: our final answer to an INVITE was never ACKed within 64 * T1 (the peer is
    /// gone; for a 2xx the dialog should be ended).
    AckTimedOut {
        /// The INVITE's Call-ID.
        call_id: String,
        /// The status we answered.
        status: u16,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Received, not answered finally yet (a provisional may have gone out).
    Proceeding,
    /// INVITE answered 2xx: retransmitted until the ACK (RFC 3261 13.3.1.4).
    Accepted,
    /// Final answer sent: an INVITE's is retransmitted until the ACK (timer G), a
    /// non-INVITE's is repeated for retransmitted requests until timer J.
    Completed,
    /// An INVITE's ACK came: retransmitted ACKs are absorbed until timer I.
    Confirmed,
}

#[derive(Debug, Clone)]
struct Entry<P> {
    peer: P,
    invite: bool,
    reliable: bool,
    call_id: String,
    cseq: u32,
    state: State,
    response: Option<Response>,
    retransmit: Option<Backoff>,
    deadline: Option<Instant>,
}

/// The key of a server transaction (RFC 3261 17.2.3): branch, method (an ACK or CANCEL keys
/// as the INVITE it belongs to for the ACK), and the Call-ID as a guard against peers that
/// reuse branches.
fn key(request: &Request, method: &Method) -> String {
    let branch = request
        .top_via()
        .and_then(|via| via.branch().map(str::to_string))
        .unwrap_or_default();
    format!("{branch}|{method}|{}", request.call_id())
}

/// Every server transaction of one endpoint; `P` is where an answer goes (the driver's
/// socket address, a test's peer name).
#[derive(Debug, Clone)]
pub struct ServerTransactions<P> {
    entries: HashMap<String, Entry<P>>,
    transmits: VecDeque<(P, Response)>,
    events: VecDeque<ServerEvent>,
}

impl<P: Clone> Default for ServerTransactions<P> {
    fn default() -> Self {
        ServerTransactions {
            entries: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }
}

impl<P: Clone> ServerTransactions<P> {
    /// No transactions yet.
    pub fn new() -> ServerTransactions<P> {
        ServerTransactions::default()
    }

    /// How many transactions are held (answered ones until their timer ends).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A request arrived from `peer` (`reliable`: over TCP). Says whether the owner must
    /// answer it.
    pub fn handle_request(
        &mut self,
        now: Instant,
        request: &Request,
        peer: P,
        reliable: bool,
    ) -> Verdict {
        if request.method == Method::Ack {
            self.on_ack(now, request);
            return Verdict::Ack;
        }
        if let Some(entry) = self.entries.get(&key(request, &request.method)) {
            if let Some(response) = &entry.response {
                self.transmits.push_back((peer, response.clone()));
            }
            return Verdict::Retransmission;
        }
        let cseq = request.cseq().map(|cseq| cseq.number).unwrap_or(0);
        self.entries.insert(
            key(request, &request.method),
            Entry {
                peer,
                invite: request.method == Method::Invite,
                reliable,
                call_id: request.call_id().to_string(),
                cseq,
                state: State::Proceeding,
                response: None,
                retransmit: None,
                // An owner that never answers does not leave the entry behind forever.
                deadline: Some(now + TRANSACTION_TIMEOUT),
            },
        );
        Verdict::New
    }

    fn on_ack(&mut self, now: Instant, ack: &Request) {
        // The ACK of a non-2xx shares the INVITE's branch; the ACK of a 2xx is a transaction
        // of its own, matched by Call-ID and CSeq number.
        let cseq = ack.cseq().map(|cseq| cseq.number).unwrap_or(0);
        let same_branch = key(ack, &Method::Invite);
        let entry = match self.entries.get_mut(&same_branch) {
            Some(entry) if entry.state == State::Completed => Some(entry),
            _ => self.entries.values_mut().find(|entry| {
                entry.invite
                    && entry.state == State::Accepted
                    && entry.call_id == ack.call_id()
                    && entry.cseq == cseq
            }),
        };
        let Some(entry) = entry else { return };
        entry.state = State::Confirmed;
        entry.retransmit = None;
        entry.deadline = Some(if entry.reliable { now } else { now + T4 });
    }

    /// Our answer to `request` (which [`Self::handle_request`] called new): queued to send,
    /// and kept to repeat.
    pub fn respond(&mut self, now: Instant, request: &Request, response: Response) {
        let Some(entry) = self.entries.get_mut(&key(request, &request.method)) else {
            return;
        };
        self.transmits
            .push_back((entry.peer.clone(), response.clone()));
        let status = response.status;
        entry.response = Some(response);
        if status < 200 {
            return;
        }
        entry.state = if entry.invite && status < 300 {
            State::Accepted
        } else {
            State::Completed
        };
        if entry.invite {
            entry.retransmit = (!entry.reliable).then(|| Backoff::new(now, Some(T2)));
            entry.deadline = Some(now + TRANSACTION_TIMEOUT);
        } else {
            // Timer J.
            entry.deadline = Some(if entry.reliable {
                now
            } else {
                now + TRANSACTION_TIMEOUT
            });
        }
    }

    /// Answers `request` without keeping state: sent once, not repeated for retransmissions
    /// nor retransmitted toward the sender (RFC 3261 8.2.7's stateless UAS). For refusing
    /// strangers, so a scanner's flood leaves nothing behind and is not amplified.
    pub fn respond_stateless(&mut self, request: &Request, response: Response) {
        if let Some(entry) = self.entries.remove(&key(request, &request.method)) {
            self.transmits.push_back((entry.peer, response));
        }
    }

    /// When [`Self::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.entries.values().fold(None, |soonest, entry| {
            let own = earliest(
                entry.retransmit.as_ref().map(|backoff| backoff.next),
                entry.deadline,
            );
            earliest(soonest, own)
        })
    }

    /// Fires whatever timers are due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut ended = Vec::new();
        for (key, entry) in &mut self.entries {
            if entry.deadline.is_some_and(|deadline| now >= deadline) {
                if entry.invite
                    && entry.response.is_some()
                    && matches!(entry.state, State::Accepted | State::Completed)
                {
                    self.events.push_back(ServerEvent::AckTimedOut {
                        call_id: entry.call_id.clone(),
                        status: entry
                            .response
                            .as_ref()
                            .map_or(0, |response| response.status),
                    });
                }
                ended.push(key.clone());
                continue;
            }
            if entry
                .retransmit
                .as_mut()
                .is_some_and(|backoff| backoff.fire(now))
                && let Some(response) = &entry.response
            {
                self.transmits
                    .push_back((entry.peer.clone(), response.clone()));
            }
        }
        for key in ended {
            self.entries.remove(&key);
        }
    }

    /// The next answer to put on the wire, and where.
    pub fn poll_transmit(&mut self) -> Option<(P, Response)> {
        self.transmits.pop_front()
    }

    /// The next thing the owner must act on.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }
}
