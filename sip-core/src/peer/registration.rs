//! A simulated phone's registration: REGISTER with one digest answer per request, refresh at
//! half the granted expiry, retry while refused or unanswered, unregister on close.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;

use super::{Outbox, PeerEvent, hex_id};
use crate::auth::{Challenge, Credentials};
use crate::transaction::BRANCH_COOKIE;
use crate::{Method, NameAddr, Request, Response};

/// Where and how a phone registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterConfig {
    /// The registrar's SIP address (the box's `Telephony::local_sip_addr`).
    pub registrar: SocketAddr,
    /// The digest password of the peer's user (its extension).
    pub password: String,
    /// Registration lifetime asked for.
    pub expires: Duration,
    /// How long to wait for a 200 before registering again (also after a refusal).
    pub retry: Duration,
}

#[derive(Debug)]
pub(super) struct Registration {
    config: RegisterConfig,
    user: String,
    local: SocketAddr,
    call_id: String,
    from_tag: String,
    cseq: u32,
    /// The CSeq that answered a challenge already, so a second 401 to it is a refusal.
    answered_cseq: Option<u32>,
    next_at: Instant,
}

impl Registration {
    /// Due at once: the first REGISTER goes out at the first timeout.
    pub(super) fn new(
        config: RegisterConfig,
        user: &str,
        local: SocketAddr,
        rng: &mut StdRng,
        now: Instant,
    ) -> Registration {
        Registration {
            config,
            user: user.to_string(),
            local,
            call_id: format!("{}@{}", hex_id(rng, 12), local.ip()),
            from_tag: hex_id(rng, 6),
            cseq: 0,
            answered_cseq: None,
            next_at: now,
        }
    }

    pub(super) fn next_at(&self) -> Instant {
        self.next_at
    }

    /// Registers when due; the next attempt is `retry` away unless a 200 reschedules it.
    pub(super) fn handle_timeout(&mut self, now: Instant, rng: &mut StdRng, out: &mut Outbox) {
        if now < self.next_at {
            return;
        }
        self.cseq += 1;
        self.answered_cseq = None;
        self.next_at = now + self.config.retry;
        let request = self.request(self.config.expires, None, rng);
        out.request(self.config.registrar, request);
    }

    pub(super) fn handle_response(
        &mut self,
        now: Instant,
        response: &Response,
        rng: &mut StdRng,
        out: &mut Outbox,
    ) {
        let Ok(cseq) = response.cseq() else { return };
        if response.call_id() != self.call_id || cseq.number != self.cseq {
            return;
        }
        match response.status {
            200..=299 => {
                let granted = response
                    .headers
                    .get("Contact")
                    .and_then(|contact| NameAddr::parse(contact).ok())
                    .and_then(|contact| contact.param("expires")?.parse::<u64>().ok())
                    .map(Duration::from_secs)
                    .unwrap_or(self.config.expires);
                self.next_at = now + (granted / 2).max(Duration::from_secs(1));
                out.events.push_back(PeerEvent::Registered { granted });
            }
            401 if self.answered_cseq != Some(cseq.number) => {
                let Some(Ok(challenge)) = response
                    .headers
                    .get("WWW-Authenticate")
                    .map(Challenge::parse)
                else {
                    out.events
                        .push_back(PeerEvent::RegisterRefused { status: 401 });
                    return;
                };
                self.cseq += 1;
                self.answered_cseq = Some(self.cseq);
                let credentials = Credentials {
                    username: self.user.clone(),
                    password: self.config.password.clone(),
                };
                let uri = self.uri();
                let cnonce = hex_id(rng, 6);
                let authorization = challenge.answer(&credentials, "REGISTER", &uri, &cnonce, 1);
                let request = self.request(self.config.expires, Some(authorization), rng);
                out.request(self.config.registrar, request);
            }
            status => out.events.push_back(PeerEvent::RegisterRefused { status }),
        }
    }

    /// Unregisters (Expires: 0), unanswered: the phone is going away.
    pub(super) fn unregister(&mut self, rng: &mut StdRng, out: &mut Outbox) {
        self.cseq += 1;
        let request = self.request(Duration::ZERO, None, rng);
        out.request(self.config.registrar, request);
    }

    fn uri(&self) -> String {
        format!("sip:{}", self.config.registrar)
    }

    fn request(
        &self,
        expires: Duration,
        authorization: Option<String>,
        rng: &mut StdRng,
    ) -> Request {
        let (local, user) = (self.local, &self.user);
        let address_of_record = format!("<sip:{user}@{}>", self.config.registrar.ip());
        let branch = hex_id(rng, 10);
        let mut request = Request::new(Method::Register, self.uri())
            .with_header(
                "Via",
                format!("SIP/2.0/UDP {local};branch={BRANCH_COOKIE}{branch};rport"),
            )
            .with_header("Max-Forwards", "70")
            .with_header("From", format!("{address_of_record};tag={}", self.from_tag))
            .with_header("To", address_of_record)
            .with_header("Call-ID", self.call_id.clone())
            .with_header("CSeq", format!("{} REGISTER", self.cseq))
            .with_header("Contact", format!("<sip:{user}@{local}>"))
            .with_header("Expires", expires.as_secs().to_string())
            .with_header("User-Agent", "Outpost simulated phone");
        if let Some(authorization) = authorization {
            request.headers.push("Authorization", authorization);
        }
        request
    }
}
