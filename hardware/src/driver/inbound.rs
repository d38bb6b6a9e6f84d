//! Calls a carrier places to the box (呼入): a customer calling back one of the site's numbers.
//!
//! An INVITE outside any dialog is answered only when it comes from a trunk's own signalling
//! address (the configured address or its outbound proxy, IP and port) and asks, in its
//! Request-URI, for one of the numbers that trunk delivers ([`crate::TrunkOptions::dids`]).
//! Everything else keeps getting one stateless 403, as before there was any inbound.
//!
//! The toll-fraud guard holds by construction: an inbound call is a customer leg answered
//! here, and the only leg the box ever adds to a call is an agent leg toward a registered
//! extension ([`Driver::bridge`]); nothing that arrives from a trunk is dialed out again.
//!
//! The call is answered at once (200 with the box's SDP answer) and reported as
//! [`LineEvent::Incoming`] followed by [`LineEvent::Answered`]; from then on it is an
//! answered call like any other, queued with hold audio or bridged by the appliance. The
//! box ends it with a BYE built from the caller's dialog (our To tag, their From tag and
//! Contact), and a BYE or re-INVITE from the caller finds the leg by its Call-ID.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip_core::sdp::{self, Codec, SessionDescription};
use sip_core::{NameAddr, Request, Response, SipUri};
use tracing::{info, warn};

use super::{Call, Driver, Leg, LegState, Side, Stage, new_tag, normalized_number};
use crate::media::{self, MediaCommand};
use crate::{CallId, DialRequest, LineEvent};

/// Inbound calls get ids with the top bit set: the appliance numbers its own dials from 1,
/// so the two never meet.
const INBOUND_IDS: u64 = 1 << 63;

/// What an INVITE outside any dialog asks for, once it passed the trunk check.
struct Accepted {
    trunk: String,
    did: String,
    caller: String,
}

impl Driver {
    /// An INVITE outside any dialog: answered (the returned 200) when a trunk delivers it to
    /// one of its numbers, else refused with one stateless 403.
    pub(super) fn on_new_invite(
        &mut self,
        request: &Request,
        source: SocketAddr,
    ) -> Option<Response> {
        let Some(accepted) = self.inbound_target(request, source) else {
            warn!(%source, uri = %request.uri, "refusing an inbound INVITE: not a trunk's call to one of its numbers (no open relay)");
            // Statelessly: a stranger's INVITE gets one 403, never retransmissions.
            let refusal = Response::to_request(request, 403, "Forbidden", Some(&new_tag()));
            self.server.respond_stateless(request, refusal);
            return None;
        };
        match self.answer_inbound(request, source, accepted) {
            Ok(response) => Some(response),
            Err((status, reason)) => {
                warn!(%source, status, reason, "inbound call not taken");
                // Statelessly too: the carrier retries or gives up, nothing is kept.
                let refusal = Response::to_request(request, status, reason, Some(&new_tag()));
                self.server.respond_stateless(request, refusal);
                None
            }
        }
    }

    /// The trunk, number and caller of an INVITE a trunk sent to one of its numbers.
    fn inbound_target(&self, request: &Request, source: SocketAddr) -> Option<Accepted> {
        let trunk = self
            .trunks
            .values()
            .find(|trunk| trunk.address == source || self.trunk_destination(trunk) == source)?;
        let dids = &self.trunk_options(&trunk.name).dids;
        let called = normalized_number(&SipUri::parse(&request.uri).ok()?.user?);
        let did = dids
            .iter()
            .find(|did| !called.is_empty() && normalized_number(did) == called)?
            .clone();
        let caller = request
            .headers
            .get("From")
            .and_then(|from| NameAddr::parse(from).ok())
            .and_then(|from| SipUri::parse(&from.uri).ok())
            .and_then(|uri| uri.user)
            .map(|user| normalized_number(&user))
            .unwrap_or_default();
        Some(Accepted {
            trunk: trunk.name.clone(),
            did,
            caller,
        })
    }

