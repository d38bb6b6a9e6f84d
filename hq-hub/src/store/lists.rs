//! Black and white lists (黑白名单), and how they reach every site.
//!
//! - A number is on at most one list. Blacklisted numbers are removed at dispatch with their
//!   reason; whitelisted numbers are never removed by the data filter.
//! - Every change (add, import, remove, a move from one list to the other) is written to
//!   `phone_lists` and, in the same transaction, as a [`DownEvent::PhoneList`] into the down
//!   log of every enrolled site (`down::append_to_sites`), whose link is woken after the
//!   commit. A site then drops a blacklisted number from every batch it holds, offline too.
//! - Each number has one version across both lists (`phone_list_versions`), raised by every
//!   change and kept when the number is taken off, so add / remove / add give rising
//!   versions and a site that sees them out of order keeps the newest.
//! - A site enrolled later is sent the current lists in its enrollment transaction
//!   ([`seed_enrolled_site`]).
//! - Entries are dialable numbers (normalised as on import) or carrier dial tokens: 16 to 64
//!   hex digits, kept upper-case as the import keeps them, such as `A207A92E2B93892F5F4C`.

use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};
use sync_protocol::{DownEvent, PhoneListChange, PhoneListKind};

use super::down::{append_down, append_to_sites, enrolled_sites};
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

    fn wire(self) -> PhoneListKind {
        match self {
            ListKind::Black => PhoneListKind::Black,
            ListKind::White => PhoneListKind::White,
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
    /// The entry is neither a dialable number nor a dial token.
    #[error("{phone:?} cannot be listed: {reason}")]
    BadNumber { phone: String, reason: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for ListError {
    fn from(e: rusqlite::Error) -> Self {
        ListError::Db(DbError(e))
    }
}

/// Shortest and longest carrier dial token, in hex digits (the manual's are 20).
const TOKEN_DIGITS: std::ops::RangeInclusive<usize> = 16..=64;

/// The form a list keeps an entry in: a number as [`crate::phone::normalize`] makes it, or
/// a dial token upper-cased; otherwise why it is neither, naming the value.
pub(super) fn list_entry(raw: &str) -> Result<String, ListError> {
    let phone_error = match crate::phone::normalize(raw) {
        Ok(number) => return Ok(number),
        Err(e) => e,
    };
    let compact: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    let hex = compact.chars().all(|c| c.is_ascii_hexdigit());
    if hex && TOKEN_DIGITS.contains(&compact.len()) {
        return Ok(compact.to_ascii_uppercase());
    }
    let token_rule = format!(
        "a carrier dial token is {} to {} hex digits (0-9, A-F) such as A207A92E2B93892F5F4C",
        TOKEN_DIGITS.start(),
        TOKEN_DIGITS.end()
    );
    let reason = if compact.chars().any(|c| c.is_ascii_alphabetic()) && compact.chars().all(|c| c.is_ascii_alphanumeric()) {
        // Letters and digits only: meant as a token.
        match compact.chars().find(|c| !c.is_ascii_hexdigit()) {
            Some(bad) => format!("{bad:?} is not a hex digit; {token_rule} / 加密号码只能含 0-9、A-F"),
            None => format!(
                "it has {} characters; {token_rule} / 加密号码应为 {} 到 {} 位十六进制",
                compact.len(),
                TOKEN_DIGITS.start(),
                TOKEN_DIGITS.end()
            ),
        }
    } else {
        format!("{phone_error}; {token_rule} / {}", phone_error.zh())
    };
    Err(ListError::BadNumber { phone: raw.trim().to_string(), reason })
}

/// Raises `phone`'s version (across both lists) and returns the new one.
fn next_version(tx: &Transaction<'_>, phone: &str) -> rusqlite::Result<u64> {
    let version: i64 = tx.query_row(
        "INSERT INTO phone_list_versions (phone, version) VALUES (?1, 1)
         ON CONFLICT (phone) DO UPDATE SET version = version + 1
         RETURNING version",
        [phone],
        |r| r.get(0),
    )?;
    Ok(version as u64)
}

/// Sends a newly enrolled site every listed number at its current version. Runs in the
/// enrollment transaction, so no change made meanwhile is missed or doubled.
pub(super) fn seed_enrolled_site(tx: &Transaction<'_>, site_id: i64) -> rusqlite::Result<()> {
    let listed: Vec<(String, String, String, i64)> = {
        let mut stmt = tx.prepare(
            "SELECT l.phone, l.list, l.note, COALESCE(v.version, 1)
             FROM phone_lists l LEFT JOIN phone_list_versions v ON v.phone = l.phone ORDER BY l.phone",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect::<rusqlite::Result<_>>()?;
        rows
    };
    for (phone, list, note, version) in listed {
        let list = if list == "white" { PhoneListKind::White } else { PhoneListKind::Black };
        let event = DownEvent::PhoneList(PhoneListChange { phone, version: version as u64, list: Some(list), note });
        append_down(tx, site_id, &event)?;
    }
    Ok(())
}

impl Store {
    fn wake_list_sites(&self, sites: &[i64]) {
        for &site in sites {
            self.down_notify_for(site as u64).notify_one();
        }
    }

    /// Puts numbers on a list (moving them off the other one) and sends each change to every
    /// enrolled site. Returns how many were stored. Nothing is stored if one entry is bad.
    pub fn add_to_list(&self, list: ListKind, phones: &[String], note: &str, creator: &str) -> Result<usize, ListError> {
        let mut normalised = Vec::with_capacity(phones.len());
        for phone in phones.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
            normalised.push(list_entry(phone)?);
        }
        normalised.sort_unstable();
        normalised.dedup();
        let note = note.trim();
        let sites = {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let sites = enrolled_sites(&tx)?;
            let now = now_unix();
            for phone in &normalised {
                let before: Option<(String, String)> = tx
                    .query_row("SELECT list, note FROM phone_lists WHERE phone = ?1", [phone], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                if before.as_ref().is_some_and(|(was, was_note)| was == list.as_str() && was_note == note) {
                    // Listed already as asked: no new version for the sites to apply.
                    continue;
                }
                tx.execute(
                    "INSERT INTO phone_lists (phone, list, note, created_at, creator) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (phone) DO UPDATE SET list = excluded.list, note = excluded.note,
                        created_at = excluded.created_at, creator = excluded.creator",
                    params![phone, list.as_str(), note, now, creator],
                )?;
                let version = next_version(&tx, phone)?;
                let event = DownEvent::PhoneList(PhoneListChange {
                    phone: phone.clone(),
                    version,
                    list: Some(list.wire()),
                    note: note.to_string(),
                });
                append_to_sites(&tx, &sites, &event).map_err(rusqlite::Error::from)?;
            }
            tx.commit()?;
            sites
        };
        self.wake_list_sites(&sites);
        Ok(normalised.len())
    }

    /// Takes a number off whichever list holds it and tells every enrolled site; whether it
    /// was listed.
    pub fn remove_from_lists(&self, phone: &str) -> Result<bool, ListError> {
        let number = list_entry(phone)?;
        let (removed, sites) = {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            if tx.execute("DELETE FROM phone_lists WHERE phone = ?1", [&number])? == 0 {
                return Ok(false);
            }
            let sites = enrolled_sites(&tx)?;
            let version = next_version(&tx, &number)?;
            let event = DownEvent::PhoneList(PhoneListChange { phone: number, version, list: None, note: String::new() });
            append_to_sites(&tx, &sites, &event).map_err(rusqlite::Error::from)?;
            tx.commit()?;
            (true, sites)
        };
        self.wake_list_sites(&sites);
        Ok(removed)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    fn enroll(store: &Store, name: &str) -> i64 {
        let site = store.create_site(name).unwrap();
        let mut conn = store.conn();
        let tx = conn.transaction().unwrap();
        tx.execute("UPDATE sites SET enrolled_at = 1 WHERE id = ?1", [site]).unwrap();
        seed_enrolled_site(&tx, site).unwrap();
        tx.commit().unwrap();
        site
    }

    fn changes(store: &Store, site: i64) -> Vec<PhoneListChange> {
        store
            .down_log(site, 0, 1000)
            .unwrap()
            .into_iter()
            .filter_map(|entry| match entry.event {
                DownEvent::PhoneList(change) => Some(change),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn add_remove_add_gives_rising_versions_to_every_site_and_a_new_site_is_seeded() {
        let (_dir, store) = store();
        let site = enroll(&store, "一职场");
        let unenrolled = store.create_site("未注册").unwrap();
        let phone = "13800138000".to_string();
        store.add_to_list(ListKind::Black, &[phone.clone()], "投诉", "admin").unwrap();
        assert!(store.remove_from_lists(&phone).unwrap());
        assert!(!store.remove_from_lists(&phone).unwrap(), "a second removal changes nothing");
        store.add_to_list(ListKind::Black, &["138 0013 8000".into()], "再次投诉", "admin").unwrap();
        // Adding it again as it is: no new version.
        store.add_to_list(ListKind::Black, &[phone.clone()], "再次投诉", "admin").unwrap();
        // Moved to the white list: one change, newer, that takes it off the black list.
        store.add_to_list(ListKind::White, &[phone.clone()], "", "admin").unwrap();

        let seen: Vec<(u64, Option<PhoneListKind>)> = changes(&store, site).iter().map(|c| (c.version, c.list)).collect();
        assert_eq!(
            seen,
            vec![
                (1, Some(PhoneListKind::Black)),
                (2, None),
                (3, Some(PhoneListKind::Black)),
                (4, Some(PhoneListKind::White)),
            ]
        );
        assert!(changes(&store, unenrolled).is_empty(), "a site not enrolled gets nothing until it enrolls");

        // A site enrolled later is sent the lists as they are now, at their versions.
        store.add_to_list(ListKind::Black, &["A207A92E2B93892F5F4C".into()], "", "admin").unwrap();
        let later = enroll(&store, "二职场");
        let seeded: Vec<(String, u64, Option<PhoneListKind>)> =
            changes(&store, later).into_iter().map(|c| (c.phone, c.version, c.list)).collect();
        assert_eq!(
            seeded,
            vec![
                ("13800138000".to_string(), 4, Some(PhoneListKind::White)),
                ("A207A92E2B93892F5F4C".to_string(), 1, Some(PhoneListKind::Black)),
            ]
        );
    }

    #[test]
    fn tokens_are_listed_and_bad_entries_name_the_value_and_why() {
        let (_dir, store) = store();
        assert_eq!(list_entry("a207a92e2b93892f5f4c").unwrap(), "A207A92E2B93892F5F4C");
        assert_eq!(list_entry(" 13800138000 ").unwrap(), "13800138000");
        let check = |raw: &str, expect: &[&str]| {
            let err = list_entry(raw).unwrap_err().to_string();
            for part in expect {
                assert!(err.contains(part), "{raw:?}: {err}");
            }
        };
        check("A207A92E2B93892F5F4G", &["\"A207A92E2B93892F5F4G\"", "'G' is not a hex digit"]);
        check("ABCDEF12", &["\"ABCDEF12\"", "8 characters", "16 to 64 hex digits"]);
        check("12345", &["\"12345\"", "not a dialable number", "dial token"]);
        let err = store.add_to_list(ListKind::Black, &["13800138000".into(), "bad!".into()], "", "admin").unwrap_err();
        assert!(err.to_string().contains("\"bad!\""), "{err}");
        assert!(store.list_numbers(ListKind::Black).unwrap().is_empty(), "nothing stored when one entry is bad");
    }
}
