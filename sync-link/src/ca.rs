//! The hub's certificate authority: created on the hub's first start, it signs one
//! certificate per enrolled site (`site-<id>`) and the hub's own server certificate
//! (`outpost-hub`).
//!
//! Files in the CA directory: `ca.key` (PKCS#8 PEM, mode 0600) and `ca.crt` (PEM). The
//! server certificate is issued afresh with a new key at each start; only the CA persists.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use sync_protocol::SiteId;

use crate::HUB_SERVER_NAME;

/// Why the CA could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// A CA file or directory could not be read or written.
    #[error("{path}: {source}; check the hub's data directory and its permissions")]
    Io { path: PathBuf, source: std::io::Error },
    /// A CA file exists but does not hold what it should.
    #[error("{path}: {detail}; restore it from a backup (a new CA would orphan every enrolled site)")]
    Corrupt { path: PathBuf, detail: String },
    /// Key or certificate generation failed.
    #[error("cannot generate the CA: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Why a site certificate could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The certificate signing request does not parse or its signature is wrong.
    #[error("the appliance's certificate request is invalid: {0}")]
    BadRequest(rcgen::Error),
    /// Signing failed.
    #[error("cannot sign the certificate: {0}")]
    Sign(rcgen::Error),
}

/// The hub's CA and the server certificate it issued for this run.
pub struct HubCa {
    issuer: Issuer<'static, KeyPair>,
    ca_cert_der: CertificateDer<'static>,
    ca_cert_pem: String,
    server_cert_der: CertificateDer<'static>,
    server_key_der: Vec<u8>,
}

impl std::fmt::Debug for HubCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubCa").field("fingerprint", &self.fingerprint()).finish_non_exhaustive()
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> CaError + '_ {
    move |source| CaError::Io { path: path.to_owned(), source }
}

/// Write a file readable by its owner only (a private key), atomically.
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Write a public file atomically.
pub(crate) fn write_public(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

/// Decode the first certificate of a PEM text.
pub(crate) fn cert_from_pem(pem: &str) -> Result<CertificateDer<'static>, String> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|error| format!("not a PEM certificate ({error})"))
}

pub(crate) fn cert_to_pem(der: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in text.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

fn validity(params: &mut CertificateParams, years: i64) {
    let now = time_now();
    // An hour of slack: a site's clock may run a little behind HQ's.
    params.not_before = now - rcgen_duration_hours(1);
    params.not_after = now + rcgen_duration_hours(24 * 365 * years);
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn rcgen_duration_hours(hours: i64) -> time::Duration {
    time::Duration::hours(hours)
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // Positive and without a leading zero byte, as DER integers want.
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::from_slice(&bytes)
}

impl HubCa {
    /// Load the CA from `dir`, creating it (and the directory) on first start.
    pub fn load_or_create(dir: &Path) -> Result<HubCa, CaError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let key_path = dir.join("ca.key");
        let cert_path = dir.join("ca.crt");
        let (key, cert_der) = if key_path.exists() || cert_path.exists() {
            let key_pem = std::fs::read_to_string(&key_path).map_err(io_error(&key_path))?;
            let key = KeyPair::from_pem(&key_pem)
                .map_err(|error| CaError::Corrupt { path: key_path.clone(), detail: error.to_string() })?;
            let cert_pem = std::fs::read_to_string(&cert_path).map_err(io_error(&cert_path))?;
            let cert_der =
                cert_from_pem(&cert_pem).map_err(|detail| CaError::Corrupt { path: cert_path.clone(), detail })?;
            (key, cert_der)
        } else {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::default();
            let mut name = DistinguishedName::new();
            name.push(DnType::CommonName, "Outpost HQ CA");
            params.distinguished_name = name;
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages =
                vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
            params.serial_number = Some(random_serial());
            validity(&mut params, 30);
            let cert = params.self_signed(&key)?;
            write_private(&key_path, key.serialize_pem().as_bytes()).map_err(io_error(&key_path))?;
            write_public(&cert_path, cert.pem().as_bytes()).map_err(io_error(&cert_path))?;
            tracing::info!(dir = %dir.display(), "created the hub's certificate authority");
            (key, cert.der().clone())
        };
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)
            .map_err(|error| CaError::Corrupt { path: cert_path.clone(), detail: error.to_string() })?;

        let server_key = KeyPair::generate()?;
        let mut server_params = CertificateParams::new(vec![HUB_SERVER_NAME.to_owned()])?;
        server_params.distinguished_name.push(DnType::CommonName, HUB_SERVER_NAME);
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server_params.serial_number = Some(random_serial());
        validity(&mut server_params, 2);
        let server_cert = server_params.signed_by(&server_key, &issuer)?;

        Ok(HubCa {
            ca_cert_pem: cert_to_pem(&cert_der),
            ca_cert_der: cert_der,
            issuer,
            server_cert_der: server_cert.der().clone(),
            server_key_der: server_key.serialize_der(),
        })
    }

    /// The CA certificate, PEM.
    pub fn ca_cert_pem(&self) -> String {
        self.ca_cert_pem.clone()
    }

    /// SHA-256 of the CA certificate, as colon-separated hex pairs: what a technician
    /// compares with the appliance's `ca.crt`.
    pub fn fingerprint(&self) -> String {
        fingerprint_of(&self.ca_cert_der)
    }

    pub(crate) fn ca_cert_der(&self) -> &CertificateDer<'static> {
        &self.ca_cert_der
    }

    pub(crate) fn server_chain(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key_der.clone()));
        (vec![self.server_cert_der.clone(), self.ca_cert_der.clone()], key)
    }

    /// Sign a client certificate for `site`, for the public key of `csr_der`. Whatever
    /// names the request asks for are ignored: the hub decides who the key belongs to.
    pub(crate) fn issue_site_cert(&self, site: SiteId, csr_der: &[u8]) -> Result<CertificateDer<'static>, IssueError> {
        let request = CertificateSigningRequestParams::from_der(&csr_der.to_vec().into())
            .map_err(IssueError::BadRequest)?;
        let name = site_name(site);
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name.clone());
        params.subject_alt_names =
            vec![SanType::DnsName(name.try_into().map_err(IssueError::Sign)?)];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(random_serial());
        validity(&mut params, 20);
        let cert = params.signed_by(&request.public_key, &self.issuer).map_err(IssueError::Sign)?;
        Ok(cert.der().clone())
    }
}

