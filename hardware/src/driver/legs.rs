//! Per-leg SIP handling: building and sending a leg's INVITE, ACK, CANCEL and BYE, their
//! retransmissions, matching responses and in-dialog requests to legs, and re-INVITEs.

use std::net::SocketAddr;
use std::time::Instant;

use sip_core::auth::Credentials;
use sip_core::sdp::SessionDescription;
use sip_core::transaction::{
    RetransmitTimer, TRANSACTION_TIMEOUT, TimerAction, new_branch, new_call_id, new_tag,
};
use sip_core::{Method, NameAddr, Request, Response};
use tracing::{debug, info, warn};

use super::{CachedResponse, Driver, Leg, LegState, PendingRequest, Side, Stage, best_challenge};
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
            invite: Request::new(Method::Invite, ""),
            invite_timer: None,
            state: LegState::Calling,
            deadline: ring_deadline,
            linger_until: None,
            credentials,
            auth_attempted: false,
            ack: None,
            cancel_pending: false,
            bye_auth_attempted: false,
            local_sdp: offer.to_vec(),
            extra_headers,
            pending: Vec::new(),
        };
        self.send_invite(&mut leg, None, now);
        self.legs.insert(sip_call_id.clone(), leg);
        sip_call_id
    }

    /// Sends (or re-sends with new CSeq/credentials) the leg's INVITE and arms timer A/B.
    pub(super) fn send_invite(
        &self,
        leg: &mut Leg,
        authorization: Option<(&str, String)>,
        now: Instant,
    ) {
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
        if let Some((name, value)) = authorization {
            invite.headers.push(name, value);
        }
        invite.headers.push("Content-Type", "application/sdp");
        invite.body = leg.local_sdp.clone();
        self.send_to(&invite.to_bytes(), leg.peer);
        leg.invite = invite;
        leg.invite_timer = Some(RetransmitTimer::new(now, true));
    }

    pub(super) fn to_with_remote_tag(leg: &Leg) -> String {
        match &leg.remote_tag {
            Some(tag) => format!("{};tag={tag}", leg.to),
            None => leg.to.clone(),
        }
    }

    pub(super) fn send_ack_for_2xx(&self, leg: &mut Leg) {
        let ack = Request::new(
            Method::Ack,
            leg.remote_target
                .clone()
                .unwrap_or_else(|| leg.request_uri.clone()),
        )
        .with_header("Via", self.via(leg.peer, &new_branch()))
        .with_header("Max-Forwards", "70")
        .with_header("From", leg.from.clone())
        .with_header("To", Self::to_with_remote_tag(leg))
        .with_header("Call-ID", leg.sip_call_id.clone())
        .with_header("CSeq", format!("{} ACK", leg.cseq));
        let bytes = ack.to_bytes();
        self.send_to(&bytes, leg.peer);
        leg.ack = Some(bytes);
    }

    /// The hop-by-hop ACK for a non-2xx final response: same branch as the INVITE, the
    /// response's To (RFC 3261 section 17.1.1.3). Built from the response itself so
    /// retransmitted finals of older INVITEs (before digest) are ACKed correctly too.
    pub(super) fn send_ack_for_failure(&self, leg: &Leg, response: &Response) {
        let mut ack = Request::new(Method::Ack, leg.request_uri.clone());
        if let Some(via) = response.headers.get("Via") {
            ack.headers.push("Via", via);
        }
        ack.headers.push("Max-Forwards", "70");
        if let Some(route) = leg.invite.headers.get("Route") {
            ack.headers.push("Route", route);
        }
        ack.headers.push("From", leg.from.clone());
        ack.headers
            .push("To", response.headers.get("To").unwrap_or_default());
        ack.headers.push("Call-ID", leg.sip_call_id.clone());
        let cseq_number = response.cseq().map(|cseq| cseq.number).unwrap_or(leg.cseq);
        ack.headers.push("CSeq", format!("{cseq_number} ACK"));
        self.send_to(&ack.to_bytes(), leg.peer);
    }

    pub(super) fn send_non_invite(&self, leg: &mut Leg, request: Request, now: Instant) {
        let branch = request
            .top_via()
            .and_then(|via| via.branch().map(str::to_string))
            .unwrap_or_default();
        let bytes = request.to_bytes();
        self.send_to(&bytes, leg.peer);
        leg.pending.push(PendingRequest {
            branch,
            bytes,
            timer: RetransmitTimer::new(now, false),
        });
    }

    pub(super) fn send_cancel(&self, leg: &mut Leg, now: Instant) {
        let mut cancel = Request::new(Method::Cancel, leg.invite.uri.clone());
        // CANCEL must match the INVITE's transaction: same Via (branch), From, To, Call-ID, CSeq number.
        if let Some(via) = leg.invite.headers.get("Via") {
            cancel.headers.push("Via", via);
        }
        cancel.headers.push("Max-Forwards", "70");
        if let Some(route) = leg.invite.headers.get("Route") {
            cancel.headers.push("Route", route);
        }
        cancel.headers.push("From", leg.from.clone());
        cancel.headers.push("To", leg.to.clone());
        cancel.headers.push("Call-ID", leg.sip_call_id.clone());
        cancel.headers.push("CSeq", format!("{} CANCEL", leg.cseq));
        self.send_non_invite(leg, cancel, now);
        leg.state = LegState::Cancelling;
        leg.deadline = now + TRANSACTION_TIMEOUT;
    }

    /// ACKs a 2xx from a second fork of our INVITE (To-tag `tag`, a dialog of its own) and
    /// ends that dialog with BYE, retransmitted like any BYE of the leg (RFC 3261 13.2.2.4):
    /// otherwise that device keeps resending its answer and stays connected, maybe billed.
    pub(super) fn hang_up_fork(&self, leg: &mut Leg, response: &Response, tag: &str, now: Instant) {
        let target = response
            .headers
            .get("Contact")
            .and_then(|contact| NameAddr::parse(contact).ok())
            .map(|contact| contact.uri)
            .unwrap_or_else(|| leg.request_uri.clone());
        let invite_cseq = response.cseq().map(|cseq| cseq.number).unwrap_or(leg.cseq);
        let to = format!("{};tag={tag}", leg.to);
        let request = |method: Method, cseq: u32| {
            Request::new(method.clone(), target.clone())
                .with_header("Via", self.via(leg.peer, &new_branch()))
                .with_header("Max-Forwards", "70")
                .with_header("From", leg.from.clone())
                .with_header("To", to.clone())
                .with_header("Call-ID", leg.sip_call_id.clone())
                .with_header("CSeq", format!("{cseq} {method}"))
        };
        let ack = request(Method::Ack, invite_cseq);
        let bye = request(Method::Bye, invite_cseq.wrapping_add(1));
        info!(sip_call_id = %leg.sip_call_id, %tag, "a second fork answered; hanging it up");
        self.send_to(&ack.to_bytes(), leg.peer);
        self.send_non_invite(leg, bye, now);
    }

    /// A carrier that challenges BYE (401/407) gets it again with digest credentials, once:
    /// otherwise the customer leg would stay up, and billed, after we hung up.
    pub(super) fn answer_bye_challenge(&mut self, sip_call_id: &str, response: &Response) {
        let Some(mut leg) = self.legs.remove(sip_call_id) else {
            return;
        };
        let (challenge_header, answer_header) = if response.status == 401 {
            ("WWW-Authenticate", "Authorization")
        } else {
            ("Proxy-Authenticate", "Proxy-Authorization")
        };
        match (
            best_challenge(response, challenge_header),
            leg.credentials.clone(),
        ) {
            (Some(Ok(challenge)), Some(credentials)) => {
                leg.bye_auth_attempted = true;
                let uri = leg
                    .remote_target
                    .clone()
                    .unwrap_or_else(|| leg.request_uri.clone());
                let value = challenge.answer(&credentials, "BYE", &uri, &new_tag(), 1);
                self.send_bye_with(&mut leg, Some((answer_header, value)), Instant::now());
            }
            (Some(Err(error)), _) => warn!(%error, "cannot answer the challenge to our BYE"),
            (None, _) => warn!(
                status = response.status,
                "BYE challenged without a {challenge_header} header"
            ),
            (_, None) => warn!(
                status = response.status,
                "BYE challenged, but the trunk has no credentials"
            ),
        }
        self.legs.insert(sip_call_id.to_string(), leg);
    }

    pub(super) fn send_bye(&self, leg: &mut Leg, now: Instant) {
        self.send_bye_with(leg, None, now);
    }

    pub(super) fn send_bye_with(
        &self,
        leg: &mut Leg,
        authorization: Option<(&str, String)>,
        now: Instant,
    ) {
        leg.cseq += 1;
        let mut bye = Request::new(
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
        if let Some((name, value)) = authorization {
            bye = bye.with_header(name, value);
        }
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
        let Some(leg) = self.legs.get_mut(&sip_call_id) else {
            debug!(%source, status = response.status, "response for no known call dropped");
            return;
        };
        if cseq.method != Method::Invite {
            if response.status >= 200 {
                let branch = response
                    .top_via()
                    .and_then(|via| via.branch().map(str::to_string));
                let before = leg.pending.len();
                leg.pending
                    .retain(|pending| Some(&pending.branch) != branch.as_ref());
                let ours = leg.pending.len() < before;
                if ours
                    && cseq.method == Method::Bye
                    && matches!(response.status, 401 | 407)
                    && !leg.bye_auth_attempted
                {
                    self.answer_bye_challenge(&sip_call_id, &response);
                }
            }
            return;
        }
        if cseq.number != leg.cseq {
            // A retransmitted final answer to an INVITE we already replaced (after a digest challenge).
            if response.status >= 300 {
                let leg = &self.legs[&sip_call_id];
                self.send_ack_for_failure(leg, &response);
            }
            return;
        }
        leg.invite_timer = None;
        match response.status {
            100..=199 => self.on_provisional(&sip_call_id, &response),
            200..=299 => self.on_invite_success(&sip_call_id, &response),
            _ => self.on_invite_failure(&sip_call_id, &response),
        }
    }

    pub(super) fn on_request(&mut self, request: Request, source: SocketAddr) {
        let branch = request
            .top_via()
            .and_then(|via| via.branch().map(str::to_string))
            .unwrap_or_default();
        let cache_key = format!("{branch}|{}|{}", request.method, request.call_id());
        if request.method != Method::Ack
            && let Some(cached) = self.responses.get(&cache_key)
        {
            // A retransmitted request: repeat our answer instead of acting twice.
            self.send_to(&cached.bytes, source);
            return;
        }
        let in_dialog = self.legs.contains_key(request.call_id());
        let response = match request.method {
            Method::Register => Some(self.on_register(&request, source)),
            _ if in_dialog => self.on_in_dialog(&request, source),
            Method::Ack => None,
            Method::Invite => {
                warn!(%source, uri = %request.uri, "refusing an inbound INVITE: this box places calls only (no open relay)");
                Some(Response::to_request(
                    &request,
                    403,
                    "Forbidden",
                    Some(&new_tag()),
                ))
            }
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
            let bytes = response.to_bytes();
            self.send_to(&bytes, source);
            self.responses.insert(
                cache_key,
                CachedResponse {
                    bytes,
                    expires_at: Instant::now() + TRANSACTION_TIMEOUT,
                },
            );
        }
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
        // Retransmit BYE/CANCEL until answered (timer E), give up at timer F.
        let peer = leg.peer;
        let reliable = self.is_tcp(peer);
        leg.pending
            .retain_mut(|pending| match pending.timer.poll(now) {
                TimerAction::Retransmit => {
                    if !reliable {
                        let _ = self.socket.try_send_to(&pending.bytes, peer);
                    }
                    true
                }
                TimerAction::WaitUntil(_) => true,
                TimerAction::GiveUp => false,
            });
        let mut invite_gave_up = false;
        if let Some(timer) = leg.invite_timer.as_mut() {
            match timer.poll(now) {
                TimerAction::Retransmit if !reliable => {
                    self.send_to(&leg.invite.to_bytes(), leg.peer)
                }
                TimerAction::Retransmit => {}
                TimerAction::WaitUntil(_) => {}
                TimerAction::GiveUp => invite_gave_up = true,
            }
        }
        if invite_gave_up {
            leg.invite_timer = None;
            leg.state = LegState::Terminated;
            let owner = leg.owner.take();
            leg.linger_until = Some(now);
            self.legs.insert(sip_call_id.to_string(), leg);
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
            return;
        }
        let owner = leg.owner;
        let deadline_passed = now >= leg.deadline;
        let state = leg.state;
        if let Some(linger_until) = leg.linger_until
            && now >= linger_until
            && leg.pending.is_empty()
        {
            return; // dropped: nothing more can arrive that needs an answer
        }
        self.legs.insert(sip_call_id.to_string(), leg);
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
