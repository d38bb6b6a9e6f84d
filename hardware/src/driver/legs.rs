//! Per-leg SIP handling: building and sending a leg's INVITE, ACK, CANCEL and BYE, their
//! retransmissions, matching responses and in-dialog requests to legs, and re-INVITEs.

use std::net::SocketAddr;
use std::time::Instant;

use sip_core::auth::{Credentials, authorized_retry};
use sip_core::sdp::SessionDescription;
use sip_core::transaction::{
    ClientEvent, ClientInvite, ClientNonInvite, TRANSACTION_TIMEOUT, Verdict,
};
use sip_core::{Method, NameAddr, Request, Response};
use tracing::{debug, info, warn};

use super::{Driver, Leg, LegState, Side, Stage, new_branch, new_call_id, new_tag};
use crate::media::MediaCommand;
use crate::{CallId, DialRequest, HangupSide, Outcome, SipTransport, TrunkConfig};

/// Where an SDP offer wants audio sent; `None` for hold by `c=0.0.0.0` or port 0.
fn offer_remote(offer: &SessionDescription) -> Option<SocketAddr> {
    let audio = offer.audio()?;
    let ip = audio.connection.or(offer.connection)?;
    if ip.is_unspecified() || audio.port == 0 {
        return None;
    }
    Some(SocketAddr::new(ip, audio.port))
}

/// Whether a re-INVITE's offer puts the call on hold: `sendonly`, `inactive`, or the old
/// RFC 2543 style `c=0.0.0.0`.
fn holds(offer: &[u8]) -> bool {
    let offer = String::from_utf8_lossy(offer);
    offer.lines().map(str::trim).any(|line| {
        line == "a=sendonly" || line == "a=inactive" || line.starts_with("c=IN IP4 0.0.0.0")
    })
}

/// Our answer to a re-INVITE: the same media as before with the direction mirrored
/// (`sendonly` answered `recvonly`, `inactive` or `c=0.0.0.0` answered `inactive`).
fn reinvite_answer(local_sdp: &[u8], offer: &[u8]) -> Vec<u8> {
    let offer = String::from_utf8_lossy(offer);
    let has = |attribute: &str| offer.lines().any(|line| line.trim() == attribute);
    let held_by_address = offer
        .lines()
        .any(|line| line.trim().starts_with("c=IN IP4 0.0.0.0"));
    let direction = if has("a=inactive") || held_by_address {
        "a=inactive"
    } else if has("a=sendonly") {
        "a=recvonly"
    } else if has("a=recvonly") {
        "a=sendonly"
    } else {
        "a=sendrecv"
    };
    let local = String::from_utf8_lossy(local_sdp);
    let mut answer = String::new();
    for line in local.lines() {
        let line = line.trim_end();
        if matches!(
            line,
            "a=sendrecv" | "a=sendonly" | "a=recvonly" | "a=inactive"
        ) {
            continue;
        }
        answer.push_str(line);
        answer.push_str("\r\n");
    }
    answer.push_str(direction);
    answer.push_str("\r\n");
    answer.into_bytes()
}

/// What one of a leg's transactions reported.
enum LegEvent {
    /// From an INVITE transaction (with its CANCEL).
    Invite(ClientEvent),
    /// From a BYE transaction, with the request it sent.
    Request(Request, ClientEvent),
}

