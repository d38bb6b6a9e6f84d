//! Report definitions per sub-project (数据报表管理): stored, checked against the
//! sub-project's business fields, cloned by templates, and sent down to the project's sites
//! as one versioned [`DownEvent::ReportDefinitions`] whenever they change, so a site shows
//! HQ's columns (项目任务报表) from its own store. Previews run on the store's engine.

use std::collections::BTreeSet;

use reports::{DefError, DefErrorKind, Filter, ReportDef, ReportTable, Statistic, Subject};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Serialize;
use sync_protocol::{DownEvent, ReportDefinition};

use super::down::append_down;
use super::projects::{load_project, FieldSpecKind, Project};
use super::{now_unix, DbError, Store};

/// A stored report definition.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StoredReport {
    pub id: i64,
    pub project_id: i64,
    pub name: String,
    pub definition: ReportDef,
    pub created_at: i64,
    pub updated_at: i64,
    pub created_by: String,
}

/// Why a definition was not saved.
#[derive(Debug, thiserror::Error)]
pub enum ReportDefError {
    #[error("sub-project {0} does not exist")]
    UnknownProject(i64),
    #[error("report {0} does not exist in this sub-project")]
    UnknownReport(i64),
    /// The definition is not valid; the error names the field (both languages).
    #[error(transparent)]
    Invalid(#[from] DefError),
    #[error("could not queue the definitions for the sites: {0}")]
    Encode(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for ReportDefError {
    fn from(e: rusqlite::Error) -> Self {
        ReportDefError::Db(DbError(e))
    }
}

/// The definition's business-field references must name single-choice record fields of the
/// sub-project, and counted values must be options of them.
fn check_fields(def: &ReportDef, project: &Project) -> Result<(), DefError> {
    let single = |key: &str| {
        project.record_fields.iter().find(|f| f.key == key && f.kind == FieldSpecKind::SingleChoice)
    };
    let bad = |field: String, value: &str| DefError { field, kind: DefErrorKind::BadValue { value: value.to_owned() } };
    for (i, condition) in def.conditions.iter().enumerate() {
        if let Subject::Field { key } = &condition.subject {
            let Some(spec) = single(key) else { return Err(bad(format!("conditions[{i}].subject.key"), key)) };
            for (j, value) in condition.values.iter().enumerate() {
                if !value.is_empty() && !spec.options.contains(value) {
                    return Err(bad(format!("conditions[{i}].values[{j}]"), value));
                }
            }
        }
    }
    for (i, column) in def.columns.iter().enumerate() {
        let parts = [("statistic", Some(&column.statistic)), ("divide_by", column.divide_by.as_ref())];
        for (part, statistic) in parts {
            if let Some(Statistic::FieldValue { key, value }) = statistic {
                let Some(spec) = single(key) else { return Err(bad(format!("columns[{i}].{part}.key"), key)) };
                if !spec.options.contains(value) {
                    return Err(bad(format!("columns[{i}].{part}.value"), value));
                }
            }
        }
    }
    Ok(())
}

fn stored_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredReport> {
    let text: String = r.get(3)?;
    let definition = serde_json::from_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(e)))?;
    Ok(StoredReport {
        id: r.get(0)?,
        project_id: r.get(1)?,
        name: r.get(2)?,
        definition,
        created_at: r.get(4)?,
        updated_at: r.get(5)?,
        created_by: r.get(6)?,
    })
}

const SELECT: &str = "SELECT id, project_id, name, definition, created_at, updated_at, created_by FROM report_definitions";

fn definitions(conn: &Connection, project_id: i64) -> rusqlite::Result<Vec<StoredReport>> {
    let mut stmt = conn.prepare_cached(&format!("{SELECT} WHERE project_id = ?1 ORDER BY id"))?;
    let rows = stmt.query_map([project_id], stored_from_row)?.collect();
    rows
}

/// The event carrying a sub-project's definitions at its current version.
fn definitions_event(tx: &Transaction<'_>, project_id: i64) -> Result<DownEvent, ReportDefError> {
    let version: i64 = tx.query_row("SELECT reports_version FROM projects WHERE id = ?1", [project_id], |r| r.get(0))?;
    let defs = definitions(tx, project_id)?
        .into_iter()
        .map(|d| {
            let definition = serde_json::to_string(&d.definition).map_err(|e| ReportDefError::Encode(e.to_string()))?;
            Ok(ReportDefinition { id: d.id as u64, name: d.name, definition })
        })
        .collect::<Result<Vec<_>, ReportDefError>>()?;
    Ok(DownEvent::ReportDefinitions { project_id: project_id as u64, version: version as u64, defs })
}

/// The sites that hold the sub-project: its participating sites and any it was sent to.
fn project_sites(tx: &Transaction<'_>, project: &Project) -> rusqlite::Result<BTreeSet<i64>> {
    let mut sites: BTreeSet<i64> = project.site_ids.iter().copied().collect();
    let mut stmt = tx.prepare_cached("SELECT site_id FROM sent_projects WHERE project_id = ?1")?;
    for site in stmt.query_map([project.id], |r| r.get::<_, i64>(0))? {
        sites.insert(site?);
    }
    Ok(sites)
}

/// Bumps the definitions' version and queues them for every site of the sub-project; the
/// sites to wake after the commit.
fn publish(tx: &Transaction<'_>, project: &Project) -> Result<Vec<i64>, ReportDefError> {
    tx.execute("UPDATE projects SET reports_version = reports_version + 1 WHERE id = ?1", [project.id])?;
    let event = definitions_event(tx, project.id)?;
    let sites: Vec<i64> = project_sites(tx, project)?.into_iter().collect();
    for &site in &sites {
        append_down(tx, site, &event).map_err(|e| ReportDefError::Encode(e.to_string()))?;
    }
    Ok(sites)
}

/// A site new to a sub-project is sent its definitions (if it has ever had any).
pub(super) fn seed_site(tx: &Transaction<'_>, project_id: i64, site_id: i64) -> Result<(), ReportDefError> {
    let version: i64 = tx.query_row("SELECT reports_version FROM projects WHERE id = ?1", [project_id], |r| r.get(0))?;
    if version > 0 {
        let event = definitions_event(tx, project_id)?;
        append_down(tx, site_id, &event).map_err(|e| ReportDefError::Encode(e.to_string()))?;
    }
    Ok(())
}

/// A template's definitions, copied to a sub-project created from it (which has no sites
/// yet: they are sent when sites join).
pub(super) fn clone_definitions(conn: &Connection, from: i64, to: i64) -> rusqlite::Result<()> {
    let now = now_unix();
    let copied = conn.execute(
        "INSERT INTO report_definitions (project_id, name, definition, created_at, updated_at, created_by)
         SELECT ?2, name, definition, ?3, ?3, created_by FROM report_definitions WHERE project_id = ?1 ORDER BY id",
        params![from, to, now],
    )?;
    if copied > 0 {
        conn.execute("UPDATE projects SET reports_version = 1 WHERE id = ?1", [to])?;
    }
    Ok(())
}

impl Store {
    /// A sub-project's report definitions, oldest first.
    pub fn report_definitions(&self, project_id: i64) -> Result<Vec<StoredReport>, DbError> {
        Ok(definitions(&self.conn(), project_id)?)
    }

