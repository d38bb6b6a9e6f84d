//! Call stages and bridging: dialing a customer, ringing an agent, the customer's and the
//! agent's answers, ringing and early media, bridging, and how a call ends.

use std::time::{Duration, Instant};

use sip_core::auth::authorized_retry;
use sip_core::sdp::{self, Codec, SessionDescription, TELEPHONE_EVENT_PT};
use sip_core::transaction::{ClientInvite, TRANSACTION_TIMEOUT};
use sip_core::{NameAddr, Response};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::{
    AgentLeg, Call, Driver, Leg, LegState, Side, Stage, new_call_id, new_tag, normalized_number,
    unix_millis,
};
use crate::media::{self, MediaCommand};
use crate::{CallId, DialRequest, HangupSide, LineEvent, Outcome};

impl Driver {
    pub(super) fn dial(&mut self, request: DialRequest) {
        let call_id = request.call;
        if self.calls.contains_key(&call_id) {
            warn!(
                call = call_id.0,
                "dial ignored: the call id is already in use"
            );
            return;
        }
        let failed = |driver: &Driver, status: u16| {
            driver.emit(LineEvent::Ended {
                call: call_id,
                outcome: Outcome::Failed { status },
                hangup_side: None,
                recording: None,
                quality: Default::default(),
            });
        };
        // T9: one attempt per number at a time across the site, whichever trunk and task.
        let number = normalized_number(&request.number);
        if self
            .calls
            .values()
            .any(|call| normalized_number(&call.request.number) == number)
        {
            warn!(call = call_id.0, number = %request.number, "dial refused: this number already has a call in progress");
            failed(self, 0);
            return;
        }
        if !self.trunks.contains_key(&request.trunk) {
            warn!(call = call_id.0, trunk = %request.trunk, "dial failed: no trunk by that name is configured");
            failed(self, 0);
            return;
        }
        let trunk = match self.pick_trunk(&request.trunk, &[]) {
            Ok(trunk) => trunk,
            Err(status) => {
                warn!(call = call_id.0, trunk = %request.trunk, "dial refused: every channel of the trunk (and its failover trunks) is busy");
                failed(self, status);
                return;
            }
        };
        let (rtp_socket, rtp_port) = match self.rtp_ports.bind(self.rtp_bind_ip) {
            Ok(bound) => bound,
            Err(error) => {
                warn!(call = call_id.0, %error, "dial failed: no RTP port");
                failed(self, 0);
                return;
            }
        };
        let now = Instant::now();
        let offer = sdp::build_offer(self.local.ip(), rtp_port, u64::from(rand::random::<u32>()));
        let media = media::spawn(
            call_id,
            rtp_socket,
            self.hold_audio.clone(),
            self.media_timeout,
            self.dead_media.clone(),
        );
        let ring_deadline = now + request.ring_timeout;
        let sip_call_id =
            self.start_customer_leg(call_id, &trunk, &request, &offer, ring_deadline, now);
        info!(call = call_id.0, trunk = %trunk.name, number = %request.number, "dialing");
        self.calls.insert(
            call_id,
            Call {
                trunk: trunk.name.clone(),
                request,
                tried: vec![trunk.name],
                offer,
                ring_deadline,
                customer: sip_call_id,
                agent: None,
                stage: Stage::Dialing,
                answered: false,
                ringing_reported: false,
                codec: None,
                media,
            },
        );
        self.publish_trunks();
    }