impl Driver {
    /// Sends the INVITE toward `trunk` and records the leg; returns its SIP Call-ID.
    pub(super) fn start_customer_leg(
        &mut self,
        call_id: CallId,
        trunk: &TrunkConfig,
        request: &DialRequest,
        offer: &[u8],
        ring_deadline: Instant,
        now: Instant,
    ) -> String {
        let sip_call_id = new_call_id(&self.local.ip().to_string());
        let credentials = match (&trunk.username, &trunk.password) {
            (Some(username), Some(password)) => Some(Credentials {
                username: username.clone(),
                password: password.clone(),
            }),
            _ => None,
        };
        let options = self.trunk_options(&trunk.name);
        let dialed = match &options.dial_pattern {
            Some(pattern) => pattern.replace("{number}", &request.number),
            None => request.number.clone(),
        };
        let mut extra_headers = Vec::new();
        if let Some(proxy) = options.outbound_proxy {
            let transport = match options.transport {
                SipTransport::Udp => "",
                SipTransport::Tcp => ";transport=tcp",
            };
            extra_headers.push(("Route".to_string(), format!("<sip:{proxy};lr{transport}>")));
        }
        let mut leg = Leg {
            owner: Some((call_id, Side::Customer)),
            sip_call_id: sip_call_id.clone(),
            peer: self.trunk_destination(trunk),
            request_uri: format!("sip:{dialed}@{}", trunk.domain),
            remote_target: None,
            from: format!(
                "<sip:{}@{}>;tag={}",
                request.caller_id,
                trunk.domain,
                new_tag()
            ),
            to: format!("<sip:{dialed}@{}>", trunk.domain),
            remote_tag: None,
            cseq: 1,
            invites: Vec::new(),
            state: LegState::Calling,
            deadline: ring_deadline,
            linger_until: None,
            credentials,
            auth_attempted: false,
            cancel_pending: false,
            bye_auth_attempted: false,
            local_sdp: offer.to_vec(),
            extra_headers,
            requests: Vec::new(),
        };
        self.send_invite(&mut leg, now);
        self.legs.insert(sip_call_id.clone(), leg);
        sip_call_id
    }

    /// Starts the leg's INVITE transaction (it retransmits per timer A and gives up at B).
    pub(super) fn send_invite(&self, leg: &mut Leg, now: Instant) {
        let mut invite = Request::new(Method::Invite, leg.request_uri.clone())
            .with_header("Via", self.via(leg.peer, &new_branch()))
            .with_header("Max-Forwards", "70")
            .with_header("From", leg.from.clone())
            .with_header("To", leg.to.clone())
            .with_header("Call-ID", leg.sip_call_id.clone())
            .with_header("CSeq", format!("{} INVITE", leg.cseq))
            .with_header("Contact", self.contact(leg.peer))
            .with_header("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO")
            .with_header("User-Agent", "Outpost");
        for (name, value) in &leg.extra_headers {
            invite.headers.push(name.clone(), value.clone());
        }
        invite.headers.push("Content-Type", "application/sdp");
        invite.body = leg.local_sdp.clone();
        leg.invites
            .push(ClientInvite::new(now, invite, self.is_tcp(leg.peer)));
        self.flush_leg(leg);
    }

    /// Puts on the wire whatever the leg's transactions have queued (requests, ACKs,
    /// retransmissions).
    pub(super) fn flush_leg(&self, leg: &mut Leg) {
        for invite in &mut leg.invites {
            while let Some(request) = invite.poll_transmit() {
                self.send_to(&request.to_bytes(), leg.peer);
            }
        }
        for transaction in &mut leg.requests {
            while let Some(request) = transaction.poll_transmit() {
                self.send_to(&request.to_bytes(), leg.peer);
            }
        }
    }

    /// Puts on the wire whatever the server transactions have queued (answers and their
    /// retransmissions).
    pub(super) fn flush_server(&mut self) {
        while let Some((peer, response)) = self.server.poll_transmit() {
            self.send_to(&response.to_bytes(), peer);
        }
    }

    pub(super) fn to_with_remote_tag(leg: &Leg) -> String {
        match &leg.remote_tag {
            Some(tag) => format!("{};tag={tag}", leg.to),
            None => leg.to.clone(),
        }
    }

    /// Starts a non-INVITE transaction (BYE) on the leg: timer E retransmits, F gives up.
    pub(super) fn send_non_invite(&self, leg: &mut Leg, request: Request, now: Instant) {
        leg.requests
            .push(ClientNonInvite::new(now, request, self.is_tcp(leg.peer)));
        self.flush_leg(leg);
    }

