//! Sites (职场), their one-time enrollment codes, and the box that holds each site.
//!
//! - A code is shown once when minted and never stored: the store keeps only its
//!   [`CodeKey`] (derived from the code; the enrollment proofs are keyed by it, see
//!   `sync_protocol::enroll`). It lives [`DEFAULT_ENROLLMENT_CODE_TTL`] unless the hub was
//!   started with another lifetime, works once, and minting a new code for a site replaces
//!   (revokes) the site's older ones. The keys of used, expired and replaced codes are kept
//!   for [`CODE_MEMORY_SECONDS`] so that a technician is told which of these it was.
//! - A site is held by one box at a time: enrollment records the SHA-256 of the certificate
//!   it issues as the site's identity (`site_identities`), and the link lets only that
//!   certificate in. Enrolling another box for the site is refused until HQ retires the
//!   current identity; retiring wakes the site's link, which then closes the old box's
//!   connection.
//! - Sites enrolled before identities were kept have an identity without a certificate; the
//!   first certificate such a site presents is pinned as its identity.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rusqlite::{params, OptionalExtension, Transaction};
use sync_link::{EnrollRefusal, IssuedCert};
use sync_protocol::enroll::CodeKey;

use super::{is_unique_violation, now_unix, DbError, Store};

/// How long a fresh enrollment code stays valid unless the hub is told otherwise.
pub const DEFAULT_ENROLLMENT_CODE_TTL: Duration = Duration::from_secs(24 * 3600);

/// How long the keys of codes that can no longer enroll are offered to a proof, so that
/// the refusal can name the reason (used, expired, replaced) rather than "unknown".
pub const CODE_MEMORY_SECONDS: i64 = 30 * 24 * 3600;

/// A site as the console shows it.
#[derive(Debug, Clone, serde::Serialize)]
#[derive(utoipa::ToSchema)]
pub struct Site {
    pub id: i64,
    pub name: String,
    /// A box holds the site (an identity HQ has not retired).
    pub enrolled: bool,
    pub online: bool,
    /// Since when the link has been in its current state (unix seconds), if it ever connected:
    /// online since, or last seen.
    pub link_since: Option<i64>,
    /// The last down-log entry the site acknowledged.
    pub down_acked: i64,
    /// When the box holding the site enrolled.
    pub box_enrolled_at: Option<i64>,
    /// SHA-256 of the holding box's certificate, colon-separated hex pairs (upper case, as
    /// the appliance logs it); `None` for a box enrolled before the hub kept certificates,
    /// until its next connection.
    pub box_certificate: Option<String>,
    /// The sync protocol version the box spoke at its last hello.
    pub protocol_version: Option<u32>,
    /// HQ holds back changes the box's version cannot read (职场需升级).
    pub needs_upgrade: bool,
    /// Days the site keeps its recordings once HQ holds them; `None`: for ever.
    pub recording_retention_days: Option<u32>,
}

/// A freshly minted enrollment code (the only time it is visible).
#[derive(Debug, Clone, serde::Serialize)]
#[derive(utoipa::ToSchema)]
pub struct EnrollmentCode {
    pub code: String,
    pub expires_at: i64,
}

/// The identity HQ retired.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RetiredBox {
    pub site_id: i64,
    /// The retired certificate's SHA-256, if the hub knew it.
    pub certificate: Option<String>,
    pub enrolled_at: i64,
    pub retired_at: i64,
}

