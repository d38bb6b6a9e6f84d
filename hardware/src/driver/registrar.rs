//! The registrar for the agents' phones: digest challenges, bindings and their expiry,
//! lockout after repeated failed logins, and the provisioned extensions.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use sip_core::auth::{self, Authorization, NonceCheck};
use sip_core::{NameAddr, Request, Response, SipUri};
use tracing::{debug, info, warn};

use super::{AuthFailures, Driver, Registration, new_tag, unix_secs};
use crate::{ExtensionConfig, LineEvent};

/// The registrar's digest realm.
const REALM: &str = "outpost";
/// Registrar nonces are good for this long; older ones get `stale=true`.
const NONCE_MAX_AGE_SECS: u64 = 300;
/// Longest registration granted; phones asking for more are told this.
const MAX_REGISTRATION_SECS: u32 = 3600;

impl Driver {
    pub(super) fn set_extensions(&mut self, extensions: Vec<ExtensionConfig>) {
        self.extensions = extensions
            .into_iter()
            .map(|ext| (ext.extension, ext.password))
            .collect();
        let removed: Vec<String> = self
            .registrations
            .keys()
            .filter(|extension| !self.extensions.contains_key(*extension))
            .cloned()
            .collect();
        for extension in removed {
            info!(%extension, "extension no longer provisioned; registration dropped");
            self.unregister(&extension);
        }
    }

    pub(super) fn challenge(&self, request: &Request, stale: bool) -> Response {
        let nonce = self.nonces.issue(unix_secs());
        Response::to_request(request, 401, "Unauthorized", Some(&new_tag())).with_header(
            "WWW-Authenticate",
            auth::challenge_header(REALM, &nonce, auth::Algorithm::Md5, stale),
        )
    }

    pub(super) fn on_register(&mut self, request: &Request, source: SocketAddr) -> Response {
        let to_user = request
            .headers
            .get("To")
            .and_then(|to| NameAddr::parse(to).ok())
            .and_then(|to| SipUri::parse(&to.uri).ok())
            .and_then(|uri| uri.user);
        let Some(extension) = to_user else {
            warn!(%source, "REGISTER without a user in To refused");
            return Response::to_request(
                request,
                400,
                "Bad Request (To has no extension)",
                Some(&new_tag()),
            );
        };
        let now = Instant::now();
        if let Some(failures) = self.auth_failures.get(&source.ip())
            && failures.locked_until.is_some_and(|until| until > now)
        {
            warn!(%source, %extension, "REGISTER refused: this address is locked out after repeated failed logins");
            return Response::to_request(request, 403, "Forbidden (locked out)", Some(&new_tag()));
        }
        let Some(authorization) = request.headers.get("Authorization") else {
            return self.challenge(request, false);
        };
        let authorization = match Authorization::parse(authorization) {
            Ok(authorization) => authorization,
            Err(error) => {
                warn!(%source, %extension, %error, "REGISTER with an unusable Authorization header");
                return self.challenge(request, false);
            }
        };
        match self
            .nonces
            .check(&authorization.nonce, unix_secs(), NONCE_MAX_AGE_SECS)
        {
            NonceCheck::Valid => {}
            NonceCheck::Stale => return self.challenge(request, true),
            NonceCheck::Invalid => return self.challenge(request, false),
        }
        // Unknown extensions and wrong passwords get the same answer, so the registrar does
        // not reveal which extensions exist.
        let verified = self.extensions.get(&extension).is_some_and(|password| {
            authorization.username == extension
                && authorization.realm == REALM
                && authorization.verify("REGISTER", password)
        });
        if !verified {
            warn!(%source, %extension, "REGISTER refused: unknown extension or wrong password");
            self.note_auth_failure(source.ip(), now);
            return Response::to_request(request, 403, "Forbidden", Some(&new_tag()));
        }
        self.auth_failures.remove(&source.ip());

        self.bind(request, extension, source)
    }

