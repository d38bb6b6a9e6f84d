//! HQ's one-click word on a project as each site was told it (`one_click_sites`): every
//! change for a (project, site) goes down as a [`DownEvent::OneClick`] under the next
//! version for that pair, and a site that first gets a project after HQ stopped it is told
//! with the definition ([`seed_project_site`]).
//!
//! The per-site state lives apart from batch control (`control`, which presses one-click)
//! and from project definitions (`projects`, which seed a site new to a project), so that
//! both can use it without depending on each other.

use rusqlite::{params, OptionalExtension, Transaction};
use sync_protocol::{ControlScope, DownEvent, OneClickControl};

use super::down::{append_down, DownError};

/// Records `start` as `site_id`'s one-click state of `project_id` under the next version
/// for that pair and sends it down.
pub(super) fn send_one_click(tx: &Transaction<'_>, project_id: i64, site_id: i64, start: bool) -> Result<(), DownError> {
    tx.execute(
        "INSERT INTO one_click_sites (project_id, site_id, start, version) VALUES (?1, ?2, ?3, 1)
         ON CONFLICT (project_id, site_id) DO UPDATE SET start = excluded.start, version = one_click_sites.version + 1",
        params![project_id, site_id, start],
    )?;
    let version: i64 = tx.query_row(
        "SELECT version FROM one_click_sites WHERE project_id = ?1 AND site_id = ?2",
        params![project_id, site_id],
        |r| r.get(0),
    )?;
    let event = DownEvent::OneClick(OneClickControl { scope: ControlScope::Project(project_id as u64), version: version as u64, start });
    append_down(tx, site_id, &event)?;
    Ok(())
}

/// A site that gets `project_id` for the first time (its definition is being sent): if HQ
/// one-click stopped the project and this site was never told, it is told now, before any
/// batch of the project reaches it.
pub(super) fn seed_project_site(tx: &Transaction<'_>, project_id: i64, site_id: i64) -> Result<(), DownError> {
    let told = tx
        .query_row("SELECT 1 FROM one_click_sites WHERE project_id = ?1 AND site_id = ?2", params![project_id, site_id], |_| Ok(()))
        .optional()?
        .is_some();
    let stopped = tx
        .query_row("SELECT start = 0 FROM one_click_projects WHERE project_id = ?1", [project_id], |r| r.get::<_, bool>(0))
        .optional()?
        .unwrap_or(false);
    if stopped && !told {
        send_one_click(tx, project_id, site_id, false)?;
    }
    Ok(())
}
