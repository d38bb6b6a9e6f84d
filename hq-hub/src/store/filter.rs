//! The data filter (外呼数据过滤, manual 1.2.1.9) over the call history sites synced back.
//!
//! For each number of a file the filter counts project-task dials (every attempt a site
//! reports belongs to a dispatched batch; callbacks and manual dials never reach this table)
//! within the valid days, in the chosen data scope (this account's batches or all HQ
//! accounts') and projects, and removes the rows the condition selects:
//!
//! - called (已呼): dialed at least `repeat_count` times;
//! - connected (已接通): answered at least `repeat_count` times;
//! - not connected (未接通): dialed at least `repeat_count` times and never answered;
//! - not called (未呼): never dialed.
//!
//! Whitelisted numbers are never removed. The kept rows become a new file
//! "【过滤结果】name_YYYYMMDDhhmmss" (source: system generated) whose report lists every removed
//! row with its reason. Each account's last settings are remembered.

use std::collections::HashMap;

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::access::Scope;
use super::{now_unix, BadRow, DbError, GoodRow, ImportReport, SaveImportError, Store};

/// Whose dispatches count (选择归属数据域).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterScope {
    /// Batches this account dispatched.
    Mine,
    /// Every HQ account's batches (within the account's data permission).
    #[default]
    All,
}

/// The condition (数据过滤条件, single choice).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterCondition {
    #[default]
    Called,
    NotCalled,
    Connected,
    NotConnected,
}

/// The filter's settings (remembered per account, except the phone column).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilterSettings {
    #[serde(default)]
    pub scope: FilterScope,
    /// Empty = all projects.
    #[serde(default)]
    pub project_ids: Vec<i64>,
    /// 1..=30.
    pub valid_days: u32,
    #[serde(default)]
    pub condition: FilterCondition,
    /// At least 1.
    #[serde(default = "one")]
    pub repeat_count: u32,
}

fn one() -> u32 {
    1
}

impl Default for FilterSettings {
    fn default() -> Self {
        FilterSettings { scope: FilterScope::All, project_ids: Vec::new(), valid_days: 7, condition: FilterCondition::Called, repeat_count: 1 }
    }
}

/// The outcome of a filter run.
#[derive(Debug, Clone, Serialize)]
pub struct FilterOutcome {
    /// The new file ("【过滤结果】…").
    pub file_id: i64,
    pub file_name: String,
    pub kept: u64,
    pub removed: u64,
}

/// Failure to filter.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// No such file (or not visible).
    #[error("file {0} does not exist")]
    UnknownFile(i64),
    /// Valid days outside 1..=30.
    #[error("valid days {0} is out of range: use 1 to 30")]
    ValidDays(u32),
    /// Repeat count 0.
    #[error("repeat count must be at least 1")]
    RepeatCount,
    /// A chosen project does not exist or is not visible.
    #[error("sub-project {0} does not exist")]
    UnknownProject(i64),
    /// Every row would be removed.
    #[error("the filter removed all {0} rows: nothing is left for a result file")]
    NothingLeft(u64),
    /// Writing the result file failed.
    #[error("cannot write the result file: {0}")]
    Write(String),
    #[error(transparent)]
    Save(#[from] SaveImportError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for FilterError {
    fn from(e: rusqlite::Error) -> Self {
        FilterError::Db(DbError(e))
    }
}

/// Dials and answers of one number.
#[derive(Debug, Default, Clone, Copy)]
struct History {
    dials: u64,
    answered: u64,
}