    /// One definition of a sub-project.
    pub fn report_definition(&self, project_id: i64, id: i64) -> Result<Option<StoredReport>, DbError> {
        let conn = self.conn();
        let found = conn
            .query_row(&format!("{SELECT} WHERE project_id = ?1 AND id = ?2"), params![project_id, id], stored_from_row)
            .optional()?;
        Ok(found)
    }

    /// Runs a checked change in one transaction, publishes the new list, wakes the sites.
    fn change_definitions<T>(
        &self,
        project_id: i64,
        change: impl FnOnce(&Transaction<'_>, &Project) -> Result<T, ReportDefError>,
    ) -> Result<T, ReportDefError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let project = load_project(&tx, project_id)?.ok_or(ReportDefError::UnknownProject(project_id))?;
        let out = change(&tx, &project)?;
        let sites = publish(&tx, &project)?;
        tx.commit()?;
        drop(conn);
        for site in sites {
            self.down_notify_for(site as u64).notify_one();
        }
        Ok(out)
    }

    /// Adds a report definition to a sub-project; its id.
    pub fn create_report_definition(&self, project_id: i64, def: &ReportDef, by: &str) -> Result<i64, ReportDefError> {
        def.validate()?;
        self.change_definitions(project_id, |tx, project| {
            check_fields(def, project)?;
            let json = serde_json::to_string(def).map_err(|e| ReportDefError::Encode(e.to_string()))?;
            let now = now_unix();
            tx.execute(
                "INSERT INTO report_definitions (project_id, name, definition, created_at, updated_at, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
                params![project_id, def.name.trim(), json, now, by],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// Replaces a report definition (数据编辑).
    pub fn update_report_definition(&self, project_id: i64, id: i64, def: &ReportDef) -> Result<(), ReportDefError> {
        def.validate()?;
        self.change_definitions(project_id, |tx, project| {
            check_fields(def, project)?;
            let json = serde_json::to_string(def).map_err(|e| ReportDefError::Encode(e.to_string()))?;
            let changed = tx.execute(
                "UPDATE report_definitions SET name = ?3, definition = ?4, updated_at = ?5 WHERE project_id = ?1 AND id = ?2",
                params![project_id, id, def.name.trim(), json, now_unix()],
            )?;
            if changed == 0 { Err(ReportDefError::UnknownReport(id)) } else { Ok(()) }
        })
    }

    /// Removes a report definition.
    pub fn delete_report_definition(&self, project_id: i64, id: i64) -> Result<(), ReportDefError> {
        self.change_definitions(project_id, |tx, _| {
            let changed =
                tx.execute("DELETE FROM report_definitions WHERE project_id = ?1 AND id = ?2", params![project_id, id])?;
            if changed == 0 { Err(ReportDefError::UnknownReport(id)) } else { Ok(()) }
        })
    }

    /// Answers a report from the aggregates (never the raw attempts).
    pub fn run_report(&self, def: &ReportDef, filter: &Filter) -> Result<ReportTable, DbError> {
        {
            // The connection only to catch up; the answer comes from memory without it, so
            // a report does not hold up the sync link's writes.
            let conn = self.conn();
            self.reports.refresh(&conn).map_err(super::report_facts::db_error)?;
        }
        Ok(self.reports.answer(def, filter))
    }

    /// The zone reports count local hours and days in.
    pub fn report_zone(&self) -> &reports::Zone {
        self.reports.zone()
    }
}