    /// A verified REGISTER: binds, refreshes, removes or reports the extension's contact.
    fn bind(&mut self, request: &Request, extension: String, source: SocketAddr) -> Response {
        let contacts: Vec<&str> = request
            .headers
            .get_all("Contact")
            .flat_map(sip_core::message::split_top_level_commas)
            .collect();
        let header_expires = request
            .headers
            .get("Expires")
            .and_then(|value| value.trim().parse::<u32>().ok());
        let ok = Response::to_request(request, 200, "OK", Some(&new_tag()));
        if contacts.first() == Some(&"*") {
            self.unregister(&extension);
            return ok;
        }
        let Some(contact) = contacts
            .first()
            .and_then(|contact| NameAddr::parse(contact).ok())
        else {
            // A query: report the current binding.
            return match self.registrations.get(&extension) {
                Some(registration) => {
                    let remaining = registration
                        .expires_at
                        .saturating_duration_since(Instant::now())
                        .as_secs();
                    ok.with_header(
                        "Contact",
                        format!("<{}>;expires={remaining}", registration.contact_uri),
                    )
                }
                None => ok,
            };
        };
        let expires = contact
            .param("expires")
            .and_then(|value| value.parse::<u32>().ok())
            .or(header_expires)
            .unwrap_or(MAX_REGISTRATION_SECS)
            .min(MAX_REGISTRATION_SECS);
        if expires == 0 {
            // Only the binding it names goes: an agent's old phone signing off must not
            // unregister the phone the extension moved to.
            let names_current = self
                .registrations
                .get(&extension)
                .is_some_and(|registration| registration.contact_uri == contact.uri);
            if names_current {
                self.unregister(&extension);
            } else {
                debug!(%extension, contact = %contact.uri, "unregister of a binding no longer held; current one kept");
            }
            return ok;
        }
        // Route to the Contact when it names an address; otherwise (a hostname) to where the
        // REGISTER came from.
        let target = SipUri::parse(&contact.uri)
            .ok()
            .and_then(|uri| uri.socket_addr())
            .unwrap_or(source);
        self.registrations.insert(
            extension.clone(),
            Registration {
                contact_uri: contact.uri.clone(),
                target,
                expires_at: Instant::now() + Duration::from_secs(u64::from(expires)),
            },
        );
        self.publish_registrations();
        info!(%extension, %target, expires, "extension registered");
        self.emit(LineEvent::ExtensionRegistered {
            extension,
            contact: target,
        });
        ok.with_header("Contact", format!("<{}>;expires={expires}", contact.uri))
    }

    pub(super) fn note_auth_failure(&mut self, ip: IpAddr, now: Instant) {
        let policy = self.lockout;
        let failures = self.auth_failures.entry(ip).or_insert(AuthFailures {
            count: 0,
            window_start: now,
            locked_until: None,
        });
        if now.duration_since(failures.window_start) > policy.window {
            failures.count = 0;
            failures.window_start = now;
        }
        failures.count += 1;
        if failures.count >= policy.max_failures {
            warn!(%ip, failures = failures.count, lockout_secs = policy.lockout.as_secs(), "too many failed registrar logins; locking the address out");
            failures.locked_until = Some(now + policy.lockout);
            failures.count = 0;
            failures.window_start = now;
        }
    }

    pub(super) fn unregister(&mut self, extension: &str) {
        if self.registrations.remove(extension).is_some() {
            self.publish_registrations();
            info!(%extension, "extension unregistered");
            self.emit(LineEvent::ExtensionUnregistered {
                extension: extension.to_string(),
            });
        }
    }

    pub(super) fn publish_registrations(&self) {
        let snapshot: BTreeMap<String, SocketAddr> = self
            .registrations
            .iter()
            .map(|(extension, registration)| (extension.clone(), registration.target))
            .collect();
        // A poisoned lock only means another thread panicked mid-read; the map is still whole.
        *self
            .shared
            .registered
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = snapshot;
    }
}
