//! Sites (职场) and their one-time enrollment codes.
//!
//! A code is shown once when generated and looked up by its SHA-256; its plain form is kept
//! only while pending (the enrollment proof is an HMAC keyed by it). It expires after
//! [`ENROLLMENT_CODE_SECONDS`] and works once, even if the enrollment then fails.

use rand::Rng;
use rusqlite::{params, OptionalExtension};

use super::{now_unix, sha256_hex, DbError, Store};

/// How long a fresh enrollment code stays valid.
pub const ENROLLMENT_CODE_SECONDS: i64 = 24 * 3600;

/// A site as the console shows it.
#[derive(Debug, Clone, serde::Serialize)]
#[derive(utoipa::ToSchema)]
pub struct Site {
    pub id: i64,
    pub name: String,
    pub enrolled: bool,
    pub online: bool,
    /// Since when the link has been in its current state (unix seconds), if it ever connected.
    pub link_since: Option<i64>,
    /// The last down-log entry the site acknowledged.
    pub down_acked: i64,
}

/// A freshly generated enrollment code (the only time it is visible).
#[derive(Debug, Clone, serde::Serialize)]
#[derive(utoipa::ToSchema)]
pub struct EnrollmentCode {
    pub code: String,
    pub expires_at: i64,
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

/// Codes are typed by a technician: case, spaces and dashes carry no meaning (the same
/// normalisation the enrollment proof uses).
fn canonical_code(code: &str) -> String {
    sync_protocol::enroll::normalize_code(code)
}

pub(super) fn is_unique_violation(err: &rusqlite::Error) -> bool {
    matches!(err, rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::ConstraintViolation)
}

/// Marks a code used (erasing its plain form) and the site enrolled. A site enrolling for the
/// first time is sent what HQ publishes to every site (voice library, live announcements).
fn consume_code(tx: &rusqlite::Transaction<'_>, code_hash: &str, site_id: i64, now: i64) -> rusqlite::Result<()> {
    tx.execute("UPDATE enrollment_codes SET used_at = ?1, pending_code = NULL WHERE code_hash = ?2", params![now, code_hash])?;
    let first = tx.execute("UPDATE sites SET enrolled_at = ?1 WHERE id = ?2 AND enrolled_at IS NULL", params![now, site_id])?;
    if first > 0 {
        super::notices::seed_enrolled_site(tx, site_id)?;
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

    /// All sites, by id.
    pub fn list_sites(&self) -> Result<Vec<Site>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, name, enrolled_at IS NOT NULL, online, link_since, down_acked FROM sites ORDER BY id",
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
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(sites)
    }

    /// Issues a one-time enrollment code for `site_id`.
    pub fn create_enrollment_code(&self, site_id: i64) -> Result<EnrollmentCode, EnrollmentCodeError> {
        const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        let mut rng = rand::rng();
        let raw: String = (0..12).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
        let code = format!("{}-{}-{}", &raw[0..4], &raw[4..8], &raw[8..12]);
        let now = now_unix();
        let expires_at = now + ENROLLMENT_CODE_SECONDS;
        let conn = self.conn();
        let exists: bool = conn
            .query_row("SELECT 1 FROM sites WHERE id = ?1", [site_id], |_| Ok(true))
            .optional()
            .map_err(DbError)?
            .unwrap_or(false);
        if !exists {
            return Err(EnrollmentCodeError::UnknownSite(site_id));
        }
        conn.execute(
            "INSERT INTO enrollment_codes (code_hash, site_id, created_at, expires_at, pending_code) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![sha256_hex(canonical_code(&code).as_bytes()), site_id, now, expires_at, canonical_code(&code)],
        )
        .map_err(DbError)?;
        Ok(EnrollmentCode { code, expires_at })
    }

    /// Consumes a code: the site it was issued for, or `None` if unknown, used or expired.
    pub fn redeem_code(&self, code: &str) -> Result<Option<i64>, DbError> {
        let now = now_unix();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let hash = sha256_hex(canonical_code(code).as_bytes());
        let found: Option<(i64, i64, Option<i64>)> = tx
            .query_row(
                "SELECT site_id, expires_at, used_at FROM enrollment_codes WHERE code_hash = ?1",
                [&hash],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((site_id, expires_at, used_at)) = found else {
            return Ok(None);
        };
        if used_at.is_some() || expires_at <= now {
            return Ok(None);
        }
        consume_code(&tx, &hash, site_id, now)?;
        tx.commit()?;
        Ok(Some(site_id))
    }

    /// Consumes the one pending, unexpired code that `proof_matches`: the site it was issued
    /// for, or `None`. Each pending code is offered in turn (there are only ever a few).
    pub fn redeem_code_by_proof(&self, proof_matches: &dyn Fn(&str) -> bool) -> Result<Option<i64>, DbError> {
        let now = now_unix();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let pending: Vec<(String, i64, String)> = {
            let mut stmt = tx.prepare(
                "SELECT code_hash, site_id, pending_code FROM enrollment_codes
                 WHERE used_at IS NULL AND expires_at > ?1 AND pending_code IS NOT NULL",
            )?;
            stmt.query_map([now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<Vec<_>, _>>()?
        };
        for (hash, site_id, code) in pending {
            if proof_matches(&code) {
                consume_code(&tx, &hash, site_id, now)?;
                tx.commit()?;
                return Ok(Some(site_id));
            }
        }
        Ok(None)
    }

    /// Whether a site may hold a link: enrolled and not disabled.
    pub fn site_may_connect(&self, site_id: i64) -> Result<bool, DbError> {
        let allowed = self
            .conn()
            .query_row(
                "SELECT enrolled_at IS NOT NULL AND disabled = 0 FROM sites WHERE id = ?1",
                [site_id],
                |r| r.get::<_, bool>(0),
            )
            .optional()?;
        Ok(allowed.unwrap_or(false))
    }

    /// Records the link going up or down.
    pub fn set_link_state(&self, site_id: i64, online: bool) -> Result<(), DbError> {
        self.conn().execute(
            "UPDATE sites SET online = ?1, link_since = ?2 WHERE id = ?3",
            params![online, now_unix(), site_id],
        )?;
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn expire_codes_for_test(&self) {
        self.conn().execute("UPDATE enrollment_codes SET expires_at = 0", []).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_is_single_use_and_expires() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let site = store.create_site("深圳一职场").unwrap();
        assert!(matches!(store.create_site(" 深圳一职场 "), Err(CreateSiteError::Duplicate(_))));
        assert!(!store.site_may_connect(site).unwrap());
        let code = store.create_enrollment_code(site).unwrap();
        // Typed in lower case without dashes still works, once.
        let typed = code.code.replace('-', "").to_lowercase();
        assert_eq!(store.redeem_code(&typed).unwrap(), Some(site));
        assert_eq!(store.redeem_code(&code.code).unwrap(), None);
        assert!(store.site_may_connect(site).unwrap());

        let by_proof = store.create_enrollment_code(site).unwrap();
        let expected = sync_protocol::enroll::normalize_code(&by_proof.code);
        assert_eq!(store.redeem_code_by_proof(&|code| code == "WRONG").unwrap(), None);
        assert_eq!(store.redeem_code_by_proof(&|code| code == expected).unwrap(), Some(site));
        assert_eq!(store.redeem_code_by_proof(&|code| code == expected).unwrap(), None);
        assert_eq!(store.redeem_code(&by_proof.code).unwrap(), None);

        let second = store.create_enrollment_code(site).unwrap();
        store.expire_codes_for_test();
        assert_eq!(store.redeem_code(&second.code).unwrap(), None);
        assert_eq!(store.redeem_code_by_proof(&|_| true).unwrap(), None);
        assert!(matches!(store.create_enrollment_code(999), Err(EnrollmentCodeError::UnknownSite(999))));
    }
}