    pub(super) fn bridge(
        &mut self,
        call_id: CallId,
        extension: String,
        ring_timeout: Duration,
        auto_answer: bool,
    ) {
        let missed = |driver: &Driver, reason: &str| {
            warn!(call = call_id.0, %extension, reason, "bridge refused");
            driver.emit(LineEvent::AgentMissed {
                call: call_id,
                extension: extension.clone(),
            });
        };
        let Some(call) = self.calls.get(&call_id) else {
            missed(self, "no such call");
            return;
        };
        if call.agent.is_some() {
            missed(
                self,
                "an agent is already being rung or talking on this call",
            );
            return;
        }
        // The customer's codec first (no re-encoding), the other law as well: a call bridged
        // while ringing may not know the customer's codec yet, and the relay re-encodes.
        let codecs = match call.codec {
            Some(Codec::Pcma) => [Codec::Pcma, Codec::Pcmu],
            _ => [Codec::Pcmu, Codec::Pcma],
        };
        let Some(registration) = self.registrations.get(&extension) else {
            missed(self, "the extension is not registered");
            return;
        };
        let (contact_uri, target) = (registration.contact_uri.clone(), registration.target);
        let (rtp_socket, rtp_port) = match self.rtp_ports.bind(self.rtp_bind_ip) {
            Ok(bound) => bound,
            Err(error) => {
                missed(self, &error.to_string());
                return;
            }
        };
        let mut extra_headers = Vec::new();
        if auto_answer {
            // Phones differ in which hint they honour: Call-Info (Snom, Yealink, Grandstream,
            // baresip) and Alert-Info (Polycom, Cisco SPA); sending both covers the field.
            extra_headers.push((
                "Call-Info".to_string(),
                format!("<sip:{}>;answer-after=0", self.local.ip()),
            ));
            extra_headers.push((
                "Alert-Info".to_string(),
                format!("<sip:{}>;info=alert-autoanswer;delay=0", self.local.ip()),
            ));
        }
        let sip_call_id = new_call_id(&self.local.ip().to_string());
        let now = Instant::now();
        let mut leg = Leg {
            owner: Some((call_id, Side::Agent)),
            sip_call_id: sip_call_id.clone(),
            peer: target,
            request_uri: contact_uri,
            remote_target: None,
            from: format!("\"Outpost\" <sip:outpost@{}>;tag={}", self.local, new_tag()),
            to: format!("<sip:{extension}@{}>", self.local.ip()),
            remote_tag: None,
            cseq: 1,
            invites: Vec::new(),
            state: LegState::Calling,
            deadline: now + ring_timeout,
            linger_until: None,
            credentials: None,
            auth_attempted: false,
            cancel_pending: false,
            bye_auth_attempted: false,
            local_sdp: sdp::build_audio(
                self.local.ip(),
                rtp_port,
                &codecs,
                Some(TELEPHONE_EVENT_PT),
                u64::from(rand::random::<u32>()),
            ),
            extra_headers,
            requests: Vec::new(),
        };
        self.send_invite(&mut leg, now);
        info!(call = call_id.0, %extension, %target, "ringing agent");
        self.legs.insert(sip_call_id.clone(), leg);
        if let Some(call) = self.calls.get_mut(&call_id) {
            call.agent = Some(AgentLeg {
                sip_call_id,
                extension,
                socket: Some(rtp_socket),
                ringing_reported: false,
            });
        }
    }

    pub(super) fn hang_up(&mut self, call_id: CallId) {
        let Some(call) = self.calls.get(&call_id) else {
            debug!(
                call = call_id.0,
                "hangup ignored: no such call (already ended)"
            );
            return;
        };
        let outcome = match call.stage {
            Stage::Dialing => Outcome::NoAnswer,
            Stage::Answered => Outcome::Abandoned,
            Stage::Bridged { .. } if call.answered => Outcome::Answered,
            Stage::Bridged { .. } => Outcome::NoAnswer,
        };
        self.end_call(call_id, outcome, Some(HangupSide::System));
    }

