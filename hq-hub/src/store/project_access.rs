//! Who takes part in a sub-project and who administers it: its participating sites
//! (参与职场, step 1) and its project admins (项目管理员, step 2).
//!
//! A site added to the participating list is sent the project's definition in the same
//! transaction (`projects::push_project`, which also tells it HQ's one-click state); an
//! admin keeps only sites that still take part and lie in that account's data permission.

use std::collections::BTreeSet;

use rusqlite::{params, OptionalExtension};

use super::projects::{load_project, push_project, ProjectAccessError, ProjectAdmin};
use super::{DbError, Store};

fn ids_json(ids: &[i64]) -> String {
    serde_json::Value::from(ids.to_vec()).to_string()
}

fn load_project_admins(conn: &rusqlite::Connection, project_id: i64) -> rusqlite::Result<Vec<ProjectAdmin>> {
    let mut stmt = conn.prepare("SELECT account_id, site_ids FROM project_admins WHERE project_id = ?1 ORDER BY account_id")?;
    let rows = stmt
        .query_map([project_id], |r| {
            let text: String = r.get(1)?;
            Ok(ProjectAdmin { account_id: r.get(0)?, site_ids: serde_json::from_str(&text).unwrap_or_default() })
        })?
        .collect();
    rows
}

impl Store {
    /// Step 1 (参与职场): the sites taking part. Newly added sites are sent the definition;
    /// project admins lose sites that no longer take part.
    pub fn set_project_sites(&self, project_id: i64, site_ids: &[i64]) -> Result<(), ProjectAccessError> {
        let sites: BTreeSet<i64> = site_ids.iter().copied().collect();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if load_project(&tx, project_id)?.is_none() {
            return Err(ProjectAccessError::UnknownProject(project_id));
        }
        for site in &sites {
            if tx.query_row("SELECT 1 FROM sites WHERE id = ?1", [site], |_| Ok(())).optional()?.is_none() {
                return Err(ProjectAccessError::UnknownSite(*site));
            }
        }
        tx.execute("DELETE FROM project_sites WHERE project_id = ?1", [project_id])?;
        for site in &sites {
            tx.execute("INSERT INTO project_sites (project_id, site_id) VALUES (?1, ?2)", params![project_id, site])?;
        }
        let admins = load_project_admins(&tx, project_id)?;
        for admin in admins {
            let kept: Vec<i64> = admin.site_ids.iter().copied().filter(|s| sites.contains(s)).collect();
            tx.execute(
                "UPDATE project_admins SET site_ids = ?3 WHERE project_id = ?1 AND account_id = ?2",
                params![project_id, admin.account_id, ids_json(&kept)],
            )?;
        }
        let pushed = push_project(&tx, project_id)?;
        tx.commit()?;
        drop(conn);
        for site in pushed {
            self.down_notify_for(site as u64).notify_one();
        }
        Ok(())
    }

    /// Step 2 (项目管理员): replaces the project admins. Each admin's sites must take part
    /// in the project and lie inside that account's data permission.
    pub fn set_project_admins(&self, project_id: i64, admins: &[ProjectAdmin]) -> Result<(), ProjectAccessError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let project = load_project(&tx, project_id)?.ok_or(ProjectAccessError::UnknownProject(project_id))?;
        if project.site_ids.is_empty() && !admins.is_empty() {
            return Err(ProjectAccessError::NoParticipatingSites);
        }
        tx.execute("DELETE FROM project_admins WHERE project_id = ?1", [project_id])?;
        for admin in admins {
            let scope: Option<Option<String>> = tx
                .query_row("SELECT scope_sites FROM accounts WHERE id = ?1", [admin.account_id], |r| r.get(0))
                .optional()?;
            let Some(scope) = scope else {
                return Err(ProjectAccessError::UnknownAccount(admin.account_id));
            };
            let scope: Option<Vec<i64>> = scope.and_then(|s| serde_json::from_str(&s).ok());
            let mut sites: Vec<i64> = admin.site_ids.clone();
            sites.sort_unstable();
            sites.dedup();
            for site in &sites {
                if !project.site_ids.contains(site) {
                    return Err(ProjectAccessError::NotParticipating { site: *site });
                }
                if let Some(scope) = &scope
                    && !scope.contains(site)
                {
                    return Err(ProjectAccessError::OutsideScope { account: admin.account_id, site: *site });
                }
            }
            tx.execute(
                "INSERT INTO project_admins (project_id, account_id, site_ids) VALUES (?1, ?2, ?3)",
                params![project_id, admin.account_id, ids_json(&sites)],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A sub-project's admins.
    pub fn project_admins(&self, project_id: i64) -> Result<Vec<ProjectAdmin>, DbError> {
        Ok(load_project_admins(&self.conn(), project_id)?)
    }
}
