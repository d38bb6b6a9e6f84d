//! Batch control (任务执行顺序控制): priority changes, delete, one-click start / pause (一键启停),
//! the numbers of a batch, attribution rules (归属设置) for auto batches, and the link
//! settings every site is sent.
//!
//! Priority 0-100: higher dials first, equal priority by import time (the site orders them);
//! 0 ends a batch for ever, 1 pauses it. Every change bumps the batch's `control_version` and
//! goes down as a [`BatchControl`] in the same transaction, so a site applies changes in order
//! and ignores a stale one. A one-click pause remembers each batch's priority
//! (`resume_priority`) so that one-click start restores it.
//!
//! One-click is also HQ's word on the whole project, not only on the batches that exist when
//! it is pressed: each project's state is kept (`one_click_projects`) and each of its sites
//! is sent a [`DownEvent::OneClick`] over [`sync_protocol::ControlScope::Project`], versioned per (project,
//! site) (`one_click_sites`). The site holds every batch of a stopped project, including
//! one dispatched later, and a site's own start cannot lift it. A site that first gets the
//! project after the press is sent the project's state with the definition
//! (`one_click::seed_project_site`).
//!
//! Attribution rules go to every participating site (and every site sent a list before) as
//! that site's own list, under a per-project version that rises on every save, an emptied
//! list included. Link settings go to every enrolled site, and a site enrolled later is
//! seeded with them ([`seed_enrolled_site`]). Every one of these is written into the down
//! logs in the same transaction as the change.

use std::collections::BTreeSet;

use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};
use sync_protocol::{AttributionCondition, AttributionRules, BatchControl, DownEvent, LinkSettings};

use super::access::Scope;
use super::batches::{attribution_rules, AttributionRule};
use super::down::{append_down, publish_to_enrolled, DownError};
use super::one_click::send_one_click;
use super::{now_unix, DbError, Store};

/// The lowest recording upload cap HQ accepts, in bytes per second: below this a site's
/// recordings of a busy day would never catch up.
pub const MIN_UPLOAD_BYTES_PER_SEC: u64 = 8_000;

