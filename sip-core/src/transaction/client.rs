//! Client transactions: an INVITE we sent (with its CANCEL and ACKs), and any other request.

use std::collections::VecDeque;
use std::time::Instant;

use rand::RngCore;

use super::{
    Backoff, T2, T4, TIMER_D, TRANSACTION_TIMEOUT, branch_from, earliest, via_with_branch,
};
use crate::message::{Method, NameAddr, Request, Response};

/// What a client transaction tells its owner.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// A provisional response (every one, so a 180 after a 183 is seen too).
    Provisional(Response),
    /// The final response, reported once. For an INVITE its ACK is already queued: the
    /// hop-by-hop ACK of a non-2xx, or the dialog's ACK of a 2xx (retransmitted 2xx are ACKed
    /// again without a new event).
    Final(Response),
    /// INVITE only: a 2xx with another To tag than the first (a second fork answered). It is
    /// ACKed already; the owner should end that dialog with a BYE (RFC 3261 13.2.2.4).
    ForkAnswered(Response),
    /// Timer B or F: no final response within 64 * T1.
    TimedOut,
}

/// Whether `response` belongs to the transaction of `branch` and `method` (RFC 3261 17.1.3).
fn matches(response: &Response, branch: &str, method: &Method) -> bool {
    let via_matches = response
        .top_via()
        .is_some_and(|via| via.branch() == Some(branch));
    via_matches && response.cseq().is_ok_and(|cseq| cseq.method == *method)
}

fn top_branch(request: &Request) -> String {
    request
        .top_via()
        .and_then(|via| via.branch().map(str::to_string))
        .unwrap_or_default()
}

fn to_tag(response: &Response) -> Option<String> {
    let to = NameAddr::parse(response.headers.get("To")?).ok()?;
    to.tag().map(str::to_string)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NonInviteState {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

/// A non-INVITE client transaction (BYE, CANCEL, OPTIONS, REGISTER): timer E retransmits over
/// UDP (T1 doubling to T2, then every T2 once a provisional came), F gives up at 64 * T1, K
/// absorbs retransmitted finals for T4.
#[derive(Debug, Clone)]
pub struct ClientNonInvite {
    request: Request,
    branch: String,
    reliable: bool,
    state: NonInviteState,
    retransmit: Option<Backoff>,
    /// Timer F while waiting, timer K once completed.
    deadline: Instant,
    transmits: VecDeque<Request>,
    events: VecDeque<ClientEvent>,
}

impl ClientNonInvite {
    /// Starts the transaction: `request` (with its Via branch) is queued to send at `now`.
    pub fn new(now: Instant, request: Request, reliable: bool) -> ClientNonInvite {
        let branch = top_branch(&request);
        let retransmit = (!reliable).then(|| Backoff::new(now, Some(T2)));
        ClientNonInvite {
            transmits: VecDeque::from([request.clone()]),
            request,
            branch,
            reliable,
            state: NonInviteState::Trying,
            retransmit,
            deadline: now + TRANSACTION_TIMEOUT,
            events: VecDeque::new(),
        }
    }

    /// The request this transaction sends.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Whether `response` is an answer to this transaction (branch and method).
    pub fn matches(&self, response: &Response) -> bool {
        matches(response, &self.branch, &self.request.method)
    }

    /// Still waiting for a final response.
    pub fn is_pending(&self) -> bool {
        matches!(
            self.state,
            NonInviteState::Trying | NonInviteState::Proceeding
        )
    }

    /// Over: nothing more to send or absorb.
    pub fn is_terminated(&self) -> bool {
        self.state == NonInviteState::Terminated
    }

    /// A response that [`Self::matches`] this transaction.
    pub fn handle_response(&mut self, now: Instant, response: &Response) {
        match (self.state, response.status) {
            (NonInviteState::Trying | NonInviteState::Proceeding, 100..=199) => {
                if self.state == NonInviteState::Trying {
                    self.state = NonInviteState::Proceeding;
                    if let Some(backoff) = self.retransmit.as_mut() {
                        backoff.interval = T2;
                    }
                }
                self.events
                    .push_back(ClientEvent::Provisional(response.clone()));
            }
            (NonInviteState::Trying | NonInviteState::Proceeding, _) => {
                self.state = NonInviteState::Completed;
                self.retransmit = None;
                self.deadline = if self.reliable { now } else { now + T4 };
                self.events.push_back(ClientEvent::Final(response.clone()));
            }
            // Completed: a retransmitted final is absorbed (timer K).
            _ => {}
        }
    }

    /// When [`Self::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == NonInviteState::Terminated {
            return None;
        }
        earliest(
            self.retransmit.as_ref().map(|backoff| backoff.next),
            Some(self.deadline),
        )
    }

    /// Fires whatever timers are due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            NonInviteState::Trying | NonInviteState::Proceeding if now >= self.deadline => {
                self.state = NonInviteState::Terminated;
                self.retransmit = None;
                self.events.push_back(ClientEvent::TimedOut);
            }
            NonInviteState::Trying | NonInviteState::Proceeding => {
                if self
                    .retransmit
                    .as_mut()
                    .is_some_and(|backoff| backoff.fire(now))
                {
                    self.transmits.push_back(self.request.clone());
                }
            }
            NonInviteState::Completed if now >= self.deadline => {
                self.state = NonInviteState::Terminated;
            }
            NonInviteState::Completed | NonInviteState::Terminated => {}
        }
    }

    /// The next request to put on the wire.
    pub fn poll_transmit(&mut self) -> Option<Request> {
        self.transmits.pop_front()
    }

    /// The next thing the owner must act on.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InviteState {
    /// Sent, nothing heard yet: timer A retransmits, B gives up.
    Calling,
    /// A provisional came: the far end holds the request; only a final ends this.
    Proceeding,
    /// A 2xx came and was ACKed: 2xx retransmissions (and other forks') are ACKed until
    /// 64 * T1 (RFC 6026's timer M).
    Accepted,
    /// A non-2xx final came and was ACKed: retransmissions of it are ACKed (timer D).
    Completed,
    Terminated,
}