    /// Cancels the leg's INVITE: the transaction sends CANCEL now if a provisional response
    /// came, else with the first one.
    pub(super) fn send_cancel(&self, leg: &mut Leg, now: Instant) {
        if let Some(invite) = leg.invites.last_mut() {
            invite.cancel(now);
        }
        self.flush_leg(leg);
        leg.state = LegState::Cancelling;
        leg.deadline = now + TRANSACTION_TIMEOUT;
    }

    /// Ends the dialog of a second fork's 2xx (the INVITE transaction ACKed it already) with
    /// a BYE, retransmitted like any BYE of the leg (RFC 3261 13.2.2.4): otherwise that
    /// device stays connected, maybe billed.
    pub(super) fn hang_up_fork(&self, leg: &mut Leg, response: &Response, now: Instant) {
        let Some(tag) = response
            .headers
            .get("To")
            .and_then(|to| NameAddr::parse(to).ok())
            .and_then(|to| to.tag().map(str::to_string))
        else {
            return;
        };
        let target = response
            .headers
            .get("Contact")
            .and_then(|contact| NameAddr::parse(contact).ok())
            .map(|contact| contact.uri)
            .unwrap_or_else(|| leg.request_uri.clone());
        let invite_cseq = response.cseq().map(|cseq| cseq.number).unwrap_or(leg.cseq);
        let bye = Request::new(Method::Bye, target)
            .with_header("Via", self.via(leg.peer, &new_branch()))
            .with_header("Max-Forwards", "70")
            .with_header("From", leg.from.clone())
            .with_header("To", format!("{};tag={tag}", leg.to))
            .with_header("Call-ID", leg.sip_call_id.clone())
            .with_header("CSeq", format!("{} BYE", invite_cseq.wrapping_add(1)));
        info!(sip_call_id = %leg.sip_call_id, %tag, "a second fork answered; hanging it up");
        self.send_non_invite(leg, bye, now);
    }

    /// A carrier that challenges BYE (401/407) gets it again with digest credentials, once:
    /// otherwise the customer leg would stay up, and billed, after we hung up.
    pub(super) fn answer_bye_challenge(
        &mut self,
        sip_call_id: &str,
        bye: &Request,
        response: &Response,
    ) {
        let Some(mut leg) = self.legs.remove(sip_call_id) else {
            return;
        };
        match leg.credentials.clone() {
            Some(credentials) => {
                match authorized_retry(bye, response, &credentials, &mut rand::rng()) {
                    Ok(retry) => {
                        leg.bye_auth_attempted = true;
                        if let Ok(cseq) = retry.cseq() {
                            leg.cseq = leg.cseq.max(cseq.number);
                        }
                        self.send_non_invite(&mut leg, retry, Instant::now());
                        leg.state = LegState::Terminated;
                    }
                    Err(error) => warn!(%error, "cannot answer the challenge to our BYE"),
                }
            }
            None => warn!(
                status = response.status,
                "BYE challenged, but the trunk has no credentials"
            ),
        }
        self.legs.insert(sip_call_id.to_string(), leg);
    }

    pub(super) fn send_bye(&self, leg: &mut Leg, now: Instant) {
        leg.cseq += 1;
        let bye = Request::new(
            Method::Bye,
            leg.remote_target
                .clone()
                .unwrap_or_else(|| leg.request_uri.clone()),
        )
        .with_header("Via", self.via(leg.peer, &new_branch()))
        .with_header("Max-Forwards", "70")
        .with_header("From", leg.from.clone())
        .with_header("To", Self::to_with_remote_tag(leg))
        .with_header("Call-ID", leg.sip_call_id.clone())
        .with_header("CSeq", format!("{} BYE", leg.cseq))
        .with_header("User-Agent", "Outpost");
        self.send_non_invite(leg, bye, now);
        leg.state = LegState::Terminated;
    }