/// Failure to create a site.
#[derive(Debug, thiserror::Error)]
pub enum CreateSiteError {
    /// The name is empty.
    #[error("site name is empty: give the site a name")]
    EmptyName,
    /// Another site has this name.
    #[error("a site named {0:?} already exists: choose another name")]
    Duplicate(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Failure to issue an enrollment code.
#[derive(Debug, thiserror::Error)]
pub enum EnrollmentCodeError {
    /// No site has this id.
    #[error("site {0} does not exist: create the site first")]
    UnknownSite(i64),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Failure to retire a site's box.
#[derive(Debug, thiserror::Error)]
pub enum RetireError {
    /// No site has this id.
    #[error("site {0} does not exist")]
    UnknownSite(i64),
    /// No box holds the site.
    #[error("site {0} has no enrolled box to retire")]
    NoBox(i64),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Failure to enroll with a plain code (what the tests and tools use; the link enrolls
/// with a proof, [`Store::enroll_box`]).
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error(transparent)]
    Refused(#[from] EnrollRefusal),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A certificate's SHA-256 as the store keeps and shows it.
fn fingerprint(sha256: &[u8; 32]) -> String {
    sha256.iter().map(|byte| format!("{byte:02X}")).collect::<Vec<_>>().join(":")
}

/// Twelve characters of an alphabet without look-alikes (0/O, 1/I), shown as `XXXX-XXXX-XXXX`:
/// 60 bits, tried only online and for a day at most.
fn new_code() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    let raw: String = (0..12).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    format!("{}-{}-{}", &raw[0..4], &raw[4..8], &raw[8..12])
}

/// The box holding `site_id`: its identity row and certificate fingerprint, if any.
fn current_identity(tx: &Transaction<'_>, site_id: i64) -> rusqlite::Result<Option<(i64, Option<String>)>> {
    tx.query_row(
        "SELECT id, cert_sha256 FROM site_identities WHERE site_id = ?1 AND retired_at IS NULL",
        [site_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

/// Records `cert` as the site's identity, uses the code up, and marks the site enrolled. A
/// site enrolling for the first time is sent what HQ publishes to every site (voice
/// library, live announcements); a replacement box gets the site's whole down log anyway.
fn record_enrollment(tx: &Transaction<'_>, code_id: i64, site_id: i64, cert: &[u8], now: i64) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO site_identities (site_id, cert_sha256, enrolled_at) VALUES (?1, ?2, ?3)",
        params![site_id, fingerprint(&sync_link::cert_sha256(cert)), now],
    )?;
    tx.execute("UPDATE enrollment_codes SET used_at = ?1 WHERE id = ?2", params![now, code_id])?;
    let first = tx.execute("UPDATE sites SET enrolled_at = ?1 WHERE id = ?2 AND enrolled_at IS NULL", params![now, site_id])?;
    if first > 0 {
        super::notices::seed_enrolled_site(tx, site_id)?;
        super::lists::seed_enrolled_site(tx, site_id)?;
        super::control::seed_enrolled_site(tx, site_id)?;
        super::upgrades::seed_site_profile(tx, site_id)?;
        super::retention::seed_enrolled_site(tx, site_id)?;
    }
    Ok(())
}

impl Store {
    /// Creates a site (not yet enrolled) and returns its id.
    pub fn create_site(&self, name: &str) -> Result<i64, CreateSiteError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(CreateSiteError::EmptyName);
        }
        let conn = self.conn();
        match conn.execute("INSERT INTO sites (name, created_at) VALUES (?1, ?2)", params![name, now_unix()]) {
            Ok(_) => Ok(conn.last_insert_rowid()),
            Err(e) if is_unique_violation(&e) => Err(CreateSiteError::Duplicate(name.to_string())),
            Err(e) => Err(DbError(e).into()),
        }
    }

    /// All sites, by id, with the box holding each.
    pub fn list_sites(&self) -> Result<Vec<Site>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT s.id, s.name, i.id IS NOT NULL, s.online, s.link_since, s.down_acked, i.enrolled_at, i.cert_sha256,
                    s.protocol_version, EXISTS (SELECT 1 FROM down_held h WHERE h.site_id = s.id),
                    s.recording_retention_days
             FROM sites s LEFT JOIN site_identities i ON i.site_id = s.id AND i.retired_at IS NULL
             ORDER BY s.id",
        )?;
        let sites = stmt
            .query_map([], |r| {
                Ok(Site {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    enrolled: r.get(2)?,
                    online: r.get(3)?,
                    link_since: r.get(4)?,
                    down_acked: r.get(5)?,
                    box_enrolled_at: r.get(6)?,
                    box_certificate: r.get(7)?,
                    protocol_version: r.get(8)?,
                    needs_upgrade: r.get(9)?,
                    recording_retention_days: r.get::<_, Option<i64>>(10)?.map(|days| days as u32),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(sites)
    }

    /// How long codes minted from now on stay valid (the hub's `serve` option).
    pub fn set_enrollment_code_ttl(&self, ttl: Duration) {
        let seconds = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1);
        self.enrollment_ttl_secs.store(seconds, Ordering::Relaxed);
    }

    /// Mints a one-time enrollment code for `site_id`, replacing the site's older codes.
    pub fn create_enrollment_code(&self, site_id: i64) -> Result<EnrollmentCode, EnrollmentCodeError> {
        self.create_enrollment_code_at(site_id, now_unix())
    }

    pub(crate) fn create_enrollment_code_at(&self, site_id: i64, now: i64) -> Result<EnrollmentCode, EnrollmentCodeError> {
        let code = new_code();
        let expires_at = now.saturating_add(self.enrollment_ttl_secs.load(Ordering::Relaxed));
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(DbError)?;
        let exists = tx.query_row("SELECT 1 FROM sites WHERE id = ?1", [site_id], |_| Ok(())).optional().map_err(DbError)?;
        if exists.is_none() {
            return Err(EnrollmentCodeError::UnknownSite(site_id));
        }
        tx.execute(
            "UPDATE enrollment_codes SET replaced_at = ?1 WHERE site_id = ?2 AND used_at IS NULL AND replaced_at IS NULL",
            params![now, site_id],
        )
        .map_err(DbError)?;
        tx.execute(
            "INSERT INTO enrollment_codes (site_id, proof_key, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![site_id, CodeKey::from_code(&code).as_bytes().as_slice(), now, expires_at],
        )
        .map_err(DbError)?;
        tx.commit().map_err(DbError)?;
        Ok(EnrollmentCode { code, expires_at })
    }

    /// Enrolls a box: see [`sync_link::HubStore::enroll_site`], which is this.
    pub fn enroll_box(
        &self,
        proof_matches: &dyn Fn(&CodeKey) -> bool,
        issue: &dyn Fn(i64) -> Result<IssuedCert, String>,
    ) -> Result<Result<(i64, IssuedCert), EnrollRefusal>, DbError> {
        self.enroll_box_at(now_unix(), proof_matches, issue)
    }

    pub(crate) fn enroll_box_at(
        &self,
        now: i64,
        proof_matches: &dyn Fn(&CodeKey) -> bool,
        issue: &dyn Fn(i64) -> Result<IssuedCert, String>,
    ) -> Result<Result<(i64, IssuedCert), EnrollRefusal>, DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        type CodeRow = (i64, i64, Vec<u8>, i64, Option<i64>, Option<i64>);
        let codes: Vec<CodeRow> = {
            let mut stmt = tx.prepare(
                "SELECT id, site_id, proof_key, expires_at, used_at, replaced_at FROM enrollment_codes
                 WHERE created_at > ?1 OR (used_at IS NULL AND replaced_at IS NULL AND expires_at > ?2)
                 ORDER BY id DESC",
            )?;
            stmt.query_map(params![now - CODE_MEMORY_SECONDS, now], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
            })?
            .collect::<Result<Vec<_>, _>>()?
        };
        let matched = codes.into_iter().find(|(_, _, key, ..)| {
            <[u8; 32]>::try_from(key.as_slice()).is_ok_and(|key| proof_matches(&CodeKey::from_bytes(key)))
        });
        let Some((code_id, site_id, _, expires_at, used_at, replaced_at)) = matched else {
            return Ok(Err(EnrollRefusal::UnknownCode));
        };
        // Used first: a used code was also replaced by nothing, and may have expired since.
        if used_at.is_some() {
            return Ok(Err(EnrollRefusal::AlreadyUsed));
        }
        if replaced_at.is_some() {
            return Ok(Err(EnrollRefusal::Replaced));
        }
        if expires_at <= now {
            return Ok(Err(EnrollRefusal::Expired));
        }
        if let Some((_, certificate)) = current_identity(&tx, site_id)? {
            // The code stays pending: once HQ retires the old box, it enrolls the new one.
            let fingerprint = certificate.unwrap_or_else(|| "not yet seen".to_owned());
            return Ok(Err(EnrollRefusal::SiteTaken { site: site_id as u64, fingerprint }));
        }
        let cert = match issue(site_id) {
            Ok(cert) => cert,
            Err(error) => return Ok(Err(EnrollRefusal::Issue(error))),
        };
        record_enrollment(&tx, code_id, site_id, &cert, now)?;
        tx.commit()?;
        Ok(Ok((site_id, cert)))
    }

    /// Enrolls with the plain `code` a box whose certificate is `cert_der`: the site.
    pub fn redeem_code(&self, code: &str, cert_der: &[u8]) -> Result<i64, EnrollError> {
        let key = CodeKey::from_code(code);
        let cert = cert_der.to_vec();
        let (site, _) = self.enroll_box(&|candidate| *candidate == key, &|_| Ok(cert.clone()))??;
        Ok(site)
    }

    /// Retires the box holding `site_id`: its certificate no longer opens the link (a live
    /// connection is closed), and another box may enroll with a new code.
    pub fn retire_site_box(&self, site_id: i64, by: &str) -> Result<RetiredBox, RetireError> {
        let now = now_unix();
        let retired = {
            let mut conn = self.conn();
            let tx = conn.transaction().map_err(DbError)?;
            let exists = tx.query_row("SELECT 1 FROM sites WHERE id = ?1", [site_id], |_| Ok(())).optional().map_err(DbError)?;
            if exists.is_none() {
                return Err(RetireError::UnknownSite(site_id));
            }
            let Some((identity, certificate)) = current_identity(&tx, site_id).map_err(DbError)? else {
                return Err(RetireError::NoBox(site_id));
            };
            let enrolled_at: i64 = tx
                .query_row("SELECT enrolled_at FROM site_identities WHERE id = ?1", [identity], |r| r.get(0))
                .map_err(DbError)?;
            tx.execute(
                "UPDATE site_identities SET retired_at = ?1, retired_by = ?2 WHERE id = ?3",
                params![now, by, identity],
            )
            .map_err(DbError)?;
            tx.commit().map_err(DbError)?;
            RetiredBox { site_id, certificate, enrolled_at, retired_at: now }
        };
        // The link checks the identity again when woken; a permit waits if it is not pumping.
        self.down_notify_for(site_id as u64).notify_one();
        tracing::info!(site = site_id, by, certificate = ?retired.certificate, "site's box retired");
        Ok(retired)
    }

    /// Whether the box presenting the certificate with SHA-256 `cert_sha256` may hold
    /// `site_id`'s link: the site exists, is not disabled, and the certificate is its
    /// current identity. A site enrolled before identities were kept pins the first
    /// certificate it presents.
    pub fn site_identity_allowed(&self, site_id: i64, cert_sha256: &[u8; 32]) -> Result<bool, DbError> {
        let presented = fingerprint(cert_sha256);
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let disabled: Option<bool> =
            tx.query_row("SELECT disabled FROM sites WHERE id = ?1", [site_id], |r| r.get(0)).optional()?;
        if disabled != Some(false) {
            return Ok(false);
        }
        match current_identity(&tx, site_id)? {
            None => Ok(false),
            Some((_, Some(current))) => Ok(current == presented),
            Some((identity, None)) => {
                match tx.execute("UPDATE site_identities SET cert_sha256 = ?1 WHERE id = ?2", params![presented, identity]) {
                    Ok(_) => {}
                    // A certificate that was once another identity is not adopted.
                    Err(e) if is_unique_violation(&e) => return Ok(false),
                    Err(e) => return Err(e.into()),
                }
                tx.commit()?;
                tracing::info!(site = site_id, certificate = %presented, "pinned the certificate of a box enrolled before identities were kept");
                Ok(true)
            }
        }
    }

    /// Records the link going up or down.
    pub fn set_link_state(&self, site_id: i64, online: bool) -> Result<(), DbError> {
        self.conn().execute(
            "UPDATE sites SET online = ?1, link_since = ?2 WHERE id = ?3",
            params![online, now_unix(), site_id],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 3600;

    fn key_of(code: &EnrollmentCode) -> CodeKey {
        CodeKey::from_code(&code.code)
    }

    /// Enrolls at `now` with `code` typed as given; the certificate is `cert`.
    fn enroll(store: &Store, now: i64, code: &str, cert: &[u8]) -> Result<i64, EnrollRefusal> {
        let key = CodeKey::from_code(code);
        let cert = cert.to_vec();
        store.enroll_box_at(now, &|candidate| *candidate == key, &|_| Ok(cert.clone())).unwrap().map(|(site, _)| site)
    }

    fn sha(cert: &[u8]) -> [u8; 32] {
        sync_link::cert_sha256(cert)
    }

    #[test]
    fn a_code_is_stored_only_as_its_key_and_works_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let site = store.create_site("深圳一职场").unwrap();
        assert!(matches!(store.create_site(" 深圳一职场 "), Err(CreateSiteError::Duplicate(_))));
        let now = 1_800_000_000;
        let code = store.create_enrollment_code_at(site, now).unwrap();
        assert_eq!(code.expires_at, now + DAY, "the default lifetime is a day");

        // Nowhere in the database: neither as typed nor normalised.
        let conn = store.conn();
        let dump: Vec<String> = conn
            .prepare("SELECT quote(proof_key) || ' ' || site_id FROM enrollment_codes")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        drop(conn);
        let plain = sync_protocol::enroll::normalize_code(&code.code);
        let plain_hex = hex::encode(plain.as_bytes()).to_uppercase();
        assert!(dump.iter().all(|row| !row.contains(&plain) && !row.contains(&plain_hex)), "{dump:?}");
        let stored: Vec<u8> = store.conn().query_row("SELECT proof_key FROM enrollment_codes", [], |r| r.get(0)).unwrap();
        assert_eq!(stored.as_slice(), key_of(&code).as_bytes());

        // Typed in lower case without dashes it still works, once.
        let typed = code.code.replace('-', "").to_lowercase();
        assert_eq!(enroll(&store, now + 60, &typed, b"box A"), Ok(site));
        assert_eq!(enroll(&store, now + 61, &code.code, b"box B"), Err(EnrollRefusal::AlreadyUsed));
        assert_eq!(enroll(&store, now + 61, "ABCD-EFGH-JKLM", b"box B"), Err(EnrollRefusal::UnknownCode));
        assert!(store.site_identity_allowed(site, &sha(b"box A")).unwrap());
        assert!(!store.site_identity_allowed(site, &sha(b"box B")).unwrap());
        assert!(matches!(store.create_enrollment_code(999), Err(EnrollmentCodeError::UnknownSite(999))));
    }

    #[test]
    fn codes_expire_after_the_configured_lifetime() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let site = store.create_site("A").unwrap();
        store.set_enrollment_code_ttl(Duration::from_secs(600));
        let now = 1_800_000_000;
        let code = store.create_enrollment_code_at(site, now).unwrap();
        assert_eq!(code.expires_at, now + 600);
        assert_eq!(enroll(&store, now + 600, &code.code, b"box"), Err(EnrollRefusal::Expired));
        assert_eq!(enroll(&store, now + 599, &code.code, b"box"), Ok(site), "valid until its last second");
        // Long after, the key is forgotten and the code is simply unknown.
        let old = store.create_enrollment_code_at(site, now).unwrap();
        assert_eq!(enroll(&store, now + CODE_MEMORY_SECONDS + 1, &old.code, b"box 2"), Err(EnrollRefusal::UnknownCode));
    }

    #[test]
    fn a_newer_code_replaces_the_older_ones_of_its_site_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = store.create_site("A").unwrap();
        let b = store.create_site("B").unwrap();
        let now = 1_800_000_000;
        let first = store.create_enrollment_code_at(a, now).unwrap();
        let other_site = store.create_enrollment_code_at(b, now + 1).unwrap();
        let second = store.create_enrollment_code_at(a, now + 2).unwrap();
        assert_eq!(enroll(&store, now + 3, &first.code, b"box A1"), Err(EnrollRefusal::Replaced));
        assert_eq!(enroll(&store, now + 3, &second.code, b"box A2"), Ok(a));
        assert_eq!(enroll(&store, now + 3, &other_site.code, b"box B"), Ok(b), "site B's code is untouched");
        // A used code is reported as used, not as replaced, after yet another is minted.
        store.create_enrollment_code_at(a, now + 4).unwrap();
        assert_eq!(enroll(&store, now + 5, &second.code, b"box A3"), Err(EnrollRefusal::AlreadyUsed));
    }

    #[test]
    fn a_second_box_waits_until_hq_retires_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let site = store.create_site("A").unwrap();
        assert!(matches!(store.retire_site_box(site, "admin"), Err(RetireError::NoBox(_))));
        assert!(matches!(store.retire_site_box(77, "admin"), Err(RetireError::UnknownSite(77))));
        let now = now_unix();
        let first = store.create_enrollment_code_at(site, now).unwrap();
        assert_eq!(enroll(&store, now, &first.code, b"box 1"), Ok(site));
        let listed = &store.list_sites().unwrap()[0];
        assert!(listed.enrolled);
        assert_eq!(listed.box_enrolled_at, Some(now));
        assert_eq!(listed.box_certificate.as_deref(), Some(fingerprint(&sha(b"box 1")).as_str()));

        let second = store.create_enrollment_code_at(site, now).unwrap();
        match enroll(&store, now, &second.code, b"box 2") {
            Err(EnrollRefusal::SiteTaken { site: taken, fingerprint: shown }) => {
                assert_eq!(taken, site as u64);
                assert_eq!(shown, fingerprint(&sha(b"box 1")));
            }
            other => panic!("a second box enrolled: {other:?}"),
        }
        assert!(!store.site_identity_allowed(site, &sha(b"box 2")).unwrap());

        let retired = store.retire_site_box(site, "admin").unwrap();
        assert_eq!(retired.certificate, Some(fingerprint(&sha(b"box 1"))));
        assert!(!store.site_identity_allowed(site, &sha(b"box 1")).unwrap(), "the retired box is out");
        assert!(!store.list_sites().unwrap()[0].enrolled);
        // The refused code was not used up: it enrolls the new box now.
        assert_eq!(enroll(&store, now, &second.code, b"box 2"), Ok(site));
        assert!(store.site_identity_allowed(site, &sha(b"box 2")).unwrap());
        assert!(!store.site_identity_allowed(site, &sha(b"box 1")).unwrap());
        let history: i64 = store.conn().query_row("SELECT COUNT(*) FROM site_identities WHERE site_id = ?1", [site], |r| r.get(0)).unwrap();
        assert_eq!(history, 2, "the retired identity is kept with who retired it");
        // A disabled site lets nobody in.
        store.conn().execute("UPDATE sites SET disabled = 1 WHERE id = ?1", [site]).unwrap();
        assert!(!store.site_identity_allowed(site, &sha(b"box 2")).unwrap());
    }

    #[test]
    fn a_failed_issue_leaves_the_code_pending() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let site = store.create_site("A").unwrap();
        let code = store.create_enrollment_code(site).unwrap();
        let key = key_of(&code);
        let refused = store.enroll_box(&|candidate| *candidate == key, &|_| Err("bad request".to_owned())).unwrap();
        assert_eq!(refused, Err(EnrollRefusal::Issue("bad request".to_owned())));
        assert!(!store.list_sites().unwrap()[0].enrolled);
        assert_eq!(store.redeem_code(&code.code, b"box").unwrap(), site);
    }

    #[test]
    fn a_site_enrolled_before_identities_pins_its_first_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let site = store.create_site("A").unwrap();
        // What migration 7 leaves for a site enrolled by an older hub.
        store
            .conn()
            .execute_batch(&format!(
                "UPDATE sites SET enrolled_at = 5 WHERE id = {site};
                 INSERT INTO site_identities (site_id, cert_sha256, enrolled_at) VALUES ({site}, NULL, 5);"
            ))
            .unwrap();
        assert_eq!(store.list_sites().unwrap()[0].box_certificate, None);
        assert!(store.site_identity_allowed(site, &sha(b"old box")).unwrap());
        assert!(!store.site_identity_allowed(site, &sha(b"another box")).unwrap(), "pinned, not first come each time");
        assert!(store.site_identity_allowed(site, &sha(b"old box")).unwrap());
    }
}