impl Store {
    /// The account's last filter settings (the defaults if it never filtered).
    pub fn filter_settings(&self, account_id: i64) -> Result<FilterSettings, DbError> {
        let text: Option<String> = self
            .conn()
            .query_row("SELECT settings FROM filter_settings WHERE account_id = ?1", [account_id], |r| r.get(0))
            .optional()?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default())
    }

    /// Filters file `file_id`'s rows (phones already taken from the auto-detected or chosen
    /// column: `rows`) and stores the result file.
    pub fn run_filter(
        &self,
        file_id: i64,
        rows: &[GoodRow],
        phone_header: &str,
        settings: &FilterSettings,
        scope: &Scope,
    ) -> Result<FilterOutcome, FilterError> {
        if !(1..=30).contains(&settings.valid_days) {
            return Err(FilterError::ValidDays(settings.valid_days));
        }
        if settings.repeat_count == 0 {
            return Err(FilterError::RepeatCount);
        }
        let (summary, _) = self.file(file_id)?.filter(|(f, _)| scope.project(f.project_id)).ok_or(FilterError::UnknownFile(file_id))?;
        for project in &settings.project_ids {
            if self.project(*project)?.is_none() || !scope.project(*project) {
                return Err(FilterError::UnknownProject(*project));
            }
        }
        let since = now_unix() - i64::from(settings.valid_days) * 86_400;
        let mut history: HashMap<String, History> = HashMap::new();
        let white: std::collections::HashSet<String>;
        {
            let conn = self.conn();
            let mut stmt = conn.prepare(
                "SELECT br.phone, b.project_id, b.site_id, b.creator, a.answered_at IS NOT NULL
                 FROM call_attempts a JOIN batches b ON b.id = a.batch_id AND b.site_id = a.site_id
                 JOIN batch_rows br ON br.id = a.row_id AND br.batch_id = a.batch_id
                 WHERE a.started_at >= ?1",
            )?;
            let mut found = stmt.query(params![since])?;
            while let Some(r) = found.next()? {
                let (project, site, creator): (i64, i64, String) = (r.get(1)?, r.get(2)?, r.get(3)?);
                if settings.scope == FilterScope::Mine && creator != scope.account.username {
                    continue;
                }
                if !settings.project_ids.is_empty() && !settings.project_ids.contains(&project) {
                    continue;
                }
                if !scope.project_site(project, site) {
                    continue;
                }
                let entry = history.entry(r.get(0)?).or_default();
                entry.dials += 1;
                if r.get::<_, bool>(4)? {
                    entry.answered += 1;
                }
            }
            let mut stmt = conn.prepare("SELECT phone FROM phone_lists WHERE list = 'white'")?;
            white = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        }
        let repeat = u64::from(settings.repeat_count);
        let days = settings.valid_days;
        let mut kept = Vec::new();
        let mut removed = Vec::new();
        for row in rows {
            let h = history.get(&row.phone).copied().unwrap_or_default();
            let reason = if white.contains(&row.phone) {
                None
            } else {
                match settings.condition {
                    FilterCondition::Called if h.dials >= repeat => Some((
                        format!("called {} times in the last {days} days (at least {repeat})", h.dials),
                        format!("近 {days} 天已呼 {} 次（不少于 {repeat} 次）", h.dials),
                    )),
                    FilterCondition::Connected if h.answered >= repeat => Some((
                        format!("connected {} times in the last {days} days (at least {repeat})", h.answered),
                        format!("近 {days} 天已接通 {} 次（不少于 {repeat} 次）", h.answered),
                    )),
                    FilterCondition::NotConnected if h.dials >= repeat && h.answered == 0 => Some((
                        format!("called {} times in the last {days} days and never connected", h.dials),
                        format!("近 {days} 天已呼 {} 次且未接通", h.dials),
                    )),
                    FilterCondition::NotCalled if h.dials == 0 => {
                        Some((format!("not called in the last {days} days"), format!("近 {days} 天未呼")))
                    }
                    _ => None,
                }
            };
            match reason {
                Some((reason, reason_zh)) => removed.push(BadRow { row: row.row_number, column: phone_header.to_string(), reason, reason_zh }),
                None => kept.push(row.clone()),
            }
        }
        if kept.is_empty() {
            return Err(FilterError::NothingLeft(rows.len() as u64));
        }
        let project = self.project(summary.project_id)?.ok_or(FilterError::UnknownFile(file_id))?;
        let stamp = {
            let at = time::OffsetDateTime::now_utc().to_offset(time::UtcOffset::from_hms(8, 0, 0).unwrap_or(time::UtcOffset::UTC));
            format!("{:04}{:02}{:02}{:02}{:02}{:02}", at.year(), u8::from(at.month()), at.day(), at.hour(), at.minute(), at.second())
        };
        let file_name = format!("【过滤结果】{}_{stamp}", summary.file_name);
        let bytes = crate::export::filter_result_xlsx(&project, phone_header, &kept, &removed).map_err(|e| FilterError::Write(e.to_string()))?;
        let report = ImportReport {
            n_rows: kept.len() as u64,
            n_good: kept.len() as u64,
            bad: removed.clone(),
            phone_column: phone_header.to_string(),
            unmatched_fields: Vec::new(),
            ..ImportReport::default()
        };
        let new_id = self.save_file(
            summary.project_id,
            &file_name,
            &bytes,
            &scope.account.username,
            &kept,
            &report,
            "system",
            "数据过滤生成的结果文件",
        )?;
        let json = serde_json::to_string(settings).map_err(|e| FilterError::Write(e.to_string()))?;
        self.conn().execute(
            "INSERT INTO filter_settings (account_id, settings) VALUES (?1, ?2)
             ON CONFLICT (account_id) DO UPDATE SET settings = excluded.settings",
            params![scope.account.id, json],
        )?;
        Ok(FilterOutcome { file_id: new_id, file_name, kept: kept.len() as u64, removed: removed.len() as u64 })
    }
}