/// Failure to change a batch.
#[derive(Debug, thiserror::Error)]
pub enum BatchControlError {
    /// No such batch (or not visible to this account).
    #[error("batch {0} does not exist")]
    UnknownBatch(i64),
    /// Priority outside 0..=100.
    #[error("priority {0} is out of range: use 0 (end for ever), 1 (pause) or 2 to 100 (higher dials first)")]
    Priority(i64),
    /// The batch was ended (priority 0) and cannot be reopened.
    #[error("batch {0} has ended (priority 0) and cannot be reopened: dispatch the file again for a new batch")]
    Ended(i64),
    /// No such category.
    #[error("category {0} does not exist")]
    UnknownCategory(i64),
    /// A down-log event could not be encoded.
    #[error("cannot encode the batch control: {0}")]
    Encode(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for BatchControlError {
    fn from(e: rusqlite::Error) -> Self {
        BatchControlError::Db(DbError(e))
    }
}

/// Failure to save attribution rules.
#[derive(Debug, thiserror::Error)]
pub enum AttributionError {
    /// No such project.
    #[error("sub-project {0} does not exist")]
    UnknownProject(i64),
    /// A rule names a field the project does not have.
    #[error("rule {number}: field {key:?} is not a customer field of this sub-project: add an attribution field such as 指定团队 first")]
    UnknownField { number: usize, key: String },
    /// A rule has no value.
    #[error("rule {0}: the value is empty: type the value the field must have")]
    EmptyValue(usize),
    /// A rule names a site that does not take part.
    #[error("rule {number}: site {site} does not take part in this sub-project")]
    NotParticipating { number: usize, site: i64 },
    /// A down-log event could not be encoded (a bug).
    #[error("cannot encode the attribution rules: {0}")]
    Encode(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for AttributionError {
    fn from(e: rusqlite::Error) -> Self {
        AttributionError::Db(DbError(e))
    }
}

/// A number of a batch as "view numbers" (查看号码) shows it.
#[derive(Debug, Clone, Serialize)]
#[derive(utoipa::ToSchema)]
pub struct BatchNumber {
    pub row_id: i64,
    /// Masked if the project hides the middle four digits.
    pub phone: String,
    pub attempts: i64,
    /// The last attempt's outcome, if dialed.
    pub last_outcome: Option<String>,
}

/// The link settings HQ sends every site (链路设置).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HqLinkSettings {
    /// Rises on every change; 0 while HQ never set them.
    #[serde(default)]
    pub version: u64,
    /// Most bytes per second a site spends uploading recordings; `None` is no cap.
    pub recording_upload_bytes_per_sec: Option<u64>,
}

/// Failure to change the link settings.
#[derive(Debug, thiserror::Error)]
pub enum LinkSettingsError {
    /// The cap is too low to be useful.
    #[error("recording_upload_bytes_per_sec: {0} bytes/s is too low: use at least {min} bytes/s, or leave it empty for no cap", min = MIN_UPLOAD_BYTES_PER_SEC)]
    CapTooLow(u64),
    /// A down-log event could not be encoded (a bug).
    #[error("cannot encode the link settings: {0}")]
    Encode(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for LinkSettingsError {
    fn from(e: rusqlite::Error) -> Self {
        LinkSettingsError::Db(DbError(e))
    }
}

/// One-click action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum OneClickAction {
    Start,
    Pause,
}

/// Sets a batch's priority and sends the control down; returns the new control version.
fn control(tx: &Transaction<'_>, batch_id: i64, site_id: i64, priority: i64, resume: Option<i64>) -> Result<u64, BatchControlError> {
    tx.execute(
        "UPDATE batches SET priority = ?2, resume_priority = ?3, control_version = control_version + 1 WHERE id = ?1",
        params![batch_id, priority, resume],
    )?;
    let version: i64 = tx.query_row("SELECT control_version FROM batches WHERE id = ?1", [batch_id], |r| r.get(0))?;
    let event = DownEvent::BatchControl(BatchControl { batch_id: batch_id as u64, version: version as u64, priority: priority.clamp(0, 100) as u8 });
    append_down(tx, site_id, &event).map_err(|e: DownError| BatchControlError::Encode(e.to_string()))?;
    Ok(version as u64)
}

/// Every site that has or may get a project's batches: its participating sites, the sites
/// sent its definition and the sites holding a batch of it.
pub(super) fn project_site_ids(tx: &Transaction<'_>, project_id: i64) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = tx.prepare(
        "SELECT site_id FROM project_sites WHERE project_id = ?1
         UNION SELECT site_id FROM sent_projects WHERE project_id = ?1
         UNION SELECT site_id FROM batches WHERE project_id = ?1
         ORDER BY 1",
    )?;
    let sites = stmt.query_map([project_id], |r| r.get(0))?.collect();
    sites
}

/// HQ's attribution rules as one site's wire list: the rules naming that site and an agent
/// (a rule without an agent only routes rows to the site, which HQ did at dispatch).
fn rules_for_site(rules: &[AttributionRule], site_id: i64) -> Vec<sync_protocol::AttributionRule> {
    rules
        .iter()
        .filter(|rule| rule.site_id == site_id && !rule.agent.trim().is_empty())
        .map(|rule| sync_protocol::AttributionRule {
            conditions: vec![AttributionCondition { field: rule.field_key.clone(), values: vec![rule.value.clone()] }],
            all_match: false,
            agent: rule.agent.trim().to_string(),
        })
        .collect()
}

fn load_link_settings(conn: &rusqlite::Connection) -> rusqlite::Result<Option<LinkSettings>> {
    conn.query_row("SELECT version, recording_upload_bytes_per_sec FROM link_settings WHERE id = 1", [], |r| {
        Ok(LinkSettings {
            version: r.get::<_, i64>(0)? as u64,
            recording_upload_bytes_per_sec: r.get::<_, Option<i64>>(1)?.map(|cap| cap as u64),
        })
    })
    .optional()
}

/// Sends a newly enrolled site HQ's current link settings, in the enrollment transaction.
pub(super) fn seed_enrolled_site(tx: &Transaction<'_>, site_id: i64) -> rusqlite::Result<()> {
    if let Some(settings) = load_link_settings(tx)? {
        append_down(tx, site_id, &DownEvent::LinkSettings(settings))?;
    }
    Ok(())
}

impl Store {
    /// Visible, not deleted batch → (project, site, priority).
    fn batch_for(&self, tx: &Transaction<'_>, id: i64, scope: &Scope) -> Result<(i64, i64, i64), BatchControlError> {
        let found: Option<(i64, i64, i64)> = tx
            .query_row("SELECT project_id, site_id, priority FROM batches WHERE id = ?1 AND deleted = 0", [id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        match found {
            Some((project, site, priority)) if scope.project_site(project, site) => Ok((project, site, priority)),
            _ => Err(BatchControlError::UnknownBatch(id)),
        }
    }

    /// 调优先级: 0 ends for ever, 1 pauses, 2..=100 runs. Returns the control version sent.
    pub fn set_priority(&self, id: i64, priority: i64, scope: &Scope) -> Result<u64, BatchControlError> {
        if !(0..=100).contains(&priority) {
            return Err(BatchControlError::Priority(priority));
        }
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let (_, site, current) = self.batch_for(&tx, id, scope)?;
        if current == 0 {
            return Err(BatchControlError::Ended(id));
        }
        let version = control(&tx, id, site, priority, None)?;
        tx.commit()?;
        drop(conn);
        self.down_notify_for(site as u64).notify_one();
        Ok(version)
    }

    /// Deletes a batch: it ends at its site (priority 0) and leaves the task list.
    pub fn delete_batch(&self, id: i64, scope: &Scope) -> Result<(), BatchControlError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let (_, site, current) = self.batch_for(&tx, id, scope)?;
        if current != 0 {
            control(&tx, id, site, 0, None)?;
        }
        tx.execute("UPDATE batches SET deleted = 1 WHERE id = ?1", [id])?;
        tx.commit()?;
        drop(conn);
        self.down_notify_for(site as u64).notify_one();
        Ok(())
    }

    /// One-click start / pause of every project, or of one category's projects, at the sites
    /// `scope` may control: each such site is sent the project's one-click state (a stopped
    /// project dials nothing there, whatever the site does, until HQ starts it), and each
    /// batch's priority is paused or restored as the task list shows it. Returns how many
    /// batches changed priority.
    pub fn one_click(&self, action: OneClickAction, category_id: Option<i64>, scope: &Scope) -> Result<u64, BatchControlError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if let Some(category) = category_id
            && tx.query_row("SELECT 1 FROM categories WHERE id = ?1", [category], |_| Ok(())).optional()?.is_none()
        {
            return Err(BatchControlError::UnknownCategory(category));
        }
        let candidates: Vec<(i64, i64, i64, i64, Option<i64>)> = {
            let mut stmt = tx.prepare(
                "SELECT b.id, b.project_id, b.site_id, b.priority, b.resume_priority FROM batches b JOIN projects p ON p.id = b.project_id
                 WHERE b.deleted = 0 AND b.priority > 0 AND (?1 IS NULL OR p.category_id = ?1) ORDER BY b.id",
            )?;
            stmt.query_map([category_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
                .collect::<Result<Vec<_>, _>>()?
        };
        let mut changed = 0;
        let mut sites = BTreeSet::new();
        for (id, project, site, priority, resume) in candidates {
            if !scope.project_site(project, site) {
                continue;
            }
            match action {
                OneClickAction::Pause if priority > 1 => {
                    control(&tx, id, site, 1, Some(priority))?;
                }
                OneClickAction::Start if priority == 1 && resume.is_some() => {
                    control(&tx, id, site, resume.unwrap_or(2), None)?;
                }
                _ => continue,
            }
            changed += 1;
            sites.insert(site);
        }
        // HQ's word on each project, for the batches it has and those dispatched later.
        let start = action == OneClickAction::Start;
        let projects: Vec<i64> = {
            let mut stmt = tx.prepare("SELECT id FROM projects WHERE (?1 IS NULL OR category_id = ?1) ORDER BY id")?;
            stmt.query_map([category_id], |r| r.get(0))?.collect::<Result<Vec<_>, _>>()?
        };
        let encode = |e: DownError| BatchControlError::Encode(e.to_string());
        for project in projects.into_iter().filter(|p| scope.project(*p)) {
            let all = project_site_ids(&tx, project)?;
            let covered: Vec<i64> = all.iter().copied().filter(|site| scope.project_site(project, *site)).collect();
            if covered.len() == all.len() {
                // The caller holds the whole project: its state is HQ's for sites to come too.
                tx.execute(
                    "INSERT INTO one_click_projects (project_id, start, changed_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (project_id) DO UPDATE SET start = excluded.start, changed_at = excluded.changed_at",
                    params![project, start, now_unix()],
                )?;
            }
            for site in covered {
                send_one_click(&tx, project, site, start).map_err(encode)?;
                sites.insert(site);
            }
        }
        tx.commit()?;
        drop(conn);
        for site in sites {
            self.down_notify_for(site as u64).notify_one();
        }
        Ok(changed)
    }

    /// 查看号码: a batch's numbers with how often each was dialed.
    pub fn batch_numbers(&self, id: i64, scope: &Scope) -> Result<Vec<BatchNumber>, BatchControlError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let (project, _, _) = self.batch_for(&tx, id, scope)?;
        let hide: bool = tx.query_row("SELECT hide_middle_digits FROM projects WHERE id = ?1", [project], |r| r.get(0))?;
        let mut stmt = tx.prepare(
            "SELECT br.id, br.phone,
                (SELECT COUNT(*) FROM call_attempts a WHERE a.batch_id = br.batch_id AND a.row_id = br.id),
                (SELECT a.outcome FROM call_attempts a WHERE a.batch_id = br.batch_id AND a.row_id = br.id ORDER BY a.started_at DESC LIMIT 1)
             FROM batch_rows br WHERE br.batch_id = ?1 ORDER BY br.id",
        )?;
        let rows = stmt
            .query_map([id], |r| {
                let phone: String = r.get(1)?;
                Ok(BatchNumber {
                    row_id: r.get(0)?,
                    phone: if hide { crate::phone::mask_middle(&phone) } else { phone },
                    attempts: r.get(2)?,
                    last_outcome: r.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Replaces a project's attribution rules (归属设置) and sends each of its sites its own
    /// list under the project's next rules version. Returns that version.
    pub fn set_attribution_rules(&self, project_id: i64, rules: &[AttributionRule]) -> Result<u64, AttributionError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let project = super::projects::load_project(&tx, project_id)?.ok_or(AttributionError::UnknownProject(project_id))?;
        tx.execute("DELETE FROM attribution_rules WHERE project_id = ?1", [project_id])?;
        for (idx, rule) in rules.iter().enumerate() {
            let number = idx + 1;
            if !project.customer_fields.iter().any(|f| f.key == rule.field_key) {
                return Err(AttributionError::UnknownField { number, key: rule.field_key.clone() });
            }
            if rule.value.trim().is_empty() {
                return Err(AttributionError::EmptyValue(number));
            }
            if !project.site_ids.contains(&rule.site_id) {
                return Err(AttributionError::NotParticipating { number, site: rule.site_id });
            }
            tx.execute(
                "INSERT INTO attribution_rules (project_id, field_key, value, site_id, agent) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![project_id, rule.field_key, rule.value.trim(), rule.site_id, rule.agent.trim()],
            )?;
        }
        tx.execute("UPDATE projects SET rules_version = rules_version + 1 WHERE id = ?1", [project_id])?;
        let version: i64 = tx.query_row("SELECT rules_version FROM projects WHERE id = ?1", [project_id], |r| r.get(0))?;
        let stored = attribution_rules(&tx, project_id)?;
        let mut sites: BTreeSet<i64> = project.site_ids.iter().copied().collect();
        {
            let mut stmt = tx.prepare("SELECT site_id FROM attribution_sent WHERE project_id = ?1")?;
            for site in stmt.query_map([project_id], |r| r.get::<_, i64>(0))? {
                sites.insert(site?);
            }
        }
        for &site in &sites {
            let event = DownEvent::AttributionRules(AttributionRules {
                project_id: project_id as u64,
                version: version as u64,
                rules: rules_for_site(&stored, site),
            });
            append_down(&tx, site, &event).map_err(|e| AttributionError::Encode(e.to_string()))?;
            tx.execute("INSERT OR IGNORE INTO attribution_sent (project_id, site_id) VALUES (?1, ?2)", params![project_id, site])?;
        }
        tx.commit()?;
        drop(conn);
        for site in sites {
            self.down_notify_for(site as u64).notify_one();
        }
        Ok(version as u64)
    }

    /// HQ's link settings as last set (version 0 and no cap while never set).
    pub fn link_settings(&self) -> Result<HqLinkSettings, DbError> {
        let settings = load_link_settings(&self.conn())?;
        Ok(match settings {
            Some(s) => HqLinkSettings { version: s.version, recording_upload_bytes_per_sec: s.recording_upload_bytes_per_sec },
            None => HqLinkSettings { version: 0, recording_upload_bytes_per_sec: None },
        })
    }

    /// Sets the link settings (the recording upload cap, `None` for none) under the next
    /// version and sends them to every enrolled site; a site enrolled later is sent them
    /// when it enrolls. Returns what was stored.
    pub fn set_link_settings(&self, recording_upload_bytes_per_sec: Option<u64>, changed_by: &str) -> Result<HqLinkSettings, LinkSettingsError> {
        if let Some(cap) = recording_upload_bytes_per_sec
            && cap < MIN_UPLOAD_BYTES_PER_SEC
        {
            return Err(LinkSettingsError::CapTooLow(cap));
        }
        let cap = recording_upload_bytes_per_sec.map(|cap| cap.min(i64::MAX as u64) as i64);
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO link_settings (id, version, recording_upload_bytes_per_sec, changed_at, changed_by) VALUES (1, 1, ?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET version = link_settings.version + 1,
                recording_upload_bytes_per_sec = excluded.recording_upload_bytes_per_sec,
                changed_at = excluded.changed_at, changed_by = excluded.changed_by",
            params![cap, now_unix(), changed_by],
        )?;
        let settings = load_link_settings(&tx)?.ok_or(LinkSettingsError::Db(DbError(rusqlite::Error::QueryReturnedNoRows)))?;
        let sites = publish_to_enrolled(&tx, &DownEvent::LinkSettings(settings.clone())).map_err(|e| LinkSettingsError::Encode(e.to_string()))?;
        tx.commit()?;
        drop(conn);
        for site in sites {
            self.down_notify_for(site as u64).notify_one();
        }
        Ok(HqLinkSettings { version: settings.version, recording_upload_bytes_per_sec: settings.recording_upload_bytes_per_sec })
    }

    /// A project's attribution rules.
    pub fn attribution_rules(&self, project_id: i64) -> Result<Vec<AttributionRule>, DbError> {
        Ok(attribution_rules(&self.conn(), project_id)?)
    }
}

#[cfg(test)]
mod tests {
    use sync_protocol::{AttributionRules, ControlScope, LinkSettings, OneClickControl};

    use super::*;
    use crate::store::{Account, FieldSpec, NewProject, ProjectSettings};

    fn enrolled_site(store: &Store, name: &str) -> i64 {
        let site = store.create_site(name).unwrap();
        let code = store.create_enrollment_code(site).unwrap();
        // Each box its own certificate: a certificate is one box's identity.
        assert_eq!(store.redeem_code(&code.code, name.as_bytes()).unwrap(), site);
        site
    }

    fn project(store: &Store) -> (i64, i64) {
        let category = store.create_category("套餐类").unwrap();
        let new = NewProject {
            category_id: category,
            name: "流量包".into(),
            template_id: None,
            script: String::new(),
            hide_middle_digits: false,
            customer_fields: vec![FieldSpec::text("team", "指定团队")],
            record_fields: vec![],
            settings: ProjectSettings::default(),
            phone_mode: Default::default(),
        };
        (category, store.create_project(&new).unwrap())
    }

    fn admin() -> Scope {
        Scope::all(Account { id: 1, username: "admin".into(), is_admin: true })
    }

    fn logged<T>(store: &Store, site: i64, pick: impl Fn(DownEvent) -> Option<T>) -> Vec<T> {
        store.down_log(site, 0, 1000).unwrap().into_iter().filter_map(|e| pick(e.event)).collect()
    }

    fn one_clicks(store: &Store, site: i64) -> Vec<OneClickControl> {
        logged(store, site, |e| match e {
            DownEvent::OneClick(c) => Some(c),
            _ => None,
        })
    }

    #[test]
    fn one_click_goes_to_each_site_of_the_project_by_version_and_to_a_site_that_joins_later() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (a, b) = (enrolled_site(&store, "甲"), enrolled_site(&store, "乙"));
        let (category, project) = project(&store);
        store.set_project_sites(project, &[a]).unwrap();

        assert_eq!(store.one_click(OneClickAction::Pause, Some(category), &admin()).unwrap(), 0, "no batch yet");
        assert_eq!(store.one_click(OneClickAction::Start, None, &admin()).unwrap(), 0);
        assert_eq!(store.one_click(OneClickAction::Pause, None, &admin()).unwrap(), 0);
        let scope = ControlScope::Project(project as u64);
        let sent: Vec<(ControlScope, u64, bool)> = one_clicks(&store, a).into_iter().map(|c| (c.scope, c.version, c.start)).collect();
        assert_eq!(sent, vec![(scope, 1, false), (scope, 2, true), (scope, 3, false)], "every press, a higher version");
        assert!(one_clicks(&store, b).is_empty(), "site 乙 has nothing of the project");

        // 乙 joins while the project is paused: it is told with the definition.
        store.set_project_sites(project, &[a, b]).unwrap();
        let sent: Vec<(ControlScope, u64, bool)> = one_clicks(&store, b).into_iter().map(|c| (c.scope, c.version, c.start)).collect();
        assert_eq!(sent, vec![(scope, 1, false)]);
        let events = store.down_log(b, 0, 1000).unwrap();
        let definition = events.iter().position(|e| matches!(e.event, DownEvent::Project(_))).unwrap();
        let pause = events.iter().position(|e| matches!(e.event, DownEvent::OneClick(_))).unwrap();
        assert!(definition < pause, "the definition comes first");

        // A category that is not this project's sends it nothing.
        let other = store.create_category("宽带类").unwrap();
        store.one_click(OneClickAction::Start, Some(other), &admin()).unwrap();
        assert_eq!(one_clicks(&store, a).len(), 3);
        assert!(matches!(store.one_click(OneClickAction::Start, Some(99), &admin()), Err(BatchControlError::UnknownCategory(99))));
    }

    #[test]
    fn attribution_rules_go_to_each_site_as_its_own_list_under_a_rising_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (a, b) = (enrolled_site(&store, "甲"), enrolled_site(&store, "乙"));
        let (_, project) = project(&store);
        store.set_project_sites(project, &[a, b]).unwrap();
        let rule = |value: &str, site: i64, agent: &str| AttributionRule {
            field_key: "team".into(),
            value: value.into(),
            site_id: site,
            agent: agent.into(),
        };
        let rules = [rule("一组", a, "1001"), rule("二组", a, ""), rule("三组", b, "2001")];
        assert_eq!(store.set_attribution_rules(project, &rules).unwrap(), 1);
        let lists = |site| {
            logged(&store, site, |e| match e {
                DownEvent::AttributionRules(r) => Some(r),
                _ => None,
            })
        };
        let wire = |value: &str, agent: &str| sync_protocol::AttributionRule {
            conditions: vec![AttributionCondition { field: "team".into(), values: vec![value.into()] }],
            all_match: false,
            agent: agent.into(),
        };
        let expect = |version, rules| AttributionRules { project_id: project as u64, version, rules };
        assert_eq!(lists(a), vec![expect(1, vec![wire("一组", "1001")])], "a rule without an agent routes only at HQ");
        assert_eq!(lists(b), vec![expect(1, vec![wire("三组", "2001")])]);

        // Emptying the list is a new version, and both sites hear it.
        assert_eq!(store.set_attribution_rules(project, &[]).unwrap(), 2);
        assert_eq!(lists(a).last(), Some(&expect(2, vec![])));
        assert_eq!(lists(b).last(), Some(&expect(2, vec![])));
        // A bad rule changes nothing and sends nothing.
        assert!(matches!(store.set_attribution_rules(project, &[rule("", a, "1001")]), Err(AttributionError::EmptyValue(1))));
        assert_eq!(lists(a).len(), 2);
    }

    #[test]
    fn link_settings_go_to_every_enrolled_site_and_seed_a_later_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let early = enrolled_site(&store, "早");
        let pending = store.create_site("未接入").unwrap();
        assert_eq!(store.link_settings().unwrap(), HqLinkSettings { version: 0, recording_upload_bytes_per_sec: None });
        assert!(matches!(store.set_link_settings(Some(100), "admin"), Err(LinkSettingsError::CapTooLow(100))));
        let set = store.set_link_settings(Some(64_000), "admin").unwrap();
        assert_eq!(set, HqLinkSettings { version: 1, recording_upload_bytes_per_sec: Some(64_000) });
        let settings = |site| {
            logged(&store, site, |e| match e {
                DownEvent::LinkSettings(s) => Some(s),
                _ => None,
            })
        };
        let v1 = LinkSettings { version: 1, recording_upload_bytes_per_sec: Some(64_000) };
        assert_eq!(settings(early), vec![v1.clone()]);
        assert!(settings(pending).is_empty(), "not enrolled: seeded when it enrolls");
        let code = store.create_enrollment_code(pending).unwrap();
        store.redeem_code(&code.code, b"late box").unwrap();
        assert_eq!(settings(pending), vec![v1.clone()]);
        store.set_link_settings(None, "admin").unwrap();
        let v2 = LinkSettings { version: 2, recording_upload_bytes_per_sec: None };
        assert_eq!(settings(early), vec![v1.clone(), v2.clone()]);
        assert_eq!(settings(pending), vec![v1, v2]);
    }
}
