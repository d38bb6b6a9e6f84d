//! The store's figures for the hub's `/readyz` and `/metrics`: each site's link and how far
//! behind its down log is. Read per scrape, from the sites table and the down log's primary
//! key (one `MAX(seq)` per site), so a scrape costs no scan of calls.

use super::{DbError, Store};

/// One site as monitoring sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteHealth {
    pub name: String,
    /// A box holds the site.
    pub enrolled: bool,
    pub online: bool,
    /// Down-log entries written for the site and not acknowledged by it yet.
    pub down_backlog: u64,
}

impl Store {
    /// Every site's [`SiteHealth`]; also proves the store answers.
    pub fn site_health(&self) -> Result<Vec<SiteHealth>, DbError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT s.name, EXISTS (SELECT 1 FROM site_identities i WHERE i.site_id = s.id AND i.retired_at IS NULL),
                    s.online, COALESCE((SELECT MAX(seq) FROM down_log d WHERE d.site_id = s.id), 0) - s.down_acked
             FROM sites s ORDER BY s.id",
        )?;
        let sites = statement
            .query_map([], |row| {
                let backlog: i64 = row.get(3)?;
                Ok(SiteHealth { name: row.get(0)?, enrolled: row.get(1)?, online: row.get(2)?, down_backlog: backlog.max(0) as u64 })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(sites)
    }
}