    /// Ends a leg from our side in whatever way its state calls for, and detaches it.
    pub(super) fn release_leg(&mut self, sip_call_id: &str, now: Instant) {
        let Some(mut leg) = self.legs.remove(sip_call_id) else {
            return;
        };
        match leg.state {
            LegState::Calling => {
                leg.cancel_pending = true;
                if let Some(invite) = leg.invites.last_mut() {
                    invite.cancel(now);
                }
                leg.state = LegState::Cancelling;
            }
            LegState::Proceeding => self.send_cancel(&mut leg, now),
            LegState::Confirmed => self.send_bye(&mut leg, now),
            LegState::Cancelling | LegState::Terminated => {}
        }
        leg.owner = None;
        leg.linger_until = Some(now + TRANSACTION_TIMEOUT);
        self.legs.insert(sip_call_id.to_string(), leg);
    }

    pub(super) fn on_response(&mut self, response: Response, source: SocketAddr) {
        let Ok(cseq) = response.cseq() else { return };
        let sip_call_id = response.call_id().to_string();
        if (cseq.method == Method::Options || cseq.method == Method::Register)
            && self.on_trunk_response(&response, &cseq.method)
        {
            return;
        }
        if cseq.method == Method::Invite
            && response.status < 200
            && let Some(leg) = self.legs.get(&sip_call_id)
            && leg.owner.is_some_and(|(_, side)| side == Side::Customer)
            && let Some(trunk) = self.trunk_by_peer(leg.peer)
        {
            self.set_trunk_alive(&trunk, true);
        }
        let Some(mut leg) = self.legs.remove(&sip_call_id) else {
            debug!(%source, status = response.status, "response for no known call dropped");
            return;
        };
        let now = Instant::now();
        let mut events = Vec::new();
        if let Some(invite) = leg
            .invites
            .iter_mut()
            .find(|invite| invite.matches(&response))
        {
            invite.handle_response(now, &response, &mut rand::rng());
            while let Some(event) = invite.poll_event() {
                events.push(LegEvent::Invite(event));
            }
        } else if let Some(transaction) = leg
            .requests
            .iter_mut()
            .find(|transaction| transaction.matches(&response))
        {
            transaction.handle_response(now, &response);
            while let Some(event) = transaction.poll_event() {
                events.push(LegEvent::Request(transaction.request().clone(), event));
            }
        } else {
            debug!(%source, status = response.status, method = %cseq.method, "response matching no transaction of the call dropped");
        }
        self.flush_leg(&mut leg);
        self.legs.insert(sip_call_id.clone(), leg);
        self.on_leg_events(&sip_call_id, events, now);
    }

    /// Acts on what the leg's transactions reported.
    fn on_leg_events(&mut self, sip_call_id: &str, events: Vec<LegEvent>, now: Instant) {
        for event in events {
            match event {
                LegEvent::Invite(ClientEvent::Provisional(response)) => {
                    self.on_provisional(sip_call_id, &response)
                }
                LegEvent::Invite(ClientEvent::Final(response)) if response.status < 300 => {
                    self.on_invite_success(sip_call_id, &response)
                }
                LegEvent::Invite(ClientEvent::Final(response)) => {
                    self.on_invite_failure(sip_call_id, &response)
                }
                LegEvent::Invite(ClientEvent::ForkAnswered(response)) => {
                    if let Some(mut leg) = self.legs.remove(sip_call_id) {
                        self.hang_up_fork(&mut leg, &response, now);
                        self.legs.insert(sip_call_id.to_string(), leg);
                    }
                }
                LegEvent::Invite(ClientEvent::TimedOut) => self.on_invite_timeout(sip_call_id, now),
                LegEvent::Request(request, ClientEvent::Final(response))
                    if request.method == Method::Bye
                        && matches!(response.status, 401 | 407)
                        && self
                            .legs
                            .get(sip_call_id)
                            .is_some_and(|leg| !leg.bye_auth_attempted) =>
                {
                    self.answer_bye_challenge(sip_call_id, &request, &response);
                }
                // A BYE answered, or given up at timer F: nothing more to do.
                LegEvent::Request(..) => {}
            }
        }
    }

