//! Trunks: choosing one with a free channel, failover to the next, OPTIONS health checks,
//! the box's own REGISTER at a carrier, and the status the handle reads.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip_core::auth::Credentials;
use sip_core::transaction::{RetransmitTimer, TimerAction};
use sip_core::{Method, NameAddr, Request, Response};
use tracing::{info, warn};

use super::{Driver, TrunkRegState, best_challenge, new_branch, new_call_id, new_tag};
use crate::media::MediaCommand;
use crate::{CallId, TrunkConfig, TrunkOptions, TrunkStatus};

/// Our own binding's expiry in a REGISTER's 2xx (the carrier lists every binding of the
/// account), never more than we asked for: a registrar may shorten it only, and a huge value
/// must not push the refresh past the end of time.
fn granted_expiry(response: &Response, ours: &str, asked: Duration) -> u64 {
    response
        .headers
        .get_all("Contact")
        .flat_map(sip_core::message::split_top_level_commas)
        .filter_map(|contact| NameAddr::parse(contact).ok())
        .filter(|contact| contact.uri.contains(ours))
        .find_map(|contact| {
            contact
                .param("expires")
                .and_then(|value| value.parse::<u64>().ok())
        })
        .or_else(|| {
            response
                .headers
                .get("Expires")
                .and_then(|value| value.trim().parse().ok())
        })
        .unwrap_or(asked.as_secs())
        .min(asked.as_secs())
        .max(2)
}

impl Driver {
    pub(super) fn trunk_options(&self, name: &str) -> TrunkOptions {
        self.trunk_options.get(name).cloned().unwrap_or_default()
    }

    pub(super) fn active_calls_on(&self, trunk: &str) -> usize {
        self.calls
            .values()
            .filter(|call| call.trunk == trunk)
            .count()
    }

    /// The trunk to use: `first`, else its failover trunks in order; untried, with a free
    /// channel, alive preferred. `Err(503)` when none has a free channel.
    pub(super) fn pick_trunk(&self, first: &str, tried: &[String]) -> Result<TrunkConfig, u16> {
        let mut candidates = vec![first.to_string()];
        candidates.extend(self.trunk_options(first).failover);
        let usable: Vec<&TrunkConfig> = candidates
            .iter()
            .filter(|name| !tried.contains(name))
            .filter_map(|name| self.trunks.get(name))
            .filter(|trunk| self.active_calls_on(&trunk.name) < trunk.channels as usize)
            .collect();
        let alive = usable.iter().find(|trunk| {
            self.trunk_states
                .get(&trunk.name)
                .is_none_or(|state| state.alive)
        });
        alive
            .or(usable.first())
            .map(|trunk| (*trunk).clone())
            .ok_or(503)
    }

    /// Where requests for `trunk` go: its outbound proxy, else the trunk itself.
    pub(super) fn trunk_destination(&self, trunk: &TrunkConfig) -> SocketAddr {
        self.trunk_options(&trunk.name)
            .outbound_proxy
            .unwrap_or(trunk.address)
    }

    /// After the carrier failed the call with `status`: dials the next failover trunk.
    /// Returns false when there is none left (the caller then ends the call).
    pub(super) fn try_failover(&mut self, call_id: CallId, status: u16) -> bool {
        let Some(call) = self.calls.get(&call_id) else {
            return false;
        };
        if call.answered {
            return false;
        }
        let first = call.request.trunk.clone();
        let tried = call.tried.clone();
        let Ok(trunk) = self.pick_trunk(&first, &tried) else {
            return false;
        };
        let now = Instant::now();
        let (request, offer, ring_deadline) =
            (call.request.clone(), call.offer.clone(), call.ring_deadline);
        if ring_deadline <= now {
            return false;
        }
        info!(call = call_id.0, status, from = %tried.join(","), to = %trunk.name, "failing over to the next trunk");
        let sip_call_id =
            self.start_customer_leg(call_id, &trunk, &request, &offer, ring_deadline, now);
        if let Some(call) = self.calls.get_mut(&call_id) {
            // The failed trunk's early media (if any) is gone with it.
            call.media.send(MediaCommand::NewCustomerLeg);
            call.codec = None;
            call.customer = sip_call_id;
            call.trunk = trunk.name.clone();
            call.tried.push(trunk.name);
        }
        self.publish_trunks();
        true
    }

    pub(super) fn set_trunk_alive(&mut self, name: &str, alive: bool) {
        if let Some(state) = self.trunk_states.get_mut(name)
            && state.alive != alive
        {
            state.alive = alive;
            if alive {
                info!(trunk = %name, "trunk answers again; marked alive");
            } else {
                warn!(trunk = %name, "trunk does not answer; marked dead");
            }
            self.publish_trunks();
        }
    }