/// An INVITE client transaction, with the CANCEL of it and the ACKs it needs.
#[derive(Debug, Clone)]
pub struct ClientInvite {
    request: Request,
    branch: String,
    reliable: bool,
    state: InviteState,
    retransmit: Option<Backoff>,
    /// Timer B while calling, D once completed, M once accepted.
    deadline: Option<Instant>,
    /// The ACK for the non-2xx final, or for each answered dialog by To tag (first = ours).
    acks: Vec<(Option<String>, Request)>,
    /// The owner gave up before any provisional response: CANCEL goes with the first one
    /// (RFC 3261 9.1), since a CANCEL that overtakes its INVITE is answered 481 and the far
    /// phone would ring on with nobody to stop it.
    cancel_wanted: bool,
    cancel: Option<ClientNonInvite>,
    transmits: VecDeque<Request>,
    events: VecDeque<ClientEvent>,
}

impl ClientInvite {
    /// Starts the transaction: `request` (an INVITE with its Via branch) is queued to send.
    pub fn new(now: Instant, request: Request, reliable: bool) -> ClientInvite {
        let branch = top_branch(&request);
        ClientInvite {
            transmits: VecDeque::from([request.clone()]),
            request,
            branch,
            reliable,
            state: InviteState::Calling,
            retransmit: (!reliable).then(|| Backoff::new(now, None)),
            deadline: Some(now + TRANSACTION_TIMEOUT),
            acks: Vec::new(),
            cancel_wanted: false,
            cancel: None,
            events: VecDeque::new(),
        }
    }

    /// The INVITE this transaction sends.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The Via branch of the INVITE (and of its CANCEL and non-2xx ACK).
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// Whether `response` answers this INVITE or its CANCEL.
    pub fn matches(&self, response: &Response) -> bool {
        matches(response, &self.branch, &Method::Invite)
            || matches(response, &self.branch, &Method::Cancel)
    }

    /// A provisional response came (so a CANCEL may be sent).
    pub fn is_proceeding(&self) -> bool {
        self.state == InviteState::Proceeding
    }

