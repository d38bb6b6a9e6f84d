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
