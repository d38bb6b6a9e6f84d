//! Black and white lists (黑白名单). A number is on at most one list. Blacklisted numbers
//! are removed at dispatch with their reason; whitelisted numbers are never removed by the
//! data filter.

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{now_unix, DbError, Store};

/// Which list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum ListKind {
    Black,
    White,
}

impl ListKind {
    fn as_str(self) -> &'static str {
        match self {
            ListKind::Black => "black",
            ListKind::White => "white",
        }
    }
}

/// One listed number.
#[derive(Debug, Clone, Serialize)]
#[derive(utoipa::ToSchema)]
pub struct ListedNumber {
    pub phone: String,
    pub list: ListKind,
    pub note: String,
    pub created_at: i64,
    pub creator: String,
}

/// Failure to edit a list.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The number cannot be normalised.
    #[error("{phone:?} is not a dialable number: {reason}")]
    BadNumber { phone: String, reason: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for ListError {
    fn from(e: rusqlite::Error) -> Self {
        ListError::Db(DbError(e))
    }
}

impl Store {
    /// Puts numbers on a list (moving them off the other one). Returns how many were stored.
    pub fn add_to_list(&self, list: ListKind, phones: &[String], note: &str, creator: &str) -> Result<usize, ListError> {
        let mut normalised = Vec::with_capacity(phones.len());
        for phone in phones.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
            let number = crate::phone::normalize(phone)
                .map_err(|e| ListError::BadNumber { phone: phone.to_string(), reason: e.to_string() })?;
            normalised.push(number);
        }
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let now = now_unix();
        for phone in &normalised {
            tx.execute(
                "INSERT INTO phone_lists (phone, list, note, created_at, creator) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (phone) DO UPDATE SET list = excluded.list, note = excluded.note,
                    created_at = excluded.created_at, creator = excluded.creator",
                params![phone, list.as_str(), note.trim(), now, creator],
            )?;
        }
        tx.commit()?;
        Ok(normalised.len())
    }

    /// Takes a number off whichever list holds it; whether it was listed.
    pub fn remove_from_lists(&self, phone: &str) -> Result<bool, ListError> {
        let number = crate::phone::normalize(phone).map_err(|e| ListError::BadNumber { phone: phone.to_string(), reason: e.to_string() })?;
        Ok(self.conn().execute("DELETE FROM phone_lists WHERE phone = ?1", [number])? > 0)
    }

    /// One list, newest first.
    pub fn list_numbers(&self, list: ListKind) -> Result<Vec<ListedNumber>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT phone, note, created_at, creator FROM phone_lists WHERE list = ?1 ORDER BY created_at DESC, phone")?;
        let rows = stmt
            .query_map([list.as_str()], |r| Ok(ListedNumber { phone: r.get(0)?, list, note: r.get(1)?, created_at: r.get(2)?, creator: r.get(3)? }))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