    /// Releases every leg of the call, finishes its media and reports [`LineEvent::Ended`]
    /// once the recording (if any) is written.
    pub(super) fn end_call(
        &mut self,
        call_id: CallId,
        outcome: Outcome,
        hangup_side: Option<HangupSide>,
    ) {
        let Some(call) = self.calls.remove(&call_id) else {
            return;
        };
        let now = Instant::now();
        self.release_leg(&call.customer, now);
        if let Some(agent) = &call.agent {
            self.release_leg(&agent.sip_call_id, now);
        }
        // The recording has been streamed since the bridge; `Some` keeps it.
        let recording_path =
            matches!(call.stage, Stage::Bridged { .. }).then(|| self.recordings_dir.clone());
        let (reply, recording) = oneshot::channel();
        call.media.send(MediaCommand::Finish {
            recording_path,
            reply,
        });
        info!(call = call_id.0, ?outcome, ?hangup_side, "call ended");
        self.publish_trunks();
        let events = self.events.clone();
        tokio::spawn(async move {
            let (recording, quality) = recording.await.unwrap_or_default();
            // Each leg as the box received it; not in the call record yet.
            for (leg, figures) in [("customer", quality.customer), ("agent", quality.agent)] {
                if let Some(q) = figures {
                    info!(call = call_id.0, leg, loss_percent = q.loss_percent, jitter_ms = q.jitter_ms, mos = q.mos, received = q.received, "call quality");
                }
            }
            let _ = events.send(LineEvent::Ended {
                call: call_id,
                outcome,
                hangup_side,
                recording,
                quality,
            });
        });
    }

    /// The agent leg did not become a bridge: tell the appliance and keep the customer.
    pub(super) fn agent_missed(&mut self, call_id: CallId) {
        let Some(call) = self.calls.get_mut(&call_id) else {
            return;
        };
        let Some(agent) = call.agent.take() else {
            return;
        };
        let now = Instant::now();
        self.release_leg(&agent.sip_call_id, now);
        info!(call = call_id.0, extension = %agent.extension, "agent missed the call");
        self.emit(LineEvent::AgentMissed {
            call: call_id,
            extension: agent.extension,
        });
    }

    pub(super) fn on_provisional(&mut self, sip_call_id: &str, response: &Response) {
        let Some(mut leg) = self.legs.remove(sip_call_id) else {
            return;
        };
        if leg.state == LegState::Calling {
            leg.state = LegState::Proceeding;
        }
        if leg.cancel_pending {
            // The INVITE transaction sent the CANCEL with this response; the give-up clock
            // for the INVITE's final answer starts now.
            leg.cancel_pending = false;
            leg.deadline = Instant::now() + TRANSACTION_TIMEOUT;
        }
        let leg = self.legs.entry(sip_call_id.to_string()).or_insert(leg);
        if !matches!(response.status, 180 | 183) {
            return;
        }
        let Some((call_id, side)) = leg.owner else {
            return;
        };
        let Some(call) = self.calls.get_mut(&call_id) else {
            return;
        };
        if side == Side::Customer && call.answered {
            // A provisional response overtaken by the answer (reordered, or from another
            // fork): the answer's media stands.
        } else if side == Side::Customer && !response.body.is_empty() {
            // Early media: the network's ringback or announcement. Relayed to an agent already
            // bridged (an agent's own call) and recorded; a waiting customer hears nothing of it.
            match SessionDescription::parse(&response.body)
                .and_then(|answer| answer.audio_path(&[Codec::Pcmu, Codec::Pcma]))
            {
                // `c=0.0.0.0` or port 0: media announced but none will flow.
                Ok(path) if path.remote.ip().is_unspecified() || path.remote.port() == 0 => {
                    call.media.send(MediaCommand::Ringing);
                }
                Ok(path) => {
                    debug!(call = call_id.0, codec = ?path.codec, remote = %path.remote, "early media");
                    call.codec = Some(path.codec);
                    call.media.send(MediaCommand::CustomerMedia {
                        remote: path.remote,
                        codec: path.codec,
                    });
                }
                Err(error) => {
                    debug!(call = call_id.0, %error, "provisional response with unusable SDP; no early media");
                    call.media.send(MediaCommand::Ringing);
                }
            }
        } else if side == Side::Customer {
            // Ringing with no audio from the network: an agent on the call hears our ringback.
            call.media.send(MediaCommand::Ringing);
        }
        let event = match side {
            Side::Customer if !call.ringing_reported => {
                call.ringing_reported = true;
                LineEvent::Ringing { call: call_id }
            }
            Side::Agent => match call.agent.as_mut() {
                Some(agent) if !agent.ringing_reported => {
                    agent.ringing_reported = true;
                    LineEvent::AgentRinging {
                        call: call_id,
                        extension: agent.extension.clone(),
                    }
                }
                _ => return,
            },
            Side::Customer => return,
        };
        self.emit(event);
    }

