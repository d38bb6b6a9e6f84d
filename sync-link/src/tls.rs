//! The link's TLS and QUIC transport settings, built once per endpoint.
//!
//! - The hub's server configuration offers both ALPNs. Its client verifier accepts only
//!   certificates chained to the hub's CA, and lets a connection without a certificate
//!   through the handshake because enrollment happens before the appliance has one; the
//!   server refuses any *sync* connection that presents none.
//! - The appliance's sync configuration trusts only its `ca.crt` and checks the name
//!   [`HUB_SERVER_NAME`](crate::HUB_SERVER_NAME).
//! - The enrollment configuration checks the handshake's signatures but not the hub's
//!   certificate: the appliance has no CA yet, and trust comes from the code-keyed proofs
//!   of `sync_protocol::enroll` instead.

use std::sync::Arc;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use sync_protocol::{sync_alpns, ENROLL_ALPN};

use crate::LinkTuning;
use crate::ca::HubCa;

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Keep-alives well inside the idle timeout, so a quiet link stays up through NAT and a
/// dead one is noticed within the timeout.
pub(crate) fn transport(tuning: &LinkTuning) -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(tuning.keep_alive));
    // Falls back to quinn's default only for an idle timeout beyond a VarInt of ms.
    if let Ok(idle) = quinn::IdleTimeout::try_from(tuning.idle_timeout) {
        transport.max_idle_timeout(Some(idle));
    }
    // Batch chunks are large frames: a wider stream window keeps a fast link busy.
    transport.stream_receive_window(quinn::VarInt::from_u32(8 * 1024 * 1024));
    transport.receive_window(quinn::VarInt::from_u32(16 * 1024 * 1024));
    transport.send_window(16 * 1024 * 1024);
    Arc::new(transport)
}

pub(crate) fn server_config(ca: &HubCa, tuning: &LinkTuning) -> Result<quinn::ServerConfig, String> {
    let provider = provider();
    let mut roots = RootCertStore::empty();
    roots.add(ca.ca_cert_der().clone()).map_err(|error| format!("the CA certificate is unusable: {error}"))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|error| format!("cannot build the client verifier: {error}"))?;
    let (chain, key) = ca.server_chain();
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|error| error.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|error| format!("the server certificate is unusable: {error}"))?;
    // Every sync version this hub serves, newest first (rustls picks the first of ours the
    // site offers), then enrollment.
    tls.alpn_protocols = sync_alpns();
    tls.alpn_protocols.push(ENROLL_ALPN.to_vec());
    let quic = QuicServerConfig::try_from(tls).map_err(|error| error.to_string())?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(transport(tuning));
    Ok(config)
}

pub(crate) fn sync_client_config(
    ca_cert: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    tuning: &LinkTuning,
) -> Result<quinn::ClientConfig, String> {
    sync_client_config_offering(ca_cert, chain, key, tuning, sync_alpns())
}

/// The sync client configuration offering exactly `alpns` (a box of an older release
/// offers only its own version).
pub(crate) fn sync_client_config_offering(
    ca_cert: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    tuning: &LinkTuning,
    alpns: Vec<Vec<u8>>,
) -> Result<quinn::ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    roots.add(ca_cert).map_err(|error| format!("ca.crt is unusable: {error}"))?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|error| error.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|error| format!("site.crt / site.key are unusable: {error}"))?;
    tls.alpn_protocols = alpns;
    client_config(tls, tuning)
}

pub(crate) fn enroll_client_config() -> Result<quinn::ClientConfig, String> {
    let provider = provider();
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|error| error.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ProofBoundHubCert { provider }))
        .with_no_client_auth();
    tls.alpn_protocols = vec![ENROLL_ALPN.to_vec()];
    client_config(tls, &LinkTuning::default())
}

fn client_config(tls: rustls::ClientConfig, tuning: &LinkTuning) -> Result<quinn::ClientConfig, String> {
    let quic = QuicClientConfig::try_from(tls).map_err(|error| error.to_string())?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(transport(tuning));
    Ok(config)
}

/// Accepts the hub's certificate unseen during enrollment. The handshake signatures are
/// still checked, so the exporter secret is bound to whoever holds the presented key; the
/// enrollment proofs then establish that this is the hub that issued the code.
#[derive(Debug)]
struct ProofBoundHubCert {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ProofBoundHubCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