    pub(super) fn trunk_by_peer(&self, peer: SocketAddr) -> Option<String> {
        self.trunks
            .values()
            .find(|trunk| trunk.address == peer || self.trunk_destination(trunk) == peer)
            .map(|trunk| trunk.name.clone())
    }

    pub(super) fn publish_trunks(&self) {
        let snapshot: BTreeMap<String, TrunkStatus> = self
            .trunks
            .values()
            .map(|trunk| {
                let state = self.trunk_states.get(&trunk.name);
                let status = TrunkStatus {
                    name: trunk.name.clone(),
                    alive: state.is_none_or(|state| state.alive),
                    registered: state
                        .and_then(|state| state.registration.as_ref())
                        .map(|registration| registration.registered),
                    active_calls: self.active_calls_on(&trunk.name) as u32,
                };
                (trunk.name.clone(), status)
            })
            .collect();
        *self
            .shared
            .trunks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = snapshot;
    }

    /// OPTIONS health checks and REGISTER refreshes toward trunks.
    pub(super) fn tick_trunks(&mut self, now: Instant) {
        self.auth_failures.retain(|_, failures| {
            failures.locked_until.is_some_and(|until| until > now)
                || now.duration_since(failures.window_start) <= self.lockout.window
        });
        let names: Vec<String> = self.trunk_states.keys().cloned().collect();
        for name in names {
            let Some(trunk) = self.trunks.get(&name).cloned() else {
                continue;
            };
            let options = self.trunk_options(&name);
            let destination = self.trunk_destination(&trunk);
            if let Some(interval) = options.health_check
                && let Some(state) = self.trunk_states.get(&name)
                && state.next_check.is_some_and(|at| at <= now)
            {
                if state.options_pending.is_some() {
                    self.set_trunk_alive(&name, false);
                }
                let call_id = new_call_id(&self.local.ip().to_string());
                let mut options_request =
                    Request::new(Method::Options, format!("sip:{}", trunk.domain))
                        .with_header("Via", self.via(destination, &new_branch()))
                        .with_header("Max-Forwards", "70")
                        .with_header(
                            "From",
                            format!("<sip:outpost@{}>;tag={}", trunk.domain, new_tag()),
                        )
                        .with_header("To", format!("<sip:{}>", trunk.domain))
                        .with_header("Call-ID", call_id.clone())
                        .with_header("CSeq", "1 OPTIONS")
                        .with_header("Contact", self.contact(destination))
                        .with_header("User-Agent", "Outpost");
                if let Some(proxy) = options.outbound_proxy {
                    options_request
                        .headers
                        .push("Route", format!("<sip:{proxy};lr>"));
                }
                self.send_to(&options_request.to_bytes(), destination);
                if let Some(state) = self.trunk_states.get_mut(&name) {
                    state.options_pending = Some(call_id);
                    state.next_check = Some(now + interval);
                }
            }
            self.tick_trunk_registration(&trunk, &options, destination, now);
        }
    }

    pub(super) fn tick_trunk_registration(
        &mut self,
        trunk: &TrunkConfig,
        options: &TrunkOptions,
        destination: SocketAddr,
        now: Instant,
    ) {
        let reliable = self.is_tcp(destination);
        let Some(mut registration) = self
            .trunk_states
            .get_mut(&trunk.name)
            .and_then(|state| state.registration.take())
        else {
            return;
        };
        let mut gave_up = false;
        if let Some((bytes, timer)) = registration.in_flight.as_mut() {
            match timer.poll(now) {
                TimerAction::Retransmit if !reliable => self.send_to(bytes, destination),
                TimerAction::Retransmit | TimerAction::WaitUntil(_) => {}
                TimerAction::GiveUp => gave_up = true,
            }
        }
        if gave_up {
            warn!(trunk = %trunk.name, "no answer to REGISTER within 32 s; retrying in 30 s");
            registration.in_flight = None;
            registration.registered = false;
            registration.next_at = now + Duration::from_secs(30);
        }
        if registration.in_flight.is_none() && registration.next_at <= now {
            registration.auth_attempted = false;
            self.send_trunk_register(trunk, options, destination, &mut registration, None, now);
        }
        if let Some(state) = self.trunk_states.get_mut(&trunk.name) {
            state.registration = Some(registration);
        }
        self.publish_trunks();
    }