    /// Timer B: the INVITE got no response at all within 32 s.
    fn on_invite_timeout(&mut self, sip_call_id: &str, now: Instant) {
        let Some(leg) = self.legs.get_mut(sip_call_id) else {
            return;
        };
        leg.state = LegState::Terminated;
        let owner = leg.owner.take();
        leg.linger_until = Some(now);
        let peer = leg.peer;
        match owner {
            Some((call_id, Side::Customer)) => {
                warn!(call = call_id.0, "no response from the trunk within 32 s");
                if let Some(trunk) = self.trunk_by_peer(peer) {
                    self.set_trunk_alive(&trunk, false);
                }
                if !self.try_failover(call_id, 0) {
                    self.end_call(call_id, Outcome::Failed { status: 0 }, None);
                }
            }
            Some((call_id, Side::Agent)) => self.agent_missed(call_id),
            None => {}
        }
    }

    pub(super) fn on_request(&mut self, request: Request, source: SocketAddr) {
        let now = Instant::now();
        let reliable = self.is_tcp(source);
        if self.server.handle_request(now, &request, source, reliable) == Verdict::Retransmission {
            // A retransmitted request: our answer goes again instead of acting twice.
            self.flush_server();
            return;
        }
        let in_dialog = self.legs.contains_key(request.call_id());
        let response = match request.method {
            Method::Register => Some(self.on_register(&request, source)),
            _ if in_dialog => self.on_in_dialog(&request, source),
            Method::Ack => None,
            Method::Invite => self.on_new_invite(&request, source),
            Method::Options => Some(
                Response::to_request(&request, 200, "OK", Some(&new_tag()))
                    .with_header("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REGISTER"),
            ),
            _ => Some(Response::to_request(
                &request,
                481,
                "Call/Transaction Does Not Exist",
                None,
            )),
        };
        if let Some(response) = response {
            self.server.respond(now, &request, response);
        }
        self.flush_server();
    }

    pub(super) fn on_in_dialog(
        &mut self,
        request: &Request,
        source: SocketAddr,
    ) -> Option<Response> {
        let sip_call_id = request.call_id().to_string();
        let leg = self.legs.get_mut(&sip_call_id)?;
        let from_tag = request
            .headers
            .get("From")
            .and_then(|from| NameAddr::parse(from).ok())
            .and_then(|from| from.tag().map(str::to_string));
        if request.method != Method::Ack && leg.remote_tag.is_some() && from_tag != leg.remote_tag {
            warn!(%source, method = %request.method, "in-dialog request with a foreign From tag refused");
            return Some(Response::to_request(
                request,
                481,
                "Call/Transaction Does Not Exist",
                None,
            ));
        }
        match request.method {
            Method::Ack => None,
            Method::Bye => {
                let owner = leg.owner.take();
                leg.state = LegState::Terminated;
                leg.linger_until = Some(Instant::now() + TRANSACTION_TIMEOUT);
                let response = Response::to_request(request, 200, "OK", None);
                if let Some((call_id, side)) = owner {
                    self.on_remote_bye(call_id, side);
                }
                Some(response)
            }
            Method::Invite => {
                // A re-INVITE: hold or resume by that party, a session refresh, or moved
                // media. The other leg's SIP is untouched; while held it hears hold audio.
                let owner = leg.owner;
                let answer = reinvite_answer(&leg.local_sdp, &request.body);
                let held = holds(&request.body);
                let moved = SessionDescription::parse(&request.body)
                    .ok()
                    .and_then(|offer| offer_remote(&offer));
                let mut response = Response::to_request(request, 200, "OK", None)
                    .with_header("Contact", self.contact(source))
                    .with_header("Content-Type", "application/sdp");
                response.body = answer;
                if let Some((call_id, side)) = owner
                    && let Some(call) = self.calls.get(&call_id)
                    && matches!(call.stage, Stage::Bridged { .. })
                {
                    info!(call = call_id.0, ?side, held, "re-INVITE: hold state");
                    call.media.send(MediaCommand::PeerHold {
                        agent_side: side == Side::Agent,
                        held,
                    });
                }
                if let (Some((call_id, side)), Some(remote)) = (owner, moved)
                    && let Some(call) = self.calls.get(&call_id)
                {
                    info!(call = call_id.0, ?side, %remote, "re-INVITE: media target updated");
                    call.media.send(MediaCommand::Retarget {
                        agent_side: side == Side::Agent,
                        remote,
                    });
                }
                Some(response)
            }
            Method::Options | Method::Info | Method::Update | Method::Notify => {
                Some(Response::to_request(request, 200, "OK", None))
            }
            Method::Cancel => Some(Response::to_request(
                request,
                481,
                "Call/Transaction Does Not Exist",
                None,
            )),
            _ => Some(Response::to_request(request, 501, "Not Implemented", None)),
        }
    }

