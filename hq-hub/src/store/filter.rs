//! The data filter (外呼数据过滤, manual 1.2.1.9) over the call history sites synced back.
//!
//! For each number of a file the filter counts project-task dials within the valid days
//! (H11): a site reports every attempt with its kind, and only the task's predictive and
//! one-click dials count; callbacks and manual dials reach the attempts table with their
//! kind and are left out here (attempts synced before kinds were reported, `unrecorded`,
//! count as they did then), in the chosen data scope (this account's batches or all HQ
//! accounts') and projects, and removes the rows the condition selects:
//!
//! - called (已呼): dialed at least `repeat_count` times;
//! - connected (已接通): answered at least `repeat_count` times;
//! - not connected (未接通): dialed at least `repeat_count` times and never answered;
//! - not called (未呼): never dialed.
//!
//! Whitelisted numbers are never removed. The store judges the rows and answers the kept
//! and removed ones as data ([`Store::judge_filter`]); the result file (its workbook and its
//! name) is made by `crate::filter`, which stores it through [`Store::begin_file`]. Each
//! account's last settings are remembered ([`Store::remember_filter_settings`]).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::access::Scope;
use super::{now_unix, BadRow, DbError, GoodRow, Project, SaveImportError, Store};

/// Whose dispatches count (选择归属数据域).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
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
#[derive(utoipa::ToSchema)]
pub enum FilterCondition {
    #[default]
    Called,
    NotCalled,
    Connected,
    NotConnected,
}

/// The filter's settings (remembered per account, except the phone column).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[derive(utoipa::ToSchema)]
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
#[derive(utoipa::ToSchema)]
pub struct FilterOutcome {
    /// The new file ("【过滤结果】…").
    pub file_id: i64,
    pub file_name: String,
    pub kept: u64,
    pub removed: u64,
}