    pub(super) fn send_trunk_register(
        &self,
        trunk: &TrunkConfig,
        options: &TrunkOptions,
        destination: SocketAddr,
        registration: &mut TrunkRegState,
        authorization: Option<(&str, String)>,
        now: Instant,
    ) {
        registration.cseq += 1;
        let mut register = Request::new(Method::Register, format!("sip:{}", trunk.domain))
            .with_header("Via", self.via(destination, &new_branch()))
            .with_header("Max-Forwards", "70")
            .with_header(
                "From",
                format!(
                    "<sip:{}@{}>;tag={}",
                    registration.user, trunk.domain, registration.from_tag
                ),
            )
            .with_header(
                "To",
                format!("<sip:{}@{}>", registration.user, trunk.domain),
            )
            .with_header("Call-ID", registration.call_id.clone())
            .with_header("CSeq", format!("{} REGISTER", registration.cseq))
            .with_header(
                "Contact",
                if self.is_tcp(destination) {
                    format!("<sip:{}@{};transport=tcp>", registration.user, self.local)
                } else {
                    format!("<sip:{}@{}>", registration.user, self.local)
                },
            )
            .with_header("Expires", registration.expires.as_secs().to_string())
            .with_header("User-Agent", "Outpost");
        if let Some(proxy) = options.outbound_proxy {
            register.headers.push("Route", format!("<sip:{proxy};lr>"));
        }
        if let Some((name, value)) = authorization {
            register.headers.push(name, value);
        }
        let bytes = register.to_bytes();
        self.send_to(&bytes, destination);
        registration.in_flight = Some((bytes, RetransmitTimer::new(now, false)));
    }

    /// Handles a response to a trunk OPTIONS or REGISTER; false if it is not one of ours.
    pub(super) fn on_trunk_response(&mut self, response: &Response, method: &Method) -> bool {
        let call_id = response.call_id();
        let names: Vec<String> = self.trunk_states.keys().cloned().collect();
        for name in names {
            let Some(state) = self.trunk_states.get_mut(&name) else {
                continue;
            };
            if *method == Method::Options && state.options_pending.as_deref() == Some(call_id) {
                state.options_pending = None;
                // Any answer (even 404 or 405) proves the trunk is reachable.
                self.set_trunk_alive(&name, true);
                return true;
            }
            let is_ours = state
                .registration
                .as_ref()
                .is_some_and(|registration| registration.call_id == call_id);
            if *method != Method::Register || !is_ours {
                continue;
            }
            if response.status < 200 {
                return true;
            }
            let Some(mut registration) = state.registration.take() else {
                return true;
            };
            let Some(trunk) = self.trunks.get(&name).cloned() else {
                return true;
            };
            let options = self.trunk_options(&name);
            let destination = self.trunk_destination(&trunk);
            let now = Instant::now();
            let current = response
                .cseq()
                .is_ok_and(|cseq| cseq.number == registration.cseq);
            if current {
                registration.in_flight = None;
                match response.status {
                    200..=299 => {
                        // Our own binding's expiry (the carrier lists every binding of the
                        // account), never more than we asked for: a registrar may shorten it
                        // only, and a huge value must not push the refresh past the end of time.
                        let granted =
                            granted_expiry(response, &self.local.to_string(), registration.expires);
                        if !registration.registered {
                            info!(trunk = %name, granted, "registered at the trunk");
                        }
                        registration.registered = true;
                        registration.next_at = now + Duration::from_secs(granted) / 2;
                    }
                    401 | 407 if !registration.auth_attempted => {
                        let (challenge_header, answer_header) = if response.status == 401 {
                            ("WWW-Authenticate", "Authorization")
                        } else {
                            ("Proxy-Authenticate", "Proxy-Authorization")
                        };
                        match (
                            best_challenge(response, challenge_header),
                            &trunk.username,
                            &trunk.password,
                        ) {
                            (Some(Ok(challenge)), Some(username), Some(password)) => {
                                registration.auth_attempted = true;
                                let credentials = Credentials {
                                    username: username.clone(),
                                    password: password.clone(),
                                };
                                let value = challenge.answer(
                                    &credentials,
                                    "REGISTER",
                                    &format!("sip:{}", trunk.domain),
                                    &new_tag(),
                                    1,
                                );
                                self.send_trunk_register(
                                    &trunk,
                                    &options,
                                    destination,
                                    &mut registration,
                                    Some((answer_header, value)),
                                    now,
                                );
                            }
                            _ => {
                                warn!(trunk = %name, status = response.status, "the trunk asks for credentials the configuration does not have (or a challenge we cannot answer); retrying in 60 s");
                                registration.registered = false;
                                registration.next_at = now + Duration::from_secs(60);
                            }
                        }
                    }
                    status => {
                        warn!(trunk = %name, status, "the trunk refused REGISTER; retrying in 60 s");
                        registration.registered = false;
                        registration.next_at = now + Duration::from_secs(60);
                    }
                }
            }
            if let Some(state) = self.trunk_states.get_mut(&name) {
                state.registration = Some(registration);
            }
            self.publish_trunks();
            return true;
        }
        false
    }
}