    /// Over, CANCEL included: nothing more to send or absorb.
    pub fn is_terminated(&self) -> bool {
        self.state == InviteState::Terminated
            && self
                .cancel
                .as_ref()
                .is_none_or(ClientNonInvite::is_terminated)
    }

    /// Whether a CANCEL is still waiting for its answer.
    pub fn cancel_pending(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(ClientNonInvite::is_pending)
    }

    /// The owner gives up on the call: CANCEL now if a provisional came, else with the first
    /// one. Nothing once a final response came (the owner sends BYE for a 2xx instead).
    pub fn cancel(&mut self, now: Instant) {
        match self.state {
            InviteState::Calling => self.cancel_wanted = true,
            InviteState::Proceeding if self.cancel.is_none() => self.start_cancel(now),
            _ => {}
        }
    }

    fn start_cancel(&mut self, now: Instant) {
        self.cancel_wanted = false;
        let invite = &self.request;
        // CANCEL matches the INVITE's transaction: same Via (branch), Route, From, To,
        // Call-ID and CSeq number (RFC 3261 9.1).
        let mut cancel = Request::new(Method::Cancel, invite.uri.clone());
        if let Some(via) = invite.headers.get("Via") {
            cancel.headers.push("Via", via);
        }
        cancel.headers.push("Max-Forwards", "70");
        if let Some(route) = invite.headers.get("Route") {
            cancel.headers.push("Route", route);
        }
        for name in ["From", "To", "Call-ID"] {
            cancel
                .headers
                .push(name, invite.headers.get(name).unwrap_or_default());
        }
        let number = invite.cseq().map(|cseq| cseq.number).unwrap_or(1);
        cancel.headers.push("CSeq", format!("{number} CANCEL"));
        self.cancel = Some(ClientNonInvite::new(now, cancel, self.reliable));
    }

    /// A response that [`Self::matches`] this transaction. `rng` gives the branch of a 2xx's
    /// ACK (a transaction of its own).
    pub fn handle_response<R: RngCore + ?Sized>(
        &mut self,
        now: Instant,
        response: &Response,
        rng: &mut R,
    ) {
        if response
            .cseq()
            .is_ok_and(|cseq| cseq.method == Method::Cancel)
        {
            if let Some(cancel) = self.cancel.as_mut() {
                cancel.handle_response(now, response);
                // The CANCEL's own outcome changes nothing for the owner: the INVITE's final
                // response (487, or a 2xx that crossed it) says how the call ended.
                while cancel.poll_event().is_some() {}
            }
            return;
        }
        match (self.state, response.status) {
            (InviteState::Calling | InviteState::Proceeding, 100..=199) => {
                self.state = InviteState::Proceeding;
                self.retransmit = None;
                // In Proceeding only a final response ends the transaction (the owner's ring
                // timeout bounds it).
                self.deadline = None;
                if self.cancel_wanted {
                    self.start_cancel(now);
                }
                self.events
                    .push_back(ClientEvent::Provisional(response.clone()));
            }
            // A 2xx after timer B gave up on the INVITE is still ACKed and reported, so the
            // owner can end that dialog instead of leaving the far end connected.
            (InviteState::Calling | InviteState::Proceeding, 200..=299)
            | (InviteState::Terminated, 200..=299)
                if self.acks.is_empty() =>
            {
                self.state = InviteState::Accepted;
                self.retransmit = None;
                self.cancel_wanted = false;
                self.deadline = Some(now + TRANSACTION_TIMEOUT);
                self.ack_2xx(response, rng);
                self.events.push_back(ClientEvent::Final(response.clone()));
            }
            (InviteState::Calling | InviteState::Proceeding, _) => {
                self.state = InviteState::Completed;
                self.retransmit = None;
                self.cancel_wanted = false;
                self.deadline = Some(if self.reliable { now } else { now + TIMER_D });
                let ack = self.ack_non_2xx(response);
                self.transmits.push_back(ack.clone());
                self.acks.push((None, ack));
                self.events.push_back(ClientEvent::Final(response.clone()));
            }
            (InviteState::Accepted, 200..=299) => {
                let tag = to_tag(response);
                match self.acks.iter().find(|(acked, _)| *acked == tag) {
                    Some((_, ack)) => self.transmits.push_back(ack.clone()),
                    None => {
                        self.ack_2xx(response, rng);
                        self.events
                            .push_back(ClientEvent::ForkAnswered(response.clone()));
                    }
                }
            }
            (InviteState::Completed, 300..) => {
                if let Some((_, ack)) = self.acks.first() {
                    self.transmits.push_back(ack.clone());
                }
            }
            _ => {}
        }
    }