/// The filter's judgement of a file's rows, before anything is stored.
#[derive(Debug, Clone)]
pub struct FilterJudgement {
    /// The filtered file's project (the result file belongs to it too).
    pub project: Project,
    /// The filtered file's name.
    pub file_name: String,
    /// The rows kept, in file order.
    pub kept: Vec<GoodRow>,
    /// The rows removed, each with its reason (in the phone column).
    pub removed: Vec<BadRow>,
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

/// Hashes integer keys (row ids, number keys) with one multiply instead of SipHash: the
/// filter looks up tens of millions of them, none chosen by an attacker (they are ids the
/// hub assigned and numbers that passed normalisation).
#[derive(Default, Clone, Copy)]
struct IntHasher(u64);

impl Hasher for IntHasher {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(u64::from(*byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        let x = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 29);
    }

    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type IntMap<K, V> = HashMap<K, V, BuildHasherDefault<IntHasher>>;

/// Where a file's number sits in the per-number tallies: digits keyed as one `u64`
/// ([`crate::phone::number_key`]), dial tokens by their text.
#[derive(Default)]
struct NumberIndex {
    digits: IntMap<u64, usize>,
    tokens: HashMap<String, usize>,
}

impl NumberIndex {
    /// The slot of `phone`, adding it as slot `next` if it is new; whether it was new.
    fn insert(&mut self, phone: &str, next: usize) -> (usize, bool) {
        let slot = match crate::phone::number_key(phone) {
            Some(key) => *self.digits.entry(key).or_insert(next),
            None => *self.tokens.entry(phone.to_string()).or_insert(next),
        };
        (slot, slot == next)
    }
}

/// Why the settings' condition removes a number with history `h` (English, Chinese), or
/// `None` if it stays.
fn removal_reason(settings: &FilterSettings, h: History) -> Option<(String, String)> {
    let repeat = u64::from(settings.repeat_count);
    let days = settings.valid_days;
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
        FilterCondition::NotCalled if h.dials == 0 => Some((format!("not called in the last {days} days"), format!("近 {days} 天未呼"))),
        _ => None,
    }
}

impl Store {
    /// Each row's dials and answers within the window, in the settings' scope and projects,
    /// and the whitelist.
    ///
    /// Driven by the file, not by the history: the file's distinct numbers find their batch
    /// rows through the covering index `batch_rows(phone, batch_id)`, the batches are judged
    /// once (scope, projects, data permission), and then each of those rows' attempts in the
    /// window are read from the covering index `call_attempts(batch_id, row_id, started_at,
    /// site_id, answered_at)` without touching the table. Both walks go in key order
    /// (numbers sorted, then batch and row sorted), so consecutive seeks land on the same or
    /// the next index page: the cost follows the file's rows, not the 30 days' tens of
    /// millions of attempts.
    fn filter_history(
        &self,
        rows: &[GoodRow],
        settings: &FilterSettings,
        scope: &Scope,
        since: i64,
    ) -> Result<(Vec<History>, HashSet<String>), FilterError> {
        let t0 = Instant::now();
        // Distinct numbers of the file: slot per number, and each row's slot.
        let mut numbers = NumberIndex::default();
        numbers.digits.reserve(rows.len());
        let mut distinct: Vec<&str> = Vec::new();
        let mut row_slots = Vec::with_capacity(rows.len());
        for row in rows {
            let (slot, new) = numbers.insert(&row.phone, distinct.len());
            if new {
                distinct.push(&row.phone);
            }
            row_slots.push(slot);
        }
        drop(numbers);
        let conn = self.conn();
        // Batches whose attempts count: one decision per batch, not per attempt.
        let mut counted: IntMap<i64, i64> = IntMap::default();
        {
            let mut stmt = conn.prepare("SELECT id, project_id, site_id, creator FROM batches")?;
            let mut found = stmt.query([])?;
            while let Some(r) = found.next()? {
                let (id, project, site): (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
                let creator = r.get_ref(3)?.as_str().unwrap_or_default();
                let mine = settings.scope == FilterScope::All || creator == scope.account.username;
                let in_projects = settings.project_ids.is_empty() || settings.project_ids.contains(&project);
                if mine && in_projects && scope.project_site(project, site) {
                    counted.insert(id, site);
                }
            }
        }
        // Batch rows (hub-wide row ids) holding one of the file's numbers, with the number's
        // slot and the row's batch. The numbers are looked up in sorted order.
        let mut held: Vec<(i64, usize, i64)> = Vec::new();
        if !counted.is_empty() {
            let mut order: Vec<usize> = (0..distinct.len()).collect();
            order.sort_unstable_by_key(|slot| distinct[*slot]);
            let mut stmt = conn.prepare_cached("SELECT id, batch_id FROM batch_rows WHERE phone = ?1")?;
            for slot in order {
                let mut found = stmt.query([distinct[slot]])?;
                while let Some(r) = found.next()? {
                    let (id, batch): (i64, i64) = (r.get(0)?, r.get(1)?);
                    if counted.contains_key(&batch) {
                        held.push((id, slot, batch));
                    }
                }
            }
        }
        held.sort_unstable_by_key(|(id, _, batch)| (*batch, *id));
        tracing::debug!(seconds = t0.elapsed().as_secs_f64(), rows = held.len(), "filter: batch rows of the file's numbers found");
        let mut tallies = vec![History::default(); distinct.len()];
        let mut stmt = conn.prepare_cached(
            "SELECT site_id, answered_at IS NOT NULL FROM call_attempts INDEXED BY call_attempts_batch_row
             WHERE batch_id = ?1 AND row_id = ?2 AND started_at >= ?3
               AND kind IN ('predictive', 'one_click', 'unrecorded')",
        )?;
        for (row_id, slot, batch) in held {
            let mut found = stmt.query(params![batch, row_id, since])?;
            while let Some(r) = found.next()? {
                // The attempt must be at the batch's site.
                if counted.get(&batch) != Some(&r.get_ref(0)?.as_i64().unwrap_or(0)) {
                    continue;
                }
                let tally = &mut tallies[slot];
                tally.dials += 1;
                if r.get_ref(1)?.as_i64().unwrap_or(0) != 0 {
                    tally.answered += 1;
                }
            }
        }
        tracing::debug!(seconds = t0.elapsed().as_secs_f64(), "filter: attempts tallied");
        let mut stmt = conn.prepare("SELECT phone FROM phone_lists WHERE list = 'white'")?;
        let white: HashSet<String> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        Ok((row_slots.into_iter().map(|slot| tallies[slot]).collect(), white))
    }

    /// The account's last filter settings (the defaults if it never filtered).
    pub fn filter_settings(&self, account_id: i64) -> Result<FilterSettings, DbError> {
        let text: Option<String> = self
            .conn()
            .query_row("SELECT settings FROM filter_settings WHERE account_id = ?1", [account_id], |r| r.get(0))
            .optional()?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default())
    }

