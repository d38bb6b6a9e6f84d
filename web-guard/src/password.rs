//! A login for an account that does not exist costs the same as a wrong password.
//!
//! Without this, "no such user" answers in microseconds and "wrong password" after an argon2
//! verification of tens of milliseconds, and the difference tells an attacker which
//! usernames exist. [`verify_or_dummy`] verifies against a dummy hash, made once with the
//! same (default) argon2 parameters both servers hash with, when there is no stored hash.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// A hash of a random password nobody knows, with argon2's default parameters.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::encode_b64(b"outpost-dummy-16").unwrap_or_else(|_| SaltString::from_b64("b3V0cG9zdGR1bW15").expect("valid salt"));
        Argon2::default()
            .hash_password(b"no account has this password, it only costs time", &salt)
            .map(|hash| hash.to_string())
            .unwrap_or_default()
    })
}

/// Verifies `password` against `stored` (a PHC string); with no stored hash, does the same
/// work against a dummy hash and answers `false`.
pub fn verify_or_dummy(stored: Option<&str>, password: &str) -> bool {
    let (hash, real) = match stored {
        Some(hash) => (hash, true),
        None => (dummy_hash(), false),
    };
    let verified = match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    };
    verified && real
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn unknown_users_cost_a_verification() {
        let salt = SaltString::encode_b64(&[7u8; 16]).unwrap();
        let real = Argon2::default().hash_password(b"right", &salt).unwrap().to_string();
        assert!(verify_or_dummy(Some(&real), "right"));
        assert!(!verify_or_dummy(Some(&real), "wrong"));
        assert!(!verify_or_dummy(None, "anything"));
        assert!(!verify_or_dummy(Some("not a hash"), "right"));
        // Warm the dummy up, then compare: both take an argon2 verification.
        let _ = verify_or_dummy(None, "x");
        let started = Instant::now();
        let _ = verify_or_dummy(Some(&real), "wrong");
        let wrong = started.elapsed();
        let started = Instant::now();
        let _ = verify_or_dummy(None, "wrong");
        let unknown = started.elapsed();
        assert!(unknown * 4 > wrong, "unknown user took {unknown:?}, wrong password {wrong:?}");
    }
}

/// Writes a one-time password to `path`, readable by its owner only (mode 0600, set when
/// the file is created, so it is never readable by others even for a moment): the way a
/// package's install script hands the first admin's password to the installer without
/// printing it into a log.
pub fn write_secret_file(path: &std::path::Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    // A file left from an earlier install may have looser permissions: replace it.
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod secret_file_tests {
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn the_secret_file_is_the_owners_only_even_over_a_loose_old_one() {
        let dir = std::env::temp_dir().join(format!("outpost-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("admin-password");
        std::fs::write(&path, "old").expect("old file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("loosen");
        super::write_secret_file(&path, "Abc234xyz").expect("written");
        let meta = std::fs::metadata(&path).expect("meta");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "Abc234xyz\n");
        std::fs::remove_dir_all(&dir).expect("clean");
    }
}
