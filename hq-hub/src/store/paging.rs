//! Keyset pages and date windows for the console's lists that grow: files (文件管理), the
//! task list (下发任务管理) and a batch's business records (业务记录).
//!
//! - Never OFFSET: a page starts after the last id (or `(saved_at, attempt_id)`) the previous
//!   page showed, so page 1,000 costs what page 1 costs and rows added meanwhile do not
//!   shift the pages.
//! - The caller's scope is applied to each chunk read; when it hides rows, more chunks are
//!   read until the page is full or the list ends, so a page is never short in the middle.

use rusqlite::params;

use super::batches::BatchSummary;
use super::files::{file_from_row, FileSummary, FILE_SELECT};
use super::{DbError, Scope, Store};

/// A page of a list by id, newest first: created in `[from, to)`, ids below `before`.
#[derive(Debug, Clone, Default)]
pub struct ListWindow {
    pub before: Option<i64>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub limit: usize,
}

/// A window of a batch's records: saved in `[from, to)`, before `(saved_at, attempt_id)`;
/// `limit` 0 = all.
#[derive(Debug, Clone, Default)]
pub struct RecordWindow {
    pub before: Option<(i64, i64)>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub limit: usize,
}

/// One page and where the next starts (`None` on the last).
#[derive(Debug, Clone)]
pub struct Paged<T, C> {
    pub items: Vec<T>,
    pub next: Option<C>,
}

/// Reads chunks through `read(before, n)` (newest first, ids below `before`), keeps what
/// `keep` allows, until `limit + 1` are kept or the list ends.
fn fill<T>(
    window: &ListWindow,
    id: impl Fn(&T) -> i64,
    keep: impl Fn(&T) -> bool,
    mut read: impl FnMut(i64, i64) -> Result<Vec<T>, DbError>,
) -> Result<Paged<T, i64>, DbError> {
    let limit = window.limit.clamp(1, 500);
    let chunk = (limit as i64 + 1).max(50);
    let mut before = window.before.unwrap_or(i64::MAX);
    let mut items = Vec::new();
    loop {
        let rows = read(before, chunk)?;
        let ended = (rows.len() as i64) < chunk;
        if let Some(last) = rows.last() {
            before = id(last);
        }
        items.extend(rows.into_iter().filter(&keep));
        if items.len() > limit || ended {
            break;
        }
    }
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(&id)
    } else {
        None
    };
    Ok(Paged { items, next })
}

impl Store {
    /// One page of the files the caller sees (of one project, or all), newest first.
    pub fn files_page(&self, project: Option<i64>, window: &ListWindow, scope: &Scope) -> Result<Paged<FileSummary, i64>, DbError> {
        let (from, to) = (window.from.unwrap_or(i64::MIN), window.to.unwrap_or(i64::MAX));
        fill(window, |f: &FileSummary| f.id, |f| scope.project(f.project_id), |before, n| {
            let conn = self.conn();
            let mut stmt = conn.prepare(&format!(
                "{FILE_SELECT} WHERE f.deleted = 0 AND (?1 IS NULL OR f.project_id = ?1) AND f.id < ?2
                   AND f.created_at >= ?3 AND f.created_at < ?4 ORDER BY f.id DESC LIMIT ?5"
            ))?;
            let rows = stmt.query_map(params![project, before, from, to, n], file_from_row)?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    /// One page of the task list the caller sees, newest first.
    pub fn batches_page(&self, window: &ListWindow, scope: &Scope) -> Result<Paged<BatchSummary, i64>, DbError> {
        let (from, to) = (window.from.unwrap_or(i64::MIN), window.to.unwrap_or(i64::MAX));
        fill(window, |b: &BatchSummary| b.id, |b| scope.project_site(b.project_id, b.site_id), |before, n| {
            // Integers only, formatted by us: nothing typed reaches the SQL text.
            let condition = format!("b.deleted = 0 AND b.id < {before} AND b.created_at >= {from} AND b.created_at < {to}");
            self.batches_limited(&condition, None, n)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `fill` pages through a list with holes the scope hides, never short mid-list.
    #[test]
    fn pages_fill_past_hidden_rows_and_end_exactly() {
        let all: Vec<i64> = (1..=300).rev().collect();
        let read = |before: i64, n: i64| -> Result<Vec<i64>, DbError> {
            Ok(all.iter().copied().filter(|id| *id < before).take(n as usize).collect())
        };
        // Only multiples of 7 are visible: 42 of them.
        let keep = |id: &i64| id % 7 == 0;
        let mut window = ListWindow { limit: 20, ..ListWindow::default() };
        let mut seen = Vec::new();
        loop {
            let page = fill(&window, |id| *id, keep, read).unwrap();
            assert!(page.items.len() == 20 || page.next.is_none(), "short page mid-list: {}", page.items.len());
            seen.extend(page.items.iter().copied());
            match page.next {
                Some(next) => window.before = Some(next),
                None => break,
            }
        }
        let expected: Vec<i64> = all.iter().copied().filter(keep).collect();
        assert_eq!(seen, expected);
    }
}