    /// Judges file `file_id`'s rows (phones already taken from the auto-detected or chosen
    /// column: `rows`) by `settings`: the rows kept and those removed with their reasons.
    /// Stores nothing.
    pub fn judge_filter(
        &self,
        file_id: i64,
        rows: &[GoodRow],
        phone_header: &str,
        settings: &FilterSettings,
        scope: &Scope,
    ) -> Result<FilterJudgement, FilterError> {
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
        let t_run = Instant::now();
        let since = now_unix() - i64::from(settings.valid_days) * 86_400;
        let (history, white) = self.filter_history(rows, settings, scope, since)?;
        let mut kept = Vec::new();
        let mut removed = Vec::new();
        for (row, h) in rows.iter().zip(history) {
            let reason = if white.contains(&row.phone) { None } else { removal_reason(settings, h) };
            match reason {
                Some((reason, reason_zh)) => removed.push(BadRow { row: row.row_number, column: phone_header.to_string(), reason, reason_zh }),
                None => kept.push(row.clone()),
            }
        }
        if kept.is_empty() {
            return Err(FilterError::NothingLeft(rows.len() as u64));
        }
        tracing::debug!(seconds = t_run.elapsed().as_secs_f64(), "filter: rows judged");
        let project = self.project(summary.project_id)?.ok_or(FilterError::UnknownFile(file_id))?;
        Ok(FilterJudgement { project, file_name: summary.file_name, kept, removed })
    }

    /// Remembers `settings` as the account's last filter settings.
    pub fn remember_filter_settings(&self, account_id: i64, settings: &FilterSettings) -> Result<(), FilterError> {
        let json = serde_json::to_string(settings).map_err(|e| FilterError::Write(e.to_string()))?;
        self.conn().execute(
            "INSERT INTO filter_settings (account_id, settings) VALUES (?1, ?2)
             ON CONFLICT (account_id) DO UPDATE SET settings = excluded.settings",
            params![account_id, json],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{expect, Expect};

    use super::*;

    /// Each (dials, answered) history under each condition, repeat count 2 over 7 days:
    /// why it is removed, or `kept`.
    fn check(histories: &[(u64, u64)], expect: Expect) {
        let mut out = String::new();
        for condition in [FilterCondition::Called, FilterCondition::Connected, FilterCondition::NotConnected, FilterCondition::NotCalled] {
            let settings = FilterSettings { condition, repeat_count: 2, valid_days: 7, ..FilterSettings::default() };
            out.push_str(&format!("{condition:?}\n"));
            for &(dials, answered) in histories {
                let verdict = match removal_reason(&settings, History { dials, answered }) {
                    Some((reason, reason_zh)) => format!("{reason} / {reason_zh}"),
                    None => "kept".to_string(),
                };
                out.push_str(&format!("  {dials}/{answered}: {verdict}\n"));
            }
        }
        expect.assert_eq(&out);
    }

    #[test]
    fn each_condition_removes_by_its_count() {
        check(
            &[(0, 0), (1, 1), (2, 0), (3, 2)],
            expect![[r#"
                Called
                  0/0: kept
                  1/1: kept
                  2/0: called 2 times in the last 7 days (at least 2) / 近 7 天已呼 2 次（不少于 2 次）
                  3/2: called 3 times in the last 7 days (at least 2) / 近 7 天已呼 3 次（不少于 2 次）
                Connected
                  0/0: kept
                  1/1: kept
                  2/0: kept
                  3/2: connected 2 times in the last 7 days (at least 2) / 近 7 天已接通 2 次（不少于 2 次）
                NotConnected
                  0/0: kept
                  1/1: kept
                  2/0: called 2 times in the last 7 days and never connected / 近 7 天已呼 2 次且未接通
                  3/2: kept
                NotCalled
                  0/0: not called in the last 7 days / 近 7 天未呼
                  1/1: kept
                  2/0: kept
                  3/2: kept
            "#]],
        );
    }
}
