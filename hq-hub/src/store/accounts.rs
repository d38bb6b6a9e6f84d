//! HQ accounts and login sessions: argon2 password hashes, random session tokens stored
//! only as their SHA-256.

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::Argon2;
use rand::Rng;
use rusqlite::{params, OptionalExtension};

use super::{now_unix, sha256_hex, DbError, Store};

/// How long a login lasts.
const SESSION_SECONDS: i64 = 12 * 3600;

/// A logged-in HQ account.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: i64,
    pub username: String,
    pub is_admin: bool,
}

/// Failure to create the first admin.
#[derive(Debug, thiserror::Error)]
pub enum InitAdminError {
    /// An admin account already exists; the first-admin path is closed for good.
    #[error("an admin account already exists; log in with it (this command only creates the first one)")]
    AdminExists,
    /// The username is empty or has spaces.
    #[error("username {0:?} is not valid: use letters, digits, '_' or '-'")]
    BadUsername(String),
    /// Hashing the password failed.
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Failure to log in.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown user or wrong password (deliberately not saying which).
    #[error("wrong username or password")]
    BadCredentials,
    /// The right password of an account HQ disabled (账号已停用).
    #[error("this account is disabled: ask an admin to enable it")]
    Disabled,
    #[error(transparent)]
    Db(#[from] DbError),
}

pub(super) fn hash_password(password: &str) -> Result<String, InitAdminError> {
    let salt_bytes: [u8; 16] = rand::rng().random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| InitAdminError::Hash(e.to_string()))?;
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| InitAdminError::Hash(e.to_string()))?;
    Ok(hash.to_string())
}

/// A random password people can type: 16 letters and digits without look-alikes.
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..16).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

impl Store {
    /// Whether any admin account exists.
    pub fn admin_exists(&self) -> Result<bool, DbError> {
        let conn = self.conn();
        let n: i64 = conn.query_row("SELECT COUNT(*) FROM accounts WHERE is_admin = 1", [], |r| r.get(0))?;
        Ok(n > 0)
    }

    /// Creates the first admin with a fresh random password and returns that password. Refuses
    /// if an admin exists, so a stolen console cannot mint a second one this way.
    pub fn init_admin(&self, username: &str) -> Result<String, InitAdminError> {
        let valid = !username.is_empty()
            && username.len() <= 64
            && username.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(InitAdminError::BadUsername(username.to_string()));
        }
        let password = random_password();
        let hash = hash_password(&password)?;
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(DbError)?;
        let n: i64 = tx
            .query_row("SELECT COUNT(*) FROM accounts WHERE is_admin = 1", [], |r| r.get(0))
            .map_err(DbError)?;
        if n > 0 {
            return Err(InitAdminError::AdminExists);
        }
        tx.execute(
            "INSERT INTO accounts (username, password_hash, is_admin, created_at) VALUES (?1, ?2, 1, ?3)",
            params![username, hash, now_unix()],
        )
        .map_err(DbError)?;
        tx.commit().map_err(DbError)?;
        Ok(password)
    }

    /// Checks a password and opens a session; returns the session token (to put in a cookie).
    pub fn login(&self, username: &str, password: &str) -> Result<(String, Account), LoginError> {
        let row: Option<(i64, String, bool, bool)> = self
            .conn()
            .query_row(
                "SELECT id, password_hash, is_admin, disabled FROM accounts WHERE username = ?1",
                [username],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(DbError)?;
        // An unknown user costs the same argon2 work as a wrong password, so the time of
        // the answer does not tell which usernames exist.
        let verified = web_guard::verify_or_dummy(row.as_ref().map(|(_, hash, _, _)| hash.as_str()), password);
        let Some((id, _, is_admin, disabled)) = row.filter(|_| verified) else {
            return Err(LoginError::BadCredentials);
        };
        // Said only to whoever knows the password, so it tells nothing to a guesser.
        if disabled {
            return Err(LoginError::Disabled);
        }
        let token_bytes: [u8; 32] = rand::rng().random();
        let token = hex::encode(token_bytes);
        let now = now_unix();
        self.conn()
            .execute(
                "INSERT INTO sessions (token_hash, account_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                params![sha256_hex(token.as_bytes()), id, now, now + SESSION_SECONDS],
            )
            .map_err(DbError)?;
        Ok((token, Account { id, username: username.to_string(), is_admin }))
    }

    /// The account behind a session token, if the session exists and has not expired.
    pub fn session_account(&self, token: &str) -> Result<Option<Account>, DbError> {
        let account = self
            .conn()
            .query_row(
                "SELECT a.id, a.username, a.is_admin FROM sessions s JOIN accounts a ON a.id = s.account_id
                 WHERE s.token_hash = ?1 AND s.expires_at > ?2 AND a.disabled = 0",
                params![sha256_hex(token.as_bytes()), now_unix()],
                |r| Ok(Account { id: r.get(0)?, username: r.get(1)?, is_admin: r.get(2)? }),
            )
            .optional()?;
        Ok(account)
    }

    /// Ends a session.
    pub fn logout(&self, token: &str) -> Result<(), DbError> {
        self.conn().execute("DELETE FROM sessions WHERE token_hash = ?1", [sha256_hex(token.as_bytes())])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_admin_once_then_login() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(!store.admin_exists().unwrap());
        let password = store.init_admin("admin").unwrap();
        assert_eq!(password.len(), 16);
        assert!(matches!(store.init_admin("other"), Err(InitAdminError::AdminExists)));
        assert!(matches!(store.login("admin", "wrong"), Err(LoginError::BadCredentials)));
        assert!(matches!(store.login("nobody", &password), Err(LoginError::BadCredentials)));
        let (token, account) = store.login("admin", &password).unwrap();
        assert!(account.is_admin);
        assert_eq!(store.session_account(&token).unwrap().unwrap().username, "admin");
        store.logout(&token).unwrap();
        assert!(store.session_account(&token).unwrap().is_none());
    }
}