    /// Answers the call: RTP port, media task, the leg of the caller's dialog, the events.
    fn answer_inbound(
        &mut self,
        request: &Request,
        source: SocketAddr,
        accepted: Accepted,
    ) -> Result<Response, (u16, &'static str)> {
        let trunk_busy = self
            .trunks
            .get(&accepted.trunk)
            .is_some_and(|trunk| self.active_calls_on(&trunk.name) >= trunk.channels as usize);
        if trunk_busy {
            return Err((486, "Busy Here"));
        }
        let offer = SessionDescription::parse(&request.body)
            .and_then(|offer| offer.audio_path(&[Codec::Pcmu, Codec::Pcma]))
            .map_err(|_| (488, "Not Acceptable Here"))?;
        let (rtp_socket, rtp_port) = self
            .rtp_ports
            .bind(self.rtp_bind_ip)
            .map_err(|_| (503, "Service Unavailable"))?;
        self.next_inbound += 1;
        let call_id = CallId(INBOUND_IDS | self.next_inbound);
        let local_tag = new_tag();
        let answer = sdp::build_audio(
            self.local.ip(),
            rtp_port,
            &[offer.codec],
            // RFC 4733 events under the payload type the caller chose.
            offer.telephone_event,
            u64::from(rand::random::<u32>()),
        );
        let mut response = Response::to_request(request, 200, "OK", Some(&local_tag))
            .with_header("Contact", self.contact(source))
            .with_header("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO")
            .with_header("Content-Type", "application/sdp");
        response.body = answer.clone();
        let now = Instant::now();
        let sip_call_id = request.call_id().to_string();
        let leg = caller_leg(request, source, call_id, &local_tag, answer, now);
        self.legs.insert(sip_call_id.clone(), leg);
        let media = media::spawn(
            call_id,
            rtp_socket,
            self.hold_audio.clone(),
            self.media_timeout,
            self.dead_media.clone(),
        );
        media.send(MediaCommand::CustomerMedia {
            remote: offer.remote,
            codec: offer.codec,
        });
        media.send(MediaCommand::Answered);
        info!(call = call_id.0, trunk = %accepted.trunk, did = %accepted.did, caller = %accepted.caller, "inbound call answered");
        self.calls.insert(
            call_id,
            Call {
                trunk: accepted.trunk.clone(),
                request: DialRequest {
                    call: call_id,
                    trunk: accepted.trunk.clone(),
                    number: accepted.caller.clone(),
                    caller_id: accepted.did.clone(),
                    ring_timeout: Duration::ZERO,
                },
                tried: vec![accepted.trunk.clone()],
                offer: Vec::new(),
                ring_deadline: now,
                customer: sip_call_id,
                agent: None,
                stage: Stage::Answered,
                answered: true,
                ringing_reported: true,
                codec: Some(offer.codec),
                media,
            },
        );
        self.publish_trunks();
        self.emit(LineEvent::Incoming {
            call: call_id,
            trunk: accepted.trunk,
            did: accepted.did,
            caller: accepted.caller,
        });
        self.emit(LineEvent::Answered { call: call_id });
        Ok(response)
    }
}

/// The caller's dialog seen from our side: our From is their To with our tag, our To is their
/// From (their tag kept apart, as for a dialog we started); requests go back to where the
/// INVITE came from.
fn caller_leg(
    request: &Request,
    source: SocketAddr,
    call_id: CallId,
    local_tag: &str,
    answer: Vec<u8>,
    now: Instant,
) -> Leg {
    let from = request.headers.get("From").unwrap_or_default();
    let from = NameAddr::parse(from).ok();
    let to = request.headers.get("To").unwrap_or_default().to_string();
    Leg {
        owner: Some((call_id, Side::Customer)),
        sip_call_id: request.call_id().to_string(),
        peer: source,
        request_uri: request.uri.clone(),
        remote_target: request
            .headers
            .get("Contact")
            .and_then(|contact| NameAddr::parse(contact).ok())
            .map(|contact| contact.uri),
        from: format!("{};tag={local_tag}", strip_tag(&to)),
        to: from
            .as_ref()
            .map(|from| format!("<{}>", from.uri))
            .unwrap_or_default(),
        remote_tag: from.as_ref().and_then(|from| from.tag().map(str::to_string)),
        cseq: 1,
        invites: Vec::new(),
        state: LegState::Confirmed,
        deadline: now + Duration::from_secs(3600),
        linger_until: None,
        credentials: None,
        auth_attempted: false,
        cancel_pending: false,
        bye_auth_attempted: false,
        local_sdp: answer,
        extra_headers: Vec::new(),
        requests: Vec::new(),
    }
}

/// A To or From header value without its tag parameter.
fn strip_tag(value: &str) -> String {
    value
        .split(';')
        .filter(|part| !part.trim_start().starts_with("tag="))
        .collect::<Vec<_>>()
        .join(";")
}

#[cfg(test)]
mod tests {
    use super::strip_tag;

    #[test]
    fn the_tag_goes_and_the_rest_stays() {
        assert_eq!(strip_tag("<sip:1@a>;tag=x"), "<sip:1@a>");
        assert_eq!(strip_tag("\"A\" <sip:1@a>;tag=x;foo=1"), "\"A\" <sip:1@a>;foo=1");
        assert_eq!(strip_tag("<sip:1@a>"), "<sip:1@a>");
    }
}
