//! Which fields a project's lists show as columns (列表显示, set at HQ per field): HQ sends
//! the fields it keeps out of lists as [`DownEvent::ListColumns`](sync_protocol::DownEvent)
//! after every definition; the newest version is kept. The popup and the edit forms are not
//! lists: they show every field the agent may see, whatever this says.

use std::collections::HashSet;

use rusqlite::{OptionalExtension, Transaction, params};
use sync_protocol::ListColumns;

use super::{DbError, Store};

/// The keys a project keeps out of its lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unlisted {
    pub customer: HashSet<String>,
    pub record: HashSet<String>,
}

pub(super) fn apply_list_columns(tx: &Transaction<'_>, columns: &ListColumns) -> Result<(), DbError> {
    let last: Option<i64> =
        tx.query_row("SELECT version FROM list_columns WHERE project_id = ?1", [columns.project_id], |row| row.get(0)).optional()?;
    if last.is_some_and(|last| columns.version < last as u64) {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO list_columns (project_id, version) VALUES (?1, ?2)
         ON CONFLICT (project_id) DO UPDATE SET version = excluded.version",
        params![columns.project_id, columns.version as i64],
    )?;
    tx.execute("DELETE FROM unlisted_fields WHERE project_id = ?1", [columns.project_id])?;
    let mut insert = tx.prepare_cached("INSERT OR IGNORE INTO unlisted_fields (project_id, record, key) VALUES (?1, ?2, ?3)")?;
    for (record, keys) in [(false, &columns.unlisted_customer), (true, &columns.unlisted_record)] {
        for key in keys {
            insert.execute(params![columns.project_id, record, key])?;
        }
    }
    Ok(())
}

impl Store {
    /// The fields `project_id` keeps out of its lists (none if HQ never said).
    pub fn unlisted_fields(&self, project_id: u64) -> Result<Unlisted, DbError> {
        let conn = self.lock();
        let mut statement = conn.prepare_cached("SELECT record, key FROM unlisted_fields WHERE project_id = ?1")?;
        let mut unlisted = Unlisted::default();
        let rows = statement.query_map([project_id], |row| Ok((row.get::<_, bool>(0)?, row.get::<_, String>(1)?)))?;
        for row in rows {
            let (record, key) = row?;
            if record { unlisted.record.insert(key) } else { unlisted.customer.insert(key) };
        }
        Ok(unlisted)
    }
}