    pub(super) fn on_invite_success(&mut self, sip_call_id: &str, response: &Response) {
        let Some(mut leg) = self.legs.remove(sip_call_id) else {
            return;
        };
        let now = Instant::now();
        if leg.remote_tag.is_some() {
            // The dialog is up already (a 2xx of an earlier INVITE of the leg): the
            // transaction ACKed this one; nothing changes.
            self.legs.insert(sip_call_id.to_string(), leg);
            return;
        }
        leg.remote_tag = response
            .headers
            .get("To")
            .and_then(|to| NameAddr::parse(to).ok())
            .and_then(|to| to.tag().map(str::to_string));
        leg.remote_target = response
            .headers
            .get("Contact")
            .and_then(|contact| NameAddr::parse(contact).ok())
            .map(|contact| contact.uri);
        let was_cancelling = leg.state == LegState::Cancelling;
        leg.state = LegState::Confirmed;
        let owner = leg.owner;
        let answer = SessionDescription::parse(&response.body);
        self.legs.insert(sip_call_id.to_string(), leg);

        let Some((call_id, side)) = owner.filter(|_| !was_cancelling) else {
            match owner {
                // The answer crossed our CANCEL at the ring timeout: no 487 will come, so the
                // call ends here, unanswered, and the answer gets BYE.
                Some((call_id, Side::Customer)) => {
                    self.end_call(call_id, Outcome::NoAnswer, Some(HangupSide::System))
                }
                // Answered after we gave up on it: hang up the answer right away.
                _ => self.release_leg(sip_call_id, now),
            }
            return;
        };
        match side {
            Side::Customer => {
                let path = answer.and_then(|answer| answer.audio_path(&[Codec::Pcmu, Codec::Pcma]));
                match path {
                    Ok(path) => {
                        if let Some(call) = self.calls.get_mut(&call_id) {
                            call.codec = Some(path.codec);
                            call.answered = true;
                            // Bridged already when the agent took their own call while it rang.
                            if call.stage == Stage::Dialing {
                                call.stage = Stage::Answered;
                            }
                            call.media.send(MediaCommand::CustomerMedia {
                                remote: path.remote,
                                codec: path.codec,
                            });
                            call.media.send(MediaCommand::Answered);
                        }
                        info!(call = call_id.0, codec = ?path.codec, remote = %path.remote, "customer answered");
                        self.emit(LineEvent::Answered { call: call_id });
                    }
                    Err(error) => {
                        warn!(call = call_id.0, %error, "customer answered with unusable SDP; hanging up");
                        self.end_call(
                            call_id,
                            Outcome::Failed { status: 488 },
                            Some(HangupSide::System),
                        );
                    }
                }
            }
            Side::Agent => {
                let path = answer.and_then(|answer| answer.audio_path(&[Codec::Pcmu, Codec::Pcma]));
                match path {
                    Ok(path) => {
                        let Some(call) = self.calls.get_mut(&call_id) else {
                            return;
                        };
                        let Some(agent) = call.agent.as_mut() else {
                            return;
                        };
                        let Some(agent_socket) = agent.socket.take() else {
                            return;
                        };
                        let extension = agent.extension.clone();
                        let paused = self
                            .shared
                            .recording_paused
                            .load(std::sync::atomic::Ordering::Relaxed);
                        let recording_path = (!paused).then(|| {
                            self.recordings_dir
                                .join(format!("call-{}-{}.wav", call_id.0, unix_millis()))
                        });
                        if paused {
                            info!(call = call_id.0, "not recorded: the disk is under the floor");
                        }
                        call.media.send(MediaCommand::Bridge {
                            agent_socket,
                            agent_remote: path.remote,
                            agent_codec: path.codec,
                            recording_path,
                        });
                        call.stage = Stage::Bridged {
                            extension: extension.clone(),
                        };
                        info!(call = call_id.0, %extension, "bridged");
                        self.emit(LineEvent::Bridged {
                            call: call_id,
                            extension,
                        });
                    }
                    Err(error) => {
                        warn!(call = call_id.0, %error, "agent answered with unusable SDP");
                        self.agent_missed(call_id);
                    }
                }
            }
        }
    }