/// The certificate subject of a site: `site-<id>`.
pub(crate) fn site_name(site: SiteId) -> String {
    format!("site-{site}")
}

pub(crate) fn fingerprint_of(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let pairs: Vec<String> = digest.iter().map(|byte| format!("{byte:02X}")).collect();
    pairs.join(":")
}

/// The site id a certificate names (`CN=site-<id>`), if it names one.
pub(crate) fn site_of_cert(der: &[u8]) -> Option<SiteId> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let common_name = cert.subject().iter_common_name().next()?.as_str().ok()?;
    common_name.strip_prefix("site-")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_loaded_with_a_private_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let first = HubCa::load_or_create(dir.path()).unwrap();
        let again = HubCa::load_or_create(dir.path()).unwrap();
        assert_eq!(first.fingerprint(), again.fingerprint());
        assert_eq!(first.ca_cert_pem(), again.ca_cert_pem());
        assert_eq!(first.fingerprint().len(), 32 * 3 - 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("ca.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn site_certificates_name_the_site_whatever_the_request_asked() {
        let dir = tempfile::tempdir().unwrap();
        let ca = HubCa::load_or_create(dir.path()).unwrap();
        let key = KeyPair::generate().unwrap();
        let csr = CertificateParams::new(vec!["site-999".to_owned()]).unwrap().serialize_request(&key).unwrap();
        let cert = ca.issue_site_cert(42, csr.der()).unwrap();
        assert_eq!(site_of_cert(&cert), Some(42));
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert).unwrap();
        let (_, ca_parsed) = x509_parser::parse_x509_certificate(ca.ca_cert_der()).unwrap();
        parsed.verify_signature(Some(ca_parsed.public_key())).unwrap();
        assert!(matches!(ca.issue_site_cert(1, b"not a csr"), Err(IssueError::BadRequest(_))));
    }

    #[test]
    fn pem_round_trips() {
        let der = vec![1u8, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255];
        for len in 0..der.len() {
            let slice = &der[..len];
            let pem = cert_to_pem(slice);
            use rustls_pki_types::pem::PemObject;
            if len > 0 {
                assert_eq!(CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().as_ref(), slice);
            }
        }
    }
}