    /// The hop-by-hop ACK of a non-2xx final: the INVITE's Via (branch), Route, From and
    /// Request-URI, the response's To (RFC 3261 17.1.1.3).
    fn ack_non_2xx(&self, response: &Response) -> Request {
        let invite = &self.request;
        let mut ack = Request::new(Method::Ack, invite.uri.clone());
        if let Some(via) = invite.headers.get("Via") {
            ack.headers.push("Via", via);
        }
        ack.headers.push("Max-Forwards", "70");
        if let Some(route) = invite.headers.get("Route") {
            ack.headers.push("Route", route);
        }
        ack.headers
            .push("From", invite.headers.get("From").unwrap_or_default());
        ack.headers
            .push("To", response.headers.get("To").unwrap_or_default());
        ack.headers
            .push("Call-ID", invite.headers.get("Call-ID").unwrap_or_default());
        let number = invite.cseq().map(|cseq| cseq.number).unwrap_or(1);
        ack.headers.push("CSeq", format!("{number} ACK"));
        ack
    }

    /// ACKs a 2xx: a new branch, to the answerer's Contact, with its To tag (RFC 3261 13.2.2.4).
    fn ack_2xx<R: RngCore + ?Sized>(&mut self, response: &Response, rng: &mut R) {
        let invite = &self.request;
        let target = response
            .headers
            .get("Contact")
            .and_then(|contact| NameAddr::parse(contact).ok())
            .map_or_else(|| invite.uri.clone(), |contact| contact.uri);
        let via = via_with_branch(
            invite.headers.get("Via").unwrap_or_default(),
            &branch_from(rng),
        );
        let number = invite.cseq().map(|cseq| cseq.number).unwrap_or(1);
        let ack = Request::new(Method::Ack, target)
            .with_header("Via", via)
            .with_header("Max-Forwards", "70")
            .with_header("From", invite.headers.get("From").unwrap_or_default())
            .with_header("To", response.headers.get("To").unwrap_or_default())
            .with_header("Call-ID", invite.headers.get("Call-ID").unwrap_or_default())
            .with_header("CSeq", format!("{number} ACK"));
        self.transmits.push_back(ack.clone());
        self.acks.push((to_tag(response), ack));
    }

    /// When [`Self::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let own = if self.state == InviteState::Terminated {
            None
        } else {
            earliest(
                self.retransmit.as_ref().map(|backoff| backoff.next),
                self.deadline,
            )
        };
        earliest(
            own,
            self.cancel.as_ref().and_then(ClientNonInvite::poll_timeout),
        )
    }

    /// Fires whatever timers are due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(cancel) = self.cancel.as_mut() {
            cancel.handle_timeout(now);
            while let Some(request) = cancel.poll_transmit() {
                self.transmits.push_back(request);
            }
            while cancel.poll_event().is_some() {}
        }
        if self.deadline.is_some_and(|deadline| now >= deadline) {
            if self.state == InviteState::Calling {
                self.events.push_back(ClientEvent::TimedOut);
            }
            self.state = InviteState::Terminated;
            self.retransmit = None;
            self.deadline = None;
            return;
        }
        if self
            .retransmit
            .as_mut()
            .is_some_and(|backoff| backoff.fire(now))
        {
            self.transmits.push_back(self.request.clone());
        }
    }

    /// The next request to put on the wire (the INVITE, its ACKs, its CANCEL).
    pub fn poll_transmit(&mut self) -> Option<Request> {
        if let Some(cancel) = self.cancel.as_mut()
            && let Some(request) = cancel.poll_transmit()
        {
            return Some(request);
        }
        self.transmits.pop_front()
    }

    /// The next thing the owner must act on.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }
}