    pub(super) fn tick_leg(&mut self, sip_call_id: &str, now: Instant) {
        let Some(mut leg) = self.legs.remove(sip_call_id) else {
            return;
        };
        // The transactions retransmit (timers A, E) and give up (B, F) by themselves.
        let mut events = Vec::new();
        for invite in &mut leg.invites {
            invite.handle_timeout(now);
            while let Some(event) = invite.poll_event() {
                events.push(LegEvent::Invite(event));
            }
        }
        for transaction in &mut leg.requests {
            transaction.handle_timeout(now);
            while let Some(event) = transaction.poll_event() {
                events.push(LegEvent::Request(transaction.request().clone(), event));
            }
        }
        leg.requests
            .retain(|transaction| !transaction.is_terminated());
        self.flush_leg(&mut leg);
        let awaiting_answers = leg.requests.iter().any(ClientNonInvite::is_pending)
            || leg.invites.iter().any(ClientInvite::cancel_pending);
        self.legs.insert(sip_call_id.to_string(), leg);
        self.on_leg_events(sip_call_id, events, now);
        let Some(leg) = self.legs.get(sip_call_id) else {
            return;
        };
        let owner = leg.owner;
        let deadline_passed = now >= leg.deadline;
        let state = leg.state;
        if let Some(linger_until) = leg.linger_until
            && now >= linger_until
            && !awaiting_answers
        {
            // Dropped: nothing more can arrive that needs an answer.
            self.legs.remove(sip_call_id);
            return;
        }
        let Some((call_id, side)) = owner else { return };
        if !deadline_passed {
            return;
        }
        match (state, side) {
            (LegState::Calling, Side::Customer) => {
                warn!(
                    call = call_id.0,
                    "ring timeout without any response from the trunk"
                );
                self.end_call(call_id, Outcome::Failed { status: 0 }, None);
            }
            (LegState::Proceeding, Side::Customer) => {
                if let Some(leg) = self.legs.remove(sip_call_id) {
                    let mut leg = leg;
                    info!(call = call_id.0, "ring timeout; cancelling");
                    self.send_cancel(&mut leg, now);
                    self.legs.insert(sip_call_id.to_string(), leg);
                }
            }
            (LegState::Cancelling, Side::Customer) => {
                warn!(
                    call = call_id.0,
                    "no final response to our CANCEL; giving up on the call"
                );
                self.end_call(call_id, Outcome::NoAnswer, Some(HangupSide::System));
            }
            (LegState::Calling | LegState::Proceeding, Side::Agent) => {
                info!(call = call_id.0, "agent ring timeout");
                self.agent_missed(call_id);
            }
            _ => {}
        }
    }
}
