//! Web sessions of the site's accounts, kept in the store so that a restart or an upgrade of
//! the box does not sign the agents out.
//!
//! The cookie carries a random 256-bit token; the table keeps only its SHA-256, so a copy of
//! `site.db` (a backup, a support dump) does not hold usable sessions. A session ends when
//! its account logs out or after `idle` seconds without a request ([`Store::session_user`]
//! deletes it then). `last_seen` is written at most once a minute per session, so a busy
//! desk does not turn every request into a disk flush.

use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::{DbError, Store};

/// How stale `last_seen` may get before a request writes it again, in seconds.
const TOUCH_EVERY: i64 = 60;

/// The stored form of a session token.
fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Store {
    /// Opens a session for `user_id` at `now`; returns the token for the cookie.
    pub fn open_session(&self, user_id: u64, now: i64) -> Result<String, DbError> {
        let token = hex::encode(rand::random::<[u8; 32]>());
        self.lock().execute(
            "INSERT INTO web_sessions (token_hash, user_id, created_at, last_seen) VALUES (?1, ?2, ?3, ?3)",
            params![token_hash(&token), user_id, now],
        )?;
        Ok(token)
    }

    /// The account of session `token` if it is open and was used within `idle` seconds of
    /// `now`; marks it used. An idle session is deleted, so it cannot come back.
    pub fn session_user(&self, token: &str, now: i64, idle: i64) -> Result<Option<u64>, DbError> {
        let hash = token_hash(token);
        let conn = self.lock();
        let found: Option<(u64, i64)> = conn
            .query_row(
                "SELECT s.user_id, s.last_seen FROM web_sessions s JOIN users u ON u.user_id = s.user_id
                 WHERE s.token_hash = ?1 AND u.disabled = 0",
                [&hash],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let Some((user_id, last_seen)) = found else { return Ok(None) };
        if now - last_seen > idle {
            conn.execute("DELETE FROM web_sessions WHERE token_hash = ?1", [&hash])?;
            return Ok(None);
        }
        if now - last_seen >= TOUCH_EVERY {
            conn.execute("UPDATE web_sessions SET last_seen = ?2 WHERE token_hash = ?1", params![hash, now])?;
        }
        Ok(Some(user_id))
    }

    /// Ends session `token` (logout); true if it was open.
    pub fn close_session(&self, token: &str) -> Result<bool, DbError> {
        Ok(self.lock().execute("DELETE FROM web_sessions WHERE token_hash = ?1", [token_hash(token)])? > 0)
    }

    /// Deletes every session idle for more than `idle` seconds at `now`; returns how many.
    /// Expired sessions are refused anyway; this only keeps the table small.
    pub fn prune_sessions(&self, now: i64, idle: i64) -> Result<usize, DbError> {
        Ok(self.lock().execute("DELETE FROM web_sessions WHERE last_seen < ?1", [now - idle])?)
    }
}
