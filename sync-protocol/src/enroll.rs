//! Enrollment messages (on [`ENROLL_ALPN`](crate::ENROLL_ALPN)) and the proofs that bind them
//! to the one-time code.
//!
//! The appliance does not know the hub's CA yet, so it cannot tell the real hub from a
//! man in the middle during the TLS handshake. The code therefore never travels: each side
//! proves it knows the code with an HMAC keyed by its [`CodeKey`], over the TLS channel
//! binding (an exporter secret, different on each leg of a relayed connection) and the
//! certificates exchanged. A relay learns neither the code nor a proof it could replay on
//! its own connection.
//!
//! The key is derived from the code (not the code itself) so that the hub can keep the key
//! while the code is pending and never store the code: someone who reads the hub's database
//! later learns no code a technician typed, only keys of codes that are used, expired or
//! replaced (a pending one is as good as its code until it expires, which is why codes are
//! short-lived and single-use).
//!
//! 1. appliance → hub: [`EnrollRequest::Csr`] with its CSR and [`request_proof`].
//! 2. hub: finds the pending code that verifies the proof, consumes it, issues a certificate
//!    for `site-<id>` signed by its CA.
//! 3. hub → appliance: [`EnrollResponse::Issued`] with both certificates and
//!    [`response_proof`]; the appliance checks it before trusting the CA.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::messages::SiteId;

/// Label and length of the TLS exporter secret both sides feed into the proofs.
pub const CHANNEL_BINDING_LABEL: &[u8] = b"EXPORTER-outpost-enroll";
pub const CHANNEL_BINDING_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EnrollRequest {
    Csr {
        protocol_version: u32,
        /// PKCS#10 request signed with the appliance's fresh key.
        csr_der: Vec<u8>,
        /// [`request_proof`] over this connection's channel binding and `csr_der`.
        proof: [u8; 32],
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EnrollResponse {
    Issued {
        site_id: SiteId,
        site_cert_der: Vec<u8>,
        ca_cert_der: Vec<u8>,
        /// [`response_proof`] over the channel binding and both certificates.
        proof: [u8; 32],
    },
    /// The hub will not enroll this appliance; the reason is for the technician.
    Refused { reason: String },
}

/// The form of a code both sides key the HMAC with: technicians type codes with spaces,
/// dashes and mixed case, so those carry no meaning.
pub fn normalize_code(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// What the enrollment proofs are keyed with: HMAC-SHA256 of the normalized code under a
/// fixed label. The appliance derives it from the typed code; the hub stores it in place of
/// the code.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CodeKey([u8; 32]);

impl CodeKey {
    /// The key of `code` (typed in any case, with or without spaces and dashes).
    pub fn from_code(code: &str) -> CodeKey {
        let mut mac = new_hmac(b"outpost-enroll code key v1");
        mac.update(normalize_code(code).as_bytes());
        CodeKey(mac.finalize().into_bytes().into())
    }

    /// A key as the hub stored it.
    pub fn from_bytes(bytes: [u8; 32]) -> CodeKey {
        CodeKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for CodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // As good as a pending code: never in a log.
        f.write_str("CodeKey(..)")
    }
}

fn new_hmac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; `new_from_slice` only fails for fixed-size MACs.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 accepts keys of any length"),
    }
}

fn mac(key: &CodeKey, role: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    let mut mac = new_hmac(&key.0);
    mac.update(role);
    for part in parts {
        // Length-prefixed, so that no two different inputs feed the same bytes.
        mac.update(&(part.len() as u64).to_le_bytes());
        mac.update(part);
    }
    mac
}

/// The appliance's proof that it holds the code of `key`, bound to this connection and its CSR.
pub fn request_proof(key: &CodeKey, channel_binding: &[u8], csr_der: &[u8]) -> [u8; 32] {
    mac(key, b"outpost-enroll request", &[channel_binding, csr_der]).finalize().into_bytes().into()
}

/// Constant-time check of a [`request_proof`].
pub fn verify_request_proof(key: &CodeKey, channel_binding: &[u8], csr_der: &[u8], proof: &[u8; 32]) -> bool {
    mac(key, b"outpost-enroll request", &[channel_binding, csr_der]).verify_slice(proof).is_ok()
}

/// The hub's proof that it issued the code of `key`, bound to this connection and the
/// certificates.
pub fn response_proof(key: &CodeKey, channel_binding: &[u8], ca_cert_der: &[u8], site_cert_der: &[u8]) -> [u8; 32] {
    mac(key, b"outpost-enroll response", &[channel_binding, ca_cert_der, site_cert_der])
        .finalize()
        .into_bytes()
        .into()
}

/// Constant-time check of a [`response_proof`].
pub fn verify_response_proof(
    key: &CodeKey,
    channel_binding: &[u8],
    ca_cert_der: &[u8],
    site_cert_der: &[u8],
    proof: &[u8; 32],
) -> bool {
    mac(key, b"outpost-enroll response", &[channel_binding, ca_cert_der, site_cert_der])
        .verify_slice(proof)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_verify_only_with_the_same_code_binding_and_content() {
        let key = |code: &str| CodeKey::from_code(code);
        let proof = request_proof(&key("ab-cd 12"), b"binding", b"csr");
        assert!(verify_request_proof(&key("ABCD12"), b"binding", b"csr", &proof));
        assert!(!verify_request_proof(&key("ABCD13"), b"binding", b"csr", &proof));
        assert!(!verify_request_proof(&key("ABCD12"), b"other leg", b"csr", &proof));
        assert!(!verify_request_proof(&key("ABCD12"), b"binding", b"csr2", &proof));
        let answer = response_proof(&key("ABCD12"), b"binding", b"ca", b"site");
        assert!(verify_response_proof(&key("abcd12"), b"binding", b"ca", b"site", &answer));
        // A request proof is not a response proof: the roles are part of the MAC input.
        assert!(!verify_response_proof(&key("ABCD12"), b"binding", b"csr", b"", &proof));
        assert!(!verify_response_proof(&key("ABCD12"), b"binding", b"cas", b"ite", &answer));
    }

    #[test]
    fn the_key_is_derived_not_the_code() {
        let key = CodeKey::from_code("abcd-efgh-2345");
        assert_eq!(key, CodeKey::from_code("ABCD EFGH 2345"));
        assert_ne!(key, CodeKey::from_code("ABCD-EFGH-2346"));
        assert!(!key.as_bytes().windows(4).any(|w| w == b"ABCD"), "the code is not in its key");
        assert_eq!(CodeKey::from_bytes(*key.as_bytes()), key);
        assert_eq!(format!("{key:?}"), "CodeKey(..)");
        // Pinned (computed independently with Python's hmac module): hubs and boxes of
        // different releases must derive the same key from the same code.
        assert_eq!(
            hex_of(CodeKey::from_code("abcd-efgh-2345").as_bytes()),
            "4b5b0da6161599427fdf018618d6781e5639a138aabcf3a852c7aafc872c8bac"
        );
    }

    fn hex_of(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