    pub(super) fn on_invite_failure(&mut self, sip_call_id: &str, response: &Response) {
        if let Some(leg) = self.legs.get(sip_call_id)
            && leg.owner.is_some_and(|(_, side)| side == Side::Customer)
            && let Some(trunk) = self.trunk_by_peer(leg.peer)
        {
            // Any answer, even a refusal, shows the trunk is up.
            self.set_trunk_alive(&trunk, true);
        }
        let Some(mut leg) = self.legs.remove(sip_call_id) else {
            return;
        };
        if leg.state == LegState::Terminated || leg.state == LegState::Confirmed {
            self.legs.insert(sip_call_id.to_string(), leg);
            return;
        }
        let now = Instant::now();
        // The INVITE transaction ACKed the challenge; the INVITE goes again with credentials,
        // once, as a new transaction.
        let challenged = leg
            .invites
            .iter()
            .find(|invite| invite.matches(response))
            .map(|invite| invite.request().clone());
        if matches!(response.status, 401 | 407)
            && leg.state != LegState::Cancelling
            && !leg.auth_attempted
            && let Some(credentials) = leg.credentials.clone()
            && let Some(invite) = challenged
        {
            match authorized_retry(&invite, response, &credentials, &mut rand::rng()) {
                Ok(retry) => {
                    leg.auth_attempted = true;
                    if let Ok(cseq) = retry.cseq() {
                        leg.cseq = cseq.number;
                    }
                    let reliable = self.is_tcp(leg.peer);
                    leg.invites.push(ClientInvite::new(now, retry, reliable));
                    self.flush_leg(&mut leg);
                    leg.state = LegState::Calling;
                    self.legs.insert(sip_call_id.to_string(), leg);
                    return;
                }
                Err(error) => warn!(%error, "cannot answer the carrier's digest challenge"),
            }
        }
        let was_cancelling = leg.state == LegState::Cancelling;
        leg.state = LegState::Terminated;
        let owner = leg.owner.take();
        leg.linger_until = Some(now + TRANSACTION_TIMEOUT);
        self.legs.insert(sip_call_id.to_string(), leg);
        match owner {
            None => {}
            Some((call_id, Side::Customer))
                if matches!(response.status, 500 | 502 | 503 | 504)
                    && !was_cancelling
                    && self.try_failover(call_id, response.status) => {}
            Some((call_id, Side::Customer)) => {
                let outcome = match response.status {
                    486 | 600 => Outcome::Busy,
                    603 => Outcome::Rejected,
                    408 | 480 => Outcome::NoAnswer,
                    487 if was_cancelling => Outcome::NoAnswer,
                    status => Outcome::Failed { status },
                };
                let hangup_side =
                    (outcome == Outcome::NoAnswer && was_cancelling).then_some(HangupSide::System);
                self.end_call(call_id, outcome, hangup_side);
            }
            Some((call_id, Side::Agent)) => {
                info!(
                    call = call_id.0,
                    status = response.status,
                    "agent leg refused"
                );
                self.agent_missed(call_id);
            }
        }
    }

    pub(super) fn on_remote_bye(&mut self, call_id: CallId, side: Side) {
        let Some(call) = self.calls.get(&call_id) else {
            return;
        };
        match (side, &call.stage) {
            (Side::Customer, Stage::Bridged { .. }) => {
                self.end_call(call_id, Outcome::Answered, Some(HangupSide::Customer))
            }
            (Side::Customer, _) => {
                self.end_call(call_id, Outcome::Abandoned, Some(HangupSide::Customer))
            }
            (Side::Agent, Stage::Bridged { .. }) if call.answered => {
                self.end_call(call_id, Outcome::Answered, Some(HangupSide::Agent))
            }
            // The agent gave up their own call while it still rang.
            (Side::Agent, Stage::Bridged { .. }) => {
                self.end_call(call_id, Outcome::NoAnswer, Some(HangupSide::Agent))
            }
            (Side::Agent, _) => self.agent_missed(call_id),
        }
    }
}
