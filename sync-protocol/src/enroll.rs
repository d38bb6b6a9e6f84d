//! Enrollment messages (on [`ENROLL_ALPN`](crate::ENROLL_ALPN)) and the proofs that bind them
//! to the one-time code.
//!
//! The appliance does not know the hub's CA yet, so it cannot tell the real hub from a
//! man in the middle during the TLS handshake. The code therefore never travels: each side
//! proves it knows the code with an HMAC keyed by it, over the TLS channel binding (an
//! exporter secret, different on each leg of a relayed connection) and the certificates
//! exchanged. A relay learns neither the code nor a proof it could replay on its own
//! connection.
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

fn mac(code: &str, role: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    let normalized = normalize_code(code);
    // HMAC takes keys of any length; `new_from_slice` only fails for fixed-size MACs.
    let mut mac = match Hmac::<Sha256>::new_from_slice(normalized.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 accepts keys of any length"),
    };
    mac.update(role);
    for part in parts {
        // Length-prefixed, so that no two different inputs feed the same bytes.
        mac.update(&(part.len() as u64).to_le_bytes());
        mac.update(part);
    }
    mac
}

/// The appliance's proof that it holds `code`, bound to this connection and its CSR.
pub fn request_proof(code: &str, channel_binding: &[u8], csr_der: &[u8]) -> [u8; 32] {
    mac(code, b"outpost-enroll request", &[channel_binding, csr_der]).finalize().into_bytes().into()
}

/// Constant-time check of a [`request_proof`].
pub fn verify_request_proof(code: &str, channel_binding: &[u8], csr_der: &[u8], proof: &[u8; 32]) -> bool {
    mac(code, b"outpost-enroll request", &[channel_binding, csr_der]).verify_slice(proof).is_ok()
}

/// The hub's proof that it issued `code`, bound to this connection and the certificates.
pub fn response_proof(code: &str, channel_binding: &[u8], ca_cert_der: &[u8], site_cert_der: &[u8]) -> [u8; 32] {
    mac(code, b"outpost-enroll response", &[channel_binding, ca_cert_der, site_cert_der])
        .finalize()
        .into_bytes()
        .into()
}

/// Constant-time check of a [`response_proof`].
pub fn verify_response_proof(
    code: &str,
    channel_binding: &[u8],
    ca_cert_der: &[u8],
    site_cert_der: &[u8],
    proof: &[u8; 32],
) -> bool {
    mac(code, b"outpost-enroll response", &[channel_binding, ca_cert_der, site_cert_der])
        .verify_slice(proof)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_verify_only_with_the_same_code_binding_and_content() {
        let proof = request_proof("ab-cd 12", b"binding", b"csr");
        assert!(verify_request_proof("ABCD12", b"binding", b"csr", &proof));
        assert!(!verify_request_proof("ABCD13", b"binding", b"csr", &proof));
        assert!(!verify_request_proof("ABCD12", b"other leg", b"csr", &proof));
        assert!(!verify_request_proof("ABCD12", b"binding", b"csr2", &proof));
        let answer = response_proof("ABCD12", b"binding", b"ca", b"site");
        assert!(verify_response_proof("abcd12", b"binding", b"ca", b"site", &answer));
        // A request proof is not a response proof: the roles are part of the MAC input.
        assert!(!verify_response_proof("ABCD12", b"binding", b"csr", b"", &proof));
        assert!(!verify_response_proof("ABCD12", b"binding", b"cas", b"ite", &answer));
    }
}
